//! Which volume provisioners create zonal volumes: data, not code.
//!
//! A zonal volume (an AWS EBS volume, a GCE persistent disk, an Azure managed disk, an
//! Alibaba Cloud disk, ...) is created in one zone and can only be attached to nodes in that
//! zone, so the pod that uses it follows it for life. The policy's `zonalProvisioners` table
//! says which provisioners do that, and which StorageClass parameters make them regional
//! (replicated across zones) instead. The defaults are below; a user's entries are laid over
//! them (an entry replaces the default one of the same provisioner, `null` removes it), and
//! a provisioner that is not listed is taken as not zonal.

use std::collections::BTreeMap;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// One provisioner's entry: the parameter values that make its volumes regional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ZonalProvisioner {
    /// StorageClass parameter → value patterns (`*` matches any run of characters). The
    /// class is regional when one of these parameters (its name compared case-insensitively,
    /// as the CSI drivers read them) has a value matching one of the patterns; a value that
    /// lists several types (`cloud_essd,cloud_ssd`) must match in every item.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub regional_parameters: BTreeMap<String, Vec<String>>,
}

/// The policy's `zonalProvisioners`: provisioner name → entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ZonalProvisioners(pub BTreeMap<String, ZonalProvisioner>);

/// What the table says about one StorageClass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Locality {
    /// Volumes live in one zone.
    Zonal,
    /// A zonal provisioner, made regional by the class's parameters.
    Regional,
    /// The provisioner is not in the table.
    NotZonal,
}

impl Default for ZonalProvisioners {
    /// The clouds' block storage, in-tree and CSI names.
    fn default() -> Self {
        let entry = |regional: &[(&str, &[&str])]| ZonalProvisioner {
            regional_parameters: regional
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.iter().map(|p| (*p).to_owned()).collect()))
                .collect(),
        };
        let gce: &[(&str, &[&str])] = &[
            ("replication-type", &["regional-pd"]),
            ("type", &["hyperdisk-balanced-high-availability"]),
        ];
        let azure: &[(&str, &[&str])] =
            &[("skuName", &["*_ZRS"]), ("storageaccounttype", &["*_ZRS"])];
        let alibaba: &[(&str, &[&str])] = &[("type", &["cloud_regional_disk*"])];
        let table = [
            // AWS EBS: a volume lives in one availability zone.
            ("ebs.csi.aws.com", entry(&[])),
            ("kubernetes.io/aws-ebs", entry(&[])),
            // GCE persistent disk: regional PDs and Hyperdisk Balanced HA replicate across two zones.
            ("pd.csi.storage.gke.io", entry(gce)),
            ("kubernetes.io/gce-pd", entry(gce)),
            // Azure managed disk: ZRS SKUs are zone-redundant.
            ("disk.csi.azure.com", entry(azure)),
            ("kubernetes.io/azure-disk", entry(azure)),
            // Alibaba Cloud disk: regional ESSDs (cloud_regional_disk_auto) are zone-redundant.
            ("diskplugin.csi.alibabacloud.com", entry(alibaba)),
            // OpenStack Cinder: volumes live in one availability zone.
            ("cinder.csi.openstack.org", entry(&[])),
            ("kubernetes.io/cinder", entry(&[])),
            // vSphere: with zone-local datastores a volume lives in one zone.
            ("csi.vsphere.vmware.com", entry(&[])),
            ("kubernetes.io/vsphere-volume", entry(&[])),
            // Oracle Cloud block volumes live in one availability domain.
            ("blockvolume.csi.oraclecloud.com", entry(&[])),
            // IBM Cloud VPC block storage lives in one zone.
            ("vpc.block.csi.ibm.io", entry(&[])),
            // Tencent Cloud CBS lives in one zone.
            ("com.tencent.cloud.csi.cbs", entry(&[])),
        ];
        ZonalProvisioners(
            table
                .into_iter()
                .map(|(name, e)| (name.to_owned(), e))
                .collect(),
        )
    }
}

impl ZonalProvisioners {
    /// Whether a class of `provisioner` with these parameters makes zonal volumes.
    pub fn locality(&self, provisioner: &str, parameters: &BTreeMap<String, String>) -> Locality {
        let Some(entry) = self.0.get(provisioner) else {
            return Locality::NotZonal;
        };
        let regional = entry.regional_parameters.iter().any(|(param, patterns)| {
            parameters
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(param))
                .any(|(_, value)| {
                    let mut items = value.split(',').map(str::trim).filter(|i| !i.is_empty());
                    let mut any = false;
                    let all = items.all(|item| {
                        any = true;
                        patterns.iter().any(|p| glob(p, item))
                    });
                    any && all
                })
        });
        if regional {
            Locality::Regional
        } else {
            Locality::Zonal
        }
    }

    /// What is wrong with the table, if anything.
    pub fn validate(&self) -> Result<(), String> {
        for (name, entry) in &self.0 {
            if name.trim().is_empty() {
                return Err("a provisioner name must not be empty".into());
            }
            for (param, patterns) in &entry.regional_parameters {
                if patterns.is_empty() {
                    return Err(format!(
                        "{name}: regionalParameters.{param}: list at least one value"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// `*` matches any run of characters; everything else matches itself, ASCII case ignored.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != b'*' && p[pi].eq_ignore_ascii_case(&t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

/// The user's entries laid over the defaults; `null` removes a default entry.
impl<'de> Deserialize<'de> for ZonalProvisioners {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct Overlay;
        impl<'de> Visitor<'de> for Overlay {
            type Value = ZonalProvisioners;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of provisioner names to {regionalParameters} (or null)")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut table = ZonalProvisioners::default();
                while let Some(name) = map.next_key::<String>()? {
                    match map.next_value::<Option<ZonalProvisioner>>()? {
                        Some(entry) => table.0.insert(name, entry),
                        None => table.0.remove(&name),
                    };
                }
                Ok(table)
            }
        }
        de.deserialize_map(Overlay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_default_table_knows_the_clouds_and_their_regional_parameters() {
        let t = ZonalProvisioners::default();
        let cases = [
            (
                "ebs.csi.aws.com",
                params(&[("type", "gp3")]),
                Locality::Zonal,
            ),
            (
                "pd.csi.storage.gke.io",
                params(&[("replication-type", "regional-pd")]),
                Locality::Regional,
            ),
            (
                "pd.csi.storage.gke.io",
                params(&[("type", "pd-ssd")]),
                Locality::Zonal,
            ),
            (
                "disk.csi.azure.com",
                params(&[("skuname", "Premium_ZRS")]),
                Locality::Regional,
            ),
            (
                "disk.csi.azure.com",
                params(&[("skuName", "Premium_LRS")]),
                Locality::Zonal,
            ),
            (
                "diskplugin.csi.alibabacloud.com",
                params(&[("type", "cloud_regional_disk_auto")]),
                Locality::Regional,
            ),
            (
                "diskplugin.csi.alibabacloud.com",
                params(&[("type", "cloud_regional_disk_auto,cloud_essd")]),
                Locality::Zonal,
            ),
            ("cinder.csi.openstack.org", params(&[]), Locality::Zonal),
            ("csi.vsphere.vmware.com", params(&[]), Locality::Zonal),
            ("efs.csi.aws.com", params(&[]), Locality::NotZonal),
            ("nfs.csi.k8s.io", params(&[]), Locality::NotZonal),
        ];
        for (provisioner, p, want) in cases {
            assert_eq!(t.locality(provisioner, &p), want, "{provisioner} {p:?}");
        }
    }

    #[test]
    fn user_entries_are_laid_over_the_defaults() {
        let t: ZonalProvisioners = serde_norway::from_str(
            "csi.vsphere.vmware.com: null\nmy.csi.example.com: {regionalParameters: {replicas: ['3']}}\n",
        )
        .unwrap();
        assert_eq!(
            t.locality("csi.vsphere.vmware.com", &params(&[])),
            Locality::NotZonal
        );
        assert_eq!(t.locality("ebs.csi.aws.com", &params(&[])), Locality::Zonal);
        assert_eq!(
            t.locality("my.csi.example.com", &params(&[("replicas", "1")])),
            Locality::Zonal
        );
        assert_eq!(
            t.locality("my.csi.example.com", &params(&[("replicas", "3")])),
            Locality::Regional
        );
        // The defaults survive a round trip through their own serialisation.
        let text = serde_norway::to_string(&ZonalProvisioners::default()).unwrap();
        let back: ZonalProvisioners = serde_norway::from_str(&text).unwrap();
        assert_eq!(back, ZonalProvisioners::default());
    }

    #[test]
    fn globs() {
        assert!(glob("*_ZRS", "Premium_ZRS"));
        assert!(glob("*_zrs", "StandardSSD_ZRS"));
        assert!(!glob("*_ZRS", "Premium_LRS"));
        assert!(glob("cloud_regional_disk*", "cloud_regional_disk_auto"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxbyy"));
    }
}

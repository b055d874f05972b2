//! Decodes a workload without the parts no decision reads.
//!
//! Most of a workload's bytes are containers (images, env, probes), volumes, managed fields
//! and status; building a `Value` for them is most of the cost of a request. The engine only
//! reads metadata, the scheduling fields of the pod spec and the claims it mounts (of
//! `volumes`, only the `persistentVolumeClaim` ones, reduced to their name and claim, are
//! kept: HA020 reads them), and patches are computed against
//! the paths it reads, so leaving those subtrees out changes no decision and no patch on
//! CREATE (`tests/server_router.rs` checks this on fully populated objects). UPDATEs are read
//! in full, because whether the pod template changed decides whether to mutate at all. The
//! object is never written back: the API server applies the patch to the object it holds,
//! every field intact.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::engine::WorkloadKind;

/// Subtrees skipped, by where they sit.
const ROOT: &[&str] = &["status"];
const METADATA: &[&str] = &["managedFields"];
const POD_SPEC: &[&str] = &[
    "containers",
    "initContainers",
    "ephemeralContainers",
    "resourceClaims",
];
/// What is kept of one volume (and only of volumes that mount a claim).
const VOLUME_KEPT: &[&str] = &["name", "persistentVolumeClaim"];

#[derive(Clone, Copy)]
enum At {
    Root(WorkloadKind),
    Metadata,
    /// A controller's spec: its `template` leads to the pod spec.
    Spec,
    Template,
    PodSpec,
    /// The pod spec's `volumes` list.
    Volumes,
    /// One of its items.
    Volume,
}

impl At {
    fn skips(self, key: &str) -> bool {
        match self {
            At::Root(_) => ROOT.contains(&key),
            At::Metadata => METADATA.contains(&key),
            At::PodSpec => POD_SPEC.contains(&key),
            At::Volume => !VOLUME_KEPT.contains(&key),
            At::Spec | At::Template | At::Volumes => false,
        }
    }

    fn child(self, key: &str) -> Option<At> {
        match (self, key) {
            (At::Root(_), "metadata") => Some(At::Metadata),
            (At::Root(WorkloadKind::Pod), "spec") => Some(At::PodSpec),
            (At::Root(_), "spec") => Some(At::Spec),
            (At::Spec, "template") => Some(At::Template),
            (At::Template, "spec") => Some(At::PodSpec),
            (At::PodSpec, "volumes") => Some(At::Volumes),
            _ => None,
        }
    }
}

/// Parses `json` as a `kind` workload, leaving out what no decision reads.
pub fn parse(json: &str, kind: WorkloadKind) -> serde_json::Result<Value> {
    let mut de = serde_json::Deserializer::from_str(json);
    let value = seed(kind).deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// The same, as a seed for decoding inside a larger document.
pub(super) fn seed(kind: WorkloadKind) -> Seed {
    Seed(At::Root(kind))
}

pub(super) struct Seed(At);

impl<'de> DeserializeSeed<'de> for Seed {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if self.0.skips(&key) {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let value = match self.0.child(&key) {
                Some(at) => map.next_value_seed(Seed(at))?,
                None => map.next_value::<Value>()?,
            };
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }

    // Anything but a map where a map is expected is kept as is, for the engine to report.
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        if let At::Volumes = self.0 {
            // Only the volumes that mount a claim.
            let mut kept = Vec::new();
            while let Some(v) = seq.next_element_seed(Seed(At::Volume))? {
                if v.get("persistentVolumeClaim").is_some() {
                    kept.push(v);
                }
            }
            return Ok(Value::Array(kept));
        }
        serde::Deserialize::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

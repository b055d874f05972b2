//! Certificates: a private CA and serving certificates for the webhook's Service, for
//! clusters without cert-manager (`spreadguard certs generate`), for `serve --dev` and for
//! the tests.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// Errors from generating or writing certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("generating a certificate")]
    Generate(#[from] rcgen::Error),
    #[error("writing {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A PEM certificate and its PEM private key.
#[derive(Clone, Debug)]
pub struct Pem {
    pub cert: String,
    pub key: String,
}

/// A certificate authority that can issue serving, client and intermediate certificates.
pub struct Authority {
    pem: Pem,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority").finish_non_exhaustive()
    }
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
}

fn named(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "spreadguard");
    dn
}

// === impl Authority ===

impl Authority {
    /// A new self-signed root CA.
    pub fn new(common_name: &str, days: i64) -> Result<Self, CertsError> {
        let key = KeyPair::generate()?;
        let params = ca_params(common_name, days);
        let cert = params.self_signed(&key)?;
        Ok(Authority {
            pem: Pem {
                cert: cert.pem(),
                key: key.serialize_pem(),
            },
            issuer: Issuer::new(params, key),
        })
    }

    /// An intermediate CA signed by this one.
    pub fn intermediate(&self, common_name: &str, days: i64) -> Result<Self, CertsError> {
        let key = KeyPair::generate()?;
        let params = ca_params(common_name, days);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Authority {
            pem: Pem {
                cert: cert.pem(),
                key: key.serialize_pem(),
            },
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate (PEM) and key.
    pub fn pem(&self) -> &Pem {
        &self.pem
    }

    /// A serving certificate for DNS names and IP addresses (given as strings).
    pub fn issue_server(&self, names: &[String], days: i64) -> Result<Pem, CertsError> {
        let mut params = CertificateParams::new(names.to_vec())?;
        params.distinguished_name = named(names.first().map_or("spreadguard", String::as_str));
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        validity(&mut params, days);
        self.issue(params)
    }

    /// A client certificate, as the API server presents with `--client-ca`.
    pub fn issue_client(&self, common_name: &str, days: i64) -> Result<Pem, CertsError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = named(common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        validity(&mut params, days);
        self.issue(params)
    }

    fn issue(&self, params: CertificateParams) -> Result<Pem, CertsError> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }
}

fn ca_params(common_name: &str, days: i64) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = named(common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, days);
    params
}

/// The DNS names the API server may use for a Service.
pub fn service_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// Writes `ca.crt`, `tls.crt` and `tls.key` (mode 0600) into `dir`.
pub fn write(dir: &Path, ca: &Authority, serving: &Pem) -> Result<(), CertsError> {
    let io = |path: PathBuf| move |source| CertsError::Write { path, source };
    fs::create_dir_all(dir).map_err(io(dir.to_owned()))?;
    let ca_path = dir.join("ca.crt");
    fs::write(&ca_path, &ca.pem().cert).map_err(io(ca_path))?;
    let cert_path = dir.join("tls.crt");
    fs::write(&cert_path, &serving.cert).map_err(io(cert_path))?;
    let key_path = dir.join("tls.key");
    write_private(&key_path, serving.key.as_bytes()).map_err(io(key_path))?;
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_cover_every_form_the_api_server_uses() {
        assert_eq!(
            service_names("spreadguard", "ops"),
            [
                "spreadguard",
                "spreadguard.ops",
                "spreadguard.ops.svc",
                "spreadguard.ops.svc.cluster.local"
            ]
        );
    }

    #[test]
    fn issued_material_loads_as_a_serving_certificate() {
        let ca = Authority::new("test CA", 10).unwrap();
        let mid = ca.intermediate("test intermediate", 10).unwrap();
        let leaf = mid
            .issue_server(&["localhost".into(), "127.0.0.1".into()], 1)
            .unwrap();
        let chain = format!("{}{}", leaf.cert, mid.pem().cert);
        let loaded =
            crate::server::tls::load_serving_cert(chain.as_bytes(), leaf.key.as_bytes()).unwrap();
        assert_eq!(loaded.key.cert.len(), 2);
        let now = OffsetDateTime::now_utc().unix_timestamp();
        assert!((now..now + 2 * 86_400).contains(&loaded.not_after));
        let other = ca.issue_server(&["localhost".into()], 1).unwrap();
        assert!(
            crate::server::tls::load_serving_cert(leaf.cert.as_bytes(), other.key.as_bytes())
                .is_err()
        );
    }
}

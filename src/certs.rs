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

/// Errors from generating, loading or writing certificates. None quotes key or certificate
/// content.
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
    #[error("{} already exists (give --force to replace it)", path.display())]
    Exists { path: PathBuf },
    #[error("--ca-cert: not a readable PEM CA certificate")]
    CaCert,
    #[error("--ca-cert: the certificate is not a CA (no basicConstraints CA:TRUE)")]
    NotCa,
    #[error("--ca-key: not a readable unencrypted PEM private key (PKCS#8)")]
    CaKey,
    #[error("--ca-key does not belong to --ca-cert")]
    CaMismatch,
    #[error("--ca-cert: {0}")]
    CaValidity(crate::server::tls::Validity),
    #[error(
        "--ca-cert expires before the serving certificate would ({days} days): renew the CA or give a smaller --days"
    )]
    CaTooShort { days: i64 },
}

/// A PEM certificate and its PEM private key. `Debug` never shows the key.
#[derive(Clone)]
pub struct Pem {
    pub cert: String,
    pub key: String,
}

impl std::fmt::Debug for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pem")
            .field("cert", &format_args!("{} bytes", self.cert.len()))
            .field("key", &format_args!("<redacted>"))
            .finish()
    }
}

/// A certificate authority that can issue serving, client and intermediate certificates.
pub struct Authority {
    pem: Pem,
    issuer: Issuer<'static, KeyPair>,
    not_after: OffsetDateTime,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority").finish_non_exhaustive()
    }
}

/// `[now - 1 h, now + days]`: the hour covers clocks a little behind ours.
fn days_from_now(days: i64) -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    (now - Duration::hours(1), now + Duration::days(days))
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
        let (from, until) = days_from_now(days);
        Authority::new_between(common_name, from, until)
    }

    /// A new self-signed root CA valid from `from` until `until` (tests make expired ones).
    pub fn new_between(
        common_name: &str,
        from: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Self, CertsError> {
        let key = KeyPair::generate()?;
        let params = ca_params(common_name, from, until);
        let cert = params.self_signed(&key)?;
        Ok(Authority {
            pem: Pem {
                cert: cert.pem(),
                key: key.serialize_pem(),
            },
            issuer: Issuer::new(params, key),
            not_after: until,
        })
    }

    /// An existing CA from its PEM certificate and PEM (PKCS#8) key, as `certs generate
    /// --ca-cert --ca-key` reuses it. Refused when it is not a CA, the key is not its key, or
    /// it is not valid now.
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Self, CertsError> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
            .map_err(|_| CertsError::CaCert)?;
        let parsed = pem.parse_x509().map_err(|_| CertsError::CaCert)?;
        if !parsed.is_ca() {
            return Err(CertsError::NotCa);
        }
        let window = crate::server::tls::Window {
            not_before: parsed.validity().not_before.timestamp(),
            not_after: parsed.validity().not_after.timestamp(),
        };
        window
            .check(crate::server::tls::now())
            .map_err(CertsError::CaValidity)?;
        let key = KeyPair::from_pem(key_pem).map_err(|_| CertsError::CaKey)?;
        if parsed.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(CertsError::CaMismatch);
        }
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(|_| CertsError::CaCert)?;
        let not_after = OffsetDateTime::from_unix_timestamp(window.not_after)
            .map_err(|_| CertsError::CaCert)?;
        Ok(Authority {
            pem: Pem {
                cert: cert_pem.to_owned(),
                key: key_pem.to_owned(),
            },
            issuer,
            not_after,
        })
    }

    /// An intermediate CA signed by this one.
    pub fn intermediate(&self, common_name: &str, days: i64) -> Result<Self, CertsError> {
        let key = KeyPair::generate()?;
        let (from, until) = days_from_now(days);
        let params = ca_params(common_name, from, until);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Authority {
            pem: Pem {
                cert: cert.pem(),
                key: key.serialize_pem(),
            },
            issuer: Issuer::new(params, key),
            not_after: until,
        })
    }

    /// The CA certificate (PEM) and key.
    pub fn pem(&self) -> &Pem {
        &self.pem
    }

    /// When the CA expires.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// A serving certificate for DNS names and IP addresses (given as strings).
    pub fn issue_server(&self, names: &[String], days: i64) -> Result<Pem, CertsError> {
        let (from, until) = days_from_now(days);
        self.issue_server_between(names, from, until)
    }

    /// A serving certificate valid from `from` until `until` (tests make expired and
    /// not-yet-valid ones).
    pub fn issue_server_between(
        &self,
        names: &[String],
        from: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Pem, CertsError> {
        let mut params = CertificateParams::new(names.to_vec())?;
        params.distinguished_name = named(names.first().map_or("spreadguard", String::as_str));
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = from;
        params.not_after = until;
        self.issue(params)
    }

    /// A client certificate, as the API server presents with `--client-ca`.
    pub fn issue_client(&self, common_name: &str, days: i64) -> Result<Pem, CertsError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = named(common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        (params.not_before, params.not_after) = days_from_now(days);
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

fn ca_params(common_name: &str, from: OffsetDateTime, until: OffsetDateTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = named(common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = from;
    params.not_after = until;
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

/// Whether `name` is a DNS-1123 label, as Service and namespace names must be: at most 63
/// lower-case letters, digits and `-`, starting and ending with a letter or digit.
pub fn is_dns1123_label(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// What to write into a directory.
pub struct Output<'a> {
    pub ca: &'a Authority,
    /// Write `ca.crt` and `ca.key` (a CA made for this run); `false` for a reused CA.
    pub ca_files: bool,
    pub serving: &'a Pem,
    /// Replace files that exist; without it nothing is written when any does.
    pub force: bool,
}

/// The files [`write`] writes.
pub fn output_files(ca_files: bool) -> &'static [&'static str] {
    if ca_files {
        &["ca.crt", "ca.key", "tls.crt", "tls.key"]
    } else {
        &["tls.crt", "tls.key"]
    }
}

/// Writes `ca.crt` and `ca.key` (when `ca_files`), `tls.crt` and `tls.key` into `dir`. Each
/// file is written to a new file beside it and renamed into place, so keys are mode 0600
/// whatever the file they replace allowed, and a reader never sees half a file.
pub fn write(dir: &Path, out: &Output<'_>) -> Result<(), CertsError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| CertsError::Write { path, source }
    };
    fs::create_dir_all(dir).map_err(io(dir))?;
    if !out.force {
        for name in output_files(out.ca_files) {
            let path = dir.join(name);
            if fs::symlink_metadata(&path).is_ok() {
                return Err(CertsError::Exists { path });
            }
        }
    }
    let mut files = vec![
        ("tls.crt", out.serving.cert.as_str(), false),
        ("tls.key", out.serving.key.as_str(), true),
    ];
    if out.ca_files {
        files.insert(0, ("ca.key", out.ca.pem().key.as_str(), true));
        files.insert(0, ("ca.crt", out.ca.pem().cert.as_str(), false));
    }
    for (name, text, private) in files {
        let path = dir.join(name);
        replace(dir, &path, text.as_bytes(), private).map_err(io(&path))?;
    }
    Ok(())
}

fn replace(dir: &Path, path: &Path, bytes: &[u8], private: bool) -> std::io::Result<()> {
    use std::io::Write;
    // tempfile creates the file 0600.
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    #[cfg(unix)]
    if !private {
        use std::os::unix::fs::PermissionsExt;
        file.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))?;
    }
    #[cfg(not(unix))]
    let _ = private;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
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
    fn dns1123_labels() {
        for ok in ["a", "spreadguard", "ops-1", "0", &"a".repeat(63)] {
            assert!(is_dns1123_label(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a.b",
            "a_b",
            "ünï",
            &"a".repeat(64),
            "a b",
        ] {
            assert!(!is_dns1123_label(bad), "{bad}");
        }
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

    #[test]
    fn a_loaded_ca_signs_like_the_original() {
        let ca = Authority::new("test CA", 10).unwrap();
        let again = Authority::load(&ca.pem().cert, &ca.pem().key).unwrap();
        let leaf = again.issue_server(&["localhost".into()], 1).unwrap();
        // Verified against the original CA certificate.
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(
                rustls::pki_types::CertificateDer::from_pem_slice(ca.pem().cert.as_bytes())
                    .unwrap(),
            )
            .unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            crate::server::tls::provider(),
        )
        .build()
        .unwrap();
        let der = rustls::pki_types::CertificateDer::from_pem_slice(leaf.cert.as_bytes()).unwrap();
        verifier
            .verify_server_cert(
                &der,
                &[],
                &rustls::pki_types::ServerName::try_from("localhost").unwrap(),
                &[],
                rustls::pki_types::UnixTime::now(),
            )
            .expect("signed by the same CA");

        let other = Authority::new("other", 10).unwrap();
        assert!(matches!(
            Authority::load(&ca.pem().cert, &other.pem().key),
            Err(CertsError::CaMismatch)
        ));
        let leaf_as_ca = Authority::load(&leaf.cert, &leaf.key);
        assert!(matches!(leaf_as_ca, Err(CertsError::NotCa)));
        let now = OffsetDateTime::now_utc();
        let expired =
            Authority::new_between("old", now - Duration::days(20), now - Duration::days(10))
                .unwrap();
        assert!(matches!(
            Authority::load(&expired.pem().cert, &expired.pem().key),
            Err(CertsError::CaValidity(_))
        ));
    }

    #[cfg(unix)]
    #[test]
    fn keys_are_0600_even_over_a_0666_file_and_nothing_is_replaced_without_force() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ca = Authority::new("test CA", 10).unwrap();
        let serving = ca.issue_server(&["x".into()], 1).unwrap();
        for name in ["tls.key", "ca.key"] {
            let path = dir.path().join(name);
            fs::write(&path, "old").unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        }
        let out = |force| Output {
            ca: &ca,
            ca_files: true,
            serving: &serving,
            force,
        };
        assert!(matches!(
            write(dir.path(), &out(false)),
            Err(CertsError::Exists { .. })
        ));
        assert_eq!(
            fs::read_to_string(dir.path().join("tls.key")).unwrap(),
            "old"
        );
        assert!(!dir.path().join("tls.crt").exists(), "nothing written");
        write(dir.path(), &out(true)).unwrap();
        let mode = |name: &str| {
            fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("tls.key"), 0o600);
        assert_eq!(mode("ca.key"), 0o600);
        assert_eq!(mode("tls.crt"), 0o644);
        assert_eq!(mode("ca.crt"), 0o644);
        assert_eq!(
            fs::read_to_string(dir.path().join("tls.key")).unwrap(),
            serving.key
        );
    }
}

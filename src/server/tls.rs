//! TLS for the admission port: rustls with the ring provider, TLS 1.2 and 1.3, ALPN `h2` and
//! `http/1.1`, optional client authentication, and a certificate and client CA bundle that
//! can be replaced while the server runs.
//!
//! The serving certificate is picked per handshake by [`CertResolver`], which reads it from
//! an `ArcSwap`; the whole configuration (for a new client CA bundle) is swapped the same way
//! by [`Tls`]. A reload affects only new handshakes, and established connections keep the
//! session they negotiated.
//!
//! No error here carries key or certificate bytes: PEM parsers quote the line they choke on,
//! and a key whose PEM is on one line is that line, so their errors are replaced by
//! [`PemProblem`], which says what is wrong without quoting anything.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};

/// Errors loading TLS material. The message says which part and why, never what it holds.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what}: no PEM certificate found")]
    NoCertificate { what: &'static str },
    #[error("{what}: not a PEM certificate chain")]
    Certificate {
        what: &'static str,
        #[source]
        source: PemProblem,
    },
    #[error("private key")]
    Key(#[source] PemProblem),
    #[error("certificate and key do not belong together, or the key is unusable")]
    Mismatch(#[source] rustls::Error),
    #[error("{what}: not a readable X.509 certificate")]
    Unreadable { what: &'static str },
    #[error("{what}: {validity}")]
    Validity {
        what: &'static str,
        validity: Validity,
    },
    #[error("client CA bundle")]
    ClientCa(#[source] rustls::Error),
    #[error("client CA bundle")]
    ClientVerifier(#[source] rustls::server::VerifierBuilderError),
    #[error("TLS configuration")]
    Config(#[source] rustls::Error),
}

/// What is wrong with a PEM file, without quoting any of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PemProblem {
    #[error(
        "a PEM section has no END line (the file is truncated, or its PEM is on one line: PEM needs its line breaks)"
    )]
    MissingEnd,
    #[error("a PEM BEGIN line is malformed (is the PEM on one line? PEM needs its line breaks)")]
    BadBegin,
    #[error("the base64 inside a PEM section is invalid (truncated or edited)")]
    Base64,
    #[error(
        "no PEM section of the expected type (an empty file, an encrypted key, or a certificate where the key belongs?); spreadguard reads unencrypted PKCS#8, PKCS#1 or SEC1 keys"
    )]
    NotFound,
    #[error("a PEM section is too large")]
    TooLarge,
    #[error("the PEM could not be read")]
    Unreadable,
}

impl From<pem::Error> for PemProblem {
    fn from(e: pem::Error) -> Self {
        match e {
            pem::Error::MissingSectionEnd { .. } => PemProblem::MissingEnd,
            pem::Error::IllegalSectionStart { .. } => PemProblem::BadBegin,
            pem::Error::Base64Decode(_) => PemProblem::Base64,
            pem::Error::NoItemsFound => PemProblem::NotFound,
            pem::Error::SectionTooLarge => PemProblem::TooLarge,
            _ => PemProblem::Unreadable,
        }
    }
}

/// Why a certificate is not valid now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// `notAfter` is in the past.
    Expired { not_after: i64 },
    /// `notBefore` is in the future.
    NotYetValid { not_before: i64 },
}

impl fmt::Display for Validity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Validity::Expired { not_after } => {
                write!(f, "expired (notAfter {})", rfc3339(not_after))
            }
            Validity::NotYetValid { not_before } => {
                write!(f, "not valid yet (notBefore {})", rfc3339(not_before))
            }
        }
    }
}

fn rfc3339(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => format!("@{unix}"),
    }
}

/// The crypto provider: ring, and only ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The current Unix time.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A certificate's validity window, as Unix timestamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub not_before: i64,
    pub not_after: i64,
}

impl Window {
    /// `Ok` when `now` lies inside the window.
    pub fn check(&self, now: i64) -> Result<(), Validity> {
        if now > self.not_after {
            Err(Validity::Expired {
                not_after: self.not_after,
            })
        } else if now < self.not_before {
            Err(Validity::NotYetValid {
                not_before: self.not_before,
            })
        } else {
            Ok(())
        }
    }

    /// The narrowest window inside both.
    fn intersect(self, other: Window) -> Window {
        Window {
            not_before: self.not_before.max(other.not_before),
            not_after: self.not_after.min(other.not_after),
        }
    }
}

/// A parsed serving certificate with its key, ready for handshakes.
#[derive(Clone)]
pub struct ServingCert {
    pub key: Arc<CertifiedKey>,
    /// `notAfter` of the leaf, as a Unix timestamp.
    pub not_after: i64,
    /// The leaf's validity.
    pub window: Window,
}

impl fmt::Debug for ServingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServingCert")
            .field("chain", &self.key.cert.len())
            .field("window", &self.window)
            .finish()
    }
}

impl ServingCert {
    /// `Ok` when the leaf is valid at `now`.
    pub fn check_validity(&self, now: i64) -> Result<(), TlsError> {
        self.window
            .check(now)
            .map_err(|validity| TlsError::Validity {
                what: "certificate",
                validity,
            })
    }
}

/// Parses a PEM chain (leaf first, then intermediates) and its private key, and checks that
/// they belong together. Validity in time is checked separately ([`ServingCert::check_validity`]).
pub fn load_serving_cert(chain_pem: &[u8], key_pem: &[u8]) -> Result<ServingCert, TlsError> {
    let chain = parse_certs(chain_pem, "certificate")?;
    let key =
        PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Key(PemProblem::from(e)))?;
    let window = window(&chain[0], "certificate")?;
    let key = CertifiedKey::from_der(chain, key, &provider()).map_err(TlsError::Mismatch)?;
    Ok(ServingCert {
        key: Arc::new(key),
        not_after: window.not_after,
        window,
    })
}

fn parse_certs(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Certificate {
            what,
            source: e.into(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { what });
    }
    Ok(certs)
}

fn window(cert: &CertificateDer<'_>, what: &'static str) -> Result<Window, TlsError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|_| TlsError::Unreadable { what })?;
    let validity = parsed.validity();
    Ok(Window {
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
    })
}

/// A parsed client CA bundle.
#[derive(Clone, Debug)]
pub struct ClientCa {
    roots: Vec<CertificateDer<'static>>,
    /// Where every CA of the bundle is valid.
    pub window: Window,
}

impl ClientCa {
    /// Parses a PEM bundle of CA certificates.
    pub fn parse(pem: &[u8]) -> Result<ClientCa, TlsError> {
        let roots = parse_certs(pem, "client CA bundle")?;
        let mut all = Window {
            not_before: i64::MIN,
            not_after: i64::MAX,
        };
        for cert in &roots {
            all = all.intersect(window(cert, "client CA bundle")?);
        }
        Ok(ClientCa { roots, window: all })
    }

    /// `Ok` when every CA of the bundle is valid at `now`: an expired or future CA in a
    /// bundle is a mistake to fix, not something to serve quietly.
    pub fn check_validity(&self, now: i64) -> Result<(), TlsError> {
        self.window
            .check(now)
            .map_err(|validity| TlsError::Validity {
                what: "client CA bundle",
                validity,
            })
    }
}

/// Hands the current certificate to each new handshake.
#[derive(Debug)]
pub struct CertResolver {
    current: ArcSwap<CertifiedKey>,
}

impl CertResolver {
    pub fn new(cert: &ServingCert) -> Self {
        CertResolver {
            current: ArcSwap::new(cert.key.clone()),
        }
    }

    /// Serves `cert` from the next handshake on.
    pub fn set(&self, cert: &ServingCert) {
        self.current.store(cert.key.clone());
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The server configuration. With `client_ca`, clients must present a certificate issued by
/// one of its CAs; without it, no client certificate is asked for.
pub fn server_config(
    resolver: Arc<CertResolver>,
    client_ca: Option<&ClientCa>,
) -> Result<ServerConfig, TlsError> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in &ca.roots {
                roots.add(cert.clone()).map_err(TlsError::ClientCa)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(TlsError::ClientVerifier)?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The TLS configuration new connections get; replaced whole when the client CA changes.
pub type Tls = Arc<ArcSwap<ServerConfig>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::Authority;

    fn body_of(pem: &str) -> String {
        pem.lines().filter(|l| !l.starts_with("-----")).collect()
    }

    /// Every way a key file goes wrong, and no error that quotes it.
    #[test]
    fn key_errors_never_quote_the_key() {
        let ca = Authority::new("test CA", 10).unwrap();
        let leaf = ca.issue_server(&["localhost".into()], 1).unwrap();
        let key = &leaf.key;
        let lines: Vec<&str> = key.lines().collect();
        let one_line = key.replace('\n', "");
        let truncated = lines[..lines.len() - 2].join("\n");
        let cut_base64 = {
            let mut l = lines.clone();
            let mid = l[1].len() / 2;
            l[1] = &lines[1][..mid];
            l.join("\n") + "\n"
        };
        let encrypted = key
            .replace("BEGIN PRIVATE KEY", "BEGIN ENCRYPTED PRIVATE KEY")
            .replace("END PRIVATE KEY", "END ENCRYPTED PRIVATE KEY");
        let rsa_labelled = key
            .replace("BEGIN PRIVATE KEY", "BEGIN RSA PRIVATE KEY")
            .replace("END PRIVATE KEY", "END RSA PRIVATE KEY");
        let cases: Vec<(&str, String, &[u8])> = vec![
            ("one line", one_line, b""),
            ("truncated", truncated, b""),
            ("base64 cut", cut_base64, b""),
            ("encrypted", encrypted, b""),
            ("wrong type: the certificate", leaf.cert.clone(), b""),
            ("wrong label: EC key as RSA", rsa_labelled, b""),
            ("empty", String::new(), b""),
            ("garbage", "\u{0}\u{1}not pem at all".into(), b""),
        ];
        let secret = body_of(key);
        let cert_body = body_of(&leaf.cert);
        for (shape, bad, _) in cases {
            let err = load_serving_cert(leaf.cert.as_bytes(), bad.as_bytes()).expect_err(shape);
            let text = crate::errors::chain(&err);
            let debug = format!("{err:?}");
            for shown in [&text, &debug] {
                for window in secret.as_bytes().windows(12).step_by(6) {
                    let window = std::str::from_utf8(window).unwrap();
                    assert!(!shown.contains(window), "{shape}: {shown} quotes the key");
                }
                for window in cert_body.as_bytes().windows(12).step_by(6) {
                    let window = std::str::from_utf8(window).unwrap();
                    assert!(!shown.contains(window), "{shape}: {shown} quotes the cert");
                }
                // pki-types' own errors print the offending line as a list of bytes.
                assert!(!shown.contains("[45, 45, 45"), "{shape}: {shown}");
                assert!(shown.len() < 400, "{shape}: {shown}");
            }
        }
        // And certificate files the same way.
        let one_line_cert = leaf.cert.replace('\n', "");
        let err = load_serving_cert(one_line_cert.as_bytes(), key.as_bytes()).unwrap_err();
        let text = crate::errors::chain(&err);
        assert!(!text.contains(&cert_body[..40]), "{text}");
        assert!(text.contains("on one line"), "{text}");
    }

    #[test]
    fn validity_windows() {
        let w = Window {
            not_before: 100,
            not_after: 200,
        };
        assert_eq!(w.check(150), Ok(()));
        assert_eq!(w.check(201), Err(Validity::Expired { not_after: 200 }));
        assert_eq!(w.check(99), Err(Validity::NotYetValid { not_before: 100 }));
        let e = TlsError::Validity {
            what: "certificate",
            validity: Validity::Expired { not_after: 0 },
        };
        assert_eq!(
            e.to_string(),
            "certificate: expired (notAfter 1970-01-01T00:00:00Z)"
        );
    }
}

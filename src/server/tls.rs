//! TLS for the admission port: rustls with the ring provider, TLS 1.2 and 1.3, ALPN `h2` and
//! `http/1.1`, optional client authentication, and a certificate that can be replaced while
//! the server runs.
//!
//! The serving certificate is picked per handshake by [`CertResolver`], which reads it from
//! an `ArcSwap`: a reload affects only new handshakes, and established connections keep the
//! session they negotiated.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};

/// Errors loading TLS material. The message says which file and why.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what}: no PEM certificate found")]
    NoCertificate { what: &'static str },
    #[error("{what}: not a PEM certificate chain")]
    Certificate {
        what: &'static str,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("private key: not a PEM private key")]
    Key(#[source] rustls::pki_types::pem::Error),
    #[error("certificate and key do not belong together, or the key is unusable")]
    Mismatch(#[source] rustls::Error),
    #[error("certificate: cannot read its validity: {0}")]
    Validity(String),
    #[error("client CA bundle: {0}")]
    ClientCa(String),
    #[error("TLS configuration")]
    Config(#[source] rustls::Error),
}

/// The crypto provider: ring, and only ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A parsed serving certificate with its key, ready for handshakes.
#[derive(Clone)]
pub struct ServingCert {
    pub key: Arc<CertifiedKey>,
    /// `notAfter` of the leaf, as a Unix timestamp.
    pub not_after: i64,
}

impl fmt::Debug for ServingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServingCert")
            .field("chain", &self.key.cert.len())
            .field("not_after", &self.not_after)
            .finish()
    }
}

/// Parses a PEM chain (leaf first, then intermediates) and its private key, and checks that
/// they belong together.
pub fn load_serving_cert(chain_pem: &[u8], key_pem: &[u8]) -> Result<ServingCert, TlsError> {
    let chain = parse_certs(chain_pem, "certificate")?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(TlsError::Key)?;
    let not_after = not_after(&chain[0])?;
    let key = CertifiedKey::from_der(chain, key, &provider()).map_err(TlsError::Mismatch)?;
    Ok(ServingCert {
        key: Arc::new(key),
        not_after,
    })
}

fn parse_certs(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Certificate { what, source })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { what });
    }
    Ok(certs)
}

fn not_after(cert: &CertificateDer<'_>) -> Result<i64, TlsError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| TlsError::Validity(e.to_string()))?;
    Ok(parsed.validity().not_after.timestamp())
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
    client_ca: Option<&[u8]>,
) -> Result<ServerConfig, TlsError> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in parse_certs(pem, "client CA bundle")? {
                roots
                    .add(cert)
                    .map_err(|e| TlsError::ClientCa(e.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::ClientCa(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

//! Why a TLS handshake failed, in the words of an operator: a reason for the
//! `spreadguard_tls_handshake_failures_total` counter and a hint for the log line that
//! matches what the API server reports on its side.

use std::io;

use rustls::{AlertDescription, CertificateError};

use crate::metrics::HandshakeFailure;

/// The reason for a failed `accept`.
pub fn classify(error: &io::Error) -> HandshakeFailure {
    if let Some(tls) = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        return match tls {
            rustls::Error::AlertReceived(
                AlertDescription::BadCertificate
                | AlertDescription::UnknownCA
                | AlertDescription::CertificateUnknown
                | AlertDescription::CertificateExpired
                | AlertDescription::CertificateRevoked
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::AccessDenied,
            ) => HandshakeFailure::client_rejected_certificate,
            rustls::Error::NoCertificatesPresented => HandshakeFailure::no_client_certificate,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
                HandshakeFailure::unknown_ca
            }
            rustls::Error::InvalidCertificate(_) => HandshakeFailure::bad_client_certificate,
            _ => HandshakeFailure::protocol,
        };
    }
    match error.kind() {
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => HandshakeFailure::eof,
        _ => HandshakeFailure::protocol,
    }
}

/// What to check, for the log line.
pub fn hint(reason: HandshakeFailure) -> &'static str {
    match reason {
        HandshakeFailure::client_rejected_certificate => {
            "the client does not trust spreadguard's certificate: the webhook configuration's caBundle must hold the CA that signed --tls-cert, which must name the Service (<service>.<namespace>.svc); the API server logs 'x509: certificate signed by unknown authority'"
        }
        HandshakeFailure::unknown_ca => {
            "the client's certificate is not signed by a CA in --client-ca"
        }
        HandshakeFailure::no_client_certificate => {
            "--client-ca requires a client certificate, and the client sent none (the API server sends one only when its admission configuration names one for this webhook)"
        }
        HandshakeFailure::bad_client_certificate => {
            "the client's certificate is expired, not yet valid, or not for client authentication"
        }
        HandshakeFailure::protocol => {
            "no common TLS version, cipher suite or ALPN protocol, or not TLS at all (plain HTTP to the TLS port?)"
        }
        HandshakeFailure::timeout => "the handshake did not finish within --header-read-timeout",
        HandshakeFailure::eof => "the client closed the connection during the handshake",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(e: rustls::Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn reasons() {
        let cases = [
            (
                tls(rustls::Error::AlertReceived(
                    AlertDescription::BadCertificate,
                )),
                HandshakeFailure::client_rejected_certificate,
            ),
            (
                tls(rustls::Error::AlertReceived(AlertDescription::UnknownCA)),
                HandshakeFailure::client_rejected_certificate,
            ),
            (
                tls(rustls::Error::NoCertificatesPresented),
                HandshakeFailure::no_client_certificate,
            ),
            (
                tls(rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer,
                )),
                HandshakeFailure::unknown_ca,
            ),
            (
                tls(rustls::Error::InvalidCertificate(CertificateError::Expired)),
                HandshakeFailure::bad_client_certificate,
            ),
            (
                tls(rustls::Error::NoApplicationProtocol),
                HandshakeFailure::protocol,
            ),
            (
                io::Error::from(io::ErrorKind::UnexpectedEof),
                HandshakeFailure::eof,
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(classify(&error), expected, "{error}");
        }
    }
}

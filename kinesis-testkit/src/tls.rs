//! TLS for the Kinesis front, for clients that speak only HTTPS (the Java KPL's native daemon
//! refuses a plain-HTTP endpoint): a self-signed certificate for `127.0.0.1` and `localhost`,
//! made afresh at every start, so nothing secret lives in the repository. Clients must skip
//! verification (the KPL's `VerifyCertificate=false`, boto3's `verify=False`).

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

use crate::local::TestkitError;

/// An acceptor serving a new self-signed certificate over HTTP/1.1, and that certificate (DER),
/// for clients that would rather trust it than skip verification.
pub(crate) fn self_signed_acceptor() -> Result<(TlsAcceptor, Vec<u8>), TestkitError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| TestkitError::Start {
        reason: format!("TLS {what}: {e}"),
    };
    let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
    let certified =
        rcgen::generate_simple_self_signed(names).map_err(|e| fail("certificate", &e))?;
    let der = certified.cert.der().to_vec();
    let cert = CertificateDer::from(der.clone());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail("protocol versions", &e))?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(|e| fail("server configuration", &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(config)), der))
}

#[cfg(test)]
mod tests {
    #[test]
    fn makes_an_acceptor() {
        assert!(super::self_signed_acceptor().is_ok());
    }
}

//! `--tls`: a throw-away CA and a `localhost`/`127.0.0.1`/`::1` server certificate generated at each
//! start, so drills exercise the same TLS path as production. The CA certificate is written out
//! for clients (`--ca-cert`); private keys never leave memory.

use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::error::SimError;

/// A generated certificate chain: the CA (PEM, for clients) and the server's TLS acceptor.
pub(crate) struct GeneratedTls {
    pub(crate) ca_pem: String,
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
}

fn tls_err(e: impl std::fmt::Display) -> SimError {
    SimError::Tls(e.to_string())
}

/// Generates the CA and the server certificate and builds a TLS 1.2+/1.3 server config on the
/// aws-lc-rs provider (named explicitly so no process-wide default provider is needed).
pub(crate) fn generate() -> Result<GeneratedTls, SimError> {
    let ca_key = KeyPair::generate().map_err(tls_err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "esus-ir simulator CA (throw-away)");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(tls_err)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate().map_err(tls_err)?;
    let mut leaf_params = CertificateParams::new(vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ])
    .map_err(tls_err)?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "esus-sim localhost");
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).map_err(tls_err)?;

    let chain = vec![
        CertificateDer::from(leaf.der().to_vec()),
        CertificateDer::from(ca_cert.der().to_vec()),
    ];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(tls_err)?;
    Ok(GeneratedTls {
        ca_pem: ca_cert.pem(),
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
    })
}

/// Writes the CA certificate (public, but written 0644 inside the caller's chosen folder).
pub(crate) fn write_ca(path: &Path, pem: &str) -> Result<(), SimError> {
    std::fs::write(path, pem).map_err(|source| SimError::Write {
        path: path.to_owned(),
        source,
    })
}

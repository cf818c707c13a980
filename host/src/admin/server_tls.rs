//! The admin API's rustls server configuration (ring provider) from PEM files.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::AdminError;
use crate::config::TlsConfig;

/// Reads the certificate chain and key named by `tls` (paths already resolved) and builds a
/// server configuration with the ring provider, TLS 1.2 and 1.3, ALPN `http/1.1`.
pub(crate) fn server_config(tls: &TlsConfig) -> Result<Arc<ServerConfig>, AdminError> {
    let cert_pem = read(&tls.cert)?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(&tls.cert, &e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_error(&tls.cert, "holds no CERTIFICATE block"));
    }
    let key_pem = read(&tls.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            pem_error(&tls.key, "holds no PRIVATE KEY block")
        }
        e => pem_error(&tls.key, &e.to_string()),
    })?;
    let tls_error = |source| AdminError::Tls {
        cert: tls.cert.clone(),
        key: tls.key.clone(),
        source,
    };
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(tls_error)?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(tls_error)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read(path: &Path) -> Result<Vec<u8>, AdminError> {
    std::fs::read(path).map_err(|source| AdminError::TlsFile {
        path: path.to_path_buf(),
        source,
    })
}

fn pem_error(path: &Path, problem: &str) -> AdminError {
    AdminError::TlsPem {
        path: path.to_path_buf(),
        problem: problem.to_owned(),
    }
}

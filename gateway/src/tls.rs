//! Serving HTTPS: the `tls` block's certificate and key, loaded at start-up (and by
//! `gwhost check`), and the handshake each client connection makes before HTTP.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::{ConfigError, TlsFiles, TlsVersion};

/// How long a client may take over its TLS handshake before its connection is closed.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The acceptor for `files`; errors name the config file and the key at fault.
pub fn acceptor(config_file: &Path, files: &TlsFiles) -> Result<TlsAcceptor, ConfigError> {
    let error = |key: &str, message: String, help: &str| ConfigError::Invalid {
        file: config_file.to_owned(),
        at: if key.is_empty() {
            files.at.clone()
        } else {
            format!("{}.{key}", files.at)
        },
        message,
        help: Some(help.to_owned()),
    };
    let shown = |path: &Path| path.display().to_string();

    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.public_key)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| {
            error(
                "public_key",
                format!(
                    "cannot read certificates from `{}`: {e}",
                    shown(&files.public_key)
                ),
                "name a PEM file holding the gateway's certificate (then its chain)",
            )
        })?;
    if chain.is_empty() {
        return Err(error(
            "public_key",
            format!("no certificate in `{}`", shown(&files.public_key)),
            "name a PEM file holding the gateway's certificate (then its chain)",
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.private_key).map_err(|e| {
        // A key under a passphrase reads as no key at all: say what it is.
        let encrypted =
            std::fs::read_to_string(&files.private_key).is_ok_and(|pem| pem.contains("ENCRYPTED"));
        if encrypted {
            return error(
                "private_key",
                format!(
                    "the private key in `{}` is encrypted (it has a passphrase), which gwhost \
                     cannot use",
                    shown(&files.private_key)
                ),
                "write it out unencrypted, readable by gwhost only: `openssl pkey -in KEY -out \
                 KEY.plain`, then name that file",
            );
        }
        error(
            "private_key",
            format!(
                "cannot read a private key from `{}`: {e}",
                shown(&files.private_key)
            ),
            "name a PEM file holding the certificate's private key (PKCS#8, PKCS#1 or SEC1)",
        )
    })?;

    let versions: &[&'static rustls::SupportedProtocolVersion] =
        match (files.min_version, files.max_version) {
            (TlsVersion::Tls12, TlsVersion::Tls12) => &[&rustls::version::TLS12],
            (TlsVersion::Tls13, _) => &[&rustls::version::TLS13],
            (TlsVersion::Tls12, TlsVersion::Tls13) => {
                &[&rustls::version::TLS13, &rustls::version::TLS12]
            }
        };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| error("", e.to_string(), "allow TLS 1.2 or 1.3"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            error(
                "private_key",
                format!(
                    "the certificate in `{}` and the key in `{}` do not make a TLS identity: {e}",
                    shown(&files.public_key),
                    shown(&files.private_key)
                ),
                "`private_key` must be the key of the first certificate in `public_key`",
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

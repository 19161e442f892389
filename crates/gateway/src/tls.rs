//! rustls configurations built from the validated config.
//!
//! Owns: the crypto provider policy (ring; TLS 1.3, and TLS 1.2 with ECDHE and AEAD suites only),
//! reading certificates, keys and CRLs from PEM (or DER for CRLs) files, the gateway's
//! [`server_config`] with **mandatory** client certificates checked against `gateway.client_ca`
//! and the CRLs of `gateway.crl`, and the [`client_config`] for calling one participant with the
//! gateway's client certificate. The `*_from_files` variants build the same shapes from explicit
//! paths, for participants' test servers and test clients.
//!
//! Both directions verify certificates with the wrapping verifiers of [`crate::x509_policy`]
//! (rustls-webpki, then keyUsage on the built path), and a CA bundle is refused unless every
//! certificate in it is a CA that may sign certificates. It must not decide who a verified
//! client is (that is [`siirto_core::identity`]) and opens no sockets. Revocation: when CRLs are
//! configured, every certificate in a client's chain must be covered by one (an unknown
//! revocation status is refused); each CRL is verified against its issuer in `client_ca` when
//! loaded, and a CRL past its nextUpdate refuses or is tolerated per `gateway.crl_stale`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedCipherSuite};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::config::Config;
use crate::x509_policy::{ClientPolicyVerifier, CrlSet, ServerPolicyVerifier};
use siirto_core::clock::{Clock, SystemClock};
use siirto_core::config::CrlStale;
use siirto_core::identity::Endpoint;

/// The only application protocol spoken: HTTP/1.1.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Why a TLS configuration could not be built. Every variant names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: no PEM {what} found", path.display())]
    Missing { path: PathBuf, what: &'static str },
    #[error("{}: not valid PEM {what}: {reason}", path.display())]
    Pem {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error("{}: CRL not usable: {reason}", path.display())]
    Crl { path: PathBuf, reason: String },
    #[error("{}: CA certificate not usable as a trust anchor: {reason}", path.display())]
    TrustAnchor { path: PathBuf, reason: String },
    #[error("certificate verifier for {}: {reason}", path.display())]
    Verifier { path: PathBuf, reason: String },
    #[error("certificate {} with key {}: {reason}", cert.display(), key.display())]
    CertifiedKey {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("participant \"{0}\" has no endpoint (it is not a source or destination)")]
    NoEndpoint(String),
    #[error("\"{0}\" is not a valid server name")]
    ServerName(String),
    #[error("TLS protocol versions: {0}")]
    Versions(String),
}

fn is_aead_suite(suite: &SupportedCipherSuite) -> bool {
    match suite {
        // Every TLS 1.3 suite is AEAD.
        SupportedCipherSuite::Tls13(_) => true,
        SupportedCipherSuite::Tls12(s) => {
            let name = format!("{:?}", s.common.suite);
            name.starts_with("TLS_ECDHE_")
                && (name.contains("_GCM_") || name.contains("CHACHA20_POLY1305"))
        }
    }
}

/// ring, restricted to TLS 1.3 suites and TLS 1.2 ECDHE + AEAD (AES-GCM, ChaCha20-Poly1305)
/// suites. (ring's provider offers no CBC suites today; the filter keeps it so.)
pub fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.retain(is_aead_suite);
    Arc::new(provider)
}

const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Every PEM `CERTIFICATE` in a file, in order (a chain: end-entity first). At least one.
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&bytes).collect();
    let certs = certs.map_err(|e| TlsError::Pem {
        path: path.to_owned(),
        what: "CERTIFICATE",
        reason: e.to_string(),
    })?;
    if certs.is_empty() {
        return Err(TlsError::Missing {
            path: path.to_owned(),
            what: "CERTIFICATE",
        });
    }
    Ok(certs)
}

/// The first private key in a PEM file: PKCS#8 (`PRIVATE KEY`), SEC1 or PKCS#1.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::Missing {
            path: path.to_owned(),
            what: "private key",
        },
        other => TlsError::Pem {
            path: path.to_owned(),
            what: "private key",
            reason: other.to_string(),
        },
    })
}

/// The CRLs of `paths` (each PEM `X509 CRL`, possibly several, or one DER CRL), each verified
/// against its issuer among the certificates of `client_ca` (see [`CrlSet::load`]).
pub fn load_crl_set(paths: &[PathBuf], client_ca: &Path) -> Result<CrlSet, TlsError> {
    if paths.is_empty() {
        return Ok(CrlSet::default());
    }
    let issuers = load_certificates(client_ca)?;
    CrlSet::load(paths, &issuers).map_err(|e| TlsError::Crl {
        path: e.path,
        reason: e.reason,
    })
}

/// A root store holding every certificate of a CA bundle file; each must be a CA certificate
/// that may sign certificates ([`crate::x509_policy::check_ca_bundle`]).
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let certs = load_certificates(path)?;
    crate::x509_policy::check_ca_bundle(&certs).map_err(|reason| TlsError::TrustAnchor {
        path: path.to_owned(),
        reason,
    })?;
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| TlsError::TrustAnchor {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// The gateway's listener: its chain and key, client certificates required and verified
/// against `gateway.client_ca` with the CRLs of `gateway.crl`, ALPN `http/1.1`. CRL freshness
/// is judged by the system clock; the running gateway uses [`server_config_with`].
pub fn server_config(cfg: &Config) -> Result<Arc<ServerConfig>, TlsError> {
    let g = &cfg.gateway;
    let crls = Arc::new(load_crl_set(&g.crl, &g.client_ca)?);
    server_config_with(cfg, crls, Arc::new(SystemClock))
}

/// [`server_config`] with CRLs already loaded and the clock that judges their freshness.
pub fn server_config_with(
    cfg: &Config,
    crls: Arc<CrlSet>,
    clock: Arc<dyn Clock>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let g = &cfg.gateway;
    build_server_config(
        &g.server_cert,
        &g.server_key,
        &g.client_ca,
        crls,
        g.crl_stale,
        clock,
    )
}

/// A server configuration with mandatory client certificates from explicit files (used by
/// participants' endpoints in tests and the demo): stale CRLs refuse, by the system clock.
pub fn server_config_from_files(
    chain: &Path,
    key: &Path,
    client_ca: &Path,
    crls: &[PathBuf],
) -> Result<Arc<ServerConfig>, TlsError> {
    let crls = Arc::new(load_crl_set(crls, client_ca)?);
    build_server_config(
        chain,
        key,
        client_ca,
        crls,
        CrlStale::Refuse,
        Arc::new(SystemClock),
    )
}

fn build_server_config(
    chain: &Path,
    key: &Path,
    client_ca: &Path,
    crls: Arc<CrlSet>,
    stale: CrlStale,
    clock: Arc<dyn Clock>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let roots = Arc::new(load_roots(client_ca)?);
    let verifier =
        ClientPolicyVerifier::new(roots, crls, stale, clock, provider.clone()).map_err(|e| {
            TlsError::Verifier {
                path: client_ca.to_owned(),
                reason: e.to_string(),
            }
        })?;
    let certs = load_certificates(chain)?;
    let private_key = load_private_key(key)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(VERSIONS)
        .map_err(|e| TlsError::Versions(e.to_string()))?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(certs, private_key)
        .map_err(|e| TlsError::CertifiedKey {
            cert: chain.to_owned(),
            key: key.to_owned(),
            reason: e.to_string(),
        })?;
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

/// For calling `endpoint`: trust only that participant's `server_ca`, present the gateway's
/// client certificate.
pub fn client_config(cfg: &Config, endpoint: &Endpoint) -> Result<Arc<ClientConfig>, TlsError> {
    let g = &cfg.gateway;
    client_config_from_files(&endpoint.server_ca, Some((&g.client_cert, &g.client_key)))
}

/// A client configuration trusting the CA bundle `server_ca`, presenting `client` (chain,
/// key) when given. `None` makes a client without a certificate (for negative tests).
pub fn client_config_from_files(
    server_ca: &Path,
    client: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let roots = Arc::new(load_roots(server_ca)?);
    let verifier =
        ServerPolicyVerifier::new(roots, provider.clone()).map_err(|e| TlsError::Verifier {
            path: server_ca.to_owned(),
            reason: e.to_string(),
        })?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(VERSIONS)
        .map_err(|e| TlsError::Versions(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut config = match client {
        Some((chain, key)) => builder
            .with_client_auth_cert(load_certificates(chain)?, load_private_key(key)?)
            .map_err(|e| TlsError::CertifiedKey {
                cert: chain.to_owned(),
                key: key.to_owned(),
                reason: e.to_string(),
            })?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

/// The name a server certificate must hold for `endpoint`: its host, a DNS name or IP literal.
pub fn server_name(endpoint: &Endpoint) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(endpoint.host.clone())
        .map_err(|_| TlsError::ServerName(endpoint.host.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use siirto_core::clock::{SeededRandom, Timestamp};
    use siirto_devkit::pki::DevCa;
    use std::time::Duration;

    #[test]
    fn provider_offers_only_aead_suites_and_both_versions() {
        let p = provider();
        assert!(!p.cipher_suites.is_empty());
        let mut tls12 = 0;
        let mut tls13 = 0;
        for s in &p.cipher_suites {
            let name = format!("{:?}", s.suite());
            assert!(
                name.contains("GCM") || name.contains("CHACHA20_POLY1305"),
                "{name} is not AEAD"
            );
            assert!(!name.contains("CBC"), "{name}");
            match s {
                SupportedCipherSuite::Tls12(_) => tls12 += 1,
                SupportedCipherSuite::Tls13(_) => tls13 += 1,
            }
        }
        assert_eq!(tls13, 3);
        assert!(
            tls12 >= 4,
            "expected the ECDHE AEAD TLS 1.2 suites, got {tls12}"
        );
    }

    fn write_pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let random = SeededRandom::new(9);
        let now = Timestamp::from_secs(1_790_000_000);
        let later = now.saturating_add(Duration::from_secs(86_400));
        let ca = DevCa::generate("CN=T", now, later, &random).expect("ca");
        let ca_files = ca.write(dir, "ca").expect("write ca");
        let leaf = ca
            .issue_server_cert("CN=s", &["localhost"], now, later, &random)
            .expect("leaf")
            .write(dir, "server")
            .expect("write leaf");
        (ca_files.cert, leaf.cert, leaf.key)
    }

    #[test]
    fn builds_server_and_client_configs_with_alpn() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ca, cert, key) = write_pki(dir.path());
        let server = server_config_from_files(&cert, &key, &ca, &[]).expect("server");
        assert_eq!(server.alpn_protocols, vec![b"http/1.1".to_vec()]);
        let client = client_config_from_files(&ca, Some((&cert, &key))).expect("client");
        assert!(client.client_auth_cert_resolver.has_certs());
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ca, cert, key) = write_pki(dir.path());
        let missing = dir.path().join("nope.pem");
        let err = server_config_from_files(&missing, &key, &ca, &[]).expect_err("missing");
        assert!(err.to_string().contains("nope.pem"), "{err}");
        // A certificate file given as the key.
        let err = server_config_from_files(&cert, &cert, &ca, &[]).expect_err("not a key");
        assert!(
            matches!(
                err,
                TlsError::Missing {
                    what: "private key",
                    ..
                }
            ),
            "{err}"
        );
        // A key given as the CA bundle.
        let err = server_config_from_files(&cert, &key, &key, &[]).expect_err("not a ca");
        assert!(
            matches!(
                err,
                TlsError::Missing {
                    what: "CERTIFICATE",
                    ..
                }
            ),
            "{err}"
        );
        // A garbage CRL.
        let bad_crl = dir.path().join("bad.crl");
        std::fs::write(&bad_crl, b"garbage").expect("write");
        let err = server_config_from_files(&cert, &key, &ca, &[bad_crl]).expect_err("crl");
        assert!(matches!(err, TlsError::Crl { .. }), "{err}");
        assert!(err.to_string().contains("bad.crl"));
    }

    #[test]
    fn mismatched_key_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ca, cert, _key) = write_pki(dir.path());
        let other = tempfile::tempdir().expect("tempdir");
        let (_, _, other_key) = write_pki(other.path());
        let err = server_config_from_files(&cert, &other_key, &ca, &[]).expect_err("mismatch");
        assert!(matches!(err, TlsError::CertifiedKey { .. }), "{err}");
    }
}

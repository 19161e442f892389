//! Certificate policy the gateway adds to rustls-webpki's path validation.
//!
//! rustls-webpki builds and verifies certificate paths (signatures, validity, basicConstraints
//! of intermediates, extended key usage, name constraints, revocation) but ignores keyUsage and
//! checks nothing of a trust anchor beyond its name and key. This module owns what the gateway
//! requires on top:
//!
//! - **keyUsage on the path webpki built** ([`check_key_usage`]): when present, the end-entity
//!   certificate's must assert digitalSignature and must not assert keyCertSign, and every CA
//!   certificate between it and the trust anchor must assert keyCertSign.
//! - **CA bundles** (`gateway.client_ca`, every participant's `server_ca`;
//!   [`check_ca_bundle`]): every certificate is a CA (basicConstraints present, critical, cA
//!   TRUE) with a keyUsage asserting keyCertSign. Trust anchors are checked here, at load,
//!   because webpki never looks at them.
//! - **CRLs** ([`CrlSet`]): each CRL of `gateway.crl` is verified at load against its issuer in
//!   `client_ca` (found by name, signature checked), must carry a nextUpdate, and is the only
//!   one of its issuer; at a handshake a CRL past its nextUpdate (by the injected clock) refuses
//!   the certificates it covers, or is tolerated with a warning ([`CrlStale`]).
//! - **The wrapping verifiers** [`ClientPolicyVerifier`] (the API listener) and
//!   [`ServerPolicyVerifier`] (outbound calls): they delegate to rustls' webpki verifiers, then
//!   let webpki build the path again with the same inputs and this policy as its path check, so
//!   the policy applies to the chain actually built (webpki tries another path when one fails).
//!
//! It decides nothing about who a client is (that is [`siirto_core::identity`]). IO: [`CrlSet::load`]
//! reads the CRL files; everything else works on bytes.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, ServerName, SignatureVerificationAlgorithm,
    UnixTime,
};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    SignatureScheme,
};
use x509_parser::certificate::X509Certificate;

use siirto_core::clock::{Clock, Timestamp};
use siirto_core::config::CrlStale;

/// How often, at most, a tolerated stale CRL is logged.
const STALE_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// A certificate path webpki accepts and the gateway does not. [`Violation::code`] is the
/// reason of the audited `tls.handshake_refused`.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("the end-entity certificate ({subject}) has a keyUsage without digitalSignature")]
    EndEntityWithoutDigitalSignature { subject: String },
    #[error(
        "the end-entity certificate ({subject}) asserts keyCertSign in its keyUsage, which only a CA certificate may"
    )]
    EndEntityWithKeyCertSign { subject: String },
    #[error("the CA certificate ({subject}) in the chain has a keyUsage without keyCertSign")]
    CaWithoutKeyCertSign { subject: String },
    #[error("a certificate of the chain cannot be read: {0}")]
    Unparsable(String),
    #[error("the CRL of {issuer} is stale: its nextUpdate {next_update} has passed (now {now})")]
    CrlStale {
        issuer: String,
        next_update: Timestamp,
        now: Timestamp,
    },
}

// The text of a refused handshake ("invalid peer certificate: Other(OtherError(..))") shows
// the Debug form; make it the sentence.
impl std::fmt::Debug for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl Violation {
    /// A stable short code, for audit entries and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Violation::EndEntityWithoutDigitalSignature { .. }
            | Violation::EndEntityWithKeyCertSign { .. }
            | Violation::CaWithoutKeyCertSign { .. } => "key_usage",
            Violation::Unparsable(_) => "bad_certificate",
            Violation::CrlStale { .. } => "crl_stale",
        }
    }
}

impl From<Violation> for rustls::Error {
    fn from(v: Violation) -> Self {
        match v {
            // rustls' own variant: the peer gets the alert other TLS stacks send for it.
            Violation::CrlStale {
                next_update, now, ..
            } => CertificateError::ExpiredRevocationListContext {
                time: unix_time(now),
                next_update: unix_time(next_update),
            }
            .into(),
            other => CertificateError::Other(OtherError(Arc::new(other))).into(),
        }
    }
}

fn unix_time(t: Timestamp) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(t.secs()).unwrap_or(0)))
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, cert)| cert)
        .map_err(|e| e.to_string())
}

/// The keyUsage rules on a path: `end_entity`, then the CA certificates above it up to (not
/// including) the trust anchor. A certificate without a keyUsage extension passes.
pub fn check_key_usage(end_entity: &[u8], cas: &[&[u8]]) -> Result<(), Violation> {
    let leaf = parse(end_entity).map_err(Violation::Unparsable)?;
    let usage = leaf
        .key_usage()
        .map_err(|e| Violation::Unparsable(format!("{}: keyUsage: {e}", leaf.subject())))?;
    if let Some(ku) = usage {
        if !ku.value.digital_signature() {
            return Err(Violation::EndEntityWithoutDigitalSignature {
                subject: leaf.subject().to_string(),
            });
        }
        if ku.value.key_cert_sign() {
            return Err(Violation::EndEntityWithKeyCertSign {
                subject: leaf.subject().to_string(),
            });
        }
    }
    for der in cas {
        let ca = parse(der).map_err(Violation::Unparsable)?;
        let usage = ca
            .key_usage()
            .map_err(|e| Violation::Unparsable(format!("{}: keyUsage: {e}", ca.subject())))?;
        if usage.is_some_and(|ku| !ku.value.key_cert_sign()) {
            return Err(Violation::CaWithoutKeyCertSign {
                subject: ca.subject().to_string(),
            });
        }
    }
    Ok(())
}

/// Why one certificate of a CA bundle cannot be a trust anchor, if it cannot.
fn ca_certificate_problem(cert: &X509Certificate<'_>) -> Option<String> {
    let constraints = match cert.basic_constraints() {
        Err(e) => return Some(format!("basicConstraints cannot be read: {e}")),
        Ok(None) => {
            return Some("has no basicConstraints, so it is not a CA certificate".to_owned());
        }
        Ok(Some(bc)) => bc,
    };
    if !constraints.value.ca {
        return Some("is not a CA certificate (basicConstraints cA is not TRUE)".to_owned());
    }
    if !constraints.critical {
        return Some(
            "marks basicConstraints non-critical; a CA certificate must mark it critical \
             (RFC 5280 4.2.1.9)"
                .to_owned(),
        );
    }
    match cert.key_usage() {
        Err(e) => Some(format!("keyUsage cannot be read: {e}")),
        Ok(None) => Some(
            "has no keyUsage; a CA certificate must have one asserting keyCertSign \
             (RFC 5280 4.2.1.3)"
                .to_owned(),
        ),
        Ok(Some(ku)) if !ku.value.key_cert_sign() => {
            Some("has a keyUsage without keyCertSign, so it may not sign certificates".to_owned())
        }
        Ok(Some(_)) => None,
    }
}

/// Checks that every certificate of a CA bundle can be a trust anchor (see the module
/// documentation). The error names the certificate (position in the file and subject).
pub fn check_ca_bundle(certs: &[CertificateDer<'_>]) -> Result<(), String> {
    for (i, der) in certs.iter().enumerate() {
        let cert = parse(der).map_err(|e| format!("certificate {} does not parse: {e}", i + 1))?;
        if let Some(problem) = ca_certificate_problem(&cert) {
            return Err(format!(
                "certificate {} ({}) {problem}",
                i + 1,
                cert.subject()
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// CRLs

/// A CRL file that cannot be used; `index` is its position in `gateway.crl`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct CrlError {
    pub index: usize,
    pub path: PathBuf,
    pub reason: String,
}

struct LoadedCrl {
    path: PathBuf,
    /// The issuer's name as x509-parser prints it (`CN=..., O=..., C=FI`).
    issuer: String,
    next_update: Timestamp,
    der: CertificateRevocationListDer<'static>,
    webpki: webpki::CertRevocationList<'static>,
    /// When a tolerated staleness was last logged (milliseconds; `i64::MIN`: never).
    last_warned: AtomicI64,
}

/// CRLs from a file's bytes: PEM `X509 CRL` sections, or, when the file is not PEM, one DER CRL.
pub fn crls_from_bytes(bytes: &[u8]) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    let looks_pem = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .is_some_and(|i| bytes[i..].starts_with(b"-----BEGIN"));
    if !looks_pem {
        if bytes.first() == Some(&0x30) {
            return Ok(vec![CertificateRevocationListDer::from(bytes.to_vec())]);
        }
        return Err("neither PEM nor DER".to_owned());
    }
    let crls: Result<Vec<CertificateRevocationListDer<'static>>, _> =
        CertificateRevocationListDer::pem_slice_iter(bytes).collect();
    let crls = crls.map_err(|e| format!("not PEM: {e}"))?;
    if crls.is_empty() {
        return Err("no PEM X509 CRL found".to_owned());
    }
    Ok(crls)
}

/// The CRLs of `gateway.crl`, each verified against its issuer at load.
#[derive(Default)]
pub struct CrlSet {
    crls: Vec<LoadedCrl>,
}

impl std::fmt::Debug for CrlSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.crls.iter().map(|c| (&c.issuer, c.next_update)))
            .finish()
    }
}

/// A CRL's issuer and nextUpdate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlStatus {
    pub issuer: String,
    pub next_update: Timestamp,
    pub path: PathBuf,
}

impl CrlSet {
    /// Reads the CRL files (PEM `X509 CRL`, possibly several, or one DER CRL) and verifies each
    /// CRL against `issuers` (the certificates of `client_ca`): its issuer must be one of them
    /// (by name), its signature must verify with that certificate's key, that certificate's
    /// keyUsage (if any) must assert cRLSign, it must have a nextUpdate, and no other CRL may
    /// have the same issuer (webpki would consult only the first).
    pub fn load(paths: &[PathBuf], issuers: &[CertificateDer<'_>]) -> Result<CrlSet, CrlError> {
        let issuers: Vec<X509Certificate<'_>> =
            issuers.iter().filter_map(|der| parse(der).ok()).collect();
        let mut set = CrlSet::default();
        for (index, path) in paths.iter().enumerate() {
            let fail = |reason: String| CrlError {
                index,
                path: path.clone(),
                reason,
            };
            let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
            let ders = crls_from_bytes(&bytes).map_err(fail)?;
            let several = ders.len() > 1;
            for (n, der) in ders.into_iter().enumerate() {
                let label = if several {
                    format!("CRL {}: ", n + 1)
                } else {
                    String::new()
                };
                let loaded = load_one(path, der, &issuers)
                    .map_err(|reason| fail(format!("{label}{reason}")))?;
                if let Some(first) = set.crls.iter().find(|c| c.issuer == loaded.issuer) {
                    return Err(fail(format!(
                        "{label}a second CRL of {} (the first is in {}); configure one CRL per \
                         CA, as only the first would be consulted",
                        loaded.issuer,
                        first.path.display()
                    )));
                }
                set.crls.push(loaded);
            }
        }
        Ok(set)
    }

    pub fn is_empty(&self) -> bool {
        self.crls.is_empty()
    }

    /// The CRLs as rustls takes them.
    pub fn ders(&self) -> Vec<CertificateRevocationListDer<'static>> {
        self.crls.iter().map(|c| c.der.clone()).collect()
    }

    /// Every CRL's issuer and nextUpdate, in configuration order.
    pub fn statuses(&self) -> Vec<CrlStatus> {
        self.crls.iter().map(LoadedCrl::status).collect()
    }

    /// The CRLs whose nextUpdate is before `now`.
    pub fn stale(&self, now: Timestamp) -> Vec<CrlStatus> {
        self.crls
            .iter()
            .filter(|c| c.is_stale(now))
            .map(LoadedCrl::status)
            .collect()
    }

    fn webpki_crls(&self) -> Vec<&webpki::CertRevocationList<'static>> {
        self.crls.iter().map(|c| &c.webpki).collect()
    }

    /// The CRL of the CA whose name is `issuer` (webpki's encoding).
    fn of_issuer(&self, issuer: &[u8]) -> Option<&LoadedCrl> {
        self.crls.iter().find(|c| c.webpki.issuer() == issuer)
    }
}

impl LoadedCrl {
    fn is_stale(&self, now: Timestamp) -> bool {
        now > self.next_update
    }

    fn status(&self) -> CrlStatus {
        CrlStatus {
            issuer: self.issuer.clone(),
            next_update: self.next_update,
            path: self.path.clone(),
        }
    }

    /// Logs a tolerated staleness, at most once per [`STALE_WARNING_INTERVAL`].
    fn warn_stale(&self, now: Timestamp) {
        let last = self.last_warned.load(Ordering::Relaxed);
        let due = last == i64::MIN
            || now.millis().saturating_sub(last)
                >= i64::try_from(STALE_WARNING_INTERVAL.as_millis()).unwrap_or(i64::MAX);
        if due
            && self
                .last_warned
                .compare_exchange(last, now.millis(), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                issuer = %self.issuer,
                next_update = %self.next_update,
                file = %self.path.display(),
                "accepting certificates under a CRL past its nextUpdate (gateway.crl_stale = \"warn\")"
            );
        }
    }
}

fn load_one(
    path: &Path,
    der: CertificateRevocationListDer<'static>,
    issuers: &[X509Certificate<'_>],
) -> Result<LoadedCrl, String> {
    let (_, crl) = x509_parser::parse_x509_crl(&der).map_err(|e| format!("does not parse: {e}"))?;
    let issuer = crl.issuer().to_string();
    let next_update = crl.next_update().ok_or_else(|| {
        format!("the CRL of {issuer} has no nextUpdate, so its freshness cannot be judged")
    })?;
    let candidates: Vec<&X509Certificate<'_>> = issuers
        .iter()
        .filter(|c| c.subject().as_raw() == crl.issuer().as_raw())
        .collect();
    if candidates.is_empty() {
        return Err(format!(
            "the CRL is issued by {issuer}, which is not a certificate of client_ca (put that \
             CA's certificate in client_ca, or leave its CRL out)"
        ));
    }
    let Some(signer) = candidates
        .iter()
        .find(|c| crl.verify_signature(c.public_key()).is_ok())
    else {
        return Err(format!(
            "the CRL names {issuer} as its issuer but is not signed by that certificate's key \
             in client_ca (the signature does not verify)"
        ));
    };
    if let Ok(Some(ku)) = signer.key_usage()
        && !ku.value.crl_sign()
    {
        return Err(format!(
            "the CRL's issuer {issuer} may not sign CRLs (its keyUsage lacks cRLSign)"
        ));
    }
    let webpki = webpki::OwnedCertRevocationList::from_der(&der)
        .map_err(|e| format!("the CRL of {issuer} is not usable: {e}"))?;
    drop(crl);
    Ok(LoadedCrl {
        path: path.to_owned(),
        issuer,
        next_update: Timestamp::from_secs(next_update.timestamp()),
        der,
        webpki: webpki.into(),
        last_warned: AtomicI64::new(i64::MIN),
    })
}

// ---------------------------------------------------------------------------------------------
// The verifiers

/// Revocation as the listener applies it: the CRLs, what a stale one does, and the clock that
/// decides staleness.
struct Revocation {
    crls: Arc<CrlSet>,
    stale: CrlStale,
    clock: Arc<dyn Clock>,
}

/// Builds a path with webpki once more, with this module's policy as the path check.
struct PathPolicy {
    roots: Arc<RootCertStore>,
    algorithms: &'static [&'static dyn SignatureVerificationAlgorithm],
    revocation: Option<Revocation>,
}

impl PathPolicy {
    fn new(
        roots: Arc<RootCertStore>,
        provider: &CryptoProvider,
        revocation: Option<Revocation>,
    ) -> PathPolicy {
        PathPolicy {
            roots,
            algorithms: provider.signature_verification_algorithms.all,
            revocation,
        }
    }

    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        usage: webpki::KeyUsage,
    ) -> Result<(), rustls::Error> {
        let leaf = webpki::EndEntityCert::try_from(end_entity).map_err(unexpected)?;
        let crls = self
            .revocation
            .as_ref()
            .map(|r| r.crls.webpki_crls())
            .unwrap_or_default();
        // The same revocation options as rustls' client verifier (its defaults): the whole
        // chain, an unknown status refused, CRL expiry not enforced by webpki (staleness is
        // judged below, by the injected clock).
        let options = match webpki::RevocationOptionsBuilder::new(&crls) {
            Ok(builder) => Some(
                builder
                    .with_depth(webpki::RevocationCheckDepth::Chain)
                    .with_status_policy(webpki::UnknownStatusPolicy::Deny)
                    .with_expiration_policy(webpki::ExpirationPolicy::Ignore)
                    .build(),
            ),
            // No CRLs configured.
            Err(webpki::CrlsRequired { .. }) => None,
        };
        let clock_now = self.revocation.as_ref().map(|r| r.clock.now());
        let refused: RefCell<Option<Violation>> = RefCell::new(None);
        let tolerated: RefCell<Vec<&LoadedCrl>> = RefCell::new(Vec::new());
        let on_path = |path: &webpki::VerifiedPath<'_>| -> Result<(), webpki::Error> {
            tolerated.borrow_mut().clear();
            match self.path_allowed(path, clock_now, &mut tolerated.borrow_mut()) {
                Ok(()) => Ok(()),
                Err(v) => {
                    *refused.borrow_mut() = Some(v);
                    // Any error makes webpki try another path; which one is irrelevant, the
                    // violation recorded above is what is reported.
                    Err(webpki::Error::UnknownIssuer)
                }
            }
        };
        let verified = leaf.verify_for_usage(
            self.algorithms,
            &self.roots.roots,
            intermediates,
            now,
            usage,
            options,
            Some(&on_path),
        );
        match verified {
            Ok(_) => {
                if let Some(now) = clock_now {
                    for crl in tolerated.borrow().iter() {
                        crl.warn_stale(now);
                    }
                }
                Ok(())
            }
            Err(e) => Err(match refused.into_inner() {
                Some(v) => v.into(),
                None => unexpected(e),
            }),
        }
    }

    fn path_allowed<'c>(
        &'c self,
        path: &webpki::VerifiedPath<'_>,
        now: Option<Timestamp>,
        tolerated: &mut Vec<&'c LoadedCrl>,
    ) -> Result<(), Violation> {
        let leaf = path.end_entity();
        let cas: Vec<&webpki::Cert<'_>> = path.intermediate_certificates().collect();
        let ca_ders: Vec<CertificateDer<'_>> = cas.iter().map(|c| c.der()).collect();
        let ca_bytes: Vec<&[u8]> = ca_ders.iter().map(|d| d.as_ref()).collect();
        check_key_usage(leaf.der().as_ref(), &ca_bytes)?;
        let (Some(revocation), Some(now)) = (&self.revocation, now) else {
            return Ok(());
        };
        let issuers = std::iter::once(leaf.issuer()).chain(cas.iter().map(|c| c.issuer()));
        for issuer in issuers {
            let Some(crl) = revocation.crls.of_issuer(issuer) else {
                continue;
            };
            if !crl.is_stale(now) {
                continue;
            }
            match revocation.stale {
                CrlStale::Refuse => {
                    return Err(Violation::CrlStale {
                        issuer: crl.issuer.clone(),
                        next_update: crl.next_update,
                        now,
                    });
                }
                CrlStale::Warn => tolerated.push(crl),
            }
        }
        Ok(())
    }
}

/// webpki refused a path rustls' verifier had accepted with the same inputs: not expected, but
/// refused all the same.
fn unexpected(e: webpki::Error) -> rustls::Error {
    CertificateError::Other(OtherError(Arc::new(e))).into()
}

/// The methods of a certificate verifier that check handshake signatures: the wrapping
/// verifiers hand them to the rustls verifier they wrap (`self.inner`) unchanged.
macro_rules! delegate_handshake_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.inner.supported_verify_schemes()
        }
    };
}

/// The API listener's client certificate verifier: rustls' webpki verifier (with the CRLs),
/// then keyUsage and CRL freshness on the path webpki builds.
pub struct ClientPolicyVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    policy: PathPolicy,
}

impl std::fmt::Debug for ClientPolicyVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientPolicyVerifier")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl ClientPolicyVerifier {
    /// Mandatory client certificates chaining to `roots`, checked against `crls`, with `stale`
    /// deciding what a CRL past its nextUpdate (by `clock`) does.
    pub fn new(
        roots: Arc<RootCertStore>,
        crls: Arc<CrlSet>,
        stale: CrlStale,
        clock: Arc<dyn Clock>,
        provider: Arc<CryptoProvider>,
    ) -> Result<ClientPolicyVerifier, rustls::server::VerifierBuilderError> {
        let inner = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .with_crls(crls.ders())
            .build()?;
        let revocation = Revocation { crls, stale, clock };
        Ok(ClientPolicyVerifier {
            inner,
            policy: PathPolicy::new(roots, &provider, Some(revocation)),
        })
    }
}

impl ClientCertVerifier for ClientPolicyVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        self.policy.check(
            end_entity,
            intermediates,
            now,
            webpki::KeyUsage::client_auth(),
        )?;
        Ok(verified)
    }

    delegate_handshake_signatures!();
}

/// The verifier of a source's or destination's server certificate: rustls' webpki verifier
/// (chain to that participant's `server_ca`, the endpoint's name), then keyUsage on the path.
pub struct ServerPolicyVerifier {
    inner: Arc<WebPkiServerVerifier>,
    policy: PathPolicy,
}

impl std::fmt::Debug for ServerPolicyVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerPolicyVerifier")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl ServerPolicyVerifier {
    pub fn new(
        roots: Arc<RootCertStore>,
        provider: Arc<CryptoProvider>,
    ) -> Result<ServerPolicyVerifier, rustls::client::VerifierBuilderError> {
        let inner =
            WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone()).build()?;
        Ok(ServerPolicyVerifier {
            inner,
            policy: PathPolicy::new(roots, &provider, None),
        })
    }
}

impl ServerCertVerifier for ServerPolicyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        self.policy.check(
            end_entity,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
        )?;
        Ok(verified)
    }

    delegate_handshake_signatures!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use KeyUsagePurpose::{CrlSign, DigitalSignature, KeyCertSign, KeyEncipherment};
    use rcgen::{
        BasicConstraints, CertificateParams, CustomExtension, GeneralSubtree, IsCa, KeyPair,
        KeyUsagePurpose, NameConstraints,
    };
    use siirto_core::clock::{ManualClock, SeededRandom};
    use siirto_devkit::pki::{DevCa, IssuedCert, Usage};

    const NOW: Timestamp = Timestamp::from_secs(1_790_000_000);

    fn later(days: u64) -> Timestamp {
        NOW.saturating_add(Duration::from_secs(days * 86_400))
    }

    fn random() -> SeededRandom {
        SeededRandom::new(17)
    }

    fn root(adjust: impl FnOnce(&mut CertificateParams)) -> DevCa {
        DevCa::generate_adjusted("CN=Root,C=FI", NOW, later(30), &random(), |p| {
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            adjust(p);
        })
        .expect("root")
    }

    fn leaf(issuer: &DevCa, adjust: impl FnOnce(&mut CertificateParams)) -> IssuedCert {
        issuer
            .issue_adjusted(
                "CN=leaf,C=FI",
                &[],
                Usage::Client,
                (NOW, later(1)),
                &random(),
                adjust,
            )
            .expect("leaf")
    }

    /// basicConstraints written by hand, `cA` TRUE, with the given criticality.
    fn basic_constraints_extension(critical: bool) -> CustomExtension {
        let mut ext =
            CustomExtension::from_oid_content(&[2, 5, 29, 19], vec![0x30, 0x03, 0x01, 0x01, 0xff]);
        ext.set_criticality(critical);
        ext
    }

    fn at_now() -> UnixTime {
        unix_time(NOW)
    }

    fn roots_of(ca: &DevCa) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(ca.cert_der().clone()).expect("anchor");
        Arc::new(roots)
    }

    /// What rustls' own client verifier (rustls-webpki) says of `leaf` under `anchor`.
    fn webpki_verdict(
        anchor: &DevCa,
        leaf: &IssuedCert,
        intermediates: &[CertificateDer<'static>],
    ) -> Result<(), rustls::Error> {
        WebPkiClientVerifier::builder_with_provider(roots_of(anchor), crate::tls::provider())
            .build()
            .expect("verifier")
            .verify_client_cert(&leaf.der, intermediates, at_now())
            .map(|_| ())
    }

    /// What the gateway's client verifier says (no CRLs).
    fn gateway_verdict(
        anchor: &DevCa,
        leaf: &IssuedCert,
        intermediates: &[CertificateDer<'static>],
    ) -> Result<(), rustls::Error> {
        ClientPolicyVerifier::new(
            roots_of(anchor),
            Arc::new(CrlSet::default()),
            CrlStale::Refuse,
            Arc::new(ManualClock::new(NOW)),
            crate::tls::provider(),
        )
        .expect("verifier")
        .verify_client_cert(&leaf.der, intermediates, at_now())
        .map(|_| ())
    }

    /// Whether `der` has the extension `oid` (dotted), and if so whether it is critical: the
    /// cases below must be built as they claim.
    fn extension(der: &[u8], oid: &str) -> Option<bool> {
        let cert = parse(der).expect("parse");
        cert.extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == oid)
            .map(|e| e.critical)
    }

    const BASIC_CONSTRAINTS: &str = "2.5.29.19";
    const SKI: &str = "2.5.29.14";
    const AKI: &str = "2.5.29.35";
    const NAME_CONSTRAINTS: &str = "2.5.29.30";

    fn violation_of(e: &rustls::Error) -> Option<&Violation> {
        match e {
            rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
                other.0.downcast_ref::<Violation>()
            }
            _ => None,
        }
    }

    #[test]
    fn key_usage_rules_on_a_path() {
        let ca = root(|_| {});
        let cases: [(&[KeyUsagePurpose], Option<&str>); 6] = [
            (&[DigitalSignature], None),
            (&[DigitalSignature, KeyEncipherment], None),
            (&[], None),
            (&[KeyCertSign], Some("without digitalSignature")),
            (&[KeyEncipherment], Some("without digitalSignature")),
            (
                &[DigitalSignature, KeyCertSign],
                Some("asserts keyCertSign"),
            ),
        ];
        for (usages, refused) in cases {
            let cert = leaf(&ca, |p| p.key_usages = usages.to_vec());
            let verdict = check_key_usage(&cert.der, &[]);
            match refused {
                None => assert_eq!(verdict, Ok(()), "{usages:?}"),
                Some(text) => {
                    let v = verdict.expect_err("refused");
                    assert_eq!(v.code(), "key_usage");
                    assert!(v.to_string().contains(text), "{usages:?}: {v}");
                    assert!(v.to_string().contains("CN=leaf"), "{v}");
                }
            }
        }
        let good = leaf(&ca, |_| {});
        for (usages, ok) in [
            (vec![KeyCertSign, CrlSign], true),
            (vec![], true),
            (vec![DigitalSignature, CrlSign], false),
        ] {
            let intermediate = root(|p| p.key_usages = usages.clone());
            let verdict = check_key_usage(&good.der, &[intermediate.cert_der().as_ref()]);
            assert_eq!(verdict.is_ok(), ok, "{usages:?}: {verdict:?}");
        }
        assert_eq!(
            check_key_usage(b"junk", &[]).map_err(|v| v.code()),
            Err("bad_certificate")
        );
    }

    #[test]
    fn ca_bundles_take_only_certificates_that_may_sign_certificates() {
        let good = root(|_| {});
        let leaf = leaf(&good, |_| {});
        let ok = |ca: &DevCa| check_ca_bundle(std::slice::from_ref(ca.cert_der()));
        assert_eq!(ok(&good), Ok(()));
        for (ca, text) in [
            (root(|p| p.is_ca = IsCa::NoCa), "has no basicConstraints"),
            (
                root(|p| {
                    p.is_ca = IsCa::NoCa;
                    p.custom_extensions = vec![basic_constraints_extension(false)];
                }),
                "non-critical",
            ),
            (
                root(|p| p.is_ca = IsCa::ExplicitNoCa),
                "is not a CA certificate",
            ),
            (root(|p| p.key_usages = vec![]), "has no keyUsage"),
            (
                root(|p| p.key_usages = vec![DigitalSignature, CrlSign]),
                "without keyCertSign",
            ),
        ] {
            let err = ok(&ca).expect_err(text);
            assert!(
                err.contains(text) && err.contains("certificate 1 (CN=Root"),
                "{err}"
            );
        }
        // The position of the offending certificate is named.
        let err = check_ca_bundle(&[good.cert_der().clone(), leaf.der.clone()]).expect_err("leaf");
        assert!(err.starts_with("certificate 2 (CN=leaf"), "{err}");
    }

    /// x509-limbo cases that RFC 5280 refuses and rustls-webpki (the version in Cargo.lock)
    /// accepts, and what the gateway does with each. The README's table states these; if webpki
    /// changes its mind, this test says so.
    #[test]
    fn what_webpki_accepts_that_rfc_5280_refuses_and_what_the_gateway_does() {
        let normal_root = root(|_| {});
        let normal_leaf = leaf(&normal_root, |_| {});

        // Trust anchors: webpki reads only their name, key and name constraints. The gateway
        // refuses such a bundle at load.
        let anchors = [
            (
                "rfc5280::root-missing-basic-constraints",
                root(|p| p.is_ca = IsCa::NoCa),
            ),
            (
                "rfc5280::root-non-critical-basic-constraints",
                root(|p| {
                    p.is_ca = IsCa::NoCa;
                    p.custom_extensions = vec![basic_constraints_extension(false)];
                }),
            ),
            (
                "rfc5280::root-inconsistent-ca-extensions",
                root(|p| p.key_usages = vec![DigitalSignature, CrlSign]),
            ),
        ];
        assert_eq!(extension(anchors[0].1.cert_der(), BASIC_CONSTRAINTS), None);
        assert_eq!(
            extension(anchors[1].1.cert_der(), BASIC_CONSTRAINTS),
            Some(false)
        );
        for (case, anchor) in anchors {
            let leaf = leaf(&anchor, |_| {});
            assert_eq!(webpki_verdict(&anchor, &leaf, &[]), Ok(()), "{case}");
            assert!(
                check_ca_bundle(std::slice::from_ref(anchor.cert_der())).is_err(),
                "{case}"
            );
        }

        // keyUsage on the path: webpki ignores it; the gateway's verifier refuses.
        let ica_without_cert_sign = normal_root
            .issue_ca("CN=ICA,C=FI", NOW, later(30), &random(), |p| {
                p.key_usages = vec![DigitalSignature, CrlSign];
            })
            .expect("ica");
        let under_it = leaf(&ica_without_cert_sign, |_| {});
        let chain = [ica_without_cert_sign.cert_der().clone()];
        let leaf_cert_sign = leaf(&normal_root, |p| {
            p.key_usages = vec![DigitalSignature, KeyCertSign];
        });
        for (case, leaf, intermediates) in [
            ("rfc5280::ica-ku-keycertsign", &under_it, &chain[..]),
            ("rfc5280::leaf-ku-keycertsign", &leaf_cert_sign, &[][..]),
        ] {
            assert_eq!(
                webpki_verdict(&normal_root, leaf, intermediates),
                Ok(()),
                "{case}"
            );
            let refused = gateway_verdict(&normal_root, leaf, intermediates).expect_err(case);
            assert_eq!(
                violation_of(&refused).map(Violation::code),
                Some("key_usage")
            );
        }

        // Accepted by webpki and, knowingly, by the gateway: path building matches names and
        // verifies signatures, so missing key identifiers change nothing; webpki applies name
        // constraints only from CA certificates, so one in an end-entity certificate is inert.
        let root_without_ski = root(|p| {
            p.is_ca = IsCa::NoCa;
            p.custom_extensions = vec![basic_constraints_extension(true)];
        });
        let ica_without_ski = normal_root
            .issue_ca("CN=ICA,C=FI", NOW, later(30), &random(), |p| {
                p.is_ca = IsCa::NoCa;
                p.custom_extensions = vec![basic_constraints_extension(true)];
            })
            .expect("ica");
        let ica_without_aki = normal_root
            .issue_ca("CN=ICA,C=FI", NOW, later(30), &random(), |p| {
                p.use_authority_key_identifier_extension = false;
            })
            .expect("ica");
        let name_constraints = NameConstraints {
            permitted_subtrees: vec![GeneralSubtree::DnsName("example.com".to_owned())],
            excluded_subtrees: vec![],
        };
        // The same permitted subtree, hand-encoded, in a non-critical extension.
        let mut non_critical_nc = CustomExtension::from_oid_content(
            &[2, 5, 29, 30],
            [
                &[0x30, 0x11, 0xa0, 0x0f, 0x30, 0x0d, 0x82, 0x0b][..],
                b"example.com",
            ]
            .concat(),
        );
        non_critical_nc.set_criticality(false);
        let cases: Vec<(&str, &DevCa, IssuedCert, Vec<CertificateDer<'static>>)> = vec![
            (
                "rfc5280::ski::root-missing-ski",
                &root_without_ski,
                leaf(&root_without_ski, |_| {}),
                vec![],
            ),
            (
                "rfc5280::ski::intermediate-missing-ski",
                &normal_root,
                leaf(&ica_without_ski, |_| {}),
                vec![ica_without_ski.cert_der().clone()],
            ),
            (
                "rfc5280::aki::leaf-missing-aki",
                &normal_root,
                leaf(&normal_root, |p| {
                    p.use_authority_key_identifier_extension = false
                }),
                vec![],
            ),
            (
                "rfc5280::aki::intermediate-missing-aki",
                &normal_root,
                leaf(&ica_without_aki, |_| {}),
                vec![ica_without_aki.cert_der().clone()],
            ),
            (
                "rfc5280::nc::not-allowed-in-ee-critical",
                &normal_root,
                leaf(&normal_root, |p| {
                    p.name_constraints = Some(name_constraints)
                }),
                vec![],
            ),
            (
                "rfc5280::nc::not-allowed-in-ee-noncritical",
                &normal_root,
                leaf(&normal_root, |p| {
                    p.custom_extensions = vec![non_critical_nc]
                }),
                vec![],
            ),
        ];
        let built_as_claimed = [
            extension(root_without_ski.cert_der(), SKI).is_none(),
            extension(ica_without_ski.cert_der(), SKI).is_none(),
            extension(&cases[2].2.der, AKI).is_none(),
            extension(ica_without_aki.cert_der(), AKI).is_none(),
            extension(&cases[4].2.der, NAME_CONSTRAINTS) == Some(true),
            extension(&cases[5].2.der, NAME_CONSTRAINTS) == Some(false),
        ];
        assert_eq!(built_as_claimed, [true; 6]);
        for (case, anchor, leaf, intermediates) in &cases {
            assert_eq!(
                webpki_verdict(anchor, leaf, intermediates),
                Ok(()),
                "{case}"
            );
            assert_eq!(
                gateway_verdict(anchor, leaf, intermediates),
                Ok(()),
                "{case}"
            );
        }
        // The SKI case's anchor is otherwise a proper CA, so the bundle check lets it through.
        assert_eq!(
            check_ca_bundle(std::slice::from_ref(root_without_ski.cert_der())),
            Ok(())
        );
        assert_eq!(gateway_verdict(&normal_root, &normal_leaf, &[]), Ok(()));
    }

    fn write_crl(dir: &Path, name: &str, pem: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, pem).expect("write CRL");
        path
    }

    #[test]
    fn crls_load_against_their_issuer_and_go_stale_after_next_update() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = root(|_| {});
        let path = write_crl(
            dir.path(),
            "ok.crl",
            &ca.crl(&[], NOW, later(7), 1).expect("crl"),
        );
        let set = CrlSet::load(
            std::slice::from_ref(&path),
            std::slice::from_ref(ca.cert_der()),
        )
        .expect("loads");
        let statuses = set.statuses();
        assert_eq!(statuses.len(), 1);
        assert_eq!(statuses[0].issuer, "CN=Root, C=FI");
        assert_eq!(statuses[0].next_update, later(7));
        assert!(
            set.stale(later(7)).is_empty(),
            "stale only after nextUpdate"
        );
        assert_eq!(
            set.stale(later(7).saturating_add(Duration::from_secs(1)))
                .len(),
            1
        );

        // An issuer whose keyUsage lacks cRLSign: the same key, certified without it.
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "No CRL Sign");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyCertSign, CrlSign];
        let signer = rcgen::Issuer::new(params.clone(), &key);
        let crl = rcgen::CertificateRevocationListParams {
            this_update: time::OffsetDateTime::from_unix_timestamp(NOW.secs()).expect("time"),
            next_update: time::OffsetDateTime::from_unix_timestamp(later(7).secs()).expect("time"),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: vec![],
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        }
        .signed_by(&signer)
        .expect("crl");
        params.key_usages = vec![KeyCertSign];
        let certified = params.self_signed(&key).expect("cert");
        let path = write_crl(dir.path(), "no-crl-sign.crl", &crl.pem().expect("pem"));
        let err = CrlSet::load(std::slice::from_ref(&path), &[certified.der().clone()])
            .expect_err("issuer may not sign CRLs");
        assert!(err.reason.contains("cRLSign"), "{err}");
        assert_eq!(err.index, 0);
    }

    #[test]
    fn a_stale_crl_refuses_under_refuse_and_is_tolerated_under_warn() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = root(|_| {});
        let client = leaf(&ca, |_| {});
        let path = write_crl(
            dir.path(),
            "ca.crl",
            &ca.crl(&[], NOW, later(1), 1).expect("crl"),
        );
        let crls =
            Arc::new(CrlSet::load(&[path], std::slice::from_ref(ca.cert_der())).expect("crls"));
        let clock = Arc::new(ManualClock::new(NOW));
        let verifier = |stale| {
            ClientPolicyVerifier::new(
                roots_of(&ca),
                crls.clone(),
                stale,
                clock.clone(),
                crate::tls::provider(),
            )
            .expect("verifier")
        };
        let (refuse, warn) = (verifier(CrlStale::Refuse), verifier(CrlStale::Warn));
        for v in [&refuse, &warn] {
            assert!(v.verify_client_cert(&client.der, &[], at_now()).is_ok());
        }
        clock.set(later(2));
        let err = refuse
            .verify_client_cert(&client.der, &[], at_now())
            .expect_err("stale CRL");
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(
                    CertificateError::ExpiredRevocationListContext { .. }
                )
            ),
            "{err}"
        );
        assert!(warn.verify_client_cert(&client.der, &[], at_now()).is_ok());
    }
}

//! The validated configuration's sections, as plain data: what the gateway reads from
//! `[gateway]`, `[[issuers]]`, `[schemas]`, `[delivery]`, `[limits]`, `[audit]`, `[consent]`
//! and `[storage]`, with their defaults, and the value syntax they share (durations, sizes, key
//! files).
//!
//! Owns: the section types and their defaults, [`CrlStale`], the duration and size syntax of
//! the file ([`parse_duration`], [`format_duration`], [`parse_size`], [`format_size`]), how key
//! files are read ([`secret_key_bytes`], [`payload_key_bytes`]), and [`redact_url`]. The
//! participants (roles, identity rules, endpoints, the directory) are [`crate::identity`]'s.
//!
//! It must not: read the TOML file, look at the environment, or check that referenced files
//! exist — that is the loader's (`siirto_gateway::config`), which builds these values and
//! alone decides they are valid.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::formats::Format;

/// `[gateway]`. `Debug` hides the password of `database_url`.
#[derive(Clone)]
pub struct GatewayConfig {
    /// The `aud` every authorization must name.
    pub id: String,
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_ca: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub crl: Vec<PathBuf>,
    /// `crl_stale`: what a CRL past its nextUpdate does; default refuse.
    pub crl_stale: CrlStale,
    pub database_url: String,
    pub audit_key: PathBuf,
    pub pseudonym_key: PathBuf,
    /// `max_authorization_lifetime`, default 900 s.
    pub max_authorization_lifetime: Duration,
    /// `clock_skew`, default 60 s.
    pub clock_skew: Duration,
}

/// `[[issuers]]`: who may sign a student's authorization, and where their public keys are.
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    pub id: String,
    pub jwks: PathBuf,
}

/// `[schemas]`: where each format's XSD is. `siirto-v1` falls back to the copy built into the
/// binary when not configured.
#[derive(Debug, Clone, Default)]
pub struct SchemaPaths {
    pub siirto_v1: Option<PathBuf>,
    pub virta: Option<PathBuf>,
    pub elmo: Option<PathBuf>,
}

impl SchemaPaths {
    pub fn path(&self, format: Format) -> Option<&PathBuf> {
        match format {
            Format::SiirtoV1 => self.siirto_v1.as_ref(),
            Format::Virta => self.virta.as_ref(),
            Format::Elmo => self.elmo.as_ref(),
            // Read into typed structures: no schema file.
            Format::Koski => None,
        }
    }
}

/// `[delivery]`: retries, timeouts and concurrency for calls to sources and destinations.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Attempts per transfer step before `delivery_attempts_exhausted`; `None` (the default):
    /// no count, transient failures are retried until `max_age`.
    pub max_attempts: Option<u32>,
    /// Age after which a transfer is no longer retried (default 5 days, counted from acceptance
    /// or from an operator's retry).
    pub max_age: Duration,
    /// Transient failures in a row after which a source or destination is marked down: its
    /// transfers then wait in the store while one probe at a time looks for it (default 5).
    pub peer_down_after: u32,
    /// First retry delay cap; doubles per attempt up to `max_backoff` (defaults 1 s, 10 min).
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Largest response body accepted from a source (default 16 MiB).
    pub max_response_bytes: usize,
    /// Worker tasks claiming transfers (default 32). Each may hold one record (up to
    /// `max_response_bytes`) and its conversion in memory, within `max_in_flight_bytes`.
    pub workers: usize,
    /// The bytes of records fetched from sources held in memory at once, by every transfer
    /// and check of this instance (default 64 MiB, at least 1 MiB). A record is counted from
    /// just before its body is read until its last copy is dropped; one larger than the whole
    /// budget takes the whole budget and is worked on alone.
    pub max_in_flight_bytes: usize,
    /// Concurrent in-flight calls per destination (default 16).
    pub per_destination_concurrency: usize,
    /// Unfinished transfers above which new ones are refused with 503 (default 100 000).
    pub max_pending: u64,
    /// How long a worker's claim on a transfer lasts before another may take it (default 60 s).
    pub lease: Duration,
}

impl DeliveryConfig {
    /// The retry limits of a transfer's network steps.
    pub fn retry_policy(&self) -> crate::transfer::RetryPolicy {
        crate::transfer::RetryPolicy {
            max_attempts: self.max_attempts,
            max_age: self.max_age,
            initial_backoff: self.initial_backoff,
            max_backoff: self.max_backoff,
        }
    }

    /// When a source or destination counts as down, and how it is probed.
    pub fn health_policy(&self) -> crate::peer_health::HealthPolicy {
        crate::peer_health::HealthPolicy {
            down_after: self.peer_down_after,
            initial_backoff: self.initial_backoff,
            max_backoff: self.max_backoff,
        }
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            max_attempts: None,
            max_age: Duration::from_secs(5 * 24 * 3600),
            peer_down_after: 5,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(600),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_response_bytes: 16 * 1024 * 1024,
            workers: 32,
            max_in_flight_bytes: 64 * 1024 * 1024,
            per_destination_concurrency: 16,
            max_pending: 100_000,
            lease: Duration::from_secs(60),
        }
    }
}

/// `[limits]`: bounds on what enters the gateway.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Largest HTTP request body accepted by the API (default 64 KiB).
    pub max_request_bytes: usize,
    /// Largest request header section (default 16 KiB).
    pub max_header_bytes: usize,
    /// How long a client may take to send its request (default 10 s).
    pub request_timeout: Duration,
    /// How long a client may take to finish the TLS handshake (default 10 s).
    pub handshake_timeout: Duration,
    /// Connections in all and per address, and the reserve for authenticated addresses.
    pub connections: crate::admission::AdmissionLimits,
    /// Bounds for every XML document parsed.
    pub xml: siirto_xsd::Limits,
    /// Bounds for every JSON source document (KOSKI) read.
    pub json: crate::formats::json_in::JsonLimits,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_request_bytes: 64 * 1024,
            max_header_bytes: 16 * 1024,
            request_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            connections: crate::admission::AdmissionLimits::default(),
            xml: siirto_xsd::Limits::default(),
            json: crate::formats::json_in::JsonLimits::default(),
        }
    }
}

/// `[audit]`: checkpoint cadence, what to do when the log stops verifying, and the audit keys
/// of earlier years.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Issue a signed checkpoint after this many new entries (default 1000)...
    pub checkpoint_every: u64,
    /// ...or after this long with at least one new entry (default 60 s).
    pub checkpoint_interval: Duration,
    /// While the stored log does not verify: refuse new work (default) or serve on.
    pub on_broken: OnBroken,
    /// Public keys (PEM) of earlier audit keys: checkpoints and receipts they signed still
    /// verify after `gateway.audit_key` was replaced.
    pub previous_public_keys: Vec<PathBuf>,
    /// The previous audit key's private key (PKCS#8 PEM), kept only while rotating: every
    /// checkpoint is then signed by both keys, which ties the new key to the old chain.
    pub previous_key: Option<PathBuf>,
    /// `[[audit.witnesses]]`: the witnesses asked to cosign each checkpoint.
    pub witnesses: Vec<AuditWitness>,
    /// `witness_quorum`: how many cosignatures a checkpoint needs (default: every witness).
    pub witness_quorum: Option<u64>,
}

/// One `[[audit.witnesses]]` entry: a witness (usually another city's gateway) asked to
/// cosign this gateway's checkpoints per C2SP `tlog-witness`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditWitness {
    /// The submission prefix, `https://host[:port][/prefix]` without a trailing slash.
    pub url: String,
    pub host: String,
    pub port: u16,
    /// The witness's verifier key (`<name>+<key ID>+<base64(0x04 ‖ Ed25519 key)>`).
    pub key: String,
    /// The CA bundle its server certificate must chain to (default: `gateway.client_ca`).
    pub server_ca: PathBuf,
}

/// `[witness]`: this gateway as a witness of other gateways' audit logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WitnessConfig {
    /// `key`: the Ed25519 witness key (PKCS#8 PEM); the witness name is `<gateway.id>/witness`.
    pub key: Option<PathBuf>,
    /// `[[witness.logs]]`: the logs it witnesses.
    pub logs: Vec<WitnessedLog>,
}

/// One `[[witness.logs]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessedLog {
    /// The log's checkpoint origin (`<gateway id>/audit`).
    pub origin: String,
    /// The log's signed-note verifier key (type 0x01), named by the origin.
    pub key: String,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(60),
            on_broken: OnBroken::default(),
            previous_public_keys: Vec::new(),
            previous_key: None,
            witnesses: Vec::new(),
            witness_quorum: None,
        }
    }
}

/// `[audit] on_broken`: what the gateway does while its stored audit log does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnBroken {
    /// `/readyz` answers 503 and submissions get 503 `audit_unavailable`: nothing new happens
    /// that could not be proven afterwards.
    #[default]
    Refuse,
    /// Keep serving (the operator accepts unproven entries until the log is repaired).
    Serve,
}

impl OnBroken {
    pub const CHOICES: &'static str = "refuse, serve";

    pub fn parse(s: &str) -> Option<OnBroken> {
        match s {
            "refuse" => Some(OnBroken::Refuse),
            "serve" => Some(OnBroken::Serve),
            _ => None,
        }
    }
}

/// `[retention]`: how long what the gateway keeps is kept.
#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// Finished transfers (delivered, failed, cancelled) and their timelines are deleted this
    /// long after they ended (default 2 years).
    pub transfers: Duration,
    /// Audit entries older than this are pruned, a whole checkpointed range at a time (see
    /// `siirto_core::audit::prune`); `None` (the default) keeps the audit log whole.
    pub audit: Option<Duration>,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            transfers: Duration::from_secs(730 * 24 * 3600),
            audit: None,
        }
    }
}

/// `[checks]`: checks without transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecksConfig {
    /// How long a check waits for its source (the whole call, one attempt; no retries), after
    /// which it ends `504 source_timeout` (default 10 s).
    pub timeout: Duration,
}

impl Default for ChecksConfig {
    fn default() -> Self {
        ChecksConfig {
            timeout: Duration::from_secs(10),
        }
    }
}

/// `[consent]`: who may consent alone, and whether the consent text must be proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsentConfig {
    /// A student younger than this on the day of `iat` (Europe/Helsinki) needs a guardian's
    /// `act` for a consent-based transfer (default 15: the operator's policy; Finnish law sets
    /// no single age for consent to passing on school records).
    pub own_consent_age: u32,
    /// Whether a consent-based authorization must carry `consent_sha256` and `consent_lang`
    /// (default true).
    pub require_text_hash: bool,
    /// How long a consent request at KOSKI OmaData waits for the person's answer (default 10
    /// minutes, the lifetime of KOSKI's authorization code).
    pub request_ttl: Duration,
}

impl Default for ConsentConfig {
    fn default() -> Self {
        ConsentConfig {
            own_consent_age: 15,
            require_text_hash: true,
            request_ttl: Duration::from_secs(600),
        }
    }
}

/// `[storage]`: encryption of records waiting for delivery.
#[derive(Debug, Clone, Default)]
pub struct StorageConfig {
    /// File holding the current 256-bit payload key as 64 hex digits. When absent, the key is
    /// derived from `gateway.pseudonym_key` with HKDF-SHA256 (info `siirto payload v1`);
    /// configure a separate key to rotate it independently.
    pub payload_key: Option<PathBuf>,
    /// Older keys still accepted for decryption (rotation).
    pub payload_previous_keys: Vec<PathBuf>,
}

impl fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("id", &self.id)
            .field("listen", &self.listen)
            .field("admin_listen", &self.admin_listen)
            .field("server_cert", &self.server_cert)
            .field("server_key", &self.server_key)
            .field("client_ca", &self.client_ca)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .field("crl", &self.crl)
            .field("crl_stale", &self.crl_stale)
            .field("database_url", &redact_url(&self.database_url))
            .field("audit_key", &self.audit_key)
            .field("pseudonym_key", &self.pseudonym_key)
            .field(
                "max_authorization_lifetime",
                &self.max_authorization_lifetime,
            )
            .field("clock_skew", &self.clock_skew)
            .finish()
    }
}

/// `scheme://user:password@host/...` → `scheme://user:***@host/...`; other strings unchanged.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    let user = userinfo.split(':').next().unwrap_or("");
    if userinfo.contains(':') {
        format!("{}{}:***{}", &url[..scheme_end + 3], user, &rest[at..])
    } else {
        url.to_owned()
    }
}
/// What a stale CRL (the injected clock past its nextUpdate) does: `gateway.crl_stale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CrlStale {
    /// Refuse the certificates the CRL covers (the handshake fails; `/readyz` answers 503).
    #[default]
    Refuse,
    /// Accept them, and log a warning (at most once a minute per CRL).
    Warn,
}

impl CrlStale {
    pub const CHOICES: &'static str = "refuse, warn";

    pub fn parse(s: &str) -> Option<CrlStale> {
        match s {
            "refuse" => Some(CrlStale::Refuse),
            "warn" => Some(CrlStale::Warn),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CrlStale::Refuse => "refuse",
            CrlStale::Warn => "warn",
        }
    }
}
// ---------------------------------------------------------------------------------------------
// Durations and sizes

/// `"250ms"`, `"900s"`, `"15m"`, `"24h"`, `"7d"`, or bare digits (seconds).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if digits_end == 0 {
        return None;
    }
    let n: u64 = s[..digits_end].parse().ok()?;
    let unit_ms: u64 = match s[digits_end..].trim() {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(unit_ms).map(Duration::from_millis)
}

/// The shortest way [`parse_duration`] reads back the same value.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) || ms == 0 {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    if s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// Integer bytes, or `"64KiB"`, `"16MiB"`, `"1GiB"`, `"500KB"`, `"2MB"`, `"1GB"`, `"10B"`.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if digits_end == 0 {
        return None;
    }
    let n: u64 = s[..digits_end].parse().ok()?;
    let unit: u64 = match s[digits_end..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "kb" => 1000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(unit)
}

/// The shortest binary-unit form [`parse_size`] reads back the same value.
pub fn format_size(n: u64) -> String {
    if n == 0 {
        "0".to_owned()
    } else if n.is_multiple_of(1 << 30) {
        format!("{}GiB", n >> 30)
    } else if n.is_multiple_of(1 << 20) {
        format!("{}MiB", n >> 20)
    } else if n.is_multiple_of(1 << 10) {
        format!("{}KiB", n >> 10)
    } else {
        n.to_string()
    }
}
// ---------------------------------------------------------------------------------------------
// Key files

/// The bytes of a secret key file (`pseudonym_key`): 64 or more hex digits (surrounding
/// whitespace ignored) are decoded; anything else is taken as raw bytes. At least 32 bytes of
/// key are required; `None` otherwise.
pub fn secret_key_bytes(contents: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(contents).ok().map(str::trim);
    if let Some(t) = text
        && t.len() >= 64
        && let Some(decoded) = crate::clock::unhex(t)
    {
        return Some(decoded);
    }
    (contents.len() >= 32).then(|| contents.to_vec())
}

/// A payload key file: exactly 64 hex digits (surrounding whitespace ignored).
pub fn payload_key_bytes(contents: &[u8]) -> Option<[u8; 32]> {
    let text = std::str::from_utf8(contents).ok()?.trim();
    if text.len() != 64 {
        return None;
    }
    crate::clock::unhex(text)?.try_into().ok()
}
#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations_and_sizes_parse() {
        assert_eq!(parse_duration("900s"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("24h"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("60"), Some(Duration::from_secs(60)));
        for bad in [
            "",
            "s",
            "1.5s",
            "-1s",
            "10 parsecs",
            "99999999999999999999d",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(parse_size("64KiB"), Some(65_536));
        assert_eq!(parse_size("16MiB"), Some(16 << 20));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("500KB"), Some(500_000));
        assert_eq!(parse_size("10"), Some(10));
        for bad in ["", "KiB", "1TiB", "1.5MiB", "-1"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn durations_round_trip(ms in 0u64..10_000_000_000) {
            let d = Duration::from_millis(ms);
            prop_assert_eq!(parse_duration(&format_duration(d)), Some(d));
        }

        #[test]
        fn sizes_round_trip(n in 0u64..(1u64 << 40)) {
            prop_assert_eq!(parse_size(&format_size(n)), Some(n));
        }
    }
}

/// `[documents]`: the certificate and key delivered documents are signed with (CONTRACT.md,
/// "Signed documents"). Both keys or neither; required when a destination's format is `elmo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentsConfig {
    /// PEM certificate, written into each signature's `ds:X509Certificate`.
    pub signing_cert: Option<PathBuf>,
    /// PEM private key of `signing_cert`: RSA (at least 2048 bits) signs `rsa-sha256`, EC
    /// P-256 `ecdsa-sha256`.
    pub signing_key: Option<PathBuf>,
    /// Sign siirto-v1 documents too (when a signing key is configured).
    pub sign_siirto_v1: bool,
}

impl Default for DocumentsConfig {
    fn default() -> Self {
        DocumentsConfig {
            signing_cert: None,
            signing_key: None,
            sign_siirto_v1: true,
        }
    }
}

/// An ELMO source's `elmo_signers` (PEM certificates whose keys may sign its documents) and
/// `allow_sha1`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceSignersConfig {
    pub elmo_signers: Vec<PathBuf>,
    pub allow_sha1: bool,
}

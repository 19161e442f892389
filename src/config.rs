//! Configuration: the TOML file of CONTRACT.md, `SIIRTO__SECTION__KEY` overrides, and the
//! validated [`Config`] the rest of the gateway reads.
//!
//! Owns: the raw serde shapes, their validation into [`Config`] (every error names the key and
//! the file), and the participant [`Directory`]. It reads files only to check that they exist and
//! parse; it opens no sockets and starts nothing. Relative paths are resolved against the
//! directory holding the configuration file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::formats::Format;

/// The validated configuration. Obtained only from the loader, so every field has been checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file the configuration was read from (for error messages and reload).
    pub source: PathBuf,
    pub gateway: GatewayConfig,
    pub issuers: Vec<IssuerConfig>,
    pub directory: Directory,
    pub schemas: SchemaPaths,
    pub delivery: DeliveryConfig,
    pub limits: LimitsConfig,
    pub audit: AuditConfig,
    pub storage: StorageConfig,
}

/// `[gateway]`
#[derive(Debug, Clone)]
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

/// What a participant may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Source,
    Destination,
    Eservice,
    Operator,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Source,
        Role::Destination,
        Role::Eservice,
        Role::Operator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Destination => "destination",
            Role::Eservice => "eservice",
            Role::Operator => "operator",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// How a client certificate is matched to a participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityRule {
    /// The certificate's subject holds exactly these attributes (short type name upper-cased,
    /// e.g. `CN`, `O`, `OU`, `C`; value as written), in any order.
    Subject(Vec<(String, String)>),
    /// A `uniformResourceIdentifier` subject alternative name equal to this.
    SanUri(String),
    /// A `dNSName` subject alternative name equal to this (ASCII case-insensitive).
    SanDns(String),
    /// SHA-256 of the certificate's SubjectPublicKeyInfo (DER).
    SpkiSha256([u8; 32]),
}

/// Where the gateway reaches a source or destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https://host[:port][/prefix]`, without a trailing slash.
    pub base_url: String,
    /// Host part of `base_url` (DNS name or IP literal), the name the server certificate must hold.
    pub host: String,
    pub port: u16,
    /// The CA bundle the participant's server certificate must chain to.
    pub server_ca: PathBuf,
    /// The record format it serves or accepts.
    pub format: Format,
}

/// One `[[participants]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    pub id: String,
    pub roles: Vec<Role>,
    pub identity: IdentityRule,
    /// Present exactly when the participant is a source or a destination.
    pub endpoint: Option<Endpoint>,
}

impl Participant {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// Every known participant, with unique ids.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    participants: Vec<Participant>,
}

impl Directory {
    /// Callers other than the config loader use this only in tests; the loader checks uniqueness.
    #[allow(dead_code)]
    pub(crate) fn from_participants(participants: Vec<Participant>) -> Directory {
        Directory { participants }
    }

    pub fn get(&self, id: &str) -> Option<&Participant> {
        self.participants.iter().find(|p| p.id == id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Participant> {
        self.participants.iter()
    }
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
        }
    }
}

/// `[delivery]`: retries, timeouts and concurrency for calls to sources and destinations.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Attempts per transfer step before `delivery_attempts_exhausted` (default 12).
    pub max_attempts: u32,
    /// Age after which a transfer is no longer retried (default 24 h).
    pub max_age: Duration,
    /// First retry delay cap; doubles per attempt up to `max_backoff` (defaults 1 s, 10 min).
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Largest response body accepted from a source (default 16 MiB).
    pub max_response_bytes: usize,
    /// Worker tasks claiming transfers (default 8).
    pub workers: usize,
    /// Concurrent in-flight calls per destination (default 16).
    pub per_destination_concurrency: usize,
    /// Unfinished transfers above which new ones are refused with 503 (default 100 000).
    pub max_pending: u64,
    /// How long a worker's claim on a transfer lasts before another may take it (default 60 s).
    pub lease: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            max_attempts: 12,
            max_age: Duration::from_secs(24 * 3600),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(600),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_response_bytes: 16 * 1024 * 1024,
            workers: 8,
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
    /// Bounds for every XML document parsed.
    pub xml: crate::xml::Limits,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_request_bytes: 64 * 1024,
            max_header_bytes: 16 * 1024,
            request_timeout: Duration::from_secs(10),
            xml: crate::xml::Limits::default(),
        }
    }
}

/// `[audit]`: checkpoint cadence.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Issue a signed checkpoint after this many new entries (default 1000)...
    pub checkpoint_every: u64,
    /// ...or after this long with at least one new entry (default 60 s).
    pub checkpoint_interval: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(60),
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

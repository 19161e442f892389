//! Configuration: the TOML file of CONTRACT.md, `SIIRTO__SECTION__KEY` overrides, and the
//! validated [`Config`] the rest of the gateway reads.
//!
//! Owns: the schema of the file (which keys exist and what type each has), environment
//! overrides, and validation into [`Config`] (every problem names the file and the key, and all
//! problems found are reported together). The values it builds are [`siirto_core::config`]'s
//! sections and [`siirto_core::identity`]'s participant [`Directory`] (whose subject-string
//! parsing it calls); it only calls into them. It reads files only to check that they exist and
//! parse as what they claim to be (CA bundles hold CA certificates, each CRL is signed by its
//! issuer in `client_ca`: [`crate::x509_policy`]); it opens no sockets and starts nothing.
//! Relative paths are resolved against the directory holding the configuration file.
//!
//! # Values
//! - Durations are strings with one unit, `"250ms"`, `"900s"`, `"15m"`, `"24h"`, `"7d"`, or
//!   integer seconds (`900`).
//! - Sizes are integer bytes or strings with a binary or decimal unit: `"64KiB"`, `"16MiB"`,
//!   `"1GiB"`, `"500KB"`.
//! - Unknown keys anywhere are errors (a typo must never silently fall back to a default); the
//!   message suggests the closest known key.
//!
//! # Environment overrides
//! `SIIRTO__SECTION__KEY=value` sets `[section] key`; nested tables add a segment
//! (`SIIRTO__LIMITS__XML__MAX_DEPTH`), and entries of `[[issuers]]` / `[[participants]]` are
//! addressed by zero-based index (`SIIRTO__PARTICIPANTS__0__BASE_URL`). An index equal to the
//! number of entries appends a new entry. Segments are case-insensitive; `_` in a segment also
//! matches `-` in a key (`SIIRTO__SCHEMAS__SIIRTO_V1`). The value is typed by the key it lands on:
//!
//! | key type | keys | value |
//! |---|---|---|
//! | text | ids, paths, URLs, addresses, `subject`, `format`, `protocol`, `koski_path`, `crl_stale`, `name.fi` (`.sv`, `.en`), `statutory_law.fi` (…) | taken as is |
//! | integer | `max_attempts`, `workers`, `per_destination_concurrency`, `max_pending`, `checkpoint_every`, `xml.max_depth`, `xml.max_elements`, `xml.max_attributes`, `own_consent_age` | decimal |
//! | boolean | `require_text_hash` | `true` or `false` |
//! | duration | `max_authorization_lifetime`, `clock_skew`, `max_age`, `*_backoff`, `*_timeout`, `timeout`, `lease`, `checkpoint_interval` | as in the file |
//! | size | `max_response_bytes`, `max_in_flight_bytes`, `max_request_bytes`, `max_header_bytes`, `xml.max_bytes`, `xml.max_name_len`, `xml.max_text_len` | as in the file |
//! | list | `crl`, `roles`, `koski_types`, `payload_previous_keys`, `statutory_scopes`, `statutory_purposes` | comma-separated, or a TOML array `["a", "b"]` |
//!
//! A variable naming no known key is an error (`SIIRTO__` variables are never ignored), and a
//! problem in an overridden value names the variable that set it.
//!
//! # Why a loader of its own
//! The file is parsed with `toml` into a table, the overrides edit that table (entries by
//! index), and a checker walks it against the schema below, collecting every problem; "did you
//! mean" comes from `strsim`. The ecosystem's alternatives were weighed (issue 24) and each
//! loses something this loader promises:
//! - figment and config-rs: their environment providers split `SIIRTO__A__B` into nested
//!   *maps* and never index an array, so `SIIRTO__PARTICIPANTS__0__BASE_URL` would become a
//!   map keyed `"0"` that replaces (or fails to merge with) `[[participants]]`; and their
//!   extraction is serde deserialization, which stops at the first error.
//! - serde derive on the section types (`deny_unknown_fields`): the same first-error stop, and
//!   messages that name neither the file nor the variable and suggest nothing. `eserde`
//!   collects several type errors, but not the checks that need the whole file (files that
//!   must exist and parse, ranges, duplicate ids, identity rules, key/certificate pairs).
//! - humantime and bytesize for durations and sizes: both accept more than the documented
//!   syntax (`1.5s`, `1h 30m`, `1.5MiB`, `1TiB`), which the file refuses, and show values in
//!   other forms (`1day`); the two small parsers of `siirto_core::config` stay.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use toml::{Table, Value};

use siirto_core::audit::AuditPublicKey;
use siirto_core::audit::witness::CosignatureVerifier;
use siirto_core::config::{
    AuditConfig, AuditWitness, ChecksConfig, ConsentConfig, CrlStale, DeliveryConfig,
    DocumentsConfig, GatewayConfig, IssuerConfig, LimitsConfig, OnBroken, RetentionConfig,
    SchemaPaths, SourceSignersConfig, StorageConfig, WitnessConfig, WitnessedLog, format_duration,
    format_size, parse_duration, parse_size, payload_key_bytes, secret_key_bytes,
};
use siirto_core::consent::StatutoryRules;
use siirto_core::formats::Format;
use siirto_core::identity::{
    Directory, Endpoint, IdentityRule, Participant, Role, SubjectError, parse_subject,
};
use siirto_core::lang::Localized;
use siirto_core::protocol::{
    DEFAULT_KOSKI_PATH, KOSKI_TYPES, KoskiCall, OmadataCall, SourceProtocol, VirtaCaller,
    is_koski_type,
};
use siirto_core::scope::{Category, Scope};

use crate::x509_policy::{CrlSet, crls_from_bytes};

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
    pub consent: ConsentConfig,
    pub checks: ChecksConfig,
    pub storage: StorageConfig,
    pub retention: RetentionConfig,
    /// `[documents]`: how delivered documents are signed.
    pub documents: DocumentsConfig,
    /// ELMO sources' pinned signers, by participant id (only sources that list `elmo_signers`).
    pub source_signers: std::collections::BTreeMap<String, SourceSignersConfig>,
    pub witness: WitnessConfig,
    /// `[xroad]` and the participants reached through it.
    pub xroad: XroadConfig,
}

/// `[xroad]`: the city's own X-Road security server, through which participants with
/// `xroad_service` are called (CONTRACT.md, "X-Road", outbound).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XroadConfig {
    /// `security_server_url`, `client`, `server_ca`; `None` when `[xroad]` is absent.
    pub security_server: Option<XroadSecurityServer>,
    /// Participant id → its `xroad_service` (`INSTANCE/CLASS/MEMBER[/SUBSYSTEM]/SERVICE`).
    pub services: BTreeMap<String, String>,
    /// `[[xroad.security_servers]]`: the certificate rules of the security servers that may
    /// call the API (inbound).
    pub security_servers: Vec<IdentityRule>,
    /// `X-Road-Client` (`INSTANCE/CLASS/MEMBER[/SUBSYSTEM]`, decoded) → participant id, for
    /// participants with `xroad_client`: reached only through a security server.
    pub clients: BTreeMap<String, String>,
}

/// The security server the gateway calls out through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XroadSecurityServer {
    /// `https://host[:port][/prefix]`, without a trailing slash.
    pub url: String,
    pub host: String,
    pub port: u16,
    /// Siirto's own subsystem, `INSTANCE/CLASS/MEMBER[/SUBSYSTEM]`, as written.
    pub client: String,
    /// The CA bundle the security server's certificate must chain to.
    pub server_ca: PathBuf,
}

/// The parts of an X-Road identifier (`/`-separated, each part non-empty, at most 255
/// characters, no control characters), when there are `min..=max` of them.
pub fn xroad_id_parts(id: &str, min: usize, max: usize) -> Option<Vec<&str>> {
    let parts: Vec<&str> = id.split('/').collect();
    let ok = (min..=max).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 255 && !p.chars().any(char::is_control));
    ok.then_some(parts)
}

/// A SQLite URL whose file path is relative (`sqlite://siirto.db`, `sqlite:data/s.db`) names a
/// file beside the configuration, as every other path of the file does; `resolve` makes the
/// path absolute. Absolute paths, in-memory databases and other URLs are kept as written.
fn sqlite_relative_to(url: &str, resolve: impl FnOnce(&str) -> PathBuf) -> String {
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return url.to_owned();
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if path.is_empty() || path.starts_with(':') || Path::new(path).is_absolute() {
        return url.to_owned();
    }
    let mut resolved = format!("sqlite://{}", resolve(path).to_string_lossy());
    if let Some(q) = query {
        resolved.push('?');
        resolved.push_str(q);
    }
    resolved
}

/// The `[documents]` signer and the ELMO sources' pinned signers, read from their files at
/// start (the loader has checked them already).
pub struct DocumentKeys {
    pub signer: Option<siirto_core::dsig::Signer>,
    pub sign_siirto_v1: bool,
    /// By source id: the pinned certificates and `allow_sha1`.
    pub source_signers: std::collections::BTreeMap<String, (Vec<openssl::x509::X509>, bool)>,
}

impl std::fmt::Debug for DocumentKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentKeys")
            .field("signer", &self.signer)
            .field("sign_siirto_v1", &self.sign_siirto_v1)
            .field("sources", &self.source_signers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl DocumentKeys {
    /// Reads the files `config` names; the error names the file and what is wrong.
    pub fn load(config: &Config) -> Result<DocumentKeys, (PathBuf, String)> {
        let read = |p: &Path| std::fs::read(p).map_err(|e| (p.to_owned(), e.to_string()));
        let signer = match (
            &config.documents.signing_cert,
            &config.documents.signing_key,
        ) {
            (Some(cert), Some(key)) => Some(
                siirto_core::dsig::Signer::from_pem(&read(cert)?, &read(key)?)
                    .map_err(|e| (key.clone(), e.to_string()))?,
            ),
            _ => None,
        };
        let mut source_signers = std::collections::BTreeMap::new();
        for (id, s) in &config.source_signers {
            let mut certs = Vec::new();
            for path in &s.elmo_signers {
                certs.extend(
                    siirto_core::dsig::certificates_from_pem(&read(path)?)
                        .map_err(|e| (path.clone(), e))?,
                );
            }
            source_signers.insert(id.clone(), (certs, s.allow_sha1));
        }
        Ok(DocumentKeys {
            signer,
            sign_siirto_v1: config.documents.sign_siirto_v1,
            source_signers,
        })
    }

    /// What a transfer from `source` signs and checks.
    pub fn signatures(&self, source: &str) -> siirto_core::pipeline::Signatures<'_> {
        siirto_core::pipeline::Signatures {
            signer: self.signer.as_ref(),
            sign_siirto_v1: self.sign_siirto_v1,
            source: self
                .source_signers
                .get(source)
                .map(
                    |(signers, allow_sha1)| siirto_core::pipeline::SourceSigners {
                        signers,
                        allow_sha1: *allow_sha1,
                    },
                ),
        }
    }
}

/// The origin (log name) of the gateway's audit checkpoints.
pub fn audit_origin(config: &Config) -> String {
    format!("{}/audit", config.gateway.id)
}

/// The audit keys of earlier years, read from `[audit]` (files checked at load).
#[derive(Debug, Default)]
pub struct AuditKeyHistory {
    /// `previous_public_keys`, and the public half of `previous_key`.
    pub public_keys: Vec<siirto_core::audit::AuditPublicKey>,
    /// `previous_key`: cosigns checkpoints while the audit key is being rotated.
    pub cosigner: Option<siirto_core::audit::AuditSigningKey>,
}

/// Reads `[audit] previous_public_keys` and `previous_key`; an unreadable file is `(path, why)`.
pub fn previous_audit_keys(config: &Config) -> Result<AuditKeyHistory, (PathBuf, String)> {
    use siirto_core::audit::{AuditPublicKey, AuditSigningKey};
    let text =
        |path: &PathBuf| std::fs::read_to_string(path).map_err(|e| (path.clone(), e.to_string()));
    let mut history = AuditKeyHistory::default();
    for path in &config.audit.previous_public_keys {
        let key = AuditPublicKey::from_spki_pem(&text(path)?)
            .map_err(|e| (path.clone(), e.to_string()))?;
        history.public_keys.push(key);
    }
    if let Some(path) = &config.audit.previous_key {
        let key = AuditSigningKey::from_pkcs8_pem(&text(path)?)
            .map_err(|e| (path.clone(), e.to_string()))?;
        history.public_keys.push(key.public_key());
        history.cosigner = Some(key);
    }
    Ok(history)
}

// ---------------------------------------------------------------------------------------------
// Errors

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file itself could not be read.
    #[error("{}: cannot read the configuration file: {source}", file.display())]
    Unreadable {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("{}: not valid TOML: {message}", file.display())]
    Syntax { file: PathBuf, message: String },
    /// The file is TOML but says something wrong; one line per problem.
    #[error("{}", render_problems(file, problems))]
    Invalid {
        file: PathBuf,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The problems found (empty for unreadable or non-TOML files).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

fn render_problems(file: &Path, problems: &[Problem]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!("{}: {p}", file.display()));
    }
    out
}

/// One thing wrong with a configuration: where (`key`, e.g. `participants[2].roles`), which
/// environment variable set the value if one did, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub set_by: Option<String>,
    pub cause: Cause,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.set_by {
            Some(var) => write!(f, "{} (set by {var}): {}", self.key, self.cause),
            None => write!(f, "{}: {}", self.key, self.cause),
        }
    }
}

/// What is wrong with one key. Never carries secret values (keys, database passwords).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Cause {
    #[error("required key is missing")]
    Missing,
    #[error("unknown key{}", suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    UnknownKey { suggestion: Option<String> },
    #[error("expected {expected}, found {found}")]
    WrongType {
        expected: &'static str,
        found: &'static str,
    },
    #[error("must not be empty")]
    Empty,
    #[error("cannot read {}: {reason}", path.display())]
    FileUnreadable { path: PathBuf, reason: String },
    #[error("{}: {reason}", path.display())]
    BadFileContent { path: PathBuf, reason: String },
    #[error("the private key does not belong to the certificate of {certificate} ({})", path.display())]
    KeyMismatch {
        /// The key naming the certificate file, e.g. `gateway.server_cert`.
        certificate: &'static str,
        path: PathBuf,
    },
    #[error(
        "\"{0}\" is not a valid id (letters, digits, '.', '_', '-'; at most 64, starting with a letter or digit)"
    )]
    BadId(String),
    #[error("unknown role \"{0}\" (known: source, destination, eservice, operator, log)")]
    UnknownRole(String),
    #[error("role \"{0}\" is listed twice")]
    DuplicateRole(String),
    #[error("at least one role is required")]
    NoRoles,
    #[error("duplicate participant id \"{id}\" (first at {first})")]
    DuplicateParticipant { id: String, first: String },
    #[error("duplicate issuer id \"{id}\" (first at {first})")]
    DuplicateIssuer { id: String, first: String },
    #[error("no [[issuers]] configured: no authorization could ever be verified")]
    NoIssuers,
    #[error("needs exactly one identity rule (subject, san_uri, san_dns or spki_sha256), found {}", if found.is_empty() { "none".to_owned() } else { found.join(", ") })]
    IdentityRuleCount { found: Vec<&'static str> },
    #[error("same identity rule as {other}: a certificate would match both")]
    AmbiguousIdentity { other: String },
    #[error("a {role} needs `{field}`")]
    EndpointFieldMissing {
        role: &'static str,
        field: &'static str,
    },
    #[error("only sources and destinations have an endpoint; remove `{field}` or add a role")]
    EndpointFieldNotAllowed { field: &'static str },
    #[error("unknown value \"{value}\" (known: {known})")]
    UnknownChoice { value: String, known: &'static str },
    #[error("unknown format \"{0}\" (known: siirto-v1, virta, elmo, koski)")]
    UnknownFormat(String),
    #[error("format \"{0}\" is a source format: a destination takes siirto-v1, virta or elmo")]
    SourceOnlyFormat(Format),
    #[error("format \"{0}\" needs a schema: set [schemas] {0} = \"path/to/schema.xsd\"")]
    SchemaMissing(Format),
    #[error("only a source is called by a protocol; remove `{field}` or add the source role")]
    ProtocolFieldNotAllowed { field: &'static str },
    #[error("`{field}` belongs to a source whose format is \"elmo\"")]
    ElmoSourceOnly { field: &'static str },
    #[error(
        "destination \"{destination}\" receives ELMO, and every ELMO document is signed: set [documents] signing_cert and signing_key"
    )]
    SigningKeyNeeded { destination: String },
    #[error(
        "protocol \"{0}\" calls a source only, and this participant is also a destination (delivered to with Siirto's POST /records); give the register a participant entry of its own"
    )]
    ProtocolNotForDestination(&'static str),
    #[error(
        "`{field}` belongs to protocol = \"{belongs_to}\"; this participant's protocol is \"{protocol}\""
    )]
    NotForProtocol {
        field: &'static str,
        belongs_to: &'static str,
        protocol: &'static str,
    },
    #[error(
        "protocol \"{protocol}\" answers in format \"{expected}\", but `format` is \"{format}\""
    )]
    ProtocolFormatMismatch {
        protocol: &'static str,
        format: Format,
        expected: Format,
    },
    #[error("unknown KOSKI opiskeluoikeus type \"{value}\"{}", suggestion.as_ref().map(|s| format!("; did you mean \"{s}\"?")).unwrap_or_default())]
    UnknownKoskiType {
        value: String,
        suggestion: Option<String>,
    },
    #[error("KOSKI opiskeluoikeus type \"{0}\" is listed twice")]
    DuplicateKoskiType(String),
    #[error("at least one KOSKI opiskeluoikeus type is required (e.g. [\"perusopetus\"])")]
    NoKoskiTypes,
    #[error(
        "not a usable path: \"{0}\" (starts with /, no trailing /, letters, digits and - . _ ~ / only)"
    )]
    BadKoskiPath(String),
    #[error("not a usable verifier key: {0}")]
    BadVerifierKey(String),
    #[error("must be an https:// URL, found \"{0}\"")]
    NotHttps(String),
    #[error("not an OAuth scope list: {0}")]
    BadOmadataScope(String),
    #[error(
        "not a usable redirect URI \"{0}\" (an absolute https:// URL without a fragment, or http:// on localhost or 127.0.0.1 for development)"
    )]
    BadRedirectUri(String),
    #[error("only an e-service has `redirect_uris` (the addresses KOSKI returns the person to)")]
    RedirectUrisNotAllowed,
    #[error(
        "not an X-Road identifier \"{0}\" (INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE; the subsystem may be left out)"
    )]
    BadXroadService(String),
    #[error(
        "not an X-Road client identifier \"{0}\" (INSTANCE/CLASS/MEMBER/SUBSYSTEM; the subsystem may be left out)"
    )]
    BadXroadClient(String),
    #[error(
        "a participant with `xroad_service` is called through [xroad]: set [xroad] security_server_url, client and server_ca"
    )]
    XroadNotConfigured,
    #[error("participant \"{other}\" has the same xroad_client")]
    DuplicateXroadClient { other: String },
    #[error(
        "a participant with `xroad_service` is reached through [xroad] security_server_url and server_ca; remove `{field}`"
    )]
    XroadEndpointField { field: &'static str },
    #[error(
        "a KOSKI OmaData source is reached directly (its issuer and resource URLs), not through X-Road"
    )]
    XroadNotForOmadata,
    #[error("not a usable URL: {0}")]
    BadUrl(String),
    #[error("not a socket address (IP:port): \"{0}\"")]
    BadSocketAddress(String),
    #[error("listen and admin_listen are the same address {0}")]
    SameListenAddress(SocketAddr),
    #[error("must start with sqlite: or postgres:// (value not shown)")]
    BadDatabaseUrl,
    #[error("not an integer: \"{0}\"")]
    NotAnInteger(String),
    #[error(
        "not a duration: \"{0}\" (write e.g. \"250ms\", \"900s\", \"15m\", \"24h\", \"7d\" or integer seconds)"
    )]
    BadDuration(String),
    #[error("not a size: \"{0}\" (write integer bytes or e.g. \"64KiB\", \"16MiB\")")]
    BadSize(String),
    #[error("{value} is out of range ({min} to {max})")]
    OutOfRange {
        value: String,
        min: String,
        max: String,
    },
    #[error("must not be smaller than {other} ({value} < {limit})")]
    SmallerThan {
        other: &'static str,
        value: String,
        limit: String,
    },
    #[error("must be longer than {other} ({value} <= {limit})")]
    NotLongerThan {
        other: &'static str,
        value: String,
        limit: String,
    },
    #[error("invalid subject: {0}")]
    BadSubject(#[from] SubjectError),
    #[error("not a DNS name: \"{0}\"")]
    BadDnsName(String),
    #[error("spki_sha256 must be 64 hex digits (colons allowed)")]
    BadSpkiPin,
    #[error("must be 64 hex digits (a 256-bit key)")]
    BadHexKey,
    #[error("index {index} is past the end ({len} entries; {len} appends one)")]
    IndexPastEnd { index: usize, len: usize },
    #[error("{0}")]
    MalformedVariable(&'static str),
    #[error("not a boolean: \"{0}\" (write true or false)")]
    NotABoolean(String),
    #[error(
        "a {role} needs a name in Finnish, Swedish and English: name = {{ fi = \"…\", sv = \"…\", en = \"…\" }}"
    )]
    NameMissing { role: &'static str },
    #[error(
        "only a destination receives data by law; remove `{field}` or add the destination role"
    )]
    StatutoryNotDestination { field: &'static str },
    #[error(
        "statutory_scopes, statutory_purposes and statutory_law go together; `{field}` is missing"
    )]
    StatutoryIncomplete { field: &'static str },
    #[error(
        "unknown category \"{0}\" (known: identity, enrolment, achievements, mobility, registrations, support)"
    )]
    UnknownCategory(String),
    #[error("\"{0}\" is not a purpose code (1-64 characters of a-z, 0-9 and -)")]
    BadPurpose(String),
}

// ---------------------------------------------------------------------------------------------
// Referenced files

/// What a referenced file must contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    /// One or more PEM `CERTIFICATE`s, each a parsable X.509 certificate.
    Certificates,
    /// [`FileKind::Certificates`], each a CA certificate that may sign certificates
    /// ([`crate::x509_policy::check_ca_bundle`]): `client_ca`, `server_ca`.
    CaCertificates,
    /// A PEM private key (PKCS#8, SEC1 or PKCS#1) of a type rustls can sign with.
    PrivateKey,
    /// CRLs, PEM `X509 CRL` or one DER CRL.
    Crl,
    /// A PKCS#8 PEM Ed25519 private key.
    Ed25519Key,
    /// An Ed25519 public key, PEM `PUBLIC KEY` (what `GET /v1/audit/public-key.pem` gives).
    Ed25519PublicKey,
    /// See [`secret_key_bytes`].
    SecretKey,
    /// See [`payload_key_bytes`].
    HexKey,
    /// A JWKS with public keys only.
    Jwks,
    /// Any readable, non-empty file.
    Schema,
}

/// Checks the contents of a file of the given kind; the error says what is wrong.
fn inspect(kind: FileKind, bytes: &[u8]) -> Result<(), String> {
    match kind {
        FileKind::Certificates => certificates_from_bytes(bytes).map(|_| ()),
        FileKind::CaCertificates => {
            crate::x509_policy::check_ca_bundle(&certificates_from_bytes(bytes)?)
        }
        FileKind::PrivateKey => {
            let key = PrivateKeyDer::from_pem_slice(bytes).map_err(|e| match e {
                rustls_pki_types::pem::Error::NoItemsFound => {
                    "no PEM private key found (PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY)"
                        .to_owned()
                }
                other => format!("not a PEM private key: {other}"),
            })?;
            rustls::crypto::ring::sign::any_supported_type(&key)
                .map(|_| ())
                .map_err(|_| "key type not supported (EC P-256/P-384, Ed25519 or RSA)".to_owned())
        }
        FileKind::Crl => {
            let crls = crls_from_bytes(bytes)?;
            for (i, c) in crls.iter().enumerate() {
                x509_parser::parse_x509_crl(c)
                    .map_err(|e| format!("CRL {} does not parse: {e}", i + 1))?;
            }
            Ok(())
        }
        FileKind::Ed25519Key => {
            let key = PrivatePkcs8KeyDer::from_pem_slice(bytes)
                .map_err(|_| "no PKCS#8 PEM PRIVATE KEY found".to_owned())?;
            ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(key.secret_pkcs8_der())
                .map(|_| ())
                .map_err(|_| "not an Ed25519 PKCS#8 key".to_owned())
        }
        FileKind::Ed25519PublicKey => {
            siirto_core::audit::AuditPublicKey::from_spki_pem(&String::from_utf8_lossy(bytes))
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        FileKind::SecretKey => secret_key_bytes(bytes)
            .map(|_| ())
            .ok_or_else(|| "too short: a secret key needs at least 32 bytes".to_owned()),
        FileKind::HexKey => payload_key_bytes(bytes)
            .map(|_| ())
            .ok_or_else(|| "must hold exactly 64 hex digits (a 256-bit key)".to_owned()),
        FileKind::Jwks => inspect_jwks(bytes),
        FileKind::Schema => {
            if bytes.is_empty() {
                Err("file is empty".to_owned())
            } else {
                Ok(())
            }
        }
    }
}

/// The PEM `CERTIFICATE`s of a file's bytes, at least one, each a parsable X.509 certificate.
fn certificates_from_bytes(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<CertificateDer<'static>>, _> =
        CertificateDer::pem_slice_iter(bytes).collect();
    let certs = certs.map_err(|e| format!("not PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM CERTIFICATE found".to_owned());
    }
    for (i, c) in certs.iter().enumerate() {
        x509_parser::parse_x509_certificate(c)
            .map_err(|e| format!("certificate {} does not parse: {e}", i + 1))?;
    }
    Ok(certs)
}

fn inspect_jwks(bytes: &[u8]) -> Result<(), String> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let keys = v
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| "not a JWKS: no \"keys\" array".to_owned())?;
    if keys.is_empty() {
        return Err("JWKS has no keys".to_owned());
    }
    let mut kids: Vec<&str> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        if k.get("kty").and_then(serde_json::Value::as_str).is_none() {
            return Err(format!("key {i} has no \"kty\""));
        }
        let kid = k
            .get("kid")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| format!("key {i} has no \"kid\""))?;
        if kids.contains(&kid) {
            return Err(format!("kid \"{kid}\" appears twice"));
        }
        kids.push(kid);
        if ["d", "p", "q", "dp", "dq", "qi", "k"]
            .iter()
            .any(|f| k.get(*f).is_some())
        {
            return Err(format!(
                "key \"{kid}\" holds private key material; a JWKS here must hold public keys only"
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The schema of the file

/// The type of a key (see the module documentation).
#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    Integer,
    Boolean,
    Duration,
    Size,
    List,
    /// A table with these keys.
    Section(&'static [(&'static str, Kind)]),
    /// An array of tables, each with these keys.
    Entries(&'static [(&'static str, Kind)]),
}

const GATEWAY_KEYS: &[(&str, Kind)] = &[
    ("id", Kind::Text),
    ("listen", Kind::Text),
    ("admin_listen", Kind::Text),
    ("server_cert", Kind::Text),
    ("server_key", Kind::Text),
    ("client_ca", Kind::Text),
    ("client_cert", Kind::Text),
    ("client_key", Kind::Text),
    ("crl", Kind::List),
    ("crl_stale", Kind::Text),
    ("database_url", Kind::Text),
    ("audit_key", Kind::Text),
    ("pseudonym_key", Kind::Text),
    ("max_authorization_lifetime", Kind::Duration),
    ("clock_skew", Kind::Duration),
];
const ISSUER_KEYS: &[(&str, Kind)] = &[("id", Kind::Text), ("jwks", Kind::Text)];
const PARTICIPANT_KEYS: &[(&str, Kind)] = &[
    ("id", Kind::Text),
    ("roles", Kind::List),
    ("subject", Kind::Text),
    ("san_uri", Kind::Text),
    ("san_dns", Kind::Text),
    ("spki_sha256", Kind::Text),
    ("base_url", Kind::Text),
    ("server_ca", Kind::Text),
    ("format", Kind::Text),
    ("protocol", Kind::Text),
    ("koski_types", Kind::List),
    ("koski_path", Kind::Text),
    ("virta_caller", Kind::Text),
    ("omadata_client_id", Kind::Text),
    ("omadata_issuer", Kind::Text),
    ("omadata_resource", Kind::Text),
    ("omadata_scope", Kind::Text),
    ("redirect_uris", Kind::List),
    ("name", Kind::Section(LOCALIZED_KEYS)),
    ("statutory_scopes", Kind::List),
    ("statutory_purposes", Kind::List),
    ("statutory_law", Kind::Section(LOCALIZED_KEYS)),
    ("elmo_signers", Kind::List),
    ("allow_sha1", Kind::Boolean),
    ("xroad_service", Kind::Text),
    ("xroad_client", Kind::Text),
];
const XROAD_KEYS: &[(&str, Kind)] = &[
    ("security_server_url", Kind::Text),
    ("client", Kind::Text),
    ("server_ca", Kind::Text),
    (
        "security_servers",
        Kind::Entries(XROAD_SECURITY_SERVER_KEYS),
    ),
];
const XROAD_SECURITY_SERVER_KEYS: &[(&str, Kind)] = &[
    ("subject", Kind::Text),
    ("san_uri", Kind::Text),
    ("san_dns", Kind::Text),
    ("spki_sha256", Kind::Text),
];
const DOCUMENTS_KEYS: &[(&str, Kind)] = &[
    ("signing_cert", Kind::Text),
    ("signing_key", Kind::Text),
    ("sign_siirto_v1", Kind::Boolean),
];
/// A text in each language (`name`, `statutory_law`).
const LOCALIZED_KEYS: &[(&str, Kind)] =
    &[("fi", Kind::Text), ("sv", Kind::Text), ("en", Kind::Text)];
const CONSENT_KEYS: &[(&str, Kind)] = &[
    ("own_consent_age", Kind::Integer),
    ("require_text_hash", Kind::Boolean),
    ("request_ttl", Kind::Duration),
];
const CHECKS_KEYS: &[(&str, Kind)] = &[("timeout", Kind::Duration)];
const SCHEMA_KEYS: &[(&str, Kind)] = &[
    ("siirto-v1", Kind::Text),
    ("virta", Kind::Text),
    ("elmo", Kind::Text),
];
const DELIVERY_KEYS: &[(&str, Kind)] = &[
    ("max_attempts", Kind::Integer),
    ("max_age", Kind::Duration),
    ("peer_down_after", Kind::Integer),
    ("initial_backoff", Kind::Duration),
    ("max_backoff", Kind::Duration),
    ("connect_timeout", Kind::Duration),
    ("request_timeout", Kind::Duration),
    ("max_response_bytes", Kind::Size),
    ("workers", Kind::Integer),
    ("max_in_flight_bytes", Kind::Size),
    ("per_destination_concurrency", Kind::Integer),
    ("max_pending", Kind::Integer),
    ("lease", Kind::Duration),
];
const XML_KEYS: &[(&str, Kind)] = &[
    ("max_bytes", Kind::Size),
    ("max_depth", Kind::Integer),
    ("max_elements", Kind::Integer),
    ("max_attributes", Kind::Integer),
    ("max_name_len", Kind::Size),
    ("max_text_len", Kind::Size),
];
const JSON_KEYS: &[(&str, Kind)] = &[
    ("max_bytes", Kind::Size),
    ("max_depth", Kind::Integer),
    ("max_string_len", Kind::Size),
    ("max_array_items", Kind::Integer),
];
const LIMITS_KEYS: &[(&str, Kind)] = &[
    ("max_request_bytes", Kind::Size),
    ("max_header_bytes", Kind::Size),
    ("request_timeout", Kind::Duration),
    ("handshake_timeout", Kind::Duration),
    ("max_connections", Kind::Integer),
    ("reserved_connections", Kind::Integer),
    ("max_connections_per_address", Kind::Integer),
    ("max_handshakes_per_address", Kind::Integer),
    ("authenticated_address_ttl", Kind::Duration),
    ("xml", Kind::Section(XML_KEYS)),
    ("json", Kind::Section(JSON_KEYS)),
];
const AUDIT_KEYS: &[(&str, Kind)] = &[
    ("checkpoint_every", Kind::Integer),
    ("checkpoint_interval", Kind::Duration),
    ("on_broken", Kind::Text),
    ("previous_public_keys", Kind::List),
    ("previous_key", Kind::Text),
    ("witnesses", Kind::Entries(AUDIT_WITNESS_KEYS)),
    ("witness_quorum", Kind::Integer),
];
const AUDIT_WITNESS_KEYS: &[(&str, Kind)] = &[
    ("url", Kind::Text),
    ("key", Kind::Text),
    ("server_ca", Kind::Text),
];
const WITNESS_KEYS: &[(&str, Kind)] = &[
    ("key", Kind::Text),
    ("logs", Kind::Entries(WITNESSED_LOG_KEYS)),
];
const WITNESSED_LOG_KEYS: &[(&str, Kind)] = &[("origin", Kind::Text), ("key", Kind::Text)];
const STORAGE_KEYS: &[(&str, Kind)] = &[
    ("payload_key", Kind::Text),
    ("payload_previous_keys", Kind::List),
];
const RETENTION_KEYS: &[(&str, Kind)] = &[("transfers", Kind::Duration), ("audit", Kind::Duration)];
const ROOT_KEYS: &[(&str, Kind)] = &[
    ("gateway", Kind::Section(GATEWAY_KEYS)),
    ("issuers", Kind::Entries(ISSUER_KEYS)),
    ("participants", Kind::Entries(PARTICIPANT_KEYS)),
    ("schemas", Kind::Section(SCHEMA_KEYS)),
    ("delivery", Kind::Section(DELIVERY_KEYS)),
    ("limits", Kind::Section(LIMITS_KEYS)),
    ("audit", Kind::Section(AUDIT_KEYS)),
    ("consent", Kind::Section(CONSENT_KEYS)),
    ("checks", Kind::Section(CHECKS_KEYS)),
    ("storage", Kind::Section(STORAGE_KEYS)),
    ("retention", Kind::Section(RETENTION_KEYS)),
    ("documents", Kind::Section(DOCUMENTS_KEYS)),
    ("witness", Kind::Section(WITNESS_KEYS)),
    ("xroad", Kind::Section(XROAD_KEYS)),
];

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

/// How a kind of quantity (duration, size) is read, checked and shown.
struct Quantity<T> {
    /// `"a duration"`: the expected type named in a `WrongType` error.
    what: &'static str,
    /// A bare integer in the unit's base (seconds, bytes).
    from_integer: fn(u64) -> T,
    parse: fn(&str) -> Option<T>,
    bad: fn(String) -> Cause,
    format: fn(T) -> String,
}

fn join_key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// The known key closest to `name` by Levenshtein distance, for "did you mean", when it is
/// close enough.
fn suggest(name: &str, fields: &[(&str, Kind)]) -> Option<String> {
    fields
        .iter()
        .map(|(n, _)| (strsim::levenshtein(name, n), *n))
        .filter(|(d, n)| *d <= 2.max(n.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n.to_owned())
}

// ---------------------------------------------------------------------------------------------
// Loading

const ENV_PREFIX: &str = "SIIRTO__";

impl Config {
    /// Reads and validates the file at `path`, applying `SIIRTO__*` variables of this process.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Unreadable {
            file: path.to_owned(),
            source,
        })?;
        // `vars_os`, not `vars`: a non-UTF-8 variable elsewhere in the environment must not
        // panic; a non-UTF-8 `SIIRTO__` value arrives lossily and fails validation by name.
        let env = std::env::vars_os().filter_map(|(k, v)| {
            let k = k.into_string().ok()?;
            Some((k, v.to_string_lossy().into_owned()))
        });
        Config::from_toml(&text, path, env)
    }

    /// Validates configuration `text` as if read from `source` (relative paths resolve against
    /// its directory), with `env` as the environment (only `SIIRTO__*` entries are looked at).
    pub fn from_toml(
        text: &str,
        source: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table: Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Syntax {
                file: source.to_owned(),
                message: describe_toml_error(text, &e),
            })?;
        let dir = match source.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let mut check = Checker {
            dir,
            problems: Vec::new(),
        };
        let overridden = apply_overrides(&mut table, env, &mut check);
        check_keys(&table, ROOT_KEYS, "", &mut check);
        let config = build(&table, source, &mut check);
        if check.problems.is_empty() {
            return Ok(config);
        }
        let mut problems = check.problems;
        for p in &mut problems {
            if p.set_by.is_none() {
                p.set_by = overridden
                    .iter()
                    .find(|(key, _)| {
                        p.key == **key
                            || p.key.starts_with(&format!("{key}."))
                            || p.key.starts_with(&format!("{key}["))
                    })
                    .map(|(_, var)| var.clone());
            }
        }
        Err(ConfigError::Invalid {
            file: source.to_owned(),
            problems,
        })
    }

    /// A complete, commented example configuration (every optional section with its defaults).
    pub fn example_toml() -> &'static str {
        EXAMPLE_TOML
    }
}

fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let before = &text.as_bytes()[..span.start.min(text.len())];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            let col = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
            format!("line {line}, column {col}: {}", e.message().trim())
        }
        None => e.message().trim().to_owned(),
    }
}

/// Collects problems while building; fields whose value is wrong get a placeholder so that
/// checking can go on and report everything.
struct Checker {
    dir: PathBuf,
    problems: Vec<Problem>,
}

impl Checker {
    fn report(&mut self, key: impl Into<String>, cause: Cause) {
        self.problems.push(Problem {
            key: key.into(),
            set_by: None,
            cause,
        });
    }

    fn text(&mut self, t: &Table, prefix: &str, name: &str, required: bool) -> Option<String> {
        let key = join_key(prefix, name);
        match t.get(name) {
            None => {
                if required {
                    self.report(key, Cause::Missing);
                }
                None
            }
            Some(Value::String(s)) if s.trim().is_empty() => {
                self.report(key, Cause::Empty);
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.report(
                    key,
                    Cause::WrongType {
                        expected: "a string",
                        found: type_name(other),
                    },
                );
                None
            }
        }
    }

    fn list(&mut self, t: &Table, prefix: &str, name: &str) -> Option<Vec<String>> {
        let key = join_key(prefix, name);
        match t.get(name) {
            None => None,
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        other => self.report(
                            format!("{key}[{i}]"),
                            Cause::WrongType {
                                expected: "a string",
                                found: type_name(other),
                            },
                        ),
                    }
                }
                Some(out)
            }
            Some(other) => {
                self.report(
                    key,
                    Cause::WrongType {
                        expected: "an array of strings",
                        found: type_name(other),
                    },
                );
                None
            }
        }
    }

    fn resolve(&self, s: &str) -> PathBuf {
        let p = PathBuf::from(s);
        if p.is_absolute() { p } else { self.dir.join(p) }
    }

    /// A path-valued key, resolved, and its file checked to be of `kind`.
    fn file(
        &mut self,
        t: &Table,
        prefix: &str,
        name: &str,
        required: bool,
        kind: FileKind,
    ) -> Option<PathBuf> {
        let s = self.text(t, prefix, name, required)?;
        let path = self.resolve(&s);
        self.check_file(join_key(prefix, name), &path, kind);
        Some(path)
    }

    fn check_file(&mut self, key: String, path: &Path, kind: FileKind) {
        match std::fs::read(path) {
            Err(e) => self.report(
                key,
                Cause::FileUnreadable {
                    path: path.to_owned(),
                    reason: e.to_string(),
                },
            ),
            Ok(bytes) => {
                if let Err(reason) = inspect(kind, &bytes) {
                    self.report(
                        key,
                        Cause::BadFileContent {
                            path: path.to_owned(),
                            reason,
                        },
                    );
                }
            }
        }
    }

    /// Reports at the key when its private key does not belong to the (end-entity) certificate
    /// of the certificate key; both files are checked on their own first, and nothing is said
    /// here when either is already reported.
    fn key_pair(
        &mut self,
        (certificate, cert_path): (&'static str, &Path),
        (key, key_path): (&str, &Path),
    ) {
        if self
            .problems
            .iter()
            .any(|p| p.key == certificate || p.key == key)
        {
            return;
        }
        let certs = std::fs::read(cert_path)
            .ok()
            .and_then(|bytes| certificates_from_bytes(&bytes).ok());
        let signer = std::fs::read(key_path)
            .ok()
            .and_then(|bytes| PrivateKeyDer::from_pem_slice(&bytes).ok())
            .and_then(|der| rustls::crypto::ring::sign::any_supported_type(&der).ok());
        let (Some(certs), Some(signer)) = (certs, signer) else {
            return;
        };
        let pair = rustls::sign::CertifiedKey::new(certs, signer);
        if let Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) =
            pair.keys_match()
        {
            self.report(
                key,
                Cause::KeyMismatch {
                    certificate,
                    path: cert_path.to_owned(),
                },
            );
        }
    }

    fn integer(
        &mut self,
        t: &Table,
        prefix: &str,
        name: &str,
        default: u64,
        range: (u64, u64),
    ) -> u64 {
        let key = join_key(prefix, name);
        let v = match t.get(name) {
            None => return default,
            Some(Value::Integer(i)) => *i,
            Some(other) => {
                self.report(
                    key,
                    Cause::WrongType {
                        expected: "an integer",
                        found: type_name(other),
                    },
                );
                return default;
            }
        };
        match u64::try_from(v) {
            Ok(n) if n >= range.0 && n <= range.1 => n,
            _ => {
                self.report(
                    key,
                    Cause::OutOfRange {
                        value: v.to_string(),
                        min: range.0.to_string(),
                        max: range.1.to_string(),
                    },
                );
                default
            }
        }
    }

    fn boolean(&mut self, t: &Table, prefix: &str, name: &str, default: bool) -> bool {
        match t.get(name) {
            None => default,
            Some(Value::Boolean(b)) => *b,
            Some(other) => {
                self.report(
                    join_key(prefix, name),
                    Cause::WrongType {
                        expected: "a boolean",
                        found: type_name(other),
                    },
                );
                default
            }
        }
    }

    fn duration(
        &mut self,
        t: &Table,
        prefix: &str,
        name: &str,
        default: Duration,
        range: (Duration, Duration),
    ) -> Duration {
        let unit = Quantity {
            what: "a duration",
            from_integer: Duration::from_secs,
            parse: parse_duration,
            bad: Cause::BadDuration,
            format: format_duration,
        };
        self.quantity(t, prefix, name, default, range, &unit)
    }

    fn size(
        &mut self,
        t: &Table,
        prefix: &str,
        name: &str,
        default: usize,
        range: (u64, u64),
    ) -> usize {
        let unit = Quantity {
            what: "a size",
            from_integer: |n| n,
            parse: parse_size,
            bad: Cause::BadSize,
            format: format_size,
        };
        let fallback = u64::try_from(default).unwrap_or(u64::MAX);
        let n = self.quantity(t, prefix, name, fallback, range, &unit);
        usize::try_from(n).unwrap_or(default)
    }

    /// A value written as a bare integer (in the unit's base: seconds, bytes) or as text with a
    /// unit, within `range`; otherwise reported and `default`.
    fn quantity<T: Copy + PartialOrd>(
        &mut self,
        t: &Table,
        prefix: &str,
        name: &str,
        default: T,
        range: (T, T),
        unit: &Quantity<T>,
    ) -> T {
        let key = join_key(prefix, name);
        let v = match t.get(name) {
            None => return default,
            Some(Value::Integer(i)) => match u64::try_from(*i) {
                Ok(n) => (unit.from_integer)(n),
                Err(_) => {
                    self.report(key, (unit.bad)(i.to_string()));
                    return default;
                }
            },
            Some(Value::String(s)) => match (unit.parse)(s) {
                Some(v) => v,
                None => {
                    self.report(key, (unit.bad)(s.clone()));
                    return default;
                }
            },
            Some(other) => {
                self.report(
                    key,
                    Cause::WrongType {
                        expected: unit.what,
                        found: type_name(other),
                    },
                );
                return default;
            }
        };
        if v < range.0 || v > range.1 {
            self.report(
                key,
                Cause::OutOfRange {
                    value: (unit.format)(v),
                    min: (unit.format)(range.0),
                    max: (unit.format)(range.1),
                },
            );
            return default;
        }
        v
    }

    fn socket_address(&mut self, t: &Table, prefix: &str, name: &str) -> Option<SocketAddr> {
        let s = self.text(t, prefix, name, true)?;
        match s.trim().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.report(join_key(prefix, name), Cause::BadSocketAddress(s));
                None
            }
        }
    }
}

/// Reports keys the schema does not know and sections of the wrong shape, everywhere.
fn check_keys(t: &Table, fields: &[(&str, Kind)], prefix: &str, check: &mut Checker) {
    for (name, value) in t {
        let key = join_key(prefix, name);
        let Some((_, kind)) = fields.iter().find(|(n, _)| n == name) else {
            check.report(
                key,
                Cause::UnknownKey {
                    suggestion: suggest(name, fields),
                },
            );
            continue;
        };
        match (kind, value) {
            (Kind::Section(sub), Value::Table(inner)) => check_keys(inner, sub, &key, check),
            (Kind::Section(_), other) => check.report(
                key,
                Cause::WrongType {
                    expected: "a table",
                    found: type_name(other),
                },
            ),
            (Kind::Entries(sub), Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let item_key = format!("{key}[{i}]");
                    match item {
                        Value::Table(inner) => check_keys(inner, sub, &item_key, check),
                        other => check.report(
                            item_key,
                            Cause::WrongType {
                                expected: "a table",
                                found: type_name(other),
                            },
                        ),
                    }
                }
            }
            (Kind::Entries(_), other) => check.report(
                key,
                Cause::WrongType {
                    expected: "an array of tables",
                    found: type_name(other),
                },
            ),
            // Leaf values are type-checked where they are read.
            _ => {}
        }
    }
}

/// A path segment of an environment variable name; indexes sort numerically.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Segment {
    Index(usize),
    Name(String),
}

/// Applies `SIIRTO__*` variables to the table; returns which key each variable set.
fn apply_overrides(
    table: &mut Table,
    env: impl IntoIterator<Item = (String, String)>,
    check: &mut Checker,
) -> BTreeMap<String, String> {
    let mut vars: Vec<(Vec<Segment>, String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .map(|(k, v)| {
            let segments = k[ENV_PREFIX.len()..]
                .split("__")
                .map(|s| match s.parse::<usize>() {
                    Ok(i) => Segment::Index(i),
                    Err(_) => Segment::Name(s.to_ascii_lowercase()),
                })
                .collect();
            (segments, k, v)
        })
        .collect();
    // Sorted so that appending entries by index works in order (`..__2__` before `..__10__`).
    vars.sort();
    let mut overridden = BTreeMap::new();
    for (segments, var, value) in vars {
        match apply_one(table, &segments, &value) {
            Ok(key) => {
                overridden.insert(key, var);
            }
            Err((key, cause)) => check.problems.push(Problem {
                key: key.unwrap_or_else(|| var.clone()),
                set_by: Some(var),
                cause,
            }),
        }
    }
    overridden
}

/// Sets one override. On error returns the key reached (if any) and the cause.
fn apply_one(
    table: &mut Table,
    segments: &[Segment],
    value: &str,
) -> Result<String, (Option<String>, Cause)> {
    let mut fields = ROOT_KEYS;
    let mut current = table;
    let mut key = String::new();
    let mut i = 0;
    loop {
        let Some(Segment::Name(seg)) = segments.get(i) else {
            return Err((
                None,
                Cause::MalformedVariable(
                    "expected a key name where the variable has an index or nothing",
                ),
            ));
        };
        let Some((name, kind)) = fields
            .iter()
            .find(|(n, _)| n.replace('-', "_") == seg.replace('-', "_"))
            .copied()
        else {
            return Err((
                None,
                Cause::UnknownKey {
                    suggestion: suggest(seg, fields),
                },
            ));
        };
        key = join_key(&key, name);
        let wrong = |found: &Value, expected: &'static str| Cause::WrongType {
            expected,
            found: type_name(found),
        };
        match kind {
            Kind::Section(sub) => {
                let entry = current
                    .entry(name)
                    .or_insert_with(|| Value::Table(Table::new()));
                let found = type_name(entry);
                current = entry.as_table_mut().ok_or_else(|| {
                    (
                        Some(key.clone()),
                        Cause::WrongType {
                            expected: "a table",
                            found,
                        },
                    )
                })?;
                fields = sub;
                i += 1;
            }
            Kind::Entries(sub) => {
                let Some(Segment::Index(index)) = segments.get(i + 1) else {
                    return Err((
                        Some(key),
                        Cause::MalformedVariable(
                            "entries of this section are addressed by index, e.g. SIIRTO__PARTICIPANTS__0__BASE_URL",
                        ),
                    ));
                };
                let index = *index;
                let entry = current
                    .entry(name)
                    .or_insert_with(|| Value::Array(Vec::new()));
                if !entry.is_array() {
                    let cause = wrong(entry, "an array of tables");
                    return Err((Some(key), cause));
                }
                let Some(items) = entry.as_array_mut() else {
                    return Err((Some(key), Cause::MalformedVariable("not an array")));
                };
                if index > items.len() {
                    return Err((
                        Some(key),
                        Cause::IndexPastEnd {
                            index,
                            len: items.len(),
                        },
                    ));
                }
                if index == items.len() {
                    items.push(Value::Table(Table::new()));
                }
                key = format!("{key}[{index}]");
                let item = &mut items[index];
                let found = type_name(item);
                current = item.as_table_mut().ok_or_else(|| {
                    (
                        Some(key.clone()),
                        Cause::WrongType {
                            expected: "a table",
                            found,
                        },
                    )
                })?;
                fields = sub;
                i += 2;
            }
            leaf => {
                if i + 1 != segments.len() {
                    return Err((
                        Some(key),
                        Cause::MalformedVariable(
                            "the variable goes on past a key that holds a value",
                        ),
                    ));
                }
                let typed = typed_value(leaf, value).map_err(|c| (Some(key.clone()), c))?;
                current.insert(name.to_owned(), typed);
                return Ok(key);
            }
        }
        if i >= segments.len() {
            return Err((
                Some(key),
                Cause::MalformedVariable("the variable names a section, not a key"),
            ));
        }
    }
}

fn typed_value(kind: Kind, value: &str) -> Result<Value, Cause> {
    let trimmed = value.trim();
    let all_digits = !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit());
    Ok(match kind {
        Kind::Integer => Value::Integer(
            trimmed
                .parse::<i64>()
                .map_err(|_| Cause::NotAnInteger(value.to_owned()))?,
        ),
        Kind::Boolean => Value::Boolean(match trimmed {
            "true" => true,
            "false" => false,
            _ => return Err(Cause::NotABoolean(value.to_owned())),
        }),
        Kind::Duration | Kind::Size if all_digits => match trimmed.parse::<i64>() {
            Ok(n) => Value::Integer(n),
            Err(_) => Value::String(value.to_owned()),
        },
        Kind::List if trimmed.starts_with('[') => {
            let parsed: Table = format!("v = {trimmed}")
                .parse()
                .map_err(|_| Cause::WrongType {
                    expected: "a TOML array or a comma-separated list",
                    found: "something else",
                })?;
            parsed.get("v").cloned().unwrap_or(Value::Array(Vec::new()))
        }
        Kind::List => Value::Array(
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        ),
        _ => Value::String(value.to_owned()),
    })
}

fn section<'t>(t: &'t Table, name: &str) -> Option<&'t Table> {
    t.get(name).and_then(Value::as_table)
}

fn entries<'t>(t: &'t Table, name: &str) -> Vec<&'t Table> {
    t.get(name)
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_table).collect())
        .unwrap_or_default()
}

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);
const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn build(t: &Table, source: &Path, check: &mut Checker) -> Config {
    let gateway = build_gateway(t, check);
    let issuers = build_issuers(t, check);
    let schemas = build_schemas(t, check);
    let mut source_signers = std::collections::BTreeMap::new();
    let xroad_server = build_xroad(t, check);
    let empty_xroad = Table::new();
    let security_servers = entries(
        section(t, "xroad").unwrap_or(&empty_xroad),
        "security_servers",
    )
    .into_iter()
    .enumerate()
    .filter_map(|(i, e)| build_identity_rule(e, &format!("xroad.security_servers[{i}]"), check))
    .collect();
    let mut xroad_services = BTreeMap::new();
    let mut xroad_clients = BTreeMap::new();
    let directory = build_directory(
        t,
        &schemas,
        &mut source_signers,
        (
            xroad_server.as_ref(),
            &mut xroad_services,
            &mut xroad_clients,
        ),
        check,
    );
    let documents = build_documents(t, &directory, check);
    let delivery = build_delivery(t, check);
    let limits = build_limits(t, check);
    let empty = Table::new();
    let a = section(t, "audit").unwrap_or(&empty);
    let defaults = AuditConfig::default();
    let audit = AuditConfig {
        checkpoint_every: check.integer(
            a,
            "audit",
            "checkpoint_every",
            defaults.checkpoint_every,
            (1, 10_000_000),
        ),
        checkpoint_interval: check.duration(
            a,
            "audit",
            "checkpoint_interval",
            defaults.checkpoint_interval,
            (SECOND, DAY),
        ),
        on_broken: check.text(a, "audit", "on_broken", false).map_or(
            OnBroken::default(),
            |value| {
                OnBroken::parse(&value).unwrap_or_else(|| {
                    check.report(
                        "audit.on_broken",
                        Cause::UnknownChoice {
                            value,
                            known: OnBroken::CHOICES,
                        },
                    );
                    OnBroken::default()
                })
            },
        ),
        previous_public_keys: check
            .list(a, "audit", "previous_public_keys")
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let path = check.resolve(name);
                check.check_file(
                    format!("audit.previous_public_keys[{i}]"),
                    &path,
                    FileKind::Ed25519PublicKey,
                );
                path
            })
            .collect(),
        previous_key: check.file(a, "audit", "previous_key", false, FileKind::Ed25519Key),
        witnesses: build_audit_witnesses(a, &gateway, check),
        witness_quorum: None,
    };
    let audit = AuditConfig {
        witness_quorum: a.contains_key("witness_quorum").then(|| {
            let most = audit.witnesses.len().max(1) as u64;
            check.integer(a, "audit", "witness_quorum", most, (1, most))
        }),
        ..audit
    };
    let witness = build_witness(t, check);
    let c = section(t, "consent").unwrap_or(&empty);
    let defaults = ConsentConfig::default();
    let consent = ConsentConfig {
        own_consent_age: u32::try_from(check.integer(
            c,
            "consent",
            "own_consent_age",
            u64::from(defaults.own_consent_age),
            (1, 18),
        ))
        .unwrap_or(defaults.own_consent_age),
        require_text_hash: check.boolean(
            c,
            "consent",
            "require_text_hash",
            defaults.require_text_hash,
        ),
        request_ttl: check.duration(
            c,
            "consent",
            "request_ttl",
            defaults.request_ttl,
            (Duration::from_secs(60), Duration::from_secs(3600)),
        ),
    };
    let checks = ChecksConfig {
        timeout: check.duration(
            section(t, "checks").unwrap_or(&empty),
            "checks",
            "timeout",
            ChecksConfig::default().timeout,
            (Duration::from_millis(100), Duration::from_secs(300)),
        ),
    };
    let s = section(t, "storage").unwrap_or(&empty);
    let payload_key = check.file(s, "storage", "payload_key", false, FileKind::HexKey);
    let mut payload_previous_keys = Vec::new();
    for (i, name) in check
        .list(s, "storage", "payload_previous_keys")
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let path = check.resolve(name);
        check.check_file(
            format!("storage.payload_previous_keys[{i}]"),
            &path,
            FileKind::HexKey,
        );
        payload_previous_keys.push(path);
    }
    Config {
        source: source.to_owned(),
        gateway,
        issuers,
        directory,
        schemas,
        delivery,
        limits,
        audit,
        consent,
        checks,
        storage: StorageConfig {
            payload_key,
            payload_previous_keys,
        },
        retention: {
            let r = section(t, "retention").unwrap_or(&empty);
            RetentionConfig {
                transfers: check.duration(
                    r,
                    "retention",
                    "transfers",
                    RetentionConfig::default().transfers,
                    (DAY, 100 * 365 * DAY),
                ),
                // Absent: the audit log is kept whole. At least 30 days, so a checkpoint's
                // entries are never pruned before anyone could fetch their proofs.
                audit: r.contains_key("audit").then(|| {
                    check.duration(
                        r,
                        "retention",
                        "audit",
                        365 * DAY,
                        (30 * DAY, 100 * 365 * DAY),
                    )
                }),
            }
        },
        documents,
        source_signers,
        witness,
        xroad: XroadConfig {
            security_server: xroad_server,
            services: xroad_services,
            security_servers,
            clients: xroad_clients,
        },
    }
}

/// `[xroad]`'s outbound keys: all three or none.
fn build_xroad(t: &Table, check: &mut Checker) -> Option<XroadSecurityServer> {
    let x = section(t, "xroad")?;
    if !["security_server_url", "client", "server_ca"]
        .iter()
        .any(|k| x.contains_key(*k))
    {
        return None;
    }
    let p = "xroad";
    let url =
        check
            .text(x, p, "security_server_url", true)
            .and_then(|u| match parse_base_url(&u) {
                Ok(parts) => Some(parts),
                Err(cause) => {
                    check.report("xroad.security_server_url", cause);
                    None
                }
            });
    let client = check.text(x, p, "client", true).and_then(|c| {
        if xroad_id_parts(&c, 3, 4).is_some() {
            Some(c)
        } else {
            check.report("xroad.client", Cause::BadXroadClient(c));
            None
        }
    });
    let server_ca = check.file(x, p, "server_ca", true, FileKind::CaCertificates);
    let (url, host, port) = url?;
    Some(XroadSecurityServer {
        url,
        host,
        port,
        client: client?,
        server_ca: server_ca?,
    })
}

/// `[documents]`: both files or neither, a certificate and its key of a type that signs
/// (`dsig::Signer`); required as soon as a destination receives ELMO, which is always signed.
fn build_documents(t: &Table, directory: &Directory, check: &mut Checker) -> DocumentsConfig {
    let empty = Table::new();
    let d = section(t, "documents").unwrap_or(&empty);
    let defaults = DocumentsConfig::default();
    let sign_siirto_v1 = check.boolean(d, "documents", "sign_siirto_v1", defaults.sign_siirto_v1);
    let signing_cert = check.file(
        d,
        "documents",
        "signing_cert",
        false,
        FileKind::Certificates,
    );
    let signing_key = check
        .text(d, "documents", "signing_key", false)
        .map(|k| check.resolve(&k));
    match (&signing_cert, &signing_key) {
        (Some(cert), Some(key)) => {
            if let (Ok(c), Ok(k)) = (std::fs::read(cert), std::fs::read(key)) {
                if let Err(e) = siirto_core::dsig::Signer::from_pem(&c, &k) {
                    check.report(
                        "documents.signing_key".to_owned(),
                        Cause::BadFileContent {
                            path: key.clone(),
                            reason: e.to_string(),
                        },
                    );
                }
            } else if let Err(e) = std::fs::read(key) {
                check.report(
                    "documents.signing_key".to_owned(),
                    Cause::FileUnreadable {
                        path: key.clone(),
                        reason: e.to_string(),
                    },
                );
            }
        }
        (Some(_), None) => check.report("documents.signing_key".to_owned(), Cause::Missing),
        (None, Some(_)) => check.report("documents.signing_cert".to_owned(), Cause::Missing),
        (None, None) => {
            if let Some(p) = directory.iter().find(|p| {
                p.has_role(Role::Destination)
                    && p.endpoint
                        .as_ref()
                        .is_some_and(|e| e.format == Format::Elmo)
            }) {
                check.report(
                    "documents.signing_cert".to_owned(),
                    Cause::SigningKeyNeeded {
                        destination: p.id.clone(),
                    },
                );
            }
        }
    }
    DocumentsConfig {
        signing_cert,
        signing_key,
        sign_siirto_v1,
    }
}

/// `elmo_signers` and `allow_sha1`: only on a source whose format is `elmo`; each file PEM
/// certificates.
fn build_source_signers(
    e: &Table,
    prefix: &str,
    roles: &[Role],
    format: Option<Format>,
    check: &mut Checker,
) -> Option<SourceSignersConfig> {
    let listed = e.contains_key("elmo_signers");
    let sha1 = e.contains_key("allow_sha1");
    if !listed && !sha1 {
        return None;
    }
    if !roles.contains(&Role::Source) || format.is_some_and(|f| f != Format::Elmo) {
        let field = if listed { "elmo_signers" } else { "allow_sha1" };
        check.report(join_key(prefix, field), Cause::ElmoSourceOnly { field });
        return None;
    }
    let allow_sha1 = check.boolean(e, prefix, "allow_sha1", false);
    let Some(names) = check.list(e, prefix, "elmo_signers") else {
        if !listed {
            check.report(join_key(prefix, "elmo_signers"), Cause::Missing);
        }
        return None;
    };
    if names.is_empty() {
        check.report(join_key(prefix, "elmo_signers"), Cause::Empty);
        return None;
    }
    let mut elmo_signers = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let path = check.resolve(name);
        check.check_file(
            format!("{}[{i}]", join_key(prefix, "elmo_signers")),
            &path,
            FileKind::Certificates,
        );
        elmo_signers.push(path);
    }
    Some(SourceSignersConfig {
        elmo_signers,
        allow_sha1,
    })
}

/// `[[audit.witnesses]]`: URL, verifier key (type 0x04) and the CA of the witness's server.
fn build_audit_witnesses(
    a: &Table,
    gateway: &GatewayConfig,
    check: &mut Checker,
) -> Vec<AuditWitness> {
    let mut out: Vec<AuditWitness> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for (i, e) in entries(a, "witnesses").into_iter().enumerate() {
        let prefix = format!("audit.witnesses[{i}]");
        let url = check.text(e, &prefix, "url", true).unwrap_or_default();
        let (url, host, port) = match parse_base_url(&url) {
            Ok(parts) => parts,
            Err(cause) => {
                if !url.is_empty() {
                    check.report(format!("{prefix}.url"), cause);
                }
                Default::default()
            }
        };
        let key = check.text(e, &prefix, "key", true).unwrap_or_default();
        match CosignatureVerifier::from_verifier_key(&key) {
            Ok(v) if names.iter().any(|n| n == v.name()) => check.report(
                format!("{prefix}.key"),
                Cause::BadVerifierKey(format!("witness {} is listed twice", v.name())),
            ),
            Ok(v) => names.push(v.name().to_owned()),
            Err(e) if !key.is_empty() => {
                check.report(
                    format!("{prefix}.key"),
                    Cause::BadVerifierKey(e.to_string()),
                );
            }
            Err(_) => {}
        }
        let server_ca = check
            .file(e, &prefix, "server_ca", false, FileKind::CaCertificates)
            .unwrap_or_else(|| gateway.client_ca.clone());
        out.push(AuditWitness {
            url,
            host,
            port,
            key,
            server_ca,
        });
    }
    out
}

/// `[witness]`: the witness key and the logs witnessed, each with its note verifier key.
fn build_witness(t: &Table, check: &mut Checker) -> WitnessConfig {
    let empty = Table::new();
    let w = section(t, "witness").unwrap_or(&empty);
    let key = check.file(w, "witness", "key", false, FileKind::Ed25519Key);
    let mut logs: Vec<WitnessedLog> = Vec::new();
    for (i, e) in entries(w, "logs").into_iter().enumerate() {
        let prefix = format!("witness.logs[{i}]");
        let origin = check.text(e, &prefix, "origin", true).unwrap_or_default();
        let log_key = check.text(e, &prefix, "key", true).unwrap_or_default();
        match AuditPublicKey::from_note_verifier_key(&log_key) {
            Ok((name, _)) if name != origin => check.report(
                format!("{prefix}.key"),
                Cause::BadVerifierKey(format!("the key is named {name:?}, not the origin")),
            ),
            Ok(_) => {}
            Err(e) if !log_key.is_empty() => {
                check.report(
                    format!("{prefix}.key"),
                    Cause::BadVerifierKey(e.to_string()),
                );
            }
            Err(_) => {}
        }
        if logs.iter().any(|l| l.origin == origin) {
            check.report(
                format!("{prefix}.origin"),
                Cause::BadVerifierKey(format!("origin {origin:?} is listed twice")),
            );
        }
        logs.push(WitnessedLog {
            origin,
            key: log_key,
        });
    }
    if !logs.is_empty() && !w.contains_key("key") {
        check.report("witness.key", Cause::Missing);
    }
    WitnessConfig { key, logs }
}

fn build_gateway(t: &Table, check: &mut Checker) -> GatewayConfig {
    let empty = Table::new();
    let g = match section(t, "gateway") {
        Some(g) => g,
        None => {
            if t.get("gateway").is_none() {
                check.report("gateway", Cause::Missing);
            }
            &empty
        }
    };
    let p = "gateway";
    let id = check.text(g, p, "id", true).unwrap_or_default();
    let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
    let listen = check.socket_address(g, p, "listen");
    let admin_listen = check.socket_address(g, p, "admin_listen");
    if let (Some(a), Some(b)) = (listen, admin_listen)
        && a == b
    {
        check.report("gateway.admin_listen", Cause::SameListenAddress(a));
    }
    let mut file =
        |name: &str, kind: FileKind| check.file(g, p, name, true, kind).unwrap_or_default();
    let server_cert = file("server_cert", FileKind::Certificates);
    let server_key = file("server_key", FileKind::PrivateKey);
    let client_ca = file("client_ca", FileKind::CaCertificates);
    let client_cert = file("client_cert", FileKind::Certificates);
    let client_key = file("client_key", FileKind::PrivateKey);
    let audit_key = file("audit_key", FileKind::Ed25519Key);
    let pseudonym_key = file("pseudonym_key", FileKind::SecretKey);
    check.key_pair(
        ("gateway.server_cert", &server_cert),
        ("gateway.server_key", &server_key),
    );
    check.key_pair(
        ("gateway.client_cert", &client_cert),
        ("gateway.client_key", &client_key),
    );
    let files_ok = check.problems.len();
    let mut crl = Vec::new();
    for (i, name) in check
        .list(g, p, "crl")
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let path = check.resolve(name);
        check.check_file(format!("gateway.crl[{i}]"), &path, FileKind::Crl);
        crl.push(path);
    }
    // Each CRL against its issuer in client_ca, once both files read well.
    let client_ca_ok = !check
        .problems
        .iter()
        .any(|problem| problem.key == "gateway.client_ca");
    if check.problems.len() == files_ok && client_ca_ok && !crl.is_empty() {
        let issuers = std::fs::read(&client_ca)
            .map_err(|e| e.to_string())
            .and_then(|bytes| certificates_from_bytes(&bytes));
        if let Ok(issuers) = issuers
            && let Err(e) = CrlSet::load(&crl, &issuers)
        {
            check.report(
                format!("gateway.crl[{}]", e.index),
                Cause::BadFileContent {
                    path: e.path,
                    reason: e.reason,
                },
            );
        }
    }
    let crl_stale = check
        .text(g, p, "crl_stale", false)
        .map_or(CrlStale::default(), |value| {
            CrlStale::parse(&value).unwrap_or_else(|| {
                check.report(
                    "gateway.crl_stale",
                    Cause::UnknownChoice {
                        value,
                        known: CrlStale::CHOICES,
                    },
                );
                CrlStale::default()
            })
        });
    let database_url = check.text(g, p, "database_url", true).unwrap_or_default();
    let database_url = sqlite_relative_to(&database_url, |path| check.resolve(path));
    if !database_url.is_empty()
        && !["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|prefix| database_url.starts_with(prefix))
    {
        check.report("gateway.database_url", Cause::BadDatabaseUrl);
    }
    GatewayConfig {
        id,
        listen: listen.unwrap_or(unspecified),
        admin_listen: admin_listen.unwrap_or(unspecified),
        server_cert,
        server_key,
        client_ca,
        client_cert,
        client_key,
        crl,
        crl_stale,
        database_url,
        audit_key,
        pseudonym_key,
        max_authorization_lifetime: check.duration(
            g,
            p,
            "max_authorization_lifetime",
            Duration::from_secs(900),
            (SECOND, DAY),
        ),
        clock_skew: check.duration(
            g,
            p,
            "clock_skew",
            Duration::from_secs(60),
            (Duration::ZERO, 10 * MINUTE),
        ),
    }
}

fn build_issuers(t: &Table, check: &mut Checker) -> Vec<IssuerConfig> {
    let mut issuers: Vec<IssuerConfig> = Vec::new();
    let mut first_at: HashMap<String, String> = HashMap::new();
    let list = entries(t, "issuers");
    if list.is_empty() && !matches!(t.get("issuers"), Some(v) if !v.is_array()) {
        check.report("issuers", Cause::NoIssuers);
    }
    for (i, e) in list.into_iter().enumerate() {
        let prefix = format!("issuers[{i}]");
        let id = check.text(e, &prefix, "id", true);
        let jwks = check.file(e, &prefix, "jwks", true, FileKind::Jwks);
        if let Some(id) = &id {
            if let Some(first) = first_at.get(id) {
                check.report(
                    format!("{prefix}.id"),
                    Cause::DuplicateIssuer {
                        id: id.clone(),
                        first: first.clone(),
                    },
                );
            } else {
                first_at.insert(id.clone(), prefix.clone());
            }
        }
        issuers.push(IssuerConfig {
            id: id.unwrap_or_default(),
            jwks: jwks.unwrap_or_default(),
        });
    }
    issuers
}

fn build_schemas(t: &Table, check: &mut Checker) -> SchemaPaths {
    let empty = Table::new();
    let s = section(t, "schemas").unwrap_or(&empty);
    SchemaPaths {
        siirto_v1: check.file(s, "schemas", "siirto-v1", false, FileKind::Schema),
        virta: check.file(s, "schemas", "virta", false, FileKind::Schema),
        elmo: check.file(s, "schemas", "elmo", false, FileKind::Schema),
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn build_directory(
    t: &Table,
    schemas: &SchemaPaths,
    source_signers: &mut std::collections::BTreeMap<String, SourceSignersConfig>,
    (xroad, xroad_services, xroad_clients): (
        Option<&XroadSecurityServer>,
        &mut BTreeMap<String, String>,
        &mut BTreeMap<String, String>,
    ),
    check: &mut Checker,
) -> Directory {
    let mut participants: Vec<Participant> = Vec::new();
    let mut first_at: HashMap<String, String> = HashMap::new();
    let mut rules: Vec<(IdentityRule, String)> = Vec::new();
    for (i, e) in entries(t, "participants").into_iter().enumerate() {
        let prefix = format!("participants[{i}]");
        let id = check.text(e, &prefix, "id", true);
        if let Some(id) = &id {
            if !valid_id(id) {
                check.report(format!("{prefix}.id"), Cause::BadId(id.clone()));
            } else if let Some(first) = first_at.get(id) {
                check.report(
                    format!("{prefix}.id"),
                    Cause::DuplicateParticipant {
                        id: id.clone(),
                        first: first.clone(),
                    },
                );
            } else {
                first_at.insert(id.clone(), prefix.clone());
            }
        }

        let mut roles: Vec<Role> = Vec::new();
        match check.list(e, &prefix, "roles") {
            None if e.get("roles").is_none() => {
                check.report(format!("{prefix}.roles"), Cause::Missing)
            }
            None => {}
            Some(names) if names.is_empty() => {
                check.report(format!("{prefix}.roles"), Cause::NoRoles)
            }
            Some(names) => {
                for name in names {
                    match Role::parse(&name) {
                        Some(r) if roles.contains(&r) => {
                            check.report(format!("{prefix}.roles"), Cause::DuplicateRole(name))
                        }
                        Some(r) => roles.push(r),
                        None => check.report(format!("{prefix}.roles"), Cause::UnknownRole(name)),
                    }
                }
            }
        }

        let identity = build_identity_rule(e, &prefix, check);
        if let Some(rule) = &identity {
            if let Some((_, other)) = rules.iter().find(|(r, _)| r == rule) {
                check.report(
                    prefix.clone(),
                    Cause::AmbiguousIdentity {
                        other: other.clone(),
                    },
                );
            } else {
                rules.push((rule.clone(), prefix.clone()));
            }
        }

        let xroad_service = check
            .text(e, &prefix, "xroad_service", false)
            .and_then(|service| {
                if xroad_id_parts(&service, 4, 5).is_some() {
                    Some(service)
                } else {
                    check.report(
                        join_key(&prefix, "xroad_service"),
                        Cause::BadXroadService(service),
                    );
                    None
                }
            });
        if let (Some(id), Some(service)) = (&id, &xroad_service) {
            xroad_services.insert(id.clone(), service.clone());
        }
        let xroad_client = check.text(e, &prefix, "xroad_client", false);
        if let (Some(id), Some(client)) = (&id, xroad_client) {
            let key = join_key(&prefix, "xroad_client");
            if xroad_id_parts(&client, 3, 4).is_none() {
                check.report(key, Cause::BadXroadClient(client));
            } else if let Some(other) = xroad_clients.get(&client) {
                check.report(
                    key,
                    Cause::DuplicateXroadClient {
                        other: other.clone(),
                    },
                );
            } else {
                xroad_clients.insert(client, id.clone());
            }
        }
        let via = xroad_service.as_deref().map(|s| (xroad, s));
        let endpoint = build_endpoint(e, &prefix, &roles, schemas, via, check);
        let signers = build_source_signers(
            e,
            &prefix,
            &roles,
            endpoint.as_ref().map(|e| e.format),
            check,
        );
        if let (Some(id), Some(signers)) = (&id, signers) {
            source_signers.insert(id.clone(), signers);
        }
        let name = build_name(e, &prefix, &roles, check);
        let statutory = build_statutory(e, &prefix, &roles, check);
        let redirect_uris = build_redirect_uris(e, &prefix, &roles, check);
        if let (Some(id), Some(identity)) = (id, identity) {
            participants.push(Participant {
                id,
                roles,
                identity,
                endpoint,
                name,
                statutory,
                redirect_uris,
            });
        }
    }
    Directory::from_participants(participants)
}

/// A `{ fi, sv, en }` table at `prefix.name`, each text required and not empty; `None` (and
/// nothing reported) when the key is absent.
fn localized(e: &Table, prefix: &str, name: &str, check: &mut Checker) -> Option<Localized> {
    let key = join_key(prefix, name);
    let table = match e.get(name)? {
        Value::Table(t) => t,
        // check_keys has reported the wrong type.
        _ => return None,
    };
    let fi = check.text(table, &key, "fi", true);
    let sv = check.text(table, &key, "sv", true);
    let en = check.text(table, &key, "en", true);
    Some(Localized {
        fi: fi?,
        sv: sv?,
        en: en?,
    })
}

/// `name = { fi, sv, en }`: required for sources and destinations, which texts, pages and
/// receipts name.
fn build_name(e: &Table, prefix: &str, roles: &[Role], check: &mut Checker) -> Option<Localized> {
    let role = if roles.contains(&Role::Source) {
        Some("source")
    } else if roles.contains(&Role::Destination) {
        Some("destination")
    } else {
        None
    };
    if let (Some(role), None) = (role, e.get("name")) {
        check.report(join_key(prefix, "name"), Cause::NameMissing { role });
        return None;
    }
    localized(e, prefix, "name", check)
}

/// `statutory_scopes`, `statutory_purposes` and `statutory_law`: what a destination receives
/// by law. All three or none, and only on a destination.
fn build_statutory(
    e: &Table,
    prefix: &str,
    roles: &[Role],
    check: &mut Checker,
) -> Option<StatutoryRules> {
    const FIELDS: [&str; 3] = ["statutory_scopes", "statutory_purposes", "statutory_law"];
    let present: Vec<&str> = FIELDS.into_iter().filter(|f| e.contains_key(*f)).collect();
    // Without roles (missing or unknown: reported already) there is nothing to check against.
    if present.is_empty() || roles.is_empty() {
        return None;
    }
    if !roles.contains(&Role::Destination) {
        for field in present {
            check.report(
                join_key(prefix, field),
                Cause::StatutoryNotDestination { field },
            );
        }
        return None;
    }
    for field in FIELDS {
        if !present.contains(&field) {
            check.report(
                join_key(prefix, field),
                Cause::StatutoryIncomplete { field },
            );
        }
    }
    let mut scope = Scope::empty();
    let mut scope_ok = true;
    for (i, name) in check
        .list(e, prefix, "statutory_scopes")
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        match Category::parse(&name) {
            Some(c) => scope = scope.with(c),
            None => {
                scope_ok = false;
                check.report(
                    format!("{prefix}.statutory_scopes[{i}]"),
                    Cause::UnknownCategory(name),
                );
            }
        }
    }
    let mut purposes = Vec::new();
    for (i, purpose) in check
        .list(e, prefix, "statutory_purposes")
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let valid = !purpose.is_empty()
            && purpose.len() <= 64
            && purpose
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if valid {
            purposes.push(purpose);
        } else {
            check.report(
                format!("{prefix}.statutory_purposes[{i}]"),
                Cause::BadPurpose(purpose),
            );
        }
    }
    for (field, empty) in [
        ("statutory_scopes", scope == Scope::empty() && scope_ok),
        ("statutory_purposes", purposes.is_empty()),
    ] {
        if empty && e.contains_key(field) {
            check.report(join_key(prefix, field), Cause::Empty);
        }
    }
    let law = localized(e, prefix, "statutory_law", check)?;
    (scope_ok && scope != Scope::empty() && !purposes.is_empty()).then_some(StatutoryRules {
        purposes,
        scope,
        law,
    })
}

fn build_identity_rule(e: &Table, prefix: &str, check: &mut Checker) -> Option<IdentityRule> {
    let present: Vec<&'static str> = ["subject", "san_uri", "san_dns", "spki_sha256"]
        .into_iter()
        .filter(|k| e.contains_key(*k))
        .collect();
    if present.len() != 1 {
        check.report(
            prefix.to_owned(),
            Cause::IdentityRuleCount { found: present },
        );
        return None;
    }
    let which = present[0];
    let value = check.text(e, prefix, which, true)?;
    let key = join_key(prefix, which);
    match which {
        "subject" => match parse_subject(&value) {
            Ok(attrs) => Some(IdentityRule::Subject(attrs)),
            Err(err) => {
                check.report(key, Cause::BadSubject(err));
                None
            }
        },
        "san_uri" => Some(IdentityRule::SanUri(value.trim().to_owned())),
        "san_dns" => {
            let name = value.trim().trim_end_matches('.').to_ascii_lowercase();
            if rustls_pki_types::DnsName::try_from(name.as_str()).is_ok() {
                Some(IdentityRule::SanDns(name))
            } else {
                check.report(key, Cause::BadDnsName(value));
                None
            }
        }
        _ => {
            let hex: String = value.trim().chars().filter(|c| *c != ':').collect();
            match siirto_core::clock::unhex(&hex).and_then(|b| <[u8; 32]>::try_from(b).ok()) {
                Some(pin) => Some(IdentityRule::SpkiSha256(pin)),
                None => {
                    check.report(key, Cause::BadSpkiPin);
                    None
                }
            }
        }
    }
}

fn build_endpoint(
    e: &Table,
    prefix: &str,
    roles: &[Role],
    schemas: &SchemaPaths,
    xroad: Option<(Option<&XroadSecurityServer>, &str)>,
    check: &mut Checker,
) -> Option<Endpoint> {
    let role = if roles.contains(&Role::Source) {
        Some("source")
    } else if roles.contains(&Role::Destination) {
        Some("destination")
    } else {
        None
    };
    let Some(role) = role else {
        for field in ["base_url", "server_ca", "format", "xroad_service"]
            .into_iter()
            .chain(PROTOCOL_FIELDS)
        {
            if e.contains_key(field) && !roles.is_empty() {
                check.report(
                    join_key(prefix, field),
                    Cause::EndpointFieldNotAllowed { field },
                );
            }
        }
        return None;
    };
    let omadata = e.get("protocol").and_then(Value::as_str) == Some("koski-omadata");
    if let Some((server, _)) = xroad {
        let key = join_key(prefix, "xroad_service");
        if server.is_none() {
            check.report(key.clone(), Cause::XroadNotConfigured);
        }
        if omadata {
            check.report(key, Cause::XroadNotForOmadata);
        }
        for field in ["base_url", "server_ca"] {
            if e.contains_key(field) {
                check.report(join_key(prefix, field), Cause::XroadEndpointField { field });
            }
        }
    }
    for field in ["base_url", "server_ca", "format"] {
        // A KOSKI OmaData source is reached at its issuer: `base_url` defaults to it; a
        // participant on X-Road at the security server (`[xroad]`).
        let via_xroad = xroad.is_some() && field != "format";
        if !(e.contains_key(field) || omadata && field == "base_url" || via_xroad) {
            check.report(
                join_key(prefix, field),
                Cause::EndpointFieldMissing { role, field },
            );
        }
    }
    let url_key = if omadata && !e.contains_key("base_url") {
        "omadata_issuer"
    } else {
        "base_url"
    };
    let (url, server_ca) = match xroad {
        // X-Road Message Protocol for REST r1, §4.1: `{security server}/r1/{serviceId}`, each
        // part of the service id percent-encoded on its own and the '/' between them kept
        // (§4.2).
        Some((server, service)) => {
            let server = server?;
            let url = format!("{}/r1/{}", server.url, xroad_path(service));
            (
                Some((url, server.host.clone(), server.port)),
                Some(server.server_ca.clone()),
            )
        }
        None => (
            check
                .text(e, prefix, url_key, false)
                .and_then(|u| match parse_base_url(&u) {
                    Ok(parts) => Some(parts),
                    Err(cause) => {
                        check.report(join_key(prefix, url_key), cause);
                        None
                    }
                }),
            check.file(e, prefix, "server_ca", false, FileKind::CaCertificates),
        ),
    };
    let format = check
        .text(e, prefix, "format", false)
        .and_then(|f| match Format::parse(&f) {
            Some(format) => Some(format),
            None => {
                check.report(join_key(prefix, "format"), Cause::UnknownFormat(f));
                None
            }
        });
    if let Some(format) = format
        && format != Format::SiirtoV1
        && format.is_xml()
        && schemas.path(format).is_none()
    {
        check.report(join_key(prefix, "format"), Cause::SchemaMissing(format));
    }
    if let Some(format) = format
        && !format.is_destination()
        && roles.contains(&Role::Destination)
    {
        check.report(join_key(prefix, "format"), Cause::SourceOnlyFormat(format));
    }
    let protocol = build_protocol(e, prefix, roles, format, check);
    let (base_url, host, port) = url?;
    Some(Endpoint {
        base_url,
        host,
        port,
        server_ca: server_ca?,
        format: format?,
        protocol: protocol?,
    })
}

/// The keys only a source's protocol reads.
const PROTOCOL_FIELDS: [&str; 8] = [
    "protocol",
    "koski_types",
    "koski_path",
    "virta_caller",
    "omadata_client_id",
    "omadata_issuer",
    "omadata_resource",
    "omadata_scope",
];

/// `protocol` and the keys of the protocol it names (CONTRACT.md, "Source protocols"): which
/// keys belong to which protocol, the KOSKI types, the KOSKI path, and the VIRTA credentials
/// file (read and checked here; its values never appear in a problem).
fn build_protocol(
    e: &Table,
    prefix: &str,
    roles: &[Role],
    format: Option<Format>,
    check: &mut Checker,
) -> Option<SourceProtocol> {
    if !roles.contains(&Role::Source) {
        for field in PROTOCOL_FIELDS {
            if e.contains_key(field) && !roles.is_empty() {
                check.report(
                    join_key(prefix, field),
                    Cause::ProtocolFieldNotAllowed { field },
                );
            }
        }
        return Some(SourceProtocol::Siirto);
    }
    let key = |field: &str| join_key(prefix, field);
    let name = match e.get("protocol") {
        None => "siirto".to_owned(),
        Some(_) => check.text(e, prefix, "protocol", false)?,
    };
    let Some(name) = SourceProtocol::NAMES.into_iter().find(|n| *n == name) else {
        check.report(
            key("protocol"),
            Cause::UnknownChoice {
                value: name,
                known: "siirto, koski, virta-soap, koski-omadata",
            },
        );
        return None;
    };
    if name != "siirto" && roles.contains(&Role::Destination) {
        check.report(key("protocol"), Cause::ProtocolNotForDestination(name));
    }
    for (field, belongs_to) in [
        ("koski_types", "koski"),
        ("koski_path", "koski"),
        ("virta_caller", "virta-soap"),
        ("omadata_client_id", "koski-omadata"),
        ("omadata_issuer", "koski-omadata"),
        ("omadata_resource", "koski-omadata"),
        ("omadata_scope", "koski-omadata"),
    ] {
        if e.contains_key(field) && belongs_to != name {
            check.report(
                key(field),
                Cause::NotForProtocol {
                    field,
                    belongs_to,
                    protocol: name,
                },
            );
        }
    }
    let expected = match name {
        "koski" | "koski-omadata" => Some(Format::Koski),
        "virta-soap" => Some(Format::Virta),
        _ => None,
    };
    if let (Some(expected), Some(format)) = (expected, format)
        && format != expected
    {
        check.report(
            key("format"),
            Cause::ProtocolFormatMismatch {
                protocol: name,
                format,
                expected,
            },
        );
    }
    match name {
        "koski" => {
            let types = build_koski_types(e, prefix, check);
            let path = match e.get("koski_path") {
                None => Some(DEFAULT_KOSKI_PATH.to_owned()),
                Some(_) => check.text(e, prefix, "koski_path", false).and_then(|p| {
                    let p = p.trim().to_owned();
                    if valid_koski_path(&p) {
                        Some(p)
                    } else {
                        check.report(key("koski_path"), Cause::BadKoskiPath(p));
                        None
                    }
                }),
            };
            Some(SourceProtocol::Koski(KoskiCall {
                path: path?,
                types: types?,
            }))
        }
        "virta-soap" => {
            let path = check.text(e, prefix, "virta_caller", true)?;
            let path = check.resolve(&path);
            match std::fs::read(&path) {
                Err(err) => {
                    check.report(
                        key("virta_caller"),
                        Cause::FileUnreadable {
                            path,
                            reason: err.to_string(),
                        },
                    );
                    None
                }
                Ok(bytes) => match read_virta_caller(&bytes) {
                    Ok(caller) => Some(SourceProtocol::VirtaSoap(caller)),
                    Err(reason) => {
                        check.report(key("virta_caller"), Cause::BadFileContent { path, reason });
                        None
                    }
                },
            }
        }
        "koski-omadata" => build_omadata(e, prefix, check).map(SourceProtocol::KoskiOmadata),
        _ => Some(SourceProtocol::Siirto),
    }
}

/// The keys of `protocol = "koski-omadata"`: `omadata_client_id`, `omadata_issuer` and
/// `omadata_resource` (https URLs), `omadata_scope` (RFC 6749 §3.3 scope tokens; KOSKI takes
/// only one `OPISKELUOIKEUDET_*` scope at a time).
fn build_omadata(e: &Table, prefix: &str, check: &mut Checker) -> Option<OmadataCall> {
    let key = |field: &str| join_key(prefix, field);
    let client_id = check.text(e, prefix, "omadata_client_id", true);
    if let Some(id) = &client_id
        && !siirto_core::omadata::valid_parameter(id)
    {
        check.report(
            key("omadata_client_id"),
            Cause::BadUrl("a client_id is visible ASCII characters only".into()),
        );
    }
    let mut url = |field: &'static str| {
        check
            .text(e, prefix, field, true)
            .and_then(|u| match parse_base_url(&u) {
                Ok((url, _, _)) => Some(url),
                Err(cause) => {
                    check.report(key(field), cause);
                    None
                }
            })
    };
    let issuer = url("omadata_issuer");
    let resource = url("omadata_resource");
    let scope =
        check
            .text(e, prefix, "omadata_scope", true)
            .and_then(|s| match check_omadata_scope(&s) {
                Ok(()) => Some(s.split_whitespace().collect::<Vec<_>>().join(" ")),
                Err(why) => {
                    check.report(key("omadata_scope"), Cause::BadOmadataScope(why));
                    None
                }
            });
    Some(OmadataCall {
        client_id: client_id?,
        issuer: issuer?,
        resource: resource?,
        scope: scope?,
    })
}

/// RFC 6749 §3.3: scope tokens of `%x21 / %x23-5B / %x5D-7E`, separated by spaces; KOSKI's
/// document: at most one `OPISKELUOIKEUDET_` scope.
fn check_omadata_scope(s: &str) -> Result<(), String> {
    let tokens: Vec<&str> = s.split(' ').filter(|t| !t.is_empty()).collect();
    if tokens.is_empty() {
        return Err("at least one scope is required".into());
    }
    if let Some(t) = tokens.iter().find(|t| {
        !t.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
    }) {
        return Err(format!("\"{t}\" has a character a scope token cannot"));
    }
    let study_rights = tokens
        .iter()
        .filter(|t| t.starts_with("OPISKELUOIKEUDET_"))
        .count();
    if study_rights > 1 {
        return Err("KOSKI takes only one OPISKELUOIKEUDET_ scope at a time".into());
    }
    Ok(())
}

/// `redirect_uris` of an e-service: where KOSKI may return the person (as registered at
/// KOSKI). Absolute https URLs without a fragment (RFC 6749 §3.1.2), or http on localhost for
/// development (KOSKI's test environment allows them).
fn build_redirect_uris(
    e: &Table,
    prefix: &str,
    roles: &[Role],
    check: &mut Checker,
) -> Vec<String> {
    let key = join_key(prefix, "redirect_uris");
    if !e.contains_key("redirect_uris") {
        return Vec::new();
    }
    if !roles.contains(&Role::Eservice) {
        check.report(key, Cause::RedirectUrisNotAllowed);
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, uri) in check
        .list(e, prefix, "redirect_uris")
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        if valid_redirect_uri(&uri) {
            out.push(uri);
        } else {
            check.report(format!("{key}[{i}]"), Cause::BadRedirectUri(uri));
        }
    }
    out
}

fn valid_redirect_uri(uri: &str) -> bool {
    let Ok(parsed) = uri.parse::<http::Uri>() else {
        return false;
    };
    let Some(host) = parsed.host() else {
        return false;
    };
    if uri.contains('#') || uri.len() > 2048 || uri.chars().any(|c| c.is_whitespace()) {
        return false;
    }
    match parsed.scheme_str() {
        Some("https") => true,
        Some("http") => host == "localhost" || host == "127.0.0.1",
        _ => false,
    }
}

/// `koski_types`: required for `koski`, at least one, each a code of KOSKI's
/// `opiskeluoikeudentyyppi` list, each once.
fn build_koski_types(e: &Table, prefix: &str, check: &mut Checker) -> Option<Vec<String>> {
    let key = join_key(prefix, "koski_types");
    let Some(values) = check.list(e, prefix, "koski_types") else {
        if !e.contains_key("koski_types") {
            check.report(key, Cause::Missing);
        }
        return None;
    };
    if values.is_empty() {
        check.report(key, Cause::NoKoskiTypes);
        return None;
    }
    let mut types: Vec<String> = Vec::with_capacity(values.len());
    let mut ok = true;
    for (i, value) in values.into_iter().enumerate() {
        let value = value.trim().to_owned();
        if !is_koski_type(&value) {
            let suggestion = KOSKI_TYPES
                .iter()
                .map(|t| (strsim::levenshtein(&value, t), *t))
                .filter(|(d, t)| *d <= 2.max(t.len() / 4))
                .min_by_key(|(d, _)| *d)
                .map(|(_, t)| t.to_owned());
            check.report(
                format!("{key}[{i}]"),
                Cause::UnknownKoskiType { value, suggestion },
            );
            ok = false;
        } else if types.contains(&value) {
            check.report(format!("{key}[{i}]"), Cause::DuplicateKoskiType(value));
            ok = false;
        } else {
            types.push(value);
        }
    }
    ok.then_some(types)
}

/// `koski_path`: `/segment[/segment...]` of RFC 3986 unreserved characters, no empty, `.` or
/// `..` segment.
fn valid_koski_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    !rest.is_empty()
        && rest.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
        })
}

/// Reads a `virta_caller` file: a TOML table with exactly `jarjestelma`, `tunnus` and `avain`,
/// each a string. The reason for a refusal names keys and positions, never a value (the file
/// holds a password).
pub fn read_virta_caller(bytes: &[u8]) -> Result<VirtaCaller, String> {
    const FIELDS: [&str; 3] = ["jarjestelma", "tunnus", "avain"];
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())?;
    let table: Table = toml::from_str(text).map_err(|e| {
        let at = e.span().map_or_else(String::new, |span| {
            let before = &text.as_bytes()[..span.start.min(text.len())];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
            format!(" at line {line}, column {column}")
        });
        format!("not valid TOML{at} (the text is not shown: the file holds credentials)")
    })?;
    for name in table.keys() {
        if !FIELDS.contains(&name.as_str()) {
            let suggestion = FIELDS
                .iter()
                .map(|f| (strsim::levenshtein(name, f), *f))
                .filter(|(d, _)| *d <= 2)
                .min_by_key(|(d, _)| *d)
                .map(|(_, f)| format!("; did you mean `{f}`?"))
                .unwrap_or_default();
            return Err(format!(
                "unknown key `{name}` (known: jarjestelma, tunnus, avain){suggestion}"
            ));
        }
    }
    let mut values = Vec::with_capacity(3);
    for field in FIELDS {
        match table.get(field) {
            None => return Err(format!("missing `{field}`")),
            Some(Value::String(s)) => values.push(s.as_str()),
            Some(other) => {
                return Err(format!(
                    "`{field}` must be a string, found {}",
                    type_name(other)
                ));
            }
        }
    }
    VirtaCaller::new(values[0], values[1], values[2]).map_err(|e| e.to_string())
}

/// An X-Road identifier as it goes in a URL path or an `X-Road-Client` header: each part
/// percent-encoded as UTF-8 on its own, the '/' separators kept (X-Road Message Protocol for
/// REST r1, §4.2 and §4.3).
pub fn xroad_path(id: &str) -> String {
    id.split('/')
        .map(crate::outbound::encode_path_segment)
        .collect::<Vec<_>>()
        .join("/")
}

/// `https://host[:port][/prefix]` → (base URL without trailing slash, host, port).
pub fn parse_base_url(s: &str) -> Result<(String, String, u16), Cause> {
    let s = s.trim();
    if !s.starts_with("https://") {
        return Err(Cause::NotHttps(s.to_owned()));
    }
    let uri: http::Uri = s
        .parse()
        .map_err(|e: http::uri::InvalidUri| Cause::BadUrl(e.to_string()))?;
    let authority = uri
        .authority()
        .ok_or_else(|| Cause::BadUrl("no host".to_owned()))?;
    if authority.as_str().contains('@') {
        return Err(Cause::BadUrl("user information is not allowed".to_owned()));
    }
    if uri.query().is_some() || s.contains('#') {
        return Err(Cause::BadUrl(
            "a query or fragment is not allowed".to_owned(),
        ));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if rustls_pki_types::ServerName::try_from(host.as_str()).is_err() {
        return Err(Cause::BadUrl(format!(
            "host \"{host}\" is not a DNS name or IP address"
        )));
    }
    let port = authority.port_u16().unwrap_or(443);
    if port == 0 {
        return Err(Cause::BadUrl("port 0".to_owned()));
    }
    let path = uri.path().trim_end_matches('/');
    Ok((format!("https://{}{path}", authority.as_str()), host, port))
}

fn build_delivery(t: &Table, check: &mut Checker) -> DeliveryConfig {
    let empty = Table::new();
    let d = section(t, "delivery").unwrap_or(&empty);
    let p = "delivery";
    let def = DeliveryConfig::default();
    let as_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    let initial_backoff = check.duration(
        d,
        p,
        "initial_backoff",
        def.initial_backoff,
        (Duration::from_millis(1), HOUR),
    );
    let max_backoff = check.duration(
        d,
        p,
        "max_backoff",
        def.max_backoff,
        (Duration::from_millis(1), DAY),
    );
    if max_backoff < initial_backoff {
        check.report(
            "delivery.max_backoff",
            Cause::SmallerThan {
                other: "delivery.initial_backoff",
                value: format_duration(max_backoff),
                limit: format_duration(initial_backoff),
            },
        );
    }
    let connect_timeout = check.duration(
        d,
        p,
        "connect_timeout",
        def.connect_timeout,
        (Duration::from_millis(10), 5 * MINUTE),
    );
    let request_timeout = check.duration(
        d,
        p,
        "request_timeout",
        def.request_timeout,
        (Duration::from_millis(10), HOUR),
    );
    let lease = check.duration(d, p, "lease", def.lease, (SECOND, HOUR));
    // A call must end before its lease can be taken over: otherwise another worker (or a
    // cancellation) could act on a transfer whose delivery is still in flight.
    if lease <= connect_timeout + request_timeout {
        check.report(
            "delivery.lease",
            Cause::NotLongerThan {
                other: "delivery.connect_timeout + delivery.request_timeout",
                value: format_duration(lease),
                limit: format_duration(connect_timeout + request_timeout),
            },
        );
    }
    DeliveryConfig {
        // Absent: no count; transient failures are retried until `max_age`.
        max_attempts: d.get("max_attempts").map(|_| {
            u32::try_from(check.integer(d, p, "max_attempts", 1, (1, 100_000))).unwrap_or(1)
        }),
        max_age: check.duration(d, p, "max_age", def.max_age, (SECOND, 30 * DAY)),
        peer_down_after: u32::try_from(check.integer(
            d,
            p,
            "peer_down_after",
            u64::from(def.peer_down_after),
            (1, 1000),
        ))
        .unwrap_or(def.peer_down_after),
        initial_backoff,
        max_backoff,
        connect_timeout,
        request_timeout,
        max_response_bytes: check.size(
            d,
            p,
            "max_response_bytes",
            def.max_response_bytes,
            (KIB, GIB),
        ),
        workers: as_usize(check.integer(d, p, "workers", def.workers as u64, (1, 1024))),
        // A record larger than the budget is still worked on (alone, holding all of it).
        max_in_flight_bytes: check.size(
            d,
            p,
            "max_in_flight_bytes",
            def.max_in_flight_bytes,
            (MIB, 1024 * GIB),
        ),
        per_destination_concurrency: as_usize(check.integer(
            d,
            p,
            "per_destination_concurrency",
            def.per_destination_concurrency as u64,
            (1, 1024),
        )),
        max_pending: check.integer(d, p, "max_pending", def.max_pending, (1, 1_000_000_000)),
        lease,
    }
}

fn build_limits(t: &Table, check: &mut Checker) -> LimitsConfig {
    let empty = Table::new();
    let l = section(t, "limits").unwrap_or(&empty);
    let x = section(l, "xml").unwrap_or(&empty);
    let j = section(l, "json").unwrap_or(&empty);
    let def = LimitsConfig::default();
    let dx = def.xml;
    let dj = def.json;
    let pj = "limits.json";
    let as_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    let px = "limits.xml";
    let dc = def.connections;
    let max_connections = check.integer(
        l,
        "limits",
        "max_connections",
        dc.max_connections as u64,
        (1, 1_000_000),
    );
    let connections = siirto_core::admission::AdmissionLimits {
        max_connections: as_usize(max_connections),
        // The reserve leaves at least one slot to addresses not yet authenticated.
        reserved_connections: as_usize(check.integer(
            l,
            "limits",
            "reserved_connections",
            (dc.reserved_connections as u64).min(max_connections - 1),
            (0, max_connections - 1),
        )),
        max_connections_per_address: as_usize(check.integer(
            l,
            "limits",
            "max_connections_per_address",
            dc.max_connections_per_address as u64,
            (1, 1_000_000),
        )),
        max_handshakes_per_address: as_usize(check.integer(
            l,
            "limits",
            "max_handshakes_per_address",
            dc.max_handshakes_per_address as u64,
            (1, 1_000_000),
        )),
        authenticated_address_ttl: check.duration(
            l,
            "limits",
            "authenticated_address_ttl",
            dc.authenticated_address_ttl,
            (MINUTE, 30 * 24 * 60 * MINUTE),
        ),
    };
    LimitsConfig {
        max_request_bytes: check.size(
            l,
            "limits",
            "max_request_bytes",
            def.max_request_bytes,
            (KIB, 64 * MIB),
        ),
        max_header_bytes: check.size(
            l,
            "limits",
            "max_header_bytes",
            def.max_header_bytes,
            (KIB, MIB),
        ),
        request_timeout: check.duration(
            l,
            "limits",
            "request_timeout",
            def.request_timeout,
            (Duration::from_millis(100), 10 * MINUTE),
        ),
        handshake_timeout: check.duration(
            l,
            "limits",
            "handshake_timeout",
            def.handshake_timeout,
            (Duration::from_millis(100), 10 * MINUTE),
        ),
        connections,
        xml: siirto_xsd::Limits {
            max_bytes: check.size(x, px, "max_bytes", dx.max_bytes, (KIB, 4 * GIB)),
            max_depth: as_usize(check.integer(
                x,
                px,
                "max_depth",
                dx.max_depth as u64,
                (2, 10_000),
            )),
            max_elements: as_usize(check.integer(
                x,
                px,
                "max_elements",
                dx.max_elements as u64,
                (1, 1_000_000_000),
            )),
            max_attributes: as_usize(check.integer(
                x,
                px,
                "max_attributes",
                dx.max_attributes as u64,
                (1, 10_000),
            )),
            max_name_len: check.size(x, px, "max_name_len", dx.max_name_len, (16, 64 * KIB)),
            max_text_len: check.size(x, px, "max_text_len", dx.max_text_len, (KIB, GIB)),
        },
        json: siirto_core::formats::json_in::JsonLimits {
            max_bytes: check.size(j, pj, "max_bytes", dj.max_bytes, (KIB, 4 * GIB)),
            // serde_json refuses deeper documents itself; the scan must name the limit first.
            max_depth: as_usize(check.integer(
                j,
                pj,
                "max_depth",
                dj.max_depth as u64,
                (2, siirto_core::formats::json_in::DEPTH_CEILING as u64),
            )),
            max_string_len: check.size(j, pj, "max_string_len", dj.max_string_len, (KIB, GIB)),
            max_array_items: as_usize(check.integer(
                j,
                pj,
                "max_array_items",
                dj.max_array_items as u64,
                (1, 1_000_000_000),
            )),
        },
    }
}

const EXAMPLE_TOML: &str = r#"# Siirto gateway configuration. Relative paths resolve against this file's directory.
# Every value may be overridden with SIIRTO__SECTION__KEY (e.g. SIIRTO__GATEWAY__DATABASE_URL,
# SIIRTO__PARTICIPANTS__0__BASE_URL).

[gateway]
id = "siirto.example.fi"                  # the aud every authorization must name
listen = "127.0.0.1:8443"                 # mTLS API
admin_listen = "127.0.0.1:9090"           # plain HTTP: /healthz, /readyz, /metrics
server_cert = "certs/gateway.pem"         # chain, PEM
server_key = "certs/gateway.key"          # PKCS#8 PEM (EC P-256, Ed25519 or RSA)
client_ca = "certs/participants-ca.pem"   # who may call us
client_cert = "certs/gateway-client.pem"  # who we are when we call out
client_key = "certs/gateway-client.key"
crl = []                                  # optional PEM/DER CRL files for client certificates
crl_stale = "refuse"                      # a CRL past its nextUpdate: "refuse" its certificates, or "warn"
database_url = "sqlite://siirto.db"       # or postgres://user:password@host/db
audit_key = "certs/audit-signing.key"     # Ed25519, PKCS#8 PEM
pseudonym_key = "certs/pseudonym.key"     # >= 32 bytes (64+ hex digits are decoded)
max_authorization_lifetime = "900s"       # largest allowed exp - iat
clock_skew = "60s"

[[issuers]]
id = "https://eservice.turku.fi"
jwks = "certs/eservice-turku.jwks.json"   # public keys, chosen by kid

[[participants]]
id = "turku"
roles = ["source", "destination", "eservice"]
subject = "CN=turku-education,O=Turun kaupunki,C=FI"   # or san_uri / san_dns / spki_sha256
base_url = "https://127.0.0.1:9443"      # sources and destinations only
server_ca = "certs/participants-ca.pem"
format = "siirto-v1"                      # siirto-v1 | virta | elmo | koski (sources only)
# protocol = "siirto"                     # how a source is called: siirto | koski | virta-soap | koski-omadata
name = { fi = "Turun kaupunki", sv = "Åbo stad", en = "City of Turku" }   # sources and destinations
# What a destination receives by law, without consent (all three, or none):
statutory_purposes = ["school-change"]
statutory_scopes = ["identity", "enrolment", "achievements", "support"]
statutory_law = { fi = "perusopetuslaki (628/1998) 40 §", sv = "lagen om grundläggande utbildning (628/1998) 40 §", en = "Basic Education Act (628/1998), section 40" }

# A national register as a source (README, "Sources: KOSKI and VIRTA"):
# [[participants]]
# id = "koski"
# roles = ["source"]
# subject = "CN=koski.opintopolku.fi,O=Opetushallitus,C=FI"
# base_url = "https://koski.opintopolku.fi"
# server_ca = "certs/koski-server-ca.pem"
# name = { fi = "KOSKI (Opetushallitus)", sv = "KOSKI (Utbildningsstyrelsen)", en = "KOSKI (Finnish National Agency for Education)" }
# format = "koski"
# protocol = "koski"                      # POST {base_url}{koski_path}/hetu, JSON
# koski_types = ["perusopetus", "lukiokoulutus"]   # opiskeluoikeudentyyppi codes asked for
# koski_path = "/koski/api/luovutuspalvelu"        # the release path KOSKI granted
#
# [[participants]]
# id = "virta"
# roles = ["source"]
# subject = "CN=virta.csc.fi,O=CSC,C=FI"
# base_url = "https://virta.example/luku/OpiskelijanTiedot"   # the SOAP endpoint CSC gives
# server_ca = "certs/virta-server-ca.pem"
# name = { fi = "VIRTA (CSC)", sv = "VIRTA (CSC)", en = "VIRTA (CSC)" }
# format = "virta"
# protocol = "virta-soap"                 # OpiskelijanKaikkiTiedot, SOAP 1.1
# virta_caller = "certs/virta-caller.toml"          # jarjestelma, tunnus, avain (secret)
#
# KOSKI with the student's own consent given at KOSKI (OmaData; README, "Consent given at KOSKI"):
# [[participants]]
# id = "koski-omadata"
# roles = ["source"]
# subject = "CN=oppija.koski.opintopolku.fi,O=Opetushallitus,C=FI"
# server_ca = "certs/koski-server-ca.pem"
# name = { fi = "KOSKI (Opetushallitus)", sv = "KOSKI (Utbildningsstyrelsen)", en = "KOSKI (Finnish National Agency for Education)" }
# format = "koski"
# protocol = "koski-omadata"
# omadata_client_id = "siirto-turku"                 # given by KOSKI's maintainers
# omadata_issuer = "https://opintopolku.fi/koski/omadata-oauth2"   # RFC 8414 metadata below it
# omadata_resource = "https://oppija-raportointi.koski.opintopolku.fi/koski/api/omadata-oauth2/resource-server"
# omadata_scope = "HENKILOTIEDOT_KAIKKI_TIEDOT OPISKELUOIKEUDET_KAIKKI_TIEDOT"
# (and on each e-service: redirect_uris = ["https://eservice.turku.fi/omadata/return"])

[[participants]]
id = "registry-operator"
roles = ["operator"]
subject = "CN=registry-operator,O=Siirto,C=FI"

[schemas]
# siirto-v1 defaults to the schema built into the binary.
# virta = "/path/to/virta/Virta.xsd"
# elmo = "/path/to/elmo/schema.xsd"

[delivery]
# max_attempts = 12                       # optional: unset, transient failures retry until max_age
max_age = "5d"
peer_down_after = 5
initial_backoff = "1s"
max_backoff = "10m"
connect_timeout = "5s"
request_timeout = "30s"
max_response_bytes = "16MiB"
workers = 32
max_in_flight_bytes = "64MiB"
per_destination_concurrency = 16
max_pending = 100000
lease = "60s"

[limits]
max_request_bytes = "64KiB"
max_header_bytes = "16KiB"
request_timeout = "10s"
handshake_timeout = "10s"
max_connections = 1024
reserved_connections = 256              # for addresses recently authenticated as participants
max_connections_per_address = 128
max_handshakes_per_address = 64
authenticated_address_ttl = "24h"

[limits.xml]
max_bytes = "16MiB"
max_depth = 128
max_elements = 1000000
max_attributes = 64
max_name_len = 512
max_text_len = "1MiB"

[limits.json]                             # KOSKI documents (format = "koski")
max_bytes = "16MiB"
max_depth = 64
max_string_len = "1MiB"
max_array_items = 100000

[audit]
checkpoint_every = 1000
checkpoint_interval = "60s"

[consent]
own_consent_age = 15                      # younger students need a guardian's act (the operator's policy)
require_text_hash = true                  # consent needs consent_sha256 and consent_lang
request_ttl = "10m"                       # how long a KOSKI OmaData consent request waits (1m to 1h)

[checks]
timeout = "10s"                           # a check waits this long for its source (one attempt)

[storage]
# payload_key = "certs/payload.key"       # 64 hex digits; default: derived from pseudonym_key
# payload_previous_keys = []

[documents]                               # XML Signature of delivered documents (README, "Signed records")
# Required as soon as a destination's format is "elmo": every ELMO document is signed.
# signing_cert = "certs/document-signing.pem"   # PEM; goes into each ds:X509Certificate
# signing_key = "certs/document-signing.key"    # RSA >= 2048 (rsa-sha256) or EC P-256 (ecdsa-sha256)
# sign_siirto_v1 = true                   # sign siirto-v1 documents too (when a key is set)
# An ELMO source pins its signers on its [[participants]] entry:
# elmo_signers = ["certs/emrex-signer.pem"]   # its documents must verify with one of these keys
# allow_sha1 = false                      # accept rsa-sha1 / SHA-1 digests (older EMREX signers)

# X-Road (Suomi.fi-palveluväylä; README, "X-Road"). Outbound: the city's own security server.
# [xroad]
# security_server_url = "https://ss.example.fi:8443"
# client = "FI/MUN/0123456-7/siirto"      # Siirto's subsystem: INSTANCE/CLASS/MEMBER[/SUBSYSTEM]
# server_ca = "certs/security-server-ca.pem"
# A source or destination on X-Road has xroad_service instead of base_url and server_ca:
# xroad_service = "FI/GOV/1234567-8/koski/luovutuspalvelu"
# Inbound: security servers that may call the API, and participants reached through them:
# [[xroad.security_servers]]
# subject = "CN=ss1.example.fi,O=Example,C=FI"
# xroad_client = "FI/MUN/0123456-7/eservice"   # on a [[participants]] entry: only via X-Road
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use siirto_core::audit::AuditSigningKey;
    use siirto_core::clock::{SeededRandom, Timestamp};
    use siirto_core::config::redact_url;
    use siirto_devkit::pki::{DevPki, PkiOptions};

    struct Fixture {
        _dir: tempfile::TempDir,
        pki: DevPki,
        text: String,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = PkiOptions::new(Timestamp::from_secs(1_790_000_000));
        let pki = DevPki::generate(dir.path(), &options, &SeededRandom::new(11)).expect("pki");
        let text = std::fs::read_to_string(&pki.config).expect("read config");
        Fixture {
            _dir: dir,
            pki,
            text,
        }
    }

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    impl Fixture {
        fn load(&self, text: &str) -> Result<Config, ConfigError> {
            Config::from_toml(text, &self.pki.config, no_env())
        }

        fn problems(&self, text: &str) -> Vec<Problem> {
            match self.load(text) {
                Err(e @ ConfigError::Invalid { .. }) => e.problems().to_vec(),
                other => panic!("expected problems, got {other:?} for:\n{text}"),
            }
        }
    }

    #[test]
    fn generated_development_config_loads() {
        let f = fixture();
        let cfg = Config::load(&f.pki.config).expect("dev config loads");
        assert_eq!(cfg.gateway.id, "siirto.dev.test");
        assert_eq!(cfg.gateway.listen, "127.0.0.1:8443".parse().expect("addr"));
        assert!(cfg.gateway.server_cert.is_absolute());
        assert!(cfg.gateway.server_cert.starts_with(&f.pki.dir));
        assert_eq!(cfg.gateway.crl, vec![f.pki.crl.clone()]);
        assert_eq!(cfg.gateway.crl_stale, CrlStale::Refuse);
        assert_eq!(cfg.issuers.len(), 1);
        let turku = cfg.directory.get("turku").expect("turku");
        assert_eq!(
            turku.roles,
            vec![Role::Source, Role::Destination, Role::Eservice]
        );
        assert_eq!(
            turku.identity,
            IdentityRule::Subject(vec![
                ("C".to_owned(), "FI".to_owned()),
                ("CN".to_owned(), "turku-education".to_owned()),
                ("O".to_owned(), "Turun kaupunki".to_owned()),
            ])
        );
        let ep = turku.endpoint.as_ref().expect("endpoint");
        assert_eq!(ep.base_url, "https://127.0.0.1:9443");
        assert_eq!((ep.host.as_str(), ep.port), ("127.0.0.1", 9443));
        assert_eq!(ep.format, Format::SiirtoV1);
        assert_eq!(
            cfg.directory.get("eservice").expect("eservice").identity,
            IdentityRule::SanDns("eservice.siirto.test".to_owned())
        );
        assert!(
            cfg.directory
                .get("registry-operator")
                .expect("op")
                .endpoint
                .is_none()
        );
        assert_eq!(cfg.delivery.max_attempts, None);
        assert_eq!(cfg.delivery.max_age, Duration::from_secs(5 * 24 * 3600));
        assert_eq!(cfg.delivery.peer_down_after, 5);
        assert!(cfg.storage.payload_key.is_some());
    }

    /// Whether a problem's cause is the one expected.
    type CauseCheck = fn(&Cause) -> bool;

    /// (replace this, with this, expected key, expected cause check)
    type Case = (&'static str, &'static str, &'static str, CauseCheck);

    #[test]
    fn each_mistake_is_named_by_key() {
        let f = fixture();
        let cases: &[Case] = &[
            (
                "roles = [\"source\", \"destination\"]\n",
                "roles = [\"sorce\", \"destination\"]\n",
                "participants[1].roles",
                |c| matches!(c, Cause::UnknownRole(r) if r == "sorce"),
            ),
            (
                "id = \"espoo\"",
                "id = \"turku\"",
                "participants[1].id",
                |c| matches!(c, Cause::DuplicateParticipant { first, .. } if first == "participants[0]"),
            ),
            (
                "id = \"espoo\"",
                "id = \"es poo\"",
                "participants[1].id",
                |c| matches!(c, Cause::BadId(_)),
            ),
            (
                "subject = \"CN=espoo-education,O=Espoon kaupunki,C=FI\"",
                "subject = \"CN=espoo-education,O=Espoon kaupunki,C=FI\"\nsan_dns = \"espoo.fi\"",
                "participants[1]",
                |c| matches!(c, Cause::IdentityRuleCount { found } if found.len() == 2),
            ),
            (
                "subject = \"CN=espoo-education,O=Espoon kaupunki,C=FI\"\n",
                "",
                "participants[1]",
                |c| matches!(c, Cause::IdentityRuleCount { found } if found.is_empty()),
            ),
            (
                "subject = \"CN=espoo-education,O=Espoon kaupunki,C=FI\"",
                "subject = \"O=Turun kaupunki, C=FI, CN=turku-education\"",
                "participants[1]",
                |c| matches!(c, Cause::AmbiguousIdentity { other } if other == "participants[0]"),
            ),
            (
                "base_url = \"https://127.0.0.1:9444\"\n",
                "",
                "participants[1].base_url",
                |c| {
                    matches!(
                        c,
                        Cause::EndpointFieldMissing {
                            field: "base_url",
                            role: "source"
                        }
                    )
                },
            ),
            (
                "base_url = \"https://127.0.0.1:9444\"",
                "base_url = \"http://127.0.0.1:9444\"",
                "participants[1].base_url",
                |c| matches!(c, Cause::NotHttps(_)),
            ),
            (
                "base_url = \"https://127.0.0.1:9444\"",
                "base_url = \"https://user:pw@127.0.0.1:9444\"",
                "participants[1].base_url",
                |c| matches!(c, Cause::BadUrl(_)),
            ),
            (
                "base_url = \"https://127.0.0.1:9444\"\nserver_ca = \"certs/participants-ca.pem\"\nformat = \"siirto-v1\"",
                "base_url = \"https://127.0.0.1:9444\"\nserver_ca = \"certs/participants-ca.pem\"\nformat = \"siirto-v2\"",
                "participants[1].format",
                |c| matches!(c, Cause::UnknownFormat(f) if f == "siirto-v2"),
            ),
            (
                "base_url = \"https://127.0.0.1:9444\"\nserver_ca = \"certs/participants-ca.pem\"\nformat = \"siirto-v1\"",
                "base_url = \"https://127.0.0.1:9444\"\nserver_ca = \"certs/participants-ca.pem\"\nformat = \"virta\"",
                "participants[1].format",
                |c| matches!(c, Cause::SchemaMissing(Format::Virta)),
            ),
            (
                "base_url = \"https://127.0.0.1:9444\"\nserver_ca = \"certs/participants-ca.pem\"\nformat = \"siirto-v1\"",
                "base_url = \"https://127.0.0.1:9444\"\nserver_ca = \"certs/participants-ca.pem\"\nformat = \"koski\"",
                "participants[1].format",
                |c| matches!(c, Cause::SourceOnlyFormat(Format::Koski)),
            ),
            (
                "[storage]",
                "[limits.json]\nmax_depth = 500\n\n[storage]",
                "limits.json.max_depth",
                |c| matches!(c, Cause::OutOfRange { value, .. } if value == "500"),
            ),
            (
                "[storage]",
                "[limits.json]\nmax_array_items = 0\n\n[storage]",
                "limits.json.max_array_items",
                |c| matches!(c, Cause::OutOfRange { .. }),
            ),
            (
                "[storage]",
                "[limits.json]\nmax_string_length = \"1MiB\"\n\n[storage]",
                "limits.json.max_string_length",
                |c| matches!(c, Cause::UnknownKey { suggestion: Some(s) } if s == "max_string_len"),
            ),
            (
                "roles = [\"operator\"]",
                "roles = [\"operator\"]\nformat = \"elmo\"",
                "participants[5].format",
                |c| matches!(c, Cause::EndpointFieldNotAllowed { field: "format" }),
            ),
            (
                "name = { fi = \"Espoon kaupunki\", sv = \"Esbo stad\", en = \"City of Espoo\" }\n",
                "",
                "participants[1].name",
                |c| matches!(c, Cause::NameMissing { role: "source" }),
            ),
            ("sv = \"Esbo stad\", ", "", "participants[1].name.sv", |c| {
                matches!(c, Cause::Missing)
            }),
            (
                "en = \"City of Espoo\"",
                "en = \" \"",
                "participants[1].name.en",
                |c| matches!(c, Cause::Empty),
            ),
            (
                "roles = [\"operator\"]",
                "roles = [\"operator\"]\nstatutory_purposes = [\"school-change\"]",
                "participants[5].statutory_purposes",
                |c| {
                    matches!(
                        c,
                        Cause::StatutoryNotDestination {
                            field: "statutory_purposes"
                        }
                    )
                },
            ),
            (
                "statutory_law = {",
                "statutory_lav = {",
                "participants[2].statutory_law",
                |c| {
                    matches!(
                        c,
                        Cause::StatutoryIncomplete {
                            field: "statutory_law"
                        }
                    )
                },
            ),
            (
                "statutory_scopes = [\"identity\", \"enrolment\"",
                "statutory_scopes = [\"identity\", \"grades\"",
                "participants[2].statutory_scopes[1]",
                |c| matches!(c, Cause::UnknownCategory(g) if g == "grades"),
            ),
            (
                "statutory_purposes = [\"school-change\"]",
                "statutory_purposes = [\"School change\"]",
                "participants[2].statutory_purposes[0]",
                |c| matches!(c, Cause::BadPurpose(p) if p == "School change"),
            ),
            (
                "[storage]",
                "[consent]\nown_consent_age = 0\n\n[storage]",
                "consent.own_consent_age",
                |c| matches!(c, Cause::OutOfRange { value, .. } if value == "0"),
            ),
            (
                "[storage]",
                "[checks]\ntimeout = \"50ms\"\n\n[storage]",
                "checks.timeout",
                |c| matches!(c, Cause::OutOfRange { value, .. } if value == "50ms"),
            ),
            (
                "[storage]",
                "[checks]\ntimout = \"5s\"\n\n[storage]",
                "checks.timout",
                |c| matches!(c, Cause::UnknownKey { suggestion: Some(s) } if s == "timeout"),
            ),
            (
                "[storage]",
                "[consent]\nrequest_ttl = \"2h\"\n\n[storage]",
                "consent.request_ttl",
                |c| matches!(c, Cause::OutOfRange { .. }),
            ),
            (
                "[storage]",
                "[consent]\nrequire_text_hash = \"no\"\n\n[storage]",
                "consent.require_text_hash",
                |c| {
                    matches!(
                        c,
                        Cause::WrongType {
                            expected: "a boolean",
                            ..
                        }
                    )
                },
            ),
            (
                "listen = \"127.0.0.1:8443\"",
                "listen = \"localhost:8443\"",
                "gateway.listen",
                |c| matches!(c, Cause::BadSocketAddress(_)),
            ),
            (
                "admin_listen = \"127.0.0.1:9090\"",
                "admin_listen = \"127.0.0.1:8443\"",
                "gateway.admin_listen",
                |c| matches!(c, Cause::SameListenAddress(_)),
            ),
            (
                "database_url =",
                "databse_url =",
                "gateway.databse_url",
                |c| matches!(c, Cause::UnknownKey { suggestion: Some(s) } if s == "database_url"),
            ),
            (
                "database_url = \"sqlite",
                "database_url = \"mysql",
                "gateway.database_url",
                |c| matches!(c, Cause::BadDatabaseUrl),
            ),
            (
                "server_cert = \"certs/gateway.pem\"",
                "server_cert = \"certs/missing.pem\"",
                "gateway.server_cert",
                |c| matches!(c, Cause::FileUnreadable { path, .. } if path.ends_with("certs/missing.pem")),
            ),
            (
                "server_cert = \"certs/gateway.pem\"",
                "server_cert = \"certs/gateway.key\"",
                "gateway.server_cert",
                |c| matches!(c, Cause::BadFileContent { reason, .. } if reason.contains("CERTIFICATE")),
            ),
            (
                "server_key = \"certs/gateway.key\"",
                "server_key = \"certs/gateway.pem\"",
                "gateway.server_key",
                |c| matches!(c, Cause::BadFileContent { reason, .. } if reason.contains("private key")),
            ),
            (
                "audit_key = \"certs/audit-signing.key\"",
                "audit_key = \"certs/issuer.key\"",
                "gateway.audit_key",
                |c| matches!(c, Cause::BadFileContent { reason, .. } if reason.contains("Ed25519")),
            ),
            (
                "crl = [\"certs/participants.crl\"]",
                "crl = [\"certs/participants-ca.pem\"]",
                "gateway.crl[0]",
                |c| matches!(c, Cause::BadFileContent { .. }),
            ),
            (
                "jwks = \"certs/issuer.jwks.json\"",
                "jwks = \"siirto.toml\"",
                "issuers[0].jwks",
                |c| matches!(c, Cause::BadFileContent { reason, .. } if reason.contains("JSON")),
            ),
            (
                "clock_skew = \"60s\"",
                "clock_skew = \"60 seconds\"",
                "gateway.clock_skew",
                |c| matches!(c, Cause::BadDuration(_)),
            ),
            (
                "clock_skew = \"60s\"",
                "clock_skew = -5",
                "gateway.clock_skew",
                |c| matches!(c, Cause::BadDuration(v) if v == "-5"),
            ),
            (
                "clock_skew = \"60s\"",
                "clock_skew = true",
                "gateway.clock_skew",
                |c| {
                    matches!(
                        c,
                        Cause::WrongType {
                            expected: "a duration",
                            found: "a boolean"
                        }
                    )
                },
            ),
            (
                "[storage]",
                "[limits]\nmax_header_bytes = 1.5\n\n[storage]",
                "limits.max_header_bytes",
                |c| {
                    matches!(
                        c,
                        Cause::WrongType {
                            expected: "a size",
                            found: "a float"
                        }
                    )
                },
            ),
            (
                "[storage]",
                "[limits]\nmax_header_bytes = 512\n\n[storage]",
                "limits.max_header_bytes",
                |c| matches!(c, Cause::OutOfRange { value, min, .. } if value == "512" && min == "1KiB"),
            ),
            (
                "max_authorization_lifetime = \"900s\"",
                "max_authorization_lifetime = 0",
                "gateway.max_authorization_lifetime",
                |c| matches!(c, Cause::OutOfRange { .. }),
            ),
            (
                "[storage]",
                "[delivery]\nmax_attempts = 0\n\n[storage]",
                "delivery.max_attempts",
                |c| matches!(c, Cause::OutOfRange { value, .. } if value == "0"),
            ),
            (
                "[storage]",
                "[delivery]\npeer_down_after = 0\n\n[storage]",
                "delivery.peer_down_after",
                |c| matches!(c, Cause::OutOfRange { value, .. } if value == "0"),
            ),
            (
                "[storage]",
                "[audit]\non_broken = \"ignore\"\n\n[storage]",
                "audit.on_broken",
                |c| matches!(c, Cause::UnknownChoice { value, .. } if value == "ignore"),
            ),
            (
                "[storage]",
                "[audit]\nprevious_public_keys = [\"missing.pem\"]\n\n[storage]",
                "audit.previous_public_keys[0]",
                |c| matches!(c, Cause::FileUnreadable { .. }),
            ),
            (
                "[storage]",
                "[[audit.witnesses]]\nurl = \"http://w.example\"\nkey = \"w+00000000+BAAA\"\n\n[storage]",
                "audit.witnesses[0].url",
                |c| matches!(c, Cause::NotHttps(_)),
            ),
            (
                "[storage]",
                "[[audit.witnesses]]\nurl = \"https://w.example\"\nkey = \"w+00000000+BAAA\"\n\n[storage]",
                "audit.witnesses[0].key",
                |c| matches!(c, Cause::BadVerifierKey(_)),
            ),
            (
                "[storage]",
                "[audit]\nwitness_quorum = 2\n\n[storage]",
                "audit.witness_quorum",
                |c| matches!(c, Cause::OutOfRange { .. }),
            ),
            (
                "[storage]",
                "[witness]\nkey = \"certs/audit-signing.key\"\n[[witness.logs]]\norigin = \"a/audit\"\nkey = \"b/audit+00000000+AQAA\"\n\n[storage]",
                "witness.logs[0].key",
                |c| matches!(c, Cause::BadVerifierKey(_)),
            ),
            (
                "[storage]",
                "[witness]\n[[witness.logs]]\norigin = \"a/audit\"\nkey = \"x\"\n\n[storage]",
                "witness.key",
                |c| matches!(c, Cause::Missing),
            ),
            (
                "[storage]",
                "[witness]\nkey = \"certs/gateway.pem\"\n\n[storage]",
                "witness.key",
                |c| matches!(c, Cause::BadFileContent { .. }),
            ),
            (
                "[storage]",
                "[retention]\ntransfers = \"1h\"\n\n[storage]",
                "retention.transfers",
                |c| matches!(c, Cause::OutOfRange { value, .. } if value == "1h"),
            ),
            (
                "[storage]",
                "[retention]\naudit = \"7d\"\n\n[storage]",
                "retention.audit",
                |c| matches!(c, Cause::OutOfRange { value, .. } if value == "7d"),
            ),
            (
                "[storage]",
                "[delivery]\ninitial_backoff = \"5m\"\nmax_backoff = \"1m\"\n\n[storage]",
                "delivery.max_backoff",
                |c| matches!(c, Cause::SmallerThan { .. }),
            ),
            (
                "[storage]",
                "[delivery]\nrequest_timeout = \"55s\"\nlease = \"60s\"\n\n[storage]",
                "delivery.lease",
                |c| matches!(c, Cause::NotLongerThan { .. }),
            ),
            (
                "[storage]",
                "[limits.xml]\nmax_bytes = \"1TiB\"\n\n[storage]",
                "limits.xml.max_bytes",
                |c| matches!(c, Cause::BadSize(_)),
            ),
            (
                "[storage]",
                "[limits.xml]\nmax_bytes = \"64GiB\"\n\n[storage]",
                "limits.xml.max_bytes",
                |c| matches!(c, Cause::OutOfRange { .. }),
            ),
            (
                "[storage]",
                "[delivery]\nmax_in_flight_bytes = \"512KiB\"\n\n[storage]",
                "delivery.max_in_flight_bytes",
                |c| matches!(c, Cause::OutOfRange { min, .. } if min == "1MiB"),
            ),
            (
                "[storage]",
                "[limits]\nmax_header_bytes = \"big\"\n\n[storage]",
                "limits.max_header_bytes",
                |c| matches!(c, Cause::BadSize(_)),
            ),
            (
                "[storage]",
                "[delivery]\nworkers = \"8\"\n\n[storage]",
                "delivery.workers",
                |c| {
                    matches!(
                        c,
                        Cause::WrongType {
                            expected: "an integer",
                            found: "a string"
                        }
                    )
                },
            ),
            (
                "[schemas]",
                "[schemes]",
                "schemes",
                |c| matches!(c, Cause::UnknownKey { suggestion: Some(s) } if s == "schemas"),
            ),
            (
                "[schemas]\n",
                "[schemas]\nvirta = \"no/such.xsd\"\n",
                "schemas.virta",
                |c| matches!(c, Cause::FileUnreadable { .. }),
            ),
            (
                "subject = \"CN=espoo-education,O=Espoon kaupunki,C=FI\"",
                "subject = \"CN=espoo-education,Q=Espoon kaupunki\"",
                "participants[1].subject",
                |c| matches!(c, Cause::BadSubject(SubjectError::UnknownType(t)) if t == "Q"),
            ),
            (
                "subject = \"CN=espoo-education,O=Espoon kaupunki,C=FI\"",
                "spki_sha256 = \"abcd\"",
                "participants[1].spki_sha256",
                |c| matches!(c, Cause::BadSpkiPin),
            ),
        ];
        for (from, to, key, check) in cases {
            assert!(f.text.contains(from), "fixture lacks {from:?}");
            let text = f.text.replacen(from, to, 1);
            let problems = f.problems(&text);
            assert!(
                problems.iter().any(|p| p.key == *key && check(&p.cause)),
                "replacing {from:?} by {to:?}: expected a problem at {key}, got {problems:#?}"
            );
        }
    }

    #[test]
    fn witness_keys_load() {
        let f = fixture();
        let key = AuditSigningKey::from_pkcs8_pem(
            &std::fs::read_to_string(&f.pki.audit_key).expect("audit key"),
        )
        .expect("key")
        .public_key();
        let text = f.text.replacen(
            "[storage]",
            &format!(
                "[[audit.witnesses]]\nurl = \"https://espoo.example:8443/witness/\"\nkey = \"{}\"\n\n\
                 [witness]\nkey = \"certs/audit-signing.key\"\n[[witness.logs]]\norigin = \"espoo.example/audit\"\nkey = \"{}\"\n\n[storage]",
                key.typed_verifier_key("espoo.example/witness", 0x04),
                key.note_verifier_key("espoo.example/audit"),
            ),
            1,
        );
        let cfg = f.load(&text).expect("loads");
        assert_eq!(
            cfg.audit.witnesses[0].url,
            "https://espoo.example:8443/witness"
        );
        assert_eq!(cfg.audit.witnesses[0].port, 8443);
        assert_eq!(cfg.audit.witnesses[0].server_ca, cfg.gateway.client_ca);
        assert_eq!(cfg.audit.witness_quorum, None);
        assert_eq!(cfg.witness.logs[0].origin, "espoo.example/audit");
        assert!(cfg.witness.key.is_some());
    }

    #[test]
    fn all_problems_are_reported_one_line_each() {
        let f = fixture();
        let text = f
            .text
            .replacen(
                "roles = [\"source\", \"destination\"]",
                "roles = [\"sorce\"]",
                1,
            )
            .replacen("listen = \"127.0.0.1:8443\"", "listen = \"nowhere\"", 1)
            .replacen(
                "jwks = \"certs/issuer.jwks.json\"",
                "jwks = \"certs/gone.json\"",
                1,
            );
        let err = f.load(&text).expect_err("invalid");
        assert_eq!(err.problems().len(), 3, "{err}");
        let shown = err.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), 3, "{shown}");
        assert!(
            lines
                .iter()
                .all(|l| l.starts_with(&f.pki.config.display().to_string()))
        );
        assert!(
            shown.contains("siirto.toml: participants[1].roles: unknown role \"sorce\""),
            "{shown}"
        );
    }

    #[test]
    fn a_key_that_does_not_belong_to_its_certificate_is_named_at_load() {
        let f = fixture();
        let swapped = f
            .text
            .replacen(
                "server_key = \"certs/gateway.key\"",
                "server_key = \"certs/gateway-client.key\"",
                1,
            )
            .replacen(
                "client_key = \"certs/gateway-client.key\"",
                "client_key = \"certs/gateway.key\"",
                1,
            );
        let problems = f.problems(&swapped);
        let mismatches: Vec<(&str, &str)> = problems
            .iter()
            .filter_map(|p| match &p.cause {
                Cause::KeyMismatch { certificate, .. } => Some((p.key.as_str(), *certificate)),
                _ => None,
            })
            .collect();
        assert_eq!(
            mismatches,
            [
                ("gateway.server_key", "gateway.server_cert"),
                ("gateway.client_key", "gateway.client_cert")
            ],
            "{problems:#?}"
        );
        assert_eq!(problems.len(), 2, "{problems:#?}");
        // A certificate that is itself wrong is reported once, not also as a mismatch.
        let unreadable = swapped.replacen(
            "server_cert = \"certs/gateway.pem\"",
            "server_cert = \"certs/missing.pem\"",
            1,
        );
        let problems = f.problems(&unreadable);
        assert!(
            !problems.iter().any(|p| p.key == "gateway.server_key"),
            "{problems:#?}"
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = Config::from_toml("[gateway]\nid = \n", Path::new("x/siirto.toml"), no_env())
            .expect_err("syntax");
        let shown = err.to_string();
        assert!(
            shown.starts_with("x/siirto.toml: not valid TOML: line 2"),
            "{shown}"
        );
    }

    #[test]
    fn missing_sections_and_keys_are_reported() {
        let err = Config::from_toml("", Path::new("siirto.toml"), no_env()).expect_err("empty");
        let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"gateway"), "{keys:?}");
        assert!(keys.contains(&"issuers"), "{keys:?}");
        let err = Config::from_toml("[gateway]\n", Path::new("siirto.toml"), no_env())
            .expect_err("empty gateway");
        for key in [
            "gateway.id",
            "gateway.listen",
            "gateway.server_cert",
            "gateway.database_url",
        ] {
            assert!(
                err.problems()
                    .iter()
                    .any(|p| p.key == key && p.cause == Cause::Missing),
                "{key}: {err}"
            );
        }
    }

    #[test]
    fn the_people_of_the_directory_and_the_consent_section() {
        let f = fixture();
        let cfg = Config::from_toml(&f.text, &f.pki.config, no_env()).expect("valid");
        assert_eq!(cfg.consent, ConsentConfig::default());
        assert_eq!(cfg.checks, ChecksConfig::default());
        assert_eq!(cfg.checks.timeout, Duration::from_secs(10));
        let espoo = cfg.directory.get("espoo").expect("espoo");
        assert_eq!(
            espoo
                .name
                .as_ref()
                .map(|n| (n.fi.as_str(), n.sv.as_str(), n.en.as_str())),
            Some(("Espoon kaupunki", "Esbo stad", "City of Espoo"))
        );
        assert_eq!(espoo.statutory, None);
        let helsinki = cfg.directory.get("helsinki").expect("helsinki");
        let rules = helsinki.statutory.as_ref().expect("statutory rules");
        assert_eq!(rules.purposes, ["school-change"]);
        assert_eq!(
            rules.scope.to_string(),
            "identity enrolment achievements support"
        );
        assert_eq!(
            rules.law.sv,
            "lagen om grundläggande utbildning (628/1998) 40 §"
        );
        // An e-service or an operator needs no name.
        assert!(cfg.directory.get("eservice").expect("e").name.is_none());

        let cfg = Config::from_toml(
            &f.text,
            &f.pki.config,
            env(&[
                ("SIIRTO__CONSENT__OWN_CONSENT_AGE", "13"),
                ("SIIRTO__CONSENT__REQUIRE_TEXT_HASH", "false"),
                ("SIIRTO__PARTICIPANTS__1__NAME__EN", "Espoo"),
            ]),
        )
        .expect("overrides apply");
        assert_eq!(
            cfg.consent,
            ConsentConfig {
                own_consent_age: 13,
                require_text_hash: false,
                request_ttl: Duration::from_secs(600),
            }
        );
        assert_eq!(
            cfg.directory
                .get("espoo")
                .and_then(|p| p.name.as_ref())
                .map(|n| n.en.as_str()),
            Some("Espoo")
        );
        let err = Config::from_toml(
            &f.text,
            &f.pki.config,
            env(&[("SIIRTO__CONSENT__REQUIRE_TEXT_HASH", "maybe")]),
        )
        .expect_err("not a boolean");
        assert!(
            err.problems()
                .iter()
                .any(|p| p.key == "consent.require_text_hash"
                    && matches!(&p.cause, Cause::NotABoolean(v) if v == "maybe")),
            "{err}"
        );
    }

    #[test]
    fn environment_overrides_are_typed_by_their_key() {
        let f = fixture();
        let cfg = Config::from_toml(
            &f.text,
            &f.pki.config,
            env(&[
                (
                    "SIIRTO__GATEWAY__DATABASE_URL",
                    "postgres://u:secret@db/siirto",
                ),
                ("SIIRTO__DELIVERY__MAX_ATTEMPTS", "5"),
                ("SIIRTO__DELIVERY__REQUEST_TIMEOUT", "250ms"),
                ("SIIRTO__DELIVERY__CONNECT_TIMEOUT", "3"),
                ("SIIRTO__DELIVERY__MAX_RESPONSE_BYTES", "2MiB"),
                ("SIIRTO__DELIVERY__MAX_IN_FLIGHT_BYTES", "48MiB"),
                (
                    "SIIRTO__PARTICIPANTS__0__BASE_URL",
                    "https://localhost:10443/api/",
                ),
                ("SIIRTO__PARTICIPANTS__1__ROLES", "source, eservice"),
                ("SIIRTO__LIMITS__XML__MAX_DEPTH", "64"),
                ("SIIRTO__LIMITS__JSON__MAX_DEPTH", "32"),
                ("SIIRTO__LIMITS__JSON__MAX_BYTES", "2MiB"),
                ("SIIRTO__GATEWAY__CRL", ""),
                ("SIIRTO_LOG", "ignored: one underscore"),
                ("PATH", "/usr/bin"),
            ]),
        )
        .expect("overrides apply");
        assert_eq!(cfg.gateway.database_url, "postgres://u:secret@db/siirto");
        assert!(!format!("{:?}", cfg.gateway).contains("secret"));
        assert_eq!(cfg.delivery.max_attempts, Some(5));
        assert_eq!(cfg.delivery.request_timeout, Duration::from_millis(250));
        assert_eq!(cfg.delivery.connect_timeout, Duration::from_secs(3));
        assert_eq!(cfg.delivery.max_response_bytes, 2 << 20);
        assert_eq!(cfg.delivery.max_in_flight_bytes, 48 << 20);
        let turku = cfg.directory.get("turku").expect("turku");
        let ep = turku.endpoint.as_ref().expect("endpoint");
        assert_eq!(ep.base_url, "https://localhost:10443/api");
        assert_eq!((ep.host.as_str(), ep.port), ("localhost", 10443));
        assert_eq!(
            cfg.directory.get("espoo").expect("espoo").roles,
            vec![Role::Source, Role::Eservice]
        );
        assert_eq!(cfg.limits.xml.max_depth, 64);
        assert_eq!(cfg.limits.json.max_depth, 32);
        assert_eq!(cfg.limits.json.max_bytes, 2 << 20);
        assert_eq!(
            cfg.limits.json.max_array_items,
            siirto_core::formats::json_in::JsonLimits::default().max_array_items
        );
        assert!(cfg.gateway.crl.is_empty());
    }

    #[test]
    fn connection_limits_are_read_and_checked_by_key() {
        let f = fixture();
        let defaults = f.load(&f.text).expect("loads").limits;
        assert_eq!(
            defaults.connections,
            siirto_core::admission::AdmissionLimits::default()
        );
        assert_eq!(defaults.handshake_timeout, Duration::from_secs(10));
        let with = |pairs: &[(&str, &str)]| Config::from_toml(&f.text, &f.pki.config, env(pairs));
        let cfg = with(&[
            ("SIIRTO__LIMITS__MAX_CONNECTIONS", "100"),
            ("SIIRTO__LIMITS__RESERVED_CONNECTIONS", "99"),
            ("SIIRTO__LIMITS__MAX_CONNECTIONS_PER_ADDRESS", "7"),
            ("SIIRTO__LIMITS__MAX_HANDSHAKES_PER_ADDRESS", "3"),
            ("SIIRTO__LIMITS__HANDSHAKE_TIMEOUT", "2s"),
            ("SIIRTO__LIMITS__AUTHENTICATED_ADDRESS_TTL", "1h"),
        ])
        .expect("overrides apply");
        let c = cfg.limits.connections;
        assert_eq!(
            (
                c.max_connections,
                c.reserved_connections,
                c.max_connections_per_address,
                c.max_handshakes_per_address
            ),
            (100, 99, 7, 3)
        );
        assert_eq!(c.authenticated_address_ttl, Duration::from_secs(3600));
        assert_eq!(cfg.limits.handshake_timeout, Duration::from_secs(2));

        let problem = |var: &str, value: &str| {
            let err = with(&[(var, value)]).expect_err("refused");
            err.problems()
                .iter()
                .find(|p| p.set_by.as_deref() == Some(var))
                .unwrap_or_else(|| panic!("no problem set by {var}: {err}"))
                .clone()
        };
        // The reserve must leave a slot to addresses not yet authenticated.
        let err = with(&[
            ("SIIRTO__LIMITS__MAX_CONNECTIONS", "100"),
            ("SIIRTO__LIMITS__RESERVED_CONNECTIONS", "100"),
        ])
        .expect_err("a reserve of every slot");
        let p = &err.problems()[0];
        assert_eq!(p.key, "limits.reserved_connections", "{err}");
        assert!(
            matches!(&p.cause, Cause::OutOfRange { value, max, .. } if value == "100" && max == "99"),
            "{err}"
        );
        for (var, value, key) in [
            (
                "SIIRTO__LIMITS__MAX_CONNECTIONS",
                "0",
                "limits.max_connections",
            ),
            (
                "SIIRTO__LIMITS__MAX_CONNECTIONS_PER_ADDRESS",
                "0",
                "limits.max_connections_per_address",
            ),
            (
                "SIIRTO__LIMITS__MAX_HANDSHAKES_PER_ADDRESS",
                "0",
                "limits.max_handshakes_per_address",
            ),
            (
                "SIIRTO__LIMITS__HANDSHAKE_TIMEOUT",
                "1h",
                "limits.handshake_timeout",
            ),
            (
                "SIIRTO__LIMITS__AUTHENTICATED_ADDRESS_TTL",
                "1s",
                "limits.authenticated_address_ttl",
            ),
        ] {
            let p = problem(var, value);
            assert_eq!(p.key, key);
            assert!(matches!(p.cause, Cause::OutOfRange { .. }), "{var}: {p:?}");
        }
        let p = problem("SIIRTO__LIMITS__MAX_HANDSHAKES_PER_ADDRESS", "many");
        assert!(
            matches!(&p.cause, Cause::NotAnInteger(v) if v == "many"),
            "{p:?}"
        );
        let p = problem("SIIRTO__LIMITS__MAX_HANDSHAKE_PER_ADDRESS", "3");
        assert!(
            matches!(&p.cause, Cause::UnknownKey { suggestion: Some(s) } if s == "max_handshakes_per_address"),
            "{p:?}"
        );
    }

    #[test]
    fn environment_can_append_an_entry() {
        let f = fixture();
        let n = f.text.matches("[[participants]]").count().to_string();
        let var = |k: &str| format!("SIIRTO__PARTICIPANTS__{n}__{k}");
        let cfg = Config::from_toml(
            &f.text,
            &f.pki.config,
            vec![
                (var("ID"), "lahti".to_owned()),
                (var("ROLES"), "[\"operator\"]".to_owned()),
                (var("SAN_URI"), "urn:lahti".to_owned()),
            ],
        )
        .expect("append");
        let lahti = cfg.directory.get("lahti").expect("lahti");
        assert_eq!(lahti.identity, IdentityRule::SanUri("urn:lahti".to_owned()));
        assert_eq!(lahti.roles, vec![Role::Operator]);
    }

    #[test]
    fn bad_environment_overrides_name_the_variable() {
        let f = fixture();
        let err = Config::from_toml(
            &f.text,
            &f.pki.config,
            env(&[
                ("SIIRTO__GATEWAY__DATABSE_URL", "sqlite://x"),
                ("SIIRTO__DELIVERY__MAX_ATTEMPTS", "many"),
                ("SIIRTO__PARTICIPANTS__99__ID", "x"),
                ("SIIRTO__PARTICIPANTS__ID", "x"),
                ("SIIRTO__DELIVERY", "x"),
                ("SIIRTO__PARTICIPANTS__2__BASE_URL", "http://insecure"),
            ]),
        )
        .expect_err("bad overrides");
        let p = err.problems();
        let find = |var: &str| {
            p.iter()
                .find(|p| p.set_by.as_deref() == Some(var))
                .unwrap_or_else(|| panic!("no problem set by {var}: {err}"))
        };
        assert!(matches!(
            &find("SIIRTO__GATEWAY__DATABSE_URL").cause,
            Cause::UnknownKey { suggestion: Some(s) } if s == "database_url"
        ));
        let attempts = find("SIIRTO__DELIVERY__MAX_ATTEMPTS");
        assert_eq!(attempts.key, "delivery.max_attempts");
        assert!(matches!(&attempts.cause, Cause::NotAnInteger(v) if v == "many"));
        assert!(matches!(
            find("SIIRTO__PARTICIPANTS__99__ID").cause,
            Cause::IndexPastEnd { index: 99, .. }
        ));
        assert!(matches!(
            find("SIIRTO__PARTICIPANTS__ID").cause,
            Cause::MalformedVariable(_)
        ));
        assert!(matches!(
            find("SIIRTO__DELIVERY").cause,
            Cause::MalformedVariable(_)
        ));
        // A problem found later, in validation, still names the variable that set the value.
        let url = find("SIIRTO__PARTICIPANTS__2__BASE_URL");
        assert_eq!(url.key, "participants[2].base_url");
        assert!(matches!(url.cause, Cause::NotHttps(_)));
        assert!(
            err.to_string()
                .contains("participants[2].base_url (set by SIIRTO__PARTICIPANTS__2__BASE_URL)"),
            "{err}"
        );
    }

    /// The fixture's text with turku (a source and destination) reading and writing ELMO,
    /// `extra` lines on its entry, and `[documents]` replaced by `documents`.
    fn turku_elmo(f: &Fixture, extra: &str, documents: Option<&str>) -> String {
        std::fs::write(f.pki.dir.join("elmo.xsd"), "<schema/>").expect("write");
        let mut text = f
            .text
            .replacen(
                "format = \"siirto-v1\"",
                &format!("format = \"elmo\"\n{extra}"),
                1,
            )
            .replacen("\n[schemas]\n", "\n[schemas]\nelmo = \"elmo.xsd\"\n", 1);
        if let Some(documents) = documents {
            let at = text.find("\n[documents]").expect("[documents]");
            text.truncate(at);
            text.push_str(documents);
        }
        text
    }

    /// The dev config with espoo (participants[1]) on X-Road instead of its own endpoint, and
    /// `[xroad]` as given.
    fn espoo_on_xroad(f: &Fixture, xroad: &str) -> String {
        let text = f.text.replacen(
            "base_url = \"https://127.0.0.1:9444\"\nserver_ca = \"certs/participants-ca.pem\"\n",
            "xroad_service = \"FI/GOV/0101263-6/espoo siirto/records\"\n",
            1,
        );
        assert_ne!(text, f.text, "the dev config's espoo endpoint moved");
        format!("{text}\n{xroad}")
    }

    const XROAD: &str = "[xroad]\nsecurity_server_url = \"https://ss.turku.test:8443/\"\nclient = \"FI/MUN/0204819-8/siirto\"\nserver_ca = \"certs/participants-ca.pem\"\n";

    #[test]
    fn a_participant_on_xroad_is_called_through_the_security_server() {
        let f = fixture();
        let cfg = f.load(&espoo_on_xroad(&f, XROAD)).expect("loads");
        let server = cfg.xroad.security_server.as_ref().expect("[xroad]");
        assert_eq!(server.url, "https://ss.turku.test:8443");
        assert_eq!(server.client, "FI/MUN/0204819-8/siirto");
        assert_eq!(
            cfg.xroad.services.get("espoo").map(String::as_str),
            Some("FI/GOV/0101263-6/espoo siirto/records")
        );
        let ep = cfg.directory.get("espoo").and_then(|p| p.endpoint.clone());
        let ep = ep.expect("endpoint");
        // Each part percent-encoded, the separators kept (r1 §4.2).
        assert_eq!(
            ep.base_url,
            "https://ss.turku.test:8443/r1/FI/GOV/0101263-6/espoo%20siirto/records"
        );
        assert_eq!((ep.host.as_str(), ep.port), ("ss.turku.test", 8443));
        assert_eq!(ep.server_ca, server.server_ca);
        assert_eq!(xroad_path("A/B/C/BAR/SERVICE"), "A/B/C/BAR/SERVICE");
        assert_eq!(xroad_path("FI/GOV/ä"), "FI/GOV/%C3%A4");
    }

    #[test]
    fn security_servers_and_xroad_clients_are_read_and_checked() {
        let f = fixture();
        let inbound = "[[xroad.security_servers]]\nsan_dns = \"ss1.turku.test\"\n";
        let text = f.text.replacen(
            "san_dns = \"eservice.siirto.test\"",
            "san_dns = \"eservice.siirto.test\"\nxroad_client = \"FI/MUN/0204819-8/e palvelu\"",
            1,
        );
        assert_ne!(text, f.text, "the dev config's eservice moved");
        let cfg = f.load(&format!("{text}\n{inbound}")).expect("loads");
        assert_eq!(
            cfg.xroad.security_servers,
            vec![IdentityRule::SanDns("ss1.turku.test".into())]
        );
        assert_eq!(
            cfg.xroad
                .clients
                .get("FI/MUN/0204819-8/e palvelu")
                .map(String::as_str),
            Some("eservice")
        );
        // Inbound alone needs none of the outbound keys.
        assert_eq!(cfg.xroad.security_server, None);

        let bad = text.replace("FI/MUN/0204819-8/e palvelu", "FI/MUN");
        let problems = f.problems(&bad);
        assert!(
            problems
                .iter()
                .any(|p| p.key.ends_with(".xroad_client")
                    && matches!(p.cause, Cause::BadXroadClient(_))),
            "{problems:?}"
        );
        let no_rule = format!("{text}\n[[xroad.security_servers]]\n");
        let problems = f.problems(&no_rule);
        assert!(
            problems.iter().any(|p| p.key == "xroad.security_servers[0]"
                && matches!(p.cause, Cause::IdentityRuleCount { .. })),
            "{problems:?}"
        );
    }

    #[test]
    fn xroad_mistakes_are_named_by_key() {
        let f = fixture();
        let key_of = |text: &str| -> Vec<(String, Cause)> {
            f.problems(text)
                .into_iter()
                .map(|p| (p.key.clone(), p.cause.clone()))
                .collect()
        };
        // No [xroad] at all.
        let problems = key_of(&espoo_on_xroad(&f, ""));
        assert!(
            problems
                .iter()
                .any(|(k, c)| k == "participants[1].xroad_service"
                    && *c == Cause::XroadNotConfigured),
            "{problems:?}"
        );
        // Its own base_url beside xroad_service.
        let text = espoo_on_xroad(&f, XROAD).replacen(
            "xroad_service =",
            "base_url = \"https://127.0.0.1:9444\"\nxroad_service =",
            1,
        );
        let problems = key_of(&text);
        assert!(
            problems.iter().any(|(k, c)| k == "participants[1].base_url"
                && *c == Cause::XroadEndpointField { field: "base_url" }),
            "{problems:?}"
        );
        // A service id of the wrong form.
        let text = espoo_on_xroad(&f, XROAD).replace("espoo siirto/records", "");
        let problems = key_of(&text);
        assert!(
            problems
                .iter()
                .any(|(k, c)| k == "participants[1].xroad_service"
                    && matches!(c, Cause::BadXroadService(_))),
            "{problems:?}"
        );
        // [xroad] client of the wrong form; a missing key.
        let text = espoo_on_xroad(&f, XROAD)
            .replace("client = \"FI/MUN/0204819-8/siirto\"", "client = \"FI\"");
        let problems = key_of(&text);
        assert!(
            problems
                .iter()
                .any(|(k, c)| k == "xroad.client" && matches!(c, Cause::BadXroadClient(_))),
            "{problems:?}"
        );
        let text = espoo_on_xroad(&f, &XROAD.replace("security_server_url", "security_server"));
        let problems = key_of(&text);
        assert!(
            problems
                .iter()
                .any(|(k, c)| k == "xroad.security_server_url" && *c == Cause::Missing),
            "{problems:?}"
        );
    }

    #[test]
    fn documents_and_elmo_signers_are_read_and_checked() {
        let f = fixture();
        let cfg = f.load(&f.text).expect("loads");
        assert_eq!(
            cfg.documents.signing_cert.as_deref(),
            Some(f.pki.document_signing.cert.as_path())
        );
        assert!(cfg.documents.sign_siirto_v1);
        assert!(cfg.source_signers.is_empty());
        let keys = DocumentKeys::load(&cfg).expect("keys");
        assert!(keys.signer.is_some());
        assert!(keys.signatures("turku").source.is_none());

        // An ELMO source pinning its signers (here the development signer itself).
        let text = turku_elmo(
            &f,
            "elmo_signers = [\"certs/document-signing.pem\"]\nallow_sha1 = true",
            None,
        );
        let cfg = f.load(&text).expect("loads");
        let turku = &cfg.source_signers["turku"];
        assert!(turku.allow_sha1);
        assert_eq!(
            turku.elmo_signers,
            vec![f.pki.document_signing.cert.clone()]
        );
        let keys = DocumentKeys::load(&cfg).expect("keys");
        let signatures = keys.signatures("turku");
        assert!(
            signatures
                .source
                .is_some_and(|s| s.allow_sha1 && !s.signers.is_empty())
        );
        assert!(signatures.signs(Format::Elmo) && signatures.signs(Format::SiirtoV1));

        type Case<'a> = (String, &'a str, fn(&Cause) -> bool);
        let cases: Vec<Case> = vec![
            // An ELMO destination with no [documents]: the key is named.
            (
                turku_elmo(&f, "", Some("\n")),
                "documents.signing_cert",
                |c| matches!(c, Cause::SigningKeyNeeded { destination } if destination == "turku"),
            ),
            (
                turku_elmo(
                    &f,
                    "",
                    Some("\n[documents]\nsigning_cert = \"certs/document-signing.pem\"\n"),
                ),
                "documents.signing_key",
                |c| matches!(c, Cause::Missing),
            ),
            (
                f.text.replacen(
                    "signing_key = \"certs/document-signing.key\"",
                    "signing_key = \"certs/gateway-client.key\"",
                    1,
                ),
                "documents.signing_key",
                |c| matches!(c, Cause::BadFileContent { reason, .. } if reason.contains("does not belong")),
            ),
            (
                f.text.replacen(
                    "[documents]\n",
                    "[documents]\nsign_siirto_v1 = \"yes\"\n",
                    1,
                ),
                "documents.sign_siirto_v1",
                |c| matches!(c, Cause::WrongType { .. }),
            ),
            // elmo_signers only on an ELMO source.
            (
                f.text.replacen(
                    "format = \"siirto-v1\"",
                    "format = \"siirto-v1\"\nelmo_signers = [\"certs/document-signing.pem\"]",
                    1,
                ),
                "participants[0].elmo_signers",
                |c| {
                    matches!(
                        c,
                        Cause::ElmoSourceOnly {
                            field: "elmo_signers"
                        }
                    )
                },
            ),
            (
                turku_elmo(&f, "elmo_signers = []", None),
                "participants[0].elmo_signers",
                |c| matches!(c, Cause::Empty),
            ),
            (
                turku_elmo(&f, "allow_sha1 = true", None),
                "participants[0].elmo_signers",
                |c| matches!(c, Cause::Missing),
            ),
            (
                turku_elmo(&f, "elmo_signers = [\"certs/payload.key\"]", None),
                "participants[0].elmo_signers[0]",
                |c| matches!(c, Cause::BadFileContent { .. }),
            ),
        ];
        for (text, key, cause) in cases {
            let problems = f.problems(&text);
            assert!(
                problems.iter().any(|p| p.key == key && cause(&p.cause)),
                "{key}: {problems:?}"
            );
        }
    }

    #[test]
    fn example_configuration_is_complete_apart_from_its_files() {
        let err = Config::from_toml(
            Config::example_toml(),
            Path::new("/nonexistent/siirto.toml"),
            no_env(),
        )
        .expect_err("files are missing");
        for p in err.problems() {
            assert!(
                matches!(p.cause, Cause::FileUnreadable { .. }),
                "unexpected problem in the example: {p}"
            );
        }
        assert!(err.problems().len() >= 8);
    }

    /// The fixture with a KOSKI source (participants[6]) and a VIRTA SOAP source
    /// (participants[7]) appended, `extra` lines added to each, and `[schemas] virta`.
    fn with_registers(f: &Fixture, koski_extra: &str, virta_extra: &str) -> String {
        let dir = f.pki.dir.clone();
        std::fs::write(dir.join("virta.xsd"), "<schema/>").expect("write");
        let caller = dir.join("virta-caller.toml");
        if !caller.exists() {
            std::fs::write(
                &caller,
                "jarjestelma = \"siirto\"\ntunnus = \"turku\"\navain = \"Avain-3f9b-SALAINEN\"\n",
            )
            .expect("write");
        }
        let registers = format!(
            r#"
[[participants]]
id = "koski"
roles = ["source"]
subject = "CN=koski,O=Opetushallitus,C=FI"
base_url = "https://127.0.0.1:9500"
server_ca = "certs/participants-ca.pem"
format = "koski"
name = {{ fi = "KOSKI", sv = "KOSKI", en = "KOSKI" }}
protocol = "koski"
koski_types = ["perusopetus", "lukiokoulutus"]
{koski_extra}

[[participants]]
id = "virta-luku"
roles = ["source"]
subject = "CN=virta-luku,O=CSC,C=FI"
base_url = "https://127.0.0.1:9501/luku/OpiskelijanTiedot"
server_ca = "certs/participants-ca.pem"
format = "virta"
name = {{ fi = "VIRTA", sv = "VIRTA", en = "VIRTA" }}
protocol = "virta-soap"
virta_caller = "virta-caller.toml"
{virta_extra}
"#
        );
        let text = f.text.replace(
            "\n[schemas]\n",
            &format!("{registers}\n[schemas]\nvirta = \"virta.xsd\"\n"),
        );
        assert!(text.contains("id = \"virta-luku\""), "{text}");
        text
    }

    /// The fixture with a KOSKI OmaData source appended (participants[6], `extra` lines added)
    /// and `eservice_extra` lines on the e-service (participants[4]).
    fn with_omadata(f: &Fixture, extra: &str, eservice_extra: &str) -> String {
        let source = format!(
            r#"
[[participants]]
id = "koski-omadata"
roles = ["source"]
subject = "CN=koski-omadata,O=Opetushallitus,C=FI"
server_ca = "certs/participants-ca.pem"
format = "koski"
name = {{ fi = "KOSKI", sv = "KOSKI", en = "KOSKI" }}
protocol = "koski-omadata"
omadata_client_id = "siirto-turku"
omadata_issuer = "https://koski.example/omadata-oauth2"
omadata_resource = "https://raportointi.koski.example/koski/api/omadata-oauth2/resource-server"
omadata_scope = "HENKILOTIEDOT_KAIKKI_TIEDOT OPISKELUOIKEUDET_KAIKKI_TIEDOT"
{extra}
"#
        );
        let eservice = "san_dns = \"eservice.siirto.test\"\n";
        assert!(f.text.contains(eservice));
        f.text
            .replacen(eservice, &format!("{eservice}{eservice_extra}\n"), 1)
            .replace("\n[schemas]\n", &format!("{source}\n[schemas]\n"))
    }

    #[test]
    fn the_omadata_protocol_and_redirect_uris_are_read() {
        let f = fixture();
        let cfg = f
            .load(&with_omadata(
                &f,
                "",
                "redirect_uris = [\"https://eservice.turku.fi/omadata/return\", \"http://localhost:8080/back\"]",
            ))
            .expect("loads");
        let source = cfg.directory.get("koski-omadata").expect("source");
        let endpoint = source.endpoint.as_ref().expect("endpoint");
        assert_eq!(
            endpoint.protocol,
            SourceProtocol::KoskiOmadata(OmadataCall {
                client_id: "siirto-turku".into(),
                issuer: "https://koski.example/omadata-oauth2".into(),
                resource:
                    "https://raportointi.koski.example/koski/api/omadata-oauth2/resource-server"
                        .into(),
                scope: "HENKILOTIEDOT_KAIKKI_TIEDOT OPISKELUOIKEUDET_KAIKKI_TIEDOT".into(),
            })
        );
        // Reached at its issuer when no base_url is given.
        assert_eq!(endpoint.host, "koski.example");
        assert_eq!(cfg.consent.request_ttl, Duration::from_secs(600));
        assert_eq!(
            cfg.directory.get("eservice").map(|p| p.redirect_uris.len()),
            Some(2)
        );
    }

    #[test]
    fn each_omadata_mistake_is_named_by_key() {
        let f = fixture();
        let base = with_omadata(&f, "", "");
        let edit = |from: &str, to: &str| {
            assert!(base.contains(from), "{from}");
            base.replacen(from, to, 1)
        };
        let cases: Vec<(String, &str, CauseCheck)> = vec![
            (
                edit("omadata_client_id = \"siirto-turku\"\n", ""),
                "participants[6].omadata_client_id",
                |c| matches!(c, Cause::Missing),
            ),
            (
                edit(
                    "omadata_issuer = \"https://koski.example/omadata-oauth2\"",
                    "omadata_issuer = \"http://koski.example/omadata-oauth2\"",
                ),
                "participants[6].omadata_issuer",
                |c| matches!(c, Cause::NotHttps(_)),
            ),
            (
                edit(
                    "omadata_resource = \"https://raportointi",
                    "omadata_resource = \"https://raportointi.koski.example/x?y=1\"\n# \"",
                ),
                "participants[6].omadata_resource",
                |c| matches!(c, Cause::BadUrl(_)),
            ),
            (
                edit(
                    "HENKILOTIEDOT_KAIKKI_TIEDOT OPISKELUOIKEUDET_KAIKKI_TIEDOT\"",
                    "OPISKELUOIKEUDET_KAIKKI_TIEDOT OPISKELUOIKEUDET_SUORITETUT_TUTKINNOT\"",
                ),
                "participants[6].omadata_scope",
                |c| matches!(c, Cause::BadOmadataScope(w) if w.contains("only one")),
            ),
            (
                edit("omadata_scope = \"", "omadata_scope = \"A\\\\B "),
                "participants[6].omadata_scope",
                |c| matches!(c, Cause::BadOmadataScope(_)),
            ),
            (
                edit(
                    "format = \"koski\"\nname = { fi = \"KOSKI\"",
                    "format = \"siirto-v1\"\nname = { fi = \"KOSKI\"",
                ),
                "participants[6].format",
                |c| matches!(c, Cause::ProtocolFormatMismatch { .. }),
            ),
            (
                with_omadata(&f, "", "redirect_uris = [\"ftp://eservice.example/back\"]"),
                "participants[4].redirect_uris[0]",
                |c| matches!(c, Cause::BadRedirectUri(_)),
            ),
            (
                with_omadata(
                    &f,
                    "",
                    "redirect_uris = [\"https://eservice.example/back#frag\"]",
                ),
                "participants[4].redirect_uris[0]",
                |c| matches!(c, Cause::BadRedirectUri(_)),
            ),
            (
                with_omadata(&f, "redirect_uris = [\"https://x.example/\"]", ""),
                "participants[6].redirect_uris",
                |c| matches!(c, Cause::RedirectUrisNotAllowed),
            ),
            (
                edit(
                    "protocol = \"koski-omadata\"",
                    "protocol = \"koski\"\nkoski_types = [\"perusopetus\"]",
                ),
                "participants[6].omadata_client_id",
                |c| matches!(c, Cause::NotForProtocol { .. }),
            ),
        ];
        for (text, key, check) in cases {
            let err = f.load(&text).expect_err(key);
            let found = err
                .problems()
                .iter()
                .find(|p| p.key == key)
                .unwrap_or_else(|| panic!("no problem at {key}: {err}"));
            assert!(check(&found.cause), "{key}: {found}");
        }
    }

    #[test]
    fn source_protocols_are_read() {
        let f = fixture();
        let cfg = f.load(&with_registers(&f, "", "")).expect("loads");
        let koski = cfg.directory.get("koski").and_then(|p| p.endpoint.as_ref());
        assert_eq!(
            koski.map(|e| &e.protocol),
            Some(&SourceProtocol::Koski(KoskiCall {
                path: DEFAULT_KOSKI_PATH.into(),
                types: vec!["perusopetus".into(), "lukiokoulutus".into()],
            }))
        );
        let virta = cfg
            .directory
            .get("virta-luku")
            .and_then(|p| p.endpoint.clone())
            .expect("virta");
        let SourceProtocol::VirtaSoap(caller) = &virta.protocol else {
            panic!("virta-soap");
        };
        assert_eq!(
            (caller.jarjestelma(), caller.tunnus(), caller.avain()),
            ("siirto", "turku", "Avain-3f9b-SALAINEN")
        );
        assert_eq!(
            virta.base_url,
            "https://127.0.0.1:9501/luku/OpiskelijanTiedot"
        );
        // Debug of the whole configuration never shows the password.
        assert!(!format!("{cfg:?}").contains("SALAINEN"));
        let turku = cfg.directory.get("turku").and_then(|p| p.endpoint.as_ref());
        assert_eq!(turku.map(|e| &e.protocol), Some(&SourceProtocol::Siirto));
        // koski_path, and koski_types from the environment.
        let cfg = Config::from_toml(
            &with_registers(&f, "koski_path = \"/koski/api/luovutuspalvelu/kunta\"", ""),
            &f.pki.config,
            env(&[(
                "SIIRTO__PARTICIPANTS__6__KOSKI_TYPES",
                "esiopetus, perusopetus",
            )]),
        )
        .expect("loads");
        assert_eq!(
            cfg.directory
                .get("koski")
                .and_then(|p| p.endpoint.as_ref())
                .map(|e| &e.protocol),
            Some(&SourceProtocol::Koski(KoskiCall {
                path: "/koski/api/luovutuspalvelu/kunta".into(),
                types: vec!["esiopetus".into(), "perusopetus".into()],
            }))
        );
    }

    #[test]
    fn each_protocol_mistake_is_named_by_key() {
        let f = fixture();
        let base = with_registers(&f, "", "");
        let edit = |from: &str, to: &str| {
            assert!(base.contains(from), "{from}");
            base.replacen(from, to, 1)
        };
        let cases: Vec<(String, &str, CauseCheck)> = vec![
            (
                edit("protocol = \"koski\"", "protocol = \"kosky\""),
                "participants[6].protocol",
                |c| matches!(c, Cause::UnknownChoice { value, .. } if value == "kosky"),
            ),
            (
                edit("koski_types = [\"perusopetus\", \"lukiokoulutus\"]\n", ""),
                "participants[6].koski_types",
                |c| matches!(c, Cause::Missing),
            ),
            (
                edit("\"lukiokoulutus\"]", "\"lukio\"]"),
                "participants[6].koski_types[1]",
                |c| matches!(c, Cause::UnknownKoskiType { value, .. } if value == "lukio"),
            ),
            (
                edit("\"lukiokoulutus\"]", "\"lukiokoulutu\"]"),
                "participants[6].koski_types[1]",
                |c| matches!(c, Cause::UnknownKoskiType { suggestion: Some(s), .. } if s == "lukiokoulutus"),
            ),
            (
                edit("\"lukiokoulutus\"]", "\"perusopetus\"]"),
                "participants[6].koski_types[1]",
                |c| matches!(c, Cause::DuplicateKoskiType(t) if t == "perusopetus"),
            ),
            (
                edit("[\"perusopetus\", \"lukiokoulutus\"]", "[]"),
                "participants[6].koski_types",
                |c| matches!(c, Cause::NoKoskiTypes),
            ),
            (
                edit("format = \"koski\"", "format = \"siirto-v1\""),
                "participants[6].format",
                |c| {
                    matches!(
                        c,
                        Cause::ProtocolFormatMismatch {
                            protocol: "koski",
                            expected: Format::Koski,
                            ..
                        }
                    )
                },
            ),
            (
                edit("virta_caller = \"virta-caller.toml\"\n", ""),
                "participants[7].virta_caller",
                |c| matches!(c, Cause::Missing),
            ),
            (
                edit(
                    "virta_caller = \"virta-caller.toml\"",
                    "virta_caller = \"nowhere.toml\"",
                ),
                "participants[7].virta_caller",
                |c| matches!(c, Cause::FileUnreadable { .. }),
            ),
            (
                edit("format = \"virta\"", "format = \"elmo\""),
                "participants[7].format",
                |c| {
                    matches!(
                        c,
                        Cause::ProtocolFormatMismatch {
                            protocol: "virta-soap",
                            expected: Format::Virta,
                            ..
                        }
                    )
                },
            ),
            (
                edit("protocol = \"virta-soap\"", "protocol = \"siirto\""),
                "participants[7].virta_caller",
                |c| {
                    matches!(
                        c,
                        Cause::NotForProtocol {
                            field: "virta_caller",
                            belongs_to: "virta-soap",
                            protocol: "siirto"
                        }
                    )
                },
            ),
            (
                edit(
                    "roles = [\"source\"]\nsubject = \"CN=koski",
                    "roles = [\"source\", \"destination\"]\nsubject = \"CN=koski",
                ),
                "participants[6].protocol",
                |c| matches!(c, Cause::ProtocolNotForDestination("koski")),
            ),
            (
                edit(
                    "roles = [\"source\"]\nsubject = \"CN=koski",
                    "roles = [\"destination\"]\nsubject = \"CN=koski",
                ),
                "participants[6].koski_types",
                |c| {
                    matches!(
                        c,
                        Cause::ProtocolFieldNotAllowed {
                            field: "koski_types"
                        }
                    )
                },
            ),
            (
                edit(
                    "koski_types = [",
                    "koski_path = \"koski/api\"\nkoski_types = [",
                ),
                "participants[6].koski_path",
                |c| matches!(c, Cause::BadKoskiPath(p) if p == "koski/api"),
            ),
            (
                edit(
                    "koski_types = [",
                    "koski_path = \"/koski/../api\"\nkoski_types = [",
                ),
                "participants[6].koski_path",
                |c| matches!(c, Cause::BadKoskiPath(_)),
            ),
            (
                edit(
                    "koski_types = [",
                    "virta_caller = \"virta-caller.toml\"\nkoski_types = [",
                ),
                "participants[6].virta_caller",
                |c| {
                    matches!(
                        c,
                        Cause::NotForProtocol {
                            field: "virta_caller",
                            ..
                        }
                    )
                },
            ),
        ];
        for (text, key, check) in cases {
            let problems = f.problems(&text);
            assert!(
                problems.iter().any(|p| p.key == key && check(&p.cause)),
                "expected a problem at {key}, got {problems:#?}"
            );
        }
    }

    #[test]
    fn a_bad_credentials_file_is_named_without_its_values() {
        let f = fixture();
        let secret = "Avain-3f9b-SALAINEN";
        for (content, says) in [
            (
                format!("jarjestelma = \"s\"\ntunnus = \"t\"\navain = {secret}\n"),
                "not valid TOML at line 3",
            ),
            (
                format!("jarjestelma = \"s\"\ntunnus = \"t\"\navian = \"{secret}\"\n"),
                "unknown key `avian`",
            ),
            (
                format!("jarjestelma = \"s\"\navain = \"{secret}\"\n"),
                "missing `tunnus`",
            ),
            (
                format!("jarjestelma = \"s\"\ntunnus = 5\navain = \"{secret}\"\n"),
                "`tunnus` must be a string",
            ),
            (
                format!(
                    "jarjestelma = \"s\"\ntunnus = \"t\"\navain = \"{secret}{}\"\n",
                    "x".repeat(100)
                ),
                "`avain` is 119 characters",
            ),
            (
                format!("jarjestelma = \"\"\ntunnus = \"t\"\navain = \"{secret}\"\n"),
                "`jarjestelma` must not be empty",
            ),
        ] {
            std::fs::write(f.pki.dir.join("virta-caller.toml"), &content).expect("write");
            let problems = f.problems(&with_registers(&f, "", ""));
            let problem = problems
                .iter()
                .find(|p| p.key == "participants[7].virta_caller")
                .unwrap_or_else(|| panic!("no problem for {content}: {problems:#?}"));
            let text = problem.to_string();
            assert!(text.contains(says), "{text}");
            assert!(!text.contains(secret), "{text}");
            assert!(!format!("{problem:?}").contains(secret));
        }
        let e = read_virta_caller(b"\xff").expect_err("not UTF-8");
        assert_eq!(e, "not UTF-8 text");
    }

    #[test]
    fn secrets_and_urls() {
        assert_eq!(
            redact_url("postgres://user:pw@host:5432/db"),
            "postgres://user:***@host:5432/db"
        );
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
        let beside = |p: &str| Path::new("/etc/siirto").join(p);
        for (written, meant) in [
            ("sqlite://siirto.db", "sqlite:///etc/siirto/siirto.db"),
            (
                "sqlite:data/s.db?mode=rwc",
                "sqlite:///etc/siirto/data/s.db?mode=rwc",
            ),
            (
                "sqlite:///var/lib/siirto/s.db",
                "sqlite:///var/lib/siirto/s.db",
            ),
            ("sqlite::memory:", "sqlite::memory:"),
            ("postgres://u@h/db", "postgres://u@h/db"),
        ] {
            assert_eq!(sqlite_relative_to(written, beside), meant, "{written}");
        }
        assert_eq!(
            redact_url("postgres://user@host/db"),
            "postgres://user@host/db"
        );
        let hex64 = "ab".repeat(32);
        assert_eq!(
            secret_key_bytes(format!("{hex64}\n").as_bytes()),
            Some(vec![0xab; 32])
        );
        assert_eq!(secret_key_bytes(&[7u8; 32]), Some(vec![7u8; 32]));
        assert_eq!(secret_key_bytes(&[7u8; 31]), None);
        assert_eq!(payload_key_bytes(hex64.as_bytes()), Some([0xab; 32]));
        assert_eq!(payload_key_bytes(b"abcd"), None);
        assert!(
            parse_base_url("https://[::1]:8443/")
                .is_ok_and(|(u, h, p)| { u == "https://[::1]:8443" && h == "::1" && p == 8443 })
        );
        assert!(parse_base_url("https://example.fi").is_ok_and(|(_, _, p)| p == 443));
        assert!(matches!(
            parse_base_url("https://x.fi/?q=1"),
            Err(Cause::BadUrl(_))
        ));
    }
}

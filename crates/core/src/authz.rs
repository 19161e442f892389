//! The student's signed authorization and transparency tokens: JWS compact bytes + issuer keys +
//! policy + directory + caller + "now" → a [`VerifiedAuthorization`] or a [`VerifiedTransparency`].
//!
//! Owns: loading issuers' public keys from JWKS files ([`IssuerKeys`]), the header and claim
//! rules of CONTRACT.md's "student's authorization" section, and the stable error codes of
//! [`AuthzError::code`]. Signatures are checked with josekit (OpenSSL).
//!
//! Must not: do IO other than reading the JWKS files it is handed in [`IssuerKeys::load`], keep
//! state (replay detection of `jti` belongs to the gateway's store: the verified values expose
//! [`VerifiedAuthorization::remember_until`] for it), read the clock (`now` is a parameter), or
//! put a student identifier or key material into an error message.
//!
//! # Order of checks
//! 1. size (at most [`MAX_TOKEN_BYTES`]) and compact form: three base64url segments (no
//!    padding, canonical), a JSON object header and payload without duplicate members;
//! 2. header, before any key is looked up: `alg` in the allowlist (`ES256`, `EdDSA`, `PS256`,
//!    `RS256`; absent, `none` and every `HS*` are `unsupported_alg`), no `jku`, `x5u`, `jwk`,
//!    `x5c` or `crit` whatever their value (`forbidden_header`), `kid` present and not empty
//!    (`missing_kid`), `typ` present and as expected (`wrong_typ`; compared ASCII
//!    case-insensitively, an `application/` prefix allowed as RFC 7515 §4.1.9 says);
//! 3. `iss` names a configured issuer, `kid` one of its keys, and the key's type fits `alg`
//!    (an RSA key never verifies `ES256`; a key whose JWK names `alg` only verifies that one);
//! 4. the signature;
//! 5. claims: `aud`, `iat`/`exp` (and optional `nbf`) with the skew, `exp - iat` against the
//!    maximum lifetime, `jti`, `sub`, then the kind-specific claims (`src`, `dst`, `scope`,
//!    `purpose` and the caller's right to submit, `dst` not the `src`; or `scope` =
//!    `transparency` and no `src`/`dst`);
//! 6. for an authorization, the people behind it (CONTRACT.md "Legal basis, guardians, and the
//!    consent text"): the form of `basis`, `birthdate` (with a henkilötunnus it must be the one
//!    it encodes), `act`, `consent_sha256` and `consent_lang` (`invalid_claim`); then a
//!    statutory basis within the destination's `statutory_purposes` and `statutory_scopes`
//!    (`statutory_not_allowed`); an `act`, when given, a guardian: role `guardian`, a valid
//!    henkilötunnus that is not the student's, 18 or older (`invalid_actor`); consent by a
//!    student younger than `[consent] own_consent_age` on the day of `iat` in Finland (a
//!    learner number without `birthdate` counts as younger) only with such an `act`
//!    (`guardian_required`); and the consent text: `consent_sha256` with `consent_lang`
//!    (either alone is `missing_claim`; both absent is `missing_claim` for consent unless
//!    `require_text_hash` is off) must be the hash of the text of this `src`, `dst`, scope,
//!    purpose, basis and language in the current or the previous version of the texts
//!    (`consent_text_mismatch`).
//!
//! # Absent or of the wrong type
//! One rule for every member: `alg`, `kid` or `typ` present with another JSON type than a
//! string (`null` included) is `malformed_token`; absent, each has its own code (above). A
//! claim present with the wrong JSON type (`null` included) is `invalid_claim`; a required
//! claim that is absent is `missing_claim`. A present member of the right type with a wrong
//! value gets the code of its check (`unsupported_alg`, `unknown_kid`, `wrong_typ`,
//! `unknown_issuer`, `wrong_audience`, `invalid_subject`, …).

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::Jwk;
use josekit::jws::{ES256, EdDSA, JwsVerifier, PS256, RS256};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::check::Question;
use crate::clock::{Timestamp, unhex};
use crate::config::{ConsentConfig, GatewayConfig, IssuerConfig};
use crate::consent::{Basis, Catalog, ConsentTextError, Subject, TextRequest};
use crate::identity::{Directory, Participant, Role};
use crate::lang::{Lang, age_on, helsinki_date};
use crate::record::Date;
use crate::scope::{Scope, ScopeError};
use crate::student_id::{StudentId, StudentIdError, StudentIdKind};

/// Largest token accepted, in bytes (checked before anything is decoded).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Longest `jti` accepted, in bytes.
pub const MAX_JTI_BYTES: usize = 256;
/// Longest `kid`, `iss`, `src`, `dst` or `aud` entry accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 512;
/// Longest `scope` claim accepted, in bytes.
pub const MAX_SCOPE_BYTES: usize = 256;
/// Most entries in an `aud` array.
pub const MAX_AUDIENCES: usize = 16;
/// Largest JWKS file read, in bytes.
pub const MAX_JWKS_BYTES: u64 = 1024 * 1024;

/// `typ` of a student's transfer authorization.
pub const AUTHORIZATION_TYP: &str = "siirto-authz+jwt";
/// `typ` of a student's token for reading their own transfer history.
pub const TRANSPARENCY_TYP: &str = "siirto-transparency+jwt";
/// `typ` of a student's authorization of a check without transfer (one question answered).
pub const CHECK_TYP: &str = "siirto-check+jwt";
/// The only `scope` of a transparency token.
pub const TRANSPARENCY_SCOPE: &str = "transparency";

/// Latest `iat`/`exp`/`nbf` accepted: 9999-12-31T23:59:59Z.
const MAX_NUMERIC_DATE_SECS: f64 = 253_402_300_799.0;

/// Header members that would let a token bring its own key or extend the rules: never honoured.
const FORBIDDEN_HEADERS: [&str; 5] = ["jku", "x5u", "jwk", "x5c", "crit"];

/// Members of a JWK that only a private (or symmetric) key has.
const PRIVATE_JWK_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A signature algorithm of the allowlist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// ECDSA with P-256 and SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
    /// RSASSA-PSS with SHA-256 (MGF1 SHA-256, 32-byte salt).
    Ps256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
}

impl Algorithm {
    pub const ALL: [Algorithm; 4] = [
        Algorithm::Es256,
        Algorithm::EdDsa,
        Algorithm::Ps256,
        Algorithm::Rs256,
    ];

    /// The JOSE name (`alg` header value).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Es256 => "ES256",
            Algorithm::EdDsa => "EdDSA",
            Algorithm::Ps256 => "PS256",
            Algorithm::Rs256 => "RS256",
        }
    }

    /// Exact, case-sensitive match of the JOSE name; `None` for anything off the allowlist.
    pub fn parse(s: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.as_str() == s)
    }

    fn fits(self, key_type: KeyType) -> bool {
        matches!(
            (self, key_type),
            (Algorithm::Es256, KeyType::EcP256)
                | (Algorithm::EdDsa, KeyType::Ed25519)
                | (Algorithm::Ps256 | Algorithm::Rs256, KeyType::Rsa)
        )
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kinds of public key an issuer's JWKS may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// `kty` `EC`, `crv` `P-256`.
    EcP256,
    /// `kty` `OKP`, `crv` `Ed25519`.
    Ed25519,
    /// `kty` `RSA`, at least 2048 bits.
    Rsa,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::EcP256 => "EC P-256",
            KeyType::Ed25519 => "OKP Ed25519",
            KeyType::Rsa => "RSA",
        }
    }
}

/// Why a JWKS could not be loaded. Each names the file (or issuer) and, where there is one, the
/// key's `kid`.
#[derive(Debug, thiserror::Error)]
pub enum KeyLoadError {
    #[error("cannot read JWKS file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("JWKS file {path} is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge { path: String },
    #[error("{origin}: not a JWKS (a JSON object with a `keys` array): {reason}")]
    NotJwks { origin: String, reason: String },
    #[error("{origin}: the JWKS holds no keys")]
    NoKeys { origin: String },
    #[error("{origin}: key #{index} has no `kid` (keys are chosen by kid)")]
    MissingKid { origin: String, index: usize },
    #[error("{origin}: kid {kid:?} appears more than once")]
    DuplicateKid { origin: String, kid: String },
    #[error(
        "{origin}: key {kid:?} holds private key material (`{member}`); publish public keys only"
    )]
    PrivateKeyMaterial {
        origin: String,
        kid: String,
        member: &'static str,
    },
    #[error("{origin}: key {kid:?} is not supported: {reason}")]
    UnsupportedKey {
        origin: String,
        kid: String,
        reason: String,
    },
    #[error("{origin}: key {kid:?} contradicts itself: {reason}")]
    Contradiction {
        origin: String,
        kid: String,
        reason: String,
    },
    #[error("{origin}: key {kid:?} is not a valid public key: {reason}")]
    InvalidKey {
        origin: String,
        kid: String,
        reason: String,
    },
    #[error("issuer {issuer:?} is configured more than once")]
    DuplicateIssuer { issuer: String },
}

/// One issuer key with a verifier for each algorithm it may be used with.
struct IssuerKey {
    key_type: KeyType,
    verifiers: Vec<(Algorithm, Box<dyn JwsVerifier>)>,
}

/// The public keys of every configured issuer, chosen by `iss` and then `kid`.
#[derive(Default)]
pub struct IssuerKeys {
    issuers: HashMap<String, HashMap<String, IssuerKey>>,
}

impl fmt::Debug for IssuerKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (issuer, keys) in &self.issuers {
            let kids: Vec<&String> = keys.keys().collect();
            m.entry(issuer, &kids);
        }
        m.finish()
    }
}

impl IssuerKeys {
    /// Reads every issuer's JWKS file.
    pub fn load(issuers: &[IssuerConfig]) -> Result<IssuerKeys, KeyLoadError> {
        let mut keys = IssuerKeys::default();
        for issuer in issuers {
            let path = issuer.jwks.display().to_string();
            let text = read_bounded(&issuer.jwks, &path)?;
            keys.add(&issuer.id, &text, &format!("JWKS file {path}"))?;
        }
        Ok(keys)
    }

    /// The keys of one issuer from JWKS text (for tests and reloads).
    pub fn from_jwks(issuer: &str, jwks_json: &str) -> Result<IssuerKeys, KeyLoadError> {
        IssuerKeys::default().with_jwks(issuer, jwks_json)
    }

    /// Adds another issuer's keys from JWKS text.
    pub fn with_jwks(mut self, issuer: &str, jwks_json: &str) -> Result<IssuerKeys, KeyLoadError> {
        self.add(issuer, jwks_json, &format!("JWKS of issuer {issuer}"))?;
        Ok(self)
    }

    /// The configured issuer ids.
    pub fn issuers(&self) -> impl Iterator<Item = &str> {
        self.issuers.keys().map(String::as_str)
    }

    /// How many keys an issuer has (0 when unknown).
    pub fn key_count(&self, issuer: &str) -> usize {
        self.issuers.get(issuer).map_or(0, HashMap::len)
    }

    fn add(&mut self, issuer: &str, text: &str, origin: &str) -> Result<(), KeyLoadError> {
        if self.issuers.contains_key(issuer) {
            return Err(KeyLoadError::DuplicateIssuer {
                issuer: issuer.to_owned(),
            });
        }
        let keys = parse_jwks(text, origin)?;
        self.issuers.insert(issuer.to_owned(), keys);
        Ok(())
    }

    fn key(&self, issuer: &str, kid: &str) -> Result<&IssuerKey, AuthzError> {
        let keys = self
            .issuers
            .get(issuer)
            .ok_or_else(|| AuthzError::UnknownIssuer(shown(issuer)))?;
        keys.get(kid).ok_or_else(|| AuthzError::UnknownKid {
            issuer: shown(issuer),
            kid: shown(kid),
        })
    }
}

fn read_bounded(path: &Path, shown_path: &str) -> Result<String, KeyLoadError> {
    let read_err = |source| KeyLoadError::Read {
        path: shown_path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if meta.len() > MAX_JWKS_BYTES {
        return Err(KeyLoadError::TooLarge {
            path: shown_path.to_owned(),
        });
    }
    std::fs::read_to_string(path).map_err(read_err)
}

fn parse_jwks(text: &str, origin: &str) -> Result<HashMap<String, IssuerKey>, KeyLoadError> {
    let not_jwks = |reason: String| KeyLoadError::NotJwks {
        origin: origin.to_owned(),
        reason,
    };
    let value: Value = serde_json::from_str(text).map_err(|e| not_jwks(e.to_string()))?;
    let keys = value
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| not_jwks("no `keys` array".into()))?;
    if keys.is_empty() {
        return Err(KeyLoadError::NoKeys {
            origin: origin.to_owned(),
        });
    }
    let mut out = HashMap::new();
    for (index, key) in keys.iter().enumerate() {
        let object = key
            .as_object()
            .ok_or_else(|| not_jwks(format!("key #{index} is not an object")))?;
        let kid = match object.get("kid") {
            Some(Value::String(k)) if !k.is_empty() && k.len() <= MAX_NAME_BYTES => k.clone(),
            _ => {
                return Err(KeyLoadError::MissingKid {
                    origin: origin.to_owned(),
                    index,
                });
            }
        };
        let parsed = parse_jwk(object, origin, &kid)?;
        if out.insert(kid.clone(), parsed).is_some() {
            return Err(KeyLoadError::DuplicateKid {
                origin: origin.to_owned(),
                kid,
            });
        }
    }
    Ok(out)
}

fn parse_jwk(
    object: &Map<String, Value>,
    origin: &str,
    kid: &str,
) -> Result<IssuerKey, KeyLoadError> {
    let unsupported = |reason: String| KeyLoadError::UnsupportedKey {
        origin: origin.to_owned(),
        kid: kid.to_owned(),
        reason,
    };
    let contradiction = |reason: String| KeyLoadError::Contradiction {
        origin: origin.to_owned(),
        kid: kid.to_owned(),
        reason,
    };
    if let Some(member) = PRIVATE_JWK_MEMBERS
        .into_iter()
        .find(|m| object.contains_key(*m))
    {
        return Err(KeyLoadError::PrivateKeyMaterial {
            origin: origin.to_owned(),
            kid: kid.to_owned(),
            member,
        });
    }
    let kty = object.get("kty").and_then(Value::as_str).unwrap_or("");
    let crv = object.get("crv").and_then(Value::as_str);
    let key_type = match (kty, crv) {
        ("EC", Some("P-256")) => KeyType::EcP256,
        ("EC", other) => {
            return Err(unsupported(format!(
                "EC curve {other:?} (only P-256 is accepted)"
            )));
        }
        ("OKP", Some("Ed25519")) => KeyType::Ed25519,
        ("OKP", other) => {
            return Err(unsupported(format!(
                "OKP curve {other:?} (only Ed25519 is accepted)"
            )));
        }
        ("RSA", _) => KeyType::Rsa,
        ("oct", _) => {
            return Err(unsupported(
                "symmetric (oct) keys are never accepted".into(),
            ));
        }
        (other, _) => return Err(unsupported(format!("kty {other:?}"))),
    };
    match object.get("use") {
        None => {}
        Some(Value::String(u)) if u == "sig" => {}
        Some(other) => {
            return Err(contradiction(format!(
                "use is {other}, but issuer keys verify signatures (use \"sig\")"
            )));
        }
    }
    if let Some(ops) = object.get("key_ops") {
        let verifies = ops
            .as_array()
            .is_some_and(|a| a.iter().any(|o| o.as_str() == Some("verify")));
        if !verifies {
            return Err(contradiction(format!(
                "key_ops {ops} does not include \"verify\""
            )));
        }
    }
    let algorithms: Vec<Algorithm> = match object.get("alg") {
        None => Algorithm::ALL
            .into_iter()
            .filter(|a| a.fits(key_type))
            .collect(),
        Some(Value::String(name)) => match Algorithm::parse(name) {
            Some(a) if a.fits(key_type) => vec![a],
            _ => {
                return Err(contradiction(format!(
                    "alg {name:?} cannot be used with a {} key",
                    key_type.as_str()
                )));
            }
        },
        Some(other) => return Err(contradiction(format!("alg {other} is not a string"))),
    };
    let jwk = Jwk::from_map(object.clone()).map_err(|e| KeyLoadError::InvalidKey {
        origin: origin.to_owned(),
        kid: kid.to_owned(),
        reason: e.to_string(),
    })?;
    let mut verifiers: Vec<(Algorithm, Box<dyn JwsVerifier>)> = Vec::new();
    for alg in algorithms {
        let built: Result<Box<dyn JwsVerifier>, josekit::JoseError> = match alg {
            Algorithm::Es256 => ES256
                .verifier_from_jwk(&jwk)
                .map(|v| Box::new(v) as Box<dyn JwsVerifier>),
            Algorithm::EdDsa => EdDSA
                .verifier_from_jwk(&jwk)
                .map(|v| Box::new(v) as Box<dyn JwsVerifier>),
            Algorithm::Ps256 => PS256
                .verifier_from_jwk(&jwk)
                .map(|v| Box::new(v) as Box<dyn JwsVerifier>),
            Algorithm::Rs256 => RS256
                .verifier_from_jwk(&jwk)
                .map(|v| Box::new(v) as Box<dyn JwsVerifier>),
        };
        let verifier = built.map_err(|e| KeyLoadError::InvalidKey {
            origin: origin.to_owned(),
            kid: kid.to_owned(),
            reason: e.to_string(),
        })?;
        verifiers.push((alg, verifier));
    }
    Ok(IssuerKey {
        key_type,
        verifiers,
    })
}

/// What the gateway requires of every token, from `[gateway]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The `aud` every token must name.
    pub gateway_id: String,
    /// Longest `exp - iat` accepted.
    pub max_lifetime: Duration,
    /// Clock difference tolerated on `iat`, `nbf` and `exp`.
    pub skew: Duration,
    /// `[consent]`: the age of consenting alone, and whether the consent text must be proven.
    pub consent: ConsentConfig,
}

impl Policy {
    /// The policy of `[gateway]` with `[consent]` at its defaults.
    pub fn from_gateway(gateway: &GatewayConfig) -> Policy {
        Policy::from_config(gateway, ConsentConfig::default())
    }

    /// The policy of `[gateway]` and `[consent]`.
    pub fn from_config(gateway: &GatewayConfig, consent: ConsentConfig) -> Policy {
        Policy {
            gateway_id: gateway.id.clone(),
            max_lifetime: gateway.max_authorization_lifetime,
            skew: gateway.clock_skew,
            consent,
        }
    }
}

/// Why a token was refused. [`AuthzError::code`] is the stable code clients and tests see;
/// the `Display` text is safe to show to the client and to log: it never holds the student
/// identifier or key material, and token-supplied strings are shortened and escaped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthzError {
    #[error("token is not a JWS in compact serialization: {0}")]
    Malformed(String),
    #[error("token is {0} bytes; at most {MAX_TOKEN_BYTES} are accepted")]
    TooLarge(usize),
    #[error("alg {0} is not accepted (allowed: ES256, EdDSA, PS256, RS256)")]
    UnsupportedAlg(String),
    #[error("header has no alg (allowed: ES256, EdDSA, PS256, RS256)")]
    MissingAlg,
    #[error("alg {alg} cannot be used with key {kid} (a {key_type} key)")]
    AlgorithmKeyMismatch {
        alg: Algorithm,
        kid: String,
        key_type: &'static str,
    },
    #[error("header has no kid")]
    MissingKid,
    #[error("typ must be {expected}, found {found}")]
    WrongTyp {
        expected: &'static str,
        found: String,
    },
    #[error("header member {0} is not accepted")]
    ForbiddenHeader(&'static str),
    #[error("issuer {0} is not configured")]
    UnknownIssuer(String),
    #[error("issuer {issuer} has no key {kid}")]
    UnknownKid { issuer: String, kid: String },
    #[error("signature does not verify")]
    BadSignature,
    #[error("claim {0} is missing")]
    MissingClaim(&'static str),
    #[error("claim {claim} is invalid: {reason}")]
    InvalidClaim { claim: &'static str, reason: String },
    #[error("aud does not name this gateway")]
    WrongAudience,
    #[error("token expired at {0}")]
    Expired(Timestamp),
    #[error("token is not valid yet ({claim} is {at})")]
    NotYetValid { claim: &'static str, at: Timestamp },
    #[error("exp - iat is {lifetime_secs} s; at most {max_secs} s is accepted")]
    LifetimeTooLong { lifetime_secs: i64, max_secs: u64 },
    #[error("sub is not a student identifier: {0}")]
    InvalidSubject(StudentIdError),
    #[error("{claim} {id} is not a known participant")]
    UnknownParticipant { claim: &'static str, id: String },
    #[error("src {0} is not a source")]
    InvalidSource(String),
    #[error("dst {0} is not a destination")]
    InvalidDestination(String),
    #[error("dst {0} is also the src: a record is never sent back to where it came from")]
    SourceIsDestination(String),
    #[error("scope is invalid: {0}")]
    InvalidScope(String),
    #[error("scope must contain identity")]
    MissingIdentityScope,
    #[error("participant {caller} may not submit authorizations for dst {destination}")]
    ForbiddenSubmitter { caller: String, destination: String },
    #[error(
        "basis statutory is not allowed here: dst {destination} receives by law only the purposes and categories of its statutory_purposes and statutory_scopes ({reason})"
    )]
    StatutoryNotAllowed { destination: String, reason: String },
    #[error(
        "the student is younger than {own_consent_age} on the day of iat (or of unknown age: a learner number without birthdate): consent needs a guardian's act ({{\"sub\": <henkilötunnus>, \"role\": \"guardian\"}})"
    )]
    GuardianRequired { own_consent_age: u32 },
    #[error("question {0} is not a known question")]
    UnknownQuestion(String),
    #[error(
        "question {question} cannot be answered from src {source_id}: its format {format} does not carry it"
    )]
    QuestionNotSupported {
        question: Question,
        source_id: String,
        format: crate::formats::Format,
    },
    #[error("act is not a guardian the gateway accepts: {0}")]
    InvalidActor(String),
    #[error(
        "consent_sha256 is not the SHA-256 of the consent text (current or previous version) for this src, dst, scope, purpose, basis and consent_lang {lang}"
    )]
    ConsentTextMismatch { lang: Lang },
}

impl AuthzError {
    /// The stable error code (the HTTP layer's `error` member).
    pub fn code(&self) -> &'static str {
        match self {
            AuthzError::Malformed(_) => "malformed_token",
            AuthzError::TooLarge(_) => "token_too_large",
            AuthzError::UnsupportedAlg(_)
            | AuthzError::MissingAlg
            | AuthzError::AlgorithmKeyMismatch { .. } => "unsupported_alg",
            AuthzError::MissingKid => "missing_kid",
            AuthzError::WrongTyp { .. } => "wrong_typ",
            AuthzError::ForbiddenHeader(_) => "forbidden_header",
            AuthzError::UnknownIssuer(_) => "unknown_issuer",
            AuthzError::UnknownKid { .. } => "unknown_kid",
            AuthzError::BadSignature => "bad_signature",
            AuthzError::MissingClaim(_) => "missing_claim",
            AuthzError::InvalidClaim { .. } => "invalid_claim",
            AuthzError::WrongAudience => "wrong_audience",
            AuthzError::Expired(_) => "expired",
            AuthzError::NotYetValid { .. } => "not_yet_valid",
            AuthzError::LifetimeTooLong { .. } => "lifetime_too_long",
            AuthzError::InvalidSubject(_) => "invalid_subject",
            AuthzError::UnknownParticipant { .. } => "unknown_participant",
            AuthzError::InvalidSource(_) => "invalid_source",
            AuthzError::InvalidDestination(_) | AuthzError::SourceIsDestination(_) => {
                "invalid_destination"
            }
            AuthzError::InvalidScope(_) => "invalid_scope",
            AuthzError::MissingIdentityScope => "missing_identity_scope",
            AuthzError::ForbiddenSubmitter { .. } => "forbidden_submitter",
            AuthzError::StatutoryNotAllowed { .. } => "statutory_not_allowed",
            AuthzError::GuardianRequired { .. } => "guardian_required",
            AuthzError::InvalidActor(_) => "invalid_actor",
            AuthzError::UnknownQuestion(_) => "unknown_question",
            AuthzError::QuestionNotSupported { .. } => "question_not_supported",
            AuthzError::ConsentTextMismatch { .. } => "consent_text_mismatch",
        }
    }

    /// Human text safe to send to the client (the same as `Display`).
    pub fn message(&self) -> String {
        self.to_string()
    }
}

/// A transfer authorization whose signature and every claim have been checked.
/// Only [`verify_authorization`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAuthorization {
    common: CommonClaims,
    source: String,
    destination: String,
    scope: Scope,
    purpose: String,
    basis: Basis,
    guardian: Option<StudentId>,
    consent: Option<ConsentProof>,
}

/// Which consent text an authorization proves was shown: its hash, language and the version of
/// the texts it was found in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentProof {
    pub sha256: [u8; 32],
    pub lang: Lang,
    pub version: String,
}

impl VerifiedAuthorization {
    /// `iss`: the issuer that signed it.
    pub fn issuer(&self) -> &str {
        &self.common.issuer
    }
    /// `kid` of the key that verified it.
    pub fn key_id(&self) -> &str {
        &self.common.key_id
    }
    pub fn algorithm(&self) -> Algorithm {
        self.common.algorithm
    }
    /// `jti`: unique per issuer; the store rejects a second use until [`Self::remember_until`].
    pub fn jti(&self) -> &str {
        &self.common.jti
    }
    /// `sub`: the student. Personal data: never log it.
    pub fn subject(&self) -> &StudentId {
        &self.common.subject
    }
    /// `src`: the participant the record comes from (has role `source`).
    pub fn source(&self) -> &str {
        &self.source
    }
    /// `dst`: the participant the record goes to (has role `destination`).
    pub fn destination(&self) -> &str {
        &self.destination
    }
    pub fn scope(&self) -> Scope {
        self.scope
    }
    pub fn purpose(&self) -> &str {
        &self.purpose
    }
    /// `basis`: consent (the default) or statutory.
    pub fn basis(&self) -> Basis {
        self.basis
    }
    /// `act.sub`: the guardian who consented for the student, when one did. Personal data:
    /// never log it; the audit and the store hold it only as a keyed pseudonym.
    pub fn guardian(&self) -> Option<&StudentId> {
        self.guardian.as_ref()
    }
    /// The consent text the authorization proves was shown, when it names one.
    pub fn consent(&self) -> Option<&ConsentProof> {
        self.consent.as_ref()
    }
    pub fn issued_at(&self) -> Timestamp {
        self.common.issued_at
    }
    pub fn expires_at(&self) -> Timestamp {
        self.common.expires_at
    }
    pub fn not_before(&self) -> Option<Timestamp> {
        self.common.not_before
    }
    /// How long the (`iss`, `jti`) pair must be remembered for replay detection: `exp` + skew,
    /// after which the token is refused as expired anyway.
    pub fn remember_until(&self) -> Timestamp {
        self.common.remember_until
    }
}

/// A transparency token (reading one's own transfer history) whose signature and claims have
/// been checked. Only [`verify_transparency`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedTransparency {
    common: CommonClaims,
}

impl VerifiedTransparency {
    pub fn issuer(&self) -> &str {
        &self.common.issuer
    }
    pub fn key_id(&self) -> &str {
        &self.common.key_id
    }
    pub fn algorithm(&self) -> Algorithm {
        self.common.algorithm
    }
    pub fn jti(&self) -> &str {
        &self.common.jti
    }
    /// `sub`: the student whose history may be read. Personal data: never log it.
    pub fn subject(&self) -> &StudentId {
        &self.common.subject
    }
    pub fn issued_at(&self) -> Timestamp {
        self.common.issued_at
    }
    pub fn expires_at(&self) -> Timestamp {
        self.common.expires_at
    }
    pub fn not_before(&self) -> Option<Timestamp> {
        self.common.not_before
    }
    /// See [`VerifiedAuthorization::remember_until`].
    pub fn remember_until(&self) -> Timestamp {
        self.common.remember_until
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct CommonClaims {
    issuer: String,
    key_id: String,
    algorithm: Algorithm,
    jti: String,
    subject: StudentId,
    issued_at: Timestamp,
    expires_at: Timestamp,
    not_before: Option<Timestamp>,
    remember_until: Timestamp,
}

/// Verifies a student's transfer authorization (`typ` `siirto-authz+jwt`) submitted by
/// `caller`, its consent text against `texts`. See the module documentation for the order of
/// checks.
pub fn verify_authorization(
    token: &str,
    keys: &IssuerKeys,
    policy: &Policy,
    directory: &Directory,
    texts: &Catalog,
    caller: &Participant,
    now: Timestamp,
) -> Result<VerifiedAuthorization, AuthzError> {
    let (common, claims) = verify_common(token, keys, policy, now, AUTHORIZATION_TYP)?;
    let (source_participant, destination_participant) = parties(&claims, directory)?;

    let scope_text = string_claim(&claims, "scope", MAX_SCOPE_BYTES)?;
    let scope = Scope::parse(scope_text).map_err(|e| match e {
        ScopeError::MissingIdentity => AuthzError::MissingIdentityScope,
        ScopeError::Empty => AuthzError::InvalidScope("no category named".into()),
        ScopeError::UnknownCategory(c) => {
            AuthzError::InvalidScope(format!("unknown category {}", shown(&c)))
        }
        ScopeError::Duplicate(c) => {
            AuthzError::InvalidScope(format!("category {} named twice", shown(&c)))
        }
    })?;

    let purpose = purpose_and_submitter(&claims, caller, destination_participant)?;

    let people = PeopleClaims::read(&claims, &common.subject)?;
    let request = TextRequest {
        source: source_participant,
        destination: destination_participant,
        subject: Subject::Categories(scope),
        purpose,
        basis: people.basis,
    };
    let (guardian, consent) = people.check(&request, policy, texts, &common)?;

    Ok(VerifiedAuthorization {
        common,
        source: source_participant.id.clone(),
        destination: destination_participant.id.clone(),
        scope,
        purpose: purpose.to_owned(),
        basis: people.basis,
        guardian,
        consent,
    })
}

/// `src` and `dst` of a transfer or a check: known participants, a source and a destination,
/// not the same one.
fn parties<'d>(
    claims: &Map<String, Value>,
    directory: &'d Directory,
) -> Result<(&'d Participant, &'d Participant), AuthzError> {
    let source = name_claim(claims, "src")?;
    let source_participant =
        directory
            .get(source)
            .ok_or_else(|| AuthzError::UnknownParticipant {
                claim: "src",
                id: shown(source),
            })?;
    if !source_participant.has_role(Role::Source) {
        return Err(AuthzError::InvalidSource(shown(source)));
    }
    let destination = name_claim(claims, "dst")?;
    let destination_participant =
        directory
            .get(destination)
            .ok_or_else(|| AuthzError::UnknownParticipant {
                claim: "dst",
                id: shown(destination),
            })?;
    if !destination_participant.has_role(Role::Destination) {
        return Err(AuthzError::InvalidDestination(shown(destination)));
    }
    if destination_participant.id == source_participant.id {
        return Err(AuthzError::SourceIsDestination(shown(destination)));
    }
    Ok((source_participant, destination_participant))
}

/// `purpose`, and whether `caller` may submit for the destination (an e-service, or the
/// destination itself).
fn purpose_and_submitter<'c>(
    claims: &'c Map<String, Value>,
    caller: &Participant,
    destination_participant: &Participant,
) -> Result<&'c str, AuthzError> {
    let purpose = string_claim(claims, "purpose", 64)?;
    if !purpose
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(AuthzError::InvalidClaim {
            claim: "purpose",
            reason: "must be 1-64 characters of a-z, 0-9 and -".into(),
        });
    }

    if !(caller.has_role(Role::Eservice) || caller.id == destination_participant.id) {
        return Err(AuthzError::ForbiddenSubmitter {
            caller: caller.id.clone(),
            destination: destination_participant.id.clone(),
        });
    }
    Ok(purpose)
}

/// A check's authorization (`typ` `siirto-check+jwt`) whose signature and every claim have been
/// checked. Only [`verify_check`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCheck {
    common: CommonClaims,
    source: String,
    destination: String,
    question: Question,
    purpose: String,
    basis: Basis,
    guardian: Option<StudentId>,
    consent: Option<ConsentProof>,
}

impl VerifiedCheck {
    pub fn issuer(&self) -> &str {
        &self.common.issuer
    }
    pub fn key_id(&self) -> &str {
        &self.common.key_id
    }
    /// `jti`: unique per issuer, shared with transfer authorizations for replay.
    pub fn jti(&self) -> &str {
        &self.common.jti
    }
    /// `sub`: the student. Personal data: never log it.
    pub fn subject(&self) -> &StudentId {
        &self.common.subject
    }
    /// `src`: who is asked (has role `source`).
    pub fn source(&self) -> &str {
        &self.source
    }
    /// `dst`: who asks and receives the answer (has role `destination`).
    pub fn destination(&self) -> &str {
        &self.destination
    }
    pub fn question(&self) -> Question {
        self.question
    }
    pub fn purpose(&self) -> &str {
        &self.purpose
    }
    pub fn basis(&self) -> Basis {
        self.basis
    }
    /// See [`VerifiedAuthorization::guardian`].
    pub fn guardian(&self) -> Option<&StudentId> {
        self.guardian.as_ref()
    }
    pub fn consent(&self) -> Option<&ConsentProof> {
        self.consent.as_ref()
    }
    pub fn issued_at(&self) -> Timestamp {
        self.common.issued_at
    }
    /// See [`VerifiedAuthorization::remember_until`].
    pub fn remember_until(&self) -> Timestamp {
        self.common.remember_until
    }
}

/// Verifies a check's authorization (`typ` `siirto-check+jwt`) submitted by `caller`: the
/// claims of a transfer authorization with `question` instead of `scope` (a `scope` is
/// refused: `invalid_claim`), the same basis, guardian and consent-text rules (the text names
/// the question). A question the source's format cannot answer is refused here, before
/// anything is fetched (`question_not_supported`).
pub fn verify_check(
    token: &str,
    keys: &IssuerKeys,
    policy: &Policy,
    directory: &Directory,
    texts: &Catalog,
    caller: &Participant,
    now: Timestamp,
) -> Result<VerifiedCheck, AuthzError> {
    let (common, claims) = verify_common(token, keys, policy, now, CHECK_TYP)?;
    if claims.contains_key("scope") {
        return Err(AuthzError::InvalidClaim {
            claim: "scope",
            reason: "a check moves no record: it names a question, never a scope".into(),
        });
    }
    let (source_participant, destination_participant) = parties(&claims, directory)?;
    let question_text = string_claim(&claims, "question", 64)?;
    let question = Question::parse(question_text)
        .ok_or_else(|| AuthzError::UnknownQuestion(shown(question_text)))?;
    if let Some(endpoint) = &source_participant.endpoint
        && !question.supported_by(endpoint.format)
    {
        return Err(AuthzError::QuestionNotSupported {
            question,
            source_id: source_participant.id.clone(),
            format: endpoint.format,
        });
    }
    let purpose = purpose_and_submitter(&claims, caller, destination_participant)?;
    let people = PeopleClaims::read(&claims, &common.subject)?;
    let request = TextRequest {
        source: source_participant,
        destination: destination_participant,
        subject: Subject::Question(question.as_str()),
        purpose,
        basis: people.basis,
    };
    let (guardian, consent) = people.check(&request, policy, texts, &common)?;
    Ok(VerifiedCheck {
        common,
        source: source_participant.id.clone(),
        destination: destination_participant.id.clone(),
        question,
        purpose: purpose.to_owned(),
        basis: people.basis,
        guardian,
        consent,
    })
}

/// The claims about the people behind an authorization: `basis`, `birthdate`, `act`,
/// `consent_sha256` and `consent_lang`, read (type and form) but not yet checked.
struct PeopleClaims {
    basis: Basis,
    birth_date: Option<Date>,
    actor: Option<Actor>,
    consent_sha256: Option<[u8; 32]>,
    consent_lang: Option<Lang>,
}

/// `act` as written: `{"sub": "<henkilötunnus>", "role": "guardian"}`.
struct Actor {
    sub: String,
    role: String,
}

impl PeopleClaims {
    fn read(claims: &Map<String, Value>, subject: &StudentId) -> Result<PeopleClaims, AuthzError> {
        let invalid = |claim: &'static str, reason: &str| AuthzError::InvalidClaim {
            claim,
            reason: reason.into(),
        };
        let optional = |claim: &'static str, max: usize| match claims.get(claim) {
            None => Ok(None),
            Some(_) => string_claim(claims, claim, max).map(Some),
        };
        let basis = match optional("basis", 16)? {
            None => Basis::Consent,
            Some(b) => {
                Basis::parse(b).ok_or_else(|| invalid("basis", "must be consent or statutory"))?
            }
        };
        let birth_date = match optional("birthdate", 10)? {
            None => None,
            Some(b) => Some(
                Date::parse(b)
                    .map_err(|_| invalid("birthdate", "must be a calendar date YYYY-MM-DD"))?,
            ),
        };
        if let (Some(claimed), StudentIdKind::Henkilotunnus) = (birth_date, subject.kind())
            && henkilotunnus_birth_date(subject.as_str()) != Some(claimed)
        {
            return Err(invalid(
                "birthdate",
                "differs from the birth date the henkilötunnus of sub encodes",
            ));
        }
        let actor = match claims.get("act") {
            None => None,
            Some(Value::Object(act)) => {
                let member = |name: &str| match act.get(name) {
                    Some(Value::String(s)) if !s.is_empty() && s.len() <= 64 => Ok(s.clone()),
                    _ => Err(invalid(
                        "act",
                        "must be an object with string members sub and role",
                    )),
                };
                Some(Actor {
                    sub: member("sub")?,
                    role: member("role")?,
                })
            }
            Some(other) => {
                return Err(invalid(
                    "act",
                    &format!("is {}, not an object", json_type(other)),
                ));
            }
        };
        let consent_sha256 = match optional("consent_sha256", 64)? {
            None => None,
            Some(h) => Some(
                unhex(h)
                    .filter(|_| h.bytes().all(|b| !b.is_ascii_uppercase()))
                    .and_then(|v| <[u8; 32]>::try_from(v).ok())
                    .ok_or_else(|| invalid("consent_sha256", "must be 64 lower-case hex digits"))?,
            ),
        };
        let consent_lang = match optional("consent_lang", 2)? {
            None => None,
            Some(l) => Some(
                Lang::parse(l).ok_or_else(|| invalid("consent_lang", "must be fi, sv or en"))?,
            ),
        };
        Ok(PeopleClaims {
            basis,
            birth_date,
            actor,
            consent_sha256,
            consent_lang,
        })
    }

    /// The rules of CONTRACT.md's "Legal basis, guardians, and the consent text", in order:
    /// the statutory basis, the guardian, the consent text. Returns the guardian and the
    /// consent text proven.
    fn check(
        &self,
        request: &TextRequest,
        policy: &Policy,
        texts: &Catalog,
        common: &CommonClaims,
    ) -> Result<(Option<StudentId>, Option<ConsentProof>), AuthzError> {
        let destination = request.destination;
        if self.basis == Basis::Statutory {
            let refuse = |reason: &str| AuthzError::StatutoryNotAllowed {
                destination: destination.id.clone(),
                reason: reason.into(),
            };
            let rules = destination
                .statutory
                .as_ref()
                .ok_or_else(|| refuse("it receives nothing by law"))?;
            let Subject::Categories(scope) = request.subject else {
                return Err(refuse("a check is not within them"));
            };
            if !rules.purposes.iter().any(|p| p == request.purpose) {
                return Err(refuse("the purpose is not among them"));
            }
            if !rules.allows(request.purpose, scope) {
                return Err(refuse("a category of the scope is not among them"));
            }
        }

        // The day that counts is the day of `iat` in Finland.
        let day = helsinki_date(common.issued_at);
        let student_birth = match common.subject.kind() {
            StudentIdKind::Henkilotunnus => henkilotunnus_birth_date(common.subject.as_str()),
            StudentIdKind::LearnerOid => self.birth_date,
        };
        let guardian = match &self.actor {
            Some(actor) => Some(check_guardian(actor, &common.subject, day)?),
            None => None,
        };
        if self.basis == Basis::Consent && guardian.is_none() {
            let adult_enough = match (student_birth, day) {
                (Some(birth), Some(day)) => age_on(birth, day) >= policy.consent.own_consent_age,
                // A learner number without birthdate counts as a minor.
                _ => false,
            };
            if !adult_enough {
                return Err(AuthzError::GuardianRequired {
                    own_consent_age: policy.consent.own_consent_age,
                });
            }
        }

        let consent = match (self.consent_sha256, self.consent_lang) {
            (Some(sha256), Some(lang)) => {
                let version = texts
                    .matching_version(request, lang, &sha256)
                    .map_err(|e| match e {
                        ConsentTextError::NoStatute(_) => AuthzError::StatutoryNotAllowed {
                            destination: destination.id.clone(),
                            reason: e.to_string(),
                        },
                        ConsentTextError::Unnamed(_) | ConsentTextError::UnknownQuestion(_) => {
                            AuthzError::ConsentTextMismatch { lang }
                        }
                    })?
                    .ok_or(AuthzError::ConsentTextMismatch { lang })?;
                Some(ConsentProof {
                    sha256,
                    lang,
                    version: version.to_owned(),
                })
            }
            (Some(_), None) => return Err(AuthzError::MissingClaim("consent_lang")),
            (None, Some(_)) => return Err(AuthzError::MissingClaim("consent_sha256")),
            (None, None) => {
                if self.basis == Basis::Consent && policy.consent.require_text_hash {
                    return Err(AuthzError::MissingClaim("consent_sha256"));
                }
                None
            }
        };
        Ok((guardian, consent))
    }
}

/// The guardian of `act`: `role` guardian, `sub` a valid henkilötunnus that is not the
/// student's, of a person aged 18 or more on `day`.
fn check_guardian(
    actor: &Actor,
    student: &StudentId,
    day: Option<Date>,
) -> Result<StudentId, AuthzError> {
    if actor.role != "guardian" {
        return Err(AuthzError::InvalidActor(format!(
            "role is {}, but only guardian is accepted",
            shown(&actor.role)
        )));
    }
    // The identifier is never repeated in the message.
    let id = StudentId::parse(&actor.sub)
        .ok()
        .filter(|id| id.kind() == StudentIdKind::Henkilotunnus)
        .ok_or_else(|| AuthzError::InvalidActor("sub is not a valid henkilötunnus".into()))?;
    if id.as_str() == student.as_str() {
        return Err(AuthzError::InvalidActor(
            "sub is the student: a student cannot be their own guardian".into(),
        ));
    }
    let adult = match (henkilotunnus_birth_date(id.as_str()), day) {
        (Some(birth), Some(day)) => age_on(birth, day) >= 18,
        _ => false,
    };
    if !adult {
        return Err(AuthzError::InvalidActor(
            "a guardian must be 18 or older on the day of iat".into(),
        ));
    }
    Ok(id)
}

/// The birth date a (valid) henkilötunnus encodes.
fn henkilotunnus_birth_date(henkilotunnus: &str) -> Option<Date> {
    let (year, month, day) = crate::student_id::birth_date(henkilotunnus)?;
    Date::new(u16::try_from(year).ok()?, month, day).ok()
}

/// Verifies a student's transparency token (`typ` `siirto-transparency+jwt`, `scope`
/// `transparency`, no `src`/`dst`). An authorization token is refused here (`wrong_typ`).
pub fn verify_transparency(
    token: &str,
    keys: &IssuerKeys,
    policy: &Policy,
    now: Timestamp,
) -> Result<VerifiedTransparency, AuthzError> {
    let (common, claims) = verify_common(token, keys, policy, now, TRANSPARENCY_TYP)?;
    for claim in ["src", "dst"] {
        if claims.contains_key(claim) {
            return Err(AuthzError::InvalidClaim {
                claim,
                reason: "a transparency token must not name a participant".into(),
            });
        }
    }
    let scope = string_claim(&claims, "scope", MAX_SCOPE_BYTES)?;
    if scope != TRANSPARENCY_SCOPE {
        return Err(AuthzError::InvalidScope(format!(
            "a transparency token's scope must be exactly {TRANSPARENCY_SCOPE}"
        )));
    }
    Ok(VerifiedTransparency { common })
}

/// Steps 1-4 and the claims both token kinds share.
fn verify_common(
    token: &str,
    keys: &IssuerKeys,
    policy: &Policy,
    now: Timestamp,
    expected_typ: &'static str,
) -> Result<(CommonClaims, Map<String, Value>), AuthzError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthzError::TooLarge(token.len()));
    }
    let compact = Compact::split(token)?;
    let header = compact.header()?;

    // Header rules, all before any key is looked up. A member the gateway reads that is present
    // with another JSON type than a string (null included) makes the token malformed; an
    // absent one has its own code.
    let algorithm = match header_string(&header, "alg")? {
        Some(name) => {
            Algorithm::parse(name).ok_or_else(|| AuthzError::UnsupportedAlg(shown(name)))?
        }
        None => return Err(AuthzError::MissingAlg),
    };
    if let Some(name) = FORBIDDEN_HEADERS
        .into_iter()
        .find(|h| header.contains_key(*h))
    {
        return Err(AuthzError::ForbiddenHeader(name));
    }
    let key_id = match header_string(&header, "kid")? {
        Some(k) if !k.is_empty() => k,
        Some(_) | None => return Err(AuthzError::MissingKid),
    };
    if key_id.len() > MAX_NAME_BYTES {
        return Err(AuthzError::Malformed(format!(
            "kid is longer than {MAX_NAME_BYTES} bytes"
        )));
    }
    match header_string(&header, "typ")? {
        Some(t) if typ_matches(t, expected_typ) => {}
        found => {
            return Err(AuthzError::WrongTyp {
                expected: expected_typ,
                found: found.map_or_else(|| "(none)".to_owned(), shown),
            });
        }
    }

    // The payload is read before the signature is checked only to find the issuer's keys.
    let claims = compact.payload()?;
    let issuer = name_claim(&claims, "iss")?;
    let key = keys.key(issuer, key_id)?;
    if !algorithm.fits(key.key_type) {
        return Err(AuthzError::AlgorithmKeyMismatch {
            alg: algorithm,
            kid: shown(key_id),
            key_type: key.key_type.as_str(),
        });
    }
    let verifier = key
        .verifiers
        .iter()
        .find(|(a, _)| *a == algorithm)
        .map(|(_, v)| v)
        .ok_or_else(|| AuthzError::AlgorithmKeyMismatch {
            alg: algorithm,
            kid: shown(key_id),
            key_type: key.key_type.as_str(),
        })?;
    let signature = compact.signature()?;
    verifier
        .verify(compact.signing_input.as_bytes(), &signature)
        .map_err(|_| AuthzError::BadSignature)?;

    // Claims.
    check_audience(&claims, &policy.gateway_id)?;
    let issued_at = numeric_date(&claims, "iat")?.ok_or(AuthzError::MissingClaim("iat"))?;
    let expires_at = numeric_date(&claims, "exp")?.ok_or(AuthzError::MissingClaim("exp"))?;
    let not_before = numeric_date(&claims, "nbf")?;
    if expires_at <= issued_at {
        return Err(AuthzError::InvalidClaim {
            claim: "exp",
            reason: "exp is not after iat".into(),
        });
    }
    let lifetime = expires_at.since(issued_at);
    if lifetime > policy.max_lifetime {
        return Err(AuthzError::LifetimeTooLong {
            lifetime_secs: i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX),
            max_secs: policy.max_lifetime.as_secs(),
        });
    }
    let remember_until = expires_at.saturating_add(policy.skew);
    if now >= remember_until {
        return Err(AuthzError::Expired(expires_at));
    }
    let latest_start = now.saturating_add(policy.skew);
    if issued_at > latest_start {
        return Err(AuthzError::NotYetValid {
            claim: "iat",
            at: issued_at,
        });
    }
    if let Some(nbf) = not_before
        && nbf > latest_start
    {
        return Err(AuthzError::NotYetValid {
            claim: "nbf",
            at: nbf,
        });
    }
    let jti = string_claim(&claims, "jti", MAX_JTI_BYTES)?;
    // string_claim's reasons never repeat the value, so the identifier stays out of errors.
    let sub = string_claim(&claims, "sub", 64)?;
    let subject = StudentId::parse(sub).map_err(AuthzError::InvalidSubject)?;

    let common = CommonClaims {
        issuer: issuer.to_owned(),
        key_id: key_id.to_owned(),
        algorithm,
        jti: jti.to_owned(),
        subject,
        issued_at,
        expires_at,
        not_before,
        remember_until,
    };
    Ok((common, claims))
}

/// The three segments of a compact JWS, split but not yet decoded.
struct Compact<'a> {
    /// `header.payload`, the bytes the signature covers.
    signing_input: &'a str,
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
}

impl<'a> Compact<'a> {
    fn split(token: &'a str) -> Result<Compact<'a>, AuthzError> {
        if token.is_empty() {
            return Err(AuthzError::Malformed("token is empty".into()));
        }
        if let Some(bad) = token
            .bytes()
            .position(|b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'))
        {
            return Err(AuthzError::Malformed(format!(
                "character at offset {bad} is not base64url or '.'"
            )));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthzError::Malformed(
                "expected three segments separated by '.'".into(),
            ));
        };
        let signing_input = &token[..header.len() + 1 + payload.len()];
        Ok(Compact {
            signing_input,
            header,
            payload,
            signature,
        })
    }

    fn header(&self) -> Result<Map<String, Value>, AuthzError> {
        json_object(&decode_segment(self.header, "header")?, "header")
    }

    fn payload(&self) -> Result<Map<String, Value>, AuthzError> {
        json_object(&decode_segment(self.payload, "payload")?, "payload")
    }

    fn signature(&self) -> Result<Vec<u8>, AuthzError> {
        let bytes = decode_segment(self.signature, "signature")?;
        if bytes.is_empty() {
            return Err(AuthzError::BadSignature);
        }
        Ok(bytes)
    }
}

fn decode_segment(segment: &str, what: &str) -> Result<Vec<u8>, AuthzError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| AuthzError::Malformed(format!("{what} is not canonical base64url")))
}

/// A JSON object whose members are each named once (a duplicate could be read differently by
/// another parser, so it is refused rather than resolved).
struct UniqueMembers(Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueMembers {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = UniqueMembers;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut access: A,
            ) -> Result<UniqueMembers, A::Error> {
                let mut map = Map::new();
                while let Some(key) = access.next_key::<String>()? {
                    let value: Value = access.next_value()?;
                    if map.contains_key(&key) {
                        return Err(serde::de::Error::custom(format!(
                            "member {} appears twice",
                            shown(&key)
                        )));
                    }
                    map.insert(key, value);
                }
                Ok(UniqueMembers(map))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

fn json_object(bytes: &[u8], what: &str) -> Result<Map<String, Value>, AuthzError> {
    serde_json::from_slice::<UniqueMembers>(bytes)
        .map(|m| m.0)
        .map_err(|e| AuthzError::Malformed(format!("{what} is not a JSON object: {e}")))
}

/// A header member the gateway reads: `None` when absent, its text when a string; any other JSON
/// type (null included) makes the token malformed.
fn header_string<'a>(
    header: &'a Map<String, Value>,
    member: &str,
) -> Result<Option<&'a str>, AuthzError> {
    match header.get(member) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(AuthzError::Malformed(format!(
            "header member {member} is {}, not a string",
            json_type(other)
        ))),
    }
}

/// How a message names the JSON type of a value.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// RFC 7515 §4.1.9: media types compare case-insensitively and `application/` may be omitted.
fn typ_matches(found: &str, expected: &str) -> bool {
    let bare = if found.len() > 12 && found[..12].eq_ignore_ascii_case("application/") {
        &found[12..]
    } else {
        found
    };
    bare.eq_ignore_ascii_case(expected)
}

/// A required, non-empty string claim of at most `max` bytes without control characters.
fn string_claim<'a>(
    claims: &'a Map<String, Value>,
    claim: &'static str,
    max: usize,
) -> Result<&'a str, AuthzError> {
    let invalid = |reason: String| AuthzError::InvalidClaim { claim, reason };
    match claims.get(claim) {
        None => Err(AuthzError::MissingClaim(claim)),
        Some(Value::String(s)) if s.is_empty() => Err(invalid("is empty".into())),
        Some(Value::String(s)) if s.len() > max => {
            Err(invalid(format!("is longer than {max} bytes")))
        }
        Some(Value::String(s)) if s.chars().any(char::is_control) => {
            Err(invalid("contains control characters".into()))
        }
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(invalid(format!("is {}, not a string", json_type(other)))),
    }
}

fn name_claim<'a>(
    claims: &'a Map<String, Value>,
    claim: &'static str,
) -> Result<&'a str, AuthzError> {
    string_claim(claims, claim, MAX_NAME_BYTES)
}

/// `aud`: a string, or an array of strings, naming the gateway.
fn check_audience(claims: &Map<String, Value>, gateway_id: &str) -> Result<(), AuthzError> {
    let invalid = |reason: &str| AuthzError::InvalidClaim {
        claim: "aud",
        reason: reason.into(),
    };
    match claims.get("aud") {
        None => Err(AuthzError::MissingClaim("aud")),
        Some(Value::String(a)) => {
            if a == gateway_id {
                Ok(())
            } else {
                Err(AuthzError::WrongAudience)
            }
        }
        Some(Value::Array(list)) => {
            if list.len() > MAX_AUDIENCES {
                return Err(invalid("names too many audiences"));
            }
            let mut found = false;
            for a in list {
                match a {
                    Value::String(s) => found |= s == gateway_id,
                    _ => return Err(invalid("holds a non-string")),
                }
            }
            if found {
                Ok(())
            } else {
                Err(AuthzError::WrongAudience)
            }
        }
        Some(other) => Err(invalid(&format!(
            "is {}, not a string or an array of strings",
            json_type(other)
        ))),
    }
}

/// A NumericDate claim (seconds since the epoch, fractions allowed), when present.
fn numeric_date(
    claims: &Map<String, Value>,
    claim: &'static str,
) -> Result<Option<Timestamp>, AuthzError> {
    let invalid = |reason: &str| AuthzError::InvalidClaim {
        claim,
        reason: reason.into(),
    };
    match claims.get(claim) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(secs) = n.as_i64() {
                if !(0..=MAX_NUMERIC_DATE_SECS as i64).contains(&secs) {
                    return Err(invalid("is out of range"));
                }
                return Ok(Some(Timestamp::from_secs(secs)));
            }
            match n.as_f64() {
                Some(secs) if secs.is_finite() && (0.0..=MAX_NUMERIC_DATE_SECS).contains(&secs) => {
                    // In range, so the product fits an i64 exactly enough for milliseconds.
                    Ok(Some(Timestamp::from_millis((secs * 1000.0).floor() as i64)))
                }
                _ => Err(invalid("is out of range")),
            }
        }
        Some(other) => Err(invalid(&format!(
            "is {}, not a number of seconds",
            json_type(other)
        ))),
    }
}

/// A token-supplied string made safe for a message: at most 64 characters, escaped.
fn shown(s: &str) -> String {
    let mut out: String = s.chars().take(64).flat_map(char::escape_debug).collect();
    if s.chars().nth(64).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::identity::IdentityRule;
    use josekit::jwk::KeyPair;
    use josekit::jws::JwsSigner;
    use proptest::prelude::*;
    use serde_json::json;
    use std::sync::OnceLock;

    const ISSUER: &str = "https://eservice.example.fi";
    const GATEWAY: &str = "siirto.example.fi";
    const SUBJECT: &str = "131052-308T";
    const NOW_SECS: i64 = 1_795_448_460;

    struct Fixture {
        es256: Box<dyn JwsSigner>,
        eddsa: Box<dyn JwsSigner>,
        rs256: Box<dyn JwsSigner>,
        ps256: Box<dyn JwsSigner>,
        /// A second EC key the JWKS does not hold, to sign under a known kid.
        stranger: Box<dyn JwsSigner>,
        jwks: String,
        ec_public_pem: Vec<u8>,
    }

    fn public_jwk(kp: &dyn KeyPair, kid: &str, alg: Option<&str>) -> Value {
        let mut map: Map<String, Value> = kp.to_jwk_public_key().into();
        map.remove("alg");
        map.insert("kid".into(), json!(kid));
        if let Some(a) = alg {
            map.insert("alg".into(), json!(a));
        }
        Value::Object(map)
    }

    fn fixture() -> &'static Fixture {
        static F: OnceLock<Fixture> = OnceLock::new();
        F.get_or_init(|| {
            let ec = ES256.generate_key_pair().unwrap();
            let ed = EdDSA.generate_key_pair(josekit::jwk::Ed25519).unwrap();
            let rsa = RS256.generate_key_pair(2048).unwrap();
            let stranger = ES256.generate_key_pair().unwrap();
            let rsa_pem = rsa.to_pem_private_key();
            let mut rsa_private: Map<String, Value> = rsa.to_jwk_private_key().into();
            rsa_private.remove("alg");
            let rsa_private_jwk = Jwk::from_map(rsa_private).unwrap();
            let jwks = json!({"keys": [
                public_jwk(&ec, "ec-1", None),
                public_jwk(&ed, "ed-1", Some("EdDSA")),
                public_jwk(&rsa, "rsa-1", None),
                public_jwk(&rsa, "rsa-pss-only", Some("PS256")),
            ]});
            Fixture {
                es256: Box::new(ES256.signer_from_pem(ec.to_pem_private_key()).unwrap()),
                eddsa: Box::new(EdDSA.signer_from_pem(ed.to_pem_private_key()).unwrap()),
                rs256: Box::new(RS256.signer_from_pem(&rsa_pem).unwrap()),
                ps256: Box::new(PS256.signer_from_jwk(&rsa_private_jwk).unwrap()),
                stranger: Box::new(
                    ES256
                        .signer_from_pem(stranger.to_pem_private_key())
                        .unwrap(),
                ),
                jwks: jwks.to_string(),
                ec_public_pem: ec.to_pem_public_key(),
            }
        })
    }

    fn keys() -> IssuerKeys {
        IssuerKeys::from_jwks(ISSUER, &fixture().jwks).unwrap()
    }

    /// The policy of the tests of the token rules: `[consent]` without the consent-text hash
    /// (the consent-text rules have tests of their own, with [`consent_policy`]).
    fn policy() -> Policy {
        Policy {
            gateway_id: GATEWAY.into(),
            max_lifetime: Duration::from_secs(900),
            skew: Duration::from_secs(60),
            consent: ConsentConfig {
                require_text_hash: false,
                ..ConsentConfig::default()
            },
        }
    }

    /// `[consent]` at its defaults: the consent-text hash required.
    fn consent_policy() -> Policy {
        Policy {
            consent: ConsentConfig::default(),
            ..policy()
        }
    }

    fn participant(id: &str, roles: &[Role]) -> Participant {
        Participant {
            id: id.into(),
            roles: roles.to_vec(),
            identity: IdentityRule::SanDns(format!("{id}.example.fi")),
            endpoint: None,
            name: Some(crate::lang::Localized {
                fi: format!("{id} (fi)"),
                sv: format!("{id} (sv)"),
                en: format!("{id} (en)"),
            }),
            statutory: None,
            redirect_uris: Vec::new(),
        }
    }

    fn directory() -> Directory {
        let mut vantaa = participant("vantaa", &[Role::Destination]);
        vantaa.statutory = Some(crate::consent::StatutoryRules {
            purposes: vec!["school-change".into()],
            scope: Scope::parse("identity enrolment achievements support").unwrap(),
            law: crate::lang::Localized {
                fi: "perusopetuslaki 40 §".into(),
                sv: "lagen om grundläggande utbildning 40 §".into(),
                en: "Basic Education Act, section 40".into(),
            },
        });
        Directory::from_participants(vec![
            participant("helsinki", &[Role::Source]),
            participant("turku", &[Role::Destination]),
            participant("espoo", &[Role::Eservice]),
            participant("ops", &[Role::Operator]),
            participant("oulu", &[Role::Source, Role::Destination]),
            vantaa,
        ])
    }

    fn catalog() -> Catalog {
        Catalog::new(crate::consent::tests::edition(), None)
    }

    fn now() -> Timestamp {
        Timestamp::from_secs(NOW_SECS)
    }

    fn claims() -> Value {
        json!({
            "iss": ISSUER, "aud": GATEWAY, "sub": SUBJECT,
            "iat": NOW_SECS - 10, "exp": NOW_SECS + 290, "jti": "jti-1",
            "src": "helsinki", "dst": "turku",
            "scope": "identity achievements", "purpose": "school-change",
        })
    }

    fn transparency_claims() -> Value {
        json!({
            "iss": ISSUER, "aud": GATEWAY, "sub": SUBJECT,
            "iat": NOW_SECS - 10, "exp": NOW_SECS + 290, "jti": "jti-t",
            "scope": "transparency",
        })
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Assembles a compact JWS with exactly this header, signed by the fixture key for `alg`.
    fn assemble(header: &Value, claims: &Value, signer: &dyn JwsSigner) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = signer.sign(input.as_bytes()).unwrap();
        format!("{input}.{}", b64(&sig))
    }

    fn signer_for(alg: &str) -> &'static dyn JwsSigner {
        let f = fixture();
        match alg {
            "ES256" => f.es256.as_ref(),
            "EdDSA" => f.eddsa.as_ref(),
            "RS256" => f.rs256.as_ref(),
            "PS256" => f.ps256.as_ref(),
            other => panic!("no signer for {other}"),
        }
    }

    fn kid_for(alg: &str) -> &'static str {
        match alg {
            "ES256" => "ec-1",
            "EdDSA" => "ed-1",
            _ => "rsa-1",
        }
    }

    fn header(alg: &str, typ: &str) -> Value {
        json!({"alg": alg, "kid": kid_for(alg), "typ": typ})
    }

    fn sign(alg: &str, claims: &Value) -> String {
        assemble(&header(alg, AUTHORIZATION_TYP), claims, signer_for(alg))
    }

    fn with(mut claims: Value, key: &str, value: Value) -> Value {
        claims[key] = value;
        claims
    }

    fn without(mut claims: Value, key: &str) -> Value {
        claims.as_object_mut().unwrap().remove(key);
        claims
    }

    fn with_header(alg: &str, key: &str, value: Value) -> Value {
        let mut h = header(alg, AUTHORIZATION_TYP);
        h[key] = value;
        h
    }

    fn verify_as(token: &str, caller: &str) -> Result<VerifiedAuthorization, AuthzError> {
        let dir = directory();
        let caller = dir.get(caller).unwrap().clone();
        verify_authorization(token, &keys(), &policy(), &dir, &catalog(), &caller, now())
    }

    fn verify(token: &str) -> Result<VerifiedAuthorization, AuthzError> {
        verify_as(token, "espoo")
    }

    fn hmac_hs256(secret: &[u8], header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
        let tag = ring::hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", b64(tag.as_ref()))
    }

    #[test]
    fn accepts_every_allowed_algorithm() {
        for alg in ["ES256", "EdDSA", "RS256", "PS256"] {
            let v = verify(&sign(alg, &claims())).unwrap_or_else(|e| panic!("{alg}: {e}"));
            assert_eq!(v.algorithm().as_str(), alg);
            assert_eq!(v.issuer(), ISSUER);
            assert_eq!(v.key_id(), kid_for(alg));
            assert_eq!(v.subject().as_str(), SUBJECT);
            assert_eq!(v.source(), "helsinki");
            assert_eq!(v.destination(), "turku");
            assert_eq!(v.scope().to_string(), "identity achievements");
            assert_eq!(v.purpose(), "school-change");
            assert_eq!(v.jti(), "jti-1");
            assert_eq!(v.issued_at(), Timestamp::from_secs(NOW_SECS - 10));
            assert_eq!(v.expires_at(), Timestamp::from_secs(NOW_SECS + 290));
            assert_eq!(v.remember_until(), Timestamp::from_secs(NOW_SECS + 350));
            assert_eq!(v.not_before(), None);
        }
        // The PSS-only key verifies PS256.
        let h = json!({"alg": "PS256", "kid": "rsa-pss-only", "typ": AUTHORIZATION_TYP});
        assert!(verify(&assemble(&h, &claims(), signer_for("PS256"))).is_ok());
    }

    #[test]
    fn accepted_variations() {
        let ok: Vec<(&str, String)> = vec![
            (
                "aud array",
                sign("ES256", &with(claims(), "aud", json!(["other", GATEWAY]))),
            ),
            (
                "typ with application/ prefix, other case",
                assemble(
                    &header("ES256", "application/Siirto-Authz+JWT"),
                    &claims(),
                    signer_for("ES256"),
                ),
            ),
            (
                "exp within skew",
                sign(
                    "ES256",
                    &with(
                        with(claims(), "exp", json!(NOW_SECS - 59)),
                        "iat",
                        json!(NOW_SECS - 300),
                    ),
                ),
            ),
            (
                "iat within skew",
                sign(
                    "ES256",
                    &with(
                        with(claims(), "iat", json!(NOW_SECS + 59)),
                        "exp",
                        json!(NOW_SECS + 300),
                    ),
                ),
            ),
            (
                "nbf in the past, fractional dates",
                sign(
                    "ES256",
                    &with(
                        with(claims(), "nbf", json!(NOW_SECS - 5)),
                        "iat",
                        json!(NOW_SECS as f64 - 9.5),
                    ),
                ),
            ),
            (
                "lifetime exactly the maximum",
                sign("ES256", &with(claims(), "exp", json!(NOW_SECS - 10 + 900))),
            ),
            (
                "learner number (of an adult: its birthdate says so)",
                sign(
                    "ES256",
                    &with(
                        with(claims(), "sub", json!("1.2.246.562.24.10000000008")),
                        "birthdate",
                        json!("2000-01-01"),
                    ),
                ),
            ),
            (
                "every category",
                sign(
                    "EdDSA",
                    &with(
                        claims(),
                        "scope",
                        json!("support identity enrolment achievements mobility registrations"),
                    ),
                ),
            ),
            (
                "unknown extra claims are ignored",
                sign("ES256", &with(claims(), "acr", json!("high"))),
            ),
        ];
        for (name, token) in ok {
            assert!(verify(&token).is_ok(), "{name}: {:?}", verify(&token));
        }
        // The destination itself may submit.
        assert!(verify_as(&sign("ES256", &claims()), "turku").is_ok());
    }

    #[test]
    fn every_rejection_has_its_code() {
        let f = fixture();
        let good = sign("ES256", &claims());
        let (good_input, good_sig) = good.rsplit_once('.').unwrap();
        let mut flipped = URL_SAFE_NO_PAD.decode(good_sig).unwrap();
        flipped[10] ^= 1;
        let other_payload = b64(with(claims(), "jti", json!("jti-2")).to_string().as_bytes());
        let none_header = json!({"alg": "none", "kid": "ec-1", "typ": AUTHORIZATION_TYP});
        let hs_header = json!({"alg": "HS256", "kid": "ec-1", "typ": AUTHORIZATION_TYP});
        let dup_payload =
            format!(r#"{{"iss":"{ISSUER}","iss":"https://other.example","aud":"{GATEWAY}"}}"#);
        let iat = NOW_SECS - 10;
        let cases: Vec<(&str, String, &str)> = vec![
            ("empty", String::new(), "malformed_token"),
            ("one segment", "abc".into(), "malformed_token"),
            ("two segments", "abc.def".into(), "malformed_token"),
            ("four segments", format!("{good}.x"), "malformed_token"),
            ("space", format!(" {good}"), "malformed_token"),
            (
                "padding",
                format!("{good_input}.{good_sig}="),
                "malformed_token",
            ),
            (
                "header not json",
                format!("{}.{}.AA", b64(b"nope"), b64(b"{}")),
                "malformed_token",
            ),
            (
                "header an array",
                format!("{}.{}.AA", b64(b"[1]"), b64(b"{}")),
                "malformed_token",
            ),
            (
                "duplicate claim",
                format!(
                    "{}.{}.AA",
                    b64(header("ES256", AUTHORIZATION_TYP).to_string().as_bytes()),
                    b64(dup_payload.as_bytes())
                ),
                "malformed_token",
            ),
            (
                "no alg",
                assemble(
                    &json!({"kid": "ec-1", "typ": AUTHORIZATION_TYP}),
                    &claims(),
                    f.es256.as_ref(),
                ),
                "unsupported_alg",
            ),
            (
                "too large",
                "a".repeat(MAX_TOKEN_BYTES + 1),
                "token_too_large",
            ),
            (
                "alg none",
                format!(
                    "{}.{}.",
                    b64(none_header.to_string().as_bytes()),
                    b64(claims().to_string().as_bytes())
                ),
                "unsupported_alg",
            ),
            (
                "HS256 keyed with the public key PEM",
                hmac_hs256(&f.ec_public_pem, &hs_header, &claims()),
                "unsupported_alg",
            ),
            (
                "HS256 keyed with the JWKS",
                hmac_hs256(f.jwks.as_bytes(), &hs_header, &claims()),
                "unsupported_alg",
            ),
            (
                "ES384",
                assemble(
                    &with_header("ES256", "alg", json!("ES384")),
                    &claims(),
                    f.es256.as_ref(),
                ),
                "unsupported_alg",
            ),
            (
                "alg lower case",
                assemble(
                    &with_header("ES256", "alg", json!("es256")),
                    &claims(),
                    f.es256.as_ref(),
                ),
                "unsupported_alg",
            ),
            (
                "ES256 with an RSA key",
                assemble(
                    &with_header("ES256", "kid", json!("rsa-1")),
                    &claims(),
                    f.es256.as_ref(),
                ),
                "unsupported_alg",
            ),
            (
                "RS256 with an Ed25519 key",
                assemble(
                    &with_header("RS256", "kid", json!("ed-1")),
                    &claims(),
                    f.rs256.as_ref(),
                ),
                "unsupported_alg",
            ),
            (
                "RS256 with a PS256-only key",
                assemble(
                    &with_header("RS256", "kid", json!("rsa-pss-only")),
                    &claims(),
                    f.rs256.as_ref(),
                ),
                "unsupported_alg",
            ),
            (
                "no kid",
                assemble(
                    &json!({"alg": "ES256", "typ": AUTHORIZATION_TYP}),
                    &claims(),
                    f.es256.as_ref(),
                ),
                "missing_kid",
            ),
            (
                "empty kid",
                assemble(
                    &with_header("ES256", "kid", json!("")),
                    &claims(),
                    f.es256.as_ref(),
                ),
                "missing_kid",
            ),
            (
                "typ JWT",
                assemble(&header("ES256", "JWT"), &claims(), f.es256.as_ref()),
                "wrong_typ",
            ),
            (
                "no typ",
                assemble(
                    &json!({"alg": "ES256", "kid": "ec-1"}),
                    &claims(),
                    f.es256.as_ref(),
                ),
                "wrong_typ",
            ),
            (
                "transparency typ",
                assemble(
                    &header("ES256", TRANSPARENCY_TYP),
                    &claims(),
                    f.es256.as_ref(),
                ),
                "wrong_typ",
            ),
            (
                "jku",
                assemble(
                    &with_header("ES256", "jku", json!("https://evil.example/jwks")),
                    &claims(),
                    f.es256.as_ref(),
                ),
                "forbidden_header",
            ),
            (
                "x5u",
                assemble(
                    &with_header("ES256", "x5u", json!("https://evil.example/c.pem")),
                    &claims(),
                    f.es256.as_ref(),
                ),
                "forbidden_header",
            ),
            (
                "jwk",
                assemble(
                    &with_header("ES256", "jwk", json!({"kty": "EC"})),
                    &claims(),
                    f.es256.as_ref(),
                ),
                "forbidden_header",
            ),
            (
                "x5c",
                assemble(
                    &with_header("ES256", "x5c", json!(["MIIB"])),
                    &claims(),
                    f.es256.as_ref(),
                ),
                "forbidden_header",
            ),
            (
                "crit",
                assemble(
                    &with_header("ES256", "crit", json!(["exp"])),
                    &claims(),
                    f.es256.as_ref(),
                ),
                "forbidden_header",
            ),
            (
                "unknown issuer",
                sign(
                    "ES256",
                    &with(claims(), "iss", json!("https://other.example")),
                ),
                "unknown_issuer",
            ),
            (
                "unknown kid",
                assemble(
                    &with_header("ES256", "kid", json!("ec-2")),
                    &claims(),
                    f.es256.as_ref(),
                ),
                "unknown_kid",
            ),
            (
                "flipped signature",
                format!("{good_input}.{}", b64(&flipped)),
                "bad_signature",
            ),
            (
                "swapped payload",
                format!(
                    "{}.{other_payload}.{good_sig}",
                    good_input.split('.').next().unwrap()
                ),
                "bad_signature",
            ),
            (
                "signed by a stranger",
                assemble(
                    &header("ES256", AUTHORIZATION_TYP),
                    &claims(),
                    f.stranger.as_ref(),
                ),
                "bad_signature",
            ),
            ("empty signature", format!("{good_input}."), "bad_signature"),
            (
                "missing iss",
                sign("ES256", &without(claims(), "iss")),
                "missing_claim",
            ),
            (
                "missing aud",
                sign("ES256", &without(claims(), "aud")),
                "missing_claim",
            ),
            (
                "missing iat",
                sign("ES256", &without(claims(), "iat")),
                "missing_claim",
            ),
            (
                "missing exp",
                sign("ES256", &without(claims(), "exp")),
                "missing_claim",
            ),
            (
                "missing jti",
                sign("ES256", &without(claims(), "jti")),
                "missing_claim",
            ),
            (
                "missing sub",
                sign("ES256", &without(claims(), "sub")),
                "missing_claim",
            ),
            (
                "missing src",
                sign("ES256", &without(claims(), "src")),
                "missing_claim",
            ),
            (
                "missing dst",
                sign("ES256", &without(claims(), "dst")),
                "missing_claim",
            ),
            (
                "missing scope",
                sign("ES256", &without(claims(), "scope")),
                "missing_claim",
            ),
            (
                "missing purpose",
                sign("ES256", &without(claims(), "purpose")),
                "missing_claim",
            ),
            (
                "iss a number",
                sign("ES256", &with(claims(), "iss", json!(7))),
                "invalid_claim",
            ),
            (
                "aud a number",
                sign("ES256", &with(claims(), "aud", json!(7))),
                "invalid_claim",
            ),
            (
                "aud array with a number",
                sign("ES256", &with(claims(), "aud", json!([GATEWAY, 7]))),
                "invalid_claim",
            ),
            (
                "iat a string",
                sign("ES256", &with(claims(), "iat", json!("1795448450"))),
                "invalid_claim",
            ),
            (
                "iat negative",
                sign("ES256", &with(claims(), "iat", json!(-1))),
                "invalid_claim",
            ),
            (
                "exp absurd",
                sign("ES256", &with(claims(), "exp", json!(1e300))),
                "invalid_claim",
            ),
            (
                "exp before iat",
                sign("ES256", &with(claims(), "exp", json!(iat - 1))),
                "invalid_claim",
            ),
            (
                "nbf a string",
                sign("ES256", &with(claims(), "nbf", json!("soon"))),
                "invalid_claim",
            ),
            (
                "jti empty",
                sign("ES256", &with(claims(), "jti", json!(""))),
                "invalid_claim",
            ),
            (
                "jti too long",
                sign(
                    "ES256",
                    &with(claims(), "jti", json!("j".repeat(MAX_JTI_BYTES + 1))),
                ),
                "invalid_claim",
            ),
            (
                "jti with a newline",
                sign("ES256", &with(claims(), "jti", json!("a\nb"))),
                "invalid_claim",
            ),
            (
                "sub a number",
                sign("ES256", &with(claims(), "sub", json!(131052))),
                "invalid_claim",
            ),
            (
                "src a list",
                sign("ES256", &with(claims(), "src", json!(["helsinki"]))),
                "invalid_claim",
            ),
            (
                "purpose upper case",
                sign("ES256", &with(claims(), "purpose", json!("School-Change"))),
                "invalid_claim",
            ),
            (
                "purpose too long",
                sign("ES256", &with(claims(), "purpose", json!("a".repeat(65)))),
                "invalid_claim",
            ),
            (
                "purpose with space",
                sign("ES256", &with(claims(), "purpose", json!("school change"))),
                "invalid_claim",
            ),
            (
                "wrong aud",
                sign("ES256", &with(claims(), "aud", json!("other.example.fi"))),
                "wrong_audience",
            ),
            (
                "aud array without us",
                sign("ES256", &with(claims(), "aud", json!(["a", "b"]))),
                "wrong_audience",
            ),
            (
                "aud empty array",
                sign("ES256", &with(claims(), "aud", json!([]))),
                "wrong_audience",
            ),
            (
                "expired beyond skew",
                sign(
                    "ES256",
                    &with(
                        with(claims(), "exp", json!(NOW_SECS - 60)),
                        "iat",
                        json!(NOW_SECS - 360),
                    ),
                ),
                "expired",
            ),
            (
                "issued in the future",
                sign(
                    "ES256",
                    &with(
                        with(claims(), "iat", json!(NOW_SECS + 61)),
                        "exp",
                        json!(NOW_SECS + 300),
                    ),
                ),
                "not_yet_valid",
            ),
            (
                "nbf in the future",
                sign("ES256", &with(claims(), "nbf", json!(NOW_SECS + 61))),
                "not_yet_valid",
            ),
            (
                "lifetime 901 s",
                sign("ES256", &with(claims(), "exp", json!(iat + 901))),
                "lifetime_too_long",
            ),
            (
                "bad check character",
                sign("ES256", &with(claims(), "sub", json!("131052-308U"))),
                "invalid_subject",
            ),
            (
                "not an id",
                sign("ES256", &with(claims(), "sub", json!("student-7"))),
                "invalid_subject",
            ),
            (
                "unknown src",
                sign("ES256", &with(claims(), "src", json!("nowhere"))),
                "unknown_participant",
            ),
            (
                "unknown dst",
                sign("ES256", &with(claims(), "dst", json!("nowhere"))),
                "unknown_participant",
            ),
            (
                "src not a source",
                sign("ES256", &with(claims(), "src", json!("turku"))),
                "invalid_source",
            ),
            (
                "dst not a destination",
                sign("ES256", &with(claims(), "dst", json!("helsinki"))),
                "invalid_destination",
            ),
            (
                "dst the same participant as src",
                sign(
                    "ES256",
                    &with(with(claims(), "src", json!("oulu")), "dst", json!("oulu")),
                ),
                "invalid_destination",
            ),
            (
                "unknown category",
                sign("ES256", &with(claims(), "scope", json!("identity grades"))),
                "invalid_scope",
            ),
            (
                "transparency scope",
                sign(
                    "ES256",
                    &with(claims(), "scope", json!("identity transparency")),
                ),
                "invalid_scope",
            ),
            (
                "duplicate category",
                sign(
                    "ES256",
                    &with(claims(), "scope", json!("identity identity")),
                ),
                "invalid_scope",
            ),
            (
                "blank scope",
                sign("ES256", &with(claims(), "scope", json!("  "))),
                "invalid_scope",
            ),
            (
                "no identity",
                sign("ES256", &with(claims(), "scope", json!("achievements"))),
                "missing_identity_scope",
            ),
        ];
        for (name, token, code) in &cases {
            let err = verify(token).expect_err(name);
            assert_eq!(err.code(), *code, "{name}: {err}");
            let message = err.message();
            assert!(
                !message.contains("131052"),
                "{name} leaks the subject: {message}"
            );
            assert!(!message.is_empty());
        }
        // The submitter rule needs another caller.
        let err = verify_as(&good, "helsinki").unwrap_err();
        assert_eq!(err.code(), "forbidden_submitter");
        let err = verify_as(&good, "ops").unwrap_err();
        assert_eq!(err.code(), "forbidden_submitter");

        // Every code of the contract is exercised above.
        let mut seen: Vec<&str> = cases.iter().map(|c| c.2).collect();
        seen.push("forbidden_submitter");
        for code in [
            "malformed_token",
            "token_too_large",
            "unsupported_alg",
            "missing_kid",
            "wrong_typ",
            "forbidden_header",
            "unknown_issuer",
            "unknown_kid",
            "bad_signature",
            "missing_claim",
            "invalid_claim",
            "wrong_audience",
            "expired",
            "not_yet_valid",
            "lifetime_too_long",
            "invalid_subject",
            "unknown_participant",
            "invalid_source",
            "invalid_destination",
            "invalid_scope",
            "missing_identity_scope",
            "forbidden_submitter",
        ] {
            assert!(seen.contains(&code), "no case for {code}");
        }
    }

    /// Every header member and claim, absent, `null`, a number and a string: a member present
    /// with the wrong JSON type is `malformed_token` (header) or `invalid_claim` (claims); an
    /// absent one has its own code; a wrong value of the right type, the code of its check.
    /// `None` is accepted.
    #[test]
    fn absent_null_and_wrongly_typed_members_follow_one_rule() {
        let f = fixture();
        let sign_header = |member: &str, value: Option<Value>| {
            let mut h = header("ES256", AUTHORIZATION_TYP);
            match value {
                Some(v) => h[member] = v,
                None => {
                    h.as_object_mut().unwrap().remove(member);
                }
            }
            assemble(&h, &claims(), f.es256.as_ref())
        };
        let sign_claims = |member: &str, value: Option<Value>| {
            let c = match value {
                Some(v) => with(claims(), member, v),
                None => without(claims(), member),
            };
            sign("ES256", &c)
        };
        // (member, [(value, expected code)] for absent, null, a number, a string)
        type Row = (&'static str, [(Option<Value>, Option<&'static str>); 4]);
        let string_member = |wrong: &'static str, code: &'static str, absent: &'static str| {
            [
                (None, Some(absent)),
                (Some(Value::Null), Some("malformed_token")),
                (Some(json!(7)), Some("malformed_token")),
                (Some(json!(wrong)), Some(code)),
            ]
        };
        let forbidden = [
            (None, None),
            (Some(Value::Null), Some("forbidden_header")),
            (Some(json!(7)), Some("forbidden_header")),
            (
                Some(json!("https://evil.example/")),
                Some("forbidden_header"),
            ),
        ];
        let header_rows: Vec<Row> = vec![
            (
                "alg",
                string_member("HS256", "unsupported_alg", "unsupported_alg"),
            ),
            (
                "kid",
                string_member("no-such-key", "unknown_kid", "missing_kid"),
            ),
            ("typ", string_member("JWT", "wrong_typ", "wrong_typ")),
            ("jku", forbidden.clone()),
            ("x5u", forbidden.clone()),
            ("jwk", forbidden.clone()),
            ("x5c", forbidden.clone()),
            ("crit", forbidden),
        ];
        let string_claim = |wrong: &'static str, code: &'static str| {
            [
                (None, Some("missing_claim")),
                (Some(Value::Null), Some("invalid_claim")),
                (Some(json!(7)), Some("invalid_claim")),
                (Some(json!(wrong)), Some(code)),
            ]
        };
        let date_claim = |absent: Option<&'static str>, wrong: i64, code: &'static str| {
            [
                (None, absent),
                (Some(Value::Null), Some("invalid_claim")),
                (Some(json!(wrong)), Some(code)),
                (Some(json!("soon")), Some("invalid_claim")),
            ]
        };
        let claim_rows: Vec<Row> = vec![
            (
                "iss",
                string_claim("https://other.example", "unknown_issuer"),
            ),
            ("aud", string_claim("other.example.fi", "wrong_audience")),
            ("sub", string_claim("student-7", "invalid_subject")),
            ("jti", string_claim("", "invalid_claim")),
            ("src", string_claim("nowhere", "unknown_participant")),
            ("dst", string_claim("helsinki", "invalid_destination")),
            ("scope", string_claim("identity grades", "invalid_scope")),
            ("purpose", string_claim("School Change", "invalid_claim")),
            (
                "iat",
                date_claim(Some("missing_claim"), NOW_SECS + 100, "not_yet_valid"),
            ),
            (
                "exp",
                date_claim(Some("missing_claim"), NOW_SECS + 3600, "lifetime_too_long"),
            ),
            ("nbf", date_claim(None, NOW_SECS + 600, "not_yet_valid")),
        ];
        let variants = ["absent", "null", "a number", "a string"];
        let mut checked = 0;
        for (rows, make) in [
            (
                header_rows,
                &sign_header as &dyn Fn(&str, Option<Value>) -> String,
            ),
            (
                claim_rows,
                &sign_claims as &dyn Fn(&str, Option<Value>) -> String,
            ),
        ] {
            for (member, cases) in rows {
                for ((value, expected), variant) in cases.into_iter().zip(variants) {
                    let got = verify(&make(member, value)).err();
                    assert_eq!(
                        got.as_ref().map(AuthzError::code),
                        expected,
                        "{member} {variant}: {got:?}"
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 19 * 4);
        // The message says which member and what was wrong with it.
        let e = verify(&sign_header("alg", Some(Value::Null))).unwrap_err();
        assert_eq!(
            e.message(),
            "token is not a JWS in compact serialization: header member alg is null, not a string"
        );
        let e = verify(&sign_header("alg", None)).unwrap_err();
        assert_eq!(
            e.message(),
            "header has no alg (allowed: ES256, EdDSA, PS256, RS256)"
        );
        let e = verify(&sign_claims("jti", Some(Value::Null))).unwrap_err();
        assert_eq!(e.message(), "claim jti is invalid: is null, not a string");
        let e = verify(&sign(
            "ES256",
            &with(with(claims(), "src", json!("oulu")), "dst", json!("oulu")),
        ))
        .unwrap_err();
        assert_eq!(
            e.message(),
            "dst oulu is also the src: a record is never sent back to where it came from"
        );
    }

    #[test]
    fn messages_name_the_claim() {
        let e = verify(&sign("ES256", &without(claims(), "purpose"))).unwrap_err();
        assert_eq!(e.message(), "claim purpose is missing");
        let e = verify(&sign("ES256", &with(claims(), "dst", json!("nowhere")))).unwrap_err();
        assert!(e.message().starts_with("dst nowhere"), "{e}");
        let e = verify(&sign("ES256", &with(claims(), "iat", json!("x")))).unwrap_err();
        assert!(e.message().contains("iat"), "{e}");
        let e = verify(&sign("ES256", &with(claims(), "sub", json!("131052-308U")))).unwrap_err();
        assert!(e.message().contains("check character"), "{e}");
        let long_kid = format!("{}\n", "k".repeat(100));
        let e = verify(&assemble(
            &with_header("ES256", "kid", json!(long_kid)),
            &claims(),
            fixture().es256.as_ref(),
        ))
        .unwrap_err();
        assert!(!e.message().contains('\n'), "token text is escaped: {e}");
    }

    #[test]
    fn transparency_tokens() {
        let f = fixture();
        let token = assemble(
            &header("EdDSA", TRANSPARENCY_TYP),
            &transparency_claims(),
            f.eddsa.as_ref(),
        );
        let v = verify_transparency(&token, &keys(), &policy(), now()).unwrap();
        assert_eq!(v.subject().as_str(), SUBJECT);
        assert_eq!(v.jti(), "jti-t");
        assert_eq!(v.issuer(), ISSUER);
        assert_eq!(v.key_id(), "ed-1");
        assert_eq!(v.remember_until(), Timestamp::from_secs(NOW_SECS + 350));

        // Neither kind of token passes for the other.
        assert_eq!(verify(&token).unwrap_err().code(), "wrong_typ");
        let authz = sign("EdDSA", &claims());
        assert_eq!(
            verify_transparency(&authz, &keys(), &policy(), now())
                .unwrap_err()
                .code(),
            "wrong_typ"
        );
        let cases = [
            (
                with(transparency_claims(), "src", json!("helsinki")),
                "invalid_claim",
            ),
            (
                with(transparency_claims(), "dst", json!("turku")),
                "invalid_claim",
            ),
            (
                with(
                    transparency_claims(),
                    "scope",
                    json!("transparency identity"),
                ),
                "invalid_scope",
            ),
            (
                with(transparency_claims(), "scope", json!("identity")),
                "invalid_scope",
            ),
            (without(transparency_claims(), "scope"), "missing_claim"),
            (
                with(transparency_claims(), "aud", json!("x")),
                "wrong_audience",
            ),
            (
                with(
                    with(transparency_claims(), "exp", json!(NOW_SECS - 61)),
                    "iat",
                    json!(NOW_SECS - 400),
                ),
                "expired",
            ),
            (
                with(transparency_claims(), "sub", json!("1.2.246.562.24.x")),
                "invalid_subject",
            ),
            (without(transparency_claims(), "jti"), "missing_claim"),
        ];
        for (c, code) in cases {
            let t = assemble(&header("EdDSA", TRANSPARENCY_TYP), &c, f.eddsa.as_ref());
            let e = verify_transparency(&t, &keys(), &policy(), now()).unwrap_err();
            assert_eq!(e.code(), code, "{c}: {e}");
        }
    }

    #[test]
    fn policy_from_gateway_config_is_used() {
        let mut p = policy();
        p.max_lifetime = Duration::from_secs(100);
        let dir = directory();
        let caller = dir.get("espoo").unwrap().clone();
        let texts = catalog();
        let e = verify_authorization(
            &sign("ES256", &claims()),
            &keys(),
            &p,
            &dir,
            &texts,
            &caller,
            now(),
        )
        .unwrap_err();
        assert_eq!(e.code(), "lifetime_too_long");
        p.max_lifetime = Duration::from_secs(900);
        p.skew = Duration::ZERO;
        let late = Timestamp::from_secs(NOW_SECS + 290);
        let e = verify_authorization(
            &sign("ES256", &claims()),
            &keys(),
            &p,
            &dir,
            &texts,
            &caller,
            late,
        )
        .unwrap_err();
        assert_eq!(e.code(), "expired");
    }

    // -----------------------------------------------------------------------------------------
    // The people behind an authorization: basis, guardians, the consent text

    /// A henkilötunnus born on `ddmmyy` with century sign `sign` (individual number `nnn`).
    fn hetu(ddmmyy: &str, sign: char, nnn: &str) -> String {
        crate::student_id::with_check_character(&format!("{ddmmyy}{sign}{nnn}"))
    }

    /// Verifies `claims` as espoo (an e-service) under `policy` and the test texts, with
    /// `previous` as the texts' previous edition.
    fn verify_people(
        claims: &Value,
        policy: &Policy,
        previous: Option<crate::consent::Edition>,
    ) -> Result<VerifiedAuthorization, AuthzError> {
        let dir = directory();
        let caller = dir.get("espoo").unwrap().clone();
        let texts = Catalog::new(crate::consent::tests::edition(), previous);
        verify_authorization(
            &sign("ES256", claims),
            &keys(),
            policy,
            &dir,
            &texts,
            &caller,
            now(),
        )
    }

    /// The hex SHA-256 of the test texts' consent text for `src` → `dst`, `scope`, `purpose`,
    /// `basis` in `lang` (from `edition`).
    fn text_hash(
        edition: crate::consent::Edition,
        src: &str,
        dst: &str,
        scope: &str,
        basis: Basis,
        lang: Lang,
    ) -> String {
        let dir = directory();
        let texts = Catalog::new(edition, None);
        let request = TextRequest {
            source: dir.get(src).unwrap(),
            destination: dir.get(dst).unwrap(),
            subject: Subject::Categories(Scope::parse(scope).unwrap()),
            purpose: "school-change",
            basis,
        };
        crate::clock::hex(&texts.text(&request, lang).unwrap().sha256)
    }

    /// `claims()` for `sub` with the consent text's hash in `lang` (helsinki → turku).
    fn consented(sub: &str, lang: Lang) -> Value {
        let hash = text_hash(
            crate::consent::tests::edition(),
            "helsinki",
            "turku",
            "identity achievements",
            Basis::Consent,
            lang,
        );
        let c = with(claims(), "sub", json!(sub));
        let c = with(c, "consent_sha256", json!(hash));
        with(c, "consent_lang", json!(lang.code()))
    }

    fn guardian(sub: &str) -> Value {
        json!({"sub": sub, "role": "guardian"})
    }

    /// A check's claims: a transfer's without `scope`, with `question`.
    fn check_claims(question: &str) -> Value {
        with(without(claims(), "scope"), "question", json!(question))
    }

    fn verify_check_with(claims: &Value, policy: &Policy) -> Result<VerifiedCheck, AuthzError> {
        let dir = directory();
        let caller = dir.get("espoo").unwrap().clone();
        let token = assemble(&header("ES256", CHECK_TYP), claims, signer_for("ES256"));
        verify_check(&token, &keys(), policy, &dir, &catalog(), &caller, now())
    }

    #[test]
    fn checks_name_a_question_never_a_scope() {
        let ok = verify_check_with(&check_claims("active_study_right"), &policy()).unwrap();
        assert_eq!(ok.question(), Question::ActiveStudyRight);
        assert_eq!((ok.source(), ok.destination()), ("helsinki", "turku"));
        let code = |c: &Value| verify_check_with(c, &policy()).unwrap_err().code();
        let scoped = with(
            check_claims("active_study_right"),
            "scope",
            json!("identity"),
        );
        assert_eq!(code(&scoped), "invalid_claim");
        assert_eq!(code(&check_claims("is_tall")), "unknown_question");
        assert_eq!(code(&claims()), "invalid_claim");
        assert_eq!(
            code(&without(check_claims("x"), "question")),
            "missing_claim"
        );
        assert_eq!(
            code(&with(check_claims("x"), "question", json!(1))),
            "invalid_claim"
        );
        // A check's token is no transfer's, and a transfer's no check's.
        let check_token = assemble(
            &header("ES256", CHECK_TYP),
            &check_claims("active_study_right"),
            signer_for("ES256"),
        );
        assert_eq!(verify(&check_token).unwrap_err().code(), "wrong_typ");
        let dir = directory();
        let caller = dir.get("espoo").unwrap().clone();
        let transfer_token = sign("ES256", &claims());
        let err = verify_check(
            &transfer_token,
            &keys(),
            &policy(),
            &dir,
            &catalog(),
            &caller,
            now(),
        );
        assert_eq!(err.unwrap_err().code(), "wrong_typ");
        // The same rules of people: a minor needs a guardian.
        let minor = hetu("010115", 'A', "123");
        let c = with(check_claims("active_study_right"), "sub", json!(minor));
        assert_eq!(code(&c), "guardian_required");
        let c = with(c, "act", guardian(SUBJECT));
        assert!(
            verify_check_with(&c, &policy())
                .unwrap()
                .guardian()
                .is_some()
        );
    }

    #[test]
    fn a_checks_consent_text_is_the_one_naming_its_question() {
        let dir = directory();
        let texts = catalog();
        let hash = |subject: Subject<'_>| {
            let request = TextRequest {
                source: dir.get("helsinki").unwrap(),
                destination: dir.get("turku").unwrap(),
                subject,
                purpose: "school-change",
                basis: Basis::Consent,
            };
            crate::clock::hex(&texts.text(&request, Lang::Sv).unwrap().sha256)
        };
        let signed = |h: String| {
            let c = with(
                check_claims("active_study_right"),
                "consent_sha256",
                json!(h),
            );
            with(c, "consent_lang", json!("sv"))
        };
        let ok = verify_check_with(
            &signed(hash(Subject::Question("active_study_right"))),
            &consent_policy(),
        )
        .unwrap();
        assert_eq!(ok.consent().unwrap().lang, Lang::Sv);
        for other in [
            Subject::Question("basic_education_completed"),
            Subject::Categories(Scope::parse("identity").unwrap()),
        ] {
            let err = verify_check_with(&signed(hash(other)), &consent_policy()).unwrap_err();
            assert_eq!(err.code(), "consent_text_mismatch");
        }
        let err =
            verify_check_with(&check_claims("active_study_right"), &consent_policy()).unwrap_err();
        assert_eq!(err.code(), "missing_claim");
    }

    #[test]
    fn minors_consent_through_a_guardian() {
        // iat is 2026-11-23 in Finland.
        let fourteen = hetu("010512", 'A', "901");
        let fifteen_today = hetu("231111", 'A', "902");
        let fifteen_tomorrow = hetu("241111", 'A', "903");
        let parent = hetu("010180", '-', "904");
        let p = consent_policy();
        let ok = |c: &Value| verify_people(c, &p, None);
        let code = |c: &Value| ok(c).map(|_| ()).unwrap_err().code();

        assert_eq!(code(&consented(&fourteen, Lang::Fi)), "guardian_required");
        assert_eq!(
            code(&consented(&fifteen_tomorrow, Lang::Fi)),
            "guardian_required"
        );
        let alone = ok(&consented(&fifteen_today, Lang::Fi)).unwrap();
        assert_eq!(alone.guardian(), None);
        assert_eq!(alone.basis(), Basis::Consent);
        let with_parent = ok(&with(
            consented(&fourteen, Lang::Fi),
            "act",
            guardian(&parent),
        ))
        .unwrap();
        assert_eq!(
            with_parent.guardian().map(StudentId::as_str),
            Some(parent.as_str())
        );
        // The age is the operator's: at 14 a pupil consents alone where the policy says 14.
        let mut younger = consent_policy();
        younger.consent.own_consent_age = 14;
        assert!(verify_people(&consented(&fourteen, Lang::Fi), &younger, None).is_ok());

        // Who may act as the guardian.
        let seventeen = hetu("010109", 'A', "905");
        let eighteen_today = hetu("231108", 'A', "906");
        let actor = |act: Value| code(&with(consented(&fourteen, Lang::Fi), "act", act));
        assert_eq!(actor(guardian(&seventeen)), "invalid_actor");
        assert!(
            ok(&with(
                consented(&fourteen, Lang::Fi),
                "act",
                guardian(&eighteen_today)
            ))
            .is_ok()
        );
        assert_eq!(actor(guardian(&fourteen)), "invalid_actor", "the student");
        assert_eq!(actor(guardian("010180-9041")), "invalid_actor", "checksum");
        assert_eq!(
            actor(guardian("1.2.246.562.24.10000000008")),
            "invalid_actor",
            "a learner number is not a henkilötunnus"
        );
        assert_eq!(
            actor(json!({"sub": parent, "role": "teacher"})),
            "invalid_actor"
        );
        assert_eq!(actor(json!({"sub": parent})), "invalid_claim");
        assert_eq!(
            actor(json!({"sub": 7, "role": "guardian"})),
            "invalid_claim"
        );
        assert_eq!(actor(json!(parent)), "invalid_claim");
        assert_eq!(actor(Value::Null), "invalid_claim");
        // An invalid actor is refused even for an adult, whose consent needs none.
        assert_eq!(
            code(&with(
                consented(&fifteen_today, Lang::Fi),
                "act",
                guardian(&seventeen)
            )),
            "invalid_actor"
        );
        // The refusals never repeat an identifier.
        let e = ok(&with(
            consented(&fourteen, Lang::Fi),
            "act",
            guardian(&seventeen),
        ))
        .unwrap_err();
        assert!(!e.to_string().contains(&seventeen) && !e.to_string().contains(&fourteen));
    }

    #[test]
    fn a_learner_number_is_a_minor_unless_its_birthdate_says_otherwise() {
        let oid = "1.2.246.562.24.10000000008";
        let p = consent_policy();
        let code = |c: &Value| verify_people(c, &p, None).map(|_| ()).unwrap_err().code();
        assert_eq!(code(&consented(oid, Lang::En)), "guardian_required");
        assert_eq!(
            code(&with(
                consented(oid, Lang::En),
                "birthdate",
                json!("2012-05-01")
            )),
            "guardian_required"
        );
        assert!(
            verify_people(
                &with(consented(oid, Lang::En), "birthdate", json!("2011-11-23")),
                &p,
                None
            )
            .is_ok()
        );
        assert!(
            verify_people(
                &with(
                    consented(oid, Lang::En),
                    "act",
                    guardian(&hetu("010180", '-', "904"))
                ),
                &p,
                None
            )
            .is_ok()
        );
        for bad in [json!("2011-02-30"), json!("23.11.2011"), json!(20111123)] {
            assert_eq!(
                code(&with(consented(oid, Lang::En), "birthdate", bad)),
                "invalid_claim"
            );
        }
        // With a henkilötunnus, birthdate may only repeat the date it encodes.
        let adult = with(
            consented(SUBJECT, Lang::En),
            "birthdate",
            json!("1952-10-13"),
        );
        assert!(verify_people(&adult, &p, None).is_ok());
        let contradicting = with(
            consented(SUBJECT, Lang::En),
            "birthdate",
            json!("2015-10-13"),
        );
        assert_eq!(code(&contradicting), "invalid_claim");
    }

    #[test]
    fn statutory_transfers_stay_within_the_destinations_rules() {
        let p = consent_policy();
        let statutory = |dst: &str, scope: &str, purpose: &str| {
            let c = with(claims(), "basis", json!("statutory"));
            let c = with(c, "dst", json!(dst));
            let c = with(c, "scope", json!(scope));
            with(c, "purpose", json!(purpose))
        };
        // No consent text and no guardian needed, even for a minor.
        let minor = hetu("010512", 'A', "901");
        let v = verify_people(
            &with(
                statutory("vantaa", "identity enrolment support", "school-change"),
                "sub",
                json!(minor),
            ),
            &p,
            None,
        )
        .unwrap();
        assert_eq!(v.basis(), Basis::Statutory);
        assert_eq!(v.consent(), None);
        assert_eq!(v.guardian(), None);
        let code = |c: &Value| verify_people(c, &p, None).map(|_| ()).unwrap_err().code();
        for (c, why) in [
            (
                statutory("vantaa", "identity mobility", "school-change"),
                "a category outside statutory_scopes",
            ),
            (
                statutory("vantaa", "identity", "study-admission"),
                "a purpose outside statutory_purposes",
            ),
            (
                statutory("turku", "identity", "school-change"),
                "a destination without statutory rules",
            ),
        ] {
            assert_eq!(code(&c), "statutory_not_allowed", "{why}");
        }
        assert_eq!(
            code(&with(claims(), "basis", json!("law"))),
            "invalid_claim"
        );
        assert_eq!(code(&with(claims(), "basis", json!(true))), "invalid_claim");
        // A statutory transfer's own text may still be named, and must then match.
        let hash = text_hash(
            crate::consent::tests::edition(),
            "helsinki",
            "vantaa",
            "identity",
            Basis::Statutory,
            Lang::Sv,
        );
        let c = statutory("vantaa", "identity", "school-change");
        let c = with(
            with(c, "consent_sha256", json!(hash)),
            "consent_lang",
            json!("sv"),
        );
        assert_eq!(
            verify_people(&c, &p, None)
                .unwrap()
                .consent()
                .map(|c| c.lang),
            Some(Lang::Sv)
        );
        assert_eq!(
            code(&with(c, "consent_lang", json!("fi"))),
            "consent_text_mismatch"
        );
    }

    #[test]
    fn the_consent_text_hash_names_the_exact_text() {
        let p = consent_policy();
        let code = |c: &Value, previous| {
            verify_people(c, &p, previous)
                .map(|_| ())
                .unwrap_err()
                .code()
        };
        let v = verify_people(&consented(SUBJECT, Lang::Sv), &p, None).unwrap();
        let proof = v.consent().unwrap();
        assert_eq!(proof.lang, Lang::Sv);
        assert_eq!(proof.version, crate::consent::tests::edition().version());

        assert_eq!(code(&claims(), None), "missing_claim");
        let e = verify_people(&claims(), &p, None).unwrap_err();
        assert_eq!(e, AuthzError::MissingClaim("consent_sha256"));
        assert_eq!(
            verify_people(
                &without(consented(SUBJECT, Lang::Fi), "consent_lang"),
                &p,
                None
            )
            .unwrap_err(),
            AuthzError::MissingClaim("consent_lang")
        );
        assert_eq!(
            verify_people(
                &without(consented(SUBJECT, Lang::Fi), "consent_sha256"),
                &p,
                None
            )
            .unwrap_err(),
            AuthzError::MissingClaim("consent_sha256")
        );
        // The text of another language, scope, destination or purpose is another text.
        let other = |scope: &str, dst: &str, lang: Lang| {
            text_hash(
                crate::consent::tests::edition(),
                "helsinki",
                dst,
                scope,
                Basis::Consent,
                lang,
            )
        };
        let signed_as = |hash: String, lang: &str| {
            with(
                with(consented(SUBJECT, Lang::Fi), "consent_sha256", json!(hash)),
                "consent_lang",
                json!(lang),
            )
        };
        for (c, why) in [
            (
                signed_as(other("identity achievements", "turku", Lang::En), "fi"),
                "another language",
            ),
            (
                signed_as(other("identity", "turku", Lang::Fi), "fi"),
                "another scope",
            ),
            (
                signed_as(other("identity achievements", "oulu", Lang::Fi), "fi"),
                "another destination",
            ),
            (
                with(
                    consented(SUBJECT, Lang::Fi),
                    "purpose",
                    json!("study-admission"),
                ),
                "another purpose",
            ),
            (signed_as("00".repeat(32), "fi"), "no text at all"),
        ] {
            assert_eq!(code(&c, None), "consent_text_mismatch", "{why}");
        }
        for (bad, claim) in [
            (json!("AB".repeat(32)), "consent_sha256"),
            (json!("ab"), "consent_sha256"),
            (json!(12), "consent_sha256"),
        ] {
            assert_eq!(
                code(&with(consented(SUBJECT, Lang::Fi), claim, bad), None),
                "invalid_claim"
            );
        }
        assert_eq!(
            code(
                &with(consented(SUBJECT, Lang::Fi), "consent_lang", json!("de")),
                None
            ),
            "invalid_claim"
        );

        // After the texts change, the text shown before is accepted as the previous version,
        // and a text of an older edition no longer is.
        let mut fi = crate::consent::tests::templates("fi");
        fi.keeping.push_str(" (revised)");
        let revised = crate::consent::Edition::new(
            fi,
            crate::consent::tests::templates("sv"),
            crate::consent::tests::templates("en"),
        );
        let dir = directory();
        let caller = dir.get("espoo").unwrap().clone();
        let texts = Catalog::new(revised.clone(), Some(crate::consent::tests::edition()));
        let shown_before = consented(SUBJECT, Lang::Fi);
        let v = verify_authorization(
            &sign("ES256", &shown_before),
            &keys(),
            &p,
            &dir,
            &texts,
            &caller,
            now(),
        )
        .unwrap();
        assert_eq!(
            v.consent().unwrap().version,
            crate::consent::tests::edition().version()
        );
        let newest = Catalog::new(revised, None);
        let e = verify_authorization(
            &sign("ES256", &shown_before),
            &keys(),
            &p,
            &dir,
            &newest,
            &caller,
            now(),
        )
        .unwrap_err();
        assert_eq!(e.code(), "consent_text_mismatch");

        // require_text_hash = false: consent without a named text.
        assert!(
            verify_people(&claims(), &policy(), None)
                .unwrap()
                .consent()
                .is_none()
        );
    }

    fn load_err(jwks: Value) -> KeyLoadError {
        IssuerKeys::from_jwks(ISSUER, &jwks.to_string()).unwrap_err()
    }

    #[test]
    fn key_loading_refuses_contradictions() {
        let ec = ES256.generate_key_pair().unwrap();
        let ed = EdDSA.generate_key_pair(josekit::jwk::Ed25519).unwrap();
        let ec_jwk = public_jwk(&ec, "k1", None);
        let with_member = |mut v: Value, k: &str, x: Value| {
            v[k] = x;
            v
        };
        let cases: Vec<(Value, &str)> = vec![
            (
                json!({"keys": [with_member(ec_jwk.clone(), "alg", json!("RS256"))]}),
                "contradicts",
            ),
            (
                json!({"keys": [with_member(public_jwk(&ed, "k1", None), "alg", json!("ES256"))]}),
                "contradicts",
            ),
            (
                json!({"keys": [with_member(ec_jwk.clone(), "alg", json!("HS256"))]}),
                "contradicts",
            ),
            (
                json!({"keys": [with_member(ec_jwk.clone(), "use", json!("enc"))]}),
                "contradicts",
            ),
            (
                json!({"keys": [with_member(ec_jwk.clone(), "key_ops", json!(["encrypt"]))]}),
                "contradicts",
            ),
            (
                json!({"keys": [with_member(ec_jwk.clone(), "d", json!("AAAA"))]}),
                "private key material",
            ),
            (
                json!({"keys": [with_member(ec_jwk.clone(), "crv", json!("P-384"))]}),
                "not supported",
            ),
            (
                json!({"keys": [{"kty": "oct", "kid": "k1", "k": "c2VjcmV0"}]}),
                "private key material",
            ),
            (
                json!({"keys": [{"kty": "oct", "kid": "k1"}]}),
                "not supported",
            ),
            (
                json!({"keys": [{"kty": "EC", "kid": "k1", "crv": "P-256", "x": "AA", "y": "AA"}]}),
                "not a valid public key",
            ),
            (
                json!({"keys": [without(ec_jwk.clone(), "kid")]}),
                "no `kid`",
            ),
            (
                json!({"keys": [ec_jwk.clone(), ec_jwk.clone()]}),
                "more than once",
            ),
            (json!({"keys": []}), "no keys"),
            (json!({"nokeys": []}), "not a JWKS"),
        ];
        for (jwks, expected) in cases {
            let e = load_err(jwks.clone());
            let text = e.to_string();
            assert!(text.contains(expected), "{jwks}: {text}");
            assert!(text.contains(ISSUER), "names the origin: {text}");
            if !matches!(
                e,
                KeyLoadError::MissingKid { .. }
                    | KeyLoadError::NoKeys { .. }
                    | KeyLoadError::NotJwks { .. }
            ) {
                assert!(text.contains("\"k1\""), "names the kid: {text}");
            }
        }
        // Consistent use/alg/key_ops load fine.
        let ok = json!({"keys": [with_member(with_member(with_member(ec_jwk, "use", json!("sig")), "alg", json!("ES256")), "key_ops", json!(["verify"]))]});
        assert_eq!(
            IssuerKeys::from_jwks(ISSUER, &ok.to_string())
                .unwrap()
                .key_count(ISSUER),
            1
        );
    }

    #[test]
    fn load_reads_files_and_names_them() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("issuer.jwks.json");
        std::fs::write(&good, &fixture().jwks).unwrap();
        let bad = dir.path().join("bad.jwks.json");
        let ec = ES256.generate_key_pair().unwrap();
        std::fs::write(
            &bad,
            json!({"keys": [public_jwk(&ec, "bad-kid", Some("PS256"))]}).to_string(),
        )
        .unwrap();
        let issuers = vec![
            IssuerConfig {
                id: ISSUER.into(),
                jwks: good.clone(),
            },
            IssuerConfig {
                id: "https://other.example".into(),
                jwks: good.clone(),
            },
        ];
        let keys = IssuerKeys::load(&issuers).unwrap();
        assert_eq!(keys.key_count(ISSUER), 4);
        assert_eq!(keys.issuers().count(), 2);
        assert!(format!("{keys:?}").contains("ec-1"));

        let e = IssuerKeys::load(&[IssuerConfig {
            id: ISSUER.into(),
            jwks: bad.clone(),
        }])
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("bad.jwks.json") && text.contains("bad-kid"),
            "{text}"
        );
        let missing = dir.path().join("missing.json");
        let e = IssuerKeys::load(&[IssuerConfig {
            id: ISSUER.into(),
            jwks: missing,
        }])
        .unwrap_err();
        assert!(e.to_string().contains("missing.json"), "{e}");
        let e = IssuerKeys::load(&[
            IssuerConfig {
                id: ISSUER.into(),
                jwks: good.clone(),
            },
            IssuerConfig {
                id: ISSUER.into(),
                jwks: good,
            },
        ])
        .unwrap_err();
        assert!(matches!(e, KeyLoadError::DuplicateIssuer { .. }), "{e}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_text_is_refused(s in ".{0,400}") {
            prop_assert!(verify(&s).is_err());
        }

        #[test]
        fn any_changed_character_is_refused(pos in 0usize..10_000, replacement in "[A-Za-z0-9_.-]") {
            let token = sign("ES256", &claims());
            let pos = pos % token.len();
            let mut bytes = token.clone().into_bytes();
            let r = replacement.as_bytes()[0];
            prop_assume!(bytes[pos] != r);
            bytes[pos] = r;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(verify(&changed).is_err());
        }
    }
}

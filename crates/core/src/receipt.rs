//! The signed transfer receipt: after delivery the gateway signs what it delivered, to whom,
//! on whose authorization, and where the fact sits in the audit log.
//!
//! A receipt is a JWS in compact serialization, signed with the audit key (Ed25519):
//! - header `{"alg":"EdDSA","kid":<RFC 7638 thumbprint of the audit public key>,"typ":"siirto-receipt+jwt"}`
//!   (the published JWKS, [`crate::audit::AuditPublicKey::to_jwks`], carries the same `kid`);
//! - claims `iss` (gateway id), `transfer_id`, `sub` (the student), `src` and `dst` (each
//!   `{"id", "name": {"fi", "sv", "en"}}`), `purpose`, `scope` (the categories delivered,
//!   space-separated) and `categories` (the same as an array), `sensitive` (true when `support`
//!   was delivered), `document_sha256` (lower-case hex of the delivered document), `iat` and
//!   `delivered_at` (seconds), `audit_leaf_index` (the seq of the audit entry recording the
//!   delivery, provable with an RFC 9162 inclusion proof against a checkpoint), and the
//!   consent-receipt claims: `jurisdiction` (`"FI"`), `basis` (`consent` or `statutory`),
//!   `statutory_law` (`{"fi", "sv", "en"}`, only when statutory), `consented_at` (the
//!   authorization's `iat`), `authorization_jti`, `consent_sha256`, `consent_version`,
//!   `consent_lang` (`null` when the authorization named no consent text) and `guardian` (true
//!   when a guardian consented for the student).
//!
//! Receipts signed before the consent-receipt claims existed (with `src` and `dst` as plain
//! ids) still verify: what they lack reads as a consent without a named text or guardian.
//!
//! Owns: signing and verifying receipts, and their sealed form at rest ([`seal_receipt`],
//! [`open_receipt`]: the receipt carries `sub` in its payload, so it is stored encrypted like the
//! payload, bound to its transfer). Must not: do IO, read the clock (`iat` is given), or put the
//! student identifier into an error message. The receipt itself carries `sub`: it is the
//! student's proof and is shown only to parties of the transfer.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use crate::audit::{AuditPublicKey, AuditSigningKey};
use crate::clock::{Random, Timestamp, hex, unhex};
use crate::consent::Basis;
use crate::lang::{Lang, Localized};
use crate::scope::{Category, Scope};
use crate::student_id::StudentId;
use crate::vault::{Sealed, Vault, VaultError};

/// `typ` of a receipt.
pub const RECEIPT_TYP: &str = "siirto-receipt+jwt";
/// Largest receipt accepted by [`verify_receipt`].
pub const MAX_RECEIPT_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("receipt is larger than {MAX_RECEIPT_BYTES} bytes")]
    TooLarge,
    #[error("receipt is not a JWS in compact serialization: {0}")]
    Malformed(String),
    #[error("receipt header is not accepted: {0}")]
    WrongHeader(String),
    #[error("receipt was signed by another key (kid differs from the audit key's thumbprint)")]
    WrongKey,
    #[error("receipt signature does not verify")]
    BadSignature,
    #[error("receipt claim {0} is missing")]
    MissingClaim(&'static str),
    #[error("receipt claim {claim} is invalid: {reason}")]
    InvalidClaim { claim: &'static str, reason: String },
    #[error("stored receipt cannot be opened: {0}")]
    Sealed(VaultError),
}

/// The receipt's `jurisdiction`: the law the transfer happened under.
pub const JURISDICTION: &str = "FI";

/// A participant as a receipt names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    pub id: String,
    /// Its name from the directory; `None` in a receipt signed before names existed.
    pub name: Option<Localized>,
}

/// The consent text an authorization proved was shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRecord {
    pub sha256: [u8; 32],
    pub version: String,
    pub lang: Lang,
}

/// What a receipt states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptClaims {
    /// `iss`: the gateway id.
    pub issuer: String,
    pub transfer_id: String,
    /// `sub`: the student. Personal data: never log it.
    pub subject: StudentId,
    /// `src`
    pub source: Party,
    /// `dst`
    pub destination: Party,
    pub purpose: String,
    /// The categories delivered.
    pub scope: Scope,
    /// SHA-256 of the document as delivered.
    pub document_sha256: [u8; 32],
    /// `iat` (and `delivered_at`); receipts carry whole seconds, so this is rounded down when
    /// signed.
    pub issued_at: Timestamp,
    /// The seq of the audit entry recording the delivery.
    pub audit_leaf_index: u64,
    pub basis: Basis,
    /// The law of a statutory transfer.
    pub statutory_law: Option<Localized>,
    /// `consented_at`: the authorization's `iat` (whole seconds); `None` in an older receipt.
    pub consented_at: Option<Timestamp>,
    /// `authorization_jti`; `None` in an older receipt.
    pub authorization_jti: Option<String>,
    pub consent: Option<ConsentRecord>,
    /// Whether a guardian consented for the student.
    pub guardian: bool,
    /// `consent_given_at`: where the person gave the consent when it was given at a register
    /// itself (`"koski"`: KOSKI OmaData); `None` when the e-service vouches for it.
    pub consent_given_at: Option<String>,
}

/// A receipt whose signature and claims have been checked; only [`verify_receipt`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    claims: ReceiptClaims,
    key_id: String,
}

impl Receipt {
    pub fn claims(&self) -> &ReceiptClaims {
        &self.claims
    }

    /// The `kid` it was signed under.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
}

/// Signs a receipt with the audit key.
pub fn sign_receipt(claims: &ReceiptClaims, key: &AuditSigningKey) -> String {
    let party = |p: &Party| {
        json!({
            "id": p.id,
            "name": p.name.as_ref().map(Localized::to_json),
        })
    };
    let consent = claims.consent.as_ref();
    let mut payload = json!({
        "iss": claims.issuer,
        "transfer_id": claims.transfer_id,
        "sub": claims.subject.as_str(),
        "jurisdiction": JURISDICTION,
        "basis": claims.basis.as_str(),
        "src": party(&claims.source),
        "dst": party(&claims.destination),
        "purpose": claims.purpose,
        "scope": claims.scope.to_string(),
        "categories": claims.scope.iter().map(Category::as_str).collect::<Vec<_>>(),
        "sensitive": claims.scope.contains(Category::Support),
        "document_sha256": hex(&claims.document_sha256),
        "iat": claims.issued_at.secs(),
        "delivered_at": claims.issued_at.secs(),
        "consented_at": claims.consented_at.map(Timestamp::secs),
        "authorization_jti": claims.authorization_jti,
        "consent_sha256": consent.map(|c| hex(&c.sha256)),
        "consent_version": consent.map(|c| c.version.as_str()),
        "consent_lang": consent.map(|c| c.lang.code()),
        "guardian": claims.guardian,
        "audit_leaf_index": claims.audit_leaf_index,
    });
    if let (Some(law), Some(map)) = (&claims.statutory_law, payload.as_object_mut()) {
        map.insert("statutory_law".into(), law.to_json());
    }
    if let (Some(at), Some(map)) = (&claims.consent_given_at, payload.as_object_mut()) {
        map.insert("consent_given_at".into(), json!(at));
    }
    sign_compact(RECEIPT_TYP, &payload, key)
}

/// A compact EdDSA JWS of `payload` with the audit key: header `alg` EdDSA, `kid` the key's
/// RFC 7638 thumbprint, `typ`. Receipts and attestations are signed here.
pub(crate) fn sign_compact(typ: &str, payload: &Value, key: &AuditSigningKey) -> String {
    let header = json!({
        "alg": "EdDSA",
        "kid": key.public_key().thumbprint(),
        "typ": typ,
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// Why a compact JWS signed with an audit key does not verify ([`verify_compact`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JwsFault {
    TooLarge,
    Malformed(String),
    WrongHeader(String),
    WrongKey,
    BadSignature,
}

impl From<JwsFault> for ReceiptError {
    fn from(f: JwsFault) -> Self {
        match f {
            JwsFault::TooLarge => ReceiptError::TooLarge,
            JwsFault::Malformed(m) => ReceiptError::Malformed(m),
            JwsFault::WrongHeader(m) => ReceiptError::WrongHeader(m),
            JwsFault::WrongKey => ReceiptError::WrongKey,
            JwsFault::BadSignature => ReceiptError::BadSignature,
        }
    }
}

/// Checks a compact JWS of `typ` (at most `max_bytes`) against whichever of `keys` its `kid`
/// names (EdDSA only, no `crit`); returns its claims and the `kid`.
pub(crate) fn verify_compact(
    token: &str,
    keys: &[AuditPublicKey],
    typ: &str,
    max_bytes: usize,
) -> Result<(Map<String, Value>, String), JwsFault> {
    if token.len() > max_bytes {
        return Err(JwsFault::TooLarge);
    }
    let malformed = |why: &str| JwsFault::Malformed(why.into());
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("expected three segments"));
    };
    let decode = |seg: &str, what: &str| {
        URL_SAFE_NO_PAD
            .decode(seg)
            .map_err(|_| JwsFault::Malformed(format!("{what} is not canonical base64url")))
    };
    let header: Map<String, Value> = serde_json::from_slice(&decode(h, "header")?)
        .map_err(|_| malformed("header is not a JSON object"))?;
    let signature = decode(s, "signature")?;
    if header.get("alg").and_then(Value::as_str) != Some("EdDSA") {
        return Err(JwsFault::WrongHeader("alg must be EdDSA".into()));
    }
    if header.get("typ").and_then(Value::as_str) != Some(typ) {
        return Err(JwsFault::WrongHeader(format!("typ must be {typ}")));
    }
    if header.contains_key("crit") {
        return Err(JwsFault::WrongHeader("crit is not accepted".into()));
    }
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or_else(|| JwsFault::WrongHeader("kid is missing".into()))?;
    let key = keys
        .iter()
        .find(|k| k.thumbprint() == kid)
        .ok_or(JwsFault::WrongKey)?;
    let signing_input = &token[..h.len() + 1 + p.len()];
    if !key.verify(signing_input.as_bytes(), &signature) {
        return Err(JwsFault::BadSignature);
    }
    let claims: Map<String, Value> = serde_json::from_slice(&decode(p, "payload")?)
        .map_err(|_| malformed("payload is not a JSON object"))?;
    Ok((claims, kid.to_owned()))
}

/// The associated data a stored receipt is sealed under: it binds the receipt to its transfer.
fn sealed_for(transfer_id: &str) -> String {
    format!("receipt:{transfer_id}")
}

/// Seals a signed receipt for storage (with the vault's current key, whose id it carries).
pub fn seal_receipt(vault: &Vault, transfer_id: &str, token: &str, random: &dyn Random) -> Sealed {
    vault.seal(&sealed_for(transfer_id), token.as_bytes(), random)
}

/// Opens a receipt that [`seal_receipt`] sealed for `transfer_id`.
pub fn open_receipt(
    vault: &Vault,
    transfer_id: &str,
    sealed: &[u8],
) -> Result<String, ReceiptError> {
    let plain = vault
        .open(&sealed_for(transfer_id), sealed)
        .map_err(ReceiptError::Sealed)?;
    String::from_utf8(plain).map_err(|_| ReceiptError::Sealed(VaultError::Malformed))
}

/// Verifies a receipt against the audit public key.
pub fn verify_receipt(token: &str, key: &AuditPublicKey) -> Result<Receipt, ReceiptError> {
    verify_receipt_with(token, std::slice::from_ref(key))
}

/// Verifies a receipt against whichever of `keys` its `kid` names: the current audit key and
/// the earlier ones (a receipt outlives a key rotation).
pub fn verify_receipt_with(token: &str, keys: &[AuditPublicKey]) -> Result<Receipt, ReceiptError> {
    let (claims, kid) = verify_compact(token, keys, RECEIPT_TYP, MAX_RECEIPT_BYTES)?;
    let text = |claim: &'static str| -> Result<String, ReceiptError> {
        match claims.get(claim) {
            None => Err(ReceiptError::MissingClaim(claim)),
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(_) => Err(ReceiptError::InvalidClaim {
                claim,
                reason: "is not a non-empty string".into(),
            }),
        }
    };
    let number = |claim: &'static str| -> Result<u64, ReceiptError> {
        match claims.get(claim) {
            None => Err(ReceiptError::MissingClaim(claim)),
            Some(v) => v.as_u64().ok_or(ReceiptError::InvalidClaim {
                claim,
                reason: "is not a non-negative integer".into(),
            }),
        }
    };
    let invalid =
        |claim: &'static str, reason: String| ReceiptError::InvalidClaim { claim, reason };
    let subject = StudentId::parse(&text("sub")?).map_err(|e| invalid("sub", e.to_string()))?;
    let scope = Scope::parse(&text("scope")?).map_err(|e| invalid("scope", e.to_string()))?;
    let digest_hex = text("document_sha256")?;
    let document_sha256: [u8; 32] = unhex(&digest_hex)
        .filter(|_| digest_hex.bytes().all(|b| !b.is_ascii_uppercase()))
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| invalid("document_sha256", "is not 64 lower-case hex digits".into()))?;
    let iat = number("iat")?;
    let issued_at = i64::try_from(iat)
        .ok()
        .filter(|s| *s <= 253_402_300_799)
        .map(Timestamp::from_secs)
        .ok_or_else(|| invalid("iat", "is out of range".into()))?;
    let seconds = |claim: &'static str| -> Result<Option<Timestamp>, ReceiptError> {
        match claims.get(claim) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .filter(|s| (0..=253_402_300_799).contains(s))
                .map(|s| Some(Timestamp::from_secs(s)))
                .ok_or_else(|| invalid(claim, "is not a time in seconds".into())),
        }
    };
    let optional_text = |claim: &'static str| -> Result<Option<String>, ReceiptError> {
        match claims.get(claim) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(_) => Err(invalid(claim, "is not a non-empty string".into())),
        }
    };
    let localized = |value: &Value, claim: &'static str| -> Result<Localized, ReceiptError> {
        let part = |lang: &str| {
            value
                .get(lang)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| invalid(claim, format!("has no {lang} text")))
        };
        Ok(Localized {
            fi: part("fi")?,
            sv: part("sv")?,
            en: part("en")?,
        })
    };
    let party = |claim: &'static str| -> Result<Party, ReceiptError> {
        match claims.get(claim) {
            None => Err(ReceiptError::MissingClaim(claim)),
            // A receipt signed before names existed.
            Some(Value::String(id)) if !id.is_empty() => Ok(Party {
                id: id.clone(),
                name: None,
            }),
            Some(Value::Object(p)) => Ok(Party {
                id: p
                    .get("id")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .ok_or_else(|| invalid(claim, "has no id".into()))?,
                name: match p.get("name") {
                    None | Some(Value::Null) => None,
                    Some(name) => Some(localized(name, claim)?),
                },
            }),
            Some(_) => Err(invalid(claim, "is not a participant".into())),
        }
    };
    let basis = match optional_text("basis")? {
        None => Basis::Consent,
        Some(b) => Basis::parse(&b).ok_or_else(|| invalid("basis", "is not a basis".into()))?,
    };
    let statutory_law = match claims.get("statutory_law") {
        None | Some(Value::Null) => None,
        Some(law) => Some(localized(law, "statutory_law")?),
    };
    let consent = match optional_text("consent_sha256")? {
        None => None,
        Some(h) => Some(ConsentRecord {
            sha256: unhex(&h)
                .and_then(|v| <[u8; 32]>::try_from(v).ok())
                .ok_or_else(|| invalid("consent_sha256", "is not 64 hex digits".into()))?,
            version: optional_text("consent_version")?
                .ok_or(ReceiptError::MissingClaim("consent_version"))?,
            lang: optional_text("consent_lang")?
                .and_then(|l| Lang::parse(&l))
                .ok_or_else(|| invalid("consent_lang", "is not fi, sv or en".into()))?,
        }),
    };
    let guardian = match claims.get("guardian") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("guardian", "is not a boolean".into())),
    };
    Ok(Receipt {
        claims: ReceiptClaims {
            issuer: text("iss")?,
            transfer_id: text("transfer_id")?,
            subject,
            source: party("src")?,
            destination: party("dst")?,
            purpose: text("purpose")?,
            scope,
            document_sha256,
            issued_at,
            audit_leaf_index: number("audit_leaf_index")?,
            basis,
            statutory_law,
            consented_at: seconds("consented_at")?,
            authorization_jti: optional_text("authorization_jti")?,
            consent,
            guardian,
            consent_given_at: optional_text("consent_given_at")?,
        },
        key_id: kid,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::audit::key::tests::TEST_KEY_PEM;

    fn claims() -> ReceiptClaims {
        ReceiptClaims {
            issuer: "siirto.example.fi".into(),
            transfer_id: "7f1c0d9e-2b1a-4c3d-8e9f-0a1b2c3d4e5f".into(),
            subject: StudentId::parse("131052-308T").unwrap(),
            source: party("helsinki"),
            destination: party("turku"),
            purpose: "school-change".into(),
            scope: Scope::parse("identity achievements support").unwrap(),
            document_sha256: [0xab; 32],
            issued_at: Timestamp::from_millis(1_795_448_460_999),
            audit_leaf_index: 41,
            basis: Basis::Consent,
            statutory_law: None,
            consented_at: Some(Timestamp::from_secs(1_795_448_000)),
            authorization_jti: Some("jti-1".into()),
            consent: Some(ConsentRecord {
                sha256: [0x5c; 32],
                version: "0123456789abcdef".into(),
                lang: Lang::Sv,
            }),
            guardian: true,
            consent_given_at: Some("koski".into()),
        }
    }

    fn party(id: &str) -> Party {
        Party {
            id: id.into(),
            name: Some(Localized {
                fi: format!("{id} fi"),
                sv: format!("{id} sv"),
                en: format!("{id} en"),
            }),
        }
    }

    fn payload(token: &str) -> Value {
        serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn carries_the_consent_receipt_claims() {
        let token = sign_receipt(&claims(), &key());
        let p = payload(&token);
        assert_eq!(p["jurisdiction"], "FI");
        assert_eq!(p["basis"], "consent");
        assert_eq!(
            p["src"],
            json!({"id": "helsinki", "name": {"fi": "helsinki fi", "sv": "helsinki sv", "en": "helsinki en"}})
        );
        assert_eq!(p["dst"]["id"], "turku");
        assert_eq!(
            p["categories"],
            json!(["identity", "achievements", "support"])
        );
        assert_eq!(p["sensitive"], true);
        assert_eq!(p["consented_at"], 1_795_448_000);
        assert_eq!(p["delivered_at"], 1_795_448_460);
        assert_eq!(p["authorization_jti"], "jti-1");
        assert_eq!(p["consent_sha256"], hex(&[0x5c; 32]));
        assert_eq!(p["consent_version"], "0123456789abcdef");
        assert_eq!(p["consent_lang"], "sv");
        assert_eq!(p["guardian"], true);
        assert!(p.get("statutory_law").is_none());

        // A statutory transfer names its law and no consent text.
        let mut c = claims();
        c.basis = Basis::Statutory;
        c.statutory_law = Some(Localized {
            fi: "perusopetuslaki 40 §".into(),
            sv: "lagen om grundläggande utbildning 40 §".into(),
            en: "Basic Education Act, section 40".into(),
        });
        c.consent = None;
        c.guardian = false;
        c.scope = Scope::parse("identity enrolment").unwrap();
        let token = sign_receipt(&c, &key());
        let p = payload(&token);
        assert_eq!(p["basis"], "statutory");
        assert_eq!(p["statutory_law"]["fi"], "perusopetuslaki 40 §");
        assert_eq!(p["consent_sha256"], Value::Null);
        assert_eq!(p["sensitive"], false);
        let r = verify_receipt(&token, &key().public_key()).unwrap();
        c.issued_at = Timestamp::from_secs(1_795_448_460);
        assert_eq!(r.claims(), &c);
    }

    #[test]
    fn a_receipt_from_before_the_consent_claims_still_verifies() {
        let k = key();
        let header = URL_SAFE_NO_PAD.encode(
            json!({"alg": "EdDSA", "kid": k.public_key().thumbprint(), "typ": RECEIPT_TYP})
                .to_string(),
        );
        let body = URL_SAFE_NO_PAD.encode(
            json!({
                "iss": "siirto.example.fi", "transfer_id": "t-1", "sub": "131052-308T",
                "src": "helsinki", "dst": "turku", "purpose": "school-change",
                "scope": "identity", "document_sha256": hex(&[1; 32]), "iat": 1_795_448_460,
                "audit_leaf_index": 3,
            })
            .to_string(),
        );
        let input = format!("{header}.{body}");
        let token = format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(k.sign(input.as_bytes()))
        );
        let r = verify_receipt(&token, &k.public_key()).unwrap();
        assert_eq!(
            r.claims().source,
            Party {
                id: "helsinki".into(),
                name: None
            }
        );
        assert_eq!(r.claims().basis, Basis::Consent);
        assert_eq!(r.claims().consent, None);
        assert!(!r.claims().guardian);
    }

    fn key() -> AuditSigningKey {
        AuditSigningKey::from_pkcs8_pem(TEST_KEY_PEM).unwrap()
    }

    #[test]
    fn a_sealed_receipt_opens_only_for_its_transfer_and_hides_the_student() {
        let random = crate::clock::SeededRandom::new(9);
        let vault = Vault::new(&[5u8; 32], &[]).unwrap();
        let token = sign_receipt(&claims(), &key());
        let id = &claims().transfer_id;
        let sealed = seal_receipt(&vault, id, &token, &random);
        assert_eq!(sealed.key_id, vault.current_key_id());
        assert_eq!(open_receipt(&vault, id, &sealed.bytes).unwrap(), token);
        assert_eq!(
            open_receipt(&vault, "another-transfer", &sealed.bytes),
            Err(ReceiptError::Sealed(VaultError::Authentication))
        );
        // Neither the token nor its payload (which names the student) is in the sealed bytes.
        let payload = token.split('.').nth(1).unwrap();
        let bytes = String::from_utf8_lossy(&sealed.bytes);
        assert!(!bytes.contains(&payload[..16]) && !bytes.contains("131052-308T"));
    }

    #[test]
    fn signs_and_verifies() {
        let k = key();
        let token = sign_receipt(&claims(), &k);
        let r = verify_receipt(&token, &k.public_key()).unwrap();
        let mut expected = claims();
        expected.issued_at = Timestamp::from_secs(1_795_448_460);
        assert_eq!(r.claims(), &expected);
        assert_eq!(r.key_id(), k.public_key().thumbprint());
        let header: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["typ"], RECEIPT_TYP);
        assert_eq!(header["alg"], "EdDSA");
    }

    #[test]
    fn refuses_changes_and_other_keys() {
        let k = key();
        let token = sign_receipt(&claims(), &k);
        let other = AuditSigningKey::from_pkcs8_der(
            ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
                .unwrap()
                .as_ref(),
        )
        .unwrap();
        assert_eq!(
            verify_receipt(&token, &other.public_key()),
            Err(ReceiptError::WrongKey)
        );
        let mut c = claims();
        c.audit_leaf_index = 42;
        let forged_payload = sign_receipt(&c, &k).split('.').nth(1).unwrap().to_owned();
        let parts: Vec<&str> = token.split('.').collect();
        let spliced = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
        assert_eq!(
            verify_receipt(&spliced, &k.public_key()),
            Err(ReceiptError::BadSignature)
        );
        assert!(matches!(
            verify_receipt("a.b", &k.public_key()),
            Err(ReceiptError::Malformed(_))
        ));
        // A receipt-shaped token with another typ is refused, even when signed by the key.
        let header = URL_SAFE_NO_PAD.encode(
            json!({"alg": "EdDSA", "kid": k.public_key().thumbprint(), "typ": "siirto-authz+jwt"})
                .to_string(),
        );
        let input = format!("{header}.{}", parts[1]);
        let t = format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(k.sign(input.as_bytes()))
        );
        assert!(matches!(
            verify_receipt(&t, &k.public_key()),
            Err(ReceiptError::WrongHeader(_))
        ));
        let e = verify_receipt(&token.replace('.', ".x"), &k.public_key()).unwrap_err();
        assert!(!e.to_string().contains("131052"));
    }
}

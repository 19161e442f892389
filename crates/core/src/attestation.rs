//! The signed attestation of a check without transfer: the gateway's signed yes or no to one
//! question about a student's record, which never left the gateway.
//!
//! A compact JWS signed with the audit key (Ed25519), as receipts are
//! ([`crate::receipt`]): header `{"alg":"EdDSA","kid":<RFC 7638 thumbprint of the audit public
//! key>,"typ":"siirto-attestation+jwt"}`; claims `iss` (gateway id), `aud` (the `dst` that
//! asked), `sub` (the student), `iat` (seconds), `jti` (the check's id), `question`, `answer`
//! (true or false), `src`, `document_sha256` (lower-case hex of the document the answer was
//! read from), `authorization_jti`, `basis` (`consent` or `statutory`) and
//! `audit_leaf_index` (the seq of the audit entry recording the answer).
//!
//! Owns: signing ([`sign_attestation`]) and verifying ([`verify_attestation_with`]), and the
//! sealed form at rest ([`seal_attestation`], [`open_attestation`]: it names the student).
//! Must not: do IO or read the clock.

use serde_json::{Map, Value, json};

use crate::audit::{AuditPublicKey, AuditSigningKey};
use crate::check::Question;
use crate::clock::{Random, Timestamp, hex, unhex};
use crate::consent::Basis;
use crate::receipt::{JwsFault, sign_compact, verify_compact};
use crate::student_id::StudentId;
use crate::vault::{Sealed, Vault, VaultError};

/// `typ` of an attestation.
pub const ATTESTATION_TYP: &str = "siirto-attestation+jwt";
/// Largest attestation accepted by [`verify_attestation_with`].
pub const MAX_ATTESTATION_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestationError {
    #[error("attestation is larger than {MAX_ATTESTATION_BYTES} bytes")]
    TooLarge,
    #[error("attestation is not a JWS in compact serialization: {0}")]
    Malformed(String),
    #[error("attestation header is not accepted: {0}")]
    WrongHeader(String),
    #[error("attestation was signed by another key (kid differs from the audit key's thumbprint)")]
    WrongKey,
    #[error("attestation signature does not verify")]
    BadSignature,
    #[error("attestation claim {0} is missing")]
    MissingClaim(&'static str),
    #[error("attestation claim {claim} is invalid: {reason}")]
    InvalidClaim { claim: &'static str, reason: String },
    #[error("stored attestation cannot be opened: {0}")]
    Sealed(VaultError),
}

impl From<JwsFault> for AttestationError {
    fn from(f: JwsFault) -> Self {
        match f {
            JwsFault::TooLarge => AttestationError::TooLarge,
            JwsFault::Malformed(m) => AttestationError::Malformed(m),
            JwsFault::WrongHeader(m) => AttestationError::WrongHeader(m),
            JwsFault::WrongKey => AttestationError::WrongKey,
            JwsFault::BadSignature => AttestationError::BadSignature,
        }
    }
}

/// What an attestation states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationClaims {
    /// `iss`: the gateway id.
    pub issuer: String,
    /// `aud`: the destination that asked.
    pub audience: String,
    /// `sub`: the student. Personal data: never log it.
    pub subject: StudentId,
    /// `iat`; whole seconds when signed.
    pub issued_at: Timestamp,
    /// `jti`: the check's id.
    pub check_id: String,
    pub question: Question,
    pub answer: bool,
    /// `src`: the participant whose record answered.
    pub source: String,
    pub document_sha256: [u8; 32],
    pub authorization_jti: String,
    pub basis: Basis,
    pub audit_leaf_index: u64,
}

/// An attestation whose signature and claims have been checked; only
/// [`verify_attestation_with`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attestation {
    claims: AttestationClaims,
    key_id: String,
}

impl Attestation {
    pub fn claims(&self) -> &AttestationClaims {
        &self.claims
    }
    /// The `kid` it was signed under.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
}

/// Signs an attestation with the audit key.
pub fn sign_attestation(claims: &AttestationClaims, key: &AuditSigningKey) -> String {
    let payload = json!({
        "iss": claims.issuer,
        "aud": claims.audience,
        "sub": claims.subject.as_str(),
        "iat": claims.issued_at.secs(),
        "jti": claims.check_id,
        "question": claims.question.as_str(),
        "answer": claims.answer,
        "src": claims.source,
        "document_sha256": hex(&claims.document_sha256),
        "authorization_jti": claims.authorization_jti,
        "basis": claims.basis.as_str(),
        "audit_leaf_index": claims.audit_leaf_index,
    });
    sign_compact(ATTESTATION_TYP, &payload, key)
}

fn sealed_for(check_id: &str) -> String {
    format!("attestation:{check_id}")
}

/// Seals a signed attestation for storage, bound to its check.
pub fn seal_attestation(vault: &Vault, check_id: &str, token: &str, random: &dyn Random) -> Sealed {
    vault.seal(&sealed_for(check_id), token.as_bytes(), random)
}

/// Opens an attestation that [`seal_attestation`] sealed for `check_id`.
pub fn open_attestation(
    vault: &Vault,
    check_id: &str,
    sealed: &[u8],
) -> Result<String, AttestationError> {
    let plain = vault
        .open(&sealed_for(check_id), sealed)
        .map_err(AttestationError::Sealed)?;
    String::from_utf8(plain).map_err(|_| AttestationError::Sealed(VaultError::Malformed))
}

/// Verifies an attestation against whichever of `keys` (the current audit key and earlier
/// ones) its `kid` names, and reads every claim.
pub fn verify_attestation_with(
    token: &str,
    keys: &[AuditPublicKey],
) -> Result<Attestation, AttestationError> {
    let (claims, kid) = verify_compact(token, keys, ATTESTATION_TYP, MAX_ATTESTATION_BYTES)?;
    Ok(Attestation {
        claims: read_claims(&claims)?,
        key_id: kid,
    })
}

fn read_claims(claims: &Map<String, Value>) -> Result<AttestationClaims, AttestationError> {
    let invalid = |claim: &'static str, reason: &str| AttestationError::InvalidClaim {
        claim,
        reason: reason.into(),
    };
    let text = |claim: &'static str| -> Result<String, AttestationError> {
        match claims.get(claim) {
            None => Err(AttestationError::MissingClaim(claim)),
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(_) => Err(invalid(claim, "is not a non-empty string")),
        }
    };
    let number = |claim: &'static str| -> Result<u64, AttestationError> {
        claims
            .get(claim)
            .ok_or(AttestationError::MissingClaim(claim))?
            .as_u64()
            .ok_or_else(|| invalid(claim, "is not a non-negative integer"))
    };
    let subject = StudentId::parse(&text("sub")?).map_err(|e| invalid("sub", &e.to_string()))?;
    let question_text = text("question")?;
    let question = Question::parse(&question_text)
        .ok_or_else(|| invalid("question", "is not a known question"))?;
    let answer = match claims.get("answer") {
        None => return Err(AttestationError::MissingClaim("answer")),
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("answer", "is not true or false")),
    };
    let digest = text("document_sha256")?;
    let document_sha256: [u8; 32] = unhex(&digest)
        .filter(|_| digest.bytes().all(|b| !b.is_ascii_uppercase()))
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| invalid("document_sha256", "is not 64 lower-case hex digits"))?;
    let iat = number("iat")?;
    let issued_at = i64::try_from(iat)
        .ok()
        .filter(|s| *s <= 253_402_300_799)
        .map(Timestamp::from_secs)
        .ok_or_else(|| invalid("iat", "is out of range"))?;
    let basis_text = text("basis")?;
    let basis =
        Basis::parse(&basis_text).ok_or_else(|| invalid("basis", "is not consent or statutory"))?;
    Ok(AttestationClaims {
        issuer: text("iss")?,
        audience: text("aud")?,
        subject,
        issued_at,
        check_id: text("jti")?,
        question,
        answer,
        source: text("src")?,
        document_sha256,
        authorization_jti: text("authorization_jti")?,
        basis,
        audit_leaf_index: number("audit_leaf_index")?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing unwrap is a failing test
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn claims() -> AttestationClaims {
        AttestationClaims {
            issuer: "siirto.example.fi".into(),
            audience: "helsinki".into(),
            subject: StudentId::parse("131052-308T").unwrap(),
            issued_at: Timestamp::from_secs(1_790_000_000),
            check_id: "c-1".into(),
            question: Question::ActiveStudyRight,
            answer: true,
            source: "turku".into(),
            document_sha256: [7u8; 32],
            authorization_jti: "j-1".into(),
            basis: Basis::Consent,
            audit_leaf_index: 42,
        }
    }

    #[test]
    fn signs_and_verifies_every_claim() {
        let key = AuditSigningKey::from_pkcs8_pem(crate::audit::key::tests::TEST_KEY_PEM).unwrap();
        let token = sign_attestation(&claims(), &key);
        let verified = verify_attestation_with(&token, &[key.public_key()]).unwrap();
        assert_eq!(verified.claims(), &claims());
        assert_eq!(verified.key_id(), key.public_key().thumbprint());
    }

    #[test]
    fn tampered_other_key_and_receipt_typ_are_refused() {
        let key = AuditSigningKey::from_pkcs8_pem(crate::audit::key::tests::TEST_KEY_PEM).unwrap();
        let token = sign_attestation(&claims(), &key);
        let (head, rest) = token.split_once('.').unwrap();
        let (payload, signature) = rest.split_once('.').unwrap();
        let mut body: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        body["answer"] = Value::Bool(false);
        let forged = format!(
            "{head}.{}.{signature}",
            URL_SAFE_NO_PAD.encode(body.to_string())
        );
        assert_eq!(
            verify_attestation_with(&forged, &[key.public_key()]),
            Err(AttestationError::BadSignature)
        );
        let other = AuditSigningKey::from_pkcs8_der(
            ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
                .unwrap()
                .as_ref(),
        )
        .unwrap();
        assert_eq!(
            verify_attestation_with(&token, &[other.public_key()]),
            Err(AttestationError::WrongKey)
        );
        let receipt_typ = sign_compact("siirto-receipt+jwt", &body, &key);
        assert!(matches!(
            verify_attestation_with(&receipt_typ, &[key.public_key()]),
            Err(AttestationError::WrongHeader(_))
        ));
    }
}

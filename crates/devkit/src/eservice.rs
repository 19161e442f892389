//! A reference e-service: signs a student's authorization or transparency token the way an
//! identity broker or municipal e-service does after strong authentication. Used by `siirto
//! demo`, the benchmarks and the tests; a real e-service uses its own JOSE library (the tests
//! also sign with Python to prove the gateway does not depend on this one).
//!
//! Owns: [`Authorization`] (the claims of CONTRACT.md), [`consent_text`] (the text it shows
//! before the person agrees) and [`sign`], which produces a compact ES256/EdDSA/RS256/PS256 JWS
//! with `typ` and `kid` set. It never verifies anything.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jws::{ES256, EdDSA, JwsSigner, PS256, RS256};
use serde_json::{Value, json};

use siirto_core::clock::Timestamp;
use siirto_core::consent::{Basis, ConsentText, Subject, TextRequest};
use siirto_core::identity::Directory;
use siirto_core::lang::Lang;
use siirto_core::scope::Scope;

/// `typ` of a transfer authorization.
pub const AUTHORIZATION_TYP: &str = "siirto-authz+jwt";
/// `typ` of a transparency token.
pub const TRANSPARENCY_TYP: &str = "siirto-transparency+jwt";

/// The claims of a transfer authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub issuer: String,
    pub audience: String,
    pub subject: String,
    pub source: String,
    pub destination: String,
    pub scope: String,
    pub purpose: String,
    pub jti: String,
    pub issued_at: Timestamp,
    pub lifetime_secs: i64,
    /// `basis`; absent (`None`) means consent.
    pub basis: Option<String>,
    /// `act.sub` of a guardian (`act` = `{"sub": …, "role": "guardian"}`).
    pub guardian: Option<String>,
    /// `birthdate`, for a learner number.
    pub birthdate: Option<String>,
    /// `consent_sha256` (hex) and `consent_lang` of the consent text shown.
    pub consent: Option<(String, String)>,
}

impl Authorization {
    pub fn claims(&self) -> Value {
        let mut claims = json!({
            "iss": self.issuer,
            "aud": self.audience,
            "sub": self.subject,
            "src": self.source,
            "dst": self.destination,
            "scope": self.scope,
            "purpose": self.purpose,
            "jti": self.jti,
            "iat": self.issued_at.secs(),
            "exp": self.issued_at.secs() + self.lifetime_secs,
        });
        if let Some(map) = claims.as_object_mut() {
            if let Some(basis) = &self.basis {
                map.insert("basis".into(), json!(basis));
            }
            if let Some(guardian) = &self.guardian {
                map.insert("act".into(), json!({"sub": guardian, "role": "guardian"}));
            }
            if let Some(birthdate) = &self.birthdate {
                map.insert("birthdate".into(), json!(birthdate));
            }
            if let Some((sha256, lang)) = &self.consent {
                map.insert("consent_sha256".into(), json!(sha256));
                map.insert("consent_lang".into(), json!(lang));
            }
        }
        claims
    }
}

/// The consent text the gateway gives (as `GET /v1/consent-text` does) for these participants
/// of `directory`, scope, purpose and basis in `lang`, when it gives one: what an e-service
/// shows before the person agrees, and whose hash it signs as `consent_sha256`.
pub fn consent_text(
    directory: &Directory,
    src: &str,
    dst: &str,
    scope: &str,
    purpose: &str,
    basis: &str,
    lang: Lang,
) -> Option<ConsentText> {
    let request = TextRequest {
        source: directory.get(src)?,
        destination: directory.get(dst)?,
        subject: Subject::Categories(Scope::parse(scope).ok()?),
        purpose,
        basis: Basis::parse(basis)?,
    };
    siirto_gateway::http::pages::consent_catalog()
        .text(&request, lang)
        .ok()
}

/// Claims of a transparency token for `subject`.
pub fn transparency_claims(
    issuer: &str,
    audience: &str,
    subject: &str,
    jti: &str,
    issued_at: Timestamp,
    lifetime_secs: i64,
) -> Value {
    json!({
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "scope": "transparency",
        "jti": jti,
        "iat": issued_at.secs(),
        "exp": issued_at.secs() + lifetime_secs,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("unsupported algorithm `{0}`")]
    Algorithm(String),
    #[error("signing key: {0}")]
    Key(String),
}

/// Signs `claims` as a compact JWS with header `{alg, typ, kid}`. `key_pem` is a PKCS#8 private
/// key matching `alg`.
pub fn sign(
    claims: &Value,
    alg: &str,
    typ: &str,
    kid: &str,
    key_pem: &[u8],
) -> Result<String, SignError> {
    let key = |e: josekit::JoseError| SignError::Key(e.to_string());
    let signer: Box<dyn JwsSigner> = match alg {
        "ES256" => Box::new(ES256.signer_from_pem(key_pem).map_err(key)?),
        "EdDSA" => Box::new(EdDSA.signer_from_pem(key_pem).map_err(key)?),
        "RS256" => Box::new(RS256.signer_from_pem(key_pem).map_err(key)?),
        "PS256" => Box::new(PS256.signer_from_pem(key_pem).map_err(key)?),
        other => return Err(SignError::Algorithm(other.to_owned())),
    };
    let header = json!({ "alg": alg, "typ": typ, "kid": kid });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = signer.sign(input.as_bytes()).map_err(key)?;
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_a_verifiable_es256_token() {
        let pair = ES256.generate_key_pair().unwrap();
        let token = sign(
            &json!({"a": 1}),
            "ES256",
            AUTHORIZATION_TYP,
            "k1",
            &pair.to_pem_private_key(),
        )
        .unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["typ"], AUTHORIZATION_TYP);
        assert_eq!(header["kid"], "k1");
        let verifier = ES256.verifier_from_pem(pair.to_pem_public_key()).unwrap();
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        use josekit::jws::JwsVerifier;
        verifier
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .unwrap();
        assert!(matches!(
            sign(&json!({}), "HS256", "x", "k", b""),
            Err(SignError::Algorithm(_))
        ));
    }
}

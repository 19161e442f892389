//! Consent given at the register: the OAuth 2.0 client side of KOSKI's OmaData interface
//! (CONTRACT.md, "Consent given at the register: KOSKI OmaData"; KOSKI's own description is
//! `../shared/corpus/koski/omadata_oauth2.md`), as pure decisions.
//!
//! Owns: the PKCE values (RFC 7636 §4.1 verifier from 32 random bytes, §4.2 `S256` challenge),
//! the `state` value (RFC 6749 §10.12), what the authorization server's RFC 8414 metadata must
//! say before the gateway uses it ([`Metadata::parse`]), the token endpoint's answer
//! (RFC 6749 §5.1 / §5.2, [`TokenAnswer::parse`]), and the rules of a consent request's answer
//! (`POST /v1/consent-requests/{id}/code`: [`decide_answer`]).
//!
//! It must not do IO, read a clock or draw randomness of its own: times and random bytes come
//! in as arguments. Codes, tokens, verifiers and states are secrets: nothing here puts one in
//! an error, and [`Secret`]'s `Debug` never shows its value.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::clock::{Random, Timestamp};

/// The `code_challenge_method` the gateway uses and requires (RFC 7636 §4.2; KOSKI's metadata
/// lists only it).
pub const PKCE_METHOD: &str = "S256";
/// The client authentication method at the token endpoint (RFC 8705 §2.1.1).
pub const TLS_CLIENT_AUTH: &str = "tls_client_auth";
/// The response mode the authorization request asks for (OAuth 2.0 Form Post Response Mode).
pub const FORM_POST: &str = "form_post";
/// RFC 8414 §3: the well-known path of the metadata.
pub const WELL_KNOWN: &str = "/.well-known/oauth-authorization-server";
/// Longest code, state or error value taken from the e-service (KOSKI's codes are far shorter).
pub const MAX_PARAMETER_CHARS: usize = 512;
/// Longest access token accepted from the token endpoint.
pub const MAX_TOKEN_CHARS: usize = 4096;

/// A secret string (a code, a token, a verifier, a state): `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} chars)", self.0.len())
    }
}

/// 32 random bytes as base64url without padding: 43 characters of the unreserved set, as
/// RFC 7636 §4.1 recommends for the `code_verifier` (and used for `state` alike).
pub fn random_token(random: &dyn Random) -> Secret {
    let mut bytes = [0u8; 32];
    random.fill(&mut bytes);
    Secret(URL_SAFE_NO_PAD.encode(bytes))
}

/// RFC 7636 §4.2: `BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))`.
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(crate::vault::sha256(verifier.as_bytes()))
}

/// RFC 7636 §4.1: 43 to 128 characters of `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
pub fn valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Why the authorization server's metadata cannot be used. Names the member.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("the metadata is not a JSON object")]
    NotAnObject,
    #[error("the metadata lacks `{0}`")]
    Missing(&'static str),
    #[error(
        "`issuer` is \"{found}\", not the configured omadata_issuer \"{expected}\" (RFC 8414 §3.3)"
    )]
    IssuerMismatch { expected: String, found: String },
    #[error("`{0}` is not an https URL")]
    NotHttps(&'static str),
    #[error("`{member}` does not list \"{wanted}\"")]
    NotSupported {
        member: &'static str,
        wanted: &'static str,
    },
}

/// What the gateway takes from RFC 8414 metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
}

impl Metadata {
    /// Reads the metadata (RFC 8414 §2) and checks it against the configured issuer (§3.3: the
    /// `issuer` must be identical) and against what the gateway needs: `code` in
    /// `response_types_supported`, `S256` in `code_challenge_methods_supported`, and, when the
    /// server lists them, `form_post` in `response_modes_supported`, `authorization_code` in
    /// `grant_types_supported` and `tls_client_auth` in
    /// `token_endpoint_auth_methods_supported`. Both endpoints must be `https` (RFC 6749 §3.1.2.1
    /// asks TLS of the authorization endpoint, §3.2 of the token endpoint).
    pub fn parse(bytes: &[u8], expected_issuer: &str) -> Result<Metadata, MetadataError> {
        let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(bytes) else {
            return Err(MetadataError::NotAnObject);
        };
        let text = |name: &'static str| {
            m.get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or(MetadataError::Missing(name))
        };
        let issuer = text("issuer")?;
        if issuer.trim_end_matches('/') != expected_issuer.trim_end_matches('/') {
            return Err(MetadataError::IssuerMismatch {
                expected: expected_issuer.to_owned(),
                found: issuer,
            });
        }
        let authorization_endpoint = text("authorization_endpoint")?;
        let token_endpoint = text("token_endpoint")?;
        for (name, url) in [
            ("authorization_endpoint", &authorization_endpoint),
            ("token_endpoint", &token_endpoint),
        ] {
            if !url.starts_with("https://") {
                return Err(MetadataError::NotHttps(name));
            }
        }
        let lists = |name: &'static str, wanted: &'static str, required: bool| match m
            .get(name)
            .and_then(Value::as_array)
        {
            None if !required => Ok(()),
            None => Err(MetadataError::Missing(name)),
            Some(values) if values.iter().any(|v| v.as_str() == Some(wanted)) => Ok(()),
            Some(_) => Err(MetadataError::NotSupported {
                member: name,
                wanted,
            }),
        };
        lists("response_types_supported", "code", true)?;
        lists("code_challenge_methods_supported", PKCE_METHOD, true)?;
        lists("response_modes_supported", FORM_POST, false)?;
        lists("grant_types_supported", "authorization_code", false)?;
        lists(
            "token_endpoint_auth_methods_supported",
            TLS_CLIENT_AUTH,
            false,
        )?;
        Ok(Metadata {
            issuer,
            authorization_endpoint,
            token_endpoint,
        })
    }
}

/// The token endpoint's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenAnswer {
    /// RFC 6749 §5.1 with `token_type` Bearer (RFC 6750).
    Token(Secret),
    /// RFC 6749 §5.2: the `error` code (only the registered characters kept, never the
    /// description, which may quote the request).
    Error(String),
    /// Neither: what is wrong with it.
    Unreadable(&'static str),
}

impl TokenAnswer {
    /// Reads a token endpoint answer with its HTTP status.
    pub fn parse(status: u16, body: &[u8]) -> TokenAnswer {
        let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(body) else {
            return TokenAnswer::Unreadable("the answer is not a JSON object");
        };
        if status != 200 {
            return match m.get("error").and_then(Value::as_str) {
                // RFC 6749 §5.2: error is %x20-21 / %x23-5B / %x5D-7E.
                Some(e)
                    if !e.is_empty()
                        && e.len() <= 64
                        && e.bytes()
                            .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\') =>
                {
                    TokenAnswer::Error(e.to_owned())
                }
                _ => TokenAnswer::Unreadable("an error answer without a valid `error`"),
            };
        }
        let Some(token) = m.get("access_token").and_then(Value::as_str) else {
            return TokenAnswer::Unreadable("no `access_token`");
        };
        if token.is_empty() || token.len() > MAX_TOKEN_CHARS {
            return TokenAnswer::Unreadable("`access_token` is empty or too long");
        }
        // RFC 6750 §2.1 b64token characters only, so it can go in a header as it is.
        if !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b))
        {
            return TokenAnswer::Unreadable("`access_token` has characters a Bearer token cannot");
        }
        match m.get("token_type").and_then(Value::as_str) {
            Some(t) if t.eq_ignore_ascii_case("bearer") => TokenAnswer::Token(Secret::new(token)),
            _ => TokenAnswer::Unreadable("`token_type` is not Bearer"),
        }
    }
}

/// Where a consent request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestStatus {
    /// Waiting for the person's answer at KOSKI.
    Pending,
    /// Answered with a code: a transfer was made.
    Granted,
    /// Answered with an error (the person declined, or KOSKI refused).
    Declined,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Pending => "pending",
            RequestStatus::Granted => "granted",
            RequestStatus::Declined => "declined",
        }
    }

    pub fn parse(s: &str) -> Option<RequestStatus> {
        match s {
            "pending" => Some(RequestStatus::Pending),
            "granted" => Some(RequestStatus::Granted),
            "declined" => Some(RequestStatus::Declined),
            _ => None,
        }
    }
}

/// Why an answer to a consent request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerRefusal {
    /// Unknown, or another e-service's: `404`, telling nothing about it.
    NotFound,
    /// Answered before: `409 already_used`.
    AlreadyUsed,
    /// Past `expires_at`: `410 expired`.
    Expired,
    /// The `state` is not the one sent with the request: `409 state_mismatch`.
    StateMismatch,
}

/// The stored facts a consent request's answer is judged by.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub eservice: &'a str,
    pub status: RequestStatus,
    pub expires_at: Timestamp,
    /// SHA-256 of the `state` sent.
    pub state_sha256: &'a [u8; 32],
}

/// Decides whether `caller` may answer the request with `state` at `now`: the owner only
/// (another e-service's request is unknown to it), once, before it expires, and with the very
/// `state` the request was sent with (RFC 6749 §10.12; compared by hash in constant time).
pub fn decide_answer(
    facts: Option<RequestFacts<'_>>,
    caller: &str,
    state: &str,
    now: Timestamp,
) -> Result<(), AnswerRefusal> {
    let Some(facts) = facts.filter(|f| f.eservice == caller) else {
        return Err(AnswerRefusal::NotFound);
    };
    if facts.status != RequestStatus::Pending {
        return Err(AnswerRefusal::AlreadyUsed);
    }
    if now >= facts.expires_at {
        return Err(AnswerRefusal::Expired);
    }
    let got = crate::vault::sha256(state.as_bytes());
    if !constant_time_eq(&got, facts.state_sha256) {
        return Err(AnswerRefusal::StateMismatch);
    }
    Ok(())
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Whether a code, state or error value from the e-service is acceptable to handle: 1 to
/// [`MAX_PARAMETER_CHARS`] visible ASCII characters (RFC 6749 Appendix A: VSCHAR).
pub fn valid_parameter(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_PARAMETER_CHARS
        && value.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SeededRandom;

    #[test]
    fn s256_matches_rfc7636_appendix_b() {
        // RFC 7636 Appendix B.
        assert_eq!(
            s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn verifiers_are_43_unreserved_characters() {
        let v = random_token(&SeededRandom::new(7));
        assert!(valid_verifier(v.expose()), "{}", v.expose());
        assert_eq!(v.expose().len(), 43);
        assert!(!valid_verifier("short"));
        assert!(!valid_verifier(&"a".repeat(129)));
        assert!(!valid_verifier(&format!("{}!", "a".repeat(43))));
        assert!(!format!("{v:?}").contains(v.expose()));
    }

    fn metadata(issuer: &str) -> serde_json::Value {
        serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["form_post"],
            "grant_types_supported": ["authorization_code"],
            "token_endpoint_auth_methods_supported": ["tls_client_auth"],
            "code_challenge_methods_supported": ["S256"],
        })
    }

    #[test]
    fn metadata_is_checked_as_rfc8414_says() {
        let issuer = "https://koski.example/omadata-oauth2";
        let ok = Metadata::parse(metadata(issuer).to_string().as_bytes(), issuer).expect("ok");
        assert_eq!(ok.token_endpoint, format!("{issuer}/token"));
        let other = Metadata::parse(
            metadata("https://evil.example").to_string().as_bytes(),
            issuer,
        );
        assert!(matches!(other, Err(MetadataError::IssuerMismatch { .. })));
        let mut plain = metadata(issuer);
        plain["code_challenge_methods_supported"] = serde_json::json!(["plain"]);
        assert_eq!(
            Metadata::parse(plain.to_string().as_bytes(), issuer),
            Err(MetadataError::NotSupported {
                member: "code_challenge_methods_supported",
                wanted: "S256"
            })
        );
        let mut secret = metadata(issuer);
        secret["token_endpoint_auth_methods_supported"] =
            serde_json::json!(["client_secret_basic"]);
        assert!(Metadata::parse(secret.to_string().as_bytes(), issuer).is_err());
        let mut http = metadata(issuer);
        http["token_endpoint"] = serde_json::json!("http://koski.example/token");
        assert_eq!(
            Metadata::parse(http.to_string().as_bytes(), issuer),
            Err(MetadataError::NotHttps("token_endpoint"))
        );
        assert_eq!(
            Metadata::parse(b"[]", issuer),
            Err(MetadataError::NotAnObject)
        );
    }

    #[test]
    fn token_answers_are_read_as_rfc6749_section_5() {
        let ok = TokenAnswer::parse(
            200,
            br#"{"access_token":"abc.DEF-123","token_type":"Bearer","expires_in":600}"#,
        );
        assert_eq!(ok, TokenAnswer::Token(Secret::new("abc.DEF-123")));
        assert_eq!(
            TokenAnswer::parse(400, br#"{"error":"invalid_grant","error_description":"x"}"#),
            TokenAnswer::Error("invalid_grant".into())
        );
        assert!(matches!(
            TokenAnswer::parse(200, br#"{"access_token":"a","token_type":"mac"}"#),
            TokenAnswer::Unreadable(_)
        ));
        assert!(matches!(
            TokenAnswer::parse(200, br#"{"access_token":"a b","token_type":"Bearer"}"#),
            TokenAnswer::Unreadable(_)
        ));
        assert!(matches!(
            TokenAnswer::parse(400, b"<html>"),
            TokenAnswer::Unreadable(_)
        ));
    }

    #[test]
    fn answers_are_decided_in_order() {
        let state = "s-1";
        let hash = crate::vault::sha256(state.as_bytes());
        let now = Timestamp::from_millis(1_000);
        let facts = |status, expires| RequestFacts {
            eservice: "portal",
            status,
            expires_at: Timestamp::from_millis(expires),
            state_sha256: &hash,
        };
        let pending = facts(RequestStatus::Pending, 2_000);
        assert_eq!(decide_answer(Some(pending), "portal", state, now), Ok(()));
        assert_eq!(
            decide_answer(Some(pending), "other", state, now),
            Err(AnswerRefusal::NotFound)
        );
        assert_eq!(
            decide_answer(None, "portal", state, now),
            Err(AnswerRefusal::NotFound)
        );
        assert_eq!(
            decide_answer(Some(pending), "portal", "s-2", now),
            Err(AnswerRefusal::StateMismatch)
        );
        assert_eq!(
            decide_answer(
                Some(facts(RequestStatus::Pending, 1_000)),
                "portal",
                state,
                now
            ),
            Err(AnswerRefusal::Expired)
        );
        for used in [RequestStatus::Granted, RequestStatus::Declined] {
            assert_eq!(
                decide_answer(Some(facts(used, 2_000)), "portal", state, now),
                Err(AnswerRefusal::AlreadyUsed)
            );
        }
    }
}

//! The tokens that the operator page's forms carry against cross-site request forgery: the
//! operator's browser presents its client certificate to any page that posts to the gateway,
//! so each form that changes something or looks a person up carries a token only the gateway
//! can make, bound to the operator and to the hour. A token is an HMAC-SHA256 of the hour's
//! number and the participant id, under a key derived from the pseudonym key (every instance
//! sharing a database accepts the others' tokens); it is accepted in its hour and the next.
//!
//! Must not: read a request or the clock; the time comes in as a value.

use ring::hmac;
use siirto_core::clock::{Timestamp, hex, unhex};

/// How long one token window lasts (a token lives one to two windows).
const WINDOW_SECS: i64 = 3600;
/// Separates the form-token key from every other use of the pseudonym key.
const CONTEXT: &[u8] = b"siirto/operator-form-token/v1";

/// Makes and checks form tokens.
pub struct FormTokens(hmac::Key);

impl std::fmt::Debug for FormTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FormTokens(<key redacted>)")
    }
}

impl FormTokens {
    /// The form-token key derived from `secret` (the pseudonym key's bytes).
    pub fn derive(secret: &[u8]) -> FormTokens {
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), CONTEXT);
        FormTokens(hmac::Key::new(hmac::HMAC_SHA256, tag.as_ref()))
    }

    /// The token of `participant`'s forms at `now` (64 hex digits).
    pub fn token(&self, participant: &str, now: Timestamp) -> String {
        hex(hmac::sign(&self.0, &message(participant, window(now))).as_ref())
    }

    /// Whether `token` was made for `participant` in this window or the one before.
    pub fn check(&self, token: &str, participant: &str, now: Timestamp) -> bool {
        let Some(tag) = unhex(token.trim()) else {
            return false;
        };
        let current = window(now);
        [current, current - 1]
            .iter()
            .any(|w| hmac::verify(&self.0, &message(participant, *w), &tag).is_ok())
    }
}

fn window(now: Timestamp) -> i64 {
    now.secs().div_euclid(WINDOW_SECS)
}

fn message(participant: &str, window: i64) -> Vec<u8> {
    let mut m = window.to_be_bytes().to_vec();
    m.extend_from_slice(participant.as_bytes());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_bound_to_its_operator_its_key_and_its_hour() {
        let tokens = FormTokens::derive(&[7u8; 32]);
        let at = Timestamp::from_secs(1_800_000_000);
        let token = tokens.token("registry-operator", at);
        assert_eq!(token.len(), 64);
        assert!(tokens.check(&token, "registry-operator", at));
        // Still good in the next window, not in the one after, nor before it was made.
        let hour = std::time::Duration::from_secs(3600);
        assert!(tokens.check(&token, "registry-operator", at.saturating_add(hour)));
        assert!(!tokens.check(&token, "registry-operator", at.saturating_add(hour * 2)));
        assert!(!tokens.check(&token, "registry-operator", at.saturating_sub(hour)));
        // Another operator, another key, a changed or malformed token: refused.
        assert!(!tokens.check(&token, "other-operator", at));
        assert!(!FormTokens::derive(&[8u8; 32]).check(&token, "registry-operator", at));
        let mut changed = token.clone().into_bytes();
        changed[0] = if changed[0] == b'0' { b'1' } else { b'0' };
        assert!(!tokens.check(
            &String::from_utf8(changed).unwrap(),
            "registry-operator",
            at
        ));
        for bad in ["", "zz", &token[..62]] {
            assert!(!tokens.check(bad, "registry-operator", at), "{bad}");
        }
        assert_eq!(format!("{tokens:?}"), "FormTokens(<key redacted>)");
    }
}

//! The gateway's Ed25519 audit key (`gateway.audit_key`) and the public forms others verify
//! with: a JWK/JWKS (with its RFC 7638 thumbprint as `kid`), a signed-note verifier key, and
//! SubjectPublicKeyInfo PEM as `openssl pkey -pubout` writes it.
//!
//! Owns: parsing the PKCS#8 PEM private key (v1 as `openssl genpkey -algorithm ed25519` writes
//! it, or v2) and signing bytes with it. Must not: print or return private key bytes (`Debug`
//! is redacted), or do IO (callers read the file and pass its text).

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::digest::{SHA256, digest};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};
use serde_json::{Value, json};

/// Signed-note signature type of Ed25519 (C2SP signed-note).
pub const NOTE_ED25519: u8 = 0x01;
/// Signed-note signature type of Ed25519 `cosignature/v1` (C2SP tlog-cosignature).
pub const NOTE_COSIGNATURE_V1: u8 = 0x04;

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the 32 key bytes follow.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not a PEM `{expected}` block: {reason}")]
    NotPem {
        expected: &'static str,
        reason: String,
    },
    #[error("not an Ed25519 key: {0}")]
    NotEd25519(String),
    #[error("not an Ed25519 public key JWK: {0}")]
    InvalidJwk(String),
    #[error("not a signed-note verifier key (name+keyid+base64): {0}")]
    InvalidVerifierKey(String),
}

/// The private audit key. Signs checkpoints and receipts. Cloning shares the key.
#[derive(Clone)]
pub struct AuditSigningKey {
    pair: Arc<Ed25519KeyPair>,
}

impl fmt::Debug for AuditSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AuditSigningKey(public {})",
            self.public_key().thumbprint()
        )
    }
}

impl AuditSigningKey {
    /// Reads `-----BEGIN PRIVATE KEY-----` (PKCS#8 v1 or v2) holding an Ed25519 key.
    pub fn from_pkcs8_pem(pem: &str) -> Result<AuditSigningKey, KeyError> {
        let der =
            PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| KeyError::NotPem {
                expected: "PRIVATE KEY",
                reason: e.to_string(),
            })?;
        AuditSigningKey::from_pkcs8_der(der.secret_pkcs8_der())
    }

    /// Reads a DER PKCS#8 (v1 or v2) Ed25519 key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<AuditSigningKey, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|e| KeyError::NotEd25519(e.to_string()))?;
        Ok(AuditSigningKey {
            pair: Arc::new(pair),
        })
    }

    pub fn public_key(&self) -> AuditPublicKey {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(self.pair.public_key().as_ref());
        AuditPublicKey(bytes)
    }

    /// An Ed25519 signature (RFC 8032) of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        let mut sig = [0u8; 64];
        sig.copy_from_slice(self.pair.sign(message).as_ref());
        sig
    }
}

/// The public audit key: 32 bytes of Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuditPublicKey([u8; 32]);

impl fmt::Debug for AuditPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuditPublicKey({})", self.thumbprint())
    }
}

impl AuditPublicKey {
    pub fn from_bytes(bytes: [u8; 32]) -> AuditPublicKey {
        AuditPublicKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Reads `-----BEGIN PUBLIC KEY-----` (SubjectPublicKeyInfo) holding an Ed25519 key.
    pub fn from_spki_pem(pem: &str) -> Result<AuditPublicKey, KeyError> {
        let der = SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes()).map_err(|e| {
            KeyError::NotPem {
                expected: "PUBLIC KEY",
                reason: e.to_string(),
            }
        })?;
        let bytes: &[u8] = der.as_ref();
        match bytes.strip_prefix(&ED25519_SPKI_PREFIX[..]) {
            Some(key) if key.len() == 32 => {
                let mut k = [0u8; 32];
                k.copy_from_slice(key);
                Ok(AuditPublicKey(k))
            }
            _ => Err(KeyError::NotEd25519(
                "SubjectPublicKeyInfo is not an Ed25519 key".into(),
            )),
        }
    }

    /// SubjectPublicKeyInfo PEM, as `openssl pkey -pubout` writes it.
    pub fn to_spki_pem(&self) -> String {
        let mut der = ED25519_SPKI_PREFIX.to_vec();
        der.extend_from_slice(&self.0);
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(der)
        )
    }

    /// Whether `signature` is a valid Ed25519 signature of `message` by this key.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(message, signature)
            .is_ok()
    }

    /// RFC 7638 JWK thumbprint (base64url SHA-256 of `{"crv":"Ed25519","kty":"OKP","x":"…"}`),
    /// the `kid` of receipts and of the published JWK.
    pub fn thumbprint(&self) -> String {
        let canonical = format!(
            r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(self.0)
        );
        URL_SAFE_NO_PAD.encode(digest(&SHA256, canonical.as_bytes()))
    }

    /// The public JWK (RFC 8037), with `kid` = [`Self::thumbprint`].
    pub fn to_jwk(&self) -> Value {
        json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(self.0),
            "kid": self.thumbprint(),
            "use": "sig",
            "alg": "EdDSA",
        })
    }

    /// A JWKS holding [`Self::to_jwk`]: what the gateway publishes for receipt verification.
    pub fn to_jwks(&self) -> Value {
        json!({ "keys": [self.to_jwk()] })
    }

    /// Reads an Ed25519 public JWK (`kty` OKP, `crv` Ed25519, `x`).
    pub fn from_jwk(jwk: &Value) -> Result<AuditPublicKey, KeyError> {
        let member = |name: &str| jwk.get(name).and_then(Value::as_str);
        if member("kty") != Some("OKP") || member("crv") != Some("Ed25519") {
            return Err(KeyError::InvalidJwk(
                "kty must be OKP and crv Ed25519".into(),
            ));
        }
        if jwk.get("d").is_some() {
            return Err(KeyError::InvalidJwk("holds private key material".into()));
        }
        let x = member("x").ok_or_else(|| KeyError::InvalidJwk("no x".into()))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(x)
            .map_err(|_| KeyError::InvalidJwk("x is not base64url".into()))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| KeyError::InvalidJwk("x is not 32 bytes".into()))?;
        Ok(AuditPublicKey(key))
    }

    /// Signed-note key ID: the first four bytes of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key).
    pub fn note_key_id(&self, name: &str) -> [u8; 4] {
        self.typed_key_id(name, NOTE_ED25519)
    }

    /// Signed-note key ID of signature type `sig_type`: the first four bytes of
    /// SHA-256(name ‖ 0x0A ‖ type ‖ public key).
    pub fn typed_key_id(&self, name: &str, sig_type: u8) -> [u8; 4] {
        let mut buf = Vec::with_capacity(name.len() + 34);
        buf.extend_from_slice(name.as_bytes());
        buf.push(b'\n');
        buf.push(sig_type);
        buf.extend_from_slice(&self.0);
        let d = digest(&SHA256, &buf);
        let mut id = [0u8; 4];
        id.copy_from_slice(&d.as_ref()[..4]);
        id
    }

    /// The verifier key string of the signed-note ecosystem:
    /// `<name>+<key ID as 8 hex digits>+<base64(0x01 ‖ public key)>`.
    pub fn note_verifier_key(&self, name: &str) -> String {
        self.typed_verifier_key(name, NOTE_ED25519)
    }

    /// A verifier key string of signature type `sig_type` (0x04: a `cosignature/v1` witness).
    pub fn typed_verifier_key(&self, name: &str, sig_type: u8) -> String {
        let mut typed = vec![sig_type];
        typed.extend_from_slice(&self.0);
        format!(
            "{name}+{}+{}",
            crate::clock::hex(&self.typed_key_id(name, sig_type)),
            STANDARD.encode(typed)
        )
    }

    /// Reads a verifier key string back into (name, key), checking its key ID.
    pub fn from_note_verifier_key(s: &str) -> Result<(String, AuditPublicKey), KeyError> {
        AuditPublicKey::from_typed_verifier_key(s, NOTE_ED25519)
    }

    /// Reads a verifier key string of signature type `sig_type`, checking its key ID.
    pub fn from_typed_verifier_key(
        s: &str,
        sig_type: u8,
    ) -> Result<(String, AuditPublicKey), KeyError> {
        let bad = |why: String| KeyError::InvalidVerifierKey(why);
        let mut parts = s.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected three parts separated by '+'".into()));
        };
        let typed = STANDARD
            .decode(key)
            .map_err(|_| bad("key is not base64".into()))?;
        let raw = match typed.split_first() {
            Some((t, raw)) if *t == sig_type => raw,
            _ => return Err(bad(format!("not a key of signature type 0x{sig_type:02x}"))),
        };
        let raw: [u8; 32] = raw
            .try_into()
            .map_err(|_| bad("key is not 32 bytes".into()))?;
        let public = AuditPublicKey(raw);
        if crate::clock::hex(&public.typed_key_id(name, sig_type)) != id.to_ascii_lowercase() {
            return Err(bad("key ID does not match the name and key".into()));
        }
        Ok((name.to_owned(), public))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    /// A throwaway key written by `openssl genpkey -algorithm ed25519` (PKCS#8 v1), for tests.
    pub(crate) const TEST_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEII+qllrjeq60XlK2qRSoz03DVVsAGyq6QgzZWlfPDiYy\n-----END PRIVATE KEY-----\n";

    #[test]
    fn openssl_pkcs8_v1_key_loads_and_signs() {
        let key = AuditSigningKey::from_pkcs8_pem(TEST_KEY_PEM).unwrap();
        let public = key.public_key();
        let sig = key.sign(b"hello");
        assert!(public.verify(b"hello", &sig));
        assert!(!public.verify(b"hellO", &sig));
        assert!(!format!("{key:?}").contains("MC4C"));
        // Round trips of the public forms.
        assert_eq!(
            AuditPublicKey::from_spki_pem(&public.to_spki_pem()).unwrap(),
            public
        );
        assert_eq!(AuditPublicKey::from_jwk(&public.to_jwk()).unwrap(), public);
        let vkey = public.note_verifier_key("siirto.example.fi/audit");
        assert_eq!(
            AuditPublicKey::from_note_verifier_key(&vkey).unwrap(),
            ("siirto.example.fi/audit".to_owned(), public)
        );
        assert!(AuditPublicKey::from_note_verifier_key(&vkey.replace("siirto", "other")).is_err());
        assert_eq!(public.to_jwks()["keys"][0]["kid"], public.thumbprint());
    }

    #[test]
    fn rfc8037_thumbprint_known_answer() {
        // RFC 8037 appendix A.3: the thumbprint of the example Ed25519 key.
        let x = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap();
        let key = AuditPublicKey::from_bytes(x.try_into().unwrap());
        assert_eq!(
            key.thumbprint(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn wrong_keys_are_refused() {
        assert!(matches!(
            AuditSigningKey::from_pkcs8_pem("not pem"),
            Err(KeyError::NotPem { .. })
        ));
        // An EC P-256 PKCS#8 key is not Ed25519.
        let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let e = AuditSigningKey::from_pkcs8_pem(&ec.serialize_pem()).unwrap_err();
        assert!(matches!(e, KeyError::NotEd25519(_)), "{e}");
        assert!(AuditPublicKey::from_spki_pem(&ec.public_key_pem()).is_err());
        assert!(AuditPublicKey::from_jwk(&json!({"kty": "EC"})).is_err());
    }
}

//! XML Signature for records: the enveloped signature every ELMO document carries (and a
//! siirto-v1 document by default), made on the way out and checked on the way in.
//!
//! Owns: [`Signer`] (a `[documents]` certificate and key, read from PEM), [`sign`] (SHA-256
//! digest, `rsa-sha256` or `ecdsa-sha256` by key type, Canonical XML 1.0, the
//! enveloped-signature transform, one `Reference URI=""`, the certificate in `KeyInfo`, the
//! `Signature` as the last child of the root) and [`verify`] (the same shape, the refusal
//! reasons of the contract's "Signed documents": `signature_missing`, `digest_mismatch`,
//! `signature_invalid`, `unknown_signer`, `weak_algorithm`).
//!
//! What is accepted, and nothing else: Canonical XML 1.0 with or without comments as the
//! `SignedInfo` canonicalization; the enveloped-signature transform, optionally followed by
//! Canonical XML 1.0; digests SHA-256 and (only with `allow_sha1`) SHA-1; signatures
//! `rsa-sha256`, `ecdsa-sha256` and (only with `allow_sha1`) `rsa-sha1`. Exactly one
//! `Signature` in the document, the last child of the root; exactly one `Reference`, with
//! `URI=""`; no `Object`, no `Manifest`, no other transform (XSLT, XPath, exclusive
//! canonicalization), no external reference. These rules are what stops signature wrapping:
//! the signed node-set is always the whole document minus the one signature.
//!
//! Pure: bytes in, bytes or a verdict out. Cryptography is OpenSSL's (the `openssl` crate
//! josekit already links); the one input that is not a parameter is ECDSA's per-signature
//! nonce, which OpenSSL draws itself (RSA PKCS #1 v1.5 signatures are deterministic). XML is
//! read by [`siirto_xsd::c14n`] over the hardened reader, with the caller's limits.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use openssl::bn::BigNum;
use openssl::ecdsa::EcdsaSig;
use openssl::hash::{MessageDigest, hash};
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private, Public};
use openssl::x509::X509;

use siirto_xsd::c14n::{self, Comments, Content, Document, Element};
use siirto_xsd::{Limits, XmlError};

/// The XML Signature namespace.
pub const DSIG_NAMESPACE: &str = "http://www.w3.org/2000/09/xmldsig#";
const C14N: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";
const C14N_WITH_COMMENTS: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";
const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
const RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const ECDSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256";

/// Why a document's signature was refused: the contract's reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No `Signature` in the document.
    SignatureMissing,
    /// The signed content changed after signing.
    DigestMismatch,
    /// The `SignatureValue` does not verify, or the signature's structure is not the one
    /// accepted (a second signature, a reference that is not `URI=""`, another transform,
    /// an `Object`, an unknown algorithm).
    SignatureInvalid,
    /// The key is not a pinned signer's.
    UnknownSigner,
    /// SHA-1 without `allow_sha1`.
    WeakAlgorithm,
    /// The bytes are not a readable XML document (the reader's code is in the detail).
    Unreadable,
}

impl Reason {
    /// The stable code written to the audit and shown by `siirto verify-signature`.
    pub fn code(self) -> &'static str {
        match self {
            Reason::SignatureMissing => "signature_missing",
            Reason::DigestMismatch => "digest_mismatch",
            Reason::SignatureInvalid => "signature_invalid",
            Reason::UnknownSigner => "unknown_signer",
            Reason::WeakAlgorithm => "weak_algorithm",
            Reason::Unreadable => "unreadable",
        }
    }
}

/// A refused signature: the reason, and where (element path or algorithm), never content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", reason.code())]
pub struct VerifyError {
    pub reason: Reason,
    pub detail: String,
}

fn refuse(reason: Reason, detail: impl Into<String>) -> VerifyError {
    VerifyError {
        reason,
        detail: detail.into(),
    }
}

/// Whose key a signature must verify with.
#[derive(Clone, Copy)]
pub enum Trust<'a> {
    /// One of these certificates' public keys (a source's `elmo_signers`, `--cert`).
    Pinned(&'a [X509]),
    /// The certificate in the document's own `KeyInfo`: proves integrity only, not origin
    /// (`siirto verify-signature` without `--cert`, like `xmlsec1 --insecure`).
    Embedded,
}

/// What verification asks.
#[derive(Clone, Copy)]
pub struct Policy<'a> {
    pub trust: Trust<'a>,
    /// Accept SHA-1 digests and `rsa-sha1` (a source's `allow_sha1`).
    pub allow_sha1: bool,
}

/// A signature that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The signature algorithm's URI.
    pub signature_method: String,
    /// The digest algorithm's URI.
    pub digest_method: String,
    /// SHA-256 of the signer certificate's DER (lower-case hex), when the document holds one.
    pub signer_sha256: Option<String>,
}

/// Reads certificates from PEM (one or more blocks).
pub fn certificates_from_pem(pem: &[u8]) -> Result<Vec<X509>, String> {
    let certs = X509::stack_from_pem(pem).map_err(|e| format!("not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in the PEM".into());
    }
    Ok(certs)
}

/// Verifies the enveloped signature of `document`.
pub fn verify(
    document: &[u8],
    policy: Policy<'_>,
    limits: &Limits,
) -> Result<Verified, VerifyError> {
    let doc = c14n::parse(document, limits)
        .map_err(|e| refuse(Reason::Unreadable, format!("{}: {e}", e.code())))?;
    let count = count_signatures(&doc.root);
    if count == 0 {
        return Err(refuse(
            Reason::SignatureMissing,
            format!("no ds:Signature in /{}", doc.root.qname),
        ));
    }
    if count > 1 {
        return Err(refuse(
            Reason::SignatureInvalid,
            format!("{count} ds:Signature elements; exactly one is accepted"),
        ));
    }
    let (index, signature) = doc
        .root
        .elements()
        .enumerate()
        .last()
        .filter(|(_, e)| e.is(DSIG_NAMESPACE, "Signature"))
        .ok_or_else(|| {
            refuse(
                Reason::SignatureInvalid,
                format!(
                    "the ds:Signature is not the last child of /{}",
                    doc.root.qname
                ),
            )
        })?;
    let parts = structure(signature)?;
    let weak = parts.digest_method == SHA1 || parts.signature_method == RSA_SHA1;
    if weak && !policy.allow_sha1 {
        return Err(refuse(
            Reason::WeakAlgorithm,
            "SHA-1 is accepted only from a source with allow_sha1 = true",
        ));
    }
    // The key: the embedded certificate's, checked against the pinned ones.
    let embedded = match parts.certificate {
        Some(der) => Some(X509::from_der(&der).map_err(|_| {
            refuse(
                Reason::SignatureInvalid,
                "ds:Signature/ds:KeyInfo/ds:X509Data/ds:X509Certificate is not a certificate",
            )
        })?),
        None => None,
    };
    let signer_sha256 = embedded
        .as_ref()
        .and_then(|c| c.to_der().ok())
        .map(|der| crate::clock::hex(&crate::vault::sha256(&der)));
    let keys: Vec<PKey<Public>> = match (policy.trust, &embedded) {
        (Trust::Embedded, Some(cert)) => vec![public_key(cert)?],
        (Trust::Embedded, None) => {
            return Err(refuse(
                Reason::UnknownSigner,
                "no ds:X509Certificate in ds:KeyInfo and no certificate given",
            ));
        }
        (Trust::Pinned(pinned), Some(cert)) => {
            let key = public_key(cert)?;
            let known = pinned
                .iter()
                .filter_map(|p| p.public_key().ok())
                .any(|p| p.public_eq(&key));
            if !known {
                return Err(refuse(
                    Reason::UnknownSigner,
                    "the certificate in ds:KeyInfo is not a pinned signer's",
                ));
            }
            vec![key]
        }
        (Trust::Pinned(pinned), None) => {
            pinned.iter().filter_map(|p| p.public_key().ok()).collect()
        }
    };
    // The reference: the document without its signature, canonicalized.
    let canonical = doc.canonical(Comments::Omit, Some(signature));
    let digest = digest(&parts.digest_method, &canonical)?;
    if digest != parts.digest_value {
        return Err(refuse(
            Reason::DigestMismatch,
            "the document's digest differs from ds:Reference/ds:DigestValue",
        ));
    }
    // The signature over SignedInfo.
    let comments = if parts.canonicalization == C14N_WITH_COMMENTS {
        Comments::Keep
    } else {
        Comments::Omit
    };
    // SignedInfo is the first child element of the Signature (checked by `structure`).
    let signed_info = doc
        .canonical_subtree(&[index, 0], comments)
        .ok_or_else(|| refuse(Reason::SignatureInvalid, "ds:SignedInfo not found"))?;
    let ok = keys.iter().any(|key| {
        check_signature(
            key,
            &parts.signature_method,
            &signed_info,
            &parts.signature_value,
        )
        .unwrap_or(false)
    });
    if !ok {
        return Err(refuse(
            Reason::SignatureInvalid,
            "ds:SignatureValue does not verify over ds:SignedInfo",
        ));
    }
    Ok(Verified {
        signature_method: parts.signature_method,
        digest_method: parts.digest_method,
        signer_sha256,
    })
}

fn count_signatures(element: &Element) -> usize {
    let mut count = 0;
    let mut work = vec![element];
    while let Some(e) = work.pop() {
        if e.is(DSIG_NAMESPACE, "Signature") {
            count += 1;
        }
        work.extend(e.elements());
    }
    count
}

fn public_key(cert: &X509) -> Result<PKey<Public>, VerifyError> {
    cert.public_key().map_err(|_| {
        refuse(
            Reason::SignatureInvalid,
            "the certificate in ds:KeyInfo has no usable public key",
        )
    })
}

/// The parts of a `Signature` that verification uses, after its shape was checked.
struct Parts {
    canonicalization: String,
    signature_method: String,
    digest_method: String,
    digest_value: Vec<u8>,
    signature_value: Vec<u8>,
    certificate: Option<Vec<u8>>,
}

fn dsig_children<'a>(element: &'a Element, path: &str) -> Result<Vec<&'a Element>, VerifyError> {
    let children: Vec<&Element> = element.elements().collect();
    if let Some(other) = children
        .iter()
        .find(|c| c.namespace.as_deref() != Some(DSIG_NAMESPACE))
    {
        return Err(refuse(
            Reason::SignatureInvalid,
            format!("{path}/{} is not an XML Signature element", other.qname),
        ));
    }
    if element
        .children
        .iter()
        .any(|c| matches!(c, Content::Text(t) if !t.trim().is_empty()))
    {
        return Err(refuse(
            Reason::SignatureInvalid,
            format!("{path} holds text between its elements"),
        ));
    }
    Ok(children)
}

fn expect<'a>(
    children: &[&'a Element],
    index: usize,
    local: &str,
    path: &str,
) -> Result<&'a Element, VerifyError> {
    match children.get(index) {
        Some(e) if e.local == local => Ok(e),
        Some(e) => Err(refuse(
            Reason::SignatureInvalid,
            format!("{path}/ds:{} where ds:{local} is expected", e.local),
        )),
        None => Err(refuse(
            Reason::SignatureInvalid,
            format!("{path} lacks ds:{local}"),
        )),
    }
}

fn algorithm(element: &Element, path: &str, accepted: &[&str]) -> Result<String, VerifyError> {
    let uri = element.attribute("Algorithm").unwrap_or("");
    if !accepted.contains(&uri) {
        return Err(refuse(
            Reason::SignatureInvalid,
            format!("{path}/@Algorithm `{uri}` is not accepted"),
        ));
    }
    if element.elements().next().is_some() {
        return Err(refuse(
            Reason::SignatureInvalid,
            format!("{path} has parameters; none are accepted"),
        ));
    }
    Ok(uri.to_owned())
}

fn base64_of(element: &Element, path: &str) -> Result<Vec<u8>, VerifyError> {
    if element.elements().next().is_some() {
        return Err(refuse(
            Reason::SignatureInvalid,
            format!("{path} holds elements"),
        ));
    }
    let text: String = element
        .text()
        .chars()
        .filter(|c| !matches!(c, ' ' | '\t' | '\r' | '\n'))
        .collect();
    STANDARD
        .decode(text.as_bytes())
        .map_err(|_| refuse(Reason::SignatureInvalid, format!("{path} is not base64")))
}

fn structure(signature: &Element) -> Result<Parts, VerifyError> {
    let path = "ds:Signature";
    let children = dsig_children(signature, path)?;
    let signed_info = expect(&children, 0, "SignedInfo", path)?;
    let value = expect(&children, 1, "SignatureValue", path)?;
    let key_info = match children.get(2) {
        None => None,
        Some(_) => Some(expect(&children, 2, "KeyInfo", path)?),
    };
    if let Some(extra) = children.get(3) {
        return Err(refuse(
            Reason::SignatureInvalid,
            format!("{path}/ds:{} is not accepted", extra.local),
        ));
    }
    let si_path = "ds:Signature/ds:SignedInfo";
    let si = dsig_children(signed_info, si_path)?;
    let canonicalization = algorithm(
        expect(&si, 0, "CanonicalizationMethod", si_path)?,
        &format!("{si_path}/ds:CanonicalizationMethod"),
        &[C14N, C14N_WITH_COMMENTS],
    )?;
    let signature_method = algorithm(
        expect(&si, 1, "SignatureMethod", si_path)?,
        &format!("{si_path}/ds:SignatureMethod"),
        &[RSA_SHA256, ECDSA_SHA256, RSA_SHA1],
    )?;
    let reference = expect(&si, 2, "Reference", si_path)?;
    if si.len() > 3 {
        return Err(refuse(
            Reason::SignatureInvalid,
            format!(
                "{si_path} holds {} ds:Reference elements; exactly one is accepted",
                si.len() - 2
            ),
        ));
    }
    let r_path = "ds:Signature/ds:SignedInfo/ds:Reference";
    match reference.attribute("URI") {
        Some("") => {}
        Some(_) => {
            return Err(refuse(
                Reason::SignatureInvalid,
                format!("{r_path}/@URI is not empty: only the whole document may be signed"),
            ));
        }
        None => {
            return Err(refuse(
                Reason::SignatureInvalid,
                format!("{r_path} has no URI attribute"),
            ));
        }
    }
    if let Some(kind) = reference.attribute("Type") {
        return Err(refuse(
            Reason::SignatureInvalid,
            format!("{r_path}/@Type `{kind}` is not accepted"),
        ));
    }
    let rc = dsig_children(reference, r_path)?;
    let (transforms, rest) = match rc.first() {
        Some(t) if t.local == "Transforms" => (Some(*t), &rc[1..]),
        _ => (None, &rc[..]),
    };
    let Some(transforms) = transforms else {
        return Err(refuse(
            Reason::SignatureInvalid,
            format!("{r_path} lacks the enveloped-signature transform"),
        ));
    };
    let t_path = format!("{r_path}/ds:Transforms");
    let list = dsig_children(transforms, &t_path)?;
    let mut uris = Vec::new();
    for (i, t) in list.iter().enumerate() {
        let p = format!("{t_path}/ds:Transform[{}]", i + 1);
        if t.local != "Transform" {
            return Err(refuse(
                Reason::SignatureInvalid,
                format!("{t_path}/ds:{} is not accepted", t.local),
            ));
        }
        uris.push(algorithm(t, &p, &[ENVELOPED, C14N, C14N_WITH_COMMENTS])?);
    }
    let shape_ok = match uris.as_slice() {
        [first] => first == ENVELOPED,
        [first, second] => first == ENVELOPED && second != ENVELOPED,
        _ => false,
    };
    if !shape_ok {
        return Err(refuse(
            Reason::SignatureInvalid,
            format!(
                "{t_path} must be the enveloped-signature transform, optionally followed by Canonical XML 1.0"
            ),
        ));
    }
    let digest_method = algorithm(
        expect(rest, 0, "DigestMethod", r_path)?,
        &format!("{r_path}/ds:DigestMethod"),
        &[SHA256, SHA1],
    )?;
    let digest_value = base64_of(
        expect(rest, 1, "DigestValue", r_path)?,
        &format!("{r_path}/ds:DigestValue"),
    )?;
    if rest.len() > 2 {
        return Err(refuse(
            Reason::SignatureInvalid,
            format!("{r_path}/ds:{} is not accepted", rest[2].local),
        ));
    }
    let signature_value = base64_of(value, "ds:Signature/ds:SignatureValue")?;
    let certificate = match key_info {
        None => None,
        Some(key_info) => {
            let k_path = "ds:Signature/ds:KeyInfo";
            let kc = dsig_children(key_info, k_path)?;
            let data = kc.iter().find(|e| e.local == "X509Data");
            match data {
                None => None,
                Some(data) => {
                    let x_path = format!("{k_path}/ds:X509Data");
                    let certs: Vec<&Element> = dsig_children(data, &x_path)?
                        .into_iter()
                        .filter(|e| e.local == "X509Certificate")
                        .collect();
                    match certs.as_slice() {
                        [] => None,
                        [one] => Some(base64_of(one, &format!("{x_path}/ds:X509Certificate"))?),
                        _ => {
                            return Err(refuse(
                                Reason::SignatureInvalid,
                                format!("{x_path} holds more than one ds:X509Certificate"),
                            ));
                        }
                    }
                }
            }
        }
    };
    Ok(Parts {
        canonicalization,
        signature_method,
        digest_method,
        digest_value,
        signature_value,
        certificate,
    })
}

fn digest(method: &str, data: &[u8]) -> Result<Vec<u8>, VerifyError> {
    let md = if method == SHA1 {
        MessageDigest::sha1()
    } else {
        MessageDigest::sha256()
    };
    hash(md, data)
        .map(|d| d.to_vec())
        .map_err(|e| refuse(Reason::SignatureInvalid, format!("digest failed: {e}")))
}

fn check_signature(
    key: &PKey<Public>,
    method: &str,
    data: &[u8],
    value: &[u8],
) -> Result<bool, openssl::error::ErrorStack> {
    let (md, der);
    let signature: &[u8] = match (method, key.id()) {
        (RSA_SHA1, Id::RSA) => {
            md = MessageDigest::sha1();
            value
        }
        (RSA_SHA256, Id::RSA) => {
            md = MessageDigest::sha256();
            value
        }
        (ECDSA_SHA256, Id::EC) => {
            md = MessageDigest::sha256();
            // XML Signature's ECDSA value is r || s, each as long as the curve's order.
            if !value.len().is_multiple_of(2) || value.is_empty() {
                return Ok(false);
            }
            let (r, s) = value.split_at(value.len() / 2);
            let sig =
                EcdsaSig::from_private_components(BigNum::from_slice(r)?, BigNum::from_slice(s)?)?;
            der = sig.to_der()?;
            &der
        }
        _ => return Ok(false),
    };
    let mut verifier = openssl::sign::Verifier::new(md, key)?;
    verifier.update(data)?;
    verifier.verify(signature)
}

/// Why a signing certificate and key cannot be used, or a document cannot be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("the signing certificate is not a PEM certificate: {0}")]
    Certificate(String),
    #[error("the signing key is not a PEM private key: {0}")]
    Key(String),
    #[error("the signing key does not belong to the signing certificate")]
    KeyMismatch,
    #[error(
        "the signing key is neither RSA of at least 2048 bits nor ECDSA on P-256 (rsa-sha256 or ecdsa-sha256)"
    )]
    KeyType,
    #[error("the document cannot be signed: {0}")]
    Document(String),
    #[error("the document cannot be signed: {0}")]
    Xml(#[from] XmlError),
    #[error("signing failed: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
}

/// A `[documents]` signing certificate and its key. The key never appears in `Debug`.
pub struct Signer {
    certificate_der: Vec<u8>,
    key: PKey<Private>,
    method: &'static str,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Reads the certificate (the first PEM block) and the private key (PKCS #8, or
    /// traditional RSA/EC PEM) and checks they belong together.
    pub fn from_pem(certificate_pem: &[u8], key_pem: &[u8]) -> Result<Signer, SignError> {
        let certificate =
            X509::from_pem(certificate_pem).map_err(|e| SignError::Certificate(e.to_string()))?;
        let key = PKey::private_key_from_pem(key_pem).map_err(|e| SignError::Key(e.to_string()))?;
        let public = certificate
            .public_key()
            .map_err(|e| SignError::Certificate(e.to_string()))?;
        if !public.public_eq(&key) {
            return Err(SignError::KeyMismatch);
        }
        let method = match key.id() {
            Id::RSA if key.bits() >= 2048 => RSA_SHA256,
            Id::EC => {
                let curve = key.ec_key().ok().and_then(|k| k.group().curve_name());
                if curve != Some(Nid::X9_62_PRIME256V1) {
                    return Err(SignError::KeyType);
                }
                ECDSA_SHA256
            }
            _ => return Err(SignError::KeyType),
        };
        Ok(Signer {
            certificate_der: certificate.to_der()?,
            key,
            method,
        })
    }

    /// The signature algorithm's URI (`rsa-sha256` or `ecdsa-sha256`).
    pub fn signature_method(&self) -> &'static str {
        self.method
    }

    /// The certificate, to check what was signed.
    pub fn certificate(&self) -> Result<X509, SignError> {
        Ok(X509::from_der(&self.certificate_der)?)
    }

    fn sign_bytes(&self, data: &[u8]) -> Result<Vec<u8>, SignError> {
        let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), &self.key)?;
        signer.update(data)?;
        let signature = signer.sign_to_vec()?;
        if self.method != ECDSA_SHA256 {
            return Ok(signature);
        }
        // DER (OpenSSL) to r || s, 32 bytes each on P-256 (XML Signature 1.1 §6.4.3).
        let sig = EcdsaSig::from_der(&signature)?;
        let mut out = sig.r().to_vec_padded(32)?;
        out.extend(sig.s().to_vec_padded(32)?);
        Ok(out)
    }
}

/// The signature element's text, `SignatureValue` left as `{value}` for the caller.
fn signature_xml(method: &str, digest: &[u8], certificate: &[u8]) -> (String, String) {
    let signed_info = format!(
        "<SignedInfo><CanonicalizationMethod Algorithm=\"{C14N}\"/><SignatureMethod Algorithm=\"{method}\"/><Reference URI=\"\"><Transforms><Transform Algorithm=\"{ENVELOPED}\"/></Transforms><DigestMethod Algorithm=\"{SHA256}\"/><DigestValue>{}</DigestValue></Reference></SignedInfo>",
        STANDARD.encode(digest)
    );
    let key_info = format!(
        "<KeyInfo><X509Data><X509Certificate>{}</X509Certificate></X509Data></KeyInfo>",
        STANDARD.encode(certificate)
    );
    (signed_info, key_info)
}

/// Signs a UTF-8 document: an enveloped `Signature` (in the default-namespace form EMREX
/// implementations write) becomes the last child of the root; nothing else changes. The
/// result is verified with the signer's own certificate before it is returned.
pub fn sign(document: &[u8], signer: &Signer, limits: &Limits) -> Result<Vec<u8>, SignError> {
    if std::str::from_utf8(document).is_err() {
        return Err(SignError::Document(
            "only UTF-8 documents are signed".into(),
        ));
    }
    let doc = c14n::parse(document, limits)?;
    if count_signatures(&doc.root) > 0 {
        return Err(SignError::Document(format!(
            "/{} already holds a ds:Signature",
            doc.root.qname
        )));
    }
    let digest = hash(
        MessageDigest::sha256(),
        &doc.canonical(Comments::Omit, None),
    )?;
    let (signed_info, key_info) = signature_xml(signer.method, &digest, &signer.certificate_der);
    let end = root_end_tag(document, &doc)?;
    // Each tree is several times the document: none outlives its use (the self-check below
    // parses a third time), so one signature holds one tree at a time.
    drop(doc);
    let open = format!("<Signature xmlns=\"{DSIG_NAMESPACE}\">");
    // SignedInfo is canonicalized in its place: the namespaces in scope there are the root's
    // and the Signature's default, so render it from a parse of the document with the
    // signature in place (SignatureValue empty; it is outside SignedInfo).
    let mut draft = Vec::with_capacity(document.len() + 4096);
    draft.extend_from_slice(&document[..end]);
    draft.extend_from_slice(open.as_bytes());
    draft.extend_from_slice(signed_info.as_bytes());
    draft.extend_from_slice(b"<SignatureValue></SignatureValue>");
    let value_at = draft.len() - "</SignatureValue>".len();
    draft.extend_from_slice(key_info.as_bytes());
    draft.extend_from_slice(b"</Signature>");
    draft.extend_from_slice(&document[end..]);
    let placed = c14n::parse(&draft, limits)?;
    let index = placed.root.elements().count().saturating_sub(1);
    let canonical_signed_info = placed
        .canonical_subtree(&[index, 0], Comments::Omit)
        .ok_or_else(|| SignError::Document("the signature was not placed in the root".into()))?;
    drop(placed);
    let value = STANDARD.encode(signer.sign_bytes(&canonical_signed_info)?);
    let mut signed = Vec::with_capacity(draft.len() + value.len());
    signed.extend_from_slice(&draft[..value_at]);
    signed.extend_from_slice(value.as_bytes());
    signed.extend_from_slice(&draft[value_at..]);
    drop(draft);
    let own = [signer.certificate()?];
    verify(
        &signed,
        Policy {
            trust: Trust::Pinned(&own),
            allow_sha1: false,
        },
        limits,
    )
    .map_err(|e| SignError::Document(format!("the signed document does not verify: {e}")))?;
    Ok(signed)
}

/// Byte offset of the root's end tag (`</name>`), found from the end: only comments,
/// processing instructions and whitespace may follow it.
fn root_end_tag(document: &[u8], doc: &Document) -> Result<usize, SignError> {
    let needle = format!("</{}", doc.root.qname);
    let text = std::str::from_utf8(document)
        .map_err(|_| SignError::Document("only UTF-8 documents are signed".into()))?;
    let at = text.rfind(&needle).ok_or_else(|| {
        SignError::Document(format!(
            "the root /{} has no end tag (an empty root cannot hold a signature)",
            doc.root.qname
        ))
    })?;
    Ok(at)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn signer(kind: &str) -> Signer {
        let key = match kind {
            "rsa" => PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap(),
            _ => {
                let group = openssl::ec::EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
                PKey::from_ec_key(openssl::ec::EcKey::generate(&group).unwrap()).unwrap()
            }
        };
        let mut name = openssl::x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "test signer").unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&openssl::asn1::Asn1Time::from_unix(0).unwrap())
            .unwrap();
        b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        let cert = b.build();
        Signer::from_pem(
            &cert.to_pem().unwrap(),
            &key.private_key_to_pem_pkcs8().unwrap(),
        )
        .unwrap()
    }

    const DOC: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<e:elmo xmlns:e=\"urn:e\" xmlns:xsi=\"urn:i\"><e:a b=\"1\">x &amp; y</e:a><!-- c --></e:elmo>\n";

    fn check(signed: &[u8], signer: &Signer) -> Result<Verified, VerifyError> {
        let own = [signer.certificate().unwrap()];
        verify(
            signed,
            Policy {
                trust: Trust::Pinned(&own),
                allow_sha1: false,
            },
            &Limits::default(),
        )
    }

    #[test]
    fn signs_with_rsa_and_ecdsa_and_verifies() {
        for kind in ["rsa", "ec"] {
            let s = signer(kind);
            let signed = sign(DOC.as_bytes(), &s, &Limits::default()).unwrap();
            let v = check(&signed, &s).unwrap();
            assert_eq!(v.signature_method, s.signature_method());
            let text = String::from_utf8(signed.clone()).unwrap();
            assert!(text.ends_with("</Signature></e:elmo>\n"), "{text}");
            // Another signer's pin refuses it.
            let other = signer(kind);
            assert_eq!(
                check(&signed, &other).unwrap_err().reason,
                Reason::UnknownSigner
            );
        }
    }

    #[test]
    fn a_changed_byte_is_refused() {
        let s = signer("rsa");
        let signed =
            String::from_utf8(sign(DOC.as_bytes(), &s, &Limits::default()).unwrap()).unwrap();
        let content = signed.replace("x &amp; y", "x &amp; z");
        assert_eq!(
            check(content.as_bytes(), &s).unwrap_err().reason,
            Reason::DigestMismatch
        );
        let attribute = signed.replace("b=\"1\"", "b=\"2\"");
        assert_eq!(
            check(attribute.as_bytes(), &s).unwrap_err().reason,
            Reason::DigestMismatch
        );
        let method = signed.replace("<Transform Algorithm", "<Transform  Algorithm");
        assert!(
            check(method.as_bytes(), &s).is_ok(),
            "whitespace inside a tag is not signed content"
        );
        let unsigned = DOC;
        assert_eq!(
            check(unsigned.as_bytes(), &s).unwrap_err().reason,
            Reason::SignatureMissing
        );
        // A comment is not part of the URI="" node-set.
        let comment = signed.replace("<!-- c -->", "<!-- d -->");
        assert!(check(comment.as_bytes(), &s).is_ok());
    }

    #[test]
    fn signing_twice_is_refused() {
        let s = signer("rsa");
        let signed = sign(DOC.as_bytes(), &s, &Limits::default()).unwrap();
        assert!(matches!(
            sign(&signed, &s, &Limits::default()),
            Err(SignError::Document(_))
        ));
    }
}

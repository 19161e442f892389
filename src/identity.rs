//! Client certificate → participant.
//!
//! Owns: matching the end-entity certificate of a verified TLS client chain against the
//! directory's identity rules ([`identify`]), the [`AuthenticatedParticipant`] that only a
//! successful match produces, a short non-secret [`CertificateSummary`] for the audit trail, and
//! the table of distinguished-name attribute types shared with the config loader.
//!
//! It must not verify chains, validity periods or revocation: rustls has done that (with the
//! CRLs of `gateway.crl`) before a certificate reaches [`identify`]. It does no IO.

use std::ops::Deref;

use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::x509::AttributeTypeAndValue;

use crate::clock::hex;
use crate::config::{Directory, IdentityRule, Participant};

/// Distinguished-name attribute types: canonical (upper-case) short name, accepted aliases
/// (compared case-insensitively), and OID.
const ATTRIBUTES: &[(&str, &[&str], &str)] = &[
    ("CN", &["CN", "COMMONNAME"], "2.5.4.3"),
    ("SN", &["SN", "SURNAME"], "2.5.4.4"),
    ("SERIALNUMBER", &["SERIALNUMBER"], "2.5.4.5"),
    ("C", &["C", "COUNTRYNAME"], "2.5.4.6"),
    ("L", &["L", "LOCALITYNAME"], "2.5.4.7"),
    ("ST", &["ST", "S", "STATEORPROVINCENAME"], "2.5.4.8"),
    ("STREET", &["STREET", "STREETADDRESS"], "2.5.4.9"),
    ("O", &["O", "ORGANIZATIONNAME"], "2.5.4.10"),
    ("OU", &["OU", "ORGANIZATIONALUNITNAME"], "2.5.4.11"),
    ("TITLE", &["TITLE"], "2.5.4.12"),
    ("POSTALCODE", &["POSTALCODE"], "2.5.4.17"),
    ("GN", &["GN", "GIVENNAME"], "2.5.4.42"),
    (
        "ORGANIZATIONIDENTIFIER",
        &["ORGANIZATIONIDENTIFIER"],
        "2.5.4.97",
    ),
    ("UID", &["UID", "USERID"], "0.9.2342.19200300.100.1.1"),
    (
        "DC",
        &["DC", "DOMAINCOMPONENT"],
        "0.9.2342.19200300.100.1.25",
    ),
    (
        "EMAILADDRESS",
        &["EMAILADDRESS", "EMAIL", "E"],
        "1.2.840.113549.1.9.1",
    ),
];

/// The canonical name of an attribute type written in a subject string: a known short name or
/// alias in any case, or a dotted OID (optionally `OID.`-prefixed; known OIDs map to their short
/// name). `None` for anything else.
pub fn canonical_attribute_name(written: &str) -> Option<String> {
    let upper = written.trim().to_ascii_uppercase();
    if let Some((name, _, _)) = ATTRIBUTES
        .iter()
        .find(|(_, aliases, _)| aliases.contains(&upper.as_str()))
    {
        return Some((*name).to_owned());
    }
    let oid = upper.strip_prefix("OID.").unwrap_or(&upper);
    let is_dotted = oid.split('.').count() >= 2
        && oid
            .split('.')
            .all(|arc| !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()));
    is_dotted.then(|| attribute_name_for_oid(oid))
}

/// The canonical name of an attribute OID (dotted): its short name when known, else the OID.
pub fn attribute_name_for_oid(oid: &str) -> String {
    ATTRIBUTES
        .iter()
        .find(|(_, _, o)| *o == oid)
        .map_or_else(|| oid.to_owned(), |(name, _, _)| (*name).to_owned())
}

/// The dotted OID of a canonical attribute name (as [`canonical_attribute_name`] returns).
pub fn attribute_oid(canonical: &str) -> Option<&'static str> {
    if let Some((_, _, oid)) = ATTRIBUTES.iter().find(|(name, _, _)| *name == canonical) {
        return Some(oid);
    }
    None
}

/// Why a client certificate does not identify a participant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("no client certificate was presented")]
    NoCertificate,
    #[error("the client certificate cannot be parsed: {0}")]
    Unparsable(String),
    #[error("the client certificate ({subject}) matches no participant")]
    UnknownParticipant { subject: String },
    #[error("the client certificate ({subject}) matches more than one participant: {}", participants.join(", "))]
    AmbiguousParticipant {
        subject: String,
        participants: Vec<String>,
    },
}

impl IdentityError {
    /// A stable short code for API errors and audit entries.
    pub fn code(&self) -> &'static str {
        match self {
            IdentityError::NoCertificate => "no_client_certificate",
            IdentityError::Unparsable(_) => "bad_client_certificate",
            IdentityError::UnknownParticipant { .. } => "unknown_participant",
            IdentityError::AmbiguousParticipant { .. } => "ambiguous_participant",
        }
    }
}

/// A short, non-secret description of a certificate, for audit entries and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSummary {
    /// The subject distinguished name as text (RFC 4514-like, as x509-parser prints it).
    pub subject: String,
    /// The serial number, lower-case hex of its DER bytes.
    pub serial_hex: String,
    /// SHA-256 of the SubjectPublicKeyInfo, lower-case hex (what an `spki_sha256` rule pins).
    pub spki_sha256_hex: String,
}

/// A participant proven by its client certificate. Only [`identify`] makes one.
#[derive(Debug, Clone)]
pub struct AuthenticatedParticipant {
    participant: Participant,
    certificate: CertificateSummary,
}

impl AuthenticatedParticipant {
    pub fn participant(&self) -> &Participant {
        &self.participant
    }

    /// The certificate that proved it.
    pub fn certificate(&self) -> &CertificateSummary {
        &self.certificate
    }
}

impl Deref for AuthenticatedParticipant {
    type Target = Participant;

    fn deref(&self) -> &Participant {
        &self.participant
    }
}

/// What identity rules look at, extracted once from the certificate.
struct Presented {
    /// `(canonical type, value)` of every subject attribute, sorted; attributes whose value is
    /// not a string type are left out (they can never equal a configured string).
    subject: Vec<(String, String)>,
    san_uris: Vec<String>,
    san_dns: Vec<String>,
    spki_sha256: [u8; 32],
    summary: CertificateSummary,
}

fn attribute_text(attr: &AttributeTypeAndValue<'_>) -> Option<String> {
    if let Ok(s) = attr.as_str() {
        return Some(s.to_owned());
    }
    // BMPString (UTF-16BE) is allowed in older certificates.
    let tag = attr.attr_value().tag();
    if tag == x509_parser::der_parser::asn1_rs::Tag::BmpString {
        let bytes = attr.as_slice();
        if !bytes.len().is_multiple_of(2) {
            return None;
        }
        let units: Vec<u16> = bytes
            .chunks(2)
            .map(|p| u16::from_be_bytes([p[0], p[1]]))
            .collect();
        return String::from_utf16(&units).ok();
    }
    None
}

fn presented(cert: &X509Certificate<'_>) -> Result<Presented, IdentityError> {
    let mut subject: Vec<(String, String)> = cert
        .subject()
        .iter_rdn()
        .flat_map(|rdn| rdn.iter())
        .filter_map(|attr| {
            let name = attribute_name_for_oid(&attr.attr_type().to_id_string());
            attribute_text(attr).map(|v| (name, v))
        })
        .collect();
    subject.sort();
    let mut san_uris = Vec::new();
    let mut san_dns = Vec::new();
    let san = cert
        .subject_alternative_name()
        .map_err(|e| IdentityError::Unparsable(format!("subject alternative name: {e}")))?;
    if let Some(san) = san {
        for name in &san.value.general_names {
            match name {
                GeneralName::URI(u) => san_uris.push((*u).to_owned()),
                GeneralName::DNSName(d) => {
                    san_dns.push(d.trim_end_matches('.').to_ascii_lowercase())
                }
                _ => {}
            }
        }
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.public_key().raw);
    let mut spki_sha256 = [0u8; 32];
    spki_sha256.copy_from_slice(digest.as_ref());
    let summary = CertificateSummary {
        subject: cert.subject().to_string(),
        serial_hex: hex(cert.raw_serial()),
        spki_sha256_hex: hex(&spki_sha256),
    };
    Ok(Presented {
        subject,
        san_uris,
        san_dns,
        spki_sha256,
        summary,
    })
}

fn matches(rule: &IdentityRule, p: &Presented) -> bool {
    match rule {
        // Both lists are sorted; equality is set equality (duplicates were refused at load).
        IdentityRule::Subject(attrs) => {
            let mut presented = p.subject.clone();
            presented.dedup();
            *attrs == presented
        }
        IdentityRule::SanUri(uri) => p.san_uris.iter().any(|u| u == uri),
        IdentityRule::SanDns(name) => p.san_dns.iter().any(|d| d.eq_ignore_ascii_case(name)),
        IdentityRule::SpkiSha256(pin) => {
            // The hash of a public key is not secret: a plain comparison is fine.
            *pin == p.spki_sha256
        }
    }
}

/// Describes a certificate for the audit trail.
pub fn describe(cert: &CertificateDer<'_>) -> Result<CertificateSummary, IdentityError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| IdentityError::Unparsable(e.to_string()))?;
    Ok(presented(&parsed)?.summary)
}

/// Maps a verified client chain (end-entity certificate first, as rustls gives it) to the one
/// participant whose identity rule it satisfies.
pub fn identify(
    directory: &Directory,
    chain: &[CertificateDer<'_>],
) -> Result<AuthenticatedParticipant, IdentityError> {
    let end_entity = chain.first().ok_or(IdentityError::NoCertificate)?;
    let (_, parsed) = x509_parser::parse_x509_certificate(end_entity)
        .map_err(|e| IdentityError::Unparsable(e.to_string()))?;
    let presented = presented(&parsed)?;
    let found: Vec<&Participant> = directory
        .iter()
        .filter(|participant| matches(&participant.identity, &presented))
        .collect();
    match found.as_slice() {
        [one] => Ok(AuthenticatedParticipant {
            participant: (*one).clone(),
            certificate: presented.summary,
        }),
        [] => Err(IdentityError::UnknownParticipant {
            subject: presented.summary.subject,
        }),
        many => Err(IdentityError::AmbiguousParticipant {
            subject: presented.summary.subject,
            participants: many.iter().map(|p| p.id.clone()).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{SeededRandom, Timestamp};
    use crate::config::{Directory, Role, parse_subject};
    use crate::pki::{AltName, DevCa, IssuedCert, Usage};
    use std::time::Duration;

    const NOW: Timestamp = Timestamp::from_secs(1_790_000_000);

    fn ca() -> DevCa {
        DevCa::generate(
            "CN=Test CA,C=FI",
            NOW,
            NOW.saturating_add(Duration::from_secs(86_400)),
            &SeededRandom::new(21),
        )
        .expect("ca")
    }

    fn issue(ca: &DevCa, subject: &str, alt: &[AltName]) -> IssuedCert {
        ca.issue(
            subject,
            alt,
            Usage::Client,
            NOW,
            NOW.saturating_add(Duration::from_secs(3600)),
            &SeededRandom::new(subject.len() as u64 + 1),
        )
        .expect("issue")
    }

    fn participant(id: &str, identity: IdentityRule) -> Participant {
        Participant {
            id: id.to_owned(),
            roles: vec![Role::Eservice],
            identity,
            endpoint: None,
        }
    }

    fn subject_rule(s: &str) -> IdentityRule {
        IdentityRule::Subject(parse_subject(s).expect("subject"))
    }

    fn spki_pin(cert: &IssuedCert) -> [u8; 32] {
        let summary = describe(&cert.der).expect("describe");
        let bytes = crate::clock::unhex(&summary.spki_sha256_hex).expect("hex");
        bytes.try_into().expect("32 bytes")
    }

    #[test]
    fn each_rule_kind_identifies_its_participant() {
        let ca = ca();
        let turku = issue(&ca, "CN=turku-education,O=Turun kaupunki,C=FI", &[]);
        let virta = issue(
            &ca,
            "CN=virta",
            &[AltName::Uri("urn:siirto:participant:virta".to_owned())],
        );
        let portal = issue(
            &ca,
            "CN=portal",
            &[AltName::Dns("Eservice.Siirto.Test".to_owned())],
        );
        let pinned = issue(&ca, "CN=pinned", &[]);
        let directory = Directory::from_participants(vec![
            participant(
                "turku",
                subject_rule("C=FI, O=Turun kaupunki, CN=turku-education"),
            ),
            participant(
                "virta",
                IdentityRule::SanUri("urn:siirto:participant:virta".to_owned()),
            ),
            participant(
                "eservice",
                IdentityRule::SanDns("eservice.siirto.test".to_owned()),
            ),
            participant("pinned", IdentityRule::SpkiSha256(spki_pin(&pinned))),
        ]);
        for (cert, id) in [
            (&turku, "turku"),
            (&virta, "virta"),
            (&portal, "eservice"),
            (&pinned, "pinned"),
        ] {
            let who = identify(&directory, std::slice::from_ref(&cert.der))
                .unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(who.id, id);
            assert_eq!(who.certificate().serial_hex, hex(&cert.serial));
            assert_eq!(who.certificate().spki_sha256_hex.len(), 64);
        }
    }

    #[test]
    fn subject_must_hold_exactly_the_configured_attributes() {
        let ca = ca();
        let directory = Directory::from_participants(vec![participant(
            "turku",
            subject_rule("CN=turku-education,O=Turun kaupunki,C=FI"),
        )]);
        for subject in [
            "CN=turku-education,O=Turun kaupunki",              // fewer
            "CN=turku-education,O=Turun kaupunki,C=FI,L=Turku", // more
            "CN=turku-education,O=turun kaupunki,C=FI",         // value differs in case
            "CN=turku-educatio,O=Turun kaupunki,C=FI",          // value differs
        ] {
            let cert = issue(&ca, subject, &[]);
            let err = identify(&directory, std::slice::from_ref(&cert.der)).expect_err(subject);
            assert_eq!(err.code(), "unknown_participant", "{subject}");
        }
    }

    #[test]
    fn no_certificate_garbage_and_ambiguity_are_distinct_errors() {
        let ca = ca();
        let cert = issue(&ca, "CN=both", &[AltName::Uri("urn:x".to_owned())]);
        let directory = Directory::from_participants(vec![
            participant("a", subject_rule("CN=both")),
            participant("b", IdentityRule::SanUri("urn:x".to_owned())),
        ]);
        let err = identify(&directory, std::slice::from_ref(&cert.der)).expect_err("ambiguous");
        assert_eq!(err.code(), "ambiguous_participant");
        assert!(err.to_string().contains("a, b"), "{err}");
        assert_eq!(
            identify(&directory, &[]).expect_err("none").code(),
            "no_client_certificate"
        );
        let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
        assert_eq!(
            identify(&directory, &[garbage])
                .expect_err("garbage")
                .code(),
            "bad_client_certificate"
        );
    }

    #[test]
    fn san_dns_rule_ignores_case_and_san_uri_does_not() {
        let ca = ca();
        let cert = issue(
            &ca,
            "CN=x",
            &[
                AltName::Dns("PORTAL.example.FI".to_owned()),
                AltName::Uri("urn:Case".to_owned()),
            ],
        );
        let dns = Directory::from_participants(vec![participant(
            "p",
            IdentityRule::SanDns("portal.example.fi".to_owned()),
        )]);
        assert!(identify(&dns, std::slice::from_ref(&cert.der)).is_ok());
        let uri = Directory::from_participants(vec![participant(
            "p",
            IdentityRule::SanUri("urn:case".to_owned()),
        )]);
        assert!(identify(&uri, std::slice::from_ref(&cert.der)).is_err());
    }

    #[test]
    fn attribute_names_normalize() {
        assert_eq!(canonical_attribute_name("cn").as_deref(), Some("CN"));
        assert_eq!(
            canonical_attribute_name("emailAddress").as_deref(),
            Some("EMAILADDRESS")
        );
        assert_eq!(canonical_attribute_name("2.5.4.10").as_deref(), Some("O"));
        assert_eq!(
            canonical_attribute_name("OID.1.2.3").as_deref(),
            Some("1.2.3")
        );
        assert_eq!(canonical_attribute_name("1."), None);
        assert_eq!(canonical_attribute_name("nonsense"), None);
        assert_eq!(attribute_oid("DC"), Some("0.9.2342.19200300.100.1.25"));
        assert_eq!(attribute_name_for_oid("2.5.4.11"), "OU");
    }

    #[test]
    fn summary_describes_without_secrets() {
        let ca = ca();
        let cert = issue(&ca, "CN=turku-education,O=Turun kaupunki,C=FI", &[]);
        let s = describe(&cert.der).expect("describe");
        assert!(s.subject.contains("CN=turku-education"), "{}", s.subject);
        assert_eq!(s.serial_hex, hex(&cert.serial));
    }
}

//! Who the participants are, and which client certificate is whom.
//!
//! Owns: the participant [`Directory`] and what it holds ([`Participant`], [`Role`],
//! [`IdentityRule`], [`Endpoint`]); subject strings of identity rules ([`parse_subject`],
//! [`format_subject`], [`SubjectError`]) and the table of distinguished-name attribute types
//! they use; matching the end-entity certificate of a verified TLS client chain against the
//! directory's identity rules ([`identify`]), the [`AuthenticatedParticipant`] that only a
//! successful match produces, and a short non-secret [`CertificateSummary`] for the audit
//! trail. The config loader (`siirto_gateway::config`) only calls into this module: it parses
//! `[[participants]]` into these types and checks them.
//!
//! It must not verify chains, validity periods or revocation: rustls has done that (with the
//! CRLs of `gateway.crl`) before a certificate reaches [`identify`]. It does no IO.

use std::ops::Deref;
use std::path::PathBuf;

use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::x509::AttributeTypeAndValue;

use crate::clock::hex;
use crate::consent::StatutoryRules;
use crate::formats::Format;
use crate::lang::Localized;
use crate::protocol::SourceProtocol;

/// What a participant may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Source,
    Destination,
    Eservice,
    Operator,
    /// Another gateway whose audit log this gateway witnesses (`POST /witness/add-checkpoint`).
    Log,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Source,
        Role::Destination,
        Role::Eservice,
        Role::Operator,
        Role::Log,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Destination => "destination",
            Role::Eservice => "eservice",
            Role::Operator => "operator",
            Role::Log => "log",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// How a client certificate is matched to a participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityRule {
    /// The certificate's subject holds exactly these attributes (short type name upper-cased,
    /// e.g. `CN`, `O`, `OU`, `C`; value as written), in any order.
    Subject(Vec<(String, String)>),
    /// A `uniformResourceIdentifier` subject alternative name equal to this.
    SanUri(String),
    /// A `dNSName` subject alternative name equal to this (ASCII case-insensitive).
    SanDns(String),
    /// SHA-256 of the certificate's SubjectPublicKeyInfo (DER).
    SpkiSha256([u8; 32]),
}

/// Where the gateway reaches a source or destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https://host[:port][/prefix]`, without a trailing slash.
    pub base_url: String,
    /// Host part of `base_url` (DNS name or IP literal), the name the server certificate must hold.
    pub host: String,
    pub port: u16,
    /// The CA bundle the participant's server certificate must chain to.
    pub server_ca: PathBuf,
    /// The record format it serves or accepts.
    pub format: Format,
    /// How a source is asked for a record (`protocol`; destinations are always called with
    /// Siirto's own `POST /records`).
    pub protocol: SourceProtocol,
}

/// One `[[participants]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    pub id: String,
    pub roles: Vec<Role>,
    pub identity: IdentityRule,
    /// Present exactly when the participant is a source or a destination.
    pub endpoint: Option<Endpoint>,
    /// `name = { fi, sv, en }`: how texts, pages and receipts name it (required for sources and
    /// destinations).
    pub name: Option<Localized>,
    /// What a destination receives by law, without consent (`statutory_*`), if anything.
    pub statutory: Option<StatutoryRules>,
    /// `redirect_uris` of an e-service: where KOSKI OmaData may return the person (as
    /// registered at KOSKI).
    pub redirect_uris: Vec<String>,
}

impl Participant {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// Every known participant, with unique ids.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    participants: Vec<Participant>,
}

impl Directory {
    /// Used by the config loader (`siirto_gateway::config`, which checks that ids are unique
    /// and identity rules unambiguous) and by tests.
    pub fn from_participants(participants: Vec<Participant>) -> Directory {
        Directory { participants }
    }

    pub fn get(&self, id: &str) -> Option<&Participant> {
        self.participants.iter().find(|p| p.id == id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Participant> {
        self.participants.iter()
    }
}

impl Directory {
    /// How many participants there are.
    pub fn len(&self) -> usize {
        self.participants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }
}
// ---------------------------------------------------------------------------------------------
// Subject strings

/// Why a `subject` string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    #[error("subject is empty")]
    Empty,
    #[error("attribute {0} has no `=`")]
    NoEquals(usize),
    #[error("attribute {0} has an empty type")]
    EmptyType(usize),
    #[error(
        "unknown attribute type \"{0}\" (use CN, O, OU, C, L, ST, SERIALNUMBER, DC, emailAddress, ... or a dotted OID)"
    )]
    UnknownType(String),
    #[error("attribute {0} has an empty value")]
    EmptyValue(usize),
    #[error("attribute {0} ends with a lone backslash or has a bad escape")]
    BadEscape(usize),
    #[error("attribute {0} is not UTF-8 after unescaping")]
    NotUtf8(usize),
    #[error("attribute {0} repeats an earlier one")]
    Duplicate(usize),
}

/// Parses `CN=turku-education,O=Turun kaupunki,C=FI` into `(TYPE, value)` pairs, sorted, so
/// that two subjects holding the same attributes compare equal whatever their order.
///
/// Attributes are separated by unescaped commas; spaces around a type or value are ignored.
/// Escapes: `\,` `\+` `\;` `\=` `\"` `\\` `\<` `\>` `\#` `\ ` and `\XX` (a hex byte of UTF-8).
/// Types are the usual short names in any case (`CN`, `O`, `OU`, `C`, `L`, `ST`, `STREET`,
/// `SERIALNUMBER`, `DC`, `UID`, `emailAddress`, `SN`, `GN`, `title`, `postalCode`,
/// `organizationIdentifier`) or dotted OIDs; they are normalized to the upper-case short name.
/// Attributes of a multi-valued RDN are written as separate comma-separated attributes.
pub fn parse_subject(s: &str) -> Result<Vec<(String, String)>, SubjectError> {
    let mut attributes = parse_subject_in_order(s)?;
    attributes.sort();
    Ok(attributes)
}

/// [`parse_subject`] without the sorting: attributes in the order written (for issuing
/// certificates whose subject should read as written).
pub fn parse_subject_in_order(s: &str) -> Result<Vec<(String, String)>, SubjectError> {
    if s.trim().is_empty() {
        return Err(SubjectError::Empty);
    }
    let mut parts: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                // Keep escapes intact for the value decoder; a trailing backslash is caught there.
                current.push('\\');
                if let Some(n) = chars.next() {
                    current.push(n);
                }
            }
            ',' => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);

    let mut out: Vec<(String, String)> = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let n = i + 1;
        let eq = find_unescaped(part, '=').ok_or(SubjectError::NoEquals(n))?;
        let ty = part[..eq].trim();
        if ty.is_empty() {
            return Err(SubjectError::EmptyType(n));
        }
        let name =
            canonical_attribute_name(ty).ok_or_else(|| SubjectError::UnknownType(ty.to_owned()))?;
        let value = unescape_value(part[eq + 1..].trim_start(), n)?;
        if value.is_empty() {
            return Err(SubjectError::EmptyValue(n));
        }
        if out.iter().any(|(t, v)| *t == name && *v == value) {
            return Err(SubjectError::Duplicate(n));
        }
        out.push((name, value));
    }
    Ok(out)
}

fn find_unescaped(s: &str, needle: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == needle {
            return Some(i);
        }
    }
    None
}

/// Decodes the escapes of one value; unescaped trailing spaces are dropped.
fn unescape_value(raw: &str, n: usize) -> Result<String, SubjectError> {
    let mut bytes: Vec<u8> = Vec::with_capacity(raw.len());
    // Length of `bytes` up to the last character that must be kept (escaped or non-space).
    let mut keep = 0;
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            let next = *b.get(i + 1).ok_or(SubjectError::BadEscape(n))?;
            let hex_pair = b.get(i + 2).copied().and_then(|lo| {
                let hi = char::from(next).to_digit(16)?;
                let lo = char::from(lo).to_digit(16)?;
                u8::try_from(hi * 16 + lo).ok()
            });
            if let Some(byte) = hex_pair {
                bytes.push(byte);
                i += 3;
            } else if b",+;=\"\\<># ".contains(&next) {
                bytes.push(next);
                i += 2;
            } else {
                return Err(SubjectError::BadEscape(n));
            }
            keep = bytes.len();
        } else {
            bytes.push(b[i]);
            if b[i] != b' ' {
                keep = bytes.len();
            }
            i += 1;
        }
    }
    bytes.truncate(keep);
    String::from_utf8(bytes).map_err(|_| SubjectError::NotUtf8(n))
}

/// Writes attributes back as a subject string that [`parse_subject`] reads to the same list.
pub fn format_subject(attributes: &[(String, String)]) -> String {
    let mut out = String::new();
    for (i, (ty, value)) in attributes.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(ty);
        out.push('=');
        for (j, c) in value.chars().enumerate() {
            let edge_space = c == ' ' && (j == 0 || j + 1 == value.chars().count());
            if matches!(c, ',' | '+' | ';' | '=' | '"' | '\\' | '<' | '>' | '#') || edge_space {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}
// ---------------------------------------------------------------------------------------------
// Certificates

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

/// Whether a verified client chain's end-entity certificate satisfies any of `rules` (e.g. the
/// certificate rules of `[[xroad.security_servers]]`), with the certificate's summary.
pub fn matches_any(
    rules: &[IdentityRule],
    chain: &[CertificateDer<'_>],
) -> Result<Option<CertificateSummary>, IdentityError> {
    let end_entity = chain.first().ok_or(IdentityError::NoCertificate)?;
    let (_, parsed) = x509_parser::parse_x509_certificate(end_entity)
        .map_err(|e| IdentityError::Unparsable(e.to_string()))?;
    let presented = presented(&parsed)?;
    Ok(rules
        .iter()
        .any(|r| matches(r, &presented))
        .then_some(presented.summary))
}

impl AuthenticatedParticipant {
    /// `participant`, acting through an intermediary whose certificate is `certificate` (an
    /// X-Road security server that named the participant as its client).
    pub fn through(participant: Participant, certificate: CertificateSummary) -> Self {
        AuthenticatedParticipant {
            participant,
            certificate,
        }
    }
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
    use proptest::prelude::*;

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
    fn subjects_parse_as_sets() {
        let table: &[(&str, &[(&str, &str)])] = &[
            (
                "CN=turku-education,O=Turun kaupunki,C=FI",
                &[
                    ("C", "FI"),
                    ("CN", "turku-education"),
                    ("O", "Turun kaupunki"),
                ],
            ),
            (
                "C=FI, O=Turun kaupunki ,  CN=turku-education",
                &[
                    ("C", "FI"),
                    ("CN", "turku-education"),
                    ("O", "Turun kaupunki"),
                ],
            ),
            ("cn=a\\,b,o=x", &[("CN", "a,b"), ("O", "x")]),
            ("CN=\\C3\\A4iti", &[("CN", "äiti")]),
            ("CN=trailing\\ ", &[("CN", "trailing ")]),
            (
                "emailAddress=a@b.fi,E=c@d.fi",
                &[("EMAILADDRESS", "a@b.fi"), ("EMAILADDRESS", "c@d.fi")],
            ),
            (
                "2.5.4.3=x,OID.2.5.4.97=VATFI-123",
                &[("CN", "x"), ("ORGANIZATIONIDENTIFIER", "VATFI-123")],
            ),
            ("1.2.3.4=custom", &[("1.2.3.4", "custom")]),
            (
                "OU=a,OU=b,DC=example,DC=fi",
                &[("DC", "example"), ("DC", "fi"), ("OU", "a"), ("OU", "b")],
            ),
            (
                "SERIALNUMBER=123,ST=Uusimaa,L=Espoo",
                &[("L", "Espoo"), ("SERIALNUMBER", "123"), ("ST", "Uusimaa")],
            ),
        ];
        for (input, expected) in table {
            let got = parse_subject(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            let want: Vec<(String, String)> = expected
                .iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect();
            assert_eq!(got, want, "{input}");
        }
        let errors: &[(&str, SubjectError)] = &[
            ("", SubjectError::Empty),
            ("CN", SubjectError::NoEquals(1)),
            ("CN=a,=b", SubjectError::EmptyType(2)),
            ("XYZ=a", SubjectError::UnknownType("XYZ".to_owned())),
            ("CN=", SubjectError::EmptyValue(1)),
            ("CN=a\\", SubjectError::BadEscape(1)),
            ("CN=a\\q", SubjectError::BadEscape(1)),
            ("CN=\\FF", SubjectError::NotUtf8(1)),
            ("CN=a,CN=a", SubjectError::Duplicate(2)),
        ];
        for (input, expected) in errors {
            assert_eq!(parse_subject(input).as_ref(), Err(expected), "{input}");
        }
    }

    proptest! {
        #[test]
        fn formatted_subjects_parse_back(
            attrs in proptest::collection::btree_set(
                (prop::sample::select(vec!["CN", "O", "OU", "C", "L"]), "[ -~äöå]{1,12}"),
                1..5,
            )
        ) {
            let attrs: Vec<(String, String)> = attrs
                .into_iter()
                .map(|(t, v)| (t.to_owned(), v))
                .filter(|(_, v)| !v.trim().is_empty())
                .collect();
            prop_assume!(!attrs.is_empty());
            // Leading and trailing spaces are kept because format_subject escapes them.
            let text = format_subject(&attrs);
            let parsed = parse_subject(&text)
                .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            let mut want = attrs.clone();
            want.sort();
            prop_assert_eq!(parsed, want, "{}", text);
        }
    }
}

//! EMREX ELMO 1.7 (`https://github.com/emrex-eu/elmo-schemas/tree/v1`).
//!
//! Owns: reading an `elmo` document (one learner, reports per issuing institution, trees of
//! learning opportunities) into the model, and writing the model as ELMO. ELMO is a transcript
//! of records: it carries the learner and achievements, not study rights, mobility, term
//! registrations or support decisions, and the write report says so. No IO, no schema
//! validation, no signature handling (an `ds:Signature` is not carried; a converted document
//! is unsigned).
//!
//! Identifiers: a Finnish henkilötunnus travels as the learner identifier of type
//! `nationalIdentifier` (ELMO's "primary national identifier"), the oppijanumero as type
//! `oppijanumero`. Subject binding compares these with the authorization's `sub`.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::record::{
    Achievement, AchievementStatus, Address, CreditUnit, Credits, Grade, GradeScale, LocalizedText,
    PartRef, Provider, Student, StudentRecord, TypedId,
};
use crate::student_id::StudentId;
use siirto_xsd::dom::Element;

use super::codelists;
use super::codes;
use super::report::{ReadReport, WriteReport};
use super::xml_in::Node;
use super::xml_out::XmlOut;
use super::{Format, FormatError, WriteContext};

pub const NAMESPACE: &str = "https://github.com/emrex-eu/elmo-schemas/tree/v1";
/// Erasmus Without Paper address types, used by `learner/currentAddress`.
pub const ADDRESS_NAMESPACE: &str =
    "https://github.com/erasmus-without-paper/ewp-specs-types-address/tree/stable-v1";
const PREFIX: &str = "elmo:";

/// Learner identifier type carrying the henkilötunnus.
pub const NATIONAL_ID_TYPE: &str = "nationalIdentifier";
/// Learner identifier type carrying the oppijanumero.
pub const LEARNER_ID_TYPE: &str = "oppijanumero";
/// Issuer identifier type carrying the record's own provider key when no other identifier
/// equals it.
pub const PROVIDER_KEY_TYPE: &str = "siirto-key";
/// Issuer identifier type naming the source participant when the record names no provider.
pub const PARTICIPANT_TYPE: &str = "siirto-participant";
/// Learning-opportunity identifier type for codes (on the specification) and keys (on the
/// instance).
const LOCAL_TYPE: &str = "local";
/// The grading scheme id used for a result without `gradingSchemeLocalId`.
pub const UNSPECIFIED_SCHEME: &str = "unspecified";
/// Issuer identifier types in the order the reader prefers them as the provider key.
const PROVIDER_KEY_PREFERENCE: [&str; 5] = [
    super::virta::PROVIDER_CODE_TYPE,
    "organisaatio-oid",
    "schac",
    "erasmus",
    "pic",
];

/// The key the reader takes for a provider with these issuer identifiers.
fn preferred_key(identifiers: &[TypedId]) -> Option<&str> {
    PROVIDER_KEY_PREFERENCE
        .iter()
        .find_map(|t| identifiers.iter().find(|i| i.kind == *t))
        .or_else(|| identifiers.first())
        .map(|i| i.value.as_str())
}

/// Whether a value has the shape of a henkilötunnus (checksum not checked).
fn looks_like_henkilotunnus(value: &str) -> bool {
    let b = value.as_bytes();
    b.len() == 11
        && b[..6].iter().all(u8::is_ascii_digit)
        && matches!(b[6], b'+' | b'-' | b'A'..=b'F' | b'U'..=b'Y')
        && b[7..10].iter().all(u8::is_ascii_digit)
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

pub(crate) fn read(
    root: &Element,
    subject: &StudentId,
    report: &mut ReadReport,
) -> Result<StudentRecord, FormatError> {
    if root.namespace.as_deref() != Some(NAMESPACE) || root.local != "elmo" {
        return Err(FormatError::WrongDocument {
            format: Format::Elmo,
            found: super::root_name(root),
        });
    }
    let doc = Node::root(root, NAMESPACE, PREFIX);
    doc.note_rest(&["generatedDate", "learner", "report"], &[], report);
    let learner = doc.required("learner")?;
    let student = read_learner(&learner, report)?;
    if !super::is_subject(
        subject,
        student.henkilotunnus.as_deref(),
        student.learner_id.as_deref(),
    ) {
        let named = usize::from(
            student.henkilotunnus.is_some()
                || student.learner_id.is_some()
                || !student.other_ids.is_empty(),
        );
        return Err(super::mismatch(subject, named));
    }
    let mut record = StudentRecord {
        student,
        ..StudentRecord::default()
    };
    let mut generated = 0usize;
    for r in doc.all("report") {
        // Grading scheme descriptions are read as the names of scales they define.
        r.note_rest(
            &[
                "issuer",
                "learningOpportunitySpecification",
                "issueDate",
                "gradingScheme",
            ],
            &[],
            report,
        );
        let issuer = r.required("issuer")?;
        let Some(provider) = read_issuer(&issuer, report)? else {
            // The gateway's stand-in issuer for a record without providers names no provider.
            continue;
        };
        let key = provider.key.clone();
        if !record.providers.iter().any(|p| p.key == key) {
            record.providers.push(provider);
        }
        let schemes: Vec<(String, Option<String>)> = r
            .all("gradingScheme")
            .iter()
            .map(|g| {
                let id = g.attribute("localId").unwrap_or_default();
                let descriptions = g.all("description");
                let name = descriptions
                    .iter()
                    .find(|d| d.xml_lang().as_deref() == Some("en"))
                    .or_else(|| descriptions.first())
                    .and_then(Node::text);
                (id, name)
            })
            .collect();
        let mut reader = LosReader {
            provider: key,
            schemes: &schemes,
            report,
            generated: &mut generated,
            out: &mut record.achievements,
        };
        for los in r.all("learningOpportunitySpecification") {
            reader.read(&los)?;
        }
    }
    Ok(record)
}

fn read_learner(node: &Node<'_>, report: &mut ReadReport) -> Result<Student, FormatError> {
    node.note_rest(
        &[
            "citizenship",
            "identifier",
            "givenNames",
            "familyName",
            "bday",
            "currentAddress",
            "gender",
        ],
        &[],
        report,
    );
    let mut student = Student::default();
    for i in node.all("identifier") {
        let kind = i.required_attribute("type")?;
        let Some(value) = i.token() else { continue };
        let normalized = super::normalize_henkilotunnus(&value);
        if kind == NATIONAL_ID_TYPE
            && student.henkilotunnus.is_none()
            && looks_like_henkilotunnus(&normalized)
        {
            student.henkilotunnus = Some(normalized);
        } else if kind == LEARNER_ID_TYPE
            && student.learner_id.is_none()
            && value.starts_with("1.2.246.562.24.")
        {
            student.learner_id = Some(value);
        } else {
            student.other_ids.push(TypedId { kind, value });
        }
    }
    student.given_names = node.child_token("givenNames");
    student.family_name = node.child_token("familyName");
    student.birth_date = node.child_date("bday")?;
    if let Some(c) = node.child_token("citizenship") {
        student.citizenships.push(c);
    }
    if let Some(g) = node.first("gender") {
        let code = g.token().unwrap_or_default();
        let found = codes::GENDERS
            .from_elmo(&code)
            .ok_or_else(|| g.invalid("not an ISO 5218 code"))?;
        student.gender = Some(found.value);
    }
    if let Some(a) = node.first("currentAddress") {
        student.addresses.push(read_address(&a, report));
    }
    Ok(student)
}

fn read_address(node: &Node<'_>, report: &mut ReadReport) -> Address {
    let parts: Vec<&Element> = node
        .element
        .elements()
        .filter(|e| e.namespace.as_deref() == Some(ADDRESS_NAMESPACE))
        .collect();
    let text = |local: &str| -> Option<String> {
        parts
            .iter()
            .find(|e| e.local == local)
            .map(|e| e.text().trim().to_owned())
            .filter(|t| !t.is_empty())
    };
    let mut lines: Vec<String> = parts
        .iter()
        .filter(|e| e.local == "addressLine")
        .map(|e| e.text().trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    // The structured form becomes lines in the order a Finnish address is written.
    let street: Vec<String> = ["streetName", "buildingNumber", "unit"]
        .iter()
        .filter_map(|l| text(l))
        .collect();
    let structured: Vec<String> = [
        text("buildingName"),
        (!street.is_empty()).then(|| street.join(" ")),
        text("floor"),
        text("postOfficeBox"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !structured.is_empty() {
        report.translated(
            node.generic_path(),
            "EWP structured address → address lines",
            "structured",
            "lines",
            false,
        );
        lines.extend(structured);
    }
    for e in &parts {
        if matches!(e.local.as_str(), "recipientName" | "deliveryPointCode") {
            report.not_carried(format!("{}/{}", node.generic_path(), e.local));
        }
    }
    Address {
        lines,
        postal_code: text("postalCode"),
        locality: text("locality"),
        region: text("region"),
        country: text("country"),
    }
}

/// The issuer as a provider; `None` for the gateway's own stand-in issuer.
fn read_issuer(node: &Node<'_>, report: &mut ReadReport) -> Result<Option<Provider>, FormatError> {
    node.note_rest(&["country", "identifier", "title", "url"], &[], report);
    let mut identifiers = Vec::new();
    let mut own_key = None;
    let mut participant = false;
    for i in node.all("identifier") {
        let kind = i.required_attribute("type")?;
        let Some(value) = i.token() else { continue };
        match kind.as_str() {
            PROVIDER_KEY_TYPE => own_key = Some(value),
            PARTICIPANT_TYPE => participant = true,
            _ => identifiers.push(TypedId { kind, value }),
        }
    }
    if participant && identifiers.is_empty() && own_key.is_none() {
        return Ok(None);
    }
    let key = match own_key {
        Some(k) => k,
        None => preferred_key(&identifiers)
            .map(str::to_owned)
            .ok_or_else(|| node.invalid("the issuer has no identifier"))?,
    };
    Ok(Some(Provider {
        key,
        identifiers,
        names: titles(node),
        country: node.child_token("country"),
        url: node.child_token("url"),
    }))
}

fn titles(node: &Node<'_>) -> Vec<LocalizedText> {
    node.all("title")
        .into_iter()
        .filter_map(|t| {
            t.token().map(|text| LocalizedText {
                lang: t.xml_lang(),
                text,
            })
        })
        .collect()
}

struct LosReader<'a, 'r> {
    provider: String,
    schemes: &'a [(String, Option<String>)],
    report: &'r mut ReadReport,
    generated: &'r mut usize,
    out: &'r mut Vec<Achievement>,
}

impl LosReader<'_, '_> {
    /// Reads a learning opportunity and its parts; returns the achievement's key.
    fn read(&mut self, los: &Node<'_>) -> Result<Option<String>, FormatError> {
        los.note_rest(
            &["identifier", "title", "type", "specifies", "hasPart"],
            &[],
            self.report,
        );
        let (code, code_scheme) = code_with_scheme(los, self.report);
        let kind = match los.first("type").and_then(|t| t.token()) {
            Some(t) => match codes::ACHIEVEMENT_KINDS.from_elmo(&t) {
                Some(found) => found.value,
                None => return Err(los.invalid("`type` is not a learning opportunity type")),
            },
            None => {
                self.report.translated(
                    los.generic_path(),
                    "a learning opportunity without a type is read as a course",
                    "no type",
                    "course",
                    true,
                );
                crate::record::AchievementKind::Course
            }
        };
        let loi = los
            .required("specifies")?
            .required("learningOpportunityInstance")?;
        loi.note_rest(
            &[
                "identifier",
                "date",
                "status",
                "gradingSchemeLocalId",
                "resultLabel",
                "credit",
                "languageOfInstruction",
            ],
            &[],
            self.report,
        );
        let key = local_identifier(&loi, self.report);
        let status = match loi.child_token("status") {
            Some(s) => Some(
                codes::ACHIEVEMENT_STATUSES
                    .from_elmo(&s)
                    .map(|l| l.value)
                    .ok_or_else(|| loi.invalid("`status` is not passed, failed or in-progress"))?,
            ),
            None => None,
        };
        let grade = loi.child_token("resultLabel").map(|value| {
            let scheme = loi
                .child_token("gradingSchemeLocalId")
                .unwrap_or_else(|| UNSPECIFIED_SCHEME.to_owned());
            match codes::scale_by_siirto(&scheme) {
                Some(row) if row.values.contains(&value.as_str()) => Grade {
                    scale: GradeScale::Known(row.scale),
                    value,
                },
                _ => Grade {
                    scale: GradeScale::Other {
                        name: self
                            .schemes
                            .iter()
                            .find(|(id, _)| *id == scheme)
                            .and_then(|(_, n)| n.clone()),
                        scheme,
                    },
                    value,
                },
            }
        });
        if grade.is_none() && loi.first("gradingSchemeLocalId").is_some() {
            self.report.not_carried(format!(
                "{}/gradingSchemeLocalId (without resultLabel)",
                loi.generic_path()
            ));
        }
        let mut credits = Vec::new();
        for c in loi.all("credit") {
            c.note_rest(&["scheme", "value"], &[], self.report);
            let scheme = c.child_token("scheme").unwrap_or_default();
            let Some(value) = c.first("value") else {
                self.report
                    .not_carried(format!("{} (without value)", c.generic_path()));
                continue;
            };
            let unit = match codes::unit_by_elmo(&scheme) {
                Some(row) => CreditUnit::Known(row.unit),
                None if scheme.is_empty() => return Err(c.invalid("`scheme` is empty")),
                None => CreditUnit::Other(scheme),
            };
            credits.push(Credits {
                value: value.decimal()?,
                unit,
            });
        }
        let index = self.out.len();
        self.out.push(Achievement {
            key: key.clone(),
            kind,
            code,
            code_scheme,
            names: titles(los),
            date: loi.child_date("date")?,
            status,
            grade,
            credits,
            provider: self.provider.clone(),
            language: loi.child_token("languageOfInstruction"),
            recognized_on: None,
            parts: Vec::new(),
            study_right: None,
        });
        for part in los.all("hasPart") {
            part.note_rest(&["learningOpportunitySpecification"], &[], self.report);
            let child = part.required("learningOpportunitySpecification")?;
            let child_index = self.out.len();
            let child_key = match self.read(&child)? {
                Some(k) => k,
                None => {
                    *self.generated += 1;
                    let k = format!("elmo-{}", self.generated);
                    self.report.translated(
                        child.generic_path(),
                        "a part without an instance identifier gets a generated key",
                        "absent",
                        k.as_str(),
                        false,
                    );
                    if let Some(a) = self.out.get_mut(child_index) {
                        a.key = Some(k.clone());
                    }
                    k
                }
            };
            if let Some(parent) = self.out.get_mut(index) {
                parent.parts.push(PartRef {
                    key: child_key,
                    credits: None,
                });
            }
        }
        Ok(key)
    }
}

/// A learning opportunity's code (`identifier type="local"`) and the code list it belongs to:
/// the type of another identifier with the same value, as this module writes a code that has
/// one (`identifier type="koskioppiaineetyleissivistava"`). Other identifiers are noted.
fn code_with_scheme(node: &Node<'_>, report: &mut ReadReport) -> (Option<String>, Option<String>) {
    let identifiers = node.all("identifier");
    let local_at = identifiers
        .iter()
        .position(|i| i.attribute("type").as_deref() == Some(LOCAL_TYPE));
    let code = local_at.and_then(|at| identifiers.get(at).and_then(Node::token));
    let mut scheme = None;
    for (at, i) in identifiers.iter().enumerate() {
        if Some(at) == local_at {
            continue;
        }
        let kind = i.attribute("type").unwrap_or_default();
        if scheme.is_none() && code.is_some() && i.token() == code && !kind.is_empty() {
            scheme = Some(kind);
            continue;
        }
        report.not_carried(format!("{}[@type={kind}]", i.generic_path()));
    }
    (code, scheme)
}

/// The value of the `identifier type="local"` child, noting other identifier types.
fn local_identifier(node: &Node<'_>, report: &mut ReadReport) -> Option<String> {
    let mut local = None;
    for i in node.all("identifier") {
        if i.attribute("type").as_deref() == Some(LOCAL_TYPE) && local.is_none() {
            local = i.token();
        } else {
            report.not_carried(format!(
                "{}[@type={}]",
                i.generic_path(),
                i.attribute("type").unwrap_or_default()
            ));
        }
    }
    local
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

struct Writer<'r> {
    x: XmlOut,
    report: &'r mut WriteReport,
}

pub(crate) fn write(
    record: &StudentRecord,
    context: &WriteContext,
    report: &mut WriteReport,
) -> Result<Vec<u8>, FormatError> {
    let mut w = Writer {
        x: XmlOut::new(),
        report,
    };
    let generated = context.generated_at.rfc3339();
    w.x.open("elmo", &[("xmlns", NAMESPACE)]);
    w.x.leaf("generatedDate", &[], &generated);
    write_learner(&mut w, record);
    drop_inexpressible(&mut w, record);

    // One report per provider that issued achievements, in order of first appearance.
    let mut issuers: Vec<&str> = Vec::new();
    for a in &record.achievements {
        if !issuers.contains(&a.provider.as_str()) {
            issuers.push(&a.provider);
        }
    }
    let fallback = if issuers.is_empty() {
        match record.providers.first() {
            Some(p) => {
                issuers.push(&p.key);
                None
            }
            None => match &context.source_participant {
                Some(participant) => Some(participant.clone()),
                None => {
                    return Err(FormatError::Unwritable {
                        format: Format::Elmo,
                        path: "/elmo/report/issuer".into(),
                        problem: "ELMO needs an issuing institution, and the record names no education provider (pass the source participant in the write context)".into(),
                    });
                }
            },
        }
    } else {
        None
    };
    for (i, p) in record.providers.iter().enumerate() {
        if !issuers.contains(&p.key.as_str()) {
            w.report.dropped(
                format!("providers[{i}]"),
                "ELMO names institutions only as issuers of achievements",
            );
        }
    }
    let placement = place_parts(record, w.report);
    match fallback {
        Some(participant) => {
            w.report.translated(
                "providers",
                "ELMO needs an issuer: the source participant is named",
                "no provider",
                PARTICIPANT_TYPE,
                false,
            );
            w.x.open("report", &[]);
            w.x.open("issuer", &[]);
            w.x.leaf("identifier", &[("type", PARTICIPANT_TYPE)], &participant);
            w.x.leaf("title", &[], &participant);
            w.x.leaf("url", &[], "");
            w.x.close();
            w.x.leaf("issueDate", &[], &generated);
            w.x.close();
        }
        None => {
            for key in issuers {
                write_report(&mut w, record, key, &placement, &generated);
            }
        }
    }
    w.x.close();
    w.x.finish().map_err(|path| FormatError::Unwritable {
        format: Format::Elmo,
        path,
        problem: "text holds characters XML cannot carry".into(),
    })
}

fn opt_leaf(x: &mut XmlOut, name: &str, value: Option<&str>) {
    if let Some(v) = value {
        x.leaf(name, &[], v);
    }
}

fn write_learner(w: &mut Writer<'_>, record: &StudentRecord) {
    let s = &record.student;
    w.x.open("learner", &[]);
    let mut wrote_citizenship = false;
    for (i, c) in s.citizenships.iter().enumerate() {
        if !wrote_citizenship && codelists::europass_has(c) {
            w.x.leaf("citizenship", &[], c);
            wrote_citizenship = true;
        } else {
            w.report.dropped(
                format!("student.citizenships[{i}]"),
                "ELMO takes one citizenship from the Europass country list",
            );
        }
    }
    if let Some(h) = &s.henkilotunnus {
        w.x.leaf("identifier", &[("type", NATIONAL_ID_TYPE)], h);
    }
    if let Some(l) = &s.learner_id {
        w.x.leaf("identifier", &[("type", LEARNER_ID_TYPE)], l);
    }
    for id in &s.other_ids {
        w.x.leaf("identifier", &[("type", &id.kind)], &id.value);
    }
    w.x.leaf("givenNames", &[], s.given_names.as_deref().unwrap_or(""));
    w.x.leaf("familyName", &[], s.family_name.as_deref().unwrap_or(""));
    if let Some(b) = s.birth_date {
        w.x.leaf("bday", &[], &b.to_string());
    }
    for (i, a) in s.addresses.iter().enumerate() {
        let path = format!("student.addresses[{i}]");
        if i > 0 {
            w.report.dropped(path, "ELMO takes one current address");
            continue;
        }
        write_address(w, a, &path);
    }
    if let Some(g) = s.gender {
        match codes::GENDERS.to_elmo(g) {
            Some(code) => w.x.leaf("gender", &[], code.value),
            None => w.report.dropped("student.gender", "no ISO 5218 code"),
        }
    }
    w.x.close();
}

fn write_address(w: &mut Writer<'_>, a: &Address, path: &str) {
    let ns = [("xmlns:a", ADDRESS_NAMESPACE)];
    w.x.open("currentAddress", &ns);
    for (j, line) in a.lines.iter().enumerate() {
        if j < 4 {
            w.x.leaf("a:addressLine", &[], line);
        } else {
            w.report.dropped(
                format!("{path}.lines[{j}]"),
                "EWP addresses have at most 4 lines",
            );
        }
    }
    opt_leaf(&mut w.x, "a:postalCode", a.postal_code.as_deref());
    opt_leaf(&mut w.x, "a:locality", a.locality.as_deref());
    opt_leaf(&mut w.x, "a:region", a.region.as_deref());
    if let Some(c) = &a.country {
        if c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()) {
            w.x.leaf("a:country", &[], c);
        } else {
            w.report
                .dropped(format!("{path}.country"), "not an ISO 3166-1 alpha-2 code");
        }
    }
    w.x.close();
}

/// Reports everything of the record ELMO has no place for.
fn drop_inexpressible(w: &mut Writer<'_>, record: &StudentRecord) {
    let s = &record.student;
    if s.mother_tongue.is_some() {
        w.report
            .dropped("student.mother_tongue", "ELMO has no mother tongue");
    }
    if s.home_municipality.is_some() {
        w.report
            .dropped("student.home_municipality", "ELMO has no home municipality");
    }
    for i in 0..s.contacts.len() {
        w.report.dropped(
            format!("student.contacts[{i}]"),
            "ELMO has no contact details",
        );
    }
    if record.turvakielto {
        w.report
            .dropped("turvakielto", "ELMO has no turvakielto flag");
    }
    for (section, len, reason) in [
        (
            "study_rights",
            record.study_rights.len(),
            "ELMO is a transcript of records: it has no study rights",
        ),
        (
            "mobility_periods",
            record.mobility_periods.len(),
            "ELMO has no mobility periods",
        ),
        (
            "term_registrations",
            record.term_registrations.len(),
            "ELMO has no term registrations",
        ),
        (
            "support_decisions",
            record.support_decisions.len(),
            "ELMO has no support decisions",
        ),
    ] {
        for i in 0..len {
            w.report.dropped(format!("{section}[{i}]"), reason);
        }
    }
    for (i, a) in record.achievements.iter().enumerate() {
        let path = format!("achievements[{i}]");
        if a.recognized_on.is_some() {
            w.report.dropped(
                format!("{path}.recognized_on"),
                "ELMO has no recognition date",
            );
        }
        if a.study_right.is_some() {
            w.report.dropped(
                format!("{path}.study_right"),
                "ELMO has no study rights to link to",
            );
        }
    }
}

/// Where each achievement goes in the ELMO trees: `parent[i]` is the index of the achievement
/// it is nested under. A part link is followed when the part exists under the same issuer, is
/// not yet placed and would not make a cycle; any other link is reported as dropped.
struct Placement {
    parent: Vec<Option<usize>>,
    /// Children of each achievement, in the order of its part links.
    children: Vec<Vec<usize>>,
}

/// How deep achievements are nested in the ELMO trees the gateway writes.
const MAX_NESTING: usize = 16;

fn place_parts(record: &StudentRecord, report: &mut WriteReport) -> Placement {
    let n = record.achievements.len();
    // The first achievement with each key.
    let mut by_key: HashMap<&str, usize> = HashMap::new();
    for (i, a) in record.achievements.iter().enumerate() {
        if let Some(k) = a.key.as_deref() {
            by_key.entry(k).or_insert(i);
        }
    }
    // Candidate links: each part gets the first parent that names it.
    let mut parent: Vec<Option<usize>> = vec![None; n];
    let mut link: Vec<usize> = vec![0; n];
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, a) in record.achievements.iter().enumerate() {
        for (j, part) in a.parts.iter().enumerate() {
            let path = format!("achievements[{i}].parts[{j}]");
            if part.credits.is_some() {
                report.dropped(
                    format!("{path}.credits"),
                    "ELMO has no credits for a part's share",
                );
            }
            let Some(c) = by_key.get(part.key.as_str()).copied() else {
                report.dropped(path, "the part is not in the record");
                continue;
            };
            if c == i {
                report.dropped(path, "an achievement cannot be its own part");
                continue;
            }
            if record.achievements[c].provider != a.provider {
                report.dropped(path, "the part was issued by another institution");
                continue;
            }
            if parent[c].is_some() {
                report.dropped(path, "the part is already nested under another achievement");
                continue;
            }
            parent[c] = Some(i);
            link[c] = j;
            children[i].push(c);
        }
    }
    // Depths from the roots, breadth first. A link that would nest deeper than the limit, or
    // that closes a cycle (its part is never reached from a root), is cut and reported; the
    // part then starts a tree of its own. Linear in the number of achievements.
    let mut depth: Vec<Option<usize>> = vec![None; n];
    let mut queue: VecDeque<usize> = VecDeque::new();
    for i in 0..n {
        if parent[i].is_none() {
            depth[i] = Some(0);
            queue.push_back(i);
        }
    }
    let mut next = 0;
    loop {
        while let Some(u) = queue.pop_front() {
            let d = depth[u].unwrap_or(0);
            for &c in &children[u] {
                if parent[c] != Some(u) {
                    continue; // a link already cut
                }
                if d + 1 >= MAX_NESTING {
                    report.dropped(
                        format!("achievements[{u}].parts[{}]", link[c]),
                        "parts nest deeper than the gateway writes (16 levels)",
                    );
                    parent[c] = None;
                    depth[c] = Some(0);
                } else {
                    depth[c] = Some(d + 1);
                }
                queue.push_back(c);
            }
        }
        while next < n && depth[next].is_some() {
            next += 1;
        }
        if next >= n {
            break;
        }
        // Unreached: the achievement hangs off a cycle. Walk up to a member of the cycle and
        // cut the link into it.
        let mut on_cycle = next;
        let mut seen: HashSet<usize> = HashSet::new();
        while seen.insert(on_cycle) {
            match parent[on_cycle] {
                Some(p) => on_cycle = p,
                None => break,
            }
        }
        if let Some(p) = parent[on_cycle] {
            report.dropped(
                format!("achievements[{p}].parts[{}]", link[on_cycle]),
                "the part links form a cycle",
            );
        }
        parent[on_cycle] = None;
        depth[on_cycle] = Some(0);
        queue.push_back(on_cycle);
    }
    for (i, kids) in children.iter_mut().enumerate() {
        kids.retain(|c| parent[*c] == Some(i));
    }
    Placement { parent, children }
}

fn write_report(
    w: &mut Writer<'_>,
    record: &StudentRecord,
    key: &str,
    placement: &Placement,
    generated: &str,
) {
    w.x.open("report", &[]);
    let provider = record.providers.iter().find(|p| p.key == key);
    write_issuer(w, record, key, provider);
    let mut used_schemes: Vec<(String, Vec<LocalizedText>)> = Vec::new();
    for (i, a) in record.achievements.iter().enumerate() {
        if a.provider == key && placement.parent[i].is_none() {
            write_los(w, record, i, placement, &mut used_schemes);
        }
    }
    w.x.leaf("issueDate", &[], generated);
    for (id, descriptions) in &used_schemes {
        w.x.open("gradingScheme", &[("localId", id)]);
        for d in descriptions {
            match &d.lang {
                Some(l) => w.x.leaf("description", &[("xml:lang", l)], &d.text),
                None => w.x.leaf("description", &[], &d.text),
            }
        }
        w.x.close();
    }
    w.x.close();
}

fn write_issuer(
    w: &mut Writer<'_>,
    record: &StudentRecord,
    key: &str,
    provider: Option<&Provider>,
) {
    let index = record.providers.iter().position(|p| p.key == key);
    let path = index.map_or_else(|| "providers".to_owned(), |i| format!("providers[{i}]"));
    w.x.open("issuer", &[]);
    if let Some(c) = provider.and_then(|p| p.country.as_deref()) {
        if codelists::europass_has(c) {
            w.x.leaf("country", &[], c);
        } else {
            w.report.dropped(
                format!("{path}.country"),
                "not in ELMO's Europass country list",
            );
        }
    }
    let identifiers = provider.map(|p| p.identifiers.as_slice()).unwrap_or(&[]);
    if preferred_key(identifiers) != Some(key) {
        w.x.leaf("identifier", &[("type", PROVIDER_KEY_TYPE)], key);
    }
    for id in identifiers {
        w.x.leaf("identifier", &[("type", &id.kind)], &id.value);
    }
    let names = provider.map(|p| p.names.as_slice()).unwrap_or(&[]);
    write_titles(w, names, &path);
    w.x.leaf(
        "url",
        &[],
        provider.and_then(|p| p.url.as_deref()).unwrap_or(""),
    );
    w.x.close();
}

/// `title` elements (at least one: an empty one when there is no name, as ELMO asks).
fn write_titles(w: &mut Writer<'_>, names: &[LocalizedText], path: &str) {
    if names.is_empty() {
        w.report.translated(
            format!("{path}.names"),
            "ELMO requires a title: an empty one is written",
            "no name",
            "empty title",
            false,
        );
        w.x.leaf("title", &[], "");
        return;
    }
    for (j, n) in names.iter().enumerate() {
        match n.lang.as_deref() {
            Some(l) if codelists::is_language_tag(l) => {
                w.x.leaf("title", &[("xml:lang", l)], &n.text)
            }
            Some(l) => {
                w.report.translated(
                    format!("{path}.names[{j}]"),
                    "a language code that is not a language tag is left out",
                    l,
                    "no language",
                    true,
                );
                w.x.leaf("title", &[], &n.text);
            }
            None => w.x.leaf("title", &[], &n.text),
        }
    }
}

/// The grading scheme id and descriptions of a grade's scale.
fn scheme_of(g: &Grade) -> (String, Vec<LocalizedText>) {
    match &g.scale {
        GradeScale::Known(scale) => match codes::scale_row(*scale) {
            Some(row) => (
                row.siirto.to_owned(),
                vec![
                    LocalizedText {
                        lang: Some("en".into()),
                        text: row.en.to_owned(),
                    },
                    LocalizedText {
                        lang: Some("fi".into()),
                        text: row.fi.to_owned(),
                    },
                ],
            ),
            None => (format!("{scale:?}"), Vec::new()),
        },
        GradeScale::Other { scheme, name } => (
            scheme.clone(),
            name.iter()
                .map(|n| LocalizedText {
                    lang: None,
                    text: n.clone(),
                })
                .collect(),
        ),
    }
}

fn write_los(
    w: &mut Writer<'_>,
    record: &StudentRecord,
    i: usize,
    placement: &Placement,
    used_schemes: &mut Vec<(String, Vec<LocalizedText>)>,
) {
    let Some(a) = record.achievements.get(i) else {
        return;
    };
    let path = format!("achievements[{i}]");
    w.x.open("learningOpportunitySpecification", &[]);
    if let Some(c) = &a.code {
        w.x.leaf("identifier", &[("type", LOCAL_TYPE)], c);
        if let Some(scheme) = &a.code_scheme {
            w.x.leaf("identifier", &[("type", scheme)], c);
        }
    } else if a.code_scheme.is_some() {
        w.report.dropped(
            format!("{path}.code_scheme"),
            "a code list without a code has no place in ELMO",
        );
    }
    write_titles(w, &a.names, &path);
    if let Some(t) = codes::ACHIEVEMENT_KINDS.to_elmo(a.kind) {
        w.x.leaf("type", &[], t.value);
    }
    w.x.open("specifies", &[]);
    w.x.open("learningOpportunityInstance", &[]);
    if let Some(k) = &a.key {
        w.x.leaf("identifier", &[("type", LOCAL_TYPE)], k);
    }
    if let Some(d) = a.date {
        w.x.leaf("date", &[], &d.to_string());
    }
    let status = match a.status {
        Some(s) => Some(s),
        None => {
            let failed = match &a.grade {
                Some(Grade {
                    scale: GradeScale::Known(scale),
                    value,
                }) => codes::scale_row(*scale).is_some_and(|r| r.failing.contains(&value.as_str())),
                _ => false,
            };
            let derived = if failed {
                AchievementStatus::Failed
            } else {
                AchievementStatus::Passed
            };
            w.report.translated(
                format!("{path}.status"),
                "ELMO status derived from the grade (a register records passed achievements)",
                "absent",
                codes::ACHIEVEMENT_STATUSES
                    .to_elmo(derived)
                    .map(|l| l.value)
                    .unwrap_or_default(),
                false,
            );
            Some(derived)
        }
    };
    if let Some(code) = status.and_then(|s| codes::ACHIEVEMENT_STATUSES.to_elmo(s)) {
        w.x.leaf("status", &[], code.value);
    }
    if let Some(g) = &a.grade {
        let (id, descriptions) = scheme_of(g);
        match used_schemes.iter().find(|(u, _)| *u == id) {
            Some((_, existing)) if *existing != descriptions => w.report.translated(
                format!("{path}.grade"),
                "one description per ELMO grading scheme: the first one is kept",
                "scale name",
                "first scale name",
                true,
            ),
            Some(_) => {}
            None => used_schemes.push((id.clone(), descriptions)),
        }
        if let GradeScale::Known(_) = g.scale {
            w.report.translated(
                format!("{path}.grade"),
                "grading scale → ELMO gradingScheme (descriptions from the scale table)",
                id.as_str(),
                id.as_str(),
                false,
            );
        }
        w.x.leaf("gradingSchemeLocalId", &[], &id);
        w.x.leaf("resultLabel", &[], &g.value);
    }
    for c in &a.credits {
        let scheme = match &c.unit {
            CreditUnit::Known(u) => codes::unit_row(*u).map(|r| r.elmo.to_owned()),
            CreditUnit::Other(s) => Some(s.clone()),
        };
        if let Some(scheme) = scheme {
            w.x.open("credit", &[]);
            w.x.leaf("scheme", &[], &scheme);
            w.x.leaf("value", &[], c.value.as_str());
            w.x.close();
        }
    }
    if let Some(l) = &a.language {
        if codelists::is_language_tag(l) {
            w.x.leaf("languageOfInstruction", &[], l);
        } else {
            w.report.dropped(
                format!("{path}.language"),
                "ELMO takes an ISO 639-1 language of instruction",
            );
        }
    }
    w.x.close();
    w.x.close();
    for &c in &placement.children[i] {
        w.x.open("hasPart", &[]);
        write_los(w, record, c, placement, used_schemes);
        w.x.close();
    }
    w.x.close();
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing unwrap is a failing test
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::record::{AchievementKind, Date, KnownScale, KnownUnit};
    use siirto_xsd::{Limits, dom};

    fn example() -> String {
        r#"<elmo xmlns="https://github.com/emrex-eu/elmo-schemas/tree/v1">
  <generatedDate>2015-10-31T12:00:00+02:00</generatedDate>
  <learner>
    <citizenship>FI</citizenship>
    <identifier type="nationalIdentifier">131052-308T</identifier>
    <identifier type="esi">urn:schac:personalUniqueCode:int:esi:fi:1</identifier>
    <givenNames>Satu  Maria</givenNames>
    <familyName>Virtanen</familyName>
    <bday>1952-10-13+02:00</bday>
    <currentAddress xmlns:a="https://github.com/erasmus-without-paper/ewp-specs-types-address/tree/stable-v1">
      <a:streetName>Katu</a:streetName><a:buildingNumber>1</a:buildingNumber><a:locality>Turku</a:locality>
    </currentAddress>
  </learner>
  <report>
    <issuer><identifier type="schac">utu.fi</identifier><title xml:lang="fi">Turun yliopisto</title><url>http://utu.fi</url></issuer>
    <learningOpportunitySpecification>
      <identifier type="local">MOD</identifier>
      <title xml:lang="en">Module</title>
      <type>Module</type>
      <specifies><learningOpportunityInstance><status>passed</status>
        <credit><scheme>ECTS</scheme><value>10.0</value></credit></learningOpportunityInstance></specifies>
      <hasPart><learningOpportunitySpecification>
        <title>Course</title>
        <specifies><learningOpportunityInstance>
          <identifier type="local">C1</identifier>
          <date>2015-01-02</date>
          <gradingSchemeLocalId>AM</gradingSchemeLocalId><resultLabel>B</resultLabel>
          <credit><scheme>ects</scheme><level>Bachelor</level><value>5</value></credit>
        </learningOpportunityInstance></specifies>
      </learningOpportunitySpecification></hasPart>
      <hasPart><learningOpportunitySpecification>
        <type>Class</type><title>Lab</title>
        <specifies><learningOpportunityInstance><gradingSchemeLocalId>viisiportainen</gradingSchemeLocalId><resultLabel>4</resultLabel></learningOpportunityInstance></specifies>
      </learningOpportunitySpecification></hasPart>
    </learningOpportunitySpecification>
    <issueDate>2015-10-31T07:00:00+02:00</issueDate>
    <gradingScheme localId="AM"><description xml:lang="pl">Amerykańska</description><description xml:lang="en">American</description></gradingScheme>
  </report>
</elmo>"#
            .to_owned()
    }

    fn subject() -> StudentId {
        StudentId::parse("131052-308T").unwrap()
    }

    #[test]
    fn reads_the_learner_and_the_tree() {
        let root = dom::parse(example().as_bytes(), &Limits::default()).unwrap();
        let mut report = ReadReport::default();
        let r = read(&root, &subject(), &mut report).unwrap();
        assert_eq!(r.student.given_names.as_deref(), Some("Satu Maria"));
        assert_eq!(r.student.birth_date, Date::parse("1952-10-13").ok());
        assert_eq!(r.student.other_ids.len(), 1);
        assert_eq!(r.student.addresses[0].lines, vec!["Katu 1"]);
        assert_eq!(r.providers.len(), 1);
        assert_eq!(r.providers[0].key, "utu.fi");
        assert_eq!(r.achievements.len(), 3);
        let module = &r.achievements[0];
        assert_eq!(module.kind, AchievementKind::Module);
        assert_eq!(module.code.as_deref(), Some("MOD"));
        assert_eq!(
            module.credits[0].unit,
            CreditUnit::Known(KnownUnit::Opintopiste)
        );
        assert_eq!(module.credits[0].value.as_str(), "10");
        assert_eq!(
            module
                .parts
                .iter()
                .map(|p| p.key.as_str())
                .collect::<Vec<_>>(),
            vec!["C1", "elmo-1"]
        );
        let course = &r.achievements[1];
        assert_eq!(course.kind, AchievementKind::Course);
        assert_eq!(
            course.grade.as_ref().unwrap().scale,
            GradeScale::Other {
                scheme: "AM".into(),
                name: Some("American".into())
            }
        );
        let lab = &r.achievements[2];
        assert_eq!(lab.key.as_deref(), Some("elmo-1"));
        assert_eq!(
            lab.grade.as_ref().unwrap().scale,
            GradeScale::Known(KnownScale::Viisiportainen)
        );
        assert!(
            report
                .not_carried
                .keys()
                .any(|k| k.ends_with("credit/level"))
        );
    }

    #[test]
    fn binds_to_the_subject() {
        let root = dom::parse(example().as_bytes(), &Limits::default()).unwrap();
        let other = StudentId::parse("1.2.246.562.24.10000000008").unwrap();
        assert_eq!(
            read(&root, &other, &mut ReadReport::default())
                .unwrap_err()
                .code(),
            "subject_mismatch"
        );
        let old = example().replace(NAMESPACE, "http://purl.org/net/elmo");
        let root = dom::parse(old.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(
            read(&root, &subject(), &mut ReadReport::default())
                .unwrap_err()
                .code(),
            "unreadable_source"
        );
    }

    #[test]
    fn writes_what_it_reads() {
        let root = dom::parse(example().as_bytes(), &Limits::default()).unwrap();
        let record = read(&root, &subject(), &mut ReadReport::default()).unwrap();
        let mut report = WriteReport::default();
        let context = WriteContext::new(Timestamp::from_secs(0));
        let bytes = write(&record, &context, &mut report).unwrap();
        let back = read(
            &dom::parse(&bytes, &Limits::default()).unwrap(),
            &subject(),
            &mut ReadReport::default(),
        )
        .unwrap();
        // Only the derived statuses differ: ELMO writes them explicitly.
        let mut expected = record.clone();
        for a in &mut expected.achievements {
            a.status.get_or_insert(AchievementStatus::Passed);
        }
        assert_eq!(back, expected);
    }

    #[test]
    fn part_links_that_cannot_nest_are_cut_and_reported() {
        use crate::record::{AchievementKind, PartRef};
        let achievement = |key: &str, parts: &[&str], provider: &str| Achievement {
            key: Some(key.to_owned()),
            kind: AchievementKind::Module,
            code: None,
            code_scheme: None,
            names: Vec::new(),
            date: None,
            status: Some(AchievementStatus::Passed),
            grade: None,
            credits: Vec::new(),
            provider: provider.to_owned(),
            language: None,
            recognized_on: None,
            parts: parts
                .iter()
                .map(|k| PartRef {
                    key: (*k).to_owned(),
                    credits: None,
                })
                .collect(),
            study_right: None,
        };
        // a ⇄ b is a cycle with c hanging off b; d names a part elsewhere; e is deep.
        let mut achievements = vec![
            achievement("c", &[], "P"),
            achievement("a", &["b"], "P"),
            achievement("b", &["a", "c"], "P"),
            achievement("d", &["x", "f"], "P"),
            achievement("f", &[], "Q"),
        ];
        let chain = 20;
        for i in 0..chain {
            let next = format!("e{}", i + 1);
            let parts: Vec<&str> = if i + 1 < chain {
                vec![next.as_str()]
            } else {
                vec![]
            };
            achievements.push(achievement(&format!("e{i}"), &parts, "P"));
        }
        let record = StudentRecord {
            student: Student {
                henkilotunnus: Some("131052-308T".into()),
                ..Student::default()
            },
            achievements,
            ..StudentRecord::default()
        };
        let mut report = WriteReport::default();
        let placement = place_parts(&record, &mut report);
        let reasons: Vec<(&str, &str)> = report
            .dropped
            .iter()
            .map(|d| (d.path.as_str(), d.reason.as_str()))
            .collect();
        assert!(reasons.contains(&("achievements[3].parts[0]", "the part is not in the record")));
        assert!(reasons.contains(&(
            "achievements[3].parts[1]",
            "the part was issued by another institution"
        )));
        assert_eq!(
            reasons.iter().filter(|(_, r)| r.contains("cycle")).count(),
            1,
            "{reasons:?}"
        );
        assert_eq!(
            reasons.iter().filter(|(_, r)| r.contains("deeper")).count(),
            1,
            "{reasons:?}"
        );
        // c stays under b: its own link was not part of the cycle.
        assert_eq!(placement.parent[0], Some(2));
        // Everything is written exactly once, and the output is a valid tree.
        let context = WriteContext::new(Timestamp::from_secs(0));
        let bytes = write(&record, &context, &mut WriteReport::default()).unwrap();
        let back = read(
            &dom::parse(&bytes, &Limits::default()).unwrap(),
            &subject(),
            &mut ReadReport::default(),
        )
        .unwrap();
        assert_eq!(back.achievements.len(), record.achievements.len());
    }

    #[test]
    fn needs_an_issuer() {
        let record = StudentRecord {
            student: Student {
                henkilotunnus: Some("131052-308T".into()),
                ..Student::default()
            },
            ..StudentRecord::default()
        };
        let context = WriteContext::new(Timestamp::from_secs(0));
        let err = write(&record, &context, &mut WriteReport::default()).unwrap_err();
        assert_eq!(err.code(), "conversion_failed");
        let bytes = write(
            &record,
            &context.clone().with_source("turku"),
            &mut WriteReport::default(),
        )
        .unwrap();
        let back = read(
            &dom::parse(&bytes, &Limits::default()).unwrap(),
            &subject(),
            &mut ReadReport::default(),
        )
        .unwrap();
        assert!(back.providers.is_empty());
    }
}

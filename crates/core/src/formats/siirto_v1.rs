//! The gateway's own record format, `siirto-v1` (`xsd/siirto-record-v1.xsd`).
//!
//! Owns: reading a `studentRecord` document into the model and writing the model back. The
//! format expresses every model field, so a write followed by a read gives back the same
//! record. It does not validate against the schema (the caller does) and does no IO.

use crate::record::{
    Achievement, Address, Contact, CreditUnit, Credits, Grade, GradeScale, LocalizedText,
    MobilityPeriod, PartRef, ProgrammePeriod, Provider, StatePeriod, Student, StudentRecord,
    StudyRight, SupportDecision, TermRegistration, TypedId,
};
use crate::student_id::StudentId;
use siirto_xsd::dom::Element;

use super::codes::{self, CodeTable};
use super::report::{ReadReport, WriteReport};
use super::xml_in::Node;
use super::xml_out::XmlOut;
use super::{Format, FormatError, WriteContext};

/// The target namespace of `xsd/siirto-record-v1.xsd`.
pub const NAMESPACE: &str = "urn:siirto:record:v1";
const ROOT: &str = "studentRecord";
const PREFIX: &str = "siirto-v1:";

/// The schema, for callers that validate with it by default.
pub const SCHEMA: &str = include_str!("../../../../xsd/siirto-record-v1.xsd");

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

pub(crate) fn read(
    root: &Element,
    subject: &StudentId,
    report: &mut ReadReport,
) -> Result<StudentRecord, FormatError> {
    if root.namespace.as_deref() != Some(NAMESPACE) || root.local != ROOT {
        return Err(FormatError::WrongDocument {
            format: Format::SiirtoV1,
            found: super::root_name(root),
        });
    }
    let doc = Node::root(root, NAMESPACE, PREFIX);
    doc.note_rest(
        &[
            "student",
            "providers",
            "studyRights",
            "achievements",
            "mobilityPeriods",
            "termRegistrations",
            "supportDecisions",
        ],
        &["version", "generatedAt"],
        report,
    );
    let student_node = doc.required("student")?;
    let (student, turvakielto) = read_student(&student_node, report)?;
    if !super::is_subject(
        subject,
        student.henkilotunnus.as_deref(),
        student.learner_id.as_deref(),
    ) {
        let named = usize::from(student.henkilotunnus.is_some() || student.learner_id.is_some());
        return Err(super::mismatch(subject, named));
    }
    let mut record = StudentRecord {
        student,
        turvakielto,
        ..StudentRecord::default()
    };
    for (section, item, read_item) in [
        ("providers", "provider", Section::Providers),
        ("studyRights", "studyRight", Section::StudyRights),
        ("achievements", "achievement", Section::Achievements),
        ("mobilityPeriods", "mobilityPeriod", Section::Mobility),
        (
            "termRegistrations",
            "termRegistration",
            Section::Registrations,
        ),
        ("supportDecisions", "supportDecision", Section::Support),
    ] {
        let Some(list) = doc.first(section) else {
            continue;
        };
        list.note_rest(&[item], &[], report);
        for node in list.all(item) {
            match read_item {
                Section::Providers => record.providers.push(read_provider(&node, report)?),
                Section::StudyRights => record.study_rights.push(read_study_right(&node, report)?),
                Section::Achievements => record.achievements.push(read_achievement(&node, report)?),
                Section::Mobility => record.mobility_periods.push(read_mobility(&node, report)?),
                Section::Registrations => record
                    .term_registrations
                    .push(read_registration(&node, report)?),
                Section::Support => record.support_decisions.push(read_support(&node, report)?),
            }
        }
    }
    Ok(record)
}

#[derive(Clone, Copy)]
enum Section {
    Providers,
    StudyRights,
    Achievements,
    Mobility,
    Registrations,
    Support,
}

fn code<T: Copy + PartialEq>(
    node: &Node<'_>,
    table: &CodeTable<T>,
    token: &str,
) -> Result<T, FormatError> {
    table
        .from_siirto(token)
        .ok_or_else(|| node.invalid(format!("not a code of `{}`", table.name)))
}

fn attribute_code<T: Copy + PartialEq>(
    node: &Node<'_>,
    name: &str,
    table: &CodeTable<T>,
) -> Result<T, FormatError> {
    let token = node.required_attribute(name)?;
    table.from_siirto(&token).ok_or_else(|| {
        node.invalid(format!(
            "attribute `{name}` is not a code of `{}`",
            table.name
        ))
    })
}

fn texts(node: &Node<'_>, local: &str) -> Vec<LocalizedText> {
    node.all(local)
        .into_iter()
        .filter_map(|n| {
            n.text().map(|text| LocalizedText {
                lang: n.attribute("lang"),
                text,
            })
        })
        .collect()
}

fn read_student(node: &Node<'_>, report: &mut ReadReport) -> Result<(Student, bool), FormatError> {
    node.note_rest(
        &[
            "henkilotunnus",
            "oppijanumero",
            "identifier",
            "familyName",
            "givenNames",
            "birthDate",
            "gender",
            "citizenship",
            "motherTongue",
            "homeMunicipality",
            "address",
            "contact",
        ],
        &["turvakielto"],
        report,
    );
    let turvakielto = match node.attribute("turvakielto").as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(_) => return Err(node.invalid("attribute `turvakielto` is not a boolean")),
    };
    let gender = match node.first("gender") {
        Some(g) => Some(code(&g, &codes::GENDERS, &g.text().unwrap_or_default())?),
        None => None,
    };
    let mut addresses = Vec::new();
    for a in node.all("address") {
        a.note_rest(
            &["line", "postalCode", "locality", "region", "country"],
            &[],
            report,
        );
        addresses.push(Address {
            lines: a.all("line").iter().filter_map(Node::text).collect(),
            postal_code: a.child_text("postalCode"),
            locality: a.child_text("locality"),
            region: a.child_text("region"),
            country: a.child_text("country"),
        });
    }
    let mut contacts = Vec::new();
    for c in node.all("contact") {
        let kind = attribute_code(&c, "type", &codes::CONTACT_KINDS)?;
        if let Some(value) = c.text() {
            contacts.push(Contact { kind, value });
        }
    }
    let student = Student {
        henkilotunnus: node
            .child_text("henkilotunnus")
            .map(|h| super::normalize_henkilotunnus(&h)),
        learner_id: node.child_text("oppijanumero"),
        other_ids: typed_ids(node)?,
        family_name: node.child_text("familyName"),
        given_names: node.child_text("givenNames"),
        birth_date: node.child_date("birthDate")?,
        gender,
        citizenships: node
            .all("citizenship")
            .iter()
            .filter_map(Node::text)
            .collect(),
        mother_tongue: node.child_text("motherTongue"),
        home_municipality: node.child_text("homeMunicipality"),
        addresses,
        contacts,
    };
    Ok((student, turvakielto))
}

fn typed_ids(node: &Node<'_>) -> Result<Vec<TypedId>, FormatError> {
    let mut out = Vec::new();
    for i in node.all("identifier") {
        let kind = i.required_attribute("type")?;
        if let Some(value) = i.text() {
            out.push(TypedId { kind, value });
        }
    }
    Ok(out)
}

fn read_provider(node: &Node<'_>, report: &mut ReadReport) -> Result<Provider, FormatError> {
    node.note_rest(&["identifier", "name", "country", "url"], &["key"], report);
    Ok(Provider {
        key: node.required_attribute("key")?,
        identifiers: typed_ids(node)?,
        names: texts(node, "name"),
        country: node.child_text("country"),
        url: node.child_text("url"),
    })
}

fn credits(node: &Node<'_>, attribute: &str) -> Result<Credits, FormatError> {
    let token = node.required_attribute(attribute)?;
    let unit = match codes::unit_by_siirto(&token) {
        Some(row) => CreditUnit::Known(row.unit),
        None => match token.strip_prefix(codes::SIIRTO_FOREIGN_UNIT_PREFIX) {
            Some(scheme) if !scheme.is_empty() => CreditUnit::Other(scheme.to_owned()),
            _ => return Err(node.invalid(format!("attribute `{attribute}` is not a credit unit"))),
        },
    };
    Ok(Credits {
        value: node.decimal()?,
        unit,
    })
}

fn read_study_right(node: &Node<'_>, report: &mut ReadReport) -> Result<StudyRight, FormatError> {
    node.note_rest(
        &["start", "end", "state", "programme", "extent"],
        &["key", "provider", "kind"],
        report,
    );
    let mut states = Vec::new();
    for s in node.all("state") {
        s.note_rest(&[], &["start", "end", "value"], report);
        states.push(StatePeriod {
            start: required_attribute_date(&s, "start")?,
            end: s.attribute_date("end")?,
            state: attribute_code(&s, "value", &codes::STUDY_RIGHT_STATES)?,
        });
    }
    let mut programmes = Vec::new();
    for p in node.all("programme") {
        p.note_rest(
            &[
                "moduleCode",
                "educationCode",
                "municipality",
                "language",
                "name",
            ],
            &["start", "end"],
            report,
        );
        programmes.push(ProgrammePeriod {
            start: required_attribute_date(&p, "start")?,
            end: p.attribute_date("end")?,
            module_code: p.child_text("moduleCode"),
            education_code: p.child_text("educationCode"),
            municipality: p.child_text("municipality"),
            language: p.child_text("language"),
            names: texts(&p, "name"),
        });
    }
    Ok(StudyRight {
        key: node.attribute("key"),
        provider: node.required_attribute("provider")?,
        kind: attribute_code(node, "kind", &codes::STUDY_RIGHT_KINDS)?,
        start: node.required_date("start")?,
        end: node.child_date("end")?,
        states,
        programmes,
        extent: node
            .all("extent")
            .iter()
            .map(|e| credits(e, "unit"))
            .collect::<Result<_, _>>()?,
    })
}

fn required_attribute_date(
    node: &Node<'_>,
    name: &str,
) -> Result<crate::record::Date, FormatError> {
    node.attribute_date(name)?
        .ok_or_else(|| node.invalid(format!("required attribute `{name}` is missing")))
}

fn read_grade(node: &Node<'_>, report: &mut ReadReport) -> Result<Grade, FormatError> {
    let choices = node.children();
    let [choice] = choices.as_slice() else {
        return Err(node.invalid("must hold exactly one scale element"));
    };
    let value = choice
        .text()
        .ok_or_else(|| choice.invalid("grade must not be empty"))?;
    if choice.local() == "muu" {
        choice.note_rest(&[], &["scheme", "name"], report);
        return Ok(Grade {
            scale: GradeScale::Other {
                scheme: choice.required_attribute("scheme")?,
                name: choice.attribute("name"),
            },
            value,
        });
    }
    let row = codes::scale_by_siirto(choice.local())
        .ok_or_else(|| choice.invalid("not a grading scale"))?;
    if !row.values.contains(&value.as_str()) {
        return Err(choice.invalid("not a grade of this scale"));
    }
    Ok(Grade {
        scale: GradeScale::Known(row.scale),
        value,
    })
}

fn read_achievement(node: &Node<'_>, report: &mut ReadReport) -> Result<Achievement, FormatError> {
    node.note_rest(
        &[
            "code",
            "name",
            "date",
            "status",
            "grade",
            "credits",
            "language",
            "recognizedOn",
            "part",
        ],
        &["key", "kind", "provider", "studyRight"],
        report,
    );
    let status = match node.first("status") {
        Some(s) => Some(code(
            &s,
            &codes::ACHIEVEMENT_STATUSES,
            &s.text().unwrap_or_default(),
        )?),
        None => None,
    };
    let mut parts = Vec::new();
    for p in node.all("part") {
        let credits = match p.attribute("credits") {
            Some(v) => Some(
                crate::record::Decimal::parse(&v)
                    .map_err(|e| p.invalid(format!("attribute `credits`: {e}")))?,
            ),
            None => None,
        };
        parts.push(PartRef {
            key: p.required_attribute("key")?,
            credits,
        });
    }
    Ok(Achievement {
        key: node.attribute("key"),
        kind: attribute_code(node, "kind", &codes::ACHIEVEMENT_KINDS)?,
        code: node.child_text("code"),
        code_scheme: node.first("code").and_then(|c| c.attribute("scheme")),
        names: texts(node, "name"),
        date: node.child_date("date")?,
        status,
        grade: node
            .first("grade")
            .map(|g| read_grade(&g, report))
            .transpose()?,
        credits: node
            .all("credits")
            .iter()
            .map(|c| credits(c, "unit"))
            .collect::<Result<_, _>>()?,
        provider: node.required_attribute("provider")?,
        language: node.child_text("language"),
        recognized_on: node.child_date("recognizedOn")?,
        parts,
        study_right: node.attribute("studyRight"),
    })
}

fn read_mobility(node: &Node<'_>, report: &mut ReadReport) -> Result<MobilityPeriod, FormatError> {
    node.note_rest(
        &["start", "end", "country", "kind", "programme"],
        &["key", "provider", "direction", "studyRight"],
        report,
    );
    let kind = match node.first("kind") {
        Some(k) => Some(code(
            &k,
            &codes::MOBILITY_KINDS,
            &k.text().unwrap_or_default(),
        )?),
        None => None,
    };
    let programme = match node.first("programme") {
        Some(p) => Some(code(
            &p,
            &codes::MOBILITY_PROGRAMMES,
            &p.text().unwrap_or_default(),
        )?),
        None => None,
    };
    Ok(MobilityPeriod {
        key: node.attribute("key"),
        provider: node.required_attribute("provider")?,
        start: node.required_date("start")?,
        end: node.child_date("end")?,
        direction: attribute_code(node, "direction", &codes::MOBILITY_DIRECTIONS)?,
        country: node.child_text("country"),
        kind,
        programme,
        study_right: node.attribute("studyRight"),
    })
}

fn read_registration(
    node: &Node<'_>,
    report: &mut ReadReport,
) -> Result<TermRegistration, FormatError> {
    node.note_rest(
        &["registeredOn", "start", "end"],
        &["provider", "state", "studyRight"],
        report,
    );
    Ok(TermRegistration {
        provider: node.required_attribute("provider")?,
        state: attribute_code(node, "state", &codes::REGISTRATION_STATES)?,
        registered_on: node.child_date("registeredOn")?,
        start: node.required_date("start")?,
        end: node.child_date("end")?,
        study_right: node.attribute("studyRight"),
    })
}

fn read_support(node: &Node<'_>, report: &mut ReadReport) -> Result<SupportDecision, FormatError> {
    node.note_rest(
        &["decidedOn", "start", "end", "individualisedSubject"],
        &["key", "kind", "provider"],
        report,
    );
    Ok(SupportDecision {
        key: node.attribute("key"),
        kind: attribute_code(node, "kind", &codes::SUPPORT_KINDS)?,
        decided_on: node.child_date("decidedOn")?,
        start: node.required_date("start")?,
        end: node.child_date("end")?,
        provider: node.attribute("provider"),
        individualised_subjects: node
            .all("individualisedSubject")
            .iter()
            .filter_map(Node::text)
            .collect(),
    })
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/// Writes the whole record: siirto-v1 expresses every field of the model.
pub(crate) fn write(
    record: &StudentRecord,
    context: &WriteContext,
    report: &mut WriteReport,
) -> Result<Vec<u8>, FormatError> {
    // Nothing is dropped; the report stays empty except for foreign credit schemes siirto-v1
    // cannot name (see `unit_token`).
    let generated = context.generated_at.rfc3339();
    let mut x = XmlOut::new();
    x.open(
        ROOT,
        &[
            ("xmlns", NAMESPACE),
            ("version", "1"),
            ("generatedAt", &generated),
        ],
    );
    write_student(&mut x, record);
    if !record.providers.is_empty() {
        x.open("providers", &[]);
        for p in &record.providers {
            x.open("provider", &[("key", &p.key)]);
            write_ids(&mut x, &p.identifiers);
            write_texts(&mut x, "name", &p.names);
            opt_leaf(&mut x, "country", p.country.as_deref());
            opt_leaf(&mut x, "url", p.url.as_deref());
            x.close();
        }
        x.close();
    }
    if !record.study_rights.is_empty() {
        x.open("studyRights", &[]);
        for (i, r) in record.study_rights.iter().enumerate() {
            let kind = token(&codes::STUDY_RIGHT_KINDS, r.kind)?;
            let mut attributes = Vec::new();
            if let Some(k) = &r.key {
                attributes.push(("key", k.as_str()));
            }
            attributes.push(("provider", &r.provider));
            attributes.push(("kind", kind));
            x.open("studyRight", &attributes);
            x.leaf("start", &[], &r.start.to_string());
            opt_leaf(&mut x, "end", r.end.map(|d| d.to_string()).as_deref());
            for s in &r.states {
                let start = s.start.to_string();
                let end = s.end.map(|d| d.to_string());
                let mut a = vec![("start", start.as_str())];
                if let Some(e) = &end {
                    a.push(("end", e.as_str()));
                }
                a.push(("value", token(&codes::STUDY_RIGHT_STATES, s.state)?));
                x.empty("state", &a);
            }
            for p in &r.programmes {
                let start = p.start.to_string();
                let end = p.end.map(|d| d.to_string());
                let mut a = vec![("start", start.as_str())];
                if let Some(e) = &end {
                    a.push(("end", e.as_str()));
                }
                x.open("programme", &a);
                opt_leaf(&mut x, "moduleCode", p.module_code.as_deref());
                opt_leaf(&mut x, "educationCode", p.education_code.as_deref());
                opt_leaf(&mut x, "municipality", p.municipality.as_deref());
                opt_leaf(&mut x, "language", p.language.as_deref());
                write_texts(&mut x, "name", &p.names);
                x.close();
            }
            for (j, c) in r.extent.iter().enumerate() {
                write_credits(
                    &mut x,
                    "extent",
                    c,
                    &format!("study_rights[{i}].extent[{j}]"),
                    report,
                );
            }
            x.close();
        }
        x.close();
    }
    if !record.achievements.is_empty() {
        x.open("achievements", &[]);
        for (i, a) in record.achievements.iter().enumerate() {
            write_achievement(&mut x, i, a, report)?;
        }
        x.close();
    }
    if !record.mobility_periods.is_empty() {
        x.open("mobilityPeriods", &[]);
        for m in &record.mobility_periods {
            let mut a = Vec::new();
            if let Some(k) = &m.key {
                a.push(("key", k.as_str()));
            }
            a.push(("provider", &m.provider));
            a.push((
                "direction",
                token(&codes::MOBILITY_DIRECTIONS, m.direction)?,
            ));
            if let Some(s) = &m.study_right {
                a.push(("studyRight", s));
            }
            x.open("mobilityPeriod", &a);
            x.leaf("start", &[], &m.start.to_string());
            opt_leaf(&mut x, "end", m.end.map(|d| d.to_string()).as_deref());
            opt_leaf(&mut x, "country", m.country.as_deref());
            if let Some(k) = m.kind {
                x.leaf("kind", &[], token(&codes::MOBILITY_KINDS, k)?);
            }
            if let Some(p) = m.programme {
                x.leaf("programme", &[], token(&codes::MOBILITY_PROGRAMMES, p)?);
            }
            x.close();
        }
        x.close();
    }
    if !record.term_registrations.is_empty() {
        x.open("termRegistrations", &[]);
        for t in &record.term_registrations {
            let mut a = vec![
                ("provider", t.provider.as_str()),
                ("state", token(&codes::REGISTRATION_STATES, t.state)?),
            ];
            if let Some(s) = &t.study_right {
                a.push(("studyRight", s));
            }
            x.open("termRegistration", &a);
            opt_leaf(
                &mut x,
                "registeredOn",
                t.registered_on.map(|d| d.to_string()).as_deref(),
            );
            x.leaf("start", &[], &t.start.to_string());
            opt_leaf(&mut x, "end", t.end.map(|d| d.to_string()).as_deref());
            x.close();
        }
        x.close();
    }
    if !record.support_decisions.is_empty() {
        x.open("supportDecisions", &[]);
        for d in &record.support_decisions {
            let mut a = Vec::new();
            if let Some(k) = &d.key {
                a.push(("key", k.as_str()));
            }
            a.push(("kind", token(&codes::SUPPORT_KINDS, d.kind)?));
            if let Some(p) = &d.provider {
                a.push(("provider", p));
            }
            x.open("supportDecision", &a);
            opt_leaf(
                &mut x,
                "decidedOn",
                d.decided_on.map(|d| d.to_string()).as_deref(),
            );
            x.leaf("start", &[], &d.start.to_string());
            opt_leaf(&mut x, "end", d.end.map(|d| d.to_string()).as_deref());
            for s in &d.individualised_subjects {
                x.leaf("individualisedSubject", &[], s);
            }
            x.close();
        }
        x.close();
    }
    x.finish().map_err(|path| FormatError::Unwritable {
        format: Format::SiirtoV1,
        path,
        problem: "text holds characters XML cannot carry".into(),
    })
}

/// The siirto-v1 token of a model value. Every model value has one (the code-table tests
/// check it); a missing row is reported, not unwrapped.
fn token<T: Copy + PartialEq + std::fmt::Debug>(
    table: &CodeTable<T>,
    value: T,
) -> Result<&'static str, FormatError> {
    table
        .siirto_token(value)
        .ok_or_else(|| FormatError::Unwritable {
            format: Format::SiirtoV1,
            path: table.name.to_owned(),
            problem: "the code table has no row for a model value".into(),
        })
}

fn opt_leaf(x: &mut XmlOut, name: &str, value: Option<&str>) {
    if let Some(v) = value {
        x.leaf(name, &[], v);
    }
}

fn write_ids(x: &mut XmlOut, ids: &[TypedId]) {
    for id in ids {
        x.leaf("identifier", &[("type", &id.kind)], &id.value);
    }
}

fn write_texts(x: &mut XmlOut, name: &str, texts: &[LocalizedText]) {
    for t in texts {
        match &t.lang {
            Some(lang) => x.leaf(name, &[("lang", lang)], &t.text),
            None => x.leaf(name, &[], &t.text),
        }
    }
}

fn unit_token(unit: &CreditUnit) -> Option<String> {
    match unit {
        CreditUnit::Known(u) => codes::unit_row(*u).map(|r| r.siirto.to_owned()),
        CreditUnit::Other(scheme) => {
            let ok = !scheme.is_empty()
                && scheme.chars().count() <= 100
                && !scheme.chars().any(char::is_whitespace);
            ok.then(|| format!("{}{scheme}", codes::SIIRTO_FOREIGN_UNIT_PREFIX))
        }
    }
}

fn write_credits(x: &mut XmlOut, name: &str, c: &Credits, path: &str, report: &mut WriteReport) {
    match unit_token(&c.unit) {
        Some(unit) => x.leaf(name, &[("unit", &unit)], c.value.as_str()),
        None => report.dropped(
            path,
            "siirto-v1 names foreign credit schemes as x-<name> without whitespace",
        ),
    }
}

fn write_student(x: &mut XmlOut, record: &StudentRecord) {
    let s = &record.student;
    x.open(
        "student",
        &[(
            "turvakielto",
            if record.turvakielto { "true" } else { "false" },
        )],
    );
    opt_leaf(x, "henkilotunnus", s.henkilotunnus.as_deref());
    opt_leaf(x, "oppijanumero", s.learner_id.as_deref());
    write_ids(x, &s.other_ids);
    opt_leaf(x, "familyName", s.family_name.as_deref());
    opt_leaf(x, "givenNames", s.given_names.as_deref());
    opt_leaf(
        x,
        "birthDate",
        s.birth_date.map(|d| d.to_string()).as_deref(),
    );
    if let Some(g) = s.gender.and_then(|g| codes::GENDERS.siirto_token(g)) {
        x.leaf("gender", &[], g);
    }
    for c in &s.citizenships {
        x.leaf("citizenship", &[], c);
    }
    opt_leaf(x, "motherTongue", s.mother_tongue.as_deref());
    opt_leaf(x, "homeMunicipality", s.home_municipality.as_deref());
    for a in &s.addresses {
        x.open("address", &[]);
        for l in &a.lines {
            x.leaf("line", &[], l);
        }
        opt_leaf(x, "postalCode", a.postal_code.as_deref());
        opt_leaf(x, "locality", a.locality.as_deref());
        opt_leaf(x, "region", a.region.as_deref());
        opt_leaf(x, "country", a.country.as_deref());
        x.close();
    }
    for c in &s.contacts {
        if let Some(kind) = codes::CONTACT_KINDS.siirto_token(c.kind) {
            x.leaf("contact", &[("type", kind)], &c.value);
        }
    }
    x.close();
}

fn write_achievement(
    x: &mut XmlOut,
    i: usize,
    a: &Achievement,
    report: &mut WriteReport,
) -> Result<(), FormatError> {
    let mut attributes = Vec::new();
    if let Some(k) = &a.key {
        attributes.push(("key", k.as_str()));
    }
    attributes.push(("kind", token(&codes::ACHIEVEMENT_KINDS, a.kind)?));
    attributes.push(("provider", &a.provider));
    if let Some(s) = &a.study_right {
        attributes.push(("studyRight", s));
    }
    x.open("achievement", &attributes);
    if let Some(c) = &a.code {
        match &a.code_scheme {
            Some(scheme) => x.leaf("code", &[("scheme", scheme)], c),
            None => x.leaf("code", &[], c),
        }
    } else if a.code_scheme.is_some() {
        report.dropped(
            format!("achievements[{i}].code_scheme"),
            "a code list without a code has no place in siirto-v1",
        );
    }
    write_texts(x, "name", &a.names);
    opt_leaf(x, "date", a.date.map(|d| d.to_string()).as_deref());
    if let Some(s) = a.status {
        x.leaf("status", &[], token(&codes::ACHIEVEMENT_STATUSES, s)?);
    }
    if let Some(g) = &a.grade {
        match &g.scale {
            GradeScale::Known(scale) => match codes::scale_row(*scale) {
                Some(row) => {
                    x.open("grade", &[]);
                    x.leaf(row.siirto, &[], &g.value);
                    x.close();
                }
                None => report.dropped(
                    format!("achievements[{i}].grade"),
                    "the grading scale has no siirto-v1 element",
                ),
            },
            GradeScale::Other { scheme, name } => {
                x.open("grade", &[]);
                let mut attributes = vec![("scheme", scheme.as_str())];
                if let Some(n) = name {
                    attributes.push(("name", n));
                }
                x.leaf("muu", &attributes, &g.value);
                x.close();
            }
        }
    }
    for (j, c) in a.credits.iter().enumerate() {
        write_credits(
            x,
            "credits",
            c,
            &format!("achievements[{i}].credits[{j}]"),
            report,
        );
    }
    opt_leaf(x, "language", a.language.as_deref());
    opt_leaf(
        x,
        "recognizedOn",
        a.recognized_on.map(|d| d.to_string()).as_deref(),
    );
    for p in &a.parts {
        match &p.credits {
            Some(c) => x.empty("part", &[("key", &p.key), ("credits", c.as_str())]),
            None => x.empty("part", &[("key", &p.key)]),
        }
    }
    x.close();
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing unwrap is a failing test
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::record::{
        AchievementKind, AchievementStatus, Date, Decimal, KnownScale, KnownUnit, StudyRightKind,
        StudyRightState,
    };
    use siirto_xsd::{Limits, dom};

    fn subject() -> StudentId {
        StudentId::parse("131052-308T").unwrap()
    }

    fn record() -> StudentRecord {
        StudentRecord {
            student: Student {
                henkilotunnus: Some("131052-308T".into()),
                family_name: Some("Meikäläinen".into()),
                given_names: Some("Matti & <Maija>".into()),
                birth_date: Some(Date::parse("1952-10-13").unwrap()),
                ..Student::default()
            },
            turvakielto: true,
            providers: vec![Provider {
                key: "1.2.246.562.10.1".into(),
                identifiers: vec![TypedId {
                    kind: "organisaatio-oid".into(),
                    value: "1.2.246.562.10.1".into(),
                }],
                names: vec![LocalizedText {
                    lang: Some("fi".into()),
                    text: "Koulu".into(),
                }],
                country: Some("FI".into()),
                url: None,
            }],
            study_rights: vec![StudyRight {
                key: Some("o1".into()),
                provider: "1.2.246.562.10.1".into(),
                kind: StudyRightKind::Basic,
                start: Date::parse("2015-08-01").unwrap(),
                end: None,
                states: vec![StatePeriod {
                    start: Date::parse("2015-08-01").unwrap(),
                    end: None,
                    state: StudyRightState::Active,
                }],
                programmes: vec![],
                extent: vec![],
            }],
            achievements: vec![Achievement {
                key: Some("a1".into()),
                kind: AchievementKind::Course,
                code: Some("MA".into()),
                code_scheme: None,
                names: vec![],
                date: Some(Date::parse("2024-06-01").unwrap()),
                status: Some(AchievementStatus::Passed),
                grade: Some(Grade {
                    scale: GradeScale::Known(KnownScale::FourToTen),
                    value: "9".into(),
                }),
                credits: vec![
                    Credits {
                        value: Decimal::parse("3").unwrap(),
                        unit: CreditUnit::Known(KnownUnit::Vuosiviikkotunti),
                    },
                    Credits {
                        value: Decimal::parse("1.5").unwrap(),
                        unit: CreditUnit::Other("has space".into()),
                    },
                ],
                provider: "1.2.246.562.10.1".into(),
                language: Some("fi".into()),
                recognized_on: None,
                parts: vec![PartRef {
                    key: "p".into(),
                    credits: None,
                }],
                study_right: Some("o1".into()),
            }],
            ..StudentRecord::default()
        }
    }

    fn write_default(r: &StudentRecord) -> (Vec<u8>, WriteReport) {
        let mut report = WriteReport::default();
        let context = WriteContext::new(Timestamp::from_secs(1_700_000_000));
        let bytes = write(r, &context, &mut report).unwrap();
        (bytes, report)
    }

    #[test]
    fn round_trips_and_reports_what_it_cannot_name() {
        let original = record();
        let (bytes, report) = write_default(&original);
        assert_eq!(report.dropped.len(), 1);
        assert_eq!(report.dropped[0].path, "achievements[0].credits[1]");
        let root = dom::parse(&bytes, &Limits::default()).unwrap();
        let mut read_report = ReadReport::default();
        let back = read(&root, &subject(), &mut read_report).unwrap();
        let mut expected = original;
        expected.achievements[0].credits.truncate(1);
        assert_eq!(back, expected);
        assert!(read_report.not_carried.is_empty(), "{read_report:?}");
    }

    #[test]
    fn binds_to_the_subject() {
        let (bytes, _) = write_default(&record());
        let root = dom::parse(&bytes, &Limits::default()).unwrap();
        let other = StudentId::parse("1.2.246.562.24.10000000008").unwrap();
        let err = read(&root, &other, &mut ReadReport::default()).unwrap_err();
        assert_eq!(err.code(), "subject_mismatch");
    }

    #[test]
    fn rejects_other_documents_and_bad_codes() {
        let root = dom::parse(b"<studentRecord/>", &Limits::default()).unwrap();
        let err = read(&root, &subject(), &mut ReadReport::default()).unwrap_err();
        assert_eq!(err.code(), "unreadable_source");
        let text = String::from_utf8(write_default(&record()).0)
            .unwrap()
            .replace("kind=\"basic\"", "kind=\"kindergarten\"");
        let root = dom::parse(text.as_bytes(), &Limits::default()).unwrap();
        let err = read(&root, &subject(), &mut ReadReport::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/studentRecord/studyRights/studyRight: attribute `kind` is not a code of `OpiskeluoikeusTyyppi`"
        );
    }
}

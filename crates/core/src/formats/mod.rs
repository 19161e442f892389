//! Record formats the gateway reads and writes, and conversions between them.
//!
//! Owns: the [`Format`] identifiers of CONTRACT.md; reading a parsed document into the
//! format-neutral [`crate::record`] model for exactly one student ([`read`], with subject
//! binding); writing the model back ([`write`]); and [`convert`] (read → prune to scope →
//! write, with a [`ConversionReport`]); [`convert_record`], the part after reading, which the
//! JSON source format shares; and the identity binding every reader applies ([`is_subject`],
//! [`check_birth_date`]). One submodule per format (`siirto_v1`, `virta`, `elmo`, and the
//! source-only `koski`, KOSKI's JSON); code tables in `codes` and `codelists`; JSON reading
//! within `[limits.json]` in `json_in`.
//!
//! It does no IO, no XML parsing (callers hand in the [`Element`] from `siirto_xsd::dom::parse`) and no
//! schema validation: the caller validates the source before reading and the output against
//! the destination's schema before delivery. Errors name element paths, never values.

pub mod codelists;
pub mod codes;
pub mod elmo;
pub mod json_in;
pub mod koski;
pub mod report;
pub mod siirto_v1;
pub mod virta;
mod xml_in;
mod xml_out;

use std::fmt;

use crate::clock::Timestamp;
use crate::record::{self, StudentRecord};
use crate::scope::Scope;
use crate::student_id::{StudentId, StudentIdKind};
use siirto_xsd::dom::Element;

pub use report::{
    ConversionReport, ConversionSummary, Dropped, ReadReport, Translation, WriteReport,
};

/// A format id as declared per participant in the directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    /// The gateway's own record (`xsd/siirto-record-v1.xsd`).
    SiirtoV1,
    /// The national higher-education register's XML.
    Virta,
    /// EMREX ELMO 1.7.
    Elmo,
    /// KOSKI's oppija JSON (a source format only: Siirto reads it, never writes it).
    Koski,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::SiirtoV1, Format::Virta, Format::Elmo, Format::Koski];
    /// The formats a destination may declare: those Siirto writes.
    pub const DESTINATIONS: [Format; 3] = [Format::SiirtoV1, Format::Virta, Format::Elmo];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::SiirtoV1 => "siirto-v1",
            Format::Virta => "virta",
            Format::Elmo => "elmo",
            Format::Koski => "koski",
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// Whether Siirto writes this format (a destination may declare it).
    pub fn is_destination(self) -> bool {
        Format::DESTINATIONS.contains(&self)
    }

    /// Whether documents of this format are XML validated against a schema (`[schemas]`);
    /// KOSKI's JSON is read into typed structures instead.
    pub fn is_xml(self) -> bool {
        self != Format::Koski
    }

    /// The namespace of the format's root element; `None` for JSON.
    pub fn namespace(self) -> Option<&'static str> {
        match self {
            Format::SiirtoV1 => Some(siirto_v1::NAMESPACE),
            Format::Virta => Some(virta::NAMESPACE),
            Format::Elmo => Some(elmo::NAMESPACE),
            Format::Koski => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a document could not be read, bound or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The document is not about the authorization's subject (or names no one).
    #[error("the document is not about the authorized student: {reason}")]
    SubjectMismatch { reason: String },
    /// The root element is not one this format reader accepts.
    #[error("not a {format} document: the root element is {found}")]
    WrongDocument { format: Format, found: String },
    /// A part of the document the reader needs is missing or malformed.
    #[error("{path}: {problem}")]
    Invalid { path: String, problem: String },
    /// The record cannot be written in the target format.
    #[error("cannot write {format}: {path}: {problem}")]
    Unwritable {
        format: Format,
        path: String,
        problem: String,
    },
}

impl FormatError {
    /// A stable code for the transfer's failure reason and the API.
    pub fn code(&self) -> &'static str {
        match self {
            FormatError::SubjectMismatch { .. } => "subject_mismatch",
            FormatError::WrongDocument { .. } | FormatError::Invalid { .. } => "unreadable_source",
            FormatError::Unwritable { .. } => "conversion_failed",
        }
    }
}

/// What a writer needs besides the record: the time of writing and, for formats that must
/// name an issuing organisation (ELMO), the source participant to name when the record names
/// no education provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteContext {
    pub generated_at: Timestamp,
    /// The directory id of the participant the record came from.
    pub source_participant: Option<String>,
}

impl WriteContext {
    pub fn new(generated_at: Timestamp) -> WriteContext {
        WriteContext {
            generated_at,
            source_participant: None,
        }
    }

    #[must_use]
    pub fn with_source(mut self, participant: impl Into<String>) -> WriteContext {
        self.source_participant = Some(participant.into());
        self
    }
}

/// A converted document and what the conversion did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversion {
    /// UTF-8 XML with a declaration, not yet validated against the destination's schema.
    pub document: Vec<u8>,
    pub report: ConversionReport,
}

/// Reads the record of exactly `subject` from a document in `format`.
pub fn read(
    format: Format,
    root: &Element,
    subject: &StudentId,
) -> Result<StudentRecord, FormatError> {
    read_with_report(format, root, subject).map(|(record, _)| record)
}

/// [`read`], also saying what the model could not carry and what was translated.
pub fn read_with_report(
    format: Format,
    root: &Element,
    subject: &StudentId,
) -> Result<(StudentRecord, ReadReport), FormatError> {
    let mut report = ReadReport::default();
    let record = match format {
        Format::SiirtoV1 => siirto_v1::read(root, subject, &mut report)?,
        Format::Virta => virta::read(root, subject, &mut report)?,
        Format::Elmo => elmo::read(root, subject, &mut report)?,
        Format::Koski => {
            return Err(FormatError::WrongDocument {
                format,
                found: format!("XML ({}); KOSKI documents are JSON", root_name(root)),
            });
        }
    };
    check_birth_date(&record.student)?;
    Ok((record, report))
}

/// Identity binding beyond the identifier: a record whose birth date contradicts the birth
/// date its henkilötunnus encodes is not about the person it names (`subject_mismatch`). The
/// message names neither value.
pub fn check_birth_date(student: &record::Student) -> Result<(), FormatError> {
    let (Some(hetu), Some(born)) = (student.henkilotunnus.as_deref(), student.birth_date) else {
        return Ok(());
    };
    let Some((year, month, day)) = crate::student_id::birth_date(hetu) else {
        // Not a valid henkilötunnus: binding compares it with the subject, which is valid.
        return Ok(());
    };
    if (i32::from(born.year()), born.month(), born.day()) == (year, month, day) {
        Ok(())
    } else {
        Err(FormatError::SubjectMismatch {
            reason: "the record's birth date contradicts the birth date in its henkilötunnus"
                .to_owned(),
        })
    }
}

/// Writes `record` as a `format` document (UTF-8 XML with declaration).
pub fn write(
    format: Format,
    record: &StudentRecord,
    context: &WriteContext,
) -> Result<(Vec<u8>, WriteReport), FormatError> {
    let mut report = WriteReport::default();
    let document = match format {
        Format::SiirtoV1 => siirto_v1::write(record, context, &mut report)?,
        Format::Virta => virta::write(record, context, &mut report)?,
        Format::Elmo => elmo::write(record, context, &mut report)?,
        Format::Koski => {
            return Err(FormatError::Unwritable {
                format,
                path: String::new(),
                problem: "koski is a source format; Siirto does not write it".to_owned(),
            });
        }
    };
    Ok((document, report))
}

/// Reads `subject`'s record from a `from` document, prunes it to `scope` (and the turvakielto
/// rule), and writes it as `to`. Nothing outside the scope reaches the writer.
pub fn convert(
    from: Format,
    to: Format,
    root: &Element,
    subject: &StudentId,
    scope: Scope,
    context: &WriteContext,
) -> Result<Conversion, FormatError> {
    let (record, read_report) = read_with_report(from, root, subject)?;
    convert_record(from, to, record, read_report, scope, context)
}

/// The part of [`convert`] after reading: prunes `record` (read from a `from` document, with
/// `read_report`) to `scope` and the turvakielto rule, and writes it as `to`.
pub fn convert_record(
    from: Format,
    to: Format,
    record: StudentRecord,
    read_report: ReadReport,
    scope: Scope,
    context: &WriteContext,
) -> Result<Conversion, FormatError> {
    let (pruned, prune_report) = record::prune(record, scope);
    let (document, write_report) = write(to, &pruned, context)?;
    let report = ConversionReport::assemble(
        from.as_str(),
        to.as_str(),
        &pruned.fields(),
        prune_report,
        read_report,
        write_report,
    );
    Ok(Conversion { document, report })
}

/// The student a document is about, for `siirto convert` without `--subject`: the document
/// must name exactly one student, with a valid henkilötunnus (preferred) or learner number.
/// The identifier is personal data: do not log it.
pub fn document_subject(format: Format, root: &Element) -> Result<StudentId, FormatError> {
    if root.namespace.as_deref() != format.namespace() || !format.is_xml() {
        return Err(FormatError::WrongDocument {
            format,
            found: root_name(root),
        });
    }
    // (henkilötunnus, learner number) of every student the document names.
    let students: Vec<(Option<String>, Option<String>)> = match format {
        Format::SiirtoV1 => root
            .child("student")
            .map(|s| (s.child_text("henkilotunnus"), s.child_text("oppijanumero")))
            .into_iter()
            .collect(),
        Format::Virta => root
            .children_named("Opiskelija")
            .map(|s| {
                (
                    s.child_text("Henkilotunnus"),
                    s.child_text("KansallinenOppijanumero"),
                )
            })
            .collect(),
        Format::Elmo => root
            .child("learner")
            .map(|l| {
                let of_type = |t: &str| {
                    l.children_named("identifier")
                        .find(|i| i.attribute("type") == Some(t))
                        .map(|i| i.text().trim().to_owned())
                };
                (
                    of_type(elmo::NATIONAL_ID_TYPE),
                    of_type(elmo::LEARNER_ID_TYPE),
                )
            })
            .into_iter()
            .collect(),
        // Refused above: a KOSKI document is JSON (`koski::document_subject`).
        Format::Koski => Vec::new(),
    };
    let [(henkilotunnus, learner_id)] = students.as_slice() else {
        return Err(FormatError::SubjectMismatch {
            reason: format!(
                "the document names {} students; say which one is meant",
                students.len()
            ),
        });
    };
    henkilotunnus
        .as_deref()
        .and_then(|h| StudentId::parse(&normalize_henkilotunnus(h)).ok())
        .or_else(|| {
            learner_id
                .as_deref()
                .and_then(|l| StudentId::parse(&normalize_learner_id(l)).ok())
        })
        .ok_or_else(|| FormatError::SubjectMismatch {
            reason: "the document names no valid henkilötunnus or learner number".to_owned(),
        })
}

/// A henkilötunnus as compared: trimmed, upper case (century signs are kept as they are: since
/// 2023 `-` and `Y` mark different people).
pub(crate) fn normalize_henkilotunnus(s: &str) -> String {
    s.trim().to_ascii_uppercase()
}

/// A learner OID as compared: trimmed.
pub(crate) fn normalize_learner_id(s: &str) -> String {
    s.trim().to_owned()
}

/// Whether a student with these identifiers is `subject`.
pub(crate) fn is_subject(
    subject: &StudentId,
    henkilotunnus: Option<&str>,
    learner_id: Option<&str>,
) -> bool {
    match subject.kind() {
        StudentIdKind::Henkilotunnus => {
            henkilotunnus.is_some_and(|h| normalize_henkilotunnus(h) == subject.as_str())
        }
        StudentIdKind::LearnerOid => {
            learner_id.is_some_and(|l| normalize_learner_id(l) == subject.as_str())
        }
    }
}

/// The error when a document holds students but not `subject`. Names no identifier.
pub(crate) fn mismatch(subject: &StudentId, students: usize) -> FormatError {
    let kind = match subject.kind() {
        StudentIdKind::Henkilotunnus => "henkilötunnus",
        StudentIdKind::LearnerOid => "learner number",
    };
    FormatError::SubjectMismatch {
        reason: if students == 0 {
            "the document names no student identity to bind to".to_owned()
        } else {
            format!(
                "none of the {students} student(s) in the document has the authorization's {kind}"
            )
        },
    }
}

/// The root element as an error message names it (`{namespace}local`).
pub(crate) fn root_name(root: &Element) -> String {
    match &root.namespace {
        Some(ns) => format!("{{{ns}}}{}", root.local),
        None => format!("`{}` in no namespace", root.local),
    }
}

/// Reading docs/mappings.md's tables, for the tests that check them against the code.
#[cfg(test)]
pub(crate) mod mapping_doc {
    /// The lines of the `### heading` section of docs/mappings.md.
    pub fn section(heading: &str) -> Vec<&'static str> {
        const DOC: &str = include_str!("../../../../docs/mappings.md");
        DOC.lines()
            .skip_while(|l| !l.starts_with(&format!("### {heading}")))
            .skip(1)
            .take_while(|l| !l.starts_with("### ") && !l.starts_with("## "))
            .collect()
    }

    /// The trimmed cells of a table row.
    pub fn cells(line: &str) -> Vec<String> {
        line.trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_owned())
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing unwrap is a failing test
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        assert_eq!(
            FormatError::SubjectMismatch {
                reason: String::new()
            }
            .code(),
            "subject_mismatch"
        );
        assert_eq!(
            FormatError::Invalid {
                path: "/a".into(),
                problem: "x".into()
            }
            .code(),
            "unreadable_source"
        );
        assert_eq!(
            FormatError::WrongDocument {
                format: Format::Virta,
                found: "x".into()
            }
            .code(),
            "unreadable_source"
        );
        assert_eq!(
            FormatError::Unwritable {
                format: Format::Elmo,
                path: "/a".into(),
                problem: "x".into()
            }
            .code(),
            "conversion_failed"
        );
    }

    #[test]
    fn binding_compares_normalized_values_of_the_subjects_kind() {
        let hetu = StudentId::parse("131052-308T").unwrap();
        assert!(is_subject(&hetu, Some(" 131052-308t "), None));
        assert!(!is_subject(&hetu, Some("131052Y308T"), None));
        assert!(!is_subject(&hetu, None, Some("131052-308T")));
        let oid = StudentId::parse("1.2.246.562.24.10000000008").unwrap();
        assert!(is_subject(&oid, None, Some(" 1.2.246.562.24.10000000008")));
        assert!(!is_subject(&oid, Some("131052-308T"), None));
        let err = mismatch(&hetu, 2).to_string();
        assert!(!err.contains("131052"));
    }

    #[test]
    fn the_subject_of_a_single_student_document() {
        use siirto_xsd::{Limits, dom};
        let parse = |s: &str| dom::parse(s.as_bytes(), &Limits::default()).unwrap();
        let virta = parse(
            r#"<Virta xmlns="urn:mace:funet.fi:virta/2015/09/01"><Opiskelija avain="1"><Henkilotunnus>131052-308t</Henkilotunnus></Opiskelija></Virta>"#,
        );
        let id = document_subject(Format::Virta, &virta).unwrap();
        assert_eq!(id.as_str(), "131052-308T");
        let two = parse(
            r#"<Virta xmlns="urn:mace:funet.fi:virta/2015/09/01"><Opiskelija avain="1"/><Opiskelija avain="2"/></Virta>"#,
        );
        assert_eq!(
            document_subject(Format::Virta, &two).unwrap_err().code(),
            "subject_mismatch"
        );
        let elmo = parse(
            r#"<elmo xmlns="https://github.com/emrex-eu/elmo-schemas/tree/v1"><learner><identifier type="nationalIdentifier">83041200000</identifier><identifier type="oppijanumero">1.2.246.562.24.10000000008</identifier></learner></elmo>"#,
        );
        let id = document_subject(Format::Elmo, &elmo).unwrap();
        assert_eq!(id.kind(), StudentIdKind::LearnerOid);
        assert_eq!(
            document_subject(Format::SiirtoV1, &elmo)
                .unwrap_err()
                .code(),
            "unreadable_source"
        );
    }

    #[test]
    fn birth_dates_must_agree_with_the_henkilotunnus() {
        use crate::record::{Date, Student};
        use crate::student_id::with_check_character;
        let student = |hetu: &str, born: Option<&str>| Student {
            henkilotunnus: Some(hetu.to_owned()),
            birth_date: born.map(|b| Date::parse(b).unwrap()),
            ..Student::default()
        };
        for (sign, century) in [
            ('+', 1800),
            ('-', 1900),
            ('Y', 1900),
            ('X', 1900),
            ('W', 1900),
            ('V', 1900),
            ('U', 1900),
            ('A', 2000),
            ('B', 2000),
            ('C', 2000),
            ('D', 2000),
            ('E', 2000),
            ('F', 2000),
        ] {
            let hetu = with_check_character(&format!("150608{sign}123"));
            let right = format!("{}-06-15", century + 8);
            assert_eq!(
                check_birth_date(&student(&hetu, Some(&right))),
                Ok(()),
                "{hetu}"
            );
            for wrong in [
                format!("{}-06-15", century + 108),
                format!("{}-06-15", century - 92),
                format!("{}-06-16", century + 8),
                format!("{}-08-06", century + 8),
                "2010-10-13".to_owned(),
            ] {
                let err = check_birth_date(&student(&hetu, Some(&wrong))).unwrap_err();
                assert_eq!(err.code(), "subject_mismatch", "{hetu} {wrong}");
                assert!(!err.to_string().contains("150608"), "{err}");
            }
            // No birth date: nothing to contradict.
            assert_eq!(check_birth_date(&student(&hetu, None)), Ok(()));
        }
        // A henkilötunnus with no valid birth date (31 Feb, 29 Feb 1900, month 13) encodes no
        // date to compare; binding refuses it by the identifier itself.
        for invalid in ["310208A123", "290200-123", "011308A123", "000108A123"] {
            let hetu = with_check_character(invalid);
            assert_eq!(crate::student_id::birth_date(&hetu), None, "{hetu}");
            assert_eq!(
                check_birth_date(&student(&hetu, Some("2008-02-29"))),
                Ok(()),
                "{hetu}"
            );
        }
        // 29 Feb 2000 exists (divisible by 400).
        let leap = with_check_character("290200A123");
        assert_eq!(crate::student_id::birth_date(&leap), Some((2000, 2, 29)));
        assert_eq!(
            check_birth_date(&student(&leap, Some("2000-02-29"))),
            Ok(())
        );
    }

    #[test]
    fn every_reader_binds_the_birth_date() {
        use siirto_xsd::{Limits, dom};
        let subject = StudentId::parse("150608A123J").unwrap();
        // The demo record once carried 2010-10-13 for a henkilötunnus of 15 June 2008.
        for (born, ok) in [("2010-10-13", false), ("2008-06-15", true)] {
            let siirto = format!(
                r#"<studentRecord xmlns="urn:siirto:record:v1" version="1" generatedAt="2026-05-01T10:00:00Z"><student><henkilotunnus>150608A123J</henkilotunnus><birthDate>{born}</birthDate></student></studentRecord>"#
            );
            let elmo = format!(
                r#"<elmo xmlns="https://github.com/emrex-eu/elmo-schemas/tree/v1"><generatedDate>2026-05-01T10:00:00Z</generatedDate><learner><identifier type="nationalIdentifier">150608A123J</identifier><givenNames>M</givenNames><familyName>M</familyName><bday>{born}</bday></learner></elmo>"#
            );
            for (format, text) in [(Format::SiirtoV1, siirto), (Format::Elmo, elmo)] {
                let root = dom::parse(text.as_bytes(), &Limits::default()).unwrap();
                let result = read(format, &root, &subject);
                assert_eq!(result.is_ok(), ok, "{format} {born}: {result:?}");
                if let Err(e) = result {
                    assert_eq!(e.code(), "subject_mismatch");
                }
            }
        }
    }

    #[test]
    fn formats_round_trip_their_names() {
        for f in Format::ALL {
            assert_eq!(Format::parse(f.as_str()), Some(f));
        }
        assert_eq!(Format::parse("xml"), None);
    }
}

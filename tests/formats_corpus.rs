//! Evidence on the real documents: every VIRTA and ELMO file of the corpus that libxml2 marks
//! valid is converted to every format under several scopes; each output is validated against
//! its schema, walked for data outside the scope, re-read, and checked for its achievements,
//! grades and credits (kept, or reported as dropped), for the report's accounting, and for
//! being about the one named student.

#[path = "support/formats_validate.rs"]
mod validate;
#[path = "support/formats_walk.rs"]
mod walk;

use std::collections::BTreeMap;
use std::path::Path;

use siirto_core::clock::Timestamp;
use siirto_core::formats::{self, Conversion, Format, FormatError, WriteContext};
use siirto_core::record::{self, Achievement, CreditUnit, GradeScale, StudentRecord, path_within};
use siirto_core::scope::Scope;
use siirto_core::student_id::{StudentId, StudentIdKind};
use siirto_xsd::Limits;
use siirto_xsd::dom::{self, Element};

use validate::Checked;

/// The Digital and Population Data Services Agency's documented example henkilötunnus.
const VALID_HETU: &str = "131052-308T";

const SCOPES: [&str; 6] = [
    "identity enrolment achievements mobility registrations support",
    "identity",
    "identity achievements",
    "identity enrolment registrations",
    "identity mobility",
    "identity enrolment achievements",
];

const VIRTA_LISTS: [&str; 4] = [
    "Opiskeluoikeudet",
    "LukukausiIlmoittautumiset",
    "Opintosuoritukset",
    "Liikkuvuusjaksot",
];

struct Source {
    label: String,
    format: Format,
    bytes: Vec<u8>,
    subject: StudentId,
}

fn parse(bytes: &[u8]) -> Element {
    dom::parse(bytes, &Limits::default()).expect("document parses")
}

fn context() -> WriteContext {
    WriteContext::new(Timestamp::from_secs(1_790_000_000)).with_source("corpus-source")
}

/// The document with its XML declaration removed.
fn without_declaration(text: &str) -> &str {
    let text = text.trim_start_matches('\u{feff}').trim_start();
    match text.strip_prefix("<?xml") {
        Some(rest) => rest.split_once("?>").map_or(text, |(_, r)| r.trim_start()),
        None => text,
    }
}

/// How a corpus file becomes something the gateway can bind to a valid subject, and what
/// happens with it as it is.
fn sources(corpus: &Path, file: &str, format: Format) -> Vec<Source> {
    let path = corpus.join(file);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let root = parse(&bytes);
    let valid = StudentId::parse(VALID_HETU).expect("documented example is valid");
    let mut out = Vec::new();
    match format {
        Format::Virta if VIRTA_LISTS.contains(&root.local.as_str()) => {
            // An item list names no student: nobody can be bound to it.
            let err = formats::read(Format::Virta, &root, &valid).expect_err("nobody binds");
            assert_eq!(err.code(), "subject_mismatch", "{file}: {err}");
            // Wrapped under a student with a valid identifier (in memory), it is a Virta
            // document the gateway can read.
            let text = String::from_utf8(bytes.clone()).expect("UTF-8");
            let key = root
                .elements()
                .next()
                .and_then(|item| item.attribute("opiskelijaAvain"))
                .expect("items name their student");
            let wrapped = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Virta xmlns=\"{ns}\"><Opiskelija avain=\"{key}\"><Henkilotunnus>{VALID_HETU}</Henkilotunnus>{inner}</Opiskelija></Virta>",
                ns = formats::virta::NAMESPACE,
                inner = without_declaration(&text),
            );
            let wrapped = wrapped.into_bytes();
            validate::validate_output(Format::Virta, &wrapped, &format!("{file} wrapped"));
            out.push(Source {
                label: format!("{file} (wrapped under a student)"),
                format,
                bytes: wrapped,
                subject: valid,
            });
        }
        Format::Virta => {
            for student in root.children_named("Opiskelija") {
                for (element, kind) in [
                    ("Henkilotunnus", "henkilötunnus"),
                    ("KansallinenOppijanumero", "oppijanumero"),
                ] {
                    let Some(id) = student.child_text(element) else {
                        continue;
                    };
                    match StudentId::parse(&id) {
                        Ok(subject) => out.push(Source {
                            label: format!("{file} (by {kind})"),
                            format,
                            bytes: bytes.clone(),
                            subject,
                        }),
                        Err(e) => eprintln!("{file}: the sample's {kind} is not valid ({e})"),
                    }
                }
            }
            // A valid subject the document does not name is refused.
            let err = formats::read(Format::Virta, &root, &valid).expect_err("nobody binds");
            assert_eq!(err.code(), "subject_mismatch", "{file}: {err}");
        }
        Format::Elmo => {
            // The example names a Polish PESEL: no Finnish subject binds to it as it is.
            let err = formats::read(Format::Elmo, &root, &valid).expect_err("nobody binds");
            assert_eq!(err.code(), "subject_mismatch", "{file}: {err}");
            let text = String::from_utf8(bytes).expect("UTF-8");
            let marker = "<identifier type=\"nationalIdentifier\">";
            let start = text.find(marker).expect("the example has a national id") + marker.len();
            let end = start + text[start..].find('<').expect("closed");
            let rewritten = format!("{}{VALID_HETU}{}", &text[..start], &text[end..]);
            // The birth date must be the henkilötunnus' own (identity binding).
            let bday = rewritten
                .find("<bday>")
                .expect("the example has a birth date")
                + 6;
            let bday_end = bday + rewritten[bday..].find('<').expect("closed");
            let rewritten =
                format!("{}1952-10-13{}", &rewritten[..bday], &rewritten[bday_end..]).into_bytes();
            validate::validate_output(Format::Elmo, &rewritten, &format!("{file} rewritten"));
            out.push(Source {
                label: format!(
                    "{file} (national identifier and birth date rewritten to a valid henkilötunnus)"
                ),
                format,
                bytes: rewritten,
                subject: valid,
            });
        }
        Format::SiirtoV1 | Format::Koski => {
            unreachable!("the manifest lists only VIRTA and ELMO documents")
        }
    }
    out
}

/// An achievement as far as the invariant cares: its grade and its credits.
type Signature = (Option<(String, String)>, Vec<(String, String)>);

fn scale_name(s: &GradeScale) -> String {
    match s {
        GradeScale::Known(k) => format!("{k:?}"),
        GradeScale::Other { scheme, .. } => format!("other:{scheme}"),
    }
}

fn unit_name(u: &CreditUnit) -> String {
    match u {
        CreditUnit::Known(k) => format!("{k:?}"),
        CreditUnit::Other(s) => format!("other:{}", s.to_lowercase()),
    }
}

fn signature(a: &Achievement, grade: bool, credits: &dyn Fn(usize) -> bool) -> Signature {
    let g = if grade {
        a.grade
            .as_ref()
            .map(|g| (scale_name(&g.scale), g.value.clone()))
    } else {
        None
    };
    let mut c: Vec<(String, String)> = a
        .credits
        .iter()
        .enumerate()
        .filter(|(j, _)| credits(*j))
        .map(|(_, c)| (unit_name(&c.unit), c.value.to_string()))
        .collect();
    c.sort();
    (g, c)
}

/// The achievements the output must hold: the pruned record's, minus what the report says
/// the target dropped.
fn expected_achievements(pruned: &StudentRecord, conversion: &Conversion) -> Vec<Signature> {
    let dropped: Vec<&str> = conversion
        .report
        .dropped_by_target
        .iter()
        .map(|d| d.path.as_str())
        .collect();
    let is_dropped = |p: &str| dropped.iter().any(|d| path_within(p, d));
    let mut out: Vec<Signature> = pruned
        .achievements
        .iter()
        .enumerate()
        .filter(|(i, _)| !is_dropped(&format!("achievements[{i}]")))
        .map(|(i, a)| {
            signature(a, !is_dropped(&format!("achievements[{i}].grade")), &|j| {
                !is_dropped(&format!("achievements[{i}].credits[{j}]"))
            })
        })
        .collect();
    out.sort();
    out
}

#[derive(Default)]
struct Tally {
    conversions: usize,
    validated: usize,
    skipped: usize,
    achievements: usize,
    by_pair: BTreeMap<String, usize>,
}

fn check(source: &Source, to: Format, scope_text: &str, tally: &mut Tally) {
    let scope = Scope::parse(scope_text).expect("scope");
    let label = format!("{} → {to} [{scope}]", source.label);
    let root = parse(&source.bytes);
    let conversion = formats::convert(source.format, to, &root, &source.subject, scope, &context())
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    let document = &conversion.document;

    match validate::validate_output(to, document, &label) {
        Checked::Xmllint => tally.validated += 1,
        Checked::Skipped => tally.skipped += 1,
    }
    walk::assert_within_scope(to, document, scope, &label);
    assert_eq!(walk::student_count(to, document), 1, "{label}");
    let subject = source.subject.as_str();
    for id in walk::stated_identifiers(to, document) {
        let same_kind = match source.subject.kind() {
            StudentIdKind::Henkilotunnus => !id.starts_with("1."),
            StudentIdKind::LearnerOid => id.starts_with("1."),
        };
        if same_kind {
            assert_eq!(
                id, subject,
                "{label}: another student's identifier in the output"
            );
        }
    }

    // Re-read: the output is about the subject, and its achievements are the expected ones.
    let out = formats::read(to, &parse(document), &source.subject)
        .unwrap_or_else(|e| panic!("{label}: re-reading the output: {e}"));
    let (record, _) =
        formats::read_with_report(source.format, &root, &source.subject).expect("source reads");
    let original_fields = record.fields().len();
    let (pruned, prune_report) = record::prune(record, scope);
    let expected = expected_achievements(&pruned, &conversion);
    let mut got: Vec<Signature> = out
        .achievements
        .iter()
        .map(|a| signature(a, true, &|_| true))
        .collect();
    got.sort();
    assert_eq!(
        got, expected,
        "{label}: achievements, grades or credits changed"
    );
    tally.achievements += got.len();

    // Accounting: every field of the source record is carried or dropped with a reason.
    let report = &conversion.report;
    assert_eq!(
        report.dropped_by_scope, prune_report.dropped_by_scope,
        "{label}"
    );
    let pruned_fields = pruned.fields();
    let covered = pruned_fields
        .iter()
        .filter(|f| {
            report
                .dropped_by_target
                .iter()
                .any(|d| path_within(&f.path, &d.path))
        })
        .count();
    assert_eq!(
        pruned_fields.len(),
        report.carried.len() + covered,
        "{label}: carried and dropped-by-target do not add up"
    );
    assert_eq!(
        original_fields,
        pruned_fields.len()
            + report.dropped_by_scope.len()
            + report.dropped_by_turvakielto.len()
            + report.dropped_unreferenced.len(),
        "{label}: pruning does not add up"
    );
    for category in &report.categories {
        assert!(scope.iter().any(|c| c.as_str() == *category), "{label}");
    }

    // Neither the report nor its summary names the student.
    let family = pruned.student.family_name.clone();
    for json in [
        serde_json::to_string(report).expect("report serializes"),
        serde_json::to_string(&report.summary()).expect("summary serializes"),
    ] {
        assert!(
            !json.contains(subject),
            "{label}: the report names the student"
        );
        if let Some(f) = &family {
            assert!(
                !json.contains(f.as_str()),
                "{label}: the report names the student"
            );
        }
    }
    let summary = serde_json::to_string(&report.summary()).expect("summary serializes");
    assert!(
        !summary.contains("[0]"),
        "{label}: summary paths carry indices"
    );

    tally.conversions += 1;
    *tally
        .by_pair
        .entry(format!("{} → {to}", source.format))
        .or_insert(0) += 1;
}

#[test]
fn every_valid_corpus_document_converts_to_every_format() {
    let Some(corpus) = siirto_testsupport::corpus() else {
        return;
    };
    let files = validate::valid_corpus_files(&corpus);
    assert!(
        files.iter().any(|(_, f)| *f == Format::Virta)
            && files.iter().any(|(_, f)| *f == Format::Elmo),
        "the corpus lists valid VIRTA and ELMO files"
    );
    let mut tally = Tally::default();
    let mut source_count = 0;
    for (file, format) in &files {
        let srcs = sources(&corpus, file, *format);
        assert!(!srcs.is_empty(), "{file}: no way to bind a subject");
        for source in &srcs {
            source_count += 1;
            for to in Format::DESTINATIONS {
                for scope in SCOPES {
                    check(source, to, scope, &mut tally);
                }
            }
        }
    }
    eprintln!(
        "corpus: {} valid files, {source_count} bound sources, {} conversions ({} validated by xmllint, {} skipped), {} achievements checked; by pair: {:?}",
        files.len(),
        tally.conversions,
        tally.validated,
        tally.skipped,
        tally.achievements,
        tally.by_pair
    );
}

#[test]
fn full_scope_keeps_every_achievement_of_virta_xml() {
    let Some(corpus) = siirto_testsupport::corpus() else {
        return;
    };
    let source = sources(&corpus, "virta/samples/Virta.xml", Format::Virta)
        .into_iter()
        .next()
        .expect("Virta.xml binds");
    let root = parse(&source.bytes);
    for to in Format::DESTINATIONS {
        let c = formats::convert(
            Format::Virta,
            to,
            &root,
            &source.subject,
            Scope::all(),
            &context(),
        )
        .expect("converts");
        let out = formats::read(to, &parse(&c.document), &source.subject).expect("re-reads");
        assert_eq!(out.achievements.len(), 5, "→ {to}");
        // Three graded 1-5, one HYV on the pass scale: the grades survive in every format.
        let mut grades: Vec<String> = out
            .achievements
            .iter()
            .filter_map(|a| a.grade.as_ref().map(|g| g.value.clone()))
            .collect();
        grades.sort();
        assert_eq!(grades, vec!["3", "4", "5", "5", "HYV"], "→ {to}");
        let total: f64 = out
            .achievements
            .iter()
            .flat_map(|a| &a.credits)
            .map(|c| c.value.as_str().parse::<f64>().expect("number"))
            .sum();
        assert_eq!(total, 32.0, "→ {to}");
    }
}

#[test]
fn invalid_corpus_documents_are_refused_cleanly() {
    let Some(corpus) = siirto_testsupport::corpus() else {
        return;
    };
    let subject = StudentId::parse(VALID_HETU).expect("valid");
    let mut refused = 0;
    for (file, format) in validate::invalid_corpus_files(&corpus) {
        let path = corpus.join(&file);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let root = match dom::parse(&bytes, &Limits::default()) {
            Ok(root) => root,
            Err(e) => {
                // Several samples are fragments with comments before the root: still XML.
                panic!("{file}: not even XML ({e})");
            }
        };
        let err: FormatError = formats::read(format, &root, &subject)
            .expect_err("an invalid sample is not read as a record");
        assert!(
            matches!(err.code(), "unreadable_source" | "subject_mismatch"),
            "{file}: {err}"
        );
        assert!(!err.to_string().contains(VALID_HETU));
        refused += 1;
    }
    assert!(refused > 0);
}

//! Evidence for the four questions of a check (`siirto_core::check`) on the real documents of
//! `../shared/corpus`: every KOSKI oppija JSON, each one also converted to siirto-v1 and read
//! back, and VIRTA's complete sample (`virta/samples/Virta.xml`), as it is and with the
//! corpus' degree (`tutkintosuoritus_772101.xml`, `Laji` 1) added. The expected answer is
//! decided in the test from the document itself (serde_json for KOSKI, plain text scanning for
//! VIRTA), never by the function under test; every supported question is seen both true and
//! false for each format.

#[path = "support/checks_expected.rs"]
mod expected;

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;
use siirto_core::check::{self, Question};
use siirto_core::clock::Timestamp;
use siirto_core::formats::json_in::JsonLimits;
use siirto_core::formats::{self, Format, WriteContext, koski};
use siirto_core::record::{Date, StudentRecord};
use siirto_core::scope::Scope;
use siirto_core::student_id::StudentId;
use siirto_xsd::Limits;
use siirto_xsd::dom;

use expected::{elements, koski_expected, virta_active, virta_degree, virta_with_degree};

/// The Digital and Population Data Services Agency's documented example henkilötunnus.
const VALID_HETU: &str = "131052-308T";

/// Two days the questions are asked on: one before most corpus study rights ended, one after.
const DAYS: [&str; 3] = ["2015-01-01", "2020-01-01", "2026-06-01"];

fn koski_files() -> Option<Vec<PathBuf>> {
    let dir = siirto_testsupport::corpus()?.join("koski");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("koski corpus folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "the KOSKI corpus has its documents");
    Some(files)
}

fn day(s: &str) -> Date {
    Date::parse(s).expect("test day")
}

/// Every answer for every supported question and day, compared with `expected`; returns the
/// (question, answer) pairs seen.
fn compare(
    label: &str,
    format: Format,
    record: &StudentRecord,
    expected: impl Fn(Question, &str) -> bool,
    seen: &mut BTreeSet<(&'static str, bool)>,
) {
    for q in Question::ALL.into_iter().filter(|q| q.supported_by(format)) {
        for today in DAYS {
            let want = expected(q, today);
            assert_eq!(
                check::answer(q, record, day(today)),
                want,
                "{label} ({format}): {q} on {today}"
            );
            seen.insert((q.as_str(), want));
        }
    }
}

fn assert_both_answers_seen(format: Format, seen: &BTreeSet<(&'static str, bool)>) {
    for q in Question::ALL.into_iter().filter(|q| q.supported_by(format)) {
        for answer in [true, false] {
            assert!(
                seen.contains(&(q.as_str(), answer)),
                "{format}: {q} never {answer} over the corpus: {seen:?}"
            );
        }
    }
}

#[test]
fn koski_and_siirto_v1_answers_match_the_documents() {
    let Some(files) = koski_files() else {
        return;
    };
    let context = WriteContext::new(Timestamp::from_secs(1_790_000_000)).with_source("koski");
    let mut seen_koski = BTreeSet::new();
    let mut seen_siirto = BTreeSet::new();
    for path in files {
        let label = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let bytes = std::fs::read(&path).expect("read");
        let doc: Value = serde_json::from_slice(&bytes).expect("json");
        let (oppija, _) = koski::parse(&bytes, &JsonLimits::default()).expect("parses");
        let subject = koski::document_subject(&oppija).expect("names a student");
        let (record, report) =
            koski::read_bytes(&bytes, &JsonLimits::default(), &subject).expect("reads");
        compare(
            &label,
            Format::Koski,
            &record,
            |q, today| koski_expected(&doc, q, today),
            &mut seen_koski,
        );
        // The same record as a municipal system would send it: siirto-v1, read back.
        let conversion = formats::convert_record(
            Format::Koski,
            Format::SiirtoV1,
            record,
            report,
            Scope::parse("identity enrolment achievements").expect("scope"),
            &context,
        )
        .expect("converts");
        let root = dom::parse(&conversion.document, &Limits::default()).expect("parses");
        let back = formats::read(Format::SiirtoV1, &root, &subject).expect("reads back");
        compare(
            &label,
            Format::SiirtoV1,
            &back,
            |q, today| koski_expected(&doc, q, today),
            &mut seen_siirto,
        );
    }
    assert_both_answers_seen(Format::Koski, &seen_koski);
    assert_both_answers_seen(Format::SiirtoV1, &seen_siirto);
}

#[test]
fn virta_answers_match_the_documents() {
    let Some(corpus) = siirto_testsupport::corpus() else {
        return;
    };
    let sample = std::fs::read_to_string(corpus.join("virta/samples/Virta.xml")).expect("sample");
    let hetu = elements(&sample, "Henkilotunnus")[0];
    let sample = sample.replace(hetu, VALID_HETU);
    let with_degree = virta_with_degree(&sample, &corpus);
    let subject = StudentId::parse(VALID_HETU).expect("id");
    let mut seen = BTreeSet::new();
    for (label, doc) in [("Virta.xml", &sample), ("Virta.xml + 772101", &with_degree)] {
        let root = dom::parse(doc.as_bytes(), &Limits::default()).expect("parses");
        let record = formats::read(Format::Virta, &root, &subject).expect("reads");
        compare(
            label,
            Format::Virta,
            &record,
            |q, today| match q {
                Question::HigherEducationDegreeCompleted => virta_degree(doc),
                Question::ActiveStudyRight => virta_active(doc, today),
                _ => unreachable!("not supported by virta"),
            },
            &mut seen,
        );
    }
    assert_both_answers_seen(Format::Virta, &seen);
}

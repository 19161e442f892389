//! Evidence for the four questions of a check (`siirto_core::check`) on the real documents of
//! `../shared/corpus`: every KOSKI oppija JSON, each one also converted to siirto-v1 and read
//! back, and VIRTA's complete sample (`virta/samples/Virta.xml`), as it is and with the
//! corpus' degree (`tutkintosuoritus_772101.xml`, `Laji` 1) added. The expected answer is
//! decided in the test from the document itself (serde_json for KOSKI, plain text scanning for
//! VIRTA), never by the function under test; every supported question is seen both true and
//! false for each format.

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

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// KOSKI: a suoritus of one of `types` with `vahvistus`, in a study right of one of `rights`.
fn koski_completed(doc: &Value, rights: &[&str], types: &[&str]) -> bool {
    doc["opiskeluoikeudet"]
        .as_array()
        .expect("opiskeluoikeudet")
        .iter()
        .filter(|o| rights.contains(&o["tyyppi"]["koodiarvo"].as_str().unwrap_or("")))
        .flat_map(|o| o["suoritukset"].as_array().expect("suoritukset"))
        .any(|s| {
            types.contains(&s["tyyppi"]["koodiarvo"].as_str().unwrap_or(""))
                && s.get("vahvistus").is_some_and(|v| !v.is_null())
        })
}

/// KOSKI: a study right begun by `today`, not ended before it, whose latest state period begun
/// by `today` is `lasna` or `loma`.
fn koski_active(doc: &Value, today: &str) -> bool {
    doc["opiskeluoikeudet"]
        .as_array()
        .expect("opiskeluoikeudet")
        .iter()
        .any(|o| {
            let periods = o["tila"]["opiskeluoikeusjaksot"]
                .as_array()
                .expect("jaksot");
            let start = text(o, "alkamispäivä")
                .or_else(|| periods.first().and_then(|p| text(p, "alku")))
                .expect("start");
            if start > today || text(o, "päättymispäivä").is_some_and(|end| end < today) {
                return false;
            }
            periods
                .iter()
                .filter(|p| text(p, "alku").expect("alku") <= today)
                .max_by_key(|p| text(p, "alku"))
                .is_some_and(|p| matches!(p["tila"]["koodiarvo"].as_str(), Some("lasna" | "loma")))
        })
}

fn koski_expected(doc: &Value, q: Question, today: &str) -> bool {
    match q {
        Question::BasicEducationCompleted => koski_completed(
            doc,
            &["perusopetus", "aikuistenperusopetus"],
            &[
                "perusopetuksenoppimaara",
                "aikuistenperusopetuksenoppimaara",
            ],
        ),
        Question::UpperSecondaryCompleted => koski_completed(
            doc,
            &["lukiokoulutus", "ammatillinenkoulutus"],
            &["lukionoppimaara", "ammatillinentutkinto"],
        ),
        Question::ActiveStudyRight => koski_active(doc, today),
        Question::HigherEducationDegreeCompleted => unreachable!("not supported by koski"),
    }
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

/// The text of every `<name>…</name>` directly in `block`, in order.
fn elements<'a>(block: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut out = Vec::new();
    let mut rest = block;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(&after[..j]);
        rest = &after[j + close.len()..];
    }
    out
}

/// The blocks `<name …>…</name>` of `doc`.
fn blocks<'a>(doc: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name} ");
    let close = format!("</{name}>");
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i..];
        let Some(j) = after.find(&close) else { break };
        out.push(&after[..j]);
        rest = &after[j + close.len()..];
    }
    out
}

/// VIRTA, read as text: an `Opintosuoritus` with `Laji` 1.
fn virta_degree(doc: &str) -> bool {
    blocks(doc, "Opintosuoritus")
        .iter()
        .any(|b| elements(b, "Laji").contains(&"1"))
}

/// VIRTA, read as text: an `Opiskeluoikeus` begun by `today` and not ended before it, whose
/// latest `Tila` begun by `today` has `Koodi` 1 and has not ended.
fn virta_active(doc: &str, today: &str) -> bool {
    blocks(doc, "Opiskeluoikeus").iter().any(|b| {
        let head = &b[..b.find("<Tila>").unwrap_or(b.len())];
        let start = elements(head, "AlkuPvm")[0];
        let end = elements(head, "LoppuPvm").first().copied();
        if start > today || end.is_some_and(|e| e < today) {
            return false;
        }
        elements(b, "Tila")
            .into_iter()
            .map(|t| {
                (
                    elements(t, "AlkuPvm")[0],
                    elements(t, "LoppuPvm").first().copied(),
                    elements(t, "Koodi")[0],
                )
            })
            .filter(|(s, _, _)| *s <= today)
            .max_by_key(|(s, _, _)| *s)
            .is_some_and(|(_, e, k)| k == "1" && e.is_none_or(|e| e >= today))
    })
}

#[test]
fn virta_answers_match_the_documents() {
    let Some(corpus) = siirto_testsupport::corpus() else {
        return;
    };
    let sample = std::fs::read_to_string(corpus.join("virta/samples/Virta.xml")).expect("sample");
    let hetu = elements(&sample, "Henkilotunnus")[0];
    let sample = sample.replace(hetu, VALID_HETU);
    let degree = std::fs::read_to_string(corpus.join("virta/samples/tutkintosuoritus_772101.xml"))
        .expect("degree sample");
    let degree = degree.trim_start_matches('\u{feff}');
    let degree = match degree.strip_prefix("<?xml") {
        Some(rest) => rest.split_once("?>").expect("declaration").1,
        None => degree,
    };
    // Bound to the sample's student and study right; its parts are not in the sample.
    let cut = degree.find("<Sisaltyvyys").expect("parts");
    let degree = format!(
        "{}</Opintosuoritus>",
        &degree[..cut]
            .replace("opiskelijaAvain=\"hlo-11889\"", "opiskelijaAvain=\"12345\"")
            .replace(
                "opiskeluoikeusAvain=\"opinoik-114000\"",
                "opiskeluoikeusAvain=\"98765\""
            )
    );
    let with_degree = sample.replacen(
        "</Opintosuoritukset>",
        &format!("{degree}\n</Opintosuoritukset>"),
        1,
    );
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

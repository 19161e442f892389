//! Evidence on KOSKI's own documents: every oppija JSON of `../shared/corpus/koski` is read,
//! converted to siirto-v1 and ELMO under several scopes, and each output is validated with the
//! project's XSD engine and with libxml2 (`xmllint`; SKIPPED without it, a failure under
//! `SIIRTO_REQUIRE_TOOLS=1`). The student's completions and grades are counted from the JSON
//! here, independently of the reader, and must all be in the output; nothing outside the scope
//! may appear; turvakielto must leave no location or contact detail.

#[path = "support/formats_validate.rs"]
mod validate;
#[path = "support/formats_walk.rs"]
mod walk;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use serde_json::Value;
use siirto_core::clock::Timestamp;
use siirto_core::formats::json_in::JsonLimits;
use siirto_core::formats::koski::{self, KoskiError};
use siirto_core::formats::{self, Conversion, Format, FormatError, WriteContext};
use siirto_core::record::StudentRecord;
use siirto_core::scope::{Category, Scope};
use siirto_core::student_id::StudentId;
use siirto_xsd::Limits;
use siirto_xsd::dom;
use siirto_xsd::schema::Schema;

const SCOPES: [&str; 5] = [
    "identity enrolment achievements mobility registrations support",
    "identity",
    "identity achievements",
    "identity enrolment",
    "identity support",
];

/// Every `*.json` of the corpus' koski folder; `None` (after a loud skip) without the corpus.
fn koski_files() -> Option<Vec<PathBuf>> {
    let dir = siirto_testsupport::corpus()?.join("koski");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 7,
        "the corpus has the KOSKI documents ({})",
        dir.display()
    );
    Some(files)
}

fn context() -> WriteContext {
    WriteContext::new(Timestamp::from_secs(1_790_000_000)).with_source("koski")
}

/// The project's XSD engine, one compiled schema per format.
fn engine(format: Format) -> Arc<Schema> {
    static SCHEMAS: OnceLock<BTreeMap<Format, Arc<Schema>>> = OnceLock::new();
    SCHEMAS
        .get_or_init(|| {
            Format::DESTINATIONS
                .into_iter()
                .filter(|f| *f != Format::Virta)
                .map(|f| {
                    let schema = Schema::load(&validate::schema(f).expect("the corpus is there"))
                        .unwrap_or_else(|e| panic!("schema of {f}: {e}"));
                    (f, schema)
                })
                .collect()
        })
        .get(&format)
        .cloned()
        .unwrap_or_else(|| panic!("no schema for {format}"))
}

/// Both validators: the project's engine, then xmllint.
fn assert_valid(format: Format, document: &[u8], label: &str) {
    if let Err(failure) = engine(format).validate(document, &Limits::default()) {
        panic!(
            "{label}: the project's engine rejects the {format} output: {failure}\n{}",
            String::from_utf8_lossy(document)
        );
    }
    validate::validate_output(format, document, label);
}

/// What the JSON says, counted here without the reader: for each study right of a type the
/// record carries, every completion at any depth (its code) and every one with an assessment.
#[derive(Debug, Default)]
struct Expected {
    codes: BTreeMap<String, usize>,
    completions: usize,
    graded: usize,
    support_decisions: usize,
}

fn expected(doc: &Value) -> Expected {
    let carried: Vec<&str> = koski::STUDY_RIGHT_KINDS.iter().map(|(c, _)| *c).collect();
    let mut out = Expected::default();
    for oo in doc["opiskeluoikeudet"].as_array().into_iter().flatten() {
        let tyyppi = oo["tyyppi"]["koodiarvo"].as_str().unwrap_or_default();
        assert!(carried.contains(&tyyppi), "the corpus has a {tyyppi}");
        let mut stack: Vec<&Value> = oo["suoritukset"].as_array().into_iter().flatten().collect();
        while let Some(s) = stack.pop() {
            out.completions += 1;
            let code = s["koulutusmoduuli"]["tunniste"]["koodiarvo"]
                .as_str()
                .expect("every completion has a code");
            *out.codes.entry(code.to_owned()).or_insert(0) += 1;
            if s["arviointi"].as_array().is_some_and(|a| !a.is_empty()) {
                out.graded += 1;
            }
            stack.extend(s["osasuoritukset"].as_array().into_iter().flatten());
        }
        let l = &oo["lisätiedot"];
        for field in [
            "erityisenTuenPäätökset",
            "tehostetunTuenPäätökset",
            "tuenPäätöksenJaksot",
        ] {
            out.support_decisions += l[field].as_array().map_or(0, Vec::len);
        }
        for field in [
            "erityisenTuenPäätös",
            "tehostetunTuenPäätös",
            "pidennettyOppivelvollisuus",
        ] {
            out.support_decisions += usize::from(l[field].is_object());
        }
    }
    out
}

fn codes_of(record: &StudentRecord) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for a in &record.achievements {
        *out.entry(a.code.clone().unwrap_or_default()).or_insert(0) += 1;
    }
    out
}

fn convert(bytes: &[u8], subject: &StudentId, to: Format, scope: Scope) -> Conversion {
    let (record, report) =
        koski::read_bytes(bytes, &JsonLimits::default(), subject).expect("the document reads");
    formats::convert_record(Format::Koski, to, record, report, scope, &context())
        .expect("the record converts")
}

fn read_back(format: Format, document: &[u8], subject: &StudentId) -> StudentRecord {
    let root = dom::parse(document, &Limits::default()).expect("output parses");
    formats::read(format, &root, subject).expect("output reads back")
}

#[test]
fn every_koski_document_converts_whole_and_valid() {
    let Some(files) = koski_files() else {
        return;
    };
    let mut counted = 0;
    for path in &files {
        let label = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let bytes = std::fs::read(path).expect("read");
        let json: Value = serde_json::from_slice(&bytes).expect("JSON");
        let want = expected(&json);
        let (oppija, _) = koski::parse(&bytes, &JsonLimits::default()).expect("parses");
        let subject = koski::document_subject(&oppija).expect("names a valid student");
        assert_eq!(
            Some(subject.as_str()),
            json["henkilö"]["hetu"].as_str(),
            "{label}"
        );
        let all = Scope::all();

        // siirto-v1: every completion, code and grade, read back from the document.
        let c = convert(&bytes, &subject, Format::SiirtoV1, all);
        assert_valid(
            Format::SiirtoV1,
            &c.document,
            &format!("{label} → siirto-v1"),
        );
        let back = read_back(Format::SiirtoV1, &c.document, &subject);
        assert_eq!(back.achievements.len(), want.completions, "{label}");
        assert_eq!(codes_of(&back), want.codes, "{label}");
        assert_eq!(
            back.achievements
                .iter()
                .filter(|a| a.grade.is_some())
                .count(),
            want.graded,
            "{label}: grades"
        );
        assert!(
            back.achievements.iter().all(|a| a.study_right.is_some()),
            "{label}: every completion names its study right"
        );
        assert_eq!(
            back.study_rights.len(),
            json["opiskeluoikeudet"].as_array().map_or(0, Vec::len)
        );
        assert_eq!(
            back.support_decisions.len(),
            want.support_decisions,
            "{label}: support"
        );
        assert!(
            c.report.dropped_by_target.is_empty(),
            "{label}: {:?}",
            c.report.dropped_by_target
        );
        // Codes keep their code lists.
        assert!(
            back.achievements
                .iter()
                .filter(|a| a.code_scheme.is_some())
                .count()
                > 0,
            "{label}"
        );

        // ELMO: every completion as a learning opportunity, every grade as a result.
        let e = convert(&bytes, &subject, Format::Elmo, all);
        assert_valid(Format::Elmo, &e.document, &format!("{label} → elmo"));
        let back = read_back(Format::Elmo, &e.document, &subject);
        assert_eq!(back.achievements.len(), want.completions, "{label} elmo");
        assert_eq!(codes_of(&back), want.codes, "{label} elmo");
        assert_eq!(
            back.achievements
                .iter()
                .filter(|a| a.grade.is_some())
                .count(),
            want.graded,
            "{label} elmo: grades"
        );
        let text = String::from_utf8_lossy(&e.document);
        assert_eq!(
            text.matches("<resultLabel>").count(),
            want.graded,
            "{label}"
        );
        // What ELMO has no place for is reported, not lost.
        if want.support_decisions > 0 {
            assert!(
                e.report
                    .dropped_by_target
                    .iter()
                    .any(|d| d.path.starts_with("support_decisions")),
                "{label}"
            );
        }
        counted += want.completions;
    }
    assert!(counted >= 200, "the corpus holds {counted} completions");
}

#[test]
fn nothing_outside_the_scope_appears() {
    let Some(files) = koski_files() else {
        return;
    };
    for path in &files {
        let label = path.display().to_string();
        let bytes = std::fs::read(path).expect("read");
        let (oppija, _) = koski::parse(&bytes, &JsonLimits::default()).expect("parses");
        let subject = koski::document_subject(&oppija).expect("subject");
        for scope_text in SCOPES {
            let scope = Scope::parse(scope_text).expect("scope");
            for to in [Format::SiirtoV1, Format::Elmo] {
                let c = convert(&bytes, &subject, to, scope);
                let what = format!("{label} → {to} [{scope_text}]");
                assert_valid(to, &c.document, &what);
                walk::assert_within_scope(to, &c.document, scope, &what);
                assert_eq!(walk::student_count(to, &c.document), 1, "{what}");
                for id in walk::stated_identifiers(to, &c.document) {
                    assert_eq!(id, subject.as_str(), "{what}: names someone else");
                }
                let text = String::from_utf8_lossy(&c.document);
                if !scope.contains(Category::Support) {
                    assert!(!text.contains("supportDecision"), "{what}");
                }
                if !scope.contains(Category::Achievements) {
                    assert!(
                        !text.contains("<achievement ") && !text.contains("<resultLabel>"),
                        "{what}"
                    );
                }
                if !scope.contains(Category::Enrolment) {
                    assert!(!text.contains("studyRight"), "{what}");
                }
            }
        }
    }
}

#[test]
fn turvakielto_leaves_no_location_or_contact_detail() {
    let Some(files) = koski_files() else {
        return;
    };
    for path in &files {
        let label = path.display().to_string();
        let mut json: Value =
            serde_json::from_slice(&std::fs::read(path).expect("read")).expect("JSON");
        json["henkilö"]["turvakielto"] = Value::Bool(true);
        let bytes = json.to_string().into_bytes();
        let (oppija, _) = koski::parse(&bytes, &JsonLimits::default()).expect("parses");
        let subject = koski::document_subject(&oppija).expect("subject");
        let c = convert(&bytes, &subject, Format::SiirtoV1, Scope::all());
        assert!(c.report.turvakielto, "{label}");
        assert_valid(Format::SiirtoV1, &c.document, &label);
        let back = read_back(Format::SiirtoV1, &c.document, &subject);
        assert!(back.turvakielto, "{label}");
        assert!(back.student.home_municipality.is_none(), "{label}");
        assert!(back.student.addresses.is_empty(), "{label}");
        assert!(back.student.contacts.is_empty(), "{label}");
        let text = String::from_utf8_lossy(&c.document);
        for element in ["<homeMunicipality", "<address", "<contact"] {
            assert!(!text.contains(element), "{label}: {element}");
        }
        let e = convert(&bytes, &subject, Format::Elmo, Scope::all());
        assert_valid(Format::Elmo, &e.document, &label);
        assert!(!String::from_utf8_lossy(&e.document).contains("currentAddress"));
    }
}

#[test]
fn another_person_and_a_contradicting_birth_date_are_mismatches() {
    let Some(corpus) = siirto_testsupport::corpus() else {
        return;
    };
    let path = corpus.join("koski/perusopetus-paattotodistus.json");
    let bytes = std::fs::read(path).expect("read");
    let someone_else = StudentId::parse("131052-308T").expect("id");
    let err = koski::read_bytes(&bytes, &JsonLimits::default(), &someone_else).unwrap_err();
    assert!(
        matches!(err, KoskiError::Format(FormatError::SubjectMismatch { .. })),
        "{err}"
    );
    let mut json: Value = serde_json::from_slice(&bytes).expect("JSON");
    let subject = StudentId::parse(json["henkilö"]["hetu"].as_str().expect("hetu")).expect("id");
    json["henkilö"]["syntymäaika"] = Value::String("2010-10-13".into());
    let err = koski::read_bytes(
        json.to_string().as_bytes(),
        &JsonLimits::default(),
        &subject,
    )
    .unwrap_err();
    assert!(
        matches!(err, KoskiError::Format(FormatError::SubjectMismatch { .. })),
        "{err}"
    );
}

/// The report over the corpus: what is not read (by path) and not understood, so the numbers
/// the documentation quotes can be regenerated (`--nocapture`).
#[test]
fn the_corpus_report_accounts_for_what_is_not_carried() {
    let Some(files) = koski_files() else {
        return;
    };
    let mut not_read: BTreeMap<String, usize> = BTreeMap::new();
    let mut not_understood: BTreeMap<String, usize> = BTreeMap::new();
    let mut dropped: BTreeMap<String, usize> = BTreeMap::new();
    for path in &files {
        let bytes = std::fs::read(path).expect("read");
        let (oppija, _) = koski::parse(&bytes, &JsonLimits::default()).expect("parses");
        let subject = koski::document_subject(&oppija).expect("subject");
        for to in [Format::SiirtoV1, Format::Elmo] {
            let c = convert(&bytes, &subject, to, Scope::all());
            let summary = c.report.summary();
            if to == Format::SiirtoV1 {
                for (k, v) in summary.not_read_from_source {
                    *not_read.entry(k).or_insert(0) += v;
                }
                for (k, v) in summary.not_understood {
                    *not_understood.entry(k).or_insert(0) += v;
                }
            }
            for (k, v) in summary.dropped_by_target {
                *dropped.entry(format!("{to}: {k}")).or_insert(0) += v;
            }
        }
    }
    // Every path names KOSKI's document; the known fields are the documented ones.
    assert!(not_read.keys().all(|k| k.starts_with("koski:")));
    assert!(not_read.contains_key("koski:henkilö.kutsumanimi"));
    for (k, v) in &not_read {
        println!("not_read_from_source\t{v}\t{k}");
    }
    for (k, v) in &not_understood {
        println!("not_understood\t{v}\t{k}");
    }
    for (k, v) in &dropped {
        println!("dropped_by_target\t{v}\t{k}");
    }
}

/// `siirto convert --from koski` as an operator runs it: the built binary, a development
/// configuration, a corpus document; `[limits.json]` from the configuration (overridden by the
/// environment) refuses a document past a limit with its code and position.
#[test]
fn siirto_convert_reads_koski() {
    let dir = tempfile::tempdir().expect("tempdir");
    let siirto = env!("CARGO_BIN_EXE_siirto");
    let init = std::process::Command::new(siirto)
        .args(["pki", "init", "--free-ports"])
        .arg(dir.path().join("dev"))
        .output()
        .expect("pki init");
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let config = dir.path().join("dev/siirto.toml");
    let Some(corpus) = siirto_testsupport::corpus() else {
        return;
    };
    let file = corpus.join("koski/lukio-ops2019-oppimaara.json");
    let run = |to: &str, env: &[(&str, &str)]| {
        std::process::Command::new(siirto)
            .args(["convert", "--config"])
            .arg(&config)
            .args([
                "--from",
                "koski",
                "--to",
                to,
                "--scope",
                "identity achievements",
            ])
            .arg(&file)
            .envs(env.iter().copied())
            .output()
            .expect("convert")
    };
    let out = run("siirto-v1", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_valid(Format::SiirtoV1, &out.stdout, "convert --from koski");
    let report: Value = serde_json::from_str(&stderr).expect("the report is JSON");
    assert_eq!(report["from"], "koski");
    assert_eq!(report["scope"], "identity achievements");
    assert!(
        report["not_read_from_source"]
            .as_object()
            .is_some_and(|m| !m.is_empty())
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("studyRight"));

    let deep = run("siirto-v1", &[("SIIRTO__LIMITS__JSON__MAX_DEPTH", "4")]);
    let stderr = String::from_utf8_lossy(&deep.stderr);
    assert_eq!(deep.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("not valid koski (json_too_deep): line ") && stderr.contains("max_depth 4"),
        "{stderr}"
    );
    assert!(deep.stdout.is_empty());

    // `siirto validate --format koski`: the typed read under [limits.json] is the validation.
    let validate = |path: &std::path::Path| {
        std::process::Command::new(siirto)
            .args(["validate", "--format", "koski", "--config"])
            .arg(&config)
            .arg(path)
            .output()
            .expect("validate")
    };
    let ok = validate(&file);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        "{\"henkilö\": {},\n \"opiskeluoikeudet\": [{\"tyyppi\": 5}]}",
    )
    .expect("write");
    let out = validate(&bad);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("invalid (json_invalid): line 2, column") && stdout.contains("code value"),
        "{stdout}"
    );

    let refused = run("koski", &[]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("koski is a source format"));
}

//! Checks without transfer (`POST /v1/checks`, CONTRACT.md "Checks without transfer") through
//! a real gateway: every question true and false over the corpus documents of each format
//! (KOSKI's own JSON from the `koski` source, the same converted to siirto-v1 from `turku`,
//! VIRTA's sample from `virta`), the answer decided from the document in the test
//! (`tests/support/checks_expected.rs`); the record kept nowhere (not in the database file nor
//! in the debug log); the attestation verified by jwcrypto against `GET /v1/audit/jwks.json`
//! and by `siirto attestation verify` (a tampered one fails it); refusals with their exact
//! codes and nothing sent to any destination; the consent text of a check; the student's
//! history, the metrics, and the store on PostgreSQL.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use siirto_core::check::Question;
use siirto_core::clock::Timestamp;
use siirto_core::formats::json_in::JsonLimits;
use siirto_core::formats::{self, Format, WriteContext, koski};
use siirto_core::scope::Scope;
use siirto_devkit::client::Answer;
use siirto_devkit::demo::school_record;
use siirto_devkit::peers::Behaviour;
use siirto_devkit::testbed::{Testbed, TestbedOptions};

use crate::checks_expected::{koski_expected, virta_active, virta_degree, virta_with_degree};
use crate::helpers::*;

/// `typ` of a check's authorization.
const CHECK_TYP: &str = "siirto-check+jwt";

/// Without a consent text hash (the consent-text test below signs one).
const NO_TEXT_HASH: (&str, &str) = ("SIIRTO__CONSENT__REQUIRE_TEXT_HASH", "false");

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Claims of a check by `dst` about `subject` from `src`, with a guardian's `act` when
/// `guardian` is given (the corpus' pupils are minors).
fn check_claims(
    bed: &Testbed,
    subject: &str,
    src: &str,
    dst: &str,
    question: &str,
    guardian: Option<&str>,
) -> Value {
    let mut claims = bed.authorization(subject, src, dst, "identity").claims();
    let map = claims.as_object_mut().expect("claims object");
    for k in ["scope", "consent_sha256", "consent_lang"] {
        map.remove(k);
    }
    map.insert("question".into(), json!(question));
    if let Some(g) = guardian {
        map.insert("act".into(), json!({"sub": g, "role": "guardian"}));
    }
    claims
}

fn check_token(bed: &Testbed, claims: &Value) -> String {
    bed.sign_as(claims, CHECK_TYP).expect("sign")
}

async fn ask(bed: &Testbed, participant: &str, token: &str) -> Answer {
    bed.client(participant)
        .expect("client")
        .post_json("/v1/checks", &json!({ "authorization": token }))
        .await
        .expect("the gateway answers")
}

/// The payload of a compact JWS, decoded (not verified).
fn payload(jws: &str) -> Value {
    let part = jws.split('.').nth(1).expect("payload segment");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

/// Today in Finland, as the gateway decides it.
fn today(bed: &Testbed) -> String {
    siirto_core::lang::helsinki_date(bed.clock.now())
        .expect("a date")
        .to_string()
}

/// Asks `question` and requires a 200 whose answer is `expected`, with an attestation naming
/// it; returns the answer's JSON.
async fn assert_answer(
    bed: &Testbed,
    subject: &str,
    src: &str,
    question: Question,
    guardian: Option<&str>,
    expected: bool,
    label: &str,
) -> Value {
    let claims = check_claims(bed, subject, src, "espoo", question.as_str(), guardian);
    let answer = ask(bed, "eservice", &check_token(bed, &claims)).await;
    let body = answer.json();
    assert_eq!(answer.status.as_u16(), 200, "{label} {question}: {body}");
    assert_eq!(body["question"], question.as_str(), "{body}");
    assert_eq!(body["answer"], expected, "{label}: {question} from {src}");
    let stated = payload(body["attestation"].as_str().expect("attestation"));
    assert_eq!(stated["answer"], expected);
    assert_eq!(stated["question"], question.as_str());
    assert_eq!(stated["sub"], subject);
    assert_eq!(stated["src"], src);
    assert_eq!(stated["aud"], "espoo");
    assert_eq!(stated["jti"], body["id"]);
    assert_eq!(stated["authorization_jti"], claims["jti"]);
    body
}

/// Every KOSKI document of the corpus, each served by the `koski` source as KOSKI's JSON and
/// by `turku` as the siirto-v1 record converted from it; each question either format answers
/// is asked of both, and the answer is the one the KOSKI document gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn koski_and_siirto_v1_questions_answer_as_the_documents_say() {
    let Some(corpus) = siirto_testsupport::corpus() else {
        return;
    };
    let bed = start_with(TestbedOptions {
        schemas: schemas_with_registers(&corpus),
        koski: true,
        env: env(&[NO_TEXT_HASH]),
        ..TestbedOptions::default()
    })
    .await;
    let today = today(&bed);
    let mut files: Vec<_> = std::fs::read_dir(corpus.join("koski"))
        .expect("koski corpus")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 8);
    let context = WriteContext::new(Timestamp::from_secs(1_790_000_000)).with_source("koski");
    let mut seen: BTreeSet<(&str, &str, bool)> = BTreeSet::new();
    for path in &files {
        let label = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let bytes = std::fs::read(path).expect("read");
        let doc: Value = serde_json::from_slice(&bytes).expect("JSON");
        let hetu = doc["henkilö"]["hetu"].as_str().expect("hetu").to_owned();
        bed.koski["koski"].insert(doc.clone(), None);
        let (oppija, _) = koski::parse(&bytes, &JsonLimits::default()).expect("parses");
        let subject = koski::document_subject(&oppija).expect("subject");
        let (record, report) =
            koski::read_bytes(&bytes, &JsonLimits::default(), &subject).expect("reads");
        let siirto = formats::convert_record(
            Format::Koski,
            Format::SiirtoV1,
            record,
            report,
            Scope::parse("identity enrolment achievements").expect("scope"),
            &context,
        )
        .expect("converts");
        bed.sources["turku"].insert(&hetu, siirto.document);
        for (src, format) in [("koski", Format::Koski), ("turku", Format::SiirtoV1)] {
            for q in Question::ALL.into_iter().filter(|q| q.supported_by(format)) {
                let expected = koski_expected(&doc, q, &today);
                // The corpus' pupils are minors: their guardian (an adult) consents.
                assert_answer(&bed, &hetu, src, q, Some(STUDENT), expected, &label).await;
                seen.insert((src, q.as_str(), expected));
            }
        }
    }
    for (src, format) in [("koski", Format::Koski), ("turku", Format::SiirtoV1)] {
        for q in Question::ALL.into_iter().filter(|q| q.supported_by(format)) {
            // Active study rights: one corpus pupil (perusopetus-9-luokka) is still at school.
            for answer in [true, false] {
                assert!(
                    seen.contains(&(src, q.as_str(), answer)),
                    "{src}: {q} never {answer}: {seen:?}"
                );
            }
        }
    }
    assert_nothing_delivered(&bed);
}

/// VIRTA's sample (a study right ended in 2022, no degree), the same with the corpus' degree
/// (`Laji` 1), and the same with its study right running to 2099.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virta_questions_answer_as_the_documents_say() {
    let Some(corpus) = siirto_testsupport::corpus() else {
        return;
    };
    let bed = start_with(TestbedOptions {
        schemas: schemas_with_registers(&corpus),
        env: env(&[NO_TEXT_HASH]),
        ..TestbedOptions::default()
    })
    .await;
    let today = today(&bed);
    let sample = crate::routes::virta_sample(&corpus);
    assert_eq!(sample.matches("<LoppuPvm>2022-07-31</LoppuPvm>").count(), 2);
    let documents = [
        ("Virta.xml", sample.clone()),
        ("Virta.xml + 772101", virta_with_degree(&sample, &corpus)),
        (
            "Virta.xml, open to 2099",
            sample.replace(
                "<LoppuPvm>2022-07-31</LoppuPvm>",
                "<LoppuPvm>2099-07-31</LoppuPvm>",
            ),
        ),
    ];
    let mut seen = BTreeSet::new();
    for (label, doc) in &documents {
        assert_valid(Format::Virta, doc.as_bytes(), label);
        bed.sources["virta"].insert(STUDENT, doc.clone().into_bytes());
        for (q, expected) in [
            (Question::HigherEducationDegreeCompleted, virta_degree(doc)),
            (Question::ActiveStudyRight, virta_active(doc, &today)),
        ] {
            assert_answer(&bed, STUDENT, "virta", q, None, expected, label).await;
            seen.insert((q.as_str(), expected));
        }
    }
    assert_eq!(seen.len(), 4, "each question true and false: {seen:?}");
    assert_nothing_delivered(&bed);
}

/// After a check the record is nowhere: not in the SQLite files (database and WAL) nor in the
/// debug log of `siirto serve`; only its hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_record_is_kept_nowhere() {
    let Some(corpus) = siirto_testsupport::corpus() else {
        return;
    };
    let bed = start_with(TestbedOptions {
        schemas: schemas_with_registers(&corpus),
        koski: true,
        in_process_gateway: false,
        ..TestbedOptions::default()
    })
    .await;
    let serving = crate::operations::Serving::start(
        &bed,
        &[
            ("SIIRTO_LOG_FORMAT", "json"),
            ("SIIRTO_LOG", "debug"),
            NO_TEXT_HASH,
        ],
    )
    .await;
    let bytes = std::fs::read(corpus.join("koski/perusopetus-paattotodistus.json")).expect("read");
    let doc: Value = serde_json::from_slice(&bytes).expect("JSON");
    let hetu = doc["henkilö"]["hetu"].as_str().expect("hetu").to_owned();
    let family = doc["henkilö"]["sukunimi"]
        .as_str()
        .expect("sukunimi")
        .to_owned();
    let given = doc["henkilö"]["etunimet"]
        .as_str()
        .expect("etunimet")
        .to_owned();
    assert!(family.len() >= 3 && given.len() >= 3);
    bed.koski["koski"].insert(doc.clone(), None);
    let claims = check_claims(
        &bed,
        &hetu,
        "koski",
        "espoo",
        "basic_education_completed",
        Some(STUDENT),
    );
    let answer = ask(&bed, "eservice", &check_token(&bed, &claims)).await;
    assert_eq!(answer.status.as_u16(), 200, "{}", answer.json());
    assert_eq!(answer.json()["answer"], true);
    let digest =
        payload(answer.json()["attestation"].as_str().expect("attestation"))["document_sha256"]
            .as_str()
            .expect("digest")
            .to_owned();
    let log = serving.stop().await;
    assert!(log.contains("check answered"), "{log}");
    let mut stores = 0;
    for entry in std::fs::read_dir(&bed.dir).expect("dir").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("siirto.db") {
            continue;
        }
        stores += 1;
        let text =
            String::from_utf8_lossy(&std::fs::read(entry.path()).expect("db file")).into_owned();
        for needle in [&family, &given, &hetu, &"opiskeluoikeudet".to_owned()] {
            assert!(!text.contains(needle.as_str()), "{name} holds `{needle}`");
        }
    }
    assert!(stores >= 1, "the SQLite database was found");
    for needle in [&family, &given, &hetu] {
        assert!(!log.contains(needle.as_str()), "the log holds `{needle}`");
    }
    // The document's hash is what the store keeps of it.
    let db = bed.dir.join("siirto.db");
    let wal = bed.dir.join("siirto.db-wal");
    let kept = [db, wal]
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .any(|b| String::from_utf8_lossy(&b).contains(&digest));
    assert!(kept, "the document's SHA-256 is stored");
}

/// The attestation verifies with jwcrypto against the gateway's published JWKS, and with
/// `siirto attestation verify`; changed by one claim it fails both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_attestation_verifies_independently_and_a_tampered_one_fails() {
    let bed = start_with(TestbedOptions {
        env: env(&[NO_TEXT_HASH]),
        ..TestbedOptions::default()
    })
    .await;
    bed.sources["turku"].insert(STUDENT, school_record(STUDENT, false).into_bytes());
    let body = assert_answer(
        &bed,
        STUDENT,
        "turku",
        Question::ActiveStudyRight,
        None,
        true,
        "school_record",
    )
    .await;
    let attestation = body["attestation"]
        .as_str()
        .expect("attestation")
        .to_owned();
    let jwks = bed
        .client("registry-operator")
        .expect("client")
        .get("/v1/audit/jwks.json", &[])
        .await
        .expect("jwks");
    assert_eq!(jwks.status.as_u16(), 200);
    let dir = tempfile::tempdir().expect("tempdir");
    let jwks_file = dir.path().join("jwks.json");
    std::fs::write(&jwks_file, &jwks.body).expect("write");
    let good = dir.path().join("attestation.jws");
    std::fs::write(&good, &attestation).expect("write");
    let (head, rest) = attestation.split_once('.').expect("header");
    let (claims, signature) = rest.split_once('.').expect("payload");
    let mut changed = payload(&attestation);
    changed["answer"] = json!(false);
    assert_ne!(URL_SAFE_NO_PAD.encode(changed.to_string()), claims);
    let tampered_token = format!(
        "{head}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(changed.to_string())
    );
    let tampered = dir.path().join("tampered.jws");
    std::fs::write(&tampered, &tampered_token).expect("write");

    let verify = |file: &Path, key: &Path| {
        std::process::Command::new(siirto_binary())
            .args(["attestation", "verify"])
            .arg(file)
            .arg("--public-key")
            .arg(key)
            .output()
            .expect("siirto attestation verify")
    };
    let out = verify(&good, &jwks_file);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("answer            true"), "{said}");
    assert!(
        !said.contains(STUDENT),
        "the student is not printed: {said}"
    );
    let out = verify(&tampered, &jwks_file);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("signature does not verify"));
    // The whole JSON answer of POST /v1/checks is taken as well; an unusable key file is 2.
    let answer_file = dir.path().join("answer.json");
    std::fs::write(&answer_file, body.to_string()).expect("write");
    assert_eq!(verify(&answer_file, &jwks_file).status.code(), Some(0));
    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, "{\"keys\": []}").expect("write");
    assert_eq!(verify(&good, &empty).status.code(), Some(2));

    let Some(python) = python_with_jwcrypto() else {
        return;
    };
    let script = tools_dir().join("verify_receipt.py");
    let run = |token: &str| {
        std::process::Command::new(&python)
            .arg(&script)
            .args(["--typ", "siirto-attestation+jwt", "--jwks"])
            .arg(&jwks_file)
            .args(["--token", token])
            .output()
            .expect("python")
    };
    let out = run(&attestation);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(seen["header"]["typ"], "siirto-attestation+jwt");
    assert_eq!(seen["header"]["alg"], "EdDSA");
    let claims = &seen["claims"];
    for key in [
        "iss",
        "aud",
        "sub",
        "iat",
        "jti",
        "question",
        "answer",
        "src",
        "document_sha256",
        "authorization_jti",
        "basis",
        "audit_leaf_index",
    ] {
        assert!(claims.get(key).is_some(), "{key} in {claims}");
    }
    assert_eq!(claims["iss"], bed.config.gateway.id.as_str());
    assert_eq!(claims["basis"], "consent");
    // The leaf it names is the audit entry recording the answer.
    let leaf = claims["audit_leaf_index"].as_u64().expect("leaf");
    let entries = audit(&bed).await;
    let entry = &entries[usize::try_from(leaf).expect("leaf")];
    assert_eq!(entry.event.action, "check.answered");
    assert_eq!(
        entry.event.detail.get("check_id").map(String::as_str),
        body["id"].as_str()
    );
    assert_eq!(run(&tampered_token).status.code(), Some(1));
}

/// A python3 with jwcrypto, or a loud skip (a failure under `SIIRTO_REQUIRE_TOOLS=1`).
fn python_with_jwcrypto() -> Option<std::path::PathBuf> {
    let python = std::env::var("SIIRTO_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = std::process::Command::new(&python)
        .args(["-c", "import jwcrypto"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        return Some(python.into());
    }
    assert!(
        std::env::var("SIIRTO_REQUIRE_TOOLS").as_deref() != Ok("1"),
        "{python} with jwcrypto is required (SIIRTO_REQUIRE_TOOLS=1)"
    );
    eprintln!("SKIPPED: {python} with jwcrypto is not available; the jwcrypto part did not run");
    None
}

/// Each refusal with its exact status and code, audited, and nothing sent to any destination:
/// a transfer's `typ`, an unknown question, a `scope`, a question the source's format cannot
/// answer (no source called for any of these), a replay, a source that does not know the
/// student, and a source slower than `[checks] timeout` (no retry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_have_exact_codes_and_send_nothing() {
    let bed = start_with(TestbedOptions {
        env: env(&[NO_TEXT_HASH, ("SIIRTO__CHECKS__TIMEOUT", "500ms")]),
        ..TestbedOptions::default()
    })
    .await;
    bed.sources["turku"].insert(STUDENT, school_record(STUDENT, false).into_bytes());
    let claims = |question: &str| check_claims(&bed, STUDENT, "turku", "espoo", question, None);

    let as_transfer = bed.sign(&claims("active_study_right")).expect("sign");
    assert_refusal(
        &bed,
        "eservice",
        "authorization.rejected",
        401,
        "wrong_typ",
        ask(&bed, "eservice", &as_transfer),
    )
    .await;
    let unknown = check_token(&bed, &claims("has_a_driving_licence"));
    assert_refusal(
        &bed,
        "eservice",
        "authorization.rejected",
        422,
        "unknown_question",
        ask(&bed, "eservice", &unknown),
    )
    .await;
    let mut scoped = claims("active_study_right");
    scoped["scope"] = json!("identity");
    let scoped = check_token(&bed, &scoped);
    let entry = assert_refusal(
        &bed,
        "eservice",
        "authorization.rejected",
        422,
        "invalid_claim",
        ask(&bed, "eservice", &scoped),
    )
    .await;
    assert!(entry.event.detail["message"].contains("scope"), "{entry:?}");
    let unsupported = check_token(&bed, &claims("higher_education_degree_completed"));
    assert_refusal(
        &bed,
        "eservice",
        "authorization.rejected",
        422,
        "question_not_supported",
        ask(&bed, "eservice", &unsupported),
    )
    .await;
    // A transfer's authorization is no check, and a check's is no transfer.
    let check_as_transfer = check_token(&bed, &claims("active_study_right"));
    let answer = submit(&bed, "eservice", &check_as_transfer).await;
    assert_eq!(answer.error_code().as_deref(), Some("wrong_typ"));
    assert_no_source_called(&bed);

    // Answered once; the same authorization again is a replay, and nothing is fetched.
    let token = check_token(&bed, &claims("active_study_right"));
    let first = ask(&bed, "eservice", &token).await;
    assert_eq!(first.status.as_u16(), 200, "{}", first.json());
    let calls = bed.sources["turku"].requests().len();
    assert_eq!(calls, 1);
    let again = ask(&bed, "eservice", &token).await;
    assert_eq!(again.status.as_u16(), 409, "{}", again.json());
    assert_eq!(again.error_code().as_deref(), Some("replay"));
    assert_eq!(bed.sources["turku"].requests().len(), calls);

    // The source does not know the student.
    let unknown_student = check_claims(
        &bed,
        OTHER_STUDENT,
        "turku",
        "espoo",
        "active_study_right",
        Some(STUDENT),
    );
    let answer = ask(&bed, "eservice", &check_token(&bed, &unknown_student)).await;
    assert_eq!(answer.status.as_u16(), 404, "{}", answer.json());
    assert_eq!(answer.error_code().as_deref(), Some("source_not_found"));

    // The source is slower than [checks] timeout: 504 at the deadline, one call, no retry.
    bed.sources["turku"].set_behaviour(Behaviour::Delay(Duration::from_secs(4)));
    let before = bed.sources["turku"].requests().len();
    let started = Instant::now();
    let answer = ask(
        &bed,
        "eservice",
        &check_token(&bed, &claims("active_study_right")),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(answer.status.as_u16(), 504, "{}", answer.json());
    assert_eq!(answer.error_code().as_deref(), Some("source_timeout"));
    assert!(took < Duration::from_secs(3), "answered after {took:?}");
    assert!(
        took >= Duration::from_millis(450),
        "answered after {took:?}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        bed.sources["turku"].requests().len(),
        before + 1,
        "one attempt"
    );
    bed.sources["turku"].set_behaviour(Behaviour::Normal);

    let entries = audit(&bed).await;
    let failed: Vec<&str> = entries
        .iter()
        .filter(|e| e.event.action == "check.failed")
        .map(|e| e.event.outcome.as_str())
        .collect();
    assert_eq!(
        failed,
        ["source_not_found", "source_timeout"],
        "{}",
        describe(&entries)
    );
    assert!(
        entries
            .iter()
            .all(|e| e.event.action != "transfer.accepted"),
        "no transfer was accepted"
    );
    assert_nothing_delivered(&bed);
}

/// The consent text of a check names the question and says no record moves; its hash is the
/// `consent_sha256` a check must carry (by default), and a transfer's text is refused for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consent_text_of_a_check_names_the_question() {
    let bed = start().await;
    bed.sources["turku"].insert(STUDENT, school_record(STUDENT, false).into_bytes());
    let eservice = bed.client("eservice").expect("client");
    let text = eservice
        .get(
            "/v1/consent-text?src=turku&dst=espoo&purpose=school-change&lang=en&question=active_study_right",
            &[],
        )
        .await
        .expect("answer");
    assert_eq!(text.status.as_u16(), 200, "{}", text.json());
    let text = text.json();
    let words = text["text"].as_str().expect("text");
    assert!(
        words.contains("Do you have a study place right now?"),
        "{words}"
    );
    assert!(words.contains("only the answer, yes or no"), "{words}");
    // Its title says something is checked, not sent.
    assert!(
        words.starts_with("Permission to check one thing in your school information"),
        "{words}"
    );
    assert!(!words.contains("Permission to send"), "{words}");
    let mut claims = check_claims(&bed, STUDENT, "turku", "espoo", "active_study_right", None);
    // Without the hash: required by default.
    let answer = ask(&bed, "eservice", &check_token(&bed, &claims)).await;
    assert_eq!(
        answer.error_code().as_deref(),
        Some("missing_claim"),
        "{}",
        answer.json()
    );
    // A transfer's text is not this check's.
    let transfer_text = bed
        .consent_text(
            "turku",
            "espoo",
            "identity",
            "school-change",
            "consent",
            siirto_core::lang::Lang::En,
        )
        .expect("a transfer text");
    claims["consent_sha256"] = json!(siirto_core::clock::hex(&transfer_text.sha256));
    claims["consent_lang"] = json!("en");
    claims["jti"] = json!("check-consent-1");
    let answer = ask(&bed, "eservice", &check_token(&bed, &claims)).await;
    assert_eq!(
        answer.error_code().as_deref(),
        Some("consent_text_mismatch"),
        "{}",
        answer.json()
    );
    claims["consent_sha256"] = text["sha256"].clone();
    claims["jti"] = json!("check-consent-2");
    let answer = ask(&bed, "eservice", &check_token(&bed, &claims)).await;
    assert_eq!(answer.status.as_u16(), 200, "{}", answer.json());
    assert_eq!(answer.json()["answer"], true);
    assert_nothing_delivered(&bed);
}

/// A check is in the student's history (JSON and page, its attestation verified), in the
/// operator's subject lookup, in the metrics by question and outcome, and in the audit; on
/// SQLite and on PostgreSQL.
async fn a_check_is_in_the_history(database_url: Option<String>) {
    let bed = start_with(TestbedOptions {
        database_url,
        env: env(&[NO_TEXT_HASH]),
        ..TestbedOptions::default()
    })
    .await;
    bed.sources["turku"].insert(STUDENT, school_record(STUDENT, false).into_bytes());
    let answered = assert_answer(
        &bed,
        STUDENT,
        "turku",
        Question::BasicEducationCompleted,
        None,
        false,
        "school_record",
    )
    .await;
    let not_found = check_claims(
        &bed,
        OTHER_STUDENT,
        "turku",
        "espoo",
        "active_study_right",
        Some(STUDENT),
    );
    let failed = ask(&bed, "eservice", &check_token(&bed, &not_found)).await;
    assert_eq!(failed.error_code().as_deref(), Some("source_not_found"));

    let eservice = bed.client("eservice").expect("client");
    let history = |accept: &'static str| {
        let token = bed.transparency_token(STUDENT).expect("token");
        let eservice = eservice.clone();
        async move {
            eservice
                .get(
                    "/v1/students/transfers?lang=en",
                    &[
                        ("authorization", &format!("Bearer {token}")),
                        ("accept", accept),
                    ],
                )
                .await
                .expect("answer")
        }
    };
    let json = history("application/json").await;
    assert_eq!(json.status.as_u16(), 200);
    let json = json.json();
    let checks = json["checks"].as_array().expect("checks");
    assert_eq!(checks.len(), 1, "only this student's checks: {json:#}");
    let check = &checks[0];
    assert_eq!(check["id"], answered["id"]);
    assert_eq!(check["question"], "basic_education_completed");
    assert_eq!(check["answer"], false);
    assert_eq!(check["status"], "answered");
    assert_eq!(check["attestation_verified"], true);
    assert_eq!(check["attestation"], answered["attestation"]);
    assert_eq!(check["from"], "turku");
    assert_eq!(check["to"], "espoo");
    assert_eq!(json["transfers"].as_array().map(Vec::len), Some(0));
    let page = history("text/html").await;
    assert_eq!(page.status.as_u16(), 200);
    let html = String::from_utf8_lossy(&page.body).into_owned();
    for expected in [
        "Have you completed basic education (peruskoulu)?",
        "None of your school information was sent: only the answer, yes or no.",
        "The signed answer has been checked: it is genuine and names this question.",
        &format!("id=\"check-{}\"", answered["id"].as_str().expect("id")),
    ] {
        assert!(
            html.contains(expected),
            "`{expected}` not in the page:\n{html}"
        );
    }
    assert!(!html.contains(STUDENT));

    let metrics =
        crate::admin::admin_get(&bed.config.gateway.admin_listen.to_string(), "/metrics").await;
    for line in [
        "siirto_checks_total{question=\"basic_education_completed\",outcome=\"false\"} 1",
        "siirto_checks_total{question=\"active_study_right\",outcome=\"source_not_found\"} 1",
        "siirto_checks_total{question=\"upper_secondary_completed\",outcome=\"true\"} 0",
        "siirto_check_seconds_count{question=\"basic_education_completed\"} 1",
    ] {
        assert!(metrics.contains(line), "`{line}` not in:\n{metrics}");
    }
    // The operator's subject lookup lists the person's checks (and only theirs).
    let operator = bed.client("registry-operator").expect("client");
    let form = operator.get("/operator/subjects", &[]).await.expect("form");
    let form = String::from_utf8_lossy(&form.body).into_owned();
    let form_token = form
        .split("name=\"form_token\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a form token")
        .to_owned();
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("form_token", form_token.as_str()),
            ("subject", STUDENT),
            ("reason", "TP-2026-7"),
        ])
        .finish();
    let lookup = operator
        .send(
            http::Method::POST,
            "/operator/subjects",
            &[("content-type", "application/x-www-form-urlencoded")],
            Some(bytes::Bytes::from(body)),
        )
        .await
        .expect("lookup");
    assert_eq!(lookup.status.as_u16(), 200);
    let lookup = String::from_utf8_lossy(&lookup.body).into_owned();
    let table = lookup
        .split("id=\"subject-checks\"")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .expect("the checks table");
    assert!(
        table.contains(answered["id"].as_str().expect("id")),
        "{table}"
    );
    assert!(table.contains("basic_education_completed"), "{table}");
    assert_eq!(
        table.matches("<tr>").count(),
        2,
        "a header and one check: {table}"
    );
    assert!(!lookup.contains(STUDENT));

    let entries = audit(&bed).await;
    let actions: Vec<(&str, &str)> = entries
        .iter()
        .filter(|e| e.event.action.starts_with("check.") || e.event.action == "source.fetch")
        .map(|e| (e.event.action.as_str(), e.event.outcome.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("check.accepted", "ok"),
            ("source.fetch", "ok"),
            ("check.answered", "ok"),
            ("check.accepted", "ok"),
            ("source.fetch", "source_not_found"),
            ("check.failed", "source_not_found"),
        ],
        "{}",
        describe(&entries)
    );
    for e in &entries {
        assert!(!e.event.detail.values().any(|v| v.contains(STUDENT)));
    }
    assert_nothing_delivered(&bed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_is_in_the_history_on_sqlite() {
    a_check_is_in_the_history(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_is_in_the_history_on_postgresql() {
    let Some(db) = postgres().await else {
        return;
    };
    a_check_is_in_the_history(Some(db.url.clone())).await;
    drop(db);
}

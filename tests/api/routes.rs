//! The gateway routes by the formats in its directory. A VIRTA register (`virta`, serving
//! VIRTA XML) sends a student's higher-education record to an EMREX contact point (`emrex`,
//! reading ELMO 1.7) and to a municipality (`espoo`, reading siirto-v1); what arrives is valid
//! for the destination's schema (project validator and libxml2), holds only the named student
//! and only the authorized scope. Special-needs support data never arrives without `support`
//! scope; turvakielto removes location whatever the scope, and the conversion report says so; a
//! record about someone else is never delivered.

use std::path::{Path, PathBuf};

use serde_json::Value;
use siirto_core::formats::{self, Format};
use siirto_core::record::StudentRecord;
use siirto_core::scope::Scope;
use siirto_core::student_id::StudentId;
use siirto_devkit::testbed::{Testbed, TestbedOptions};

use crate::helpers::*;
use crate::walk;

/// The henkilötunnus of the corpus sample, replaced in memory by [`STUDENT`].
const SAMPLE_HETU: &str = "010190-020A";
/// The sample's learner number (the same student's, kept).
const SAMPLE_OPPIJANUMERO: &str = "1.2.246.562.24.12345612345";

/// `virta/samples/Virta.xml` (libxml2: valid): one student with a study right, term
/// registrations, five achievements and a mobility period; its henkilötunnus rewritten to
/// [`STUDENT`].
pub(crate) fn virta_sample(corpus: &Path) -> String {
    let path = corpus.join("virta/samples/Virta.xml");
    let manifest = std::fs::read_to_string(corpus.join("MANIFEST.tsv")).expect("manifest");
    assert!(
        manifest
            .lines()
            .any(|l| l.starts_with("virta/samples/Virta.xml\t") && l.ends_with("\tvalid")),
        "the sample must be one libxml2 marks valid"
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(text.matches(SAMPLE_HETU).count(), 1);
    text.replace(SAMPLE_HETU, STUDENT)
}

/// The sample with a second student (another henkilötunnus, learner number, name and keys)
/// added after the first: a register answer about several people.
fn virta_two_students(corpus: &Path) -> String {
    let one = virta_sample(corpus);
    let start = one.find("<Opiskelija avain=\"12345\">").expect("student");
    let end = one.find("</Opiskelija>").expect("end") + "</Opiskelija>".len();
    let other = one[start..end]
        .replace(STUDENT, OTHER_STUDENT)
        .replace(SAMPLE_OPPIJANUMERO, "1.2.246.562.24.10000000008")
        .replace("avain=\"12345\"", "avain=\"67890\"")
        .replace("opiskelijaAvain=\"12345\"", "opiskelijaAvain=\"67890\"")
        .replace("\"98765\"", "\"98766\"")
        .replace("avain=\"K3", "avain=\"L3")
        .replace("avain=\"123\"", "avain=\"124\"")
        .replace("Virtanen", "Korhonen")
        .replace("<Etunimet>Satu", "<Etunimet>Ville");
    let two = format!("{}\n{other}{}", &one[..end], &one[end..]);
    assert_valid(Format::Virta, two.as_bytes(), "two-student VIRTA document");
    two
}

/// A testbed with the registers (the `virta` source, the `emrex` ELMO destination) and the
/// corpus their schemas and sample come from; `None`, after a loud skip, without the corpus.
async fn registers() -> Option<(Testbed, PathBuf)> {
    let corpus = siirto_testsupport::corpus()?;
    let bed = start_with(TestbedOptions {
        schemas: schemas_with_registers(&corpus),
        ..TestbedOptions::default()
    })
    .await;
    Some((bed, corpus))
}

fn subject() -> StudentId {
    StudentId::parse(STUDENT).expect("valid")
}

/// The record of [`STUDENT`] as the project's reader for `format` sees `document`.
fn read(format: Format, document: &[u8]) -> StudentRecord {
    formats::read(format, &parse(document), &subject())
        .unwrap_or_else(|e| panic!("{format} document does not read back: {e}"))
}

/// `(code, grade value, credits)` of every achievement, sorted.
fn achievements(record: &StudentRecord) -> Vec<(String, String, Vec<String>)> {
    let mut out: Vec<(String, String, Vec<String>)> = record
        .achievements
        .iter()
        .map(|a| {
            (
                a.code.clone().unwrap_or_default(),
                a.grade
                    .as_ref()
                    .map(|g| g.value.clone())
                    .unwrap_or_default(),
                a.credits
                    .iter()
                    .map(|c| c.value.as_str().to_owned())
                    .collect(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Runs one transfer from `src` to `dst` and returns the transfer's view and the exact body
/// the destination received (exactly one request, keyed by the transfer id).
async fn deliver(bed: &Testbed, src: &str, dst: &str, scope: &str) -> (Value, Vec<u8>) {
    let id = submit_accepted(bed, &token(bed, STUDENT, src, dst, scope)).await;
    let transfer = finished(bed, &id).await;
    assert_eq!(transfer["status"], "delivered", "{transfer:#}");
    let requests = bed.destinations[dst].requests();
    assert_eq!(requests.len(), 1, "one delivery to {dst}");
    assert_eq!(requests[0].idempotency_key, id);
    assert_eq!(
        transfer["content_sha256"],
        siirto_core::vault::sha256_hex(&requests[0].body)
    );
    (transfer, requests[0].body.clone())
}

/// Only [`STUDENT`] is in the document: one student element, and every identifier stated is
/// the student's own.
fn assert_only_the_student(format: Format, document: &[u8]) {
    assert_eq!(walk::student_count(format, document), 1);
    let ids = walk::stated_identifiers(format, document);
    assert!(ids.iter().any(|i| i == STUDENT), "{ids:?}");
    for id in &ids {
        assert!(
            id == STUDENT || id == SAMPLE_OPPIJANUMERO,
            "{format}: unexpected identifier {id}"
        );
    }
    let text = String::from_utf8_lossy(document);
    assert!(!text.contains(OTHER_STUDENT) && !text.contains("Korhonen"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virta_to_an_elmo_destination() {
    let Some((bed, corpus)) = registers().await else {
        return;
    };
    let source = virta_sample(&corpus);
    bed.sources["virta"].insert(STUDENT, source.clone().into_bytes());
    let scope = "identity achievements";
    let (transfer, body) = deliver(&bed, "virta", "emrex", scope).await;

    assert_valid(Format::Elmo, &body, "ELMO delivered to emrex");
    assert_only_the_student(Format::Elmo, &body);
    walk::assert_within_scope(
        Format::Elmo,
        &body,
        Scope::parse(scope).expect("scope"),
        "ELMO delivered to emrex",
    );
    // Every achievement arrives with its grade and credits.
    let sent = read(Format::Virta, source.as_bytes());
    let got = read(Format::Elmo, &body);
    assert_eq!(sent.achievements.len(), 5);
    assert_eq!(achievements(&got), achievements(&sent));
    assert_eq!(got.student.family_name, sent.student.family_name);
    // The study right, registrations and mobility were not authorized and did not leave.
    let text = String::from_utf8_lossy(&body);
    assert!(!text.contains("98765"), "study-right key leaked");

    let conversion = &transfer["conversion"];
    assert_eq!(conversion["from"], "virta", "{conversion:#}");
    assert_eq!(conversion["to"], "elmo");
    assert_eq!(conversion["scope"], scope);
    let dropped = conversion["dropped_by_scope"]
        .as_object()
        .expect("dropped_by_scope");
    for category in ["enrolment", "registrations", "mobility"] {
        assert!(dropped.contains_key(category), "{conversion:#}");
    }
    assert_eq!(
        conversion["categories"],
        serde_json::json!(["identity", "achievements"])
    );

    // Signed as the ELMO schema requires: the bytes the destination stored verify with
    // xmlsec1 (the document-signing certificate chains to the development CA) and with
    // Siirto's own verifier, and the receipt's document_sha256 is theirs.
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.trim_end().ends_with("</Signature></elmo>"),
        "the signature is the last child of elmo"
    );
    let pinned = siirto_core::dsig::certificates_from_pem(
        &std::fs::read(&bed.pki.document_signing.cert).expect("signing cert"),
    )
    .expect("pem");
    let verified = siirto_core::dsig::verify(
        &body,
        siirto_core::dsig::Policy {
            trust: siirto_core::dsig::Trust::Pinned(&pinned),
            allow_sha1: false,
        },
        &siirto_xsd::Limits::default(),
    )
    .expect("the delivered ELMO verifies");
    assert!(verified.signature_method.ends_with("ecdsa-sha256"));
    let key = siirto_gateway::tools::audit_public_key(&bed.config).expect("audit key");
    let receipt =
        siirto_core::receipt::verify_receipt(transfer["receipt"].as_str().expect("receipt"), &key)
            .expect("the receipt verifies");
    assert_eq!(
        receipt.claims().document_sha256,
        siirto_core::vault::sha256(&body)
    );
    let xmlsec1 = std::process::Command::new("xmlsec1")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if xmlsec1 {
        let dir = tempfile::tempdir().expect("tempdir");
        let stored = dir.path().join("delivered.xml");
        std::fs::write(&stored, &body).expect("write");
        let out = std::process::Command::new("xmlsec1")
            .args(["--verify", "--enabled-key-data", "x509", "--trusted-pem"])
            .arg(&bed.pki.ca.cert)
            .arg(&stored)
            .output()
            .expect("run xmlsec1");
        assert!(
            out.status.success(),
            "xmlsec1 refuses the delivered ELMO: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        siirto_testsupport::skip("needs xmlsec1 (install the Debian package xmlsec1)");
    }
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virta_to_a_siirto_v1_destination() {
    let Some((bed, corpus)) = registers().await else {
        return;
    };
    let source = virta_sample(&corpus);
    bed.sources["virta"].insert(STUDENT, source.clone().into_bytes());
    let (transfer, body) = deliver(&bed, "virta", "espoo", SCOPE_NO_SUPPORT).await;

    assert_valid(Format::SiirtoV1, &body, "siirto-v1 delivered to espoo");
    assert_only_the_student(Format::SiirtoV1, &body);
    walk::assert_within_scope(
        Format::SiirtoV1,
        &body,
        Scope::parse(SCOPE_NO_SUPPORT).expect("scope"),
        "siirto-v1 delivered to espoo",
    );
    let sent = read(Format::Virta, source.as_bytes());
    let got = read(Format::SiirtoV1, &body);
    assert_eq!(achievements(&got), achievements(&sent));
    assert_eq!(got.study_rights.len(), 1);
    assert_eq!(got.term_registrations.len(), sent.term_registrations.len());
    assert_eq!(got.mobility_periods.len(), 1);
    let root = parse(&body);
    assert_eq!(
        root.child("student")
            .and_then(|s| s.child_text("henkilotunnus"))
            .as_deref(),
        Some(STUDENT)
    );
    assert_eq!(transfer["conversion"]["from"], "virta");
    assert_eq!(transfer["conversion"]["to"], "siirto-v1");
    bed.stop().await;
}

/// A register answer naming several students yields only the authorized one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_virta_document_with_several_students_delivers_only_the_named_one() {
    let Some((bed, corpus)) = registers().await else {
        return;
    };
    bed.sources["virta"].insert(STUDENT, virta_two_students(&corpus).into_bytes());
    for dst in ["emrex", "espoo"] {
        let (_, body) = deliver(&bed, "virta", dst, "identity achievements").await;
        let format = if dst == "emrex" {
            Format::Elmo
        } else {
            Format::SiirtoV1
        };
        assert_valid(format, &body, dst);
        assert_only_the_student(format, &body);
        assert_eq!(read(format, &body).achievements.len(), 5);
    }
    bed.stop().await;
}

/// `support` (special-needs support decisions) is sensitive: it arrives only when named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn support_data_arrives_only_with_support_scope() {
    let bed = start().await;
    bed.sources["turku"].insert(STUDENT, school_record(STUDENT, false).into_bytes());

    let (without, body) = deliver(&bed, "turku", "espoo", SCOPE_NO_SUPPORT).await;
    assert_valid(Format::SiirtoV1, &body, "without support");
    walk::assert_within_scope(
        Format::SiirtoV1,
        &body,
        Scope::parse(SCOPE_NO_SUPPORT).expect("scope"),
        "without support",
    );
    let names = element_names(&parse(&body));
    assert!(
        !names
            .iter()
            .any(|n| n == "supportDecisions" || n == "supportDecision"),
        "{names:?}"
    );
    let text = String::from_utf8_lossy(&body);
    assert!(!text.contains("erityinen") && !text.contains("2021-01-11"));
    let report = &without["conversion"];
    assert!(
        report["dropped_by_scope"]["support"].is_object(),
        "the report says support was withheld: {report:#}"
    );
    assert!(
        !report["categories"]
            .as_array()
            .expect("categories")
            .contains(&Value::from("support"))
    );

    // Another authorization, naming support, to Helsinki.
    let (with, body) = deliver(&bed, "turku", "helsinki", SCOPE_ALL).await;
    assert_valid(Format::SiirtoV1, &body, "with support");
    let root = parse(&body);
    let decisions: Vec<String> = root
        .child("supportDecisions")
        .expect("support decisions arrive with support scope")
        .children_named("supportDecision")
        .filter_map(|d| d.attribute("kind").map(str::to_owned))
        .collect();
    assert_eq!(decisions, vec!["erityinen".to_owned()]);
    assert!(
        with["conversion"]["categories"]
            .as_array()
            .expect("categories")
            .contains(&Value::from("support"))
    );
    assert!(
        with["conversion"]["dropped_by_scope"]
            .get("support")
            .is_none()
    );
    bed.stop().await;
}

/// Turvakielto (non-disclosure for personal safety): the home municipality, address and contact
/// details never leave, even with every category authorized; the report says what was removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turvakielto_removes_location_and_contacts_whatever_the_scope() {
    let bed = start().await;
    bed.sources["turku"].insert(STUDENT, school_record(STUDENT, true).into_bytes());
    let (transfer, body) = deliver(&bed, "turku", "espoo", SCOPE_ALL).await;
    assert_valid(Format::SiirtoV1, &body, "turvakielto record");
    let root = parse(&body);
    let student = root.child("student").expect("student");
    assert_eq!(student.attribute("turvakielto"), Some("true"));
    for absent in ["homeMunicipality", "address", "contact"] {
        assert!(student.child(absent).is_none(), "{absent} was delivered");
    }
    let text = String::from_utf8_lossy(&body);
    for secret in [
        "Kotikatu",
        "20100",
        "+358 40 123 4567",
        "maija.huoltaja",
        ">853<",
    ] {
        assert!(!text.contains(secret), "`{secret}` was delivered");
    }
    // Everything else the scope names still arrives.
    assert_eq!(
        student.child_text("henkilotunnus").as_deref(),
        Some(STUDENT)
    );
    assert_eq!(siirto_achievements(&root).len(), 3);
    assert!(root.child("supportDecisions").is_some());

    let report = &transfer["conversion"];
    assert_eq!(report["turvakielto"], true, "{report:#}");
    let removed = report["dropped_by_turvakielto"]
        .as_object()
        .expect("dropped_by_turvakielto");
    let paths: Vec<&str> = removed.keys().map(String::as_str).collect();
    for field in ["home_municipality", "address", "contact"] {
        assert!(
            paths.iter().any(|p| p.contains(field)),
            "the report names {field}: {paths:?}"
        );
    }
    assert!(report["counts"]["dropped_by_turvakielto"].as_u64() >= Some(3));
    // And the report holds no personal data.
    let report_text = report.to_string();
    assert!(!report_text.contains("Kotikatu") && !report_text.contains(STUDENT));
    bed.stop().await;
}

/// The source answers with a record about someone else: the transfer fails as
/// `subject_mismatch` and nothing is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_about_another_student_is_never_delivered() {
    // Without the corpus the register half is skipped loudly; the municipal half still runs.
    let (bed, corpus) = start_with_registers_if_any().await;
    // A school system that mixes up its pupils ...
    bed.sources["turku"].insert(STUDENT, school_record(OTHER_STUDENT, false).into_bytes());
    let mut routes = vec![("turku", "espoo")];
    if let Some(corpus) = &corpus {
        // ... and a register answering with the unmodified sample (someone else's henkilötunnus).
        let original = std::fs::read(corpus.join("virta/samples/Virta.xml")).expect("sample");
        bed.sources["virta"].insert(STUDENT, original);
        routes.push(("virta", "emrex"));
    }
    for (src, dst) in routes {
        let id = submit_accepted(&bed, &token(&bed, STUDENT, src, dst, SCOPE_NO_SUPPORT)).await;
        let transfer = assert_failed(&bed, &id, "subject_mismatch").await;
        assert_eq!(step(&transfer, "validate")["outcome"], "ok", "{transfer:#}");
        assert_eq!(step(&transfer, "convert")["outcome"], "subject_mismatch");
        let story = audit_of(&bed, &id).await;
        assert!(
            story.contains(&("document.convert".to_owned(), "subject_mismatch".to_owned())),
            "{story:?}"
        );
        assert_eq!(
            story.last(),
            Some(&("transfer.failed".to_owned(), "subject_mismatch".to_owned()))
        );
    }
    assert_nothing_delivered(&bed);
    bed.stop().await;
}

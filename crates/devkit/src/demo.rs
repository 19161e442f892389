//! `siirto demo`: whole transfers on this machine, printed step by step.
//!
//! Owns: the demo's story and its sample record. The story: a 12-year-old pupil moves from Turku
//! to Espoo; the pupil's guardian reads the consent text the gateway gives, agrees, and the
//! e-service signs the authorization over that text's hash with the guardian as `act`; the
//! receipt is verified and the pupil's own page saved as an HTML file. Everything it runs is the real thing — a fresh
//! development PKI, the gateway with mutual TLS on 127.0.0.1, a source (Turku's school system)
//! and a destination (Espoo's) as real TLS servers, an e-service signing the student's
//! authorization, the SQLite store; then another pupil's record from the national register
//! KOSKI (an in-process peer speaking its luovutuspalvelu, serving a KOSKI document generated
//! by [`crate::registers::koski_pupil`]) converted from KOSKI's JSON to Espoo's siirto-v1, the
//! conversion shown subject by subject; then the same pupil's record on a consent given at
//! KOSKI itself (OmaData: the in-process [`crate::omadata::OmadataPeer`], not KOSKI, as the
//! authorization and resource server); then a check without transfer (Espoo asks whether the
//! first pupil has a study place; only the signed yes or no comes back) — and at the end the
//! audit trail, verified.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::registers::koski_pupil;
use crate::testbed::{Testbed, TestbedError, TestbedOptions};
use siirto_core::audit::{CheckpointVerifier, Verifier};

/// The demo pupil's learner number (made up).
pub const DEMO_LEARNER: &str = "1.2.246.562.24.10000000008";

/// A made-up pupil moving from Turku to Espoo. The identity code has a valid check character
/// but belongs to no one.
pub const DEMO_STUDENT: &str = "150608A123J";

/// [`school_record`] of `subject` grown with further course achievements to just under `bytes`
/// (the largest such record not longer than `bytes`): large records for the benchmarks and the
/// memory tests.
pub fn school_record_of_size(subject: &str, bytes: usize) -> Vec<u8> {
    let base = school_record(subject, false);
    let end = "</achievements>";
    let Some((head, tail)) = base.split_once(end) else {
        return base.into_bytes();
    };
    let mut doc = head.to_owned();
    for i in 0.. {
        let achievement = format!(
            r#"    <achievement key="extra-{i}" kind="course" provider="1.2.246.562.10.10000000001" studyRight="perusopetus-1">
      <code>VAL{i}</code>
      <name lang="fi">Valinnainen kurssi {i}</name>
      <date>2025-05-30</date>
      <grade><asteikko-4-10>{}</asteikko-4-10></grade>
      <credits unit="vvt">1</credits>
    </achievement>
"#,
            4 + i % 7
        );
        if doc.len() + achievement.len() + end.len() + tail.len() > bytes {
            break;
        }
        doc.push_str(&achievement);
    }
    doc.push_str(end);
    doc.push_str(tail);
    doc.into_bytes()
}

/// A municipal school record (siirto-v1) for `subject` with every category: identity with home
/// municipality, address and contact; a study right; three achievements; a special-support
/// decision. The birth date is the one the henkilötunnus encodes (a record whose birth date
/// contradicts it is refused as `subject_mismatch`).
pub fn school_record(subject: &str, turvakielto: bool) -> String {
    let birth_date = siirto_core::student_id::birth_date(subject)
        .map_or_else(String::new, |(y, m, d)| {
            format!("\n    <birthDate>{y:04}-{m:02}-{d:02}</birthDate>")
        });
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<studentRecord xmlns="urn:siirto:record:v1" version="1" generatedAt="2026-05-01T10:00:00Z">
  <student turvakielto="{turvakielto}">
    <henkilotunnus>{subject}</henkilotunnus>
    <familyName>Meikäläinen</familyName>
    <givenNames>Maija Liisa</givenNames>{birth_date}
    <motherTongue>fi</motherTongue>
    <homeMunicipality>853</homeMunicipality>
    <address><line>Kotikatu 1 B 7</line><postalCode>20100</postalCode><locality>Turku</locality><country>FI</country></address>
    <contact type="phone">+358 40 123 4567</contact>
    <contact type="email">maija.huoltaja@example.fi</contact>
  </student>
  <providers>
    <provider key="1.2.246.562.10.10000000001">
      <identifier type="organisaatio-oid">1.2.246.562.10.10000000001</identifier>
      <name lang="fi">Puolalanmäen koulu</name>
      <country>FI</country>
    </provider>
  </providers>
  <studyRights>
    <studyRight key="perusopetus-1" provider="1.2.246.562.10.10000000001" kind="basic">
      <start>2017-08-01</start>
      <state start="2017-08-01" value="active"/>
    </studyRight>
  </studyRights>
  <achievements>
    <achievement key="ma-8" kind="course" provider="1.2.246.562.10.10000000001" studyRight="perusopetus-1">
      <code>MA</code>
      <name lang="fi">Matematiikka</name>
      <date>2025-05-30</date>
      <grade><asteikko-4-10>9</asteikko-4-10></grade>
      <credits unit="vvt">3</credits>
    </achievement>
    <achievement key="ai-8" kind="course" provider="1.2.246.562.10.10000000001" studyRight="perusopetus-1">
      <code>AI</code>
      <name lang="fi">Äidinkieli ja kirjallisuus</name>
      <date>2025-05-30</date>
      <grade><asteikko-4-10>7</asteikko-4-10></grade>
      <credits unit="vvt">3</credits>
    </achievement>
    <achievement key="ku-8" kind="course" provider="1.2.246.562.10.10000000001">
      <code>KU</code>
      <name lang="fi">Kuvataide</name>
      <date>2025-05-30</date>
      <grade><hyvaksytty-hylatty>S</hyvaksytty-hylatty></grade>
    </achievement>
  </achievements>
  <supportDecisions>
    <supportDecision kind="erityinen" provider="1.2.246.562.10.10000000001">
      <decidedOn>2021-01-11</decidedOn>
      <start>2021-01-18</start>
      <individualisedSubject>MA</individualisedSubject>
    </supportDecision>
  </supportDecisions>
</studentRecord>
"#
    )
}

/// Prints a transfer's steps and status.
fn print_steps(transfer: &Value) {
    if let Some(steps) = transfer.get("steps").and_then(Value::as_array) {
        for s in steps {
            println!(
                "   {}  {:<9} {:<10} {}",
                s["at"].as_str().unwrap_or(""),
                s["step"].as_str().unwrap_or(""),
                s["outcome"].as_str().unwrap_or(""),
                s["detail"].as_str().unwrap_or("")
            );
        }
    }
    println!("   status: {}", transfer["status"]);
}

/// Whether a delivered document's XML Signature verifies with the `[documents]` certificate
/// (`pki init`'s document-signing certificate), in words.
fn signature_verdict(bed: &Testbed, document: &[u8]) -> Result<String, DemoError> {
    let pem = std::fs::read(&bed.pki.document_signing.cert)
        .map_err(|e| DemoError::Step(format!("the document-signing certificate: {e}")))?;
    let pinned = siirto_core::dsig::certificates_from_pem(&pem).map_err(DemoError::Step)?;
    let policy = siirto_core::dsig::Policy {
        trust: siirto_core::dsig::Trust::Pinned(&pinned),
        allow_sha1: false,
    };
    match siirto_core::dsig::verify(document, policy, &siirto_xsd::Limits::default()) {
        Ok(v) => Ok(format!(
            "XML Signature: verifies with the gateway's document-signing certificate ({})",
            v.signature_method.rsplit('#').next().unwrap_or("")
        )),
        Err(e) => Err(DemoError::Step(format!(
            "the delivered document's signature does not verify: {e}"
        ))),
    }
}

/// With the ELMO schema: the KOSKI pupil's record to an EMREX destination, signed as the ELMO
/// schema requires, and the signature checked.
async fn elmo_transfer(bed: &Testbed) -> Result<(), DemoError> {
    step(
        11,
        "The same KOSKI pupil's record to an EMREX destination, as a signed ELMO document",
    );
    let authorization = bed.authorization(DEMO_STUDENT, "koski", "emrex", "identity achievements");
    let token = bed.sign(&authorization.claims())?;
    let answer = bed
        .client("eservice")?
        .submit(&token)
        .await
        .map_err(TestbedError::from)?;
    let id = answer
        .json()
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| DemoError::Step(format!("submission refused: {}", answer.json())))?;
    let transfer = bed
        .wait_for_status(
            "eservice",
            &id,
            &["delivered", "failed", "cancelled"],
            Duration::from_secs(30),
        )
        .await?;
    print_steps(&transfer);
    if transfer["status"] != "delivered" {
        return Err(DemoError::Step(format!(
            "the ELMO transfer did not arrive: {transfer}"
        )));
    }
    let delivered = bed
        .destinations
        .get("emrex")
        .and_then(|d| d.requests().into_iter().find(|r| r.idempotency_key == id))
        .ok_or_else(|| DemoError::Step("the EMREX destination received nothing".into()))?;
    println!(
        "   {} bytes of ELMO, sha256 {}",
        delivered.body.len(),
        siirto_core::vault::sha256_hex(&delivered.body)
    );
    println!(
        "   the delivered ELMO's {}",
        signature_verdict(bed, &delivered.body)?
    );
    Ok(())
}

/// Step 7: the pupil's record from KOSKI to Espoo, and the conversion subject by subject.
async fn koski_transfer(bed: &Testbed) -> Result<(), DemoError> {
    step(
        10,
        "Another pupil's record, from the national register KOSKI, for Espoo's school system",
    );
    let authorization = bed.authorization(
        DEMO_STUDENT,
        "koski",
        "espoo",
        "identity enrolment achievements",
    );
    let token = bed.sign(&authorization.claims())?;
    println!(
        "   src=koski dst=espoo scope=\"{}\" (the e-service submits it as before)",
        authorization.scope
    );
    let answer = bed
        .client("eservice")?
        .submit(&token)
        .await
        .map_err(TestbedError::from)?;
    let id = answer
        .json()
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| DemoError::Step(format!("submission refused: {}", answer.json())))?;
    let transfer = bed
        .wait_for_status(
            "eservice",
            &id,
            &["delivered", "failed", "cancelled"],
            Duration::from_secs(30),
        )
        .await?;
    let koski = bed
        .koski
        .get("koski")
        .ok_or_else(|| DemoError::Step("no koski source".into()))?;
    if let Some(request) = koski.requests().last() {
        let body = String::from_utf8_lossy(&request.body).replace(DEMO_STUDENT, "<henkilötunnus>");
        println!(
            "   gateway → KOSKI  {} {}  (the henkilötunnus only in the body)\n                    {body}",
            request.method, request.target
        );
        println!(
            "   KOSKI → gateway  {} with KOSKI's oppija JSON",
            request.status
        );
    }
    print_steps(&transfer);
    if transfer["status"] != "delivered" {
        return Err(DemoError::Step(format!(
            "the KOSKI transfer did not arrive: {transfer}"
        )));
    }
    let delivered = bed
        .destinations
        .get("espoo")
        .and_then(|d| d.requests().into_iter().find(|r| r.idempotency_key == id))
        .ok_or_else(|| DemoError::Step("Espoo received nothing from KOSKI".into()))?;
    let root = siirto_xsd::dom::parse(&delivered.body, &siirto_xsd::Limits::default())
        .map_err(|e| DemoError::Step(format!("the delivered record: {e}")))?;
    println!("   koski (JSON) → siirto-v1 (XML), as Espoo received it:");
    println!(
        "     {:<38} {:<9} →  siirto-v1 <achievement>",
        "KOSKI suoritus (koodiarvo, nimi)", "arvosana"
    );
    let oppija = koski_pupil(DEMO_STUDENT, DEMO_LEARNER);
    let achievements: Vec<&siirto_xsd::dom::Element> = root
        .child("achievements")
        .map(|a| a.children_named("achievement").collect())
        .unwrap_or_default();
    for suoritus in oppija["opiskeluoikeudet"][0]["suoritukset"][0]["osasuoritukset"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let tunniste = &suoritus["koulutusmoduuli"]["tunniste"];
        let code = tunniste["koodiarvo"].as_str().unwrap_or("");
        let name = tunniste["nimi"]["fi"].as_str().unwrap_or("");
        let grade = suoritus["arviointi"][0]["arvosana"]["koodiarvo"]
            .as_str()
            .unwrap_or("");
        let arrived = achievements
            .iter()
            .find(|a| a.child_text("code").as_deref() == Some(code))
            .map_or_else(
                || "(not delivered)".to_owned(),
                |a| {
                    let scheme = a
                        .child("code")
                        .and_then(|c| c.attribute("scheme"))
                        .map_or(String::new(), |s| format!(" scheme={s}"));
                    let grade = a
                        .child("grade")
                        .and_then(|g| g.elements().next())
                        .map_or(String::new(), |g| {
                            format!("  <{}>{}</{}>", g.local, g.text().trim(), g.local)
                        });
                    format!("<code{scheme}>{code}</code>{grade}")
                },
            );
        println!(
            "     {:<38} {grade:<9} →  {arrived}",
            format!("{code} {name}")
        );
    }
    let report = &transfer["conversion"];
    let paths = |key: &str| report[key].as_object().map_or(0, serde_json::Map::len);
    println!(
        "   conversion report: carried {} kinds of field; dropped by scope: {}; KOSKI fields siirto-v1 has no place for: {}; not understood: {}",
        paths("carried"),
        report["dropped_by_scope"]
            .as_object()
            .map_or_else(String::new, |d| d
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")),
        paths("not_read_from_source") + paths("dropped_by_target"),
        paths("not_understood"),
    );
    let support = String::from_utf8_lossy(&delivered.body).contains("supportDecision");
    println!(
        "   support decisions (in KOSKI's lisätiedot) in the delivered record: {}",
        if support {
            "YES (wrong!)"
        } else {
            "none (not in scope)"
        }
    );
    Ok(())
}

/// Step 11: a pupil consents at KOSKI itself (OmaData): the e-service asks the gateway for a
/// consent request, the pupil's browser goes to KOSKI's consent page (the in-process OmaData
/// peer, which is not KOSKI), the e-service hands the code on, and the gateway exchanges it and
/// fetches on KOSKI's own consent record.
async fn omadata_transfer(bed: &Testbed) -> Result<(), DemoError> {
    step(
        12,
        "A pupil consents at KOSKI itself (OmaData): the record moves on KOSKI's own consent",
    );
    let peer = bed
        .omadata
        .get("koski-omadata")
        .ok_or_else(|| DemoError::Step("no koski-omadata source".into()))?;
    peer.insert(koski_pupil(DEMO_STUDENT, DEMO_LEARNER));
    peer.sign_in_as(DEMO_STUDENT);
    let authorization = bed.authorization(
        DEMO_STUDENT,
        "koski-omadata",
        "espoo",
        "identity enrolment achievements",
    );
    let token = bed.sign(&authorization.claims())?;
    let eservice = bed.client("eservice")?;
    let created = eservice
        .post_json(
            "/v1/consent-requests",
            &serde_json::json!({"authorization": token, "redirect_uri": crate::pki::DEV_REDIRECT_URI}),
        )
        .await
        .map_err(TestbedError::from)?;
    let body = created.json();
    let (Some(id), Some(url)) = (body["id"].as_str(), body["authorize_url"].as_str()) else {
        return Err(DemoError::Step(format!("consent request refused: {body}")));
    };
    let (endpoint, query) = url.split_once('?').unwrap_or((url, ""));
    let names: Vec<String> = query
        .split('&')
        .filter_map(|p| p.split_once('=').map(|(k, _)| k.to_owned()))
        .collect();
    println!(
        "   e-service → gateway  POST /v1/consent-requests  → 201, the pupil's browser is sent to
                        {endpoint}
                        with {}",
        names.join(", ")
    );
    println!(
        "   (the PKCE verifier stays sealed in the gateway's store; only its S256 challenge leaves)"
    );
    let (origin, rest) = url
        .strip_prefix("https://")
        .and_then(|u| u.split_once('/'))
        .ok_or_else(|| DemoError::Step("the authorization URL is not https".into()))?;
    let browser =
        crate::client::MtlsClient::new(&format!("https://{origin}"), &bed.pki.ca.cert, None)
            .map_err(TestbedError::from)?;
    let page = browser
        .get(&format!("/{rest}"), &[])
        .await
        .map_err(TestbedError::from)?;
    let (action, fields) = crate::omadata::read_form_post(&String::from_utf8_lossy(&page.body))
        .ok_or_else(|| DemoError::Step("KOSKI's page posted no form".into()))?;
    println!(
        "   KOSKI: the pupil logs in strongly and agrees; KOSKI's page posts code and state to {action}"
    );
    let fields: serde_json::Map<String, Value> = fields
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let handed = eservice
        .post_json(
            &format!("/v1/consent-requests/{id}/code"),
            &Value::Object(fields),
        )
        .await
        .map_err(TestbedError::from)?;
    let transfer_id = handed
        .json()
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| DemoError::Step(format!("the code was refused: {}", handed.json())))?;
    println!(
        "   e-service → gateway  POST /v1/consent-requests/{{id}}/code  → {} (transfer accepted)",
        handed.status.as_u16()
    );
    let transfer = bed
        .wait_for_status(
            "eservice",
            &transfer_id,
            &["delivered", "failed", "cancelled"],
            Duration::from_secs(30),
        )
        .await?;
    println!(
        "   gateway → KOSKI  token endpoint (mutual TLS, code + PKCE verifier): {} exchange; resource endpoint (Bearer): {} fetch",
        peer.exchanges().values().sum::<u32>(),
        peer.resource_calls()
    );
    print_steps(&transfer);
    if transfer["status"] != "delivered" {
        return Err(DemoError::Step(format!(
            "the consent-based KOSKI transfer did not arrive: {transfer}"
        )));
    }
    println!("   the student's page and the receipt say: consent given at KOSKI");
    Ok(())
}

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    Testbed(#[from] TestbedError),
    #[error("{0}")]
    Step(String),
}

/// Step 11: a check without transfer, with its consent text, its answer and the attestation
/// verified with the audit key.
async fn check(
    bed: &Testbed,
    eservice: &crate::client::MtlsClient,
    pupil: &str,
    guardian: &str,
    key: &siirto_core::audit::AuditPublicKey,
) -> Result<(), DemoError> {
    step(
        13,
        "A check without transfer: Espoo asks whether the pupil has a study place; no record moves",
    );
    let answer = eservice
        .get(
            "/v1/consent-text?src=turku&dst=espoo&purpose=school-change&lang=en&question=active_study_right",
            &[],
        )
        .await
        .map_err(TestbedError::from)?;
    let text = answer.json();
    let (Some(words), Some(sha256)) = (text["text"].as_str(), text["sha256"].as_str()) else {
        return Err(DemoError::Step(format!("no consent text: {text}")));
    };
    println!("   GET /v1/consent-text?…&question=active_study_right (in English):");
    println!("{}", indented(words));
    let mut claims = bed
        .authorization(pupil, "turku", "espoo", "identity")
        .claims();
    if let Some(map) = claims.as_object_mut() {
        map.remove("scope");
        map.insert("question".into(), serde_json::json!("active_study_right"));
        map.insert(
            "act".into(),
            serde_json::json!({"sub": guardian, "role": "guardian"}),
        );
        map.insert("consent_sha256".into(), serde_json::json!(sha256));
        map.insert("consent_lang".into(), serde_json::json!("en"));
    }
    let token = bed.sign_as(&claims, siirto_core::authz::CHECK_TYP)?;
    let answer = eservice
        .post_json("/v1/checks", &serde_json::json!({ "authorization": token }))
        .await
        .map_err(TestbedError::from)?;
    let body = answer.json();
    println!(
        "   POST /v1/checks (typ siirto-check+jwt, no scope) → {}",
        answer.status.as_u16()
    );
    let Some(attestation) = body["attestation"].as_str() else {
        return Err(DemoError::Step(format!("the check was refused: {body}")));
    };
    println!(
        "   question {}, answer {}",
        body["question"].as_str().unwrap_or_default(),
        body["answer"]
    );
    println!("   attestation {attestation}");
    let verified =
        siirto_core::attestation::verify_attestation_with(attestation, std::slice::from_ref(key))
            .map_err(|e| DemoError::Step(format!("the attestation does not verify: {e}")))?;
    let c = verified.claims();
    println!(
        "   verifies with the audit key (kid {}): {} asked {}, answer {}, document sha256 {}, audit leaf {}",
        verified.key_id(),
        c.audience,
        c.source,
        c.answer,
        siirto_core::clock::hex(&c.document_sha256),
        c.audit_leaf_index
    );
    println!("   (Turku's record was read inside the gateway and dropped; only its hash is kept)");
    Ok(())
}

fn step(n: u32, text: &str) {
    println!("\n{n}. {text}");
}

/// Where the demo saves the student's page: `page`, else `student-page.html` in `keep`, else
/// in the system's temporary directory (which the demo does not remove).
fn page_path(keep: Option<&Path>, page: Option<&Path>) -> PathBuf {
    match (page, keep) {
        (Some(page), _) => page.to_owned(),
        (None, Some(dir)) => dir.join("student-page.html"),
        (None, None) => std::env::temp_dir().join("siirto-demo-student-page.html"),
    }
}

/// The demo's pupil: 12 years old today (born 12 years and about three months ago), and a
/// guardian of 41; made-up identity codes (individual numbers 9xx: temporary, nobody's).
fn pupil_and_guardian(now: siirto_core::clock::Timestamp) -> Option<(String, String)> {
    let today = siirto_core::lang::helsinki_date(now)?;
    let born = |years: u16, nnn: u16| {
        let (mut year, mut month) = (today.year() - years, today.month());
        for _ in 0..3 {
            (year, month) = if month == 1 {
                (year - 1, 12)
            } else {
                (year, month - 1)
            };
        }
        let day = today.day().min(28);
        let sign = if year >= 2000 { 'A' } else { '-' };
        siirto_core::student_id::with_check_character(&format!(
            "{day:02}{month:02}{:02}{sign}{nnn:03}",
            year % 100
        ))
    };
    Some((born(12, 913), born(41, 914)))
}

fn indented(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                "   │".to_owned()
            } else {
                format!("   │ {l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs the demo; `keep` writes the PKI, configuration and database there instead of a
/// temporary directory that is removed afterwards; the student's page is saved to `page` (see
/// [`page_path`]).
pub async fn run(keep: Option<&Path>, page: Option<&Path>) -> Result<(), DemoError> {
    let started = Instant::now();
    println!(
        "Siirto demo: a pupil moves from Turku to Espoo, a guardian agrees; then a pupil from the national register KOSKI, once on the e-service's word and once on a consent given at KOSKI itself; everything on 127.0.0.1"
    );

    step(1, "Development PKI, configuration and SQLite store");
    // The EMREX ELMO schema is not shipped with Siirto: with $SIIRTO_CORPUS naming the corpus
    // that holds it, the demo also delivers ELMO to an EMREX destination.
    let elmo_schema = std::env::var_os("SIIRTO_CORPUS")
        .map(|c| Path::new(&c).join("elmo/schema.xsd"))
        .filter(|p| p.is_file());
    let bed = Testbed::start(TestbedOptions {
        dir: keep.map(Path::to_path_buf),
        koski: true,
        omadata: true,
        schemas: siirto_core::config::SchemaPaths {
            elmo: elmo_schema,
            ..siirto_core::config::SchemaPaths::default()
        },
        ..TestbedOptions::default()
    })
    .await?;
    println!("   directory      {}", bed.dir.display());
    println!("   configuration  {}", bed.config_path().display());
    println!("   CA             {}", bed.pki.ca.cert.display());
    println!("   database       {}", bed.config.gateway.database_url);
    let (pupil, guardian) = pupil_and_guardian(bed.now())
        .ok_or_else(|| DemoError::Step("the clock is outside the calendar".into()))?;

    step(
        2,
        "Participants (real TLS servers requiring the gateway's client certificate)",
    );
    let source = bed
        .sources
        .get("turku")
        .ok_or_else(|| DemoError::Step("no turku source".into()))?;
    let destination = bed
        .destinations
        .get("espoo")
        .ok_or_else(|| DemoError::Step("no espoo destination".into()))?;
    source.insert(&pupil, school_record(&pupil, false).into_bytes());
    println!("   source       turku  (siirto-v1)  {}", source.base_url());
    println!(
        "   destination  espoo  (siirto-v1)  {}",
        destination.base_url()
    );
    let koski = bed
        .koski
        .get("koski")
        .ok_or_else(|| DemoError::Step("no koski source".into()))?;
    koski.insert(koski_pupil(DEMO_STUDENT, DEMO_LEARNER), None);
    println!(
        "   source       koski  (koski JSON, KOSKI luovutuspalvelu)  {}",
        koski.base_url()
    );
    println!(
        "   gateway API  {} (mTLS)   admin {}",
        bed.api_url(),
        bed.admin_url()
    );
    println!(
        "   pupil        {pupil} (made up), 12 years old: too young to consent alone (own_consent_age {})",
        bed.config.consent.own_consent_age
    );

    step(
        3,
        "The guardian opens the e-service; it asks the gateway what to show: GET /v1/consent-text",
    );
    let scope = "identity enrolment achievements";
    let eservice = bed.client("eservice")?;
    let query = format!(
        "/v1/consent-text?src=turku&dst=espoo&scope={}&purpose=school-change&lang=fi",
        scope.replace(' ', "+")
    );
    let answer = eservice
        .get(&query, &[])
        .await
        .map_err(TestbedError::from)?;
    let text = answer.json();
    let (Some(words), Some(sha256), Some(version)) = (
        text["text"].as_str(),
        text["sha256"].as_str(),
        text["version"].as_str(),
    ) else {
        return Err(DemoError::Step(format!("no consent text: {text}")));
    };
    println!(
        "   {} version {version}, in Finnish:",
        answer.status.as_u16()
    );
    println!("{}", indented(words));
    println!("   sha256 {sha256}");

    step(
        4,
        "The guardian agrees; the e-service signs the authorization over that text (ES256 JWS)",
    );
    let mut authorization = bed.authorization(&pupil, "turku", "espoo", scope);
    authorization.guardian = Some(guardian.clone());
    authorization.consent = Some((sha256.to_owned(), "fi".to_owned()));
    let claims = authorization.claims();
    let token = bed.sign(&claims)?;
    println!(
        "   iss={} aud={}",
        authorization.issuer, authorization.audience
    );
    println!(
        "   src=turku dst=espoo scope=\"{}\" purpose={} (support data not included)",
        authorization.scope, authorization.purpose
    );
    println!(
        "   act={{\"sub\": \"{guardian}\", \"role\": \"guardian\"}} (made up; the gateway keeps only a keyed pseudonym)"
    );
    println!("   consent_sha256={sha256} consent_lang=fi");

    step(
        5,
        "The e-service submits it over mutual TLS: POST /v1/transfers",
    );
    let answer = eservice.submit(&token).await.map_err(TestbedError::from)?;
    println!("   {} {}", answer.status.as_u16(), answer.json());
    let id = answer
        .json()
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| DemoError::Step(format!("submission refused: {}", answer.json())))?;

    step(
        6,
        "The gateway fetches, validates, prunes, converts, validates and delivers",
    );
    let transfer = bed
        .wait_for_status(
            "eservice",
            &id,
            &["delivered", "failed", "cancelled"],
            Duration::from_secs(30),
        )
        .await?;
    print_steps(&transfer);
    if transfer["status"] != "delivered" {
        return Err(DemoError::Step(format!(
            "transfer did not arrive: {transfer}"
        )));
    }

    step(7, "What Espoo received");
    let received = destination.requests();
    for r in &received {
        println!(
            "   POST /records  Idempotency-Key {}  {}  {} bytes  → {}",
            r.idempotency_key,
            r.content_type,
            r.body.len(),
            r.status
        );
    }
    if let Some(r) = received.first() {
        let text = String::from_utf8_lossy(&r.body);
        let support = text.contains("supportDecision");
        println!(
            "   support decisions in the delivered record: {}",
            if support {
                "YES (wrong!)"
            } else {
                "none (not in scope)"
            }
        );
        println!("   sha256 {}", siirto_core::vault::sha256_hex(&r.body));
        println!("   {}", signature_verdict(&bed, &r.body)?);
    }

    step(8, "The receipt (EdDSA JWS signed with the audit key)");
    let key = siirto_gateway::tools::audit_public_key(&bed.config)
        .map_err(|e| DemoError::Step(e.to_string()))?;
    let receipt = transfer
        .get("receipt")
        .and_then(Value::as_str)
        .ok_or_else(|| DemoError::Step("no receipt".into()))?;
    let verified = siirto_core::receipt::verify_receipt(receipt, &key)
        .map_err(|e| DemoError::Step(format!("the receipt does not verify: {e}")))?;
    let c = verified.claims();
    let name = |p: &siirto_core::receipt::Party| {
        p.name
            .as_ref()
            .map_or_else(|| p.id.clone(), |n| format!("{} ({})", n.fi, p.id))
    };
    println!("   {}...", &receipt[..receipt.len().min(60)]);
    println!("   verifies with the audit key (kid {})", verified.key_id());
    println!("   from {} to {}", name(&c.source), name(&c.destination));
    println!(
        "   basis {}, guardian {}, categories {}, purpose {}",
        c.basis, c.guardian, c.scope, c.purpose
    );
    if let Some(consent) = &c.consent {
        println!(
            "   consent text sha256 {} (version {}, {})",
            siirto_core::clock::hex(&consent.sha256),
            consent.version,
            consent.lang
        );
    }
    println!(
        "   delivered {}, audit leaf {}",
        c.issued_at, c.audit_leaf_index
    );

    step(
        9,
        "The pupil's own page: GET /v1/students/transfers (Accept: text/html), saved",
    );
    let transparency = bed.transparency_token(&pupil)?;
    let bearer = format!("Bearer {transparency}");
    let page_answer = eservice
        .get(
            "/v1/students/transfers?lang=fi",
            &[("authorization", &bearer), ("accept", "text/html")],
        )
        .await
        .map_err(TestbedError::from)?;
    if page_answer.status.as_u16() != 200 {
        return Err(DemoError::Step(format!(
            "the page: {} {}",
            page_answer.status,
            String::from_utf8_lossy(&page_answer.body)
        )));
    }
    let saved = page_path(keep, page);
    std::fs::write(&saved, &page_answer.body)
        .map_err(|e| DemoError::Step(format!("cannot write {}: {e}", saved.display())))?;
    println!(
        "   {} bytes of HTML (fi; also ?lang=sv and ?lang=en) saved to {}",
        page_answer.body.len(),
        saved.display()
    );

    koski_transfer(&bed).await?;
    omadata_transfer(&bed).await?;
    if bed.destinations.contains_key("emrex") {
        elmo_transfer(&bed).await?;
    }

    check(&bed, &eservice, &pupil, &guardian, &key).await?;

    step(14, "The audit trail");
    let gateway = bed
        .gateway
        .clone()
        .ok_or_else(|| DemoError::Step("no gateway".into()))?;
    let entries = gateway
        .store
        .audit_range(0, 1000)
        .await
        .map_err(|e| DemoError::Step(e.to_string()))?;
    for e in &entries {
        println!(
            "   #{:<3} {}  {:<10} {:<22} {:<18} {}",
            e.seq,
            e.event.at,
            e.event.actor,
            e.event.action,
            e.event.outcome,
            siirto_core::clock::hex(&e.hash[..6])
        );
    }
    let checkpoint_key =
        CheckpointVerifier::new(key, &siirto_gateway::config::audit_origin(&bed.config))
            .map_err(|e| DemoError::Step(e.to_string()))?;
    let notes: Vec<String> = gateway
        .store
        .checkpoints()
        .await
        .map_err(|e| DemoError::Step(e.to_string()))?
        .into_iter()
        .map(|c| c.note)
        .collect();
    let mut verifier =
        Verifier::new(&notes, &checkpoint_key).map_err(|e| DemoError::Step(e.to_string()))?;
    for e in &entries {
        verifier
            .push(e)
            .map_err(|e| DemoError::Step(format!("audit verify failed: {e}")))?;
    }
    let summary = verifier
        .finish()
        .map_err(|e| DemoError::Step(format!("audit verify failed: {e}")))?;
    println!(
        "   audit verify: OK — {} entries, hash chain intact, Merkle root {}",
        summary.entries,
        siirto_core::clock::hex(&summary.root)
    );
    println!(
        "   (the pupil and the guardian appear only as keyed pseudonyms; no record content is in the log)"
    );

    witnessed_checkpoint(&bed, &gateway).await?;

    bed.stop().await;
    println!("\nDone in {:.2} s.", started.elapsed().as_secs_f64());
    Ok(())
}

/// Step 12: a second city's gateway, started beside the first with its own SQLite store and
/// witness key, witnesses the first one's log (C2SP tlog-witness): the latest checkpoint is
/// submitted over mutual TLS with the gateway's client certificate (role `log` at the
/// witness), and the cosigned note is printed with the cosignature checked.
async fn witnessed_checkpoint(
    bed: &Testbed,
    gateway: &std::sync::Arc<siirto_gateway::state::Gateway>,
) -> Result<(), DemoError> {
    use siirto_core::audit::witness::{CosignatureVerifier, Submission, note_body};
    use siirto_core::identity::{Directory, IdentityRule, Participant, Role, parse_subject};
    let fail = |e: &dyn std::fmt::Display| DemoError::Step(e.to_string());
    step(
        15,
        "A second city's gateway witnesses the checkpoint (C2SP tlog-witness)",
    );
    gateway
        .trail
        .sync(&gateway.store)
        .await
        .map_err(|e| fail(&e))?;
    gateway
        .trail
        .checkpoint_if_due(&gateway.store, gateway.now(), true)
        .await
        .map_err(|e| fail(&e))?;
    let latest = gateway
        .store
        .latest_checkpoint()
        .await
        .map_err(|e| fail(&e))?
        .ok_or_else(|| DemoError::Step("no checkpoint".into()))?;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(|e| fail(&e))?;
    let key_path = bed.dir.join("certs").join("witness-tampere.key");
    crate::pki::write_private(&key_path, key.serialize_pem().as_bytes()).map_err(|e| fail(&e))?;
    let audit_key = siirto_core::audit::AuditSigningKey::from_pkcs8_pem(
        &std::fs::read_to_string(&bed.config.gateway.audit_key).map_err(|e| fail(&e))?,
    )
    .map_err(|e| fail(&e))?;
    let origin = siirto_gateway::config::audit_origin(&bed.config);
    let mut config = bed.config.clone();
    config.gateway.id = "tampere.dev.test".into();
    config.gateway.database_url = format!("sqlite://{}", bed.dir.join("tampere.db").display());
    config.witness = siirto_core::config::WitnessConfig {
        key: Some(key_path),
        logs: vec![siirto_core::config::WitnessedLog {
            origin: origin.clone(),
            key: audit_key.public_key().note_verifier_key(&origin),
        }],
    };
    let mut participants: Vec<Participant> = config.directory.iter().cloned().collect();
    let subject = parse_subject(&bed.pki.gateway_client_subject()).map_err(|e| fail(&e))?;
    participants.push(Participant {
        id: "siirto-dev-gateway".into(),
        roles: vec![Role::Log],
        identity: IdentityRule::Subject(subject),
        endpoint: None,
        name: None,
        statutory: None,
        redirect_uris: Vec::new(),
    });
    config.directory = Directory::from_participants(participants);
    let witness = siirto_gateway::state::Gateway::open(
        config,
        bed.clock.clone(),
        bed.random.clone(),
        crate::testbed::build_info(),
    )
    .await
    .map_err(|e| fail(&e))?;
    let verifier = CosignatureVerifier::from_verifier_key(
        &witness
            .witness
            .as_ref()
            .ok_or_else(|| DemoError::Step("no witness key".into()))?
            .cosigner
            .verifier_key(),
    )
    .map_err(|e| fail(&e))?;
    let instance = crate::testbed::Instance::start(witness)
        .await
        .map_err(|e| fail(&e))?;
    let gc = &bed.pki.gateway_client;
    let client = crate::client::MtlsClient::new(
        &format!("https://{}", instance.api),
        &bed.pki.ca.cert,
        Some((&gc.cert, &gc.key)),
    )
    .map_err(|e| fail(&e))?;
    let body = Submission {
        old_size: 0,
        proof: Vec::new(),
        note: latest.note.clone(),
    }
    .to_body();
    let answer = client
        .send(
            http::Method::POST,
            "/witness/add-checkpoint",
            &[],
            Some(bytes::Bytes::from(body)),
        )
        .await
        .map_err(|e| fail(&e))?;
    let text = String::from_utf8_lossy(&answer.body).into_owned();
    println!(
        "   POST /witness/add-checkpoint (old 0) → {} {}",
        answer.status.as_u16(),
        answer.status.canonical_reason().unwrap_or_default()
    );
    let cosignature = note_body(&latest.note)
        .and_then(|b| verifier.find(b, &text).ok().flatten())
        .ok_or_else(|| DemoError::Step(format!("no valid cosignature in: {text}")))?;
    println!("   the checkpoint with the witness's cosignature:");
    for line in format!("{}{}", latest.note, cosignature.line).lines() {
        println!("   | {line}");
    }
    println!(
        "   cosignature/v1 by {} (timestamp {}) verifies with its key {}",
        cosignature.witness,
        cosignature.timestamp,
        verifier.name()
    );
    let _ = instance.stop().await;
    Ok(())
}

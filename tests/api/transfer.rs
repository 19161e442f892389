//! A valid transfer, Turku's school system → Espoo's, is delivered exactly once: the exact XML
//! Espoo received is valid siirto-v1 (project validator and libxml2), is about the same student
//! with the same achievements and grades, and holds nothing outside the authorized scope. The
//! transfer's view shows every step, the SHA-256 of what was received and a signed receipt,
//! and the audit trail tells the same story with pseudonyms only. On SQLite and PostgreSQL.

use serde_json::Value;
use siirto_core::formats::Format;
use siirto_core::scope::Scope;
use siirto_core::vault::{sha256, sha256_hex};
use siirto_devkit::testbed::TestbedOptions;

use crate::helpers::*;
use crate::walk;

const SCOPE: &str = "identity enrolment achievements";

async fn a_valid_transfer_is_delivered_once(database_url: Option<String>) {
    let bed = start_with(TestbedOptions {
        database_url,
        ..TestbedOptions::default()
    })
    .await;
    let source_document = school_record(STUDENT, false);
    bed.sources["turku"].insert(STUDENT, source_document.clone().into_bytes());

    let id = submit_accepted(&bed, &token(&bed, STUDENT, "turku", "espoo", SCOPE)).await;
    let transfer = finished(&bed, &id).await;
    assert_eq!(transfer["status"], "delivered", "{transfer:#}");

    // Turku was asked once, naming the transfer.
    assert_eq!(bed.sources["turku"].requests(), vec![id.clone()]);

    // Espoo received exactly one request, keyed by the transfer id; nobody else received any.
    let espoo = &bed.destinations["espoo"];
    let requests = espoo.requests();
    assert_eq!(requests.len(), 1, "one delivery, got {requests:?}");
    let received = &requests[0];
    assert_eq!(received.idempotency_key, id);
    assert!(
        received.content_type.starts_with("application/xml"),
        "{}",
        received.content_type
    );
    assert_eq!(received.status, 200);
    assert_eq!(espoo.stored().len(), 1);
    for (name, d) in &bed.destinations {
        if name != "espoo" {
            assert!(d.requests().is_empty(), "{name} received something");
        }
    }

    // The exact bytes received are valid siirto-v1 ...
    assert_valid(
        Format::SiirtoV1,
        &received.body,
        "the record Espoo received",
    );
    // ... about the same student, with the same achievements and grades ...
    let sent = parse(source_document.as_bytes());
    let got = parse(&received.body);
    let (sent_student, got_student) = (
        sent.child("student").expect("student"),
        got.child("student").expect("student"),
    );
    for field in [
        "henkilotunnus",
        "familyName",
        "givenNames",
        "birthDate",
        "motherTongue",
        "homeMunicipality",
    ] {
        assert_eq!(
            got_student.child_text(field),
            sent_student.child_text(field),
            "student/{field}"
        );
    }
    assert_eq!(
        got_student.child_text("henkilotunnus").as_deref(),
        Some(STUDENT)
    );
    assert_eq!(siirto_achievements(&got), siirto_achievements(&sent));
    assert_eq!(
        siirto_achievements(&got),
        vec![
            ("AI".to_owned(), "asteikko-4-10=7".to_owned()),
            ("KU".to_owned(), "hyvaksytty-hylatty=S".to_owned()),
            ("MA".to_owned(), "asteikko-4-10=9".to_owned()),
        ]
    );
    let study_rights: Vec<&str> = got
        .child("studyRights")
        .expect("enrolment is in scope")
        .children_named("studyRight")
        .filter_map(|s| s.attribute("key"))
        .collect();
    assert_eq!(study_rights, vec!["perusopetus-1"]);
    // ... and nothing outside the scope: the special-support decision stayed in Turku.
    let names = element_names(&got);
    assert!(!names.iter().any(|n| n.starts_with("support")), "{names:?}");
    walk::assert_within_scope(
        Format::SiirtoV1,
        &received.body,
        Scope::parse(SCOPE).expect("scope"),
        "the record Espoo received",
    );
    assert_eq!(walk::student_count(Format::SiirtoV1, &received.body), 1);

    // The view: every step with its time and outcome, the hashes, the receipt.
    let steps: Vec<(String, String)> = transfer["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            assert!(s["at"].as_str().is_some_and(|t| t.ends_with('Z')), "{s}");
            (
                s["step"].as_str().unwrap_or("").to_owned(),
                s["outcome"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("accepted", "ok"),
        ("fetch", "ok"),
        ("validate", "ok"),
        ("convert", "ok"),
        ("deliver", "delivered"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    assert_eq!(steps, expected, "{transfer:#}");
    assert_eq!(transfer["content_sha256"], sha256_hex(&received.body));
    assert_eq!(
        transfer["source_sha256"],
        sha256_hex(source_document.as_bytes())
    );
    assert_eq!(transfer["src"], "turku");
    assert_eq!(transfer["dst"], "espoo");
    assert_eq!(transfer["scope"], SCOPE);
    assert!(transfer.get("reason").is_none(), "{transfer:#}");
    let receipt = transfer["receipt"].as_str().expect("a signed receipt");
    let key = siirto_gateway::tools::audit_public_key(&bed.config).expect("audit key");
    let receipt =
        siirto_core::receipt::verify_receipt(receipt, &key).expect("the receipt verifies");
    let claims = receipt.claims();
    assert_eq!(claims.transfer_id, id);
    assert_eq!(claims.subject.as_str(), STUDENT);
    assert_eq!(claims.source.id, "turku");
    assert_eq!(claims.destination.id, "espoo");
    assert_eq!(
        claims.destination.name.as_ref().map(|n| n.fi.as_str()),
        Some("Espoon kaupunki")
    );
    assert_eq!(claims.document_sha256, sha256(&received.body));
    assert_eq!(claims.scope.to_string(), SCOPE);

    // The source and the destination may read the transfer; an unrelated city may not (and is
    // not told that it exists).
    for who in ["turku", "espoo", "registry-operator"] {
        let a = bed
            .client(who)
            .expect("client")
            .get(&format!("/v1/transfers/{id}"), &[])
            .await
            .expect("answer");
        assert_eq!(a.status.as_u16(), 200, "{who}");
        assert_eq!(a.json()["content_sha256"], transfer["content_sha256"]);
    }
    let a = bed
        .client("helsinki")
        .expect("client")
        .get(&format!("/v1/transfers/{id}"), &[])
        .await
        .expect("answer");
    assert_eq!(a.status.as_u16(), 404);
    assert_eq!(a.error_code().as_deref(), Some("not_found"));

    // The audit trail tells the same story, with the delivered document's hash, and the
    // receipt points at the `transfer.delivered` leaf.
    let story = audit_of(&bed, &id).await;
    let story: Vec<(&str, &str)> = story
        .iter()
        .map(|(a, o)| (a.as_str(), o.as_str()))
        .collect();
    assert_eq!(
        story,
        vec![
            ("transfer.accepted", "ok"),
            ("source.fetch", "ok"),
            ("document.validate", "ok"),
            ("document.convert", "ok"),
            ("destination.deliver", "delivered"),
            ("transfer.delivered", "ok"),
        ]
    );
    let entries = audit(&bed).await;
    let delivered = entries
        .iter()
        .find(|e| {
            e.event.action == "transfer.delivered"
                && e.event.transfer_id.as_deref() == Some(id.as_str())
        })
        .expect("transfer.delivered");
    assert_eq!(
        delivered.event.document_sha256,
        Some(sha256(&received.body))
    );
    assert_eq!(claims.audit_leaf_index, delivered.seq);
    // Student ids appear in the audit trail only as keyed pseudonyms.
    for e in &entries {
        let line = siirto_core::audit::entry_json(e).to_string();
        assert!(
            !line.contains(STUDENT),
            "audit entry {} names the student",
            e.seq
        );
    }
    let accepted = entries
        .iter()
        .find(|e| e.event.action == "transfer.accepted")
        .expect("accepted");
    assert!(accepted.event.subject.is_some(), "pseudonym recorded");
    assert_eq!(delivered.event.subject, accepted.event.subject);
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_transfer_is_delivered_once_on_sqlite() {
    a_valid_transfer_is_delivered_once(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_transfer_is_delivered_once_on_postgresql() {
    let Some(db) = postgres().await else {
        return;
    };
    a_valid_transfer_is_delivered_once(Some(db.url.clone())).await;
    drop(db);
}

/// The same transfer submitted by the destination itself (no e-service in between) is accepted:
/// a city may fetch a record for its own school with the student's authorization.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_destination_itself_may_submit() {
    let bed = start().await;
    bed.sources["turku"].insert(STUDENT, school_record(STUDENT, false).into_bytes());
    let answer = submit(
        &bed,
        "espoo",
        &token(&bed, STUDENT, "turku", "espoo", SCOPE),
    )
    .await;
    assert_eq!(answer.status.as_u16(), 202, "{}", answer.json());
    let id = answer.json()["id"].as_str().expect("id").to_owned();
    let transfer: Value = bed
        .wait_for_status("espoo", &id, &["delivered", "failed"], TRANSFER_DEADLINE)
        .await
        .expect("finishes");
    assert_eq!(transfer["status"], "delivered", "{transfer:#}");
    assert_eq!(transfer["submitter"], "espoo");
    assert_eq!(bed.destinations["espoo"].requests().len(), 1);
    bed.stop().await;
}

/// The record is found and bound whichever way the student is identified: by learner number
/// (oppijanumero), or by a henkilötunnus with any century sign — `+` (1800s, which must survive
/// the source URL), the 2023 additions `Y` and `B`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn students_are_bound_by_learner_number_and_every_century_sign() {
    let bed = start().await;
    let learner = "1.2.246.562.24.10000000008";
    let cases = [
        (
            learner,
            school_record(STUDENT, false).replace(
                &format!("<henkilotunnus>{STUDENT}</henkilotunnus>"),
                &format!("<oppijanumero>{learner}</oppijanumero>"),
            ),
        ),
        ("010199+123Y", school_record("010199+123Y", false)),
        ("050505Y4568", school_record("050505Y4568", false)),
        ("311212B7897", school_record("311212B7897", false)),
    ];
    for (subject, record) in cases {
        assert_valid(Format::SiirtoV1, record.as_bytes(), subject);
        bed.sources["turku"].insert(subject, record.into_bytes());
        // The learner number's record is the demo pupil's (born 2008: of age to consent); the
        // pupil born in 2012 consents through a guardian.
        let mut authorization = bed.authorization(subject, "turku", "espoo", SCOPE);
        if subject == learner {
            authorization.birthdate = Some("2008-06-15".into());
        }
        if subject == "311212B7897" {
            authorization.guardian =
                Some(siirto_core::student_id::with_check_character("010180-123"));
        }
        let token = bed.sign(&authorization.claims()).expect("sign");
        let id = submit_accepted(&bed, &token).await;
        let transfer = finished(&bed, &id).await;
        assert_eq!(transfer["status"], "delivered", "{subject}: {transfer:#}");
        let body = bed.destinations["espoo"].stored()[&id].clone();
        assert_eq!(
            walk::stated_identifiers(Format::SiirtoV1, &body),
            vec![subject.to_owned()],
            "{subject}"
        );
    }
    assert_eq!(bed.destinations["espoo"].requests().len(), 4);
    bed.stop().await;
}

//! `GET /v1/students/transfers` end to end: a student sees every transfer about them and no
//! other student's; the categories delivered are what reached the destination; tokens are
//! single-use and of the right kind; reads and refusals are audited under the pseudonym.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use siirto_core::audit::AuditPublicKey;
use siirto_core::student_id::StudentId;
use siirto_devkit::testbed::Testbed;
use siirto_gateway::store::testdb::TestDb;

use crate::support::{OPERATOR, OTHER_STUDENT, STUDENT, audit_entries, deliver, start};

async fn history(bed: &Testbed, caller: &str, token: &str) -> (u16, Value) {
    let a = bed
        .client(caller)
        .unwrap()
        .get(
            "/v1/students/transfers",
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await
        .unwrap();
    (a.status.as_u16(), a.json())
}

fn by_id(list: &Value) -> std::collections::BTreeMap<String, Value> {
    list["transfers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"].as_str().unwrap().to_owned(), t.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_student_sees_every_transfer_about_them_and_nothing_else() {
    for db in TestDb::all().await {
        let bed = start(Some(db.url.clone()), None).await;
        let (full, _) = deliver(&bed, STUDENT, "identity achievements").await;
        // Mobility is authorized, but the record holds no mobility data.
        let (partial, _) = deliver(&bed, STUDENT, "identity mobility").await;
        let (other, _) = deliver(&bed, OTHER_STUDENT, "identity enrolment").await;
        // Helsinki has no record of the student: failed, nothing delivered.
        let token = bed
            .sign(
                &bed.authorization(STUDENT, "helsinki", "espoo", "identity")
                    .claims(),
            )
            .unwrap();
        let failed = bed
            .client("eservice")
            .unwrap()
            .submit(&token)
            .await
            .unwrap();
        let failed = failed.json()["id"].as_str().unwrap().to_owned();
        bed.wait_for_status("eservice", &failed, &["failed"], Duration::from_secs(20))
            .await
            .unwrap();

        let (status, list) =
            history(&bed, "eservice", &bed.transparency_token(STUDENT).unwrap()).await;
        assert_eq!(status, 200, "{list}");
        let mine = by_id(&list);
        assert_eq!(
            mine.keys().cloned().collect::<BTreeSet<_>>(),
            BTreeSet::from([full.clone(), partial.clone(), failed.clone()]),
            "{}: {list}",
            db.backend
        );
        let t = &mine[&full];
        assert_eq!(t["from"], "turku");
        assert_eq!(t["to"], "espoo");
        assert_eq!(t["purpose"], "school-change");
        assert_eq!(t["status"], "delivered");
        assert!(t["when"].as_str().unwrap().ends_with('Z'));
        assert_eq!(
            t["categories_authorized"],
            json!(["identity", "achievements"])
        );
        assert_eq!(
            t["categories_delivered"],
            json!(["identity", "achievements"])
        );
        assert_eq!(
            t["conversion"]["categories"],
            json!(["identity", "achievements"])
        );
        assert!(
            t["conversion"]["counts"]["dropped_by_scope"]
                .as_u64()
                .unwrap()
                > 0,
            "{t}"
        );
        let t = &mine[&partial];
        assert_eq!(t["categories_authorized"], json!(["identity", "mobility"]));
        assert_eq!(t["categories_delivered"], json!(["identity"]), "{t}");
        let t = &mine[&failed];
        assert_eq!(t["status"], "failed");
        assert_eq!(t["reason"], "source_not_found");
        assert_eq!(t["categories_delivered"], json!([]));
        assert!(t.get("receipt").is_none());

        // The receipts in the listing verify with the published audit key.
        let key = bed
            .client("eservice")
            .unwrap()
            .get("/v1/audit/public-key", &[])
            .await
            .unwrap()
            .json();
        let key = AuditPublicKey::from_jwk(&key["jwk"]).unwrap();
        for id in [&full, &partial] {
            let receipt = mine[id]["receipt"].as_str().unwrap();
            let r = siirto_core::receipt::verify_receipt(receipt, &key).unwrap();
            assert_eq!(&r.claims().transfer_id, id);
            assert_eq!(r.claims().subject.as_str(), STUDENT);
        }

        // The other student sees only theirs.
        let (status, list) = history(
            &bed,
            "eservice",
            &bed.transparency_token(OTHER_STUDENT).unwrap(),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            by_id(&list).keys().cloned().collect::<Vec<_>>(),
            vec![other.clone()]
        );

        // A token is good once.
        let once = bed.transparency_token(STUDENT).unwrap();
        assert_eq!(history(&bed, "eservice", &once).await.0, 200);
        let (status, body) = history(&bed, "eservice", &once).await;
        assert_eq!((status, body["error"].as_str()), (409, Some("replay")));

        // An authorization cannot read history, a transparency token cannot move data.
        let authorization = bed
            .sign(
                &bed.authorization(STUDENT, "turku", "espoo", "identity")
                    .claims(),
            )
            .unwrap();
        let (status, body) = history(&bed, "eservice", &authorization).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("wrong_typ")),
            "{body}"
        );
        let before = bed.destinations["espoo"].requests().len();
        let answer = bed
            .client("eservice")
            .unwrap()
            .submit(&bed.transparency_token(STUDENT).unwrap())
            .await
            .unwrap();
        assert_eq!(answer.status.as_u16(), 401, "{}", answer.json());
        assert_eq!(answer.error_code().as_deref(), Some("wrong_typ"));
        // Only e-services read history; the token goes in the Authorization header.
        let (status, body) =
            history(&bed, OPERATOR, &bed.transparency_token(STUDENT).unwrap()).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("forbidden_role"))
        );
        let bare = bed
            .client("eservice")
            .unwrap()
            .get("/v1/students/transfers", &[])
            .await
            .unwrap();
        assert_eq!(bare.status.as_u16(), 401);
        assert_eq!(bare.error_code().as_deref(), Some("missing_token"));
        assert_eq!(
            bed.destinations["espoo"].requests().len(),
            before,
            "nothing moved"
        );

        // Audited under the pseudonym, never the identity code.
        let gw = bed.gateway.clone().unwrap();
        let pseudonym = gw.pseudonyms.pseudonym(&StudentId::parse(STUDENT).unwrap());
        let entries = audit_entries(&bed).await;
        let reads: Vec<_> = entries
            .iter()
            .filter(|e| e.event.action == "student.history_read")
            .collect();
        assert_eq!(reads.len(), 3, "two reads of the student, one of the other");
        assert_eq!(
            reads
                .iter()
                .filter(|e| e.event.subject.as_ref() == Some(&pseudonym))
                .count(),
            2
        );
        let rejected: Vec<&str> = entries
            .iter()
            .filter(|e| e.event.action == "transparency.rejected")
            .map(|e| e.event.outcome.as_str())
            .collect();
        assert_eq!(rejected, vec!["replay", "wrong_typ", "missing_token"]);
        for e in &entries {
            let text = siirto_core::audit::entry_json(e).to_string();
            assert!(
                !text.contains(STUDENT) && !text.contains(OTHER_STUDENT),
                "{text}"
            );
        }
        bed.stop().await;
    }
}

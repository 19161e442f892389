//! While the stored audit log does not verify, the gateway does nothing it could not prove
//! afterwards (issue 15): `/readyz` answers 503 and a submission (or a check) 503 `audit_unavailable`,
//! audited; under `[audit] on_broken = "serve"` it goes on, as the operator chose.

use std::time::Duration;

use siirto_devkit::testbed::{Testbed, TestbedOptions};

use crate::admin::admin_get;
use crate::helpers::{self, STUDENT, start_with, submit, token};

/// A testbed whose first audit entry was altered in the database, once the trail noticed.
async fn tampered(on_broken: &str) -> Testbed {
    let bed = start_with(TestbedOptions {
        env: vec![
            ("SIIRTO__AUDIT__ON_BROKEN".into(), on_broken.into()),
            // A check below is asked without the consent text's hash.
            ("SIIRTO__CONSENT__REQUIRE_TEXT_HASH".into(), "false".into()),
        ],
        ..TestbedOptions::default()
    })
    .await;
    let gw = helpers::gateway(&bed);
    // A first transfer writes entries; once it is delivered nothing else is written, and an
    // entry forged behind the gateway's back (hashes of zeros) follows them.
    bed.sources["turku"].insert(STUDENT, helpers::school_record(STUDENT, false).into_bytes());
    let first = token(&bed, STUDENT, "turku", "espoo", "identity enrolment");
    let id = helpers::submit_accepted(&bed, &first).await;
    let view = helpers::finished(&bed, &id).await;
    assert_eq!(view["status"], "delivered", "{view}");
    let next = gw.store.audit_len().await.expect("store");
    let zeros = "0".repeat(64);
    gw.store
        .execute_raw(&format!(
            "INSERT INTO audit (seq, at, actor, action, outcome, transfer_id, subject, document_sha256, detail, prev_hash, hash) \
             VALUES ({next}, 0, 'forger', 'forged', 'ok', NULL, NULL, NULL, '{{}}', X'{zeros}', X'{zeros}')"
        ))
        .await
        .expect("forge");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while gw.trail.status().broken.is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "trail never noticed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bed
}

fn readyz(bed: &Testbed) -> impl std::future::Future<Output = String> + '_ {
    let addr = bed.config.gateway.admin_listen.to_string();
    async move { admin_get(&addr, "/readyz").await }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_does_not_verify_makes_the_gateway_unready_and_refuse_submissions() {
    let bed = tampered("refuse").await;
    let ready = readyz(&bed).await;
    assert!(ready.starts_with("HTTP/1.0 503"), "{ready}");
    assert!(
        ready.ends_with("the audit log does not verify\n"),
        "{ready}"
    );
    let second = token(&bed, STUDENT, "turku", "espoo", "identity enrolment");
    let answer = submit(&bed, "eservice", &second).await;
    assert_eq!(answer.status.as_u16(), 503, "{}", answer.json());
    assert_eq!(answer.error_code().as_deref(), Some("audit_unavailable"));
    let refused = helpers::audit(&bed)
        .await
        .into_iter()
        .filter(|e| e.event.action == "transfer.refused" && e.event.outcome == "audit_unavailable")
        .count();
    assert_eq!(refused, 1, "the refusal is audited");

    // A check is refused the same way, before anything is fetched.
    let mut claims = bed
        .authorization(STUDENT, "turku", "espoo", "identity")
        .claims();
    let map = claims.as_object_mut().expect("claims");
    for k in ["scope", "consent_sha256", "consent_lang"] {
        map.remove(k);
    }
    map.insert("question".into(), serde_json::json!("active_study_right"));
    let check = bed
        .sign_as(&claims, siirto_core::authz::CHECK_TYP)
        .expect("sign");
    let fetched_before = bed.sources["turku"].requests().len();
    let answer = bed
        .client("eservice")
        .expect("client")
        .post_json("/v1/checks", &serde_json::json!({ "authorization": check }))
        .await
        .expect("answer");
    assert_eq!(answer.status.as_u16(), 503, "{}", answer.json());
    assert_eq!(answer.error_code().as_deref(), Some("audit_unavailable"));
    assert_eq!(
        bed.sources["turku"].requests().len(),
        fetched_before,
        "nothing fetched"
    );
    let refused = helpers::audit(&bed)
        .await
        .into_iter()
        .filter(|e| e.event.action == "check.refused" && e.event.outcome == "audit_unavailable")
        .count();
    assert_eq!(refused, 1, "the check's refusal is audited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_on_broken_serve_the_gateway_goes_on() {
    let bed = tampered("serve").await;
    let ready = readyz(&bed).await;
    assert!(ready.starts_with("HTTP/1.0 200"), "{ready}");
    let second = token(&bed, STUDENT, "turku", "espoo", "identity enrolment");
    let answer = submit(&bed, "eservice", &second).await;
    assert_eq!(answer.status.as_u16(), 202, "{}", answer.json());
}

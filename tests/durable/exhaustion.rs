//! Retries are bounded. Past `delivery.max_attempts` (or once the next attempt would fall past
//! `delivery.max_age`) a transfer fails with `delivery_attempts_exhausted`, and its payload is
//! deleted. Only an operator can retry it (`POST /v1/transfers/{id}/retry`; anyone else gets
//! 403, audited as `transfer.retry_refused`); the retry is audited as `transfer.retried`, starts
//! over from the source, and delivers once the destination is back.

use std::time::Duration;

use siirto_devkit::peers::Behaviour;

use crate::helpers;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_exhausted_then_an_operator_retries() {
    let Some(d) = start(
        Backend::Sqlite,
        &[
            ("SIIRTO__DELIVERY__MAX_ATTEMPTS", "3"),
            ("SIIRTO__DELIVERY__INITIAL_BACKOFF", "1s"),
            ("SIIRTO__DELIVERY__MAX_BACKOFF", "1m"),
        ],
    )
    .await
    else {
        return;
    };
    d.espoo().set_behaviour(Behaviour::Status(503));
    let id = d.submit().await;
    for n in 1..3 {
        let view = d.wait_attempts(&id, n).await;
        d.advance_to(time(&view["next_attempt_at"]));
    }
    let failed = d.wait_status(&id, "failed").await;
    assert_eq!(
        failed["reason"], "delivery_attempts_exhausted",
        "{failed:#}"
    );
    assert_eq!(failed["attempts"], 3, "{failed:#}");
    assert!(failed.get("next_attempt_at").is_none(), "{failed:#}");
    assert!(failed.get("receipt").is_none(), "{failed:#}");
    d.assert_payload_gone(&id).await;
    d.assert_no_payloads().await;
    assert_eq!(d.espoo_answers()[&id], vec![503, 503, 503]);
    assert!(d.espoo().stored().is_empty());
    assert_eq!(
        d.attempts_audited(&id).await,
        [1, 2, 3]
            .map(|n| (n.to_string(), "destination_unavailable".to_owned()))
            .to_vec()
    );
    let audit = d.audit_of(&id).await;
    assert!(
        audit.contains(&(
            "gateway".into(),
            "transfer.failed".into(),
            "delivery_attempts_exhausted".into()
        )),
        "{audit:?}"
    );

    // Nobody but an operator may retry: not the submitter, the source or the destination.
    for who in ["eservice", "turku", "espoo"] {
        let answer = d.act(who, &id, "retry").await;
        assert_eq!(answer.status.as_u16(), 403, "{who}: {}", answer.json());
        assert_eq!(
            answer.error_code().as_deref(),
            Some("forbidden_role"),
            "{who}"
        );
    }
    let audit = d.audit_of(&id).await;
    for who in ["eservice", "turku", "espoo"] {
        assert!(
            audit.contains(&(
                who.into(),
                "transfer.retry_refused".into(),
                "forbidden_role".into()
            )),
            "{who}: {audit:?}"
        );
    }
    assert_eq!(d.view(&id).await["status"], "failed");
    assert_eq!(
        d.espoo().requests().len(),
        3,
        "a refused retry delivers nothing"
    );

    // Espoo is back; the operator retries.
    d.espoo().set_behaviour(Behaviour::Normal);
    let answer = d.act("registry-operator", &id, "retry").await;
    assert_eq!(answer.status.as_u16(), 202, "{}", answer.json());
    assert_eq!(answer.json()["status"], "accepted");
    let delivered = d.wait_status(&id, "delivered").await;
    assert!(delivered["receipt"].is_string(), "{delivered:#}");
    assert!(delivered.get("reason").is_none(), "{delivered:#}");
    // Started over from the source (the payload was gone), delivered under the same key.
    assert_eq!(
        d.bed.sources["turku"].requests(),
        vec![id.clone(), id.clone()]
    );
    assert_eq!(d.espoo_answers()[&id], vec![503, 503, 503, 200]);
    assert_eq!(d.espoo().stored().len(), 1);
    assert!(d.espoo().stored().contains_key(&id));
    let audit = d.audit_of(&id).await;
    assert!(
        audit.contains(&(
            "registry-operator".into(),
            "transfer.retried".into(),
            "ok".into()
        )),
        "{audit:?}"
    );
    let retried = crate::helpers::audit(&d.bed)
        .await
        .into_iter()
        .find(|e| e.event.action == "transfer.retried")
        .expect("transfer.retried");
    assert_eq!(
        retried
            .event
            .detail
            .get("previous_reason")
            .map(String::as_str),
        Some("delivery_attempts_exhausted")
    );
    let retry_step = crate::helpers::step(&delivered, "retry");
    assert_eq!(retry_step["outcome"], "ok");
    // The attempt count started over: one attempt after the retry.
    assert_eq!(delivered["attempts"], 1, "{delivered:#}");

    // A delivered transfer is not retried.
    let again = d.act("registry-operator", &id, "retry").await;
    assert_eq!(again.status.as_u16(), 409, "{}", again.json());
    assert_eq!(again.error_code().as_deref(), Some("not_failed"));
    d.assert_no_payloads().await;
    d.assert_audit_verifies().await;
}

/// With many attempts allowed, `max_age` ends the retries: waits are 10 s (longest-wait jitter
/// at `initial_backoff = max_backoff = 10s`) and `max_age` is 30 s, so the third failure at
/// +20 s would set the next attempt at +30 s, which is too old.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stop_at_max_age() {
    let Some(d) = start(
        Backend::Sqlite,
        &[
            ("SIIRTO__DELIVERY__MAX_ATTEMPTS", "1000"),
            ("SIIRTO__DELIVERY__MAX_AGE", "30s"),
            ("SIIRTO__DELIVERY__INITIAL_BACKOFF", "10s"),
            ("SIIRTO__DELIVERY__MAX_BACKOFF", "10s"),
        ],
    )
    .await
    else {
        return;
    };
    d.espoo().set_behaviour(Behaviour::Status(503));
    let id = d.submit().await;
    let created = time(&d.view(&id).await["created_at"]);
    for n in 1..3 {
        let view = d.wait_attempts(&id, n).await;
        let next = time(&view["next_attempt_at"]);
        assert_eq!(next.since(last_delivery(&view).0), Duration::from_secs(10));
        d.advance_to(next);
    }
    let failed = d.wait_status(&id, "failed").await;
    assert_eq!(
        failed["reason"], "delivery_attempts_exhausted",
        "{failed:#}"
    );
    assert_eq!(failed["attempts"], 3, "{failed:#}");
    let (last, outcome, _) = last_delivery(&failed);
    assert_eq!(outcome, "destination_unavailable");
    assert_eq!(last.since(created), Duration::from_secs(20));
    assert_eq!(d.espoo_answers()[&id], vec![503, 503, 503]);
    d.assert_payload_gone(&id).await;
}

/// Only a failed transfer can be retried: retrying one that was delivered is refused with
/// `not_failed` (409), audited, and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrying_a_delivered_transfer_is_refused() {
    let Some(d) = start(Backend::Sqlite, &[]).await else {
        return;
    };
    let id = d.submit().await;
    d.wait_status(&id, "delivered").await;
    let answer = d.act("registry-operator", &id, "retry").await;
    assert_eq!(answer.status.as_u16(), 409, "{}", answer.json());
    assert_eq!(answer.error_code().as_deref(), Some("not_failed"));
    assert!(
        d.audit_of(&id).await.contains(&(
            "registry-operator".into(),
            "transfer.retry_refused".into(),
            "not_failed".into()
        )),
        "{:?}",
        d.audit_of(&id).await
    );
    assert_eq!(d.view(&id).await["status"], "delivered");
    assert_eq!(d.espoo().requests().len(), 1, "delivered once");
}

/// `POST /v1/transfers/retry` as a non-operator, or with a bad query: refused, audited.
async fn bulk_retry(d: &Durable, participant: &str, query: &str) -> (u16, serde_json::Value) {
    let answer = d
        .bed
        .client(participant)
        .expect("client")
        .send(
            http::Method::POST,
            &format!("/v1/transfers/retry{query}"),
            &[],
            None,
        )
        .await
        .expect("the gateway answers");
    (answer.status.as_u16(), answer.json())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_transfers_are_retried_in_bulk_through_the_api_and_the_cli() {
    let Some(d) = start(
        Backend::Sqlite,
        &[
            ("SIIRTO__DELIVERY__MAX_ATTEMPTS", "1"),
            ("SIIRTO__DELIVERY__PEER_DOWN_AFTER", "1000"),
        ],
    )
    .await
    else {
        return;
    };
    d.espoo().set_behaviour(Behaviour::Status(503));
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = d.submit().await;
        let view = d.wait_status(&id, "failed").await;
        assert_eq!(view["reason"], "delivery_attempts_exhausted", "{view:#}");
        ids.push(id);
        // One failure a second: "oldest first" has an order to follow.
        d.advance(Duration::from_secs(1));
    }

    // Only an operator, and only with a usable query.
    let (status, body) = bulk_retry(&d, "turku", "?reason=delivery_attempts_exhausted").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("forbidden_role"))
    );
    for (query, wrong) in [
        ("", "reason is required"),
        ("?reason=nope", "reason: `nope`"),
        (
            "?reason=delivery_attempts_exhausted&dst=nobody",
            "dst: `nobody`",
        ),
        ("?reason=delivery_attempts_exhausted&limit=0", "limit: `0`"),
        (
            "?reason=delivery_attempts_exhausted&colour=red",
            "unknown parameter `colour`",
        ),
        (
            "?reason=delivery_attempts_exhausted&reason=source_unavailable",
            "reason is given twice",
        ),
    ] {
        let (status, body) = bulk_retry(&d, "registry-operator", query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"], "invalid_query", "{query}: {body}");
        assert!(
            body["message"].as_str().unwrap_or("").contains(wrong),
            "{query}: {body}"
        );
    }
    let refusals = helpers::audit(&d.bed)
        .await
        .into_iter()
        .filter(|e| e.event.action == "transfer.retry_refused")
        .count();
    assert_eq!(refusals, 7, "every refused bulk retry is audited");
    let (status, body) = bulk_retry(
        &d,
        "registry-operator",
        "?reason=destination_rejected&dst=espoo",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["retried"],
        serde_json::json!([]),
        "nothing failed that way"
    );

    // Two of three through the API: the oldest failures first.
    d.espoo().set_behaviour(Behaviour::Normal);
    let (status, body) = bulk_retry(
        &d,
        "registry-operator",
        "?reason=delivery_attempts_exhausted&dst=espoo&limit=2",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["retried"], serde_json::json!(ids[..2]), "{body}");
    assert_eq!(body["more"], true, "{body}");
    for id in &ids[..2] {
        d.wait_status(id, "delivered").await;
    }
    assert_eq!(d.view(&ids[2]).await["status"], "failed");

    // The third from the command line, on the same database.
    let out = std::process::Command::new(helpers::siirto_binary())
        .args(["transfers", "retry", "--config"])
        .arg(d.bed.config_path())
        .args(["--reason", "delivery_attempts_exhausted", "--dst", "espoo"])
        .output()
        .expect("siirto runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("retried {}\n", ids[2])),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 transfer(s) retried, 0 skipped\n"),
        "{stdout}"
    );
    // The command line retries at the real time, the gateway runs on its manual clock: move
    // the gateway's clock past the real time of the retry.
    d.advance_to(
        siirto_core::clock::Clock::now(&siirto_core::clock::SystemClock)
            .saturating_add(Duration::from_secs(1)),
    );
    d.wait_status(&ids[2], "delivered").await;

    for (n, id) in ids.iter().enumerate() {
        let retried: Vec<_> = helpers::audit(&d.bed)
            .await
            .into_iter()
            .filter(|e| {
                e.event.transfer_id.as_deref() == Some(id.as_str())
                    && e.event.action == "transfer.retried"
            })
            .collect();
        assert_eq!(retried.len(), 1, "{id}");
        let (actor, via) = if n < 2 {
            ("registry-operator", "bulk")
        } else {
            ("cli", "cli")
        };
        assert_eq!(retried[0].event.actor, actor);
        assert_eq!(
            retried[0].event.detail.get("via").map(String::as_str),
            Some(via)
        );
        assert_eq!(
            retried[0]
                .event
                .detail
                .get("previous_reason")
                .map(String::as_str),
            Some("delivery_attempts_exhausted")
        );
    }
    assert_eq!(d.espoo().stored().len(), 3);
    d.assert_audit_verifies().await;
}

//! Exactly once at the destination when an acknowledgement is lost. Espoo stores the record and
//! then either answers 503 (`Behaviour::StoreThenStatus`) or answers only after the gateway's
//! request timeout (`Behaviour::StoreThenDelay`, so the gateway gives up and drops the
//! connection). The gateway retries with the same `Idempotency-Key`, Espoo answers 409, the
//! transfer is `delivered` once, and Espoo holds exactly one copy: the bytes the receipt and
//! `content_sha256` describe.

use std::time::Duration;

use siirto_core::vault::sha256_hex;
use siirto_devkit::peers::Behaviour;

use crate::support::*;

async fn acknowledgement_lost(d: &Durable, lost: Behaviour, first_outcome: &str) {
    d.espoo().set_behaviour(lost);
    let id = d.submit().await;
    let waiting = d.wait_attempts(&id, 1).await;
    let (_, outcome, _) = last_delivery(&waiting);
    assert_eq!(outcome, first_outcome, "{waiting:#}");
    assert!(
        d.espoo().stored().contains_key(&id),
        "Espoo stored the record although the gateway did not hear so"
    );
    d.advance_to(time(&waiting["next_attempt_at"]));
    let view = d.wait_status(&id, "delivered").await;
    assert_eq!(view["attempts"], 2, "{view:#}");

    // Two requests, one key, the same bytes; the second was answered "already have it".
    let requests: Vec<_> = d
        .espoo()
        .requests()
        .into_iter()
        .filter(|r| r.idempotency_key == id)
        .collect();
    assert_eq!(requests.len(), 2, "{:?}", d.espoo_answers());
    assert_eq!(requests[1].status, 409);
    assert_eq!(
        requests[0].body, requests[1].body,
        "the retry sends the same record"
    );
    let stored = d.espoo().stored();
    assert_eq!(stored.len(), 1, "exactly one copy");
    assert_eq!(view["content_sha256"], sha256_hex(&stored[&id]), "{view:#}");
    assert!(view["receipt"].is_string(), "{view:#}");
    assert_eq!(
        d.attempts_audited(&id).await,
        vec![
            ("1".to_owned(), first_outcome.to_owned()),
            ("2".to_owned(), "already_delivered".to_owned()),
        ]
    );
    let delivered = d
        .audit_of(&id)
        .await
        .into_iter()
        .filter(|(_, action, _)| action == "transfer.delivered")
        .count();
    assert_eq!(delivered, 1);
    d.assert_no_payloads().await;
    d.assert_audit_verifies().await;
}

async fn acknowledgement_lost_as_503(backend: Backend) {
    let Some(d) = start(backend, &[]).await else {
        return;
    };
    acknowledgement_lost(
        &d,
        Behaviour::StoreThenStatus(503),
        "destination_unavailable",
    )
    .await;
    assert_eq!(d.espoo().requests()[0].status, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgement_lost_as_503_sqlite() {
    acknowledgement_lost_as_503(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgement_lost_as_503_postgres() {
    acknowledgement_lost_as_503(Backend::Postgres).await;
}

/// The answer comes after the gateway's request timeout (2 s here): the gateway records a
/// `timeout` and drops the connection; Espoo had stored the record at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgement_lost_in_a_timeout_sqlite() {
    let Some(d) = start(
        Backend::Sqlite,
        &[("SIIRTO__DELIVERY__REQUEST_TIMEOUT", "2s")],
    )
    .await
    else {
        return;
    };
    acknowledgement_lost(
        &d,
        Behaviour::StoreThenDelay(Duration::from_secs(60)),
        "timeout",
    )
    .await;
}

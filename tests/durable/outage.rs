//! Outages of the destination, then recovery. Espoo's endpoint either answers every request with
//! 503, or stops listening altogether: its listener is closed and the port kept by a bound
//! socket that does not listen, so connections are refused (`connect_failed`) until a new
//! listener is opened on the same port (`Destination::stop_listening` / `listen_again`).
//!
//! The manual clock moves to each transfer's `next_attempt_at` in turn; with the longest-wait
//! randomness the waits are exactly the full-jitter ceilings, `initial_backoff · 2^(n-1)` capped
//! at `max_backoff`. After recovery every transfer is delivered once, each attempt (number and
//! outcome) is an audit entry, no retry came before its time, and no payload remains.

use std::collections::HashMap;
use std::time::Duration;

use siirto_core::clock::Timestamp;
use siirto_devkit::peers::Behaviour;

use crate::support::*;

const MAX_ATTEMPTS: u64 = 8;

/// These tests pin one transfer's own retry schedule: the destination is never marked down
/// (`peer_down_after` out of reach). Marking down and probing are `peer_down`'s.
fn env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("SIIRTO__DELIVERY__PEER_DOWN_AFTER", "1000"),
        ("SIIRTO__DELIVERY__MAX_ATTEMPTS", "8"),
        ("SIIRTO__DELIVERY__INITIAL_BACKOFF", "1s"),
        ("SIIRTO__DELIVERY__MAX_BACKOFF", "4s"),
    ]
}

/// The wait after failed attempt `n`: 1 s, 2 s, 4 s, then capped at 4 s.
fn backoff(n: u32) -> Duration {
    Duration::from_secs(1u64 << (n - 1).min(2))
}

/// Lets `failures` delivery attempts of every transfer fail with `outcome`, moving the clock to
/// each next attempt, and checks the schedule. Returns, per transfer, the time each retry was
/// due. The caller ends the outage and moves the clock to the last due time.
async fn ride_out(
    d: &Durable,
    ids: &[String],
    failures: u32,
    outcome: &str,
) -> HashMap<String, Vec<Timestamp>> {
    let mut due: HashMap<String, Vec<Timestamp>> = HashMap::new();
    for n in 1..=failures {
        let mut latest = Timestamp::from_millis(0);
        for id in ids {
            let view = d.wait_attempts(id, u64::from(n)).await;
            let (at, got, detail) = last_delivery(&view);
            assert_eq!(got, outcome, "attempt {n} of {id}: {view:#}");
            assert_eq!(detail, format!("attempt {n}"), "{view:#}");
            let next = time(&view["next_attempt_at"]);
            assert_eq!(
                next.since(at),
                backoff(n),
                "the wait after attempt {n} is the backoff ceiling: {view:#}"
            );
            latest = latest.max(next);
            due.entry(id.clone()).or_default().push(next);
        }
        if n < failures {
            d.advance_to(latest);
        }
    }
    due
}

/// After recovery: delivered, attempts numbered 1..=n in the audit with the outage's outcome
/// and then `delivered`, none before its due time, one stored copy per transfer.
async fn assert_recovered(
    d: &Durable,
    ids: &[String],
    due: &HashMap<String, Vec<Timestamp>>,
    failures: u32,
    outcome: &str,
) {
    let last_due = due.values().flatten().max().copied().expect("due times");
    d.advance_to(last_due);
    for id in ids {
        let view = d.wait_status(id, "delivered").await;
        assert_eq!(view["attempts"], u64::from(failures) + 1, "{view:#}");
        assert!(u64::from(failures) < MAX_ATTEMPTS);
        assert!(view["receipt"].is_string(), "{view:#}");
        let audited = d.delivery_audit(id).await;
        let attempts: Vec<(String, String)> = d.attempts_audited(id).await;
        let mut expected: Vec<(String, String)> = (1..=failures)
            .map(|n| (n.to_string(), outcome.to_owned()))
            .collect();
        expected.push(((failures + 1).to_string(), "delivered".to_owned()));
        assert_eq!(attempts, expected, "attempts of {id} in the audit");
        // Attempt n+1 was made no earlier than the time attempt n set for it.
        for (n, due_at) in due[id].iter().enumerate() {
            let made = time(&audited[n + 1]["at"]);
            assert!(made >= *due_at, "attempt {} of {id} came early", n + 2);
        }
        let actions: Vec<(String, String)> = d
            .audit_of(id)
            .await
            .into_iter()
            .map(|(_, action, outcome)| (action, outcome))
            .filter(|(a, _)| a.starts_with("transfer."))
            .collect();
        assert_eq!(
            actions,
            vec![
                ("transfer.accepted".to_owned(), "ok".to_owned()),
                ("transfer.delivered".to_owned(), "ok".to_owned()),
            ]
        );
        d.assert_payload_gone(id).await;
    }
    let stored = d.espoo().stored();
    let mut keys: Vec<&String> = stored.keys().collect();
    keys.sort();
    let mut want: Vec<&String> = ids.iter().collect();
    want.sort();
    assert_eq!(keys, want, "one stored copy per transfer, nothing else");
    d.assert_no_payloads().await;
    d.assert_audit_verifies().await;
}

async fn destination_answers_503_then_recovers(backend: Backend) {
    let Some(d) = start(backend, &env()).await else {
        return;
    };
    d.espoo().set_behaviour(Behaviour::Status(503));
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(d.submit().await);
    }
    let failures = 4;
    let due = ride_out(&d, &ids, failures, "destination_unavailable").await;
    d.espoo().set_behaviour(Behaviour::Normal);
    assert_recovered(&d, &ids, &due, failures, "destination_unavailable").await;
    // Every attempt reached Espoo: four 503s, then the one that stored it.
    let answers = d.espoo_answers();
    for id in &ids {
        assert_eq!(answers[id], vec![503, 503, 503, 503, 200], "{id}");
    }
    assert_eq!(answers.len(), ids.len());
}

async fn destination_refuses_connections_then_recovers(backend: Backend) {
    let Some(d) = start(backend, &env()).await else {
        return;
    };
    d.espoo().stop_listening().await.expect("stop listening");
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(d.submit().await);
    }
    let failures = 3;
    let due = ride_out(&d, &ids, failures, "connect_failed").await;
    assert!(
        d.espoo().requests().is_empty(),
        "nothing reached Espoo while it refused connections"
    );
    d.espoo().listen_again().await.expect("listen again");
    assert_recovered(&d, &ids, &due, failures, "connect_failed").await;
    let answers = d.espoo_answers();
    for id in &ids {
        assert_eq!(answers[id], vec![200], "{id}");
    }
    assert_eq!(answers.len(), ids.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_answers_503_then_recovers_sqlite() {
    destination_answers_503_then_recovers(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_answers_503_then_recovers_postgres() {
    destination_answers_503_then_recovers(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_refuses_connections_then_recovers_sqlite() {
    destination_refuses_connections_then_recovers(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_refuses_connections_then_recovers_postgres() {
    destination_refuses_connections_then_recovers(Backend::Postgres).await;
}

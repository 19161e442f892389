//! Long outages (issue 21): a destination that is down is marked down after
//! `delivery.peer_down_after` transient failures in a row; its transfers then wait in the store
//! (none of them calls it) while one probe at a time, `initial_backoff` doubling to
//! `max_backoff` (less at most half, for jitter), looks for it. The first answer brings it back
//! and its backlog drains. Transient failures are retried until `max_age`, which ends a
//! transfer that waited too long, audited.
//!
//! The clock tests move the gateway's manual clock from one probe time to the next (read from
//! the store's peer health), over three simulated days. The flapping test runs on real time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use siirto_core::clock::{Clock, SystemRandom, Timestamp};
use siirto_core::student_id::synthetic_henkilotunnus;
use siirto_devkit::peers::Behaviour;
use siirto_devkit::testbed::Instance;
use siirto_devkit::testbed::TestbedOptions;
use siirto_gateway::state::Gateway;
use siirto_gateway::store::PeerRow;

use crate::helpers;
use crate::support::*;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Espoo's stored health (`None`: no row, up).
async fn espoo_health(gw: &Gateway) -> Option<PeerRow> {
    gw.store
        .peers()
        .await
        .expect("store")
        .into_iter()
        .find(|p| p.participant == "espoo")
}

/// Polls `check` until it gives a value, failing after the usual deadline with `what`.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + helpers::TRANSFER_DEADLINE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Submits a transfer for a student of its own (the record is put at Turku first).
async fn submit_for(d: &Durable, n: u32) -> String {
    let student = synthetic_henkilotunnus(n);
    d.bed.sources["turku"].insert(
        &student,
        helpers::school_record(&student, false).into_bytes(),
    );
    let token = helpers::token(&d.bed, &student, "turku", "espoo", SCOPE);
    helpers::submit_accepted(&d.bed, &token).await
}

/// Drives the first transfer's attempts (moving the clock to each retry) until Espoo is marked
/// down; returns the attempts it took.
async fn until_down(d: &Durable, id: &str) -> u64 {
    for n in 1.. {
        let view = d.wait_attempts(id, n).await;
        if espoo_health(d.gateway())
            .await
            .is_some_and(|row| row.health.is_down())
        {
            return n;
        }
        d.advance_to(time(&view["next_attempt_at"]));
    }
    unreachable!("the loop returns")
}

/// Moves the clock to Espoo's next probe and waits until the probe's outcome is stored (the
/// next probe time moved on, or Espoo is up). Returns the probe's time and the health after it.
async fn probe_once(d: &Durable) -> (Timestamp, Option<PeerRow>) {
    let gw = d.gateway();
    let before = espoo_health(gw).await.expect("espoo has a health row");
    let at = before
        .health
        .next_probe_at
        .expect("a probe time while down");
    d.advance_to(at);
    let after = eventually("the probe's outcome stored", || {
        let gw = gw.clone();
        async move {
            let now = espoo_health(&gw).await;
            match &now {
                Some(row) if row.health.next_probe_at == Some(at) => {
                    // Not yet: wake the workers again (a claim may have run just before the move).
                    gw.wake.notify_one();
                    None
                }
                _ => Some(now),
            }
        }
    })
    .await;
    (at, after)
}

async fn three_days_down_then_everything_delivered_once(backend: Backend) {
    let env = [
        ("SIIRTO__DELIVERY__MAX_AGE", "7d"),
        ("SIIRTO__DELIVERY__INITIAL_BACKOFF", "1s"),
        ("SIIRTO__DELIVERY__MAX_BACKOFF", "1h"),
        ("SIIRTO__DELIVERY__PEER_DOWN_AFTER", "3"),
    ];
    let Some(d) = start(backend, &env).await else {
        return;
    };
    d.espoo().set_behaviour(Behaviour::Status(503));
    let first = d.submit().await;
    let attempts = until_down(&d, &first).await;
    assert_eq!(
        attempts, 3,
        "down after peer_down_after = 3 failures in a row"
    );
    let down = espoo_health(d.gateway()).await.expect("row");
    let went_down = down.health.down_since.expect("down");

    // Nineteen more, while Espoo is down: each is fetched and converted, then waits; none calls.
    let mut ids = vec![first.clone()];
    for n in 0..19 {
        ids.push(submit_for(&d, n).await);
    }
    for id in &ids[1..] {
        let view = d.wait_status(id, "delivering").await;
        assert_eq!(view["attempts"], 0, "{view:#}");
    }
    assert_eq!(
        d.espoo().requests().len(),
        3,
        "no call from the waiting transfers"
    );
    let (_, metrics) = d.admin_get("/metrics").await;
    for line in [
        "siirto_peer_up{participant=\"espoo\"} 0",
        "siirto_peer_backlog{participant=\"espoo\"} 20",
        "siirto_peer_up{participant=\"turku\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }

    // The operator page lists Espoo as down, since when, and what waits for it.
    let page = d
        .bed
        .client("registry-operator")
        .expect("client")
        .get("/operator", &[("accept-language", "en")])
        .await
        .expect("the gateway answers");
    let html = String::from_utf8_lossy(&page.body).into_owned();
    // Times in Helsinki, the UTC value as the title.
    let row = format!(
        "<tr class=\"bad\"><td>espoo</td><td><time datetime=\"{utc}\" title=\"{utc}\">{}</time></td><td>20</td>",
        went_down.helsinki(),
        utc = went_down.rfc3339()
    );
    assert!(html.contains(&row), "{row} in:\n{html}");

    // Three simulated days of probes, each at the time the store set for it.
    let mut probes: Vec<Timestamp> = Vec::new();
    while d.clock.now().since(went_down) < 3 * DAY {
        let (at, after) = probe_once(&d).await;
        let after = after.expect("still down");
        assert!(after.health.is_down(), "Espoo answers 503: still down");
        probes.push(at);
        assert_eq!(
            d.espoo().requests().len(),
            3 + probes.len(),
            "one request per probe time, however many transfers wait"
        );
    }
    // The waits between probes: half the doubling ceiling (the longest-wait randomness makes
    // the jitter take its full half), from 1 s up to the 1 h cap.
    let mut waits = vec![probes[0].since(went_down)];
    waits.extend(probes.windows(2).map(|w| w[1].since(w[0])));
    for (k, wait) in waits.iter().enumerate() {
        let ceiling = Duration::from_secs(1u64 << k.min(20)).min(Duration::from_secs(3600));
        assert!(
            *wait >= ceiling / 2 && *wait <= ceiling,
            "wait {k}: {wait:?} (ceiling {ceiling:?})"
        );
    }
    let per_interval = 3 * DAY.as_secs() / 1800;
    assert!(
        probes.len() as u64 <= per_interval + 13,
        "{} probes in three days: at most one per half hour after the ramp",
        probes.len()
    );

    // Espoo comes back: the next probe finds it, and the backlog drains.
    d.espoo().set_behaviour(Behaviour::Normal);
    let (_, after) = probe_once(&d).await;
    assert!(
        after.is_none_or(|r| !r.health.is_down()),
        "Espoo is up after a successful probe"
    );
    for id in &ids {
        d.wait_status(id, "delivered").await;
    }
    let answers = d.espoo_answers();
    assert_eq!(answers.len(), ids.len(), "every transfer reached Espoo");
    for id in &ids {
        let stored: Vec<&u16> = answers[id].iter().filter(|s| **s == 200).collect();
        assert_eq!(stored.len(), 1, "{id} stored once: {:?}", answers[id]);
        assert!(
            answers[id].iter().all(|s| *s == 200 || *s == 503),
            "{id}: {:?}",
            answers[id]
        );
    }
    let failed_calls: usize = answers.values().flatten().filter(|s| **s == 503).count();
    assert_eq!(failed_calls, 3 + probes.len());
    assert_eq!(d.espoo().stored().len(), ids.len());
    let (_, metrics) = d.admin_get("/metrics").await;
    for line in [
        "siirto_peer_up{participant=\"espoo\"} 1",
        "siirto_peer_backlog{participant=\"espoo\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
    d.assert_no_payloads().await;
    d.assert_audit_verifies().await;
    println!(
        "peer_down on {backend:?}: {} transfers, {} probes in 3 simulated days, {} calls to Espoo in all",
        ids.len(),
        probes.len(),
        d.espoo().requests().len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_down_for_three_days_is_probed_once_per_interval_then_gets_everything_once_sqlite()
 {
    three_days_down_then_everything_delivered_once(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_down_for_three_days_is_probed_once_per_interval_then_gets_everything_once_postgres()
 {
    three_days_down_then_everything_delivered_once(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_ends_a_transfer_that_waited_for_a_destination_that_stayed_down() {
    let env = [
        ("SIIRTO__DELIVERY__MAX_AGE", "30m"),
        ("SIIRTO__DELIVERY__INITIAL_BACKOFF", "1h"),
        ("SIIRTO__DELIVERY__MAX_BACKOFF", "1h"),
        ("SIIRTO__DELIVERY__PEER_DOWN_AFTER", "1"),
    ];
    let Some(d) = start(Backend::Sqlite, &env).await else {
        return;
    };
    d.espoo().set_behaviour(Behaviour::Status(503));
    // The first attempt fails; the next one would come after max_age: it fails at once.
    let first = d.submit().await;
    let view = d.wait_status(&first, "failed").await;
    assert_eq!(view["reason"], "delivery_attempts_exhausted", "{view:#}");
    assert_eq!(view["attempts"], 1, "{view:#}");
    assert!(
        espoo_health(d.gateway())
            .await
            .is_some_and(|r| r.health.is_down())
    );
    // The second never calls Espoo (it is down); it waits, and max_age ends it.
    let second = submit_for(&d, 7).await;
    let parked = d.wait_status(&second, "delivering").await;
    let created = time(&parked["created_at"]);
    d.advance_to(created.saturating_add(Duration::from_secs(1800)));
    let view = d.wait_status(&second, "failed").await;
    assert_eq!(view["reason"], "delivery_attempts_exhausted", "{view:#}");
    assert_eq!(view["attempts"], 0, "{view:#}");
    let (_, outcome, detail) = last_delivery(&view);
    assert_eq!(outcome, "max_age_exceeded", "{view:#}");
    assert!(detail.contains("delivery.max_age (30m)"), "{detail}");
    assert_eq!(
        d.espoo().requests().len(),
        1,
        "only the first transfer called Espoo"
    );
    let audit = d.audit_of(&second).await;
    assert_eq!(
        audit
            .last()
            .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str())),
        Some(("gateway", "transfer.failed", "delivery_attempts_exhausted")),
        "{audit:?}"
    );
    let failed = helpers::audit(&d.bed)
        .await
        .into_iter()
        .find(|e| {
            e.event.transfer_id.as_deref() == Some(second.as_str())
                && e.event.action == "transfer.failed"
        })
        .expect("transfer.failed entry");
    assert_eq!(
        failed.event.detail.get("max_age").map(String::as_str),
        Some("30m")
    );
    d.assert_payload_gone(&second).await;
    d.assert_audit_verifies().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_postgresql_never_probe_a_down_destination_at_once() {
    let env = [
        ("SIIRTO__DELIVERY__INITIAL_BACKOFF", "1s"),
        ("SIIRTO__DELIVERY__MAX_BACKOFF", "1m"),
        ("SIIRTO__DELIVERY__PEER_DOWN_AFTER", "1"),
        ("SIIRTO__DELIVERY__WORKERS", "4"),
    ];
    let Some(d) = start(Backend::Postgres, &env).await else {
        return;
    };
    // A second instance on the same database and the same clock.
    let b = Gateway::open(
        d.bed.config.clone(),
        d.clock.clone(),
        Arc::new(LongestWait(SystemRandom::new())),
        siirto_devkit::testbed::build_info(),
    )
    .await
    .expect("second instance");
    let instance_b = Instance::start(b.clone()).await.expect("listeners");

    d.espoo().set_behaviour(Behaviour::Status(503));
    let first = d.submit().await;
    d.wait_attempts(&first, 1).await;
    let mut ids = vec![first];
    for n in 0..9 {
        ids.push(submit_for(&d, n).await);
    }
    for id in &ids[1..] {
        d.wait_status(id, "delivering").await;
    }
    let before = d.espoo().requests().len();
    let rounds = 20;
    for round in 1..=rounds {
        // Both instances look at once.
        b.wake.notify_one();
        let (_, after) = probe_once(&d).await;
        assert!(after.is_some_and(|r| r.health.is_down()));
        assert_eq!(
            d.espoo().requests().len(),
            before + round,
            "round {round}: one probe between both instances"
        );
    }
    d.espoo().set_behaviour(Behaviour::Normal);
    b.wake.notify_one();
    probe_once(&d).await;
    for id in &ids {
        d.wait_status(id, "delivered").await;
    }
    let stored: HashMap<String, Vec<u8>> = d.espoo().stored();
    assert_eq!(stored.len(), ids.len());
    instance_b.stop().await.expect("instance b ran");
}

/// Real time: 503 for 2 s, then every connection reset for 1.5 s, then every request hanging past
/// the gateway's request timeout for 2 s, then recovery. Thirty transfers, submitted before and
/// during the trouble, are all delivered, each stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_destination_gets_every_transfer_once() {
    let bed = helpers::start_with(TestbedOptions {
        env: [
            ("SIIRTO__DELIVERY__INITIAL_BACKOFF", "100ms"),
            ("SIIRTO__DELIVERY__MAX_BACKOFF", "500ms"),
            ("SIIRTO__DELIVERY__PEER_DOWN_AFTER", "3"),
            ("SIIRTO__DELIVERY__REQUEST_TIMEOUT", "400ms"),
            ("SIIRTO__DELIVERY__CONNECT_TIMEOUT", "400ms"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect(),
        ..TestbedOptions::default()
    })
    .await;
    let espoo = bed.destinations["espoo"].clone();
    let submit = |n: u32| {
        let student = synthetic_henkilotunnus(1000 + n);
        bed.sources["turku"].insert(
            &student,
            helpers::school_record(&student, false).into_bytes(),
        );
        helpers::token(
            &bed,
            &student,
            "turku",
            "espoo",
            "identity enrolment achievements",
        )
    };
    let mut ids = Vec::new();
    espoo.set_behaviour(Behaviour::Status(503));
    for n in 0..10 {
        ids.push(helpers::submit_accepted(&bed, &submit(n)).await);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    espoo.reset_connections().await.expect("reset mode");
    espoo.set_behaviour(Behaviour::Normal);
    for n in 10..20 {
        ids.push(helpers::submit_accepted(&bed, &submit(n)).await);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(espoo.resets() > 0, "the gateway called during the resets");
    espoo.set_behaviour(Behaviour::Delay(Duration::from_secs(3)));
    espoo.listen_again().await.expect("listen again");
    for n in 20..30 {
        ids.push(helpers::submit_accepted(&bed, &submit(n)).await);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    espoo.set_behaviour(Behaviour::Normal);
    for id in &ids {
        let view = helpers::finished(&bed, id).await;
        assert_eq!(view["status"], "delivered", "{view:#}");
    }
    let stored = espoo.stored();
    assert_eq!(stored.len(), ids.len(), "one stored copy per transfer");
    let mut by_key: HashMap<String, Vec<u16>> = HashMap::new();
    for r in espoo.requests() {
        by_key.entry(r.idempotency_key).or_default().push(r.status);
    }
    for id in &ids {
        let answers = by_key.get(id).cloned().unwrap_or_default();
        assert_eq!(
            answers.iter().filter(|s| **s == 200).count(),
            1,
            "{id}: stored by exactly one answer: {answers:?}"
        );
    }
    let gw = helpers::gateway(&bed);
    let health = espoo_health(gw).await;
    assert!(
        health.is_none_or(|r| !r.health.is_down()),
        "Espoo is up at the end"
    );
    println!(
        "flapping: {} transfers, {} requests reached Espoo, {} connections reset",
        ids.len(),
        espoo.requests().len(),
        espoo.resets()
    );
}

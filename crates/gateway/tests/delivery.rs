//! The delivery worker against a real store, real source and destination TLS servers and a
//! [`ManualClock`]: leases expire when the test moves the clock, never by waiting.
//!
//! Moved from the unit tests of `src/delivery.rs`: they start peers with siirto-devkit's
//! testbed, and the dev kit depends on this crate, so they run as an integration test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use siirto_core::clock::{Clock, ManualClock, SystemClock, SystemRandom, hex};
use siirto_core::student_id::StudentId;
use siirto_core::transfer::{self, Status};
use siirto_devkit::peers::Behaviour;
use siirto_devkit::testbed::{Testbed, TestbedOptions};
use siirto_gateway::delivery::Worker;
use siirto_gateway::state::Gateway;
use siirto_gateway::store::NewTransfer;
use siirto_gateway::store::testdb::TestDb;

const STUDENT: &str = "131052-308T";

struct Setup {
    bed: Testbed,
    gw: Arc<Gateway>,
    clock: Arc<ManualClock>,
    _db: TestDb,
}

async fn setups() -> Vec<Setup> {
    setups_with(&[]).await
}

/// A testbed (peers only) and a gateway that is not running, on every test database, with
/// `SIIRTO__...` overrides.
async fn setups_with(env: &[(&str, &str)]) -> Vec<Setup> {
    let mut out = Vec::new();
    for db in TestDb::all().await {
        let clock = Arc::new(ManualClock::new(SystemClock.now()));
        let bed = Testbed::start(TestbedOptions {
            database_url: Some(db.url.clone()),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            in_process_gateway: false,
            clock: clock.clone(),
            ..TestbedOptions::default()
        })
        .await
        .unwrap();
        bed.sources["turku"].insert(
            STUDENT,
            siirto_devkit::demo::school_record(STUDENT, false).into_bytes(),
        );
        let gw = Gateway::open(
            bed.config.clone(),
            clock.clone(),
            Arc::new(SystemRandom::new()),
            siirto_devkit::testbed::build_info(),
        )
        .await
        .unwrap();
        out.push(Setup {
            bed,
            gw,
            clock,
            _db: db,
        });
    }
    out
}

/// Stores an accepted transfer Turku → Espoo, as `POST /v1/transfers` does.
async fn accepted(gw: &Gateway, id: &str) {
    let subject = StudentId::parse(STUDENT).unwrap();
    let sealed = gw.vault.seal(
        &format!("subject:{id}"),
        STUDENT.as_bytes(),
        gw.random.as_ref(),
    );
    let now = gw.now();
    let t = NewTransfer {
        id: id.into(),
        submitter: "eservice".into(),
        issuer: "https://issuer.test".into(),
        jti: format!("jti-{id}"),
        src: "turku".into(),
        dst: "espoo".into(),
        purpose: "school-change".into(),
        scope: "identity enrolment achievements".into(),
        subject_pseudonym: gw.pseudonyms.pseudonym(&subject).as_str().to_owned(),
        subject_sealed: sealed.bytes,
        basis: siirto_core::consent::Basis::Consent,
        guardian_pseudonym: None,
        consent: None,
        consented_at: now,
        created_at: now,
        replay_until: now.saturating_add(Duration::from_secs(900)),
    };
    assert_eq!(
        gw.store.insert_transfer(t, vec![]).await.unwrap(),
        siirto_gateway::store::Inserted::Accepted
    );
}

/// `(action, outcome, attempt)` of the transfer's audit entries.
async fn audited(gw: &Gateway, id: &str) -> Vec<(String, String, String)> {
    gw.store
        .audit_range(0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event.transfer_id.as_deref() == Some(id))
        .map(|e| {
            (
                e.event.action,
                e.event.outcome,
                e.event.detail.get("attempt").cloned().unwrap_or_default(),
            )
        })
        .collect()
}

fn entry(action: &str, outcome: &str, attempt: &str) -> (String, String, String) {
    (action.into(), outcome.into(), attempt.into())
}

/// Moves the clock past every lease and due time set so far.
fn expire_leases(s: &Setup) {
    s.clock
        .advance(s.gw.config.delivery.lease + Duration::from_secs(1));
}

/// Workers that died holding a lease — once while fetching, once while delivering — are
/// each an `interrupted` attempt in the audit and on the timeline, numbered and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_of_a_stopped_worker_are_audited_as_interrupted() {
    for s in setups().await {
        let b = s.gw.store.backend_name();
        let worker = Worker::new(s.gw.clone());
        accepted(&s.gw, "t1").await;
        // A worker claims the transfer and is never heard of again. While its lease lasts
        // nobody else takes the transfer.
        let now = s.gw.now();
        let lease_until = now.saturating_add(s.gw.config.delivery.lease);
        let dead = s.gw.store.claim("dead/1", now, lease_until, 10).await;
        assert_eq!(dead.unwrap().len(), 1, "{b}");
        assert_eq!(worker.step().await.unwrap(), 0, "{b}");
        expire_leases(&s);
        // The destination is down: the fetch lands, the first delivery attempt fails.
        s.bed.destinations["espoo"].set_behaviour(Behaviour::Status(503));
        assert_eq!(worker.step().await.unwrap(), 1, "{b}");
        worker.drain().await;
        let row = s.gw.store.transfer("t1").await.unwrap().unwrap();
        assert_eq!(row.status, Status::Delivering, "{b}");
        assert_eq!((row.attempts, row.interrupted), (1, 0), "{b}");
        // The next delivery attempt's worker dies too.
        expire_leases(&s);
        claimed_by_a_dead_worker(&s, "dead/2").await;
        s.bed.destinations["espoo"].set_behaviour(Behaviour::Normal);
        assert_eq!(worker.step().await.unwrap(), 1, "{b}");
        worker.drain().await;

        let row = s.gw.store.transfer("t1").await.unwrap().unwrap();
        assert_eq!(row.status, Status::Delivered, "{b}");
        assert_eq!((row.attempts, row.interrupted), (3, 0), "{b}");
        let metrics = s.gw.metrics.render();
        for step in ["fetch", "deliver"] {
            let line = format!("siirto_attempts_interrupted_total{{step=\"{step}\"}} 1");
            assert!(metrics.contains(&line), "{b}: {line} in {metrics}");
        }
        let trail = audited(&s.gw, "t1").await;
        let attempts: Vec<_> = trail
            .iter()
            .filter(|(a, _, _)| a == "source.fetch" || a == "destination.deliver")
            .cloned()
            .collect();
        assert_eq!(
            attempts,
            vec![
                entry("source.fetch", "interrupted", "1"),
                entry("source.fetch", "ok", "2"),
                entry("destination.deliver", "destination_unavailable", "1"),
                entry("destination.deliver", "interrupted", "2"),
                entry("destination.deliver", "delivered", "3"),
            ],
            "{b}: {trail:?}"
        );
        // The interrupted delivery names what it was sending.
        let entries = s.gw.store.audit_range(0, 10_000).await.unwrap();
        let interrupted = entries
            .iter()
            .find(|e| e.event.action == "destination.deliver" && e.event.outcome == "interrupted")
            .unwrap();
        assert_eq!(
            interrupted.event.document_sha256.map(|h| hex(&h)),
            row.document_sha256,
            "{b}"
        );
        assert_eq!(interrupted.event.detail["status"], "delivering", "{b}");
        let steps = s.gw.store.steps("t1").await.unwrap();
        let interrupted_steps: Vec<&str> = steps
            .iter()
            .filter(|st| st.outcome == "interrupted")
            .map(|st| st.step.as_str())
            .collect();
        assert_eq!(interrupted_steps, ["fetch", "deliver"], "{b}");
        assert_eq!(s.gw.store.payload_count().await.unwrap(), 0, "{b}");
    }
}

/// A claim made by a worker that then died.
async fn claimed_by_a_dead_worker(s: &Setup, token: &str) {
    let now = s.gw.now();
    let lease_until = now.saturating_add(s.gw.config.delivery.lease);
    let got = s.gw.store.claim(token, now, lease_until, 10).await.unwrap();
    assert_eq!(got.len(), 1);
    expire_leases(s);
}

/// A transfer that keeps stopping the gateway is not tried for ever: interrupted attempts
/// count against `delivery.max_attempts`, and when they exhaust it the transfer fails
/// without another attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_attempts_exhaust_the_retry_limit() {
    for s in setups_with(&[("SIIRTO__DELIVERY__MAX_ATTEMPTS", "2")]).await {
        let b = s.gw.store.backend_name();
        let worker = Worker::new(s.gw.clone());
        accepted(&s.gw, "t1").await;
        claimed_by_a_dead_worker(&s, "dead/1").await;
        claimed_by_a_dead_worker(&s, "dead/2").await;
        assert_eq!(worker.step().await.unwrap(), 1, "{b}");
        worker.drain().await;
        let row = s.gw.store.transfer("t1").await.unwrap().unwrap();
        assert_eq!(row.status, Status::Failed, "{b}");
        assert_eq!(
            row.reason,
            Some(transfer::FailureReason::SourceUnavailable),
            "{b}"
        );
        assert_eq!((row.attempts, row.interrupted), (2, 0), "{b}");
        assert_eq!(row.lease_owner, None, "{b}");
        assert!(s.bed.sources["turku"].requests().is_empty(), "{b}");
        assert_eq!(
            audited(&s.gw, "t1").await,
            vec![
                entry("source.fetch", "interrupted", "1"),
                entry("source.fetch", "interrupted", "2"),
                entry("transfer.failed", "source_unavailable", ""),
            ],
            "{b}"
        );
    }
}

/// Polls `check` until it holds; fails the test after a generous deadline.
async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// An instance that claims its own expired lease again: the first task is fenced off by
/// its lease token, so the transfer is delivered (and audited as delivered) once, and the
/// superseded attempt is audited as interrupted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_whose_lease_its_own_instance_took_back_writes_nothing() {
    for s in setups().await {
        let b = s.gw.store.backend_name();
        let worker = Worker::new(s.gw.clone());
        let espoo = &s.bed.destinations["espoo"];
        // The first attempt's document is stored, and its acknowledgement held back until
        // the test lets it go.
        espoo.set_behaviour(Behaviour::StoreThenHold);
        accepted(&s.gw, "t1").await;
        assert_eq!(worker.step().await.unwrap(), 1, "{b}");
        wait_for("the destination stores the first attempt", async || {
            espoo.stored_count() == 1
        })
        .await;
        // The task outlasts its lease; the same worker takes the transfer again. Its
        // attempt finds the record stored (409) and records the delivery.
        expire_leases(&s);
        assert_eq!(worker.step().await.unwrap(), 1, "{b}");
        wait_for("the second task records the delivery", async || {
            let row = s.gw.store.transfer("t1").await.unwrap().unwrap();
            row.status == Status::Delivered
        })
        .await;
        // Only now does the first attempt's acknowledgement arrive; its write is fenced.
        espoo.set_behaviour(Behaviour::Normal);
        worker.drain().await;

        let row = s.gw.store.transfer("t1").await.unwrap().unwrap();
        assert_eq!(row.status, Status::Delivered, "{b}");
        let trail = audited(&s.gw, "t1").await;
        let count = |action: &str, outcome: Option<&str>| {
            trail
                .iter()
                .filter(|(a, o, _)| a == action && outcome.is_none_or(|x| x == o))
                .count()
        };
        assert_eq!(count("transfer.delivered", None), 1, "{b}: {trail:?}");
        assert_eq!(
            count("destination.deliver", Some("interrupted")),
            1,
            "{b}: {trail:?}"
        );
        // One delivery outcome recorded: the second task's (the destination already had
        // the record the first task delivered); the first task's write was fenced.
        let outcomes: Vec<_> = trail
            .iter()
            .filter(|(a, o, _)| a == "destination.deliver" && o != "interrupted")
            .cloned()
            .collect();
        assert_eq!(
            outcomes,
            [entry("destination.deliver", "already_delivered", "2")],
            "{b}: {trail:?}"
        );
        let mut answers: Vec<u16> = espoo.requests().iter().map(|r| r.status).collect();
        answers.sort_unstable();
        assert_eq!(answers, [200, 409], "{b}");
        assert_eq!(s.gw.store.payload_count().await.unwrap(), 0, "{b}");
    }
}

//! What the durable-transfer tests share: a testbed on a manual clock with exact backoff, the
//! usual route (Turku's school system → Espoo's), and ways to watch a transfer's attempts, its
//! audit entries and the gateway's admin listener.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use serde_json::Value;
use siirto_core::clock::{Clock, ManualClock, Random, SystemClock, SystemRandom, Timestamp};
use siirto_devkit::client::Answer;
use siirto_devkit::peers::Destination;
use siirto_devkit::testbed::{Testbed, TestbedOptions};
use siirto_gateway::state::Gateway;
use siirto_gateway::store::testdb::TestDb;

use crate::helpers::{self, STUDENT, TRANSFER_DEADLINE};

#[path = "../support/admin.rs"]
pub mod admin;

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The categories every transfer of these tests asks for.
pub const SCOPE: &str = "identity enrolment achievements";

/// Randomness whose backoff draws are always the longest wait allowed (the ceiling of full
/// jitter), so retry times are exact; bytes (ids, keys) stay random.
pub struct LongestWait(pub SystemRandom);

impl Random for LongestWait {
    fn fill(&self, buf: &mut [u8]) {
        self.0.fill(buf);
    }

    fn below(&self, n: u64) -> u64 {
        n.saturating_sub(1)
    }
}

/// A running installation on a manual clock; the record of [`STUDENT`] is at Turku.
pub struct Durable {
    pub bed: Testbed,
    pub clock: Arc<ManualClock>,
    /// The PostgreSQL database (dropped after the testbed).
    _db: Option<TestDb>,
}

/// Starts a testbed on `backend` with `SIIRTO__...` overrides; `None` (after a loud SKIPPED line)
/// when PostgreSQL is asked for and `SIIRTO_TEST_POSTGRES` is unset.
pub async fn start(backend: Backend, env: &[(&str, &str)]) -> Option<Durable> {
    start_at(backend, env, SystemClock.now()).await
}

/// [`start`] with the manual clock set to `now` (e.g. in the past, for commands that run on
/// the real clock afterwards).
pub async fn start_at(backend: Backend, env: &[(&str, &str)], now: Timestamp) -> Option<Durable> {
    let db = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(helpers::postgres().await?),
    };
    let clock = Arc::new(ManualClock::new(now));
    let bed = helpers::start_with(TestbedOptions {
        database_url: db.as_ref().map(|d| d.url.clone()),
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        clock: clock.clone(),
        random: Arc::new(LongestWait(SystemRandom::new())),
        ..TestbedOptions::default()
    })
    .await;
    bed.sources["turku"].insert(STUDENT, helpers::school_record(STUDENT, false).into_bytes());
    Some(Durable {
        bed,
        clock,
        _db: db,
    })
}

impl Durable {
    pub fn gateway(&self) -> &Arc<Gateway> {
        helpers::gateway(&self.bed)
    }

    pub fn espoo(&self) -> &Destination {
        &self.bed.destinations["espoo"]
    }

    /// Moves the gateway's clock forward to `t` (never back) and wakes its workers.
    pub fn advance_to(&self, t: Timestamp) {
        if t > self.clock.now() {
            self.clock.set(t);
        }
        self.gateway().wake.notify_one();
    }

    pub fn advance(&self, d: Duration) {
        self.advance_to(self.clock.now().saturating_add(d));
    }

    /// A fresh authorization for Turku → Espoo.
    pub fn token(&self) -> String {
        helpers::token(&self.bed, STUDENT, "turku", "espoo", SCOPE)
    }

    /// Submits a fresh transfer as the e-service and requires `202`; returns its id.
    pub async fn submit(&self) -> String {
        helpers::submit_accepted(&self.bed, &self.token()).await
    }

    /// `POST /v1/transfers/{id}/{action}` (cancel, retry) as `participant`.
    pub async fn act(&self, participant: &str, id: &str, action: &str) -> Answer {
        self.bed
            .client(participant)
            .expect("client")
            .send(
                Method::POST,
                &format!("/v1/transfers/{id}/{action}"),
                &[],
                None,
            )
            .await
            .expect("the gateway answers")
    }

    /// `GET /v1/transfers/{id}` as the operator.
    pub async fn view(&self, id: &str) -> Value {
        let answer = self
            .bed
            .client("registry-operator")
            .expect("client")
            .get(&format!("/v1/transfers/{id}"), &[])
            .await
            .expect("the gateway answers");
        assert_eq!(answer.status.as_u16(), 200, "{}", answer.json());
        answer.json()
    }

    /// Polls the transfer's view until `done` holds (or fails the test after a generous
    /// deadline, showing the last view).
    pub async fn wait_until(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + TRANSFER_DEADLINE;
        loop {
            let v = self.view(id).await;
            if done(&v) {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "transfer {id} did not reach: {what}; last seen {v:#}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the transfer has made `n` delivery attempts and waits for the next one.
    pub async fn wait_attempts(&self, id: &str, n: u64) -> Value {
        self.wait_until(id, &format!("{n} delivery attempt(s), waiting"), |v| {
            v["status"] == "delivering"
                && v["attempts"].as_u64() == Some(n)
                && v.get("next_attempt_at").is_some()
        })
        .await
    }

    pub async fn wait_status(&self, id: &str, status: &str) -> Value {
        self.wait_until(id, status, |v| v["status"] == status).await
    }

    /// The `destination.deliver` audit entries of a transfer, read through
    /// `GET /v1/audit?transfer=..&action=destination.deliver` as the operator.
    pub async fn delivery_audit(&self, id: &str) -> Vec<Value> {
        let answer = self
            .bed
            .client("registry-operator")
            .expect("client")
            .get(
                &format!("/v1/audit?transfer={id}&action=destination.deliver&limit=1000"),
                &[],
            )
            .await
            .expect("the gateway answers");
        assert_eq!(answer.status.as_u16(), 200, "{}", answer.json());
        answer.json()["entries"]
            .as_array()
            .expect("entries")
            .clone()
    }

    /// `(attempt, outcome)` of every delivery attempt in the audit.
    pub async fn attempts_audited(&self, id: &str) -> Vec<(String, String)> {
        self.delivery_audit(id)
            .await
            .iter()
            .map(|e| {
                (
                    e["detail"]["attempt"].as_str().unwrap_or("").to_owned(),
                    e["outcome"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }

    /// The audit entries about one transfer, as (actor, action, outcome).
    pub async fn audit_of(&self, id: &str) -> Vec<(String, String, String)> {
        helpers::audit(&self.bed)
            .await
            .into_iter()
            .filter(|e| e.event.transfer_id.as_deref() == Some(id))
            .map(|e| (e.event.actor, e.event.action, e.event.outcome))
            .collect()
    }

    /// Requires that no payload is stored for `id`.
    pub async fn assert_payload_gone(&self, id: &str) {
        let payload = self.gateway().store.payload(id).await.expect("store");
        assert!(
            payload.is_none(),
            "transfer {id} still has a stored payload"
        );
    }

    /// Requires that no payload at all is stored.
    pub async fn assert_no_payloads(&self) {
        assert_eq!(
            self.gateway().store.payload_count().await.expect("store"),
            0,
            "payloads remain stored"
        );
    }

    /// Requires that the whole stored audit log (and every checkpoint) verifies.
    pub async fn assert_audit_verifies(&self) {
        let gw = self.gateway();
        let outcome = gw.trail.verify_store(&gw.store).await.expect("store");
        if let Err(e) = outcome.result {
            panic!("the audit log does not verify: {e}");
        }
    }

    /// Requests the destination received, by `Idempotency-Key`: the statuses it answered.
    pub fn espoo_answers(&self) -> HashMap<String, Vec<u16>> {
        let mut by_key: HashMap<String, Vec<u16>> = HashMap::new();
        for r in self.espoo().requests() {
            by_key.entry(r.idempotency_key).or_default().push(r.status);
        }
        by_key
    }

    /// `GET path` on the plain admin listener: (status, body).
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        let addr = self.bed.config.gateway.admin_listen.to_string();
        let answer = admin::admin_get(&addr, path).await;
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    /// Polls `GET /readyz` until it answers `status`; returns the body.
    pub async fn wait_ready(&self, status: u16) -> String {
        let deadline = tokio::time::Instant::now() + TRANSFER_DEADLINE;
        loop {
            let (got, body) = self.admin_get("/readyz").await;
            if got == status {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "/readyz did not answer {status}; last {got} {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A time in a transfer's view.
pub fn time(v: &Value) -> Timestamp {
    v.as_str()
        .and_then(Timestamp::parse_rfc3339)
        .unwrap_or_else(|| panic!("not a time: {v}"))
}

/// The last `deliver` step of a view: (time, outcome, detail).
pub fn last_delivery(view: &Value) -> (Timestamp, String, String) {
    let s = helpers::step(view, "deliver");
    (
        time(&s["at"]),
        s["outcome"].as_str().unwrap_or("").to_owned(),
        s["detail"].as_str().unwrap_or("").to_owned(),
    )
}

//! Back-pressure: the gateway refuses what it cannot keep, says so with 503 (and
//! `Retry-After`), and takes work again when it can, losing nothing it had accepted.
//! - `delivery.max_pending` unfinished transfers: `503 overloaded`, audited as
//!   `transfer.refused`.
//! - A store that takes no writes: `503 store_unavailable`, and `/readyz` answers 503. On SQLite
//!   another connection holds the write lock (`BEGIN EXCLUSIVE`; reads still work, so readiness
//!   must probe a write); on PostgreSQL the test database stops accepting connections and its
//!   sessions are terminated.
//! - `delivery.per_destination_concurrency`: with a destination that holds every request, no
//!   more than that many deliveries to it are in flight at once.
//!
//! A refused submission does not use up the authorization's `jti`: the same token is accepted
//! once the gateway recovers.

use std::str::FromStr;

use siirto_devkit::peers::Behaviour;
use sqlx::Connection;

use crate::helpers;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_pending_answers_overloaded_and_recovers() {
    let Some(d) = start(Backend::Sqlite, &[("SIIRTO__DELIVERY__MAX_PENDING", "2")]).await else {
        return;
    };
    d.espoo().set_behaviour(Behaviour::Status(503));
    let accepted = [d.submit().await, d.submit().await];
    let token = d.token();
    let refused = helpers::submit(&d.bed, "eservice", &token).await;
    assert_eq!(refused.status.as_u16(), 503, "{}", refused.json());
    assert_eq!(refused.error_code().as_deref(), Some("overloaded"));
    assert!(refused.headers.contains_key("retry-after"));
    let entry = helpers::wait_for_audit(&d.bed, "transfer.refused/overloaded", |e| {
        e.event.action == "transfer.refused" && e.event.outcome == "overloaded"
    })
    .await;
    assert_eq!(entry.event.actor, "eservice");
    assert_eq!(
        entry.event.detail.get("pending").map(String::as_str),
        Some("2")
    );
    assert!(entry.event.transfer_id.is_none());

    // Espoo recovers: what was accepted is delivered, then the same token is accepted.
    let mut due = Vec::new();
    for id in &accepted {
        due.push(time(&d.wait_attempts(id, 1).await["next_attempt_at"]));
    }
    d.espoo().set_behaviour(Behaviour::Normal);
    d.advance_to(due.into_iter().max().expect("due"));
    for id in &accepted {
        d.wait_status(id, "delivered").await;
    }
    // The pending count is refreshed every second; poll /metrics until it drops.
    let deadline = tokio::time::Instant::now() + helpers::TRANSFER_DEADLINE;
    loop {
        let (_, metrics) = d.admin_get("/metrics").await;
        if metrics.contains("\nsiirto_pending_transfers 0\n") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let id = helpers::submit_accepted(&d.bed, &token).await;
    d.wait_status(&id, "delivered").await;
    assert_eq!(d.espoo().stored().len(), 3);
    d.assert_no_payloads().await;
}

/// Makes the store refuse writes, and undoes it.
enum Outage {
    /// A connection holding SQLite's write lock.
    SqliteLock(sqlx::SqliteConnection),
    /// The test database on the PostgreSQL server, which no longer accepts connections.
    PostgresClosed {
        admin: sqlx::PgConnection,
        database: String,
    },
}

impl Outage {
    async fn begin(d: &Durable) -> Outage {
        let url = d.bed.config.gateway.database_url.clone();
        if url.starts_with("sqlite:") {
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(&url).expect("url");
            let mut conn = sqlx::SqliteConnection::connect_with(&options)
                .await
                .expect("a second SQLite connection");
            sqlx::raw_sql("BEGIN EXCLUSIVE")
                .execute(&mut conn)
                .await
                .expect("take the write lock");
            Outage::SqliteLock(conn)
        } else {
            let server = std::env::var("SIIRTO_TEST_POSTGRES").expect("a PostgreSQL test");
            let database = url
                .rsplit('/')
                .next()
                .and_then(|s| s.split('?').next())
                .expect("database name")
                .to_owned();
            assert!(database.starts_with("siirto_test_"), "{database}");
            let mut admin = sqlx::PgConnection::connect(&server)
                .await
                .expect("admin connection");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "ALTER DATABASE {database} ALLOW_CONNECTIONS false"
            )))
            .execute(&mut admin)
            .await
            .expect("close the database");
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
            )
            .bind(&database)
            .execute(&mut admin)
            .await
            .expect("terminate sessions");
            Outage::PostgresClosed { admin, database }
        }
    }

    async fn end(self) {
        match self {
            Outage::SqliteLock(mut conn) => {
                sqlx::raw_sql("ROLLBACK")
                    .execute(&mut conn)
                    .await
                    .expect("release the write lock");
                conn.close().await.expect("close");
            }
            Outage::PostgresClosed {
                mut admin,
                database,
            } => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "ALTER DATABASE {database} ALLOW_CONNECTIONS true"
                )))
                .execute(&mut admin)
                .await
                .expect("open the database");
                admin.close().await.expect("close");
            }
        }
    }
}

async fn store_unavailable_answers_503_and_recovers(backend: Backend) {
    let Some(d) = start(backend, &[]).await else {
        return;
    };
    // A transfer accepted before the outage, waiting for a retry across it.
    d.espoo().set_behaviour(Behaviour::Status(503));
    let before = d.submit().await;
    let waiting = d.wait_attempts(&before, 1).await;
    assert_eq!(d.admin_get("/readyz").await, (200, "ready\n".to_owned()));

    let outage = Outage::begin(&d).await;
    let token = d.token();
    let refused_now = || async {
        let refused = helpers::submit(&d.bed, "eservice", &token).await;
        assert_eq!(refused.status.as_u16(), 503, "{}", refused.json());
        assert_eq!(refused.error_code().as_deref(), Some("store_unavailable"));
        assert!(refused.headers.contains_key("retry-after"));
    };
    if backend == Backend::Postgres {
        // The write itself fails. (On SQLite a write may instead wait for the lock up to the
        // busy timeout, depending on how the store begins its transactions; readiness is asked
        // first there, so this test does not depend on that.)
        refused_now().await;
    }
    let body = d.wait_ready(503).await;
    let expected = match backend {
        Backend::Sqlite => "database not writable\n",
        Backend::Postgres => "database unreachable\n",
    };
    assert_eq!(body, expected);
    // Readiness knows: refused at once, before trying to write.
    refused_now().await;

    outage.end().await;
    assert_eq!(d.wait_ready(200).await, "ready\n");
    // The refused authorization was not used up: the same token is accepted now.
    let after = helpers::submit_accepted(&d.bed, &token).await;
    d.espoo().set_behaviour(Behaviour::Normal);
    d.advance_to(time(&waiting["next_attempt_at"]));
    for id in [&before, &after] {
        d.wait_status(id, "delivered").await;
    }
    let stored = d.espoo().stored();
    assert_eq!(stored.len(), 2);
    assert!(stored.contains_key(&before) && stored.contains_key(&after));
    d.assert_no_payloads().await;
    d.assert_audit_verifies().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_unavailable_answers_503_and_recovers_sqlite() {
    store_unavailable_answers_503_and_recovers(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_unavailable_answers_503_and_recovers_postgres() {
    store_unavailable_answers_503_and_recovers(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_to_one_destination_stay_within_its_slots() {
    let Some(d) = start(
        Backend::Sqlite,
        &[
            ("SIIRTO__DELIVERY__PER_DESTINATION_CONCURRENCY", "2"),
            ("SIIRTO__DELIVERY__WORKERS", "8"),
        ],
    )
    .await
    else {
        return;
    };
    d.espoo().set_behaviour(Behaviour::Hold);
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(d.submit().await);
    }
    // Every transfer is fetched and converted; two requests are at Espoo, the other transfers
    // wait for a slot (in the store, once a worker has waited a moment and given them back).
    for id in &ids {
        d.wait_status(id, "delivering").await;
    }
    let deadline = tokio::time::Instant::now() + helpers::TRANSFER_DEADLINE;
    while d.espoo().in_flight() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "deliveries did not start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(d.espoo().in_flight(), 2);
    d.espoo().set_behaviour(Behaviour::Normal);
    for id in &ids {
        d.wait_status(id, "delivered").await;
    }
    assert_eq!(
        d.espoo().max_in_flight(),
        2,
        "at most two deliveries at once"
    );
    assert_eq!(d.espoo().stored().len(), 6);
    for id in &ids {
        assert_eq!(d.espoo_answers()[id], vec![200], "{id}");
    }
}

/// One destination that does not answer must not hold up the others: transfers to it wait in
/// the store once its call slots are taken, and the workers go on with other destinations.
#[tokio::test]
async fn a_hanging_destination_does_not_hold_up_the_others() {
    let Some(d) = start(
        Backend::Sqlite,
        &[
            ("SIIRTO__DELIVERY__PER_DESTINATION_CONCURRENCY", "1"),
            ("SIIRTO__DELIVERY__WORKERS", "2"),
        ],
    )
    .await
    else {
        return;
    };
    d.espoo().set_behaviour(Behaviour::Hold);
    let mut to_espoo = Vec::new();
    for _ in 0..4 {
        to_espoo.push(d.submit().await);
    }
    let deadline = tokio::time::Instant::now() + helpers::TRANSFER_DEADLINE;
    while d.espoo().in_flight() < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no delivery started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // With both workers busy on Espoo (one calling, one waiting for Espoo's only slot), a
    // transfer to Helsinki would never start.
    let token = helpers::token(&d.bed, helpers::STUDENT, "turku", "helsinki", SCOPE);
    let to_helsinki = helpers::submit_accepted(&d.bed, &token).await;
    d.wait_status(&to_helsinki, "delivered").await;
    assert_eq!(d.bed.destinations["helsinki"].stored().len(), 1);
    assert_eq!(d.espoo().in_flight(), 1, "Espoo's one slot is still taken");
    let (_, metrics) = d.admin_get("/metrics").await;
    assert!(
        metrics.contains("siirto_deliveries_deferred_total{destination=\"espoo\"}"),
        "{metrics}"
    );
    assert!(
        d.espoo().stored().is_empty(),
        "the held request is not stored yet"
    );
    d.espoo().set_behaviour(Behaviour::Normal);
    for id in &to_espoo {
        d.wait_status(id, "delivered").await;
    }
    assert_eq!(d.espoo().max_in_flight(), 1);
    assert_eq!(d.espoo().stored().len(), 4);
    for id in &to_espoo {
        assert_eq!(d.espoo_answers()[id], vec![200], "{id}: one request each");
    }
}

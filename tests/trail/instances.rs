//! Several gateway instances on one PostgreSQL database: they extend one audit chain, each
//! instance's tree follows the other's entries, and their checkpoints do not fight — a size
//! another instance already signed is skipped, and every checkpoint verifies against the one
//! log. Runs when `SIIRTO_TEST_POSTGRES` is set.

use std::sync::Arc;
use std::time::Duration;

use siirto_core::audit::{AuditEvent, AuditSigningKey, CheckpointSigner};
use siirto_core::clock::{SystemClock, SystemRandom, Timestamp};
use siirto_devkit::testbed::{Testbed, TestbedOptions};
use siirto_gateway::server::Shutdown;
use siirto_gateway::start::{self, Listeners};
use siirto_gateway::state::Gateway;
use siirto_gateway::store::Store;
use siirto_gateway::store::testdb::TestDb;
use siirto_gateway::trail::Trail;

fn event(who: &str, i: usize) -> AuditEvent {
    let mut e = AuditEvent::new(
        siirto_core::clock::Clock::now(&SystemClock),
        who,
        "load.test",
        "ok",
    );
    e.detail.insert("i".into(), i.to_string());
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_postgresql_extend_one_verifiable_trail() {
    let Some(db) = TestDb::postgres().await.unwrap() else {
        eprintln!("NOTE: SIIRTO_TEST_POSTGRES is not set; the multi-instance test is skipped");
        return;
    };
    let bed = Testbed::start(TestbedOptions {
        database_url: Some(db.url.clone()),
        env: vec![
            ("SIIRTO__AUDIT__CHECKPOINT_EVERY".into(), "7".into()),
            ("SIIRTO__AUDIT__CHECKPOINT_INTERVAL".into(), "1s".into()),
        ],
        ..TestbedOptions::default()
    })
    .await
    .unwrap();
    let a = bed.gateway.clone().unwrap();
    let b = Gateway::open(
        bed.config.clone(),
        Arc::new(SystemClock),
        Arc::new(SystemRandom::new()),
        siirto_devkit::testbed::build_info(),
    )
    .await
    .unwrap();
    let listeners = Listeners {
        api: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        admin: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    };
    let (stop_b, signal) = Shutdown::new();
    let running_b = tokio::spawn(start::run(b.clone(), listeners, signal));

    // Both instances write at once, in small batches, as their request handlers would.
    let mut writers = Vec::new();
    for (name, gw) in [("a", a.clone()), ("b", b.clone())] {
        for w in 0..4 {
            let gw = gw.clone();
            writers.push(tokio::spawn(async move {
                for i in 0..40 {
                    let events = (0..3).map(|j| event(name, w * 1000 + i * 3 + j)).collect();
                    gw.store.append_audit(events).await.unwrap();
                }
            }));
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    let total = a.store.audit_len().await.unwrap();
    assert!(total >= 960, "{total}");

    // Each tree follows the whole log, the other instance's entries included.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while a.trail.size() < total || b.trail.size() < total {
        assert!(
            tokio::time::Instant::now() < deadline,
            "trees at {} and {} of {total}",
            a.trail.size(),
            b.trail.size()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(a.trail.status().root, b.trail.status().root);
    // Wait for the checkpoint of the last multiple of 7.
    let last_multiple = total / 7 * 7;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let latest = a.store.latest_checkpoint().await.unwrap();
        if latest.is_some_and(|c| c.tree_size >= last_multiple) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no checkpoint of {last_multiple}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for gw in [&a, &b] {
        assert_eq!(gw.trail.status().broken, None, "{}", gw.instance);
    }

    stop_b.trigger();
    running_b.await.unwrap().unwrap();
    let store = b.store.clone();
    bed.stop().await;

    // The whole log verifies with every checkpoint either instance signed.
    let reopened = Store::connect(&db.url).await.unwrap();
    let verifier = a.trail.checkpoint_verifier();
    let outcome = siirto_gateway::trail::verify_store(&reopened, &verifier)
        .await
        .unwrap();
    let summary = outcome.result.expect("the shared log verifies");
    assert!(summary.entries >= total);
    assert!(summary.checkpoints >= 2, "{}", summary.checkpoints);
    assert_eq!(
        summary.unanchored, 0,
        "the last one out signed a final checkpoint"
    );
    drop(store);
    reopened.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_size_already_signed_by_another_instance_is_skipped() {
    let Some(db) = TestDb::postgres().await.unwrap() else {
        eprintln!("NOTE: SIIRTO_TEST_POSTGRES is not set; the multi-instance test is skipped");
        return;
    };
    let store = Store::open(&db.url).await.unwrap();
    let pkcs8 =
        ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let key = AuditSigningKey::from_pkcs8_der(pkcs8.as_ref()).unwrap();
    let t0 = Timestamp::from_millis(1_795_448_460_000);
    let trail = || {
        Trail::new(
            CheckpointSigner::new(key.clone(), "gw.example/audit").unwrap(),
            10,
            Duration::from_secs(3600),
            t0,
        )
    };
    let (one, two) = (trail(), trail());
    store
        .append_audit((0..25).map(|i| event("x", i)).collect())
        .await
        .unwrap();
    for round in 0..5 {
        one.sync(&store).await.unwrap();
        two.sync(&store).await.unwrap();
        // Both decide at once that the multiple of 10 is due; one of them stores it.
        let (x, y) = tokio::join!(
            one.checkpoint_if_due(&store, t0, false),
            two.checkpoint_if_due(&store, t0, false)
        );
        let signed = [x.unwrap(), y.unwrap()];
        let expected = 20 + 10 * round;
        assert_eq!(
            signed
                .iter()
                .flatten()
                .map(|c| c.tree_size)
                .collect::<Vec<_>>(),
            vec![expected],
            "round {round}"
        );
        store
            .append_audit((0..10).map(|i| event("x", i)).collect())
            .await
            .unwrap();
    }
    let sizes: Vec<u64> = store
        .checkpoints()
        .await
        .unwrap()
        .iter()
        .map(|c| c.tree_size)
        .collect();
    assert_eq!(sizes, vec![20, 30, 40, 50, 60]);
    assert_eq!(one.status().broken, None);
    assert_eq!(two.status().broken, None);
    store.close().await;
}

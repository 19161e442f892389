//! Several gateway instances on one PostgreSQL database share the work: each transfer is
//! claimed by one of them (`FOR UPDATE SKIP LOCKED` leases), both deliver, and every transfer
//! reaches the destination exactly once.

use std::sync::Arc;
use std::time::Duration;

use siirto_core::clock::{SystemClock, SystemRandom};
use siirto_core::student_id::synthetic_henkilotunnus;
use siirto_devkit::peers::Behaviour;
use siirto_devkit::testbed::TestbedOptions;
use siirto_gateway::state::Gateway;

use crate::helpers;
use crate::support::SCOPE;

const TRANSFERS: u32 = 60;

/// Transfers this instance delivered, from its own metrics.
fn delivered_by(gw: &Gateway) -> u64 {
    gw.metrics
        .render()
        .lines()
        .find(|l| l.starts_with("siirto_transfers_total{outcome=\"delivered\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_postgresql_share_the_work_and_deliver_each_transfer_once() {
    let Some(db) = helpers::postgres().await else {
        return;
    };
    let bed = helpers::start_with(TestbedOptions {
        database_url: Some(db.url.clone()),
        env: vec![("SIIRTO__DELIVERY__WORKERS".into(), "4".into())],
        ..TestbedOptions::default()
    })
    .await;
    let a = helpers::gateway(&bed).clone();
    let b = Gateway::open(
        bed.config.clone(),
        Arc::new(SystemClock),
        Arc::new(SystemRandom::new()),
        siirto_devkit::testbed::build_info(),
    )
    .await
    .expect("second instance");
    let instance_b = siirto_devkit::testbed::Instance::start(b.clone())
        .await
        .expect("listeners");

    // A destination slow enough that both instances' workers are busy at once.
    let espoo = &bed.destinations["espoo"];
    espoo.set_behaviour(Behaviour::Delay(Duration::from_millis(100)));
    let mut ids = Vec::new();
    for n in 0..TRANSFERS {
        let student = synthetic_henkilotunnus(n);
        bed.sources["turku"].insert(
            &student,
            helpers::school_record(&student, false).into_bytes(),
        );
        let token = helpers::token(&bed, &student, "turku", "espoo", SCOPE);
        ids.push(helpers::submit_accepted(&bed, &token).await);
    }
    for id in &ids {
        let view = helpers::finished(&bed, id).await;
        assert_eq!(view["status"], "delivered", "{view}");
    }

    let (by_a, by_b) = (delivered_by(&a), delivered_by(&b));
    assert_eq!(by_a + by_b, u64::from(TRANSFERS), "a {by_a}, b {by_b}");
    assert!(
        by_a > 0 && by_b > 0,
        "both instances deliver: a {by_a}, b {by_b}"
    );
    let requests = espoo.requests();
    assert_eq!(requests.len(), ids.len(), "one request per transfer");
    let stored = espoo.stored();
    for id in &ids {
        assert!(stored.contains_key(id), "{id} stored");
    }
    assert_eq!(a.store.payload_count().await.unwrap(), 0);
    eprintln!("instance a delivered {by_a}, instance b {by_b}");

    instance_b.stop().await.expect("instance b ran");
    bed.stop().await;
}

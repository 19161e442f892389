//! Cancel (`POST /v1/transfers/{id}/cancel`): the submitter (or an operator) stops a transfer
//! that is not yet delivered. Here it waits for a retry after Espoo answered 503. The source and
//! the destination see the transfer but may not cancel it (403 `forbidden_caller`); a
//! participant that cannot see it is not told it exists (404, as `GET` answers). A cancelled
//! transfer keeps no payload, is never tried again however far the clock moves, and a finished
//! transfer cannot be cancelled (409 `already_finished`), nor one whose delivery request is
//! under way (409 `delivery_in_progress`: it cannot be called back). Every refusal is audited.

use std::time::Duration;

use siirto_devkit::peers::Behaviour;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_submitter_cancels_a_transfer_waiting_for_a_retry() {
    let Some(d) = start(Backend::Sqlite, &[]).await else {
        return;
    };
    d.espoo().set_behaviour(Behaviour::Status(503));
    let id = d.submit().await;
    let waiting = d.wait_attempts(&id, 1).await;
    let next = time(&waiting["next_attempt_at"]);

    for (who, status, code) in [
        ("espoo", 403, "forbidden_caller"),
        ("turku", 403, "forbidden_caller"),
        ("helsinki", 404, "not_found"),
    ] {
        let answer = d.act(who, &id, "cancel").await;
        assert_eq!(answer.status.as_u16(), status, "{who}: {}", answer.json());
        assert_eq!(answer.error_code().as_deref(), Some(code), "{who}");
    }
    assert_eq!(d.view(&id).await["status"], "delivering");

    let cancelled_metric = |d: &Durable| {
        let metrics = d.bed.gateway.as_ref().expect("gateway").metrics.render();
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("siirto_transfers_total{outcome=\"cancelled\"} "))
            .map(str::to_owned)
    };
    assert_eq!(cancelled_metric(&d).as_deref(), Some("0"));
    let answer = d.act("eservice", &id, "cancel").await;
    assert_eq!(answer.status.as_u16(), 200, "{}", answer.json());
    assert_eq!(answer.json()["status"], "cancelled");
    assert_eq!(cancelled_metric(&d).as_deref(), Some("1"));
    let view = d.view(&id).await;
    assert_eq!(view["status"], "cancelled", "{view:#}");
    assert!(view.get("next_attempt_at").is_none(), "{view:#}");
    assert!(view.get("reason").is_none(), "{view:#}");
    assert_eq!(crate::helpers::step(&view, "cancel")["outcome"], "ok");
    d.assert_payload_gone(&id).await;

    // Espoo is back and the clock passes the retry that was due, and a day more. A transfer
    // submitted afterwards is delivered; the cancelled one never reaches Espoo again.
    d.espoo().set_behaviour(Behaviour::Normal);
    d.advance_to(next);
    d.advance(Duration::from_secs(24 * 3600));
    let control = d.submit().await;
    d.wait_status(&control, "delivered").await;
    assert_eq!(
        d.espoo_answers()[&id],
        vec![503],
        "only the attempt before the cancel"
    );
    assert!(!d.espoo().stored().contains_key(&id));
    assert_eq!(d.view(&id).await["status"], "cancelled");
    assert_eq!(
        d.attempts_audited(&id).await,
        vec![("1".to_owned(), "destination_unavailable".to_owned())]
    );

    let audit = d.audit_of(&id).await;
    for expected in [
        ("espoo", "transfer.cancel_refused", "forbidden_caller"),
        ("turku", "transfer.cancel_refused", "forbidden_caller"),
        ("helsinki", "transfer.cancel_refused", "not_found"),
        ("eservice", "transfer.cancelled", "ok"),
    ] {
        let expected = (
            expected.0.to_owned(),
            expected.1.to_owned(),
            expected.2.to_owned(),
        );
        assert!(audit.contains(&expected), "{expected:?} in {audit:?}");
    }
    let cancelled = crate::helpers::audit(&d.bed)
        .await
        .into_iter()
        .find(|e| e.event.action == "transfer.cancelled")
        .expect("transfer.cancelled");
    assert_eq!(
        cancelled
            .event
            .detail
            .get("previous_status")
            .map(String::as_str),
        Some("delivering")
    );

    // Finished transfers cannot be cancelled: neither the delivered one nor the cancelled one.
    for finished in [&control, &id] {
        let answer = d.act("eservice", finished, "cancel").await;
        assert_eq!(answer.status.as_u16(), 409, "{}", answer.json());
        assert_eq!(answer.error_code().as_deref(), Some("already_finished"));
    }
    // An operator may cancel too; here the transfer is finished, so the answer is the same.
    let answer = d.act("registry-operator", &control, "cancel").await;
    assert_eq!(answer.status.as_u16(), 409, "{}", answer.json());
    assert_eq!(d.view(&control).await["status"], "delivered");
    d.assert_no_payloads().await;
    d.assert_audit_verifies().await;
}

/// An operator cancels a transfer whose source is down (still `fetching`, waiting for a retry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_cancels_a_transfer_whose_source_is_down() {
    let Some(d) = start(Backend::Sqlite, &[]).await else {
        return;
    };
    d.bed.sources["turku"].set_behaviour(Behaviour::Status(503));
    let id = d.submit().await;
    let waiting = d
        .wait_until(&id, "a failed fetch, waiting", |v| {
            v["status"] == "fetching" && v["attempts"] == 1 && v.get("next_attempt_at").is_some()
        })
        .await;
    let answer = d.act("registry-operator", &id, "cancel").await;
    assert_eq!(answer.status.as_u16(), 200, "{}", answer.json());
    d.bed.sources["turku"].set_behaviour(Behaviour::Normal);
    d.advance_to(time(&waiting["next_attempt_at"]));
    let control = d.submit().await;
    d.wait_status(&control, "delivered").await;
    assert_eq!(
        d.bed.sources["turku"].requests(),
        vec![id.clone(), control.clone()],
        "the cancelled transfer was not fetched again"
    );
    assert_eq!(d.view(&id).await["status"], "cancelled");
    assert!(!d.espoo_answers().contains_key(&id));
    let audit = d.audit_of(&id).await;
    assert!(
        audit.contains(&(
            "registry-operator".into(),
            "transfer.cancelled".into(),
            "ok".into()
        )),
        "{audit:?}"
    );
}

/// A delivery request that is under way cannot be called back: cancelling answers 409
/// `delivery_in_progress` and the transfer is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_in_flight_is_not_cancelled() {
    // One worker, busy with the held delivery: nobody takes the transfer over when its lease
    // runs out.
    let Some(d) = start(Backend::Sqlite, &[("SIIRTO__DELIVERY__WORKERS", "1")]).await else {
        return;
    };
    d.espoo().set_behaviour(Behaviour::Hold);
    let id = d.submit().await;
    let deadline = tokio::time::Instant::now() + crate::helpers::TRANSFER_DEADLINE;
    while d.espoo().in_flight() < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the delivery did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answer = d.act("eservice", &id, "cancel").await;
    assert_eq!(answer.status.as_u16(), 409, "{}", answer.json());
    assert_eq!(answer.error_code().as_deref(), Some("delivery_in_progress"));
    // Past the lease, with the lease never released, the attempt's outcome is still unknown
    // (its worker may have stopped): still no cancellation.
    d.advance(d.gateway().config.delivery.lease + Duration::from_secs(1));
    let answer = d.act("eservice", &id, "cancel").await;
    assert_eq!(answer.status.as_u16(), 409, "{}", answer.json());
    assert_eq!(answer.error_code().as_deref(), Some("delivery_in_progress"));
    d.espoo().set_behaviour(Behaviour::Normal);
    d.wait_status(&id, "delivered").await;
    assert!(d.espoo().stored().contains_key(&id));
    let audit = d.audit_of(&id).await;
    assert!(
        audit.contains(&(
            "eservice".into(),
            "transfer.cancel_refused".into(),
            "delivery_in_progress".into()
        )),
        "{audit:?}"
    );
}

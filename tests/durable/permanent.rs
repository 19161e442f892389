//! A definite answer is not retried: a destination that answers 400 or 422 has rejected the
//! record, and the transfer fails at once with `destination_rejected` after one attempt, its
//! payload deleted. A 409 means "already have it" and counts as delivered.

use std::time::Duration;

use siirto_devkit::peers::Behaviour;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections_fail_at_once_and_409_counts_as_delivered() {
    let Some(d) = start(Backend::Sqlite, &[]).await else {
        return;
    };
    let mut rejected = Vec::new();
    for status in [400u16, 422] {
        d.espoo().set_behaviour(Behaviour::Status(status));
        let id = d.submit().await;
        let view = d.wait_status(&id, "failed").await;
        assert_eq!(view["reason"], "destination_rejected", "{status}: {view:#}");
        assert_eq!(view["attempts"], 1, "{view:#}");
        assert!(view.get("next_attempt_at").is_none(), "{view:#}");
        let (_, outcome, detail) = last_delivery(&view);
        assert_eq!(
            (outcome.as_str(), detail.as_str()),
            ("destination_rejected", "attempt 1")
        );
        assert_eq!(
            d.attempts_audited(&id).await,
            vec![("1".to_owned(), "destination_rejected".to_owned())]
        );
        let audit = d.audit_of(&id).await;
        assert!(
            audit.contains(&(
                "gateway".into(),
                "transfer.failed".into(),
                "destination_rejected".into()
            )),
            "{audit:?}"
        );
        d.assert_payload_gone(&id).await;
        rejected.push((id, status));
    }

    // Time passes and Espoo answers normally again: a transfer that went through afterwards is
    // delivered, and the rejected ones were never tried again.
    d.espoo().set_behaviour(Behaviour::Normal);
    d.advance(Duration::from_secs(24 * 3600));
    let control = d.submit().await;
    d.wait_status(&control, "delivered").await;
    let answers = d.espoo_answers();
    for (id, status) in &rejected {
        assert_eq!(answers[id], vec![*status], "{id}");
        assert_eq!(d.view(id).await["status"], "failed");
    }

    // 409: Espoo already has it (here without storing anything new): delivered, not retried.
    d.espoo().set_behaviour(Behaviour::Status(409));
    let id = d.submit().await;
    let view = d.wait_status(&id, "delivered").await;
    assert_eq!(view["attempts"], 1, "{view:#}");
    assert!(view["receipt"].is_string(), "{view:#}");
    assert!(view["content_sha256"].is_string(), "{view:#}");
    assert_eq!(
        d.attempts_audited(&id).await,
        vec![("1".to_owned(), "already_delivered".to_owned())]
    );
    assert_eq!(d.espoo_answers()[&id], vec![409]);
    d.assert_no_payloads().await;
    d.assert_audit_verifies().await;
}

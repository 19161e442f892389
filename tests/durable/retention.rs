//! `[retention] transfers` (issue 15): finished transfers (delivered, failed, cancelled) are
//! deleted once they ended longer ago than it, with their timelines; unfinished ones are kept
//! whatever their age; audit entries stay, the log still verifies, and an inclusion proof of an
//! entry about a deleted transfer still checks against a signed checkpoint. `siirto retention
//! --dry-run` says what would go and deletes nothing; without it the command line deletes,
//! audited as the actor `cli`.

use std::time::Duration;

use siirto_devkit::peers::Behaviour;

use crate::helpers;
use crate::support::*;

const DAY: Duration = Duration::from_secs(24 * 3600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_transfers_past_retention_go_and_everything_else_stays() {
    let Some(d) = start(
        Backend::Sqlite,
        &[
            ("SIIRTO__RETENTION__TRANSFERS", "10d"),
            ("SIIRTO__DELIVERY__MAX_AGE", "30d"),
            ("SIIRTO__DELIVERY__PEER_DOWN_AFTER", "1000"),
        ],
    )
    .await
    else {
        return;
    };
    let delivered = d.submit().await;
    d.wait_status(&delivered, "delivered").await;
    d.espoo().set_behaviour(Behaviour::Status(422));
    let rejected = d.submit().await;
    d.wait_status(&rejected, "failed").await;
    d.espoo().set_behaviour(Behaviour::Status(503));
    let waiting = d.submit().await;
    d.wait_attempts(&waiting, 1).await;

    // Nine days on: nothing is old enough.
    d.advance(9 * DAY);
    assert_eq!(d.gateway().apply_retention("gateway").await.unwrap(), 0);
    // Eleven: the two finished ones go; the waiting one stays, however old.
    d.advance(2 * DAY);
    assert_eq!(d.gateway().apply_retention("gateway").await.unwrap(), 2);
    let store = &d.gateway().store;
    for id in [&delivered, &rejected] {
        assert!(store.transfer(id).await.unwrap().is_none(), "{id} deleted");
        assert!(
            store.steps(id).await.unwrap().is_empty(),
            "{id}'s timeline deleted"
        );
        let answer = d
            .bed
            .client("registry-operator")
            .unwrap()
            .get(&format!("/v1/transfers/{id}"), &[])
            .await
            .unwrap();
        assert_eq!(answer.status.as_u16(), 404);
    }
    assert_eq!(d.view(&waiting).await["status"], "delivering");
    assert_eq!(d.gateway().apply_retention("gateway").await.unwrap(), 0);

    // The audit keeps everything, once more with the deletion.
    let audit = helpers::audit(&d.bed).await;
    let purged: Vec<_> = audit
        .iter()
        .filter(|e| e.event.action == "retention.purged")
        .collect();
    assert_eq!(purged.len(), 1, "one entry for the batch");
    assert_eq!(purged[0].event.actor, "gateway");
    assert_eq!(
        purged[0].event.detail.get("deleted").map(String::as_str),
        Some("2")
    );
    assert_eq!(
        purged[0].event.detail.get("retention").map(String::as_str),
        Some("10d")
    );
    let about_delivered = audit
        .iter()
        .find(|e| e.event.transfer_id.as_deref() == Some(delivered.as_str()))
        .expect("audit entries of the deleted transfer are kept");
    d.assert_audit_verifies().await;
    // An inclusion proof of an entry about the deleted transfer checks.
    let gw = d.gateway();
    gw.trail.sync(&gw.store).await.unwrap();
    gw.trail
        .checkpoint_if_due(&gw.store, gw.now(), true)
        .await
        .unwrap();
    let op = d.bed.client("registry-operator").unwrap();
    let checkpoint = op.get("/v1/audit/checkpoint", &[]).await.unwrap().json();
    let note = checkpoint["note"].as_str().expect("note");
    let signed = gw
        .trail
        .checkpoint_verifier()
        .verify(note)
        .expect("checkpoint verifies");
    let proof = op
        .get(
            &format!(
                "/v1/audit/proof/inclusion?index={}&size={}",
                about_delivered.seq,
                signed.checkpoint().tree_size
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(proof.status.as_u16(), 200, "{}", proof.json());
    let doc = siirto_gateway::trail::ProofDocument::from_json(&proof.json()).expect("proof");
    siirto_gateway::trail::check_proof(&doc, signed.checkpoint(), None).expect("proof checks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn siirto_retention_says_what_would_go_then_deletes_it() {
    let Some(d) = start(Backend::Sqlite, &[]).await else {
        return;
    };
    let id = d.submit().await;
    d.wait_status(&id, "delivered").await;
    // The command line runs on the real clock: make the transfer three years old.
    d.gateway()
        .store
        .execute_raw(&format!(
            "UPDATE transfers SET updated_at = updated_at - {} WHERE id = '{id}'",
            3 * 365 * DAY.as_millis()
        ))
        .await
        .unwrap();
    let run = |dry: bool| {
        let mut cmd = std::process::Command::new(helpers::siirto_binary());
        cmd.args(["retention", "--config"]).arg(d.bed.config_path());
        if dry {
            cmd.arg("--dry-run");
        }
        let out = cmd.env("SIIRTO_LOG", "warn").output().expect("siirto runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said = run(true);
    assert!(
        said.starts_with("1 finished transfer(s) ended before "),
        "{said}"
    );
    assert!(
        said.contains("([retention] transfers = 730d) would be deleted"),
        "{said}"
    );
    assert!(
        d.gateway().store.transfer(&id).await.unwrap().is_some(),
        "dry run"
    );
    let said = run(false);
    assert!(
        said.starts_with("1 finished transfer(s) ended before "),
        "{said}"
    );
    assert!(d.gateway().store.transfer(&id).await.unwrap().is_none());
    let purged = helpers::audit(&d.bed)
        .await
        .into_iter()
        .find(|e| e.event.action == "retention.purged")
        .expect("audited");
    assert_eq!(purged.event.actor, "cli");
    d.assert_audit_verifies().await;
}

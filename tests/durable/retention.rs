//! `[retention] transfers` (issue 15): finished transfers (delivered, failed, cancelled) are
//! deleted once they ended longer ago than it, with their timelines; unfinished ones are kept
//! whatever their age; audit entries stay, the log still verifies, and an inclusion proof of an
//! entry about a deleted transfer still checks against a signed checkpoint. `siirto retention
//! --dry-run` says what would go and deletes nothing; without it the command line deletes,
//! audited as the actor `cli`. `[retention] audit` prunes whole checkpointed ranges of the
//! audit log: the rest (and every checkpoint) still verifies, proofs of kept entries still
//! check, also on an instance started afterwards; a log that does not verify is not pruned.

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

/// Forces a checkpoint over everything written so far and returns its size.
async fn checkpoint_now(d: &Durable) -> u64 {
    let gw = d.gateway();
    gw.trail.sync(&gw.store).await.unwrap();
    gw.trail
        .checkpoint_if_due(&gw.store, gw.now(), true)
        .await
        .unwrap();
    gw.store
        .latest_checkpoint()
        .await
        .unwrap()
        .unwrap()
        .tree_size
}

/// `GET path` as the registry operator: (status, body).
async fn operator_get(d: &Durable, path: &str) -> (u16, serde_json::Value) {
    let answer = d
        .bed
        .client("registry-operator")
        .unwrap()
        .get(path, &[])
        .await
        .unwrap();
    (answer.status.as_u16(), answer.json())
}

/// `[retention] audit` (issue 15): only whole checkpointed ranges older than it are pruned;
/// what stays verifiable afterwards is exactly what the README says.
async fn audit_retention_prunes_whole_checkpointed_ranges(backend: Backend) {
    let Some(d) = start(
        backend,
        &[
            ("SIIRTO__RETENTION__AUDIT", "30d"),
            ("SIIRTO__RETENTION__TRANSFERS", "100d"),
        ],
    )
    .await
    else {
        return;
    };
    let old = d.submit().await;
    d.wait_status(&old, "delivered").await;
    let first = checkpoint_now(&d).await;
    d.advance(20 * DAY);
    let young = d.submit().await;
    d.wait_status(&young, "delivered").await;
    let second = checkpoint_now(&d).await;
    assert!(second > first);

    // Day 20: nothing is 30 days old.
    assert_eq!(
        d.gateway().apply_audit_retention("gateway").await.unwrap(),
        None
    );
    // Day 35: the first transfer's range (up to the first checkpoint) is; the second's is not,
    // so the range up to the second checkpoint stays whole.
    d.advance(15 * DAY);
    let done = d
        .gateway()
        .apply_audit_retention("gateway")
        .await
        .unwrap()
        .expect("pruned");
    assert_eq!(done.before, first);
    assert_eq!(done.entries, first);
    let store = &d.gateway().store;
    let kept = store.audit_range(0, 100_000).await.unwrap();
    assert_eq!(
        kept.first().map(|e| e.seq),
        Some(first),
        "entries before {first} gone"
    );
    assert!(
        kept.iter()
            .all(|e| e.event.transfer_id.as_deref() != Some(old.as_str())),
        "the old transfer's entries are pruned"
    );
    let pruned = kept
        .iter()
        .find(|e| e.event.action == "retention.audit_pruned")
        .expect("the pruning is audited");
    assert_eq!(pruned.event.actor, "gateway");
    assert_eq!(
        pruned.event.detail.get("pruned_before"),
        Some(&first.to_string())
    );
    assert_eq!(
        pruned.event.detail.get("retention").map(String::as_str),
        Some("30d")
    );

    // The log verifies from what stands in for the pruned entries, every checkpoint with it.
    let gw = d.gateway();
    let outcome = gw.trail.verify_store(&gw.store).await.unwrap();
    let summary = outcome.result.expect("the pruned log verifies");
    assert_eq!(summary.pruned_before, first);
    // New entries chain on; a later checkpoint covers them.
    let after = d.submit().await;
    d.wait_status(&after, "delivered").await;
    let third = checkpoint_now(&d).await;
    d.assert_audit_verifies().await;

    // Proofs: a kept entry's inclusion proof checks against a signed checkpoint; a pruned
    // entry's is 410 `pruned`; consistency between kept sizes checks, from a pruned one 410.
    let about_young = kept
        .iter()
        .find(|e| e.event.transfer_id.as_deref() == Some(young.as_str()))
        .unwrap()
        .seq;
    let (status, checkpoint) = operator_get(&d, "/v1/audit/checkpoint").await;
    assert_eq!(status, 200);
    let signed = gw
        .trail
        .checkpoint_verifier()
        .verify(checkpoint["note"].as_str().unwrap())
        .unwrap();
    assert_eq!(signed.checkpoint().tree_size, third);
    let (status, proof) = operator_get(
        &d,
        &format!("/v1/audit/proof/inclusion?index={about_young}&size={third}"),
    )
    .await;
    assert_eq!(status, 200, "{proof}");
    let doc = siirto_gateway::trail::ProofDocument::from_json(&proof).unwrap();
    siirto_gateway::trail::check_proof(&doc, signed.checkpoint(), None).expect("proof checks");
    let (status, body) = operator_get(
        &d,
        &format!("/v1/audit/proof/inclusion?index=0&size={third}"),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (410, Some("pruned")),
        "{body}"
    );
    let (status, body) = operator_get(
        &d,
        &format!("/v1/audit/proof/consistency?from={second}&to={third}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    if first > 1 {
        let (status, body) = operator_get(
            &d,
            &format!("/v1/audit/proof/consistency?from={}&to={third}", first - 1),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (410, Some("pruned")),
            "{body}"
        );
    }

    // Another instance started on the same database (a restart) resumes from the base.
    let other = siirto_gateway::state::Gateway::open(
        d.bed.config.clone(),
        d.clock.clone(),
        std::sync::Arc::new(siirto_core::clock::SystemRandom::new()),
        siirto_devkit::testbed::build_info(),
    )
    .await
    .expect("second instance");
    assert_eq!(other.trail.sync(&other.store).await.unwrap(), third);
    assert_eq!(other.trail.status().root, gw.trail.status().root);
    let (_, proof, root) = other
        .trail
        .inclusion(&other.store, about_young, third)
        .await
        .unwrap();
    assert_eq!(root, signed.checkpoint().root_hash);
    assert!(!proof.is_empty());
    assert!(matches!(
        other.trail.inclusion(&other.store, 0, third).await,
        Err(siirto_gateway::trail::TrailError::Proof(
            siirto_core::audit::ProofError::Pruned { .. }
        ))
    ));
    // Nothing more is old enough.
    assert_eq!(
        d.gateway().apply_audit_retention("gateway").await.unwrap(),
        None
    );

    // A changed frontier is found by the verification, naming the pruned base.
    let mut base = store.audit_base().await.unwrap().expect("base stored");
    base.frontier[0][0] ^= 1;
    store
        .execute_raw(&format!("UPDATE audit_base SET base = '{}'", base.encode()))
        .await
        .unwrap();
    let outcome = gw.trail.verify_store(&gw.store).await.unwrap();
    let err = outcome.result.expect_err("a changed base does not verify");
    assert!(
        matches!(err, siirto_core::audit::VerifyError::PrunedBase { size, .. } if size == first),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_retention_prunes_whole_checkpointed_ranges_on_sqlite() {
    audit_retention_prunes_whole_checkpointed_ranges(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_retention_prunes_whole_checkpointed_ranges_on_postgresql() {
    audit_retention_prunes_whole_checkpointed_ranges(Backend::Postgres).await;
}

/// A log that does not verify is never pruned: that would erase the evidence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_does_not_verify_is_not_pruned() {
    let Some(d) = start(Backend::Sqlite, &[("SIIRTO__RETENTION__AUDIT", "30d")]).await else {
        return;
    };
    let id = d.submit().await;
    d.wait_status(&id, "delivered").await;
    let size = checkpoint_now(&d).await;
    d.gateway()
        .store
        .execute_raw("UPDATE audit SET actor = 'someone else' WHERE seq = 1")
        .await
        .unwrap();
    d.advance(40 * DAY);
    let err = d
        .gateway()
        .apply_audit_retention("gateway")
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("does not verify"), "{err}");
    let entries = d.gateway().store.audit_range(0, 100_000).await.unwrap();
    assert_eq!(entries.first().map(|e| e.seq), Some(0), "nothing pruned");
    assert!(entries.len() as u64 >= size);
    assert!(d.gateway().store.audit_base().await.unwrap().is_none());
}

/// `siirto retention` with `[retention] audit`: the dry run names the checkpoint it would prune
/// to and prunes nothing; the real run prunes, audited as `cli`, and `siirto audit verify`
/// still passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn siirto_retention_prunes_the_audit_log_from_the_command_line() {
    // The gateway's clock starts 40 days ago; the command line runs on the real clock.
    use siirto_core::clock::{Clock, SystemClock};
    let past = SystemClock.now().saturating_sub(40 * DAY);
    let Some(d) = start_at(Backend::Sqlite, &[], past).await else {
        return;
    };
    let id = d.submit().await;
    d.wait_status(&id, "delivered").await;
    let size = checkpoint_now(&d).await;
    let run = |args: &[&str]| {
        let out = std::process::Command::new(helpers::siirto_binary())
            .args(args)
            .arg("--config")
            .arg(d.bed.config_path())
            .env("SIIRTO__RETENTION__AUDIT", "30d")
            .env("SIIRTO_LOG", "warn")
            .output()
            .expect("siirto runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let said = run(&["retention", "--dry-run"]);
    assert!(
        said.contains(&format!(
            "{size} audit entr(y/ies) before the checkpoint of size {size} would be pruned ([retention] audit = 30d)"
        )),
        "{said}"
    );
    assert!(
        d.gateway().store.audit_base().await.unwrap().is_none(),
        "dry run"
    );
    let said = run(&["retention"]);
    assert!(
        said.contains(&format!("before the checkpoint of size {size} pruned")),
        "{said}"
    );
    let entries = helpers::audit(&d.bed).await;
    assert_eq!(entries.first().map(|e| e.seq), Some(size));
    let pruned = entries
        .iter()
        .find(|e| e.event.action == "retention.audit_pruned")
        .expect("audited");
    assert_eq!(pruned.event.actor, "cli");
    let said = run(&["audit", "verify"]);
    assert!(said.starts_with("audit log verifies"), "{said}");
    assert!(
        said.contains(&format!("entries before {size} pruned")),
        "{said}"
    );
}

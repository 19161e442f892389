//! Witnessed audit, the IO edge of `siirto_core::audit::witness`:
//! - as a witness, `POST /witness/add-checkpoint` ([`add_checkpoint`]): the decision, the
//!   compare-and-set of the stored latest checkpoint (committed before the cosignature is
//!   answered), audit `witness.conflict` on a rollback or split view;
//! - as a log, [`run`]: after each checkpoint, submits it to every `[[audit.witnesses]]`
//!   entry with a consistency proof from the size that witness last cosigned (learned from
//!   `409` answers too), keeps the cosignatures, retries witnesses that are down.
//!
//! Owns: these two loops of IO. Must not: decide (the core does) or write SQL (the store does).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use siirto_core::audit::witness::{
    AfterConflict, CosignatureVerifier, Cosigner, Refusal, SIZE_MEDIA_TYPE, Submission,
    after_conflict, decide, parse_size_body,
};
use siirto_core::audit::{AuditEvent, AuditSigningKey, CheckpointVerifier};
use siirto_core::clock::Timestamp;

use crate::config::Config;
use crate::state::Gateway;
use crate::store::StoredCosignature;

/// This gateway as a witness: its cosigner and the logs it witnesses, by origin.
#[derive(Debug)]
pub struct WitnessRole {
    pub cosigner: Cosigner,
    pub logs: HashMap<String, CheckpointVerifier>,
}

/// This gateway's witnesses (`[[audit.witnesses]]`) and the quorum it asks of them.
#[derive(Debug, Default)]
pub struct Witnesses {
    pub verifiers: Vec<CosignatureVerifier>,
    pub quorum: usize,
}

/// The witness key's name: `<gateway.id>/witness`.
pub fn witness_name(config: &Config) -> String {
    format!("{}/witness", config.gateway.id)
}

/// Reads `[witness]` (the key file) and `[[witness.logs]]`; `None` when no key is set.
pub fn witness_role(config: &Config) -> Result<Option<WitnessRole>, (String, String)> {
    let Some(path) = &config.witness.key else {
        return Ok(None);
    };
    let shown = path.display().to_string();
    let pem = std::fs::read_to_string(path).map_err(|e| (shown.clone(), e.to_string()))?;
    let key = AuditSigningKey::from_pkcs8_pem(&pem).map_err(|e| (shown.clone(), e.to_string()))?;
    let cosigner =
        Cosigner::new(key, &witness_name(config)).map_err(|e| (shown.clone(), e.to_string()))?;
    let mut logs = HashMap::new();
    for (i, log) in config.witness.logs.iter().enumerate() {
        let at = format!("witness.logs[{i}].key");
        let (_, public) = siirto_core::audit::AuditPublicKey::from_note_verifier_key(&log.key)
            .map_err(|e| (at.clone(), e.to_string()))?;
        let verifier =
            CheckpointVerifier::new(public, &log.origin).map_err(|e| (at, e.to_string()))?;
        logs.insert(log.origin.clone(), verifier);
    }
    Ok(Some(WitnessRole { cosigner, logs }))
}

/// Reads `[[audit.witnesses]]` and `witness_quorum` (checked by the config loader).
pub fn witnesses(config: &Config) -> Witnesses {
    let verifiers: Vec<CosignatureVerifier> = config
        .audit
        .witnesses
        .iter()
        .filter_map(|w| CosignatureVerifier::from_verifier_key(&w.key).ok())
        .collect();
    let quorum = config.audit.witness_quorum.map_or(verifiers.len(), |q| {
        usize::try_from(q).unwrap_or(usize::MAX)
    });
    Witnesses { verifiers, quorum }
}

/// An answer of the witness endpoint: status, content type, body.
pub type Answer = (u16, &'static str, String);

/// How many times a submission is decided again when another request changed the stored
/// state between the decision and the compare-and-set.
const CAS_ATTEMPTS: usize = 8;

/// `POST /witness/add-checkpoint` by `caller` (a participant with the `log` role).
pub async fn add_checkpoint(gw: &Gateway, caller: &str, body: &str) -> Answer {
    let Some(role) = gw.witness.as_ref() else {
        return plain(404, "this gateway witnesses no logs\n");
    };
    let submission = match Submission::parse(body) {
        Ok(s) => s,
        Err(refusal) => return refused(gw, caller, "", refusal).await,
    };
    let origin = submission.origin().to_owned();
    for _ in 0..CAS_ATTEMPTS {
        let stored = match gw.store.witnessed(&origin).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "witness state unreadable");
                return plain(503, "the witness state cannot be read now\n");
            }
        };
        let accepted = match decide(&submission, role.logs.get(&origin), stored) {
            Ok(a) => a,
            Err(refusal) => return refused(gw, caller, &origin, refusal).await,
        };
        let now = gw.now();
        match gw.store.witness_advance(&accepted, now).await {
            Ok(true) => {
                let timestamp = u64::try_from(now.secs()).unwrap_or(1);
                let cosignature = role.cosigner.cosign(&accepted.body, timestamp);
                if accepted.previous.map(|p| p.size) != Some(accepted.new.size) {
                    tracing::info!(origin, size = accepted.new.size, "checkpoint cosigned");
                }
                return (200, "text/plain; charset=utf-8", cosignature.line);
            }
            Ok(false) => continue,
            Err(e) => {
                tracing::error!(error = %e, "witness state not stored");
                return plain(503, "the witness state cannot be stored now\n");
            }
        }
    }
    plain(503, "the witness state kept changing; try again\n")
}

fn plain(status: u16, text: &str) -> Answer {
    (status, "text/plain; charset=utf-8", text.to_owned())
}

/// The answer to a refusal; a conflict is audited as `witness.conflict` and counted.
async fn refused(gw: &Gateway, caller: &str, origin: &str, refusal: Refusal) -> Answer {
    if let Refusal::NotLatest {
        latest,
        conflict: Some(conflict),
    } = &refusal
    {
        gw.metrics.witness_conflict();
        tracing::warn!(
            origin,
            latest,
            kind = conflict.as_str(),
            "conflicting checkpoint refused"
        );
        let mut event = AuditEvent::new(gw.now(), caller, "witness.conflict", conflict.as_str());
        event.detail.insert("origin".into(), origin.to_owned());
        event.detail.insert("role".into(), "witness".into());
        event
            .detail
            .insert("cosigned_size".into(), latest.to_string());
        audit(gw, event).await;
    }
    match refusal {
        Refusal::NotLatest { latest, .. } => (409, SIZE_MEDIA_TYPE, format!("{latest}\n")),
        other => {
            let status = other.status();
            (status, "text/plain; charset=utf-8", format!("{other}\n"))
        }
    }
}

async fn audit(gw: &Gateway, event: AuditEvent) {
    if let Err(e) = gw.store.append_audit(vec![event]).await {
        tracing::error!(error = %e, "audit entry not written");
    }
}

/// How often the log side looks for checkpoints its witnesses have not cosigned.
const ROUND: Duration = Duration::from_millis(500);
/// Resubmissions after `409` answers within one round, per witness.
const RESUBMITS: usize = 3;

/// The log side's background task: a [`submit_round`] every [`ROUND`] until shutdown.
pub async fn run(gw: Arc<Gateway>, mut shutdown: crate::server::Shutdown) {
    if gw.witnesses.verifiers.is_empty() {
        return;
    }
    if let Ok(peers) = gw.store.witness_peers().await {
        for p in peers {
            gw.metrics.set_witness_size(&p.witness, p.cosigned_size);
        }
    }
    loop {
        submit_round(&gw).await;
        tokio::select! {
            () = tokio::time::sleep(ROUND) => {}
            () = shutdown.wait() => return,
        }
    }
}

/// Submits the latest checkpoint to every witness that has not cosigned it (a witness that is
/// down is tried again next round).
pub async fn submit_round(gw: &Gateway) {
    let latest = match gw.store.latest_checkpoint().await {
        Ok(Some(row)) => row,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "no checkpoint to submit to witnesses");
            return;
        }
    };
    let have: Vec<String> = match gw.store.cosignatures(latest.tree_size).await {
        Ok(c) => c.into_iter().map(|c| c.witness).collect(),
        Err(_) => return,
    };
    let peers = gw.store.witness_peers().await.unwrap_or_default();
    for verifier in &gw.witnesses.verifiers {
        if have.iter().any(|w| w == verifier.name()) {
            continue;
        }
        let peer = peers.iter().find(|p| p.witness == verifier.name());
        // A witness that reported a conflict at or above this size is not asked again until
        // the log grows past it (what it would answer is known).
        if peer.is_some_and(|p| p.conflict_size.is_some_and(|c| c >= latest.tree_size)) {
            continue;
        }
        let old = peer.map_or(0, |p| p.cosigned_size);
        submit(gw, verifier, &latest.note, latest.tree_size, old).await;
    }
}

async fn submit(gw: &Gateway, verifier: &CosignatureVerifier, note: &str, size: u64, old: u64) {
    let name = verifier.name();
    let mut old = old.min(size);
    for _ in 0..RESUBMITS {
        let proof = if old == 0 || old == size {
            Vec::new()
        } else {
            match gw.trail.consistency(&gw.store, old, size).await {
                Ok((_, _, proof)) => proof,
                Err(e) => {
                    tracing::warn!(witness = name, old, size, error = %e, "no consistency proof for the witness");
                    return;
                }
            }
        };
        let body = Submission {
            old_size: old,
            proof,
            note: note.to_owned(),
        }
        .to_body();
        let (status, content_type, text) = match gw.outbound.add_checkpoint(name, body).await {
            Ok(answer) => answer,
            Err(e) => {
                tracing::debug!(witness = name, error = %e, "witness unreachable; retried next round");
                return;
            }
        };
        match status {
            200 => {
                let Some(body) = siirto_core::audit::witness::note_body(note) else {
                    return;
                };
                match verifier.find(body, &text) {
                    Ok(Some(c)) => {
                        let stored = StoredCosignature {
                            witness: c.witness,
                            timestamp: c.timestamp,
                            line: c.line,
                        };
                        if gw.store.insert_cosignature(size, &stored).await.is_ok()
                            && gw.store.set_witness_size(name, size).await.is_ok()
                        {
                            gw.metrics.set_witness_size(name, size);
                        }
                    }
                    Ok(None) | Err(_) => {
                        tracing::warn!(
                            witness = name,
                            size,
                            "the witness answered without a valid cosignature by its key"
                        );
                    }
                }
                return;
            }
            409 if content_type.starts_with(SIZE_MEDIA_TYPE) => {
                let Some(latest) = parse_size_body(&text) else {
                    tracing::warn!(witness = name, "unreadable 409 answer");
                    return;
                };
                match after_conflict(latest, old, size) {
                    AfterConflict::Resubmit { old: next } => {
                        let _ = gw.store.set_witness_size(name, next).await;
                        gw.metrics.set_witness_size(name, next);
                        old = next;
                    }
                    AfterConflict::Conflict => {
                        conflict_told(gw, name, latest, size).await;
                        return;
                    }
                }
            }
            other => {
                tracing::warn!(witness = name, status = other, answer = %text.trim_end(), size, old, "the witness refused the checkpoint");
                if other == 422 {
                    // The witness holds a different history of this log at `old`.
                    conflict_told(gw, name, old, size).await;
                }
                return;
            }
        }
    }
}

/// A witness told this log that what it cosigned conflicts with the log's checkpoint of `size`.
async fn conflict_told(gw: &Gateway, witness: &str, cosigned: u64, size: u64) {
    let now: Timestamp = gw.now();
    if gw
        .store
        .record_witness_conflict(witness, cosigned, now)
        .await
        .is_err()
    {
        return;
    }
    gw.metrics.witness_conflict();
    tracing::error!(
        witness,
        cosigned,
        size,
        "a witness cosigned a history of this log that conflicts with it"
    );
    let mut event = AuditEvent::new(now, "gateway", "witness.conflict", "told");
    event.detail.insert("witness".into(), witness.to_owned());
    event.detail.insert("role".into(), "log".into());
    event
        .detail
        .insert("cosigned_size".into(), cosigned.to_string());
    event.detail.insert("tree_size".into(), size.to_string());
    audit(gw, event).await;
}

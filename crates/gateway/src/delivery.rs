//! The outbox worker: claims due transfers from the store and takes each one step further —
//! fetch, prepare (validate, prune, convert, validate), deliver — persisting every new state
//! before acting on it.
//!
//! Owns: [`Worker::step`] (claim what is due and start it; the loop in [`run`] only waits between
//! steps) and the mapping of call outcomes to [`transfer::Event`]s. Decisions are `transfer::next`'s;
//! this module performs the effects and writes what happened (steps, audit entries, payload) with
//! each state change. A crash anywhere leaves a persisted state from which the step is repeated:
//! a repeated delivery carries the same `Idempotency-Key`, so the destination keeps one copy.
//!
//! Leases: every claim carries its own lease token (`"{instance}/{n}"`), and each of its writes
//! is guarded by that token, so a worker whose lease expired is fenced off even when its own
//! instance claimed the transfer again. A claim that finds an earlier lease never released
//! counts an *interrupted* attempt (the earlier worker recorded no outcome); the next write
//! audits each one (`source.fetch` / `destination.deliver` with outcome `interrupted`) and
//! counts it as a retryable failure against `delivery.max_attempts` and `delivery.max_age`
//! (the next attempt is made at once: the lease expiry was the wait). A transfer that keeps
//! stopping the gateway therefore fails as exhausted instead of being retried for ever.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::metrics::{Outcome, Step};
use crate::outbound::{CallError, Delivered, XroadTrace};
use crate::server::Shutdown;
use crate::state::Gateway;
use crate::store::{
    Applied, Guard, NewStep, PayloadChange, PeerCall, PeerNews, SealedBlob, StoreError,
    TransferChange, TransferRow,
};
use siirto_core::audit::AuditEvent;
use siirto_core::clock::{Timestamp, hex};
use siirto_core::consent::Basis;
use siirto_core::formats::{Format, WriteContext};
use siirto_core::peer_health::{CallOutcome, Change};
use siirto_core::pipeline::{self, PipelineError, Prepared};
use siirto_core::receipt::{ConsentRecord, Party, ReceiptClaims};
use siirto_core::scope::Scope;
use siirto_core::student_id::StudentId;
use siirto_core::transfer::{self, Event, Retry, Status, TransferState};

/// How long a worker waits for a free call slot of a destination before it gives the transfer
/// back to the store (and goes on with other work).
const SLOT_WAIT: Duration = Duration::from_millis(250);

/// Documents larger than this are prepared (or, for a check, read) on the blocking pool.
pub(crate) const BLOCKING_THRESHOLD: usize = 256 * 1024;

/// The actor name of the gateway's own actions in the audit trail.
pub const GATEWAY_ACTOR: &str = "gateway";

/// Claims due transfers and works on them, at most `slots` at a time.
pub struct Worker {
    gateway: Arc<Gateway>,
    slots: Arc<Semaphore>,
    /// Claims made so far: numbers each claim's lease token.
    claims: AtomicU64,
}

impl Worker {
    pub fn new(gateway: Arc<Gateway>) -> Worker {
        let n = gateway.config.delivery.workers.max(1);
        Worker {
            gateway,
            slots: Arc::new(Semaphore::new(n)),
            claims: AtomicU64::new(0),
        }
    }

    /// One step: waits for a free slot, then claims as many due transfers as there are free
    /// slots and starts working on each. Returns how many were claimed (0: nothing is due).
    pub async fn step(&self) -> Result<usize, StoreError> {
        if self.slots.available_permits() == 0 {
            // Wait for a slot rather than spin; then claim at once (the slot that freed up may
            // have more work waiting behind it).
            drop(self.slots.clone().acquire_owned().await);
        }
        let free = self.slots.available_permits().max(1);
        let gw = &self.gateway;
        let now = gw.now();
        let lease_until = now.saturating_add(gw.config.delivery.lease);
        let limit = u32::try_from(free).unwrap_or(u32::MAX);
        let token = format!(
            "{}/{}",
            gw.instance,
            self.claims.fetch_add(1, Ordering::Relaxed) + 1
        );
        // Transfers ready for a destination whose call slots are all taken wait in the store
        // rather than in a worker, so one slow destination cannot hold every worker.
        let busy: Vec<String> = gw
            .destination_slots
            .iter()
            .filter(|(_, slots)| slots.available_permits() == 0)
            .map(|(dst, _)| dst.clone())
            .collect();
        // Transfers older than `max_age` are taken whatever their peer's state, to be ended.
        let expired_before = Timestamp::from_millis(now.millis().saturating_sub(
            i64::try_from(gw.config.delivery.max_age.as_millis()).unwrap_or(i64::MAX),
        ));
        let claimed = gw
            .store
            .claim_skipping(&token, now, lease_until, limit, busy, expired_before)
            .await?;
        gw.note_peers_down(|set| {
            set.clear();
            set.extend(claimed.down.iter().cloned());
        });
        let claimed = claimed.transfers;
        let n = claimed.len();
        for row in claimed {
            let Ok(permit) = self.slots.clone().acquire_owned().await else {
                break;
            };
            let gw = self.gateway.clone();
            let span = tracing::info_span!("transfer", transfer_id = %row.id);
            tokio::spawn(
                async move {
                    let _permit = permit;
                    work(&gw, row).await;
                }
                .instrument(span),
            );
        }
        Ok(n)
    }

    /// Waits until every transfer this worker started has finished its current step.
    pub async fn drain(&self) {
        let n = u32::try_from(self.gateway.config.delivery.workers.max(1)).unwrap_or(u32::MAX);
        let _all = self.slots.acquire_many(n).await;
    }
}

/// Runs a worker until `shutdown`, then lets in-flight steps finish.
pub async fn run(gateway: Arc<Gateway>, mut shutdown: Shutdown) {
    let worker = Worker::new(gateway.clone());
    let idle = Duration::from_millis(200);
    loop {
        if shutdown.is_triggered() {
            break;
        }
        match worker.step().await {
            Ok(0) => {
                tokio::select! {
                    () = gateway.wake.notified() => {}
                    () = tokio::time::sleep(idle) => {}
                    () = shutdown.wait() => break,
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "claiming transfers failed; retrying shortly");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = shutdown.wait() => break,
                }
            }
        }
    }
    worker.drain().await;
}

/// Everything a change needs besides the state: collected while effects run.
struct Journal {
    steps: Vec<NewStep>,
    audit: Vec<AuditEvent>,
}

impl Journal {
    fn new() -> Self {
        Journal {
            steps: Vec::new(),
            audit: Vec::new(),
        }
    }

    fn step(&mut self, at: Timestamp, step: &str, outcome: &str, detail: Option<String>) {
        self.steps.push(NewStep {
            at,
            step: step.into(),
            outcome: outcome.into(),
            detail,
        });
    }
}

/// The facts of a transfer that every audit entry about it carries.
pub(crate) fn event_for(
    gw: &Gateway,
    row: &TransferRow,
    action: &str,
    outcome: &str,
) -> AuditEvent {
    let mut e = gw.event(GATEWAY_ACTOR, action, outcome);
    e.transfer_id = Some(row.id.clone());
    e.subject = siirto_core::audit::Pseudonym::parse(&row.subject_pseudonym).ok();
    e
}

async fn work(gw: &Gateway, row: TransferRow) {
    let started = Instant::now();
    if gw.retry_policy().is_expired(row.retry_from, gw.now()) {
        expire(gw, row).await;
        return;
    }
    match row.status {
        Status::Fetching => fetch(gw, row).await,
        Status::Delivering => deliver(gw, row, None).await,
        other => {
            // Only `fetching` and `delivering` are ever left for a worker; anything else means a
            // row was edited by hand. Leave it alone and say so.
            tracing::error!(status = %other, "claimed a transfer in a status no worker handles");
        }
    }
    gw.metrics.worker_step(started.elapsed());
}

fn subject_of(gw: &Gateway, row: &TransferRow) -> Option<StudentId> {
    let sealed = row.subject_sealed.as_ref()?;
    let bytes = gw.vault.open(&format!("subject:{}", row.id), sealed).ok()?;
    StudentId::parse(std::str::from_utf8(&bytes).ok()?).ok()
}

fn formats_of(gw: &Gateway, row: &TransferRow) -> Option<(Format, Format)> {
    let from = gw.config.directory.get(&row.src)?.endpoint.as_ref()?.format;
    let to = gw.config.directory.get(&row.dst)?.endpoint.as_ref()?.format;
    Some((from, to))
}

/// Applies `event` to `state`, recording it; returns the new state (or the old one when the
/// transition is impossible, which is logged).
fn advance(
    gw: &Gateway,
    state: &TransferState,
    event: Event,
) -> (TransferState, Vec<transfer::Effect>) {
    match transfer::next(
        state,
        event,
        &gw.retry_policy(),
        gw.now(),
        gw.random.as_ref(),
    ) {
        Ok(t) => (t.state, t.effects),
        Err(e) => {
            tracing::error!(error = %e, "impossible transition");
            (state.clone(), Vec::new())
        }
    }
}

/// The change that persists `state` (and what the journal collected).
fn change_for(
    gw: &Gateway,
    row: &TransferRow,
    state: &TransferState,
    journal: Journal,
) -> TransferChange {
    let now = gw.now();
    let mut change = TransferChange::new(&row.id, lease_of(row), now, state.status);
    // The journal of a claimed row audits its interrupted attempts first (`note_interrupted`).
    change.interrupted_audited = true;
    change.reason = state.reason;
    change.attempts = state.attempts;
    change.steps = journal.steps;
    change.audit = journal.audit;
    if state.status.is_terminal() {
        change.due_at = None;
        change.payload = PayloadChange::Delete;
        // A failed transfer may be retried by an operator and then needs the student id again.
        change.forget_subject = state.status != Status::Failed;
    } else {
        change.due_at = Some(state.next_attempt_at.unwrap_or(now));
    }
    if let Some(reason) = state.reason {
        let mut e = event_for(gw, row, "transfer.failed", reason.as_str());
        e.detail
            .insert("attempts".into(), state.attempts.to_string());
        change.audit.push(e);
        gw.metrics.transfer_ended(Outcome::Failed(reason), None);
    }
    change
}

/// The guard of a worker's writes: its claim's lease token.
fn lease_of(row: &TransferRow) -> Guard {
    match &row.lease_owner {
        Some(token) => Guard::Lease(token.clone()),
        // A claimed row always carries its token; should one not, nothing it writes may land.
        None => Guard::Lease(String::from("(no lease)")),
    }
}

/// Records the attempts interrupted before this claim (see the module documentation) in the
/// journal and counts them in `state`: one audit entry and one timeline step each, numbered
/// after the attempts already recorded. `document_sha256` is the hash of the payload an
/// interrupted delivery was sending. Returns `true` when they exhausted the retry limits:
/// `state` is then `failed` and no further attempt may be made.
fn note_interrupted(
    gw: &Gateway,
    row: &TransferRow,
    state: &mut TransferState,
    journal: &mut Journal,
    document_sha256: Option<[u8; 32]>,
) -> bool {
    if row.interrupted == 0 {
        return false;
    }
    let (step, action, peer_key, peer, failure) = match row.status {
        Status::Delivering => (
            Step::Deliver,
            "destination.deliver",
            "destination",
            &row.dst,
            Event::DeliveryFailed(Retry::Retryable),
        ),
        _ => (
            Step::Fetch,
            "source.fetch",
            "source",
            &row.src,
            Event::FetchFailed(Retry::Retryable),
        ),
    };
    let before_last = TransferState {
        attempts: state
            .attempts
            .saturating_add(row.interrupted.saturating_sub(1)),
        ..state.clone()
    };
    let now = gw.now();
    gw.metrics
        .attempts_interrupted(step, u64::from(row.interrupted));
    for _ in 0..row.interrupted {
        state.attempts = state.attempts.saturating_add(1);
        let attempt = state.attempts;
        let mut e = event_for(gw, row, action, "interrupted");
        e.document_sha256 = document_sha256;
        e.detail.insert(peer_key.into(), peer.clone());
        e.detail.insert("attempt".into(), attempt.to_string());
        e.detail.insert("status".into(), row.status.to_string());
        journal.audit.push(e);
        journal.step(
            now,
            step.as_str(),
            "interrupted",
            Some(format!(
                "attempt {attempt}: no outcome was recorded (the gateway stopped, or the attempt outlasted its lease)"
            )),
        );
    }
    // The last interrupted attempt decides, as a retryable failure would, whether another
    // attempt may be made.
    let (limits, _) = advance(gw, &before_last, failure);
    if limits.status == Status::Failed {
        tracing::warn!(interrupted = row.interrupted, status = %row.status, "interrupted attempts exhausted the retry limits");
        *state = limits;
        return true;
    }
    tracing::info!(interrupted = row.interrupted, status = %row.status, "earlier attempts were interrupted; trying again");
    false
}

/// Records why a call to the transfer's `role` (`source`, `destination`) failed in the attempt's
/// audit entry (`error`, and `tls_reason` for a TLS failure); returns the detail of its step.
///
/// Every failed call is also logged at warn, in the transfer's span, with the peer, the reason
/// (the TLS reason for a failed handshake: a certificate problem is retried like an outage but
/// must not look like one), the attempt and when the next one is due (`next` is the transfer's
/// state after the failure) — so that a peer that is down is seen long before the transfer runs
/// out of attempts. One line a minute per peer and role: the next one counts those left out
/// (`suppressed`). A failed handshake is counted in `siirto_outbound_tls_failures_total`.
fn call_failed(
    gw: &Gateway,
    role: &'static str,
    attempt: u32,
    error: &CallError,
    next: &TransferState,
    audit: &mut AuditEvent,
) -> String {
    audit.detail.insert("error".into(), error.to_string());
    let peer = error.participant();
    let tls = error.tls_failure();
    let warned = gw.call_warnings.note(
        (peer.to_owned(), role),
        || (String::from("(many participants)"), role),
        gw.now(),
    );
    if let Some((_, suppressed)) = warned {
        let next_attempt = match (next.status, next.next_attempt_at) {
            (Status::Failed, _) => format!(
                "none: the transfer failed ({})",
                next.reason.map_or("failed", |r| r.as_str())
            ),
            (_, Some(at)) => at.to_string(),
            (_, None) => "now".to_owned(),
        };
        let what = match (tls, role) {
            (Some(_), _) => "TLS handshake with a",
            (None, "source") => "fetch from a",
            (None, _) => "delivery to a",
        };
        tracing::warn!(
            participant = %peer,
            role,
            reason = tls.map_or(error.code(), |t| t.code()),
            attempt,
            next_attempt,
            suppressed,
            error = %error,
            "{what} {role} failed"
        );
    }
    let Some(reason) = tls else {
        return match error.answer_detail() {
            Some(said) => format!("attempt {attempt}: {said}"),
            None => format!("attempt {attempt}"),
        };
    };
    gw.metrics.outbound_tls_failure(peer, reason);
    audit
        .detail
        .insert("tls_reason".into(), reason.code().into());
    format!("attempt {attempt}: TLS handshake with {role} {peer} failed: {reason}")
}

/// Ends a transfer that reached `delivery.max_age` without a successful call (its peer stayed
/// down, or kept failing): failed as its step's retries would have ended it, audited, and
/// logged at warn with its id.
async fn expire(gw: &Gateway, row: TransferRow) {
    let mut state = row.state();
    let mut journal = Journal::new();
    if !note_interrupted(gw, &row, &mut state, &mut journal, None) {
        (state, _) = advance(gw, &state, Event::Expired);
    }
    let max_age = siirto_core::config::format_duration(gw.config.delivery.max_age);
    let peer = if row.status == Status::Delivering {
        &row.dst
    } else {
        &row.src
    };
    tracing::warn!(
        transfer_id = %row.id,
        participant = %peer,
        attempts = state.attempts,
        max_age = %max_age,
        "transfer reached max_age without a successful call; it failed"
    );
    journal.step(
        gw.now(),
        if row.status == Status::Delivering {
            "deliver"
        } else {
            "fetch"
        },
        "max_age_exceeded",
        Some(format!(
            "no successful call to {peer} within delivery.max_age ({max_age})"
        )),
    );
    let mut change = change_for(gw, &row, &state, journal);
    if let Some(failed) = change.audit.last_mut() {
        failed.detail.insert("max_age".into(), max_age);
    }
    persist(gw, change).await;
}

/// What a call's result tells about its peer: an answer of any kind shows it is there; a
/// failure that may pass counts towards marking it down.
fn peer_call(gw: &Gateway, participant: &str, answered: bool) -> PeerCall {
    PeerCall {
        participant: participant.to_owned(),
        outcome: if answered {
            CallOutcome::Answered
        } else {
            CallOutcome::FailedTransiently
        },
        policy: gw.health_policy(),
        jitter_millionths: gw.random.below(1_000_000),
    }
}

/// Logs a peer that went down or came back (with its waiting transfers), and notes it.
fn peer_news(gw: &Gateway, news: &PeerNews) {
    let now = gw.now();
    match news.change {
        Change::WentDown => {
            gw.note_peers_down(|set| {
                set.insert(news.participant.clone());
            });
            tracing::warn!(
                participant = %news.participant,
                failures = gw.config.delivery.peer_down_after,
                backlog = news.backlog,
                "participant is down: its transfers wait, one probe at a time looks for it"
            );
        }
        Change::CameBack { since } => {
            gw.note_peers_down(|set| {
                set.remove(&news.participant);
            });
            tracing::info!(
                participant = %news.participant,
                down_for = %siirto_core::config::format_duration(now.since(since)),
                backlog = news.backlog,
                "participant is back: its waiting transfers are due now"
            );
        }
        Change::Unchanged => {}
    }
}

async fn persist(gw: &Gateway, change: TransferChange) -> bool {
    let (status, reason) = (change.status, change.reason);
    match gw.store.apply(change).await {
        Ok(Applied::Done { peer, .. }) => {
            if let Some(news) = &peer {
                peer_news(gw, news);
            }
            match (status, reason) {
                (Status::Failed, Some(reason)) => tracing::warn!(
                    %status,
                    reason = reason.as_str(),
                    "transfer finished"
                ),
                (s, _) if s.is_terminal() => tracing::info!(%status, "transfer finished"),
                _ => {}
            }
            true
        }
        Ok(Applied::LeaseLost) => {
            tracing::info!("lease lost; another worker has this transfer");
            false
        }
        Err(e) => {
            // The lease will expire and the step will be taken again.
            tracing::warn!(error = %e, "persisting a transfer step failed");
            false
        }
    }
}

async fn fetch(gw: &Gateway, row: TransferRow) {
    let mut state = row.state();
    let mut journal = Journal::new();
    if note_interrupted(gw, &row, &mut state, &mut journal, None) {
        persist(gw, change_for(gw, &row, &state, journal)).await;
        return;
    }
    let (Some(subject), Some((from, to))) = (subject_of(gw, &row), formats_of(gw, &row)) else {
        tracing::error!("stored student id or participant formats unavailable; retrying later");
        journal.step(
            gw.now(),
            "fetch",
            "internal_error",
            Some("the stored student id could not be opened, or src/dst left the directory".into()),
        );
        let (next, _) = advance(gw, &state, Event::FetchFailed(Retry::Retryable));
        persist(gw, change_for(gw, &row, &next, journal)).await;
        return;
    };
    let attempt = state.attempts + 1;
    let mut xroad = XroadTrace::for_issue(&row.id);
    let result = if gw.is_omadata_source(&row.src) {
        crate::omadata::fetch(gw, &row, &subject).await
    } else {
        gw.outbound
            .fetch_record_traced(&row.src, &subject, &mut xroad)
            .await
    };
    // An answer its protocol cannot read (a SOAP envelope with a DTD, say) was fetched all
    // the same: it fails validation, as a document failing its schema does.
    let (result, unreadable) = match result {
        Err(CallError::InvalidAnswer {
            summary, answer, ..
        }) => (Ok(answer), Some(summary)),
        other => (other, None),
    };
    let now = gw.now();
    let (event, outcome) = match &result {
        Ok(_) => (Event::Fetched, "ok".to_owned()),
        Err(e) if e.code() == "source_not_found" => (Event::SourceNotFound, e.code().to_owned()),
        Err(e) if e.code() == "source_refused" => (Event::SourceRefused, e.code().to_owned()),
        Err(e) => (
            Event::FetchFailed(if e.retryable() {
                Retry::Retryable
            } else {
                Retry::Permanent
            }),
            e.code().to_owned(),
        ),
    };
    let mut fetched = event_for(gw, &row, "source.fetch", &outcome);
    fetched.actor = GATEWAY_ACTOR.into();
    fetched.detail.insert("source".into(), row.src.clone());
    fetched.detail.insert("attempt".into(), attempt.to_string());
    xroad.audit_into(&mut fetched.detail);
    let answered = result
        .as_ref()
        .map_or_else(CallError::peer_answered, |_| true);
    let source_call = peer_call(gw, &row.src, answered);
    let body = match result {
        Ok(body) => body,
        Err(e) => {
            let (next, _) = advance(gw, &state, event);
            let detail = call_failed(gw, "source", attempt, &e, &next, &mut fetched);
            journal.audit.push(fetched);
            journal.step(now, "fetch", &outcome, Some(detail));
            let mut change = change_for(gw, &row, &next, journal);
            change.peer = Some(source_call);
            persist(gw, change).await;
            return;
        }
    };
    let source_sha256 = siirto_core::vault::sha256(&body);
    fetched.document_sha256 = Some(source_sha256);
    journal.audit.push(fetched);
    journal.step(
        now,
        "fetch",
        "ok",
        Some(format!(
            "{} bytes, sha256 {}",
            body.len(),
            hex(&source_sha256)
        )),
    );
    (state, _) = advance(gw, &state, Event::Fetched);

    let scope = Scope::parse(&row.scope)
        .unwrap_or_else(|_| Scope::empty().with(siirto_core::scope::Category::Identity));
    let prepared = match unreadable {
        Some(summary) => Err(PipelineError::InvalidSource {
            format: from,
            summary,
        }),
        // The fetched bytes themselves (no copy): they hold the record's share of
        // `delivery.max_in_flight_bytes`, kept below until the delivery returns.
        None => prepare_document(gw, &row, body.clone(), from, to, subject.clone(), scope).await,
    };
    let now = gw.now();
    let prepared = match prepared {
        Ok(p) => p,
        Err(e) => {
            let (event, step, code) = match &e {
                PipelineError::InvalidSource { .. } => (
                    Event::ValidationFailed,
                    "validate",
                    "invalid_source_document",
                ),
                PipelineError::SubjectMismatch => {
                    (Event::SubjectMismatched, "convert", "subject_mismatch")
                }
                _ => (Event::ConversionFailed, "convert", "conversion_failed"),
            };
            if step == "convert" {
                journal.step(now, "validate", "ok", None);
                let mut v = event_for(gw, &row, "document.validate", "ok");
                v.detail.insert("format".into(), from.to_string());
                journal.audit.push(v);
                (state, _) = advance(gw, &state, Event::Validated);
            }
            journal.step(now, step, code, Some(e.to_string()));
            let mut audit = event_for(
                gw,
                &row,
                if step == "validate" {
                    "document.validate"
                } else {
                    "document.convert"
                },
                code,
            );
            audit.detail.insert("error".into(), e.to_string());
            journal.audit.push(audit);
            let (next, _) = advance(gw, &state, event);
            let mut change = change_for(gw, &row, &next, journal);
            change.peer = Some(source_call);
            persist(gw, change).await;
            return;
        }
    };
    journal.step(now, "validate", "ok", Some(format!("valid {from}")));
    let mut v = event_for(gw, &row, "document.validate", "ok");
    v.detail.insert("format".into(), from.to_string());
    v.document_sha256 = Some(prepared.source_sha256);
    journal.audit.push(v);
    (state, _) = advance(gw, &state, Event::Validated);
    journal.step(
        now,
        "convert",
        "ok",
        Some(format!("{from} → {to}, valid {to}")),
    );
    let mut c = event_for(gw, &row, "document.convert", "ok");
    c.document_sha256 = Some(prepared.document_sha256);
    c.detail.insert("from".into(), from.to_string());
    c.detail.insert("to".into(), to.to_string());
    if let Some(method) = prepared.signature_method {
        c.detail.insert("signature".into(), method.to_owned());
    }
    c.detail
        .insert("report".into(), prepared.report.to_string());
    journal.audit.push(c);
    (state, _) = advance(gw, &state, Event::Converted);

    // Write-ahead: the sealed document and the `delivering` status are stored before the
    // first delivery attempt; the lease is kept so this worker goes on at once — unless the
    // destination is down: then the transfer waits in the store with the others.
    let sealed = gw.vault.seal(
        &format!("payload:{}", row.id),
        &prepared.document,
        gw.random.as_ref(),
    );
    let destination_down = gw.is_down(&row.dst);
    let mut change = change_for(gw, &row, &state, journal);
    change.peer = Some(source_call);
    change.keep_lease = !destination_down;
    change.due_at = Some(if destination_down {
        gw.now()
    } else {
        gw.now().saturating_add(gw.config.delivery.lease)
    });
    change.source_sha256 = Some(hex(&prepared.source_sha256));
    change.report = Some(prepared.report.to_string());
    change.payload = PayloadChange::Put(SealedBlob {
        key_id: sealed.key_id,
        sealed: sealed.bytes,
        sha256: hex(&prepared.document_sha256),
    });
    if !persist(gw, change).await || destination_down {
        return;
    }
    let mut row = row;
    row.status = state.status;
    row.attempts = state.attempts;
    // What the receipt says was delivered comes from the report just written.
    row.report = Some(prepared.report.to_string());
    // Audited (and reset in the store) with the change just written.
    row.interrupted = 0;
    // The fetched record goes along: its reservation covers fetch, preparation and delivery.
    deliver(gw, row, Some((prepared, subject, body))).await;
}

async fn prepare_document(
    gw: &Gateway,
    row: &TransferRow,
    body: Bytes,
    from: Format,
    to: Format,
    subject: StudentId,
    scope: Scope,
) -> Result<Prepared, PipelineError> {
    let limits = pipeline::xml_limits(Some(&gw.config.limits));
    let json_limits = pipeline::json_limits(Some(&gw.config.limits));
    let context = WriteContext::new(gw.now()).with_source(row.src.clone());
    let small = body.len() <= BLOCKING_THRESHOLD;
    let documents = gw.documents.clone();
    let source = row.src.clone();
    let run = move |schemas: &pipeline::Schemas| {
        let task = pipeline::Task {
            from,
            to,
            subject: &subject,
            scope,
            limits: &limits,
            json_limits: &json_limits,
            context: &context,
            signatures: documents.signatures(&source),
        };
        pipeline::prepare(&body, schemas, task)
    };
    if small {
        return run(&gw.schemas);
    }
    gw.on_blocking_pool(run).await.unwrap_or_else(|e| {
        Err(PipelineError::ConversionFailed(format!(
            "preparation task failed: {e}"
        )))
    })
}

/// Delivers `row`'s record: the one just prepared from the fetched record (`ready`, with the
/// fetched bytes, held until the delivery call returns) or else the stored payload.
async fn deliver(gw: &Gateway, row: TransferRow, ready: Option<(Prepared, StudentId, Bytes)>) {
    let mut state = row.state();
    let mut journal = Journal::new();
    // What holds the record's share of `delivery.max_in_flight_bytes` until the delivery call
    // returns (and so before the outcome is stored): the fetched record, or a reservation of
    // the stored payload's size.
    let mut fetched = None;
    let mut reserved = None;
    let (document, subject) = match ready {
        Some((p, s, record)) => {
            fetched = Some(record);
            (p.document, Some(s))
        }
        None => match stored_payload(gw, &row, &mut reserved).await {
            Ok(Some(doc)) => (doc, subject_of(gw, &row)),
            Ok(None) => {
                // No room in the budget within the wait: give the transfer back to the store
                // (its record is stored), due at once, rather than call after the lease.
                let _ = note_interrupted(gw, &row, &mut state, &mut journal, None);
                tracing::info!(
                    "no room in delivery.max_in_flight_bytes for the stored record; the delivery waits"
                );
                let mut change = change_for(gw, &row, &state, journal);
                change.due_at = Some(gw.now());
                persist(gw, change).await;
                return;
            }
            Err(problem) => {
                // Failing anyway: whether the interrupted attempts exhausted the limits does
                // not matter.
                let _ = note_interrupted(gw, &row, &mut state, &mut journal, None);
                tracing::error!(problem = %problem, "stored payload unusable");
                journal.step(
                    gw.now(),
                    "deliver",
                    "conversion_failed",
                    Some(problem.clone()),
                );
                let mut e = event_for(gw, &row, "destination.deliver", "payload_unusable");
                e.detail.insert("error".into(), problem);
                journal.audit.push(e);
                let (next, _) = advance(gw, &state, Event::DeliveryFailed(Retry::Permanent));
                let mut next = next;
                next.reason = Some(transfer::FailureReason::ConversionFailed);
                persist(gw, change_for(gw, &row, &next, journal)).await;
                return;
            }
        },
    };
    let document_sha256 = siirto_core::vault::sha256(&document);
    if note_interrupted(gw, &row, &mut state, &mut journal, Some(document_sha256)) {
        persist(gw, change_for(gw, &row, &state, journal)).await;
        return;
    }
    let slots = gw.destination_slots.get(&row.dst);
    let waited = match slots {
        Some(s) => Some(tokio::time::timeout(SLOT_WAIT, s.clone().acquire_owned()).await),
        None => None,
    };
    let slot = match waited {
        Some(Ok(Ok(permit))) => Some(permit),
        Some(_) => {
            // Every call slot of this destination stayed taken: give the transfer back to the
            // store (its record is already stored), due at once; workers leave it there until
            // a slot frees up, and take other destinations' work meanwhile.
            gw.metrics.delivery_deferred(&row.dst);
            let mut change = change_for(gw, &row, &state, journal);
            change.due_at = Some(gw.now());
            persist(gw, change).await;
            return;
        }
        None => None,
    };
    let attempt = state.attempts + 1;
    let mut xroad = XroadTrace::for_issue(&row.id);
    let result = gw
        .outbound
        .deliver_traced(&row.dst, Bytes::from(document), &mut xroad)
        .await;
    drop((fetched, reserved));
    let was_full = slots.is_some_and(|s| s.available_permits() == 0);
    drop(slot);
    if was_full {
        // Transfers to this destination were left in the store while it was full.
        gw.wake.notify_one();
    }
    let now = gw.now();
    let outcome = match &result {
        Ok(Delivered::Stored) => "delivered",
        Ok(Delivered::AlreadyDelivered) => "already_delivered",
        Err(e) => e.code(),
    };
    let mut attempt_event = event_for(gw, &row, "destination.deliver", outcome);
    attempt_event.document_sha256 = Some(document_sha256);
    attempt_event
        .detail
        .insert("destination".into(), row.dst.clone());
    attempt_event
        .detail
        .insert("attempt".into(), attempt.to_string());
    xroad.audit_into(&mut attempt_event.detail);
    let event = match &result {
        Ok(_) => Event::Delivered,
        Err(e) => Event::DeliveryFailed(if e.retryable() {
            Retry::Retryable
        } else {
            Retry::Permanent
        }),
    };
    (state, _) = advance(gw, &state, event);
    let detail = match &result {
        Ok(_) => format!("attempt {attempt}"),
        Err(e) => call_failed(gw, "destination", attempt, e, &state, &mut attempt_event),
    };
    journal.audit.push(attempt_event);
    journal.step(now, "deliver", outcome, Some(detail));
    let answered = result
        .as_ref()
        .map_or_else(CallError::peer_answered, |_| true);
    let mut change = change_for(gw, &row, &state, journal);
    change.peer = Some(peer_call(gw, &row.dst, answered));
    if state.status == Status::Delivered {
        let mut done = event_for(gw, &row, "transfer.delivered", "ok");
        done.document_sha256 = Some(document_sha256);
        done.detail.insert("destination".into(), row.dst.clone());
        change.audit.push(done);
        change.document_sha256 = Some(hex(&document_sha256));
        if let (Some(subject), Ok(scope)) = (subject, Scope::parse(&row.scope)) {
            let claims = ReceiptClaims {
                issuer: gw.config.gateway.id.clone(),
                transfer_id: row.id.clone(),
                subject,
                source: party(gw, &row.src),
                destination: party(gw, &row.dst),
                purpose: row.purpose.clone(),
                scope: delivered_scope(&row, scope),
                document_sha256,
                issued_at: now,
                audit_leaf_index: 0,
                basis: row.basis,
                statutory_law: match row.basis {
                    Basis::Statutory => gw
                        .config
                        .directory
                        .get(&row.dst)
                        .and_then(|p| p.statutory.as_ref())
                        .map(|s| s.law.clone()),
                    Basis::Consent => None,
                },
                consented_at: row.consented_at,
                authorization_jti: Some(row.jti.clone()),
                consent: row.consent.as_ref().and_then(|c| {
                    Some(ConsentRecord {
                        sha256: siirto_core::clock::unhex(&c.sha256)?.try_into().ok()?,
                        version: c.version.clone(),
                        lang: c.lang,
                    })
                }),
                guardian: row.guardian_pseudonym.is_some(),
                consent_given_at: gw.is_omadata_source(&row.src).then(|| "koski".to_owned()),
            };
            let key = gw.audit_key.clone();
            let (vault, random) = (gw.vault.clone(), gw.random.clone());
            change.receipt = Some(Box::new(move |leaf| {
                let mut claims = claims;
                claims.audit_leaf_index = leaf;
                let token = siirto_core::receipt::sign_receipt(&claims, &key);
                siirto_core::receipt::seal_receipt(
                    &vault,
                    &claims.transfer_id,
                    &token,
                    random.as_ref(),
                )
            }));
        }
        gw.metrics
            .transfer_ended(Outcome::Delivered, Some(now.since(row.created_at)));
    }
    persist(gw, change).await;
}

/// A participant as the receipt names it: its id and its name from the directory.
fn party(gw: &Gateway, id: &str) -> Party {
    Party {
        id: id.to_owned(),
        name: gw.config.directory.get(id).and_then(|p| p.name.clone()),
    }
}

/// The categories the destination received: those of the authorized scope that the
/// conversion report found in the delivered document (`categories`); the whole scope when the
/// report does not say.
fn delivered_scope(row: &TransferRow, authorized: Scope) -> Scope {
    let found = row
        .report
        .as_deref()
        .and_then(|r| serde_json::from_str::<serde_json::Value>(r).ok())
        .and_then(|r| {
            r.get("categories")?
                .as_array()?
                .iter()
                .map(|c| c.as_str().and_then(siirto_core::scope::Category::parse))
                .collect::<Option<Vec<_>>>()
        });
    match found {
        Some(categories) => categories
            .into_iter()
            .filter(|c| authorized.contains(*c))
            .collect(),
        None => authorized,
    }
}

/// The stored payload of `row`, opened; its size (the sealed blob's, a little more) is
/// reserved in the record budget into `reservation` before it is opened. `None` when the
/// budget had no room for it within [`crate::outbound::Outbound::budget_wait`].
async fn stored_payload(
    gw: &Gateway,
    row: &TransferRow,
    reservation: &mut Option<crate::budget::Reservation>,
) -> Result<Option<Vec<u8>>, String> {
    let blob = gw
        .store
        .payload(&row.id)
        .await
        .map_err(|e| format!("reading the stored payload failed: {e}"))?
        .ok_or_else(|| "no stored payload for a transfer waiting for delivery".to_owned())?;
    if let Some(budget) = gw.outbound.budget() {
        let wait = gw.outbound.budget_wait();
        match tokio::time::timeout(wait, budget.reserve(blob.sealed.len())).await {
            Ok(r) => *reservation = Some(r),
            Err(_) => return Ok(None),
        }
    }
    let plain = gw
        .vault
        .open(&format!("payload:{}", row.id), &blob.sealed)
        .map_err(|e| format!("stored payload cannot be opened: {e}"))?;
    Ok(Some(plain))
}

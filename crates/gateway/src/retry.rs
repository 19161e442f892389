//! Operator retries of failed transfers: one (`POST /v1/transfers/{id}/retry`), or every failed
//! transfer matching a filter (`POST /v1/transfers/retry?reason=&src=&dst=`, and
//! `siirto transfers retry` on the gateway's host). One decision serves all three: a failed
//! transfer that still holds its sealed student id starts over from the source, its age counted
//! from the retry; each retry is one audit entry (`transfer.retried`, with the previous reason)
//! and one step on its timeline. It must not decide anything about the transfer's path: that is
//! `siirto_core::transfer`'s.

use std::sync::Arc;

use siirto_core::audit::{AuditEvent, Pseudonym};
use siirto_core::clock::{Random, Timestamp};
use siirto_core::identity::Directory;
use siirto_core::transfer::{self, Event, FailureReason, RetryPolicy, Status};

use crate::http::error::{ApiError, ErrorCode};
use crate::store::{
    Decide, Guard, Modified, NewStep, Store, StoreError, TransferChange, TransferRow,
};

/// Most transfers one bulk retry takes (`limit`'s ceiling).
pub const MAX_BULK: u32 = 10_000;
/// `limit` when none is given.
pub const DEFAULT_BULK: u32 = 1_000;

/// Which failed transfers a bulk retry takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryFilter {
    pub reason: FailureReason,
    pub src: Option<String>,
    pub dst: Option<String>,
    pub limit: u32,
}

impl RetryFilter {
    /// The filter from its parts as given (query parameters, command-line options): `reason`
    /// is required and must be a failure reason, `src` and `dst` participants of `directory`,
    /// `limit` a number from 1 to [`MAX_BULK`]. The error names the part that is wrong.
    pub fn parse(
        directory: &Directory,
        reason: Option<&str>,
        src: Option<String>,
        dst: Option<String>,
        limit: Option<&str>,
    ) -> Result<RetryFilter, String> {
        let reason =
            reason.ok_or("reason is required (e.g. reason=delivery_attempts_exhausted)")?;
        let reason = FailureReason::parse(reason)
            .ok_or_else(|| format!("reason: `{reason}` is not a failure reason"))?;
        for (key, value) in [("src", &src), ("dst", &dst)] {
            if let Some(v) = value
                && directory.get(v).is_none()
            {
                return Err(format!("{key}: `{v}` is not a participant"));
            }
        }
        let limit = match limit {
            None => DEFAULT_BULK,
            Some(v) => v
                .parse()
                .ok()
                .filter(|n| (1..=MAX_BULK).contains(n))
                .ok_or_else(|| format!("limit: `{v}` is not a number from 1 to {MAX_BULK}"))?,
        };
        Ok(RetryFilter {
            reason,
            src,
            dst,
            limit,
        })
    }
}

/// What a bulk retry did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkOutcome {
    /// Transfers started over.
    pub retried: Vec<String>,
    /// Transfers matching the filter that were not retried, with the refusal's code (e.g.
    /// `not_retryable`: the student id was already forgotten).
    pub skipped: Vec<(String, &'static str)>,
    /// More failed transfers match than `limit` took.
    pub more: bool,
}

/// The decision of one retry by `actor` at `now`; `via` says how it was asked for
/// (`api`, `bulk`, `cli`, `operator_page`), in the audit entry.
pub fn decision(
    policy: RetryPolicy,
    random: Arc<dyn Random>,
    actor: String,
    now: Timestamp,
    via: &'static str,
) -> Decide<ApiError> {
    Box::new(
        move |row: &TransferRow| -> Result<TransferChange, ApiError> {
            if row.status != Status::Failed {
                return Err(ApiError::new(
                    ErrorCode::NotFailed,
                    format!(
                        "only failed transfers can be retried; this one is {}",
                        row.status
                    ),
                ));
            }
            if row.subject_sealed.is_none() {
                return Err(ApiError::new(
                    ErrorCode::NotRetryable,
                    "the transfer no longer holds what a retry needs",
                ));
            }
            let t = transfer::next(
                &row.state(),
                Event::OperatorRetry,
                &policy,
                now,
                random.as_ref(),
            )
            .map_err(|e| ApiError::new(ErrorCode::InvalidTransition, e.to_string()))?;
            let mut change = TransferChange::new(&row.id, Guard::Any, now, t.state.status);
            change.due_at = Some(now);
            change.retry_from = Some(t.state.created_at);
            let mut event = AuditEvent::new(now, actor.clone(), "transfer.retried", "ok");
            event.transfer_id = Some(row.id.clone());
            event.subject = Pseudonym::parse(&row.subject_pseudonym).ok();
            if let Some(r) = row.reason {
                event.detail.insert("previous_reason".into(), r.to_string());
            }
            if via != "api" {
                event.detail.insert("via".into(), via.into());
            }
            change.audit.push(event);
            change.steps.push(NewStep {
                at: now,
                step: "retry".into(),
                outcome: "ok".into(),
                detail: Some(format!("retried by operator {actor}")),
            });
            Ok(change)
        },
    )
}

/// Retries every failed transfer matching `filter` (oldest first, at most `filter.limit`),
/// each in its own transaction with its own audit entry, as `actor`.
pub async fn bulk(
    store: &Store,
    filter: &RetryFilter,
    policy: RetryPolicy,
    random: Arc<dyn Random>,
    actor: &str,
    now: Timestamp,
    via: &'static str,
) -> Result<BulkOutcome, StoreError> {
    let limit = filter.limit.clamp(1, MAX_BULK);
    let mut ids = store
        .failed_transfers(
            filter.reason,
            filter.src.as_deref(),
            filter.dst.as_deref(),
            limit + 1,
        )
        .await?;
    let more = ids.len() > limit as usize;
    ids.truncate(limit as usize);
    let mut outcome = BulkOutcome {
        more,
        ..BulkOutcome::default()
    };
    for id in ids {
        let decide = decision(policy, random.clone(), actor.to_owned(), now, via);
        match store.modify(&id, decide).await? {
            Modified::Done(_) => outcome.retried.push(id),
            Modified::Refused(e) => outcome.skipped.push((id, e.code.as_str())),
            // Deleted meanwhile: nothing to retry.
            Modified::NotFound => {}
        }
    }
    Ok(outcome)
}

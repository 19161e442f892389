//! The transfer state machine: status, failure reasons, and the pure transition function.
//!
//! Owns: [`Status`], [`FailureReason`], [`TransferState`], [`Event`] and [`next`], which maps a
//! state and an event to the new state and the [`Effect`]s the worker must carry out. It does no
//! IO: the worker (`siirto_gateway::delivery`) persists the new state *before* acting on its effects, so a crash
//! at any point leaves a state from which the same step is simply taken again.
//!
//! The path of a transfer:
//! `accepted` → `fetching` → (`validating` → `converting`, in memory) → `delivering` → `delivered`,
//! with `failed` (always with a reason) and `cancelled` as the other ends. Fetch and delivery
//! failures that may pass (timeouts, resets, 5xx) are retried with backoff in the same status.

use std::fmt;
use std::time::Duration;

use crate::clock::{Random, Timestamp};

/// Transfer status values of CONTRACT.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Accepted,
    Fetching,
    Validating,
    Converting,
    Delivering,
    Delivered,
    Failed,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 8] = [
        Status::Accepted,
        Status::Fetching,
        Status::Validating,
        Status::Converting,
        Status::Delivering,
        Status::Delivered,
        Status::Failed,
        Status::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Accepted => "accepted",
            Status::Fetching => "fetching",
            Status::Validating => "validating",
            Status::Converting => "converting",
            Status::Delivering => "delivering",
            Status::Delivered => "delivered",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// No further transition happens on its own from a terminal status.
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Delivered | Status::Failed | Status::Cancelled)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a transfer failed (`"reason"` in the API).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureReason {
    SourceUnavailable,
    SourceNotFound,
    /// The source answered with a permanent refusal (a 4xx, a SOAP Client fault).
    SourceRefused,
    InvalidSourceDocument,
    SubjectMismatch,
    ConversionFailed,
    DestinationRejected,
    DeliveryAttemptsExhausted,
}

impl FailureReason {
    pub const ALL: [FailureReason; 8] = [
        FailureReason::SourceUnavailable,
        FailureReason::SourceNotFound,
        FailureReason::SourceRefused,
        FailureReason::InvalidSourceDocument,
        FailureReason::SubjectMismatch,
        FailureReason::ConversionFailed,
        FailureReason::DestinationRejected,
        FailureReason::DeliveryAttemptsExhausted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::SourceUnavailable => "source_unavailable",
            FailureReason::SourceNotFound => "source_not_found",
            FailureReason::SourceRefused => "source_refused",
            FailureReason::InvalidSourceDocument => "invalid_source_document",
            FailureReason::SubjectMismatch => "subject_mismatch",
            FailureReason::ConversionFailed => "conversion_failed",
            FailureReason::DestinationRejected => "destination_rejected",
            FailureReason::DeliveryAttemptsExhausted => "delivery_attempts_exhausted",
        }
    }

    pub fn parse(s: &str) -> Option<FailureReason> {
        FailureReason::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the state machine needs to know about a transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferState {
    pub status: Status,
    pub reason: Option<FailureReason>,
    /// Attempts made at the current network step (fetch or delivery); reset when the step changes.
    pub attempts: u32,
    /// When the next attempt is due (retry wait); `None` when due now.
    pub next_attempt_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

impl TransferState {
    pub fn new(created_at: Timestamp) -> Self {
        TransferState {
            status: Status::Accepted,
            reason: None,
            attempts: 0,
            next_attempt_at: None,
            created_at,
        }
    }
}

/// Whether a failed call may succeed if tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Timeouts, resets, 5xx: try again later.
    Retryable,
    /// A definite answer (404, 4xx, invalid document): do not try again.
    Permanent,
}

/// Something that happened to a transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A worker took the transfer to work on.
    Claimed,
    /// The source answered with a document.
    Fetched,
    /// The source said it does not know the student.
    SourceNotFound,
    /// The source refused the request for good (its answer says retrying cannot help).
    SourceRefused,
    /// The source could not be reached or answered with something other than 200/404.
    FetchFailed(Retry),
    /// The document was valid against the source schema.
    Validated,
    /// The document was not valid XML for the source schema.
    ValidationFailed,
    /// The document is about someone else.
    SubjectMismatched,
    /// The document was pruned, converted and the result validated.
    Converted,
    /// Conversion or validation of the converted document failed.
    ConversionFailed,
    /// The destination took the document (2xx, or 409 "already have it").
    Delivered,
    /// The destination refused (4xx other than 409), or could not be reached.
    DeliveryFailed(Retry),
    /// The submitter or an operator cancelled.
    Cancel,
    /// An operator asked for a failed transfer to be tried again.
    OperatorRetry,
    /// The transfer reached `max_age` while waiting (its peer was down): no further attempt.
    Expired,
}

/// What the worker must do after persisting the new state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Fetch from the source (now or at `next_attempt_at`).
    Fetch,
    /// Validate the fetched document.
    Validate,
    /// Prune, convert and validate the output.
    Convert,
    /// Deliver the stored payload (now or at `next_attempt_at`).
    Deliver,
    /// Remove the stored payload: the transfer reached an end.
    DeletePayload,
    /// Issue the signed receipt.
    IssueReceipt,
}

/// Limits on retrying a network step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// `None`: attempts are not counted against a limit; `max_age` ends the retries.
    pub max_attempts: Option<u32>,
    pub max_age: Duration,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// Whether a transfer whose retry clock started at `started` (acceptance, or an operator's
    /// retry) is past `max_age` at `now`.
    pub fn is_expired(&self, started: Timestamp, now: Timestamp) -> bool {
        now.since(started) >= self.max_age
    }

    /// Exponential backoff with full jitter: a uniformly random delay in
    /// `[0, min(max_backoff, initial_backoff · 2^(attempt-1))]` (linkerd2-proxy's `exp-backoff`).
    pub fn backoff(&self, attempt: u32, random: &dyn Random) -> Duration {
        let shift = attempt.saturating_sub(1).min(32);
        let base = u64::try_from(self.initial_backoff.as_millis()).unwrap_or(u64::MAX);
        let cap = u64::try_from(self.max_backoff.as_millis()).unwrap_or(u64::MAX);
        let ceiling = base.saturating_mul(1u64 << shift).min(cap);
        Duration::from_millis(random.below(ceiling.saturating_add(1)))
    }
}

/// The result of a transition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub state: TransferState,
    pub effects: Vec<Effect>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {event:?} is not possible in status `{status}`")]
pub struct InvalidTransition {
    pub status: Status,
    pub event: Event,
}

/// The transition function. Pure: time and randomness are arguments.
pub fn next(
    state: &TransferState,
    event: Event,
    policy: &RetryPolicy,
    now: Timestamp,
    random: &dyn Random,
) -> Result<Transition, InvalidTransition> {
    use Status as S;
    let invalid = || InvalidTransition {
        status: state.status,
        event: event.clone(),
    };
    let to = |status: Status, effects: Vec<Effect>| Transition {
        state: TransferState {
            status,
            reason: None,
            attempts: if status == state.status {
                state.attempts
            } else {
                0
            },
            next_attempt_at: None,
            created_at: state.created_at,
        },
        effects,
    };
    let fail = |reason: FailureReason| Transition {
        state: TransferState {
            status: S::Failed,
            reason: Some(reason),
            attempts: state.attempts,
            next_attempt_at: None,
            created_at: state.created_at,
        },
        effects: vec![Effect::DeletePayload],
    };
    // A failed network attempt: wait and retry in the same status, or give up.
    let retry_or = |exhausted: FailureReason| {
        let attempts = state.attempts.saturating_add(1);
        let delay = policy.backoff(attempts, random);
        let due = now.saturating_add(delay);
        let too_old = due.since(state.created_at) >= policy.max_age;
        if policy.max_attempts.is_some_and(|max| attempts >= max) || too_old {
            let mut t = fail(exhausted);
            t.state.attempts = attempts;
            t
        } else {
            Transition {
                state: TransferState {
                    status: state.status,
                    reason: None,
                    attempts,
                    next_attempt_at: Some(due),
                    created_at: state.created_at,
                },
                effects: vec![if state.status == S::Fetching {
                    Effect::Fetch
                } else {
                    Effect::Deliver
                }],
            }
        }
    };

    let transition = match (state.status, &event) {
        (S::Accepted, Event::Claimed) => to(S::Fetching, vec![Effect::Fetch]),
        (S::Fetching, Event::Claimed) => {
            let mut t = to(S::Fetching, vec![Effect::Fetch]);
            t.state.attempts = state.attempts;
            t
        }
        (S::Delivering, Event::Claimed) => {
            let mut t = to(S::Delivering, vec![Effect::Deliver]);
            t.state.attempts = state.attempts;
            t
        }
        (S::Fetching, Event::Fetched) => to(S::Validating, vec![Effect::Validate]),
        (S::Fetching, Event::SourceNotFound) => fail(FailureReason::SourceNotFound),
        (S::Fetching, Event::SourceRefused) => fail(FailureReason::SourceRefused),
        (S::Fetching, Event::FetchFailed(Retry::Permanent)) => {
            fail(FailureReason::SourceUnavailable)
        }
        (S::Fetching, Event::FetchFailed(Retry::Retryable)) => {
            retry_or(FailureReason::SourceUnavailable)
        }
        (S::Validating, Event::Validated) => to(S::Converting, vec![Effect::Convert]),
        (S::Validating, Event::ValidationFailed) => fail(FailureReason::InvalidSourceDocument),
        (S::Converting, Event::Converted) => to(S::Delivering, vec![Effect::Deliver]),
        (S::Converting, Event::SubjectMismatched) => fail(FailureReason::SubjectMismatch),
        (S::Converting, Event::ConversionFailed) => fail(FailureReason::ConversionFailed),
        (S::Delivering, Event::Delivered) => {
            let mut t = to(
                S::Delivered,
                vec![Effect::DeletePayload, Effect::IssueReceipt],
            );
            t.state.attempts = state.attempts.saturating_add(1);
            t
        }
        (S::Delivering, Event::DeliveryFailed(Retry::Permanent)) => {
            let mut t = fail(FailureReason::DestinationRejected);
            t.state.attempts = state.attempts.saturating_add(1);
            t
        }
        (S::Delivering, Event::DeliveryFailed(Retry::Retryable)) => {
            retry_or(FailureReason::DeliveryAttemptsExhausted)
        }
        (S::Fetching, Event::Expired) => fail(FailureReason::SourceUnavailable),
        (S::Delivering, Event::Expired) => fail(FailureReason::DeliveryAttemptsExhausted),
        (s, Event::Cancel) if !s.is_terminal() => Transition {
            state: TransferState {
                status: S::Cancelled,
                reason: None,
                attempts: state.attempts,
                next_attempt_at: None,
                created_at: state.created_at,
            },
            effects: vec![Effect::DeletePayload],
        },
        // An operator retry starts the transfer over from the source: the payload was deleted
        // when it failed, and the age limit counts from the retry.
        (S::Failed, Event::OperatorRetry) => Transition {
            state: TransferState {
                status: S::Accepted,
                reason: None,
                attempts: 0,
                next_attempt_at: None,
                created_at: now,
            },
            effects: vec![],
        },
        _ => return Err(invalid()),
    };
    Ok(transition)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SeededRandom;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: Some(3),
            max_age: Duration::from_secs(3600),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }

    fn state(status: Status) -> TransferState {
        TransferState {
            status,
            ..TransferState::new(Timestamp::from_secs(1000))
        }
    }

    fn step(s: &TransferState, e: Event) -> Result<Transition, InvalidTransition> {
        next(
            s,
            e,
            &policy(),
            Timestamp::from_secs(1001),
            &SeededRandom::new(1),
        )
    }

    fn all_events() -> Vec<Event> {
        vec![
            Event::Claimed,
            Event::Fetched,
            Event::SourceNotFound,
            Event::SourceRefused,
            Event::FetchFailed(Retry::Retryable),
            Event::FetchFailed(Retry::Permanent),
            Event::Validated,
            Event::ValidationFailed,
            Event::SubjectMismatched,
            Event::Converted,
            Event::ConversionFailed,
            Event::Delivered,
            Event::DeliveryFailed(Retry::Retryable),
            Event::DeliveryFailed(Retry::Permanent),
            Event::Cancel,
            Event::OperatorRetry,
            Event::Expired,
        ]
    }

    #[test]
    fn happy_path() {
        let mut s = state(Status::Accepted);
        let expected = [
            (Event::Claimed, Status::Fetching, vec![Effect::Fetch]),
            (Event::Fetched, Status::Validating, vec![Effect::Validate]),
            (Event::Validated, Status::Converting, vec![Effect::Convert]),
            (Event::Converted, Status::Delivering, vec![Effect::Deliver]),
            (
                Event::Delivered,
                Status::Delivered,
                vec![Effect::DeletePayload, Effect::IssueReceipt],
            ),
        ];
        for (event, status, effects) in expected {
            let t = step(&s, event).unwrap();
            assert_eq!(t.state.status, status);
            assert_eq!(t.effects, effects);
            s = t.state;
        }
        assert_eq!(s.attempts, 1);
    }

    /// Every (status, event) pair: either a defined transition or an InvalidTransition, and
    /// terminal statuses accept nothing but an operator retry of a failure.
    #[test]
    fn exhaustive_table() {
        use Status as S;
        let allowed: &[(Status, &str)] = &[
            (S::Accepted, "Claimed"),
            (S::Accepted, "Cancel"),
            (S::Fetching, "Claimed"),
            (S::Fetching, "Fetched"),
            (S::Fetching, "SourceNotFound"),
            (S::Fetching, "SourceRefused"),
            (S::Fetching, "FetchFailed"),
            (S::Fetching, "Cancel"),
            (S::Fetching, "Expired"),
            (S::Validating, "Validated"),
            (S::Validating, "ValidationFailed"),
            (S::Validating, "Cancel"),
            (S::Converting, "Converted"),
            (S::Converting, "SubjectMismatched"),
            (S::Converting, "ConversionFailed"),
            (S::Converting, "Cancel"),
            (S::Delivering, "Claimed"),
            (S::Delivering, "Delivered"),
            (S::Delivering, "DeliveryFailed"),
            (S::Delivering, "Cancel"),
            (S::Delivering, "Expired"),
            (S::Failed, "OperatorRetry"),
        ];
        for status in Status::ALL {
            for event in all_events() {
                let name = format!("{event:?}");
                let name = name.split('(').next().unwrap_or_default().to_owned();
                let ok = allowed.iter().any(|(s, e)| *s == status && *e == name);
                let result = step(&state(status), event.clone());
                assert_eq!(result.is_ok(), ok, "{status} + {event:?}");
                if let Ok(t) = result {
                    if t.state.status == S::Failed {
                        assert!(
                            t.state.reason.is_some(),
                            "failed without reason: {status} + {event:?}"
                        );
                        assert!(t.effects.contains(&Effect::DeletePayload));
                    } else {
                        assert!(t.state.reason.is_none());
                    }
                }
            }
        }
    }

    #[test]
    fn failure_reasons() {
        let cases = [
            (
                Status::Fetching,
                Event::SourceNotFound,
                FailureReason::SourceNotFound,
            ),
            (
                Status::Fetching,
                Event::SourceRefused,
                FailureReason::SourceRefused,
            ),
            (
                Status::Fetching,
                Event::FetchFailed(Retry::Permanent),
                FailureReason::SourceUnavailable,
            ),
            (
                Status::Validating,
                Event::ValidationFailed,
                FailureReason::InvalidSourceDocument,
            ),
            (
                Status::Converting,
                Event::SubjectMismatched,
                FailureReason::SubjectMismatch,
            ),
            (
                Status::Converting,
                Event::ConversionFailed,
                FailureReason::ConversionFailed,
            ),
            (
                Status::Delivering,
                Event::DeliveryFailed(Retry::Permanent),
                FailureReason::DestinationRejected,
            ),
            (
                Status::Fetching,
                Event::Expired,
                FailureReason::SourceUnavailable,
            ),
            (
                Status::Delivering,
                Event::Expired,
                FailureReason::DeliveryAttemptsExhausted,
            ),
        ];
        for (status, event, reason) in cases {
            let t = step(&state(status), event).unwrap();
            assert_eq!(t.state.status, Status::Failed);
            assert_eq!(t.state.reason, Some(reason));
        }
    }

    #[test]
    fn retries_until_attempts_are_exhausted() {
        let mut s = state(Status::Delivering);
        for attempt in 1..3 {
            let t = step(&s, Event::DeliveryFailed(Retry::Retryable)).unwrap();
            assert_eq!(t.state.status, Status::Delivering);
            assert_eq!(t.state.attempts, attempt);
            let due = t.state.next_attempt_at.unwrap();
            assert!(due >= Timestamp::from_secs(1001));
            assert_eq!(t.effects, vec![Effect::Deliver]);
            s = t.state;
        }
        let t = step(&s, Event::DeliveryFailed(Retry::Retryable)).unwrap();
        assert_eq!(t.state.status, Status::Failed);
        assert_eq!(
            t.state.reason,
            Some(FailureReason::DeliveryAttemptsExhausted)
        );
        assert_eq!(t.state.attempts, 3);
    }

    #[test]
    fn fetch_retries_give_up_as_source_unavailable() {
        let mut s = state(Status::Fetching);
        s.attempts = 2;
        let t = step(&s, Event::FetchFailed(Retry::Retryable)).unwrap();
        assert_eq!(t.state.reason, Some(FailureReason::SourceUnavailable));
    }

    #[test]
    fn retries_stop_at_max_age() {
        let mut s = state(Status::Delivering);
        s.created_at = Timestamp::from_secs(0);
        // now = 1001 s, max_age = 3600 s: within age.
        assert_eq!(
            step(&s, Event::DeliveryFailed(Retry::Retryable))
                .unwrap()
                .state
                .status,
            Status::Delivering
        );
        s.created_at = Timestamp::from_secs(1001 - 3600);
        let t = step(&s, Event::DeliveryFailed(Retry::Retryable)).unwrap();
        assert_eq!(
            t.state.reason,
            Some(FailureReason::DeliveryAttemptsExhausted)
        );
    }

    #[test]
    fn without_max_attempts_transient_failures_retry_until_max_age() {
        let policy = RetryPolicy {
            max_attempts: None,
            ..policy()
        };
        let random = SeededRandom::new(7);
        let mut s = state(Status::Delivering);
        s.created_at = Timestamp::from_secs(0);
        let mut now = Timestamp::from_secs(1);
        let mut attempts = 0;
        loop {
            let t = next(
                &s,
                Event::DeliveryFailed(Retry::Retryable),
                &policy,
                now,
                &random,
            )
            .unwrap();
            attempts += 1;
            if t.state.status == Status::Failed {
                assert_eq!(
                    t.state.reason,
                    Some(FailureReason::DeliveryAttemptsExhausted)
                );
                break;
            }
            now = t.state.next_attempt_at.unwrap();
            assert!(now.since(Timestamp::from_secs(0)) < policy.max_age);
            s = t.state;
        }
        // Far more than any count limit would allow: 1 hour of backoff capped at 60 s.
        assert!(attempts > 60, "{attempts}");
        assert!(policy.is_expired(Timestamp::from_secs(0), Timestamp::from_secs(3600)));
        assert!(!policy.is_expired(Timestamp::from_secs(1), Timestamp::from_secs(3600)));
    }

    #[test]
    fn operator_retry_starts_over() {
        let mut s = state(Status::Failed);
        s.reason = Some(FailureReason::DeliveryAttemptsExhausted);
        s.attempts = 12;
        let t = step(&s, Event::OperatorRetry).unwrap();
        assert_eq!(t.state.status, Status::Accepted);
        assert_eq!(t.state.attempts, 0);
        assert_eq!(t.state.reason, None);
        assert_eq!(t.state.created_at, Timestamp::from_secs(1001));
    }

    #[test]
    fn backoff_is_full_jitter_and_capped() {
        let p = policy();
        let r = SeededRandom::new(42);
        for attempt in 1..40 {
            let ceiling = Duration::from_secs(1)
                .saturating_mul(1u32 << (attempt - 1).min(31))
                .min(Duration::from_secs(60));
            for _ in 0..50 {
                assert!(p.backoff(attempt, &r) <= ceiling);
            }
        }
        // Full jitter: over many draws both small and large delays occur.
        let draws: Vec<Duration> = (0..200).map(|_| p.backoff(10, &r)).collect();
        assert!(draws.iter().any(|d| *d < Duration::from_secs(10)));
        assert!(draws.iter().any(|d| *d > Duration::from_secs(50)));
    }

    #[test]
    fn status_and_reason_codes_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        for r in FailureReason::ALL {
            assert_eq!(FailureReason::parse(r.as_str()), Some(r));
        }
    }
}

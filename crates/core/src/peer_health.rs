//! Whether a peer (a source or a destination) is up, as learnt from the gateway's calls to it.
//!
//! Owns: [`PeerHealth`] and the pure rules [`after_call`] and [`probe_delay`]. It does no IO:
//! the store keeps one [`PeerHealth`] per participant (shared by every instance on one
//! database) and applies [`after_call`] in the same transaction as the call's transfer change.
//!
//! The rules: a peer is *up* until `down_after` calls in a row fail in a way that may pass
//! (5xx, timeouts, resets, refused connections, TLS failures). Then it is *down*: its transfers
//! wait in the store and no worker calls it, except for one *probe* at a time — an ordinary
//! attempt of one waiting transfer — due [`probe_delay`] after the previous probe. Any answer
//! that shows the peer is there (a success, but also a definite refusal such as 404 or 422)
//! brings it back up, and its waiting transfers are due at once. Calls that were already under
//! way when it went down change nothing when they fail.

use std::time::Duration;

use crate::clock::Timestamp;

/// What one call told about its peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    /// The peer answered (a success, or a definite answer such as 404 or 4xx).
    Answered,
    /// The call failed in a way that may pass: the peer may be down.
    FailedTransiently,
}

/// Rules for marking peers down and probing them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Transient failures in a row after which a peer is down (`delivery.peer_down_after`).
    pub down_after: u32,
    /// The first probe interval; doubles per failed probe up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

/// A peer's health as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PeerHealth {
    /// When the peer was marked down; `None` while it is up.
    pub down_since: Option<Timestamp>,
    /// Transient failures in a row (reset by any answer).
    pub failures: u32,
    /// Probes that failed since the peer went down.
    pub probes: u32,
    /// When the next probe may be made (only while down).
    pub next_probe_at: Option<Timestamp>,
}

impl PeerHealth {
    pub fn is_down(&self) -> bool {
        self.down_since.is_some()
    }
}

/// How the health of a peer changed with a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Unchanged,
    /// The peer is down from now on.
    WentDown,
    /// The peer answered again after being down since `since`.
    CameBack {
        since: Timestamp,
    },
}

/// The wait before the probe after `failed_probes` failed ones: the backoff ceiling
/// `min(max_backoff, initial_backoff · 2^failed_probes)`, less up to half of it
/// (`jitter_millionths` in `0..1_000_000` picks where). Never less than half the ceiling, so
/// a peer that is down sees at most one probe per half interval from all instances together.
pub fn probe_delay(failed_probes: u32, policy: &HealthPolicy, jitter_millionths: u64) -> Duration {
    let shift = failed_probes.min(32);
    let base = u64::try_from(policy.initial_backoff.as_millis()).unwrap_or(u64::MAX);
    let cap = u64::try_from(policy.max_backoff.as_millis()).unwrap_or(u64::MAX);
    let ceiling = base.saturating_mul(1u64 << shift).min(cap);
    let jitter = jitter_millionths.min(999_999);
    let less = u64::try_from(u128::from(ceiling / 2) * u128::from(jitter) / 1_000_000)
        .unwrap_or(ceiling / 2);
    Duration::from_millis(ceiling - less)
}

/// The peer's health after a call with `outcome` at `now`; `was_probe` says whether the call was
/// the probe of a peer that was down. `jitter_millionths` (in `0..1_000_000`) places the next
/// probe (see [`probe_delay`]).
pub fn after_call(
    health: &PeerHealth,
    outcome: CallOutcome,
    was_probe: bool,
    policy: &HealthPolicy,
    now: Timestamp,
    jitter_millionths: u64,
) -> (PeerHealth, Change) {
    match (health.down_since, outcome) {
        (Some(since), CallOutcome::Answered) => (PeerHealth::default(), Change::CameBack { since }),
        (None, CallOutcome::Answered) => (PeerHealth::default(), Change::Unchanged),
        (None, CallOutcome::FailedTransiently) => {
            let failures = health.failures.saturating_add(1);
            if failures >= policy.down_after.max(1) {
                let next = now.saturating_add(probe_delay(0, policy, jitter_millionths));
                (
                    PeerHealth {
                        down_since: Some(now),
                        failures,
                        probes: 0,
                        next_probe_at: Some(next),
                    },
                    Change::WentDown,
                )
            } else {
                (
                    PeerHealth {
                        failures,
                        ..PeerHealth::default()
                    },
                    Change::Unchanged,
                )
            }
        }
        (Some(_), CallOutcome::FailedTransiently) if was_probe => {
            let probes = health.probes.saturating_add(1);
            let next = now.saturating_add(probe_delay(probes, policy, jitter_millionths));
            (
                PeerHealth {
                    failures: health.failures.saturating_add(1),
                    probes,
                    next_probe_at: Some(next),
                    ..*health
                },
                Change::Unchanged,
            )
        }
        // A call started before the peer went down: the probes decide from now on.
        (Some(_), CallOutcome::FailedTransiently) => (*health, Change::Unchanged),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> HealthPolicy {
        HealthPolicy {
            down_after: 3,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(600),
        }
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_secs(s)
    }

    #[test]
    fn a_peer_goes_down_after_the_configured_failures_in_a_row() {
        let p = policy();
        let mut h = PeerHealth::default();
        for i in 1..3 {
            let (next, change) =
                after_call(&h, CallOutcome::FailedTransiently, false, &p, at(i), 0);
            assert_eq!(change, Change::Unchanged);
            assert!(!next.is_down());
            assert_eq!(next.failures, u32::try_from(i).unwrap_or(0));
            h = next;
        }
        let (down, change) = after_call(&h, CallOutcome::FailedTransiently, false, &p, at(3), 0);
        assert_eq!(change, Change::WentDown);
        assert_eq!(down.down_since, Some(at(3)));
        assert_eq!(down.next_probe_at, Some(at(4)));
    }

    #[test]
    fn an_answer_between_failures_starts_the_count_again() {
        let p = policy();
        let (h, _) = after_call(
            &PeerHealth::default(),
            CallOutcome::FailedTransiently,
            false,
            &p,
            at(1),
            0,
        );
        let (h, _) = after_call(&h, CallOutcome::FailedTransiently, false, &p, at(2), 0);
        let (h, change) = after_call(&h, CallOutcome::Answered, false, &p, at(3), 0);
        assert_eq!((h, change), (PeerHealth::default(), Change::Unchanged));
        let (h, change) = after_call(&h, CallOutcome::FailedTransiently, false, &p, at(4), 0);
        assert_eq!(change, Change::Unchanged);
        assert_eq!(h.failures, 1);
    }

    #[test]
    fn failed_probes_back_off_to_the_cap_and_stragglers_change_nothing() {
        let p = policy();
        let down = PeerHealth {
            down_since: Some(at(100)),
            failures: 3,
            probes: 0,
            next_probe_at: Some(at(101)),
        };
        let (straggler, change) =
            after_call(&down, CallOutcome::FailedTransiently, false, &p, at(100), 0);
        assert_eq!((straggler, change), (down, Change::Unchanged));
        let mut h = down;
        let mut now = at(101);
        let mut waits = Vec::new();
        for _ in 0..12 {
            let (next, change) = after_call(&h, CallOutcome::FailedTransiently, true, &p, now, 0);
            assert_eq!(change, Change::Unchanged);
            let due = next.next_probe_at.unwrap_or(now);
            waits.push(due.since(now).as_secs());
            now = due;
            h = next;
        }
        assert_eq!(waits, [2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600, 600]);
        assert_eq!(h.down_since, Some(at(100)));
    }

    #[test]
    fn any_answer_brings_a_peer_back() {
        let p = policy();
        let down = PeerHealth {
            down_since: Some(at(100)),
            failures: 9,
            probes: 6,
            next_probe_at: Some(at(700)),
        };
        for probe in [true, false] {
            let (h, change) = after_call(&down, CallOutcome::Answered, probe, &p, at(700), 0);
            assert_eq!(h, PeerHealth::default());
            assert_eq!(change, Change::CameBack { since: at(100) });
        }
    }

    #[test]
    fn probe_delays_stay_between_half_and_the_whole_ceiling() {
        let p = policy();
        for probes in 0..20 {
            let ceiling = p
                .initial_backoff
                .saturating_mul(1 << probes.min(20))
                .min(p.max_backoff);
            for jitter in [0, 1, 499_999, 500_000, 999_999, 5_000_000] {
                let d = probe_delay(probes, &p, jitter);
                assert!(d <= ceiling, "{probes} {jitter}: {d:?} > {ceiling:?}");
                assert!(
                    d >= ceiling / 2,
                    "{probes} {jitter}: {d:?} < half {ceiling:?}"
                );
            }
        }
    }
}

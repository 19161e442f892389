//! Durable transfers (issue 5): what a transfer accepted with `202` survives, tested end to end
//! on a whole installation on 127.0.0.1 (development PKI, the gateway in this process with mutual
//! TLS and a real database, reference source and destination TLS servers). Time is the gateway's
//! injected [`siirto_core::clock::ManualClock`]: tests move it past each retry wait instead of
//! waiting, and a randomness whose backoff draws are always the longest (the full-jitter
//! ceiling) makes every retry time exact.
//!
//! Read the modules as the specification of behaviour:
//! - `outage`: the destination answers 503, or refuses connections, for a while and then
//!   recovers: every transfer is delivered once, every attempt is in the audit, and the waits
//!   between attempts double up to `max_backoff` (SQLite and PostgreSQL).
//! - `exhaustion`: past `max_attempts` or `max_age` a transfer fails with
//!   `delivery_attempts_exhausted` and its payload is deleted; an operator (and only an
//!   operator) retries it, audited, and it is delivered.
//! - `permanent`: 400 and 422 fail at once without retries; 409 counts as delivered.
//! - `exactly_once`: the destination stores a record but its acknowledgement is lost (503, or
//!   no answer within the request timeout): the retry carries the same `Idempotency-Key`, gets
//!   409, and the destination holds exactly one copy.
//! - `cancel`: the submitter (or an operator) stops a transfer waiting for a retry; nothing
//!   arrives afterwards; others are refused (403 / 404), as is cancelling a finished transfer or
//!   one whose delivery request is under way (409).
//! - `backpressure`: `max_pending` answers 503 `overloaded`; a store that takes no writes
//!   answers 503 `store_unavailable` and `/readyz` 503 (SQLite and PostgreSQL); both recover and
//!   nothing accepted is lost; deliveries to one destination stay within
//!   `per_destination_concurrency`; a hanging destination does not hold up the others.
//! - `peer_tls`: a source or destination whose server certificate is refused (another CA,
//!   another name, expired) is retried like an outage but visibly: the reason is on the step,
//!   in the audit entry, in `/metrics` and in a warning naming the peer (the real binary).
//! - `peer_down`: a destination down for three simulated days is marked down and probed once
//!   per interval (not once per transfer), then gets every transfer once; `max_age` ends a
//!   transfer that waited too long, audited; two instances never probe at once; a destination
//!   that flaps (503, resets, hangs) on real time gets every transfer once.
//! - `retention`: finished transfers past `[retention] transfers` are deleted (the gateway's
//!   housekeeping and `siirto retention`), unfinished ones kept, the audit still verifies.
//! - `instances`: two gateway instances on one PostgreSQL database share the work and deliver
//!   every transfer exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The end-to-end helpers of `tests/api` (the testbed, tokens, audit), shared as they are.
#[allow(dead_code, unused_imports)]
#[path = "api/helpers.rs"]
mod helpers;
#[path = "durable/support.rs"]
mod support;

#[path = "durable/backpressure.rs"]
mod backpressure;
#[path = "durable/cancel.rs"]
mod cancel;
#[path = "durable/exactly_once.rs"]
mod exactly_once;
#[path = "durable/exhaustion.rs"]
mod exhaustion;
#[path = "durable/instances.rs"]
mod instances;
#[path = "durable/outage.rs"]
mod outage;
#[path = "durable/peer_down.rs"]
mod peer_down;
#[path = "durable/peer_tls.rs"]
mod peer_tls;
#[path = "durable/permanent.rs"]
mod permanent;
#[path = "durable/retention.rs"]
mod retention;

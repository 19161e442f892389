//! siirto-gateway: the IO edge of Siirto — everything that touches a socket, a TLS session, the
//! database or the clock of a running process, around the decisions of `siirto-core`.
//!
//! A transfer through it: `server` accepts a mutual-TLS connection, `http` routes the request
//! and has `siirto_core::authz` verify the student's authorization, `store` records the accepted
//! transfer; a `delivery` worker claims it, fetches the record with `outbound`, runs
//! `siirto_core::pipeline` on it, delivers the result with `outbound`, and every step lands in
//! the audit log that `trail` anchors with signed checkpoints.
//!
//! # Layout — one line per module, what it owns (lower layers first)
//! - [`x509_policy`]: what the gateway requires of certificates beyond rustls-webpki (keyUsage,
//!   CA bundles, CRLs verified at load and their freshness), and the verifiers that apply it.
//! - [`config`]: the TOML file + `SIIRTO__*` overrides → the validated [`config::Config`] (the
//!   loader; the data types are `siirto_core::config` and `siirto_core::identity`).
//! - [`tls`]: rustls server and client configurations from the validated config.
//! - [`outbound`]: mTLS calls to sources and destinations (fetch, deliver), with limits; one
//!   module per source protocol (`siirto`, `koski`, `virta-soap`, `koski-omadata`) builds its request and
//!   classifies its answers.
//! - [`budget`]: the memory budget of records in flight (`delivery.max_in_flight_bytes`):
//!   fair reservations of a record's bytes, released with its last copy, and their gauges.
//! - [`refusals`]: refused TLS handshakes as rate-limited audit entries.
//! - [`listing`]: transfer listings as text: the filter from a query or options, rows as CSV
//!   and JSON lines (the operator page, its export, `siirto transfers list`).
//! - [`retry`]: operator retries of failed transfers, one or in bulk (API and CLI).
//! - [`server`]: TLS and plain listeners (hyper), connection admission, graceful shutdown.
//! - [`store`]: the only user of sqlx: transfers, steps, payloads, the audit log (SQLite,
//!   PostgreSQL), with the migrations of the workspace's `migrations/`.
//! - [`metrics`]: the metrics of `GET /metrics` (prometheus-client: one registry, typed label
//!   sets), with the process's from `/proc`.
//! - [`trail`]: the running audit service: Merkle tree following the store, checkpoints,
//!   proofs, whole-log verification.
//! - [`witness`]: the witnessed audit: `POST /witness/add-checkpoint` as a witness, and
//!   submitting each checkpoint to `[[audit.witnesses]]` as a log.
//! - [`state`]: [`state::Gateway`], the shared state handlers and workers run on; readiness.
//! - [`delivery`]: the outbox worker (fetch → prepare → deliver, one step at a time).
//! - [`omadata`]: the worker's fetch on consent given at KOSKI OmaData: the code taken and
//!   exchanged once, the access token sealed until the one fetch.
//! - [`http`]: the API and admin endpoints; errors become answers in one place; the operator's
//!   pages and the student's own page (askama templates in `templates/`, texts in `texts/`,
//!   which also hold the consent texts of `GET /v1/consent-text`).
//! - [`start`]: binds the listeners and starts the handlers, workers, trail and housekeeping on
//!   a [`state::Gateway`] — the only module that depends on both the state and what runs on it.
//! - [`tools`]: operator commands outside the server (`convert`, `audit verify|export|verify-proof`,
//!   `transfers list|show|retry`, `retention`).
//!
//! # What it must never import
//! `siirto-devkit` (the dev PKI, test peers, testbed, demo) outside tests: the serving path
//! never runs development material. Decisions (authorization, formats, audit hashing, the
//! transfer state machine) stay in `siirto-core`; this crate carries them out.

pub mod budget;
pub mod config;
pub mod delivery;
pub mod http;
pub mod listing;
pub mod metrics;
pub mod omadata;
pub mod outbound;
pub mod refusals;
pub mod retry;
pub mod server;
pub mod start;
pub mod state;
pub mod store;
pub mod tls;
pub mod tools;
pub mod trail;
pub mod witness;
pub mod x509_policy;

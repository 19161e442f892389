//! End-to-end tests of the gateway as a municipality's integration engineer meets it: a whole
//! installation on 127.0.0.1 — development PKI, the gateway with mutual TLS and a fresh database,
//! reference source and destination TLS servers — driven through the HTTP API.
//!
//! Read the modules as the specification of behaviour:
//! - `transfer`: a valid transfer is delivered once, validated, hashed and receipted (SQLite and
//!   PostgreSQL).
//! - `rejections`: every refused authorization or caller, with its exact code, nothing
//!   delivered, and the refusal in the audit trail.
//! - `limits`: over-long request heads and bodies are answered 431 / 413 with the JSON error
//!   body, audited; curl sending a 1 MB body reads the answer, not a reset.
//! - `tls`: connections without an acceptable client certificate never reach the API.
//! - `connections`: idle connections from one address, or strangers filling the listener, do
//!   not lock participants out (per-address limits, the reserve for known addresses).
//! - `source_failures`: what the source answers (404, broken or hostile XML) fails the transfer
//!   with a stable reason, and nothing is delivered.
//! - `audit_cli`: `siirto audit verify` accepts a real run and names an altered entry.
//! - `operations`: the real binary's IO-edge errors (one line naming the key), JSON logs with
//!   request and transfer ids and warnings about peers that are down, `X-Request-Id`, `Allow`.
//! - `budget`: `delivery.max_in_flight_bytes`: 20 records of 4 MB through a 16 MB budget, all
//!   delivered, the bytes held at once never over it (the gateway's own gauges).
//! - `metrics`: `GET /metrics` parsed by a Prometheus text parser and by the Prometheus
//!   project's Python client (both formats); every known series there from the start.
//! - `external`: curl and a JWS signed by Python drive a transfer from outside.
//! - `people`: the legal basis, guardians of minors and the consent text: each refusal with its
//!   code, a guardian kept only as a pseudonym, statutory transfers, `GET /v1/consent-text`.
//! - `routes`: VIRTA → ELMO and VIRTA → siirto-v1, scope pruning, turvakielto, identity binding.
//! - `registers`: KOSKI's luovutuspalvelu and VIRTA's SOAP service as sources, each in its own
//!   protocol, with peers that check every request's shape; found, not found, retried, refused,
//!   someone else's record, broken, deep, huge and DTD-carrying answers.
//! - `checks`: checks without transfer: each question true and false over the corpus of each
//!   format, the record kept nowhere, the attestation verified by jwcrypto and the CLI, each
//!   refusal with its code, the check's consent text, history, metrics, PostgreSQL.
//! - `omadata`: consent given at KOSKI (OmaData OAuth2): the whole flow through a browser-like
//!   client to a delivered record, each refusal with its code, the in-test authorization server
//!   cross-checked by Authlib, no code, token, state or henkilötunnus in clear.
//! - `xroad`: sources and destinations reached through an X-Road security server (an in-test
//!   one written from the REST message protocol): delivered with the X-Road ids audited,
//!   `Server.*` errors retried, `Client.*` errors permanent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/admin.rs"]
mod admin;
#[path = "support/checks_expected.rs"]
mod checks_expected;
#[path = "api/helpers.rs"]
mod helpers;
#[path = "support/people.rs"]
mod people_support;
/// The scope walk shared with the format tests: which category each output path belongs to.
#[path = "support/formats_walk.rs"]
mod walk;

#[path = "api/audit_broken.rs"]
mod audit_broken;
#[path = "api/audit_cli.rs"]
mod audit_cli;
#[path = "api/budget.rs"]
mod budget;
#[path = "api/checks.rs"]
mod checks;
#[path = "api/connections.rs"]
mod connections;
#[path = "api/external.rs"]
mod external;
#[path = "api/limits.rs"]
mod limits;
#[path = "api/metrics.rs"]
mod metrics;
#[path = "api/omadata.rs"]
mod omadata;
#[path = "api/openapi.rs"]
mod openapi;
#[path = "api/operations.rs"]
mod operations;
#[path = "api/people.rs"]
mod people;
#[path = "api/registers.rs"]
mod registers;
#[path = "api/rejections.rs"]
mod rejections;
#[path = "api/routes.rs"]
mod routes;
#[path = "api/source_failures.rs"]
mod source_failures;
#[path = "api/tls.rs"]
mod tls;
#[path = "api/transfer.rs"]
mod transfer;
#[path = "api/xroad.rs"]
mod xroad;

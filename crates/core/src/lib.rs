//! siirto-core: what Siirto decides, without doing IO — the record model and its formats,
//! student ids, authorization and identity checks, audit hashing, receipts, the transfer state
//! machine and its retry policy, and the configuration's data types.
//!
//! Everything here takes bytes, `&str` or domain values (time and randomness as arguments,
//! [`clock`]) and returns values. The gateway (`siirto-gateway`) is the IO edge that feeds it:
//! sockets, TLS, HTTP, the database, the background tasks.
//!
//! # Layout — one line per module, what it owns
//! - [`clock`]: time and randomness as injected values; hex and id helpers.
//! - [`config`]: the configuration's sections as data, with defaults; duration, size and key-file
//!   syntax. (Reading and checking the TOML file is `siirto_gateway::config`.)
//! - [`identity`]: the participant directory (roles, identity rules, endpoints), subject strings,
//!   and client certificate → participant (x509-parser).
//! - [`scope`]: the data categories of an authorization's `scope`.
//! - [`student_id`]: henkilötunnus and learner-number parsing.
//! - [`authz`]: JWS bytes + issuer keys + clock → verified authorization (josekit), with the
//!   basis, guardian and consent-text rules.
//! - [`consent`]: the legal basis of a transfer, a destination's statutory rules, and the
//!   versioned consent texts composed from the reviewed text files and their hashes.
//! - [`lang`]: fi/sv/en, texts in all three, filling placeholders, the Europe/Helsinki calendar
//!   and ages.
//! - [`dsig`]: XML Signature of records: sign (rsa-sha256/ecdsa-sha256) and verify with pinned
//!   signers, over `siirto_xsd::c14n`.
//! - [`record`]: the format-neutral student record and scope pruning.
//! - [`formats`]: one module per record format, to and from the [`record`] model (`koski`, KOSKI's
//!   JSON, only from it).
//! - [`check`]: checks without transfer: the four questions, which format answers which, and the
//!   answer over the record.
//! - [`omadata`]: consent given at KOSKI: PKCE, `state`, RFC 8414 metadata and token answers,
//!   and the rules of a consent request's answer (OAuth 2.0 client side, pure).
//! - [`pipeline`]: validate → read → prune → convert → validate, for one fetched record.
//! - [`protocol`]: how a source is called (`siirto`, `koski`, `virta-soap`) and what each
//!   protocol needs from the configuration (KOSKI's types, VIRTA's redacted credentials).
//! - [`audit`]: audit entry hashing, hash chain, Merkle tree, checkpoints, verification.
//! - [`receipt`]: the gateway-signed transfer receipt.
//! - [`attestation`]: the gateway-signed answer of a check without transfer.
//! - [`transfer`]: the transfer state machine and the retry policy (backoff with full jitter).
//! - [`peer_health`]: whether a source or destination is up; when to probe one that is down.
//! - [`vault`]: encryption at rest of payloads, student ids and receipts (AES-256-GCM).
//! - [`admission`]: which new connection a listener admits (per-address limits, the reserve
//!   for authenticated addresses).
//!
//! # What it must never import
//! tokio's networking, hyper, sqlx, rustls (and so nothing of `siirto-gateway` or
//! `siirto-devkit`): `tests/layers.rs` at the workspace root reads `cargo metadata` and fails
//! when this crate's dependencies reach any of them. Of Siirto it uses only `siirto-xsd`.
//! Reading a file it is handed (a JWKS, a schema) is allowed; opening a socket is not.

pub mod admission;
pub mod attestation;
pub mod audit;
pub mod authz;
pub mod check;
pub mod clock;
pub mod config;
pub mod consent;
pub mod dsig;
pub mod formats;
pub mod identity;
pub mod lang;
pub mod omadata;
pub mod peer_health;
pub mod pipeline;
pub mod protocol;
pub mod receipt;
pub mod record;
pub mod scope;
pub mod student_id;
pub mod transfer;
pub mod vault;

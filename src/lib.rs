//! Siirto: a mutual-TLS gateway that moves a student's records between Finnish municipalities
//! and national registers on the student's own signed authorization.
//!
//! # Layout — one line per module, what it owns
//! - [`clock`]: time and randomness as injected values; hex and id helpers.
//! - [`config`]: TOML + environment overrides → validated [`config::Config`] and the directory.
//! - [`scope`]: the data categories of an authorization's `scope`.
//! - [`student_id`]: henkilötunnus and learner-number parsing.
//! - [`authz`]: JWS bytes + issuer keys + clock → verified authorization (josekit).
//! - [`identity`]: client certificate → participant (x509-parser).
//! - [`tls`]: rustls server and client configurations from the validated config.
//! - [`admission`]: which new connection a listener admits (per-address limits, the reserve
//!   for authenticated addresses); pure.
//! - [`x509_policy`]: what the gateway requires of certificates beyond rustls-webpki (keyUsage,
//!   CA bundles, CRLs verified at load and their freshness), and the verifiers that apply it.
//! - [`pki`]: development certificates and keys (rcgen); never for production.
//! - [`outbound`]: mTLS calls to sources and destinations (fetch, deliver), with limits.
//! - [`siirto_xsd`]: hardened XML parsing, the XML Schema compiler and streaming validator.
//! - [`record`]: the format-neutral student record and scope pruning.
//! - [`formats`]: one module per record format, to and from the [`record`] model.
//! - [`audit`]: audit entry hashing, hash chain, Merkle tree, checkpoints, verification.
//! - [`receipt`]: the gateway-signed transfer receipt.
//! - [`trail`]: the running audit service: Merkle tree following the store, checkpoints,
//!   proofs, whole-log verification.
pub mod cli;
pub mod client;
pub mod config;
pub mod delivery;
pub mod demo;
pub mod eservice;
pub mod gateway;
pub mod http;
pub mod metrics;
pub mod outbound;
pub mod peers;
pub mod pki;
pub mod refusals;
pub mod server;
pub mod store;
pub mod testbed;
pub mod tls;
pub mod tools;
pub mod trail;
pub mod x509_policy;

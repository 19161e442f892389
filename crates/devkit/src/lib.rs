//! siirto-devkit: development material for running and testing Siirto on one machine — never
//! part of the serving path.
//!
//! Used by the `siirto` binary's `demo`, `pki init` and `dev` commands, by the integration tests and
//! by the benchmarks. Everything it starts is real (TLS servers on 127.0.0.1, the gateway
//! itself, a SQLite or PostgreSQL store); only the keys are throw-away.
//!
//! # Layout — one line per module, what it owns
//! - [`omadata`]: an in-test KOSKI OmaData authorization and resource server (OAuth 2.0 with
//!   PKCE and mutual TLS, written from the RFCs and KOSKI's document; not KOSKI).
//! - [`pki`]: a development CA, certificates, keys, CRLs and a ready `siirto.toml`
//!   (`siirto pki init DIR`); **never for production**.
//! - [`eservice`]: the reference e-service signer of students' authorizations (JWS).
//! - [`peers`]: reference source and destination endpoints (real mTLS servers), able to
//!   misbehave on request.
//! - [`registers`]: KOSKI's luovutuspalvelu and VIRTA's SOAP service as in-test peers that
//!   check each request as the real service would, and a generated KOSKI pupil document.
//! - [`client`]: a small mTLS HTTP/1.1 client, as an e-service or an operator calls the gateway.
//! - [`testbed`]: a whole installation on 127.0.0.1 — PKI, peers, and optionally a gateway.
//! - [`demo`]: `siirto demo`, one transfer printed step by step.
//! - [`dev`]: `siirto dev sign` and `siirto dev peers`, for driving a transfer by hand against a
//!   `siirto pki init` directory.
//!
//! # What it must never import, and who must never import it
//! It depends on `siirto-gateway` (the testbed starts one) and `siirto-core`. `siirto-core` and
//! `siirto-xsd` never depend on it; `siirto-gateway` only in its tests (a dev-dependency).
//! Production deployments take certificates and keys from the municipality's PKI and secret
//! store, never from [`pki`].

pub mod client;
pub mod demo;
pub mod dev;
pub mod eservice;
pub mod omadata;
pub mod peers;
pub mod pki;
pub mod registers;
pub mod testbed;
pub mod xroad;

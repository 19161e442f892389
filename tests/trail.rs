//! Issue #6 evidence: the verifiable audit trail of a running gateway — checkpoints and
//! proofs checked offline and by independent Python code, tampering detected on SQLite and
//! PostgreSQL, the operator web page in headless Chromium, the student's transparency view (and
//! the student's own page in Chromium with axe-core) and
//! receipts verified with a non-Rust JOSE library, and the privacy of the trail itself.
//!
//! Tests needing an outside tool (Python `cryptography`/`jwcrypto`, Chromium) print
//! `SKIPPED:` when it is missing, and fail instead under `SIIRTO_REQUIRE_TOOLS=1`. PostgreSQL
//! variants run when `SIIRTO_TEST_POSTGRES` is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "trail/instances.rs"]
mod instances;
#[path = "trail/operator.rs"]
mod operator;
#[path = "trail/operator_forms.rs"]
mod operator_forms;
#[path = "trail/operator_lookup.rs"]
mod operator_lookup;
#[path = "trail/people_page.rs"]
mod people_page;
#[path = "support/people.rs"]
mod people_support;
#[path = "trail/privacy.rs"]
mod privacy;
#[path = "trail/proofs.rs"]
mod proofs;
#[path = "trail/python.rs"]
mod python;
#[path = "trail/reload.rs"]
mod reload;
#[path = "trail/rotation.rs"]
mod rotation;
#[path = "trail/students.rs"]
mod students;
#[path = "trail/support.rs"]
mod support;
#[path = "trail/tamper.rs"]
mod tamper;
#[path = "trail/witness.rs"]
mod witness;

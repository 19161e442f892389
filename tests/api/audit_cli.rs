//! `siirto audit verify --config F`, the real binary, against the database of a real run:
//! exit 0 while the log is as the gateway wrote it; non-zero, naming the entry, once one stored
//! entry is altered. On SQLite and PostgreSQL.

use std::path::Path;

use siirto_devkit::testbed::TestbedOptions;
use siirto_gateway::store::Store;

use crate::helpers::*;

/// Runs `siirto audit verify --config config`; returns the exit code and stdout + stderr.
async fn audit_verify(config: &Path) -> (i32, String) {
    let out = tokio::process::Command::new(siirto_binary())
        .args(["audit", "verify", "--config"])
        .arg(config)
        .output()
        .await
        .expect("run siirto audit verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

async fn audit_verify_detects_an_altered_entry(database_url: Option<String>) {
    // The directory outlives the testbed: the configuration and keys are read after it stops.
    let dir = tempfile::tempdir().expect("tempdir");
    let bed = start_with(TestbedOptions {
        dir: Some(dir.path().to_path_buf()),
        database_url,
        ..TestbedOptions::default()
    })
    .await;

    // A real run: one delivered transfer, one refused token, one failed transfer.
    bed.sources["turku"].insert(STUDENT, school_record(STUDENT, false).into_bytes());
    let id = submit_accepted(&bed, &token(&bed, STUDENT, "turku", "espoo", SCOPE_ALL)).await;
    assert_eq!(finished(&bed, &id).await["status"], "delivered");
    let mut expired = claims(&bed, OTHER_STUDENT, "turku", "espoo", SCOPE_ALL);
    expired["exp"] = serde_json::json!(bed.now().secs() - 3600);
    expired["iat"] = serde_json::json!(bed.now().secs() - 3900);
    let refused = submit(&bed, "eservice", &bed.sign(&expired).expect("sign")).await;
    assert_eq!(refused.error_code().as_deref(), Some("expired"));
    let id = submit_accepted(
        &bed,
        &token(&bed, OTHER_STUDENT, "turku", "espoo", SCOPE_ALL),
    )
    .await;
    assert_failed(&bed, &id, "source_not_found").await;

    let entries = audit(&bed).await.len();
    assert!(
        entries >= 10,
        "a real run writes a real log ({entries} entries)"
    );
    let config_path = bed.config_path().to_path_buf();
    let database = bed.config.gateway.database_url.clone();
    bed.stop().await;

    let (code, out) = audit_verify(&config_path).await;
    assert_eq!(code, 0, "an untouched log verifies:\n{out}");
    assert!(
        out.contains(&format!("audit log verifies: {entries} entries")),
        "{out}"
    );

    // Someone with database access rewrites what happened to entry 3.
    let store = Store::connect(&database).await.expect("store");
    let changed = store
        .execute_raw("UPDATE audit SET outcome = 'x' WHERE seq = 3")
        .await
        .expect("update");
    assert_eq!(changed, 1);
    store.close().await;

    let (code, out) = audit_verify(&config_path).await;
    assert_ne!(code, 0, "an altered log must not verify:\n{out}");
    assert!(out.contains("does NOT verify"), "{out}");
    assert!(
        out.contains("entry 3:"),
        "the first bad entry, 3, is named:\n{out}"
    );
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_passes_on_a_real_run_and_names_an_altered_entry_on_sqlite() {
    audit_verify_detects_an_altered_entry(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_passes_on_a_real_run_and_names_an_altered_entry_on_postgresql() {
    let Some(db) = postgres().await else {
        return;
    };
    audit_verify_detects_an_altered_entry(Some(db.url.clone())).await;
    drop(db);
}

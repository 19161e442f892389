//! Rotating the audit key (issue 15): checkpoints and a receipt signed by key A still verify
//! after key B took over. While rotating (`[audit] previous_key` = A) every checkpoint is signed
//! by both; afterwards A stays as `previous_public_keys`, published in the JWKS. `siirto audit
//! verify` passes with the history and fails without it; a checkpoint signed by a key nobody
//! configured fails.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use siirto_core::audit::{AuditSigningKey, CheckpointSigner};
use siirto_core::clock::{SystemClock, SystemRandom};
use siirto_devkit::client::MtlsClient;
use siirto_devkit::testbed::Instance;
use siirto_gateway::config::Config;
use siirto_gateway::state::Gateway;
use siirto_gateway::store::Store;

use crate::support::{OPERATOR, STUDENT, deliver, fast_checkpoints, start, stdout};

/// A fresh Ed25519 key as PKCS#8 PEM.
fn new_key_pem() -> String {
    let der = ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
        .expect("key");
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

/// The configuration of the testbed with `overrides` (as `SIIRTO__...` variables would).
fn config_with(path: &std::path::Path, overrides: &[(&str, String)]) -> Config {
    let text = std::fs::read_to_string(path).expect("config");
    let mut env = fast_checkpoints();
    env.extend(overrides.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    Config::from_toml(&text, path, env).expect("config loads")
}

/// Runs a gateway on `config` while `during` runs against its API as the operator; stopping
/// signs a last checkpoint over everything written.
async fn with_gateway<F, Fut, T>(config: Config, pki: &siirto_devkit::pki::DevPki, during: F) -> T
where
    F: FnOnce(Arc<Gateway>, MtlsClient) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let gw = Gateway::open(
        config,
        Arc::new(SystemClock),
        Arc::new(SystemRandom::new()),
        siirto_devkit::testbed::build_info(),
    )
    .await
    .expect("gateway opens");
    let instance = Instance::start(gw.clone()).await.expect("listeners");
    let api = instance.api;
    let dev = pki.participant(OPERATOR).expect("operator");
    let op = MtlsClient::new(
        &format!("https://{api}"),
        &pki.ca.cert,
        Some((dev.client.cert.as_path(), dev.client.key.as_path())),
    )
    .expect("client");
    let out = during(gw, op).await;
    instance.stop().await.expect("gateway ran");
    out
}

fn verify_with(config: &std::path::Path, env: &[(&str, String)]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_siirto"))
        .args(["audit", "verify", "--config"])
        .arg(config)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("SIIRTO_LOG", "warn")
        .output()
        .expect("run siirto");
    (out.status.code().unwrap_or(-1), stdout(&out))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_and_receipts_of_the_old_key_verify_after_a_rotation() {
    let dir = tempfile::tempdir().expect("dir");
    let bed = start(None, Some(dir.path().to_path_buf())).await;
    // Key A: one delivered transfer, its receipt, and checkpoints.
    let (_, transfer) = deliver(&bed, STUDENT, "identity enrolment").await;
    let receipt_a = transfer["receipt"].as_str().expect("receipt").to_owned();
    let config_path = bed.config_path().to_path_buf();
    let pki = bed.pki.clone();
    let key_a_path = bed.config.gateway.audit_key.clone();
    let database_url = bed.config.gateway.database_url.clone();
    bed.stop().await;

    let key_a = AuditSigningKey::from_pkcs8_pem(&std::fs::read_to_string(&key_a_path).unwrap())
        .expect("key A");
    let key_b_path = dir.path().join("audit-b.key");
    std::fs::write(&key_b_path, new_key_pem()).unwrap();
    let key_b = AuditSigningKey::from_pkcs8_pem(&std::fs::read_to_string(&key_b_path).unwrap())
        .expect("key B");
    let a_public = dir.path().join("audit-a.pub.pem");
    std::fs::write(&a_public, key_a.public_key().to_spki_pem()).unwrap();
    let key_b_env = (
        "SIIRTO__GATEWAY__AUDIT_KEY",
        key_b_path.display().to_string(),
    );

    // Rotating: B signs, A cosigns.
    let rotating = config_with(
        &config_path,
        &[
            key_b_env.clone(),
            (
                "SIIRTO__AUDIT__PREVIOUS_KEY",
                key_a_path.display().to_string(),
            ),
        ],
    );
    with_gateway(rotating, &pki, |gw, op| async move {
        let before = gw.store.audit_len().await.unwrap();
        assert_eq!(op.get("/v1/audit?limit=1", &[]).await.unwrap().status, 200);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while gw
            .trail
            .status()
            .last_signed
            .is_none_or(|c| c.tree_size <= before)
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no checkpoint under B"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let store = Store::connect(&database_url).await.unwrap();
    let notes = store.checkpoints().await.unwrap();
    let last = notes.last().expect("checkpoints");
    assert_eq!(
        last.note.matches('\u{2014}').count(),
        2,
        "cosigned: {}",
        last.note
    );

    // After the rotation: B is the key, A an earlier public key.
    let after_env = [
        key_b_env.clone(),
        (
            "SIIRTO__AUDIT__PREVIOUS_PUBLIC_KEYS",
            a_public.display().to_string(),
        ),
    ];
    let after = config_with(&config_path, &after_env);
    let jwks = with_gateway(after, &pki, |_, op| async move {
        op.get("/v1/audit/jwks.json", &[]).await.unwrap().json()
    })
    .await;
    let keys: Vec<siirto_core::audit::AuditPublicKey> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| siirto_core::audit::AuditPublicKey::from_jwk(k).expect("jwk"))
        .collect();
    assert_eq!(keys, vec![key_b.public_key(), key_a.public_key()]);
    let receipt = siirto_core::receipt::verify_receipt_with(&receipt_a, &keys)
        .expect("the receipt signed by A verifies with the published keys");
    assert_eq!(receipt.claims().subject.as_str(), STUDENT);
    assert!(siirto_core::receipt::verify_receipt(&receipt_a, &key_b.public_key()).is_err());

    let (code, out) = verify_with(&config_path, &after_env);
    assert_eq!(code, 0, "{out}");
    let (code, out) = verify_with(&config_path, std::slice::from_ref(&key_b_env));
    assert_eq!(
        code, 1,
        "without the old key the old checkpoints name no known key: {out}"
    );
    assert!(out.contains("does NOT verify"), "{out}");

    // A checkpoint signed by a key nobody configured fails.
    let size = store.audit_len().await.unwrap();
    let entries = store.audit_range(0, size as u32).await.unwrap();
    let mut tree = siirto_core::audit::merkle::MerkleTree::new();
    for e in &entries {
        tree.push(e.leaf_hash());
    }
    let root = tree.root();
    let stranger_pem = new_key_pem();
    let stranger = CheckpointSigner::new(
        AuditSigningKey::from_pkcs8_pem(&stranger_pem).unwrap(),
        &siirto_gateway::config::audit_origin(&config_with(&config_path, &after_env)),
    )
    .unwrap()
    .sign(size, root, siirto_core::clock::Timestamp::from_millis(0));
    store
        .execute_raw(
            "DELETE FROM checkpoints WHERE tree_size = (SELECT MAX(tree_size) FROM checkpoints)",
        )
        .await
        .unwrap();
    store
        .insert_checkpoint(
            size,
            root,
            siirto_core::clock::Timestamp::from_millis(0),
            stranger.into_string(),
        )
        .await
        .unwrap();
    let (code, out) = verify_with(&config_path, &after_env);
    assert_eq!(code, 1, "{out}");
    store.close().await;
}

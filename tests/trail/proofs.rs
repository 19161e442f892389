//! Checkpoints and proofs from the running gateway, checked offline by `siirto audit
//! verify-proof` given only the checkpoint and the public key; the proof API's refusals.

use std::path::Path;

use serde_json::{Value, json};
use siirto_core::audit::AuditSigningKey;
use siirto_gateway::store::testdb::TestDb;

use crate::support::{
    OPERATOR, STUDENT, deliver, operator, siirto, start, stdout, wait_checkpoint,
};

fn write(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.display().to_string()
}

fn verify_proof(checkpoint: &str, key: &str, proof: &str, old: Option<&str>) -> (i32, String) {
    let mut args = vec![
        "audit",
        "verify-proof",
        "--checkpoint",
        checkpoint,
        "--public-key",
        key,
        "--proof",
        proof,
    ];
    if let Some(old) = old {
        args.extend(["--old-checkpoint", old]);
    }
    let out = siirto(&args);
    (out.status.code().unwrap_or(-1), stdout(&out))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofs_from_the_api_verify_offline_with_only_the_checkpoint_and_the_key() {
    for db in TestDb::all().await {
        let files = tempfile::tempdir().unwrap();
        let dir = files.path();
        let bed = start(Some(db.url.clone()), None).await;
        let (id, transfer) = deliver(&bed, STUDENT, "identity achievements").await;
        let leaf = transfer["audit_leaf"].as_u64().expect("audit_leaf");
        let cp = wait_checkpoint(&bed, leaf + 1).await;
        let size = cp["tree_size"].as_u64().unwrap();
        assert!(
            cp["note"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{}/audit\n{size}\n", bed.config.gateway.id))
        );
        assert_eq!(cp["origin"], format!("{}/audit", bed.config.gateway.id));
        let signature = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            cp["signature"].as_str().unwrap(),
        )
        .unwrap();
        assert_eq!(signature.len(), 4 + 64, "key ID and Ed25519 signature");

        // The public key is served to every participant, in every form, and is the audit key.
        let eservice = bed.client("eservice").unwrap();
        let key = eservice.get("/v1/audit/public-key", &[]).await.unwrap();
        assert_eq!(key.status.as_u16(), 200);
        let key = key.json();
        let configured =
            AuditSigningKey::from_pkcs8_pem(&std::fs::read_to_string(&bed.pki.audit_key).unwrap())
                .unwrap()
                .public_key();
        assert_eq!(key["pem"], configured.to_spki_pem());
        assert_eq!(key["kid"], configured.thumbprint());
        let pem = eservice.get("/v1/audit/public-key.pem", &[]).await.unwrap();
        assert_eq!(String::from_utf8_lossy(&pem.body), configured.to_spki_pem());
        let jwks = eservice.get("/v1/audit/jwks.json", &[]).await.unwrap();
        assert_eq!(jwks.json(), configured.to_jwks());

        let op = operator(&bed);
        let proof = op
            .get(
                &format!("/v1/audit/proof/inclusion?index={leaf}&size={size}"),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(proof.status.as_u16(), 200, "{}", proof.json());
        let proof = proof.json();
        assert_eq!(proof["type"], "inclusion");
        assert_eq!(proof["entry"]["transfer_id"], id.as_str());
        assert_eq!(proof["entry"]["action"], "transfer.delivered");
        assert_eq!(
            proof["entry"]["document_sha256"],
            transfer["content_sha256"]
        );

        let metrics =
            crate::support::admin_get(&bed.config.gateway.admin_listen.to_string(), "/metrics")
                .await;
        assert!(
            metrics.contains("\nsiirto_audit_log_broken 0\n"),
            "{metrics}"
        );
        assert!(
            !metrics.contains("\nsiirto_audit_checkpoint_size 0\n"),
            "{metrics}"
        );

        let cp_json = write(dir, "checkpoint.json", &cp.to_string());
        let cp_note = write(dir, "checkpoint.txt", cp["note"].as_str().unwrap());
        let key_pem = write(dir, "audit.pem", key["pem"].as_str().unwrap());
        let key_jwks = write(dir, "audit.jwks.json", &jwks.json().to_string());
        let key_note = write(
            dir,
            "audit.vkey",
            key["note_verifier_key"].as_str().unwrap(),
        );
        let proof_file = write(dir, "proof.json", &proof.to_string());
        for (c, k) in [
            (&cp_json, &key_pem),
            (&cp_note, &key_jwks),
            (&cp_note, &key_note),
        ] {
            let (code, out) = verify_proof(c, k, &proof_file, None);
            assert_eq!(code, 0, "{out}");
            assert!(
                out.contains(&format!("inclusion proof verifies: entry {leaf} is in the checkpointed log of {size} entries")),
                "{out}"
            );
            assert!(out.contains(&format!("transfer {id}")), "{out}");
        }

        // A changed proof hash, a changed entry, another key, another size: exit 1.
        let mut bad = proof.clone();
        let first = bad["proof"][0].as_str().unwrap().to_owned();
        let flipped = format!(
            "{}{}",
            if first.starts_with('0') { "1" } else { "0" },
            &first[1..]
        );
        bad["proof"][0] = json!(flipped);
        let bad_file = write(dir, "bad-proof.json", &bad.to_string());
        let (code, out) = verify_proof(&cp_json, &key_pem, &bad_file, None);
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains(
                "proof does NOT verify: the proof does not lead to the expected root hash"
            ),
            "{out}"
        );

        let mut changed = proof.clone();
        changed["entry"]["outcome"] = json!("failed");
        let changed_file = write(dir, "changed-entry.json", &changed.to_string());
        let (code, out) = verify_proof(&cp_json, &key_pem, &changed_file, None);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("does not hash to its leaf_hash"), "{out}");

        let stranger =
            ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
                .unwrap();
        let stranger = AuditSigningKey::from_pkcs8_der(stranger.as_ref())
            .unwrap()
            .public_key();
        let stranger_pem = write(dir, "stranger.pem", &stranger.to_spki_pem());
        let (code, out) = verify_proof(&cp_json, &stranger_pem, &proof_file, None);
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains("checkpoint does NOT verify: no signature by the audit key"),
            "{out}"
        );

        let mut resized = proof.clone();
        resized["tree_size"] = json!(size + 1);
        let resized_file = write(dir, "resized.json", &resized.to_string());
        let (code, out) = verify_proof(&cp_json, &key_pem, &resized_file, None);
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains(&format!(
                "the proof is for tree size {}, the checkpoint is of size {size}",
                size + 1
            )),
            "{out}"
        );

        let garbage = write(dir, "garbage.json", "not json");
        let out = siirto(&[
            "audit",
            "verify-proof",
            "--checkpoint",
            &cp_json,
            "--public-key",
            &key_pem,
            "--proof",
            &garbage,
        ]);
        assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));

        // Consistency: grow the log (every operator read is audited), wait for a newer
        // checkpoint, and prove the older one is a prefix of it.
        for _ in 0..6 {
            assert_eq!(
                op.get("/v1/audit?limit=1", &[])
                    .await
                    .unwrap()
                    .status
                    .as_u16(),
                200
            );
        }
        let newer = wait_checkpoint(&bed, size + 6).await;
        let new_size = newer["tree_size"].as_u64().unwrap();
        let consistency = op
            .get(
                &format!("/v1/audit/proof/consistency?from={size}&to={new_size}"),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(consistency.status.as_u16(), 200, "{}", consistency.json());
        let consistency = consistency.json();
        assert_eq!(consistency["type"], "consistency");
        let root_hex = cp["root_hash"].as_str().unwrap();
        assert_eq!(consistency["from_root"], root_hex);
        let newer_file = write(dir, "newer.json", &newer.to_string());
        let cons_file = write(dir, "consistency.json", &consistency.to_string());
        let (code, out) = verify_proof(&newer_file, &key_pem, &cons_file, Some(&cp_json));
        assert_eq!(code, 0, "{out}");
        assert!(out.contains(&format!("consistency proof verifies: the log of {size} entries with root {root_hex} is a prefix of the checkpointed log of {new_size} entries (the older checkpoint vouches")), "{out}");
        // Checked against the wrong checkpoint pair: refused.
        let (code, out) = verify_proof(&cp_json, &key_pem, &cons_file, None);
        assert_eq!(code, 1, "{out}");
        let mut forged = consistency.clone();
        forged["from_root"] = json!("00".repeat(32));
        let forged_file = write(dir, "forged.json", &forged.to_string());
        let (code, out) = verify_proof(&newer_file, &key_pem, &forged_file, Some(&cp_json));
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("older checkpoint is of size"), "{out}");
        let (code, out) = verify_proof(&newer_file, &key_pem, &forged_file, None);
        assert_eq!(code, 1, "{out}");

        bed.stop().await;
    }
}

async fn error_of(client: &siirto_devkit::client::MtlsClient, path: &str) -> (u16, String) {
    let a = client.get(path, &[]).await.unwrap();
    (a.status.as_u16(), a.error_code().unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proof_requests_are_refused_with_exact_codes() {
    let bed = start(None, None).await;
    let op = operator(&bed);
    // Nothing checkpointed yet on an empty log with a long interval? The testbed's own reads
    // write entries; wait for the first checkpoint, then ask for impossible proofs.
    deliver(&bed, STUDENT, "identity").await;
    let cp = wait_checkpoint(&bed, 1).await;
    let size = cp["tree_size"].as_u64().unwrap();
    let log_len = bed
        .gateway
        .as_ref()
        .unwrap()
        .store
        .audit_len()
        .await
        .unwrap();
    for (path, status, code) in [
        (
            format!("/v1/audit/proof/inclusion?index={size}&size={size}"),
            400,
            "index_out_of_range",
        ),
        (
            format!("/v1/audit/proof/inclusion?index=0&size={}", log_len + 1000),
            400,
            "size_out_of_range",
        ),
        ("/v1/audit/proof/inclusion".to_owned(), 400, "invalid_query"),
        (
            "/v1/audit/proof/inclusion?index=x".to_owned(),
            400,
            "invalid_query",
        ),
        (
            "/v1/audit/proof/inclusion?index=0&colour=red".to_owned(),
            400,
            "invalid_query",
        ),
        (
            "/v1/audit/proof/consistency?from=0&to=3".to_owned(),
            400,
            "invalid_query",
        ),
        (
            format!("/v1/audit/proof/consistency?from={}&to={size}", size + 1),
            400,
            "invalid_query",
        ),
        (
            format!("/v1/audit/proof/consistency?from=1&to={}", log_len + 1000),
            400,
            "size_out_of_range",
        ),
    ] {
        assert_eq!(
            error_of(&op, &path).await,
            (status, code.to_owned()),
            "{path}"
        );
    }
    // Only operators read checkpoints and proofs.
    let eservice = bed.client("eservice").unwrap();
    for path in [
        "/v1/audit/checkpoint",
        "/v1/audit/proof/inclusion?index=0&size=1",
        "/v1/audit/proof/consistency?from=1&to=1",
    ] {
        assert_eq!(
            error_of(&eservice, path).await,
            (403, "forbidden_role".to_owned()),
            "{path}"
        );
    }
    let post = op
        .post_json("/v1/audit/checkpoint", &Value::Null)
        .await
        .unwrap();
    assert_eq!(post.status.as_u16(), 405);
    assert_eq!(post.error_code().as_deref(), Some("method_not_allowed"));
    assert_eq!(OPERATOR, "registry-operator");
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_checkpoint_yet_is_404() {
    // A long interval and a large cadence: nothing is signed while the test looks.
    let bed = siirto_devkit::testbed::Testbed::start(siirto_devkit::testbed::TestbedOptions {
        env: vec![
            ("SIIRTO__AUDIT__CHECKPOINT_EVERY".into(), "1000000".into()),
            ("SIIRTO__AUDIT__CHECKPOINT_INTERVAL".into(), "1h".into()),
        ],
        ..Default::default()
    })
    .await
    .unwrap();
    let op = operator(&bed);
    assert_eq!(
        error_of(&op, "/v1/audit/checkpoint").await,
        (404, "no_checkpoint".to_owned())
    );
    assert_eq!(
        error_of(&op, "/v1/audit/proof/inclusion?index=0").await,
        (404, "no_checkpoint".to_owned())
    );
    // With an explicit size the proof is given all the same (the tree follows the store).
    op.get("/v1/audit?limit=1", &[]).await.unwrap();
    let a = op
        .get("/v1/audit/proof/inclusion?index=0&size=1", &[])
        .await
        .unwrap();
    assert_eq!(a.status.as_u16(), 200, "{}", a.json());
    assert_eq!(a.json()["proof"], json!([]));
    bed.stop().await;
}

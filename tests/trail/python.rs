//! The running gateway's checkpoints, proofs and receipts checked from outside by
//! `tests/tools/gateway_trail.py`: Python's ssl for mTLS, hashlib + `cryptography` for RFC 9162
//! and signed notes, `jwcrypto` for the receipt. No Rust code judges these.

use std::process::{Command, Output};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use siirto_devkit::testbed::Testbed;
use siirto_gateway::store::testdb::TestDb;

use crate::support::{
    OPERATOR, OTHER_STUDENT, STUDENT, deliver, python, python_available, start, tool,
    wait_checkpoint,
};

fn gateway_trail(bed: &Testbed, args: &[&str]) -> Output {
    let op = bed.pki.participant(OPERATOR).unwrap();
    let mut cmd = Command::new(python());
    cmd.arg(tool("gateway_trail.py"))
        .arg(args[0])
        .args(["--url", &bed.api_url()])
        .arg("--ca")
        .arg(&bed.pki.ca.cert);
    if args[0] == "proofs" {
        cmd.arg("--cert")
            .arg(&op.client.cert)
            .arg("--key")
            .arg(&op.client.key);
    } else {
        let es = bed.pki.participant("eservice").unwrap();
        cmd.arg("--cert")
            .arg(&es.client.cert)
            .arg("--key")
            .arg(&es.client.key)
            .arg("--operator-cert")
            .arg(&op.client.cert)
            .arg("--operator-key")
            .arg(&op.client.key);
    }
    cmd.args(&args[1..]).output().unwrap()
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_proof_of_the_running_gateway_checks_in_independent_python() {
    let test = "every_proof_of_the_running_gateway_checks_in_independent_python";
    if !python_available(test, "cryptography, jwcrypto") {
        return;
    }
    for db in TestDb::all().await {
        let bed = start(Some(db.url.clone()), None).await;
        deliver(&bed, STUDENT, "identity achievements").await;
        deliver(&bed, OTHER_STUDENT, "identity enrolment").await;
        let gw = bed.gateway.clone().unwrap();
        let len = gw.store.audit_len().await.unwrap();
        let cp = wait_checkpoint(&bed, len).await;
        let size = cp["tree_size"].as_u64().unwrap();

        let out = gateway_trail(&bed, &["proofs"]);
        assert!(out.status.success(), "{}: {}", db.backend, show(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("OK checkpoint signature by the served key, tree size "),
            "{text}"
        );
        assert!(text.contains("OK chain and root recomputed over"), "{text}");
        assert!(
            text.contains(" inclusion proofs\n") && text.contains(" consistency proofs\n"),
            "{text}"
        );
        assert!(size >= 12, "{size}");

        // The same check fails once a stored entry is changed behind the gateway's back.
        gw.store
            .execute_raw("UPDATE audit SET outcome = 'tampered' WHERE seq = 2")
            .await
            .unwrap();
        let out = gateway_trail(&bed, &["proofs"]);
        assert_eq!(out.status.code(), Some(1), "{}", show(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains("FAIL: entry 2: hash does not match its contents"),
            "{}",
            show(&out)
        );
        bed.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipt_verifies_with_jwcrypto_and_against_an_inclusion_proof() {
    let test = "receipt_verifies_with_jwcrypto_and_against_an_inclusion_proof";
    if !python_available(test, "cryptography, jwcrypto") {
        return;
    }
    for db in TestDb::all().await {
        let bed = start(Some(db.url.clone()), None).await;
        let (id, transfer) = deliver(&bed, STUDENT, "identity achievements").await;
        let leaf = transfer["audit_leaf"].as_u64().unwrap();
        wait_checkpoint(&bed, leaf + 1).await;

        let out = gateway_trail(&bed, &["receipt", "--transfer", &id]);
        assert!(out.status.success(), "{}: {}", db.backend, show(&out));
        let checked: Value = serde_json::from_slice(&out.stdout).unwrap();
        let claims = &checked["claims"];
        assert_eq!(claims["transfer_id"], id.as_str());
        assert_eq!(claims["sub"], STUDENT);
        assert_eq!(
            claims["src"],
            json!({"id": "turku", "name": {"fi": "Turun kaupunki", "sv": "Åbo stad", "en": "City of Turku"}})
        );
        assert_eq!(claims["dst"]["id"], "espoo");
        assert_eq!(claims["dst"]["name"]["sv"], "Esbo stad");
        assert_eq!(claims["purpose"], "school-change");
        assert_eq!(claims["scope"], "identity achievements");
        assert_eq!(claims["iss"], bed.config.gateway.id.as_str());
        assert_eq!(claims["audit_leaf_index"], leaf);
        // The consent-receipt claims: what was delivered, on what basis, over which text.
        assert_eq!(claims["jurisdiction"], "FI");
        assert_eq!(claims["basis"], "consent");
        assert!(claims.get("statutory_law").is_none());
        assert_eq!(claims["categories"], json!(["identity", "achievements"]));
        assert_eq!(claims["sensitive"], false);
        assert_eq!(claims["guardian"], false);
        assert_eq!(claims["delivered_at"], claims["iat"]);
        assert!(claims["consented_at"].as_i64().unwrap() <= claims["iat"].as_i64().unwrap());
        assert!(!claims["authorization_jti"].as_str().unwrap().is_empty());
        let shown = bed
            .consent_text(
                "turku",
                "espoo",
                "identity achievements",
                "school-change",
                "consent",
                siirto_core::lang::Lang::Fi,
            )
            .unwrap();
        assert_eq!(
            claims["consent_sha256"],
            siirto_core::clock::hex(&shown.sha256)
        );
        assert_eq!(claims["consent_version"], shown.version.as_str());
        assert_eq!(claims["consent_lang"], "fi");
        // The receipt's document hash is that of what the destination stored.
        let stored = bed.destinations["espoo"].stored();
        let body = stored.get(&id).expect("stored at espoo");
        assert_eq!(
            claims["document_sha256"],
            siirto_core::vault::sha256_hex(body)
        );

        // A receipt changed in the store (another scope claimed) fails the JOSE check.
        let receipt = transfer["receipt"].as_str().unwrap();
        let parts: Vec<&str> = receipt.split('.').collect();
        let mut payload: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        payload["scope"] = "identity achievements support".into();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(payload.to_string()),
            parts[2]
        );
        // Stored as the gateway stores receipts: sealed (so it opens, and only JOSE can tell).
        let gw = bed.gateway.clone().unwrap();
        let sealed =
            siirto_core::receipt::seal_receipt(&gw.vault, &id, &forged, gw.random.as_ref());
        let blob = siirto_core::clock::hex(&sealed.bytes);
        let literal = match db.backend {
            "sqlite" => format!("X'{blob}'"),
            _ => format!("'\\x{blob}'::bytea"),
        };
        gw.store
            .execute_raw(&format!(
                "UPDATE transfers SET receipt_sealed = {literal} WHERE id = '{id}'"
            ))
            .await
            .unwrap();
        let out = gateway_trail(&bed, &["receipt", "--transfer", &id]);
        assert_eq!(out.status.code(), Some(1), "{}", show(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("FAIL: receipt signature"),
            "{}",
            show(&out)
        );
        bed.stop().await;
    }
}

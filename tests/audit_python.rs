//! The audit log's proofs, checkpoints and receipts checked by independent implementations:
//! `tests/tools/verify_proofs.py` (hashlib + `cryptography`, written from RFC 9162 and the
//! C2SP specs) and `tests/tools/verify_receipt.py` (the `jwcrypto` JOSE library); and the audit
//! key as `openssl genpkey` writes it.
//!
//! When a tool is missing the test prints `SKIPPED:` and passes, unless
//! `SIIRTO_REQUIRE_TOOLS=1`, when it fails. `SIIRTO_PYTHON` names the interpreter.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};
use siirto_core::audit::{
    AuditEntry, AuditEvent, AuditLog, AuditPublicKey, AuditSigningKey, CheckpointSigner, Hash,
    Pseudonymizer,
};
use siirto_core::clock::{Timestamp, hex};
use siirto_core::consent::Basis;
use siirto_core::lang::{Lang, Localized};
use siirto_core::receipt::{ConsentRecord, Party, ReceiptClaims, sign_receipt, verify_receipt};
use siirto_core::scope::Scope;
use siirto_core::student_id::StudentId;

const ORIGIN: &str = "siirto.example.fi/audit";

fn python() -> String {
    std::env::var("SIIRTO_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn skip_or_fail(test: &str, why: &str) {
    if std::env::var("SIIRTO_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("{test}: {why} and SIIRTO_REQUIRE_TOOLS=1");
    }
    // Written past the test harness's capture so it is seen.
    let _ = std::io::stderr().write_all(format!("SKIPPED: {test}: {why}\n").as_bytes());
}

fn python_available(test: &str, modules: &str) -> bool {
    let ok = Command::new(python())
        .args(["-c", &format!("import {modules}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        skip_or_fail(
            test,
            &format!("{} with module(s) {modules} is not available", python()),
        );
    }
    ok
}

fn tool(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/tools")
        .join(name)
}

fn run_python(script: &str, args: &[&str]) -> Output {
    Command::new(python())
        .arg(tool(script))
        .args(args)
        .output()
        .unwrap()
}

fn key() -> AuditSigningKey {
    let pkcs8 =
        ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    AuditSigningKey::from_pkcs8_der(pkcs8.as_ref()).unwrap()
}

fn hexes(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(|h| hex(h)).collect()
}

fn entry_json(e: &AuditEntry) -> Value {
    json!({
        "seq": e.seq,
        "at": e.event.at.millis(),
        "actor": e.event.actor,
        "action": e.event.action,
        "outcome": e.event.outcome,
        "transfer_id": e.event.transfer_id,
        "subject": e.event.subject.as_ref().map(|p| p.as_str().to_owned()),
        "document_sha256": e.event.document_sha256.map(|d| hex(&d)),
        "detail": e.event.detail,
        "prev_hash": hex(&e.prev_hash),
        "hash": hex(&e.hash),
    })
}

/// A log of 257 varied entries (non-ASCII text, every optional field both ways).
fn varied_log() -> (AuditLog, Vec<AuditEntry>) {
    let p = Pseudonymizer::new(b"0123456789abcdef0123456789abcdef").unwrap();
    let student = StudentId::parse("010503A123N").ok();
    let mut log = AuditLog::new();
    let mut entries = Vec::new();
    for i in 0..257u64 {
        let mut e = AuditEvent::new(
            Timestamp::from_millis(1_795_448_460_000 + i as i64),
            ["turku", "gateway", "jyväskylä-ops"][(i % 3) as usize],
            "transfer.step",
            if i % 5 == 0 { "" } else { "ok" },
        );
        if i % 2 == 0 {
            e.transfer_id = Some(format!("t-{i}"));
        }
        if i % 3 == 0 {
            e.subject = student.as_ref().map(|s| p.pseudonym(s));
        }
        if i % 4 == 0 {
            e.document_sha256 = Some([(i % 256) as u8; 32]);
        }
        if i % 7 != 0 {
            e.detail.insert("ääkköset".into(), "öljy €".into());
            e.detail.insert("Z".into(), i.to_string());
            e.detail.insert("a".into(), String::new());
        }
        entries.push(log.append(e));
    }
    (log, entries)
}

#[test]
fn proofs_and_checkpoint_verify_independently() {
    let test = "proofs_and_checkpoint_verify_independently";
    if !python_available(test, "cryptography") {
        return;
    }
    let signer = CheckpointSigner::new(key(), ORIGIN).unwrap();
    let (log, entries) = varied_log();
    let size = log.size();
    let checkpoint = signer
        .sign(size, log.root(), Timestamp::from_millis(1_795_448_470_000))
        .into_string();
    let old = 100;
    let input = |inclusion_proof: Vec<String>, entries: &[AuditEntry]| {
        json!({
            "origin": ORIGIN,
            "public_key": hex(signer.key().public_key().as_bytes()),
            "checkpoint": checkpoint,
            "entries": entries.iter().map(entry_json).collect::<Vec<_>>(),
            "inclusion": {
                "index": 42, "size": size,
                "leaf_hash": hex(&log.tree().leaf(42).unwrap()),
                "proof": inclusion_proof,
            },
            "consistency": {
                "old_size": old,
                "old_root": hex(&log.tree().root_at(old).unwrap()),
                "proof": hexes(&log.tree().consistency_proof(old, size).unwrap()),
            },
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proofs.json");
    let inclusion = hexes(&log.tree().inclusion_proof(42, size).unwrap());

    std::fs::write(&path, input(inclusion.clone(), &entries).to_string()).unwrap();
    let out = run_python("verify_proofs.py", &[path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("OK ")).count(),
        5,
        "{stdout}"
    );

    // The independent checker is not vacuous: a changed proof hash or entry fails it.
    let mut bad = inclusion.clone();
    bad[3] = hex(&[7u8; 32]);
    std::fs::write(&path, input(bad, &entries).to_string()).unwrap();
    let out = run_python("verify_proofs.py", &[path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("inclusion"));

    let mut changed = entries.clone();
    changed[200].event.outcome = "failed".into();
    std::fs::write(&path, input(inclusion, &changed).to_string()).unwrap();
    let out = run_python("verify_proofs.py", &[path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("entry 200"));
}

fn receipt_claims() -> ReceiptClaims {
    ReceiptClaims {
        issuer: "siirto.example.fi".into(),
        transfer_id: "0b6f6f1e-7a0c-4d5e-9f3a-2c1b0a998877".into(),
        subject: StudentId::parse("131052-308T").unwrap(),
        source: Party {
            id: "helsinki".into(),
            name: Some(localized(
                "Helsingin kaupunki",
                "Helsingfors stad",
                "City of Helsinki",
            )),
        },
        destination: Party {
            id: "turku".into(),
            name: Some(localized("Turun kaupunki", "Åbo stad", "City of Turku")),
        },
        purpose: "school-change".into(),
        scope: Scope::parse("identity enrolment achievements").unwrap(),
        document_sha256: [0x5a; 32],
        issued_at: Timestamp::from_secs(1_795_448_460),
        audit_leaf_index: 1234,
        basis: Basis::Consent,
        statutory_law: None,
        consented_at: Some(Timestamp::from_secs(1_795_448_400)),
        authorization_jti: Some("a2b9c0de".into()),
        consent: Some(ConsentRecord {
            sha256: [0x3c; 32],
            version: "00112233aabbccdd".into(),
            lang: Lang::Fi,
        }),
        guardian: true,
        consent_given_at: None,
    }
}

fn localized(fi: &str, sv: &str, en: &str) -> Localized {
    Localized {
        fi: fi.into(),
        sv: sv.into(),
        en: en.into(),
    }
}

#[test]
fn receipts_verify_with_jwcrypto() {
    let test = "receipts_verify_with_jwcrypto";
    if !python_available(test, "jwcrypto") {
        return;
    }
    let k = key();
    let token = sign_receipt(&receipt_claims(), &k);
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("receipts.jwks.json");
    std::fs::write(&jwks, k.public_key().to_jwks().to_string()).unwrap();
    let out = run_python(
        "verify_receipt.py",
        &["--jwks", jwks.to_str().unwrap(), "--token", &token],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["header"]["kid"], k.public_key().thumbprint());
    assert_eq!(
        seen["claims"],
        json!({
            "iss": "siirto.example.fi",
            "transfer_id": "0b6f6f1e-7a0c-4d5e-9f3a-2c1b0a998877",
            "sub": "131052-308T",
            "jurisdiction": "FI",
            "basis": "consent",
            "src": {"id": "helsinki", "name": {"fi": "Helsingin kaupunki", "sv": "Helsingfors stad", "en": "City of Helsinki"}},
            "dst": {"id": "turku", "name": {"fi": "Turun kaupunki", "sv": "Åbo stad", "en": "City of Turku"}},
            "purpose": "school-change",
            "scope": "identity enrolment achievements",
            "categories": ["identity", "enrolment", "achievements"],
            "sensitive": false,
            "document_sha256": hex(&[0x5a; 32]),
            "iat": 1_795_448_460,
            "delivered_at": 1_795_448_460,
            "consented_at": 1_795_448_400,
            "authorization_jti": "a2b9c0de",
            "consent_sha256": hex(&[0x3c; 32]),
            "consent_version": "00112233aabbccdd",
            "consent_lang": "fi",
            "guardian": true,
            "audit_leaf_index": 1234,
        })
    );
    assert!(verify_receipt(&token, &k.public_key()).is_ok());

    // Published under another key, the same receipt is refused by jwcrypto too.
    let other = key();
    let mut jwk = other.public_key().to_jwk();
    jwk["kid"] = json!(k.public_key().thumbprint());
    std::fs::write(&jwks, json!({"keys": [jwk]}).to_string()).unwrap();
    let out = run_python(
        "verify_receipt.py",
        &["--jwks", jwks.to_str().unwrap(), "--token", &token],
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn openssl_written_audit_key_signs_verifiable_checkpoints() {
    let test = "openssl_written_audit_key_signs_verifiable_checkpoints";
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("audit-signing.key");
    let generated = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&key_path)
        .output();
    if !matches!(&generated, Ok(o) if o.status.success()) {
        skip_or_fail(test, "openssl with Ed25519 support is not available");
        return;
    }
    let pem = std::fs::read_to_string(&key_path).unwrap();
    let key = AuditSigningKey::from_pkcs8_pem(&pem).unwrap();
    // The public key openssl derives is the one the gateway publishes.
    let public = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key_path)
        .output()
        .unwrap();
    let public = AuditPublicKey::from_spki_pem(&String::from_utf8(public.stdout).unwrap()).unwrap();
    assert_eq!(public, key.public_key());

    // And openssl verifies a checkpoint signature made with it.
    let signer = CheckpointSigner::new(key, ORIGIN).unwrap();
    let (log, _) = varied_log();
    let note = signer
        .sign(log.size(), log.root(), Timestamp::from_millis(0))
        .into_string();
    let (text, sig_line) = note.rsplit_once("\n\n").unwrap();
    let text = format!("{text}\n");
    let b64 = sig_line.trim_end().rsplit(' ').next().unwrap();
    use base64::Engine;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    std::fs::write(dir.path().join("note.txt"), &text).unwrap();
    std::fs::write(dir.path().join("note.sig"), &sig[4..]).unwrap();
    std::fs::write(dir.path().join("pub.pem"), public.to_spki_pem()).unwrap();
    let verified = Command::new("openssl")
        .current_dir(dir.path())
        .args([
            "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin", "-in", "note.txt",
            "-sigfile", "note.sig",
        ])
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
}

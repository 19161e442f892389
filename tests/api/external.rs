//! From outside, with no Rust on the client side: the `siirto serve` binary runs on the
//! testbed's configuration; `tests/tools/curl_transfer.sh` signs an authorization with Python
//! (`tests/tools/sign_jws.py`, the `cryptography` package) using the development issuer's key,
//! submits it with `curl --cert/--key/--cacert`, and polls `GET /v1/transfers/{id}` with curl
//! until `delivered`. Python-made replays and hostile tokens are refused with their codes; the
//! operator reads the audit with curl; curl without a certificate gets no HTTP answer; SIGTERM
//! stops the gateway cleanly.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use siirto_devkit::testbed::{Testbed, TestbedOptions};

use crate::helpers::*;

/// Signs `claims` with Python: `sign_jws.py sign ...`, with the extra `args`.
async fn python_sign(python: &Path, claims: &Value, args: &[&str]) -> String {
    let out = tokio::process::Command::new(python)
        .arg(tools_dir().join("sign_jws.py"))
        .arg("sign")
        .arg("--claims")
        .arg(claims.to_string())
        .args(args)
        .output()
        .await
        .expect("run sign_jws.py");
    assert!(
        out.status.success(),
        "sign_jws.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .trim()
        .to_owned()
}

/// Claims without `iat`/`exp`/`jti`: Python sets them (`--lifetime 300 --jti-random`).
/// With the hash of the Finnish consent text the gateway gives for them.
fn claims_for_python(bed: &Testbed, scope: &str, dst: &str) -> Value {
    let text = bed
        .consent_text(
            "turku",
            dst,
            scope,
            "school-change",
            "consent",
            siirto_core::lang::Lang::Fi,
        )
        .expect("a consent text");
    json!({
        "iss": bed.pki.issuer.id,
        "aud": bed.config.gateway.id,
        "sub": STUDENT,
        "src": "turku",
        "dst": dst,
        "scope": scope,
        "purpose": "school-change",
        "consent_sha256": siirto_core::clock::hex(&text.sha256),
        "consent_lang": "fi",
    })
}

/// Runs `tests/tools/curl_transfer.sh` as the e-service for `subject`, Turku → Espoo.
async fn curl_transfer(bed: &Testbed, subject: &str, scope: &str) -> std::process::Output {
    let eservice = &bed.pki.participant("eservice").expect("eservice").client;
    tokio::process::Command::new("bash")
        .arg(tools_dir().join("curl_transfer.sh"))
        .args(["--api", &bed.api_url()])
        .arg("--cacert")
        .arg(&bed.pki.ca.cert)
        .arg("--cert")
        .arg(&eservice.cert)
        .arg("--key")
        .arg(&eservice.key)
        .arg("--issuer-key")
        .arg(&bed.pki.issuer.private_key)
        .args(["--kid", &bed.pki.issuer.kid])
        .args(["--iss", &bed.pki.issuer.id, "--aud", &bed.config.gateway.id])
        .args(["--sub", subject, "--src", "turku", "--dst", "espoo"])
        .args(["--scope", scope, "--timeout", "30"])
        .output()
        .await
        .expect("run curl_transfer.sh")
}

/// Waits until `siirto serve` answers `GET /readyz` on its admin listener.
async fn wait_until_ready(bed: &Testbed, server: &mut tokio::process::Child, log: &Path) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = tokio::process::Command::new("curl")
            .args([
                "-s",
                "--max-time",
                "2",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .arg(format!("{}/readyz", bed.admin_url()))
            .output()
            .await
            .expect("run curl");
        if out.stdout == b"200" {
            return;
        }
        if let Ok(Some(status)) = server.try_wait() {
            panic!(
                "siirto serve exited with {status}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "siirto serve did not become ready:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_and_a_python_signed_jws_drive_a_transfer_through_the_binary() {
    let (Some(_curl), Some(python)) = (
        tool("curl", &["--version"], "curl"),
        python_with_cryptography(),
    ) else {
        return;
    };
    let bed = start_with(TestbedOptions {
        in_process_gateway: false,
        ..TestbedOptions::default()
    })
    .await;
    bed.sources["turku"].insert(STUDENT, school_record(STUDENT, false).into_bytes());

    // The gateway as an operator runs it.
    let log: PathBuf = bed.dir.join("serve.log");
    let mut server = tokio::process::Command::new(siirto_binary())
        .arg("serve")
        .arg("--config")
        .arg(bed.config_path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .kill_on_drop(true)
        .spawn()
        .expect("start siirto serve");
    wait_until_ready(&bed, &mut server, &log).await;

    // The e-service side, as a shell script: Python signs, curl submits and polls.
    let issuer_key = bed.pki.issuer.private_key.to_string_lossy().into_owned();
    let kid = bed.pki.issuer.kid.clone();
    let scope = "identity enrolment achievements";
    let script = curl_transfer(&bed, STUDENT, scope).await;
    let stdout = String::from_utf8_lossy(&script.stdout);
    let stderr = String::from_utf8_lossy(&script.stderr);
    assert!(
        script.status.success(),
        "curl_transfer.sh exited {}:\n{stdout}\n{stderr}\n{}",
        script.status,
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let lines: Vec<&str> = stdout.lines().collect();
    let accepted: Value = serde_json::from_str(lines[0]).expect("submission answer");
    assert_eq!(accepted["status"], "accepted");
    let id = accepted["id"].as_str().expect("id").to_owned();
    assert_eq!(accepted["links"]["self"], format!("/v1/transfers/{id}"));
    let transfer: Value =
        serde_json::from_str(lines.last().expect("final view")).expect("transfer JSON");
    assert_eq!(transfer["id"], id.as_str());
    assert_eq!(transfer["status"], "delivered", "{transfer:#}");
    assert!(transfer["receipt"].is_string(), "{transfer:#}");

    // Espoo received it once, and the hash curl was shown is the hash of what arrived.
    let requests = bed.destinations["espoo"].requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].idempotency_key, id);
    assert_valid(
        siirto_core::formats::Format::SiirtoV1,
        &requests[0].body,
        "record delivered via the binary",
    );
    assert_eq!(
        transfer["content_sha256"],
        siirto_core::vault::sha256_hex(&requests[0].body)
    );

    // The script reports a transfer that fails, and exits 1.
    let failing = curl_transfer(&bed, OTHER_STUDENT, scope).await;
    let stderr = String::from_utf8_lossy(&failing.stderr);
    assert_eq!(failing.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("failed: source_not_found"), "{stderr}");

    // A Python-signed token used twice: the second submission is a replay.
    let token = python_sign(
        &python,
        &claims_for_python(&bed, scope, "helsinki"),
        &[
            &format!("--key={issuer_key}"),
            "--alg=ES256",
            &format!("--kid={kid}"),
            "--lifetime=300",
            "--jti-random",
        ],
    )
    .await;
    let submission = json!({ "authorization": token }).to_string();
    let (_, status, body) = curl(
        &bed,
        Some("eservice"),
        "POST",
        "/v1/transfers",
        Some(&submission),
        &[],
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let (_, status, body) = curl(
        &bed,
        Some("eservice"),
        "POST",
        "/v1/transfers",
        Some(&submission),
        &[],
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(error_code(&body), "replay");

    // Tokens no honest signer makes, made by Python: unsigned, and HMAC keyed with the public
    // JWKS.
    let kid_arg = format!("--kid={kid}");
    let secret_arg = format!("--secret-file={}", bed.pki.issuer.jwks.display());
    for args in [
        vec!["--alg=none", &kid_arg],
        vec!["--alg=HS256", &secret_arg, &kid_arg],
    ] {
        let mut args = args;
        args.extend(["--lifetime=300", "--jti-random"]);
        let bad = python_sign(&python, &claims_for_python(&bed, scope, "espoo"), &args).await;
        let (_, status, body) = curl(
            &bed,
            Some("eservice"),
            "POST",
            "/v1/transfers",
            Some(&json!({ "authorization": bad }).to_string()),
            &[],
        )
        .await;
        assert_eq!(status, 401, "{args:?}: {body}");
        assert_eq!(error_code(&body), "unsupported_alg", "{args:?}");
    }

    // The operator reads the transfer's audit trail with curl.
    let (ok, status, body) = curl(
        &bed,
        Some("registry-operator"),
        "GET",
        &format!("/v1/audit?transfer={id}"),
        None,
        &[],
    )
    .await;
    assert!(ok && status == 200, "{status}: {body}");
    let page: Value = serde_json::from_str(&body).expect("JSON");
    let actions: Vec<&str> = page["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(actions.first(), Some(&"transfer.accepted"), "{actions:?}");
    assert!(actions.contains(&"transfer.delivered"), "{actions:?}");

    // Without a client certificate curl gets no HTTP answer at all.
    let (ok, status, body) =
        curl(&bed, None, "GET", &format!("/v1/transfers/{id}"), None, &[]).await;
    assert!(!ok, "curl without a certificate must fail: {status} {body}");
    assert_eq!(status, 0, "no HTTP status: {body}");

    // SIGTERM: the gateway stops accepting, finishes, and exits 0.
    let pid = server.id().expect("running").to_string();
    // The shell's own `kill`: no procps needed.
    let killed = tokio::process::Command::new("sh")
        .args(["-c", "kill -TERM \"$1\"", "sh", &pid])
        .status()
        .await
        .expect("run kill");
    assert!(killed.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), server.wait())
        .await
        .expect("siirto serve stops after SIGTERM")
        .expect("wait");
    assert!(
        exit.success(),
        "exit {exit}:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    bed.stop().await;
}

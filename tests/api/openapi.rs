//! `GET /v1/openapi.json` (CONTRACT.md, "X-Road: OpenAPI"): every participant, over mutual TLS,
//! reads the OpenAPI 3.1 description of the API, and it is `docs/openapi.yaml` as JSON (the
//! unit tests of `http::openapi` keep the document and the routes in step).

use serde_json::Value;

use crate::helpers::start;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_participant_reads_the_openapi_document_as_json() {
    let bed = start().await;
    let yaml = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.yaml"),
    )
    .expect("docs/openapi.yaml");
    let expected = siirto_gateway::http::openapi::parse(&yaml).expect("the document parses");
    for participant in ["eservice", "espoo", "turku", "registry-operator"] {
        let answer = bed
            .client(participant)
            .expect("client")
            .get("/v1/openapi.json", &[])
            .await
            .expect("answer");
        assert_eq!(answer.status.as_u16(), 200, "{participant}");
        let body: Value = answer.json();
        assert_eq!(body, expected, "{participant} reads the document");
        assert_eq!(body["openapi"], "3.1.0");
    }
    bed.stop().await;
}

/// Schemathesis (PyPI), an independent property-based API tester, driven by
/// `docs/openapi.yaml` against a live gateway over mutual TLS, once as each kind of caller: no
/// answer is a 5xx, every status is one the document lists for the operation, and every body
/// matches the document's schema. Its summary is printed in the test output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_every_answer_as_documented() {
    let Some(st) = schemathesis() else {
        return;
    };
    let bed = start().await;
    let schema = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.yaml");
    let report = tempfile::tempdir().expect("tempdir");
    for participant in ["registry-operator", "eservice"] {
        let client = &bed
            .pki
            .participant(participant)
            .expect("participant")
            .client;
        let out = tokio::process::Command::new(&st)
            // Its cache (`.schemathesis/`) goes to the temporary directory, not the repository.
            .current_dir(report.path())
            .arg("run")
            .arg(&schema)
            .args(["--url", &bed.api_url()])
            .arg("--tls-verify")
            .arg(&bed.pki.ca.cert)
            .arg("--request-cert")
            .arg(&client.cert)
            .arg("--request-cert-key")
            .arg(&client.key)
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,response_schema_conformance",
                "--max-examples",
                "15",
                "--workers",
                "1",
                "--seed",
                "20261208",
                "--no-color",
            ])
            .arg("--report-dir")
            .arg(report.path())
            .env("SCHEMATHESIS_HOOKS", "")
            .output()
            .await
            .expect("schemathesis runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        // Its summary: operations tested and test cases generated and passed.
        let summary: Vec<&str> = stdout
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("Tested:") || l.contains(" generated, "))
            .collect();
        // Straight to the process's stderr, past libtest's capture, so the summary is seen.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("schemathesis as {participant}: {}\n", summary.join(" | ")).as_bytes(),
        );
        assert!(
            out.status.success(),
            "schemathesis as {participant} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    bed.stop().await;
}

/// The `schemathesis` command (installed by `scripts/test` with pip), or a loud skip.
fn schemathesis() -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("schemathesis"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        siirto_testsupport::skip("needs schemathesis (python3 -m pip install schemathesis)");
    }
    found
}

//! Shared helpers of the trail tests: a testbed with a fast checkpoint cadence, a delivered
//! transfer, waiting for checkpoints, running the `siirto` binary and the outside tools.
#![allow(dead_code)] // each test module uses its own part of this

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use siirto_devkit::client::MtlsClient;
use siirto_devkit::demo::{DEMO_STUDENT, school_record};
use siirto_devkit::testbed::{Testbed, TestbedOptions};

/// The demo pupil (a valid henkilötunnus that belongs to no one).
pub const STUDENT: &str = DEMO_STUDENT;
/// Another made-up pupil.
pub const OTHER_STUDENT: &str = "131052-308T";
pub const OPERATOR: &str = "registry-operator";

/// A school's record of `student` (the shared sample record, every category).
pub fn record_for(student: &str) -> Vec<u8> {
    school_record(student, false).into_bytes()
}

/// Checkpoints after every 5 entries or 1 s (the shortest interval allowed).
pub fn fast_checkpoints() -> Vec<(String, String)> {
    vec![
        ("SIIRTO__AUDIT__CHECKPOINT_EVERY".into(), "5".into()),
        ("SIIRTO__AUDIT__CHECKPOINT_INTERVAL".into(), "1s".into()),
    ]
}

/// A testbed with the gateway in process, fast checkpoints, and the given database and
/// directory (a temporary one when `None`).
pub async fn start(database_url: Option<String>, dir: Option<PathBuf>) -> Testbed {
    Testbed::start(TestbedOptions {
        dir,
        database_url,
        env: fast_checkpoints(),
        ..TestbedOptions::default()
    })
    .await
    .expect("testbed starts")
}

pub fn operator(bed: &Testbed) -> MtlsClient {
    bed.client(OPERATOR).expect("operator client")
}

/// Submits a Turku → Espoo transfer for `student` with `scope` as the e-service and waits until
/// it is delivered; returns its id and `GET /v1/transfers/{id}`.
pub async fn deliver(bed: &Testbed, student: &str, scope: &str) -> (String, Value) {
    bed.sources["turku"].insert(student, record_for(student));
    let id = submit(bed, student, "turku", "espoo", scope).await;
    let transfer = bed
        .wait_for_status("eservice", &id, &["delivered"], Duration::from_secs(20))
        .await
        .expect("delivered");
    (id, transfer)
}

/// Submits a `src` → `dst` transfer for `student` with `scope` as the e-service; requires
/// `202` and returns its id.
pub async fn submit(bed: &Testbed, student: &str, src: &str, dst: &str, scope: &str) -> String {
    let token = bed
        .sign(&bed.authorization(student, src, dst, scope).claims())
        .expect("sign");
    let answer = bed
        .client("eservice")
        .expect("client")
        .submit(&token)
        .await
        .expect("submit");
    assert_eq!(answer.status.as_u16(), 202, "{}", answer.json());
    answer.json()["id"].as_str().expect("id").to_owned()
}

/// Polls `GET /v1/audit/checkpoint` until a checkpoint covers at least `size` entries.
pub async fn wait_checkpoint(bed: &Testbed, size: u64) -> Value {
    let client = operator(bed);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let answer = client.get("/v1/audit/checkpoint", &[]).await.expect("get");
        let body = answer.json();
        if answer.status.as_u16() == 200 && body["tree_size"].as_u64().unwrap_or(0) >= size {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no checkpoint of size >= {size}; last answer {} {body}",
            answer.status
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the `siirto` binary.
pub fn siirto(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_siirto"))
        .args(args)
        .env("SIIRTO_LOG", "warn")
        .output()
        .expect("run siirto")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `SKIPPED:` loudly, or a failure under `SIIRTO_REQUIRE_TOOLS=1`.
pub fn skip_or_fail(test: &str, why: &str) {
    if std::env::var("SIIRTO_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("{test}: {why} and SIIRTO_REQUIRE_TOOLS=1");
    }
    // Written past the test harness's capture so it is seen.
    let _ = std::io::stderr().write_all(format!("SKIPPED: {test}: {why}\n").as_bytes());
}

pub fn python() -> String {
    std::env::var("SIIRTO_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Whether Python with `modules` is here (else skipped or failed, see [`skip_or_fail`]).
pub fn python_available(test: &str, modules: &str) -> bool {
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

pub fn tool(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/tools")
        .join(name)
}

/// The Chromium binary, if installed (`SIIRTO_CHROMIUM` names another).
pub fn chromium(test: &str) -> Option<String> {
    let candidates = match std::env::var("SIIRTO_CHROMIUM") {
        Ok(c) => vec![c],
        Err(_) => vec!["chromium".into(), "chromium-browser".into()],
    };
    for c in candidates {
        if Command::new(&c)
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
        {
            return Some(c);
        }
    }
    skip_or_fail(test, "chromium is not installed (apt-get install chromium)");
    None
}

/// All audit entries, read through the gateway's store.
pub async fn audit_entries(bed: &Testbed) -> Vec<siirto_core::audit::AuditEntry> {
    let gw = bed.gateway.as_ref().expect("in-process gateway");
    gw.store.audit_range(0, 100_000).await.expect("audit")
}

/// A plain-HTTP proxy on 127.0.0.1:0 that forwards each GET to the gateway with `client`'s
/// certificate, adding the header fields `headers` gives for that request; returns its
/// `http://127.0.0.1:PORT`. Headless Chromium cannot present a client certificate (without a
/// system-wide policy file and an NSS database), so a test browser goes through this, as a
/// reverse proxy in front of an operator's browser or an e-service's page would.
pub async fn proxy(
    client: MtlsClient,
    headers: impl Fn() -> Vec<(String, String)> + Send + Sync + 'static,
) -> (String, siirto_gateway::server::ShutdownTrigger) {
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::Response;
    use siirto_gateway::server::{ServerLimits, Shutdown};
    use std::sync::Arc;

    let client = Arc::new(client);
    let headers = Arc::new(headers);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let (trigger, signal) = Shutdown::new();
    tokio::spawn(siirto_gateway::server::serve_plain(
        listener,
        ServerLimits::default(),
        move |_conn| {
            let client = client.clone();
            let headers = headers.clone();
            move |req: hyper::Request<hyper::body::Incoming>| {
                let client = client.clone();
                let extra = headers();
                let path = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_else(|| "/".into());
                let fut: siirto_gateway::server::ResponseFuture = Box::pin(async move {
                    let extra: Vec<(&str, &str)> = extra
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    let mut r = match client.get(&path, &extra).await {
                        Ok(a) => {
                            let mut r = Response::new(Full::new(a.body));
                            *r.status_mut() = a.status;
                            *r.headers_mut() = a.headers;
                            r
                        }
                        Err(e) => {
                            let mut r = Response::new(Full::new(Bytes::from(e.to_string())));
                            *r.status_mut() = http::StatusCode::BAD_GATEWAY;
                            r
                        }
                    };
                    r.headers_mut().remove(http::header::TRANSFER_ENCODING);
                    r
                });
                fut
            }
        },
        signal,
    ));
    (format!("http://{addr}"), trigger)
}

#[path = "../support/admin.rs"]
mod admin;
pub use admin::admin_get;

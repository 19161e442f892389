//! What an operator sees of the real binary (`siirto serve`): an error at the IO edge is one
//! line that names the configuration key and the address once; structured (JSON) logs in which
//! every line of a request carries its `request_id` and every line about a transfer its
//! `transfer_id`, never the student; a warning for each failing call to a peer with the reason
//! and the next attempt; and answers that carry `X-Request-Id`, and `Allow` on every `405`.

use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use siirto_devkit::peers::Behaviour;
use siirto_devkit::testbed::{Testbed, TestbedOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{
    STUDENT, TRANSFER_DEADLINE, school_record, siirto_binary, start_with, submit_accepted, token,
};

const SCOPE: &str = "identity enrolment achievements";

/// The PKI, configuration and peers of an installation, without a gateway: the test runs the
/// binary.
async fn installation() -> Testbed {
    start_with(TestbedOptions {
        in_process_gateway: false,
        ..TestbedOptions::default()
    })
    .await
}

/// Runs `siirto serve` on the testbed's configuration with `env` until it exits.
pub(crate) async fn serve_until_exit(bed: &Testbed, env: &[(&str, &str)]) -> Output {
    let run = tokio::process::Command::new(siirto_binary())
        .args(["serve", "--config"])
        .arg(bed.config_path())
        .envs(env.iter().copied())
        .env_remove("SIIRTO_LOG_FORMAT")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(TRANSFER_DEADLINE, run)
        .await
        .expect("siirto serve exits on a start error")
        .expect("siirto serve runs")
}

/// Requires that `serve` failed with exit code 2 and printed exactly `line` (and nothing else:
/// in particular nothing logged as started).
fn assert_one_line(out: &Output, line: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert_eq!(stderr, format!("{line}\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_in_use_is_one_line_naming_the_key_and_the_address() {
    let bed = installation().await;
    for (key, addr) in [
        ("gateway.listen", bed.config.gateway.listen),
        ("gateway.admin_listen", bed.config.gateway.admin_listen),
    ] {
        let _taken = std::net::TcpListener::bind(addr).expect("occupy the port");
        // The operating system's own words for it.
        let in_use = std::net::TcpListener::bind(addr).expect_err("the port is taken");
        let out = serve_until_exit(&bed, &[]).await;
        assert_one_line(
            &out,
            &format!("siirto: {key}: cannot listen on {addr}: {in_use}"),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_postgres_is_one_line_with_host_port_and_the_refusal() {
    let bed = installation().await;
    // A port nothing listens on: bound, then closed again.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let refused = std::net::TcpStream::connect(closed).expect_err("nothing listens there");
    let url = format!("postgres://siirto:secret-password@{closed}/siirto");
    let out = serve_until_exit(&bed, &[("SIIRTO__GATEWAY__DATABASE_URL", &url)]).await;
    assert_one_line(
        &out,
        &format!(
            "siirto: gateway.database_url: cannot connect to PostgreSQL at {}:{}: {refused}",
            closed.ip(),
            closed.port()
        ),
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("secret-password"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_does_not_fit_its_certificate_stops_the_start_before_anything_is_logged() {
    let bed = installation().await;
    let gateway = &bed.config.gateway;
    let other_key = gateway.client_key.display().to_string();
    let out = serve_until_exit(
        &bed,
        &[
            ("SIIRTO__GATEWAY__SERVER_KEY", &other_key),
            ("SIIRTO_LOG", "info"),
        ],
    )
    .await;
    assert_one_line(
        &out,
        &format!(
            "siirto: {}: gateway.server_key (set by SIIRTO__GATEWAY__SERVER_KEY): the private \
             key does not belong to the certificate of gateway.server_cert ({})",
            bed.config_path().display(),
            gateway.server_cert.display()
        ),
    );
}

/// A running `siirto serve` with its stderr in a file.
pub(crate) struct Serving {
    child: tokio::process::Child,
    log: std::path::PathBuf,
}

impl Serving {
    pub(crate) async fn start(bed: &Testbed, env: &[(&str, &str)]) -> Serving {
        let log = bed.dir.join("serve.log");
        let child = tokio::process::Command::new(siirto_binary())
            .args(["serve", "--config"])
            .arg(bed.config_path())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .kill_on_drop(true)
            .spawn()
            .expect("start siirto serve");
        let mut serving = Serving { child, log };
        let admin = bed.config.gateway.admin_listen;
        serving
            .wait_for("the gateway to be ready", async || {
                ready(admin).await.then_some(())
            })
            .await;
        serving
    }

    pub(crate) fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `check` until it gives a value, failing (with the log) after a deadline or when
    /// the gateway exits.
    async fn wait_for<T>(&mut self, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + TRANSFER_DEADLINE;
        loop {
            if let Some(v) = check().await {
                return v;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("siirto serve exited with {status}:\n{}", self.text());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}:\n{}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) async fn stop(mut self) -> String {
        let _ = self.child.kill().await;
        self.text()
    }
}

/// Whether the admin listener answers `/readyz` with 200.
async fn ready(admin: std::net::SocketAddr) -> bool {
    raw_http(admin, "GET /readyz HTTP/1.0\r\n\r\n")
        .await
        .is_some_and(|answer| {
            answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
        })
}

/// Sends `request` as is to `addr` and reads the whole answer; `None` when nothing answers.
async fn raw_http(addr: std::net::SocketAddr, request: &str) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.ok()?;
    Some(answer)
}

/// The log as JSON lines; every line must be one JSON object.
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            assert!(value.is_object(), "not a JSON object: {line}");
            value
        })
        .collect()
}

/// The value of `field` in the line's event or in any span it was logged in.
fn field<'a>(line: &'a Value, field: &str) -> Option<&'a Value> {
    line.get(field).or_else(|| {
        line["spans"]
            .as_array()?
            .iter()
            .find_map(|span| span.get(field))
    })
}

fn has(line: &Value, name: &str, value: &str) -> bool {
    field(line, name).and_then(Value::as_str) == Some(value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_request_and_transfer_ids_and_warn_of_a_peer_that_is_down() {
    let bed = installation().await;
    bed.sources["turku"].insert(STUDENT, school_record(STUDENT, false).into_bytes());
    // Helsinki, as a destination, is down.
    bed.destinations["helsinki"].set_behaviour(Behaviour::Status(503));
    let mut serving = Serving::start(
        &bed,
        &[("SIIRTO_LOG_FORMAT", "json"), ("SIIRTO_LOG", "info")],
    )
    .await;

    let eservice = bed.client("eservice").expect("client");
    let answer = eservice
        .submit(&token(&bed, STUDENT, "turku", "espoo", SCOPE))
        .await
        .expect("the gateway answers");
    assert_eq!(answer.status.as_u16(), 202, "{}", answer.json());
    let delivered = answer.json()["id"].as_str().expect("an id").to_owned();
    let request_id = answer.headers["x-request-id"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert!(
        request_id.len() == 32 && request_id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{request_id}"
    );
    let down = submit_accepted(&bed, &token(&bed, STUDENT, "turku", "helsinki", SCOPE)).await;
    let status = bed
        .wait_for_status(
            "eservice",
            &delivered,
            &["delivered", "failed"],
            TRANSFER_DEADLINE,
        )
        .await
        .expect("the transfer finishes");
    assert_eq!(status["status"], "delivered", "{status:#}");

    let warned = |line: &Value| {
        line["level"] == "WARN"
            && has(line, "transfer_id", &down)
            && line["message"] == "delivery to a destination failed"
    };
    serving
        .wait_for("a warning about the destination that is down", async || {
            serving_lines(&bed).iter().find(|l| warned(l)).cloned()
        })
        .await;
    serving
        .wait_for("the delivered transfer's last line", async || {
            serving_lines(&bed)
                .iter()
                .find(|l| l["message"] == "transfer finished" && has(l, "transfer_id", &delivered))
                .cloned()
        })
        .await;
    let log = serving.stop().await;
    let lines = json_lines(&log);

    // The submission's line carries the request id that was answered, and the transfer id.
    let accepted = lines
        .iter()
        .find(|l| l["message"] == "transfer accepted" && has(l, "transfer_id", &delivered))
        .unwrap_or_else(|| panic!("no `transfer accepted` line for {delivered}:\n{log}"));
    assert!(has(accepted, "request_id", &request_id), "{accepted:#}");
    assert!(has(accepted, "participant", "eservice"), "{accepted:#}");
    assert!(has(accepted, "route", "submit_transfer"), "{accepted:#}");
    let finished = lines
        .iter()
        .find(|l| l["message"] == "transfer finished" && has(l, "transfer_id", &delivered))
        .expect("finished line");
    assert_eq!(finished["status"], "delivered", "{finished:#}");

    // The warning names the peer, the reason, the attempt and when the next one is due.
    let warning = lines.iter().find(|l| warned(l)).expect("warning");
    assert!(has(warning, "participant", "helsinki"), "{warning:#}");
    assert!(has(warning, "role", "destination"), "{warning:#}");
    assert!(
        has(warning, "reason", "destination_unavailable"),
        "{warning:#}"
    );
    assert_eq!(warning["attempt"], 1, "{warning:#}");
    let next = warning["next_attempt"].as_str().expect("next_attempt");
    assert!(
        next.len() >= 20 && next.ends_with('Z') && next.contains('T'),
        "an RFC 3339 time: {warning:#}"
    );
    // One warning a minute for helsinki as a destination, however often it is retried.
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["level"] == "WARN" && has(l, "participant", "helsinki"))
            .count(),
        1,
        "{log}"
    );

    // Never the student.
    for line in log.lines() {
        assert!(
            !line.contains(STUDENT),
            "the student id is in the log: {line}"
        );
    }
}

/// The lines logged so far by the gateway under test (parsed leniently while it runs).
fn serving_lines(bed: &Testbed) -> Vec<Value> {
    std::fs::read_to_string(bed.dir.join("serve.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_405_names_the_allowed_methods_and_every_answer_its_request_id() {
    let bed = crate::helpers::start().await;
    let eservice = bed.client("eservice").expect("client");
    for (method, path, allow) in [
        (http::Method::GET, "/v1/transfers", "POST"),
        (http::Method::DELETE, "/v1/transfers/abc", "GET"),
        (http::Method::GET, "/v1/transfers/abc/cancel", "POST"),
        (http::Method::POST, "/v1/audit/checkpoint", "GET"),
        // The operator page takes its forms by POST.
        (http::Method::PUT, "/operator/transfers", "GET, POST"),
    ] {
        let answer = eservice
            .send(method.clone(), path, &[], None)
            .await
            .expect("the gateway answers");
        assert_eq!(answer.status.as_u16(), 405, "{method} {path}");
        assert_eq!(
            answer.error_code().as_deref(),
            Some("method_not_allowed"),
            "{method} {path}"
        );
        assert_eq!(answer.headers["allow"], allow, "{method} {path}");
        assert_eq!(answer.headers["x-request-id"].len(), 32, "{method} {path}");
    }
    // Another request, another id.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let answer = eservice
            .get("/v1/no-such-route", &[])
            .await
            .expect("answers");
        assert_eq!(answer.status.as_u16(), 404);
        ids.push(answer.headers["x-request-id"].clone());
    }
    assert_ne!(ids[0], ids[1]);

    // The admin listener answers GET only, and says so.
    let answer = raw_http(
        bed.config.gateway.admin_listen,
        "POST /healthz HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
    )
    .await
    .expect("the admin listener answers");
    assert!(answer.starts_with("HTTP/1.0 405"), "{answer}");
    assert!(
        answer.lines().any(|l| l.eq_ignore_ascii_case("allow: GET")),
        "{answer}"
    );
}

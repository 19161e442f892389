//! Sources and destinations whose server certificate the gateway refuses, on the real binary
//! (`siirto serve`, its log on stderr at the default level): a certificate from a CA the
//! participant's `server_ca` does not hold, one for another name, and an expired one. Each
//! failed handshake is retried like an outage, and must not look like one: the attempt's step
//! and audit entry name the reason, `siirto_outbound_tls_failures_total` counts it by
//! participant and reason, and a warning names the peer, the reason and the attempt — never
//! the student.

use std::process::Stdio;
use std::time::Duration;

use siirto_core::clock::SystemRandom;
use siirto_devkit::pki::CertFiles;
use siirto_devkit::testbed::{Testbed, TestbedOptions};
use siirto_gateway::server::{Shutdown, ShutdownTrigger};

use crate::helpers::{STUDENT, TRANSFER_DEADLINE, school_record, siirto_binary, start_with, token};
use crate::support::{SCOPE, admin};

/// Serves `server` (certificate chain and key) as a source and destination endpoint on a fresh
/// port of 127.0.0.1, asking clients for a certificate of the development CA as the testbed's
/// own endpoints do; returns its `base_url`.
async fn endpoint(bed: &Testbed, server: &CertFiles, shutdown: Shutdown) -> String {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let tls = siirto_gateway::tls::server_config_from_files(
        &server.cert,
        &server.key,
        &bed.pki.ca.cert,
        &[],
    )
    .expect("endpoint TLS");
    let (source, _) =
        siirto_devkit::peers::spawn_endpoint(listener, tls, shutdown).expect("endpoint starts");
    source.base_url()
}

/// `SIIRTO__PARTICIPANTS__N__BASE_URL` for participant `id`.
fn base_url_variable(bed: &Testbed, id: &str) -> String {
    let index = bed
        .pki
        .participants
        .iter()
        .position(|p| p.id == id)
        .expect("participant");
    format!("SIIRTO__PARTICIPANTS__{index}__BASE_URL")
}

/// The log without its colour codes.
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters, ending with a letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The value of a counter sample with exactly these labels in the exposition text.
fn counter(metrics: &str, name: &str, labels: &str) -> Option<u64> {
    let prefix = format!("{name}{{{labels}}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
}

struct Case {
    src: &'static str,
    dst: &'static str,
    /// `fetch` or `deliver`.
    step: &'static str,
    action: &'static str,
    role: &'static str,
    peer: &'static str,
    reason: &'static str,
}

const CASES: [Case; 5] = [
    Case {
        src: "helsinki",
        dst: "turku",
        step: "fetch",
        action: "source.fetch",
        role: "source",
        peer: "helsinki",
        reason: "unknown_issuer",
    },
    Case {
        src: "oulu",
        dst: "turku",
        step: "fetch",
        action: "source.fetch",
        role: "source",
        peer: "oulu",
        reason: "name_mismatch",
    },
    Case {
        src: "turku",
        dst: "helsinki",
        step: "deliver",
        action: "destination.deliver",
        role: "destination",
        peer: "helsinki",
        reason: "unknown_issuer",
    },
    Case {
        src: "turku",
        dst: "oulu",
        step: "deliver",
        action: "destination.deliver",
        role: "destination",
        peer: "oulu",
        reason: "name_mismatch",
    },
    Case {
        src: "turku",
        dst: "espoo",
        step: "deliver",
        action: "destination.deliver",
        role: "destination",
        peer: "espoo",
        reason: "expired",
    },
];

/// Polls `check` until it gives a value; fails the test after a generous deadline, showing
/// `last()` (what was seen).
async fn poll<T>(mut check: impl AsyncFnMut() -> Option<T>, last: impl Fn() -> String) -> T {
    let deadline = tokio::time::Instant::now() + TRANSFER_DEADLINE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out: {}",
            last()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_peer_certificates_are_logged_shown_and_counted_with_their_reason() {
    let bed = start_with(TestbedOptions {
        in_process_gateway: false,
        ..TestbedOptions::default()
    })
    .await;
    bed.sources["turku"].insert(STUDENT, school_record(STUDENT, false).into_bytes());

    // Helsinki serves a certificate of another CA, Oulu one of the right CA for another name,
    // Espoo one of the right CA and name that expired yesterday.
    let (_stop, shutdown): (ShutdownTrigger, Shutdown) = Shutdown::new();
    let now = bed.clock.now();
    let day = Duration::from_secs(86_400);
    let expired = bed
        .pki
        .load_ca()
        .expect("CA")
        .issue_server_cert(
            "CN=espoo-school,O=Espoon kaupunki,C=FI",
            &["127.0.0.1", "localhost"],
            now.saturating_sub(day * 30),
            now.saturating_sub(day),
            &SystemRandom::new(),
        )
        .expect("expired certificate")
        .write(&bed.dir, "espoo-expired")
        .expect("written");
    let mut overrides = Vec::new();
    for (id, server) in [
        ("helsinki", &bed.pki.other_ca_server),
        ("oulu", &bed.pki.wrong_name_server),
        ("espoo", &expired),
    ] {
        let url = endpoint(&bed, server, shutdown.clone()).await;
        overrides.push((base_url_variable(&bed, id), url));
    }

    let log_path = bed.dir.join("serve.log");
    let mut server = tokio::process::Command::new(siirto_binary())
        .args(["serve", "--config"])
        .arg(bed.config_path())
        .envs(overrides)
        .env("SIIRTO_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).expect("log file"))
        .kill_on_drop(true)
        .spawn()
        .expect("start siirto serve");
    let log = || plain(&std::fs::read_to_string(&log_path).unwrap_or_default());
    let operator = bed.client("registry-operator").expect("client");
    poll(
        async || operator.get("/v1/audit/public-key", &[]).await.ok(),
        || format!("the gateway did not start:\n{}", log()),
    )
    .await;

    let mut ids = Vec::new();
    for case in &CASES {
        let token = token(&bed, STUDENT, case.src, case.dst, SCOPE);
        ids.push(crate::helpers::submit_accepted(&bed, &token).await);
    }

    for (case, id) in CASES.iter().zip(&ids) {
        let what = format!("{} → {}", case.src, case.dst);
        // The first attempt's step: outcome `tls`, the reason and the peer in its detail.
        let step = poll(
            async || {
                let view = operator.get(&format!("/v1/transfers/{id}"), &[]).await;
                let view = view.expect("the gateway answers").json();
                view["steps"].as_array().and_then(|steps| {
                    steps
                        .iter()
                        .find(|s| s["step"] == case.step && s["outcome"] == "tls")
                        .cloned()
                })
            },
            || format!("{what}: no failed {} step", case.step),
        )
        .await;
        assert_eq!(
            step["detail"],
            format!(
                "attempt 1: TLS handshake with {} {} failed: {}",
                case.role, case.peer, case.reason
            ),
            "{what}"
        );

        // The attempt's audit entry.
        let page = operator
            .get(
                &format!("/v1/audit?transfer={id}&action={}", case.action),
                &[],
            )
            .await
            .expect("the gateway answers")
            .json();
        let first = &page["entries"][0];
        assert_eq!(first["outcome"], "tls", "{what}: {page:#}");
        assert_eq!(first["detail"]["attempt"], "1", "{what}: {page:#}");
        assert_eq!(
            first["detail"]["tls_reason"], case.reason,
            "{what}: {page:#}"
        );
        assert_eq!(first["detail"][case.role], case.peer, "{what}: {page:#}");

        // The warning, at the default log level.
        let needle = [
            "WARN".to_owned(),
            format!("TLS handshake with a {} failed", case.role),
            format!("transfer_id={id}"),
            format!("participant={}", case.peer),
            format!("reason=\"{}\"", case.reason),
            "attempt=1".to_owned(),
        ];
        poll(
            async || {
                log()
                    .lines()
                    .any(|l| needle.iter().all(|n| l.contains(n.as_str())))
                    .then_some(())
            },
            || format!("{what}: no line with {needle:?} in\n{}", log()),
        )
        .await;
    }

    // Counted by participant and reason: Helsinki and Oulu failed as a source and as a
    // destination (and go on failing as their transfers are retried).
    let metrics = admin::admin_get(&bed.config.gateway.admin_listen.to_string(), "/metrics").await;
    for (peer, reason, at_least) in [
        ("helsinki", "unknown_issuer", 2),
        ("oulu", "name_mismatch", 2),
        ("espoo", "expired", 1),
    ] {
        let n = counter(
            &metrics,
            "siirto_outbound_tls_failures_total",
            &format!("participant=\"{peer}\",reason=\"{reason}\""),
        );
        assert!(
            n.is_some_and(|n| n >= at_least),
            "{peer} {reason}: {n:?} in\n{metrics}"
        );
    }
    // Turku's certificate is good: no failure is counted against it (its series are there, at 0).
    let turku: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("siirto_outbound_tls_failures_total{participant=\"turku\""))
        .collect();
    assert!(
        !turku.is_empty() && turku.iter().all(|l| l.ends_with(" 0")),
        "Turku was refused: {metrics}"
    );
    assert!(!log().contains(STUDENT), "the log names the student");

    server.start_kill().expect("stop the gateway");
    let _ = server.wait().await;
    bed.stop().await;
}

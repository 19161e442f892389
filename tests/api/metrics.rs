//! `GET /metrics` as a monitoring system reads it: scraped over HTTP from the admin listener,
//! parsed by a Prometheus text-format parser (the `prometheus-parse` crate: every line must be
//! one it understands, every sample of a declared family, each family declared once), and by
//! the Prometheus project's Python client as a second opinion (both the 0.0.4 text and, when
//! asked for with `Accept`, OpenMetrics 1.0, which that parser reads strictly). The series of
//! every known label value are there from the start at 0, the names are the README's, the
//! build and the process are described.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::process::{Command, Stdio};

use prometheus_parse::{LineInfo, Scrape, Value};
use serde_json::Value as Json;
use siirto_devkit::testbed::Testbed;
use siirto_gateway::metrics::Outcome;

use crate::helpers::*;

/// `GET /metrics` with an optional `Accept`: (Content-Type, body).
async fn scrape(bed: &Testbed, accept: Option<&str>) -> (String, String) {
    let accept = accept.map(|a| format!("Accept: {a}"));
    let answer = crate::admin::admin_get_with(
        &bed.config.gateway.admin_listen.to_string(),
        "/metrics",
        accept
            .as_slice()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
    )
    .await;
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    let content_type = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .expect("a Content-Type");
    (content_type, body.to_owned())
}

/// Reads the 0.0.4 text line by line and whole: fails on a line the parser does not
/// understand, a family declared twice, or a sample of no declared family.
fn parse(text: &str) -> Scrape {
    let mut families: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        match LineInfo::parse(line) {
            LineInfo::Type {
                metric_name,
                metric_alias,
                sample_type,
            } => {
                let name = metric_alias.unwrap_or(metric_name);
                let kind = format!("{sample_type:?}");
                assert!(
                    families.insert(name.clone(), kind).is_none(),
                    "{name} declared twice"
                );
            }
            LineInfo::Sample { metric_name, .. } => {
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| {
                        let base = metric_name.strip_suffix(s)?;
                        (families.get(base).map(String::as_str) == Some("Histogram"))
                            .then_some(base)
                    })
                    .unwrap_or(metric_name);
                assert!(
                    families.contains_key(family),
                    "`{line}`: a sample of no declared family"
                );
            }
            LineInfo::Doc { .. } | LineInfo::Empty => {}
            LineInfo::Ignored => panic!("not Prometheus text: `{line}`"),
        }
    }
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parses")
}

/// The value of the sample `name` with exactly `labels`.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape.samples.iter().find_map(|s| {
        let same = s.metric == name
            && s.labels.len() == labels.len()
            && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v));
        match (&s.value, same) {
            (Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v), true) => Some(*v),
            _ => None,
        }
    })
}

/// The buckets of a histogram series.
fn buckets(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<Vec<(f64, f64)>> {
    scrape.samples.iter().find_map(|s| match &s.value {
        Value::Histogram(h)
            if s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)) =>
        {
            Some(h.iter().map(|b| (b.less_than, b.count)).collect())
        }
        _ => None,
    })
}

/// The Python client's reading of `text` (`prometheus` or `openmetrics`), or `None` (a loud
/// skip, or a failure under `SIIRTO_REQUIRE_TOOLS=1`) without `prometheus_client`.
fn python_reading(kind: &str, text: &str) -> Option<Json> {
    let python = tool(
        "python3",
        &["-c", "import prometheus_client"],
        "python3 and the Python package prometheus_client",
    )?;
    let mut child = Command::new(python)
        .arg(tools_dir().join("parse_metrics.py"))
        .arg(kind)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run parse_metrics.py");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write the text");
    let out = child.wait_with_output().expect("parse_metrics.py ends");
    assert!(
        out.status.success(),
        "prometheus_client refused the {kind} text: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("JSON"))
}

/// The Python reading's value of `name` with exactly `labels`.
fn python_value(reading: &Json, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<&str, &str> = labels.iter().copied().collect();
    reading["samples"].as_array()?.iter().find_map(|s| {
        let got: BTreeMap<&str, &str> = s[1]
            .as_object()?
            .iter()
            .map(|(k, v)| Some((k.as_str(), v.as_str()?)))
            .collect::<Option<_>>()?;
        (s[0] == name && got == want).then(|| s[2].as_f64())?
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_parses_and_every_known_series_is_there_from_the_start() {
    let bed = start().await;
    let (content_type, text) = scrape(&bed, None).await;
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let first = parse(&text);
    for outcome in Outcome::all() {
        assert_eq!(
            value(
                &first,
                "siirto_transfers_total",
                &[("outcome", outcome.as_str())]
            ),
            Some(0.0),
            "{outcome:?} in:\n{text}"
        );
    }
    assert_eq!(
        value(&first, "siirto_transfers_accepted_total", &[]),
        Some(0.0)
    );
    for (name, label, values) in [
        (
            "siirto_attempts_interrupted_total",
            "step",
            &["fetch", "deliver"][..],
        ),
        (
            "siirto_connections_refused_total",
            "reason",
            &[
                "per_address",
                "handshakes_per_address",
                "global",
                "handshake_timeout",
            ][..],
        ),
        (
            "siirto_tls_refused_total",
            "reason",
            &[
                "no_client_certificate",
                "unknown_ca",
                "certificate_revoked",
                "handshake_timeout",
            ][..],
        ),
        (
            "siirto_authorizations_rejected_total",
            "code",
            &["expired", "bad_signature", "replay", "forbidden_submitter"][..],
        ),
        (
            "siirto_deliveries_deferred_total",
            "destination",
            &["espoo", "turku"][..],
        ),
    ] {
        for v in values {
            assert_eq!(
                value(&first, name, &[(label, v)]),
                Some(0.0),
                "{name}{{{label}=\"{v}\"}} in:\n{text}"
            );
        }
    }
    assert_eq!(
        value(
            &first,
            "siirto_outbound_tls_failures_total",
            &[("participant", "espoo"), ("reason", "unknown_issuer")]
        ),
        Some(0.0)
    );
    // Every source and destination: up, nothing waiting (issue 21).
    for participant in ["turku", "espoo"] {
        let p = [("participant", participant)];
        assert_eq!(value(&first, "siirto_peer_up", &p), Some(1.0), "{text}");
        assert_eq!(
            value(&first, "siirto_peer_backlog", &p),
            Some(0.0),
            "{text}"
        );
    }
    // Each route's latency histogram, empty, with every bucket.
    for route in siirto_gateway::http::ROUTES
        .iter()
        .map(|r| r.label)
        .chain([siirto_gateway::http::OTHER_ROUTE])
    {
        let b = buckets(&first, "siirto_http_request_seconds", &[("route", route)])
            .unwrap_or_else(|| panic!("no histogram of route {route}:\n{text}"));
        assert_eq!(b.len(), 13, "{route}: {b:?}");
        assert!(b.iter().all(|(_, n)| *n == 0.0), "{route}: {b:?}");
        assert_eq!(b.last().map(|(le, _)| *le), Some(f64::INFINITY));
    }
    let build = [
        ("version", env!("CARGO_PKG_VERSION")),
        ("revision", "testbed"),
    ];
    assert_eq!(value(&first, "siirto_build_info", &build), Some(1.0));
    assert_eq!(value(&first, "siirto_audit_log_broken", &[]), Some(0.0));
    for name in [
        "siirto_records_in_flight_bytes",
        "siirto_records_in_flight_peak_bytes",
    ] {
        assert_eq!(value(&first, name, &[]), Some(0.0), "{name}");
    }
    if cfg!(target_os = "linux") {
        for name in [
            "process_resident_memory_bytes",
            "process_cpu_seconds_total",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
        ] {
            let v = value(&first, name, &[]).unwrap_or_else(|| panic!("no {name}:\n{text}"));
            assert!(v > 0.0, "{name} {v}");
        }
    }

    // A delivered transfer and a replay of its authorization.
    bed.sources["turku"].insert(
        STUDENT,
        siirto_devkit::demo::school_record(STUDENT, false).into_bytes(),
    );
    let token = token(&bed, STUDENT, "turku", "espoo", "identity achievements");
    let id = submit_accepted(&bed, &token).await;
    assert_eq!(finished(&bed, &id).await["status"], "delivered");
    assert_eq!(submit(&bed, "eservice", &token).await.status.as_u16(), 409);
    let (_, text) = scrape(&bed, None).await;
    let after = parse(&text);
    let series = [
        (
            "siirto_transfers_total",
            vec![("outcome", "delivered")],
            1.0,
        ),
        (
            "siirto_transfers_total",
            vec![("outcome", "cancelled")],
            0.0,
        ),
        ("siirto_transfers_accepted_total", vec![], 1.0),
        (
            "siirto_authorizations_rejected_total",
            vec![("code", "replay")],
            1.0,
        ),
        (
            "siirto_http_requests_total",
            vec![("route", "submit_transfer"), ("status", "202")],
            1.0,
        ),
        (
            "siirto_http_requests_total",
            vec![("route", "submit_transfer"), ("status", "409")],
            1.0,
        ),
        ("siirto_transfer_seconds_count", vec![], 1.0),
        ("siirto_build_info", build.to_vec(), 1.0),
        // Given back when the delivery call returned, before `delivered` was stored.
        ("siirto_records_in_flight_bytes", vec![], 0.0),
    ];
    for (name, labels, expected) in &series {
        assert_eq!(
            value(&after, name, labels),
            Some(*expected),
            "{name}{labels:?} in:\n{text}"
        );
    }
    let record = siirto_devkit::demo::school_record(STUDENT, false).len();
    assert_eq!(
        value(&after, "siirto_records_in_flight_peak_bytes", &[]),
        Some(record as f64),
        "the one record's bytes in:\n{text}"
    );

    // The Prometheus project's own parser reads the same, in both formats.
    let Some(python) = python_reading("prometheus", &text) else {
        bed.stop().await;
        return;
    };
    let sample_lines = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count();
    assert_eq!(
        python["samples"].as_array().map(Vec::len),
        Some(sample_lines)
    );
    // (The Python client names a counter's family without `_total`, as OpenMetrics does.)
    assert_eq!(python["families"]["siirto_transfers"], "counter");
    assert_eq!(
        python["families"]["siirto_http_request_seconds"],
        "histogram"
    );
    for (name, labels, expected) in &series {
        assert_eq!(
            python_value(&python, name, labels),
            Some(*expected),
            "python: {name}{labels:?}"
        );
    }
    // A label value that carries `=` and `,` (the CRL issuer's DN) reads back whole.
    let issuers: BTreeSet<&str> = python["samples"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s[0] == "siirto_crl_next_update_seconds")
        .filter_map(|s| s[1]["issuer"].as_str())
        .collect();
    assert!(
        issuers.iter().all(|i| i.contains('=')) && !issuers.is_empty(),
        "{issuers:?}"
    );

    let prometheus_accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (content_type, om) = scrape(&bed, Some(prometheus_accept)).await;
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
    let strict = python_reading("openmetrics", &om).expect("python was there a moment ago");
    assert_eq!(strict["families"]["siirto_transfers"], "counter");
    assert_eq!(strict["families"]["siirto_build"], "info");
    for (name, labels, expected) in &series {
        assert_eq!(
            python_value(&strict, name, labels),
            Some(*expected),
            "openmetrics: {name}{labels:?}"
        );
    }
    bed.stop().await;
}

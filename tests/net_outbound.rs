//! Outbound mTLS calls against real in-test servers on 127.0.0.1:0: fetch and deliver
//! outcomes, limits, timeouts, the record budget, and peers whose certificate must be refused.

#[path = "support/net_tls.rs"]
mod net_tls;

use std::time::Duration;

use bytes::Bytes;
use net_tls::{
    Reply, TestPki, TestServer, dev_pki, participant_server_tls, server_tls, spawn_server,
};
use siirto_core::identity::identify;
use siirto_core::student_id::StudentId;
use siirto_gateway::config::Config;
use siirto_gateway::metrics::{BuildInfo, Metrics};
use siirto_gateway::outbound::{CallError, Delivered, Outbound, Phase};

const RECORD: &str = "<?xml version=\"1.0\"?><record xmlns=\"urn:siirto:record:v1\"/>";

fn student() -> StudentId {
    // A valid henkilötunnus with the `+` century sign: the path segment must encode it.
    StudentId::parse("010199+123X")
        .or_else(|_| StudentId::parse("1.2.246.562.24.10000000008"))
        .expect("student id")
}

/// The generated config with `id`'s endpoint pointed at `server`, plus `extra` overrides.
fn config_for(t: &TestPki, id: &str, server: &TestServer, extra: &[(&str, String)]) -> Config {
    let var = format!("SIIRTO__PARTICIPANTS__{}__BASE_URL", t.index_of(id));
    let mut overrides: Vec<(&str, String)> = vec![(var.as_str(), server.url())];
    overrides.extend(extra.iter().cloned());
    t.config(&overrides)
}

/// The error of fetching the student's record with `cfg` (the call must fail).
async fn fetch_failure(cfg: &Config) -> CallError {
    Outbound::new(cfg)
        .expect("outbound")
        .fetch_record("turku", &student(), "t")
        .await
        .expect_err("the fetch fails")
}

async fn source(t: &TestPki, reply: Reply) -> TestServer {
    spawn_server(participant_server_tls(&t.pki, "turku"), move |_| {
        reply.clone()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_returns_the_record_and_sends_what_the_contract_says() {
    let t = dev_pki();
    let server = source(&t, Reply::xml(RECORD)).await;
    let cfg = config_for(&t, "turku", &server, &[]);
    let outbound = Outbound::new(&cfg).expect("outbound");
    let sid = student();
    let body = outbound
        .fetch_record("turku", &sid, "4b1c0e2a-0000-4000-8000-000000000001")
        .await
        .expect("fetch");
    assert_eq!(body, Bytes::from_static(RECORD.as_bytes()));

    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.method, http::Method::GET);
    let expected_segment = siirto_gateway::outbound::encode_path_segment(sid.as_str());
    assert_eq!(r.target, format!("/records/{expected_segment}"));
    if sid.as_str().contains('+') {
        assert!(r.target.contains("%2B"), "{}", r.target);
    }
    assert_eq!(
        r.headers
            .get("x-siirto-transfer")
            .and_then(|v| v.to_str().ok()),
        Some("4b1c0e2a-0000-4000-8000-000000000001")
    );
    // The gateway presented its own client certificate.
    assert!(!r.peer.is_empty());
    let summary = siirto_core::identity::describe(&r.peer[0]).expect("describe");
    assert!(
        summary.subject.contains("CN=siirto-gateway"),
        "{}",
        summary.subject
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_kept_alive_and_reused() {
    let t = dev_pki();
    let server = source(&t, Reply::xml(RECORD)).await;
    let outbound = Outbound::new(&config_for(&t, "turku", &server, &[])).expect("outbound");
    // hyper returns a connection to the pool asynchronously once a response is read, so a
    // request sent right after may race it and open a second connection; most must reuse.
    for i in 0..20 {
        outbound
            .fetch_record("turku", &student(), &format!("t{i}"))
            .await
            .expect("fetch");
    }
    assert_eq!(server.requests().len(), 20);
    let connections = server.connection_count();
    eprintln!("20 sequential fetches used {connections} connection(s)");
    assert!(
        connections <= 10,
        "pooled connections were not reused: {connections}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_404_is_source_not_found_and_final() {
    let t = dev_pki();
    let server = source(&t, Reply::new(404, "")).await;
    let err = fetch_failure(&config_for(&t, "turku", &server, &[])).await;
    assert_eq!(err.code(), "source_not_found");
    assert!(!err.retryable());
    assert!(!err.to_string().contains(student().as_str()), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_500_is_source_unavailable_and_retryable() {
    let t = dev_pki();
    let server = source(&t, Reply::new(500, "boom")).await;
    let err = fetch_failure(&config_for(&t, "turku", &server, &[])).await;
    assert_eq!(err.code(), "source_unavailable");
    assert_eq!(err.status(), Some(500));
    assert!(err.retryable());
}

/// An Outbound whose records are read within a budget of `max_in_flight_bytes`, and the budget.
fn budgeted(cfg: &Config) -> (Outbound, siirto_gateway::budget::RecordBudget) {
    let metrics = Metrics::new(&BuildInfo::new("test", "test"));
    let budget = metrics.record_budget(cfg.delivery.max_in_flight_bytes);
    let outbound = Outbound::new(cfg)
        .expect("outbound")
        .with_budget(budget.clone());
    (outbound, budget)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetched_record_holds_its_budget_until_its_last_copy_is_dropped() {
    let t = dev_pki();
    let record = vec![b'r'; 300_000];
    for reply in [
        Reply::xml(record.clone()),
        Reply::xml(record.clone()).chunked(),
    ] {
        let chunked = reply.chunked;
        let server = source(&t, reply).await;
        let cfg = config_for(
            &t,
            "turku",
            &server,
            &[
                ("SIIRTO__DELIVERY__MAX_RESPONSE_BYTES", "2MiB".to_owned()),
                ("SIIRTO__DELIVERY__MAX_IN_FLIGHT_BYTES", "4MiB".to_owned()),
            ],
        );
        let (outbound, budget) = budgeted(&cfg);
        let body = outbound
            .fetch_record("turku", &student(), "t")
            .await
            .expect("fetch");
        assert_eq!(body, Bytes::from(record.clone()));
        // Reserved before the body was read: its Content-Length, or without one the most it
        // may be (max_response_bytes), then given back down to the real size.
        assert_eq!(
            budget.peak(),
            if chunked { 2 << 20 } else { 300_000 },
            "chunked={chunked}"
        );
        assert_eq!(budget.reserved(), 300_000, "chunked={chunked}");
        let part = body.slice(..10);
        let copy = body.clone();
        drop(body);
        drop(copy);
        assert_eq!(budget.reserved(), 300_000, "a slice still holds the record");
        drop(part);
        assert_eq!(budget.reserved(), 0, "chunked={chunked}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_finding_no_room_in_the_budget_waits_within_the_lease_then_fails_as_such() {
    let t = dev_pki();
    let server = source(&t, Reply::xml(RECORD)).await;
    // The wait for the budget is bounded by lease - (connect_timeout + request_timeout): 1 s.
    let cfg = config_for(
        &t,
        "turku",
        &server,
        &[
            ("SIIRTO__DELIVERY__MAX_IN_FLIGHT_BYTES", "1MiB".to_owned()),
            ("SIIRTO__DELIVERY__CONNECT_TIMEOUT", "1s".to_owned()),
            ("SIIRTO__DELIVERY__REQUEST_TIMEOUT", "2s".to_owned()),
            ("SIIRTO__DELIVERY__LEASE", "4s".to_owned()),
        ],
    );
    let (outbound, budget) = budgeted(&cfg);
    let everything = budget.reserve(budget.total()).await;
    let err = outbound
        .fetch_record("turku", &student(), "t")
        .await
        .expect_err("no room for the record");
    assert_eq!(
        err,
        CallError::Timeout {
            participant: "turku".into(),
            phase: Phase::Budget,
            limit: Duration::from_secs(1),
        }
    );
    assert_eq!(err.code(), "timeout");
    assert!(err.retryable());
    // The source answered: the failure does not count towards marking it down.
    assert!(err.peer_answered());
    assert!(
        err.to_string().contains("delivery.max_in_flight_bytes"),
        "{err}"
    );
    assert_eq!(server.requests().len(), 1);
    drop(everything);
    let body = outbound
        .fetch_record("turku", &student(), "t")
        .await
        .expect("room again");
    assert_eq!(body, Bytes::from_static(RECORD.as_bytes()));
    assert_eq!(budget.reserved(), RECORD.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_over_the_limit_are_refused_with_or_without_a_length() {
    let t = dev_pki();
    let big = vec![b'x'; 4096];
    for reply in [Reply::xml(big.clone()), Reply::xml(big.clone()).chunked()] {
        let chunked = reply.chunked;
        let server = source(&t, reply).await;
        let cfg = config_for(
            &t,
            "turku",
            &server,
            &[("SIIRTO__DELIVERY__MAX_RESPONSE_BYTES", "1KiB".to_owned())],
        );
        let err = fetch_failure(&cfg).await;
        assert_eq!(err.code(), "response_too_large", "chunked={chunked}: {err}");
        assert!(!err.retryable());
    }
    // Exactly at the limit is fine.
    let server = source(&t, Reply::xml(vec![b'y'; 1024]).chunked()).await;
    let cfg = config_for(
        &t,
        "turku",
        &server,
        &[("SIIRTO__DELIVERY__MAX_RESPONSE_BYTES", "1024".to_owned())],
    );
    let body = Outbound::new(&cfg)
        .expect("outbound")
        .fetch_record("turku", &student(), "t")
        .await
        .expect("at the limit");
    assert_eq!(body.len(), 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_source_times_out() {
    let t = dev_pki();
    let server = source(&t, Reply::xml(RECORD).delayed(Duration::from_secs(3))).await;
    let cfg = config_for(
        &t,
        "turku",
        &server,
        &[("SIIRTO__DELIVERY__REQUEST_TIMEOUT", "300ms".to_owned())],
    );
    let err = fetch_failure(&cfg).await;
    assert_eq!(err.code(), "timeout");
    assert!(matches!(
        err,
        CallError::Timeout {
            phase: Phase::Request,
            ..
        }
    ));
    assert!(err.retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_from_another_ca_is_refused() {
    let t = dev_pki();
    let p = &t.pki;
    let server = spawn_server(
        server_tls(&p.other_ca_server.cert, &p.other_ca_server.key, &p.ca.cert),
        |_| Reply::xml(RECORD),
    )
    .await;
    let err = fetch_failure(&config_for(&t, "turku", &server, &[])).await;
    assert_eq!(err.code(), "tls", "{err}");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    assert_eq!(
        err.tls_failure().map(|r| r.code()),
        Some("unknown_issuer"),
        "{err}"
    );
    assert!(
        server.requests().is_empty(),
        "nothing may be sent to an unverified server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_for_another_name_is_refused() {
    let t = dev_pki();
    let p = &t.pki;
    let server = spawn_server(
        server_tls(
            &p.wrong_name_server.cert,
            &p.wrong_name_server.key,
            &p.ca.cert,
        ),
        |_| Reply::xml(RECORD),
    )
    .await;
    let err = fetch_failure(&config_for(&t, "turku", &server, &[])).await;
    assert_eq!(err.code(), "tls", "{err}");
    assert!(err.to_string().contains("not valid for name"), "{err}");
    assert_eq!(
        err.tls_failure().map(|r| r.code()),
        Some("name_mismatch"),
        "{err}"
    );
    assert!(server.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_refusing_the_gateway_certificate_is_a_tls_failure() {
    let t = dev_pki();
    let p = &t.pki;
    let turku = p.participant("turku").expect("turku");
    let server_files = turku.server.as_ref().expect("server");
    // Trusts only the unrelated CA for clients, so the gateway's certificate is refused.
    let server = spawn_server(
        server_tls(&server_files.cert, &server_files.key, &p.other_ca.cert),
        |_| Reply::xml(RECORD),
    )
    .await;
    let err = fetch_failure(&config_for(&t, "turku", &server, &[])).await;
    assert!(err.retryable());
    // In TLS 1.3 the client's handshake is complete before the server has checked the client
    // certificate; the server's alert then arrives either during the handshake's last read
    // (`tls`) or on the fresh connection before the request is written (`connection_failed`),
    // depending on timing. The server's side is the proof of what happened.
    assert!(
        matches!(err.code(), "tls" | "connection_failed"),
        "{}: {err}",
        err.code()
    );
    if err.code() == "tls" {
        // The server's alert refusing the gateway's certificate.
        assert_eq!(
            err.tls_failure().map(|r| r.code()),
            Some("peer_refused"),
            "{err}"
        );
    }
    let seen_by_server = server.handshake_error().await;
    assert!(seen_by_server.contains("UnknownIssuer"), "{seen_by_server}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_is_a_connect_failure() {
    let t = dev_pki();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let var = format!("SIIRTO__PARTICIPANTS__{}__BASE_URL", t.index_of("turku"));
    let cfg = t.config(&[(var.as_str(), format!("https://127.0.0.1:{closed}"))]);
    let err = fetch_failure(&cfg).await;
    assert_eq!(err.code(), "connect_failed", "{err}");
    assert!(err.retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_participants_without_the_role_are_not_configured() {
    let t = dev_pki();
    let outbound = Outbound::new(&t.config(&[])).expect("outbound");
    let err = outbound
        .fetch_record("registry-operator", &student(), "t")
        .await
        .expect_err("operator is no source");
    assert_eq!(err.code(), "not_configured");
    let err = outbound
        .deliver("nobody", "t", Bytes::from_static(b"<x/>"))
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), "not_configured");
    assert!(!err.retryable());
}

async fn destination(t: &TestPki, status: u16) -> (TestServer, Outbound) {
    let server = spawn_server(participant_server_tls(&t.pki, "espoo"), move |_| {
        Reply::new(status, "{\"ok\":true}")
    })
    .await;
    let outbound = Outbound::new(&config_for(t, "espoo", &server, &[])).expect("outbound");
    (server, outbound)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_posts_the_record_with_an_idempotency_key() {
    let t = dev_pki();
    let (server, outbound) = destination(&t, 201).await;
    let delivered = outbound
        .deliver("espoo", "transfer-1", Bytes::from_static(RECORD.as_bytes()))
        .await
        .expect("delivered");
    assert_eq!(delivered, Delivered::Stored);
    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.method, http::Method::POST);
    assert_eq!(r.target, "/records");
    assert_eq!(
        r.headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok()),
        Some("transfer-1")
    );
    assert_eq!(
        r.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/xml")
    );
    assert_eq!(r.body, Bytes::from_static(RECORD.as_bytes()));
    // The destination identifies the gateway by its certificate like any mTLS server would.
    let directory = t.config(&[]).directory;
    assert_eq!(
        identify(&directory, &r.peer)
            .expect_err("the gateway is no participant")
            .code(),
        "unknown_participant"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_409_counts_as_already_delivered() {
    let t = dev_pki();
    let (_server, outbound) = destination(&t, 409).await;
    let delivered = outbound
        .deliver("espoo", "transfer-1", Bytes::from_static(b"<x/>"))
        .await
        .expect("409 counts as delivered");
    assert_eq!(delivered, Delivered::AlreadyDelivered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_400_is_a_final_rejection() {
    let t = dev_pki();
    let (_server, outbound) = destination(&t, 400).await;
    let err = outbound
        .deliver("espoo", "transfer-1", Bytes::from_static(b"<x/>"))
        .await
        .expect_err("400");
    assert_eq!(err.code(), "destination_rejected");
    assert_eq!(err.status(), Some(400));
    assert!(!err.retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_503_is_retryable() {
    let t = dev_pki();
    let (_server, outbound) = destination(&t, 503).await;
    let err = outbound
        .deliver("espoo", "transfer-1", Bytes::from_static(b"<x/>"))
        .await
        .expect_err("503");
    assert_eq!(err.code(), "destination_unavailable");
    assert_eq!(err.status(), Some(503));
    assert!(err.retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_answers_the_handshake_is_a_connect_timeout() {
    let t = dev_pki();
    // The kernel completes TCP connections into the backlog; nobody ever speaks TLS.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let var = format!("SIIRTO__PARTICIPANTS__{}__BASE_URL", t.index_of("turku"));
    let cfg = t.config(&[
        (var.as_str(), format!("https://127.0.0.1:{port}")),
        ("SIIRTO__DELIVERY__CONNECT_TIMEOUT", "200ms".to_owned()),
    ]);
    let err = fetch_failure(&cfg).await;
    assert!(
        matches!(
            err,
            CallError::Timeout {
                phase: Phase::Connect,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.retryable());
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_mid_call_is_retryable() {
    let t = dev_pki();
    let tls = participant_server_tls(&t.pki, "espoo");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        while let Ok((tcp, _)) = listener.accept().await {
            if let Ok(mut stream) = acceptor.accept(tcp).await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                // Half a response, then the connection goes away.
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
                    .await;
                let _ = stream.flush().await;
                drop(stream);
            }
        }
    });
    let var = format!("SIIRTO__PARTICIPANTS__{}__BASE_URL", t.index_of("espoo"));
    let cfg = t.config(&[(var.as_str(), format!("https://{addr}"))]);
    let err = Outbound::new(&cfg)
        .expect("outbound")
        .fetch_record("espoo", &student(), "t")
        .await
        .expect_err("dropped");
    assert_eq!(err.code(), "connection_failed", "{err}");
    assert!(err.retryable());
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains(student().as_str()),
        "student id leaked: {shown}"
    );
    assert!(
        !shown.contains(&siirto_gateway::outbound::encode_path_segment(
            student().as_str()
        ))
    );
}

/// A server certificate from the development CA for the local names with exactly these key
/// usages, served with clients verified against the development CA.
async fn server_with_key_usage(
    t: &TestPki,
    name: &str,
    usages: Vec<rcgen::KeyUsagePurpose>,
    reply: Reply,
) -> TestServer {
    let files = t
        .pki
        .issue_test_cert(
            name,
            "CN=localhost,O=Siirto tests,C=FI",
            siirto_devkit::pki::Usage::Server,
            net_tls::validity_now(),
            &siirto_core::clock::SeededRandom::new(5),
            move |p| p.key_usages = usages,
        )
        .expect("issue");
    spawn_server(
        server_tls(&files.cert, &files.key, &t.pki.ca.cert),
        move |_| reply.clone(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_whose_server_certificate_lacks_digital_signature_is_a_tls_failure() {
    use rcgen::KeyUsagePurpose::{DigitalSignature, KeyCertSign, KeyEncipherment};
    let t = dev_pki();
    for (name, usages) in [
        ("source-ku-keyencipherment", vec![KeyEncipherment]),
        ("source-ku-keycertsign", vec![KeyCertSign]),
    ] {
        let server = server_with_key_usage(&t, name, usages, Reply::xml(RECORD)).await;
        let err = fetch_failure(&config_for(&t, "turku", &server, &[])).await;
        assert_eq!(err.code(), "tls", "{name}: {err}");
        assert!(err.to_string().contains("keyUsage"), "{name}: {err}");
        assert!(server.requests().is_empty(), "{name}: nothing may be sent");
    }
    // The same server with a proper keyUsage is fetched from (the control).
    let server = server_with_key_usage(
        &t,
        "source-ku-signature",
        vec![DigitalSignature, KeyEncipherment],
        Reply::xml(RECORD),
    )
    .await;
    Outbound::new(&config_for(&t, "turku", &server, &[]))
        .expect("outbound")
        .fetch_record("turku", &student(), "t")
        .await
        .expect("fetch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_whose_server_certificate_lacks_digital_signature_gets_nothing() {
    use rcgen::KeyUsagePurpose::KeyEncipherment;
    let t = dev_pki();
    let server = server_with_key_usage(
        &t,
        "destination-ku-keyencipherment",
        vec![KeyEncipherment],
        Reply::new(201, "{}"),
    )
    .await;
    let outbound = Outbound::new(&config_for(&t, "espoo", &server, &[])).expect("outbound");
    let err = outbound
        .deliver("espoo", "transfer-1", Bytes::from_static(RECORD.as_bytes()))
        .await
        .expect_err("the delivery fails");
    assert_eq!(err.code(), "tls", "{err}");
    assert!(err.to_string().contains("keyUsage"), "{err}");
    assert!(err.retryable());
    assert!(server.requests().is_empty(), "nothing may be delivered");
}

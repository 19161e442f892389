//! Connections that present no acceptable client certificate fail in the TLS handshake: the
//! client sees a TLS alert, no HTTP request reaches the API (the gateway's request counter does
//! not move), no source is called and nothing is delivered. Each refusal is audited as
//! `tls.handshake_refused` with the reason as outcome — rate-limited per address and reason, so
//! the second refusal below is counted into a later summary rather than written at once; a later
//! valid request shows the gateway is still serving and that the counter does count.

use std::sync::Arc;
use std::time::Duration;

use siirto_core::clock::{Clock, ManualClock, SystemClock, Timestamp};
use siirto_devkit::pki::CertFiles;
use siirto_devkit::testbed::{Testbed, TestbedOptions};

use crate::helpers::*;

/// What a TLS client presenting `identity` (or nothing) learns from the gateway's API listener:
/// the error of the handshake, or (TLS 1.3, where the client finishes first) of the first read,
/// which carries the server's alert. Sends no request, so the answer cannot be a reset.
async fn refusal_seen_by_client(bed: &Testbed, identity: Option<&CertFiles>) -> String {
    use tokio::io::AsyncReadExt as _;
    let config = siirto_gateway::tls::client_config_from_files(
        &bed.pki.ca.cert,
        identity.map(|c| (c.cert.as_path(), c.key.as_path())),
    )
    .expect("client TLS configuration");
    let tcp = tokio::net::TcpStream::connect(bed.config.gateway.listen)
        .await
        .expect("TCP connect");
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let connect = tokio_rustls::TlsConnector::from(config).connect(name, tcp);
    let mut stream = match connect.await {
        Ok(s) => s,
        Err(e) => return e.to_string(),
    };
    let mut buf = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut buf),
    )
    .await
    .expect("the server decides within 10 s");
    match read {
        Err(e) => e.to_string(),
        Ok(n) => panic!("the server accepted the connection and sent {n} bytes"),
    }
}

/// A submission presenting `identity` gets no HTTP answer: the handshake fails first.
async fn assert_submission_unanswered(bed: &Testbed, identity: Option<&CertFiles>, token: &str) {
    let error = bed
        .client_with(identity)
        .expect("client")
        .submit(token)
        .await
        .expect_err("the handshake must fail: no HTTP answer");
    assert!(
        matches!(error, siirto_devkit::client::ClientError::Request(_)),
        "{error}"
    );
}

/// The e-service, with its good certificate, gets an answer from the API (a 404 for an unknown
/// transfer).
async fn assert_served(bed: &Testbed) {
    let answer = bed
        .client("eservice")
        .expect("client")
        .get("/v1/transfers/00000000-0000-4000-8000-000000000000", &[])
        .await
        .expect("a valid client is served");
    assert_eq!(answer.status.as_u16(), 404);
}

/// Presents `identity` (or no certificate) and requires the handshake to be refused with the TLS
/// alert `alert`; an HTTP client with a perfectly good authorization gets no answer either.
async fn assert_handshake_refused(
    bed: &Testbed,
    identity: Option<&CertFiles>,
    alert: &str,
    code: &str,
) {
    bed.sources["turku"].insert(STUDENT, school_record(STUDENT, false).into_bytes());
    let token = token(bed, STUDENT, "turku", "espoo", "identity achievements");
    let answered_before = api_requests_answered(bed);
    let audit_before = audit(bed).await.len();

    let seen = refusal_seen_by_client(bed, identity).await;
    assert!(
        seen.contains(&format!("received fatal alert: {alert}")),
        "the client should see the TLS alert `{alert}`: {seen}"
    );
    assert_submission_unanswered(bed, identity, &token).await;

    // A participant with a good certificate gets an answer on the same listener ...
    assert_served(bed).await;
    // ... and that request, only that one, reached the API.
    assert_eq!(api_requests_answered(bed), answered_before + 1);
    let refused = wait_for_audit(bed, &format!("tls.handshake_refused/{code}"), |e| {
        e.event.action == "tls.handshake_refused" && e.event.outcome == code
    })
    .await;
    assert_eq!(refused.event.actor, "unknown");
    assert_eq!(
        refused.event.detail.get("remote").map(String::as_str),
        Some("127.0.0.1")
    );
    assert!(refused.event.transfer_id.is_none() && refused.event.subject.is_none());
    let entries = audit(bed).await;
    assert_eq!(
        entries.len(),
        audit_before + 1,
        "one entry for the refusals (the repeat is counted, not written):\n{}",
        describe(&entries)
    );
    assert_no_source_called(bed);
    assert_nothing_delivered(bed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_client_certificate_fails_the_handshake() {
    let bed = start().await;
    assert_handshake_refused(&bed, None, "CertificateRequired", "no_client_certificate").await;
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_fails_the_handshake() {
    let bed = start().await;
    let other = bed.pki.other_ca_client.clone();
    assert_handshake_refused(&bed, Some(&other), "UnknownCA", "unknown_ca").await;
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_fails_the_handshake() {
    let bed = start().await;
    let expired = bed.pki.expired_client.clone();
    assert_handshake_refused(
        &bed,
        Some(&expired),
        "CertificateExpired",
        "certificate_expired",
    )
    .await;
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_certificate_fails_the_handshake() {
    let bed = start().await;
    let revoked = bed.pki.revoked_client.clone();
    assert_handshake_refused(
        &bed,
        Some(&revoked),
        "CertificateRevoked",
        "certificate_revoked",
    )
    .await;
    bed.stop().await;
}

/// A client certificate from the development CA with turku's subject and exactly these key
/// usages.
fn turku_with_key_usage(
    bed: &Testbed,
    name: &str,
    usages: Vec<rcgen::KeyUsagePurpose>,
) -> CertFiles {
    let now = bed.now();
    bed.pki
        .issue_test_cert(
            name,
            siirto_devkit::pki::TURKU_SUBJECT,
            siirto_devkit::pki::Usage::Client,
            (
                now.saturating_sub(Duration::from_secs(3600)),
                now.saturating_add(Duration::from_secs(86_400)),
            ),
            bed.random.as_ref(),
            move |p| p.key_usages = usages,
        )
        .expect("issue")
}

/// A leaf with turku's subject and only `usage` in its keyUsage is refused in the handshake,
/// audited as `key_usage`, with nothing fetched or delivered.
async fn assert_key_usage_refused(name: &str, usage: rcgen::KeyUsagePurpose) {
    let bed = start().await;
    let leaf = turku_with_key_usage(&bed, name, vec![usage]);
    assert_handshake_refused(&bed, Some(&leaf), "CertificateUnknown", "key_usage").await;
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaf_whose_key_usage_is_only_key_cert_sign_fails_the_handshake() {
    assert_key_usage_refused("ku-keycertsign", rcgen::KeyUsagePurpose::KeyCertSign).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaf_whose_key_usage_is_only_key_encipherment_fails_the_handshake() {
    assert_key_usage_refused(
        "ku-keyencipherment",
        rcgen::KeyUsagePurpose::KeyEncipherment,
    )
    .await;
}

// --- CRL freshness (`gateway.crl_stale`) ------------------------------------------------------

/// A testbed whose clock stands still until the test moves it, with `env` overrides.
async fn start_with_manual_clock(env: &[(&str, &str)]) -> (Testbed, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let bed = start_with(TestbedOptions {
        clock: clock.clone(),
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..TestbedOptions::default()
    })
    .await;
    (bed, clock)
}

/// The development CRL's issuer (as x509-parser writes it) and nextUpdate.
fn dev_crl(bed: &Testbed) -> (String, Timestamp) {
    let bytes = std::fs::read(&bed.pki.crl).expect("read CRL");
    let der = siirto_gateway::x509_policy::crls_from_bytes(&bytes).expect("CRL");
    let (_, crl) = x509_parser::parse_x509_crl(&der[0]).expect("parse CRL");
    let next = crl.next_update().expect("nextUpdate").timestamp();
    (crl.issuer().to_string(), Timestamp::from_secs(next))
}

async fn admin(bed: &Testbed, path: &str) -> String {
    crate::admin::admin_get(&bed.config.gateway.admin_listen.to_string(), path).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_update_of_each_crl_is_a_metric() {
    let bed = start().await;
    let (issuer, next_update) = dev_crl(&bed);
    let metrics = admin(&bed, "/metrics").await;
    let line = format!(
        "siirto_crl_next_update_seconds{{issuer=\"{issuer}\"}} {}",
        next_update.secs()
    );
    assert!(metrics.contains(&line), "no `{line}` in:\n{metrics}");
    assert!(
        metrics.contains("# TYPE siirto_crl_next_update_seconds gauge"),
        "{metrics}"
    );
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_crl_refuses_its_certificates_and_fails_readiness() {
    let (bed, clock) = start_with_manual_clock(&[]).await;
    bed.sources["turku"].insert(STUDENT, school_record(STUDENT, false).into_bytes());
    let token = token(&bed, STUDENT, "turku", "espoo", "identity achievements");
    let ready = admin(&bed, "/readyz").await;
    assert!(ready.contains(" 200 "), "{ready}");

    // One second past the CRL's nextUpdate, by the gateway's clock.
    let (_, next_update) = dev_crl(&bed);
    clock.set(next_update.saturating_add(Duration::from_secs(1)));
    let answered_before = api_requests_answered(&bed);
    let turku = bed.pki.participant("turku").expect("turku").client.clone();
    let seen = refusal_seen_by_client(&bed, Some(&turku)).await;
    assert!(seen.contains("received fatal alert: UnknownCA"), "{seen}");
    let eservice = bed
        .pki
        .participant("eservice")
        .expect("eservice")
        .client
        .clone();
    assert_submission_unanswered(&bed, Some(&eservice), &token).await;
    let refused = wait_for_audit(&bed, "tls.handshake_refused/crl_stale", |e| {
        e.event.action == "tls.handshake_refused" && e.event.outcome == "crl_stale"
    })
    .await;
    assert_eq!(refused.event.actor, "unknown");
    assert_eq!(api_requests_answered(&bed), answered_before);
    let ready = admin(&bed, "/readyz").await;
    assert!(ready.contains(" 503 "), "{ready}");
    assert!(ready.contains("CRL"), "{ready}");
    assert_no_source_called(&bed);
    assert_nothing_delivered(&bed);

    // Back before nextUpdate: served again, ready again.
    clock.set(next_update.saturating_sub(Duration::from_secs(1)));
    assert_served(&bed).await;
    let ready = admin(&bed, "/readyz").await;
    assert!(ready.contains(" 200 "), "{ready}");
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_warn_a_stale_crl_still_admits_its_certificates() {
    let (bed, clock) = start_with_manual_clock(&[("SIIRTO__GATEWAY__CRL_STALE", "warn")]).await;
    let (_, next_update) = dev_crl(&bed);
    clock.set(next_update.saturating_add(Duration::from_secs(86_400)));
    assert_served(&bed).await;
    // Revocation still applies: the CRL's revoked certificate stays refused.
    let revoked = bed.pki.revoked_client.clone();
    let seen = refusal_seen_by_client(&bed, Some(&revoked)).await;
    assert!(
        seen.contains("received fatal alert: CertificateRevoked"),
        "{seen}"
    );
    let ready = admin(&bed, "/readyz").await;
    assert!(ready.contains(" 200 "), "{ready}");
    bed.stop().await;
}

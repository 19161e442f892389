//! Connections that present no acceptable client certificate fail in the TLS handshake: the
//! client sees a TLS alert, no HTTP request reaches the API (the gateway's request counter does
//! not move), no source is called and nothing is delivered. Handshake refusals are logged, not
//! written to the audit trail (no participant can be named); a later valid request shows the
//! gateway is still serving and that the counter does count.

use siirto::pki::CertFiles;
use siirto::testbed::Testbed;

use crate::helpers::*;

/// Presents `identity` (or no certificate) with a perfectly good authorization and requires the
/// handshake to fail with a client error mentioning `alert`.
async fn assert_handshake_refused(bed: &Testbed, identity: Option<&CertFiles>, alert: &str) {
    bed.sources["turku"].insert(STUDENT, school_record(STUDENT, false).into_bytes());
    let token = token(bed, STUDENT, "turku", "espoo", "identity achievements");
    let answered_before = api_requests_answered(bed);
    let audit_before = audit(bed).await.len();

    let client = bed.client_with(identity).expect("client");
    let error = client
        .submit(&token)
        .await
        .expect_err("the handshake must fail: no HTTP answer");
    let text = error.to_string();
    assert!(
        text.to_lowercase().contains(&alert.to_lowercase()),
        "client error should name the TLS alert `{alert}`: {text}"
    );

    // A participant with a good certificate gets an answer on the same listener ...
    let control = bed
        .client("eservice")
        .expect("client")
        .get("/v1/transfers/00000000-0000-4000-8000-000000000000", &[])
        .await
        .expect("a valid client is served");
    assert_eq!(control.status.as_u16(), 404);
    // ... and that request, only that one, reached the API.
    assert_eq!(api_requests_answered(bed), answered_before + 1);
    let entries = audit(bed).await;
    assert_eq!(
        entries.len(),
        audit_before,
        "nothing about a refused handshake is in the audit trail:\n{}",
        describe(&entries)
    );
    assert_no_source_called(bed);
    assert_nothing_delivered(bed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_client_certificate_fails_the_handshake() {
    let bed = start().await;
    assert_handshake_refused(&bed, None, "CertificateRequired").await;
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_fails_the_handshake() {
    let bed = start().await;
    let other = bed.pki.other_ca_client.clone();
    assert_handshake_refused(&bed, Some(&other), "UnknownCA").await;
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_fails_the_handshake() {
    let bed = start().await;
    let expired = bed.pki.expired_client.clone();
    assert_handshake_refused(&bed, Some(&expired), "CertificateExpired").await;
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_certificate_fails_the_handshake() {
    let bed = start().await;
    let revoked = bed.pki.revoked_client.clone();
    assert_handshake_refused(&bed, Some(&revoked), "CertificateRevoked").await;
    bed.stop().await;
}

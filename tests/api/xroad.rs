//! X-Road (Suomi.fi-palveluväylä), outbound: sources and destinations reached through the
//! city's own security server, per the X-Road Message Protocol for REST (r1). The security
//! server is the in-test one of `siirto_devkit::xroad`, written from the protocol document; it
//! is not the NIIS product. It checks every request's `X-Road-Client` and `/r1/{serviceId}`
//! form (and records any it would refuse), forwards to the participant's own peer, and adds
//! `X-Road-Id`, `X-Road-Request-Id` and `X-Road-Request-Hash`; told to, it answers with an
//! `X-Road-Error`. The gateway sends a fresh `X-Road-Id` per attempt and the transfer id as
//! `X-Road-Issue`, never `X-Road-UserId`, retries `Server.*` errors, stops at `Client.*` ones,
//! and audits the answer's X-Road ids with each attempt.

use rustls_pki_types::pem::PemObject;
use siirto_core::audit::AuditEntry;
use siirto_devkit::testbed::{Testbed, TestbedOptions, XROAD_CLIENT, xroad_service_of};
use siirto_devkit::xroad::{XroadFault, XroadRequest};

use crate::helpers::*;

const SCOPE: &str = "identity enrolment achievements";

/// Turku's school system (source) and Espoo's (destination), both on X-Road.
async fn bed() -> Testbed {
    start_with(TestbedOptions {
        xroad: vec!["turku", "espoo"],
        env: vec![(
            "SIIRTO__DELIVERY__INITIAL_BACKOFF".to_owned(),
            "20ms".to_owned(),
        )],
        ..TestbedOptions::default()
    })
    .await
}

fn requests(bed: &Testbed) -> Vec<XroadRequest> {
    bed.security_server
        .as_ref()
        .expect("a security server")
        .requests()
}

/// The service id of `participant` as the request path carries it: each part
/// percent-encoded, the separators kept (§4.2).
fn encoded_service(participant: &str) -> String {
    xroad_service_of(participant).replace(' ', "%20")
}

/// Every request had the protocol's form: our client, a fresh UUID `X-Road-Id`, the transfer
/// as `X-Road-Issue`, no `X-Road-UserId`, and no student identifier anywhere in the head.
fn assert_well_formed(requests: &[XroadRequest], transfer: &str) {
    let mut ids = Vec::new();
    for r in requests {
        assert_eq!(r.refused, None, "the security server refused: {r:#?}");
        assert_eq!(r.header("x-road-client"), Some(XROAD_CLIENT), "{r:#?}");
        assert_eq!(r.header("x-road-issue"), Some(transfer), "{r:#?}");
        assert_eq!(r.header("x-road-userid"), None, "{r:#?}");
        let id = r.header("x-road-id").expect("X-Road-Id").to_owned();
        assert_eq!(id.len(), 36, "a UUID: {id}");
        assert_eq!(id.as_bytes()[14], b'4', "a version 4 UUID: {id}");
        ids.push(id);
        for (name, value) in &r.headers {
            assert!(!value.contains(STUDENT), "the student id in header {name}");
        }
    }
    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        ids.len(),
        "one X-Road-Id per attempt: {ids:?}"
    );
}

/// The `action` entries of `transfer`, in order.
async fn attempts(bed: &Testbed, transfer: &str, action: &str) -> Vec<AuditEntry> {
    audit(bed)
        .await
        .into_iter()
        .filter(|e| e.event.transfer_id.as_deref() == Some(transfer) && e.event.action == action)
        .collect()
}

/// The entry carries the ids the security server answered with.
fn assert_audited_ids(entry: &AuditEntry, request: &XroadRequest) {
    let (id, request_id, hash) = request.answered_ids.clone().expect("answered ids");
    let d = &entry.event.detail;
    assert_eq!(d.get("xroad_id"), Some(&id), "{d:?}");
    assert_eq!(d.get("xroad_request_id"), Some(&request_id), "{d:?}");
    assert_eq!(d.get("xroad_request_hash"), Some(&hash), "{d:?}");
    assert_eq!(d.get("xroad_error"), None, "{d:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_between_two_participants_on_xroad_is_delivered_with_the_ids_audited() {
    let bed = bed().await;
    bed.sources["turku"].insert(STUDENT, school_record(STUDENT, false).into_bytes());
    let id = submit_accepted(&bed, &token(&bed, STUDENT, "turku", "espoo", SCOPE)).await;
    let transfer = finished(&bed, &id).await;
    assert_eq!(transfer["status"], "delivered", "{transfer:#}");

    // Both calls went through the security server, each to its service.
    let seen = requests(&bed);
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_well_formed(&seen, &id);
    assert_eq!(seen[0].method, "GET");
    assert!(
        seen[0]
            .target
            .starts_with(&format!("/r1/{}/records/", encoded_service("turku"))),
        "{}",
        seen[0].target
    );
    assert_eq!(seen[0].service, Some(xroad_service_of("turku")));
    assert_eq!(seen[1].method, "POST");
    assert_eq!(
        seen[1].target,
        format!("/r1/{}/records", encoded_service("espoo"))
    );
    // The providers themselves were reached (through it): turku asked once, espoo stored it.
    assert_eq!(bed.sources["turku"].requests(), vec![id.clone()]);
    assert_eq!(bed.destinations["espoo"].stored().len(), 1);

    // The answers' X-Road ids are in the attempts' audit entries.
    let fetched = attempts(&bed, &id, "source.fetch").await;
    assert_eq!(fetched.len(), 1);
    assert_audited_ids(&fetched[0], &seen[0]);
    let delivered = attempts(&bed, &id, "destination.deliver").await;
    assert_eq!(delivered.len(), 1);
    assert_audited_ids(&delivered[0], &seen[1]);
    // The security server's request hash is a base64 SHA-512.
    let hash = seen[1].answered_ids.clone().expect("ids").2;
    assert_eq!(hash.len(), 88, "{hash}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_side_xroad_error_is_retried() {
    let bed = bed().await;
    bed.sources["turku"].insert(STUDENT, school_record(STUDENT, false).into_bytes());
    let ss = bed.security_server.clone().expect("security server");
    // The first fetch and the first delivery meet a provider-side network error.
    ss.fail_next(&xroad_service_of("turku"), &[XroadFault::NetworkError]);
    ss.fail_next(&xroad_service_of("espoo"), &[XroadFault::NetworkError]);
    let id = submit_accepted(&bed, &token(&bed, STUDENT, "turku", "espoo", SCOPE)).await;
    let transfer = finished(&bed, &id).await;
    assert_eq!(transfer["status"], "delivered", "{transfer:#}");

    let seen = requests(&bed);
    assert_well_formed(&seen, &id);
    let errors: Vec<_> = seen.iter().map(|r| r.error.clone()).collect();
    assert_eq!(
        errors.iter().flatten().count(),
        2,
        "two X-Road errors: {errors:?}"
    );
    let fetched = attempts(&bed, &id, "source.fetch").await;
    assert_eq!(fetched.len(), 2, "the fetch was tried again");
    assert_eq!(fetched[0].event.outcome, "source_unavailable");
    assert_eq!(
        fetched[0]
            .event
            .detail
            .get("xroad_error")
            .map(String::as_str),
        Some("Server.ServerProxy.NetworkError")
    );
    assert_eq!(fetched[1].event.outcome, "ok");
    let delivered = attempts(&bed, &id, "destination.deliver").await;
    assert_eq!(delivered.len(), 2, "the delivery was tried again");
    assert_eq!(delivered[0].event.outcome, "destination_unavailable");
    assert_eq!(
        delivered[0]
            .event
            .detail
            .get("xroad_error")
            .map(String::as_str),
        Some("Server.ServerProxy.NetworkError")
    );
    assert_eq!(delivered[1].event.outcome, "delivered");
    assert_eq!(bed.destinations["espoo"].stored().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_side_xroad_error_is_permanent() {
    let bed = bed().await;
    bed.sources["turku"].insert(STUDENT, school_record(STUDENT, false).into_bytes());
    let ss = bed.security_server.clone().expect("security server");

    // The next call to each service is refused as a bad request.
    ss.fail_next(&xroad_service_of("turku"), &[XroadFault::BadRequest]);
    ss.fail_next(&xroad_service_of("espoo"), &[XroadFault::BadRequest]);

    // At the source: source_refused, asked once.
    let id = submit_accepted(&bed, &token(&bed, STUDENT, "turku", "espoo", SCOPE)).await;
    let transfer = assert_failed(&bed, &id, "source_refused").await;
    assert!(
        transfer.to_string().contains("Client.BadRequest"),
        "the step names the X-Road error: {transfer:#}"
    );
    let fetched = attempts(&bed, &id, "source.fetch").await;
    assert_eq!(fetched.len(), 1);
    assert_eq!(
        fetched[0]
            .event
            .detail
            .get("xroad_error")
            .map(String::as_str),
        Some("Client.BadRequest")
    );
    assert!(bed.sources["turku"].requests().is_empty());

    // At the destination: destination_rejected, delivered to once.
    let other = submit_accepted(&bed, &token(&bed, STUDENT, "turku", "espoo", SCOPE)).await;
    assert_failed(&bed, &other, "destination_rejected").await;
    let delivered = attempts(&bed, &other, "destination.deliver").await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        delivered[0]
            .event
            .detail
            .get("xroad_error")
            .map(String::as_str),
        Some("Client.BadRequest")
    );
    assert!(bed.destinations["espoo"].stored().is_empty());
    let seen = requests(&bed);
    assert_eq!(seen.len(), 3, "{seen:#?}");
    for r in &seen {
        assert_eq!(r.refused, None, "{r:#?}");
    }
}

/// A register offered only on X-Road: KOSKI's luovutuspalvelu (`protocol = "koski"`) reached
/// through the security server, its request still of KOSKI's shape (the henkilötunnus in the
/// body only), delivered to a school system that is not on X-Road.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_koski_source_on_xroad_is_asked_in_its_own_protocol() {
    let Some(corpus) = siirto_testsupport::corpus() else {
        return;
    };
    let bed = start_with(TestbedOptions {
        schemas: schemas_with_registers(&corpus),
        koski: true,
        xroad: vec!["koski"],
        ..TestbedOptions::default()
    })
    .await;
    bed.koski["koski"].insert(
        siirto_devkit::registers::koski_pupil(STUDENT, "1.2.246.562.24.10000000008"),
        None,
    );
    let id = submit_accepted(
        &bed,
        &token(&bed, STUDENT, "koski", "espoo", SCOPE_NO_SUPPORT),
    )
    .await;
    let transfer = finished(&bed, &id).await;
    assert_eq!(transfer["status"], "delivered", "{transfer:#}");
    let seen = requests(&bed);
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_well_formed(&seen, &id);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(
        seen[0].target,
        format!(
            "/r1/{}/koski/api/luovutuspalvelu/hetu",
            encoded_service("koski")
        )
    );
    let asked = bed.koski["koski"].requests();
    assert_eq!(asked.len(), 1);
    assert_eq!(
        asked[0].refused, None,
        "KOSKI's peer refused: {:#?}",
        asked[0]
    );
    let fetched = attempts(&bed, &id, "source.fetch").await;
    assert_audited_ids(&fetched[0], &seen[0]);
}

// --- Inbound: the API behind a security server ----------------------------------------------

/// The e-service's X-Road client subsystem in the inbound tests.
const ESERVICE_CLIENT: &str = "FI-TEST/MUN/0204819-8/e palvelu";

/// A gateway (over the testbed's configuration, database and peers) that accepts the
/// testbed's gateway client certificate as an X-Road security server, and reaches the
/// `eservice` only through it (`xroad_client`); with a client presenting that certificate.
async fn behind_a_security_server(
    bed: &Testbed,
) -> (
    siirto_devkit::testbed::Instance,
    siirto_devkit::client::MtlsClient,
    String,
) {
    let mut config = bed.config.clone();
    let cert = std::fs::read(&bed.pki.gateway_client.cert).expect("cert");
    let der = rustls_pki_types::CertificateDer::from_pem_slice(&cert).expect("pem");
    let summary = siirto_core::identity::describe(&der).expect("summary");
    let pin = siirto_core::clock::unhex(&summary.spki_sha256_hex).expect("hex");
    config
        .xroad
        .security_servers
        .push(siirto_core::identity::IdentityRule::SpkiSha256(
            pin.try_into().expect("32 bytes"),
        ));
    config
        .xroad
        .clients
        .insert(ESERVICE_CLIENT.to_owned(), "eservice".to_owned());
    let gateway = siirto_gateway::state::Gateway::open(
        config,
        bed.clock.clone(),
        bed.random.clone(),
        siirto_devkit::testbed::build_info(),
    )
    .await
    .expect("gateway");
    let instance = siirto_devkit::testbed::Instance::start(gateway)
        .await
        .expect("listeners");
    let url = format!("https://{}", instance.api);
    let client = siirto_devkit::client::MtlsClient::new(
        &url,
        &bed.pki.ca.cert,
        Some((&bed.pki.gateway_client.cert, &bed.pki.gateway_client.key)),
    )
    .expect("client");
    (instance, client, url)
}

async fn submit_as(
    client: &siirto_devkit::client::MtlsClient,
    headers: &[(&str, &str)],
    token: &str,
) -> siirto_devkit::client::Answer {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    let body = serde_json::json!({ "authorization": token }).to_string();
    client
        .send(
            http::Method::POST,
            "/v1/transfers",
            &all,
            Some(bytes::Bytes::from(body)),
        )
        .await
        .expect("an answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_through_a_security_server_acts_as_the_named_client_only() {
    let bed = start_with(TestbedOptions {
        in_process_gateway: false,
        ..TestbedOptions::default()
    })
    .await;
    bed.sources["turku"].insert(STUDENT, school_record(STUDENT, false).into_bytes());
    let (instance, security_server, url) = behind_a_security_server(&bed).await;
    let gw = instance.gateway.clone();
    let token = token(&bed, STUDENT, "turku", "espoo", SCOPE);

    // A known client: the e-service, its X-Road-Client percent-encoded (§4.3).
    let encoded = ESERVICE_CLIENT.replace(' ', "%20");
    let answer = submit_as(
        &security_server,
        &[
            ("x-road-client", &encoded),
            ("x-road-service", "FI-TEST/MUN/0204819-8/siirto/siirto"),
            ("x-road-id", "5ea48ae9-15c1-465a-be15-9b6ef2c7ef4a"),
            ("x-road-request-id", "f92591a3-6bf0-49b1-987b-0dd78c034cc3"),
        ],
        &token,
    )
    .await;
    assert_eq!(answer.status.as_u16(), 202, "{}", answer.json());
    let id = answer.json()["id"].as_str().expect("id").to_owned();
    let entries = gw.store.audit_range(0, 100_000).await.expect("audit");
    let of_request: Vec<_> = entries
        .iter()
        .filter(|e| e.event.transfer_id.as_deref() == Some(id.as_str()))
        .filter(|e| e.event.detail.contains_key("xroad_client"))
        .collect();
    assert!(!of_request.is_empty(), "{}", describe(&entries));
    for e in &of_request {
        let d = &e.event.detail;
        assert_eq!(d.get("xroad_client"), Some(&encoded), "{d:?}");
        assert_eq!(
            d.get("xroad_service").map(String::as_str),
            Some("FI-TEST/MUN/0204819-8/siirto/siirto")
        );
        assert_eq!(
            d.get("xroad_id").map(String::as_str),
            Some("5ea48ae9-15c1-465a-be15-9b6ef2c7ef4a")
        );
        assert_eq!(
            d.get("xroad_request_id").map(String::as_str),
            Some("f92591a3-6bf0-49b1-987b-0dd78c034cc3")
        );
    }
    assert_eq!(of_request[0].event.actor, "eservice");

    // An unknown client, a participant without xroad_client, and no header at all.
    for headers in [
        vec![("x-road-client", "FI-TEST/MUN/0204819-8/nobody")],
        vec![("x-road-client", "turku")],
        vec![("x-road-client", "eservice")],
        vec![],
    ] {
        let answer = submit_as(&security_server, &headers, &token).await;
        assert_eq!(
            answer.status.as_u16(),
            403,
            "{headers:?}: {}",
            answer.json()
        );
        assert_eq!(answer.json()["error"], "unknown_participant", "{headers:?}");
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let entries = gw.store.audit_range(0, 100_000).await.expect("audit");
        let refused = entries
            .iter()
            .filter(|e| e.event.action == "access.denied")
            .filter(|e| e.event.outcome == "unknown_participant")
            .count();
        if refused >= 4 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}",
            describe(&entries)
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // The e-service with its own certificate, not through the security server: refused.
    let eservice = bed
        .pki
        .participant("eservice")
        .expect("eservice")
        .client
        .clone();
    let direct = siirto_devkit::client::MtlsClient::new(
        &url,
        &bed.pki.ca.cert,
        Some((&eservice.cert, &eservice.key)),
    )
    .expect("client");
    let answer = submit_as(&direct, &[], &token).await;
    assert_eq!(answer.status.as_u16(), 403, "{}", answer.json());
    assert_eq!(answer.json()["error"], "unknown_participant");
    // Turku, which has no xroad_client, still comes directly.
    let turku = bed.pki.participant("turku").expect("turku").client.clone();
    let direct = siirto_devkit::client::MtlsClient::new(
        &url,
        &bed.pki.ca.cert,
        Some((&turku.cert, &turku.key)),
    )
    .expect("client");
    let answer = direct.get("/v1/openapi.json", &[]).await.expect("answer");
    assert_eq!(answer.status.as_u16(), 200);
    instance.stop().await.expect("stops");
}

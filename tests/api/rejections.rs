//! Refused submissions. Each test has Turku's source ready to serve the student's record, so a
//! token wrongly accepted *would* be fetched and delivered; each asserts the exact HTTP status
//! and error code, that no source was called and nothing reached any destination, and that the
//! refusal is in the audit trail under the caller's name.

use std::path::Path;

use josekit::jwk::KeyPair as _;
use serde_json::{Value, json};
use siirto_devkit::eservice::{self, AUTHORIZATION_TYP};
use siirto_devkit::testbed::{Testbed, TestbedOptions};

use crate::helpers::*;

const SCOPE: &str = "identity achievements";

/// A testbed whose Turku source holds the student's record.
async fn ready() -> Testbed {
    let bed = start().await;
    bed.sources["turku"].insert(STUDENT, school_record(STUDENT, false).into_bytes());
    bed
}

/// Submits `token` as `submitter` and requires the refusal `status`/`code`, its audit entry,
/// and that nothing moved.
async fn assert_refused(bed: &Testbed, submitter: &str, token: &str, status: u16, code: &str) {
    let answer = submit(bed, submitter, token);
    assert_refusal(
        bed,
        submitter,
        "authorization.rejected",
        status,
        code,
        answer,
    )
    .await;
}

fn issuer_key(bed: &Testbed) -> Vec<u8> {
    std::fs::read(&bed.pki.issuer.private_key).expect("issuer key")
}

fn header(bed: &Testbed, alg: &str) -> Value {
    json!({ "alg": alg, "typ": AUTHORIZATION_TYP, "kid": bed.pki.issuer.kid })
}

fn hs256(secret: &[u8], header: &Value, claims: &Value) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_authorization_is_refused() {
    let bed = ready().await;
    let mut c = claims(&bed, STUDENT, "turku", "espoo", SCOPE);
    let now = bed.now().secs();
    // Expired two minutes ago: past the 60 s of clock skew the gateway allows.
    c["iat"] = json!(now - 420);
    c["exp"] = json!(now - 120);
    let token = bed.sign(&c).expect("sign");
    assert_refused(&bed, "eservice", &token, 401, "expired").await;
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_alg_none_token_is_refused() {
    let bed = ready().await;
    for alg in ["none", "None", "NONE"] {
        let c = claims(&bed, STUDENT, "turku", "espoo", SCOPE);
        let token = raw_jws(&header(&bed, alg), &c, b"");
        assert_refused(&bed, "eservice", &token, 401, "unsupported_alg").await;
    }
    bed.stop().await;
}

/// The classic key-confusion attack: HMAC-SHA256 keyed with the issuer's *public* key, which
/// anyone can read from the JWKS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hs256_signed_with_the_public_key_is_refused() {
    let bed = ready().await;
    let pair = josekit::jws::ES256
        .key_pair_from_pem(issuer_key(&bed))
        .expect("issuer key pair");
    let public_pem = pair.to_pem_public_key();
    let jwks = std::fs::read(&bed.pki.issuer.jwks).expect("jwks");
    let jwks_json: Value = serde_json::from_slice(&jwks).expect("jwks json");
    let jwk = jwks_json["keys"][0].to_string();
    for secret in [public_pem.as_slice(), jwks.as_slice(), jwk.as_bytes()] {
        let c = claims(&bed, STUDENT, "turku", "espoo", SCOPE);
        let token = hs256(secret, &header(&bed, "HS256"), &c);
        assert_refused(&bed, "eservice", &token, 401, "unsupported_alg").await;
    }
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kid_is_refused() {
    let bed = ready().await;
    let c = claims(&bed, STUDENT, "turku", "espoo", SCOPE);
    let token = eservice::sign(
        &c,
        "ES256",
        AUTHORIZATION_TYP,
        "retired-key-2019",
        &issuer_key(&bed),
    )
    .expect("sign");
    assert_refused(&bed, "eservice", &token, 401, "unknown_kid").await;
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_another_gateway_is_refused() {
    let bed = ready().await;
    let mut c = claims(&bed, STUDENT, "turku", "espoo", SCOPE);
    c["aud"] = json!("siirto.other-operator.example");
    let token = bed.sign(&c).expect("sign");
    assert_refused(&bed, "eservice", &token, 401, "wrong_audience").await;
    bed.stop().await;
}

/// The same JWS twice: the first moves the record once, the second is `409 replay`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_authorization_is_refused() {
    let bed = ready().await;
    let token = token(&bed, STUDENT, "turku", "espoo", SCOPE);
    let id = submit_accepted(&bed, &token).await;
    let first = finished(&bed, &id).await;
    assert_eq!(first["status"], "delivered", "{first:#}");

    let answer = submit(&bed, "eservice", &token).await;
    assert_eq!(answer.status.as_u16(), 409, "{}", answer.json());
    assert_eq!(answer.error_code().as_deref(), Some("replay"));
    // Another caller presenting the same token is refused too.
    let answer = submit(&bed, "oulu", &token).await;
    assert_eq!(answer.status.as_u16(), 409, "{}", answer.json());
    assert_eq!(answer.error_code().as_deref(), Some("replay"));
    assert_rejection_audited(&bed, "eservice", "replay").await;
    assert_rejection_audited(&bed, "oulu", "replay").await;

    // One transfer, one fetch, one delivery.
    let accepted = audit(&bed)
        .await
        .iter()
        .filter(|e| e.event.action == "transfer.accepted")
        .count();
    assert_eq!(accepted, 1);
    assert_eq!(bed.sources["turku"].requests(), vec![id.clone()]);
    let requests = bed.destinations["espoo"].requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].idempotency_key, id);
    bed.stop().await;
}

/// A replay id outlives a restart: a second gateway on the same database refuses the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_does_not_reopen_replay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bed = start_with(TestbedOptions {
        dir: Some(dir.path().to_path_buf()),
        ..TestbedOptions::default()
    })
    .await;
    bed.sources["turku"].insert(STUDENT, school_record(STUDENT, false).into_bytes());
    let token = token(&bed, STUDENT, "turku", "espoo", SCOPE);
    let id = submit_accepted(&bed, &token).await;
    assert_eq!(finished(&bed, &id).await["status"], "delivered");
    let config = bed.config.clone();
    let ca = bed.pki.ca.cert.clone();
    let eservice = bed
        .pki
        .participant("eservice")
        .expect("eservice")
        .client
        .clone();
    bed.stop().await;

    // A new gateway process would read the same configuration and database.
    let gateway = siirto_gateway::state::Gateway::open(
        config,
        std::sync::Arc::new(siirto_core::clock::SystemClock),
        std::sync::Arc::new(siirto_core::clock::SystemRandom::new()),
        siirto_devkit::testbed::build_info(),
    )
    .await
    .expect("gateway reopens");
    let api = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let admin = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let url = format!("https://{}", api.local_addr().expect("addr"));
    let (trigger, signal) = siirto_gateway::server::Shutdown::new();
    let running = tokio::spawn(siirto_gateway::start::run(
        gateway.clone(),
        siirto_gateway::start::Listeners { api, admin },
        signal,
    ));
    let client = siirto_devkit::client::MtlsClient::new(
        &url,
        Path::new(&ca),
        Some((eservice.cert.as_path(), eservice.key.as_path())),
    )
    .expect("client");
    let answer = client.submit(&token).await.expect("answer");
    assert_eq!(answer.status.as_u16(), 409, "{}", answer.json());
    assert_eq!(answer.error_code().as_deref(), Some("replay"));
    trigger.trigger();
    running.await.expect("joins").expect("stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_henkilotunnus_with_a_wrong_check_character_is_refused() {
    let bed = ready().await;
    // 131052-308T is valid; the check character of 131052-308 cannot be U.
    let token = token(&bed, "131052-308U", "turku", "espoo", SCOPE);
    assert_refused(&bed, "eservice", &token, 422, "invalid_subject").await;
    bed.stop().await;
}

/// `dst` must be a participant with the `destination` role: not the e-service, not an operator,
/// not a register that only serves records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dst_that_is_not_a_destination_is_refused() {
    // Without the corpus there is no register: its case is skipped loudly, the rest runs.
    let (bed, corpus) = start_with_registers_if_any().await;
    bed.sources["turku"].insert(STUDENT, school_record(STUDENT, false).into_bytes());
    let mut destinations = vec!["eservice", "registry-operator"];
    if corpus.is_some() {
        destinations.push("virta");
    }
    for dst in destinations {
        let token = token(&bed, STUDENT, "turku", dst, SCOPE);
        assert_refused(&bed, "eservice", &token, 422, "invalid_destination").await;
    }
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_without_identity_is_refused() {
    let bed = ready().await;
    let token = token(&bed, STUDENT, "turku", "espoo", "enrolment achievements");
    assert_refused(&bed, "eservice", &token, 422, "missing_identity_scope").await;
    bed.stop().await;
}

/// Only an e-service, or the `dst` participant itself, may submit: Espoo cannot send Turku's
/// record to Helsinki, nor can the operator submit anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitter_that_is_neither_eservice_nor_dst_is_refused() {
    let bed = ready().await;
    let token_for_helsinki = token(&bed, STUDENT, "turku", "helsinki", SCOPE);
    assert_refused(
        &bed,
        "espoo",
        &token_for_helsinki,
        403,
        "forbidden_submitter",
    )
    .await;
    let token_for_espoo = token(&bed, STUDENT, "turku", "espoo", SCOPE);
    assert_refused(
        &bed,
        "registry-operator",
        &token_for_espoo,
        403,
        "forbidden_submitter",
    )
    .await;

    // The operator sees both refusals through the API; a city may not read the audit trail.
    let operator = bed.client("registry-operator").expect("client");
    let page = operator
        .get("/v1/audit?action=authorization.rejected", &[])
        .await
        .expect("answer");
    assert_eq!(page.status.as_u16(), 200, "{}", page.json());
    let refusals: Vec<(String, String)> = page.json()["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or("").to_owned(),
                e["outcome"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        refusals,
        vec![
            ("espoo".to_owned(), "forbidden_submitter".to_owned()),
            (
                "registry-operator".to_owned(),
                "forbidden_submitter".to_owned()
            ),
        ]
    );
    let denied = bed
        .client("espoo")
        .expect("client")
        .get("/v1/audit", &[])
        .await
        .expect("answer");
    assert_eq!(denied.status.as_u16(), 403);
    assert_eq!(denied.error_code().as_deref(), Some("forbidden_role"));
    bed.stop().await;
}

/// A certificate from the right CA whose subject no participant has: the TLS handshake
/// succeeds, the API answers `403 unknown_participant`, and the refusal is audited with the
/// certificate's subject; the token is never looked at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_certificate_subject_is_refused_and_audited() {
    let bed = ready().await;
    let token = token(&bed, STUDENT, "turku", "espoo", SCOPE);
    let stranger = bed
        .client_with(Some(&bed.pki.unknown_client))
        .expect("client");
    let answer = stranger.submit(&token).await.expect("the gateway answers");
    assert_eq!(answer.status.as_u16(), 403, "{}", answer.json());
    assert_eq!(answer.error_code().as_deref(), Some("unknown_participant"));
    let denied = wait_for_audit(&bed, "access.denied/unknown_participant", |e| {
        e.event.action == "access.denied" && e.event.outcome == "unknown_participant"
    })
    .await;
    let subject = denied
        .event
        .detail
        .get("certificate_subject")
        .expect("the certificate's subject is recorded");
    assert!(!subject.is_empty());
    assert!(
        !subject.contains("turku"),
        "the unknown certificate is not turku's: {subject}"
    );
    assert!(denied.event.detail.contains_key("certificate_spki_sha256"));
    let entries = audit(&bed).await;
    assert!(
        !entries
            .iter()
            .any(|e| e.event.action == "authorization.rejected"),
        "the token of an unknown caller is not even verified:\n{}",
        describe(&entries)
    );
    assert_nothing_moved(&bed).await;

    // The token itself was fine: the e-service can still use it.
    let id = submit_accepted(&bed, &token).await;
    assert_eq!(finished(&bed, &id).await["status"], "delivered");
    bed.stop().await;
}

/// Signs with the development issuer's key under any header (for headers no honest e-service
/// sends).
fn sign_with_header(bed: &Testbed, header: &Value, claims: &Value) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use josekit::jws::JwsSigner as _;
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signer = josekit::jws::ES256
        .signer_from_pem(issuer_key(bed))
        .expect("signer");
    let signature = signer.sign(input.as_bytes()).expect("sign");
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// The other ways a token is refused, each with its own code and status, each audited, none
/// moving anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_other_refusal_has_its_own_code() {
    let bed = ready().await;
    let fresh = || claims(&bed, STUDENT, "turku", "espoo", SCOPE);
    let now = bed.now().secs();
    let with = |key: &str, value: Value| {
        let mut c = fresh();
        c[key] = value;
        c
    };
    let without = |key: &str| {
        let mut c = fresh();
        c.as_object_mut().expect("object").remove(key);
        c
    };
    let mut jku = header(&bed, "ES256");
    jku["jku"] = json!("https://keys.attacker.example/jwks.json");
    let mut embedded_jwk = header(&bed, "ES256");
    embedded_jwk["jwk"] = json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"});
    let mut no_kid = header(&bed, "ES256");
    no_kid.as_object_mut().expect("object").remove("kid");
    let tampered = {
        let good = bed.sign(&fresh()).expect("sign");
        let parts: Vec<&str> = good.split('.').collect();
        let forged = raw_jws(&json!({}), &with("scope", json!(SCOPE_ALL)), b"");
        let forged_claims = forged.split('.').nth(1).expect("claims").to_owned();
        format!("{}.{forged_claims}.{}", parts[0], parts[2])
    };
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "a transparency token offered as an authorization",
            bed.sign_as(&fresh(), eservice::TRANSPARENCY_TYP)
                .expect("sign"),
            401,
            "wrong_typ",
        ),
        (
            "a jku header",
            sign_with_header(&bed, &jku, &fresh()),
            401,
            "forbidden_header",
        ),
        (
            "an embedded jwk header",
            sign_with_header(&bed, &embedded_jwk, &fresh()),
            401,
            "forbidden_header",
        ),
        (
            "no kid",
            sign_with_header(&bed, &no_kid, &fresh()),
            401,
            "missing_kid",
        ),
        (
            "claims changed after signing",
            tampered,
            401,
            "bad_signature",
        ),
        (
            "an hour of validity",
            bed.sign(&with("exp", json!(now + 3600))).expect("sign"),
            401,
            "lifetime_too_long",
        ),
        (
            "nbf ten minutes ahead",
            bed.sign(&with("nbf", json!(now + 600))).expect("sign"),
            401,
            "not_yet_valid",
        ),
        (
            "an issuer the gateway does not know",
            bed.sign(&with("iss", json!("https://eservice.attacker.example")))
                .expect("sign"),
            401,
            "unknown_issuer",
        ),
        (
            "src that serves no records",
            bed.sign(&with("src", json!("eservice"))).expect("sign"),
            422,
            "invalid_source",
        ),
        (
            "dst nobody knows",
            bed.sign(&with("dst", json!("tampere"))).expect("sign"),
            422,
            "unknown_participant",
        ),
        (
            "no jti",
            bed.sign(&without("jti")).expect("sign"),
            422,
            "missing_claim",
        ),
        (
            "an unknown scope category",
            bed.sign(&with("scope", json!("identity health")))
                .expect("sign"),
            422,
            "invalid_scope",
        ),
        (
            "not a JWS",
            "this.is-not-a.jws!".to_owned(),
            400,
            "malformed_token",
        ),
    ];
    for (what, token, status, code) in cases {
        eprintln!("case: {what}");
        assert_refused(&bed, "eservice", &token, status, code).await;
    }
    bed.stop().await;
}

/// A transfer authorization cannot read a student's history, and a transparency token cannot
/// move a record; the history does show the transfer made with the authorization.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_and_transparency_tokens_never_cross() {
    let bed = ready().await;
    let authorization = token(&bed, STUDENT, "turku", "espoo", SCOPE);
    let id = submit_accepted(&bed, &authorization).await;
    assert_eq!(finished(&bed, &id).await["status"], "delivered");

    let eservice = bed.client("eservice").expect("client");
    let bearer = format!("Bearer {authorization}");
    let answer = eservice
        .get("/v1/students/transfers", &[("authorization", &bearer)])
        .await
        .expect("answer");
    assert_eq!(answer.status.as_u16(), 401, "{}", answer.json());
    assert_eq!(answer.error_code().as_deref(), Some("wrong_typ"));
    wait_for_audit(&bed, "transparency.rejected/wrong_typ", |e| {
        e.event.action == "transparency.rejected" && e.event.outcome == "wrong_typ"
    })
    .await;

    let transparency = bed.transparency_token(STUDENT).expect("token");
    let answer = submit(&bed, "eservice", &transparency).await;
    assert_eq!(answer.status.as_u16(), 401, "{}", answer.json());
    assert_eq!(answer.error_code().as_deref(), Some("wrong_typ"));

    let bearer = format!("Bearer {transparency}");
    let answer = eservice
        .get("/v1/students/transfers", &[("authorization", &bearer)])
        .await
        .expect("answer");
    assert_eq!(answer.status.as_u16(), 200, "{}", answer.json());
    let text = answer.json().to_string();
    assert!(text.contains(&id), "the history lists the transfer: {text}");
    assert_eq!(bed.destinations["espoo"].requests().len(), 1);
    bed.stop().await;
}

/// A record is never sent back to where it came from: `src` = `dst` is refused before anything
/// is fetched, although Turku is both a source and a destination.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dst_that_is_the_src_is_refused() {
    let bed = ready().await;
    let token = token(&bed, STUDENT, "turku", "turku", SCOPE);
    assert_refused(&bed, "eservice", &token, 422, "invalid_destination").await;
    let answer = submit(&bed, "eservice", &token).await;
    let message = answer.json()["message"].as_str().unwrap_or("").to_owned();
    assert!(
        message.contains("also the src"),
        "the message says why: {message}"
    );
    bed.stop().await;
}

/// One rule for every header member and claim: present with the wrong JSON type (`null`
/// included) is `400 malformed_token` in the header and `422 invalid_claim` in the claims;
/// absent, each member has its own code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absent_and_wrongly_typed_members_follow_one_rule() {
    let bed = ready().await;
    let fresh = || claims(&bed, STUDENT, "turku", "espoo", SCOPE);
    let header_with = |member: &str, value: Option<Value>| {
        let mut h = header(&bed, "ES256");
        match value {
            Some(v) => h[member] = v,
            None => {
                h.as_object_mut().expect("object").remove(member);
            }
        }
        sign_with_header(&bed, &h, &fresh())
    };
    let claim_with = |member: &str, value: Value| {
        let mut c = fresh();
        c[member] = value;
        bed.sign(&c).expect("sign")
    };
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "alg absent",
            header_with("alg", None),
            401,
            "unsupported_alg",
        ),
        (
            "alg null",
            header_with("alg", Some(Value::Null)),
            400,
            "malformed_token",
        ),
        (
            "alg a number",
            header_with("alg", Some(json!(256))),
            400,
            "malformed_token",
        ),
        ("kid absent", header_with("kid", None), 401, "missing_kid"),
        (
            "kid null",
            header_with("kid", Some(Value::Null)),
            400,
            "malformed_token",
        ),
        (
            "kid a number",
            header_with("kid", Some(json!(1))),
            400,
            "malformed_token",
        ),
        ("typ absent", header_with("typ", None), 401, "wrong_typ"),
        (
            "typ null",
            header_with("typ", Some(Value::Null)),
            400,
            "malformed_token",
        ),
        (
            "crit null",
            header_with("crit", Some(Value::Null)),
            401,
            "forbidden_header",
        ),
        (
            "x5c a number",
            header_with("x5c", Some(json!(5))),
            401,
            "forbidden_header",
        ),
        (
            "jti null",
            claim_with("jti", Value::Null),
            422,
            "invalid_claim",
        ),
        (
            "sub a number",
            claim_with("sub", json!(131_052_308)),
            422,
            "invalid_claim",
        ),
        (
            "aud null",
            claim_with("aud", Value::Null),
            422,
            "invalid_claim",
        ),
        (
            "nbf null",
            claim_with("nbf", Value::Null),
            422,
            "invalid_claim",
        ),
    ];
    for (what, token, status, code) in cases {
        eprintln!("case: {what}");
        assert_refused(&bed, "eservice", &token, status, code).await;
    }
    bed.stop().await;
}

/// `Authorization: bearer …` and `BEARER …` read the history as `Bearer …` does (RFC 7235:
/// the scheme is case-insensitive); another scheme is `401 missing_token`, audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_case_insensitive() {
    let bed = ready().await;
    let eservice = bed.client("eservice").expect("client");
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let value = format!(
            "{scheme} {}",
            bed.transparency_token(STUDENT).expect("token")
        );
        let answer = eservice
            .get("/v1/students/transfers", &[("authorization", &value)])
            .await
            .expect("answer");
        assert_eq!(answer.status.as_u16(), 200, "{scheme}: {}", answer.json());
        assert!(answer.json()["transfers"].is_array(), "{}", answer.json());
    }
    let read = audit(&bed)
        .await
        .iter()
        .filter(|e| e.event.action == "student.history_read")
        .count();
    assert_eq!(read, 3);
    let basic = format!("Basic {}", bed.transparency_token(STUDENT).expect("token"));
    for value in [basic.as_str(), "Bearer", ""] {
        let answer = async {
            eservice
                .get("/v1/students/transfers", &[("authorization", value)])
                .await
                .expect("answer")
        };
        assert_refusal(
            &bed,
            "eservice",
            "transparency.rejected",
            401,
            "missing_token",
            answer,
        )
        .await;
    }
    bed.stop().await;
}

/// A certificate that matches two participants (here the e-service's: its DNS name is the
/// e-service's rule, its subject the operator's) is refused with its own code and message,
/// audited with the certificate; nothing moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_matching_two_participants_is_refused_as_ambiguous() {
    // Participants are written in the order turku, espoo, helsinki, oulu, eservice,
    // registry-operator: index 5 is the operator.
    let bed = start_with(TestbedOptions {
        env: vec![(
            "SIIRTO__PARTICIPANTS__5__SUBJECT".into(),
            "CN=student-portal,O=Siirto e-service,C=FI".into(),
        )],
        ..TestbedOptions::default()
    })
    .await;
    assert!(
        bed.config
            .directory
            .get("registry-operator")
            .is_some_and(|p| matches!(
                &p.identity,
                siirto_core::identity::IdentityRule::Subject(attributes)
                    if attributes.iter().any(|(k, v)| k == "CN" && v == "student-portal")
            )),
        "the override names the operator"
    );
    bed.sources["turku"].insert(STUDENT, school_record(STUDENT, false).into_bytes());
    let token = token(&bed, STUDENT, "turku", "espoo", SCOPE);

    let answer = submit(&bed, "eservice", &token).await;
    let body = answer.json();
    assert_eq!(answer.status.as_u16(), 403, "{body}");
    assert_eq!(
        answer.error_code().as_deref(),
        Some("ambiguous_participant"),
        "{body}"
    );
    let message = body["message"].as_str().expect("message");
    assert!(message.contains("more than one participant"), "{message}");
    let denied = wait_for_audit(&bed, "access.denied/ambiguous_participant", |e| {
        e.event.action == "access.denied" && e.event.outcome == "ambiguous_participant"
    })
    .await;
    assert!(
        denied.event.detail["certificate_subject"].contains("student-portal"),
        "{:?}",
        denied.event.detail
    );

    // An unknown certificate keeps its own message.
    let stranger = bed
        .client_with(Some(&bed.pki.unknown_client))
        .expect("client");
    let unknown = stranger.submit(&token).await.expect("answer");
    assert_eq!(unknown.error_code().as_deref(), Some("unknown_participant"));
    assert_ne!(unknown.json()["message"].as_str(), Some(message));
    assert!(
        !audit(&bed)
            .await
            .iter()
            .any(|e| e.event.action == "authorization.rejected"),
        "the token of an ambiguous caller is not even verified"
    );
    assert_nothing_moved(&bed).await;
    bed.stop().await;
}

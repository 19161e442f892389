//! Consent given at the register (KOSKI OmaData) through a real gateway: the e-service asks
//! for a consent request, the person's browser follows the KOSKI authorization URL (the test
//! drives it as a browser would: no client certificate, the form-post page read), the
//! e-service hands the code on, the gateway exchanges it at the token endpoint with its client
//! certificate and PKCE verifier and fetches from the resource endpoint, and the record
//! arrives, valid, at a siirto-v1 destination. The in-test authorization and resource server
//! (`siirto_devkit::omadata`, written from RFC 6749, 7636, 8705, 8414 and KOSKI's document; not
//! KOSKI) is first cross-checked by Authlib, an independent OAuth 2.0 client library.
//!
//! Every refusal has its exact code and leaves nothing fetched or delivered where nothing may
//! be: a wrong `state`, a replayed code, an expired request, another e-service's request, a
//! declined consent, a token endpoint answering `invalid_grant`, a resource answer about
//! another person. No code, token, verifier, state or henkilötunnus is in the audit trail or
//! the database in clear.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use siirto_core::clock::{Clock, ManualClock, SystemClock};
use siirto_core::formats::Format;
use siirto_devkit::client::{Answer, MtlsClient};
use siirto_devkit::omadata::{Consent, OmadataPeer, TokenBehaviour, read_form_post};
use siirto_devkit::pki::{DEV_OMADATA_CLIENT_ID, DEV_OMADATA_SCOPE, DEV_REDIRECT_URI};
use siirto_devkit::testbed::{Testbed, TestbedOptions};

use crate::helpers::*;

/// The pupil of the corpus's KOSKI documents.
const PUPIL: &str = "220109-784L";
/// The person of the corpus's upper secondary document (someone else).
const SOMEONE_ELSE: &str = "250605A518Y";
const SCOPE: &str = "identity enrolment achievements";

struct Bed {
    bed: Testbed,
    clock: Arc<ManualClock>,
    corpus: std::path::PathBuf,
    /// The PostgreSQL database, dropped after the testbed.
    _db: Option<siirto_gateway::store::testdb::TestDb>,
}

async fn omadata_bed() -> Option<Bed> {
    omadata_bed_on(None).await
}

async fn omadata_bed_on(db: Option<siirto_gateway::store::testdb::TestDb>) -> Option<Bed> {
    let corpus = siirto_testsupport::corpus()?;
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let bed = start_with(TestbedOptions {
        database_url: db.as_ref().map(|d| d.url.clone()),
        omadata: true,
        clock: clock.clone(),
        env: vec![(
            "SIIRTO__DELIVERY__INITIAL_BACKOFF".to_owned(),
            "20ms".to_owned(),
        )],
        ..TestbedOptions::default()
    })
    .await;
    let b = Bed {
        bed,
        clock,
        corpus,
        _db: db,
    };
    b.peer()
        .insert(b.document("perusopetus-paattotodistus.json"));
    b.peer().insert(b.document("lukio-ops2019-oppimaara.json"));
    b.peer().sign_in_as(PUPIL);
    Some(b)
}

impl Bed {
    fn peer(&self) -> &OmadataPeer {
        &self.bed.omadata["koski-omadata"]
    }

    fn document(&self, name: &str) -> Value {
        let text = std::fs::read(self.corpus.join("koski").join(name)).expect("corpus document");
        serde_json::from_slice(&text).expect("JSON")
    }

    fn authorization(&self, subject: &str) -> String {
        token(&self.bed, subject, "koski-omadata", "espoo", SCOPE)
    }

    /// `POST /v1/consent-requests` as `eservice`.
    async fn request(&self, authorization: &str, redirect_uri: &str) -> Answer {
        self.bed
            .client("eservice")
            .expect("client")
            .post_json(
                "/v1/consent-requests",
                &json!({"authorization": authorization, "redirect_uri": redirect_uri}),
            )
            .await
            .expect("answer")
    }

    /// A consent request that was made: `(id, authorize_url)`.
    async fn requested(&self) -> (String, String) {
        let answer = self
            .request(&self.authorization(PUPIL), DEV_REDIRECT_URI)
            .await;
        assert_eq!(answer.status.as_u16(), 201, "{}", answer.json());
        let body = answer.json();
        (
            body["id"].as_str().expect("id").to_owned(),
            body["authorize_url"].as_str().expect("url").to_owned(),
        )
    }

    /// Follows the authorization URL as the person's browser (no client certificate) and
    /// returns the form KOSKI's page posts: its action and fields.
    async fn browse(&self, url: &str) -> (String, Value) {
        let (origin, rest) = url
            .strip_prefix("https://")
            .and_then(|u| u.split_once('/'))
            .expect("an https URL");
        let browser = MtlsClient::new(&format!("https://{origin}"), &self.bed.pki.ca.cert, None)
            .expect("browser");
        let page = browser.get(&format!("/{rest}"), &[]).await.expect("page");
        assert_eq!(
            page.status.as_u16(),
            200,
            "{}",
            String::from_utf8_lossy(&page.body)
        );
        let (action, fields) =
            read_form_post(&String::from_utf8_lossy(&page.body)).expect("a form-post page");
        let fields: serde_json::Map<String, Value> = fields
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        (action, Value::Object(fields))
    }

    /// The e-service hands KOSKI's posted fields on: `POST /v1/consent-requests/{id}/code`.
    async fn hand_on(&self, participant: &str, id: &str, fields: &Value) -> Answer {
        self.bed
            .client(participant)
            .expect("client")
            .post_json(&format!("/v1/consent-requests/{id}/code"), fields)
            .await
            .expect("answer")
    }

    /// A whole consent up to the transfer's id.
    async fn consented(&self) -> String {
        let (id, url) = self.requested().await;
        let (action, fields) = self.browse(&url).await;
        assert_eq!(action, DEV_REDIRECT_URI);
        let answer = self.hand_on("eservice", &id, &fields).await;
        assert_eq!(answer.status.as_u16(), 202, "{}", answer.json());
        answer.json()["id"]
            .as_str()
            .expect("transfer id")
            .to_owned()
    }
}

fn assert_no_secret_in(text: &str, secrets: &[&str], what: &str) {
    for s in secrets {
        assert!(!s.is_empty());
        assert!(
            !text.contains(s),
            "{what} holds a secret in clear ({} chars)",
            s.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_test_authorization_server_passes_an_independent_oauth_client() {
    let Some(python) = tool(
        "python3",
        &["-c", "import authlib, requests"],
        "python3 with the Python packages authlib and requests",
    ) else {
        return;
    };
    let Some(b) = omadata_bed().await else {
        return;
    };
    let gateway_client = &b.bed.pki.gateway_client;
    let out = tokio::process::Command::new(python)
        .arg(tools_dir().join("omadata_client.py"))
        .arg(b.peer().issuer())
        .arg(DEV_OMADATA_CLIENT_ID)
        .arg(DEV_REDIRECT_URI)
        .arg(DEV_OMADATA_SCOPE)
        .arg(&b.bed.pki.ca.cert)
        .arg(&gateway_client.cert)
        .arg(&gateway_client.key)
        .arg(b.peer().resource_url())
        .output()
        .await
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let checks: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    for key in [
        "metadata_issuer",
        "metadata_s256",
        "metadata_tls_client_auth",
        "form_action_is_redirect_uri",
        "state_returned",
        "challenge_is_rfc7636_s256",
    ] {
        assert_eq!(checks[key], true, "{key}: {checks:#}");
    }
    assert_eq!(checks["form_status"], 200);
    assert_eq!(checks["token_type"], "Bearer");
    assert_eq!(checks["resource_status"], 200);
    assert_eq!(checks["resource_token_info_scope"], DEV_OMADATA_SCOPE);
    assert_eq!(checks["replayed_code"], json!([400, "invalid_grant"]));
    assert_eq!(
        checks["bad_token"],
        json!([401, "Bearer error=\"invalid_token\""])
    );
    assert_eq!(checks["wrong_verifier"], "invalid_grant");
    assert_eq!(checks["forged_state"], "MismatchingStateException");
    assert_eq!(
        checks["no_client_certificate"],
        json!([401, "invalid_client"])
    );
    assert_eq!(
        checks["plain_method"],
        json!(["invalid_request", "s-plain"])
    );
    b.bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consent_given_at_koski_moves_the_record_to_a_school_system() {
    let Some(b) = omadata_bed().await else {
        return;
    };
    whole_flow(b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consent_given_at_koski_moves_the_record_on_postgresql() {
    let Some(db) = postgres().await else {
        return;
    };
    let Some(b) = omadata_bed_on(Some(db)).await else {
        return;
    };
    whole_flow(b).await;
}

async fn whole_flow(b: Bed) {
    let (id, url) = b.requested().await;
    // The KOSKI authorization URL of the contract.
    let (endpoint, query) = url.split_once('?').expect("query");
    assert_eq!(endpoint, format!("{}/authorize", b.peer().issuer()));
    let params: std::collections::BTreeMap<String, String> =
        form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
    assert_eq!(params["response_type"], "code");
    assert_eq!(params["client_id"], DEV_OMADATA_CLIENT_ID);
    assert_eq!(params["redirect_uri"], DEV_REDIRECT_URI);
    assert_eq!(params["scope"], DEV_OMADATA_SCOPE);
    assert_eq!(params["code_challenge_method"], "S256");
    assert_eq!(params["response_mode"], "form_post");
    assert_eq!(params["code_challenge"].len(), 43);
    assert!(params["state"].len() >= 32);
    assert!(!params.contains_key("code_verifier"));

    let (action, fields) = b.browse(&url).await;
    assert_eq!(action, DEV_REDIRECT_URI);
    assert_eq!(fields["state"], params["state"].as_str());
    let code = fields["code"].as_str().expect("a code").to_owned();
    let answer = b.hand_on("eservice", &id, &fields).await;
    assert_eq!(answer.status.as_u16(), 202, "{}", answer.json());
    let transfer_id = answer.json()["id"].as_str().expect("id").to_owned();
    assert_eq!(answer.json()["status"], "accepted");

    let transfer = finished(&b.bed, &transfer_id).await;
    assert_eq!(transfer["status"], "delivered", "{transfer:#}");
    let delivered = b.bed.destinations["espoo"].requests();
    assert_eq!(delivered.len(), 1);
    assert_valid(
        Format::SiirtoV1,
        &delivered[0].body,
        "KOSKI OmaData → siirto-v1",
    );
    assert_eq!(transfer["conversion"]["from"], "koski");

    // The code was exchanged once, the resource fetched once, nothing refused by the peer.
    assert_eq!(b.peer().exchanges().get(&code), Some(&1));
    assert_eq!(b.peer().exchanges().len(), 1);
    assert_eq!(b.peer().resource_calls(), 1);
    assert_eq!(b.peer().refusals(), Vec::<String>::new());

    // Each step is audited, in order, without a secret.
    let actions: Vec<(String, String)> = audit(&b.bed)
        .await
        .iter()
        .filter(|e| {
            e.event.action.starts_with("consent.")
                || e.event.action.starts_with("omadata.")
                || e.event.action == "source.fetch"
                || e.event.action == "transfer.accepted"
        })
        .map(|e| (e.event.action.clone(), e.event.outcome.clone()))
        .collect();
    let expected: Vec<(String, String)> = [
        ("consent.requested", "ok"),
        ("consent.answered", "granted"),
        ("transfer.accepted", "ok"),
        ("omadata.exchange", "started"),
        ("omadata.exchange", "ok"),
        ("source.fetch", "ok"),
    ]
    .iter()
    .map(|(a, o)| ((*a).to_owned(), (*o).to_owned()))
    .collect();
    assert_eq!(actions, expected);
    let accepted = audit(&b.bed)
        .await
        .into_iter()
        .find(|e| e.event.action == "transfer.accepted")
        .expect("accepted");
    assert_eq!(accepted.event.detail["consent_given_at"], "koski");

    // The receipt and the student's own page say the consent was given at KOSKI.
    let receipt = transfer["receipt"].as_str().expect("receipt");
    let payload = receipt.split('.').nth(1).expect("payload");
    use base64::Engine;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url"),
    )
    .expect("JSON");
    assert_eq!(claims["consent_given_at"], "koski", "{claims:#}");
    let bearer = || format!("Bearer {}", b.bed.transparency_token(PUPIL).expect("token"));
    let eservice = b.bed.client("eservice").expect("client");
    for (lang, words) in [
        ("fi", "Annoit luvan KOSKI-palvelussa"),
        ("sv", "Du gav tillstånd i KOSKI-tjänsten"),
        ("en", "You agreed in KOSKI"),
    ] {
        let page = eservice
            .get(
                &format!("/v1/students/transfers?lang={lang}"),
                &[("authorization", &bearer()), ("accept", "text/html")],
            )
            .await
            .expect("page");
        assert_eq!(page.status.as_u16(), 200);
        assert!(
            String::from_utf8_lossy(&page.body).contains(words),
            "{lang}: {}",
            String::from_utf8_lossy(&page.body)
        );
    }
    let history = eservice
        .get("/v1/students/transfers", &[("authorization", &bearer())])
        .await
        .expect("history")
        .json();
    assert_eq!(
        history["transfers"][0]["consent_given_at"], "koski",
        "{history:#}"
    );

    // No secret and no henkilötunnus in clear: audit trail, database file, the transfer view.
    let verifiers = b.peer().verifiers();
    let tokens = b.peer().tokens();
    assert_eq!((verifiers.len(), tokens.len()), (1, 1));
    let secrets = [
        code.as_str(),
        params["state"].as_str(),
        PUPIL,
        verifiers[0].as_str(),
        tokens[0].as_str(),
    ];
    let trail: String = audit(&b.bed)
        .await
        .iter()
        .map(|e| format!("{:?}", e.event))
        .collect();
    assert_no_secret_in(&trail, &secrets, "the audit trail");
    assert_no_secret_in(&transfer.to_string(), &secrets, "the transfer view");
    b.bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_refused_with_their_codes() {
    let Some(b) = omadata_bed().await else {
        return;
    };
    // A wrong state: 409 state_mismatch, the request still answerable.
    let (id, url) = b.requested().await;
    let (_, fields) = b.browse(&url).await;
    let mut forged = fields.clone();
    forged["state"] = json!("not-the-state");
    let answer = b.hand_on("eservice", &id, &forged).await;
    assert_eq!(answer.status.as_u16(), 409);
    assert_eq!(answer.error_code().as_deref(), Some("state_mismatch"));
    wait_for_audit(&b.bed, "consent.refused/state_mismatch", |e| {
        e.event.action == "consent.refused" && e.event.outcome == "state_mismatch"
    })
    .await;

    // Another e-service's request: 404, as for an unknown one.
    let answer = b.hand_on("turku", &id, &fields).await;
    assert_eq!(answer.status.as_u16(), 404);
    let answer = b.hand_on("eservice", "no-such-request", &fields).await;
    assert_eq!(answer.status.as_u16(), 404);

    // The right answer, then the same code again: 409 already_used.
    let answer = b.hand_on("eservice", &id, &fields).await;
    assert_eq!(answer.status.as_u16(), 202, "{}", answer.json());
    let transfer_id = answer.json()["id"].as_str().expect("id").to_owned();
    let again = b.hand_on("eservice", &id, &fields).await;
    assert_eq!(again.status.as_u16(), 409);
    assert_eq!(again.error_code().as_deref(), Some("already_used"));
    finished(&b.bed, &transfer_id).await;
    assert_eq!(b.peer().exchanges().len(), 1, "one code, exchanged once");

    // An expired request: 410 expired, nothing fetched.
    let (id, url) = b.requested().await;
    let (_, fields) = b.browse(&url).await;
    b.clock.advance(Duration::from_secs(601));
    let answer = b.hand_on("eservice", &id, &fields).await;
    assert_eq!(answer.status.as_u16(), 410);
    assert_eq!(answer.error_code().as_deref(), Some("expired"));
    assert_eq!(b.peer().exchanges().len(), 1);

    // A redirect URI the e-service did not register: 422 invalid_redirect_uri.
    let answer = b
        .request(&b.authorization(PUPIL), "https://elsewhere.example/back")
        .await;
    assert_eq!(answer.status.as_u16(), 422);
    assert_eq!(answer.error_code().as_deref(), Some("invalid_redirect_uri"));
    // The same authorization twice: 409 replay.
    let jws = b.authorization(PUPIL);
    assert_eq!(b.request(&jws, DEV_REDIRECT_URI).await.status.as_u16(), 201);
    let replay = b.request(&jws, DEV_REDIRECT_URI).await;
    assert_eq!(replay.error_code().as_deref(), Some("replay"));
    // An OmaData source is never fetched without the person's consent at KOSKI.
    let direct = submit(&b.bed, "eservice", &b.authorization(PUPIL)).await;
    assert_eq!(direct.status.as_u16(), 422);
    assert_eq!(direct.error_code().as_deref(), Some("invalid_source"));
    // A consent request for a source that is not an OmaData one.
    let answer = b
        .request(
            &token(&b.bed, PUPIL, "turku", "espoo", SCOPE),
            DEV_REDIRECT_URI,
        )
        .await;
    assert_eq!(answer.error_code().as_deref(), Some("invalid_source"));
    assert_eq!(b.bed.destinations["espoo"].requests().len(), 1);
    b.bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_consent_fetches_nothing() {
    let Some(b) = omadata_bed().await else {
        return;
    };
    b.peer().set_consent(Consent::Decline);
    let (id, url) = b.requested().await;
    let (_, fields) = b.browse(&url).await;
    assert_eq!(fields["error"], "access_denied");
    let answer = b.hand_on("eservice", &id, &fields).await;
    assert_eq!(answer.status.as_u16(), 200);
    assert_eq!(answer.json()["status"], "declined");
    // Declined once is answered: a code afterwards is refused.
    let again = b.hand_on("eservice", &id, &fields).await;
    assert_eq!(again.error_code().as_deref(), Some("already_used"));
    assert!(b.peer().exchanges().is_empty());
    assert_eq!(b.peer().resource_calls(), 0);
    assert_nothing_delivered(&b.bed);
    let declined = audit(&b.bed)
        .await
        .into_iter()
        .find(|e| e.event.action == "consent.answered")
        .expect("audited");
    assert_eq!(declined.event.outcome, "declined");
    assert_eq!(declined.event.detail["error"], "access_denied");
    b.bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_refusal_fails_the_transfer_as_source_refused() {
    let Some(b) = omadata_bed().await else {
        return;
    };
    b.peer()
        .set_token_behaviour(TokenBehaviour::Error("invalid_grant".into()));
    let transfer_id = b.consented().await;
    let transfer = assert_failed(&b.bed, &transfer_id, "source_refused").await;
    assert!(
        step(&transfer, "fetch")["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("invalid_grant"),
        "{transfer:#}"
    );
    assert_eq!(
        b.peer().exchanges().values().sum::<u32>(),
        1,
        "never retried"
    );
    assert_eq!(b.peer().resource_calls(), 0);
    assert_nothing_delivered(&b.bed);
    b.bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_of_another_person_is_a_subject_mismatch() {
    let Some(b) = omadata_bed().await else {
        return;
    };
    // Someone else authenticates at KOSKI and consents (KOSKI's document warns of exactly
    // this): KOSKI returns that person's record.
    b.peer().sign_in_as(SOMEONE_ELSE);
    let transfer_id = b.consented().await;
    assert_failed(&b.bed, &transfer_id, "subject_mismatch").await;
    assert_eq!(b.peer().resource_calls(), 1);
    assert_nothing_delivered(&b.bed);
    b.bed.stop().await;
}

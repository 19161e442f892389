//! `POST /v1/consent-requests` and `POST /v1/consent-requests/{id}/code`: consent given at the
//! register, KOSKI OmaData (CONTRACT.md, "Consent given at the register: KOSKI OmaData").
//!
//! Owns: turning an e-service's verified authorization for a `koski-omadata` source into a
//! consent request (the KOSKI authorization URL with a fresh single-use `state`, the PKCE S256
//! challenge and `response_mode=form_post`; the verifier sealed in the store, never sent), and
//! the person's answer handed on by the e-service: a code makes the transfer (durably, with the
//! code sealed until the worker exchanges it), an error declines. Each step and each refusal is
//! audited, never with the code, the state or the verifier.
//!
//! It must not exchange the code or fetch (the worker does, `delivery`), nor keep a secret in
//! clear anywhere: the `state` is kept only as its SHA-256.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::StatusCode;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::transfers::{accepted_response, new_transfer, refuse, replayed};
use super::{ApiError, ErrorCode, audited, json_response, read_body, refusal_event, require_role};
use crate::server::Body;
use crate::state::Gateway;
use crate::store::{ConsentAnswer, Inserted, NewConsentRequest, NewTransfer, StoredConsent};
use siirto_core::audit::{AuditEvent, Pseudonym};
use siirto_core::authz;
use siirto_core::clock::{Timestamp, hex, uuid_v4};
use siirto_core::consent::Basis;
use siirto_core::identity::{AuthenticatedParticipant, Role};
use siirto_core::lang::Lang;
use siirto_core::omadata::{self, AnswerRefusal, RequestFacts, RequestStatus, Secret};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRequest {
    authorization: String,
    redirect_uri: String,
}

/// What the e-service hands on from KOSKI's form post: `code` and `state`, or `error` (with
/// an optional `error_description`, which is dropped) and `state`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    state: String,
    code: Option<String>,
    error: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    error_description: Option<String>,
}

/// The purposes the vault binds each sealed value of a request to.
pub fn sealed_purpose(part: &str, request_id: &str) -> String {
    format!("omadata-{part}:{request_id}")
}

pub async fn create(
    gw: &Arc<Gateway>,
    caller: &AuthenticatedParticipant,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    require_role(caller, Role::Eservice)?;
    let body = match read_body(gw, req).await {
        Ok(b) => b,
        Err(e) => return Err(refuse(gw, caller, e).await),
    };
    let request: NewRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            let e = ApiError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "the body must be {{\"authorization\": \"<JWS>\", \"redirect_uri\": \"<URL>\"}} ({e})"
                ),
            );
            return Err(refuse(gw, caller, e).await);
        }
    };
    let now = gw.now();
    let verified = match authz::verify_authorization(
        &request.authorization,
        &gw.issuer_keys(),
        &gw.policy,
        &gw.config.directory,
        gw.consent_texts,
        caller.participant(),
        now,
    ) {
        Ok(v) => v,
        Err(e) => return Err(refuse(gw, caller, e.into()).await),
    };
    let Some(call) = gw.omadata_call(verified.source()).cloned() else {
        let e = ApiError::new(
            ErrorCode::InvalidSource,
            format!(
                "\"{}\" is not a KOSKI OmaData source (protocol = \"koski-omadata\")",
                verified.source()
            ),
        );
        return Err(refuse(gw, caller, e).await);
    };
    if !caller
        .participant()
        .redirect_uris
        .contains(&request.redirect_uri)
    {
        let e = ApiError::new(
            ErrorCode::InvalidRedirectUri,
            "redirect_uri is not one of this e-service's redirect_uris (as registered at KOSKI)",
        );
        let event = refusal_event(gw, &caller.participant().id, "consent.refused", &e);
        return Err(audited(gw, event, e).await);
    }
    super::transfers::refuse_while_audit_broken(
        gw,
        caller,
        "consent",
        "no consent request is accepted",
    )
    .await?;
    // The authorization endpoint, from the authorization server's own metadata (RFC 8414).
    let metadata = match gw.outbound.omadata_metadata(verified.source()).await {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(source = verified.source(), error = %e, "KOSKI OmaData metadata unavailable");
            let api = ApiError::new(
                ErrorCode::SourceUnavailable,
                format!(
                    "the authorization server of \"{}\" could not be asked ({}); try again later",
                    verified.source(),
                    e.code()
                ),
            );
            let mut event = refusal_event(gw, &caller.participant().id, "consent.refused", &api);
            event
                .detail
                .insert("source".into(), verified.source().into());
            event.detail.insert("cause".into(), e.code().into());
            return Err(audited(gw, event, api).await);
        }
    };
    let id = uuid_v4(gw.random.as_ref());
    let transfer_id = uuid_v4(gw.random.as_ref());
    let (transfer, accepted) =
        new_transfer(gw, &caller.participant().id, &verified, transfer_id, now);
    let state = omadata::random_token(gw.random.as_ref());
    let verifier = omadata::random_token(gw.random.as_ref());
    let challenge = omadata::s256_challenge(verifier.expose());
    let expires_at = now.saturating_add(gw.config.consent.request_ttl);
    let authorize_url = authorize_url(
        &metadata.authorization_endpoint,
        &call,
        &request.redirect_uri,
        &state,
        &challenge,
    );
    let pending = pending_json(&transfer, &accepted);
    let mut event = gw.event(&caller.participant().id, "consent.requested", "ok");
    event.subject = accepted.subject.clone();
    event.detail.insert("consent_request".into(), id.clone());
    for k in ["src", "dst", "purpose", "scope", "basis", "issuer"] {
        if let Some(v) = accepted.detail.get(k) {
            event.detail.insert(k.into(), v.clone());
        }
    }
    event
        .detail
        .insert("expires_at".into(), expires_at.rfc3339());
    event
        .detail
        .insert("code_challenge_method".into(), omadata::PKCE_METHOD.into());
    let row = NewConsentRequest {
        id: id.clone(),
        eservice: caller.participant().id.clone(),
        src: verified.source().to_owned(),
        redirect_uri: request.redirect_uri.clone(),
        state_sha256: hex(&siirto_core::vault::sha256(state.expose().as_bytes())),
        verifier_sealed: gw
            .vault
            .seal(
                &sealed_purpose("verifier", &id),
                verifier.expose().as_bytes(),
                gw.random.as_ref(),
            )
            .bytes,
        pending_sealed: gw
            .vault
            .seal(
                &sealed_purpose("pending", &id),
                pending.to_string().as_bytes(),
                gw.random.as_ref(),
            )
            .bytes,
        created_at: now,
        expires_at,
        issuer: verified.issuer().to_owned(),
        jti: verified.jti().to_owned(),
        replay_until: verified.remember_until(),
    };
    let inserted = gw.store.insert_consent_request(row, vec![event]).await;
    gw.note_store_health(inserted.is_ok());
    match inserted? {
        Inserted::Accepted => Ok(json_response(
            StatusCode::CREATED,
            &json!({
                "id": id,
                "authorize_url": authorize_url,
                "expires_at": expires_at.rfc3339(),
            }),
        )),
        Inserted::Replay => Err(replayed(gw, caller, verified.issuer()).await?),
    }
}

/// RFC 6749 §4.1.1 with RFC 7636 §4.3 and the form post response mode: the authorization
/// endpoint's own query (if any) kept, the parameters appended form-urlencoded.
fn authorize_url(
    endpoint: &str,
    call: &siirto_core::protocol::OmadataCall,
    redirect_uri: &str,
    state: &Secret,
    challenge: &str,
) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &call.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", &call.scope)
        .append_pair("state", state.expose())
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", omadata::PKCE_METHOD)
        .append_pair("response_mode", omadata::FORM_POST)
        .finish();
    let joiner = if endpoint.contains('?') { '&' } else { '?' };
    format!("{endpoint}{joiner}{query}")
}

/// The transfer waiting for the person's consent, as kept (sealed) with the request.
fn pending_json(t: &NewTransfer, accepted: &AuditEvent) -> Value {
    json!({
        "id": t.id,
        "submitter": t.submitter,
        "issuer": t.issuer,
        "jti": t.jti,
        "src": t.src,
        "dst": t.dst,
        "purpose": t.purpose,
        "scope": t.scope,
        "subject_pseudonym": t.subject_pseudonym,
        "subject_sealed": hex(&t.subject_sealed),
        "basis": t.basis.as_str(),
        "guardian_pseudonym": t.guardian_pseudonym,
        "consent": t.consent.as_ref().map(|c| json!({
            "sha256": c.sha256, "version": c.version, "lang": c.lang.code(),
        })),
        "consented_at": t.consented_at.millis(),
        "replay_until": t.replay_until.millis(),
        "accepted_detail": accepted.detail,
    })
}

/// Reads [`pending_json`] back: the transfer, made now, and its `transfer.accepted` detail.
fn transfer_from_pending(
    v: &Value,
    now: Timestamp,
) -> Option<(NewTransfer, BTreeMap<String, String>)> {
    let text = |k: &str| v.get(k)?.as_str().map(str::to_owned);
    let consent = match v.get("consent") {
        Some(Value::Object(c)) => Some(StoredConsent {
            sha256: c.get("sha256")?.as_str()?.to_owned(),
            version: c.get("version")?.as_str()?.to_owned(),
            lang: Lang::parse(c.get("lang")?.as_str()?)?,
        }),
        _ => None,
    };
    let transfer = NewTransfer {
        id: text("id")?,
        submitter: text("submitter")?,
        issuer: text("issuer")?,
        jti: text("jti")?,
        src: text("src")?,
        dst: text("dst")?,
        purpose: text("purpose")?,
        scope: text("scope")?,
        subject_pseudonym: text("subject_pseudonym")?,
        subject_sealed: siirto_core::clock::unhex(&text("subject_sealed")?)?,
        basis: Basis::parse(&text("basis")?)?,
        guardian_pseudonym: text("guardian_pseudonym"),
        consent,
        consented_at: Timestamp::from_millis(v.get("consented_at")?.as_i64()?),
        created_at: now,
        replay_until: Timestamp::from_millis(v.get("replay_until")?.as_i64()?),
    };
    let detail = serde_json::from_value(v.get("accepted_detail")?.clone()).ok()?;
    Some((transfer, detail))
}

pub async fn answer(
    gw: &Arc<Gateway>,
    caller: &AuthenticatedParticipant,
    id: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    require_role(caller, Role::Eservice)?;
    let actor = caller.participant().id.clone();
    let refused = |e: ApiError| async {
        let mut event = refusal_event(gw, &actor, "consent.refused", &e);
        event.detail.insert("consent_request".into(), id.to_owned());
        audited(gw, event, e).await
    };
    let body = read_body(gw, req).await?;
    let answer: Answer = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => {
            return Err(refused(ApiError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "the body must be {{\"code\", \"state\"}} or {{\"error\", \"state\"}} as KOSKI posted them ({e})"
                ),
            ))
            .await);
        }
    };
    let code = match (&answer.code, &answer.error) {
        (Some(c), None) if omadata::valid_parameter(c) => Some(Secret::new(c.clone())),
        (None, Some(e)) if omadata::valid_parameter(e) => None,
        _ => {
            return Err(refused(ApiError::new(
                ErrorCode::InvalidRequest,
                "exactly one of `code` and `error` is required, each 1 to 512 visible ASCII characters",
            ))
            .await);
        }
    };
    if !omadata::valid_parameter(&answer.state) {
        return Err(refused(ApiError::new(
            ErrorCode::InvalidRequest,
            "`state` must be 1 to 512 visible ASCII characters",
        ))
        .await);
    }
    let now = gw.now();
    let row = gw.store.consent_request(id).await?;
    let state_hash = row
        .as_ref()
        .and_then(|r| siirto_core::clock::unhex(&r.state_sha256))
        .and_then(|h| <[u8; 32]>::try_from(h).ok())
        .unwrap_or([0u8; 32]);
    let facts = row.as_ref().map(|r| RequestFacts {
        eservice: &r.eservice,
        status: RequestStatus::parse(&r.status).unwrap_or(RequestStatus::Granted),
        expires_at: r.expires_at,
        state_sha256: &state_hash,
    });
    if let Err(refusal) = omadata::decide_answer(facts, &actor, &answer.state, now) {
        let e = match refusal {
            AnswerRefusal::NotFound => ApiError::not_found(),
            AnswerRefusal::AlreadyUsed => ApiError::new(
                ErrorCode::AlreadyUsed,
                "this consent request has already been answered",
            ),
            AnswerRefusal::Expired => ApiError::new(
                ErrorCode::RequestExpired,
                "this consent request has expired; ask for the person's consent again",
            ),
            AnswerRefusal::StateMismatch => ApiError::new(
                ErrorCode::StateMismatch,
                "`state` is not the one this consent request was sent with",
            ),
        };
        return Err(refused(e).await);
    }
    // decide_answer found the row.
    let Some(row) = row else {
        return Err(ApiError::not_found());
    };
    let mut event = gw.event(&actor, "consent.answered", "");
    event.detail.insert("consent_request".into(), id.to_owned());
    event.detail.insert("source".into(), row.src.clone());
    let Some(code) = code else {
        // The person declined at KOSKI (or KOSKI refused): only the OAuth error code is kept.
        event.outcome = "declined".into();
        if let Some(e) = &answer.error {
            event.detail.insert("error".into(), oauth_error_code(e));
        }
        let answered = gw
            .store
            .answer_consent_request(id, ConsentAnswer::Declined, now, vec![event])
            .await?;
        if !answered {
            return Err(refused(already_used()).await);
        }
        return Ok(json_response(
            StatusCode::OK,
            &json!({ "id": id, "status": "declined" }),
        ));
    };
    let pending = row
        .pending_sealed
        .as_deref()
        .and_then(|s| gw.vault.open(&sealed_purpose("pending", id), s).ok())
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| transfer_from_pending(&v, now));
    let Some((transfer, detail)) = pending else {
        tracing::error!(
            consent_request = id,
            "the stored consent request cannot be opened"
        );
        return Err(ApiError::new(
            ErrorCode::StoreUnavailable,
            "the stored consent request cannot be opened",
        ));
    };
    let transfer_id = transfer.id.clone();
    event.outcome = "granted".into();
    event.transfer_id = Some(transfer_id.clone());
    event.subject = Pseudonym::parse(&transfer.subject_pseudonym).ok();
    let mut accepted = gw.event(&transfer.submitter, "transfer.accepted", "ok");
    accepted.transfer_id = Some(transfer_id.clone());
    accepted.subject = event.subject.clone();
    accepted.detail = detail;
    accepted
        .detail
        .insert("consent_given_at".into(), "koski".into());
    accepted
        .detail
        .insert("consent_request".into(), id.to_owned());
    let code_sealed = gw
        .vault
        .seal(
            &sealed_purpose("code", id),
            code.expose().as_bytes(),
            gw.random.as_ref(),
        )
        .bytes;
    let answered = gw
        .store
        .answer_consent_request(
            id,
            ConsentAnswer::Granted {
                transfer: Box::new(transfer),
                code_sealed,
            },
            now,
            vec![event, accepted],
        )
        .await;
    gw.note_store_health(answered.is_ok());
    if !answered? {
        return Err(refused(already_used()).await);
    }
    tracing::Span::current().record("transfer_id", transfer_id.as_str());
    tracing::info!(
        source = row.src.as_str(),
        "consent given at KOSKI; transfer accepted"
    );
    Ok(accepted_response(gw, &transfer_id))
}

fn already_used() -> ApiError {
    ApiError::new(
        ErrorCode::AlreadyUsed,
        "this consent request has already been answered",
    )
}

/// An OAuth error code as RFC 6749 §4.1.2.1 registers them (`access_denied`, …): lower-case
/// letters and `_` only, else `other`.
fn oauth_error_code(e: &str) -> String {
    if e.len() <= 64 && e.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        e.to_owned()
    } else {
        "other".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorize_url_carries_every_parameter_encoded() {
        let call = siirto_core::protocol::OmadataCall {
            client_id: "siirto city".into(),
            issuer: "https://koski.example/omadata-oauth2".into(),
            resource: "https://koski.example/resource".into(),
            scope: "HENKILOTIEDOT_KAIKKI_TIEDOT OPISKELUOIKEUDET_KAIKKI_TIEDOT".into(),
        };
        let url = authorize_url(
            "https://koski.example/omadata-oauth2/authorize?locale=fi",
            &call,
            "https://portal.example/back?a=1",
            &Secret::new("st&te"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        );
        let (base, query) = url.split_once('?').expect("query");
        assert_eq!(base, "https://koski.example/omadata-oauth2/authorize");
        let pairs: BTreeMap<String, String> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(pairs["locale"], "fi");
        assert_eq!(pairs["response_type"], "code");
        assert_eq!(pairs["client_id"], "siirto city");
        assert_eq!(pairs["redirect_uri"], "https://portal.example/back?a=1");
        assert_eq!(pairs["scope"], call.scope);
        assert_eq!(pairs["state"], "st&te");
        assert_eq!(pairs["code_challenge_method"], "S256");
        assert_eq!(pairs["response_mode"], "form_post");
    }

    #[test]
    fn oauth_error_codes_are_kept_only_when_registered_shaped() {
        assert_eq!(oauth_error_code("access_denied"), "access_denied");
        assert_eq!(oauth_error_code("131052-308T"), "other");
    }
}

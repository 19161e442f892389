//! `POST /v1/transfers`, `GET /v1/transfers/{id}`, `POST /v1/transfers/{id}/cancel`,
//! `POST /v1/transfers/{id}/retry`.
//!
//! Owns: turning a verified authorization into a durably accepted transfer (202 only after the
//! commit), who may see or act on a transfer, and the transfer's JSON view.

use std::sync::Arc;

use http::StatusCode;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ErrorCode, audited, json_response, read_body, refusal_event, require_role};
use crate::metrics::Outcome;
use crate::server::Body;
use crate::state::Gateway;
use crate::store::{
    Guard, Inserted, Modified, NewTransfer, PayloadChange, StepRow, StoredConsent, TransferChange,
    TransferRow,
};
use siirto_core::authz;
use siirto_core::clock::{hex, uuid_v4};
use siirto_core::identity::AuthenticatedParticipant;
use siirto_core::identity::Role;
use siirto_core::transfer::{self, Event, Status};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Submission {
    pub(super) authorization: String,
}

pub async fn submit(
    gw: &Arc<Gateway>,
    caller: &AuthenticatedParticipant,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let (verified, now) = verified_submission(gw, caller, req, authz::verify_authorization).await?;
    if gw.is_omadata_source(verified.source()) {
        // Its data moves only on the consent the person gives at KOSKI itself.
        let e = ApiError::new(
            ErrorCode::InvalidSource,
            format!(
                "\"{}\" is a KOSKI OmaData source: the student consents at KOSKI; start with POST /v1/consent-requests",
                verified.source()
            ),
        );
        return Err(refuse(gw, caller, e).await);
    }
    refuse_while_audit_broken(gw, caller, "transfer", "no transfer is accepted").await?;
    let pending = gw.pending();
    if pending >= gw.config.delivery.max_pending {
        let mut event = gw.event(&caller.participant().id, "transfer.refused", "overloaded");
        event.detail.insert("pending".into(), pending.to_string());
        gw.store.append_audit(vec![event]).await?;
        return Err(ApiError::new(
            ErrorCode::Overloaded,
            "the gateway has too many unfinished transfers; try again later",
        ));
    }
    if gw.store_suspect()
        && let Err(e) = gw.readiness_or_busy().await
    {
        // Refuse at once rather than queue behind writes the database is not taking; the
        // `jti` is not used up, so the same authorization can be sent again later.
        tracing::warn!(error = %e, "refusing a transfer: the store does not take writes");
        return Err(store_unavailable());
    }
    let id = uuid_v4(gw.random.as_ref());
    tracing::Span::current().record("transfer_id", id.as_str());
    let (transfer, accepted) =
        new_transfer(gw, &caller.participant().id, &verified, id.clone(), now);
    let inserted = gw.store.insert_transfer(transfer, vec![accepted]).await;
    gw.note_store_health(inserted.is_ok());
    match inserted? {
        Inserted::Accepted => {
            tracing::info!(
                src = verified.source(),
                dst = verified.destination(),
                "transfer accepted"
            );
            Ok(accepted_response(gw, &id))
        }
        Inserted::Replay => Err(replayed(gw, caller, verified.issuer()).await?),
    }
}

/// Counts a transfer just stored, wakes the worker, and answers `202`.
pub fn accepted_response(gw: &Gateway, id: &str) -> Response<Body> {
    gw.note_accepted();
    gw.wake.notify_one();
    gw.metrics.transfer_accepted();
    json_response(
        StatusCode::ACCEPTED,
        &json!({ "id": id, "status": "accepted", "links": links(id) }),
    )
}

/// Audits and counts a replayed authorization (`409 replay`).
pub async fn replayed(
    gw: &Gateway,
    caller: &AuthenticatedParticipant,
    issuer: &str,
) -> Result<ApiError, ApiError> {
    gw.metrics
        .authorization_rejected(ErrorCode::Replay.as_str());
    let mut event = gw.event(&caller.participant().id, "authorization.rejected", "replay");
    event.detail.insert("issuer".into(), issuer.into());
    gw.store.append_audit(vec![event]).await?;
    Ok(ApiError::new(
        ErrorCode::Replay,
        "this authorization (jti) has already been used",
    ))
}

/// The transfer a verified authorization makes, under `id`, and its `transfer.accepted` audit
/// entry: the student as a keyed pseudonym and sealed (bound to the transfer id), the guardian
/// as a pseudonym of its own domain, the consent text proven.
pub fn new_transfer(
    gw: &Gateway,
    submitter: &str,
    verified: &authz::VerifiedAuthorization,
    id: String,
    now: siirto_core::clock::Timestamp,
) -> (NewTransfer, siirto_core::audit::AuditEvent) {
    let pseudonym = gw.pseudonyms.pseudonym(verified.subject());
    let sealed = gw.vault.seal(
        &format!("subject:{id}"),
        verified.subject().as_str().as_bytes(),
        gw.random.as_ref(),
    );
    let scope = verified.scope().to_string();
    // The guardian, like the student, only as a keyed pseudonym (in a domain of its own).
    let guardian = verified
        .guardian()
        .map(|g| gw.pseudonyms.guardian_pseudonym(g).as_str().to_owned());
    let consent = verified.consent().map(|c| StoredConsent {
        sha256: hex(&c.sha256),
        version: c.version.clone(),
        lang: c.lang,
    });
    let mut accepted = gw.event(submitter, "transfer.accepted", "ok");
    accepted.transfer_id = Some(id.clone());
    accepted.subject = Some(pseudonym.clone());
    for (k, v) in [
        ("issuer", verified.issuer()),
        ("key_id", verified.key_id()),
        ("src", verified.source()),
        ("dst", verified.destination()),
        ("purpose", verified.purpose()),
        ("scope", scope.as_str()),
        ("basis", verified.basis().as_str()),
    ] {
        accepted.detail.insert(k.into(), v.into());
    }
    if let Some(g) = &guardian {
        accepted.detail.insert("guardian".into(), g.clone());
    }
    if let Some(c) = &consent {
        accepted
            .detail
            .insert("consent_sha256".into(), c.sha256.clone());
        accepted
            .detail
            .insert("consent_version".into(), c.version.clone());
        accepted
            .detail
            .insert("consent_lang".into(), c.lang.code().into());
    }
    let transfer = NewTransfer {
        id,
        submitter: submitter.to_owned(),
        issuer: verified.issuer().to_owned(),
        jti: verified.jti().to_owned(),
        src: verified.source().to_owned(),
        dst: verified.destination().to_owned(),
        purpose: verified.purpose().to_owned(),
        scope: scope.clone(),
        subject_pseudonym: pseudonym.as_str().to_owned(),
        subject_sealed: sealed.bytes,
        basis: verified.basis(),
        guardian_pseudonym: guardian,
        consent,
        consented_at: verified.issued_at(),
        created_at: now,
        replay_until: verified.remember_until(),
    };
    (transfer, accepted)
}

/// The signature of `authz::verify_authorization` and `authz::verify_check`.
type Verify<T> = fn(
    &str,
    &authz::IssuerKeys,
    &authz::Policy,
    &siirto_core::identity::Directory,
    &siirto_core::consent::Catalog,
    &siirto_core::identity::Participant,
    siirto_core::clock::Timestamp,
) -> Result<T, authz::AuthzError>;

/// Reads `{"authorization": "<JWS>"}` and verifies it with `verify` for `caller` now: the
/// verified authorization and the time it was checked at. Any refusal is audited and counted
/// ([`refuse`]) before it is returned.
pub(super) async fn verified_submission<T>(
    gw: &Gateway,
    caller: &AuthenticatedParticipant,
    req: Request<Incoming>,
    verify: Verify<T>,
) -> Result<(T, siirto_core::clock::Timestamp), ApiError> {
    let submission = match read_submission(gw, req).await {
        Ok(s) => s,
        Err(e) => return Err(refuse(gw, caller, e).await),
    };
    let now = gw.now();
    match verify(
        &submission.authorization,
        &gw.issuer_keys(),
        &gw.policy,
        &gw.config.directory,
        gw.consent_texts,
        caller.participant(),
        now,
    ) {
        Ok(v) => Ok((v, now)),
        Err(e) => Err(refuse(gw, caller, e.into()).await),
    }
}

/// `[audit] on_broken = "refuse"`: while the stored audit log does not verify, nothing new
/// happens that could not be proven. The refusal of a `kind` (`transfer`, `check`, `consent`)
/// is audited as `{kind}.refused` and answered 503 `audit_unavailable`; `what` says what is
/// not done ("no transfer is accepted").
pub(super) async fn refuse_while_audit_broken(
    gw: &Gateway,
    caller: &AuthenticatedParticipant,
    kind: &str,
    what: &str,
) -> Result<(), ApiError> {
    let Some(fault) = gw.audit_refuses_work() else {
        return Ok(());
    };
    let mut event = gw.event(
        &caller.participant().id,
        &format!("{kind}.refused"),
        "audit_unavailable",
    );
    event.detail.insert("fault".into(), fault.clone());
    gw.store.append_audit(vec![event]).await?;
    Err(ApiError::new(
        ErrorCode::AuditUnavailable,
        format!("the gateway's audit log does not verify; {what} until an operator repairs it"),
    ))
}

/// The body of a submission: at most `limits.max_request_bytes` of `{"authorization": "<JWS>"}`.
pub(super) async fn read_submission(
    gw: &Gateway,
    req: Request<Incoming>,
) -> Result<Submission, ApiError> {
    let body = read_body(gw, req).await?;
    serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("the body must be {{\"authorization\": \"<JWS>\"}} ({e})"),
        )
    })
}

/// Every code a submission (of a transfer or a check) can be refused with (its body, its authorization, a replay): the
/// `code` values of `siirto_authorizations_rejected_total`, each exposed from the start. Debug
/// builds check each refusal against it.
pub const SUBMISSION_REFUSALS: [ErrorCode; 32] = [
    ErrorCode::InvalidRequest,
    ErrorCode::RequestTooLarge,
    ErrorCode::RequestTimeout,
    ErrorCode::MalformedToken,
    ErrorCode::TokenTooLarge,
    ErrorCode::UnsupportedAlg,
    ErrorCode::MissingKid,
    ErrorCode::WrongTyp,
    ErrorCode::ForbiddenHeader,
    ErrorCode::UnknownIssuer,
    ErrorCode::UnknownKid,
    ErrorCode::BadSignature,
    ErrorCode::MissingClaim,
    ErrorCode::InvalidClaim,
    ErrorCode::WrongAudience,
    ErrorCode::Expired,
    ErrorCode::NotYetValid,
    ErrorCode::LifetimeTooLong,
    ErrorCode::InvalidSubject,
    ErrorCode::UnknownParticipant,
    ErrorCode::InvalidSource,
    ErrorCode::InvalidDestination,
    ErrorCode::InvalidScope,
    ErrorCode::MissingIdentityScope,
    ErrorCode::ForbiddenSubmitter,
    ErrorCode::StatutoryNotAllowed,
    ErrorCode::GuardianRequired,
    ErrorCode::InvalidActor,
    ErrorCode::ConsentTextMismatch,
    ErrorCode::UnknownQuestion,
    ErrorCode::QuestionNotSupported,
    ErrorCode::Replay,
];

/// Audits a refused submission (`authorization.rejected`), counts it, and returns the answer.
pub async fn refuse(gw: &Gateway, caller: &AuthenticatedParticipant, e: ApiError) -> ApiError {
    debug_assert!(
        SUBMISSION_REFUSALS.contains(&e.code),
        "{:?} is not in SUBMISSION_REFUSALS",
        e.code
    );
    gw.metrics.authorization_rejected(e.code.as_str());
    let event = refusal_event(gw, &caller.participant().id, "authorization.rejected", &e);
    audited(gw, event, e).await
}

fn store_unavailable() -> ApiError {
    ApiError::new(
        ErrorCode::StoreUnavailable,
        "the gateway cannot reach its database; try again later",
    )
}

fn links(id: &str) -> Value {
    json!({
        "self": format!("/v1/transfers/{id}"),
        "cancel": format!("/v1/transfers/{id}/cancel"),
    })
}

/// May `caller` see this transfer? The submitter, the source, the destination and operators.
fn may_see(caller: &AuthenticatedParticipant, row: &TransferRow) -> bool {
    let p = caller.participant();
    p.id == row.submitter || p.id == row.src || p.id == row.dst || p.has_role(Role::Operator)
}

pub async fn show(
    gw: &Arc<Gateway>,
    caller: &AuthenticatedParticipant,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    let row = gw
        .store
        .transfer(id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if !may_see(caller, &row) {
        // Not telling whether the transfer exists.
        return Err(ApiError::not_found());
    }
    let steps = gw.store.steps(id).await?;
    let receipt = gw.receipt(&row);
    Ok(json_response(
        StatusCode::OK,
        &transfer_json(&row, &steps, receipt.as_deref()),
    ))
}

/// The JSON view of a transfer (also used by the operator page), with its opened `receipt`: its
/// basis, whether a guardian consented (never who), and the consent text proven (hash,
/// version, language; `null` when none was named).
pub fn transfer_json(row: &TransferRow, steps: &[StepRow], receipt: Option<&str>) -> Value {
    let mut v = json!({
        "id": row.id,
        "status": row.status.as_str(),
        "src": row.src,
        "dst": row.dst,
        "purpose": row.purpose,
        "scope": row.scope,
        "submitter": row.submitter,
        "basis": row.basis.as_str(),
        "guardian": row.guardian_pseudonym.is_some(),
        "consent": row.consent.as_ref().map(|c| json!({
            "sha256": c.sha256,
            "version": c.version,
            "lang": c.lang.code(),
        })),
        "created_at": row.created_at.rfc3339(),
        "updated_at": row.updated_at.rfc3339(),
        "attempts": row.attempts,
        "steps": steps.iter().map(|s| json!({
            "at": s.at.rfc3339(),
            "step": s.step,
            "outcome": s.outcome,
            "detail": s.detail,
        })).collect::<Vec<_>>(),
        "links": links(&row.id),
    });
    let map = v.as_object_mut();
    if let Some(map) = map {
        if let Some(reason) = row.reason {
            map.insert("reason".into(), json!(reason.as_str()));
        }
        if let Some(at) = row.consented_at {
            map.insert("consented_at".into(), json!(at.rfc3339()));
        }
        if let (false, Some(due)) = (row.status.is_terminal(), row.due_at) {
            map.insert("next_attempt_at".into(), json!(due.rfc3339()));
        }
        if let Some(h) = &row.source_sha256 {
            map.insert("source_sha256".into(), json!(h));
        }
        if let Some(h) = &row.document_sha256 {
            map.insert("content_sha256".into(), json!(h));
        }
        if let Some(report) = row
            .report
            .as_deref()
            .and_then(|r| serde_json::from_str::<Value>(r).ok())
        {
            map.insert("conversion".into(), report);
        }
        if let Some(receipt) = receipt {
            map.insert("receipt".into(), json!(receipt));
            if let Some(leaf) = row.receipt_leaf {
                map.insert("audit_leaf".into(), json!(leaf));
            }
        }
    }
    v
}

pub async fn cancel(
    gw: &Arc<Gateway>,
    caller: &AuthenticatedParticipant,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    cancel_transfer(gw, caller, id, "api").await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "id": id, "status": "cancelled" }),
    ))
}

/// Cancels a transfer for `caller` (the submitter or an operator), with every rule and audit
/// entry of `POST /v1/transfers/{id}/cancel`; `via` (`api`, `operator_page`) is in the audit
/// entry when it is not the API.
pub async fn cancel_transfer(
    gw: &Arc<Gateway>,
    caller: &AuthenticatedParticipant,
    id: &str,
    via: &'static str,
) -> Result<(), ApiError> {
    let actor = caller.participant().id.clone();
    let is_operator = caller.participant().has_role(Role::Operator);
    let now = gw.now();
    let gw2 = gw.clone();
    let decide = Box::new(
        move |row: &TransferRow| -> Result<TransferChange, ApiError> {
            if row.submitter != actor && !is_operator {
                // The source and destination see the transfer but may not stop it; anyone
                // else is not told that it exists (as with `GET`).
                return Err(if row.src == actor || row.dst == actor {
                    ApiError::new(
                        ErrorCode::ForbiddenCaller,
                        "only the submitter or an operator may cancel a transfer",
                    )
                } else {
                    ApiError::not_found()
                });
            }
            if row.status.is_terminal() {
                return Err(ApiError::new(
                    ErrorCode::AlreadyFinished,
                    format!("the transfer is already {}", row.status),
                ));
            }
            // A delivery in flight cannot be called back: refuse rather than report a cancellation
            // the destination may not see. An expired lease that was never released is an
            // attempt whose outcome nobody knows yet (its worker stopped): the next worker will
            // learn it (the same Idempotency-Key), so refuse then too.
            if row.status == Status::Delivering && row.lease_owner.is_some() {
                return Err(ApiError::new(
                    ErrorCode::DeliveryInProgress,
                    "a delivery attempt is in progress or its outcome is not known yet; try again in a moment",
                ));
            }
            let state = row.state();
            let t = transfer::next(
                &state,
                Event::Cancel,
                &gw2.retry_policy(),
                now,
                gw2.random.as_ref(),
            )
            .map_err(|e| ApiError::new(ErrorCode::InvalidTransition, e.to_string()))?;
            let mut change = TransferChange::new(&row.id, Guard::Any, now, t.state.status);
            change.attempts = t.state.attempts;
            change.payload = PayloadChange::Delete;
            change.forget_subject = true;
            let mut event = gw2.event(&actor, "transfer.cancelled", "ok");
            event.transfer_id = Some(row.id.clone());
            event.subject = siirto_core::audit::Pseudonym::parse(&row.subject_pseudonym).ok();
            event
                .detail
                .insert("previous_status".into(), row.status.to_string());
            if via != "api" {
                event.detail.insert("via".into(), via.into());
            }
            change.audit.push(event);
            change.steps.push(crate::store::NewStep {
                at: now,
                step: "cancel".into(),
                outcome: "ok".into(),
                detail: Some(format!("cancelled by {actor}")),
            });
            Ok(change)
        },
    );
    match gw.store.modify(id, decide).await? {
        Modified::Done(_) => {
            gw.metrics.transfer_ended(Outcome::Cancelled, None);
            Ok(())
        }
        Modified::Refused(e) => {
            audit_refused(gw, caller, "transfer.cancel_refused", id, &e).await?;
            Err(e)
        }
        Modified::NotFound => Err(ApiError::not_found()),
    }
}

pub async fn retry(
    gw: &Arc<Gateway>,
    caller: &AuthenticatedParticipant,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    retry_transfer(gw, caller, id, "api").await?;
    Ok(json_response(
        StatusCode::ACCEPTED,
        &json!({ "id": id, "status": "accepted", "links": links(id) }),
    ))
}

/// Retries a failed transfer for `caller` (an operator), with every rule and audit entry of
/// `POST /v1/transfers/{id}/retry`; `via` as for [`cancel_transfer`].
pub async fn retry_transfer(
    gw: &Arc<Gateway>,
    caller: &AuthenticatedParticipant,
    id: &str,
    via: &'static str,
) -> Result<(), ApiError> {
    if let Err(e) = require_role(caller, Role::Operator) {
        // Name the transfer in the audit only when it exists: the id is the caller's text.
        let known = gw.store.transfer(id).await?.is_some();
        let mut event = gw.event(
            &caller.participant().id,
            "transfer.retry_refused",
            e.code.as_str(),
        );
        if known {
            event.transfer_id = Some(id.to_owned());
        }
        if via != "api" {
            event.detail.insert("via".into(), via.into());
        }
        gw.store.append_audit(vec![event]).await?;
        return Err(e);
    }
    let decide = crate::retry::decision(
        gw.retry_policy(),
        gw.random.clone(),
        caller.participant().id.clone(),
        gw.now(),
        via,
    );
    match gw.store.modify(id, decide).await? {
        Modified::Done(_) => {
            gw.wake.notify_one();
            Ok(())
        }
        Modified::Refused(e) => {
            audit_refused(gw, caller, "transfer.retry_refused", id, &e).await?;
            Err(e)
        }
        Modified::NotFound => Err(ApiError::not_found()),
    }
}

/// `POST /v1/transfers/retry?reason=&src=&dst=&limit=`: an operator retries every failed
/// transfer with `reason` (and `src`, `dst` when given), oldest first, at most `limit`
/// (default 1,000, at most 10,000). Each retry is audited on its transfer; the answer lists
/// them, those skipped with their code, and whether more remain.
pub async fn bulk_retry(
    gw: &Arc<Gateway>,
    caller: &AuthenticatedParticipant,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let actor = caller.participant().id.clone();
    let refused = |e: ApiError| async {
        let mut event = gw.event(&actor, "transfer.retry_refused", e.code.as_str());
        event.detail.insert("via".into(), "bulk".into());
        gw.store.append_audit(vec![event]).await?;
        Err::<Response<Body>, ApiError>(e)
    };
    if let Err(e) = require_role(caller, Role::Operator) {
        return refused(e).await;
    }
    let filter = match bulk_filter(gw, query) {
        Ok(f) => f,
        Err(e) => return refused(e).await,
    };
    let outcome = crate::retry::bulk(
        &gw.store,
        &filter,
        gw.retry_policy(),
        gw.random.clone(),
        &actor,
        gw.now(),
        "bulk",
    )
    .await?;
    if !outcome.retried.is_empty() {
        gw.wake.notify_one();
    }
    tracing::info!(
        retried = outcome.retried.len(),
        skipped = outcome.skipped.len(),
        more = outcome.more,
        reason = filter.reason.as_str(),
        "operator retried failed transfers"
    );
    let skipped: Vec<_> = outcome
        .skipped
        .iter()
        .map(|(id, code)| json!({ "id": id, "error": code }))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "retried": outcome.retried, "skipped": skipped, "more": outcome.more }),
    ))
}

/// The filter of a bulk retry from its query; an unknown key, reason or participant and a limit
/// out of range are `invalid_query`.
fn bulk_filter(gw: &Gateway, query: Option<&str>) -> Result<crate::retry::RetryFilter, ApiError> {
    let invalid = |m: String| ApiError::new(ErrorCode::InvalidQuery, m);
    let (mut reason, mut src, mut dst, mut limit) = (None, None, None, None);
    for (key, value) in super::query_pairs(query) {
        let slot = match key.as_str() {
            "reason" => &mut reason,
            "src" => &mut src,
            "dst" => &mut dst,
            "limit" => &mut limit,
            other => return Err(invalid(format!("unknown parameter `{other}`"))),
        };
        if slot.replace(value).is_some() {
            return Err(invalid(format!("{key} is given twice")));
        }
    }
    crate::retry::RetryFilter::parse(
        &gw.config.directory,
        reason.as_deref(),
        src,
        dst,
        limit.as_deref(),
    )
    .map_err(invalid)
}

async fn audit_refused(
    gw: &Gateway,
    caller: &AuthenticatedParticipant,
    action: &str,
    id: &str,
    e: &ApiError,
) -> Result<(), ApiError> {
    let mut event = gw.event(&caller.participant().id, action, e.code.as_str());
    event.transfer_id = Some(id.to_owned());
    gw.store.append_audit(vec![event]).await?;
    Ok(())
}

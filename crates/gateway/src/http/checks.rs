//! `POST /v1/checks`: a check without transfer (CONTRACT.md "Checks without transfer").
//!
//! Owns: the check's whole life in one request: the `siirto-check+jwt` authorization
//! ([`siirto_core::authz::verify_check`], refusals audited as for transfers), the `jti` used up
//! per issuer before anything is fetched (the replay table of transfers), the fetch inline
//! within `[checks] timeout` through the transfers' source call ([`crate::outbound`]: the same
//! protocols, limits and TLS; one attempt, no retries), reading the record as a transfer does
//! ([`siirto_core::pipeline::read_source`]), the answer ([`siirto_core::check::answer`]), and
//! the stored check with its audit entries and the attestation signed with the audit key
//! ([`siirto_core::attestation`]) in one write.
//!
//! Must not: keep the document or the record. Both are dropped as soon as the answer is
//! known; the store and the audit get only the document's SHA-256. Nothing is delivered to
//! any destination.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use http::StatusCode;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::json;

use super::transfers::refuse;
use super::{ApiError, ErrorCode, json_response};
use crate::outbound::CallError;
use crate::server::Body;
use crate::state::Gateway;
use crate::store::{NewCheck, StoredConsent};
use siirto_core::attestation::{AttestationClaims, seal_attestation, sign_attestation};
use siirto_core::audit::AuditEvent;
use siirto_core::authz::{self, VerifiedCheck};
use siirto_core::check;
use siirto_core::clock::{hex, uuid_v4};
use siirto_core::identity::AuthenticatedParticipant;
use siirto_core::pipeline::{self, PipelineError};

/// The audit actor of what the gateway does itself (the fetch).
const GATEWAY_ACTOR: &str = "gateway";

pub async fn submit(
    gw: &Arc<Gateway>,
    caller: &AuthenticatedParticipant,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let started = Instant::now();
    let (verified, now) =
        super::transfers::verified_submission(gw, caller, req, authz::verify_check).await?;
    super::transfers::refuse_while_audit_broken(gw, caller, "check", "no check is answered")
        .await?;
    let id = uuid_v4(gw.random.as_ref());
    let pseudonym = gw.pseudonyms.pseudonym(verified.subject());
    let guardian = verified
        .guardian()
        .map(|g| gw.pseudonyms.guardian_pseudonym(g).as_str().to_owned());
    let consent = verified.consent().map(|c| StoredConsent {
        sha256: hex(&c.sha256),
        version: c.version.clone(),
        lang: c.lang,
    });
    let mut accepted = gw.event(&caller.participant().id, "check.accepted", "ok");
    accepted.subject = Some(pseudonym.clone());
    describe(&mut accepted, &id, &verified);
    accepted
        .detail
        .insert("issuer".into(), verified.issuer().into());
    accepted
        .detail
        .insert("key_id".into(), verified.key_id().into());
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
    // The `jti` is used up (per issuer, with transfers') before anything is fetched.
    let fresh = gw
        .store
        .remember_jti(
            verified.issuer(),
            verified.jti(),
            verified.remember_until(),
            vec![accepted],
        )
        .await?;
    if !fresh {
        return Err(refuse(
            gw,
            caller,
            ApiError::new(
                ErrorCode::Replay,
                "this authorization (jti) has already been used",
            ),
        )
        .await);
    }
    tracing::Span::current().record("transfer_id", id.as_str());
    let question = verified.question();

    let outcome = fetch_and_answer(gw, &id, &verified).await;
    let finished = gw.now();
    let mut fetched = gw.event(GATEWAY_ACTOR, "source.fetch", outcome.fetch_code());
    fetched.subject = Some(pseudonym.clone());
    describe(&mut fetched, &id, &verified);
    fetched.document_sha256 = outcome.document_sha256();
    let mut row = NewCheck {
        id: id.clone(),
        submitter: caller.participant().id.clone(),
        issuer: verified.issuer().to_owned(),
        jti: verified.jti().to_owned(),
        src: verified.source().to_owned(),
        dst: verified.destination().to_owned(),
        question: question.as_str().to_owned(),
        purpose: verified.purpose().to_owned(),
        subject_pseudonym: pseudonym.as_str().to_owned(),
        basis: verified.basis(),
        guardian_pseudonym: guardian,
        consent,
        consented_at: verified.issued_at(),
        created_at: now,
        finished_at: finished,
        outcome: String::new(),
        answer: None,
        document_sha256: outcome.document_sha256().map(|d| hex(&d)),
    };
    match outcome {
        Outcome::Failed { code, message, .. } => {
            row.outcome = code.as_str().to_owned();
            let mut ended = gw.event(GATEWAY_ACTOR, "check.failed", code.as_str());
            ended.subject = Some(pseudonym);
            describe(&mut ended, &id, &verified);
            ended.detail.insert("error".into(), message.clone());
            gw.store
                .insert_check(row, vec![fetched, ended], None)
                .await?;
            gw.metrics
                .check_ended(question.as_str(), code.as_str(), started.elapsed());
            tracing::info!(check = %id, code = code.as_str(), "check ended without an answer");
            Err(ApiError::new(code, message))
        }
        Outcome::Answered {
            answer,
            document_sha256,
        } => {
            row.outcome = "answered".into();
            row.answer = Some(answer);
            let mut answered = gw.event(GATEWAY_ACTOR, "check.answered", "ok");
            answered.subject = Some(pseudonym);
            describe(&mut answered, &id, &verified);
            answered.document_sha256 = Some(document_sha256);
            answered.detail.insert("answer".into(), answer.to_string());
            let claims = AttestationClaims {
                issuer: gw.config.gateway.id.clone(),
                audience: verified.destination().to_owned(),
                subject: verified.subject().clone(),
                issued_at: finished,
                check_id: id.clone(),
                question,
                answer,
                source: verified.source().to_owned(),
                document_sha256,
                authorization_jti: verified.jti().to_owned(),
                basis: verified.basis(),
                audit_leaf_index: 0,
            };
            let signed = Arc::new(OnceLock::new());
            let (key, vault, random) = (gw.audit_key.clone(), gw.vault.clone(), gw.random.clone());
            let out = signed.clone();
            let sign = Box::new(move |leaf: u64| {
                let mut claims = claims;
                claims.audit_leaf_index = leaf;
                let token = sign_attestation(&claims, &key);
                let sealed = seal_attestation(&vault, &claims.check_id, &token, random.as_ref());
                let _ = out.set(token);
                sealed
            });
            gw.store
                .insert_check(row, vec![fetched, answered], Some(sign))
                .await?;
            let attestation = signed.get().cloned().unwrap_or_default();
            gw.metrics.check_ended(
                question.as_str(),
                if answer { "true" } else { "false" },
                started.elapsed(),
            );
            tracing::info!(check = %id, question = question.as_str(), "check answered");
            Ok(json_response(
                StatusCode::OK,
                &json!({
                    "id": id,
                    "question": question.as_str(),
                    "answer": answer,
                    "attestation": attestation,
                }),
            ))
        }
    }
}

/// What every audit entry of a check says about it (no personal data).
fn describe(event: &mut AuditEvent, id: &str, verified: &VerifiedCheck) {
    for (k, v) in [
        ("check_id", id),
        ("src", verified.source()),
        ("dst", verified.destination()),
        ("question", verified.question().as_str()),
        ("purpose", verified.purpose()),
        ("basis", verified.basis().as_str()),
    ] {
        event.detail.insert(k.into(), v.into());
    }
}

/// How the fetch and the decision ended.
enum Outcome {
    Answered {
        answer: bool,
        document_sha256: [u8; 32],
    },
    Failed {
        code: ErrorCode,
        message: String,
        /// The document's hash, when one was fetched (and then found unusable).
        document_sha256: Option<[u8; 32]>,
    },
}

impl Outcome {
    fn document_sha256(&self) -> Option<[u8; 32]> {
        match self {
            Outcome::Answered {
                document_sha256, ..
            } => Some(*document_sha256),
            Outcome::Failed {
                document_sha256, ..
            } => *document_sha256,
        }
    }

    /// The outcome of the `source.fetch` audit entry: `ok` once a document was fetched.
    fn fetch_code(&self) -> &'static str {
        match self {
            Outcome::Failed {
                code,
                document_sha256: None,
                ..
            } => code.as_str(),
            _ => "ok",
        }
    }
}

/// Fetches the record within `[checks] timeout` (one attempt), reads it as a transfer would,
/// answers, and drops the document and the record.
async fn fetch_and_answer(gw: &Gateway, id: &str, verified: &VerifiedCheck) -> Outcome {
    let failed = |code: ErrorCode, message: String| Outcome::Failed {
        code,
        message,
        document_sha256: None,
    };
    let Some(from) = gw
        .config
        .directory
        .get(verified.source())
        .and_then(|p| p.endpoint.as_ref())
        .map(|e| e.format)
    else {
        return failed(
            ErrorCode::SourceUnavailable,
            "the source has no endpoint in the directory".into(),
        );
    };
    let timeout = gw.config.checks.timeout;
    let call = gw
        .outbound
        .fetch_record(verified.source(), verified.subject(), id);
    let body = match tokio::time::timeout(timeout, call).await {
        Err(_) => {
            return failed(
                ErrorCode::SourceTimeout,
                format!(
                    "the source did not answer within checks.timeout ({} ms)",
                    timeout.as_millis()
                ),
            );
        }
        Ok(Err(CallError::InvalidAnswer {
            summary, answer, ..
        })) => {
            return Outcome::Failed {
                code: ErrorCode::InvalidSourceDocument,
                message: format!("the source's answer cannot be read: {summary}"),
                document_sha256: Some(siirto_core::vault::sha256(&answer)),
            };
        }
        Ok(Err(e)) => {
            let code = match e {
                CallError::SourceNotFound { .. } => ErrorCode::SourceNotFound,
                CallError::SourceRefused { .. } => ErrorCode::SourceRefused,
                CallError::ResponseTooLarge { .. } => ErrorCode::InvalidSourceDocument,
                CallError::Timeout { .. } => ErrorCode::SourceTimeout,
                _ => ErrorCode::SourceUnavailable,
            };
            tracing::info!(error = %e, "check: the source call failed");
            return failed(code, format!("the source call failed: {}", e.code()));
        }
        Ok(Ok(body)) => body,
    };
    let body_len = body.len();
    let document_sha256 = siirto_core::vault::sha256(&body);
    let limits = pipeline::xml_limits(Some(&gw.config.limits));
    let json_limits = pipeline::json_limits(Some(&gw.config.limits));
    let subject = verified.subject().clone();
    // Read as a transfer's record is, a large one on the blocking pool; the document is
    // dropped there, only its hash stays.
    let run = move |schemas: &pipeline::Schemas| {
        let read = pipeline::read_source(&body, schemas, from, &subject, &limits, &json_limits);
        drop(body);
        read
    };
    let read = if body_len <= crate::delivery::BLOCKING_THRESHOLD {
        run(&gw.schemas)
    } else {
        gw.on_blocking_pool(run).await.unwrap_or_else(|e| {
            Err(PipelineError::ConversionFailed(format!(
                "the reading task failed: {e}"
            )))
        })
    };
    let (record, _report) = match read {
        Ok(r) => r,
        Err(e) => {
            let code = match e {
                PipelineError::SubjectMismatch => ErrorCode::SubjectMismatch,
                _ => ErrorCode::InvalidSourceDocument,
            };
            return Outcome::Failed {
                code,
                message: e.to_string(),
                document_sha256: Some(document_sha256),
            };
        }
    };
    let today = siirto_core::lang::helsinki_date(gw.now());
    let answer = today.is_some_and(|today| check::answer(verified.question(), &record, today));
    drop(record);
    Outcome::Answered {
        answer,
        document_sha256,
    }
}

//! The fetch of a transfer made on consent given at KOSKI (`protocol = "koski-omadata"`):
//! the code exchanged once, the access token kept sealed until the one fetch.
//!
//! Owns: the order of the worker's steps and what is durable between them — the access token
//! (already exchanged: fetch with it), else the code, taken out of the store *before* the
//! exchange so that no crash and no second worker can ever exchange it twice; after the
//! exchange the token is stored sealed (a crash before the fetch loses nothing: the next
//! attempt fetches with it), and the change that records the fetch forgets it
//! (`store::apply`). Each exchange is audited (`omadata.exchange`), never with the code, the
//! token or the verifier.
//!
//! It must not build requests or read answers (`outbound::omadata` does) nor decide retries
//! (the worker's policy, by [`CallError::retryable`]).

use siirto_core::omadata::Secret;
use siirto_core::student_id::StudentId;

use crate::delivery::{GATEWAY_ACTOR, event_for};
use crate::http::consent_requests::sealed_purpose;
use crate::outbound::CallError;
use crate::state::Gateway;
use crate::store::TransferRow;
use bytes::Bytes;

fn refused(source: &str, detail: &str) -> CallError {
    CallError::SourceRefused {
        participant: source.to_owned(),
        status: 0,
        detail: detail.to_owned(),
    }
}

/// Why a stored value could not be read or written: the store, not the source (retryable).
fn internal(source: &str, what: &str) -> CallError {
    CallError::Connection {
        participant: source.to_owned(),
        reason: format!("the gateway's store: {what}"),
    }
}

/// The record of `row`'s student from its OmaData source, on the consent given at KOSKI.
pub async fn fetch(
    gw: &Gateway,
    row: &TransferRow,
    subject: &StudentId,
) -> Result<Bytes, CallError> {
    let source = row.src.as_str();
    let request = match gw.store.consent_request_of(&row.id).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return Err(refused(
                source,
                "no consent given at KOSKI for this transfer",
            ));
        }
        Err(e) => return Err(internal(source, &e.to_string())),
    };
    let open = |part: &str, sealed: &[u8]| -> Option<Secret> {
        let bytes = gw
            .vault
            .open(&sealed_purpose(part, &request.id), sealed)
            .ok()?;
        String::from_utf8(bytes).ok().map(Secret::new)
    };
    let token = match &request.token_sealed {
        Some(sealed) => open("token", sealed)
            .ok_or_else(|| refused(source, "the stored access token cannot be opened"))?,
        None => exchange(gw, row, &request, &open).await?,
    };
    gw.outbound.omadata_fetch(source, subject, &token).await
}

/// Exchanges the request's code for an access token and keeps the token (sealed).
async fn exchange(
    gw: &Gateway,
    row: &TransferRow,
    request: &crate::store::ConsentRequestRow,
    open: &(dyn Fn(&str, &[u8]) -> Option<Secret> + Sync),
) -> Result<Secret, CallError> {
    let source = row.src.as_str();
    let verifier = request
        .verifier_sealed
        .as_deref()
        .and_then(|v| open("verifier", v))
        .ok_or_else(|| refused(source, "the PKCE verifier is no longer stored"))?;
    // The token endpoint, from the metadata, before the code is taken: a metadata outage
    // leaves the code for the next attempt.
    let metadata = gw.outbound.omadata_metadata(source).await?;
    let mut taking = event_for(gw, row, "omadata.exchange", "started");
    taking.actor = GATEWAY_ACTOR.into();
    taking.detail.insert("source".into(), source.to_owned());
    taking
        .detail
        .insert("consent_request".into(), request.id.clone());
    let code = match gw.store.take_consent_code(&row.id, vec![taking]).await {
        Ok(Some(sealed)) => open("code", &sealed)
            .ok_or_else(|| refused(source, "the stored authorization code cannot be opened"))?,
        Ok(None) => {
            // Taken by an attempt that ended before it stored a token (a crash during the
            // exchange): KOSKI's codes are single-use, so only a new consent can help.
            return Err(refused(
                source,
                "the authorization code was already taken by an earlier attempt whose exchange did not finish; the person must consent again",
            ));
        }
        Err(e) => return Err(internal(source, &e.to_string())),
    };
    let result = gw
        .outbound
        .omadata_exchange(
            source,
            &metadata.token_endpoint,
            &code,
            &request.redirect_uri,
            &verifier,
        )
        .await;
    let mut exchanged = event_for(
        gw,
        row,
        "omadata.exchange",
        match &result {
            Ok(_) => "ok",
            Err(e) => e.code(),
        },
    );
    exchanged.actor = GATEWAY_ACTOR.into();
    exchanged.detail.insert("source".into(), source.to_owned());
    exchanged
        .detail
        .insert("consent_request".into(), request.id.clone());
    let token = match result {
        Ok(token) => token,
        Err(e) => {
            if let Some(detail) = e.answer_detail() {
                exchanged.detail.insert("answer".into(), detail);
            }
            if let Err(store) = gw.store.append_audit(vec![exchanged]).await {
                tracing::warn!(error = %store, "the exchange's audit entry could not be written");
            }
            // The code is spent either way: a failed exchange is final.
            return Err(match e {
                CallError::SourceRefused { .. } => e,
                other => refused(
                    source,
                    &format!(
                        "the code exchange failed ({}); the person must consent again",
                        other.code()
                    ),
                ),
            });
        }
    };
    let sealed = gw.vault.seal(
        &sealed_purpose("token", &request.id),
        token.expose().as_bytes(),
        gw.random.as_ref(),
    );
    if let Err(e) = gw
        .store
        .put_consent_token(&row.id, sealed.bytes, gw.now(), vec![exchanged])
        .await
    {
        return Err(internal(source, &e.to_string()));
    }
    Ok(token)
}

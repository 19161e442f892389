//! `GET /v1/students/transfers`: a student's own view of where their data went, for an
//! e-service presenting a transparency token (`typ` = `siirto-transparency+jwt`).
//!
//! Owns: the transparency listing. A transparency token can only read history; it is verified
//! by `authz::verify_transparency`, and its `jti` cannot be used twice.

use std::sync::Arc;

use http::StatusCode;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Value, json};

use super::{ApiError, ErrorCode, audited, json_response, refusal_event, require_role};
use crate::server::Body;
use crate::state::Gateway;
use crate::store::TransferRow;
use siirto_core::authz;
use siirto_core::identity::AuthenticatedParticipant;
use siirto_core::identity::Role;

/// Most transfers listed for one student.
const HISTORY_LIMIT: u32 = 1000;

pub async fn history(
    gw: &Arc<Gateway>,
    caller: &AuthenticatedParticipant,
    req: &Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    require_role(caller, Role::Eservice)?;
    let token = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    let Some(token) = token else {
        let e = ApiError::new(
            ErrorCode::MissingToken,
            "send the transparency token as `Authorization: Bearer <JWS>`",
        );
        return Err(refuse(gw, caller, e).await);
    };
    let now = gw.now();
    let verified = match authz::verify_transparency(token, &gw.issuer_keys(), &gw.policy, now) {
        Ok(v) => v,
        Err(e) => return Err(refuse(gw, caller, e.into()).await),
    };
    let pseudonym = gw.pseudonyms.pseudonym(verified.subject());
    let mut event = gw.event(&caller.participant().id, "student.history_read", "ok");
    event.subject = Some(pseudonym.clone());
    event
        .detail
        .insert("issuer".into(), verified.issuer().into());
    if !gw
        .store
        .remember_jti(
            verified.issuer(),
            verified.jti(),
            verified.remember_until(),
            vec![event],
        )
        .await?
    {
        let mut event = gw.event(&caller.participant().id, "transparency.rejected", "replay");
        event
            .detail
            .insert("issuer".into(), verified.issuer().into());
        gw.store.append_audit(vec![event]).await?;
        return Err(ApiError::new(
            ErrorCode::Replay,
            "this transparency token (jti) has already been used",
        ));
    }
    let rows = gw
        .store
        .transfers_for_subject(pseudonym.as_str(), HISTORY_LIMIT)
        .await?;
    let transfers: Vec<Value> = rows
        .iter()
        .map(|row| history_entry(row, gw.receipt(row).as_deref()))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "transfers": transfers }),
    ))
}

/// The token of an `Authorization` value `Bearer <token>`: the scheme is matched ASCII
/// case-insensitively (RFC 7235 §2.1), one or more spaces follow it.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Audits a refused history read (`transparency.rejected`) and returns the answer.
async fn refuse(gw: &Gateway, caller: &AuthenticatedParticipant, e: ApiError) -> ApiError {
    let event = refusal_event(gw, &caller.participant().id, "transparency.rejected", &e);
    audited(gw, event, e).await
}

/// One transfer as the student sees it: when, from, to, why, what, how it went.
///
/// `categories_delivered` are the categories that had at least one field in the document the
/// destination received (the conversion report's `categories`): data the student authorized
/// but the record did not hold, or the target format could not carry, is not listed. Empty
/// until the transfer is delivered.
fn history_entry(row: &TransferRow, receipt: Option<&str>) -> Value {
    let delivered = row.status == siirto_core::transfer::Status::Delivered;
    let report = row
        .report
        .as_deref()
        .and_then(|r| serde_json::from_str::<Value>(r).ok());
    let categories_delivered: Vec<Value> = match (&report, delivered) {
        (Some(r), true) => r
            .get("categories")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let mut v = json!({
        "id": row.id,
        "when": row.created_at.rfc3339(),
        "from": row.src,
        "to": row.dst,
        "purpose": row.purpose,
        "categories_authorized": row.scope.split(' ').collect::<Vec<_>>(),
        "categories_delivered": categories_delivered,
        "status": row.status.as_str(),
        "updated_at": row.updated_at.rfc3339(),
    });
    if let Some(map) = v.as_object_mut() {
        if let Some(reason) = row.reason {
            map.insert("reason".into(), json!(reason.as_str()));
        }
        if let Some(report) = report {
            map.insert("conversion".into(), report);
        }
        if let Some(receipt) = receipt {
            map.insert("receipt".into(), json!(receipt));
        }
        if let Some(h) = &row.document_sha256 {
            map.insert("content_sha256".into(), json!(h));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in [
            "Bearer a.b.c",
            "bearer a.b.c",
            "BEARER a.b.c",
            "bEaReR   a.b.c ",
        ] {
            assert_eq!(bearer_token(value), Some("a.b.c"), "{value}");
        }
        for value in [
            "Basic a.b.c",
            "Bearer",
            "Bearer ",
            "Bearera.b.c",
            "a.b.c",
            "",
        ] {
            assert_eq!(bearer_token(value), None, "{value}");
        }
    }
}

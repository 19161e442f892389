//! `GET /v1/audit` (operators): audit entries with filters and cursor paging.
//!
//! Owns: the query grammar. Entries are answered in their JSON form
//! ([`siirto_core::audit::entry_json`]). Every read is itself audited.

use std::sync::Arc;

use http::StatusCode;
use hyper::Response;
use serde_json::json;

use super::{ApiError, ErrorCode, json_response, query_pairs, require_role};
use crate::server::Body;
use crate::state::Gateway;
use crate::store::AuditFilter;
use siirto_core::audit::entry_json;
use siirto_core::clock::Timestamp;
use siirto_core::identity::AuthenticatedParticipant;
use siirto_core::identity::Role;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// Parses the query of `GET /v1/audit`.
pub fn parse_filter(query: Option<&str>) -> Result<AuditFilter, ApiError> {
    parse_filter_pairs(query_pairs(query))
}

/// Parses decoded query pairs into a filter (the operator page drops empty form fields first).
pub fn parse_filter_pairs(pairs: Vec<(String, String)>) -> Result<AuditFilter, ApiError> {
    let mut f = AuditFilter {
        limit: DEFAULT_LIMIT,
        ..AuditFilter::default()
    };
    let time = |k: &str, v: &str| {
        Timestamp::parse_rfc3339(v).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidQuery,
                format!("`{k}` must be an RFC 3339 time, e.g. 2026-11-23T12:00:00Z"),
            )
        })
    };
    for (k, v) in pairs {
        match k.as_str() {
            "transfer" => f.transfer = Some(v),
            "since" => f.since = Some(time(&k, &v)?),
            "until" => f.until = Some(time(&k, &v)?),
            "actor" => f.actor = Some(v),
            "action" => f.action = Some(v),
            "limit" => {
                f.limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::new(
                            ErrorCode::InvalidQuery,
                            format!("`limit` must be 1..={MAX_LIMIT}"),
                        )
                    })?;
            }
            "cursor" => {
                f.after = Some(v.parse::<u64>().map_err(|_| {
                    ApiError::new(
                        ErrorCode::InvalidQuery,
                        "`cursor` is the `next_cursor` of a previous page",
                    )
                })?);
            }
            other => {
                return Err(ApiError::new(
                    ErrorCode::InvalidQuery,
                    format!("unknown parameter `{other}`"),
                ));
            }
        }
    }
    Ok(f)
}

pub async fn list(
    gw: &Arc<Gateway>,
    caller: &AuthenticatedParticipant,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    require_role(caller, Role::Operator)?;
    let filter = parse_filter(query)?;
    let page = gw.store.audit_query(&filter).await?;
    let mut event = gw.event(&caller.participant().id, "audit.read", "ok");
    event
        .detail
        .insert("entries".into(), page.entries.len().to_string());
    if let Some(t) = &filter.transfer {
        event.transfer_id = Some(t.clone());
    }
    gw.store.append_audit(vec![event]).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "entries": page.entries.iter().map(entry_json).collect::<Vec<_>>(),
            "next_cursor": page.next_cursor.map(|c| c.to_string()),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_reject() {
        let f = parse_filter(Some(
            "transfer=t1&since=2026-01-01T00:00:00Z&limit=10&cursor=5",
        ))
        .unwrap();
        assert_eq!(f.transfer.as_deref(), Some("t1"));
        assert_eq!(f.limit, 10);
        assert_eq!(f.after, Some(5));
        assert!(f.since.is_some());
        assert_eq!(
            parse_filter(Some("limit=0")).unwrap_err().code,
            ErrorCode::InvalidQuery
        );
        assert_eq!(
            parse_filter(Some("since=yesterday")).unwrap_err().code,
            ErrorCode::InvalidQuery
        );
        assert_eq!(
            parse_filter(Some("colour=red")).unwrap_err().code,
            ErrorCode::InvalidQuery
        );
        assert_eq!(parse_filter(None).unwrap().limit, DEFAULT_LIMIT);
    }
}

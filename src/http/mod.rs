//! The gateway's HTTP API (CONTRACT.md "HTTP API") and the admin endpoints.
//!
//! Owns: routing, request body limits, query parsing, JSON answers, and per-connection caller
//! identity (one certificate check per TLS connection). Handlers live in one submodule per
//! resource; errors become answers in [`error`] only.

pub mod admin;
pub mod audit;
pub mod error;
pub mod students;
pub mod transfers;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};

use crate::config::Role;
use crate::gateway::Gateway;
use crate::identity::{self, AuthenticatedParticipant, IdentityError};
use crate::server::{Body, ConnectionInfo, ResponseFuture};
pub use error::ApiError;

/// Who is calling on a connection, decided once when it is accepted.
pub type Caller = Result<AuthenticatedParticipant, IdentityError>;

/// Makes the request handler of one API connection.
pub fn api_connection(
    gw: Arc<Gateway>,
    conn: ConnectionInfo,
) -> impl Fn(Request<Incoming>) -> ResponseFuture + Send + Sync + 'static {
    let caller = identity::identify(&gw.config.directory, &conn.certificates);
    if let Err(e) = &caller {
        audit_unknown_participant(&gw, &conn, e);
    }
    let caller = Arc::new(caller);
    move |req| {
        let gw = gw.clone();
        let caller = caller.clone();
        Box::pin(async move {
            let started = Instant::now();
            let route = route_name(req.method(), req.uri().path());
            let response = match api(&gw, &caller, req).await {
                Ok(r) => r,
                Err(e) => e.into_response(),
            };
            let status = response.status().as_u16().to_string();
            gw.metrics.inc(
                "siirto_http_requests_total",
                "API requests by route and status.",
                &[("route", route), ("status", &status)],
            );
            gw.metrics.observe(
                "siirto_http_request_seconds",
                "API request latency by route.",
                &[("route", route)],
                started.elapsed(),
            );
            response
        })
    }
}

fn audit_unknown_participant(gw: &Arc<Gateway>, conn: &ConnectionInfo, e: &IdentityError) {
    let mut event = gw.event("unknown", "access.denied", e.code());
    if let Some(cert) = conn.certificates.first()
        && let Ok(summary) = identity::describe(cert)
    {
        event
            .detail
            .insert("certificate_subject".into(), summary.subject.clone());
        event
            .detail
            .insert("certificate_serial".into(), summary.serial_hex.clone());
        event.detail.insert(
            "certificate_spki_sha256".into(),
            summary.spki_sha256_hex.clone(),
        );
    }
    event
        .detail
        .insert("remote".into(), conn.remote.ip().to_string());
    let gw = gw.clone();
    tokio::spawn(async move {
        if let Err(err) = gw.store.append_audit(vec![event]).await {
            tracing::warn!(error = %err, "could not audit a refused certificate");
        }
    });
}

/// A low-cardinality name for metrics.
fn route_name(method: &Method, path: &str) -> &'static str {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (&Method::POST, ["v1", "transfers"]) => "submit_transfer",
        (&Method::GET, ["v1", "transfers", _]) => "get_transfer",
        (&Method::POST, ["v1", "transfers", _, "cancel"]) => "cancel_transfer",
        (&Method::POST, ["v1", "transfers", _, "retry"]) => "retry_transfer",
        (&Method::GET, ["v1", "students", "transfers"]) => "student_transfers",
        (&Method::GET, ["v1", "audit", ..]) => "audit",
        _ => "other",
    }
}

async fn api(
    gw: &Arc<Gateway>,
    caller: &Caller,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let caller = match caller {
        Ok(c) => c,
        Err(e) => {
            return Err(ApiError::forbidden(
                e.code(),
                "this client certificate belongs to no known participant",
            ));
        }
    };
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (req.method().clone(), segments.as_slice()) {
        (Method::POST, ["v1", "transfers"]) => transfers::submit(gw, caller, req).await,
        (Method::GET, ["v1", "transfers", id]) => transfers::show(gw, caller, id).await,
        (Method::POST, ["v1", "transfers", id, "cancel"]) => {
            transfers::cancel(gw, caller, id).await
        }
        (Method::POST, ["v1", "transfers", id, "retry"]) => transfers::retry(gw, caller, id).await,
        (Method::GET, ["v1", "students", "transfers"]) => students::history(gw, caller, &req).await,
        (Method::GET, ["v1", "audit"]) => audit::list(gw, caller, req.uri().query()).await,
        (
            _,
            ["v1", "transfers"]
            | ["v1", "transfers", _]
            | ["v1", "transfers", _, "cancel" | "retry"],
        )
        | (_, ["v1", "students", "transfers"] | ["v1", "audit"]) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{} is not allowed on {path}", req.method()),
        )),
        _ => Err(ApiError::not_found()),
    }
}

/// Requires `role` of the caller.
pub fn require_role(caller: &AuthenticatedParticipant, role: Role) -> Result<(), ApiError> {
    if caller.participant().has_role(role) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "forbidden_role",
            format!("this operation needs the `{}` role", role.as_str()),
        ))
    }
}

/// Reads a request body of at most `limit` bytes within the request timeout.
pub async fn read_body(gw: &Gateway, req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let limit = gw.config.limits.max_request_bytes;
    if let Some(len) = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && len > limit
    {
        return Err(too_large(limit));
    }
    let collect = Limited::new(req.into_body(), limit).collect();
    match tokio::time::timeout(gw.config.limits.request_timeout, collect).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body took too long",
        )),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large(limit))
        }
        Ok(Err(_)) => Err(ApiError::bad_request(
            "invalid_request",
            "the request body could not be read",
        )),
        Ok(Ok(b)) => Ok(b.to_bytes()),
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "request_too_large",
        format!("request bodies are limited to {limit} bytes"),
    )
}

pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(value.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}

pub fn text_response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    r
}

/// Parses `a=1&b=x%20y` into pairs, percent-decoded; `+` is a space.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                match s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Makes the request handler of one admin connection (plain HTTP: health, readiness, metrics).
pub fn admin_connection(
    gw: Arc<Gateway>,
) -> impl Fn(Request<Incoming>) -> ResponseFuture + Send + Sync + 'static {
    move |req| {
        let gw = gw.clone();
        Box::pin(async move { admin::answer(&gw, &req).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing() {
        let q = query_pairs(Some(
            "transfer=abc&since=2026-01-01T00%3A00%3A00Z&actor=a+b&limit=5&x",
        ));
        assert_eq!(q[0], ("transfer".into(), "abc".into()));
        assert_eq!(q[1], ("since".into(), "2026-01-01T00:00:00Z".into()));
        assert_eq!(q[2], ("actor".into(), "a b".into()));
        assert_eq!(q[4], ("x".into(), "".into()));
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn route_names_are_bounded() {
        assert_eq!(
            route_name(&Method::GET, "/v1/transfers/123"),
            "get_transfer"
        );
        assert_eq!(route_name(&Method::GET, "/anything/else"), "other");
    }
}

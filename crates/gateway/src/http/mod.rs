//! The gateway's HTTP API (CONTRACT.md "HTTP API") and the admin endpoints.
//!
//! Owns: routing, request head and body limits (the answers to an over-long head or body are
//! ours, not hyper's: see [`check_head`] and [`read_body`]), query parsing, JSON answers, the
//! audit entries of refused requests, and per-connection caller identity (one certificate check
//! per TLS connection). Handlers live in one submodule per resource; errors become answers in
//! [`error`] only.

pub mod admin;
pub mod audit;
pub mod error;
pub mod operator;
pub mod proofs;
pub mod students;
pub mod transfers;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};

use crate::server::{Body, ConnectionInfo, ResponseFuture};
use crate::state::Gateway;
pub use error::{ApiError, ErrorCode};
use siirto_core::audit::AuditEvent;
use siirto_core::identity::Role;
use siirto_core::identity::{self, AuthenticatedParticipant, IdentityError};

/// Most header fields a request may carry (hyper parses more, so that the answer is ours).
pub const MAX_HEADER_FIELDS: usize = 100;

/// How much of a body beyond `limits.max_request_bytes` is still read (and dropped) before the
/// `413` is answered, so that a client still sending it reads the answer rather than a reset
/// connection. A body declared larger than this is answered at once.
pub const DRAIN_BYTES: usize = 4 * 1024 * 1024;

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
            let response = match check_head(&req, gw.config.limits.max_header_bytes) {
                Err(e) => refuse_head(&gw, &caller, route, e).await.into_response(),
                Ok(()) => match api(&gw, &caller, req).await {
                    Ok(r) => r,
                    Err(e) => e.into_response(),
                },
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

/// Refuses a request head (request line and header fields) longer than `max_bytes` or with
/// more than [`MAX_HEADER_FIELDS`] fields: `431 headers_too_large`.
pub fn check_head<B>(req: &Request<B>, max_bytes: usize) -> Result<(), ApiError> {
    let (bytes, fields) = head_size(req);
    if bytes > max_bytes {
        return Err(ApiError::new(
            ErrorCode::HeadersTooLarge,
            format!(
                "the request line and header fields are {bytes} bytes; at most {max_bytes} are accepted"
            ),
        ));
    }
    if fields > MAX_HEADER_FIELDS {
        return Err(ApiError::new(
            ErrorCode::HeadersTooLarge,
            format!(
                "the request has {fields} header fields; at most {MAX_HEADER_FIELDS} are accepted"
            ),
        ));
    }
    Ok(())
}

/// The size of a request head as sent (`METHOD target HTTP/1.1`, each `name: value`, each line
/// with its CRLF, the empty line) and its number of header fields.
fn head_size<B>(req: &Request<B>) -> (usize, usize) {
    let target = req.uri().authority().map_or(0, |a| a.as_str().len())
        + req.uri().path_and_query().map_or(1, |p| p.as_str().len());
    let line = req.method().as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    let fields: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    (line + fields + 2, req.headers().len())
}

/// Audits a request refused for its head (`request.refused`, with the route), by the
/// participant when the certificate named one.
async fn refuse_head(gw: &Gateway, caller: &Caller, route: &str, e: ApiError) -> ApiError {
    let actor = caller
        .as_ref()
        .map_or("unknown", |c| c.participant().id.as_str());
    let mut event = refusal_event(gw, actor, "request.refused", &e);
    event.detail.insert("route".into(), route.to_owned());
    audited(gw, event, e).await
}

/// The audit entry of a refusal: `action` by `actor`, the code as the outcome, the message in
/// the detail.
pub fn refusal_event(gw: &Gateway, actor: &str, action: &str, e: &ApiError) -> AuditEvent {
    let mut event = gw.event(actor, action, e.code.as_str());
    event.detail.insert("message".into(), e.message.clone());
    event
}

/// Writes a refusal's audit entry, then answers `e`; `store_unavailable` when the entry cannot
/// be written.
pub async fn audited(gw: &Gateway, event: AuditEvent, e: ApiError) -> ApiError {
    match gw.store.append_audit(vec![event]).await {
        Ok(_) => e,
        Err(store) => store.into(),
    }
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
        (&Method::GET, ["v1", "audit", "proof", ..]) => "audit_proof",
        (&Method::GET, ["v1", "audit", ..]) => "audit",
        (&Method::POST, ["v1", "admin", "reload"]) => "reload",
        (&Method::GET, ["operator", ..]) => "operator_page",
        _ => "other",
    }
}

async fn api(
    gw: &Arc<Gateway>,
    caller: &Caller,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let caller = caller.as_ref().map_err(ApiError::from)?;
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
        (Method::GET, ["v1", "audit", "checkpoint"]) => proofs::checkpoint(gw, caller).await,
        (Method::GET, ["v1", "audit", "proof", "inclusion"]) => {
            proofs::inclusion(gw, caller, req.uri().query()).await
        }
        (Method::GET, ["v1", "audit", "proof", "consistency"]) => {
            proofs::consistency(gw, caller, req.uri().query()).await
        }
        (Method::GET, ["v1", "audit", "public-key"]) => {
            Ok(proofs::public_key(gw, proofs::KeyForm::All))
        }
        (Method::GET, ["v1", "audit", "jwks.json"]) => {
            Ok(proofs::public_key(gw, proofs::KeyForm::Jwks))
        }
        (Method::GET, ["v1", "audit", "public-key.pem"]) => {
            Ok(proofs::public_key(gw, proofs::KeyForm::Pem))
        }
        (Method::POST, ["v1", "admin", "reload"]) => operator::reload(gw, caller).await,
        (Method::GET, ["operator", rest @ ..]) => {
            Ok(operator::handle(gw, caller, rest, req.uri().query()).await)
        }
        (
            _,
            ["v1", "transfers"]
            | ["v1", "transfers", _]
            | ["v1", "transfers", _, "cancel" | "retry"],
        )
        | (_, ["v1", "students", "transfers"] | ["v1", "audit"])
        | (
            _,
            [
                "v1",
                "audit",
                "checkpoint" | "public-key" | "jwks.json" | "public-key.pem",
            ]
            | ["v1", "audit", "proof", "inclusion" | "consistency"]
            | ["v1", "admin", "reload"]
            | ["operator", ..],
        ) => Err(ApiError::new(
            ErrorCode::MethodNotAllowed,
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
        Err(ApiError::new(
            ErrorCode::ForbiddenRole,
            format!("this operation needs the `{}` role", role.as_str()),
        ))
    }
}

/// Reads a request body of at most `limits.max_request_bytes` within the request timeout.
///
/// A longer body is answered `413 request_too_large`, but only after the rest of it (up to
/// [`DRAIN_BYTES`], within the same timeout) has been read and dropped: a client that sends the
/// whole body before reading (most do) then reads the answer instead of a reset connection. A
/// client that asked `Expect: 100-continue` has sent nothing yet and is answered at once.
pub async fn read_body(gw: &Gateway, req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let limit = gw.config.limits.max_request_bytes;
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let waits_to_send = req
        .headers()
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if declared.is_some_and(|len| len > limit && (waits_to_send || len > DRAIN_BYTES)) {
        return Err(too_large(limit));
    }
    let mut read = BodyRead {
        kept: Vec::new(),
        seen: 0,
        too_large: declared.is_some_and(|len| len > limit),
    };
    let mut body = req.into_body();
    let outcome = tokio::time::timeout(
        gw.config.limits.request_timeout,
        read.read(&mut body, limit),
    )
    .await;
    match outcome {
        _ if read.too_large => Err(too_large(limit)),
        Err(_) => Err(ApiError::new(
            ErrorCode::RequestTimeout,
            "the request body took too long",
        )),
        Ok(Err(_)) => Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "the request body could not be read",
        )),
        Ok(Ok(())) => Ok(Bytes::from(read.kept)),
    }
}

/// A body being read: what is kept (nothing once it is too large) and how much came.
struct BodyRead {
    kept: Vec<u8>,
    seen: usize,
    too_large: bool,
}

impl BodyRead {
    /// Reads to the end, keeping at most `limit` bytes; past the limit, drops the rest up to
    /// [`DRAIN_BYTES`] and stops.
    async fn read(&mut self, body: &mut Incoming, limit: usize) -> Result<(), hyper::Error> {
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame?.into_data() else {
                continue; // trailers
            };
            self.seen = self.seen.saturating_add(data.len());
            if self.seen > limit {
                self.too_large = true;
                self.kept = Vec::new();
            }
            if self.too_large {
                if self.seen > DRAIN_BYTES {
                    return Ok(());
                }
            } else {
                self.kept.extend_from_slice(&data);
            }
        }
        Ok(())
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        ErrorCode::RequestTooLarge,
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
        Box::pin(async move {
            match check_head(&req, gw.config.limits.max_header_bytes) {
                Err(e) => text_response(
                    e.status(),
                    "text/plain; charset=utf-8",
                    format!("{}\n", e.message),
                ),
                Ok(()) => admin::answer(&gw, &req).await,
            }
        })
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

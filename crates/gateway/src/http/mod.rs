//! The gateway's HTTP API (CONTRACT.md "HTTP API") and the admin endpoints.
//!
//! Owns: routing (one table, [`ROUTES`], read by dispatch, by `405` answers for their `Allow`
//! header and by the metrics' route labels), request head and body limits (the answers to an
//! over-long head or body are ours, not hyper's: see [`check_head`] and [`read_body`]), query
//! parsing, JSON answers, request ids (see [`api_connection`]), the audit entries of refused
//! requests, and per-connection caller identity (one certificate check per TLS connection).
//! Handlers live in one submodule per resource; errors become answers in [`error`] only.

pub mod admin;
pub mod audit;
pub mod checks;
pub mod consent;
pub mod consent_requests;
pub mod error;
pub mod openapi;
pub mod operator;
pub mod pages;
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
use tracing::{Instrument, Span};

use crate::server::{Body, ConnectionInfo, ResponseFuture};
use crate::state::Gateway;
pub use error::{ApiError, ErrorCode};
use proofs::KeyForm;
use siirto_core::audit::AuditEvent;
use siirto_core::clock::{Random, hex};
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

/// The response header carrying the id the gateway gave a request.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Makes the request handler of one API connection.
///
/// Every request gets an id (32 hex digits, random, made by the gateway: an id a client sends is
/// not taken, so that one cannot be forged into the logs of another request). Its handling runs
/// in a `request` span carrying `request_id`, `method`, `route`, the caller's `participant` and,
/// once known, the `transfer_id`, so every log line of the request names them; the answer
/// carries the id in [`REQUEST_ID_HEADER`] for the caller to quote.
pub fn api_connection(
    gw: Arc<Gateway>,
    conn: ConnectionInfo,
) -> impl Fn(Request<Incoming>) -> ResponseFuture + Send + Sync + 'static {
    let xroad = &gw.config.xroad;
    let security_server = match xroad.security_servers.is_empty() {
        true => None,
        false => identity::matches_any(&xroad.security_servers, &conn.certificates)
            .ok()
            .flatten(),
    };
    let caller = match &security_server {
        // Who calls is named by each request's X-Road-Client.
        Some(_) => Err(IdentityError::NoCertificate),
        None => identity::identify(&gw.config.directory, &conn.certificates).and_then(|p| {
            // A participant on X-Road is reached only through a security server.
            if xroad.clients.values().any(|id| *id == p.id) {
                Err(IdentityError::UnknownParticipant {
                    subject: p.certificate().subject.clone(),
                })
            } else {
                Ok(p)
            }
        }),
    };
    if security_server.is_none()
        && let Err(e) = &caller
    {
        audit_unknown_participant(&gw, &conn, e);
    }
    let caller = Arc::new(caller);
    let security_server = Arc::new(security_server);
    move |req| {
        let gw = gw.clone();
        let (caller, xroad) = match &*security_server {
            None => (caller.clone(), None),
            Some(summary) => {
                let (caller, detail) = through_security_server(&gw, summary, &req);
                (Arc::new(caller), Some(detail))
            }
        };
        let handle = async move {
            let started = Instant::now();
            let route = route_name(req.method(), req.uri().path());
            let request_id = request_id(gw.random.as_ref());
            let span = request_span(&request_id, req.method(), route, &caller);
            let response = match check_head(&req, gw.config.limits.max_header_bytes) {
                Err(e) => refuse_head(&gw, &caller, route, e)
                    .instrument(span.clone())
                    .await
                    .into_response(),
                Ok(()) => match api(&gw, &caller, req).instrument(span.clone()).await {
                    Ok(r) => r,
                    Err(e) => e.into_response(),
                },
            };
            gw.metrics
                .request(route, response.status().as_u16(), started.elapsed());
            answered(&span, &request_id, response, started)
        };
        match xroad {
            None => Box::pin(handle) as ResponseFuture,
            Some(detail) => Box::pin(crate::state::XROAD_REQUEST.scope(detail, handle)),
        }
    }
}

/// The participant a request from an X-Road security server acts as: the one whose
/// `xroad_client` is the request's `X-Road-Client` (each part percent-decoded, X-Road Message
/// Protocol for REST r1 §4.3), and the request's X-Road headers for its audit entries. No
/// header, or no such participant: `unknown_participant`, audited.
fn through_security_server(
    gw: &Arc<Gateway>,
    summary: &identity::CertificateSummary,
    req: &Request<Incoming>,
) -> (Caller, std::collections::BTreeMap<String, String>) {
    let mut detail = std::collections::BTreeMap::new();
    for (header, key) in [
        ("x-road-client", "xroad_client"),
        ("x-road-service", "xroad_service"),
        ("x-road-id", "xroad_id"),
        ("x-road-request-id", "xroad_request_id"),
    ] {
        if let Some(v) = req
            .headers()
            .get(header)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= 255 && v.bytes().all(|b| b.is_ascii_graphic()))
        {
            detail.insert(key.to_owned(), v.to_owned());
        }
    }
    let client = detail.get("xroad_client").map(|c| {
        c.split('/')
            .map(|p| {
                percent_encoding::percent_decode_str(p)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect::<Vec<_>>()
            .join("/")
    });
    let participant = client
        .as_ref()
        .and_then(|c| gw.config.xroad.clients.get(c))
        .and_then(|id| gw.config.directory.get(id));
    match participant {
        Some(p) => (
            Ok(AuthenticatedParticipant::through(
                p.clone(),
                summary.clone(),
            )),
            detail,
        ),
        None => {
            let mut event = gw.event("unknown", "access.denied", "unknown_participant");
            event.detail.extend(detail.clone());
            event
                .detail
                .insert("certificate_subject".into(), summary.subject.clone());
            event.detail.insert(
                "reason".into(),
                "no participant has this X-Road-Client".into(),
            );
            let store = gw.clone();
            tokio::spawn(async move {
                if let Err(err) = store.store.append_audit(vec![event]).await {
                    tracing::warn!(error = %err, "could not audit a refused X-Road client");
                }
            });
            let subject = format!(
                "{} for X-Road-Client {}",
                summary.subject,
                client.as_deref().unwrap_or("(none)")
            );
            (Err(IdentityError::UnknownParticipant { subject }), detail)
        }
    }
}

/// A new request id: 16 random bytes as hex (the shape of a W3C trace id).
fn request_id(random: &dyn Random) -> String {
    let mut bytes = [0u8; 16];
    random.fill(&mut bytes);
    hex(&bytes)
}

fn request_span(request_id: &str, method: &Method, route: &str, caller: &Caller) -> Span {
    let participant = caller
        .as_ref()
        .map_or("unknown", |c| c.participant().id.as_str());
    tracing::info_span!(
        "request",
        request_id,
        %method,
        route,
        participant,
        transfer_id = tracing::field::Empty,
    )
}

/// Logs the answer (at debug, in the request's span) and adds the request id header.
fn answered(
    span: &Span,
    request_id: &str,
    mut response: Response<Body>,
    started: Instant,
) -> Response<Body> {
    span.in_scope(|| {
        tracing::debug!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis(),
            "answered"
        );
    });
    if let Ok(value) = http::HeaderValue::from_str(request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
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

// ---------------------------------------------------------------------------------------------
// Routes

/// What a route does; [`api`] calls the handler of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handler {
    Submit,
    Check,
    Show,
    Cancel,
    Retry,
    BulkRetry,
    StudentHistory,
    ConsentText,
    ConsentRequest,
    ConsentAnswer,
    AuditList,
    Checkpoint,
    Inclusion,
    Consistency,
    PublicKey(KeyForm),
    Reload,
    OpenApi,
    Operator,
    AddCheckpoint,
}

/// One route of the API: its method, its path, its label in the metrics, and what it does.
#[derive(Debug)]
pub struct Route {
    pub method: Method,
    /// Path segments; `"{id}"` takes any one segment, a final `"*"` any number of them.
    pub path: &'static [&'static str],
    /// The low-cardinality name of the route in `siirto_http_*` metrics.
    pub label: &'static str,
    handler: Handler,
}

const fn route(
    method: Method,
    path: &'static [&'static str],
    label: &'static str,
    handler: Handler,
) -> Route {
    Route {
        method,
        path,
        label,
        handler,
    }
}

/// Every route of the API, the one list that dispatch, `405` answers (with `Allow`) and the
/// metrics' route labels come from.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    route(Method::POST, &["v1", "transfers"], "submit_transfer", Handler::Submit),
    route(Method::GET, &["v1", "transfers", "{id}"], "get_transfer", Handler::Show),
    route(Method::POST, &["v1", "transfers", "{id}", "cancel"], "cancel_transfer", Handler::Cancel),
    route(Method::POST, &["v1", "transfers", "{id}", "retry"], "retry_transfer", Handler::Retry),
    route(Method::POST, &["v1", "transfers", "retry"], "retry_transfers", Handler::BulkRetry),
    route(Method::POST, &["v1", "checks"], "submit_check", Handler::Check),
    route(Method::GET, &["v1", "students", "transfers"], "student_transfers", Handler::StudentHistory),
    route(Method::GET, &["v1", "consent-text"], "consent_text", Handler::ConsentText),
    route(Method::POST, &["v1", "consent-requests"], "consent_request", Handler::ConsentRequest),
    route(Method::POST, &["v1", "consent-requests", "{id}", "code"], "consent_answer", Handler::ConsentAnswer),
    route(Method::GET, &["v1", "audit"], "audit", Handler::AuditList),
    route(Method::GET, &["v1", "audit", "checkpoint"], "audit", Handler::Checkpoint),
    route(Method::GET, &["v1", "audit", "proof", "inclusion"], "audit_proof", Handler::Inclusion),
    route(Method::GET, &["v1", "audit", "proof", "consistency"], "audit_proof", Handler::Consistency),
    route(Method::GET, &["v1", "audit", "public-key"], "audit", Handler::PublicKey(KeyForm::All)),
    route(Method::GET, &["v1", "audit", "jwks.json"], "audit", Handler::PublicKey(KeyForm::Jwks)),
    route(Method::GET, &["v1", "audit", "public-key.pem"], "audit", Handler::PublicKey(KeyForm::Pem)),
    route(Method::POST, &["v1", "admin", "reload"], "reload", Handler::Reload),
    route(Method::GET, &["v1", "openapi.json"], "openapi", Handler::OpenApi),
    route(Method::POST, &["witness", "add-checkpoint"], "witness", Handler::AddCheckpoint),
    route(Method::GET, &["operator", "*"], "operator_page", Handler::Operator),
    route(Method::POST, &["operator", "*"], "operator_page", Handler::Operator),
];

/// The label of requests that match no route (unknown paths, and known paths with another
/// method).
pub const OTHER_ROUTE: &str = "other";

/// Where a request goes.
#[derive(Debug)]
enum Routed<'p> {
    /// The route, and the segments its `{id}` and `*` took, in order.
    Found(&'static Route, Vec<&'p str>),
    /// The path is known, with other methods: the value of the `Allow` header.
    WrongMethod(String),
    NotFound,
}

/// The segments of `path`'s that `pattern` takes, when it matches.
fn match_path<'p>(pattern: &[&str], segments: &[&'p str]) -> Option<Vec<&'p str>> {
    let mut taken = Vec::new();
    for (i, part) in pattern.iter().enumerate() {
        match *part {
            "*" => {
                taken.extend_from_slice(&segments[i.min(segments.len())..]);
                return Some(taken);
            }
            "{id}" => taken.push(*segments.get(i)?),
            literal if segments.get(i) == Some(&literal) => {}
            _ => return None,
        }
    }
    (segments.len() == pattern.len()).then_some(taken)
}

fn segments(path: &str) -> Vec<&str> {
    path.trim_matches('/').split('/').collect()
}

fn find_route<'p>(method: &Method, segments: &[&'p str]) -> Routed<'p> {
    let mut allowed: Vec<&str> = Vec::new();
    for route in ROUTES {
        if let Some(taken) = match_path(route.path, segments) {
            if route.method == *method {
                return Routed::Found(route, taken);
            }
            if !allowed.contains(&route.method.as_str()) {
                allowed.push(route.method.as_str());
            }
        }
    }
    if allowed.is_empty() {
        Routed::NotFound
    } else {
        Routed::WrongMethod(allowed.join(", "))
    }
}

/// Creates the series of the label values this module knows: each route label of [`ROUTES`]
/// and [`OTHER_ROUTE`], and each code of [`transfers::SUBMISSION_REFUSALS`].
pub fn know_metric_labels(metrics: &crate::metrics::Metrics) {
    metrics.know_routes(ROUTES.iter().map(|r| r.label).chain([OTHER_ROUTE]));
    metrics.know_authorization_codes(transfers::SUBMISSION_REFUSALS.map(ErrorCode::as_str));
}

/// A low-cardinality name for metrics: the route's label, or [`OTHER_ROUTE`].
fn route_name(method: &Method, path: &str) -> &'static str {
    match find_route(method, &segments(path)) {
        Routed::Found(route, _) => route.label,
        Routed::WrongMethod(_) | Routed::NotFound => OTHER_ROUTE,
    }
}

async fn api(
    gw: &Arc<Gateway>,
    caller: &Caller,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let caller = caller.as_ref().map_err(ApiError::from)?;
    let path = req.uri().path().to_owned();
    let segments = segments(&path);
    let (route, taken) = match find_route(req.method(), &segments) {
        Routed::Found(route, taken) => (route, taken),
        Routed::WrongMethod(allow) => {
            return Err(ApiError::method_not_allowed(
                format!("{} is not allowed on {path}", req.method()),
                allow,
            ));
        }
        Routed::NotFound => return Err(ApiError::not_found()),
    };
    // The transfer a route names, for the request's log lines.
    let id = taken.first().copied().unwrap_or_default();
    if matches!(
        route.handler,
        Handler::Show | Handler::Cancel | Handler::Retry
    ) {
        tracing::Span::current().record("transfer_id", id);
    }
    let query = req.uri().query();
    match route.handler {
        Handler::Submit => transfers::submit(gw, caller, req).await,
        Handler::Check => checks::submit(gw, caller, req).await,
        Handler::Show => transfers::show(gw, caller, id).await,
        Handler::Cancel => transfers::cancel(gw, caller, id).await,
        Handler::Retry => transfers::retry(gw, caller, id).await,
        Handler::BulkRetry => transfers::bulk_retry(gw, caller, query).await,
        Handler::StudentHistory => students::history(gw, caller, &req).await,
        Handler::ConsentText => consent::text(gw, caller, query),
        Handler::ConsentRequest => consent_requests::create(gw, caller, req).await,
        Handler::ConsentAnswer => consent_requests::answer(gw, caller, id, req).await,
        Handler::AuditList => audit::list(gw, caller, query).await,
        Handler::Checkpoint => proofs::checkpoint(gw, caller).await,
        Handler::Inclusion => proofs::inclusion(gw, caller, query).await,
        Handler::Consistency => proofs::consistency(gw, caller, query).await,
        Handler::PublicKey(form) => Ok(proofs::public_key(gw, form)),
        Handler::Reload => operator::reload(gw, caller).await,
        Handler::OpenApi => openapi::serve(gw, caller),
        Handler::Operator => Ok(operator::handle(gw, caller, &taken, req).await),
        Handler::AddCheckpoint => add_checkpoint(gw, caller, req).await,
    }
}

/// Requires `role` of the caller.
/// `POST /witness/add-checkpoint` (C2SP tlog-witness), for participants with the `log` role.
async fn add_checkpoint(
    gw: &Arc<Gateway>,
    caller: &AuthenticatedParticipant,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    require_role(caller, Role::Log)?;
    let body = read_body(gw, req).await?;
    let Ok(text) = std::str::from_utf8(&body) else {
        return Ok(text_response(
            StatusCode::BAD_REQUEST,
            "text/plain; charset=utf-8",
            "the body is not UTF-8\n",
        ));
    };
    let (status, content_type, answer) =
        crate::witness::add_checkpoint(gw, &caller.participant().id, text).await;
    Ok(text_response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        content_type,
        answer,
    ))
}

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

/// Parses `a=1&b=x%20y` into pairs (`application/x-www-form-urlencoded`): percent-decoded,
/// `+` is a space, a malformed escape is kept as written.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
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
        let kept = query_pairs(Some("a=100%&b=%zz&&c=%C3%A4"));
        assert_eq!(
            kept,
            [("a", "100%"), ("b", "%zz"), ("c", "ä")].map(|(k, v)| (k.into(), v.into()))
        );
    }

    #[test]
    fn route_names_are_bounded() {
        for (method, path, label) in [
            (Method::POST, "/v1/transfers", "submit_transfer"),
            (Method::GET, "/v1/transfers/123", "get_transfer"),
            (Method::POST, "/v1/transfers/123/cancel", "cancel_transfer"),
            (Method::POST, "/v1/transfers/123/retry/", "retry_transfer"),
            (Method::GET, "/v1/students/transfers", "student_transfers"),
            (Method::GET, "/v1/consent-text", "consent_text"),
            (Method::GET, "/v1/audit", "audit"),
            (Method::GET, "/v1/audit/jwks.json", "audit"),
            (Method::GET, "/v1/audit/proof/inclusion", "audit_proof"),
            (Method::POST, "/v1/admin/reload", "reload"),
            (Method::GET, "/operator", "operator_page"),
            (Method::GET, "/operator/transfers/abc", "operator_page"),
            (Method::POST, "/operator/subjects", "operator_page"),
            (Method::GET, "/anything/else", "other"),
            (Method::GET, "/v1/audit/nothing", "other"),
            (Method::DELETE, "/v1/transfers/123", "other"),
        ] {
            assert_eq!(route_name(&method, path), label, "{method} {path}");
        }
    }

    #[test]
    fn each_route_is_found_by_its_path_and_method_only() {
        for route in ROUTES {
            let path: Vec<&str> = route
                .path
                .iter()
                .map(|part| match *part {
                    "{id}" => "t-1",
                    "*" => "transfers",
                    literal => literal,
                })
                .collect();
            match find_route(&route.method, &path) {
                Routed::Found(found, taken) => {
                    assert!(std::ptr::eq(found, route), "{path:?}");
                    if route.path.contains(&"{id}") {
                        assert_eq!(taken, ["t-1"]);
                    }
                }
                other => panic!("{path:?}: {other:?}"),
            }
            let other = if route.method == Method::GET {
                Method::POST
            } else {
                Method::GET
            };
            match find_route(&other, &path) {
                Routed::WrongMethod(allow) => assert_eq!(allow, route.method.as_str()),
                // `/v1/transfers/retry` is also `GET /v1/transfers/{id}` with the id `retry`;
                // the operator page takes both methods.
                Routed::Found(found, _)
                    if found.method == other
                        && (found.path.contains(&"{id}") || found.path.contains(&"*")) => {}
                found => panic!("{other} {path:?}: {found:?}"),
            }
        }
        assert!(matches!(
            find_route(&Method::GET, &segments("/v1/transfers/a/b")),
            Routed::NotFound
        ));
        assert!(matches!(
            find_route(&Method::GET, &segments("/v1")),
            Routed::NotFound
        ));
    }

    #[test]
    fn a_405_answer_names_the_allowed_methods() {
        let answer = ApiError::method_not_allowed("PUT is not allowed", "GET".into());
        let response = answer.into_response();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[http::header::ALLOW], "GET");
    }
}

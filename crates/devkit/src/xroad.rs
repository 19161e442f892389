//! An in-test X-Road security server, written from the X-Road Message Protocol for REST (r1),
//! `doc/Protocols/pr-rest_x-road_message_protocol_for_rest.md` of nordic-institute/X-Road. It
//! is NOT the NIIS security server (which cannot be installed here) and carries no message
//! between security servers: it plays the consumer's and the provider's security server in one,
//! mapping each service id to a provider URL of its own configuration.
//!
//! What it does, each as the protocol says:
//! - accepts only mutually authenticated TLS connections (§4.7);
//! - requires `X-Road-Client` naming the one client subsystem it serves, percent-decoded part by
//!   part (§4.3), and the request form `/r1/{INSTANCE}/{CLASS}/{MEMBER}/{SUBSYSTEM}/{SERVICE}
//!   {path}[?query]` (§4.1), each part percent-decoded on its own (§4.2), the request target at
//!   most 2000 characters (§4.2); otherwise it answers `400` with `X-Road-Error:
//!   Client.BadRequest` and records why it refused;
//! - forwards the request to the provider (method, path, query, body and user headers; the
//!   hop-by-hop headers, `Host` and `User-Agent` are not passed on, §4.3) over mutual TLS;
//! - answers with the provider's status, headers and body (§4.6 category 1), adding
//!   `X-Road-Client`, `X-Road-Service`, `X-Road-Id` (the client's, or a fresh UUID),
//!   `X-Road-Request-Id` (a fresh UUID) and `X-Road-Request-Hash`, the base64 of
//!   SHA-512(SHA-512(headers) + SHA-512(body)), or of SHA-512(headers) without a body (§4.3).
//!   The protocol does not say how the headers are serialized for the hash; this server hashes
//!   the request's headers as `name: value\r\n` lines in the order received;
//! - answers a provider it cannot reach with `500` and `X-Road-Error:
//!   Server.ServerProxy.NetworkError` (§4.6 category 2), and can be told to answer the next
//!   requests for a service with an X-Road error of a given type ([`SecurityServer::fail_next`]); every X-Road
//!   error has a JSON body `{type, message, detail}` and `Content-Type: application/json;
//!   charset=utf-8` (§4.6).

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use rustls::ServerConfig;
use tokio::net::TcpListener;

use siirto_core::admission::AdmissionLimits;
use siirto_core::clock::{Random, uuid_v4};
use siirto_gateway::server::{ResponseFuture, ServerLimits, Shutdown, serve_tls};

use crate::client::{ClientError, MtlsClient};

/// The longest request target accepted (§4.2: "most clients enforce an arbitrary limit of 2000
/// characters. The Security Server implementation MAY do this as well").
const MAX_TARGET: usize = 2000;
/// The largest request body forwarded.
const MAX_BODY: usize = 32 * 1024 * 1024;

/// Headers the security server does not pass on (§4.3, "Filtered headers").
const FILTERED: [&str; 11] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "user-agent",
    "server",
];

/// An X-Road error the server can be told to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XroadFault {
    /// `500 Server.ServerProxy.NetworkError`: the provider could not be reached (§4.6 example 2).
    NetworkError,
    /// `400 Client.BadRequest`: the request does not follow the protocol (§4.6 example 3).
    BadRequest,
}

impl XroadFault {
    fn status_and_type(self) -> (StatusCode, &'static str) {
        match self {
            XroadFault::NetworkError => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Server.ServerProxy.NetworkError",
            ),
            XroadFault::BadRequest => (StatusCode::BAD_REQUEST, "Client.BadRequest"),
        }
    }
}

/// One request the security server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XroadRequest {
    pub method: String,
    /// The request target as received (`/r1/…`).
    pub target: String,
    /// Every header as received (names lower-case).
    pub headers: Vec<(String, String)>,
    /// The service id, decoded, when the path had that form.
    pub service: Option<String>,
    /// Why the server refused the request's form, when it did.
    pub refused: Option<String>,
    /// What it answered: the status, and the `X-Road-Error` type if any.
    pub status: u16,
    pub error: Option<String>,
    /// The `X-Road-Id`, `X-Road-Request-Id` and `X-Road-Request-Hash` it answered with (not
    /// for an X-Road error).
    pub answered_ids: Option<(String, String, String)>,
}

impl XroadRequest {
    /// The value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

struct State {
    /// The client subsystem served, decoded (`INSTANCE/CLASS/MEMBER/SUBSYSTEM`).
    client: String,
    /// Service id (decoded) → a client to its provider.
    services: HashMap<String, MtlsClient>,
    /// By service id (decoded): the X-Road errors to answer its next requests with.
    faults: Mutex<HashMap<String, VecDeque<XroadFault>>>,
    requests: Mutex<Vec<XroadRequest>>,
    random: Arc<dyn Random>,
}

/// A running in-test security server (see the module documentation).
#[derive(Clone)]
pub struct SecurityServer {
    url: String,
    state: Arc<State>,
}

/// A provider behind the security server.
pub struct Provider<'a> {
    /// The service id, `INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE` (not encoded).
    pub service: String,
    /// The provider's base URL (`https://host:port[/prefix]`).
    pub url: String,
    /// The CA of the provider's server certificate.
    pub server_ca: &'a Path,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SecurityServer {
    /// Serves on `listener` with `tls` (which must require client certificates), for the one
    /// client subsystem `client`, forwarding to `providers` with the client certificate
    /// `identity` (chain, key).
    pub fn spawn(
        listener: TcpListener,
        tls: Arc<ServerConfig>,
        client: &str,
        providers: &[Provider<'_>],
        identity: (&Path, &Path),
        random: Arc<dyn Random>,
        shutdown: Shutdown,
    ) -> Result<SecurityServer, ClientError> {
        let url = format!("https://{}", listener.local_addr().map_err(io)?);
        let mut services = HashMap::new();
        for p in providers {
            services.insert(
                p.service.clone(),
                MtlsClient::new(&p.url, p.server_ca, Some(identity))?,
            );
        }
        let state = Arc::new(State {
            client: client.to_owned(),
            services,
            faults: Mutex::default(),
            requests: Mutex::default(),
            random,
        });
        let s = state.clone();
        tokio::spawn(serve_tls(
            listener,
            tls,
            ServerLimits {
                admission: AdmissionLimits::global_only(1024),
                ..ServerLimits::default()
            },
            move |_conn| {
                let s = s.clone();
                move |req: Request<hyper::body::Incoming>| -> ResponseFuture {
                    let s = s.clone();
                    Box::pin(async move { answer(&s, req).await })
                }
            },
            None,
            shutdown,
        ));
        Ok(SecurityServer { url, state })
    }

    /// `https://127.0.0.1:PORT`: the gateway's `[xroad] security_server_url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Answers the next requests for `service` (one each, in order) with these X-Road errors.
    pub fn fail_next(&self, service: &str, faults: &[XroadFault]) {
        lock(&self.state.faults)
            .entry(service.to_owned())
            .or_default()
            .extend(faults.iter().copied());
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<XroadRequest> {
        lock(&self.state.requests).clone()
    }
}

fn io(e: std::io::Error) -> ClientError {
    ClientError::Request(e.to_string())
}

fn decode(part: &str) -> String {
    percent_encoding::percent_decode_str(part)
        .decode_utf8_lossy()
        .into_owned()
}

/// An X-Road error answer (§4.6): the status, `X-Road-Error`, and a JSON body.
fn xroad_error(
    status: StatusCode,
    kind: &str,
    message: &str,
    detail: &str,
) -> Response<Full<Bytes>> {
    let body = serde_json::json!({"type": kind, "message": message, "detail": detail});
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    let headers = r.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(kind) {
        headers.insert("x-road-error", v);
    }
    r
}

/// §4.3: base64(SHA-512(SHA-512(headers) + SHA-512(body))), or base64(SHA-512(headers)) when
/// there is no body; the headers as `name: value\r\n` lines in the order received.
pub fn request_hash(headers: &[(String, String)], body: &[u8]) -> String {
    use ring::digest::{SHA512, digest};
    let mut text = String::new();
    for (n, v) in headers {
        text.push_str(n);
        text.push_str(": ");
        text.push_str(v);
        text.push_str("\r\n");
    }
    let head = digest(&SHA512, text.as_bytes());
    let hash = if body.is_empty() {
        head
    } else {
        let mut both = head.as_ref().to_vec();
        both.extend_from_slice(digest(&SHA512, body).as_ref());
        digest(&SHA512, &both)
    };
    base64::engine::general_purpose::STANDARD.encode(hash.as_ref())
}

/// The service id and the rest of the path of `/r1/{serviceId}{path}` (§4.1): the first five
/// parts (with a subsystem) or four (without) that name a known service.
fn split_service<'a>(
    path: &'a str,
    known: &HashMap<String, MtlsClient>,
) -> Result<(String, &'a str), String> {
    let Some(rest) = path.strip_prefix("/r1/") else {
        return Err("the path does not start with /r1/ (protocol version r1)".into());
    };
    for parts in [5, 4] {
        let mut segments = rest.splitn(parts + 1, '/');
        let ids: Vec<&str> = segments.by_ref().take(parts).collect();
        if ids.len() < parts || ids.iter().any(|s| s.is_empty()) {
            continue;
        }
        let service = ids.iter().map(|s| decode(s)).collect::<Vec<_>>().join("/");
        if known.contains_key(&service) {
            let consumed: usize = ids.iter().map(|s| s.len() + 1).sum();
            let remainder = &path[4 + consumed - 1..];
            let remainder = if remainder.starts_with('/') {
                remainder
            } else {
                ""
            };
            return Ok((service, remainder));
        }
    }
    Err("no known service id INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE in the path".into())
}

async fn answer(s: &State, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let mut record = XroadRequest {
        method: parts.method.to_string(),
        target: target.clone(),
        headers: headers.clone(),
        service: None,
        refused: None,
        status: 0,
        error: None,
        answered_ids: None,
    };
    let detail = uuid_v4(s.random.as_ref());
    let response = respond(
        s,
        &parts.method,
        &target,
        &headers,
        body,
        &mut record,
        &detail,
    )
    .await;
    record.status = response.status().as_u16();
    record.error = response
        .headers()
        .get("x-road-error")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    lock(&s.requests).push(record);
    response
}

async fn respond(
    s: &State,
    method: &Method,
    target: &str,
    headers: &[(String, String)],
    body: Bytes,
    record: &mut XroadRequest,
    detail: &str,
) -> Response<Full<Bytes>> {
    let refuse = |record: &mut XroadRequest, why: String| {
        let r = xroad_error(StatusCode::BAD_REQUEST, "Client.BadRequest", &why, detail);
        record.refused = Some(why);
        r
    };
    if target.len() > MAX_TARGET {
        return refuse(
            record,
            format!("the request target is over {MAX_TARGET} characters"),
        );
    }
    // §4.3: the one mandatory header, its parts percent-encoded.
    let client = headers
        .iter()
        .filter(|(n, _)| n == "x-road-client")
        .map(|(_, v)| v.as_str())
        .collect::<Vec<_>>();
    let [client] = client.as_slice() else {
        return refuse(
            record,
            "exactly one X-Road-Client header is required".into(),
        );
    };
    let decoded = client.split('/').map(decode).collect::<Vec<_>>().join("/");
    if decoded != s.client {
        return refuse(
            record,
            format!("X-Road-Client \"{decoded}\" is not a client of this security server"),
        );
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let (service, rest) = match split_service(path, &s.services) {
        Ok(found) => found,
        Err(why) => return refuse(record, why),
    };
    record.service = Some(service.clone());
    let fault = lock(&s.faults)
        .get_mut(&service)
        .and_then(VecDeque::pop_front);
    if let Some(fault) = fault {
        let (status, kind) = fault.status_and_type();
        let message = match fault {
            XroadFault::NetworkError => "Connect to the provider failed (told to fail)",
            XroadFault::BadRequest => "Error parsing the client's REST request (told to fail)",
        };
        return xroad_error(status, kind, message, detail);
    }
    let Some(provider) = s.services.get(&service) else {
        return refuse(record, "unknown service".into());
    };
    let forwarded: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(n, _)| !FILTERED.contains(&n.as_str()) && n != "content-length")
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let path = match query {
        Some(q) => format!("{}?{q}", if rest.is_empty() { "/" } else { rest }),
        None => rest.to_owned(),
    };
    let request_hash = request_hash(headers, &body);
    let body = (!body.is_empty()).then_some(body);
    let answered = match provider.send(method.clone(), &path, &forwarded, body).await {
        Ok(a) => a,
        Err(e) => {
            return xroad_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Server.ServerProxy.NetworkError",
                &format!("the provider could not be reached: {e}"),
                detail,
            );
        }
    };
    let mut r = Response::new(Full::new(answered.body));
    *r.status_mut() = answered.status;
    let out = r.headers_mut();
    for (name, value) in &answered.headers {
        let n = name.as_str();
        // The provider's own X-Road headers are replaced (§4.3).
        if !FILTERED.contains(&n) && !n.starts_with("x-road-") && n != "content-length" {
            out.append(name.clone(), value.clone());
        }
    }
    let id = headers
        .iter()
        .find(|(n, _)| n == "x-road-id")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| uuid_v4(s.random.as_ref()));
    let request_id = uuid_v4(s.random.as_ref());
    for (name, value) in [
        ("x-road-client", client.to_string()),
        ("x-road-service", service),
        ("x-road-id", id.clone()),
        ("x-road-request-id", request_id.clone()),
        ("x-road-request-hash", request_hash.clone()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            out.insert(name, v);
        }
    }
    record.answered_ids = Some((id, request_id, request_hash));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_hash_is_base64_sha512() {
        let h = request_hash(&[("a".into(), "b".into())], b"");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&h)
            .expect("base64");
        assert_eq!(raw.len(), 64);
        assert_ne!(h, request_hash(&[("a".into(), "b".into())], b"x"));
    }
}

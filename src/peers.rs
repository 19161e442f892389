//! Reference source and destination endpoints (CONTRACT.md "Source and destination endpoints"):
//! real mTLS HTTP servers that the demo, the integration tests and the benchmarks run beside the
//! gateway. A municipality's integration team can read them as the smallest correct peer.
//!
//! Owns: [`Source`] (serves records by student id) and [`Destination`] (accepts records,
//! deduplicating by `Idempotency-Key`, and remembers every request). Both can be told to
//! misbehave (status codes, delays, oversized or hostile bodies) for tests of the gateway's
//! failure handling. They hold test data only; never run them with real records.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};
use rustls::ServerConfig;
use tokio::net::TcpListener;

use crate::server::{ResponseFuture, ServerLimits, Shutdown, serve_tls};

/// How a peer answers, for tests of failure handling.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Behaviour {
    /// Answer as the contract says.
    #[default]
    Normal,
    /// Answer every request with this status and no body.
    Status(u16),
    /// Answer the next `n` requests with `status`, then normally.
    FailTimes { status: u16, n: u32 },
    /// Wait this long before answering normally.
    Delay(Duration),
    /// (Destination only) store the record at once, then wait this long before answering: an
    /// acknowledgement that a crash of the caller loses.
    AnswerAfter(Duration),
    /// (Source only) serve these bytes whatever the student.
    Body(Vec<u8>),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

/// Applies a misbehaviour; `Some(response)` when it decides the answer.
async fn misbehave(behaviour: &Mutex<Behaviour>) -> Option<Response<Full<Bytes>>> {
    let current = lock(behaviour).clone();
    match current {
        Behaviour::Normal | Behaviour::Body(_) | Behaviour::AnswerAfter(_) => None,
        Behaviour::Status(s) => Some(reply(
            StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "",
        )),
        Behaviour::FailTimes { status, n } => {
            let mut b = lock(behaviour);
            *b = if n <= 1 {
                Behaviour::Normal
            } else {
                Behaviour::FailTimes { status, n: n - 1 }
            };
            Some(reply(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "",
            ))
        }
        Behaviour::Delay(d) => {
            tokio::time::sleep(d).await;
            None
        }
    }
}

#[derive(Default)]
struct SourceState {
    records: Mutex<HashMap<String, Vec<u8>>>,
    behaviour: Mutex<Behaviour>,
    /// `X-Siirto-Transfer` of every request, in order.
    requests: Mutex<Vec<String>>,
}

/// A source endpoint serving `GET /records/{sub}`.
#[derive(Clone)]
pub struct Source {
    pub addr: SocketAddr,
    state: Arc<SourceState>,
}

impl Source {
    pub fn base_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn insert(&self, subject: &str, document: Vec<u8>) {
        lock(&self.state.records).insert(subject.to_owned(), document);
    }

    pub fn set_behaviour(&self, b: Behaviour) {
        *lock(&self.state.behaviour) = b;
    }

    /// Transfer ids of the requests received so far.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.state.requests).clone()
    }
}

async fn source_answer(
    s: &SourceState,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let transfer = req
        .headers()
        .get("x-siirto-transfer")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    lock(&s.requests).push(transfer);
    if let Some(r) = misbehave(&s.behaviour).await {
        return r;
    }
    let path = req.uri().path();
    let Some(encoded) = path.strip_prefix("/records/") else {
        return reply(StatusCode::NOT_FOUND, "");
    };
    if req.method() != Method::GET {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "");
    }
    if let Behaviour::Body(b) = lock(&s.behaviour).clone() {
        return xml(b);
    }
    let subject = percent_decode(encoded);
    match lock(&s.records).get(&subject) {
        Some(doc) => xml(doc.clone()),
        None => reply(StatusCode::NOT_FOUND, ""),
    }
}

fn xml(body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = reply(StatusCode::OK, body);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/xml"),
    );
    r
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Starts one endpoint that is both a source (`GET /records/{sub}`) and a destination
/// (`POST /records`), as a municipality's school system is. Use the half you need.
pub fn spawn_endpoint(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    shutdown: Shutdown,
) -> std::io::Result<(Source, Destination)> {
    let addr = listener.local_addr()?;
    let source = Arc::new(SourceState::default());
    let destination = Arc::new(DestinationState::default());
    let (s, d) = (source.clone(), destination.clone());
    tokio::spawn(serve_tls(
        listener,
        tls,
        ServerLimits::default(),
        move |_conn| {
            let (s, d) = (s.clone(), d.clone());
            move |req: Request<hyper::body::Incoming>| -> ResponseFuture {
                let (s, d) = (s.clone(), d.clone());
                Box::pin(async move {
                    if req.method() == Method::POST {
                        destination_answer(&d, req).await
                    } else {
                        source_answer(&s, req).await
                    }
                })
            }
        },
        None,
        shutdown,
    ));
    Ok((
        Source {
            addr,
            state: source,
        },
        Destination {
            addr,
            state: destination,
        },
    ))
}

/// One `POST /records` the destination received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub idempotency_key: String,
    pub content_type: String,
    pub body: Vec<u8>,
    /// The answer given: 200 stored, 409 duplicate, or a misbehaviour's status.
    pub status: u16,
}

#[derive(Default)]
struct DestinationState {
    behaviour: Mutex<Behaviour>,
    requests: Mutex<Vec<Received>>,
    stored: Mutex<HashMap<String, Vec<u8>>>,
}

/// A destination endpoint accepting `POST /records`.
#[derive(Clone)]
pub struct Destination {
    pub addr: SocketAddr,
    state: Arc<DestinationState>,
}

/// Largest record the reference destination accepts.
const DESTINATION_MAX_BODY: usize = 32 * 1024 * 1024;

impl Destination {
    pub fn base_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn set_behaviour(&self, b: Behaviour) {
        *lock(&self.state.behaviour) = b;
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<Received> {
        lock(&self.state.requests).clone()
    }

    /// Documents stored, by idempotency key (each key at most once).
    pub fn stored(&self) -> HashMap<String, Vec<u8>> {
        lock(&self.state.stored).clone()
    }
}

async fn destination_answer(
    s: &DestinationState,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    if req.uri().path() != "/records" {
        return reply(StatusCode::NOT_FOUND, "");
    }
    if req.method() != Method::POST {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "");
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let key = header("idempotency-key");
    let content_type = header("content-type");
    let body = match Limited::new(req.into_body(), DESTINATION_MAX_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => return reply(StatusCode::PAYLOAD_TOO_LARGE, ""),
    };
    let mut received = Received {
        idempotency_key: key.clone(),
        content_type: content_type.clone(),
        body: body.clone(),
        status: 0,
    };
    let answer = if let Some(r) = misbehave(&s.behaviour).await {
        r
    } else if key.is_empty() || !content_type.starts_with("application/xml") {
        reply(StatusCode::BAD_REQUEST, "")
    } else {
        let mut stored = lock(&s.stored);
        if let std::collections::hash_map::Entry::Vacant(e) = stored.entry(key) {
            e.insert(body);
            reply(StatusCode::OK, "")
        } else {
            reply(StatusCode::CONFLICT, "")
        }
    };
    received.status = answer.status().as_u16();
    lock(&s.requests).push(received);
    let hold = match *lock(&s.behaviour) {
        Behaviour::AnswerAfter(d) => Some(d),
        _ => None,
    };
    if let Some(d) = hold {
        tokio::time::sleep(d).await;
    }
    answer
}

#[cfg(test)]
mod tests {
    #[test]
    fn percent_decoding() {
        assert_eq!(super::percent_decode("131052-308T"), "131052-308T");
        assert_eq!(super::percent_decode("a%2Bb%20c"), "a+b c");
        assert_eq!(super::percent_decode("bad%zz%2"), "bad%zz%2");
    }
}

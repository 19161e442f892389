//! Reference source and destination endpoints (CONTRACT.md "Source and destination endpoints"):
//! real mTLS HTTP servers that the demo, the integration tests and the benchmarks run beside the
//! gateway. A municipality's integration team can read them as the smallest correct peer.
//!
//! Owns: [`Source`] (serves records by student id) and [`Destination`] (accepts records,
//! deduplicating by `Idempotency-Key`, and remembers every request). Both can be told to
//! misbehave (status codes, delays, oversized or hostile bodies, lost acknowledgements, held
//! requests) and an endpoint can stop listening and start again on the same port (connections
//! refused meanwhile), for tests of the gateway's failure handling. They hold test data only;
//! never run them with real records.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{oneshot, watch};

use siirto_core::admission::AdmissionLimits;
use siirto_gateway::server::{ResponseFuture, ServerLimits, Shutdown, serve_tls};

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
    /// (Source only) serve these bytes whatever the student.
    Body(Vec<u8>),
    /// (Destination only) Store a new document as a normal answer would, then answer with this
    /// status instead of 200: the document arrived but its acknowledgement is lost. A key that
    /// is already stored is answered 409 as usual.
    StoreThenStatus(u16),
    /// (Destination only) Store a new document, then wait this long before answering 200. Longer
    /// than the caller's request timeout, the caller gives up and drops the connection: the
    /// acknowledgement is lost in transport. A key already stored is answered 409 at once.
    StoreThenDelay(Duration),
    /// (Destination only) Store a new document, then hold its answer (200) until the behaviour
    /// is changed: the document arrived and its acknowledgement is still on the way, for as
    /// long as a test needs. A key that is already stored is answered 409 at once.
    StoreThenHold,
    /// Hold every request until the behaviour is changed, then answer as the new behaviour
    /// says (with [`Destination::in_flight`], for tests of concurrency limits).
    Hold,
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
async fn misbehave(behaviour: &watch::Sender<Behaviour>) -> Option<Response<Full<Bytes>>> {
    let status = |s: u16| {
        Some(reply(
            StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "",
        ))
    };
    loop {
        let current = behaviour.borrow().clone();
        match current {
            Behaviour::Normal
            | Behaviour::Body(_)
            | Behaviour::StoreThenStatus(_)
            | Behaviour::StoreThenDelay(_)
            | Behaviour::StoreThenHold => return None,
            Behaviour::Status(s) => return status(s),
            Behaviour::FailTimes { .. } => {
                // Count down atomically: concurrent requests each take one failure.
                let mut failed = None;
                behaviour.send_if_modified(|b| match *b {
                    Behaviour::FailTimes { status, n } => {
                        failed = Some(status);
                        *b = if n <= 1 {
                            Behaviour::Normal
                        } else {
                            Behaviour::FailTimes { status, n: n - 1 }
                        };
                        true
                    }
                    _ => false,
                });
                match failed {
                    Some(s) => return status(s),
                    // Changed meanwhile: answer as the new behaviour says.
                    None => continue,
                }
            }
            Behaviour::Delay(d) => {
                tokio::time::sleep(d).await;
                return None;
            }
            Behaviour::Hold => {
                let mut changes = behaviour.subscribe();
                if changes.wait_for(|b| *b != Behaviour::Hold).await.is_err() {
                    // The sender lives in the endpoint's state, which outlives this request.
                    return status(503);
                }
            }
        }
    }
}

fn behaviour_cell() -> watch::Sender<Behaviour> {
    watch::Sender::new(Behaviour::Normal)
}

struct SourceState {
    records: Mutex<HashMap<String, Vec<u8>>>,
    behaviour: watch::Sender<Behaviour>,
    /// `X-Siirto-Transfer` of every request, in order.
    requests: Mutex<Vec<String>>,
}

impl Default for SourceState {
    fn default() -> Self {
        SourceState {
            records: Mutex::default(),
            behaviour: behaviour_cell(),
            requests: Mutex::default(),
        }
    }
}

/// A source endpoint serving `GET /records/{sub}`.
#[derive(Clone)]
pub struct Source {
    pub addr: SocketAddr,
    state: Arc<SourceState>,
    endpoint: Arc<Endpoint>,
}

impl Source {
    pub fn base_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn insert(&self, subject: &str, document: Vec<u8>) {
        lock(&self.state.records).insert(subject.to_owned(), document);
    }

    pub fn set_behaviour(&self, b: Behaviour) {
        self.state.behaviour.send_replace(b);
    }

    /// Transfer ids of the requests received so far.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.state.requests).clone()
    }

    /// Stops the endpoint listening (see [`Destination::stop_listening`]).
    pub async fn stop_listening(&self) -> std::io::Result<()> {
        self.endpoint.stop_listening().await
    }

    /// Listens again on the same address (see [`Destination::listen_again`]).
    pub async fn listen_again(&self) -> std::io::Result<()> {
        self.endpoint.listen_again().await
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
    if let Behaviour::Body(b) = s.behaviour.borrow().clone() {
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
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
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
    let endpoint = Arc::new(Endpoint {
        addr,
        tls,
        source: source.clone(),
        destination: destination.clone(),
        shutdown,
        listening: tokio::sync::Mutex::new(Listening::Closed(None)),
    });
    let serving = endpoint.serve(listener);
    // Only this function has seen the mutex so far: it is free.
    if let Ok(mut l) = endpoint.listening.try_lock() {
        *l = serving;
    }
    Ok((
        Source {
            addr,
            state: source,
            endpoint: endpoint.clone(),
        },
        Destination {
            addr,
            state: destination,
            endpoint,
        },
    ))
}

/// The listening socket shared by an endpoint's two halves, which a test may close (connections
/// are then refused) and open again on the same address.
struct Endpoint {
    addr: SocketAddr,
    tls: Arc<ServerConfig>,
    source: Arc<SourceState>,
    destination: Arc<DestinationState>,
    /// The testbed's shutdown: ends serving whatever the state.
    shutdown: Shutdown,
    listening: tokio::sync::Mutex<Listening>,
}

enum Listening {
    Serving {
        /// Sending (not dropping) stops this listener only.
        stop: oneshot::Sender<()>,
        task: tokio::task::JoinHandle<()>,
    },
    /// Not listening; the socket bound to the address (not listening, so connections are
    /// refused) keeps the port ours until we listen again.
    Closed(Option<TcpSocket>),
    /// Accepting connections and resetting each at once (TCP RST, before any TLS), until
    /// stopped; the task hands the listener back.
    Resetting {
        stop: oneshot::Sender<()>,
        task: tokio::task::JoinHandle<TcpListener>,
    },
}

/// Backlog of a listener opened again.
const BACKLOG: u32 = 1024;

impl Endpoint {
    fn serve(&self, listener: TcpListener) -> Listening {
        let (trigger, signal) = Shutdown::new();
        let (stop, stopped) = oneshot::channel::<()>();
        let mut testbed = self.shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = testbed.wait() => {}
                Ok(()) = stopped => {}
            }
            trigger.trigger();
        });
        let (s, d) = (self.source.clone(), self.destination.clone());
        let task = tokio::spawn(serve_tls(
            listener,
            self.tls.clone(),
            ServerLimits {
                // The one client is the gateway (or a benchmark), from one address.
                admission: AdmissionLimits::global_only(1024),
                ..ServerLimits::default()
            },
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
            signal,
        ));
        Listening::Serving { stop, task }
    }

    fn socket(&self) -> std::io::Result<TcpSocket> {
        let socket = if self.addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(self.addr)?;
        Ok(socket)
    }

    async fn stop_listening(&self) -> std::io::Result<()> {
        let mut listening = self.listening.lock().await;
        if let Listening::Serving { stop, task } =
            std::mem::replace(&mut *listening, Listening::Closed(None))
        {
            let _ = stop.send(());
            // The listener is closed when the accept loop ends; in-flight requests finish.
            let _ = task.await;
            // Keep the port: bind it again at once, without listening. Another socket may
            // take it in the moment between; retry briefly before giving up.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            loop {
                match self.socket() {
                    Ok(socket) => {
                        *listening = Listening::Closed(Some(socket));
                        break;
                    }
                    Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        }
        Ok(())
    }

    /// Stops serving and resets every new connection until [`Endpoint::listen_again`].
    async fn reset_connections(&self, resets: Arc<AtomicUsize>) -> std::io::Result<()> {
        self.stop_listening().await?;
        let mut listening = self.listening.lock().await;
        let socket = match std::mem::replace(&mut *listening, Listening::Closed(None)) {
            Listening::Closed(Some(s)) => s,
            _ => self.socket()?,
        };
        let listener = socket.listen(BACKLOG)?;
        let (stop, mut stopped) = oneshot::channel::<()>();
        let mut testbed = self.shutdown.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        if let Ok((tcp, _)) = accepted {
                            // Linger zero: closing sends RST instead of FIN.
                            let _ = tcp.set_zero_linger();
                            drop(tcp);
                            resets.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    _ = &mut stopped => break,
                    () = testbed.wait() => break,
                }
            }
            listener
        });
        *listening = Listening::Resetting { stop, task };
        Ok(())
    }

    async fn listen_again(&self) -> std::io::Result<()> {
        let mut listening = self.listening.lock().await;
        if matches!(&*listening, Listening::Resetting { .. })
            && let Listening::Resetting { stop, task } =
                std::mem::replace(&mut *listening, Listening::Closed(None))
        {
            let _ = stop.send(());
            let listener = task.await.map_err(std::io::Error::other)?;
            *listening = self.serve(listener);
            return Ok(());
        }
        if let Listening::Closed(socket) = &mut *listening {
            let socket = match socket.take() {
                Some(s) => s,
                None => self.socket()?,
            };
            let listener = socket.listen(BACKLOG)?;
            *listening = self.serve(listener);
        }
        Ok(())
    }
}

/// One `POST /records` the destination received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub idempotency_key: String,
    pub content_type: String,
    pub body: Vec<u8>,
    /// The answer given: 200 stored, 409 duplicate, or a misbehaviour's status.
    pub status: u16,
    /// When the request's body had been read.
    pub received_at: std::time::Instant,
}

struct DestinationState {
    behaviour: watch::Sender<Behaviour>,
    requests: Mutex<Vec<Received>>,
    stored: Mutex<HashMap<String, Vec<u8>>>,
    /// Requests being answered now, and the most there ever were at once.
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    resets: Arc<AtomicUsize>,
}

impl Default for DestinationState {
    fn default() -> Self {
        DestinationState {
            behaviour: behaviour_cell(),
            requests: Mutex::default(),
            stored: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            resets: Arc::new(AtomicUsize::new(0)),
        }
    }
}

/// Counts a request in flight for as long as it lives.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(s: &'a DestinationState) -> Self {
        let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        s.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(&s.in_flight)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A destination endpoint accepting `POST /records`.
#[derive(Clone)]
pub struct Destination {
    pub addr: SocketAddr,
    state: Arc<DestinationState>,
    endpoint: Arc<Endpoint>,
}

/// Largest record the reference destination accepts.
const DESTINATION_MAX_BODY: usize = 32 * 1024 * 1024;

impl Destination {
    pub fn base_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn set_behaviour(&self, b: Behaviour) {
        self.state.behaviour.send_replace(b);
    }

    /// `POST /records` requests being answered right now.
    pub fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::SeqCst)
    }

    /// The most `POST /records` requests that were ever being answered at once.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// Stops listening: new connections to the endpoint (both halves share its address) are
    /// refused and idle ones closed, until [`Destination::listen_again`]; requests in flight
    /// are answered first. The port stays reserved by a bound socket that does not listen.
    pub async fn stop_listening(&self) -> std::io::Result<()> {
        self.endpoint.stop_listening().await
    }

    /// Listens again on the same address after [`Destination::stop_listening`] or
    /// [`Destination::reset_connections`].
    pub async fn listen_again(&self) -> std::io::Result<()> {
        self.endpoint.listen_again().await
    }

    /// Resets every new connection (TCP RST as soon as it is accepted, before TLS) until
    /// [`Destination::listen_again`]; requests in flight are answered first. Counts the resets
    /// ([`Destination::resets`]).
    pub async fn reset_connections(&self) -> std::io::Result<()> {
        self.endpoint
            .reset_connections(self.state.resets.clone())
            .await
    }

    /// Connections reset by [`Destination::reset_connections`].
    pub fn resets(&self) -> usize {
        self.state.resets.load(Ordering::SeqCst)
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<Received> {
        lock(&self.state.requests).clone()
    }

    /// Documents stored, by idempotency key (each key at most once).
    pub fn stored(&self) -> HashMap<String, Vec<u8>> {
        lock(&self.state.stored).clone()
    }

    /// How many documents are stored (without copying them).
    pub fn stored_count(&self) -> usize {
        lock(&self.state.stored).len()
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
    let _in_flight = InFlight::enter(s);
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
        received_at: std::time::Instant::now(),
    };
    let mut delay = None;
    let mut hold = false;
    let answer = if let Some(r) = misbehave(&s.behaviour).await {
        r
    } else if key.is_empty() || !content_type.starts_with("application/xml") {
        reply(StatusCode::BAD_REQUEST, "")
    } else {
        let mut stored = lock(&s.stored);
        if let std::collections::hash_map::Entry::Vacant(e) = stored.entry(key) {
            e.insert(body);
            match s.behaviour.borrow().clone() {
                Behaviour::StoreThenStatus(status) => reply(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    "",
                ),
                Behaviour::StoreThenDelay(d) => {
                    delay = Some(d);
                    reply(StatusCode::OK, "")
                }
                Behaviour::StoreThenHold => {
                    hold = true;
                    reply(StatusCode::OK, "")
                }
                _ => reply(StatusCode::OK, ""),
            }
        } else {
            reply(StatusCode::CONFLICT, "")
        }
    };
    received.status = answer.status().as_u16();
    lock(&s.requests).push(received);
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    if hold {
        let mut changes = s.behaviour.subscribe();
        // The sender lives in the endpoint's state, which outlives this request.
        let _ = changes.wait_for(|b| *b != Behaviour::StoreThenHold).await;
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

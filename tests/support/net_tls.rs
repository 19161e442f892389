//! Test scaffolding for mutual TLS: a development PKI in a temporary directory, a small in-test
//! HTTPS server (tokio-rustls + hyper) that records what it saw, and waiting on conditions with
//! a deadline. Reusable from any integration test with
//! `#[path = "support/net_tls.rs"] mod net_tls;`.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper_util::rt::TokioIo;
use rustls_pki_types::CertificateDer;
use siirto_core::clock::{Clock, SeededRandom, SystemClock};
use siirto_devkit::pki::{DevPki, PkiOptions};
use siirto_gateway::config::Config;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A development PKI in a temporary directory (deleted on drop).
pub struct TestPki {
    pub dir: tempfile::TempDir,
    pub pki: DevPki,
    pub options: PkiOptions,
}

/// Generates the development PKI of `siirto pki init` into a fresh temporary directory.
pub fn dev_pki() -> TestPki {
    dev_pki_with(|_| {})
}

/// Like [`dev_pki`], with options adjusted first (ports, schemas...).
pub fn dev_pki_with(adjust: impl FnOnce(&mut PkiOptions)) -> TestPki {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = PkiOptions::new(SystemClock.now());
    adjust(&mut options);
    let pki = DevPki::generate(dir.path(), &options, &SeededRandom::new(0x5111_2710))
        .expect("generate dev PKI");
    TestPki { dir, pki, options }
}

impl TestPki {
    /// The generated `siirto.toml`, loaded with `overrides` as the environment.
    pub fn config(&self, overrides: &[(&str, String)]) -> Config {
        let text = std::fs::read_to_string(&self.pki.config).expect("read siirto.toml");
        let env = overrides.iter().map(|(k, v)| ((*k).to_owned(), v.clone()));
        match Config::from_toml(&text, &self.pki.config, env) {
            Ok(c) => c,
            Err(e) => panic!("config does not load:\n{e}"),
        }
    }

    /// Index of a participant in `[[participants]]` (for `SIIRTO__PARTICIPANTS__N__...`).
    pub fn index_of(&self, id: &str) -> usize {
        self.pki
            .participants
            .iter()
            .position(|p| p.id == id)
            .unwrap_or_else(|| panic!("no participant {id}"))
    }
}

/// What the test server saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    /// Path and query as received (still percent-encoded).
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The client's certificate chain, end-entity first (empty if none).
    pub peer: Vec<CertificateDer<'static>>,
}

/// What the test server answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
    pub content_type: Option<&'static str>,
    /// Send the body chunked, without a Content-Length.
    pub chunked: bool,
    /// Wait this long before answering.
    pub delay: Option<Duration>,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<Bytes>) -> Reply {
        Reply {
            status,
            body: body.into(),
            content_type: None,
            chunked: false,
            delay: None,
        }
    }

    pub fn xml(body: impl Into<Bytes>) -> Reply {
        Reply {
            content_type: Some("application/xml"),
            ..Reply::new(200, body)
        }
    }

    pub fn chunked(mut self) -> Reply {
        self.chunked = true;
        self
    }

    pub fn delayed(mut self, d: Duration) -> Reply {
        self.delay = Some(d);
        self
    }
}

/// A body sent in 1 KiB chunks with no length known in advance.
struct ChunkedBody(VecDeque<Bytes>);

impl Body for ChunkedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.get_mut().0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

/// A running in-test HTTPS server with mandatory client certificates.
pub struct TestServer {
    pub addr: SocketAddr,
    /// Every request seen, in order.
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Every failed TLS handshake, as rustls described it.
    pub handshake_errors: Arc<Mutex<Vec<String>>>,
    /// TCP connections accepted.
    pub connections: Arc<Mutex<usize>>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl TestServer {
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    pub fn connection_count(&self) -> usize {
        *self.connections.lock().expect("lock")
    }

    /// Waits (up to 5 s) for a handshake failure and returns its description.
    pub async fn handshake_error(&self) -> String {
        let errors = self.handshake_errors.clone();
        wait_for(Duration::from_secs(5), move || {
            errors.lock().expect("lock").first().cloned()
        })
        .await
        .expect("the server recorded no handshake failure")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Starts a server on `127.0.0.1:0` with `tls`, answering every request with `handler`.
pub async fn spawn_server(
    tls: Arc<rustls::ServerConfig>,
    handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let handshake_errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let connections: Arc<Mutex<usize>> = Arc::default();
    let handler: Handler = Arc::new(handler);
    let (tx, mut rx) = oneshot::channel();
    let (seen2, errors2, conns2) = (seen.clone(), handshake_errors.clone(), connections.clone());
    tokio::spawn(async move {
        loop {
            let (tcp, _) = tokio::select! {
                _ = &mut rx => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(_) => continue,
                },
            };
            *conns2.lock().expect("lock") += 1;
            let acceptor = acceptor.clone();
            let (seen, errors, handler) = (seen2.clone(), errors2.clone(), handler.clone());
            tokio::spawn(async move {
                let tls = match acceptor.accept(tcp).await {
                    Ok(t) => t,
                    Err(e) => {
                        errors.lock().expect("lock").push(e.to_string());
                        return;
                    }
                };
                let peer: Vec<CertificateDer<'static>> = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .map(<[_]>::to_vec)
                    .unwrap_or_default();
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (seen, handler, peer) = (seen.clone(), handler.clone(), peer.clone());
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|c| c.to_bytes())
                            .unwrap_or_default();
                        let s = Seen {
                            method: parts.method,
                            target: parts
                                .uri
                                .path_and_query()
                                .map(|p| p.as_str().to_owned())
                                .unwrap_or_default(),
                            headers: parts.headers,
                            body,
                            peer,
                        };
                        let reply = handler(&s);
                        seen.lock().expect("lock").push(s);
                        if let Some(d) = reply.delay {
                            tokio::time::sleep(d).await;
                        }
                        let mut builder = Response::builder()
                            .status(StatusCode::from_u16(reply.status).expect("status"));
                        if let Some(ct) = reply.content_type {
                            builder = builder.header(http::header::CONTENT_TYPE, ct);
                        }
                        let body = if reply.chunked {
                            ChunkedBody(
                                reply
                                    .body
                                    .chunks(1024)
                                    .map(Bytes::copy_from_slice)
                                    .collect(),
                            )
                            .boxed()
                        } else {
                            http_body_util::Full::new(reply.body).boxed()
                        };
                        Ok::<_, Infallible>(builder.body(body).expect("response"))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    TestServer {
        addr,
        seen,
        handshake_errors,
        connections,
        shutdown: Some(tx),
    }
}

/// A validity period for test certificates: from an hour ago to a day from now.
pub fn validity_now() -> (siirto_core::clock::Timestamp, siirto_core::clock::Timestamp) {
    let now = SystemClock.now();
    (
        now.saturating_sub(Duration::from_secs(3600)),
        now.saturating_add(Duration::from_secs(86_400)),
    )
}

/// Polls `check` until it yields a value or `limit` passes.
pub async fn wait_for<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A participant endpoint's TLS: its server certificate, clients verified against the dev CA.
pub fn participant_server_tls(pki: &DevPki, id: &str) -> Arc<rustls::ServerConfig> {
    let p = pki
        .participant(id)
        .unwrap_or_else(|| panic!("no participant {id}"));
    let server = p
        .server
        .as_ref()
        .unwrap_or_else(|| panic!("{id} has no endpoint"));
    siirto_gateway::tls::server_config_from_files(&server.cert, &server.key, &pki.ca.cert, &[])
        .expect("participant server config")
}

/// A server config presenting `cert`/`key`, with clients verified against `client_ca`.
pub fn server_tls(cert: &Path, key: &Path, client_ca: &Path) -> Arc<rustls::ServerConfig> {
    siirto_gateway::tls::server_config_from_files(cert, key, client_ca, &[]).expect("server config")
}

/// Whether an outside tool is on PATH. Missing tools skip loudly, or fail the test when
/// `SIIRTO_REQUIRE_TOOLS=1`.
pub fn tool_available(name: &str) -> bool {
    let found = std::process::Command::new(name)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok()
        || std::process::Command::new(name)
            .arg("version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok();
    if !found {
        if std::env::var("SIIRTO_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("{name} is required (SIIRTO_REQUIRE_TOOLS=1) but not installed");
        }
        eprintln!("SKIPPED: {name} is not installed; this check did not run");
    }
    found
}

//! Listeners: TLS (mandatory client certificates, configured by the caller) and plain HTTP, each
//! serving HTTP/1.1 with hyper, with limits on connections (per address and in all, with a
//! reserve for authenticated addresses: [`siirto_core::admission`]), handshake and header time, and
//! graceful shutdown (stop accepting, let in-flight requests finish, then close).
//!
//! Owns: the accept loops and connection lifecycle. It knows nothing of routes: a
//! per-connection handler is made from the [`ConnectionInfo`] by the caller (the gateway's
//! `http` module, or the reference peers in `siirto_devkit::peers`), and who is a known participant and
//! what to do with refusals is asked of the caller's [`Observer`].

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use rustls::ServerConfig;
use rustls_pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::refusals::Refusal;
use siirto_core::admission::{Admission, AdmissionLimits, Limit};

/// A response body: the gateway answers with complete, bounded bodies.
pub type Body = Full<Bytes>;

/// A boxed response future.
pub type ResponseFuture = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

/// What is known about a connection when it is accepted.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub remote: SocketAddr,
    /// The client's certificate chain, end-entity first (empty on plain listeners).
    pub certificates: Vec<CertificateDer<'static>>,
}

/// Bounds on what a client may do to a listener.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Connections in all and per address, and the reserve for authenticated addresses.
    pub admission: AdmissionLimits,
    pub handshake_timeout: Duration,
    pub header_read_timeout: Duration,
    /// The request head the handler accepts. Hyper reads heads up to [`HEAD_READ_SLACK`] bytes
    /// longer (and up to [`HEADER_FIELDS_READ`] fields), so that the handler answers an
    /// over-long head with its own body; only a head beyond that gets hyper's bare `431`.
    pub max_header_bytes: usize,
    /// How long in-flight requests may take to finish after shutdown begins.
    pub drain_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            admission: AdmissionLimits::default(),
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// How far past `max_header_bytes` hyper keeps reading a request head (see [`ServerLimits`]).
pub const HEAD_READ_SLACK: usize = 1024 * 1024;
/// Header fields hyper parses in one request head (see [`ServerLimits`]).
pub const HEADER_FIELDS_READ: usize = 1024;

/// A shutdown signal shared by listeners and workers: `true` once shutdown has begun.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// Starts a shutdown.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

impl Shutdown {
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger(tx), Shutdown(rx))
    }

    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once shutdown has begun.
    pub async fn wait(&mut self) {
        while !*self.0.borrow_and_update() {
            if self.0.changed().await.is_err() {
                // The trigger was dropped: treat as shutdown.
                return;
            }
        }
    }
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }
}

/// Why a listener closed a connection without serving it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// At accept, by the admission limits: no handshake was attempted.
    Limit(Limit),
    /// The TLS handshake failed.
    Handshake(Refusal),
    /// The TLS handshake did not finish within `handshake_timeout`.
    HandshakeTimeout,
}

impl Refused {
    /// The refusal as audited (`tls.handshake_refused` with its code as the outcome).
    pub fn refusal(&self) -> Refusal {
        match self {
            Refused::Limit(limit) => Refusal {
                code: limit.code(),
                detail: limit.describe().into(),
            },
            Refused::Handshake(refusal) => refusal.clone(),
            Refused::HandshakeTimeout => Refusal::timeout(),
        }
    }

    /// The `reason` of `siirto_connections_refused_total`: refusals by the listener's limits
    /// (admission and handshake time), not failed handshakes.
    pub fn connection_refusal(&self) -> Option<crate::metrics::ConnectionRefusal> {
        use crate::metrics::ConnectionRefusal;
        match self {
            Refused::Limit(limit) => Some(ConnectionRefusal::Limit(*limit)),
            Refused::HandshakeTimeout => Some(ConnectionRefusal::HandshakeTimeout),
            Refused::Handshake(_) => None,
        }
    }
}

/// What a listener asks of and tells its owner.
pub trait Observer: Send + Sync {
    /// A connection was closed without being served (for metrics and auditing).
    fn refused(&self, remote: SocketAddr, why: Refused);

    /// Whether the client of a connection whose handshake finished is a known participant:
    /// its address may then use the reserved connection slots for a while.
    fn is_known(&self, connection: &ConnectionInfo) -> bool;
}

/// Serves TLS connections until shutdown. `on_connection` turns a connection's info into its
/// request handler; `observer` hears of refused connections and says who is known.
pub async fn serve_tls<C, H>(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    limits: ServerLimits,
    on_connection: C,
    observer: Option<Arc<dyn Observer>>,
    shutdown: Shutdown,
) where
    C: Fn(ConnectionInfo) -> H + Send + Sync + 'static,
    H: Fn(Request<Incoming>) -> ResponseFuture + Send + Sync + 'static,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    serve(
        listener,
        limits,
        shutdown,
        Arc::new(on_connection),
        observer,
        move |tcp| {
            let acceptor = acceptor.clone();
            async move {
                let stream = acceptor.accept(tcp).await?;
                let certificates = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                    .unwrap_or_default();
                Ok((stream, certificates))
            }
        },
    )
    .await;
}

/// Serves plain HTTP connections until shutdown (the admin listener).
pub async fn serve_plain<C, H>(
    listener: TcpListener,
    limits: ServerLimits,
    on_connection: C,
    shutdown: Shutdown,
) where
    C: Fn(ConnectionInfo) -> H + Send + Sync + 'static,
    H: Fn(Request<Incoming>) -> ResponseFuture + Send + Sync + 'static,
{
    serve(
        listener,
        limits,
        shutdown,
        Arc::new(on_connection),
        None,
        |tcp| async move { Ok::<_, std::io::Error>((tcp, Vec::new())) },
    )
    .await;
}

/// A connection's place in the admission counts: a handshake in progress, then an established
/// connection; given back when dropped.
struct Slot {
    admission: Arc<Mutex<Admission>>,
    ip: IpAddr,
    established: bool,
}

fn lock(admission: &Mutex<Admission>) -> MutexGuard<'_, Admission> {
    // The counts stay consistent whatever panicked: each change is one call.
    admission.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

impl Slot {
    fn admit(admission: &Arc<Mutex<Admission>>, ip: IpAddr) -> Result<Slot, Limit> {
        lock(admission).admit(ip, now())?;
        Ok(Slot {
            admission: admission.clone(),
            ip,
            established: false,
        })
    }

    fn establish(&mut self, authenticated: bool) {
        lock(&self.admission).established(self.ip, authenticated, now());
        self.established = true;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut admission = lock(&self.admission);
        if self.established {
            admission.connection_closed(self.ip);
        } else {
            admission.handshake_ended(self.ip);
        }
    }
}

fn report(observer: Option<&Arc<dyn Observer>>, remote: SocketAddr, why: Refused) {
    if let Some(observer) = observer {
        observer.refused(remote, why);
    }
}

async fn serve<C, H, U, UF, S>(
    listener: TcpListener,
    limits: ServerLimits,
    mut shutdown: Shutdown,
    on_connection: Arc<C>,
    observer: Option<Arc<dyn Observer>>,
    upgrade: U,
) where
    C: Fn(ConnectionInfo) -> H + Send + Sync + 'static,
    H: Fn(Request<Incoming>) -> ResponseFuture + Send + Sync + 'static,
    U: Fn(tokio::net::TcpStream) -> UF + Send + Sync + 'static,
    UF: Future<Output = std::io::Result<(S, Vec<CertificateDer<'static>>)>> + Send + 'static,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let admission = Arc::new(Mutex::new(Admission::new(limits.admission)));
    let upgrade = Arc::new(upgrade);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = shutdown.wait() => break,
        };
        let (tcp, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off briefly rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let mut slot = match Slot::admit(&admission, remote.ip()) {
            Ok(slot) => slot,
            Err(limit) => {
                // Not logged one by one: under a flood that would be the flood. Counted and
                // (rate-limited) audited by the observer.
                tracing::debug!(%remote, reason = limit.label(), "connection refused");
                report(observer.as_ref(), remote, Refused::Limit(limit));
                drop(tcp);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let upgrade = upgrade.clone();
        let on_connection = on_connection.clone();
        let watcher = graceful.watcher();
        let observer = observer.clone();
        tokio::spawn(async move {
            let refused = |why| report(observer.as_ref(), remote, why);
            let upgraded = tokio::time::timeout(limits.handshake_timeout, upgrade(tcp)).await;
            let (stream, certificates) = match upgraded {
                Ok(Ok(x)) => x,
                Ok(Err(e)) => {
                    tracing::info!(%remote, error = %e, "handshake failed");
                    refused(Refused::Handshake(Refusal::of_tls_error(&e)));
                    return;
                }
                Err(_) => {
                    tracing::info!(%remote, "handshake timed out");
                    refused(Refused::HandshakeTimeout);
                    return;
                }
            };
            let info = ConnectionInfo {
                remote,
                certificates,
            };
            slot.establish(observer.as_ref().is_some_and(|o| o.is_known(&info)));
            let handler = Arc::new(on_connection(info));
            let service = service_fn(move |req| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handler(req).await) }
            });
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .max_buf_size(limits.max_header_bytes.saturating_add(HEAD_READ_SLACK))
                .max_headers(HEADER_FIELDS_READ)
                .keep_alive(true);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within the drain timeout");
    }
}

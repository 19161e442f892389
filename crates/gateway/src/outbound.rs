//! Calls to sources and destinations over mutual TLS (CONTRACT.md, "Source and destination
//! endpoints" and "Source protocols").
//!
//! Owns: one pooled HTTP/1.1 client per source or destination participant (keep-alive; TLS via
//! tokio-rustls with [`crate::tls::client_config`]: that participant's CA, the gateway's client
//! certificate, the endpoint host as the server name), connect and request timeouts, the
//! response size limit, and the mapping of answers and failures to [`CallError`]s that know
//! whether a retry can help. [`Outbound::fetch_record`] asks a source in its `protocol`, each
//! one a module behind [`SourceCall`]: [`siirto`] (`GET {base_url}/records/{sub}`), [`koski`]
//! (KOSKI luovutuspalvelu, JSON) and [`virta_soap`] (VIRTA's SOAP `OpiskelijanKaikkiTiedot`);
//! each builds its request and says what an answer means ([`Fetched`]). A `koski-omadata`
//! source ([`omadata`]) is asked on the person's consent at KOSKI: its metadata, code exchange
//! and resource fetch are [`Outbound::omadata_metadata`], [`Outbound::omadata_exchange`] and
//! [`Outbound::omadata_fetch`], through the same client, limits and classification.
//! [`Outbound::deliver`] is `POST {base_url}/records`.
//!
//! A participant with `xroad_service` is reached through the city's X-Road security server
//! (`[xroad]`): its base URL is `{security_server_url}/r1/{service}` (built by the config
//! loader), its client trusts `[xroad] server_ca`, and [`Outbound`]'s one call path adds the
//! X-Road request headers, reads the answer's X-Road headers into an [`XroadTrace`] for the
//! attempt's audit entry, and classifies an `X-Road-Error` answer before the protocol sees it
//! (X-Road Message Protocol for REST r1, §4.3 and §4.6).
//!
//! Every record a source answers with (a 200's body, on [`Outbound::fetch_record`] and
//! [`Outbound::omadata_fetch`]) is read within the gateway's [`RecordBudget`]
//! (`delivery.max_in_flight_bytes`, set with [`Outbound::with_budget`]): its `Content-Length`
//! (or, without one, `max_response_bytes` capped at the budget, shrunk to the real size once
//! read) is reserved before the body is read (the wait is not the source's: it does not count
//! towards `request_timeout`, and is bounded by what `delivery.lease` leaves), and the
//! reservation is attached to the returned [`Bytes`], so it is given back when the record's
//! last copy is dropped, whoever holds it.
//!
//! It must not decide *when* to retry (that is the delivery policy's, using
//! [`CallError::retryable`]), validate documents (the pipeline does, after the fetch), or put a
//! student identifier or a credential in any error or log line: the identifier appears only in
//! the request (in the path for `siirto`, in the body for `koski` and `virta-soap`).

mod koski;
pub mod omadata;
mod siirto;
mod virta_soap;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::budget::{RecordBudget, Reservation};
use crate::config::{Config, xroad_path};
use crate::tls::{TlsError, client_config, server_name};
use siirto_core::audit::witness::CosignatureVerifier;
use siirto_core::clock::{Random, SystemRandom, uuid_v4};
use siirto_core::formats::Format;
use siirto_core::identity::{Endpoint, Role};
use siirto_core::protocol::SourceProtocol;
use siirto_core::student_id::StudentId;
use siirto_xsd::Limits;

/// The header carrying the transfer id on a source fetch.
pub const TRANSFER_HEADER: &str = "x-siirto-transfer";
/// The header carrying the transfer id on a delivery.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
const USER_AGENT: &str = concat!("siirto/", env!("CARGO_PKG_VERSION"));
/// How much of an unneeded response body is read so the connection can be reused.
const DRAIN_LIMIT: usize = 64 * 1024;
/// The longest X-Road header value of an answer kept for the audit (a base64 SHA-512 is 88).
const XROAD_HEADER_MAX: usize = 128;

/// The X-Road side of one call through the security server (X-Road Message Protocol for REST
/// r1, §4.3), for the attempt's audit entry. Empty for a participant not on X-Road.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XroadTrace {
    /// `X-Road-Issue` to send: the transfer (or check) the call is for.
    pub issue: Option<String>,
    /// The fresh `X-Road-Id` sent with the request.
    pub sent_id: Option<String>,
    /// The answer's `X-Road-Id`, `X-Road-Request-Id`, `X-Road-Request-Hash`, `X-Road-Error`.
    pub id: Option<String>,
    pub request_id: Option<String>,
    pub request_hash: Option<String>,
    pub error: Option<String>,
}

impl XroadTrace {
    /// A trace for a call made for `issue` (a transfer or check id).
    pub fn for_issue(issue: &str) -> XroadTrace {
        XroadTrace {
            issue: Some(issue.to_owned()),
            ..XroadTrace::default()
        }
    }

    /// Adds what was learnt to an audit entry's details (`xroad_id`, `xroad_request_id`,
    /// `xroad_request_hash`, `xroad_error`); nothing for a call not made through X-Road.
    pub fn audit_into(&self, detail: &mut std::collections::BTreeMap<String, String>) {
        let Some(sent) = &self.sent_id else {
            return;
        };
        let id = self.id.as_ref().unwrap_or(sent);
        detail.insert("xroad_id".into(), id.clone());
        for (key, value) in [
            ("xroad_request_id", &self.request_id),
            ("xroad_request_hash", &self.request_hash),
            ("xroad_error", &self.error),
        ] {
            if let Some(v) = value {
                detail.insert(key.into(), v.clone());
            }
        }
    }

    /// Reads the answer's X-Road headers: printable ASCII only, at most
    /// [`XROAD_HEADER_MAX`] characters (anything else is left out).
    fn read_answer(&mut self, headers: &http::HeaderMap) {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| {
                    !v.is_empty()
                        && v.len() <= XROAD_HEADER_MAX
                        && v.bytes().all(|b| b.is_ascii_graphic())
                })
                .map(str::to_owned)
        };
        self.id = get("x-road-id");
        self.request_id = get("x-road-request-id");
        self.request_hash = get("x-road-request-hash");
        // An `X-Road-Error` is a flag first (§4.6): present but unreadable still marks the
        // answer as X-Road's own, classified as the security server's trouble.
        self.error = get("x-road-error").or_else(|| {
            headers
                .contains_key("x-road-error")
                .then(|| "unreadable".to_owned())
        });
    }
}

/// What an answer carrying `X-Road-Error` means (pure). §4.6: the error arose in X-Road, not at
/// the provider; its type starts with `Client` (the consumer's request is at fault: asking
/// again cannot help) or `Server` (a security server's trouble: try again later). A type of
/// neither kind is taken as the security server's trouble.
pub fn classify_xroad_error(
    participant: &str,
    role: Role,
    status: u16,
    error_type: &str,
) -> CallError {
    let participant = participant.to_owned();
    let detail = format!("X-Road error {error_type}");
    let client_fault = error_type == "Client" || error_type.starts_with("Client.");
    match (role, client_fault) {
        (Role::Destination, true) => CallError::DestinationRejected {
            participant,
            status,
        },
        (Role::Destination, false) => CallError::DestinationUnavailable {
            participant,
            status,
        },
        (_, true) => CallError::SourceRefused {
            participant,
            status,
            detail,
        },
        (_, false) => CallError::SourceUnavailable {
            participant,
            status,
            detail,
        },
    }
}

/// Which part of a call ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// TCP connect and TLS handshake (`delivery.connect_timeout`).
    Connect,
    /// Sending the request and reading the whole response (`delivery.request_timeout`).
    Request,
    /// Waiting for room in the record budget (`delivery.max_in_flight_bytes`) to read a
    /// record the source has started to send; the source has answered.
    Budget,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Connect => "connect",
            Phase::Request => "request",
            Phase::Budget => "room in delivery.max_in_flight_bytes",
        })
    }
}

/// Why a TLS handshake with a source or destination failed, as a stable code: the `reason` of
/// the warning logged, of the attempt's step and audit entry, and of
/// `siirto_outbound_tls_failures_total`. [`TlsFailure::of`] classifies any rustls error,
/// including those of verifiers that wrap the WebPKI one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsFailure {
    /// The peer's chain does not lead to the participant's `server_ca`.
    UnknownIssuer,
    /// The certificate does not name the host of the participant's `base_url`.
    NameMismatch,
    Expired,
    NotYetValid,
    Revoked,
    /// The certificate is not for a TLS server (key usage or extended key usage).
    BadKeyUsage,
    BadSignature,
    /// Any other fault of the certificate (encoding, extensions, algorithms, revocation status).
    BadCertificate,
    /// The peer refused the handshake with an alert (e.g. it does not accept the gateway's
    /// client certificate).
    PeerRefused,
    /// The peer broke the protocol or shares no version or cipher suite with the gateway.
    Protocol,
    Other,
}

impl TlsFailure {
    pub const ALL: [TlsFailure; 11] = [
        TlsFailure::UnknownIssuer,
        TlsFailure::NameMismatch,
        TlsFailure::Expired,
        TlsFailure::NotYetValid,
        TlsFailure::Revoked,
        TlsFailure::BadKeyUsage,
        TlsFailure::BadSignature,
        TlsFailure::BadCertificate,
        TlsFailure::PeerRefused,
        TlsFailure::Protocol,
        TlsFailure::Other,
    ];

    pub fn code(self) -> &'static str {
        match self {
            TlsFailure::UnknownIssuer => "unknown_issuer",
            TlsFailure::NameMismatch => "name_mismatch",
            TlsFailure::Expired => "expired",
            TlsFailure::NotYetValid => "not_yet_valid",
            TlsFailure::Revoked => "revoked",
            TlsFailure::BadKeyUsage => "bad_key_usage",
            TlsFailure::BadSignature => "bad_signature",
            TlsFailure::BadCertificate => "bad_certificate",
            TlsFailure::PeerRefused => "peer_refused",
            TlsFailure::Protocol => "protocol_error",
            TlsFailure::Other => "other",
        }
    }

    /// Classifies a rustls error (pure). Errors a wrapping verifier reports in its own words
    /// (`CertificateError::Other`, `Error::General`) are recognised by what they mention: a key
    /// usage, an expiry.
    pub fn of(e: &rustls::Error) -> TlsFailure {
        use rustls::CertificateError as C;
        let by_text = |text: String, otherwise: TlsFailure| {
            let text = text.to_ascii_lowercase();
            if ["key usage", "keyusage", "key_usage", "purpose"]
                .iter()
                .any(|k| text.contains(k))
            {
                TlsFailure::BadKeyUsage
            } else if text.contains("expired") {
                TlsFailure::Expired
            } else {
                otherwise
            }
        };
        match e {
            rustls::Error::InvalidCertificate(c) => match c {
                C::UnknownIssuer => TlsFailure::UnknownIssuer,
                C::NotValidForName | C::NotValidForNameContext { .. } => TlsFailure::NameMismatch,
                C::Expired | C::ExpiredContext { .. } => TlsFailure::Expired,
                C::NotValidYet | C::NotValidYetContext { .. } => TlsFailure::NotYetValid,
                C::Revoked => TlsFailure::Revoked,
                C::InvalidPurpose | C::InvalidPurposeContext { .. } => TlsFailure::BadKeyUsage,
                C::BadSignature => TlsFailure::BadSignature,
                C::Other(other) => by_text(other.to_string(), TlsFailure::BadCertificate),
                _ => TlsFailure::BadCertificate,
            },
            rustls::Error::NoCertificatesPresented => TlsFailure::BadCertificate,
            rustls::Error::AlertReceived(_) => TlsFailure::PeerRefused,
            rustls::Error::InappropriateMessage { .. }
            | rustls::Error::InappropriateHandshakeMessage { .. }
            | rustls::Error::InvalidMessage(_)
            | rustls::Error::PeerIncompatible(_)
            | rustls::Error::PeerMisbehaved(_)
            | rustls::Error::DecryptError
            | rustls::Error::PeerSentOversizedRecord => TlsFailure::Protocol,
            other => by_text(other.to_string(), TlsFailure::Other),
        }
    }
}

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// Why a call to a source or destination did not succeed. Never holds a student identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("\"{participant}\" is not a configured {role}")]
    NotConfigured {
        participant: String,
        role: &'static str,
    },
    #[error("source \"{participant}\" has no record for this student (404)")]
    SourceNotFound { participant: String },
    #[error("source \"{participant}\" answered {status}{}", suffix(detail))]
    SourceUnavailable {
        participant: String,
        status: u16,
        /// What the answer says, in words safe to log (error keys, a fault string).
        detail: String,
    },
    #[error(
        "source \"{participant}\" refused the request ({status}){}",
        suffix(detail)
    )]
    SourceRefused {
        participant: String,
        status: u16,
        /// What the answer says, in words safe to log (error keys, a fault string).
        detail: String,
    },
    #[error("source \"{participant}\" answered with a document that cannot be read: {summary}")]
    InvalidAnswer {
        participant: String,
        summary: String,
        /// The answer as received, for its hash in the audit trail.
        answer: Bytes,
    },
    #[error("\"{participant}\" sent a response larger than {limit} bytes")]
    ResponseTooLarge { participant: String, limit: usize },
    #[error("destination \"{participant}\" refused the record with {status}")]
    DestinationRejected { participant: String, status: u16 },
    #[error("destination \"{participant}\" answered {status}")]
    DestinationUnavailable { participant: String, status: u16 },
    #[error("\"{participant}\": no {phase} within {}ms", limit.as_millis())]
    Timeout {
        participant: String,
        phase: Phase,
        limit: Duration,
    },
    #[error("\"{participant}\": TLS failed ({reason}): {detail}")]
    Tls {
        participant: String,
        reason: TlsFailure,
        /// rustls' own words.
        detail: String,
    },
    #[error("\"{participant}\": cannot connect: {reason}")]
    Connect { participant: String, reason: String },
    #[error("\"{participant}\": the connection failed during the call: {reason}")]
    Connection { participant: String, reason: String },
    #[error("\"{participant}\": the request cannot be built: {reason}")]
    InvalidRequest { participant: String, reason: String },
}

impl CallError {
    /// A stable code for transfer reasons, audit entries and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            CallError::NotConfigured { .. } => "not_configured",
            CallError::SourceNotFound { .. } => "source_not_found",
            CallError::SourceUnavailable { .. } => "source_unavailable",
            CallError::SourceRefused { .. } => "source_refused",
            CallError::InvalidAnswer { .. } => "invalid_source_document",
            CallError::ResponseTooLarge { .. } => "response_too_large",
            CallError::DestinationRejected { .. } => "destination_rejected",
            CallError::DestinationUnavailable { .. } => "destination_unavailable",
            CallError::Timeout { .. } => "timeout",
            CallError::Tls { .. } => "tls",
            CallError::Connect { .. } => "connect_failed",
            CallError::Connection { .. } => "connection_failed",
            CallError::InvalidRequest { .. } => "invalid_request",
        }
    }

    /// Whether trying again later can succeed. Definite answers (404, a 4xx rejection, a
    /// response over the limit) and configuration errors are final; transport failures and
    /// 5xx are not. TLS failures count as retryable: a peer's expired or replaced certificate
    /// is typically fixed within the delivery window, and attempts stay bounded by
    /// `delivery.max_attempts` / `max_age`.
    pub fn retryable(&self) -> bool {
        match self {
            CallError::NotConfigured { .. }
            | CallError::SourceNotFound { .. }
            | CallError::SourceRefused { .. }
            | CallError::InvalidAnswer { .. }
            | CallError::ResponseTooLarge { .. }
            | CallError::DestinationRejected { .. }
            | CallError::InvalidRequest { .. } => false,
            CallError::SourceUnavailable { .. }
            | CallError::DestinationUnavailable { .. }
            | CallError::Timeout { .. }
            | CallError::Tls { .. }
            | CallError::Connect { .. }
            | CallError::Connection { .. } => true,
        }
    }

    /// Whether the participant answered, so that the failure says nothing about it being
    /// down: every final error, and a wait for the record budget that ran out (the source had
    /// begun its answer; the gateway was busy).
    pub fn peer_answered(&self) -> bool {
        !self.retryable()
            || matches!(
                self,
                CallError::Timeout {
                    phase: Phase::Budget,
                    ..
                }
            )
    }

    /// The participant called.
    pub fn participant(&self) -> &str {
        match self {
            CallError::NotConfigured { participant, .. }
            | CallError::SourceNotFound { participant }
            | CallError::SourceUnavailable { participant, .. }
            | CallError::SourceRefused { participant, .. }
            | CallError::InvalidAnswer { participant, .. }
            | CallError::ResponseTooLarge { participant, .. }
            | CallError::DestinationRejected { participant, .. }
            | CallError::DestinationUnavailable { participant, .. }
            | CallError::Timeout { participant, .. }
            | CallError::Tls { participant, .. }
            | CallError::Connect { participant, .. }
            | CallError::Connection { participant, .. }
            | CallError::InvalidRequest { participant, .. } => participant,
        }
    }

    /// What the peer's answer said, for a transfer's step: the source's own words where the
    /// protocol has them (KOSKI's error keys, a SOAP fault string), or what made the answer
    /// unreadable. Never a student identifier or a credential.
    pub fn answer_detail(&self) -> Option<String> {
        match self {
            CallError::SourceUnavailable { status, detail, .. }
            | CallError::SourceRefused { status, detail, .. } => Some(if detail.is_empty() {
                format!("answered {status}")
            } else {
                format!("answered {status}: {detail}")
            }),
            CallError::InvalidAnswer { summary, .. } => Some(summary.clone()),
            _ => None,
        }
    }

    /// Why the TLS handshake failed, for [`CallError::Tls`].
    pub fn tls_failure(&self) -> Option<TlsFailure> {
        match self {
            CallError::Tls { reason, .. } => Some(*reason),
            _ => None,
        }
    }

    /// The HTTP status the peer answered, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            CallError::SourceNotFound { .. } => Some(404),
            CallError::SourceUnavailable { status, .. }
            | CallError::SourceRefused { status, .. }
            | CallError::DestinationRejected { status, .. }
            | CallError::DestinationUnavailable { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A successful delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// The destination took the record (a 2xx status).
    Stored,
    /// The destination already had it (409 for this idempotency key); counts as delivered.
    AlreadyDelivered,
}

/// `": detail"`, or nothing for an empty detail.
fn suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

/// What a source's answer means, as its protocol reads it (pure; [`Fetched::into_result`]
/// names the participant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The record, as a document in the source's `format`, for the pipeline to validate.
    Found(Bytes),
    /// The source does not know the student (or has nothing of the asked kinds).
    NotFound,
    /// A permanent refusal: asking again cannot help.
    Refused { status: u16, detail: String },
    /// Try again later.
    Unavailable { status: u16, detail: String },
    /// An answer that cannot be read as the protocol's answer (malformed, a DTD, a body that is
    /// not the protocol's): `invalid_source_document`.
    Invalid { summary: String },
}

impl Fetched {
    /// The call's result; `answer` is the body received (kept with an unreadable answer).
    pub fn into_result(self, participant: &str, answer: &Bytes) -> Result<Bytes, CallError> {
        let participant = participant.to_owned();
        match self {
            Fetched::Found(body) => Ok(body),
            Fetched::NotFound => Err(CallError::SourceNotFound { participant }),
            Fetched::Refused { status, detail } => Err(CallError::SourceRefused {
                participant,
                status,
                detail,
            }),
            Fetched::Unavailable { status, detail } => Err(CallError::SourceUnavailable {
                participant,
                status,
                detail,
            }),
            Fetched::Invalid { summary } => Err(CallError::InvalidAnswer {
                participant,
                summary,
                answer: answer.clone(),
            }),
        }
    }
}

/// The part of an answer a [`SourceCall`] classifies.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    pub status: StatusCode,
    /// The whole body of a 200 (within `delivery.max_response_bytes`); of any other status
    /// at most its first 64 KiB, with `truncated` set when there was more.
    pub body: &'a Bytes,
    pub truncated: bool,
}

/// One way of asking a source for a student's record: a `protocol` of CONTRACT.md. Pure: it
/// builds the request and reads the answer; [`Outbound`] sends, times and bounds the call.
pub trait SourceCall: Send + Sync {
    /// The request for `subject`'s record from the source at `base_url`.
    fn request(
        &self,
        base_url: &str,
        subject: &StudentId,
        transfer_id: &str,
    ) -> Result<Request<Full<Bytes>>, RequestError>;

    /// What the answer means. `subject` is the student asked about, so that words quoted from
    /// the answer can be cleaned of it.
    fn classify(&self, answer: Answer<'_>, subject: &StudentId) -> Fetched;
}

/// Why a request could not be built (its text never holds the student id or a credential).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RequestError(pub &'static str);

/// The [`SourceCall`] of a participant's `protocol`.
fn source_call(protocol: &SourceProtocol, xml_limits: Limits) -> Arc<dyn SourceCall> {
    match protocol {
        SourceProtocol::Siirto => Arc::new(siirto::Siirto),
        SourceProtocol::Koski(call) => Arc::new(koski::Koski::new(call)),
        SourceProtocol::VirtaSoap(caller) => {
            Arc::new(virta_soap::VirtaSoap::new(caller.clone(), xml_limits))
        }
        SourceProtocol::KoskiOmadata(call) => Arc::new(omadata::Omadata { call: call.clone() }),
    }
}

/// A request with the headers every call carries (`User-Agent`) and these.
fn http_request(
    method: Method,
    uri: &str,
    headers: &[(&'static str, &str)],
    body: Bytes,
) -> Result<Request<Full<Bytes>>, RequestError> {
    let uri: Uri = uri
        .parse()
        .map_err(|_| RequestError("the URL is not valid (the path is not shown)"))?;
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::USER_AGENT, USER_AGENT);
    for (name, value) in headers {
        let value = HeaderValue::from_str(value)
            .map_err(|_| RequestError("a header value is not valid (not shown)"))?;
        builder = builder.header(*name, value);
    }
    builder
        .body(Full::new(body))
        .map_err(|_| RequestError("the request could not be assembled"))
}

/// How a response status maps, for a delivery (pure).
fn classify_delivery(participant: &str, status: StatusCode) -> Result<Delivered, CallError> {
    let code = status.as_u16();
    if status.is_success() {
        Ok(Delivered::Stored)
    } else if code == 409 {
        Ok(Delivered::AlreadyDelivered)
    } else if status.is_client_error() {
        Err(CallError::DestinationRejected {
            participant: participant.to_owned(),
            status: code,
        })
    } else {
        // 5xx, and the 1xx/3xx a destination has no business sending: try again later.
        Err(CallError::DestinationUnavailable {
            participant: participant.to_owned(),
            status: code,
        })
    }
}

/// Every byte but RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`).
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one path segment: everything but RFC 3986 unreserved characters.
pub fn encode_path_segment(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, PATH_SEGMENT).to_string()
}

// ---------------------------------------------------------------------------------------------
// Connector: TCP + TLS to one participant's endpoint.

/// Why a connection could not be made (the connector's own error, found again in hyper's).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect timed out")]
    Timeout,
    #[error("{0}")]
    Tcp(std::io::Error),
    #[error("{0}")]
    Tls(rustls::Error),
}

/// Connects to one fixed host with one TLS configuration (also used by the dev kit's mTLS
/// client, `siirto_devkit::client`).
#[derive(Clone)]
pub struct TlsConnector {
    tls: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
    host: String,
    port: u16,
    timeout: Duration,
    /// Connect to the host and port of each request's URI (checking the server certificate
    /// for that host) instead of the fixed ones: a KOSKI OmaData source has its authorization
    /// server and its resource endpoint on hosts of their own.
    follow_uri: bool,
}

impl TlsConnector {
    pub fn new(
        tls: Arc<rustls::ClientConfig>,
        server_name: ServerName<'static>,
        host: String,
        port: u16,
        timeout: Duration,
    ) -> Self {
        TlsConnector {
            tls: tokio_rustls::TlsConnector::from(tls),
            server_name,
            host,
            port,
            timeout,
            follow_uri: false,
        }
    }
}

/// A TLS connection as hyper wants it.
pub struct TlsConnection(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncRead for TlsConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

impl Connection for TlsConnection {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl tower_service::Service<Uri> for TlsConnector {
    type Response = TokioIo<TlsConnection>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    /// Connects to the configured endpoint; every request URI of this client is built from the
    /// same `base_url`, so `_uri` names the same host and port.
    fn call(&mut self, uri: Uri) -> Self::Future {
        let mut this = self.clone();
        Box::pin(async move {
            if this.follow_uri {
                let host = uri
                    .host()
                    .unwrap_or_default()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned();
                this.server_name = ServerName::try_from(host.clone()).map_err(|_| {
                    ConnectError::Tcp(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "the URL's host is not a DNS name or IP address",
                    ))
                })?;
                this.port = uri.port_u16().unwrap_or(443);
                this.host = host;
            }
            let connect = async {
                let tcp = TcpStream::connect((this.host.as_str(), this.port))
                    .await
                    .map_err(ConnectError::Tcp)?;
                // Small request/response exchanges: do not wait for Nagle.
                tcp.set_nodelay(true).map_err(ConnectError::Tcp)?;
                let tls = this
                    .tls
                    .connect(this.server_name.clone(), tcp)
                    .await
                    .map_err(|e| match rustls_error_in(&e) {
                        Some(r) => ConnectError::Tls(r.clone()),
                        None => ConnectError::Tcp(e),
                    })?;
                Ok(TokioIo::new(TlsConnection(tls)))
            };
            tokio::time::timeout(this.timeout, connect)
                .await
                .map_err(|_| ConnectError::Timeout)?
        })
    }
}

/// The rustls error somewhere in an error's chain (io::Error hides its inner error from
/// `source()`, so look inside those too).
fn rustls_error_in<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(r) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(r);
        }
        current = err.source();
    }
    None
}

fn connect_error_in<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a ConnectError> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(c) = err.downcast_ref::<ConnectError>() {
            return Some(c);
        }
        current = err.source();
    }
    None
}

/// The messages of an error chain, joined (hyper's own Display says little).
fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut current = e.source();
    while let Some(err) = current {
        let text = err.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        current = err.source();
    }
    parts.join(": ")
}

// ---------------------------------------------------------------------------------------------
// The client set

struct Peer {
    client: Client<TlsConnector, Full<Bytes>>,
    base_url: String,
    roles: Vec<Role>,
    connect_timeout: Duration,
    /// How it is asked for a record, when it is a source.
    protocol: Arc<dyn SourceCall>,
    /// The OmaData requests, for a `koski-omadata` source.
    omadata: Option<Arc<omadata::Omadata>>,
    /// `X-Road-Client` (Siirto's subsystem, §4.3-encoded) for a participant on X-Road.
    xroad_client: Option<String>,
}

/// Pooled mTLS clients for every source and destination. Cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    peers: Arc<HashMap<String, Peer>>,
    /// `[[audit.witnesses]]`, by witness name.
    witnesses: Arc<HashMap<String, Peer>>,
    request_timeout: Duration,
    max_response_bytes: usize,
    /// For each attempt's `X-Road-Id`.
    random: Arc<dyn Random>,
    /// The budget every record fetched from a source is read within (none: unbounded).
    budget: Option<RecordBudget>,
    /// The longest wait for the budget: what `delivery.lease` leaves after the connect and
    /// request timeouts, so that a call still ends within its lease.
    budget_wait: Duration,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<&String> = self.peers.keys().collect();
        ids.sort();
        f.debug_struct("Outbound")
            .field("peers", &ids)
            .field("request_timeout", &self.request_timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("budget", &self.budget)
            .finish()
    }
}

enum Failure {
    Call(CallError),
    TooLarge,
}

impl Outbound {
    /// Builds a client for every participant with an endpoint (reading each participant's CA
    /// and the gateway's client certificate). Opens no connection: those are made, and then
    /// kept alive, by the calls.
    pub fn new(cfg: &Config) -> Result<Outbound, TlsError> {
        let delivery = &cfg.delivery;
        let mut peers = HashMap::new();
        let witness_endpoints = cfg.audit.witnesses.iter().filter_map(|w| {
            let name = CosignatureVerifier::from_verifier_key(&w.key).ok()?;
            let endpoint = Endpoint {
                base_url: w.url.clone(),
                host: w.host.clone(),
                port: w.port,
                server_ca: w.server_ca.clone(),
                format: Format::SiirtoV1,
                protocol: SourceProtocol::Siirto,
            };
            Some((name.name().to_owned(), Vec::new(), endpoint))
        });
        let participant_endpoints = cfg.directory.iter().filter_map(|p| {
            let endpoint = p.endpoint.clone()?;
            Some((p.id.clone(), p.roles.clone(), endpoint))
        });
        let mut witnesses = HashMap::new();
        for (id, roles, endpoint) in participant_endpoints.chain(witness_endpoints) {
            let is_witness = roles.is_empty();
            let endpoint = &endpoint;
            let connector = TlsConnector {
                tls: tokio_rustls::TlsConnector::from(client_config(cfg, endpoint)?),
                server_name: server_name(endpoint)?,
                host: endpoint.host.clone(),
                port: endpoint.port,
                timeout: delivery.connect_timeout,
                follow_uri: matches!(endpoint.protocol, SourceProtocol::KoskiOmadata(_)),
            };
            let client = Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .pool_idle_timeout(Duration::from_secs(90))
                .pool_max_idle_per_host(delivery.per_destination_concurrency.max(1))
                .build(connector);
            let peer = Peer {
                client,
                base_url: endpoint.base_url.clone(),
                roles,
                connect_timeout: delivery.connect_timeout,
                protocol: source_call(&endpoint.protocol, cfg.limits.xml),
                omadata: match &endpoint.protocol {
                    SourceProtocol::KoskiOmadata(call) => {
                        Some(Arc::new(omadata::Omadata { call: call.clone() }))
                    }
                    _ => None,
                },
                xroad_client: match (&cfg.xroad.security_server, cfg.xroad.services.get(&id)) {
                    (Some(server), Some(_)) if !is_witness => Some(xroad_path(&server.client)),
                    _ => None,
                },
            };
            if is_witness {
                witnesses.insert(id, peer);
            } else {
                peers.insert(id, peer);
            }
        }
        Ok(Outbound {
            peers: Arc::new(peers),
            witnesses: Arc::new(witnesses),
            request_timeout: delivery.request_timeout,
            max_response_bytes: delivery.max_response_bytes,
            random: Arc::new(SystemRandom::new()),
            budget: None,
            budget_wait: delivery
                .lease
                .saturating_sub(delivery.connect_timeout + delivery.request_timeout),
        })
    }

    /// The same clients, with `random` giving each X-Road call's `X-Road-Id`.
    pub fn with_random(self, random: Arc<dyn Random>) -> Outbound {
        Outbound { random, ..self }
    }

    /// The same clients, with every record fetched from a source read within `budget`.
    pub fn with_budget(self, budget: RecordBudget) -> Outbound {
        Outbound {
            budget: Some(budget),
            ..self
        }
    }

    /// The budget records are read within, when one is set.
    pub fn budget(&self) -> Option<&RecordBudget> {
        self.budget.as_ref()
    }

    /// The longest wait for room in the budget before a call: what `delivery.lease` leaves
    /// after `connect_timeout + request_timeout`, so that the call still ends within its lease.
    pub fn budget_wait(&self) -> Duration {
        self.budget_wait
    }

    fn peer(&self, id: &str, role: Role) -> Result<&Peer, CallError> {
        self.peers
            .get(id)
            .filter(|p| p.roles.contains(&role))
            .ok_or_else(|| CallError::NotConfigured {
                participant: id.to_owned(),
                role: role.as_str(),
            })
    }

    /// Asks `source` for `subject`'s record in the source's `protocol` ([`SourceCall`]): the
    /// request it builds, the answer it classifies. A 200's body is read whole, within
    /// `delivery.max_response_bytes` ([`CallError::ResponseTooLarge`] beyond); any other
    /// status's at most its first 64 KiB (an error answer says what it must in less).
    pub async fn fetch_record(
        &self,
        source: &str,
        subject: &StudentId,
        transfer_id: &str,
    ) -> Result<Bytes, CallError> {
        self.fetch_record_traced(source, subject, &mut XroadTrace::for_issue(transfer_id))
            .await
    }

    /// [`Outbound::fetch_record`] for the transfer or check `trace.issue`, with what X-Road
    /// said about the call left in `trace` (for a source on X-Road).
    pub async fn fetch_record_traced(
        &self,
        source: &str,
        subject: &StudentId,
        trace: &mut XroadTrace,
    ) -> Result<Bytes, CallError> {
        let transfer_id = trace.issue.clone().unwrap_or_default();
        let transfer_id = transfer_id.as_str();
        let peer = self.peer(source, Role::Source)?;
        let request = peer
            .protocol
            .request(&peer.base_url, subject, transfer_id)
            .map_err(|e| CallError::InvalidRequest {
                participant: source.to_owned(),
                reason: e.0.to_owned(),
            })?;
        self.source_answer(source, peer, request, subject, trace)
            .await
    }

    /// Sends a source's request and classifies its answer with the source's protocol: a 200's
    /// body read whole within `delivery.max_response_bytes` and the record budget, any other
    /// status's first 64 KiB. The record returned (or the unreadable answer of
    /// [`CallError::InvalidAnswer`]) holds the body's reservation until its last copy is
    /// dropped.
    async fn source_answer(
        &self,
        source: &str,
        peer: &Peer,
        request: Request<Full<Bytes>>,
        subject: &StudentId,
        trace: &mut XroadTrace,
    ) -> Result<Bytes, CallError> {
        let limit = self.max_response_bytes;
        let protocol = peer.protocol.clone();
        let call = (source, peer, Role::Source);
        let handle = |status: StatusCode, body: Incoming, mut reservation: Option<Reservation>| async move {
            let (body, truncated) = if status == StatusCode::OK {
                // `call_reserving` has refused a Content-Length over the limit already.
                let length = hyper::body::Body::size_hint(&body)
                    .exact()
                    .and_then(|n| usize::try_from(n).ok());
                let body = read_limited(body, limit, length.unwrap_or(0), source).await?;
                if let Some(r) = &mut reservation {
                    r.shrink(body.len());
                }
                (body, false)
            } else {
                read_prefix(body, DRAIN_LIMIT.min(limit), source).await?
            };
            let answer = Answer {
                status,
                body: &body,
                truncated,
            };
            let attach = |bytes: Bytes| match reservation {
                Some(r) => r.attach(bytes),
                None => bytes,
            };
            // The reservation (the size of the whole answer) goes with what is returned: the
            // record is the body, a part of it, or (VIRTA, OmaData) a document cut from it.
            match protocol
                .classify(answer, subject)
                .into_result(source, &body)
            {
                Ok(record) => Ok(attach(record)),
                Err(CallError::InvalidAnswer {
                    participant,
                    summary,
                    answer,
                }) => Err(Failure::Call(CallError::InvalidAnswer {
                    participant,
                    summary,
                    answer: attach(answer),
                })),
                Err(e) => Err(Failure::Call(e)),
            }
        };
        self.call_reserving(call, request, trace, true, handle)
            .await
    }

    /// The OmaData requests of `source`, when it is a `koski-omadata` source.
    fn omadata_peer(&self, source: &str) -> Result<(&Peer, Arc<omadata::Omadata>), CallError> {
        let peer = self.peer(source, Role::Source)?;
        let omadata = peer
            .omadata
            .clone()
            .ok_or_else(|| CallError::NotConfigured {
                participant: source.to_owned(),
                role: "koski-omadata source",
            })?;
        Ok((peer, omadata))
    }

    /// Reads and checks the authorization server's RFC 8414 metadata
    /// ([`siirto_core::omadata::Metadata::parse`]). Anything but a usable 200 is
    /// `source_unavailable` (5xx, transport) or `source_refused`.
    pub async fn omadata_metadata(
        &self,
        source: &str,
    ) -> Result<siirto_core::omadata::Metadata, CallError> {
        let (peer, omadata) = self.omadata_peer(source)?;
        let request = omadata
            .metadata_request()
            .map_err(|e| invalid_request(source, e))?;
        let issuer = omadata.call.issuer.clone();
        let call = (source, peer, Role::Source);
        let trace = &mut XroadTrace::default();
        self.call(call, request, trace, |status, body| async move {
            let (body, _) = read_prefix(body, DRAIN_LIMIT, source).await?;
            let fetched = if status == StatusCode::OK {
                match siirto_core::omadata::Metadata::parse(&body, &issuer) {
                    Ok(m) => return Ok(m),
                    Err(e) => Fetched::Refused {
                        status: 200,
                        detail: format!("authorization server metadata: {e}"),
                    },
                }
            } else if status.is_server_error() {
                Fetched::Unavailable {
                    status: status.as_u16(),
                    detail: "authorization server metadata".into(),
                }
            } else {
                Fetched::Refused {
                    status: status.as_u16(),
                    detail: "authorization server metadata".into(),
                }
            };
            Err(Failure::Call(
                fetched.into_result(source, &body).err().unwrap_or_else(|| {
                    CallError::SourceUnavailable {
                        participant: source.to_owned(),
                        status: status.as_u16(),
                        detail: String::new(),
                    }
                }),
            ))
        })
        .await
    }

    /// Exchanges an authorization code at the token endpoint, authenticated by the gateway's
    /// client certificate (RFC 8705 `tls_client_auth`), with the PKCE verifier.
    pub async fn omadata_exchange(
        &self,
        source: &str,
        token_endpoint: &str,
        code: &siirto_core::omadata::Secret,
        redirect_uri: &str,
        verifier: &siirto_core::omadata::Secret,
    ) -> Result<siirto_core::omadata::Secret, CallError> {
        let (peer, omadata) = self.omadata_peer(source)?;
        let request = omadata
            .token_request(token_endpoint, code, redirect_uri, verifier)
            .map_err(|e| invalid_request(source, e))?;
        let call = (source, peer, Role::Source);
        let trace = &mut XroadTrace::default();
        self.call(call, request, trace, |status, body| async move {
            let (body, _) = read_prefix(body, DRAIN_LIMIT, source).await?;
            omadata::classify_token(status, &body).map_err(|fetched| {
                Failure::Call(fetched.into_result(source, &body).err().unwrap_or_else(|| {
                    CallError::SourceUnavailable {
                        participant: source.to_owned(),
                        status: status.as_u16(),
                        detail: String::new(),
                    }
                }))
            })
        })
        .await
    }

    /// Fetches the person's record from the resource endpoint with the access token; the
    /// answer is bounded and classified as [`Outbound::fetch_record`]'s.
    pub async fn omadata_fetch(
        &self,
        source: &str,
        subject: &StudentId,
        token: &siirto_core::omadata::Secret,
    ) -> Result<Bytes, CallError> {
        let (peer, omadata) = self.omadata_peer(source)?;
        let request = omadata
            .resource_request(token)
            .map_err(|e| invalid_request(source, e))?;
        let trace = &mut XroadTrace::default();
        self.source_answer(source, peer, request, subject, trace)
            .await
    }

    /// `POST {base_url}/records` with `Idempotency-Key` and `Content-Type: application/xml`.
    /// 2xx → [`Delivered::Stored`], 409 → [`Delivered::AlreadyDelivered`], other 4xx →
    /// [`CallError::DestinationRejected`] (final), 5xx and transport failures → retryable.
    pub async fn deliver(
        &self,
        destination: &str,
        transfer_id: &str,
        body: Bytes,
    ) -> Result<Delivered, CallError> {
        let trace = &mut XroadTrace::for_issue(transfer_id);
        self.deliver_traced(destination, body, trace).await
    }

    /// [`Outbound::deliver`] for the transfer `trace.issue`, with what X-Road said about the
    /// call left in `trace` (for a destination on X-Road).
    pub async fn deliver_traced(
        &self,
        destination: &str,
        body: Bytes,
        trace: &mut XroadTrace,
    ) -> Result<Delivered, CallError> {
        let transfer_id = trace.issue.clone().unwrap_or_default();
        let peer = self.peer(destination, Role::Destination)?;
        let uri = format!("{}/records", peer.base_url);
        let request = build_request(destination, &uri, &transfer_id, body)?;
        let call = (destination, peer, Role::Destination);
        self.call(call, request, trace, |status, response| async move {
            let delivered = classify_delivery(destination, status).map_err(Failure::Call);
            // Read (a bounded amount of) the answer so the connection can be reused.
            let _ = read_limited(response, DRAIN_LIMIT, 0, destination).await;
            delivered
        })
        .await
    }

    /// `POST {url}/add-checkpoint` to the witness named `witness` (C2SP tlog-witness) with
    /// `body`: the answer's status, `Content-Type` and (at most 64 KiB of) body text.
    pub async fn add_checkpoint(
        &self,
        witness: &str,
        body: String,
    ) -> Result<(u16, String, String), CallError> {
        let peer = self
            .witnesses
            .get(witness)
            .ok_or_else(|| CallError::NotConfigured {
                participant: witness.to_owned(),
                role: "witness",
            })?;
        let uri = format!("{}/add-checkpoint", peer.base_url);
        let request = http_request(
            Method::POST,
            &uri,
            &[("content-type", "text/plain; charset=utf-8")],
            Bytes::from(body),
        )
        .map_err(|e| CallError::InvalidRequest {
            participant: witness.to_owned(),
            reason: e.0.to_owned(),
        })?;
        self.call_answer(witness, peer, request).await
    }

    async fn call_answer(
        &self,
        participant: &str,
        peer: &Peer,
        request: Request<Full<Bytes>>,
    ) -> Result<(u16, String, String), CallError> {
        let response = tokio::time::timeout(self.request_timeout, async {
            let response = peer
                .client
                .request(request)
                .await
                .map_err(|e| map_client_error(participant, peer, &e))?;
            let (parts, body) = response.into_parts();
            let content_type = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let (bytes, _) =
                read_prefix(body, DRAIN_LIMIT, participant)
                    .await
                    .map_err(|f| match f {
                        Failure::Call(e) => e,
                        Failure::TooLarge => CallError::ResponseTooLarge {
                            participant: participant.to_owned(),
                            limit: DRAIN_LIMIT,
                        },
                    })?;
            Ok::<_, CallError>((
                parts.status.as_u16(),
                content_type,
                String::from_utf8_lossy(&bytes).into_owned(),
            ))
        })
        .await;
        response.unwrap_or_else(|_| {
            Err(CallError::Timeout {
                participant: participant.to_owned(),
                phase: Phase::Request,
                limit: self.request_timeout,
            })
        })
    }

    /// Sends `request` to `participant` (called in `role`), hands status and body to
    /// `handle`, all within `request_timeout`. Through X-Road (a peer with `xroad_client`) the
    /// request carries `X-Road-Client`, a fresh `X-Road-Id` and `X-Road-Issue` (§4.3; never
    /// `X-Road-UserId`: the student is not the user), the answer's X-Road headers go to
    /// `trace`, and an answer with `X-Road-Error` is classified by its type (§4.6) without
    /// reaching `handle`.
    async fn call<'a, T, F, Fut>(
        &self,
        call: (&'a str, &Peer, Role),
        request: Request<Full<Bytes>>,
        trace: &mut XroadTrace,
        handle: F,
    ) -> Result<T, CallError>
    where
        F: FnOnce(StatusCode, Incoming) -> Fut,
        Fut: Future<Output = Result<T, Failure>> + 'a,
    {
        self.call_reserving(call, request, trace, false, |status, body, _| {
            handle(status, body)
        })
        .await
    }

    /// [`Outbound::call`], and with `reserve` a 200's body is given a [`Reservation`] of the
    /// record budget before `handle` reads it: its `Content-Length`, or without one
    /// `max_response_bytes` capped at the budget. The wait for it does not count towards
    /// `request_timeout` (the peer has answered; the gateway is busy): it is bounded on its
    /// own by what `delivery.lease` leaves after the call's timeouts, so the call still ends
    /// within its lease, and running out of it is [`Phase::Budget`].
    async fn call_reserving<'a, T, F, Fut>(
        &self,
        (participant, peer, role): (&'a str, &Peer, Role),
        mut request: Request<Full<Bytes>>,
        trace: &mut XroadTrace,
        reserve: bool,
        handle: F,
    ) -> Result<T, CallError>
    where
        F: FnOnce(StatusCode, Incoming, Option<Reservation>) -> Fut,
        Fut: Future<Output = Result<T, Failure>> + 'a,
    {
        let limit = self.max_response_bytes;
        if let Some(client) = &peer.xroad_client {
            let id = uuid_v4(self.random.as_ref());
            let mut headers = vec![("x-road-client", client.as_str()), ("x-road-id", &id)];
            if let Some(issue) = &trace.issue {
                headers.push(("x-road-issue", issue));
            }
            for (name, value) in headers {
                let value =
                    HeaderValue::from_str(value).map_err(|_| CallError::InvalidRequest {
                        participant: participant.to_owned(),
                        reason: format!("the {name} header is not valid"),
                    })?;
                request.headers_mut().insert(name, value);
            }
            trace.sent_id = Some(id);
        }
        let on_xroad = peer.xroad_client.is_some();
        let started = tokio::time::Instant::now();
        let head = async {
            let response = peer
                .client
                .request(request)
                .await
                .map_err(|e| Failure::Call(map_client_error(participant, peer, &e)))?;
            let (parts, body) = response.into_parts();
            if on_xroad {
                trace.read_answer(&parts.headers);
                if let Some(error_type) = &trace.error {
                    // Read (a bounded amount of) the error body so the connection can be reused.
                    let _ = read_prefix(body, DRAIN_LIMIT, participant).await;
                    return Err(Failure::Call(classify_xroad_error(
                        participant,
                        role,
                        parts.status.as_u16(),
                        error_type,
                    )));
                }
            }
            if let Some(length) = parts
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                && parts.status == StatusCode::OK
                && length > limit as u64
            {
                return Err(Failure::TooLarge);
            }
            Ok((parts.status, body))
        };
        let (status, body) = self.within(participant, started, head).await?;
        let head_took = started.elapsed();
        let reservation = match &self.budget {
            Some(budget) if reserve && status == StatusCode::OK => {
                // Exact when the answer has a Content-Length (hyper reads no more than that).
                let wanted = hyper::body::Body::size_hint(&body)
                    .exact()
                    .and_then(|n| usize::try_from(n).ok())
                    .unwrap_or_else(|| limit.min(budget.total()));
                let wait = self.budget_wait;
                match tokio::time::timeout(wait, budget.reserve(wanted)).await {
                    Ok(r) => Some(r),
                    Err(_) => {
                        return Err(CallError::Timeout {
                            participant: participant.to_owned(),
                            phase: Phase::Budget,
                            limit: wait,
                        });
                    }
                }
            }
            _ => None,
        };
        // The body's time: what is left of `request_timeout`, the budget's wait not counted.
        let resumed = tokio::time::Instant::now()
            .checked_sub(head_took)
            .unwrap_or(started);
        self.within(participant, resumed, handle(status, body, reservation))
            .await
    }

    /// Runs `part` of a call begun at `started` until `request_timeout` after it.
    async fn within<T>(
        &self,
        participant: &str,
        started: tokio::time::Instant,
        part: impl Future<Output = Result<T, Failure>>,
    ) -> Result<T, CallError> {
        match tokio::time::timeout_at(started + self.request_timeout, part).await {
            Err(_) => Err(CallError::Timeout {
                participant: participant.to_owned(),
                phase: Phase::Request,
                limit: self.request_timeout,
            }),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(Failure::Call(e))) => Err(e),
            Ok(Err(Failure::TooLarge)) => Err(CallError::ResponseTooLarge {
                participant: participant.to_owned(),
                limit: self.max_response_bytes,
            }),
        }
    }
}

fn invalid_request(participant: &str, e: RequestError) -> CallError {
    CallError::InvalidRequest {
        participant: participant.to_owned(),
        reason: e.0.to_owned(),
    }
}

/// The request of a delivery: `POST {base_url}/records`, the record as XML.
fn build_request(
    participant: &str,
    uri: &str,
    transfer_id: &str,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, CallError> {
    http_request(
        Method::POST,
        uri,
        &[
            (IDEMPOTENCY_HEADER, transfer_id),
            ("content-type", "application/xml"),
        ],
        body,
    )
    .map_err(|e| CallError::InvalidRequest {
        participant: participant.to_owned(),
        reason: e.0.to_owned(),
    })
}

fn map_client_error(
    participant: &str,
    peer: &Peer,
    e: &hyper_util::client::legacy::Error,
) -> CallError {
    let participant = participant.to_owned();
    if let Some(c) = connect_error_in(e) {
        return match c {
            ConnectError::Timeout => CallError::Timeout {
                participant,
                phase: Phase::Connect,
                limit: peer.connect_timeout,
            },
            ConnectError::Tls(e) => tls_error(participant, e),
            ConnectError::Tcp(io) => CallError::Connect {
                participant,
                reason: io.to_string(),
            },
        };
    }
    // A TLS alert after the handshake (e.g. the server refusing our client certificate in
    // TLS 1.3) shows up while the request is sent or the response read.
    if let Some(r) = rustls_error_in(e) {
        return tls_error(participant, r);
    }
    CallError::Connection {
        participant,
        reason: chain_text(e),
    }
}

fn tls_error(participant: String, e: &rustls::Error) -> CallError {
    CallError::Tls {
        participant,
        reason: TlsFailure::of(e),
        detail: e.to_string(),
    }
}

/// Reads a body, failing as soon as it grows past `limit`, into a buffer of `capacity` bytes
/// (the `Content-Length` when known: one allocation of the record's size) that grows as needed.
async fn read_limited(
    mut body: Incoming,
    limit: usize,
    capacity: usize,
    participant: &str,
) -> Result<Bytes, Failure> {
    let mut buf = BytesMut::with_capacity(capacity.min(limit));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            Failure::Call(CallError::Connection {
                participant: participant.to_owned(),
                reason: chain_text(&e),
            })
        })?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(Failure::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Reads at most `limit` bytes of a body; `true` when there was more (the rest is not read,
/// and the connection is then not reused).
async fn read_prefix(
    mut body: Incoming,
    limit: usize,
    participant: &str,
) -> Result<(Bytes, bool), Failure> {
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            Failure::Call(CallError::Connection {
                participant: participant.to_owned(),
                reason: chain_text(&e),
            })
        })?;
        if let Ok(data) = frame.into_data() {
            let room = limit - buf.len();
            if data.len() > room {
                buf.extend_from_slice(&data[..room]);
                return Ok((buf.freeze(), true));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok((buf.freeze(), false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn xroad_errors_are_classified_by_type() {
        let src = |t: &str, status| classify_xroad_error("koski", Role::Source, status, t);
        let dst = |t: &str, status| classify_xroad_error("espoo", Role::Destination, status, t);
        let e = src("Server.ServerProxy.NetworkError", 500);
        assert_eq!((e.code(), e.retryable()), ("source_unavailable", true));
        assert_eq!(
            e.answer_detail().as_deref(),
            Some("answered 500: X-Road error Server.ServerProxy.NetworkError")
        );
        let e = src("Client.BadRequest", 400);
        assert_eq!((e.code(), e.retryable()), ("source_refused", false));
        let e = dst("Server.ClientProxy.OutdatedGlobalConf", 500);
        assert_eq!((e.code(), e.retryable()), ("destination_unavailable", true));
        let e = dst("Client.BadRequest", 400);
        assert_eq!((e.code(), e.retryable()), ("destination_rejected", false));
        // Neither kind: the security server's trouble, tried again.
        assert!(src("Clientele", 500).retryable());
    }

    #[test]
    fn xroad_trace_goes_to_the_audit_only_for_calls_through_xroad() {
        let mut detail = std::collections::BTreeMap::new();
        XroadTrace::for_issue("t1").audit_into(&mut detail);
        assert!(detail.is_empty());
        let mut headers = http::HeaderMap::new();
        headers.insert("x-road-request-id", HeaderValue::from_static("r-1"));
        headers.insert("x-road-request-hash", HeaderValue::from_static("aGFzaA=="));
        headers.insert(
            "x-road-error",
            HeaderValue::from_static("bad value with spaces"),
        );
        let mut trace = XroadTrace::for_issue("t1");
        trace.sent_id = Some("sent".into());
        trace.read_answer(&headers);
        trace.audit_into(&mut detail);
        assert_eq!(detail.get("xroad_id").map(String::as_str), Some("sent"));
        assert_eq!(
            detail.get("xroad_request_id").map(String::as_str),
            Some("r-1")
        );
        assert_eq!(
            detail.get("xroad_request_hash").map(String::as_str),
            Some("aGFzaA==")
        );
        assert_eq!(
            detail.get("xroad_error").map(String::as_str),
            Some("unreadable"),
            "not a printable token, but an X-Road error all the same"
        );
    }

    #[test]
    fn delivery_statuses_map_to_outcomes() {
        let ok = |s: u16| classify_delivery("espoo", StatusCode::from_u16(s).expect("status"));
        assert_eq!(ok(200), Ok(Delivered::Stored));
        assert_eq!(ok(201), Ok(Delivered::Stored));
        assert_eq!(ok(202), Ok(Delivered::Stored));
        assert_eq!(ok(409), Ok(Delivered::AlreadyDelivered));
        for s in [400, 403, 413, 422] {
            let e = ok(s).expect_err("rejected");
            assert_eq!(e.code(), "destination_rejected");
            assert!(!e.retryable());
        }
        for s in [500, 502, 503, 504, 302] {
            let e = ok(s).expect_err("unavailable");
            assert_eq!(e.code(), "destination_unavailable");
            assert!(e.retryable());
        }
    }

    #[test]
    fn transport_errors_are_retryable_and_final_ones_are_not() {
        let p = || "x".to_owned();
        let retryable = [
            CallError::Timeout {
                participant: p(),
                phase: Phase::Connect,
                limit: Duration::from_secs(1),
            },
            CallError::Tls {
                participant: p(),
                reason: TlsFailure::Other,
                detail: String::new(),
            },
            CallError::Connect {
                participant: p(),
                reason: String::new(),
            },
            CallError::Connection {
                participant: p(),
                reason: String::new(),
            },
        ];
        assert!(retryable.iter().all(CallError::retryable));
        let codes: Vec<&str> = retryable.iter().map(CallError::code).collect();
        assert_eq!(
            codes,
            ["timeout", "tls", "connect_failed", "connection_failed"]
        );
        let final_ = [
            CallError::ResponseTooLarge {
                participant: p(),
                limit: 1,
            },
            CallError::NotConfigured {
                participant: p(),
                role: "source",
            },
        ];
        assert!(final_.iter().all(|e| !e.retryable()));
    }

    /// A key usage error as a verifier wrapping the WebPKI one might report it.
    #[derive(Debug, thiserror::Error)]
    #[error("the certificate's keyUsage does not allow digitalSignature")]
    struct KeyUsageRefused;

    #[test]
    fn tls_failures_are_classified_by_cause() {
        use rustls::{AlertDescription, CertificateError as C, Error as E, OtherError};
        use std::sync::Arc;
        let table: Vec<(E, &str)> = vec![
            (E::InvalidCertificate(C::UnknownIssuer), "unknown_issuer"),
            (E::InvalidCertificate(C::NotValidForName), "name_mismatch"),
            (
                E::InvalidCertificate(C::NotValidForNameContext {
                    expected: ServerName::try_from("espoo.example.fi").expect("name"),
                    presented: vec!["wrong.example.fi".into()],
                }),
                "name_mismatch",
            ),
            (E::InvalidCertificate(C::Expired), "expired"),
            (
                E::InvalidCertificate(C::ExpiredContext {
                    time: rustls_pki_types::UnixTime::since_unix_epoch(Duration::from_secs(20)),
                    not_after: rustls_pki_types::UnixTime::since_unix_epoch(Duration::from_secs(
                        10,
                    )),
                }),
                "expired",
            ),
            (E::InvalidCertificate(C::NotValidYet), "not_yet_valid"),
            (E::InvalidCertificate(C::Revoked), "revoked"),
            (E::InvalidCertificate(C::InvalidPurpose), "bad_key_usage"),
            (
                E::InvalidCertificate(C::Other(OtherError(Arc::new(KeyUsageRefused)))),
                "bad_key_usage",
            ),
            (
                E::General("server certificate key_usage lacks keyEncipherment".into()),
                "bad_key_usage",
            ),
            (E::InvalidCertificate(C::BadSignature), "bad_signature"),
            (E::InvalidCertificate(C::BadEncoding), "bad_certificate"),
            (
                E::InvalidCertificate(C::UnhandledCriticalExtension),
                "bad_certificate",
            ),
            (
                E::AlertReceived(AlertDescription::UnknownCA),
                "peer_refused",
            ),
            (E::DecryptError, "protocol_error"),
            (E::General("something else".into()), "other"),
        ];
        for (error, code) in table {
            assert_eq!(TlsFailure::of(&error).code(), code, "{error:?}");
        }
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(encode_path_segment("010203A123X"), "010203A123X");
        assert_eq!(encode_path_segment("010199+123X"), "010199%2B123X");
        assert_eq!(
            encode_path_segment("1.2.246.562.24.10000000008"),
            "1.2.246.562.24.10000000008"
        );
        assert_eq!(encode_path_segment("a/b?c#d e"), "a%2Fb%3Fc%23d%20e");
        assert_eq!(encode_path_segment("ä"), "%C3%A4");
    }

    proptest! {
        #[test]
        fn encoded_segments_stay_one_segment_and_decode_back(s in ".{0,40}") {
            let e = encode_path_segment(&s);
            prop_assert!(!e.contains('/') && !e.contains('?') && !e.contains('#'));
            // Decoding gives the original bytes back.
            let out: Vec<u8> = percent_encoding::percent_decode_str(&e).collect();
            prop_assert_eq!(out, s.as_bytes().to_vec());
        }
    }
}

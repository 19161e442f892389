//! A small mutual-TLS HTTP/1.1 client: how an e-service, a destination city or an operator
//! talks to the gateway. Used by `siirto demo`, the benchmarks and the integration tests.
//!
//! Owns: [`MtlsClient`] (one pooled client per base URL and client certificate) and
//! [`Answer`]. No retries and no interpretation: it returns what the server said.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_pki_types::ServerName;

use siirto_gateway::outbound::TlsConnector;
use siirto_gateway::tls::TlsError;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("base url `{url}`: {reason}")]
    BaseUrl { url: String, reason: String },
    #[error("TLS configuration: {0}")]
    Tls(#[from] TlsError),
    #[error("request failed: {0}")]
    Request(String),
    #[error("request timed out")]
    Timeout,
}

/// What the server answered.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The `error` code of a JSON error answer, if any.
    pub fn error_code(&self) -> Option<String> {
        self.json()
            .get("error")
            .and_then(|e| e.as_str())
            .map(str::to_owned)
    }
}

/// A pooled client for one server, presenting one client certificate (or none).
#[derive(Clone)]
pub struct MtlsClient {
    client: Client<TlsConnector, Full<Bytes>>,
    base_url: String,
    timeout: Duration,
}

impl std::fmt::Debug for MtlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MtlsClient")
            .field("base_url", &self.base_url)
            .finish()
    }
}

impl MtlsClient {
    /// `base_url` is `https://host:port`; `server_ca` verifies the server; `identity` is the
    /// client certificate chain and key to present.
    pub fn new(
        base_url: &str,
        server_ca: &Path,
        identity: Option<(&Path, &Path)>,
    ) -> Result<MtlsClient, ClientError> {
        let (base, host, port) =
            siirto_gateway::config::parse_base_url(base_url).map_err(|e| ClientError::BaseUrl {
                url: base_url.to_owned(),
                reason: e.to_string(),
            })?;
        let tls = siirto_gateway::tls::client_config_from_files(server_ca, identity)?;
        let name = ServerName::try_from(host.clone()).map_err(|_| ClientError::BaseUrl {
            url: base_url.to_owned(),
            reason: "host is not a valid server name".into(),
        })?;
        let connector = TlsConnector::new(tls, name, host, port, Duration::from_secs(10));
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(64)
            .build(connector);
        Ok(MtlsClient {
            client,
            base_url: base,
            timeout: Duration::from_secs(30),
        })
    }

    /// Sends a request to `path` (starting with `/`).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Result<Answer, ClientError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base_url));
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let request = builder
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| ClientError::Request(e.to_string()))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| ClientError::Request(error_chain(&e)))?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| ClientError::Request(e.to_string()))?
                .to_bytes();
            Ok(Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout)?
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Result<Answer, ClientError> {
        self.send(Method::GET, path, headers, None).await
    }

    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Answer, ClientError> {
        let bytes = Bytes::from(body.to_string());
        self.send(
            Method::POST,
            path,
            &[("content-type", "application/json")],
            Some(bytes),
        )
        .await
    }

    /// `POST /v1/transfers` with an authorization.
    pub async fn submit(&self, authorization: &str) -> Result<Answer, ClientError> {
        self.post_json(
            "/v1/transfers",
            &serde_json::json!({ "authorization": authorization }),
        )
        .await
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

//! An in-test KOSKI OmaData peer: an OAuth 2.0 authorization server and resource server,
//! written from RFC 6749 (authorization code grant), RFC 7636 (PKCE, S256 only), RFC 8705
//! (mutual-TLS client authentication, `tls_client_auth` by subject DN), RFC 8414 (server
//! metadata), RFC 6750 (bearer tokens), the OAuth 2.0 Form Post Response Mode, and KOSKI's own
//! description (`../shared/corpus/koski/omadata_oauth2.md`). **It is not KOSKI**: it does what
//! those documents say a server must, and checks requests as strictly as they allow, so that a
//! client that passes it follows them. Test data only.
//!
//! Endpoints (one TLS listener; the client certificate is optional at the handshake, as a
//! browser presents none, and required by the token and resource endpoints):
//! - `GET /omadata-oauth2/.well-known/oauth-authorization-server`: the metadata (RFC 8414 §2).
//! - `GET /omadata-oauth2/authorize`: checks `client_id` and its registered `redirect_uri`
//!   (an error about either is shown to the browser, never redirected: RFC 6749 §4.1.2.1), then
//!   `response_type=code`, `scope` (known scopes, at most one `OPISKELUOIKEUDET_*`), `state`,
//!   `code_challenge` (43–128 characters) with `code_challenge_method=S256` (plain refused), and
//!   `response_mode=form_post`; the person (set with [`OmadataPeer::sign_in_as`]) consents or
//!   declines ([`OmadataPeer::set_consent`]); the answer is an HTML page whose form posts
//!   `code` and `state` (or `error` and `state`) to the `redirect_uri`.
//! - `POST /omadata-oauth2/token`: requires a client certificate whose subject is the
//!   registered client's (RFC 8705 §2.1.2), `application/x-www-form-urlencoded` with
//!   `grant_type=authorization_code`, `code`, `redirect_uri` (the one of the authorization
//!   request), `client_id` (the code's), `code_verifier` whose S256 is the challenge (RFC 7636
//!   §4.6). Codes live 10 minutes and are single-use (a second use is `invalid_grant`). Errors
//!   are RFC 6749 §5.2 JSON with status 400 (401 `invalid_client`).
//! - `POST /koski/api/omadata-oauth2/resource-server`: requires the client certificate and a
//!   valid bearer token (else 401 with `WWW-Authenticate: Bearer error="invalid_token"`, RFC
//!   6750 §3.1); answers the signed-in person's oppija document with the consented scope's
//!   parts and `tokenInfo`, or 404 when it holds nothing for the person.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use siirto_core::admission::AdmissionLimits;
use siirto_core::identity::{Directory, IdentityRule, Participant, identify, parse_subject};
use siirto_gateway::server::{ConnectionInfo, ResponseFuture, ServerLimits, Shutdown, serve_tls};

/// The issuer's path, as KOSKI's (`{oppijaBaseUrl}/omadata-oauth2`).
pub const ISSUER_PATH: &str = "/omadata-oauth2";
/// The resource endpoint's path, as KOSKI's.
pub const RESOURCE_PATH: &str = "/koski/api/omadata-oauth2/resource-server";
/// The scopes KOSKI's document lists.
pub const SCOPES: [&str; 9] = [
    "OPISKELUOIKEUDET_SUORITETUT_TUTKINNOT",
    "OPISKELUOIKEUDET_AKTIIVISET_JA_PAATTYNEET_OPINNOT",
    "OPISKELUOIKEUDET_KAIKKI_TIEDOT",
    "OPISKELUOIKEUDET_KAIKKI_TIEDOT_JA_VALINTATIEDOT",
    "HENKILOTIEDOT_HETU",
    "HENKILOTIEDOT_NIMI",
    "HENKILOTIEDOT_SYNTYMAAIKA",
    "HENKILOTIEDOT_OPPIJANUMERO",
    "HENKILOTIEDOT_KAIKKI_TIEDOT",
];
/// How long a code is valid (KOSKI: 10 minutes).
const CODE_LIFETIME_SECS: u64 = 600;
const MAX_BODY: usize = 64 * 1024;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A registered partner (client).
#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: String,
    pub redirect_uris: Vec<String>,
    /// The subject DN of its mTLS certificate (RFC 8705 `tls_client_auth_subject_dn`).
    pub subject_dn: String,
}

/// What the person does on the consent page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    Grant,
    /// Declines: `error=access_denied`.
    Decline,
}

/// How the token endpoint misbehaves.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TokenBehaviour {
    #[default]
    Normal,
    /// Every exchange answered with this RFC 6749 §5.2 error (status 400).
    Error(String),
}

struct Grant {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    scope: String,
    person: String,
    issued: std::time::Instant,
    used: bool,
}

struct Token {
    scope: String,
    person: String,
}

#[derive(Default)]
struct State {
    clients: Vec<Client>,
    /// Oppija documents by henkilötunnus.
    people: HashMap<String, Value>,
    signed_in: Option<String>,
    consent: Option<Consent>,
    codes: HashMap<String, Grant>,
    tokens: HashMap<String, Token>,
    token_behaviour: TokenBehaviour,
    /// 503s the resource endpoint answers before it serves again.
    resource_unavailable: u32,
    /// Every code exchange attempted, by code (successful or not).
    exchanges: BTreeMap<String, u32>,
    resource_calls: u32,
    /// Every `code_verifier` presented at the token endpoint.
    verifiers: Vec<String>,
    /// Requests refused for their shape, and why.
    refusals: Vec<String>,
    counter: u64,
}

/// The running peer.
#[derive(Clone)]
pub struct OmadataPeer {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

/// A TLS server configuration that asks for a client certificate from `client_ca` but admits
/// connections without one (the browser's), as KOSKI's oppija host must.
pub fn server_config(
    chain: &Path,
    key: &Path,
    client_ca: &Path,
) -> Result<Arc<ServerConfig>, siirto_gateway::tls::TlsError> {
    use siirto_gateway::tls::{
        TlsError, load_certificates, load_private_key, load_roots, provider,
    };
    let provider = provider();
    let roots = Arc::new(load_roots(client_ca)?);
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Verifier {
            path: client_ca.to_owned(),
            reason: e.to_string(),
        })?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Versions(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(load_certificates(chain)?, load_private_key(key)?)
        .map_err(|e| TlsError::CertifiedKey {
            cert: chain.to_owned(),
            key: key.to_owned(),
            reason: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

impl OmadataPeer {
    pub fn spawn(
        listener: TcpListener,
        tls: Arc<ServerConfig>,
        clients: Vec<Client>,
        shutdown: Shutdown,
    ) -> std::io::Result<OmadataPeer> {
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            clients,
            consent: Some(Consent::Grant),
            ..State::default()
        }));
        let peer = OmadataPeer { addr, state };
        let p = peer.clone();
        tokio::spawn(serve_tls(
            listener,
            tls,
            ServerLimits {
                admission: AdmissionLimits::global_only(1024),
                ..ServerLimits::default()
            },
            move |conn: ConnectionInfo| {
                let p = p.clone();
                let certificates = Arc::new(conn.certificates);
                move |req: Request<hyper::body::Incoming>| -> ResponseFuture {
                    let (p, certificates) = (p.clone(), certificates.clone());
                    Box::pin(async move { p.answer(req, &certificates).await })
                }
            },
            None,
            shutdown,
        ));
        Ok(peer)
    }

    /// `https://127.0.0.1:PORT/omadata-oauth2`.
    pub fn issuer(&self) -> String {
        format!("https://{}{ISSUER_PATH}", self.addr)
    }

    pub fn resource_url(&self) -> String {
        format!("https://{}{RESOURCE_PATH}", self.addr)
    }

    /// Holds a person's oppija document under its `henkilö.hetu`.
    pub fn insert(&self, oppija: Value) {
        if let Some(hetu) = oppija["henkilö"]["hetu"].as_str() {
            lock(&self.state).people.insert(hetu.to_owned(), oppija);
        }
    }

    /// Who authenticates strongly at the consent page (a henkilötunnus).
    pub fn sign_in_as(&self, hetu: &str) {
        lock(&self.state).signed_in = Some(hetu.to_owned());
    }

    pub fn set_consent(&self, consent: Consent) {
        lock(&self.state).consent = Some(consent);
    }

    pub fn set_token_behaviour(&self, b: TokenBehaviour) {
        lock(&self.state).token_behaviour = b;
    }

    /// The resource endpoint answers 503 this many times, then serves again.
    pub fn set_resource_unavailable(&self, times: u32) {
        lock(&self.state).resource_unavailable = times;
    }

    /// How many times each code was presented at the token endpoint.
    pub fn exchanges(&self) -> BTreeMap<String, u32> {
        lock(&self.state).exchanges.clone()
    }

    /// Every access token issued (for tests that look for them where they must not be).
    pub fn tokens(&self) -> Vec<String> {
        lock(&self.state).tokens.keys().cloned().collect()
    }

    /// Every `code_verifier` presented at the token endpoint.
    pub fn verifiers(&self) -> Vec<String> {
        lock(&self.state).verifiers.clone()
    }

    /// Every code issued.
    pub fn codes(&self) -> Vec<String> {
        lock(&self.state).codes.keys().cloned().collect()
    }

    pub fn resource_calls(&self) -> u32 {
        lock(&self.state).resource_calls
    }

    /// Requests refused for their shape, and why.
    pub fn refusals(&self) -> Vec<String> {
        lock(&self.state).refusals.clone()
    }

    fn fresh(&self, state: &mut State, prefix: &str) -> String {
        state.counter += 1;
        let mut bytes = [0u8; 24];
        let seed = ring::digest::digest(
            &ring::digest::SHA256,
            format!(
                "{prefix}{}{:?}",
                state.counter,
                std::time::SystemTime::now()
            )
            .as_bytes(),
        );
        bytes.copy_from_slice(&seed.as_ref()[..24]);
        format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    async fn answer(
        &self,
        req: Request<hyper::body::Incoming>,
        certificates: &[rustls_pki_types::CertificateDer<'static>],
    ) -> Response<Full<Bytes>> {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or_default().to_owned();
        let headers = req.headers().clone();
        let body = Limited::new(req.into_body(), MAX_BODY)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let well_known = format!("{ISSUER_PATH}{}", siirto_core::omadata::WELL_KNOWN);
        let authorize = format!("{ISSUER_PATH}/authorize");
        let token = format!("{ISSUER_PATH}/token");
        match (method, path.as_str()) {
            (Method::GET, p) if p == well_known => json_answer(200, &self.metadata()),
            (Method::GET, p) if p == authorize => self.authorize(&query),
            (Method::POST, p) if p == token => self.token(&headers, &body, certificates),
            (Method::POST, RESOURCE_PATH) => self.serve_resource(&headers, certificates),
            (_, _) => json_answer(404, &json!({"error": "not_found"})),
        }
    }

    fn metadata(&self) -> Value {
        let issuer = self.issuer();
        json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["form_post"],
            "grant_types_supported": ["authorization_code"],
            "token_endpoint_auth_methods_supported": ["tls_client_auth"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": SCOPES,
            "tls_client_certificate_bound_access_tokens": false,
        })
    }

    fn refuse(&self, why: String) {
        lock(&self.state).refusals.push(why);
    }

    fn authorize(&self, query: &str) -> Response<Full<Bytes>> {
        let mut params: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()).into_owned() {
            params.entry(k).or_default().push(v);
        }
        // RFC 6749 §3.1: parameters must not be repeated.
        if let Some((k, _)) = params.iter().find(|(_, v)| v.len() > 1) {
            let why = format!("parameter {k} repeated");
            self.refuse(why.clone());
            return html(400, &format!("<p>invalid_request: {}</p>", escape(&why)));
        }
        let get = |k: &str| params.get(k).and_then(|v| v.first()).map(String::as_str);
        let client_id = get("client_id").unwrap_or_default();
        let redirect_uri = get("redirect_uri").unwrap_or_default();
        let client = lock(&self.state)
            .clients
            .iter()
            .find(|c| c.client_id == client_id)
            .cloned();
        // RFC 6749 §4.1.2.1: a bad client or redirect URI is told to the person, not redirected.
        let Some(client) = client else {
            self.refuse(format!("unknown client_id {client_id:?}"));
            return html(400, "<p>invalid_client</p>");
        };
        if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
            self.refuse(format!("redirect_uri {redirect_uri:?} not registered"));
            return html(400, "<p>invalid redirect_uri</p>");
        }
        let state = get("state");
        let fail = |error: &str, why: String| {
            self.refuse(why);
            let mut fields = vec![("error", error.to_owned())];
            if let Some(s) = state {
                fields.push(("state", s.to_owned()));
            }
            form_post(redirect_uri, &fields)
        };
        if get("response_type") != Some("code") {
            return fail(
                "unsupported_response_type",
                "response_type is not code".into(),
            );
        }
        if get("response_mode") != Some("form_post") {
            return fail("invalid_request", "response_mode is not form_post".into());
        }
        let Some(state) = state.filter(|s| !s.is_empty()) else {
            return fail("invalid_request", "no state".into());
        };
        let scope = get("scope").unwrap_or_default();
        let scopes: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
        if scopes.is_empty() || scopes.iter().any(|s| !SCOPES.contains(s)) {
            return fail("invalid_scope", format!("scope {scope:?}"));
        }
        if scopes
            .iter()
            .filter(|s| s.starts_with("OPISKELUOIKEUDET_"))
            .count()
            > 1
        {
            return fail(
                "invalid_scope",
                "more than one OPISKELUOIKEUDET_ scope".into(),
            );
        }
        if get("code_challenge_method") != Some("S256") {
            return fail(
                "invalid_request",
                format!("code_challenge_method {:?}", get("code_challenge_method")),
            );
        }
        let challenge = get("code_challenge").unwrap_or_default();
        if !(43..=128).contains(&challenge.len())
            || !challenge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        {
            return fail(
                "invalid_request",
                "code_challenge is not 43-128 unreserved characters".into(),
            );
        }
        let mut s = lock(&self.state);
        let Some(person) = s.signed_in.clone() else {
            drop(s);
            return fail("access_denied", "nobody signed in".into());
        };
        if s.consent != Some(Consent::Grant) {
            drop(s);
            return form_post(
                redirect_uri,
                &[
                    ("error", "access_denied".into()),
                    ("state", state.to_owned()),
                ],
            );
        }
        let code = self.fresh(&mut s, "c-");
        s.codes.insert(
            code.clone(),
            Grant {
                client_id: client.client_id.clone(),
                redirect_uri: redirect_uri.to_owned(),
                challenge: challenge.to_owned(),
                scope: scopes.join(" "),
                person,
                issued: std::time::Instant::now(),
                used: false,
            },
        );
        drop(s);
        form_post(redirect_uri, &[("code", code), ("state", state.to_owned())])
    }

    /// The registered client whose subject DN the presented certificate has (RFC 8705 §2.1.2).
    fn client_of(
        &self,
        certificates: &[rustls_pki_types::CertificateDer<'static>],
    ) -> Option<Client> {
        let clients = lock(&self.state).clients.clone();
        clients.into_iter().find(|c| {
            let Ok(subject) = parse_subject(&c.subject_dn) else {
                return false;
            };
            let one = Directory::from_participants(vec![Participant {
                id: c.client_id.clone(),
                roles: Vec::new(),
                identity: IdentityRule::Subject(subject),
                endpoint: None,
                name: None,
                statutory: None,
                redirect_uris: Vec::new(),
            }]);
            identify(&one, certificates).is_ok()
        })
    }

    fn token(
        &self,
        headers: &hyper::HeaderMap,
        body: &Bytes,
        certificates: &[rustls_pki_types::CertificateDer<'static>],
    ) -> Response<Full<Bytes>> {
        let error = |status: u16, error: &str, why: String| {
            self.refuse(format!("token: {why}"));
            let mut r = json_answer(status, &json!({"error": error, "error_description": why}));
            r.headers_mut().insert(
                "cache-control",
                hyper::header::HeaderValue::from_static("no-store"),
            );
            r
        };
        let Some(client) = self.client_of(certificates) else {
            return error(
                401,
                "invalid_client",
                "no registered client certificate".into(),
            );
        };
        if !headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
        {
            return error(400, "invalid_request", "not a form".into());
        }
        let mut params: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in form_urlencoded::parse(body).into_owned() {
            params.entry(k).or_default().push(v);
        }
        if params.values().any(|v| v.len() > 1) {
            return error(400, "invalid_request", "a parameter repeated".into());
        }
        let get = |k: &str| {
            params
                .get(k)
                .and_then(|v| v.first())
                .cloned()
                .unwrap_or_default()
        };
        if get("grant_type") != "authorization_code" {
            return error(400, "unsupported_grant_type", get("grant_type"));
        }
        // RFC 8705 §2.1: a tls_client_auth client sends its client_id.
        if get("client_id") != client.client_id {
            return error(
                401,
                "invalid_client",
                "client_id is not the certificate's client".into(),
            );
        }
        let code = get("code");
        let mut s = lock(&self.state);
        *s.exchanges.entry(code.clone()).or_default() += 1;
        s.verifiers.push(get("code_verifier"));
        if let TokenBehaviour::Error(e) = s.token_behaviour.clone() {
            drop(s);
            return error(400, &e, "told to refuse".into());
        }
        let Some(grant) = s.codes.get_mut(&code) else {
            drop(s);
            return error(400, "invalid_grant", "unknown code".into());
        };
        if grant.used {
            drop(s);
            return error(400, "invalid_grant", "code already used".into());
        }
        grant.used = true;
        if grant.issued.elapsed().as_secs() >= CODE_LIFETIME_SECS {
            drop(s);
            return error(400, "invalid_grant", "code expired".into());
        }
        if grant.client_id != client.client_id {
            drop(s);
            return error(400, "invalid_grant", "code of another client".into());
        }
        if grant.redirect_uri != get("redirect_uri") {
            drop(s);
            return error(
                400,
                "invalid_grant",
                "redirect_uri differs from the authorization request's".into(),
            );
        }
        let verifier = get("code_verifier");
        let valid = (43..=128).contains(&verifier.len())
            && verifier
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        let computed = URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            verifier.as_bytes(),
        ));
        if !valid || computed != grant.challenge {
            drop(s);
            return error(
                400,
                "invalid_grant",
                "code_verifier does not match the challenge".into(),
            );
        }
        let (scope, person) = (grant.scope.clone(), grant.person.clone());
        let token = self.fresh(&mut s, "t-");
        s.tokens.insert(
            token.clone(),
            Token {
                scope: scope.clone(),
                person,
            },
        );
        drop(s);
        let mut r = json_answer(
            200,
            &json!({"access_token": token, "token_type": "Bearer", "expires_in": 600, "scope": scope}),
        );
        r.headers_mut().insert(
            "cache-control",
            hyper::header::HeaderValue::from_static("no-store"),
        );
        r
    }

    fn serve_resource(
        &self,
        headers: &hyper::HeaderMap,
        certificates: &[rustls_pki_types::CertificateDer<'static>],
    ) -> Response<Full<Bytes>> {
        let mut s = lock(&self.state);
        s.resource_calls += 1;
        drop(s);
        if self.client_of(certificates).is_none() {
            self.refuse("resource: no registered client certificate".into());
            return json_answer(401, &json!({"error": "invalid_client"}));
        }
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default()
            .to_owned();
        let mut s = lock(&self.state);
        if s.resource_unavailable > 0 {
            s.resource_unavailable -= 1;
            return json_answer(503, &json!({"error": "unavailable"}));
        }
        let Some(t) = s.tokens.get(&token) else {
            drop(s);
            self.refuse("resource: invalid token".into());
            let mut r = json_answer(401, &json!({"error": "invalid_token"}));
            r.headers_mut().insert(
                "www-authenticate",
                hyper::header::HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            return r;
        };
        let Some(mut oppija) = s.people.get(&t.person).cloned() else {
            return json_answer(404, &json!([{"key": "notFound.oppijaaEiLöydy"}]));
        };
        let scope = t.scope.clone();
        drop(s);
        let has = |name: &str| scope.split(' ').any(|s| s == name);
        if let Some(h) = oppija["henkilö"].as_object_mut() {
            let all = has("HENKILOTIEDOT_KAIKKI_TIEDOT");
            h.retain(|k, _| match k.as_str() {
                "hetu" => all || has("HENKILOTIEDOT_HETU"),
                "oid" => all || has("HENKILOTIEDOT_OPPIJANUMERO"),
                "syntymäaika" => all || has("HENKILOTIEDOT_SYNTYMAAIKA"),
                "etunimet" | "sukunimi" | "kutsumanimi" => all || has("HENKILOTIEDOT_NIMI"),
                _ => all,
            });
        }
        if !scope.split(' ').any(|s| s.starts_with("OPISKELUOIKEUDET_")) {
            oppija["opiskeluoikeudet"] = json!([]);
        }
        oppija["tokenInfo"] =
            json!({"scope": scope, "expirationTime": "2099-01-01T00:00:00+02:00"});
        json_answer(200, &oppija)
    }
}

fn json_answer(status: u16, v: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

fn html(status: u16, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(format!(
        "<!DOCTYPE html><html><body>{body}</body></html>"
    ))));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// OAuth 2.0 Form Post Response Mode §2: an HTML page that posts the fields to the redirect
/// URI by itself.
fn form_post(redirect_uri: &str, fields: &[(&str, String)]) -> Response<Full<Bytes>> {
    let inputs: String = fields
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\"/>",
                escape(k),
                escape(v)
            )
        })
        .collect();
    let mut r = html(
        200,
        &format!(
            "<form method=\"post\" action=\"{}\">{inputs}<noscript><button type=\"submit\">Continue</button></noscript></form><script>document.forms[0].submit()</script>",
            escape(redirect_uri)
        ),
    );
    r.headers_mut().insert(
        "cache-control",
        hyper::header::HeaderValue::from_static("no-store"),
    );
    r
}

/// What a browser posts from a form-post page: the form's `action` and its hidden fields
/// (for tests driving the flow as a browser would).
pub fn read_form_post(page: &str) -> Option<(String, Vec<(String, String)>)> {
    let unescape = |s: &str| {
        s.replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    };
    let attr = |tag: &str, name: &str| -> Option<String> {
        let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
        let end = tag[start..].find('"')? + start;
        Some(unescape(&tag[start..end]))
    };
    let form_start = page.find("<form")?;
    let form_tag_end = page[form_start..].find('>')? + form_start;
    let action = attr(&page[form_start..form_tag_end], "action")?;
    let mut fields = Vec::new();
    let mut rest = &page[form_tag_end..];
    while let Some(i) = rest.find("<input") {
        let end = rest[i..].find('>')? + i;
        let tag = &rest[i..end];
        fields.push((attr(tag, "name")?, attr(tag, "value")?));
        rest = &rest[end..];
    }
    Some((action, fields))
}

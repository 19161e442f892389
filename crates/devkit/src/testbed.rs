//! A whole Siirto installation on 127.0.0.1: a fresh development PKI, reference source and
//! destination endpoints for every participant that has one, and (optionally) a gateway in this
//! process. `siirto demo`, the benchmarks and the integration tests all start one.
//!
//! Owns: port allocation (every listener is bound on port 0 before the configuration naming it
//! is written), wiring the peers' TLS, and convenience for clients (an mTLS client per
//! participant, authorizations signed by the development issuer). Development material only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;

use crate::client::{ClientError, MtlsClient};
use crate::eservice::{self, AUTHORIZATION_TYP, Authorization, TRANSPARENCY_TYP};
use crate::omadata::OmadataPeer;
use crate::peers::{Destination, Source};
use crate::registers::{KoskiPeer, VirtaSoapPeer, WsdlTypes};
use crate::xroad::{Provider, SecurityServer};
use siirto_core::clock::{Clock, Random, SystemClock, SystemRandom, Timestamp, uuid_v4};
use siirto_core::config::SchemaPaths;
use siirto_core::lang::Lang;
use siirto_core::protocol::SourceProtocol;
use siirto_gateway::config::Config;
use siirto_gateway::start::{self, Listeners};
use siirto_gateway::state::{self, Gateway};

use crate::pki::{CertFiles, DevPki, Layout, PkiOptions};
use siirto_core::identity::{Directory, Role};
use siirto_gateway::server::{Shutdown, ShutdownTrigger};

#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("pki: {0}")]
    Pki(#[from] crate::pki::PkiError),
    #[error("config: {0}")]
    Config(#[from] siirto_gateway::config::ConfigError),
    #[error("tls: {0}")]
    Tls(#[from] siirto_gateway::tls::TlsError),
    #[error("gateway: {0}")]
    Start(#[from] state::StartError),
    #[error("client: {0}")]
    Client(#[from] ClientError),
    #[error("signing: {0}")]
    Sign(#[from] eservice::SignError),
    #[error("no participant `{0}` in the development directory")]
    UnknownParticipant(String),
    #[error("timed out waiting for {0}")]
    Timeout(String),
    #[error("register peer: {0}")]
    Register(#[from] crate::registers::RegisterError),
    #[error(
        "participant `{0}` is a virta-soap source: its peer needs the VIRTA WSDL (TestbedOptions::virta_wsdl)"
    )]
    NoWsdl(String),
    #[error("the written configuration cannot be edited: {0}")]
    ConfigText(String),
}

/// Siirto's own X-Road subsystem in a testbed with [`TestbedOptions::xroad`].
pub const XROAD_CLIENT: &str = "FI-TEST/MUN/0204819-8/siirto";

/// The X-Road service id under which a testbed offers participant `id` (its subsystem carries
/// a space, so that the percent-encoding of §4.2 is exercised).
pub fn xroad_service_of(id: &str) -> String {
    format!("FI-TEST/GOV/{id}-0000/{id} records/siirto")
}

/// What an in-process gateway says of its build (`siirto_build_info`): the workspace version and
/// the revision `testbed`.
pub fn build_info() -> siirto_gateway::metrics::BuildInfo {
    siirto_gateway::metrics::BuildInfo::new(env!("CARGO_PKG_VERSION"), "testbed")
}

/// How to start a testbed.
pub struct TestbedOptions {
    /// Where to write the PKI and the SQLite file; a temporary directory when `None`.
    pub dir: Option<PathBuf>,
    /// `database_url`; SQLite in `dir` when `None`.
    pub database_url: Option<String>,
    /// VIRTA / ELMO schema paths (adds the `virta` source and `emrex` destination).
    pub schemas: SchemaPaths,
    /// `SIIRTO__...` overrides applied to the written configuration.
    pub env: Vec<(String, String)>,
    /// Start a gateway in this process (otherwise only the PKI, configuration and peers).
    pub in_process_gateway: bool,
    /// Adds the `koski` source (KOSKI's luovutuspalvelu, [`crate::registers::KoskiPeer`]).
    pub koski: bool,
    /// With `schemas.virta`, adds the `virta-soap` source (VIRTA's SOAP service,
    /// [`crate::registers::VirtaSoapPeer`]), whose peer checks each request against this WSDL.
    pub virta_wsdl: Option<PathBuf>,
    /// Adds the `koski-omadata` source (consent given at KOSKI,
    /// [`crate::omadata::OmadataPeer`]) and the `eservice`'s `redirect_uris`.
    pub omadata: bool,
    /// Participants reached through X-Road: each gets `xroad_service = `
    /// [`xroad_service_of`]`(id)` in place of its own `base_url`/`server_ca`, and the
    /// configuration an `[xroad]` section naming an in-test [`SecurityServer`] that forwards
    /// to the participant's peer.
    pub xroad: Vec<&'static str>,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Random>,
}

impl Default for TestbedOptions {
    fn default() -> Self {
        TestbedOptions {
            dir: None,
            database_url: None,
            schemas: SchemaPaths::default(),
            env: Vec::new(),
            in_process_gateway: true,
            koski: false,
            virta_wsdl: None,
            omadata: false,
            xroad: Vec::new(),
            clock: Arc::new(SystemClock),
            random: Arc::new(SystemRandom::new()),
        }
    }
}

/// The reference endpoints of a development directory's sources and destinations, by
/// participant id (a participant that is both has one endpoint, in both maps).
#[derive(Clone, Default)]
pub struct Peers {
    pub sources: HashMap<String, Source>,
    pub destinations: HashMap<String, Destination>,
    /// Sources called with `protocol = "koski"`.
    pub koski: HashMap<String, KoskiPeer>,
    /// Sources called with `protocol = "virta-soap"`.
    pub virta_soap: HashMap<String, VirtaSoapPeer>,
    /// Sources called with `protocol = "koski-omadata"`.
    pub omadata: HashMap<String, OmadataPeer>,
}

/// Starts the reference endpoint of every source and destination in `directory` that has a
/// listener in `listeners`, with its server certificate from the development directory
/// `layout`; it requires a client certificate from the development CA (the gateway's). A source
/// called with `protocol = "koski"` gets a [`KoskiPeer`], one called with `"virta-soap"` a
/// [`VirtaSoapPeer`] checking requests against the WSDL at `wsdl`.
pub fn spawn_peers(
    directory: &Directory,
    layout: &Layout,
    mut listeners: HashMap<String, TcpListener>,
    wsdl: Option<&Path>,
    shutdown: &Shutdown,
) -> Result<Peers, TestbedError> {
    let mut peers = Peers::default();
    for p in directory.iter() {
        let (Some(endpoint), Some(listener)) = (&p.endpoint, listeners.remove(&p.id)) else {
            continue;
        };
        let server = layout.participant_server(&p.id);
        let tls = siirto_gateway::tls::server_config_from_files(
            &server.cert,
            &server.key,
            &layout.ca().cert,
            &[],
        )?;
        match &endpoint.protocol {
            SourceProtocol::Koski(call) => {
                let peer = KoskiPeer::spawn(listener, tls, &call.path, shutdown.clone())?;
                peers.koski.insert(p.id.clone(), peer);
            }
            SourceProtocol::VirtaSoap(caller) => {
                let wsdl = wsdl.ok_or_else(|| TestbedError::NoWsdl(p.id.clone()))?;
                let types = WsdlTypes::load(wsdl)?;
                let path = endpoint
                    .base_url
                    .splitn(4, '/')
                    .nth(3)
                    .map_or_else(|| "/".to_owned(), |rest| format!("/{rest}"));
                let peer = VirtaSoapPeer::spawn(
                    listener,
                    tls,
                    &path,
                    caller.clone(),
                    types,
                    shutdown.clone(),
                )?;
                peers.virta_soap.insert(p.id.clone(), peer);
            }
            SourceProtocol::KoskiOmadata(call) => {
                // A browser reaches its authorization endpoint without a client certificate;
                // the token and resource endpoints require the gateway's.
                let tls =
                    crate::omadata::server_config(&server.cert, &server.key, &layout.ca().cert)?;
                let client = crate::omadata::Client {
                    client_id: call.client_id.clone(),
                    redirect_uris: directory
                        .iter()
                        .flat_map(|p| p.redirect_uris.iter().cloned())
                        .collect(),
                    subject_dn: crate::pki::GATEWAY_CLIENT_SUBJECT.to_owned(),
                };
                let peer = OmadataPeer::spawn(listener, tls, vec![client], shutdown.clone())?;
                peers.omadata.insert(p.id.clone(), peer);
            }
            SourceProtocol::Siirto => {
                let (source, destination) =
                    crate::peers::spawn_endpoint(listener, tls, shutdown.clone())?;
                if p.has_role(Role::Source) {
                    peers.sources.insert(p.id.clone(), source);
                }
                if p.has_role(Role::Destination) {
                    peers.destinations.insert(p.id.clone(), destination);
                }
            }
        }
    }
    Ok(peers)
}

/// Moves the participants `ids` of the configuration `text` behind an in-test security server
/// (started here, on a port of its own, with the gateway's server certificate, requiring
/// client certificates of the development CA, forwarding with the gateway's client
/// certificate): `xroad_service` in place of `base_url` and `server_ca`, and `[xroad]`.
async fn put_on_xroad(
    text: &str,
    pki: &DevPki,
    ids: &[&str],
    random: Arc<dyn Random>,
    shutdown: &Shutdown,
) -> Result<(String, SecurityServer), TestbedError> {
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| TestbedError::ConfigText(e.to_string()))?;
    let mut providers = Vec::new();
    let participants = table
        .get_mut("participants")
        .and_then(toml::Value::as_array_mut)
        .ok_or_else(|| TestbedError::ConfigText("no [[participants]]".into()))?;
    for id in ids {
        let entry = participants
            .iter_mut()
            .filter_map(toml::Value::as_table_mut)
            .find(|p| p.get("id").and_then(toml::Value::as_str) == Some(id))
            .ok_or_else(|| TestbedError::UnknownParticipant((*id).to_owned()))?;
        let url = entry
            .remove("base_url")
            .and_then(|v| v.as_str().map(str::to_owned))
            .ok_or_else(|| TestbedError::ConfigText(format!("{id} has no base_url")))?;
        entry.remove("server_ca");
        entry.insert("xroad_service".into(), xroad_service_of(id).into());
        providers.push((xroad_service_of(id), url));
    }
    let listener = bind().await?;
    let url = format!("https://{}", listener.local_addr()?);
    let mut xroad = toml::Table::new();
    xroad.insert("security_server_url".into(), url.into());
    xroad.insert("client".into(), XROAD_CLIENT.into());
    xroad.insert(
        "server_ca".into(),
        pki.ca.cert.to_string_lossy().into_owned().into(),
    );
    table.insert("xroad".into(), xroad.into());
    let tls = siirto_gateway::tls::server_config_from_files(
        &pki.gateway_server.cert,
        &pki.gateway_server.key,
        &pki.ca.cert,
        &[],
    )?;
    let providers: Vec<Provider<'_>> = providers
        .into_iter()
        .map(|(service, url)| Provider {
            service,
            url,
            server_ca: &pki.ca.cert,
        })
        .collect();
    let server = SecurityServer::spawn(
        listener,
        tls,
        XROAD_CLIENT,
        &providers,
        (&pki.gateway_client.cert, &pki.gateway_client.key),
        random,
        shutdown.clone(),
    )?;
    Ok((
        toml::to_string(&table).map_err(|e| TestbedError::ConfigText(e.to_string()))?,
        server,
    ))
}

/// A running installation.
pub struct Testbed {
    _temp: Option<tempfile::TempDir>,
    pub dir: PathBuf,
    pub pki: DevPki,
    pub config: Config,
    pub gateway: Option<Arc<Gateway>>,
    pub sources: HashMap<String, Source>,
    pub destinations: HashMap<String, Destination>,
    /// KOSKI luovutuspalvelu peers, by participant id (with [`TestbedOptions::koski`]).
    pub koski: HashMap<String, KoskiPeer>,
    /// VIRTA SOAP peers, by participant id (with [`TestbedOptions::virta_wsdl`]).
    pub virta_soap: HashMap<String, VirtaSoapPeer>,
    /// KOSKI OmaData peers, by participant id (with [`TestbedOptions::omadata`]).
    pub omadata: HashMap<String, OmadataPeer>,
    /// The in-test security server (with [`TestbedOptions::xroad`]).
    pub security_server: Option<SecurityServer>,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Random>,
    peers_shutdown: ShutdownTrigger,
    gateway_shutdown: Option<(ShutdownTrigger, tokio::task::JoinHandle<()>)>,
}

impl std::fmt::Debug for Testbed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Testbed")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

async fn bind() -> Result<TcpListener, std::io::Error> {
    TcpListener::bind(("127.0.0.1", 0)).await
}

impl Testbed {
    pub async fn start(options: TestbedOptions) -> Result<Testbed, TestbedError> {
        let (temp, dir) = match &options.dir {
            Some(d) => (None, d.clone()),
            None => {
                let t = tempfile::Builder::new().prefix("siirto-").tempdir()?;
                let d = t.path().to_path_buf();
                (Some(t), d)
            }
        };
        // Bind everything first, so the configuration names ports that are already ours.
        let api = bind().await?;
        let admin = bind().await?;
        let mut pki_options = PkiOptions::new(options.clock.now());
        pki_options.listen = api.local_addr()?;
        pki_options.admin_listen = admin.local_addr()?;
        pki_options.database_url = options.database_url.clone();
        pki_options.virta_schema = options.schemas.virta.clone();
        pki_options.elmo_schema = options.schemas.elmo.clone();
        pki_options.siirto_v1_schema = options.schemas.siirto_v1.clone();
        pki_options.koski = options.koski;
        pki_options.virta_soap = options.virta_wsdl.is_some() && options.schemas.virta.is_some();
        pki_options.omadata = options.omadata;
        let mut endpoint_listeners = HashMap::new();
        for id in crate::pki::endpoint_participants(&pki_options) {
            let l = bind().await?;
            pki_options
                .endpoint_ports
                .insert(id.to_owned(), l.local_addr()?.port());
            endpoint_listeners.insert(id.to_owned(), l);
        }
        let pki = DevPki::generate(&dir, &pki_options, options.random.as_ref())?;
        let mut text = std::fs::read_to_string(&pki.config)?;
        let (peers_shutdown, peers_signal) = Shutdown::new();
        let security_server = if options.xroad.is_empty() {
            None
        } else {
            let (edited, server) = put_on_xroad(
                &text,
                &pki,
                &options.xroad,
                options.random.clone(),
                &peers_signal,
            )
            .await?;
            text = edited;
            std::fs::write(&pki.config, &text)?;
            Some(server)
        };
        let config = Config::from_toml(&text, &pki.config, options.env.clone())?;

        let Peers {
            sources,
            destinations,
            koski,
            virta_soap,
            omadata,
        } = spawn_peers(
            &config.directory,
            &Layout::new(&pki.dir),
            endpoint_listeners,
            options.virta_wsdl.as_deref(),
            &peers_signal,
        )?;

        let mut bed = Testbed {
            _temp: temp,
            dir,
            pki,
            config: config.clone(),
            gateway: None,
            sources,
            destinations,
            koski,
            virta_soap,
            omadata,
            security_server,
            clock: options.clock.clone(),
            random: options.random.clone(),
            peers_shutdown,
            gateway_shutdown: None,
        };
        if options.in_process_gateway {
            let gw = Gateway::open(
                config,
                options.clock.clone(),
                options.random.clone(),
                build_info(),
            )
            .await?;
            let (trigger, signal) = Shutdown::new();
            let listeners = Listeners { api, admin };
            let g = gw.clone();
            let handle = tokio::spawn(async move {
                if let Err(e) = start::run(g, listeners, signal).await {
                    tracing::error!(error = %e, "gateway stopped with an error");
                }
            });
            bed.gateway = Some(gw);
            bed.gateway_shutdown = Some((trigger, handle));
        }
        Ok(bed)
    }

    /// `https://127.0.0.1:PORT` of the gateway's API.
    pub fn api_url(&self) -> String {
        format!("https://{}", self.config.gateway.listen)
    }

    /// `http://127.0.0.1:PORT` of the admin listener.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.config.gateway.admin_listen)
    }

    /// A client of the gateway presenting `participant`'s client certificate.
    pub fn client(&self, participant: &str) -> Result<MtlsClient, TestbedError> {
        let dev = self
            .pki
            .participant(participant)
            .ok_or_else(|| TestbedError::UnknownParticipant(participant.to_owned()))?;
        self.client_with(Some(&dev.client))
    }

    /// A client of the gateway presenting these certificate files (or none).
    pub fn client_with(&self, identity: Option<&CertFiles>) -> Result<MtlsClient, TestbedError> {
        Ok(MtlsClient::new(
            &self.api_url(),
            &self.pki.ca.cert,
            identity.map(|c| (c.cert.as_path(), c.key.as_path())),
        )?)
    }

    /// A fresh authorization with sensible defaults (consent, purpose `school-change`), with
    /// the hash of the Finnish consent text the gateway gives for it (none when it gives none,
    /// e.g. for a participant it does not know).
    pub fn authorization(&self, subject: &str, src: &str, dst: &str, scope: &str) -> Authorization {
        let authorization = Authorization {
            issuer: self.pki.issuer.id.clone(),
            audience: self.config.gateway.id.clone(),
            subject: subject.to_owned(),
            source: src.to_owned(),
            destination: dst.to_owned(),
            scope: scope.to_owned(),
            purpose: "school-change".to_owned(),
            jti: uuid_v4(self.random.as_ref()),
            issued_at: self.clock.now(),
            lifetime_secs: 300,
            basis: None,
            guardian: None,
            birthdate: None,
            consent: None,
        };
        self.shown(authorization, Lang::Fi)
    }

    /// `authorization` with the hash of the consent text (in `lang`) that the gateway gives
    /// for its src, dst, scope, purpose and basis, as an e-service would sign it after showing
    /// that text; unchanged when the gateway would give no text for them.
    pub fn shown(&self, mut authorization: Authorization, lang: Lang) -> Authorization {
        authorization.consent = self
            .consent_text(
                &authorization.source,
                &authorization.destination,
                &authorization.scope,
                &authorization.purpose,
                authorization.basis.as_deref().unwrap_or("consent"),
                lang,
            )
            .map(|t| (siirto_core::clock::hex(&t.sha256), lang.code().to_owned()));
        authorization
    }

    /// The consent text the gateway gives for these (as `GET /v1/consent-text` does), when it
    /// gives one.
    pub fn consent_text(
        &self,
        src: &str,
        dst: &str,
        scope: &str,
        purpose: &str,
        basis: &str,
        lang: Lang,
    ) -> Option<siirto_core::consent::ConsentText> {
        eservice::consent_text(
            &self.config.directory,
            src,
            dst,
            scope,
            purpose,
            basis,
            lang,
        )
    }

    /// Signs claims with the development issuer's key (ES256, `typ` for a transfer).
    pub fn sign(&self, claims: &Value) -> Result<String, TestbedError> {
        self.sign_as(claims, AUTHORIZATION_TYP)
    }

    /// Signs claims with the development issuer's key and the given `typ`.
    pub fn sign_as(&self, claims: &Value, typ: &str) -> Result<String, TestbedError> {
        let pem = std::fs::read(&self.pki.issuer.private_key)?;
        Ok(eservice::sign(
            claims,
            "ES256",
            typ,
            &self.pki.issuer.kid,
            &pem,
        )?)
    }

    /// A signed transparency token for `subject`.
    pub fn transparency_token(&self, subject: &str) -> Result<String, TestbedError> {
        let claims = eservice::transparency_claims(
            &self.pki.issuer.id,
            &self.config.gateway.id,
            subject,
            &uuid_v4(self.random.as_ref()),
            self.clock.now(),
            300,
        );
        self.sign_as(&claims, TRANSPARENCY_TYP)
    }

    /// Polls `GET /v1/transfers/{id}` as `participant` until its status is one of `statuses`.
    pub async fn wait_for_status(
        &self,
        participant: &str,
        id: &str,
        statuses: &[&str],
        limit: Duration,
    ) -> Result<Value, TestbedError> {
        let client = self.client(participant)?;
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let answer = client.get(&format!("/v1/transfers/{id}"), &[]).await?;
            let body = answer.json();
            if let Some(s) = body.get("status").and_then(Value::as_str)
                && statuses.contains(&s)
            {
                return Ok(body);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(TestbedError::Timeout(format!(
                    "transfer {id} to reach {statuses:?}; last seen {body}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the gateway (gracefully) and the peers.
    pub async fn stop(mut self) {
        if let Some((trigger, handle)) = self.gateway_shutdown.take() {
            trigger.trigger();
            let _ = handle.await;
        }
        self.peers_shutdown.trigger();
    }

    /// The path of the configuration file.
    pub fn config_path(&self) -> &Path {
        &self.pki.config
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

/// Another gateway instance on 127.0.0.1 (API and admin listeners on port 0), beside a
/// testbed's own: a second instance sharing its database, or one restarted on another
/// configuration.
pub struct Instance {
    pub gateway: Arc<Gateway>,
    pub api: std::net::SocketAddr,
    pub admin: std::net::SocketAddr,
    stop: ShutdownTrigger,
    running: tokio::task::JoinHandle<Result<(), state::StartError>>,
}

impl Instance {
    /// Starts `gateway`'s listeners and tasks.
    pub async fn start(gateway: Arc<Gateway>) -> std::io::Result<Instance> {
        let listeners = Listeners {
            api: TcpListener::bind("127.0.0.1:0").await?,
            admin: TcpListener::bind("127.0.0.1:0").await?,
        };
        let (api, admin) = (listeners.api.local_addr()?, listeners.admin.local_addr()?);
        let (stop, signal) = Shutdown::new();
        let running = tokio::spawn(start::run(gateway.clone(), listeners, signal));
        Ok(Instance {
            gateway,
            api,
            admin,
            stop,
            running,
        })
    }

    /// Starts `gateway` on listeners already bound (when the configuration of another
    /// gateway must name their ports before this one is opened).
    pub fn start_on(gateway: Arc<Gateway>, listeners: Listeners) -> Instance {
        let api = listeners
            .api
            .local_addr()
            .expect("a bound listener has an address");
        let admin = listeners
            .admin
            .local_addr()
            .expect("a bound listener has an address");
        let (stop, signal) = Shutdown::new();
        let running = tokio::spawn(start::run(gateway.clone(), listeners, signal));
        Instance {
            gateway,
            api,
            admin,
            stop,
            running,
        }
    }

    /// Stops it as SIGTERM would (in-flight work finishes, a last checkpoint is signed) and
    /// returns how its run ended.
    pub async fn stop(self) -> Result<(), String> {
        self.stop.trigger();
        match self.running.await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }
}

//! The running gateway's shared state: everything a request handler or a worker needs, built
//! once from the validated configuration.
//!
//! Owns: [`Gateway`] (shared state), loading of keys named by the configuration, audit event
//! construction ([`Gateway::event`]), readiness ([`Gateway::readiness`]: can the store take
//! work now, and is no CRL stale under `crl_stale = "refuse"`), and reloading the issuers' keys.
//!
//! It must not import what runs on it — the handlers (`http`), the workers (`delivery`), the
//! listeners (`server`) — nor start tasks or listeners: [`crate::start`] does that, and it and
//! everything it starts depend on this module, never the other way round.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};

use crate::config::Config;
use crate::metrics::{BuildInfo, Metrics};
use crate::outbound::Outbound;
use crate::store::{Store, StoreError};
use crate::tls::TlsError;
use crate::trail::Trail;
use crate::x509_policy::CrlSet;
use siirto_core::audit::{AuditEvent, AuditSigningKey, CheckpointSigner, Pseudonymizer};
use siirto_core::authz::{IssuerKeys, KeyLoadError, Policy};
use siirto_core::clock::{Clock, Random, Timestamp, uuid_v4};
use siirto_core::config::CrlStale;
use siirto_core::identity::Role;
use siirto_core::peer_health::HealthPolicy;
use siirto_core::pipeline::{SchemaLoadError, Schemas};
use siirto_core::transfer::RetryPolicy;
use siirto_core::vault::{Vault, VaultError};

tokio::task_local! {
    /// The X-Road headers (`xroad_client`, `xroad_service`, `xroad_id`, `xroad_request_id`) of
    /// the API request being handled, when it came through an X-Road security server.
    pub static XROAD_REQUEST: std::collections::BTreeMap<String, String>;
}

/// How long readiness waits for the database to answer and to commit a write.
pub const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// A write probe that outlived [`READINESS_TIMEOUT`], still queued in the store's writer.
type WriteProbe = tokio::task::JoinHandle<Result<u64, StoreError>>;

/// Why the gateway cannot take work now (`/readyz` answers 503).
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    #[error("the database does not answer: {0}")]
    Unreachable(String),
    #[error("the database does not take writes: {0}")]
    NotWritable(String),
    #[error("the audit log does not verify ({0}); audit.on_broken = \"refuse\"")]
    AuditBroken(String),
    #[error(
        "the CRL of {issuer} ({}) is past its nextUpdate {next_update}: its certificates are refused",
        path.display()
    )]
    CrlStale {
        issuer: String,
        next_update: Timestamp,
        path: std::path::PathBuf,
    },
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database of `gateway.database_url` (connecting, migrating, first writes).
    #[error("gateway.database_url: {0}")]
    Store(#[from] StoreError),
    #[error("issuer keys: {0}")]
    IssuerKeys(#[from] KeyLoadError),
    #[error("{0}")]
    Schema(#[from] SchemaLoadError),
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("key file {path}: {message}")]
    Key { path: String, message: String },
    #[error("payload key: {0}")]
    Vault(#[from] VaultError),
    /// `key` is the configuration key of the address (`gateway.listen`, `gateway.admin_listen`).
    #[error("{key}: cannot listen on {addr}: {source}")]
    Listen {
        key: &'static str,
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Shared state of one gateway instance.
pub struct Gateway {
    pub config: Config,
    pub store: Store,
    /// The issuers' public keys; swapped whole by [`Gateway::reload_issuers`].
    issuers: RwLock<Arc<IssuerKeys>>,
    pub policy: Policy,
    /// The consent texts (compiled in from `crates/gateway/texts/`): the current and the
    /// previous edition.
    pub consent_texts: &'static siirto_core::consent::Catalog,
    pub schemas: Schemas,
    /// `[documents]` and the ELMO sources' pinned signers.
    pub documents: Arc<crate::config::DocumentKeys>,
    pub outbound: Outbound,
    /// The CRLs of `gateway.crl`, verified against `client_ca` at start.
    pub crls: Arc<CrlSet>,
    pub pseudonyms: Pseudonymizer,
    /// Signs and checks the tokens of the operator page's forms (derived from the pseudonym
    /// key, so every instance sharing a database accepts the others' forms).
    pub form_tokens: crate::http::operator::FormTokens,
    /// Seals what is kept at rest: payloads, student ids, receipts.
    pub vault: Arc<Vault>,
    /// Signs checkpoints and receipts (`gateway.audit_key`).
    pub audit_key: AuditSigningKey,
    /// Earlier audit keys (`[audit] previous_public_keys`, `previous_key`): published with the
    /// current one so receipts they signed still verify.
    pub audit_previous_keys: Vec<siirto_core::audit::AuditPublicKey>,
    /// The audit service: Merkle tree, checkpoints, proofs (`trail.rs`).
    pub trail: Arc<Trail>,
    /// This gateway as a witness of other gateways' logs (`[witness]`), when configured.
    pub witness: Option<crate::witness::WitnessRole>,
    /// The witnesses asked to cosign this gateway's checkpoints (`[[audit.witnesses]]`).
    pub witnesses: crate::witness::Witnesses,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Random>,
    pub metrics: Metrics,
    /// Wakes idle workers when a transfer is accepted.
    pub wake: Notify,
    /// This instance's id, used as the lease owner of the transfers it works on.
    pub instance: String,
    /// Concurrent deliveries allowed per destination.
    pub destination_slots: HashMap<String, Arc<Semaphore>>,
    /// Large documents prepared or read at once: as many as the machine has cores (see
    /// [`Gateway::on_blocking_pool`]).
    large_documents: Arc<Semaphore>,
    /// Unfinished transfers, as last counted (refreshed every second, bumped on accept).
    pending: AtomicU64,
    /// Refused TLS handshakes waiting to be summarised in the audit.
    pub refusals: crate::refusals::RefusalLog,
    /// Warnings about failed calls, one a minute per (participant, role): see
    /// `delivery::call_failed`.
    pub call_warnings: crate::refusals::Windows<(String, &'static str)>,
    /// Sources and destinations that are down, as the last claim (or change) of this instance
    /// learnt from the store: a worker does not deliver a freshly converted record to a
    /// destination that is down, it leaves it waiting ([`siirto_core::peer_health`]).
    pub peers_down: RwLock<std::collections::BTreeSet<String>>,
    /// A readiness write probe that has not finished yet (at most one is queued at a time).
    write_probe: tokio::sync::Mutex<Option<WriteProbe>>,
    /// Set when a readiness check or a write for the API failed, cleared when one succeeds:
    /// while set, submissions check readiness first and are refused at once when the store
    /// still does not take writes, instead of each waiting for the database's own timeout.
    store_suspect: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("id", &self.config.gateway.id)
            .field("instance", &self.instance)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

fn read_key_file(path: &std::path::Path) -> Result<Vec<u8>, StartError> {
    std::fs::read(path).map_err(|e| StartError::Key {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

impl Gateway {
    /// Runs `work` — preparing or reading a large document — on the blocking pool, at most as
    /// many at once as the machine has cores: each holds a working set of several times its
    /// document (a tree, the converted document, signing's trees), and more at once would not
    /// finish sooner; the others wait holding only their fetched record.
    pub(crate) async fn on_blocking_pool<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Schemas) -> T + Send + 'static,
    ) -> Result<T, String> {
        let _running = self
            .large_documents
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let schemas = self.schemas.clone();
        tokio::task::spawn_blocking(move || work(&schemas))
            .await
            .map_err(|e| e.to_string())
    }

    /// Builds the gateway from a validated configuration: opens (and migrates) the store, loads
    /// keys and schemas, and prepares the outbound clients. `build` is what the binary says of
    /// itself (`siirto_build_info`).
    pub async fn open(
        config: Config,
        clock: Arc<dyn Clock>,
        random: Arc<dyn Random>,
        build: BuildInfo,
    ) -> Result<Arc<Gateway>, StartError> {
        let issuers = IssuerKeys::load(&config.issuers)?;
        let policy = Policy::from_config(&config.gateway, config.consent);
        let formats = config
            .directory
            .iter()
            .filter_map(|p| p.endpoint.as_ref().map(|e| e.format));
        let schemas = Schemas::load(&config.schemas, formats)?;
        let documents = Arc::new(crate::config::DocumentKeys::load(&config).map_err(
            |(path, message)| StartError::Key {
                path: path.display().to_string(),
                message,
            },
        )?);
        let metrics = Metrics::new(&build);
        let outbound = Outbound::new(&config)?
            .with_random(random.clone())
            .with_budget(metrics.record_budget(config.delivery.max_in_flight_bytes));
        let crls = Arc::new(crate::tls::load_crl_set(
            &config.gateway.crl,
            &config.gateway.client_ca,
        )?);
        metrics.know_participants(&config);
        for crl in crls.statuses() {
            metrics.crl_next_update(&crl.issuer, crl.next_update.secs());
        }
        for crl in crls.stale(clock.now()) {
            tracing::warn!(
                issuer = %crl.issuer,
                next_update = %crl.next_update,
                file = %crl.path.display(),
                policy = config.gateway.crl_stale.as_str(),
                "a CRL is already past its nextUpdate"
            );
        }
        let pseudonym_secret = pseudonym_secret(&config)?;
        let pseudonyms = pseudonymizer(&config, &pseudonym_secret)?;
        let form_tokens = crate::http::operator::FormTokens::derive(&pseudonym_secret);
        let vault = load_vault(&config, &pseudonym_secret)?;
        let audit_key_pem = read_key_file(&config.gateway.audit_key)?;
        let audit_key = AuditSigningKey::from_pkcs8_pem(&String::from_utf8_lossy(&audit_key_pem))
            .map_err(|e| StartError::Key {
            path: config.gateway.audit_key.display().to_string(),
            message: e.to_string(),
        })?;
        let mut signer =
            CheckpointSigner::new(audit_key.clone(), &crate::config::audit_origin(&config))
                .map_err(|e| StartError::Key {
                    path: config.gateway.audit_key.display().to_string(),
                    message: e.to_string(),
                })?;
        let audit_history =
            crate::config::previous_audit_keys(&config).map_err(|(path, message)| {
                StartError::Key {
                    path: path.display().to_string(),
                    message,
                }
            })?;
        if let Some(previous) = audit_history.cosigner {
            tracing::info!(
                "audit key rotation: checkpoints are also signed by audit.previous_key; remove it once one checkpoint under the new key is stored"
            );
            signer = signer.with_cosigner(previous);
        }
        let audit_previous_keys = audit_history.public_keys;
        let trail = Arc::new(
            Trail::new(
                signer,
                config.audit.checkpoint_every,
                config.audit.checkpoint_interval,
                clock.now(),
            )
            .with_previous_keys(audit_previous_keys.clone()),
        );
        let witness = crate::witness::witness_role(&config)
            .map_err(|(path, message)| StartError::Key { path, message })?;
        let witnesses = crate::witness::witnesses(&config);
        let store = Store::open(&config.gateway.database_url).await?;
        // Receipts an earlier version stored in clear (migration 0003 could not seal them).
        let sealed = store
            .seal_clear_receipts(|id, token| {
                siirto_core::receipt::seal_receipt(&vault, id, token, random.as_ref())
            })
            .await?;
        if sealed > 0 {
            tracing::info!(
                sealed,
                "sealed receipts stored in clear by an earlier version"
            );
        }
        let destination_slots = config
            .directory
            .iter()
            .filter(|p| p.has_role(Role::Destination))
            .map(|p| {
                (
                    p.id.clone(),
                    Arc::new(Semaphore::new(config.delivery.per_destination_concurrency)),
                )
            })
            .collect();
        let instance = format!("gw-{}", &uuid_v4(random.as_ref())[..8]);
        Ok(Arc::new(Gateway {
            config,
            store,
            issuers: RwLock::new(Arc::new(issuers)),
            policy,
            schemas,
            documents,
            outbound,
            crls,
            pseudonyms,
            form_tokens,
            consent_texts: crate::http::pages::consent_catalog(),
            vault: Arc::new(vault),
            audit_key,
            audit_previous_keys,
            trail,
            witness,
            witnesses,
            clock,
            random,
            metrics,
            wake: Notify::new(),
            instance,
            destination_slots,
            large_documents: Arc::new(Semaphore::new(
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            )),
            pending: AtomicU64::new(0),
            refusals: crate::refusals::RefusalLog::new(Duration::from_secs(60), 10_000),
            call_warnings: crate::refusals::Windows::new(Duration::from_secs(60), 10_000),
            peers_down: RwLock::new(std::collections::BTreeSet::new()),
            write_probe: tokio::sync::Mutex::new(None),
            store_suspect: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The issuers' keys in force now.
    pub fn issuer_keys(&self) -> Arc<IssuerKeys> {
        // Only whole `Arc`s are ever stored, so a poisoned lock still holds a usable value.
        self.issuers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reads every issuer's JWKS file again (key rotation) and swaps the keys in at once;
    /// on any error the keys in force stay. Audited as `config.reload` by `actor`, with the
    /// outcome `ok` or `invalid_jwks`.
    pub async fn reload_issuers(&self, actor: &str, via: &str) -> Result<usize, ReloadError> {
        let issuers = self.config.issuers.clone();
        let loaded = tokio::task::spawn_blocking(move || IssuerKeys::load(&issuers))
            .await
            .map_err(|e| ReloadError::Task(e.to_string()))?;
        let mut event = self.event(actor, "config.reload", "ok");
        event.detail.insert("via".into(), via.to_owned());
        event.detail.insert("what".into(), "issuer_keys".into());
        let result = match loaded {
            Ok(keys) => {
                let count: usize = keys.issuers().map(|i| keys.key_count(i)).sum();
                event
                    .detail
                    .insert("issuers".into(), keys.issuers().count().to_string());
                event.detail.insert("keys".into(), count.to_string());
                *self.issuers.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
                Ok(count)
            }
            Err(e) => {
                event.outcome = "invalid_jwks".into();
                event.detail.insert("error".into(), e.to_string());
                Err(ReloadError::Keys(e))
            }
        };
        self.store
            .append_audit(vec![event])
            .await
            .map_err(ReloadError::Store)?;
        match &result {
            Ok(n) => tracing::info!(keys = n, via, "issuer keys reloaded"),
            Err(e) => {
                tracing::warn!(error = %e, via, "issuer keys not reloaded; the old keys stay")
            }
        }
        result
    }

    /// Unfinished transfers (for back-pressure and metrics), as last counted.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// Counts a newly accepted transfer until the next refresh.
    pub fn note_accepted(&self) {
        self.pending.fetch_add(1, Ordering::Relaxed);
    }

    /// Recounts unfinished transfers from the store.
    pub async fn refresh_pending(&self) -> Result<u64, StoreError> {
        let n = self.store.pending_count().await?;
        self.pending.store(n, Ordering::Relaxed);
        Ok(n)
    }

    /// Whether the gateway can take work now: the database answers a query, and the store's
    /// writer commits a write, each within [`READINESS_TIMEOUT`]. Both are needed: on SQLite
    /// another connection holding the write lock (an exclusive transaction) leaves reads
    /// working while every transfer would wait and then fail with `store_unavailable`.
    ///
    /// The write is the writer's cheapest real one, forgetting expired replay ids (which
    /// housekeeping does anyway). A probe that outlives the timeout stays queued in the writer;
    /// until it finishes, later checks wait on it instead of queueing another, so a stuck
    /// database does not fill the writer's queue with probes.
    pub async fn readiness(&self) -> Result<(), NotReady> {
        let outstanding = self.write_probe.lock().await;
        let ready = self.check_readiness(outstanding).await;
        self.note_store_health(ready.is_ok());
        ready?;
        if let Some(fault) = self.audit_refuses_work() {
            return Err(NotReady::AuditBroken(fault));
        }
        self.crl_readiness()
    }

    /// The audit log's fault while it does not verify and `[audit] on_broken = "refuse"`:
    /// the gateway is then not ready and refuses submissions.
    pub fn audit_refuses_work(&self) -> Option<String> {
        if self.config.audit.on_broken != siirto_core::config::OnBroken::Refuse {
            return None;
        }
        self.trail.status().broken.map(|fault| fault.to_string())
    }

    /// Under `crl_stale = "refuse"`, a stale CRL makes the gateway refuse every certificate
    /// of its CA: not ready until the CRL file is replaced (and the gateway restarted).
    fn crl_readiness(&self) -> Result<(), NotReady> {
        if self.config.gateway.crl_stale != CrlStale::Refuse {
            return Ok(());
        }
        match self.crls.stale(self.now()).into_iter().next() {
            Some(crl) => Err(NotReady::CrlStale {
                issuer: crl.issuer,
                next_update: crl.next_update,
                path: crl.path,
            }),
            None => Ok(()),
        }
    }

    /// [`Gateway::readiness`] for a submission while the store is suspect: when another check
    /// is under way, answers "not ready" at once instead of queueing behind it, so a burst of
    /// submissions during an outage is refused promptly.
    pub async fn readiness_or_busy(&self) -> Result<(), NotReady> {
        let Ok(outstanding) = self.write_probe.try_lock() else {
            return Err(NotReady::NotWritable(
                "the store is suspect and being checked".into(),
            ));
        };
        let ready = self.check_readiness(outstanding).await;
        self.note_store_health(ready.is_ok());
        ready
    }

    /// Whether the last readiness check or API write failed (see [`Gateway::readiness`]).
    pub fn store_suspect(&self) -> bool {
        self.store_suspect.load(Ordering::Relaxed)
    }

    /// Records whether a write for the API (or a readiness check) reached the store.
    pub fn note_store_health(&self, healthy: bool) {
        self.store_suspect.store(!healthy, Ordering::Relaxed);
    }

    async fn check_readiness(
        &self,
        mut outstanding: tokio::sync::MutexGuard<'_, Option<WriteProbe>>,
    ) -> Result<(), NotReady> {
        let limit = READINESS_TIMEOUT.as_millis();
        match tokio::time::timeout(READINESS_TIMEOUT, self.store.ping()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(NotReady::Unreachable(e.to_string())),
            Err(_) => {
                return Err(NotReady::Unreachable(format!(
                    "no answer within {limit} ms"
                )));
            }
        }
        let mut probe = outstanding.take().unwrap_or_else(|| {
            let store = self.store.clone();
            let now = self.now();
            tokio::spawn(async move { store.purge_replay(now).await })
        });
        match tokio::time::timeout(READINESS_TIMEOUT, &mut probe).await {
            Ok(Ok(Ok(_))) => Ok(()),
            Ok(Ok(Err(e))) => Err(NotReady::NotWritable(e.to_string())),
            Ok(Err(e)) => Err(NotReady::NotWritable(format!("the probe task failed: {e}"))),
            Err(_) => {
                *outstanding = Some(probe);
                Err(NotReady::NotWritable(format!(
                    "no commit within {limit} ms"
                )))
            }
        }
    }

    /// The retry limits of `[delivery]`.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.config.delivery.retry_policy()
    }

    /// The OmaData settings of `participant` when it is a `koski-omadata` source.
    pub fn omadata_call(&self, participant: &str) -> Option<&siirto_core::protocol::OmadataCall> {
        match &self
            .config
            .directory
            .get(participant)?
            .endpoint
            .as_ref()?
            .protocol
        {
            siirto_core::protocol::SourceProtocol::KoskiOmadata(call) => Some(call),
            _ => None,
        }
    }

    /// Whether `participant` is a `koski-omadata` source (its data moves only on the consent
    /// the person gives at KOSKI).
    pub fn is_omadata_source(&self, participant: &str) -> bool {
        self.omadata_call(participant).is_some()
    }

    /// Whether `participant` was down when this instance last looked.
    pub fn is_down(&self, participant: &str) -> bool {
        match self.peers_down.read() {
            Ok(set) => set.contains(participant),
            Err(poisoned) => poisoned.into_inner().contains(participant),
        }
    }

    /// Records which peers are down (from a claim), or that one went down or came back.
    pub fn note_peers_down(&self, update: impl FnOnce(&mut std::collections::BTreeSet<String>)) {
        match self.peers_down.write() {
            Ok(mut set) => update(&mut set),
            Err(poisoned) => update(&mut poisoned.into_inner()),
        }
    }

    /// `[retention] transfers`: deletes the finished transfers that ended longer ago than it,
    /// in batches, each batch audited once (`retention.purged` by `actor`). Returns how many.
    pub async fn apply_retention(&self, actor: &str) -> Result<u64, StoreError> {
        apply_retention(&self.store, &self.config, self.now(), actor).await
    }

    /// `[retention] audit`, when set: prunes the audit entries before the largest checkpoint
    /// whose entries are all older than it (`retention.audit_pruned` by `actor`), and lets the
    /// trail's tree continue from what stands in for them.
    pub async fn apply_audit_retention(
        &self,
        actor: &str,
    ) -> Result<Option<crate::trail::AuditPruning>, crate::trail::TrailError> {
        let key = self.trail.checkpoint_verifier();
        let done = apply_audit_retention(&self.store, &self.config, &key, self.now(), actor, false)
            .await?;
        if let Some(base) = done.as_ref().and_then(|d| d.base.as_ref()) {
            self.trail.adopt_base(base)?;
        }
        Ok(done)
    }

    /// When a source or destination counts as down, and how it is probed (`[delivery]`).
    pub fn health_policy(&self) -> HealthPolicy {
        self.config.delivery.health_policy()
    }

    /// A new audit event at the current time.
    pub fn event(&self, actor: &str, action: &str, outcome: &str) -> AuditEvent {
        // An API request that came through an X-Road security server: its X-Road headers go in
        // every audit entry made while handling it (CONTRACT.md, "X-Road", inbound).
        let detail = XROAD_REQUEST.try_with(Clone::clone).unwrap_or_default();
        AuditEvent {
            at: self.now(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            outcome: outcome.to_owned(),
            transfer_id: None,
            subject: None,
            document_sha256: None,
            detail,
        }
    }

    /// The signed receipt of a delivered transfer, opened from its sealed form, for those
    /// allowed to see the transfer. `None` before delivery, and when it cannot be opened (its
    /// key is no longer configured, or the stored value was changed), which is logged.
    pub fn receipt(&self, row: &crate::store::TransferRow) -> Option<String> {
        let sealed = row.receipt_sealed.as_deref()?;
        match siirto_core::receipt::open_receipt(&self.vault, &row.id, sealed) {
            Ok(token) => Some(token),
            Err(e) => {
                tracing::error!(transfer = %row.id, error = %e, "the stored receipt cannot be opened");
                None
            }
        }
    }
}

/// The secret of `gateway.pseudonym_key`.
fn pseudonym_secret(config: &Config) -> Result<Vec<u8>, StartError> {
    siirto_core::config::secret_key_bytes(&read_key_file(&config.gateway.pseudonym_key)?)
        .ok_or_else(|| StartError::Key {
            path: config.gateway.pseudonym_key.display().to_string(),
            message: "not a usable secret (at least 32 bytes)".into(),
        })
}

fn pseudonymizer(config: &Config, secret: &[u8]) -> Result<Pseudonymizer, StartError> {
    Pseudonymizer::new(secret).map_err(|e| StartError::Key {
        path: config.gateway.pseudonym_key.display().to_string(),
        message: e.to_string(),
    })
}

/// The keyed pseudonyms of `gateway.pseudonym_key`, for commands that look a student up in
/// the store (`siirto transfers list --subject`).
pub fn load_pseudonymizer(config: &Config) -> Result<Pseudonymizer, StartError> {
    pseudonymizer(config, &pseudonym_secret(config)?)
}

fn load_vault(config: &Config, pseudonym_secret: &[u8]) -> Result<Vault, StartError> {
    let decode = |path: &std::path::Path| -> Result<Vec<u8>, StartError> {
        let text = read_key_file(path)?;
        siirto_core::clock::unhex(String::from_utf8_lossy(&text).trim()).ok_or_else(|| {
            StartError::Key {
                path: path.display().to_string(),
                message: "a payload key is 64 hex digits".into(),
            }
        })
    };
    let current = match &config.storage.payload_key {
        Some(path) => decode(path)?,
        None => Vault::derive_key(pseudonym_secret).to_vec(),
    };
    let previous = config
        .storage
        .payload_previous_keys
        .iter()
        .map(|p| decode(p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Vault::new(&current, &previous)?)
}

/// Why a reload did not take effect (the keys in force stay).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("issuer keys: {0}")]
    Keys(KeyLoadError),
    #[error("store: {0}")]
    Store(StoreError),
    #[error("the reload task failed: {0}")]
    Task(String),
}

/// Most finished transfers deleted in one transaction by [`apply_retention`].
const RETENTION_BATCH: u32 = 10_000;

/// [`Gateway::apply_retention`] on a store (also used by `siirto retention`).
pub async fn apply_retention(
    store: &Store,
    config: &Config,
    now: Timestamp,
    actor: &str,
) -> Result<u64, StoreError> {
    let before = retention_cutoff(config, now);
    let mut total = 0;
    loop {
        let mut event = AuditEvent::new(now, actor, "retention.purged", "ok");
        event.detail.insert(
            "retention".into(),
            siirto_core::config::format_duration(config.retention.transfers),
        );
        let n = store.purge_finished(before, RETENTION_BATCH, event).await?;
        total += n;
        if n < u64::from(RETENTION_BATCH) {
            return Ok(total);
        }
    }
}

/// [`Gateway::apply_audit_retention`] on a store (also used by `siirto retention`); `None`
/// without `[retention] audit` or when nothing is old enough.
pub async fn apply_audit_retention(
    store: &Store,
    config: &Config,
    key: &siirto_core::audit::CheckpointVerifier,
    now: Timestamp,
    actor: &str,
    dry_run: bool,
) -> Result<Option<crate::trail::AuditPruning>, crate::trail::TrailError> {
    let Some(keep) = config.retention.audit else {
        return Ok(None);
    };
    let cutoff = Timestamp::from_millis(
        now.millis()
            .saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX)),
    );
    let mut event = AuditEvent::new(now, actor, "retention.audit_pruned", "ok");
    event.detail.insert(
        "retention".into(),
        siirto_core::config::format_duration(keep),
    );
    event
        .detail
        .insert("written_before".into(), cutoff.rfc3339());
    crate::trail::prune_audit(store, key, cutoff, event, dry_run).await
}

/// Finished transfers that ended before this are past `[retention] transfers`.
pub fn retention_cutoff(config: &Config, now: Timestamp) -> Timestamp {
    Timestamp::from_millis(
        now.millis().saturating_sub(
            i64::try_from(config.retention.transfers.as_millis()).unwrap_or(i64::MAX),
        ),
    )
}

//! The running gateway: everything a request handler or a worker needs, built once from the
//! validated configuration, and [`run`], which starts the listeners and workers and stops them
//! gracefully.
//!
//! Owns: [`Gateway`] (shared state), loading of keys named by the configuration, audit event
//! construction ([`Gateway::event`]), and the lifecycle of the background tasks.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};

use crate::audit::AuditSigningKey;
use crate::audit::{AuditEvent, Pseudonymizer};
use crate::authz::{IssuerKeys, KeyLoadError, Policy};
use crate::clock::{Clock, Random, Timestamp, uuid_v4};
use crate::config::{Config, Role};
use crate::metrics::Metrics;
use crate::outbound::Outbound;
use crate::pipeline::{SchemaLoadError, Schemas};
use crate::server::{ServerLimits, Shutdown};
use crate::store::{Store, StoreError};
use crate::tls::TlsError;
use crate::transfer::RetryPolicy;
use crate::vault::{Vault, VaultError};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("store: {0}")]
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
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// Shared state of one gateway instance.
pub struct Gateway {
    pub config: Config,
    pub store: Store,
    pub issuers: IssuerKeys,
    pub policy: Policy,
    pub schemas: Schemas,
    pub outbound: Outbound,
    pub pseudonyms: Pseudonymizer,
    pub vault: Vault,
    /// Signs checkpoints and receipts (`gateway.audit_key`).
    pub audit_key: AuditSigningKey,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Random>,
    pub metrics: Metrics,
    /// Wakes idle workers when a transfer is accepted.
    pub wake: Notify,
    /// This instance's id, used as the lease owner of the transfers it works on.
    pub instance: String,
    /// Concurrent deliveries allowed per destination.
    pub destination_slots: HashMap<String, Arc<Semaphore>>,
    /// Unfinished transfers, as last counted (refreshed every second, bumped on accept).
    pending: AtomicU64,
    /// Refused TLS handshakes waiting to be summarised in the audit.
    pub refusals: crate::refusals::RefusalLog,
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
    /// Builds the gateway from a validated configuration: opens (and migrates) the store, loads
    /// keys and schemas, and prepares the outbound clients.
    pub async fn open(
        config: Config,
        clock: Arc<dyn Clock>,
        random: Arc<dyn Random>,
    ) -> Result<Arc<Gateway>, StartError> {
        let issuers = IssuerKeys::load(&config.issuers)?;
        let policy = Policy::from_gateway(&config.gateway);
        let formats = config
            .directory
            .iter()
            .filter_map(|p| p.endpoint.as_ref().map(|e| e.format));
        let schemas = Schemas::load(&config.schemas, formats)?;
        let outbound = Outbound::new(&config)?;
        let pseudonym_secret =
            crate::config::secret_key_bytes(&read_key_file(&config.gateway.pseudonym_key)?)
                .ok_or_else(|| StartError::Key {
                    path: config.gateway.pseudonym_key.display().to_string(),
                    message: "not a usable secret (at least 32 bytes)".into(),
                })?;
        let pseudonyms = Pseudonymizer::new(&pseudonym_secret).map_err(|e| StartError::Key {
            path: config.gateway.pseudonym_key.display().to_string(),
            message: e.to_string(),
        })?;
        let vault = load_vault(&config, &pseudonym_secret)?;
        let audit_key_pem = read_key_file(&config.gateway.audit_key)?;
        let audit_key = AuditSigningKey::from_pkcs8_pem(&String::from_utf8_lossy(&audit_key_pem))
            .map_err(|e| StartError::Key {
            path: config.gateway.audit_key.display().to_string(),
            message: e.to_string(),
        })?;
        let store = Store::open(&config.gateway.database_url).await?;
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
            issuers,
            policy,
            schemas,
            outbound,
            pseudonyms,
            vault,
            audit_key,
            clock,
            random,
            metrics: Metrics::new(),
            wake: Notify::new(),
            instance,
            destination_slots,
            pending: AtomicU64::new(0),
            refusals: crate::refusals::RefusalLog::new(Duration::from_secs(60), 10_000),
        }))
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
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

    /// The retry limits of `[delivery]`.
    pub fn retry_policy(&self) -> RetryPolicy {
        let d = &self.config.delivery;
        RetryPolicy {
            max_attempts: d.max_attempts,
            max_age: d.max_age,
            initial_backoff: d.initial_backoff,
            max_backoff: d.max_backoff,
        }
    }

    /// A new audit event at the current time.
    pub fn event(&self, actor: &str, action: &str, outcome: &str) -> AuditEvent {
        AuditEvent {
            at: self.now(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            outcome: outcome.to_owned(),
            transfer_id: None,
            subject: None,
            document_sha256: None,
            detail: Default::default(),
        }
    }
}

fn load_vault(config: &Config, pseudonym_secret: &[u8]) -> Result<Vault, StartError> {
    let decode = |path: &std::path::Path| -> Result<Vec<u8>, StartError> {
        let text = read_key_file(path)?;
        crate::clock::unhex(String::from_utf8_lossy(&text).trim()).ok_or_else(|| StartError::Key {
            path: path.display().to_string(),
            message: "a payload key is 64 hex digits".into(),
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

/// Bound listeners for one gateway instance.
#[derive(Debug)]
pub struct Listeners {
    pub api: TcpListener,
    pub admin: TcpListener,
}

impl Listeners {
    /// Binds the addresses of the configuration.
    pub async fn bind(config: &Config) -> Result<Listeners, StartError> {
        let bind = |addr: std::net::SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Listen {
                    addr: addr.to_string(),
                    source,
                })
        };
        Ok(Listeners {
            api: bind(config.gateway.listen).await?,
            admin: bind(config.gateway.admin_listen).await?,
        })
    }
}

/// Runs the listeners and the background tasks until `shutdown`, then stops accepting, lets
/// in-flight requests and transfer steps finish, and returns.
pub async fn run(
    gateway: Arc<Gateway>,
    listeners: Listeners,
    shutdown: Shutdown,
) -> Result<(), StartError> {
    let tls = crate::tls::server_config(&gateway.config)?;
    let limits = ServerLimits {
        header_read_timeout: gateway.config.limits.request_timeout,
        max_header_bytes: gateway.config.limits.max_header_bytes,
        ..ServerLimits::default()
    };
    let api = {
        let gw = gateway.clone();
        tokio::spawn(crate::server::serve_tls(
            listeners.api,
            tls,
            limits,
            move |conn| crate::http::api_connection(gw.clone(), conn),
            Some(refusal_hook(gateway.clone())),
            shutdown.clone(),
        ))
    };
    let admin = {
        let gw = gateway.clone();
        tokio::spawn(crate::server::serve_plain(
            listeners.admin,
            limits,
            move |_conn| crate::http::admin_connection(gw.clone()),
            shutdown.clone(),
        ))
    };
    let workers = tokio::spawn(crate::delivery::run(gateway.clone(), shutdown.clone()));
    let housekeeping = tokio::spawn(housekeeping(gateway.clone(), shutdown.clone()));
    let _ = api.await;
    let _ = admin.await;
    let _ = workers.await;
    let _ = housekeeping.await;
    gateway.store.close().await;
    Ok(())
}

/// Audits refused handshakes, rate-limited by [`RefusalLog`].
fn refusal_hook(gateway: Arc<Gateway>) -> crate::server::RefusalHook {
    Arc::new(move |remote, refusal| {
        gateway.metrics.inc(
            "siirto_tls_refused_total",
            "Refused TLS handshakes by reason.",
            &[("reason", refusal.code)],
        );
        if let Some(event) = gateway.refusals.note(remote.ip(), &refusal, gateway.now()) {
            let gw = gateway.clone();
            tokio::spawn(async move {
                if let Err(e) = gw.store.append_audit(vec![event]).await {
                    tracing::warn!(error = %e, "could not audit a refused handshake");
                }
            });
        }
    })
}

/// Periodic chores: recount unfinished transfers and write refused-handshake summaries (every
/// second), forget expired replay ids (every minute).
async fn housekeeping(gateway: Arc<Gateway>, mut shutdown: Shutdown) {
    let mut tick = 0u64;
    loop {
        let summaries = gateway.refusals.flush(gateway.now());
        if !summaries.is_empty() {
            if let Err(e) = gateway.store.append_audit(summaries).await {
                tracing::warn!(error = %e, "could not audit refused-handshake counts");
            }
        }
        if let Err(e) = gateway.refresh_pending().await {
            tracing::warn!(error = %e, "counting unfinished transfers failed");
        }
        if tick.is_multiple_of(60)
            && let Err(e) = gateway.store.purge_replay(gateway.now()).await
        {
            tracing::warn!(error = %e, "purging expired replay ids failed");
        }
        tick += 1;
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = shutdown.wait() => return,
        }
    }
}

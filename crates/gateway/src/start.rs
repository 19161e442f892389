//! Starting and stopping one gateway instance: [`Listeners`] (the bound API and admin
//! addresses) and [`run`], which starts the listeners (`server` with the `http` handlers), the
//! delivery workers, the audit trail service and housekeeping on a [`Gateway`], and stops them
//! gracefully.
//!
//! Owns: the wiring of tasks and listeners, the API listener's observer (refused connections
//! and handshakes counted and audited, known participants recognised), and the periodic
//! housekeeping. The state it runs on is [`crate::state`]'s; this module is the only one that
//! depends on both the state and everything that runs on it.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::server::{ServerLimits, Shutdown};
use crate::state::{Gateway, StartError};

/// Bound listeners for one gateway instance.
#[derive(Debug)]
pub struct Listeners {
    pub api: TcpListener,
    pub admin: TcpListener,
}

impl Listeners {
    /// Binds the addresses of the configuration.
    pub async fn bind(config: &Config) -> Result<Listeners, StartError> {
        let bind = |key: &'static str, addr: std::net::SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Listen { key, addr, source })
        };
        Ok(Listeners {
            api: bind("gateway.listen", config.gateway.listen).await?,
            admin: bind("gateway.admin_listen", config.gateway.admin_listen).await?,
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
    let tls = crate::tls::server_config_with(
        &gateway.config,
        gateway.crls.clone(),
        gateway.clock.clone(),
    )?;
    crate::http::know_metric_labels(&gateway.metrics);
    let configured = &gateway.config.limits;
    let limits = ServerLimits {
        admission: configured.connections,
        handshake_timeout: configured.handshake_timeout,
        header_read_timeout: configured.request_timeout,
        max_header_bytes: configured.max_header_bytes,
        ..ServerLimits::default()
    };
    // Nobody authenticates on the admin listener: no reserve there.
    let admin_limits = ServerLimits {
        admission: limits.admission.without_reserve(),
        ..limits
    };
    let api = {
        let gw = gateway.clone();
        tokio::spawn(crate::server::serve_tls(
            listeners.api,
            tls,
            limits,
            move |conn| crate::http::api_connection(gw.clone(), conn),
            Some(Arc::new(ApiListener(gateway.clone()))),
            shutdown.clone(),
        ))
    };
    let admin = {
        let gw = gateway.clone();
        tokio::spawn(crate::server::serve_plain(
            listeners.admin,
            admin_limits,
            move |_conn| crate::http::admin_connection(gw.clone()),
            shutdown.clone(),
        ))
    };
    let workers = tokio::spawn(crate::delivery::run(gateway.clone(), shutdown.clone()));
    let housekeeping = tokio::spawn(housekeeping(gateway.clone(), shutdown.clone()));
    let trail = tokio::spawn(crate::trail::run(
        gateway.trail.clone(),
        gateway.store.clone(),
        gateway.clock.clone(),
        shutdown.clone(),
    ));
    let witnessing = tokio::spawn(crate::witness::run(gateway.clone(), shutdown.clone()));
    let _ = api.await;
    let _ = admin.await;
    let _ = workers.await;
    let _ = housekeeping.await;
    let _ = trail.await;
    let _ = witnessing.await;
    // Everything this run wrote is in the store now: anchor it with a last checkpoint.
    gateway.trail.finish(&gateway.store, gateway.now()).await;
    gateway.store.close().await;
    Ok(())
}

/// The API listener's observer: counts refused connections and handshakes, audits them
/// (rate-limited by [`crate::refusals::RefusalLog`]), and knows a participant by its certificate.
struct ApiListener(Arc<Gateway>);

impl crate::server::Observer for ApiListener {
    fn refused(&self, remote: std::net::SocketAddr, why: crate::server::Refused) {
        let gateway = &self.0;
        let refusal = why.refusal();
        if let Some(reason) = why.connection_refusal() {
            gateway.metrics.connection_refused(reason);
        }
        if !matches!(why, crate::server::Refused::Limit(_)) {
            debug_assert!(
                crate::refusals::Refusal::CODES.contains(&refusal.code),
                "{} is not in Refusal::CODES",
                refusal.code
            );
            gateway.metrics.tls_refused(refusal.code);
        }
        if let Some(event) = gateway.refusals.note(remote.ip(), &refusal, gateway.now()) {
            let gw = gateway.clone();
            tokio::spawn(async move {
                if let Err(e) = gw.store.append_audit(vec![event]).await {
                    tracing::warn!(error = %e, "could not audit a refused handshake");
                }
            });
        }
    }

    fn is_known(&self, connection: &crate::server::ConnectionInfo) -> bool {
        siirto_core::identity::identify(&self.0.config.directory, &connection.certificates).is_ok()
    }
}

/// Seconds between two applications of `[retention]` (daily, and at start).
const RETENTION_EVERY: u64 = 24 * 3600;

/// Periodic chores: recount unfinished transfers and write refused-handshake summaries (every
/// second), forget expired replay ids (every minute), delete finished transfers past
/// `[retention] transfers` (at start and daily).
async fn housekeeping(gateway: Arc<Gateway>, mut shutdown: Shutdown) {
    let mut tick = 0u64;
    loop {
        let summaries = gateway.refusals.flush(gateway.now());
        if !summaries.is_empty()
            && let Err(e) = gateway.store.append_audit(summaries).await
        {
            tracing::warn!(error = %e, "could not audit refused-handshake counts");
        }
        if let Err(e) = gateway.refresh_pending().await {
            tracing::warn!(error = %e, "counting unfinished transfers failed");
        }
        if tick.is_multiple_of(60)
            && let Err(e) = gateway.store.purge_replay(gateway.now()).await
        {
            tracing::warn!(error = %e, "purging expired replay ids failed");
        }
        if tick.is_multiple_of(RETENTION_EVERY) {
            match gateway
                .apply_retention(crate::delivery::GATEWAY_ACTOR)
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    deleted = n,
                    "finished transfers past [retention] transfers deleted"
                ),
                Err(e) => tracing::warn!(error = %e, "applying [retention] failed"),
            }
            match gateway
                .apply_audit_retention(crate::delivery::GATEWAY_ACTOR)
                .await
            {
                Ok(None) => {}
                Ok(Some(p)) => tracing::info!(
                    pruned_before = p.before,
                    entries = p.entries,
                    "audit entries past [retention] audit pruned"
                ),
                Err(e) => tracing::warn!(error = %e, "applying [retention] audit failed"),
            }
        }
        tick += 1;
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = shutdown.wait() => return,
        }
    }
}

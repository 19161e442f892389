//! The plain admin listener: `GET /healthz` (the process answers), `GET /readyz` (the database
//! answers and takes writes, and no CRL is stale under `crl_stale = "refuse"`, so the gateway
//! can accept work; see [`Gateway::readiness`]),
//! `GET /metrics` (Prometheus text format 0.0.4, or OpenMetrics 1.0 when the `Accept` header
//! asks for `application/openmetrics-text`, as Prometheus does).

use std::sync::Arc;

use http::{Method, StatusCode};
use hyper::body::Incoming;
use hyper::{Request, Response};

use super::text_response;
use crate::metrics;
use crate::server::Body;
use crate::state::{Gateway, NotReady};

pub async fn answer(gw: &Arc<Gateway>, req: &Request<Incoming>) -> Response<Body> {
    if req.method() != Method::GET {
        let mut r = text_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "GET only\n",
        );
        r.headers_mut()
            .insert(http::header::ALLOW, http::HeaderValue::from_static("GET"));
        return r;
    }
    match req.uri().path() {
        "/healthz" => text_response(StatusCode::OK, "text/plain; charset=utf-8", "ok\n"),
        "/readyz" => match gw.readiness().await {
            Ok(()) => text_response(StatusCode::OK, "text/plain; charset=utf-8", "ready\n"),
            Err(e) => {
                tracing::warn!(error = %e, "readiness check failed");
                let body = match e {
                    NotReady::Unreachable(_) => "database unreachable\n",
                    NotReady::NotWritable(_) => "database not writable\n",
                    NotReady::CrlStale { .. } => "a CRL is past its nextUpdate\n",
                    NotReady::AuditBroken(_) => "the audit log does not verify\n",
                };
                let mut r = text_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain; charset=utf-8",
                    body,
                );
                r.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from_static("5"),
                );
                r
            }
        },
        "/metrics" => {
            let trail = gw.trail.status();
            gw.metrics.set_pending(gw.pending());
            refresh_peers(gw).await;
            gw.metrics.set_trail(
                trail.size,
                trail.broken.is_some(),
                trail.last_signed.map_or(0, |c| c.tree_size),
            );
            let accept = req
                .headers()
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok());
            if metrics::wants_openmetrics(accept) {
                text_response(
                    StatusCode::OK,
                    metrics::OPENMETRICS_TEXT,
                    gw.metrics.render_openmetrics(),
                )
            } else {
                text_response(
                    StatusCode::OK,
                    metrics::PROMETHEUS_TEXT,
                    gw.metrics.render(),
                )
            }
        }
        _ => text_response(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n",
        ),
    }
}

/// Sets each source's and destination's `siirto_peer_up` and `siirto_peer_backlog` from the
/// store (shared by every instance on one database). A store that does not answer leaves the
/// last values; readiness reports the store.
async fn refresh_peers(gw: &Gateway) {
    let (peers, backlogs) = match (gw.store.peers().await, gw.store.backlogs().await) {
        (Ok(p), Ok(b)) => (p, b),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "reading peer health for /metrics failed");
            return;
        }
    };
    for participant in gw.config.directory.iter().filter(|p| p.endpoint.is_some()) {
        let down = peers
            .iter()
            .any(|p| p.participant == participant.id && p.health.is_down());
        let backlog = backlogs
            .iter()
            .find(|(id, _)| *id == participant.id)
            .map_or(0, |(_, n)| *n);
        gw.metrics.set_peer(&participant.id, !down, backlog);
    }
}

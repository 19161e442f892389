//! The plain admin listener: `GET /healthz` (the process answers), `GET /readyz` (the database
//! answers and takes writes, and no CRL is stale under `crl_stale = "refuse"`, so the gateway
//! can accept work; see [`Gateway::readiness`]),
//! `GET /metrics` (Prometheus text format).

use std::sync::Arc;

use http::{Method, StatusCode};
use hyper::body::Incoming;
use hyper::{Request, Response};

use super::text_response;
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
            #[allow(clippy::cast_precision_loss)]
            let pending = gw.pending() as f64;
            let trail = gw.trail.status();
            #[allow(clippy::cast_precision_loss)]
            let trail_gauges = [
                (
                    "siirto_audit_entries_verified",
                    "Audit entries the trail has checked and holds in its Merkle tree.",
                    trail.size as f64,
                ),
                (
                    "siirto_audit_log_broken",
                    "1 when the stored audit log stopped verifying (no checkpoints are signed).",
                    if trail.broken.is_some() { 1.0 } else { 0.0 },
                ),
                (
                    "siirto_audit_checkpoint_size",
                    "Tree size of the last checkpoint this instance signed.",
                    trail.last_signed.map_or(0.0, |c| c.tree_size as f64),
                ),
            ];
            let mut gauges = vec![(
                "siirto_pending_transfers",
                "Transfers accepted but not yet at an end (last refresh).",
                pending,
            )];
            gauges.extend(trail_gauges);
            let body = gw.metrics.render(&gauges);
            text_response(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                body,
            )
        }
        _ => text_response(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n",
        ),
    }
}

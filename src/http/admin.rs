//! The plain admin listener: `GET /healthz` (the process answers), `GET /readyz` (the database
//! answers and the gateway accepts work), `GET /metrics` (Prometheus text format).

use std::sync::Arc;

use http::{Method, StatusCode};
use hyper::body::Incoming;
use hyper::{Request, Response};

use super::text_response;
use crate::gateway::Gateway;
use crate::server::Body;

pub async fn answer(gw: &Arc<Gateway>, req: &Request<Incoming>) -> Response<Body> {
    if req.method() != Method::GET {
        return text_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "GET only\n",
        );
    }
    match req.uri().path() {
        "/healthz" => text_response(StatusCode::OK, "text/plain; charset=utf-8", "ok\n"),
        "/readyz" => match gw.store.ping().await {
            Ok(()) => text_response(StatusCode::OK, "text/plain; charset=utf-8", "ready\n"),
            Err(e) => {
                tracing::warn!(error = %e, "readiness check: database unreachable");
                text_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain; charset=utf-8",
                    "database unreachable\n",
                )
            }
        },
        "/metrics" => {
            #[allow(clippy::cast_precision_loss)]
            let pending = gw.pending() as f64;
            let body = gw.metrics.render(&[(
                "siirto_pending_transfers",
                "Transfers accepted but not yet at an end (last refresh).",
                pending,
            )]);
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

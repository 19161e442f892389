//! Errors as HTTP answers, in one place: `{"error": "<code>", "message": "<human text>"}`.
//!
//! Owns: [`ApiError`] and the mapping of every module's errors to a status and a stable code.
//! Clients get the code and a safe message; causes that could hold internals go to the log.

use http::StatusCode;
use hyper::Response;
use serde_json::json;

use crate::authz::AuthzError;
use crate::server::Body;
use crate::store::StoreError;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    pub fn into_response(self) -> Response<Body> {
        let body = json!({ "error": self.code, "message": self.message });
        let mut r = super::json_response(self.status, &body);
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("5"),
            );
        }
        r
    }
}

impl From<AuthzError> for ApiError {
    fn from(e: AuthzError) -> Self {
        let code = e.code();
        let status = match code {
            "malformed_token" | "token_too_large" => StatusCode::BAD_REQUEST,
            "forbidden_submitter" => StatusCode::FORBIDDEN,
            "missing_claim"
            | "invalid_claim"
            | "invalid_subject"
            | "unknown_participant"
            | "invalid_source"
            | "invalid_destination"
            | "invalid_scope"
            | "missing_identity_scope" => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::UNAUTHORIZED,
        };
        ApiError::new(status, code, e.message())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::warn!(error = %e, "store unavailable");
        ApiError::unavailable(
            "store_unavailable",
            "the gateway cannot reach its database; try again later",
        )
    }
}

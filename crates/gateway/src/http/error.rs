//! Errors as HTTP answers, in one place: `{"error": "<code>", "message": "<human text>"}`.
//!
//! Owns: [`ErrorCode`], the one list of every code the API can answer with and its status, and
//! [`ApiError`], which can only be made from one of them; the mapping of the authorization and
//! identity errors to codes. Clients get the code and a safe message; causes that could hold
//! internals go to the log. The README's table of error codes is checked against
//! [`ErrorCode::ALL`] by a test below, both ways.

use http::StatusCode;
use hyper::Response;
use serde_json::json;

use crate::server::Body;
use crate::store::StoreError;
use siirto_core::authz::AuthzError;
use siirto_core::identity::IdentityError;

/// Declares [`ErrorCode`] with its wire code and status, and [`ErrorCode::ALL`] listing every
/// variant (the list cannot miss one: it is written from the same lines).
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $status:ident $code:literal,)*) => {
        /// Every error code the API answers with. A code may appear under two statuses (as
        /// `unknown_participant` does: a certificate, or a participant named in a token); each
        /// pair is its own variant.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every variant, in the order of the declaration (by status).
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The `error` member of the answer.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            /// The HTTP status the code is answered with.
            pub fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::$status,)*
                }
            }
        }
    };
}

error_codes! {
    MalformedToken = BAD_REQUEST "malformed_token",
    TokenTooLarge = BAD_REQUEST "token_too_large",
    InvalidRequest = BAD_REQUEST "invalid_request",
    InvalidQuery = BAD_REQUEST "invalid_query",
    /// A form of the operator page lacks a field it needs, or a field is wrong.
    InvalidForm = BAD_REQUEST "invalid_form",
    IndexOutOfRange = BAD_REQUEST "index_out_of_range",
    SizeOutOfRange = BAD_REQUEST "size_out_of_range",
    UnsupportedAlg = UNAUTHORIZED "unsupported_alg",
    MissingKid = UNAUTHORIZED "missing_kid",
    WrongTyp = UNAUTHORIZED "wrong_typ",
    ForbiddenHeader = UNAUTHORIZED "forbidden_header",
    UnknownIssuer = UNAUTHORIZED "unknown_issuer",
    UnknownKid = UNAUTHORIZED "unknown_kid",
    BadSignature = UNAUTHORIZED "bad_signature",
    WrongAudience = UNAUTHORIZED "wrong_audience",
    Expired = UNAUTHORIZED "expired",
    NotYetValid = UNAUTHORIZED "not_yet_valid",
    LifetimeTooLong = UNAUTHORIZED "lifetime_too_long",
    MissingToken = UNAUTHORIZED "missing_token",
    /// The client certificate matches no participant.
    UnknownCertificate = FORBIDDEN "unknown_participant",
    /// The client certificate matches more than one participant (a directory mistake).
    AmbiguousCertificate = FORBIDDEN "ambiguous_participant",
    BadClientCertificate = FORBIDDEN "bad_client_certificate",
    NoClientCertificate = FORBIDDEN "no_client_certificate",
    ForbiddenRole = FORBIDDEN "forbidden_role",
    /// A form of the operator page came without the token of the operator's own page.
    InvalidFormToken = FORBIDDEN "invalid_form_token",
    ForbiddenCaller = FORBIDDEN "forbidden_caller",
    ForbiddenSubmitter = FORBIDDEN "forbidden_submitter",
    StatutoryNotAllowed = FORBIDDEN "statutory_not_allowed",
    GuardianRequired = FORBIDDEN "guardian_required",
    NotFound = NOT_FOUND "not_found",
    /// A check's source does not know the student.
    SourceNotFound = NOT_FOUND "source_not_found",
    NoCheckpoint = NOT_FOUND "no_checkpoint",
    MethodNotAllowed = METHOD_NOT_ALLOWED "method_not_allowed",
    RequestTimeout = REQUEST_TIMEOUT "request_timeout",
    Replay = CONFLICT "replay",
    AlreadyFinished = CONFLICT "already_finished",
    DeliveryInProgress = CONFLICT "delivery_in_progress",
    NotFailed = CONFLICT "not_failed",
    NotRetryable = CONFLICT "not_retryable",
    InvalidTransition = CONFLICT "invalid_transition",
    /// The `state` handed on is not the one the consent request was sent with.
    StateMismatch = CONFLICT "state_mismatch",
    /// The consent request was answered before.
    AlreadyUsed = CONFLICT "already_used",
    /// The consent request waited longer than `[consent] request_ttl`.
    RequestExpired = GONE "expired",
    /// An inclusion or consistency proof reaching into audit entries pruned by
    /// `[retention] audit`.
    Pruned = GONE "pruned",
    RequestTooLarge = PAYLOAD_TOO_LARGE "request_too_large",
    MissingClaim = UNPROCESSABLE_ENTITY "missing_claim",
    InvalidClaim = UNPROCESSABLE_ENTITY "invalid_claim",
    InvalidSubject = UNPROCESSABLE_ENTITY "invalid_subject",
    /// `src` or `dst` names no participant.
    UnknownParticipant = UNPROCESSABLE_ENTITY "unknown_participant",
    InvalidSource = UNPROCESSABLE_ENTITY "invalid_source",
    InvalidDestination = UNPROCESSABLE_ENTITY "invalid_destination",
    InvalidScope = UNPROCESSABLE_ENTITY "invalid_scope",
    MissingIdentityScope = UNPROCESSABLE_ENTITY "missing_identity_scope",
    InvalidActor = UNPROCESSABLE_ENTITY "invalid_actor",
    ConsentTextMismatch = UNPROCESSABLE_ENTITY "consent_text_mismatch",
    /// The `redirect_uri` is not one of the e-service's `redirect_uris`.
    InvalidRedirectUri = UNPROCESSABLE_ENTITY "invalid_redirect_uri",
    InvalidJwks = UNPROCESSABLE_ENTITY "invalid_jwks",
    /// A check's `question` is not one of the four.
    UnknownQuestion = UNPROCESSABLE_ENTITY "unknown_question",
    /// A check's source format cannot answer its question (refused before any fetch).
    QuestionNotSupported = UNPROCESSABLE_ENTITY "question_not_supported",
    HeadersTooLarge = REQUEST_HEADER_FIELDS_TOO_LARGE "headers_too_large",
    CheckpointInvalid = INTERNAL_SERVER_ERROR "checkpoint_invalid",
    ReloadFailed = INTERNAL_SERVER_ERROR "reload_failed",
    /// A check's source (or KOSKI OmaData's authorization server, needed to answer now)
    /// could not be reached or answered with a temporary error.
    SourceUnavailable = BAD_GATEWAY "source_unavailable",
    /// A check's source refused for good.
    SourceRefused = BAD_GATEWAY "source_refused",
    /// A check's source document is not valid for its format or cannot be read.
    InvalidSourceDocument = BAD_GATEWAY "invalid_source_document",
    /// A check's source document is about someone else.
    SubjectMismatch = BAD_GATEWAY "subject_mismatch",
    StoreUnavailable = SERVICE_UNAVAILABLE "store_unavailable",
    Overloaded = SERVICE_UNAVAILABLE "overloaded",
    AuditLogUnverified = SERVICE_UNAVAILABLE "audit_log_unverified",
    /// The stored audit log does not verify and `[audit] on_broken = "refuse"`.
    AuditUnavailable = SERVICE_UNAVAILABLE "audit_unavailable",
    /// A check's source did not answer within `[checks] timeout`.
    SourceTimeout = GATEWAY_TIMEOUT "source_timeout",
}

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// The `Allow` header of a `405` answer: the methods the path takes.
    pub allow: Option<String>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            allow: None,
        }
    }

    /// `405 method_not_allowed`, answered with `Allow: allow`.
    pub fn method_not_allowed(message: impl Into<String>, allow: String) -> Self {
        ApiError {
            allow: Some(allow),
            ..ApiError::new(ErrorCode::MethodNotAllowed, message)
        }
    }

    pub fn not_found() -> Self {
        ApiError::new(ErrorCode::NotFound, "no such resource")
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    pub fn into_response(self) -> Response<Body> {
        let body = json!({ "error": self.code.as_str(), "message": self.message });
        let mut r = super::json_response(self.status(), &body);
        if self.status() == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("5"),
            );
        }
        if let Some(allow) = self
            .allow
            .and_then(|a| http::HeaderValue::from_str(&a).ok())
        {
            r.headers_mut().insert(http::header::ALLOW, allow);
        }
        r
    }
}

impl From<AuthzError> for ApiError {
    fn from(e: AuthzError) -> Self {
        use AuthzError as A;
        let code = match &e {
            A::Malformed(_) => ErrorCode::MalformedToken,
            A::TooLarge(_) => ErrorCode::TokenTooLarge,
            A::UnsupportedAlg(_) | A::MissingAlg | A::AlgorithmKeyMismatch { .. } => {
                ErrorCode::UnsupportedAlg
            }
            A::MissingKid => ErrorCode::MissingKid,
            A::WrongTyp { .. } => ErrorCode::WrongTyp,
            A::ForbiddenHeader(_) => ErrorCode::ForbiddenHeader,
            A::UnknownIssuer(_) => ErrorCode::UnknownIssuer,
            A::UnknownKid { .. } => ErrorCode::UnknownKid,
            A::BadSignature => ErrorCode::BadSignature,
            A::MissingClaim(_) => ErrorCode::MissingClaim,
            A::InvalidClaim { .. } => ErrorCode::InvalidClaim,
            A::WrongAudience => ErrorCode::WrongAudience,
            A::Expired(_) => ErrorCode::Expired,
            A::NotYetValid { .. } => ErrorCode::NotYetValid,
            A::LifetimeTooLong { .. } => ErrorCode::LifetimeTooLong,
            A::InvalidSubject(_) => ErrorCode::InvalidSubject,
            A::UnknownParticipant { .. } => ErrorCode::UnknownParticipant,
            A::InvalidSource(_) => ErrorCode::InvalidSource,
            A::InvalidDestination(_) | A::SourceIsDestination(_) => ErrorCode::InvalidDestination,
            A::InvalidScope(_) => ErrorCode::InvalidScope,
            A::MissingIdentityScope => ErrorCode::MissingIdentityScope,
            A::ForbiddenSubmitter { .. } => ErrorCode::ForbiddenSubmitter,
            A::StatutoryNotAllowed { .. } => ErrorCode::StatutoryNotAllowed,
            A::GuardianRequired { .. } => ErrorCode::GuardianRequired,
            A::InvalidActor(_) => ErrorCode::InvalidActor,
            A::ConsentTextMismatch { .. } => ErrorCode::ConsentTextMismatch,
            A::UnknownQuestion(_) => ErrorCode::UnknownQuestion,
            A::QuestionNotSupported { .. } => ErrorCode::QuestionNotSupported,
        };
        ApiError::new(code, e.message())
    }
}

impl From<&IdentityError> for ApiError {
    /// The certificate's subject and the participants it matched stay in the audit entry: the
    /// caller is told what is wrong, not what the directory holds.
    fn from(e: &IdentityError) -> Self {
        match e {
            IdentityError::NoCertificate => ApiError::new(
                ErrorCode::NoClientCertificate,
                "this API needs a client certificate",
            ),
            IdentityError::Unparsable(_) => ApiError::new(
                ErrorCode::BadClientCertificate,
                "the client certificate cannot be read",
            ),
            IdentityError::UnknownParticipant { .. } => ApiError::new(
                ErrorCode::UnknownCertificate,
                "this client certificate belongs to no known participant",
            ),
            IdentityError::AmbiguousParticipant { .. } => ApiError::new(
                ErrorCode::AmbiguousCertificate,
                "this client certificate matches more than one participant in the gateway's \
                 directory; the gateway's operator must make the participants' certificate \
                 rules distinct",
            ),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::warn!(error = %e, "store unavailable");
        ApiError::new(
            ErrorCode::StoreUnavailable,
            "the gateway cannot reach its database; try again later",
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use siirto_core::clock::Timestamp;
    use siirto_core::student_id::StudentId;

    /// `(status, code)` of every row of the README's table of error codes: the table that
    /// starts with the header `| status | code |`.
    fn readme_codes(readme: &str) -> BTreeSet<(u16, String)> {
        let mut lines = readme
            .lines()
            .skip_while(|l| !l.starts_with("| status | code |"));
        assert!(
            lines.next().is_some(),
            "the README has no `| status | code |` table"
        );
        lines
            .skip(1) // the |---| line
            .take_while(|l| l.starts_with('|'))
            .map(|row| {
                let cells: Vec<&str> = row.split('|').map(str::trim).collect();
                let status = cells[1].parse::<u16>().unwrap_or_else(|_| {
                    panic!("README error table: {:?} is not a status: {row}", cells[1])
                });
                let code = cells[2]
                    .strip_prefix('`')
                    .and_then(|c| c.strip_suffix('`'))
                    .unwrap_or_else(|| panic!("README error table: no `code` in {row}"));
                (status, code.to_owned())
            })
            .collect()
    }

    #[test]
    fn the_readme_lists_every_code_with_its_status_and_no_other() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
                .unwrap();
        let documented = readme_codes(&readme);
        let answered: BTreeSet<(u16, String)> = ErrorCode::ALL
            .iter()
            .map(|c| (c.status().as_u16(), c.as_str().to_owned()))
            .collect();
        let undocumented: Vec<_> = answered.difference(&documented).collect();
        let unknown: Vec<_> = documented.difference(&answered).collect();
        assert!(
            undocumented.is_empty() && unknown.is_empty(),
            "answered but not in the README: {undocumented:?}; in the README but never \
             answered: {unknown:?}"
        );
        assert_eq!(
            answered.len(),
            ErrorCode::ALL.len(),
            "a (status, code) twice"
        );
    }

    #[test]
    fn codes_are_snake_case_and_error_statuses() {
        for c in ErrorCode::ALL {
            let s = c.as_str();
            assert!(
                !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s}"
            );
            assert!(
                c.status().is_client_error() || c.status().is_server_error(),
                "{s}"
            );
        }
    }

    /// One of every authorization error: each maps to the code `AuthzError::code` names (the
    /// code the audit entry and the metrics carry), under the README's status.
    #[test]
    fn authorization_errors_keep_their_codes() {
        let subject_error = StudentId::parse("x").unwrap_err();
        let samples = vec![
            (AuthzError::Malformed("x".into()), 400),
            (AuthzError::TooLarge(1), 400),
            (AuthzError::UnsupportedAlg("HS256".into()), 401),
            (AuthzError::MissingAlg, 401),
            (
                AuthzError::AlgorithmKeyMismatch {
                    alg: siirto_core::authz::Algorithm::Es256,
                    kid: "k".into(),
                    key_type: "RSA",
                },
                401,
            ),
            (AuthzError::MissingKid, 401),
            (
                AuthzError::WrongTyp {
                    expected: "a",
                    found: "b".into(),
                },
                401,
            ),
            (AuthzError::ForbiddenHeader("jku"), 401),
            (AuthzError::UnknownIssuer("i".into()), 401),
            (
                AuthzError::UnknownKid {
                    issuer: "i".into(),
                    kid: "k".into(),
                },
                401,
            ),
            (AuthzError::BadSignature, 401),
            (AuthzError::WrongAudience, 401),
            (AuthzError::Expired(Timestamp::from_secs(0)), 401),
            (
                AuthzError::NotYetValid {
                    claim: "nbf",
                    at: Timestamp::from_secs(0),
                },
                401,
            ),
            (
                AuthzError::LifetimeTooLong {
                    lifetime_secs: 2,
                    max_secs: 1,
                },
                401,
            ),
            (
                AuthzError::ForbiddenSubmitter {
                    caller: "a".into(),
                    destination: "b".into(),
                },
                403,
            ),
            (AuthzError::MissingClaim("jti"), 422),
            (
                AuthzError::InvalidClaim {
                    claim: "jti",
                    reason: "r".into(),
                },
                422,
            ),
            (AuthzError::InvalidSubject(subject_error), 422),
            (
                AuthzError::UnknownParticipant {
                    claim: "src",
                    id: "x".into(),
                },
                422,
            ),
            (AuthzError::InvalidSource("x".into()), 422),
            (AuthzError::InvalidDestination("x".into()), 422),
            (AuthzError::SourceIsDestination("x".into()), 422),
            (AuthzError::InvalidScope("x".into()), 422),
            (AuthzError::MissingIdentityScope, 422),
        ];
        for (e, status) in samples {
            let code = e.code();
            let message = e.message();
            let api = ApiError::from(e);
            assert_eq!(api.code.as_str(), code);
            assert_eq!(api.status().as_u16(), status, "{code}");
            assert_eq!(api.message, message);
        }
    }

    #[test]
    fn each_certificate_refusal_has_its_own_code_and_message() {
        let errors = [
            IdentityError::NoCertificate,
            IdentityError::Unparsable("x".into()),
            IdentityError::UnknownParticipant {
                subject: "CN=x".into(),
            },
            IdentityError::AmbiguousParticipant {
                subject: "CN=x".into(),
                participants: vec!["a".into(), "b".into()],
            },
        ];
        let answers: Vec<ApiError> = errors.iter().map(ApiError::from).collect();
        for (e, a) in errors.iter().zip(&answers) {
            assert_eq!(a.code.as_str(), e.code());
            assert_eq!(a.status(), StatusCode::FORBIDDEN);
            assert!(!a.message.contains("CN=x"), "{}", a.message);
        }
        let messages: BTreeSet<&str> = answers.iter().map(|a| a.message.as_str()).collect();
        assert_eq!(messages.len(), answers.len(), "{messages:?}");
        assert!(answers[3].message.contains("more than one participant"));
    }
}

//! `protocol = "koski-omadata"`: KOSKI's OmaData OAuth2 interface, as KOSKI's document
//! describes it (`../shared/corpus/koski/omadata_oauth2.md`; CONTRACT.md, "Consent given at
//! the register: KOSKI OmaData"): authorization code flow with PKCE, `form_post`, mutual-TLS
//! client authentication at the token endpoint (RFC 8705 §2.1 `tls_client_auth`, without
//! certificate-bound tokens), and a resource endpoint called with the same client certificate
//! and `Authorization: Bearer` (RFC 6750 §2.1).
//!
//! Owns: the three requests — the RFC 8414 metadata (`GET {issuer}/.well-known/
//! oauth-authorization-server`, the form KOSKI publishes), the token request (RFC 6749 §4.1.3
//! with RFC 7636 §4.5 `code_verifier`, `application/x-www-form-urlencoded`, `client_id` in the
//! body as RFC 8705 §2.1 asks of a `tls_client_auth` client), and the resource request
//! (`POST {omadata_resource}`) — and what their answers mean.
//!
//! It must not keep a code, a token or a verifier anywhere but in the request it builds: no
//! error, step or log line holds one. Of an error answer only the OAuth `error` code is kept,
//! never `error_description` (it may quote the request).

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use siirto_core::omadata::{Secret, TokenAnswer};
use siirto_core::protocol::OmadataCall;
use siirto_core::student_id::StudentId;

use super::{Answer, Fetched, RequestError, SourceCall, http_request};

/// The source side of an OmaData source: the resource request and its answers. A fetch never
/// starts from a student id alone (the person's consent at KOSKI comes first), so
/// [`SourceCall::request`] refuses; [`Outbound::omadata_fetch`](super::Outbound::omadata_fetch)
/// builds the request with the token.
pub struct Omadata {
    pub call: OmadataCall,
}

impl Omadata {
    /// `GET {issuer}/.well-known/oauth-authorization-server` (the form of KOSKI's published
    /// metadata address, CONTRACT.md).
    pub fn metadata_request(&self) -> Result<Request<Full<Bytes>>, RequestError> {
        let uri = format!("{}{}", self.call.issuer, siirto_core::omadata::WELL_KNOWN);
        http_request(
            Method::GET,
            &uri,
            &[("accept", "application/json")],
            Bytes::new(),
        )
    }

    /// RFC 6749 §4.1.3 + RFC 7636 §4.5: the access token request.
    pub fn token_request(
        &self,
        token_endpoint: &str,
        code: &Secret,
        redirect_uri: &str,
        verifier: &Secret,
    ) -> Result<Request<Full<Bytes>>, RequestError> {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code.expose())
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("client_id", &self.call.client_id)
            .append_pair("code_verifier", verifier.expose())
            .finish();
        http_request(
            Method::POST,
            token_endpoint,
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("accept", "application/json"),
            ],
            Bytes::from(body),
        )
    }

    /// `POST {omadata_resource}` with the bearer token (RFC 6750 §2.1).
    pub fn resource_request(&self, token: &Secret) -> Result<Request<Full<Bytes>>, RequestError> {
        let bearer = format!("Bearer {}", token.expose());
        http_request(
            Method::POST,
            &self.call.resource,
            &[("authorization", &bearer), ("accept", "application/json")],
            Bytes::new(),
        )
    }
}

impl SourceCall for Omadata {
    fn request(
        &self,
        _base_url: &str,
        _subject: &StudentId,
        _transfer_id: &str,
    ) -> Result<Request<Full<Bytes>>, RequestError> {
        Err(RequestError(
            "a KOSKI OmaData source is fetched only on the person's consent given at KOSKI",
        ))
    }

    fn classify(&self, answer: Answer<'_>, _subject: &StudentId) -> Fetched {
        classify_resource(answer.status, answer.body, &self.call.scope)
    }
}

/// The resource endpoint's answer: 200 the oppija JSON; 404 nothing stored for the person
/// (KOSKI's document); 5xx try again; any other status (401/403 a token refused) permanent.
/// A 200's `tokenInfo` says which scope the person consented to: KOSKI's document warns that
/// the person can change the scope before consenting, so anything but the scope asked
/// (`asked`, compared as sets) is refused. `tokenInfo` is then taken out of the document (it
/// is about the token, not the student).
pub fn classify_resource(status: StatusCode, body: &Bytes, asked: &str) -> Fetched {
    let code = status.as_u16();
    match code {
        200 => match strip_token_info(body, asked) {
            Ok(document) => Fetched::Found(document),
            Err(detail) => Fetched::Refused {
                status: 200,
                detail,
            },
        },
        404 => Fetched::NotFound,
        _ if status.is_server_error() => Fetched::Unavailable {
            status: code,
            detail: String::new(),
        },
        _ => Fetched::Refused {
            status: code,
            detail: String::new(),
        },
    }
}

/// Checks and removes `tokenInfo` of a resource answer (see [`classify_resource`]). A body
/// that is not a JSON object is passed on as it is, for the `koski` format to refuse.
fn strip_token_info(body: &Bytes, asked: &str) -> Result<Bytes, String> {
    let Ok(serde_json::Value::Object(mut document)) = serde_json::from_slice(body) else {
        return Ok(body.clone());
    };
    let Some(info) = document.remove("tokenInfo") else {
        return Ok(body.clone());
    };
    let granted = info
        .get("scope")
        .and_then(|s| s.as_str())
        .unwrap_or_default();
    let set = |s: &str| {
        let mut v: Vec<String> = s.split_whitespace().map(str::to_owned).collect();
        v.sort();
        v.dedup();
        v
    };
    if set(granted) != set(asked) {
        return Err(format!(
            "KOSKI granted the scope \"{}\", not the one asked (\"{asked}\")",
            set(granted).join(" ")
        ));
    }
    serde_json::to_vec(&document)
        .map(Bytes::from)
        .map_err(|_| "the answer could not be written back".to_owned())
}

/// The token endpoint's answer as a call's outcome: the token, or `source_refused` with the
/// OAuth error code (RFC 6749 §5.2), or `source_unavailable` for a 5xx.
pub fn classify_token(status: StatusCode, body: &Bytes) -> Result<Secret, Fetched> {
    let code = status.as_u16();
    match TokenAnswer::parse(code, body) {
        TokenAnswer::Token(t) => Ok(t),
        TokenAnswer::Error(e) if !status.is_server_error() => Err(Fetched::Refused {
            status: code,
            detail: format!("token endpoint: {e}"),
        }),
        _ if status.is_server_error() => Err(Fetched::Unavailable {
            status: code,
            detail: "token endpoint".into(),
        }),
        TokenAnswer::Error(e) => Err(Fetched::Refused {
            status: code,
            detail: format!("token endpoint: {e}"),
        }),
        TokenAnswer::Unreadable(why) => Err(Fetched::Refused {
            status: code,
            detail: format!("token endpoint: {why}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn omadata() -> Omadata {
        Omadata {
            call: OmadataCall {
                client_id: "siirto".into(),
                issuer: "https://koski.example/omadata-oauth2".into(),
                resource: "https://koski.example/koski/api/omadata-oauth2/resource-server".into(),
                scope: "HENKILOTIEDOT_KAIKKI_TIEDOT OPISKELUOIKEUDET_KAIKKI_TIEDOT".into(),
            },
        }
    }

    #[test]
    fn the_token_request_is_rfc6749_4_1_3_with_the_verifier() {
        let r = omadata()
            .token_request(
                "https://koski.example/omadata-oauth2/token",
                &Secret::new("c0de/+"),
                "https://portal.example/back?x=1",
                &Secret::new("v".repeat(43)),
            )
            .expect("request");
        assert_eq!(r.method(), Method::POST);
        assert_eq!(
            r.headers()["content-type"],
            "application/x-www-form-urlencoded"
        );
        let body = futures_body(r);
        let pairs: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("grant_type".into(), "authorization_code".into()),
                ("code".into(), "c0de/+".into()),
                (
                    "redirect_uri".into(),
                    "https://portal.example/back?x=1".into()
                ),
                ("client_id".into(), "siirto".into()),
                ("code_verifier".into(), "v".repeat(43)),
            ]
        );
    }

    fn futures_body(r: Request<Full<Bytes>>) -> String {
        use http_body_util::BodyExt;
        let body = r.into_body();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let bytes = rt.block_on(body.collect()).expect("body").to_bytes();
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    #[test]
    fn the_resource_request_carries_the_bearer_token_in_a_header_only() {
        let r = omadata()
            .resource_request(&Secret::new("tok3n"))
            .expect("request");
        assert_eq!(r.method(), Method::POST);
        assert_eq!(r.headers()["authorization"], "Bearer tok3n");
        assert!(!r.uri().to_string().contains("tok3n"));
        let m = omadata().metadata_request().expect("request");
        assert_eq!(
            m.uri().to_string(),
            "https://koski.example/omadata-oauth2/.well-known/oauth-authorization-server"
        );
    }

    #[test]
    fn answers_are_classified() {
        let asked = "HENKILOTIEDOT_KAIKKI_TIEDOT OPISKELUOIKEUDET_KAIKKI_TIEDOT";
        let b = Bytes::from_static(b"{}");
        assert_eq!(
            classify_resource(StatusCode::OK, &b, asked),
            Fetched::Found(b.clone())
        );
        assert_eq!(
            classify_resource(StatusCode::NOT_FOUND, &b, asked),
            Fetched::NotFound
        );
        assert!(matches!(
            classify_resource(StatusCode::UNAUTHORIZED, &b, asked),
            Fetched::Refused { status: 401, .. }
        ));
        assert!(matches!(
            classify_resource(StatusCode::BAD_GATEWAY, &b, asked),
            Fetched::Unavailable { status: 502, .. }
        ));
        let same = Bytes::from_static(
            br#"{"henkil\u00f6":{},"tokenInfo":{"scope":"OPISKELUOIKEUDET_KAIKKI_TIEDOT HENKILOTIEDOT_KAIKKI_TIEDOT"}}"#,
        );
        let Fetched::Found(stripped) = classify_resource(StatusCode::OK, &same, asked) else {
            panic!("found");
        };
        assert!(!String::from_utf8_lossy(&stripped).contains("tokenInfo"));
        let other = Bytes::from_static(
            br#"{"tokenInfo":{"scope":"HENKILOTIEDOT_KAIKKI_TIEDOT OPISKELUOIKEUDET_SUORITETUT_TUTKINNOT"}}"#,
        );
        assert!(matches!(
            classify_resource(StatusCode::OK, &other, asked),
            Fetched::Refused { status: 200, .. }
        ));
        let grant =
            Bytes::from_static(br#"{"error":"invalid_grant","error_description":"code 123"}"#);
        let Err(Fetched::Refused {
            status: 400,
            detail,
        }) = classify_token(StatusCode::BAD_REQUEST, &grant)
        else {
            panic!("refused");
        };
        assert_eq!(detail, "token endpoint: invalid_grant");
        assert!(matches!(
            classify_token(StatusCode::SERVICE_UNAVAILABLE, &Bytes::new()),
            Err(Fetched::Unavailable { status: 503, .. })
        ));
        let ok = Bytes::from_static(br#"{"access_token":"t","token_type":"Bearer"}"#);
        assert_eq!(classify_token(StatusCode::OK, &ok), Ok(Secret::new("t")));
    }
}

//! `protocol = "koski"`: KOSKI's luovutuspalvelu v1, as its published documentation describes
//! it (`../shared/corpus/koski/rajapinnat_luovutuspalvelu.md`; CONTRACT.md, "Source
//! protocols").
//!
//! Owns: the request — `POST {base_url}{koski_path}/hetu` with
//! `{"v": 1, "hetu": …, "opiskeluoikeudenTyypit": […]}`, or `…/oid` with `"oid"` for a learner
//! number; `Content-Type: application/json` — and what KOSKI's answers mean: 200 the oppija
//! JSON (read later by the `koski` format), 404 with the key
//! `notFound.oppijaaEiLöydyTaiEiOikeuksia` not found (no person, or nothing of the asked
//! types), 5xx (`unavailable.virta`, `unavailable.ytr`) try again, any other 4xx — 400, 401,
//! 403, and a 404 without that key (a wrong `koski_path`) — a permanent refusal.
//!
//! The henkilötunnus goes in the body only: KOSKI uses POST so that identifiers stay out of
//! URLs and the logs that keep them. Of an error answer only KOSKI's error keys are kept, never
//! its messages (they may quote the identifier asked about).

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};
use siirto_core::protocol::KoskiCall;
use siirto_core::student_id::{StudentId, StudentIdKind};

use super::{Answer, Fetched, RequestError, SourceCall, http_request};

/// The error key of KOSKI's "not found" answer (the message beside it may change).
pub const NOT_FOUND_KEY: &str = "notFound.oppijaaEiLöydyTaiEiOikeuksia";

/// Error keys kept from one answer, and the longest key kept.
const MAX_KEYS: usize = 5;
const MAX_KEY_CHARS: usize = 100;

/// A KOSKI luovutuspalvelu source.
pub struct Koski {
    path: String,
    types: Vec<String>,
}

impl Koski {
    pub fn new(call: &KoskiCall) -> Koski {
        Koski {
            path: call.path.clone(),
            types: call.types.clone(),
        }
    }

    /// The endpoint and JSON body asking for `subject` (pure, for the tests too).
    fn endpoint_and_body(&self, subject: &StudentId) -> (&'static str, Value) {
        let (endpoint, field) = match subject.kind() {
            StudentIdKind::Henkilotunnus => ("hetu", "hetu"),
            StudentIdKind::LearnerOid => ("oid", "oid"),
        };
        let body = json!({
            "v": 1,
            field: subject.as_str(),
            "opiskeluoikeudenTyypit": self.types,
        });
        (endpoint, body)
    }
}

impl SourceCall for Koski {
    fn request(
        &self,
        base_url: &str,
        subject: &StudentId,
        _transfer_id: &str,
    ) -> Result<Request<Full<Bytes>>, RequestError> {
        let (endpoint, body) = self.endpoint_and_body(subject);
        let uri = format!("{base_url}{}/{endpoint}", self.path);
        let body = serde_json::to_vec(&body)
            .map_err(|_| RequestError("the KOSKI request body could not be written"))?;
        http_request(
            Method::POST,
            &uri,
            &[
                ("content-type", "application/json"),
                ("accept", "application/json"),
            ],
            Bytes::from(body),
        )
    }

    fn classify(&self, answer: Answer<'_>, _subject: &StudentId) -> Fetched {
        classify(answer.status, answer.body)
    }
}

fn classify(status: StatusCode, body: &Bytes) -> Fetched {
    let code = status.as_u16();
    if code == 200 {
        return Fetched::Found(body.clone());
    }
    let keys = error_keys(body);
    if code == 404 && keys.iter().any(|k| k == NOT_FOUND_KEY) {
        return Fetched::NotFound;
    }
    let mut detail = if keys.is_empty() {
        String::new()
    } else {
        keys.join(", ")
    };
    if code == 404 {
        detail = format!(
            "404 without {NOT_FOUND_KEY} (is `koski_path` right?){}",
            if detail.is_empty() {
                String::new()
            } else {
                format!("; keys: {detail}")
            }
        );
    }
    if status.is_client_error() {
        Fetched::Refused {
            status: code,
            detail,
        }
    } else {
        Fetched::Unavailable {
            status: code,
            detail,
        }
    }
}

/// The `key`s of KOSKI's error body `[{"key": …, "message": …}, …]`: at most five, each only
/// letters, digits and dots (KOSKI's keys are `category.subcategory.name`). Messages are
/// dropped: they may quote the identifier asked about.
fn error_keys(body: &[u8]) -> Vec<String> {
    let Ok(Value::Array(errors)) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    errors
        .iter()
        .filter_map(|e| e.get("key")?.as_str())
        .filter(|k| {
            !k.is_empty()
                && k.chars().count() <= MAX_KEY_CHARS
                && k.chars().all(|c| c.is_alphanumeric() || c == '.')
        })
        .take(MAX_KEYS)
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HETU: &str = "131052-308T";

    fn koski() -> Koski {
        Koski::new(&KoskiCall {
            path: "/koski/api/luovutuspalvelu".into(),
            types: vec!["perusopetus".into(), "lukiokoulutus".into()],
        })
    }

    fn errors(pairs: &[(&str, &str)]) -> Bytes {
        let v: Vec<Value> = pairs
            .iter()
            .map(|(k, m)| json!({"key": k, "message": m}))
            .collect();
        Bytes::from(serde_json::to_vec(&v).expect("json"))
    }

    #[test]
    fn a_henkilotunnus_goes_in_the_body_only() {
        let subject = StudentId::parse(HETU).expect("valid");
        let request = koski()
            .request("https://koski.example:443", &subject, "t-1")
            .expect("request");
        assert_eq!(request.method(), Method::POST);
        assert_eq!(
            request.uri().to_string(),
            "https://koski.example:443/koski/api/luovutuspalvelu/hetu"
        );
        assert_eq!(request.headers()["content-type"], "application/json");
        for (name, value) in request.headers() {
            assert!(
                !value.as_bytes().windows(11).any(|w| w == HETU.as_bytes()),
                "{name}"
            );
        }
        let (_, body) = koski().endpoint_and_body(&subject);
        assert_eq!(
            body,
            json!({"v": 1, "hetu": HETU, "opiskeluoikeudenTyypit": ["perusopetus", "lukiokoulutus"]})
        );
    }

    #[test]
    fn a_learner_number_asks_the_oid_endpoint() {
        let subject = StudentId::parse("1.2.246.562.24.10000000008").expect("valid");
        let request = koski()
            .request("https://koski.example", &subject, "t-1")
            .expect("request");
        assert_eq!(request.uri().path(), "/koski/api/luovutuspalvelu/oid");
        let (endpoint, body) = koski().endpoint_and_body(&subject);
        assert_eq!(endpoint, "oid");
        assert_eq!(body["oid"], "1.2.246.562.24.10000000008");
        assert!(body.get("hetu").is_none());
    }

    #[test]
    fn answers_map_as_the_documentation_says() {
        let found = Bytes::from_static("{\"henkilö\": {}, \"opiskeluoikeudet\": []}".as_bytes());
        assert_eq!(
            classify(StatusCode::OK, &found),
            Fetched::Found(found.clone())
        );
        let not_found = errors(&[(NOT_FOUND_KEY, "Oppijaa (hetu) ei löydy")]);
        assert_eq!(
            classify(StatusCode::NOT_FOUND, &not_found),
            Fetched::NotFound
        );
        // A 404 without KOSKI's key is a wrong path, not an unknown student.
        let Fetched::Refused {
            status: 404,
            detail,
        } = classify(StatusCode::NOT_FOUND, &Bytes::from_static(b"<html>"))
        else {
            panic!("a bare 404 is a refusal");
        };
        assert!(detail.contains("koski_path"), "{detail}");
        let unavailable = errors(&[("unavailable.virta", "Korkeakoulutuksen ...")]);
        assert_eq!(
            classify(StatusCode::SERVICE_UNAVAILABLE, &unavailable),
            Fetched::Unavailable {
                status: 503,
                detail: "unavailable.virta".into()
            }
        );
        for status in [400, 401, 403, 409, 415] {
            let refused = classify(
                StatusCode::from_u16(status).expect("status"),
                &errors(&[("forbidden.vainViranomainen", "x")]),
            );
            assert_eq!(
                refused,
                Fetched::Refused {
                    status,
                    detail: "forbidden.vainViranomainen".into()
                }
            );
        }
        assert!(matches!(
            classify(StatusCode::BAD_GATEWAY, &Bytes::new()),
            Fetched::Unavailable { status: 502, .. }
        ));
    }

    #[test]
    fn error_messages_are_never_kept() {
        let body = errors(&[
            (
                "notFound.oppijaaEiLöydyTaiEiOikeuksia",
                "Oppijaa 131052-308T ei löydy",
            ),
            ("bad key with spaces 131052-308T", "x"),
        ]);
        let keys = error_keys(&body);
        assert_eq!(keys, vec![NOT_FOUND_KEY.to_owned()]);
        let Fetched::Refused { detail, .. } = classify(StatusCode::BAD_REQUEST, &body) else {
            panic!("refused");
        };
        assert!(!detail.contains(HETU), "{detail}");
        assert!(error_keys(b"not json").is_empty());
    }
}

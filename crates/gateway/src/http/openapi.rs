//! `GET /v1/openapi.json`: the OpenAPI 3.1 description of the API, kept in the repository as
//! `docs/openapi.yaml` (the form people edit and review) and served as JSON (the form X-Road's
//! service registration and API tools read). The YAML is read once, at the first request.
//!
//! The tests keep the document and [`super::ROUTES`] in step: every route is documented and
//! every documented operation is a route.

use std::sync::{Arc, OnceLock};

use http::{Response, StatusCode};
use serde_json::{Map, Number, Value};
use yaml_rust2::{Yaml, YamlLoader};

use super::{ApiError, Body, json_response};
use crate::state::Gateway;
use siirto_core::identity::AuthenticatedParticipant;

/// The document as written.
pub const YAML: &str = include_str!("../../../../docs/openapi.yaml");

/// The document as JSON.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| match parse(YAML) {
        Ok(v) => v,
        // The tests parse the same text, so a release cannot carry a broken document; should
        // one slip through, the answer says so instead of failing the request.
        Err(e) => serde_json::json!({ "error": format!("docs/openapi.yaml does not parse: {e}") }),
    })
}

/// YAML (one document) → JSON. Mapping keys must be strings (OpenAPI's are).
pub fn parse(text: &str) -> Result<Value, String> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| e.to_string())?;
    match docs.as_slice() {
        [doc] => to_json(doc),
        other => Err(format!("expected one YAML document, found {}", other.len())),
    }
}

fn to_json(y: &Yaml) -> Result<Value, String> {
    Ok(match y {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::Number((*i).into()),
        Yaml::Real(r) => {
            let f: f64 = r.parse().map_err(|_| format!("not a number: {r}"))?;
            Number::from_f64(f)
                .map(Value::Number)
                .ok_or_else(|| format!("not a finite number: {r}"))?
        }
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Array(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Yaml::Hash(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let Yaml::String(key) = k else {
                    return Err(format!("a mapping key is not a string: {k:?}"));
                };
                out.insert(key.clone(), to_json(v)?);
            }
            Value::Object(out)
        }
        Yaml::Alias(_) | Yaml::BadValue => return Err(format!("unsupported YAML value: {y:?}")),
    })
}

/// `GET /v1/openapi.json`: any participant.
pub fn serve(
    _gw: &Arc<Gateway>,
    _caller: &AuthenticatedParticipant,
) -> Result<Response<Body>, ApiError> {
    Ok(json_response(StatusCode::OK, document()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::http::ROUTES;

    /// (method, path) of every operation the document describes.
    fn documented() -> BTreeSet<(String, String)> {
        let doc = parse(YAML).unwrap();
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
        out
    }

    /// The OpenAPI path of a route: `{id}` stays a path parameter; the operator page's
    /// trailing `*` (any sub-page) is documented as `/operator`.
    fn openapi_path(segments: &[&str]) -> String {
        let kept: Vec<&str> = segments.iter().copied().filter(|s| *s != "*").collect();
        format!("/{}", kept.join("/"))
    }

    #[test]
    fn every_route_is_documented_and_every_documented_operation_is_a_route() {
        let routes: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|r| (r.method.to_string(), openapi_path(r.path)))
            .collect();
        let documented = documented();
        let undocumented: Vec<_> = routes.difference(&documented).collect();
        let missing: Vec<_> = documented.difference(&routes).collect();
        assert!(
            undocumented.is_empty(),
            "routes missing from docs/openapi.yaml: {undocumented:?}"
        );
        assert!(
            missing.is_empty(),
            "documented operations the gateway does not have: {missing:?}"
        );
    }

    #[test]
    fn the_document_is_openapi_3_1_and_every_reference_resolves() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        // Every "$ref" points at something in the document.
        fn refs(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    for (k, v) in m {
                        if k == "$ref" {
                            out.push(v.as_str().unwrap().to_owned());
                        } else {
                            refs(v, out);
                        }
                    }
                }
                Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        refs(doc, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let pointer = r.strip_prefix('#').unwrap();
            assert!(doc.pointer(pointer).is_some(), "{r} resolves");
        }
        // Every error status an operation lists answers the common error body.
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for (status, response) in op["responses"].as_object().unwrap() {
                    assert!(
                        status.len() == 3 && status.chars().all(|c| c.is_ascii_digit()),
                        "{method} {path}: status {status}"
                    );
                    assert!(
                        response.get("$ref").is_some() || response.get("description").is_some(),
                        "{method} {path} {status} has a description"
                    );
                }
            }
        }
    }

    #[test]
    fn every_error_code_status_is_one_the_document_knows() {
        let doc = document();
        let statuses: BTreeSet<u16> = crate::http::error::ErrorCode::ALL
            .iter()
            .map(|c| c.status().as_u16())
            .collect();
        let responses = doc["components"]["responses"].as_object().unwrap();
        // Each status of the error list is described by one of the shared error responses.
        let described: BTreeSet<u16> = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .flat_map(|op| op["responses"].as_object().unwrap().keys())
            .filter_map(|s| s.parse().ok())
            .collect();
        for s in statuses {
            // 405 and 431 come from the HTTP layer for any path, not from one operation.
            if matches!(s, 405 | 431) {
                continue;
            }
            assert!(described.contains(&s), "no operation documents status {s}");
        }
        assert!(responses.contains_key("Unavailable"));
    }
}

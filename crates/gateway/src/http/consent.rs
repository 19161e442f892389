//! `GET /v1/consent-text?src=&dst=&scope=&purpose=&lang=[&basis=][&question=]`: the words an
//! e-service shows a student (or a guardian) before they agree, and their SHA-256, which the
//! signed authorization then carries as `consent_sha256` (CONTRACT.md "Legal basis, guardians,
//! and the consent text").
//!
//! Owns: reading the parameters (each problem is `400 invalid_request` naming the parameter)
//! and the answer `{"version", "lang", "text", "sha256", "previous_sha256"}`. The text itself
//! is composed by `siirto_core::consent` from the reviewed text files; the same composition
//! checks `consent_sha256` when an authorization arrives, so the hash answered here is the one
//! a submission is held to.
//!
//! Must not: take personal data (the text names organisations, never a person) or audit
//! anything of a student.

use http::StatusCode;
use hyper::Response;
use serde_json::{Value, json};

use super::{ApiError, ErrorCode, json_response, query_pairs, require_role};
use crate::server::Body;
use crate::state::Gateway;
use siirto_core::clock::hex;
use siirto_core::consent::{Basis, ConsentTextError, Subject, TextRequest};
use siirto_core::identity::{AuthenticatedParticipant, Role};
use siirto_core::lang::Lang;
use siirto_core::scope::Scope;

const PARAMETERS: [&str; 7] = [
    "src", "dst", "scope", "purpose", "lang", "basis", "question",
];

pub fn text(
    gw: &Gateway,
    caller: &AuthenticatedParticipant,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    require_role(caller, Role::Eservice)?;
    let invalid = |parameter: &str, why: &str| {
        ApiError::new(ErrorCode::InvalidRequest, format!("{parameter}: {why}"))
    };
    let mut given: [Option<String>; 7] = Default::default();
    for (key, value) in query_pairs(query) {
        let Some(i) = PARAMETERS.iter().position(|p| *p == key) else {
            return Err(invalid(
                &key,
                "unknown parameter (src, dst, scope, purpose, lang, basis, question)",
            ));
        };
        if given[i].replace(value).is_some() {
            return Err(invalid(&key, "given twice"));
        }
    }
    let [src, dst, scope, purpose, lang, basis, question] = given;
    let directory = &gw.config.directory;
    let src = src.ok_or_else(|| invalid("src", "missing"))?;
    let source = directory
        .get(&src)
        .filter(|p| p.has_role(Role::Source))
        .ok_or_else(|| invalid("src", "not a source of this gateway"))?;
    let dst = dst.ok_or_else(|| invalid("dst", "missing"))?;
    let destination = directory
        .get(&dst)
        .filter(|p| p.has_role(Role::Destination) && p.id != source.id)
        .ok_or_else(|| invalid("dst", "not a destination of this gateway (other than src)"))?;
    let subject = match (&scope, &question) {
        (Some(scope), None) => Subject::Categories(Scope::parse(scope).map_err(|e| {
            invalid(
                "scope",
                &format!("{e} (categories: identity, enrolment, achievements, mobility, registrations, support)"),
            )
        })?),
        (None, Some(question)) => Subject::Question(question),
        (Some(_), Some(_)) => {
            return Err(invalid(
                "question",
                "a text is about a scope or a question, not both",
            ));
        }
        (None, None) => return Err(invalid("scope", "missing (or question, for a check)")),
    };
    let purpose = purpose.ok_or_else(|| invalid("purpose", "missing"))?;
    let purpose_ok = !purpose.is_empty()
        && purpose.len() <= 64
        && purpose
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !purpose_ok {
        return Err(invalid("purpose", "1-64 characters of a-z, 0-9 and -"));
    }
    let lang = lang.ok_or_else(|| invalid("lang", "missing (fi, sv or en)"))?;
    let lang = Lang::parse(&lang).ok_or_else(|| invalid("lang", "must be fi, sv or en"))?;
    let basis = match basis {
        None => Basis::Consent,
        Some(b) => {
            Basis::parse(&b).ok_or_else(|| invalid("basis", "must be consent or statutory"))?
        }
    };
    let request = TextRequest {
        source,
        destination,
        subject,
        purpose: &purpose,
        basis,
    };
    let refused = |e: ConsentTextError| match e {
        ConsentTextError::UnknownQuestion(_) => invalid(
            "question",
            "unknown (basic_education_completed, upper_secondary_completed, higher_education_degree_completed, active_study_right)",
        ),
        ConsentTextError::NoStatute(_) => invalid("basis", "dst receives nothing by law"),
        ConsentTextError::Unnamed(_) => invalid("src", "the directory has no name for it"),
    };
    let texts = gw.consent_texts;
    let current = texts.text(&request, lang).map_err(refused)?;
    let previous = texts.previous_text(&request, lang).map_err(refused)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "version": current.version,
            "lang": lang.code(),
            "text": current.text,
            "sha256": hex(&current.sha256),
            "previous_sha256": previous.map_or(Value::Null, |p| json!(hex(&p.sha256))),
        }),
    ))
}

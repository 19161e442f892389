//! `GET /v1/students/transfers`: a student's own view of where their data went, for an
//! e-service presenting a transparency token (`typ` = `siirto-transparency+jwt`): JSON by
//! default, or the student's page (HTML, `Accept: text/html`, `?lang=fi|sv|en`, Finnish by
//! default) that the e-service embeds in its own page.
//!
//! Owns: the transparency listing, its JSON and the page: every transfer about the person,
//! newest first, with its date in Finnish time, the organisations by name, what moved in
//! everyday words, the purpose, the basis (consent, a guardian's consent, or the law), the
//! status, and whether its receipt verifies against the gateway's audit key. A transparency
//! token can only read history; it is verified by `authz::verify_transparency`, and its `jti`
//! cannot be used twice.
//!
//! Must not: build HTML outside the template (`templates/student/history.html`, which escapes
//! every value), run scripts or load anything from elsewhere, or show an identifier (the page
//! names neither the student nor the guardian).

use std::sync::Arc;

use askama::Template;
use http::StatusCode;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::pages::{self, Lang, fill};
use super::{
    ApiError, ErrorCode, audited, json_response, query_pairs, refusal_event, require_role,
};
use crate::server::Body;
use crate::state::Gateway;
use crate::store::{CheckRow, TransferRow};
use siirto_core::authz;
use siirto_core::consent::{Basis, CategoryTexts};
use siirto_core::identity::AuthenticatedParticipant;
use siirto_core::identity::Role;
use siirto_core::scope::Category;
use siirto_core::student_id::StudentId;
use siirto_core::transfer::Status;

/// The language of the page when `?lang=` does not name one.
const DEFAULT_LANG: Lang = Lang::Fi;

/// The student page's texts in one language (`[student]` of `crates/gateway/texts/*.toml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudentTexts {
    pub title: String,
    pub intro: String,
    pub none: String,
    pub heading: String,
    pub label_when: String,
    pub label_from: String,
    pub label_to: String,
    pub label_what: String,
    pub label_arrived: String,
    pub nothing_arrived: String,
    pub label_purpose: String,
    pub label_basis: String,
    pub basis_consent: String,
    pub basis_guardian: String,
    pub basis_consent_koski: String,
    pub basis_statutory: String,
    pub label_consent_text: String,
    pub consent_text: String,
    pub label_status: String,
    pub reason_code: String,
    pub label_receipt: String,
    pub receipt_verified: String,
    pub receipt_broken: String,
    pub receipt_pending: String,
    pub receipt_none: String,
    pub date_time: String,
    pub times_note: String,
    pub footer: String,
    pub language_fi: String,
    pub language_sv: String,
    pub language_en: String,
    pub check_heading: String,
    pub label_question: String,
    pub label_answer: String,
    pub answer_yes: String,
    pub answer_no: String,
    pub no_record_moved: String,
    pub check_answered: String,
    pub check_failed: String,
    pub label_attestation: String,
    pub attestation_verified: String,
    pub attestation_broken: String,
    pub attestation_none: String,
    pub status: StatusTexts,
    /// Each category's short name (the consent text explains them at length).
    pub categories: CategoryTexts,
}

/// Each status in everyday words.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusTexts {
    pub accepted: String,
    pub fetching: String,
    pub validating: String,
    pub converting: String,
    pub delivering: String,
    pub delivered: String,
    pub failed: String,
    pub cancelled: String,
}

impl StatusTexts {
    fn get(&self, status: Status) -> &str {
        match status {
            Status::Accepted => &self.accepted,
            Status::Fetching => &self.fetching,
            Status::Validating => &self.validating,
            Status::Converting => &self.converting,
            Status::Delivering => &self.delivering,
            Status::Delivered => &self.delivered,
            Status::Failed => &self.failed,
            Status::Cancelled => &self.cancelled,
        }
    }
}

impl StudentTexts {
    fn language(&self, lang: Lang) -> &str {
        match lang {
            Lang::Fi => &self.language_fi,
            Lang::Sv => &self.language_sv,
            Lang::En => &self.language_en,
        }
    }
}

/// Most transfers listed for one student.
const HISTORY_LIMIT: u32 = 1000;

/// How the history is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Json,
    Html(Lang),
}

pub async fn history(
    gw: &Arc<Gateway>,
    caller: &AuthenticatedParticipant,
    req: &Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    require_role(caller, Role::Eservice)?;
    // The query is checked before the token is used up, so a mistake there costs no token.
    let form = match form(req) {
        Ok(f) => f,
        Err(e) => return Err(refuse(gw, caller, e).await),
    };
    let token = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    let Some(token) = token else {
        let e = ApiError::new(
            ErrorCode::MissingToken,
            "send the transparency token as `Authorization: Bearer <JWS>`",
        );
        return Err(refuse(gw, caller, e).await);
    };
    let now = gw.now();
    let verified = match authz::verify_transparency(token, &gw.issuer_keys(), &gw.policy, now) {
        Ok(v) => v,
        Err(e) => return Err(refuse(gw, caller, e.into()).await),
    };
    let pseudonym = gw.pseudonyms.pseudonym(verified.subject());
    let mut event = gw.event(&caller.participant().id, "student.history_read", "ok");
    event.subject = Some(pseudonym.clone());
    event
        .detail
        .insert("issuer".into(), verified.issuer().into());
    event.detail.insert(
        "form".into(),
        match form {
            Form::Json => "json".into(),
            Form::Html(lang) => format!("html-{lang}"),
        },
    );
    if !gw
        .store
        .remember_jti(
            verified.issuer(),
            verified.jti(),
            verified.remember_until(),
            vec![event],
        )
        .await?
    {
        let mut event = gw.event(&caller.participant().id, "transparency.rejected", "replay");
        event
            .detail
            .insert("issuer".into(), verified.issuer().into());
        gw.store.append_audit(vec![event]).await?;
        return Err(ApiError::new(
            ErrorCode::Replay,
            "this transparency token (jti) has already been used",
        ));
    }
    let rows = gw
        .store
        .transfers_for_subject(pseudonym.as_str(), HISTORY_LIMIT)
        .await?;
    let entries: Vec<Entry> = rows
        .into_iter()
        .map(|row| {
            let receipt = gw.receipt(&row);
            let verdict = receipt_verdict(gw, &row, receipt.as_deref(), verified.subject());
            Entry {
                row,
                receipt,
                verdict,
            }
        })
        .collect();
    let checks: Vec<CheckEntry> = gw
        .store
        .checks_of(pseudonym.as_str())
        .await?
        .into_iter()
        .map(|row| check_entry(gw, row, verified.subject()))
        .collect();
    match form {
        Form::Json => {
            let transfers: Vec<Value> = entries.iter().map(|e| history_entry(gw, e)).collect();
            let checks: Vec<Value> = checks.iter().map(|c| check_json(gw, c)).collect();
            Ok(json_response(
                StatusCode::OK,
                &json!({ "transfers": transfers, "checks": checks }),
            ))
        }
        Form::Html(lang) => Ok(pages::html(
            StatusCode::OK,
            lang,
            page(gw, lang, &entries, &checks).render(),
        )),
    }
}

/// JSON, or the page when `Accept` prefers `text/html` (at least as much as JSON); the page's
/// language from `?lang=` (the only parameter; `invalid_query` for any other or another value).
fn form(req: &Request<Incoming>) -> Result<Form, ApiError> {
    let invalid = |m: String| ApiError::new(ErrorCode::InvalidQuery, m);
    let mut lang = None;
    for (key, value) in query_pairs(req.uri().query()) {
        match key.as_str() {
            "lang" if lang.is_none() => {
                lang = Some(
                    Lang::parse(&value)
                        .ok_or_else(|| invalid("lang must be fi, sv or en".to_owned()))?,
                );
            }
            "lang" => return Err(invalid("lang is given twice".to_owned())),
            other => {
                return Err(invalid(format!("unknown parameter `{other}` (only lang)")));
            }
        }
    }
    let accept = req
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    Ok(if prefers_html(accept) {
        Form::Html(lang.unwrap_or(DEFAULT_LANG))
    } else {
        Form::Json
    })
}

/// Whether an `Accept` header asks for `text/html` with a quality at least that of JSON
/// (`application/json`, or `*/*` when JSON is not named).
fn prefers_html(accept: Option<&str>) -> bool {
    let mut html: Option<f32> = None;
    let mut json: Option<f32> = None;
    let mut any: Option<f32> = None;
    for range in accept.unwrap_or("").split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let q = parts
            .find_map(|p| p.strip_prefix("q=")?.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let slot = match media.as_str() {
            "text/html" => &mut html,
            "application/json" => &mut json,
            "*/*" => &mut any,
            _ => continue,
        };
        *slot = Some(slot.map_or(q, |old: f32| old.max(q)));
    }
    match html {
        Some(h) if h > 0.0 => h >= json.or(any).unwrap_or(0.0),
        _ => false,
    }
}

/// A transfer as the history shows it, with its opened receipt and whether it verifies.
struct Entry {
    row: TransferRow,
    receipt: Option<String>,
    verdict: Verdict,
}

/// Whether a transfer's receipt verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Signed by the audit key, for this transfer and this person.
    Verified,
    /// A receipt that does not verify, or is about another transfer or person.
    Broken,
    /// Not delivered yet: no receipt yet.
    Pending,
    /// Failed or cancelled: there will be none.
    None,
}

impl Verdict {
    fn as_json(self) -> Value {
        match self {
            Verdict::Verified => json!(true),
            Verdict::Broken => json!(false),
            Verdict::Pending | Verdict::None => Value::Null,
        }
    }
}

fn receipt_verdict(
    gw: &Gateway,
    row: &TransferRow,
    receipt: Option<&str>,
    subject: &StudentId,
) -> Verdict {
    match receipt {
        Some(token) => {
            match siirto_core::receipt::verify_receipt(token, &gw.audit_key.public_key()) {
                Ok(r) if r.claims().transfer_id == row.id && r.claims().subject == *subject => {
                    Verdict::Verified
                }
                Ok(_) | Err(_) => Verdict::Broken,
            }
        }
        // A delivered transfer keeps its receipt; one that cannot be opened is broken.
        None if row.status == Status::Delivered => Verdict::Broken,
        None if row.status.is_terminal() => Verdict::None,
        None => Verdict::Pending,
    }
}

/// A check as the history shows it, with its opened attestation and whether it verifies.
struct CheckEntry {
    row: CheckRow,
    attestation: Option<String>,
    verdict: Verdict,
}

/// The check's attestation, opened, and whether it verifies against the audit key (current or
/// earlier) and names this check and this person.
fn check_entry(gw: &Gateway, row: CheckRow, subject: &StudentId) -> CheckEntry {
    let attestation = row.attestation_sealed.as_deref().and_then(|sealed| {
        siirto_core::attestation::open_attestation(&gw.vault, &row.id, sealed)
            .map_err(|e| tracing::error!(check = %row.id, error = %e, "the stored attestation cannot be opened"))
            .ok()
    });
    let verdict = match &attestation {
        Some(token) => match siirto_core::attestation::verify_attestation_with(
            token,
            &[gw.audit_key.public_key()],
        ) {
            Ok(a) if a.claims().check_id == row.id && a.claims().subject == *subject => {
                Verdict::Verified
            }
            Ok(_) | Err(_) => Verdict::Broken,
        },
        // An answered check keeps its attestation; one that cannot be opened is broken.
        None if row.answer.is_some() => Verdict::Broken,
        None => Verdict::None,
    };
    CheckEntry {
        row,
        attestation,
        verdict,
    }
}

/// One check as the student sees it (JSON).
fn check_json(gw: &Gateway, entry: &CheckEntry) -> Value {
    let row = &entry.row;
    let names = |id: &str| {
        gw.config
            .directory
            .get(id)
            .and_then(|p| p.name.as_ref())
            .map_or(Value::Null, siirto_core::lang::Localized::to_json)
    };
    json!({
        "id": row.id,
        "when": row.created_at.rfc3339(),
        "from": row.src,
        "to": row.dst,
        "from_name": names(&row.src),
        "to_name": names(&row.dst),
        "question": row.question,
        "answer": row.answer,
        "purpose": row.purpose,
        "basis": row.basis.as_str(),
        "guardian": row.guardian_pseudonym.is_some(),
        "status": if row.answer.is_some() { "answered" } else { "failed" },
        "reason": (row.answer.is_none()).then_some(row.outcome.as_str()),
        "document_sha256": row.document_sha256,
        "attestation": entry.attestation,
        "attestation_verified": entry.verdict.as_json(),
        "consent": row.consent.as_ref().map(|c| json!({
            "sha256": c.sha256,
            "version": c.version,
            "lang": c.lang.code(),
        })),
    })
}

/// The token of an `Authorization` value `Bearer <token>`: the scheme is matched ASCII
/// case-insensitively (RFC 7235 §2.1), one or more spaces follow it.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Audits a refused history read (`transparency.rejected`) and returns the answer.
async fn refuse(gw: &Gateway, caller: &AuthenticatedParticipant, e: ApiError) -> ApiError {
    let event = refusal_event(gw, &caller.participant().id, "transparency.rejected", &e);
    audited(gw, event, e).await
}

/// The categories delivered: those that had at least one field in the document the
/// destination received (the conversion report's `categories`). Data the student authorized but
/// the record did not hold, or the target format could not carry, is not listed. Empty until
/// the transfer is delivered.
fn categories_delivered(row: &TransferRow, report: Option<&Value>) -> Vec<Category> {
    if row.status != Status::Delivered {
        return Vec::new();
    }
    report
        .and_then(|r| r.get("categories"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|c| c.as_str().and_then(Category::parse))
                .collect()
        })
        .unwrap_or_default()
}

fn categories_authorized(row: &TransferRow) -> Vec<Category> {
    row.scope.split(' ').filter_map(Category::parse).collect()
}

fn report(row: &TransferRow) -> Option<Value> {
    row.report
        .as_deref()
        .and_then(|r| serde_json::from_str::<Value>(r).ok())
}

/// The law of a statutory transfer, from the destination's directory entry.
fn statutory_law<'a>(
    gw: &'a Gateway,
    row: &TransferRow,
) -> Option<&'a siirto_core::lang::Localized> {
    if row.basis != Basis::Statutory {
        return None;
    }
    gw.config
        .directory
        .get(&row.dst)
        .and_then(|p| p.statutory.as_ref())
        .map(|s| &s.law)
}

/// A participant's name in `lang`, or its id when the directory no longer names it.
fn name_of<'a>(gw: &'a Gateway, id: &'a str, lang: Lang) -> &'a str {
    gw.config
        .directory
        .get(id)
        .and_then(|p| p.name.as_ref())
        .map_or(id, |n| n.get(lang))
}

/// One transfer as the student sees it (JSON): when, from, to, why, what, on what basis, how
/// it went, and its receipt.
fn history_entry(gw: &Gateway, entry: &Entry) -> Value {
    let row = &entry.row;
    let report = report(row);
    let codes = |list: Vec<Category>| list.into_iter().map(Category::as_str).collect::<Vec<_>>();
    let names = |id: &str| {
        gw.config
            .directory
            .get(id)
            .and_then(|p| p.name.as_ref())
            .map_or(Value::Null, siirto_core::lang::Localized::to_json)
    };
    let mut v = json!({
        "id": row.id,
        "when": row.created_at.rfc3339(),
        "from": row.src,
        "to": row.dst,
        "from_name": names(&row.src),
        "to_name": names(&row.dst),
        "purpose": row.purpose,
        "basis": row.basis.as_str(),
        "guardian": row.guardian_pseudonym.is_some(),
        "consent_given_at": gw.is_omadata_source(&row.src).then_some("koski"),
        "categories_authorized": codes(categories_authorized(row)),
        "categories_delivered": codes(categories_delivered(row, report.as_ref())),
        "status": row.status.as_str(),
        "updated_at": row.updated_at.rfc3339(),
        "receipt_verified": entry.verdict.as_json(),
        "consent": row.consent.as_ref().map(|c| json!({
            "sha256": c.sha256,
            "version": c.version,
            "lang": c.lang.code(),
        })),
    });
    if let Some(map) = v.as_object_mut() {
        if let Some(law) = statutory_law(gw, row) {
            map.insert("statutory_law".into(), law.to_json());
        }
        if let Some(at) = row.consented_at {
            map.insert("consented_at".into(), json!(at.rfc3339()));
        }
        if let Some(reason) = row.reason {
            map.insert("reason".into(), json!(reason.as_str()));
        }
        if let Some(report) = report {
            map.insert("conversion".into(), report);
        }
        if let Some(receipt) = &entry.receipt {
            map.insert("receipt".into(), json!(receipt));
        }
        if let Some(h) = &row.document_sha256 {
            map.insert("content_sha256".into(), json!(h));
        }
    }
    v
}

/// The student's page.
#[derive(Template)]
#[template(path = "student/history.html")]
struct HistoryPage<'a> {
    lang: &'static str,
    t: &'a StudentTexts,
    entries: Vec<EntryView>,
}

/// One transfer as the page shows it, every value ready to print.
struct EntryView {
    /// For `id` attributes: `transfer-<id>` or `check-<id>`.
    anchor: String,
    /// For sorting, newest first.
    at: siirto_core::clock::Timestamp,
    /// A check's question in everyday words, and its answer (`None` for a transfer).
    question: Option<String>,
    answer: Option<String>,
    receipt_label: String,
    heading: String,
    when: String,
    /// `datetime` of the `<time>` element (RFC 3339, UTC).
    when_machine: String,
    from: String,
    to: String,
    what: Vec<String>,
    /// What arrived, once delivered (`None` before).
    arrived: Option<Vec<String>>,
    purpose: String,
    basis: String,
    consent_text: Option<String>,
    /// `delivered`, `failed`, `cancelled` or `pending` (for the badge's style).
    status_class: &'static str,
    status: String,
    reason: Option<String>,
    /// `ok`, `bad` or `none`.
    receipt_class: &'static str,
    receipt: String,
}

fn page<'a>(gw: &Gateway, lang: Lang, entries: &[Entry], checks: &[CheckEntry]) -> HistoryPage<'a> {
    let texts = pages::texts(lang);
    let t = &texts.student;
    let category_names = |list: Vec<Category>| {
        list.into_iter()
            .map(|c| t.categories.get(c).to_owned())
            .collect::<Vec<_>>()
    };
    let views = entries
        .iter()
        .map(|entry| {
            let row = &entry.row;
            let (src, dst) = (name_of(gw, &row.src, lang), name_of(gw, &row.dst, lang));
            let report = report(row);
            let basis = match (row.basis, statutory_law(gw, row)) {
                (Basis::Statutory, law) => fill(
                    &t.basis_statutory,
                    &[("law", &law.map_or("", |l| l.get(lang)))],
                ),
                (Basis::Consent, _) if gw.is_omadata_source(&row.src) => {
                    t.basis_consent_koski.clone()
                }
                (Basis::Consent, _) if row.guardian_pseudonym.is_some() => t.basis_guardian.clone(),
                (Basis::Consent, _) => t.basis_consent.clone(),
            };
            let (receipt_class, receipt) = match entry.verdict {
                Verdict::Verified => ("ok", &t.receipt_verified),
                Verdict::Broken => ("bad", &t.receipt_broken),
                Verdict::Pending => ("none", &t.receipt_pending),
                Verdict::None => ("none", &t.receipt_none),
            };
            EntryView {
                anchor: format!("transfer-{}", row.id),
                at: row.created_at,
                question: None,
                answer: None,
                receipt_label: t.label_receipt.clone(),
                heading: fill(&t.heading, &[("src", &src), ("dst", &dst)]),
                when: helsinki_time(&t.date_time, row.created_at),
                when_machine: row.created_at.rfc3339(),
                from: src.to_owned(),
                to: dst.to_owned(),
                what: category_names(categories_authorized(row)),
                arrived: (row.status == Status::Delivered)
                    .then(|| category_names(categories_delivered(row, report.as_ref()))),
                purpose: capitalized(&texts.consent.purpose_words(&row.purpose, dst)),
                basis,
                consent_text: row.consent.as_ref().map(|c| {
                    fill(
                        &t.consent_text,
                        &[("version", &c.version), ("lang", &t.language(c.lang))],
                    )
                }),
                status_class: match row.status {
                    Status::Delivered => "delivered",
                    Status::Failed => "failed",
                    Status::Cancelled => "cancelled",
                    _ => "pending",
                },
                status: t.status.get(row.status).to_owned(),
                reason: row
                    .reason
                    .map(|r| fill(&t.reason_code, &[("reason", &r.as_str())])),
                receipt_class,
                receipt: receipt.clone(),
            }
        })
        .chain(
            checks
                .iter()
                .map(|entry| check_view(gw, lang, t, &texts.consent, entry)),
        )
        .collect::<Vec<_>>();
    let mut views = views;
    views.sort_by_key(|v| std::cmp::Reverse(v.at));
    HistoryPage {
        lang: lang.code(),
        t,
        entries: views,
    }
}

/// One check as the page shows it.
fn check_view(
    gw: &Gateway,
    lang: Lang,
    t: &StudentTexts,
    consent: &siirto_core::consent::ConsentTemplates,
    entry: &CheckEntry,
) -> EntryView {
    let row = &entry.row;
    let (src, dst) = (name_of(gw, &row.src, lang), name_of(gw, &row.dst, lang));
    let basis = match row.basis {
        Basis::Statutory => {
            let law = gw
                .config
                .directory
                .get(&row.dst)
                .and_then(|p| p.statutory.as_ref())
                .map(|s| s.law.get(lang).to_owned())
                .unwrap_or_default();
            fill(&t.basis_statutory, &[("law", &law)])
        }
        Basis::Consent if row.guardian_pseudonym.is_some() => t.basis_guardian.clone(),
        Basis::Consent => t.basis_consent.clone(),
    };
    let (receipt_class, receipt) = match entry.verdict {
        Verdict::Verified => ("ok", &t.attestation_verified),
        Verdict::Broken => ("bad", &t.attestation_broken),
        Verdict::Pending | Verdict::None => ("none", &t.attestation_none),
    };
    EntryView {
        anchor: format!("check-{}", row.id),
        at: row.created_at,
        question: Some(
            consent
                .questions
                .get(&row.question)
                .unwrap_or(&row.question)
                .to_owned(),
        ),
        answer: row.answer.map(|a| {
            if a {
                t.answer_yes.clone()
            } else {
                t.answer_no.clone()
            }
        }),
        receipt_label: t.label_attestation.clone(),
        heading: fill(&t.check_heading, &[("src", &src), ("dst", &dst)]),
        when: helsinki_time(&t.date_time, row.created_at),
        when_machine: row.created_at.rfc3339(),
        from: src.to_owned(),
        to: dst.to_owned(),
        what: vec![t.no_record_moved.clone()],
        arrived: None,
        purpose: capitalized(&consent.purpose_words(&row.purpose, dst)),
        basis,
        consent_text: row.consent.as_ref().map(|c| {
            fill(
                &t.consent_text,
                &[("version", &c.version), ("lang", &t.language(c.lang))],
            )
        }),
        status_class: if row.answer.is_some() {
            "delivered"
        } else {
            "failed"
        },
        status: if row.answer.is_some() {
            t.check_answered.clone()
        } else {
            t.check_failed.clone()
        },
        reason: row
            .answer
            .is_none()
            .then(|| fill(&t.reason_code, &[("reason", &row.outcome.as_str())])),
        receipt_class,
        receipt: receipt.clone(),
    }
}

/// `text` with its first letter upper-cased: the purpose's words stand alone on the page (in
/// the consent text they end a sentence).
fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `at` in Finnish time, written as `format` says (`{day}`, `{month}`, `{year}`, `{hour}`,
/// `{minute}`; the minute with two digits).
fn helsinki_time(format: &str, at: siirto_core::clock::Timestamp) -> String {
    match siirto_core::lang::helsinki_local(at) {
        Some((date, hour, minute)) => fill(
            format,
            &[
                ("day", &date.day()),
                ("month", &date.month()),
                ("year", &date.year()),
                ("hour", &hour),
                ("minute", &format!("{minute:02}")),
            ],
        ),
        None => at.rfc3339(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn html_when_accept_prefers_it() {
        for (accept, html) in [
            (None, false),
            (Some("application/json"), false),
            (Some("*/*"), false),
            (Some("text/html"), true),
            (Some("text/html,application/xhtml+xml,*/*;q=0.8"), true),
            (Some("application/json, text/html;q=0.5"), false),
            (Some("text/html;q=0.9, application/json;q=0.9"), true),
            (Some("TEXT/HTML"), true),
            (Some("text/html;q=0"), false),
        ] {
            assert_eq!(prefers_html(accept), html, "{accept:?}");
        }
    }

    #[test]
    fn times_are_finnish_time_in_each_languages_form() {
        let at = siirto_core::clock::Timestamp::parse_rfc3339("2026-07-01T06:05:00Z").unwrap();
        let expected = [
            (Lang::Fi, "1.7.2026 klo 9.05"),
            (Lang::Sv, "1.7.2026 kl. 9.05"),
            (Lang::En, "1/7/2026, 9:05"),
        ];
        for (lang, text) in expected {
            assert_eq!(
                helsinki_time(&pages::texts(lang).student.date_time, at),
                text
            );
        }
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in [
            "Bearer a.b.c",
            "bearer a.b.c",
            "BEARER a.b.c",
            "bEaReR   a.b.c ",
        ] {
            assert_eq!(bearer_token(value), Some("a.b.c"), "{value}");
        }
        for value in [
            "Basic a.b.c",
            "Bearer",
            "Bearer ",
            "Bearera.b.c",
            "a.b.c",
            "",
        ] {
            assert_eq!(bearer_token(value), None, "{value}");
        }
    }
}

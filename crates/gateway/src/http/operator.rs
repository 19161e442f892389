//! The operator web page, served by the gateway on its mTLS API listener to the `operator`
//! role only: server-rendered HTML from the askama templates `crates/gateway/templates/operator/`
//! (every value escaped by the template), in Finnish, Swedish or English with the texts of
//! `crates/gateway/texts/` (see [`super::pages`]); no scripts, no external assets (a
//! Content-Security-Policy of `default-src 'none'` with inline styles says so to the browser).
//! Times are shown in Helsinki time, each with its UTC value as the element's `title`.
//!
//! The language: `?lang=fi|sv|en` on any page (the header's language links), which is then kept
//! in a cookie (`siirto_lang`, path `/operator`); without either, the browser's
//! `Accept-Language`; English by default.
//!
//! | path | what |
//! |---|---|
//! | `GET /operator` | the trail's state, peers that are down, search forms, the latest transfers |
//! | `GET /operator/transfers?status=&src=&dst=&purpose=&reason=&since=&until=&cursor=&limit=&id=` | transfers, filtered and paged, with totals per status, the next attempt and last error of unfinished ones, cancel and retry buttons |
//! | `GET /operator/transfers/export?format=csv\|jsonl&…` | the same filtered list as CSV or JSON lines, all pages |
//! | `GET /operator/transfers/{id}` | one transfer's timeline: its steps and its audit entries |
//! | `POST /operator/transfers/{id}/cancel`, `…/retry` | the API's cancel and retry, from a form |
//! | `GET /operator/subjects` | the subject lookup form |
//! | `POST /operator/subjects` | `subject` (henkilötunnus or learner number), `reason`: every transfer about that person and the audit entries about them |
//! | `POST /operator/subjects/export` | `pseudonym`, `reason`: that history as one JSON document (an answer to a GDPR art. 15 request) |
//! | `GET /operator/audit?transfer=&actor=&action=&since=&until=&limit=&cursor=` | audit entries, as `GET /v1/audit` filters them, paged |
//! | `GET /operator/verify` | verifies the whole stored log against every checkpoint now |
//!
//! Every view that shows transfers or audit entries is itself audited (`audit.read`, detail
//! `via` = `operator_page`); a verification run as `audit.verified`; a subject lookup as
//! `operator.subject_lookup` and an export of it as `operator.subject_export` (the operator as
//! actor, the reason in the detail, the person only as the keyed pseudonym). Every form posts
//! a token of the operator's own page ([`FormTokens`]); without it: `403 invalid_form_token`,
//! audited as `operator.form_refused`. A student's identifier is taken only from a form's body:
//! it is never in a URL, a log line or an audit entry, and the pages never show it.
//!
//! Also here: `POST /v1/admin/reload` (operator): re-reads the issuers' JWKS files (key
//! rotation), audited as `config.reload`.
//!
//! Must not: run scripts in the browser, link outside the gateway, or build HTML outside a
//! template.

mod forms;

use std::ops::Deref;
use std::sync::Arc;

use askama::Template;
use bytes::Bytes;
use http::StatusCode;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde::Deserialize;
use serde_json::json;

pub use forms::FormTokens;

use super::pages::{self, Lang, fill};
use super::{ApiError, ErrorCode, json_response, query_pairs, require_role, text_response};
use crate::listing;
use crate::server::Body;
use crate::state::Gateway;
use crate::store::{AuditFilter, ListedTransfer, StepRow, TransferFilter, TransferRow};
use siirto_core::audit::{AuditEntry, Pseudonym};
use siirto_core::clock::{Timestamp, hex};
use siirto_core::identity::AuthenticatedParticipant;
use siirto_core::identity::Role;
use siirto_core::student_id::StudentId;
use siirto_core::transfer::{FailureReason, Status};

/// Latest transfers on the overview.
const RECENT: u32 = 20;
/// Audit entries shown on a transfer's timeline.
const TIMELINE_ENTRIES: u32 = 1000;
/// Transfers and audit entries a subject lookup shows (and its export holds).
const SUBJECT_LIMIT: u32 = 1000;
/// Rows read per round trip by an export.
const EXPORT_PAGE: u32 = 1000;
/// The longest reason a lookup takes.
const MAX_REASON_CHARS: usize = 500;
/// The language of a browser that names none of fi, sv and en.
const DEFAULT_LANG: Lang = Lang::En;
/// The cookie that keeps the language chosen with `?lang=`.
const LANG_COOKIE: &str = "siirto_lang";

/// The operator page's texts in one language (`[operator]` of `crates/gateway/texts/*.toml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorTexts {
    pub app_name: String,
    pub nav_overview: String,
    pub nav_transfers: String,
    pub nav_subjects: String,
    pub nav_audit: String,
    pub nav_verify: String,
    pub signed_in_as: String,
    pub language: String,
    pub back_to_overview: String,
    pub title_overview: String,
    pub title_transfers: String,
    pub title_transfer: String,
    pub title_subjects: String,
    pub title_audit: String,
    pub title_verify: String,
    pub col_transfer: String,
    pub col_status: String,
    pub col_route: String,
    pub col_purpose: String,
    pub col_scope: String,
    pub col_accepted: String,
    pub col_updated: String,
    pub col_attempts: String,
    pub col_next_attempt: String,
    pub col_last_error: String,
    pub col_actions: String,
    pub in_progress: String,
    pub no_transfers: String,
    pub col_seq: String,
    pub col_at: String,
    pub col_actor: String,
    pub col_action: String,
    pub col_outcome: String,
    pub col_subject: String,
    pub col_detail: String,
    pub col_hash: String,
    pub col_step: String,
    pub col_check: String,
    pub col_question: String,
    pub col_answer: String,
    pub inclusion_proof: String,
    pub no_entries: String,
    pub label_transfer_id: String,
    pub any_status: String,
    pub search_transfers: String,
    pub label_source: String,
    pub label_destination: String,
    pub label_failure_reason: String,
    pub label_actor: String,
    pub label_action: String,
    pub label_since: String,
    pub label_until: String,
    pub label_limit: String,
    pub search_audit: String,
    pub heading_totals: String,
    pub totals_all: String,
    pub export_csv: String,
    pub export_jsonl: String,
    pub first_page: String,
    pub cancel: String,
    pub retry: String,
    pub notice_cancelled: String,
    pub notice_retried: String,
    pub heading_trail: String,
    pub log_broken: String,
    pub verify_now: String,
    pub log_followed: String,
    pub merkle_root: String,
    pub verify_whole: String,
    pub latest_checkpoint: String,
    pub no_checkpoint: String,
    pub witness_cosigned: String,
    pub witness_conflict: String,
    pub heading_search: String,
    pub heading_latest: String,
    pub transfers_found: String,
    pub submitted_by: String,
    pub submitted_by_value: String,
    pub reason: String,
    pub student_pseudonym: String,
    pub delivery_attempts: String,
    pub document_sha256: String,
    pub receipt: String,
    pub receipt_signed: String,
    pub heading_steps: String,
    pub heading_entries: String,
    pub heading_conversion: String,
    pub conversion_details: String,
    pub entries_found: String,
    pub next_page: String,
    pub log_verifies: String,
    pub entries_checked: String,
    pub last_entry_hash: String,
    pub checkpoints_verified: String,
    pub latest_checkpoint_label: String,
    pub checkpoint_size_signed: String,
    pub none: String,
    pub entries_after: String,
    pub entries_after_value: String,
    pub took: String,
    pub took_ms: String,
    pub log_not_verified: String,
    pub problem: String,
    pub first_bad_entry: String,
    pub show_around: String,
    pub checked_before: String,
    pub checkpoints_stored: String,
    pub heading_peers: String,
    pub peers_all_up: String,
    pub col_participant: String,
    pub col_down_since: String,
    pub col_waiting: String,
    pub col_next_probe: String,
    pub subject_intro: String,
    pub label_subject: String,
    pub label_lookup_reason: String,
    pub lookup: String,
    pub lookup_audited: String,
    pub subject_result: String,
    pub subject_transfers: String,
    pub subject_entries: String,
    pub subject_checks: String,
    pub subject_export: String,
    pub subject_export_note: String,
}

/// What `operator/layout.html` shows around every page: each page's template struct derefs to
/// it, so the layout reads these as the page's own fields.
struct Chrome<'a> {
    lang: &'static str,
    t: &'static OperatorTexts,
    gateway: &'a str,
    signed_in: String,
    title: String,
    /// The language links: code, the language's own name, the link, whether it is this page's.
    languages: Vec<(&'static str, &'static str, String, bool)>,
    /// The token this page's forms post ([`FormTokens`]).
    form_token: String,
}

/// Declares the template struct of an operator page: the [`Chrome`] and the page's fields.
macro_rules! operator_page {
    ($name:ident, $path:literal, { $($field:ident: $ty:ty,)* }) => {
        #[derive(Template)]
        #[template(path = $path)]
        struct $name<'a> {
            chrome: Chrome<'a>,
            $($field: $ty,)*
        }

        impl<'a> Deref for $name<'a> {
            type Target = Chrome<'a>;
            fn deref(&self) -> &Chrome<'a> {
                &self.chrome
            }
        }
    };
}

operator_page!(OverviewPage, "operator/overview.html", {
    broken: Option<String>,
    followed: String,
    root: String,
    checkpoint: Option<(String, String)>,
    witnesses: Vec<(String, bool)>,
    search: SearchView,
    filter: FilterView,
    recent: Vec<TransferView>,
    peers_down: Vec<PeerDownView>,
});

/// A source or destination that is down, as the overview lists it.
struct PeerDownView {
    participant: String,
    since: Timestamp,
    waiting: u64,
    next_probe: Option<Timestamp>,
}

operator_page!(TransfersPage, "operator/transfers.html", {
    search: SearchView,
    found: String,
    totals: Vec<(String, u64, String, bool)>,
    all_total: (u64, String),
    rows: Vec<TransferView>,
    next: Option<String>,
    first: Option<String>,
    exports: (String, String),
});

operator_page!(TimelinePage, "operator/timeline.html", {
    row: TransferRow,
    cancel: Option<String>,
    retry: Option<String>,
    notice: Option<String>,
    submitted_by: String,
    steps: Vec<StepRow>,
    entries_heading: String,
    entries: Vec<EntryView>,
    report: Option<String>,
});

operator_page!(SubjectPage, "operator/subjects.html", {
    result: Option<SubjectResult>,
});

operator_page!(AuditPage, "operator/audit.html", {
    filter: FilterView,
    found: String,
    entries: Vec<EntryView>,
    next: Option<String>,
});

operator_page!(VerifyPage, "operator/verify.html", {
    outcome: VerifyOutcome,
    took: String,
});

/// An error as a page (with the API's code).
#[derive(Template)]
#[template(path = "operator/error.html")]
struct ErrorPage {
    lang: &'static str,
    t: &'static OperatorTexts,
    status: u16,
    code: &'static str,
    message: String,
}

/// One transfer as the tables show it.
struct TransferView {
    row: TransferRow,
    next_attempt: Option<Timestamp>,
    /// A worker holds it now.
    in_progress: bool,
    last_error: Option<String>,
}

impl TransferView {
    fn of(t: ListedTransfer) -> TransferView {
        TransferView {
            next_attempt: listing::next_attempt(&t),
            in_progress: !t.row.status.is_terminal() && t.row.lease_owner.is_some(),
            last_error: t.last_error,
            row: t.row,
        }
    }

    /// Where its cancel button posts, when it can be cancelled.
    fn cancel_action(&self) -> Option<String> {
        cancel_action(&self.row)
    }

    /// Where its retry button posts, when it can be retried.
    fn retry_action(&self) -> Option<String> {
        retry_action(&self.row)
    }
}

/// What a transfer id keeps unencoded in a path: letters, digits, `-`, `_`, `~` (a `.` is
/// encoded so that no id reads as `.` or `..`).
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'~');

/// `/operator/transfers/{id}`, the id percent-encoded.
fn transfer_path(id: &str) -> String {
    let id = percent_encoding::utf8_percent_encode(id, SEGMENT);
    format!("/operator/transfers/{id}")
}

/// `/operator/transfers/{id}/{what}`.
fn transfer_action(id: &str, what: &str) -> String {
    format!("{}/{what}", transfer_path(id))
}

fn cancel_action(row: &TransferRow) -> Option<String> {
    (!row.status.is_terminal()).then(|| transfer_action(&row.id, "cancel"))
}

fn retry_action(row: &TransferRow) -> Option<String> {
    (row.status == Status::Failed).then(|| transfer_action(&row.id, "retry"))
}

/// What a subject lookup found.
struct SubjectResult {
    /// The keyed pseudonym (what the export form posts back).
    pseudonym: String,
    reason: String,
    transfers_heading: String,
    transfers: Vec<TransferView>,
    checks_heading: String,
    checks: Vec<CheckView>,
    entries_heading: String,
    entries: Vec<EntryView>,
}

/// One check without transfer as the subject lookup shows it (no part of any record: the
/// question, the answer or the code it ended with, and the document's hash).
struct CheckView {
    id: String,
    at: Timestamp,
    route: String,
    question: String,
    purpose: String,
    /// `true`, `false`, or the code the check ended with.
    answer: String,
    /// The first 16 hex digits of the document's SHA-256, when one was read.
    document: String,
    leaf: String,
}

impl CheckView {
    fn of(row: &crate::store::CheckRow) -> CheckView {
        CheckView {
            id: row.id.clone(),
            at: row.created_at,
            route: format!("{} → {}", row.src, row.dst),
            question: row.question.clone(),
            purpose: row.purpose.clone(),
            answer: row
                .answer
                .map_or_else(|| row.outcome.clone(), |a| a.to_string()),
            document: row
                .document_sha256
                .as_deref()
                .map(|h| h.chars().take(16).collect())
                .unwrap_or_default(),
            leaf: row
                .audit_leaf_index
                .map(|l| l.to_string())
                .unwrap_or_default(),
        }
    }
}

/// One audit entry as the tables show it.
struct EntryView {
    seq: u64,
    at: Timestamp,
    actor: String,
    action: String,
    outcome: String,
    /// The transfer id, whole and its first 8 characters.
    transfer: Option<(String, String)>,
    /// The first 12 characters of the subject's pseudonym.
    subject: Option<String>,
    detail: Vec<(String, String)>,
    /// The first 16 hex digits of the entry's hash.
    hash: String,
}

impl EntryView {
    fn of(e: &AuditEntry) -> EntryView {
        let ev = &e.event;
        EntryView {
            seq: e.seq,
            at: ev.at,
            actor: ev.actor.clone(),
            action: ev.action.clone(),
            outcome: ev.outcome.clone(),
            transfer: ev
                .transfer_id
                .as_ref()
                .map(|t| (t.clone(), t.chars().take(8).collect())),
            subject: ev
                .subject
                .as_ref()
                .map(|p| p.as_str().chars().take(12).collect()),
            detail: ev
                .detail
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            hash: hex(&e.hash).chars().take(16).collect(),
        }
    }
}

/// The audit search form's values.
struct FilterView {
    transfer: String,
    actor: String,
    action: String,
    since: String,
    until: String,
    limit: u32,
}

impl FilterView {
    fn of(f: &AuditFilter) -> FilterView {
        let text = |o: &Option<String>| o.clone().unwrap_or_default();
        let time = |o: &Option<Timestamp>| o.map(Timestamp::rfc3339).unwrap_or_default();
        FilterView {
            transfer: text(&f.transfer),
            actor: text(&f.actor),
            action: text(&f.action),
            since: time(&f.since),
            until: time(&f.until),
            limit: f.limit,
        }
    }
}

/// The transfer search form's values: each choice list as (value, selected).
struct SearchView {
    id: String,
    statuses: Vec<(&'static str, bool)>,
    sources: Vec<(String, bool)>,
    destinations: Vec<(String, bool)>,
    reasons: Vec<(&'static str, bool)>,
    purpose: String,
    since: String,
    until: String,
}

impl SearchView {
    fn of(gw: &Gateway, f: &TransferFilter, given: &[(String, String)]) -> SearchView {
        let participants = |role: Role, chosen: &Option<String>| {
            gw.config
                .directory
                .iter()
                .filter(|p| p.has_role(role))
                .map(|p| (p.id.clone(), chosen.as_deref() == Some(p.id.as_str())))
                .collect()
        };
        // The times as the operator wrote them (a date stays a date).
        let written = |key: &str| {
            given
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.trim().to_owned())
                .unwrap_or_default()
        };
        SearchView {
            id: f.id.clone().unwrap_or_default(),
            statuses: Status::ALL
                .iter()
                .map(|s| (s.as_str(), Some(*s) == f.status))
                .collect(),
            sources: participants(Role::Source, &f.src),
            destinations: participants(Role::Destination, &f.dst),
            reasons: FailureReason::ALL
                .iter()
                .map(|r| (r.as_str(), Some(*r) == f.reason))
                .collect(),
            purpose: f.purpose.clone().unwrap_or_default(),
            since: written("since"),
            until: written("until"),
        }
    }
}

/// What a verification run found, as `operator/verify.html` shows it.
enum VerifyOutcome {
    Verified {
        entries: u64,
        root: String,
        head: String,
        checkpoints: usize,
        latest: String,
        unanchored: String,
    },
    Failed {
        problem: String,
        /// The first bad entry and the cursor that shows the entries just before it.
        first_bad: Option<(u64, u64)>,
        checked: u64,
        checkpoints: usize,
    },
}

/// What a handler answers: a page to wrap with the language's headers, or an answer of its own
/// (an export, a redirect after a form).
enum Answer {
    Page(askama::Result<String>),
    Other(Response<Body>),
}

/// The language the request asks for: `?lang=`, else the cookie, else `Accept-Language`; and
/// whether `?lang=` chose it (the answer then sets the cookie).
fn language(headers: &http::HeaderMap, pairs: &[(String, String)]) -> (Lang, bool) {
    if let Some(lang) = pairs
        .iter()
        .find(|(k, _)| k == "lang")
        .and_then(|(_, v)| Lang::parse(&v.trim().to_ascii_lowercase()))
    {
        return (lang, true);
    }
    let from_cookie = headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(LANG_COOKIE)?.strip_prefix('='))
        .find_map(|v| Lang::parse(&v.trim().to_ascii_lowercase()));
    if let Some(lang) = from_cookie {
        return (lang, false);
    }
    let accept = headers
        .get(http::header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    (Lang::negotiate(accept, DEFAULT_LANG), false)
}

/// The language links of a page at `path` with the query `pairs` (without `lang`).
fn language_links(
    path: &str,
    pairs: &[(String, String)],
    current: Lang,
) -> Vec<(&'static str, &'static str, String, bool)> {
    Lang::ALL
        .iter()
        .map(|lang| {
            let mut query = form_urlencoded::Serializer::new(String::new());
            for (k, v) in pairs {
                query.append_pair(k, v);
            }
            query.append_pair("lang", lang.code());
            let name = match lang {
                Lang::Fi => "suomi",
                Lang::Sv => "svenska",
                Lang::En => "English",
            };
            (
                lang.code(),
                name,
                format!("{path}?{}", query.finish()),
                *lang == current,
            )
        })
        .collect()
}

/// Handles `GET` and `POST /operator...`; `rest` is the path after `/operator`.
pub async fn handle(
    gw: &Arc<Gateway>,
    caller: &AuthenticatedParticipant,
    rest: &[&str],
    req: Request<Incoming>,
) -> Response<Body> {
    let mut pairs = query_pairs(req.uri().query());
    let (lang, chosen) = language(req.headers(), &pairs);
    pairs.retain(|(k, _)| k != "lang");
    let t = &pages::texts(lang).operator;
    let now = gw.now();
    let path = req.uri().path().to_owned();
    // Only GET pages link to themselves: a form's answer links to the page of its path.
    let link_pairs: &[(String, String)] = if req.method() == http::Method::GET {
        &pairs
    } else {
        &[]
    };
    let chrome = |title: String| Chrome {
        lang: lang.code(),
        t,
        gateway: &gw.config.gateway.id,
        signed_in: fill(&t.signed_in_as, &[("who", &caller.participant().id)]),
        title,
        languages: language_links(&path, link_pairs, lang),
        form_token: gw.form_tokens.token(&caller.participant().id, now),
    };
    let result = match require_role(caller, Role::Operator) {
        Err(e) => Err(e),
        Ok(()) if req.method() == http::Method::POST => {
            post(gw, caller, rest, req, t, &chrome).await
        }
        Ok(()) => match rest {
            [] | [""] => overview(gw, caller, chrome(t.title_overview.clone()))
                .await
                .map(Answer::Page),
            ["transfers"] => transfers(gw, caller, &pairs, chrome(t.title_transfers.clone()))
                .await
                .map(Answer::Page),
            ["transfers", "export"] => export(gw, caller, &pairs).await.map(Answer::Other),
            ["transfers", id] => {
                let title = fill(&t.title_transfer, &[("id", id)]);
                timeline(gw, caller, id, &pairs, chrome(title))
                    .await
                    .map(Answer::Page)
            }
            ["subjects"] => Ok(Answer::Page(
                SubjectPage {
                    result: None,
                    chrome: chrome(t.title_subjects.clone()),
                }
                .render(),
            )),
            ["audit"] => audit(gw, caller, &pairs, chrome(t.title_audit.clone()))
                .await
                .map(Answer::Page),
            ["verify"] => verify(gw, caller, chrome(t.title_verify.clone()))
                .await
                .map(Answer::Page),
            _ => Err(ApiError::not_found()),
        },
    };
    let mut answer = match result {
        Ok(Answer::Page(page)) => pages::html(StatusCode::OK, lang, page),
        Ok(Answer::Other(r)) => r,
        Err(e) => {
            let page = ErrorPage {
                lang: lang.code(),
                t,
                status: e.status().as_u16(),
                code: e.code.as_str(),
                message: e.message.clone(),
            };
            pages::html(e.status(), lang, page.render())
        }
    };
    if chosen {
        let cookie = format!(
            "{LANG_COOKIE}={}; Path=/operator; Max-Age=31536000; Secure; HttpOnly; SameSite=Strict",
            lang.code()
        );
        if let Ok(v) = http::HeaderValue::from_str(&cookie) {
            answer.headers_mut().append(http::header::SET_COOKIE, v);
        }
    }
    answer
}

/// The forms: each checks its token first.
async fn post<'c>(
    gw: &Arc<Gateway>,
    caller: &AuthenticatedParticipant,
    rest: &[&str],
    req: Request<Incoming>,
    t: &OperatorTexts,
    chrome: &(dyn Fn(String) -> Chrome<'c> + Sync),
) -> Result<Answer, ApiError> {
    let form_name = match rest {
        ["subjects"] => "subject_lookup",
        ["subjects", "export"] => "subject_export",
        ["transfers", _, "cancel"] => "cancel",
        ["transfers", _, "retry"] => "retry",
        _ => return Err(ApiError::not_found()),
    };
    let body: Bytes = super::read_body(gw, req).await?;
    let fields: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    check_form_token(gw, caller, form_name, &fields).await?;
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    match rest {
        ["transfers", id, "cancel"] => {
            super::transfers::cancel_transfer(gw, caller, id, "operator_page").await?;
            Ok(Answer::Other(see_other(id, "cancelled")))
        }
        ["transfers", id, "retry"] => {
            super::transfers::retry_transfer(gw, caller, id, "operator_page").await?;
            Ok(Answer::Other(see_other(id, "retried")))
        }
        ["subjects", "export"] => subject_export(gw, caller, &field("pseudonym"), &field("reason"))
            .await
            .map(Answer::Other),
        _ => {
            let chrome = chrome(t.title_subjects.clone());
            subject_lookup(gw, caller, &field("subject"), &field("reason"), chrome)
                .await
                .map(Answer::Page)
        }
    }
}

/// Refuses a form without the token of the operator's own page (`403 invalid_form_token`,
/// audited as `operator.form_refused` with the form's name).
async fn check_form_token(
    gw: &Gateway,
    caller: &AuthenticatedParticipant,
    form: &str,
    fields: &[(String, String)],
) -> Result<(), ApiError> {
    let id = &caller.participant().id;
    let token = fields
        .iter()
        .find(|(k, _)| k == "form_token")
        .map(|(_, v)| v.as_str());
    if token.is_some_and(|token| gw.form_tokens.check(token, id, gw.now())) {
        return Ok(());
    }
    let e = ApiError::new(
        ErrorCode::InvalidFormToken,
        "the form did not come from this gateway's operator page, or it is over an hour old: reload the page and send it again",
    );
    let mut event = super::refusal_event(gw, id, "operator.form_refused", &e);
    event.detail.insert("form".into(), form.to_owned());
    Err(super::audited(gw, event, e).await)
}

/// `303 See Other` to a transfer's timeline with a notice of what was done.
fn see_other(id: &str, notice: &str) -> Response<Body> {
    let location = format!("{}?notice={notice}", transfer_path(id));
    let mut r = text_response(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", "");
    if let Ok(v) = http::HeaderValue::from_str(&location) {
        r.headers_mut().insert(http::header::LOCATION, v);
    }
    r
}

async fn audit_view(
    gw: &Gateway,
    caller: &AuthenticatedParticipant,
    view: &str,
    transfer: Option<&str>,
    shown: usize,
) -> Result<(), ApiError> {
    let mut event = gw.event(&caller.participant().id, "audit.read", "ok");
    event.detail.insert("via".into(), "operator_page".into());
    event.detail.insert("view".into(), view.into());
    event.detail.insert("entries".into(), shown.to_string());
    event.transfer_id = transfer.map(str::to_owned);
    gw.store.append_audit(vec![event]).await?;
    Ok(())
}

async fn overview(
    gw: &Gateway,
    caller: &AuthenticatedParticipant,
    chrome: Chrome<'_>,
) -> Result<askama::Result<String>, ApiError> {
    let t = chrome.t;
    let status = gw.trail.status();
    let latest = gw.store.latest_checkpoint().await?;
    let recent = gw
        .store
        .transfers_query(&TransferFilter {
            limit: RECENT,
            ..TransferFilter::default()
        })
        .await?
        .transfers;
    let backlogs = gw.store.backlogs().await?;
    let peers_down = gw
        .store
        .peers()
        .await?
        .into_iter()
        .filter_map(|p| {
            let since = p.health.down_since?;
            Some(PeerDownView {
                waiting: backlogs
                    .iter()
                    .find(|(id, _)| *id == p.participant)
                    .map_or(0, |(_, n)| *n),
                since,
                next_probe: p.health.next_probe_at,
                participant: p.participant,
            })
        })
        .collect();
    // Each configured witness's latest cosigned size, and any conflict it reported.
    let known = gw.store.witness_peers().await?;
    let witnesses = gw
        .witnesses
        .verifiers
        .iter()
        .map(|w| {
            let row = known.iter().find(|p| p.witness == w.name());
            let size = row.map_or(0, |p| p.cosigned_size);
            match row.and_then(|p| p.conflict_at.zip(p.conflict_size)) {
                Some((at, conflict)) => (
                    fill(
                        &t.witness_conflict,
                        &[
                            ("witness", &w.name()),
                            ("size", &conflict),
                            ("at", &at.helsinki()),
                        ],
                    ),
                    true,
                ),
                None => (
                    fill(
                        &t.witness_cosigned,
                        &[("witness", &w.name()), ("size", &size)],
                    ),
                    false,
                ),
            }
        })
        .collect();
    audit_view(gw, caller, "overview", None, recent.len()).await?;
    let page = OverviewPage {
        witnesses,
        peers_down,
        broken: status.broken.as_ref().map(|fault| {
            fill(
                &t.log_broken,
                &[("entry", &status.size), ("fault", &fault.to_string())],
            )
        }),
        followed: fill(&t.log_followed, &[("entries", &status.size)]),
        root: hex(&status.root),
        checkpoint: latest.map(|cp| {
            let line = fill(
                &t.latest_checkpoint,
                &[("size", &cp.tree_size), ("at", &cp.issued_at.helsinki())],
            );
            (line, hex(&cp.root_hash))
        }),
        search: SearchView::of(gw, &TransferFilter::default(), &[]),
        filter: FilterView::of(&AuditFilter {
            limit: 100,
            ..AuditFilter::default()
        }),
        recent: recent.into_iter().map(TransferView::of).collect(),
        chrome,
    };
    Ok(page.render())
}

/// The query of a link to the transfers view (or its export) with `filter`, and `extra` pairs.
fn transfers_query(filter: &TransferFilter, extra: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in listing::filter_pairs(filter) {
        query.append_pair(k, &v);
    }
    for (k, v) in extra {
        query.append_pair(k, v);
    }
    query.finish()
}

/// The transfer filter of a query, without the key of the export itself (`format`).
fn transfer_filter(gw: &Gateway, pairs: &[(String, String)]) -> Result<TransferFilter, ApiError> {
    let own: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| k != "format")
        .cloned()
        .collect();
    listing::parse_filter(&gw.config.directory, &own)
        .map_err(|m| ApiError::new(ErrorCode::InvalidQuery, m))
}

async fn transfers(
    gw: &Gateway,
    caller: &AuthenticatedParticipant,
    pairs: &[(String, String)],
    chrome: Chrome<'_>,
) -> Result<askama::Result<String>, ApiError> {
    let t = chrome.t;
    let filter = transfer_filter(gw, pairs)?;
    let page = gw.store.transfers_query(&filter).await?;
    let totals = gw.store.transfer_totals(&filter).await?;
    let limit = filter.limit.to_string();
    let next = page
        .next_cursor
        .map(|c| transfers_query(&filter, &[("limit", &limit), ("cursor", &c.encode())]));
    let rows = page.transfers;
    audit_view(gw, caller, "transfers", None, rows.len()).await?;
    let all: u64 = totals.iter().map(|(_, n)| n).sum();
    let without_status = TransferFilter {
        status: None,
        ..filter.clone()
    };
    let page = TransfersPage {
        search: SearchView::of(gw, &filter, pairs),
        found: fill(&t.transfers_found, &[("count", &rows.len())]),
        totals: totals
            .iter()
            .map(|(s, n)| {
                let link = transfers_query(&without_status, &[("status", s.as_str())]);
                (s.as_str().to_owned(), *n, link, filter.status == Some(*s))
            })
            .collect(),
        all_total: (all, transfers_query(&without_status, &[])),
        rows: rows.into_iter().map(TransferView::of).collect(),
        first: filter.after.as_ref().map(|_| transfers_query(&filter, &[])),
        next,
        exports: (
            transfers_query(&filter, &[("format", "csv")]),
            transfers_query(&filter, &[("format", "jsonl")]),
        ),
        chrome,
    };
    Ok(page.render())
}

/// `GET /operator/transfers/export?format=csv|jsonl&…`: every transfer the filter takes (all
/// pages), as a download; audited as a view (`export`, with the format and the count).
async fn export(
    gw: &Gateway,
    caller: &AuthenticatedParticipant,
    pairs: &[(String, String)],
) -> Result<Response<Body>, ApiError> {
    let format = pairs
        .iter()
        .find(|(k, _)| k == "format")
        .map_or("", |(_, v)| v.as_str());
    let (content_type, extension) = match format {
        "csv" => ("text/csv; charset=utf-8", "csv"),
        "jsonl" => ("application/jsonl; charset=utf-8", "jsonl"),
        other => {
            return Err(ApiError::new(
                ErrorCode::InvalidQuery,
                format!("format: `{other}` is neither csv nor jsonl"),
            ));
        }
    };
    let mut filter = transfer_filter(gw, pairs)?;
    filter.limit = EXPORT_PAGE;
    filter.after = None;
    let mut body = String::new();
    if extension == "csv" {
        body.push_str(listing::CSV_HEADER);
        body.push_str("\r\n");
    }
    let mut count = 0usize;
    loop {
        let page = gw.store.transfers_query(&filter).await?;
        for t in &page.transfers {
            if extension == "csv" {
                body.push_str(&listing::csv_row(t));
                body.push_str("\r\n");
            } else {
                body.push_str(&listing::json_row(t).to_string());
                body.push('\n');
            }
        }
        count += page.transfers.len();
        match page.next_cursor {
            Some(c) => filter.after = Some(c),
            None => break,
        }
    }
    let mut event = gw.event(&caller.participant().id, "audit.read", "ok");
    event.detail.insert("via".into(), "operator_page".into());
    event.detail.insert("view".into(), "export".into());
    event.detail.insert("format".into(), extension.into());
    event.detail.insert("transfers".into(), count.to_string());
    gw.store.append_audit(vec![event]).await?;
    let mut r = text_response(StatusCode::OK, content_type, body);
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_DISPOSITION,
        http::HeaderValue::from_static(if extension == "csv" {
            "attachment; filename=\"siirto-transfers.csv\""
        } else {
            "attachment; filename=\"siirto-transfers.jsonl\""
        }),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    h.insert(
        "x-content-type-options",
        http::HeaderValue::from_static("nosniff"),
    );
    Ok(r)
}

async fn timeline(
    gw: &Gateway,
    caller: &AuthenticatedParticipant,
    id: &str,
    pairs: &[(String, String)],
    chrome: Chrome<'_>,
) -> Result<askama::Result<String>, ApiError> {
    let t = chrome.t;
    let notice = match pairs.iter().find(|(k, _)| k == "notice") {
        None => None,
        Some((_, v)) if v == "cancelled" => Some(t.notice_cancelled.clone()),
        Some((_, v)) if v == "retried" => Some(t.notice_retried.clone()),
        Some((_, v)) => {
            return Err(ApiError::new(
                ErrorCode::InvalidQuery,
                format!("notice: `{v}` is not a notice of this page"),
            ));
        }
    };
    let row = gw
        .store
        .transfer(id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no transfer {id}")))?;
    let steps = gw.store.steps(id).await?;
    let entries = gw
        .store
        .audit_query(&AuditFilter {
            transfer: Some(id.to_owned()),
            limit: TIMELINE_ENTRIES,
            ..AuditFilter::default()
        })
        .await?
        .entries;
    audit_view(gw, caller, "timeline", Some(id), entries.len()).await?;
    let page = TimelinePage {
        notice,
        submitted_by: fill(
            &t.submitted_by_value,
            &[("submitter", &row.submitter), ("issuer", &row.issuer)],
        ),
        report: row
            .report
            .as_deref()
            .and_then(|r| serde_json::from_str::<serde_json::Value>(r).ok())
            .and_then(|r| serde_json::to_string_pretty(&r).ok()),
        cancel: cancel_action(&row),
        retry: retry_action(&row),
        row,
        steps,
        entries_heading: fill(&t.heading_entries, &[("count", &entries.len())]),
        entries: entries.iter().map(EntryView::of).collect(),
        chrome,
    };
    Ok(page.render())
}

/// A lookup's reason: required, at most [`MAX_REASON_CHARS`] characters.
fn lookup_reason(reason: &str) -> Result<String, ApiError> {
    if reason.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidForm,
            "reason: say why you look this person up (e.g. the request's record number); it is kept in the audit log",
        ));
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::new(
            ErrorCode::InvalidForm,
            format!("reason: at most {MAX_REASON_CHARS} characters"),
        ));
    }
    Ok(reason.to_owned())
}

/// Audits a subject lookup or export (`operator.subject_lookup`, `operator.subject_export`):
/// the operator, the reason, the person as the pseudonym, and what was found.
async fn audit_subject(
    gw: &Gateway,
    caller: &AuthenticatedParticipant,
    action: &str,
    outcome: &str,
    pseudonym: Option<&Pseudonym>,
    detail: &[(&str, String)],
) -> Result<(), ApiError> {
    let mut event = gw.event(&caller.participant().id, action, outcome);
    event.subject = pseudonym.cloned();
    event.detail.insert("via".into(), "operator_page".into());
    for (k, v) in detail {
        event.detail.insert((*k).to_owned(), v.clone());
    }
    gw.store.append_audit(vec![event]).await?;
    Ok(())
}

/// The transfers and audit entries about the person with `pseudonym`.
async fn subject_history(
    gw: &Gateway,
    pseudonym: &Pseudonym,
) -> Result<
    (
        Vec<ListedTransfer>,
        Vec<crate::store::CheckRow>,
        Vec<AuditEntry>,
    ),
    ApiError,
> {
    let transfers = gw
        .store
        .transfers_query(&TransferFilter {
            subject: Some(pseudonym.as_str().to_owned()),
            limit: SUBJECT_LIMIT,
            ..TransferFilter::default()
        })
        .await?
        .transfers;
    let entries = gw
        .store
        .audit_query(&AuditFilter {
            subject: Some(pseudonym.as_str().to_owned()),
            limit: SUBJECT_LIMIT,
            ..AuditFilter::default()
        })
        .await?
        .entries;
    let checks = gw.store.checks_of(pseudonym.as_str()).await?;
    Ok((transfers, checks, entries))
}

/// `POST /operator/subjects`: the person's transfers and audit entries. The lookup is audited
/// before anything is shown (and so is among the entries shown); a refused one is audited
/// with its code. The identifier itself goes nowhere: not into the audit, the log or the page.
async fn subject_lookup(
    gw: &Gateway,
    caller: &AuthenticatedParticipant,
    subject: &str,
    reason: &str,
    chrome: Chrome<'_>,
) -> Result<askama::Result<String>, ApiError> {
    let t = chrome.t;
    const ACTION: &str = "operator.subject_lookup";
    let checked = lookup_reason(reason).and_then(|reason| {
        let id = StudentId::parse(subject).map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidForm,
                format!("subject: not a henkilötunnus or a learner number ({e})"),
            )
        })?;
        Ok((reason, gw.pseudonyms.pseudonym(&id)))
    });
    let (reason, pseudonym) = match checked {
        Ok(found) => found,
        Err(e) => {
            let detail = [
                ("reason", reason.to_owned()),
                ("message", e.message.clone()),
            ];
            audit_subject(gw, caller, ACTION, e.code.as_str(), None, &detail).await?;
            return Err(e);
        }
    };
    // Audited before the history is read: what the operator is shown was looked up on record
    // (and the lookup is among the entries shown).
    let detail = [("reason", reason.clone())];
    audit_subject(gw, caller, ACTION, "ok", Some(&pseudonym), &detail).await?;
    let (transfers, checks, entries) = subject_history(gw, &pseudonym).await?;
    let page = SubjectPage {
        result: Some(SubjectResult {
            pseudonym: pseudonym.as_str().to_owned(),
            reason,
            transfers_heading: fill(&t.subject_transfers, &[("count", &transfers.len())]),
            transfers: transfers.into_iter().map(TransferView::of).collect(),
            checks_heading: fill(&t.subject_checks, &[("count", &checks.len())]),
            checks: checks.iter().map(CheckView::of).collect(),
            entries_heading: fill(&t.subject_entries, &[("count", &entries.len())]),
            entries: entries.iter().map(EntryView::of).collect(),
        }),
        chrome,
    };
    Ok(page.render())
}

/// `POST /operator/subjects/export`: the person's history as one JSON document, for an answer
/// to a request under GDPR article 15: every transfer (with its steps) and every audit entry
/// about them, the person named only by the keyed pseudonym. Audited like the lookup.
async fn subject_export(
    gw: &Gateway,
    caller: &AuthenticatedParticipant,
    pseudonym: &str,
    reason: &str,
) -> Result<Response<Body>, ApiError> {
    const ACTION: &str = "operator.subject_export";
    let checked = lookup_reason(reason).and_then(|reason| {
        let pseudonym = Pseudonym::parse(pseudonym).map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidForm,
                "pseudonym: not a pseudonym of this gateway (64 hex digits); look the person up first",
            )
        })?;
        Ok((reason, pseudonym))
    });
    let (reason, pseudonym) = match checked {
        Ok(found) => found,
        Err(e) => {
            let detail = [
                ("reason", reason.to_owned()),
                ("message", e.message.clone()),
            ];
            audit_subject(gw, caller, ACTION, e.code.as_str(), None, &detail).await?;
            return Err(e);
        }
    };
    let detail = [("reason", reason.clone())];
    audit_subject(gw, caller, ACTION, "ok", Some(&pseudonym), &detail).await?;
    let (transfers, checks, entries) = subject_history(gw, &pseudonym).await?;
    let mut listed = Vec::new();
    for t in &transfers {
        let steps = gw.store.steps(&t.row.id).await?;
        let mut v = super::transfers::transfer_json(&t.row, &steps, None);
        if let Some(map) = v.as_object_mut() {
            map.remove("links");
            if let Some(leaf) = t.row.receipt_leaf {
                map.insert("receipt_audit_leaf".into(), json!(leaf));
            }
        }
        listed.push(v);
    }
    let document = json!({
        "gateway": gw.config.gateway.id,
        "generated_at": gw.now().rfc3339(),
        "generated_by": caller.participant().id,
        "reason": reason,
        "subject_pseudonym": pseudonym.as_str(),
        "transfers": listed,
        "checks": checks.iter().map(|c| json!({
            "id": c.id,
            "when": c.created_at.rfc3339(),
            "submitter": c.submitter,
            "src": c.src,
            "dst": c.dst,
            "question": c.question,
            "purpose": c.purpose,
            "basis": c.basis.as_str(),
            "guardian": c.guardian_pseudonym.is_some(),
            "outcome": c.outcome,
            "answer": c.answer,
            "document_sha256": c.document_sha256,
            "audit_leaf_index": c.audit_leaf_index,
        })).collect::<Vec<_>>(),
        "audit_entries": entries.iter().map(siirto_core::audit::entry_json).collect::<Vec<_>>(),
    });
    let mut r = json_response(StatusCode::OK, &document);
    let name = format!(
        "attachment; filename=\"siirto-subject-{}.json\"",
        &pseudonym.as_str()[..16]
    );
    if let Ok(v) = http::HeaderValue::from_str(&name) {
        r.headers_mut().insert(http::header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

async fn audit(
    gw: &Gateway,
    caller: &AuthenticatedParticipant,
    pairs: &[(String, String)],
    chrome: Chrome<'_>,
) -> Result<askama::Result<String>, ApiError> {
    let t = chrome.t;
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .cloned()
        .collect();
    let filter = super::audit::parse_filter_pairs(pairs.clone())?;
    let found = gw.store.audit_query(&filter).await?;
    audit_view(
        gw,
        caller,
        "audit",
        filter.transfer.as_deref(),
        found.entries.len(),
    )
    .await?;
    // The same search, from the cursor on.
    let next = found.next_cursor.map(|cursor| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs.iter().filter(|(k, _)| k != "cursor") {
            query.append_pair(k, v);
        }
        query.append_pair("cursor", &cursor.to_string());
        query.finish()
    });
    let page = AuditPage {
        filter: FilterView::of(&filter),
        found: fill(&t.entries_found, &[("count", &found.entries.len())]),
        entries: found.entries.iter().map(EntryView::of).collect(),
        next,
        chrome,
    };
    Ok(page.render())
}

async fn verify(
    gw: &Gateway,
    caller: &AuthenticatedParticipant,
    chrome: Chrome<'_>,
) -> Result<askama::Result<String>, ApiError> {
    let t = chrome.t;
    let started = std::time::Instant::now();
    let outcome = gw.trail.verify_store(&gw.store).await?;
    let elapsed = started.elapsed();
    let mut event = gw.event(
        &caller.participant().id,
        "audit.verified",
        if outcome.result.is_ok() {
            "ok"
        } else {
            "failed"
        },
    );
    event.detail.insert("via".into(), "operator_page".into());
    event
        .detail
        .insert("entries_checked".into(), outcome.checked.to_string());
    if let Err(e) = &outcome.result
        && let Some(seq) = e.first_bad_seq()
    {
        event
            .detail
            .insert("first_bad_entry".into(), seq.to_string());
    }
    gw.store.append_audit(vec![event]).await?;
    let shown = match &outcome.result {
        Ok(summary) => VerifyOutcome::Verified {
            entries: summary.entries,
            root: hex(&summary.root),
            head: hex(&summary.head_hash),
            checkpoints: summary.checkpoints,
            latest: summary.latest_checkpoint.as_ref().map_or_else(
                || t.none.clone(),
                |c| {
                    fill(
                        &t.checkpoint_size_signed,
                        &[("size", &c.tree_size), ("at", &c.time.helsinki())],
                    )
                },
            ),
            unanchored: fill(&t.entries_after_value, &[("count", &summary.unanchored)]),
        },
        Err(e) => VerifyOutcome::Failed {
            problem: e.to_string(),
            first_bad: e.first_bad_seq().map(|s| (s, s.saturating_sub(3))),
            checked: outcome.checked,
            checkpoints: outcome.checkpoints,
        },
    };
    let page = VerifyPage {
        outcome: shown,
        took: fill(&t.took_ms, &[("ms", &elapsed.as_millis())]),
        chrome,
    };
    Ok(page.render())
}

/// `POST /v1/admin/reload` (operator): re-reads the issuers' JWKS files.
pub async fn reload(
    gw: &Arc<Gateway>,
    caller: &AuthenticatedParticipant,
) -> Result<Response<Body>, ApiError> {
    require_role(caller, Role::Operator)?;
    match gw.reload_issuers(&caller.participant().id, "api").await {
        Ok(keys) => Ok(json_response(
            StatusCode::OK,
            &json!({ "reloaded": "issuer_keys", "keys": keys }),
        )),
        Err(crate::state::ReloadError::Store(e)) => Err(e.into()),
        Err(e @ crate::state::ReloadError::Task(_)) => {
            Err(ApiError::new(ErrorCode::ReloadFailed, e.to_string()))
        }
        Err(crate::state::ReloadError::Keys(e)) => Err(ApiError::new(
            ErrorCode::InvalidJwks,
            format!("the issuer keys were not reloaded (the old keys stay): {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chrome(lang: Lang) -> Chrome<'static> {
        let t = &pages::texts(lang).operator;
        Chrome {
            lang: lang.code(),
            t,
            gateway: "gw.example.fi\"><script>alert(1)</script>",
            signed_in: fill(&t.signed_in_as, &[("who", &"op'<b>")]),
            title: fill(&t.title_transfer, &[("id", &"<script>x</script>")]),
            languages: language_links(
                "/operator/transfers",
                &[("purpose".into(), "<x>&".into())],
                lang,
            ),
            form_token: "\"><b>token".into(),
        }
    }

    fn hostile_entry() -> EntryView {
        EntryView {
            seq: 7,
            at: Timestamp::parse_rfc3339("2026-11-23T15:41:00.123Z").unwrap(),
            actor: "<script>alert('actor')</script>".into(),
            action: "a\"b".into(),
            outcome: "ok".into(),
            transfer: Some((
                "id/\"><img src=x onerror=alert(1)>".into(),
                "id/\"><i".into(),
            )),
            subject: None,
            detail: vec![("<k>".into(), "v&'\"".into())],
            hash: "00112233".into(),
        }
    }

    fn transfer(id: &str, status: Status) -> TransferView {
        TransferView {
            row: TransferRow {
                id: id.into(),
                status,
                reason: (status == Status::Failed).then_some(FailureReason::SourceNotFound),
                submitter: "eservice".into(),
                issuer: "iss".into(),
                jti: "j".into(),
                src: "turku".into(),
                dst: "espoo".into(),
                purpose: "school-change".into(),
                scope: "identity".into(),
                subject_pseudonym: "p".into(),
                subject_sealed: None,
                attempts: 11,
                due_at: Some(Timestamp::parse_rfc3339("2026-07-01T12:00:00Z").unwrap()),
                lease_owner: None,
                created_at: Timestamp::parse_rfc3339("2026-11-23T15:41:00Z").unwrap(),
                updated_at: Timestamp::parse_rfc3339("2026-11-23T15:42:00Z").unwrap(),
                retry_from: Timestamp::from_millis(0),
                source_sha256: None,
                document_sha256: None,
                report: None,
                receipt_sealed: None,
                receipt_leaf: None,
                interrupted: 0,
                basis: siirto_core::consent::Basis::Consent,
                guardian_pseudonym: None,
                consent: None,
                consented_at: None,
            },
            next_attempt: (!status.is_terminal())
                .then(|| Timestamp::parse_rfc3339("2026-07-01T12:00:00Z").unwrap()),
            in_progress: false,
            last_error: (!status.is_terminal()).then(|| "connect_failed: <refused>".into()),
        }
    }

    #[test]
    fn every_value_is_escaped_in_text_and_attributes() {
        let page = AuditPage {
            filter: FilterView {
                transfer: "\"><script>alert(2)</script>".into(),
                actor: "o'reilly".into(),
                action: String::new(),
                since: String::new(),
                until: String::new(),
                limit: 5,
            },
            found: "1 <b>entries</b>.".into(),
            entries: vec![hostile_entry()],
            next: Some("actor=%3Cb%3E&cursor=9".into()),
            chrome: chrome(Lang::En),
        }
        .render()
        .unwrap();
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains("<img"), "{page}");
        assert!(!page.contains("<b>entries"), "{page}");
        assert!(!page.contains("<k>"), "{page}");
        for escaped in [
            "&#60;script&#62;alert(&#39;actor&#39;)&#60;/script&#62;",
            "value=\"&#34;&#62;&#60;script&#62;alert(2)&#60;/script&#62;\"",
            "value=\"o&#39;reilly\"",
            "<b>&#60;k&#62;</b>=v&#38;&#39;&#34;",
            "<td>a&#34;b</td>",
            "gw.example.fi&#34;&#62;&#60;script&#62;",
            "signed in as op&#39;&#60;b&#62;",
            "<title>Siirto operator — Transfer &#60;script&#62;x&#60;/script&#62;</title>",
            // A path segment is percent-encoded, then escaped as an attribute.
            "href=\"/operator/transfers/id%2F%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E\"",
            "href=\"/operator/audit?actor=%3Cb%3E&#38;cursor=9\"",
            // The language links keep the page's query, encoded, then escaped.
            "href=\"/operator/transfers?purpose=%3Cx%3E%26&#38;lang=sv\" lang=\"sv\" hreflang=\"sv\">svenska</a>",
            // Times in Helsinki, the UTC value as the title.
            "<time datetime=\"2026-11-23T15:41:00.123Z\" title=\"2026-11-23T15:41:00.123Z\">2026-11-23 17:41:00 EET</time>",
        ] {
            assert!(page.contains(escaped), "no `{escaped}` in {page}");
        }
    }

    #[test]
    fn pages_are_in_the_language_asked_for() {
        for (lang, heading, any, cancel) in [
            (
                Lang::Fi,
                "Siirto – ylläpito — Siirto",
                "mikä tahansa",
                "Peru",
            ),
            (
                Lang::Sv,
                "Siirto – drift — Överföring",
                "vilken som helst",
                "Avbryt",
            ),
            (Lang::En, "Siirto operator — Transfer", "any", "Cancel"),
        ] {
            let filter = TransferFilter {
                status: Some(Status::Failed),
                ..TransferFilter::default()
            };
            let search = SearchView {
                id: String::new(),
                statuses: Status::ALL
                    .iter()
                    .map(|s| (s.as_str(), Some(*s) == filter.status))
                    .collect(),
                sources: vec![("turku".into(), true)],
                destinations: vec![("espoo".into(), false)],
                reasons: Vec::new(),
                purpose: String::new(),
                since: String::new(),
                until: String::new(),
            };
            let page = TransfersPage {
                search,
                found: String::new(),
                totals: vec![("failed".into(), 3, "status=failed".into(), true)],
                all_total: (3, String::new()),
                rows: vec![
                    transfer("t-fail", Status::Failed),
                    transfer("t-wait", Status::Delivering),
                ],
                next: Some("cursor=1.x".into()),
                first: None,
                exports: ("format=csv".into(), "format=jsonl".into()),
                chrome: chrome(lang),
            }
            .render()
            .unwrap();
            let t = &pages::texts(lang).operator;
            assert!(
                page.contains(&format!("<html lang=\"{}\">", lang.code())),
                "{page}"
            );
            assert!(page.contains(&format!("<title>{heading} ")), "{page}");
            assert!(
                page.contains(&format!("<option value=\"\">{any}</option>")),
                "{page}"
            );
            assert!(
                page.contains("<option value=\"failed\" selected>failed</option>"),
                "{page}"
            );
            assert!(
                page.contains("<option value=\"turku\" selected>turku</option>"),
                "{page}"
            );
            for text in [
                &t.col_next_attempt,
                &t.col_last_error,
                &t.export_csv,
                &t.heading_totals,
                &t.nav_subjects,
            ] {
                assert!(page.contains(text.as_str()), "no {text} in {page}");
            }
            // The failed transfer can be retried, the waiting one cancelled, each a form
            // posting the page's token; the waiting one shows its next attempt and last error.
            assert!(page.contains("<form class=\"inline\" method=\"post\" action=\"/operator/transfers/t-fail/retry\"><input type=\"hidden\" name=\"form_token\" value=\"&#34;&#62;&#60;b&#62;token\">"), "{page}");
            assert!(page.contains(&format!("action=\"/operator/transfers/t-wait/cancel\"><input type=\"hidden\" name=\"form_token\" value=\"&#34;&#62;&#60;b&#62;token\"><button type=\"submit\">{cancel}</button>")), "{page}");
            assert!(
                !page.contains("/operator/transfers/t-fail/cancel"),
                "{page}"
            );
            assert!(!page.contains("/operator/transfers/t-wait/retry"), "{page}");
            assert!(page.contains("2026-07-01 15:00:00 EEST</time>"), "{page}");
            assert!(page.contains("connect_failed: &#60;refused&#62;"), "{page}");
            assert!(page.contains("aria-current=\"true\">"), "{page}");
        }
    }

    #[test]
    fn the_language_comes_from_the_query_then_the_cookie_then_the_browser() {
        let headers = |pairs: &[(&str, &str)]| {
            let mut h = http::HeaderMap::new();
            for (k, v) in pairs {
                h.append(
                    http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    http::HeaderValue::from_str(v).unwrap(),
                );
            }
            h
        };
        let query = |lang: &str| vec![("lang".to_owned(), lang.to_owned())];
        let browser_sv = headers(&[("accept-language", "sv-FI,sv;q=0.9")]);
        assert_eq!(language(&browser_sv, &[]), (Lang::Sv, false));
        assert_eq!(language(&browser_sv, &query("FI")), (Lang::Fi, true));
        // An unknown language in the query is ignored.
        assert_eq!(language(&browser_sv, &query("de")), (Lang::Sv, false));
        let cookie = headers(&[
            ("accept-language", "sv"),
            ("cookie", "other=1; siirto_lang=en"),
        ]);
        assert_eq!(language(&cookie, &[]), (Lang::En, false));
        assert_eq!(language(&cookie, &query("fi")), (Lang::Fi, true));
        assert_eq!(language(&headers(&[]), &[]), (Lang::En, false));
    }
}

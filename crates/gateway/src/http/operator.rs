//! The operator web page, served by the gateway on its mTLS API listener to the `operator`
//! role only: server-rendered HTML from the askama templates `crates/gateway/templates/operator/`
//! (every value escaped by the template), in the language of the browser's `Accept-Language`
//! (fi, sv or en; English by default) with the texts of `crates/gateway/texts/` (see
//! [`super::pages`]); no scripts, no external assets (a Content-Security-Policy of
//! `default-src 'none'` with inline styles says so to the browser).
//!
//! | path | what |
//! |---|---|
//! | `GET /operator` | the trail's state, search forms, the latest transfers |
//! | `GET /operator/transfers?id=&status=` | transfers by id or status |
//! | `GET /operator/transfers/{id}` | one transfer's timeline: its steps and its audit entries |
//! | `GET /operator/audit?transfer=&actor=&action=&since=&until=&limit=&cursor=` | audit entries, as `GET /v1/audit` filters them, paged |
//! | `GET /operator/verify` | verifies the whole stored log against every checkpoint now |
//!
//! Every view that shows transfers or audit entries is itself audited (`audit.read`, detail
//! `via` = `operator_page`); a verification run is audited as `audit.verified`.
//!
//! Also here: `POST /v1/admin/reload` (operator): re-reads the issuers' JWKS files (key
//! rotation), audited as `config.reload`.
//!
//! Must not: run scripts in the browser, link outside the gateway, or build HTML outside a
//! template.

use std::ops::Deref;
use std::sync::Arc;

use askama::Template;
use http::StatusCode;
use hyper::Response;
use serde::Deserialize;
use serde_json::json;

use super::pages::{self, Lang, fill};
use super::{ApiError, ErrorCode, json_response, query_pairs, require_role};
use crate::server::Body;
use crate::state::Gateway;
use crate::store::{AuditFilter, StepRow, TransferRow};
use siirto_core::audit::AuditEntry;
use siirto_core::clock::{Timestamp, hex};
use siirto_core::identity::AuthenticatedParticipant;
use siirto_core::identity::Role;
use siirto_core::transfer::Status;

/// Transfers listed on one page.
const LIST_LIMIT: u32 = 100;
/// Latest transfers on the overview.
const RECENT: u32 = 20;
/// Audit entries shown on a transfer's timeline.
const TIMELINE_ENTRIES: u32 = 1000;
/// The language of a browser that names none of fi, sv and en.
const DEFAULT_LANG: Lang = Lang::En;

/// The operator page's texts in one language (`[operator]` of `crates/gateway/texts/*.toml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorTexts {
    pub app_name: String,
    pub nav_overview: String,
    pub nav_transfers: String,
    pub nav_audit: String,
    pub nav_verify: String,
    pub signed_in_as: String,
    pub back_to_overview: String,
    pub title_overview: String,
    pub title_transfers: String,
    pub title_transfer: String,
    pub title_audit: String,
    pub title_verify: String,
    pub col_transfer: String,
    pub col_status: String,
    pub col_route: String,
    pub col_purpose: String,
    pub col_scope: String,
    pub col_accepted: String,
    pub col_updated: String,
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
    pub inclusion_proof: String,
    pub no_entries: String,
    pub label_transfer_id: String,
    pub any_status: String,
    pub search_transfers: String,
    pub label_actor: String,
    pub label_action: String,
    pub label_since: String,
    pub label_until: String,
    pub label_limit: String,
    pub search_audit: String,
    pub heading_trail: String,
    pub log_broken: String,
    pub verify_now: String,
    pub log_followed: String,
    pub merkle_root: String,
    pub verify_whole: String,
    pub latest_checkpoint: String,
    pub no_checkpoint: String,
    pub heading_search: String,
    pub heading_latest: String,
    pub transfers_found: String,
    pub newest_only: String,
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
}

/// What `operator/layout.html` shows around every page: each page's template struct derefs to
/// it, so the layout reads these as the page's own fields.
struct Chrome<'a> {
    lang: &'static str,
    t: &'static OperatorTexts,
    gateway: &'a str,
    signed_in: String,
    title: String,
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
    statuses: Vec<(&'static str, bool)>,
    filter: FilterView,
    recent: Vec<TransferRow>,
    peers_down: Vec<PeerDownView>,
});

/// A source or destination that is down, as the overview lists it.
struct PeerDownView {
    participant: String,
    since: String,
    waiting: u64,
    next_probe: String,
}

operator_page!(TransfersPage, "operator/transfers.html", {
    id: String,
    statuses: Vec<(&'static str, bool)>,
    found: String,
    rows: Vec<TransferRow>,
});

operator_page!(TimelinePage, "operator/timeline.html", {
    row: TransferRow,
    submitted_by: String,
    steps: Vec<StepRow>,
    entries_heading: String,
    entries: Vec<EntryView>,
    report: Option<String>,
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

/// One audit entry as the tables show it.
struct EntryView {
    seq: u64,
    at: String,
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
            at: ev.at.rfc3339(),
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

/// The status choices of the transfer search, `selected` marking the one searched for.
fn status_options(selected: Option<Status>) -> Vec<(&'static str, bool)> {
    Status::ALL
        .iter()
        .map(|s| (s.as_str(), Some(*s) == selected))
        .collect()
}

/// Handles `GET /operator...`; `rest` is the path after `/operator`, `accept_language` the
/// request's header of that name.
pub async fn handle(
    gw: &Arc<Gateway>,
    caller: &AuthenticatedParticipant,
    rest: &[&str],
    query: Option<&str>,
    accept_language: Option<&str>,
) -> Response<Body> {
    let lang = Lang::negotiate(accept_language, DEFAULT_LANG);
    let t = &pages::texts(lang).operator;
    let chrome = |title: String| Chrome {
        lang: lang.code(),
        t,
        gateway: &gw.config.gateway.id,
        signed_in: fill(&t.signed_in_as, &[("who", &caller.participant().id)]),
        title,
    };
    let result = match require_role(caller, Role::Operator) {
        Err(e) => Err(e),
        Ok(()) => match rest {
            [] | [""] => overview(gw, caller, chrome(t.title_overview.clone())).await,
            ["transfers"] => transfers(gw, caller, query, chrome(t.title_transfers.clone())).await,
            ["transfers", id] => {
                let title = fill(&t.title_transfer, &[("id", id)]);
                timeline(gw, caller, id, chrome(title)).await
            }
            ["audit"] => audit(gw, caller, query, chrome(t.title_audit.clone())).await,
            ["verify"] => verify(gw, caller, chrome(t.title_verify.clone())).await,
            _ => Err(ApiError::not_found()),
        },
    };
    match result {
        Ok(page) => pages::html(StatusCode::OK, lang, page),
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
    }
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
    let recent = gw.store.recent_transfers(None, RECENT).await?;
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
                since: since.rfc3339(),
                next_probe: p
                    .health
                    .next_probe_at
                    .map_or_else(|| t.none.clone(), |at| at.rfc3339()),
                participant: p.participant,
            })
        })
        .collect();
    audit_view(gw, caller, "overview", None, recent.len()).await?;
    let page = OverviewPage {
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
                &[("size", &cp.tree_size), ("at", &cp.issued_at.rfc3339())],
            );
            (line, hex(&cp.root_hash))
        }),
        statuses: status_options(None),
        filter: FilterView::of(&AuditFilter {
            limit: 100,
            ..AuditFilter::default()
        }),
        recent,
        chrome,
    };
    Ok(page.render())
}

async fn transfers(
    gw: &Gateway,
    caller: &AuthenticatedParticipant,
    query: Option<&str>,
    chrome: Chrome<'_>,
) -> Result<askama::Result<String>, ApiError> {
    let t = chrome.t;
    let mut id = String::new();
    let mut status = None;
    for (k, v) in query_pairs(query) {
        match k.as_str() {
            "id" => id = v.trim().to_owned(),
            "status" if v.is_empty() => {}
            "status" => {
                status = Some(Status::parse(&v).ok_or_else(|| {
                    ApiError::new(ErrorCode::InvalidQuery, format!("unknown status `{v}`"))
                })?);
            }
            other => {
                return Err(ApiError::new(
                    ErrorCode::InvalidQuery,
                    format!("unknown parameter `{other}`"),
                ));
            }
        }
    }
    let rows: Vec<TransferRow> = if id.is_empty() {
        gw.store.recent_transfers(status, LIST_LIMIT).await?
    } else {
        gw.store
            .transfer(&id)
            .await?
            .into_iter()
            .filter(|r| status.is_none_or(|s| r.status == s))
            .collect()
    };
    audit_view(gw, caller, "transfers", None, rows.len()).await?;
    let mut found = fill(&t.transfers_found, &[("count", &rows.len())]);
    if id.is_empty() && rows.len() as u32 == LIST_LIMIT {
        found = format!("{found} {}", t.newest_only);
    }
    let page = TransfersPage {
        id,
        statuses: status_options(status),
        found,
        rows,
        chrome,
    };
    Ok(page.render())
}

async fn timeline(
    gw: &Gateway,
    caller: &AuthenticatedParticipant,
    id: &str,
    chrome: Chrome<'_>,
) -> Result<askama::Result<String>, ApiError> {
    let t = chrome.t;
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
        submitted_by: fill(
            &t.submitted_by_value,
            &[("submitter", &row.submitter), ("issuer", &row.issuer)],
        ),
        report: row
            .report
            .as_deref()
            .and_then(|r| serde_json::from_str::<serde_json::Value>(r).ok())
            .and_then(|r| serde_json::to_string_pretty(&r).ok()),
        row,
        steps,
        entries_heading: fill(&t.heading_entries, &[("count", &entries.len())]),
        entries: entries.iter().map(EntryView::of).collect(),
        chrome,
    };
    Ok(page.render())
}

async fn audit(
    gw: &Gateway,
    caller: &AuthenticatedParticipant,
    query: Option<&str>,
    chrome: Chrome<'_>,
) -> Result<askama::Result<String>, ApiError> {
    let t = chrome.t;
    let pairs: Vec<(String, String)> = query_pairs(query)
        .into_iter()
        .filter(|(_, v)| !v.trim().is_empty())
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
                        &[("size", &c.tree_size), ("at", &c.time.rfc3339())],
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
        }
    }

    fn hostile_entry() -> EntryView {
        EntryView {
            seq: 7,
            at: "2026-11-23T15:41:00.123Z".into(),
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
        ] {
            assert!(page.contains(escaped), "no `{escaped}` in {page}");
        }
    }

    #[test]
    fn pages_are_in_the_language_asked_for() {
        for (lang, heading, any) in [
            (Lang::Fi, "Siirto – ylläpito — Siirto", "mikä tahansa"),
            (Lang::Sv, "Siirto – drift — Överföring", "vilken som helst"),
            (Lang::En, "Siirto operator — Transfer", "any"),
        ] {
            let page = TransfersPage {
                id: String::new(),
                statuses: status_options(Some(Status::Failed)),
                found: String::new(),
                rows: Vec::new(),
                chrome: chrome(lang),
            }
            .render()
            .unwrap();
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
                page.contains(&pages::texts(lang).operator.no_transfers),
                "{page}"
            );
        }
    }
}

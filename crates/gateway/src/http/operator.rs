//! The operator web page, served by the gateway on its mTLS API listener to the `operator`
//! role only: server-rendered HTML, no scripts, no external assets (a Content-Security-Policy
//! of `default-src 'none'` with inline styles says so to the browser), every value escaped.
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
//! Must not: run scripts in the browser, link outside the gateway, or print anything
//! unescaped.

use std::fmt::Write as _;
use std::sync::Arc;

use http::StatusCode;
use hyper::Response;
use serde_json::json;

use super::{ApiError, ErrorCode, json_response, query_pairs, require_role, text_response};
use crate::server::Body;
use crate::state::Gateway;
use crate::store::{AuditFilter, StepRow, TransferRow};
use siirto_core::audit::AuditEntry;
use siirto_core::clock::hex;
use siirto_core::identity::AuthenticatedParticipant;
use siirto_core::identity::Role;
use siirto_core::transfer::Status;

/// Transfers listed on one page.
const LIST_LIMIT: u32 = 100;
/// Latest transfers on the overview.
const RECENT: u32 = 20;
/// Audit entries shown on a transfer's timeline.
const TIMELINE_ENTRIES: u32 = 1000;

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query or path component.
fn url(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

const STYLE: &str = "\
body{font-family:system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1b1f24}\
header{background:#0b3d6b;color:#fff;padding:10px 20px;display:flex;gap:24px;align-items:baseline;flex-wrap:wrap}\
header a{color:#fff;margin-right:14px}header .who{opacity:.8;font-size:90%}\
main{padding:16px 20px;max-width:1400px}\
h1{font-size:1.4em;margin:.2em 0 .6em}h2{font-size:1.1em;margin:1.2em 0 .4em}\
table{border-collapse:collapse;background:#fff;width:100%;font-size:90%}\
th,td{border:1px solid #d0d4da;padding:4px 8px;text-align:left;vertical-align:top}\
th{background:#e8ecf1}td.wrap{overflow-wrap:anywhere;min-width:16em}code,.mono{font-family:ui-monospace,monospace;font-size:92%;word-break:break-all}\
.status{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;background:#e1e5ea}\
.status-delivered{background:#c9f0d2;color:#0f5323}.status-failed{background:#f9d2d2;color:#8a1111}\
.status-cancelled{background:#eee;color:#555}\
.ok{background:#dff5e4;border:1px solid #7bc48d;padding:10px 14px}\
.bad{background:#fbe3e3;border:1px solid #d77;padding:10px 14px}\
form{background:#fff;border:1px solid #d0d4da;padding:10px 14px;margin:8px 0;display:flex;gap:10px;flex-wrap:wrap;align-items:end}\
label{display:flex;flex-direction:column;font-size:85%}dl{display:grid;grid-template-columns:max-content auto;gap:4px 16px;background:#fff;border:1px solid #d0d4da;padding:10px 14px}\
dt{font-weight:600}dd{margin:0}pre{background:#fff;border:1px solid #d0d4da;padding:8px;overflow:auto}";

fn page(gw: &Gateway, caller: &AuthenticatedParticipant, title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Siirto operator — {title}</title><style>{STYLE}</style></head><body>\
         <header><strong>Siirto operator</strong><span class=\"mono\">{gateway}</span>\
         <nav><a href=\"/operator\">Overview</a><a href=\"/operator/transfers\">Transfers</a>\
         <a href=\"/operator/audit\">Audit log</a><a href=\"/operator/verify\">Verify</a></nav>\
         <span class=\"who\">signed in as {who}</span></header>\
         <main><h1>{title}</h1>\n{body}\n</main></body></html>\n",
        title = esc(title),
        gateway = esc(&gw.config.gateway.id),
        who = esc(&caller.participant().id),
    )
}

fn html(status: StatusCode, body: String) -> Response<Body> {
    let mut r = text_response(status, "text/html; charset=utf-8", body);
    let h = r.headers_mut();
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
        ("x-frame-options", "DENY"),
    ] {
        h.insert(name, http::HeaderValue::from_static(value));
    }
    r
}

fn error_page(e: &ApiError) -> Response<Body> {
    let body = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Siirto operator — {code}</title>\
         <style>{STYLE}</style></head><body><main><h1>{status}</h1><p class=\"bad\"><code>{code}</code>: {message}</p>\
         <p><a href=\"/operator\">Back to the overview</a></p></main></body></html>\n",
        status = e.status().as_u16(),
        code = esc(e.code.as_str()),
        message = esc(&e.message),
    );
    html(e.status(), body)
}

fn status_badge(s: &str) -> String {
    format!("<span class=\"status status-{s}\">{s}</span>", s = esc(s))
}

/// Handles `GET /operator...`; `rest` is the path after `/operator`.
pub async fn handle(
    gw: &Arc<Gateway>,
    caller: &AuthenticatedParticipant,
    rest: &[&str],
    query: Option<&str>,
) -> Response<Body> {
    let result = match require_role(caller, Role::Operator) {
        Err(e) => Err(e),
        Ok(()) => match rest {
            [] | [""] => overview(gw, caller).await,
            ["transfers"] => transfers(gw, caller, query).await,
            ["transfers", id] => timeline(gw, caller, id).await,
            ["audit"] => audit(gw, caller, query).await,
            ["verify"] => verify(gw, caller).await,
            _ => Err(ApiError::not_found()),
        },
    };
    match result {
        Ok(body) => html(StatusCode::OK, body),
        Err(e) => error_page(&e),
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

fn transfer_table(rows: &[TransferRow]) -> String {
    if rows.is_empty() {
        return "<p>No transfers.</p>".into();
    }
    let mut out = String::from(
        "<table><thead><tr><th>Transfer</th><th>Status</th><th>From → to</th><th>Purpose</th>\
         <th>Scope</th><th>Accepted</th><th>Updated</th></tr></thead><tbody>",
    );
    for r in rows {
        let reason = r
            .reason
            .map(|x| format!(" <code>{}</code>", esc(x.as_str())))
            .unwrap_or_default();
        let _ = write!(
            out,
            "<tr><td><a class=\"mono\" href=\"/operator/transfers/{link}\">{id}</a></td><td>{status}{reason}</td>\
             <td>{src} → {dst}</td><td>{purpose}</td><td>{scope}</td><td>{created}</td><td>{updated}</td></tr>",
            link = url(&r.id),
            id = esc(&r.id),
            status = status_badge(r.status.as_str()),
            src = esc(&r.src),
            dst = esc(&r.dst),
            purpose = esc(&r.purpose),
            scope = esc(&r.scope),
            created = esc(&r.created_at.rfc3339()),
            updated = esc(&r.updated_at.rfc3339()),
        );
    }
    out.push_str("</tbody></table>");
    out
}

fn entry_table(entries: &[AuditEntry]) -> String {
    if entries.is_empty() {
        return "<p>No audit entries.</p>".into();
    }
    let mut out = String::from(
        "<table><thead><tr><th>Seq</th><th>At</th><th>Actor</th><th>Action</th><th>Outcome</th>\
         <th>Transfer</th><th>Subject (pseudonym)</th><th>Detail</th><th>Hash</th></tr></thead><tbody>",
    );
    for e in entries {
        let ev = &e.event;
        let detail: Vec<String> = ev
            .detail
            .iter()
            .map(|(k, v)| format!("<b>{}</b>={}", esc(k), esc(v)))
            .collect();
        let transfer = ev
            .transfer_id
            .as_deref()
            .map(|t| {
                let short: String = t.chars().take(8).collect();
                format!(
                    "<a class=\"mono\" href=\"/operator/transfers/{}\" title=\"{}\">{}…</a>",
                    url(t),
                    esc(t),
                    esc(&short)
                )
            })
            .unwrap_or_default();
        let subject = ev
            .subject
            .as_ref()
            .map(|p| format!("<span class=\"mono\">{}…</span>", esc(&p.as_str()[..12])))
            .unwrap_or_default();
        let _ = write!(
            out,
            "<tr><td><a href=\"/v1/audit/proof/inclusion?index={seq}\" title=\"inclusion proof (JSON)\">{seq}</a></td>\
             <td>{at}</td><td>{actor}</td><td>{action}</td><td>{outcome}</td><td>{transfer}</td>\
             <td>{subject}</td><td class=\"wrap\">{detail}</td><td class=\"mono\">{hash}…</td></tr>",
            seq = e.seq,
            at = esc(&ev.at.rfc3339()),
            actor = esc(&ev.actor),
            action = esc(&ev.action),
            outcome = esc(&ev.outcome),
            detail = detail.join("<br>"),
            hash = esc(&hex(&e.hash)[..16]),
        );
    }
    out.push_str("</tbody></table>");
    out
}

fn transfer_form(id: &str, status: Option<Status>) -> String {
    let mut options = String::from("<option value=\"\">any</option>");
    for s in Status::ALL {
        let selected = if Some(s) == status { " selected" } else { "" };
        let _ = write!(
            options,
            "<option value=\"{v}\"{selected}>{v}</option>",
            v = s.as_str()
        );
    }
    format!(
        "<form method=\"get\" action=\"/operator/transfers\"><label>Transfer id\
         <input name=\"id\" size=\"40\" value=\"{id}\"></label><label>Status<select name=\"status\">{options}</select></label>\
         <button type=\"submit\">Search transfers</button></form>",
        id = esc(id)
    )
}

fn audit_form(f: &AuditFilter) -> String {
    let v = |o: &Option<String>| esc(o.as_deref().unwrap_or(""));
    let t = |o: &Option<siirto_core::clock::Timestamp>| {
        o.map(|x| esc(&x.rfc3339())).unwrap_or_default()
    };
    format!(
        "<form method=\"get\" action=\"/operator/audit\">\
         <label>Transfer<input name=\"transfer\" size=\"36\" value=\"{transfer}\"></label>\
         <label>Actor<input name=\"actor\" value=\"{actor}\"></label>\
         <label>Action<input name=\"action\" value=\"{action}\" placeholder=\"transfer.delivered\"></label>\
         <label>Since<input name=\"since\" value=\"{since}\" placeholder=\"2026-11-23T00:00:00Z\"></label>\
         <label>Until<input name=\"until\" value=\"{until}\" placeholder=\"RFC 3339\"></label>\
         <label>Limit<input name=\"limit\" size=\"5\" value=\"{limit}\"></label>\
         <button type=\"submit\">Search audit entries</button></form>",
        transfer = v(&f.transfer),
        actor = v(&f.actor),
        action = v(&f.action),
        since = t(&f.since),
        until = t(&f.until),
        limit = f.limit,
    )
}

async fn overview(gw: &Gateway, caller: &AuthenticatedParticipant) -> Result<String, ApiError> {
    let status = gw.trail.status();
    let latest = gw.store.latest_checkpoint().await?;
    let recent = gw.store.recent_transfers(None, RECENT).await?;
    audit_view(gw, caller, "overview", None, recent.len()).await?;
    let mut body = String::from("<h2>Audit trail</h2>");
    match &status.broken {
        Some(fault) => {
            let _ = write!(
                body,
                "<p class=\"bad\">The audit log does <b>not</b> verify after entry {}: {}. No checkpoints are signed until it is repaired. <a href=\"/operator/verify\">Verify now</a></p>",
                status.size,
                esc(&fault.to_string())
            );
        }
        None => {
            let _ = write!(
                body,
                "<p class=\"ok\">Followed and checked: {} entries; Merkle root <code>{}</code>. <a href=\"/operator/verify\">Verify the whole stored log now</a></p>",
                status.size,
                hex(&status.root)
            );
        }
    }
    match latest {
        Some(cp) => {
            let _ = write!(
                body,
                "<p>Latest signed checkpoint: tree size <b>{}</b>, root <code>{}</code>, signed {}.</p>",
                cp.tree_size,
                hex(&cp.root_hash),
                esc(&cp.issued_at.rfc3339())
            );
        }
        None => body.push_str("<p>No checkpoint has been signed yet.</p>"),
    }
    body.push_str("<h2>Search</h2>");
    body.push_str(&transfer_form("", None));
    body.push_str(&audit_form(&AuditFilter {
        limit: 100,
        ..AuditFilter::default()
    }));
    body.push_str("<h2>Latest transfers</h2>");
    body.push_str(&transfer_table(&recent));
    Ok(page(gw, caller, "Overview", &body))
}

async fn transfers(
    gw: &Gateway,
    caller: &AuthenticatedParticipant,
    query: Option<&str>,
) -> Result<String, ApiError> {
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
    let mut body = transfer_form(&id, status);
    let _ = write!(
        body,
        "<p>{} transfer(s){}.</p>",
        rows.len(),
        if id.is_empty() && rows.len() as u32 == LIST_LIMIT {
            " (the newest only)"
        } else {
            ""
        }
    );
    body.push_str(&transfer_table(&rows));
    Ok(page(gw, caller, "Transfers", &body))
}

fn steps_table(steps: &[StepRow]) -> String {
    let mut out = String::from(
        "<table><thead><tr><th>#</th><th>At</th><th>Step</th><th>Outcome</th><th>Detail</th></tr></thead><tbody>",
    );
    for s in steps {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            s.seq,
            esc(&s.at.rfc3339()),
            esc(&s.step),
            esc(&s.outcome),
            esc(s.detail.as_deref().unwrap_or("")),
        );
    }
    out.push_str("</tbody></table>");
    out
}

async fn timeline(
    gw: &Gateway,
    caller: &AuthenticatedParticipant,
    id: &str,
) -> Result<String, ApiError> {
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
    let mut body = String::new();
    let opt = |v: &Option<String>| esc(v.as_deref().unwrap_or("—"));
    let _ = write!(
        body,
        "<dl><dt>Transfer</dt><dd class=\"mono\">{id}</dd><dt>Status</dt><dd>{status}{reason}</dd>\
         <dt>From → to</dt><dd>{src} → {dst}</dd><dt>Submitted by</dt><dd>{submitter} (issuer {issuer})</dd>\
         <dt>Purpose</dt><dd>{purpose}</dd><dt>Scope</dt><dd>{scope}</dd>\
         <dt>Student (pseudonym)</dt><dd class=\"mono\">{subject}</dd><dt>Delivery attempts</dt><dd>{attempts}</dd>\
         <dt>Accepted</dt><dd>{created}</dd><dt>Updated</dt><dd>{updated}</dd>\
         <dt>Delivered document SHA-256</dt><dd class=\"mono\">{doc}</dd>\
         <dt>Receipt</dt><dd>{receipt}</dd></dl>",
        id = esc(&row.id),
        status = status_badge(row.status.as_str()),
        reason = row
            .reason
            .map(|r| format!(" reason <code>{}</code>", esc(r.as_str())))
            .unwrap_or_default(),
        src = esc(&row.src),
        dst = esc(&row.dst),
        submitter = esc(&row.submitter),
        issuer = esc(&row.issuer),
        purpose = esc(&row.purpose),
        scope = esc(&row.scope),
        subject = esc(&row.subject_pseudonym),
        attempts = row.attempts,
        created = esc(&row.created_at.rfc3339()),
        updated = esc(&row.updated_at.rfc3339()),
        doc = opt(&row.document_sha256),
        receipt = match row.receipt_leaf {
            Some(leaf) => format!(
                "signed; audit leaf <a href=\"/v1/audit/proof/inclusion?index={leaf}\">{leaf}</a>"
            ),
            None => "—".into(),
        },
    );
    body.push_str("<h2>Steps</h2>");
    body.push_str(&steps_table(&steps));
    let _ = write!(body, "<h2>Audit entries ({})</h2>", entries.len());
    body.push_str(&entry_table(&entries));
    if let Some(report) = row
        .report
        .as_deref()
        .and_then(|r| serde_json::from_str::<serde_json::Value>(r).ok())
    {
        let pretty = serde_json::to_string_pretty(&report).unwrap_or_default();
        let _ = write!(
            body,
            "<h2>Conversion summary</h2><details><summary>counts and paths (no personal data)</summary><pre>{}</pre></details>",
            esc(&pretty)
        );
    }
    Ok(page(gw, caller, &format!("Transfer {id}"), &body))
}

async fn audit(
    gw: &Gateway,
    caller: &AuthenticatedParticipant,
    query: Option<&str>,
) -> Result<String, ApiError> {
    let pairs: Vec<(String, String)> = query_pairs(query)
        .into_iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .collect();
    let filter = super::audit::parse_filter_pairs(pairs.clone())?;
    let page_of = gw.store.audit_query(&filter).await?;
    audit_view(
        gw,
        caller,
        "audit",
        filter.transfer.as_deref(),
        page_of.entries.len(),
    )
    .await?;
    let mut body = audit_form(&filter);
    let _ = write!(body, "<p>{} entries.</p>", page_of.entries.len());
    body.push_str(&entry_table(&page_of.entries));
    if let Some(next) = page_of.next_cursor {
        let mut q: Vec<String> = pairs
            .iter()
            .filter(|(k, _)| k != "cursor")
            .map(|(k, v)| format!("{}={}", url(k), url(v)))
            .collect();
        q.push(format!("cursor={next}"));
        let _ = write!(
            body,
            "<p><a href=\"/operator/audit?{}\">Next page →</a></p>",
            esc(&q.join("&"))
        );
    }
    Ok(page(gw, caller, "Audit log", &body))
}

async fn verify(gw: &Gateway, caller: &AuthenticatedParticipant) -> Result<String, ApiError> {
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
    let mut body = String::new();
    match &outcome.result {
        Ok(summary) => {
            let _ = write!(
                body,
                "<div class=\"ok\"><p><b>The audit log verifies.</b></p><dl>\
                 <dt>Entries checked</dt><dd id=\"entries-checked\">{entries}</dd>\
                 <dt>Merkle root</dt><dd class=\"mono\">{root}</dd>\
                 <dt>Last entry hash</dt><dd class=\"mono\">{head}</dd>\
                 <dt>Checkpoints verified</dt><dd>{checkpoints}</dd>\
                 <dt>Latest checkpoint</dt><dd>{latest}</dd>\
                 <dt>Entries after it</dt><dd>{unanchored} (protected by the hash chain only until the next checkpoint)</dd>\
                 <dt>Took</dt><dd>{ms} ms</dd></dl></div>",
                entries = summary.entries,
                root = hex(&summary.root),
                head = hex(&summary.head_hash),
                checkpoints = summary.checkpoints,
                latest = summary
                    .latest_checkpoint
                    .as_ref()
                    .map(|c| format!("size {} signed {}", c.tree_size, esc(&c.time.rfc3339())))
                    .unwrap_or_else(|| "none".into()),
                unanchored = summary.unanchored,
                ms = elapsed.as_millis(),
            );
        }
        Err(e) => {
            let first = e
                .first_bad_seq()
                .map(|s| {
                    format!(
                        "<dt>First bad entry</dt><dd id=\"first-bad-entry\">{s} — <a href=\"/operator/audit?cursor={}&amp;limit=5\">show entries around it</a></dd>",
                        s.saturating_sub(3)
                    )
                })
                .unwrap_or_default();
            let _ = write!(
                body,
                "<div class=\"bad\"><p><b>The audit log does NOT verify.</b></p><dl>\
                 <dt>Problem</dt><dd>{problem}</dd>{first}\
                 <dt>Entries checked before it</dt><dd id=\"entries-checked\">{checked}</dd>\
                 <dt>Checkpoints stored</dt><dd>{checkpoints}</dd><dt>Took</dt><dd>{ms} ms</dd></dl></div>",
                problem = esc(&e.to_string()),
                checked = outcome.checked,
                checkpoints = outcome.checkpoints,
                ms = elapsed.as_millis(),
            );
        }
    }
    Ok(page(gw, caller, "Verify the audit log", &body))
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

    #[test]
    fn escaping_covers_markup_and_attributes() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(url("a b/ä&x=1"), "a%20b%2F%C3%A4%26x%3D1");
        assert_eq!(url("seq-1_x.y~"), "seq-1_x.y~");
        assert!(status_badge("<b>").contains("&lt;b&gt;"));
    }
}

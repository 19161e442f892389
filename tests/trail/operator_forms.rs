//! The operator page's forms and listings from a Rust client with the operator's certificate:
//! cancel and retry buttons refused without the page's form token (and with a wrong one) and
//! working with it, under the API's rules and audit; the transfers view's next attempt, last
//! error and totals; the page in each of its three languages (chosen by the browser, by a
//! language link, then by the cookie it sets); the exports (CSV and JSON lines) parsed; the
//! subject lookup's refusals and its JSON export; `siirto transfers list` and `show`.

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use serde_json::Value;
use siirto_devkit::client::{Answer, MtlsClient};
use siirto_devkit::peers::Behaviour;
use siirto_devkit::testbed::Testbed;
use siirto_gateway::listing::CSV_HEADER;
use siirto_gateway::store::AuditFilter;

use crate::support::{OPERATOR, OTHER_STUDENT, STUDENT, deliver, operator, siirto, start, stdout};

fn html(a: &Answer) -> String {
    String::from_utf8_lossy(&a.body).into_owned()
}

/// The form token of a page (every page carries one in its forms, or none when it has none).
fn form_token(page: &str) -> String {
    page.split("name=\"form_token\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a form token on the page")
        .to_owned()
}

async fn post_form(client: &MtlsClient, path: &str, fields: &[(&str, &str)]) -> Answer {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    client
        .send(
            Method::POST,
            path,
            &[("content-type", "application/x-www-form-urlencoded")],
            Some(Bytes::from(body)),
        )
        .await
        .unwrap()
}

/// Audit entries with `action`.
async fn entries(bed: &Testbed, action: &str) -> Vec<siirto_core::audit::AuditEntry> {
    let gw = bed.gateway.as_ref().unwrap();
    gw.store
        .audit_query(&AuditFilter {
            action: Some(action.into()),
            limit: 1000,
            ..AuditFilter::default()
        })
        .await
        .unwrap()
        .entries
}

/// A transfer that failed (`source_not_found`): helsinki has no record of the student.
async fn failed_transfer(bed: &Testbed) -> String {
    let id = crate::support::submit(bed, STUDENT, "helsinki", "espoo", "identity").await;
    bed.wait_for_status("eservice", &id, &["failed"], Duration::from_secs(20))
        .await
        .unwrap();
    id
}

/// A transfer waiting between delivery attempts: oulu (as destination) answers 503.
async fn waiting_transfer(bed: &Testbed) -> String {
    bed.destinations["oulu"].set_behaviour(Behaviour::Status(503));
    bed.sources["turku"].insert(OTHER_STUDENT, crate::support::record_for(OTHER_STUDENT));
    let id = crate::support::submit(bed, OTHER_STUDENT, "turku", "oulu", "identity").await;
    let gw = bed.gateway.clone().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let row = gw.store.transfer(&id).await.unwrap().unwrap();
        if row.status.as_str() == "delivering" && row.lease_owner.is_none() && row.attempts >= 1 {
            return id;
        }
        assert!(tokio::time::Instant::now() < deadline, "{row:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_retry_buttons_need_the_form_token_and_follow_the_api() {
    let bed = start(None, None).await;
    let failed = failed_transfer(&bed).await;
    let waiting = waiting_transfer(&bed).await;
    let op = operator(&bed);

    // The transfers view: the waiting one with its next attempt, its last error and a cancel
    // button; the failed one with a retry button; totals per status.
    let page = html(&op.get("/operator/transfers", &[]).await.unwrap());
    let row = page
        .split(&format!("<tr id=\"t-{waiting}\">"))
        .nth(1)
        .and_then(|s| s.split("</tr>").next())
        .unwrap();
    assert!(
        row.contains("<span class=\"error\">destination_unavailable"),
        "{row}"
    );
    assert!(
        row.matches("<time ").count() >= 3,
        "accepted, updated, next attempt: {row}"
    );
    assert!(
        row.contains(&format!("action=\"/operator/transfers/{waiting}/cancel\"")),
        "{row}"
    );
    assert!(page.contains(&format!("action=\"/operator/transfers/{failed}/retry\"")));
    assert!(
        page.contains("<b id=\"total-failed\">1</b>")
            && page.contains("<b id=\"total-delivering\">1</b>"),
        "{page}"
    );
    let token = form_token(&page);

    // Without a token, with another participant's, with a changed one: 403, audited, nothing
    // changes.
    let gw = bed.gateway.clone().unwrap();
    let others = gw.form_tokens.token("eservice", gw.now());
    let mut changed = token.clone();
    changed.replace_range(..1, if token.starts_with('0') { "1" } else { "0" });
    for (path, fields) in [
        (format!("/operator/transfers/{waiting}/cancel"), vec![]),
        (
            format!("/operator/transfers/{waiting}/cancel"),
            vec![("form_token", others.as_str())],
        ),
        (
            format!("/operator/transfers/{failed}/retry"),
            vec![("form_token", changed.as_str())],
        ),
        (
            format!("/operator/transfers/{failed}/retry"),
            vec![("form_token", "")],
        ),
    ] {
        let answer = post_form(&op, &path, &fields).await;
        assert_eq!(answer.status.as_u16(), 403, "{path}");
        assert!(
            html(&answer).contains("<code>invalid_form_token</code>"),
            "{path}"
        );
    }
    let refused = entries(&bed, "operator.form_refused").await;
    assert_eq!(refused.len(), 4);
    assert!(
        refused
            .iter()
            .all(|e| e.event.actor == OPERATOR && e.event.outcome == "invalid_form_token")
    );
    assert_eq!(refused[0].event.detail["form"], "cancel");
    assert_eq!(refused[2].event.detail["form"], "retry");
    assert_eq!(
        gw.store
            .transfer(&waiting)
            .await
            .unwrap()
            .unwrap()
            .status
            .as_str(),
        "delivering"
    );
    assert_eq!(
        gw.store
            .transfer(&failed)
            .await
            .unwrap()
            .unwrap()
            .status
            .as_str(),
        "failed"
    );
    // Another participant cannot use the forms at all.
    let eservice = bed.client("eservice").unwrap();
    let answer = post_form(
        &eservice,
        &format!("/operator/transfers/{failed}/retry"),
        &[("form_token", &others)],
    )
    .await;
    assert_eq!(answer.status.as_u16(), 403);
    assert!(html(&answer).contains("<code>forbidden_role</code>"));

    // With the token: the API's cancel and retry, then back to the timeline with a notice.
    let answer = post_form(
        &op,
        &format!("/operator/transfers/{waiting}/cancel"),
        &[("form_token", &token)],
    )
    .await;
    assert_eq!(answer.status.as_u16(), 303, "{}", html(&answer));
    let location = answer.headers["location"].to_str().unwrap().to_owned();
    assert_eq!(
        location,
        format!("/operator/transfers/{waiting}?notice=cancelled")
    );
    let timeline = html(&op.get(&location, &[]).await.unwrap());
    assert!(
        timeline.contains("The transfer was cancelled."),
        "{timeline}"
    );
    assert!(timeline.contains("<span class=\"status status-cancelled\">cancelled</span>"));
    let answer = post_form(
        &op,
        &format!("/operator/transfers/{failed}/retry"),
        &[("form_token", &token)],
    )
    .await;
    assert_eq!(answer.status.as_u16(), 303, "{}", html(&answer));
    let cancelled = entries(&bed, "transfer.cancelled").await;
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0].event.actor, OPERATOR);
    assert_eq!(cancelled[0].event.detail["via"], "operator_page");
    assert_eq!(
        cancelled[0].event.transfer_id.as_deref(),
        Some(waiting.as_str())
    );
    let retried = entries(&bed, "transfer.retried").await;
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].event.detail["via"], "operator_page");
    assert_eq!(
        retried[0].event.detail["previous_reason"],
        "source_not_found"
    );
    // The same rules as the API: a cancelled transfer cannot be cancelled again (409, audited
    // as the API audits it), nor can a transfer that has not failed be retried.
    let again = post_form(
        &op,
        &format!("/operator/transfers/{waiting}/cancel"),
        &[("form_token", &token)],
    )
    .await;
    assert_eq!(again.status.as_u16(), 409);
    assert!(html(&again).contains("<code>already_finished</code>"));
    let again = post_form(
        &op,
        &format!("/operator/transfers/{waiting}/retry"),
        &[("form_token", &token)],
    )
    .await;
    assert_eq!(again.status.as_u16(), 409);
    assert!(html(&again).contains("<code>not_failed</code>"));
    let refusals = entries(&bed, "transfer.cancel_refused").await;
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0].event.outcome, "already_finished");
    bed.destinations["oulu"].set_behaviour(Behaviour::Normal);
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_speaks_finnish_swedish_and_english() {
    let bed = start(None, None).await;
    let failed = failed_transfer(&bed).await;
    let op = operator(&bed);
    for (accept, lang, texts) in [
        (
            "fi-FI,fi;q=0.9",
            "fi",
            [
                "Siirrot",
                "Tiloittain",
                "Seuraava yritys",
                "Lataa CSV-tiedostona",
                "Henkilöhaku",
                "Yritä uudelleen",
            ],
        ),
        (
            "sv-FI,sv;q=0.9",
            "sv",
            [
                "Överföringar",
                "Per status",
                "Nästa försök",
                "Ladda ner som CSV",
                "Personsökning",
                "Försök igen",
            ],
        ),
        (
            "en-GB",
            "en",
            [
                "Transfers",
                "By status",
                "Next attempt",
                "Download as CSV",
                "Subject lookup",
                "Retry",
            ],
        ),
    ] {
        let answer = op
            .get("/operator/transfers", &[("accept-language", accept)])
            .await
            .unwrap();
        let page = html(&answer);
        assert!(
            page.starts_with(&format!("<!DOCTYPE html>\n<html lang=\"{lang}\">")),
            "{page}"
        );
        assert_eq!(answer.headers["content-language"], lang);
        for text in texts {
            assert!(page.contains(text), "{lang}: no `{text}`");
        }
        assert!(page.contains(&failed));
        // Each page links to itself in the three languages.
        for code in ["fi", "sv", "en"] {
            assert!(
                page.contains(&format!(
                    "href=\"/operator/transfers?lang={code}\" lang=\"{code}\""
                )),
                "{page}"
            );
        }
        // Times in Helsinki (EET or EEST), the UTC value in the title.
        let time = page.split("<time datetime=\"").nth(1).unwrap();
        let (utc, rest) = time.split_once('"').unwrap();
        assert!(rest.starts_with(&format!(" title=\"{utc}\">")), "{rest}");
        let local = rest.split('>').nth(1).unwrap().split('<').next().unwrap();
        assert!(
            local.ends_with(" EET") || local.ends_with(" EEST"),
            "{local}"
        );
    }
    // A language link sets the language, and a cookie that keeps it over the browser's.
    let answer = op
        .get("/operator/subjects?lang=sv", &[("accept-language", "fi")])
        .await
        .unwrap();
    assert!(html(&answer).contains("<html lang=\"sv\">"));
    let cookie = answer.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with("siirto_lang=sv; Path=/operator;")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let kept = op
        .get(
            "/operator",
            &[("accept-language", "fi"), ("cookie", "siirto_lang=sv")],
        )
        .await
        .unwrap();
    let page = html(&kept);
    assert!(
        page.contains("<html lang=\"sv\">") && page.contains("Senaste överföringar"),
        "{page}"
    );
    assert!(kept.headers.get("set-cookie").is_none());
    bed.stop().await;
}

/// Reads CSV (RFC 4180: quoted fields may hold commas, quotes doubled, line breaks).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(
        field.is_empty() && record.is_empty(),
        "the last line ends with a line break"
    );
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_parse_and_the_subject_lookup_needs_a_reason() {
    let bed = start(None, None).await;
    let (delivered, _) = deliver(&bed, STUDENT, "identity achievements").await;
    let failed = failed_transfer(&bed).await;
    let (other, _) = deliver(&bed, OTHER_STUDENT, "identity").await;
    let op = operator(&bed);

    // CSV: the header, then one row of 13 fields per transfer; JSON lines: one object each.
    let csv = op
        .get("/operator/transfers/export?format=csv", &[])
        .await
        .unwrap();
    assert_eq!(csv.status.as_u16(), 200);
    assert_eq!(csv.headers["content-type"], "text/csv; charset=utf-8");
    assert!(
        csv.headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    let records = parse_csv(&html(&csv));
    assert_eq!(records[0].join(","), CSV_HEADER);
    assert_eq!(records.len(), 4, "{records:?}");
    assert!(records[1..].iter().all(|r| r.len() == 13), "{records:?}");
    let jsonl = op
        .get("/operator/transfers/export?format=jsonl", &[])
        .await
        .unwrap();
    let lines: Vec<Value> = html(&jsonl)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids = |rows: Vec<String>| {
        let mut rows = rows;
        rows.sort();
        rows
    };
    assert_eq!(
        ids(lines
            .iter()
            .map(|l| l["id"].as_str().unwrap().to_owned())
            .collect()),
        ids(records[1..].iter().map(|r| r[0].clone()).collect())
    );
    let row = records.iter().find(|r| r[0] == failed).unwrap();
    assert_eq!(
        (row[1].as_str(), row[2].as_str()),
        ("failed", "source_not_found")
    );
    // The filtered list, exported as shown.
    let only = op
        .get(
            "/operator/transfers/export?format=jsonl&status=failed&src=helsinki",
            &[],
        )
        .await
        .unwrap();
    let lines: Vec<Value> = html(&only)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["id"], failed.as_str());
    assert_eq!(lines[0]["reason"], "source_not_found");
    let bad = op
        .get("/operator/transfers/export?format=xml", &[])
        .await
        .unwrap();
    assert_eq!(bad.status.as_u16(), 400);
    let exports = entries(&bed, "audit.read").await;
    assert_eq!(
        exports
            .iter()
            .filter(|e| e.event.detail.get("view").map(String::as_str) == Some("export"))
            .count(),
        3
    );

    // Paging: one transfer a page, every transfer once, newest first.
    let mut seen = Vec::new();
    let mut next = Some("/operator/transfers?limit=1".to_owned());
    while let Some(path) = next {
        let page = html(&op.get(&path, &[]).await.unwrap());
        seen.extend(
            page.split("<tr id=\"t-")
                .skip(1)
                .map(|s| s.split('"').next().unwrap().to_owned()),
        );
        next = page
            .split("<a rel=\"next\" href=\"")
            .nth(1)
            .map(|s| s.split('"').next().unwrap().replace("&#38;", "&"));
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[0], other);

    // The subject lookup: no reason, a wrong identifier: 400, audited without the identifier.
    let token = form_token(&html(&op.get("/operator/subjects", &[]).await.unwrap()));
    let answer = post_form(
        &op,
        "/operator/subjects",
        &[
            ("form_token", &token),
            ("subject", STUDENT),
            ("reason", " "),
        ],
    )
    .await;
    assert_eq!(answer.status.as_u16(), 400);
    assert!(html(&answer).contains("<code>invalid_form</code>"));
    let answer = post_form(
        &op,
        "/operator/subjects",
        &[
            ("form_token", &token),
            ("subject", "150608A123K"),
            ("reason", "TP-1"),
        ],
    )
    .await;
    assert_eq!(answer.status.as_u16(), 400);
    assert!(!html(&answer).contains("150608A123K"));
    let answer = post_form(
        &op,
        "/operator/subjects",
        &[("subject", STUDENT), ("reason", "TP-1")],
    )
    .await;
    assert_eq!(answer.status.as_u16(), 403);
    let lookups = entries(&bed, "operator.subject_lookup").await;
    assert_eq!(
        lookups
            .iter()
            .map(|e| e.event.outcome.as_str())
            .collect::<Vec<_>>(),
        ["invalid_form", "invalid_form"]
    );
    assert!(lookups.iter().all(|e| e.event.subject.is_none()));
    // Found: the person's transfers, not the other person's.
    let answer = post_form(
        &op,
        "/operator/subjects",
        &[
            ("form_token", &token),
            ("subject", STUDENT),
            ("reason", "TP-2026-5"),
        ],
    )
    .await;
    assert_eq!(answer.status.as_u16(), 200);
    let page = html(&answer);
    assert!(
        page.contains(&delivered) && page.contains(&failed) && !page.contains(&other),
        "{page}"
    );
    assert!(!page.contains(STUDENT));
    let pseudonym = page
        .split("name=\"pseudonym\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    // Its export: one JSON document with the transfers and the audit entries about the person.
    let export = post_form(
        &op,
        "/operator/subjects/export",
        &[
            ("form_token", &token),
            ("pseudonym", &pseudonym),
            ("reason", "TP-2026-5"),
        ],
    )
    .await;
    assert_eq!(export.status.as_u16(), 200);
    assert!(
        export.headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"siirto-subject-")
    );
    let document = export.json();
    assert_eq!(document["subject_pseudonym"], pseudonym.as_str());
    assert_eq!(document["reason"], "TP-2026-5");
    let mut listed: Vec<&str> = document["transfers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    listed.sort();
    let mut expected = vec![delivered.as_str(), failed.as_str()];
    expected.sort();
    assert_eq!(listed, expected);
    assert!(
        document["transfers"][0]["steps"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
    );
    let actions: Vec<&str> = document["audit_entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "transfer.accepted",
        "transfer.delivered",
        "operator.subject_lookup",
        "operator.subject_export",
    ] {
        assert!(actions.contains(&action), "{action}: {actions:?}");
    }
    assert!(!html(&export).contains(STUDENT));
    let exported = entries(&bed, "operator.subject_export").await;
    assert_eq!(exported.len(), 1);
    assert_eq!(exported[0].event.detail["reason"], "TP-2026-5");
    assert_eq!(
        exported[0].event.subject.as_ref().map(|p| p.as_str()),
        Some(pseudonym.as_str())
    );

    // The command line: the same list, and one transfer.
    let config = bed.config_path().display().to_string();
    let out = siirto(&[
        "transfers",
        "list",
        "--config",
        &config,
        "--format",
        "jsonl",
        "--status",
        "failed",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["id"], failed.as_str());
    let out = siirto(&[
        "transfers",
        "list",
        "--config",
        &config,
        "--subject",
        STUDENT,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--reason is required with --subject"));
    let out = siirto(&[
        "transfers",
        "list",
        "--config",
        &config,
        "--subject",
        STUDENT,
        "--reason",
        "TP-2026-6",
        "--format",
        "csv",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = parse_csv(&stdout(&out));
    assert_eq!(records[0].join(","), CSV_HEADER);
    assert_eq!(records.len(), 3);
    assert!(!stdout(&out).contains(STUDENT));
    let lookups = entries(&bed, "operator.subject_lookup").await;
    let by_cli = lookups.iter().find(|e| e.event.actor == "cli").unwrap();
    assert_eq!(by_cli.event.detail["reason"], "TP-2026-6");
    assert_eq!(
        by_cli.event.subject.as_ref().map(|p| p.as_str()),
        Some(pseudonym.as_str())
    );
    let out = siirto(&["transfers", "list", "--config", &config, "--src", "nowhere"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--src: `nowhere` is not a participant"));
    let out = siirto(&["transfers", "show", "--config", &config, &delivered]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(shown["status"], "delivered");
    assert!(
        shown["audit_entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "transfer.delivered")
    );
    let out = siirto(&["transfers", "show", "--config", &config, "no-such-transfer"]);
    assert_eq!(out.status.code(), Some(1));
    bed.stop().await;
}

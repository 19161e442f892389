//! Transfer listings as operators ask for them and take them away: the filter from its text
//! form (the query of the operator page's transfers view and its export, the options of
//! `siirto transfers list`), and a listed transfer as a CSV row or a JSON line. One store query
//! ([`crate::store::Store::transfers_query`]) serves them all.
//!
//! Must not: read the store or know HTTP; it turns text into a filter and rows into text.

use serde_json::{Value, json};

use crate::store::{ListedTransfer, TransferCursor, TransferFilter};
use siirto_core::clock::Timestamp;
use siirto_core::identity::Directory;
use siirto_core::transfer::{FailureReason, Status};

/// Transfers on one page when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 100;
/// The largest `limit` a page takes.
pub const MAX_LIMIT: u32 = 1000;

/// The keys [`parse_filter`] reads.
pub const FILTER_KEYS: [&str; 10] = [
    "id", "status", "src", "dst", "purpose", "reason", "since", "until", "cursor", "limit",
];

/// The filter that `pairs` (key, value) describe. Empty values are ignored (an empty form
/// field); `src` and `dst` must be participants of `directory`; `since` and `until` are RFC 3339
/// times, or dates (`2026-11-23`) meaning that day in Helsinki (`since` from its start, `until`
/// to its end). The error names the key that is wrong; a key not in [`FILTER_KEYS`] is one.
pub fn parse_filter(
    directory: &Directory,
    pairs: &[(String, String)],
) -> Result<TransferFilter, String> {
    let mut f = TransferFilter {
        limit: DEFAULT_LIMIT,
        ..TransferFilter::default()
    };
    for (key, value) in pairs {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        match key.as_str() {
            "status" => {
                f.status = Some(
                    Status::parse(value)
                        .ok_or_else(|| format!("status: `{value}` is not a transfer status"))?,
                );
            }
            "reason" => {
                f.reason = Some(
                    FailureReason::parse(value)
                        .ok_or_else(|| format!("reason: `{value}` is not a failure reason"))?,
                );
            }
            "src" | "dst" => {
                if directory.get(value).is_none() {
                    return Err(format!("{key}: `{value}` is not a participant"));
                }
                let slot = if key == "src" { &mut f.src } else { &mut f.dst };
                *slot = Some(value.to_owned());
            }
            "id" => f.id = Some(value.to_owned()),
            "purpose" => f.purpose = Some(value.to_owned()),
            "since" => f.since = Some(time(key, value, false)?),
            "until" => f.until = Some(time(key, value, true)?),
            "cursor" => {
                f.after =
                    Some(TransferCursor::parse(value).ok_or_else(|| {
                        format!("cursor: `{value}` is not a cursor of this list")
                    })?);
            }
            "limit" => {
                f.limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        format!("limit: `{value}` is not a number from 1 to {MAX_LIMIT}")
                    })?;
            }
            other => return Err(format!("unknown parameter `{other}`")),
        }
    }
    Ok(f)
}

/// An RFC 3339 time, or a date's start (or, with `end_of_day`, its end) in Helsinki.
fn time(key: &str, value: &str, end_of_day: bool) -> Result<Timestamp, String> {
    if let Some(t) = Timestamp::parse_rfc3339(value) {
        return Ok(t);
    }
    let day = Timestamp::helsinki_day_start(value).ok_or_else(|| {
        format!("{key}: `{value}` is neither a date (2026-11-23) nor an RFC 3339 time")
    })?;
    if end_of_day {
        // The next day's start: 23, 24 or 25 hours later (summer time changes at night).
        let next = day.saturating_add(std::time::Duration::from_secs(26 * 3600));
        let next_date: String = next.helsinki().chars().take(10).collect();
        Timestamp::helsinki_day_start(&next_date)
            .ok_or_else(|| format!("{key}: `{value}` is out of range"))
    } else {
        Ok(day)
    }
}

/// The filter back as (key, value) pairs, without the cursor and limit: for links to the same
/// listing (its next page, its export, its totals by status).
pub fn filter_pairs(f: &TransferFilter) -> Vec<(&'static str, String)> {
    let mut pairs = Vec::new();
    let mut push = |key: &'static str, value: Option<String>| {
        if let Some(v) = value {
            pairs.push((key, v));
        }
    };
    push("id", f.id.clone());
    push("status", f.status.map(|s| s.as_str().to_owned()));
    push("src", f.src.clone());
    push("dst", f.dst.clone());
    push("purpose", f.purpose.clone());
    push("reason", f.reason.map(|r| r.as_str().to_owned()));
    push("since", f.since.map(Timestamp::rfc3339));
    push("until", f.until.map(Timestamp::rfc3339));
    pairs
}

/// When a worker takes an unfinished transfer up next; `None` when it is finished or a worker
/// holds it now.
pub fn next_attempt(t: &ListedTransfer) -> Option<Timestamp> {
    let row = &t.row;
    (!row.status.is_terminal() && row.lease_owner.is_none())
        .then_some(row.due_at)
        .flatten()
}

/// The columns of [`csv_row`], in order.
pub const CSV_HEADER: &str = "id,status,reason,src,dst,purpose,scope,submitter,created_at,updated_at,attempts,next_attempt_at,last_error";

/// A listed transfer as one CSV line (RFC 4180: fields with a comma, quote or line break are
/// quoted; no line break at the end). Times are UTC. A field a spreadsheet would read as a
/// formula (`=`, `+`, `-`, `@` first) gets a leading `'`.
pub fn csv_row(t: &ListedTransfer) -> String {
    let row = &t.row;
    let fields = [
        row.id.clone(),
        row.status.as_str().to_owned(),
        row.reason
            .map(|r| r.as_str().to_owned())
            .unwrap_or_default(),
        row.src.clone(),
        row.dst.clone(),
        row.purpose.clone(),
        row.scope.clone(),
        row.submitter.clone(),
        row.created_at.rfc3339(),
        row.updated_at.rfc3339(),
        row.attempts.to_string(),
        next_attempt(t).map(Timestamp::rfc3339).unwrap_or_default(),
        t.last_error.clone().unwrap_or_default(),
    ];
    fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",")
}

fn csv_field(value: &str) -> String {
    let guarded = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

/// A listed transfer as one JSON object (a line of the JSON lines export, and of
/// `siirto transfers list --format jsonl`): the CSV's columns, absent ones left out.
pub fn json_row(t: &ListedTransfer) -> Value {
    let row = &t.row;
    let mut v = json!({
        "id": row.id,
        "status": row.status.as_str(),
        "src": row.src,
        "dst": row.dst,
        "purpose": row.purpose,
        "scope": row.scope,
        "submitter": row.submitter,
        "created_at": row.created_at.rfc3339(),
        "updated_at": row.updated_at.rfc3339(),
        "attempts": row.attempts,
    });
    if let Some(map) = v.as_object_mut() {
        if let Some(r) = row.reason {
            map.insert("reason".into(), json!(r.as_str()));
        }
        if let Some(at) = next_attempt(t) {
            map.insert("next_attempt_at".into(), json!(at.rfc3339()));
        }
        if let Some(e) = &t.last_error {
            map.insert("last_error".into(), json!(e));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TransferRow;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn directory() -> Directory {
        use siirto_core::identity::{IdentityRule, Participant, Role};
        let participant = |id: &str| Participant {
            id: id.into(),
            roles: vec![Role::Source, Role::Destination],
            identity: IdentityRule::SanDns(format!("{id}.example.fi")),
            endpoint: None,
            name: None,
            statutory: None,
            redirect_uris: Vec::new(),
        };
        Directory::from_participants(vec![participant("turku"), participant("espoo")])
    }

    #[test]
    fn filters_are_read_from_their_text_and_refused_by_name() {
        let dir = directory();
        let f = parse_filter(
            &dir,
            &pairs(&[
                ("status", "failed"),
                ("src", "turku"),
                ("dst", " espoo "),
                ("purpose", "school-change"),
                ("reason", "source_not_found"),
                ("since", "2026-07-01"),
                ("until", "2026-07-01"),
                ("limit", "5"),
                ("cursor", "1790000000000.abc"),
                ("subject", ""),
            ]),
        )
        .unwrap();
        assert_eq!(f.status, Some(Status::Failed));
        assert_eq!(f.reason, Some(FailureReason::SourceNotFound));
        assert_eq!(
            (f.src.as_deref(), f.dst.as_deref()),
            (Some("turku"), Some("espoo"))
        );
        // A summer day in Helsinki: 21:00 UTC the day before to 21:00 UTC that day.
        assert_eq!(f.since.unwrap().rfc3339(), "2026-06-30T21:00:00.000Z");
        assert_eq!(f.until.unwrap().rfc3339(), "2026-07-01T21:00:00.000Z");
        assert_eq!(f.limit, 5);
        assert_eq!(f.after.unwrap().id, "abc");
        // The day summer time ends is 25 hours long.
        let f = parse_filter(
            &dir,
            &pairs(&[("since", "2026-10-25"), ("until", "2026-10-25")]),
        )
        .unwrap();
        assert_eq!(f.since.unwrap().rfc3339(), "2026-10-24T21:00:00.000Z");
        assert_eq!(f.until.unwrap().rfc3339(), "2026-10-25T22:00:00.000Z");
        let f = parse_filter(&dir, &pairs(&[("since", "2026-11-23T10:00:00+02:00")])).unwrap();
        assert_eq!(f.since.unwrap().rfc3339(), "2026-11-23T08:00:00.000Z");
        for (key, value, message) in [
            ("status", "lost", "status: `lost` is not a transfer status"),
            (
                "reason",
                "bad_luck",
                "reason: `bad_luck` is not a failure reason",
            ),
            ("src", "nowhere", "src: `nowhere` is not a participant"),
            ("since", "yesterday", "since: `yesterday` is neither a date"),
            ("limit", "0", "limit: `0` is not a number from 1 to 1000"),
            ("cursor", "x", "cursor: `x` is not a cursor"),
            ("subject", "x", "unknown parameter `subject`"),
        ] {
            let e = parse_filter(&dir, &pairs(&[(key, value)])).unwrap_err();
            assert!(e.starts_with(message), "{key}: {e}");
        }
        // Back to pairs: what a link to the same listing carries.
        let f = parse_filter(
            &dir,
            &pairs(&[("status", "failed"), ("src", "turku"), ("limit", "5")]),
        )
        .unwrap();
        assert_eq!(
            filter_pairs(&f),
            vec![("status", "failed".to_owned()), ("src", "turku".to_owned())]
        );
    }

    fn listed(last_error: Option<&str>) -> ListedTransfer {
        ListedTransfer {
            row: TransferRow {
                id: "t1".into(),
                status: Status::Delivering,
                reason: None,
                submitter: "eservice".into(),
                issuer: "iss".into(),
                jti: "j".into(),
                src: "turku".into(),
                dst: "espoo".into(),
                purpose: "school-change".into(),
                scope: "identity achievements".into(),
                subject_pseudonym: "p".into(),
                subject_sealed: None,
                attempts: 11,
                due_at: Some(Timestamp::from_secs(1_800_000_600)),
                lease_owner: None,
                created_at: Timestamp::from_secs(1_800_000_000),
                updated_at: Timestamp::from_secs(1_800_000_300),
                retry_from: Timestamp::from_secs(1_800_000_000),
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
            last_error: last_error.map(str::to_owned),
        }
    }

    #[test]
    fn csv_and_json_rows_carry_the_same_columns() {
        let t = listed(Some("connect_failed: attempt 11, \"refused\""));
        let row = csv_row(&t);
        assert_eq!(
            row,
            "t1,delivering,,turku,espoo,school-change,identity achievements,eservice,\
             2027-01-15T08:00:00.000Z,2027-01-15T08:05:00.000Z,11,2027-01-15T08:10:00.000Z,\
             \"connect_failed: attempt 11, \"\"refused\"\"\""
        );
        assert_eq!(CSV_HEADER.split(',').count(), 13);
        let v = json_row(&t);
        assert_eq!(v["next_attempt_at"], "2027-01-15T08:10:00.000Z");
        assert_eq!(v["last_error"], "connect_failed: attempt 11, \"refused\"");
        assert!(v.get("reason").is_none());
        // A worker holds it: no next attempt is promised.
        let mut held = listed(None);
        held.row.lease_owner = Some("gw-1".into());
        assert_eq!(next_attempt(&held), None);
        assert!(json_row(&held).get("next_attempt_at").is_none());
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("-1"), "'-1");
        assert_eq!(csv_field("a\nb"), "\"a\nb\"");
    }
}

//! Row shapes read from the store and their decoding, shared by both backends.

use std::collections::BTreeMap;

use sqlx::Row;

use super::StoreError;
use siirto_core::audit::{AuditEntry, AuditEvent, Pseudonym};
use siirto_core::clock::{Timestamp, hex, unhex};
use siirto_core::consent::Basis;
use siirto_core::lang::Lang;
use siirto_core::transfer::{FailureReason, Status};

/// The columns [`transfer_from_row`] decodes, in its order (a literal, for `concat!`).
macro_rules! transfer_columns {
    () => {
        "id, status, reason, submitter, issuer, jti, src, dst, purpose, scope, \
         subject_pseudonym, subject_sealed, attempts, due_at, lease_owner, created_at, updated_at, retry_from, \
         source_sha256, document_sha256, report, receipt_sealed, receipt_leaf, interrupted, \
         basis, guardian_pseudonym, consent_sha256, consent_version, consent_lang, consented_at"
    };
}

/// The columns [`audit_from_row`] decodes, in its order.
macro_rules! audit_columns {
    () => {
        "seq, at, actor, action, outcome, transfer_id, subject, document_sha256, detail, prev_hash, hash"
    };
}

pub(super) use {audit_columns, transfer_columns};

/// How many columns [`transfer_columns!`] names (a listing's own columns follow them).
pub(super) const TRANSFER_COLUMN_COUNT: usize = 30;

#[cfg(test)]
#[test]
fn the_transfer_column_count_is_that_of_the_list() {
    assert_eq!(
        transfer_columns!().split(',').count(),
        TRANSFER_COLUMN_COUNT
    );
}

/// A stored transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRow {
    pub id: String,
    pub status: Status,
    pub reason: Option<FailureReason>,
    pub submitter: String,
    pub issuer: String,
    pub jti: String,
    pub src: String,
    pub dst: String,
    pub purpose: String,
    pub scope: String,
    pub subject_pseudonym: String,
    /// The encrypted student id; `None` once the transfer no longer needs it.
    pub subject_sealed: Option<Vec<u8>>,
    pub attempts: u32,
    pub due_at: Option<Timestamp>,
    /// The lease token of the claim working on the transfer (unique per claim); `None` when no
    /// worker holds it.
    pub lease_owner: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Where the retry age counts from (creation, or the last operator retry).
    pub retry_from: Timestamp,
    pub source_sha256: Option<String>,
    pub document_sha256: Option<String>,
    pub report: Option<String>,
    /// The signed receipt (a JWS naming the student), sealed for `receipt:<id>`
    /// ([`siirto_core::receipt::open_receipt`]); `None` until the transfer is delivered.
    pub receipt_sealed: Option<Vec<u8>>,
    pub receipt_leaf: Option<u64>,
    /// Attempts interrupted since a worker last wrote: claims that found an earlier claim's
    /// lease never released (its worker stopped, or outlasted the lease), so that attempt
    /// recorded no outcome. The next worker's write audits them and resets the count.
    pub interrupted: u32,
    /// On what basis the data moves.
    pub basis: Basis,
    /// The keyed pseudonym of the guardian who consented for the student
    /// ([`siirto_core::audit::Pseudonymizer::guardian_pseudonym`]), if one did.
    pub guardian_pseudonym: Option<String>,
    /// The consent text the authorization proved was shown: its SHA-256 (hex), version and
    /// language; `None` when it named none.
    pub consent: Option<StoredConsent>,
    /// The authorization's `iat`; `None` for a transfer accepted before it was kept.
    pub consented_at: Option<Timestamp>,
}

/// The consent text of a stored transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredConsent {
    pub sha256: String,
    pub version: String,
    pub lang: Lang,
}

impl TransferRow {
    /// What the state machine needs of this transfer.
    pub fn state(&self) -> siirto_core::transfer::TransferState {
        siirto_core::transfer::TransferState {
            status: self.status,
            reason: self.reason,
            attempts: self.attempts,
            next_attempt_at: None,
            created_at: self.retry_from,
        }
    }
}

/// One step on a transfer's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRow {
    pub seq: u32,
    pub at: Timestamp,
    pub step: String,
    pub outcome: String,
    pub detail: Option<String>,
}

/// An encrypted payload as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedBlob {
    pub key_id: String,
    pub sealed: Vec<u8>,
    /// SHA-256 (hex) of the plaintext.
    pub sha256: String,
}

/// A stored signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRow {
    pub tree_size: u64,
    pub root_hash: [u8; 32],
    pub issued_at: Timestamp,
    pub note: String,
}

/// Which transfers a listing takes, newest first: the operator page's transfers view and its
/// export, the subject lookup, `siirto transfers list`, and the student's history. Each field
/// given narrows the list; `limit` is the page size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransferFilter {
    /// One transfer by its id.
    pub id: Option<String>,
    /// The student's keyed pseudonym (never the identifier itself).
    pub subject: Option<String>,
    pub status: Option<Status>,
    pub src: Option<String>,
    pub dst: Option<String>,
    pub purpose: Option<String>,
    pub reason: Option<FailureReason>,
    /// Accepted at or after this time.
    pub since: Option<Timestamp>,
    /// Accepted before this time.
    pub until: Option<Timestamp>,
    /// Transfers after this one in the listing's order (the cursor of the page before).
    pub after: Option<TransferCursor>,
    pub limit: u32,
}

/// Where a page of transfers ended: the last transfer's acceptance time and id (the listing is
/// ordered by both, newest first, so a cursor stays right while new transfers arrive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferCursor {
    pub created_at: Timestamp,
    pub id: String,
}

impl TransferCursor {
    /// The cursor as text: `<milliseconds>.<id>`.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.created_at.millis(), self.id)
    }

    /// Reads [`TransferCursor::encode`]'s form; `None` when it is not that.
    pub fn parse(text: &str) -> Option<TransferCursor> {
        let (millis, id) = text.split_once('.')?;
        if id.is_empty() {
            return None;
        }
        Some(TransferCursor {
            created_at: Timestamp::from_millis(millis.parse().ok()?),
            id: id.to_owned(),
        })
    }
}

/// A transfer as a listing shows it: the row, and for an unfinished transfer the last step
/// that did not succeed (`outcome: detail`), e.g. the delivery attempts that keep failing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedTransfer {
    pub row: TransferRow,
    pub last_error: Option<String>,
}

/// One page of a transfer listing and the cursor of the next, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferPage {
    pub transfers: Vec<ListedTransfer>,
    pub next_cursor: Option<TransferCursor>,
}

/// Filters of `GET /v1/audit`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub transfer: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Entries about this student (keyed pseudonym): naming it, or of a transfer about it.
    pub subject: Option<String>,
    /// Entries after this seq (the cursor).
    pub after: Option<u64>,
    pub limit: u32,
}

/// One page of audit entries and the cursor for the next, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub next_cursor: Option<u64>,
}

pub(super) fn page(mut entries: Vec<AuditEntry>, limit: u32) -> AuditPage {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = entries.len() > limit;
    entries.truncate(limit);
    let next_cursor = if more {
        entries.last().map(|e| e.seq)
    } else {
        None
    };
    AuditPage {
        entries,
        next_cursor,
    }
}

/// Typed column access common to SQLite and PostgreSQL rows.
pub(super) trait Columns {
    fn int(&self, i: usize) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>, sqlx::Error>;
    fn text(&self, i: usize) -> Result<String, sqlx::Error>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, sqlx::Error>;
    fn bytes(&self, i: usize) -> Result<Vec<u8>, sqlx::Error>;
    fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>, sqlx::Error>;
}

macro_rules! columns {
    ($row:ty) => {
        impl Columns for $row {
            fn int(&self, i: usize) -> Result<i64, sqlx::Error> {
                self.try_get(i)
            }
            fn opt_int(&self, i: usize) -> Result<Option<i64>, sqlx::Error> {
                self.try_get(i)
            }
            fn text(&self, i: usize) -> Result<String, sqlx::Error> {
                self.try_get(i)
            }
            fn opt_text(&self, i: usize) -> Result<Option<String>, sqlx::Error> {
                self.try_get(i)
            }
            fn bytes(&self, i: usize) -> Result<Vec<u8>, sqlx::Error> {
                self.try_get(i)
            }
            fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>, sqlx::Error> {
                self.try_get(i)
            }
        }
    };
}

columns!(sqlx::sqlite::SqliteRow);
columns!(sqlx::postgres::PgRow);

fn corrupt(what: &'static str, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: detail.into(),
    }
}

fn unsigned(what: &'static str, v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| corrupt(what, format!("negative value {v}")))
}

pub(super) fn check_from_row(r: &impl Columns) -> Result<super::CheckRow, StoreError> {
    let basis = r.text(7)?;
    let basis =
        siirto_core::consent::Basis::parse(&basis).ok_or_else(|| corrupt("check basis", basis))?;
    let consent = match (r.opt_text(9)?, r.opt_text(10)?, r.opt_text(11)?) {
        (Some(sha256), Some(version), Some(lang)) => Some(StoredConsent {
            sha256,
            version,
            lang: Lang::parse(&lang).ok_or_else(|| corrupt("check consent_lang", lang))?,
        }),
        _ => None,
    };
    Ok(super::CheckRow {
        id: r.text(0)?,
        submitter: r.text(1)?,
        src: r.text(2)?,
        dst: r.text(3)?,
        question: r.text(4)?,
        purpose: r.text(5)?,
        subject_pseudonym: r.text(6)?,
        basis,
        guardian_pseudonym: r.opt_text(8)?,
        consent,
        created_at: Timestamp::from_millis(r.int(12)?),
        finished_at: Timestamp::from_millis(r.int(13)?),
        outcome: r.text(14)?,
        answer: r.opt_int(15)?.map(|a| a != 0),
        document_sha256: r.opt_text(16)?,
        audit_leaf_index: r.opt_int(17)?.and_then(|l| u64::try_from(l).ok()),
        attestation_sealed: r.opt_bytes(18)?,
    })
}

pub(super) fn transfer_from_row(r: &impl Columns) -> Result<TransferRow, StoreError> {
    let status = r.text(1)?;
    let status = Status::parse(&status).ok_or_else(|| corrupt("transfer status", status))?;
    let reason = match r.opt_text(2)? {
        None => None,
        Some(s) => Some(FailureReason::parse(&s).ok_or_else(|| corrupt("failure reason", s))?),
    };
    Ok(TransferRow {
        id: r.text(0)?,
        status,
        reason,
        submitter: r.text(3)?,
        issuer: r.text(4)?,
        jti: r.text(5)?,
        src: r.text(6)?,
        dst: r.text(7)?,
        purpose: r.text(8)?,
        scope: r.text(9)?,
        subject_pseudonym: r.text(10)?,
        subject_sealed: r.opt_bytes(11)?,
        attempts: u32::try_from(r.int(12)?).map_err(|_| corrupt("attempts", "out of range"))?,
        due_at: r.opt_int(13)?.map(Timestamp::from_millis),
        lease_owner: r.opt_text(14)?,
        created_at: Timestamp::from_millis(r.int(15)?),
        updated_at: Timestamp::from_millis(r.int(16)?),
        retry_from: Timestamp::from_millis(r.int(17)?),
        source_sha256: r.opt_text(18)?,
        document_sha256: r.opt_text(19)?,
        report: r.opt_text(20)?,
        receipt_sealed: r.opt_bytes(21)?,
        receipt_leaf: r
            .opt_int(22)?
            .map(|v| unsigned("receipt leaf", v))
            .transpose()?,
        interrupted: u32::try_from(r.int(23)?)
            .map_err(|_| corrupt("interrupted attempts", "out of range"))?,
        basis: {
            let b = r.text(24)?;
            Basis::parse(&b).ok_or_else(|| corrupt("transfer basis", b))?
        },
        guardian_pseudonym: r.opt_text(25)?,
        consent: match (r.opt_text(26)?, r.opt_text(27)?, r.opt_text(28)?) {
            (Some(sha256), Some(version), Some(lang)) => Some(StoredConsent {
                sha256,
                version,
                lang: Lang::parse(&lang).ok_or_else(|| corrupt("consent language", lang))?,
            }),
            (None, None, None) => None,
            _ => {
                return Err(corrupt(
                    "consent text",
                    "hash, version and language go together",
                ));
            }
        },
        consented_at: r.opt_int(29)?.map(Timestamp::from_millis),
    })
}

pub(super) fn step_from_row(r: &impl Columns) -> Result<StepRow, StoreError> {
    Ok(StepRow {
        seq: u32::try_from(r.int(0)?).map_err(|_| corrupt("step seq", "out of range"))?,
        at: Timestamp::from_millis(r.int(1)?),
        step: r.text(2)?,
        outcome: r.text(3)?,
        detail: r.opt_text(4)?,
    })
}

pub(super) fn consent_request_from_row(
    r: &impl Columns,
) -> Result<super::ConsentRequestRow, StoreError> {
    Ok(super::ConsentRequestRow {
        id: r.text(0)?,
        eservice: r.text(1)?,
        src: r.text(2)?,
        redirect_uri: r.text(3)?,
        state_sha256: r.text(4)?,
        verifier_sealed: r.opt_bytes(5)?,
        pending_sealed: r.opt_bytes(6)?,
        status: r.text(7)?,
        transfer_id: r.opt_text(8)?,
        code_sealed: r.opt_bytes(9)?,
        token_sealed: r.opt_bytes(10)?,
        exchanged_at: r.opt_int(11)?.map(Timestamp::from_millis),
        created_at: Timestamp::from_millis(r.int(12)?),
        expires_at: Timestamp::from_millis(r.int(13)?),
    })
}

pub(super) fn payload_from_row(r: &impl Columns) -> Result<SealedBlob, StoreError> {
    Ok(SealedBlob {
        key_id: r.text(0)?,
        sealed: r.bytes(1)?,
        sha256: r.text(2)?,
    })
}

pub(super) fn checkpoint_from_row(r: &impl Columns) -> Result<CheckpointRow, StoreError> {
    let root = r.bytes(1)?;
    Ok(CheckpointRow {
        tree_size: unsigned("checkpoint size", r.int(0)?)?,
        root_hash: <[u8; 32]>::try_from(root.as_slice())
            .map_err(|_| corrupt("checkpoint root", format!("{} bytes", root.len())))?,
        issued_at: Timestamp::from_millis(r.int(2)?),
        note: r.text(3)?,
    })
}

pub(super) fn audit_from_row(r: &impl Columns) -> Result<AuditEntry, StoreError> {
    let seq = unsigned("audit seq", r.int(0)?)?;
    let detail_json = r.text(8)?;
    let detail: BTreeMap<String, String> = serde_json::from_str(&detail_json)
        .map_err(|e| corrupt("audit detail", format!("entry {seq}: {e}")))?;
    let hash32 = |v: Vec<u8>, what: &'static str| {
        <[u8; 32]>::try_from(v.as_slice())
            .map_err(|_| corrupt(what, format!("entry {seq}: {} bytes", v.len())))
    };
    Ok(AuditEntry {
        seq,
        event: AuditEvent {
            at: Timestamp::from_millis(r.int(1)?),
            actor: r.text(2)?,
            action: r.text(3)?,
            outcome: r.text(4)?,
            transfer_id: r.opt_text(5)?,
            subject: r
                .opt_text(6)?
                .map(|s| {
                    Pseudonym::parse(&s)
                        .map_err(|e| corrupt("audit subject", format!("entry {seq}: {e}")))
                })
                .transpose()?,
            document_sha256: r
                .opt_text(7)?
                .map(|s| {
                    unhex(&s)
                        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
                        .ok_or_else(|| corrupt("audit document hash", format!("entry {seq}")))
                })
                .transpose()?,
            detail,
        },
        prev_hash: hash32(r.bytes(9)?, "audit prev_hash")?,
        hash: hash32(r.bytes(10)?, "audit hash")?,
    })
}

/// An audit entry as bound into an INSERT.
pub(super) struct AuditColumns {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub outcome: String,
    pub transfer_id: Option<String>,
    pub subject: Option<String>,
    pub document_sha256: Option<String>,
    pub detail: String,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

impl AuditColumns {
    pub fn of(entry: &AuditEntry) -> Result<AuditColumns, StoreError> {
        let e = &entry.event;
        Ok(AuditColumns {
            seq: i64::try_from(entry.seq).map_err(|_| corrupt("audit seq", "too large"))?,
            at: e.at.millis(),
            actor: e.actor.clone(),
            action: e.action.clone(),
            outcome: e.outcome.clone(),
            transfer_id: e.transfer_id.clone(),
            subject: e.subject.as_ref().map(|p| p.as_str().to_owned()),
            document_sha256: e.document_sha256.as_ref().map(|h| hex(h)),
            detail: serde_json::to_string(&e.detail)
                .map_err(|err| corrupt("audit detail", err.to_string()))?,
            prev_hash: entry.prev_hash.to_vec(),
            hash: entry.hash.to_vec(),
        })
    }
}

/// Decodes `participant, down_since, failures, probes, next_probe_at` (the first five columns).
pub(super) fn peer_from_row(r: &impl Columns) -> Result<super::PeerRow, StoreError> {
    let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
    Ok(super::PeerRow {
        participant: r.text(0)?,
        health: siirto_core::peer_health::PeerHealth {
            down_since: r.opt_int(1)?.map(Timestamp::from_millis),
            failures: count(r.int(2)?),
            probes: count(r.int(3)?),
            next_probe_at: r.opt_int(4)?.map(Timestamp::from_millis),
        },
    })
}

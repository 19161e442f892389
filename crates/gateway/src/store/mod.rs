//! Persistence: transfers, their steps, replay ids, encrypted payloads, the audit trail and its
//! checkpoints, in SQLite (default) or PostgreSQL (several gateway instances sharing one
//! database).
//!
//! Owns: the only use of sqlx in the crate, the migrations (`migrations/sqlite`,
//! `migrations/postgres`), and the *writer*: every write goes through one task per gateway
//! instance that commits whatever has queued up in a single transaction (group commit). Each
//! operation decides whether it is refused (a replayed `jti`, a lost lease) before it writes,
//! so a refusal undoes nothing and needs no savepoint; a database error rolls the whole batch
//! back and every operation in it is answered with the error (nothing half-written is kept).
//! Rows go in as multi-row inserts: an operation costs a handful of statements. The writer also
//! extends the audit hash chain: a batch's operations queue their entries, and at the end of the
//! batch the entries are numbered, chained onto the log's end and inserted together, receipts and
//! attestations are signed for their leaves, and the transaction commits. On PostgreSQL that end
//! of the batch runs under a transaction-scoped advisory lock, so instances sharing a database
//! extend one chain while the rest of their batches (state changes, steps, payloads, claims)
//! run side by side; a batch that appends nothing takes no lock. A caller's write is
//! acknowledged only after its commit.
//!
//! It does not decide anything: transitions come from `siirto_core::transfer`, hashes from `siirto_core::audit`.

mod rows;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::{mpsc, oneshot};

use siirto_core::audit::{AuditEntry, AuditEvent, PrunedBase};
use siirto_core::clock::Timestamp;
use siirto_core::peer_health::{self, CallOutcome, Change, HealthPolicy, PeerHealth};
use siirto_core::transfer::{FailureReason, Status};
use siirto_core::vault::Sealed;

#[doc(hidden)]
pub mod testdb;

use siirto_core::consent::Basis;

pub use rows::{
    AuditFilter, AuditPage, CheckpointRow, ListedTransfer, SealedBlob, StepRow, StoredConsent,
    TransferCursor, TransferFilter, TransferPage, TransferRow,
};

/// Most transfers one page of [`Store::transfers_query`] takes.
pub const MAX_TRANSFER_PAGE: u32 = 10_000;

/// The conditions of a [`TransferFilter`] without its cursor, in SQL: `$1` subject, `$2` status,
/// `$3` src, `$4` dst, `$5` purpose, `$6` reason (each `''` for any), `$7`..`$8` the range of
/// acceptance times, `$9` the id (see `bind_transfer_filter!`).
const TRANSFER_WHERE: &str = "($1 = '' OR subject_pseudonym = $1) AND ($2 = '' OR status = $2) \
     AND ($3 = '' OR src = $3) AND ($4 = '' OR dst = $4) AND ($5 = '' OR purpose = $5) \
     AND ($6 = '' OR reason = $6) AND created_at >= $7 AND created_at < $8 AND ($9 = '' OR id = $9)";

/// The last step of an unfinished transfer that did not succeed, as `outcome: detail`.
const LAST_ERROR: &str = "CASE WHEN due_at IS NULL THEN NULL ELSE (SELECT s.outcome || COALESCE(': ' || s.detail, '') \
     FROM steps s WHERE s.transfer_id = transfers.id AND s.outcome NOT IN ('ok', 'delivered', 'already_delivered') \
     ORDER BY s.seq DESC LIMIT 1) END";

/// Binds [`TRANSFER_WHERE`]'s parameters of the filter `$f` to the query `$q`, with `$status`
/// as the status (a macro: the query types differ by backend).
macro_rules! bind_transfer_filter {
    ($q:expr, $f:expr, $status:expr) => {{
        let f: &TransferFilter = $f;
        let status: Option<Status> = $status;
        $q.bind(f.subject.as_deref().unwrap_or(""))
            .bind(status.map_or("", Status::as_str))
            .bind(f.src.as_deref().unwrap_or(""))
            .bind(f.dst.as_deref().unwrap_or(""))
            .bind(f.purpose.as_deref().unwrap_or(""))
            .bind(f.reason.map_or("", FailureReason::as_str))
            .bind(f.since.map_or(i64::MIN, Timestamp::millis))
            .bind(f.until.map_or(i64::MAX, Timestamp::millis))
            .bind(f.id.as_deref().unwrap_or(""))
    }};
}

/// Transfers waiting for each peer (see [`Store::backlogs`]).
const BACKLOG_SQL: &str = "SELECT peer, COUNT(*) FROM (\
     SELECT dst AS peer FROM transfers WHERE status = 'delivering' \
     UNION ALL SELECT src AS peer FROM transfers WHERE status IN ('accepted', 'fetching')\
     ) AS waiting GROUP BY peer ORDER BY peer";

/// What waits for one peer, in SQL with the peer as parameter `$p` (written in by the caller).
const WAITING_FOR: &str =
    "((status = 'delivering' AND dst = $p) OR (status IN ('accepted', 'fetching') AND src = $p))";

/// What a claim took.
#[derive(Debug, Default)]
pub struct Claimed {
    pub transfers: Vec<TransferRow>,
    /// Peers that are down at the time of the claim.
    pub down: Vec<String>,
}

/// How long an expired consent request is kept (a late answer is told `expired`, not 404).
const CONSENT_REQUEST_KEPT_MS: i64 = 24 * 3600 * 1000;

/// Most operations committed in one transaction.
const MAX_BATCH: usize = 256;
/// Advisory lock id under which PostgreSQL writers extend the audit chain ("siirto" in ASCII).
const AUDIT_LOCK_ID: i64 = 0x7369_6972_746f;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database url `{0}` is neither sqlite: nor postgres:")]
    UnsupportedUrl(String),
    /// The first connection to PostgreSQL failed: where to, and why (the refusal, the
    /// server's own message, or the wait that ran out).
    #[error("cannot connect to PostgreSQL at {host}:{port}: {reason}")]
    Connect {
        host: String,
        port: u16,
        reason: String,
    },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored {what} is corrupt: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("the store's writer has stopped")]
    WriterStopped,
    #[error("the transaction was rolled back: {0}")]
    RolledBack(String),
}

/// A check without transfer as it ended (answered, or not), written with its audit entries.
/// It holds no part of the record: the question, the answer and the document's SHA-256.
#[derive(Debug, Clone)]
pub struct NewCheck {
    pub id: String,
    pub submitter: String,
    pub issuer: String,
    pub jti: String,
    pub src: String,
    pub dst: String,
    pub question: String,
    pub purpose: String,
    pub subject_pseudonym: String,
    pub basis: Basis,
    pub guardian_pseudonym: Option<String>,
    pub consent: Option<StoredConsent>,
    pub consented_at: Timestamp,
    pub created_at: Timestamp,
    pub finished_at: Timestamp,
    /// `answered`, or the code the check ended with.
    pub outcome: String,
    pub answer: Option<bool>,
    pub document_sha256: Option<String>,
}

/// A stored check ([`Store::checks_of`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRow {
    pub id: String,
    pub submitter: String,
    pub src: String,
    pub dst: String,
    pub question: String,
    pub purpose: String,
    pub subject_pseudonym: String,
    pub basis: Basis,
    pub guardian_pseudonym: Option<String>,
    pub consent: Option<StoredConsent>,
    pub created_at: Timestamp,
    pub finished_at: Timestamp,
    pub outcome: String,
    pub answer: Option<bool>,
    pub document_sha256: Option<String>,
    pub audit_leaf_index: Option<u64>,
    /// The signed attestation, sealed for `attestation:<id>`.
    pub attestation_sealed: Option<Vec<u8>>,
}

/// A transfer as accepted by the API, written together with its replay id and audit entries.
#[derive(Debug, Clone)]
pub struct NewTransfer {
    pub id: String,
    pub submitter: String,
    pub issuer: String,
    pub jti: String,
    pub src: String,
    pub dst: String,
    pub purpose: String,
    pub scope: String,
    pub subject_pseudonym: String,
    /// The student id, encrypted (it is needed to fetch the record).
    pub subject_sealed: Vec<u8>,
    pub basis: siirto_core::consent::Basis,
    /// The keyed pseudonym of the guardian who consented, if one did.
    pub guardian_pseudonym: Option<String>,
    pub consent: Option<StoredConsent>,
    /// The authorization's `iat`.
    pub consented_at: Timestamp,
    pub created_at: Timestamp,
    /// Keep the `jti` until then: the authorization cannot be valid afterwards.
    pub replay_until: Timestamp,
}

/// A consent request at KOSKI OmaData (`POST /v1/consent-requests`), written together with its
/// authorization's replay id and its audit entry. Every secret in it is sealed.
#[derive(Debug, Clone)]
pub struct NewConsentRequest {
    pub id: String,
    pub eservice: String,
    pub src: String,
    pub redirect_uri: String,
    /// SHA-256 (hex) of the `state` sent to KOSKI.
    pub state_sha256: String,
    pub verifier_sealed: Vec<u8>,
    /// What the transfer is made of once the person consents.
    pub pending_sealed: Vec<u8>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// The authorization's issuer and `jti`, remembered (replay) until `replay_until`.
    pub issuer: String,
    pub jti: String,
    pub replay_until: Timestamp,
}

/// A stored consent request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRequestRow {
    pub id: String,
    pub eservice: String,
    pub src: String,
    pub redirect_uri: String,
    pub state_sha256: String,
    pub verifier_sealed: Option<Vec<u8>>,
    pub pending_sealed: Option<Vec<u8>>,
    pub status: String,
    pub transfer_id: Option<String>,
    pub code_sealed: Option<Vec<u8>>,
    pub token_sealed: Option<Vec<u8>>,
    pub exchanged_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// The person's answer to a consent request, as the e-service handed it on.
#[derive(Debug, Clone)]
pub enum ConsentAnswer {
    /// A code: the transfer is made now, the code kept sealed until its exchange.
    Granted {
        transfer: Box<NewTransfer>,
        code_sealed: Vec<u8>,
    },
    Declined,
}

/// One write of the OmaData flow.
enum ConsentOp {
    Insert(NewConsentRequest),
    /// Answers a pending request (refused when it is no longer pending).
    Answer {
        id: String,
        answer: Box<ConsentAnswer>,
        now: Timestamp,
    },
    /// Takes the sealed code out of the transfer's request (so it is exchanged at most once).
    TakeCode {
        transfer_id: String,
    },
    /// Keeps the access token (sealed) until the fetch; forgets the verifier.
    PutToken {
        transfer_id: String,
        token_sealed: Vec<u8>,
        now: Timestamp,
    },
}

/// What a [`ConsentOp`] did.
#[derive(Debug)]
enum ConsentDone {
    Written,
    /// Refused, nothing written: a replayed `jti`, or a request already answered.
    Refused,
    Code(Option<Vec<u8>>),
}

/// Whether a new transfer was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    Accepted,
    /// The issuer's `jti` was seen before.
    Replay,
}

/// A step to record on a transfer's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewStep {
    pub at: Timestamp,
    pub step: String,
    pub outcome: String,
    pub detail: Option<String>,
}

/// What to do with the stored payload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PayloadChange {
    #[default]
    Keep,
    Put(SealedBlob),
    Delete,
}

/// Who may apply a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// Only the claim holding the lease, named by its lease token (fencing: a worker whose lease
    /// was taken over — by another instance or by a later claim of its own — writes nothing).
    Lease(String),
    /// Anyone (API actions read-modify-write inside the writer).
    Any,
}

/// Signs a receipt once the audit leaf index of the change's last audit entry is known, and
/// seals it (it names the student): the store keeps only the sealed form.
pub type ReceiptSigner = Box<dyn FnOnce(u64) -> Sealed + Send>;

/// A state change of one transfer, written atomically with its steps, audit entries and payload.
pub struct TransferChange {
    pub id: String,
    pub guard: Guard,
    pub now: Timestamp,
    pub status: Status,
    pub reason: Option<FailureReason>,
    pub attempts: u32,
    /// When a worker should look at the transfer next; `None` for an end state.
    pub due_at: Option<Timestamp>,
    /// Keep holding the lease (the worker goes on with the next step at once).
    pub keep_lease: bool,
    /// Start the retry-age clock anew (operator retry).
    pub retry_from: Option<Timestamp>,
    pub steps: Vec<NewStep>,
    pub audit: Vec<AuditEvent>,
    pub payload: PayloadChange,
    pub source_sha256: Option<String>,
    pub document_sha256: Option<String>,
    pub report: Option<String>,
    /// Forget the sealed student id (the transfer can no longer need it).
    pub forget_subject: bool,
    /// The change carries the audit entries of the interrupted attempts its claim reported
    /// ([`TransferRow::interrupted`]): the count starts again from zero.
    pub interrupted_audited: bool,
    pub receipt: Option<ReceiptSigner>,
    /// What the change's call told about its peer: applied to the peer's stored health in the
    /// same transaction ([`siirto_core::peer_health::after_call`]).
    pub peer: Option<PeerCall>,
}

/// A call's outcome for its peer's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCall {
    pub participant: String,
    pub outcome: CallOutcome,
    pub policy: HealthPolicy,
    /// Where, in `0..1_000_000`, the next probe falls within its interval (drawn by the caller:
    /// the store takes no randomness of its own).
    pub jitter_millionths: u64,
}

/// A peer whose health changed with a change: to log, with its waiting transfers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerNews {
    pub participant: String,
    pub change: Change,
    /// Transfers waiting for the peer (to be fetched from it, or delivered to it).
    pub backlog: u64,
}

/// A peer's stored health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRow {
    pub participant: String,
    pub health: PeerHealth,
}

impl TransferChange {
    /// A change that moves `id` to `status` and otherwise keeps everything.
    pub fn new(id: &str, guard: Guard, now: Timestamp, status: Status) -> Self {
        TransferChange {
            id: id.to_owned(),
            guard,
            now,
            status,
            reason: None,
            attempts: 0,
            due_at: None,
            keep_lease: false,
            retry_from: None,
            steps: Vec::new(),
            audit: Vec::new(),
            payload: PayloadChange::Keep,
            source_sha256: None,
            document_sha256: None,
            report: None,
            forget_subject: false,
            interrupted_audited: false,
            receipt: None,
            peer: None,
        }
    }
}

impl std::fmt::Debug for TransferChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransferChange")
            .field("id", &self.id)
            .field("status", &self.status)
            .field("reason", &self.reason)
            .field("attempts", &self.attempts)
            .field("due_at", &self.due_at)
            .finish_non_exhaustive()
    }
}

/// The outcome of applying a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Done {
        /// Leaf indexes of the audit entries written.
        audit_seqs: Vec<u64>,
        /// The sealed receipt stored with the change.
        receipt: Option<Sealed>,
        /// The peer of the change's call went down or came back.
        peer: Option<PeerNews>,
    },
    /// The guard did not hold: another worker has the transfer, or it is gone.
    LeaseLost,
}

/// An applied change before its batch is sequenced: leaf indexes relative to the batch, the
/// receipt as a ticket into [`Sequenced::signed`].
enum Applying {
    Done {
        audit_seqs: Vec<u64>,
        receipt: Option<usize>,
        peer: Option<PeerNews>,
    },
    LeaseLost,
}

impl Applying {
    fn sequenced(self, q: &Sequenced) -> Applied {
        match self {
            Applying::Done {
                audit_seqs,
                receipt,
                peer,
            } => Applied::Done {
                audit_seqs: q.leaves(audit_seqs),
                receipt: receipt.and_then(|i| q.signed.get(i).cloned()),
                peer,
            },
            Applying::LeaseLost => Applied::LeaseLost,
        }
    }
}

/// A read-modify-write decision made inside the writer (cancel, operator retry).
pub type Decide<E> = Box<dyn FnOnce(&TransferRow) -> Result<TransferChange, E> + Send>;

/// The outcome of [`Store::modify`].
#[derive(Debug, PartialEq, Eq)]
pub enum Modified<E> {
    Done(Applied),
    Refused(E),
    NotFound,
}

/// Answers one operation once its batch has committed (or failed), with what the end of the
/// batch decided: where its audit entries start and what was signed for them.
type Finish = Box<dyn FnOnce(Result<&Sequenced, Arc<StoreError>>) + Send>;

enum Op {
    Insert(
        NewTransfer,
        Vec<AuditEvent>,
        oneshot::Sender<Result<Inserted, StoreError>>,
    ),
    Audit(
        Vec<AuditEvent>,
        oneshot::Sender<Result<Vec<u64>, StoreError>>,
    ),
    Claim {
        owner: String,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
        skip: Vec<String>,
        expired_before: Timestamp,
        reply: oneshot::Sender<Result<Claimed, StoreError>>,
    },
    Apply(TransferChange, oneshot::Sender<Result<Applied, StoreError>>),
    Modify(String, Box<dyn ModifyJob>),
    Checkpoint(
        rows::CheckpointRow,
        oneshot::Sender<Result<bool, StoreError>>,
    ),
    Remember {
        issuer: String,
        jti: String,
        until: Timestamp,
        audit: Vec<AuditEvent>,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    PurgeReplay(Timestamp, oneshot::Sender<Result<u64, StoreError>>),
    PruneAudit {
        base: Box<PrunedBase>,
        at: Timestamp,
        audit: AuditEvent,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    InsertCheck {
        check: Box<NewCheck>,
        audit: Vec<AuditEvent>,
        attestation: Option<ReceiptSigner>,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    Consent(
        ConsentOp,
        Vec<AuditEvent>,
        oneshot::Sender<Result<ConsentDone, StoreError>>,
    ),
    PurgeFinished {
        before: Timestamp,
        limit: u32,
        audit: AuditEvent,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
}

/// Type erasure for [`Store::modify`]'s refusal type.
trait ModifyJob: Send {
    fn decide(self: Box<Self>, row: Option<&TransferRow>) -> ModifyStep;
    fn fail(self: Box<Self>, e: StoreError);
}

enum ModifyStep {
    Apply(
        Box<TransferChange>,
        Box<dyn FnOnce(Result<Applied, StoreError>) + Send>,
    ),
    Answer(Box<dyn FnOnce() + Send>),
}

struct ModifyImpl<E: Send + 'static> {
    decide: Decide<E>,
    reply: oneshot::Sender<Result<Modified<E>, StoreError>>,
}

impl<E: Send + 'static> ModifyJob for ModifyImpl<E> {
    fn decide(self: Box<Self>, row: Option<&TransferRow>) -> ModifyStep {
        let ModifyImpl { decide, reply } = *self;
        match row {
            None => ModifyStep::Answer(Box::new(move || {
                let _ = reply.send(Ok(Modified::NotFound));
            })),
            Some(row) => match decide(row) {
                Ok(change) => ModifyStep::Apply(
                    Box::new(change),
                    Box::new(move |r: Result<Applied, StoreError>| {
                        let _ = reply.send(r.map(Modified::Done));
                    }),
                ),
                Err(refusal) => ModifyStep::Answer(Box::new(move || {
                    let _ = reply.send(Ok(Modified::Refused(refusal)));
                })),
            },
        }
    }

    fn fail(self: Box<Self>, e: StoreError) {
        let _ = self.reply.send(Err(e));
    }
}

#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    writer: mpsc::Sender<Op>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        };
        f.debug_struct("Store").field("backend", &kind).finish()
    }
}

/// Runs the same body against whichever backend the store has.
macro_rules! with_pool {
    ($self:expr, $pool:ident => $body:expr) => {
        match &$self.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

mod witness;
pub use witness::{StoredCosignature, WitnessPeerRow};

/// How long the first connection to PostgreSQL may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One connection to PostgreSQL, made and closed before the pool is built. A pool retries a
/// refused connection until its acquire timeout and then says only that it timed out; this
/// says where it tried and why it failed, once.
async fn first_connection(options: &PgConnectOptions) -> Result<(), StoreError> {
    use sqlx::{ConnectOptions, Connection};
    let failed = |reason: String| StoreError::Connect {
        host: options.get_host().to_owned(),
        port: options.get_port(),
        reason,
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, options.connect()).await {
        Ok(Ok(connection)) => {
            // Closing politely can only fail on a connection that already broke: the pool
            // makes its own.
            let _ = connection.close().await;
            Ok(())
        }
        Ok(Err(sqlx::Error::Io(e))) => Err(failed(e.to_string())),
        Ok(Err(sqlx::Error::Database(e))) => Err(failed(e.message().to_owned())),
        Ok(Err(e)) => Err(failed(e.to_string())),
        Err(_) => Err(failed(format!(
            "no connection within {}s",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

impl Store {
    /// Connects (creating a SQLite file when missing), runs the migrations and starts the writer.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let store = Store::connect(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects and starts the writer without migrating.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let pool = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            Pool::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_with(options)
                    .await?,
            )
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url)?;
            first_connection(&options).await?;
            Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_with(options)
                    .await?,
            )
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(writer_loop(pool.clone(), rx));
        Ok(Store { pool, writer: tx })
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Sqlite(p) => sqlx::migrate!("../../migrations/sqlite").run(p).await?,
            Pool::Postgres(p) => sqlx::migrate!("../../migrations/postgres").run(p).await?,
        }
        Ok(())
    }

    /// Answers when the database answers (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, p => { sqlx::query("SELECT 1").execute(p).await?; });
        Ok(())
    }

    pub fn backend_name(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Closes the pool (after the writer drained what was queued).
    pub async fn close(&self) {
        with_pool!(self, p => p.close().await);
    }

    async fn send<T>(
        &self,
        op: Op,
        rx: oneshot::Receiver<Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.writer
            .send(op)
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        rx.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// Stores a new transfer, its replay id and audit entries, unless the `jti` was used before.
    pub async fn insert_transfer(
        &self,
        transfer: NewTransfer,
        audit: Vec<AuditEvent>,
    ) -> Result<Inserted, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Op::Insert(transfer, audit, tx), rx).await
    }

    /// Appends audit entries; returns their leaf indexes.
    pub async fn append_audit(&self, events: Vec<AuditEvent>) -> Result<Vec<u64>, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Op::Audit(events, tx), rx).await
    }

    /// Claims up to `limit` due transfers until `lease_until` under the lease token `owner`,
    /// which must be unique to this claim (a worker's writes are fenced by it). An `accepted`
    /// transfer becomes `fetching`. A transfer whose earlier lease was never released counts one
    /// more interrupted attempt ([`TransferRow::interrupted`]). Peers are treated as
    /// [`Store::claim_skipping`] says.
    pub async fn claim(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<TransferRow>, StoreError> {
        Ok(self
            .claim_skipping(
                owner,
                now,
                lease_until,
                limit,
                Vec::new(),
                Timestamp::from_millis(0),
            )
            .await?
            .transfers)
    }

    /// [`Store::claim`], leaving alone the transfers waiting to be delivered to the destinations
    /// in `skip` (those that have no free call slot: such transfers wait in the store, not in a
    /// worker; transfers still to be fetched are claimed whatever their destination), and the
    /// transfers of peers that are down (to be fetched from a source that is down, or delivered
    /// to a destination that is down) — except, for each down peer whose next probe is due and
    /// that no live claim is probing, its earliest transfer, which this claim takes as the
    /// probe. Transfers whose retry clock started before `expired_before` are claimed whatever
    /// their peer's state (the worker ends them: `max_age`).
    pub async fn claim_skipping(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
        skip: Vec<String>,
        expired_before: Timestamp,
    ) -> Result<Claimed, StoreError> {
        let (tx, rx) = oneshot::channel();
        let op = Op::Claim {
            owner: owner.to_owned(),
            now,
            lease_until,
            limit,
            skip,
            expired_before,
            reply: tx,
        };
        self.send(op, rx).await
    }

    /// Ids of failed transfers with `reason` (from `src`, to `dst`, when given), oldest failure
    /// first, at most `limit`.
    pub async fn failed_transfers(
        &self,
        reason: FailureReason,
        src: Option<&str>,
        dst: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let ids = with_pool!(self, p => {
            sqlx::query_scalar::<_, String>(
                "SELECT id FROM transfers WHERE status = 'failed' AND reason = $1 \
                 AND (CAST($2 AS TEXT) IS NULL OR src = $2) AND (CAST($3 AS TEXT) IS NULL OR dst = $3) \
                 ORDER BY updated_at, id LIMIT $4",
            )
            .bind(reason.as_str())
            .bind(src)
            .bind(dst)
            .bind(i64::from(limit))
            .fetch_all(p)
            .await?
        });
        Ok(ids)
    }

    /// Finished transfers (delivered, failed, cancelled) that ended before `before`: how many,
    /// and the oldest and newest end times (for `siirto retention --dry-run`).
    pub async fn finished_before(
        &self,
        before: Timestamp,
    ) -> Result<(u64, Option<Timestamp>, Option<Timestamp>), StoreError> {
        let row = with_pool!(self, p => {
            let r = sqlx::query(
                "SELECT COUNT(*), MIN(updated_at), MAX(updated_at) FROM transfers \
                 WHERE status IN ('delivered', 'failed', 'cancelled') AND updated_at < $1",
            )
            .bind(before.millis())
            .fetch_one(p)
            .await?;
            use sqlx::Row;
            let n: i64 = r.try_get(0)?;
            let oldest: Option<i64> = r.try_get(1)?;
            let newest: Option<i64> = r.try_get(2)?;
            (n, oldest, newest)
        });
        Ok((
            u64::try_from(row.0).unwrap_or(0),
            row.1.map(Timestamp::from_millis),
            row.2.map(Timestamp::from_millis),
        ))
    }

    /// Deletes up to `limit` finished transfers that ended before `before`, with their steps and
    /// any payload, in one transaction; when any were deleted, `audit` (its `detail` completed
    /// with `deleted` and `ended_before`) is appended with them. Returns how many.
    pub async fn purge_finished(
        &self,
        before: Timestamp,
        limit: u32,
        audit: AuditEvent,
    ) -> Result<u64, StoreError> {
        let (tx, rx) = oneshot::channel();
        let op = Op::PurgeFinished {
            before,
            limit,
            audit,
            reply: tx,
        };
        self.send(op, rx).await
    }

    /// Deletes the audit entries before `base.size` and keeps `base` in their place, in one
    /// transaction with `audit` (its `detail` completed with `pruned_before` and `deleted`).
    /// Refused (nothing written) when entry `base.size - 1` is not the one the base was built
    /// from. Returns how many entries were deleted.
    pub async fn prune_audit(
        &self,
        base: PrunedBase,
        at: Timestamp,
        audit: AuditEvent,
    ) -> Result<u64, StoreError> {
        let (tx, rx) = oneshot::channel();
        let op = Op::PruneAudit {
            base: Box::new(base),
            at,
            audit,
            reply: tx,
        };
        self.send(op, rx).await
    }

    /// What stands in for pruned audit entries, when some were pruned.
    pub async fn audit_base(&self) -> Result<Option<PrunedBase>, StoreError> {
        let json: Option<String> = with_pool!(self, p => {
            sqlx::query_scalar("SELECT base FROM audit_base WHERE id = 1")
                .fetch_optional(p)
                .await?
        });
        json.map(|j| {
            PrunedBase::decode(&j).map_err(|e| StoreError::Corrupt {
                what: "audit base",
                detail: e.to_string(),
            })
        })
        .transpose()
    }

    /// The seq of the first audit entry written at or after `at` (the log's length when none
    /// is).
    pub async fn first_audit_at_or_after(&self, at: Timestamp) -> Result<u64, StoreError> {
        let first: Option<i64> = with_pool!(self, p => {
            sqlx::query_scalar("SELECT MIN(seq) FROM audit WHERE at >= $1")
                .bind(at.millis())
                .fetch_one(p)
                .await?
        });
        match first {
            Some(seq) => Ok(u64::try_from(seq).unwrap_or(0)),
            None => self.audit_len().await,
        }
    }

    /// Every peer with stored health (a peer without a row is up).
    pub async fn peers(&self) -> Result<Vec<PeerRow>, StoreError> {
        let rows = with_pool!(self, p => {
            sqlx::query("SELECT participant, down_since, failures, probes, next_probe_at FROM peers ORDER BY participant")
                .fetch_all(p)
                .await?
                .iter()
                .map(rows::peer_from_row)
                .collect::<Result<Vec<_>, _>>()?
        });
        Ok(rows)
    }

    /// Transfers waiting for each peer: to be fetched from it (as source) or delivered to it
    /// (as destination), with the count of each.
    pub async fn backlogs(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let rows = with_pool!(self, p => {
            sqlx::query(BACKLOG_SQL)
                .fetch_all(p)
                .await?
                .iter()
                .map(|r| {
                    use sqlx::Row;
                    let peer: String = r.try_get(0)?;
                    let n: i64 = r.try_get(1)?;
                    Ok::<_, StoreError>((peer, u64::try_from(n).unwrap_or(0)))
                })
                .collect::<Result<Vec<_>, _>>()?
        });
        Ok(rows)
    }

    /// Applies a change written by the transfer's worker (or anyone, with [`Guard::Any`]).
    pub async fn apply(&self, change: TransferChange) -> Result<Applied, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Op::Apply(change, tx), rx).await
    }

    /// Reads a transfer and applies the change `decide` makes of it, atomically.
    pub async fn modify<E: Send + 'static>(
        &self,
        id: &str,
        decide: Decide<E>,
    ) -> Result<Modified<E>, StoreError> {
        let (tx, rx) = oneshot::channel();
        let job = Box::new(ModifyImpl { decide, reply: tx });
        self.send(Op::Modify(id.to_owned(), job), rx).await
    }

    /// Stores a signed checkpoint; `false` when one for that tree size already exists.
    pub async fn insert_checkpoint(
        &self,
        tree_size: u64,
        root_hash: [u8; 32],
        issued_at: Timestamp,
        note: String,
    ) -> Result<bool, StoreError> {
        let (tx, rx) = oneshot::channel();
        let row = rows::CheckpointRow {
            tree_size,
            root_hash,
            issued_at,
            note,
        };
        self.send(Op::Checkpoint(row, tx), rx).await
    }

    /// Records a token id as used, with audit entries written only when it was new. `false`
    /// when the issuer's `jti` was seen before (replay).
    pub async fn remember_jti(
        &self,
        issuer: &str,
        jti: &str,
        until: Timestamp,
        audit: Vec<AuditEvent>,
    ) -> Result<bool, StoreError> {
        let (tx, rx) = oneshot::channel();
        let op = Op::Remember {
            issuer: issuer.to_owned(),
            jti: jti.to_owned(),
            until,
            audit,
            reply: tx,
        };
        self.send(op, rx).await
    }

    /// Writes a finished check with its audit entries (at least one); returns the seq of the
    /// last entry. `attestation` signs and seals the attestation for that seq (its
    /// `audit_leaf_index`) before anything is written, so the row and the entry it names
    /// commit together.
    pub async fn insert_check(
        &self,
        check: NewCheck,
        audit: Vec<AuditEvent>,
        attestation: Option<ReceiptSigner>,
    ) -> Result<u64, StoreError> {
        let (tx, rx) = oneshot::channel();
        let op = Op::InsertCheck {
            check: Box::new(check),
            audit,
            attestation,
            reply: tx,
        };
        self.send(op, rx).await
    }

    /// Every check about the student with this pseudonym, newest first.
    pub async fn checks_of(&self, subject_pseudonym: &str) -> Result<Vec<CheckRow>, StoreError> {
        let sql = "SELECT id, submitter, src, dst, question, purpose, subject_pseudonym, basis, \
                   guardian_pseudonym, consent_sha256, consent_version, consent_lang, created_at, \
                   finished_at, outcome, answer, document_sha256, audit_leaf_index, attestation_sealed \
                   FROM checks WHERE subject_pseudonym = $1 ORDER BY created_at DESC, id DESC";
        with_pool!(self, p => {
            let rows = sqlx::query(sql).bind(subject_pseudonym).fetch_all(p).await?;
            rows.iter().map(rows::check_from_row).collect()
        })
    }

    async fn consent(
        &self,
        op: ConsentOp,
        audit: Vec<AuditEvent>,
    ) -> Result<ConsentDone, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Op::Consent(op, audit, tx), rx).await
    }

    /// Stores a consent request with its audit entries, unless the authorization's `jti` was
    /// used before ([`Inserted::Replay`]).
    pub async fn insert_consent_request(
        &self,
        request: NewConsentRequest,
        audit: Vec<AuditEvent>,
    ) -> Result<Inserted, StoreError> {
        Ok(
            match self.consent(ConsentOp::Insert(request), audit).await? {
                ConsentDone::Refused => Inserted::Replay,
                _ => Inserted::Accepted,
            },
        )
    }

    /// Answers a pending consent request: with [`ConsentAnswer::Granted`] the transfer is
    /// stored in the same transaction. `false` when the request was no longer pending.
    pub async fn answer_consent_request(
        &self,
        id: &str,
        answer: ConsentAnswer,
        now: Timestamp,
        audit: Vec<AuditEvent>,
    ) -> Result<bool, StoreError> {
        let op = ConsentOp::Answer {
            id: id.to_owned(),
            answer: Box::new(answer),
            now,
        };
        Ok(matches!(
            self.consent(op, audit).await?,
            ConsentDone::Written
        ))
    }

    /// Takes the sealed authorization code of a transfer's consent out of the store, with
    /// audit entries: whoever gets it is the only one who ever will (a code is exchanged at
    /// most once, even across a crash). `None` when it was taken before.
    pub async fn take_consent_code(
        &self,
        transfer_id: &str,
        audit: Vec<AuditEvent>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let op = ConsentOp::TakeCode {
            transfer_id: transfer_id.to_owned(),
        };
        match self.consent(op, audit).await? {
            ConsentDone::Code(code) => Ok(code),
            _ => Ok(None),
        }
    }

    /// Keeps the access token of a transfer's consent, sealed, until the fetch (the change
    /// that records the fetch forgets it), with audit entries.
    pub async fn put_consent_token(
        &self,
        transfer_id: &str,
        token_sealed: Vec<u8>,
        now: Timestamp,
        audit: Vec<AuditEvent>,
    ) -> Result<(), StoreError> {
        let op = ConsentOp::PutToken {
            transfer_id: transfer_id.to_owned(),
            token_sealed,
            now,
        };
        self.consent(op, audit).await.map(|_| ())
    }

    /// A consent request by id.
    pub async fn consent_request(&self, id: &str) -> Result<Option<ConsentRequestRow>, StoreError> {
        self.consent_request_where("id", id).await
    }

    /// The consent request a transfer was made on, if it was.
    pub async fn consent_request_of(
        &self,
        transfer_id: &str,
    ) -> Result<Option<ConsentRequestRow>, StoreError> {
        self.consent_request_where("transfer_id", transfer_id).await
    }

    async fn consent_request_where(
        &self,
        column: &'static str,
        value: &str,
    ) -> Result<Option<ConsentRequestRow>, StoreError> {
        let sql = format!(
            "SELECT id, eservice, src, redirect_uri, state_sha256, verifier_sealed, pending_sealed, status, \
             transfer_id, code_sealed, token_sealed, exchanged_at, created_at, expires_at \
             FROM consent_requests WHERE {column} = $1"
        );
        with_pool!(self, p => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(value).fetch_optional(p).await?;
            row.as_ref().map(rows::consent_request_from_row).transpose()
        })
    }

    /// Forgets replay ids whose authorizations can no longer be valid, and KOSKI OmaData
    /// consent requests that expired unanswered or declined, or whose transfer is gone.
    pub async fn purge_replay(&self, now: Timestamp) -> Result<u64, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Op::PurgeReplay(now, tx), rx).await
    }

    pub async fn transfer(&self, id: &str) -> Result<Option<TransferRow>, StoreError> {
        let sql = concat!(
            "SELECT ",
            rows::transfer_columns!(),
            " FROM transfers WHERE id = $1"
        );
        with_pool!(self, p => {
            let row = sqlx::query(sql).bind(id).fetch_optional(p).await?;
            row.as_ref().map(rows::transfer_from_row).transpose()
        })
    }

    pub async fn steps(&self, id: &str) -> Result<Vec<StepRow>, StoreError> {
        let sql =
            "SELECT seq, at, step, outcome, detail FROM steps WHERE transfer_id = $1 ORDER BY seq";
        with_pool!(self, p => {
            let rows = sqlx::query(sql).bind(id).fetch_all(p).await?;
            rows.iter().map(rows::step_from_row).collect()
        })
    }

    pub async fn payload(&self, id: &str) -> Result<Option<SealedBlob>, StoreError> {
        let sql = "SELECT key_id, sealed, sha256 FROM payloads WHERE transfer_id = $1";
        with_pool!(self, p => {
            let row = sqlx::query(sql).bind(id).fetch_optional(p).await?;
            row.as_ref().map(rows::payload_from_row).transpose()
        })
    }

    /// How many payloads are stored (zero when nothing waits for delivery).
    pub async fn payload_count(&self) -> Result<u64, StoreError> {
        self.count("SELECT COUNT(*) FROM payloads").await
    }

    /// Transfers that have not reached an end (back-pressure).
    pub async fn pending_count(&self) -> Result<u64, StoreError> {
        self.count("SELECT COUNT(*) FROM transfers WHERE due_at IS NOT NULL")
            .await
    }

    async fn count(&self, sql: &'static str) -> Result<u64, StoreError> {
        let n: i64 = with_pool!(self, p => sqlx::query_scalar(sql).fetch_one(p).await?);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Every transfer about one student (by pseudonym), newest first.
    pub async fn transfers_for_subject(
        &self,
        pseudonym: &str,
        limit: u32,
    ) -> Result<Vec<TransferRow>, StoreError> {
        let filter = TransferFilter {
            subject: Some(pseudonym.to_owned()),
            limit,
            ..TransferFilter::default()
        };
        self.transfers_rows(&filter).await
    }

    /// Transfers, newest first, optionally filtered by status.
    pub async fn recent_transfers(
        &self,
        status: Option<Status>,
        limit: u32,
    ) -> Result<Vec<TransferRow>, StoreError> {
        let filter = TransferFilter {
            status,
            limit,
            ..TransferFilter::default()
        };
        self.transfers_rows(&filter).await
    }

    async fn transfers_rows(
        &self,
        filter: &TransferFilter,
    ) -> Result<Vec<TransferRow>, StoreError> {
        let page = self.transfers_query(filter).await?;
        Ok(page.transfers.into_iter().map(|t| t.row).collect())
    }

    /// One page of the transfers `filter` takes, newest first (by acceptance time, then id),
    /// from its cursor on, with the cursor of the next page when more follow. `limit` is
    /// clamped to 1..=[`MAX_TRANSFER_PAGE`].
    pub async fn transfers_query(
        &self,
        filter: &TransferFilter,
    ) -> Result<TransferPage, StoreError> {
        let sql = format!(
            "SELECT {}, {LAST_ERROR} FROM transfers WHERE {TRANSFER_WHERE} \
             AND (created_at < $10 OR (created_at = $10 AND id < $11)) \
             ORDER BY created_at DESC, id DESC LIMIT $12",
            rows::transfer_columns!()
        );
        let limit = filter.limit.clamp(1, MAX_TRANSFER_PAGE);
        let (after_at, after_id) = filter
            .after
            .as_ref()
            .map_or((i64::MAX, ""), |c| (c.created_at.millis(), c.id.as_str()));
        let mut transfers = with_pool!(self, p => {
            let rows = bind_transfer_filter!(sqlx::query(sqlx::AssertSqlSafe(sql)), filter, filter.status)
                .bind(after_at)
                .bind(after_id)
                .bind(i64::from(limit) + 1)
                .fetch_all(p)
                .await?;
            rows.iter()
                .map(|r| {
                    use sqlx::Row;
                    Ok(ListedTransfer {
                        row: rows::transfer_from_row(r)?,
                        last_error: r.try_get(rows::TRANSFER_COLUMN_COUNT)?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?
        });
        let more = transfers.len() > limit as usize;
        transfers.truncate(limit as usize);
        let next_cursor = more
            .then(|| transfers.last())
            .flatten()
            .map(|t| TransferCursor {
                created_at: t.row.created_at,
                id: t.row.id.clone(),
            });
        Ok(TransferPage {
            transfers,
            next_cursor,
        })
    }

    /// How many transfers `filter` takes in each status, whatever its `status`, cursor and
    /// limit (the totals above a listing). Statuses without transfers are left out.
    pub async fn transfer_totals(
        &self,
        filter: &TransferFilter,
    ) -> Result<Vec<(Status, u64)>, StoreError> {
        let sql = format!(
            "SELECT status, COUNT(*) FROM transfers WHERE {TRANSFER_WHERE} GROUP BY status"
        );
        let counted: Vec<(String, i64)> = with_pool!(self, p => {
            bind_transfer_filter!(sqlx::query_as(sqlx::AssertSqlSafe(sql)), filter, None)
                .fetch_all(p)
                .await?
        });
        let mut totals = Vec::new();
        for status in Status::ALL {
            if let Some((_, n)) = counted.iter().find(|(s, _)| s == status.as_str()) {
                totals.push((status, u64::try_from(*n).unwrap_or(0)));
            }
        }
        if let Some((s, _)) = counted.iter().find(|(s, _)| Status::parse(s).is_none()) {
            return Err(StoreError::Corrupt {
                what: "transfer status",
                detail: s.clone(),
            });
        }
        Ok(totals)
    }

    /// Audit entries with `from <= seq`, in order, at most `limit`.
    pub async fn audit_range(&self, from: u64, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let sql = concat!(
            "SELECT ",
            rows::audit_columns!(),
            " FROM audit WHERE seq >= $1 ORDER BY seq LIMIT $2"
        );
        let from = i64::try_from(from).unwrap_or(i64::MAX);
        with_pool!(self, p => {
            let rows = sqlx::query(sql).bind(from).bind(i64::from(limit)).fetch_all(p).await?;
            rows.iter().map(rows::audit_from_row).collect()
        })
    }

    /// Audit entries matching a filter, paged by `seq` (cursor = the last seq seen).
    pub async fn audit_query(&self, filter: &AuditFilter) -> Result<AuditPage, StoreError> {
        let sql = concat!(
            "SELECT ",
            rows::audit_columns!(),
            " FROM audit WHERE seq > $1 AND ($2 = '' OR transfer_id = $2) AND at >= $3 AND at < $4 \
             AND ($5 = '' OR actor = $5) AND ($6 = '' OR action = $6) \
             AND ($8 = '' OR subject = $8 OR transfer_id IN (SELECT id FROM transfers WHERE subject_pseudonym = $8)) \
             ORDER BY seq LIMIT $7"
        );
        let after = filter
            .after
            .map_or(-1, |s| i64::try_from(s).unwrap_or(i64::MAX));
        let limit = i64::from(filter.limit.clamp(1, 1000)) + 1;
        let entries: Vec<AuditEntry> = with_pool!(self, p => {
            let rows = sqlx::query(sql)
                .bind(after)
                .bind(filter.transfer.as_deref().unwrap_or(""))
                .bind(filter.since.map_or(i64::MIN, Timestamp::millis))
                .bind(filter.until.map_or(i64::MAX, Timestamp::millis))
                .bind(filter.actor.as_deref().unwrap_or(""))
                .bind(filter.action.as_deref().unwrap_or(""))
                .bind(limit)
                .bind(filter.subject.as_deref().unwrap_or(""))
                .fetch_all(p)
                .await?;
            rows.iter().map(rows::audit_from_row).collect::<Result<_, _>>()?
        });
        Ok(rows::page(entries, filter.limit.clamp(1, 1000)))
    }

    /// Number of audit entries (the Merkle tree size).
    pub async fn audit_len(&self) -> Result<u64, StoreError> {
        let n: Option<i64> = with_pool!(self, p => sqlx::query_scalar("SELECT MAX(seq) FROM audit").fetch_one(p).await?);
        Ok(n.map_or(0, |s| u64::try_from(s).unwrap_or(0) + 1))
    }

    /// The stored checkpoint with the largest tree size, if any.
    pub async fn latest_checkpoint(&self) -> Result<Option<rows::CheckpointRow>, StoreError> {
        let sql = "SELECT tree_size, root_hash, issued_at, note FROM checkpoints ORDER BY tree_size DESC LIMIT 1";
        with_pool!(self, p => {
            let row = sqlx::query(sql).fetch_optional(p).await?;
            row.as_ref().map(rows::checkpoint_from_row).transpose()
        })
    }

    /// Every stored checkpoint, smallest tree first.
    pub async fn checkpoints(&self) -> Result<Vec<rows::CheckpointRow>, StoreError> {
        let sql =
            "SELECT tree_size, root_hash, issued_at, note FROM checkpoints ORDER BY tree_size";
        with_pool!(self, p => {
            let rows = sqlx::query(sql).fetch_all(p).await?;
            rows.iter().map(rows::checkpoint_from_row).collect()
        })
    }

    /// Seals the receipts that versions before migration 0003 stored in clear (SQL cannot: it
    /// holds no key): each becomes `receipt_sealed` (`seal(transfer id, receipt)`), and the
    /// clear copy is removed. On SQLite the bytes freed are overwritten (`secure_delete`) and
    /// the write-ahead log is checkpointed and truncated, so the files keep no copy; PostgreSQL
    /// keeps the old row versions until `VACUUM` reclaims them. Returns how many were sealed.
    pub async fn seal_clear_receipts(
        &self,
        seal: impl Fn(&str, &str) -> Sealed,
    ) -> Result<u64, StoreError> {
        const SELECT: &str = "SELECT id, receipt FROM transfers WHERE receipt IS NOT NULL";
        // `receipt = $4`: an instance sharing the database may have sealed it meanwhile.
        const UPDATE: &str = "UPDATE transfers SET receipt_sealed = $1, receipt_key_id = $2, receipt = NULL \
                              WHERE id = $3 AND receipt = $4";
        let clear: Vec<(String, String)> =
            with_pool!(self, p => sqlx::query_as(SELECT).fetch_all(p).await?);
        if clear.is_empty() {
            return Ok(0);
        }
        // Every receipt in one transaction on one connection (`$begin` is the backend's).
        macro_rules! seal_all {
            ($conn:expr, $begin:expr) => {{
                sqlx::raw_sql($begin).execute(&mut *$conn).await?;
                let written = async {
                    let mut n = 0;
                    for (id, receipt) in &clear {
                        let s = seal(id, receipt);
                        n += sqlx::query(UPDATE)
                            .bind(s.bytes)
                            .bind(s.key_id)
                            .bind(id)
                            .bind(receipt)
                            .execute(&mut *$conn)
                            .await?
                            .rows_affected();
                    }
                    sqlx::raw_sql("COMMIT").execute(&mut *$conn).await?;
                    Ok::<u64, sqlx::Error>(n)
                }
                .await;
                match written {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *$conn).await;
                        return Err(e.into());
                    }
                }
            }};
        }
        let sealed = match &self.pool {
            Pool::Sqlite(p) => {
                let mut conn = p.acquire().await?;
                sqlx::raw_sql("PRAGMA secure_delete = ON")
                    .execute(&mut *conn)
                    .await?;
                let n = seal_all!(conn, "BEGIN IMMEDIATE");
                // Copy the pages into the database file and empty the log, whose older frames
                // still hold the clear receipts.
                sqlx::raw_sql("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA secure_delete = OFF")
                    .execute(&mut *conn)
                    .await?;
                n
            }
            Pool::Postgres(p) => {
                let mut conn = p.acquire().await?;
                seal_all!(conn, "BEGIN")
            }
        };
        Ok(sealed)
    }

    /// Runs a raw statement: for tests that tamper with stored rows on purpose.
    #[doc(hidden)]
    pub async fn execute_raw(&self, sql: &str) -> Result<u64, StoreError> {
        let n = with_pool!(self, p => sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(p).await?.rows_affected());
        Ok(n)
    }
}

fn redact_url(url: &str) -> String {
    // Never echo credentials: keep only the scheme.
    url.split(':').next().unwrap_or("").to_owned() + ":..."
}

async fn writer_loop(pool: Pool, mut rx: mpsc::Receiver<Op>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let ops = std::mem::take(&mut batch);
        match &pool {
            Pool::Sqlite(p) => sqlite::run_batch(p, ops).await,
            Pool::Postgres(p) => postgres::run_batch(p, ops).await,
        }
    }
}

/// The audit chain's end: the next leaf index and the hash the next entry chains to.
#[derive(Debug, Clone, Copy)]
struct Head {
    next_seq: u64,
    prev_hash: [u8; 32],
}

/// What a batch's operations add to the audit log, numbered from the batch's first entry (0);
/// and the receipts and attestations to sign for a leaf among them.
///
/// The entries are sequenced and chained only at the end of the batch ([`Sequenced`]): on
/// PostgreSQL the audit lock that orders every instance's appends is taken there, just before
/// the entries are inserted and the transaction commits, so the rest of a batch (state changes,
/// steps, payloads, claims) runs beside other instances' batches instead of behind them. A batch
/// that appends nothing takes no lock.
#[derive(Default)]
struct Pending {
    events: Vec<AuditEvent>,
    signs: Vec<LateSign>,
}

impl Pending {
    /// Queues `events`; their leaf indexes relative to the batch's first entry.
    fn append(&mut self, events: Vec<AuditEvent>) -> Vec<u64> {
        let first = self.events.len() as u64;
        let n = events.len() as u64;
        self.events.extend(events);
        (first..first + n).collect()
    }

    /// Signs for relative leaf `leaf` at the end of the batch; the ticket finds the signature
    /// in [`Sequenced::signed`].
    fn sign(&mut self, target: SignTarget, leaf: u64, sign: ReceiptSigner) -> usize {
        self.signs.push(LateSign { target, leaf, sign });
        self.signs.len() - 1
    }
}

/// A receipt or an attestation that names its audit leaf, signed when the leaf is known.
struct LateSign {
    target: SignTarget,
    /// Relative to the batch's first entry.
    leaf: u64,
    sign: ReceiptSigner,
}

/// The row a late signature is stored in.
enum SignTarget {
    Transfer(String),
    Check(String),
}

/// What the end of a batch decided.
#[derive(Debug, Default)]
struct Sequenced {
    /// The leaf index of the batch's first entry.
    base: u64,
    /// The signatures of [`Pending::signs`], in order.
    signed: Vec<Sealed>,
}

impl Sequenced {
    fn leaves(&self, relative: Vec<u64>) -> Vec<u64> {
        relative.into_iter().map(|r| self.base + r).collect()
    }
}

/// How one operation of a batch went. Every operation makes its refusal decision (a `jti`
/// seen before, a lost lease, a modification declined) before it writes anything, so a refusal
/// leaves the transaction as it was and needs no savepoint.
enum OpOutcome {
    /// Wrote; answer once the batch commits.
    Keep(Finish),
    /// Wrote nothing; answer now.
    Refused(Finish),
    /// A database error: the transaction may hold part of the operation, so the whole batch
    /// rolls back. The finisher answers this operation with its own error.
    Failed(Finish, String),
}

/// Most rows in one multi-row `INSERT` (audit entries: 11 parameters each, far below SQLite's
/// and PostgreSQL's parameter limits).
const ROWS_PER_INSERT: usize = 128;

/// `$first, $first+1, ...` as `n` parenthesized groups of `width` parameters.
fn value_groups(n: usize, width: usize, first: usize) -> String {
    let mut s = String::with_capacity(n * width * 5);
    for r in 0..n {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        for c in 0..width {
            if c > 0 {
                s.push_str(", ");
            }
            s.push('$');
            s.push_str(&(first + r * width + c).to_string());
        }
        s.push(')');
    }
    s
}

macro_rules! backend {
    ($module:ident, $db:ty, $pool:ty, begin = $begin:expr, claim_lock = $claim_lock:expr, audit_lock = $audit_lock:expr) => {
        mod $module {
            use super::*;
            use sqlx::{Connection, Row};

            type Conn = <$db as sqlx::Database>::Connection;

            pub(super) async fn run_batch(pool: &$pool, ops: Vec<Op>) {
                let mut conn = match pool.acquire().await {
                    Ok(c) => c,
                    Err(e) => return fail_all(ops, e.into()),
                };
                let mut tx = match conn.begin_with($begin).await {
                    Ok(t) => t,
                    Err(e) => return fail_all(ops, e.into()),
                };
                let mut pending = Pending::default();
                let nothing = Sequenced::default();
                let mut finishers: Vec<Finish> = Vec::with_capacity(ops.len());
                let mut ops = ops.into_iter();
                while let Some(op) = ops.next() {
                    match run_op(&mut tx, op, &mut pending).await {
                        OpOutcome::Keep(finish) => finishers.push(finish),
                        // Refused operations answer now; they wrote nothing.
                        OpOutcome::Refused(finish) => finish(Ok(&nothing)),
                        OpOutcome::Failed(finish, error) => {
                            finish(Ok(&nothing));
                            let rolled_back = Arc::new(StoreError::RolledBack(format!(
                                "another operation in the same transaction failed: {error}"
                            )));
                            for f in finishers {
                                f(Err(rolled_back.clone()));
                            }
                            for op in ops {
                                fail_one(op)(Err(rolled_back.clone()));
                            }
                            // Dropping `tx` rolls it back.
                            return;
                        }
                    }
                }
                // The batch's audit entries, then the commit: one outcome for every operation.
                let committed = match sequence(&mut tx, pending).await {
                    Ok(sequenced) => match tx.commit().await {
                        Ok(()) => Ok(sequenced),
                        Err(e) => Err(Arc::new(StoreError::from(e))),
                    },
                    // Dropping `tx` rolls it back.
                    Err(e) => Err(Arc::new(StoreError::RolledBack(format!(
                        "the batch's audit entries could not be written: {e}"
                    )))),
                };
                for f in finishers {
                    f(committed.as_ref().map_err(Arc::clone));
                }
            }

            async fn read_head(conn: &mut Conn) -> Result<Head, StoreError> {
                let row = sqlx::query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
                    .fetch_optional(&mut *conn)
                    .await?;
                match row {
                    // Every entry pruned: the chain continues from what stands in for them.
                    None => {
                        let base: Option<(i64, String)> = sqlx::query_as("SELECT size, base FROM audit_base WHERE id = 1")
                            .fetch_optional(&mut *conn)
                            .await?;
                        match base {
                            None => Ok(Head {
                                next_seq: 0,
                                prev_hash: [0u8; 32],
                            }),
                            Some((_, json)) => {
                                let base = PrunedBase::decode(&json).map_err(|e| StoreError::Corrupt {
                                    what: "audit base",
                                    detail: e.to_string(),
                                })?;
                                Ok(Head { next_seq: base.size, prev_hash: base.head })
                            }
                        }
                    }
                    Some(r) => {
                        let seq: i64 = r.try_get(0)?;
                        let hash: Vec<u8> = r.try_get(1)?;
                        let prev_hash = <[u8; 32]>::try_from(hash.as_slice()).map_err(|_| StoreError::Corrupt {
                            what: "audit hash",
                            detail: format!("entry {seq} has a hash of {} bytes", hash.len()),
                        })?;
                        let next_seq = u64::try_from(seq).map_err(|_| StoreError::Corrupt {
                            what: "audit sequence",
                            detail: format!("negative seq {seq}"),
                        })? + 1;
                        Ok(Head { next_seq, prev_hash })
                    }
                }
            }

            /// The end of a batch: under the audit lock (PostgreSQL), reads the chain's end,
            /// numbers and chains the batch's entries onto it and inserts them, up to
            /// [`ROWS_PER_INSERT`] per statement, then signs each receipt and attestation for its
            /// leaf and stores it with its row. The caller commits at once.
            async fn sequence(conn: &mut Conn, pending: Pending) -> Result<Sequenced, StoreError> {
                if pending.events.is_empty() {
                    return Ok(Sequenced::default());
                }
                if let Some(lock) = $audit_lock {
                    sqlx::query(lock).bind(AUDIT_LOCK_ID).execute(&mut *conn).await?;
                }
                let mut head = read_head(conn).await?;
                let base = head.next_seq;
                let mut columns = Vec::with_capacity(pending.events.len());
                for event in pending.events {
                    let entry = AuditEntry::chained(head.next_seq, head.prev_hash, event);
                    columns.push(rows::AuditColumns::of(&entry)?);
                    head.next_seq = entry.seq + 1;
                    head.prev_hash = entry.hash;
                }
                let mut columns = columns.into_iter().peekable();
                while columns.peek().is_some() {
                    let chunk: Vec<rows::AuditColumns> = columns.by_ref().take(ROWS_PER_INSERT).collect();
                    let sql = format!(
                        "INSERT INTO audit (seq, at, actor, action, outcome, transfer_id, subject, document_sha256, detail, prev_hash, hash) VALUES {}",
                        value_groups(chunk.len(), 11, 1)
                    );
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for r in chunk {
                        q = q
                            .bind(r.seq)
                            .bind(r.at)
                            .bind(r.actor)
                            .bind(r.action)
                            .bind(r.outcome)
                            .bind(r.transfer_id)
                            .bind(r.subject)
                            .bind(r.document_sha256)
                            .bind(r.detail)
                            .bind(r.prev_hash)
                            .bind(r.hash);
                    }
                    q.execute(&mut *conn).await?;
                }
                let mut signed = Vec::with_capacity(pending.signs.len());
                for late in pending.signs {
                    let leaf = base + late.leaf;
                    let sealed = (late.sign)(leaf);
                    let (sql, id) = match &late.target {
                        SignTarget::Transfer(id) => (
                            "UPDATE transfers SET receipt_sealed = $1, receipt_key_id = $2, receipt_leaf = $3 WHERE id = $4",
                            id,
                        ),
                        SignTarget::Check(id) => (
                            "UPDATE checks SET attestation_sealed = $1, attestation_key_id = $2, audit_leaf_index = $3 WHERE id = $4",
                            id,
                        ),
                    };
                    sqlx::query(sql)
                        .bind(sealed.bytes.clone())
                        .bind(sealed.key_id.clone())
                        .bind(i64::try_from(leaf).unwrap_or(i64::MAX))
                        .bind(id)
                        .execute(&mut *conn)
                        .await?;
                    signed.push(sealed);
                }
                Ok(Sequenced { base, signed })
            }

            async fn run_op(conn: &mut Conn, op: Op, pending: &mut Pending) -> OpOutcome {
                match op {
                    Op::Insert(t, events, reply) => match insert(conn, pending, t, events).await {
                        Ok(Inserted::Replay) => OpOutcome::Refused(Box::new(move |_| {
                            let _ = reply.send(Ok(Inserted::Replay));
                        })),
                        Ok(Inserted::Accepted) => OpOutcome::Keep(Box::new(move |c| {
                            let _ = reply.send(c.map(|_| Inserted::Accepted).map_err(unshare));
                        })),
                        Err(e) => undo_with(reply, e),
                    },
                    Op::Audit(events, reply) => {
                        let seqs = pending.append(events);
                        OpOutcome::Keep(Box::new(move |c| {
                            let _ = reply.send(c.map(|q| q.leaves(seqs)).map_err(unshare));
                        }))
                    }
                    Op::Claim { owner, now, lease_until, limit, skip, expired_before, reply } => {
                        match claim(conn, &owner, now, lease_until, limit, &skip, expired_before).await {
                            Ok(rows) => OpOutcome::Keep(Box::new(move |c| {
                                let _ = reply.send(c.map(|_| rows).map_err(unshare));
                            })),
                            Err(e) => undo_with(reply, e),
                        }
                    }
                    Op::Apply(change, reply) => match apply(conn, pending, change).await {
                        Ok(Applying::LeaseLost) => OpOutcome::Refused(Box::new(move |_| {
                            let _ = reply.send(Ok(Applied::LeaseLost));
                        })),
                        Ok(done) => OpOutcome::Keep(Box::new(move |c| {
                            let _ = reply.send(c.map(|q| done.sequenced(q)).map_err(unshare));
                        })),
                        Err(e) => undo_with(reply, e),
                    },
                    Op::Modify(id, job) => {
                        let sql = concat!("SELECT ", rows::transfer_columns!(), " FROM transfers WHERE id = $1");
                        let row = match sqlx::query(sql).bind(&id).fetch_optional(&mut *conn).await {
                            Ok(r) => r,
                            Err(e) => {
                                let text = e.to_string();
                                return OpOutcome::Failed(Box::new(move |_| job.fail(e.into())), text);
                            }
                        };
                        let row = match row.as_ref().map(rows::transfer_from_row).transpose() {
                            Ok(r) => r,
                            Err(e) => {
                                let text = e.to_string();
                                return OpOutcome::Failed(Box::new(move |_| job.fail(e)), text);
                            }
                        };
                        match job.decide(row.as_ref()) {
                            ModifyStep::Answer(answer) => OpOutcome::Refused(Box::new(move |_| answer())),
                            ModifyStep::Apply(change, reply) => match apply(conn, pending, *change).await {
                                Ok(Applying::LeaseLost) => OpOutcome::Refused(Box::new(move |_| reply(Ok(Applied::LeaseLost)))),
                                Ok(done) => OpOutcome::Keep(Box::new(move |c| reply(c.map(|q| done.sequenced(q)).map_err(unshare)))),
                                Err(e) => {
                                    let text = e.to_string();
                                    OpOutcome::Failed(Box::new(move |_| reply(Err(e))), text)
                                }
                            },
                        }
                    }
                    Op::Checkpoint(row, reply) => {
                        let result = sqlx::query(
                            "INSERT INTO checkpoints (tree_size, root_hash, issued_at, note) VALUES ($1, $2, $3, $4) ON CONFLICT (tree_size) DO NOTHING",
                        )
                        .bind(i64::try_from(row.tree_size).unwrap_or(i64::MAX))
                        .bind(row.root_hash.to_vec())
                        .bind(row.issued_at.millis())
                        .bind(row.note)
                        .execute(&mut *conn)
                        .await;
                        match result {
                            Ok(r) => {
                                let inserted = r.rows_affected() == 1;
                                OpOutcome::Keep(Box::new(move |c| {
                                    let _ = reply.send(c.map(|_| inserted).map_err(unshare));
                                }))
                            }
                            Err(e) => undo_with(reply, e.into()),
                        }
                    }
                    Op::Remember { issuer, jti, until, audit, reply } => {
                        let result = async {
                            let fresh = remember(conn, &issuer, &jti, until).await?;
                            if fresh {
                                pending.append(audit);
                            }
                            Ok::<bool, StoreError>(fresh)
                        }
                        .await;
                        match result {
                            Ok(fresh) => OpOutcome::Keep(Box::new(move |c| {
                                let _ = reply.send(c.map(|_| fresh).map_err(unshare));
                            })),
                            Err(e) => undo_with(reply, e),
                        }
                    }
                    Op::InsertCheck { check, audit, attestation, reply } => {
                        match insert_check(conn, pending, *check, audit, attestation).await {
                            Ok(leaf) => OpOutcome::Keep(Box::new(move |c| {
                                let _ = reply.send(c.map(|q| q.base + leaf).map_err(unshare));
                            })),
                            Err(e) => undo_with(reply, e),
                        }
                    }
                    Op::Consent(op, audit, reply) => match consent(conn, pending, op, audit).await {
                        Ok(ConsentDone::Refused) => OpOutcome::Refused(Box::new(move |_| {
                            let _ = reply.send(Ok(ConsentDone::Refused));
                        })),
                        Ok(done) => OpOutcome::Keep(Box::new(move |c| {
                            let _ = reply.send(c.map(|_| done).map_err(unshare));
                        })),
                        Err(e) => undo_with(reply, e),
                    },
                    Op::PurgeFinished { before, limit, audit, reply } => {
                        match purge_finished(conn, pending, before, limit, audit).await {
                            Ok(n) => OpOutcome::Keep(Box::new(move |c| {
                                let _ = reply.send(c.map(|_| n).map_err(unshare));
                            })),
                            Err(e) => undo_with(reply, e),
                        }
                    }
                    Op::PruneAudit { base, at, audit, reply } => {
                        match prune_audit(conn, pending, &base, at, audit).await {
                            Ok(n) => OpOutcome::Keep(Box::new(move |c| {
                                let _ = reply.send(c.map(|_| n).map_err(unshare));
                            })),
                            Err(e) => undo_with(reply, e),
                        }
                    }
                    Op::PurgeReplay(now, reply) => {
                        let result = async {
                            let n = sqlx::query("DELETE FROM replay WHERE expires_at < $1").bind(now.millis()).execute(&mut *conn).await?;
                            // Consent requests never answered, or declined, a day after they
                            // expired (until then a late answer is told `expired`); and those
                            // whose transfer the retention purge removed.
                            sqlx::query("DELETE FROM consent_requests WHERE status <> 'granted' AND expires_at < $1")
                                .bind(now.millis().saturating_sub(CONSENT_REQUEST_KEPT_MS))
                                .execute(&mut *conn)
                                .await?;
                            sqlx::query(
                                "DELETE FROM consent_requests WHERE transfer_id IS NOT NULL \
                                 AND NOT EXISTS (SELECT 1 FROM transfers WHERE transfers.id = consent_requests.transfer_id)",
                            )
                            .execute(&mut *conn)
                            .await?;
                            Ok::<_, sqlx::Error>(n)
                        }
                        .await;
                        match result {
                            Ok(r) => {
                                let n = r.rows_affected();
                                OpOutcome::Keep(Box::new(move |c| {
                                    let _ = reply.send(c.map(|_| n).map_err(unshare));
                                }))
                            }
                            Err(e) => undo_with(reply, e.into()),
                        }
                    }
                }
            }

            async fn purge_finished(conn: &mut Conn, pending: &mut Pending, before: Timestamp, limit: u32, mut audit: AuditEvent) -> Result<u64, StoreError> {
                let ids: Vec<String> = sqlx::query_scalar(
                    "SELECT id FROM transfers WHERE status IN ('delivered', 'failed', 'cancelled') AND updated_at < $1 \
                     ORDER BY updated_at LIMIT $2",
                )
                .bind(before.millis())
                .bind(i64::from(limit))
                .fetch_all(&mut *conn)
                .await?;
                for chunk in ids.chunks(ROWS_PER_INSERT) {
                    let list = value_groups(1, chunk.len(), 1);
                    for table in ["steps", "payloads"] {
                        let sql = format!("DELETE FROM {table} WHERE transfer_id IN {list}");
                        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                        for id in chunk {
                            q = q.bind(id);
                        }
                        q.execute(&mut *conn).await?;
                    }
                    let sql = format!("DELETE FROM transfers WHERE id IN {list}");
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for id in chunk {
                        q = q.bind(id);
                    }
                    q.execute(&mut *conn).await?;
                }
                let n = ids.len() as u64;
                if n > 0 {
                    audit.detail.insert("deleted".into(), n.to_string());
                    audit.detail.insert("ended_before".into(), before.rfc3339());
                    pending.append(vec![audit]);
                }
                Ok(n)
            }

            async fn prune_audit(conn: &mut Conn, pending: &mut Pending, base: &PrunedBase, at: Timestamp, mut audit: AuditEvent) -> Result<u64, StoreError> {
                // It deletes entries and may replace what stands in for the chain's end: no
                // other instance may sequence meanwhile. (Taken again at the end of the batch;
                // a transaction-scoped advisory lock may be taken twice.)
                if let Some(lock) = $audit_lock {
                    sqlx::query(lock).bind(AUDIT_LOCK_ID).execute(&mut *conn).await?;
                }
                let last = i64::try_from(base.size - 1).unwrap_or(i64::MAX);
                let hash: Option<Vec<u8>> = sqlx::query_scalar("SELECT hash FROM audit WHERE seq = $1")
                    .bind(last)
                    .fetch_optional(&mut *conn)
                    .await?;
                if hash.as_deref() != Some(base.head.as_slice()) {
                    return Err(StoreError::Corrupt {
                        what: "audit base",
                        detail: format!("entry {last} is not the one the pruning point was computed from"),
                    });
                }
                let deleted = sqlx::query("DELETE FROM audit WHERE seq < $1")
                    .bind(last + 1)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                sqlx::query("DELETE FROM audit_base").execute(&mut *conn).await?;
                sqlx::query("INSERT INTO audit_base (id, size, base, pruned_at) VALUES (1, $1, $2, $3)")
                    .bind(last + 1)
                    .bind(base.encode())
                    .bind(at.millis())
                    .execute(&mut *conn)
                    .await?;
                audit.detail.insert("pruned_before".into(), base.size.to_string());
                audit.detail.insert("deleted".into(), deleted.to_string());
                pending.append(vec![audit]);
                Ok(deleted)
            }

            async fn remember(conn: &mut Conn, issuer: &str, jti: &str, until: Timestamp) -> Result<bool, StoreError> {
                let replay = sqlx::query("INSERT INTO replay (issuer, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT (issuer, jti) DO NOTHING")
                    .bind(issuer)
                    .bind(jti)
                    .bind(until.millis())
                    .execute(&mut *conn)
                    .await?;
                Ok(replay.rows_affected() == 1)
            }

            async fn insert_check(
                conn: &mut Conn,
                pending: &mut Pending,
                c: NewCheck,
                events: Vec<AuditEvent>,
                attestation: Option<ReceiptSigner>,
            ) -> Result<u64, StoreError> {
                let n = events.len() as u64;
                if n == 0 {
                    return Err(StoreError::Corrupt {
                        what: "check",
                        detail: "a check is written with at least one audit entry".into(),
                    });
                }
                // The attestation names the leaf of the last entry: signed, with its leaf
                // stored, when the batch is sequenced.
                sqlx::query(
                    "INSERT INTO checks (id, submitter, issuer, jti, src, dst, question, purpose, subject_pseudonym, basis, \
                     guardian_pseudonym, consent_sha256, consent_version, consent_lang, consented_at, created_at, finished_at, \
                     outcome, answer, document_sha256, audit_leaf_index, attestation_sealed, attestation_key_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)",
                )
                .bind(&c.id)
                .bind(&c.submitter)
                .bind(&c.issuer)
                .bind(&c.jti)
                .bind(&c.src)
                .bind(&c.dst)
                .bind(&c.question)
                .bind(&c.purpose)
                .bind(&c.subject_pseudonym)
                .bind(c.basis.as_str())
                .bind(&c.guardian_pseudonym)
                .bind(c.consent.as_ref().map(|x| x.sha256.clone()))
                .bind(c.consent.as_ref().map(|x| x.version.clone()))
                .bind(c.consent.as_ref().map(|x| x.lang.code()))
                .bind(c.consented_at.millis())
                .bind(c.created_at.millis())
                .bind(c.finished_at.millis())
                .bind(&c.outcome)
                .bind(c.answer.map(i64::from))
                .bind(&c.document_sha256)
                .bind(None::<i64>)
                .bind(None::<Vec<u8>>)
                .bind(None::<String>)
                .execute(&mut *conn)
                .await?;
                let seqs = pending.append(events);
                let leaf = seqs.last().copied().unwrap_or_default();
                if let Some(sign) = attestation {
                    pending.sign(SignTarget::Check(c.id.clone()), leaf, sign);
                }
                Ok(leaf)
            }

            async fn insert(conn: &mut Conn, pending: &mut Pending, t: NewTransfer, events: Vec<AuditEvent>) -> Result<Inserted, StoreError> {
                if !remember(conn, &t.issuer, &t.jti, t.replay_until).await? {
                    return Ok(Inserted::Replay);
                }
                insert_row(conn, &t).await?;
                pending.append(events);
                Ok(Inserted::Accepted)
            }

            /// Every write of the OmaData flow. Refusals are decided before anything is written.
            async fn consent(conn: &mut Conn, pending: &mut Pending, op: ConsentOp, audit: Vec<AuditEvent>) -> Result<ConsentDone, StoreError> {
                let done = match op {
                    ConsentOp::Insert(r) => {
                        if !remember(conn, &r.issuer, &r.jti, r.replay_until).await? {
                            return Ok(ConsentDone::Refused);
                        }
                        sqlx::query(
                            "INSERT INTO consent_requests (id, eservice, src, redirect_uri, state_sha256, verifier_sealed, \
                             pending_sealed, status, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9)",
                        )
                        .bind(&r.id)
                        .bind(&r.eservice)
                        .bind(&r.src)
                        .bind(&r.redirect_uri)
                        .bind(&r.state_sha256)
                        .bind(&r.verifier_sealed)
                        .bind(&r.pending_sealed)
                        .bind(r.created_at.millis())
                        .bind(r.expires_at.millis())
                        .execute(&mut *conn)
                        .await?;
                        ConsentDone::Written
                    }
                    ConsentOp::Answer { id, answer, now } => {
                        let (status, transfer, code) = match *answer {
                            ConsentAnswer::Granted { transfer, code_sealed } => ("granted", Some(*transfer), Some(code_sealed)),
                            ConsentAnswer::Declined => ("declined", None, None),
                        };
                        let updated = sqlx::query(
                            "UPDATE consent_requests SET status = $1, answered_at = $2, transfer_id = $3, code_sealed = $4, \
                             pending_sealed = NULL, verifier_sealed = CASE WHEN $5 THEN verifier_sealed ELSE NULL END \
                             WHERE id = $6 AND status = 'pending'",
                        )
                        .bind(status)
                        .bind(now.millis())
                        .bind(transfer.as_ref().map(|t| t.id.clone()))
                        .bind(code)
                        .bind(transfer.is_some())
                        .bind(&id)
                        .execute(&mut *conn)
                        .await?;
                        if updated.rows_affected() == 0 {
                            return Ok(ConsentDone::Refused);
                        }
                        if let Some(t) = &transfer {
                            insert_row(conn, t).await?;
                        }
                        ConsentDone::Written
                    }
                    ConsentOp::TakeCode { transfer_id } => {
                        let code: Option<Option<Vec<u8>>> = sqlx::query_scalar("SELECT code_sealed FROM consent_requests WHERE transfer_id = $1")
                            .bind(&transfer_id)
                            .fetch_optional(&mut *conn)
                            .await?;
                        let code = code.flatten();
                        if code.is_some() {
                            sqlx::query("UPDATE consent_requests SET code_sealed = NULL WHERE transfer_id = $1")
                                .bind(&transfer_id)
                                .execute(&mut *conn)
                                .await?;
                        }
                        ConsentDone::Code(code)
                    }
                    ConsentOp::PutToken { transfer_id, token_sealed, now } => {
                        sqlx::query(
                            "UPDATE consent_requests SET token_sealed = $1, exchanged_at = $2, verifier_sealed = NULL WHERE transfer_id = $3",
                        )
                        .bind(&token_sealed)
                        .bind(now.millis())
                        .bind(&transfer_id)
                        .execute(&mut *conn)
                        .await?;
                        ConsentDone::Written
                    }
                };
                pending.append(audit);
                Ok(done)
            }

            /// The transfer's row and its first step.
            async fn insert_row(conn: &mut Conn, t: &NewTransfer) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO transfers (id, status, submitter, issuer, jti, src, dst, purpose, scope, subject_pseudonym, subject_sealed, \
                     attempts, due_at, created_at, updated_at, retry_from, \
                     basis, guardian_pseudonym, consent_sha256, consent_version, consent_lang, consented_at) \
                     VALUES ($1, 'accepted', $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $11, $11, $11, $11, $12, $13, $14, $15, $16, $17)",
                )
                .bind(&t.id)
                .bind(&t.submitter)
                .bind(&t.issuer)
                .bind(&t.jti)
                .bind(&t.src)
                .bind(&t.dst)
                .bind(&t.purpose)
                .bind(&t.scope)
                .bind(&t.subject_pseudonym)
                .bind(&t.subject_sealed)
                .bind(t.created_at.millis())
                .bind(t.basis.as_str())
                .bind(&t.guardian_pseudonym)
                .bind(t.consent.as_ref().map(|c| c.sha256.clone()))
                .bind(t.consent.as_ref().map(|c| c.version.clone()))
                .bind(t.consent.as_ref().map(|c| c.lang.code()))
                .bind(t.consented_at.millis())
                .execute(&mut *conn)
                .await?;
                add_steps(
                    conn,
                    &t.id,
                    vec![NewStep {
                        at: t.created_at,
                        step: "accepted".into(),
                        outcome: "ok".into(),
                        detail: None,
                    }],
                )
                .await?;
                Ok(())
            }

            #[allow(clippy::too_many_arguments)]
            async fn claim(
                conn: &mut Conn,
                owner: &str,
                now: Timestamp,
                lease_until: Timestamp,
                limit: u32,
                skip: &[String],
                expired_before: Timestamp,
            ) -> Result<Claimed, StoreError> {
                const TAKE: &str = "UPDATE transfers SET lease_owner = $1, due_at = $2, updated_at = $3, \
                     status = CASE WHEN status = 'accepted' THEN 'fetching' ELSE status END, \
                     interrupted = interrupted + CASE WHEN lease_owner IS NULL THEN 0 ELSE 1 END";
                // Peers that are down; a probe for each whose probe is due and not held by a live
                // claim: its earliest waiting transfer that no live claim holds, due or not (an
                // expired one is not a probe: its worker ends it without a call).
                let peers = sqlx::query("SELECT participant, next_probe_at, probe_owner, probe_until FROM peers WHERE down_since IS NOT NULL ORDER BY participant")
                    .fetch_all(&mut *conn)
                    .await?;
                let mut down = Vec::with_capacity(peers.len());
                let mut probe_due = Vec::new();
                for r in &peers {
                    let participant: String = r.try_get(0)?;
                    let next_probe_at: Option<i64> = r.try_get(1)?;
                    let probe_owner: Option<String> = r.try_get(2)?;
                    let probe_until: Option<i64> = r.try_get(3)?;
                    let due = next_probe_at.is_none_or(|t| t <= now.millis());
                    let free = probe_owner.is_none() || probe_until.is_none_or(|t| t <= now.millis());
                    if due && free {
                        probe_due.push(participant.clone());
                    }
                    down.push(participant);
                }
                let mut claimed: Vec<TransferRow> = Vec::new();
                for peer in probe_due {
                    if claimed.len() >= limit as usize {
                        break;
                    }
                    let sql = format!(
                        "{TAKE} WHERE id IN (SELECT id FROM transfers WHERE due_at IS NOT NULL AND (lease_owner IS NULL OR due_at <= $3) \
                         AND retry_from > $5 AND {} ORDER BY due_at LIMIT 1 {}) RETURNING {}",
                        WAITING_FOR.replace("$p", "$4"),
                        $claim_lock,
                        rows::transfer_columns!()
                    );
                    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(owner)
                        .bind(lease_until.millis())
                        .bind(now.millis())
                        .bind(&peer)
                        .bind(expired_before.millis())
                        .fetch_optional(&mut *conn)
                        .await?;
                    let Some(row) = row else { continue };
                    let row = rows::transfer_from_row(&row)?;
                    sqlx::query("UPDATE peers SET probe_owner = $1, probe_transfer = $2, probe_until = $3, updated_at = $4 WHERE participant = $5")
                        .bind(owner)
                        .bind(&row.id)
                        .bind(lease_until.millis())
                        .bind(now.millis())
                        .bind(&peer)
                        .execute(&mut *conn)
                        .await?;
                    claimed.push(row);
                }
                let remaining = limit.saturating_sub(u32::try_from(claimed.len()).unwrap_or(u32::MAX));
                if remaining > 0 {
                    let skipping = if skip.is_empty() {
                        String::new()
                    } else {
                        format!("AND NOT (status = 'delivering' AND dst IN {}) ", value_groups(1, skip.len(), 6))
                    };
                    let down_peers = "SELECT participant FROM peers WHERE down_since IS NOT NULL";
                    let sql = format!(
                        "{TAKE} WHERE id IN (SELECT id FROM transfers WHERE due_at IS NOT NULL AND due_at <= $3 {skipping}\
                         AND (retry_from <= $5 OR NOT ((status = 'delivering' AND dst IN ({down_peers})) \
                         OR (status IN ('accepted', 'fetching') AND src IN ({down_peers})))) \
                         ORDER BY due_at LIMIT $4 {}) RETURNING {}",
                        $claim_lock,
                        rows::transfer_columns!()
                    );
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(owner)
                        .bind(lease_until.millis())
                        .bind(now.millis())
                        .bind(i64::from(remaining))
                        .bind(expired_before.millis());
                    for dst in skip {
                        query = query.bind(dst);
                    }
                    let rows = query.fetch_all(&mut *conn).await?;
                    for r in &rows {
                        claimed.push(rows::transfer_from_row(r)?);
                    }
                }
                claimed.sort_by_key(|t| t.due_at);
                Ok(Claimed { transfers: claimed, down })
            }

            /// Applies a call's outcome to its peer's stored health (see [`PeerCall`]); says
            /// whether the peer went down or came back, with its backlog. When it came back,
            /// its waiting transfers are due at once.
            async fn record_call(conn: &mut Conn, owner: &str, transfer_id: &str, now: Timestamp, call: PeerCall) -> Result<Option<PeerNews>, StoreError> {
                let row = sqlx::query("SELECT participant, down_since, failures, probes, next_probe_at, probe_owner, probe_transfer FROM peers WHERE participant = $1")
                    .bind(&call.participant)
                    .fetch_optional(&mut *conn)
                    .await?;
                let (health, was_probe) = match &row {
                    None => (PeerHealth::default(), false),
                    Some(r) => {
                        let probe_owner: Option<String> = r.try_get(5)?;
                        let probe_transfer: Option<String> = r.try_get(6)?;
                        let probing = probe_owner.as_deref() == Some(owner) && probe_transfer.as_deref() == Some(transfer_id);
                        (rows::peer_from_row(r)?.health, probing)
                    }
                };
                let (next, change) = peer_health::after_call(&health, call.outcome, was_probe, &call.policy, now, call.jitter_millionths);
                if next != health || was_probe {
                    let count = |n: u32| i64::from(n);
                    sqlx::query(
                        "INSERT INTO peers (participant, down_since, failures, probes, next_probe_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (participant) DO UPDATE SET down_since = excluded.down_since, failures = excluded.failures, \
                         probes = excluded.probes, next_probe_at = excluded.next_probe_at, updated_at = excluded.updated_at, \
                         probe_owner = CASE WHEN $7 OR excluded.down_since IS NULL THEN NULL ELSE peers.probe_owner END, \
                         probe_transfer = CASE WHEN $7 OR excluded.down_since IS NULL THEN NULL ELSE peers.probe_transfer END, \
                         probe_until = CASE WHEN $7 OR excluded.down_since IS NULL THEN NULL ELSE peers.probe_until END",
                    )
                    .bind(&call.participant)
                    .bind(next.down_since.map(Timestamp::millis))
                    .bind(count(next.failures))
                    .bind(count(next.probes))
                    .bind(next.next_probe_at.map(Timestamp::millis))
                    .bind(now.millis())
                    .bind(was_probe)
                    .execute(&mut *conn)
                    .await?;
                }
                if change == Change::Unchanged {
                    return Ok(None);
                }
                if let Change::CameBack { .. } = change {
                    let sql = format!(
                        "UPDATE transfers SET due_at = $1 WHERE due_at > $1 AND lease_owner IS NULL AND {}",
                        WAITING_FOR.replace("$p", "$2")
                    );
                    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now.millis()).bind(&call.participant).execute(&mut *conn).await?;
                }
                let sql = format!("SELECT COUNT(*) FROM transfers WHERE due_at IS NOT NULL AND {}", WAITING_FOR.replace("$p", "$1"));
                let backlog: i64 = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&call.participant).fetch_one(&mut *conn).await?.try_get(0)?;
                Ok(Some(PeerNews {
                    participant: call.participant,
                    change,
                    backlog: u64::try_from(backlog).unwrap_or(0),
                }))
            }

            async fn apply(conn: &mut Conn, pending: &mut Pending, change: TransferChange) -> Result<Applying, StoreError> {
                let TransferChange {
                    id,
                    guard,
                    now,
                    status,
                    reason,
                    attempts,
                    due_at,
                    keep_lease,
                    retry_from,
                    steps,
                    audit,
                    payload,
                    source_sha256,
                    document_sha256,
                    report,
                    forget_subject,
                    interrupted_audited,
                    receipt,
                    peer,
                } = change;
                let (anyone, owner) = match &guard {
                    Guard::Lease(o) => (false, o.clone()),
                    Guard::Any => (true, String::new()),
                };
                let updated = sqlx::query(
                    "UPDATE transfers SET status = $1, reason = $2, attempts = $3, due_at = $4, \
                     lease_owner = CASE WHEN $5 THEN lease_owner ELSE NULL END, updated_at = $6, \
                     retry_from = COALESCE($7, retry_from), source_sha256 = COALESCE($8, source_sha256), \
                     document_sha256 = COALESCE($9, document_sha256), report = COALESCE($10, report), \
                     subject_sealed = CASE WHEN $11 THEN NULL ELSE subject_sealed END, \
                     interrupted = CASE WHEN $12 THEN 0 ELSE interrupted END \
                     WHERE id = $13 AND ($14 OR lease_owner = $15)",
                )
                .bind(status.as_str())
                .bind(reason.map(FailureReason::as_str))
                .bind(i64::from(attempts))
                .bind(due_at.map(Timestamp::millis))
                .bind(keep_lease)
                .bind(now.millis())
                .bind(retry_from.map(Timestamp::millis))
                .bind(source_sha256)
                .bind(document_sha256)
                .bind(report)
                .bind(forget_subject)
                .bind(interrupted_audited)
                .bind(&id)
                .bind(anyone)
                .bind(&owner)
                .execute(&mut *conn)
                .await?;
                if updated.rows_affected() == 0 {
                    return Ok(Applying::LeaseLost);
                }
                add_steps(conn, &id, steps).await?;
                if !matches!(status, Status::Accepted | Status::Fetching) {
                    // Past the fetch: an OmaData consent's code, token and verifier are no
                    // longer needed by anyone.
                    sqlx::query(
                        "UPDATE consent_requests SET code_sealed = NULL, token_sealed = NULL, verifier_sealed = NULL \
                         WHERE transfer_id = $1 AND (code_sealed IS NOT NULL OR token_sealed IS NOT NULL OR verifier_sealed IS NOT NULL)",
                    )
                    .bind(&id)
                    .execute(&mut *conn)
                    .await?;
                }
                match payload {
                    PayloadChange::Keep => {}
                    PayloadChange::Put(blob) => {
                        sqlx::query(
                            "INSERT INTO payloads (transfer_id, key_id, sealed, sha256, stored_at) VALUES ($1, $2, $3, $4, $5) \
                             ON CONFLICT (transfer_id) DO UPDATE SET key_id = excluded.key_id, sealed = excluded.sealed, \
                             sha256 = excluded.sha256, stored_at = excluded.stored_at",
                        )
                        .bind(&id)
                        .bind(&blob.key_id)
                        .bind(&blob.sealed)
                        .bind(&blob.sha256)
                        .bind(now.millis())
                        .execute(&mut *conn)
                        .await?;
                    }
                    PayloadChange::Delete => {
                        sqlx::query("DELETE FROM payloads WHERE transfer_id = $1").bind(&id).execute(&mut *conn).await?;
                    }
                }
                let peer = match peer {
                    Some(call) => record_call(conn, &owner, &id, now, call).await?,
                    None => None,
                };
                // The receipt names the leaf of the change's last audit entry: signed, and
                // stored with the state, when the batch is sequenced.
                let audit_seqs = pending.append(audit);
                let receipt = match (receipt, audit_seqs.last()) {
                    (Some(sign), Some(&leaf)) => Some(pending.sign(SignTarget::Transfer(id.clone()), leaf, sign)),
                    _ => None,
                };
                Ok(Applying::Done {
                    audit_seqs,
                    receipt,
                    peer,
                })
            }

            /// Appends steps after the transfer's last one, in one statement. (Both engines compute
            /// the `SELECT` before inserting: PostgreSQL from its snapshot, SQLite through a
            /// temporary table because the statement reads the table it writes.)
            async fn add_steps(conn: &mut Conn, id: &str, steps: Vec<NewStep>) -> Result<(), StoreError> {
                if steps.is_empty() {
                    return Ok(());
                }
                let sql = format!(
                    "INSERT INTO steps (transfer_id, seq, at, step, outcome, detail) \
                     SELECT $1, last.seq + v.column1, v.column2, v.column3, v.column4, v.column5 \
                     FROM (SELECT COALESCE(MAX(seq), -1) AS seq FROM steps WHERE transfer_id = $1) AS last, \
                     (VALUES {}) AS v",
                    value_groups(steps.len(), 5, 2)
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id);
                for (k, s) in (1i64..).zip(steps) {
                    q = q.bind(k).bind(s.at.millis()).bind(s.step).bind(s.outcome).bind(s.detail);
                }
                q.execute(&mut *conn).await?;
                Ok(())
            }
        }
    };
}

backend!(
    sqlite,
    sqlx::Sqlite,
    SqlitePool,
    // Take the write lock at once: a deferred transaction that reads first cannot wait for a
    // writer holding the lock (SQLite answers "database is locked" without the busy timeout).
    begin = "BEGIN IMMEDIATE",
    claim_lock = "",
    audit_lock = None::<&str>
);
backend!(
    postgres,
    sqlx::Postgres,
    PgPool,
    begin = "BEGIN",
    claim_lock = "FOR UPDATE SKIP LOCKED",
    audit_lock = Some("SELECT pg_advisory_xact_lock($1)")
);

/// One operation's copy of an error shared by its whole batch (a rollback, a failed commit):
/// the transaction did not happen, whatever the cause.
fn unshare(e: Arc<StoreError>) -> StoreError {
    match Arc::try_unwrap(e) {
        Ok(e) => e,
        Err(shared) => match &*shared {
            StoreError::RolledBack(m) => StoreError::RolledBack(m.clone()),
            other => StoreError::RolledBack(format!("the commit failed: {other}")),
        },
    }
}

fn undo_with<T: Send + 'static>(
    reply: oneshot::Sender<Result<T, StoreError>>,
    e: StoreError,
) -> OpOutcome {
    let text = e.to_string();
    OpOutcome::Failed(
        Box::new(move |_| {
            let _ = reply.send(Err(e));
        }),
        text,
    )
}

/// Answers every operation of a batch that could not start with the same error.
fn fail_all(ops: Vec<Op>, e: StoreError) {
    let e = Arc::new(e);
    for op in ops {
        fail_one(op)(Err(e.clone()));
    }
}

fn fail_one(op: Op) -> Finish {
    fn send<T: Send + 'static>(reply: oneshot::Sender<Result<T, StoreError>>) -> Finish {
        Box::new(move |r: Result<&Sequenced, Arc<StoreError>>| {
            let e = r.err().map(unshare).unwrap_or(StoreError::WriterStopped);
            let _ = reply.send(Err(e));
        })
    }
    match op {
        Op::Insert(_, _, r) => send(r),
        Op::Audit(_, r) => send(r),
        Op::Claim { reply, .. } => send(reply),
        Op::Apply(_, r) => send(r),
        Op::Modify(_, job) => Box::new(move |r: Result<&Sequenced, Arc<StoreError>>| {
            job.fail(r.err().map(unshare).unwrap_or(StoreError::WriterStopped));
        }),
        Op::Checkpoint(_, r) => send(r),
        Op::Remember { reply, .. } => send(reply),
        Op::PurgeReplay(_, r) => send(r),
        Op::PruneAudit { reply, .. } => send(reply),
        Op::PurgeFinished { reply, .. } => send(reply),
        Op::InsertCheck { reply, .. } => send(reply),
        Op::Consent(_, _, r) => send(r),
    }
}

#[cfg(test)]
mod tests;

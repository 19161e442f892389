//! Operator commands that run outside the server: `convert`, `audit verify`, `audit export`,
//! `audit verify-proof`.
//!
//! Owns: reading the store or files for these commands and printing their results. Judgements
//! are the pure modules' (`formats`, `audit`).

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use serde_json::Value;

use crate::config::{Config, audit_origin};
use crate::store::Store;
use crate::trail::{ProofCheck, ProofDocument, check_proof};
use siirto_core::audit::witness::{CosignatureVerifier, count_cosigners};
use siirto_core::audit::{AuditPublicKey, AuditSigningKey, CheckpointVerifier};
use siirto_core::clock::{Timestamp, hex};
use siirto_core::formats::{self, Format, koski};
use siirto_core::record::StudentRecord;
use siirto_core::scope::Scope;
use siirto_core::student_id::StudentId;
use siirto_xsd::dom;

/// Why a command could not do its work (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("{0}")]
    Usage(String),
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Other(String),
}

fn read(path: &Path) -> Result<Vec<u8>, ToolError> {
    std::fs::read(path).map_err(|e| ToolError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// `siirto sign`: `file` signed with `[documents]`, on stdout. Exit 0 signed; 1 the document
/// cannot be signed; an error (exit 2) when there is no signing key or a file is unreadable.
pub fn sign(config: &Config, file: &Path) -> Result<ExitCode, ToolError> {
    let keys =
        crate::config::DocumentKeys::load(config).map_err(|(path, message)| ToolError::File {
            path: path.display().to_string(),
            message,
        })?;
    let Some(signer) = keys.signer else {
        return Err(ToolError::Usage(format!(
            "{}: [documents] signing_cert and signing_key are not set",
            config.source.display()
        )));
    };
    let bytes = read(file)?;
    let limits = siirto_core::pipeline::xml_limits(Some(&config.limits));
    match siirto_core::dsig::sign(&bytes, &signer, &limits) {
        Ok(signed) => {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            out.write_all(&signed)
                .and_then(|()| out.flush())
                .map_err(|e| ToolError::Other(format!("writing the signed document: {e}")))?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            Ok(ExitCode::from(1))
        }
    }
}

/// `siirto verify-signature`: exit 0 valid, 1 not (the reason on stdout), an error (exit 2)
/// when a file cannot be read.
pub fn verify_signature(
    certs: &[std::path::PathBuf],
    allow_sha1: bool,
    file: &Path,
) -> Result<ExitCode, ToolError> {
    let mut pinned = Vec::new();
    for path in certs {
        pinned.extend(
            siirto_core::dsig::certificates_from_pem(&read(path)?).map_err(|message| {
                ToolError::File {
                    path: path.display().to_string(),
                    message,
                }
            })?,
        );
    }
    let bytes = read(file)?;
    let trust = if pinned.is_empty() {
        siirto_core::dsig::Trust::Embedded
    } else {
        siirto_core::dsig::Trust::Pinned(&pinned)
    };
    let policy = siirto_core::dsig::Policy { trust, allow_sha1 };
    match siirto_core::dsig::verify(&bytes, policy, &siirto_xsd::Limits::default()) {
        Ok(v) => {
            let whose = if pinned.is_empty() {
                "the certificate in the document; no --cert given, so who signed it is not checked"
            } else {
                "a --cert signer"
            };
            println!(
                "{}: valid ({}, digest {}; key of {whose})",
                file.display(),
                v.signature_method,
                v.digest_method
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!(
                "{}: invalid ({}): {}",
                file.display(),
                e.reason.code(),
                e.detail
            );
            Ok(ExitCode::from(1))
        }
    }
}

/// The public half of the configured audit key, for verification.
pub fn audit_public_key(config: &Config) -> Result<AuditPublicKey, ToolError> {
    let pem = read(&config.gateway.audit_key)?;
    let key = AuditSigningKey::from_pkcs8_pem(&String::from_utf8_lossy(&pem)).map_err(|e| {
        ToolError::File {
            path: config.gateway.audit_key.display().to_string(),
            message: e.to_string(),
        }
    })?;
    Ok(key.public_key())
}

/// `siirto convert`: the document on stdout, the report on stderr. An XML source is validated
/// against its schema first; a KOSKI (JSON) source is read strictly within `[limits.json]`.
pub fn convert(
    config: &Config,
    from: Format,
    to: Format,
    scope: Option<&str>,
    subject: Option<&str>,
    file: &Path,
) -> Result<ExitCode, ToolError> {
    if !to.is_destination() {
        return Err(ToolError::Usage(format!(
            "--to {to}: {to} is a source format; write siirto-v1, virta or elmo"
        )));
    }
    let bytes = read(file)?;
    let scope = match scope {
        Some(s) => Scope::parse(s).map_err(|e| ToolError::Usage(format!("--scope: {e}")))?,
        None => Scope::all(),
    };
    let subject = subject
        .map(|s| StudentId::parse(s).map_err(|e| ToolError::Usage(format!("--subject: {e}"))))
        .transpose()?;
    let limits = siirto_core::pipeline::xml_limits(Some(&config.limits));
    let schemas = siirto_core::pipeline::Schemas::load(&config.schemas, [from, to])
        .map_err(|e| ToolError::Other(e.to_string()))?;
    let read = if from == Format::Koski {
        read_koski(&bytes, config, subject, file)?
    } else {
        read_xml(&bytes, &schemas, &limits, from, subject, file)?
    };
    let (record, read_report) = match read {
        Ok(read) => read,
        Err(code) => return Ok(code),
    };
    let context = formats::WriteContext::new(siirto_core::clock::Clock::now(
        &siirto_core::clock::SystemClock,
    ));
    let conversion = match formats::convert_record(from, to, record, read_report, scope, &context) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("conversion failed: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    if let Some(schema) = schemas.get(to)
        && let Err(failure) = schema.validate(&conversion.document, &limits)
    {
        eprintln!(
            "converted document is not valid {to} ({}):\n{failure}",
            failure.code()
        );
        return Ok(ExitCode::from(1));
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&conversion.document);
    let report = serde_json::to_string_pretty(&conversion.report).unwrap_or_default();
    eprintln!("{report}");
    Ok(ExitCode::SUCCESS)
}

/// A record read for `convert`, or the exit code when the document is invalid (the reason is
/// on stderr already).
type ReadOutcome = Result<(StudentRecord, formats::ReadReport), ExitCode>;

fn read_xml(
    bytes: &[u8],
    schemas: &siirto_core::pipeline::Schemas,
    limits: &siirto_xsd::Limits,
    from: Format,
    subject: Option<StudentId>,
    file: &Path,
) -> Result<ReadOutcome, ToolError> {
    if let Some(schema) = schemas.get(from)
        && let Err(failure) = schema.validate(bytes, limits)
    {
        eprintln!(
            "{}: not valid {from} ({}):\n{failure}",
            file.display(),
            failure.code()
        );
        return Ok(Err(ExitCode::from(1)));
    }
    let root = dom::parse(bytes, limits).map_err(|e| ToolError::File {
        path: file.display().to_string(),
        message: e.to_string(),
    })?;
    let subject = match subject {
        Some(s) => s,
        None => formats::document_subject(from, &root)
            .map_err(|e| ToolError::Usage(format!("{e}; name the student with --subject ID")))?,
    };
    Ok(read_outcome(formats::read_with_report(
        from, &root, &subject,
    )))
}

fn read_koski(
    bytes: &[u8],
    config: &Config,
    subject: Option<StudentId>,
    file: &Path,
) -> Result<ReadOutcome, ToolError> {
    let json_limits = siirto_core::pipeline::json_limits(Some(&config.limits));
    let (oppija, mut report) = match koski::parse(bytes, &json_limits) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("{}: not valid koski ({}): {e}", file.display(), e.code());
            return Ok(Err(ExitCode::from(1)));
        }
    };
    let subject = match subject {
        Some(s) => s,
        None => koski::document_subject(&oppija)
            .map_err(|e| ToolError::Usage(format!("{e}; name the student with --subject ID")))?,
    };
    Ok(read_outcome(
        koski::read(&oppija, &subject, &mut report).map(|record| (record, report)),
    ))
}

fn read_outcome(
    read: Result<(StudentRecord, formats::ReadReport), formats::FormatError>,
) -> ReadOutcome {
    read.map_err(|e| {
        eprintln!("conversion failed: {e}");
        ExitCode::from(1)
    })
}

/// Rows read from the store per round trip while streaming the log.
const PAGE: u32 = 10_000;

/// `siirto transfers retry`: retries the failed transfers `filter` names in the configured
/// database, as the actor `cli`, and prints each one; the running gateway picks them up.
pub async fn transfers_retry(
    config: &Config,
    filter: &crate::retry::RetryFilter,
) -> Result<ExitCode, ToolError> {
    use siirto_core::clock::{Clock, SystemClock, SystemRandom};
    let store = Store::connect(&config.gateway.database_url).await?;
    let outcome = crate::retry::bulk(
        &store,
        filter,
        config.delivery.retry_policy(),
        std::sync::Arc::new(SystemRandom::new()),
        "cli",
        SystemClock.now(),
        "cli",
    )
    .await;
    store.close().await;
    let outcome = outcome?;
    for id in &outcome.retried {
        println!("retried {id}");
    }
    for (id, code) in &outcome.skipped {
        println!("skipped {id}: {code}");
    }
    println!(
        "{} transfer(s) retried, {} skipped{}",
        outcome.retried.len(),
        outcome.skipped.len(),
        if outcome.more {
            "; more match: run again"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// How `siirto transfers list` prints each transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    /// One line a person reads: times in Helsinki.
    Text,
    /// [`crate::listing::CSV_HEADER`] and a row per transfer.
    Csv,
    /// One JSON object per line ([`crate::listing::json_row`]).
    Jsonl,
}

/// `siirto transfers list`: the transfers `filter` takes, newest first, every page. With
/// `subject` (a henkilötunnus or learner number), only that person's, found by the keyed
/// pseudonym; that lookup needs a `reason` and is audited as `operator.subject_lookup`
/// (actor `cli`) before anything is printed. The identifier itself is printed, logged and
/// audited nowhere.
pub async fn transfers_list(
    config: &Config,
    mut filter: crate::store::TransferFilter,
    subject: Option<&str>,
    reason: Option<&str>,
    format: ListFormat,
) -> Result<ExitCode, ToolError> {
    use siirto_core::clock::{Clock, SystemClock};
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    let lookup = match (subject, reason) {
        (Some(id), Some(reason)) => {
            let id = StudentId::parse(id.trim()).map_err(|e| {
                ToolError::Usage(format!(
                    "--subject: not a henkilötunnus or a learner number ({e})"
                ))
            })?;
            let pseudonyms = crate::state::load_pseudonymizer(config)
                .map_err(|e| ToolError::Other(e.to_string()))?;
            let pseudonym = pseudonyms.pseudonym(&id);
            filter.subject = Some(pseudonym.as_str().to_owned());
            Some((pseudonym, reason))
        }
        (Some(_), None) => {
            return Err(ToolError::Usage(
                "--reason is required with --subject: say why the person is looked up (it is kept in the audit log)".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(ToolError::Usage("--reason goes with --subject".into()));
        }
        (None, None) => None,
    };
    let store = Store::connect(&config.gateway.database_url).await?;
    let listed = list_all(&store, filter, lookup, SystemClock.now(), format).await;
    store.close().await;
    let count = listed?;
    if format == ListFormat::Text {
        eprintln!("{count} transfer(s)");
    }
    Ok(ExitCode::SUCCESS)
}

/// Audits the lookup (when there is one), then prints every page; returns how many.
async fn list_all(
    store: &Store,
    mut filter: crate::store::TransferFilter,
    lookup: Option<(siirto_core::audit::Pseudonym, &str)>,
    now: Timestamp,
    format: ListFormat,
) -> Result<usize, ToolError> {
    use crate::listing;
    if let Some((pseudonym, reason)) = lookup {
        let mut event =
            siirto_core::audit::AuditEvent::new(now, "cli", "operator.subject_lookup", "ok");
        event.subject = Some(pseudonym);
        event.detail.insert("reason".into(), reason.to_owned());
        event.detail.insert("via".into(), "cli".into());
        store.append_audit(vec![event]).await?;
    }
    filter.limit = crate::store::MAX_TRANSFER_PAGE;
    filter.after = None;
    let mut out = std::io::stdout().lock();
    if format == ListFormat::Csv {
        let _ = writeln!(out, "{}", listing::CSV_HEADER);
    }
    let mut count = 0;
    loop {
        let page = store.transfers_query(&filter).await?;
        for t in &page.transfers {
            let line = match format {
                ListFormat::Csv => listing::csv_row(t),
                ListFormat::Jsonl => listing::json_row(t).to_string(),
                ListFormat::Text => text_row(t),
            };
            if writeln!(out, "{line}").is_err() {
                // stdout closed (e.g. piped into `head`): stop quietly.
                return Ok(count);
            }
            count += 1;
        }
        match page.next_cursor {
            Some(c) => filter.after = Some(c),
            None => return Ok(count),
        }
    }
}

/// A listed transfer as one line a person reads.
fn text_row(t: &crate::store::ListedTransfer) -> String {
    let row = &t.row;
    let mut line = format!(
        "{}  {}{}  {} -> {}  {}  {}  attempts {}",
        row.id,
        row.status,
        row.reason.map(|r| format!(" ({r})")).unwrap_or_default(),
        row.src,
        row.dst,
        row.purpose,
        row.created_at.helsinki(),
        row.attempts
    );
    if let Some(at) = crate::listing::next_attempt(t) {
        line.push_str(&format!("  next {}", at.helsinki()));
    }
    if let Some(e) = &t.last_error {
        line.push_str(&format!("  last error: {e}"));
    }
    line
}

/// `siirto transfers show ID`: the transfer as `GET /v1/transfers/{id}` shows it (without its
/// receipt, which names the student), with `audit_entries`: every audit entry of it. Exit 1
/// when there is no such transfer.
pub async fn transfers_show(config: &Config, id: &str) -> Result<ExitCode, ToolError> {
    let store = Store::connect(&config.gateway.database_url).await?;
    let shown = show_one(&store, id).await;
    store.close().await;
    match shown? {
        Some(view) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&view).unwrap_or_default()
            );
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!("no transfer {id} in the database");
            Ok(ExitCode::from(1))
        }
    }
}

async fn show_one(store: &Store, id: &str) -> Result<Option<Value>, ToolError> {
    let Some(row) = store.transfer(id).await? else {
        return Ok(None);
    };
    let steps = store.steps(id).await?;
    let mut view = crate::http::transfers::transfer_json(&row, &steps, None);
    let mut entries = Vec::new();
    let mut filter = crate::store::AuditFilter {
        transfer: Some(id.to_owned()),
        limit: 1000,
        ..crate::store::AuditFilter::default()
    };
    loop {
        let page = store.audit_query(&filter).await?;
        entries.extend(page.entries.iter().map(siirto_core::audit::entry_json));
        match page.next_cursor {
            Some(c) => filter.after = Some(c),
            None => break,
        }
    }
    if let Some(map) = view.as_object_mut() {
        map.remove("links");
        map.insert("audit_entries".into(), Value::Array(entries));
    }
    Ok(Some(view))
}

/// `siirto retention [--dry-run]`: applies `[retention] transfers` and `[retention] audit` to the configured database
/// now (actor `cli`), or says what it would delete.
pub async fn retention(config: &Config, dry_run: bool) -> Result<ExitCode, ToolError> {
    use siirto_core::clock::{Clock, SystemClock};
    let now = SystemClock.now();
    let before = crate::state::retention_cutoff(config, now);
    let store = Store::connect(&config.gateway.database_url).await?;
    let kept = siirto_core::config::format_duration(config.retention.transfers);
    let result = if dry_run {
        store.finished_before(before).await.map(|(n, oldest, newest)| {
            match (oldest, newest) {
                (Some(o), Some(w)) => println!(
                    "{n} finished transfer(s) ended before {before} ([retention] transfers = {kept}) would be deleted: ended {o} to {w}"
                ),
                _ => println!(
                    "no finished transfer ended before {before} ([retention] transfers = {kept})"
                ),
            }
        })
    } else {
        crate::state::apply_retention(&store, config, now, "cli")
            .await
            .map(|n| {
                println!(
                    "{n} finished transfer(s) ended before {before} deleted ([retention] transfers = {kept})"
                )
            })
    };
    let audit = match result {
        Ok(()) => audit_retention(config, &store, now, dry_run).await,
        Err(e) => Err(e.into()),
    };
    store.close().await;
    audit?;
    Ok(ExitCode::SUCCESS)
}

/// The `[retention] audit` half of `siirto retention`.
async fn audit_retention(
    config: &Config,
    store: &Store,
    now: siirto_core::clock::Timestamp,
    dry_run: bool,
) -> Result<(), ToolError> {
    let Some(keep) = config.retention.audit else {
        println!("audit entries are kept ([retention] audit is not set)");
        return Ok(());
    };
    let keep = siirto_core::config::format_duration(keep);
    let key = checkpoint_verifier(config)?;
    let done = crate::state::apply_audit_retention(store, config, &key, now, "cli", dry_run)
        .await
        .map_err(|e| ToolError::Other(format!("[retention] audit: {e}")))?;
    match done {
        None => println!(
            "no checkpointed range of audit entries is older than [retention] audit = {keep}"
        ),
        Some(p) if dry_run => println!(
            "{} audit entr(y/ies) before the checkpoint of size {} would be pruned ([retention] audit = {keep})",
            p.entries, p.before
        ),
        Some(p) => println!(
            "{} audit entr(y/ies) before the checkpoint of size {} pruned ([retention] audit = {keep}); the checkpoints and the hashes later proofs need are kept",
            p.entries, p.before
        ),
    }
    Ok(())
}

/// The verifier of the configured log's checkpoints: the audit key and its predecessors.
fn checkpoint_verifier(config: &Config) -> Result<CheckpointVerifier, ToolError> {
    let key = audit_public_key(config)?;
    let history =
        crate::config::previous_audit_keys(config).map_err(|(path, message)| ToolError::File {
            path: path.display().to_string(),
            message,
        })?;
    Ok(CheckpointVerifier::new(key, &audit_origin(config))
        .map_err(|e| ToolError::Other(e.to_string()))?
        .with_previous_keys(history.public_keys))
}

/// `siirto audit verify`: exit 0 only when the whole log and every checkpoint verify; otherwise
/// prints what is wrong, naming the first bad entry, and exits 1.
pub async fn audit_verify(config: &Config) -> Result<ExitCode, ToolError> {
    let verifier_key = checkpoint_verifier(config)?;
    let store = Store::connect(&config.gateway.database_url).await?;
    let outcome = crate::trail::verify_store(&store, &verifier_key).await?;
    store.close().await;
    match outcome.result {
        Ok(summary) => {
            let pruned = match summary.pruned_before {
                0 => String::new(),
                n => format!(" (entries before {n} pruned by [retention] audit)"),
            };
            println!(
                "audit log verifies: {} entries{pruned}, root {}, {} checkpoint(s), {} entries after the latest checkpoint",
                summary.entries,
                siirto_core::clock::hex(&summary.root),
                summary.checkpoints,
                summary.unanchored
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("audit log does NOT verify: {e}");
            if let Some(seq) = e.first_bad_seq() {
                println!("first bad entry: {seq}");
            }
            println!(
                "({} entries checked before it; {} checkpoint(s) stored)",
                outcome.checked, outcome.checkpoints
            );
            Ok(ExitCode::from(1))
        }
    }
}

/// Reads a checkpoint file: the signed note itself, or the JSON answer of
/// `GET /v1/audit/checkpoint` (its `note`).
fn checkpoint_note(path: &Path) -> Result<String, ToolError> {
    let text = String::from_utf8(read(path)?).map_err(|_| ToolError::File {
        path: path.display().to_string(),
        message: "not UTF-8 text".into(),
    })?;
    if text.trim_start().starts_with('{') {
        let v: Value = serde_json::from_str(&text).map_err(|e| ToolError::File {
            path: path.display().to_string(),
            message: format!("not JSON: {e}"),
        })?;
        return v
            .get("note")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ToolError::File {
                path: path.display().to_string(),
                message: "JSON without a `note` (the signed checkpoint)".into(),
            });
    }
    Ok(text)
}

/// Reads the public audit keys: SubjectPublicKeyInfo PEM, a JWK, a JWKS (the current key first,
/// then earlier ones, as `GET /v1/audit/jwks.json` gives them), the answer of
/// `GET /v1/audit/public-key`, or a signed-note verifier key.
pub fn read_public_keys(path: &Path) -> Result<Vec<AuditPublicKey>, ToolError> {
    let bad = |message: String| ToolError::File {
        path: path.display().to_string(),
        message,
    };
    let text = String::from_utf8(read(path)?).map_err(|_| bad("not UTF-8 text".into()))?;
    let trimmed = text.trim();
    if trimmed.starts_with("-----BEGIN") {
        return AuditPublicKey::from_spki_pem(trimmed)
            .map(|k| vec![k])
            .map_err(|e| bad(e.to_string()));
    }
    if trimmed.starts_with('{') {
        let v: Value = serde_json::from_str(trimmed).map_err(|e| bad(format!("not JSON: {e}")))?;
        let set = v.get("jwks").unwrap_or(&v);
        let jwks: Vec<Value> = match set.get("keys").and_then(Value::as_array) {
            Some(keys) if !keys.is_empty() => keys.clone(),
            Some(_) => return Err(bad("the JWKS has no key".into())),
            None => vec![v.get("jwk").cloned().unwrap_or(v.clone())],
        };
        return jwks
            .iter()
            .map(|jwk| AuditPublicKey::from_jwk(jwk).map_err(|e| bad(e.to_string())))
            .collect();
    }
    AuditPublicKey::from_note_verifier_key(trimmed)
        .map(|(_, key)| vec![key])
        .map_err(|e| bad(e.to_string()))
}

/// `siirto attestation verify FILE --public-key F`: checks a check's attestation offline
/// against the gateway's audit public key (PEM or JWKS, the current and earlier keys). FILE
/// holds the JWS, or the JSON answer of `POST /v1/checks` with its `attestation`. Prints what
/// it states, without `sub` (the student). Exit 0 valid, 1 not.
pub fn attestation_verify(file: &Path, public_key: &Path) -> Result<ExitCode, ToolError> {
    let keys = read_public_keys(public_key)?;
    let bad = |message: String| ToolError::File {
        path: file.display().to_string(),
        message,
    };
    let text = String::from_utf8(read(file)?).map_err(|_| bad("not UTF-8 text".into()))?;
    let text = text.trim();
    let token = if text.starts_with('{') {
        let json: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
        json.get("attestation")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| bad("a JSON object without an `attestation` string".into()))?
    } else {
        text.to_owned()
    };
    match siirto_core::attestation::verify_attestation_with(&token, &keys) {
        Ok(a) => {
            let c = a.claims();
            println!("attestation verifies (kid {})", a.key_id());
            println!("  question          {}", c.question);
            println!("  answer            {}", c.answer);
            println!("  iss               {}", c.issuer);
            println!("  aud (asked by)    {}", c.audience);
            println!("  src (answered by) {}", c.source);
            println!("  check id (jti)    {}", c.check_id);
            println!("  iat               {}", c.issued_at.rfc3339());
            println!("  basis             {}", c.basis.as_str());
            println!("  authorization_jti {}", c.authorization_jti);
            println!("  document_sha256   {}", hex(&c.document_sha256));
            println!("  audit_leaf_index  {}", c.audit_leaf_index);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("attestation does NOT verify: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// `siirto audit verify-proof`: checks an inclusion or consistency proof (the JSON of
/// `GET /v1/audit/proof/...`) against a checkpoint signed by the audit key, offline. Exit 0
/// when it proves what it says, 1 when it does not (or the checkpoint's signature fails), 2
/// when a file is unusable.
/// `--witness-key` (verifier keys, or files holding one) and `--quorum`.
#[derive(Debug, Default)]
pub struct WitnessQuorum {
    pub keys: Vec<String>,
    pub quorum: Option<usize>,
}

impl WitnessQuorum {
    fn verifiers(&self) -> Result<Vec<CosignatureVerifier>, ToolError> {
        self.keys
            .iter()
            .map(|k| {
                let text = if Path::new(k).is_file() {
                    String::from_utf8_lossy(&read(Path::new(k))?)
                        .trim()
                        .to_owned()
                } else {
                    k.clone()
                };
                CosignatureVerifier::from_verifier_key(&text)
                    .map_err(|e| ToolError::Usage(format!("--witness-key {k}: {e}")))
            })
            .collect()
    }
}

pub fn audit_verify_proof(
    checkpoint: &Path,
    public_key: &Path,
    proof: &Path,
    old_checkpoint: Option<&Path>,
    witnesses: &WitnessQuorum,
) -> Result<ExitCode, ToolError> {
    let witness_verifiers = witnesses.verifiers()?;
    let quorum = witnesses.quorum.unwrap_or(witness_verifiers.len());
    if quorum > witness_verifiers.len() {
        return Err(ToolError::Usage(format!(
            "--quorum {quorum} is more than the {} --witness-key given",
            witness_verifiers.len()
        )));
    }
    let mut keys = read_public_keys(public_key)?.into_iter();
    let Some(key) = keys.next() else {
        return Err(ToolError::Usage(format!(
            "{}: no public key",
            public_key.display()
        )));
    };
    let note = checkpoint_note(checkpoint)?;
    // The origin is the note's first line; the keys are what is trusted.
    let origin = note.lines().next().unwrap_or_default().to_owned();
    let verifier = match CheckpointVerifier::new(key, &origin) {
        Ok(v) => v.with_previous_keys(keys),
        Err(e) => {
            println!("checkpoint does NOT verify: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let signed = match verifier.verify(&note) {
        Ok(s) => s,
        Err(e) => {
            println!("checkpoint does NOT verify: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    if !witness_verifiers.is_empty() {
        match count_cosigners(&note, &witness_verifiers) {
            Ok(n) if n >= quorum => {
                println!(
                    "cosigned by {n} of the {} witnesses given (quorum {quorum})",
                    witness_verifiers.len()
                );
            }
            Ok(n) => {
                println!(
                    "checkpoint is NOT cosigned by a quorum: {n} of the {} witnesses given, {quorum} needed",
                    witness_verifiers.len()
                );
                return Ok(ExitCode::from(1));
            }
            Err(e) => {
                println!("checkpoint's cosignatures do NOT verify: {e}");
                return Ok(ExitCode::from(1));
            }
        }
    }
    let older = match old_checkpoint {
        None => None,
        Some(path) => match verifier.verify(&checkpoint_note(path)?) {
            Ok(s) => Some(s),
            Err(e) => {
                println!("older checkpoint does NOT verify: {e}");
                return Ok(ExitCode::from(1));
            }
        },
    };
    let proof_text = read(proof)?;
    let json: Value = serde_json::from_slice(&proof_text).map_err(|e| ToolError::File {
        path: proof.display().to_string(),
        message: format!("not JSON: {e}"),
    })?;
    let doc = ProofDocument::from_json(&json).map_err(|e| ToolError::File {
        path: proof.display().to_string(),
        message: e.to_string(),
    })?;
    let cp = signed.checkpoint();
    println!(
        "checkpoint verifies: {} tree size {} root {} signed {}",
        cp.origin,
        cp.tree_size,
        siirto_core::clock::hex(&cp.root_hash),
        cp.time
    );
    match check_proof(&doc, cp, older.as_ref().map(|o| o.checkpoint())) {
        Ok(ProofCheck::Included {
            leaf_index, entry, ..
        }) => {
            println!(
                "inclusion proof verifies: entry {leaf_index} is in the checkpointed log of {} entries",
                cp.tree_size
            );
            if let Some(e) = entry {
                let ev = &e.event;
                println!(
                    "entry {}: {} {} {} by {}{}{}",
                    e.seq,
                    ev.at,
                    ev.action,
                    ev.outcome,
                    ev.actor,
                    ev.transfer_id
                        .as_deref()
                        .map(|t| format!(", transfer {t}"))
                        .unwrap_or_default(),
                    ev.document_sha256
                        .as_ref()
                        .map(|h| format!(", document sha256 {}", siirto_core::clock::hex(h)))
                        .unwrap_or_default(),
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Ok(ProofCheck::Consistent {
            from,
            from_root,
            to,
            anchored,
        }) => {
            println!(
                "consistency proof verifies: the log of {from} entries with root {} is a prefix of the checkpointed log of {to} entries{}",
                siirto_core::clock::hex(&from_root),
                if anchored {
                    " (the older checkpoint vouches for that root)"
                } else {
                    " (compare that root with a checkpoint you hold, or pass --old-checkpoint)"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("proof does NOT verify: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// `siirto audit export`: every entry (since a time) as one JSON object per line.
pub async fn audit_export(config: &Config, since: Option<&str>) -> Result<ExitCode, ToolError> {
    let since =
        match since {
            Some(s) => Some(Timestamp::parse_rfc3339(s).ok_or_else(|| {
                ToolError::Usage(format!("--since: `{s}` is not an RFC 3339 time"))
            })?),
            None => None,
        };
    let store = Store::connect(&config.gateway.database_url).await?;
    let mut out = std::io::stdout().lock();
    let mut from = 0u64;
    loop {
        let page = store.audit_range(from, PAGE).await?;
        let Some(last) = page.last().map(|e| e.seq) else {
            break;
        };
        for entry in page
            .iter()
            .filter(|e| since.is_none_or(|s| e.event.at >= s))
        {
            let line = siirto_core::audit::entry_json(entry);
            if writeln!(out, "{line}").is_err() {
                // stdout closed (e.g. piped into `head`): stop quietly.
                return Ok(ExitCode::SUCCESS);
            }
        }
        from = last + 1;
    }
    Ok(ExitCode::SUCCESS)
}

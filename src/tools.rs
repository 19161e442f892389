//! Operator commands that run outside the server: `convert`, `audit verify`, `audit export`,
//! `audit verify-proof`.
//!
//! Owns: reading the store or files for these commands and printing their results. Judgements
//! are the pure modules' (`formats`, `audit`).

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use crate::audit::{AuditPublicKey, AuditSigningKey, CheckpointVerifier, Verifier};
use crate::clock::Timestamp;
use crate::config::Config;
use crate::formats::{self, Format};
use crate::scope::Scope;
use crate::store::Store;
use crate::student_id::StudentId;
use crate::xml::dom;

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

/// The origin (log name) of the gateway's audit checkpoints.
pub fn audit_origin(config: &Config) -> String {
    format!("{}/audit", config.gateway.id)
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

/// `siirto convert`: the document on stdout, the report on stderr.
pub fn convert(
    config: &Config,
    from: Format,
    to: Format,
    scope: Option<&str>,
    subject: Option<&str>,
    file: &Path,
) -> Result<ExitCode, ToolError> {
    let bytes = read(file)?;
    let scope = match scope {
        Some(s) => Scope::parse(s).map_err(|e| ToolError::Usage(format!("--scope: {e}")))?,
        None => Scope::all(),
    };
    let limits = config.limits.xml;
    let schemas = crate::pipeline::Schemas::load(&config.schemas, [from, to])
        .map_err(|e| ToolError::Other(e.to_string()))?;
    if let Some(schema) = schemas.get(from)
        && let Err(failure) = schema.validate(&bytes, &limits)
    {
        eprintln!("{}: not valid {from}:\n{failure}", file.display());
        return Ok(ExitCode::from(1));
    }
    let root = dom::parse(&bytes, &limits).map_err(|e| ToolError::File {
        path: file.display().to_string(),
        message: e.to_string(),
    })?;
    let subject = match subject {
        Some(s) => StudentId::parse(s).map_err(|e| ToolError::Usage(format!("--subject: {e}")))?,
        None => formats::document_subject(from, &root)
            .map_err(|e| ToolError::Usage(format!("{e}; name the student with --subject ID")))?,
    };
    let context = formats::WriteContext::new(crate::clock::Clock::now(&crate::clock::SystemClock));
    let conversion = match formats::convert(from, to, &root, &subject, scope, &context) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("conversion failed: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    if let Some(schema) = schemas.get(to)
        && let Err(failure) = schema.validate(&conversion.document, &limits)
    {
        eprintln!("converted document is not valid {to}:\n{failure}");
        return Ok(ExitCode::from(1));
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&conversion.document);
    let report = serde_json::to_string_pretty(&conversion.report).unwrap_or_default();
    eprintln!("{report}");
    Ok(ExitCode::SUCCESS)
}

/// Rows read from the store per round trip while streaming the log.
const PAGE: u32 = 10_000;

/// `siirto audit verify`: exit 0 only when the whole log and every checkpoint verify.
pub async fn audit_verify(config: &Config) -> Result<ExitCode, ToolError> {
    let key = audit_public_key(config)?;
    let verifier_key = CheckpointVerifier::new(key, &audit_origin(config))
        .map_err(|e| ToolError::Other(e.to_string()))?;
    let store = Store::connect(&config.gateway.database_url).await?;
    let notes: Vec<String> = store
        .checkpoints()
        .await?
        .into_iter()
        .map(|c| c.note)
        .collect();
    let mut verifier = match Verifier::new(&notes, &verifier_key) {
        Ok(v) => v,
        Err(e) => {
            println!("audit log does NOT verify: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let mut from = 0u64;
    loop {
        let page = store.audit_range(from, PAGE).await?;
        let Some(last) = page.last().map(|e| e.seq) else {
            break;
        };
        for entry in &page {
            if let Err(e) = verifier.push(entry) {
                println!("audit log does NOT verify: {e}");
                return Ok(ExitCode::from(1));
            }
        }
        from = last + 1;
    }
    match verifier.finish() {
        Ok(summary) => {
            println!(
                "audit log verifies: {} entries, root {}, {} checkpoint(s), {} entries after the latest checkpoint",
                summary.entries,
                crate::clock::hex(&summary.root),
                summary.checkpoints,
                summary.unanchored
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("audit log does NOT verify: {e}");
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
            let line = crate::http::audit::entry_json(entry);
            if writeln!(out, "{line}").is_err() {
                // stdout closed (e.g. piped into `head`): stop quietly.
                return Ok(ExitCode::SUCCESS);
            }
        }
        from = last + 1;
    }
    Ok(ExitCode::SUCCESS)
}

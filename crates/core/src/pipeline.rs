//! What happens to a fetched record before it may leave: validate against the source schema,
//! read the named student's record, prune it to the authorized scope, convert it to the
//! destination's format, sign it when the destination's format is signed (every ELMO
//! document; siirto-v1 by default), and validate the result against the destination schema.
//! An ELMO source that lists pinned signers has its document's signature checked first. A KOSKI
//! (JSON) source has no schema: it is read strictly into typed structures within
//! `[limits.json]`, which is its validation.
//!
//! Owns: [`Schemas`] (one compiled schema per format, the gateway's own `siirto-v1` schema built
//! in) and [`prepare`]. Pure: bytes and values in, a [`Prepared`] document or a
//! [`PipelineError`] out. Errors describe *where* a document is wrong (element path, line,
//! column), never its content, because they are written to the audit trail.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;

use crate::config::{LimitsConfig, SchemaPaths};
use crate::dsig::{self, Signer};
use crate::formats::json_in::JsonLimits;
use crate::formats::koski::{self, KoskiError};
use crate::formats::{self, Format, FormatError, ReadReport, WriteContext};
use crate::record::StudentRecord;
use crate::scope::Scope;
use crate::student_id::StudentId;
use crate::vault::sha256;
use openssl::x509::X509;
use siirto_xsd::schema::{Schema, SchemaError, ValidationFailure};

use siirto_xsd::Limits;

/// The `[limits.xml]` every path that reads a document applies: a transfer's fetched record and
/// its converted document, `siirto convert`, `siirto validate --config`; and with no
/// configuration (`siirto validate --schema`) the documented defaults. One function, so the
/// paths cannot drift apart.
pub fn xml_limits(limits: Option<&LimitsConfig>) -> Limits {
    limits.map_or_else(Limits::default, |l| l.xml)
}

/// The `[limits.json]` every path that reads a KOSKI document applies (a fetched record,
/// `siirto convert`), or the documented defaults without a configuration.
pub fn json_limits(limits: Option<&LimitsConfig>) -> JsonLimits {
    limits.map_or_else(JsonLimits::default, |l| l.json)
}

/// Compiled schemas by format.
#[derive(Clone, Default)]
pub struct Schemas {
    by_format: HashMap<Format, Arc<Schema>>,
}

impl std::fmt::Debug for Schemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.by_format.keys()).finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaLoadError {
    #[error("schema for format `{format}` ({path}) could not be loaded: {source}")]
    Load {
        format: Format,
        path: String,
        #[source]
        source: SchemaError,
    },
    #[error("no schema is configured for format `{0}` ([schemas] in the configuration)")]
    NotConfigured(Format),
}

impl Schemas {
    /// Loads the schema of every format in `formats`. `siirto-v1` uses the configured file when
    /// there is one and the built-in schema otherwise; other formats need a configured path (the
    /// configuration loader checks that).
    pub fn load(
        paths: &SchemaPaths,
        formats: impl IntoIterator<Item = Format>,
    ) -> Result<Schemas, SchemaLoadError> {
        let mut by_format = HashMap::new();
        for format in formats {
            if by_format.contains_key(&format) || !format.is_xml() {
                continue;
            }
            let schema = match (format, paths.path(format)) {
                (_, Some(path)) => Schema::load(path).map_err(|source| SchemaLoadError::Load {
                    format,
                    path: path.display().to_string(),
                    source,
                })?,
                (Format::SiirtoV1, None) => Schema::from_str(formats::siirto_v1::SCHEMA, None)
                    .map_err(|source| SchemaLoadError::Load {
                        format,
                        path: "(built in)".into(),
                        source,
                    })?,
                (_, None) => return Err(SchemaLoadError::NotConfigured(format)),
            };
            by_format.insert(format, schema);
        }
        Ok(Schemas { by_format })
    }

    pub fn get(&self, format: Format) -> Option<&Arc<Schema>> {
        self.by_format.get(&format)
    }
}

/// A document ready for delivery.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The document as delivered: signed when the destination's format is signed.
    pub document: Vec<u8>,
    /// The signature algorithm's URI when the document was signed.
    pub signature_method: Option<&'static str>,
    pub document_sha256: [u8; 32],
    pub source_sha256: [u8; 32],
    /// The conversion report's summary: counts and paths, no personal data.
    pub report: serde_json::Value,
}

/// Where preparation stopped. Messages name paths and positions, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PipelineError {
    #[error("source document is not valid for `{format}`: {summary}")]
    InvalidSource { format: Format, summary: String },
    #[error("the document is not about the authorized student")]
    SubjectMismatch,
    #[error("conversion failed: {0}")]
    ConversionFailed(String),
    #[error("converted document is not valid for `{format}`: {summary}")]
    InvalidOutput { format: Format, summary: String },
    #[error("no schema is loaded for `{0}`")]
    NoSchema(Format),
    #[error("signing the converted document failed: {0}")]
    SigningFailed(String),
}

/// How documents are signed on the way out and checked on the way in (CONTRACT.md, "Signed
/// documents").
#[derive(Debug, Clone, Copy, Default)]
pub struct Signatures<'a> {
    /// The `[documents]` signer. Every ELMO document is signed with it, and a siirto-v1
    /// document when `sign_siirto_v1`; without one nothing is signed (the offline tools; the
    /// gateway's configuration requires it as soon as an ELMO destination exists).
    pub signer: Option<&'a Signer>,
    pub sign_siirto_v1: bool,
    /// An ELMO source's `elmo_signers` and `allow_sha1`, when it lists signers.
    pub source: Option<SourceSigners<'a>>,
}

/// An ELMO source's pinned signers.
#[derive(Debug, Clone, Copy)]
pub struct SourceSigners<'a> {
    pub signers: &'a [X509],
    pub allow_sha1: bool,
}

impl Signatures<'_> {
    /// Whether a document of format `to` is signed.
    pub fn signs(&self, to: Format) -> bool {
        self.signer.is_some()
            && (to == Format::Elmo || (to == Format::SiirtoV1 && self.sign_siirto_v1))
    }
}

/// Checks an ELMO source document's signature against the source's pinned signers.
pub fn verify_source(
    source: &[u8],
    from: Format,
    signers: SourceSigners<'_>,
    limits: &Limits,
) -> Result<dsig::Verified, PipelineError> {
    dsig::verify(
        source,
        dsig::Policy {
            trust: dsig::Trust::Pinned(signers.signers),
            allow_sha1: signers.allow_sha1,
        },
        limits,
    )
    .map_err(|e| PipelineError::InvalidSource {
        format: from,
        summary: e.to_string(),
    })
}

/// What one transfer asks of [`prepare`].
#[derive(Debug, Clone, Copy)]
pub struct Task<'a> {
    pub from: Format,
    pub to: Format,
    /// The authorization's `sub`: the record must be about this student.
    pub subject: &'a StudentId,
    pub scope: Scope,
    pub limits: &'a Limits,
    /// `[limits.json]`, for a KOSKI source.
    pub json_limits: &'a JsonLimits,
    pub context: &'a WriteContext,
    pub signatures: Signatures<'a>,
}

/// Runs the whole preparation for one transfer.
pub fn prepare(
    source: &[u8],
    schemas: &Schemas,
    task: Task<'_>,
) -> Result<Prepared, PipelineError> {
    let Task {
        from,
        to,
        subject,
        scope,
        limits,
        json_limits,
        context,
        signatures,
    } = task;
    let target_schema = schemas.get(to).ok_or(PipelineError::NoSchema(to))?;
    if from == Format::Elmo
        && let Some(signers) = signatures.source
        && let Err(refused) = verify_source(source, from, signers, limits)
    {
        // Bytes that are not a readable document are reported as every other path reports
        // them (the schema validator's code and position); anything else is the signature's.
        read_source(source, schemas, from, subject, limits, json_limits)?;
        return Err(refused);
    }
    let (record, read_report) = read_source(source, schemas, from, subject, limits, json_limits)?;
    let conversion = formats::convert_record(from, to, record, read_report, scope, context)
        .map_err(|e| match e {
            FormatError::SubjectMismatch { .. } => PipelineError::SubjectMismatch,
            other => PipelineError::ConversionFailed(other.to_string()),
        })?;
    // Signed after conversion and before the outbound validation: what is validated, hashed
    // and delivered is the signed document.
    let (document, signature_method) = match signatures.signer {
        Some(signer) if signatures.signs(to) => (
            dsig::sign(&conversion.document, signer, limits)
                .map_err(|e| PipelineError::SigningFailed(e.to_string()))?,
            Some(signer.signature_method()),
        ),
        _ => (conversion.document, None),
    };
    target_schema
        .validate(&document, limits)
        .map_err(|failure| PipelineError::InvalidOutput {
            format: to,
            summary: summarize(&failure),
        })?;
    let report = serde_json::to_value(conversion.report.summary()).unwrap_or_else(|_| json!({}));
    Ok(Prepared {
        document_sha256: sha256(&document),
        source_sha256: sha256(source),
        document,
        signature_method,
        report,
    })
}

/// Validates a `from` document and reads `subject`'s record from it: an XML format against
/// its schema, then the tree; KOSKI's JSON within `[limits.json]` into its typed model.
pub fn read_source(
    source: &[u8],
    schemas: &Schemas,
    from: Format,
    subject: &StudentId,
    limits: &Limits,
    json_limits: &JsonLimits,
) -> Result<(StudentRecord, ReadReport), PipelineError> {
    let by_format = |e: FormatError| match e {
        FormatError::SubjectMismatch { .. } => PipelineError::SubjectMismatch,
        other => PipelineError::ConversionFailed(other.to_string()),
    };
    if from == Format::Koski {
        return koski::read_bytes(source, json_limits, subject).map_err(|e| match e {
            KoskiError::Json(j) => PipelineError::InvalidSource {
                format: from,
                summary: format!("{}: {j}", j.code()),
            },
            // Read, but short of what the record needs (a study right without a school):
            // the document is not a usable KOSKI answer.
            KoskiError::Format(FormatError::Invalid { path, problem }) => {
                PipelineError::InvalidSource {
                    format: from,
                    summary: format!("koski_invalid: {path}: {problem}"),
                }
            }
            KoskiError::Format(other) => by_format(other),
        });
    }
    let source_schema = schemas.get(from).ok_or(PipelineError::NoSchema(from))?;
    // Validated and read into its tree in one pass.
    let root = source_schema
        .validate_tree(source, limits)
        .map_err(|failure| PipelineError::InvalidSource {
            format: from,
            summary: summarize(&failure),
        })?;
    formats::read_with_report(from, &root, subject).map_err(by_format)
}

/// The failure's stable code (`unsupported_encoding`, `xml_too_large`, `xml_schema_invalid`, …)
/// and at most three errors, by position and element path only: schema messages can quote
/// values, which may be personal data, and this text is written to the audit trail.
pub fn summarize(failure: &ValidationFailure) -> String {
    format!("{}: {}", failure.code(), describe(failure))
}

fn describe(failure: &ValidationFailure) -> String {
    match failure {
        ValidationFailure::NotWellFormed(e) => e.to_string(),
        ValidationFailure::Unreadable(e) => format!("unreadable: {e}"),
        ValidationFailure::Invalid(errors) => {
            let shown: Vec<String> = errors
                .errors
                .iter()
                .take(3)
                .map(|e| format!("line {}, column {}, {}", e.line, e.column, e.path))
                .collect();
            let more = if errors.truncated { " or more" } else { "" };
            format!(
                "{}{more} schema error(s), at {}",
                errors.errors.len(),
                shown.join("; ")
            )
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing unwrap is a failing test
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::config::SchemaPaths;

    const HETU: &str = "131052-308T";

    fn koski_document() -> String {
        format!(
            r#"{{"henkilö": {{"hetu": "{HETU}", "etunimet": "Satu", "sukunimi": "Virtanen"}},
  "opiskeluoikeudet": [{{
    "tyyppi": {{"koodiarvo": "perusopetus", "koodistoUri": "opiskeluoikeudentyyppi"}},
    "oppilaitos": {{"oid": "1.2.246.562.10.14613773812"}},
    "alkamispäivä": "2015-08-15",
    "tila": {{"opiskeluoikeusjaksot": [{{"alku": "2015-08-15", "tila": {{"koodiarvo": "lasna", "koodistoUri": "koskiopiskeluoikeudentila"}}}}]}},
    "suoritukset": [{{
      "tyyppi": {{"koodiarvo": "perusopetuksenoppimaara", "koodistoUri": "suorituksentyyppi"}},
      "koulutusmoduuli": {{"tunniste": {{"koodiarvo": "201101", "koodistoUri": "koulutus"}}}},
      "osasuoritukset": [{{
        "tyyppi": {{"koodiarvo": "perusopetuksenoppiaine", "koodistoUri": "suorituksentyyppi"}},
        "koulutusmoduuli": {{"tunniste": {{"koodiarvo": "MA", "koodistoUri": "koskioppiaineetyleissivistava"}}}},
        "arviointi": [{{"arvosana": {{"koodiarvo": "9", "koodistoUri": "arviointiasteikkoyleissivistava"}}}}]
      }}]
    }}]
  }}]
}}"#
        )
    }

    fn run(source: &[u8], subject: &str) -> Result<Prepared, PipelineError> {
        let schemas =
            Schemas::load(&SchemaPaths::default(), [Format::Koski, Format::SiirtoV1]).unwrap();
        assert!(schemas.get(Format::Koski).is_none(), "koski has no schema");
        let subject = StudentId::parse(subject).unwrap();
        let context = WriteContext::new(Timestamp::from_secs(1_790_000_000));
        prepare(
            source,
            &schemas,
            Task {
                from: Format::Koski,
                to: Format::SiirtoV1,
                subject: &subject,
                scope: Scope::all(),
                limits: &Limits::default(),
                json_limits: &JsonLimits::default(),
                context: &context,
                signatures: Signatures::default(),
            },
        )
    }

    #[test]
    fn a_koski_record_is_prepared_for_a_siirto_v1_destination() {
        let prepared = run(koski_document().as_bytes(), HETU).unwrap();
        let text = String::from_utf8(prepared.document).unwrap();
        assert!(text.contains(r#"<code scheme="koskioppiaineetyleissivistava">MA</code>"#));
        assert!(text.contains("<asteikko-4-10>9</asteikko-4-10>"));
        assert_eq!(prepared.report["from"], "koski");
        let other = crate::student_id::with_check_character("010101A123");
        assert_eq!(
            run(koski_document().as_bytes(), &other).unwrap_err(),
            PipelineError::SubjectMismatch
        );
    }

    #[test]
    fn koski_limits_and_syntax_are_invalid_source_documents() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let huge = format!("{{\"pad\": \"{}\"}}", "x".repeat(17 << 20));
        let malformed = koski_document().replacen("\"tila\": {", "\"tila\" {", 1);
        for (document, code, positioned) in [
            (deep, "json_too_deep", true),
            (huge, "json_too_large", false),
            (malformed, "json_malformed", true),
        ] {
            let err = run(document.as_bytes(), HETU).unwrap_err();
            let PipelineError::InvalidSource { format, summary } = &err else {
                panic!("{err}");
            };
            assert_eq!(*format, Format::Koski);
            assert!(summary.starts_with(code), "{summary}");
            assert_eq!(summary.contains(": line "), positioned, "{summary}");
        }
        // A study right without a school: read, but not a usable KOSKI answer.
        let no_school = koski_document().replace(
            r#""oppilaitos": {"oid": "1.2.246.562.10.14613773812"},"#,
            "",
        );
        let err = run(no_school.as_bytes(), HETU).unwrap_err();
        assert!(
            matches!(&err, PipelineError::InvalidSource { summary, .. } if summary.starts_with("koski_invalid")),
            "{err}"
        );
    }
}

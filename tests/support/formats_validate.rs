//! The one "validate this output" step of the format tests, and where the corpus is.
//!
//! Every converted document a test produces goes through [`validate_output`]. Today it runs
//! libxml2's `xmllint --noout --nonet --schema` (the reference oracle of `MANIFEST.tsv`); the
//! project's own XSD engine is to be added beside it here. Without `xmllint` the step prints a
//! loud `SKIPPED` and passes, unless `SIIRTO_REQUIRE_TOOLS=1`, when it fails.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use siirto_core::formats::Format;

/// `$SIIRTO_CORPUS`, else `$CARGO_MANIFEST_DIR/../shared/corpus`.
pub fn corpus() -> PathBuf {
    std::env::var_os("SIIRTO_CORPUS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"),
        PathBuf::from,
    )
}

/// The schema a format's documents are validated against.
pub fn schema(format: Format) -> PathBuf {
    match format {
        Format::SiirtoV1 => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("xsd/siirto-record-v1.xsd")
        }
        Format::Virta => corpus().join("virta/xsd/Virta.xsd"),
        Format::Elmo => corpus().join("elmo/schema.xsd"),
        Format::Koski => panic!("koski is JSON read into typed structures: it has no schema"),
    }
}

/// How a document was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// `xmllint` accepted it.
    Xmllint,
    /// No validator was available.
    Skipped,
}

fn xmllint_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        Command::new("xmllint")
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    })
}

fn tools_required() -> bool {
    std::env::var("SIIRTO_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// Validates `document` against the schema of `format`. Panics, naming `label` and quoting the
/// validator, when the document is invalid.
pub fn validate_output(format: Format, document: &[u8], label: &str) -> Checked {
    if !xmllint_available() {
        assert!(
            !tools_required(),
            "xmllint not found and SIIRTO_REQUIRE_TOOLS=1 ({label})"
        );
        eprintln!("SKIPPED: xmllint not found; {label} was not validated");
        return Checked::Skipped;
    }
    let schema = schema(format);
    assert!(schema.exists(), "schema {} not found", schema.display());
    let mut file = tempfile::Builder::new()
        .suffix(".xml")
        .tempfile()
        .expect("temporary file");
    file.write_all(document).expect("write temporary file");
    file.flush().expect("flush temporary file");
    let output = Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema"])
        .arg(&schema)
        .arg(file.path())
        .output()
        .expect("run xmllint");
    assert!(
        output.status.success(),
        "{label}: xmllint rejects the {format} output:\n{}\n--- document ---\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(document)
    );
    Checked::Xmllint
}

/// The corpus files libxml2 marks valid, as (path relative to the corpus, format).
pub fn valid_corpus_files() -> Vec<(String, Format)> {
    let manifest = corpus().join("MANIFEST.tsv");
    let text = std::fs::read_to_string(&manifest)
        .unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            let (file, verdict) = (cols.first()?, cols.get(2)?);
            let format = if file.starts_with("virta/") {
                Format::Virta
            } else if file.starts_with("elmo/") {
                Format::Elmo
            } else {
                return None;
            };
            (*verdict == "valid").then(|| ((*file).to_owned(), format))
        })
        .collect()
}

/// The corpus files libxml2 marks invalid.
pub fn invalid_corpus_files() -> Vec<(String, Format)> {
    let manifest = corpus().join("MANIFEST.tsv");
    let text = std::fs::read_to_string(&manifest)
        .unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            let (file, verdict) = (cols.first()?, cols.get(2)?);
            let format = if file.starts_with("virta/") {
                Format::Virta
            } else {
                Format::Elmo
            };
            (*verdict == "invalid").then(|| ((*file).to_owned(), format))
        })
        .collect()
}

//! The one "validate this output" step of the format tests, and the corpus's file lists.
//!
//! Every converted document a test produces goes through [`validate_output`]. Today it runs
//! libxml2's `xmllint --noout --nonet --schema` (the reference oracle of `MANIFEST.tsv`); the
//! project's own XSD engine is to be added beside it here. Without `xmllint`, or without the
//! corpus for a VIRTA or ELMO schema, the step prints a loud `SKIPPED` and passes, unless
//! `SIIRTO_REQUIRE_TOOLS=1`, when it fails (`siirto_testsupport`'s rule).
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use siirto_core::formats::Format;

/// The schema a format's documents are validated against: the project's own for
/// `siirto-v1`, the corpus's official ones for VIRTA and ELMO (`None`, after a loud skip, when
/// the corpus is absent).
pub fn schema(format: Format) -> Option<PathBuf> {
    match format {
        Format::SiirtoV1 => {
            Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("xsd/siirto-record-v1.xsd"))
        }
        Format::Virta => siirto_testsupport::corpus().map(|c| c.join("virta/xsd/Virta.xsd")),
        Format::Elmo => siirto_testsupport::corpus().map(|c| c.join("elmo/schema.xsd")),
        Format::Koski => panic!("koski is JSON read into typed structures: it has no schema"),
    }
}

/// How a document was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// `xmllint` accepted it.
    Xmllint,
    /// No validator, or no schema (the corpus is absent), was available.
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

/// Validates `document` against the schema of `format`. Panics, naming `label` and quoting the
/// validator, when the document is invalid.
pub fn validate_output(format: Format, document: &[u8], label: &str) -> Checked {
    if !xmllint_available() {
        siirto_testsupport::skip(&format!(
            "needs xmllint (install libxml2-utils); {label} was not validated"
        ));
        return Checked::Skipped;
    }
    let Some(schema) = schema(format) else {
        return Checked::Skipped;
    };
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

/// The VIRTA and ELMO files of `corpus`'s manifest that libxml2 marks valid, as (path
/// relative to the corpus, format).
pub fn valid_corpus_files(corpus: &Path) -> Vec<(String, Format)> {
    corpus_files(corpus, "valid")
}

/// The VIRTA and ELMO files of `corpus`'s manifest that libxml2 marks invalid.
pub fn invalid_corpus_files(corpus: &Path) -> Vec<(String, Format)> {
    corpus_files(corpus, "invalid")
}

fn corpus_files(corpus: &Path, verdict: &str) -> Vec<(String, Format)> {
    let manifest = corpus.join("MANIFEST.tsv");
    let text = std::fs::read_to_string(&manifest)
        .unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            let (file, listed) = (cols.first()?, cols.get(2)?);
            let format = if file.starts_with("virta/") {
                Format::Virta
            } else if file.starts_with("elmo/") {
                Format::Elmo
            } else {
                return None;
            };
            (*listed == verdict).then(|| ((*file).to_owned(), format))
        })
        .collect()
}

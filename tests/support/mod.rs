//! Shared helpers for the XML Schema integration tests: reading the corpus's manifest, and
//! running `xmllint` (libxml2) as the reference oracle. Finding the corpus and skipping loudly
//! without it are `siirto_testsupport`'s.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The project's own schema (`xsd/siirto-record-v1.xsd`).
pub fn own_schema() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("xsd/siirto-record-v1.xsd")
}

/// One line of `MANIFEST.tsv`.
#[derive(Debug, Clone)]
pub struct ManifestEntry {
    pub file: String,
    pub schema: String,
    pub valid: bool,
}

/// The entries of `corpus`'s `MANIFEST.tsv` (`corpus` from `siirto_testsupport::corpus()`).
pub fn manifest(corpus: &Path) -> Vec<ManifestEntry> {
    let path = corpus.join("MANIFEST.tsv");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert!(cols.len() >= 3, "bad manifest line: {l}");
            ManifestEntry {
                file: cols[0].to_owned(),
                schema: cols[1].to_owned(),
                valid: match cols[2] {
                    "valid" => true,
                    "invalid" => false,
                    other => panic!("bad verdict {other} in manifest"),
                },
            }
        })
        .collect()
}

/// `xmllint` if installed; otherwise prints a loud SKIPPED (or panics when tools are
/// required) and returns `None`.
pub fn xmllint() -> Option<PathBuf> {
    let found = Command::new("xmllint")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() || !o.stderr.is_empty());
    if found {
        return Some(PathBuf::from("xmllint"));
    }
    siirto_testsupport::skip("needs xmllint (install libxml2-utils) for the libxml2 comparison");
    None
}

/// Runs `xmllint --noout --nonet --schema` on many files at once and returns libxml2's
/// verdict for each, in order.
pub fn xmllint_verdicts(xmllint: &Path, schema: &Path, files: &[PathBuf]) -> Vec<bool> {
    let mut verdicts = Vec::with_capacity(files.len());
    for chunk in files.chunks(500) {
        let output = Command::new(xmllint)
            .arg("--noout")
            .arg("--nonet")
            .arg("--schema")
            .arg(schema)
            .args(chunk)
            .output()
            .expect("run xmllint");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !stderr.contains("failed to compile"),
            "libxml2 refuses the schema {}:\n{stderr}",
            schema.display()
        );
        for f in chunk {
            let name = f.display().to_string();
            let ok = format!("{name} validates");
            let bad = format!("{name} fails to validate");
            let valid = stderr.lines().any(|l| l == ok);
            // A document that does not parse gets a parser error and no verdict line.
            let parse_error = format!("{name}:");
            let invalid = stderr.lines().any(|l| l == bad)
                || stderr
                    .lines()
                    .any(|l| l.starts_with(&parse_error) && l.contains("parser error"));
            assert!(
                valid ^ invalid,
                "no clear xmllint verdict for {name}:\n{stderr}"
            );
            verdicts.push(valid);
        }
    }
    verdicts
}

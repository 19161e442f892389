//! XML Schema 1.0: compiling a schema set once and validating documents against it.
//!
//! Owns: the public API the gateway uses — [`Schema::load`] / [`Schema::from_str`] build an
//! immutable, `Send + Sync` [`Schema`] (shared in an `Arc`); [`Schema::validate`] checks an
//! in-memory document and is the only way to obtain a [`ValidatedDocument`];
//! [`Schema::validate_reader`] streams a document of any size with memory bounded by its
//! depth; [`ValidationFailure`] separates "not well-formed / a limit was hit" from "well-formed
//! but invalid" (with line, column, element path and a plain message per error, capped).
//! Submodules: `load` (files, include/import), `compile` (components), `content`
//! (automata), `values` (built-in datatypes), `xsd_regex` (patterns), `model` (the compiled
//! form), `validate` (the streaming validator).
//!
//! It must not: fetch anything over the network, process DTDs, or put document values into
//! error messages (element and attribute names are fine; values may be personal data).

mod compile;
mod content;
mod load;
mod model;
mod validate;
pub mod values;
pub mod xsd_regex;

use std::fmt;
use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

use std::ops::ControlFlow;

use super::dom;
use super::reader::{self, Handler, Locator, Outcome, StartTag, StreamError};
use super::{Limits, XmlError};

pub use validate::RootName;

/// How many validation errors are collected before validation stops.
pub const MAX_ERRORS: usize = 50;

/// Why a schema could not be loaded. Every variant names the file and, where it applies,
/// the line and column in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("{file}: cannot read the schema: {message}")]
    Io { file: String, message: String },
    #[error("{file}: the schema document is not well-formed: {error}")]
    NotWellFormed { file: String, error: XmlError },
    #[error("{file}:{line}:{column}: {message}")]
    Invalid {
        file: String,
        line: u32,
        column: u32,
        message: String,
    },
    #[error("{file}:{line}:{column}: not supported by this engine: {feature}")]
    Unsupported {
        file: String,
        line: u32,
        column: u32,
        feature: String,
    },
    #[error("{file}:{line}:{column}: {message}")]
    MissingImport {
        file: String,
        line: u32,
        column: u32,
        message: String,
    },
}

/// One way a document breaks its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    pub line: u32,
    pub column: u32,
    /// The element path, e.g. `/Virta/Opiskelija[2]/Opintosuoritukset`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}, {}: {}",
            self.line, self.column, self.path, self.message
        )
    }
}

/// The errors of an invalid document, in document order, at most [`MAX_ERRORS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationErrors {
    pub errors: Vec<ValidationError>,
    /// Validation stopped at the cap; there may be more.
    pub truncated: bool,
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        if self.truncated {
            write!(
                f,
                "\nstopped after {} errors; the document may have more",
                self.errors.len()
            )?;
        }
        Ok(())
    }
}

/// Why a document was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ValidationFailure {
    /// Not XML we accept: malformed, a DTD, an entity, an unsupported encoding, or a limit
    /// was hit.
    #[error("the document is not acceptable XML: {0}")]
    NotWellFormed(XmlError),
    /// Well-formed but not valid against the schema.
    #[error("the document is not valid against the schema:\n{0}")]
    Invalid(ValidationErrors),
    /// The stream could not be read (streaming validation only).
    #[error("the document could not be read: {0}")]
    Unreadable(std::io::Error),
}

impl ValidationFailure {
    /// A stable short code for audits and API messages.
    pub fn code(&self) -> &'static str {
        match self {
            ValidationFailure::NotWellFormed(e) => e.code(),
            ValidationFailure::Invalid(_) => "xml_schema_invalid",
            ValidationFailure::Unreadable(_) => "xml_unreadable",
        }
    }
}

/// A document that was checked against a schema and passed. Only [`Schema::validate`]
/// makes one.
#[derive(Debug, Clone)]
pub struct ValidatedDocument<'a> {
    bytes: &'a [u8],
    root: RootName,
}

impl<'a> ValidatedDocument<'a> {
    /// The document's bytes exactly as given (a UTF-16 document was validated on its UTF-8
    /// decoding; see [`crate::encoding`]).
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The namespace URI of the root element (`None` when in no namespace).
    pub fn root_namespace(&self) -> Option<&str> {
        self.root.namespace.as_deref()
    }

    /// The local name of the root element.
    pub fn root_local(&self) -> &str {
        &self.root.local
    }
}

/// What a streaming validation saw in a valid document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamReport {
    pub root: RootName,
    pub elements: u64,
}

/// A compiled schema set: immutable and cheap to share between requests.
#[derive(Debug)]
pub struct Schema {
    model: model::Model,
}

impl Schema {
    /// Loads and compiles the schema at `path`, following `xs:include` and `xs:import`
    /// relative to each file. Nothing is fetched from the network.
    pub fn load(path: &Path) -> Result<Arc<Schema>, SchemaError> {
        let docs = load::Loader::load_path(path)?;
        let model = compile::compile(&docs)?;
        Ok(Arc::new(Schema { model }))
    }

    /// Compiles a schema given as text (e.g. embedded with `include_str!`). Relative
    /// includes and imports resolve from `base_dir`.
    pub fn from_str(xsd: &str, base_dir: Option<&Path>) -> Result<Arc<Schema>, SchemaError> {
        let docs = load::Loader::load_str(xsd, base_dir)?;
        let model = compile::compile(&docs)?;
        Ok(Arc::new(Schema { model }))
    }

    /// Validates an in-memory document.
    pub fn validate<'a>(
        &self,
        document: &'a [u8],
        limits: &Limits,
    ) -> Result<ValidatedDocument<'a>, ValidationFailure> {
        let mut v = validate::Validator::new(&self.model, MAX_ERRORS);
        match reader::parse_slice(document, limits, &mut v) {
            Err(e) => Err(ValidationFailure::NotWellFormed(e)),
            Ok(Outcome::Stopped) => Err(ValidationFailure::Invalid(v.into_errors())),
            Ok(Outcome::Complete) => {
                if v.has_errors() {
                    return Err(ValidationFailure::Invalid(v.into_errors()));
                }
                let root = v.root.take().unwrap_or_default();
                Ok(ValidatedDocument {
                    bytes: document,
                    root,
                })
            }
        }
    }

    /// Validates an in-memory document and builds its element tree in the same pass (one
    /// tokenization instead of two): the same verdict and errors as [`Schema::validate`], and
    /// for a valid document the tree [`dom::parse`] would build.
    pub fn validate_tree(
        &self,
        document: &[u8],
        limits: &Limits,
    ) -> Result<dom::Element, ValidationFailure> {
        let mut both = Both {
            validator: validate::Validator::new(&self.model, MAX_ERRORS),
            tree: dom::TreeBuilder::default(),
        };
        match reader::parse_slice(document, limits, &mut both) {
            Err(e) => Err(ValidationFailure::NotWellFormed(e)),
            Ok(Outcome::Stopped) => Err(ValidationFailure::Invalid(both.validator.into_errors())),
            Ok(Outcome::Complete) => {
                if both.validator.has_errors() {
                    return Err(ValidationFailure::Invalid(both.validator.into_errors()));
                }
                both.tree.finish().map_err(ValidationFailure::NotWellFormed)
            }
        }
    }

    /// Validates a document read from `input` with memory bounded by its nesting depth,
    /// for documents too big to hold (the `validate` command, benchmarks).
    pub fn validate_reader<R: BufRead>(
        &self,
        input: R,
        limits: &Limits,
    ) -> Result<StreamReport, ValidationFailure> {
        let mut v = validate::Validator::new(&self.model, MAX_ERRORS);
        match reader::parse_stream(input, limits, &mut v) {
            Err(StreamError::Xml(e)) => Err(ValidationFailure::NotWellFormed(e)),
            Err(StreamError::Io(e)) => Err(ValidationFailure::Unreadable(e)),
            Ok(Outcome::Stopped) => Err(ValidationFailure::Invalid(v.into_errors())),
            Ok(Outcome::Complete) => {
                if v.has_errors() {
                    return Err(ValidationFailure::Invalid(v.into_errors()));
                }
                let root = v.root.take().unwrap_or_default();
                Ok(StreamReport {
                    root,
                    elements: v.elements,
                })
            }
        }
    }

    /// The global element declarations: the roots this schema accepts.
    pub fn global_elements(&self) -> Vec<(Option<&str>, &str)> {
        let mut v: Vec<(Option<&str>, &str)> = self
            .model
            .global_elements
            .iter()
            .map(|(ns, local, _)| {
                let uri = self.model.ns_str(ns);
                ((ns != model::NO_NS).then_some(uri), local)
            })
            .collect();
        v.sort();
        v
    }
}

/// Exit status of [`run_validate_cli`]: valid.
pub const EXIT_VALID: i32 = 0;
/// Exit status of [`run_validate_cli`]: invalid (errors were printed).
pub const EXIT_INVALID: i32 = 1;
/// Exit status of [`run_validate_cli`]: the schema or the file could not be used.
pub const EXIT_UNUSABLE: i32 = 2;

/// The logic of `siirto validate --schema XSD FILE`: loads the schema, streams the file,
/// writes a verdict (with the failure's code, and the errors) to `out`, and returns 0
/// (valid), 1 (invalid: not valid, not well-formed, in an unsupported encoding, or over a
/// limit) or 2 (the schema or the file cannot be used).
pub fn run_validate_cli(
    schema_path: &Path,
    document: &Path,
    limits: &Limits,
    out: &mut dyn std::io::Write,
) -> i32 {
    let schema = match Schema::load(schema_path) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(out, "cannot use the schema: {e}");
            return EXIT_UNUSABLE;
        }
    };
    validate_file_cli(&schema, document, limits, out)
}

/// Like [`run_validate_cli`] with an already loaded schema (for `--format F --config C`).
pub fn validate_file_cli(
    schema: &Schema,
    document: &Path,
    limits: &Limits,
    out: &mut dyn std::io::Write,
) -> i32 {
    let file = match std::fs::File::open(document) {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(out, "{}: cannot open: {e}", document.display());
            return EXIT_UNUSABLE;
        }
    };
    let input = std::io::BufReader::with_capacity(64 * 1024, file);
    match schema.validate_reader(input, limits) {
        Ok(report) => {
            let _ = writeln!(
                out,
                "{}: valid ({} elements, root <{}>)",
                document.display(),
                report.elements,
                report.root.local
            );
            EXIT_VALID
        }
        Err(failure) => {
            let code = failure.code();
            let name = document.display();
            match failure {
                ValidationFailure::Invalid(errors) => {
                    let _ = writeln!(out, "{name}: invalid ({code})\n{errors}");
                    EXIT_INVALID
                }
                ValidationFailure::NotWellFormed(e) => {
                    let _ = writeln!(out, "{name}: invalid ({code}): {e}");
                    EXIT_INVALID
                }
                ValidationFailure::Unreadable(e) => {
                    let _ = writeln!(out, "{name}: cannot be read ({code}): {e}");
                    EXIT_UNUSABLE
                }
            }
        }
    }
}

/// The validator and a tree builder fed the same events, the validator first (it alone can
/// stop the parse).
struct Both<'m> {
    validator: validate::Validator<'m>,
    tree: dom::TreeBuilder,
}

impl Handler for Both<'_> {
    fn start_element(&mut self, tag: &StartTag<'_>, at: &Locator<'_>) -> ControlFlow<()> {
        self.validator.start_element(tag, at)?;
        self.tree.start_element(tag, at)
    }
    fn end_element(&mut self, at: &Locator<'_>) -> ControlFlow<()> {
        self.validator.end_element(at)?;
        self.tree.end_element(at)
    }
    fn text(&mut self, text: &str, at: &Locator<'_>) -> ControlFlow<()> {
        self.validator.text(text, at)?;
        self.tree.text(text, at)
    }
    fn whitespace(&mut self, text: &str, at: &Locator<'_>) -> ControlFlow<()> {
        self.validator.whitespace(text, at)?;
        self.tree.whitespace(text, at)
    }
    fn comment(&mut self, text: &str, at: &Locator<'_>) -> ControlFlow<()> {
        self.validator.comment(text, at)?;
        self.tree.comment(text, at)
    }
    fn processing_instruction(
        &mut self,
        target: &str,
        data: &str,
        at: &Locator<'_>,
    ) -> ControlFlow<()> {
        self.validator.processing_instruction(target, data, at)?;
        self.tree.processing_instruction(target, data, at)
    }
    fn settle(&mut self, at: &Locator<'_>) {
        self.validator.settle(at);
        self.tree.settle(at);
    }
}

#[cfg(test)]
mod tests;

//! XML on the untrusted path: a hardened parser, a DOM for the format readers, and the
//! XML Schema engine.
//!
//! Owns: [`Limits`] and [`XmlError`] (every limit hit is its own error, with a position);
//! [`reader`], the one hardened tokenizer (quick-xml underneath) that both other parts use;
//! [`dom`], a bounded element tree for the format readers; and [`schema`], XML Schema 1.0
//! compilation and streaming validation. No DTD is ever processed and no entity other than
//! the five predefined ones and character references is expanded. Nothing here does IO
//! except loading schema files from paths it is given and reading a stream it is handed.
//!
//! # Layout — one line per module, what it owns
//! - this file: [`Limits`], [`XmlError`], [`Position`]: the bounds every parse applies and the
//!   errors that name where a document broke them.
//! - [`reader`]: the one hardened tokenizer (quick-xml underneath): namespaces, limits, no DTD.
//! - [`dom`]: a bounded element tree, for readers that want the whole document.
//! - [`schema`]: XML Schema 1.0 — `load` (files, include/import), `compile` (components),
//!   `content` (automata), `values` (built-in datatypes), `xsd_regex` (patterns), `model` (the
//!   compiled form), `validate` (the streaming validator).
//!
//! # What it must never import
//! Nothing else of Siirto (this crate is the bottom layer and is usable on its own), no async
//! runtime, no network, no TLS, no database. `tests/layers.rs` at the workspace root fails when
//! its dependencies grow any of these. Fuzz targets are in `fuzz/` (its own workspace), the
//! libxml2 comparison bench in `benches/validate.rs`.

pub mod dom;
pub mod reader;
pub mod schema;

use std::fmt;

/// Bounds applied to every document parsed. Each one hit is reported as its own [`XmlError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest document in bytes.
    pub max_bytes: usize,
    /// Deepest element nesting (the root is depth 1).
    pub max_depth: usize,
    /// Most elements in one document.
    pub max_elements: usize,
    /// Most attributes (namespace declarations included) on one element.
    pub max_attributes: usize,
    /// Longest element or attribute name, in bytes.
    pub max_name_len: usize,
    /// Longest text node or attribute value, in bytes.
    pub max_text_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 16 * 1024 * 1024,
            max_depth: 128,
            max_elements: 1_000_000,
            max_attributes: 64,
            max_name_len: 512,
            max_text_len: 1024 * 1024,
        }
    }
}

/// Where in a document something is: 1-based line and column (in characters), and byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub line: u32,
    pub column: u32,
    pub offset: usize,
}

impl Position {
    /// Computes line and column of a byte offset. Linear in the offset: for error reporting only.
    pub fn of_offset(document: &[u8], offset: usize) -> Position {
        let end = offset.min(document.len());
        let before = &document[..end];
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count()
            + 1;
        Position {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
            offset,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Why a document could not be parsed. Limit variants carry the limit that was hit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("document is {size} bytes, larger than the limit of {limit}")]
    TooLarge { limit: usize, size: usize },
    #[error("document type declarations (DTD) are not accepted ({at})")]
    Dtd { at: Position },
    #[error(
        "entity reference `&{name};` is not allowed; only the predefined entities and character references are ({at})"
    )]
    Entity { name: String, at: Position },
    #[error("elements nest deeper than the limit of {limit} ({at})")]
    TooDeep { limit: usize, at: Position },
    #[error("document has more than {limit} elements ({at})")]
    TooManyElements { limit: usize, at: Position },
    #[error("element has more than {limit} attributes ({at})")]
    TooManyAttributes { limit: usize, at: Position },
    #[error("a name is longer than the limit of {limit} bytes ({at})")]
    NameTooLong { limit: usize, at: Position },
    #[error("a text or attribute value is longer than the limit of {limit} bytes ({at})")]
    TextTooLong { limit: usize, at: Position },
    #[error("document is not UTF-8 ({at})")]
    Encoding { at: Position },
    #[error("malformed XML: {message} ({at})")]
    Malformed { message: String, at: Position },
}

impl XmlError {
    /// A stable short code for audits and API messages.
    pub fn code(&self) -> &'static str {
        match self {
            XmlError::TooLarge { .. } => "xml_too_large",
            XmlError::Dtd { .. } => "xml_dtd_forbidden",
            XmlError::Entity { .. } => "xml_entity_forbidden",
            XmlError::TooDeep { .. } => "xml_too_deep",
            XmlError::TooManyElements { .. } => "xml_too_many_elements",
            XmlError::TooManyAttributes { .. } => "xml_too_many_attributes",
            XmlError::NameTooLong { .. } => "xml_name_too_long",
            XmlError::TextTooLong { .. } => "xml_text_too_long",
            XmlError::Encoding { .. } => "xml_encoding",
            XmlError::Malformed { .. } => "xml_malformed",
        }
    }
}

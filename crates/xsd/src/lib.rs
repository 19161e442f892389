//! XML on the untrusted path: a hardened parser, a DOM for the format readers, and the
//! XML Schema engine.
//!
//! Owns: [`Limits`] and [`XmlError`] (every limit hit is its own error, with a position);
//! [`encoding`], the encoding policy (UTF-8, and UTF-16 with a byte order mark decoded to
//! UTF-8 at the boundary; anything else `unsupported_encoding`); [`reader`], the one
//! hardened tokenizer (quick-xml underneath) that both other parts use;
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
//! - [`c14n`]: Canonical XML 1.0 and the enveloped-signature transform, for XML Signature.
//! - [`schema`]: XML Schema 1.0 — `load` (files, include/import), `compile` (components),
//!   `content` (automata), `values` (built-in datatypes), `xsd_regex` (patterns), `model` (the
//!   compiled form), `validate` (the streaming validator).
//!
//! # What it must never import
//! Nothing else of Siirto (this crate is the bottom layer and is usable on its own), no async
//! runtime, no network, no TLS, no database. `tests/layers.rs` at the workspace root fails when
//! its dependencies grow any of these. Fuzz targets are in `fuzz/` (its own workspace), the
//! libxml2 comparison bench in `benches/validate.rs`.

pub mod c14n;
pub mod dom;
pub mod encoding;
pub mod reader;
pub mod schema;

use std::fmt;

/// Bounds applied to every document parsed, in memory or streamed, the same way on both.
/// Each one hit is reported as its own [`XmlError`]. Sizes are bytes of UTF-8 (a UTF-16
/// document is measured after decoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest document in bytes.
    pub max_bytes: usize,
    /// Deepest element nesting (the root is depth 1).
    pub max_depth: usize,
    /// Most elements in one document.
    pub max_elements: usize,
    /// Most attributes on one element; namespace declarations (`xmlns`, `xmlns:p`) count as
    /// attributes. Also bounds the namespace declarations in scope at once, to four times
    /// this (at least 64; [`reader::namespaces_in_scope_limit`]).
    pub max_attributes: usize,
    /// Longest element or attribute name (as written, prefix included), in bytes.
    pub max_name_len: usize,
    /// Longest text (one run of character data, references and CDATA between two tags,
    /// after references and line ends are resolved) or attribute value (as written), in
    /// bytes.
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

/// Where in a document something is: 1-based line and column (in characters), and byte offset
/// (into the UTF-8 text; for a UTF-16 document, into its decoding).
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
    #[error(
        "document is larger than the limit of {limit} bytes (at least {size} bytes, counted in UTF-8)"
    )]
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
    #[error(
        "element has more than {limit} attributes; namespace declarations (`xmlns`, `xmlns:*`) count as attributes, and {namespace_declarations} of the first {} are declarations ({at})",
        .limit.saturating_add(1)
    )]
    TooManyAttributes {
        limit: usize,
        /// How many of the attributes read up to the one past the limit declare a namespace.
        namespace_declarations: usize,
        at: Position,
    },
    #[error(
        "more than {limit} namespace declarations are in scope at once (the limit is four times max_attributes, at least 64) ({at})"
    )]
    TooManyNamespaces { limit: usize, at: Position },
    #[error("a name is longer than the limit of {limit} bytes ({at})")]
    NameTooLong { limit: usize, at: Position },
    #[error("a text or attribute value is longer than the limit of {limit} bytes ({at})")]
    TextTooLong { limit: usize, at: Position },
    #[error("document is not valid {encoding}: a byte sequence does not decode ({at})")]
    Encoding {
        /// The encoding the document is read in (`UTF-8`, `UTF-16LE`, `UTF-16BE`).
        encoding: &'static str,
        at: Position,
    },
    #[error(
        "the document's encoding ({encoding}) is not supported: only UTF-8 (US-ASCII included) and UTF-16 with a byte order mark are read ({at})"
    )]
    UnsupportedEncoding { encoding: String, at: Position },
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
            XmlError::TooManyNamespaces { .. } => "xml_too_many_namespaces",
            XmlError::NameTooLong { .. } => "xml_name_too_long",
            XmlError::TextTooLong { .. } => "xml_text_too_long",
            XmlError::Encoding { .. } => "xml_encoding",
            XmlError::UnsupportedEncoding { .. } => "unsupported_encoding",
            XmlError::Malformed { .. } => "xml_malformed",
        }
    }
}

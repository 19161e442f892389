//! Reading a JSON source document into typed structures, within `[limits.json]`.
//!
//! Owns: [`JsonLimits`] (the bounds every JSON document is read within), the lexical pre-scan
//! that applies them *before* any recursive parsing ([`scan`]: size, nesting depth, string
//! length, array items — so a 10,000-deep document is refused in a loop, never on the stack),
//! and [`parse`]: serde into a typed model, with every field the model does not name handed to
//! a callback by its index-free path instead of being silently dropped.
//!
//! It must not log or put values into errors: a source document is personal data. Errors name
//! the limit or the expectation, with line and column.

use serde::de::DeserializeOwned;

/// Bounds on a JSON source document (`[limits.json]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonLimits {
    /// Largest document, in bytes (default 16 MiB).
    pub max_bytes: usize,
    /// Deepest nesting of arrays and objects (default 64).
    pub max_depth: usize,
    /// Longest string (key or value), in bytes as written, escapes included (default 1 MiB).
    pub max_string_len: usize,
    /// Most items in one array (default 100,000).
    pub max_array_items: usize,
}

impl Default for JsonLimits {
    fn default() -> Self {
        JsonLimits {
            max_bytes: 16 * 1024 * 1024,
            max_depth: 64,
            max_string_len: 1024 * 1024,
            max_array_items: 100_000,
        }
    }
}

/// The deepest nesting the configuration may allow: serde_json refuses deeper documents on its
/// own (at 128), and the scan must refuse first, with the configured limit named.
pub const DEPTH_CEILING: usize = 120;

/// Why a JSON document could not be read. Messages never quote the document's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("the document is {size} bytes, more than [limits.json] max_bytes {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("line {line}, column {column}: nested deeper than [limits.json] max_depth {limit}")]
    TooDeep {
        line: usize,
        column: usize,
        limit: usize,
    },
    #[error(
        "line {line}, column {column}: a string longer than [limits.json] max_string_len {limit} bytes"
    )]
    StringTooLong {
        line: usize,
        column: usize,
        limit: usize,
    },
    #[error(
        "line {line}, column {column}: an array of more than [limits.json] max_array_items {limit} items"
    )]
    ArrayTooLong {
        line: usize,
        column: usize,
        limit: usize,
    },
    #[error("line {line}, column {column}: not well-formed JSON: {problem}")]
    Malformed {
        line: usize,
        column: usize,
        problem: String,
    },
    #[error("line {line}, column {column}: {problem}")]
    Invalid {
        line: usize,
        column: usize,
        problem: String,
    },
}

impl JsonError {
    /// A stable code, the first word of an `invalid_source_document` summary.
    pub fn code(&self) -> &'static str {
        match self {
            JsonError::TooLarge { .. } => "json_too_large",
            JsonError::TooDeep { .. } => "json_too_deep",
            JsonError::StringTooLong { .. } => "json_string_too_long",
            JsonError::ArrayTooLong { .. } => "json_array_too_long",
            JsonError::Malformed { .. } => "json_malformed",
            JsonError::Invalid { .. } => "json_invalid",
        }
    }

    /// `(line, column)` where the problem is, when it has a place.
    pub fn position(&self) -> Option<(usize, usize)> {
        match self {
            JsonError::TooLarge { .. } => None,
            JsonError::TooDeep { line, column, .. }
            | JsonError::StringTooLong { line, column, .. }
            | JsonError::ArrayTooLong { line, column, .. }
            | JsonError::Malformed { line, column, .. }
            | JsonError::Invalid { line, column, .. } => Some((*line, *column)),
        }
    }
}

/// Where the scan is: 1-based line, and column in characters.
struct Position {
    line: usize,
    column: usize,
}

impl Position {
    fn advance(&mut self, byte: u8) {
        if byte == b'\n' {
            self.line += 1;
            self.column = 0;
        } else if byte & 0xC0 != 0x80 {
            // A byte that starts a character (not a UTF-8 continuation byte).
            self.column += 1;
        }
    }
}

/// Applies every [`JsonLimits`] bound in one pass over the bytes, without recursion. It looks
/// only at what the bounds need (brackets, commas and strings outside strings); whether the
/// document is well-formed is the parser's to say.
pub fn scan(bytes: &[u8], limits: &JsonLimits) -> Result<(), JsonError> {
    if bytes.len() > limits.max_bytes {
        return Err(JsonError::TooLarge {
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    // One entry per open container: for an array the commas seen directly in it, for an
    // object `None`.
    let mut open: Vec<Option<usize>> = Vec::new();
    let mut at = Position { line: 1, column: 0 };
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        at.advance(b);
        match b {
            b'[' | b'{' => {
                open.push((b == b'[').then_some(0));
                if open.len() > limits.max_depth {
                    return Err(JsonError::TooDeep {
                        line: at.line,
                        column: at.column,
                        limit: limits.max_depth,
                    });
                }
            }
            b']' | b'}' => {
                open.pop();
            }
            b',' => {
                if let Some(Some(commas)) = open.last_mut() {
                    *commas += 1;
                    // `commas + 1` items so far.
                    if *commas >= limits.max_array_items {
                        return Err(JsonError::ArrayTooLong {
                            line: at.line,
                            column: at.column,
                            limit: limits.max_array_items,
                        });
                    }
                }
            }
            b'"' => {
                let (start_line, start_column) = (at.line, at.column);
                let mut len = 0usize;
                i += 1;
                while let Some(&c) = bytes.get(i) {
                    at.advance(c);
                    match c {
                        b'"' => break,
                        b'\\' => {
                            // The escaped byte cannot end the string.
                            len += 1;
                            i += 1;
                            if let Some(&e) = bytes.get(i) {
                                at.advance(e);
                            }
                        }
                        _ => {}
                    }
                    len += 1;
                    if len > limits.max_string_len {
                        return Err(JsonError::StringTooLong {
                            line: start_line,
                            column: start_column,
                            limit: limits.max_string_len,
                        });
                    }
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Scans `bytes` against `limits`, then deserializes them into `T`. Every object member that
/// `T` does not name is passed to `ignored` with its index-free path (`a.b[].c`), so the caller
/// can report it; nothing is silently dropped.
pub fn parse<T: DeserializeOwned>(
    bytes: &[u8],
    limits: &JsonLimits,
    mut ignored: impl FnMut(String),
) -> Result<T, JsonError> {
    scan(bytes, limits)?;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_ignored::deserialize(&mut de, |path: serde_ignored::Path<'_>| {
        ignored(generic_path(&path));
    })
    .map_err(classify)?;
    de.end().map_err(classify)?;
    Ok(value)
}

/// `serde_ignored`'s path without indices: `opiskeluoikeudet[].lisätiedot.x`.
fn generic_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, .. } => format!("{}[]", generic_path(parent)),
        Path::Map { parent, key } => {
            let p = generic_path(parent);
            if p.is_empty() {
                key.clone()
            } else {
                format!("{p}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => generic_path(parent),
    }
}

/// A serde_json error as a [`JsonError`], without the document's values: serde_json quotes
/// the offending value in type errors (`invalid type: string "…"`), so only what was expected
/// is kept.
fn classify(e: serde_json::Error) -> JsonError {
    let (line, column) = (e.line(), e.column());
    let text = e.to_string();
    let text = match text.rfind(" at line ") {
        Some(i) => &text[..i],
        None => text.as_str(),
    };
    let quotes_value = [
        "invalid type",
        "invalid value",
        "unknown variant",
        "invalid length",
    ]
    .iter()
    .any(|p| text.starts_with(p));
    let problem = if quotes_value {
        match text.find("expected ") {
            Some(i) => format!("a value of the wrong type or form; {}", &text[i..]),
            None => "a value of the wrong type or form".to_owned(),
        }
    } else {
        text.to_owned()
    };
    match e.classify() {
        serde_json::error::Category::Data => JsonError::Invalid {
            line,
            column,
            problem,
        },
        _ => JsonError::Malformed {
            line,
            column,
            problem,
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing unwrap is a failing test
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)] // read only through Debug in the assertions
    struct Doc {
        name: String,
        on: Option<bool>,
        items: Option<Vec<Item>>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Item {
        n: u32,
    }

    fn limits() -> JsonLimits {
        JsonLimits::default()
    }

    #[test]
    fn a_ten_thousand_deep_document_is_refused_by_the_scan() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let err = parse::<serde_json::Value>(deep.as_bytes(), &limits(), |_| {}).unwrap_err();
        assert_eq!(err.code(), "json_too_deep");
        assert_eq!(err.position(), Some((1, 65)));
        assert!(err.to_string().contains("max_depth 64"), "{err}");
        // Objects count as well, and the limit is exact: 64 levels pass.
        let ok = format!("{}1{}", "[".repeat(64), "]".repeat(64));
        assert!(scan(ok.as_bytes(), &limits()).is_ok());
        let objects = format!("{}1{}", "{\"a\":".repeat(65), "}".repeat(65));
        assert_eq!(
            scan(objects.as_bytes(), &limits()).unwrap_err().code(),
            "json_too_deep"
        );
    }

    #[test]
    fn brackets_inside_strings_are_text() {
        let text = format!("{{\"name\": \"{}\\\"]]\"}}", "[".repeat(200));
        let doc: Doc = parse(text.as_bytes(), &limits(), |_| {}).unwrap();
        assert_eq!(doc.name.len(), 203);
    }

    #[test]
    fn size_string_and_array_limits_name_themselves() {
        let small = JsonLimits {
            max_bytes: 64,
            max_depth: 8,
            max_string_len: 5,
            max_array_items: 3,
        };
        let big = format!("{{\"name\": \"{}\"}}", "x".repeat(100));
        let err = scan(big.as_bytes(), &small).unwrap_err();
        assert_eq!(err.code(), "json_too_large");
        assert!(err.to_string().contains("max_bytes 64"), "{err}");

        let long = "{\"name\":\n  \"abcdef\"}";
        let err = scan(long.as_bytes(), &small).unwrap_err();
        assert_eq!(err.code(), "json_string_too_long");
        assert_eq!(err.position(), Some((2, 3)));
        assert!(scan(b"{\"name\": \"abcde\"}", &small).is_ok());
        // Escapes count as written.
        assert!(scan(br#"{"name": "\n\n\n"}"#, &small).is_err());

        assert!(scan(b"[1,2,3]", &small).is_ok());
        let err = scan(b"[1,2,3,4]", &small).unwrap_err();
        assert_eq!(err.code(), "json_array_too_long");
        assert_eq!(err.position(), Some((1, 7)));
        // Commas of an object do not count as array items, nor those of a nested array.
        assert!(scan(b"[{\"a\":1,\"b\":2,\"c\":3,\"d\":4},[1,2],3]", &small).is_ok());
    }

    #[test]
    fn malformed_json_has_line_and_column() {
        let err =
            parse::<Doc>(b"{\"name\": \"a\",\n  \"on\": tru }", &limits(), |_| {}).unwrap_err();
        assert_eq!(err.code(), "json_malformed");
        assert_eq!(err.position().map(|p| p.0), Some(2));
        assert!(err.to_string().starts_with("line 2, column"), "{err}");
        let err = parse::<Doc>(b"{\"name\": \"a\"} x", &limits(), |_| {}).unwrap_err();
        assert_eq!(err.code(), "json_malformed");
        let err = parse::<Doc>(b"", &limits(), |_| {}).unwrap_err();
        assert_eq!(err.code(), "json_malformed");
    }

    #[test]
    fn type_errors_do_not_quote_the_value() {
        let err = parse::<Doc>(
            b"{\"name\": \"a\", \"on\": \"131052-308T\"}",
            &limits(),
            |_| {},
        )
        .unwrap_err();
        assert_eq!(err.code(), "json_invalid");
        let text = err.to_string();
        assert!(!text.contains("131052"), "{text}");
        assert!(text.contains("expected a boolean"), "{text}");
        let err = parse::<Doc>(b"{\"on\": true}", &limits(), |_| {}).unwrap_err();
        assert!(err.to_string().contains("missing field `name`"), "{err}");
    }

    #[test]
    fn unknown_members_are_reported_by_path() {
        let mut seen = Vec::new();
        let doc: Doc = parse(
            br#"{"name": "a", "extra": {"deep": [1]}, "items": [{"n": 1, "x": 2}, {"n": 2, "x": 3}]}"#,
            &limits(),
            |p| seen.push(p),
        )
        .unwrap();
        assert_eq!(doc.items.map(|i| i.len()), Some(2));
        assert_eq!(seen, vec!["extra", "items[].x", "items[].x"]);
    }
}

//! A minimal, escaping XML writer for the format writers.
//!
//! Owns: turning nested elements, attributes and text into a UTF-8 document with an XML
//! declaration, two-space indentation and correct escaping. Text that XML 1.0 cannot carry
//! (control characters, U+FFFE, U+FFFF) is refused: [`XmlOut::finish`] names the element.
//! It knows nothing about any format's vocabulary.

/// An XML document being written. Elements are closed in order; [`XmlOut::finish`] closes any
/// still open.
pub(crate) struct XmlOut {
    buf: String,
    stack: Vec<String>,
    /// The first element whose content could not be written.
    bad: Option<String>,
    /// Whether the open element has child elements (so its end tag goes on its own line).
    has_children: Vec<bool>,
}

impl XmlOut {
    pub(crate) fn new() -> XmlOut {
        XmlOut {
            buf: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"),
            stack: Vec::new(),
            bad: None,
            has_children: Vec::new(),
        }
    }

    fn path_of(&self, name: &str) -> String {
        let mut path = String::new();
        for open in &self.stack {
            path.push('/');
            path.push_str(open);
        }
        path.push('/');
        path.push_str(name);
        path
    }

    fn indent(&mut self) {
        for _ in 0..self.stack.len() {
            self.buf.push_str("  ");
        }
    }

    fn start_tag(&mut self, name: &str, attributes: &[(&str, &str)]) {
        if let Some(last) = self.has_children.last_mut() {
            if !*last {
                self.buf.push('\n');
            }
            *last = true;
        }
        self.indent();
        self.buf.push('<');
        self.buf.push_str(name);
        for (key, value) in attributes {
            self.buf.push(' ');
            self.buf.push_str(key);
            self.buf.push_str("=\"");
            if !escape_into(&mut self.buf, value, true) && self.bad.is_none() {
                self.bad = Some(format!("{}/@{key}", self.path_of(name)));
            }
            self.buf.push('"');
        }
    }

    /// Opens an element that will hold child elements.
    pub(crate) fn open(&mut self, name: &str, attributes: &[(&str, &str)]) {
        self.start_tag(name, attributes);
        self.buf.push('>');
        self.stack.push(name.to_owned());
        self.has_children.push(false);
    }

    /// Writes `<name attributes>text</name>`.
    pub(crate) fn leaf(&mut self, name: &str, attributes: &[(&str, &str)], text: &str) {
        self.start_tag(name, attributes);
        if text.is_empty() {
            self.buf.push_str("/>\n");
            return;
        }
        self.buf.push('>');
        if !escape_into(&mut self.buf, text, false) && self.bad.is_none() {
            self.bad = Some(self.path_of(name));
        }
        self.buf.push_str("</");
        self.buf.push_str(name);
        self.buf.push_str(">\n");
    }

    /// Writes `<name attributes/>`.
    pub(crate) fn empty(&mut self, name: &str, attributes: &[(&str, &str)]) {
        self.leaf(name, attributes, "");
    }

    /// Closes the innermost open element.
    pub(crate) fn close(&mut self) {
        let Some(name) = self.stack.pop() else {
            return;
        };
        let had_children = self.has_children.pop().unwrap_or(false);
        if had_children {
            self.indent();
        }
        self.buf.push_str("</");
        self.buf.push_str(&name);
        self.buf.push_str(">\n");
    }

    /// The document, or the path of the first element whose text XML cannot carry.
    pub(crate) fn finish(mut self) -> Result<Vec<u8>, String> {
        while !self.stack.is_empty() {
            self.close();
        }
        match self.bad {
            Some(path) => Err(path),
            None => Ok(self.buf.into_bytes()),
        }
    }
}

/// Whether XML 1.0 can carry the character.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Escapes `text` into `out`; false when it holds a character XML cannot carry (skipped).
fn escape_into(out: &mut String, text: &str, attribute: bool) -> bool {
    let mut ok = true;
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\r' => out.push_str("&#xD;"),
            '\n' if attribute => out.push_str("&#xA;"),
            '\t' if attribute => out.push_str("&#x9;"),
            c if is_xml_char(c) => out.push(c),
            _ => ok = false,
        }
    }
    ok
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing unwrap is a failing test
mod tests {
    use super::*;
    use siirto_xsd::{Limits, dom};

    #[test]
    fn writes_and_parses_back() {
        let mut x = XmlOut::new();
        x.open("r", &[("xmlns", "urn:x"), ("a", "1 & \"2\"\n")]);
        x.leaf("t", &[], "x < y & z > w\r\n");
        x.open("n", &[]);
        x.empty("e", &[("k", "v")]);
        x.close();
        let bytes = x.finish().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<r "));
        let root = dom::parse(&bytes, &Limits::default()).unwrap();
        assert_eq!(root.attribute("a"), Some("1 & \"2\"\n"));
        assert_eq!(root.child("t").unwrap().text(), "x < y & z > w\r\n");
        assert_eq!(
            root.child("n").unwrap().child("e").unwrap().attribute("k"),
            Some("v")
        );
    }

    #[test]
    fn refuses_control_characters() {
        let mut x = XmlOut::new();
        x.open("r", &[]);
        x.leaf("t", &[], "bell\u{7}");
        assert_eq!(x.finish(), Err("/r/t".to_owned()));
        let mut x = XmlOut::new();
        x.empty("r", &[("a", "\u{FFFE}")]);
        assert_eq!(x.finish(), Err("/r/@a".to_owned()));
    }
}

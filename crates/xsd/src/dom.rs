//! A small, bounded element tree for the format readers.
//!
//! Owns: [`parse`], which turns untrusted bytes into an [`Element`] tree with namespaces
//! resolved. All hardening (every [`Limits`] bound, no DTD, no entity other than the
//! predefined ones, XML name and character rules) is the shared tokenizer's, in
//! [`super::reader`]. Whitespace-only text between elements is dropped; CDATA becomes text;
//! comments and processing instructions are skipped.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use super::reader::{self, Handler, Locator, StartTag};
use super::{Limits, Position, XmlError};

/// An element or attribute name, or a namespace URI: stored once per document and shared by
/// every element that uses it (a record repeats a few dozen names thousands of times).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Arc<str>);

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Name {
        Name(Arc::from(s))
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

/// The names of one document, each stored once: [`Names::get`] gives the shared copy.
#[derive(Default)]
pub(crate) struct Names(HashSet<Name>);

impl Names {
    pub(crate) fn get(&mut self, s: &str) -> Name {
        if let Some(name) = self.0.get(s) {
            return name.clone();
        }
        let name = Name::from(s);
        self.0.insert(name.clone());
        name
    }
}

/// An element with its namespace resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// Namespace URI, `None` when the element is in no namespace.
    pub namespace: Option<Name>,
    pub local: Name,
    pub attributes: Box<[Attribute]>,
    pub children: Box<[Node]>,
    /// Byte offset of the start tag in the source (in its UTF-8 decoding when the source is
    /// UTF-16), for [`Position::of_offset`].
    pub offset: usize,
}

/// An attribute (namespace declarations are not kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub namespace: Option<Name>,
    pub local: Name,
    pub value: Box<str>,
}

/// A child of an element. An element child is boxed so a text child (the common case in a
/// record's leaves) takes two words, not an element's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Element(Box<Element>),
    Text(Box<str>),
}

impl Element {
    /// Child elements, in document order.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(&**e),
            Node::Text(_) => None,
        })
    }

    /// Child elements with this local name (any namespace).
    pub fn children_named<'a>(&'a self, local: &'a str) -> impl Iterator<Item = &'a Element> {
        self.elements().filter(move |e| e.local == local)
    }

    /// The first child element with this local name (any namespace).
    pub fn child(&self, local: &str) -> Option<&Element> {
        self.elements().find(|e| e.local == local)
    }

    /// The concatenated text directly inside this element.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                s.push_str(t);
            }
        }
        s
    }

    /// Text of the first child with this local name, trimmed; `None` when absent or empty.
    pub fn child_text(&self, local: &str) -> Option<String> {
        let t = self.child(local)?.text();
        let t = t.trim();
        (!t.is_empty()).then(|| t.to_owned())
    }

    /// Value of an attribute in no namespace.
    pub fn attribute(&self, local: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.namespace.is_none() && a.local == local)
            .map(|a| &*a.value)
    }

    /// Value of an attribute in the given namespace.
    pub fn attribute_ns(&self, namespace: &str, local: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.namespace.as_deref() == Some(namespace) && a.local == local)
            .map(|a| &*a.value)
    }
}

/// Parses a whole document into its root element.
pub fn parse(document: &[u8], limits: &Limits) -> Result<Element, XmlError> {
    let mut builder = TreeBuilder::default();
    reader::parse_slice(document, limits, &mut builder)?;
    builder.finish()
}

/// An element being built: its children so far, and the text run not yet ended.
struct Open {
    namespace: Option<Name>,
    local: Name,
    attributes: Box<[Attribute]>,
    offset: usize,
    children: Vec<Node>,
    has_elements: bool,
    text: String,
}

impl Open {
    /// Ends the current run of text: kept as a child, unless it is whitespace only and the
    /// element also holds child elements (decided for earlier runs when the element ends).
    fn end_text(&mut self) {
        if !self.text.is_empty() {
            let text = std::mem::take(&mut self.text);
            if !(self.has_elements && text.trim().is_empty()) {
                self.children.push(Node::Text(text.into_boxed_str()));
            }
        }
    }

    fn finish(mut self) -> Element {
        self.end_text();
        if self.has_elements {
            // Whitespace-only text seen before the first child element.
            self.children
                .retain(|n| !matches!(n, Node::Text(t) if t.trim().is_empty()));
        }
        Element {
            namespace: self.namespace,
            local: self.local,
            attributes: self.attributes,
            children: self.children.into_boxed_slice(),
            offset: self.offset,
        }
    }
}

/// Builds the tree from the hardened tokenizer's events, with every name stored once. The
/// schema validator runs one beside itself ([`crate::schema::Schema::validate_tree`]), so a
/// document is read once to be both validated and built.
#[derive(Default)]
pub(crate) struct TreeBuilder {
    stack: Vec<Open>,
    root: Option<Element>,
    names: Names,
}

impl TreeBuilder {
    /// The root element, once the document has been read whole.
    pub(crate) fn finish(self) -> Result<Element, XmlError> {
        self.root.ok_or_else(|| XmlError::Malformed {
            message: "no root element".into(),
            at: Position::default(),
        })
    }

    fn name(&mut self, s: &str) -> Name {
        self.names.get(s)
    }
}

impl Handler for TreeBuilder {
    fn start_element(&mut self, tag: &StartTag<'_>, at: &Locator<'_>) -> ControlFlow<()> {
        if let Some(parent) = self.stack.last_mut() {
            parent.end_text();
            parent.has_elements = true;
        }
        let namespace = tag.namespace().map(|n| self.name(n));
        let local = self.name(tag.local());
        let attributes = tag
            .attributes()
            .map(|a| Attribute {
                namespace: a.namespace.map(|n| self.name(n)),
                local: self.name(a.local),
                value: a.value.into(),
            })
            .collect();
        self.stack.push(Open {
            namespace,
            local,
            attributes,
            offset: at.offset(),
            children: Vec::new(),
            has_elements: false,
            text: String::new(),
        });
        ControlFlow::Continue(())
    }

    fn end_element(&mut self, _at: &Locator<'_>) -> ControlFlow<()> {
        if let Some(open) = self.stack.pop() {
            let element = open.finish();
            match self.stack.last_mut() {
                Some(parent) => parent.children.push(Node::Element(Box::new(element))),
                None => self.root = Some(element),
            }
        }
        ControlFlow::Continue(())
    }

    fn text(&mut self, text: &str, _at: &Locator<'_>) -> ControlFlow<()> {
        // The tokenizer already bounds the length of one run of text.
        if let Some(parent) = self.stack.last_mut() {
            parent.text.push_str(text);
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse_default(s: &str) -> Result<Element, XmlError> {
        parse(s.as_bytes(), &Limits::default())
    }

    #[test]
    fn resolves_namespaces_and_entities() {
        let root = parse_default(
            r#"<?xml version="1.0"?><r:a xmlns:r="urn:x" b="1 &amp; 2"><c>x &lt; y &#228;</c><d/></r:a>"#,
        )
        .unwrap();
        assert_eq!(root.namespace.as_deref(), Some("urn:x"));
        assert_eq!(root.local, "a");
        assert_eq!(root.attribute("b"), Some("1 & 2"));
        assert_eq!(root.child_text("c").as_deref(), Some("x < y ä"));
        assert!(root.child("d").is_some());
    }

    #[test]
    fn keeps_text_shape_and_offsets() {
        let doc = "<r>\n  <a>x<!-- c -->y<![CDATA[<z>]]></a>\n  <b> </b>\n</r>";
        let root = parse_default(doc).unwrap();
        // Whitespace between elements is dropped, text in leaves is kept as written.
        assert_eq!(root.children.len(), 2);
        assert_eq!(root.child("a").map(Element::text).as_deref(), Some("xy<z>"));
        assert_eq!(root.child("b").map(Element::text).as_deref(), Some(" "));
        assert_eq!(
            root.child("a").map(|a| a.offset),
            Some(doc.find("<a>").unwrap())
        );
    }

    #[test]
    fn shares_the_tokenizer_hardening() {
        for doc in ["<a>\u{1}</a>", "<a b='<'/>", "<9a/>", "<a xmlns:p=''/>"] {
            assert!(
                matches!(parse_default(doc), Err(XmlError::Malformed { .. })),
                "{doc}"
            );
        }
    }

    #[test]
    fn refuses_dtd_and_entities() {
        let bomb = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><lolz>&lol2;</lolz>"#;
        assert!(matches!(parse_default(bomb), Err(XmlError::Dtd { .. })));
        assert!(matches!(
            parse_default("<a>&ext;</a>"),
            Err(XmlError::Entity { name, .. }) if name == "ext"
        ));
        assert!(matches!(
            parse_default(r#"<a b="&ext;"/>"#),
            Err(XmlError::Entity { name, .. }) if name == "ext"
        ));
    }

    #[test]
    fn enforces_each_limit() {
        let limits = Limits {
            max_depth: 3,
            max_elements: 5,
            max_attributes: 2,
            max_name_len: 8,
            max_text_len: 10,
            max_bytes: 200,
        };
        let p = |s: &str| parse(s.as_bytes(), &limits);
        assert!(matches!(
            p("<a><b><c><d/></c></b></a>"),
            Err(XmlError::TooDeep { limit: 3, .. })
        ));
        assert!(matches!(
            p("<a><b/><b/><b/><b/><b/></a>"),
            Err(XmlError::TooManyElements { limit: 5, .. })
        ));
        assert!(matches!(
            p(r#"<a x="1" y="2" z="3"/>"#),
            Err(XmlError::TooManyAttributes { limit: 2, .. })
        ));
        assert!(matches!(
            p("<abcdefghij/>"),
            Err(XmlError::NameTooLong { limit: 8, .. })
        ));
        assert!(matches!(
            p("<a>01234567890</a>"),
            Err(XmlError::TextTooLong { limit: 10, .. })
        ));
        let big = format!("<a>{}</a>", " ".repeat(300));
        assert!(matches!(
            p(&big),
            Err(XmlError::TooLarge { limit: 200, .. })
        ));
    }

    #[test]
    fn malformed_documents_name_the_position() {
        let err = parse_default("<a>\n  <b></c>\n</a>").unwrap_err();
        match err {
            XmlError::Malformed { at, .. } => assert_eq!(at.line, 2),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            parse_default("<a><b></a>"),
            Err(XmlError::Malformed { .. })
        ));
        assert!(matches!(
            parse_default("<a/><b/>"),
            Err(XmlError::Malformed { .. })
        ));
        assert!(matches!(parse_default(""), Err(XmlError::Malformed { .. })));
        assert!(matches!(
            parse_default("<p:a/>"),
            Err(XmlError::Malformed { .. })
        ));
        assert!(matches!(
            parse(b"<a>\xff</a>", &Limits::default()),
            Err(XmlError::Encoding { .. })
        ));
    }
}

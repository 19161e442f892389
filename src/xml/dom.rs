//! A small, bounded element tree for the format readers.
//!
//! Owns: [`parse`], which turns untrusted bytes into an [`Element`] tree with namespaces
//! resolved, enforcing every [`Limits`] bound and refusing DTDs and non-predefined entities.
//! Whitespace-only text between elements is dropped; CDATA becomes text; comments and
//! processing instructions are skipped.

use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;

use super::{Limits, Position, XmlError};

/// An element with its namespace resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// Namespace URI, `None` when the element is in no namespace.
    pub namespace: Option<String>,
    pub local: String,
    pub attributes: Vec<Attribute>,
    pub children: Vec<Node>,
    /// Byte offset of the start tag in the source, for [`Position::of_offset`].
    pub offset: usize,
}

/// An attribute (namespace declarations are not kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub namespace: Option<String>,
    pub local: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    Text(String),
}

impl Element {
    /// Child elements, in document order.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
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
            .map(|a| a.value.as_str())
    }

    /// Value of an attribute in the given namespace.
    pub fn attribute_ns(&self, namespace: &str, local: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.namespace.as_deref() == Some(namespace) && a.local == local)
            .map(|a| a.value.as_str())
    }
}

/// Parses a whole document into its root element.
pub fn parse(document: &[u8], limits: &Limits) -> Result<Element, XmlError> {
    if document.len() > limits.max_bytes {
        return Err(XmlError::TooLarge {
            limit: limits.max_bytes,
            size: document.len(),
        });
    }
    let text = std::str::from_utf8(document).map_err(|e| XmlError::Encoding {
        at: Position::of_offset(document, e.valid_up_to()),
    })?;
    let mut reader = NsReader::from_str(text);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.expand_empty_elements = false;
    config.trim_text(false);

    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut element_count = 0usize;
    let at =
        |offset: u64| Position::of_offset(document, usize::try_from(offset).unwrap_or(usize::MAX));

    loop {
        let offset = reader.buffer_position();
        let (resolved, event) = match reader.read_resolved_event() {
            Ok(x) => x,
            Err(e) => {
                return Err(XmlError::Malformed {
                    message: e.to_string(),
                    at: at(reader.error_position()),
                });
            }
        };
        match event {
            Event::DocType(_) => return Err(XmlError::Dtd { at: at(offset) }),
            Event::Start(ref start) | Event::Empty(ref start) => {
                let is_empty = matches!(event, Event::Empty(_));
                if root.is_some() {
                    return Err(XmlError::Malformed {
                        message: "content after the root element".into(),
                        at: at(offset),
                    });
                }
                element_count += 1;
                if element_count > limits.max_elements {
                    return Err(XmlError::TooManyElements {
                        limit: limits.max_elements,
                        at: at(offset),
                    });
                }
                if stack.len() + 1 > limits.max_depth {
                    return Err(XmlError::TooDeep {
                        limit: limits.max_depth,
                        at: at(offset),
                    });
                }
                let namespace = namespace_of(resolved, offset, &at)?;
                let element = open_element(&reader, namespace, start, limits, offset, &at)?;
                if is_empty {
                    close(&mut stack, &mut root, element);
                } else {
                    stack.push(element);
                }
            }
            Event::End(_) => {
                // check_end_names guarantees the end tag matches the open element.
                if let Some(element) = stack.pop() {
                    close(&mut stack, &mut root, element);
                }
            }
            Event::Text(text) => {
                let raw = text.xml10_content();
                push_text(&mut stack, &raw, limits, offset, &at)?;
            }
            Event::CData(cdata) => {
                let raw = cdata.xml10_content();
                push_text(&mut stack, &raw, limits, offset, &at)?;
            }
            Event::GeneralRef(reference) => {
                let name = reference.as_ref().to_owned();
                let ch = match reference.resolve_char_ref() {
                    Ok(Some(c)) => Some(c),
                    Ok(None) => predefined_entity(&name),
                    Err(e) => {
                        return Err(XmlError::Malformed {
                            message: e.to_string(),
                            at: at(offset),
                        });
                    }
                };
                match ch {
                    Some(c) => {
                        push_text(&mut stack, c.encode_utf8(&mut [0; 4]), limits, offset, &at)?
                    }
                    None => {
                        return Err(XmlError::Entity {
                            name,
                            at: at(offset),
                        });
                    }
                }
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Malformed {
            message: "document ends inside an element".into(),
            at: at(u64::try_from(document.len()).unwrap_or(u64::MAX)),
        });
    }
    let mut root = root.ok_or_else(|| XmlError::Malformed {
        message: "no root element".into(),
        at: at(0),
    })?;
    drop_whitespace(&mut root);
    Ok(root)
}

fn predefined_entity(name: &str) -> Option<char> {
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "apos" => Some('\''),
        "quot" => Some('"'),
        _ => None,
    }
}

fn open_element(
    reader: &NsReader<&[u8]>,
    namespace: Option<String>,
    start: &BytesStart<'_>,
    limits: &Limits,
    offset: u64,
    at: &dyn Fn(u64) -> Position,
) -> Result<Element, XmlError> {
    let name = start.name();
    if name.as_ref().len() > limits.max_name_len {
        return Err(XmlError::NameTooLong {
            limit: limits.max_name_len,
            at: at(offset),
        });
    }
    let local = name.local_name().as_ref().to_owned();
    let mut attributes = Vec::new();
    for (count, attribute) in start.attributes().with_checks(true).enumerate() {
        if count + 1 > limits.max_attributes {
            return Err(XmlError::TooManyAttributes {
                limit: limits.max_attributes,
                at: at(offset),
            });
        }
        let attribute = attribute.map_err(|e| XmlError::Malformed {
            message: e.to_string(),
            at: at(offset),
        })?;
        let key = attribute.key;
        if key.as_ref().len() > limits.max_name_len {
            return Err(XmlError::NameTooLong {
                limit: limits.max_name_len,
                at: at(offset),
            });
        }
        if attribute.value.len() > limits.max_text_len {
            return Err(XmlError::TextTooLong {
                limit: limits.max_text_len,
                at: at(offset),
            });
        }
        if key.as_ref() == "xmlns" || key.as_ref().starts_with("xmlns:") {
            continue;
        }
        let (resolved, local_name) = reader.resolver().resolve_attribute(key);
        let value = attribute
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| match e {
                quick_xml::Error::Escape(quick_xml::escape::EscapeError::UnrecognizedEntity(
                    _,
                    name,
                )) => XmlError::Entity {
                    name,
                    at: at(offset),
                },
                other => XmlError::Malformed {
                    message: other.to_string(),
                    at: at(offset),
                },
            })?;
        attributes.push(Attribute {
            namespace: namespace_of(resolved, offset, at)?,
            local: local_name.as_ref().to_owned(),
            value: value.into_owned(),
        });
    }
    Ok(Element {
        namespace,
        local,
        attributes,
        children: Vec::new(),
        offset: usize::try_from(offset).unwrap_or(usize::MAX),
    })
}

fn namespace_of(
    resolved: ResolveResult<'_>,
    offset: u64,
    at: &dyn Fn(u64) -> Position,
) -> Result<Option<String>, XmlError> {
    match resolved {
        ResolveResult::Bound(ns) => Ok(Some(ns.as_ref().to_owned())),
        ResolveResult::Unbound => Ok(None),
        ResolveResult::Unknown(prefix) => Err(XmlError::Malformed {
            message: format!(
                "undeclared namespace prefix `{}`",
                AsRef::<str>::as_ref(&prefix)
            ),
            at: at(offset),
        }),
    }
}

fn push_text(
    stack: &mut [Element],
    text: &str,
    limits: &Limits,
    offset: u64,
    at: &dyn Fn(u64) -> Position,
) -> Result<(), XmlError> {
    let Some(parent) = stack.last_mut() else {
        if text.trim().is_empty() {
            return Ok(());
        }
        return Err(XmlError::Malformed {
            message: "text outside the root element".into(),
            at: at(offset),
        });
    };
    if let Some(Node::Text(previous)) = parent.children.last_mut() {
        if previous.len() + text.len() > limits.max_text_len {
            return Err(XmlError::TextTooLong {
                limit: limits.max_text_len,
                at: at(offset),
            });
        }
        previous.push_str(text);
    } else {
        if text.len() > limits.max_text_len {
            return Err(XmlError::TextTooLong {
                limit: limits.max_text_len,
                at: at(offset),
            });
        }
        parent.children.push(Node::Text(text.to_owned()));
    }
    Ok(())
}

fn close(stack: &mut [Element], root: &mut Option<Element>, element: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(Node::Element(element)),
        None => *root = Some(element),
    }
}

/// Removes whitespace-only text from elements that also hold child elements.
fn drop_whitespace(element: &mut Element) {
    let mut work = vec![element];
    while let Some(e) = work.pop() {
        let has_elements = e.children.iter().any(|n| matches!(n, Node::Element(_)));
        if has_elements {
            e.children
                .retain(|n| !matches!(n, Node::Text(t) if t.trim().is_empty()));
        }
        for child in e.children.iter_mut() {
            if let Node::Element(c) = child {
                work.push(c);
            }
        }
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

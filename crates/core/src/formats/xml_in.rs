//! Reading helpers shared by the format readers.
//!
//! Owns: [`Node`], an element seen through one format's namespace together with the path that
//! names it in errors (`/Virta/Opiskelija[2]/Opintosuoritukset/Opintosuoritus[3]/SuoritusPvm`),
//! typed accessors that fail with that path, and the bookkeeping of source parts the model does
//! not carry. Error messages name paths and what is wrong, never values (they may be personal
//! data).

use std::rc::Rc;

use crate::record::{Date, Decimal};
use siirto_xsd::dom::Element;

use super::FormatError;
use super::report::ReadReport;

/// The XML namespace (`xml:lang`).
pub(crate) const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
/// XML Schema instance attributes (`xsi:schemaLocation`) are never data.
const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// An element of a document in the namespace `ns`, with its path.
///
/// The path is rendered only when it is needed (an error, a report entry): a node keeps the
/// chain of elements that leads to it, and an index (`Opintosuoritus[3]`) is worked out from
/// the siblings then, so reading a large record allocates no path strings.
#[derive(Clone)]
pub(crate) struct Node<'a> {
    pub(crate) element: &'a Element,
    ns: &'static str,
    /// Prefix of report paths (`virta:`).
    prefix: &'static str,
    /// The parent's node, `None` for the root.
    parent: Option<Rc<Node<'a>>>,
}

impl<'a> Node<'a> {
    pub(crate) fn root(element: &'a Element, ns: &'static str, prefix: &'static str) -> Node<'a> {
        Node {
            element,
            ns,
            prefix,
            parent: None,
        }
    }

    /// The path naming this element in errors, with an index where siblings share its name
    /// (`/Virta/Opiskelija[2]/Opintosuoritukset/Opintosuoritus[3]/SuoritusPvm`).
    pub(crate) fn path(&self) -> String {
        let mut steps = Vec::new();
        let mut node = self;
        loop {
            let Some(parent) = node.parent.as_deref() else {
                steps.push(format!("/{}", node.element.local));
                break;
            };
            let mut index = 0;
            let mut total = 0;
            for sibling in parent.named(&node.element.local) {
                total += 1;
                if std::ptr::eq(sibling, node.element) {
                    index = total;
                }
            }
            steps.push(if total > 1 {
                format!("/{}[{index}]", node.element.local)
            } else {
                format!("/{}", node.element.local)
            });
            node = parent;
        }
        steps.reverse();
        steps.concat()
    }

    pub(crate) fn local(&self) -> &str {
        &self.element.local
    }

    pub(crate) fn invalid(&self, problem: impl Into<String>) -> FormatError {
        FormatError::Invalid {
            path: self.path(),
            problem: problem.into(),
        }
    }

    /// The report path of this node without indices (`virta:/Virta/Opiskelija/...`).
    pub(crate) fn generic_path(&self) -> String {
        let mut names = Vec::new();
        let mut node = Some(self);
        while let Some(n) = node {
            names.push(n.element.local.as_str());
            node = n.parent.as_deref();
        }
        let mut out = String::from(self.prefix);
        for name in names.iter().rev() {
            out.push('/');
            out.push_str(name);
        }
        out
    }

    /// Child elements in the format's namespace, in document order.
    pub(crate) fn children(&self) -> Vec<Node<'a>> {
        let parent = Rc::new(self.clone());
        self.element
            .elements()
            .filter(|e| e.namespace.as_deref() == Some(self.ns))
            .map(|e| self.child_node(e, &parent))
            .collect()
    }

    fn named<'s>(&'s self, local: &'s str) -> impl Iterator<Item = &'a Element> + 's {
        let ns = self.ns;
        let element: &'a Element = self.element;
        element
            .elements()
            .filter(move |e| e.local == local && e.namespace.as_deref() == Some(ns))
    }

    fn child_node(&self, e: &'a Element, parent: &Rc<Node<'a>>) -> Node<'a> {
        Node {
            element: e,
            ns: self.ns,
            prefix: self.prefix,
            parent: Some(parent.clone()),
        }
    }

    /// Child elements with this name, in document order.
    pub(crate) fn all(&self, local: &str) -> Vec<Node<'a>> {
        let parent = Rc::new(self.clone());
        self.named(local)
            .map(|e| self.child_node(e, &parent))
            .collect()
    }

    /// The first child element with this name.
    pub(crate) fn first(&self, local: &str) -> Option<Node<'a>> {
        let first = self.named(local).next()?;
        Some(self.child_node(first, &Rc::new(self.clone())))
    }

    pub(crate) fn required(&self, local: &str) -> Result<Node<'a>, FormatError> {
        self.first(local)
            .ok_or_else(|| self.invalid(format!("required element `{local}` is missing")))
    }

    /// The element's text, trimmed; `None` when empty.
    pub(crate) fn text(&self) -> Option<String> {
        let t = self.element.text();
        let t = t.trim();
        (!t.is_empty()).then(|| t.to_owned())
    }

    /// The element's text with whitespace collapsed as `xs:token` does; `None` when empty.
    pub(crate) fn token(&self) -> Option<String> {
        let t = collapse(&self.element.text());
        (!t.is_empty()).then_some(t)
    }

    pub(crate) fn child_text(&self, local: &str) -> Option<String> {
        self.first(local).and_then(|n| n.text())
    }

    pub(crate) fn child_token(&self, local: &str) -> Option<String> {
        self.first(local).and_then(|n| n.token())
    }

    pub(crate) fn required_text(&self, local: &str) -> Result<String, FormatError> {
        let node = self.required(local)?;
        node.text().ok_or_else(|| node.invalid("must not be empty"))
    }

    /// An attribute in no namespace, trimmed; `None` when absent or empty.
    pub(crate) fn attribute(&self, name: &str) -> Option<String> {
        let v = self.element.attribute(name)?.trim();
        (!v.is_empty()).then(|| v.to_owned())
    }

    pub(crate) fn required_attribute(&self, name: &str) -> Result<String, FormatError> {
        self.attribute(name)
            .ok_or_else(|| self.invalid(format!("required attribute `{name}` is missing or empty")))
    }

    /// `xml:lang`, when present and not empty.
    pub(crate) fn xml_lang(&self) -> Option<String> {
        let v = self.element.attribute_ns(XML_NS, "lang")?.trim();
        (!v.is_empty()).then(|| v.to_owned())
    }

    pub(crate) fn date(&self) -> Result<Date, FormatError> {
        let text = self.text().unwrap_or_default();
        Date::parse_xs_date(&text).map_err(|e| self.invalid(e.to_string()))
    }

    pub(crate) fn child_date(&self, local: &str) -> Result<Option<Date>, FormatError> {
        self.first(local).map(|n| n.date()).transpose()
    }

    pub(crate) fn required_date(&self, local: &str) -> Result<Date, FormatError> {
        self.required(local)?.date()
    }

    pub(crate) fn decimal(&self) -> Result<Decimal, FormatError> {
        let text = self.text().unwrap_or_default();
        Decimal::parse(&text).map_err(|e| self.invalid(e.to_string()))
    }

    pub(crate) fn attribute_date(&self, name: &str) -> Result<Option<Date>, FormatError> {
        self.attribute(name)
            .map(|v| {
                Date::parse_xs_date(&v)
                    .map_err(|e| self.invalid(format!("attribute `{name}`: {e}")))
            })
            .transpose()
    }

    /// Notes every child element and attribute the reader did not take: children outside
    /// `known_children` (or in another namespace), attributes outside `known_attributes`.
    /// `xsi:*` attributes are ignored; `xml:lang` counts as taken when `known_attributes`
    /// lists `xml:lang`.
    pub(crate) fn note_rest(
        &self,
        known_children: &[&str],
        known_attributes: &[&str],
        report: &mut ReadReport,
    ) {
        for e in self.element.elements() {
            let ours = e.namespace.as_deref() == Some(self.ns);
            if !ours || !known_children.contains(&e.local.as_str()) {
                let name = if ours {
                    e.local.to_string()
                } else {
                    format!("{{{}}}{}", e.namespace.as_deref().unwrap_or(""), e.local)
                };
                report.not_carried(format!("{}/{name}", self.generic_path()));
            }
        }
        for a in self.element.attributes.iter() {
            match a.namespace.as_deref() {
                Some(XSI_NS) => {}
                Some(XML_NS) if a.local == "lang" && known_attributes.contains(&"xml:lang") => {}
                None if known_attributes.contains(&a.local.as_str()) => {}
                _ => report.not_carried(format!("{}/@{}", self.generic_path(), a.local)),
            }
        }
    }
}

/// Collapses whitespace as `xs:token` does: trims and turns every run into one space.
pub(crate) fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing unwrap is a failing test
mod tests {
    use super::*;
    use siirto_xsd::{Limits, dom};

    fn parse(s: &str) -> Element {
        dom::parse(s.as_bytes(), &Limits::default()).unwrap()
    }

    #[test]
    fn paths_index_repeated_siblings_only() {
        let root = parse(
            r#"<r xmlns="urn:t" xmlns:o="urn:other"><a/><b><c>x</c></b><a><d> 2024-01-02 </d></a><o:z/></r>"#,
        );
        let node = Node::root(&root, "urn:t", "t:");
        let kids = node.children();
        let paths: Vec<String> = kids.iter().map(Node::path).collect();
        assert_eq!(paths, vec!["/r/a[1]", "/r/b", "/r/a[2]"]);
        let d = kids[2].required("d").unwrap();
        assert_eq!(d.path(), "/r/a[2]/d");
        assert_eq!(d.date().unwrap().to_string(), "2024-01-02");
        let err = kids[0].required_text("q").unwrap_err();
        assert_eq!(err.to_string(), "/r/a[1]: required element `q` is missing");
        let mut report = ReadReport::default();
        node.note_rest(&["a"], &[], &mut report);
        assert_eq!(report.not_carried.get("t:/r/b"), Some(&1));
        assert_eq!(report.not_carried.get("t:/r/{urn:other}z"), Some(&1));
    }

    #[test]
    fn errors_do_not_echo_values() {
        let root = parse(r#"<r xmlns="urn:t"><d>131052-308T</d></r>"#);
        let node = Node::root(&root, "urn:t", "t:");
        let err = node.required_date("d").unwrap_err().to_string();
        assert!(!err.contains("131052"), "{err}");
        assert!(err.contains("/r/d"));
    }

    #[test]
    fn xml_lang_resolves_without_declaration() {
        let root = parse(r#"<r xmlns="urn:t"><t xml:lang="fi">nimi</t></r>"#);
        let node = Node::root(&root, "urn:t", "t:");
        assert_eq!(
            node.required("t").unwrap().xml_lang().as_deref(),
            Some("fi")
        );
        assert_eq!(collapse("  a \n b  "), "a b");
    }
}

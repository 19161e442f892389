//! Canonical XML 1.0 (inclusive, with or without comments) and the enveloped-signature
//! transform, over the project's hardened tokenizer.
//!
//! Owns: [`parse`], which reads untrusted bytes into a [`Document`] that keeps what
//! canonicalization needs and the format readers' [`super::dom`] drops (comments, processing
//! instructions, qualified names as written, namespace declarations, whitespace), and the
//! renderers: [`Document::canonical`] for a whole document (optionally without one element's
//! subtree: the enveloped-signature transform of XML Signature §6.6.4) and
//! [`Document::canonical_subtree`] for one element as a document subset (what a signature's
//! `SignedInfo` is canonicalized as). Written from W3C Canonical XML 1.0 (REC 2001-03-15).
//!
//! Why not a library: `xml-sec` (pure Rust) says it is pre-release and brings its own XML
//! parser, and `xmlsec` binds the C library xmlsec1 with libxml2 — both read the document
//! with a parser other than [`super::reader`], so the limits, the refusal of DTDs and
//! entities, and the positions in errors would no longer be the ones every other path applies.
//! Canonical XML 1.0 without a DTD is small: the node-set is always "the whole document",
//! "the whole document minus one subtree", or "one subtree", which this module renders
//! directly.
//!
//! Scope: no DTD is ever read ([`super::reader`] refuses it), so the parts of Canonical XML
//! that depend on one (default attributes, attribute types other than CDATA, entity
//! expansion) never apply; nor do arbitrary XPath node-sets, which XML Signature as Siirto
//! accepts it never needs. It must not: do IO, or know about signatures (that is
//! `siirto_core::dsig`).

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use super::dom::{Name, Names};
use super::reader::{self, Handler, Locator, StartTag, XML_NAMESPACE};
use super::{Limits, Position, XmlError};

/// A parsed document, as Canonical XML sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Comments and processing instructions before the root element.
    pub before: Vec<Misc>,
    pub root: Element,
    /// Comments and processing instructions after the root element.
    pub after: Vec<Misc>,
}

/// A comment or processing instruction outside the root element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Misc {
    Comment(String),
    Instruction { target: String, data: String },
}

/// An element with its names as written and as resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// The qualified name as written (`ds:Signature`).
    pub qname: Name,
    pub namespace: Option<Name>,
    pub local: Name,
    /// The namespace declarations on this element: prefix (`""` for the default namespace)
    /// and URI (`""` undeclares the default namespace).
    pub declarations: Vec<(Name, Name)>,
    pub attributes: Vec<Attribute>,
    pub children: Vec<Content>,
    /// Byte offset of the start tag (in the UTF-8 decoding of a UTF-16 source).
    pub offset: usize,
}

/// An attribute (namespace declarations are in [`Element::declarations`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub qname: Name,
    pub namespace: Option<Name>,
    pub local: Name,
    /// The normalized value (references expanded).
    pub value: String,
}

/// What an element holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// Boxed: a document's many text children need not be an element's size.
    Element(Box<Element>),
    /// Character data, references expanded, line ends normalized, CDATA merged in.
    Text(String),
    Comment(String),
    Instruction {
        target: String,
        data: String,
    },
}

impl Element {
    /// Child elements, in document order.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|c| match c {
            Content::Element(e) => Some(&**e),
            _ => None,
        })
    }

    /// Whether this element has the given namespace and local name.
    pub fn is(&self, namespace: &str, local: &str) -> bool {
        self.namespace.as_deref() == Some(namespace) && self.local == local
    }

    /// Value of an attribute in no namespace.
    pub fn attribute(&self, local: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.namespace.is_none() && a.local == local)
            .map(|a| a.value.as_str())
    }

    /// The text directly inside this element.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for c in &self.children {
            if let Content::Text(t) = c {
                s.push_str(t);
            }
        }
        s
    }
}

/// Whether comments are part of the canonical form (`#WithComments`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comments {
    Omit,
    Keep,
}

/// Reads a whole document with the shared tokenizer (every [`Limits`] bound, no DTD, no
/// entity other than the predefined five).
pub fn parse(document: &[u8], limits: &Limits) -> Result<Document, XmlError> {
    let mut builder = Builder {
        stack: Vec::new(),
        root: None,
        before: Vec::new(),
        after: Vec::new(),
        names: Names::default(),
    };
    reader::parse_slice(document, limits, &mut builder)?;
    let root = builder.root.ok_or_else(|| XmlError::Malformed {
        message: "no root element".into(),
        at: Position::default(),
    })?;
    Ok(Document {
        before: builder.before,
        root,
        after: builder.after,
    })
}

/// Line ends inside comments and processing instructions as an XML processor reports them.
fn normalize_line_ends(s: &str) -> String {
    if s.contains('\r') {
        s.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        s.to_owned()
    }
}

struct Builder {
    stack: Vec<Element>,
    root: Option<Element>,
    before: Vec<Misc>,
    after: Vec<Misc>,
    /// Every name and namespace URI of the document, stored once.
    names: Names,
}

impl Builder {
    fn name(&mut self, s: &str) -> Name {
        self.names.get(s)
    }

    fn misc(&mut self, misc: Misc, content: Content) {
        match self.stack.last_mut() {
            Some(parent) => parent.children.push(content),
            None if self.root.is_none() => self.before.push(misc),
            None => self.after.push(misc),
        }
    }
}

impl Handler for Builder {
    fn start_element(&mut self, tag: &StartTag<'_>, at: &Locator<'_>) -> ControlFlow<()> {
        // The scope lists bindings innermost first; this element's own declarations are the
        // ones its parent did not have.
        let declarations = if tag.declares_namespaces() {
            let outer: usize = self
                .stack
                .iter()
                .map(|e| e.declarations.len())
                .sum::<usize>()
                + 1;
            let all: Vec<(&str, &str)> = tag.namespaces_in_scope().collect();
            let own = all.len().saturating_sub(outer);
            let mut own: Vec<(Name, Name)> = all[..own]
                .iter()
                .map(|(p, u)| (self.name(p), self.name(u)))
                .collect();
            own.reverse();
            own
        } else {
            Vec::new()
        };
        let qname = self.name(tag.qname());
        let namespace = tag.namespace().map(|n| self.name(n));
        let local = self.name(tag.local());
        let attributes = tag
            .attributes()
            .map(|a| Attribute {
                qname: self.name(a.qname),
                namespace: a.namespace.map(|n| self.name(n)),
                local: self.name(a.local),
                value: a.value.to_owned(),
            })
            .collect();
        self.stack.push(Element {
            qname,
            namespace,
            local,
            declarations,
            attributes,
            children: Vec::new(),
            offset: at.offset(),
        });
        ControlFlow::Continue(())
    }

    fn end_element(&mut self, _at: &Locator<'_>) -> ControlFlow<()> {
        if let Some(mut element) = self.stack.pop() {
            element.children.shrink_to_fit();
            match self.stack.last_mut() {
                Some(parent) => parent.children.push(Content::Element(Box::new(element))),
                None => self.root = Some(element),
            }
        }
        ControlFlow::Continue(())
    }

    fn text(&mut self, text: &str, _at: &Locator<'_>) -> ControlFlow<()> {
        if let Some(parent) = self.stack.last_mut() {
            match parent.children.last_mut() {
                Some(Content::Text(previous)) => previous.push_str(text),
                _ => parent.children.push(Content::Text(text.to_owned())),
            }
        }
        ControlFlow::Continue(())
    }

    fn comment(&mut self, text: &str, _at: &Locator<'_>) -> ControlFlow<()> {
        let text = normalize_line_ends(text);
        self.misc(Misc::Comment(text.clone()), Content::Comment(text));
        ControlFlow::Continue(())
    }

    fn processing_instruction(
        &mut self,
        target: &str,
        data: &str,
        _at: &Locator<'_>,
    ) -> ControlFlow<()> {
        let data = normalize_line_ends(data.trim_start_matches([' ', '\t', '\r', '\n']));
        let target = target.to_owned();
        self.misc(
            Misc::Instruction {
                target: target.clone(),
                data: data.clone(),
            },
            Content::Instruction { target, data },
        );
        ControlFlow::Continue(())
    }
}

/// Namespace bindings in scope: prefix to URI; a default namespace that is undeclared is
/// absent. The `xml` prefix is never listed (Canonical XML never renders it).
type Scope = BTreeMap<String, String>;

fn extend_scope(parent: &Scope, element: &Element) -> Scope {
    let mut scope = parent.clone();
    for (prefix, uri) in &element.declarations {
        if prefix == "xml" {
            continue;
        }
        if uri.is_empty() {
            scope.remove(prefix.as_str());
        } else {
            scope.insert(prefix.to_string(), uri.to_string());
        }
    }
    scope
}

struct Renderer<'a> {
    out: Vec<u8>,
    comments: Comments,
    /// An element left out with its subtree (the enveloped signature).
    exclude: Option<&'a Element>,
}

impl Document {
    /// The canonical form of the whole document; with `exclude`, of the document without that
    /// element and its descendants (the enveloped-signature transform followed by Canonical
    /// XML). `exclude` must be an element of this document (compared by address).
    pub fn canonical(&self, comments: Comments, exclude: Option<&Element>) -> Vec<u8> {
        let mut r = Renderer {
            out: Vec::new(),
            comments,
            exclude,
        };
        for m in &self.before {
            if comments == Comments::Omit && matches!(m, Misc::Comment(_)) {
                continue;
            }
            r.misc(m);
            r.out.push(b'\n');
        }
        r.element(&self.root, &Scope::new(), &Scope::new(), &[]);
        for m in &self.after {
            if comments == Comments::Omit && matches!(m, Misc::Comment(_)) {
                continue;
            }
            r.out.push(b'\n');
            r.misc(m);
        }
        r.out
    }

    /// The canonical form of the subtree at `path` (indices among element children, from the
    /// root) as a document subset: the apex renders every namespace in scope and the `xml:*`
    /// attributes it inherits, as Canonical XML 1.0 §2.4 requires. `None` when no element
    /// is at `path`.
    pub fn canonical_subtree(&self, path: &[usize], comments: Comments) -> Option<Vec<u8>> {
        let mut scope = extend_scope(&Scope::new(), &self.root);
        let mut inherited: BTreeMap<String, (Name, String)> = BTreeMap::new();
        let mut element = &self.root;
        for &index in path {
            for a in &element.attributes {
                if a.namespace.as_deref() == Some(XML_NAMESPACE) {
                    inherited.insert(a.local.to_string(), (a.qname.clone(), a.value.clone()));
                }
            }
            element = element.elements().nth(index)?;
            scope = extend_scope(&scope, element);
        }
        let extra: Vec<Attribute> = inherited
            .into_iter()
            .filter(|(local, _)| {
                !element
                    .attributes
                    .iter()
                    .any(|a| a.namespace.as_deref() == Some(XML_NAMESPACE) && a.local == **local)
            })
            .map(|(local, (qname, value))| Attribute {
                qname,
                namespace: Some(Name::from(XML_NAMESPACE)),
                local: Name::from(local.as_str()),
                value,
            })
            .collect();
        let mut r = Renderer {
            out: Vec::new(),
            comments,
            exclude: None,
        };
        // The apex's scope is computed above; render it against an empty output ancestor.
        r.element_in_scope(element, &scope, &Scope::new(), &extra);
        Some(r.out)
    }
}

impl Renderer<'_> {
    fn misc(&mut self, misc: &Misc) {
        match misc {
            Misc::Comment(text) => self.comment(text),
            Misc::Instruction { target, data } => self.instruction(target, data),
        }
    }

    fn comment(&mut self, text: &str) {
        self.out.extend_from_slice(b"<!--");
        self.out.extend_from_slice(text.as_bytes());
        self.out.extend_from_slice(b"-->");
    }

    fn instruction(&mut self, target: &str, data: &str) {
        self.out.extend_from_slice(b"<?");
        self.out.extend_from_slice(target.as_bytes());
        if !data.is_empty() {
            self.out.push(b' ');
            self.out.extend_from_slice(data.as_bytes());
        }
        self.out.extend_from_slice(b"?>");
    }

    fn element(
        &mut self,
        element: &Element,
        parent: &Scope,
        rendered: &Scope,
        extra: &[Attribute],
    ) {
        // Most elements declare nothing: they render in their parent's scope, not a copy.
        if element.declarations.is_empty() {
            self.element_in_scope(element, parent, rendered, extra);
        } else {
            let scope = extend_scope(parent, element);
            self.element_in_scope(element, &scope, rendered, extra);
        }
    }

    /// Renders `element` whose bindings in scope are `scope`, below an output ancestor whose
    /// bindings in scope were `rendered`.
    fn element_in_scope(
        &mut self,
        element: &Element,
        scope: &Scope,
        rendered: &Scope,
        extra: &[Attribute],
    ) {
        if self.exclude.is_some_and(|x| std::ptr::eq(x, element)) {
            return;
        }
        self.out.push(b'<');
        self.out.extend_from_slice(element.qname.as_bytes());
        // Namespace nodes, by prefix (the default namespace, with no prefix, first); only those
        // the nearest output ancestor did not already have with the same URI.
        if !scope.contains_key("") && rendered.get("").is_some_and(|u| !u.is_empty()) {
            self.out.extend_from_slice(b" xmlns=\"\"");
        }
        for (prefix, uri) in scope {
            if rendered.get(prefix) == Some(uri) {
                continue;
            }
            if prefix.is_empty() {
                self.out.extend_from_slice(b" xmlns=\"");
            } else {
                self.out.extend_from_slice(b" xmlns:");
                self.out.extend_from_slice(prefix.as_bytes());
                self.out.extend_from_slice(b"=\"");
            }
            escape_attribute(&mut self.out, uri);
            self.out.push(b'"');
        }
        // Attributes by namespace URI (none first), then local name.
        let mut attributes: Vec<&Attribute> = element.attributes.iter().chain(extra).collect();
        attributes.sort_by(|a, b| {
            (a.namespace.as_deref().unwrap_or(""), a.local.as_str())
                .cmp(&(b.namespace.as_deref().unwrap_or(""), b.local.as_str()))
        });
        for a in attributes {
            self.out.push(b' ');
            self.out.extend_from_slice(a.qname.as_bytes());
            self.out.extend_from_slice(b"=\"");
            escape_attribute(&mut self.out, &a.value);
            self.out.push(b'"');
        }
        self.out.push(b'>');
        for child in &element.children {
            match child {
                Content::Element(e) => self.element(e, scope, scope, &[]),
                Content::Text(t) => escape_text(&mut self.out, t),
                Content::Comment(c) => {
                    if self.comments == Comments::Keep {
                        self.comment(c);
                    }
                }
                Content::Instruction { target, data } => self.instruction(target, data),
            }
        }
        self.out.extend_from_slice(b"</");
        self.out.extend_from_slice(element.qname.as_bytes());
        self.out.push(b'>');
    }
}

fn escape_text(out: &mut Vec<u8>, text: &str) {
    for b in text.bytes() {
        match b {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'\r' => out.extend_from_slice(b"&#xD;"),
            _ => out.push(b),
        }
    }
}

fn escape_attribute(out: &mut Vec<u8>, value: &str) {
    for b in value.bytes() {
        match b {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'"' => out.extend_from_slice(b"&quot;"),
            b'\t' => out.extend_from_slice(b"&#x9;"),
            b'\n' => out.extend_from_slice(b"&#xA;"),
            b'\r' => out.extend_from_slice(b"&#xD;"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! The examples of Canonical XML 1.0 §3 (W3C Recommendation 2001-03-15), inputs written
    //! out here from the specification. §3.5 (entity references) and §3.7 (an XPath
    //! document subset over a DTD) need a DTD, which the hardened reader refuses; §3.1 and
    //! §3.3 carry a document type declaration that is left out here (§3.1's is external and
    //! contributes nothing; §3.3's only adds the default attribute `attr="default"` to `e9`,
    //! so the expected output lacks it); §3.4's attributes declared `ID` and `NMTOKENS` are
    //! plain CDATA without the DTD and so keep their spaces.
    use super::*;

    fn canonical(input: &str, comments: Comments) -> String {
        let doc = parse(input.as_bytes(), &Limits::default()).unwrap();
        String::from_utf8(doc.canonical(comments, None)).unwrap()
    }

    const PIS_COMMENTS: &str = "<?xml version=\"1.0\"?>\n\n<?xml-stylesheet   href=\"doc.xsl\"\n   type=\"text/xsl\"   ?>\n\n<doc>Hello, world!<!-- Comment 1 --></doc>\n\n<?pi-without-data     ?>\n\n<!-- Comment 2 -->\n\n<!-- Comment 3 -->\n";

    #[test]
    fn section_3_1_pis_comments_and_outside_of_document_element() {
        assert_eq!(
            canonical(PIS_COMMENTS, Comments::Omit),
            "<?xml-stylesheet href=\"doc.xsl\"\n   type=\"text/xsl\"   ?>\n<doc>Hello, world!</doc>\n<?pi-without-data?>"
        );
        assert_eq!(
            canonical(PIS_COMMENTS, Comments::Keep),
            "<?xml-stylesheet href=\"doc.xsl\"\n   type=\"text/xsl\"   ?>\n<doc>Hello, world!<!-- Comment 1 --></doc>\n<?pi-without-data?>\n<!-- Comment 2 -->\n<!-- Comment 3 -->"
        );
    }

    #[test]
    fn section_3_2_whitespace_in_document_content() {
        let input = "<doc>\n   <clean>   </clean>\n   <dirty>   A   B   </dirty>\n   <mixed>\n      A\n      <clean>   </clean>\n      B\n      <dirty>   A   B   </dirty>\n      C\n   </mixed>\n</doc>";
        assert_eq!(canonical(input, Comments::Omit), input);
    }

    #[test]
    fn section_3_3_start_and_end_tags() {
        let input = "<doc>\n   <e1   />\n   <e2   ></e2>\n   <e3   name = \"elem3\"   id=\"elem3\"   />\n   <e4   name=\"elem4\"   id=\"elem4\"   ></e4>\n   <e5 a:attr=\"out\" b:attr=\"sorted\" attr2=\"all\" attr=\"I'm\"\n      xmlns:b=\"http://www.ietf.org\"\n      xmlns:a=\"http://www.w3.org\"\n      xmlns=\"http://example.org\"/>\n   <e6 xmlns=\"\" xmlns:a=\"http://www.w3.org\">\n      <e7 xmlns=\"http://www.ietf.org\">\n         <e8 xmlns=\"\" xmlns:a=\"http://www.w3.org\">\n            <e9 xmlns=\"\" xmlns:a=\"http://www.ietf.org\"/>\n         </e8>\n      </e7>\n   </e6>\n</doc>";
        let expected = "<doc>\n   <e1></e1>\n   <e2></e2>\n   <e3 id=\"elem3\" name=\"elem3\"></e3>\n   <e4 id=\"elem4\" name=\"elem4\"></e4>\n   <e5 xmlns=\"http://example.org\" xmlns:a=\"http://www.w3.org\" xmlns:b=\"http://www.ietf.org\" attr=\"I'm\" attr2=\"all\" b:attr=\"sorted\" a:attr=\"out\"></e5>\n   <e6 xmlns:a=\"http://www.w3.org\">\n      <e7 xmlns=\"http://www.ietf.org\">\n         <e8 xmlns=\"\">\n            <e9 xmlns:a=\"http://www.ietf.org\"></e9>\n         </e8>\n      </e7>\n   </e6>\n</doc>";
        assert_eq!(canonical(input, Comments::Omit), expected);
    }

    #[test]
    fn section_3_4_character_modifications_and_character_references() {
        let input = "<doc>\n   <text>First line&#x0d;&#10;Second line</text>\n   <value>&#x32;</value>\n   <compute><![CDATA[value>\"0\" && value<\"10\" ?\"valid\":\"error\"]]></compute>\n   <compute expr='value>\"0\" &amp;&amp; value&lt;\"10\" ?\"valid\":\"error\"'>valid</compute>\n   <norm attr=' &apos;   &#x20;&#13;&#xa;&#9;   &apos; '/>\n   <normNames attr='   A   &#x20;&#13;&#xa;&#9;   B   '/>\n   <normId id=' &apos;   &#x20;&#13;&#xa;&#9;   &apos; '/>\n</doc>";
        let expected = "<doc>\n   <text>First line&#xD;\nSecond line</text>\n   <value>2</value>\n   <compute>value&gt;\"0\" &amp;&amp; value&lt;\"10\" ?\"valid\":\"error\"</compute>\n   <compute expr=\"value>&quot;0&quot; &amp;&amp; value&lt;&quot;10&quot; ?&quot;valid&quot;:&quot;error&quot;\">valid</compute>\n   <norm attr=\" '    &#xD;&#xA;&#x9;   ' \"></norm>\n   <normNames attr=\"   A    &#xD;&#xA;&#x9;   B   \"></normNames>\n   <normId id=\" '    &#xD;&#xA;&#x9;   ' \"></normId>\n</doc>";
        assert_eq!(canonical(input, Comments::Omit), expected);
    }

    #[test]
    fn section_3_6_utf8_and_the_refused_latin1_declaration() {
        assert_eq!(
            canonical("<doc>&#169;</doc>", Comments::Omit),
            "<doc>\u{a9}</doc>"
        );
        // The specification's input declares ISO-8859-1, which the encoding policy refuses.
        assert!(
            parse(
                b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><doc>&#169;</doc>",
                &Limits::default()
            )
            .is_err()
        );
    }

    #[test]
    fn sections_3_5_and_3_7_need_a_dtd_which_is_refused() {
        let input = "<!DOCTYPE doc [<!ENTITY ent1 \"Hello\">]><doc>&ent1;</doc>";
        assert!(matches!(
            parse(input.as_bytes(), &Limits::default()),
            Err(XmlError::Dtd { .. })
        ));
    }

    #[test]
    fn subtree_apex_renders_the_namespaces_and_xml_attributes_in_scope() {
        let input = r#"<a xmlns="urn:a" xmlns:p="urn:p" xml:lang="fi"><b><p:c xmlns:q="urn:q" z="1"><d/></p:c></b></a>"#;
        let doc = parse(input.as_bytes(), &Limits::default()).unwrap();
        let c = doc.canonical_subtree(&[0, 0], Comments::Omit).unwrap();
        assert_eq!(
            String::from_utf8(c).unwrap(),
            r#"<p:c xmlns="urn:a" xmlns:p="urn:p" xmlns:q="urn:q" z="1" xml:lang="fi"><d></d></p:c>"#
        );
        assert!(doc.canonical_subtree(&[3], Comments::Omit).is_none());
    }

    #[test]
    fn excluding_a_subtree_keeps_the_text_around_it() {
        let input = "<a>x<s:Signature xmlns:s=\"urn:s\"><s:V>1</s:V></s:Signature>y<!-- c --></a>";
        let doc = parse(input.as_bytes(), &Limits::default()).unwrap();
        let signature = doc.root.elements().next().unwrap();
        assert_eq!(
            String::from_utf8(doc.canonical(Comments::Omit, Some(signature))).unwrap(),
            "<a>xy</a>"
        );
        assert_eq!(
            String::from_utf8(doc.canonical(Comments::Keep, None)).unwrap(),
            "<a>x<s:Signature xmlns:s=\"urn:s\"><s:V>1</s:V></s:Signature>y<!-- c --></a>"
        );
    }
}

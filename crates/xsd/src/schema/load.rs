//! Reading the schema documents of a schema set.
//!
//! Owns: parsing each XSD file (through the same hardened tokenizer as documents, so no
//! DTD or entity is ever processed) into a small element tree that remembers the namespace
//! bindings in scope at every element, and following `xs:include` / `xs:import` by path
//! relative to the including file. Includes and imports are loaded once each (by canonical
//! path); an import of a namespace already imported is skipped, as libxml2 does; an import
//! that would need the network, or names no file, must be satisfied by another import of
//! the same namespace or loading fails.
//!
//! It must not: fetch anything over the network, or interpret schema components (that is
//! the compiler's job).

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::encoding::{self, Decoded, Encoding};
use crate::reader::{self, Handler, Locator, StartTag};
use crate::{Limits, Position};

use super::SchemaError;

pub const XSD_NS: &str = "http://www.w3.org/2001/XMLSchema";

/// An element of a schema document.
#[derive(Debug)]
pub struct XNode {
    pub ns: Option<Box<str>>,
    pub local: Box<str>,
    pub attrs: Vec<XAttr>,
    pub children: Vec<XNode>,
    pub offset: usize,
    /// Namespace bindings in scope, innermost first.
    pub scope: Rc<Vec<(Box<str>, Box<str>)>>,
    /// Non-whitespace character data directly inside (schema elements have none).
    pub has_text: bool,
}

#[derive(Debug)]
pub struct XAttr {
    pub ns: Option<Box<str>>,
    pub local: Box<str>,
    pub value: Box<str>,
}

impl XNode {
    pub fn is_xsd(&self, local: &str) -> bool {
        self.ns.as_deref() == Some(XSD_NS) && &*self.local == local
    }

    /// An unqualified attribute.
    pub fn attr(&self, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns.is_none() && &*a.local == local)
            .map(|a| &*a.value)
    }

    /// XSD children other than annotations.
    pub fn content(&self) -> impl Iterator<Item = &XNode> {
        self.children.iter().filter(|c| !c.is_xsd("annotation"))
    }

    pub fn lookup_prefix(&self, prefix: &str) -> Option<&str> {
        if prefix == "xml" {
            return Some(reader::XML_NAMESPACE);
        }
        self.scope
            .iter()
            .find(|(p, _)| &**p == prefix)
            .map(|(_, u)| &**u)
            .filter(|u| !u.is_empty())
    }
}

/// One loaded schema document.
#[derive(Debug)]
pub struct SchemaDoc {
    /// How errors name the file.
    pub display: String,
    pub source: Rc<[u8]>,
    pub root: XNode,
    /// The effective target namespace (a chameleon include takes the includer's).
    pub target_ns: Option<String>,
    /// Included without a target namespace into a document that has one.
    pub chameleon: bool,
    pub element_qualified: bool,
    pub attribute_qualified: bool,
    pub block_default: Option<String>,
    /// Namespaces this document imports (and so may refer to).
    pub imports: Vec<Option<String>>,
}

impl SchemaDoc {
    pub fn position(&self, offset: usize) -> Position {
        Position::of_offset(&self.source, offset)
    }
}

/// Limits for reading schema files: they come from configuration, not from peers, but are
/// still bounded. Code lists make them large.
fn schema_limits() -> Limits {
    Limits {
        max_bytes: 64 * 1024 * 1024,
        max_depth: 256,
        max_elements: 10_000_000,
        max_attributes: 256,
        max_name_len: 4096,
        max_text_len: 16 * 1024 * 1024,
    }
}

struct TreeBuilder {
    stack: Vec<XNode>,
    root: Option<XNode>,
    /// Depth inside an `xs:annotation` being skipped (0 = not skipping).
    skipping: usize,
    scopes: Vec<Scope>,
}

/// Namespace bindings in scope at a schema element: (prefix, URI), innermost first.
type Scope = Rc<Vec<(Box<str>, Box<str>)>>;

impl Handler for TreeBuilder {
    fn start_element(&mut self, tag: &StartTag<'_>, at: &Locator<'_>) -> ControlFlow<()> {
        if self.skipping > 0 {
            self.skipping += 1;
            return ControlFlow::Continue(());
        }
        let scope = if tag.declares_namespaces() || self.scopes.is_empty() {
            Rc::new(
                tag.namespaces_in_scope()
                    .map(|(p, u)| (Box::from(p), Box::from(u)))
                    .collect(),
            )
        } else {
            self.scopes
                .last()
                .cloned()
                .unwrap_or_else(|| Rc::new(Vec::new()))
        };
        let node = XNode {
            ns: tag.namespace().map(Box::from),
            local: tag.local().into(),
            attrs: tag
                .attributes()
                .map(|a| XAttr {
                    ns: a.namespace.map(Box::from),
                    local: a.local.into(),
                    value: a.value.into(),
                })
                .collect(),
            children: Vec::new(),
            offset: at.offset(),
            scope: scope.clone(),
            has_text: false,
        };
        if node.is_xsd("annotation") {
            // Keep the annotation element itself (it is allowed almost everywhere) but not
            // its documentation, which dominates some schema files.
            self.skipping = 1;
        }
        self.scopes.push(scope);
        self.stack.push(node);
        ControlFlow::Continue(())
    }

    fn end_element(&mut self, _at: &Locator<'_>) -> ControlFlow<()> {
        if self.skipping > 1 {
            self.skipping -= 1;
            return ControlFlow::Continue(());
        }
        self.skipping = 0;
        self.scopes.pop();
        if let Some(node) = self.stack.pop() {
            match self.stack.last_mut() {
                Some(parent) => parent.children.push(node),
                None => self.root = Some(node),
            }
        }
        ControlFlow::Continue(())
    }

    fn text(&mut self, text: &str, _at: &Locator<'_>) -> ControlFlow<()> {
        if self.skipping == 0
            && !text.trim_matches([' ', '\t', '\n', '\r']).is_empty()
            && let Some(n) = self.stack.last_mut()
        {
            n.has_text = true;
        }
        ControlFlow::Continue(())
    }
}

/// Parses one schema document's text (UTF-8; `encoding` is what it was read in).
fn parse_tree(bytes: &[u8], encoding: Encoding, display: &str) -> Result<XNode, SchemaError> {
    let mut builder = TreeBuilder {
        stack: Vec::new(),
        root: None,
        skipping: 0,
        scopes: Vec::new(),
    };
    let decoded = Decoded {
        text: std::borrow::Cow::Borrowed(bytes),
        encoding,
    };
    reader::parse_decoded(&decoded, &schema_limits(), &mut builder).map_err(|error| {
        SchemaError::NotWellFormed {
            file: display.to_owned(),
            error,
        }
    })?;
    builder.root.ok_or_else(|| SchemaError::NotWellFormed {
        file: display.to_owned(),
        error: crate::XmlError::Malformed {
            message: "no root element".into(),
            at: Position::default(),
        },
    })
}

/// Where the loader stands while following includes and imports.
pub struct Loader {
    pub docs: Vec<SchemaDoc>,
    /// (canonical path, effective target namespace) → document index.
    seen: HashMap<(PathBuf, Option<String>), usize>,
    /// Namespaces imported so far, and from where.
    imported: HashMap<Option<String>, String>,
    /// Imports not loaded from a file: (namespace, location, importing doc, offset).
    pending: Vec<(Option<String>, Option<String>, usize, usize)>,
}

enum Expect {
    Root,
    Include(Option<String>),
    Import(Option<String>),
}

impl Loader {
    fn new() -> Loader {
        Loader {
            docs: Vec::new(),
            seen: HashMap::new(),
            imported: HashMap::new(),
            pending: Vec::new(),
        }
    }

    /// Loads the schema at `path` and everything it includes or imports.
    pub fn load_path(path: &Path) -> Result<Vec<SchemaDoc>, SchemaError> {
        let mut loader = Loader::new();
        loader.load_file(path, Expect::Root, None)?;
        loader.finish()
    }

    /// Loads a schema given as text; relative includes and imports resolve from `base_dir`.
    pub fn load_str(xsd: &str, base_dir: Option<&Path>) -> Result<Vec<SchemaDoc>, SchemaError> {
        let mut loader = Loader::new();
        let bytes: Rc<[u8]> = Rc::from(xsd.as_bytes());
        loader.add_doc(
            bytes,
            Encoding::Utf8,
            "<embedded schema>".into(),
            base_dir.map(Path::to_path_buf),
            Expect::Root,
        )?;
        loader.finish()
    }

    fn finish(self) -> Result<Vec<SchemaDoc>, SchemaError> {
        for (ns, location, doc, offset) in &self.pending {
            if !self.imported.contains_key(ns) && !self.docs.iter().any(|d| &d.target_ns == ns) {
                let d = &self.docs[*doc];
                let at = d.position(*offset);
                let what = ns.as_deref().unwrap_or("(no namespace)");
                let message = match location {
                    Some(l) => format!(
                        "the import of namespace {what} names `{l}`, which would need the network; give a local schemaLocation"
                    ),
                    None => format!(
                        "the import of namespace {what} has no schemaLocation and no other import provides it"
                    ),
                };
                return Err(SchemaError::MissingImport {
                    file: d.display.clone(),
                    line: at.line,
                    column: at.column,
                    message,
                });
            }
        }
        Ok(self.docs)
    }

    fn load_file(
        &mut self,
        path: &Path,
        expect: Expect,
        from: Option<(usize, usize)>,
    ) -> Result<(), SchemaError> {
        let canonical = std::fs::canonicalize(path).map_err(|e| self.io_error(path, e, from))?;
        let key_ns = match &expect {
            Expect::Include(ns) => ns.clone(),
            _ => None,
        };
        if self.seen.contains_key(&(canonical.clone(), key_ns.clone())) {
            return Ok(());
        }
        let bytes = std::fs::read(&canonical).map_err(|e| self.io_error(path, e, from))?;
        let display = path.display().to_string();
        let base = canonical.parent().map(Path::to_path_buf);
        self.seen.insert((canonical, key_ns), self.docs.len());
        // Kept decoded (UTF-16 as UTF-8): offsets into it give line and column later.
        let decoded = encoding::decode(&bytes, schema_limits().max_bytes).map_err(|error| {
            SchemaError::NotWellFormed {
                file: display.clone(),
                error,
            }
        })?;
        let source = Rc::from(&*decoded.text);
        self.add_doc(source, decoded.encoding, display, base, expect)
    }

    fn io_error(
        &self,
        path: &Path,
        e: std::io::Error,
        from: Option<(usize, usize)>,
    ) -> SchemaError {
        match from {
            Some((doc, offset)) => {
                let d = &self.docs[doc];
                let at = d.position(offset);
                SchemaError::MissingImport {
                    file: d.display.clone(),
                    line: at.line,
                    column: at.column,
                    message: format!("cannot read `{}`: {e}", path.display()),
                }
            }
            None => SchemaError::Io {
                file: path.display().to_string(),
                message: e.to_string(),
            },
        }
    }

    fn add_doc(
        &mut self,
        source: Rc<[u8]>,
        encoding: Encoding,
        display: String,
        base_dir: Option<PathBuf>,
        expect: Expect,
    ) -> Result<(), SchemaError> {
        let root = parse_tree(&source, encoding, &display)?;
        let err = |offset: usize, message: String| {
            let at = Position::of_offset(&source, offset);
            SchemaError::Invalid {
                file: display.clone(),
                line: at.line,
                column: at.column,
                message,
            }
        };
        if !root.is_xsd("schema") {
            return Err(err(
                root.offset,
                format!(
                    "the root element is <{}>, not <xs:schema> in namespace {XSD_NS}",
                    root.local
                ),
            ));
        }
        let declared = root.attr("targetNamespace").map(str::to_owned);
        if declared.as_deref() == Some("") {
            return Err(err(root.offset, "targetNamespace must not be empty".into()));
        }
        let (target_ns, chameleon) = match &expect {
            Expect::Root => (declared, false),
            Expect::Include(includer) => match (&declared, includer) {
                (None, Some(t)) => (Some(t.clone()), true),
                (d, i) if d == i => (declared, false),
                _ => {
                    return Err(err(
                        root.offset,
                        format!(
                            "an included schema must have the includer's target namespace {}, not {}",
                            includer.as_deref().unwrap_or("(none)"),
                            declared.as_deref().unwrap_or("(none)")
                        ),
                    ));
                }
            },
            Expect::Import(ns) => {
                if &declared != ns {
                    return Err(err(
                        root.offset,
                        format!(
                            "imported for namespace {}, but its targetNamespace is {}",
                            ns.as_deref().unwrap_or("(none)"),
                            declared.as_deref().unwrap_or("(none)")
                        ),
                    ));
                }
                (declared, false)
            }
        };
        let form = |name: &str| -> Result<bool, SchemaError> {
            match root.attr(name) {
                None | Some("unqualified") => Ok(false),
                Some("qualified") => Ok(true),
                Some(other) => Err(err(root.offset, format!("{name} cannot be `{other}`"))),
            }
        };
        let element_qualified = form("elementFormDefault")?;
        let attribute_qualified = form("attributeFormDefault")?;
        let block_default = root.attr("blockDefault").map(str::to_owned);
        let imports = root
            .content()
            .filter(|c| c.is_xsd("import"))
            .map(|c| c.attr("namespace").map(str::to_owned))
            .collect();
        let index = self.docs.len();
        self.docs.push(SchemaDoc {
            display: display.clone(),
            source: source.clone(),
            root,
            target_ns: target_ns.clone(),
            chameleon,
            element_qualified,
            attribute_qualified,
            block_default,
            imports,
        });
        if matches!(expect, Expect::Root)
            && let Some(ns) = &target_ns
        {
            self.imported
                .entry(Some(ns.clone()))
                .or_insert(display.clone());
        }

        // Follow includes and imports in document order.
        let directives: Vec<(String, Option<String>, Option<String>, usize)> = self.docs[index]
            .root
            .content()
            .filter(|c| c.is_xsd("include") || c.is_xsd("import") || c.is_xsd("redefine"))
            .map(|c| {
                (
                    c.local.to_string(),
                    c.attr("schemaLocation").map(str::to_owned),
                    c.attr("namespace").map(str::to_owned),
                    c.offset,
                )
            })
            .collect();
        for (kind, location, namespace, offset) in directives {
            match kind.as_str() {
                "redefine" => {
                    let at = Position::of_offset(&source, offset);
                    return Err(SchemaError::Unsupported {
                        file: display.clone(),
                        line: at.line,
                        column: at.column,
                        feature: "xs:redefine".into(),
                    });
                }
                "include" => {
                    let Some(location) = location else {
                        return Err(err(offset, "xs:include needs a schemaLocation".into()));
                    };
                    let path = self.local_path(&location, base_dir.as_deref(), index, offset)?;
                    match path {
                        Some(p) => self.load_file(
                            &p,
                            Expect::Include(target_ns.clone()),
                            Some((index, offset)),
                        )?,
                        None => {
                            return Err(err(
                                offset,
                                format!(
                                    "xs:include of `{location}` would need the network; includes must be local files"
                                ),
                            ));
                        }
                    }
                }
                _ => {
                    if namespace == target_ns {
                        return Err(err(
                            offset,
                            "xs:import must name a namespace other than the target namespace"
                                .into(),
                        ));
                    }
                    if namespace.as_deref() == Some(XSD_NS) {
                        continue;
                    }
                    if self.imported.contains_key(&namespace) {
                        // libxml2 skips a second import of the same namespace.
                        continue;
                    }
                    let path = match &location {
                        Some(l) => self.local_path(l, base_dir.as_deref(), index, offset)?,
                        None => None,
                    };
                    match path {
                        Some(p) => {
                            self.imported
                                .insert(namespace.clone(), p.display().to_string());
                            self.load_file(
                                &p,
                                Expect::Import(namespace.clone()),
                                Some((index, offset)),
                            )?;
                        }
                        None => self.pending.push((namespace, location, index, offset)),
                    }
                }
            }
        }
        Ok(())
    }

    /// A schemaLocation as a local path, or `None` when it names a network resource.
    fn local_path(
        &self,
        location: &str,
        base_dir: Option<&Path>,
        doc: usize,
        offset: usize,
    ) -> Result<Option<PathBuf>, SchemaError> {
        let lower = location.to_ascii_lowercase();
        let scheme_end = lower.find(':');
        let has_scheme = scheme_end.is_some_and(|i| {
            i > 1
                && lower[..i]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        });
        let relative = if lower.starts_with("file://") {
            PathBuf::from(&location["file://".len()..])
        } else if has_scheme {
            return Ok(None);
        } else {
            PathBuf::from(location)
        };
        if relative.is_absolute() {
            return Ok(Some(relative));
        }
        match base_dir {
            Some(b) => Ok(Some(b.join(relative))),
            None => {
                let d = &self.docs[doc];
                let at = d.position(offset);
                Err(SchemaError::MissingImport {
                    file: d.display.clone(),
                    line: at.line,
                    column: at.column,
                    message: format!(
                        "`{location}` is relative, but the schema was given as text without a base directory"
                    ),
                })
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keeps_scopes_and_skips_documentation() {
        let xsd = r#"<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:t="urn:t" targetNamespace="urn:t">
            <xs:annotation><xs:documentation><b>big</b></xs:documentation></xs:annotation>
            <xs:element name="a" type="t:T"/>
        </xs:schema>"#;
        let docs = Loader::load_str(xsd, None).unwrap();
        assert_eq!(docs.len(), 1);
        let root = &docs[0].root;
        assert_eq!(root.children.len(), 2);
        assert!(root.children[0].children.is_empty());
        let el = &root.children[1];
        assert_eq!(el.lookup_prefix("t"), Some("urn:t"));
        assert_eq!(el.lookup_prefix("xs"), Some(XSD_NS));
        assert_eq!(docs[0].target_ns.as_deref(), Some("urn:t"));
    }

    #[test]
    fn refuses_network_and_missing_imports() {
        let xsd = r#"<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
            <xs:import namespace="urn:x" schemaLocation="http://example.com/x.xsd"/>
        </xs:schema>"#;
        match Loader::load_str(xsd, None) {
            Err(SchemaError::MissingImport { line, message, .. }) => {
                assert_eq!(line, 2);
                assert!(message.contains("network"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let xsd = r#"<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
            <xs:include schemaLocation="nope.xsd"/>
        </xs:schema>"#;
        let dir = tempfile::tempdir().unwrap();
        match Loader::load_str(xsd, Some(dir.path())) {
            Err(SchemaError::MissingImport { message, .. }) => {
                assert!(message.contains("nope.xsd"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refuses_dtds_and_non_schemas() {
        let dtd = r#"<!DOCTYPE xs:schema [<!ENTITY e "x">]><xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"/>"#;
        assert!(matches!(
            Loader::load_str(dtd, None),
            Err(SchemaError::NotWellFormed { .. })
        ));
        assert!(matches!(
            Loader::load_str("<schema/>", None),
            Err(SchemaError::Invalid { .. })
        ));
    }

    #[test]
    fn includes_once_and_applies_chameleon_namespace() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("common.xsd"),
            r#"<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:simpleType name="S"><xs:restriction base="xs:string"/></xs:simpleType></xs:schema>"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("main.xsd"),
            r#"<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:m">
                <xs:include schemaLocation="common.xsd"/><xs:include schemaLocation="./common.xsd"/>
            </xs:schema>"#,
        )
        .unwrap();
        let docs = Loader::load_path(&dir.path().join("main.xsd")).unwrap();
        assert_eq!(docs.len(), 2);
        assert!(docs[1].chameleon);
        assert_eq!(docs[1].target_ns.as_deref(), Some("urn:m"));
    }
}

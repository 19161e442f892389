//! Compiling loaded schema documents into the immutable [`Model`].
//!
//! Owns: turning the XSD element trees into components — resolving QName references
//! (with the XSD rule that another namespace is only visible when imported), types with
//! their derivations (`extension` and `restriction` of simple and complex content),
//! facets, element and attribute declarations, model groups, attribute groups and
//! wildcards — and handing each complex type's particle tree to [`super::content`] to
//! become an automaton. Every construct it does not implement (identity constraints,
//! substitution groups, `xs:redefine`, notations, ...) is reported with its file, line
//! and column instead of being skipped.
//!
//! It must not: read files (the loader did), or validate documents.

use std::collections::HashSet;

use super::SchemaError;
use super::content::{self, Particle, Term};
use super::load::{SchemaDoc, XNode, XSD_NS};
use super::model::*;
use super::values::{self, Builtin, Family, Value, WhiteSpace};
use super::xsd_regex;
use crate::reader::{is_ncname, split_qname};

type Res<T> = Result<T, SchemaError>;

#[derive(Clone, Copy)]
struct Def<'d> {
    doc: usize,
    node: &'d XNode,
}

/// What a complex type's content was declared as, before automata are built.
enum ContentSpec {
    Empty,
    Simple(SimpleId),
    Particle {
        mixed: bool,
        particle: Option<Particle>,
    },
}

struct AttributeSet {
    uses: Vec<AttributeUse>,
    prohibited: Vec<(NsId, Box<str>)>,
    wildcard: Option<Wildcard>,
}

pub fn compile(docs: &[SchemaDoc]) -> Res<Model> {
    let mut c = Compiler {
        docs,
        m: Model::default(),
        defs_types: NameTable::default(),
        defs_elements: NameTable::default(),
        defs_attributes: NameTable::default(),
        defs_groups: NameTable::default(),
        defs_attribute_groups: NameTable::default(),
        simple_in_progress: HashSet::new(),
        complex_done: Vec::new(),
        complex_specs: Vec::new(),
        groups_in_progress: HashSet::new(),
        attribute_groups_in_progress: HashSet::new(),
        next_particle: 0,
        pending_constraints: Vec::new(),
        xsd_ns: 0,
    };
    c.m.namespaces.push("".into());
    c.xsd_ns = c.ns(Some(XSD_NS));
    c.builtins();
    c.collect_definitions()?;
    c.compile_globals()?;
    c.check_constraints()?;
    c.build_content_models()?;
    c.m.compute_namespace_needs();
    Ok(c.m)
}

struct Compiler<'d> {
    docs: &'d [SchemaDoc],
    m: Model,
    defs_types: NameTable<Def<'d>>,
    defs_elements: NameTable<Def<'d>>,
    defs_attributes: NameTable<Def<'d>>,
    defs_groups: NameTable<Def<'d>>,
    defs_attribute_groups: NameTable<Def<'d>>,
    simple_in_progress: HashSet<(NsId, Box<str>)>,
    complex_done: Vec<bool>,
    complex_specs: Vec<Option<(ContentSpec, Def<'d>)>>,
    groups_in_progress: HashSet<(NsId, Box<str>)>,
    attribute_groups_in_progress: HashSet<(NsId, Box<str>)>,
    next_particle: u32,
    /// Default and fixed values, checked once every type is complete:
    /// (type, lexical, where) with `Ok(elem)` or `Err(attribute)` as the owner.
    pending_constraints: Vec<(PendingOwner, Def<'d>)>,
    xsd_ns: NsId,
}

#[derive(Clone, Copy)]
enum PendingOwner {
    Element(ElemId),
    Attribute(u32),
}

/// Namespace context of a schema element, for QName-valued facets.
struct SchemaScope<'a>(&'a XNode);

impl ValueContext for SchemaScope<'_> {
    fn resolve_prefix(&self, prefix: &str) -> Option<&str> {
        self.0.lookup_prefix(prefix)
    }
    fn record_id(&mut self, _id: &str) -> bool {
        true
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

impl<'d> Compiler<'d> {
    // ---------------------------------------------------------------- helpers

    fn err(&self, def: Def<'_>, message: impl Into<String>) -> SchemaError {
        let d = &self.docs[def.doc];
        let at = d.position(def.node.offset);
        SchemaError::Invalid {
            file: d.display.clone(),
            line: at.line,
            column: at.column,
            message: message.into(),
        }
    }

    /// [`Self::err`] at `def` when there is one; without a place (a reference made by the
    /// compiler itself, not by a schema document) the error names none.
    fn err_at(&self, def: Option<Def<'_>>, message: impl Into<String>) -> SchemaError {
        match def {
            Some(d) => self.err(d, message),
            None => SchemaError::Invalid {
                file: String::new(),
                line: 0,
                column: 0,
                message: message.into(),
            },
        }
    }

    fn unsupported(&self, def: Def<'_>, feature: impl Into<String>) -> SchemaError {
        let d = &self.docs[def.doc];
        let at = d.position(def.node.offset);
        SchemaError::Unsupported {
            file: d.display.clone(),
            line: at.line,
            column: at.column,
            feature: feature.into(),
        }
    }

    fn ns(&mut self, uri: Option<&str>) -> NsId {
        match uri {
            None | Some("") => NO_NS,
            Some(u) => {
                if let Some(&id) = self.m.ns_lookup.get(u) {
                    return id;
                }
                let id = NsId::try_from(self.m.namespaces.len()).unwrap_or(UNKNOWN_NS - 1);
                self.m.namespaces.push(u.into());
                self.m.ns_lookup.insert(u.into(), id);
                id
            }
        }
    }

    fn target_ns(&mut self, doc: usize) -> NsId {
        let t = self.docs[doc].target_ns.clone();
        self.ns(t.as_deref())
    }

    fn particle_id(&mut self) -> u32 {
        self.next_particle += 1;
        self.next_particle
    }

    /// Checks that every attribute of an XSD element is one the spec allows there.
    fn check_attrs(&self, def: Def<'_>, allowed: &[&str]) -> Res<()> {
        for a in &def.node.attrs {
            if a.ns.is_none() && !allowed.contains(&&*a.local) && &*a.local != "id" {
                return Err(self.err(
                    def,
                    format!(
                        "attribute `{}` is not allowed on xs:{}",
                        a.local, def.node.local
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Resolves a QName-valued attribute of a schema element.
    fn qname(&mut self, def: Def<'_>, value: &str) -> Res<(NsId, Box<str>)> {
        let value = value.trim();
        let Some((prefix, local)) = split_qname(value) else {
            return Err(self.err(def, format!("`{value}` is not a valid QName")));
        };
        let uri = match prefix {
            Some(p) => Some(def.node.lookup_prefix(p).ok_or_else(|| {
                self.err(
                    def,
                    format!("the prefix `{p}` of `{value}` is not declared"),
                )
            })?),
            None => def.node.lookup_prefix(""),
        };
        let doc = &self.docs[def.doc];
        let uri = match uri {
            None if doc.chameleon => doc.target_ns.as_deref(),
            other => other,
        };
        let visible = uri == Some(XSD_NS)
            || uri == doc.target_ns.as_deref()
            || doc.imports.iter().any(|i| i.as_deref() == uri);
        if !visible {
            return Err(self.err(
                def,
                format!(
                    "`{value}` refers to namespace {}, which this schema document does not import",
                    uri.unwrap_or("(no namespace)")
                ),
            ));
        }
        let ns = self.ns(uri);
        Ok((ns, local.into()))
    }

    fn occurs(&self, def: Def<'_>) -> Res<(u32, Option<u32>)> {
        let min = match def.node.attr("minOccurs") {
            None => 1,
            Some(v) => v.trim().parse::<u32>().map_err(|_| {
                self.err(
                    def,
                    format!("minOccurs `{v}` is not a non-negative integer"),
                )
            })?,
        };
        let max = match def.node.attr("maxOccurs").map(str::trim) {
            None => Some(1),
            Some("unbounded") => None,
            Some(v) => Some(v.parse::<u32>().map_err(|_| {
                self.err(
                    def,
                    format!("maxOccurs `{v}` is not a non-negative integer or `unbounded`"),
                )
            })?),
        };
        if let Some(max) = max
            && min > max
        {
            return Err(self.err(def, "minOccurs is greater than maxOccurs"));
        }
        Ok((min, max))
    }

    fn block(&self, def: Def<'_>, attr: Option<&str>) -> Res<Block> {
        let value = attr.or(self.docs[def.doc].block_default.as_deref());
        let mut b = Block::default();
        if let Some(v) = value {
            for token in v.split_ascii_whitespace() {
                match token {
                    "#all" => {
                        b.extension = true;
                        b.restriction = true;
                        b.substitution = true;
                    }
                    "extension" => b.extension = true,
                    "restriction" => b.restriction = true,
                    "substitution" => b.substitution = true,
                    other => {
                        return Err(self.err(def, format!("`{other}` is not a valid block value")));
                    }
                }
            }
        }
        Ok(b)
    }

    // ---------------------------------------------------------------- setup

    fn builtins(&mut self) {
        let any_type = ComplexId(0);
        self.m.complex.push(ComplexType {
            name: "xs:anyType".into(),
            base: None,
            derivation: Derivation::Restriction,
            content: Content::Elements {
                mixed: true,
                model: ContentModel::Dfa(Dfa {
                    states: vec![DfaState {
                        accepting: true,
                        elements: Box::new([]),
                        wildcards: Box::new([WildTransition {
                            wildcard: Wildcard {
                                ns: NsConstraint::Any,
                                process: Process::Lax,
                            },
                            next: 0,
                        }]),
                    }],
                }),
            },
            attributes: Vec::new(),
            attribute_wildcard: Some(Wildcard {
                ns: NsConstraint::Any,
                process: Process::Lax,
            }),
            is_abstract: false,
            block: Block::default(),
        });
        self.complex_done.push(true);
        self.complex_specs.push(None);
        self.m.any_type = Some(any_type);
        self.m
            .global_types
            .insert(self.xsd_ns, "anyType", TypeRef::Complex(any_type));
        for &b in Builtin::ALL {
            let id = SimpleId(self.m.simple.len() as u32);
            let base = match b.base() {
                Some(parent) => self
                    .m
                    .builtin_ids
                    .get(parent.name())
                    .map(|&s| TypeRef::Simple(s)),
                None => Some(TypeRef::Complex(any_type)),
            };
            let (variety, facets) = match b.list_item() {
                Some(item) => {
                    let item_id = self.m.builtin_ids.get(item.name()).copied();
                    (
                        match item_id {
                            Some(i) => Variety::List(i),
                            None => Variety::Atomic(b),
                        },
                        Facets {
                            min_length: Some(1),
                            ..Facets::default()
                        },
                    )
                }
                None => (Variety::Atomic(b), Facets::default()),
            };
            self.m.simple.push(SimpleType {
                name: format!("xs:{}", b.name()).into(),
                base,
                variety,
                whitespace: b.whitespace(),
                facets,
            });
            self.m.builtin_ids.insert(b.name(), id);
            self.m
                .global_types
                .insert(self.xsd_ns, b.name(), TypeRef::Simple(id));
        }
        self.m.any_simple_type = self.m.builtin_ids.get("anySimpleType").copied();
    }

    fn builtin(&self, b: Builtin) -> SimpleId {
        // Every built-in was registered in `builtins`.
        self.m
            .builtin_ids
            .get(b.name())
            .copied()
            .unwrap_or(SimpleId(0))
    }

    fn collect_definitions(&mut self) -> Res<()> {
        for (i, doc) in self.docs.iter().enumerate() {
            let root = Def {
                doc: i,
                node: &doc.root,
            };
            self.check_attrs(
                root,
                &[
                    "targetNamespace",
                    "version",
                    "elementFormDefault",
                    "attributeFormDefault",
                    "blockDefault",
                    "finalDefault",
                ],
            )?;
            let tns = self.target_ns(i);
            for node in doc.root.content() {
                let def = Def { doc: i, node };
                if node.ns.as_deref() != Some(XSD_NS) {
                    return Err(
                        self.err(def, format!("<{}> is not allowed in xs:schema", node.local))
                    );
                }
                let table = match &*node.local {
                    "include" | "import" => continue,
                    "simpleType" | "complexType" => "type",
                    "element" => "element",
                    "attribute" => "attribute",
                    "group" => "group",
                    "attributeGroup" => "attributeGroup",
                    "notation" => return Err(self.unsupported(def, "xs:notation")),
                    "redefine" => return Err(self.unsupported(def, "xs:redefine")),
                    other => {
                        return Err(
                            self.err(def, format!("xs:{other} is not allowed at the top level"))
                        );
                    }
                };
                let Some(name) = node.attr("name") else {
                    return Err(
                        self.err(def, format!("a top-level xs:{} needs a name", node.local))
                    );
                };
                if !is_ncname(name) {
                    return Err(self.err(def, format!("`{name}` is not a valid name")));
                }
                let inserted = match table {
                    "type" => {
                        self.m.global_types.get(tns, name).is_none()
                            && self.defs_types.insert(tns, name, def)
                    }
                    "element" => self.defs_elements.insert(tns, name, def),
                    "attribute" => self.defs_attributes.insert(tns, name, def),
                    "group" => self.defs_groups.insert(tns, name, def),
                    _ => self.defs_attribute_groups.insert(tns, name, def),
                };
                if !inserted {
                    return Err(self.err(
                        def,
                        format!("a global {table} named `{name}` is already defined"),
                    ));
                }
            }
        }
        Ok(())
    }

    fn compile_globals(&mut self) -> Res<()> {
        let types: Vec<(NsId, Box<str>)> = self
            .defs_types
            .iter()
            .map(|(n, l, _)| (n, l.into()))
            .collect();
        for (ns, local) in types {
            self.type_by_name(ns, &local, None)?;
        }
        let elements: Vec<(NsId, Box<str>)> = self
            .defs_elements
            .iter()
            .map(|(n, l, _)| (n, l.into()))
            .collect();
        for (ns, local) in elements {
            self.global_element(ns, &local, None)?;
        }
        let attributes: Vec<(NsId, Box<str>)> = self
            .defs_attributes
            .iter()
            .map(|(n, l, _)| (n, l.into()))
            .collect();
        for (ns, local) in attributes {
            self.global_attribute(ns, &local, None)?;
        }
        // Named groups and attribute groups are compiled where they are referenced, but an
        // unreferenced one must still be correct.
        let groups: Vec<Def<'d>> = self.defs_groups.iter().map(|(_, _, d)| d).collect();
        for def in groups {
            self.model_group_definition(def)?;
        }
        let attribute_groups: Vec<(NsId, Box<str>)> = self
            .defs_attribute_groups
            .iter()
            .map(|(n, l, _)| (n, l.into()))
            .collect();
        for (ns, local) in attribute_groups {
            self.attribute_group(ns, &local, None)?;
        }
        Ok(())
    }

    // ---------------------------------------------------------------- types

    fn type_by_name(&mut self, ns: NsId, local: &str, from: Option<Def<'_>>) -> Res<TypeRef> {
        if let Some(t) = self.m.global_types.get(ns, local) {
            return Ok(t);
        }
        let Some(def) = self.defs_types.get(ns, local) else {
            let message = format!("the type {{{}}}{local} is not defined", self.m.ns_str(ns));
            return Err(self.err_at(from, message));
        };
        if def.node.is_xsd("complexType") {
            Ok(TypeRef::Complex(self.complex_type(def, Some(local))?))
        } else {
            let key = (ns, Box::from(local));
            if !self.simple_in_progress.insert(key.clone()) {
                return Err(self.err(
                    def,
                    format!("the simple type `{local}` is derived from itself"),
                ));
            }
            let id = self.simple_type(def, local.to_owned())?;
            self.simple_in_progress.remove(&key);
            self.m.global_types.insert(ns, local, TypeRef::Simple(id));
            Ok(TypeRef::Simple(id))
        }
    }

    fn simple_by_name(&mut self, def: Def<'_>, value: &str) -> Res<SimpleId> {
        let (ns, local) = self.qname(def, value)?;
        match self.type_by_name(ns, &local, Some(def))? {
            TypeRef::Simple(s) => Ok(s),
            TypeRef::Complex(_) => Err(self.err(
                def,
                format!("`{value}` is a complex type; a simple type is needed"),
            )),
        }
    }

    /// An `xs:simpleType` element.
    fn simple_type(&mut self, def: Def<'d>, name: String) -> Res<SimpleId> {
        self.check_attrs(def, &["name", "final"])?;
        let mut content = def.node.content();
        let Some(child) = content.next() else {
            return Err(self.err(def, "xs:simpleType needs a restriction, list or union"));
        };
        if let Some(extra) = content.next() {
            return Err(self.err(
                Def {
                    doc: def.doc,
                    node: extra,
                },
                "xs:simpleType has more than one derivation",
            ));
        }
        let cdef = Def {
            doc: def.doc,
            node: child,
        };
        match &*child.local {
            "restriction" if child.ns.as_deref() == Some(XSD_NS) => {
                self.check_attrs(cdef, &["base"])?;
                let mut facets_nodes = child.content().peekable();
                let base = match (child.attr("base"), facets_nodes.peek()) {
                    (Some(b), _) => self.simple_by_name(cdef, b)?,
                    (None, Some(n)) if n.is_xsd("simpleType") => {
                        let n = facets_nodes.next().map(|n| Def {
                            doc: def.doc,
                            node: n,
                        });
                        match n {
                            Some(n) => self.simple_type(n, format!("the base type of {name}"))?,
                            None => return Err(self.err(cdef, "xs:restriction needs a base")),
                        }
                    }
                    _ => return Err(self.err(cdef, "xs:restriction needs a base type")),
                };
                let facet_defs: Vec<Def<'d>> = facets_nodes
                    .map(|n| Def {
                        doc: def.doc,
                        node: n,
                    })
                    .collect();
                self.restrict_simple(cdef, base, &facet_defs, name)
            }
            "list" if child.ns.as_deref() == Some(XSD_NS) => {
                self.check_attrs(cdef, &["itemType"])?;
                let item = match child.attr("itemType") {
                    Some(t) => self.simple_by_name(cdef, t)?,
                    None => match child.content().next() {
                        Some(n) if n.is_xsd("simpleType") => self.simple_type(
                            Def {
                                doc: def.doc,
                                node: n,
                            },
                            format!("the item type of {name}"),
                        )?,
                        _ => return Err(self.err(cdef, "xs:list needs an itemType")),
                    },
                };
                if matches!(self.m.simple_type(item).variety, Variety::List(_)) {
                    return Err(self.err(cdef, "the item type of a list cannot itself be a list"));
                }
                Ok(self.push_simple(SimpleType {
                    name: name.into(),
                    base: self.m.any_simple_type.map(TypeRef::Simple),
                    variety: Variety::List(item),
                    whitespace: WhiteSpace::Collapse,
                    facets: Facets::default(),
                }))
            }
            "union" if child.ns.as_deref() == Some(XSD_NS) => {
                self.check_attrs(cdef, &["memberTypes"])?;
                let mut members = Vec::new();
                if let Some(list) = child.attr("memberTypes") {
                    for q in list.split_ascii_whitespace() {
                        members.push(self.simple_by_name(cdef, q)?);
                    }
                }
                for n in child.content() {
                    let ndef = Def {
                        doc: def.doc,
                        node: n,
                    };
                    if !n.is_xsd("simpleType") {
                        return Err(
                            self.err(ndef, format!("<{}> is not allowed in xs:union", n.local))
                        );
                    }
                    members.push(self.simple_type(ndef, format!("a member type of {name}"))?);
                }
                if members.is_empty() {
                    return Err(self.err(cdef, "xs:union needs member types"));
                }
                Ok(self.push_simple(SimpleType {
                    name: name.into(),
                    base: self.m.any_simple_type.map(TypeRef::Simple),
                    variety: Variety::Union(members),
                    whitespace: WhiteSpace::Collapse,
                    facets: Facets::default(),
                }))
            }
            other => Err(self.err(cdef, format!("<{other}> is not allowed in xs:simpleType"))),
        }
    }

    fn push_simple(&mut self, st: SimpleType) -> SimpleId {
        let id = SimpleId(self.m.simple.len() as u32);
        self.m.simple.push(st);
        id
    }

    /// A restriction of `base` by facets.
    fn restrict_simple(
        &mut self,
        def: Def<'d>,
        base: SimpleId,
        facet_defs: &[Def<'d>],
        name: String,
    ) -> Res<SimpleId> {
        let base_type = self.m.simple_type(base);
        let variety = match &base_type.variety {
            Variety::Atomic(b) => Variety::Atomic(*b),
            Variety::List(i) => Variety::List(*i),
            Variety::Union(m) => Variety::Union(m.clone()),
        };
        if let Variety::Atomic(Builtin::AnySimpleType) = variety
            && !facet_defs.is_empty()
        {
            return Err(self.err(def, "xs:anySimpleType cannot be restricted by facets"));
        }
        let mut facets = base_type.facets.clone();
        let mut whitespace = base_type.whitespace;
        let builtin = match variety {
            Variety::Atomic(b) => Some(b),
            _ => None,
        };
        let family = builtin.map(Builtin::family);
        let mut patterns = Vec::new();
        let mut enumeration: Option<Enumeration> = None;
        let is_list = matches!(variety, Variety::List(_));
        let is_union = matches!(variety, Variety::Union(_));
        for &f in facet_defs {
            let node = f.node;
            if node.ns.as_deref() != Some(XSD_NS) {
                return Err(self.err(f, format!("<{}> is not a facet", node.local)));
            }
            self.check_attrs(f, &["value", "fixed"])?;
            let Some(value) = node.attr("value") else {
                return Err(self.err(f, format!("xs:{} needs a value", node.local)));
            };
            let facet = &*node.local;
            let length_ok = is_list
                || matches!(
                    family,
                    Some(
                        Family::String
                            | Family::HexBinary
                            | Family::Base64Binary
                            | Family::AnyUri
                            | Family::QName
                            | Family::Notation
                    )
                );
            let not_allowed = |c: &Self| {
                c.err(
                    f,
                    format!(
                        "the facet {facet} does not apply to {}",
                        c.m.simple_type(base).name
                    ),
                )
            };
            let count = |c: &Self| -> Res<usize> {
                value.trim().parse::<usize>().map_err(|_| {
                    c.err(
                        f,
                        format!("{facet} `{value}` is not a non-negative integer"),
                    )
                })
            };
            match facet {
                "length" | "minLength" | "maxLength" => {
                    if !length_ok {
                        return Err(not_allowed(self));
                    }
                    let n = count(self)?;
                    match facet {
                        "length" => facets.length = Some(n),
                        "minLength" => {
                            facets.min_length = Some(facets.min_length.map_or(n, |m| m.max(n)))
                        }
                        _ => facets.max_length = Some(facets.max_length.map_or(n, |m| m.min(n))),
                    }
                }
                "pattern" => {
                    let translated = xsd_regex::translate(value).map_err(|e| {
                        self.err(f, format!("pattern `{value}` cannot be used: {e}"))
                    })?;
                    let regex = regex::RegexBuilder::new(&translated)
                        .size_limit(32 << 20)
                        .build()
                        .map_err(|e| {
                            self.err(f, format!("pattern `{value}` cannot be compiled: {e}"))
                        })?;
                    patterns.push(Pattern {
                        source: value.into(),
                        regex,
                    });
                }
                "enumeration" => {
                    let e = enumeration.get_or_insert_with(Enumeration::default);
                    if is_list {
                        let collapsed = values::normalize(value, WhiteSpace::Collapse);
                        self.m
                            .check_simple(base, value, CheckMode { attribute: false, want_value: false }, &mut SchemaScope(node))
                            .map_err(|e| self.err(f, format!("enumeration value `{value}` is not valid for the base type: {e}")))?;
                        e.lexical.push(collapsed.into());
                    } else {
                        let v = self
                            .m
                            .check_simple(base, value, CheckMode { attribute: false, want_value: true }, &mut SchemaScope(node))
                            .map_err(|e| self.err(f, format!("enumeration value `{value}` is not valid for the base type: {e}")))?;
                        let e = enumeration.get_or_insert_with(Enumeration::default);
                        e.lexical.push(value.into());
                        if let Some(v) = v {
                            e.values.push(v);
                        }
                    }
                }
                "whiteSpace" => {
                    let ws = match value.trim() {
                        "preserve" => WhiteSpace::Preserve,
                        "replace" => WhiteSpace::Replace,
                        "collapse" => WhiteSpace::Collapse,
                        other => {
                            return Err(self.err(f, format!("`{other}` is not a whiteSpace value")));
                        }
                    };
                    if ws < whitespace {
                        return Err(self.err(f, "a restriction cannot loosen the whiteSpace facet"));
                    }
                    if is_union || (is_list && ws != WhiteSpace::Collapse) {
                        return Err(not_allowed(self));
                    }
                    whitespace = ws;
                }
                "minInclusive" | "maxInclusive" | "minExclusive" | "maxExclusive" => {
                    let Some(b) = builtin.filter(|b| b.is_ordered()) else {
                        return Err(not_allowed(self));
                    };
                    let normalized = values::normalize(value, b.whitespace());
                    let v = b
                        .parse(&normalized)
                        .map_err(|_| {
                            self.err(f, format!("{facet} `{value}` is not a valid {}", b.name()))
                        })?
                        .into_owned();
                    let inclusive = facet.ends_with("Inclusive");
                    if facet.starts_with("min") {
                        facets.min.push((v, inclusive));
                    } else {
                        facets.max.push((v, inclusive));
                    }
                }
                "totalDigits" | "fractionDigits" => {
                    if family != Some(Family::Decimal) {
                        return Err(not_allowed(self));
                    }
                    let n = count(self)?;
                    if facet == "totalDigits" {
                        if n == 0 {
                            return Err(self.err(f, "totalDigits must be positive"));
                        }
                        facets.total_digits = Some(facets.total_digits.map_or(n, |m| m.min(n)));
                    } else {
                        facets.fraction_digits =
                            Some(facets.fraction_digits.map_or(n, |m| m.min(n)));
                    }
                }
                "simpleType" => {
                    return Err(self.err(f, "xs:simpleType must come before the facets"));
                }
                other => return Err(self.err(f, format!("xs:{other} is not a facet"))),
            }
        }
        if !patterns.is_empty() {
            facets.patterns.push(patterns);
        }
        if let Some(mut e) = enumeration {
            if e.values.len() == e.lexical.len()
                && e.values.iter().all(|v| matches!(v, Value::Str(_)))
            {
                e.strings = Some(
                    e.values
                        .iter()
                        .filter_map(|v| match v {
                            Value::Str(s) => Some(Box::from(&**s)),
                            _ => None,
                        })
                        .collect(),
                );
            }
            facets.enumerations.push(e);
        }
        Ok(self.push_simple(SimpleType {
            name: name.into(),
            base: Some(TypeRef::Simple(base)),
            variety,
            whitespace,
            facets,
        }))
    }

    /// An `xs:complexType` element (named or anonymous).
    fn complex_type(&mut self, def: Def<'d>, name: Option<&str>) -> Res<ComplexId> {
        self.check_attrs(def, &["name", "mixed", "abstract", "block", "final"])?;
        let id = ComplexId(self.m.complex.len() as u32);
        let display: Box<str> = name.map_or_else(|| "an anonymous complex type".into(), Box::from);
        let block = self.block(def, def.node.attr("block"))?;
        let is_abstract = match def.node.attr("abstract") {
            None => false,
            Some(v) => parse_bool(v).ok_or_else(|| self.err(def, "abstract must be a boolean"))?,
        };
        self.m.complex.push(ComplexType {
            name: display,
            base: self.m.any_type.map(TypeRef::Complex),
            derivation: Derivation::Restriction,
            content: Content::Empty,
            attributes: Vec::new(),
            attribute_wildcard: None,
            is_abstract,
            block,
        });
        self.complex_done.push(false);
        self.complex_specs.push(None);
        if let Some(n) = name {
            let tns = self.target_ns(def.doc);
            self.m.global_types.insert(tns, n, TypeRef::Complex(id));
        }
        let mixed_attr = match def.node.attr("mixed") {
            None => None,
            Some(v) => Some(parse_bool(v).ok_or_else(|| self.err(def, "mixed must be a boolean"))?),
        };
        let children: Vec<&'d XNode> = def.node.content().collect();
        let first = children.first().copied();
        let (base, derivation, spec, attrs) = match first {
            Some(n) if n.is_xsd("simpleContent") => {
                let cdef = Def {
                    doc: def.doc,
                    node: n,
                };
                if children.len() > 1 {
                    return Err(self.err(
                        cdef,
                        "xs:simpleContent must be the only content of xs:complexType",
                    ));
                }
                self.simple_content(cdef, id)?
            }
            Some(n) if n.is_xsd("complexContent") => {
                let cdef = Def {
                    doc: def.doc,
                    node: n,
                };
                if children.len() > 1 {
                    return Err(self.err(
                        cdef,
                        "xs:complexContent must be the only content of xs:complexType",
                    ));
                }
                self.complex_content(cdef, id, mixed_attr)?
            }
            _ => {
                let (particle, rest) = self.content_particle(def, &children)?;
                let attrs = self.attribute_set(def, rest)?;
                let mixed = mixed_attr.unwrap_or(false);
                (
                    self.m.any_type.map(TypeRef::Complex),
                    Derivation::Restriction,
                    particle_spec(mixed, particle),
                    attrs,
                )
            }
        };
        let ct = &mut self.m.complex[id.0 as usize];
        ct.base = base;
        ct.derivation = derivation;
        ct.attributes = attrs.uses;
        ct.attribute_wildcard = attrs.wildcard;
        ct.content = match &spec {
            ContentSpec::Empty => Content::Empty,
            ContentSpec::Simple(s) => Content::Simple(*s),
            ContentSpec::Particle { mixed, .. } => Content::Elements {
                mixed: *mixed,
                model: ContentModel::Dfa(Dfa::default()),
            },
        };
        self.complex_specs[id.0 as usize] = Some((spec, def));
        self.complex_done[id.0 as usize] = true;
        Ok(id)
    }

    /// The optional particle at the start of a complex type's content, and what follows.
    fn content_particle<'n>(
        &mut self,
        def: Def<'d>,
        children: &'n [&'d XNode],
    ) -> Res<(Option<Particle>, &'n [&'d XNode])> {
        match children.first() {
            Some(n)
                if n.is_xsd("sequence")
                    || n.is_xsd("choice")
                    || n.is_xsd("all")
                    || n.is_xsd("group") =>
            {
                let p = self.particle(Def {
                    doc: def.doc,
                    node: n,
                })?;
                Ok((p, &children[1..]))
            }
            _ => Ok((None, children)),
        }
    }

    fn base_complex(&mut self, def: Def<'d>) -> Res<TypeRef> {
        let Some(b) = def.node.attr("base") else {
            return Err(self.err(def, format!("xs:{} needs a base", def.node.local)));
        };
        let (ns, local) = self.qname(def, b)?;
        let t = self.type_by_name(ns, &local, Some(def))?;
        if let TypeRef::Complex(c) = t
            && !self.complex_done[c.0 as usize]
        {
            return Err(self.err(def, format!("the type `{b}` is derived from itself")));
        }
        Ok(t)
    }

    fn simple_content(
        &mut self,
        def: Def<'d>,
        id: ComplexId,
    ) -> Res<(Option<TypeRef>, Derivation, ContentSpec, AttributeSet)> {
        self.check_attrs(def, &[])?;
        let mut content = def.node.content();
        let Some(d) = content.next() else {
            return Err(self.err(def, "xs:simpleContent needs an extension or restriction"));
        };
        let ddef = Def {
            doc: def.doc,
            node: d,
        };
        let base = self.base_complex(ddef)?;
        let children: Vec<&'d XNode> = d.content().collect();
        if d.is_xsd("extension") {
            self.check_attrs(ddef, &["base"])?;
            let own = self.attribute_set(ddef, &children)?;
            let (simple, base_attrs) = match base {
                TypeRef::Simple(s) => (s, None),
                TypeRef::Complex(c) => match &self.m.complex_type(c).content {
                    Content::Simple(s) => (*s, Some(c)),
                    _ => {
                        return Err(self.err(
                            ddef,
                            "the base of a simpleContent extension must have simple content",
                        ));
                    }
                },
            };
            let attrs = self.extend_attributes(ddef, base_attrs, own)?;
            Ok((
                Some(base),
                Derivation::Extension,
                ContentSpec::Simple(simple),
                attrs,
            ))
        } else if d.is_xsd("restriction") {
            self.check_attrs(ddef, &["base"])?;
            let TypeRef::Complex(c) = base else {
                return Err(self.err(
                    ddef,
                    "the base of a simpleContent restriction must be a complex type",
                ));
            };
            let Content::Simple(base_simple) = self.m.complex_type(c).content else {
                return Err(self.err(
                    ddef,
                    "the base of a simpleContent restriction must have simple content",
                ));
            };
            let mut rest: &[&'d XNode] = &children;
            let mut simple_base = base_simple;
            if let Some(n) = rest.first()
                && n.is_xsd("simpleType")
            {
                simple_base = self.simple_type(
                    Def {
                        doc: def.doc,
                        node: n,
                    },
                    "the content type".into(),
                )?;
                rest = &rest[1..];
            }
            let split = rest
                .iter()
                .position(|n| {
                    n.is_xsd("attribute") || n.is_xsd("attributeGroup") || n.is_xsd("anyAttribute")
                })
                .unwrap_or(rest.len());
            let facet_defs: Vec<Def<'d>> = rest[..split]
                .iter()
                .map(|n| Def {
                    doc: def.doc,
                    node: n,
                })
                .collect();
            let name = format!("the content type of {}", self.m.complex_type(id).name);
            let simple = if facet_defs.is_empty() && simple_base == base_simple {
                base_simple
            } else {
                self.restrict_simple(ddef, simple_base, &facet_defs, name)?
            };
            let own = self.attribute_set(ddef, &rest[split..])?;
            let attrs = self.restrict_attributes(ddef, c, own)?;
            Ok((
                Some(base),
                Derivation::Restriction,
                ContentSpec::Simple(simple),
                attrs,
            ))
        } else {
            Err(self.err(
                ddef,
                format!("<{}> is not allowed in xs:simpleContent", d.local),
            ))
        }
    }

    fn complex_content(
        &mut self,
        def: Def<'d>,
        _id: ComplexId,
        mixed_attr: Option<bool>,
    ) -> Res<(Option<TypeRef>, Derivation, ContentSpec, AttributeSet)> {
        self.check_attrs(def, &["mixed"])?;
        let mixed = match def.node.attr("mixed") {
            Some(v) => parse_bool(v).ok_or_else(|| self.err(def, "mixed must be a boolean"))?,
            None => mixed_attr.unwrap_or(false),
        };
        let mut content = def.node.content();
        let Some(d) = content.next() else {
            return Err(self.err(def, "xs:complexContent needs an extension or restriction"));
        };
        let ddef = Def {
            doc: def.doc,
            node: d,
        };
        self.check_attrs(ddef, &["base"])?;
        let base = self.base_complex(ddef)?;
        let TypeRef::Complex(base_id) = base else {
            return Err(self.err(ddef, "the base of complexContent must be a complex type"));
        };
        let children: Vec<&'d XNode> = d.content().collect();
        let (particle, rest) = self.content_particle(ddef, &children)?;
        let own = self.attribute_set(ddef, rest)?;
        if d.is_xsd("extension") {
            let base_spec = self.base_particle(ddef, base_id)?;
            let particle = match (base_spec, particle) {
                (None, p) => p,
                (Some(b), None) => Some(b),
                (Some(b), Some(p)) => {
                    if matches!(b.term, Term::All(_)) || matches!(p.term, Term::All(_)) {
                        return Err(self.err(
                            ddef,
                            "a type with xs:all content cannot be extended with more particles",
                        ));
                    }
                    Some(Particle {
                        min: 1,
                        max: Some(1),
                        id: self.particle_id(),
                        term: Term::Sequence(vec![b, p]),
                    })
                }
            };
            let base_mixed = matches!(
                self.m.complex_type(base_id).content,
                Content::Elements { mixed: true, .. }
            );
            if base_id.0 != 0 && base_mixed != mixed && particle.is_some() {
                return Err(self.err(ddef, "an extension must be mixed exactly when its base is"));
            }
            let attrs = self.extend_attributes(ddef, Some(base_id), own)?;
            Ok((
                Some(base),
                Derivation::Extension,
                particle_spec(mixed, particle),
                attrs,
            ))
        } else if d.is_xsd("restriction") {
            let attrs = self.restrict_attributes(ddef, base_id, own)?;
            Ok((
                Some(base),
                Derivation::Restriction,
                particle_spec(mixed, particle),
                attrs,
            ))
        } else {
            Err(self.err(
                ddef,
                format!("<{}> is not allowed in xs:complexContent", d.local),
            ))
        }
    }

    /// The effective particle of a (complete) complex type, for extending it.
    fn base_particle(&mut self, def: Def<'d>, base: ComplexId) -> Res<Option<Particle>> {
        if base.0 == 0 {
            // Extending anyType adds to nothing particular: treat its content as empty.
            return Ok(None);
        }
        match &self.m.complex_type(base).content {
            Content::Empty => Ok(None),
            Content::Simple(_) => Err(self.err(
                def,
                "a type with simple content cannot be extended by complexContent",
            )),
            Content::Elements { .. } => {
                let particle = match &self.complex_specs[base.0 as usize] {
                    Some((ContentSpec::Particle { particle, .. }, _)) => particle.clone(),
                    _ => None,
                };
                Ok(particle.map(|p| self.renumber(&p)))
            }
        }
    }

    /// A copy of a particle tree with fresh particle ids (a new use of the same content).
    fn renumber(&mut self, p: &Particle) -> Particle {
        let term = match &p.term {
            Term::Element(e) => Term::Element(*e),
            Term::Wildcard(w) => Term::Wildcard(w.clone()),
            Term::Sequence(v) => Term::Sequence(v.iter().map(|c| self.renumber(c)).collect()),
            Term::Choice(v) => Term::Choice(v.iter().map(|c| self.renumber(c)).collect()),
            Term::All(v) => Term::All(v.iter().map(|c| self.renumber(c)).collect()),
        };
        Particle {
            min: p.min,
            max: p.max,
            id: self.particle_id(),
            term,
        }
    }

    // ---------------------------------------------------------------- particles

    /// A particle element (`element`, `sequence`, `choice`, `all`, `group` ref, `any`).
    /// `None` when `maxOccurs="0"`.
    fn particle(&mut self, def: Def<'d>) -> Res<Option<Particle>> {
        let node = def.node;
        if node.ns.as_deref() != Some(XSD_NS) {
            return Err(self.err(
                def,
                format!("<{}> is not allowed in a content model", node.local),
            ));
        }
        let (min, max) = self.occurs(def)?;
        let term = match &*node.local {
            "element" => {
                let elem = if let Some(r) = node.attr("ref") {
                    self.check_attrs(def, &["ref", "minOccurs", "maxOccurs"])?;
                    let (ns, local) = self.qname(def, r)?;
                    self.global_element(ns, &local, Some(def))?
                } else {
                    self.element_decl(def, false)?
                };
                Term::Element(elem)
            }
            "any" => {
                self.check_attrs(
                    def,
                    &["namespace", "processContents", "minOccurs", "maxOccurs"],
                )?;
                Term::Wildcard(self.wildcard(def)?)
            }
            "sequence" | "choice" | "all" => {
                self.check_attrs(def, &["minOccurs", "maxOccurs"])?;
                let mut children = Vec::new();
                for c in node.content() {
                    let cdef = Def {
                        doc: def.doc,
                        node: c,
                    };
                    if &*node.local == "all" && !c.is_xsd("element") {
                        return Err(self.err(cdef, "xs:all may only contain xs:element"));
                    }
                    if let Some(p) = self.particle(cdef)? {
                        children.push(p);
                    }
                }
                match &*node.local {
                    "sequence" => Term::Sequence(children),
                    "choice" => Term::Choice(children),
                    _ => {
                        if max != Some(1) || min > 1 {
                            return Err(
                                self.err(def, "xs:all must have maxOccurs 1 and minOccurs 0 or 1")
                            );
                        }
                        Term::All(children)
                    }
                }
            }
            "group" => {
                self.check_attrs(def, &["ref", "minOccurs", "maxOccurs"])?;
                let Some(r) = node.attr("ref") else {
                    return Err(self.err(def, "a local xs:group must be a reference (ref)"));
                };
                let (ns, local) = self.qname(def, r)?;
                let Some(gdef) = self.defs_groups.get(ns, &local) else {
                    return Err(self.err(def, format!("the group `{r}` is not defined")));
                };
                let key = (ns, local.clone());
                if !self.groups_in_progress.insert(key.clone()) {
                    return Err(self.err(def, format!("the group `{r}` refers to itself")));
                }
                let inner = self.model_group_definition(gdef);
                self.groups_in_progress.remove(&key);
                let inner = inner?;
                if matches!(inner.term, Term::All(_)) && (max != Some(1) || min > 1) {
                    return Err(
                        self.err(def, "a reference to an xs:all group must have maxOccurs 1")
                    );
                }
                inner.term
            }
            other => {
                return Err(self.err(def, format!("xs:{other} is not allowed in a content model")));
            }
        };
        if max == Some(0) {
            return Ok(None);
        }
        Ok(Some(Particle {
            min,
            max,
            id: self.particle_id(),
            term,
        }))
    }

    /// The model group inside a named `xs:group`.
    fn model_group_definition(&mut self, def: Def<'d>) -> Res<Particle> {
        self.check_attrs(def, &["name"])?;
        let mut content = def.node.content();
        let Some(g) = content.next() else {
            return Err(self.err(def, "xs:group needs a sequence, choice or all"));
        };
        let gdef = Def {
            doc: def.doc,
            node: g,
        };
        if !(g.is_xsd("sequence") || g.is_xsd("choice") || g.is_xsd("all")) {
            return Err(self.err(gdef, format!("<{}> is not allowed in xs:group", g.local)));
        }
        if g.attr("minOccurs").is_some() || g.attr("maxOccurs").is_some() {
            return Err(self.err(
                gdef,
                "the model group of a named group cannot have minOccurs or maxOccurs",
            ));
        }
        match self.particle(gdef)? {
            Some(p) => Ok(p),
            None => Err(self.err(gdef, "empty group")),
        }
    }

    fn wildcard(&mut self, def: Def<'d>) -> Res<Wildcard> {
        let process = match def.node.attr("processContents").map(str::trim) {
            None | Some("strict") => Process::Strict,
            Some("lax") => Process::Lax,
            Some("skip") => Process::Skip,
            Some(other) => {
                return Err(self.err(def, format!("`{other}` is not a processContents value")));
            }
        };
        let tns = self.target_ns(def.doc);
        let ns = match def.node.attr("namespace").map(str::trim) {
            None | Some("##any") => NsConstraint::Any,
            Some("##other") => NsConstraint::Not(tns),
            Some(list) => {
                let mut set = Vec::new();
                for token in list.split_ascii_whitespace() {
                    let id = match token {
                        "##targetNamespace" => tns,
                        "##local" => NO_NS,
                        t if t.starts_with("##") => {
                            return Err(
                                self.err(def, format!("`{t}` is not a namespace constraint"))
                            );
                        }
                        uri => self.ns(Some(uri)),
                    };
                    if !set.contains(&id) {
                        set.push(id);
                    }
                }
                NsConstraint::Set(set)
            }
        };
        Ok(Wildcard { ns, process })
    }

    // ---------------------------------------------------------------- elements

    fn global_element(&mut self, ns: NsId, local: &str, from: Option<Def<'_>>) -> Res<ElemId> {
        if let Some(e) = self.m.global_elements.get(ns, local) {
            return Ok(e);
        }
        let Some(def) = self.defs_elements.get(ns, local) else {
            let message = format!(
                "the element {{{}}}{local} is not declared",
                self.m.ns_str(ns)
            );
            return Err(self.err_at(from, message));
        };
        self.element_decl(def, true)
    }

    fn element_decl(&mut self, def: Def<'d>, global: bool) -> Res<ElemId> {
        let node = def.node;
        if global {
            self.check_attrs(
                def,
                &[
                    "name",
                    "type",
                    "nillable",
                    "default",
                    "fixed",
                    "abstract",
                    "block",
                    "final",
                    "substitutionGroup",
                ],
            )?;
        } else {
            self.check_attrs(
                def,
                &[
                    "name",
                    "type",
                    "nillable",
                    "default",
                    "fixed",
                    "block",
                    "form",
                    "minOccurs",
                    "maxOccurs",
                ],
            )?;
        }
        let Some(name) = node.attr("name") else {
            return Err(self.err(def, "xs:element needs a name or a ref"));
        };
        if !is_ncname(name) {
            return Err(self.err(def, format!("`{name}` is not a valid element name")));
        }
        if node.attr("substitutionGroup").is_some() {
            return Err(self.unsupported(def, "substitution groups (substitutionGroup)"));
        }
        let qualified = match node.attr("form").map(str::trim) {
            None => self.docs[def.doc].element_qualified,
            Some("qualified") => true,
            Some("unqualified") => false,
            Some(other) => return Err(self.err(def, format!("form cannot be `{other}`"))),
        };
        let ns = if global || qualified {
            self.target_ns(def.doc)
        } else {
            NO_NS
        };
        let nillable = match node.attr("nillable") {
            None => false,
            Some(v) => parse_bool(v).ok_or_else(|| self.err(def, "nillable must be a boolean"))?,
        };
        let is_abstract = match node.attr("abstract") {
            None => false,
            Some(v) => parse_bool(v).ok_or_else(|| self.err(def, "abstract must be a boolean"))?,
        };
        let block = self.block(def, node.attr("block"))?;
        let constraint = match (node.attr("default"), node.attr("fixed")) {
            (Some(_), Some(_)) => {
                return Err(self.err(def, "an element cannot have both default and fixed"));
            }
            (Some(v), None) => Some(ValueConstraint {
                fixed: false,
                lexical: v.into(),
                value: None,
            }),
            (None, Some(v)) => Some(ValueConstraint {
                fixed: true,
                lexical: v.into(),
                value: None,
            }),
            (None, None) => None,
        };
        let id = ElemId(self.m.elements.len() as u32);
        self.m.elements.push(ElementDecl {
            ns,
            local: name.into(),
            ty: TypeRef::Complex(ComplexId(0)),
            nillable,
            constraint,
            is_abstract,
            block,
        });
        if global {
            self.m.global_elements.insert(ns, name, id);
        }
        let mut inline = None;
        for c in node.content() {
            let cdef = Def {
                doc: def.doc,
                node: c,
            };
            match &*c.local {
                "simpleType" | "complexType" if c.ns.as_deref() == Some(XSD_NS) => {
                    if inline.is_some() {
                        return Err(self.err(cdef, "an element can have only one anonymous type"));
                    }
                    inline = Some(cdef);
                }
                "unique" | "key" | "keyref" if c.ns.as_deref() == Some(XSD_NS) => {
                    return Err(
                        self.unsupported(cdef, format!("identity constraints (xs:{})", c.local))
                    );
                }
                other => {
                    return Err(self.err(cdef, format!("<{other}> is not allowed in xs:element")));
                }
            }
        }
        let ty = match (node.attr("type"), inline) {
            (Some(_), Some(i)) => {
                return Err(self.err(
                    i,
                    "an element cannot have both a type attribute and an anonymous type",
                ));
            }
            (Some(t), None) => {
                let (tns, tlocal) = self.qname(def, t)?;
                self.type_by_name(tns, &tlocal, Some(def))?
            }
            (None, Some(i)) => {
                if i.node.is_xsd("complexType") {
                    TypeRef::Complex(self.complex_type(i, None)?)
                } else {
                    TypeRef::Simple(self.simple_type(i, format!("the type of <{name}>"))?)
                }
            }
            (None, None) => TypeRef::Complex(ComplexId(0)),
        };
        // Name anonymous complex types after their element for messages.
        if let TypeRef::Complex(c) = ty
            && inline.is_some()
        {
            self.m.complex[c.0 as usize].name = format!("the type of <{name}>").into();
        }
        self.m.elements[id.0 as usize].ty = ty;
        if self.m.elements[id.0 as usize].constraint.is_some() {
            self.pending_constraints
                .push((PendingOwner::Element(id), def));
        }
        Ok(id)
    }

    // ---------------------------------------------------------------- attributes

    fn global_attribute(&mut self, ns: NsId, local: &str, from: Option<Def<'_>>) -> Res<u32> {
        if let Some(a) = self.m.global_attributes.get(ns, local) {
            return Ok(a);
        }
        let Some(def) = self.defs_attributes.get(ns, local) else {
            let message = format!(
                "the attribute {{{}}}{local} is not declared",
                self.m.ns_str(ns)
            );
            return Err(self.err_at(from, message));
        };
        self.check_attrs(def, &["name", "type", "default", "fixed"])?;
        let ty = self.attribute_type(def, local)?;
        let constraint = self.value_constraint(def)?;
        let id = self.m.attributes.len() as u32;
        self.m.attributes.push(AttributeDecl {
            ns,
            local: local.into(),
            ty,
            constraint,
        });
        self.m.global_attributes.insert(ns, local, id);
        if self.m.attributes[id as usize].constraint.is_some() {
            self.pending_constraints
                .push((PendingOwner::Attribute(id), def));
        }
        Ok(id)
    }

    fn attribute_type(&mut self, def: Def<'d>, name: &str) -> Res<SimpleId> {
        let inline = def.node.content().find(|c| c.is_xsd("simpleType"));
        if let Some(other) = def.node.content().find(|c| !c.is_xsd("simpleType")) {
            return Err(self.err(
                Def {
                    doc: def.doc,
                    node: other,
                },
                format!("<{}> is not allowed in xs:attribute", other.local),
            ));
        }
        match (def.node.attr("type"), inline) {
            (Some(_), Some(_)) => Err(self.err(
                def,
                "an attribute cannot have both a type attribute and an anonymous type",
            )),
            (Some(t), None) => self.simple_by_name(def, t),
            (None, Some(n)) => self.simple_type(
                Def {
                    doc: def.doc,
                    node: n,
                },
                format!("the type of attribute `{name}`"),
            ),
            (None, None) => Ok(self.builtin(Builtin::AnySimpleType)),
        }
    }

    fn value_constraint(&self, def: Def<'_>) -> Res<Option<ValueConstraint>> {
        match (def.node.attr("default"), def.node.attr("fixed")) {
            (Some(_), Some(_)) => Err(self.err(def, "default and fixed cannot both be given")),
            (Some(v), None) => Ok(Some(ValueConstraint {
                fixed: false,
                lexical: v.into(),
                value: None,
            })),
            (None, Some(v)) => Ok(Some(ValueConstraint {
                fixed: true,
                lexical: v.into(),
                value: None,
            })),
            (None, None) => Ok(None),
        }
    }

    /// The attribute declarations, attribute group references and `anyAttribute` of a type.
    fn attribute_set(&mut self, owner: Def<'d>, nodes: &[&'d XNode]) -> Res<AttributeSet> {
        let mut set = AttributeSet {
            uses: Vec::new(),
            prohibited: Vec::new(),
            wildcard: None,
        };
        let mut group_wildcards: Vec<Wildcard> = Vec::new();
        let mut local_wildcard: Option<Wildcard> = None;
        for (i, n) in nodes.iter().enumerate() {
            let def = Def {
                doc: owner.doc,
                node: n,
            };
            if local_wildcard.is_some() {
                return Err(self.err(def, "xs:anyAttribute must come last"));
            }
            match &*n.local {
                "attribute" if n.ns.as_deref() == Some(XSD_NS) => match self.attribute_use(def)? {
                    AttrItem::Use(u) => {
                        if set.uses.iter().any(|x| x.ns == u.ns && x.local == u.local) {
                            return Err(
                                self.err(def, format!("attribute `{}` is declared twice", u.local))
                            );
                        }
                        set.uses.push(u);
                    }
                    AttrItem::Prohibited(ns, local) => set.prohibited.push((ns, local)),
                },
                "attributeGroup" if n.ns.as_deref() == Some(XSD_NS) => {
                    self.check_attrs(def, &["ref"])?;
                    let Some(r) = n.attr("ref") else {
                        return Err(
                            self.err(def, "a local xs:attributeGroup must be a reference (ref)")
                        );
                    };
                    let (ns, local) = self.qname(def, r)?;
                    let group = self.attribute_group(ns, &local, Some(def))?;
                    for u in group.uses {
                        if set.uses.iter().any(|x| x.ns == u.ns && x.local == u.local) {
                            return Err(
                                self.err(def, format!("attribute `{}` is declared twice", u.local))
                            );
                        }
                        set.uses.push(u);
                    }
                    set.prohibited.extend(group.prohibited);
                    if let Some(w) = group.wildcard {
                        group_wildcards.push(w);
                    }
                }
                "anyAttribute" if n.ns.as_deref() == Some(XSD_NS) => {
                    self.check_attrs(def, &["namespace", "processContents"])?;
                    local_wildcard = Some(self.wildcard(def)?);
                }
                other => {
                    let _ = i;
                    return Err(self.err(def, format!("<{other}> is not allowed here")));
                }
            }
        }
        // The complete wildcard: the local one intersected with those of the groups.
        let mut complete = local_wildcard.clone();
        for g in group_wildcards {
            complete = Some(match complete {
                None => g,
                Some(c) => {
                    let ns = intersect(&c.ns, &g.ns).ok_or_else(|| {
                        self.err(
                            owner,
                            "the attribute wildcards cannot be intersected in XML Schema 1.0",
                        )
                    })?;
                    Wildcard {
                        ns,
                        process: c.process,
                    }
                }
            });
        }
        set.wildcard = complete;
        Ok(set)
    }

    fn attribute_use(&mut self, def: Def<'d>) -> Res<AttrItem> {
        let node = def.node;
        let use_ = node.attr("use").map(str::trim).unwrap_or("optional");
        let required = match use_ {
            "optional" => false,
            "required" => true,
            "prohibited" => false,
            other => return Err(self.err(def, format!("`{other}` is not a valid use"))),
        };
        let constraint = self.value_constraint(def)?;
        if required && constraint.as_ref().is_some_and(|c| !c.fixed) {
            return Err(self.err(def, "a required attribute cannot have a default"));
        }
        let (ns, local, ty, decl_constraint) = if let Some(r) = node.attr("ref") {
            self.check_attrs(def, &["ref", "use", "default", "fixed"])?;
            let (ns, local) = self.qname(def, r)?;
            let id = self.global_attribute(ns, &local, Some(def))?;
            let decl = &self.m.attributes[id as usize];
            (
                decl.ns,
                decl.local.clone(),
                decl.ty,
                decl.constraint.clone(),
            )
        } else {
            self.check_attrs(def, &["name", "type", "use", "default", "fixed", "form"])?;
            let Some(name) = node.attr("name") else {
                return Err(self.err(def, "xs:attribute needs a name or a ref"));
            };
            if !is_ncname(name) || name == "xmlns" {
                return Err(self.err(def, format!("`{name}` is not a valid attribute name")));
            }
            let qualified = match node.attr("form").map(str::trim) {
                None => self.docs[def.doc].attribute_qualified,
                Some("qualified") => true,
                Some("unqualified") => false,
                Some(other) => return Err(self.err(def, format!("form cannot be `{other}`"))),
            };
            let ns = if qualified {
                self.target_ns(def.doc)
            } else {
                NO_NS
            };
            let ty = self.attribute_type(def, name)?;
            (ns, Box::from(name), ty, None)
        };
        if use_ == "prohibited" {
            return Ok(AttrItem::Prohibited(ns, local));
        }
        if let (Some(d), Some(u)) = (&decl_constraint, &constraint)
            && d.fixed
            && (!u.fixed || u.lexical != d.lexical)
        {
            return Err(self.err(
                def,
                "a reference to an attribute with a fixed value must keep that value",
            ));
        }
        Ok(AttrItem::Use(AttributeUse {
            ns,
            local,
            ty,
            required,
            constraint: constraint.or(decl_constraint),
        }))
    }

    fn attribute_group(
        &mut self,
        ns: NsId,
        local: &str,
        from: Option<Def<'_>>,
    ) -> Res<AttributeSet> {
        let Some(def) = self.defs_attribute_groups.get(ns, local) else {
            let message = format!(
                "the attribute group {{{}}}{local} is not defined",
                self.m.ns_str(ns)
            );
            return Err(self.err_at(from, message));
        };
        self.check_attrs(def, &["name"])?;
        let key = (ns, Box::from(local));
        if !self.attribute_groups_in_progress.insert(key.clone()) {
            return Err(self.err(
                def,
                format!("the attribute group `{local}` refers to itself"),
            ));
        }
        let children: Vec<&'d XNode> = def.node.content().collect();
        let result = self.attribute_set(def, &children);
        self.attribute_groups_in_progress.remove(&key);
        result
    }

    fn extend_attributes(
        &mut self,
        def: Def<'d>,
        base: Option<ComplexId>,
        own: AttributeSet,
    ) -> Res<AttributeSet> {
        let (mut uses, base_wildcard) = match base {
            Some(b) => {
                let bt = self.m.complex_type(b);
                (bt.attributes.clone(), bt.attribute_wildcard.clone())
            }
            None => (Vec::new(), None),
        };
        for u in own.uses {
            if uses.iter().any(|x| x.ns == u.ns && x.local == u.local) {
                return Err(self.err(
                    def,
                    format!(
                        "attribute `{}` is already declared by the base type",
                        u.local
                    ),
                ));
            }
            uses.push(u);
        }
        let wildcard = match (base_wildcard, own.wildcard) {
            (None, w) | (w, None) => w,
            (Some(b), Some(o)) => {
                let ns = union(&b.ns, &o.ns).ok_or_else(|| {
                    self.err(
                        def,
                        "the attribute wildcards cannot be united in XML Schema 1.0",
                    )
                })?;
                Some(Wildcard {
                    ns,
                    process: o.process,
                })
            }
        };
        Ok(AttributeSet {
            uses,
            prohibited: Vec::new(),
            wildcard,
        })
    }

    /// Attributes of a restriction: the base's, with the restriction's own replacing or
    /// prohibiting them. The checks of Derivation Valid (Restriction, Complex) that concern
    /// attributes are applied: a required attribute stays required, a restricted
    /// attribute's type derives from the base's and keeps a fixed value, a new attribute
    /// needs the base's wildcard, and the wildcard can only shrink.
    fn restrict_attributes(
        &mut self,
        def: Def<'d>,
        base: ComplexId,
        own: AttributeSet,
    ) -> Res<AttributeSet> {
        let base_type = self.m.complex_type(base);
        let mut uses = base_type.attributes.clone();
        let base_wildcard = base_type.attribute_wildcard.clone();
        let is_any_type = base.0 == 0;
        for (n, l) in &own.prohibited {
            if uses
                .iter()
                .any(|u| u.ns == *n && u.local == *l && u.required)
            {
                return Err(self.err(
                    def,
                    format!("the required attribute `{l}` of the base type cannot be prohibited"),
                ));
            }
        }
        uses.retain(|u| {
            !own.prohibited
                .iter()
                .any(|(n, l)| *n == u.ns && *l == u.local)
        });
        for u in own.uses {
            match uses.iter_mut().find(|x| x.ns == u.ns && x.local == u.local) {
                Some(x) => {
                    if x.required && !u.required {
                        return Err(self.err(
                            def,
                            format!("attribute `{}` is required in the base type and must stay required", u.local),
                        ));
                    }
                    if self
                        .m
                        .derivation_chain(TypeRef::Simple(u.ty), TypeRef::Simple(x.ty))
                        .is_none()
                    {
                        return Err(self.err(
                            def,
                            format!("the type of attribute `{}` must derive from its type in the base type", u.local),
                        ));
                    }
                    if let Some(bc) = x.constraint.as_ref().filter(|c| c.fixed)
                        && !u
                            .constraint
                            .as_ref()
                            .is_some_and(|c| c.fixed && c.lexical == bc.lexical)
                    {
                        return Err(self.err(
                            def,
                            format!("attribute `{}` has a fixed value in the base type that a restriction must keep", u.local),
                        ));
                    }
                    *x = u;
                }
                None => {
                    if !is_any_type && !base_wildcard.as_ref().is_some_and(|w| w.ns.allows(u.ns)) {
                        return Err(self.err(
                            def,
                            format!("attribute `{}` is not allowed by the base type", u.local),
                        ));
                    }
                    uses.push(u);
                }
            }
        }
        if let Some(w) = &own.wildcard
            && !is_any_type
        {
            let subset = base_wildcard
                .as_ref()
                .is_some_and(|b| intersect(&w.ns, &b.ns).is_some_and(|i| i == w.ns));
            if !subset {
                return Err(self.err(
                    def,
                    "the attribute wildcard of a restriction must be a subset of the base type's",
                ));
            }
        }
        Ok(AttributeSet {
            uses,
            prohibited: Vec::new(),
            wildcard: own.wildcard,
        })
    }

    // ---------------------------------------------------------------- final passes

    fn check_constraints(&mut self) -> Res<()> {
        let pending = std::mem::take(&mut self.pending_constraints);
        for (owner, def) in pending {
            let (lexical, simple) = match owner {
                PendingOwner::Element(e) => {
                    let decl = &self.m.elements[e.0 as usize];
                    let Some(c) = &decl.constraint else { continue };
                    let simple = match decl.ty {
                        TypeRef::Simple(s) => Some(s),
                        TypeRef::Complex(ct) => match &self.m.complex_type(ct).content {
                            Content::Simple(s) => Some(*s),
                            Content::Elements { mixed: true, .. } => None,
                            _ => {
                                return Err(self.err(
                                    def,
                                    "default and fixed values need simple or mixed content",
                                ));
                            }
                        },
                    };
                    (c.lexical.clone(), simple)
                }
                PendingOwner::Attribute(a) => {
                    let decl = &self.m.attributes[a as usize];
                    let Some(c) = &decl.constraint else { continue };
                    (c.lexical.clone(), Some(decl.ty))
                }
            };
            let value = match simple {
                Some(s) => self
                    .m
                    .check_simple(
                        s,
                        &lexical,
                        CheckMode {
                            attribute: false,
                            want_value: true,
                        },
                        &mut SchemaScope(def.node),
                    )
                    .map_err(|e| {
                        self.err(def, format!("the default or fixed value is not valid: {e}"))
                    })?,
                None => Some(Value::Str(lexical.to_string().into())),
            };
            match owner {
                PendingOwner::Element(e) => {
                    if let Some(c) = &mut self.m.elements[e.0 as usize].constraint {
                        c.value = value;
                    }
                }
                PendingOwner::Attribute(a) => {
                    if let Some(c) = &mut self.m.attributes[a as usize].constraint {
                        c.value = value;
                    }
                }
            }
        }
        // Attribute uses: their values are checked against their own types.
        for ci in 0..self.m.complex.len() {
            for ui in 0..self.m.complex[ci].attributes.len() {
                let (ty, lexical) = {
                    let u = &self.m.complex[ci].attributes[ui];
                    match &u.constraint {
                        Some(c) if c.value.is_none() => (u.ty, c.lexical.clone()),
                        _ => continue,
                    }
                };
                let value = self.m.check_simple(
                    ty,
                    &lexical,
                    CheckMode {
                        attribute: false,
                        want_value: true,
                    },
                    &mut NoContext,
                );
                let value = match value {
                    Ok(v) => v,
                    Err(e) => {
                        let message = format!(
                            "the default or fixed value of attribute `{}` of {} is not valid: {e}",
                            self.m.complex[ci].attributes[ui].local, self.m.complex[ci].name
                        );
                        return Err(self.err_at(
                            self.complex_specs[ci].as_ref().map(|(_, def)| *def),
                            message,
                        ));
                    }
                };
                if let Some(c) = &mut self.m.complex[ci].attributes[ui].constraint {
                    c.value = value;
                }
            }
        }
        Ok(())
    }

    fn build_content_models(&mut self) -> Res<()> {
        for ci in 0..self.complex_specs.len() {
            let Some((spec, def)) = self.complex_specs[ci].take() else {
                continue;
            };
            if let ContentSpec::Particle { mixed, particle } = spec {
                let name = self.m.complex[ci].name.to_string();
                let model = content::build(&self.m, particle.as_ref(), &name)
                    .map_err(|message| self.err(def, message))?;
                self.m.complex[ci].content = Content::Elements { mixed, model };
            }
        }
        Ok(())
    }
}

enum AttrItem {
    Use(AttributeUse),
    Prohibited(NsId, Box<str>),
}

/// The content type of a complex type from its particle.
fn particle_spec(mixed: bool, particle: Option<Particle>) -> ContentSpec {
    let empty = match &particle {
        None => true,
        Some(p) => match &p.term {
            Term::Sequence(v) | Term::All(v) => v.is_empty(),
            Term::Choice(v) => v.is_empty() && p.min == 0,
            _ => false,
        },
    };
    if empty && !mixed {
        ContentSpec::Empty
    } else {
        ContentSpec::Particle {
            mixed,
            particle: if empty { None } else { particle },
        }
    }
}

/// Intersection of namespace constraints (XML Schema 1.0 §3.10.6), `None` when it cannot
/// be expressed.
fn intersect(a: &NsConstraint, b: &NsConstraint) -> Option<NsConstraint> {
    use NsConstraint::*;
    Some(match (a, b) {
        (Any, x) | (x, Any) => x.clone(),
        (Set(x), Set(y)) => Set(x.iter().copied().filter(|n| y.contains(n)).collect()),
        (Set(x), Not(n)) | (Not(n), Set(x)) => Set(x
            .iter()
            .copied()
            .filter(|v| *v != *n && *v != NO_NS)
            .collect()),
        (Not(x), Not(y)) => {
            if x == y {
                Not(*x)
            } else {
                return None;
            }
        }
    })
}

/// Union of namespace constraints (XML Schema 1.0 §3.10.6).
fn union(a: &NsConstraint, b: &NsConstraint) -> Option<NsConstraint> {
    use NsConstraint::*;
    Some(match (a, b) {
        (Any, _) | (_, Any) => Any,
        (Set(x), Set(y)) => {
            let mut v = x.clone();
            for n in y {
                if !v.contains(n) {
                    v.push(*n);
                }
            }
            Set(v)
        }
        (Not(n), Set(x)) | (Set(x), Not(n)) => {
            if x.contains(n) {
                Any
            } else {
                Not(*n)
            }
        }
        (Not(x), Not(y)) => {
            if x == y {
                Not(*x)
            } else {
                Not(NO_NS)
            }
        }
    })
}

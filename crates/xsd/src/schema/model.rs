//! The compiled, immutable form of a schema set.
//!
//! Owns: the component tables the compiler fills and the validator reads — namespaces
//! interned to [`NsId`], element and attribute declarations, simple types with their facets
//! flattened per derivation step, complex types with content models already compiled to
//! deterministic automata ([`Dfa`]) or `xs:all` sets — and simple-value validation
//! ([`Model::check_simple`]), which both the compiler (for defaults, fixed values and
//! enumerations) and the validator use.
//!
//! It must not: parse XML, read files, or hold anything mutable after compilation.

use std::collections::HashMap;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use super::values::{self, Builtin, Value, WhiteSpace};

/// An interned namespace URI. [`NO_NS`] is "no namespace".
pub type NsId = u32;
pub const NO_NS: NsId = 0;
/// A namespace that appears in a document but nowhere in the schema.
pub const UNKNOWN_NS: NsId = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ElemId(pub u32);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SimpleId(pub u32);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ComplexId(pub u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TypeRef {
    Simple(SimpleId),
    Complex(ComplexId),
}

/// A small multiplicative hasher for tables built from the schema (enumerations, names).
/// Attacker-controlled keys are only ever looked up, never inserted, so flooding is moot.
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            h = (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
        self.0 = h;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;
pub type FastSet<K> = HashSet<K, BuildHasherDefault<FastHasher>>;

/// Global components of one kind, looked up by local name then namespace.
#[derive(Debug)]
pub struct NameTable<T> {
    by_local: FastMap<Box<str>, Vec<(NsId, T)>>,
}

impl<T> Default for NameTable<T> {
    fn default() -> Self {
        NameTable {
            by_local: FastMap::default(),
        }
    }
}

impl<T: Copy> NameTable<T> {
    pub fn get(&self, ns: NsId, local: &str) -> Option<T> {
        self.by_local
            .get(local)?
            .iter()
            .find(|(n, _)| *n == ns)
            .map(|(_, t)| *t)
    }

    /// Inserts; returns `false` when the name was already taken.
    pub fn insert(&mut self, ns: NsId, local: &str, value: T) -> bool {
        let entry = self.by_local.entry(local.into()).or_default();
        if entry.iter().any(|(n, _)| *n == ns) {
            return false;
        }
        entry.push((ns, value));
        true
    }

    pub fn iter(&self) -> impl Iterator<Item = (NsId, &str, T)> + '_ {
        self.by_local
            .iter()
            .flat_map(|(l, v)| v.iter().map(move |(n, t)| (*n, &**l, *t)))
    }
}

/// The whole compiled schema set.
#[derive(Debug, Default)]
pub struct Model {
    pub namespaces: Vec<Box<str>>,
    pub ns_lookup: FastMap<Box<str>, NsId>,
    pub simple: Vec<SimpleType>,
    pub complex: Vec<ComplexType>,
    pub elements: Vec<ElementDecl>,
    pub attributes: Vec<AttributeDecl>,
    pub global_elements: NameTable<ElemId>,
    pub global_attributes: NameTable<u32>,
    pub global_types: NameTable<TypeRef>,
    pub builtin_ids: FastMap<&'static str, SimpleId>,
    pub any_type: Option<ComplexId>,
    pub any_simple_type: Option<SimpleId>,
    /// Per simple type: whether its values can hold a QName (and so need the namespace
    /// bindings of the element). Filled at the end of compilation.
    pub needs_namespaces: Vec<bool>,
}

/// `default` or `fixed`.
#[derive(Debug, Clone)]
pub struct ValueConstraint {
    pub fixed: bool,
    pub lexical: Box<str>,
    /// The value in the value space of the type, for comparing `fixed` values.
    pub value: Option<Value<'static>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Block {
    pub extension: bool,
    pub restriction: bool,
    pub substitution: bool,
}

#[derive(Debug)]
pub struct ElementDecl {
    pub ns: NsId,
    pub local: Box<str>,
    pub ty: TypeRef,
    pub nillable: bool,
    pub constraint: Option<ValueConstraint>,
    pub is_abstract: bool,
    pub block: Block,
}

#[derive(Debug)]
pub struct AttributeDecl {
    pub ns: NsId,
    pub local: Box<str>,
    pub ty: SimpleId,
    pub constraint: Option<ValueConstraint>,
}

#[derive(Debug, Clone)]
pub struct AttributeUse {
    pub ns: NsId,
    pub local: Box<str>,
    pub ty: SimpleId,
    pub required: bool,
    pub constraint: Option<ValueConstraint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    Strict,
    Lax,
    Skip,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NsConstraint {
    Any,
    /// `##other`: any namespace except this one, and never "no namespace".
    Not(NsId),
    Set(Vec<NsId>),
}

impl NsConstraint {
    pub fn allows(&self, ns: NsId) -> bool {
        match self {
            NsConstraint::Any => true,
            NsConstraint::Not(x) => ns != NO_NS && ns != *x,
            NsConstraint::Set(v) => v.contains(&ns),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wildcard {
    pub ns: NsConstraint,
    pub process: Process,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Derivation {
    Extension,
    Restriction,
}

#[derive(Debug)]
pub struct ComplexType {
    pub name: Box<str>,
    pub base: Option<TypeRef>,
    pub derivation: Derivation,
    pub content: Content,
    pub attributes: Vec<AttributeUse>,
    pub attribute_wildcard: Option<Wildcard>,
    pub is_abstract: bool,
    pub block: Block,
}

#[derive(Debug)]
pub enum Content {
    Empty,
    Simple(SimpleId),
    Elements { mixed: bool, model: ContentModel },
}

#[derive(Debug)]
pub enum ContentModel {
    Dfa(Dfa),
    All(AllModel),
}

#[derive(Debug, Default)]
pub struct Dfa {
    pub states: Vec<DfaState>,
}

#[derive(Debug, Default)]
pub struct DfaState {
    pub accepting: bool,
    pub elements: Box<[ElemTransition]>,
    pub wildcards: Box<[WildTransition]>,
}

#[derive(Debug)]
pub struct ElemTransition {
    pub ns: NsId,
    pub local: Box<str>,
    pub elem: ElemId,
    pub next: u32,
}

#[derive(Debug)]
pub struct WildTransition {
    pub wildcard: Wildcard,
    pub next: u32,
}

#[derive(Debug)]
pub struct AllModel {
    pub items: Vec<AllItem>,
    /// `minOccurs="0"` on the `xs:all` itself: no children at all is also fine.
    pub emptiable: bool,
}

#[derive(Debug)]
pub struct AllItem {
    pub ns: NsId,
    pub local: Box<str>,
    pub elem: ElemId,
    pub required: bool,
}

#[derive(Debug)]
pub enum Variety {
    Atomic(Builtin),
    List(SimpleId),
    Union(Vec<SimpleId>),
}

/// One `enumeration` facet (all values of one derivation step).
#[derive(Debug, Default, Clone)]
pub struct Enumeration {
    pub values: Vec<Value<'static>>,
    pub lexical: Vec<Box<str>>,
    /// For string-valued types: the set of allowed strings, for constant-time lookup.
    pub strings: Option<FastSet<Box<str>>>,
}

impl Enumeration {
    pub fn contains(&self, value: &Value<'_>) -> bool {
        if let (Some(set), Value::Str(s)) = (&self.strings, value) {
            return set.contains(&**s);
        }
        self.values.iter().any(|v| v.same(value))
    }
}

#[derive(Debug, Clone)]
pub struct Pattern {
    pub source: Box<str>,
    pub regex: regex::Regex,
}

/// The facets of a simple type, accumulated over its whole derivation chain: every step's
/// constraints must hold, so bounds are kept per step.
#[derive(Debug, Default, Clone)]
pub struct Facets {
    pub length: Option<usize>,
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
    /// One entry per derivation step; a value must match one pattern of every step.
    pub patterns: Vec<Vec<Pattern>>,
    pub enumerations: Vec<Enumeration>,
    pub min: Vec<(Value<'static>, bool)>,
    pub max: Vec<(Value<'static>, bool)>,
    pub total_digits: Option<usize>,
    pub fraction_digits: Option<usize>,
}

impl Facets {
    pub fn is_empty(&self) -> bool {
        self.length.is_none()
            && self.min_length.is_none()
            && self.max_length.is_none()
            && self.patterns.is_empty()
            && self.enumerations.is_empty()
            && self.min.is_empty()
            && self.max.is_empty()
            && self.total_digits.is_none()
            && self.fraction_digits.is_none()
    }
}

#[derive(Debug)]
pub struct SimpleType {
    /// How messages name the type (`xs:date`, `OrganisaatioKoodiTyyppi`, ...).
    pub name: Box<str>,
    pub base: Option<TypeRef>,
    pub variety: Variety,
    pub whitespace: WhiteSpace,
    pub facets: Facets,
}

/// What the validator offers simple-value checking: namespace context for QNames and the
/// document-wide set of IDs.
pub trait ValueContext {
    fn resolve_prefix(&self, prefix: &str) -> Option<&str>;
    /// Records an ID; `false` when it was already used in this document.
    fn record_id(&mut self, id: &str) -> bool;
}

/// A context with no namespace bindings that ignores IDs (for schema-time checks).
pub struct NoContext;

impl ValueContext for NoContext {
    fn resolve_prefix(&self, _prefix: &str) -> Option<&str> {
        None
    }
    fn record_id(&mut self, _id: &str) -> bool {
        true
    }
}

/// Why a simple value is invalid. Messages never repeat the value itself: it may be
/// personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimpleError {
    Lexical {
        type_name: String,
    },
    Length {
        actual: usize,
        facet: &'static str,
        limit: usize,
        type_name: String,
    },
    Pattern {
        patterns: Vec<String>,
        type_name: String,
    },
    Enumeration {
        count: usize,
        sample: Vec<String>,
        type_name: String,
    },
    Bound {
        facet: &'static str,
        limit: String,
        type_name: String,
    },
    Digits {
        facet: &'static str,
        limit: usize,
        type_name: String,
    },
    DuplicateId,
    UnboundPrefix {
        prefix: String,
    },
    Union {
        type_name: String,
    },
    EntityWithoutDtd,
}

impl std::error::Error for SimpleError {}

impl std::fmt::Display for SimpleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SimpleError::Lexical { type_name } => write!(f, "the value is not a valid {type_name}"),
            SimpleError::Length {
                actual,
                facet,
                limit,
                type_name,
            } => write!(
                f,
                "the value has length {actual}, but {facet} of {type_name} is {limit}"
            ),
            SimpleError::Pattern {
                patterns,
                type_name,
            } => {
                write!(f, "the value does not match the pattern of {type_name} (")?;
                for (i, p) in patterns.iter().enumerate() {
                    if i > 0 {
                        write!(f, " | ")?;
                    }
                    write!(f, "`{p}`")?;
                }
                write!(f, ")")
            }
            SimpleError::Enumeration {
                count,
                sample,
                type_name,
            } => {
                write!(
                    f,
                    "the value is not one of the {count} allowed values of {type_name}"
                )?;
                if !sample.is_empty() && sample.len() == *count {
                    write!(f, " ({})", sample.join(", "))?;
                }
                Ok(())
            }
            SimpleError::Bound {
                facet,
                limit,
                type_name,
            } => write!(f, "the value violates {facet} {limit} of {type_name}"),
            SimpleError::Digits {
                facet,
                limit,
                type_name,
            } => write!(
                f,
                "the value has more digits than {facet} {limit} of {type_name}"
            ),
            SimpleError::DuplicateId => write!(f, "the ID value is already used in this document"),
            SimpleError::UnboundPrefix { prefix } => {
                write!(f, "the QName prefix `{prefix}` is not declared")
            }
            SimpleError::Union { type_name } => {
                write!(
                    f,
                    "the value matches none of the member types of {type_name}"
                )
            }
            SimpleError::EntityWithoutDtd => write!(
                f,
                "ENTITY values need an unparsed entity declared in a DTD, and DTDs are refused"
            ),
        }
    }
}

/// Whether a check is for an attribute (IDs are only recorded for attributes, as libxml2
/// does) and whether the caller wants the value back.
#[derive(Debug, Clone, Copy)]
pub struct CheckMode {
    pub attribute: bool,
    pub want_value: bool,
}

impl Model {
    pub fn ns_id(&self, uri: Option<&str>) -> NsId {
        match uri {
            None | Some("") => NO_NS,
            Some(u) => self.ns_lookup.get(u).copied().unwrap_or(UNKNOWN_NS),
        }
    }

    pub fn ns_str(&self, ns: NsId) -> &str {
        if ns == UNKNOWN_NS {
            return "?";
        }
        self.namespaces.get(ns as usize).map_or("?", |s| &**s)
    }

    /// Computes [`Model::needs_namespaces`] for every simple type.
    pub fn compute_namespace_needs(&mut self) {
        fn needs(m: &Model, id: SimpleId, depth: usize) -> bool {
            if depth > 64 {
                return false;
            }
            match &m.simple_type(id).variety {
                Variety::Atomic(b) => matches!(b, Builtin::QName | Builtin::Notation),
                Variety::List(i) => needs(m, *i, depth + 1),
                Variety::Union(v) => v.iter().any(|x| needs(m, *x, depth + 1)),
            }
        }
        let flags = (0..self.simple.len())
            .map(|i| needs(self, SimpleId(i as u32), 0))
            .collect();
        self.needs_namespaces = flags;
    }

    // The accessors below index with ids that only the compiler makes, for this model; a
    // document cannot produce one, so the indexing cannot fail on untrusted input.

    pub fn simple_type(&self, id: SimpleId) -> &SimpleType {
        &self.simple[id.0 as usize]
    }

    pub fn complex_type(&self, id: ComplexId) -> &ComplexType {
        &self.complex[id.0 as usize]
    }

    pub fn element(&self, id: ElemId) -> &ElementDecl {
        &self.elements[id.0 as usize]
    }

    pub fn type_name(&self, t: TypeRef) -> &str {
        match t {
            TypeRef::Simple(s) => &self.simple_type(s).name,
            TypeRef::Complex(c) => &self.complex_type(c).name,
        }
    }

    pub fn base_of(&self, t: TypeRef) -> Option<TypeRef> {
        match t {
            TypeRef::Simple(s) => self.simple_type(s).base,
            TypeRef::Complex(c) => self.complex_type(c).base,
        }
    }

    /// Whether `derived` is `base` or derives from it, and which derivation methods the
    /// chain uses (for `block`).
    pub fn derivation_chain(&self, derived: TypeRef, base: TypeRef) -> Option<(bool, bool)> {
        let mut t = derived;
        let mut extension = false;
        let mut restriction = false;
        for _ in 0..1000 {
            if t == base {
                return Some((extension, restriction));
            }
            match t {
                TypeRef::Complex(c) => match self.complex_type(c).derivation {
                    Derivation::Extension => extension = true,
                    Derivation::Restriction => restriction = true,
                },
                TypeRef::Simple(_) => restriction = true,
            }
            t = self.base_of(t)?;
        }
        None
    }

    /// Validates a simple value against a simple type. Returns the value in the value space
    /// when `mode.want_value` is set (for `fixed` comparisons).
    pub fn check_simple(
        &self,
        id: SimpleId,
        raw: &str,
        mode: CheckMode,
        ctx: &mut dyn ValueContext,
    ) -> Result<Option<Value<'static>>, SimpleError> {
        let st = self.simple_type(id);
        match &st.variety {
            Variety::Atomic(builtin) => {
                if builtin.refuses_padding() && !values::padding_tolerated(*builtin, raw) {
                    return Err(SimpleError::Lexical {
                        type_name: st.name.to_string(),
                    });
                }
                let normalized = values::normalize(raw, st.whitespace);
                let value = builtin
                    .parse(&normalized)
                    .map_err(|_| SimpleError::Lexical {
                        type_name: st.name.to_string(),
                    })?;
                match builtin {
                    Builtin::QName | Builtin::Notation => {
                        if let Some((Some(prefix), _)) = crate::reader::split_qname(&normalized)
                            && ctx.resolve_prefix(prefix).is_none()
                        {
                            return Err(SimpleError::UnboundPrefix {
                                prefix: prefix.to_owned(),
                            });
                        }
                    }
                    Builtin::Entity => return Err(SimpleError::EntityWithoutDtd),
                    _ => {}
                }
                self.check_facets(st, &normalized, &value)?;
                if mode.attribute
                    && builtin.derives_from(Builtin::Id)
                    && !ctx.record_id(&normalized)
                {
                    return Err(SimpleError::DuplicateId);
                }
                Ok(mode.want_value.then(|| value.into_owned()))
            }
            Variety::List(item) => {
                let normalized = values::normalize(raw, WhiteSpace::Collapse);
                let mut count = 0usize;
                if !normalized.is_empty() {
                    for token in normalized.split(' ') {
                        count += 1;
                        self.check_simple(
                            *item,
                            token,
                            CheckMode {
                                attribute: mode.attribute,
                                want_value: false,
                            },
                            ctx,
                        )?;
                    }
                }
                let value = Value::Str(normalized.clone());
                self.check_list_facets(st, &normalized, count)?;
                Ok(mode.want_value.then(|| value.into_owned()))
            }
            Variety::Union(members) => {
                let mut found = None;
                for m in members {
                    if let Ok(v) = self.check_simple(
                        *m,
                        raw,
                        CheckMode {
                            attribute: mode.attribute,
                            want_value: true,
                        },
                        ctx,
                    ) {
                        found = Some(v);
                        break;
                    }
                }
                let Some(value) = found else {
                    return Err(SimpleError::Union {
                        type_name: st.name.to_string(),
                    });
                };
                let value = value.unwrap_or(Value::Str(raw.to_owned().into()));
                self.check_union_facets(st, raw, &value)?;
                Ok(mode.want_value.then_some(value))
            }
        }
    }

    fn check_facets(
        &self,
        st: &SimpleType,
        lexical: &str,
        value: &Value<'_>,
    ) -> Result<(), SimpleError> {
        let f = &st.facets;
        if f.is_empty() {
            return Ok(());
        }
        let name = || st.name.to_string();
        if f.length.is_some() || f.min_length.is_some() || f.max_length.is_some() {
            // Length facets do not constrain QName and NOTATION values (libxml2).
            let applies = !matches!(
                st.variety,
                Variety::Atomic(Builtin::QName | Builtin::Notation)
            );
            if applies {
                // Characters never outnumber bytes: a short enough byte length settles
                // maxLength without counting.
                let settled = match value {
                    Value::Str(s) => {
                        f.length.is_none()
                            && f.min_length.is_none_or(|m| m == 0)
                            && f.max_length.is_none_or(|m| s.len() <= m)
                    }
                    _ => false,
                };
                if !settled && let Some(len) = value.length() {
                    length_check(f, len, &st.name)?;
                }
            }
        }
        pattern_check(f, lexical, &st.name)?;
        for e in &f.enumerations {
            if !e.contains(value) {
                return Err(enumeration_error(e, name()));
            }
        }
        for (bound, inclusive) in &f.min {
            let ok = match values::compare(value, bound) {
                Some(std::cmp::Ordering::Greater) => true,
                Some(std::cmp::Ordering::Equal) => *inclusive,
                _ => false,
            };
            if !ok {
                return Err(SimpleError::Bound {
                    facet: if *inclusive {
                        "minInclusive"
                    } else {
                        "minExclusive"
                    },
                    limit: display_value(bound),
                    type_name: name(),
                });
            }
        }
        for (bound, inclusive) in &f.max {
            let ok = match values::compare(value, bound) {
                Some(std::cmp::Ordering::Less) => true,
                Some(std::cmp::Ordering::Equal) => *inclusive,
                _ => false,
            };
            if !ok {
                return Err(SimpleError::Bound {
                    facet: if *inclusive {
                        "maxInclusive"
                    } else {
                        "maxExclusive"
                    },
                    limit: display_value(bound),
                    type_name: name(),
                });
            }
        }
        if let Value::Decimal(d) = value {
            if let Some(t) = f.total_digits
                && d.total_digits() > t
            {
                return Err(SimpleError::Digits {
                    facet: "totalDigits",
                    limit: t,
                    type_name: name(),
                });
            }
            if let Some(t) = f.fraction_digits
                && d.fraction_digits() > t
            {
                return Err(SimpleError::Digits {
                    facet: "fractionDigits",
                    limit: t,
                    type_name: name(),
                });
            }
        }
        Ok(())
    }

    fn check_list_facets(
        &self,
        st: &SimpleType,
        normalized: &str,
        count: usize,
    ) -> Result<(), SimpleError> {
        let f = &st.facets;
        length_check(f, count, &st.name)?;
        pattern_check(f, normalized, &st.name)?;
        for e in &f.enumerations {
            if !e.lexical.iter().any(|l| &**l == normalized) {
                return Err(enumeration_error(e, st.name.to_string()));
            }
        }
        Ok(())
    }

    fn check_union_facets(
        &self,
        st: &SimpleType,
        raw: &str,
        value: &Value<'_>,
    ) -> Result<(), SimpleError> {
        let f = &st.facets;
        pattern_check(f, raw, &st.name)?;
        for e in &f.enumerations {
            if !e.contains(value) && !e.lexical.iter().any(|l| **l == *raw) {
                return Err(enumeration_error(e, st.name.to_string()));
            }
        }
        Ok(())
    }
}

fn length_check(f: &Facets, len: usize, type_name: &str) -> Result<(), SimpleError> {
    let err = |facet, limit| SimpleError::Length {
        actual: len,
        facet,
        limit,
        type_name: type_name.to_owned(),
    };
    if let Some(l) = f.length
        && len != l
    {
        return Err(err("length", l));
    }
    if let Some(l) = f.min_length
        && len < l
    {
        return Err(err("minLength", l));
    }
    if let Some(l) = f.max_length
        && len > l
    {
        return Err(err("maxLength", l));
    }
    Ok(())
}

fn pattern_check(f: &Facets, lexical: &str, type_name: &str) -> Result<(), SimpleError> {
    for step in &f.patterns {
        if !step.iter().any(|p| p.regex.is_match(lexical)) {
            return Err(SimpleError::Pattern {
                patterns: step.iter().map(|p| p.source.to_string()).collect(),
                type_name: type_name.to_owned(),
            });
        }
    }
    Ok(())
}

fn enumeration_error(e: &Enumeration, type_name: String) -> SimpleError {
    let count = e.lexical.len();
    let sample = if count <= 12 {
        e.lexical.iter().map(|l| format!("'{l}'")).collect()
    } else {
        Vec::new()
    };
    SimpleError::Enumeration {
        count,
        sample,
        type_name,
    }
}

fn display_value(v: &Value<'_>) -> String {
    match v {
        Value::Str(s) => s.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Decimal(d) => {
            let mut s = String::new();
            if d.negative {
                s.push('-');
            }
            s.push_str(if d.int.is_empty() { "0" } else { &d.int });
            if !d.frac.is_empty() {
                s.push('.');
                s.push_str(&d.frac);
            }
            s
        }
        Value::Float(f) | Value::Double(f) => f.to_string(),
        Value::DateTime(d) => {
            let mut s = format!("{:04}-{:02}-{:02}", d.year, d.month, d.day);
            if matches!(d.kind, Builtin::DateTime | Builtin::Time) {
                s.push_str(&format!("T{:02}:{:02}:{:02}", d.hour, d.minute, d.second));
            }
            s
        }
        Value::Duration(d) => format!("{} months {} seconds", d.months, d.seconds),
        Value::HexBinary(s) => s.to_string(),
        Value::Base64Binary { text, .. } => text.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn name_table_keeps_namespaces_apart() {
        let mut t = NameTable::default();
        assert!(t.insert(1, "a", 10));
        assert!(t.insert(2, "a", 20));
        assert!(!t.insert(1, "a", 30));
        assert_eq!(t.get(1, "a"), Some(10));
        assert_eq!(t.get(2, "a"), Some(20));
        assert_eq!(t.get(3, "a"), None);
        assert_eq!(t.iter().count(), 2);
    }

    #[test]
    fn namespace_constraints() {
        assert!(NsConstraint::Any.allows(NO_NS));
        assert!(!NsConstraint::Not(3).allows(NO_NS));
        assert!(!NsConstraint::Not(3).allows(3));
        assert!(NsConstraint::Not(3).allows(UNKNOWN_NS));
        assert!(NsConstraint::Set(vec![NO_NS, 2]).allows(NO_NS));
        assert!(!NsConstraint::Set(vec![2]).allows(UNKNOWN_NS));
    }

    #[test]
    fn messages_do_not_repeat_values() {
        let e = SimpleError::Enumeration {
            count: 2,
            sample: vec!["'1'".into(), "'2'".into()],
            type_name: "T".into(),
        };
        assert_eq!(
            e.to_string(),
            "the value is not one of the 2 allowed values of T ('1', '2')"
        );
        let e = SimpleError::Length {
            actual: 6,
            facet: "maxLength",
            limit: 5,
            type_name: "T".into(),
        };
        assert_eq!(
            e.to_string(),
            "the value has length 6, but maxLength of T is 5"
        );
    }
}

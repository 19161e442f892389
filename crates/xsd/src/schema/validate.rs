//! Streaming validation of one document against a compiled [`Model`].
//!
//! Owns: the [`Validator`], a [`Handler`] for the hardened tokenizer that keeps one frame
//! per open element (declaration, type, automaton state, how character data is treated)
//! and checks, as events arrive: the root against the global declarations, each child
//! against its parent's automaton or `xs:all` set, wildcards with `processContents`,
//! `xsi:type` and `xsi:nil`, attributes (declared uses, `required`, `fixed`, wildcards),
//! simple values against their types and facets, empty / element-only / mixed content, and
//! ID uniqueness. Memory is bounded by the nesting depth (plus the IDs seen, which libxml2
//! also keeps); frames and buffers are reused, so there is no allocation per element.
//!
//! It must not: build a tree, keep the document, or put element or attribute *values* in
//! error messages (they may be personal data); names and schema facts are fine.

use std::collections::HashSet;
use std::ops::ControlFlow;

use super::model::*;
use super::{ValidationError, ValidationErrors};
use crate::reader::{AttributeView, DeferredPosition, Handler, Locator, StartTag, split_qname};

pub const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Validated against a declaration or type.
    Strict,
    /// Matched a lax wildcard without a declaration: children are validated if declared.
    Lax,
    /// Not validated at all.
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextMode {
    /// Collect the text and check it against this simple type at the end tag.
    Simple(SimpleId),
    /// Only whitespace allowed.
    ElementOnly,
    /// No character data at all (not even whitespace).
    Empty,
    Mixed,
    /// Mixed content whose element has a fixed value: collect to compare.
    MixedFixed,
    Ignore,
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    kind: Kind,
    elem: Option<ElemId>,
    ty: Option<TypeRef>,
    state: u32,
    all_seen: u64,
    broken: bool,
    nil: bool,
    text_mode: TextMode,
    has_children: bool,
    text_reported: bool,
    path_len: usize,
    counts_len: usize,
    names_len: usize,
    start: DeferredPosition,
    /// The element's namespace bindings were saved in `Validator::bindings` (only for
    /// QName-valued content, which needs them at the end tag).
    saved_bindings: bool,
}

impl Frame {
    fn blank() -> Frame {
        Frame {
            kind: Kind::Skip,
            elem: None,
            ty: None,
            state: 0,
            all_seen: 0,
            broken: false,
            nil: false,
            text_mode: TextMode::Ignore,
            has_children: false,
            text_reported: false,
            path_len: 0,
            counts_len: 0,
            names_len: 0,
            start: DeferredPosition::Offset(0),
            saved_bindings: false,
        }
    }
}

/// The root element of a validated document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RootName {
    pub namespace: Option<String>,
    pub local: String,
}

pub struct Validator<'s> {
    model: &'s Model,
    frames: Vec<Frame>,
    depth: usize,
    path: String,
    /// Sibling counts per open element: (start of name in `names`, length, count).
    counts: Vec<(usize, usize, u32)>,
    names: String,
    text: String,
    errors: Vec<ValidationError>,
    max_errors: usize,
    truncated: bool,
    ids: HashSet<String>,
    last_ns_key: u64,
    last_ns_id: NsId,
    /// The namespace URI of the current element when the schema does not know it (for
    /// messages only).
    found_ns: String,
    /// Saved namespace bindings per depth, for QName-valued content.
    bindings: Vec<Vec<(Box<str>, Box<str>)>>,
    seen_uses: Vec<bool>,
    pub root: Option<RootName>,
    pub elements: u64,
}

struct Ctx<'a> {
    ids: &'a mut HashSet<String>,
    tag: Option<&'a StartTag<'a>>,
    saved: &'a [(Box<str>, Box<str>)],
}

impl ValueContext for Ctx<'_> {
    fn resolve_prefix(&self, prefix: &str) -> Option<&str> {
        if let Some(t) = self.tag {
            return t.lookup_prefix(prefix);
        }
        self.saved
            .iter()
            .find(|(p, _)| &**p == prefix)
            .map(|(_, u)| &**u)
            .filter(|u| !u.is_empty())
    }

    fn record_id(&mut self, id: &str) -> bool {
        if self.ids.contains(id) {
            return false;
        }
        self.ids.insert(id.to_owned());
        true
    }
}

impl<'s> Validator<'s> {
    pub fn new(model: &'s Model, max_errors: usize) -> Self {
        Validator {
            model,
            frames: Vec::new(),
            depth: 0,
            path: String::with_capacity(256),
            counts: Vec::new(),
            names: String::new(),
            text: String::new(),
            errors: Vec::new(),
            max_errors,
            truncated: false,
            ids: HashSet::new(),
            last_ns_key: 0,
            last_ns_id: NO_NS,
            found_ns: String::new(),
            bindings: Vec::new(),
            seen_uses: Vec::new(),
            root: None,
            elements: 0,
        }
    }

    pub fn into_errors(self) -> ValidationErrors {
        ValidationErrors {
            errors: self.errors,
            truncated: self.truncated,
        }
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    fn element_ns(&mut self, tag: &StartTag<'_>) -> NsId {
        let key = tag.namespace_key();
        if key == 0 {
            return NO_NS;
        }
        if key != self.last_ns_key {
            self.last_ns_key = key;
            self.last_ns_id = self.model.ns_id(tag.namespace());
        }
        self.last_ns_id
    }

    /// Records an error at `at`; `Break` once the cap is reached.
    fn error(
        &mut self,
        loc: &Locator<'_>,
        at: DeferredPosition,
        message: String,
    ) -> ControlFlow<()> {
        if self.errors.len() >= self.max_errors {
            self.truncated = true;
            return ControlFlow::Break(());
        }
        let p = loc.resolve(at);
        self.errors.push(ValidationError {
            line: p.line,
            column: p.column,
            path: if self.path.is_empty() {
                "/".to_owned()
            } else {
                self.path.clone()
            },
            message,
        });
        if self.errors.len() >= self.max_errors {
            self.truncated = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    fn display_name(&self, ns: NsId, local: &str, other_ns: Option<NsId>) -> String {
        // Show the namespace only when it is what tells two names apart.
        if other_ns.is_some_and(|o| o != ns) {
            if ns == NO_NS {
                format!("<{local}> (in no namespace)")
            } else if ns == UNKNOWN_NS {
                format!("<{local}> (namespace {})", self.found_ns)
            } else {
                format!("<{local}> (namespace {})", self.model.ns_str(ns))
            }
        } else {
            format!("<{local}>")
        }
    }

    fn describe_expected(&self, state: &DfaState, found: Option<(NsId, &str)>) -> String {
        let mut items: Vec<String> = Vec::new();
        for t in state.elements.iter() {
            let other = found.filter(|(_, l)| *l == &*t.local).map(|(n, _)| n);
            items.push(self.display_name(t.ns, &t.local, other));
        }
        for w in state.wildcards.iter() {
            items.push(match &w.wildcard.ns {
                NsConstraint::Any => "any element".to_owned(),
                NsConstraint::Not(n) => format!(
                    "any element not in namespace {}",
                    if *n == NO_NS {
                        "(none)"
                    } else {
                        self.model.ns_str(*n)
                    }
                ),
                NsConstraint::Set(v) => {
                    let names: Vec<&str> = v
                        .iter()
                        .map(|n| {
                            if *n == NO_NS {
                                "(no namespace)"
                            } else {
                                self.model.ns_str(*n)
                            }
                        })
                        .collect();
                    format!("an element from {}", names.join(" or "))
                }
            });
        }
        match items.len() {
            0 => "nothing more".to_owned(),
            1 => items.remove(0),
            _ => format!("one of {}", items.join(", ")),
        }
    }

    fn push_path(&mut self, local: &str) {
        // Count same-named siblings under the current parent.
        let parent_counts = if self.depth == 0 {
            0
        } else {
            self.frames[self.depth - 1].counts_len
        };
        let mut n = 1u32;
        let mut found = false;
        for entry in &mut self.counts[parent_counts..] {
            if &self.names[entry.0..entry.0 + entry.1] == local {
                entry.2 += 1;
                n = entry.2;
                found = true;
                break;
            }
        }
        if !found {
            let start = self.names.len();
            self.names.push_str(local);
            self.counts.push((start, local.len(), 1));
        }
        self.path.push('/');
        self.path.push_str(local);
        if n > 1 {
            push_index(&mut self.path, n);
        }
    }

    /// The declaration and kind for a new child of the current element.
    fn place_child(
        &mut self,
        loc: &Locator<'_>,
        ns: NsId,
        local: &str,
        at: DeferredPosition,
    ) -> Result<(Kind, Option<ElemId>), ()> {
        let model = self.model;
        if self.depth == 0 {
            return Ok(match model.global_elements.get(ns, local) {
                Some(e) => (Kind::Strict, Some(e)),
                None => {
                    let msg = format!(
                        "no global element declaration matches the root element {}",
                        self.display_name(ns, local, Some(u32::MAX - 1))
                    );
                    self.error(loc, at, msg).continue_value().ok_or(())?;
                    (Kind::Skip, None)
                }
            });
        }
        let parent_index = self.depth - 1;
        let parent = &mut self.frames[parent_index];
        parent.has_children = true;
        match parent.kind {
            Kind::Skip => return Ok((Kind::Skip, None)),
            Kind::Lax => {
                return Ok(match model.global_elements.get(ns, local) {
                    Some(e) => (Kind::Strict, Some(e)),
                    None => (Kind::Lax, None),
                });
            }
            Kind::Strict => {}
        }
        if parent.broken {
            return Ok((Kind::Skip, None));
        }
        if parent.nil {
            parent.broken = true;
            self.error(
                loc,
                at,
                "an element with xsi:nil=\"true\" must be empty".to_owned(),
            )
            .continue_value()
            .ok_or(())?;
            return Ok((Kind::Skip, None));
        }
        let Some(TypeRef::Complex(ct)) = parent.ty else {
            parent.broken = true;
            let msg = format!(
                "child elements are not allowed here (the type has simple content); found <{local}>"
            );
            self.error(loc, at, msg).continue_value().ok_or(())?;
            return Ok((Kind::Skip, None));
        };
        match &model.complex_type(ct).content {
            Content::Empty | Content::Simple(_) => {
                parent.broken = true;
                let what = if matches!(model.complex_type(ct).content, Content::Empty) {
                    "empty"
                } else {
                    "simple"
                };
                let msg = format!(
                    "child elements are not allowed here (the type has {what} content); found <{local}>"
                );
                self.error(loc, at, msg).continue_value().ok_or(())?;
                Ok((Kind::Skip, None))
            }
            Content::Elements {
                model: ContentModel::Dfa(dfa),
                ..
            } => {
                let state = &dfa.states[parent.state as usize];
                if let Some(t) = state
                    .elements
                    .iter()
                    .find(|t| t.ns == ns && &*t.local == local)
                {
                    parent.state = t.next;
                    return Ok((Kind::Strict, Some(t.elem)));
                }
                if let Some(w) = state.wildcards.iter().find(|w| w.wildcard.ns.allows(ns)) {
                    parent.state = w.next;
                    return match w.wildcard.process {
                        Process::Skip => Ok((Kind::Skip, None)),
                        Process::Lax => Ok(match model.global_elements.get(ns, local) {
                            Some(e) => (Kind::Strict, Some(e)),
                            None => (Kind::Lax, None),
                        }),
                        Process::Strict => match model.global_elements.get(ns, local) {
                            Some(e) => Ok((Kind::Strict, Some(e))),
                            None => {
                                let msg = format!(
                                    "no global declaration for <{local}>, which a wildcard with processContents=\"strict\" requires"
                                );
                                self.error(loc, at, msg).continue_value().ok_or(())?;
                                Ok((Kind::Skip, None))
                            }
                        },
                    };
                }
                parent.broken = true;
                let expected = self.describe_expected(state, Some((ns, local)));
                let found = self.display_name(
                    ns,
                    local,
                    state
                        .elements
                        .iter()
                        .find(|t| &*t.local == local)
                        .map(|t| t.ns),
                );
                let msg = if state.elements.is_empty() && state.wildcards.is_empty() {
                    format!("no more child elements are allowed here; found {found}")
                } else {
                    format!("expected {expected}; found {found}")
                };
                self.error(loc, at, msg).continue_value().ok_or(())?;
                Ok((Kind::Skip, None))
            }
            Content::Elements {
                model: ContentModel::All(all),
                ..
            } => {
                if let Some((i, item)) = all
                    .items
                    .iter()
                    .enumerate()
                    .find(|(_, t)| t.ns == ns && &*t.local == local)
                {
                    let bit = 1u64 << i;
                    if parent.all_seen & bit != 0 {
                        parent.broken = true;
                        let msg = format!("<{local}> may appear only once here");
                        self.error(loc, at, msg).continue_value().ok_or(())?;
                        return Ok((Kind::Skip, None));
                    }
                    parent.all_seen |= bit;
                    return Ok((Kind::Strict, Some(item.elem)));
                }
                parent.broken = true;
                let names: Vec<String> =
                    all.items.iter().map(|t| format!("<{}>", t.local)).collect();
                let msg = format!(
                    "<{local}> is not allowed here; expected any of {}",
                    names.join(", ")
                );
                self.error(loc, at, msg).continue_value().ok_or(())?;
                Ok((Kind::Skip, None))
            }
        }
    }

    /// Resolves `xsi:type` against the declared type.
    fn xsi_type(
        &mut self,
        loc: &Locator<'_>,
        tag: &StartTag<'_>,
        declared: Option<TypeRef>,
        decl: Option<ElemId>,
        value: &str,
        at: DeferredPosition,
    ) -> Result<Option<TypeRef>, ()> {
        let model = self.model;
        let value = value.trim_matches([' ', '\t', '\n', '\r']);
        let Some((prefix, local)) = split_qname(value) else {
            self.error(loc, at, "xsi:type is not a valid QName".to_owned())
                .continue_value()
                .ok_or(())?;
            return Ok(None);
        };
        let uri = match prefix {
            Some(p) => match tag.lookup_prefix(p) {
                Some(u) => Some(u),
                None => {
                    self.error(
                        loc,
                        at,
                        format!("the prefix `{p}` of xsi:type is not declared"),
                    )
                    .continue_value()
                    .ok_or(())?;
                    return Ok(None);
                }
            },
            None => tag.lookup_prefix(""),
        };
        let ns = model.ns_id(uri);
        let Some(t) = model.global_types.get(ns, local) else {
            self.error(
                loc,
                at,
                format!(
                    "xsi:type names the type `{}`, which the schema does not define",
                    clip(local, 100)
                ),
            )
            .continue_value()
            .ok_or(())?;
            return Ok(None);
        };
        if let Some(d) = declared {
            match model.derivation_chain(t, d) {
                None => {
                    let msg = format!(
                        "xsi:type `{}` is not derived from the declared type {}",
                        clip(local, 100),
                        model.type_name(d)
                    );
                    self.error(loc, at, msg).continue_value().ok_or(())?;
                    return Ok(None);
                }
                Some((ext, restr)) => {
                    let mut blocked = false;
                    if let Some(e) = decl {
                        let b = model.element(e).block;
                        blocked |= (b.extension && ext) || (b.restriction && restr);
                    }
                    if let TypeRef::Complex(c) = d {
                        let b = model.complex_type(c).block;
                        blocked |= (b.extension && ext) || (b.restriction && restr);
                    }
                    if blocked {
                        let msg = format!(
                            "xsi:type `{}` is blocked by the declaration",
                            clip(local, 100)
                        );
                        self.error(loc, at, msg).continue_value().ok_or(())?;
                        return Ok(None);
                    }
                }
            }
        }
        Ok(Some(t))
    }

    fn check_attributes(
        &mut self,
        loc: &Locator<'_>,
        tag: &StartTag<'_>,
        ty: Option<TypeRef>,
        kind: Kind,
        at: DeferredPosition,
    ) -> ControlFlow<()> {
        let model = self.model;
        let ct = match ty {
            Some(TypeRef::Complex(c)) => Some(model.complex_type(c)),
            _ => None,
        };
        if kind == Kind::Skip {
            return ControlFlow::Continue(());
        }
        if tag.attribute_count() == 0 && ct.is_none_or(|c| !c.attributes.iter().any(|u| u.required))
        {
            return ControlFlow::Continue(());
        }
        if let Some(ct) = ct {
            self.seen_uses.clear();
            self.seen_uses.resize(ct.attributes.len(), false);
        }
        for i in 0..tag.attribute_count() {
            let Some(a) = tag.attribute(i) else { continue };
            if a.namespace == Some(XSI_NS)
                && matches!(
                    a.local,
                    "type" | "nil" | "schemaLocation" | "noNamespaceSchemaLocation"
                )
            {
                continue;
            }
            let ns = match a.namespace {
                None => NO_NS,
                Some(u) => model.ns_id(Some(u)),
            };
            if kind == Kind::Lax {
                if let Some(d) = model.global_attributes.get(ns, a.local) {
                    let decl = &model.attributes[d as usize];
                    self.check_attribute_value(
                        loc,
                        tag,
                        decl.ty,
                        decl.constraint.as_ref(),
                        &a,
                        at,
                    )?;
                }
                continue;
            }
            let Some(ct) = ct else {
                let msg = format!(
                    "attribute `{}` is not allowed (the element has a simple type)",
                    a.qname
                );
                self.error(loc, at, msg)?;
                continue;
            };
            if let Some(u) = ct
                .attributes
                .iter()
                .position(|u| u.ns == ns && &*u.local == a.local)
            {
                self.seen_uses[u] = true;
                let use_ = &ct.attributes[u];
                self.check_attribute_value(loc, tag, use_.ty, use_.constraint.as_ref(), &a, at)?;
                continue;
            }
            match &ct.attribute_wildcard {
                Some(w) if w.ns.allows(ns) => match w.process {
                    Process::Skip => {}
                    Process::Lax | Process::Strict => {
                        match model.global_attributes.get(ns, a.local) {
                            Some(d) => {
                                let decl = &model.attributes[d as usize];
                                self.check_attribute_value(
                                    loc,
                                    tag,
                                    decl.ty,
                                    decl.constraint.as_ref(),
                                    &a,
                                    at,
                                )?;
                            }
                            None if w.process == Process::Strict => {
                                let msg = format!(
                                    "no global declaration for attribute `{}`, which a wildcard with processContents=\"strict\" requires",
                                    a.qname
                                );
                                self.error(loc, at, msg)?;
                            }
                            None => {}
                        }
                    }
                },
                _ => {
                    let msg = format!("attribute `{}` is not allowed here", a.qname);
                    self.error(loc, at, msg)?;
                }
            }
        }
        if let Some(ct) = ct {
            for (i, u) in ct.attributes.iter().enumerate() {
                if u.required && !self.seen_uses.get(i).copied().unwrap_or(false) {
                    let msg = format!("the required attribute `{}` is missing", u.local);
                    self.error(loc, at, msg)?;
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn check_attribute_value(
        &mut self,
        loc: &Locator<'_>,
        tag: &StartTag<'_>,
        ty: SimpleId,
        constraint: Option<&ValueConstraint>,
        attribute: &AttributeView<'_>,
        at: DeferredPosition,
    ) -> ControlFlow<()> {
        let (qname, value) = (attribute.qname, attribute.value);
        let fixed = constraint.filter(|c| c.fixed);
        let result = {
            let mut ctx = Ctx {
                ids: &mut self.ids,
                tag: Some(tag),
                saved: &[],
            };
            self.model.check_simple(
                ty,
                value,
                CheckMode {
                    attribute: true,
                    want_value: fixed.is_some(),
                },
                &mut ctx,
            )
        };
        match result {
            Err(e) => self.error(loc, at, format!("attribute `{qname}`: {e}")),
            Ok(v) => {
                if let (Some(f), Some(v)) = (fixed, v)
                    && !f.value.as_ref().is_some_and(|fv| fv.same(&v))
                {
                    return self.error(
                        loc,
                        at,
                        format!(
                            "attribute `{qname}` must have the fixed value '{}'",
                            f.lexical
                        ),
                    );
                }
                ControlFlow::Continue(())
            }
        }
    }

    fn end_strict(
        &mut self,
        loc: &Locator<'_>,
        frame: &Frame,
        depth: usize,
        at: DeferredPosition,
    ) -> ControlFlow<()> {
        let model = self.model;
        let decl = frame.elem.map(|e| model.element(e));
        if frame.nil {
            // Children and text of a nil element were reported as they appeared.
            return ControlFlow::Continue(());
        }
        match frame.text_mode {
            TextMode::Simple(st) => {
                let constraint = decl.and_then(|d| d.constraint.as_ref());
                let text = std::mem::take(&mut self.text);
                // An element without character data takes its default or fixed value.
                let value_text: &str = match constraint {
                    Some(c) if text.is_empty() => &c.lexical,
                    _ => &text,
                };
                let saved: &[(Box<str>, Box<str>)] = if frame.saved_bindings {
                    self.bindings.get(depth).map_or(&[], Vec::as_slice)
                } else {
                    &[]
                };
                let result = {
                    let mut ctx = Ctx {
                        ids: &mut self.ids,
                        tag: None,
                        saved,
                    };
                    model.check_simple(
                        st,
                        value_text,
                        CheckMode {
                            attribute: false,
                            want_value: false,
                        },
                        &mut ctx,
                    )
                };
                let flow = match result {
                    Err(e) => self.error(loc, frame.start, format!("{e}")),
                    // libxml2 compares an element's fixed value literally (attributes are
                    // compared in the value space); the stricter rule is kept.
                    Ok(_) => match constraint {
                        Some(c) if c.fixed && *value_text != *c.lexical => self.error(
                            loc,
                            frame.start,
                            format!("the element must have the fixed value '{}'", c.lexical),
                        ),
                        _ => ControlFlow::Continue(()),
                    },
                };
                self.text = text;
                self.text.clear();
                flow?;
            }
            TextMode::MixedFixed => {
                let fixed = decl
                    .and_then(|d| d.constraint.as_ref())
                    .map(|c| c.lexical.clone());
                let text = std::mem::take(&mut self.text);
                let flow = match fixed {
                    Some(f) if frame.has_children => self.error(
                        loc,
                        frame.start,
                        format!("an element with the fixed value '{f}' cannot have child elements"),
                    ),
                    Some(f) if !text.is_empty() && *text != *f => self.error(
                        loc,
                        frame.start,
                        format!("the element must have the fixed value '{f}'"),
                    ),
                    _ => ControlFlow::Continue(()),
                };
                self.text = text;
                self.text.clear();
                flow?;
            }
            _ => {}
        }
        if frame.broken {
            return ControlFlow::Continue(());
        }
        if let Some(TypeRef::Complex(ct)) = frame.ty {
            match &model.complex_type(ct).content {
                Content::Elements {
                    model: ContentModel::Dfa(dfa),
                    ..
                } => {
                    let state = &dfa.states[frame.state as usize];
                    if !state.accepting {
                        let expected = self.describe_expected(state, None);
                        return self.error(
                            loc,
                            at,
                            format!("the content is incomplete: expected {expected}"),
                        );
                    }
                }
                Content::Elements {
                    model: ContentModel::All(all),
                    ..
                } if !(frame.all_seen == 0 && all.emptiable) => {
                    let missing: Vec<String> = all
                        .items
                        .iter()
                        .enumerate()
                        .filter(|(i, t)| t.required && frame.all_seen & (1u64 << i) == 0)
                        .map(|(_, t)| format!("<{}>", t.local))
                        .collect();
                    if !missing.is_empty() {
                        return self.error(
                            loc,
                            at,
                            format!("the content is incomplete: missing {}", missing.join(", ")),
                        );
                    }
                }
                _ => {}
            }
        }
        ControlFlow::Continue(())
    }
}

impl Handler for Validator<'_> {
    fn start_element(&mut self, tag: &StartTag<'_>, loc: &Locator<'_>) -> ControlFlow<()> {
        let at = loc;
        self.elements += 1;
        let model = self.model;
        let here = at.deferred();
        let ns = self.element_ns(tag);
        if ns == UNKNOWN_NS {
            self.found_ns.clear();
            self.found_ns
                .push_str(clip(tag.namespace().unwrap_or(""), 200));
        }
        let local = tag.local();
        if self.depth == 0 {
            self.root = Some(RootName {
                namespace: tag.namespace().map(str::to_owned),
                local: local.to_owned(),
            });
        }
        // The path names this element before anything is reported about it.
        let path_len = self.path.len();
        self.push_path(local);
        let placed = self.place_child(at, ns, local, here);
        if self.frames.len() <= self.depth {
            self.frames.push(Frame::blank());
        }
        let (mut kind, elem) = match placed {
            Ok(x) => x,
            Err(()) => return ControlFlow::Break(()),
        };
        let mut ty = elem.map(|e| model.element(e).ty);
        let mut nil = false;
        if kind != Kind::Skip {
            if let Some(e) = elem
                && model.element(e).is_abstract
            {
                self.error(
                    loc,
                    here,
                    format!("the element <{local}> is declared abstract and cannot be used"),
                )?;
            }
            // xsi:type and xsi:nil
            let qualified = tag.has_qualified_attributes();
            for a in tag.attributes().filter(|_| qualified) {
                if a.namespace != Some(XSI_NS) {
                    continue;
                }
                match a.local {
                    "type" => match self.xsi_type(at, tag, ty, elem, a.value, here) {
                        Ok(Some(t)) => {
                            ty = Some(t);
                            kind = Kind::Strict;
                        }
                        Ok(None) => {}
                        Err(()) => return ControlFlow::Break(()),
                    },
                    "nil" if kind == Kind::Strict => {
                        let v = a.value.trim_matches([' ', '\t', '\n', '\r']);
                        let value = match v {
                            "true" | "1" => true,
                            "false" | "0" => false,
                            _ => {
                                self.error(loc, here, "xsi:nil must be a boolean".to_owned())?;
                                false
                            }
                        };
                        // Structures §3.3.4 clause 3.1: a declaration that is not nillable
                        // allows no xsi:nil at all, "false" included.
                        match elem.map(|e| model.element(e)) {
                            Some(d) if d.nillable && value => {
                                nil = true;
                                if d.constraint.as_ref().is_some_and(|c| c.fixed) {
                                    self.error(loc, here, "an element with a fixed value cannot be nil".to_owned())?;
                                }
                            }
                            Some(d) if d.nillable => {}
                            Some(_) => self.error(loc, here, format!("<{local}> is not nillable, so it cannot have xsi:nil (not even \"false\")"))?,
                            None if value => self.error(loc, here, format!("<{local}> is not nillable, so xsi:nil=\"true\" is not allowed"))?,
                            None => {}
                        }
                    }
                    _ => {}
                }
            }
            if let Some(TypeRef::Complex(c)) = ty
                && model.complex_type(c).is_abstract
            {
                let msg = format!(
                    "the type {} is abstract; use xsi:type to name a concrete type",
                    model.complex_type(c).name
                );
                self.error(loc, here, msg)?;
            }
            self.check_attributes(at, tag, ty, kind, here)?;
        }
        let text_mode = match (kind, ty) {
            (Kind::Strict, Some(TypeRef::Simple(s))) => TextMode::Simple(s),
            (Kind::Strict, Some(TypeRef::Complex(c))) => match &model.complex_type(c).content {
                Content::Empty => TextMode::Empty,
                Content::Simple(s) => TextMode::Simple(*s),
                Content::Elements { mixed: false, .. } => TextMode::ElementOnly,
                Content::Elements { mixed: true, .. } => {
                    if elem
                        .and_then(|e| model.element(e).constraint.as_ref())
                        .is_some_and(|c| c.fixed)
                    {
                        TextMode::MixedFixed
                    } else {
                        TextMode::Mixed
                    }
                }
            },
            _ => TextMode::Ignore,
        };
        if matches!(text_mode, TextMode::Simple(_) | TextMode::MixedFixed) {
            self.text.clear();
        }
        let frame = &mut self.frames[self.depth];
        frame.kind = kind;
        frame.elem = elem;
        frame.ty = ty;
        frame.state = 0;
        frame.all_seen = 0;
        frame.broken = false;
        frame.nil = nil;
        frame.text_mode = text_mode;
        frame.has_children = false;
        frame.text_reported = false;
        frame.path_len = path_len;
        frame.counts_len = self.counts.len();
        frame.names_len = self.names.len();
        frame.start = here;
        frame.saved_bindings = false;
        if let TextMode::Simple(s) = text_mode
            && model
                .needs_namespaces
                .get(s.0 as usize)
                .copied()
                .unwrap_or(false)
        {
            frame.saved_bindings = true;
            let depth = self.depth;
            if self.bindings.len() <= depth {
                self.bindings.resize_with(depth + 1, Vec::new);
            }
            self.bindings[depth] = tag
                .namespaces_in_scope()
                .map(|(p, u)| (Box::from(p), Box::from(u)))
                .collect();
        }
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn end_element(&mut self, loc: &Locator<'_>) -> ControlFlow<()> {
        let at = loc;
        if self.depth == 0 {
            return ControlFlow::Continue(());
        }
        let index = self.depth - 1;
        let frame = self.frames[index];
        let flow = if frame.kind == Kind::Strict {
            self.end_strict(at, &frame, index, at.deferred())
        } else {
            ControlFlow::Continue(())
        };
        // Drop this element's children's counts and its path segment.
        self.counts.truncate(frame.counts_len);
        self.names.truncate(frame.names_len);
        self.path.truncate(frame.path_len);
        self.depth -= 1;
        flow
    }

    fn settle(&mut self, loc: &Locator<'_>) {
        for frame in &mut self.frames[..self.depth] {
            if let DeferredPosition::Offset(_) = frame.start {
                frame.start = DeferredPosition::Known(loc.resolve(frame.start));
            }
        }
    }

    fn whitespace(&mut self, text: &str, loc: &Locator<'_>) -> ControlFlow<()> {
        let at = loc;
        if self.depth == 0 {
            return ControlFlow::Continue(());
        }
        let frame = &self.frames[self.depth - 1];
        if frame.nil && frame.kind == Kind::Strict {
            // Even whitespace makes a nil element non-empty.
            return self.text(text, at);
        }
        match frame.text_mode {
            TextMode::ElementOnly | TextMode::Mixed | TextMode::Ignore => ControlFlow::Continue(()),
            _ => self.text(text, at),
        }
    }

    fn text(&mut self, text: &str, loc: &Locator<'_>) -> ControlFlow<()> {
        let at = loc;
        if self.depth == 0 {
            return ControlFlow::Continue(());
        }
        let frame = &mut self.frames[self.depth - 1];
        if frame.nil && frame.kind == Kind::Strict {
            if !frame.text_reported {
                frame.text_reported = true;
                return self.error(
                    loc,
                    at.deferred(),
                    "an element with xsi:nil=\"true\" must be empty".to_owned(),
                );
            }
            return ControlFlow::Continue(());
        }
        match frame.text_mode {
            TextMode::Simple(_) | TextMode::MixedFixed => {
                self.text.push_str(text);
                ControlFlow::Continue(())
            }
            TextMode::ElementOnly => {
                if !frame.text_reported
                    && !text
                        .bytes()
                        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
                {
                    frame.text_reported = true;
                    return self.error(
                        loc,
                        at.deferred(),
                        "text is not allowed here (the type has element-only content)".to_owned(),
                    );
                }
                ControlFlow::Continue(())
            }
            TextMode::Empty => {
                if !frame.text_reported && !text.is_empty() {
                    frame.text_reported = true;
                    return self.error(loc, at.deferred(), "the element must be empty (its type has empty content), but it contains text".to_owned());
                }
                ControlFlow::Continue(())
            }
            TextMode::Mixed | TextMode::Ignore => ControlFlow::Continue(()),
        }
    }
}

/// Appends `[n]` without the formatting machinery (this runs for every repeated sibling).
fn push_index(path: &mut String, n: u32) {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    let mut v = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    path.push('[');
    for &d in &digits[i..] {
        path.push(char::from(d));
    }
    path.push(']');
}

/// At most `max` bytes of a document-supplied string for a message, cut on a character
/// boundary.
fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

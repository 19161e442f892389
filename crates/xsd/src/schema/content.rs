//! Content models: particle trees compiled to deterministic automata.
//!
//! Owns: [`Particle`] / [`Term`] (what the compiler builds from `sequence`, `choice`,
//! `all`, group references, element particles and wildcards, with their occurrence
//! ranges) and [`build`], which unrolls bounded repetition into positions (Glushkov),
//! computes first/last/follow sets and makes a DFA by subset construction. Positions that
//! come from the same schema particle (copies made by unrolling `maxOccurs`) may share a
//! state; positions of different particles competing for the same element name, or a name
//! and a wildcard that both admit it, violate Unique Particle Attribution and are a load
//! error, as are two declarations of one name with different types in one content model.
//! `xs:all` becomes a set model checked with a bitset instead.
//!
//! It must not: look at documents, or build automata of unbounded size (positions and
//! states are capped and exceeding them is a load error).

use std::collections::HashMap;

use super::model::{
    AllItem, AllModel, ContentModel, Dfa, DfaState, ElemId, ElemTransition, Model, NsConstraint,
    WildTransition, Wildcard,
};

/// A particle: a term with an occurrence range (`max` `None` = unbounded).
#[derive(Debug, Clone)]
pub struct Particle {
    pub min: u32,
    pub max: Option<u32>,
    /// Identifies the schema particle (copies made by unrolling keep it).
    pub id: u32,
    pub term: Term,
}

#[derive(Debug, Clone)]
pub enum Term {
    Element(ElemId),
    Wildcard(Wildcard),
    Sequence(Vec<Particle>),
    Choice(Vec<Particle>),
    All(Vec<Particle>),
}

const MAX_POSITIONS: usize = 20_000;
const MAX_STATES: usize = 20_000;

/// A regular expression over positions.
enum Re {
    Pos(u32),
    Seq(Vec<Re>),
    Alt(Vec<Re>),
    Star(Box<Re>),
    /// `ε | b1 | b1 b2 | b1 b2 b3 ...`: the optional copies of a bounded repetition, kept
    /// flat so that `maxOccurs="15000"` does not nest fifteen thousand levels deep.
    OptChain(Vec<Re>),
}

#[derive(Clone)]
enum Label {
    Element(ElemId),
    Wildcard(Wildcard),
}

struct Position {
    particle: u32,
    label: Label,
}

struct Expander {
    positions: Vec<Position>,
}

impl Expander {
    fn expand(&mut self, p: &Particle) -> Result<Re, String> {
        let mut parts = Vec::new();
        for _ in 0..p.min {
            parts.push(self.term(p)?);
        }
        match p.max {
            None => parts.push(Re::Star(Box::new(self.term(p)?))),
            Some(max) => {
                let optional = max.saturating_sub(p.min);
                let mut chain = Vec::new();
                for _ in 0..optional {
                    chain.push(self.term(p)?);
                }
                if !chain.is_empty() {
                    parts.push(Re::OptChain(chain));
                }
            }
        }
        Ok(Re::Seq(parts))
    }

    fn term(&mut self, p: &Particle) -> Result<Re, String> {
        Ok(match &p.term {
            Term::Element(e) => self.position(p.id, Label::Element(*e))?,
            Term::Wildcard(w) => self.position(p.id, Label::Wildcard(w.clone()))?,
            Term::Sequence(children) => Re::Seq(
                children
                    .iter()
                    .map(|c| self.expand(c))
                    .collect::<Result<_, _>>()?,
            ),
            Term::Choice(children) => Re::Alt(
                children
                    .iter()
                    .map(|c| self.expand(c))
                    .collect::<Result<_, _>>()?,
            ),
            Term::All(_) => return Err("xs:all may only appear as the whole content model".into()),
        })
    }

    fn position(&mut self, particle: u32, label: Label) -> Result<Re, String> {
        if self.positions.len() >= MAX_POSITIONS {
            return Err(format!(
                "the content model is too large to compile (more than {MAX_POSITIONS} positions after expanding minOccurs/maxOccurs)"
            ));
        }
        let i = self.positions.len() as u32;
        self.positions.push(Position { particle, label });
        Ok(Re::Pos(i))
    }
}

/// first, last and nullability of a sub-expression; follow sets are filled in as a side
/// effect, within a budget of entries.
struct Glushkov {
    follow: Vec<Vec<u32>>,
    budget: usize,
}

/// Most follow-set entries a content model may need (bounds memory for pathological
/// repetitions of optional content).
const MAX_FOLLOW_ENTRIES: usize = 4_000_000;

struct Info {
    nullable: bool,
    first: Vec<u32>,
    last: Vec<u32>,
}

impl Glushkov {
    fn add_follow(&mut self, position: u32, next: &[u32]) {
        if self.budget == 0 {
            return;
        }
        self.budget = self.budget.saturating_sub(next.len());
        extend(&mut self.follow[position as usize], next);
    }

    fn walk(&mut self, re: &Re) -> Info {
        match re {
            Re::Pos(p) => Info {
                nullable: false,
                first: vec![*p],
                last: vec![*p],
            },
            Re::Seq(items) => {
                let mut acc = Info {
                    nullable: true,
                    first: Vec::new(),
                    last: Vec::new(),
                };
                for item in items {
                    let i = self.walk(item);
                    for &l in &acc.last {
                        self.add_follow(l, &i.first);
                    }
                    if acc.nullable {
                        extend(&mut acc.first, &i.first);
                    }
                    if i.nullable {
                        extend(&mut acc.last, &i.last);
                    } else {
                        acc.last = i.last;
                    }
                    acc.nullable &= i.nullable;
                }
                acc
            }
            Re::Alt(items) => {
                let mut acc = Info {
                    nullable: items.is_empty(),
                    first: Vec::new(),
                    last: Vec::new(),
                };
                for item in items {
                    let i = self.walk(item);
                    acc.nullable |= i.nullable;
                    extend(&mut acc.first, &i.first);
                    extend(&mut acc.last, &i.last);
                }
                acc
            }
            Re::Star(inner) => {
                let i = self.walk(inner);
                for &l in &i.last {
                    self.add_follow(l, &i.first);
                }
                Info {
                    nullable: true,
                    first: i.first,
                    last: i.last,
                }
            }
            Re::OptChain(items) => {
                let infos: Vec<Info> = items.iter().map(|i| self.walk(i)).collect();
                // Backwards: F(i) = first(b_i), plus F(i+1) when b_i can be empty; whatever
                // ends b_i can be followed by F(i+1). Copies are disjoint, so no dedup.
                let mut next_first: Vec<u32> = Vec::new();
                let mut last = Vec::new();
                for info in infos.iter().rev() {
                    for &l in &info.last {
                        self.budget = self.budget.saturating_sub(next_first.len());
                        self.follow[l as usize].extend_from_slice(&next_first);
                    }
                    last.extend_from_slice(&info.last);
                    let mut f = info.first.clone();
                    if info.nullable {
                        self.budget = self.budget.saturating_sub(next_first.len());
                        f.extend_from_slice(&next_first);
                    }
                    next_first = f;
                    if self.budget == 0 {
                        break;
                    }
                }
                Info {
                    nullable: true,
                    first: next_first,
                    last,
                }
            }
        }
    }
}

fn extend(into: &mut Vec<u32>, from: &[u32]) {
    for &x in from {
        if !into.contains(&x) {
            into.push(x);
        }
    }
}

/// Whether two namespace constraints admit a common namespace.
fn overlaps(a: &NsConstraint, b: &NsConstraint) -> bool {
    match (a, b) {
        (NsConstraint::Any, _) | (_, NsConstraint::Any) => true,
        (NsConstraint::Not(_), NsConstraint::Not(_)) => true,
        (NsConstraint::Set(x), NsConstraint::Set(y)) => x.iter().any(|n| y.contains(n)),
        (NsConstraint::Set(x), n @ NsConstraint::Not(_))
        | (n @ NsConstraint::Not(_), NsConstraint::Set(x)) => x.iter().any(|v| n.allows(*v)),
    }
}

/// Compiles a complex type's particle (`None` = empty, for mixed types) into a content
/// model. `type_name` is used in error messages.
pub fn build(
    model: &Model,
    particle: Option<&Particle>,
    type_name: &str,
) -> Result<ContentModel, String> {
    let Some(particle) = particle else {
        return Ok(ContentModel::Dfa(Dfa {
            states: vec![DfaState {
                accepting: true,
                elements: Box::new([]),
                wildcards: Box::new([]),
            }],
        }));
    };
    if let Term::All(children) = &particle.term {
        return build_all(model, particle, children, type_name);
    }
    let mut expander = Expander {
        positions: Vec::new(),
    };
    let re = expander.expand(particle)?;
    let positions = expander.positions;
    check_consistent(model, &positions, type_name)?;
    let mut g = Glushkov {
        follow: vec![Vec::new(); positions.len()],
        budget: MAX_FOLLOW_ENTRIES,
    };
    let root = g.walk(&re);
    if g.budget == 0 {
        return Err(format!(
            "the content model of {type_name} is too large to compile (repeated optional content)"
        ));
    }
    let mut is_last = vec![false; positions.len()];
    for &l in &root.last {
        is_last[l as usize] = true;
    }

    // Subset construction. A state is the set of positions just matched; the start state
    // is the empty set.
    let mut states: Vec<DfaState> = Vec::new();
    let mut sets: Vec<Vec<u32>> = vec![Vec::new()];
    let mut index: HashMap<Vec<u32>, u32> = HashMap::new();
    index.insert(Vec::new(), 0);
    let mut next = 0usize;
    while next < sets.len() {
        let set = sets[next].clone();
        let accepting = if next == 0 {
            root.nullable
        } else {
            set.iter().any(|&p| is_last[p as usize])
        };
        let mut candidates: Vec<u32> = Vec::new();
        if next == 0 {
            candidates.extend_from_slice(&root.first);
        } else {
            for &p in &set {
                extend(&mut candidates, &g.follow[p as usize]);
            }
        }
        // Group the candidates by label.
        let mut element_groups: Vec<(ElemId, u32, Vec<u32>)> = Vec::new();
        let mut wildcard_groups: Vec<(u32, Wildcard, Vec<u32>)> = Vec::new();
        for &c in &candidates {
            let pos = &positions[c as usize];
            match &pos.label {
                Label::Element(e) => {
                    let decl = model.element(*e);
                    if let Some(group) = element_groups.iter_mut().find(|(g, _, _)| {
                        let d = model.element(*g);
                        d.ns == decl.ns && d.local == decl.local
                    }) {
                        if group.1 != pos.particle {
                            return Err(format!(
                                "the content model of {type_name} is not deterministic: two particles can both match <{}> (Unique Particle Attribution)",
                                decl.local
                            ));
                        }
                        group.2.push(c);
                    } else {
                        element_groups.push((*e, pos.particle, vec![c]));
                    }
                }
                Label::Wildcard(w) => {
                    if let Some(group) = wildcard_groups
                        .iter_mut()
                        .find(|(p, _, _)| *p == pos.particle)
                    {
                        group.2.push(c);
                    } else {
                        wildcard_groups.push((pos.particle, w.clone(), vec![c]));
                    }
                }
            }
        }
        for (i, (_, a, _)) in wildcard_groups.iter().enumerate() {
            for (_, b, _) in &wildcard_groups[i + 1..] {
                if overlaps(&a.ns, &b.ns) {
                    return Err(format!(
                        "the content model of {type_name} is not deterministic: two wildcards can match the same element (Unique Particle Attribution)"
                    ));
                }
            }
            for (e, _, _) in &element_groups {
                let decl = model.element(*e);
                if a.ns.allows(decl.ns) {
                    return Err(format!(
                        "the content model of {type_name} is not deterministic: <{}> can match both an element declaration and a wildcard (Unique Particle Attribution)",
                        decl.local
                    ));
                }
            }
        }
        let mut target = |members: Vec<u32>, sets: &mut Vec<Vec<u32>>| -> Result<u32, String> {
            let mut key = members;
            key.sort_unstable();
            key.dedup();
            if let Some(&i) = index.get(&key) {
                return Ok(i);
            }
            if sets.len() >= MAX_STATES {
                return Err(format!(
                    "the content model of {type_name} is too large to compile (more than {MAX_STATES} states)"
                ));
            }
            let i = sets.len() as u32;
            index.insert(key.clone(), i);
            sets.push(key);
            Ok(i)
        };
        let mut elements = Vec::with_capacity(element_groups.len());
        for (e, _, members) in element_groups {
            let decl = model.element(e);
            let to = target(members, &mut sets)?;
            elements.push(ElemTransition {
                ns: decl.ns,
                local: decl.local.clone(),
                elem: e,
                next: to,
            });
        }
        let mut wildcards = Vec::with_capacity(wildcard_groups.len());
        for (_, w, members) in wildcard_groups {
            let to = target(members, &mut sets)?;
            wildcards.push(WildTransition {
                wildcard: w,
                next: to,
            });
        }
        states.push(DfaState {
            accepting,
            elements: elements.into_boxed_slice(),
            wildcards: wildcards.into_boxed_slice(),
        });
        next += 1;
    }
    Ok(ContentModel::Dfa(Dfa { states }))
}

/// Element Declarations Consistent: one name, one type, within a content model.
fn check_consistent(model: &Model, positions: &[Position], type_name: &str) -> Result<(), String> {
    let mut seen: HashMap<(u32, &str), ElemId> = HashMap::new();
    for p in positions {
        if let Label::Element(e) = p.label {
            let d = model.element(e);
            match seen.get(&(d.ns, &*d.local)) {
                Some(&other) if model.element(other).ty != d.ty => {
                    return Err(format!(
                        "the content model of {type_name} declares <{}> twice with different types",
                        d.local
                    ));
                }
                Some(_) => {}
                None => {
                    seen.insert((d.ns, &d.local), e);
                }
            }
        }
    }
    Ok(())
}

fn build_all(
    model: &Model,
    particle: &Particle,
    children: &[Particle],
    type_name: &str,
) -> Result<ContentModel, String> {
    if children.len() > 64 {
        return Err(format!(
            "xs:all in {type_name} has {} elements; this engine supports at most 64",
            children.len()
        ));
    }
    let mut items: Vec<AllItem> = Vec::new();
    for c in children {
        let Term::Element(e) = c.term else {
            return Err(format!("xs:all in {type_name} may only contain elements"));
        };
        if c.max.is_none_or(|m| m > 1) {
            return Err(format!(
                "elements in xs:all ({type_name}) can occur at most once"
            ));
        }
        let d = model.element(e);
        if items.iter().any(|i| i.ns == d.ns && i.local == d.local) {
            return Err(format!(
                "the content model of {type_name} is not deterministic: <{}> appears twice in xs:all",
                d.local
            ));
        }
        items.push(AllItem {
            ns: d.ns,
            local: d.local.clone(),
            elem: e,
            required: c.min > 0,
        });
    }
    Ok(ContentModel::All(AllModel {
        items,
        emptiable: particle.min == 0,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::schema::model::{Block, ComplexId, ElementDecl, TypeRef};
    use proptest::prelude::*;

    /// A model with one element declaration per name in `names` (same type for all).
    fn model(names: &[&str]) -> Model {
        let mut m = Model::default();
        for n in names {
            m.elements.push(ElementDecl {
                ns: 0,
                local: (*n).into(),
                ty: TypeRef::Complex(ComplexId(0)),
                nillable: false,
                constraint: None,
                is_abstract: false,
                block: Block::default(),
            });
        }
        m
    }

    /// Where a particle can end when it starts at `start` of `seq` (a plain backtracking
    /// reading of the particle tree, independent of the automaton construction).
    fn ends(p: &Particle, seq: &[u32], start: usize, out: &mut Vec<usize>) {
        // Positions reachable after k repetitions.
        let mut frontier = vec![start];
        let mut k = 0u32;
        let mut seen_any = Vec::new();
        loop {
            if k >= p.min {
                for &f in &frontier {
                    if !out.contains(&f) {
                        out.push(f);
                    }
                }
            }
            if p.max.is_some_and(|m| k >= m) || frontier.is_empty() || k > seq.len() as u32 + p.min
            {
                break;
            }
            let mut next = Vec::new();
            for &f in &frontier {
                let mut e = Vec::new();
                term_ends(&p.term, seq, f, &mut e);
                for x in e {
                    if !next.contains(&x) {
                        next.push(x);
                    }
                }
            }
            // Repetitions that consume nothing cannot change the set after the minimum.
            if k >= p.min && next.iter().all(|x| seen_any.contains(x)) {
                break;
            }
            for &x in &next {
                if !seen_any.contains(&x) {
                    seen_any.push(x);
                }
            }
            frontier = next;
            k += 1;
        }
    }

    fn term_ends(t: &Term, seq: &[u32], start: usize, out: &mut Vec<usize>) {
        match t {
            Term::Element(e) => {
                if seq.get(start) == Some(&e.0) {
                    out.push(start + 1);
                }
            }
            Term::Wildcard(_) => {}
            Term::Sequence(children) => {
                let mut frontier = vec![start];
                for c in children {
                    let mut next = Vec::new();
                    for &f in &frontier {
                        ends(c, seq, f, &mut next);
                    }
                    next.sort_unstable();
                    next.dedup();
                    frontier = next;
                }
                out.extend(frontier);
            }
            Term::Choice(children) => {
                for c in children {
                    ends(c, seq, start, out);
                }
            }
            Term::All(_) => {}
        }
    }

    fn accepts_reference(p: &Particle, seq: &[u32]) -> bool {
        let mut out = Vec::new();
        ends(p, seq, 0, &mut out);
        out.contains(&seq.len())
    }

    fn accepts_dfa(m: &Model, dfa: &Dfa, seq: &[u32]) -> bool {
        let mut state = 0usize;
        for &name in seq {
            let local = &m.elements[name as usize].local;
            match dfa.states[state]
                .elements
                .iter()
                .find(|t| t.local == *local)
            {
                Some(t) => state = t.next as usize,
                None => return false,
            }
        }
        dfa.states[state].accepting
    }

    /// Random particle trees over element declarations 0..3 (names a, b, c).
    fn particle() -> impl Strategy<Value = Particle> {
        let occurs = prop_oneof![
            Just((1u32, Some(1u32))),
            Just((0, Some(1))),
            Just((0, None)),
            Just((1, None)),
            (0u32..3, 1u32..4).prop_map(|(a, b)| (a.min(b), Some(b))),
        ];
        let leaf = (0u32..3, occurs.clone()).prop_map(|(e, (min, max))| Particle {
            min,
            max,
            id: 0,
            term: Term::Element(ElemId(e)),
        });
        leaf.prop_recursive(3, 12, 3, move |inner| {
            (
                prop::collection::vec(inner, 1..4),
                any::<bool>(),
                occurs.clone(),
            )
                .prop_map(|(children, seq, (min, max))| Particle {
                    min,
                    max,
                    id: 0,
                    term: if seq {
                        Term::Sequence(children)
                    } else {
                        Term::Choice(children)
                    },
                })
        })
    }

    /// Gives every particle its own id, as the compiler does.
    fn number(p: &mut Particle, next: &mut u32) {
        *next += 1;
        p.id = *next;
        if let Term::Sequence(c) | Term::Choice(c) = &mut p.term {
            for x in c {
                number(x, next);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn automaton_accepts_what_the_particle_tree_describes(
            mut p in particle(),
            seqs in prop::collection::vec(prop::collection::vec(0u32..3, 0..7), 1..12),
        ) {
            let m = model(&["a", "b", "c"]);
            number(&mut p, &mut 0);
            let Ok(ContentModel::Dfa(dfa)) = build(&m, Some(&p), "T") else {
                // Not deterministic (UPA): refused at load time, nothing to compare.
                return Ok(());
            };
            for seq in &seqs {
                prop_assert_eq!(
                    accepts_dfa(&m, &dfa, seq),
                    accepts_reference(&p, seq),
                    "{:?} on {:?}", p, seq
                );
            }
        }
    }

    #[test]
    fn unique_particle_attribution_is_enforced() {
        let m = model(&["a", "a2"]);
        // (a | (a, a2)) with two declarations named differently but one name collision:
        let mut m2 = model(&["a", "a"]);
        m2.elements[1].local = "a".into();
        let p = Particle {
            min: 1,
            max: Some(1),
            id: 1,
            term: Term::Choice(vec![
                Particle {
                    min: 1,
                    max: Some(1),
                    id: 2,
                    term: Term::Element(ElemId(0)),
                },
                Particle {
                    min: 1,
                    max: Some(1),
                    id: 3,
                    term: Term::Element(ElemId(1)),
                },
            ]),
        };
        assert!(
            build(&m2, Some(&p), "T")
                .unwrap_err()
                .contains("Unique Particle Attribution")
        );
        // The same particle unrolled by maxOccurs may compete with itself.
        let q = Particle {
            min: 0,
            max: Some(3),
            id: 1,
            term: Term::Sequence(vec![Particle {
                min: 0,
                max: Some(1),
                id: 2,
                term: Term::Element(ElemId(0)),
            }]),
        };
        assert!(build(&m, Some(&q), "T").is_ok());
    }
}

//! Walks a converted document, independently of the format readers, and says which scope
//! category each element and attribute belongs to, per format. The tables here restate
//! docs/mappings.md from the document side: if a writer ever puts data where its category is
//! not in the scope, the walk finds it.
#![allow(dead_code)]

use std::collections::BTreeMap;

use siirto_core::formats::Format;
use siirto_core::scope::{Category, Scope};
use siirto_xsd::Limits;
use siirto_xsd::dom::{self, Element};

/// (generic path prefix, category); the longest matching prefix wins. `None` marks document
/// structure and organisation data, which belong to no category.
fn rules(format: Format) -> Vec<(&'static str, Option<Category>)> {
    use Category::*;
    match format {
        Format::SiirtoV1 => vec![
            ("/studentRecord", None),
            ("/studentRecord/student", Some(Identity)),
            ("/studentRecord/providers", None),
            ("/studentRecord/studyRights", Some(Enrolment)),
            ("/studentRecord/achievements", Some(Achievements)),
            (
                "/studentRecord/achievements/achievement/@studyRight",
                Some(Enrolment),
            ),
            ("/studentRecord/mobilityPeriods", Some(Mobility)),
            (
                "/studentRecord/mobilityPeriods/mobilityPeriod/@studyRight",
                Some(Enrolment),
            ),
            ("/studentRecord/termRegistrations", Some(Registrations)),
            (
                "/studentRecord/termRegistrations/termRegistration/@studyRight",
                Some(Enrolment),
            ),
            ("/studentRecord/supportDecisions", Some(Support)),
        ],
        Format::Virta => vec![
            ("/Virta", None),
            ("/Virta/Opiskelija", Some(Identity)),
            ("/Virta/Opiskelija/Opiskeluoikeudet", Some(Enrolment)),
            (
                "/Virta/Opiskelija/LukukausiIlmoittautumiset",
                Some(Registrations),
            ),
            (
                "/Virta/Opiskelija/LukukausiIlmoittautumiset/LukukausiIlmoittautuminen/@opiskeluoikeusAvain",
                Some(Enrolment),
            ),
            ("/Virta/Opiskelija/Opintosuoritukset", Some(Achievements)),
            (
                "/Virta/Opiskelija/Opintosuoritukset/Opintosuoritus/@opiskeluoikeusAvain",
                Some(Enrolment),
            ),
            ("/Virta/Opiskelija/Liikkuvuusjaksot", Some(Mobility)),
            (
                "/Virta/Opiskelija/Liikkuvuusjaksot/Liikkuvuusjakso/@opiskeluoikeusAvain",
                Some(Enrolment),
            ),
        ],
        Format::Elmo => vec![
            ("/elmo", None),
            ("/elmo/learner", Some(Identity)),
            ("/elmo/report/issuer", None),
            (
                "/elmo/report/learningOpportunitySpecification",
                Some(Achievements),
            ),
            ("/elmo/report/gradingScheme", Some(Achievements)),
        ],
        Format::Koski => panic!("koski is a source format: no document is written in it"),
    }
}

fn category_of(rules: &[(&'static str, Option<Category>)], path: &str) -> Option<Category> {
    rules
        .iter()
        .filter(|(prefix, _)| {
            path == *prefix
                || path
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
        .max_by_key(|(prefix, _)| prefix.len())
        .and_then(|(_, c)| *c)
}

/// Every element and attribute path of the document (without indices) with its category and
/// how many times it occurs.
pub fn walk(format: Format, document: &[u8]) -> BTreeMap<String, (Option<Category>, usize)> {
    let root = dom::parse(document, &Limits::default()).expect("output parses");
    let rules = rules(format);
    let mut out = BTreeMap::new();
    let mut stack: Vec<(&Element, String)> = vec![(&root, format!("/{}", root.local))];
    while let Some((e, path)) = stack.pop() {
        let entry = out
            .entry(path.clone())
            .or_insert((category_of(&rules, &path), 0));
        entry.1 += 1;
        for a in &e.attributes {
            let apath = format!("{path}/@{}", a.local);
            let entry = out
                .entry(apath.clone())
                .or_insert((category_of(&rules, &apath), 0));
            entry.1 += 1;
        }
        for child in e.elements() {
            stack.push((child, format!("{path}/{}", child.local)));
        }
    }
    out
}

/// Panics when anything in the document belongs to a category `scope` does not name.
pub fn assert_within_scope(format: Format, document: &[u8], scope: Scope, label: &str) {
    for (path, (category, _)) in walk(format, document) {
        if let Some(c) = category {
            assert!(
                scope.contains(c),
                "{label}: {path} is `{c}` data but the scope is `{scope}`"
            );
        }
    }
}

/// How many student elements the document has (it must be exactly one).
pub fn student_count(format: Format, document: &[u8]) -> usize {
    let path = match format {
        Format::SiirtoV1 => "/studentRecord/student",
        Format::Virta => "/Virta/Opiskelija",
        Format::Elmo => "/elmo/learner",
        Format::Koski => panic!("koski is a source format: no document is written in it"),
    };
    walk(format, document).get(path).map_or(0, |(_, n)| *n)
}

/// The personal identity codes and learner numbers the document states, wherever they are.
pub fn stated_identifiers(format: Format, document: &[u8]) -> Vec<String> {
    let root = dom::parse(document, &Limits::default()).expect("output parses");
    let mut out = Vec::new();
    let mut stack = vec![&root];
    while let Some(e) = stack.pop() {
        let is_id = match format {
            Format::SiirtoV1 => e.local == "henkilotunnus" || e.local == "oppijanumero",
            Format::Virta => e.local == "Henkilotunnus" || e.local == "KansallinenOppijanumero",
            Format::Elmo => {
                e.local == "identifier"
                    && matches!(
                        e.attribute("type"),
                        Some("nationalIdentifier" | "oppijanumero")
                    )
            }
            Format::Koski => panic!("koski is a source format: no document is written in it"),
        };
        if is_id {
            out.push(e.text().trim().to_owned());
        }
        stack.extend(e.elements());
    }
    out
}

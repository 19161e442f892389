//! The answers of a check (`siirto_core::check`) decided from a document itself, independently
//! of the function under test: KOSKI's JSON read with serde_json, VIRTA's XML scanned as text.
//! Shared by `tests/checks_corpus.rs` (the pure functions) and `tests/api/checks.rs` (through
//! the gateway).
#![allow(dead_code)]

use serde_json::Value;
use siirto_core::check::Question;

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// KOSKI: a suoritus of one of `types` with `vahvistus`, in a study right of one of `rights`.
fn koski_completed(doc: &Value, rights: &[&str], types: &[&str]) -> bool {
    doc["opiskeluoikeudet"]
        .as_array()
        .expect("opiskeluoikeudet")
        .iter()
        .filter(|o| rights.contains(&o["tyyppi"]["koodiarvo"].as_str().unwrap_or("")))
        .flat_map(|o| o["suoritukset"].as_array().expect("suoritukset"))
        .any(|s| {
            types.contains(&s["tyyppi"]["koodiarvo"].as_str().unwrap_or(""))
                && s.get("vahvistus").is_some_and(|v| !v.is_null())
        })
}

/// KOSKI: a study right begun by `today`, not ended before it, whose latest state period begun
/// by `today` is `lasna` or `loma`.
fn koski_active(doc: &Value, today: &str) -> bool {
    doc["opiskeluoikeudet"]
        .as_array()
        .expect("opiskeluoikeudet")
        .iter()
        .any(|o| {
            let periods = o["tila"]["opiskeluoikeusjaksot"]
                .as_array()
                .expect("jaksot");
            let start = text(o, "alkamispäivä")
                .or_else(|| periods.first().and_then(|p| text(p, "alku")))
                .expect("start");
            if start > today || text(o, "päättymispäivä").is_some_and(|end| end < today) {
                return false;
            }
            periods
                .iter()
                .filter(|p| text(p, "alku").expect("alku") <= today)
                .max_by_key(|p| text(p, "alku"))
                .is_some_and(|p| matches!(p["tila"]["koodiarvo"].as_str(), Some("lasna" | "loma")))
        })
}

/// The answer a KOSKI document (or the siirto-v1 document converted from it) gives on `today`
/// (`YYYY-MM-DD`).
pub fn koski_expected(doc: &Value, q: Question, today: &str) -> bool {
    match q {
        Question::BasicEducationCompleted => koski_completed(
            doc,
            &["perusopetus", "aikuistenperusopetus"],
            &[
                "perusopetuksenoppimaara",
                "aikuistenperusopetuksenoppimaara",
            ],
        ),
        Question::UpperSecondaryCompleted => koski_completed(
            doc,
            &["lukiokoulutus", "ammatillinenkoulutus"],
            &["lukionoppimaara", "ammatillinentutkinto"],
        ),
        Question::ActiveStudyRight => koski_active(doc, today),
        Question::HigherEducationDegreeCompleted => panic!("not supported by koski"),
    }
}

/// The text of every `<name>…</name>` in `block`, in order.
pub fn elements<'a>(block: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut out = Vec::new();
    let mut rest = block;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(&after[..j]);
        rest = &after[j + close.len()..];
    }
    out
}

/// The blocks `<name …>…</name>` of `doc`.
fn blocks<'a>(doc: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name} ");
    let close = format!("</{name}>");
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i..];
        let Some(j) = after.find(&close) else { break };
        out.push(&after[..j]);
        rest = &after[j + close.len()..];
    }
    out
}

/// VIRTA, read as text: an `Opintosuoritus` with `Laji` 1.
pub fn virta_degree(doc: &str) -> bool {
    blocks(doc, "Opintosuoritus")
        .iter()
        .any(|b| elements(b, "Laji").contains(&"1"))
}

/// VIRTA, read as text: an `Opiskeluoikeus` begun by `today` and not ended before it, whose
/// latest `Tila` begun by `today` has `Koodi` 1 and has not ended.
pub fn virta_active(doc: &str, today: &str) -> bool {
    blocks(doc, "Opiskeluoikeus").iter().any(|b| {
        let head = &b[..b.find("<Tila>").unwrap_or(b.len())];
        let start = elements(head, "AlkuPvm")[0];
        let end = elements(head, "LoppuPvm").first().copied();
        if start > today || end.is_some_and(|e| e < today) {
            return false;
        }
        elements(b, "Tila")
            .into_iter()
            .map(|t| {
                (
                    elements(t, "AlkuPvm")[0],
                    elements(t, "LoppuPvm").first().copied(),
                    elements(t, "Koodi")[0],
                )
            })
            .filter(|(s, _, _)| *s <= today)
            .max_by_key(|(s, _, _)| *s)
            .is_some_and(|(_, e, k)| k == "1" && e.is_none_or(|e| e >= today))
    })
}

/// `sample` (VIRTA's `Virta.xml`, student `12345`, study right `98765`) with the corpus' degree
/// `virta/samples/tutkintosuoritus_772101.xml` (`Laji` 1) added to its `Opintosuoritukset`,
/// bound to that student and study right (its parts, not in the sample, left out).
pub fn virta_with_degree(sample: &str, corpus: &std::path::Path) -> String {
    let degree = std::fs::read_to_string(corpus.join("virta/samples/tutkintosuoritus_772101.xml"))
        .expect("degree sample");
    let degree = degree.trim_start_matches('\u{feff}');
    let degree = match degree.strip_prefix("<?xml") {
        Some(rest) => rest.split_once("?>").expect("declaration").1,
        None => degree,
    };
    let cut = degree.find("<Sisaltyvyys").expect("parts");
    let degree = format!(
        "{}</Opintosuoritus>",
        &degree[..cut]
            .replace("opiskelijaAvain=\"hlo-11889\"", "opiskelijaAvain=\"12345\"")
            .replace(
                "opiskeluoikeusAvain=\"opinoik-114000\"",
                "opiskeluoikeusAvain=\"98765\""
            )
    );
    sample.replacen(
        "</Opintosuoritukset>",
        &format!("{degree}\n</Opintosuoritukset>"),
        1,
    )
}

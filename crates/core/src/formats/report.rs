//! What a conversion kept, dropped and translated.
//!
//! Owns: [`ReadReport`] (source paths the model does not carry, translations made while
//! reading), [`WriteReport`] (model fields the target cannot express, translations made while
//! writing), [`ConversionReport`] (all of it plus the pruning) and its [`ConversionSummary`]
//! (counts and index-free paths only: what goes into the audit trail and the transfer status).
//! Reports never hold identifiers, names, dates or free text: paths are element or field
//! names with indices, and translations name code-table spellings only.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::record::{Field, PruneReport, ScopeDrop, path_within};
use crate::scope::Category;

/// A value spelled differently in the target, by a code table or a documented rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Translation {
    /// Model field path (`achievements[3].grade`) or source path when reading.
    pub path: String,
    /// The table or rule applied (`virta:OpiskeluoikeusTila`, `birth date from henkilötunnus`).
    pub rule: String,
    /// The code as it was (a code-table spelling; never personal free text).
    pub from: String,
    /// The code as it became.
    pub to: String,
    /// Whether meaning was lost (a nearest-equivalent code, not an exact one).
    pub lossy: bool,
}

impl Translation {
    fn new(
        path: impl Into<String>,
        rule: impl Into<String>,
        from: impl Into<String>,
        to: impl Into<String>,
        lossy: bool,
    ) -> Translation {
        Translation {
            path: path.into(),
            rule: rule.into(),
            from: from.into(),
            to: to.into(),
            lossy,
        }
    }
}

/// A model field the target format cannot express.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dropped {
    pub path: String,
    pub reason: String,
}

/// What a reader could not carry into the model, and what it translated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReadReport {
    /// Source paths without indices (`virta:/Virta/Opiskelija/Opintosuoritukset/Opintosuoritus/TKILaajuusMuu`)
    /// with how many times they occurred.
    pub not_carried: BTreeMap<String, usize>,
    /// Source paths the reader does not know at all (a field a register added after this
    /// reader was written), without indices, with how many times they occurred. Only readers of
    /// open-ended formats (KOSKI's JSON) fill it: a schema-validated XML document has none.
    pub not_understood: BTreeMap<String, usize>,
    pub translated: Vec<Translation>,
}

impl ReadReport {
    pub(crate) fn not_carried(&mut self, generic_path: String) {
        *self.not_carried.entry(generic_path).or_insert(0) += 1;
    }

    pub(crate) fn not_understood(&mut self, generic_path: String) {
        *self.not_understood.entry(generic_path).or_insert(0) += 1;
    }

    pub(crate) fn translated(
        &mut self,
        path: impl Into<String>,
        rule: impl Into<String>,
        from: impl Into<String>,
        to: impl Into<String>,
        lossy: bool,
    ) {
        self.translated
            .push(Translation::new(path, rule, from, to, lossy));
    }
}

/// What a writer could not express, and what it translated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WriteReport {
    pub dropped: Vec<Dropped>,
    pub translated: Vec<Translation>,
}

impl WriteReport {
    pub(crate) fn dropped(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.dropped.push(Dropped {
            path: path.into(),
            reason: reason.into(),
        });
    }

    pub(crate) fn translated(
        &mut self,
        path: impl Into<String>,
        rule: impl Into<String>,
        from: impl Into<String>,
        to: impl Into<String>,
        lossy: bool,
    ) {
        self.translated
            .push(Translation::new(path, rule, from, to, lossy));
    }

    /// Whether the field at `path` (or an item containing it) was dropped.
    pub fn is_dropped(&self, path: &str) -> bool {
        self.dropped.iter().any(|d| path_within(path, &d.path))
    }

    /// The dropped paths as a set, for checking many fields.
    fn dropped_set(&self) -> HashSet<&str> {
        self.dropped.iter().map(|d| d.path.as_str()).collect()
    }
}

/// Whether `path` or one of its enclosing paths (`a[1].b` → `a[1]` → `a`) is in `set`.
/// Linear in the length of the path.
fn within_any(path: &str, set: &HashSet<&str>) -> bool {
    if set.contains(path) {
        return true;
    }
    path.char_indices()
        .filter(|(_, c)| *c == '.' || *c == '[')
        .any(|(i, _)| set.contains(&path[..i]))
}

/// Everything a conversion did to the record, field by field.
///
/// May hold code values in `translated` (e.g. a study-right state code); holds no identifier,
/// name, date or free text. Use [`ConversionReport::summary`] for audit trails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConversionReport {
    pub from: &'static str,
    pub to: &'static str,
    /// The scope applied, space-separated.
    pub scope: String,
    /// Whether the record carried turvakielto.
    pub turvakielto: bool,
    /// Categories that have at least one field in the delivered document.
    pub categories: Vec<&'static str>,
    /// Model fields present in the output.
    pub carried: Vec<String>,
    pub dropped_by_scope: Vec<ScopeDrop>,
    pub dropped_by_turvakielto: Vec<String>,
    /// Provider entries no retained field links to.
    pub dropped_unreferenced: Vec<String>,
    /// Fields the target format cannot express.
    pub dropped_by_target: Vec<Dropped>,
    /// Source parts the record model does not carry (index-free paths with counts).
    pub not_read_from_source: BTreeMap<String, usize>,
    /// Source parts the reader does not know (index-free paths with counts).
    pub not_understood: BTreeMap<String, usize>,
    /// Translations while reading and while writing.
    pub translated: Vec<Translation>,
}

impl ConversionReport {
    pub(crate) fn assemble(
        from: &'static str,
        to: &'static str,
        pruned_fields: &[Field],
        prune: PruneReport,
        read: ReadReport,
        write: WriteReport,
    ) -> ConversionReport {
        let dropped = write.dropped_set();
        let carried: Vec<&Field> = pruned_fields
            .iter()
            .filter(|f| !within_any(&f.path, &dropped))
            .collect();
        let categories = Category::ALL
            .into_iter()
            .filter(|c| carried.iter().any(|f| f.category == Some(*c)))
            .map(Category::as_str)
            .collect();
        let mut translated = read.translated;
        translated.extend(write.translated);
        ConversionReport {
            from,
            to,
            scope: prune.scope,
            turvakielto: prune.turvakielto,
            categories,
            carried: carried.into_iter().map(|f| f.path.clone()).collect(),
            dropped_by_scope: prune.dropped_by_scope,
            dropped_by_turvakielto: prune.dropped_by_turvakielto,
            dropped_unreferenced: prune.dropped_unreferenced,
            dropped_by_target: write.dropped,
            not_read_from_source: read.not_carried,
            not_understood: read.not_understood,
            translated,
        }
    }

    /// Counts and index-free paths only: safe for the audit trail and the transfer status.
    pub fn summary(&self) -> ConversionSummary {
        let count = |paths: &mut dyn Iterator<Item = &str>| -> BTreeMap<String, usize> {
            let mut out = BTreeMap::new();
            for p in paths {
                *out.entry(generic_path(p)).or_insert(0) += 1;
            }
            out
        };
        let mut by_scope: BTreeMap<&'static str, BTreeMap<String, usize>> = BTreeMap::new();
        for d in &self.dropped_by_scope {
            *by_scope
                .entry(d.category.as_str())
                .or_default()
                .entry(generic_path(&d.path))
                .or_insert(0) += 1;
        }
        let mut by_target: BTreeMap<String, usize> = BTreeMap::new();
        for d in &self.dropped_by_target {
            *by_target.entry(generic_path(&d.path)).or_insert(0) += 1;
        }
        let mut translated: BTreeMap<String, usize> = BTreeMap::new();
        for t in &self.translated {
            let key = format!("{} ({})", generic_path(&t.path), t.rule);
            *translated.entry(key).or_insert(0) += 1;
        }
        ConversionSummary {
            from: self.from,
            to: self.to,
            scope: self.scope.clone(),
            turvakielto: self.turvakielto,
            categories: self.categories.clone(),
            counts: SummaryCounts {
                carried: self.carried.len(),
                dropped_by_scope: self.dropped_by_scope.len(),
                dropped_by_turvakielto: self.dropped_by_turvakielto.len(),
                dropped_unreferenced: self.dropped_unreferenced.len(),
                dropped_by_target: self.dropped_by_target.len(),
                not_read_from_source: self.not_read_from_source.values().sum(),
                not_understood: self.not_understood.values().sum(),
                translated: self.translated.len(),
                lossy_translations: self.translated.iter().filter(|t| t.lossy).count(),
            },
            carried: count(&mut self.carried.iter().map(String::as_str)),
            dropped_by_scope: by_scope,
            dropped_by_turvakielto: count(
                &mut self.dropped_by_turvakielto.iter().map(String::as_str),
            ),
            dropped_by_target: by_target,
            not_read_from_source: self.not_read_from_source.clone(),
            not_understood: self.not_understood.clone(),
            translated,
        }
    }
}

/// How many fields each outcome had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SummaryCounts {
    pub carried: usize,
    pub dropped_by_scope: usize,
    pub dropped_by_turvakielto: usize,
    pub dropped_unreferenced: usize,
    pub dropped_by_target: usize,
    pub not_read_from_source: usize,
    pub not_understood: usize,
    pub translated: usize,
    pub lossy_translations: usize,
}

/// A conversion report reduced to counts and index-free paths (`achievements[].grade`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConversionSummary {
    pub from: &'static str,
    pub to: &'static str,
    pub scope: String,
    pub turvakielto: bool,
    pub categories: Vec<&'static str>,
    pub counts: SummaryCounts,
    pub carried: BTreeMap<String, usize>,
    /// By category, then path.
    pub dropped_by_scope: BTreeMap<&'static str, BTreeMap<String, usize>>,
    pub dropped_by_turvakielto: BTreeMap<String, usize>,
    pub dropped_by_target: BTreeMap<String, usize>,
    pub not_read_from_source: BTreeMap<String, usize>,
    pub not_understood: BTreeMap<String, usize>,
    /// `path (rule)` → count.
    pub translated: BTreeMap<String, usize>,
}

/// A path with its indices removed: `achievements[3].credits[0]` → `achievements[].credits[]`,
/// `/Virta/Opiskelija[2]/Tila` → `/Virta/Opiskelija[]/Tila`.
pub fn generic_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push('[');
            }
            ']' => {
                in_index = false;
                out.push(']');
            }
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing unwrap is a failing test
mod tests {
    use super::*;

    #[test]
    fn enclosing_paths_are_found() {
        let set: HashSet<&str> = ["achievements[1]", "student.addresses"]
            .into_iter()
            .collect();
        assert!(within_any("achievements[1].grade", &set));
        assert!(within_any("achievements[1]", &set));
        assert!(!within_any("achievements[10].grade", &set));
        assert!(within_any("student.addresses[0]", &set));
        assert!(!within_any("student.address", &set));
    }

    #[test]
    fn generic_paths_drop_indices() {
        assert_eq!(
            generic_path("achievements[12].credits[0]"),
            "achievements[].credits[]"
        );
        assert_eq!(generic_path("student.family_name"), "student.family_name");
    }

    #[test]
    fn summary_counts_and_hides_indices() {
        let mut write = WriteReport::default();
        write.dropped("achievements[1].recognized_on", "no place in ELMO");
        write.translated(
            "achievements[0].grade",
            "scale",
            "viisiportainen",
            "viisiportainen",
            false,
        );
        let fields = vec![
            Field {
                path: "achievements[0].grade".into(),
                category: Some(Category::Achievements),
            },
            Field {
                path: "achievements[1].recognized_on".into(),
                category: Some(Category::Achievements),
            },
            Field {
                path: "achievements[1].grade".into(),
                category: Some(Category::Achievements),
            },
        ];
        let prune = PruneReport {
            scope: "identity achievements".into(),
            turvakielto: false,
            dropped_by_scope: vec![ScopeDrop {
                path: "study_rights[0].start".into(),
                category: Category::Enrolment,
            }],
            dropped_by_turvakielto: vec![],
            dropped_unreferenced: vec![],
        };
        let report = ConversionReport::assemble(
            "virta",
            "elmo",
            &fields,
            prune,
            ReadReport::default(),
            write,
        );
        assert_eq!(report.carried.len(), 2);
        assert_eq!(report.categories, vec!["achievements"]);
        let summary = report.summary();
        assert_eq!(summary.carried.get("achievements[].grade"), Some(&2));
        assert_eq!(summary.counts.dropped_by_target, 1);
        assert_eq!(
            summary.dropped_by_scope["enrolment"].get("study_rights[].start"),
            Some(&1)
        );
        let json = serde_json::to_string(&summary).unwrap();
        assert!(!json.contains("[0]") && !json.contains("[1]"));
    }
}

//! Property tests on generated records: siirto-v1 is lossless; siirto-v1 → elmo → siirto-v1
//! keeps every field ELMO can express; no conversion lets out data the scope does not name;
//! and generated conversions to every format pass the schema validator.

#[path = "support/formats_gen.rs"]
mod generate;
#[path = "support/formats_validate.rs"]
mod validate;
#[path = "support/formats_walk.rs"]
mod walk;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use siirto_core::clock::Timestamp;
use siirto_core::formats::{self, Format, WriteContext, codelists, codes};
use siirto_core::record::{self, AchievementStatus, Grade, GradeScale, Student, StudentRecord};
use siirto_core::scope::{Category, Scope};
use siirto_core::student_id::StudentId;
use siirto_xsd::{Limits, dom};

fn context() -> WriteContext {
    WriteContext::new(Timestamp::from_secs(1_800_000_000)).with_source("generated-source")
}

fn subject_of(record: &StudentRecord) -> StudentId {
    StudentId::parse(record.student.henkilotunnus.as_deref().expect("generated"))
        .expect("generated henkilötunnus is valid")
}

fn reread(format: Format, document: &[u8], subject: &StudentId) -> StudentRecord {
    let root = dom::parse(document, &Limits::default()).expect("output parses");
    formats::read(format, &root, subject).expect("output reads back")
}

fn scope_strategy() -> impl Strategy<Value = Scope> {
    proptest::collection::vec(any::<bool>(), 6).prop_map(|bits| {
        Category::ALL
            .into_iter()
            .zip(bits)
            .filter(|(_, b)| *b)
            .map(|(c, _)| c)
            .collect::<Scope>()
            .with(Category::Identity)
    })
}

/// What an ELMO round trip must give back: the record as pruned to the full scope, reduced to
/// what ELMO can express, with the status ELMO states explicitly.
fn elmo_expressible(record: StudentRecord) -> StudentRecord {
    let (r, _) = record::prune(record, Scope::all());
    let s = r.student;
    let mut addresses = s.addresses;
    addresses.truncate(1);
    for a in &mut addresses {
        a.lines.truncate(4);
    }
    let student = Student {
        citizenships: s
            .citizenships
            .into_iter()
            .filter(|c| codelists::europass_has(c))
            .take(1)
            .collect(),
        mother_tongue: None,
        home_municipality: None,
        contacts: Vec::new(),
        addresses,
        ..s
    };
    let mut issuers: Vec<String> = Vec::new();
    for a in &r.achievements {
        if !issuers.contains(&a.provider) {
            issuers.push(a.provider.clone());
        }
    }
    // With no achievements ELMO still names an issuer, but the record read back has no item
    // that names it, so the second pruning leaves it out.
    let providers = issuers
        .iter()
        .filter_map(|k| r.providers.iter().find(|p| p.key == *k).cloned())
        .map(|mut p| {
            p.country = p.country.filter(|c| codelists::europass_has(c));
            p
        })
        .collect();
    let achievements = r
        .achievements
        .into_iter()
        .map(|mut a| {
            let failing = match &a.grade {
                Some(Grade {
                    scale: GradeScale::Known(k),
                    value,
                }) => codes::scale_row(*k).is_some_and(|row| row.failing.contains(&value.as_str())),
                _ => false,
            };
            a.status.get_or_insert(if failing {
                AchievementStatus::Failed
            } else {
                AchievementStatus::Passed
            });
            a.recognized_on = None;
            a.study_right = None;
            a.language = a.language.filter(|l| codelists::is_language_tag(l));
            for p in &mut a.parts {
                p.credits = None;
            }
            a
        })
        .collect();
    StudentRecord {
        student,
        turvakielto: false,
        providers,
        study_rights: Vec::new(),
        achievements,
        mobility_periods: Vec::new(),
        term_registrations: Vec::new(),
        support_decisions: Vec::new(),
    }
}

/// ELMO groups achievements by issuer and nests parts under their parents: compare the
/// achievements in key order.
fn sorted(mut r: StudentRecord) -> StudentRecord {
    r.achievements.sort_by(|a, b| a.key.cmp(&b.key));
    r
}

proptest! {
    #![proptest_config(Config { cases: 256, ..Config::default() })]

    #[test]
    fn siirto_v1_is_lossless(record in generate::record()) {
        let subject = subject_of(&record);
        let (document, report) = formats::write(Format::SiirtoV1, &record, &context()).expect("writes");
        prop_assert!(report.dropped.is_empty(), "{:?}", report.dropped);
        let back = reread(Format::SiirtoV1, &document, &subject);
        prop_assert_eq!(
            serde_json::to_value(&back).expect("json"),
            serde_json::to_value(&record).expect("json")
        );
        prop_assert_eq!(back, record);
    }

    #[test]
    fn siirto_v1_elmo_siirto_v1_keeps_what_elmo_expresses(record in generate::record()) {
        let subject = subject_of(&record);
        let (document, _) = formats::write(Format::SiirtoV1, &record, &context()).expect("writes");
        let root = dom::parse(&document, &Limits::default()).expect("parses");
        let to_elmo = formats::convert(Format::SiirtoV1, Format::Elmo, &root, &subject, Scope::all(), &context())
            .expect("converts to ELMO");
        let elmo_root = dom::parse(&to_elmo.document, &Limits::default()).expect("parses");
        let back = formats::convert(Format::Elmo, Format::SiirtoV1, &elmo_root, &subject, Scope::all(), &context())
            .expect("converts back");
        let round = reread(Format::SiirtoV1, &back.document, &subject);
        let expected = sorted(elmo_expressible(record));
        let round = sorted(round);
        prop_assert_eq!(
            serde_json::to_value(&round).expect("json"),
            serde_json::to_value(&expected).expect("json")
        );
        // Every field the round trip lost was reported by the first conversion.
        let carried = to_elmo.report.carried.len();
        let fields = record::prune(reread(Format::SiirtoV1, &document, &subject), Scope::all()).0.fields().len();
        prop_assert!(carried <= fields);
    }

    #[test]
    fn no_conversion_lets_out_what_the_scope_does_not_name(
        record in generate::record(),
        scope in scope_strategy(),
    ) {
        let subject = subject_of(&record);
        let (document, _) = formats::write(Format::SiirtoV1, &record, &context()).expect("writes");
        let root = dom::parse(&document, &Limits::default()).expect("parses");
        for to in Format::DESTINATIONS {
            let c = formats::convert(Format::SiirtoV1, to, &root, &subject, scope, &context())
                .expect("converts");
            walk::assert_within_scope(to, &c.document, scope, &format!("→ {to}"));
            prop_assert_eq!(walk::student_count(to, &c.document), 1);
            if record.turvakielto {
                let out = reread(to, &c.document, &subject);
                prop_assert!(out.student.addresses.is_empty());
                prop_assert!(out.student.contacts.is_empty());
                prop_assert_eq!(out.student.home_municipality, None);
            }
            for category in &c.report.categories {
                prop_assert!(scope.iter().any(|s| s.as_str() == *category));
            }
        }
    }
}

/// Generated records converted to every format under random scopes are valid against the
/// official schemas (a fixed number of cases: each runs the external validator).
#[test]
fn generated_conversions_pass_the_schema_validator() {
    let mut runner = TestRunner::new(Config {
        cases: 40,
        ..Config::default()
    });
    let validated = std::cell::Cell::new(0usize);
    runner
        .run(
            &(generate::record(), scope_strategy()),
            |(record, scope)| {
                let subject = subject_of(&record);
                let (document, _) =
                    formats::write(Format::SiirtoV1, &record, &context()).expect("writes");
                validate::validate_output(Format::SiirtoV1, &document, "generated siirto-v1");
                let root = dom::parse(&document, &Limits::default()).expect("parses");
                for to in Format::DESTINATIONS {
                    for s in [Scope::all(), scope] {
                        let c =
                            formats::convert(Format::SiirtoV1, to, &root, &subject, s, &context())
                                .expect("converts");
                        if validate::validate_output(
                            to,
                            &c.document,
                            &format!("generated → {to} [{s}]"),
                        ) == validate::Checked::Xmllint
                        {
                            validated.set(validated.get() + 1);
                        }
                    }
                }
                Ok(())
            },
        )
        .expect("every generated conversion is schema-valid");
    eprintln!(
        "generated: {} conversions validated by xmllint",
        validated.get()
    );
}

//! Unit tests of the KOSKI reader: the mapping on small documents, the grade scales, limits and
//! what is reported. The corpus tests (every file of `../shared/corpus/koski`) are in the
//! workspace's `tests/formats_koski.rs`.
#![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

use super::*;
use crate::record::{AchievementKind, AchievementStatus, KnownScale};
use serde_json::{Value, json};

const HETU: &str = "131052-308T";

fn subject() -> StudentId {
    StudentId::parse(HETU).unwrap()
}

fn arviointi(uri: &str, value: &str) -> Value {
    json!([{"arvosana": {"koodiarvo": value, "koodistoUri": uri}, "päivä": "2024-06-01"}])
}

fn subject_part(code: &str, uri: &str, value: &str) -> Value {
    json!({
        "tyyppi": {"koodiarvo": "perusopetuksenoppiaine", "koodistoUri": "suorituksentyyppi"},
        "koulutusmoduuli": {
            "tunniste": {"koodiarvo": code, "koodistoUri": "koskioppiaineetyleissivistava"},
            "laajuus": {"arvo": 2.5, "yksikkö": {"koodiarvo": "3", "koodistoUri": "opintojenlaajuusyksikko"}},
            "pakollinen": true
        },
        "arviointi": arviointi(uri, value)
    })
}

/// A small perusopetus document: one study right, a confirmed syllabus with three subjects.
fn document() -> Value {
    json!({
        "henkilö": {"hetu": HETU, "etunimet": "Satu Maria", "kutsumanimi": "Satu", "sukunimi": "Virtanen",
                    "äidinkieli": {"koodiarvo": "FI", "koodistoUri": "kieli"},
                    "kansalaisuus": [{"koodiarvo": "246", "koodistoUri": "maatjavaltiot2"}]},
        "opiskeluoikeudet": [{
            "tyyppi": {"koodiarvo": "perusopetus", "koodistoUri": "opiskeluoikeudentyyppi"},
            "oppilaitos": {"oid": "1.2.246.562.10.14613773812", "oppilaitosnumero": {"koodiarvo": "01234", "koodistoUri": "oppilaitosnumero"},
                           "nimi": {"fi": "Koulu", "sv": "Skola", "en": "School"}},
            "alkamispäivä": "2015-08-15",
            "päättymispäivä": "2024-06-01",
            "tila": {"opiskeluoikeusjaksot": [
                {"alku": "2015-08-15", "tila": {"koodiarvo": "lasna", "koodistoUri": "koskiopiskeluoikeudentila"}},
                {"alku": "2024-03-01", "tila": {"koodiarvo": "valmistunut", "koodistoUri": "koskiopiskeluoikeudentila"}}
            ]},
            "lisätiedot": {
                "erityisenTuenPäätökset": [{"alku": "2020-08-01", "loppu": "2024-06-01", "opiskeleeToimintaAlueittain": false}],
                "pidennettyOppivelvollisuus": {"alku": "2016-08-01", "loppu": "2024-06-01"},
                "kuljetusetu": {"alku": "2016-08-01", "loppu": "2024-06-01"}
            },
            "suoritukset": [{
                "tyyppi": {"koodiarvo": "perusopetuksenoppimaara", "koodistoUri": "suorituksentyyppi"},
                "koulutusmoduuli": {"tunniste": {"koodiarvo": "201101", "koodistoUri": "koulutus"}, "perusteenDiaarinumero": "104/011/2014"},
                "suorituskieli": {"koodiarvo": "FI", "koodistoUri": "kieli"},
                "vahvistus": {"päivä": "2024-06-01", "paikkakunta": {"koodiarvo": "091", "koodistoUri": "kunta"}},
                "osasuoritukset": [
                    subject_part("MA", "arviointiasteikkoyleissivistava", "9"),
                    subject_part("LI", "arviointiasteikkoyleissivistava", "S"),
                    {
                        "tyyppi": {"koodiarvo": "perusopetuksenoppiaine", "koodistoUri": "suorituksentyyppi"},
                        "koulutusmoduuli": {"tunniste": {"koodiarvo": "A1", "koodistoUri": "koskioppiaineetyleissivistava"},
                                            "kieli": {"koodiarvo": "EN", "koodistoUri": "kielivalikoima"}},
                        "yksilöllistettyOppimäärä": true,
                        "arviointi": [
                            {"arvosana": {"koodiarvo": "4", "koodistoUri": "arviointiasteikkoyleissivistava"}, "hyväksytty": false},
                            {"arvosana": {"koodiarvo": "7", "koodistoUri": "arviointiasteikkoyleissivistava"}, "hyväksytty": true}
                        ],
                        "uusiKenttä2031": {"x": 1}
                    }
                ]
            }]
        }]
    })
}

fn read_json(v: &Value) -> Result<(StudentRecord, ReadReport), KoskiError> {
    read_bytes(v.to_string().as_bytes(), &JsonLimits::default(), &subject())
}

#[test]
fn identity_study_right_and_provider() {
    let (r, report) = read_json(&document()).unwrap();
    let s = &r.student;
    assert_eq!(s.henkilotunnus.as_deref(), Some(HETU));
    assert_eq!(s.family_name.as_deref(), Some("Virtanen"));
    assert_eq!(s.given_names.as_deref(), Some("Satu Maria"));
    assert_eq!(s.mother_tongue.as_deref(), Some("fi"));
    assert_eq!(s.citizenships, vec!["FI"]);
    // No syntymäaika: the birth date comes from the henkilötunnus, reported.
    assert_eq!(s.birth_date, Date::parse("1952-10-13").ok());
    assert!(
        report
            .translated
            .iter()
            .any(|t| t.rule == "birth date from henkilötunnus")
    );
    assert!(!r.turvakielto);
    assert_eq!(r.providers.len(), 1);
    let p = &r.providers[0];
    assert_eq!(p.key, "01234");
    assert_eq!(p.names.len(), 3);
    assert!(
        p.identifiers
            .iter()
            .any(|i| i.kind == ORGANISATION_OID_TYPE)
    );
    let sr = &r.study_rights[0];
    assert_eq!(sr.kind, StudyRightKind::Basic);
    assert_eq!(sr.provider, "01234");
    assert_eq!(sr.key.as_deref(), Some("opiskeluoikeus-1"));
    assert_eq!(sr.end, Date::parse("2024-06-01").ok());
    // The first period ends the day before the next one begins.
    assert_eq!(sr.states.len(), 2);
    assert_eq!(sr.states[0].state, StudyRightState::Active);
    assert_eq!(sr.states[0].end, Date::parse("2024-02-29").ok());
    assert_eq!(sr.states[1].state, StudyRightState::Graduated);
    assert_eq!(sr.states[1].end, None);
    assert_eq!(sr.programmes[0].education_code.as_deref(), Some("201101"));
    assert_eq!(sr.programmes[0].language.as_deref(), Some("fi"));
}

#[test]
fn completions_become_achievements_with_their_code_lists() {
    let (r, report) = read_json(&document()).unwrap();
    assert_eq!(r.achievements.len(), 4);
    let top = &r.achievements[0];
    assert_eq!(top.kind, AchievementKind::Degree);
    assert_eq!(top.code.as_deref(), Some("201101"));
    assert_eq!(top.code_scheme.as_deref(), Some("koulutus"));
    assert_eq!(top.status, Some(AchievementStatus::Passed));
    assert_eq!(top.date, Date::parse("2024-06-01").ok());
    assert_eq!(top.parts.len(), 3);
    assert_eq!(top.study_right.as_deref(), Some("opiskeluoikeus-1"));
    let ma = &r.achievements[1];
    assert_eq!(ma.kind, AchievementKind::Course);
    assert_eq!(ma.code.as_deref(), Some("MA"));
    assert_eq!(
        ma.code_scheme.as_deref(),
        Some("koskioppiaineetyleissivistava")
    );
    assert_eq!(
        ma.grade,
        Some(Grade {
            scale: GradeScale::Known(KnownScale::FourToTen),
            value: "9".into()
        })
    );
    assert_eq!(ma.credits[0].value.as_str(), "2.5");
    assert_eq!(
        ma.credits[0].unit,
        CreditUnit::Known(KnownUnit::Vuosiviikkotunti)
    );
    assert_eq!(top.parts[0].key, ma.key.clone().unwrap());
    let li = &r.achievements[2];
    assert_eq!(li.grade.as_ref().map(|g| g.value.as_str()), Some("S"));
    // The last assessment is in force; the earlier one is reported, not lost silently.
    let a1 = &r.achievements[3];
    assert_eq!(a1.grade.as_ref().map(|g| g.value.as_str()), Some("7"));
    assert_eq!(a1.status, Some(AchievementStatus::Passed));
    assert_eq!(a1.language.as_deref(), Some("en"));
    assert!(
        report
            .not_carried
            .keys()
            .any(|k| k.ends_with("arviointi[] (earlier assessment)"))
    );
}

#[test]
fn support_decisions_and_individualised_subjects() {
    let (r, _) = read_json(&document()).unwrap();
    let kinds: Vec<SupportKind> = r.support_decisions.iter().map(|d| d.kind).collect();
    assert_eq!(
        kinds,
        vec![
            SupportKind::Erityinen,
            SupportKind::PidennettyOppivelvollisuus
        ]
    );
    let erityinen = &r.support_decisions[0];
    assert_eq!(erityinen.start, Date::parse("2020-08-01").unwrap());
    assert_eq!(erityinen.end, Date::parse("2024-06-01").ok());
    assert_eq!(erityinen.individualised_subjects, vec!["A1"]);
    assert_eq!(erityinen.provider.as_deref(), Some("01234"));
}

#[test]
fn unknown_fields_are_not_understood_and_known_ones_not_carried() {
    let (_, report) = read_json(&document()).unwrap();
    assert_eq!(
        report
            .not_understood
            .get("koski:opiskeluoikeudet[].suoritukset[].osasuoritukset[].uusiKenttä2031"),
        Some(&1)
    );
    for known in [
        "koski:henkilö.kutsumanimi",
        "koski:opiskeluoikeudet[].lisätiedot.kuljetusetu",
        "koski:opiskeluoikeudet[].lisätiedot.erityisenTuenPäätökset[].opiskeleeToimintaAlueittain",
        "koski:opiskeluoikeudet[].suoritukset[].koulutusmoduuli.perusteenDiaarinumero",
        "koski:opiskeluoikeudet[].suoritukset[].vahvistus.paikkakunta",
    ] {
        assert!(report.not_carried.contains_key(known), "{known}");
    }
    assert_eq!(
        report.not_carried.get(
            "koski:opiskeluoikeudet[].suoritukset[].osasuoritukset[].koulutusmoduuli.pakollinen"
        ),
        Some(&2)
    );
    assert_eq!(
        report.not_understood.len(),
        1,
        "{:?}",
        report.not_understood
    );
}

#[test]
fn grade_scales() {
    /// (scale, value, the record's scale and value when it knows one).
    type Case = (
        &'static str,
        &'static str,
        Option<(KnownScale, &'static str)>,
    );
    let cases: &[Case] = &[
        (
            "arviointiasteikkoyleissivistava",
            "4",
            Some((KnownScale::FourToTen, "4")),
        ),
        (
            "arviointiasteikkoyleissivistava",
            "10",
            Some((KnownScale::FourToTen, "10")),
        ),
        (
            "arviointiasteikkoyleissivistava",
            "S",
            Some((KnownScale::PassFail, "S")),
        ),
        (
            "arviointiasteikkoyleissivistava",
            "H",
            Some((KnownScale::PassFail, "H")),
        ),
        ("arviointiasteikkoyleissivistava", "O", None),
        (
            "arviointiasteikkoammatillinenhyvaksyttyhylatty",
            "Hyväksytty",
            Some((KnownScale::PassFail, "S")),
        ),
        (
            "arviointiasteikkoammatillinenhyvaksyttyhylatty",
            "Hylätty",
            Some((KnownScale::PassFail, "H")),
        ),
        ("arviointiasteikkoammatillinen15", "5", None),
        ("arviointiasteikkoammatillinen15", "Hyväksytty", None),
        ("arviointiasteikkoammatillinent1k3", "3", None),
        ("arviointiasteikkouusi", "A", None),
    ];
    for (uri, value, expected) in cases {
        let mut doc = document();
        doc["opiskeluoikeudet"][0]["suoritukset"][0]["osasuoritukset"] =
            json!([subject_part("MA", uri, value)]);
        let (r, _) = read_json(&doc).unwrap();
        let grade = r.achievements[1].grade.clone().unwrap();
        match expected {
            Some((scale, v)) => {
                assert_eq!(grade.scale, GradeScale::Known(*scale), "{uri} {value}");
                assert_eq!(grade.value, *v, "{uri} {value}");
            }
            None => {
                let GradeScale::Other { scheme, .. } = &grade.scale else {
                    panic!("{uri} {value}: {grade:?}");
                };
                // The scale keeps KOSKI's code list as its scheme, the value as it was.
                assert_eq!(scheme, uri);
                assert_eq!(grade.value, *value);
            }
        }
    }
    // Without `hyväksytty`, a failing value of the scale fails the achievement.
    for (uri, value, passed) in [
        ("arviointiasteikkoyleissivistava", "4", false),
        ("arviointiasteikkoyleissivistava", "5", true),
        ("arviointiasteikkoyleissivistava", "H", false),
        ("arviointiasteikkoammatillinent1k3", "0", false),
        ("arviointiasteikkoammatillinen15", "1", true),
    ] {
        let mut doc = document();
        doc["opiskeluoikeudet"][0]["suoritukset"][0]["osasuoritukset"] =
            json!([subject_part("MA", uri, value)]);
        let (r, _) = read_json(&doc).unwrap();
        let expected = if passed {
            AchievementStatus::Passed
        } else {
            AchievementStatus::Failed
        };
        assert_eq!(r.achievements[1].status, Some(expected), "{uri} {value}");
    }
}

#[test]
fn only_the_subject_is_read() {
    let other = StudentId::parse("010101A123N").unwrap_or_else(|_| {
        StudentId::parse(&crate::student_id::with_check_character("010101A123")).unwrap()
    });
    let err = read_bytes(
        document().to_string().as_bytes(),
        &JsonLimits::default(),
        &other,
    )
    .unwrap_err();
    assert!(matches!(
        err,
        KoskiError::Format(FormatError::SubjectMismatch { .. })
    ));
    // By oppijanumero.
    let mut doc = document();
    doc["henkilö"] = json!({"oid": "1.2.246.562.24.10000000008", "turvakielto": true});
    let oid = StudentId::parse("1.2.246.562.24.10000000008").unwrap();
    let (r, _) = read_bytes(doc.to_string().as_bytes(), &JsonLimits::default(), &oid).unwrap();
    assert!(r.turvakielto);
    assert_eq!(
        r.student.learner_id.as_deref(),
        Some("1.2.246.562.24.10000000008")
    );
    assert_eq!(
        read_bytes(
            doc.to_string().as_bytes(),
            &JsonLimits::default(),
            &subject()
        )
        .unwrap_err()
        .to_string(),
        "the document is not about the authorized student: none of the 1 student(s) in the document has the authorization's henkilötunnus"
    );
}

#[test]
fn a_birth_date_against_the_henkilotunnus_is_a_mismatch() {
    let mut doc = document();
    doc["henkilö"]["syntymäaika"] = json!("1952-10-14");
    let err = read_json(&doc).unwrap_err();
    assert!(matches!(
        err,
        KoskiError::Format(FormatError::SubjectMismatch { .. })
    ));
    doc["henkilö"]["syntymäaika"] = json!("1952-10-13");
    assert!(read_json(&doc).is_ok());
}

#[test]
fn strict_types_with_line_and_column() {
    let text = document()
        .to_string()
        .replace("\"2015-08-15\"", "\"2015-02-30\"");
    let err = read_bytes(text.as_bytes(), &JsonLimits::default(), &subject()).unwrap_err();
    let KoskiError::Json(e) = &err else {
        panic!("{err}");
    };
    assert_eq!(e.code(), "json_invalid");
    assert!(e.position().is_some());
    assert!(
        err.to_string().starts_with("json_invalid: line 1, column"),
        "{err}"
    );

    let mut doc = document();
    doc["henkilö"]["turvakielto"] = json!("yes");
    let err = read_json(&doc).unwrap_err();
    assert!(err.to_string().contains("expected a boolean"), "{err}");
    assert!(!err.to_string().contains("yes"), "{err}");

    let err = read_bytes(
        b"{\"henkil\xc3\xb6\": {}}",
        &JsonLimits::default(),
        &subject(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("missing field `opiskeluoikeudet`"),
        "{err}"
    );
    let err = read_bytes(b"[]", &JsonLimits::default(), &subject()).unwrap_err();
    assert_eq!(err.to_string().split(':').next(), Some("json_invalid"));
}

#[test]
fn limits_apply_before_reading() {
    let deep = format!(
        "{{\"henkilö\": {{}}, \"opiskeluoikeudet\": {}{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let err = read_bytes(deep.as_bytes(), &JsonLimits::default(), &subject()).unwrap_err();
    assert!(
        err.to_string().starts_with("json_too_deep: line 1"),
        "{err}"
    );
    let small = JsonLimits {
        max_bytes: 100,
        ..JsonLimits::default()
    };
    let err = read_bytes(document().to_string().as_bytes(), &small, &subject()).unwrap_err();
    assert!(err.to_string().starts_with("json_too_large"), "{err}");
}

#[test]
fn other_study_right_types_and_annulled_ones_are_reported() {
    let mut doc = document();
    let mut ib = doc["opiskeluoikeudet"][0].clone();
    ib["tyyppi"]["koodiarvo"] = json!("ibtutkinto");
    let mut annulled = doc["opiskeluoikeudet"][0].clone();
    annulled["tila"]["opiskeluoikeusjaksot"][1]["tila"]["koodiarvo"] = json!("mitatoity");
    doc["opiskeluoikeudet"] = json!([ib, annulled]);
    let (r, report) = read_json(&doc).unwrap();
    assert!(r.study_rights.is_empty() && r.achievements.is_empty());
    assert!(r.support_decisions.is_empty());
    assert!(
        report
            .not_carried
            .contains_key("koski:opiskeluoikeudet[] (opiskeluoikeudentyyppi ibtutkinto)")
    );
    assert!(
        report
            .not_carried
            .contains_key("koski:opiskeluoikeudet[] (annulled: mitatoity)")
    );
}

#[test]
fn the_day_before_crosses_months_and_years() {
    for (day, before) in [
        ("2024-03-01", "2024-02-29"),
        ("2023-03-01", "2023-02-28"),
        ("2024-01-01", "2023-12-31"),
        ("2024-05-01", "2024-04-30"),
        ("2024-05-17", "2024-05-16"),
    ] {
        assert_eq!(
            day_before(Date::parse(day).unwrap()),
            Date::parse(before).ok(),
            "{day}"
        );
    }
}

#[test]
fn the_code_tables_are_documented() {
    use crate::formats::mapping_doc::{cells, section};
    let kinds = section("KOSKI study-right type");
    for (code, kind) in STUDY_RIGHT_KINDS {
        let token = crate::formats::codes::STUDY_RIGHT_KINDS
            .rows
            .iter()
            .find(|r| r.value == *kind)
            .map(|r| r.siirto)
            .unwrap();
        let line = kinds
            .iter()
            .find(|l| cells(l).first().map(String::as_str) == Some(&format!("`{code}`")))
            .unwrap_or_else(|| panic!("no row for {code}"));
        assert_eq!(cells(line)[1], format!("`{token}`"), "{code}");
    }
    let states = section("KOSKI study-right state");
    for (code, state, lossy) in STUDY_RIGHT_STATES {
        let token = crate::formats::codes::STUDY_RIGHT_STATES
            .rows
            .iter()
            .find(|r| r.value == *state)
            .map(|r| r.siirto)
            .unwrap();
        let line = states
            .iter()
            .find(|l| cells(l).first().map(String::as_str) == Some(&format!("`{code}`")))
            .unwrap_or_else(|| panic!("no row for {code}"));
        let c = cells(line);
        assert_eq!(c[1], format!("`{token}`"), "{code}");
        assert_eq!(c[2] == "lossy", *lossy, "{code}");
    }
    let units = section("KOSKI credit units");
    for (code, known, name) in CREDIT_UNITS {
        let token = match known {
            Some(k) => crate::formats::codes::unit_row(*k)
                .unwrap()
                .siirto
                .to_owned(),
            None => format!("x-{name}"),
        };
        let line = units
            .iter()
            .find(|l| cells(l).first().map(String::as_str) == Some(&format!("`{code}`")))
            .unwrap_or_else(|| panic!("no row for unit {code}"));
        assert_eq!(cells(line)[1], format!("`{token}`"), "unit {code}");
    }
    let grades = section("KOSKI grade scales");
    for scale in SCALES {
        let line = grades
            .iter()
            .find(|l| {
                cells(l).first().map(String::as_str) == Some(&format!("`{}`", scale.koodisto_uri))
            })
            .unwrap_or_else(|| panic!("no row for {}", scale.koodisto_uri));
        let c = cells(line);
        for (value, known, to) in scale.known {
            let row = crate::formats::codes::scale_row(*known).unwrap();
            assert!(
                c[1].contains(&format!("`{value}` → `{}` {to}", row.siirto)),
                "{}: {value}",
                scale.koodisto_uri
            );
        }
    }
}

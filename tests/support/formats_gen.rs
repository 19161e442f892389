//! Proptest strategies for generated student records.
//!
//! Records are valid as siirto-v1 can hold them: identifiers of the right form, short texts
//! (with XML's special characters and Finnish letters), codes from the tables. The ELMO round
//! trip needs a few more regularities, which `round_trip_record` arranges: every achievement
//! has a unique key, parts link only within one provider, each part has one parent and links
//! point forward (no cycles), and a foreign grading scheme's name depends on the scheme only.
#![allow(dead_code)]

use proptest::prelude::*;
use proptest::sample::select;

use siirto_core::record::*;

const CHECK: &[u8; 31] = b"0123456789ABCDEFHJKLMNPRSTUVWXY";

/// A valid henkilötunnus.
pub fn henkilotunnus() -> impl Strategy<Value = String> {
    (
        1u32..=28,
        1u32..=12,
        0u32..100,
        select(vec!['-', 'A', 'Y', 'B']),
        2u32..900,
    )
        .prop_map(|(d, m, y, sign, n)| {
            let body = format!("{d:02}{m:02}{y:02}");
            let number: u32 = format!("{body}{n:03}").parse().expect("digits");
            let check = char::from(CHECK[(number % 31) as usize]);
            format!("{body}{sign}{n:03}{check}")
        })
}

pub fn learner_id() -> impl Strategy<Value = String> {
    (1u64..99_999_999_999).prop_map(|n| format!("1.2.246.562.24.{n}"))
}

/// A short single-line text: no leading, trailing or doubled spaces (xs:token values).
pub fn text() -> impl Strategy<Value = String> {
    proptest::collection::vec("[A-Za-zÅÄÖåäö0-9&<>\"'./-]{1,12}", 1..4).prop_map(|w| w.join(" "))
}

pub fn key() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9_.-]{0,15}"
}

pub fn date() -> impl Strategy<Value = Date> {
    (1900u16..2040, 1u8..=12, 1u8..=28)
        .prop_map(|(y, m, d)| Date::new(y, m, d).expect("valid date"))
}

pub fn decimal() -> impl Strategy<Value = Decimal> {
    (0u32..400, 0u32..100)
        .prop_map(|(i, f)| Decimal::parse(&format!("{i}.{f:02}")).expect("decimal"))
}

pub fn lang() -> impl Strategy<Value = Option<String>> {
    select(vec![None, Some("fi"), Some("sv"), Some("en"), Some("se")])
        .prop_map(|l| l.map(str::to_owned))
}

pub fn localized() -> impl Strategy<Value = LocalizedText> {
    (lang(), text()).prop_map(|(lang, text)| LocalizedText { lang, text })
}

pub fn country() -> impl Strategy<Value = String> {
    // FI, SE, DE are in ELMO's Europass list; AX and HK are not.
    select(vec!["FI", "SE", "DE", "AX", "HK"]).prop_map(str::to_owned)
}

pub fn language_code() -> impl Strategy<Value = String> {
    select(vec!["fi", "sv", "en", "se", "20", "99"]).prop_map(str::to_owned)
}

fn typed_id(kinds: Vec<&'static str>) -> impl Strategy<Value = TypedId> {
    (select(kinds), "[A-Z]{2}[0-9]{4,10}").prop_map(|(kind, value)| TypedId {
        kind: kind.to_owned(),
        value,
    })
}

pub fn address() -> impl Strategy<Value = Address> {
    (
        proptest::collection::vec(text(), 1..6),
        proptest::option::of("[0-9]{5}"),
        proptest::option::of(text()),
        proptest::option::of(text()),
        proptest::option::of(country()),
    )
        .prop_map(|(lines, postal_code, locality, region, country)| Address {
            lines,
            postal_code,
            locality,
            region,
            country,
        })
}

pub fn student() -> impl Strategy<Value = Student> {
    (
        henkilotunnus(),
        proptest::option::of(learner_id()),
        proptest::collection::vec(typed_id(vec!["esi", "virta-avain", "studentNumber"]), 0..3),
        proptest::option::of(text()),
        proptest::option::of(text()),
        // Whether the record states the birth date (the henkilötunnus' own: identity binding).
        proptest::bool::ANY,
        proptest::option::of(select(vec![
            Gender::Unknown,
            Gender::Male,
            Gender::Female,
            Gender::NotApplicable,
        ])),
        proptest::collection::vec(country(), 0..3),
        proptest::option::of(language_code()),
        proptest::option::of(select(vec!["091", "853", "272"]).prop_map(str::to_owned)),
        proptest::collection::vec(address(), 0..3),
        proptest::collection::vec(
            (select(vec![ContactKind::Email, ContactKind::Phone]), text())
                .prop_map(|(kind, value)| Contact { kind, value }),
            0..3,
        ),
    )
        .prop_map(
            |(
                h,
                l,
                other_ids,
                family,
                given,
                birth,
                gender,
                cits,
                mother,
                home,
                addresses,
                contacts,
            )| {
                Student {
                    henkilotunnus: Some(h.clone()),
                    learner_id: l,
                    other_ids,
                    family_name: family,
                    given_names: given,
                    birth_date: siirto_core::student_id::birth_date(&h)
                        .filter(|_| birth)
                        .and_then(|(y, m, d)| {
                            siirto_core::record::Date::new(u16::try_from(y).ok()?, m, d).ok()
                        }),
                    gender,
                    citizenships: cits,
                    mother_tongue: mother,
                    home_municipality: home,
                    addresses,
                    contacts,
                }
            },
        )
}

pub fn provider(key: String) -> impl Strategy<Value = Provider> {
    (
        proptest::collection::vec(
            typed_id(vec![
                "schac",
                "erasmus",
                "pic",
                "oppilaitosnumero",
                "organisaatio-oid",
            ]),
            0..3,
        ),
        proptest::collection::vec(localized(), 0..3),
        proptest::option::of(country()),
        proptest::option::of("https://[a-z]{3,8}\\.fi"),
    )
        .prop_map(move |(identifiers, names, country, url)| Provider {
            key: key.clone(),
            identifiers,
            names,
            country,
            url,
        })
}

fn all_kinds() -> Vec<StudyRightKind> {
    use StudyRightKind::*;
    vec![
        PrePrimary,
        Basic,
        BasicAdditional,
        BasicPreparatory,
        AdultBasic,
        UpperSecondary,
        Tuva,
        Vocational,
        UasDegree,
        BachelorDegree,
        MasterDegree,
        Doctorate,
        OpenStudies,
        NonHeiCooperation,
    ]
}

fn states() -> Vec<StudyRightState> {
    use StudyRightState::*;
    vec![
        Active,
        Optio,
        Graduated,
        Passivated,
        Ended,
        TimeLimitExpired,
        EndedOneStudyRightRule,
        Interrupted,
    ]
}

pub fn credits() -> impl Strategy<Value = Credits> {
    let unit = prop_oneof![
        select(vec![
            KnownUnit::Opintopiste,
            KnownUnit::Opintoviikko,
            KnownUnit::Kurssi,
            KnownUnit::Vuosiviikkotunti,
            KnownUnit::Osaamispiste,
        ])
        .prop_map(CreditUnit::Known),
        "x[a-z]{2,6}".prop_map(CreditUnit::Other),
    ];
    (decimal(), unit).prop_map(|(value, unit)| Credits { value, unit })
}

pub fn grade() -> impl Strategy<Value = Grade> {
    let known = select(vec![
        (
            KnownScale::FourToTen,
            vec!["4", "5", "6", "7", "8", "9", "10"],
        ),
        (KnownScale::PassFail, vec!["S", "H"]),
        (
            KnownScale::Viisiportainen,
            vec!["HYV", "1", "2", "3", "4", "5"],
        ),
        (KnownScale::ToinenKotimainen, vec!["TT", "HT"]),
        (KnownScale::Hyvaksytty, vec!["HYV"]),
        (KnownScale::Naytetyo, vec!["HYV", "KH"]),
        (
            KnownScale::Tutkielma,
            vec!["I", "A", "B", "N", "C", "M", "E", "L"],
        ),
    ])
    .prop_flat_map(|(scale, values)| {
        select(values).prop_map(move |v| Grade {
            scale: GradeScale::Known(scale),
            value: v.to_owned(),
        })
    });
    // A foreign scheme's name is a function of the scheme (one ELMO gradingScheme per id).
    let other = ("x[a-z]{1,4}", "[A-F]|[0-9]{1,3}").prop_map(|(scheme, value)| Grade {
        scale: GradeScale::Other {
            name: (scheme.len() % 2 == 0).then(|| format!("Scale {scheme}")),
            scheme,
        },
        value,
    });
    prop_oneof![3 => known, 1 => other]
}

/// A record; achievements with unique keys, parts forming forests within a provider.
pub fn record() -> impl Strategy<Value = StudentRecord> {
    (1usize..4, 0usize..7)
        .prop_flat_map(|(providers, achievements)| {
            let keys: Vec<String> = (0..providers).map(|i| format!("P{i}")).collect();
            (
                student(),
                any::<bool>(),
                keys.iter().map(|k| provider(k.clone())).collect::<Vec<_>>(),
                proptest::collection::vec(study_right(providers), 0..3),
                proptest::collection::vec(achievement(providers), achievements),
                proptest::collection::vec(proptest::option::of(0usize..8), achievements),
                proptest::collection::vec(mobility(providers), 0..3),
                proptest::collection::vec(registration(providers), 0..3),
                proptest::collection::vec(support(providers), 0..3),
            )
        })
        .prop_map(
            |(
                student,
                turvakielto,
                providers,
                study_rights,
                mut achievements,
                parents,
                mobility_periods,
                term_registrations,
                support_decisions,
            )| {
                for (i, a) in achievements.iter_mut().enumerate() {
                    a.key = Some(format!("A{i}"));
                }
                // A part links forward to a later achievement of the same provider; each part
                // has at most one parent.
                for (child, parent) in parents.iter().enumerate() {
                    let Some(parent) = parent else { continue };
                    if *parent >= child {
                        continue;
                    }
                    if achievements[*parent].provider != achievements[child].provider {
                        continue;
                    }
                    let credits = (child % 2 == 0).then(|| Decimal::parse("1.5").expect("decimal"));
                    achievements[*parent].parts.push(PartRef {
                        key: format!("A{child}"),
                        credits,
                    });
                }
                StudentRecord {
                    student,
                    turvakielto,
                    providers,
                    study_rights,
                    achievements,
                    mobility_periods,
                    term_registrations,
                    support_decisions,
                }
            },
        )
}

fn provider_key(providers: usize) -> impl Strategy<Value = String> {
    (0..providers).prop_map(|i| format!("P{i}"))
}

pub fn study_right(providers: usize) -> impl Strategy<Value = StudyRight> {
    (
        proptest::option::of(key()),
        provider_key(providers),
        select(all_kinds()),
        date(),
        proptest::option::of(date()),
        proptest::collection::vec(
            (date(), proptest::option::of(date()), select(states()))
                .prop_map(|(start, end, state)| StatePeriod { start, end, state }),
            0..3,
        ),
        proptest::collection::vec(
            (
                date(),
                proptest::option::of(date()),
                proptest::option::of(key()),
                // Real koulutuskoodi values: VIRTA's enumeration is not embedded in the writer.
                proptest::option::of(
                    select(vec!["201101", "301101", "651102", "671201", "772101"])
                        .prop_map(str::to_owned),
                ),
                proptest::option::of(select(vec!["091", "853"]).prop_map(str::to_owned)),
                proptest::option::of(language_code()),
                proptest::collection::vec(localized(), 0..3),
            )
                .prop_map(
                    |(start, end, module_code, education_code, municipality, language, names)| {
                        ProgrammePeriod {
                            start,
                            end,
                            module_code,
                            education_code,
                            municipality,
                            language,
                            names,
                        }
                    },
                ),
            0..2,
        ),
        proptest::collection::vec(credits(), 0..2),
    )
        .prop_map(
            |(key, provider, kind, start, end, states, programmes, extent)| StudyRight {
                key,
                provider,
                kind,
                start,
                end,
                states,
                programmes,
                extent,
            },
        )
}

pub fn achievement(providers: usize) -> impl Strategy<Value = Achievement> {
    (
        select(vec![
            AchievementKind::Degree,
            AchievementKind::Module,
            AchievementKind::Course,
            AchievementKind::Class,
        ]),
        // A code, and the code list it belongs to (only with a code).
        (proptest::option::of(key()), proptest::option::of(key())),
        proptest::collection::vec(localized(), 0..3),
        proptest::option::of(date()),
        proptest::option::of(select(vec![
            AchievementStatus::Passed,
            AchievementStatus::Failed,
            AchievementStatus::InProgress,
        ])),
        proptest::option::of(grade()),
        proptest::collection::vec(credits(), 0..3),
        provider_key(providers),
        proptest::option::of(language_code()),
        proptest::option::of(date()),
        proptest::option::of(key()),
    )
        .prop_map(
            |(
                kind,
                (code, scheme),
                names,
                date,
                status,
                grade,
                credits,
                provider,
                language,
                recognized_on,
                study_right,
            )| {
                Achievement {
                    key: None,
                    kind,
                    code_scheme: code.as_ref().and(scheme),
                    code,
                    names,
                    date,
                    status,
                    grade,
                    credits,
                    provider,
                    language,
                    recognized_on,
                    parts: Vec::new(),
                    study_right,
                }
            },
        )
}

pub fn mobility(providers: usize) -> impl Strategy<Value = MobilityPeriod> {
    (
        proptest::option::of(key()),
        provider_key(providers),
        date(),
        proptest::option::of(date()),
        select(vec![
            MobilityDirection::Outgoing,
            MobilityDirection::Incoming,
        ]),
        proptest::option::of(country()),
        proptest::option::of(select(vec![
            MobilityKind::StudentExchange,
            MobilityKind::Internship,
        ])),
        proptest::option::of(select(vec![
            MobilityProgramme::ErasmusPlus,
            MobilityProgramme::Nordic,
            MobilityProgramme::Unknown,
        ])),
        proptest::option::of(key()),
    )
        .prop_map(
            |(key, provider, start, end, direction, country, kind, programme, study_right)| {
                MobilityPeriod {
                    key,
                    provider,
                    start,
                    end,
                    direction,
                    country,
                    kind,
                    programme,
                    study_right,
                }
            },
        )
}

pub fn registration(providers: usize) -> impl Strategy<Value = TermRegistration> {
    (
        provider_key(providers),
        select(vec![
            RegistrationState::Present,
            RegistrationState::Absent,
            RegistrationState::AbsentNotCounted,
            RegistrationState::Missing,
        ]),
        proptest::option::of(date()),
        date(),
        proptest::option::of(date()),
        proptest::option::of(key()),
    )
        .prop_map(
            |(provider, state, registered_on, start, end, study_right)| TermRegistration {
                provider,
                state,
                registered_on,
                start,
                end,
                study_right,
            },
        )
}

pub fn support(providers: usize) -> impl Strategy<Value = SupportDecision> {
    (
        proptest::option::of(key()),
        select(vec![
            SupportKind::Tehostettu,
            SupportKind::Erityinen,
            SupportKind::PidennettyOppivelvollisuus,
            SupportKind::YksilollisetTukitoimet,
        ]),
        proptest::option::of(date()),
        date(),
        proptest::option::of(date()),
        proptest::option::of(provider_key(providers)),
        proptest::collection::vec("[A-Z]{2}[0-9]?", 0..3),
    )
        .prop_map(
            |(key, kind, decided_on, start, end, provider, individualised_subjects)| {
                SupportDecision {
                    key,
                    kind,
                    decided_on,
                    start,
                    end,
                    provider,
                    individualised_subjects,
                }
            },
        )
}

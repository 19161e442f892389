//! Code tables: how each model enumeration is spelled in siirto-v1, VIRTA and ELMO.
//!
//! Owns: one [`CodeTable`] per enumerated field (sex, study-right kind and state, term
//! registration state, mobility direction/kind/programme, achievement kind and status,
//! support kind, contact kind), the grading scales ([`SCALES`]) and credit units ([`UNITS`]).
//! Readers and writers look values up here instead of matching on codes, and
//! `docs/mappings.md` documents these same tables. Data and lookups only; no IO.
//!
//! A row says how a format writes the value and whether that spelling is *exact*. A lossy
//! spelling (VIRTA has no "temporarily interrupted" state, so it is written as "passivated") is
//! used only when writing and is reported as a translation; reading takes exact rows first,
//! then rows that list the code in `virta_also` (also reported).

use crate::record::{
    AchievementKind, AchievementStatus, ContactKind, Gender, KnownScale, KnownUnit,
    MobilityDirection, MobilityKind, MobilityProgramme, RegistrationState, StudyRightKind,
    StudyRightState, SupportKind,
};

/// How one model value is spelled in each format.
#[derive(Debug)]
pub struct CodeRow<T: 'static> {
    pub value: T,
    /// The siirto-v1 token (the same as the model's serde name).
    pub siirto: &'static str,
    /// The VIRTA code written for the value; `None` when VIRTA cannot express it.
    pub virta: Option<&'static str>,
    /// Whether `virta` means exactly this value.
    pub virta_exact: bool,
    /// Further VIRTA codes read as this value, lossily.
    pub virta_also: &'static [&'static str],
    /// The ELMO spelling; `None` when ELMO cannot express it.
    pub elmo: Option<&'static str>,
    pub elmo_exact: bool,
    /// Finnish and English names, for documentation and ELMO descriptions.
    pub fi: &'static str,
    pub en: &'static str,
}

const fn row<T>(value: T, siirto: &'static str, fi: &'static str, en: &'static str) -> CodeRow<T> {
    CodeRow {
        value,
        siirto,
        virta: None,
        virta_exact: false,
        virta_also: &[],
        elmo: None,
        elmo_exact: false,
        fi,
        en,
    }
}

impl<T> CodeRow<T> {
    const fn virta(mut self, code: &'static str) -> Self {
        self.virta = Some(code);
        self.virta_exact = true;
        self
    }
    const fn virta_lossy(mut self, code: &'static str) -> Self {
        self.virta = Some(code);
        self.virta_exact = false;
        self
    }
    const fn virta_also(mut self, codes: &'static [&'static str]) -> Self {
        self.virta_also = codes;
        self
    }
    const fn elmo(mut self, code: &'static str) -> Self {
        self.elmo = Some(code);
        self.elmo_exact = true;
        self
    }
}

/// A named code table.
#[derive(Debug)]
pub struct CodeTable<T: 'static> {
    /// What the table translates, as the report names it (`virta:OpiskeluoikeusTila`).
    pub name: &'static str,
    pub rows: &'static [CodeRow<T>],
}

/// A value read from a format: the model value and whether the reading was exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lookup<V> {
    pub value: V,
    pub exact: bool,
}

impl<T: Copy + PartialEq + 'static> CodeTable<T> {
    pub fn row(&self, value: T) -> Option<&'static CodeRow<T>> {
        self.rows.iter().find(|r| r.value == value)
    }

    pub fn siirto_token(&self, value: T) -> Option<&'static str> {
        self.row(value).map(|r| r.siirto)
    }

    pub fn from_siirto(&self, token: &str) -> Option<T> {
        self.rows
            .iter()
            .find(|r| r.siirto == token)
            .map(|r| r.value)
    }

    pub fn from_virta(&self, code: &str) -> Option<Lookup<T>> {
        self.rows
            .iter()
            .find(|r| r.virta == Some(code) && r.virta_exact)
            .map(|r| Lookup {
                value: r.value,
                exact: true,
            })
            .or_else(|| {
                self.rows
                    .iter()
                    .find(|r| r.virta_also.contains(&code))
                    .map(|r| Lookup {
                        value: r.value,
                        exact: false,
                    })
            })
    }

    pub fn to_virta(&self, value: T) -> Option<Lookup<&'static str>> {
        let r = self.row(value)?;
        r.virta.map(|code| Lookup {
            value: code,
            exact: r.virta_exact,
        })
    }

    pub fn from_elmo(&self, code: &str) -> Option<Lookup<T>> {
        self.rows
            .iter()
            .find(|r| r.elmo == Some(code) && r.elmo_exact)
            .map(|r| Lookup {
                value: r.value,
                exact: true,
            })
    }

    pub fn to_elmo(&self, value: T) -> Option<Lookup<&'static str>> {
        let r = self.row(value)?;
        r.elmo.map(|code| Lookup {
            value: code,
            exact: r.elmo_exact,
        })
    }
}

pub static GENDERS: CodeTable<Gender> = CodeTable {
    name: "Sukupuoli / ISO 5218",
    rows: &[
        row(Gender::Unknown, "unknown", "tuntematon", "not known")
            .virta("9")
            .elmo("0"),
        row(Gender::Male, "male", "mies", "male")
            .virta("1")
            .elmo("1"),
        row(Gender::Female, "female", "nainen", "female")
            .virta("2")
            .elmo("2"),
        row(
            Gender::NotApplicable,
            "not-applicable",
            "ei sovellettavissa",
            "not applicable",
        )
        .virta_lossy("9")
        .elmo("9"),
    ],
};

pub static STUDY_RIGHT_KINDS: CodeTable<StudyRightKind> = CodeTable {
    name: "OpiskeluoikeusTyyppi",
    rows: &[
        row(
            StudyRightKind::PrePrimary,
            "pre-primary",
            "esiopetus",
            "pre-primary education",
        ),
        row(
            StudyRightKind::Basic,
            "basic",
            "perusopetus",
            "basic education",
        ),
        row(
            StudyRightKind::BasicAdditional,
            "basic-additional",
            "perusopetuksen lisäopetus",
            "additional basic education",
        ),
        row(
            StudyRightKind::BasicPreparatory,
            "basic-preparatory",
            "perusopetukseen valmistava opetus",
            "preparatory instruction for basic education",
        ),
        row(
            StudyRightKind::AdultBasic,
            "adult-basic",
            "aikuisten perusopetus",
            "basic education for adults",
        ),
        row(
            StudyRightKind::UpperSecondary,
            "upper-secondary",
            "lukiokoulutus",
            "general upper-secondary education",
        ),
        row(
            StudyRightKind::Tuva,
            "tuva",
            "tutkintokoulutukseen valmentava koulutus",
            "preparatory education for an upper-secondary qualification",
        ),
        row(
            StudyRightKind::Vocational,
            "vocational",
            "ammatillinen koulutus",
            "vocational education and training",
        ),
        row(
            StudyRightKind::UasDegree,
            "uas-degree",
            "ammattikorkeakoulututkinto",
            "university of applied sciences degree",
        )
        .virta("1"),
        row(
            StudyRightKind::BachelorDegree,
            "bachelor-degree",
            "alempi korkeakoulututkinto",
            "bachelor's degree",
        )
        .virta("2"),
        row(
            StudyRightKind::UasMasterDegree,
            "uas-master-degree",
            "ylempi ammattikorkeakoulututkinto",
            "university of applied sciences master's degree",
        )
        .virta("3"),
        row(
            StudyRightKind::MasterDegree,
            "master-degree",
            "ylempi korkeakoulututkinto",
            "master's degree",
        )
        .virta("4"),
        row(
            StudyRightKind::MedicalSpecialist,
            "medical-specialist",
            "erikoislääkäri- ja erikoishammaslääkärikoulutus",
            "medical or dental specialist training",
        )
        .virta("5"),
        row(
            StudyRightKind::Licentiate,
            "licentiate",
            "lisensiaatintutkinto",
            "licentiate degree",
        )
        .virta("6"),
        row(
            StudyRightKind::Doctorate,
            "doctorate",
            "tohtorintutkinto",
            "doctoral degree",
        )
        .virta("7"),
        row(
            StudyRightKind::DomesticMobility,
            "domestic-mobility",
            "kotimainen opiskelijaliikkuvuus",
            "domestic student mobility",
        )
        .virta("8"),
        row(
            StudyRightKind::InternationalExchange,
            "international-exchange",
            "kansainvälinen vaihto",
            "international exchange",
        )
        .virta("9"),
        row(
            StudyRightKind::ContinuingEducation,
            "continuing-education",
            "täydennyskoulutus",
            "continuing education",
        )
        .virta("10"),
        row(
            StudyRightKind::QualificationTraining,
            "qualification-training",
            "pätevöitymiskoulutus",
            "qualification training",
        )
        .virta("11"),
        row(
            StudyRightKind::SpecialisationStudies,
            "specialisation-studies",
            "erikoistumisopinnot",
            "specialisation studies",
        )
        .virta("12"),
        row(
            StudyRightKind::OpenStudies,
            "open-studies",
            "avoimen opinnot",
            "open university studies",
        )
        .virta("13"),
        row(
            StudyRightKind::SeparateTeacherStudies,
            "separate-teacher-studies",
            "erilliset opettajankoulutuksen opinnot",
            "separate teacher education studies",
        )
        .virta("14"),
        row(
            StudyRightKind::VocationalTeacherEducation,
            "vocational-teacher-education",
            "ammatillinen opettajankoulutus",
            "vocational teacher education",
        )
        .virta("15"),
        row(
            StudyRightKind::ApprenticeshipType,
            "apprenticeship-type",
            "oppisopimustyyppinen koulutus",
            "apprenticeship-type education",
        )
        .virta("16"),
        row(
            StudyRightKind::PreparatoryEducation,
            "preparatory-education",
            "valmentava koulutus",
            "preparatory education",
        )
        .virta("17"),
        row(
            StudyRightKind::NonDegreeRight,
            "non-degree-right",
            "erillisoikeus",
            "non-degree study right",
        )
        .virta("18"),
        row(
            StudyRightKind::SpecialisationEducation,
            "specialisation-education",
            "erikoistumiskoulutus",
            "specialisation education",
        )
        .virta("19"),
        row(
            StudyRightKind::NonHeiCooperation,
            "non-hei-cooperation",
            "opiskeluyhteistyö muun kuin korkeakoulun kanssa",
            "study cooperation with a non-higher-education institution",
        )
        .virta("20"),
    ],
};

pub static STUDY_RIGHT_STATES: CodeTable<StudyRightState> = CodeTable {
    name: "OpiskeluoikeusTila",
    rows: &[
        row(StudyRightState::Active, "active", "aktiivinen", "active").virta("1"),
        row(StudyRightState::Optio, "optio", "optio", "option").virta("2"),
        row(
            StudyRightState::Graduated,
            "graduated",
            "valmistunut",
            "graduated",
        )
        .virta("3"),
        row(
            StudyRightState::Passivated,
            "passivated",
            "passivoitu",
            "passivated",
        )
        .virta("4"),
        row(StudyRightState::Ended, "ended", "päättynyt", "ended").virta("5"),
        row(
            StudyRightState::TimeLimitExpired,
            "time-limit-expired",
            "määräaika päättynyt",
            "time limit expired",
        )
        .virta("6"),
        row(
            StudyRightState::EndedOneStudyRightRule,
            "ended-one-study-right-rule",
            "päättynyt yhden opiskeluoikeuden säännöksen johdosta",
            "ended by the one-study-right rule",
        )
        .virta("7"),
        row(
            StudyRightState::Interrupted,
            "interrupted",
            "väliaikaisesti keskeytynyt",
            "temporarily interrupted",
        )
        .virta_lossy("4"),
    ],
};

pub static REGISTRATION_STATES: CodeTable<RegistrationState> = CodeTable {
    name: "LukukausiIlmoittautuminenTila",
    rows: &[
        row(RegistrationState::Present, "present", "läsnä", "present").virta("1"),
        row(RegistrationState::Absent, "absent", "poissa", "absent").virta("2"),
        row(
            RegistrationState::AbsentNotCounted,
            "absent-not-counted",
            "poissa, ei kuluta opintoaikaa",
            "absent, not counted towards the study time",
        )
        .virta("3"),
        row(RegistrationState::Missing, "missing", "puuttuu", "missing").virta("4"),
    ],
};

pub static MOBILITY_DIRECTIONS: CodeTable<MobilityDirection> = CodeTable {
    name: "LiikkuvuusSuunta",
    rows: &[
        row(
            MobilityDirection::Outgoing,
            "outgoing",
            "lähtevä",
            "outgoing",
        )
        .virta("1"),
        row(
            MobilityDirection::Incoming,
            "incoming",
            "saapuva",
            "incoming",
        )
        .virta("2"),
    ],
};

pub static MOBILITY_KINDS: CodeTable<MobilityKind> = CodeTable {
    name: "LiikkuvuusTyyppi",
    rows: &[
        row(
            MobilityKind::StudentExchange,
            "student-exchange",
            "opiskelijavaihto",
            "student exchange",
        )
        .virta("1"),
        row(
            MobilityKind::Internship,
            "internship",
            "kansainvälinen harjoittelu",
            "international internship",
        )
        .virta("2"),
    ],
};

pub static MOBILITY_PROGRAMMES: CodeTable<MobilityProgramme> = CodeTable {
    name: "Liikkuvuusohjelma",
    rows: &[
        row(
            MobilityProgramme::ErasmusPlus,
            "erasmus-plus",
            "Erasmus+",
            "Erasmus+",
        )
        .virta("101"),
        row(
            MobilityProgramme::OtherEu,
            "other-eu",
            "muu EU-ohjelma",
            "other EU programme",
        )
        .virta("102"),
        row(
            MobilityProgramme::Nordic,
            "nordic",
            "Pohjoismaiden ministerineuvoston ohjelma",
            "Nordic Council of Ministers programme",
        )
        .virta("103"),
        row(
            MobilityProgramme::OtherInternational,
            "other-international",
            "muu kansainvälinen ohjelma",
            "other international programme",
        )
        .virta("104"),
        row(
            MobilityProgramme::National,
            "national",
            "kansallinen ohjelma",
            "national programme",
        )
        .virta("105"),
        row(
            MobilityProgramme::InstitutionAgreement,
            "institution-agreement",
            "korkeakoulun oma sopimus",
            "the institution's own agreement",
        )
        .virta("106"),
        row(
            MobilityProgramme::OwnArrangement,
            "own-arrangement",
            "opiskelijan oma järjestely",
            "the student's own arrangement",
        )
        .virta("107"),
        row(MobilityProgramme::Other, "other", "muu", "other").virta("108"),
        row(
            MobilityProgramme::Unknown,
            "unknown",
            "tuntematon",
            "unknown",
        )
        .virta("999"),
    ],
};

pub static ACHIEVEMENT_KINDS: CodeTable<AchievementKind> = CodeTable {
    name: "OpintosuoritusLaji / ELMO learningOpportunitySpecification type",
    rows: &[
        row(
            AchievementKind::Degree,
            "degree",
            "tutkinto tai oppimäärä",
            "degree or completed syllabus",
        )
        .virta("1")
        .elmo("Degree Programme"),
        row(
            AchievementKind::Module,
            "module",
            "opintokokonaisuus",
            "module",
        )
        .virta_lossy("2")
        .elmo("Module"),
        row(
            AchievementKind::Course,
            "course",
            "opintojakso tai oppiaine",
            "course or subject",
        )
        .virta("2")
        .virta_also(&["3", "4"])
        .elmo("Course"),
        row(AchievementKind::Class, "class", "osasuoritus", "class")
            .virta_lossy("2")
            .elmo("Class"),
    ],
};

pub static ACHIEVEMENT_STATUSES: CodeTable<AchievementStatus> = CodeTable {
    name: "ELMO learningOpportunityInstance status",
    rows: &[
        row(AchievementStatus::Passed, "passed", "hyväksytty", "passed").elmo("passed"),
        row(AchievementStatus::Failed, "failed", "hylätty", "failed").elmo("failed"),
        row(
            AchievementStatus::InProgress,
            "in-progress",
            "kesken",
            "in progress",
        )
        .elmo("in-progress"),
    ],
};

pub static SUPPORT_KINDS: CodeTable<SupportKind> = CodeTable {
    name: "tuen muoto",
    rows: &[
        row(
            SupportKind::Tehostettu,
            "tehostettu",
            "tehostettu tuki",
            "intensified support",
        ),
        row(
            SupportKind::Erityinen,
            "erityinen",
            "erityinen tuki",
            "special support",
        ),
        row(
            SupportKind::PidennettyOppivelvollisuus,
            "pidennetty-oppivelvollisuus",
            "pidennetty oppivelvollisuus",
            "extended compulsory education",
        ),
        row(
            SupportKind::YksilollisetTukitoimet,
            "yksilolliset-tukitoimet",
            "yksilölliset tukitoimet",
            "individual support measures",
        ),
    ],
};

pub static CONTACT_KINDS: CodeTable<ContactKind> = CodeTable {
    name: "contact kind",
    rows: &[
        row(ContactKind::Email, "email", "sähköposti", "e-mail"),
        row(ContactKind::Phone, "phone", "puhelin", "telephone"),
    ],
};

// ---------------------------------------------------------------------------------------------
// Grading scales
// ---------------------------------------------------------------------------------------------

/// A grading scale: its values and how each format names it.
#[derive(Debug)]
pub struct ScaleRow {
    pub scale: KnownScale,
    /// siirto-v1 element name under `grade`; also the ELMO `gradingScheme/@localId` and the
    /// VIRTA `Muu/Asteikko/@avain` when VIRTA has no element for the scale.
    pub siirto: &'static str,
    /// The VIRTA `Arvosana` child element, when VIRTA has one for this scale.
    pub virta: Option<&'static str>,
    /// Every value, best last for graded scales.
    pub values: &'static [&'static str],
    /// Values that mean the achievement was not passed.
    pub failing: &'static [&'static str],
    pub fi: &'static str,
    pub en: &'static str,
}

pub static SCALES: &[ScaleRow] = &[
    ScaleRow {
        scale: KnownScale::FourToTen,
        siirto: "asteikko-4-10",
        virta: None,
        values: &["4", "5", "6", "7", "8", "9", "10"],
        failing: &["4"],
        fi: "Perusopetuksen ja lukion arvosana-asteikko 4-10 (4 hylätty, 5 välttävä ... 10 erinomainen)",
        en: "Finnish basic and upper-secondary education scale 4-10 (4 fail, 5 adequate ... 10 excellent)",
    },
    ScaleRow {
        scale: KnownScale::PassFail,
        siirto: "hyvaksytty-hylatty",
        virta: None,
        values: &["S", "H"],
        failing: &["H"],
        fi: "Suoritusmerkintä: S hyväksytty, H hylätty",
        en: "Finnish pass/fail mark: S passed, H failed",
    },
    ScaleRow {
        scale: KnownScale::Viisiportainen,
        siirto: "viisiportainen",
        virta: Some("Viisiportainen"),
        values: &["HYV", "1", "2", "3", "4", "5"],
        failing: &[],
        fi: "Korkeakoulujen viisiportainen asteikko 1-5 (5 erinomainen) sekä HYV hyväksytty",
        en: "Finnish higher-education scale 1-5 (1 sufficient ... 5 excellent), HYV pass",
    },
    ScaleRow {
        scale: KnownScale::ToinenKotimainen,
        siirto: "toinen-kotimainen",
        virta: Some("ToinenKotimainen"),
        values: &["TT", "HT"],
        failing: &[],
        fi: "Toisen kotimaisen kielen taito: TT tyydyttävät tiedot, HT hyvät tiedot",
        en: "Second national language proficiency: TT satisfactory, HT good",
    },
    ScaleRow {
        scale: KnownScale::Hyvaksytty,
        siirto: "hyvaksytty",
        virta: Some("Hyvaksytty"),
        values: &["HYV"],
        failing: &[],
        fi: "Hyväksytty (HYV)",
        en: "Pass (HYV)",
    },
    ScaleRow {
        scale: KnownScale::Naytetyo,
        siirto: "naytetyo",
        virta: Some("Naytetyo"),
        values: &["HYV", "KH"],
        failing: &[],
        fi: "Näytetyö: HYV hyväksytty, KH kiittäen hyväksytty",
        en: "Demonstration: HYV pass, KH pass with distinction",
    },
    ScaleRow {
        scale: KnownScale::Tutkielma,
        siirto: "tutkielma",
        virta: Some("Tutkielma"),
        values: &["I", "A", "B", "N", "C", "M", "E", "L"],
        failing: &["I"],
        fi: "Tutkielma: I improbatur, A approbatur, B lubenter, N non sine laude, C cum laude, M magna cum laude, E eximia cum laude, L laudatur",
        en: "Thesis scale improbatur (fail) ... laudatur",
    },
];

/// VIRTA's `EiKaytossa` ("no grade in use") value: the model has no grade.
pub const VIRTA_NO_GRADE: &str = "Arvosana ei kaytossa";

pub fn scale_row(scale: KnownScale) -> Option<&'static ScaleRow> {
    SCALES.iter().find(|r| r.scale == scale)
}

pub fn scale_by_siirto(token: &str) -> Option<&'static ScaleRow> {
    SCALES.iter().find(|r| r.siirto == token)
}

pub fn scale_by_virta(element: &str) -> Option<&'static ScaleRow> {
    SCALES.iter().find(|r| r.virta == Some(element))
}

// ---------------------------------------------------------------------------------------------
// Credit units
// ---------------------------------------------------------------------------------------------

/// A credit unit and how each format names it.
#[derive(Debug)]
pub struct UnitRow {
    pub unit: KnownUnit,
    /// siirto-v1 `credits/@unit`.
    pub siirto: &'static str,
    /// VIRTA `Laajuus` child element.
    pub virta: Option<&'static str>,
    /// ELMO `credit/scheme` (matched case-insensitively when reading).
    pub elmo: &'static str,
    pub fi: &'static str,
    pub en: &'static str,
}

pub static UNITS: &[UnitRow] = &[
    UnitRow {
        unit: KnownUnit::Opintopiste,
        siirto: "op",
        virta: Some("Opintopiste"),
        elmo: "ects",
        fi: "opintopiste",
        en: "ECTS credit",
    },
    UnitRow {
        unit: KnownUnit::Opintoviikko,
        siirto: "ov",
        virta: Some("Opintoviikko"),
        elmo: "fi-opintoviikko",
        fi: "opintoviikko",
        en: "Finnish study week (pre-2005)",
    },
    UnitRow {
        unit: KnownUnit::Kurssi,
        siirto: "kurssi",
        virta: None,
        elmo: "fi-kurssi",
        fi: "kurssi",
        en: "Finnish upper-secondary course (pre-2021)",
    },
    UnitRow {
        unit: KnownUnit::Vuosiviikkotunti,
        siirto: "vvt",
        virta: None,
        elmo: "fi-vuosiviikkotunti",
        fi: "vuosiviikkotunti",
        en: "annual weekly lessons",
    },
    UnitRow {
        unit: KnownUnit::Osaamispiste,
        siirto: "osp",
        virta: None,
        elmo: "fi-osaamispiste",
        fi: "osaamispiste",
        en: "Finnish vocational competence point",
    },
];

/// Prefix siirto-v1 puts before a credit scheme it does not know (`x-` + ELMO scheme).
pub const SIIRTO_FOREIGN_UNIT_PREFIX: &str = "x-";

pub fn unit_row(unit: KnownUnit) -> Option<&'static UnitRow> {
    UNITS.iter().find(|r| r.unit == unit)
}

pub fn unit_by_siirto(token: &str) -> Option<&'static UnitRow> {
    UNITS.iter().find(|r| r.siirto == token)
}

pub fn unit_by_elmo(scheme: &str) -> Option<&'static UnitRow> {
    UNITS.iter().find(|r| r.elmo.eq_ignore_ascii_case(scheme))
}

pub fn unit_by_virta(element: &str) -> Option<&'static UnitRow> {
    UNITS.iter().find(|r| r.virta == Some(element))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing unwrap is a failing test
mod tests {
    use super::*;
    use serde::Serialize;
    use std::collections::BTreeSet;
    use std::fmt::Debug;

    /// Every row's siirto token is the model value's serde name, tokens are unique, and exact
    /// VIRTA and ELMO spellings read back to the same value.
    fn check<T: Copy + PartialEq + Debug + Serialize + 'static>(table: &CodeTable<T>, all: &[T]) {
        for v in all {
            let row = table
                .row(*v)
                .unwrap_or_else(|| panic!("{}: no row for {v:?}", table.name));
            assert_eq!(
                serde_json::to_value(v).unwrap(),
                serde_json::Value::String(row.siirto.to_owned()),
                "{}",
                table.name
            );
            assert_eq!(table.from_siirto(row.siirto), Some(*v));
            if let Some(l) = table.to_virta(*v) {
                if l.exact {
                    assert_eq!(table.from_virta(l.value).map(|l| l.value), Some(*v));
                } else {
                    assert_ne!(table.from_virta(l.value).map(|l| l.value), Some(*v));
                }
            }
            if let Some(l) = table.to_elmo(*v) {
                assert_eq!(table.from_elmo(l.value).map(|l| l.value), Some(*v));
            }
        }
        let tokens: BTreeSet<_> = table.rows.iter().map(|r| r.siirto).collect();
        assert_eq!(tokens.len(), table.rows.len(), "{}", table.name);
        assert_eq!(table.rows.len(), all.len(), "{}", table.name);
    }

    #[test]
    fn tables_are_complete_and_consistent() {
        use AchievementKind as A;
        use MobilityProgramme as P;
        use StudyRightKind as K;
        use StudyRightState as S;
        check(
            &GENDERS,
            &[
                Gender::Unknown,
                Gender::Male,
                Gender::Female,
                Gender::NotApplicable,
            ],
        );
        check(
            &STUDY_RIGHT_KINDS,
            &[
                K::PrePrimary,
                K::Basic,
                K::BasicAdditional,
                K::BasicPreparatory,
                K::AdultBasic,
                K::UpperSecondary,
                K::Tuva,
                K::Vocational,
                K::UasDegree,
                K::BachelorDegree,
                K::UasMasterDegree,
                K::MasterDegree,
                K::MedicalSpecialist,
                K::Licentiate,
                K::Doctorate,
                K::DomesticMobility,
                K::InternationalExchange,
                K::ContinuingEducation,
                K::QualificationTraining,
                K::SpecialisationStudies,
                K::OpenStudies,
                K::SeparateTeacherStudies,
                K::VocationalTeacherEducation,
                K::ApprenticeshipType,
                K::PreparatoryEducation,
                K::NonDegreeRight,
                K::SpecialisationEducation,
                K::NonHeiCooperation,
            ],
        );
        check(
            &STUDY_RIGHT_STATES,
            &[
                S::Active,
                S::Optio,
                S::Graduated,
                S::Passivated,
                S::Ended,
                S::TimeLimitExpired,
                S::EndedOneStudyRightRule,
                S::Interrupted,
            ],
        );
        check(
            &REGISTRATION_STATES,
            &[
                RegistrationState::Present,
                RegistrationState::Absent,
                RegistrationState::AbsentNotCounted,
                RegistrationState::Missing,
            ],
        );
        check(
            &MOBILITY_DIRECTIONS,
            &[MobilityDirection::Outgoing, MobilityDirection::Incoming],
        );
        check(
            &MOBILITY_KINDS,
            &[MobilityKind::StudentExchange, MobilityKind::Internship],
        );
        check(
            &MOBILITY_PROGRAMMES,
            &[
                P::ErasmusPlus,
                P::OtherEu,
                P::Nordic,
                P::OtherInternational,
                P::National,
                P::InstitutionAgreement,
                P::OwnArrangement,
                P::Other,
                P::Unknown,
            ],
        );
        check(
            &ACHIEVEMENT_KINDS,
            &[A::Degree, A::Module, A::Course, A::Class],
        );
        check(
            &ACHIEVEMENT_STATUSES,
            &[
                AchievementStatus::Passed,
                AchievementStatus::Failed,
                AchievementStatus::InProgress,
            ],
        );
        check(
            &SUPPORT_KINDS,
            &[
                SupportKind::Tehostettu,
                SupportKind::Erityinen,
                SupportKind::PidennettyOppivelvollisuus,
                SupportKind::YksilollisetTukitoimet,
            ],
        );
        check(&CONTACT_KINDS, &[ContactKind::Email, ContactKind::Phone]);
    }

    #[test]
    fn lossy_readings_are_flagged() {
        let read = STUDY_RIGHT_STATES.from_virta("4").unwrap();
        assert_eq!(read.value, StudyRightState::Passivated);
        assert!(read.exact);
        let written = STUDY_RIGHT_STATES
            .to_virta(StudyRightState::Interrupted)
            .unwrap();
        assert_eq!(written.value, "4");
        assert!(!written.exact);
        let laji3 = ACHIEVEMENT_KINDS.from_virta("3").unwrap();
        assert_eq!(laji3.value, AchievementKind::Course);
        assert!(!laji3.exact);
        assert_eq!(GENDERS.from_virta("9").unwrap().value, Gender::Unknown);
        assert_eq!(GENDERS.to_elmo(Gender::Unknown).unwrap().value, "0");
        assert_eq!(STUDY_RIGHT_KINDS.to_virta(StudyRightKind::Basic), None);
    }

    #[test]
    fn scales_and_units_are_complete() {
        use KnownScale as S;
        for scale in [
            S::FourToTen,
            S::PassFail,
            S::Viisiportainen,
            S::ToinenKotimainen,
            S::Hyvaksytty,
            S::Naytetyo,
            S::Tutkielma,
        ] {
            let row = scale_row(scale).unwrap();
            assert_eq!(
                serde_json::to_value(scale).unwrap(),
                serde_json::Value::String(row.siirto.to_owned())
            );
            assert_eq!(scale_by_siirto(row.siirto).unwrap().scale, scale);
            assert!(row.failing.iter().all(|f| row.values.contains(f)));
            if let Some(v) = row.virta {
                assert_eq!(scale_by_virta(v).unwrap().scale, scale);
            }
        }
        use KnownUnit as U;
        for unit in [
            U::Opintopiste,
            U::Opintoviikko,
            U::Kurssi,
            U::Vuosiviikkotunti,
            U::Osaamispiste,
        ] {
            let row = unit_row(unit).unwrap();
            assert_eq!(unit_by_siirto(row.siirto).unwrap().unit, unit);
            assert_eq!(unit_by_elmo(&row.elmo.to_uppercase()).unwrap().unit, unit);
        }
    }

    use crate::formats::mapping_doc::{cells, section as doc_section};

    /// Every row of a code table appears in its section of docs/mappings.md with the same
    /// VIRTA and ELMO spellings.
    fn documented<T>(table: &CodeTable<T>, heading: &str) {
        let section = doc_section(heading);
        assert!(
            !section.is_empty(),
            "docs/mappings.md has no section {heading}"
        );
        for row in table.rows {
            let token = format!("`{}`", row.siirto);
            let line = section
                .iter()
                .find(|l| cells(l).first() == Some(&token))
                .unwrap_or_else(|| panic!("{heading}: no row for {token}"));
            let c = cells(line);
            match row.virta {
                Some(code) => {
                    assert!(c[1].starts_with(code), "{heading} {token}: VIRTA {}", c[1]);
                    assert_eq!(
                        c[1].starts_with(&format!("{code} (≈)")),
                        !row.virta_exact,
                        "{heading} {token}"
                    );
                    for also in row.virta_also {
                        assert!(c[1].contains(also), "{heading} {token}: reads {also}");
                    }
                }
                None => assert!(c[1] == "—" || c[1] == "implied", "{heading} {token}"),
            }
            assert_eq!(c[2], row.elmo.unwrap_or("—"), "{heading} {token}: ELMO");
            assert_eq!(c[3], row.fi, "{heading} {token}: fi");
        }
    }

    #[test]
    fn the_mapping_document_matches_the_tables() {
        documented(&GENDERS, "Sex");
        documented(&STUDY_RIGHT_KINDS, "Study-right kind");
        documented(&STUDY_RIGHT_STATES, "Study-right state");
        documented(&REGISTRATION_STATES, "Term registration state");
        documented(&MOBILITY_DIRECTIONS, "Mobility");
        documented(&MOBILITY_KINDS, "Mobility");
        documented(&MOBILITY_PROGRAMMES, "Mobility");
        documented(&ACHIEVEMENT_KINDS, "Achievement kind");
        documented(&ACHIEVEMENT_STATUSES, "Achievement status");
        documented(&SUPPORT_KINDS, "Support kind");
        documented(&CONTACT_KINDS, "Contact kind");
        let grades = doc_section("Grade scales");
        for row in SCALES {
            let token = format!("`{}`", row.siirto);
            let line = grades
                .iter()
                .find(|l| cells(l).first() == Some(&token))
                .unwrap_or_else(|| panic!("grade scales: no row for {token}"));
            let c = cells(line);
            match row.virta {
                Some(v) => assert_eq!(c[1], format!("`{v}`")),
                None => assert!(c[1].contains(row.siirto), "{token}"),
            }
            for v in row.values {
                assert!(c[2].split_whitespace().any(|w| w == *v), "{token}: {v}");
            }
        }
        let units = doc_section("Credit units");
        for row in UNITS {
            let token = format!("`{}`", row.siirto);
            let line = units
                .iter()
                .find(|l| cells(l).first() == Some(&token))
                .unwrap_or_else(|| panic!("credit units: no row for {token}"));
            let c = cells(line);
            assert_eq!(c[1], row.virta.map_or("—".to_owned(), |v| format!("`{v}`")));
            assert_eq!(c[2], format!("`{}`", row.elmo));
            assert_eq!(c[3], row.fi);
        }
    }

    #[test]
    fn virta_codes_are_in_the_official_lists() {
        let Some(corpus) = siirto_testsupport::corpus() else {
            return;
        };
        let path = corpus.join("virta/xsd/koodistot.xsd");
        let xsd =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let enumeration = |type_name: &str| -> BTreeSet<String> {
            let start = xsd
                .rfind(&format!("<xs:simpleType name=\"{type_name}\">"))
                .unwrap();
            let end = start + xsd[start..].find("</xs:simpleType>").unwrap();
            xsd[start..end]
                .split("<xs:enumeration value=\"")
                .skip(1)
                .filter_map(|s| s.split('"').next())
                .map(str::to_owned)
                .collect()
        };
        fn codes<T>(t: &CodeTable<T>) -> BTreeSet<String> {
            t.rows
                .iter()
                .filter_map(|r| r.virta)
                .chain(t.rows.iter().flat_map(|r| r.virta_also.iter().copied()))
                .map(str::to_owned)
                .collect()
        }
        assert_eq!(
            codes(&STUDY_RIGHT_KINDS),
            enumeration("OpiskeluoikeusTyyppiKoodiTyyppi")
        );
        assert_eq!(
            codes(&STUDY_RIGHT_STATES),
            enumeration("OpiskeluoikeusTilaKoodiTyyppi")
        );
        assert_eq!(
            codes(&REGISTRATION_STATES),
            enumeration("LukukausiIlmoittautuminenTilaKoodiTyyppi")
        );
        assert_eq!(
            codes(&MOBILITY_DIRECTIONS),
            enumeration("LiikkuvuusSuuntaKoodiTyyppi")
        );
        assert_eq!(
            codes(&MOBILITY_KINDS),
            enumeration("LiikkuvuusTyyppiKoodiTyyppi")
        );
        assert_eq!(
            codes(&MOBILITY_PROGRAMMES),
            enumeration("LiikkuvuusohjelmaKoodiTyyppi")
        );
        assert_eq!(
            codes(&ACHIEVEMENT_KINDS),
            enumeration("OpintosuoritusLajiKoodiTyyppi")
        );
        for (element, type_name) in [
            ("Viisiportainen", "ArvosanaViisiportainenKoodiTyyppi"),
            ("ToinenKotimainen", "ArvosanaToinenKotimainenKoodiTyyppi"),
            ("Hyvaksytty", "ArvosanaHyvaksyttyKoodiTyyppi"),
            ("Naytetyo", "ArvosanaNaytetyoKoodiTyyppi"),
            ("Tutkielma", "ArvosanaTutkielmaKoodiTyyppi"),
        ] {
            let row = scale_by_virta(element).unwrap();
            let ours: BTreeSet<String> = row.values.iter().map(|v| (*v).to_owned()).collect();
            assert_eq!(ours, enumeration(type_name), "{element}");
        }
        assert_eq!(
            enumeration("ArvosanaEiKaytossaKoodiTyyppi"),
            BTreeSet::from([VIRTA_NO_GRADE.to_owned()])
        );
    }
}

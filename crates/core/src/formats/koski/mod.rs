//! KOSKI's oppija JSON (`koski`): a source format, read into the record, never written.
//!
//! Owns: reading an oppija document (the luovutuspalvelu answer, `{"henkilö", "opiskeluoikeudet"}`)
//! strictly into the typed [`model`] within `[limits.json]` ([`parse`]), mapping it onto the
//! record for exactly one student ([`read`]), the whole of both as one call for a source module
//! ([`read_bytes`]: bytes → record + report), and the KOSKI code tables of docs/mappings.md
//! ("koski → record"). What the record cannot carry is reported, never dropped silently:
//! KOSKI fields the reader knows but the record has no place for go to the report's
//! `not_carried` (`not_read_from_source` in a conversion report), fields the reader does not
//! know at all (KOSKI adds fields over time) to `not_understood`.
//!
//! KOSKI code values keep their code list: an achievement's `koulutusmoduuli.tunniste` becomes
//! its `code` with `code_scheme` = `koodistoUri`; a grade on a scale the record does not know
//! keeps `koodistoUri` as its scheme. Names are kept in fi/sv/en as the document gives them.
//!
//! It does no IO and never logs; errors and reports name paths and code values, never a
//! person's data.

pub mod model;

use crate::formats::json_in::{self, JsonError, JsonLimits};
use crate::formats::{FormatError, ReadReport};
use crate::record::{
    Achievement, AchievementKind, AchievementStatus, CreditUnit, Credits, Date, Decimal, Grade,
    GradeScale, KnownScale, KnownUnit, LocalizedText, ProgrammePeriod, Provider, StatePeriod,
    Student, StudentRecord, StudyRight, StudyRightKind, StudyRightState, SupportDecision,
    SupportKind, TypedId,
};
use crate::student_id::StudentId;
use model::{Arviointi, Koodi, Nimi, Opiskeluoikeus, Oppija, Organisaatio, Suoritus};

/// Prefix of the report's source paths.
const PREFIX: &str = "koski:";

/// Student identifier type of a KOSKI person OID that is not a learner number.
pub const KOSKI_OID_TYPE: &str = "koski-oid";

/// Provider identifier type of an organisation OID (`1.2.246.562.10.…`).
pub const ORGANISATION_OID_TYPE: &str = "organisaatio-oid";

/// Why a KOSKI document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KoskiError {
    /// Over a `[limits.json]` bound, not JSON, or not KOSKI's model: an invalid source document.
    #[error("{code}: {inner}", code = .0.code(), inner = .0)]
    Json(#[from] JsonError),
    /// Read, but not about the student, or missing what the record needs.
    #[error(transparent)]
    Format(#[from] FormatError),
}

// ---------------------------------------------------------------------------------------------
// Code tables (docs/mappings.md, "koski → record")
// ---------------------------------------------------------------------------------------------

/// `opiskeluoikeudentyyppi` → study-right kind. Other types (higher education, the
/// matriculation examination, IB, liberal adult education, …) are not carried.
pub static STUDY_RIGHT_KINDS: &[(&str, StudyRightKind)] = &[
    ("esiopetus", StudyRightKind::PrePrimary),
    ("perusopetus", StudyRightKind::Basic),
    ("ahvenanmaanperusopetus", StudyRightKind::Basic),
    ("perusopetuksenlisaopetus", StudyRightKind::BasicAdditional),
    (
        "perusopetukseenvalmistavaopetus",
        StudyRightKind::BasicPreparatory,
    ),
    ("aikuistenperusopetus", StudyRightKind::AdultBasic),
    ("lukiokoulutus", StudyRightKind::UpperSecondary),
    ("tuva", StudyRightKind::Tuva),
    ("ammatillinenkoulutus", StudyRightKind::Vocational),
];

/// `koskiopiskeluoikeudentila` → study-right state, and whether meaning is lost. `mitatoity`
/// (annulled) is not a state: an annulled study right is not carried at all.
pub static STUDY_RIGHT_STATES: &[(&str, StudyRightState, bool)] = &[
    ("lasna", StudyRightState::Active, false),
    ("loma", StudyRightState::Active, true),
    (
        "valiaikaisestikeskeytynyt",
        StudyRightState::Interrupted,
        false,
    ),
    ("valmistunut", StudyRightState::Graduated, false),
    ("hyvaksytystisuoritettu", StudyRightState::Graduated, true),
    ("eronnut", StudyRightState::Ended, false),
    ("katsotaaneronneeksi", StudyRightState::Ended, true),
    ("paattynyt", StudyRightState::Ended, false),
    ("peruutettu", StudyRightState::Ended, true),
    ("keskeytynyt", StudyRightState::Ended, true),
];

/// The annulled state: the study right is void.
const ANNULLED: &str = "mitatoity";

/// `opintojenlaajuusyksikko` → credit unit. Hours, years and weeks have no unit in the record
/// and are carried under their Finnish name.
pub static CREDIT_UNITS: &[(&str, Option<KnownUnit>, &str)] = &[
    ("1", Some(KnownUnit::Opintoviikko), "opintoviikkoa"),
    ("2", Some(KnownUnit::Opintopiste), "opintopistettä"),
    ("3", Some(KnownUnit::Vuosiviikkotunti), "vuosiviikkotuntia"),
    ("4", Some(KnownUnit::Kurssi), "kurssia"),
    ("5", None, "tuntia"),
    ("6", Some(KnownUnit::Osaamispiste), "osaamispistettä"),
    ("7", None, "vuotta"),
    ("8", None, "viikkoa"),
];

/// A KOSKI grading scale: the record's scale for some of its values, or its own scheme.
pub struct KoskiScale {
    pub koodisto_uri: &'static str,
    /// Values on a scale the record knows.
    pub known: &'static [(&'static str, KnownScale, &'static str)],
    /// Values that mean not passed (for a grade without `hyväksytty`).
    pub failing: &'static [&'static str],
    /// The scale's name, carried with grades kept on KOSKI's own scheme.
    pub name: &'static str,
}

/// KOSKI's grading scales (`arviointiasteikko*`). A grade whose value is not in `known` keeps
/// KOSKI's scale: `muu[@scheme = koodistoUri]` in siirto-v1, a `gradingScheme` of that id in ELMO.
pub static SCALES: &[KoskiScale] = &[
    KoskiScale {
        koodisto_uri: "arviointiasteikkoyleissivistava",
        known: &[
            ("4", KnownScale::FourToTen, "4"),
            ("5", KnownScale::FourToTen, "5"),
            ("6", KnownScale::FourToTen, "6"),
            ("7", KnownScale::FourToTen, "7"),
            ("8", KnownScale::FourToTen, "8"),
            ("9", KnownScale::FourToTen, "9"),
            ("10", KnownScale::FourToTen, "10"),
            ("S", KnownScale::PassFail, "S"),
            ("H", KnownScale::PassFail, "H"),
        ],
        failing: &["4", "H"],
        name: "Yleissivistävän koulutuksen arviointiasteikko (O = osallistunut)",
    },
    KoskiScale {
        koodisto_uri: "arviointiasteikkoammatillinenhyvaksyttyhylatty",
        known: &[
            ("Hyväksytty", KnownScale::PassFail, "S"),
            ("Hylätty", KnownScale::PassFail, "H"),
        ],
        failing: &["Hylätty"],
        name: "Ammatillisen koulutuksen hyväksytty/hylätty",
    },
    KoskiScale {
        koodisto_uri: "arviointiasteikkoammatillinen15",
        known: &[],
        failing: &["Hylätty"],
        name: "Ammatillisen koulutuksen arviointiasteikko 1-5 (1 tyydyttävä ... 5 kiitettävä), Hyväksytty, Hylätty",
    },
    KoskiScale {
        koodisto_uri: "arviointiasteikkoammatillinent1k3",
        known: &[],
        failing: &["0"],
        name: "Ammatillisen koulutuksen arviointiasteikko 1-3 (0 hylätty, 1 tyydyttävä, 2 hyvä, 3 kiitettävä), Hyväksytty",
    },
];

/// `suorituksentyyppi` values of a top-level completion that is a group within a study right
/// (a grade year, the initial stage of adult basic education, a partial vocational
/// qualification: some of a qualification's units), not a syllabus or degree.
const MODULE_TYPES: &[&str] = &[
    "perusopetuksenvuosiluokka",
    "aikuistenperusopetuksenoppimaaranalkuvaihe",
    "ammatillinentutkintoosittainen",
];

/// KOSKI `kieli` codes that are not ISO 639-1, and their language tag.
const LANGUAGE_TAGS: &[(&str, &str)] = &[("VK", "fse"), ("98", "98"), ("99", "99"), ("20", "20")];

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

/// Reads `bytes` into the typed model within `limits`. Members the model does not name are in
/// the report: known KOSKI fields the record does not carry as `not_carried`, unknown ones as
/// `not_understood`.
pub fn parse(bytes: &[u8], limits: &JsonLimits) -> Result<(Oppija, ReadReport), JsonError> {
    let mut report = ReadReport::default();
    let oppija = json_in::parse(bytes, limits, |path| {
        let full = format!("{PREFIX}{path}");
        if model::known_not_carried(&path) {
            report.not_carried(full);
        } else {
            report.not_understood(full);
        }
    })?;
    Ok((oppija, report))
}

/// Bytes in, `subject`'s record and what was not carried out: [`parse`] then [`read`], for a
/// source module and the pipeline.
pub fn read_bytes(
    bytes: &[u8],
    limits: &JsonLimits,
    subject: &StudentId,
) -> Result<(StudentRecord, ReadReport), KoskiError> {
    let (oppija, mut report) = parse(bytes, limits)?;
    let record = read(&oppija, subject, &mut report)?;
    Ok((record, report))
}

/// The student the document is about (`siirto convert` without `--subject`): the
/// henkilötunnus, else the oppijanumero.
pub fn document_subject(oppija: &Oppija) -> Result<StudentId, FormatError> {
    let h = &oppija.henkilo;
    h.hetu
        .as_deref()
        .and_then(|s| StudentId::parse(&super::normalize_henkilotunnus(s)).ok())
        .or_else(|| {
            h.oid
                .as_deref()
                .and_then(|s| StudentId::parse(&super::normalize_learner_id(s)).ok())
        })
        .ok_or_else(|| FormatError::SubjectMismatch {
            reason: "the document names no valid henkilötunnus or learner number".to_owned(),
        })
}

/// Maps the oppija onto the record of `subject`; the person must be `subject`, and a birth date
/// must agree with the henkilötunnus.
pub fn read(
    oppija: &Oppija,
    subject: &StudentId,
    report: &mut ReadReport,
) -> Result<StudentRecord, FormatError> {
    let h = &oppija.henkilo;
    if !super::is_subject(subject, h.hetu.as_deref(), h.oid.as_deref()) {
        return Err(super::mismatch(
            subject,
            usize::from(h.hetu.is_some() || h.oid.is_some()),
        ));
    }
    let student = read_student(h, report)?;
    let mut reader = Reader {
        report,
        record: StudentRecord {
            student,
            turvakielto: h.turvakielto == Some(true),
            ..StudentRecord::default()
        },
    };
    for (i, o) in oppija.opiskeluoikeudet.iter().enumerate() {
        reader.study_right(i, o)?;
    }
    let record = reader.record;
    super::check_birth_date(&record.student)?;
    Ok(record)
}

fn read_student(h: &model::Henkilo, report: &mut ReadReport) -> Result<Student, FormatError> {
    let henkilotunnus = h.hetu.as_deref().map(super::normalize_henkilotunnus);
    let birth_date = match (h.syntymaaika, henkilotunnus.as_deref()) {
        (Some(d), _) => Some(d),
        (None, Some(hetu)) => {
            let derived = crate::student_id::birth_date(hetu)
                .and_then(|(y, m, d)| Date::new(u16::try_from(y).ok()?, m, d).ok());
            if derived.is_some() {
                report.translated(
                    format!("{PREFIX}henkilö.hetu"),
                    "birth date from henkilötunnus",
                    "henkilötunnus",
                    "birth_date",
                    false,
                );
            }
            derived
        }
        (None, None) => None,
    };
    let mother_tongue = match &h.aidinkieli {
        Some(k) => {
            let tag = language_tag(k);
            if tag.is_none() {
                report.not_carried(format!("{PREFIX}henkilö.äidinkieli"));
            }
            tag
        }
        None => None,
    };
    let mut citizenships = Vec::new();
    for k in h.kansalaisuus.iter().flatten() {
        // KOSKI's `maatjavaltiot2` is ISO 3166-1 numeric, as VIRTA's country codes are.
        match crate::formats::codelists::country_from_numeric(&k.koodiarvo) {
            Some((a, _historic)) => citizenships.push(a.to_owned()),
            None => report.not_carried(format!("{PREFIX}henkilö.kansalaisuus[]")),
        }
    }
    // KOSKI also issues test OIDs outside the learner-number arc (`1.2.246.562.98.…`): such an
    // OID is kept as another identifier, not as an oppijanumero.
    let oid = h.oid.as_deref().map(super::normalize_learner_id);
    let (learner_id, other_ids) = match oid {
        Some(o) if StudentId::parse(&o).is_ok() => (Some(o), Vec::new()),
        Some(o) => (
            None,
            vec![TypedId {
                kind: KOSKI_OID_TYPE.to_owned(),
                value: o,
            }],
        ),
        None => (None, Vec::new()),
    };
    Ok(Student {
        henkilotunnus,
        learner_id,
        other_ids,
        family_name: h.sukunimi.clone(),
        given_names: h.etunimet.clone(),
        birth_date,
        citizenships,
        mother_tongue,
        ..Student::default()
    })
}

/// A KOSKI `kieli` code as a language tag: ISO 639-1 in lower case, the table's others.
fn language_tag(k: &Koodi) -> Option<String> {
    let v = k.koodiarvo.trim();
    if let Some((_, tag)) = LANGUAGE_TAGS.iter().find(|(code, _)| *code == v) {
        return Some((*tag).to_owned());
    }
    (v.len() == 2 && v.bytes().all(|b| b.is_ascii_alphabetic())).then(|| v.to_ascii_lowercase())
}

/// `{"fi", "sv", "en"}` as localized texts, in that order, empty ones left out.
fn texts(nimi: Option<&Nimi>) -> Vec<LocalizedText> {
    let Some(n) = nimi else {
        return Vec::new();
    };
    [("fi", &n.fi), ("sv", &n.sv), ("en", &n.en)]
        .into_iter()
        .filter_map(|(lang, text)| {
            let t = text.as_deref()?.trim();
            (!t.is_empty()).then(|| LocalizedText {
                lang: Some(lang.to_owned()),
                text: t.to_owned(),
            })
        })
        .collect()
}

/// The day before `d` (for a state period that ends when the next begins).
fn day_before(d: Date) -> Option<Date> {
    if d.day() > 1 {
        return Date::new(d.year(), d.month(), d.day() - 1).ok();
    }
    let (year, month) = if d.month() > 1 {
        (d.year(), d.month() - 1)
    } else {
        (d.year().checked_sub(1)?, 12)
    };
    (28..=31)
        .rev()
        .find_map(|day| Date::new(year, month, day).ok())
}

struct Reader<'r> {
    report: &'r mut ReadReport,
    record: StudentRecord,
}

/// Where in the document an item is, for the report (index-free) and for keys.
struct Place<'a> {
    study_right: &'a str,
    provider: &'a str,
    /// Whether the top-level completion holding the item is confirmed.
    confirmed: bool,
}

impl Reader<'_> {
    fn not_carried(&mut self, path: &str) {
        self.report.not_carried(format!("{PREFIX}{path}"));
    }

    /// The provider of an organisation, added once; its key.
    fn provider(&mut self, org: &Organisaatio, path: &str) -> Result<String, FormatError> {
        let number = org
            .oppilaitosnumero
            .as_ref()
            .map(|k| k.koodiarvo.trim().to_owned());
        let oid = org.oid.as_deref().map(str::trim).map(str::to_owned);
        let key = number
            .clone()
            .or_else(|| oid.clone())
            .ok_or_else(|| FormatError::Invalid {
                path: format!("{PREFIX}{path}"),
                problem: "an organisation without oid or oppilaitosnumero".to_owned(),
            })?;
        if !self.record.providers.iter().any(|p| p.key == key) {
            let mut identifiers = Vec::new();
            if let Some(n) = number {
                identifiers.push(TypedId {
                    kind: super::virta::PROVIDER_CODE_TYPE.to_owned(),
                    value: n,
                });
            }
            if let Some(o) = oid {
                identifiers.push(TypedId {
                    kind: ORGANISATION_OID_TYPE.to_owned(),
                    value: o,
                });
            }
            self.record.providers.push(Provider {
                key: key.clone(),
                identifiers,
                names: texts(org.nimi.as_ref()),
                country: Some("FI".to_owned()),
                url: None,
            });
        }
        Ok(key)
    }

    fn study_right(&mut self, i: usize, o: &Opiskeluoikeus) -> Result<(), FormatError> {
        let base = "opiskeluoikeudet[]";
        let tyyppi = o.tyyppi.koodiarvo.as_str();
        let Some(kind) = STUDY_RIGHT_KINDS
            .iter()
            .find(|(code, _)| *code == tyyppi)
            .map(|(_, k)| *k)
        else {
            self.not_carried(&format!("{base} (opiskeluoikeudentyyppi {tyyppi})"));
            return Ok(());
        };
        if o.tila
            .opiskeluoikeusjaksot
            .iter()
            .any(|j| j.tila.koodiarvo == ANNULLED)
        {
            self.not_carried(&format!("{base} (annulled: {ANNULLED})"));
            return Ok(());
        }
        let oppilaitos = o.oppilaitos.as_ref().ok_or_else(|| FormatError::Invalid {
            path: format!("{PREFIX}opiskeluoikeudet[{i}].oppilaitos"),
            problem: "a study right without oppilaitos".to_owned(),
        })?;
        let provider = self.provider(oppilaitos, &format!("opiskeluoikeudet[{i}].oppilaitos"))?;
        let key = match o.oid.as_deref().map(str::trim) {
            Some(oid) if !oid.is_empty() => oid.to_owned(),
            _ => {
                let generated = format!("opiskeluoikeus-{}", i + 1);
                self.report.translated(
                    format!("{PREFIX}{base}.oid"),
                    "a study right without oid gets a generated key",
                    "absent",
                    "generated key",
                    false,
                );
                generated
            }
        };
        let start = o
            .alkamispaiva
            .or_else(|| o.tila.opiskeluoikeusjaksot.first().map(|j| j.alku))
            .ok_or_else(|| FormatError::Invalid {
                path: format!("{PREFIX}opiskeluoikeudet[{i}].alkamispäivä"),
                problem: "a study right without a start date or state periods".to_owned(),
            })?;
        let states = self.states(o);
        let programmes = o
            .suoritukset
            .iter()
            .filter(|s| s.koulutusmoduuli.tunniste.is("koulutus"))
            .map(|s| ProgrammePeriod {
                start: s.alkamispaiva.unwrap_or(start),
                end: s.vahvistus.as_ref().map(|v| v.paiva),
                module_code: None,
                education_code: Some(s.koulutusmoduuli.tunniste.koodiarvo.clone()),
                municipality: None,
                language: s.suorituskieli.as_ref().and_then(language_tag),
                names: texts(s.koulutusmoduuli.tunniste.nimi.as_ref()),
            })
            .collect();
        self.record.study_rights.push(StudyRight {
            key: Some(key.clone()),
            provider: provider.clone(),
            kind,
            start,
            end: o.paattymispaiva,
            states,
            programmes,
            extent: Vec::new(),
        });
        for (j, s) in o.suoritukset.iter().enumerate() {
            if let Some(t) = &s.toimipiste
                && t.oid != oppilaitos.oid
            {
                self.not_carried(&format!("{base}.suoritukset[].toimipiste"));
            }
            let place = Place {
                study_right: &key,
                provider: &provider,
                confirmed: s.vahvistus.is_some(),
            };
            self.achievement(
                s,
                &format!("{key}/{}", j + 1),
                &format!("{base}.suoritukset[]"),
                true,
                &place,
            );
        }
        self.support(o, &provider, start);
        Ok(())
    }

    fn states(&mut self, o: &Opiskeluoikeus) -> Vec<StatePeriod> {
        let path = format!("{PREFIX}opiskeluoikeudet[].tila.opiskeluoikeusjaksot[].tila");
        let periods = &o.tila.opiskeluoikeusjaksot;
        let mut out = Vec::new();
        for (j, p) in periods.iter().enumerate() {
            let code = p.tila.koodiarvo.as_str();
            let Some((_, state, lossy)) = STUDY_RIGHT_STATES.iter().find(|(c, _, _)| *c == code)
            else {
                self.report
                    .not_understood(format!("{path} (koskiopiskeluoikeudentila {code})"));
                continue;
            };
            self.report.translated(
                path.clone(),
                "koski:koskiopiskeluoikeudentila",
                code,
                format!("{state:?}"),
                *lossy,
            );
            let end = periods.get(j + 1).map(|next| {
                day_before(next.alku)
                    .filter(|d| *d >= p.alku)
                    .unwrap_or(p.alku)
            });
            out.push(StatePeriod {
                start: p.alku,
                end,
                state: *state,
            });
        }
        out
    }

    /// One completion and its parts, depth first; returns nothing, pushes the achievements.
    fn achievement(&mut self, s: &Suoritus, key: &str, path: &str, top: bool, place: &Place<'_>) {
        let index = self.record.achievements.len();
        let tunniste = &s.koulutusmoduuli.tunniste;
        let has_parts = s.osasuoritukset.as_ref().is_some_and(|p| !p.is_empty());
        let kind = if top {
            if MODULE_TYPES.contains(&s.tyyppi.koodiarvo.as_str()) {
                AchievementKind::Module
            } else {
                AchievementKind::Degree
            }
        } else if has_parts {
            AchievementKind::Module
        } else {
            AchievementKind::Course
        };
        let arviointi = s.arviointi.as_deref().unwrap_or(&[]);
        if arviointi.len() > 1 {
            for _ in 1..arviointi.len() {
                self.not_carried(&format!("{path}.arviointi[] (earlier assessment)"));
            }
        }
        let last = arviointi.last();
        let grade = last.and_then(|a| self.grade(a, path));
        let status = self.status(s, last, top, place, path);
        let date = last
            .and_then(|a| a.paiva)
            .or_else(|| s.vahvistus.as_ref().map(|v| v.paiva));
        let credits = s
            .koulutusmoduuli
            .laajuus
            .as_ref()
            .and_then(|l| self.credits(l, path))
            .into_iter()
            .collect();
        let language = match (&s.koulutusmoduuli.kieli, &s.suorituskieli) {
            (Some(k), _) | (None, Some(k)) => {
                let tag = language_tag(k);
                if tag.is_none() {
                    self.not_carried(&format!("{path}.koulutusmoduuli.kieli"));
                }
                tag
            }
            (None, None) => None,
        };
        self.record.achievements.push(Achievement {
            key: Some(key.to_owned()),
            kind,
            code: Some(tunniste.koodiarvo.trim().to_owned()).filter(|c| !c.is_empty()),
            code_scheme: tunniste.koodisto_uri.clone(),
            names: texts(tunniste.nimi.as_ref()),
            date,
            status,
            grade,
            credits,
            provider: place.provider.to_owned(),
            language,
            recognized_on: None,
            parts: Vec::new(),
            study_right: Some(place.study_right.to_owned()),
        });
        let mut parts = Vec::new();
        for (k, part) in s.osasuoritukset.iter().flatten().enumerate() {
            let part_key = format!("{key}.{}", k + 1);
            self.achievement(
                part,
                &part_key,
                &format!("{path}.osasuoritukset[]"),
                false,
                place,
            );
            parts.push(crate::record::PartRef {
                key: part_key,
                credits: None,
            });
        }
        if let Some(a) = self.record.achievements.get_mut(index) {
            a.parts = parts;
        }
    }

    fn status(
        &mut self,
        s: &Suoritus,
        last: Option<&Arviointi>,
        top: bool,
        place: &Place<'_>,
        path: &str,
    ) -> Option<AchievementStatus> {
        if s.jaa_luokalle == Some(true) {
            self.report.translated(
                format!("{PREFIX}{path}.jääLuokalle"),
                "a grade year not passed (jääLuokalle) is a failed achievement",
                "jääLuokalle",
                "failed",
                true,
            );
            return Some(AchievementStatus::Failed);
        }
        if let Some(a) = last {
            let passed = match a.hyvaksytty {
                Some(b) => b,
                None => !SCALES.iter().any(|sc| {
                    a.arvosana.is(sc.koodisto_uri)
                        && sc.failing.contains(&a.arvosana.koodiarvo.as_str())
                }),
            };
            return Some(if passed {
                AchievementStatus::Passed
            } else {
                AchievementStatus::Failed
            });
        }
        if s.vahvistus.is_some() {
            return Some(AchievementStatus::Passed);
        }
        if top || !place.confirmed {
            return Some(AchievementStatus::InProgress);
        }
        None
    }

    fn grade(&mut self, a: &Arviointi, path: &str) -> Option<Grade> {
        let value = a.arvosana.koodiarvo.trim();
        let grade_path = format!("{PREFIX}{path}.arviointi[].arvosana");
        let Some(uri) = a.arvosana.koodisto_uri.as_deref() else {
            self.report
                .not_understood(format!("{grade_path} (no koodistoUri)"));
            return None;
        };
        let scale = SCALES.iter().find(|s| s.koodisto_uri == uri);
        if let Some((_, known, to)) =
            scale.and_then(|s| s.known.iter().find(|(v, _, _)| *v == value))
        {
            self.report.translated(
                grade_path,
                format!("koski:{uri}"),
                value,
                format!("{known:?} {to}"),
                false,
            );
            return Some(Grade {
                scale: GradeScale::Known(*known),
                value: (*to).to_owned(),
            });
        }
        if value.is_empty() {
            self.report.not_understood(format!("{grade_path} (empty)"));
            return None;
        }
        Some(Grade {
            scale: GradeScale::Other {
                scheme: uri.to_owned(),
                name: scale.map(|s| s.name.to_owned()),
            },
            value: value.to_owned(),
        })
    }

    fn credits(&mut self, l: &model::Laajuus, path: &str) -> Option<Credits> {
        let at = format!("{path}.koulutusmoduuli.laajuus");
        let Some(unit) = &l.yksikko else {
            self.not_carried(&format!("{at} (no yksikkö)"));
            return None;
        };
        let Some((_, known, name)) = CREDIT_UNITS.iter().find(|(c, _, _)| *c == unit.koodiarvo)
        else {
            self.report.not_understood(format!(
                "{PREFIX}{at}.yksikkö (opintojenlaajuusyksikko {})",
                unit.koodiarvo
            ));
            return None;
        };
        let value = if l.arvo.is_finite() {
            Decimal::parse(&l.arvo.to_string()).ok()
        } else {
            None
        };
        let Some(value) = value else {
            self.not_carried(&format!("{at}.arvo (not a non-negative number)"));
            return None;
        };
        Some(Credits {
            value,
            unit: match known {
                Some(k) => CreditUnit::Known(*k),
                None => CreditUnit::Other((*name).to_owned()),
            },
        })
    }

    /// The study right's support decisions, and the subjects with an individualised syllabus
    /// under the latest special-support decision.
    fn support(&mut self, o: &Opiskeluoikeus, provider: &str, start: Date) {
        let Some(l) = &o.lisatiedot else {
            return;
        };
        let first = self.record.support_decisions.len();
        let groups: [(&str, SupportKind, Vec<&model::Jakso>); 4] = [
            (
                "erityisenTuenPäätökset",
                SupportKind::Erityinen,
                l.erityisen_tuen_paatos
                    .iter()
                    .chain(l.erityisen_tuen_paatokset.iter().flatten())
                    .collect(),
            ),
            (
                "tehostetunTuenPäätökset",
                SupportKind::Tehostettu,
                l.tehostetun_tuen_paatos
                    .iter()
                    .chain(l.tehostetun_tuen_paatokset.iter().flatten())
                    .collect(),
            ),
            (
                "pidennettyOppivelvollisuus",
                SupportKind::PidennettyOppivelvollisuus,
                l.pidennetty_oppivelvollisuus.iter().collect(),
            ),
            (
                "tuenPäätöksenJaksot",
                SupportKind::YksilollisetTukitoimet,
                l.tuen_paatoksen_jaksot.iter().flatten().collect(),
            ),
        ];
        for (field, kind, periods) in groups {
            for p in periods {
                let begins = match p.alku {
                    Some(d) => d,
                    None => {
                        self.report.translated(
                            format!("{PREFIX}opiskeluoikeudet[].lisätiedot.{field}[].alku"),
                            "a support decision without a start date starts with the study right",
                            "absent",
                            "study right start",
                            true,
                        );
                        start
                    }
                };
                self.record.support_decisions.push(SupportDecision {
                    key: None,
                    kind,
                    decided_on: None,
                    start: begins,
                    end: p.loppu,
                    provider: Some(provider.to_owned()),
                    individualised_subjects: Vec::new(),
                });
            }
        }
        let subjects = individualised(&o.suoritukset);
        if subjects.is_empty() {
            return;
        }
        let latest = self.record.support_decisions[first..]
            .iter_mut()
            .filter(|d| d.kind == SupportKind::Erityinen)
            .max_by_key(|d| d.start);
        match latest {
            Some(d) => d.individualised_subjects = subjects,
            None => {
                for _ in subjects {
                    self.not_carried(
                        "opiskeluoikeudet[].suoritukset[].osasuoritukset[].yksilöllistettyOppimäärä (no special-support decision)",
                    );
                }
            }
        }
    }
}

/// Codes of the subjects studied to an individualised syllabus, in document order, once each.
fn individualised(suoritukset: &[Suoritus]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut stack: Vec<&Suoritus> = suoritukset.iter().rev().collect();
    while let Some(s) = stack.pop() {
        if s.yksilollistetty_oppimaara == Some(true) {
            let code = s.koulutusmoduuli.tunniste.koodiarvo.trim().to_owned();
            if !code.is_empty() && !out.contains(&code) {
                out.push(code);
            }
        }
        stack.extend(s.osasuoritukset.iter().flatten().rev());
    }
    out
}

// Unit tests in tests.rs beside this file.
#[cfg(test)]
mod tests;

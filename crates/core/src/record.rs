//! The format-neutral student record, the scope category of every field, and scope pruning.
//!
//! Owns: [`StudentRecord`] and its parts, the small value types they use ([`Date`],
//! [`Decimal`]), the field inventory ([`StudentRecord::fields`]: every present field as a path
//! with the one [`Category`] it belongs to) and [`prune`] (scope pruning plus the turvakielto
//! rule). It must not parse or render any document format (that is `formats`), do IO, or log:
//! a record holds personal data, so `Debug` of [`Student`] redacts it.
//!
//! Vocabulary kept Finnish where the data is Finnish: *henkilötunnus* (personal identity code),
//! *oppijanumero* (national learner number, an OID), *turvakielto* (a non-disclosure order for
//! personal safety: the student's home municipality, addresses and contact details must not be
//! passed on), *kuntakoodi* (Statistics Finland's three-digit municipality code).
//!
//! Field categories (CONTRACT.md's scope):
//! - `identity`: everything under `student`, and the `turvakielto` flag.
//! - `enrolment`: `study_rights`, and every link from another item to a study right
//!   (`achievements[].study_right`, `mobility_periods[].study_right`,
//!   `term_registrations[].study_right`): such a link reveals that the study right exists.
//! - `achievements`, `mobility`, `registrations`, `support`: the items of that name.
//! - `providers` are organisation directory data, not personal data. An entry is kept only while
//!   a retained field links to it, so its presence reveals nothing the retained fields do not.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::scope::{Category, Scope};

/// Why a value could not be taken into the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("not a date of the form YYYY-MM-DD")]
    DateSyntax,
    #[error("not a calendar date")]
    DateRange,
    #[error("not a decimal number")]
    DecimalSyntax,
    #[error("a negative number where only zero or more is allowed")]
    DecimalNegative,
}

// ---------------------------------------------------------------------------------------------
// Value types
// ---------------------------------------------------------------------------------------------

/// A calendar date without time zone, years 0001-9999.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: u16,
    month: u8,
    day: u8,
}

impl Date {
    pub fn new(year: u16, month: u8, day: u8) -> Result<Date, RecordError> {
        if year == 0 || year > 9999 || !(1..=12).contains(&month) || day == 0 {
            return Err(RecordError::DateRange);
        }
        if day > days_in_month(year, month) {
            return Err(RecordError::DateRange);
        }
        Ok(Date { year, month, day })
    }

    /// Parses exactly `YYYY-MM-DD`.
    pub fn parse(s: &str) -> Result<Date, RecordError> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(RecordError::DateSyntax);
        }
        let num = |r: std::ops::Range<usize>| -> Result<u16, RecordError> {
            let part = &b[r];
            if !part.iter().all(u8::is_ascii_digit) {
                return Err(RecordError::DateSyntax);
            }
            Ok(part
                .iter()
                .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0')))
        };
        let year = num(0..4)?;
        let month = u8::try_from(num(5..7)?).map_err(|_| RecordError::DateRange)?;
        let day = u8::try_from(num(8..10)?).map_err(|_| RecordError::DateRange)?;
        Date::new(year, month, day)
    }

    /// Parses an XML Schema `xs:date`: `YYYY-MM-DD` with an optional time zone (`Z`, `+hh:mm`,
    /// `-hh:mm`), which is dropped (a date in the record is a calendar day).
    pub fn parse_xs_date(s: &str) -> Result<Date, RecordError> {
        let s = s.trim();
        if s.len() < 10 {
            return Err(RecordError::DateSyntax);
        }
        let (day, zone) = s.split_at(10);
        let zone_ok = match zone.as_bytes() {
            [] => true,
            [b'Z'] => true,
            [sign, h1, h2, b':', m1, m2] => {
                (*sign == b'+' || *sign == b'-')
                    && [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit())
            }
            _ => false,
        };
        if !zone_ok {
            return Err(RecordError::DateSyntax);
        }
        Date::parse(day)
    }

    pub fn year(self) -> u16 {
        self.year
    }
    pub fn month(self) -> u8 {
        self.month
    }
    pub fn day(self) -> u8 {
        self.day
    }
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        _ => 28,
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl fmt::Debug for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Date({self})")
    }
}

impl Serialize for Date {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Date::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A non-negative decimal number in canonical form: no sign, no leading zeros in the integer
/// part, no trailing zeros in the fraction, no `.` without a fraction (`5.50` → `5.5`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Decimal(String);

impl Decimal {
    /// Parses an `xs:decimal` lexical value (`+`/`-` sign, digits, optional fraction) that is
    /// not negative. `-0` is zero.
    pub fn parse(s: &str) -> Result<Decimal, RecordError> {
        let s = s.trim();
        let (negative, body) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let (int, frac) = match body.split_once('.') {
            Some((i, f)) => (i, f),
            None => (body, ""),
        };
        if (int.is_empty() && frac.is_empty())
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(RecordError::DecimalSyntax);
        }
        let int = int.trim_start_matches('0');
        let frac = frac.trim_end_matches('0');
        let int = if int.is_empty() { "0" } else { int };
        let canonical = if frac.is_empty() {
            int.to_owned()
        } else {
            format!("{int}.{frac}")
        };
        if negative && canonical != "0" {
            return Err(RecordError::DecimalNegative);
        }
        Ok(Decimal(canonical))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Digits before and after the decimal point (for schema facets such as VIRTA's
    /// `totalDigits 24, fractionDigits 6`).
    pub fn digits(&self) -> (usize, usize) {
        match self.0.split_once('.') {
            Some((i, f)) => (i.len(), f.len()),
            None => (self.0.len(), 0),
        }
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Decimal({})", self.0)
    }
}

impl Serialize for Decimal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Decimal::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A text in a language. `lang` is a BCP 47 language tag (in practice ISO 639-1: `fi`, `sv`,
/// `en`) or absent when the source did not say.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LocalizedText {
    pub lang: Option<String>,
    pub text: String,
}

/// An identifier with its type, as formats qualify them (`schac`, `erasmus`, `oppilaitosnumero`,
/// `virta-avain`, ...).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TypedId {
    pub kind: String,
    pub value: String,
}

// ---------------------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------------------

/// ISO/IEC 5218 sex codes (VIRTA's `Sukupuoli` uses 9 for "unknown", see `formats::codes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Gender {
    Unknown,
    Male,
    Female,
    NotApplicable,
}

/// A postal or street address.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Address {
    pub lines: Vec<String>,
    pub postal_code: Option<String>,
    pub locality: Option<String>,
    pub region: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContactKind {
    Email,
    Phone,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Contact {
    pub kind: ContactKind,
    pub value: String,
}

/// Who the student is. Every field is `identity`.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Student {
    /// Henkilötunnus, in upper case (readers normalize it).
    pub henkilotunnus: Option<String>,
    /// Oppijanumero, `1.2.246.562.24.<digits>`.
    pub learner_id: Option<String>,
    /// Other identifiers: a source register's own student key (`virta-avain`), a foreign
    /// national identifier, the European Student Identifier (`esi`), ...
    pub other_ids: Vec<TypedId>,
    pub family_name: Option<String>,
    pub given_names: Option<String>,
    pub birth_date: Option<Date>,
    pub gender: Option<Gender>,
    /// ISO 3166-1 alpha-2 codes.
    pub citizenships: Vec<String>,
    /// Language code (ISO 639-1, or VIRTA's `20` foreign / `98` not official / `99` unknown).
    pub mother_tongue: Option<String>,
    /// Kuntakoodi of the home municipality. Removed under turvakielto.
    pub home_municipality: Option<String>,
    /// Removed under turvakielto.
    pub addresses: Vec<Address>,
    /// Removed under turvakielto.
    pub contacts: Vec<Contact>,
}

impl fmt::Debug for Student {
    /// Redacted: says which fields are present, never their values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let present = |b: bool| if b { "<redacted>" } else { "-" };
        f.debug_struct("Student")
            .field("henkilotunnus", &present(self.henkilotunnus.is_some()))
            .field("learner_id", &present(self.learner_id.is_some()))
            .field("other_ids", &self.other_ids.len())
            .field("family_name", &present(self.family_name.is_some()))
            .field("given_names", &present(self.given_names.is_some()))
            .field("birth_date", &present(self.birth_date.is_some()))
            .field("gender", &present(self.gender.is_some()))
            .field("citizenships", &self.citizenships.len())
            .field("mother_tongue", &present(self.mother_tongue.is_some()))
            .field(
                "home_municipality",
                &present(self.home_municipality.is_some()),
            )
            .field("addresses", &self.addresses.len())
            .field("contacts", &self.contacts.len())
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Providers
// ---------------------------------------------------------------------------------------------

/// An education provider (school, municipality as education organiser, university).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provider {
    /// The key other items use to name this provider (`provider` fields). Usually one of the
    /// identifiers' values (an oppilaitosnumero, an organisation OID, a SCHAC code).
    pub key: String,
    pub identifiers: Vec<TypedId>,
    pub names: Vec<LocalizedText>,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    pub url: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Enrolment
// ---------------------------------------------------------------------------------------------

/// What a study right (enrolment) is for. VIRTA's `OpiskeluoikeusTyyppi` codes and the
/// municipal education forms; the code tables are in `formats::codes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StudyRightKind {
    /// Esiopetus (pre-primary education).
    PrePrimary,
    /// Perusopetus (basic education, grades 1-9).
    Basic,
    /// Perusopetuksen lisäopetus (voluntary additional basic education, "grade 10").
    BasicAdditional,
    /// Perusopetukseen valmistava opetus (preparatory instruction for immigrants).
    BasicPreparatory,
    /// Aikuisten perusopetus (basic education for adults).
    AdultBasic,
    /// Lukiokoulutus (general upper-secondary education).
    UpperSecondary,
    /// Tutkintokoulutukseen valmentava koulutus, TUVA (preparatory education for a degree).
    Tuva,
    /// Ammatillinen koulutus (vocational education).
    Vocational,
    /// VIRTA 1: ammattikorkeakoulututkinto.
    UasDegree,
    /// VIRTA 2: alempi korkeakoulututkinto.
    BachelorDegree,
    /// VIRTA 3: ylempi ammattikorkeakoulututkinto.
    UasMasterDegree,
    /// VIRTA 4: ylempi korkeakoulututkinto.
    MasterDegree,
    /// VIRTA 5: erikoislääkäri- ja erikoishammaslääkärikoulutus.
    MedicalSpecialist,
    /// VIRTA 6: lisensiaatintutkinto.
    Licentiate,
    /// VIRTA 7: tohtorintutkinto.
    Doctorate,
    /// VIRTA 8: kotimainen opiskelijaliikkuvuus.
    DomesticMobility,
    /// VIRTA 9: kansainvälinen vaihto.
    InternationalExchange,
    /// VIRTA 10: täydennyskoulutus.
    ContinuingEducation,
    /// VIRTA 11: pätevöitymiskoulutus.
    QualificationTraining,
    /// VIRTA 12: erikoistumisopinnot.
    SpecialisationStudies,
    /// VIRTA 13: avoimen opinnot.
    OpenStudies,
    /// VIRTA 14: erilliset opettajankoulutuksen opinnot.
    SeparateTeacherStudies,
    /// VIRTA 15: ammatillinen opettajankoulutus.
    VocationalTeacherEducation,
    /// VIRTA 16: oppisopimustyyppinen koulutus.
    ApprenticeshipType,
    /// VIRTA 17: valmentava koulutus.
    PreparatoryEducation,
    /// VIRTA 18: erillisoikeus.
    NonDegreeRight,
    /// VIRTA 19: erikoistumiskoulutus.
    SpecialisationEducation,
    /// VIRTA 20: opiskeluyhteistyö muun kuin korkeakoulun kanssa.
    NonHeiCooperation,
}

/// The state of a study right during a period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StudyRightState {
    /// Aktiivinen / läsnä.
    Active,
    /// Optio (an option to continue to a further degree).
    Optio,
    /// Valmistunut (graduated, syllabus completed).
    Graduated,
    /// Passivoitu.
    Passivated,
    /// Päättynyt: luopunut, eronnut tai pysyvästi päättynyt.
    Ended,
    /// Määräaika päättynyt.
    TimeLimitExpired,
    /// Päättynyt yhden opiskeluoikeuden säännöksen johdosta.
    EndedOneStudyRightRule,
    /// Väliaikaisesti keskeytynyt (municipal education; no VIRTA code).
    Interrupted,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatePeriod {
    pub start: Date,
    pub end: Option<Date>,
    pub state: StudyRightState,
}

/// A period during which the study right's programme data stayed the same (VIRTA `Jakso`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgrammePeriod {
    pub start: Date,
    pub end: Option<Date>,
    /// The provider's own identifier of the programme (koulutusmoduulitunniste).
    pub module_code: Option<String>,
    /// Statistics Finland's koulutuskoodi.
    pub education_code: Option<String>,
    /// Kuntakoodi where the education is given (not the student's home).
    pub municipality: Option<String>,
    /// Language of instruction.
    pub language: Option<String>,
    pub names: Vec<LocalizedText>,
}

/// A study right / enrolment at a provider. Every field is `enrolment`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StudyRight {
    /// The source's key for this study right (VIRTA `avain`); other items link to it.
    pub key: Option<String>,
    pub provider: String,
    pub kind: StudyRightKind,
    pub start: Date,
    pub end: Option<Date>,
    pub states: Vec<StatePeriod>,
    pub programmes: Vec<ProgrammePeriod>,
    /// Extent of the studies the right covers.
    pub extent: Vec<Credits>,
}

// ---------------------------------------------------------------------------------------------
// Achievements
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AchievementKind {
    /// A degree or a completed syllabus (tutkinto, oppimäärä).
    Degree,
    /// A module: a group of courses (opintokokonaisuus).
    Module,
    /// A course or a school subject (opintojakso, oppiaine, kurssi).
    Course,
    /// A part of a course.
    Class,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AchievementStatus {
    Passed,
    Failed,
    InProgress,
}

/// A grading scale the gateway knows; values and pass/fail rules are in `formats::codes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KnownScale {
    /// Basic and upper-secondary education numeric grades 4-10 (4 = fail).
    #[serde(rename = "asteikko-4-10")]
    FourToTen,
    /// S (suoritettu / hyväksytty) or H (hylätty).
    #[serde(rename = "hyvaksytty-hylatty")]
    PassFail,
    /// VIRTA viisiportainen: 1-5 and HYV.
    Viisiportainen,
    /// VIRTA toinen kotimainen kieli: TT (tyydyttävät tiedot), HT (hyvät tiedot).
    ToinenKotimainen,
    /// VIRTA hyväksytty: HYV.
    Hyvaksytty,
    /// VIRTA näytetyö: HYV, KH (kiittäen hyväksytty).
    Naytetyo,
    /// VIRTA tutkielma: I, A, B, N, C, M, E, L (improbatur ... laudatur).
    Tutkielma,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GradeScale {
    Known(KnownScale),
    /// A scale the gateway does not know: its identifier in the source and a name if given.
    Other {
        scheme: String,
        name: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Grade {
    pub scale: GradeScale,
    pub value: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KnownUnit {
    /// Opintopiste, op: Finnish credit equal to an ECTS credit.
    Opintopiste,
    /// Opintoviikko, ov: the pre-2005 higher-education unit.
    Opintoviikko,
    /// Kurssi: the pre-2021 upper-secondary course.
    Kurssi,
    /// Vuosiviikkotunti, vvt: annual weekly lessons in basic education.
    Vuosiviikkotunti,
    /// Osaamispiste, osp: vocational competence point.
    Osaamispiste,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CreditUnit {
    Known(KnownUnit),
    /// A scheme the gateway does not know, by the source's name for it.
    Other(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Credits {
    pub value: Decimal,
    pub unit: CreditUnit,
}

/// A link from a composite achievement (degree, module) to one of its parts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRef {
    /// The part's `key`.
    pub key: String,
    /// How many opintopiste of the part count towards this achievement.
    pub credits: Option<Decimal>,
}

/// A completed (or failed, or ongoing) course, module or degree. Every field is
/// `achievements` except `study_right`, which is `enrolment`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Achievement {
    /// The source's key for this achievement (VIRTA `avain`); parts link to it.
    pub key: Option<String>,
    pub kind: AchievementKind,
    /// The provider's code of the course/module/degree (koulutusmoduulitunniste).
    pub code: Option<String>,
    /// The code list `code` belongs to, when the source names one (KOSKI's `koodistoUri`,
    /// e.g. `koskioppiaineetyleissivistava`).
    pub code_scheme: Option<String>,
    pub names: Vec<LocalizedText>,
    /// When it was completed.
    pub date: Option<Date>,
    pub status: Option<AchievementStatus>,
    pub grade: Option<Grade>,
    pub credits: Vec<Credits>,
    pub provider: String,
    /// Language of instruction / of the achievement.
    pub language: Option<String>,
    /// When it was recognised from earlier studies (hyväksiluku).
    pub recognized_on: Option<Date>,
    pub parts: Vec<PartRef>,
    /// Key of the study right it belongs to (`enrolment`).
    pub study_right: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Mobility, registrations, support
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MobilityDirection {
    Outgoing,
    Incoming,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MobilityKind {
    StudentExchange,
    Internship,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MobilityProgramme {
    ErasmusPlus,
    OtherEu,
    Nordic,
    OtherInternational,
    National,
    InstitutionAgreement,
    OwnArrangement,
    Other,
    Unknown,
}

/// An exchange or mobility period. Every field is `mobility` except `study_right`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MobilityPeriod {
    pub key: Option<String>,
    /// The home provider that records the period.
    pub provider: String,
    pub start: Date,
    pub end: Option<Date>,
    pub direction: MobilityDirection,
    /// Destination (outgoing) or origin (incoming) country, ISO 3166-1 alpha-2.
    pub country: Option<String>,
    pub kind: Option<MobilityKind>,
    pub programme: Option<MobilityProgramme>,
    pub study_right: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RegistrationState {
    /// Läsnä.
    Present,
    /// Poissa.
    Absent,
    /// Poissa, ei kuluta opintoaikaa.
    AbsentNotCounted,
    /// Puuttuu.
    Missing,
}

/// A term registration. Every field is `registrations` except `study_right`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermRegistration {
    pub provider: String,
    pub state: RegistrationState,
    pub registered_on: Option<Date>,
    pub start: Date,
    pub end: Option<Date>,
    pub study_right: Option<String>,
}

/// Kinds of special-needs support decisions in basic education.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SupportKind {
    /// Tehostettu tuki (intensified support).
    Tehostettu,
    /// Erityinen tuki (special support, by an administrative decision).
    Erityinen,
    /// Pidennetty oppivelvollisuus (extended compulsory education).
    PidennettyOppivelvollisuus,
    /// Yksilölliset tukitoimet (individual support measures, from August 2025).
    YksilollisetTukitoimet,
}

/// A special-needs support decision. Every field is `support` (sensitive).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupportDecision {
    pub key: Option<String>,
    pub kind: SupportKind,
    pub decided_on: Option<Date>,
    pub start: Date,
    pub end: Option<Date>,
    pub provider: Option<String>,
    /// Subjects whose syllabus is individualised (yksilöllistetty oppimäärä), by subject code.
    pub individualised_subjects: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// The record
// ---------------------------------------------------------------------------------------------

/// One student's record, independent of any document format.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StudentRecord {
    pub student: Student,
    /// Turvakielto: the student's location must not be disclosed. `identity`.
    pub turvakielto: bool,
    pub providers: Vec<Provider>,
    pub study_rights: Vec<StudyRight>,
    pub achievements: Vec<Achievement>,
    pub mobility_periods: Vec<MobilityPeriod>,
    pub term_registrations: Vec<TermRegistration>,
    pub support_decisions: Vec<SupportDecision>,
}

/// One present field of a record: where it is and which scope category it belongs to
/// (`None` for provider directory entries, see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Field {
    pub path: String,
    #[serde(serialize_with = "serialize_optional_category")]
    pub category: Option<Category>,
}

fn serialize_optional_category<S: serde::Serializer>(
    c: &Option<Category>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match c {
        Some(c) => s.serialize_some(c.as_str()),
        None => s.serialize_none(),
    }
}

fn serialize_category<S: serde::Serializer>(c: &Category, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(c.as_str())
}

/// Whether `path` is `prefix` itself or lies inside it (`a[1]` is inside `a`, `a[1].b` inside
/// `a[1]`, but `a[10]` is not inside `a[1]`).
pub fn path_within(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('.') || rest.starts_with('['),
        None => false,
    }
}

impl StudentRecord {
    /// Every present field, leaf by leaf, in a stable order. Paths are the record's own
    /// (`student.family_name`, `achievements[2].grade`): indices and names, never values.
    pub fn fields(&self) -> Vec<Field> {
        let mut out = Vec::new();
        let mut push =
            |path: String, category: Option<Category>| out.push(Field { path, category });
        let id = Some(Category::Identity);
        let s = &self.student;
        let opt = |name: &str, present: bool| present.then(|| format!("student.{name}"));
        for (name, present) in [
            ("henkilotunnus", s.henkilotunnus.is_some()),
            ("learner_id", s.learner_id.is_some()),
            ("family_name", s.family_name.is_some()),
            ("given_names", s.given_names.is_some()),
            ("birth_date", s.birth_date.is_some()),
            ("gender", s.gender.is_some()),
            ("mother_tongue", s.mother_tongue.is_some()),
            ("home_municipality", s.home_municipality.is_some()),
        ] {
            if let Some(p) = opt(name, present) {
                push(p, id);
            }
        }
        for i in 0..s.other_ids.len() {
            push(format!("student.other_ids[{i}]"), id);
        }
        for i in 0..s.citizenships.len() {
            push(format!("student.citizenships[{i}]"), id);
        }
        for i in 0..s.addresses.len() {
            push(format!("student.addresses[{i}]"), id);
        }
        for i in 0..s.contacts.len() {
            push(format!("student.contacts[{i}]"), id);
        }
        if self.turvakielto {
            push("turvakielto".into(), id);
        }
        for i in 0..self.providers.len() {
            push(format!("providers[{i}]"), None);
        }
        let enrolment = Some(Category::Enrolment);
        for (i, r) in self.study_rights.iter().enumerate() {
            let p = format!("study_rights[{i}]");
            if r.key.is_some() {
                push(format!("{p}.key"), enrolment);
            }
            for leaf in ["provider", "kind", "start"] {
                push(format!("{p}.{leaf}"), enrolment);
            }
            if r.end.is_some() {
                push(format!("{p}.end"), enrolment);
            }
            for j in 0..r.states.len() {
                push(format!("{p}.states[{j}]"), enrolment);
            }
            for j in 0..r.programmes.len() {
                push(format!("{p}.programmes[{j}]"), enrolment);
            }
            for j in 0..r.extent.len() {
                push(format!("{p}.extent[{j}]"), enrolment);
            }
        }
        let ach = Some(Category::Achievements);
        for (i, a) in self.achievements.iter().enumerate() {
            let p = format!("achievements[{i}]");
            for (leaf, present) in [
                ("key", a.key.is_some()),
                ("kind", true),
                ("code", a.code.is_some()),
                ("code_scheme", a.code_scheme.is_some()),
                ("date", a.date.is_some()),
                ("status", a.status.is_some()),
                ("grade", a.grade.is_some()),
                ("provider", true),
                ("language", a.language.is_some()),
                ("recognized_on", a.recognized_on.is_some()),
            ] {
                if present {
                    push(format!("{p}.{leaf}"), ach);
                }
            }
            for j in 0..a.names.len() {
                push(format!("{p}.names[{j}]"), ach);
            }
            for j in 0..a.credits.len() {
                push(format!("{p}.credits[{j}]"), ach);
            }
            for j in 0..a.parts.len() {
                push(format!("{p}.parts[{j}]"), ach);
            }
            if a.study_right.is_some() {
                push(format!("{p}.study_right"), enrolment);
            }
        }
        let mob = Some(Category::Mobility);
        for (i, m) in self.mobility_periods.iter().enumerate() {
            let p = format!("mobility_periods[{i}]");
            for (leaf, present) in [
                ("key", m.key.is_some()),
                ("provider", true),
                ("start", true),
                ("end", m.end.is_some()),
                ("direction", true),
                ("country", m.country.is_some()),
                ("kind", m.kind.is_some()),
                ("programme", m.programme.is_some()),
            ] {
                if present {
                    push(format!("{p}.{leaf}"), mob);
                }
            }
            if m.study_right.is_some() {
                push(format!("{p}.study_right"), enrolment);
            }
        }
        let reg = Some(Category::Registrations);
        for (i, t) in self.term_registrations.iter().enumerate() {
            let p = format!("term_registrations[{i}]");
            for (leaf, present) in [
                ("provider", true),
                ("state", true),
                ("registered_on", t.registered_on.is_some()),
                ("start", true),
                ("end", t.end.is_some()),
            ] {
                if present {
                    push(format!("{p}.{leaf}"), reg);
                }
            }
            if t.study_right.is_some() {
                push(format!("{p}.study_right"), enrolment);
            }
        }
        let sup = Some(Category::Support);
        for (i, d) in self.support_decisions.iter().enumerate() {
            let p = format!("support_decisions[{i}]");
            for (leaf, present) in [
                ("key", d.key.is_some()),
                ("kind", true),
                ("decided_on", d.decided_on.is_some()),
                ("start", true),
                ("end", d.end.is_some()),
                ("provider", d.provider.is_some()),
            ] {
                if present {
                    push(format!("{p}.{leaf}"), sup);
                }
            }
            for j in 0..d.individualised_subjects.len() {
                push(format!("{p}.individualised_subjects[{j}]"), sup);
            }
        }
        out
    }

    /// Keys of the providers that the record's items name.
    fn referenced_providers(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = Vec::new();
        keys.extend(self.study_rights.iter().map(|r| r.provider.as_str()));
        keys.extend(self.achievements.iter().map(|a| a.provider.as_str()));
        keys.extend(self.mobility_periods.iter().map(|m| m.provider.as_str()));
        keys.extend(self.term_registrations.iter().map(|t| t.provider.as_str()));
        keys.extend(
            self.support_decisions
                .iter()
                .filter_map(|d| d.provider.as_deref()),
        );
        keys
    }
}

// ---------------------------------------------------------------------------------------------
// Pruning
// ---------------------------------------------------------------------------------------------

/// A field removed because the scope does not name its category.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScopeDrop {
    pub path: String,
    #[serde(serialize_with = "serialize_category")]
    pub category: Category,
}

/// What [`prune`] removed and why. Paths only, never values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// The scope applied, space-separated.
    pub scope: String,
    /// Whether the record carried turvakielto.
    pub turvakielto: bool,
    pub dropped_by_scope: Vec<ScopeDrop>,
    /// Fields removed by the turvakielto rule whatever the scope.
    pub dropped_by_turvakielto: Vec<String>,
    /// Provider entries no retained field links to.
    pub dropped_unreferenced: Vec<String>,
}

/// The category of the item a field path lies in (`achievements[2].study_right` lies in an
/// `achievements` item), `None` for the student and providers.
fn section_category(path: &str) -> Option<Category> {
    [
        ("study_rights", Category::Enrolment),
        ("achievements", Category::Achievements),
        ("mobility_periods", Category::Mobility),
        ("term_registrations", Category::Registrations),
        ("support_decisions", Category::Support),
    ]
    .into_iter()
    .find(|(section, _)| path_within(path, section))
    .map(|(_, c)| c)
}

/// Keeps only what `scope` names, then applies the turvakielto rule: the home municipality,
/// addresses and contact details go whatever the scope. `support` is kept only when named
/// (it is never implied). Pure.
pub fn prune(record: StudentRecord, scope: Scope) -> (StudentRecord, PruneReport) {
    let before = record.fields();
    let mut r = record;
    let turvakielto = r.turvakielto;

    let mut dropped_by_scope: Vec<ScopeDrop> = before
        .iter()
        .filter_map(|f| {
            // A link to a study right goes with the item that holds it.
            let holder = section_category(&f.path).filter(|c| !scope.contains(*c));
            let own = f.category.filter(|c| !scope.contains(*c));
            holder.or(own).map(|category| ScopeDrop {
                path: f.path.clone(),
                category,
            })
        })
        .collect();
    dropped_by_scope.sort_by(|a, b| a.path.cmp(&b.path));

    if !scope.contains(Category::Identity) {
        r.student = Student::default();
        r.turvakielto = false;
    }
    if !scope.contains(Category::Enrolment) {
        r.study_rights.clear();
        for a in &mut r.achievements {
            a.study_right = None;
        }
        for m in &mut r.mobility_periods {
            m.study_right = None;
        }
        for t in &mut r.term_registrations {
            t.study_right = None;
        }
    }
    if !scope.contains(Category::Achievements) {
        r.achievements.clear();
    }
    if !scope.contains(Category::Mobility) {
        r.mobility_periods.clear();
    }
    if !scope.contains(Category::Registrations) {
        r.term_registrations.clear();
    }
    if !scope.contains(Category::Support) {
        r.support_decisions.clear();
    }

    let mut dropped_by_turvakielto = Vec::new();
    if turvakielto && scope.contains(Category::Identity) {
        let s = &mut r.student;
        if s.home_municipality.take().is_some() {
            dropped_by_turvakielto.push("student.home_municipality".to_owned());
        }
        for i in 0..s.addresses.len() {
            dropped_by_turvakielto.push(format!("student.addresses[{i}]"));
        }
        s.addresses.clear();
        for i in 0..s.contacts.len() {
            dropped_by_turvakielto.push(format!("student.contacts[{i}]"));
        }
        s.contacts.clear();
    }

    let referenced: Vec<String> = r
        .referenced_providers()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut dropped_unreferenced = Vec::new();
    let mut index = 0usize;
    r.providers.retain(|p| {
        let keep = referenced.contains(&p.key);
        if !keep {
            dropped_unreferenced.push(format!("providers[{index}]"));
        }
        index += 1;
        keep
    });

    let report = PruneReport {
        scope: scope.to_string(),
        turvakielto,
        dropped_by_scope,
        dropped_by_turvakielto,
        dropped_unreferenced,
    };
    (r, report)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing unwrap is a failing test
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn date(s: &str) -> Date {
        Date::parse(s).unwrap()
    }

    fn sample() -> StudentRecord {
        StudentRecord {
            student: Student {
                henkilotunnus: Some("131052-308T".into()),
                family_name: Some("Virtanen".into()),
                given_names: Some("Satu".into()),
                home_municipality: Some("091".into()),
                addresses: vec![Address {
                    lines: vec!["Katu 1".into()],
                    postal_code: Some("00100".into()),
                    locality: Some("Helsinki".into()),
                    region: None,
                    country: Some("FI".into()),
                }],
                contacts: vec![Contact {
                    kind: ContactKind::Email,
                    value: "satu@example.fi".into(),
                }],
                ..Student::default()
            },
            turvakielto: false,
            providers: vec![
                Provider {
                    key: "02535".into(),
                    identifiers: vec![],
                    names: vec![],
                    country: None,
                    url: None,
                },
                Provider {
                    key: "01234".into(),
                    identifiers: vec![],
                    names: vec![],
                    country: None,
                    url: None,
                },
            ],
            study_rights: vec![StudyRight {
                key: Some("98765".into()),
                provider: "01234".into(),
                kind: StudyRightKind::Basic,
                start: date("2017-08-23"),
                end: None,
                states: vec![StatePeriod {
                    start: date("2017-08-23"),
                    end: None,
                    state: StudyRightState::Active,
                }],
                programmes: vec![],
                extent: vec![],
            }],
            achievements: vec![Achievement {
                key: Some("K1".into()),
                kind: AchievementKind::Course,
                code: Some("MA".into()),
                code_scheme: None,
                names: vec![LocalizedText {
                    lang: Some("fi".into()),
                    text: "Matematiikka".into(),
                }],
                date: Some(date("2018-06-01")),
                status: None,
                grade: Some(Grade {
                    scale: GradeScale::Known(KnownScale::FourToTen),
                    value: "9".into(),
                }),
                credits: vec![],
                provider: "02535".into(),
                language: None,
                recognized_on: None,
                parts: vec![],
                study_right: Some("98765".into()),
            }],
            mobility_periods: vec![],
            term_registrations: vec![],
            support_decisions: vec![SupportDecision {
                key: None,
                kind: SupportKind::Erityinen,
                decided_on: None,
                start: date("2019-01-01"),
                end: None,
                provider: Some("01234".into()),
                individualised_subjects: vec!["MA".into()],
            }],
        }
    }

    #[test]
    fn dates_parse_strictly() {
        assert_eq!(date("2024-02-29").to_string(), "2024-02-29");
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-1-01",
            "24-01-01",
            "2024-01-01T00",
        ] {
            assert!(Date::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Date::parse_xs_date("2015-10-31+02:00"),
            Ok(date("2015-10-31"))
        );
        assert_eq!(Date::parse_xs_date("2015-10-31Z"), Ok(date("2015-10-31")));
        assert_eq!(
            Date::parse_xs_date("2015-10-31+2"),
            Err(RecordError::DateSyntax)
        );
    }

    #[test]
    fn decimals_are_canonical() {
        for (input, canonical) in [
            ("5", "5"),
            ("5.0", "5"),
            ("005.50", "5.5"),
            ("+1.25", "1.25"),
            (".5", "0.5"),
            ("-0", "0"),
            ("0.000", "0"),
        ] {
            assert_eq!(
                Decimal::parse(input).unwrap().as_str(),
                canonical,
                "{input}"
            );
        }
        assert_eq!(Decimal::parse("-1"), Err(RecordError::DecimalNegative));
        for bad in ["", ".", "1e3", "1,5", "abc"] {
            assert_eq!(
                Decimal::parse(bad),
                Err(RecordError::DecimalSyntax),
                "{bad}"
            );
        }
        assert_eq!(Decimal::parse("123.4567").unwrap().digits(), (3, 4));
    }

    #[test]
    fn paths_nest_by_boundary() {
        assert!(path_within("achievements[1].grade", "achievements[1]"));
        assert!(path_within("achievements[1]", "achievements[1]"));
        assert!(!path_within("achievements[10]", "achievements[1]"));
        assert!(path_within("student.addresses[0]", "student.addresses"));
    }

    #[test]
    fn every_field_has_the_category_of_its_section() {
        let record = sample();
        for f in record.fields() {
            let expected = if f.path.ends_with(".study_right") || f.path.starts_with("study_rights")
            {
                Some(Category::Enrolment)
            } else if f.path.starts_with("student") || f.path == "turvakielto" {
                Some(Category::Identity)
            } else if f.path.starts_with("achievements") {
                Some(Category::Achievements)
            } else if f.path.starts_with("support_decisions") {
                Some(Category::Support)
            } else {
                None
            };
            assert_eq!(f.category, expected, "{}", f.path);
        }
    }

    #[test]
    fn prune_keeps_only_the_scope() {
        let scope = Scope::parse("identity achievements").unwrap();
        let (pruned, report) = prune(sample(), scope);
        assert!(pruned.study_rights.is_empty());
        assert!(pruned.support_decisions.is_empty());
        assert_eq!(pruned.achievements.len(), 1);
        assert_eq!(pruned.achievements[0].study_right, None);
        // The study right's provider is no longer named by anything retained.
        assert_eq!(pruned.providers.len(), 1);
        assert_eq!(pruned.providers[0].key, "02535");
        assert_eq!(report.dropped_unreferenced, vec!["providers[1]"]);
        assert!(
            report
                .dropped_by_scope
                .iter()
                .any(|d| d.path == "achievements[0].study_right"
                    && d.category == Category::Enrolment)
        );
        assert!(
            report
                .dropped_by_scope
                .iter()
                .any(|d| d.path == "support_decisions[0].kind" && d.category == Category::Support)
        );
        for f in pruned.fields() {
            if let Some(c) = f.category {
                assert!(scope.contains(c), "{} left in", f.path);
            }
        }
    }

    #[test]
    fn support_only_when_named() {
        let (pruned, _) = prune(sample(), Scope::parse("identity enrolment").unwrap());
        assert!(pruned.support_decisions.is_empty());
        let (pruned, _) = prune(sample(), Scope::parse("identity support").unwrap());
        assert_eq!(pruned.support_decisions.len(), 1);
        // The support decision still names its provider, so it stays.
        assert_eq!(pruned.providers.len(), 1);
        assert_eq!(pruned.providers[0].key, "01234");
    }

    #[test]
    fn turvakielto_removes_location_whatever_the_scope() {
        let mut record = sample();
        record.turvakielto = true;
        let (pruned, report) = prune(record, Scope::all());
        assert!(pruned.turvakielto);
        assert_eq!(pruned.student.home_municipality, None);
        assert!(pruned.student.addresses.is_empty());
        assert!(pruned.student.contacts.is_empty());
        assert_eq!(pruned.student.family_name.as_deref(), Some("Virtanen"));
        assert_eq!(
            report.dropped_by_turvakielto,
            vec![
                "student.home_municipality",
                "student.addresses[0]",
                "student.contacts[0]"
            ]
        );
        // Without turvakielto nothing of the kind is removed.
        let (pruned, report) = prune(sample(), Scope::all());
        assert!(report.dropped_by_turvakielto.is_empty());
        assert_eq!(pruned.student.addresses.len(), 1);
    }

    #[test]
    fn debug_redacts_the_student() {
        let text = format!("{:?}", sample());
        assert!(!text.contains("131052"));
        assert!(!text.contains("Virtanen"));
        assert!(!text.contains("satu@"));
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

    proptest! {
        #[test]
        fn pruned_fields_are_all_in_scope(scope in scope_strategy(), turva in any::<bool>()) {
            let mut record = sample();
            record.turvakielto = turva;
            let before = record.fields().len();
            let (pruned, report) = prune(record, scope);
            let after = pruned.fields();
            for f in &after {
                if let Some(c) = f.category {
                    prop_assert!(scope.contains(c));
                }
            }
            // Everything is accounted for: kept, or reported with a reason.
            prop_assert_eq!(
                before,
                after.len()
                    + report.dropped_by_scope.len()
                    + report.dropped_by_turvakielto.len()
                    + report.dropped_unreferenced.len()
            );
            // Pruning twice changes nothing.
            let (again, _) = prune(pruned.clone(), scope);
            prop_assert_eq!(again, pruned);
        }

        #[test]
        fn decimal_parse_is_idempotent(int in 0u32..100_000, frac in 0u32..1000, zeros in 0usize..3) {
            let text = format!("{int}.{frac:03}{}", "0".repeat(zeros));
            let d = Decimal::parse(&text).unwrap();
            prop_assert_eq!(Decimal::parse(d.as_str()).unwrap(), d.clone());
            prop_assert!(!d.as_str().ends_with('.'));
        }
    }
}

//! Checks without transfer: the four questions a destination may ask about a student's record
//! instead of receiving it, each one pure function over the format-neutral [`StudentRecord`].
//!
//! Owns: the question names ([`Question::parse`]), which source format can answer which question
//! ([`Question::supported_by`], decided before anything is fetched: `question_not_supported`),
//! and the answer ([`answer`]). It does no IO, keeps nothing and never logs; "today" is a
//! parameter (the Europe/Helsinki date of the check).
//!
//! # The rules, per source format
//! The record keeps what every format says in the same shape, so each rule is written once over
//! the record; the list below says which fields and codes of each source format feed it.
//!
//! **`basic_education_completed`**: an achievement of kind *degree* (a completed syllabus) whose
//! status is *passed*, that belongs to a study right of kind *basic* or *adult basic*, and whose
//! code, when it names a code list, is from `koulutus` (Statistics Finland's education codes,
//! so a single subject's syllabus does not count).
//! - `koski`: a `perusopetuksenoppimaara` or `aikuistenperusopetuksenoppimaara` suoritus (code
//!   `koulutus` 201101) with `vahvistus`, in an opiskeluoikeus of type `perusopetus` or
//!   `aikuistenperusopetus`. Grade years (`perusopetuksenvuosiluokka`) and the initial stage of
//!   adult basic education are modules, subject syllabi carry `koskioppiaineetyleissivistava`:
//!   neither counts. Without `vahvistus` the syllabus is in progress: false.
//! - `siirto-v1`: an `achievement kind="degree"` with `status` `passed` whose `studyRight` is a
//!   `studyRight kind="basic"` or `"adult-basic"`.
//! - `virta`, `elmo`: not answerable (higher education only): `question_not_supported`.
//!
//! **`upper_secondary_completed`**: the same over study rights of kind *upper secondary*
//! (lukiokoulutus) or *vocational* (ammatillinen koulutus).
//! - `koski`: a `lukionoppimaara` (code `koulutus` 309902) or `ammatillinentutkinto` suoritus
//!   with `vahvistus`, in an opiskeluoikeus of type `lukiokoulutus` or `ammatillinenkoulutus`.
//!   Subject syllabi (`lukionoppiaineenoppimaara`, `lukionaineopinnot`) and partial vocational
//!   qualifications (`ammatillinentutkintoosittainen`, read as a module) do not count.
//! - `siirto-v1`: an `achievement kind="degree"`, `status` `passed`, in a `studyRight`
//!   `kind="upper-secondary"` or `"vocational"`.
//! - `virta`, `elmo`: `question_not_supported`.
//!
//! **`higher_education_degree_completed`**: an achievement of kind *degree* that is not failed
//! or in progress.
//! - `virta`: an `Opintosuoritus` with `Laji` 1 (tutkinto); VIRTA records only completed ones.
//! - `elmo`: a `learningOpportunitySpecification` of type `Degree Programme` whose instance's
//!   status is not `failed` or `in-progress`.
//! - `koski`, `siirto-v1`: not answerable (KOSKI's higher-education study rights are not read
//!   into the record; siirto-v1 is basic and upper secondary): `question_not_supported`.
//!
//! **`active_study_right`**: a study right that has started by today and has not ended
//! (no end date, or one on or after today), whose latest state period begun by today is
//! *active* and has not ended.
//! - `koski`: `opiskeluoikeusjaksot` of `koskiopiskeluoikeudentila` `lasna` or `loma` (a
//!   period ends the day before the next begins), `päättymispäivä` as the end.
//! - `virta`: `Opiskeluoikeus/Tila` with `Koodi` 1 (aktiivinen), `Opiskeluoikeus/LoppuPvm`.
//! - `siirto-v1`: `studyRight/state value="active"`, `studyRight/@end`.
//! - `elmo`: not answerable (no study rights): `question_not_supported`.

use crate::formats::Format;
use crate::record::{
    AchievementKind, AchievementStatus, Date, StudentRecord, StudyRight, StudyRightKind,
    StudyRightState,
};

/// One question of a check (`question` of a `siirto-check+jwt`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Question {
    BasicEducationCompleted,
    UpperSecondaryCompleted,
    HigherEducationDegreeCompleted,
    ActiveStudyRight,
}

impl Question {
    pub const ALL: [Question; 4] = [
        Question::BasicEducationCompleted,
        Question::UpperSecondaryCompleted,
        Question::HigherEducationDegreeCompleted,
        Question::ActiveStudyRight,
    ];

    /// The claim value.
    pub fn as_str(self) -> &'static str {
        match self {
            Question::BasicEducationCompleted => "basic_education_completed",
            Question::UpperSecondaryCompleted => "upper_secondary_completed",
            Question::HigherEducationDegreeCompleted => "higher_education_degree_completed",
            Question::ActiveStudyRight => "active_study_right",
        }
    }

    /// The question a claim value names; `None`: `unknown_question`.
    pub fn parse(s: &str) -> Option<Question> {
        Question::ALL.into_iter().find(|q| q.as_str() == s)
    }

    /// Whether a document in `format` can answer the question at all (the module doc says
    /// why not); asked before anything is fetched.
    pub fn supported_by(self, format: Format) -> bool {
        match self {
            Question::BasicEducationCompleted | Question::UpperSecondaryCompleted => {
                matches!(format, Format::Koski | Format::SiirtoV1)
            }
            Question::HigherEducationDegreeCompleted => {
                matches!(format, Format::Virta | Format::Elmo)
            }
            Question::ActiveStudyRight => {
                matches!(format, Format::Koski | Format::SiirtoV1 | Format::Virta)
            }
        }
    }
}

impl std::fmt::Display for Question {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The answer to `question` from `record`, on the day `today` (Europe/Helsinki).
pub fn answer(question: Question, record: &StudentRecord, today: Date) -> bool {
    match question {
        Question::BasicEducationCompleted => {
            syllabus_completed(record, &[StudyRightKind::Basic, StudyRightKind::AdultBasic])
        }
        Question::UpperSecondaryCompleted => syllabus_completed(
            record,
            &[StudyRightKind::UpperSecondary, StudyRightKind::Vocational],
        ),
        Question::HigherEducationDegreeCompleted => record.achievements.iter().any(|a| {
            a.kind == AchievementKind::Degree
                && !matches!(
                    a.status,
                    Some(AchievementStatus::Failed | AchievementStatus::InProgress)
                )
        }),
        Question::ActiveStudyRight => record.study_rights.iter().any(|r| open_on(r, today)),
    }
}

/// The code list of education codes (Statistics Finland's koulutusluokitus) in KOSKI.
const EDUCATION_CODE_LIST: &str = "koulutus";

fn syllabus_completed(record: &StudentRecord, kinds: &[StudyRightKind]) -> bool {
    record.achievements.iter().any(|a| {
        a.kind == AchievementKind::Degree
            && a.status == Some(AchievementStatus::Passed)
            && a.code_scheme
                .as_deref()
                .is_none_or(|s| s == EDUCATION_CODE_LIST)
            && a.study_right.as_deref().is_some_and(|key| {
                record
                    .study_rights
                    .iter()
                    .any(|r| r.key.as_deref() == Some(key) && kinds.contains(&r.kind))
            })
    })
}

fn open_on(right: &StudyRight, today: Date) -> bool {
    if right.start > today || right.end.is_some_and(|end| end < today) {
        return false;
    }
    let latest = right
        .states
        .iter()
        .filter(|p| p.start <= today)
        .max_by_key(|p| p.start);
    latest
        .is_some_and(|p| p.state == StudyRightState::Active && p.end.is_none_or(|end| end >= today))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Achievement, StatePeriod};

    fn date(s: &str) -> Date {
        Date::parse(s).expect("test date")
    }

    fn right(
        kind: StudyRightKind,
        end: Option<&str>,
        states: &[(&str, StudyRightState)],
    ) -> StudyRight {
        StudyRight {
            key: Some("r".to_owned()),
            provider: "p".to_owned(),
            kind,
            start: date("2010-08-01"),
            end: end.map(date),
            states: states
                .iter()
                .map(|(s, state)| StatePeriod {
                    start: date(s),
                    end: None,
                    state: *state,
                })
                .collect(),
            programmes: Vec::new(),
            extent: Vec::new(),
        }
    }

    fn degree(status: Option<AchievementStatus>, scheme: Option<&str>) -> Achievement {
        Achievement {
            key: Some("a".to_owned()),
            kind: AchievementKind::Degree,
            code: Some("201101".to_owned()),
            code_scheme: scheme.map(str::to_owned),
            names: Vec::new(),
            date: None,
            status,
            grade: None,
            credits: Vec::new(),
            provider: "p".to_owned(),
            language: None,
            recognized_on: None,
            parts: Vec::new(),
            study_right: Some("r".to_owned()),
        }
    }

    fn record(rights: Vec<StudyRight>, achievements: Vec<Achievement>) -> StudentRecord {
        StudentRecord {
            study_rights: rights,
            achievements,
            ..StudentRecord::default()
        }
    }

    #[test]
    fn names_round_trip_and_unknown_is_none() {
        for q in Question::ALL {
            assert_eq!(Question::parse(q.as_str()), Some(q));
        }
        assert_eq!(Question::parse("Basic_education_completed"), None);
        assert_eq!(Question::parse(""), None);
    }

    #[test]
    fn support_table() {
        use Format::*;
        let table = [
            (
                Question::BasicEducationCompleted,
                [true, false, false, true],
            ),
            (
                Question::UpperSecondaryCompleted,
                [true, false, false, true],
            ),
            (
                Question::HigherEducationDegreeCompleted,
                [false, true, true, false],
            ),
            (Question::ActiveStudyRight, [true, true, false, true]),
        ];
        for (q, expected) in table {
            for (format, want) in [SiirtoV1, Virta, Elmo, Koski].into_iter().zip(expected) {
                assert_eq!(q.supported_by(format), want, "{q} {format}");
            }
        }
    }

    #[test]
    fn syllabus_needs_passed_degree_in_the_right_kind_of_study_right() {
        let today = date("2026-01-01");
        let basic = |status, scheme, kind| {
            answer(
                Question::BasicEducationCompleted,
                &record(vec![right(kind, None, &[])], vec![degree(status, scheme)]),
                today,
            )
        };
        let passed = Some(AchievementStatus::Passed);
        assert!(basic(passed, Some("koulutus"), StudyRightKind::Basic));
        assert!(basic(passed, None, StudyRightKind::AdultBasic));
        assert!(!basic(
            Some(AchievementStatus::InProgress),
            Some("koulutus"),
            StudyRightKind::Basic
        ));
        assert!(!basic(None, None, StudyRightKind::Basic));
        assert!(!basic(
            passed,
            Some("koskioppiaineetyleissivistava"),
            StudyRightKind::Basic
        ));
        assert!(!basic(passed, None, StudyRightKind::BasicAdditional));
        assert!(!basic(passed, None, StudyRightKind::UpperSecondary));
        let upper = record(
            vec![right(StudyRightKind::Vocational, None, &[])],
            vec![degree(passed, Some("koulutus"))],
        );
        assert!(answer(Question::UpperSecondaryCompleted, &upper, today));
    }

    #[test]
    fn higher_education_degree_is_any_degree_not_failed_or_in_progress() {
        let today = date("2026-01-01");
        for (status, want) in [
            (None, true),
            (Some(AchievementStatus::Passed), true),
            (Some(AchievementStatus::Failed), false),
            (Some(AchievementStatus::InProgress), false),
        ] {
            let r = record(Vec::new(), vec![degree(status, None)]);
            assert_eq!(
                answer(Question::HigherEducationDegreeCompleted, &r, today),
                want,
                "{status:?}"
            );
        }
        let mut course = degree(None, None);
        course.kind = AchievementKind::Course;
        let r = record(Vec::new(), vec![course]);
        assert!(!answer(Question::HigherEducationDegreeCompleted, &r, today));
    }

    #[test]
    fn active_study_right_looks_at_the_latest_state_begun_by_today() {
        use StudyRightState::*;
        let open = |end: Option<&str>, states: &[(&str, StudyRightState)], today: &str| {
            answer(
                Question::ActiveStudyRight,
                &record(vec![right(StudyRightKind::Basic, end, states)], Vec::new()),
                date(today),
            )
        };
        assert!(open(None, &[("2010-08-01", Active)], "2026-01-01"));
        assert!(!open(
            None,
            &[("2010-08-01", Active), ("2016-06-04", Graduated)],
            "2026-01-01"
        ));
        // Before graduation it was open.
        assert!(open(
            None,
            &[("2010-08-01", Active), ("2016-06-04", Graduated)],
            "2016-06-03"
        ));
        // A period that begins in the future does not count yet.
        assert!(open(
            None,
            &[("2010-08-01", Active), ("2030-01-01", Ended)],
            "2026-01-01"
        ));
        assert!(!open(
            Some("2020-07-31"),
            &[("2010-08-01", Active)],
            "2026-01-01"
        ));
        assert!(open(
            Some("2026-01-01"),
            &[("2010-08-01", Active)],
            "2026-01-01"
        ));
        assert!(!open(None, &[("2010-08-01", Passivated)], "2026-01-01"));
        assert!(!open(None, &[], "2026-01-01"));
        // Not started yet.
        assert!(!open(None, &[("2010-08-01", Active)], "2010-07-31"));
    }
}

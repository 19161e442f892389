//! Student identifiers: the Finnish personal identity code and the national learner number.
//!
//! Owns: parsing and checking [`StudentId`]. A *henkilötunnus* (personal identity code) is
//! `DDMMYYCZZZQ`: birth date, a century sign, an individual number and a check character
//! (`DDMMYYZZZ mod 31` looked up in `0123456789ABCDEFHJKLMNPRSTUVWXY`). Century signs are `+`
//! (1800s), `-` `Y` `X` `W` `V` `U` (1900s) and `A` `B` `C` `D` `E` `F` (2000s); the letter forms
//! exist since 2023. A *oppijanumero* (learner number) is the OID `1.2.246.562.24.<digits>`.
//!
//! The identifier is personal data: `Debug` never prints it. Code that must send it (the source
//! fetch) or compare it (subject binding) uses [`StudentId::as_str`] explicitly.

use std::fmt;

const CHECK_CHARS: &[u8; 31] = b"0123456789ABCDEFHJKLMNPRSTUVWXY";
const LEARNER_OID_PREFIX: &str = "1.2.246.562.24.";

/// A checked student identifier.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct StudentId {
    kind: StudentIdKind,
    value: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StudentIdKind {
    /// Finnish personal identity code.
    Henkilotunnus,
    /// National learner number (oppijanumero) OID.
    LearnerOid,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StudentIdError {
    #[error("not a personal identity code or a learner number (1.2.246.562.24.<digits>)")]
    UnknownForm,
    #[error("personal identity code must be 11 characters, found {0}")]
    Length(usize),
    #[error("personal identity code has an unknown century sign `{0}`")]
    CenturySign(char),
    #[error("personal identity code has no valid birth date")]
    BirthDate,
    #[error("personal identity code has a non-numeric date or individual number")]
    Digits,
    #[error("personal identity code individual number must be 002-999")]
    IndividualNumber,
    #[error("personal identity code check character is wrong")]
    Checksum,
    #[error("learner number must end in 1-20 digits after 1.2.246.562.24.")]
    LearnerOid,
}

impl StudentId {
    /// Parses either form. Letters in a henkilötunnus must be upper case.
    pub fn parse(s: &str) -> Result<StudentId, StudentIdError> {
        if let Some(rest) = s.strip_prefix(LEARNER_OID_PREFIX) {
            if rest.is_empty()
                || rest.len() > 20
                || !rest.bytes().all(|b| b.is_ascii_digit())
                || (rest.len() > 1 && rest.starts_with('0'))
            {
                return Err(StudentIdError::LearnerOid);
            }
            return Ok(StudentId {
                kind: StudentIdKind::LearnerOid,
                value: s.to_owned(),
            });
        }
        if s.starts_with("1.") {
            return Err(StudentIdError::UnknownForm);
        }
        parse_henkilotunnus(s)?;
        Ok(StudentId {
            kind: StudentIdKind::Henkilotunnus,
            value: s.to_owned(),
        })
    }

    pub fn kind(&self) -> StudentIdKind {
        self.kind
    }

    /// The identifier itself. Personal data: never log it.
    pub fn as_str(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for StudentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StudentId({:?}, <redacted>)", self.kind)
    }
}

/// The birth date a valid henkilötunnus encodes, as (year, month, day): the century from the
/// sign (`+` 1800s; `-`, `Y`, `X`, `W`, `V`, `U` 1900s; `A`-`F` 2000s). `None` for anything
/// [`StudentId::parse`] refuses.
pub fn birth_date(henkilotunnus: &str) -> Option<(i32, u8, u8)> {
    parse_henkilotunnus(henkilotunnus).ok()
}

/// The birth date a henkilötunnus encodes, as (year, month, day).
fn parse_henkilotunnus(s: &str) -> Result<(i32, u8, u8), StudentIdError> {
    let b = s.as_bytes();
    if !s.is_ascii() || b.len() != 11 {
        return Err(StudentIdError::Length(s.chars().count()));
    }
    let century = match b[6] {
        b'+' => 1800,
        b'-' | b'Y' | b'X' | b'W' | b'V' | b'U' => 1900,
        b'A' | b'B' | b'C' | b'D' | b'E' | b'F' => 2000,
        other => return Err(StudentIdError::CenturySign(char::from(other))),
    };
    let digits = |r: std::ops::Range<usize>| -> Result<u32, StudentIdError> {
        let part = &b[r];
        if !part.iter().all(u8::is_ascii_digit) {
            return Err(StudentIdError::Digits);
        }
        Ok(part
            .iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0')))
    };
    let day = digits(0..2)?;
    let month = digits(2..4)?;
    let year = century + i32::try_from(digits(4..6)?).map_err(|_| StudentIdError::Digits)?;
    let individual = digits(7..10)?;
    if !(2..=999).contains(&individual) {
        return Err(StudentIdError::IndividualNumber);
    }
    let month_u8 = u8::try_from(month).map_err(|_| StudentIdError::BirthDate)?;
    let day_u8 = u8::try_from(day).map_err(|_| StudentIdError::BirthDate)?;
    if !(1..=12).contains(&month_u8) || day_u8 == 0 || day_u8 > days_in_month(year, month_u8) {
        return Err(StudentIdError::BirthDate);
    }
    let n = digits(0..6)? * 1000 + individual;
    let expected = CHECK_CHARS[(n % 31) as usize];
    if b[10] != expected {
        return Err(StudentIdError::Checksum);
    }
    Ok((year, month_u8, day_u8))
}

/// Completes the first ten characters of a henkilötunnus (`DDMMYYCZZZ`) with its check
/// character. For making test and benchmark identities; the result is checked by [`StudentId::parse`]
/// like any other.
pub fn with_check_character(first_ten: &str) -> String {
    let digits: String = first_ten
        .chars()
        .enumerate()
        .filter(|(i, _)| *i != 6)
        .map(|(_, c)| c)
        .collect();
    let n: u32 = digits.parse().unwrap_or(0);
    format!("{first_ten}{}", char::from(CHECK_CHARS[(n % 31) as usize]))
}

/// The `n`th of a series of made-up henkilötunnus (born in the 2000s, individual numbers from
/// 900 up: the range used for temporary identifiers, so nobody's), distinct for `n` below
/// 3,360,000.
pub fn synthetic_henkilotunnus(n: u32) -> String {
    let day = 1 + n % 28;
    let month = 1 + (n / 28) % 12;
    let year = (n / (28 * 12)) % 100;
    let individual = 900 + (n / (28 * 12 * 100)) % 100;
    with_check_character(&format!("{day:02}{month:02}{year:02}A{individual:03}"))
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_century_sign() {
        // 131052-308T is the Digital and Population Data Services Agency's documented example.
        for sign in ['-', 'Y', 'X', 'W', 'V', 'U'] {
            let s = format!("131052{sign}308T");
            assert_eq!(
                StudentId::parse(&s).map(|i| i.kind()),
                Ok(StudentIdKind::Henkilotunnus),
                "{s}"
            );
        }
        for sign in ['A', 'B', 'C', 'D', 'E', 'F', '+'] {
            let s = with_check(&format!("010503{sign}123"));
            assert!(StudentId::parse(&s).is_ok(), "{s}");
        }
    }

    #[test]
    fn rejects_with_the_reason() {
        assert_eq!(
            StudentId::parse("131052-308U"),
            Err(StudentIdError::Checksum)
        );
        assert_eq!(
            StudentId::parse("131052G308T"),
            Err(StudentIdError::CenturySign('G'))
        );
        assert_eq!(
            StudentId::parse("131052-308"),
            Err(StudentIdError::Length(10))
        );
        assert_eq!(
            StudentId::parse("310252-308T"),
            Err(StudentIdError::BirthDate)
        );
        assert_eq!(StudentId::parse("13105a-308T"), Err(StudentIdError::Digits));
        assert_eq!(
            StudentId::parse("131052-001T"),
            Err(StudentIdError::IndividualNumber)
        );
        assert_eq!(
            StudentId::parse("131052-308t"),
            Err(StudentIdError::Checksum)
        );
    }

    #[test]
    fn leap_days() {
        // 29 Feb 2000 is valid (divisible by 400); 29 Feb 1900 is not.
        let valid = with_check("290200A123");
        assert!(StudentId::parse(&valid).is_ok(), "{valid}");
        let invalid = with_check("290200-123");
        assert_eq!(StudentId::parse(&invalid), Err(StudentIdError::BirthDate));
    }

    #[test]
    fn learner_numbers() {
        let id = StudentId::parse("1.2.246.562.24.10000000008").unwrap();
        assert_eq!(id.kind(), StudentIdKind::LearnerOid);
        assert_eq!(id.as_str(), "1.2.246.562.24.10000000008");
        assert_eq!(
            StudentId::parse("1.2.246.562.24."),
            Err(StudentIdError::LearnerOid)
        );
        assert_eq!(
            StudentId::parse("1.2.246.562.24.12a"),
            Err(StudentIdError::LearnerOid)
        );
        assert_eq!(
            StudentId::parse("1.2.246.562.99.123"),
            Err(StudentIdError::UnknownForm)
        );
    }

    #[test]
    fn debug_does_not_leak() {
        let id = StudentId::parse("131052-308T").unwrap();
        assert!(!format!("{id:?}").contains("131052"));
    }

    fn with_check(ten: &str) -> String {
        with_check_character(ten)
    }

    #[test]
    fn synthetic_ids_are_valid_and_distinct() {
        let ids: std::collections::HashSet<String> =
            (0..36_400).map(synthetic_henkilotunnus).collect();
        assert_eq!(ids.len(), 36_400);
        for id in &ids {
            assert!(StudentId::parse(id).is_ok(), "{id}");
        }
    }
}

//! Made-up people of a given age for the tests of the guardian rules. Ages count on the day of
//! `iat` in Finland and the gateway runs on the real clock, so people are born relative to
//! today.
#![allow(dead_code)]

use siirto_core::clock::Timestamp;
use siirto_core::lang::helsinki_date;
use siirto_core::record::Date;
use siirto_core::student_id::with_check_character;

/// A henkilötunnus of someone born on `born` (individual number `nnn`; use 900-999, the
/// temporary numbers: nobody's).
pub fn hetu(born: Date, nnn: u16) -> String {
    let sign = if born.year() >= 2000 { 'A' } else { '-' };
    with_check_character(&format!(
        "{:02}{:02}{:02}{sign}{nnn:03}",
        born.day(),
        born.month(),
        born.year() % 100
    ))
}

/// The day `years` years before `day` (28 February for a 29 February in a common year).
pub fn years_before(day: Date, years: u16) -> Date {
    let year = day.year() - years;
    Date::new(year, day.month(), day.day())
        .or_else(|_| Date::new(year, day.month(), day.day() - 1))
        .expect("a calendar day")
}

/// The day in Finland at `now`.
pub fn day_of(now: Timestamp) -> Date {
    helsinki_date(now).expect("a day")
}

/// Someone who is `years` old (and about a month) on the day of `now`.
pub fn aged(now: Timestamp, years: u16, nnn: u16) -> String {
    let born = years_before(day_of(now), years);
    let (year, month) = if born.month() == 1 {
        (born.year() - 1, 12)
    } else {
        (born.year(), born.month() - 1)
    };
    hetu(
        Date::new(year, month, born.day().min(28)).expect("a day"),
        nnn,
    )
}

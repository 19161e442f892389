//! The languages people read Siirto in (Finnish, Swedish, English), text given in all three
//! ([`Localized`]), and civil time in Finland ([`helsinki_date`], [`helsinki_local`]).
//!
//! Owns: [`Lang`] (its codes, parsing, and choosing one from an `Accept-Language` header),
//! filling a text's `{name}` placeholders ([`fill`]), [`Localized`] (a name or a law's title in fi, sv and en, as the directory holds them), and
//! the Europe/Helsinki calendar (the time zone database is compiled in: nothing of the host is
//! read). Must not: hold the texts themselves (they live in one reviewed file per language,
//! `crates/gateway/texts/`), or read the clock.

use std::fmt;

use crate::clock::Timestamp;
use crate::record::Date;

/// A language of the texts and pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lang {
    Fi,
    Sv,
    En,
}

impl Lang {
    pub const ALL: [Lang; 3] = [Lang::Fi, Lang::Sv, Lang::En];

    /// The BCP 47 tag (`<html lang>`, `consent_lang`).
    pub fn code(self) -> &'static str {
        match self {
            Lang::Fi => "fi",
            Lang::Sv => "sv",
            Lang::En => "en",
        }
    }

    /// Exactly `fi`, `sv` or `en`.
    pub fn parse(s: &str) -> Option<Lang> {
        Lang::ALL.into_iter().find(|l| l.code() == s)
    }

    /// The language an `Accept-Language` header prefers most among fi, sv and en (by its
    /// q-values, then its order; `fi-FI` counts as `fi`), or `default`.
    pub fn negotiate(accept_language: Option<&str>, default: Lang) -> Lang {
        let mut best: Option<(Lang, f32)> = None;
        for range in accept_language.unwrap_or("").split(',') {
            let mut parts = range.split(';').map(str::trim);
            let tag = parts.next().unwrap_or("");
            let primary = tag.split('-').next().unwrap_or("").to_ascii_lowercase();
            let Some(lang) = Lang::parse(&primary) else {
                continue;
            };
            let q = parts
                .find_map(|p| p.strip_prefix("q=")?.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if q > 0.0 && best.is_none_or(|(_, b)| q > b) {
                best = Some((lang, q));
            }
        }
        best.map_or(default, |(lang, _)| lang)
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A text in each of the three languages (a participant's `name`, a law's `statutory_law`).
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize)]
pub struct Localized {
    pub fi: String,
    pub sv: String,
    pub en: String,
}

impl Localized {
    pub fn get(&self, lang: Lang) -> &str {
        match lang {
            Lang::Fi => &self.fi,
            Lang::Sv => &self.sv,
            Lang::En => &self.en,
        }
    }

    /// `{"fi": …, "sv": …, "en": …}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "fi": self.fi, "sv": self.sv, "en": self.en })
    }
}

/// `text` with each `{name}` of `values` replaced by its value (in one pass: a value is never
/// read for placeholders); other braces stay as they are.
pub fn fill(text: &str, values: &[(&str, &dyn fmt::Display)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after.split_once('}').and_then(|(name, tail)| {
            let (_, value) = values.iter().find(|(n, _)| *n == name)?;
            Some((value, tail))
        });
        match value {
            Some((value, tail)) => {
                out.push_str(&value.to_string());
                rest = tail;
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Finland's time zone.
const HELSINKI: &str = "Europe/Helsinki";

/// The wall-clock time in Finland at `t`: (date, hour, minute). `None` only for a time outside
/// the calendar (before year 1 or after 9999).
pub fn helsinki_local(t: Timestamp) -> Option<(Date, u8, u8)> {
    let instant = jiff::Timestamp::from_millisecond(t.millis()).ok()?;
    let zone = jiff::tz::TimeZone::get(HELSINKI).ok()?;
    let local = instant.to_zoned(zone);
    let year = u16::try_from(local.year()).ok()?;
    let month = u8::try_from(local.month()).ok()?;
    let day = u8::try_from(local.day()).ok()?;
    let date = Date::new(year, month, day).ok()?;
    Some((
        date,
        u8::try_from(local.hour()).ok()?,
        u8::try_from(local.minute()).ok()?,
    ))
}

/// The calendar day in Finland at `t` (see [`helsinki_local`]).
pub fn helsinki_date(t: Timestamp) -> Option<Date> {
    helsinki_local(t).map(|(date, _, _)| date)
}

/// Completed years of a person born on `birth`, on `day`. A person born on 29 February becomes
/// a year older on 28 February in a common year (the last day of the month, as Finnish law
/// counts periods of years: laki säädettyjen määräaikain laskemisesta 150/1930, 3 §).
pub fn age_on(birth: Date, day: Date) -> u32 {
    let years = i32::from(day.year()) - i32::from(birth.year());
    let anniversary_day = if birth.month() == 2 && birth.day() == 29 {
        Date::new(day.year(), 2, 29).map_or(28, |_| 29)
    } else {
        birth.day()
    };
    let before_anniversary = (day.month(), day.day()) < (birth.month(), anniversary_day);
    u32::try_from(years - i32::from(before_anniversary)).unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        Date::parse(s).unwrap()
    }

    #[test]
    fn the_language_follows_accept_language() {
        let en = Lang::En;
        assert_eq!(Lang::negotiate(None, en), Lang::En);
        assert_eq!(
            Lang::negotiate(Some("fi-FI,fi;q=0.9,en;q=0.8"), en),
            Lang::Fi
        );
        assert_eq!(
            Lang::negotiate(Some("de-DE, sv;q=0.5, en;q=0.4"), en),
            Lang::Sv
        );
        assert_eq!(Lang::negotiate(Some("en;q=0.3, SV-fi;q=0.7"), en), Lang::Sv);
        assert_eq!(Lang::negotiate(Some("fi;q=0, de"), en), Lang::En);
        assert_eq!(Lang::negotiate(Some("de"), Lang::Fi), Lang::Fi);
        assert_eq!(Lang::negotiate(Some("sv, fi"), en), Lang::Sv);
        assert_eq!(Lang::parse("fi"), Some(Lang::Fi));
        assert_eq!(Lang::parse("FI"), None);
        assert_eq!(Lang::parse("fi-FI"), None);
    }

    #[test]
    fn placeholders_are_filled() {
        assert_eq!(
            fill(
                "{count} entries of {who}; {count}",
                &[("count", &3), ("who", &"<x>")]
            ),
            "3 entries of <x>; 3"
        );
        assert_eq!(
            fill("{a} {b} {c} {", &[("a", &"{b}"), ("b", &"x")]),
            "{b} x {c} {"
        );
    }

    #[test]
    fn ages_count_completed_years_on_the_day() {
        for (birth, day, age) in [
            ("2012-03-10", "2026-03-09", 13),
            ("2012-03-10", "2026-03-10", 14),
            ("2011-11-24", "2026-11-24", 15),
            ("2011-11-25", "2026-11-24", 14),
            ("2008-06-15", "2026-06-14", 17),
            ("2008-06-15", "2026-06-15", 18),
            // Born on a leap day: a year older on 28 February in a common year.
            ("2008-02-29", "2026-02-27", 17),
            ("2008-02-29", "2026-02-28", 18),
            ("2008-02-29", "2028-02-28", 19),
            ("2008-02-29", "2028-02-29", 20),
            ("2026-11-24", "2026-11-24", 0),
            ("2027-01-01", "2026-11-24", 0),
        ] {
            assert_eq!(age_on(d(birth), d(day)), age, "{birth} on {day}");
        }
    }

    #[test]
    fn helsinki_days_follow_the_finnish_clock() {
        // 2026-03-28T22:30Z is 00:30 on the 29th in Finland (UTC+2, before summer time).
        let t = Timestamp::parse_rfc3339("2026-03-28T22:30:00Z").unwrap();
        assert_eq!(helsinki_local(t), Some((d("2026-03-29"), 0, 30)));
        // Summer time (UTC+3) from 2026-03-29T01:00Z.
        let t = Timestamp::parse_rfc3339("2026-07-01T21:15:00Z").unwrap();
        assert_eq!(helsinki_local(t), Some((d("2026-07-02"), 0, 15)));
        let t = Timestamp::parse_rfc3339("2026-11-24T21:59:59Z").unwrap();
        assert_eq!(helsinki_date(t), Some(d("2026-11-24")));
        let t = Timestamp::parse_rfc3339("2026-11-24T22:00:00Z").unwrap();
        assert_eq!(helsinki_date(t), Some(d("2026-11-25")));
    }
}

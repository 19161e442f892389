//! Time and randomness as values passed in, never reached for.
//!
//! Owns: [`Timestamp`] (milliseconds since the Unix epoch), the [`Clock`] and [`Random`] traits,
//! their system implementations and the deterministic ones tests use. Pure code takes a
//! `Timestamp` or a `&dyn Random` argument; only the IO edge constructs [`SystemClock`] or
//! [`SystemRandom`].

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// A point in time: milliseconds since 1970-01-01T00:00:00Z (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    pub const fn from_secs(secs: i64) -> Self {
        Timestamp(secs.saturating_mul(1000))
    }

    pub const fn millis(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch, rounded down.
    pub const fn secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    pub fn saturating_add(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_add(duration_millis(d)))
    }

    pub fn saturating_sub(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_sub(duration_millis(d)))
    }

    /// The time from `earlier` to `self`, zero when `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }

    /// RFC 3339 in UTC with millisecond precision, e.g. `2026-11-23T15:41:00.123Z`.
    pub fn rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(t) => format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.millisecond()
            ),
            Err(_) => format!("@{}ms", self.0),
        }
    }

    /// Parses RFC 3339 (`2026-11-23T15:41:00Z`, with optional fraction and offset).
    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        let t =
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
        let ms = t.unix_timestamp_nanos() / 1_000_000;
        i64::try_from(ms).ok().map(Timestamp)
    }
}

/// Finland's civil time (the `Europe/Helsinki` zone) as the EU rule of 1996 makes it: UTC+2
/// (EET), and UTC+3 (EEST) from 01:00 UTC on the last Sunday of March until 01:00 UTC on the
/// last Sunday of October. No time-zone database is needed for times from 1996 on.
impl Timestamp {
    /// The offset from UTC in Helsinki at this instant, in seconds, and its abbreviation.
    pub fn helsinki_offset(self) -> (i64, &'static str) {
        let Ok(t) = time::OffsetDateTime::from_unix_timestamp(self.secs()) else {
            return (2 * 3600, "EET");
        };
        let year = t.year();
        let summer = match (
            last_sunday_one_utc(year, time::Month::March),
            last_sunday_one_utc(year, time::Month::October),
        ) {
            (Some(start), Some(end)) => (start..end).contains(&self.secs()),
            _ => false,
        };
        if summer {
            (3 * 3600, "EEST")
        } else {
            (2 * 3600, "EET")
        }
    }

    /// The local time in Helsinki to the second, with its zone, e.g. `2026-11-23 17:41:00 EET`.
    pub fn helsinki(self) -> String {
        let (offset, zone) = self.helsinki_offset();
        match time::OffsetDateTime::from_unix_timestamp(self.secs().saturating_add(offset)) {
            Ok(t) => format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02} {zone}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            ),
            Err(_) => self.rfc3339(),
        }
    }
}

impl Timestamp {
    /// The start of a day in Helsinki (`2026-11-23`: 22:00 UTC the day before in winter,
    /// 21:00 UTC in summer); `None` when `date` is not a `YYYY-MM-DD` date.
    pub fn helsinki_day_start(date: &str) -> Option<Timestamp> {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        let midnight_utc = time::Date::parse(date, &format)
            .ok()?
            .midnight()
            .assume_utc()
            .unix_timestamp();
        // Summer time begins and ends at 01:00 UTC, never near a Helsinki midnight: the offset
        // two hours before the same wall time in UTC is the offset of that midnight.
        let (offset, _) = Timestamp::from_secs(midnight_utc - 2 * 3600).helsinki_offset();
        Some(Timestamp::from_secs(midnight_utc - offset))
    }
}

/// 01:00 UTC on the last Sunday of `month` (March or October: 31 days) of `year`, in seconds
/// since the epoch.
fn last_sunday_one_utc(year: i32, month: time::Month) -> Option<i64> {
    let last = time::Date::from_calendar_date(year, month, 31).ok()?;
    let back = i64::from(last.weekday().number_days_from_sunday());
    let sunday = last.checked_sub(time::Duration::days(back))?;
    Some(sunday.midnight().assume_utc().unix_timestamp() + 3600)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

fn duration_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Where "now" comes from.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The operating system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(duration_millis)
            .unwrap_or(0);
        Timestamp(ms)
    }
}

/// A clock that moves only when told to: for tests of expiry and retry.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        ManualClock(AtomicI64::new(start.0))
    }

    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::SeqCst);
    }

    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(duration_millis(d), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

/// Where randomness comes from.
pub trait Random: Send + Sync + 'static {
    /// Fills `buf` with random bytes.
    fn fill(&self, buf: &mut [u8]);

    /// A uniformly distributed value in `0..n` (0 when `n` is 0).
    fn below(&self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Rejection sampling keeps the distribution uniform.
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let mut b = [0u8; 8];
            self.fill(&mut b);
            let v = u64::from_le_bytes(b);
            if v < zone {
                return v % n;
            }
        }
    }
}

/// The operating system's CSPRNG (through ring).
#[derive(Debug)]
pub struct SystemRandom(ring::rand::SystemRandom);

impl Default for SystemRandom {
    fn default() -> Self {
        SystemRandom::new()
    }
}

impl SystemRandom {
    pub fn new() -> Self {
        SystemRandom(ring::rand::SystemRandom::new())
    }
}

impl Random for SystemRandom {
    fn fill(&self, buf: &mut [u8]) {
        use ring::rand::SecureRandom;
        // ring's SystemRandom fails only when the OS has no entropy source at all, which the
        // gateway cannot run without; there is no meaningful way to continue.
        #[allow(clippy::expect_used)]
        self.0
            .fill(buf)
            .expect("operating system random source failed");
    }
}

/// A deterministic generator (xorshift64*) for tests. Never for keys or identifiers.
#[derive(Debug)]
pub struct SeededRandom(Mutex<u64>);

impl SeededRandom {
    pub fn new(seed: u64) -> Self {
        SeededRandom(Mutex::new(seed.max(1)))
    }
}

impl Random for SeededRandom {
    fn fill(&self, buf: &mut [u8]) {
        let mut state = match self.0.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        for chunk in buf.chunks_mut(8) {
            let mut x = *state;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            *state = x;
            let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// A random identifier in UUID version 4 form, e.g. for transfer ids.
pub fn uuid_v4(random: &dyn Random) -> String {
    let mut b = [0u8; 16];
    random.fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Parses lower- or upper-case hexadecimal; `None` on odd length or a non-hex digit.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn helsinki_time_follows_the_eu_summer_time_rule() {
        let at = |s: &str| Timestamp::parse_rfc3339(s).unwrap().helsinki();
        for (utc, local) in [
            // Winter.
            ("2026-01-15T10:00:00Z", "2026-01-15 12:00:00 EET"),
            ("2026-12-31T22:30:00Z", "2027-01-01 00:30:00 EET"),
            // 2026: summer time from Sunday 29 March 01:00 UTC to Sunday 25 October 01:00 UTC.
            ("2026-03-29T00:59:59Z", "2026-03-29 02:59:59 EET"),
            ("2026-03-29T01:00:00Z", "2026-03-29 04:00:00 EEST"),
            ("2026-03-28T01:00:00Z", "2026-03-28 03:00:00 EET"),
            ("2026-07-01T12:00:00Z", "2026-07-01 15:00:00 EEST"),
            ("2026-10-25T00:59:59Z", "2026-10-25 03:59:59 EEST"),
            ("2026-10-25T01:00:00Z", "2026-10-25 03:00:00 EET"),
            ("2026-10-18T01:00:00Z", "2026-10-18 04:00:00 EEST"),
            // 2024: 31 March was itself the last Sunday; October's was the 27th.
            ("2024-03-31T00:59:59.999Z", "2024-03-31 02:59:59 EET"),
            ("2024-03-31T01:00:00Z", "2024-03-31 04:00:00 EEST"),
            ("2024-03-24T01:00:00Z", "2024-03-24 03:00:00 EET"),
            ("2024-10-27T00:59:59Z", "2024-10-27 03:59:59 EEST"),
            ("2024-10-27T01:00:00Z", "2024-10-27 03:00:00 EET"),
            // 2027: 28 March and 31 October (October's last day a Sunday).
            ("2027-03-28T01:00:00Z", "2027-03-28 04:00:00 EEST"),
            ("2027-10-31T00:59:59Z", "2027-10-31 03:59:59 EEST"),
            ("2027-10-31T01:00:00Z", "2027-10-31 03:00:00 EET"),
        ] {
            assert_eq!(at(utc), local, "{utc}");
        }
        let day = |d: &str| Timestamp::helsinki_day_start(d).map(Timestamp::rfc3339);
        assert_eq!(day("2026-11-23").unwrap(), "2026-11-22T22:00:00.000Z");
        assert_eq!(day("2026-07-01").unwrap(), "2026-06-30T21:00:00.000Z");
        // The days summer time begins (23 hours) and ends (25 hours) start at the old offset.
        assert_eq!(day("2026-03-29").unwrap(), "2026-03-28T22:00:00.000Z");
        assert_eq!(day("2026-03-30").unwrap(), "2026-03-29T21:00:00.000Z");
        assert_eq!(day("2026-10-25").unwrap(), "2026-10-24T21:00:00.000Z");
        assert_eq!(day("2026-10-26").unwrap(), "2026-10-25T22:00:00.000Z");
        assert_eq!(day("2026-02-30"), None);
        assert_eq!(day("23.11.2026"), None);
        let summer = Timestamp::parse_rfc3339("2026-06-01T00:00:00Z").unwrap();
        assert_eq!(summer.helsinki_offset(), (10_800, "EEST"));
        assert_eq!(Timestamp::from_millis(0).helsinki_offset(), (7_200, "EET"));
    }

    use super::*;

    #[test]
    fn rfc3339_round_trips() {
        let t = Timestamp::from_millis(1_795_448_460_123);
        let s = t.rfc3339();
        assert_eq!(s, "2026-11-23T15:41:00.123Z");
        assert_eq!(Timestamp::parse_rfc3339(&s), Some(t));
    }

    #[test]
    fn below_stays_in_range_and_uuid_has_version() {
        let r = SeededRandom::new(7);
        for n in [1u64, 2, 3, 10, 1000] {
            for _ in 0..100 {
                assert!(r.below(n) < n);
            }
        }
        let id = uuid_v4(&r);
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
        assert_eq!(unhex("000fFF"), Some(vec![0, 15, 255]));
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("0"), None);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Timestamp::from_secs(100));
        assert_eq!(c.now().secs(), 100);
        c.advance(Duration::from_secs(5));
        assert_eq!(c.now().secs(), 105);
    }
}

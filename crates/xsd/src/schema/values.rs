//! The built-in datatypes of XML Schema 1.0 Part 2: lexical checks, values and ordering.
//!
//! Owns: [`Builtin`] (every built-in simple type the engine knows), whitespace normalization,
//! parsing a lexical form into a [`Value`] in the type's value space, and comparing values
//! (total order where the spec gives one, `None` where it is indeterminate). Lexical rules
//! follow libxml2 2.9 where it is laxer or stricter than the letter of the spec (documented
//! per type), because libxml2 is the reference the gateway is tested against.
//!
//! It must not: know about schemas, facets or documents. Pure functions only.

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::reader::{is_name, is_ncname, is_nmtoken, split_qname};

/// The `whiteSpace` facet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WhiteSpace {
    Preserve,
    Replace,
    Collapse,
}

/// For a type that [`Builtin::refuses_padding`]: whether this value's leading or trailing
/// whitespace is nevertheless accepted. libxml2 2.9 accepts trailing (never leading)
/// whitespace after a `dateTime` that has a time zone, and nothing else.
pub fn padding_tolerated(t: Builtin, raw: &str) -> bool {
    let ws = [' ', '\t', '\n', '\r'];
    let leading = raw.starts_with(ws);
    let trailing = raw.ends_with(ws);
    if !leading && !trailing {
        return true;
    }
    !leading
        && t == Builtin::DateTime
        && parse_date_time(Builtin::DateTime, raw.trim_end_matches(ws))
            .is_ok_and(|v| v.tz.is_some())
}

/// Applies a `whiteSpace` facet, borrowing when nothing changes.
pub fn normalize(value: &str, ws: WhiteSpace) -> Cow<'_, str> {
    match ws {
        WhiteSpace::Preserve => Cow::Borrowed(value),
        WhiteSpace::Replace => {
            if value.bytes().any(|b| matches!(b, b'\t' | b'\n' | b'\r')) {
                Cow::Owned(value.replace(['\t', '\n', '\r'], " "))
            } else {
                Cow::Borrowed(value)
            }
        }
        WhiteSpace::Collapse => {
            let bytes = value.as_bytes();
            // One pass: any tab or line end, a space at the start, or two spaces in a row
            // (a space at the end is checked after the loop).
            let mut previous_space = true;
            let mut needs = false;
            for &b in bytes {
                match b {
                    b'\t' | b'\n' | b'\r' => {
                        needs = true;
                        break;
                    }
                    b' ' => {
                        if previous_space {
                            needs = true;
                            break;
                        }
                        previous_space = true;
                    }
                    _ => previous_space = false,
                }
            }
            needs |= previous_space && !bytes.is_empty();
            if !needs {
                return Cow::Borrowed(value);
            }
            let mut out = String::with_capacity(value.len());
            for word in value.split([' ', '\t', '\n', '\r']) {
                if word.is_empty() {
                    continue;
                }
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(word);
            }
            Cow::Owned(out)
        }
    }
}

macro_rules! builtins {
    ($($variant:ident => $name:literal,)*) => {
        /// Every built-in simple type (lists such as `NMTOKENS` are built from their items by
        /// the compiler and appear here only by name).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Builtin { $($variant,)* }

        impl Builtin {
            /// The local name in the XML Schema namespace.
            pub fn name(self) -> &'static str {
                match self { $(Builtin::$variant => $name,)* }
            }

            /// Looks a built-in up by its local name.
            pub fn by_name(name: &str) -> Option<Builtin> {
                match name { $($name => Some(Builtin::$variant),)* _ => None }
            }

            pub const ALL: &'static [Builtin] = &[$(Builtin::$variant,)*];
        }
    };
}

builtins! {
    AnySimpleType => "anySimpleType",
    String => "string",
    NormalizedString => "normalizedString",
    Token => "token",
    Language => "language",
    Name => "Name",
    NcName => "NCName",
    Id => "ID",
    IdRef => "IDREF",
    Entity => "ENTITY",
    NmToken => "NMTOKEN",
    NmTokens => "NMTOKENS",
    IdRefs => "IDREFS",
    Entities => "ENTITIES",
    Boolean => "boolean",
    Decimal => "decimal",
    Integer => "integer",
    NonPositiveInteger => "nonPositiveInteger",
    NegativeInteger => "negativeInteger",
    Long => "long",
    Int => "int",
    Short => "short",
    Byte => "byte",
    NonNegativeInteger => "nonNegativeInteger",
    UnsignedLong => "unsignedLong",
    UnsignedInt => "unsignedInt",
    UnsignedShort => "unsignedShort",
    UnsignedByte => "unsignedByte",
    PositiveInteger => "positiveInteger",
    Float => "float",
    Double => "double",
    Duration => "duration",
    DateTime => "dateTime",
    Time => "time",
    Date => "date",
    GYearMonth => "gYearMonth",
    GYear => "gYear",
    GMonthDay => "gMonthDay",
    GDay => "gDay",
    GMonth => "gMonth",
    HexBinary => "hexBinary",
    Base64Binary => "base64Binary",
    AnyUri => "anyURI",
    QName => "QName",
    Notation => "NOTATION",
}

/// The families of values that can be compared with each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Any,
    String,
    Boolean,
    Decimal,
    Float,
    Double,
    Duration,
    DateTime(Builtin),
    HexBinary,
    Base64Binary,
    AnyUri,
    QName,
    Notation,
}

impl Builtin {
    /// The type this one is derived from (`None` for `anySimpleType`).
    pub fn base(self) -> Option<Builtin> {
        use Builtin::*;
        Some(match self {
            AnySimpleType => return None,
            String | Boolean | Decimal | Float | Double | Duration | DateTime | Time | Date
            | GYearMonth | GYear | GMonthDay | GDay | GMonth | HexBinary | Base64Binary
            | AnyUri | QName | Notation | NmTokens | IdRefs | Entities => AnySimpleType,
            NormalizedString => String,
            Token => NormalizedString,
            Language | Name | NmToken => Token,
            NcName => Name,
            Id | IdRef | Entity => NcName,
            Integer => Decimal,
            NonPositiveInteger | Long | NonNegativeInteger => Integer,
            NegativeInteger => NonPositiveInteger,
            Int => Long,
            Short => Int,
            Byte => Short,
            UnsignedLong | PositiveInteger => NonNegativeInteger,
            UnsignedInt => UnsignedLong,
            UnsignedShort => UnsignedInt,
            UnsignedByte => UnsignedShort,
        })
    }

    /// Whether `self` is `other` or derived from it.
    pub fn derives_from(self, other: Builtin) -> bool {
        let mut t = Some(self);
        while let Some(b) = t {
            if b == other {
                return true;
            }
            t = b.base();
        }
        false
    }

    /// The built-in list types and their item type.
    pub fn list_item(self) -> Option<Builtin> {
        match self {
            Builtin::NmTokens => Some(Builtin::NmToken),
            Builtin::IdRefs => Some(Builtin::IdRef),
            Builtin::Entities => Some(Builtin::Entity),
            _ => None,
        }
    }

    pub fn family(self) -> Family {
        use Builtin::*;
        match self {
            AnySimpleType | NmTokens | IdRefs | Entities => Family::Any,
            Boolean => Family::Boolean,
            Float => Family::Float,
            Double => Family::Double,
            Duration => Family::Duration,
            DateTime | Time | Date | GYearMonth | GYear | GMonthDay | GDay | GMonth => {
                Family::DateTime(self)
            }
            HexBinary => Family::HexBinary,
            Base64Binary => Family::Base64Binary,
            AnyUri => Family::AnyUri,
            QName => Family::QName,
            Notation => Family::Notation,
            _ if self.derives_from(Decimal) => Family::Decimal,
            _ => Family::String,
        }
    }

    /// The `whiteSpace` facet value of the built-in.
    pub fn whitespace(self) -> WhiteSpace {
        match self {
            Builtin::String | Builtin::AnySimpleType => WhiteSpace::Preserve,
            Builtin::NormalizedString => WhiteSpace::Replace,
            _ => WhiteSpace::Collapse,
        }
    }

    /// Whether a value with leading or trailing whitespace is refused even though the type's
    /// `whiteSpace` is `collapse`. XML Schema says it should be collapsed away; libxml2 2.9
    /// refuses it for the date/time types, `duration` and the fixed-width integers (except
    /// trailing whitespace after a `dateTime` with a time zone: [`padding_tolerated`]), and
    /// the engine follows the stricter reference on purpose.
    pub fn refuses_padding(self) -> bool {
        use Builtin::*;
        matches!(
            self,
            Duration
                | DateTime
                | Time
                | Date
                | GYearMonth
                | GYear
                | GMonthDay
                | GDay
                | GMonth
                | Long
                | Int
                | Short
                | Byte
                | UnsignedLong
                | UnsignedInt
                | UnsignedShort
                | UnsignedByte
        )
    }

    /// Whether the type is ordered (min/max facets apply).
    pub fn is_ordered(self) -> bool {
        matches!(
            self.family(),
            Family::Decimal
                | Family::Float
                | Family::Double
                | Family::Duration
                | Family::DateTime(_)
        )
    }

    /// Parses a whitespace-normalized lexical form. QNames are only checked for syntax here;
    /// resolving the prefix needs the instance's namespace context.
    pub fn parse(self, s: &str) -> Result<Value<'_>, LexicalError> {
        use Builtin::*;
        let value = match self {
            AnySimpleType | String | NormalizedString | Token => Value::Str(Cow::Borrowed(s)),
            Language => {
                if !is_language(s) {
                    return Err(LexicalError);
                }
                Value::Str(Cow::Borrowed(s))
            }
            Name => check(is_name(s), s)?,
            NcName | Id | IdRef | Entity => check(is_ncname(s), s)?,
            NmToken => check(is_nmtoken(s), s)?,
            NmTokens | IdRefs | Entities => return Err(LexicalError),
            Boolean => Value::Boolean(match s {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => return Err(LexicalError),
            }),
            Decimal => Value::Decimal(parse_decimal(s)?),
            Integer | NonPositiveInteger | NegativeInteger | Long | Int | Short | Byte
            | NonNegativeInteger | UnsignedLong | UnsignedInt | UnsignedShort | UnsignedByte
            | PositiveInteger => {
                let d = parse_integer(s)?;
                if !integer_in_range(self, &d) {
                    return Err(LexicalError);
                }
                Value::Decimal(d)
            }
            Float => Value::Float(parse_float(s, true)?),
            Double => Value::Double(parse_float(s, false)?),
            Duration => Value::Duration(parse_duration(s)?),
            DateTime | Time | Date | GYearMonth | GYear | GMonthDay | GDay | GMonth => {
                Value::DateTime(parse_date_time(self, s)?)
            }
            HexBinary => {
                let b = s.as_bytes();
                if !b.len().is_multiple_of(2) || !b.iter().all(u8::is_ascii_hexdigit) {
                    return Err(LexicalError);
                }
                Value::HexBinary(if b.iter().any(u8::is_ascii_lowercase) {
                    Cow::Owned(s.to_ascii_uppercase())
                } else {
                    Cow::Borrowed(s)
                })
            }
            Base64Binary => parse_base64(s)?,
            AnyUri => {
                if !is_any_uri(s) {
                    return Err(LexicalError);
                }
                Value::Str(Cow::Borrowed(s))
            }
            QName | Notation => {
                if split_qname(s).is_none() {
                    return Err(LexicalError);
                }
                Value::Str(Cow::Borrowed(s))
            }
        };
        Ok(value)
    }
}

fn check(ok: bool, s: &str) -> Result<Value<'_>, LexicalError> {
    if ok {
        Ok(Value::Str(Cow::Borrowed(s)))
    } else {
        Err(LexicalError)
    }
}

/// The value is not in the lexical space of the type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the value is not in the lexical space of the type")]
pub struct LexicalError;

/// A value in the value space of a built-in type.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Str(Cow<'a, str>),
    Boolean(bool),
    Decimal(Decimal<'a>),
    Float(f64),
    Double(f64),
    Duration(Duration),
    DateTime(DateTime),
    /// Upper-case hex digits.
    HexBinary(Cow<'a, str>),
    /// The base64 alphabet characters (padding included), other characters removed.
    Base64Binary {
        text: Cow<'a, str>,
        octets: usize,
    },
}

impl Value<'_> {
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Str(s) => Value::Str(Cow::Owned(s.into_owned())),
            Value::Boolean(b) => Value::Boolean(b),
            Value::Decimal(d) => Value::Decimal(d.into_owned()),
            Value::Float(f) => Value::Float(f),
            Value::Double(f) => Value::Double(f),
            Value::Duration(d) => Value::Duration(d),
            Value::DateTime(d) => Value::DateTime(d),
            Value::HexBinary(s) => Value::HexBinary(Cow::Owned(s.into_owned())),
            Value::Base64Binary { text, octets } => Value::Base64Binary {
                text: Cow::Owned(text.into_owned()),
                octets,
            },
        }
    }

    /// Length in the units of the `length` facets: characters for strings and URIs, octets
    /// for binary types. `None` where length facets do not apply.
    pub fn length(&self) -> Option<usize> {
        match self {
            Value::Str(s) => Some(if s.is_ascii() {
                s.len()
            } else {
                s.chars().count()
            }),
            Value::HexBinary(s) => Some(s.len() / 2),
            Value::Base64Binary { octets, .. } => Some(*octets),
            _ => None,
        }
    }

    /// Equality in the value space (used by `enumeration` and `fixed`).
    pub fn same(&self, other: &Value<'_>) -> bool {
        match (self, other) {
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Boolean(a), Value::Boolean(b)) => a == b,
            (Value::HexBinary(a), Value::HexBinary(b)) => a == b,
            (Value::Base64Binary { text: a, .. }, Value::Base64Binary { text: b, .. }) => a == b,
            (Value::Float(a), Value::Float(b)) | (Value::Double(a), Value::Double(b)) => {
                a == b || (a.is_nan() && b.is_nan())
            }
            _ => compare(self, other) == Some(Ordering::Equal),
        }
    }
}

/// Order of two values of the same family; `None` when incomparable or indeterminate.
pub fn compare(a: &Value<'_>, b: &Value<'_>) -> Option<Ordering> {
    match (a, b) {
        (Value::Decimal(x), Value::Decimal(y)) => Some(x.cmp_value(y)),
        (Value::Float(x), Value::Float(y)) | (Value::Double(x), Value::Double(y)) => {
            x.partial_cmp(y)
        }
        (Value::DateTime(x), Value::DateTime(y)) => x.compare(y),
        (Value::Duration(x), Value::Duration(y)) => x.compare(y),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Decimal

/// An exact decimal: sign, integer digits without leading zeros, fraction digits without
/// trailing zeros. Zero has both empty and is never negative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal<'a> {
    pub negative: bool,
    pub int: Cow<'a, str>,
    pub frac: Cow<'a, str>,
}

impl Decimal<'_> {
    pub fn into_owned(self) -> Decimal<'static> {
        Decimal {
            negative: self.negative,
            int: Cow::Owned(self.int.into_owned()),
            frac: Cow::Owned(self.frac.into_owned()),
        }
    }

    pub fn is_zero(&self) -> bool {
        self.int.is_empty() && self.frac.is_empty()
    }

    /// `totalDigits` counts significant digits: leading and trailing zeros excluded.
    pub fn total_digits(&self) -> usize {
        if self.int.is_empty() {
            let f = self.frac.trim_start_matches('0');
            // Zeros between the point and the first significant digit count for libxml2.
            if f.is_empty() { 1 } else { self.frac.len() }
        } else {
            self.int.len() + self.frac.len()
        }
    }

    pub fn fraction_digits(&self) -> usize {
        self.frac.len()
    }

    fn cmp_magnitude(&self, other: &Decimal<'_>) -> Ordering {
        self.int
            .len()
            .cmp(&other.int.len())
            .then_with(|| self.int.as_bytes().cmp(other.int.as_bytes()))
            .then_with(|| self.frac.as_bytes().cmp(other.frac.as_bytes()))
    }

    pub fn cmp_value(&self, other: &Decimal<'_>) -> Ordering {
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.cmp_magnitude(other),
            (true, true) => other.cmp_magnitude(self),
        }
    }
}

/// `decimal` lexical form: `[+-]?(digits(.digits?)?|.digits)`.
pub fn parse_decimal(s: &str) -> Result<Decimal<'_>, LexicalError> {
    let (negative, body) = split_sign(s);
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, f),
        None => (body, ""),
    };
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(LexicalError);
    }
    Ok(make_decimal(negative, int, frac))
}

fn make_decimal<'a>(negative: bool, int: &'a str, frac: &'a str) -> Decimal<'a> {
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    Decimal {
        negative: negative && !(int.is_empty() && frac.is_empty()),
        int: Cow::Borrowed(int),
        frac: Cow::Borrowed(frac),
    }
}

fn split_sign(s: &str) -> (bool, &str) {
    match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    }
}

/// `integer` lexical form: `[+-]?digits`.
pub fn parse_integer(s: &str) -> Result<Decimal<'_>, LexicalError> {
    let (negative, body) = split_sign(s);
    if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
        return Err(LexicalError);
    }
    Ok(make_decimal(negative, body, ""))
}

fn integer_in_range(t: Builtin, d: &Decimal<'_>) -> bool {
    use Builtin::*;
    let within = |min: &str, max: &str| {
        let min = parse_integer(min).ok();
        let max = parse_integer(max).ok();
        min.is_some_and(|m| d.cmp_value(&m) != Ordering::Less)
            && max.is_some_and(|m| d.cmp_value(&m) != Ordering::Greater)
    };
    match t {
        Integer => true,
        NonPositiveInteger => d.negative || d.is_zero(),
        NegativeInteger => d.negative,
        NonNegativeInteger => !d.negative,
        PositiveInteger => !d.negative && !d.is_zero(),
        Long => within("-9223372036854775808", "9223372036854775807"),
        Int => within("-2147483648", "2147483647"),
        Short => within("-32768", "32767"),
        Byte => within("-128", "127"),
        UnsignedLong => within("0", "18446744073709551615"),
        UnsignedInt => within("0", "4294967295"),
        UnsignedShort => within("0", "65535"),
        UnsignedByte => within("0", "255"),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------
// Float and double

/// libxml2's lexical rule: `NaN`, `-?INF`, or `[+-]?digits[.digits][(e|E)[+-]?digits*]`
/// (it accepts an empty exponent, and so do we).
fn parse_float(s: &str, single: bool) -> Result<f64, LexicalError> {
    match s {
        "NaN" => return Ok(f64::NAN),
        "INF" => return Ok(f64::INFINITY),
        "-INF" => return Ok(f64::NEG_INFINITY),
        _ => {}
    }
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let f = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - f;
    }
    if int_digits == 0 && frac_digits == 0 {
        return Err(LexicalError);
    }
    let mantissa_end = i;
    let mut exponent = "";
    if i < b.len() && matches!(b[i], b'e' | b'E') {
        i += 1;
        let e = i;
        if i < b.len() && matches!(b[i], b'+' | b'-') {
            i += 1;
        }
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        exponent = &s[e..i];
    }
    if i != b.len() {
        return Err(LexicalError);
    }
    let mut text = String::with_capacity(s.len() + 2);
    text.push_str(&s[..mantissa_end]);
    if text.ends_with('.') {
        text.push('0');
    }
    if !exponent.is_empty() && exponent.bytes().any(|c| c.is_ascii_digit()) {
        text.push('e');
        text.push_str(exponent);
    }
    let v: f64 = if single {
        text.parse::<f32>()
            .map(f64::from)
            .map_err(|_| LexicalError)?
    } else {
        text.parse::<f64>().map_err(|_| LexicalError)?
    };
    Ok(v)
}

// ---------------------------------------------------------------------------------------
// Dates and times

/// A date/time value of any of the eight date/time types. Missing fields hold the
/// reference values of XML Schema (year 1972-ish, month 12, day 31, midnight) only for
/// comparison; `kind` says which fields are meaningful.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    pub kind: Builtin,
    pub year: i64,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub nanos: u32,
    /// Offset from UTC in minutes, `None` when the value has no time zone.
    pub tz: Option<i16>,
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u8) -> u8 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 in the proleptic Gregorian calendar.
fn days_from_civil(y: i64, m: u8, d: u8) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl DateTime {
    /// Seconds on a local timeline (time zone not applied) and nanoseconds.
    fn local_key(&self) -> (i128, u32) {
        let days = days_from_civil(self.year, self.month, self.day);
        let secs = i128::from(days) * 86_400
            + i128::from(self.hour) * 3600
            + i128::from(self.minute) * 60
            + i128::from(self.second);
        (secs, self.nanos)
    }

    fn utc_key(&self) -> (i128, u32) {
        let (s, n) = self.local_key();
        (s - i128::from(self.tz.unwrap_or(0)) * 60, n)
    }

    /// The order of XML Schema Part 2 §3.2.7.4: values with and without a time zone are
    /// compared across the ±14 hour window, and are indeterminate inside it.
    pub fn compare(&self, other: &DateTime) -> Option<Ordering> {
        if self.kind != other.kind {
            return None;
        }
        match (self.tz.is_some(), other.tz.is_some()) {
            (true, true) | (false, false) => Some(self.utc_key().cmp(&other.utc_key())),
            (true, false) => {
                let a = self.utc_key();
                let (b, bn) = other.local_key();
                let window = 14 * 3600;
                if a < (b - window, bn) {
                    Some(Ordering::Less)
                } else if a > (b + window, bn) {
                    Some(Ordering::Greater)
                } else {
                    None
                }
            }
            (false, true) => other.compare(self).map(Ordering::reverse),
        }
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn two_digits(&mut self) -> Result<u8, LexicalError> {
        match self.b.get(self.i..self.i + 2) {
            Some([a, b]) if a.is_ascii_digit() && b.is_ascii_digit() => {
                self.i += 2;
                Ok((a - b'0') * 10 + (b - b'0'))
            }
            _ => Err(LexicalError),
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), LexicalError> {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err(LexicalError)
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn year(&mut self) -> Result<i64, LexicalError> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.i += 1;
        }
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        let digits = &self.b[start..self.i];
        if digits.len() < 4 || (digits.len() > 4 && digits[0] == b'0') || digits.len() > 18 {
            return Err(LexicalError);
        }
        let mut y: i64 = 0;
        for d in digits {
            y = y * 10 + i64::from(d - b'0');
        }
        if y == 0 {
            return Err(LexicalError);
        }
        Ok(if negative { -y } else { y })
    }

    fn time(&mut self, v: &mut DateTime) -> Result<(), LexicalError> {
        v.hour = self.two_digits()?;
        self.expect(b':')?;
        v.minute = self.two_digits()?;
        self.expect(b':')?;
        v.second = self.two_digits()?;
        if self.peek() == Some(b'.') {
            self.i += 1;
            let start = self.i;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.i += 1;
            }
            let digits = &self.b[start..self.i];
            if digits.is_empty() {
                return Err(LexicalError);
            }
            let mut nanos: u32 = 0;
            for k in 0..9 {
                nanos = nanos * 10 + u32::from(digits.get(k).map_or(0, |d| d - b'0'));
            }
            v.nanos = nanos;
        }
        let end_of_day = v.hour == 24 && v.minute == 0 && v.second == 0 && v.nanos == 0;
        if !(end_of_day || (v.hour < 24 && v.minute < 60 && v.second < 60)) {
            return Err(LexicalError);
        }
        Ok(())
    }

    fn timezone(&mut self, v: &mut DateTime) -> Result<(), LexicalError> {
        match self.peek() {
            None => Ok(()),
            Some(b'Z') => {
                self.i += 1;
                v.tz = Some(0);
                Ok(())
            }
            Some(sign @ (b'+' | b'-')) => {
                self.i += 1;
                let h = self.two_digits()?;
                self.expect(b':')?;
                let m = self.two_digits()?;
                if h > 23 || m > 59 {
                    return Err(LexicalError);
                }
                let total = i16::from(h) * 60 + i16::from(m);
                if total > 840 {
                    return Err(LexicalError);
                }
                v.tz = Some(if sign == b'-' { -total } else { total });
                Ok(())
            }
            Some(_) => Err(LexicalError),
        }
    }
}

/// Parses any of the date/time types.
pub fn parse_date_time(kind: Builtin, s: &str) -> Result<DateTime, LexicalError> {
    let mut v = DateTime {
        kind,
        year: 1972,
        month: 12,
        day: 31,
        hour: 0,
        minute: 0,
        second: 0,
        nanos: 0,
        tz: None,
    };
    let mut c = Cursor {
        b: s.as_bytes(),
        i: 0,
    };
    match kind {
        Builtin::DateTime | Builtin::Date | Builtin::GYearMonth | Builtin::GYear => {
            v.year = c.year()?;
            if kind != Builtin::GYear {
                c.expect(b'-')?;
                v.month = c.two_digits()?;
                if !(1..=12).contains(&v.month) {
                    return Err(LexicalError);
                }
                if kind == Builtin::GYearMonth {
                    v.day = 1;
                } else {
                    c.expect(b'-')?;
                    v.day = c.two_digits()?;
                    if v.day < 1 || v.day > days_in_month(v.year, v.month) {
                        return Err(LexicalError);
                    }
                }
            } else {
                v.month = 1;
                v.day = 1;
            }
            if kind == Builtin::DateTime {
                c.expect(b'T')?;
                c.time(&mut v)?;
            }
        }
        Builtin::Time => c.time(&mut v)?,
        Builtin::GMonthDay | Builtin::GMonth | Builtin::GDay => {
            c.expect(b'-')?;
            c.expect(b'-')?;
            if kind == Builtin::GDay {
                c.expect(b'-')?;
                v.month = 12;
                v.day = c.two_digits()?;
                if !(1..=31).contains(&v.day) {
                    return Err(LexicalError);
                }
            } else {
                v.month = c.two_digits()?;
                if !(1..=12).contains(&v.month) {
                    return Err(LexicalError);
                }
                if kind == Builtin::GMonthDay {
                    c.expect(b'-')?;
                    v.day = c.two_digits()?;
                    // gMonthDay allows 02-29 (a leap year is assumed).
                    if v.day < 1 || v.day > days_in_month(2000, v.month) {
                        return Err(LexicalError);
                    }
                } else {
                    v.day = 1;
                }
            }
        }
        _ => return Err(LexicalError),
    }
    c.timezone(&mut v)?;
    if c.i != c.b.len() {
        return Err(LexicalError);
    }
    Ok(v)
}

// ---------------------------------------------------------------------------------------
// Durations

/// A duration as months and seconds (both carry the sign).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration {
    pub months: i128,
    pub seconds: i128,
    pub nanos: i64,
}

impl Duration {
    /// The partial order of XML Schema: decided outright when one component is zero on
    /// both sides, otherwise by comparing against the four reference dateTimes.
    pub fn compare(&self, other: &Duration) -> Option<Ordering> {
        let refs: [(i64, u8, u8); 4] = [(1696, 9, 1), (1697, 2, 1), (1903, 3, 1), (1903, 7, 1)];
        let mut result: Option<Ordering> = None;
        for (y, m, d) in refs {
            let a = add_duration(y, m, d, self);
            let b = add_duration(y, m, d, other);
            let o = a.cmp(&b);
            match result {
                None => result = Some(o),
                Some(r) if r == o => {}
                Some(_) => return None,
            }
        }
        result
    }
}

fn add_duration(y: i64, m: u8, d: u8, dur: &Duration) -> (i128, i64) {
    let total_months = i128::from(y) * 12 + i128::from(m) - 1 + dur.months;
    let ny = i64::try_from(total_months.div_euclid(12)).unwrap_or(i64::MAX / 2);
    let nm = u8::try_from(total_months.rem_euclid(12) + 1).unwrap_or(1);
    let nd = d.min(days_in_month(ny, nm));
    let secs = i128::from(days_from_civil(ny, nm, nd)) * 86_400 + dur.seconds;
    (secs, dur.nanos)
}

fn parse_duration(s: &str) -> Result<Duration, LexicalError> {
    let (negative, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let body = body.strip_prefix('P').ok_or(LexicalError)?;
    let (date_part, time_part) = match body.split_once('T') {
        Some((d, t)) => {
            if t.is_empty() {
                return Err(LexicalError);
            }
            (d, Some(t))
        }
        None => (body, None),
    };
    let mut months: i128 = 0;
    let mut seconds: i128 = 0;
    let mut nanos: i64 = 0;
    let mut any = false;
    let mut rest = date_part;
    for (designator, factor_months, factor_secs) in
        [(b'Y', 12i128, 0i128), (b'M', 1, 0), (b'D', 0, 86_400)]
    {
        if let Some((n, r)) = take_number(rest, designator)? {
            months += n * factor_months;
            seconds += n * factor_secs;
            rest = r;
            any = true;
        }
    }
    if !rest.is_empty() {
        return Err(LexicalError);
    }
    if let Some(t) = time_part {
        let mut rest = t;
        let mut any_time = false;
        for (designator, factor) in [(b'H', 3600i128), (b'M', 60)] {
            if let Some((n, r)) = take_number(rest, designator)? {
                seconds += n * factor;
                rest = r;
                any_time = true;
            }
        }
        if !rest.is_empty() {
            let body = rest.strip_suffix('S').ok_or(LexicalError)?;
            let (int, frac) = match body.split_once('.') {
                Some((i, f)) => {
                    if f.is_empty() {
                        return Err(LexicalError);
                    }
                    (i, f)
                }
                None => (body, ""),
            };
            if int.is_empty()
                || !int.bytes().all(|b| b.is_ascii_digit())
                || !frac.bytes().all(|b| b.is_ascii_digit())
                || int.len() > 30
            {
                return Err(LexicalError);
            }
            seconds += int.parse::<i128>().map_err(|_| LexicalError)?;
            let mut n: i64 = 0;
            for k in 0..9 {
                n = n * 10 + i64::from(frac.as_bytes().get(k).map_or(0, |d| d - b'0'));
            }
            nanos = n;
            any_time = true;
        }
        if !any_time {
            return Err(LexicalError);
        }
        any = true;
    }
    if !any {
        return Err(LexicalError);
    }
    if negative {
        months = -months;
        seconds = -seconds;
        nanos = -nanos;
    }
    Ok(Duration {
        months,
        seconds,
        nanos,
    })
}

/// `digits` followed by `designator` at the start of `s`.
fn take_number(s: &str, designator: u8) -> Result<Option<(i128, &str)>, LexicalError> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || s.as_bytes().get(digits) != Some(&designator) {
        return Ok(None);
    }
    if digits > 30 {
        return Err(LexicalError);
    }
    let n = s[..digits].parse::<i128>().map_err(|_| LexicalError)?;
    Ok(Some((n, &s[digits + 1..])))
}

// ---------------------------------------------------------------------------------------
// Binary

fn base64_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// libxml2's rule: characters outside the alphabet are ignored; after the first `=` only
/// `=` may follow; the count of alphabet characters and padding must form whole quanta,
/// and the bits dropped by padding must be zero.
fn parse_base64(s: &str) -> Result<Value<'_>, LexicalError> {
    let b = s.as_bytes();
    let mut count = 0usize;
    let mut pad = 0usize;
    let mut last = 0u8;
    let mut seen_pad = false;
    for &c in b {
        if c == b'=' {
            seen_pad = true;
            pad += 1;
        } else if let Some(v) = base64_value(c) {
            if seen_pad {
                return Err(LexicalError);
            }
            count += 1;
            last = v;
        }
    }
    let mut octets = 3 * (count / 4);
    match pad {
        0 if count.is_multiple_of(4) => {}
        1 if count % 4 == 3 && last & !0x3c == 0 => octets += 2,
        2 if count % 4 == 2 && last & !0x30 == 0 => octets += 1,
        _ => return Err(LexicalError),
    }
    let text = if b.iter().all(|&c| c == b'=' || base64_value(c).is_some()) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(
            s.chars()
                .filter(|&c| c == '=' || (c.is_ascii() && base64_value(c as u8).is_some()))
                .collect(),
        )
    };
    Ok(Value::Base64Binary { text, octets })
}

// ---------------------------------------------------------------------------------------
// Strings

/// `language`: `[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*`.
fn is_language(s: &str) -> bool {
    let mut parts = s.split('-');
    let Some(first) = parts.next() else {
        return false;
    };
    if first.is_empty() || first.len() > 8 || !first.bytes().all(|b| b.is_ascii_alphabetic()) {
        return false;
    }
    parts.all(|p| !p.is_empty() && p.len() <= 8 && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// `anyURI` as libxml2 checks it: characters a URI would have to escape are accepted, then
/// the result must be an RFC 3986 URI reference.
pub fn is_any_uri(s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    let escaped: Vec<u8> = s
        .bytes()
        .map(|c| {
            if !(32..127).contains(&c) || b" <>\"{}|\\^`'".contains(&c) {
                b'_'
            } else {
                c
            }
        })
        .collect();
    uri_reference(&escaped)
}

fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim(c: u8) -> bool {
    matches!(
        c,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// Whether `s[i..]` starts with a valid pct-encoded triplet.
fn pct_at(s: &[u8], i: usize) -> bool {
    s.get(i) == Some(&b'%')
        && s.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
        && s.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
}

/// Consumes `pchar`s (plus `extra` characters) from `i`; returns the new index or `None`
/// on a malformed percent-encoding.
fn scan_chars(s: &[u8], mut i: usize, extra: &[u8]) -> Option<usize> {
    while i < s.len() {
        let c = s[i];
        if c == b'%' {
            if !pct_at(s, i) {
                return None;
            }
            i += 3;
        } else if is_unreserved(c)
            || is_sub_delim(c)
            || c == b':'
            || c == b'@'
            || extra.contains(&c)
        {
            i += 1;
        } else {
            break;
        }
    }
    Some(i)
}

fn uri_reference(s: &[u8]) -> bool {
    // Split off the fragment and the query, which allow the same characters.
    let (before_fragment, fragment) = match s.iter().position(|&c| c == b'#') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    if let Some(f) = fragment
        && scan_chars(f, 0, b"/?") != Some(f.len())
    {
        return false;
    }
    let (hier, query) = match before_fragment.iter().position(|&c| c == b'?') {
        Some(i) => (&before_fragment[..i], Some(&before_fragment[i + 1..])),
        None => (before_fragment, None),
    };
    if let Some(q) = query
        && scan_chars(q, 0, b"/?") != Some(q.len())
    {
        return false;
    }
    // A scheme is letters, digits, `+-.` starting with a letter, before the first `:`
    // that comes before any `/`.
    let colon = hier.iter().position(|&c| c == b':');
    let slash = hier.iter().position(|&c| c == b'/');
    let rest = match colon {
        Some(c) if slash.is_none_or(|sl| c < sl) => {
            let scheme = &hier[..c];
            let valid_scheme = scheme.first().is_some_and(u8::is_ascii_alphabetic)
                && scheme
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
            if !valid_scheme {
                // A relative reference's first segment may not contain a colon.
                return false;
            }
            &hier[c + 1..]
        }
        _ => hier,
    };
    hier_part(rest)
}

fn hier_part(s: &[u8]) -> bool {
    if let Some(after) = s.strip_prefix(b"//") {
        let end = after.iter().position(|&c| c == b'/').unwrap_or(after.len());
        let authority = &after[..end];
        if !authority_ok(authority) {
            return false;
        }
        return path_ok(&after[end..]);
    }
    path_ok(s)
}

fn authority_ok(a: &[u8]) -> bool {
    let host_port = match a.iter().rposition(|&c| c == b'@') {
        Some(i) => {
            let user = &a[..i];
            if scan_chars(user, 0, b"") != Some(user.len()) || user.contains(&b'@') {
                return false;
            }
            &a[i + 1..]
        }
        None => a,
    };
    if host_port.first() == Some(&b'[') {
        let Some(close) = host_port.iter().position(|&c| c == b']') else {
            return false;
        };
        let inside = &host_port[1..close];
        if inside.is_empty()
            || !inside
                .iter()
                .all(|&c| c.is_ascii_hexdigit() || matches!(c, b':' | b'.' | b'v' | b'V'))
        {
            return false;
        }
        let after = &host_port[close + 1..];
        return after.is_empty() || (after[0] == b':' && after[1..].iter().all(u8::is_ascii_digit));
    }
    let (host, port) = match host_port.iter().rposition(|&c| c == b':') {
        Some(i) => (&host_port[..i], Some(&host_port[i + 1..])),
        None => (host_port, None),
    };
    if let Some(p) = port
        && !p.iter().all(u8::is_ascii_digit)
    {
        return false;
    }
    let mut i = 0;
    while i < host.len() {
        let c = host[i];
        if c == b'%' {
            if !pct_at(host, i) {
                return false;
            }
            i += 3;
        } else if is_unreserved(c) || is_sub_delim(c) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

fn path_ok(p: &[u8]) -> bool {
    scan_chars(p, 0, b"/") == Some(p.len())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ok(t: Builtin, s: &str) -> bool {
        t.parse(s).is_ok()
    }

    #[test]
    fn lexical_table() {
        use Builtin::*;
        let cases: &[(Builtin, &str, bool)] = &[
            (Boolean, "true", true),
            (Boolean, "1", true),
            (Boolean, "True", false),
            (Decimal, "1.50", true),
            (Decimal, "-.5", true),
            (Decimal, "5.", true),
            (Decimal, ".", false),
            (Decimal, "+", false),
            (Decimal, "1e3", false),
            (Integer, "007", true),
            (Integer, "1.0", false),
            (Short, "32767", true),
            (Short, "32768", false),
            (Byte, "-128", true),
            (UnsignedByte, "-0", true),
            (UnsignedByte, "-1", false),
            (PositiveInteger, "0", false),
            (NegativeInteger, "-0", false),
            (NonPositiveInteger, "-0", true),
            (Long, "9223372036854775808", false),
            (Double, "1e", true),
            (Double, "+INF", false),
            (Double, "-INF", true),
            (Double, ".5e3", true),
            (Double, "1.", true),
            (Double, "e3", false),
            (Float, "NaN", true),
            (Date, "2020-02-29", true),
            (Date, "2019-02-29", false),
            (Date, "2020-02-30", false),
            (Date, "0000-01-01", false),
            (Date, "-0001-01-01", true),
            (Date, "12345-01-01", true),
            (Date, "02020-01-01", false),
            (Date, "2020-01-01+14:00", true),
            (Date, "2020-01-01+14:01", false),
            (Date, "2020-1-01", false),
            (Date, "2020-13-01", false),
            (DateTime, "2020-01-01T24:00:00", true),
            (DateTime, "2020-01-01T24:00:01", false),
            (DateTime, "2020-01-01T23:59:60", false),
            (DateTime, "2020-01-01T10:00:00.", false),
            (DateTime, "2020-01-01T10:00:00.123456789012Z", true),
            (DateTime, "2020-01-01", false),
            (Time, "10:00:00-05:00", true),
            (GYear, "2020", true),
            (GYear, "20", false),
            (GYearMonth, "2020-12", true),
            (GMonthDay, "--02-29", true),
            (GMonthDay, "--02-30", false),
            (GDay, "---31", true),
            (GMonth, "--12", true),
            (GMonth, "--13", false),
            (Duration, "P1Y2M3DT4H5M6.7S", true),
            (Duration, "-PT0S", true),
            (Duration, "P", false),
            (Duration, "PT", false),
            (Duration, "P1YT", false),
            (Duration, "P1S", false),
            (HexBinary, "0fA1", true),
            (HexBinary, "0fA", false),
            (Base64Binary, "QUJD", true),
            (Base64Binary, "QUJ D", true),
            (Base64Binary, "QUJ", false),
            (Base64Binary, "QQ==", true),
            (Base64Binary, "QR==", false),
            (Base64Binary, "QUJD!", true),
            (Base64Binary, "QQ==QQ==", false),
            (AnyUri, "http://example.fi/a b", true),
            (AnyUri, "::", false),
            (AnyUri, "#a#b", false),
            (AnyUri, "%zz", false),
            (AnyUri, "urn:mace:funet.fi:virta", true),
            (AnyUri, "../x/y?q=1#f", true),
            (AnyUri, "", true),
            (Language, "fi", true),
            (Language, "en-GB", true),
            (Language, "toolonglanguage", false),
            (Language, "", false),
            (NcName, "a:b", false),
            (Name, "a:b", true),
            (NmToken, "-x", true),
            (QName, "p:l", true),
            (QName, "p:l:m", false),
        ];
        for &(t, s, expected) in cases {
            assert_eq!(ok(t, s), expected, "{} {s:?}", t.name());
        }
    }

    #[test]
    fn padding_follows_libxml2() {
        use Builtin::*;
        let cases: &[(Builtin, &str, bool)] = &[
            (Date, "2020-01-01", true),
            (Date, "2020-01-01 ", false),
            (Date, "2020-01-01Z\t", false),
            (DateTime, "2015-10-31T12:00:00Z\t", true),
            (DateTime, "2015-10-31T12:00:00+02:00  ", true),
            (DateTime, " 2015-10-31T12:00:00Z", false),
            (DateTime, "2015-10-31T12:00:00 ", false),
            (Int, "5\t", false),
        ];
        for &(t, s, ok) in cases {
            assert_eq!(padding_tolerated(t, s), ok, "{} {s:?}", t.name());
        }
    }

    #[test]
    fn decimal_order_and_digits() {
        let d = |s| parse_decimal(s).unwrap();
        assert_eq!(d("1.50").cmp_value(&d("1.5")), Ordering::Equal);
        assert_eq!(d("-0").cmp_value(&d("0.0")), Ordering::Equal);
        assert_eq!(d("10").cmp_value(&d("9.99")), Ordering::Greater);
        assert_eq!(d("-10").cmp_value(&d("-9.99")), Ordering::Less);
        assert_eq!(d("0.05").cmp_value(&d("0.5")), Ordering::Less);
        assert_eq!(d("123.4500").total_digits(), 5);
        assert_eq!(d("0.0012").total_digits(), 4);
        assert_eq!(d("0").total_digits(), 1);
        assert_eq!(d("1.250").fraction_digits(), 2);
    }

    #[test]
    fn date_order_with_time_zones() {
        let p = |s| parse_date_time(Builtin::DateTime, s).unwrap();
        assert_eq!(
            p("2020-01-01T12:00:00Z").compare(&p("2020-01-01T14:00:00+02:00")),
            Some(Ordering::Equal)
        );
        assert_eq!(
            p("2020-01-01T12:00:00Z").compare(&p("2020-01-01T12:00:00")),
            None
        );
        assert_eq!(
            p("2020-01-02T12:00:00Z").compare(&p("2020-01-01T12:00:00")),
            Some(Ordering::Greater)
        );
        let d = |s| parse_date_time(Builtin::Date, s).unwrap();
        assert_eq!(
            d("1900-01-01").compare(&d("1899-12-31")),
            Some(Ordering::Greater)
        );
    }

    #[test]
    fn duration_partial_order() {
        let p = |s| parse_duration(s).unwrap();
        assert_eq!(p("P1Y").compare(&p("P12M")), Some(Ordering::Equal));
        assert_eq!(p("P1M").compare(&p("P30D")), None);
        assert_eq!(p("PT36H").compare(&p("P1D")), Some(Ordering::Greater));
    }

    #[test]
    fn whitespace_normalization() {
        assert_eq!(normalize(" a \t b\n", WhiteSpace::Collapse), "a b");
        assert!(matches!(
            normalize("a b", WhiteSpace::Collapse),
            Cow::Borrowed(_)
        ));
        assert_eq!(normalize("a\tb", WhiteSpace::Replace), "a b");
        assert_eq!(normalize(" a ", WhiteSpace::Preserve), " a ");
        assert_eq!(normalize("a  b", WhiteSpace::Collapse), "a b");
    }

    proptest::proptest! {
        #[test]
        fn decimal_order_matches_f64(a in -1.0e6f64..1.0e6, b in -1.0e6f64..1.0e6) {
            let sa = format!("{a:.3}");
            let sb = format!("{b:.3}");
            let (fa, fb): (f64, f64) = (sa.parse().unwrap(), sb.parse().unwrap());
            let da = parse_decimal(&sa).unwrap();
            let db = parse_decimal(&sb).unwrap();
            proptest::prop_assert_eq!(Some(da.cmp_value(&db)), fa.partial_cmp(&fb));
        }

        #[test]
        fn parsers_never_panic(s in "\\PC{0,40}") {
            for &t in Builtin::ALL {
                let _ = t.parse(&s);
            }
        }

        #[test]
        fn collapse_is_idempotent(s in "[ a\t\nb]{0,20}") {
            let once = normalize(&s, WhiteSpace::Collapse).into_owned();
            let twice = normalize(&once, WhiteSpace::Collapse).into_owned();
            proptest::prop_assert_eq!(&once, &twice);
            proptest::prop_assert!(!once.starts_with(' ') && !once.ends_with(' ') && !once.contains("  "));
        }
    }
}

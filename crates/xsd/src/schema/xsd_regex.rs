//! XML Schema regular expressions (Part 2, appendix F) translated to the `regex` crate.
//!
//! Owns: [`translate`], which parses an XSD `pattern` value and writes an equivalent Rust
//! regex, implicitly anchored at both ends. It handles what XSD has and Rust spells
//! differently: `^` and `$` are ordinary characters, `.` excludes only line ends, the
//! multi-character escapes `\i \I \c \C \d \D \w \W \s \S`, `\p{IsBlock}` block escapes, and
//! character-class subtraction `[a-z-[aeiou]]`. Anything it cannot translate is an error,
//! so a schema with such a pattern fails to load rather than validate wrongly.
//!
//! It must not: compile or cache regexes (the compiler does), or accept a pattern it does
//! not fully understand.

use std::fmt::Write;

/// Why a pattern could not be translated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at character {index} of the pattern")]
pub struct RegexError {
    pub message: String,
    pub index: usize,
}

/// Translates an XSD pattern into an anchored Rust regex.
pub fn translate(pattern: &str) -> Result<String, RegexError> {
    let mut p = Parser {
        chars: pattern.chars().collect(),
        i: 0,
        out: String::with_capacity(pattern.len() * 2 + 8),
        depth: 0,
    };
    p.out.push_str(r"\A(?:");
    p.reg_exp()?;
    if p.i != p.chars.len() {
        return Err(p.error("unexpected `)`"));
    }
    p.out.push_str(r")\z");
    Ok(p.out)
}

struct Parser {
    chars: Vec<char>,
    i: usize,
    out: String,
    depth: usize,
}

/// One item of a character class, written in Rust class syntax.
type ClassText = String;

impl Parser {
    fn error(&self, message: &str) -> RegexError {
        RegexError {
            message: message.to_owned(),
            index: self.i,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    fn reg_exp(&mut self) -> Result<(), RegexError> {
        self.branch()?;
        while self.peek() == Some('|') {
            self.i += 1;
            self.out.push('|');
            self.branch()?;
        }
        Ok(())
    }

    fn branch(&mut self) -> Result<(), RegexError> {
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            self.piece()?;
        }
        Ok(())
    }

    fn piece(&mut self) -> Result<(), RegexError> {
        self.atom()?;
        match self.peek() {
            Some(c @ ('?' | '*' | '+')) => {
                self.i += 1;
                self.out.push(c);
            }
            Some('{') => {
                self.i += 1;
                let min = self.number()?;
                let mut text = min.to_string();
                match self.peek() {
                    Some('}') => {}
                    Some(',') => {
                        self.i += 1;
                        text.push(',');
                        if self.peek() != Some('}') {
                            let max = self.number()?;
                            if max < min {
                                return Err(self.error("quantifier maximum below minimum"));
                            }
                            text.push_str(&max.to_string());
                        }
                    }
                    _ => return Err(self.error("malformed quantifier")),
                }
                if self.peek() != Some('}') {
                    return Err(self.error("malformed quantifier"));
                }
                self.i += 1;
                if min > 10_000 {
                    return Err(self.error("quantifier too large"));
                }
                self.out.push('{');
                self.out.push_str(&text);
                self.out.push('}');
            }
            _ => {}
        }
        Ok(())
    }

    fn number(&mut self) -> Result<u32, RegexError> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        if start == self.i {
            return Err(self.error("expected a number in a quantifier"));
        }
        let s: String = self.chars[start..self.i].iter().collect();
        s.parse::<u32>()
            .ok()
            .filter(|&n| n <= 10_000)
            .ok_or_else(|| self.error("quantifier too large"))
    }

    fn atom(&mut self) -> Result<(), RegexError> {
        let Some(c) = self.peek() else {
            return Err(self.error("unexpected end of pattern"));
        };
        match c {
            '(' => {
                self.i += 1;
                self.depth += 1;
                if self.depth > 100 {
                    return Err(self.error("groups nest too deeply"));
                }
                self.out.push_str("(?:");
                self.reg_exp()?;
                if self.peek() != Some(')') {
                    return Err(self.error("missing `)`"));
                }
                self.i += 1;
                self.depth -= 1;
                self.out.push(')');
            }
            '[' => {
                let class = self.class_expr()?;
                self.out.push_str(&class);
            }
            '\\' => {
                let item = self.escape()?;
                self.out.push_str(&item);
            }
            '.' => {
                self.i += 1;
                self.out.push_str(r"[^\n\r]");
            }
            '?' | '*' | '+' | '{' | '}' | ']' | ')' | '|' => {
                return Err(self.error(&format!("`{c}` must be escaped here")));
            }
            _ => {
                self.i += 1;
                push_literal(&mut self.out, c);
            }
        }
        Ok(())
    }

    /// `\` escapes, returned as a Rust class item or literal usable inside or outside a
    /// class.
    fn escape(&mut self) -> Result<ClassText, RegexError> {
        self.i += 1;
        let Some(c) = self.peek() else {
            return Err(self.error("pattern ends with `\\`"));
        };
        self.i += 1;
        let text = match c {
            'n' => literal('\n'),
            'r' => literal('\r'),
            't' => literal('\t'),
            '\\' | '|' | '.' | '-' | '^' | '?' | '*' | '+' | '{' | '}' | '(' | ')' | '[' | ']' => {
                literal(c)
            }
            's' => r"[\x20\t\n\r]".to_owned(),
            'S' => r"[^\x20\t\n\r]".to_owned(),
            'd' => r"\p{Nd}".to_owned(),
            'D' => r"\P{Nd}".to_owned(),
            'w' => r"[^\p{P}\p{Z}\p{C}]".to_owned(),
            'W' => r"[\p{P}\p{Z}\p{C}]".to_owned(),
            'i' => name_class(true, false),
            'I' => name_class(true, true),
            'c' => name_class(false, false),
            'C' => name_class(false, true),
            'p' | 'P' => {
                if self.peek() != Some('{') {
                    return Err(self.error("expected `{` after \\p"));
                }
                self.i += 1;
                let start = self.i;
                while self.peek().is_some_and(|c| c != '}') {
                    self.i += 1;
                }
                if self.peek() != Some('}') {
                    return Err(self.error("missing `}` in \\p{...}"));
                }
                let name: String = self.chars[start..self.i].iter().collect();
                self.i += 1;
                let positive = category(&name).ok_or_else(|| RegexError {
                    message: format!("unknown character property `{name}`"),
                    index: start,
                })?;
                if c == 'P' {
                    format!("[^{positive}]")
                } else {
                    positive
                }
            }
            _ => return Err(self.error(&format!("unknown escape `\\{c}`"))),
        };
        Ok(text)
    }

    /// `[` charGroup `]` where charGroup may end in a subtraction `-[...]`.
    fn class_expr(&mut self) -> Result<ClassText, RegexError> {
        self.i += 1; // '['
        self.depth += 1;
        if self.depth > 100 {
            return Err(self.error("classes nest too deeply"));
        }
        let negated = self.peek() == Some('^');
        if negated {
            self.i += 1;
        }
        let mut items = String::new();
        let mut count = 0usize;
        let mut subtract: Option<ClassText> = None;
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error("missing `]`"));
            };
            match c {
                ']' => {
                    if count == 0 {
                        return Err(self.error("empty character class"));
                    }
                    self.i += 1;
                    break;
                }
                '-' if self.chars.get(self.i + 1) == Some(&'[') => {
                    if count == 0 {
                        return Err(self.error("subtraction without a class to subtract from"));
                    }
                    self.i += 1;
                    subtract = Some(self.class_expr()?);
                    if self.peek() != Some(']') {
                        return Err(self.error("a subtraction must end its class"));
                    }
                    self.i += 1;
                    break;
                }
                '[' => return Err(self.error("`[` must be escaped inside a class")),
                '\\' => {
                    let save = self.i;
                    let item = self.escape()?;
                    // A single-character escape may start a range.
                    let single = single_escape_char(&self.chars[save + 1..self.i]);
                    if let Some(lo) = single
                        && self.peek() == Some('-')
                        && self
                            .chars
                            .get(self.i + 1)
                            .is_some_and(|&n| n != '[' && n != ']')
                    {
                        self.i += 1;
                        let hi = self.range_end()?;
                        push_range(&mut items, lo, hi).map_err(|m| self.error(m))?;
                    } else {
                        items.push_str(&item);
                    }
                    count += 1;
                }
                _ => {
                    self.i += 1;
                    if self.peek() == Some('-')
                        && self
                            .chars
                            .get(self.i + 1)
                            .is_some_and(|&n| n != '[' && n != ']')
                    {
                        self.i += 1;
                        let hi = self.range_end()?;
                        push_range(&mut items, c, hi).map_err(|m| self.error(m))?;
                    } else {
                        push_literal(&mut items, c);
                    }
                    count += 1;
                }
            }
        }
        self.depth -= 1;
        let base = if negated {
            format!("[^{items}]")
        } else {
            format!("[{items}]")
        };
        Ok(match subtract {
            Some(s) => format!("[{base}--{s}]"),
            None => base,
        })
    }

    fn range_end(&mut self) -> Result<char, RegexError> {
        match self.peek() {
            Some('\\') => {
                let save = self.i;
                self.escape()?;
                single_escape_char(&self.chars[save + 1..self.i])
                    .ok_or_else(|| self.error("a range must end in a single character"))
            }
            Some(c) if c != '[' && c != ']' => {
                self.i += 1;
                Ok(c)
            }
            _ => Err(self.error("a range must end in a character")),
        }
    }
}

fn single_escape_char(escape_body: &[char]) -> Option<char> {
    match escape_body {
        ['n'] => Some('\n'),
        ['r'] => Some('\r'),
        ['t'] => Some('\t'),
        [
            c
            @ ('\\' | '|' | '.' | '-' | '^' | '?' | '*' | '+' | '{' | '}' | '(' | ')' | '[' | ']'),
        ] => Some(*c),
        _ => None,
    }
}

fn literal(c: char) -> String {
    let mut s = String::new();
    push_literal(&mut s, c);
    s
}

fn push_literal(out: &mut String, c: char) {
    if c.is_ascii_alphanumeric() {
        out.push(c);
    } else {
        let _ = write!(out, "\\x{{{:X}}}", u32::from(c));
    }
}

fn push_range(out: &mut String, lo: char, hi: char) -> Result<(), &'static str> {
    if hi < lo {
        return Err("character range is out of order");
    }
    push_literal(out, lo);
    out.push('-');
    push_literal(out, hi);
    Ok(())
}

/// `\i` (name start characters, with `:`) or `\c` (name characters), optionally negated.
fn name_class(start: bool, negated: bool) -> String {
    let mut s = String::from(if negated { "[^" } else { "[" });
    s.push_str(r":A-Z_a-z\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{2FF}\x{370}-\x{37D}\x{37F}-\x{1FFF}\x{200C}-\x{200D}\x{2070}-\x{218F}\x{2C00}-\x{2FEF}\x{3001}-\x{D7FF}\x{F900}-\x{FDCF}\x{FDF0}-\x{FFFD}\x{10000}-\x{EFFFF}");
    if !start {
        s.push_str(r"\-.0-9\x{B7}\x{300}-\x{36F}\x{203F}-\x{2040}");
    }
    s.push(']');
    s
}

/// A `\p{...}` name: a general category, or `Is` + a Unicode block name of XSD 1.0.
fn category(name: &str) -> Option<String> {
    const CATEGORIES: &[&str] = &[
        "L", "Lu", "Ll", "Lt", "Lm", "Lo", "M", "Mn", "Mc", "Me", "N", "Nd", "Nl", "No", "P", "Pc",
        "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Z", "Zs", "Zl", "Zp", "S", "Sm", "Sc", "Sk", "So",
        "C", "Cc", "Cf", "Co", "Cn",
    ];
    if CATEGORIES.contains(&name) {
        return Some(format!(r"\p{{{name}}}"));
    }
    let block = name.strip_prefix("Is")?;
    let ranges: Vec<(u32, u32)> = BLOCKS
        .iter()
        .filter(|(n, _, _)| *n == block)
        .map(|&(_, lo, hi)| (lo, hi))
        .collect();
    if ranges.is_empty() {
        return None;
    }
    let mut s = String::from("[");
    let mut any = false;
    for (lo, hi) in ranges {
        // Surrogate code points are not characters and can never occur in a document.
        for (a, b) in [(lo, hi.min(0xD7FF)), (lo.max(0xE000), hi)] {
            if a <= b {
                let _ = write!(s, "\\x{{{a:X}}}-\\x{{{b:X}}}");
                any = true;
            }
        }
    }
    if !any {
        // A block of surrogates only: matches nothing.
        return Some(r"[^\x{0}-\x{10FFFF}]".to_owned());
    }
    s.push(']');
    Some(s)
}

/// The block names of XML Schema 1.0 (Unicode 3.1 blocks), with their ranges.
const BLOCKS: &[(&str, u32, u32)] = &[
    ("BasicLatin", 0x0000, 0x007F),
    ("Latin-1Supplement", 0x0080, 0x00FF),
    ("LatinExtended-A", 0x0100, 0x017F),
    ("LatinExtended-B", 0x0180, 0x024F),
    ("IPAExtensions", 0x0250, 0x02AF),
    ("SpacingModifierLetters", 0x02B0, 0x02FF),
    ("CombiningDiacriticalMarks", 0x0300, 0x036F),
    ("Greek", 0x0370, 0x03FF),
    ("Cyrillic", 0x0400, 0x04FF),
    ("Armenian", 0x0530, 0x058F),
    ("Hebrew", 0x0590, 0x05FF),
    ("Arabic", 0x0600, 0x06FF),
    ("Syriac", 0x0700, 0x074F),
    ("Thaana", 0x0780, 0x07BF),
    ("Devanagari", 0x0900, 0x097F),
    ("Bengali", 0x0980, 0x09FF),
    ("Gurmukhi", 0x0A00, 0x0A7F),
    ("Gujarati", 0x0A80, 0x0AFF),
    ("Oriya", 0x0B00, 0x0B7F),
    ("Tamil", 0x0B80, 0x0BFF),
    ("Telugu", 0x0C00, 0x0C7F),
    ("Kannada", 0x0C80, 0x0CFF),
    ("Malayalam", 0x0D00, 0x0D7F),
    ("Sinhala", 0x0D80, 0x0DFF),
    ("Thai", 0x0E00, 0x0E7F),
    ("Lao", 0x0E80, 0x0EFF),
    ("Tibetan", 0x0F00, 0x0FFF),
    ("Myanmar", 0x1000, 0x109F),
    ("Georgian", 0x10A0, 0x10FF),
    ("HangulJamo", 0x1100, 0x11FF),
    ("Ethiopic", 0x1200, 0x137F),
    ("Cherokee", 0x13A0, 0x13FF),
    ("UnifiedCanadianAboriginalSyllabics", 0x1400, 0x167F),
    ("Ogham", 0x1680, 0x169F),
    ("Runic", 0x16A0, 0x16FF),
    ("Khmer", 0x1780, 0x17FF),
    ("Mongolian", 0x1800, 0x18AF),
    ("LatinExtendedAdditional", 0x1E00, 0x1EFF),
    ("GreekExtended", 0x1F00, 0x1FFF),
    ("GeneralPunctuation", 0x2000, 0x206F),
    ("SuperscriptsandSubscripts", 0x2070, 0x209F),
    ("CurrencySymbols", 0x20A0, 0x20CF),
    ("CombiningMarksforSymbols", 0x20D0, 0x20FF),
    ("LetterlikeSymbols", 0x2100, 0x214F),
    ("NumberForms", 0x2150, 0x218F),
    ("Arrows", 0x2190, 0x21FF),
    ("MathematicalOperators", 0x2200, 0x22FF),
    ("MiscellaneousTechnical", 0x2300, 0x23FF),
    ("ControlPictures", 0x2400, 0x243F),
    ("OpticalCharacterRecognition", 0x2440, 0x245F),
    ("EnclosedAlphanumerics", 0x2460, 0x24FF),
    ("BoxDrawing", 0x2500, 0x257F),
    ("BlockElements", 0x2580, 0x259F),
    ("GeometricShapes", 0x25A0, 0x25FF),
    ("MiscellaneousSymbols", 0x2600, 0x26FF),
    ("Dingbats", 0x2700, 0x27BF),
    ("BraillePatterns", 0x2800, 0x28FF),
    ("CJKRadicalsSupplement", 0x2E80, 0x2EFF),
    ("KangxiRadicals", 0x2F00, 0x2FDF),
    ("IdeographicDescriptionCharacters", 0x2FF0, 0x2FFF),
    ("CJKSymbolsandPunctuation", 0x3000, 0x303F),
    ("Hiragana", 0x3040, 0x309F),
    ("Katakana", 0x30A0, 0x30FF),
    ("Bopomofo", 0x3100, 0x312F),
    ("HangulCompatibilityJamo", 0x3130, 0x318F),
    ("Kanbun", 0x3190, 0x319F),
    ("BopomofoExtended", 0x31A0, 0x31BF),
    ("EnclosedCJKLettersandMonths", 0x3200, 0x32FF),
    ("CJKCompatibility", 0x3300, 0x33FF),
    ("CJKUnifiedIdeographsExtensionA", 0x3400, 0x4DB5),
    ("CJKUnifiedIdeographs", 0x4E00, 0x9FFF),
    ("YiSyllables", 0xA000, 0xA48F),
    ("YiRadicals", 0xA490, 0xA4CF),
    ("HangulSyllables", 0xAC00, 0xD7A3),
    ("HighSurrogates", 0xD800, 0xDB7F),
    ("HighPrivateUseSurrogates", 0xDB80, 0xDBFF),
    ("LowSurrogates", 0xDC00, 0xDFFF),
    ("PrivateUse", 0xE000, 0xF8FF),
    ("PrivateUse", 0xF0000, 0xFFFFD),
    ("PrivateUse", 0x100000, 0x10FFFD),
    ("CJKCompatibilityIdeographs", 0xF900, 0xFAFF),
    ("AlphabeticPresentationForms", 0xFB00, 0xFB4F),
    ("ArabicPresentationForms-A", 0xFB50, 0xFDFF),
    ("CombiningHalfMarks", 0xFE20, 0xFE2F),
    ("CJKCompatibilityForms", 0xFE30, 0xFE4F),
    ("SmallFormVariants", 0xFE50, 0xFE6F),
    ("ArabicPresentationForms-B", 0xFE70, 0xFEFE),
    ("Specials", 0xFEFF, 0xFEFF),
    ("Specials", 0xFFF0, 0xFFFD),
    ("HalfwidthandFullwidthForms", 0xFF00, 0xFFEF),
    ("OldItalic", 0x10300, 0x1032F),
    ("Gothic", 0x10330, 0x1034F),
    ("Deseret", 0x10400, 0x1044F),
    ("ByzantineMusicalSymbols", 0x1D000, 0x1D0FF),
    ("MusicalSymbols", 0x1D100, 0x1D1FF),
    ("MathematicalAlphanumericSymbols", 0x1D400, 0x1D7FF),
    ("CJKUnifiedIdeographsExtensionB", 0x20000, 0x2A6D6),
    ("CJKCompatibilityIdeographsSupplement", 0x2F800, 0x2FA1F),
    ("Tags", 0xE0000, 0xE007F),
];

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn matches(pattern: &str, s: &str) -> bool {
        let t = translate(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
        regex::Regex::new(&t)
            .unwrap_or_else(|e| panic!("{pattern} -> {t}: {e}"))
            .is_match(s)
    }

    #[test]
    fn translation_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("[129]", "1", true),
            ("[129]", "12", false),
            ("[129]", "3", false),
            ("a|b", "b", true),
            ("a|b", "ab", false),
            ("[0-9]{3}", "123", true),
            ("[0-9]{3}", "1234", false),
            ("[0-9]{2,}", "1234", true),
            ("[0-9\\.]+", "1.2.3", true),
            ("[0-9\\.]+", "1-2", false),
            ("a^b$", "a^b$", true),
            (".", "\n", false),
            (".", "ä", true),
            ("\\d+", "٣4", true),
            ("\\i\\c*", "a-b.c", true),
            ("\\i\\c*", "-a", false),
            ("\\s", "\t", true),
            ("\\w", "_", false),
            ("\\w", "ö", true),
            ("[a-z-[aeiou]]+", "bcd", true),
            ("[a-z-[aeiou]]+", "bad", false),
            ("[^a-c]", "d", true),
            ("[^a-c]", "b", false),
            ("[^a-c-[x]]", "x", false),
            ("[^a-c-[x]]", "y", true),
            ("\\p{Lu}", "Ä", true),
            ("\\P{Lu}", "Ä", false),
            ("\\p{IsBasicLatin}+", "abc", true),
            ("\\p{IsBasicLatin}", "ä", false),
            ("\\p{IsLatin-1Supplement}", "ä", true),
            ("[-a]", "-", true),
            ("[a-]", "-", true),
            ("[\\-x]", "-", true),
            ("[!-~]{1,64}", "abc!", true),
            ("[^@]+@[^.]+\\..+", "a@b.fi", true),
            ("[^@]+@[^.]+\\..+", "a@bfi", false),
            ("https?://.+", "https://x", true),
            ("(ab)*c", "ababc", true),
            ("", "", true),
            ("", "x", false),
            ("[A-Z][A-Z]", "FI", true),
            ("[ABC][12]|NS", "NS", true),
            ("x{0}", "", true),
        ];
        for &(p, s, expected) in cases {
            assert_eq!(matches(p, s), expected, "{p} on {s:?}");
        }
    }

    #[test]
    fn henkilotunnus_pattern_of_virta() {
        let p = r"(0[1-9]|[12][0-9]|3[01])(0[1-9]|1[0-2])[0-9][0-9][+\-ABCDEFXYWVU]((00[2-9]|[0-8][1-9][0-9]|[1-8][0-9][0-9])[0-9ABCDEFHJKLMNPRSTUVWXY])?";
        assert!(matches(p, "010190-020A"));
        assert!(matches(p, "010190A"));
        assert!(!matches(p, "320190-020A"));
        assert!(!matches(p, "010190-020G"));
    }

    #[test]
    fn refuses_what_it_cannot_translate() {
        for p in [
            "(a",
            "a)",
            "[a",
            "[]",
            "a{2,1}",
            "\\q",
            "\\p{Foo}",
            "\\p{IsNoSuchBlock}",
            "*a",
            "[a-[b]",
            "[z-a]",
            "a{99999}",
        ] {
            assert!(translate(p).is_err(), "{p}");
        }
    }

    proptest::proptest! {
        #[test]
        fn literal_strings_match_themselves(s in "[a-zA-Z0-9 ^$&~#@!%=:;,'\"<>/_-]{0,20}") {
            // Every character here is ordinary in XSD, even those special in Rust.
            let t = translate(&s).unwrap();
            let r = regex::Regex::new(&t).unwrap();
            proptest::prop_assert!(r.is_match(&s));
        }

        #[test]
        fn translator_never_panics(s in "\\PC{0,30}") {
            if let Ok(t) = translate(&s) {
                let _ = regex::RegexBuilder::new(&t).size_limit(1 << 22).build();
            }
        }
    }
}

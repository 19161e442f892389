//! Which character encoding a document is in, and UTF-16 turned into UTF-8 at the boundary.
//!
//! Owns: the encoding policy of the untrusted path. A document is read when it is UTF-8
//! (with or without a byte order mark; US-ASCII is a subset) or UTF-16 little- or
//! big-endian *with* a byte order mark, the two encodings XML 1.0 §4.3.3 requires every
//! processor to read. Anything else is refused as `unsupported_encoding`: a declared
//! encoding other than those (ISO-8859-1, windows-1252, …; the specification lets a
//! processor refuse them), and what the first bytes show without a byte order mark to
//! confirm it (UTF-16 without one, UTF-32, EBCDIC; XML 1.0 Appendix F).
//!
//! UTF-16 is decoded to UTF-8 before the tokenizer sees it, so everything after this point
//! is the same for both: every [`Limits`](super::Limits) bound is counted on the decoded
//! UTF-8 (`max_bytes` is the size of the decoded text), line and column are in characters
//! (equal in both encodings), and byte offsets are into the decoded text, where the byte
//! order mark takes the three bytes of its UTF-8 form. A UTF-16 code unit that does not
//! decode (a lone surrogate, an odd last byte) becomes the byte `0xFF`, which is never
//! valid UTF-8, so the tokenizer refuses the document at that character's line and column
//! as it refuses any undecodable byte. The declaration must then agree with the byte order
//! mark (checked by the tokenizer with [`Encoding::check_declared`]).
//!
//! It must not: guess an encoding from anything but the byte order mark and the first four
//! bytes, or read any encoding not named above.

use std::borrow::Cow;

use super::{Position, XmlError};

/// The encodings a document may be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Utf16LittleEndian,
    Utf16BigEndian,
}

/// What the first bytes of a document say about its encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sniffed {
    /// An encoding that is read, and the length of its byte order mark (0 when none).
    Read(Encoding, usize),
    /// An encoding that is not read, described for the error.
    Refused(&'static str),
}

/// The UTF-8 form of the byte order mark.
pub(crate) const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Recognises the encoding from the first bytes (at most four are looked at; fewer when the
/// document is shorter).
pub(crate) fn sniff(head: &[u8]) -> Sniffed {
    match head {
        [0x00, 0x00, 0xFE, 0xFF, ..] | [0xFF, 0xFE, 0x00, 0x00, ..] => {
            Sniffed::Refused("UTF-32 (byte order mark)")
        }
        [0x00, 0x00, 0x00, 0x3C, ..] | [0x3C, 0x00, 0x00, 0x00, ..] => {
            Sniffed::Refused("UTF-32 without a byte order mark")
        }
        [0xEF, 0xBB, 0xBF, ..] => Sniffed::Read(Encoding::Utf8, 3),
        [0xFF, 0xFE, ..] => Sniffed::Read(Encoding::Utf16LittleEndian, 2),
        [0xFE, 0xFF, ..] => Sniffed::Read(Encoding::Utf16BigEndian, 2),
        [0x4C, 0x6F, 0xA7, 0x94, ..] => Sniffed::Refused("EBCDIC"),
        // `<` as a 16-bit code unit (a NUL is never XML text).
        [0x3C, 0x00, ..] | [0x00, 0x3C, ..] => Sniffed::Refused("UTF-16 without a byte order mark"),
        _ => Sniffed::Read(Encoding::Utf8, 0),
    }
}

impl Encoding {
    /// The encoding's name as an encoding declaration spells it.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Utf8 => "UTF-8",
            Encoding::Utf16LittleEndian => "UTF-16LE",
            Encoding::Utf16BigEndian => "UTF-16BE",
        }
    }

    /// Checks the name in the XML declaration (`encoding="…"`) against the encoding the
    /// document was read in. A name that is not one of the read encodings is
    /// [`XmlError::UnsupportedEncoding`]; a read encoding other than this one is
    /// [`XmlError::Malformed`] (XML 1.0 §4.3.3: a fatal error).
    pub fn check_declared(self, declared: &str, at: Position) -> Result<(), XmlError> {
        let name = declared.to_ascii_lowercase();
        let named = match name.as_str() {
            "utf-8" | "utf8" | "us-ascii" | "ascii" => [Some(Encoding::Utf8), None],
            "utf-16" => [
                Some(Encoding::Utf16LittleEndian),
                Some(Encoding::Utf16BigEndian),
            ],
            "utf-16le" => [Some(Encoding::Utf16LittleEndian), None],
            "utf-16be" => [Some(Encoding::Utf16BigEndian), None],
            _ => {
                return Err(XmlError::UnsupportedEncoding {
                    encoding: printable_name(declared),
                    at,
                });
            }
        };
        if named.contains(&Some(self)) {
            return Ok(());
        }
        let actual = match self {
            Encoding::Utf8 => "UTF-8 (it has no UTF-16 byte order mark)",
            Encoding::Utf16LittleEndian => "UTF-16LE (by its byte order mark)",
            Encoding::Utf16BigEndian => "UTF-16BE (by its byte order mark)",
        };
        Err(XmlError::Malformed {
            message: format!(
                "the XML declaration names the encoding `{}`, but the document is {actual}",
                printable_name(declared)
            ),
            at,
        })
    }
}

/// An encoding name fit for a message: the characters `EncName` allows, at most 40.
fn printable_name(declared: &str) -> String {
    declared
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(40)
        .collect()
}

/// The byte a code unit that does not decode becomes: never valid UTF-8.
const UNDECODABLE: u8 = 0xFF;

/// Turns UTF-16 into UTF-8 piece by piece: a code unit or surrogate pair cut between two
/// pieces waits for the next one.
#[derive(Debug)]
pub(crate) struct Utf16Decoder {
    big_endian: bool,
    /// The first byte of a code unit whose second byte has not arrived.
    odd_byte: Option<u8>,
    /// A high surrogate waiting for its low half.
    high: Option<u16>,
}

impl Utf16Decoder {
    pub(crate) fn new(encoding: Encoding) -> Utf16Decoder {
        Utf16Decoder {
            big_endian: encoding == Encoding::Utf16BigEndian,
            odd_byte: None,
            high: None,
        }
    }

    /// Appends the UTF-8 of `input` to `out`.
    pub(crate) fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let mut rest = input;
        if let Some(first) = self.odd_byte.take() {
            match rest.split_first() {
                Some((&second, tail)) => {
                    self.unit(self.combine(first, second), out);
                    rest = tail;
                }
                None => {
                    self.odd_byte = Some(first);
                    return;
                }
            }
        }
        let mut pairs = rest.chunks_exact(2);
        for pair in &mut pairs {
            self.unit(self.combine(pair[0], pair[1]), out);
        }
        self.odd_byte = pairs.remainder().first().copied();
    }

    /// The end of the document: a half code unit or a high surrogate left over does not
    /// decode.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        if self.high.take().is_some() {
            out.push(UNDECODABLE);
        }
        if self.odd_byte.take().is_some() {
            out.push(UNDECODABLE);
        }
    }

    fn combine(&self, first: u8, second: u8) -> u16 {
        if self.big_endian {
            u16::from_be_bytes([first, second])
        } else {
            u16::from_le_bytes([first, second])
        }
    }

    fn unit(&mut self, unit: u16, out: &mut Vec<u8>) {
        if let Some(high) = self.high.take() {
            if (0xDC00..=0xDFFF).contains(&unit) {
                let c = 0x10000 + ((u32::from(high) - 0xD800) << 10) + (u32::from(unit) - 0xDC00);
                push_char(c, out);
                return;
            }
            out.push(UNDECODABLE);
        }
        match unit {
            0xD800..=0xDBFF => self.high = Some(unit),
            0xDC00..=0xDFFF => out.push(UNDECODABLE),
            _ => push_char(u32::from(unit), out),
        }
    }
}

fn push_char(scalar: u32, out: &mut Vec<u8>) {
    match char::from_u32(scalar) {
        Some(c) => {
            let mut utf8 = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
        }
        // Unreachable for the values `unit` passes (no surrogates), but never panics.
        None => out.push(UNDECODABLE),
    }
}

/// A whole document as the tokenizer reads it: UTF-8, and the encoding it came in.
#[derive(Debug, Clone)]
pub struct Decoded<'a> {
    /// UTF-8 (a UTF-16 document's byte order mark kept as the UTF-8 one, so line and
    /// column stay those of the original).
    pub text: Cow<'a, [u8]>,
    pub encoding: Encoding,
}

/// Recognises the encoding of an in-memory document and decodes UTF-16 to UTF-8 (borrowing
/// UTF-8 as it is). Refuses an encoding that is not read, and a decoded text larger than
/// `max_bytes`.
pub fn decode(document: &[u8], max_bytes: usize) -> Result<Decoded<'_>, XmlError> {
    let (encoding, bom) = match sniff(document) {
        Sniffed::Refused(what) => {
            return Err(XmlError::UnsupportedEncoding {
                encoding: what.to_owned(),
                at: Position {
                    line: 1,
                    column: 1,
                    offset: 0,
                },
            });
        }
        Sniffed::Read(e, bom) => (e, bom),
    };
    if encoding == Encoding::Utf8 {
        if document.len() > max_bytes {
            return Err(XmlError::TooLarge {
                limit: max_bytes,
                size: document.len(),
            });
        }
        return Ok(Decoded {
            text: Cow::Borrowed(document),
            encoding,
        });
    }
    let units = &document[bom..];
    // Every code unit decodes to at least one byte: no need to decode what must be too big.
    if units.len() / 2 + UTF8_BOM.len() > max_bytes {
        return Err(XmlError::TooLarge {
            limit: max_bytes,
            size: units.len() / 2 + UTF8_BOM.len(),
        });
    }
    let mut text = Vec::with_capacity(units.len() / 2 * 3 / 2 + UTF8_BOM.len() + 4);
    text.extend_from_slice(UTF8_BOM);
    let mut decoder = Utf16Decoder::new(encoding);
    decoder.decode(units, &mut text);
    decoder.finish(&mut text);
    if text.len() > max_bytes {
        return Err(XmlError::TooLarge {
            limit: max_bytes,
            size: text.len(),
        });
    }
    Ok(Decoded {
        text: Cow::Owned(text),
        encoding,
    })
}

/// `text` in UTF-16 with its byte order mark, for tests.
#[cfg(test)]
pub(crate) fn utf16_with_bom(text: &str, big_endian: bool) -> Vec<u8> {
    let mut out = if big_endian {
        vec![0xFE, 0xFF]
    } else {
        vec![0xFF, 0xFE]
    };
    for unit in text.encode_utf16() {
        out.extend_from_slice(&if big_endian {
            unit.to_be_bytes()
        } else {
            unit.to_le_bytes()
        });
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_the_first_bytes_as_appendix_f_lists_them() {
        let cases: &[(&[u8], Sniffed)] = &[
            (b"<a/>", Sniffed::Read(Encoding::Utf8, 0)),
            (b"", Sniffed::Read(Encoding::Utf8, 0)),
            (b"\xEF\xBB\xBF<a/>", Sniffed::Read(Encoding::Utf8, 3)),
            (
                b"\xFF\xFE<\x00",
                Sniffed::Read(Encoding::Utf16LittleEndian, 2),
            ),
            (b"\xFE\xFF\x00<", Sniffed::Read(Encoding::Utf16BigEndian, 2)),
            (
                b"<\x00?\x00",
                Sniffed::Refused("UTF-16 without a byte order mark"),
            ),
            (
                b"\x00<\x00?",
                Sniffed::Refused("UTF-16 without a byte order mark"),
            ),
            (
                b"\x00\x00\xFE\xFF",
                Sniffed::Refused("UTF-32 (byte order mark)"),
            ),
            (
                b"\xFF\xFE\x00\x00",
                Sniffed::Refused("UTF-32 (byte order mark)"),
            ),
            (
                b"<\x00\x00\x00",
                Sniffed::Refused("UTF-32 without a byte order mark"),
            ),
            (b"\x4C\x6F\xA7\x94", Sniffed::Refused("EBCDIC")),
        ];
        for (head, expected) in cases {
            assert_eq!(sniff(head), *expected, "{head:?}");
        }
    }

    #[test]
    fn decodes_utf16_both_ways_with_pairs_cut_anywhere() {
        let text = "<a b='ä'>€𝄞x</a>";
        for big_endian in [false, true] {
            let bytes = utf16_with_bom(text, big_endian);
            let whole = decode(&bytes, 1000).unwrap();
            let mut expected = UTF8_BOM.to_vec();
            expected.extend_from_slice(text.as_bytes());
            assert_eq!(&*whole.text, &expected[..]);
            // Fed a byte at a time, pairs and surrogates are cut at every point.
            let encoding = whole.encoding;
            let mut decoder = Utf16Decoder::new(encoding);
            let mut out = Vec::new();
            for b in &bytes[2..] {
                decoder.decode(std::slice::from_ref(b), &mut out);
            }
            decoder.finish(&mut out);
            assert_eq!(out, text.as_bytes());
        }
    }

    #[test]
    fn what_does_not_decode_becomes_a_byte_utf8_never_has() {
        // A lone high surrogate, a lone low one, and an odd last byte.
        let mut out = Vec::new();
        let mut d = Utf16Decoder::new(Encoding::Utf16LittleEndian);
        d.decode(&[0x00, 0xD8, b'a', 0, 0x00, 0xDC, b'b'], &mut out);
        d.finish(&mut out);
        assert_eq!(out, vec![0xFF, b'a', 0xFF, 0xFF]);
        let mut out = Vec::new();
        let mut d = Utf16Decoder::new(Encoding::Utf16BigEndian);
        d.decode(&[0xD8, 0x00], &mut out);
        d.finish(&mut out);
        assert_eq!(out, vec![0xFF]);
    }

    #[test]
    fn the_size_limit_counts_the_decoded_text() {
        // 10 ASCII characters: 22 bytes of UTF-16 with its mark, 13 of UTF-8 with its mark.
        let bytes = utf16_with_bom("<a>xxx</a>", false);
        assert_eq!(bytes.len(), 22);
        assert_eq!(decode(&bytes, 13).unwrap().text.len(), 13);
        assert!(matches!(
            decode(&bytes, 12),
            Err(XmlError::TooLarge { limit: 12, .. })
        ));
        // Three UTF-8 bytes per character: decoded larger than the UTF-16.
        let bytes = utf16_with_bom("€€€€", true);
        assert_eq!(decode(&bytes, 15).unwrap().text.len(), 15);
        assert!(matches!(
            decode(&bytes, 14),
            Err(XmlError::TooLarge {
                limit: 14,
                size: 15
            })
        ));
    }

    #[test]
    fn declarations_must_agree_with_the_encoding() {
        let at = Position::default();
        let ok = [
            (Encoding::Utf8, "UTF-8"),
            (Encoding::Utf8, "utf8"),
            (Encoding::Utf8, "US-ASCII"),
            (Encoding::Utf16LittleEndian, "UTF-16"),
            (Encoding::Utf16LittleEndian, "utf-16le"),
            (Encoding::Utf16BigEndian, "UTF-16"),
            (Encoding::Utf16BigEndian, "UTF-16BE"),
        ];
        for (e, name) in ok {
            assert_eq!(e.check_declared(name, at), Ok(()), "{e:?} {name}");
        }
        let code = |e: Encoding, name: &str| e.check_declared(name, at).unwrap_err().code();
        assert_eq!(code(Encoding::Utf8, "ISO-8859-1"), "unsupported_encoding");
        assert_eq!(
            code(Encoding::Utf16LittleEndian, "windows-1252"),
            "unsupported_encoding"
        );
        assert_eq!(code(Encoding::Utf8, "UTF-16"), "xml_malformed");
        assert_eq!(code(Encoding::Utf16LittleEndian, "UTF-8"), "xml_malformed");
        assert_eq!(
            code(Encoding::Utf16LittleEndian, "UTF-16BE"),
            "xml_malformed"
        );
        match Encoding::Utf8.check_declared("ISO-8859-1\u{7}<x>", at) {
            Err(XmlError::UnsupportedEncoding { encoding, .. }) => {
                assert_eq!(encoding, "ISO-8859-1x")
            }
            other => panic!("{other:?}"),
        }
    }
}

//! The hardened streaming tokenizer shared by the DOM builder, the schema loader and the
//! validator.
//!
//! Owns: turning untrusted bytes (a slice, or any [`BufRead`]) into a stream of callbacks —
//! start tag with namespaces resolved and attribute values normalized, character data with
//! references expanded, end tag — while enforcing every [`Limits`] bound and the XML 1.0
//! well-formedness rules quick-xml leaves to its caller (name syntax, legal characters,
//! namespace rules, a single root, no DTD, no entity other than the predefined five and
//! character references). Line and column are tracked cheaply and computed on demand.
//!
//! It must not: build trees, know about schemas, or allocate per event (buffers are reused).

use std::borrow::Cow;
use std::cell::Cell;
use std::io::{self, BufRead};
use std::ops::ControlFlow;

use quick_xml::events::{BytesStart, Event};

use super::encoding::{self, Decoded, Encoding, Sniffed, UTF8_BOM, Utf16Decoder};
use super::{Limits, Position, XmlError};

/// The namespace bound to the `xml` prefix.
pub const XML_NAMESPACE: &str = "http://www.w3.org/XML/1998/namespace";
const XMLNS_NAMESPACE: &str = "http://www.w3.org/2000/xmlns/";

/// Where the current event starts; turns into a [`Position`] only when asked.
pub struct Locator<'a> {
    /// The bytes being parsed (the whole document, or the current block of a stream).
    block: &'a [u8],
    /// Absolute offset of `block[0]` in the document.
    base: usize,
    /// Offset of the current event in `block`.
    offset: usize,
    /// Line and column counting from `block[0]`, moved forward on demand.
    cursor: &'a Cell<LineCursor>,
}

/// Line and column at an offset of a block, remembered so the next lookup continues from
/// there (errors are mostly reported in document order).
#[derive(Debug, Clone, Copy, Default)]
pub struct LineCursor {
    offset: usize,
    line: u32,
    column: u32,
    origin_line: u32,
    origin_column: u32,
}

impl LineCursor {
    /// The cursor at the start of a document.
    pub fn start() -> Self {
        LineCursor::at(1, 1)
    }

    /// A cursor for a block that starts at this line and column.
    fn at(line: u32, column: u32) -> Self {
        LineCursor {
            offset: 0,
            line,
            column,
            origin_line: line,
            origin_column: column,
        }
    }

    fn advance(mut self, block: &[u8], target: usize) -> Self {
        let target = target.min(block.len());
        if target < self.offset {
            // Asked for an earlier position than last time: recount from the block start.
            self = LineCursor::at(self.origin_line, self.origin_column);
        }
        let span = &block[self.offset..target];
        let scan = if span.len() > 256 {
            scan_lines_long(span)
        } else {
            scan_lines(span)
        };
        let len = target - self.offset;
        if scan.newlines > 0 {
            self.line = self.line.saturating_add(scan.newlines);
            let tail = len - scan.after_last_newline - scan.continuation_after_last_newline;
            self.column = 1u32.saturating_add(u32::try_from(tail).unwrap_or(u32::MAX));
        } else {
            let chars = len - scan.continuation_after_last_newline;
            self.column = self
                .column
                .saturating_add(u32::try_from(chars).unwrap_or(u32::MAX));
        }
        self.offset = target;
        self
    }
}

impl Locator<'_> {
    /// The position of the start of the current event.
    pub fn position(&self) -> Position {
        self.resolve(self.deferred())
    }

    /// A cheap token for this position, turned into line and column by
    /// [`Locator::resolve`] (any locator of the same block, or of a later event while the
    /// block is current; the tokenizer asks handlers to settle older ones in time).
    pub fn deferred(&self) -> DeferredPosition {
        DeferredPosition::Offset(self.base + self.offset)
    }

    /// Line and column of a deferred position of the current block.
    pub fn resolve(&self, at: DeferredPosition) -> Position {
        match at {
            DeferredPosition::Known(p) => p,
            DeferredPosition::Offset(absolute) => {
                let relative = absolute.saturating_sub(self.base);
                let c = self.cursor.get().advance(self.block, relative);
                self.cursor.set(c);
                Position {
                    line: c.line,
                    column: c.column,
                    offset: absolute,
                }
            }
        }
    }

    /// Byte offset of the start of the current event.
    pub fn offset(&self) -> usize {
        self.base + self.offset
    }
}

/// A position whose line and column may not have been counted yet.
#[derive(Debug, Clone, Copy)]
pub enum DeferredPosition {
    Known(Position),
    Offset(usize),
}

/// What the tokenizer reports. Returning `ControlFlow::Break` stops the parse early.
pub trait Handler {
    /// A start tag (`<a>` or `<a/>`; for the latter [`Handler::end_element`] follows at once).
    fn start_element(&mut self, tag: &StartTag<'_>, at: &Locator<'_>) -> ControlFlow<()>;
    /// The end of the element most recently started and not yet ended.
    fn end_element(&mut self, at: &Locator<'_>) -> ControlFlow<()>;
    /// Character data inside the root element, references expanded, line ends normalized.
    /// One text node may arrive in several pieces.
    fn text(&mut self, text: &str, at: &Locator<'_>) -> ControlFlow<()>;
    /// A piece of character data that is only spaces, tabs and line ends (normalized).
    /// Handlers that treat it specially override this; by default it is [`Handler::text`].
    fn whitespace(&mut self, text: &str, at: &Locator<'_>) -> ControlFlow<()> {
        self.text(text, at)
    }
    /// A comment (anywhere in the document), its text as written between `<!--` and `-->`
    /// (line ends not yet normalized). Most handlers ignore comments; the canonicalizer keeps
    /// them.
    fn comment(&mut self, text: &str, at: &Locator<'_>) -> ControlFlow<()> {
        let _ = (text, at);
        ControlFlow::Continue(())
    }
    /// A processing instruction (anywhere in the document): its target and its data as
    /// written after the target (leading whitespace included, line ends not yet normalized).
    fn processing_instruction(
        &mut self,
        target: &str,
        data: &str,
        at: &Locator<'_>,
    ) -> ControlFlow<()> {
        let _ = (target, data, at);
        ControlFlow::Continue(())
    }
    /// A streamed block is about to be dropped: turn every [`DeferredPosition`] still held
    /// into a known one with `at.resolve`. Positions in later blocks stay cheap.
    fn settle(&mut self, at: &Locator<'_>) {
        let _ = at;
    }
}

/// How a parse ended.
#[derive(Debug)]
pub enum Outcome {
    /// The whole document was read and is well-formed.
    Complete,
    /// The handler asked to stop.
    Stopped,
}

/// Why reading a stream failed: the bytes were bad, or the reader itself failed.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Xml(#[from] XmlError),
    #[error("reading the document failed: {0}")]
    Io(#[source] io::Error),
}

/// A start tag with its namespace resolved. Valid only during the callback.
pub struct StartTag<'a> {
    content: &'a str,
    local: (usize, usize),
    namespace: Option<((usize, usize), u64)>,
    attributes: &'a [AttrRecord],
    arena: &'a str,
    scope: &'a NamespaceScope,
    declares_namespaces: bool,
}

/// One attribute of a [`StartTag`].
#[derive(Debug, Clone, Copy)]
pub struct AttributeView<'a> {
    /// The namespace URI, `None` for an unprefixed attribute.
    pub namespace: Option<&'a str>,
    pub local: &'a str,
    /// The qualified name as written.
    pub qname: &'a str,
    /// The value after XML attribute-value normalization and reference expansion.
    pub value: &'a str,
}

impl<'a> StartTag<'a> {
    /// The element's namespace URI, `None` when in no namespace.
    pub fn namespace(&self) -> Option<&'a str> {
        self.namespace
            .map(|((s, e), _)| &self.scope.buffer_str()[s..e])
    }

    /// A number identifying the namespace declaration the element's name resolved to
    /// (`0` for no namespace): equal keys mean equal URIs within one document.
    pub fn namespace_key(&self) -> u64 {
        self.namespace.map_or(0, |(_, k)| k)
    }

    /// Whether any attribute has a namespace prefix (so `xsi:*` may be present).
    pub fn has_qualified_attributes(&self) -> bool {
        self.attributes.iter().any(|r| r.namespace.is_some())
    }

    /// The element's qualified name as written (`prefix:local` or `local`).
    pub fn qname(&self) -> &'a str {
        &self.content[..self.local.1]
    }

    /// The element's local name.
    pub fn local(&self) -> &'a str {
        &self.content[self.local.0..self.local.1]
    }

    /// Number of attributes, namespace declarations excluded.
    pub fn attribute_count(&self) -> usize {
        self.attributes.len()
    }

    /// The attribute at `index` (`index < attribute_count()`).
    pub fn attribute(&self, index: usize) -> Option<AttributeView<'a>> {
        let r = self.attributes.get(index)?;
        let qname = &self.content[r.key.0..r.key.1];
        let local = &self.content[r.local_start..r.key.1];
        let value = match r.value {
            ValueRef::Content(s, e) => &self.content[s..e],
            ValueRef::Arena(s, e) => &self.arena[s..e],
        };
        let namespace = r
            .namespace
            .map(|((s, e), _)| &self.scope.buffer_str()[s..e]);
        Some(AttributeView {
            namespace,
            local,
            qname,
            value,
        })
    }

    /// All attributes, namespace declarations excluded.
    pub fn attributes(&self) -> impl Iterator<Item = AttributeView<'a>> + '_ {
        (0..self.attributes.len()).filter_map(move |i| self.attribute(i))
    }

    /// Resolves a prefix in the scope of this element (`""` is the default namespace).
    pub fn lookup_prefix(&self, prefix: &str) -> Option<&'a str> {
        self.scope.lookup(prefix)
    }

    /// Whether this element declares any namespace binding.
    pub fn declares_namespaces(&self) -> bool {
        self.declares_namespaces
    }

    /// Every binding in scope, innermost first (shadowed ones included).
    pub fn namespaces_in_scope(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.scope.iter()
    }
}

#[derive(Debug, Clone, Copy)]
struct AttrRecord {
    key: (usize, usize),
    local_start: usize,
    value: ValueRef,
    namespace: Option<((usize, usize), u64)>,
}

#[derive(Debug, Clone, Copy)]
enum ValueRef {
    Content(usize, usize),
    Arena(usize, usize),
}

/// The in-scope namespace bindings, one flat buffer plus a stack.
#[derive(Debug, Default)]
pub(crate) struct NamespaceScope {
    buffer: String,
    bindings: Vec<Binding>,
    next_key: u64,
}

#[derive(Debug, Clone, Copy)]
struct Binding {
    prefix: (usize, usize),
    /// Empty range: the binding undeclares the default namespace.
    uri: (usize, usize),
    depth: usize,
    /// Unique per declaration in this document: lets a handler cache what it derived
    /// from the URI without comparing strings.
    key: u64,
}

impl NamespaceScope {
    fn buffer_str(&self) -> &str {
        &self.buffer
    }

    fn lookup(&self, prefix: &str) -> Option<&str> {
        let b = self
            .bindings
            .iter()
            .rev()
            .find(|b| &self.buffer[b.prefix.0..b.prefix.1] == prefix)?;
        (b.uri.1 > b.uri.0).then(|| &self.buffer[b.uri.0..b.uri.1])
    }

    /// The URI range and key bound to `prefix`.
    fn lookup_range(&self, prefix: &str) -> Option<((usize, usize), u64)> {
        let b = if prefix.is_empty() {
            self.bindings
                .iter()
                .rev()
                .find(|b| b.prefix.1 == b.prefix.0)?
        } else {
            self.bindings.iter().rev().find(|b| {
                b.prefix.1 - b.prefix.0 == prefix.len()
                    && &self.buffer[b.prefix.0..b.prefix.1] == prefix
            })?
        };
        (b.uri.1 > b.uri.0).then_some((b.uri, b.key))
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.bindings.iter().rev().map(|b| {
            (
                &self.buffer[b.prefix.0..b.prefix.1],
                &self.buffer[b.uri.0..b.uri.1],
            )
        })
    }

    fn push(&mut self, prefix: &str, uri: &str, depth: usize) {
        let ps = self.buffer.len();
        self.buffer.push_str(prefix);
        let us = self.buffer.len();
        self.buffer.push_str(uri);
        self.next_key += 1;
        self.bindings.push(Binding {
            prefix: (ps, us),
            uri: (us, self.buffer.len()),
            depth,
            key: self.next_key,
        });
    }

    fn pop_depth(&mut self, depth: usize) {
        while let Some(b) = self.bindings.last() {
            if b.depth < depth {
                break;
            }
            self.buffer.truncate(b.prefix.0);
            self.bindings.pop();
        }
    }
}

/// Newlines in a run of bytes, where the last one ends, and how many UTF-8 continuation
/// bytes follow it (characters = bytes - continuation bytes).
#[derive(Debug, Default, PartialEq, Eq)]
struct LineScan {
    newlines: u32,
    /// Index just past the last newline (0 when there is none).
    after_last_newline: usize,
    continuation_after_last_newline: usize,
}

const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `x` that is zero.
fn zero_bytes(x: u64) -> u64 {
    !(((x & LOW7) + LOW7) | x) & HIGH
}

/// [`scan_lines`] for long spans (whole blocks): vectorized newline search, and characters
/// counted only after the last newline.
fn scan_lines_long(bytes: &[u8]) -> LineScan {
    let newlines = memchr::memchr_iter(b'\n', bytes).count();
    let after = memchr::memrchr(b'\n', bytes).map_or(0, |i| i + 1);
    let tail = &bytes[after..];
    let continuation = if tail.is_ascii() {
        0
    } else {
        tail.iter().filter(|&&b| b & 0xC0 == 0x80).count()
    };
    LineScan {
        newlines: u32::try_from(newlines).unwrap_or(u32::MAX),
        after_last_newline: after,
        continuation_after_last_newline: continuation,
    }
}

/// One pass, eight bytes at a time; a last partial word is padded with zero bytes, which
/// are neither newlines nor continuation bytes. Bit counts are only taken for the rare
/// words that hold a newline or a non-ASCII byte (baseline x86-64 has no POPCNT).
#[inline(always)]
fn scan_lines(bytes: &[u8]) -> LineScan {
    let mut scan = LineScan::default();
    let mut chunks = bytes.chunks_exact(8);
    let mut base = 0usize;
    for chunk in &mut chunks {
        let w = u64::from_le_bytes([
            chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
        ]);
        scan_word(&mut scan, w, base);
        base += 8;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let w = if bytes.len() >= 8 {
            // Reload the last eight bytes and shift the ones already seen out.
            let tail = &bytes[bytes.len() - 8..];
            let full = u64::from_le_bytes([
                tail[0], tail[1], tail[2], tail[3], tail[4], tail[5], tail[6], tail[7],
            ]);
            full >> ((8 - rest.len()) * 8)
        } else {
            rest.iter()
                .enumerate()
                .fold(0u64, |w, (i, &b)| w | (u64::from(b) << (8 * i)))
        };
        scan_word(&mut scan, w, base);
    }
    scan
}

#[inline]
fn scan_word(scan: &mut LineScan, w: u64, base: usize) {
    let newline = zero_bytes(w ^ 0x0A0A_0A0A_0A0A_0A0A);
    if newline != 0 {
        let continuation = zero_bytes((w & 0xC0C0_C0C0_C0C0_C0C0) ^ HIGH);
        scan.newlines += newline.count_ones();
        // Little-endian: the highest set bit is the last newline in the word.
        let last = (63 - newline.leading_zeros() as usize) / 8;
        scan.after_last_newline = base + last + 1;
        let after = if last == 7 {
            0
        } else {
            continuation >> ((last + 1) * 8)
        };
        scan.continuation_after_last_newline = after.count_ones() as usize;
    } else if w & HIGH != 0 {
        let continuation = zero_bytes((w & 0xC0C0_C0C0_C0C0_C0C0) ^ HIGH);
        scan.continuation_after_last_newline += continuation.count_ones() as usize;
    }
}

/// Per-document parse state, independent of where the bytes come from.
struct State {
    limits: Limits,
    /// What the document was read in (the text parsed is always UTF-8).
    encoding: Encoding,
    scope: NamespaceScope,
    records: Vec<AttrRecord>,
    arena: String,
    depth: usize,
    elements: usize,
    root_seen: bool,
    root_closed: bool,
    first_event: bool,
    /// Length of the current run of character data (text, references, CDATA).
    text_run: usize,
    /// Qualified names of the open elements, for matching end tags.
    open_names: String,
    open_starts: Vec<usize>,
}

/// Parses an in-memory document, calling `handler` for each event. UTF-16 is decoded first
/// ([`encoding`]); byte offsets in positions are then into the decoded text.
pub fn parse_slice<H: Handler>(
    document: &[u8],
    limits: &Limits,
    handler: &mut H,
) -> Result<Outcome, XmlError> {
    let decoded = encoding::decode(document, limits.max_bytes)?;
    parse_decoded(&decoded, limits, handler)
}

/// Parses a document [`encoding::decode`] has read (for callers that keep the decoded
/// text, e.g. to turn offsets into positions later).
pub fn parse_decoded<H: Handler>(
    decoded: &Decoded<'_>,
    limits: &Limits,
    handler: &mut H,
) -> Result<Outcome, XmlError> {
    let document: &[u8] = &decoded.text;
    if document.len() > limits.max_bytes {
        return Err(XmlError::TooLarge {
            limit: limits.max_bytes,
            size: document.len(),
        });
    }
    // A byte order mark is one character at the start of line 1.
    let (base, origin) = if document.starts_with(UTF8_BOM) {
        (UTF8_BOM.len(), LineCursor::at(1, 2))
    } else {
        (0, LineCursor::start())
    };
    let mut state = State::new(limits, decoded.encoding);
    let block = Block {
        bytes: &document[base..],
        base,
        origin,
        last: true,
    };
    match run_block(&mut state, &block, handler)? {
        (_, Step::Stop) => Ok(Outcome::Stopped),
        _ => Ok(Outcome::Complete),
    }
}

/// How much of a stream is parsed at a time (a block grows when one token is larger).
const BLOCK_SIZE: usize = 256 * 1024;

/// Parses a document from a buffered reader with memory bounded by the nesting depth and
/// the longest token, calling `handler` for each event. The input is parsed in blocks;
/// an event cut by the end of a block is parsed again with the next one. A token of text
/// is refused once it must be longer than `max_text_len`; any other token (a tag with its
/// attributes, a comment) is bounded only by `max_bytes`, as in [`parse_slice`], so both
/// give the same verdict. UTF-16 is decoded as it is read, and `max_bytes` counts the
/// decoded UTF-8.
pub fn parse_stream<R: BufRead, H: Handler>(
    input: R,
    limits: &Limits,
    handler: &mut H,
) -> Result<Outcome, StreamError> {
    parse_blocks(input, limits, handler, BLOCK_SIZE)
}

fn parse_blocks<R: BufRead, H: Handler>(
    mut input: R,
    limits: &Limits,
    handler: &mut H,
    block_size: usize,
) -> Result<Outcome, StreamError> {
    // Raw text is at most twice its normalized length (CR LF becomes LF): a text token
    // longer than this is over `max_text_len` whatever follows.
    let max_text_token = limits.max_text_len.saturating_mul(2).saturating_add(8);
    // The first four bytes name the encoding (XML 1.0 Appendix F).
    let mut head: Vec<u8> = Vec::with_capacity(4);
    let mut input_done = false;
    while head.len() < 4 {
        let data = next_bytes(&mut input)?;
        if data.is_empty() {
            input_done = true;
            break;
        }
        let n = data.len().min(4 - head.len());
        head.extend_from_slice(&data[..n]);
        input.consume(n);
    }
    let (source_encoding, bom) = match encoding::sniff(&head) {
        Sniffed::Read(e, bom) => (e, bom),
        Sniffed::Refused(what) => {
            return Err(StreamError::Xml(XmlError::UnsupportedEncoding {
                encoding: what.to_owned(),
                at: Position {
                    line: 1,
                    column: 1,
                    offset: 0,
                },
            }));
        }
    };
    let mut state = State::new(limits, source_encoding);
    let mut buffer: Vec<u8> = Vec::with_capacity(block_size);
    // A byte order mark is one character at the start of line 1; in UTF-16 it counts as
    // the three bytes of its UTF-8 form, like the rest of the decoded text.
    let (mut base, mut origin) = if bom > 0 {
        (UTF8_BOM.len(), LineCursor::at(1, 2))
    } else {
        (0, LineCursor::start())
    };
    let mut decoder =
        (source_encoding != Encoding::Utf8).then(|| Utf16Decoder::new(source_encoding));
    match &mut decoder {
        Some(d) => d.decode(&head[bom..], &mut buffer),
        None => buffer.extend_from_slice(&head[bom..]),
    }
    let mut read_total = base + buffer.len();
    let mut target = block_size;
    loop {
        while buffer.len() < target && !input_done {
            let data = next_bytes(&mut input)?;
            if data.is_empty() {
                input_done = true;
                if let Some(d) = &mut decoder {
                    d.finish(&mut buffer);
                }
                break;
            }
            let n = data.len().min(target - buffer.len());
            let before = buffer.len();
            match &mut decoder {
                Some(d) => d.decode(&data[..n], &mut buffer),
                None => buffer.extend_from_slice(&data[..n]),
            }
            input.consume(n);
            read_total = read_total.saturating_add(buffer.len() - before);
        }
        if read_total > limits.max_bytes {
            return Err(StreamError::Xml(XmlError::TooLarge {
                limit: limits.max_bytes,
                size: read_total,
            }));
        }
        // Never cut a UTF-8 sequence: hold back an incomplete one for the next block.
        let usable = if input_done {
            buffer.len()
        } else {
            utf8_boundary(&buffer)
        };
        let block = Block {
            bytes: &buffer[..usable],
            base,
            origin,
            last: input_done,
        };
        let (consumed, step) = run_block(&mut state, &block, handler)?;
        match step {
            Step::Stop => return Ok(Outcome::Stopped),
            Step::Eof => return Ok(Outcome::Complete),
            Step::Continue => {}
        }
        if consumed == 0 {
            // One token does not fit: read more. Text inside the root cannot grow past its
            // limit; markup and references are bounded by `max_bytes` (checked as they are
            // read), as in `parse_slice`.
            let text = !matches!(buffer.first(), Some(b'<' | b'&'));
            if state.depth > 0 && text && buffer.len() > max_text_token {
                let cursor = Cell::new(origin);
                let at = Locator {
                    block: &buffer,
                    base,
                    offset: 0,
                    cursor: &cursor,
                };
                return Err(StreamError::Xml(XmlError::TextTooLong {
                    limit: limits.max_text_len,
                    at: at.position(),
                }));
            }
            // Doubling: a long token is parsed again a logarithmic number of times.
            target = buffer
                .len()
                .saturating_mul(2)
                .max(buffer.len() + block_size);
            continue;
        }
        // Positions in the part about to go must be settled now.
        let cursor = Cell::new(origin);
        let at = Locator {
            block: &buffer[..consumed],
            base,
            offset: consumed,
            cursor: &cursor,
        };
        handler.settle(&at);
        let end = cursor.get().advance(&buffer[..consumed], consumed);
        origin = LineCursor::at(end.line, end.column);
        buffer.drain(..consumed);
        base += consumed;
        target = block_size.max(buffer.len() + 1);
    }
}

/// The next bytes of `input` (empty at its end), an interrupted read retried.
fn next_bytes<R: BufRead>(input: &mut R) -> Result<&[u8], StreamError> {
    loop {
        match input.fill_buf() {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(StreamError::Io(e)),
        }
    }
    // What the call that just succeeded buffered (returning it from the loop is a borrow the
    // checker cannot follow); at the end of the input, another read that finds nothing.
    input.fill_buf().map_err(StreamError::Io)
}

/// The length of `bytes` without an incomplete UTF-8 sequence at its end.
fn utf8_boundary(bytes: &[u8]) -> usize {
    let n = bytes.len();
    // Look back at most three bytes for the lead byte of the last sequence.
    for back in 1..=3.min(n) {
        let b = bytes[n - back];
        if b & 0xC0 == 0x80 {
            continue;
        }
        let need = if b < 0x80 {
            1
        } else if b >= 0xF0 {
            4
        } else if b >= 0xE0 {
            3
        } else {
            2
        };
        return if need > back { n - back } else { n };
    }
    n
}

/// A block of input: the bytes, where they are in the document, and whether the
/// document ends with them.
struct Block<'a> {
    bytes: &'a [u8],
    base: usize,
    origin: LineCursor,
    last: bool,
}

/// quick-xml errors that only mean "the input ended inside this construct".
fn is_truncation(e: &quick_xml::Error, error_offset: usize, len: usize) -> bool {
    use quick_xml::errors::{IllFormedError, SyntaxError};
    match e {
        quick_xml::Error::Syntax(
            SyntaxError::UnclosedPI
            | SyntaxError::UnclosedXmlDecl
            | SyntaxError::UnclosedComment
            | SyntaxError::UnclosedDoctype
            | SyntaxError::UnclosedCData
            | SyntaxError::UnclosedTag
            | SyntaxError::UnclosedSingleQuotedAttributeValue
            | SyntaxError::UnclosedDoubleQuotedAttributeValue,
        ) => true,
        quick_xml::Error::Syntax(SyntaxError::InvalidBangMarkup) => error_offset + 12 >= len,
        quick_xml::Error::IllFormed(
            IllFormedError::MissingEndTag(_) | IllFormedError::UnclosedReference,
        ) => true,
        _ => false,
    }
}

/// Parses the complete events of one block. Returns how many bytes were consumed (the rest
/// starts with an event the block may have cut) and how parsing stands.
fn run_block<H: Handler>(
    state: &mut State,
    block: &Block<'_>,
    handler: &mut H,
) -> Result<(usize, Step), XmlError> {
    let cursor = Cell::new(block.origin);
    let at = |offset: usize| Locator {
        block: block.bytes,
        base: block.base,
        offset,
        cursor: &cursor,
    };
    let mut reader = quick_xml::Reader::from_reader(block.bytes);
    configure(reader.config_mut());
    let len = block.bytes.len();
    loop {
        let start = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let event = match reader.read_event() {
            Ok(e) => e,
            Err(e) => {
                let mut err_offset = usize::try_from(reader.error_position()).unwrap_or(usize::MAX);
                if !block.last && is_truncation(&e, err_offset, len) {
                    return Ok((start, Step::Continue));
                }
                if let quick_xml::Error::Encoding(_) = e {
                    // quick-xml names the event; the position is that of the first byte
                    // that does not decode.
                    let from = start.min(len);
                    if let Err(bad) = std::str::from_utf8(&block.bytes[from..]) {
                        err_offset = from + bad.valid_up_to();
                    }
                }
                return Err(quick_xml_error(
                    e,
                    state.encoding,
                    at(err_offset).position(),
                ));
            }
        };
        let end = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        if !block.last {
            if matches!(event, Event::Eof) {
                return Ok((len, Step::Continue));
            }
            // An event that reaches the end of the block may continue in the next one.
            if end >= len {
                return Ok((start, Step::Continue));
            }
        }
        let locator = at(start);
        match state.event(event, &locator, handler)? {
            Step::Continue => {}
            Step::Eof => return Ok((end, Step::Eof)),
            Step::Stop => return Ok((end, Step::Stop)),
        }
    }
}

fn configure(config: &mut quick_xml::reader::Config) {
    // End tags are matched by `State` itself: a block's reader does not see the start
    // tags of earlier blocks.
    config.check_end_names = false;
    config.allow_unmatched_ends = true;
    config.check_comments = true;
    config.expand_empty_elements = false;
    config.allow_dangling_amp = false;
    config.trim_text(false);
}

fn quick_xml_error(e: quick_xml::Error, encoding: Encoding, at: Position) -> XmlError {
    match e {
        quick_xml::Error::Encoding(_) => XmlError::Encoding {
            encoding: encoding.name(),
            at,
        },
        quick_xml::Error::Escape(quick_xml::escape::EscapeError::UnrecognizedEntity(_, name)) => {
            XmlError::Entity { name, at }
        }
        other => XmlError::Malformed {
            message: other.to_string(),
            at,
        },
    }
}

enum Step {
    Continue,
    Eof,
    Stop,
}

fn flow(c: ControlFlow<()>) -> Step {
    match c {
        ControlFlow::Continue(()) => Step::Continue,
        ControlFlow::Break(()) => Step::Stop,
    }
}

impl State {
    fn new(limits: &Limits, encoding: Encoding) -> State {
        let mut scope = NamespaceScope::default();
        // The `xml` prefix is always bound; depth 0 is never popped.
        scope.push("xml", XML_NAMESPACE, 0);
        State {
            limits: *limits,
            encoding,
            scope,
            records: Vec::with_capacity(16),
            arena: String::new(),
            depth: 0,
            elements: 0,
            root_seen: false,
            root_closed: false,
            first_event: true,
            text_run: 0,
            open_names: String::new(),
            open_starts: Vec::new(),
        }
    }

    fn malformed(message: impl Into<String>, at: &Locator<'_>) -> XmlError {
        XmlError::Malformed {
            message: message.into(),
            at: at.position(),
        }
    }

    fn event<H: Handler>(
        &mut self,
        event: Event<'_>,
        at: &Locator<'_>,
        handler: &mut H,
    ) -> Result<Step, XmlError> {
        let first = std::mem::replace(&mut self.first_event, false);
        match event {
            Event::Start(start) => {
                self.text_run = 0;
                let step = self.start(&start, at, handler)?;
                self.open_starts.push(self.open_names.len());
                self.open_names.push_str(start.name().as_ref());
                Ok(step)
            }
            Event::Empty(start) => {
                self.text_run = 0;
                if let Step::Stop = self.start(&start, at, handler)? {
                    return Ok(Step::Stop);
                }
                self.end(at, handler)
            }
            Event::End(end) => {
                self.text_run = 0;
                let name = end.name();
                let name: &str = name.as_ref();
                match self.open_starts.pop() {
                    Some(s) => {
                        if &self.open_names[s..] != name {
                            return Err(Self::malformed(
                                format!(
                                    "the end tag </{name}> does not close <{}>",
                                    &self.open_names[s..]
                                ),
                                at,
                            ));
                        }
                        self.open_names.truncate(s);
                    }
                    None => {
                        return Err(Self::malformed(
                            format!("the end tag </{name}> closes no element"),
                            at,
                        ));
                    }
                }
                self.end(at, handler)
            }
            Event::Text(text) => {
                let raw: &str = &text;
                let scan = scan_text(raw.as_bytes());
                if scan.whitespace_only {
                    if self.depth == 0 {
                        return Ok(Step::Continue);
                    }
                    self.count_text(raw.len(), at)?;
                    if scan.carriage_return {
                        let content = text.xml10_content();
                        return Ok(flow(handler.whitespace(&content, at)));
                    }
                    return Ok(flow(handler.whitespace(raw, at)));
                }
                if scan.suspicious {
                    check_chars(raw, at)?;
                }
                if scan.greater_than && raw.contains("]]>") {
                    return Err(Self::malformed("`]]>` is not allowed in text", at));
                }
                if scan.carriage_return {
                    let content = text.xml10_content();
                    self.character_data(&content, at, handler)
                } else {
                    self.character_data(raw, at, handler)
                }
            }
            Event::CData(cdata) => {
                let raw: &str = &cdata;
                check_chars(raw, at)?;
                if self.depth == 0 {
                    return Err(Self::malformed("CDATA outside the root element", at));
                }
                let content = cdata.xml10_content();
                self.character_data(&content, at, handler)
            }
            Event::GeneralRef(reference) => {
                let name: &str = &reference;
                let ch = match reference.resolve_char_ref() {
                    Ok(Some(c)) => {
                        if !is_xml_char(c) {
                            return Err(Self::malformed(
                                format!(
                                    "character reference `&{name};` is not a legal XML character"
                                ),
                                at,
                            ));
                        }
                        c
                    }
                    Ok(None) => match predefined_entity(name) {
                        Some(c) => c,
                        None => {
                            return Err(XmlError::Entity {
                                name: name.to_owned(),
                                at: at.position(),
                            });
                        }
                    },
                    Err(e) => return Err(Self::malformed(e.to_string(), at)),
                };
                if self.depth == 0 {
                    return Err(Self::malformed("reference outside the root element", at));
                }
                let mut utf8 = [0u8; 4];
                let s: &str = ch.encode_utf8(&mut utf8);
                self.character_data(s, at, handler)
            }
            Event::Comment(comment) => {
                check_chars(&comment, at)?;
                Ok(flow(handler.comment(&comment, at)))
            }
            Event::PI(pi) => {
                let target = pi.target();
                if target.eq_ignore_ascii_case("xml") {
                    return Err(Self::malformed(
                        "the XML declaration is only allowed at the very start",
                        at,
                    ));
                }
                if !is_name(target) || target.contains(':') {
                    return Err(Self::malformed(
                        "malformed processing instruction target",
                        at,
                    ));
                }
                check_chars(pi.content(), at)?;
                Ok(flow(handler.processing_instruction(
                    target,
                    pi.content(),
                    at,
                )))
            }
            Event::Decl(decl) => {
                if !first || at.offset() > 3 {
                    return Err(Self::malformed(
                        "the XML declaration is only allowed at the very start",
                        at,
                    ));
                }
                match decl.version() {
                    Ok(v) if v == "1.0" => {}
                    Ok(_) => return Err(Self::malformed("only XML version 1.0 is accepted", at)),
                    Err(e) => return Err(Self::malformed(e.to_string(), at)),
                }
                if let Some(declared) = decl.encoding() {
                    let declared = declared.map_err(|e| Self::malformed(e.to_string(), at))?;
                    self.encoding.check_declared(&declared, at.position())?;
                }
                Ok(Step::Continue)
            }
            Event::DocType(_) => Err(XmlError::Dtd { at: at.position() }),
            Event::Eof => {
                if self.depth > 0 {
                    return Err(Self::malformed("document ends inside an element", at));
                }
                if !self.root_seen {
                    return Err(Self::malformed("no root element", at));
                }
                Ok(Step::Eof)
            }
        }
    }

    fn character_data<H: Handler>(
        &mut self,
        text: &str,
        at: &Locator<'_>,
        handler: &mut H,
    ) -> Result<Step, XmlError> {
        if self.depth == 0 {
            if text
                .bytes()
                .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
            {
                return Ok(Step::Continue);
            }
            let message = if self.root_closed {
                "text after the root element"
            } else {
                "text before the root element"
            };
            return Err(Self::malformed(message, at));
        }
        self.count_text(text.len(), at)?;
        Ok(flow(handler.text(text, at)))
    }

    fn count_text(&mut self, len: usize, at: &Locator<'_>) -> Result<(), XmlError> {
        self.text_run = self.text_run.saturating_add(len);
        if self.text_run > self.limits.max_text_len {
            return Err(XmlError::TextTooLong {
                limit: self.limits.max_text_len,
                at: at.position(),
            });
        }
        Ok(())
    }

    fn start<H: Handler>(
        &mut self,
        start: &BytesStart<'_>,
        at: &Locator<'_>,
        handler: &mut H,
    ) -> Result<Step, XmlError> {
        if self.root_closed {
            return Err(Self::malformed("content after the root element", at));
        }
        self.root_seen = true;
        self.elements += 1;
        if self.elements > self.limits.max_elements {
            return Err(XmlError::TooManyElements {
                limit: self.limits.max_elements,
                at: at.position(),
            });
        }
        if self.depth + 1 > self.limits.max_depth {
            return Err(XmlError::TooDeep {
                limit: self.limits.max_depth,
                at: at.position(),
            });
        }
        self.depth += 1;
        let depth = self.depth;
        let content: &str = start;
        let name = start.name();
        let qname: &str = name.as_ref();
        if qname.len() > self.limits.max_name_len {
            return Err(XmlError::NameTooLong {
                limit: self.limits.max_name_len,
                at: at.position(),
            });
        }
        let (prefix, local) = split_qname(qname)
            .ok_or_else(|| Self::malformed(format!("`{qname}` is not a valid element name"), at))?;
        if prefix == Some("xmlns") {
            return Err(Self::malformed(
                "the `xmlns` prefix cannot name an element",
                at,
            ));
        }

        // First pass: syntax, limits, namespace declarations.
        self.records.clear();
        self.arena.clear();
        let mut declares = false;
        let mut count = 0usize;
        let mut declarations = 0usize;
        for attribute in start.attributes().with_checks(false) {
            let attribute = attribute.map_err(|e| Self::malformed(e.to_string(), at))?;
            let key: &str = attribute.key.as_ref();
            // Namespace declarations count as attributes (the limit bounds the work on one
            // start tag); the error says how many of them there were.
            count += 1;
            if key == "xmlns" || key.starts_with("xmlns:") {
                declarations += 1;
            }
            if count > self.limits.max_attributes {
                return Err(XmlError::TooManyAttributes {
                    limit: self.limits.max_attributes,
                    namespace_declarations: declarations,
                    at: at.position(),
                });
            }
            if key.len() > self.limits.max_name_len {
                return Err(XmlError::NameTooLong {
                    limit: self.limits.max_name_len,
                    at: at.position(),
                });
            }
            let raw: &str = &attribute.value;
            if raw.len() > self.limits.max_text_len {
                return Err(XmlError::TextTooLong {
                    limit: self.limits.max_text_len,
                    at: at.position(),
                });
            }
            let plain = plain_attribute_value(raw.as_bytes());
            if !plain {
                if raw.contains('<') {
                    return Err(Self::malformed(
                        format!("`<` is not allowed in the value of attribute `{key}`"),
                        at,
                    ));
                }
                check_chars(raw, at)?;
            }
            let (aprefix, alocal) = split_qname(key).ok_or_else(|| {
                Self::malformed(format!("`{key}` is not a valid attribute name"), at)
            })?;
            // A plain value has no reference and no whitespace to normalize.
            let value = if plain {
                Cow::Borrowed(raw)
            } else {
                normalize_attribute(&attribute, at)?
            };
            if let Cow::Owned(v) = &value {
                // References may have produced characters the raw text did not show.
                check_chars(v, at)?;
            }
            let key_range = range_in(content, key);
            let local_start = key_range.1 - alocal.len();
            let value_ref = match &value {
                Cow::Borrowed(v) if is_within(content, v) => {
                    let r = range_in(content, v);
                    ValueRef::Content(r.0, r.1)
                }
                other => {
                    let s = self.arena.len();
                    self.arena.push_str(other);
                    ValueRef::Arena(s, self.arena.len())
                }
            };
            let is_decl = match (aprefix, alocal) {
                (None, "xmlns") => Some(""),
                (Some("xmlns"), p) => Some(p),
                _ => None,
            };
            if let Some(declared) = is_decl {
                declares = true;
                self.declare(declared, &value, depth, at)?;
                continue;
            }
            self.records.push(AttrRecord {
                key: key_range,
                local_start,
                value: value_ref,
                namespace: None,
            });
        }

        // Second pass: resolve names now that this element's declarations are in scope.
        let namespace = match prefix {
            None => self.scope.lookup_range(""),
            Some(p) => Some(self.scope.lookup_range(p).ok_or_else(|| {
                Self::malformed(format!("undeclared namespace prefix `{p}`"), at)
            })?),
        };
        for i in 0..self.records.len() {
            let r = self.records[i];
            let key = &content[r.key.0..r.key.1];
            if r.local_start > r.key.0 {
                let p = &key[..r.local_start - r.key.0 - 1];
                let ns = self.scope.lookup_range(p).ok_or_else(|| {
                    Self::malformed(format!("undeclared namespace prefix `{p}`"), at)
                })?;
                self.records[i].namespace = Some(ns);
            }
        }
        // The same qualified name twice.
        for (i, a) in self.records.iter().enumerate() {
            let ak = &content[a.key.0..a.key.1];
            if self.records[i + 1..]
                .iter()
                .any(|b| b.key.1 - b.key.0 == ak.len() && &content[b.key.0..b.key.1] == ak)
            {
                return Err(Self::malformed(
                    format!("attribute `{ak}` is given twice"),
                    at,
                ));
            }
        }
        // Attributes with different prefixes for the same namespace collide.
        if self
            .records
            .iter()
            .filter(|r| r.namespace.is_some())
            .count()
            > 1
        {
            let buffer = &self.scope.buffer;
            for (i, a) in self.records.iter().enumerate() {
                let Some((an, _)) = a.namespace else { continue };
                for b in &self.records[i + 1..] {
                    let Some((bn, _)) = b.namespace else { continue };
                    if content[a.local_start..a.key.1] == content[b.local_start..b.key.1]
                        && buffer[an.0..an.1] == buffer[bn.0..bn.1]
                    {
                        return Err(Self::malformed(
                            format!(
                                "attribute `{}` is given twice",
                                &content[a.local_start..a.key.1]
                            ),
                            at,
                        ));
                    }
                }
            }
        }
        let local_range = range_in(content, local);
        let tag = StartTag {
            content,
            local: local_range,
            namespace,
            attributes: &self.records,
            arena: &self.arena,
            scope: &self.scope,
            declares_namespaces: declares,
        };
        Ok(flow(handler.start_element(&tag, at)))
    }

    fn declare(
        &mut self,
        prefix: &str,
        uri: &str,
        depth: usize,
        at: &Locator<'_>,
    ) -> Result<(), XmlError> {
        if prefix == "xmlns" {
            return Err(Self::malformed("the `xmlns` prefix cannot be declared", at));
        }
        if prefix == "xml" {
            if uri != XML_NAMESPACE {
                return Err(Self::malformed(
                    "the `xml` prefix cannot be bound to another namespace",
                    at,
                ));
            }
            return Ok(());
        }
        if uri == XML_NAMESPACE || uri == XMLNS_NAMESPACE {
            return Err(Self::malformed(
                format!("the prefix `{prefix}` cannot be bound to a reserved namespace"),
                at,
            ));
        }
        if !prefix.is_empty() && uri.is_empty() {
            return Err(Self::malformed(
                format!("the prefix `{prefix}` cannot be undeclared in XML 1.0"),
                at,
            ));
        }
        if self
            .scope
            .bindings
            .iter()
            .rev()
            .take_while(|b| b.depth == depth)
            .any(|b| &self.scope.buffer[b.prefix.0..b.prefix.1] == prefix)
        {
            return Err(Self::malformed(
                format!("the namespace prefix `{prefix}` is declared twice on one element"),
                at,
            ));
        }
        // Names are resolved by searching the bindings in scope: bound them. The `xml`
        // binding every document has is not counted.
        let cap = namespaces_in_scope_limit(&self.limits);
        if self.scope.bindings.len() > cap {
            return Err(XmlError::TooManyNamespaces {
                limit: cap,
                at: at.position(),
            });
        }
        self.scope.push(prefix, uri, depth);
        Ok(())
    }

    fn end<H: Handler>(&mut self, at: &Locator<'_>, handler: &mut H) -> Result<Step, XmlError> {
        let step = flow(handler.end_element(at));
        self.scope.pop_depth(self.depth);
        self.depth = self.depth.saturating_sub(1);
        if self.depth == 0 {
            self.root_closed = true;
        }
        Ok(step)
    }
}

/// Most namespace declarations in scope at once: four times `max_attributes`, at least 64.
pub fn namespaces_in_scope_limit(limits: &Limits) -> usize {
    limits.max_attributes.saturating_mul(4).max(64)
}

fn normalize_attribute<'v>(
    attribute: &quick_xml::events::attributes::Attribute<'v>,
    at: &Locator<'_>,
) -> Result<Cow<'v, str>, XmlError> {
    attribute
        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
        .map_err(|e| match e {
            quick_xml::Error::Escape(quick_xml::escape::EscapeError::UnrecognizedEntity(
                _,
                name,
            )) => XmlError::Entity {
                name,
                at: at.position(),
            },
            other => State::malformed(other.to_string(), at),
        })
}

fn is_within(outer: &str, inner: &str) -> bool {
    let o = outer.as_ptr() as usize;
    let i = inner.as_ptr() as usize;
    i >= o && i + inner.len() <= o + outer.len()
}

/// Byte range of `inner` inside `outer`; `inner` must be a subslice of `outer`.
fn range_in(outer: &str, inner: &str) -> (usize, usize) {
    let start = (inner.as_ptr() as usize).saturating_sub(outer.as_ptr() as usize);
    (start, start + inner.len())
}

fn predefined_entity(name: &str) -> Option<char> {
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "apos" => Some('\''),
        "quot" => Some('"'),
        _ => None,
    }
}

/// Whether an attribute value needs no closer look: no `<`, no control character and no
/// byte that could start U+FFFE/U+FFFF.
fn plain_attribute_value(bytes: &[u8]) -> bool {
    let mut suspicious = 0u8;
    for &b in bytes {
        suspicious |=
            u8::from(b < 0x20) | u8::from(b == b'<') | u8::from(b == 0xEF) | u8::from(b == b'&');
    }
    suspicious == 0
}

/// What one pass over a piece of text found.
struct TextScan {
    whitespace_only: bool,
    /// A control character or a byte that could start U+FFFE/U+FFFF: check closely.
    suspicious: bool,
    greater_than: bool,
    carriage_return: bool,
}

/// One branch-free pass instead of four searches.
fn scan_text(bytes: &[u8]) -> TextScan {
    let (mut other, mut suspicious, mut gt, mut cr) = (0u8, 0u8, 0u8, 0u8);
    for &b in bytes {
        let ws = matches!(b, b' ' | b'\t' | b'\n' | b'\r');
        other |= u8::from(!ws);
        suspicious |= u8::from(b < 0x20 && !ws) | u8::from(b == 0xEF);
        gt |= u8::from(b == b'>');
        cr |= u8::from(b == b'\r');
    }
    TextScan {
        whitespace_only: other == 0,
        suspicious: suspicious != 0,
        greater_than: gt != 0,
        carriage_return: cr != 0,
    }
}

/// Whether every byte is an XML whitespace character.
pub fn is_xml_whitespace(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|&b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// `Char` of XML 1.0: every scalar value except most C0 controls and U+FFFE/U+FFFF.
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Checks that a run of UTF-8 holds only legal XML characters.
fn check_chars(s: &str, at: &Locator<'_>) -> Result<(), XmlError> {
    let bytes = s.as_bytes();
    // Fast path: no control character and no byte that could start U+FFFE/U+FFFF.
    let mut suspicious = 0u8;
    for &b in bytes {
        suspicious |= u8::from(b < 0x20) | u8::from(b == 0xEF);
    }
    if suspicious == 0 {
        return Ok(());
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b < 0x20 {
            if !matches!(b, b'\t' | b'\n' | b'\r') {
                return Err(State::malformed(
                    format!("control character U+{b:04X} is not allowed in XML"),
                    at,
                ));
            }
        } else if b == 0xEF
            && bytes.get(i + 1) == Some(&0xBF)
            && matches!(bytes.get(i + 2), Some(0xBE | 0xBF))
        {
            return Err(State::malformed(
                "U+FFFE and U+FFFF are not allowed in XML",
                at,
            ));
        }
        i += 1;
    }
    Ok(())
}

/// Splits `prefix:local`, checking both parts are NCNames.
pub fn split_qname(qname: &str) -> Option<(Option<&str>, &str)> {
    let bytes = qname.as_bytes();
    // Fast path: an ASCII name, checked and split in one pass.
    if let Some(&first) = bytes.first()
        && first < 128
        && NCNAME_ASCII[first as usize] & 1 != 0
    {
        let mut colon = None;
        let mut all = 2u8;
        let mut ascii = true;
        for (i, &b) in bytes.iter().enumerate().skip(1) {
            if b >= 128 {
                ascii = false;
                break;
            }
            if b == b':' {
                if colon.is_some() {
                    return None;
                }
                colon = Some(i);
                continue;
            }
            all &= NCNAME_ASCII[b as usize];
        }
        if ascii {
            return match colon {
                None => (all & 2 != 0).then_some((None, qname)),
                Some(c) => {
                    let local = &bytes[c + 1..];
                    let starts = local
                        .first()
                        .is_some_and(|&l| NCNAME_ASCII[l as usize] & 1 != 0);
                    (all & 2 != 0 && starts).then(|| (Some(&qname[..c]), &qname[c + 1..]))
                }
            };
        }
    }
    match qname.split_once(':') {
        None => is_ncname(qname).then_some((None, qname)),
        Some((p, l)) => (is_ncname(p) && is_ncname(l)).then_some((Some(p), l)),
    }
}

/// `NameStartChar` of XML 1.0 fifth edition.
pub fn is_name_start_char(c: char) -> bool {
    matches!(c,
        ':' | 'A'..='Z' | '_' | 'a'..='z'
        | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
}

/// `NameChar` of XML 1.0 fifth edition.
pub fn is_name_char(c: char) -> bool {
    is_name_start_char(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// `Name`.
pub fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if is_name_start_char(c) => chars.all(is_name_char),
        _ => false,
    }
}

/// For each ASCII byte: 1 if it may start an NCName, 2 if it may continue one.
const NCNAME_ASCII: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        if c.is_ascii_alphabetic() || c == b'_' {
            t[b] = 3;
        } else if c.is_ascii_digit() || c == b'-' || c == b'.' {
            t[b] = 2;
        }
        b += 1;
    }
    t
};

/// `NCName`: a `Name` without colons.
pub fn is_ncname(s: &str) -> bool {
    let bytes = s.as_bytes();
    let Some(&first) = bytes.first() else {
        return false;
    };
    // Fast path for ASCII names, one table lookup per byte.
    if first < 128 && NCNAME_ASCII[first as usize] & 1 != 0 {
        let mut all = 2u8;
        let mut ascii = true;
        for &b in &bytes[1..] {
            if b >= 128 {
                ascii = false;
                break;
            }
            all &= NCNAME_ASCII[b as usize];
        }
        if ascii {
            return all & 2 != 0;
        }
    }
    !s.contains(':') && is_name(s)
}

/// `Nmtoken`.
pub fn is_nmtoken(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_name_char)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::encoding::utf16_with_bom as utf16;

    #[derive(Default)]
    struct Recorder {
        log: Vec<String>,
    }

    impl Handler for Recorder {
        fn start_element(&mut self, tag: &StartTag<'_>, at: &Locator<'_>) -> ControlFlow<()> {
            let p = at.position();
            let mut s = format!(
                "start {{{}}}{} @{}:{}",
                tag.namespace().unwrap_or(""),
                tag.local(),
                p.line,
                p.column
            );
            for a in tag.attributes() {
                s.push_str(&format!(
                    " {{{}}}{}={:?}",
                    a.namespace.unwrap_or(""),
                    a.local,
                    a.value
                ));
            }
            self.log.push(s);
            ControlFlow::Continue(())
        }
        fn end_element(&mut self, at: &Locator<'_>) -> ControlFlow<()> {
            let p = at.position();
            self.log.push(format!("end @{}:{}", p.line, p.column));
            ControlFlow::Continue(())
        }
        fn text(&mut self, text: &str, _at: &Locator<'_>) -> ControlFlow<()> {
            self.log.push(format!("text {text:?}"));
            ControlFlow::Continue(())
        }
    }

    fn both(doc: &str) -> Result<Vec<String>, String> {
        both_with(doc.as_bytes(), &Limits::default())
    }

    /// Parses `doc` as a slice and as streams cut into tiny blocks; all must agree. Returns
    /// the events, or the error code.
    fn both_with(doc: &[u8], limits: &Limits) -> Result<Vec<String>, String> {
        let shown = String::from_utf8_lossy(doc);
        let mut a = Recorder::default();
        let ra = parse_slice(doc, limits, &mut a);
        let mut b = Recorder::default();
        // Tiny blocks force events to be cut and parsed again.
        let reader = io::BufReader::with_capacity(3, doc);
        let rb = parse_blocks(reader, limits, &mut b, 5);
        let mut c = Recorder::default();
        let rc = parse_blocks(doc, limits, &mut c, 1);
        assert_eq!(
            rb.as_ref()
                .map(|_| b.log.clone())
                .map_err(|e| e.to_string()),
            rc.as_ref()
                .map(|_| c.log.clone())
                .map_err(|e| e.to_string()),
            "block sizes disagree on {shown}"
        );
        match (ra, rb) {
            (Ok(_), Ok(_)) => {
                assert_eq!(a.log, b.log, "slice and stream disagree on {shown}");
                Ok(a.log)
            }
            (Err(ea), Err(eb)) => {
                assert_eq!(
                    ea.code(),
                    match eb {
                        StreamError::Xml(x) => x.code(),
                        StreamError::Io(_) => "io",
                    },
                    "slice and stream disagree on {shown}"
                );
                Err(ea.code().to_owned())
            }
            (ra, rb) => panic!("slice {ra:?} vs stream {rb:?} on {shown}"),
        }
    }

    #[test]
    fn resolves_namespaces_and_positions() {
        let log = both(
            "<?xml version=\"1.0\"?>\n<r:a xmlns:r=\"urn:r\" xmlns=\"urn:d\" b=\"1 &amp;\n2\" r:c='x'>\n  <d>x&lt;&#228;<![CDATA[<]]></d><e xmlns=''/></r:a>",
        )
        .unwrap();
        assert_eq!(
            log,
            vec![
                "start {urn:r}a @2:1 {}b=\"1 & 2\" {urn:r}c=\"x\"",
                "text \"\\n  \"",
                "start {urn:d}d @4:3",
                "text \"x\"",
                "text \"<\"",
                "text \"ä\"",
                "text \"<\"",
                "end @4:30",
                "start {}e @4:34",
                "end @4:34",
                "end @4:47",
            ]
        );
    }

    #[test]
    fn refuses_what_is_not_well_formed() {
        let cases = [
            ("<a><b></a>", "xml_malformed"),
            ("<a/><b/>", "xml_malformed"),
            ("", "xml_malformed"),
            ("text<a/>", "xml_malformed"),
            ("<a/>text", "xml_malformed"),
            ("<p:a/>", "xml_malformed"),
            ("<a b='<'/>", "xml_malformed"),
            ("<a b='1' b='2'/>", "xml_malformed"),
            ("<a xmlns:p='u' xmlns:p='v'/>", "xml_malformed"),
            ("<a xmlns='u' xmlns='v'/>", "xml_malformed"),
            (
                "<a xmlns:p='u' xmlns:q='u' p:b='1' q:b='2'/>",
                "xml_malformed",
            ),
            ("<a>\u{1}</a>", "xml_malformed"),
            ("<a>&#1;</a>", "xml_malformed"),
            ("<a>]]></a>", "xml_malformed"),
            ("<a><!-- a -- b --></a>", "xml_malformed"),
            ("<1a/>", "xml_malformed"),
            ("<a:b:c/>", "xml_malformed"),
            ("<a xmlns:p=''/>", "xml_malformed"),
            ("<a xmlns:xml='urn:x'/>", "xml_malformed"),
            ("<a><?xml version='1.0'?></a>", "xml_malformed"),
            ("<?xml version='1.1'?><a/>", "xml_malformed"),
            (
                "<?xml version='1.0' encoding='ISO-8859-1'?><a/>",
                "unsupported_encoding",
            ),
            (
                "<?xml version='1.0' encoding='windows-1252'?><a/>",
                "unsupported_encoding",
            ),
            (
                "<?xml version='1.0' encoding='UTF-16'?><a/>",
                "xml_malformed",
            ),
            ("<!DOCTYPE a><a/>", "xml_dtd_forbidden"),
            ("<a>&ent;</a>", "xml_entity_forbidden"),
            ("<a b='&ent;'/>", "xml_entity_forbidden"),
            ("<a>", "xml_malformed"),
        ];
        for (doc, code) in cases {
            assert_eq!(both(doc), Err(code.to_owned()), "{doc}");
        }
        let mut r = Recorder::default();
        assert!(matches!(
            parse_slice(b"<a>\xff</a>", &Limits::default(), &mut r),
            Err(XmlError::Encoding { .. })
        ));
    }

    #[test]
    fn accepts_legal_oddities() {
        assert!(both("\u{FEFF}<?xml version='1.0' encoding='UTF-8'?><a/>").is_ok());
        assert!(both("<a xml:lang='fi'/>").is_ok());
        assert!(both("<!-- c --><?pi x?><a/>\n<!-- c -->\n").is_ok());
        assert!(both("<a xmlns='urn:x'><b xmlns=''/></a>").is_ok());
    }

    /// Each `[limits.xml]` limit: a document at the value passes and one past it fails with
    /// the limit's own code — as a slice and as streams, in UTF-8 and in UTF-16 (whose
    /// limits count the decoded UTF-8).
    #[test]
    fn each_limit_holds_at_its_value_and_fails_one_past_it() {
        let limits = Limits {
            max_bytes: 100,
            max_depth: 3,
            max_elements: 5,
            max_attributes: 2,
            max_name_len: 8,
            max_text_len: 10,
        };
        // A document of exactly `n` bytes: padded with a comment, which no other limit counts.
        let sized = |n: usize| format!("<a><!--{}--></a>", "x".repeat(n - 14));
        assert_eq!(sized(100).len(), 100);
        // (limit, document at the limit, document one past it, code)
        let cases: Vec<(&str, String, String, &str)> = vec![
            ("max_bytes", sized(100), sized(101), "xml_too_large"),
            (
                "max_depth",
                "<a><b><c/></b></a>".into(),
                "<a><b><c><d/></c></b></a>".into(),
                "xml_too_deep",
            ),
            (
                "max_elements",
                "<a><b/><b/><b/><b/></a>".into(),
                "<a><b/><b/><b/><b/><b/></a>".into(),
                "xml_too_many_elements",
            ),
            (
                "max_attributes",
                "<a x='1' y='2'/>".into(),
                "<a x='1' y='2' z='3'/>".into(),
                "xml_too_many_attributes",
            ),
            (
                "max_attributes, namespace declarations counted",
                "<a xmlns='urn:u' y='2'/>".into(),
                "<a xmlns='urn:u' xmlns:p='urn:v' y='2'/>".into(),
                "xml_too_many_attributes",
            ),
            (
                "max_name_len, element",
                "<abcdefgh/>".into(),
                "<abcdefghi/>".into(),
                "xml_name_too_long",
            ),
            (
                "max_name_len, attribute",
                "<a abcdefgh='1'/>".into(),
                "<a abcdefghi='1'/>".into(),
                "xml_name_too_long",
            ),
            (
                "max_text_len",
                "<a>0123456789</a>".into(),
                "<a>0123456789x</a>".into(),
                "xml_text_too_long",
            ),
            (
                "max_text_len, after references and CR LF are resolved",
                "<a>01&amp;3\r\n56<!-- -->789</a>".into(),
                "<a>01&amp;3\r\n56<!-- -->789x</a>".into(),
                "xml_text_too_long",
            ),
            (
                "max_text_len, in UTF-8 bytes",
                "<a>äääää</a>".into(),
                "<a>ääääää</a>".into(),
                "xml_text_too_long",
            ),
            (
                "max_text_len, attribute value",
                "<a x='0123456789'/>".into(),
                "<a x='0123456789x'/>".into(),
                "xml_text_too_long",
            ),
            (
                "max_text_len, a text token far longer than the limit",
                "<a>0123456789</a>".into(),
                format!("<a>{}</a>", "x".repeat(90)),
                "xml_text_too_long",
            ),
            (
                "an entity reference with a name longer than a text token",
                "<a>0123456789</a>".into(),
                format!("<a>&{};</a>", "x".repeat(60)),
                "xml_entity_forbidden",
            ),
        ];
        for (what, at_limit, past, code) in &cases {
            assert!(
                both_with(at_limit.as_bytes(), &limits).is_ok(),
                "{what}: at the limit: {at_limit}"
            );
            assert_eq!(
                both_with(past.as_bytes(), &limits),
                Err((*code).to_owned()),
                "{what}: one past: {past}"
            );
            for big_endian in [false, true] {
                // The decoded text starts with the UTF-8 byte order mark: three bytes more.
                let (at_limit, past) = if *what == "max_bytes" {
                    (sized(97), sized(98))
                } else {
                    (at_limit.clone(), past.clone())
                };
                assert!(
                    both_with(&utf16(&at_limit, big_endian), &limits).is_ok(),
                    "{what}: UTF-16 at the limit: {at_limit}"
                );
                assert_eq!(
                    both_with(&utf16(&past, big_endian), &limits),
                    Err((*code).to_owned()),
                    "{what}: UTF-16 one past: {past}"
                );
            }
        }
        // Whitespace outside the root is no text: not bounded by max_text_len.
        assert!(both_with(format!("<a/>{}", " ".repeat(60)).as_bytes(), &limits).is_ok());
    }

    #[test]
    fn namespace_declarations_count_as_attributes_and_the_error_says_so() {
        let declarations =
            |n: usize| -> String { (0..n).map(|i| format!(" xmlns:p{i}='urn:x{i}'")).collect() };
        let limits = Limits::default();
        // 100 on one element, and 100,000 (one 2 MB start tag: the stream reads it whole,
        // as the slice does, and both name the attribute limit). Tiny blocks would re-read
        // the giant tag once per byte: only the real block size here.
        for n in [100, 100_000] {
            let doc = format!("<r{}/>", declarations(n));
            let mut r = Recorder::default();
            match parse_stream(doc.as_bytes(), &limits, &mut r) {
                Err(StreamError::Xml(e)) => assert_eq!(e.code(), "xml_too_many_attributes"),
                other => panic!("{n} declarations, streamed: {other:?}"),
            }
            let mut r = Recorder::default();
            let message = parse_slice(doc.as_bytes(), &limits, &mut r)
                .unwrap_err()
                .to_string();
            assert!(
                message.contains(
                    "more than 64 attributes; namespace declarations (`xmlns`, `xmlns:*`) count as attributes, and 65 of the first 65 are declarations"
                ),
                "{message}"
            );
        }
        let mixed = format!("<r a='1' b='2'{}/>", declarations(63));
        let mut r = Recorder::default();
        let e = parse_slice(mixed.as_bytes(), &limits, &mut r).unwrap_err();
        assert!(
            matches!(
                e,
                XmlError::TooManyAttributes {
                    limit: 64,
                    namespace_declarations: 63,
                    ..
                }
            ),
            "{e}"
        );
        // In scope at once: 64 declarations on each of four elements is the limit (256);
        // one more on a fifth element is past it.
        let nested = |extra: usize| {
            let mut d = String::new();
            for level in 0..4 {
                d.push_str(&format!(
                    "<e{}>",
                    declarations(64).replace(" xmlns:p", &format!(" xmlns:l{level}p"))
                ));
            }
            d.push_str(&format!("<f{}/>", declarations(extra)));
            for _ in 0..4 {
                d.push_str("</e>");
            }
            d
        };
        assert_eq!(namespaces_in_scope_limit(&limits), 256);
        assert!(both_with(nested(0).as_bytes(), &limits).is_ok());
        assert_eq!(
            both_with(nested(1).as_bytes(), &limits),
            Err("xml_too_many_namespaces".to_owned())
        );
    }

    #[test]
    fn reads_utf16_with_a_byte_order_mark_like_utf8() {
        let body =
            "\n<r:a xmlns:r=\"urn:r\" b=\"ä &amp; €\">\n  <d>𝄞x&lt;&#228;<![CDATA[<]]></d></r:a>";
        let text = format!("<?xml version='1.0' encoding='UTF-16'?>{body}");
        let utf8 = both(&format!("<?xml version='1.0' encoding='UTF-8'?>{body}")).unwrap();
        for big_endian in [false, true] {
            assert_eq!(
                both_with(&utf16(&text, big_endian), &Limits::default()),
                Ok(utf8.clone()),
                "big endian: {big_endian}"
            );
        }
        // Without a declaration, and with the byte order's own name.
        assert!(both_with(&utf16("<a/>", false), &Limits::default()).is_ok());
        assert!(
            both_with(
                &utf16("<?xml version='1.0' encoding='utf-16le'?><a/>", false),
                &Limits::default()
            )
            .is_ok()
        );
        let refused = |doc: &[u8]| both_with(doc, &Limits::default()).unwrap_err();
        // The declaration must agree with the byte order mark.
        for declared in ["UTF-8", "UTF-16BE"] {
            let doc = format!("<?xml version='1.0' encoding='{declared}'?><a/>");
            assert_eq!(refused(&utf16(&doc, false)), "xml_malformed", "{declared}");
        }
        assert_eq!(
            refused(&utf16(
                "<?xml version='1.0' encoding='ISO-8859-1'?><a/>",
                true
            )),
            "unsupported_encoding"
        );
        // UTF-16 without a byte order mark, and UTF-32.
        let bare: Vec<u8> =
            utf16("<?xml version='1.0' encoding='UTF-16'?><a/>", false)[2..].to_vec();
        assert_eq!(refused(&bare), "unsupported_encoding");
        assert_eq!(
            refused(b"\xFF\xFE\x00\x00<\x00\x00\x00"),
            "unsupported_encoding"
        );
        // A lone surrogate is refused where it stands, by line and column (as is a byte
        // that is not UTF-8 in a UTF-8 document).
        let mut broken = utf16("<a>\nxy</a>", false);
        broken.splice(12..12, [0x00, 0xDC]);
        assert_eq!(refused(&broken), "xml_encoding");
        for (doc, encoding) in [(broken, "UTF-16LE"), (b"<a>\nx\xFFy</a>".to_vec(), "UTF-8")] {
            let mut r = Recorder::default();
            match parse_slice(&doc, &Limits::default(), &mut r) {
                Err(XmlError::Encoding { encoding: e, at }) => {
                    assert_eq!(e, encoding);
                    assert_eq!((at.line, at.column), (2, 2), "{at:?}");
                }
                other => panic!("{other:?}"),
            }
        }
        // An odd number of bytes.
        let mut odd = utf16("<a/>", true);
        odd.push(b' ');
        assert_eq!(refused(&odd), "xml_encoding");
    }

    #[test]
    fn positions_in_utf16_are_those_of_the_characters() {
        let text = "<a>\n  <b>ä€𝄞</b>\n  <c/></a>";
        let mut r = Recorder::default();
        parse_slice(&utf16(text, false), &Limits::default(), &mut r).unwrap();
        let mut u = Recorder::default();
        parse_slice(
            format!("\u{FEFF}{text}").as_bytes(),
            &Limits::default(),
            &mut u,
        )
        .unwrap();
        assert_eq!(r.log, u.log);
        assert!(r.log.contains(&"start {}c @3:3".to_owned()), "{:?}", r.log);
    }

    #[test]
    fn streaming_refuses_to_buffer_a_giant_token() {
        let limits = Limits {
            max_text_len: 100,
            max_name_len: 10,
            ..Limits::default()
        };
        let doc = format!("<a>{}</a>", "x".repeat(200_000));
        let mut r = Recorder::default();
        match parse_stream(io::BufReader::new(doc.as_bytes()), &limits, &mut r) {
            // The limit named is the configured one.
            Err(StreamError::Xml(XmlError::TextTooLong { limit: 100, .. })) => {}
            other => panic!("{other:?}"),
        }
    }

    proptest::proptest! {
        #[test]
        fn line_scan_matches_a_plain_count(s in "(a|ä|\n|€|x|𝄞){0,40}") {
            let b = s.as_bytes();
            let scan = scan_lines(b);
            let newlines = b.iter().filter(|&&c| c == b'\n').count() as u32;
            let after = b.iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1);
            let cont = b[after..].iter().filter(|&&c| c & 0xC0 == 0x80).count();
            proptest::prop_assert_eq!(scan_lines_long(b), LineScan { newlines, after_last_newline: after, continuation_after_last_newline: cont });
            proptest::prop_assert_eq!(scan, LineScan { newlines, after_last_newline: after, continuation_after_last_newline: cont });
        }

        #[test]
        fn split_qname_fast_path_agrees(s in "[a-zA-Z_:.0-9ä-]{0,12}") {
            let reference = match s.split_once(':') {
                None => is_name(&s).then_some((None, s.as_str())),
                Some((p, l)) => (is_name(p) && is_name(l) && !l.contains(':')).then_some((Some(p), l)),
            };
            proptest::prop_assert_eq!(split_qname(&s), reference);
        }
    }

    #[test]
    fn name_predicates() {
        assert!(is_ncname("a-b.c_d9"));
        assert!(is_ncname("äö"));
        assert!(!is_ncname("a:b"));
        assert!(!is_ncname("9a"));
        assert!(!is_ncname(""));
        assert!(is_name("a:b"));
        assert!(is_nmtoken("9-a"));
        assert!(!is_nmtoken("a b"));
        assert_eq!(split_qname("p:l"), Some((Some("p"), "l")));
        assert_eq!(split_qname("p:"), None);
    }
}

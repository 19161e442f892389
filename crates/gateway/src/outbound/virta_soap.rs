//! `protocol = "virta-soap"`: VIRTA opintotietopalvelu's SOAP 1.1 operation
//! `OpiskelijanKaikkiTiedot`, document/literal, as its WSDL describes it
//! (`../shared/corpus/virta/wsdl/opiskelijatiedot.wsdl`, namespace
//! `http://tietovaranto.csc.fi/luku`; CONTRACT.md, "Source protocols").
//!
//! Owns: the request envelope — `Kutsuja` (`jarjestelma`, `tunnus`, `avain` from the
//! participant's credentials file) and `Hakuehdot` (`henkilotunnus`, or
//! `kansallinenOppijanumero` for a learner number), posted to `base_url` with
//! `Content-Type: text/xml; charset=utf-8` and `SOAPAction: ""` — and the reading of the
//! answer with the hardened XML reader under `[limits.xml]` (a DTD, an entity, a broken or
//! oversized envelope: `invalid_source_document`). The `virta:Virta` element is taken out of
//! the envelope as a document of its own, with the namespace declarations it inherits, for the
//! pipeline to validate against the configured VIRTA schema exactly as a `virta` document.
//!
//! What answers mean: a `Virta` with an `Opiskelija` is found; an empty
//! `OpiskelijanKaikkiTiedotResponse` (no `Virta`, as VIRTA answers an unknown person) or a
//! `Virta` without `Opiskelija` is not found; a SOAP Fault whose `faultcode` is `Client` (a
//! request VIRTA refuses, e.g. Spring-WS's `ValidationError`) is a permanent refusal carrying the
//! `faultstring`, one whose code is `Server` is retried; without a fault, HTTP 5xx is retried
//! and 4xx (an IP allowlist, a proxy) refused. The `faultstring` is cleaned of anything shaped
//! like a student id and shortened; the fault's `detail` is counted, never quoted (Spring-WS's
//! validation errors quote the values of the request). The credentials are in the request
//! body only, never in an error or a log line.

use std::ops::ControlFlow;

use bytes::Bytes;
#[cfg(test)]
use http::StatusCode;
use http::{Method, Request};
use http_body_util::Full;
use siirto_core::protocol::VirtaCaller;
use siirto_core::student_id::{StudentId, StudentIdKind};
use siirto_xsd::Limits;
use siirto_xsd::encoding;
use siirto_xsd::reader::{self, Handler, Locator, StartTag};

use super::{Answer, Fetched, RequestError, SourceCall, http_request};

/// SOAP 1.1's envelope namespace.
pub const SOAP_ENVELOPE: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// The namespace of the VIRTA read interface's requests and responses.
pub const LUKU: &str = "http://tietovaranto.csc.fi/luku";
/// The VIRTA data namespace of the WSDL (API 1.06).
pub const VIRTA: &str = "urn:mace:funet.fi:virta/2015/09/01";
/// SOAP 1.2's envelope namespace (VIRTA has no SOAP 1.2 binding).
const SOAP12_ENVELOPE: &str = "http://www.w3.org/2003/05/soap-envelope";

/// The longest `faultstring` kept, in characters.
const MAX_FAULTSTRING: usize = 200;

/// A VIRTA SOAP source.
pub struct VirtaSoap {
    caller: VirtaCaller,
    limits: Limits,
}

impl VirtaSoap {
    pub fn new(caller: VirtaCaller, limits: Limits) -> VirtaSoap {
        VirtaSoap { caller, limits }
    }
}

/// Escapes text for element content.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The `OpiskelijanKaikkiTiedotRequest` envelope for `subject` (pure).
pub fn request_envelope(caller: &VirtaCaller, subject: &StudentId) -> String {
    let criterion = match subject.kind() {
        StudentIdKind::Henkilotunnus => "henkilotunnus",
        StudentIdKind::LearnerOid => "kansallinenOppijanumero",
    };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="{SOAP_ENVELOPE}" xmlns:luku="{LUKU}">
  <soapenv:Header/>
  <soapenv:Body>
    <luku:OpiskelijanKaikkiTiedotRequest>
      <luku:Kutsuja>
        <luku:jarjestelma>{}</luku:jarjestelma>
        <luku:tunnus>{}</luku:tunnus>
        <luku:avain>{}</luku:avain>
      </luku:Kutsuja>
      <luku:Hakuehdot>
        <luku:{criterion}>{}</luku:{criterion}>
      </luku:Hakuehdot>
    </luku:OpiskelijanKaikkiTiedotRequest>
  </soapenv:Body>
</soapenv:Envelope>
"#,
        escape(caller.jarjestelma()),
        escape(caller.tunnus()),
        escape(caller.avain()),
        escape(subject.as_str()),
    )
}

impl SourceCall for VirtaSoap {
    fn request(
        &self,
        base_url: &str,
        subject: &StudentId,
        _transfer_id: &str,
    ) -> Result<Request<Full<Bytes>>, RequestError> {
        http_request(
            Method::POST,
            base_url,
            &[
                ("content-type", "text/xml; charset=utf-8"),
                ("soapaction", "\"\""),
                ("accept", "text/xml"),
            ],
            Bytes::from(request_envelope(&self.caller, subject)),
        )
    }

    fn classify(&self, answer: Answer<'_>, subject: &StudentId) -> Fetched {
        classify(answer, subject, &self.limits)
    }
}

fn classify(answer: Answer<'_>, subject: &StudentId, limits: &Limits) -> Fetched {
    let status = answer.status;
    let code = status.as_u16();
    let read = if answer.truncated {
        Err("the answer is longer than an error answer may be".to_owned())
    } else {
        read_answer(answer.body, limits)
    };
    if let Ok(SoapAnswer::Fault(fault)) = &read {
        let detail = fault.describe(subject);
        return if fault.is_server() {
            Fetched::Unavailable {
                status: code,
                detail,
            }
        } else {
            Fetched::Refused {
                status: code,
                detail,
            }
        };
    }
    match (code, read) {
        (200, Ok(SoapAnswer::Virta { document, students })) if students > 0 => {
            Fetched::Found(Bytes::from(document))
        }
        (200, Ok(SoapAnswer::Virta { .. } | SoapAnswer::Empty)) => Fetched::NotFound,
        (200, Err(summary)) => Fetched::Invalid { summary },
        _ if status.is_client_error() => Fetched::Refused {
            status: code,
            detail: String::new(),
        },
        _ => Fetched::Unavailable {
            status: code,
            detail: String::new(),
        },
    }
}

/// A SOAP 1.1 Fault, as far as it is kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fault {
    /// `faultcode`'s local part when its prefix names the SOAP envelope namespace (`Client`,
    /// `Server`, `Client.Authentication`, …); the text as written otherwise.
    pub code: String,
    pub string: String,
    /// Elements in `detail`, and how many of them are Spring-WS `ValidationError`s.
    pub details: usize,
    pub validation_errors: usize,
}

impl Fault {
    /// `Server` (or a dotted `Server.…`): VIRTA failed, asking again may help.
    fn is_server(&self) -> bool {
        self.code == "Server" || self.code.starts_with("Server.")
    }

    /// The words kept for the step and the audit: code, cleaned fault string, detail counts.
    fn describe(&self, subject: &StudentId) -> String {
        let mut out = format!(
            "SOAP fault {}: {}",
            clean(&self.code, subject, 40),
            clean(&self.string, subject, MAX_FAULTSTRING)
        );
        if self.details > 0 {
            out.push_str(&format!(
                " ({} detail element(s), {} ValidationError; not shown, they may quote the request)",
                self.details, self.validation_errors
            ));
        }
        out
    }
}

/// Collapses whitespace, replaces anything shaped like a student id (the one asked about, a
/// henkilötunnus, a learner number) with `[id]`, and shortens to `max` characters.
fn clean(text: &str, subject: &StudentId, max: usize) -> String {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|word| {
            let core = word.trim_matches(|c: char| !c.is_alphanumeric());
            if word.contains(subject.as_str()) || looks_like_student_id(core) {
                word.replace(core, "[id]")
            } else {
                word.to_owned()
            }
        })
        .collect();
    let joined = words.join(" ");
    if joined.chars().count() > max {
        let mut short: String = joined.chars().take(max).collect();
        short.push('…');
        short
    } else {
        joined
    }
}

/// A henkilötunnus shape (six digits, a century sign, three digits, a check character; the
/// check not verified), or a learner number OID.
fn looks_like_student_id(word: &str) -> bool {
    if word.starts_with("1.2.246.562.24.") {
        return true;
    }
    let b = word.as_bytes();
    b.len() == 11
        && b[..6].iter().all(u8::is_ascii_digit)
        && b"+-ABCDEFUVWXY".contains(&b[6])
        && b[7..10].iter().all(u8::is_ascii_digit)
        && b[10].is_ascii_alphanumeric()
}

/// What a VIRTA SOAP answer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SoapAnswer {
    /// The response's `virta:Virta` element as a document of its own, and how many
    /// `virta:Opiskelija` it has.
    Virta {
        document: Vec<u8>,
        students: usize,
    },
    /// An `OpiskelijanKaikkiTiedotResponse` with nothing in it.
    Empty,
    Fault(Fault),
}

/// Reads a SOAP answer with the hardened reader (pure). `Err` says, by code and position or by
/// the element names involved, why it is not an answer of this operation.
pub fn read_answer(body: &[u8], limits: &Limits) -> Result<SoapAnswer, String> {
    let decoded =
        encoding::decode(body, limits.max_bytes).map_err(|e| format!("{}: {e}", e.code()))?;
    let mut walk = Walk::default();
    reader::parse_decoded(&decoded, limits, &mut walk).map_err(|e| format!("{}: {e}", e.code()))?;
    if let Some(problem) = walk.problem {
        return Err(format!("soap_unexpected: {problem}"));
    }
    if !walk.body_seen {
        return Err("soap_unexpected: the envelope has no Body".into());
    }
    if let Some(mut fault) = walk.fault {
        fault.code = resolve_faultcode(fault.code.trim(), &walk.faultcode_scope);
        fault.string = fault.string.trim().to_owned();
        return Ok(SoapAnswer::Fault(fault));
    }
    if !walk.response_seen {
        return Err("soap_unexpected: the Body holds no OpiskelijanKaikkiTiedotResponse".into());
    }
    let Some(payload) = walk.payload else {
        return Ok(SoapAnswer::Empty);
    };
    let text: &[u8] = &decoded.text;
    let start = payload.start;
    let end = tag_end(text, payload.end)
        .filter(|end| *end > start)
        .ok_or_else(|| "soap_unexpected: the Virta element could not be delimited".to_owned())?;
    // `<` and the qualified name, then the inherited declarations, then the rest as written.
    let name_end = start
        + 1
        + text[start + 1..end]
            .iter()
            .position(|b| b.is_ascii_whitespace() || *b == b'/' || *b == b'>')
            .unwrap_or(0);
    let mut document = Vec::with_capacity(end - start + 256);
    document.extend_from_slice(&text[start..name_end]);
    for (prefix, uri) in &payload.inherited {
        let uri = escape(uri);
        if prefix.is_empty() {
            document.extend_from_slice(format!(" xmlns=\"{uri}\"").as_bytes());
        } else {
            document.extend_from_slice(format!(" xmlns:{prefix}=\"{uri}\"").as_bytes());
        }
    }
    document.extend_from_slice(&text[name_end..end]);
    Ok(SoapAnswer::Virta {
        document,
        students: payload.students,
    })
}

/// The offset just past the tag starting at `from` (a start tag, whose attribute values may
/// hold `>`, or an end tag).
fn tag_end(text: &[u8], from: usize) -> Option<usize> {
    let mut quote: Option<u8> = None;
    for (i, b) in text.get(from..)?.iter().enumerate() {
        match (quote, *b) {
            (Some(q), b) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(*b),
            (None, b'>') => return Some(from + i + 1),
            (None, _) => {}
        }
    }
    None
}

/// `faultcode` is a QName: its local part when the prefix names the SOAP 1.1 envelope
/// namespace, the text as written otherwise.
fn resolve_faultcode(code: &str, scope: &[(String, String)]) -> String {
    match code.split_once(':') {
        Some((prefix, local)) if scope.iter().any(|(p, u)| p == prefix && u == SOAP_ENVELOPE) => {
            local.to_owned()
        }
        _ => code.to_owned(),
    }
}

/// Where the payload element is in the decoded text, and what it inherits.
#[derive(Debug, Default)]
struct Payload {
    start: usize,
    /// Where its end tag starts (its start tag, when it is empty: `<x/>`).
    end: usize,
    /// Namespace bindings in scope from its ancestors that it does not declare itself.
    inherited: Vec<(String, String)>,
    students: usize,
}

/// Which part of a fault the text being read belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FaultField {
    Code,
    String,
}

/// The walk over a SOAP answer: Envelope (1) / Header|Body (2) / Fault|Response (3) /
/// fault fields|payload (4) / detail entries|Opiskelija (5).
#[derive(Debug, Default)]
struct Walk {
    depth: usize,
    body_seen: bool,
    in_body: bool,
    body_children: usize,
    fault: Option<Fault>,
    in_fault: bool,
    in_detail: bool,
    field: Option<FaultField>,
    /// Prefix → namespace at `faultcode`, to resolve its QName.
    faultcode_scope: Vec<(String, String)>,
    response_seen: bool,
    in_response: bool,
    /// Bindings in scope at the response element (the payload's inherited ones), and how
    /// many there are counting shadowed ones.
    response_scope: Vec<(String, String)>,
    response_bindings: usize,
    payload: Option<Payload>,
    in_payload: bool,
    problem: Option<String>,
}

fn name(namespace: Option<&str>, local: &str) -> String {
    match namespace {
        Some(ns) => format!("{{{ns}}}{local}"),
        None => local.to_owned(),
    }
}

/// Bindings in scope, innermost first, one per prefix (shadowed ones dropped).
fn scope_of(tag: &StartTag<'_>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (prefix, uri) in tag.namespaces_in_scope() {
        if !out.iter().any(|(p, _)| p == prefix) {
            out.push((prefix.to_owned(), uri.to_owned()));
        }
    }
    out
}

impl Walk {
    fn stop(&mut self, problem: String) -> ControlFlow<()> {
        self.problem = Some(problem);
        ControlFlow::Break(())
    }
}

impl Handler for Walk {
    fn start_element(&mut self, tag: &StartTag<'_>, at: &Locator<'_>) -> ControlFlow<()> {
        self.depth += 1;
        let (ns, local) = (tag.namespace(), tag.local());
        match self.depth {
            1 if ns == Some(SOAP_ENVELOPE) && local == "Envelope" => {}
            1 if ns == Some(SOAP12_ENVELOPE) => {
                return self.stop("a SOAP 1.2 envelope; VIRTA speaks SOAP 1.1".into());
            }
            1 => {
                return self.stop(format!(
                    "the root is {}, not a SOAP 1.1 Envelope",
                    name(ns, local)
                ));
            }
            2 if ns == Some(SOAP_ENVELOPE) && local == "Body" => {
                self.body_seen = true;
                self.in_body = true;
            }
            3 if self.in_body => {
                self.body_children += 1;
                if self.body_children > 1 {
                    return self.stop("the Body holds more than one element".into());
                }
                if ns == Some(SOAP_ENVELOPE) && local == "Fault" {
                    self.in_fault = true;
                    self.fault = Some(Fault::default());
                } else if ns == Some(LUKU) && local == "OpiskelijanKaikkiTiedotResponse" {
                    self.in_response = true;
                    self.response_seen = true;
                    self.response_scope = scope_of(tag);
                    self.response_bindings = tag.namespaces_in_scope().count();
                } else {
                    return self.stop(format!(
                        "the Body holds {}, not OpiskelijanKaikkiTiedotResponse",
                        name(ns, local)
                    ));
                }
            }
            4 if self.in_fault => {
                self.in_detail = ns.is_none() && local == "detail";
                self.field = match (ns, local) {
                    (None, "faultcode") => {
                        self.faultcode_scope = scope_of(tag);
                        Some(FaultField::Code)
                    }
                    (None, "faultstring") => Some(FaultField::String),
                    _ => None,
                };
            }
            5 if self.in_detail => {
                if let Some(fault) = &mut self.fault {
                    fault.details += 1;
                    if local == "ValidationError" {
                        fault.validation_errors += 1;
                    }
                }
            }
            4 if self.in_response => {
                if self.payload.is_some() {
                    return self.stop("the response holds more than one element".into());
                }
                // Declarations on the element itself come first in the scope and win; the
                // rest is inherited from the ancestors.
                let own = tag
                    .namespaces_in_scope()
                    .count()
                    .saturating_sub(self.response_bindings);
                let mine: Vec<&str> = tag
                    .namespaces_in_scope()
                    .take(own)
                    .map(|(p, _)| p)
                    .collect();
                let inherited = self
                    .response_scope
                    .iter()
                    .filter(|(p, u)| !u.is_empty() && !mine.contains(&p.as_str()))
                    .cloned()
                    .collect();
                if ns != Some(VIRTA) || local != "Virta" {
                    return self.stop(format!(
                        "the response holds {}, not {}",
                        name(ns, local),
                        name(Some(VIRTA), "Virta")
                    ));
                }
                self.payload = Some(Payload {
                    start: at.offset(),
                    end: 0,
                    inherited,
                    students: 0,
                });
                self.in_payload = true;
            }
            5 if self.in_payload => {
                if ns == Some(VIRTA)
                    && local == "Opiskelija"
                    && let Some(p) = &mut self.payload
                {
                    p.students += 1;
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn end_element(&mut self, at: &Locator<'_>) -> ControlFlow<()> {
        match self.depth {
            2 => self.in_body = false,
            3 => {
                self.in_fault = false;
                self.in_response = false;
            }
            4 => {
                self.field = None;
                self.in_detail = false;
                if self.in_payload {
                    self.in_payload = false;
                    if let Some(p) = &mut self.payload {
                        p.end = at.offset();
                    }
                }
            }
            _ => {}
        }
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn text(&mut self, text: &str, _at: &Locator<'_>) -> ControlFlow<()> {
        if self.depth == 4
            && let (Some(field), Some(fault)) = (self.field, &mut self.fault)
        {
            match field {
                FaultField::Code => fault.code.push_str(text),
                FaultField::String => fault.string.push_str(text),
            }
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const HETU: &str = "131052-308T";

    /// Where the corpus is; each test that reads it first skips loudly when it is absent.
    fn corpus() -> PathBuf {
        siirto_testsupport::corpus_location()
    }

    fn wsdl_file(name: &str) -> Vec<u8> {
        let path = corpus().join("virta/wsdl").join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn subject() -> StudentId {
        StudentId::parse(HETU).expect("valid")
    }

    fn answer(status: u16, body: &[u8]) -> Fetched {
        let body = Bytes::copy_from_slice(body);
        classify(
            Answer {
                status: StatusCode::from_u16(status).expect("status"),
                body: &body,
                truncated: false,
            },
            &subject(),
            &Limits::default(),
        )
    }

    fn caller() -> VirtaCaller {
        VirtaCaller::new("siirto<&>", "turku", "avain-\"s3cret\"").expect("caller")
    }

    #[test]
    fn the_request_envelope_is_the_wsdls() {
        let envelope = request_envelope(&caller(), &subject());
        let root = siirto_xsd::dom::parse(envelope.as_bytes(), &Limits::default()).expect("xml");
        assert_eq!(
            (root.namespace.as_deref(), root.local.as_str()),
            (Some(SOAP_ENVELOPE), "Envelope")
        );
        let request = root
            .child("Body")
            .and_then(|b| b.child("OpiskelijanKaikkiTiedotRequest"))
            .expect("request");
        assert_eq!(request.namespace.as_deref(), Some(LUKU));
        let kutsuja = request.child("Kutsuja").expect("Kutsuja");
        assert_eq!(
            kutsuja.child_text("jarjestelma").as_deref(),
            Some("siirto<&>")
        );
        assert_eq!(
            kutsuja.child_text("avain").as_deref(),
            Some("avain-\"s3cret\"")
        );
        let hakuehdot = request.child("Hakuehdot").expect("Hakuehdot");
        assert_eq!(hakuehdot.child_text("henkilotunnus").as_deref(), Some(HETU));
        assert!(
            hakuehdot
                .elements()
                .all(|e| e.namespace.as_deref() == Some(LUKU))
        );
        let oid = StudentId::parse("1.2.246.562.24.10000000008").expect("oid");
        let envelope = request_envelope(&caller(), &oid);
        assert!(envelope.contains(
            "<luku:kansallinenOppijanumero>1.2.246.562.24.10000000008</luku:kansallinenOppijanumero>"
        ));
        let request = VirtaSoap::new(caller(), Limits::default())
            .request(
                "https://virta.example/luku/OpiskelijanTiedot",
                &subject(),
                "t",
            )
            .expect("request");
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri().path(), "/luku/OpiskelijanTiedot");
        assert_eq!(request.headers()["soapaction"], "\"\"");
        assert_eq!(request.headers()["content-type"], "text/xml; charset=utf-8");
    }

    #[test]
    fn the_real_answer_gives_its_virta_element_as_a_document() {
        if siirto_testsupport::corpus().is_none() {
            return;
        }
        let body = wsdl_file("test-response-106.xml");
        let Ok(SoapAnswer::Virta { document, students }) = read_answer(&body, &Limits::default())
        else {
            panic!("a Virta answer");
        };
        assert_eq!(students, 1);
        let root = siirto_xsd::dom::parse(&document, &Limits::default()).expect("a document");
        assert_eq!(
            (root.namespace.as_deref(), root.local.as_str()),
            (Some(VIRTA), "Virta")
        );
        let schema = siirto_xsd::schema::Schema::load(&corpus().join("virta/xsd/Virta.xsd"))
            .expect("schema");
        schema
            .validate(&document, &Limits::default())
            .expect("the extracted Virta is valid VIRTA");
        assert!(matches!(answer(200, &body), Fetched::Found(_)));
    }

    #[test]
    fn inherited_namespaces_go_with_the_virta_element() {
        let body = format!(
            r#"<e:Envelope xmlns:e="{SOAP_ENVELOPE}" xmlns:v="{VIRTA}" xmlns="urn:other"><e:Body>
<l:OpiskelijanKaikkiTiedotResponse xmlns:l="{LUKU}"><v:Virta a="x>y"><v:Opiskelija avain="1"/></v:Virta></l:OpiskelijanKaikkiTiedotResponse>
</e:Body></e:Envelope>"#
        );
        let Ok(SoapAnswer::Virta { document, students }) =
            read_answer(body.as_bytes(), &Limits::default())
        else {
            panic!("a Virta answer");
        };
        assert_eq!(students, 1);
        let text = String::from_utf8(document).expect("utf-8");
        assert!(text.starts_with("<v:Virta "), "{text}");
        assert!(text.ends_with("</v:Virta>"), "{text}");
        for declaration in [
            format!("xmlns:v=\"{VIRTA}\""),
            format!("xmlns:e=\"{SOAP_ENVELOPE}\""),
            format!("xmlns:l=\"{LUKU}\""),
            "xmlns=\"urn:other\"".to_owned(),
        ] {
            assert_eq!(
                text.matches(&declaration).count(),
                1,
                "{declaration} in {text}"
            );
        }
        // An empty Virta, declaring its own prefix: not found, and the declaration not doubled.
        let empty = format!(
            r#"<e:Envelope xmlns:e="{SOAP_ENVELOPE}" xmlns:v="urn:shadowed"><e:Body><l:OpiskelijanKaikkiTiedotResponse xmlns:l="{LUKU}"><v:Virta xmlns:v="{VIRTA}"/></l:OpiskelijanKaikkiTiedotResponse></e:Body></e:Envelope>"#
        );
        let Ok(SoapAnswer::Virta { document, students }) =
            read_answer(empty.as_bytes(), &Limits::default())
        else {
            panic!("a Virta answer");
        };
        assert_eq!(students, 0);
        let text = String::from_utf8(document).expect("utf-8");
        assert_eq!(text.matches("xmlns:v=").count(), 1, "{text}");
        assert!(text.ends_with("/>"), "{text}");
        assert_eq!(answer(200, empty.as_bytes()), Fetched::NotFound);
    }

    #[test]
    fn the_empty_answer_is_not_found() {
        if siirto_testsupport::corpus().is_none() {
            return;
        }
        let body = wsdl_file("test-empty-response.xml");
        assert_eq!(
            read_answer(&body, &Limits::default()),
            Ok(SoapAnswer::Empty)
        );
        assert_eq!(answer(200, &body), Fetched::NotFound);
    }

    #[test]
    fn a_client_fault_is_refused_with_its_faultstring_and_no_detail_text() {
        if siirto_testsupport::corpus().is_none() {
            return;
        }
        let body = wsdl_file("test-fault.xml");
        let Ok(SoapAnswer::Fault(fault)) = read_answer(&body, &Limits::default()) else {
            panic!("a fault");
        };
        assert_eq!(fault.code, "Client");
        assert_eq!(fault.string, "Validation error");
        assert_eq!((fault.details, fault.validation_errors), (2, 2));
        for status in [200, 500] {
            let Fetched::Refused { detail, .. } = answer(status, &body) else {
                panic!("refused");
            };
            assert!(detail.contains("Client: Validation error"), "{detail}");
            assert!(detail.contains("2 ValidationError"), "{detail}");
            assert!(!detail.contains("140173"), "{detail}");
        }
    }

    #[test]
    fn a_server_fault_and_a_bare_5xx_are_retried_a_4xx_refused() {
        let fault = |code: &str, string: &str| {
            format!(
                r#"<s:Envelope xmlns:s="{SOAP_ENVELOPE}"><s:Body><s:Fault><faultcode>s:{code}</faultcode><faultstring>{string}</faultstring></s:Fault></s:Body></s:Envelope>"#
            )
        };
        let Fetched::Unavailable {
            status: 500,
            detail,
        } = answer(500, fault("Server", "Tietokantavirhe").as_bytes())
        else {
            panic!("retry");
        };
        assert_eq!(detail, "SOAP fault Server: Tietokantavirhe");
        assert!(matches!(
            answer(503, b"<html>busy</html>"),
            Fetched::Unavailable { status: 503, .. }
        ));
        assert!(matches!(
            answer(403, b"Forbidden"),
            Fetched::Refused { status: 403, .. }
        ));
        // The student asked about, or anything shaped like an id, is not repeated.
        let Fetched::Refused { detail, .. } = answer(
            500,
            fault(
                "Client",
                &format!("No access to {HETU} or 010101A123B, 1.2.246.562.24.10000000008."),
            )
            .as_bytes(),
        ) else {
            panic!("refused");
        };
        assert_eq!(
            detail,
            "SOAP fault Client: No access to [id] or [id], [id]."
        );
        let long = "x ".repeat(400);
        let Fetched::Refused { detail, .. } = answer(500, fault("Client", &long).as_bytes()) else {
            panic!("refused");
        };
        assert!(detail.chars().count() < 260, "{detail}");
        // A fault code not in the envelope namespace is kept as written, and is permanent.
        let other = fault("Server", "x").replace("s:Server", "other:Server");
        assert!(matches!(
            answer(500, other.as_bytes()),
            Fetched::Refused { .. } | Fetched::Unavailable { .. }
        ));
    }

    #[test]
    fn a_dtd_or_a_foreign_answer_is_an_invalid_document() {
        if siirto_testsupport::corpus().is_none() {
            return;
        }
        let body = wsdl_file("test-response-106.xml");
        let mut with_dtd = b"<?xml version=\"1.0\"?>\n<!DOCTYPE e [<!ENTITY x \"y\">]>\n".to_vec();
        with_dtd.extend_from_slice(&body);
        let Fetched::Invalid { summary } = answer(200, &with_dtd) else {
            panic!("invalid");
        };
        assert!(summary.starts_with("xml_dtd_forbidden"), "{summary}");
        // The legacy answer in the 2013 namespace.
        let Fetched::Invalid { summary } = answer(200, &wsdl_file("test-response.xml")) else {
            panic!("invalid");
        };
        assert!(summary.contains("2013/01/29"), "{summary}");
        for (body, says) in [
            ("<a/>".to_owned(), "not a SOAP 1.1 Envelope"),
            (
                format!(r#"<s:Envelope xmlns:s="{SOAP12_ENVELOPE}"/>"#),
                "SOAP 1.2",
            ),
            (
                format!(r#"<s:Envelope xmlns:s="{SOAP_ENVELOPE}"/>"#),
                "no Body",
            ),
            (
                format!(
                    r#"<s:Envelope xmlns:s="{SOAP_ENVELOPE}"><s:Body><x/></s:Body></s:Envelope>"#
                ),
                "not OpiskelijanKaikkiTiedotResponse",
            ),
        ] {
            let Fetched::Invalid { summary } = answer(200, body.as_bytes()) else {
                panic!("invalid: {body}");
            };
            assert!(summary.contains(says), "{summary}");
        }
        assert!(matches!(answer(200, b"<broken"), Fetched::Invalid { .. }));
    }
}

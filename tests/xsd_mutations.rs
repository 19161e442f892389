//! Mutation testing against libxml2: every valid corpus document, and a small document whose
//! schema has nillable elements, is mutated one change at a time (drop an element, swap
//! siblings, duplicate an element, break a value, drop or break an attribute, add an unknown
//! attribute, add `xsi:nil` true or false, move an element to another namespace), and the
//! engine's verdict on each mutant must equal `xmllint --nonet --schema`'s.
//! The run prints `N cases, agreement A/N`; anything below 100% fails.

mod support;

use std::path::PathBuf;

use quick_xml::events::Event;
use siirto_xsd::Limits;
use siirto_xsd::schema::{Schema, ValidationFailure};

/// An element's byte spans in the original document.
#[derive(Debug, Clone)]
struct Span {
    /// Whole element, start tag to end tag inclusive.
    start: usize,
    end: usize,
    /// End of the start tag (the `>`), exclusive.
    tag_end: usize,
    /// Content span (empty for `<a/>`).
    content: (usize, usize),
    children: Vec<usize>,
    parent: Option<usize>,
    empty_tag: bool,
    /// Attributes: (name, value span) in the start tag.
    attributes: Vec<(String, usize, usize)>,
    name: String,
}

fn spans(doc: &[u8]) -> Vec<Span> {
    let mut reader = quick_xml::Reader::from_reader(doc);
    let mut out: Vec<Span> = Vec::new();
    let mut stack: Vec<usize> = Vec::new();
    loop {
        let start = reader.buffer_position() as usize;
        let event = reader.read_event().expect("corpus document parses");
        let after = reader.buffer_position() as usize;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                let tag = &doc[start..after];
                let mut attributes = Vec::new();
                for a in e.attributes().with_checks(false).flatten() {
                    let key: &str = a.key.as_ref();
                    if key.starts_with("xmlns") {
                        continue;
                    }
                    let raw: &str = &a.value;
                    // Locate the value in the tag text: `key="value"` or `key='value'`.
                    let tag_text = String::from_utf8_lossy(tag);
                    for q in ['"', '\''] {
                        let needle = format!("{key}={q}{raw}{q}");
                        if let Some(i) = tag_text.find(&needle) {
                            let vs = start + i + key.len() + 2;
                            attributes.push((key.to_owned(), vs, vs + raw.len()));
                            break;
                        }
                    }
                }
                let index = out.len();
                let parent = stack.last().copied();
                if let Some(p) = parent {
                    out[p].children.push(index);
                }
                let qname = e.name();
                let name: &str = qname.as_ref();
                out.push(Span {
                    start,
                    end: after,
                    tag_end: after,
                    content: (after, after),
                    children: Vec::new(),
                    parent,
                    empty_tag: empty,
                    attributes,
                    name: name.to_owned(),
                });
                if !empty {
                    stack.push(index);
                }
            }
            Event::End(_) => {
                if let Some(i) = stack.pop() {
                    out[i].content = (out[i].tag_end, start);
                    out[i].end = after;
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    out
}

fn splice(doc: &[u8], replacements: &[(usize, usize, Vec<u8>)]) -> Vec<u8> {
    let mut r = replacements.to_vec();
    r.sort_by_key(|x| x.0);
    let mut out = Vec::with_capacity(doc.len() + 64);
    let mut pos = 0;
    for (s, e, bytes) in r {
        out.extend_from_slice(&doc[pos..s]);
        out.extend_from_slice(&bytes);
        pos = e;
    }
    out.extend_from_slice(&doc[pos..]);
    out
}

/// Replacement texts for a leaf value, chosen to break codes, dates, numbers and lengths.
fn broken_values(original: &str) -> Vec<(String, String)> {
    let t = original.trim();
    let mut v = vec![
        ("code ZZZ999".to_owned(), "ZZZ999".to_owned()),
        ("empty value".to_owned(), String::new()),
        ("padded value".to_owned(), format!(" {t} ")),
        ("overlong value".to_owned(), "x".repeat(260)),
        // Same value, other spellings: these test the text pipeline, not the facets.
        ("value in CDATA".to_owned(), format!("<![CDATA[{t}]]>")),
        ("value with a comment inside".to_owned(), {
            let mid = t
                .char_indices()
                .nth(t.chars().count() / 2)
                .map_or(0, |(i, _)| i);
            format!("{}<!-- c -->{}", &t[..mid], &t[mid..])
        }),
        (
            "first character as a reference".to_owned(),
            match t.chars().next() {
                Some(c) => format!("&#x{:X};{}", u32::from(c), &t[c.len_utf8()..]),
                None => String::new(),
            },
        ),
        ("value between line breaks".to_owned(), format!("\n{t}\n")),
        ("value with a tab".to_owned(), format!("{t}\t")),
    ];
    let is_date = t.len() == 10 && t.as_bytes()[4] == b'-' && t.as_bytes()[7] == b'-';
    if is_date {
        let year = &t[..4];
        v.push(("date: February 30".to_owned(), format!("{year}-02-30")));
        v.push(("date: month 13".to_owned(), format!("{year}-13-01")));
        v.push(("date: before 1900".to_owned(), "1899-12-31".to_owned()));
        v.push((
            "date: wrong format".to_owned(),
            format!("{}.{}.{year}", &t[8..10], &t[5..7]),
        ));
        v.push(("date: with time zone".to_owned(), format!("{t}Z")));
    } else if t.contains('T') && t.len() >= 19 && t.as_bytes()[4] == b'-' {
        v.push(("dateTime: no seconds".to_owned(), t[..16].to_owned()));
        v.push((
            "dateTime: hour 25".to_owned(),
            format!("{}25{}", &t[..11], &t[13..]),
        ));
    } else if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        v.push(("number: negative".to_owned(), format!("-{t}")));
        v.push(("number: decimal".to_owned(), format!("{t}.5")));
        v.push(("number: appended digit".to_owned(), format!("{t}9")));
    }
    v
}

struct Case {
    description: String,
    bytes: Vec<u8>,
}

fn mutants(doc: &[u8]) -> Vec<Case> {
    let sp = spans(doc);
    let mut cases = Vec::new();
    let text = |s: usize, e: usize| String::from_utf8_lossy(&doc[s..e]).into_owned();
    for (i, el) in sp.iter().enumerate() {
        let at = format!("<{}> #{i}", el.name);
        // Drop the element (the root excepted).
        if el.parent.is_some() {
            cases.push(Case {
                description: format!("drop {at}"),
                bytes: splice(doc, &[(el.start, el.end, Vec::new())]),
            });
            cases.push(Case {
                description: format!("duplicate {at}"),
                bytes: splice(doc, &[(el.end, el.end, doc[el.start..el.end].to_vec())]),
            });
        }
        // Swap with the next sibling.
        if let Some(p) = el.parent {
            let siblings = &sp[p].children;
            if let Some(k) = siblings.iter().position(|&c| c == i)
                && let Some(&next) = siblings.get(k + 1)
            {
                let b = &sp[next];
                if doc[el.start..el.end] != doc[b.start..b.end] {
                    cases.push(Case {
                        description: format!("swap {at} with <{}>", b.name),
                        bytes: splice(
                            doc,
                            &[
                                (el.start, el.end, doc[b.start..b.end].to_vec()),
                                (b.start, b.end, doc[el.start..el.end].to_vec()),
                            ],
                        ),
                    });
                }
            }
        }
        // Unknown attribute, and another namespace for the element.
        let name_end = el.start + 1 + el.name.len();
        cases.push(Case {
            description: format!("unknown attribute on {at}"),
            bytes: splice(doc, &[(name_end, name_end, b" tuntematon=\"1\"".to_vec())]),
        });
        const XSI: &str = "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"";
        // xsi:nil true and false: a non-nillable declaration allows neither (Structures
        // §3.3.4 clause 3.1); a nillable one allows both, "true" only when empty.
        for value in ["true", "false", "0"] {
            cases.push(Case {
                description: format!("xsi:nil=\"{value}\" on {at}"),
                bytes: splice(
                    doc,
                    &[(
                        name_end,
                        name_end,
                        format!(" {XSI} xsi:nil=\"{value}\"").into_bytes(),
                    )],
                ),
            });
        }
        cases.push(Case {
            description: format!("xsi:type xs:string on {at}"),
            bytes: splice(
                doc,
                &[(
                    name_end,
                    name_end,
                    format!(" {XSI} xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" xsi:type=\"xs:string\"").into_bytes(),
                )],
            ),
        });
        cases.push(Case {
            description: format!("xml:lang on {at}"),
            bytes: splice(doc, &[(name_end, name_end, b" xml:lang=\"fi\"".to_vec())]),
        });
        let tag = String::from_utf8_lossy(&doc[el.start..el.tag_end]).into_owned();
        let wrong_ns = match tag.find(" xmlns=\"").or_else(|| tag.find("\nxmlns=\"")) {
            Some(i) => {
                let vs = el.start + i + " xmlns=\"".len();
                let ve = vs + tag[i + " xmlns=\"".len()..].find('"').unwrap_or(0);
                splice(doc, &[(vs, ve, b"urn:example:wrong".to_vec())])
            }
            None => splice(
                doc,
                &[(name_end, name_end, b" xmlns=\"urn:example:wrong\"".to_vec())],
            ),
        };
        cases.push(Case {
            description: format!("wrong namespace on {at}"),
            bytes: wrong_ns,
        });
        // Break leaf values.
        if el.children.is_empty() && !el.empty_tag {
            let (s, e) = el.content;
            let original = text(s, e);
            if !original.contains('<') && !original.contains('&') {
                for (what, value) in broken_values(&original) {
                    cases.push(Case {
                        description: format!("{what} in {at}"),
                        bytes: splice(doc, &[(s, e, value.into_bytes())]),
                    });
                }
            }
        }
        // Attributes: drop, break, empty.
        for (name, vs, ve) in &el.attributes {
            // The attribute text runs from its name to the closing quote.
            let name_start = vs - 2 - name.len();
            let before = if doc[name_start - 1].is_ascii_whitespace() {
                name_start - 1
            } else {
                name_start
            };
            cases.push(Case {
                description: format!("drop attribute {name} of {at}"),
                bytes: splice(doc, &[(before, ve + 1, Vec::new())]),
            });
            cases.push(Case {
                description: format!("break attribute {name} of {at}"),
                bytes: splice(doc, &[(*vs, *ve, b"ZZZ999".to_vec())]),
            });
            cases.push(Case {
                description: format!("overlong attribute {name} of {at}"),
                bytes: splice(doc, &[(*vs, *ve, vec![b'x'; 260])]),
            });
            let value = String::from_utf8_lossy(&doc[*vs..*ve]).into_owned();
            if !value.contains('&') {
                for (what, new) in [
                    ("padded", format!(" {value} ")),
                    ("tab before", format!("&#9;{value}")),
                    ("line break after", format!("{value}\n")),
                    (
                        "first character as a reference",
                        match value.chars().next() {
                            Some(c) => format!("&#{};{}", u32::from(c), &value[c.len_utf8()..]),
                            None => String::new(),
                        },
                    ),
                ] {
                    cases.push(Case {
                        description: format!("{what} attribute {name} of {at}"),
                        bytes: splice(doc, &[(*vs, *ve, new.into_bytes())]),
                    });
                }
            }
        }
    }
    cases
}

/// A schema with nillable and non-nillable elements of every kind of content (the corpus
/// schemas declare none nillable), so the xsi:nil mutations meet both.
const NILLABLE_SCHEMA: &str = r#"<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"
    targetNamespace="urn:example:nil" xmlns="urn:example:nil" elementFormDefault="qualified">
  <xs:element name="record">
    <xs:complexType>
      <xs:sequence>
        <xs:element name="born" type="xs:date" nillable="true"/>
        <xs:element name="name" type="xs:string"/>
        <xs:element name="grade" nillable="true" maxOccurs="unbounded">
          <xs:complexType><xs:simpleContent><xs:extension base="xs:integer">
            <xs:attribute name="scale" type="xs:string" use="required"/>
          </xs:extension></xs:simpleContent></xs:complexType>
        </xs:element>
        <xs:element name="address" nillable="true" minOccurs="0">
          <xs:complexType><xs:sequence>
            <xs:element name="street" type="xs:string"/>
            <xs:element name="city" type="xs:string" nillable="true"/>
          </xs:sequence></xs:complexType>
        </xs:element>
        <xs:element name="status" type="xs:string" nillable="true" fixed="active"/>
        <xs:element name="note" type="xs:string" nillable="true" default="none"/>
        <xs:element name="flag" nillable="true"><xs:complexType/></xs:element>
        <xs:element name="count" type="xs:nonNegativeInteger"/>
      </xs:sequence>
      <xs:attribute name="version" type="xs:string"/>
    </xs:complexType>
  </xs:element>
</xs:schema>
"#;

const NILLABLE_SEED: &str = r#"<record xmlns="urn:example:nil" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" version="1">
  <born>2008-05-01</born>
  <name>Aino</name>
  <grade scale="4-10">9</grade>
  <grade scale="4-10" xsi:nil="true"/>
  <address><street>Katu 1</street><city xsi:nil="false">Turku</city></address>
  <status>active</status>
  <note></note>
  <flag/>
  <count>3</count>
</record>
"#;

/// The valid documents to mutate: the corpus's, the nillable probe (its schema written to
/// `dir`), and the demo school record against the project's own schema when that schema is
/// present.
fn seeds(dir: &std::path::Path) -> Vec<(String, PathBuf, Vec<u8>)> {
    // Without the corpus only its seeds are left out (loudly); the others still run.
    let mut seeds: Vec<(String, PathBuf, Vec<u8>)> = match siirto_testsupport::corpus() {
        Some(corpus) => support::manifest(&corpus)
            .into_iter()
            .filter(|e| e.valid)
            .map(|e| {
                let bytes = std::fs::read(corpus.join(&e.file)).expect("read");
                (e.file.clone(), corpus.join(&e.schema), bytes)
            })
            .collect(),
        None => Vec::new(),
    };
    // The ELMO example with what it lacks: an extension holding foreign content (lax
    // `##other` wildcard; its strict `anyAttribute` is then exercised by the mutations),
    // just before its signature.
    if let Some((_, elmo_schema, elmo)) = seeds.iter().find(|(l, _, _)| l == "elmo/example.xml") {
        let text = String::from_utf8_lossy(elmo).into_owned();
        if let Some(at) = text.rfind("<Signature ") {
            let extra = r#"<extension xmlns:o="urn:example:other"><o:info lang="fi"><o:deep>1</o:deep></o:info><o:more/></extension>
    "#;
            let rich = format!("{}{extra}{}", &text[..at], &text[at..]);
            let schema = elmo_schema.clone();
            seeds.push((
                "elmo/example.xml + extension".into(),
                schema,
                rich.into_bytes(),
            ));
        }
    }
    let nillable = dir.join("nillable.xsd");
    std::fs::write(&nillable, NILLABLE_SCHEMA).expect("write the nillable schema");
    seeds.push((
        "nillable probe".into(),
        nillable,
        NILLABLE_SEED.as_bytes().to_vec(),
    ));
    let own = support::own_schema();
    if own.exists() {
        let record = siirto_devkit::demo::school_record(siirto_devkit::demo::DEMO_STUDENT, true);
        seeds.push((
            "demo school record (siirto-v1)".into(),
            own,
            record.into_bytes(),
        ));
    } else {
        eprintln!(
            "note: {} not found; the project's own schema is not mutation-tested",
            own.display()
        );
    }
    seeds
}

#[test]
fn mutants_of_valid_documents_get_the_libxml2_verdict() {
    let Some(xmllint) = support::xmllint() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut total = 0usize;
    let mut agree = 0usize;
    let mut invalid_cases = 0usize;
    let mut report = Vec::new();
    for (label, schema_path, doc) in seeds(dir.path()) {
        let schema = Schema::load(&schema_path).expect("schema loads");
        // Every seed is valid for both engines, so its mutants test something.
        let seed_path = dir.path().join("seed.xml");
        std::fs::write(&seed_path, &doc).expect("write seed");
        assert_eq!(
            support::xmllint_verdicts(&xmllint, &schema_path, &[seed_path]),
            vec![true],
            "libxml2 rejects the seed {label}"
        );
        assert!(
            schema.validate(&doc, &Limits::default()).is_ok(),
            "the engine rejects the seed {label}"
        );
        let cases = mutants(&doc);
        let stem: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let mut files: Vec<PathBuf> = Vec::with_capacity(cases.len());
        for (i, c) in cases.iter().enumerate() {
            let path = dir.path().join(format!("{stem}.{i:05}.xml"));
            std::fs::write(&path, &c.bytes).expect("write mutant");
            files.push(path);
        }
        let theirs = support::xmllint_verdicts(&xmllint, &schema_path, &files);
        for (c, libxml2_valid) in cases.iter().zip(theirs) {
            total += 1;
            let ours = schema.validate(&c.bytes, &Limits::default());
            if !libxml2_valid {
                invalid_cases += 1;
            }
            if ours.is_ok() == libxml2_valid {
                agree += 1;
            } else if report.len() < 40 {
                let detail = match ours {
                    Ok(_) => "engine: valid".to_owned(),
                    Err(ValidationFailure::Invalid(e)) => format!("engine: invalid\n{e}"),
                    Err(e) => format!("engine: {e}"),
                };
                report.push(format!(
                    "{label} / {}: libxml2 says {}; {detail}",
                    c.description,
                    if libxml2_valid { "valid" } else { "invalid" }
                ));
            }
        }
        println!("{label}: {} mutants", cases.len());
    }
    println!("{total} cases ({invalid_cases} invalid per libxml2), agreement {agree}/{total}");
    assert!(total >= 1000, "only {total} mutation cases were generated");
    assert!(
        report.is_empty(),
        "disagreements with libxml2 ({} of {total}):\n{}",
        total - agree,
        report.join("\n\n")
    );
}

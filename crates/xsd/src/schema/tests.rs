//! Unit tests of the schema engine on small schemas written for the purpose: load-time
//! errors, messages, positions and paths, limits, streaming, the CLI helper.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::Limits;
use crate::encoding::utf16_with_bom;

const XS: &str = r#"xmlns:xs="http://www.w3.org/2001/XMLSchema""#;

fn schema(body: &str) -> Arc<Schema> {
    Schema::from_str(&format!("<xs:schema {XS}>{body}</xs:schema>"), None)
        .unwrap_or_else(|e| panic!("schema should load: {e}"))
}

fn load_error(body: &str) -> SchemaError {
    match Schema::from_str(&format!("<xs:schema {XS}>\n{body}</xs:schema>"), None) {
        Ok(_) => panic!("schema should not load: {body}"),
        Err(e) => e,
    }
}

fn errors(s: &Schema, doc: &str) -> ValidationErrors {
    match s.validate(doc.as_bytes(), &Limits::default()) {
        Err(ValidationFailure::Invalid(e)) => e,
        other => panic!("expected invalid, got {other:?}"),
    }
}

const RECORD: &str = r#"
<xs:element name="r"><xs:complexType><xs:sequence>
  <xs:element name="a" maxOccurs="unbounded"><xs:complexType><xs:sequence>
    <xs:element name="Koodi" type="xs:string"/>
    <xs:element name="Nimi" type="xs:string" minOccurs="0"/>
    <xs:element name="Laajuus" type="xs:decimal"/>
  </xs:sequence><xs:attribute name="k" type="xs:int"/></xs:complexType></xs:element>
</xs:sequence></xs:complexType></xs:element>"#;

#[test]
fn schema_is_shareable_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Schema>();
    let s = schema(RECORD);
    let s2 = Arc::clone(&s);
    let handle = std::thread::spawn(move || {
        s2.validate(
            b"<r><a><Koodi/><Laajuus>1</Laajuus></a></r>",
            &Limits::default(),
        )
        .is_ok()
    });
    assert!(handle.join().unwrap_or(false));
}

#[test]
fn messages_name_line_column_path_and_expectation() {
    let s = schema(RECORD);
    let doc =
        "<r>\n<a><Koodi>1</Koodi><Laajuus>2</Laajuus></a>\n<a>\n  <Laajuus>3</Laajuus></a></r>";
    let e = errors(&s, doc);
    assert_eq!(e.errors.len(), 1);
    let err = &e.errors[0];
    assert_eq!((err.line, err.column), (4, 3));
    assert_eq!(err.path, "/r/a[2]/Laajuus");
    assert_eq!(err.message, "expected <Koodi>; found <Laajuus>");
    assert_eq!(
        err.to_string(),
        "line 4, column 3, /r/a[2]/Laajuus: expected <Koodi>; found <Laajuus>"
    );
    let e = errors(&s, "<r><a><Koodi/><Laajuus>1</Laajuus><Koodi/></a></r>");
    assert_eq!(
        e.errors[0].message,
        "no more child elements are allowed here; found <Koodi>"
    );
    let e = errors(&s, "<r><a><Koodi/><Nimi/></a></r>");
    assert_eq!(
        e.errors[0].message,
        "the content is incomplete: expected <Laajuus>"
    );
    assert_eq!(e.errors[0].path, "/r/a");
    let e = errors(&s, "<r><a><Koodi/><Koodi/></a></r>");
    assert_eq!(e.errors[0].path, "/r/a/Koodi[2]");
    assert_eq!(
        e.errors[0].message,
        "expected one of <Nimi>, <Laajuus>; found <Koodi>"
    );
}

#[test]
fn messages_never_repeat_document_values() {
    let s = schema(RECORD);
    let e = errors(
        &s,
        "<r><a k='SECRET-KEY-1'><Koodi>x</Koodi><Laajuus>010190-123A</Laajuus></a></r>",
    );
    let text = e.to_string();
    assert!(!text.contains("SECRET"), "{text}");
    assert!(!text.contains("010190"), "{text}");
    assert_eq!(e.errors.len(), 2, "{text}");
    assert!(
        text.contains("attribute `k`: the value is not a valid xs:int"),
        "{text}"
    );
    assert!(
        text.contains("the value is not a valid xs:decimal"),
        "{text}"
    );
}

#[test]
fn errors_are_capped_and_say_so() {
    let s = schema(RECORD);
    let mut doc = String::from("<r>");
    for _ in 0..80 {
        doc.push_str("<a><Koodi/><Laajuus>x</Laajuus></a>");
    }
    doc.push_str("</r>");
    let e = errors(&s, &doc);
    assert_eq!(e.errors.len(), MAX_ERRORS);
    assert!(e.truncated);
    assert!(
        e.to_string()
            .ends_with("stopped after 50 errors; the document may have more")
    );
    let failure = s.validate(doc.as_bytes(), &Limits::default()).unwrap_err();
    assert_eq!(failure.code(), "xml_schema_invalid");
}

#[test]
fn each_limit_is_its_own_failure() {
    let s = schema(RECORD);
    let limits = Limits {
        max_bytes: 400,
        max_depth: 3,
        max_elements: 6,
        max_attributes: 1,
        max_name_len: 10,
        max_text_len: 8,
    };
    let cases = [
        ("<r><a><Koodi><x/></Koodi></a></r>", "xml_too_deep"),
        (
            "<r><a><Koodi/><Laajuus>1</Laajuus></a><a><Koodi/><Laajuus>1</Laajuus></a></r>",
            "xml_too_many_elements",
        ),
        ("<r><a k='1' j='2'/></r>", "xml_too_many_attributes"),
        ("<r><averyveryverylongname/></r>", "xml_name_too_long"),
        (
            "<r><a><Koodi>0123456789</Koodi></a></r>",
            "xml_text_too_long",
        ),
        (&format!("<r>{}</r>", " ".repeat(500)), "xml_too_large"),
        ("<!DOCTYPE r><r/>", "xml_dtd_forbidden"),
        ("<r>&ent;</r>", "xml_entity_forbidden"),
        ("<r><a></r>", "xml_malformed"),
    ];
    for (doc, code) in cases {
        let failure = s.validate(doc.as_bytes(), &limits).unwrap_err();
        assert_eq!(failure.code(), code, "{doc}");
        let streamed = s
            .validate_reader(
                std::io::BufReader::with_capacity(5, doc.as_bytes()),
                &limits,
            )
            .unwrap_err();
        assert_eq!(streamed.code(), code, "streamed {doc}");
    }
}

#[test]
fn validated_document_exposes_bytes_and_root() {
    let s = Schema::from_str(
        &format!(r#"<xs:schema {XS} targetNamespace="urn:t" elementFormDefault="qualified"><xs:element name="r"/></xs:schema>"#),
        None,
    )
    .unwrap();
    let doc = br#"<r xmlns="urn:t"><anything/></r>"#;
    let v = s.validate(doc, &Limits::default()).unwrap();
    assert_eq!(v.bytes(), doc);
    assert_eq!(v.root_namespace(), Some("urn:t"));
    assert_eq!(v.root_local(), "r");
    let report = s.validate_reader(&doc[..], &Limits::default()).unwrap();
    assert_eq!(report.root.local, "r");
    assert_eq!(report.elements, 2);
    assert_eq!(s.global_elements(), vec![(Some("urn:t"), "r")]);
}

#[test]
fn streaming_reports_the_same_errors_as_in_memory() {
    let s = schema(RECORD);
    let doc = "<r>\n<a><Koodi>1</Koodi><Laajuus>x</Laajuus></a>\n<a k='z'>\n  <Laajuus>3</Laajuus></a>\n<a><Koodi/><Nimi/></a></r>";
    let a = errors(&s, doc);
    let b = match s.validate_reader(
        std::io::BufReader::with_capacity(3, doc.as_bytes()),
        &Limits::default(),
    ) {
        Err(ValidationFailure::Invalid(e)) => e,
        other => panic!("{other:?}"),
    };
    assert_eq!(a, b);
    assert_eq!(a.errors.len(), 4);
}

#[test]
fn unsupported_constructs_fail_at_load_time_with_a_position() {
    let cases = [
        (
            r#"<xs:element name="r"><xs:key name="k"><xs:selector xpath="a"/><xs:field xpath="@b"/></xs:key></xs:element>"#,
            "identity constraints",
        ),
        (
            r#"<xs:element name="h"/><xs:element name="m" substitutionGroup="h"/>"#,
            "substitution groups",
        ),
        (r#"<xs:redefine schemaLocation="x.xsd"/>"#, "xs:redefine"),
        (r#"<xs:notation name="n" public="p"/>"#, "xs:notation"),
    ];
    for (body, feature) in cases {
        match load_error(body) {
            SchemaError::Unsupported {
                feature: f, line, ..
            } => {
                assert!(f.contains(feature), "{f}");
                assert_eq!(line, 2, "{body}");
            }
            other => panic!("{body}: {other:?}"),
        }
    }
}

#[test]
fn schema_errors_are_reported_with_file_line_and_column() {
    let cases = [
        (r#"<xs:element name="r" type="Nope"/>"#, "is not defined"),
        (r#"<xs:element name="r" type="p:T"/>"#, "prefix `p`"),
        (
            r#"<xs:element name="r"><xs:complexType><xs:choice><xs:element name="a"/><xs:sequence><xs:element name="a"/><xs:element name="b"/></xs:sequence></xs:choice></xs:complexType></xs:element>"#,
            "Unique Particle Attribution",
        ),
        (
            r#"<xs:element name="r"><xs:complexType><xs:sequence><xs:element name="a" type="xs:int"/><xs:element name="a" type="xs:string"/></xs:sequence></xs:complexType></xs:element>"#,
            "different types",
        ),
        (
            r#"<xs:simpleType name="S"><xs:restriction base="xs:int"><xs:maxLength value="3"/></xs:restriction></xs:simpleType>"#,
            "does not apply",
        ),
        (
            r#"<xs:simpleType name="S"><xs:restriction base="xs:string"><xs:pattern value="[a"/></xs:restriction></xs:simpleType>"#,
            "pattern",
        ),
        (
            r#"<xs:simpleType name="S"><xs:restriction base="xs:int"><xs:enumeration value="x"/></xs:restriction></xs:simpleType>"#,
            "enumeration value",
        ),
        (
            r#"<xs:element name="r" minOccurs="0"/>"#,
            "not allowed on xs:element",
        ),
        (
            r#"<xs:element name="r"/><xs:element name="r"/>"#,
            "already defined",
        ),
        (
            r#"<xs:complexType name="A"><xs:complexContent><xs:extension base="A"/></xs:complexContent></xs:complexType>"#,
            "derived from itself",
        ),
        (
            r#"<xs:element name="r" type="xs:int" default="x"/>"#,
            "default or fixed value",
        ),
        (
            r#"<xs:complexType name="B"><xs:attribute name="a" use="required"/></xs:complexType><xs:complexType name="R"><xs:complexContent><xs:restriction base="B"><xs:attribute name="a"/></xs:restriction></xs:complexContent></xs:complexType>"#,
            "must stay required",
        ),
        (
            r#"<xs:complexType name="B"><xs:attribute name="a"/></xs:complexType><xs:complexType name="R"><xs:complexContent><xs:restriction base="B"><xs:attribute name="new"/></xs:restriction></xs:complexContent></xs:complexType>"#,
            "not allowed by the base type",
        ),
    ];
    for (body, needle) in cases {
        let e = load_error(body);
        let text = e.to_string();
        assert!(text.contains(needle), "{body}\n{text}");
        assert!(text.starts_with("<embedded schema>:2:"), "{text}");
    }
}

#[test]
fn oversized_all_groups_are_refused() {
    let items: String = (0..65)
        .map(|i| format!(r#"<xs:element name="e{i}" minOccurs="0"/>"#))
        .collect();
    let e = load_error(&format!(
        r#"<xs:element name="r"><xs:complexType><xs:all>{items}</xs:all></xs:complexType></xs:element>"#
    ));
    assert!(e.to_string().contains("at most 64"), "{e}");
}

#[test]
fn includes_resolve_relative_to_the_base_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("types.xsd"),
        format!(r#"<xs:schema {XS}><xs:simpleType name="Code"><xs:restriction base="xs:string"><xs:enumeration value="A"/></xs:restriction></xs:simpleType></xs:schema>"#),
    )
    .unwrap();
    let main = format!(
        r#"<xs:schema {XS}><xs:include schemaLocation="types.xsd"/><xs:element name="c" type="Code"/></xs:schema>"#
    );
    let s = Schema::from_str(&main, Some(dir.path())).unwrap();
    assert!(s.validate(b"<c>A</c>", &Limits::default()).is_ok());
    assert!(s.validate(b"<c>B</c>", &Limits::default()).is_err());
    assert!(matches!(
        Schema::from_str(&main, None),
        Err(SchemaError::MissingImport { .. })
    ));
    assert!(matches!(
        Schema::load(&dir.path().join("missing.xsd")),
        Err(SchemaError::Io { .. })
    ));
}

#[test]
fn cli_exit_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let xsd = dir.path().join("s.xsd");
    std::fs::write(&xsd, format!("<xs:schema {XS}>{RECORD}</xs:schema>")).unwrap();
    let good = dir.path().join("good.xml");
    std::fs::write(&good, "<r><a><Koodi/><Laajuus>1</Laajuus></a></r>").unwrap();
    let bad = dir.path().join("bad.xml");
    std::fs::write(&bad, "<r><a><Laajuus>1</Laajuus></a></r>").unwrap();
    let broken = dir.path().join("broken.xml");
    std::fs::write(&broken, "<r><a>").unwrap();
    let limits = Limits::default();
    let run = |schema: &Path, doc: &Path| {
        let mut out = Vec::new();
        let code = run_validate_cli(schema, doc, &limits, &mut out);
        (code, String::from_utf8_lossy(&out).into_owned())
    };
    let (code, out) = run(&xsd, &good);
    assert_eq!(code, EXIT_VALID, "{out}");
    let (code, out) = run(&xsd, &bad);
    assert_eq!(code, EXIT_INVALID);
    assert!(
        out.contains("line 1, column 7, /r/a/Laajuus: expected <Koodi>; found <Laajuus>"),
        "{out}"
    );
    let (code, _) = run(&xsd, &broken);
    assert_eq!(code, EXIT_INVALID);
    let (code, _) = run(&xsd, &dir.path().join("absent.xml"));
    assert_eq!(code, EXIT_UNUSABLE);
    let (code, out) = run(&good, &good);
    assert_eq!(code, EXIT_UNUSABLE, "{out}");
}

#[test]
fn recursive_types_and_deep_documents() {
    let s = schema(
        r#"<xs:complexType name="T"><xs:sequence><xs:element name="n" type="T" minOccurs="0"/></xs:sequence></xs:complexType><xs:element name="n" type="T"/>"#,
    );
    let depth = 100;
    let doc = format!("{}{}", "<n>".repeat(depth), "</n>".repeat(depth));
    assert!(s.validate(doc.as_bytes(), &Limits::default()).is_ok());
    let limits = Limits {
        max_depth: 50,
        ..Limits::default()
    };
    assert_eq!(
        s.validate(doc.as_bytes(), &limits).unwrap_err().code(),
        "xml_too_deep"
    );
}

#[test]
fn unknown_root_and_wrong_namespace_are_explained() {
    let s = schema(RECORD);
    let e = errors(&s, "<x/>");
    assert_eq!(
        e.errors[0].message,
        "no global element declaration matches the root element <x> (in no namespace)"
    );
    let e = errors(&s, r#"<r><a xmlns="urn:other"/></r>"#);
    assert_eq!(
        e.errors[0].message,
        "expected <a> (in no namespace); found <a> (namespace urn:other)"
    );
}

#[test]
fn large_finite_max_occurs_compiles_without_deep_recursion() {
    let s = schema(
        r#"<xs:element name="r"><xs:complexType><xs:sequence><xs:element name="a" minOccurs="0" maxOccurs="15000"/></xs:sequence></xs:complexType></xs:element>"#,
    );
    let doc = format!("<r>{}</r>", "<a/>".repeat(15000));
    let limits = Limits {
        max_elements: 100_000,
        ..Limits::default()
    };
    assert!(s.validate(doc.as_bytes(), &limits).is_ok());
    let doc = format!("<r>{}</r>", "<a/>".repeat(15001));
    assert!(s.validate(doc.as_bytes(), &limits).is_err());
}

#[test]
fn pathological_repetitions_fail_at_load_time() {
    for body in [
        r#"<xs:element name="r"><xs:complexType><xs:sequence minOccurs="0" maxOccurs="10000"><xs:element name="a" minOccurs="0"/></xs:sequence></xs:complexType></xs:element>"#,
        r#"<xs:element name="r"><xs:complexType><xs:sequence><xs:element name="a" maxOccurs="40000"/></xs:sequence></xs:complexType></xs:element>"#,
    ] {
        let e = load_error(body);
        assert!(e.to_string().contains("too large to compile"), "{e}");
    }
}

/// XML Schema 1.0 Structures §3.3.4 clause 3.1: on an element whose declaration is not
/// nillable there must be no `xsi:nil` at all, whatever its value (issue 20).
#[test]
fn xsi_nil_is_refused_on_a_non_nillable_element_whatever_its_value() {
    let s = schema(
        r#"<xs:element name="r"><xs:complexType><xs:sequence>
          <xs:element name="n" type="xs:date" nillable="true" minOccurs="0"/>
          <xs:element name="m" type="xs:date" minOccurs="0"/>
        </xs:sequence></xs:complexType></xs:element>"#,
    );
    let xsi = r#"xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance""#;
    for value in ["false", "0", " false ", "true", "1"] {
        let doc = format!(r#"<r {xsi}><m xsi:nil="{value}">2020-01-01</m></r>"#);
        let e = errors(&s, &doc);
        assert_eq!(e.errors.len(), 1, "{doc}: {e}");
        assert_eq!(e.errors[0].path, "/r/m", "{doc}");
        assert!(
            e.errors[0].message.contains("not nillable"),
            "{doc}: {}",
            e.errors[0].message
        );
        let root = format!(r#"<r {xsi} xsi:nil="{value}"/>"#);
        assert!(errors(&s, &root).errors[0].message.contains("not nillable"));
    }
    for ok in [
        format!(r#"<r {xsi}><n xsi:nil="false">2020-01-01</n></r>"#),
        format!(r#"<r {xsi}><n xsi:nil="0">2020-01-01</n></r>"#),
        format!(r#"<r {xsi}><n xsi:nil="true"/></r>"#),
    ] {
        assert!(
            s.validate(ok.as_bytes(), &Limits::default()).is_ok(),
            "{ok}"
        );
    }
}

/// Schema files are read like documents: UTF-16 with a byte order mark loads, and errors in
/// it are placed by the line and column of its characters; other encodings are refused.
#[test]
fn schema_files_in_utf16_load_and_report_positions_by_character() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\n<xs:schema {XS}>\n  <!-- ä€𝄞 -->  <xs:element name=\"r\" type=\"Nope\"/></xs:schema>"
    );
    let path = dir.path().join("u16.xsd");
    std::fs::write(&path, utf16_with_bom(&text, false)).unwrap();
    let e = Schema::load(&path).unwrap_err().to_string();
    // Column 17 counts ä, € and 𝄞 as one character each, as the UTF-8 file does.
    assert!(e.contains("u16.xsd:3:17:"), "{e}");
    let utf8 = dir.path().join("u8.xsd");
    std::fs::write(&utf8, text.replace("UTF-16", "UTF-8")).unwrap();
    let e8 = Schema::load(&utf8).unwrap_err().to_string();
    assert_eq!(e8.replace("u8.xsd", "u16.xsd"), e);
    let fixed = text.replace("Nope", "xs:date");
    std::fs::write(&path, utf16_with_bom(&fixed, true)).unwrap();
    let s = Schema::load(&path).unwrap();
    assert!(s.validate(b"<r>2020-01-01</r>", &Limits::default()).is_ok());
    let latin1 = dir.path().join("latin1.xsd");
    std::fs::write(
        &latin1,
        format!("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><xs:schema {XS}/>"),
    )
    .unwrap();
    match Schema::load(&latin1) {
        Err(SchemaError::NotWellFormed { error, .. }) => {
            assert_eq!(error.code(), "unsupported_encoding")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn validate_tree_agrees_with_validate_then_parse() {
    let s = schema(RECORD);
    let limits = Limits::default();
    let valid = [
        "<r>\n  <a k=\"1\"><Koodi> x &amp; y </Koodi><!-- c --><Nimi>n<![CDATA[<m>]]></Nimi><Laajuus>2.5</Laajuus></a>\n  <a><Koodi/><Laajuus>1</Laajuus></a>\n</r>",
        "<?xml version=\"1.0\"?><r><a><Koodi>ä</Koodi><Laajuus>0</Laajuus></a></r>",
    ];
    for doc in valid {
        let tree = s.validate_tree(doc.as_bytes(), &limits).unwrap();
        assert_eq!(
            tree,
            crate::dom::parse(doc.as_bytes(), &limits).unwrap(),
            "{doc}"
        );
    }
    let invalid = [
        "<r>\n<a><Koodi>1</Koodi><Laajuus>2</Laajuus></a>\n<a>\n  <Laajuus>3</Laajuus></a></r>",
        "<r><a><Koodi/><Laajuus>x</Laajuus></a><b/></r>",
        "<r><a>",
        "<!DOCTYPE r [<!ENTITY e \"x\">]><r/>",
    ];
    for doc in invalid {
        let one = format!(
            "{:?}",
            s.validate_tree(doc.as_bytes(), &limits).unwrap_err()
        );
        let two = format!("{:?}", s.validate(doc.as_bytes(), &limits).unwrap_err());
        assert_eq!(one, two, "{doc}");
    }
}

//! Every path that reads a document applies every `[limits.xml]` limit, at its value and not
//! one past it: `siirto validate --schema` (the documented defaults: it has no
//! configuration), `siirto validate --config` and `siirto convert` (the configuration's
//! values, set small here), and a transfer's fetched record (`pipeline::prepare` with the
//! limits the worker takes from the configuration). The built binary is run as a child
//! process; the failure's code is on its output. Encodings: UTF-16 with a byte order mark is
//! read on every path, ISO-8859-1 is refused as `unsupported_encoding`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use siirto_core::clock::Timestamp;
use siirto_core::config::SchemaPaths;
use siirto_core::formats::{Format, WriteContext};
use siirto_core::pipeline::{self, PipelineError, Schemas, Task};
use siirto_core::scope::Scope;
use siirto_core::student_id::StudentId;
use siirto_gateway::config::Config;
use siirto_xsd::Limits;

/// Any document with root `<r>`: children and attributes skipped, text allowed.
const PERMISSIVE: &str = r#"<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:element name="r">
    <xs:complexType mixed="true">
      <xs:sequence><xs:any processContents="skip" minOccurs="0" maxOccurs="unbounded"/></xs:sequence>
      <xs:anyAttribute processContents="skip"/>
    </xs:complexType>
  </xs:element>
</xs:schema>
"#;

/// Where one limit is in [`Limits`].
type Field = fn(&mut Limits) -> &mut usize;

/// The limits, by configuration key, with a setter and the code of the error past them.
const LIMITS: [(&str, Field, &str); 6] = [
    ("max_bytes", |l| &mut l.max_bytes, "xml_too_large"),
    ("max_depth", |l| &mut l.max_depth, "xml_too_deep"),
    (
        "max_elements",
        |l| &mut l.max_elements,
        "xml_too_many_elements",
    ),
    (
        "max_attributes",
        |l| &mut l.max_attributes,
        "xml_too_many_attributes",
    ),
    ("max_name_len", |l| &mut l.max_name_len, "xml_name_too_long"),
    ("max_text_len", |l| &mut l.max_text_len, "xml_text_too_long"),
];

/// A document for the permissive schema that is exactly `n` for `limit` and small in every
/// other respect.
fn document(limit: &str, n: usize) -> String {
    match limit {
        "max_bytes" => format!("<r><!--{}--></r>", "x".repeat(n - 14)),
        "max_depth" => format!("<r>{}{}</r>", "<a>".repeat(n - 1), "</a>".repeat(n - 1)),
        "max_elements" => format!("<r>{}</r>", "<a/>".repeat(n - 1)),
        "max_attributes" => {
            let attributes: String = (0..n).map(|i| format!(" a{i}=\"1\"")).collect();
            format!("<r{attributes}/>")
        }
        "max_name_len" => format!("<r><{}/></r>", "n".repeat(n)),
        "max_text_len" => format!("<r>{}</r>", "t".repeat(n)),
        other => panic!("no document for {other}"),
    }
}

fn siirto(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_siirto"))
        .args(args)
        .env("SIIRTO_LOG", "warn")
        .output()
        .expect("run siirto")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `validate` on `document(limit, at)` and `document(limit, at + 1)`: the first must be
/// valid, the second invalid with `code` on the output.
fn validate_at_and_past(dir: &Path, how: &[&str], limit: &str, at: usize, code: &str) {
    for (n, valid) in [(at, true), (at + 1, false)] {
        let file = dir.join(format!("{limit}-{n}.xml"));
        std::fs::write(&file, document(limit, n)).expect("write");
        let file = file.to_str().expect("utf-8 path");
        let mut args = vec!["validate"];
        args.extend_from_slice(how);
        args.push(file);
        let out = siirto(&args);
        let said = text(&out);
        if valid {
            assert_eq!(out.status.code(), Some(0), "{how:?} {limit} = {n}: {said}");
        } else {
            assert_eq!(out.status.code(), Some(1), "{how:?} {limit} = {n}: {said}");
            assert!(
                said.contains(&format!("invalid ({code})")),
                "{how:?} {limit} = {n}: {said}"
            );
        }
    }
    std::fs::remove_file(dir.join(format!("{limit}-{at}.xml"))).ok();
    std::fs::remove_file(dir.join(format!("{limit}-{}.xml", at + 1))).ok();
}

/// A development configuration (`siirto pki init`) with `[limits.xml]` and `[schemas]`
/// lines added. Returns its path.
fn config(dir: &Path, limits: &Limits, schemas: &str) -> PathBuf {
    let pki = dir.join("pki");
    let out = siirto(&["pki", "init", pki.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "pki init: {}", text(&out));
    let path = pki.join("siirto.toml");
    let original = std::fs::read_to_string(&path).expect("read config");
    assert!(original.contains("[schemas]\n"), "{original}");
    let mut edited = original.replace("[schemas]\n", &format!("[schemas]\n{schemas}\n"));
    edited.push_str(&format!(
        "\n[limits.xml]\nmax_bytes = {}\nmax_depth = {}\nmax_elements = {}\nmax_attributes = {}\nmax_name_len = {}\nmax_text_len = {}\n",
        limits.max_bytes,
        limits.max_depth,
        limits.max_elements,
        limits.max_attributes,
        limits.max_name_len,
        limits.max_text_len
    ));
    std::fs::write(&path, edited).expect("write config");
    path
}

/// `validate --schema` has no configuration: the README's `[limits.xml]` defaults apply.
#[test]
fn validate_with_a_schema_applies_the_documented_defaults() {
    let documented = Limits {
        max_bytes: 16 * 1024 * 1024,
        max_depth: 128,
        max_elements: 1_000_000,
        max_attributes: 64,
        max_name_len: 512,
        max_text_len: 1024 * 1024,
    };
    assert_eq!(Limits::default(), documented, "README [limits.xml]");
    assert_eq!(pipeline::xml_limits(None), documented);
    let dir = tempfile::tempdir().expect("tempdir");
    let xsd = dir.path().join("r.xsd");
    std::fs::write(&xsd, PERMISSIVE).expect("write");
    let how = ["--schema", xsd.to_str().expect("utf-8 path")];
    let mut defaults = documented;
    for (limit, field, code) in LIMITS {
        validate_at_and_past(dir.path(), &how, limit, *field(&mut defaults), code);
    }
}

/// Small limits in a configuration, each document at one of them: the configured values
/// apply to `validate --config` (here the permissive schema is configured as `virta`).
#[test]
fn validate_with_a_configuration_applies_its_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let xsd = dir.path().join("r.xsd");
    std::fs::write(&xsd, PERMISSIVE).expect("write");
    let mut small = Limits {
        max_bytes: 2048,
        max_depth: 4,
        max_elements: 10,
        max_attributes: 3,
        max_name_len: 16,
        max_text_len: 1024,
    };
    let config = config(
        dir.path(),
        &small,
        &format!("virta = {:?}", xsd.to_str().expect("utf-8 path")),
    );
    let loaded = Config::load(&config).expect("config loads");
    assert_eq!(pipeline::xml_limits(Some(&loaded.limits)), small);
    let how = [
        "--format",
        "virta",
        "--config",
        config.to_str().expect("utf-8 path"),
    ];
    for (limit, field, code) in LIMITS {
        validate_at_and_past(dir.path(), &how, limit, *field(&mut small), code);
    }
}

/// The smallest value of one limit (the others at their defaults) for which `schema` accepts
/// `document`, found by bisection with the library.
fn needed(schema: &siirto_xsd::schema::Schema, document: &[u8], field: Field) -> usize {
    let (mut low, mut high) = (1usize, 64 * 1024 * 1024);
    let fits = |n: usize| {
        let mut limits = Limits::default();
        *field(&mut limits) = n;
        schema.validate(document, &limits).is_ok()
    };
    assert!(fits(high), "the document is valid");
    while low < high {
        let mid = low + (high - low) / 2;
        if fits(mid) {
            high = mid;
        } else {
            low = mid + 1;
        }
    }
    low
}

/// The demo school record, with a run of 1,100 spaces in element-only content (so the
/// longest text is over the configuration's 1 KiB minimum) and 3,000 after the root (so the
/// input is larger than the converted document).
fn padded_record() -> Vec<u8> {
    let record = siirto_devkit::demo::school_record(siirto_devkit::demo::DEMO_STUDENT, false);
    let padded = record.replacen(
        "  </student>",
        &format!("{}</student>", " ".repeat(1100)),
        1,
    );
    assert_ne!(padded, record);
    format!("{padded}{}", "\n".repeat(3000)).into_bytes()
}

/// What each limit must be at least for the input and for the converted document.
struct Needs {
    input: usize,
    output: usize,
}

fn needs(output: &[u8]) -> Vec<Needs> {
    let schemas =
        Schemas::load(&SchemaPaths::default(), [Format::SiirtoV1]).expect("built-in schema");
    let schema = schemas.get(Format::SiirtoV1).expect("siirto-v1");
    let input = padded_record();
    LIMITS
        .iter()
        .map(|(_, field, _)| Needs {
            input: needed(schema, &input, *field),
            output: needed(schema, output, *field),
        })
        .collect()
}

/// `siirto convert` validates the input and the converted document with the configuration's
/// limits: each limit at what the documents need passes, one below fails on the input (it is
/// validated first), and one below what the output needs fails on the output.
#[test]
fn convert_applies_the_configured_limits_to_input_and_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("record.xml");
    std::fs::write(&input, padded_record()).expect("write");
    let input = input.to_str().expect("utf-8 path");
    let convert = |config: &Path| {
        siirto(&[
            "convert",
            "--config",
            config.to_str().expect("utf-8 path"),
            "--from",
            "siirto-v1",
            "--to",
            "siirto-v1",
            input,
        ])
    };
    let defaults = config(&dir.path().join("defaults"), &Limits::default(), "");
    let first = convert(&defaults);
    assert!(first.status.success(), "{}", text(&first));
    let needs = needs(&first.stdout);
    for ((limit, field, code), need) in LIMITS.iter().zip(&needs) {
        let mut at = Limits::default();
        *field(&mut at) = need.input.max(need.output);
        let case = dir.path().join(limit);
        let out = convert(&config(&case, &at, ""));
        assert!(
            out.status.success(),
            "{limit} = {}: {}",
            need.input.max(need.output),
            text(&out)
        );
        let mut past_input = Limits::default();
        *field(&mut past_input) = need.input - 1;
        let out = convert(&config(&case.join("in"), &past_input, ""));
        assert_eq!(out.status.code(), Some(1), "{limit}: {}", text(&out));
        assert!(
            text(&out).contains(&format!("not valid siirto-v1 ({code})"))
                && !text(&out).contains("converted document"),
            "{limit} = {}: {}",
            need.input - 1,
            text(&out)
        );
        if need.output > need.input {
            let mut past_output = Limits::default();
            *field(&mut past_output) = need.output - 1;
            let out = convert(&config(&case.join("out"), &past_output, ""));
            assert_eq!(out.status.code(), Some(1), "{limit}: {}", text(&out));
            assert!(
                text(&out).contains(&format!(
                    "converted document is not valid siirto-v1 ({code})"
                )),
                "{limit} = {}: {}",
                need.output - 1,
                text(&out)
            );
        }
    }
}

/// What the transfer worker does with a fetched record: the demo student's, siirto-v1 to
/// siirto-v1, whole scope, at a fixed time.
fn prepare(
    source: &[u8],
    schemas: &Schemas,
    limits: &Limits,
) -> Result<pipeline::Prepared, PipelineError> {
    let subject = StudentId::parse(siirto_devkit::demo::DEMO_STUDENT).expect("student id");
    let context = WriteContext::new(Timestamp::from_secs(1_790_000_000));
    pipeline::prepare(
        source,
        schemas,
        Task {
            from: Format::SiirtoV1,
            to: Format::SiirtoV1,
            subject: &subject,
            scope: Scope::all(),
            limits,
            json_limits: &siirto_core::formats::json_in::JsonLimits::default(),
            context: &context,
            signatures: siirto_core::pipeline::Signatures::default(),
        },
    )
}

/// A transfer's fetched record goes through `pipeline::prepare` with the limits the worker
/// takes from `pipeline::xml_limits`: at what the record needs it passes, one below it is
/// `InvalidSource` whose summary starts with the limit's code.
#[test]
fn a_fetched_record_is_held_to_every_limit() {
    let schemas =
        Schemas::load(&SchemaPaths::default(), [Format::SiirtoV1]).expect("built-in schema");
    let source = padded_record();
    let prepare = |limits: &Limits| prepare(&source, &schemas, limits);
    let output = prepare(&Limits::default()).expect("prepares").document;
    for ((limit, field, code), need) in LIMITS.iter().zip(needs(&output)) {
        let mut at = Limits::default();
        *field(&mut at) = need.input.max(need.output);
        assert!(prepare(&at).is_ok(), "{limit} at {}", need.input);
        let mut past = Limits::default();
        *field(&mut past) = need.input - 1;
        match prepare(&past) {
            Err(PipelineError::InvalidSource { summary, .. }) => {
                assert!(
                    summary.starts_with(&format!("{code}: ")),
                    "{limit}: {summary}"
                )
            }
            other => panic!("{limit} = {}: {other:?}", need.input - 1),
        }
    }
}

/// `text` in UTF-16 little-endian with its byte order mark.
fn utf16(text: &str) -> Vec<u8> {
    let mut out = vec![0xFF, 0xFE];
    for unit in text.encode_utf16() {
        out.extend_from_slice(&unit.to_le_bytes());
    }
    out
}

/// UTF-16 with a byte order mark is read on every path and gives what the UTF-8 document
/// gives; ISO-8859-1 is refused as `unsupported_encoding` on every path. xmllint reads both
/// (libxml2 implements ISO-8859-1, which XML 1.0 leaves optional).
#[test]
fn utf16_is_read_and_latin1_refused_on_every_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let record = siirto_devkit::demo::school_record(siirto_devkit::demo::DEMO_STUDENT, false);
    let declared_utf16 = record.replacen("encoding=\"UTF-8\"", "encoding=\"UTF-16\"", 1);
    assert_ne!(declared_utf16, record);
    let utf16_file = dir.path().join("utf16.xml");
    std::fs::write(&utf16_file, utf16(&declared_utf16)).expect("write");
    let utf8_file = dir.path().join("utf8.xml");
    std::fs::write(&utf8_file, &record).expect("write");
    let latin1: Vec<u8> = record
        .replacen("encoding=\"UTF-8\"", "encoding=\"ISO-8859-1\"", 1)
        .chars()
        .map(|c| u8::try_from(u32::from(c)).expect("Latin-1 text"))
        .collect();
    let latin1_file = dir.path().join("latin1.xml");
    std::fs::write(&latin1_file, &latin1).expect("write");
    let config = config(&dir.path().join("c"), &Limits::default(), "");
    let config = config.to_str().expect("utf-8 path");
    let own = Path::new(env!("CARGO_MANIFEST_DIR")).join("xsd/siirto-record-v1.xsd");
    let own = own.to_str().expect("utf-8 path");
    let path = |p: &PathBuf| p.to_str().expect("utf-8 path").to_owned();

    // validate, both ways.
    for how in [
        vec!["--schema", own],
        vec!["--format", "siirto-v1", "--config", config],
    ] {
        let run = |file: &PathBuf| {
            let f = path(file);
            let mut args = vec!["validate"];
            args.extend_from_slice(&how);
            args.push(&f);
            siirto(&args)
        };
        let out = run(&utf16_file);
        assert_eq!(out.status.code(), Some(0), "{how:?}: {}", text(&out));
        let out = run(&latin1_file);
        assert_eq!(out.status.code(), Some(1), "{how:?}: {}", text(&out));
        assert!(
            text(&out).contains("invalid (unsupported_encoding)")
                && text(&out).contains("ISO-8859-1"),
            "{how:?}: {}",
            text(&out)
        );
    }
    // convert: the same document out of UTF-16 as out of UTF-8, but for the time it was made.
    let convert = |file: &PathBuf| {
        siirto(&[
            "convert",
            "--config",
            config,
            "--from",
            "siirto-v1",
            "--to",
            "siirto-v1",
            &path(file),
        ])
    };
    let undated = |o: &Output| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| !l.contains("generatedAt="))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let from_utf8 = convert(&utf8_file);
    assert!(from_utf8.status.success(), "{}", text(&from_utf8));
    let from_utf16 = convert(&utf16_file);
    assert!(from_utf16.status.success(), "{}", text(&from_utf16));
    assert_eq!(undated(&from_utf16), undated(&from_utf8));
    assert!(undated(&from_utf8).contains("<familyName>Meikäläinen</familyName>"));
    let out = convert(&latin1_file);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("not valid siirto-v1 (unsupported_encoding)"),
        "{}",
        text(&out)
    );

    // A fetched record.
    let schemas =
        Schemas::load(&SchemaPaths::default(), [Format::SiirtoV1]).expect("built-in schema");
    let prepare = |source: &[u8]| prepare(source, &schemas, &Limits::default());
    let a = prepare(record.as_bytes()).expect("UTF-8 record");
    let b = prepare(&utf16(&declared_utf16)).expect("UTF-16 record");
    assert_eq!(a.document, b.document);
    match prepare(&latin1) {
        Err(PipelineError::InvalidSource { summary, .. }) => {
            assert!(summary.starts_with("unsupported_encoding: "), "{summary}")
        }
        other => panic!("{other:?}"),
    }
}

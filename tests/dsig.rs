//! XML Signature against the real world: the signed EMREX documents of the corpus get
//! xmlsec1's verdicts (read from their manifest), the canonicalizer agrees with libxml2's
//! (`xmllint --c14n`) on every corpus document, everything Siirto signs verifies with
//! `xmlsec1 --verify` and still validates with `xmllint`, and signature-wrapping tricks are
//! refused.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use openssl::x509::X509;
use siirto_core::clock::Timestamp;
use siirto_core::dsig::{self, Policy, Reason, Signer, Trust, VerifyError};
use siirto_core::formats::{self, Format, WriteContext};
use siirto_core::pipeline::{self, Schemas, Signatures, Task};
use siirto_core::scope::Scope;
use siirto_core::student_id::StudentId;
use siirto_xsd::Limits;
use siirto_xsd::c14n::{self, Comments};

fn xmlsec1() -> Option<PathBuf> {
    let found = Command::new("xmlsec1")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some(PathBuf::from("xmlsec1"));
    }
    siirto_testsupport::skip("needs xmlsec1 (install the Debian package xmlsec1)");
    None
}

/// `xmlsec1 --verify` of `file`, trusting `trusted` (or `--insecure` without): OK or not.
fn xmlsec1_verifies(xmlsec1: &Path, file: &Path, trusted: Option<&Path>) -> bool {
    let mut cmd = Command::new(xmlsec1);
    cmd.args(["--verify", "--enabled-key-data", "x509"]);
    match trusted {
        Some(pem) => cmd.arg("--trusted-pem").arg(pem),
        None => cmd.arg("--insecure"),
    };
    let out = cmd.arg(file).output().expect("run xmlsec1");
    out.status.success() && String::from_utf8_lossy(&out.stderr).contains("OK")
}

fn verify(bytes: &[u8], pinned: &[X509], allow_sha1: bool) -> Result<dsig::Verified, VerifyError> {
    let trust = if pinned.is_empty() {
        Trust::Embedded
    } else {
        Trust::Pinned(pinned)
    };
    dsig::verify(bytes, Policy { trust, allow_sha1 }, &Limits::default())
}

/// The signed documents' manifest: file, xmlsec1's verdict text.
fn signed_manifest(dir: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(dir.join("MANIFEST.tsv")).expect("signed/MANIFEST.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (cols[0].to_owned(), cols[1].to_owned())
        })
        .collect()
}

/// The certificate the manifest's verdict trusts (`--trusted-pem X`), if any.
fn trusted_pem(verdict: &str) -> Option<String> {
    let at = verdict.find("--trusted-pem ")? + "--trusted-pem ".len();
    Some(
        verdict[at..]
            .split(|c: char| c.is_whitespace() || c == ')')
            .next()?
            .to_owned(),
    )
}

#[test]
fn the_signed_corpus_documents_get_xmlsec1s_verdicts() {
    let Some(corpus) = siirto_testsupport::corpus() else {
        return;
    };
    let dir = corpus.join("elmo/signed");
    let entries = signed_manifest(&dir);
    assert_eq!(entries.len(), 7, "the manifest lists seven documents");
    let tool = xmlsec1();
    let (mut verified, mut refused, mut agreed) = (0, 0, 0);
    for (file, verdict) in &entries {
        let path = dir.join(file);
        let bytes = std::fs::read(&path).expect("read");
        let pem = trusted_pem(verdict);
        let pinned = match &pem {
            Some(p) => {
                X509::stack_from_pem(&std::fs::read(dir.join(p)).expect("pem")).expect("pem")
            }
            None => Vec::new(),
        };
        let ours = verify(&bytes, &pinned, true);
        if verdict.starts_with("OK") {
            let v = ours.unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(v.signature_method.ends_with("rsa-sha1"), "{file}");
            // SHA-1 only with allow_sha1.
            assert_eq!(
                verify(&bytes, &pinned, false).unwrap_err().reason,
                Reason::WeakAlgorithm,
                "{file}"
            );
            // The other country's signer is not this document's.
            let other = if file.starts_with("dk-") {
                "fi-csc-cert.pem"
            } else {
                "dk-kmd-cert.pem"
            };
            let other =
                X509::stack_from_pem(&std::fs::read(dir.join(other)).expect("pem")).expect("pem");
            assert_eq!(
                verify(&bytes, &other, true).unwrap_err().reason,
                Reason::UnknownSigner,
                "{file}"
            );
            verified += 1;
        } else if verdict.contains("data and digest do not match") {
            assert_eq!(ours.unwrap_err().reason, Reason::DigestMismatch, "{file}");
            refused += 1;
        } else if verdict.contains("not proper UTF-8") {
            let e = ours.unwrap_err();
            assert_eq!(e.reason, Reason::Unreadable, "{file}");
            assert!(e.detail.starts_with("xml_encoding"), "{file}: {e}");
            refused += 1;
        } else {
            panic!("{file}: verdict not understood: {verdict}");
        }
        if let Some(tool) = &tool {
            // xmlsec1 run here agrees with the manifest, and so with us.
            let theirs = xmlsec1_verifies(tool, &path, None);
            assert_eq!(
                theirs,
                verdict.starts_with("OK"),
                "{file}: xmlsec1 now says {theirs}"
            );
            agreed += 1;
        }
    }
    assert_eq!((verified, refused), (3, 4));
    eprintln!("signed corpus: 3 verify, 4 refused; xmlsec1 agreed on {agreed} of 7");
}

/// Every XML document of the corpus (the Latin-1 one excepted: no conforming parser reads it).
fn corpus_xml(corpus: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut work = vec![corpus.to_owned()];
    while let Some(dir) = work.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            let p = entry.path();
            if p.is_dir() {
                work.push(p);
            } else if p.extension().is_some_and(|e| e == "xml" || e == "xsd")
                && !p.ends_with("dk-weblogic-latin1.xml")
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn canonical_xml_agrees_with_libxml2_on_the_corpus() {
    let Some(corpus) = siirto_testsupport::corpus() else {
        return;
    };
    let Some(xmllint) = support::xmllint() else {
        return;
    };
    let files = corpus_xml(&corpus);
    assert!(files.len() > 30, "{} files", files.len());
    let mut compared = 0;
    for file in &files {
        let bytes = std::fs::read(file).expect("read");
        let Ok(doc) = c14n::parse(&bytes, &Limits::default()) else {
            // Refused by the hardened reader (a DTD, say): nothing to compare.
            continue;
        };
        // `--c14n` is Canonical XML 1.0 with comments.
        let out = Command::new(&xmllint)
            .args(["--nonet", "--c14n"])
            .arg(file)
            .output()
            .expect("run xmllint");
        assert!(out.status.success(), "{}: xmllint failed", file.display());
        let ours = doc.canonical(Comments::Keep, None);
        assert!(
            ours == out.stdout,
            "{}: canonical forms differ (ours {} bytes, libxml2 {})",
            file.display(),
            ours.len(),
            out.stdout.len()
        );
        compared += 1;
    }
    eprintln!("canonical XML: identical to xmllint --c14n on {compared} corpus documents");
    assert!(compared > 30);
}

// ---------------------------------------------------------------------------------------------
// What Siirto signs

fn test_signer(kind: &str) -> (Signer, tempfile::TempDir) {
    use openssl::pkey::PKey;
    let key = match kind {
        "rsa" => PKey::from_rsa(openssl::rsa::Rsa::generate(2048).expect("rsa")).expect("key"),
        _ => {
            let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)
                .expect("group");
            PKey::from_ec_key(openssl::ec::EcKey::generate(&group).expect("ec")).expect("key")
        }
    };
    let mut name = openssl::x509::X509NameBuilder::new().expect("name");
    name.append_entry_by_text("CN", "Siirto test document signer")
        .expect("cn");
    let name = name.build();
    let mut b = X509::builder().expect("builder");
    b.set_version(2).expect("version");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(&name).expect("issuer");
    b.set_pubkey(&key).expect("pubkey");
    b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).expect("t"))
        .expect("nb");
    b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(30).expect("t"))
        .expect("na");
    b.sign(&key, openssl::hash::MessageDigest::sha256())
        .expect("sign");
    let cert = b.build();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("signer.pem"), cert.to_pem().expect("pem")).expect("write");
    let signer = Signer::from_pem(
        &cert.to_pem().expect("pem"),
        &key.private_key_to_pem_pkcs8().expect("pkcs8"),
    )
    .expect("signer");
    (signer, dir)
}

const HETU: &str = siirto_devkit::demo::DEMO_STUDENT;

/// One document per source format, all about the same student: the demo record (siirto-v1),
/// and what Siirto itself writes from it as VIRTA and ELMO, plus the development KOSKI answer.
fn sources(subject: &StudentId) -> Vec<(Format, Vec<u8>)> {
    let record = siirto_devkit::demo::school_record(HETU, false).into_bytes();
    let context = WriteContext::new(Timestamp::from_secs(1_790_000_000));
    let root = siirto_xsd::dom::parse(&record, &Limits::default()).expect("demo record parses");
    let mut out = vec![(Format::SiirtoV1, record.clone())];
    for to in [Format::Virta, Format::Elmo] {
        let c = formats::convert(Format::SiirtoV1, to, &root, subject, Scope::all(), &context)
            .expect("demo record converts");
        out.push((to, c.document));
    }
    let koski = siirto_devkit::registers::koski_pupil(HETU, "1.2.246.562.24.00000000001");
    out.push((Format::Koski, serde_json::to_vec(&koski).expect("json")));
    out
}

fn schemas(corpus: &Path) -> Schemas {
    let paths = siirto_core::config::SchemaPaths {
        siirto_v1: None,
        virta: Some(corpus.join("virta/xsd/Virta.xsd")),
        elmo: Some(corpus.join("elmo/schema.xsd")),
    };
    Schemas::load(
        &paths,
        [Format::SiirtoV1, Format::Virta, Format::Elmo, Format::Koski],
    )
    .expect("schemas load")
}

fn prepare(
    schemas: &Schemas,
    from: Format,
    to: Format,
    source: &[u8],
    subject: &StudentId,
    signer: &Signer,
) -> Vec<u8> {
    let context = WriteContext::new(Timestamp::from_secs(1_790_000_000)).with_source("turku");
    let prepared = pipeline::prepare(
        source,
        schemas,
        Task {
            from,
            to,
            subject,
            scope: Scope::all(),
            limits: &Limits::default(),
            json_limits: &Default::default(),
            context: &context,
            signatures: Signatures {
                signer: Some(signer),
                sign_siirto_v1: true,
                source: None,
            },
        },
    )
    .unwrap_or_else(|e| panic!("{from} → {to}: {e}"));
    assert_eq!(
        prepared.document_sha256,
        siirto_core::vault::sha256(&prepared.document),
        "the hash is the signed bytes'"
    );
    assert!(prepared.signature_method.is_some(), "{from} → {to} signed");
    prepared.document
}

fn xmllint_valid(schema: &Path, file: &Path) -> bool {
    let Some(xmllint) = support::xmllint() else {
        return true;
    };
    support::xmllint_verdicts(&xmllint, schema, &[file.to_owned()]) == vec![true]
}

fn siirto_verify_signature(cert: &Path, file: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_siirto"))
        .arg("verify-signature")
        .arg("--cert")
        .arg(cert)
        .arg(file)
        .output()
        .expect("run siirto");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn what_siirto_signs_verifies_with_xmlsec1_and_still_validates() {
    let Some(corpus) = siirto_testsupport::corpus() else {
        return;
    };
    let tool = xmlsec1();
    let schemas = schemas(&corpus);
    let subject = StudentId::parse(HETU).expect("hetu");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut counts = (0, 0);
    for kind in ["rsa", "ec"] {
        let (signer, keydir) = test_signer(kind);
        let cert = keydir.path().join("signer.pem");
        for (from, source) in sources(&subject) {
            for to in [Format::Elmo, Format::SiirtoV1] {
                let signed = prepare(&schemas, from, to, &source, &subject, &signer);
                let file = dir.path().join(format!("{kind}-{from}-{to}.xml"));
                std::fs::write(&file, &signed).expect("write");
                let schema = match to {
                    Format::Elmo => corpus.join("elmo/schema.xsd"),
                    _ => support::own_schema(),
                };
                assert!(
                    xmllint_valid(&schema, &file),
                    "{}: libxml2 says invalid",
                    file.display()
                );
                let (code, said) = siirto_verify_signature(&cert, &file);
                assert_eq!(code, 0, "{said}");
                counts.0 += 1;
                if let Some(tool) = &tool {
                    assert!(
                        xmlsec1_verifies(tool, &file, Some(&cert)),
                        "{}: xmlsec1 refuses what Siirto signed",
                        file.display()
                    );
                    counts.1 += 1;
                }
                // A byte changed in the signed content, in an attribute, or in the signature:
                // both refuse.
                let text = String::from_utf8(signed.clone()).expect("utf-8");
                let content = text.replacen(
                    &format!(">{}<", signed_text(&text)),
                    &format!(">{}X<", signed_text(&text)),
                    1,
                );
                let attribute = change_first_attribute(&text);
                let value_at =
                    text.find("<SignatureValue>").expect("value") + "<SignatureValue>".len();
                let mut signature = text.clone().into_bytes();
                signature[value_at + 5] = if signature[value_at + 5] == b'A' {
                    b'B'
                } else {
                    b'A'
                };
                let signature = String::from_utf8(signature).expect("utf-8");
                for (what, tampered, reason) in [
                    ("content", &content, "digest_mismatch"),
                    ("attribute", &attribute, "digest_mismatch"),
                    ("signature", &signature, "signature_invalid"),
                ] {
                    assert_ne!(tampered, &text, "{what}: the change must happen");
                    let bad = dir.path().join(format!("{kind}-{from}-{to}-{what}.xml"));
                    std::fs::write(&bad, tampered).expect("write");
                    let (code, said) = siirto_verify_signature(&cert, &bad);
                    assert_eq!(code, 1, "{what}: {said}");
                    assert!(said.contains(reason), "{what}: {said}");
                    if let Some(tool) = &tool {
                        assert!(
                            !xmlsec1_verifies(tool, &bad, Some(&cert)),
                            "{what}: xmlsec1 accepts a tampered document"
                        );
                    }
                }
            }
        }
    }
    eprintln!(
        "signed by Siirto: {} documents verified by siirto verify-signature, {} by xmlsec1",
        counts.0, counts.1
    );
}

/// The document with one character of the first attribute below the root changed.
fn change_first_attribute(text: &str) -> String {
    let root_end = text.find("?>").map_or(0, |i| i + 2);
    let root_end = root_end + text[root_end..].find('>').expect("root start tag") + 1;
    let at = root_end + text[root_end..].find("=\"").expect("an attribute") + 2;
    let mut out = text.to_owned();
    match text[at..].chars().next() {
        Some('"') | None => out.insert(at, 'Q'),
        Some(c) => out.replace_range(at..at + c.len_utf8(), if c == 'Q' { "R" } else { "Q" }),
    }
    out
}

/// The first non-empty text between two tags of the document (some signed content).
fn signed_text(text: &str) -> String {
    let mut rest = text;
    while let Some(i) = rest.find('>') {
        rest = &rest[i + 1..];
        let end = rest.find('<').unwrap_or(0);
        let t = &rest[..end];
        if !t.trim().is_empty() && !t.contains('&') {
            return t.to_owned();
        }
    }
    panic!("no text in the document");
}

// ---------------------------------------------------------------------------------------------
// Signature wrapping

const ELMO_LIKE: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<elmo xmlns=\"https://github.com/emrex-eu/elmo-schemas/tree/v1\"><report><issuer><title xml:lang=\"en\">School</title></issuer></report></elmo>\n";

fn refused(bytes: &str, pinned: &[X509]) -> VerifyError {
    verify(bytes.as_bytes(), pinned, false).expect_err("must be refused")
}

#[test]
fn signature_wrapping_is_refused() {
    let (signer, _dir) = test_signer("rsa");
    let signed = String::from_utf8(
        dsig::sign(ELMO_LIKE.as_bytes(), &signer, &Limits::default()).expect("signs"),
    )
    .expect("utf-8");
    let pinned = [signer.certificate().expect("cert")];
    assert!(verify(signed.as_bytes(), &pinned, false).is_ok());
    let signature_start = signed.find("<Signature ").expect("signature");
    let signature_end = signed.find("</Signature>").expect("end") + "</Signature>".len();
    let signature = &signed[signature_start..signature_end];

    // A second ds:Signature (a copy inside the content).
    let twice = signed.replacen("<report>", &format!("<report>{signature}"), 1);
    let e = refused(&twice, &pinned);
    assert_eq!(e.reason, Reason::SignatureInvalid, "{e}");
    assert!(e.detail.contains("2 ds:Signature"), "{e}");

    // A Reference to an Id: the classic wrapping, the signed part moved under an Id.
    let id_trick = signed
        .replacen("<Reference URI=\"\">", "<Reference URI=\"#r\">", 1)
        .replacen("<report>", "<report Id=\"r\">", 1);
    let e = refused(&id_trick, &pinned);
    assert_eq!(e.reason, Reason::SignatureInvalid, "{e}");
    assert!(e.detail.contains("@URI is not empty"), "{e}");

    // Extra transforms: XSLT and XPath.
    for transform in [
        "<Transform Algorithm=\"http://www.w3.org/TR/1999/REC-xslt-19991116\"/>",
        "<Transform Algorithm=\"http://www.w3.org/TR/1999/REC-xpath-19991116\"><XPath>not(ancestor-or-self::report)</XPath></Transform>",
        "<Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>",
    ] {
        let extra = signed.replacen("</Transforms>", &format!("{transform}</Transforms>"), 1);
        let e = refused(&extra, &pinned);
        assert_eq!(e.reason, Reason::SignatureInvalid, "{transform}: {e}");
        assert!(e.detail.contains("ds:Transform[2]"), "{e}");
    }

    // A ds:Object with content (where wrapped content would hide).
    let object = signed.replacen(
        "</Signature>",
        "<Object><report>moved</report></Object></Signature>",
        1,
    );
    let e = refused(&object, &pinned);
    assert_eq!(e.reason, Reason::SignatureInvalid, "{e}");
    assert!(e.detail.contains("ds:Object"), "{e}");

    // A key in KeyInfo that is not the pinned signer's: the document re-signed by another key.
    let (other, _other_dir) = test_signer("rsa");
    let resigned = dsig::sign(ELMO_LIKE.as_bytes(), &other, &Limits::default()).expect("signs");
    let e = verify(&resigned, &pinned, false).expect_err("refused");
    assert_eq!(e.reason, Reason::UnknownSigner, "{e}");
    // The pinned signer's certificate put into KeyInfo over another key's signature.
    let pinned_b64 = {
        let s = String::from_utf8(signed.clone().into_bytes()).expect("utf-8");
        let a = s.find("<X509Certificate>").expect("cert") + "<X509Certificate>".len();
        let b = s.find("</X509Certificate>").expect("cert");
        s[a..b].to_owned()
    };
    let swapped = {
        let s = String::from_utf8(resigned).expect("utf-8");
        let a = s.find("<X509Certificate>").expect("cert") + "<X509Certificate>".len();
        let b = s.find("</X509Certificate>").expect("cert");
        format!("{}{}{}", &s[..a], pinned_b64, &s[b..])
    };
    let e = refused(&swapped, &pinned);
    assert_eq!(e.reason, Reason::SignatureInvalid, "{e}");

    // Not last in the root, and missing.
    let moved =
        signed
            .replacen(signature, "", 1)
            .replacen("<report>", &format!("{signature}<report>"), 1);
    assert_eq!(refused(&moved, &pinned).reason, Reason::SignatureInvalid);
    assert_eq!(refused(ELMO_LIKE, &pinned).reason, Reason::SignatureMissing);
}

#[test]
fn canonicalization_of_signed_content_agrees_with_xmllint_exclusive_of_the_signature() {
    // The canonical form Siirto digests (the document without its signature) is what
    // libxml2 canonicalizes from the unsigned document.
    let Some(xmllint) = support::xmllint() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("doc.xml");
    std::fs::write(&file, ELMO_LIKE).expect("write");
    let out = Command::new(&xmllint)
        .args(["--nonet", "--c14n"])
        .arg(&file)
        .output()
        .expect("xmllint");
    let (signer, _d) = test_signer("ec");
    let signed = dsig::sign(ELMO_LIKE.as_bytes(), &signer, &Limits::default()).expect("signs");
    let doc = c14n::parse(&signed, &Limits::default()).expect("parses");
    let signature = doc.root.elements().last().expect("signature");
    assert_eq!(doc.canonical(Comments::Omit, Some(signature)), out.stdout);
}

// ---------------------------------------------------------------------------------------------
// Signed sources

fn prepare_from(
    schemas: &Schemas,
    from: Format,
    source: &[u8],
    subject: &StudentId,
    pinned: Option<&[X509]>,
) -> Result<pipeline::Prepared, pipeline::PipelineError> {
    let context = WriteContext::new(Timestamp::from_secs(1_790_000_000)).with_source("emrex-ncp");
    pipeline::prepare(
        source,
        schemas,
        Task {
            from,
            to: Format::SiirtoV1,
            subject,
            scope: Scope::all(),
            limits: &Limits::default(),
            json_limits: &Default::default(),
            context: &context,
            signatures: Signatures {
                signer: None,
                sign_siirto_v1: false,
                source: pinned.map(|signers| pipeline::SourceSigners {
                    signers,
                    allow_sha1: false,
                }),
            },
        },
    )
}

#[test]
fn an_elmo_source_with_pinned_signers_is_checked_before_it_is_read() {
    let Some(corpus) = siirto_testsupport::corpus() else {
        return;
    };
    let schemas = schemas(&corpus);
    let subject = StudentId::parse(HETU).expect("hetu");
    let (signer, _a) = test_signer("rsa");
    let (other, _b) = test_signer("ec");
    let record = siirto_devkit::demo::school_record(HETU, false).into_bytes();
    // An ELMO document as a signing EMREX contact point would send it (Siirto's own output).
    let signed = prepare(
        &schemas,
        Format::SiirtoV1,
        Format::Elmo,
        &record,
        &subject,
        &signer,
    );
    let pinned = [signer.certificate().expect("cert")];
    let wrong = [other.certificate().expect("cert")];

    let ok = prepare_from(&schemas, Format::Elmo, &signed, &subject, Some(&pinned))
        .expect("a document signed by the pinned signer is read");
    assert!(
        ok.signature_method.is_none(),
        "siirto-v1 signing was switched off"
    );
    // A signed siirto-v1 document is a good source too (the schema allows the signature).
    let signed_v1 = prepare(
        &schemas,
        Format::SiirtoV1,
        Format::SiirtoV1,
        &record,
        &subject,
        &signer,
    );
    prepare_from(&schemas, Format::SiirtoV1, &signed_v1, &subject, None)
        .expect("a signed siirto-v1 document is read");

    let text = String::from_utf8(signed.clone()).expect("utf-8");
    let unsigned = prepare_from(&schemas, Format::SiirtoV1, &record, &subject, None)
        .expect("converts")
        .document;
    let unsigned_elmo = {
        let context = WriteContext::new(Timestamp::from_secs(1_790_000_000)).with_source("turku");
        let root = siirto_xsd::dom::parse(&record, &Limits::default()).expect("parses");
        formats::convert(
            Format::SiirtoV1,
            Format::Elmo,
            &root,
            &subject,
            Scope::all(),
            &context,
        )
        .expect("converts")
        .document
    };
    assert!(!unsigned.is_empty());
    let tampered = text.replacen("Meikäläinen", "Meikäläinem", 1);
    assert_ne!(tampered, text);
    for (what, bytes, pins, reason) in [
        (
            "another signer",
            signed.clone(),
            &wrong[..],
            "unknown_signer",
        ),
        (
            "no signature",
            unsigned_elmo,
            &pinned[..],
            "signature_missing",
        ),
        (
            "changed after signing",
            tampered.into_bytes(),
            &pinned[..],
            "digest_mismatch",
        ),
    ] {
        let e = prepare_from(&schemas, Format::Elmo, &bytes, &subject, Some(pins)).expect_err(what);
        match e {
            pipeline::PipelineError::InvalidSource { format, summary } => {
                assert_eq!(format, Format::Elmo);
                assert!(summary.starts_with(reason), "{what}: {summary}");
            }
            other => panic!("{what}: {other}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The offline commands

fn siirto(args: &[&std::ffi::OsStr]) -> (i32, Vec<u8>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_siirto"))
        .env("SIIRTO_LOG", "warn")
        .args(args)
        .output()
        .expect("run siirto");
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn siirto_sign_and_verify_signature_exit_codes() {
    use std::ffi::OsStr;
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = dir.path().join("pki");
    let (code, _, err) = siirto(&[
        OsStr::new("pki"),
        OsStr::new("init"),
        pki.as_os_str(),
        OsStr::new("--free-ports"),
    ]);
    assert_eq!(code, 0, "{err}");
    let config = pki.join("siirto.toml");
    let cert = pki.join("certs/document-signing.pem");
    let record = dir.path().join("record.xml");
    std::fs::write(&record, siirto_devkit::demo::school_record(HETU, false)).expect("write");

    // Signed: exit 0, and the result verifies with the [documents] certificate.
    let (code, signed, err) = siirto(&[
        OsStr::new("sign"),
        OsStr::new("--config"),
        config.as_os_str(),
        record.as_os_str(),
    ]);
    assert_eq!(code, 0, "{err}");
    let signed_file = dir.path().join("signed.xml");
    std::fs::write(&signed_file, &signed).expect("write");
    let (code, said) = siirto_verify_signature(&cert, &signed_file);
    assert_eq!(code, 0, "{said}");
    assert!(
        said.contains("valid (http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"),
        "{said}"
    );
    // Without --cert: the document's own certificate, and it says what that proves.
    let (code, out, _) = siirto(&[OsStr::new("verify-signature"), signed_file.as_os_str()]);
    assert_eq!(code, 0);
    assert!(String::from_utf8_lossy(&out).contains("who signed it is not checked"));

    // Already signed: exit 1. Not signed: verify-signature exit 1 with the reason.
    let (code, _, err) = siirto(&[
        OsStr::new("sign"),
        OsStr::new("--config"),
        config.as_os_str(),
        signed_file.as_os_str(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("already holds a ds:Signature"), "{err}");
    let (code, said) = siirto_verify_signature(&cert, &record);
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("invalid (signature_missing)"), "{said}");

    // Unusable: no [documents] in the configuration, an unreadable certificate: exit 2.
    let text = std::fs::read_to_string(&config).expect("config");
    let at = text.find("\n[documents]").expect("[documents]");
    let bare = pki.join("bare.toml");
    std::fs::write(&bare, &text[..at]).expect("write");
    let (code, _, err) = siirto(&[
        OsStr::new("sign"),
        OsStr::new("--config"),
        bare.as_os_str(),
        record.as_os_str(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("[documents] signing_cert and signing_key are not set"),
        "{err}"
    );
    let (code, said) = siirto_verify_signature(&dir.path().join("missing.pem"), &signed_file);
    assert_eq!(code, 2, "{said}");
}

//! End-to-end rules of a conversion: what the scope does not name never leaves, support is
//! withheld unless named, turvakielto removes location whatever the scope, the record is bound
//! to the authorization's subject, and every refusal has its stable code.

#[path = "support/formats_validate.rs"]
mod validate;
#[path = "support/formats_walk.rs"]
mod walk;

use siirto_core::clock::Timestamp;
use siirto_core::formats::{self, Format, WriteContext};
use siirto_core::scope::{Category, Scope};
use siirto_core::student_id::StudentId;
use siirto_xsd::Limits;
use siirto_xsd::dom::{self, Element};

const HETU: &str = "131052-308T";

/// A municipal school record with every category, turvakielto as given.
fn school_record(turvakielto: bool) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<studentRecord xmlns="urn:siirto:record:v1" version="1" generatedAt="2026-05-01T10:00:00Z">
  <student turvakielto="{turvakielto}">
    <henkilotunnus>{HETU}</henkilotunnus>
    <oppijanumero>1.2.246.562.24.10000000008</oppijanumero>
    <familyName>Meikäläinen</familyName>
    <givenNames>Maija</givenNames>
    <birthDate>1952-10-13</birthDate>
    <citizenship>FI</citizenship>
    <motherTongue>fi</motherTongue>
    <homeMunicipality>853</homeMunicipality>
    <address><line>Kotikatu 1</line><postalCode>20100</postalCode><locality>Turku</locality><country>FI</country></address>
    <contact type="phone">+358 40 000 0000</contact>
  </student>
  <providers>
    <provider key="1.2.246.562.10.1">
      <identifier type="organisaatio-oid">1.2.246.562.10.1</identifier>
      <name lang="fi">Puolalan koulu</name>
      <country>FI</country>
    </provider>
  </providers>
  <studyRights>
    <studyRight key="oo-1" provider="1.2.246.562.10.1" kind="basic">
      <start>2015-08-01</start>
      <state start="2015-08-01" value="active"/>
    </studyRight>
  </studyRights>
  <achievements>
    <achievement key="ma" kind="course" provider="1.2.246.562.10.1" studyRight="oo-1">
      <code>MA</code>
      <name lang="fi">Matematiikka</name>
      <date>2024-06-01</date>
      <grade><asteikko-4-10>9</asteikko-4-10></grade>
      <credits unit="vvt">3</credits>
    </achievement>
    <achievement key="ku" kind="course" provider="1.2.246.562.10.1">
      <code>KU</code>
      <name lang="fi">Kuvataide</name>
      <date>2024-06-01</date>
      <grade><hyvaksytty-hylatty>S</hyvaksytty-hylatty></grade>
    </achievement>
  </achievements>
  <supportDecisions>
    <supportDecision kind="erityinen" provider="1.2.246.562.10.1">
      <decidedOn>2019-01-10</decidedOn>
      <start>2019-01-15</start>
      <individualisedSubject>MA</individualisedSubject>
    </supportDecision>
  </supportDecisions>
</studentRecord>"#,
    )
}

fn parse(text: &str) -> Element {
    dom::parse(text.as_bytes(), &Limits::default()).expect("parses")
}

fn subject() -> StudentId {
    StudentId::parse(HETU).expect("valid")
}

fn context() -> WriteContext {
    WriteContext::new(Timestamp::from_secs(1_780_000_000)).with_source("turku")
}

#[test]
fn the_source_document_is_valid() {
    validate::validate_output(
        Format::SiirtoV1,
        school_record(true).as_bytes(),
        "hand-written school record",
    );
}

#[test]
fn support_is_withheld_unless_named() {
    let root = parse(&school_record(false));
    let without =
        Scope::parse("identity enrolment achievements mobility registrations").expect("scope");
    for to in Format::DESTINATIONS {
        let c = formats::convert(Format::SiirtoV1, to, &root, &subject(), without, &context())
            .expect("converts");
        walk::assert_within_scope(to, &c.document, without, "support not named");
        let text = String::from_utf8(c.document.clone()).expect("UTF-8");
        assert!(
            !text.contains("erityinen") && !text.contains("2019-01-10"),
            "→ {to}"
        );
        assert!(
            c.report
                .dropped_by_scope
                .iter()
                .any(|d| d.category == Category::Support && d.path == "support_decisions[0].kind")
        );
        assert!(!c.report.categories.contains(&"support"));
    }
    let with = Scope::parse("identity support").expect("scope");
    let c = formats::convert(
        Format::SiirtoV1,
        Format::SiirtoV1,
        &root,
        &subject(),
        with,
        &context(),
    )
    .expect("converts");
    let out = formats::read(
        Format::SiirtoV1,
        &dom::parse(&c.document, &Limits::default()).expect("parses"),
        &subject(),
    )
    .expect("reads");
    assert_eq!(out.support_decisions.len(), 1);
    assert!(out.achievements.is_empty() && out.study_rights.is_empty());
    // The support decision names its provider, so the provider travels with it.
    assert_eq!(out.providers.len(), 1);
    assert_eq!(c.report.categories, vec!["identity", "support"]);
    validate::validate_output(Format::SiirtoV1, &c.document, "support named");
}

#[test]
fn turvakielto_removes_location_whatever_the_scope() {
    let root = parse(&school_record(true));
    for to in Format::DESTINATIONS {
        let c = formats::convert(
            Format::SiirtoV1,
            to,
            &root,
            &subject(),
            Scope::all(),
            &context(),
        )
        .expect("converts");
        validate::validate_output(to, &c.document, &format!("turvakielto → {to}"));
        let text = String::from_utf8(c.document.clone()).expect("UTF-8");
        for secret in ["Kotikatu", "20100", "+358", "853"] {
            assert!(!text.contains(secret), "→ {to}: {secret} left in");
        }
        assert_eq!(
            c.report.dropped_by_turvakielto,
            vec![
                "student.home_municipality",
                "student.addresses[0]",
                "student.contacts[0]"
            ],
            "→ {to}"
        );
        assert!(c.report.turvakielto);
        assert!(c.report.summary().turvakielto);
        match to {
            Format::SiirtoV1 => assert!(text.contains(r#"turvakielto="true""#)),
            // Formats without the flag say they could not carry it.
            _ => assert!(
                c.report
                    .dropped_by_target
                    .iter()
                    .any(|d| d.path == "turvakielto")
            ),
        }
    }
    // Without turvakielto the same fields travel.
    let c = formats::convert(
        Format::SiirtoV1,
        Format::SiirtoV1,
        &parse(&school_record(false)),
        &subject(),
        Scope::all(),
        &context(),
    )
    .expect("converts");
    let text = String::from_utf8(c.document).expect("UTF-8");
    assert!(text.contains("Kotikatu") && text.contains("853"));
    assert!(c.report.dropped_by_turvakielto.is_empty());
}

#[test]
fn identifiers_are_compared_normalized_and_written_canonically() {
    // ELMO identifiers are tokens: a lower-case check character binds, and is written upper.
    let root = parse(&school_record(false));
    let c = formats::convert(
        Format::SiirtoV1,
        Format::Elmo,
        &root,
        &subject(),
        Scope::all(),
        &context(),
    )
    .expect("converts");
    let elmo = String::from_utf8(c.document)
        .expect("UTF-8")
        .replace(HETU, &format!("  {}  ", HETU.to_lowercase()));
    let c = formats::convert(
        Format::Elmo,
        Format::SiirtoV1,
        &parse(&elmo),
        &subject(),
        Scope::all(),
        &context(),
    )
    .expect("binds");
    validate::validate_output(Format::SiirtoV1, &c.document, "normalized henkilötunnus");
    assert!(String::from_utf8(c.document).expect("UTF-8").contains(HETU));
}

#[test]
fn a_record_about_someone_else_is_refused() {
    let root = parse(&school_record(false));
    let stranger = StudentId::parse("010190-020A").expect("valid");
    for to in Format::DESTINATIONS {
        let err = formats::convert(
            Format::SiirtoV1,
            to,
            &root,
            &stranger,
            Scope::all(),
            &context(),
        )
        .expect_err("not the subject");
        assert_eq!(err.code(), "subject_mismatch");
        assert!(!err.to_string().contains("131052"));
        assert!(!err.to_string().contains("010190"));
    }
    // The learner number binds as well as the henkilötunnus.
    let by_oid = StudentId::parse("1.2.246.562.24.10000000008").expect("valid");
    formats::convert(
        Format::SiirtoV1,
        Format::Elmo,
        &root,
        &by_oid,
        Scope::all(),
        &context(),
    )
    .expect("bound by oppijanumero");
}

#[test]
fn a_virta_document_with_several_students_yields_only_the_named_one() {
    let Some(corpus) = siirto_testsupport::corpus() else {
        return;
    };
    let path = corpus.join("virta/samples/Virta.xml");
    let text = std::fs::read_to_string(&path).expect("Virta.xml");
    let other = r#"<Opiskelija avain="99999">
      <Henkilotunnus>131052-308T</Henkilotunnus>
      <Sukunimi>Toinen</Sukunimi>
      <Etunimet>Opiskelija</Etunimet>
      <KansallinenOppijanumero>1.2.246.562.24.20000000009</KansallinenOppijanumero>
      <Opintosuoritukset>
        <Opintosuoritus avain="OTHER-1" opiskelijaAvain="99999" koulutusmoduulitunniste="SECRET-COURSE">
          <SuoritusPvm>2020-01-01</SuoritusPvm>
          <Laajuus><Opintopiste>7</Opintopiste></Laajuus>
          <Arvosana><Viisiportainen>1</Viisiportainen></Arvosana>
          <Myontaja>02535</Myontaja>
          <Laji>2</Laji>
        </Opintosuoritus>
      </Opintosuoritukset>
    </Opiskelija>
</Virta>"#;
    let doc = text.replace("</Virta>", other);
    validate::validate_output(Format::Virta, doc.as_bytes(), "two-student Virta document");
    let root = parse(&doc);
    let first = StudentId::parse("010190-020A").expect("valid");
    for to in Format::DESTINATIONS {
        let c = formats::convert(Format::Virta, to, &root, &first, Scope::all(), &context())
            .expect("converts");
        let out = String::from_utf8(c.document.clone()).expect("UTF-8");
        for secret in [
            "Toinen",
            "131052-308T",
            "20000000009",
            "SECRET-COURSE",
            "OTHER-1",
        ] {
            assert!(
                !out.contains(secret),
                "→ {to}: the other student's {secret} left in"
            );
        }
        assert_eq!(walk::student_count(to, &c.document), 1);
        assert_eq!(
            c.report
                .not_read_from_source
                .get("virta:/Virta/Opiskelija (other students)"),
            Some(&1)
        );
    }
    // And the other student gets only their own record.
    let second = StudentId::parse(HETU).expect("valid");
    let r = formats::read(Format::Virta, &root, &second).expect("reads");
    assert_eq!(r.achievements.len(), 1);
    assert_eq!(r.student.family_name.as_deref(), Some("Toinen"));
    // Two entries for one person are refused, not merged or guessed between.
    let twice = doc.replace(
        "<Henkilotunnus>131052-308T</Henkilotunnus>",
        "<Henkilotunnus>010190-020A</Henkilotunnus>",
    );
    let err = formats::read(Format::Virta, &parse(&twice), &first).expect_err("ambiguous");
    assert_eq!(err.code(), "unreadable_source");
}

#[test]
fn refusals_have_stable_codes_and_name_the_path() {
    // A document of another format.
    let root = parse(&school_record(false));
    let err = formats::read(Format::Elmo, &root, &subject()).expect_err("not ELMO");
    assert_eq!(err.code(), "unreadable_source");
    // A malformed value names where it is, not what it is.
    let bad = school_record(false).replace("<date>2024-06-01</date>", "<date>2024-13-01</date>");
    let err = formats::read(Format::SiirtoV1, &parse(&bad), &subject()).expect_err("bad date");
    assert_eq!(err.code(), "unreadable_source");
    assert_eq!(
        err.to_string(),
        "/studentRecord/achievements/achievement[1]/date: not a calendar date"
    );
    // ELMO needs an issuer: with nothing to name, the conversion fails rather than invent one.
    let identity_only = Scope::parse("identity").expect("scope");
    let err = formats::convert(
        Format::SiirtoV1,
        Format::Elmo,
        &root,
        &subject(),
        identity_only,
        &WriteContext::new(Timestamp::from_secs(0)),
    )
    .expect_err("no issuer");
    assert_eq!(err.code(), "conversion_failed");
    // Given the source participant, it names that instead.
    let c = formats::convert(
        Format::SiirtoV1,
        Format::Elmo,
        &root,
        &subject(),
        identity_only,
        &context(),
    )
    .expect("converts");
    validate::validate_output(Format::Elmo, &c.document, "identity-only ELMO");
    walk::assert_within_scope(
        Format::Elmo,
        &c.document,
        identity_only,
        "identity-only ELMO",
    );
}

#[test]
fn the_summary_is_counts_and_paths() {
    let root = parse(&school_record(true));
    let c = formats::convert(
        Format::SiirtoV1,
        Format::Elmo,
        &root,
        &subject(),
        Scope::parse("identity achievements").expect("scope"),
        &context(),
    )
    .expect("converts");
    let summary = serde_json::to_value(c.report.summary()).expect("serializes");
    let text = summary.to_string();
    for personal in [
        "131052",
        "Meikäläinen",
        "Maija",
        "1952",
        "Matematiikka",
        "\"9\"",
    ] {
        assert!(!text.contains(personal), "summary holds {personal}: {text}");
    }
    assert_eq!(summary["counts"]["dropped_by_turvakielto"], 3);
    assert_eq!(
        summary["dropped_by_scope"]["support"]["support_decisions[].kind"],
        1
    );
    assert_eq!(
        summary["dropped_by_scope"]["enrolment"]["achievements[].study_right"],
        1
    );
    assert_eq!(summary["carried"]["achievements[].grade"], 2);
}

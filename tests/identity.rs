//! Client certificates → participants ([`siirto_core::identity::identify`]) with certificates
//! from the development PKI. Moved from the unit tests of `crates/core/src/identity.rs`: the dev
//! PKI lives in siirto-devkit, which depends on the gateway; the core crate and its own tests
//! stay free of it.

use std::time::Duration;

use rustls_pki_types::CertificateDer;
use siirto_core::clock::{SeededRandom, Timestamp, hex, unhex};
use siirto_core::identity::{
    Directory, IdentityRule, Participant, Role, describe, identify, parse_subject,
};
use siirto_devkit::pki::{AltName, DevCa, IssuedCert, Usage};

const NOW: Timestamp = Timestamp::from_secs(1_790_000_000);

fn ca() -> DevCa {
    DevCa::generate(
        "CN=Test CA,C=FI",
        NOW,
        NOW.saturating_add(Duration::from_secs(86_400)),
        &SeededRandom::new(21),
    )
    .expect("ca")
}

fn issue(ca: &DevCa, subject: &str, alt: &[AltName]) -> IssuedCert {
    ca.issue(
        subject,
        alt,
        Usage::Client,
        NOW,
        NOW.saturating_add(Duration::from_secs(3600)),
        &SeededRandom::new(subject.len() as u64 + 1),
    )
    .expect("issue")
}

fn participant(id: &str, identity: IdentityRule) -> Participant {
    Participant {
        id: id.to_owned(),
        roles: vec![Role::Eservice],
        identity,
        endpoint: None,
        name: None,
        statutory: None,
        redirect_uris: Vec::new(),
    }
}

fn subject_rule(s: &str) -> IdentityRule {
    IdentityRule::Subject(parse_subject(s).expect("subject"))
}

fn spki_pin(cert: &IssuedCert) -> [u8; 32] {
    let summary = describe(&cert.der).expect("describe");
    let bytes = unhex(&summary.spki_sha256_hex).expect("hex");
    bytes.try_into().expect("32 bytes")
}

#[test]
fn each_rule_kind_identifies_its_participant() {
    let ca = ca();
    let turku = issue(&ca, "CN=turku-education,O=Turun kaupunki,C=FI", &[]);
    let virta = issue(
        &ca,
        "CN=virta",
        &[AltName::Uri("urn:siirto:participant:virta".to_owned())],
    );
    let portal = issue(
        &ca,
        "CN=portal",
        &[AltName::Dns("Eservice.Siirto.Test".to_owned())],
    );
    let pinned = issue(&ca, "CN=pinned", &[]);
    let directory = Directory::from_participants(vec![
        participant(
            "turku",
            subject_rule("C=FI, O=Turun kaupunki, CN=turku-education"),
        ),
        participant(
            "virta",
            IdentityRule::SanUri("urn:siirto:participant:virta".to_owned()),
        ),
        participant(
            "eservice",
            IdentityRule::SanDns("eservice.siirto.test".to_owned()),
        ),
        participant("pinned", IdentityRule::SpkiSha256(spki_pin(&pinned))),
    ]);
    for (cert, id) in [
        (&turku, "turku"),
        (&virta, "virta"),
        (&portal, "eservice"),
        (&pinned, "pinned"),
    ] {
        let who = identify(&directory, std::slice::from_ref(&cert.der))
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(who.id, id);
        assert_eq!(who.certificate().serial_hex, hex(&cert.serial));
        assert_eq!(who.certificate().spki_sha256_hex.len(), 64);
    }
}

#[test]
fn subject_must_hold_exactly_the_configured_attributes() {
    let ca = ca();
    let directory = Directory::from_participants(vec![participant(
        "turku",
        subject_rule("CN=turku-education,O=Turun kaupunki,C=FI"),
    )]);
    for subject in [
        "CN=turku-education,O=Turun kaupunki",              // fewer
        "CN=turku-education,O=Turun kaupunki,C=FI,L=Turku", // more
        "CN=turku-education,O=turun kaupunki,C=FI",         // value differs in case
        "CN=turku-educatio,O=Turun kaupunki,C=FI",          // value differs
    ] {
        let cert = issue(&ca, subject, &[]);
        let err = identify(&directory, std::slice::from_ref(&cert.der)).expect_err(subject);
        assert_eq!(err.code(), "unknown_participant", "{subject}");
    }
}

#[test]
fn no_certificate_garbage_and_ambiguity_are_distinct_errors() {
    let ca = ca();
    let cert = issue(&ca, "CN=both", &[AltName::Uri("urn:x".to_owned())]);
    let directory = Directory::from_participants(vec![
        participant("a", subject_rule("CN=both")),
        participant("b", IdentityRule::SanUri("urn:x".to_owned())),
    ]);
    let err = identify(&directory, std::slice::from_ref(&cert.der)).expect_err("ambiguous");
    assert_eq!(err.code(), "ambiguous_participant");
    assert!(err.to_string().contains("a, b"), "{err}");
    assert_eq!(
        identify(&directory, &[]).expect_err("none").code(),
        "no_client_certificate"
    );
    let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
    assert_eq!(
        identify(&directory, &[garbage])
            .expect_err("garbage")
            .code(),
        "bad_client_certificate"
    );
}

#[test]
fn san_dns_rule_ignores_case_and_san_uri_does_not() {
    let ca = ca();
    let cert = issue(
        &ca,
        "CN=x",
        &[
            AltName::Dns("PORTAL.example.FI".to_owned()),
            AltName::Uri("urn:Case".to_owned()),
        ],
    );
    let dns = Directory::from_participants(vec![participant(
        "p",
        IdentityRule::SanDns("portal.example.fi".to_owned()),
    )]);
    assert!(identify(&dns, std::slice::from_ref(&cert.der)).is_ok());
    let uri = Directory::from_participants(vec![participant(
        "p",
        IdentityRule::SanUri("urn:case".to_owned()),
    )]);
    assert!(identify(&uri, std::slice::from_ref(&cert.der)).is_err());
}

#[test]
fn summary_describes_without_secrets() {
    let ca = ca();
    let cert = issue(&ca, "CN=turku-education,O=Turun kaupunki,C=FI", &[]);
    let s = describe(&cert.der).expect("describe");
    assert!(s.subject.contains("CN=turku-education"), "{}", s.subject);
    assert_eq!(s.serial_hex, hex(&cert.serial));
}

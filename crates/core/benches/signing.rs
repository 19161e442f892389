//! What XML Signature costs per MB of record: Canonical XML alone (the baseline every
//! signature pays), Canonical XML plus the SHA-256 digest, a whole `dsig::sign` (parse,
//! digest, SignedInfo, the RSA or ECDSA signature, and the self-check that verifies the result
//! before it is returned), and `dsig::verify`, all in the same run on the same documents.
//!
//! `cargo bench -p siirto-core --bench signing` (`SIIRTO_BENCH_QUICK=1` for one small size). The documents
//! are generated ELMO-shaped records (namespaced, attributes, non-ASCII text) of about 1 MB
//! and 8 MB; figures are wall time, best of several runs, in MB/s and ms per MB.

use std::time::{Duration, Instant};

use openssl::pkey::PKey;
use openssl::x509::X509;
use siirto_core::dsig::{self, Policy, Signer, Trust};
use siirto_xsd::Limits;
use siirto_xsd::c14n::{self, Comments};

fn document(target: usize) -> Vec<u8> {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<elmo xmlns=\"https://github.com/emrex-eu/elmo-schemas/tree/v1\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n  <learner><givenNames>Äijä</givenNames><familyName>Öhman</familyName></learner>\n  <report>\n",
    );
    let mut i = 0u64;
    while out.len() < target {
        out.push_str(&format!(
            "    <learningOpportunitySpecification>\n      <identifier type=\"local\">K{i}</identifier>\n      <title xml:lang=\"fi\">Kurssi {i}: äidinkieli &amp; kirjallisuus</title>\n      <type>Module</type>\n      <specifies><learningOpportunityInstance><start>2024-08-{:02}</start><credit><scheme>ECTS</scheme><value>{}</value></credit><resultLabel>{}</resultLabel></learningOpportunityInstance></specifies>\n    </learningOpportunitySpecification>\n",
            i % 28 + 1,
            i % 10 + 1,
            i % 6 + 4
        ));
        i += 1;
    }
    out.push_str("  </report>\n</elmo>\n");
    out.into_bytes()
}

fn signer(kind: &str) -> Signer {
    let key = match kind {
        "rsa" => PKey::from_rsa(openssl::rsa::Rsa::generate(2048).expect("rsa")).expect("key"),
        _ => {
            let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)
                .expect("group");
            PKey::from_ec_key(openssl::ec::EcKey::generate(&group).expect("ec")).expect("key")
        }
    };
    let mut name = openssl::x509::X509NameBuilder::new().expect("name");
    name.append_entry_by_text("CN", "bench signer").expect("cn");
    let name = name.build();
    let mut b = X509::builder().expect("builder");
    b.set_version(2).expect("version");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(&name).expect("issuer");
    b.set_pubkey(&key).expect("pubkey");
    b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).expect("t"))
        .expect("nb");
    b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).expect("t"))
        .expect("na");
    b.sign(&key, openssl::hash::MessageDigest::sha256())
        .expect("sign");
    let cert = b.build();
    Signer::from_pem(
        &cert.to_pem().expect("pem"),
        &key.private_key_to_pem_pkcs8().expect("pkcs8"),
    )
    .expect("signer")
}

fn best(runs: usize, mut f: impl FnMut()) -> Duration {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn main() {
    let quick = std::env::var_os("SIIRTO_BENCH_QUICK").is_some();
    let sizes: &[usize] = if quick {
        &[256 * 1024]
    } else {
        &[1024 * 1024, 8 * 1024 * 1024]
    };
    let limits = Limits::default();
    let rsa = signer("rsa");
    let ec = signer("ec");
    println!("| document | what | MB/s | ms per MB |");
    println!("|---|---|---:|---:|");
    for &size in sizes {
        let doc = document(size);
        let mb = doc.len() as f64 / 1e6;
        let runs = if quick { 3 } else { 7 };
        let report = |what: &str, d: Duration| {
            let secs = d.as_secs_f64();
            println!(
                "| {:.1} MB | {what} | {:.1} | {:.1} |",
                mb,
                mb / secs,
                secs * 1000.0 / mb
            );
        };
        report(
            "parse only (`c14n::parse`, the hardened reader)",
            best(runs, || {
                c14n::parse(&doc, &limits).expect("parses");
            }),
        );
        report(
            "baseline: Canonical XML (parse + canonical form)",
            best(runs, || {
                let d = c14n::parse(&doc, &limits).expect("parses");
                std::hint::black_box(d.canonical(Comments::Omit, None));
            }),
        );
        report(
            "Canonical XML + SHA-256 digest",
            best(runs, || {
                let d = c14n::parse(&doc, &limits).expect("parses");
                let c = d.canonical(Comments::Omit, None);
                std::hint::black_box(
                    openssl::hash::hash(openssl::hash::MessageDigest::sha256(), &c).expect("hash"),
                );
            }),
        );
        for (name, s) in [("rsa-sha256", &rsa), ("ecdsa-sha256", &ec)] {
            report(
                &format!("`dsig::sign`, {name} (with its self-check)"),
                best(runs, || {
                    std::hint::black_box(dsig::sign(&doc, s, &limits).expect("signs"));
                }),
            );
        }
        let signed = dsig::sign(&doc, &rsa, &limits).expect("signs");
        let pinned = [rsa.certificate().expect("cert")];
        report(
            "`dsig::verify`, rsa-sha256",
            best(runs, || {
                dsig::verify(
                    &signed,
                    Policy {
                        trust: Trust::Pinned(&pinned),
                        allow_sha1: false,
                    },
                    &limits,
                )
                .expect("verifies");
            }),
        );
    }
}

//! The development PKI checked by an independent implementation (`openssl`), and keys written
//! by `openssl` accepted by the gateway's loaders.

#[path = "support/net_tls.rs"]
mod net_tls;

use std::path::Path;
use std::process::Command;

use net_tls::{TestPki, dev_pki, tool_available};

fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn openssl_verifies_leaf_certificates_as_proper_end_entities() {
    if !tool_available("openssl") {
        return;
    }
    let t: TestPki = dev_pki();
    let p = &t.pki;
    let ca = s(&p.ca.cert);
    for participant in &p.participants {
        let (ok, out) = openssl(&[
            "verify",
            "-CAfile",
            ca,
            "-purpose",
            "sslclient",
            s(&participant.client.cert),
        ]);
        assert!(ok && out.contains(": OK"), "{}: {out}", participant.id);
        if let Some(server) = &participant.server {
            let (ok, out) = openssl(&[
                "verify",
                "-CAfile",
                ca,
                "-purpose",
                "sslserver",
                s(&server.cert),
            ]);
            assert!(ok, "{}: {out}", participant.id);
        }
    }
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        ca,
        "-purpose",
        "sslserver",
        s(&p.gateway_server.cert),
    ]);
    assert!(ok, "{out}");
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        ca,
        "-purpose",
        "sslclient",
        s(&p.gateway_client.cert),
    ]);
    assert!(ok, "{out}");

    let turku = &p.participant("turku").expect("turku").client;
    let (ok, text) = openssl(&["x509", "-in", s(&turku.cert), "-noout", "-text"]);
    assert!(ok, "{text}");
    for needle in [
        "CA:FALSE",
        "X509v3 Authority Key Identifier",
        "X509v3 Subject Key Identifier",
        "TLS Web Client Authentication",
        "Digital Signature",
        "CN = turku-education",
    ] {
        assert!(text.contains(needle), "missing {needle}:\n{text}");
    }
    let (_, gateway) = openssl(&[
        "x509",
        "-in",
        s(&p.gateway_server.cert),
        "-noout",
        "-ext",
        "subjectAltName",
    ]);
    for name in [
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "IP Address:0:0:0:0:0:0:0:1",
    ] {
        assert!(gateway.contains(name), "missing {name}: {gateway}");
    }

    // Expired and revoked as openssl sees them.
    let (ok, out) = openssl(&["verify", "-CAfile", ca, s(&p.expired_client.cert)]);
    assert!(!ok && out.contains("expired"), "{out}");
    let (ok, out) = openssl(&[
        "verify",
        "-crl_check",
        "-CRLfile",
        s(&p.crl),
        "-CAfile",
        ca,
        s(&p.revoked_client.cert),
    ]);
    assert!(!ok && out.contains("revoked"), "{out}");
    let (ok, out) = openssl(&[
        "verify",
        "-crl_check",
        "-CRLfile",
        s(&p.crl),
        "-CAfile",
        ca,
        s(&turku.cert),
    ]);
    assert!(ok, "a valid certificate must pass the CRL check: {out}");
}

#[test]
fn keys_written_by_openssl_are_accepted() {
    if !tool_available("openssl") {
        return;
    }
    let t = dev_pki();
    let dir = t.dir.path();
    for (name, args) in [
        (
            "ec.key",
            vec!["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        ),
        ("ed25519.key", vec!["-algorithm", "ED25519"]),
        (
            "rsa.key",
            vec!["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        ),
    ] {
        let path = dir.join(name);
        let mut all = vec!["genpkey"];
        all.extend(args);
        all.extend(["-out", s(&path)]);
        let (ok, out) = openssl(&all);
        assert!(ok, "{out}");
        let key =
            siirto_gateway::tls::load_private_key(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        rustls::crypto::ring::sign::any_supported_type(&key)
            .unwrap_or_else(|e| panic!("{name} cannot sign: {e}"));
    }
    // openssl's Ed25519 PKCS#8 (v1, no public key) is a valid audit key.
    let text = std::fs::read_to_string(&t.pki.config).expect("config");
    let text = text.replace("certs/audit-signing.key", s(&dir.join("ed25519.key")));
    siirto_gateway::config::Config::from_toml(&text, &t.pki.config, Vec::new())
        .unwrap_or_else(|e| panic!("openssl Ed25519 key refused as audit key: {e}"));
    // An EC key is not.
    let text = text.replace(s(&dir.join("ed25519.key")), s(&dir.join("ec.key")));
    let err = siirto_gateway::config::Config::from_toml(&text, &t.pki.config, Vec::new())
        .expect_err("EC audit key");
    assert!(err.to_string().contains("gateway.audit_key"), "{err}");
}

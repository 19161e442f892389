//! The gateway's listener TLS (`tls::server_config` from the generated development config)
//! against real clients: the negative cases of a mutual-TLS server (no client certificate,
//! another CA, expired, revoked via the CRL, right CA but unknown subject), and checks with
//! independent clients (`curl`, `openssl s_client`).

#[path = "support/net_tls.rs"]
mod net_tls;

use std::path::Path;
use std::sync::Arc;

use net_tls::{Reply, TestPki, TestServer, dev_pki, spawn_server, tool_available};
use rustls_pki_types::ServerName;
use siirto_core::identity::identify;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A gateway-like server: the real `server_config`, answering `200 <participant id>` for an
/// identified client and `403 <code>` otherwise.
async fn gateway(t: &TestPki) -> TestServer {
    let cfg = t.config(&[]);
    assert!(
        !cfg.gateway.crl.is_empty(),
        "the dev config must configure its CRL"
    );
    let tls = siirto_gateway::tls::server_config(&cfg).expect("server config");
    let directory = cfg.directory.clone();
    spawn_server(tls, move |seen| match identify(&directory, &seen.peer) {
        Ok(who) => Reply::new(200, who.id.clone()),
        Err(e) => Reply::new(403, e.code()),
    })
    .await
}

/// One HTTP/1.1 request over rustls with the given client certificate (or none). Returns the
/// raw response text, or the error that ended the exchange.
async fn call(
    server: &TestServer,
    ca: &Path,
    client: Option<(&Path, &Path)>,
) -> Result<String, String> {
    let cfg = siirto_gateway::tls::client_config_from_files(ca, client).expect("client config");
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(&cfg));
    let tcp = TcpStream::connect(server.addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").expect("name");
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    tls.write_all(b"GET /whoami HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await.map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn body_of(response: &str) -> &str {
    response.split("\r\n\r\n").nth(1).unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_participant_is_identified() {
    let t = dev_pki();
    let server = gateway(&t).await;
    let turku = &t.pki.participant("turku").expect("turku").client;
    let response = call(&server, &t.pki.ca.cert, Some((&turku.cert, &turku.key)))
        .await
        .expect("call");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(body_of(&response), "turku");
    // The SAN-DNS rule of the e-service works through the same path.
    let eservice = &t.pki.participant("eservice").expect("eservice").client;
    let response = call(
        &server,
        &t.pki.ca.cert,
        Some((&eservice.cert, &eservice.key)),
    )
    .await
    .expect("call");
    assert_eq!(body_of(&response), "eservice");
}

/// The server must refuse the handshake, the client must get no response, and the server's
/// recorded reason must mention `expected` (lower-cased).
async fn assert_refused(t: &TestPki, client: Option<(&Path, &Path)>, expected: &str) {
    let server = gateway(t).await;
    let outcome = call(&server, &t.pki.ca.cert, client).await;
    if let Ok(response) = &outcome {
        assert!(
            !response.starts_with("HTTP/1.1"),
            "expected a refused handshake, got a response: {response}"
        );
    }
    let reason = server.handshake_error().await.to_lowercase();
    assert!(
        reason.contains(expected),
        "server said {reason:?}, wanted {expected:?}"
    );
    assert!(
        server.requests().is_empty(),
        "no request may reach the application"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_client_certificate_fails_the_handshake() {
    let t = dev_pki();
    assert_refused(&t, None, "no certificates").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_from_another_ca_is_refused() {
    let t = dev_pki();
    let c = &t.pki.other_ca_client;
    assert_refused(&t, Some((&c.cert, &c.key)), "unknownissuer").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_client_certificate_is_refused() {
    let t = dev_pki();
    let c = &t.pki.expired_client;
    assert_refused(&t, Some((&c.cert, &c.key)), "expired").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_client_certificate_is_refused() {
    let t = dev_pki();
    let c = &t.pki.revoked_client;
    assert_refused(&t, Some((&c.cert, &c.key)), "revoked").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn right_ca_but_unknown_subject_is_unknown_participant() {
    let t = dev_pki();
    let server = gateway(&t).await;
    let c = &t.pki.unknown_client;
    let response = call(&server, &t.pki.ca.cert, Some((&c.cert, &c.key)))
        .await
        .expect("the handshake succeeds");
    assert!(response.starts_with("HTTP/1.1 403"), "{response}");
    assert_eq!(body_of(&response), "unknown_participant");
    assert!(server.handshake_errors.lock().expect("lock").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_certificate_is_trusted_by_the_dev_ca_for_every_local_name() {
    let t = dev_pki();
    let server = gateway(&t).await;
    let turku = &t.pki.participant("turku").expect("turku").client;
    for name in ["localhost", "127.0.0.1", "::1"] {
        let cfg = siirto_gateway::tls::client_config_from_files(
            &t.pki.ca.cert,
            Some((&turku.cert, &turku.key)),
        )
        .expect("client config");
        let connector = tokio_rustls::TlsConnector::from(cfg);
        let tcp = TcpStream::connect(server.addr).await.expect("connect");
        let server_name = ServerName::try_from(name).expect("name").to_owned();
        connector
            .connect(server_name, tcp)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

// --- Independent clients ------------------------------------------------------------------

async fn curl(server: &TestServer, t: &TestPki, client: Option<(&Path, &Path)>) -> (bool, String) {
    let mut cmd = tokio::process::Command::new("curl");
    cmd.arg("-sS")
        .arg("--max-time")
        .arg("10")
        .arg("--cacert")
        .arg(&t.pki.ca.cert)
        .arg("-w")
        .arg("\n%{http_code}");
    if let Some((cert, key)) = client {
        cmd.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    cmd.arg(format!("https://127.0.0.1:{}/whoami", server.port()));
    let out = cmd.output().await.expect("run curl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_with_a_participant_certificate_is_identified_and_without_one_is_refused() {
    if !tool_available("curl") {
        return;
    }
    let t = dev_pki();
    let server = gateway(&t).await;
    let oulu = &t.pki.participant("oulu").expect("oulu").client;
    let (ok, text) = curl(&server, &t, Some((&oulu.cert, &oulu.key))).await;
    assert!(ok, "curl failed: {text}");
    assert_eq!(text.trim(), "oulu\n200", "{text}");

    let unknown = &t.pki.unknown_client;
    let (ok, text) = curl(&server, &t, Some((&unknown.cert, &unknown.key))).await;
    assert!(ok, "{text}");
    assert_eq!(text.trim(), "unknown_participant\n403");

    let (ok, text) = curl(&server, &t, None).await;
    assert!(!ok, "curl without a certificate must fail: {text}");
    assert!(!text.contains("\n200"), "{text}");

    let expired = &t.pki.expired_client;
    let (ok, text) = curl(&server, &t, Some((&expired.cert, &expired.key))).await;
    assert!(!ok, "curl with an expired certificate must fail: {text}");
}

async fn s_client(server: &TestServer, t: &TestPki, args: &[&str]) -> String {
    let turku = &t.pki.participant("turku").expect("turku").client;
    let out = tokio::process::Command::new("openssl")
        .arg("s_client")
        .arg("-connect")
        .arg(format!("127.0.0.1:{}", server.port()))
        .arg("-CAfile")
        .arg(&t.pki.ca.cert)
        .arg("-verify_ip")
        .arg("127.0.0.1")
        .arg("-cert")
        .arg(&turku.cert)
        .arg("-key")
        .arg(&turku.key)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run openssl");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_sees_tls13_and_tls12_aead_and_no_cbc() {
    if !tool_available("openssl") {
        return;
    }
    let t = dev_pki();
    let server = gateway(&t).await;

    let out = s_client(&server, &t, &["-tls1_3"]).await;
    assert!(out.contains("TLSv1.3"), "{out}");
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");

    let out = s_client(
        &server,
        &t,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
    )
    .await;
    assert!(out.contains("ECDHE-ECDSA-AES128-GCM-SHA256"), "{out}");
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");

    let out = s_client(
        &server,
        &t,
        &[
            "-tls1_2",
            "-cipher",
            "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384",
        ],
    )
    .await;
    assert!(
        !out.contains("Cipher is ECDHE-ECDSA-AES128-SHA")
            && !out.contains("Cipher is ECDHE-ECDSA-AES256-SHA384"),
        "a CBC suite was negotiated: {out}"
    );
    assert!(
        out.to_lowercase().contains("handshake failure")
            || out.contains("Cipher is (NONE)")
            || out.contains("alert"),
        "{out}"
    );

    let out = s_client(&server, &t, &["-tls1_1"]).await;
    // openssl prints the protocol it offered even when the handshake fails; no cipher means
    // no session.
    assert!(
        out.contains("Cipher is (NONE)"),
        "TLS 1.1 must be refused: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rsa_client_certificate_issued_by_openssl_is_identified_whatever_the_attribute_order() {
    if !tool_available("openssl") {
        return;
    }
    let t = dev_pki();
    let dir = t.dir.path();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
    std::fs::write(
        dir.join("ext.cnf"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    )
    .expect("ext");
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        &p("rsa.key"),
    ]);
    // Attributes in the opposite order to the directory's `subject`.
    run(&[
        "req",
        "-new",
        "-key",
        &p("rsa.key"),
        "-subj",
        "/C=FI/O=Turun kaupunki/CN=turku-education",
        "-out",
        &p("rsa.csr"),
    ]);
    let ca_cert = t.pki.ca.cert.to_string_lossy().into_owned();
    let ca_key = t.pki.ca.key.to_string_lossy().into_owned();
    run(&[
        "x509",
        "-req",
        "-in",
        &p("rsa.csr"),
        "-CA",
        &ca_cert,
        "-CAkey",
        &ca_key,
        "-set_serial",
        "4242",
        "-days",
        "30",
        "-extfile",
        &p("ext.cnf"),
        "-out",
        &p("rsa.pem"),
    ]);
    let server = gateway(&t).await;
    let response = call(
        &server,
        &t.pki.ca.cert,
        Some((&dir.join("rsa.pem"), &dir.join("rsa.key"))),
    )
    .await
    .expect("call");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(body_of(&response), "turku");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_valued_rdn_matches_a_subject_rule_listing_its_parts() {
    if !tool_available("openssl") {
        return;
    }
    let t = dev_pki();
    let dir = t.dir.path();
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(
        dir.join("ext.cnf"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\nauthorityKeyIdentifier=keyid\n",
    )
    .expect("ext");
    run(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        &p("mv.key"),
    ]);
    run(&[
        "req",
        "-new",
        "-key",
        &p("mv.key"),
        "-multivalue-rdn",
        "-subj",
        "/C=FI/O=Espoon kaupunki/CN=espoo-education+OU=Perusopetus",
        "-out",
        &p("mv.csr"),
    ]);
    let (ca_cert, ca_key) = (
        t.pki.ca.cert.to_string_lossy().into_owned(),
        t.pki.ca.key.to_string_lossy().into_owned(),
    );
    run(&[
        "x509",
        "-req",
        "-in",
        &p("mv.csr"),
        "-CA",
        &ca_cert,
        "-CAkey",
        &ca_key,
        "-set_serial",
        "77",
        "-days",
        "30",
        "-extfile",
        &p("ext.cnf"),
        "-out",
        &p("mv.pem"),
    ]);
    let (ok, text) = {
        let out = std::process::Command::new("openssl")
            .args(["x509", "-in", &p("mv.pem"), "-noout", "-subject"])
            .output()
            .expect("openssl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert!(
        ok && text.contains(" + "),
        "expected a multi-valued RDN: {text}"
    );

    // espoo's rule names the four attributes as a flat list.
    let var = format!("SIIRTO__PARTICIPANTS__{}__SUBJECT", t.index_of("espoo"));
    let cfg = t.config(&[(
        var.as_str(),
        "OU=Perusopetus, CN=espoo-education, O=Espoon kaupunki, C=FI".to_owned(),
    )]);
    let tls = siirto_gateway::tls::server_config(&cfg).expect("server config");
    let directory = cfg.directory.clone();
    let server = spawn_server(tls, move |seen| match identify(&directory, &seen.peer) {
        Ok(who) => Reply::new(200, who.id.clone()),
        Err(e) => Reply::new(403, e.code()),
    })
    .await;
    let response = call(
        &server,
        &t.pki.ca.cert,
        Some((&dir.join("mv.pem"), &dir.join("mv.key"))),
    )
    .await
    .expect("call");
    assert_eq!(body_of(&response), "espoo", "{response}");
}

// --- Certificate policy beyond rustls-webpki: keyUsage, CA bundles, CRLs ------------------

use rcgen::{BasicConstraints, IsCa, KeyUsagePurpose};
use siirto_core::clock::SeededRandom;
use siirto_devkit::pki::{CertFiles, DevCa, TURKU_SUBJECT, Usage};

use net_tls::validity_now as validity;

/// A client certificate from the development CA with turku's subject and exactly these key
/// usages (an empty list: no keyUsage extension at all).
fn turku_with_key_usage(t: &TestPki, name: &str, usages: &[KeyUsagePurpose]) -> CertFiles {
    let usages = usages.to_vec();
    t.pki
        .issue_test_cert(
            name,
            TURKU_SUBJECT,
            Usage::Client,
            validity(),
            &SeededRandom::new(name.len() as u64),
            move |p| p.key_usages = usages,
        )
        .expect("issue")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaf_must_allow_digital_signature_when_it_has_a_key_usage() {
    let t = dev_pki();
    use KeyUsagePurpose::{DigitalSignature, KeyCertSign, KeyEncipherment};
    for (name, usages) in [
        ("ku-keycertsign-only", vec![KeyCertSign]),
        ("ku-keyencipherment-only", vec![KeyEncipherment]),
        // A CA:FALSE certificate asserting keyCertSign (x509-limbo rfc5280::leaf-ku-keycertsign).
        (
            "ku-signature-and-keycertsign",
            vec![DigitalSignature, KeyCertSign],
        ),
    ] {
        let c = turku_with_key_usage(&t, name, &usages);
        let server = gateway(&t).await;
        let outcome = call(&server, &t.pki.ca.cert, Some((&c.cert, &c.key))).await;
        if let Ok(response) = &outcome {
            assert!(
                !response.starts_with("HTTP/1.1"),
                "{name}: expected a refused handshake, got {response}"
            );
        }
        let reason = server.handshake_error().await;
        assert!(reason.contains("keyUsage"), "{name}: {reason}");
        assert!(server.requests().is_empty(), "{name}");
    }
    for (name, usages) in [
        ("ku-signature", vec![DigitalSignature]),
        (
            "ku-signature-and-encipherment",
            vec![DigitalSignature, KeyEncipherment],
        ),
        ("ku-absent", vec![]),
    ] {
        let c = turku_with_key_usage(&t, name, &usages);
        let server = gateway(&t).await;
        let response = call(&server, &t.pki.ca.cert, Some((&c.cert, &c.key)))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(response.starts_with("HTTP/1.1 200"), "{name}: {response}");
        assert_eq!(body_of(&response), "turku", "{name}");
    }
}

/// A root CA without a path length limit (the development CA allows no intermediates), written
/// as `NAME.pem`, and an intermediate under it with the given key usages.
fn root_and_intermediate(
    dir: &Path,
    name: &str,
    intermediate_usages: Vec<KeyUsagePurpose>,
) -> (CertFiles, DevCa) {
    let (from, to) = validity();
    let random = SeededRandom::new(7);
    let root = DevCa::generate_adjusted(
        &format!("CN={name} Root,O=Siirto tests,C=FI"),
        from,
        to,
        &random,
        |p| p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained),
    )
    .expect("root");
    let files = root.write(dir, name).expect("write root");
    let intermediate = root
        .issue_ca(
            &format!("CN={name} Issuing CA,O=Siirto tests,C=FI"),
            from,
            to,
            &random,
            |p| p.key_usages = intermediate_usages,
        )
        .expect("intermediate");
    (files, intermediate)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ca_of_the_client_chain_must_allow_certificate_signing() {
    use KeyUsagePurpose::{CrlSign, DigitalSignature, KeyCertSign};
    let t = dev_pki();
    let dir = t.dir.path();
    for (name, usages, accepted) in [
        ("good", vec![KeyCertSign, CrlSign], true),
        ("no-ku", vec![], true),
        ("bad", vec![DigitalSignature, CrlSign], false),
    ] {
        let (root, intermediate) = root_and_intermediate(dir, name, usages);
        let (from, to) = validity();
        let leaf = intermediate
            .issue_client_cert(TURKU_SUBJECT, from, to, &SeededRandom::new(8))
            .expect("leaf")
            .write(dir, &format!("{name}-leaf"))
            .expect("write leaf");
        // No CRLs here: with CRLs, an intermediate's certificates need a CRL of their own.
        let g = &t.pki.gateway_server;
        let directory = t.config(&[]).directory.clone();
        let server = spawn_server(
            net_tls::server_tls(&g.cert, &g.key, &root.cert),
            move |seen| match identify(&directory, &seen.peer) {
                Ok(who) => Reply::new(200, who.id.clone()),
                Err(e) => Reply::new(403, e.code()),
            },
        )
        .await;
        let outcome = call(&server, &t.pki.ca.cert, Some((&leaf.cert, &leaf.key))).await;
        if accepted {
            let response = outcome.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(body_of(&response), "turku", "{name}: {response}");
        } else {
            if let Ok(response) = &outcome {
                assert!(!response.starts_with("HTTP/1.1"), "{name}: {response}");
            }
            let reason = server.handshake_error().await;
            assert!(reason.contains("keyCertSign"), "{name}: {reason}");
            assert!(reason.contains("Issuing CA"), "{name}: {reason}");
            assert!(server.requests().is_empty());
        }
    }
}

/// What the generated configuration with `overrides` says when it does not load.
fn config_refused(t: &TestPki, overrides: &[(&str, String)]) -> String {
    let text = std::fs::read_to_string(&t.pki.config).expect("read siirto.toml");
    let env = overrides.iter().map(|(k, v)| ((*k).to_owned(), v.clone()));
    match siirto_gateway::config::Config::from_toml(&text, &t.pki.config, env) {
        Ok(_) => panic!("the configuration must not load with {overrides:?}"),
        Err(e) => e.to_string(),
    }
}

fn path_text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A CRL naming the development CA as its issuer but signed by another key: a CA with the same
/// name and a key of its own.
fn forged_crl(t: &TestPki) -> std::path::PathBuf {
    let (from, to) = validity();
    let impostor = DevCa::generate(
        "CN=Siirto Development CA,O=Siirto (development only),C=FI",
        from,
        to,
        &SeededRandom::new(99),
    )
    .expect("impostor");
    let path = t.dir.path().join("forged.crl");
    std::fs::write(&path, impostor.crl(&[], from, to, 2).expect("crl")).expect("write");
    path
}

#[test]
fn a_crl_not_signed_by_its_issuer_is_refused_at_load_naming_the_file() {
    let t = dev_pki();
    let forged = forged_crl(&t);
    let text = config_refused(&t, &[("SIIRTO__GATEWAY__CRL", path_text(&forged))]);
    assert!(text.contains("gateway.crl[0]"), "{text}");
    assert!(text.contains("forged.crl"), "{text}");
    assert!(text.contains("signature"), "{text}");
    // The same at TLS setup from explicit files.
    let g = &t.pki.gateway_server;
    let err =
        siirto_gateway::tls::server_config_from_files(&g.cert, &g.key, &t.pki.ca.cert, &[forged])
            .expect_err("forged CRL");
    assert!(err.to_string().contains("forged.crl"), "{err}");
}

#[test]
fn a_crl_of_an_issuer_outside_client_ca_or_a_second_crl_of_one_issuer_is_refused_at_load() {
    let t = dev_pki();
    let (from, to) = validity();
    let other = t.pki.load_other_ca().expect("other ca");
    let foreign = t.dir.path().join("foreign.crl");
    std::fs::write(&foreign, other.crl(&[], from, to, 1).expect("crl")).expect("write");
    let text = config_refused(&t, &[("SIIRTO__GATEWAY__CRL", path_text(&foreign))]);
    assert!(text.contains("gateway.crl[0]"), "{text}");
    assert!(text.contains("foreign.crl"), "{text}");
    assert!(text.contains("Unrelated Development CA"), "{text}");
    assert!(text.contains("client_ca"), "{text}");

    let newer = t.dir.path().join("newer.crl");
    let ca = t.pki.load_ca().expect("ca");
    std::fs::write(&newer, ca.crl(&[], from, to, 5).expect("crl")).expect("write");
    let both = format!("{},{}", path_text(&t.pki.crl), path_text(&newer));
    let text = config_refused(&t, &[("SIIRTO__GATEWAY__CRL", both)]);
    assert!(text.contains("gateway.crl[1]"), "{text}");
    assert!(text.contains("newer.crl"), "{text}");
    assert!(text.contains("participants.crl"), "{text}");
}

#[test]
fn ca_bundles_must_hold_ca_certificates_that_may_sign_certificates() {
    use KeyUsagePurpose::{CrlSign, DigitalSignature};
    let t = dev_pki();
    let dir = t.dir.path();
    let (from, to) = validity();
    let random = SeededRandom::new(3);
    let no_cert_sign = DevCa::generate_adjusted("CN=No Cert Sign CA", from, to, &random, |p| {
        p.key_usages = vec![DigitalSignature, CrlSign]
    })
    .expect("ca")
    .write(dir, "no-cert-sign-ca")
    .expect("write");
    let no_key_usage = DevCa::generate_adjusted("CN=No Key Usage CA", from, to, &random, |p| {
        p.key_usages = vec![]
    })
    .expect("ca")
    .write(dir, "no-key-usage-ca")
    .expect("write");
    // x509-limbo rfc5280::root-missing-basic-constraints.
    let no_basic_constraints =
        DevCa::generate_adjusted("CN=No Basic Constraints CA", from, to, &random, |p| {
            p.is_ca = IsCa::NoCa
        })
        .expect("ca")
        .write(dir, "no-bc-ca")
        .expect("write");
    // A leaf (with its CA after it) given as a CA bundle.
    let leaf_bundle = t.pki.gateway_client.cert.clone();
    let turku = t.index_of("turku");
    let server_ca = format!("SIIRTO__PARTICIPANTS__{turku}__SERVER_CA");
    for (file, subject) in [
        (&no_cert_sign.cert, "No Cert Sign CA"),
        (&no_key_usage.cert, "No Key Usage CA"),
        (&no_basic_constraints.cert, "No Basic Constraints CA"),
        (&leaf_bundle, "siirto-gateway"),
    ] {
        let name = file
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let text = config_refused(&t, &[("SIIRTO__GATEWAY__CLIENT_CA", path_text(file))]);
        assert!(text.contains("gateway.client_ca"), "{text}");
        assert!(text.contains(&name) && text.contains(subject), "{text}");
        let text = config_refused(&t, &[(server_ca.as_str(), path_text(file))]);
        assert!(
            text.contains(&format!("participants[{turku}].server_ca")),
            "{text}"
        );
        assert!(text.contains(&name) && text.contains(subject), "{text}");
        // And at TLS setup from explicit files.
        let err =
            siirto_gateway::tls::client_config_from_files(file, None).expect_err("not a CA bundle");
        assert!(err.to_string().contains(subject), "{err}");
    }
}

#[test]
fn siirto_serve_refuses_a_forged_crl_before_listening() {
    let t = dev_pki();
    let forged = forged_crl(&t);
    let log = t.dir.path().join("serve.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_siirto"))
        .args(["serve", "--config"])
        .arg(&t.pki.config)
        .env("SIIRTO__GATEWAY__CRL", &forged)
        // Should it start after all, it must not take the development ports.
        .env("SIIRTO__GATEWAY__LISTEN", "127.0.0.1:0")
        .env("SIIRTO__GATEWAY__ADMIN_LISTEN", "127.0.0.2:0")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("run siirto serve");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "siirto serve started with a forged CRL:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(&log).expect("log");
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("gateway.crl[0]"), "{stderr}");
    assert!(stderr.contains("forged.crl"), "{stderr}");
}

#[test]
fn crl_stale_is_refuse_or_warn() {
    let t = dev_pki();
    let text = config_refused(
        &t,
        &[("SIIRTO__GATEWAY__CRL_STALE", "sometimes".to_owned())],
    );
    assert!(text.contains("gateway.crl_stale"), "{text}");
    assert!(
        text.contains("\"sometimes\"") && text.contains("refuse, warn"),
        "{text}"
    );
    t.config(&[("SIIRTO__GATEWAY__CRL_STALE", "warn".to_owned())]);
    t.config(&[("SIIRTO__GATEWAY__CRL_STALE", "refuse".to_owned())]);
}

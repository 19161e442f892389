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
use siirto::identity::identify;
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
    let tls = siirto::tls::server_config(&cfg).expect("server config");
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
    let cfg = siirto::tls::client_config_from_files(ca, client).expect("client config");
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
        let cfg =
            siirto::tls::client_config_from_files(&t.pki.ca.cert, Some((&turku.cert, &turku.key)))
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
    let tls = siirto::tls::server_config(&cfg).expect("server config");
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

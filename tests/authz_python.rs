//! Tokens signed by a non-Rust tool (`tests/tools/sign_jws.py`, Python `cryptography`), with
//! keys and JWKS files it made, verified by the gateway's code.
//!
//! When Python or the module is missing the tests print `SKIPPED:` and pass, unless
//! `SIIRTO_REQUIRE_TOOLS=1`, when they fail. `SIIRTO_PYTHON` names the interpreter.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use siirto_core::authz::{
    AuthzError, IssuerKeys, Policy, verify_authorization, verify_transparency,
};
use siirto_core::clock::Timestamp;
use siirto_core::config::{ConsentConfig, IssuerConfig};
use siirto_core::consent::Catalog;
use siirto_core::identity::{Directory, IdentityRule, Participant, Role};

const ISSUER: &str = "https://eservice.turku.fi";
const GATEWAY: &str = "siirto.example.fi";
const NOW: i64 = 1_795_448_460;

fn python() -> String {
    std::env::var("SIIRTO_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Whether Python with `modules` is here; prints a loud `SKIPPED:` line when not.
fn tools_available(test: &str, modules: &str) -> bool {
    let ok = Command::new(python())
        .args(["-c", &format!("import {modules}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        let why = format!("{} with module(s) {modules} is not available", python());
        if std::env::var("SIIRTO_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("{test}: {why} and SIIRTO_REQUIRE_TOOLS=1");
        }
        // Written past the test harness's capture so it is seen.
        let _ = std::io::stderr().write_all(format!("SKIPPED: {test}: {why}\n").as_bytes());
    }
    ok
}

fn tool(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/tools")
        .join(name)
}

fn sign_jws(args: &[&str]) -> String {
    let out = Command::new(python())
        .arg(tool("sign_jws.py"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sign_jws.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

struct Keys {
    dir: tempfile::TempDir,
    keys: IssuerKeys,
}

impl Keys {
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// One key of each type, made by Python, in one JWKS file loaded the way the gateway does.
fn python_keys() -> Keys {
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("issuer.jwks.json").display().to_string();
    for (ty, kid) in [("ec", "ec-py"), ("ed25519", "ed-py"), ("rsa", "rsa-py")] {
        let key = dir.path().join(format!("{kid}.pem")).display().to_string();
        sign_jws(&[
            "keygen",
            "--type",
            ty,
            "--kid",
            kid,
            "--key-out",
            &key,
            "--jwks-out",
            &jwks,
            "--append",
        ]);
    }
    let keys = IssuerKeys::load(&[IssuerConfig {
        id: ISSUER.into(),
        jwks: PathBuf::from(&jwks),
    }])
    .unwrap();
    assert_eq!(keys.key_count(ISSUER), 3);
    Keys { dir, keys }
}

fn policy() -> Policy {
    Policy {
        gateway_id: GATEWAY.into(),
        max_lifetime: Duration::from_secs(900),
        skew: Duration::from_secs(60),
        consent: ConsentConfig::default(),
    }
}

/// The consent texts: the gateway's own.
fn texts() -> &'static Catalog {
    siirto_gateway::http::pages::consent_catalog()
}

fn eservice() -> Participant {
    Participant {
        id: "turku-eservice".into(),
        roles: vec![Role::Eservice],
        identity: IdentityRule::SanDns("eservice.turku.fi".into()),
        endpoint: None,
        name: None,
        statutory: None,
        redirect_uris: Vec::new(),
    }
}

fn authz_claims() -> String {
    format!(
        r#"{{"iss":"{ISSUER}","aud":["{GATEWAY}"],"sub":"131052-308T","jti":"py-1","src":"helsinki","dst":"turku","scope":"identity achievements","purpose":"school-change"}}"#
    )
}

fn transparency_claims() -> String {
    format!(
        r#"{{"iss":"{ISSUER}","aud":"{GATEWAY}","sub":"1.2.246.562.24.10000000008","jti":"py-t","scope":"transparency"}}"#
    )
}

fn sign(k: &Keys, alg: &str, kid: &str, typ: &str, claims: &str, extra: &[&str]) -> String {
    let key = k.path(&format!("{kid}.pem"));
    let now = NOW.to_string();
    let mut args = vec![
        "sign",
        "--key",
        &key,
        "--alg",
        alg,
        "--kid",
        kid,
        "--typ",
        typ,
        "--claims",
        claims,
        "--now",
        &now,
        "--lifetime",
        "300",
    ];
    args.extend_from_slice(extra);
    sign_jws(&args)
}

fn now() -> Timestamp {
    Timestamp::from_secs(NOW + 1)
}

#[test]
fn python_signed_tokens_verify_with_every_algorithm() {
    if !tools_available(
        "python_signed_tokens_verify_with_every_algorithm",
        "cryptography",
    ) {
        return;
    }
    let k = python_keys();
    for (alg, kid) in [
        ("ES256", "ec-py"),
        ("EdDSA", "ed-py"),
        ("RS256", "rsa-py"),
        ("PS256", "rsa-py"),
    ] {
        let t = sign(
            &k,
            alg,
            kid,
            "siirto-transparency+jwt",
            &transparency_claims(),
            &[],
        );
        let v = verify_transparency(&t, &k.keys, &policy(), now())
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(v.subject().as_str(), "1.2.246.562.24.10000000008");
        assert_eq!(v.key_id(), kid);
        assert_eq!(v.algorithm().as_str(), alg);
        assert_eq!(v.expires_at(), Timestamp::from_secs(NOW + 300));

        // An authorization passes header, signature and claim checks; with no participants
        // configured, the first thing refused is `src`.
        let a = sign(&k, alg, kid, "siirto-authz+jwt", &authz_claims(), &[]);
        let e = verify_authorization(
            &a,
            &k.keys,
            &policy(),
            &Directory::default(),
            texts(),
            &eservice(),
            now(),
        )
        .unwrap_err();
        assert_eq!(
            e,
            AuthzError::UnknownParticipant {
                claim: "src",
                id: "helsinki".into()
            },
            "{alg}"
        );
    }
}

#[test]
fn python_made_attacks_are_refused() {
    if !tools_available("python_made_attacks_are_refused", "cryptography") {
        return;
    }
    let k = python_keys();
    let authz = |token: &str| {
        verify_authorization(
            token,
            &k.keys,
            &policy(),
            &Directory::default(),
            texts(),
            &eservice(),
            now(),
        )
        .unwrap_err()
        .code()
    };
    let jwks = k.path("issuer.jwks.json");
    let public_pem = k.path("ec-public.pem");
    // The EC public key as PEM, to use as an HMAC secret.
    let out = Command::new(python())
        .args([
            "-c",
            "import sys;from cryptography.hazmat.primitives import serialization as s;\
             k=s.load_pem_private_key(open(sys.argv[1],'rb').read(),None);\
             open(sys.argv[2],'wb').write(k.public_key().public_bytes(s.Encoding.PEM,s.PublicFormat.SubjectPublicKeyInfo))",
            &k.path("ec-py.pem"),
            &public_pem,
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let now = NOW.to_string();
    let claims = authz_claims();
    let base = [
        "sign",
        "--kid",
        "ec-py",
        "--claims",
        &claims,
        "--now",
        &now,
        "--lifetime",
        "300",
    ];
    let with = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        sign_jws(&a)
    };
    assert_eq!(
        authz(&with(&["--alg", "HS256", "--secret-file", &public_pem])),
        "unsupported_alg"
    );
    assert_eq!(
        authz(&with(&["--alg", "HS256", "--secret-file", &jwks])),
        "unsupported_alg"
    );
    assert_eq!(authz(&with(&["--alg", "none"])), "unsupported_alg");
    let key = k.path("ec-py.pem");
    assert_eq!(
        authz(&with(&[
            "--alg",
            "ES256",
            "--key",
            &key,
            "--header",
            r#"{"jku":"https://evil.example/jwks.json"}"#
        ])),
        "forbidden_header"
    );
    assert_eq!(
        authz(&with(&[
            "--alg",
            "ES256",
            "--key",
            &key,
            "--header",
            r#"{"kid":null}"#
        ])),
        "missing_kid"
    );
    assert_eq!(
        authz(&with(&["--alg", "ES256", "--key", &key, "--typ", "JWT"])),
        "wrong_typ"
    );
    // An RSA key's kid on an ES256 token.
    assert_eq!(
        authz(&with(&[
            "--alg",
            "ES256",
            "--key",
            &key,
            "--header",
            r#"{"kid":"rsa-py"}"#
        ])),
        "unsupported_alg"
    );
    // Signed by the Ed25519 key but claiming the EC key's kid and alg.
    let ed_key = k.path("ed-py.pem");
    assert_eq!(
        authz(&with(&[
            "--alg",
            "EdDSA",
            "--key",
            &ed_key,
            "--header",
            r#"{"kid":"ed-py"}"#,
            "--claims",
            &claims.replace("py-1", "py-2")
        ])),
        "unknown_participant"
    );
    // A changed payload under the original signature.
    let good = with(&["--alg", "ES256", "--key", &key]);
    let other = with(&["--alg", "ES256", "--key", &key, "--jti-random"]);
    let g: Vec<&str> = good.split('.').collect();
    let o: Vec<&str> = other.split('.').collect();
    assert_eq!(
        authz(&format!("{}.{}.{}", g[0], o[1], g[2])),
        "bad_signature"
    );
    // Neither kind of token passes for the other.
    let e =
        verify_transparency(&good, &k.keys, &policy(), Timestamp::from_secs(NOW + 1)).unwrap_err();
    assert_eq!(e.code(), "wrong_typ");
}

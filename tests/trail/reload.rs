//! Key rotation: `POST /v1/admin/reload` (operators) re-reads the issuers' JWKS files; the new
//! key signs accepted authorizations at once and the retired one is refused; a broken file
//! changes nothing; every reload is audited.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use siirto_devkit::eservice::AUTHORIZATION_TYP;

use crate::support::{OPERATOR, STUDENT, deliver, operator, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_keys_rotate_on_reload_and_every_reload_is_audited() {
    let bed = start(None, None).await;
    deliver(&bed, STUDENT, "identity").await;
    bed.sources["turku"].insert(STUDENT, crate::support::record_for(STUDENT));
    let eservice = bed.client("eservice").unwrap();
    let op = operator(&bed);

    // The issuer's new key, published in its JWKS file in place of the old one.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let point = key.public_key_raw();
    assert_eq!((point.len(), point[0]), (65, 4));
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": "rotated-2026-11",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..]),
    });
    let signed_by_new = || {
        let claims = bed
            .authorization(STUDENT, "turku", "espoo", "identity")
            .claims();
        siirto_devkit::eservice::sign(
            &claims,
            "ES256",
            AUTHORIZATION_TYP,
            "rotated-2026-11",
            key.serialize_pem().as_bytes(),
        )
        .unwrap()
    };
    let signed_by_old = || {
        bed.sign(
            &bed.authorization(STUDENT, "turku", "espoo", "identity")
                .claims(),
        )
        .unwrap()
    };
    let jwks_path = bed.config.issuers[0].jwks.clone();
    std::fs::write(&jwks_path, json!({ "keys": [jwk] }).to_string()).unwrap();

    // Until the reload the gateway keeps the keys it loaded.
    let a = eservice.submit(&signed_by_new()).await.unwrap();
    assert_eq!(
        (a.status.as_u16(), a.error_code().as_deref()),
        (401, Some("unknown_kid"))
    );
    // Only operators reload.
    let a = eservice
        .post_json("/v1/admin/reload", &Value::Null)
        .await
        .unwrap();
    assert_eq!(
        (a.status.as_u16(), a.error_code().as_deref()),
        (403, Some("forbidden_role"))
    );
    let a = op
        .post_json("/v1/admin/reload", &Value::Null)
        .await
        .unwrap();
    assert_eq!(a.status.as_u16(), 200, "{}", a.json());
    assert_eq!(a.json(), json!({ "reloaded": "issuer_keys", "keys": 1 }));

    let a = eservice.submit(&signed_by_new()).await.unwrap();
    assert_eq!(a.status.as_u16(), 202, "{}", a.json());
    let a = eservice.submit(&signed_by_old()).await.unwrap();
    assert_eq!(
        (a.status.as_u16(), a.error_code().as_deref()),
        (401, Some("unknown_kid"))
    );

    // A broken file: refused, and the keys in force stay.
    std::fs::write(&jwks_path, "{\"keys\": [{\"kty\": \"EC\"}]}").unwrap();
    let a = op
        .post_json("/v1/admin/reload", &Value::Null)
        .await
        .unwrap();
    assert_eq!(
        (a.status.as_u16(), a.error_code().as_deref()),
        (422, Some("invalid_jwks")),
        "{}",
        a.json()
    );
    let a = eservice.submit(&signed_by_new()).await.unwrap();
    assert_eq!(a.status.as_u16(), 202, "{}", a.json());

    let gw = bed.gateway.clone().unwrap();
    let reloads = gw
        .store
        .audit_query(&siirto_gateway::store::AuditFilter {
            action: Some("config.reload".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .entries;
    let seen: Vec<(&str, &str, &str, Option<&str>)> = reloads
        .iter()
        .map(|e| {
            (
                e.event.actor.as_str(),
                e.event.outcome.as_str(),
                e.event.detail["via"].as_str(),
                e.event.detail.get("keys").map(String::as_str),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (OPERATOR, "ok", "api", Some("1")),
            (OPERATOR, "invalid_jwks", "api", None)
        ]
    );
    bed.stop().await;
}

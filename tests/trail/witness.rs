//! Witnessed audit (C2SP tlog-witness, tlog-cosignature): two gateways, each with its own
//! store and audit key, witness each other's logs over mutual TLS. Cosignatures accumulate
//! and are served with the checkpoint; a forged checkpoint is 403, an inconsistent proof 422,
//! and a gateway restarted on an older copy of its database is refused with 409 — the
//! conflict audited on both sides. The cosignatures are checked by an independent Python
//! implementation of `cosignature/v1` written from the spec.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{Method, StatusCode};
use ring::rand::SystemRandom as RingRandom;
use ring::signature::Ed25519KeyPair;
use siirto_core::audit::witness::{CosignatureVerifier, Submission, count_cosigners};
use siirto_core::audit::{AuditEvent, AuditSigningKey, CheckpointSigner};
use siirto_core::clock::{SystemClock, SystemRandom, Timestamp};
use siirto_core::config::{AuditWitness, WitnessConfig, WitnessedLog};
use siirto_core::identity::{Directory, IdentityRule, Participant, Role, parse_subject};
use siirto_devkit::client::MtlsClient;
use siirto_devkit::testbed::{Instance, Testbed, TestbedOptions};
use siirto_gateway::config::Config;
use siirto_gateway::state::Gateway;

use crate::support::{OPERATOR, python, python_available, siirto, stdout};

/// A fresh Ed25519 key as PKCS#8 PEM in `dir/name.pem`.
fn ed25519_key(dir: &Path, name: &str) -> (PathBuf, AuditSigningKey) {
    let der = Ed25519KeyPair::generate_pkcs8(&RingRandom::new()).expect("key");
    let b64 = STANDARD.encode(der.as_ref());
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n");
    let path = dir.join(format!("{name}.pem"));
    std::fs::write(&path, &pem).expect("write key");
    (
        path,
        AuditSigningKey::from_pkcs8_pem(&pem).expect("parse key"),
    )
}

/// One city's gateway of the test: its configuration pieces.
struct City {
    id: &'static str,
    db: String,
    audit: (PathBuf, AuditSigningKey),
    witness: (PathBuf, AuditSigningKey),
    listeners: Option<siirto_gateway::start::Listeners>,
    port: u16,
}

impl City {
    async fn new(dir: &Path, id: &'static str) -> City {
        let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = api.local_addr().unwrap().port();
        City {
            id,
            db: format!("sqlite://{}", dir.join(format!("{id}.db")).display()),
            audit: ed25519_key(dir, &format!("{id}-audit")),
            witness: ed25519_key(dir, &format!("{id}-witness")),
            listeners: Some(siirto_gateway::start::Listeners { api, admin }),
            port,
        }
    }

    fn origin(&self) -> String {
        format!("{}/audit", self.id)
    }

    fn log_key(&self) -> String {
        self.audit.1.public_key().note_verifier_key(&self.origin())
    }

    fn witness_key(&self) -> String {
        self.witness
            .1
            .public_key()
            .typed_verifier_key(&format!("{}/witness", self.id), 0x04)
    }
}

/// `template` (the testbed's) turned into `city`'s configuration, witnessing `peer`'s log and
/// asking `peer` to cosign its own. The peer gateway is known by the gateways' shared client
/// certificate of the dev PKI, with the role `log`.
fn config_for(template: &Config, bed: &Testbed, city: &City, peer: &City) -> Config {
    let mut c = template.clone();
    c.gateway.id = city.id.to_owned();
    c.gateway.database_url = city.db.clone();
    c.gateway.audit_key = city.audit.0.clone();
    c.gateway.listen = format!("127.0.0.1:{}", city.port).parse().unwrap();
    c.audit.checkpoint_every = 3;
    c.audit.checkpoint_interval = Duration::from_secs(1);
    c.audit.witnesses = vec![AuditWitness {
        url: format!("https://127.0.0.1:{}/witness", peer.port),
        host: "127.0.0.1".into(),
        port: peer.port,
        key: peer.witness_key(),
        server_ca: bed.pki.ca.cert.clone(),
    }];
    c.witness = WitnessConfig {
        key: Some(city.witness.0.clone()),
        logs: vec![WitnessedLog {
            origin: peer.origin(),
            key: peer.log_key(),
        }],
    };
    let mut participants: Vec<Participant> = c.directory.iter().cloned().collect();
    participants.push(Participant {
        id: format!("{}-gateway", peer.id),
        roles: vec![Role::Log],
        identity: IdentityRule::Subject(parse_subject("CN=siirto-gateway,O=Siirto,C=FI").unwrap()),
        endpoint: None,
        name: None,
        statutory: None,
        redirect_uris: Vec::new(),
    });
    c.directory = Directory::from_participants(participants);
    c
}

async fn open(config: Config) -> Arc<Gateway> {
    Gateway::open(
        config,
        Arc::new(SystemClock),
        Arc::new(SystemRandom::new()),
        siirto_devkit::testbed::build_info(),
    )
    .await
    .expect("gateway opens")
}

async fn write_entries(gw: &Gateway, n: usize) {
    let events = (0..n)
        .map(|i| AuditEvent::new(gw.now(), "test", "test.entry", format!("n{i}")))
        .collect();
    gw.store.append_audit(events).await.expect("audit written");
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The latest checkpoint's size and how many cosignatures it has.
async fn latest_cosigned(gw: &Gateway) -> (u64, usize) {
    let Some(row) = gw.store.latest_checkpoint().await.unwrap() else {
        return (0, 0);
    };
    let n = gw.store.cosignatures(row.tree_size).await.unwrap().len();
    (row.tree_size, n)
}

fn client_for(bed: &Testbed, port: u16, identity: (&Path, &Path)) -> MtlsClient {
    MtlsClient::new(
        &format!("https://127.0.0.1:{port}"),
        &bed.pki.ca.cert,
        Some(identity),
    )
    .unwrap()
}

async fn post(client: &MtlsClient, body: String) -> (StatusCode, String, String) {
    let a = client
        .send(
            Method::POST,
            "/witness/add-checkpoint",
            &[],
            Some(Bytes::from(body)),
        )
        .await
        .unwrap();
    let ct = a
        .headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (a.status, ct, String::from_utf8_lossy(&a.body).into_owned())
}

fn metric(gw: &Gateway, prefix: &str) -> f64 {
    gw.metrics
        .render()
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0)
}

async fn conflicts_audited(gw: &Gateway) -> usize {
    gw.store
        .audit_range(0, 100_000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.event.action == "witness.conflict")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_witness_each_other_and_refuse_forgery_bad_proofs_and_rollback() {
    let bed = Testbed::start(TestbedOptions {
        in_process_gateway: false,
        ..TestbedOptions::default()
    })
    .await
    .expect("testbed");
    let dir = tempfile::tempdir().unwrap();
    let mut a = City::new(dir.path(), "kaupunki-a").await;
    let mut b = City::new(dir.path(), "kaupunki-b").await;
    // The witness B on PostgreSQL when SIIRTO_TEST_POSTGRES is set (A stays on SQLite: its
    // rollback copies the database file).
    let pg = siirto_gateway::store::testdb::TestDb::postgres()
        .await
        .expect("SIIRTO_TEST_POSTGRES names a usable server");
    if let Some(pg) = &pg {
        b.db = pg.url.clone();
    }
    eprintln!(
        "witness B stores in {}",
        if pg.is_some() { "postgres" } else { "sqlite" }
    );
    let config_a = config_for(&bed.config, &bed, &a, &b);
    let config_b = config_for(&bed.config, &bed, &b, &a);
    let gw_a = open(config_a.clone()).await;
    let gw_b = open(config_b.clone()).await;
    // B is down at first (its port refuses connections): A's first checkpoint waits for it.
    drop(b.listeners.take());
    let inst_a = Instance::start_on(gw_a.clone(), a.listeners.take().unwrap());
    write_entries(&gw_a, 4).await;
    let written = gw_a.store.audit_len().await.unwrap();
    wait_until("A's first checkpoint", || async {
        latest_cosigned(&gw_a).await.0 >= written
    })
    .await;
    let first = latest_cosigned(&gw_a).await.0;
    let b_listeners = siirto_gateway::start::Listeners {
        api: tokio::net::TcpListener::bind(("127.0.0.1", b.port))
            .await
            .expect("B's port again"),
        admin: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    };
    assert_eq!(
        latest_cosigned(&gw_a).await,
        (first, 0),
        "cosigned while B was down"
    );
    let inst_b = Instance::start_on(gw_b.clone(), b_listeners);
    wait_until(
        "B, once up, cosigns A's checkpoint made while it was down",
        || async { latest_cosigned(&gw_a).await == (first, 1) },
    )
    .await;

    // Cosignatures accumulate on both sides, checkpoint after checkpoint.
    let mut sizes_a = Vec::new();
    for round in 0..3 {
        write_entries(&gw_a, 4).await;
        write_entries(&gw_b, 4).await;
        for gw in [&gw_a, &gw_b] {
            let written = gw.store.audit_len().await.unwrap();
            wait_until(&format!("round {round} cosigned"), || async {
                let (size, n) = latest_cosigned(gw).await;
                size >= written && n == 1
            })
            .await;
        }
        sizes_a.push(latest_cosigned(&gw_a).await.0);
    }
    assert!(sizes_a.windows(2).all(|w| w[0] < w[1]), "{sizes_a:?}");
    let witnessed_by_b = gw_b.store.witnessed(&a.origin()).await.unwrap().unwrap();
    assert_eq!(witnessed_by_b.size, *sizes_a.last().unwrap());
    let b_verifier = CosignatureVerifier::from_verifier_key(&b.witness_key()).unwrap();
    let a_verifier = CosignatureVerifier::from_verifier_key(&a.witness_key()).unwrap();

    // A's checkpoint with its cosignature, as GET /v1/audit/checkpoint serves it.
    let op = bed.pki.participant(OPERATOR).unwrap();
    let operator_a = client_for(&bed, a.port, (&op.client.cert, &op.client.key));
    let served = operator_a
        .get("/v1/audit/checkpoint", &[])
        .await
        .unwrap()
        .json();
    let note = served["note"].as_str().unwrap().to_owned();
    assert_eq!(served["cosignatures"][0]["witness"], "kaupunki-b/witness");
    // One witness configured and no `witness_quorum`: the quorum is that one, and it is met.
    assert_eq!(
        served["witnessed"],
        serde_json::json!({"quorum": 1, "cosigned": 1, "met": true})
    );
    assert_eq!(
        count_cosigners(&note, std::slice::from_ref(&b_verifier)).unwrap(),
        1
    );
    assert_eq!(
        count_cosigners(&note, std::slice::from_ref(&a_verifier)).unwrap(),
        0
    );
    assert!(
        metric(
            &gw_a,
            "siirto_audit_witness_size{witness=\"kaupunki-b/witness\"}"
        ) >= sizes_a[0] as f64
    );

    // The cosignature checked by Python `cryptography`, from the tlog-cosignature spec.
    python_checks_cosignature(&note, &b.witness_key());

    // The operator page shows the witness's latest cosigned size.
    let page = operator_a
        .get("/operator", &[("accept-language", "en")])
        .await
        .unwrap();
    let page = String::from_utf8_lossy(&page.body).into_owned();
    let cosigned = gw_a.store.witness_peers().await.unwrap()[0].cosigned_size;
    assert!(
        page.contains(&format!(
            "Witness kaupunki-b/witness has cosigned this log up to tree size {cosigned}."
        )),
        "{page}"
    );

    // Offline: `siirto audit verify-proof --witness-key --quorum`.
    let proof = operator_a
        .get("/v1/audit/proof/inclusion?index=0", &[])
        .await
        .unwrap()
        .json();
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let note_file = file("checkpoint.txt", &note);
    let proof_file = file("proof.json", &proof.to_string());
    let key_file = file("a.pem", &a.audit.1.public_key().to_spki_pem());
    let b_key = b.witness_key();
    let a_key = a.witness_key();
    let verify = |extra: &[&str]| {
        let mut args = vec![
            "audit",
            "verify-proof",
            "--checkpoint",
            &note_file,
            "--public-key",
            &key_file,
            "--proof",
            &proof_file,
        ];
        args.extend_from_slice(extra);
        let out = siirto(&args);
        (out.status.code().unwrap_or(-1), stdout(&out))
    };
    let (code, out) = verify(&["--witness-key", &b_key, "--quorum", "1"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("cosigned by 1 of the 1 witnesses given"),
        "{out}"
    );
    let (code, out) = verify(&["--witness-key", &b_key, "--witness-key", &a_key]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("NOT cosigned by a quorum: 1 of the 2"),
        "{out}"
    );
    let (code, _) = verify(&[
        "--witness-key",
        &b_key,
        "--witness-key",
        &a_key,
        "--quorum",
        "1",
    ]);
    assert_eq!(code, 0);
    let (code, _) = verify(&["--witness-key", "not-a-key"]);
    assert_eq!(code, 2);

    // Witness endpoint refusals, asked as A's gateway (role log) and as the operator.
    let gateway_client = &bed.pki.gateway_client;
    let as_log = client_for(&bed, b.port, (&gateway_client.cert, &gateway_client.key));
    let stored = gw_b.store.witnessed(&a.origin()).await.unwrap().unwrap();
    let forger = CheckpointSigner::new(ed25519_key(dir.path(), "forger").1, &a.origin()).unwrap();
    let forged = forger
        .sign(stored.size + 2, [7; 32], Timestamp::from_millis(1_000))
        .into_string();
    let sub = |old: u64, proof: Vec<[u8; 32]>, note: String| {
        Submission {
            old_size: old,
            proof,
            note,
        }
        .to_body()
    };
    let (status, _, _) = post(&as_log, sub(stored.size, vec![], forged.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "forged checkpoint");
    let real_signer = CheckpointSigner::new(a.audit.1.clone(), &a.origin()).unwrap();
    let inconsistent = real_signer
        .sign(stored.size + 2, [7; 32], Timestamp::from_millis(1_000))
        .into_string();
    let (status, _, _) = post(
        &as_log,
        sub(stored.size, vec![[1; 32], [2; 32]], inconsistent.clone()),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "inconsistent proof"
    );
    let (status, ct, body) = post(&as_log, sub(0, vec![], inconsistent.clone())).await;
    assert_eq!(
        (status, ct.as_str(), body.clone()),
        (
            StatusCode::CONFLICT,
            "text/x.tlog.size",
            format!("{}\n", stored.size)
        )
    );
    let (status, _, _) = post(&as_log, sub(stored.size + 3, vec![], inconsistent)).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "old size above the checkpoint's"
    );
    let unknown = CheckpointSigner::new(a.audit.1.clone(), "kaupunki-x/audit")
        .unwrap()
        .sign(1, [7; 32], Timestamp::from_millis(1_000))
        .into_string();
    let (status, _, _) = post(&as_log, sub(0, vec![], unknown)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "unknown origin");
    let as_operator = client_for(&bed, b.port, (&op.client.cert, &op.client.key));
    let answer = as_operator
        .send(
            Method::POST,
            "/witness/add-checkpoint",
            &[],
            Some(Bytes::from(sub(0, vec![], forged))),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.error_code().as_deref(), Some("forbidden_role"));
    // None of these moved the witness's state.
    assert_eq!(
        gw_b.store.witnessed(&a.origin()).await.unwrap(),
        Some(stored)
    );

    // Roll A back: copy its database now, let it grow and be cosigned further, then restart
    // it on the copy.
    let copy = dir.path().join("kaupunki-a-copy.db");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "VACUUM INTO '{}'",
        copy.display()
    )))
    .execute(&sqlx::SqlitePool::connect(&a.db).await.unwrap())
    .await
    .unwrap();
    let before_rollback = gw_a.trail.size();
    write_entries(&gw_a, 12).await;
    wait_until("A grown and cosigned", || async {
        let (size, n) = latest_cosigned(&gw_a).await;
        size >= before_rollback + 12 && n == 1
    })
    .await;
    let cosigned_by_b = gw_b
        .store
        .witnessed(&a.origin())
        .await
        .unwrap()
        .unwrap()
        .size;
    inst_a.stop().await.unwrap();
    drop(gw_a);
    let conflicts_b = conflicts_audited(&gw_b).await;

    let mut rolled = config_a.clone();
    rolled.gateway.database_url = format!("sqlite://{}", copy.display());
    let gw_a = open(rolled).await;
    let inst_a = Instance::start(gw_a.clone()).await.unwrap();
    write_entries(&gw_a, 3).await;
    wait_until("A told of the conflict", || async {
        gw_a.store
            .witness_peers()
            .await
            .unwrap()
            .iter()
            .any(|p| p.conflict_at.is_some())
    })
    .await;
    let peer = gw_a.store.witness_peers().await.unwrap();
    assert_eq!(peer[0].conflict_size, Some(cosigned_by_b));
    assert!(
        conflicts_audited(&gw_a).await >= 1,
        "audited on the log's side"
    );
    assert!(metric(&gw_a, "siirto_audit_witness_conflicts_total") >= 1.0);
    wait_until("B audited the conflict", || async {
        conflicts_audited(&gw_b).await > conflicts_b
    })
    .await;
    assert!(metric(&gw_b, "siirto_audit_witness_conflicts_total") >= 1.0);
    let operator_rolled = client_for(&bed, inst_a.api.port(), (&op.client.cert, &op.client.key));
    let page = operator_rolled
        .get("/operator", &[("accept-language", "en")])
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&page.body).contains(&format!(
            "Witness kaupunki-b/witness holds a conflicting history of this log at tree size {cosigned_by_b}"
        ))
    );
    // The witness never went back.
    assert_eq!(
        gw_b.store
            .witnessed(&a.origin())
            .await
            .unwrap()
            .unwrap()
            .size,
        cosigned_by_b
    );
    // The rolled-back checkpoint has no cosignature.
    assert_eq!(latest_cosigned(&gw_a).await.1, 0);

    inst_a.stop().await.unwrap();
    inst_b.stop().await.unwrap();
}

/// Verifies the witness cosignature line on `note` with Python `cryptography`, following
/// C2SP tlog-cosignature: key ID = SHA-256(name ‖ "\n" ‖ 0x04 ‖ key)[:4], signature =
/// u64 BE timestamp ‖ Ed25519 over "cosignature/v1\ntime <t>\n" ‖ note body.
fn python_checks_cosignature(note: &str, vkey: &str) {
    let test = "two_gateways_witness_each_other_and_refuse_forgery_bad_proofs_and_rollback";
    if !python_available(test, "cryptography") {
        return;
    }
    const SCRIPT: &str = r#"
import base64, hashlib, struct, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
note, vkey = sys.argv[1], sys.argv[2]
name, key_id_hex, key_b64 = vkey.split("+", 2)
typed = base64.b64decode(key_b64)
assert typed[0] == 0x04 and len(typed) == 33, "not a cosignature/v1 key"
key = typed[1:]
key_id = hashlib.sha256(name.encode() + b"\n" + b"\x04" + key).digest()[:4]
assert key_id.hex() == key_id_hex, "key ID"
body, sigs = note.split("\n\n", 1)
body += "\n"
found = 0
for line in sigs.splitlines():
    assert line.startswith("\u2014 ")
    line_name, b64 = line[2:].split(" ", 1)
    raw = base64.b64decode(b64)
    if line_name != name or raw[:4] != key_id:
        continue
    assert len(raw) == 4 + 8 + 64
    (timestamp,) = struct.unpack(">Q", raw[4:12])
    assert 0 < timestamp < 2**63
    message = b"cosignature/v1\ntime " + str(timestamp).encode() + b"\n" + body.encode()
    Ed25519PublicKey.from_public_bytes(key).verify(raw[12:], message)
    found += 1
    # Any other body must fail.
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(raw[12:], message + b"x")
        sys.exit("a changed message verified")
    except Exception:
        pass
print("cosignatures verified:", found)
sys.exit(0 if found == 1 else 1)
"#;
    let out = Command::new(python())
        .args(["-c", SCRIPT, note, vkey])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("cosignatures verified: 1"));
}

/// `GET /readyz` on the plain admin listener answers 200.
async fn ready(admin: std::net::SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(admin).await.ok()?;
        s.write_all(b"GET /readyz HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).await.ok()?;
        Some(answer.starts_with(b"HTTP/1.1 200"))
    };
    tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

async fn serve(config: &Path, log: &Path, admin: std::net::SocketAddr) -> tokio::process::Child {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_siirto"))
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env("SIIRTO_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("siirto serve starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready(admin).await {
        assert!(
            Instant::now() < deadline,
            "not ready: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child
}

/// The `siirto serve` binary as a witness, killed with SIGKILL after cosigning: restarted, it
/// still refuses what conflicts with the checkpoint it cosigned, and continues from it. The
/// log side is played by the test with its own key (the requests are built as tlog-witness
/// describes them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn witness_state_survives_kill_9() {
    use siirto_core::audit::merkle::{MerkleTree, leaf_hash};
    let bed = Testbed::start(TestbedOptions {
        in_process_gateway: false,
        ..TestbedOptions::default()
    })
    .await
    .expect("testbed");
    let dir = tempfile::tempdir().unwrap();
    let (witness_path, witness_key) = ed25519_key(dir.path(), "witness");
    let (_, log_key) = ed25519_key(dir.path(), "log");
    let origin = "kaupunki-a/audit";
    let mut text = std::fs::read_to_string(bed.config_path()).unwrap();
    text.push_str(&format!(
        "\n[witness]\nkey = \"{}\"\n\n[[witness.logs]]\norigin = \"{origin}\"\nkey = \"{}\"\n\n\
         [[participants]]\nid = \"kaupunki-a-gateway\"\nroles = [\"log\"]\n\
         subject = \"CN=siirto-gateway,O=Siirto,C=FI\"\n",
        witness_path.display(),
        log_key.public_key().note_verifier_key(origin)
    ));
    let config = bed.dir.join("witness.toml");
    std::fs::write(&config, text).unwrap();
    let admin = bed.config.gateway.admin_listen;
    let mut child = serve(&config, &dir.path().join("serve-1.log"), admin).await;

    let name = format!("{}/witness", bed.config.gateway.id);
    let verifier = CosignatureVerifier::from_verifier_key(
        &witness_key.public_key().typed_verifier_key(&name, 0x04),
    )
    .unwrap();
    let signer = CheckpointSigner::new(log_key, origin).unwrap();
    let mut tree = MerkleTree::new();
    let mut fork = MerkleTree::new();
    for i in 0..9u32 {
        tree.push(leaf_hash(format!("entry {i}").as_bytes()));
        fork.push(leaf_hash(format!("other {i}").as_bytes()));
    }
    let note = |t: &MerkleTree, size: u64| {
        signer
            .sign(
                size,
                t.root_at(size).unwrap(),
                Timestamp::from_millis(1_000),
            )
            .into_string()
    };
    let body = |old: u64, proof: Vec<[u8; 32]>, note: String| {
        Submission {
            old_size: old,
            proof,
            note,
        }
        .to_body()
    };
    let gc = &bed.pki.gateway_client;
    let port = bed.config.gateway.listen.port();
    let client = client_for(&bed, port, (&gc.cert, &gc.key));
    let cosigned = |n: &str, answer: &str| {
        let b = siirto_core::audit::witness::note_body(n).unwrap();
        verifier.find(b, answer).unwrap().is_some()
    };

    let three = note(&tree, 3);
    let (status, _, answer) = post(&client, body(0, vec![], three.clone())).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(cosigned(&three, &answer));
    let five = note(&tree, 5);
    let proof = tree.consistency_proof(3, 5).unwrap();
    let (status, _, answer) = post(&client, body(3, proof, five.clone())).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(cosigned(&five, &answer));

    // SIGKILL right after the cosignature was answered, then restart.
    child.kill().await.unwrap();
    let _child = serve(&config, &dir.path().join("serve-2.log"), admin).await;

    // Split view at the cosigned size, and a rollback: refused with the size it cosigned.
    let (status, ct, answer) = post(&client, body(5, vec![], note(&fork, 5))).await;
    assert_eq!(
        (status, ct.as_str(), answer.as_str()),
        (StatusCode::CONFLICT, "text/x.tlog.size", "5\n")
    );
    let (status, _, answer) = post(&client, body(0, vec![], three)).await;
    assert_eq!((status, answer.as_str()), (StatusCode::CONFLICT, "5\n"));
    // A proof from the fork's size 5 does not lead from the root it cosigned.
    let (status, _, _) = post(
        &client,
        body(5, fork.consistency_proof(5, 9).unwrap(), note(&fork, 9)),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // The true history continues from what it cosigned before the kill.
    let nine = note(&tree, 9);
    let (status, _, answer) = post(
        &client,
        body(5, tree.consistency_proof(5, 9).unwrap(), nine.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(cosigned(&nine, &answer));
    let log = std::fs::read_to_string(dir.path().join("serve-2.log")).unwrap();
    assert!(!log.contains("ERROR"), "{log}");
}

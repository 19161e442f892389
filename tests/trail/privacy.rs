//! Privacy of the trail itself, on the real binary: after a run with a delivered transfer, a
//! failed one, a refused authorization, a history read and a SIGHUP reload, neither the audit
//! log (as `siirto audit export` writes it), nor the gateway's own log at debug level, nor the
//! database holds a student's identity code or any record content. Students appear in the audit
//! as keyed pseudonyms; the reload is audited. The identity code is looked for in clear and as
//! it would appear inside a JWS (the signed receipt names the student in its payload: it is
//! stored sealed), in the SQLite files and in `pg_dump`'s copy of the PostgreSQL database.

use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use siirto_core::audit::Pseudonymizer;
use siirto_core::student_id::StudentId;
use siirto_devkit::testbed::{Testbed, TestbedOptions};
use siirto_gateway::store::Store;
use siirto_gateway::store::testdb::TestDb;

use crate::support::{OTHER_STUDENT, STUDENT, fast_checkpoints, operator, record_for, siirto};

/// A henkilötunnus with a wrong check character (refused as `invalid_subject`).
const BAD_CHECKSUM: &str = "150608A123K";

/// Things that must not leave the records: identity codes, and content of the sample record
/// (names, address, contacts, course names, the school's name).
const CONTENT: [&str; 9] = [
    "Meikäläinen",
    "Maija Liisa",
    "Kotikatu",
    "+358 40 123 4567",
    "maija.huoltaja@example.fi",
    "Matematiikka",
    "Kuvataide",
    "Puolalanmäen koulu",
    "2008-06-15",
];

/// `text` as it appears base64url-encoded inside a longer value (a JWS payload) at each of the
/// three alignments: the characters that depend on `text`'s bytes alone (the first ones also
/// encode what precedes it, the last ones what follows).
pub fn base64url_forms(text: &str) -> Vec<String> {
    (0..3)
        .map(|offset| {
            let mut bytes = vec![0u8; offset];
            bytes.extend_from_slice(text.as_bytes());
            let encoded = URL_SAFE_NO_PAD.encode(&bytes);
            let skip = [0, 2, 3][offset];
            let whole = (offset + text.len()) / 3 * 4;
            encoded[skip..whole].to_owned()
        })
        .collect()
}

/// A student's identity code in every form it could be stored in: clear (either case), and
/// base64url-encoded alone and as the receipt's `"sub":"<code>"` claim.
pub fn identity_code_forms(code: &str) -> Vec<String> {
    let mut forms = vec![code.to_owned(), code.to_lowercase()];
    forms.extend(base64url_forms(code));
    forms.extend(base64url_forms(&format!("\"sub\":\"{code}\"")));
    forms
}

fn needles() -> Vec<String> {
    let mut n: Vec<String> = [STUDENT, OTHER_STUDENT, BAD_CHECKSUM]
        .iter()
        .flat_map(|s| identity_code_forms(s))
        .collect();
    n.extend(CONTENT.iter().map(|s| s.to_string()));
    n
}

/// `needles`, and each as `pg_dump` writes a `bytea` value (lower-case hex).
fn dump_needles() -> Vec<String> {
    let mut n = needles();
    n.extend(
        n.clone()
            .iter()
            .map(|s| siirto_core::clock::hex(s.as_bytes())),
    );
    n
}

fn assert_clean(what: &str, haystack: &[u8]) {
    assert_clean_of(what, haystack, &needles());
}

pub fn assert_clean_of(what: &str, haystack: &[u8], needles: &[String]) {
    for needle in needles {
        let found = haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes());
        assert!(!found, "{what} holds {needle:?}");
    }
}

/// The bytes of a SQLite database's files: the database, its write-ahead log and shared memory.
fn sqlite_files(url: &str) -> Vec<u8> {
    let file = std::path::PathBuf::from(url.strip_prefix("sqlite://").unwrap());
    let stem = file.file_name().unwrap().to_string_lossy().into_owned();
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(file.parent().unwrap()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with(&stem) {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    assert!(bytes.len() > 4096, "the database files were read");
    bytes
}

/// `pg_dump` of a PostgreSQL database (schema and data, as text).
fn pg_dump(url: &str) -> Vec<u8> {
    let dump = std::process::Command::new("pg_dump")
        .arg("--dbname")
        .arg(url)
        .output()
        .unwrap();
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    dump.stdout
}

fn pg_dump_available() -> bool {
    std::process::Command::new("pg_dump")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill {sig} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_identity_code_or_record_content_in_the_audit_logs_or_database() {
    for db in TestDb::all().await {
        let dir = tempfile::tempdir().unwrap();
        let bed = Testbed::start(TestbedOptions {
            dir: Some(dir.path().to_path_buf()),
            database_url: Some(db.url.clone()),
            env: fast_checkpoints(),
            in_process_gateway: false,
            ..TestbedOptions::default()
        })
        .await
        .unwrap();
        let log_path = dir.path().join("gateway.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_siirto"))
            .args(["serve", "--config"])
            .arg(bed.config_path())
            .env("SIIRTO_LOG", "debug")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        let eservice = bed.client("eservice").unwrap();
        let op = operator(&bed);
        wait_until("the gateway answers", || async {
            op.get("/v1/audit/public-key", &[]).await.is_ok()
        })
        .await;

        // A delivered transfer with every category.
        bed.sources["turku"].insert(STUDENT, record_for(STUDENT));
        let token = bed
            .sign(
                &bed.authorization(
                    STUDENT,
                    "turku",
                    "espoo",
                    "identity enrolment achievements support",
                )
                .claims(),
            )
            .unwrap();
        let delivered = eservice.submit(&token).await.unwrap().json()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        // A source that answers with another student's record: subject_mismatch.
        bed.sources["oulu"].insert(OTHER_STUDENT, record_for(STUDENT));
        let token = bed
            .sign(
                &bed.authorization(OTHER_STUDENT, "oulu", "espoo", "identity")
                    .claims(),
            )
            .unwrap();
        let mismatched = eservice.submit(&token).await.unwrap().json()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        // A refused authorization naming a malformed identity code.
        let token = bed
            .sign(
                &bed.authorization(BAD_CHECKSUM, "turku", "espoo", "identity")
                    .claims(),
            )
            .unwrap();
        let refused = eservice.submit(&token).await.unwrap();
        assert_eq!(refused.error_code().as_deref(), Some("invalid_subject"));
        let shown = bed
            .wait_for_status(
                "eservice",
                &delivered,
                &["delivered"],
                Duration::from_secs(30),
            )
            .await
            .unwrap();
        let failed = bed
            .wait_for_status(
                "eservice",
                &mismatched,
                &["failed"],
                Duration::from_secs(30),
            )
            .await
            .unwrap();
        assert_eq!(failed["reason"], "subject_mismatch");
        let history = eservice
            .get(
                "/v1/students/transfers",
                &[(
                    "authorization",
                    &format!("Bearer {}", bed.transparency_token(STUDENT).unwrap()),
                )],
            )
            .await
            .unwrap();
        assert_eq!(history.status.as_u16(), 200);

        // SIGHUP reloads the issuers' keys, audited.
        signal(pid, "-HUP");
        wait_until("the SIGHUP reload is audited", || async {
            let page = op
                .get("/v1/audit?action=config.reload", &[])
                .await
                .map(|a| a.json())
                .unwrap_or(Value::Null);
            page["entries"].as_array().is_some_and(|e| {
                e.iter()
                    .any(|e| e["detail"]["via"] == "sighup" && e["outcome"] == "ok")
            })
        })
        .await;

        // Graceful stop (the last checkpoint is signed on the way out).
        signal(pid, "-TERM");
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("stops within 30 s")
            .unwrap();
        assert!(status.success(), "{status}");

        let config = bed.config_path().display().to_string();
        let verify = siirto(&["audit", "verify", "--config", &config]);
        assert!(
            verify.status.success(),
            "{}",
            String::from_utf8_lossy(&verify.stdout)
        );
        assert!(
            String::from_utf8_lossy(&verify.stdout)
                .contains(" 0 entries after the latest checkpoint"),
            "the final checkpoint covers the whole run"
        );
        let export = siirto(&["audit", "export", "--config", &config]);
        assert!(export.status.success());
        assert_clean("the audit export", &export.stdout);
        let gateway_log = std::fs::read(&log_path).unwrap();
        assert!(gateway_log.len() > 1000, "the log was captured");
        assert_clean("the gateway's log", &gateway_log);

        // The students are in the audit, as pseudonyms.
        let key = std::fs::read(&bed.config.gateway.pseudonym_key).unwrap();
        let secret = siirto_core::config::secret_key_bytes(&key).unwrap();
        let pseudonyms = Pseudonymizer::new(&secret).unwrap();
        let student = pseudonyms.pseudonym(&StudentId::parse(STUDENT).unwrap());
        let other = pseudonyms.pseudonym(&StudentId::parse(OTHER_STUDENT).unwrap());
        let lines: Vec<Value> = String::from_utf8_lossy(&export.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for (id, who) in [(&delivered, &student), (&mismatched, &other)] {
            let about: Vec<&Value> = lines
                .iter()
                .filter(|l| l["transfer_id"] == id.as_str())
                .collect();
            assert!(about.len() >= 3);
            assert!(
                about.iter().all(|l| l["subject"] == who.as_str()),
                "{about:?}"
            );
        }
        assert!(
            lines
                .iter()
                .any(|l| l["action"] == "student.history_read" && l["subject"] == student.as_str())
        );

        // The database: every table as stored.
        match db.backend {
            "sqlite" => {
                assert_clean("the SQLite database files", &sqlite_files(&db.url));
            }
            _ if pg_dump_available() => {
                let dump = pg_dump(&db.url);
                assert!(
                    String::from_utf8_lossy(&dump).contains(&delivered),
                    "the dump holds the transfers"
                );
                assert_clean_of("pg_dump of the database", &dump, &dump_needles());
            }
            _ => {
                eprintln!("pg_dump is not on PATH: reading the tables through the store instead");
                let store = Store::connect(&db.url).await.unwrap();
                let mut text = String::new();
                for row in store.recent_transfers(None, 1000).await.unwrap() {
                    text.push_str(&format!("{row:?}"));
                    for step in store.steps(&row.id).await.unwrap() {
                        text.push_str(&format!("{step:?}"));
                    }
                }
                for e in store.audit_range(0, 100_000).await.unwrap() {
                    text.push_str(&siirto_core::audit::entry_json(&e).to_string());
                }
                for c in store.checkpoints().await.unwrap() {
                    text.push_str(&c.note);
                }
                assert!(text.contains(&delivered));
                assert_clean("the PostgreSQL tables", text.as_bytes());
                store.close().await;
            }
        }

        // Positive control: the needles are real — the destination did receive them, and the
        // receipt shown to the submitter names the student in its payload.
        let receipt = shown["receipt"].as_str().unwrap();
        assert!(
            identity_code_forms(STUDENT)
                .iter()
                .any(|form| receipt.contains(form.as_str())),
            "the base64url forms find the student in {receipt}"
        );
        let received = bed.destinations["espoo"].stored();
        let body = &received[&delivered];
        assert!(shown["status"] == "delivered");
        for must in [
            STUDENT,
            "Meikäläinen",
            "Matematiikka",
            "maija.huoltaja@example.fi",
        ] {
            assert!(
                body.windows(must.len()).any(|w| w == must.as_bytes()),
                "{must} was delivered"
            );
        }
        bed.stop().await;
    }
}

/// A receipt an earlier version stored in clear (migration 0003 cannot seal it: SQL holds no
/// key) is sealed when the gateway starts: afterwards the database holds neither the receipt nor
/// the student's identity code in any form, and the receipt is still shown, unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_left_in_clear_by_an_earlier_version_is_sealed_at_startup() {
    for db in TestDb::all().await {
        let b = db.backend;
        let dir = tempfile::tempdir().unwrap();
        let bed = Testbed::start(TestbedOptions {
            dir: Some(dir.path().to_path_buf()),
            database_url: Some(db.url.clone()),
            env: fast_checkpoints(),
            ..TestbedOptions::default()
        })
        .await
        .unwrap();
        let (id, shown) = crate::support::deliver(&bed, STUDENT, "identity achievements").await;
        let receipt = shown["receipt"].as_str().unwrap().to_owned();
        let config = bed.config.clone();
        bed.stop().await;

        // The row as an earlier version left it: the receipt in clear, nothing sealed.
        let store = Store::connect(&db.url).await.unwrap();
        let changed = store
            .execute_raw(&format!(
                "UPDATE transfers SET receipt = '{receipt}', receipt_sealed = NULL, \
                 receipt_key_id = NULL WHERE id = '{id}'"
            ))
            .await
            .unwrap();
        assert_eq!(changed, 1, "{b}");
        store.close().await;
        let stored = || async {
            match b {
                "sqlite" => sqlite_files(&db.url),
                _ if pg_dump_available() => pg_dump(&db.url),
                _ => Vec::new(),
            }
        };
        let payload = receipt.split('.').nth(1).unwrap().to_owned();
        let before = stored().await;
        assert!(
            before.is_empty()
                || before
                    .windows(payload.len())
                    .any(|w| w == payload.as_bytes()),
            "{b}: the clear receipt is in the stored bytes before the gateway starts"
        );

        let gw = siirto_gateway::state::Gateway::open(
            config,
            std::sync::Arc::new(siirto_core::clock::SystemClock),
            std::sync::Arc::new(siirto_core::clock::SystemRandom::new()),
            siirto_devkit::testbed::build_info(),
        )
        .await
        .unwrap();
        let row = gw.store.transfer(&id).await.unwrap().unwrap();
        assert!(row.receipt_sealed.is_some(), "{b}");
        assert_eq!(gw.receipt(&row).as_deref(), Some(receipt.as_str()), "{b}");
        let after = stored().await;
        if !after.is_empty() {
            let mut needles = dump_needles();
            needles.push(payload.clone());
            assert_clean_of(&format!("{b} after startup"), &after, &needles);
        }
        gw.store.close().await;
    }
}

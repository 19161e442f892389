//! Privacy of the trail itself, on the real binary: after a run with a delivered transfer, a
//! failed one, a refused authorization, a history read and a SIGHUP reload, neither the audit
//! log (as `siirto audit export` writes it), nor the gateway's own log at debug level, nor the
//! database holds a student's identity code or any record content. Students appear in the audit
//! as keyed pseudonyms; the reload is audited.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use siirto::audit::Pseudonymizer;
use siirto::store::Store;
use siirto::store::testdb::TestDb;
use siirto::student_id::StudentId;
use siirto::testbed::{Testbed, TestbedOptions};

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
    "2010-10-13",
];

fn needles() -> Vec<String> {
    let mut n: Vec<String> = [STUDENT, OTHER_STUDENT, BAD_CHECKSUM]
        .iter()
        .flat_map(|s| [s.to_string(), s.to_lowercase()])
        .collect();
    n.extend(CONTENT.iter().map(|s| s.to_string()));
    n
}

fn assert_clean(what: &str, haystack: &[u8]) {
    for needle in needles() {
        let found = haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes());
        assert!(!found, "{what} holds {needle:?}");
    }
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
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
        let secret = siirto::config::secret_key_bytes(&key).unwrap();
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
                let file = std::path::PathBuf::from(db.url.strip_prefix("sqlite://").unwrap());
                let stem = file.file_name().unwrap().to_string_lossy().into_owned();
                let mut bytes = Vec::new();
                for entry in std::fs::read_dir(file.parent().unwrap()).unwrap() {
                    let path = entry.unwrap().path();
                    let name = path.file_name().unwrap().to_string_lossy().into_owned();
                    // The database, its write-ahead log and shared memory.
                    if name.starts_with(&stem) {
                        bytes.extend(std::fs::read(&path).unwrap());
                    }
                }
                assert!(bytes.len() > 4096, "the database files were read");
                assert_clean("the SQLite database files", &bytes);
            }
            _ => {
                let store = Store::connect(&db.url).await.unwrap();
                let mut text = String::new();
                for row in store.recent_transfers(None, 1000).await.unwrap() {
                    text.push_str(&format!("{row:?}"));
                    for step in store.steps(&row.id).await.unwrap() {
                        text.push_str(&format!("{step:?}"));
                    }
                }
                for e in store.audit_range(0, 100_000).await.unwrap() {
                    text.push_str(&siirto::http::audit::entry_json(&e).to_string());
                }
                for c in store.checkpoints().await.unwrap() {
                    text.push_str(&c.note);
                }
                assert!(text.contains(&delivered));
                assert_clean("the PostgreSQL tables", text.as_bytes());
                store.close().await;
            }
        }

        // Positive control: the needles are real — the destination did receive them.
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

//! Tampering with the stored audit log of a real run, on SQLite and PostgreSQL: `siirto audit
//! verify` (the binary) exits 1 and names the first bad entry for a changed field, a deleted
//! row, an inserted row (with a correctly recomputed hash), two reordered rows, a tail
//! truncated after a checkpoint, a chain rewritten from an entry on, and a changed checkpoint;
//! the untouched log verifies. A gateway started on a tampered log signs nothing more, refuses
//! proofs past the bad entry, and its operator page names the entry.

use std::sync::Arc;
use std::time::Duration;

use siirto_core::audit::{AuditEntry, AuditEvent};
use siirto_core::clock::{SystemClock, SystemRandom, hex};
use siirto_devkit::client::MtlsClient;
use siirto_gateway::state::Gateway;
use siirto_gateway::store::Store;
use siirto_gateway::store::testdb::TestDb;

use crate::support::{
    OPERATOR, OTHER_STUDENT, STUDENT, admin_get, deliver, operator, siirto, start, stdout,
    wait_checkpoint,
};

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn blob(backend: &str, bytes: &[u8]) -> String {
    if backend == "postgres" {
        format!("'\\x{}'::bytea", hex(bytes))
    } else {
        format!("X'{}'", hex(bytes))
    }
}

fn insert_sql(backend: &str, e: &AuditEntry) -> String {
    let ev = &e.event;
    let opt = |o: Option<String>| o.map_or("NULL".to_owned(), |s| quote(&s));
    format!(
        "INSERT INTO audit (seq, at, actor, action, outcome, transfer_id, subject, document_sha256, detail, prev_hash, hash) \
         VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
        e.seq,
        ev.at.millis(),
        quote(&ev.actor),
        quote(&ev.action),
        quote(&ev.outcome),
        opt(ev.transfer_id.clone()),
        opt(ev.subject.as_ref().map(|p| p.as_str().to_owned())),
        opt(ev.document_sha256.as_ref().map(|h| hex(h))),
        quote(&serde_json::to_string(&ev.detail).unwrap()),
        blob(backend, &e.prev_hash),
        blob(backend, &e.hash),
    )
}

/// Moves every entry from `k` on one seq up (two steps, so no primary key collides).
fn shift_up_from(k: u64) -> String {
    format!(
        "UPDATE audit SET seq = -seq - 1 WHERE seq >= {k}; UPDATE audit SET seq = -seq WHERE seq < 0;"
    )
}

struct Case {
    name: &'static str,
    sql: String,
    /// Text the report must contain, and the first bad entry it must name (if any).
    message: String,
    first_bad: Option<u64>,
}

fn verify(config: &str) -> (i32, String) {
    let out = siirto(&["audit", "verify", "--config", config]);
    (out.status.code().unwrap_or(-1), stdout(&out))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_tampering_is_named_by_siirto_audit_verify() {
    for db in TestDb::all().await {
        let dir = tempfile::tempdir().unwrap();
        let bed = start(Some(db.url.clone()), Some(dir.path().to_path_buf())).await;
        // A checkpoint after each transfer, so the log has several to check against.
        let gw = bed.gateway.clone().unwrap();
        for student in [STUDENT, OTHER_STUDENT, STUDENT] {
            deliver(&bed, student, "identity achievements").await;
            wait_checkpoint(&bed, gw.store.audit_len().await.unwrap()).await;
        }
        drop(gw);
        let op = operator(&bed);
        for _ in 0..3 {
            op.get("/v1/audit?limit=2", &[]).await.unwrap();
        }
        let config = bed.config_path().display().to_string();
        let pki = bed.pki.clone();
        let gateway_config = bed.config.clone();
        // Stopping signs a last checkpoint over everything written.
        bed.stop().await;

        let store = Store::connect(&db.url).await.unwrap();
        let backend = store.backend_name();
        let entries = store.audit_range(0, 100_000).await.unwrap();
        let n = entries.len() as u64;
        let checkpoints: Vec<u64> = store
            .checkpoints()
            .await
            .unwrap()
            .iter()
            .map(|c| c.tree_size)
            .collect();
        assert!(n >= 20, "{backend}: only {n} entries");
        assert_eq!(
            checkpoints.last(),
            Some(&n),
            "{backend}: the final checkpoint covers all"
        );
        assert!(checkpoints.len() >= 3, "{backend}: {checkpoints:?}");

        let (code, out) = verify(&config);
        assert_eq!(code, 0, "{backend}: {out}");
        assert!(
            out.contains(&format!("audit log verifies: {n} entries")),
            "{backend}: {out}"
        );
        assert!(
            out.contains(&format!(
                "{} checkpoint(s), 0 entries after",
                checkpoints.len()
            )),
            "{out}"
        );
        store
            .execute_raw(
                "CREATE TABLE audit_pristine AS SELECT * FROM audit; \
                 CREATE TABLE checkpoints_pristine AS SELECT * FROM checkpoints;",
            )
            .await
            .unwrap();

        // An entry away from checkpoint boundaries, and a checkpoint inside the log.
        let k = (6..n - 5)
            .find(|k| !checkpoints.contains(&(k + 1)))
            .expect("an entry away from checkpoint boundaries");
        let boundary = checkpoints
            .iter()
            .copied()
            .find(|s| *s >= 2 && *s < n - 1)
            .expect("a checkpoint inside the log");
        let forged_at_boundary = {
            let at = boundary - 1;
            let mut ev = AuditEvent::new(
                entries[at as usize].event.at,
                "espoo",
                "transfer.delivered",
                "ok",
            );
            ev.transfer_id = Some("forged-transfer".into());
            AuditEntry::chained(at, entries[at as usize - 1].hash, ev)
        };
        // A forged entry slipped in at k, its hash correctly computed over its contents and
        // the hash of entry k - 1.
        let mut forged_event = AuditEvent::new(
            entries[k as usize].event.at,
            "espoo",
            "transfer.delivered",
            "ok",
        );
        forged_event.transfer_id = Some("forged-transfer".into());
        let forged = AuditEntry::chained(k, entries[k as usize - 1].hash, forged_event);
        // The chain rewritten from k on: entry k changed, every later hash recomputed.
        let mut rewrite = String::new();
        let mut prev = entries[k as usize - 1].hash;
        for e in &entries[k as usize..] {
            let mut event = e.event.clone();
            if e.seq == k {
                event.outcome = "rewritten".into();
            }
            let re = AuditEntry::chained(e.seq, prev, event);
            prev = re.hash;
            rewrite.push_str(&format!(
                "UPDATE audit SET outcome = {}, prev_hash = {}, hash = {} WHERE seq = {};",
                quote(&re.event.outcome),
                blob(backend, &re.prev_hash),
                blob(backend, &re.hash),
                re.seq
            ));
        }
        let anchored = checkpoints
            .iter()
            .copied()
            .filter(|s| *s <= k)
            .max()
            .unwrap_or(0);
        let caught_by = checkpoints.iter().copied().find(|s| *s > k).unwrap();
        // A checkpoint's root changed after it was signed.
        let cp_rows = store.checkpoints().await.unwrap();
        let second = &cp_rows[1];
        let root_line = second.note.lines().nth(2).unwrap().to_owned();
        let other_root = base64_of(&[0x42; 32]);
        let cases = vec![
            Case {
                name: "change a field",
                sql: format!("UPDATE audit SET outcome = 'failed' WHERE seq = {k}"),
                message: format!("entry {k}: its stored hash does not match its contents"),
                first_bad: Some(k),
            },
            Case {
                name: "delete a row",
                sql: format!("DELETE FROM audit WHERE seq = {k}"),
                message: format!(
                    "entry {k} is missing (deleted); the next entry present is {}",
                    k + 1
                ),
                first_bad: Some(k),
            },
            Case {
                name: "insert a row",
                sql: format!("{} {};", shift_up_from(k), insert_sql(backend, &forged)),
                message: format!("entry {k} was inserted"),
                first_bad: Some(k),
            },
            Case {
                // The checkpoint's root fails first; the entry after it names the insertion.
                name: "insert a row just before a checkpoint",
                sql: format!(
                    "{} {};",
                    shift_up_from(boundary - 1),
                    insert_sql(backend, &forged_at_boundary)
                ),
                message: format!("entry {} was inserted", boundary - 1),
                first_bad: Some(boundary - 1),
            },
            Case {
                name: "reorder two rows",
                sql: format!(
                    "UPDATE audit SET seq = -1 WHERE seq = {k}; UPDATE audit SET seq = {k} WHERE seq = {k1}; \
                     UPDATE audit SET seq = {k1} WHERE seq = -1;",
                    k1 = k + 1
                ),
                message: format!(
                    "entry {k}: its contents were written as entry {} (entries were renumbered)",
                    k + 1
                ),
                first_bad: Some(k),
            },
            Case {
                name: "truncate the tail after a checkpoint",
                sql: format!("DELETE FROM audit WHERE seq >= {}", n - 3),
                message: format!(
                    "the log ends after {} entries, but a checkpoint signed at",
                    n - 3
                ),
                first_bad: Some(n - 3),
            },
            Case {
                name: "rewrite the chain from an entry on",
                sql: rewrite,
                message: format!(
                    "entries {anchored}..{} do not match the checkpoint of size {caught_by}",
                    caught_by - 1
                ),
                first_bad: Some(anchored),
            },
            Case {
                name: "change a signed checkpoint",
                sql: format!(
                    "UPDATE checkpoints SET note = {} WHERE tree_size = {}",
                    quote(&second.note.replace(&root_line, &other_root)),
                    second.tree_size
                ),
                message:
                    "checkpoint #1: the audit key's signature on the checkpoint does not verify"
                        .into(),
                first_bad: None,
            },
        ];
        for case in cases {
            store.execute_raw(&case.sql).await.unwrap();
            let (code, out) = verify(&config);
            assert_eq!(code, 1, "{backend}, {}: {out}", case.name);
            assert!(
                out.contains("audit log does NOT verify") && out.contains(&case.message),
                "{backend}, {}: expected {:?} in {out}",
                case.name,
                case.message
            );
            match case.first_bad {
                Some(seq) => assert!(
                    out.contains(&format!("first bad entry: {seq}\n")),
                    "{backend}, {}: {out}",
                    case.name
                ),
                None => assert!(!out.contains("first bad entry"), "{out}"),
            }
            store
                .execute_raw(
                    "DELETE FROM audit; INSERT INTO audit SELECT * FROM audit_pristine; \
                     DELETE FROM checkpoints; INSERT INTO checkpoints SELECT * FROM checkpoints_pristine;",
                )
                .await
                .unwrap();
            let (code, out) = verify(&config);
            assert_eq!(code, 0, "{backend}: restored after {}: {out}", case.name);
        }

        // A gateway started on a tampered log: the trail stops at the bad entry and signs
        // nothing more; proofs past it are refused; the operator page names it.
        store
            .execute_raw(&format!(
                "UPDATE audit SET outcome = 'failed' WHERE seq = {k}"
            ))
            .await
            .unwrap();
        let gw = Gateway::open(
            gateway_config,
            Arc::new(SystemClock),
            Arc::new(SystemRandom::new()),
            siirto_devkit::testbed::build_info(),
        )
        .await
        .unwrap();
        let instance = siirto_devkit::testbed::Instance::start(gw.clone())
            .await
            .unwrap();
        let api = instance.api;
        let admin = instance.admin.to_string();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while gw.trail.status().broken.is_none() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "trail never noticed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let status = gw.trail.status();
        assert_eq!(status.size, k, "the tree stops before the bad entry");
        let metrics = admin_get(&admin, "/metrics").await;
        assert!(
            metrics.contains("\nsiirto_audit_log_broken 1\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains(&format!("\nsiirto_audit_entries_verified {k}\n")),
            "{metrics}"
        );
        let dev = pki.participant(OPERATOR).unwrap();
        let op = MtlsClient::new(
            &format!("https://{api}"),
            &pki.ca.cert,
            Some((dev.client.cert.as_path(), dev.client.key.as_path())),
        )
        .unwrap();
        let ok = op
            .get(&format!("/v1/audit/proof/inclusion?index=0&size={k}"), &[])
            .await
            .unwrap();
        assert_eq!(ok.status.as_u16(), 200, "{}", ok.json());
        let refused = op
            .get(
                &format!("/v1/audit/proof/inclusion?index=0&size={}", k + 1),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(refused.status.as_u16(), 503);
        assert_eq!(
            refused.error_code().as_deref(),
            Some("audit_log_unverified")
        );
        let page = op.get("/operator/verify", &[]).await.unwrap();
        let html = String::from_utf8_lossy(&page.body).into_owned();
        assert_eq!(page.status.as_u16(), 200);
        assert!(html.contains("The audit log does NOT verify."), "{html}");
        assert!(
            html.contains(&format!("<dd id=\"first-bad-entry\">{k} ")),
            "{html}"
        );
        assert!(
            html.contains(&format!("<dd id=\"entries-checked\">{k}</dd>")),
            "{html}"
        );
        let overview = op.get("/operator", &[]).await.unwrap();
        assert!(
            String::from_utf8_lossy(&overview.body)
                .contains(&format!("does not verify after entry {k}: ")),
            "overview"
        );
        // More entries are written, but no checkpoint is signed over them.
        let before = store.checkpoints().await.unwrap().len();
        instance.stop().await.unwrap();
        assert!(
            matches!(
                gw.trail.checkpoint_if_due(&store, gw.now(), true).await,
                Err(siirto_gateway::trail::TrailError::Broken { verified, .. }) if verified == k
            ),
            "a broken trail refuses to sign"
        );
        assert_eq!(store.checkpoints().await.unwrap().len(), before);
        store.close().await;
    }
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

//! Store tests, run against SQLite always and PostgreSQL when `SIIRTO_TEST_POSTGRES` is set.

use std::collections::{BTreeMap, HashSet};

use super::testdb::TestDb;
use super::*;
use siirto_core::consent::Basis;
use siirto_core::lang::Lang;

fn event(action: &str, transfer: Option<&str>, at: i64) -> AuditEvent {
    AuditEvent {
        at: Timestamp::from_millis(at),
        actor: "turku".into(),
        action: action.into(),
        outcome: "ok".into(),
        transfer_id: transfer.map(str::to_owned),
        subject: Some(siirto_core::audit::Pseudonym::parse(&"ab".repeat(32)).unwrap()),
        document_sha256: None,
        detail: BTreeMap::from([("k".to_owned(), "v".to_owned())]),
    }
}

fn new_transfer(id: &str, jti: &str, at: i64) -> NewTransfer {
    NewTransfer {
        id: id.into(),
        submitter: "turku".into(),
        issuer: "https://eservice.turku.fi".into(),
        jti: jti.into(),
        src: "turku".into(),
        dst: "espoo".into(),
        purpose: "school-change".into(),
        scope: "identity achievements".into(),
        subject_pseudonym: "p1".into(),
        subject_sealed: vec![1, 2, 3],
        basis: Basis::Consent,
        guardian_pseudonym: None,
        consent: None,
        consented_at: Timestamp::from_millis(at - 500),
        created_at: Timestamp::from_millis(at),
        replay_until: Timestamp::from_millis(at + 900_000),
    }
}

/// What a receipt signer hands the store: the store keeps it as it is.
fn sealed_stub(text: &str) -> Sealed {
    Sealed {
        key_id: "k1".into(),
        bytes: text.as_bytes().to_vec(),
    }
}

async fn stores() -> Vec<(TestDb, Store)> {
    let mut out = Vec::new();
    for db in TestDb::all().await {
        let store = Store::open(&db.url)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", db.backend));
        out.push((db, store));
    }
    out
}

fn assert_chain(entries: &[AuditEntry]) {
    let mut prev = [0u8; 32];
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.seq, i as u64, "seq gap");
        assert_eq!(e.prev_hash, prev, "entry {} does not chain", e.seq);
        assert_eq!(e.computed_hash(), e.hash);
        prev = e.hash;
    }
}

#[tokio::test]
async fn insert_detects_replay_and_chains_audit() {
    for (db, store) in stores().await {
        let b = db.backend;
        let r = store
            .insert_transfer(
                new_transfer("t1", "j1", 1000),
                vec![event("transfer.accepted", Some("t1"), 1000)],
            )
            .await
            .unwrap();
        assert_eq!(r, Inserted::Accepted, "{b}");
        let again = store
            .insert_transfer(
                new_transfer("t2", "j1", 1001),
                vec![event("transfer.accepted", Some("t2"), 1001)],
            )
            .await
            .unwrap();
        assert_eq!(again, Inserted::Replay, "{b}");
        // The replayed insert wrote nothing: no transfer, no audit entry.
        assert!(store.transfer("t2").await.unwrap().is_none(), "{b}");
        store
            .append_audit(vec![event("transfer.rejected", None, 1002)])
            .await
            .unwrap();
        let entries = store.audit_range(0, 100).await.unwrap();
        assert_eq!(entries.len(), 2, "{b}");
        assert_chain(&entries);
        let t = store.transfer("t1").await.unwrap().unwrap();
        assert_eq!(t.status, Status::Accepted);
        assert_eq!(t.due_at, Some(Timestamp::from_millis(1000)));
        assert_eq!(t.subject_sealed.as_deref(), Some(&[1u8, 2, 3][..]));
        let steps = store.steps("t1").await.unwrap();
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].step, "accepted");
        assert_eq!(store.audit_len().await.unwrap(), 2);
        // Replay ids expire.
        assert_eq!(
            store
                .purge_replay(Timestamp::from_millis(10_000_000))
                .await
                .unwrap(),
            1,
            "{b}"
        );
    }
}

#[tokio::test]
async fn the_basis_guardian_and_consent_text_are_kept() {
    for (db, store) in stores().await {
        let b = db.backend;
        let mut guardian = new_transfer("g1", "jg", 2000);
        guardian.guardian_pseudonym = Some("ab".repeat(32));
        guardian.consent = Some(StoredConsent {
            sha256: "cd".repeat(32),
            version: "0123456789abcdef".into(),
            lang: Lang::Sv,
        });
        let mut statutory = new_transfer("s1", "js", 2001);
        statutory.basis = Basis::Statutory;
        for t in [guardian, statutory] {
            assert_eq!(
                store.insert_transfer(t, vec![]).await.unwrap(),
                Inserted::Accepted,
                "{b}"
            );
        }
        let g = store.transfer("g1").await.unwrap().unwrap();
        assert_eq!(g.basis, Basis::Consent, "{b}");
        assert_eq!(g.guardian_pseudonym, Some("ab".repeat(32)), "{b}");
        assert_eq!(
            g.consent,
            Some(StoredConsent {
                sha256: "cd".repeat(32),
                version: "0123456789abcdef".into(),
                lang: Lang::Sv,
            }),
            "{b}"
        );
        assert_eq!(g.consented_at, Some(Timestamp::from_millis(1500)), "{b}");
        let s = store.transfer("s1").await.unwrap().unwrap();
        assert_eq!(
            (s.basis, s.guardian_pseudonym, s.consent),
            (Basis::Statutory, None, None),
            "{b}"
        );
    }
}

#[tokio::test]
async fn claims_lease_and_fence() {
    for (db, store) in stores().await {
        let b = db.backend;
        store
            .insert_transfer(new_transfer("t1", "j1", 1000), vec![])
            .await
            .unwrap();
        let now = Timestamp::from_millis(2000);
        let lease = Timestamp::from_millis(62_000);
        let got = store.claim("w1", now, lease, 10).await.unwrap();
        assert_eq!(got.len(), 1, "{b}");
        assert_eq!(got[0].status, Status::Fetching);
        assert_eq!(got[0].lease_owner.as_deref(), Some("w1"));
        // Leased: nobody else gets it before the lease expires.
        assert!(
            store.claim("w2", now, lease, 10).await.unwrap().is_empty(),
            "{b}"
        );
        // After expiry another worker takes it over...
        let later = Timestamp::from_millis(62_001);
        let taken = store
            .claim("w2", later, Timestamp::from_millis(122_001), 10)
            .await
            .unwrap();
        assert_eq!(taken.len(), 1, "{b}");
        // ...and the first worker's late write is fenced off, writing nothing.
        let mut late = TransferChange::new("t1", Guard::Lease("w1".into()), later, Status::Failed);
        late.reason = Some(FailureReason::SourceUnavailable);
        late.audit.push(event("fetch.attempt", Some("t1"), 62_001));
        assert_eq!(store.apply(late).await.unwrap(), Applied::LeaseLost, "{b}");
        assert_eq!(store.audit_len().await.unwrap(), 0, "{b}");
        // The lease holder's write lands.
        let mut ok =
            TransferChange::new("t1", Guard::Lease("w2".into()), later, Status::Delivering);
        ok.keep_lease = true;
        ok.due_at = Some(Timestamp::from_millis(122_001));
        ok.steps.push(NewStep {
            at: later,
            step: "fetch".into(),
            outcome: "ok".into(),
            detail: None,
        });
        ok.audit.push(event("fetch.attempt", Some("t1"), 62_001));
        ok.payload = PayloadChange::Put(SealedBlob {
            key_id: "k1".into(),
            sealed: vec![9; 40],
            sha256: "ab".into(),
        });
        let applied = store.apply(ok).await.unwrap();
        assert_eq!(
            applied,
            Applied::Done {
                audit_seqs: vec![0],
                receipt: None,
                peer: None,
            },
            "{b}"
        );
        assert_eq!(store.payload_count().await.unwrap(), 1);
        assert_eq!(store.payload("t1").await.unwrap().unwrap().key_id, "k1");
        let row = store.transfer("t1").await.unwrap().unwrap();
        assert_eq!(row.status, Status::Delivering);
        assert_eq!(row.lease_owner.as_deref(), Some("w2"));
        // Delivery: payload deleted, subject forgotten, receipt signed with the leaf index.
        let mut done =
            TransferChange::new("t1", Guard::Lease("w2".into()), later, Status::Delivered);
        done.payload = PayloadChange::Delete;
        done.forget_subject = true;
        done.document_sha256 = Some("cd".into());
        done.audit
            .push(event("deliver.attempt", Some("t1"), 62_002));
        done.audit
            .push(event("transfer.delivered", Some("t1"), 62_002));
        done.receipt = Some(Box::new(|leaf| {
            sealed_stub(&format!("receipt-for-leaf-{leaf}"))
        }));
        match store.apply(done).await.unwrap() {
            Applied::Done {
                audit_seqs,
                receipt,
                peer: None,
            } => {
                assert_eq!(audit_seqs, vec![1, 2]);
                assert_eq!(receipt, Some(sealed_stub("receipt-for-leaf-2")));
            }
            other => panic!("{b}: {other:?}"),
        }
        let row = store.transfer("t1").await.unwrap().unwrap();
        assert_eq!(row.status, Status::Delivered);
        assert_eq!(row.due_at, None);
        assert_eq!(row.lease_owner, None);
        assert_eq!(row.subject_sealed, None);
        assert_eq!(row.receipt_leaf, Some(2));
        assert_eq!(
            row.receipt_sealed,
            Some(sealed_stub("receipt-for-leaf-2").bytes)
        );
        assert_eq!(row.document_sha256.as_deref(), Some("cd"));
        assert_eq!(store.payload_count().await.unwrap(), 0);
        assert_eq!(store.pending_count().await.unwrap(), 0);
        assert_eq!(store.steps("t1").await.unwrap().len(), 2);
        assert_chain(&store.audit_range(0, 10).await.unwrap());
    }
}

#[tokio::test]
async fn modify_refuses_or_applies_atomically() {
    for (db, store) in stores().await {
        let b = db.backend;
        store
            .insert_transfer(new_transfer("t1", "j1", 1000), vec![])
            .await
            .unwrap();
        let refused: Modified<&'static str> = store
            .modify("t1", Box::new(|_row: &TransferRow| Err("no")))
            .await
            .unwrap();
        assert_eq!(refused, Modified::Refused("no"), "{b}");
        let missing: Modified<&'static str> = store
            .modify("nope", Box::new(|_row: &TransferRow| Err("no")))
            .await
            .unwrap();
        assert_eq!(missing, Modified::NotFound);
        let cancelled: Modified<&'static str> = store
            .modify(
                "t1",
                Box::new(|row: &TransferRow| {
                    assert_eq!(row.status, Status::Accepted);
                    let mut c = TransferChange::new(
                        &row.id,
                        Guard::Any,
                        Timestamp::from_millis(3000),
                        Status::Cancelled,
                    );
                    c.audit
                        .push(event("transfer.cancelled", Some(&row.id), 3000));
                    Ok(c)
                }),
            )
            .await
            .unwrap();
        assert!(
            matches!(cancelled, Modified::Done(Applied::Done { .. })),
            "{b}"
        );
        let row = store.transfer("t1").await.unwrap().unwrap();
        assert_eq!(row.status, Status::Cancelled);
        // Ended transfers are not claimed again.
        assert!(
            store
                .claim(
                    "w",
                    Timestamp::from_millis(9_999_999),
                    Timestamp::from_millis(10_000_000),
                    10
                )
                .await
                .unwrap()
                .is_empty()
        );
    }
}

/// Many writers at once still produce one gap-free chain, and group commit loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_form_one_chain() {
    for (db, store) in stores().await {
        let mut tasks = Vec::new();
        for task in 0..16 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..25 {
                    seqs.extend(
                        s.append_audit(vec![event("x", None, task * 1000 + i)])
                            .await
                            .unwrap(),
                    );
                }
                seqs
            }));
        }
        let mut all = HashSet::new();
        for t in tasks {
            for s in t.await.unwrap() {
                assert!(all.insert(s), "{}: seq {s} handed out twice", db.backend);
            }
        }
        assert_eq!(all.len(), 400);
        let entries = store.audit_range(0, 1000).await.unwrap();
        assert_eq!(entries.len(), 400);
        assert_chain(&entries);
    }
}

/// Two gateway instances sharing one PostgreSQL database: one chain, and no transfer claimed
/// by both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_postgres() {
    let Some(db) = TestDb::postgres().await.unwrap() else {
        eprintln!("NOTE: SIIRTO_TEST_POSTGRES is not set; two-instance test skipped");
        return;
    };
    let a = Store::open(&db.url).await.unwrap();
    let b = Store::open(&db.url).await.unwrap();
    for i in 0..100 {
        let s = if i % 2 == 0 { &a } else { &b };
        s.insert_transfer(
            new_transfer(&format!("t{i}"), &format!("j{i}"), 1000 + i),
            vec![event("accepted", None, i)],
        )
        .await
        .unwrap();
    }
    let now = Timestamp::from_millis(5000);
    let lease = Timestamp::from_millis(65_000);
    let (ca, cb) = tokio::join!(
        async {
            let mut got = Vec::new();
            for _ in 0..20 {
                got.extend(a.claim("a", now, lease, 5).await.unwrap());
            }
            got
        },
        async {
            let mut got = Vec::new();
            for _ in 0..20 {
                got.extend(b.claim("b", now, lease, 5).await.unwrap());
            }
            got
        }
    );
    let mut ids = HashSet::new();
    for t in ca.iter().chain(cb.iter()) {
        assert!(ids.insert(t.id.clone()), "{} claimed twice", t.id);
    }
    assert_eq!(ids.len(), 100);
    let (ra, rb) = tokio::join!(
        async {
            for i in 0..50 {
                a.append_audit(vec![event("a", None, i)]).await.unwrap();
            }
        },
        async {
            for i in 0..50 {
                b.append_audit(vec![event("b", None, i)]).await.unwrap();
            }
        }
    );
    let ((), ()) = (ra, rb);
    let entries = a.audit_range(0, 1000).await.unwrap();
    assert_eq!(entries.len(), 200);
    assert_chain(&entries);
}

#[tokio::test]
async fn audit_query_filters_and_pages() {
    for (db, store) in stores().await {
        for i in 0..10 {
            let action = if i % 2 == 0 { "even" } else { "odd" };
            store
                .append_audit(vec![event(
                    action,
                    Some(if i < 5 { "a" } else { "b" }),
                    1000 + i,
                )])
                .await
                .unwrap();
        }
        let mut filter = AuditFilter {
            action: Some("even".into()),
            limit: 2,
            ..AuditFilter::default()
        };
        let p1 = store.audit_query(&filter).await.unwrap();
        assert_eq!(
            p1.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![0, 2],
            "{}",
            db.backend
        );
        filter.after = p1.next_cursor;
        let p2 = store.audit_query(&filter).await.unwrap();
        assert_eq!(
            p2.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![4, 6]
        );
        filter.after = p2.next_cursor;
        let p3 = store.audit_query(&filter).await.unwrap();
        assert_eq!(
            p3.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![8]
        );
        assert_eq!(p3.next_cursor, None);
        let by_transfer = store
            .audit_query(&AuditFilter {
                transfer: Some("b".into()),
                since: Some(Timestamp::from_millis(1006)),
                until: Some(Timestamp::from_millis(1009)),
                limit: 50,
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(
            by_transfer
                .entries
                .iter()
                .map(|e| e.seq)
                .collect::<Vec<_>>(),
            vec![6, 7, 8]
        );
    }
}

#[tokio::test]
async fn steps_keep_their_order_and_a_receipt_names_the_last_leaf() {
    for (db, store) in stores().await {
        let b = db.backend;
        store
            .insert_transfer(
                new_transfer("s1", "js1", 1000),
                vec![event("transfer.accepted", Some("s1"), 1000)],
            )
            .await
            .unwrap();
        let step = |name: &str, detail: Option<&str>| NewStep {
            at: Timestamp::from_millis(2000),
            step: name.into(),
            outcome: "ok".into(),
            detail: detail.map(str::to_owned),
        };
        let mut first = TransferChange::new(
            "s1",
            Guard::Any,
            Timestamp::from_millis(2000),
            Status::Delivering,
        );
        first.steps = vec![
            step("fetch", Some("1 byte")),
            step("validate", None),
            step("convert", Some("a → b")),
        ];
        first.audit = (0..300)
            .map(|i| event("source.fetch", Some("s1"), 2000 + i))
            .collect();
        let Applied::Done { audit_seqs, .. } = store.apply(first).await.unwrap() else {
            panic!("{b}: applied");
        };
        assert_eq!(audit_seqs, (1..301).collect::<Vec<u64>>(), "{b}");
        let mut second = TransferChange::new(
            "s1",
            Guard::Any,
            Timestamp::from_millis(3000),
            Status::Delivered,
        );
        second.steps = vec![step("deliver", None), step("done", Some("x"))];
        second.audit = vec![
            event("destination.deliver", Some("s1"), 3000),
            event("transfer.delivered", Some("s1"), 3000),
        ];
        second.receipt = Some(Box::new(|leaf| sealed_stub(&format!("receipt-for-{leaf}"))));
        let Applied::Done { receipt, .. } = store.apply(second).await.unwrap() else {
            panic!("{b}: applied");
        };
        assert_eq!(receipt, Some(sealed_stub("receipt-for-302")), "{b}");
        let names: Vec<(u32, String, Option<String>)> = store
            .steps("s1")
            .await
            .unwrap()
            .into_iter()
            .map(|s| (s.seq, s.step, s.detail))
            .collect();
        assert_eq!(
            names,
            vec![
                (0, "accepted".into(), None),
                (1, "fetch".into(), Some("1 byte".into())),
                (2, "validate".into(), None),
                (3, "convert".into(), Some("a → b".into())),
                (4, "deliver".into(), None),
                (5, "done".into(), Some("x".into())),
            ],
            "{b}"
        );
        let row = store.transfer("s1").await.unwrap().unwrap();
        assert_eq!(
            row.receipt_sealed,
            Some(sealed_stub("receipt-for-302").bytes),
            "{b}"
        );
        assert_chain(&store.audit_range(0, 1000).await.unwrap());
        assert_eq!(store.audit_len().await.unwrap(), 303, "{b}");
    }
}

/// Each claim has its own lease token: when an instance claims its own expired lease again,
/// the earlier claim's task is fenced off like any other. An empty token is no wildcard.
#[tokio::test]
async fn a_reclaim_by_the_same_instance_fences_the_earlier_claim() {
    for (db, store) in stores().await {
        let b = db.backend;
        store
            .insert_transfer(new_transfer("t1", "j1", 1000), vec![])
            .await
            .unwrap();
        let first = store
            .claim(
                "gw-a/1",
                Timestamp::from_millis(2000),
                Timestamp::from_millis(3000),
                10,
            )
            .await
            .unwrap();
        assert_eq!(first[0].lease_owner.as_deref(), Some("gw-a/1"), "{b}");
        // The first task outlasts its lease; the same instance claims the transfer again.
        let second = store
            .claim(
                "gw-a/2",
                Timestamp::from_millis(3001),
                Timestamp::from_millis(4001),
                10,
            )
            .await
            .unwrap();
        assert_eq!(second.len(), 1, "{b}");
        assert_eq!(second[0].lease_owner.as_deref(), Some("gw-a/2"), "{b}");
        for stale in ["gw-a/1", "gw-a", ""] {
            let mut late = TransferChange::new(
                "t1",
                Guard::Lease(stale.into()),
                Timestamp::from_millis(3002),
                Status::Failed,
            );
            late.reason = Some(FailureReason::SourceUnavailable);
            late.audit.push(event("source.fetch", Some("t1"), 3002));
            assert_eq!(
                store.apply(late).await.unwrap(),
                Applied::LeaseLost,
                "{b}: token {stale:?}"
            );
        }
        assert_eq!(store.audit_len().await.unwrap(), 0, "{b}");
        let row = store.transfer("t1").await.unwrap().unwrap();
        assert_eq!(row.status, Status::Fetching, "{b}");
        let mut ok = TransferChange::new(
            "t1",
            Guard::Lease("gw-a/2".into()),
            Timestamp::from_millis(3003),
            Status::Fetching,
        );
        ok.due_at = Some(Timestamp::from_millis(5000));
        assert!(
            matches!(store.apply(ok).await.unwrap(), Applied::Done { .. }),
            "{b}"
        );
    }
}

/// A claim that finds an earlier lease never released counts an interrupted attempt (also
/// across several crashes in a row); a write that audits them resets the count; a lease
/// released by a write is no interruption.
#[tokio::test]
async fn claims_count_interrupted_attempts_until_audited() {
    for (db, store) in stores().await {
        let b = db.backend;
        store
            .insert_transfer(new_transfer("t1", "j1", 1000), vec![])
            .await
            .unwrap();
        let claim = |token: &'static str, at: i64| {
            let store = store.clone();
            async move {
                store
                    .claim(
                        token,
                        Timestamp::from_millis(at),
                        Timestamp::from_millis(at + 1000),
                        10,
                    )
                    .await
                    .unwrap()
            }
        };
        // First claim of an accepted transfer: nothing was interrupted.
        let got = claim("a/1", 2000).await;
        assert_eq!(got[0].interrupted, 0, "{b}");
        // The worker stores the fetched document and keeps its lease for the delivery...
        let mut fetched = TransferChange::new(
            "t1",
            Guard::Lease("a/1".into()),
            Timestamp::from_millis(2100),
            Status::Delivering,
        );
        fetched.keep_lease = true;
        fetched.interrupted_audited = true;
        fetched.due_at = Some(Timestamp::from_millis(3100));
        assert!(matches!(
            store.apply(fetched).await.unwrap(),
            Applied::Done { .. }
        ));
        // ...and dies during it; so does the next instance.
        let got = claim("b/1", 3101).await;
        assert_eq!(got.len(), 1, "{b}");
        assert_eq!(got[0].status, Status::Delivering, "{b}");
        assert_eq!(got[0].interrupted, 1, "{b}");
        let got = claim("c/1", 4102).await;
        assert_eq!(
            got[0].interrupted, 2,
            "{b}: counts accumulate until audited"
        );
        assert_eq!(got[0].attempts, 0, "{b}: the store does not count attempts");
        // A write that does not say it audited them keeps the count (an API action, say)...
        let mut keep = TransferChange::new(
            "t1",
            Guard::Lease("c/1".into()),
            Timestamp::from_millis(4200),
            Status::Delivering,
        );
        keep.keep_lease = true;
        keep.due_at = Some(Timestamp::from_millis(5200));
        store.apply(keep).await.unwrap();
        assert_eq!(
            store.transfer("t1").await.unwrap().unwrap().interrupted,
            2,
            "{b}"
        );
        // ...the worker's write that audits them resets it, and releases the lease.
        let mut retry = TransferChange::new(
            "t1",
            Guard::Lease("c/1".into()),
            Timestamp::from_millis(4300),
            Status::Delivering,
        );
        retry.attempts = 3;
        retry.interrupted_audited = true;
        retry.due_at = Some(Timestamp::from_millis(4400));
        retry
            .audit
            .push(event("destination.deliver", Some("t1"), 4300));
        store.apply(retry).await.unwrap();
        let row = store.transfer("t1").await.unwrap().unwrap();
        assert_eq!(row.interrupted, 0, "{b}");
        assert_eq!(row.lease_owner, None, "{b}");
        // A released lease is no interruption.
        let got = claim("c/2", 4400).await;
        assert_eq!(got[0].interrupted, 0, "{b}");
        assert_eq!(got[0].attempts, 3, "{b}");
    }
}

/// A database error in one operation rolls the whole batch back: that operation gets its own
/// error, the others `RolledBack`, and nothing of any of them is kept — not even the replay id
/// of an operation that had already written.
#[tokio::test]
async fn a_failing_operation_rolls_its_batch_back() {
    for (db, store) in stores().await {
        let b = db.backend;
        let mut replies = Vec::new();
        let mut ops = Vec::new();
        // The second reuses the first's transfer id: a primary-key violation.
        for (id, jti) in [("dup", "j1"), ("dup", "j2"), ("other", "j3")] {
            let (tx, rx) = oneshot::channel();
            ops.push(Op::Insert(
                new_transfer(id, jti, 1000),
                vec![event("transfer.accepted", Some(id), 1000)],
                tx,
            ));
            replies.push(rx);
        }
        match &store.pool {
            Pool::Sqlite(p) => super::sqlite::run_batch(p, ops).await,
            Pool::Postgres(p) => super::postgres::run_batch(p, ops).await,
        }
        let mut answers = Vec::new();
        for rx in replies {
            answers.push(rx.await.expect("answered"));
        }
        assert!(
            matches!(&answers[0], Err(StoreError::RolledBack(m)) if m.contains("another operation")),
            "{b}: {:?}",
            answers[0]
        );
        assert!(
            matches!(&answers[1], Err(StoreError::Database(_))),
            "{b}: {:?}",
            answers[1]
        );
        assert!(
            matches!(&answers[2], Err(StoreError::RolledBack(_))),
            "{b}: the operation after the failure is not run: {:?}",
            answers[2]
        );
        assert!(store.transfer("dup").await.unwrap().is_none(), "{b}");
        assert!(store.transfer("other").await.unwrap().is_none(), "{b}");
        assert_eq!(store.audit_len().await.unwrap(), 0, "{b}");
        // The first operation's `jti` was rolled back with it: it can be used now.
        let again = store
            .insert_transfer(new_transfer("dup", "j1", 2000), vec![])
            .await
            .unwrap();
        assert_eq!(again, Inserted::Accepted, "{b}");
    }
}

/// Receipts stored in clear before migration 0003 are sealed once (by the closure given) and the
/// clear column emptied; a second run finds nothing to do.
#[tokio::test]
async fn receipts_stored_in_clear_are_sealed_once() {
    for (_db, store) in stores().await {
        let b = store.backend_name();
        for id in ["c1", "c2", "c3"] {
            let t = new_transfer(id, &format!("j-{id}"), 1000);
            assert_eq!(
                store.insert_transfer(t, vec![]).await.unwrap(),
                Inserted::Accepted
            );
        }
        // As an earlier version left them: two delivered transfers with a clear receipt.
        let clear = store
            .execute_raw(
                "UPDATE transfers SET status = 'delivered', receipt = 'jws-of-' || id \
                 WHERE id IN ('c1', 'c2')",
            )
            .await
            .unwrap();
        assert_eq!(clear, 2, "{b}");
        let sealed = store
            .seal_clear_receipts(|id, receipt| Sealed {
                key_id: "k9".into(),
                bytes: format!("sealed({id}, {receipt})").into_bytes(),
            })
            .await
            .unwrap();
        assert_eq!(sealed, 2, "{b}");
        for (id, expected) in [
            ("c1", Some("sealed(c1, jws-of-c1)")),
            ("c2", Some("sealed(c2, jws-of-c2)")),
            ("c3", None),
        ] {
            let row = store.transfer(id).await.unwrap().unwrap();
            assert_eq!(
                row.receipt_sealed,
                expected.map(|e| e.as_bytes().to_vec()),
                "{b} {id}"
            );
        }
        let left = store
            .execute_raw("UPDATE transfers SET receipt = NULL WHERE receipt IS NOT NULL")
            .await
            .unwrap();
        assert_eq!(left, 0, "{b}: a clear receipt is left");
        let keyed = store
            .execute_raw("UPDATE transfers SET receipt_key_id = 'k9' WHERE receipt_key_id = 'k9'")
            .await
            .unwrap();
        assert_eq!(keyed, 2, "{b}: the key id is stored");
        assert_eq!(
            store
                .seal_clear_receipts(|_, _| sealed_stub("x"))
                .await
                .unwrap(),
            0,
            "{b}"
        );
    }
}

#[tokio::test]
async fn transfer_listing_filters_pages_counts_and_names_the_last_error() {
    for (db, store) in stores().await {
        let b = db.backend;
        // Ten transfers a second apart: even ones to espoo about p1, odd ones to oulu about p2.
        for i in 0..10i64 {
            let mut t = new_transfer(&format!("t{i}"), &format!("j{i}"), 1_000 * (i + 1));
            if i % 2 == 1 {
                t.dst = "oulu".into();
                t.subject_pseudonym = "p2".into();
            }
            store.insert_transfer(t, Vec::new()).await.unwrap();
        }
        // t3 failed; t5 delivering with two failed attempts (the last one's error is shown);
        // t7 delivered after a failed attempt (finished: no error is shown).
        let mut failed = TransferChange::new(
            "t3",
            Guard::Any,
            Timestamp::from_millis(20_000),
            Status::Failed,
        );
        failed.reason = Some(FailureReason::SourceNotFound);
        store.apply(failed).await.unwrap();
        for (id, status, outcomes) in [
            ("t5", Status::Delivering, ["connect_failed", "timeout"]),
            ("t7", Status::Delivered, ["timeout", "delivered"]),
        ] {
            let mut change =
                TransferChange::new(id, Guard::Any, Timestamp::from_millis(21_000), status);
            change.due_at = (!status.is_terminal()).then_some(Timestamp::from_millis(99_000));
            for (n, outcome) in outcomes.iter().enumerate() {
                change.steps.push(NewStep {
                    at: Timestamp::from_millis(21_000),
                    step: "deliver".into(),
                    outcome: (*outcome).into(),
                    detail: Some(format!("attempt {}", n + 1)),
                });
            }
            store.apply(change).await.unwrap();
        }

        let mut filter = TransferFilter {
            limit: 4,
            ..TransferFilter::default()
        };
        let mut seen = Vec::new();
        loop {
            let page = store.transfers_query(&filter).await.unwrap();
            seen.extend(page.transfers.iter().map(|t| t.row.id.clone()));
            match page.next_cursor {
                Some(c) => {
                    assert_eq!(TransferCursor::parse(&c.encode()), Some(c.clone()));
                    filter.after = Some(c);
                }
                None => break,
            }
        }
        let newest_first: Vec<String> = (0..10).rev().map(|i| format!("t{i}")).collect();
        assert_eq!(seen, newest_first, "{b}");

        let page = store
            .transfers_query(&TransferFilter {
                dst: Some("oulu".into()),
                since: Some(Timestamp::from_millis(4_000)),
                until: Some(Timestamp::from_millis(9_000)),
                limit: 100,
                ..TransferFilter::default()
            })
            .await
            .unwrap();
        let ids: Vec<&str> = page.transfers.iter().map(|t| t.row.id.as_str()).collect();
        assert_eq!(ids, ["t7", "t5", "t3"], "{b}");
        let errors: Vec<Option<&str>> = page
            .transfers
            .iter()
            .map(|t| t.last_error.as_deref())
            .collect();
        assert_eq!(errors, [None, Some("timeout: attempt 2"), None], "{b}");

        let by_reason = TransferFilter {
            reason: Some(FailureReason::SourceNotFound),
            subject: Some("p2".into()),
            purpose: Some("school-change".into()),
            src: Some("turku".into()),
            limit: 100,
            ..TransferFilter::default()
        };
        let page = store.transfers_query(&by_reason).await.unwrap();
        assert_eq!(page.transfers.len(), 1, "{b}");
        assert_eq!(page.transfers[0].row.id, "t3");
        let by_id = TransferFilter {
            id: Some("t3".into()),
            ..by_reason.clone()
        };
        assert_eq!(
            store.transfers_query(&by_id).await.unwrap().transfers.len(),
            1,
            "{b}"
        );
        let none = TransferFilter {
            purpose: Some("study-admission".into()),
            ..by_reason.clone()
        };
        assert!(
            store
                .transfers_query(&none)
                .await
                .unwrap()
                .transfers
                .is_empty()
        );

        // Totals ignore the status asked for, and count what the other filters take.
        let totals = store
            .transfer_totals(&TransferFilter {
                subject: Some("p2".into()),
                status: Some(Status::Failed),
                ..TransferFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(
            totals,
            [
                (Status::Accepted, 2),
                (Status::Delivering, 1),
                (Status::Delivered, 1),
                (Status::Failed, 1)
            ],
            "{b}"
        );

        // The audit entries about a student: naming the pseudonym, or of its transfers.
        let about = |s: &str| siirto_core::audit::Pseudonym::parse(&s.repeat(32)).unwrap();
        let mut named = event("student.history", None, 30_000);
        named.subject = Some(about("cd"));
        let mut of_transfer = event("source.fetch", Some("t4"), 30_001);
        of_transfer.subject = None;
        let other = event("source.fetch", Some("t5"), 30_002);
        store
            .append_audit(vec![named, of_transfer, other])
            .await
            .unwrap();
        store
            .insert_transfer(
                NewTransfer {
                    subject_pseudonym: "cd".repeat(32),
                    ..new_transfer("t-cd", "j-cd", 500)
                },
                Vec::new(),
            )
            .await
            .unwrap();
        let mut cd = event("transfer.accepted", Some("t-cd"), 30_003);
        cd.subject = None;
        store.append_audit(vec![cd]).await.unwrap();
        let found = store
            .audit_query(&AuditFilter {
                subject: Some("cd".repeat(32)),
                limit: 100,
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        let actions: Vec<&str> = found
            .entries
            .iter()
            .map(|e| e.event.action.as_str())
            .collect();
        assert_eq!(actions, ["student.history", "transfer.accepted"], "{b}");
    }
}

fn consent_request(id: &str, jti: &str, at: i64) -> NewConsentRequest {
    NewConsentRequest {
        id: id.into(),
        eservice: "eservice".into(),
        src: "koski-omadata".into(),
        redirect_uri: "https://eservice.example/back".into(),
        state_sha256: "ab".repeat(32),
        verifier_sealed: vec![9, 9, 9],
        pending_sealed: vec![8, 8],
        created_at: Timestamp::from_millis(at),
        expires_at: Timestamp::from_millis(at + 600_000),
        issuer: "https://eservice.turku.fi".into(),
        jti: jti.into(),
        replay_until: Timestamp::from_millis(at + 900_000),
    }
}

/// The OmaData flow's writes (issue 25), on each backend: a consent request uses up its
/// authorization's `jti`; it is answered once (a second answer, granted or declined, writes
/// nothing); a grant stores the transfer with the code in one transaction; the code is taken
/// at most once; the token is kept until a change moves the transfer past the fetch, which
/// forgets code, token and verifier.
#[tokio::test]
async fn consent_requests_are_answered_once_and_their_secrets_forgotten() {
    for (db, store) in stores().await {
        let b = db.backend;
        let audit = |a: &str| vec![event(a, None, 1000)];
        assert_eq!(
            store
                .insert_consent_request(
                    consent_request("c1", "j1", 1000),
                    audit("consent.requested")
                )
                .await
                .unwrap(),
            Inserted::Accepted,
            "{b}"
        );
        // The same authorization again: a replay, for a consent request or a transfer.
        assert_eq!(
            store
                .insert_consent_request(consent_request("c2", "j1", 1000), audit("x"))
                .await
                .unwrap(),
            Inserted::Replay,
            "{b}"
        );
        assert_eq!(
            store
                .insert_transfer(new_transfer("t0", "j1", 1000), audit("x"))
                .await
                .unwrap(),
            Inserted::Replay,
            "{b}"
        );
        assert!(store.consent_request("c2").await.unwrap().is_none(), "{b}");
        let row = store.consent_request("c1").await.unwrap().expect("row");
        assert_eq!(row.status, "pending");
        assert_eq!(row.verifier_sealed.as_deref(), Some(&[9u8, 9, 9][..]));
        assert_eq!(row.expires_at, Timestamp::from_millis(601_000));

        // Granted: the transfer (whose jti the request already used) is stored with the code.
        let granted = ConsentAnswer::Granted {
            transfer: Box::new(new_transfer("t1", "j1", 2000)),
            code_sealed: vec![7, 7],
        };
        assert!(
            store
                .answer_consent_request(
                    "c1",
                    granted,
                    Timestamp::from_millis(2000),
                    audit("consent.answered")
                )
                .await
                .unwrap()
        );
        let t = store.transfer("t1").await.unwrap().expect("transfer");
        assert_eq!(t.status, Status::Accepted, "{b}");
        let row = store.consent_request_of("t1").await.unwrap().expect("row");
        assert_eq!((row.id.as_str(), row.status.as_str()), ("c1", "granted"));
        assert_eq!(row.pending_sealed, None, "{b}");
        // A second answer writes nothing.
        assert!(
            !store
                .answer_consent_request(
                    "c1",
                    ConsentAnswer::Declined,
                    Timestamp::from_millis(3000),
                    audit("x")
                )
                .await
                .unwrap()
        );
        assert_eq!(
            store.consent_request("c1").await.unwrap().unwrap().status,
            "granted"
        );

        // The code is taken once.
        let before = store.audit_len().await.unwrap();
        assert_eq!(
            store
                .take_consent_code("t1", audit("omadata.exchange"))
                .await
                .unwrap(),
            Some(vec![7, 7])
        );
        assert_eq!(
            store
                .take_consent_code("t1", audit("omadata.exchange"))
                .await
                .unwrap(),
            None
        );
        assert_eq!(store.audit_len().await.unwrap(), before + 2, "{b}");
        store
            .put_consent_token(
                "t1",
                vec![6, 6],
                Timestamp::from_millis(4000),
                audit("omadata.exchange"),
            )
            .await
            .unwrap();
        let row = store.consent_request("c1").await.unwrap().unwrap();
        assert_eq!(row.token_sealed.as_deref(), Some(&[6u8, 6][..]));
        assert_eq!(
            row.verifier_sealed, None,
            "the verifier is forgotten after the exchange"
        );
        assert_eq!(row.exchanged_at, Some(Timestamp::from_millis(4000)));

        // A retryable fetch failure keeps the token; the change past the fetch forgets it.
        let mut keep = TransferChange::new(
            "t1",
            Guard::Any,
            Timestamp::from_millis(5000),
            Status::Fetching,
        );
        keep.due_at = Some(Timestamp::from_millis(6000));
        store.apply(keep).await.unwrap();
        assert!(
            store
                .consent_request("c1")
                .await
                .unwrap()
                .unwrap()
                .token_sealed
                .is_some()
        );
        let past = TransferChange::new(
            "t1",
            Guard::Any,
            Timestamp::from_millis(7000),
            Status::Delivering,
        );
        store.apply(past).await.unwrap();
        let row = store.consent_request("c1").await.unwrap().unwrap();
        assert_eq!(
            (row.code_sealed, row.token_sealed, row.verifier_sealed),
            (None, None, None),
            "{b}"
        );

        // Declined: no transfer, no code.
        store
            .insert_consent_request(
                consent_request("c3", "j3", 1000),
                audit("consent.requested"),
            )
            .await
            .unwrap();
        assert!(
            store
                .answer_consent_request(
                    "c3",
                    ConsentAnswer::Declined,
                    Timestamp::from_millis(2000),
                    audit("consent.answered")
                )
                .await
                .unwrap()
        );
        let row = store.consent_request("c3").await.unwrap().unwrap();
        assert_eq!(
            (row.status.as_str(), row.transfer_id, row.verifier_sealed),
            ("declined", None, None)
        );
        // Housekeeping: expired unanswered or declined requests go; granted ones stay with
        // their transfer.
        store
            .insert_consent_request(
                consent_request("c4", "j4", 1000),
                audit("consent.requested"),
            )
            .await
            .unwrap();
        store
            .purge_replay(Timestamp::from_millis(602_000))
            .await
            .unwrap();
        assert!(
            store.consent_request("c4").await.unwrap().is_some(),
            "kept a day: {b}"
        );
        store
            .purge_replay(Timestamp::from_millis(602_000 + 86_400_000))
            .await
            .unwrap();
        assert!(store.consent_request("c3").await.unwrap().is_none(), "{b}");
        assert!(store.consent_request("c4").await.unwrap().is_none(), "{b}");
        assert!(store.consent_request("c1").await.unwrap().is_some(), "{b}");
        assert_chain(&store.audit_range(0, 1000).await.unwrap());
    }
}

/// Audit retention's store half: a base not built from the stored entry before its size is
/// refused with nothing deleted; one that is deletes the entries before it, keeps the base, and
/// the next entry chains to the kept head even when every older entry is gone.
#[tokio::test]
async fn pruning_the_audit_keeps_its_base_and_refuses_one_from_another_log() {
    for (db, store) in stores().await {
        let b = db.backend;
        let seqs = store
            .append_audit((0..4).map(|i| event("step", None, 1000 + i)).collect())
            .await
            .unwrap();
        assert_eq!(seqs, [0, 1, 2, 3], "{b}");
        let entries = store.audit_range(0, 10).await.unwrap();
        let mut tree = siirto_core::audit::MerkleTree::new();
        for e in &entries {
            tree.push(e.leaf_hash());
        }
        let base = PrunedBase::at(&tree, 4, entries[3].hash, &[4], None).unwrap();

        let mut foreign = base.clone();
        foreign.head = [7; 32];
        let err = store
            .prune_audit(
                foreign,
                Timestamp::from_millis(2000),
                event("retention.audit_pruned", None, 2000),
            )
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("entry 3 is not the one the pruning point was computed from"),
            "{b}: {err}"
        );
        assert_eq!(
            store.audit_range(0, 10).await.unwrap().len(),
            4,
            "{b}: nothing deleted"
        );
        assert!(store.audit_base().await.unwrap().is_none(), "{b}");

        let deleted = store
            .prune_audit(
                base.clone(),
                Timestamp::from_millis(2000),
                event("retention.audit_pruned", None, 2000),
            )
            .await
            .unwrap();
        assert_eq!(deleted, 4, "{b}");
        assert_eq!(store.audit_base().await.unwrap(), Some(base.clone()), "{b}");
        let kept = store.audit_range(0, 10).await.unwrap();
        assert_eq!(kept.len(), 1, "{b}: only the pruning's own entry");
        assert_eq!((kept[0].seq, kept[0].prev_hash), (4, base.head), "{b}");
        assert_eq!(
            kept[0]
                .event
                .detail
                .get("pruned_before")
                .map(String::as_str),
            Some("4"),
            "{b}"
        );
    }
}

//! Tampering of every kind with a stored audit log is detected, and the error names the first
//! bad entry; an untouched log verifies; a million entries verify well within a minute.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use siirto_core::audit::{
    AuditEntry, AuditEvent, AuditLog, AuditSigningKey, CheckpointError, CheckpointSigner,
    Pseudonymizer, VerifyError, verify_log,
};
use siirto_core::clock::Timestamp;
use siirto_core::student_id::StudentId;

const ORIGIN: &str = "siirto.example.fi/audit";

fn signer() -> CheckpointSigner {
    // A fresh key per run: nothing here depends on a particular key.
    let pkcs8 =
        ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    CheckpointSigner::new(
        AuditSigningKey::from_pkcs8_der(pkcs8.as_ref()).unwrap(),
        ORIGIN,
    )
    .unwrap()
}

fn event(i: u64, pseudonymizer: &Pseudonymizer) -> AuditEvent {
    let mut e = AuditEvent::new(
        Timestamp::from_millis(1_795_448_460_000 + i as i64 * 7),
        if i.is_multiple_of(3) {
            "turku"
        } else {
            "gateway"
        },
        [
            "transfer.accepted",
            "transfer.fetched",
            "transfer.delivered",
        ][(i % 3) as usize],
        "ok",
    );
    e.transfer_id = Some(format!("transfer-{}", i / 3));
    if i.is_multiple_of(2) {
        let id = StudentId::parse("131052-308T").unwrap();
        e.subject = Some(pseudonymizer.pseudonym(&id));
    }
    if i % 3 == 2 {
        e.document_sha256 = Some([i as u8; 32]);
    }
    e.detail.insert("attempt".into(), (i % 4).to_string());
    e
}

struct Log {
    signer: CheckpointSigner,
    entries: Vec<AuditEntry>,
    checkpoints: Vec<String>,
}

/// 50 entries; checkpoints at sizes 0, 16, 32 and 48.
fn log() -> Log {
    let signer = signer();
    let p = Pseudonymizer::new(&[42u8; 32]).unwrap();
    let mut log = AuditLog::new();
    let mut entries = Vec::new();
    let mut checkpoints = vec![
        signer
            .sign(0, log.root(), Timestamp::from_millis(0))
            .into_string(),
    ];
    for i in 0..50 {
        entries.push(log.append(event(i, &p)));
        if log.size().is_multiple_of(16) {
            let t = Timestamp::from_millis(1_795_448_460_000 + i as i64 * 7);
            checkpoints.push(signer.sign(log.size(), log.root(), t).into_string());
        }
    }
    Log {
        signer,
        entries,
        checkpoints,
    }
}

fn verify(
    log: &Log,
    entries: Vec<AuditEntry>,
) -> Result<siirto_core::audit::VerifySummary, VerifyError> {
    verify_log(entries, &log.checkpoints, &log.signer.verifier())
}

/// Re-seals `events` from entry `from` on, as someone able to rewrite the store would.
fn rewrite_from(entries: &[AuditEntry], from: usize, events: Vec<AuditEvent>) -> Vec<AuditEntry> {
    let mut log = AuditLog::resume(entries[..from].to_vec()).unwrap();
    let mut out = entries[..from].to_vec();
    for e in events {
        out.push(log.append(e));
    }
    out
}

#[test]
fn untouched_log_verifies() {
    let l = log();
    let s = verify(&l, l.entries.clone()).unwrap();
    assert_eq!(s.entries, 50);
    assert_eq!(s.checkpoints, 4);
    assert_eq!(s.unanchored, 2);
    assert_eq!(s.head_hash, l.entries[49].hash);
}

#[test]
fn every_kind_of_tampering_names_the_first_bad_entry() {
    let l = log();
    let forged = |seq: u64, prev: &AuditEntry| {
        let mut e = AuditEvent::new(Timestamp::from_millis(1), "ops", "forged", "ok");
        e.transfer_id = Some("forged".into());
        let mut log = AuditLog::resume(l.entries[..=prev.seq as usize].to_vec()).unwrap();
        let mut entry = log.append(e);
        entry.seq = seq;
        entry
    };
    type Tamper<'a> = Box<dyn Fn(&mut Vec<AuditEntry>) + 'a>;
    let cases: Vec<(&str, Tamper, VerifyError)> = vec![
        (
            "actor changed",
            Box::new(|e| e[20].event.actor = "operator".into()),
            VerifyError::HashMismatch { seq: 20 },
        ),
        (
            "outcome changed on the last entry",
            Box::new(|e| e[49].event.outcome = "failed".into()),
            VerifyError::HashMismatch { seq: 49 },
        ),
        (
            "time changed",
            Box::new(|e| e[3].event.at = Timestamp::from_millis(0)),
            VerifyError::HashMismatch { seq: 3 },
        ),
        (
            "subject removed",
            Box::new(|e| e[0].event.subject = None),
            VerifyError::HashMismatch { seq: 0 },
        ),
        (
            "document hash changed",
            Box::new(|e| e[5].event.document_sha256 = Some([0; 32])),
            VerifyError::HashMismatch { seq: 5 },
        ),
        (
            "detail added",
            Box::new(|e| {
                e[7].event.detail.insert("note".into(), "x".into());
            }),
            VerifyError::HashMismatch { seq: 7 },
        ),
        (
            "stored hash changed",
            Box::new(|e| e[11].hash[0] ^= 1),
            VerifyError::HashMismatch { seq: 11 },
        ),
        (
            "deleted",
            Box::new(|e| {
                e.remove(20);
            }),
            VerifyError::Missing {
                seq: 20,
                next: Some(21),
            },
        ),
        (
            "first entry deleted",
            Box::new(|e| {
                e.remove(0);
            }),
            VerifyError::Missing {
                seq: 0,
                next: Some(1),
            },
        ),
        (
            "deleted and the rest renumbered",
            Box::new(|e| {
                e.remove(20);
                for (i, x) in e.iter_mut().enumerate() {
                    x.seq = i as u64;
                }
            }),
            VerifyError::Renumbered {
                seq: 20,
                written_as: 21,
            },
        ),
        (
            "inserted with a repeated seq",
            Box::new(move |e| {
                let f = forged(20, &e[19].clone());
                e.insert(20, f);
            }),
            VerifyError::Duplicate { seq: 20, after: 20 },
        ),
        (
            "inserted and the rest renumbered",
            Box::new(move |e| {
                let f = forged(20, &e[19].clone());
                e.insert(20, f);
                for (i, x) in e.iter_mut().enumerate() {
                    x.seq = i as u64;
                }
            }),
            VerifyError::Inserted { seq: 20 },
        ),
        (
            "two swapped, seqs kept",
            Box::new(|e| e.swap(20, 21)),
            VerifyError::Reordered { seq: 20, other: 21 },
        ),
        (
            "two swapped, seqs exchanged",
            Box::new(|e| {
                e.swap(20, 21);
                e[20].seq = 20;
                e[21].seq = 21;
            }),
            VerifyError::Renumbered {
                seq: 20,
                written_as: 21,
            },
        ),
        (
            "prev_hash and hash recomputed for an edited entry",
            Box::new(|e| {
                e[20].event.action = "transfer.cancelled".into();
                e[20].hash = e[20].computed_hash();
            }),
            VerifyError::BrokenLink { seq: 21 },
        ),
        (
            "tail truncated after a checkpoint",
            Box::new(|e| e.truncate(40)),
            VerifyError::Truncated {
                entries: 40,
                tree_size: 48,
                time: Timestamp::from_millis(1_795_448_460_000 + 47 * 7),
            },
        ),
        (
            "everything after 20 removed",
            Box::new(|e| e.truncate(20)),
            VerifyError::Truncated {
                entries: 20,
                tree_size: 32,
                time: Timestamp::from_millis(1_795_448_460_000 + 31 * 7),
            },
        ),
    ];
    for (name, tamper, expected) in cases {
        let mut entries = l.entries.clone();
        tamper(&mut entries);
        let got = verify(&l, entries).unwrap_err();
        assert_eq!(got, expected, "{name}: {got}");
        assert!(got.first_bad_seq().is_some(), "{name}");
        assert!(
            got.to_string()
                .contains(&got.first_bad_seq().unwrap().to_string()),
            "{name}: the message names the entry: {got}"
        );
    }
}

#[test]
fn rewriting_the_chain_is_caught_by_the_checkpoints() {
    let l = log();
    let p = Pseudonymizer::new(&[42u8; 32]).unwrap();
    // Change entry 20 and re-seal everything after it: the chain is consistent again, but the
    // checkpoint of size 32 was signed over the original entries.
    let mut events: Vec<AuditEvent> = (20..50).map(|i| event(i, &p)).collect();
    events[0].outcome = "failed".into();
    let rewritten = rewrite_from(&l.entries, 20, events);
    let e = verify(&l, rewritten).unwrap_err();
    assert!(
        matches!(
            e,
            VerifyError::CheckpointRootMismatch {
                first: 16,
                tree_size: 32,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.first_bad_seq(), Some(16));
    assert!(e.to_string().contains("entries 16..31"), "{e}");

    // Deleting one entry and re-sealing the rest: caught the same way.
    let events: Vec<AuditEvent> = (21..50).map(|i| event(i, &p)).collect();
    let e = verify(&l, rewrite_from(&l.entries, 20, events)).unwrap_err();
    assert!(
        matches!(
            e,
            VerifyError::CheckpointRootMismatch {
                first: 16,
                tree_size: 32,
                ..
            }
        ),
        "{e}"
    );

    // A rewrite after the newest checkpoint cannot be told from the original: the summary
    // says how many entries are only chain-protected.
    let mut events: Vec<AuditEvent> = (48..50).map(|i| event(i, &p)).collect();
    events[1].outcome = "failed".into();
    let s = verify(&l, rewrite_from(&l.entries, 48, events)).unwrap();
    assert_eq!(s.unanchored, 2);
}

#[test]
fn checkpoint_tampering_is_named() {
    let mut l = log();
    // A size changed in a stored checkpoint breaks its signature.
    l.checkpoints[2] = l.checkpoints[2].replacen("\n32\n", "\n31\n", 1);
    let e = verify(&l, l.entries.clone()).unwrap_err();
    assert_eq!(
        e,
        VerifyError::Checkpoint {
            index: 2,
            source: CheckpointError::BadSignature
        }
    );
    // A validly signed checkpoint over another history (a fork) does not match the log.
    let mut l = log();
    let forked_root = {
        let mut log = AuditLog::resume(l.entries[..15].to_vec()).unwrap();
        log.append(AuditEvent::new(
            Timestamp::from_millis(0),
            "x",
            "fork",
            "ok",
        ));
        log.root()
    };
    l.checkpoints.push(
        l.signer
            .sign(16, forked_root, Timestamp::from_millis(5))
            .into_string(),
    );
    let e = verify(&l, l.entries.clone()).unwrap_err();
    // Checkpoints are ordered by size (stably), so the genuine one of size 16 anchors first.
    assert!(
        matches!(
            e,
            VerifyError::CheckpointRootMismatch {
                first: 16,
                tree_size: 16,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn a_million_entries_stream_through_verification() {
    const N: u64 = 1_000_000;
    let signer = signer();
    let p = Pseudonymizer::new(&[42u8; 32]).unwrap();
    // Build the log once, keeping only what the store would keep: entries and checkpoints.
    let build = Instant::now();
    let mut log = AuditLog::new();
    let mut entries = Vec::with_capacity(N as usize);
    let mut checkpoints = Vec::new();
    let template: Vec<AuditEvent> = (0..64).map(|i| event(i, &p)).collect();
    for i in 0..N {
        let batch = log.seal([template[(i % 64) as usize].clone()]);
        entries.extend(log.commit(batch).unwrap());
        if log.size().is_multiple_of(100_000) {
            checkpoints.push(
                signer
                    .sign(log.size(), log.root(), Timestamp::from_millis(i as i64))
                    .into_string(),
            );
        }
    }
    let built = build.elapsed();
    let start = Instant::now();
    let summary = verify_log(entries, &checkpoints, &signer.verifier()).unwrap();
    let elapsed = start.elapsed();
    assert_eq!(summary.entries, N);
    assert_eq!(summary.checkpoints, 10);
    assert_eq!(summary.root, log.root());
    let per_minute = N as f64 / elapsed.as_secs_f64() * 60.0;
    std::io::Write::write_all(
        &mut std::io::stderr(),
        format!(
            "audit: appended {N} entries in {:.2?}, verified them in {:.2?} ({:.0} entries/minute)\n",
            built, elapsed, per_minute
        )
        .as_bytes(),
    )
    .unwrap();
    assert!(per_minute >= 1_000_000.0, "{per_minute:.0} entries/minute");
}

//! Audit benchmark: append rate through the store's group-committing writer, the trail's
//! startup load (read + check + Merkle tree), and whole-log verification rate (what `siirto
//! audit verify` and the operator page run), on SQLite and PostgreSQL.
//!
//! ```text
//! cargo bench --bench audit -- [--entries N] [--writers W] [--batch B] [--backend sqlite|postgres|both]
//! ```
//! Defaults: 1,000,000 entries, 32 concurrent writers, 4 events per append (a request's
//! worth), both backends (PostgreSQL when `SIIRTO_TEST_POSTGRES` names a server; a fresh
//! database is created and dropped). Checkpoints are signed every 100,000 entries, so the
//! verification also checks 10 signatures and roots. Each figure is given per wall second and
//! per CPU second of this process (on SQLite the database works inside the process, so the
//! latter is what other load on a shared machine moves least).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use siirto_core::audit::{AuditEvent, AuditSigningKey, CheckpointSigner, Pseudonym};
use siirto_core::clock::{Clock, SystemClock, Timestamp, hex};
use siirto_gateway::store::Store;
use siirto_gateway::store::testdb::TestDb;
use siirto_gateway::trail::Trail;

mod common;
use common::{cpu_time, peak_rss_mib};

struct Options {
    entries: u64,
    writers: u64,
    batch: u64,
    backends: Vec<&'static str>,
}

fn options() -> Options {
    let mut o = Options {
        entries: 1_000_000,
        writers: 32,
        batch: 4,
        backends: vec!["sqlite", "postgres"],
    };
    for (name, value) in common::args() {
        match name.as_str() {
            "--entries" => o.entries = value.parse().expect("--entries N"),
            "--writers" => o.writers = value.parse().expect("--writers W"),
            "--batch" => o.batch = value.parse().expect("--batch B"),
            "--backend" => o.backends = common::backends(&value),
            other => panic!("unknown option {other}"),
        }
    }
    o
}

/// An event shaped like the gateway's: a transfer id, a pseudonym, a document hash on some,
/// two or three detail members.
fn event(now: Timestamp, i: u64) -> AuditEvent {
    const ACTIONS: [&str; 6] = [
        "transfer.accepted",
        "source.fetch",
        "document.validate",
        "document.convert",
        "destination.deliver",
        "transfer.delivered",
    ];
    let mut e = AuditEvent::new(now, "gateway", ACTIONS[(i % 6) as usize], "ok");
    e.transfer_id = Some(format!("{:08x}-4a1b-4c2d-8e3f-{:012x}", i / 6, i));
    e.subject = Pseudonym::parse(&hex(&ring::digest::digest(
        &ring::digest::SHA256,
        &(i / 6).to_be_bytes(),
    )
    .as_ref()[..32]))
    .ok();
    if i % 6 >= 4 {
        e.document_sha256 = Some([(i % 251) as u8; 32]);
    }
    e.detail.insert("destination".into(), "espoo".into());
    e.detail.insert("attempt".into(), "1".into());
    e
}

fn rate(n: u64, d: Duration, cpu: Duration) -> String {
    format!(
        "{:>10.0} entries/s  ({n} in {:.2} s wall; {:.0} entries per CPU second)",
        n as f64 / d.as_secs_f64(),
        d.as_secs_f64(),
        n as f64 / cpu.as_secs_f64().max(0.001)
    )
}

async fn run(backend: &str, o: &Options) {
    let db = match backend {
        "sqlite" => TestDb::sqlite().unwrap(),
        _ => match TestDb::postgres().await.unwrap() {
            Some(db) => db,
            None => {
                println!("postgres: skipped (set SIIRTO_TEST_POSTGRES to a server URL)");
                return;
            }
        },
    };
    let store = Store::open(&db.url).await.unwrap();
    let pkcs8 =
        ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let key = AuditSigningKey::from_pkcs8_der(pkcs8.as_ref()).unwrap();
    let signer = CheckpointSigner::new(key, "bench.example/audit").unwrap();
    let verifier = signer.verifier();
    println!(
        "{backend}: appending {} entries, {} writers x {} events per append",
        o.entries, o.writers, o.batch
    );

    // 1. Append through the writer.
    let started = Instant::now();
    let cpu = cpu_time();
    let per_writer = o.entries / o.writers;
    let mut tasks = Vec::new();
    for w in 0..o.writers {
        let store = store.clone();
        let batch = o.batch;
        let count = if w == o.writers - 1 {
            o.entries - per_writer * (o.writers - 1)
        } else {
            per_writer
        };
        tasks.push(tokio::spawn(async move {
            let base = w * per_writer;
            let mut i = 0;
            while i < count {
                let now = SystemClock.now();
                let n = batch.min(count - i);
                let events = (0..n).map(|j| event(now, base + i + j)).collect();
                store.append_audit(events).await.unwrap();
                i += n;
            }
        }));
    }
    // The rate in windows of ten seconds, to see whether it falls as the table grows.
    let monitor = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut last = (0u64, Instant::now());
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let n = store.audit_len().await.unwrap_or(0);
                let now = Instant::now();
                println!(
                    "    at {n:>8} entries: {:>7.0} entries/s over the last {:.0} s",
                    (n - last.0) as f64 / now.duration_since(last.1).as_secs_f64(),
                    now.duration_since(last.1).as_secs_f64()
                );
                last = (n, now);
            }
        })
    };
    for t in tasks {
        t.await.unwrap();
    }
    monitor.abort();
    let append = started.elapsed();
    let append_cpu = cpu_time().saturating_sub(cpu);
    assert_eq!(store.audit_len().await.unwrap(), o.entries);
    println!(
        "  append             {}",
        rate(o.entries, append, append_cpu)
    );

    // 2. The trail's load at gateway start: read, check, build the Merkle tree.
    let trail = Arc::new(Trail::new(
        signer.clone(),
        0,
        Duration::from_secs(3600),
        SystemClock.now(),
    ));
    let started = Instant::now();
    let cpu = cpu_time();
    trail.sync(&store).await.unwrap();
    let load = started.elapsed();
    let load_cpu = cpu_time().saturating_sub(cpu);
    println!(
        "  trail load         {}  (peak RSS {:.0} MiB)",
        rate(o.entries, load, load_cpu),
        peak_rss_mib()
    );

    // Checkpoints every 100,000 entries (and at the end), as the trail signs them.
    let tree = trail.status();
    let step = 100_000.min(o.entries.max(1));
    let mut size = step;
    while size <= o.entries {
        let (_, _, root) = trail.inclusion(&store, 0, size).await.unwrap();
        let note = signer.sign(size, root, SystemClock.now());
        store
            .insert_checkpoint(size, root, SystemClock.now(), note.into_string())
            .await
            .unwrap();
        size += step;
    }

    // 3. Whole-log verification (`siirto audit verify`).
    let started = Instant::now();
    let cpu = cpu_time();
    let outcome = siirto_gateway::trail::verify_store(&store, &verifier)
        .await
        .unwrap();
    let verify = started.elapsed();
    let verify_cpu = cpu_time().saturating_sub(cpu);
    let summary = outcome.result.expect("the benchmark log verifies");
    assert_eq!(summary.entries, o.entries);
    assert_eq!(summary.root, tree.root);
    println!(
        "  verify             {}  ({} checkpoints; {:.0} entries/min)",
        rate(o.entries, verify, verify_cpu),
        summary.checkpoints,
        o.entries as f64 / verify.as_secs_f64() * 60.0
    );
    store.close().await;
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let o = options();
    println!("machine: {}", common::machine());
    for backend in o.backends.clone() {
        run(backend, &o).await;
    }
}

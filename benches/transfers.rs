//! Transfer benchmark: N student-authorized transfers through a real gateway (mTLS API, JWS
//! verification, replay store, write-ahead state in the database, fetch over mTLS, validation,
//! scope pruning, conversion, validation, encrypted payload at rest, delivery over mTLS, audit
//! trail), with the source and destination reference endpoints in the same process on loopback;
//! then, in the same run, the same two HTTP hops done bare (the gateway's own pooled mTLS client:
//! fetch the record, post it with an `Idempotency-Key`, no checks, nothing stored) as the floor.
//!
//! ```text
//! cargo bench --bench transfers -- [--transfers N] [--concurrency C] [--record-kb K]
//!                                  [--workers W] [--backend sqlite|postgres|both]
//! ```
//! Defaults: 2,000 transfers, 64 submitted at a time, 10 KB siirto-v1 records (turku → espoo,
//! every scope category but `support`), the configured `delivery.workers` (8), both backends
//! (PostgreSQL when `SIIRTO_TEST_POSTGRES` names a server; a fresh database is created and
//! dropped). A warm-up of 100 transfers (not counted) opens the connection pools first.
//!
//! Latency is from the start of `POST /v1/transfers` to the destination having read the
//! delivered document; throughput is transfers delivered per wall second from the first
//! submission to the last delivery. The bare run reports the same for fetch + post.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use siirto_core::student_id::{StudentId, synthetic_henkilotunnus};
use siirto_devkit::peers::Destination;
use siirto_devkit::testbed::{Testbed, TestbedOptions};
use siirto_gateway::outbound::Outbound;
use siirto_gateway::store::testdb::TestDb;

use common::{cpu_time, quantile};

const SOURCE: &str = "turku";
const DESTINATION: &str = "espoo";
const SCOPE: &str = "identity enrolment achievements mobility registrations";
const WARMUP: usize = 100;

struct Options {
    transfers: usize,
    concurrency: usize,
    record_kb: usize,
    workers: Option<usize>,
    backends: Vec<&'static str>,
}

fn options() -> Options {
    let mut o = Options {
        transfers: 2_000,
        concurrency: 64,
        record_kb: 10,
        workers: None,
        backends: vec!["sqlite", "postgres"],
    };
    for (name, value) in common::args() {
        match name.as_str() {
            "--transfers" => o.transfers = value.parse().expect("--transfers N"),
            "--concurrency" => o.concurrency = value.parse().expect("--concurrency C"),
            "--record-kb" => o.record_kb = value.parse().expect("--record-kb K"),
            "--workers" => o.workers = Some(value.parse().expect("--workers W")),
            "--backend" => o.backends = common::backends(&value),
            other => panic!("unknown option {other}"),
        }
    }
    o
}

/// The sample school record of `subject`, grown with further achievements to at least `kb` KiB.
fn record(subject: &str, kb: usize) -> Vec<u8> {
    let base = siirto_devkit::demo::school_record(subject, false);
    let (head, tail) = base
        .split_once("</achievements>")
        .expect("the sample record has achievements");
    let mut doc = head.to_owned();
    let mut i = 0;
    while doc.len() + tail.len() + 16 < kb * 1024 {
        doc.push_str(&format!(
            r#"    <achievement key="extra-{i}" kind="course" provider="1.2.246.562.10.10000000001" studyRight="perusopetus-1">
      <code>VAL{i}</code>
      <name lang="fi">Valinnainen kurssi {i}</name>
      <date>2025-05-30</date>
      <grade><asteikko-4-10>{}</asteikko-4-10></grade>
      <credits unit="vvt">1</credits>
    </achievement>
"#,
            4 + i % 7
        ));
        i += 1;
    }
    doc.push_str("</achievements>");
    doc.push_str(tail);
    doc.into_bytes()
}

/// What one run measured.
struct Figures {
    n: usize,
    wall: Duration,
    cpu: Duration,
    latencies: Vec<Duration>,
}

impl Figures {
    fn per_second(&self) -> f64 {
        self.n as f64 / self.wall.as_secs_f64()
    }

    fn print(&self, label: &str) {
        println!(
            "  {label:<8} {:>7.0} transfers/s  p50 {:>7.1} ms  p99 {:>7.1} ms  ({} in {:.2} s wall, {:.2} s CPU, {:.2} ms CPU each)",
            self.per_second(),
            ms(quantile(&self.latencies, 0.50)),
            ms(quantile(&self.latencies, 0.99)),
            self.n,
            self.wall.as_secs_f64(),
            self.cpu.as_secs_f64(),
            ms(self.cpu) / self.n as f64
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs `one(i)` for every `i` in `range`, `concurrency` at a time; each returns the key of
/// what it started and the instant it started.
async fn concurrently<F, Fut>(
    range: std::ops::Range<usize>,
    concurrency: usize,
    one: F,
) -> Vec<(String, Instant)>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = (String, Instant)> + Send,
{
    let next = Arc::new(AtomicUsize::new(range.start));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (next, one) = (next.clone(), one.clone());
        let end = range.end;
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end {
                    return out;
                }
                out.push(one(i).await);
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// Submits `tokens[range]`, `concurrency` at a time; returns each transfer id with the instant
/// its submission started.
async fn submit_all(
    bed: &Testbed,
    tokens: Arc<Vec<String>>,
    range: std::ops::Range<usize>,
    concurrency: usize,
) -> Vec<(String, Instant)> {
    let client = bed.client("eservice").unwrap();
    concurrently(range, concurrency, move |i| {
        let (client, tokens) = (client.clone(), tokens.clone());
        async move {
            let started = Instant::now();
            let answer = client
                .submit(&tokens[i])
                .await
                .expect("the gateway answers");
            assert_eq!(answer.status.as_u16(), 202, "{}", answer.json());
            (answer.json()["id"].as_str().unwrap().to_owned(), started)
        }
    })
    .await
}

async fn wait_stored(destination: &Destination, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while destination.stored_count() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} transfers arrived in 10 minutes",
            destination.stored_count()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// When the destination first stored each idempotency key.
fn arrivals(destination: &Destination) -> HashMap<String, Instant> {
    let mut at = HashMap::new();
    for r in destination.requests() {
        if r.status == 200 {
            at.entry(r.idempotency_key).or_insert(r.received_at);
        }
    }
    at
}

fn figures(
    submitted: &[(String, Instant)],
    arrived: &HashMap<String, Instant>,
    cpu: Duration,
) -> Figures {
    let first = submitted.iter().map(|s| s.1).min().unwrap();
    let mut last = first;
    let mut latencies = Vec::with_capacity(submitted.len());
    for (id, started) in submitted {
        let at = *arrived.get(id).expect("every transfer arrived");
        last = last.max(at);
        latencies.push(at.duration_since(*started));
    }
    latencies.sort();
    Figures {
        n: submitted.len(),
        wall: last.duration_since(first),
        cpu,
        latencies,
    }
}

async fn gateway_run(bed: &Testbed, o: &Options, subjects: &[String]) -> Figures {
    let destination = &bed.destinations[DESTINATION];
    let tokens: Vec<String> = subjects
        .iter()
        .map(|s| {
            bed.sign(&bed.authorization(s, SOURCE, DESTINATION, SCOPE).claims())
                .unwrap()
        })
        .collect();
    let tokens = Arc::new(tokens);
    submit_all(bed, tokens.clone(), 0..WARMUP, o.concurrency).await;
    wait_stored(destination, WARMUP).await;

    let cpu = cpu_time();
    let submitted = submit_all(bed, tokens, WARMUP..WARMUP + o.transfers, o.concurrency).await;
    wait_stored(destination, WARMUP + o.transfers).await;
    let cpu = cpu_time().saturating_sub(cpu);
    let gw = bed.gateway.as_ref().unwrap();
    for (id, _) in submitted.iter().take(20) {
        let row = gw.store.transfer(id).await.unwrap().unwrap();
        assert_eq!(row.status.as_str(), "delivered", "{id}");
    }
    figures(&submitted, &arrivals(destination), cpu)
}

/// The two hops bare: fetch from the source, post to the destination, `concurrency` at a time.
async fn bare_run(bed: &Testbed, o: &Options, subjects: &[String]) -> Figures {
    let outbound = Arc::new(Outbound::new(&bed.config).unwrap());
    let destination = &bed.destinations[DESTINATION];
    let before = destination.stored_count();
    let ids: Arc<Vec<(StudentId, String)>> = Arc::new(
        subjects
            .iter()
            .enumerate()
            .map(|(i, s)| (StudentId::parse(s).unwrap(), format!("bare-{i:08}")))
            .collect(),
    );
    let run = |range: std::ops::Range<usize>| {
        let (outbound, ids) = (outbound.clone(), ids.clone());
        concurrently(range, o.concurrency, move |i| {
            let (outbound, ids) = (outbound.clone(), ids.clone());
            async move {
                let (subject, key) = &ids[i];
                let started = Instant::now();
                let body: Bytes = outbound.fetch_record(SOURCE, subject, key).await.unwrap();
                outbound.deliver(DESTINATION, key, body).await.unwrap();
                (key.clone(), started)
            }
        })
    };
    run(0..WARMUP).await;
    let cpu = cpu_time();
    let submitted = run(WARMUP..WARMUP + o.transfers).await;
    let cpu = cpu_time().saturating_sub(cpu);
    assert_eq!(destination.stored_count(), before + WARMUP + o.transfers);
    figures(&submitted, &arrivals(destination), cpu)
}

async fn run(backend: &str, o: &Options) {
    let db = match backend {
        "sqlite" => None,
        _ => match TestDb::postgres().await.unwrap() {
            Some(db) => Some(db),
            None => {
                println!("postgres: skipped (set SIIRTO_TEST_POSTGRES to a server URL)");
                return;
            }
        },
    };
    let mut env = vec![(
        "SIIRTO__DELIVERY__MAX_PENDING".to_owned(),
        (2 * (WARMUP + o.transfers)).to_string(),
    )];
    if let Some(w) = o.workers {
        env.push(("SIIRTO__DELIVERY__WORKERS".to_owned(), w.to_string()));
    }
    // One client opens up to `concurrency` connections at once from one address: the limits
    // per address (64 handshakes, 128 connections by default) must let it.
    let per_address = o.concurrency.max(64);
    for (key, n) in [
        ("MAX_HANDSHAKES_PER_ADDRESS", per_address),
        ("MAX_CONNECTIONS_PER_ADDRESS", 2 * per_address),
        ("MAX_CONNECTIONS", (4 * per_address).max(1024)),
    ] {
        env.push((format!("SIIRTO__LIMITS__{key}"), n.to_string()));
    }
    let bed = Testbed::start(TestbedOptions {
        database_url: db.as_ref().map(|d| d.url.clone()),
        env,
        ..TestbedOptions::default()
    })
    .await
    .unwrap();
    let n = WARMUP + o.transfers;
    let subjects: Vec<String> = (0..n as u32).map(synthetic_henkilotunnus).collect();
    let source = &bed.sources[SOURCE];
    let size = record(&subjects[0], o.record_kb).len();
    for s in &subjects {
        source.insert(s, record(s, o.record_kb));
    }
    println!(
        "{backend}: {} transfers, {} at a time, {:.1} KB records, {} workers",
        o.transfers,
        o.concurrency,
        size as f64 / 1000.0,
        bed.config.delivery.workers
    );
    let gateway = gateway_run(&bed, o, &subjects).await;
    gateway.print("gateway");
    let bare = bare_run(&bed, o, &subjects).await;
    bare.print("bare");
    println!(
        "  ratio    gateway/bare: wall {:.2}x, p50 {:.2}x, p99 {:.2}x, CPU per transfer {:.2}x",
        gateway.wall.as_secs_f64() / bare.wall.as_secs_f64(),
        ms(quantile(&gateway.latencies, 0.5)) / ms(quantile(&bare.latencies, 0.5)),
        ms(quantile(&gateway.latencies, 0.99)) / ms(quantile(&bare.latencies, 0.99)),
        gateway.cpu.as_secs_f64() / bare.cpu.as_secs_f64().max(0.001)
    );
    bed.stop().await;
    drop(db);
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let o = options();
    println!("machine: {}", common::machine());
    for backend in o.backends.clone() {
        run(backend, &o).await;
    }
}

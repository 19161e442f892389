//! Transfer benchmark: N student-authorized transfers through a real gateway (mTLS API, JWS
//! verification, replay store, write-ahead state in the database, fetch over mTLS, validation,
//! scope pruning, conversion, validation, encrypted payload at rest, delivery over mTLS, audit
//! trail), with the e-service and the source and destination reference endpoints in this
//! process on loopback; then, in the same run, the same two HTTP hops done bare (the gateway's
//! own pooled mTLS client: fetch the record, post it with an `Idempotency-Key`, no checks,
//! nothing stored) as the floor.
//!
//! ```text
//! cargo bench --bench transfers -- [--transfers N] [--concurrency C] [--record-kb K]
//!                                  [--workers W] [--instances I] [--in-flight F]
//!                                  [--backend sqlite|postgres|both]
//! ```
//! Defaults: 2,000 transfers, 64 submitted at a time, 10 KB siirto-v1 records (turku → espoo,
//! every scope category but `support`; `--record-kb` grows the sample record with further
//! achievements, 4 to 4096 KB and beyond: the configured limits, `delivery.max_response_bytes`
//! and `limits.xml.max_bytes` 16 MiB, let it through), the configured `delivery.workers`, both
//! backends (PostgreSQL when `SIIRTO_TEST_POSTGRES` names a server; a fresh database is created
//! and dropped), and no bound on transfers in flight: the gateway answers a submission before it
//! fetches, so C bounds submissions, not records in the gateway (its workers bound those).
//! `--in-flight F` closes the loop: a submission waits until fewer than F transfers are
//! submitted and not yet at the destination (peak RSS with F records at once). The bare run has
//! C hops under way at a time. A warm-up of 100 transfers (N when N is smaller), not counted,
//! opens the connection pools first.
//!
//! Where the gateway runs:
//! - without `--instances`, in this process (a `Testbed` gateway); its CPU and peak RSS are
//!   those of this whole process, i.e. they include the e-service client and both peers, and so
//!   do the bare run's (today's figures, comparable with earlier runs);
//! - with `--instances I` (even 1), as I `siirto serve` processes of the release binary
//!   (`CARGO_BIN_EXE_siirto`), one configuration and one database (SQLite: one instance only;
//!   PostgreSQL: the fresh database), each on its own API and admin port; the e-service submits
//!   to them round-robin. Their CPU (utime + stime from `/proc/PID/stat`, over the measured
//!   transfers) is the gateway's CPU per transfer, their `VmHWM` at the end of the run its peak
//!   RSS, per instance; the bare hops' CPU is then that of the threads running the bare client
//!   only (a runtime of their own), so the ratio compares the gateway with the two hops it
//!   cannot avoid, without the peers. This process's CPU is printed beside both.
//!
//! Latency is from the start of `POST /v1/transfers` to the destination having read the
//! delivered document; throughput is transfers delivered per wall second from the first
//! submission to the last delivery. CPU is counted until the database holds no transfer that
//! has not ended (the gateway records a delivery a little after the destination has it). The
//! bare run reports the same for fetch + post. Each run ends with a Markdown table row, and the table
//! (header and every run's row) is printed again at the end: backend, gateways (`in-process` or
//! the number of processes), record KB, concurrency, transfers/s, p50, p99, gateway CPU ms per
//! transfer, gateway peak RSS MiB (per instance), the bare figures and the gateway/bare ratios.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use siirto_core::student_id::{StudentId, synthetic_henkilotunnus};
use siirto_devkit::client::MtlsClient;
use siirto_devkit::peers::Destination;
use siirto_devkit::testbed::{Testbed, TestbedOptions};
use siirto_gateway::outbound::Outbound;
use siirto_gateway::store::Store;
use siirto_gateway::store::testdb::TestDb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::{cpu_time, cpu_time_of, peak_rss_mib, peak_rss_mib_of, quantile, thread_cpu_time};

const SOURCE: &str = "turku";
const DESTINATION: &str = "espoo";
const SCOPE: &str = "identity enrolment achievements mobility registrations";
const WARMUP: usize = 100;
/// How long a gateway process may take to start, to stop, and a run to deliver.
const DEADLINE: Duration = Duration::from_secs(600);

struct Options {
    transfers: usize,
    concurrency: usize,
    record_kb: usize,
    workers: Option<usize>,
    /// Gateway processes; `None`: the gateway runs in this process.
    instances: Option<usize>,
    /// At most this many transfers submitted and not yet at the destination (closed loop);
    /// `None`: submissions do not wait for deliveries.
    in_flight: Option<usize>,
    backends: Vec<&'static str>,
}

impl Options {
    fn warmup(&self) -> usize {
        WARMUP.min(self.transfers)
    }
}

fn options() -> Options {
    let mut o = Options {
        transfers: 2_000,
        concurrency: 64,
        record_kb: 10,
        workers: None,
        instances: None,
        in_flight: None,
        backends: vec!["sqlite", "postgres"],
    };
    for (name, value) in common::args() {
        match name.as_str() {
            "--transfers" => o.transfers = value.parse().expect("--transfers N"),
            "--concurrency" => o.concurrency = value.parse().expect("--concurrency C"),
            "--record-kb" => o.record_kb = value.parse().expect("--record-kb K"),
            "--workers" => o.workers = Some(value.parse().expect("--workers W")),
            "--instances" => {
                let n: usize = value.parse().expect("--instances I");
                assert!(n >= 1, "--instances needs at least 1 gateway process");
                o.instances = Some(n);
            }
            "--in-flight" => {
                let n: usize = value.parse().expect("--in-flight F");
                assert!(n >= 1, "--in-flight needs at least 1");
                o.in_flight = Some(n);
            }
            "--backend" => o.backends = common::backends(&value),
            other => panic!("unknown option {other}"),
        }
    }
    assert!(o.transfers >= 1, "--transfers needs at least 1");
    assert!(o.concurrency >= 1, "--concurrency needs at least 1");
    o
}

/// What one run measured.
struct Figures {
    n: usize,
    wall: Duration,
    /// The CPU the figure is about: the gateway's (its processes', or this whole process's when
    /// it runs here), or the bare hops' (their client threads', or this whole process's).
    cpu: Duration,
    /// This whole process's CPU over the same transfers, when `cpu` is not already it.
    bench_cpu: Option<Duration>,
    latencies: Vec<Duration>,
}

impl Figures {
    fn per_second(&self) -> f64 {
        self.n as f64 / self.wall.as_secs_f64()
    }

    fn p50(&self) -> f64 {
        ms(quantile(&self.latencies, 0.50))
    }

    fn p99(&self) -> f64 {
        ms(quantile(&self.latencies, 0.99))
    }

    fn cpu_each(&self) -> f64 {
        ms(self.cpu) / self.n as f64
    }

    /// `cpu_label` names whose CPU `cpu` is.
    fn print(&self, label: &str, cpu_label: &str) {
        println!(
            "  {label:<8} {:>7} transfers/s  p50 {:>7.1} ms  p99 {:>7.1} ms  ({} in {:.2} s wall)",
            rate(self.per_second()),
            self.p50(),
            self.p99(),
            self.n,
            self.wall.as_secs_f64(),
        );
        println!(
            "           CPU {cpu_label}: {:.2} s, {:.2} ms per transfer",
            self.cpu.as_secs_f64(),
            self.cpu_each()
        );
        if let Some(bench) = self.bench_cpu {
            println!(
                "           CPU this whole bench process: {:.2} s, {:.2} ms per transfer",
                bench.as_secs_f64(),
                ms(bench) / self.n as f64
            );
        }
    }
}

/// A rate with as many decimals as a small one needs (a 4 MB record goes at about one a second).
fn rate(per_second: f64) -> String {
    match per_second {
        r if r >= 100.0 => format!("{r:.0}"),
        r if r >= 10.0 => format!("{r:.1}"),
        r => format!("{r:.2}"),
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

/// Submits `tokens[range]`, `concurrency` at a time, token `i` to gateway `i mod clients`;
/// returns each transfer id with the instant its submission started. With `in_flight`, token
/// `i` waits until the destination has stored more than `i - in_flight` documents (the tokens
/// before `range` were all delivered), so that no more than that many transfers are under way.
async fn submit_all(
    clients: Arc<Vec<MtlsClient>>,
    tokens: Arc<Vec<String>>,
    range: std::ops::Range<usize>,
    concurrency: usize,
    in_flight: Option<(Destination, usize)>,
) -> Vec<(String, Instant)> {
    concurrently(range, concurrency, move |i| {
        let (clients, tokens, in_flight) = (clients.clone(), tokens.clone(), in_flight.clone());
        async move {
            if let Some((destination, limit)) = in_flight {
                while destination.stored_count() + limit <= i {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            let client = &clients[i % clients.len()];
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
    let deadline = Instant::now() + DEADLINE;
    while destination.stored_count() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} transfers arrived in {} s",
            destination.stored_count(),
            DEADLINE.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// One plain HTTP/1.1 GET on an admin listener: the status line's code and the body.
async fn admin_get(admin: SocketAddr, path: &str) -> Option<(u16, String)> {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(admin).await.ok()?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .ok()?;
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).await.ok()?;
        let text = String::from_utf8_lossy(&answer);
        let code = text.get(9..12)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        Some((code, body.to_owned()))
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
}

/// Waits until no transfer in the database waits for anything (every one has ended): the
/// destination stores a document a little before the gateway records its delivery.
async fn wait_ended(store: &Store) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let pending = store.pending_count().await.unwrap();
        if pending == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{pending} transfers have not ended after {} s",
            DEADLINE.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
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
    bench_cpu: Option<Duration>,
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
        bench_cpu,
        latencies,
    }
}

/// One `siirto serve` process of the release binary on the testbed's configuration.
struct Process {
    child: tokio::process::Child,
    pid: u32,
    api: SocketAddr,
    log: PathBuf,
}

impl Process {
    /// The last lines of its log, for failure messages.
    fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// SIGTERM, and wait for it to exit (in-flight work finishes, a last checkpoint is signed).
    async fn stop(mut self) {
        let sent = tokio::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {}", self.pid);
        match tokio::time::timeout(DEADLINE, self.child.wait()).await {
            Ok(Ok(status)) if status.success() => {}
            Ok(Ok(status)) => println!(
                "  warning: gateway process {} exited with {status}:\n{}",
                self.pid,
                self.tail()
            ),
            Ok(Err(e)) => println!("  warning: waiting for gateway process {}: {e}", self.pid),
            Err(_) => println!(
                "  warning: gateway process {} did not stop in {} s (killed)",
                self.pid,
                DEADLINE.as_secs()
            ),
        }
    }
}

/// An address on 127.0.0.1 that was free a moment ago.
async fn free_address() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

/// Starts `n` gateway processes on the testbed's configuration with `env`, one after another
/// (the first one migrates a fresh database), each ready before the next starts. The first
/// listens where the configuration says, the others on free ports.
async fn start_processes(bed: &Testbed, env: &[(String, String)], n: usize) -> Vec<Process> {
    let mut out = Vec::new();
    for i in 0..n {
        let (api, admin) = if i == 0 {
            (bed.config.gateway.listen, bed.config.gateway.admin_listen)
        } else {
            (free_address().await, free_address().await)
        };
        let log = bed.dir.join(format!("serve-{i}.log"));
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_siirto"))
            .arg("serve")
            .arg("--config")
            .arg(bed.config_path())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("SIIRTO__GATEWAY__LISTEN", api.to_string())
            .env("SIIRTO__GATEWAY__ADMIN_LISTEN", admin.to_string())
            .env("SIIRTO_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .kill_on_drop(true)
            .spawn()
            .expect("start siirto serve");
        let pid = child.id().expect("a running process");
        let mut p = Process {
            child,
            pid,
            api,
            log,
        };
        let deadline = Instant::now() + DEADLINE;
        while !matches!(admin_get(admin, "/readyz").await, Some((200, _))) {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("siirto serve {i} exited with {status}:\n{}", p.tail());
            }
            assert!(
                Instant::now() < deadline,
                "siirto serve {i} did not become ready:\n{}",
                p.tail()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        out.push(p);
    }
    out
}

/// Where the gateway runs.
enum Gateways {
    InProcess,
    Processes(Vec<Process>),
}

impl Gateways {
    /// The gateways' CPU so far: its processes', or this whole process's.
    fn cpu(&self) -> Duration {
        match self {
            Gateways::InProcess => cpu_time(),
            Gateways::Processes(ps) => ps.iter().map(|p| cpu_time_of(p.pid)).sum(),
        }
    }

    /// Peak RSS, MiB: of each process, or of this whole process.
    fn peak_rss(&self) -> Vec<f64> {
        match self {
            Gateways::InProcess => vec![peak_rss_mib()],
            Gateways::Processes(ps) => ps.iter().map(|p| peak_rss_mib_of(p.pid)).collect(),
        }
    }

    /// E-service clients, one per gateway.
    fn clients(&self, bed: &Testbed) -> Vec<MtlsClient> {
        match self {
            Gateways::InProcess => vec![bed.client("eservice").unwrap()],
            Gateways::Processes(ps) => {
                let dev = bed.pki.participant("eservice").unwrap();
                ps.iter()
                    .map(|p| {
                        MtlsClient::new(
                            &format!("https://{}", p.api),
                            &bed.pki.ca.cert,
                            Some((&dev.client.cert, &dev.client.key)),
                        )
                        .unwrap()
                    })
                    .collect()
            }
        }
    }
}

async fn gateway_run(
    bed: &Testbed,
    gateways: &Gateways,
    o: &Options,
    subjects: &[String],
) -> Figures {
    let destination = &bed.destinations[DESTINATION];
    // The gateway's own store, or one of the bench's on the same database (for reading).
    let own;
    let store = match bed.gateway.as_ref() {
        Some(gw) => &gw.store,
        None => {
            own = Store::connect(&bed.config.gateway.database_url)
                .await
                .unwrap();
            &own
        }
    };
    let clients = Arc::new(gateways.clients(bed));
    let tokens: Vec<String> = subjects
        .iter()
        .map(|s| {
            bed.sign(&bed.authorization(s, SOURCE, DESTINATION, SCOPE).claims())
                .unwrap()
        })
        .collect();
    let tokens = Arc::new(tokens);
    let warmup = o.warmup();
    let in_flight = o.in_flight.map(|n| (destination.clone(), n));
    submit_all(
        clients.clone(),
        tokens.clone(),
        0..warmup,
        o.concurrency,
        in_flight.clone(),
    )
    .await;
    wait_stored(destination, warmup).await;
    wait_ended(store).await;

    let (cpu, bench_cpu) = (gateways.cpu(), cpu_time());
    let submitted = submit_all(
        clients,
        tokens,
        warmup..warmup + o.transfers,
        o.concurrency,
        in_flight,
    )
    .await;
    wait_stored(destination, warmup + o.transfers).await;
    wait_ended(store).await;
    let cpu = gateways.cpu().saturating_sub(cpu);
    let bench_cpu = cpu_time().saturating_sub(bench_cpu);
    for (id, _) in submitted.iter().take(20) {
        let row = store.transfer(id).await.unwrap().unwrap();
        assert_eq!(row.status.as_str(), "delivered", "{id}");
    }
    let bench_cpu = match gateways {
        Gateways::InProcess => None,
        Gateways::Processes(_) => Some(bench_cpu),
    };
    figures(&submitted, &arrivals(destination), cpu, bench_cpu)
}

/// A runtime of its own for the bare client, whose threads' CPU is then the two hops' client
/// side only (the peers run on the main runtime).
struct BareRuntime {
    runtime: tokio::runtime::Runtime,
    threads: Arc<Mutex<Vec<u32>>>,
}

impl BareRuntime {
    fn new() -> BareRuntime {
        let threads = Arc::new(Mutex::new(Vec::new()));
        let record = threads.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("bare-client")
            .enable_all()
            .on_thread_start(move || {
                if let Some(tid) = common::current_tid() {
                    record.lock().unwrap().push(tid);
                }
            })
            .build()
            .unwrap();
        BareRuntime { runtime, threads }
    }

    /// CPU of its threads so far (a thread that has ended no longer counts).
    fn cpu(&self) -> Duration {
        let tids = self.threads.lock().unwrap().clone();
        tids.into_iter().map(thread_cpu_time).sum()
    }
}

/// The two hops bare: fetch from the source, post to the destination, `concurrency` at a time,
/// on a runtime of their own.
async fn bare_run(bed: &Testbed, o: &Options, subjects: &[String]) -> (Figures, Duration) {
    let bare = BareRuntime::new();
    let config = bed.config.clone();
    let outbound = Arc::new(
        bare.runtime
            .spawn(async move { Outbound::new(&config).unwrap() })
            .await
            .unwrap(),
    );
    let destination = &bed.destinations[DESTINATION];
    let before = destination.stored_count();
    let ids: Arc<Vec<(StudentId, String)>> = Arc::new(
        subjects
            .iter()
            .enumerate()
            .map(|(i, s)| (StudentId::parse(s).unwrap(), format!("bare-{i:08}")))
            .collect(),
    );
    let concurrency = o.concurrency;
    let run = |range: std::ops::Range<usize>| {
        let (outbound, ids) = (outbound.clone(), ids.clone());
        let work = concurrently(range, concurrency, move |i| {
            let (outbound, ids) = (outbound.clone(), ids.clone());
            async move {
                let (subject, key) = &ids[i];
                let started = Instant::now();
                let body: Bytes = outbound.fetch_record(SOURCE, subject, key).await.unwrap();
                outbound.deliver(DESTINATION, key, body).await.unwrap();
                (key.clone(), started)
            }
        });
        bare.runtime.spawn(work)
    };
    let warmup = o.warmup();
    run(0..warmup).await.unwrap();
    let (cpu, client_cpu) = (cpu_time(), bare.cpu());
    let submitted = run(warmup..warmup + o.transfers).await.unwrap();
    let client_cpu = bare.cpu().saturating_sub(client_cpu);
    let cpu = cpu_time().saturating_sub(cpu);
    assert_eq!(destination.stored_count(), before + warmup + o.transfers);
    drop(outbound);
    bare.runtime.shutdown_background();
    (
        figures(&submitted, &arrivals(destination), cpu, None),
        client_cpu,
    )
}

/// The Markdown table the runs' rows belong to.
const TABLE_HEADER: &str = "| backend | gateways | record KB | concurrency | transfers/s | p50 ms | p99 ms | CPU ms/transfer (gateway) | peak RSS MiB (gateway) | bare transfers/s | bare p50 ms | bare p99 ms | bare CPU ms/transfer | wall × | p50 × | p99 × | CPU × |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";

async fn run(backend: &str, o: &Options) -> Option<String> {
    let db = match backend {
        "sqlite" => {
            if o.instances.is_some_and(|n| n > 1) {
                println!("sqlite: skipped (several instances share PostgreSQL only)");
                return None;
            }
            None
        }
        _ => match TestDb::postgres().await.unwrap() {
            Some(db) => Some(db),
            None => {
                println!("postgres: skipped (set SIIRTO_TEST_POSTGRES to a server URL)");
                return None;
            }
        },
    };
    let warmup = o.warmup();
    let mut env = vec![(
        "SIIRTO__DELIVERY__MAX_PENDING".to_owned(),
        (2 * (warmup + o.transfers)).to_string(),
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
        env: env.clone(),
        in_process_gateway: o.instances.is_none(),
        ..TestbedOptions::default()
    })
    .await
    .unwrap();
    let n = warmup + o.transfers;
    let subjects: Vec<String> = (0..n as u32).map(synthetic_henkilotunnus).collect();
    let source = &bed.sources[SOURCE];
    let size = siirto_devkit::demo::school_record_of_size(&subjects[0], o.record_kb * 1024).len();
    for (limit, name) in [
        (
            bed.config.delivery.max_response_bytes,
            "delivery.max_response_bytes",
        ),
        (bed.config.limits.xml.max_bytes, "limits.xml.max_bytes"),
    ] {
        assert!(
            size <= limit,
            "a {size}-byte record is over {name} ({limit}): raise it"
        );
    }
    for s in &subjects {
        source.insert(
            s,
            siirto_devkit::demo::school_record_of_size(s, o.record_kb * 1024),
        );
    }
    let gateways = match o.instances {
        None => Gateways::InProcess,
        Some(i) => Gateways::Processes(start_processes(&bed, &env, i).await),
    };
    let where_ = match &gateways {
        Gateways::InProcess => "the gateway in this process".to_owned(),
        Gateways::Processes(ps) => format!("{} gateway process(es) (siirto serve)", ps.len()),
    };
    let in_flight = o
        .in_flight
        .map_or_else(String::new, |n| format!(" (at most {n} in flight)"));
    println!(
        "{backend}: {} transfers, {} submitted at a time{in_flight}, {:.1} KB records, {} workers, {where_}",
        o.transfers,
        o.concurrency,
        size as f64 / 1000.0,
        bed.config.delivery.workers
    );
    let gateway = gateway_run(&bed, &gateways, o, &subjects).await;
    let rss = gateways.peak_rss();
    let in_process = matches!(gateways, Gateways::InProcess);
    gateway.print(
        "gateway",
        if in_process {
            "this whole bench process (gateway, e-service, source, destination)"
        } else {
            "gateway processes"
        },
    );
    if in_process {
        println!(
            "           peak RSS this whole bench process (gateway, e-service, source and destination with every record): {:.1} MiB",
            rss[0]
        );
    } else {
        let each: Vec<String> = rss
            .iter()
            .enumerate()
            .map(|(i, r)| format!("instance {i} {r:.1} MiB"))
            .collect();
        println!("           peak RSS (VmHWM) {}", each.join(", "));
    }
    if let Gateways::Processes(ps) = gateways {
        for p in ps {
            p.stop().await;
        }
    }
    let (mut bare, client_cpu) = bare_run(&bed, o, &subjects).await;
    if !in_process {
        // The gateway's CPU is its processes' alone: compare it with the bare client's alone.
        bare.bench_cpu = Some(bare.cpu);
        bare.cpu = client_cpu;
    }
    bare.print(
        "bare",
        if in_process {
            "this whole bench process (client, source, destination)"
        } else {
            "the bare client's threads"
        },
    );
    if in_process {
        println!(
            "           CPU the bare client's threads: {:.2} s, {:.2} ms per transfer",
            client_cpu.as_secs_f64(),
            ms(client_cpu) / bare.n as f64
        );
    }
    let ratio = |g: f64, b: f64| g / b.max(0.001);
    let (wall_x, p50_x, p99_x, cpu_x) = (
        ratio(gateway.wall.as_secs_f64(), bare.wall.as_secs_f64()),
        ratio(gateway.p50(), bare.p50()),
        ratio(gateway.p99(), bare.p99()),
        ratio(gateway.cpu_each(), bare.cpu_each()),
    );
    println!(
        "  ratio    gateway/bare: wall {wall_x:.2}x, p50 {p50_x:.2}x, p99 {p99_x:.2}x, CPU per transfer {cpu_x:.2}x"
    );
    let rss: Vec<String> = rss.iter().map(|r| format!("{r:.0}")).collect();
    let row = format!(
        "| {backend} | {} | {} | {} | {} | {:.1} | {:.1} | {:.2} | {} | {} | {:.1} | {:.1} | {:.2} | {wall_x:.2} | {p50_x:.2} | {p99_x:.2} | {cpu_x:.2} |",
        o.instances
            .map_or_else(|| "in-process".to_owned(), |i| i.to_string()),
        o.record_kb,
        o.in_flight.map_or_else(
            || o.concurrency.to_string(),
            |n| format!("{} ({n} in flight)", o.concurrency)
        ),
        rate(gateway.per_second()),
        gateway.p50(),
        gateway.p99(),
        gateway.cpu_each(),
        rss.join(" + "),
        rate(bare.per_second()),
        bare.p50(),
        bare.p99(),
        bare.cpu_each(),
    );
    println!("{row}");
    bed.stop().await;
    drop(db);
    Some(row)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let o = options();
    println!("machine: {}", common::machine());
    let mut rows = Vec::new();
    for backend in o.backends.clone() {
        rows.extend(run(backend, &o).await);
    }
    println!("\n{TABLE_HEADER}");
    for row in rows {
        println!("{row}");
    }
}

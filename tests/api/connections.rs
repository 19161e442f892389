//! Anyone who can reach the port must not be able to lock participants out. One address
//! holding 1,100 idle TCP connections (more than the listener's 1,024 slots) gets only its
//! share of handshakes in progress; the rest are closed at once, counted in
//! `siirto_connections_refused_total` and audited, and another address's participant completes
//! a transfer meanwhile. When many addresses fill every slot open to strangers, an address
//! whose certificate mapped to a participant still gets in through the reserve, and a new
//! stranger does not.
//!
//! Attackers connect from other loopback addresses (127.0.0.2 ...: all of 127.0.0.0/8 is local
//! on Linux); the participants connect from 127.0.0.1.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use siirto_devkit::testbed::{Testbed, TestbedOptions};
use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::*;

const SCOPE: &str = "identity achievements";

/// `n` TCP connections from `from` to the gateway's API that never send a byte.
async fn idle_connections(bed: &Testbed, from: Ipv4Addr, n: usize) -> Vec<TcpStream> {
    let to = bed.config.gateway.listen;
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let socket = TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::new(IpAddr::V4(from), 0))
            .unwrap_or_else(|e| panic!("bind {from}: {e}"));
        let stream = socket.connect(to).await.unwrap_or_else(|e| {
            panic!("connection {i} from {from}: {e} (too many open files? see `ulimit -n`)")
        });
        held.push(stream);
    }
    held
}

/// How many of `streams` the gateway has closed (the read side sees the end or a reset).
fn closed_by_gateway(streams: &[TcpStream]) -> usize {
    let mut buf = [0u8; 16];
    streams
        .iter()
        .filter(|s| match s.try_read(&mut buf) {
            Ok(0) => true,
            Ok(n) => panic!("the gateway sent {n} bytes to a client that said nothing"),
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        })
        .count()
}

/// A counter of `/metrics` (`name{labels}` exactly as rendered), 0 when absent.
fn counter(bed: &Testbed, series: &str) -> u64 {
    let text = gateway(bed).metrics.render();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0, |v| v.parse().expect("an integer counter"))
}

fn refused(reason: &str) -> String {
    format!("siirto_connections_refused_total{{reason=\"{reason}\"}}")
}

/// Waits (with a deadline) until `condition` holds; `describe` says what was seen instead.
async fn wait_until(what: &str, condition: impl Fn() -> bool, describe: impl Fn() -> String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what}: {}",
            describe()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A testbed whose gateway has these `[limits]` (`SIIRTO__LIMITS__*` overrides).
async fn start_with_limits(limits: &[(&str, &str)]) -> Testbed {
    start_with(TestbedOptions {
        env: limits
            .iter()
            .map(|(k, v)| (format!("SIIRTO__LIMITS__{k}"), (*v).to_owned()))
            .collect(),
        ..TestbedOptions::default()
    })
    .await
}

type Served = tokio_rustls::client::TlsStream<TcpStream>;

/// A TLS connection from `from` presenting `participant`'s certificate that has been served one
/// request (so its handshake is over on the gateway's side too), kept open; or what ended it.
async fn served_connection(
    bed: &Testbed,
    from: Ipv4Addr,
    participant: &str,
) -> Result<Served, String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let tcp = idle_connections(bed, from, 1).await.remove(0);
    let client = &bed
        .pki
        .participant(participant)
        .expect("participant")
        .client;
    let config = siirto_gateway::tls::client_config_from_files(
        &bed.pki.ca.cert,
        Some((&client.cert, &client.key)),
    )
    .expect("client TLS configuration");
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tls.write_all(
        b"GET /v1/transfers/00000000-0000-4000-8000-000000000000 HTTP/1.1\r\nHost: gateway\r\n\r\n",
    )
    .await
    .map_err(|e| format!("request: {e}"))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tls.read(&mut buf).await {
            Ok(0) => return Err("closed before answering".into()),
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("response: {e}")),
        }
    }
    assert!(
        head.starts_with(b"HTTP/1.1 404"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    Ok(tls)
}

/// Waits until `siirto_connections_refused_total{reason}` reaches `n` (the listener counts a
/// refusal just after closing), and returns it.
async fn wait_for_refused(bed: &Testbed, reason: &str, n: u64) -> u64 {
    let series = refused(reason);
    wait_until(
        &format!("{series} to reach {n}"),
        || counter(bed, &series) >= n,
        || gateway(bed).metrics.render(),
    )
    .await;
    counter(bed, &series)
}

/// Submits a transfer as the e-service (from 127.0.0.1) and requires it delivered.
async fn transfer_is_delivered(bed: &Testbed) -> Duration {
    let started = Instant::now();
    let id = submit_accepted(bed, &token(bed, STUDENT, "turku", "espoo", SCOPE)).await;
    let transfer = finished(bed, &id).await;
    assert_eq!(transfer["status"], "delivered", "{transfer:#}");
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holding_1100_idle_connections_does_not_lock_out_a_participant() {
    const ATTACK: usize = 1100;
    // The default `[limits] max_handshakes_per_address`.
    const SHARE: usize = 64;
    let bed = start().await;
    bed.sources["turku"].insert(STUDENT, school_record(STUDENT, false).into_bytes());
    let attacker = Ipv4Addr::new(127, 0, 0, 2);

    let opened = Instant::now();
    let held = idle_connections(&bed, attacker, ATTACK).await;
    let opening = opened.elapsed();
    // The participant's connections queue behind all of the attacker's.
    let took = transfer_is_delivered(&bed).await;

    // The gateway kept the attacker's share of handshakes and closed every other connection at
    // once (a held one closes only when its handshake times out, 10 s by default).
    let excess = (ATTACK - SHARE) as u64;
    assert_eq!(
        wait_for_refused(&bed, "handshakes_per_address", excess).await,
        excess
    );
    let timed_out = || counter(&bed, &refused("handshake_timeout"));
    wait_until(
        "the attacker to see its refused connections closed",
        || closed_by_gateway(&held) as u64 == (ATTACK - SHARE) as u64 + timed_out(),
        || {
            format!(
                "{} closed, {} handshakes timed out",
                closed_by_gateway(&held),
                timed_out()
            )
        },
    )
    .await;
    let still_held = ATTACK - closed_by_gateway(&held);
    assert!(still_held <= SHARE, "{still_held}");
    assert_eq!(counter(&bed, &refused("global")), 0);
    assert_eq!(counter(&bed, &refused("per_address")), 0);
    eprintln!(
        "{ATTACK} idle connections from {attacker} opened in {opening:?}; the gateway refused {} \
         and held {still_held} ({} timed out); a transfer from 127.0.0.1 took {took:?}",
        ATTACK - SHARE,
        timed_out()
    );

    // The refusals are audited, rate-limited: the first at once.
    let entry = wait_for_audit(
        &bed,
        "tls.handshake_refused/handshake_limit_per_address",
        |e| {
            e.event.action == "tls.handshake_refused"
                && e.event.outcome == "handshake_limit_per_address"
        },
    )
    .await;
    assert_eq!(
        entry.event.detail.get("remote").map(String::as_str),
        Some("127.0.0.2")
    );
    drop(held);
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_participant_gets_a_reserved_slot_when_strangers_fill_the_rest() {
    const MAX: usize = 40;
    const RESERVED: usize = 16;
    const SHARE: usize = 8;
    let bed = start_with_limits(&[
        ("MAX_CONNECTIONS", &MAX.to_string()),
        ("RESERVED_CONNECTIONS", &RESERVED.to_string()),
        ("MAX_HANDSHAKES_PER_ADDRESS", &SHARE.to_string()),
        // The attackers' handshakes stay in progress for the whole test.
        ("HANDSHAKE_TIMEOUT", "10m"),
    ])
    .await;
    bed.sources["turku"].insert(STUDENT, school_record(STUDENT, false).into_bytes());

    // The e-service has called before: 127.0.0.1 is known as a participant's address.
    let answer = bed
        .client("eservice")
        .expect("client")
        .get(
            "/v1/transfers/00000000-0000-4000-8000-000000000000",
            &[("connection", "close")],
        )
        .await
        .expect("served");
    assert_eq!(answer.status.as_u16(), 404);

    // Six addresses try 48 connections: more than the whole listener holds.
    let mut attack = Vec::new();
    for last in 2..8 {
        attack.extend(idle_connections(&bed, Ipv4Addr::new(127, 0, 0, last), SHARE).await);
    }
    // A stranger coming after them finds every slot open to it taken (at most one may have
    // been the e-service's closing connection, freed since).
    let stranger = idle_connections(&bed, Ipv4Addr::new(127, 0, 0, 9), SHARE).await;
    let global = refused("global");
    wait_until(
        "the stranger to be refused",
        || closed_by_gateway(&stranger) >= SHARE - 1,
        || {
            format!(
                "{} of the stranger's {SHARE} connections closed; {global} = {}",
                closed_by_gateway(&stranger),
                counter(&bed, &global)
            )
        },
    )
    .await;
    let held = attack.len() - closed_by_gateway(&attack);
    assert!(
        (MAX - RESERVED - 1..=MAX - RESERVED).contains(&held),
        "strangers hold {held} slots"
    );

    // The participant's new connections use the reserve.
    let took = transfer_is_delivered(&bed).await;
    let excess = (attack.len() + stranger.len() - (MAX - RESERVED)) as u64;
    wait_for_refused(&bed, "global", excess).await;
    assert_eq!(
        closed_by_gateway(&attack),
        attack.len() - held,
        "the attack held"
    );
    eprintln!(
        "strangers held {held} of {MAX} slots ({RESERVED} reserved); a transfer from the known \
         127.0.0.1 took {took:?}"
    );
    drop((attack, stranger));
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_not_finished_in_time_is_closed_counted_and_audited() {
    let bed = start_with_limits(&[("HANDSHAKE_TIMEOUT", "200ms")]).await;
    let silent = idle_connections(&bed, Ipv4Addr::new(127, 0, 0, 3), 1).await;
    wait_until(
        "the silent connection to be closed",
        || closed_by_gateway(&silent) == 1,
        || "still open".to_owned(),
    )
    .await;
    assert_eq!(wait_for_refused(&bed, "handshake_timeout", 1).await, 1);
    assert_eq!(
        counter(
            &bed,
            "siirto_tls_refused_total{reason=\"handshake_timeout\"}"
        ),
        1
    );
    let entry = wait_for_audit(&bed, "tls.handshake_refused/handshake_timeout", |e| {
        e.event.action == "tls.handshake_refused" && e.event.outcome == "handshake_timeout"
    })
    .await;
    assert_eq!(
        entry.event.detail.get("remote").map(String::as_str),
        Some("127.0.0.3")
    );
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_at_its_connection_limit_is_refused_until_one_closes() {
    let bed = start_with_limits(&[("MAX_CONNECTIONS_PER_ADDRESS", "2")]).await;
    let from = Ipv4Addr::new(127, 0, 0, 4);
    let mut served = Vec::new();
    for _ in 0..2 {
        served.push(
            served_connection(&bed, from, "turku")
                .await
                .expect("served"),
        );
    }
    // A third, even with a good certificate, is closed before its handshake.
    let refusal = served_connection(&bed, from, "turku")
        .await
        .expect_err("over the limit");
    assert!(refusal.starts_with("handshake"), "{refusal}");
    assert_eq!(wait_for_refused(&bed, "per_address", 1).await, 1);
    wait_for_audit(
        &bed,
        "tls.handshake_refused/connection_limit_per_address",
        |e| {
            e.event.action == "tls.handshake_refused"
                && e.event.outcome == "connection_limit_per_address"
                && e.event.detail.get("remote").map(String::as_str) == Some("127.0.0.4")
        },
    )
    .await;
    // Another address is served meanwhile ...
    served_connection(&bed, Ipv4Addr::new(127, 0, 0, 5), "turku")
        .await
        .expect("another address is served");
    // ... and once one connection is closed, the address is served again.
    served.pop();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match served_connection(&bed, from, "turku").await {
            Ok(_) => break,
            Err(e) => assert!(
                tokio::time::Instant::now() < deadline,
                "the closed connection's slot was never freed: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bed.stop().await;
}

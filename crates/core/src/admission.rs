//! Who may hold a listener's connection slots: the admission policy that keeps anyone who can
//! reach the port from locking participants out.
//!
//! Owns: [`Admission`], the count of handshakes in progress and open connections per address
//! and in all, the addresses recently authenticated, and the decision for each new connection.
//! A connection is refused when its address already has `max_handshakes_per_address`
//! handshakes in progress or `max_connections_per_address` connections in all, or when the
//! listener is full: an address that has not recently completed a handshake whose client
//! certificate mapped to a participant may only use the first `max_connections -
//! reserved_connections` slots; the reserved rest is kept for recently authenticated
//! addresses. IPv6 addresses are counted by their /64 prefix (one host usually holds a whole
//! /64). Pure: no IO; time comes in as an argument. The listener (`siirto_gateway::server`) only consults it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// How many authenticated addresses are remembered at most; beyond it, the one remembered
/// for the shortest time left is forgotten. Only a client with a participant's certificate
/// can add one, so this bounds memory, not an attacker.
const MAX_REMEMBERED: usize = 10_000;

/// The limits of one listener (`[limits]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Connections open at once, handshakes included (default 1024).
    pub max_connections: usize,
    /// Of those, how many only recently authenticated addresses may use (default 256).
    pub reserved_connections: usize,
    /// Connections open at once from one address, handshakes included (default 128).
    pub max_connections_per_address: usize,
    /// TLS handshakes in progress at once from one address (default 64: a client opening its
    /// pool of 64 connections at once is served).
    pub max_handshakes_per_address: usize,
    /// How long after its last authenticated handshake an address may use the reserve
    /// (default 24 h).
    pub authenticated_address_ttl: Duration,
}

impl Default for AdmissionLimits {
    fn default() -> Self {
        AdmissionLimits {
            max_connections: 1024,
            reserved_connections: 256,
            max_connections_per_address: 128,
            max_handshakes_per_address: 64,
            authenticated_address_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

impl AdmissionLimits {
    /// The same limits with no reserve (for a listener where nobody authenticates).
    pub fn without_reserve(self) -> Self {
        AdmissionLimits {
            reserved_connections: 0,
            ..self
        }
    }

    /// Only `max_connections` in all, open to every address alike (for a server whose one
    /// client is the gateway, such as the reference peers).
    pub fn global_only(max_connections: usize) -> Self {
        AdmissionLimits {
            max_connections,
            reserved_connections: 0,
            max_connections_per_address: usize::MAX,
            max_handshakes_per_address: usize::MAX,
            ..AdmissionLimits::default()
        }
    }
}

/// Why a new connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// The address already holds `max_connections_per_address` connections.
    PerAddress,
    /// The address already has `max_handshakes_per_address` handshakes in progress.
    HandshakesPerAddress,
    /// No free slot: none at all, or (for an address not recently authenticated) none outside
    /// the reserve.
    Global,
}

impl Limit {
    pub const ALL: [Limit; 3] = [
        Limit::PerAddress,
        Limit::HandshakesPerAddress,
        Limit::Global,
    ];

    /// The `reason` label of `siirto_connections_refused_total`.
    pub fn label(self) -> &'static str {
        match self {
            Limit::PerAddress => "per_address",
            Limit::HandshakesPerAddress => "handshakes_per_address",
            Limit::Global => "global",
        }
    }

    /// The outcome of the audit entry (`tls.handshake_refused`).
    pub fn code(self) -> &'static str {
        match self {
            Limit::PerAddress => "connection_limit_per_address",
            Limit::HandshakesPerAddress => "handshake_limit_per_address",
            Limit::Global => "connection_limit",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Limit::PerAddress => "the address holds as many connections as one address may",
            Limit::HandshakesPerAddress => {
                "the address has as many handshakes in progress as one address may"
            }
            Limit::Global => "every connection slot open to this address is taken",
        }
    }
}

/// What one address holds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Held {
    handshakes: usize,
    connections: usize,
}

/// The admission state of one listener.
#[derive(Debug)]
pub struct Admission {
    limits: AdmissionLimits,
    /// Handshakes and connections open, all addresses.
    open: usize,
    /// Only addresses holding something; removed when they hold nothing.
    held: HashMap<IpAddr, Held>,
    /// Recently authenticated addresses, until when.
    authenticated: HashMap<IpAddr, Instant>,
}

/// The address a connection is counted under: IPv4 as is (also when mapped into IPv6), IPv6
/// by its /64 prefix.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Self {
        Admission {
            limits,
            open: 0,
            held: HashMap::new(),
            authenticated: HashMap::new(),
        }
    }

    /// Decides on a new connection from `ip`. Admitted, it counts as a handshake in progress
    /// until [`Admission::established`] or [`Admission::handshake_ended`].
    pub fn admit(&mut self, ip: IpAddr, now: Instant) -> Result<(), Limit> {
        let key = address_key(ip);
        let held = self.held.get(&key).copied().unwrap_or_default();
        if held.handshakes >= self.limits.max_handshakes_per_address {
            return Err(Limit::HandshakesPerAddress);
        }
        if held.handshakes + held.connections >= self.limits.max_connections_per_address {
            return Err(Limit::PerAddress);
        }
        let slots = if self.is_authenticated(key, now) {
            self.limits.max_connections
        } else {
            self.limits
                .max_connections
                .saturating_sub(self.limits.reserved_connections)
        };
        if self.open >= slots {
            return Err(Limit::Global);
        }
        self.open += 1;
        self.held.entry(key).or_default().handshakes += 1;
        Ok(())
    }

    /// The handshake of an admitted connection finished: it now counts as an open connection.
    /// `authenticated`: its client certificate mapped to a participant, so its address may use
    /// the reserve until `authenticated_address_ttl` from now.
    pub fn established(&mut self, ip: IpAddr, authenticated: bool, now: Instant) {
        let key = address_key(ip);
        if let Some(held) = self.held.get_mut(&key)
            && held.handshakes > 0
        {
            held.handshakes -= 1;
            held.connections += 1;
        }
        if authenticated {
            self.remember(key, now + self.limits.authenticated_address_ttl, now);
        }
    }

    /// An admitted connection ended during its handshake (failed, timed out, or shut down).
    pub fn handshake_ended(&mut self, ip: IpAddr) {
        self.release(address_key(ip), |h| &mut h.handshakes);
    }

    /// An established connection closed.
    pub fn connection_closed(&mut self, ip: IpAddr) {
        self.release(address_key(ip), |h| &mut h.connections);
    }

    /// Handshakes in progress and connections open, all addresses.
    pub fn open(&self) -> usize {
        self.open
    }

    fn release(&mut self, key: IpAddr, count: impl Fn(&mut Held) -> &mut usize) {
        let Some(held) = self.held.get_mut(&key) else {
            return;
        };
        let n = count(held);
        if *n == 0 {
            return;
        }
        *n -= 1;
        self.open = self.open.saturating_sub(1);
        if *held == Held::default() {
            self.held.remove(&key);
        }
    }

    fn is_authenticated(&self, key: IpAddr, now: Instant) -> bool {
        self.authenticated
            .get(&key)
            .is_some_and(|until| now < *until)
    }

    fn remember(&mut self, key: IpAddr, until: Instant, now: Instant) {
        if !self.authenticated.contains_key(&key) && self.authenticated.len() >= MAX_REMEMBERED {
            self.authenticated.retain(|_, u| now < *u);
            if self.authenticated.len() >= MAX_REMEMBERED
                && let Some(oldest) = self
                    .authenticated
                    .iter()
                    .min_by_key(|(_, u)| **u)
                    .map(|(k, _)| *k)
            {
                self.authenticated.remove(&oldest);
            }
        }
        self.authenticated.insert(key, until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn limits(
        max: usize,
        reserved: usize,
        per_address: usize,
        handshakes: usize,
    ) -> AdmissionLimits {
        AdmissionLimits {
            max_connections: max,
            reserved_connections: reserved,
            max_connections_per_address: per_address,
            max_handshakes_per_address: handshakes,
            authenticated_address_ttl: Duration::from_secs(60),
        }
    }

    /// Admits `n` connections from `from`; returns how many were admitted and the first refusal.
    fn admit_n(a: &mut Admission, from: &str, n: usize, now: Instant) -> (usize, Option<Limit>) {
        let mut admitted = 0;
        for _ in 0..n {
            match a.admit(ip(from), now) {
                Ok(()) => admitted += 1,
                Err(limit) => return (admitted, Some(limit)),
            }
        }
        (admitted, None)
    }

    #[test]
    fn one_address_cannot_hold_more_handshakes_than_its_share() {
        let now = Instant::now();
        let mut a = Admission::new(AdmissionLimits::default());
        let (held, refused) = admit_n(&mut a, "192.0.2.7", 1100, now);
        assert_eq!(held, 64);
        assert_eq!(refused, Some(Limit::HandshakesPerAddress));
        // Every other address is still admitted.
        assert_eq!(a.admit(ip("192.0.2.8"), now), Ok(()));
        assert_eq!(a.open(), 65);
    }

    #[test]
    fn established_connections_count_against_the_per_address_limit() {
        let now = Instant::now();
        let mut a = Admission::new(limits(100, 0, 5, 2));
        for _ in 0..5 {
            a.admit(ip("192.0.2.1"), now).unwrap();
            a.established(ip("192.0.2.1"), false, now);
        }
        assert_eq!(a.admit(ip("192.0.2.1"), now), Err(Limit::PerAddress));
        a.connection_closed(ip("192.0.2.1"));
        assert_eq!(a.admit(ip("192.0.2.1"), now), Ok(()));
    }

    #[test]
    fn handshakes_in_progress_are_limited_separately_from_connections() {
        let now = Instant::now();
        let mut a = Admission::new(limits(100, 0, 10, 2));
        a.admit(ip("192.0.2.1"), now).unwrap();
        a.admit(ip("192.0.2.1"), now).unwrap();
        assert_eq!(
            a.admit(ip("192.0.2.1"), now),
            Err(Limit::HandshakesPerAddress)
        );
        // A finished handshake frees a handshake slot, not a connection slot.
        a.established(ip("192.0.2.1"), false, now);
        assert_eq!(a.admit(ip("192.0.2.1"), now), Ok(()));
        // A failed one frees both.
        a.handshake_ended(ip("192.0.2.1"));
        a.handshake_ended(ip("192.0.2.1"));
        assert_eq!(a.open(), 1);
    }

    #[test]
    fn the_reserve_is_only_for_recently_authenticated_addresses() {
        let t0 = Instant::now();
        let mut a = Admission::new(limits(10, 4, 100, 100));
        // A participant connects once, before the flood.
        a.admit(ip("198.51.100.1"), t0).unwrap();
        a.established(ip("198.51.100.1"), true, t0);
        a.connection_closed(ip("198.51.100.1"));
        // Strangers fill the unreserved part, then are refused.
        let (held, refused) = admit_n(&mut a, "192.0.2.1", 100, t0);
        assert_eq!((held, refused), (6, Some(Limit::Global)));
        assert_eq!(a.admit(ip("192.0.2.2"), t0), Err(Limit::Global));
        // A certificate that maps to no participant does not open the reserve.
        a.established(ip("192.0.2.1"), false, t0);
        assert_eq!(a.admit(ip("192.0.2.1"), t0), Err(Limit::Global));
        // The participant still gets in, up to the whole listener.
        let (held, refused) = admit_n(&mut a, "198.51.100.1", 100, t0);
        assert_eq!((held, refused), (4, Some(Limit::Global)));
        assert_eq!(a.open(), 10);
    }

    #[test]
    fn the_reserve_is_forgotten_after_the_ttl_and_renewed_by_each_authentication() {
        let t0 = Instant::now();
        let mut a = Admission::new(limits(2, 1, 100, 100));
        a.admit(ip("198.51.100.1"), t0).unwrap();
        a.established(ip("198.51.100.1"), true, t0);
        // 50 s later it authenticates again: the reserve lasts until t0 + 110 s.
        let t50 = t0 + Duration::from_secs(50);
        a.admit(ip("198.51.100.1"), t50).unwrap();
        a.established(ip("198.51.100.1"), true, t50);
        a.connection_closed(ip("198.51.100.1"));
        // One connection open: the unreserved slot is taken.
        assert_eq!(a.admit(ip("192.0.2.1"), t50), Err(Limit::Global));
        let t100 = t0 + Duration::from_secs(100);
        assert_eq!(a.admit(ip("198.51.100.1"), t100), Ok(()));
        a.handshake_ended(ip("198.51.100.1"));
        let t110 = t0 + Duration::from_secs(110);
        assert_eq!(a.admit(ip("198.51.100.1"), t110), Err(Limit::Global));
    }

    #[test]
    fn without_reserve_every_slot_is_open_to_everyone() {
        let now = Instant::now();
        let mut a = Admission::new(limits(3, 2, 100, 100).without_reserve());
        assert_eq!(
            admit_n(&mut a, "192.0.2.1", 5, now),
            (3, Some(Limit::Global))
        );
    }

    #[test]
    fn global_only_lets_one_address_use_every_slot() {
        let now = Instant::now();
        let mut a = Admission::new(AdmissionLimits::global_only(300));
        assert_eq!(
            admit_n(&mut a, "192.0.2.1", 400, now),
            (300, Some(Limit::Global))
        );
    }

    #[test]
    fn closing_frees_the_slot_and_forgets_the_address() {
        let now = Instant::now();
        let mut a = Admission::new(limits(1, 0, 1, 1));
        a.admit(ip("192.0.2.1"), now).unwrap();
        assert_eq!(a.admit(ip("192.0.2.2"), now), Err(Limit::Global));
        a.established(ip("192.0.2.1"), false, now);
        a.connection_closed(ip("192.0.2.1"));
        assert!(a.held.is_empty());
        assert_eq!(a.open(), 0);
        assert_eq!(a.admit(ip("192.0.2.2"), now), Ok(()));
        // Releasing what was never held changes nothing.
        a.connection_closed(ip("192.0.2.9"));
        a.handshake_ended(ip("192.0.2.2"));
        a.handshake_ended(ip("192.0.2.2"));
        assert_eq!(a.open(), 0);
    }

    #[test]
    fn an_ipv6_host_is_counted_by_its_64_prefix_and_mapped_ipv4_as_ipv4() {
        let now = Instant::now();
        let mut a = Admission::new(limits(100, 0, 100, 2));
        a.admit(ip("2001:db8:1:2::1"), now).unwrap();
        a.admit(ip("2001:db8:1:2:ffff::9"), now).unwrap();
        assert_eq!(
            a.admit(ip("2001:db8:1:2:abcd::1"), now),
            Err(Limit::HandshakesPerAddress)
        );
        assert_eq!(a.admit(ip("2001:db8:1:3::1"), now), Ok(()));
        a.admit(ip("192.0.2.1"), now).unwrap();
        a.admit(ip("::ffff:192.0.2.1"), now).unwrap();
        assert_eq!(
            a.admit(ip("192.0.2.1"), now),
            Err(Limit::HandshakesPerAddress)
        );
        assert_eq!(address_key(ip("2001:db8::1:2:3:4")), ip("2001:db8::"));
    }

    #[test]
    fn remembered_addresses_are_bounded() {
        let now = Instant::now();
        let mut a = Admission::new(limits(100_000, 0, 100, 100));
        for i in 0..(MAX_REMEMBERED as u32 + 50) {
            let addr = IpAddr::from(i.to_be_bytes());
            a.admit(addr, now).unwrap();
            a.established(addr, true, now + Duration::from_millis(u64::from(i)));
            a.connection_closed(addr);
        }
        assert_eq!(a.authenticated.len(), MAX_REMEMBERED);
        // The last one is remembered, the first ones (shortest time left) were forgotten.
        assert!(a.is_authenticated(
            IpAddr::from((MAX_REMEMBERED as u32 + 49).to_be_bytes()),
            now
        ));
        assert!(!a.is_authenticated(IpAddr::from(0u32.to_be_bytes()), now));
    }

    proptest::proptest! {
        /// Whatever the order of events, the counts never exceed the limits and return to
        /// zero when everything is released.
        #[test]
        fn counts_stay_within_limits(events in proptest::collection::vec((0u8..4, 0u8..6), 0..400)) {
            let now = Instant::now();
            let l = limits(12, 3, 5, 3);
            let mut a = Admission::new(l);
            // What the test believes is open: (address, established?)
            let mut open: Vec<(IpAddr, bool)> = Vec::new();
            for (op, who) in events {
                let addr = IpAddr::from([192, 0, 2, who]);
                match op {
                    0 | 1 => {
                        if a.admit(addr, now).is_ok() {
                            open.push((addr, false));
                        }
                    }
                    2 => {
                        if let Some(i) = open.iter().position(|(x, e)| *x == addr && !e) {
                            open[i].1 = true;
                            a.established(addr, who % 2 == 0, now);
                        }
                    }
                    _ => {
                        if let Some(i) = open.iter().position(|(x, _)| *x == addr) {
                            let (_, established) = open.swap_remove(i);
                            if established {
                                a.connection_closed(addr);
                            } else {
                                a.handshake_ended(addr);
                            }
                        }
                    }
                }
                proptest::prop_assert_eq!(a.open(), open.len());
                proptest::prop_assert!(a.open() <= l.max_connections);
                for (addr, held) in &a.held {
                    proptest::prop_assert!(held.handshakes <= l.max_handshakes_per_address);
                    proptest::prop_assert!(held.handshakes + held.connections <= l.max_connections_per_address);
                    proptest::prop_assert!(held.handshakes + held.connections > 0, "{addr} kept at zero");
                }
            }
            for (addr, established) in open.drain(..) {
                if established { a.connection_closed(addr) } else { a.handshake_ended(addr) }
            }
            proptest::prop_assert_eq!(a.open(), 0);
            proptest::prop_assert!(a.held.is_empty());
        }
    }
}

//! Refused TLS handshakes as audit entries, without letting anyone who can reach the port flood
//! the audit trail; and the per-key rate limiting ([`Windows`]) behind it, which also keeps the
//! warnings about failing calls to a peer to one a minute.
//!
//! Owns: [`Windows`] (the first occurrence of a key in a window passes, later ones are counted),
//! and [`RefusalLog`], which decides with it per (remote address, reason) whether a refusal is
//! written now or counted into the next entry. The first refusal of a kind from an address is
//! audited at once; further ones within the window are counted and written as one summary entry
//! when the window closes. Pure: time comes in as an argument; the gateway writes what it
//! returns.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use siirto_core::audit::AuditEvent;
use siirto_core::clock::Timestamp;

/// Audit action of a refused handshake.
pub const ACTION: &str = "tls.handshake_refused";

/// Why a handshake was refused, as a stable code (the audit entry's outcome) and a detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub detail: String,
}

impl Refusal {
    /// Every code of a failed or timed-out handshake ([`Refusal::of_tls_error`],
    /// [`Refusal::timeout`], and [`crate::x509_policy::Violation::code`]): the `reason` values
    /// of `siirto_tls_refused_total`, each exposed from the start. (The listener's limits have
    /// their own codes and metric.)
    pub const CODES: [&'static str; 10] = [
        "no_client_certificate",
        "unknown_ca",
        "certificate_expired",
        "certificate_not_yet_valid",
        "certificate_revoked",
        "crl_stale",
        "key_usage",
        "bad_certificate",
        "handshake_failed",
        "handshake_timeout",
    ];

    /// Classifies the error of a TLS accept.
    pub fn of_tls_error(e: &std::io::Error) -> Refusal {
        use rustls::{CertificateError as C, Error as E};
        let code = match e.get_ref().and_then(|inner| inner.downcast_ref::<E>()) {
            Some(E::NoCertificatesPresented) => "no_client_certificate",
            Some(E::InvalidCertificate(C::UnknownIssuer)) => "unknown_ca",
            Some(E::InvalidCertificate(C::Expired | C::ExpiredContext { .. })) => {
                "certificate_expired"
            }
            Some(E::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. })) => {
                "certificate_not_yet_valid"
            }
            Some(E::InvalidCertificate(C::Revoked)) => "certificate_revoked",
            Some(E::InvalidCertificate(
                C::ExpiredRevocationList | C::ExpiredRevocationListContext { .. },
            )) => "crl_stale",
            Some(E::InvalidCertificate(C::Other(other))) => other
                .0
                .downcast_ref::<crate::x509_policy::Violation>()
                .map_or("bad_certificate", crate::x509_policy::Violation::code),
            Some(E::InvalidCertificate(_)) => "bad_certificate",
            _ => "handshake_failed",
        };
        Refusal {
            code,
            detail: e.to_string(),
        }
    }

    pub fn timeout() -> Refusal {
        Refusal {
            code: "handshake_timeout",
            detail: "the TLS handshake did not finish in time".into(),
        }
    }
}

struct Window {
    opened: Timestamp,
    suppressed: u64,
}

/// Per-key rate limiting: the first occurrence of a key in a window passes, later ones in the
/// window are counted, and the count goes with the next one that passes (or with
/// [`Windows::flush`]).
pub struct Windows<K> {
    window: Duration,
    max_keys: usize,
    open: Mutex<HashMap<K, Window>>,
}

impl<K: Eq + Hash + Clone> Windows<K> {
    /// `max_keys` bounds memory: beyond it, new keys are counted under the `overflow` key that
    /// [`Windows::note`] is given.
    pub fn new(window: Duration, max_keys: usize) -> Self {
        Windows {
            window,
            max_keys,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Notes an occurrence of `key` at `now`. When it passes, returns the key it was counted
    /// under (`key`, or `overflow` when too many keys are open) and how many occurrences were
    /// suppressed before it since the last one that passed.
    pub fn note(&self, key: K, overflow: impl FnOnce() -> K, now: Timestamp) -> Option<(K, u64)> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = if !open.contains_key(&key) && open.len() >= self.max_keys {
            overflow()
        } else {
            key
        };
        let fresh = Window {
            opened: now,
            suppressed: 0,
        };
        match open.get_mut(&key) {
            Some(w) if now.since(w.opened) < self.window => {
                w.suppressed += 1;
                None
            }
            Some(w) => {
                let suppressed = std::mem::replace(w, fresh).suppressed;
                Some((key, suppressed))
            }
            None => {
                open.insert(key.clone(), fresh);
                Some((key, 0))
            }
        }
    }

    /// Closes the windows older than the window length; returns each key with the count
    /// suppressed in it, for those that counted any.
    pub fn flush(&self, now: Timestamp) -> Vec<(K, u64)> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = Vec::new();
        open.retain(|key, w| {
            if now.since(w.opened) < self.window {
                return true;
            }
            if w.suppressed > 0 {
                out.push((key.clone(), w.suppressed));
            }
            false
        });
        out
    }
}

/// Rate-limited refusal auditing: one entry per (address, reason) per window, plus the count of
/// the ones in between.
pub struct RefusalLog {
    window: Duration,
    windows: Windows<(Option<IpAddr>, &'static str)>,
}

impl std::fmt::Debug for RefusalLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefusalLog")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl RefusalLog {
    /// `max_keys` bounds memory: beyond it, refusals are grouped by reason alone.
    pub fn new(window: Duration, max_keys: usize) -> Self {
        RefusalLog {
            window,
            windows: Windows::new(window, max_keys),
        }
    }

    fn event(
        at: Timestamp,
        addr: Option<IpAddr>,
        refusal_code: &str,
        detail: Option<&str>,
        suppressed: u64,
    ) -> AuditEvent {
        let mut e = AuditEvent::new(at, "unknown", ACTION, refusal_code);
        e.detail.insert(
            "remote".into(),
            addr.map_or_else(|| "(many addresses)".to_owned(), |a| a.to_string()),
        );
        if let Some(d) = detail {
            e.detail.insert("error".into(), d.to_owned());
        }
        if suppressed > 0 {
            e.detail.insert("repeated".into(), suppressed.to_string());
        }
        e
    }

    /// Notes a refusal; returns the entry to write now, if any.
    pub fn note(&self, addr: IpAddr, refusal: &Refusal, now: Timestamp) -> Option<AuditEvent> {
        let code = refusal.code;
        let ((addr, code), repeated) =
            self.windows
                .note((Some(addr), code), || (None, code), now)?;
        Some(Self::event(
            now,
            addr,
            code,
            Some(&refusal.detail),
            repeated,
        ))
    }

    /// Closes windows older than the window length: their counts become entries.
    pub fn flush(&self, now: Timestamp) -> Vec<AuditEvent> {
        self.windows
            .flush(now)
            .into_iter()
            .map(|((addr, code), suppressed)| Self::event(now, addr, code, None, suppressed))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(code: &'static str) -> Refusal {
        Refusal {
            code,
            detail: "x".into(),
        }
    }

    #[test]
    fn first_is_written_repeats_are_counted_then_summarised() {
        let log = RefusalLog::new(Duration::from_secs(60), 100);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Timestamp::from_secs(1000);
        let first = log.note(a, &refusal("unknown_ca"), t0).unwrap();
        assert_eq!(first.outcome, "unknown_ca");
        assert_eq!(first.detail["remote"], "192.0.2.1");
        for i in 1..=5 {
            assert!(
                log.note(a, &refusal("unknown_ca"), Timestamp::from_secs(1000 + i))
                    .is_none()
            );
        }
        // Another reason or address is its own window.
        assert!(log.note(a, &refusal("no_client_certificate"), t0).is_some());
        assert!(
            log.note("192.0.2.2".parse().unwrap(), &refusal("unknown_ca"), t0)
                .is_some()
        );
        assert!(log.flush(Timestamp::from_secs(1059)).is_empty());
        let flushed = log.flush(Timestamp::from_secs(1060));
        assert_eq!(flushed.len(), 1);
        assert_eq!(flushed[0].detail["repeated"], "5");
        // After the window, the next refusal is written again.
        assert!(
            log.note(a, &refusal("unknown_ca"), Timestamp::from_secs(1100))
                .is_some()
        );
    }

    #[test]
    fn memory_is_bounded() {
        let log = RefusalLog::new(Duration::from_secs(60), 2);
        let t = Timestamp::from_secs(0);
        for i in 0..100u8 {
            log.note(IpAddr::from([10, 0, 0, i]), &refusal("unknown_ca"), t);
        }
        assert!(log.windows.open.lock().unwrap().len() <= 3);
    }
}

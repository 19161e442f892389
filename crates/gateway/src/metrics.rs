//! Counters and latency histograms, rendered in the Prometheus text format for `GET /metrics`.
//!
//! Owns: [`Metrics`]. Labels are fixed, low-cardinality strings (codes, statuses, participant ids);
//! never student data. Lock-free on the hot path except for the first use of a label set.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Histogram bucket upper bounds, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

type Key = (&'static str, Vec<(&'static str, String)>);

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// The gateway's metrics registry.
#[derive(Default)]
pub struct Metrics {
    counters: RwLock<BTreeMap<Key, AtomicU64>>,
    histograms: RwLock<BTreeMap<Key, Histogram>>,
    /// Gauges set by the gateway (as opposed to the ones computed at each render).
    gauges: RwLock<BTreeMap<Key, f64>>,
    help: RwLock<BTreeMap<&'static str, &'static str>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new() -> Self {
        Metrics::default()
    }

    /// Adds one to a counter.
    pub fn inc(&self, name: &'static str, help: &'static str, labels: &[(&'static str, &str)]) {
        self.add(name, help, labels, 1);
    }

    pub fn add(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        n: u64,
    ) {
        let key = key(name, labels);
        if let Ok(map) = self.counters.read()
            && let Some(c) = map.get(&key)
        {
            c.fetch_add(n, Ordering::Relaxed);
            return;
        }
        self.describe(name, help);
        if let Ok(mut map) = self.counters.write() {
            map.entry(key).or_default().fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Records a duration in a histogram.
    pub fn observe(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        d: Duration,
    ) {
        let key = key(name, labels);
        let record = |h: &Histogram| {
            let secs = d.as_secs_f64();
            for (i, bound) in BUCKETS.iter().enumerate() {
                if secs <= *bound {
                    h.buckets[i].fetch_add(1, Ordering::Relaxed);
                }
            }
            h.count.fetch_add(1, Ordering::Relaxed);
            h.sum_micros.fetch_add(
                u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
        };
        if let Ok(map) = self.histograms.read()
            && let Some(h) = map.get(&key)
        {
            record(h);
            return;
        }
        self.describe(name, help);
        if let Ok(mut map) = self.histograms.write() {
            record(map.entry(key).or_default());
        }
    }

    /// Sets a labelled gauge (a value known when it changes, such as a CRL's nextUpdate).
    pub fn set_gauge(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        value: f64,
    ) {
        self.describe(name, help);
        if let Ok(mut map) = self.gauges.write() {
            map.insert(key(name, labels), value);
        }
    }

    fn describe(&self, name: &'static str, help: &'static str) {
        if let Ok(mut h) = self.help.write() {
            h.entry(name).or_insert(help);
        }
    }

    /// The Prometheus text exposition of every metric, plus the given gauges.
    pub fn render(&self, gauges: &[(&'static str, &'static str, f64)]) -> String {
        let mut out = String::new();
        let help = self.help.read().map(|h| h.clone()).unwrap_or_default();
        let mut last = "";
        if let Ok(map) = self.counters.read() {
            for ((name, labels), v) in map.iter() {
                write_header(&mut out, &mut last, name, "counter", &help);
                let _ = writeln!(
                    out,
                    "{name}{} {}",
                    render_labels(labels, None),
                    v.load(Ordering::Relaxed)
                );
            }
        }
        if let Ok(map) = self.histograms.read() {
            for ((name, labels), h) in map.iter() {
                write_header(&mut out, &mut last, name, "histogram", &help);
                for (i, bound) in BUCKETS.iter().enumerate() {
                    let le = format!("{bound}");
                    let _ = writeln!(
                        out,
                        "{name}_bucket{} {}",
                        render_labels(labels, Some(&le)),
                        h.buckets[i].load(Ordering::Relaxed)
                    );
                }
                let count = h.count.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "{name}_bucket{} {count}",
                    render_labels(labels, Some("+Inf"))
                );
                let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
                let _ = writeln!(out, "{name}_sum{} {sum}", render_labels(labels, None));
                let _ = writeln!(out, "{name}_count{} {count}", render_labels(labels, None));
            }
        }
        if let Ok(map) = self.gauges.read() {
            for ((name, labels), v) in map.iter() {
                write_header(&mut out, &mut last, name, "gauge", &help);
                let _ = writeln!(out, "{name}{} {v}", render_labels(labels, None));
            }
        }
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}

/// `# HELP` and `# TYPE` before the first sample of a metric family (`last` is the family of
/// the previous sample).
fn write_header(
    out: &mut String,
    last: &mut &'static str,
    name: &'static str,
    kind: &str,
    help: &BTreeMap<&'static str, &'static str>,
) {
    if name != *last {
        let _ = writeln!(
            out,
            "# HELP {name} {}",
            help.get(name).copied().unwrap_or("")
        );
        let _ = writeln!(out, "# TYPE {name} {kind}");
        *last = name;
    }
}

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    (
        name,
        labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
    )
}

fn render_labels(labels: &[(&'static str, String)], le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}=\"{}\"",
                v.replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n")
            )
        })
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let m = Metrics::new();
        m.inc("siirto_requests_total", "API requests.", &[("code", "ok")]);
        m.inc("siirto_requests_total", "API requests.", &[("code", "ok")]);
        m.inc(
            "siirto_requests_total",
            "API requests.",
            &[("code", "bad\"one")],
        );
        m.observe(
            "siirto_transfer_seconds",
            "Transfer latency.",
            &[],
            Duration::from_millis(20),
        );
        let text = m.render(&[("siirto_pending_transfers", "Unfinished transfers.", 3.0)]);
        assert!(text.contains("# TYPE siirto_requests_total counter"));
        assert!(text.contains("siirto_requests_total{code=\"ok\"} 2"));
        assert!(text.contains("siirto_requests_total{code=\"bad\\\"one\"} 1"));
        assert!(text.contains("siirto_transfer_seconds_bucket{le=\"0.025\"} 1"));
        assert!(text.contains("siirto_transfer_seconds_bucket{le=\"0.01\"} 0"));
        assert!(text.contains("siirto_transfer_seconds_count 1"));
        assert!(text.contains("siirto_pending_transfers 3"));
    }

    #[test]
    fn set_gauges_render_with_their_labels_and_the_last_value() {
        let m = Metrics::new();
        let help = "When the CRL is next updated.";
        m.set_gauge(
            "siirto_crl_next_update_seconds",
            help,
            &[("issuer", "CN=A")],
            1.0,
        );
        m.set_gauge(
            "siirto_crl_next_update_seconds",
            help,
            &[("issuer", "CN=A")],
            1_800_000_000.0,
        );
        m.set_gauge(
            "siirto_crl_next_update_seconds",
            help,
            &[("issuer", "CN=\"B\"")],
            2.0,
        );
        let text = m.render(&[]);
        assert_eq!(
            text.matches("# TYPE siirto_crl_next_update_seconds gauge")
                .count(),
            1
        );
        assert!(
            text.contains("siirto_crl_next_update_seconds{issuer=\"CN=A\"} 1800000000\n"),
            "{text}"
        );
        assert!(
            text.contains("siirto_crl_next_update_seconds{issuer=\"CN=\\\"B\\\"\"} 2\n"),
            "{text}"
        );
    }
}

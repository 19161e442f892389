//! The gateway's metrics on `prometheus-client`, for `GET /metrics` on the admin listener.
//!
//! Owns: [`Metrics`], the one table of every metric the gateway exposes (name, help, type and
//! labels, registered once in one registry in [`Metrics::new`]), the typed label sets, and the
//! typed recording methods the rest of the gateway calls. Labels are low-cardinality values
//! (codes, outcomes, route labels, participant ids of the directory), never student data.
//! Every series of a labelled metric whose label values are known in advance (outcomes, steps,
//! reasons, the directory's participants, the routes of [`crate::http::ROUTES`]) is exposed
//! from the start with the value 0, so that a rate or an alert sees it before its first event.
//!
//! The text is the Prometheus text format 0.0.4 ([`Metrics::render`]) or, for a scraper that
//! asks for it, OpenMetrics 1.0 ([`Metrics::render_openmetrics`]). `prometheus-client` adds
//! `_total` to counters itself: counters are registered without it, and the names exposed are
//! the ones in the README. Process metrics (`process_*`, read from `/proc` at each scrape) are in
//! [`process`] (Linux only).
//!
//! Must not: read the store or the clock (the gauges of the trail and of unfinished transfers
//! are set by the admin handler just before it renders), or take student data as a label.

#[cfg(target_os = "linux")]
pub mod process;

use std::fmt::Write as _;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::config::Config;
use crate::outbound::TlsFailure;
use siirto_core::admission::Limit;
use siirto_core::identity::Role;
use siirto_core::transfer::FailureReason;

/// Histogram bucket upper bounds, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// The version and git revision of the running binary, for `siirto_build_info`. The binary
/// passes them in (from `crates/buildinfo`); this crate does not depend on how they are found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildInfo {
    pub version: String,
    pub revision: String,
}

impl BuildInfo {
    pub fn new(version: impl Into<String>, revision: impl Into<String>) -> BuildInfo {
        BuildInfo {
            version: version.into(),
            revision: revision.into(),
        }
    }
}

/// How a transfer ended: the `outcome` of `siirto_transfers_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Delivered,
    Cancelled,
    Failed(FailureReason),
}

impl Outcome {
    /// Every outcome: delivered, cancelled, and each failure reason.
    pub fn all() -> impl Iterator<Item = Outcome> {
        [Outcome::Delivered, Outcome::Cancelled]
            .into_iter()
            .chain(FailureReason::ALL.into_iter().map(Outcome::Failed))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Cancelled => "cancelled",
            Outcome::Failed(reason) => reason.as_str(),
        }
    }
}

/// The step of an attempt whose worker stopped: the `step` of
/// `siirto_attempts_interrupted_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    Fetch,
    Deliver,
}

impl Step {
    pub const ALL: [Step; 2] = [Step::Fetch, Step::Deliver];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Fetch => "fetch",
            Step::Deliver => "deliver",
        }
    }
}

/// Why the listener closed a connection unserved: the `reason` of
/// `siirto_connections_refused_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnectionRefusal {
    Limit(Limit),
    HandshakeTimeout,
}

impl ConnectionRefusal {
    pub fn all() -> impl Iterator<Item = ConnectionRefusal> {
        Limit::ALL
            .into_iter()
            .map(ConnectionRefusal::Limit)
            .chain([ConnectionRefusal::HandshakeTimeout])
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionRefusal::Limit(limit) => limit.label(),
            ConnectionRefusal::HandshakeTimeout => "handshake_timeout",
        }
    }
}

/// The label value of each closed set is its `as_str`.
macro_rules! label_value_by_as_str {
    ($($t:ty),*) => {$(
        impl EncodeLabelValue for $t {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                encoder.write_str(self.as_str())
            }
        }
    )*};
}

label_value_by_as_str!(Outcome, Step, ConnectionRefusal);

impl EncodeLabelValue for TlsFailureLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.0.code())
    }
}

/// [`TlsFailure`] as a label value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct TlsFailureLabel(TlsFailure);

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteStatus {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabel {
    route: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StepLabel {
    step: Step,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DestinationLabel {
    destination: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CheckLabel {
    question: &'static str,
    /// `true`, `false`, or the code the check ended with.
    outcome: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct QuestionLabel {
    question: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CodeLabel {
    code: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ConnectionLabel {
    reason: ConnectionRefusal,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PeerFailure {
    participant: String,
    reason: TlsFailureLabel,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ParticipantLabel {
    participant: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct WitnessLabel {
    witness: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IssuerLabel {
    issuer: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    revision: String,
}

/// The gateway's metrics: one registry, one field per metric.
pub struct Metrics {
    registry: Registry,
    http_requests: Family<RouteStatus, Counter>,
    http_request_seconds: Family<RouteLabel, Histogram, fn() -> Histogram>,
    transfers_accepted: Counter,
    transfers: Family<OutcomeLabel, Counter>,
    transfer_seconds: Histogram,
    checks: Family<CheckLabel, Counter>,
    check_seconds: Family<QuestionLabel, Histogram, fn() -> Histogram>,
    pending_transfers: Gauge,
    records_in_flight_bytes: Gauge,
    records_in_flight_peak_bytes: Gauge,
    worker_step_seconds: Histogram,
    attempts_interrupted: Family<StepLabel, Counter>,
    deliveries_deferred: Family<DestinationLabel, Counter>,
    authorizations_rejected: Family<CodeLabel, Counter>,
    tls_refused: Family<ReasonLabel, Counter>,
    connections_refused: Family<ConnectionLabel, Counter>,
    outbound_tls_failures: Family<PeerFailure, Counter>,
    crl_next_update_seconds: Family<IssuerLabel, Gauge>,
    peer_up: Family<ParticipantLabel, Gauge>,
    peer_backlog: Family<ParticipantLabel, Gauge>,
    audit_entries_verified: Gauge,
    audit_log_broken: Gauge,
    audit_checkpoint_size: Gauge,
    audit_witness_size: Family<WitnessLabel, Gauge>,
    audit_witness_conflicts: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Registers every metric (help texts without a final period: `prometheus-client` adds
    /// one), and creates the series of the closed sets of label values: outcomes, steps, the
    /// listener's refusals ([`crate::refusals::Refusal::CODES`]). The owners of the other
    /// known values add theirs with the `know_*` methods.
    pub fn new(build: &BuildInfo) -> Metrics {
        let mut r = Registry::default();
        let m = Metrics {
            http_requests: Family::default(),
            http_request_seconds: Family::new_with_constructor(histogram),
            transfers_accepted: Counter::default(),
            transfers: Family::default(),
            transfer_seconds: histogram(),
            checks: Family::default(),
            check_seconds: Family::new_with_constructor(histogram),
            pending_transfers: Gauge::default(),
            records_in_flight_bytes: Gauge::default(),
            records_in_flight_peak_bytes: Gauge::default(),
            worker_step_seconds: histogram(),
            attempts_interrupted: Family::default(),
            deliveries_deferred: Family::default(),
            authorizations_rejected: Family::default(),
            tls_refused: Family::default(),
            connections_refused: Family::default(),
            outbound_tls_failures: Family::default(),
            crl_next_update_seconds: Family::default(),
            peer_up: Family::default(),
            peer_backlog: Family::default(),
            audit_entries_verified: Gauge::default(),
            audit_log_broken: Gauge::default(),
            audit_checkpoint_size: Gauge::default(),
            audit_witness_size: Family::default(),
            audit_witness_conflicts: Counter::default(),
            registry: Registry::default(),
        };
        // The one table: exposed name (counters get `_total` from the library), help, metric.
        r.register(
            "siirto_build",
            "The version and git revision of the running gateway (always 1)",
            Info::new(BuildLabels {
                version: build.version.clone(),
                revision: build.revision.clone(),
            }),
        );
        r.register(
            "siirto_http_requests",
            "API requests by route and status",
            m.http_requests.clone(),
        );
        r.register(
            "siirto_http_request_seconds",
            "API request latency by route",
            m.http_request_seconds.clone(),
        );
        r.register(
            "siirto_transfers_accepted",
            "Transfers accepted",
            m.transfers_accepted.clone(),
        );
        r.register(
            "siirto_transfers",
            "Transfers that reached an end, by outcome (delivered, cancelled, or the failure reason)",
            m.transfers.clone(),
        );
        r.register(
            "siirto_transfer_seconds",
            "Time from acceptance to delivery",
            m.transfer_seconds.clone(),
        );
        r.register(
            "siirto_checks",
            "Checks without transfer by question and outcome (true, false, or the code the check ended with)",
            m.checks.clone(),
        );
        r.register(
            "siirto_check_seconds",
            "Time a check took, from its submission to its answer, by question",
            m.check_seconds.clone(),
        );
        r.register(
            "siirto_pending_transfers",
            "Transfers accepted but not yet at an end (last refresh)",
            m.pending_transfers.clone(),
        );
        r.register(
            "siirto_records_in_flight_bytes",
            "Bytes of fetched records held in memory now, as reserved in delivery.max_in_flight_bytes",
            m.records_in_flight_bytes.clone(),
        );
        r.register(
            "siirto_records_in_flight_peak_bytes",
            "The most bytes of fetched records held in memory at once since the gateway started",
            m.records_in_flight_peak_bytes.clone(),
        );
        r.register(
            "siirto_worker_step_seconds",
            "Time a worker spent on one step of a transfer",
            m.worker_step_seconds.clone(),
        );
        r.register(
            "siirto_attempts_interrupted",
            "Fetch and delivery attempts whose worker stopped before recording an outcome",
            m.attempts_interrupted.clone(),
        );
        r.register(
            "siirto_deliveries_deferred",
            "Transfers a worker gave back because every call slot of their destination was taken",
            m.deliveries_deferred.clone(),
        );
        r.register(
            "siirto_authorizations_rejected",
            "Refused authorizations by code",
            m.authorizations_rejected.clone(),
        );
        r.register(
            "siirto_tls_refused",
            "Refused TLS handshakes by reason",
            m.tls_refused.clone(),
        );
        r.register(
            "siirto_connections_refused",
            "Connections closed unserved by the listener's limits, by reason",
            m.connections_refused.clone(),
        );
        r.register(
            "siirto_outbound_tls_failures",
            "Failed TLS handshakes with sources and destinations, by participant and reason",
            m.outbound_tls_failures.clone(),
        );
        r.register(
            "siirto_crl_next_update_seconds",
            "When each CRL of gateway.crl is next updated (its nextUpdate), in Unix seconds",
            m.crl_next_update_seconds.clone(),
        );
        r.register(
            "siirto_peer_up",
            "1 while a source or destination is up, 0 while it is marked down (delivery.peer_down_after)",
            m.peer_up.clone(),
        );
        r.register(
            "siirto_peer_backlog",
            "Transfers waiting for a source (to be fetched) or a destination (to be delivered)",
            m.peer_backlog.clone(),
        );
        r.register(
            "siirto_audit_entries_verified",
            "Audit entries the trail has checked and holds in its Merkle tree",
            m.audit_entries_verified.clone(),
        );
        r.register(
            "siirto_audit_log_broken",
            "1 when the stored audit log stopped verifying (no checkpoints are signed)",
            m.audit_log_broken.clone(),
        );
        r.register(
            "siirto_audit_checkpoint_size",
            "Tree size of the last checkpoint this instance signed",
            m.audit_checkpoint_size.clone(),
        );
        r.register(
            "siirto_audit_witness_size",
            "Tree size of this gateway's latest checkpoint each witness cosigned",
            m.audit_witness_size.clone(),
        );
        r.register(
            "siirto_audit_witness_conflicts",
            "Conflicting checkpoints seen: as a witness (rollback or split view), or told by a witness",
            m.audit_witness_conflicts.clone(),
        );
        #[cfg(target_os = "linux")]
        r.register_collector(Box::new(process::ProcessCollector::new()));

        for outcome in Outcome::all() {
            expose(&m.transfers, OutcomeLabel { outcome });
        }
        for question in siirto_core::check::Question::ALL {
            let question = question.as_str();
            for outcome in ["true", "false"] {
                expose(&m.checks, CheckLabel { question, outcome });
            }
            expose(&m.check_seconds, QuestionLabel { question });
        }
        for step in Step::ALL {
            expose(&m.attempts_interrupted, StepLabel { step });
        }
        for reason in ConnectionRefusal::all() {
            expose(&m.connections_refused, ConnectionLabel { reason });
        }
        for reason in crate::refusals::Refusal::CODES {
            expose(&m.tls_refused, ReasonLabel { reason });
        }
        Metrics { registry: r, ..m }
    }

    /// Creates the latency series of each route label (from [`crate::http::ROUTES`]).
    pub fn know_routes(&self, routes: impl IntoIterator<Item = &'static str>) {
        for route in routes {
            expose(&self.http_request_seconds, RouteLabel { route });
        }
    }

    /// Creates the series of each code a submission can be refused with.
    pub fn know_authorization_codes(&self, codes: impl IntoIterator<Item = &'static str>) {
        for code in codes {
            expose(&self.authorizations_rejected, CodeLabel { code });
        }
    }

    /// Creates the series of the directory's participants: deferred deliveries of each
    /// destination, and failed TLS handshakes of each source and destination by reason.
    pub fn know_participants(&self, config: &Config) {
        for p in config.directory.iter() {
            if p.has_role(Role::Destination) {
                expose(
                    &self.deliveries_deferred,
                    DestinationLabel {
                        destination: p.id.clone(),
                    },
                );
            }
            if p.endpoint.is_some() {
                let participant = ParticipantLabel {
                    participant: p.id.clone(),
                };
                self.peer_up.get_or_create(&participant).set(1);
                expose(&self.peer_backlog, participant);
                for reason in TlsFailure::ALL {
                    expose(
                        &self.outbound_tls_failures,
                        PeerFailure {
                            participant: p.id.clone(),
                            reason: TlsFailureLabel(reason),
                        },
                    );
                }
            }
        }
    }

    /// One API request answered.
    pub fn request(&self, route: &'static str, status: u16, took: Duration) {
        self.http_requests
            .get_or_create(&RouteStatus { route, status })
            .inc();
        self.http_request_seconds
            .get_or_create(&RouteLabel { route })
            .observe(took.as_secs_f64());
    }

    pub fn transfer_accepted(&self) {
        self.transfers_accepted.inc();
    }

    /// A transfer reached an end; `took` is the time from acceptance when it was delivered.
    pub fn transfer_ended(&self, outcome: Outcome, took: Option<Duration>) {
        self.transfers
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
        if let Some(took) = took {
            self.transfer_seconds.observe(took.as_secs_f64());
        }
    }

    /// A check ended: answered (`outcome` `true` or `false`) or not (the code it ended with).
    pub fn check_ended(&self, question: &'static str, outcome: &'static str, took: Duration) {
        self.checks
            .get_or_create(&CheckLabel { question, outcome })
            .inc();
        self.check_seconds
            .get_or_create(&QuestionLabel { question })
            .observe(took.as_secs_f64());
    }

    pub fn worker_step(&self, took: Duration) {
        self.worker_step_seconds.observe(took.as_secs_f64());
    }

    pub fn attempts_interrupted(&self, step: Step, n: u64) {
        self.attempts_interrupted
            .get_or_create(&StepLabel { step })
            .inc_by(n);
    }

    pub fn delivery_deferred(&self, destination: &str) {
        self.deliveries_deferred
            .get_or_create(&DestinationLabel {
                destination: destination.to_owned(),
            })
            .inc();
    }

    pub fn authorization_rejected(&self, code: &'static str) {
        self.authorizations_rejected
            .get_or_create(&CodeLabel { code })
            .inc();
    }

    pub fn tls_refused(&self, reason: &'static str) {
        self.tls_refused
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    pub fn connection_refused(&self, reason: ConnectionRefusal) {
        self.connections_refused
            .get_or_create(&ConnectionLabel { reason })
            .inc();
    }

    pub fn outbound_tls_failure(&self, participant: &str, reason: TlsFailure) {
        self.outbound_tls_failures
            .get_or_create(&PeerFailure {
                participant: participant.to_owned(),
                reason: TlsFailureLabel(reason),
            })
            .inc();
    }

    pub fn crl_next_update(&self, issuer: &str, unix_seconds: i64) {
        self.crl_next_update_seconds
            .get_or_create(&IssuerLabel {
                issuer: issuer.to_owned(),
            })
            .set(unix_seconds);
    }

    /// A source's or destination's health and backlog, as the store has them.
    pub fn set_peer(&self, participant: &str, up: bool, backlog: u64) {
        let label = ParticipantLabel {
            participant: participant.to_owned(),
        };
        self.peer_up.get_or_create(&label).set(i64::from(up));
        self.peer_backlog
            .get_or_create(&label)
            .set(saturating_i64(backlog));
    }

    /// The tree size `witness` last cosigned.
    pub fn set_witness_size(&self, witness: &str, size: u64) {
        self.audit_witness_size
            .get_or_create(&WitnessLabel {
                witness: witness.to_owned(),
            })
            .set(saturating_i64(size));
    }

    /// A conflicting checkpoint (audited as `witness.conflict`).
    pub fn witness_conflict(&self) {
        self.audit_witness_conflicts.inc();
    }

    pub fn set_pending(&self, pending: u64) {
        self.pending_transfers.set(saturating_i64(pending));
    }

    /// The budget of records in flight (`delivery.max_in_flight_bytes`), kept on
    /// `siirto_records_in_flight_bytes` and `siirto_records_in_flight_peak_bytes`.
    pub fn record_budget(&self, total: usize) -> crate::budget::RecordBudget {
        crate::budget::RecordBudget::new(
            total,
            self.records_in_flight_bytes.clone(),
            self.records_in_flight_peak_bytes.clone(),
        )
    }

    /// The audit trail's state: entries verified, whether the log is broken, and the tree size
    /// of the last checkpoint signed here (0 when none).
    pub fn set_trail(&self, verified: u64, broken: bool, checkpoint_size: u64) {
        self.audit_entries_verified.set(saturating_i64(verified));
        self.audit_log_broken.set(i64::from(broken));
        self.audit_checkpoint_size
            .set(saturating_i64(checkpoint_size));
    }

    /// The Prometheus text format (0.0.4) of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail, nor can the process collector (it skips what it
        // cannot read).
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }

    /// The OpenMetrics 1.0 text of every metric (ends with `# EOF`).
    pub fn render_openmetrics(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The `Content-Type` of [`Metrics::render`].
pub const PROMETHEUS_TEXT: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The `Content-Type` of [`Metrics::render_openmetrics`].
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether an `Accept` header asks for OpenMetrics (as Prometheus does by default).
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|range| {
            let mut params = range.split(';').map(str::trim);
            params
                .next()
                .is_some_and(|t| t.eq_ignore_ascii_case("application/openmetrics-text"))
                && !params.any(|p| p.replace(' ', "") == "q=0")
        })
    })
}

/// Creates the series of `labels` (value 0) if it is not there yet.
fn expose<S, M, C>(family: &Family<S, M, C>, labels: S)
where
    S: Clone + std::hash::Hash + Eq,
    C: prometheus_client::metrics::family::MetricConstructor<M>,
{
    drop(family.get_or_create(&labels));
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> Metrics {
        Metrics::new(&BuildInfo::new("1.2.3", "abc\"def"))
    }

    #[test]
    fn names_types_and_labels_are_as_before() {
        let m = metrics();
        m.request("get_transfer", 200, Duration::from_millis(20));
        m.request("get_transfer", 200, Duration::from_millis(20));
        m.transfer_ended(Outcome::Delivered, Some(Duration::from_millis(20)));
        m.crl_next_update("CN=\"B\"", 1_800_000_000);
        m.set_pending(3);
        let text = m.render();
        for line in [
            "# TYPE siirto_http_requests_total counter",
            "siirto_http_requests_total{route=\"get_transfer\",status=\"200\"} 2",
            "siirto_http_request_seconds_bucket{route=\"get_transfer\",le=\"0.025\"} 2",
            "siirto_http_request_seconds_bucket{route=\"get_transfer\",le=\"0.01\"} 0",
            "siirto_http_request_seconds_bucket{route=\"get_transfer\",le=\"1\"} 2",
            "siirto_http_request_seconds_count{route=\"get_transfer\"} 2",
            "siirto_transfer_seconds_count 1",
            "siirto_transfers_total{outcome=\"delivered\"} 1",
            "siirto_pending_transfers 3",
            "# TYPE siirto_crl_next_update_seconds gauge",
            "siirto_crl_next_update_seconds{issuer=\"CN=\\\"B\\\"\"} 1800000000",
            "# TYPE siirto_build_info gauge",
            "siirto_build_info{version=\"1.2.3\",revision=\"abc\\\"def\"} 1",
            "# HELP siirto_transfers_accepted_total Transfers accepted.",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
        assert!(!text.contains("_total_total"), "{text}");
        assert!(!text.contains(".."), "a help text ends in a period: {text}");
    }

    #[test]
    fn every_known_label_value_is_exposed_from_the_start() {
        let m = metrics();
        m.know_routes(["submit_transfer", "other"]);
        m.know_authorization_codes(["expired"]);
        let text = m.render();
        let mut expected: Vec<String> = Outcome::all()
            .map(|o| format!("siirto_transfers_total{{outcome=\"{}\"}} 0", o.as_str()))
            .collect();
        assert_eq!(expected.len(), 2 + FailureReason::ALL.len());
        expected.extend(
            ["fetch", "deliver"]
                .map(|s| format!("siirto_attempts_interrupted_total{{step=\"{s}\"}} 0")),
        );
        expected.extend(
            [
                "per_address",
                "handshakes_per_address",
                "global",
                "handshake_timeout",
            ]
            .map(|r| format!("siirto_connections_refused_total{{reason=\"{r}\"}} 0")),
        );
        expected.extend([
            "siirto_transfers_total{outcome=\"cancelled\"} 0".to_owned(),
            "siirto_authorizations_rejected_total{code=\"expired\"} 0".to_owned(),
            "siirto_tls_refused_total{reason=\"unknown_ca\"} 0".to_owned(),
            "siirto_http_request_seconds_count{route=\"submit_transfer\"} 0".to_owned(),
            "siirto_http_request_seconds_count{route=\"other\"} 0".to_owned(),
            "siirto_audit_log_broken 0".to_owned(),
            "siirto_records_in_flight_bytes 0".to_owned(),
            "siirto_records_in_flight_peak_bytes 0".to_owned(),
        ]);
        for line in &expected {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
    }

    #[tokio::test]
    async fn the_record_budget_shows_bytes_in_flight_and_their_peak() {
        let m = metrics();
        let budget = m.record_budget(1 << 20);
        let (a, b) = (budget.reserve(1000).await, budget.reserve(3000).await);
        drop(a);
        let text = m.render();
        for line in [
            "# HELP siirto_records_in_flight_bytes Bytes of fetched records held in memory now, as reserved in delivery.max_in_flight_bytes.",
            "# TYPE siirto_records_in_flight_bytes gauge",
            "siirto_records_in_flight_bytes 3000",
            "# TYPE siirto_records_in_flight_peak_bytes gauge",
            "siirto_records_in_flight_peak_bytes 4000",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
        drop(b);
        let text = m.render();
        assert!(
            text.contains("\nsiirto_records_in_flight_bytes 0\n"),
            "{text}"
        );
        assert!(
            text.contains("\nsiirto_records_in_flight_peak_bytes 4000\n"),
            "{text}"
        );
    }

    #[test]
    fn cancelled_and_failures_count_by_outcome() {
        let m = metrics();
        m.transfer_ended(Outcome::Cancelled, None);
        m.transfer_ended(Outcome::Failed(FailureReason::SourceNotFound), None);
        m.transfer_ended(Outcome::Failed(FailureReason::SourceNotFound), None);
        let text = m.render();
        assert!(text.contains("\nsiirto_transfers_total{outcome=\"cancelled\"} 1\n"));
        assert!(text.contains("\nsiirto_transfers_total{outcome=\"source_not_found\"} 2\n"));
        assert!(
            text.contains("\nsiirto_transfer_seconds_count 0\n"),
            "{text}"
        );
    }

    #[test]
    fn openmetrics_names_counter_families_without_the_suffix_and_ends_with_eof() {
        let m = metrics();
        m.transfer_accepted();
        let text = m.render_openmetrics();
        assert!(
            text.contains("# TYPE siirto_transfers_accepted counter\n"),
            "{text}"
        );
        assert!(
            text.contains("\nsiirto_transfers_accepted_total 1\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE siirto_build info\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn openmetrics_is_chosen_only_when_asked_for() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(Some(prometheus)));
        assert!(wants_openmetrics(Some("Application/OpenMetrics-Text")));
        assert!(!wants_openmetrics(Some("text/plain")));
        assert!(!wants_openmetrics(Some("*/*")));
        assert!(!wants_openmetrics(Some(
            "application/openmetrics-text; q=0"
        )));
        assert!(!wants_openmetrics(None));
    }
}

//! What every end-to-end test needs: a whole installation on 127.0.0.1 (the [`Testbed`]: dev
//! PKI, reference source and destination TLS servers, the gateway with a fresh database), signed
//! authorizations, the audit trail, schema validation by the project *and* by libxml2, and the
//! outside tools (curl, python3, xmllint) with the loud-skip rule of the suite.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use siirto_core::audit::AuditEntry;
use siirto_core::config::SchemaPaths;
use siirto_core::formats::Format;
use siirto_devkit::client::Answer;
use siirto_devkit::testbed::{Testbed, TestbedOptions};
use siirto_gateway::store::testdb::TestDb;
use siirto_xsd::schema::Schema;
use siirto_xsd::{Limits, dom};

/// A made-up student: the documented example henkilötunnus (valid check character, nobody's).
pub const STUDENT: &str = "131052-308T";
/// Another made-up student, for records about the wrong person.
pub const OTHER_STUDENT: &str = "150608A123J";
/// Every category except `support`.
pub const SCOPE_NO_SUPPORT: &str = "identity enrolment achievements mobility registrations";
/// Every category.
pub const SCOPE_ALL: &str = "identity enrolment achievements mobility registrations support";

/// How long a transfer may take on a busy two-core machine before a test gives up.
pub const TRANSFER_DEADLINE: Duration = Duration::from_secs(30);

/// The schema file of a format: the project's own for `siirto-v1`, the corpus' official ones
/// for VIRTA and ELMO (`None`, after a loud skip, when the corpus is absent:
/// `siirto_testsupport::corpus`).
pub fn schema_path(format: Format) -> Option<PathBuf> {
    match format {
        Format::SiirtoV1 => {
            Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("xsd/siirto-record-v1.xsd"))
        }
        Format::Virta => siirto_testsupport::corpus().map(|c| c.join("virta/xsd/Virta.xsd")),
        Format::Elmo => siirto_testsupport::corpus().map(|c| c.join("elmo/schema.xsd")),
        Format::Koski => panic!("koski is JSON read into typed structures: it has no schema"),
    }
}

/// `[schemas]` with VIRTA and ELMO configured from `corpus`: the testbed then adds the `virta`
/// source and the `emrex` (ELMO) destination to the directory.
pub fn schemas_with_registers(corpus: &Path) -> SchemaPaths {
    SchemaPaths {
        siirto_v1: None,
        virta: Some(corpus.join("virta/xsd/Virta.xsd")),
        elmo: Some(corpus.join("elmo/schema.xsd")),
    }
}

/// A testbed with the municipal participants and, when the corpus is there, the registers
/// (`virta` serving VIRTA, `emrex` reading ELMO) with the corpus' official schemas. Returns the
/// corpus too; `None` after a loud skip, and the test runs only its municipal part.
pub async fn start_with_registers_if_any() -> (Testbed, Option<PathBuf>) {
    let corpus = siirto_testsupport::corpus();
    let schemas = corpus
        .as_deref()
        .map(schemas_with_registers)
        .unwrap_or_default();
    let bed = start_with(TestbedOptions {
        schemas,
        ..TestbedOptions::default()
    })
    .await;
    (bed, corpus)
}

/// A testbed with SQLite and the municipal participants (turku, espoo, helsinki, oulu, the
/// e-service and the operator).
pub async fn start() -> Testbed {
    start_with(TestbedOptions::default()).await
}

pub async fn start_with(options: TestbedOptions) -> Testbed {
    Testbed::start(options).await.expect("testbed starts")
}

/// The gateway of an in-process testbed.
pub fn gateway(bed: &Testbed) -> &Arc<siirto_gateway::state::Gateway> {
    bed.gateway.as_ref().expect("in-process gateway")
}

/// A fresh PostgreSQL database when `SIIRTO_TEST_POSTGRES` is set; a loud skip otherwise.
pub async fn postgres() -> Option<TestDb> {
    match TestDb::postgres().await {
        Ok(Some(db)) => Some(db),
        Ok(None) => {
            eprintln!("SKIPPED: SIIRTO_TEST_POSTGRES is not set; this PostgreSQL test did not run");
            None
        }
        Err(e) => panic!("SIIRTO_TEST_POSTGRES is set but no test database can be created: {e}"),
    }
}

// --- Authorizations -------------------------------------------------------------------------

/// Claims of a fresh authorization (editable JSON), signed later with [`Testbed::sign`].
pub fn claims(bed: &Testbed, subject: &str, src: &str, dst: &str, scope: &str) -> Value {
    bed.authorization(subject, src, dst, scope).claims()
}

/// A signed authorization with fresh claims.
pub fn token(bed: &Testbed, subject: &str, src: &str, dst: &str, scope: &str) -> String {
    bed.sign(&claims(bed, subject, src, dst, scope))
        .expect("sign")
}

/// A compact JWS with any header and signature bytes (for tokens no honest signer makes).
pub fn raw_jws(header: &Value, claims: &Value, signature: &[u8]) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// `POST /v1/transfers` as `participant`.
pub async fn submit(bed: &Testbed, participant: &str, token: &str) -> Answer {
    bed.client(participant)
        .expect("client")
        .submit(token)
        .await
        .expect("the gateway answers")
}

/// Submits as the e-service and requires `202 accepted`; returns the transfer id.
pub async fn submit_accepted(bed: &Testbed, token: &str) -> String {
    let answer = submit(bed, "eservice", token).await;
    assert_eq!(
        answer.status.as_u16(),
        202,
        "submission refused: {}",
        answer.json()
    );
    let body = answer.json();
    assert_eq!(body["status"], "accepted", "{body}");
    body["id"].as_str().expect("an id").to_owned()
}

/// Waits until the transfer is delivered, failed or cancelled, and returns its JSON view.
pub async fn finished(bed: &Testbed, id: &str) -> Value {
    bed.wait_for_status(
        "eservice",
        id,
        &["delivered", "failed", "cancelled"],
        TRANSFER_DEADLINE,
    )
    .await
    .expect("the transfer finishes")
}

/// Waits for the transfer to end and requires `failed` with `reason`.
pub async fn assert_failed(bed: &Testbed, id: &str, reason: &str) -> Value {
    let t = finished(bed, id).await;
    assert_eq!(t["status"], "failed", "{t:#}");
    assert_eq!(t["reason"], reason, "{t:#}");
    t
}

/// The step of a transfer view named `name` (the last one when repeated).
pub fn step<'a>(transfer: &'a Value, name: &str) -> &'a Value {
    transfer["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .rev()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no `{name}` step in {transfer:#}"))
}

// --- Peers ------------------------------------------------------------------------------------

/// Requires that no destination of the testbed received any request.
pub fn assert_nothing_delivered(bed: &Testbed) {
    for (id, d) in &bed.destinations {
        assert!(
            d.requests().is_empty(),
            "destination {id} received {} request(s)",
            d.requests().len()
        );
    }
}

/// Requires that no source of the testbed was asked for anything.
pub fn assert_no_source_called(bed: &Testbed) {
    for (id, s) in &bed.sources {
        assert!(
            s.requests().is_empty(),
            "source {id} was called for transfers {:?}",
            s.requests()
        );
    }
}

// --- Refusals ---------------------------------------------------------------------------------

/// Awaits `answer` and requires the refusal `status`/`code` with a human message that does not
/// echo the student id, exactly one new audit entry `action`/`code` by `actor` (with the
/// message, naming no transfer), and that nothing moved. Returns the entry.
pub async fn assert_refusal(
    bed: &Testbed,
    actor: &str,
    action: &str,
    status: u16,
    code: &str,
    answer: impl std::future::Future<Output = Answer>,
) -> AuditEntry {
    let is_this_refusal = |e: &AuditEntry| {
        e.event.action == action && e.event.outcome == code && e.event.actor == actor
    };
    let before = audit(bed)
        .await
        .iter()
        .filter(|e| is_this_refusal(e))
        .count();
    let answer = answer.await;
    let body = answer.json();
    assert_eq!(answer.status.as_u16(), status, "{body}");
    assert_eq!(answer.error_code().as_deref(), Some(code), "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "a human message: {body}"
    );
    assert!(
        !body.to_string().contains(STUDENT),
        "the answer must not echo the student id: {body}"
    );
    let entries = audit(bed).await;
    let refusals: Vec<_> = entries.iter().filter(|e| is_this_refusal(e)).collect();
    assert_eq!(
        refusals.len(),
        before + 1,
        "one new {action}/{code} entry by {actor}:\n{}",
        describe(&entries)
    );
    let entry = refusals[before].clone();
    assert!(entry.event.transfer_id.is_none());
    assert!(
        entry.event.detail.contains_key("message"),
        "the refusal's reason is recorded"
    );
    assert_nothing_moved(bed).await;
    entry
}

/// No transfer was accepted, no source called, nothing delivered.
pub async fn assert_nothing_moved(bed: &Testbed) {
    let entries = audit(bed).await;
    assert!(
        !entries
            .iter()
            .any(|e| e.event.action == "transfer.accepted"),
        "a transfer was accepted:\n{}",
        describe(&entries)
    );
    assert_no_source_called(bed);
    assert_nothing_delivered(bed);
}

// --- Audit and metrics ------------------------------------------------------------------------

/// The whole audit trail, in order.
pub async fn audit(bed: &Testbed) -> Vec<AuditEntry> {
    gateway(bed)
        .store
        .audit_range(0, 100_000)
        .await
        .expect("audit readable")
}

/// Waits (with a deadline) for an audit entry matching `what`, and returns it. Some entries
/// (a refused certificate) are written just after the answer.
pub async fn wait_for_audit(
    bed: &Testbed,
    description: &str,
    what: impl Fn(&AuditEntry) -> bool,
) -> AuditEntry {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let entries = audit(bed).await;
        if let Some(e) = entries.iter().find(|e| what(e)) {
            return e.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no audit entry {description}; the trail is:\n{}",
            describe(&entries)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for the audit entry recording a refused authorization with `code`, by `actor`.
pub async fn assert_rejection_audited(bed: &Testbed, actor: &str, code: &str) -> AuditEntry {
    wait_for_audit(
        bed,
        &format!("authorization.rejected/{code} by {actor}"),
        |e| {
            e.event.action == "authorization.rejected"
                && e.event.outcome == code
                && e.event.actor == actor
        },
    )
    .await
}

/// The audit entries about one transfer, as (action, outcome).
pub async fn audit_of(bed: &Testbed, transfer: &str) -> Vec<(String, String)> {
    audit(bed)
        .await
        .into_iter()
        .filter(|e| e.event.transfer_id.as_deref() == Some(transfer))
        .map(|e| (e.event.action, e.event.outcome))
        .collect()
}

pub fn describe(entries: &[AuditEntry]) -> String {
    entries
        .iter()
        .map(|e| {
            format!(
                "  #{} {} {} {} {:?}",
                e.seq, e.event.actor, e.event.action, e.event.outcome, e.event.transfer_id
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// API requests the gateway has answered so far (sum of `siirto_http_requests_total`).
pub fn api_requests_answered(bed: &Testbed) -> u64 {
    let text = gateway(bed).metrics.render();
    text.lines()
        .filter(|l| l.starts_with("siirto_http_requests_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| {
            assert!(v >= 0.0 && v.fract() == 0.0, "counter {v}");
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let n = v as u64;
            n
        })
        .sum()
}

// --- Documents --------------------------------------------------------------------------------

pub fn parse(document: &[u8]) -> dom::Element {
    dom::parse(document, &Limits::default()).expect("document parses")
}

/// Validates with the project's own XSD engine (loaded from the schema file, independently of
/// the gateway's copy) and with libxml2's `xmllint --noout --nonet --schema`.
/// Without the corpus (VIRTA, ELMO) the check is skipped loudly.
pub fn assert_valid(format: Format, document: &[u8], label: &str) {
    let Some(path) = schema_path(format) else {
        return;
    };
    let schema = Schema::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if let Err(failure) = schema.validate(document, &Limits::default()) {
        panic!(
            "{label}: the project's validator rejects the {format} document: {failure}\n{}",
            String::from_utf8_lossy(document)
        );
    }
    if let Some(xmllint) = tool("xmllint", &["--version"], "libxml2-utils") {
        let mut file = tempfile::Builder::new()
            .suffix(".xml")
            .tempfile()
            .expect("temporary file");
        std::io::Write::write_all(&mut file, document).expect("write");
        let out = Command::new(xmllint)
            .args(["--noout", "--nonet", "--schema"])
            .arg(&path)
            .arg(file.path())
            .output()
            .expect("run xmllint");
        assert!(
            out.status.success(),
            "{label}: xmllint rejects the {format} document:\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(document)
        );
    }
}

pub use siirto_devkit::demo::school_record;

/// `(code, scale=grade)` of every achievement of a siirto-v1 document, sorted.
pub fn siirto_achievements(root: &dom::Element) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = root
        .child("achievements")
        .map(|a| {
            a.children_named("achievement")
                .map(|a| {
                    (
                        a.child_text("code").unwrap_or_default(),
                        a.child("grade")
                            .and_then(|g| g.elements().next())
                            .map(|scale| format!("{}={}", scale.local, scale.text().trim()))
                            .unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Every element local name in a document (to check what is absent).
pub fn element_names(root: &dom::Element) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(e) = stack.pop() {
        out.push(e.local.to_string());
        stack.extend(e.elements());
    }
    out
}

// --- Outside tools ----------------------------------------------------------------------------

/// `name` if it runs (`name args` exits 0); otherwise a loud SKIPPED line, or a failure when
/// tools are required (`siirto_testsupport::skip`).
pub fn tool(name: &str, args: &[&str], package: &str) -> Option<PathBuf> {
    let runs = Command::new(name)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    if runs {
        return Some(PathBuf::from(name));
    }
    siirto_testsupport::skip(&format!(
        "needs `{name}` (install {package}); part of this test did not run"
    ));
    None
}

/// One curl call against the gateway: `(exit success, HTTP status, body)`. `body` is given to
/// `--data-binary` (so `@FILE` reads a file); `extra` are more curl arguments.
pub async fn curl(
    bed: &Testbed,
    identity: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&str>,
    extra: &[&str],
) -> (bool, u16, String) {
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args([
        "-sS",
        "--max-time",
        "10",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
    ])
    .arg("--cacert")
    .arg(&bed.pki.ca.cert);
    if let Some(participant) = identity {
        let files = &bed
            .pki
            .participant(participant)
            .expect("participant")
            .client;
        cmd.arg("--cert")
            .arg(&files.cert)
            .arg("--key")
            .arg(&files.key);
    }
    if let Some(body) = body {
        cmd.args([
            "-H",
            "content-type: application/json",
            "--data-binary",
            body,
        ]);
    }
    cmd.args(extra);
    cmd.arg(format!("{}{path}", bed.api_url()));
    let out = cmd.output().await.expect("run curl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (text, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    let status = code.trim().parse().unwrap_or(0);
    let text = if out.status.success() {
        text.to_owned()
    } else {
        format!("{text}{}", String::from_utf8_lossy(&out.stderr))
    };
    (out.status.success(), status, text)
}

/// The `error` member of an answer's body, or a description of a body that is not one.
pub fn error_code(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("(not an error answer: {body})"))
}

/// `python3` with the `cryptography` package, or a loud skip.
pub fn python_with_cryptography() -> Option<PathBuf> {
    tool(
        "python3",
        &["-c", "import cryptography"],
        "python3 and the Python package cryptography",
    )
}

/// The Python helpers of `tests/tools/`.
pub fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools")
}

/// The `siirto` binary Cargo built for these tests.
pub fn siirto_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_siirto"))
}

//! The `siirto` command line as a newcomer meets it: `--version` with the git revision, `--help`
//! for every command naming its options, shell completions and the man page, and the README's
//! "Drive one transfer by hand" run step by step as separate processes — `pki init`, `serve`,
//! `dev peers`, `dev sign` and `curl` — until the transfer is delivered; and `siirto demo`,
//! the README's first command, with its KOSKI pupil converted on screen.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

fn siirto() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_siirto"));
    c.env("SIIRTO_LOG", "warn");
    c
}

fn run(args: &[&str]) -> Output {
    siirto().args(args).output().expect("run siirto")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn said(o: &Output) -> String {
    format!("{}{}", stdout(o), String::from_utf8_lossy(&o.stderr))
}

/// The revision the build script saw: SIIRTO_GIT_REVISION, else git, else `unknown`.
fn revision() -> String {
    std::env::var("SIIRTO_GIT_REVISION")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .or_else(|| {
            Command::new("git")
                .args(["-C", env!("CARGO_MANIFEST_DIR")])
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

#[test]
fn version_names_the_package_version_and_the_git_revision() {
    let out = run(&["--version"]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    let revision = revision();
    assert_eq!(
        stdout(&out),
        format!("siirto {} (git {revision})\n", env!("CARGO_PKG_VERSION"))
    );
    assert_ne!(revision, "", "git gave an empty revision");
}

/// Every command with the options its help must name. `siirto --help` must list exactly these
/// top-level commands, so a new command needs a line here.
const COMMANDS: &[(&str, &[&str])] = &[
    ("serve", &["--config"]),
    ("demo", &["--keep"]),
    ("pki", &["init"]),
    (
        "pki init",
        &["DIR", "--api-port", "--admin-port", "--free-ports"],
    ),
    (
        "validate",
        &["--format", "--config", "--schema", "FILE", "siirto-v1"],
    ),
    (
        "convert",
        &["--config", "--from", "--to", "--scope", "--subject", "FILE"],
    ),
    ("sign", &["--config", "FILE"]),
    ("verify-signature", &["--cert", "--allow-sha1", "FILE"]),
    ("audit", &["verify", "export", "verify-proof"]),
    ("audit verify", &["--config"]),
    ("audit export", &["--config", "--since"]),
    (
        "audit verify-proof",
        &[
            "--checkpoint",
            "--public-key",
            "--proof",
            "--old-checkpoint",
            "--witness-key",
            "--quorum",
        ],
    ),
    ("attestation", &["verify"]),
    ("attestation verify", &["FILE", "--public-key"]),
    ("migrate", &["--config"]),
    ("retention", &["--config", "--dry-run"]),
    ("transfers", &["list", "show", "retry"]),
    (
        "transfers list",
        &[
            "--config",
            "--subject",
            "--reason",
            "--status",
            "--src",
            "--dst",
            "--since",
            "--until",
            "--format",
        ],
    ),
    ("transfers show", &["--config", "ID"]),
    (
        "transfers retry",
        &["--config", "--reason", "--src", "--dst", "--limit"],
    ),
    ("dev", &["sign", "peers"]),
    (
        "dev sign",
        &[
            "--config",
            "--typ",
            "--iss",
            "--aud",
            "--sub",
            "--src",
            "--dst",
            "--scope",
            "--purpose",
            "--lifetime",
            "--kid",
            "--key",
            "--jti",
            "authz",
            "transparency",
        ],
    ),
    ("dev peers", &["--config", "--records"]),
    ("completions", &["bash", "zsh", "fish"]),
    ("man", &["--out"]),
];

/// `siirto demo`: all three transfers delivered (the last on a consent given at KOSKI itself,
/// OmaData), the KOSKI one asked for as KOSKI's documentation
/// says, its subjects shown as KOSKI sent them and as the school system received them, the
/// audit trail verified, and the pupil's henkilötunnus never printed.
#[test]
fn the_demo_shows_a_koski_pupil_converted_for_a_school_system() {
    let started = Instant::now();
    // Without the corpus (and so without the ELMO schema): no EMREX destination.
    let out = siirto()
        .env_remove("SIIRTO_CORPUS")
        .arg("demo")
        .output()
        .expect("run siirto");
    let text = stdout(&out);
    assert!(out.status.success(), "{}", said(&out));
    for expected in [
        "XML Signature: verifies with the gateway's document-signing certificate (ecdsa-sha256)",
        "source       koski  (koski JSON, KOSKI luovutuspalvelu)",
        "gateway → KOSKI  POST /koski/api/luovutuspalvelu/hetu",
        "\"hetu\":\"<henkilötunnus>\"",
        "convert   ok         koski → siirto-v1, valid siirto-v1",
        "MA Matematiikka                        9         →  <code scheme=koskioppiaineetyleissivistava>MA</code>  <asteikko-4-10>9</asteikko-4-10>",
        "KU Kuvataide                           S         →  <code scheme=koskioppiaineetyleissivistava>KU</code>  <hyvaksytty-hylatty>S</hyvaksytty-hylatty>",
        "support decisions (in KOSKI's lisätiedot) in the delivered record: none (not in scope)",
        "POST /v1/checks (typ siirto-check+jwt, no scope) → 200",
        "question active_study_right, answer true",
        "   attestation eyJ",
        "audit verify: OK — 26 entries",
        "A pupil consents at KOSKI itself (OmaData)",
        "with response_type, client_id, redirect_uri, scope, state, code_challenge, code_challenge_method, response_mode",
        "token endpoint (mutual TLS, code + PKCE verifier): 1 exchange; resource endpoint (Bearer): 1 fetch",
        "consent given at KOSKI",
        "POST /witness/add-checkpoint (old 0) → 200 OK",
        "   | 26\n",
        "cosignature/v1 by tampere.dev.test/witness",
    ] {
        assert!(text.contains(expected), "`{expected}` is not in:\n{text}");
    }
    assert_eq!(text.matches("status: \"delivered\"").count(), 3, "{text}");
    assert!(!text.contains(siirto_devkit::demo::DEMO_STUDENT), "{text}");
    assert!(!text.contains("(not delivered)"), "{text}");
    eprintln!("siirto demo took {:.2} s", started.elapsed().as_secs_f64());
}

/// With `SIIRTO_CORPUS` naming the corpus (which holds the EMREX ELMO schema), the demo also
/// delivers the KOSKI pupil's record to an EMREX destination as signed ELMO and says that the
/// delivered document's signature verifies.
#[test]
fn the_demo_delivers_signed_elmo_when_the_elmo_schema_is_there() {
    let Some(corpus) = siirto_testsupport::corpus() else {
        return;
    };
    let out = siirto()
        .env("SIIRTO_CORPUS", &corpus)
        .arg("demo")
        .output()
        .expect("run siirto");
    let text = stdout(&out);
    assert!(out.status.success(), "{}", said(&out));
    for expected in [
        "an EMREX destination, as a signed ELMO document",
        "convert   ok         koski → elmo, valid elmo",
        "the delivered ELMO's XML Signature: verifies with the gateway's document-signing certificate (ecdsa-sha256)",
    ] {
        assert!(text.contains(expected), "`{expected}` is not in:\n{text}");
    }
    assert_eq!(text.matches("status: \"delivered\"").count(), 4, "{text}");
    assert!(!text.contains(siirto_devkit::demo::DEMO_STUDENT), "{text}");
}

#[test]
fn every_command_has_help_that_names_its_options() {
    for (command, options) in COMMANDS {
        let mut args: Vec<&str> = command.split(' ').collect();
        args.push("--help");
        let out = run(&args);
        let text = stdout(&out);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{command} --help: {}",
            said(&out)
        );
        assert!(
            text.contains(&format!("Usage: siirto {command}")),
            "{command}: {text}"
        );
        for option in *options {
            assert!(
                text.contains(option),
                "{command} --help lacks {option}:\n{text}"
            );
        }
    }
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    let text = stdout(&out);
    let listed: Vec<&str> = text
        .split("Commands:\n")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    let expected: Vec<&str> = COMMANDS
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| !c.contains(' '))
        .collect();
    assert_eq!(listed, expected, "{text}");
    // No command at all: the help, on stderr, and exit 2 as for any unusable command line.
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", said(&out));
    assert!(
        said(&out).contains("Usage: siirto <COMMAND>"),
        "{}",
        said(&out)
    );
}

#[test]
fn refused_command_lines_exit_2_and_name_the_problem() {
    for (args, expected) in [
        (&["fly"][..], "unrecognized subcommand 'fly'"),
        (&["serve"][..], "--config <FILE>"),
        (
            &["serve", "--conf", "x"][..],
            "unexpected argument '--conf'",
        ),
        (
            &["validate", "--format", "xml", "--config", "c", "f"][..],
            "invalid value 'xml' for '--format <F>'",
        ),
        (
            &["pki", "init", "d", "--api-port", "x"][..],
            "invalid value 'x' for '--api-port <N>'",
        ),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", said(&out));
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(text.contains(expected), "{args:?}: {text}");
    }
}

/// `shell -n FILE` (syntax check) when that shell is installed.
fn syntax_checks(shell: &str, script: &Path) -> Option<Output> {
    Command::new(shell).arg("-n").arg(script).output().ok()
}

#[test]
fn completions_for_each_shell_and_the_man_pages() {
    let dir = tempfile::tempdir().expect("tempdir");
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", said(&out));
        let script = stdout(&out);
        for word in ["siirto", "serve", "verify-proof", "free-ports", "records"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
        let file = dir.path().join(format!("siirto.{shell}"));
        std::fs::write(&file, &script).expect("write");
        match syntax_checks(shell, &file) {
            Some(check) => assert!(check.status.success(), "{shell} -n: {}", said(&check)),
            None => {
                assert!(
                    !siirto_testsupport::tools_required(),
                    "{shell} is not installed and SIIRTO_REQUIRE_TOOLS=1 (install {shell})"
                );
                eprintln!(
                    "SKIPPED: {shell} is not installed; its completion script is not syntax-checked"
                );
            }
        }
    }
    // And bash completes with it: `siirto dev <TAB>`, `siirto pki init d --f<TAB>`.
    let bash = dir.path().join("siirto.bash");
    for (words, expected) in [
        ("siirto dev ''", "sign peers"),
        ("siirto pki init d --f", "--free-ports"),
        ("siirto validate --format ''", "siirto-v1 virta elmo"),
    ] {
        let script = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             _siirto siirto \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
             echo ${{COMPREPLY[@]}}",
            bash.display()
        );
        let out = Command::new("bash")
            .args(["-c", &script])
            .output()
            .expect("run bash");
        let offered = stdout(&out);
        assert!(offered.contains(expected), "{words}: {}", said(&out));
    }
    let out = run(&["man"]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    let page = stdout(&out);
    assert!(page.contains(".TH siirto 1"), "{page}");
    assert!(page.contains(&format!("siirto {}", env!("CARGO_PKG_VERSION"))));
    let pages = dir.path().join("man1");
    let out = run(&["man", "--out", pages.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    for (command, options) in COMMANDS {
        let file = pages.join(format!("siirto-{}.1", command.replace(' ', "-")));
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for option in options.iter().filter(|o| o.starts_with("--")) {
            // roff escapes the hyphens.
            let escaped = option.replace('-', "\\-");
            assert!(text.contains(&escaped), "{} lacks {option}", file.display());
        }
    }
    assert_eq!(
        std::fs::read_to_string(pages.join("siirto.1")).expect("siirto.1"),
        page
    );
}

/// A child process that is killed when the test ends early.
struct Running {
    name: &'static str,
    child: Child,
}

impl Running {
    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Sends SIGTERM and waits (with a deadline) for the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {}", self.name);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not stop on SIGTERM",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn assert_running(&mut self, log: &str) {
        if let Some(status) = self.child.try_wait().expect("wait") {
            panic!("{} exited early ({status}):\n{log}", self.name);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it gives a value or `limit` passes.
fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The e-service's curl call: `(HTTP status, body)`.
fn curl(dir: &Path, url: &str, body: Option<&str>) -> (u16, String) {
    let participants = dir.join("certs/participants");
    let mut c = Command::new("curl");
    c.args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .arg("--cacert")
        .arg(dir.join("certs/participants-ca.pem"))
        .arg("--cert")
        .arg(participants.join("eservice-client.pem"))
        .arg("--key")
        .arg(participants.join("eservice-client.key"));
    if let Some(body) = body {
        c.args([
            "-H",
            "content-type: application/json",
            "--data-binary",
            body,
        ]);
    }
    let out = c.arg(url).output().expect("run curl");
    assert!(out.status.success(), "curl {url}: {}", said(&out));
    let text = stdout(&out);
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

fn curl_available() -> bool {
    let runs = Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        runs || !siirto_testsupport::tools_required(),
        "curl is not available and SIIRTO_REQUIRE_TOOLS=1 (install curl)"
    );
    if !runs {
        eprintln!("SKIPPED: curl is not installed; the hand-driven transfer did not run");
    }
    runs
}

/// `siirto demo`: the guardian of a 12-year-old reads the consent text and agrees; the
/// receipt names the guardian's consent and the text; the pupil's page is saved as HTML.
#[test]
fn the_demo_shows_a_guardians_consent_the_receipt_and_the_page() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let keep = scratch.path().join("demo");
    let page = scratch.path().join("page.html");
    let out = siirto()
        .args(["demo", "--keep"])
        .arg(&keep)
        .arg("--page")
        .arg(&page)
        .output()
        .expect("run siirto demo");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    for expected in [
        "12 years old: too young to consent alone",
        "GET /v1/consent-text",
        "Lupa lähettää koulutietojasi",
        "Lähettäjä on Turun kaupunki ja vastaanottaja Espoon kaupunki.",
        "\"role\": \"guardian\"",
        "basis consent, guardian true, categories identity enrolment achievements",
        "verifies with the audit key",
        "audit verify: OK",
    ] {
        assert!(text.contains(expected), "no {expected:?} in:\n{text}");
    }
    // The hash the e-service signed is the hash the receipt names.
    let signed = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("consent_sha256="))
        .and_then(|l| l.split(' ').next())
        .expect("the signed hash");
    assert!(
        text.contains(&format!("consent text sha256 {signed} (version ")),
        "{text}"
    );
    let html = std::fs::read_to_string(&page).expect("the saved page");
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.contains("<html lang=\"fi\">"));
    assert!(
        html.contains("Huoltajasi antoi luvan puolestasi."),
        "{html}"
    );
    assert!(html.contains("Espoon kaupunki"));
    assert!(keep.join("siirto.db").is_file());
}

/// README "Drive one transfer by hand", step by step, each step its own process. The one
/// difference: `pki init --free-ports` instead of the default ports, which a test must not take.
#[test]
fn a_transfer_driven_by_hand_with_pki_init_serve_dev_peers_dev_sign_and_curl() {
    if !curl_available() {
        return;
    }
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("certs");
    let dir_text = dir.to_str().expect("utf-8 path");
    let config = dir.join("siirto.toml");
    let config_text = config.to_str().expect("utf-8 path");
    let records: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/records");

    // 1. siirto pki init certs
    let out = run(&["pki", "init", dir_text, "--free-ports"]);
    assert_eq!(out.status.code(), Some(0), "pki init: {}", said(&out));
    let loaded = siirto_gateway::config::Config::load(&config).unwrap_or_else(|e| panic!("{e}"));
    let api = format!("https://{}", loaded.gateway.listen);
    let admin = format!("http://{}", loaded.gateway.admin_listen);

    // 2. siirto serve --config certs/siirto.toml
    let serve_log = scratch.path().join("serve.log");
    let mut serve = Running {
        name: "siirto serve",
        child: siirto()
            .env("SIIRTO_LOG", "info")
            .args(["serve", "--config", config_text])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&serve_log).expect("log"))
            .spawn()
            .expect("run siirto serve"),
    };
    let log = || std::fs::read_to_string(&serve_log).unwrap_or_default();

    // 3. siirto dev peers --config certs/siirto.toml --records examples/records
    let mut peers = Running {
        name: "siirto dev peers",
        child: siirto()
            .args(["dev", "peers", "--config", config_text, "--records"])
            .arg(&records)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run siirto dev peers"),
    };
    let (lines_tx, lines) = mpsc::channel::<String>();
    let peers_out = peers.child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(peers_out).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut printed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !printed.iter().any(|l: &String| l.starts_with("ready")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => printed.push(line),
            Err(e) => panic!("dev peers never said ready ({e}): {printed:#?}"),
        }
    }
    let printed = printed.join("\n");
    for expected in [
        "source       turku",
        "records for: 150608A123J",
        "destination  espoo",
    ] {
        assert!(printed.contains(expected), "{printed}");
    }

    // The gateway is ready (its admin listener answers /readyz).
    wait_for("siirto serve to be ready", Duration::from_secs(60), || {
        serve.assert_running(&log());
        let ok = Command::new("curl")
            .args(["-sf", "--max-time", "2"])
            .arg(format!("{admin}/readyz"))
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then_some(())
    });
    // Its metrics name the build that --version names.
    let metrics = Command::new("curl")
        .args(["-sf", "--max-time", "5"])
        .arg(format!("{admin}/metrics"))
        .output()
        .expect("curl /metrics");
    let build = format!(
        "siirto_build_info{{version=\"{}\",revision=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        revision()
    );
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        metrics.lines().any(|l| l == build),
        "no `{build}` in:\n{metrics}"
    );

    // The consent text the e-service shows (the dev sign below signs over the same words).
    let consent_url = format!(
        "{api}/v1/consent-text?src=turku&dst=espoo&scope=identity+enrolment+achievements&purpose=school-change&lang=fi"
    );
    let (status, text) = curl(&dir, &consent_url, None);
    assert_eq!(status, 200, "{text}");
    let text: Value = serde_json::from_str(&text).expect("json");

    // 4. TOKEN=$(siirto dev sign --config certs/siirto.toml --sub 150608A123J --src turku --dst espoo)
    let out = run(&[
        "dev",
        "sign",
        "--config",
        config_text,
        "--sub",
        "150608A123J",
        "--src",
        "turku",
        "--dst",
        "espoo",
    ]);
    assert_eq!(out.status.code(), Some(0), "dev sign: {}", said(&out));
    let token = stdout(&out);
    let token = token.trim();
    assert_eq!(token.split('.').count(), 3, "{token}");
    // Signed, in another process, over the hash the serving gateway gave.
    let payload = token.split('.').nth(1).expect("payload");
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .expect("base64url"),
    )
    .expect("claims");
    assert_eq!(claims["consent_sha256"], text["sha256"], "{text}");
    assert_eq!(claims["consent_lang"], "fi");

    // 5. curl … --data-binary '{"authorization": "…"}' https://127.0.0.1:8443/v1/transfers
    let body = serde_json::json!({ "authorization": token }).to_string();
    let (status, answer) = curl(&dir, &format!("{api}/v1/transfers"), Some(&body));
    assert_eq!(status, 202, "{answer}\n{}", log());
    let answer: Value = serde_json::from_str(&answer).expect("json");
    let id = answer["id"].as_str().expect("an id").to_owned();

    // 6. curl … https://127.0.0.1:8443/v1/transfers/ID, until it has arrived.
    let transfer = wait_for("the transfer to end", Duration::from_secs(60), || {
        let (status, view) = curl(&dir, &format!("{api}/v1/transfers/{id}"), None);
        assert_eq!(status, 200, "{view}");
        let view: Value = serde_json::from_str(&view).expect("json");
        let ended = ["delivered", "failed", "cancelled"].contains(&view["status"].as_str()?);
        ended.then_some(view)
    });
    assert_eq!(transfer["status"], "delivered", "{transfer:#}\n{}", log());

    // Ctrl-C (SIGTERM) on the peers: they say what Espoo received, and stop.
    let status = peers.terminate();
    assert!(status.success(), "dev peers exited {status}");
    reader.join().expect("reader");
    let rest: Vec<String> = lines.try_iter().collect();
    let rest = rest.join("\n");
    assert!(
        rest.contains("espoo received") && rest.contains("and answered 200"),
        "{rest}"
    );
    assert!(rest.ends_with("stopped"), "{rest}");
    let status = serve.terminate();
    assert!(status.success(), "serve exited {status}:\n{}", log());

    // Restarted, the gateway gives the same consent text, to the byte, and the same hash.
    let mut serve = Running {
        name: "siirto serve (again)",
        child: siirto()
            .env("SIIRTO_LOG", "info")
            .args(["serve", "--config", config_text])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&serve_log).expect("log"))
            .spawn()
            .expect("run siirto serve"),
    };
    let again = wait_for(
        "siirto serve to answer again",
        Duration::from_secs(60),
        || {
            serve.assert_running(&log());
            let ready = Command::new("curl")
                .args(["-sf", "--max-time", "2"])
                .arg(format!("{admin}/readyz"))
                .output()
                .is_ok_and(|o| o.status.success());
            ready.then(|| curl(&dir, &consent_url, None))
        },
    );
    assert_eq!(again.0, 200, "{}", again.1);
    let again: Value = serde_json::from_str(&again.1).expect("json");
    assert_eq!(
        again, text,
        "the same text, version and hash after a restart"
    );
    let status = serve.terminate();
    assert!(status.success(), "serve exited {status}:\n{}", log());
}

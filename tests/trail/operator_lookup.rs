//! The operator's subject lookup in real headless Chromium, driven over the DevTools protocol
//! (a form is typed into and posted, which `--dump-dom` cannot do): the gateway's own form
//! page is loaded, the henkilötunnus and a reason are typed, the form is submitted, and the
//! result page the browser renders is read back and photographed. The gateway is the real
//! binary with its log at debug level; afterwards the identifier is looked for in every URL
//! the browser asked for, in that log and in the audit export (`siirto audit export`), and the
//! lookup's audit entry is checked: the operator, the reason, the person as the pseudonym.
//!
//! The browser reaches the gateway through the operator proxy of [`crate::operator`] (headless
//! Chromium cannot present a client certificate); what it renders is what the gateway served.

use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use siirto_devkit::testbed::{Testbed, TestbedOptions};
use tokio::io::AsyncBufReadExt;
use tokio_tungstenite::tungstenite::Message;

use crate::operator::operator_proxy;
use crate::privacy::{assert_clean_of, identity_code_forms, wait_until};
use crate::support::{
    OPERATOR, OTHER_STUDENT, STUDENT, chromium, deliver, fast_checkpoints, operator, siirto,
};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Headless Chromium with one page, driven over the DevTools protocol.
struct Browser {
    _child: tokio::process::Child,
    _profile: tempfile::TempDir,
    socket: Socket,
    session: String,
    next_id: u64,
    /// Events that arrived while waiting for an answer.
    events: Vec<Value>,
}

const DEADLINE: Duration = Duration::from_secs(60);

impl Browser {
    async fn launch(binary: &str) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = tokio::process::Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                "--window-size=1400,1100",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromium starts");
        // Chromium says where its DevTools endpoint listens on stderr.
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let url = tokio::time::timeout(DEADLINE, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return url.trim().to_owned();
                }
            }
            panic!("chromium ended without a DevTools endpoint");
        })
        .await
        .expect("the DevTools endpoint within 60 s");
        // Keep reading stderr so that Chromium never blocks on it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap();
        let mut browser = Browser {
            _child: child,
            _profile: profile,
            socket,
            session: String::new(),
            next_id: 0,
            events: Vec::new(),
        };
        let target = browser
            .call("Target.createTarget", json!({ "url": "about:blank" }))
            .await;
        let attached = browser
            .call(
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await;
        browser.session = attached["sessionId"].as_str().unwrap().to_owned();
        browser.call("Page.enable", json!({})).await;
        browser
    }

    /// Sends a command (to the page once attached) and waits for its answer.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
        loop {
            let m = self.receive().await;
            if m["id"] == id {
                assert!(m.get("error").is_none(), "{method}: {m}");
                return m["result"].clone();
            }
            self.events.push(m);
        }
    }

    async fn receive(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(DEADLINE, self.socket.next())
                .await
                .expect("chromium answers within 60 s")
                .expect("the DevTools connection stays open")
                .unwrap();
            if let Message::Text(text) = frame {
                return serde_json::from_str(&text).unwrap();
            }
        }
    }

    /// Waits for the page's next `load` event.
    async fn loaded(&mut self) {
        loop {
            if let Some(i) = self
                .events
                .iter()
                .position(|e| e["method"] == "Page.loadEventFired")
            {
                self.events.drain(..=i);
                return;
            }
            let m = self.receive().await;
            self.events.push(m);
        }
    }

    async fn open(&mut self, url: &str) {
        self.events.clear();
        self.call("Page.navigate", json!({ "url": url })).await;
        self.loaded().await;
    }

    async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true }),
            )
            .await;
        assert!(r.get("exceptionDetails").is_none(), "{expression}: {r}");
        r["result"]["value"].clone()
    }

    /// Types `text` into the field `selector` as a keyboard would.
    async fn type_into(&mut self, selector: &str, text: &str) {
        self.eval(&format!("document.querySelector({selector:?}).focus()"))
            .await;
        self.call("Input.insertText", json!({ "text": text })).await;
    }

    async fn dom(&mut self) -> String {
        self.eval("document.documentElement.outerHTML")
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn screenshot(&mut self, name: &str) {
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({ "format": "png", "captureBeyondViewport": true }),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name),
            png,
        )
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_looks_a_person_up_and_the_identifier_goes_nowhere() {
    let Some(binary) = chromium("chromium_looks_a_person_up_and_the_identifier_goes_nowhere")
    else {
        return;
    };
    // The real binary, its log at debug level into a file.
    let dir = tempfile::tempdir().unwrap();
    let bed = Testbed::start(TestbedOptions {
        dir: Some(dir.path().to_path_buf()),
        env: fast_checkpoints(),
        in_process_gateway: false,
        ..TestbedOptions::default()
    })
    .await
    .unwrap();
    let log_path = dir.path().join("gateway.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_siirto"))
        .args(["serve", "--config"])
        .arg(bed.config_path())
        .env("SIIRTO_LOG", "debug")
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let op = operator(&bed);
    wait_until("the gateway answers", || async {
        op.get("/v1/audit/public-key", &[]).await.is_ok()
    })
    .await;
    let (mine, _) = deliver(&bed, STUDENT, "identity achievements").await;
    let (someone_elses, _) = deliver(&bed, OTHER_STUDENT, "identity").await;

    let (base, proxy, seen) = operator_proxy(&bed).await;
    let mut browser = Browser::launch(&binary).await;
    browser
        .open(&format!("{base}/operator/subjects?lang=fi"))
        .await;
    let form = browser.dom().await;
    assert!(form.contains("<html lang=\"fi\">"), "{form}");
    assert!(
        form.contains("Henkilötunnus tai oppijanumero (OID)"),
        "{form}"
    );
    browser.screenshot("operator-subject-form-fi.png").await;

    // Typed and posted as an operator would.
    let reason = "Tietopyyntö TP-2026-117 (huoltajan soitto)";
    browser
        .type_into("#subject-lookup [name=subject]", STUDENT)
        .await;
    browser
        .type_into("#subject-lookup [name=reason]", reason)
        .await;
    browser.events.clear();
    browser
        .eval("document.querySelector('#subject-lookup button').click()")
        .await;
    browser.loaded().await;
    let page = browser.dom().await;
    let location = browser.eval("location.href").await;
    assert_eq!(location, format!("{base}/operator/subjects"));
    browser.screenshot("operator-subject-result-fi.png").await;

    // The result: the person's transfer (not the other person's), in its table; the audit
    // entries about them, the lookup itself among them with its reason.
    assert!(page.contains("<h2>Tulos</h2>"), "{page}");
    assert!(
        page.contains(&format!("<tr id=\"t-{mine}\">")) && !page.contains(&someone_elses),
        "{page}"
    );
    assert!(page.contains("Henkilöä koskevat siirrot (1)"), "{page}");
    for action in ["transfer.accepted", "operator.subject_lookup"] {
        assert!(
            page.contains(&format!("<td>{action}</td>")),
            "{action}: {page}"
        );
    }
    assert!(
        page.contains("<b>reason</b>=Tietopyyntö TP-2026-117 (huoltajan soitto)"),
        "{page}"
    );
    let pseudonym = page
        .split("<dd class=\"mono\" id=\"subject-pseudonym\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap()
        .to_owned();
    assert_eq!(pseudonym.len(), 64, "{pseudonym}");
    // The form comes back empty: the page holds the identifier nowhere.
    let forms = identity_code_forms(STUDENT);
    assert_clean_of("the result page", page.as_bytes(), &forms);

    // The same page in Swedish (the lookup again, with the language link's cookie).
    browser
        .open(&format!("{base}/operator/transfers?lang=sv"))
        .await;
    let transfers = browser.dom().await;
    assert!(transfers.contains("<html lang=\"sv\">") && transfers.contains("Per status"));
    browser.screenshot("operator-transfers-sv.png").await;
    browser.open(&format!("{base}/operator/subjects")).await;
    assert!(
        browser
            .dom()
            .await
            .contains("Personbeteckning eller studentnummer (OID)")
    );
    drop(browser);
    proxy.trigger();

    // No URL the browser asked for carries the identifier; the lookup was a POST.
    let urls = seen.lock().unwrap().clone();
    assert!(urls.iter().any(|u| u == "/operator/subjects"), "{urls:?}");
    assert_clean_of("the URLs", urls.join("\n").as_bytes(), &forms);

    // Stop the gateway; its log and the audit export hold no form of the identifier.
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("stops within 30 s")
        .unwrap();
    assert!(status.success(), "{status}");
    let gateway_log = std::fs::read(&log_path).unwrap();
    assert!(gateway_log.len() > 1000, "the log was captured");
    assert_clean_of("the gateway's log", &gateway_log, &forms);
    let config = bed.config_path().display().to_string();
    let export = siirto(&["audit", "export", "--config", &config]);
    assert!(export.status.success());
    assert_clean_of("the audit export", &export.stdout, &forms);
    let lookups: Vec<Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["action"] == "operator.subject_lookup")
        .collect();
    assert_eq!(lookups.len(), 1, "{lookups:?}");
    let lookup = &lookups[0];
    assert_eq!(lookup["actor"], OPERATOR);
    assert_eq!(lookup["outcome"], "ok");
    assert_eq!(lookup["subject"], pseudonym.as_str());
    assert_eq!(lookup["detail"]["reason"], reason);
    assert_eq!(lookup["detail"]["via"], "operator_page");
    // The pseudonym is the person's: the one their transfers carry.
    assert!(String::from_utf8_lossy(&export.stdout).lines().any(|l| {
        let e: Value = serde_json::from_str(l).unwrap();
        e["transfer_id"] == mine.as_str() && e["subject"] == pseudonym.as_str()
    }));
    bed.stop().await;
}

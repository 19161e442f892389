//! The student's own page (`GET /v1/students/transfers`, `Accept: text/html`): a 12-year-old
//! pupil whose guardian consented to a move from Turku to Espoo, whose record also went to
//! Helsinki by law, and one transfer that failed — rendered in real headless Chromium in
//! Finnish, Swedish and English (screenshots written under the test's target directory,
//! committed nowhere), its text checked for the organisations, the categories and the basis,
//! and audited by axe-core through the DevTools protocol (puppeteer-core driving the machine's
//! Chromium): no violation of any rule.
//!
//! The browser reaches the page through a plain-HTTP proxy that adds the e-service's client
//! certificate and a fresh transparency token to each request, as the e-service embedding the
//! page does (each token is good once). Without Chromium, Node, axe-core or puppeteer-core the
//! browser test says SKIPPED, and fails under `SIIRTO_REQUIRE_TOOLS=1`; `scripts/test` installs
//! the two npm packages into `~/.cache/siirto/node` (`SIIRTO_NODE_MODULES` names another).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use siirto_core::lang::Lang;
use siirto_devkit::demo::school_record;
use siirto_devkit::testbed::Testbed;

use crate::people_support::aged;
use crate::support::{chromium, proxy, skip_or_fail, start, tool};

/// Node and the `node_modules` holding axe-core and puppeteer-core, if here.
fn axe_tools(test: &str) -> Option<(String, PathBuf)> {
    let node = std::env::var("SIIRTO_NODE").unwrap_or_else(|_| "node".into());
    let runs = std::process::Command::new(&node)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !runs {
        skip_or_fail(test, "node is not installed (apt-get install nodejs npm)");
        return None;
    }
    let modules = match std::env::var_os("SIIRTO_NODE_MODULES") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
                .unwrap_or_else(|| PathBuf::from(".cache"));
            cache.join("siirto/node/node_modules")
        }
    };
    for package in ["axe-core/axe.min.js", "puppeteer-core/package.json"] {
        if !modules.join(package).is_file() {
            skip_or_fail(
                test,
                &format!(
                    "{} is missing (scripts/test installs axe-core and puppeteer-core with npm)",
                    modules.join(package).display()
                ),
            );
            return None;
        }
    }
    Some((node, modules))
}

/// The pupil's three transfers: Turku → Espoo on the guardian's consent, Turku → Helsinki by
/// law, and Oulu → Espoo, which fails (Oulu has no record of the pupil). Returns the pupil.
async fn three_transfers(bed: &Testbed) -> String {
    let pupil = aged(bed.now(), 12, 941);
    let guardian = aged(bed.now(), 41, 942);
    bed.sources["turku"].insert(&pupil, school_record(&pupil, false).into_bytes());
    let mut consented =
        bed.authorization(&pupil, "turku", "espoo", "identity enrolment achievements");
    consented.guardian = Some(guardian.clone());
    let mut statutory =
        bed.authorization(&pupil, "turku", "helsinki", "identity enrolment support");
    statutory.basis = Some("statutory".into());
    statutory.consent = None;
    let mut failing = bed.authorization(&pupil, "oulu", "espoo", "identity");
    failing.guardian = Some(guardian);
    let eservice = bed.client("eservice").expect("client");
    for (a, end) in [
        (consented, "delivered"),
        (statutory, "delivered"),
        (failing, "failed"),
    ] {
        let answer = eservice
            .submit(&bed.sign(&a.claims()).expect("sign"))
            .await
            .expect("answer");
        assert_eq!(answer.status.as_u16(), 202, "{}", answer.json());
        let id = answer.json()["id"].as_str().expect("id").to_owned();
        let t = bed
            .wait_for_status("eservice", &id, &[end], Duration::from_secs(20))
            .await
            .expect("ends");
        assert_eq!(t["status"], end, "{t:#}");
    }
    pupil
}

/// A proxy handing each request a fresh transparency token for `pupil` and `Accept: text/html`.
async fn page_proxy(
    bed: &Testbed,
    pupil: &str,
) -> (String, siirto_gateway::server::ShutdownTrigger) {
    let tokens: Vec<String> = (0..12)
        .map(|_| bed.transparency_token(pupil).expect("token"))
        .collect();
    let tokens = Arc::new(Mutex::new(tokens));
    proxy(bed.client("eservice").expect("client"), move || {
        let token = tokens.lock().expect("tokens").pop().unwrap_or_default();
        vec![
            ("authorization".into(), format!("Bearer {token}")),
            ("accept".into(), "text/html".into()),
        ]
    })
    .await
}

/// What the page must say in `lang`: the organisations, the categories of each transfer, the
/// basis of each, the statuses and the verified receipts.
fn expected_words(lang: Lang) -> Vec<String> {
    let t = &siirto_gateway::http::pages::texts(lang).student;
    let names: &[&str] = match lang {
        Lang::Fi => &[
            "Turun kaupunki",
            "Espoon kaupunki",
            "Helsingin kaupunki",
            "Oulun kaupunki",
        ],
        Lang::Sv => &[
            "Åbo stad",
            "Esbo stad",
            "Helsingfors stad",
            "Uleåborgs stad",
        ],
        Lang::En => &[
            "City of Turku",
            "City of Espoo",
            "City of Helsinki",
            "City of Oulu",
        ],
    };
    let law = match lang {
        Lang::Fi => "perusopetuslaki (628/1998) 40 §",
        Lang::Sv => "lagen om grundläggande utbildning (628/1998) 40 §",
        Lang::En => "Basic Education Act (628/1998), section 40",
    };
    let mut words: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    words.extend(
        [
            &t.title,
            &t.categories.identity,
            &t.categories.enrolment,
            &t.categories.achievements,
            &t.categories.support,
            &t.basis_guardian,
            &t.status.delivered,
            &t.status.failed,
            &t.receipt_verified,
            &t.receipt_none,
        ]
        .map(|s| s.clone()),
    );
    words.push(siirto_core::lang::fill(
        &t.basis_statutory,
        &[("law", &law)],
    ));
    words
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_students_page_in_chromium_in_three_languages_passes_axe() {
    let test = "the_students_page_in_chromium_in_three_languages_passes_axe";
    let Some(binary) = chromium(test) else {
        return;
    };
    // puppeteer-core launches a path, not a name to look up.
    let binary = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(&binary))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(&binary));
    let Some((node, modules)) = axe_tools(test) else {
        return;
    };
    let bed = start(None, None).await;
    let pupil = three_transfers(&bed).await;
    let (base, stop) = page_proxy(&bed, &pupil).await;
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let mut summary = Vec::new();
    let mut version = String::new();
    for lang in Lang::ALL {
        let shot = shots.join(format!("student-page-{}.png", lang.code()));
        let _ = std::fs::remove_file(&shot);
        let run = tokio::process::Command::new(&node)
            .arg(tool("axe_page.js"))
            .arg("--modules")
            .arg(&modules)
            .arg("--chromium")
            .arg(&binary)
            .arg("--url")
            .arg(format!("{base}/v1/students/transfers?lang={}", lang.code()))
            .arg("--screenshot")
            .arg(&shot)
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(120), run)
            .await
            .expect("axe_page.js finished within 120 s")
            .expect("node runs");
        assert!(
            out.status.success(),
            "{lang}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let seen: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(seen["status"], 200, "{seen:#}");
        assert_eq!(seen["lang"], lang.code());
        assert_eq!(seen["scripts"], 0, "the page runs no script of its own");
        let text = seen["text"].as_str().expect("text");
        for word in expected_words(lang) {
            assert!(text.contains(&word), "{lang}: no {word:?} in\n{text}");
        }
        assert!(
            !text.contains(&pupil),
            "{lang}: the pupil's identity code is shown"
        );
        // Three transfers, each under its own heading.
        assert_eq!(
            seen["headers"].as_array().expect("headers").len(),
            4,
            "{}",
            seen["headers"]
        );
        version = seen["axe"]["version"].as_str().unwrap_or("?").to_owned();
        let violations = seen["axe"]["violations"].as_array().expect("violations");
        assert!(violations.is_empty(), "{lang}: axe-core: {violations:#?}");

        // The screenshot: as wide as the window, taller than a screen of three transfers,
        // not blank.
        let decoder = png::Decoder::new(std::io::BufReader::new(
            std::fs::File::open(&shot).expect("png"),
        ));
        let mut reader = decoder.read_info().expect("png header");
        let mut pixels = vec![0; reader.output_buffer_size().expect("size")];
        let frame = reader.next_frame(&mut pixels).expect("png frame");
        assert_eq!(frame.width, 1024, "{lang}");
        assert!(frame.height >= 900, "{lang}: {}", frame.height);
        let channels = frame.color_type.samples();
        let colours: std::collections::HashSet<&[u8]> =
            pixels[..frame.buffer_size()].chunks(channels).collect();
        assert!(colours.len() > 50, "{lang}: only {} colours", colours.len());
        summary.push(format!(
            "{lang}: {} violations, {} rules passed, {} to review by hand ({}), screenshot {}x{} {}",
            violations.len(),
            seen["axe"]["passes"],
            seen["axe"]["incomplete"].as_array().map_or(0, Vec::len),
            seen["axe"]["incomplete"],
            frame.width,
            frame.height,
            shot.display()
        ));
    }
    let report = format!(
        "axe-core {version} on the student page:\n  {}\n",
        summary.join("\n  ")
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr(), report.as_bytes());
    std::fs::write(shots.join("student-page-axe.txt"), &report).expect("report");
    stop.trigger();
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_html_in_the_language_asked_for_and_json_stays_the_default() {
    let bed = start(None, None).await;
    let pupil = three_transfers(&bed).await;
    let eservice = bed.client("eservice").expect("client");
    let get = |path: &'static str, accept: Option<&'static str>| {
        let token = bed.transparency_token(&pupil).expect("token");
        let eservice = &eservice;
        async move {
            let bearer = format!("Bearer {token}");
            let mut headers = vec![("authorization", bearer.as_str())];
            if let Some(a) = accept {
                headers.push(("accept", a));
            }
            eservice.get(path, &headers).await.expect("answer")
        }
    };

    for lang in Lang::ALL {
        let path: &'static str = match lang {
            Lang::Fi => "/v1/students/transfers?lang=fi",
            Lang::Sv => "/v1/students/transfers?lang=sv",
            Lang::En => "/v1/students/transfers?lang=en",
        };
        let a = get(
            path,
            Some("text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"),
        )
        .await;
        assert_eq!(a.status.as_u16(), 200);
        assert_eq!(a.headers["content-type"], "text/html; charset=utf-8");
        assert_eq!(a.headers["content-language"], lang.code());
        assert!(
            a.headers["content-security-policy"]
                .to_str()
                .expect("csp")
                .starts_with("default-src 'none'")
        );
        let html = String::from_utf8_lossy(&a.body);
        assert!(
            html.contains(&format!("<html lang=\"{}\">", lang.code())),
            "{html}"
        );
        assert!(
            !html.contains("<script") && !html.contains("src="),
            "{html}"
        );
        assert!(!html.contains(&pupil));
        assert_eq!(html.matches("<article").count(), 3);
    }
    // Finnish without ?lang=.
    let a = get("/v1/students/transfers", Some("text/html")).await;
    assert!(String::from_utf8_lossy(&a.body).contains("<html lang=\"fi\">"));

    // JSON by default and when JSON is preferred, with the same facts.
    for accept in [
        None,
        Some("application/json"),
        Some("application/json, text/html;q=0.5"),
    ] {
        let a = get("/v1/students/transfers", accept).await;
        assert_eq!(a.status.as_u16(), 200);
        let list = a.json();
        let transfers = list["transfers"].as_array().expect("transfers");
        assert_eq!(transfers.len(), 3, "{accept:?}");
        let statutory = transfers
            .iter()
            .find(|t| t["to"] == "helsinki")
            .expect("statutory");
        assert_eq!(statutory["basis"], "statutory");
        assert_eq!(
            statutory["statutory_law"]["en"],
            "Basic Education Act (628/1998), section 40"
        );
        assert_eq!(statutory["guardian"], false);
        assert_eq!(statutory["receipt_verified"], true);
        assert_eq!(statutory["to_name"]["sv"], "Helsingfors stad");
        let consented = transfers
            .iter()
            .find(|t| t["to"] == "espoo" && t["from"] == "turku")
            .expect("consented");
        assert_eq!(consented["basis"], "consent");
        assert_eq!(consented["guardian"], true);
        assert_eq!(consented["consent"]["lang"], "fi");
        assert_eq!(consented["receipt_verified"], true);
        let failed = transfers
            .iter()
            .find(|t| t["from"] == "oulu")
            .expect("failed");
        assert_eq!(failed["receipt_verified"], Value::Null);
        assert_eq!(failed["reason"], "source_not_found");
    }

    // A wrong ?lang= is refused before the token is used: the same token then reads the page.
    let token = bed.transparency_token(&pupil).expect("token");
    let bearer = format!("Bearer {token}");
    let a = eservice
        .get(
            "/v1/students/transfers?lang=de",
            &[("authorization", &bearer), ("accept", "text/html")],
        )
        .await
        .expect("answer");
    assert_eq!(
        (a.status.as_u16(), a.error_code().as_deref()),
        (400, Some("invalid_query"))
    );
    let a = eservice
        .get(
            "/v1/students/transfers?lang=sv",
            &[("authorization", &bearer), ("accept", "text/html")],
        )
        .await
        .expect("answer");
    assert_eq!(a.status.as_u16(), 200);
    bed.stop().await;
}

//! The operator web page: in headless Chromium (the DOM and a screenshot of a real transfer's
//! timeline), and from a Rust client for what a browser test cannot show (only operators,
//! escaping, no scripts, the language of `Accept-Language`).
//!
//! How Chromium presents the operator's certificate: it does not — headless Chromium has no
//! way to pick a client certificate without a system-wide policy file and an NSS database. The
//! test runs a tiny TLS-terminating proxy (plain HTTP on 127.0.0.1:0) that forwards each GET to
//! the gateway over mutual TLS with the operator's certificate, as a reverse proxy in front of
//! an operator's browser would. What Chromium renders is exactly what the gateway served; the
//! gateway's certificate check itself is tested below with real client certificates.

use std::time::Duration;

use siirto_devkit::testbed::Testbed;
use siirto_gateway::server::ShutdownTrigger;

use crate::support::{OPERATOR, STUDENT, chromium, deliver, operator, proxy, start};

/// Forwards GETs to the gateway as the operator; returns its `http://127.0.0.1:PORT`.
async fn operator_proxy(bed: &Testbed) -> (String, ShutdownTrigger) {
    proxy(operator(bed), Vec::new).await
}

/// Runs headless Chromium with a fresh profile; `args` after the common flags.
async fn chrome(binary: &str, args: &[String]) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new(binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("chromium finished within 90 s")
        .expect("chromium runs")
}

async fn dump_dom(binary: &str, url: &str) -> String {
    let out = chrome(binary, &["--dump-dom".into(), url.into()]).await;
    assert!(
        out.status.success(),
        "chromium --dump-dom failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_renders_a_real_transfer_timeline() {
    let Some(binary) = chromium("chromium_renders_a_real_transfer_timeline") else {
        return;
    };
    let bed = start(None, None).await;
    let (id, transfer) = deliver(&bed, STUDENT, "identity achievements").await;
    // A failed transfer too, for the status search.
    let token = bed
        .sign(
            &bed.authorization(STUDENT, "helsinki", "espoo", "identity")
                .claims(),
        )
        .unwrap();
    let failed = bed
        .client("eservice")
        .unwrap()
        .submit(&token)
        .await
        .unwrap()
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    bed.wait_for_status("eservice", &failed, &["failed"], Duration::from_secs(20))
        .await
        .unwrap();
    let (base, proxy) = operator_proxy(&bed).await;

    // The DOM of the timeline: the transfer, its status, every step, its audit entries.
    let dom = dump_dom(&binary, &format!("{base}/operator/transfers/{id}")).await;
    assert!(
        dom.contains(&format!("<title>Siirto operator — Transfer {id}</title>")),
        "{dom}"
    );
    assert!(
        dom.contains("<span class=\"status status-delivered\">delivered</span>"),
        "{dom}"
    );
    for step in transfer["steps"].as_array().unwrap() {
        let name = step["step"].as_str().unwrap();
        assert!(
            dom.contains(&format!("<td>{name}</td>")),
            "step {name} missing: {dom}"
        );
    }
    for action in [
        "transfer.accepted",
        "source.fetch",
        "destination.deliver",
        "transfer.delivered",
    ] {
        assert!(
            dom.contains(&format!("<td>{action}</td>")),
            "{action} missing: {dom}"
        );
    }
    assert!(
        dom.contains(transfer["content_sha256"].as_str().unwrap()),
        "{dom}"
    );
    assert!(!dom.contains(STUDENT), "the identity code is never shown");

    // A screenshot of it: the expected size, and not blank.
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("operator-timeline.png");
    let _ = std::fs::remove_file(&shot);
    let out = chrome(
        &binary,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,1600".into(),
            format!("{base}/operator/transfers/{id}"),
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((frame.width, frame.height), (1280, 1600));
    let channels = frame.color_type.samples();
    assert!(channels >= 3, "{:?}", frame.color_type);
    let pixel = |x: u32, y: u32| {
        let i = (y as usize * frame.width as usize + x as usize) * channels;
        (pixels[i], pixels[i + 1], pixels[i + 2])
    };
    let mut ink = 0u64;
    let mut colours = std::collections::HashSet::new();
    for y in 0..frame.height {
        for x in 0..frame.width {
            let (r, g, b) = pixel(x, y);
            if r < 200 || g < 200 || b < 200 {
                ink += 1;
            }
            colours.insert((r, g, b));
        }
    }
    let total = u64::from(frame.width) * u64::from(frame.height);
    assert!(
        ink * 100 / total >= 2,
        "too little drawn: {ink} of {total} pixels"
    );
    assert!(colours.len() > 50, "only {} colours: blank?", colours.len());
    // The header band (#0b3d6b) across the top, the delivered badge's green somewhere.
    assert_eq!(pixel(640, 5), (0x0b, 0x3d, 0x6b), "header band");
    assert!(
        colours.contains(&(0xc9, 0xf0, 0xd2)),
        "delivered badge colour"
    );

    // Search by status, and the verification result.
    let dom = dump_dom(
        &binary,
        &format!("{base}/operator/transfers?id=&status=failed"),
    )
    .await;
    assert!(dom.contains(&failed) && !dom.contains(&id), "{dom}");
    assert!(dom.contains("<code>source_not_found</code>"), "{dom}");
    let dom = dump_dom(
        &binary,
        &format!("{base}/operator/audit?transfer={id}&action=transfer.delivered"),
    )
    .await;
    assert!(dom.contains("<p>1 entries.</p>"), "{dom}");
    let dom = dump_dom(&binary, &format!("{base}/operator/verify")).await;
    assert!(dom.contains("The audit log verifies."), "{dom}");
    let checked = dom
        .split("<dd id=\"entries-checked\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap();
    assert!(checked >= 10, "{checked}");
    let dom = dump_dom(&binary, &format!("{base}/operator")).await;
    assert!(dom.contains("Followed and checked:") && dom.contains(&id) && dom.contains(&failed));

    proxy.trigger();
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_operators_see_the_page_and_everything_is_escaped() {
    let bed = start(None, None).await;
    let (id, _) = deliver(&bed, STUDENT, "identity").await;
    // Another participant: 403 as an HTML page with the code.
    let page = bed
        .client("eservice")
        .unwrap()
        .get(&format!("/operator/transfers/{id}"), &[])
        .await
        .unwrap();
    assert_eq!(page.status.as_u16(), 403);
    let html = String::from_utf8_lossy(&page.body);
    assert!(html.contains("<code>forbidden_role</code>"), "{html}");
    assert!(!html.contains(&id));
    // No certificate: the TLS handshake fails, nothing is served.
    let anonymous = bed.client_with(None).unwrap();
    assert!(anonymous.get("/operator", &[]).await.is_err());
    // An unknown certificate: 403 (and audited as access.denied by the API).
    let unknown = bed.client_with(Some(&bed.pki.unknown_client)).unwrap();
    let a = unknown.get("/operator", &[]).await.unwrap();
    assert_eq!(a.status.as_u16(), 403);

    let op = operator(&bed);
    let page = op
        .get(
            "/operator/transfers?id=%3Cscript%3Ealert(1)%3C%2Fscript%3E%22%27",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(page.status.as_u16(), 200);
    let html = String::from_utf8_lossy(&page.body).into_owned();
    assert!(
        html.contains("value=\"&#60;script&#62;alert(1)&#60;/script&#62;&#34;&#39;\""),
        "{html}"
    );
    assert!(!html.contains("<script"), "{html}");
    let csp = page
        .headers
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert_eq!(
        page.headers.get("x-content-type-options").unwrap(),
        "nosniff"
    );
    let page = op
        .get("/operator/audit?actor=%3Cb%3Ex&since=", &[])
        .await
        .unwrap();
    let html = String::from_utf8_lossy(&page.body).into_owned();
    assert!(
        html.contains("value=\"&#60;b&#62;x\"") && !html.contains("<b>x"),
        "{html}"
    );
    // Bad filters are refused with the API's codes, as a page.
    let page = op
        .get("/operator/audit?since=yesterday", &[])
        .await
        .unwrap();
    assert_eq!(page.status.as_u16(), 400);
    assert!(String::from_utf8_lossy(&page.body).contains("<code>invalid_query</code>"));
    let page = op
        .get("/operator/transfers?status=lost", &[])
        .await
        .unwrap();
    assert_eq!(page.status.as_u16(), 400);
    let page = op.get("/operator/transfers/no-such-id", &[]).await.unwrap();
    assert_eq!(page.status.as_u16(), 404);
    assert!(String::from_utf8_lossy(&page.body).contains("<code>not_found</code>"));
    let page = op.get("/operator/nothing-here", &[]).await.unwrap();
    assert_eq!(page.status.as_u16(), 404);

    // Every view was audited.
    let gw = bed.gateway.clone().unwrap();
    let reads = gw
        .store
        .audit_query(&siirto_gateway::store::AuditFilter {
            action: Some("audit.read".into()),
            actor: Some(OPERATOR.into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let views: Vec<&str> = reads
        .entries
        .iter()
        .map(|e| e.event.detail["view"].as_str())
        .collect();
    assert_eq!(views, vec!["transfers", "audit"], "{views:?}");
    // In the language the browser asks for.
    let page = op
        .get(
            "/operator/transfers",
            &[("accept-language", "sv-FI, fi;q=0.8, en;q=0.5")],
        )
        .await
        .unwrap();
    let html = String::from_utf8_lossy(&page.body).into_owned();
    assert!(
        html.starts_with("<!DOCTYPE html>\n<html lang=\"sv\">"),
        "{html}"
    );
    assert!(html.contains(">Sök överföringar</button>"), "{html}");
    assert_eq!(page.headers.get("content-language").unwrap(), "sv");
    bed.stop().await;
}

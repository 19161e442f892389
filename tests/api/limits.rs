//! Request size limits as a client meets them: an over-long request head is `431
//! headers_too_large`, an over-long body `413 request_too_large`, each with the JSON error body
//! of every other refusal, audited under the caller's name, nothing moved; curl sending a
//! 1 MB body (with and without `Expect: 100-continue`, chunked or not) reads the 413 rather than
//! a reset connection, and curl sending a long header reads the 431.

use bytes::Bytes;
use http::Method;
use serde_json::json;
use siirto_devkit::testbed::Testbed;

use crate::helpers::*;

/// One megabyte, as the attack suites count it.
const MB: usize = 1_000_000;
/// Over-long bodies sent: 1 MB, and 4 MB (just under the 4 MiB the gateway drains), which on
/// loopback is more than the socket buffers hold, so that a gateway that stopped reading would
/// break the connection under a client still sending.
const BODY_SIZES: [usize; 2] = [MB, 4 * MB];
const SCOPE: &str = "identity achievements";

/// A testbed whose Turku source holds the student's record, so that a request wrongly let
/// through *would* move it.
async fn ready() -> Testbed {
    let bed = start().await;
    bed.sources["turku"].insert(STUDENT, school_record(STUDENT, false).into_bytes());
    bed
}

/// Sends a request as the e-service and requires `431 headers_too_large`, audited as
/// `request.refused` naming `route`, nothing moved; returns the entry's message.
async fn assert_head_refused(
    bed: &Testbed,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Bytes>,
    route: &str,
) -> String {
    let eservice = bed.client("eservice").expect("client");
    let answer = async {
        eservice
            .send(method, path, headers, body)
            .await
            .expect("the gateway answers")
    };
    let entry = assert_refusal(
        bed,
        "eservice",
        "request.refused",
        431,
        "headers_too_large",
        answer,
    )
    .await;
    assert_eq!(entry.event.detail["route"], route);
    entry.event.detail["message"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_over_long_request_head_is_answered_431_with_a_json_body() {
    let bed = ready().await;
    let token = token(&bed, STUDENT, "turku", "espoo", SCOPE);
    let submission = Bytes::from(json!({ "authorization": token }).to_string());
    for size in [20 * 1024, MB] {
        let bearer = format!("Bearer {}", "a".repeat(size));
        let message = assert_head_refused(
            &bed,
            Method::GET,
            "/v1/students/transfers",
            &[("authorization", &bearer)],
            None,
            "student_transfers",
        )
        .await;
        assert!(message.contains("at most 16384"), "{message}");
        // A good submission under an over-long header is refused before its body is read.
        assert_head_refused(
            &bed,
            Method::POST,
            "/v1/transfers",
            &[
                ("content-type", "application/json"),
                ("authorization", &bearer),
            ],
            Some(submission.clone()),
            "submit_transfer",
        )
        .await;
    }

    // Too many header fields, each of them short.
    let names: Vec<String> = (0..150).map(|i| format!("x-field-{i}")).collect();
    let mut headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    headers.push(("content-type", "application/json"));
    let message = assert_head_refused(
        &bed,
        Method::POST,
        "/v1/transfers",
        &headers,
        Some(submission.clone()),
        "submit_transfer",
    )
    .await;
    assert!(message.contains("header fields; at most 100"), "{message}");

    // Nothing was used up: the same authorization goes through with ordinary headers.
    let id = submit_accepted(&bed, &token).await;
    assert_eq!(finished(&bed, &id).await["status"], "delivered");
    bed.stop().await;
}

/// A 1 MB and a 4 MB authorization: the whole body is sent before the client reads (as
/// hyper's client does), and the client reads the 413 with its JSON body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_megabyte_submission_is_answered_413_and_audited() {
    let bed = ready().await;
    for size in BODY_SIZES {
        let huge = "a".repeat(size);
        let answer = submit(&bed, "eservice", &huge);
        let entry = assert_refusal(
            &bed,
            "eservice",
            "authorization.rejected",
            413,
            "request_too_large",
            answer,
        )
        .await;
        assert!(
            entry.event.detail["message"].contains("65536 bytes"),
            "{:?}",
            entry.event.detail
        );
    }
    // The connection was drained, not broken: the next request on the pool is answered.
    let token = token(&bed, STUDENT, "turku", "espoo", SCOPE);
    let id = submit_accepted(&bed, &token).await;
    assert_eq!(finished(&bed, &id).await["status"], "delivered");
    bed.stop().await;
}

/// curl, an outside client: a 1 MB and a 4 MB body read from a file, each sent every way curl
/// sends a body;
/// a 100 kB header read from a file. Each time curl exits 0 having read the status and the JSON
/// error body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_reads_the_413_of_a_one_megabyte_body_and_the_431_of_a_long_header() {
    let Some(_curl) = tool("curl", &["--version"], "curl") else {
        return;
    };
    let bed = ready().await;
    let ways: [(&str, &[&str]); 4] = [
        (
            "content-length, Expect: 100-continue",
            &["-H", "Expect: 100-continue"],
        ),
        ("content-length, no Expect", &["-H", "Expect:"]),
        (
            "chunked, Expect: 100-continue",
            &[
                "-H",
                "Transfer-Encoding: chunked",
                "-H",
                "Expect: 100-continue",
            ],
        ),
        (
            "chunked, no Expect",
            &["-H", "Transfer-Encoding: chunked", "-H", "Expect:"],
        ),
    ];
    for (size, (way, extra)) in BODY_SIZES
        .into_iter()
        .flat_map(|size| ways.map(|way| (size, way)))
    {
        let body_file = bed.dir.join(format!("{size}.json"));
        std::fs::write(
            &body_file,
            json!({ "authorization": "a".repeat(size) }).to_string(),
        )
        .expect("write");
        let data = format!("@{}", body_file.display());
        let way = format!("{size} bytes, {way}");
        let (ok, status, body) = curl(
            &bed,
            Some("eservice"),
            "POST",
            "/v1/transfers",
            Some(&data),
            extra,
        )
        .await;
        assert!(
            ok,
            "{way}: curl failed instead of reading an answer: {body}"
        );
        assert_eq!(status, 413, "{way}: {body}");
        assert_eq!(error_code(&body), "request_too_large", "{way}: {body}");
    }
    let refused = audit(&bed)
        .await
        .iter()
        .filter(|e| {
            e.event.action == "authorization.rejected"
                && e.event.outcome == "request_too_large"
                && e.event.actor == "eservice"
        })
        .count();
    assert_eq!(refused, BODY_SIZES.len() * ways.len());

    // 100 kB: curl 7.88 sends at most 128 KiB of a request head over TLS (then waits for
    // ever); hyper's own client sends the 1 MB head in the test above.
    let header_file = bed.dir.join("long-header.txt");
    std::fs::write(
        &header_file,
        format!("Authorization: Bearer {}\n", "a".repeat(100_000)),
    )
    .expect("write");
    let header = format!("@{}", header_file.display());
    let (ok, status, body) = curl(
        &bed,
        Some("eservice"),
        "GET",
        "/v1/students/transfers",
        None,
        &["-H", &header],
    )
    .await;
    assert!(ok, "curl failed instead of reading an answer: {body}");
    assert_eq!(status, 431, "{body}");
    assert_eq!(error_code(&body), "headers_too_large", "{body}");
    assert_nothing_moved(&bed).await;

    // The plain-HTTP admin listener keeps the same limit, answered in its own plain text.
    let out = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code}",
            "-H",
            &header,
        ])
        .arg(format!("{}/healthz", bed.admin_url()))
        .output()
        .await
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.ends_with("\n431") && text.contains("at most 16384"),
        "{text}"
    );
    bed.stop().await;
}

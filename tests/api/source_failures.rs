//! What the source answers decides how a transfer ends. An accepted transfer whose source has
//! no record, or serves broken or hostile XML, ends `failed` with a stable reason; the step and
//! the audit entry say why (by position and limit, never by content); nothing is delivered.

use siirto_devkit::peers::Behaviour;
use siirto_devkit::testbed::Testbed;

use crate::helpers::*;

const SCOPE: &str = "identity enrolment achievements";

/// Submits a transfer Turku → Espoo and waits for it to fail with `reason`; requires the source
/// to have been asked once and nothing to have been delivered. Returns the transfer's view.
async fn transfer_fails(bed: &Testbed, reason: &str) -> serde_json::Value {
    let id = submit_accepted(bed, &token(bed, STUDENT, "turku", "espoo", SCOPE)).await;
    let transfer = assert_failed(bed, &id, reason).await;
    assert_eq!(bed.sources["turku"].requests(), vec![id.clone()]);
    assert_nothing_delivered(bed);
    assert!(transfer.get("content_sha256").is_none(), "{transfer:#}");
    assert!(transfer.get("receipt").is_none(), "{transfer:#}");
    let story = audit_of(bed, &id).await;
    assert_eq!(
        story.last(),
        Some(&("transfer.failed".to_owned(), reason.to_owned())),
        "{story:?}"
    );
    assert!(
        !story.iter().any(|(a, _)| a == "destination.deliver"),
        "{story:?}"
    );
    transfer
}

/// The validation step and its audit entry, for a document refused on the way in.
async fn assert_refused_on_validation(bed: &Testbed, transfer: &serde_json::Value, expect: &str) {
    let id = transfer["id"].as_str().expect("id");
    let fetch = step(transfer, "fetch");
    assert_eq!(
        fetch["outcome"], "ok",
        "the fetch itself worked: {transfer:#}"
    );
    let validate = step(transfer, "validate");
    assert_eq!(validate["outcome"], "invalid_source_document");
    let detail = validate["detail"].as_str().expect("detail");
    assert!(
        detail.contains(expect),
        "step detail should say `{expect}`: {detail}"
    );
    let entries = audit(bed).await;
    let refused = entries
        .iter()
        .find(|e| {
            e.event.transfer_id.as_deref() == Some(id)
                && e.event.action == "document.validate"
                && e.event.outcome == "invalid_source_document"
        })
        .expect("the refusal is audited");
    let error = refused.event.detail.get("error").expect("audited error");
    assert!(error.contains(expect), "audited error: {error}");
    assert!(
        entries
            .iter()
            .any(|e| e.event.transfer_id.as_deref() == Some(id)
                && e.event.action == "source.fetch"
                && e.event.outcome == "ok"
                && e.event.document_sha256.is_some()),
        "the fetched document's hash is audited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_student_unknown_to_the_source_fails_as_source_not_found() {
    let bed = start().await;
    // Turku's school system knows someone else only.
    bed.sources["turku"].insert(
        OTHER_STUDENT,
        school_record(OTHER_STUDENT, false).into_bytes(),
    );
    let transfer = transfer_fails(&bed, "source_not_found").await;
    assert_eq!(step(&transfer, "fetch")["outcome"], "source_not_found");
    let id = transfer["id"].as_str().expect("id");
    let story = audit_of(&bed, id).await;
    assert!(
        story.contains(&("source.fetch".to_owned(), "source_not_found".to_owned())),
        "{story:?}"
    );
    // A 404 is an answer, not an outage: it is not retried.
    assert_eq!(bed.sources["turku"].requests().len(), 1);
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_sending_malformed_xml_fails_the_transfer() {
    let bed = start().await;
    let broken = school_record(STUDENT, false).replace("</achievements>", "</achievement>");
    bed.sources["turku"].set_behaviour(Behaviour::Body(broken.into_bytes()));
    let transfer = transfer_fails(&bed, "invalid_source_document").await;
    assert_refused_on_validation(&bed, &transfer, "malformed XML").await;
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_sending_xml_that_breaks_the_schema_fails_the_transfer() {
    let bed = start().await;
    // Well-formed, but a grade of 11 does not exist on the 4-10 scale.
    let invalid = school_record(STUDENT, false).replace(
        "<asteikko-4-10>9</asteikko-4-10>",
        "<asteikko-4-10>11</asteikko-4-10>",
    );
    bed.sources["turku"].insert(STUDENT, invalid.into_bytes());
    let transfer = transfer_fails(&bed, "invalid_source_document").await;
    assert_refused_on_validation(&bed, &transfer, "schema error").await;
    // The position is given, the offending value is not (it could be personal data).
    let detail = step(&transfer, "validate")["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(detail.contains("line "), "{detail}");
    assert!(!detail.contains("11"), "{detail}");
    bed.stop().await;
}

/// Billion laughs: a DTD declaring nested entities. The gateway refuses any DTD before
/// expanding anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_sending_a_dtd_with_entities_fails_the_transfer() {
    let bed = start().await;
    let mut doc = String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE studentRecord [\n");
    doc.push_str("  <!ENTITY lol \"lol\">\n");
    for i in 1..=9 {
        let previous = if i == 1 {
            "lol".to_owned()
        } else {
            format!("lol{}", i - 1)
        };
        let refs = format!("&{previous};").repeat(10);
        doc.push_str(&format!("  <!ENTITY lol{i} \"{refs}\">\n"));
    }
    doc.push_str("]>\n<studentRecord xmlns=\"urn:siirto:record:v1\">&lol9;</studentRecord>\n");
    bed.sources["turku"].set_behaviour(Behaviour::Body(doc.into_bytes()));
    let transfer = transfer_fails(&bed, "invalid_source_document").await;
    assert_refused_on_validation(
        &bed,
        &transfer,
        "document type declarations (DTD) are not accepted",
    )
    .await;
    bed.stop().await;
}

/// 100,000 nested elements: refused at the depth limit, long before the stack is in danger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_sending_100000_nested_elements_fails_the_transfer() {
    let bed = start().await;
    let depth = 100_000;
    let mut doc = String::with_capacity(depth * 7 + 64);
    doc.push_str("<studentRecord xmlns=\"urn:siirto:record:v1\">");
    doc.push_str(&"<a>".repeat(depth));
    doc.push_str(&"</a>".repeat(depth));
    doc.push_str("</studentRecord>");
    bed.sources["turku"].set_behaviour(Behaviour::Body(doc.into_bytes()));
    let transfer = transfer_fails(&bed, "invalid_source_document").await;
    assert_refused_on_validation(&bed, &transfer, "nest deeper than the limit of 128").await;
    bed.stop().await;
}

/// ISO-8859-1, which XML 1.0 lets a processor refuse: the transfer fails, and the step and
/// the audit name the code `unsupported_encoding` and the encoding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_sending_latin1_fails_the_transfer_as_unsupported_encoding() {
    let bed = start().await;
    let record = school_record(STUDENT, false);
    let latin1: Vec<u8> = record
        .replacen("encoding=\"UTF-8\"", "encoding=\"ISO-8859-1\"", 1)
        .chars()
        .map(|c| u8::try_from(u32::from(c)).expect("Latin-1 text"))
        .collect();
    bed.sources["turku"].set_behaviour(Behaviour::Body(latin1));
    let transfer = transfer_fails(&bed, "invalid_source_document").await;
    assert_refused_on_validation(&bed, &transfer, "unsupported_encoding: ").await;
    assert_refused_on_validation(&bed, &transfer, "(ISO-8859-1)").await;
    bed.stop().await;
}

/// UTF-16 with a byte order mark, which every XML processor must read, is delivered as the
/// UTF-8 record is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_sending_utf16_is_delivered() {
    let bed = start().await;
    let record =
        school_record(STUDENT, false).replacen("encoding=\"UTF-8\"", "encoding=\"UTF-16\"", 1);
    let mut utf16 = vec![0xFF, 0xFE];
    for unit in record.encode_utf16() {
        utf16.extend_from_slice(&unit.to_le_bytes());
    }
    bed.sources["turku"].insert(STUDENT, utf16);
    let id = submit_accepted(&bed, &token(&bed, STUDENT, "turku", "espoo", SCOPE)).await;
    let transfer = finished(&bed, &id).await;
    assert_eq!(transfer["status"], "delivered", "{transfer:#}");
    let requests = bed.destinations["espoo"].requests();
    assert_eq!(requests.len(), 1);
    assert_valid(
        siirto_core::formats::Format::SiirtoV1,
        &requests[0].body,
        "the record Espoo received",
    );
    let received = String::from_utf8_lossy(&requests[0].body).into_owned();
    assert!(
        received.contains("<familyName>Meikäläinen</familyName>"),
        "{received}"
    );
    bed.stop().await;
}

//! The national registers as sources, each called in its own protocol through a real gateway:
//! KOSKI's luovutuspalvelu (`protocol = "koski"`, JSON over POST) and VIRTA's SOAP service
//! (`protocol = "virta-soap"`). The in-test peers check every request as the real service
//! would (method, path, headers, JSON body; the SOAP envelope against the WSDL's own types) and
//! record why they would refuse one; every test requires that none was refused. What each
//! answer means is the contract's table: found, not found, retried, refused for good; a
//! document about someone else, a broken, too deep or too large one, a SOAP answer with a DTD
//! or an invalid `Virta`, all end with their reason and nothing delivered. What is delivered is
//! valid for the destination (the project's engine and libxml2).

use serde_json::Value;
use siirto_core::formats::Format;
use siirto_devkit::registers::{
    KoskiPeer, RegisterBehaviour, RegisterRequest, VirtaSoapPeer, koski_pupil,
};
use siirto_devkit::testbed::{Testbed, TestbedOptions};

use crate::helpers::*;
use crate::routes::virta_sample;

/// The made-up pupil's learner number.
const LEARNER: &str = "1.2.246.562.24.10000000008";

/// A testbed with a KOSKI source; `None` (after a loud skip) without the corpus.
async fn koski_bed(env: &[(&str, &str)]) -> Option<Testbed> {
    let corpus = siirto_testsupport::corpus()?;
    let bed = start_with(TestbedOptions {
        schemas: schemas_with_registers(&corpus),
        koski: true,
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .chain([(
                "SIIRTO__DELIVERY__INITIAL_BACKOFF".to_owned(),
                "20ms".to_owned(),
            )])
            .collect(),
        ..TestbedOptions::default()
    })
    .await;
    Some(bed)
}

/// A testbed with a VIRTA SOAP source; `None` (after a loud skip) without the corpus.
async fn virta_bed() -> Option<Testbed> {
    let corpus = siirto_testsupport::corpus()?;
    let bed = start_with(TestbedOptions {
        schemas: schemas_with_registers(&corpus),
        virta_wsdl: Some(corpus.join("virta/wsdl/opiskelijatiedot.wsdl")),
        env: vec![(
            "SIIRTO__DELIVERY__INITIAL_BACKOFF".to_owned(),
            "20ms".to_owned(),
        )],
        ..TestbedOptions::default()
    })
    .await;
    Some(bed)
}

fn koski(bed: &Testbed) -> &KoskiPeer {
    &bed.koski["koski"]
}

fn virta(bed: &Testbed) -> &VirtaSoapPeer {
    &bed.virta_soap["virta-soap"]
}

/// Every request the peer received was of the documented shape, and the henkilötunnus was
/// only ever in a body: never in a path, a query or a header.
fn assert_requests_well_formed(requests: &[RegisterRequest], count: usize) {
    assert_eq!(requests.len(), count, "{requests:#?}");
    for r in requests {
        assert_eq!(
            r.refused, None,
            "the peer refused the request's shape: {r:#?}"
        );
        assert!(!r.target.contains(STUDENT), "{}", r.target);
        for (name, value) in &r.headers {
            assert!(!value.contains(STUDENT), "header {name}");
        }
        assert!(String::from_utf8_lossy(&r.body).contains(STUDENT));
    }
}

/// Submits `src` → `dst` for [`STUDENT`] and waits for the end.
async fn run(bed: &Testbed, src: &str, dst: &str, scope: &str) -> Value {
    let id = submit_accepted(bed, &token(bed, STUDENT, src, dst, scope)).await;
    finished(bed, &id).await
}

/// `(code, grade)` of each completion of a KOSKI document's study rights, counted from the JSON.
fn koski_completions(oppija: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack: Vec<&Value> = oppija["opiskeluoikeudet"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|o| o["suoritukset"].as_array().into_iter().flatten())
        .collect();
    while let Some(s) = stack.pop() {
        let grade = s["arviointi"]
            .as_array()
            .and_then(|a| a.last())
            .and_then(|a| a["arvosana"]["koodiarvo"].as_str())
            .unwrap_or_default();
        out.push((
            s["koulutusmoduuli"]["tunniste"]["koodiarvo"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            grade.to_owned(),
        ));
        stack.extend(s["osasuoritukset"].as_array().into_iter().flatten());
    }
    out.sort();
    out
}

// --- KOSKI ----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_koski_pupil_arrives_at_a_school_system_and_at_an_emrex_contact_point() {
    let Some(bed) = koski_bed(&[]).await else {
        return;
    };
    let oppija = koski_pupil(STUDENT, LEARNER);
    koski(&bed).insert(oppija.clone(), None);

    let transfer = run(&bed, "koski", "espoo", SCOPE_NO_SUPPORT).await;
    assert_eq!(transfer["status"], "delivered", "{transfer:#}");
    let delivered = bed.destinations["espoo"].requests();
    assert_eq!(delivered.len(), 1);
    let body = &delivered[0].body;
    assert_valid(Format::SiirtoV1, body, "KOSKI → siirto-v1");
    // Every completion and grade of the JSON arrives.
    let got: Vec<(String, String)> = siirto_achievements(&parse(body))
        .into_iter()
        .map(|(code, grade)| {
            let value = grade
                .split_once('=')
                .map_or(String::new(), |(_, v)| v.to_owned());
            (code, value)
        })
        .collect();
    let mut got = got;
    got.sort();
    assert_eq!(got, koski_completions(&oppija));
    assert_eq!(got.len(), 9);
    // Support decisions were not authorized.
    assert!(
        !element_names(&parse(body))
            .iter()
            .any(|n| n == "supportDecision")
    );
    assert_eq!(transfer["conversion"]["from"], "koski");
    assert_eq!(transfer["conversion"]["to"], "siirto-v1");

    let requests = koski(&bed).requests();
    assert_requests_well_formed(&requests, 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/koski/api/luovutuspalvelu/hetu");
    assert!(
        request
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
    );
    let sent: Value = serde_json::from_slice(&request.body).expect("JSON");
    assert_eq!(sent["v"], 1);
    assert_eq!(sent["hetu"], STUDENT);
    assert_eq!(
        sent["opiskeluoikeudenTyypit"],
        serde_json::json!(siirto_devkit::pki::DEV_KOSKI_TYPES)
    );

    // The same pupil to an EMREX contact point, as ELMO.
    let transfer = run(&bed, "koski", "emrex", "identity achievements").await;
    assert_eq!(transfer["status"], "delivered", "{transfer:#}");
    let elmo = &bed.destinations["emrex"].requests()[0].body;
    assert_valid(Format::Elmo, elmo, "KOSKI → ELMO");
    let text = String::from_utf8_lossy(elmo);
    for code in ["MA", "AI", "KU"] {
        assert!(
            text.contains(&format!(">{code}<")),
            "{code} in the ELMO document"
        );
    }
    assert_requests_well_formed(&koski(&bed).requests(), 2);
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_number_asks_koskis_oid_endpoint() {
    let Some(bed) = koski_bed(&[]).await else {
        return;
    };
    koski(&bed).insert(koski_pupil(STUDENT, LEARNER), None);
    // A learner number names no birth date: the e-service says it (the pupil is of age to
    // consent, issue 14).
    let mut authorization = bed.authorization(LEARNER, "koski", "espoo", SCOPE_NO_SUPPORT);
    authorization.birthdate = Some("2008-06-15".into());
    let id = submit_accepted(&bed, &bed.sign(&authorization.claims()).expect("sign")).await;
    let transfer = finished(&bed, &id).await;
    assert_eq!(transfer["status"], "delivered", "{transfer:#}");
    let requests = koski(&bed).requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].refused, None);
    assert_eq!(requests[0].target, "/koski/api/luovutuspalvelu/oid");
    let sent: Value = serde_json::from_slice(&requests[0].body).expect("JSON");
    assert_eq!(sent["oid"], LEARNER);
    assert!(sent.get("hetu").is_none());
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn koskis_not_found_is_source_not_found() {
    let Some(bed) = koski_bed(&[]).await else {
        return;
    };
    // KOSKI knows someone else only.
    koski(&bed).insert(koski_pupil(OTHER_STUDENT, LEARNER), None);
    let transfer = run(&bed, "koski", "espoo", SCOPE_NO_SUPPORT).await;
    assert_eq!(transfer["reason"], "source_not_found", "{transfer:#}");
    assert_eq!(step(&transfer, "fetch")["outcome"], "source_not_found");
    let requests = koski(&bed).requests();
    assert_requests_well_formed(&requests, 1);
    assert_eq!(requests[0].status, 404);
    assert_nothing_delivered(&bed);
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn koski_unavailable_is_retried_until_it_answers() {
    let Some(bed) = koski_bed(&[]).await else {
        return;
    };
    koski(&bed).insert(koski_pupil(STUDENT, LEARNER), None);
    koski(&bed).set_behaviour(RegisterBehaviour::Fail {
        status: 503,
        key: "unavailable.virta".into(),
        message: "Korkeakoulutuksen opiskeluoikeuksia ei juuri nyt saada haettua.".into(),
        times: 2,
    });
    let transfer = run(&bed, "koski", "espoo", SCOPE_NO_SUPPORT).await;
    assert_eq!(transfer["status"], "delivered", "{transfer:#}");
    let requests = koski(&bed).requests();
    assert_requests_well_formed(&requests, 3);
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503, 503, 200]);
    let fetches: Vec<&Value> = transfer["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter(|s| s["step"] == "fetch")
        .collect();
    assert_eq!(fetches.len(), 3, "{transfer:#}");
    assert_eq!(fetches[0]["outcome"], "source_unavailable");
    assert!(
        fetches[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("503: unavailable.virta")),
        "{transfer:#}"
    );
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_koski_refusal_is_final() {
    let Some(bed) = koski_bed(&[]).await else {
        return;
    };
    koski(&bed).insert(koski_pupil(STUDENT, LEARNER), None);
    koski(&bed).set_behaviour(RegisterBehaviour::always(
        403,
        "forbidden.vainViranomainen",
        "Sallittu vain viranomaisille",
    ));
    let transfer = run(&bed, "koski", "espoo", SCOPE_NO_SUPPORT).await;
    assert_eq!(transfer["status"], "failed", "{transfer:#}");
    assert_eq!(transfer["reason"], "source_refused");
    let fetch = step(&transfer, "fetch");
    assert_eq!(fetch["outcome"], "source_refused");
    assert!(
        fetch["detail"]
            .as_str()
            .is_some_and(|d| d.contains("403: forbidden.vainViranomainen")),
        "{transfer:#}"
    );
    // Asked once: a refusal is not retried.
    assert_requests_well_formed(&koski(&bed).requests(), 1);
    let id = transfer["id"].as_str().expect("id");
    let story = audit_of(&bed, id).await;
    assert!(
        story.contains(&("source.fetch".to_owned(), "source_refused".to_owned())),
        "{story:?}"
    );
    assert_nothing_delivered(&bed);
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_persons_koski_record_is_a_subject_mismatch() {
    let Some(bed) = koski_bed(&[]).await else {
        return;
    };
    // A register answering with someone else's document.
    koski(&bed).insert(koski_pupil(OTHER_STUDENT, LEARNER), Some(STUDENT));
    let transfer = run(&bed, "koski", "espoo", SCOPE_NO_SUPPORT).await;
    assert_eq!(transfer["reason"], "subject_mismatch", "{transfer:#}");
    assert_nothing_delivered(&bed);
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_deep_and_huge_koski_answers_fail_within_the_limits() {
    let Some(bed) = koski_bed(&[]).await else {
        return;
    };
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let malformed =
        koski_pupil(STUDENT, LEARNER)
            .to_string()
            .replacen("\"tila\":{", "\"tila\" {", 1);
    for (body, expect) in [
        (malformed.into_bytes(), "json_malformed"),
        (deep.into_bytes(), "json_too_deep"),
    ] {
        koski(&bed).set_behaviour(RegisterBehaviour::Body(200, body));
        let transfer = run(&bed, "koski", "espoo", SCOPE_NO_SUPPORT).await;
        assert_eq!(
            transfer["reason"], "invalid_source_document",
            "{transfer:#}"
        );
        let validate = step(&transfer, "validate");
        assert!(
            validate["detail"]
                .as_str()
                .is_some_and(|d| d.contains(expect)),
            "{transfer:#}"
        );
    }
    // 50 MB: past `delivery.max_response_bytes` (16 MiB), the answer is not even read whole.
    let huge = format!("{{\"pad\": \"{}\"}}", "x".repeat(50_000_000)).into_bytes();
    koski(&bed).set_behaviour(RegisterBehaviour::Body(200, huge.clone()));
    let transfer = run(&bed, "koski", "espoo", SCOPE_NO_SUPPORT).await;
    assert_eq!(transfer["reason"], "source_unavailable", "{transfer:#}");
    assert_eq!(step(&transfer, "fetch")["outcome"], "response_too_large");
    assert_nothing_delivered(&bed);
    bed.stop().await;

    // With room for 64 MiB answers, `[limits.json] max_bytes` (16 MiB) refuses it.
    let Some(bed) = koski_bed(&[("SIIRTO__DELIVERY__MAX_RESPONSE_BYTES", "64MiB")]).await else {
        return;
    };
    koski(&bed).set_behaviour(RegisterBehaviour::Body(200, huge));
    let transfer = run(&bed, "koski", "espoo", SCOPE_NO_SUPPORT).await;
    assert_eq!(
        transfer["reason"], "invalid_source_document",
        "{transfer:#}"
    );
    assert!(
        step(&transfer, "validate")["detail"]
            .as_str()
            .is_some_and(|d| d.contains("json_too_large")),
        "{transfer:#}"
    );
    assert_nothing_delivered(&bed);
    bed.stop().await;
}

// --- VIRTA SOAP -----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_virta_record_over_soap_arrives_at_emrex_and_at_a_school_system() {
    let Some(bed) = virta_bed().await else {
        return;
    };
    let record = virta_sample(&siirto_testsupport::corpus_location());
    virta(&bed).insert(STUDENT, &record);

    for (dst, format) in [("emrex", Format::Elmo), ("espoo", Format::SiirtoV1)] {
        let transfer = run(&bed, "virta-soap", dst, "identity achievements").await;
        assert_eq!(transfer["status"], "delivered", "{transfer:#}");
        assert_eq!(transfer["conversion"]["from"], "virta");
        let body = &bed.destinations[dst].requests()[0].body;
        assert_valid(format, body, dst);
    }
    let requests = virta(&bed).requests();
    assert_requests_well_formed(&requests, 2);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, siirto_devkit::pki::DEV_VIRTA_SOAP_PATH);
    assert_eq!(request.header("soapaction"), Some("\"\""));
    assert!(
        request
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/xml"))
    );
    let envelope = String::from_utf8_lossy(&request.body);
    assert!(envelope.contains("OpiskelijanKaikkiTiedotRequest"));
    assert!(envelope.contains(&format!(
        "<luku:henkilotunnus>{STUDENT}</luku:henkilotunnus>"
    )));
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtas_own_answer_envelope_is_read() {
    let Some(bed) = virta_bed().await else {
        return;
    };
    // CSC's answer as a client project stored it, the partial henkilötunnus made the student's.
    let real = std::fs::read_to_string(
        siirto_testsupport::corpus_location().join("virta/wsdl/test-response-106.xml"),
    )
    .expect("corpus");
    assert_eq!(real.matches("290204A<").count(), 1);
    let answer = real.replace("290204A<", &format!("{STUDENT}<"));
    virta(&bed).set_behaviour(RegisterBehaviour::Body(200, answer.into_bytes()));
    let transfer = run(&bed, "virta-soap", "emrex", "identity achievements").await;
    assert_eq!(transfer["status"], "delivered", "{transfer:#}");
    assert_valid(
        Format::Elmo,
        &bed.destinations["emrex"].requests()[0].body,
        "ELMO",
    );
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtas_empty_answer_is_source_not_found() {
    let Some(bed) = virta_bed().await else {
        return;
    };
    let transfer = run(&bed, "virta-soap", "emrex", "identity achievements").await;
    assert_eq!(transfer["reason"], "source_not_found", "{transfer:#}");
    let requests = virta(&bed).requests();
    assert_requests_well_formed(&requests, 1);
    assert!(String::from_utf8_lossy(&requests[0].body).contains("Kutsuja"));
    assert_nothing_delivered(&bed);
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soap_client_fault_is_refused_with_its_faultstring_a_server_fault_retried() {
    let Some(bed) = virta_bed().await else {
        return;
    };
    virta(&bed).insert(
        STUDENT,
        &virta_sample(&siirto_testsupport::corpus_location()),
    );
    // Spring-WS's own fault (the corpus' one), as VIRTA sends it: HTTP 500.
    let fault =
        std::fs::read(siirto_testsupport::corpus_location().join("virta/wsdl/test-fault.xml"))
            .expect("corpus");
    virta(&bed).set_behaviour(RegisterBehaviour::Body(500, fault));
    let transfer = run(&bed, "virta-soap", "emrex", "identity achievements").await;
    assert_eq!(transfer["reason"], "source_refused", "{transfer:#}");
    let detail = step(&transfer, "fetch")["detail"]
        .as_str()
        .expect("detail")
        .to_owned();
    assert!(
        detail.contains("SOAP fault Client: Validation error"),
        "{detail}"
    );
    assert!(detail.contains("2 ValidationError"), "{detail}");
    assert!(
        !detail.contains("140173"),
        "the detail's quoted value: {detail}"
    );
    let id = transfer["id"].as_str().expect("id");
    let entry = audit(&bed)
        .await
        .into_iter()
        .find(|e| {
            e.event.transfer_id.as_deref() == Some(id)
                && e.event.action == "source.fetch"
                && e.event.outcome == "source_refused"
        })
        .expect("the refusal is audited");
    assert!(
        entry.event.detail["error"].contains("Validation error"),
        "{entry:?}"
    );
    assert_requests_well_formed(&virta(&bed).requests(), 1);

    // A Server fault is VIRTA's trouble: asked again, and then delivered.
    virta(&bed).set_behaviour(RegisterBehaviour::Fail {
        status: 500,
        key: "Server".into(),
        message: "Tietokantayhteys katkesi".into(),
        times: 1,
    });
    let transfer = run(&bed, "virta-soap", "emrex", "identity achievements").await;
    assert_eq!(transfer["status"], "delivered", "{transfer:#}");
    assert_requests_well_formed(&virta(&bed).requests(), 3);
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_virta_or_a_dtd_in_the_answer_is_an_invalid_source_document() {
    let Some(bed) = virta_bed().await else {
        return;
    };
    // A Virta whose student's Sukunimi is renamed: not what VIRTA's schema allows.
    let record = virta_sample(&siirto_testsupport::corpus_location());
    let invalid =
        record
            .replacen("<Sukunimi>", "<Sukunimi2>", 1)
            .replacen("</Sukunimi>", "</Sukunimi2>", 1);
    assert_ne!(invalid, record);
    virta(&bed).insert(STUDENT, &invalid);
    let transfer = run(&bed, "virta-soap", "emrex", "identity achievements").await;
    assert_eq!(
        transfer["reason"], "invalid_source_document",
        "{transfer:#}"
    );
    assert_eq!(step(&transfer, "fetch")["outcome"], "ok");
    assert!(
        step(&transfer, "validate")["detail"]
            .as_str()
            .is_some_and(|d| d.contains("xml_schema_invalid")),
        "{transfer:#}"
    );

    // The whole envelope behind a DTD (an entity declared): refused before anything is read.
    let envelope = siirto_devkit::registers::soap_response(Some(&record));
    let with_dtd = format!(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE SOAP-ENV:Envelope [<!ENTITY who \"{STUDENT}\">]>\n{envelope}"
    );
    virta(&bed).set_behaviour(RegisterBehaviour::Body(200, with_dtd.into_bytes()));
    let transfer = run(&bed, "virta-soap", "emrex", "identity achievements").await;
    assert_eq!(
        transfer["reason"], "invalid_source_document",
        "{transfer:#}"
    );
    let validate = step(&transfer, "validate");
    assert!(
        validate["detail"]
            .as_str()
            .is_some_and(|d| d.contains("xml_dtd_forbidden")),
        "{transfer:#}"
    );
    let id = transfer["id"].as_str().expect("id");
    assert!(
        audit(&bed)
            .await
            .iter()
            .any(|e| e.event.transfer_id.as_deref() == Some(id)
                && e.event.action == "source.fetch"
                && e.event.outcome == "ok"
                && e.event.document_sha256.is_some()),
        "the answer's hash is audited"
    );
    assert_nothing_delivered(&bed);
    bed.stop().await;
}

// --- The credentials ------------------------------------------------------------------------

/// The `avain` of the VIRTA credentials file never shows: not in the log of `siirto serve` (at
/// debug, JSON), the audit trail (`siirto audit export`), the transfer views, the steps' error
/// texts, the operator page, the database file, nor in the one line `serve` prints for a
/// credentials file it refuses. It is sent: the peer received it in the SOAP body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_virta_avain_appears_nowhere_but_in_the_request_body() {
    let Some(corpus) = siirto_testsupport::corpus() else {
        return;
    };
    let bed = start_with(TestbedOptions {
        schemas: schemas_with_registers(&corpus),
        virta_wsdl: Some(corpus.join("virta/wsdl/opiskelijatiedot.wsdl")),
        in_process_gateway: false,
        ..TestbedOptions::default()
    })
    .await;
    let caller_file = bed.pki.virta_caller.clone().expect("the credentials file");
    let credentials = std::fs::read_to_string(&caller_file).expect("read");
    let avain = credentials
        .lines()
        .find_map(|l| l.strip_prefix("avain = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("an avain")
        .to_owned();
    assert!(avain.len() >= 16, "{avain}");

    let serving = crate::operations::Serving::start(
        &bed,
        &[("SIIRTO_LOG_FORMAT", "json"), ("SIIRTO_LOG", "debug")],
    )
    .await;
    virta(&bed).insert(
        STUDENT,
        &virta_sample(&siirto_testsupport::corpus_location()),
    );
    let mut ids = Vec::new();
    // Delivered, refused with a fault, and not found.
    let delivered = run(&bed, "virta-soap", "emrex", "identity achievements").await;
    assert_eq!(delivered["status"], "delivered", "{delivered:#}");
    ids.push(delivered["id"].as_str().expect("id").to_owned());
    virta(&bed).set_behaviour(RegisterBehaviour::always(
        500,
        "Client",
        "Kutsuja not recognised",
    ));
    let refused = run(&bed, "virta-soap", "emrex", "identity achievements").await;
    assert_eq!(refused["reason"], "source_refused", "{refused:#}");
    ids.push(refused["id"].as_str().expect("id").to_owned());
    virta(&bed).set_behaviour(RegisterBehaviour::Normal);
    let id = submit_accepted(
        &bed,
        &token(&bed, OTHER_STUDENT, "virta-soap", "emrex", "identity"),
    )
    .await;
    assert_eq!(finished(&bed, &id).await["reason"], "source_not_found");
    ids.push(id);

    // Sent, in the body only.
    let requests = virta(&bed).requests();
    assert_eq!(requests.len(), 3);
    for r in &requests {
        assert!(
            String::from_utf8_lossy(&r.body).contains(&format!("<luku:avain>{avain}</luku:avain>"))
        );
        assert!(!r.target.contains(&avain));
        assert!(r.headers.iter().all(|(_, v)| !v.contains(&avain)));
    }

    let mut seen: Vec<(String, String)> = Vec::new();
    let operator = bed.client("registry-operator").expect("client");
    for id in &ids {
        let view = operator
            .get(&format!("/v1/transfers/{id}"), &[])
            .await
            .expect("answer");
        seen.push((format!("GET /v1/transfers/{id}"), view.json().to_string()));
        let page = operator
            .get(
                &format!("/operator/transfers/{id}"),
                &[("accept-language", "fi")],
            )
            .await
            .expect("answer");
        assert_eq!(page.status.as_u16(), 200);
        seen.push((
            format!("/operator/transfers/{id}"),
            String::from_utf8_lossy(&page.body).into_owned(),
        ));
    }
    for path in [
        "/operator",
        "/operator/transfers?status=failed",
        "/operator/audit",
        "/v1/audit?limit=1000",
    ] {
        let answer = operator.get(path, &[]).await.expect("answer");
        assert_eq!(answer.status.as_u16(), 200, "{path}");
        seen.push((
            path.to_owned(),
            String::from_utf8_lossy(&answer.body).into_owned(),
        ));
    }
    let log = serving.stop().await;
    assert!(log.lines().count() > 10, "a debug log was written:\n{log}");
    seen.push(("the serve log".into(), log));
    let export = std::process::Command::new(siirto_binary())
        .args(["audit", "export", "--config"])
        .arg(bed.config_path())
        .output()
        .expect("siirto audit export");
    assert!(export.status.success());
    let export = String::from_utf8_lossy(&export.stdout).into_owned();
    assert!(export.contains("source_refused"), "{export}");
    seen.push(("siirto audit export".into(), export));
    for entry in std::fs::read_dir(&bed.dir).expect("dir").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("siirto.db") {
            let bytes = std::fs::read(entry.path()).expect("database file");
            seen.push((name, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    assert!(
        seen.iter().any(|(n, _)| n == "siirto.db"),
        "the database file was read"
    );

    // A credentials file `serve` refuses: one line, naming the key, without the value.
    std::fs::write(
        &caller_file,
        credentials.replace(&avain, &format!("{avain}{}", "x".repeat(100))),
    )
    .expect("write");
    let out = crate::operations::serve_until_exit(&bed, &[]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stderr.contains("virta_caller") && stderr.contains("`avain` is"),
        "{stderr}"
    );
    seen.push(("serve with a refused credentials file".into(), stderr));

    for (place, text) in &seen {
        assert!(!text.contains(&avain), "the avain is in {place}");
    }
    bed.stop().await;
}

//! The people a transfer is about (issue 14): the legal basis, guardians of minors, and the
//! consent text — every refusal with its exact code and nothing moved, what is kept of a
//! guardian (a pseudonym only), statutory transfers, and `GET /v1/consent-text`.
//!
//! Ages are counted on the day of `iat` in Finland, and the gateway runs on the real clock
//! here, so the pupils are born relative to today.

use serde_json::{Value, json};
use siirto_core::clock::hex;
use siirto_core::lang::{Lang, helsinki_date};
use siirto_core::record::Date;
use siirto_core::student_id::StudentId;
use siirto_devkit::demo::school_record;
use siirto_devkit::eservice::Authorization;
use siirto_devkit::testbed::Testbed;

use crate::helpers::{
    assert_nothing_moved, assert_refusal, audit, finished, gateway, start, submit, submit_accepted,
};
use crate::people_support::{self as people, hetu, years_before};

/// Today in Finland, as the gateway counts ages.
fn today(bed: &Testbed) -> Date {
    people::day_of(bed.now())
}

/// A pupil who is `years` old (and about a month) today.
fn aged(bed: &Testbed, years: u16, nnn: u16) -> String {
    people::aged(bed.now(), years, nnn)
}

fn signed(bed: &Testbed, a: &Authorization) -> String {
    bed.sign(&a.claims()).expect("sign")
}

fn guardian_of_age(bed: &Testbed) -> String {
    aged(bed, 40, 990)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_people_rule_refuses_with_its_code_and_nothing_moves() {
    let bed = start().await;
    let fourteen = aged(&bed, 14, 901);
    let parent = guardian_of_age(&bed);
    let seventeen = aged(&bed, 17, 902);
    // Turns 15 tomorrow: still 14 on the day of iat.
    let tomorrow = helsinki_date(
        bed.now()
            .saturating_add(std::time::Duration::from_secs(86_400)),
    )
    .expect("a day");
    let fifteen_tomorrow = hetu(years_before(tomorrow, 15), 903);
    let oid = "1.2.246.562.24.10000000008";
    let scope = "identity enrolment achievements";

    let minor = bed.authorization(&fourteen, "turku", "espoo", scope);
    let with_actor = |sub: &str, role: &str| {
        let mut c = minor.claims();
        c["act"] = json!({"sub": sub, "role": role});
        bed.sign(&c).expect("sign")
    };
    let statutory = |dst: &str, scope: &str, purpose: &str| {
        let mut a = bed.authorization(&fourteen, "turku", dst, scope);
        a.basis = Some("statutory".into());
        a.purpose = purpose.into();
        a.consent = None;
        signed(&bed, &a)
    };
    let other_scope_text = {
        let mut a = bed.authorization(&aged(&bed, 30, 904), "turku", "espoo", scope);
        a.consent = bed
            .consent_text(
                "turku",
                "espoo",
                "identity",
                "school-change",
                "consent",
                Lang::Fi,
            )
            .map(|t| (hex(&t.sha256), "fi".into()));
        signed(&bed, &a)
    };
    let other_language_text = {
        let mut a = bed.authorization(&aged(&bed, 30, 905), "turku", "espoo", scope);
        a.consent = bed
            .consent_text(
                "turku",
                "espoo",
                scope,
                "school-change",
                "consent",
                Lang::Sv,
            )
            .map(|t| (hex(&t.sha256), "fi".into()));
        signed(&bed, &a)
    };
    let no_text = {
        let mut a = bed.authorization(&aged(&bed, 30, 906), "turku", "espoo", scope);
        a.consent = None;
        signed(&bed, &a)
    };
    let bad_basis = {
        let mut c = bed
            .authorization(&aged(&bed, 30, 907), "turku", "espoo", scope)
            .claims();
        c["basis"] = json!("law");
        bed.sign(&c).expect("sign")
    };

    let cases: Vec<(&str, u16, &str, String)> = vec![
        (
            "a 14-year-old without act",
            403,
            "guardian_required",
            signed(&bed, &minor),
        ),
        (
            "one day short of 15",
            403,
            "guardian_required",
            signed(
                &bed,
                &bed.authorization(&fifteen_tomorrow, "turku", "espoo", scope),
            ),
        ),
        (
            "a learner number without birthdate",
            403,
            "guardian_required",
            signed(&bed, &bed.authorization(oid, "turku", "espoo", scope)),
        ),
        (
            "a guardian aged 17",
            422,
            "invalid_actor",
            with_actor(&seventeen, "guardian"),
        ),
        (
            "the student as their own guardian",
            422,
            "invalid_actor",
            with_actor(&fourteen, "guardian"),
        ),
        (
            "an actor who is not a guardian",
            422,
            "invalid_actor",
            with_actor(&parent, "teacher"),
        ),
        (
            "a guardian known by learner number",
            422,
            "invalid_actor",
            with_actor(oid, "guardian"),
        ),
        (
            "statutory outside statutory_scopes",
            403,
            "statutory_not_allowed",
            statutory("helsinki", "identity mobility", "school-change"),
        ),
        (
            "statutory for another purpose",
            403,
            "statutory_not_allowed",
            statutory("helsinki", "identity", "study-admission"),
        ),
        (
            "statutory to a destination the law names nothing for",
            403,
            "statutory_not_allowed",
            statutory("espoo", "identity", "school-change"),
        ),
        (
            "consent_sha256 of another scope's text",
            422,
            "consent_text_mismatch",
            other_scope_text,
        ),
        (
            "consent_sha256 of the Swedish text, named Finnish",
            422,
            "consent_text_mismatch",
            other_language_text,
        ),
        (
            "consent without consent_sha256",
            422,
            "missing_claim",
            no_text,
        ),
        (
            "basis neither consent nor statutory",
            422,
            "invalid_claim",
            bad_basis,
        ),
    ];
    for (why, status, code, token) in cases {
        let entry = assert_refusal(
            &bed,
            "eservice",
            "authorization.rejected",
            status,
            code,
            submit(&bed, "eservice", &token),
        )
        .await;
        let message = entry.event.detail["message"].clone();
        for id in [&fourteen, &parent, &seventeen, &fifteen_tomorrow] {
            assert!(!message.contains(id.as_str()), "{why}: {message}");
        }
    }
    // Each refusal is counted under its code.
    let metrics = gateway(&bed).metrics.render();
    for code in [
        "guardian_required",
        "invalid_actor",
        "statutory_not_allowed",
        "consent_text_mismatch",
    ] {
        let line = format!("siirto_authorizations_rejected_total{{code=\"{code}\"}}");
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with(&line) && !l.ends_with(" 0")),
            "{line} in:\n{metrics}"
        );
    }
    assert_nothing_moved(&bed).await;
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guardian_consents_for_a_minor_and_is_kept_only_as_a_pseudonym() {
    let bed = start().await;
    let gw = gateway(&bed).clone();
    let fourteen = aged(&bed, 14, 911);
    let fifteen = hetu(years_before(today(&bed), 15), 912);
    let parent = guardian_of_age(&bed);
    let scope = "identity enrolment achievements";
    for pupil in [&fourteen, &fifteen] {
        bed.sources["turku"].insert(pupil, school_record(pupil, false).into_bytes());
    }

    let mut by_guardian = bed.authorization(&fourteen, "turku", "espoo", scope);
    by_guardian.guardian = Some(parent.clone());
    let with_guardian = submit_accepted(&bed, &signed(&bed, &by_guardian)).await;
    // Fifteen today: consents alone.
    let alone = submit_accepted(
        &bed,
        &signed(&bed, &bed.authorization(&fifteen, "turku", "espoo", scope)),
    )
    .await;

    let shown = bed
        .consent_text(
            "turku",
            "espoo",
            scope,
            "school-change",
            "consent",
            Lang::Fi,
        )
        .expect("a text");
    for (id, guardian) in [(&with_guardian, true), (&alone, false)] {
        let t = finished(&bed, id).await;
        assert_eq!(t["status"], "delivered", "{t:#}");
        assert_eq!(t["basis"], "consent");
        assert_eq!(t["guardian"], guardian, "{t:#}");
        assert_eq!(
            t["consent"],
            json!({"sha256": hex(&shown.sha256), "version": shown.version, "lang": "fi"})
        );
        let key = siirto_gateway::tools::audit_public_key(&bed.config).expect("key");
        let receipt =
            siirto_core::receipt::verify_receipt(t["receipt"].as_str().expect("receipt"), &key)
                .expect("verifies");
        assert_eq!(receipt.claims().guardian, guardian);
        assert_eq!(
            receipt.claims().consent.as_ref().map(|c| c.sha256),
            Some(shown.sha256)
        );
    }

    // The guardian is in the trail only as a keyed pseudonym of their own domain: not their
    // identity code, and not the pseudonym the same person would have as a student.
    let parent_id = StudentId::parse(&parent).expect("valid");
    let pseudonym = gw.pseudonyms.guardian_pseudonym(&parent_id);
    let entries = audit(&bed).await;
    let accepted: Vec<_> = entries
        .iter()
        .filter(|e| e.event.action == "transfer.accepted")
        .collect();
    assert_eq!(accepted.len(), 2);
    let guardians: Vec<Option<&String>> = accepted
        .iter()
        .map(|e| e.event.detail.get("guardian"))
        .collect();
    assert!(guardians.contains(&Some(&pseudonym.as_str().to_owned())));
    assert!(guardians.contains(&None));
    assert_ne!(pseudonym, gw.pseudonyms.pseudonym(&parent_id));
    for e in &entries {
        let text = siirto_core::audit::entry_json(e).to_string();
        for id in [&parent, &fourteen, &fifteen] {
            assert!(!text.contains(id.as_str()), "{text}");
        }
        assert!(
            !text.contains(gw.pseudonyms.pseudonym(&parent_id).as_str()),
            "the guardian's student-domain pseudonym: {text}"
        );
    }
    let row = gw
        .store
        .transfer(&with_guardian)
        .await
        .expect("store")
        .expect("row");
    assert_eq!(row.guardian_pseudonym.as_deref(), Some(pseudonym.as_str()));
    // Nor is the identity code anywhere in the database files.
    let path = bed
        .config
        .gateway
        .database_url
        .strip_prefix("sqlite://")
        .expect("a SQLite testbed")
        .to_owned();
    for file in [path.clone(), format!("{path}-wal")] {
        if let Ok(bytes) = std::fs::read(&file) {
            assert!(
                !bytes.windows(parent.len()).any(|w| w == parent.as_bytes()),
                "{file} holds the guardian's identity code"
            );
        }
    }
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statutory_transfer_needs_no_consent_and_says_which_law() {
    let bed = start().await;
    let pupil = aged(&bed, 12, 921);
    bed.sources["turku"].insert(&pupil, school_record(&pupil, false).into_bytes());
    let mut a = bed.authorization(&pupil, "turku", "helsinki", "identity enrolment support");
    a.basis = Some("statutory".into());
    a.consent = None;
    let id = submit_accepted(&bed, &signed(&bed, &a)).await;
    let t = finished(&bed, &id).await;
    assert_eq!(t["status"], "delivered", "{t:#}");
    assert_eq!(t["basis"], "statutory");
    assert_eq!(t["guardian"], false);
    assert_eq!(t["consent"], Value::Null);
    let key = siirto_gateway::tools::audit_public_key(&bed.config).expect("key");
    let receipt = siirto_core::receipt::verify_receipt(t["receipt"].as_str().expect("r"), &key)
        .expect("verifies");
    let claims = receipt.claims();
    assert_eq!(claims.basis, siirto_core::consent::Basis::Statutory);
    assert_eq!(
        claims.statutory_law.as_ref().map(|l| l.fi.as_str()),
        Some("perusopetuslaki (628/1998) 40 §")
    );
    assert!(claims.consent.is_none());
    assert!(claims.scope.contains(siirto_core::scope::Category::Support));
    bed.stop().await;
}

async fn consent_text(bed: &Testbed, caller: &str, query: &str) -> (u16, Value) {
    let a = bed
        .client(caller)
        .expect("client")
        .get(&format!("/v1/consent-text?{query}"), &[])
        .await
        .expect("answer");
    (a.status.as_u16(), a.json())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consent_text_names_the_organisations_and_exactly_the_scope_in_each_language() {
    let bed = start().await;
    let names = [
        (Lang::Fi, "Turun kaupunki", "Espoon kaupunki"),
        (Lang::Sv, "Åbo stad", "Esbo stad"),
        (Lang::En, "City of Turku", "City of Espoo"),
    ];
    let categories = siirto_core::scope::Category::ALL;
    let mut versions = std::collections::BTreeSet::new();
    let mut hashes = std::collections::BTreeSet::new();
    for scope in [
        "identity",
        "identity achievements",
        "identity enrolment achievements mobility registrations support",
    ] {
        let parsed = siirto_core::scope::Scope::parse(scope).expect("scope");
        for (lang, src, dst) in names {
            let query = format!(
                "src=turku&dst=espoo&scope={}&purpose=school-change&lang={}",
                scope.replace(' ', "+"),
                lang.code()
            );
            let (status, body) = consent_text(&bed, "eservice", &query).await;
            assert_eq!(status, 200, "{body}");
            let text = body["text"].as_str().expect("text");
            assert_eq!(body["lang"], lang.code());
            // The hash is of the exact UTF-8 bytes of the text (computed here independently).
            let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
            assert_eq!(body["sha256"], hex(digest.as_ref()), "{lang}");
            assert_eq!(body["previous_sha256"], Value::Null);
            assert!(text.contains(src) && text.contains(dst), "{lang}: {text}");
            let words = &siirto_gateway::http::pages::texts(lang).consent;
            for c in categories {
                assert_eq!(
                    text.contains(words.categories.get(c)),
                    parsed.contains(c),
                    "{lang} {scope}: {c} in\n{text}"
                );
            }
            assert!(text.contains(words.purposes["school-change"].as_str()));
            assert!(text.contains(&body["version"].as_str().expect("version").to_string()));
            versions.insert(body["version"].as_str().expect("v").to_owned());
            hashes.insert(body["sha256"].as_str().expect("h").to_owned());
        }
    }
    assert_eq!(versions.len(), 1, "one version of the texts: {versions:?}");
    assert_eq!(hashes.len(), 9, "every scope and language its own text");

    // A statutory text names the law; a check's names its question and no category.
    let (status, body) = consent_text(
        &bed,
        "eservice",
        "src=turku&dst=helsinki&scope=identity&purpose=school-change&lang=sv&basis=statutory",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["text"]
            .as_str()
            .expect("t")
            .contains("lagen om grundläggande utbildning (628/1998) 40 §")
    );
    let (status, body) = consent_text(
        &bed,
        "eservice",
        "src=turku&dst=espoo&question=basic_education_completed&purpose=study-admission&lang=en",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let text = body["text"].as_str().expect("t");
    let words = &siirto_gateway::http::pages::texts(Lang::En).consent;
    assert!(text.contains(&words.questions.basic_education_completed));
    for c in categories {
        assert!(!text.contains(words.categories.get(c)), "{c}: {text}");
    }

    // What the e-service signs over is what the gateway holds it to: the Swedish text, signed
    // with consent_lang sv, is accepted.
    let student = aged(&bed, 30, 931);
    bed.sources["turku"].insert(&student, school_record(&student, false).into_bytes());
    let (_, sv) = consent_text(
        &bed,
        "eservice",
        "src=turku&dst=espoo&scope=identity+achievements&purpose=school-change&lang=sv",
    )
    .await;
    let mut a = bed.authorization(&student, "turku", "espoo", "identity achievements");
    a.consent = Some((sv["sha256"].as_str().expect("h").to_owned(), "sv".into()));
    let id = submit_accepted(&bed, &signed(&bed, &a)).await;
    let t = finished(&bed, &id).await;
    assert_eq!(t["consent"]["lang"], "sv", "{t:#}");

    // Every parameter problem is 400 invalid_request naming the parameter; only e-services ask.
    for (query, parameter) in [
        (
            "dst=espoo&scope=identity&purpose=school-change&lang=fi",
            "src",
        ),
        (
            "src=nobody&dst=espoo&scope=identity&purpose=school-change&lang=fi",
            "src",
        ),
        (
            "src=turku&dst=turku&scope=identity&purpose=school-change&lang=fi",
            "dst",
        ),
        (
            "src=turku&dst=espoo&scope=grades&purpose=school-change&lang=fi",
            "scope",
        ),
        (
            "src=turku&dst=espoo&scope=achievements&purpose=school-change&lang=fi",
            "scope",
        ),
        ("src=turku&dst=espoo&purpose=school-change&lang=fi", "scope"),
        (
            "src=turku&dst=espoo&scope=identity&purpose=School+Change&lang=fi",
            "purpose",
        ),
        (
            "src=turku&dst=espoo&scope=identity&purpose=school-change&lang=de",
            "lang",
        ),
        (
            "src=turku&dst=espoo&scope=identity&purpose=school-change",
            "lang",
        ),
        (
            "src=turku&dst=espoo&scope=identity&purpose=school-change&lang=fi&basis=law",
            "basis",
        ),
        (
            "src=turku&dst=espoo&scope=identity&purpose=school-change&lang=fi&basis=statutory",
            "basis",
        ),
        (
            "src=turku&dst=espoo&question=grades&purpose=school-change&lang=fi",
            "question",
        ),
        (
            "src=turku&dst=espoo&scope=identity&question=active_study_right&purpose=x&lang=fi",
            "question",
        ),
        (
            "src=turku&dst=espoo&scope=identity&purpose=school-change&lang=fi&sub=x",
            "sub",
        ),
        (
            "src=turku&src=oulu&dst=espoo&scope=identity&purpose=school-change&lang=fi",
            "src",
        ),
    ] {
        let (status, body) = consent_text(&bed, "eservice", query).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{query}: {body}"
        );
        assert!(
            body["message"]
                .as_str()
                .expect("message")
                .starts_with(&format!("{parameter}:")),
            "{query}: {body}"
        );
    }
    let (status, body) = consent_text(
        &bed,
        "registry-operator",
        "src=turku&dst=espoo&scope=identity&purpose=school-change&lang=fi",
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("forbidden_role"))
    );
    bed.stop().await;
}

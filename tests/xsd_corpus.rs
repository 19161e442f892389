//! The engine against the shared corpus: every document in `MANIFEST.tsv` must get
//! libxml2's verdict, and the official VIRTA and EMREX ELMO schema sets must load.

mod support;

use siirto_xsd::Limits;
use siirto_xsd::schema::{Schema, ValidationFailure};
use std::collections::HashMap;
use std::sync::Arc;

#[test]
fn official_schema_sets_load() {
    let Some(corpus) = siirto_testsupport::corpus() else {
        return;
    };
    let virta = Schema::load(&corpus.join("virta/xsd/Virta.xsd")).expect("VIRTA schema loads");
    let roots = virta.global_elements();
    assert!(
        roots
            .iter()
            .any(|(ns, l)| *l == "Virta" && *ns == Some("urn:mace:funet.fi:virta/2015/09/01"))
    );
    let elmo = Schema::load(&corpus.join("elmo/schema.xsd")).expect("ELMO schema loads");
    assert!(elmo.global_elements().iter().any(|(_, l)| *l == "elmo"));
}

#[test]
fn every_manifest_document_gets_the_libxml2_verdict() {
    let Some(corpus) = siirto_testsupport::corpus() else {
        return;
    };
    let mut schemas: HashMap<String, Arc<Schema>> = HashMap::new();
    let mut agree = 0;
    let entries = support::manifest(&corpus);
    let mut disagreements = Vec::new();
    for e in &entries {
        let schema = schemas
            .entry(e.schema.clone())
            .or_insert_with(|| Schema::load(&corpus.join(&e.schema)).expect("schema loads"))
            .clone();
        let bytes = std::fs::read(corpus.join(&e.file)).expect("read document");
        let result = schema.validate(&bytes, &Limits::default());
        let ours = result.is_ok();
        if ours == e.valid {
            agree += 1;
        } else {
            let detail = match result {
                Err(ValidationFailure::Invalid(errs)) => errs.to_string(),
                Err(other) => other.to_string(),
                Ok(_) => "valid".into(),
            };
            disagreements.push(format!(
                "{} (libxml2: {}):\n{detail}",
                e.file,
                if e.valid { "valid" } else { "invalid" }
            ));
        }
    }
    println!(
        "corpus: {} documents, agreement {agree}/{}",
        entries.len(),
        entries.len()
    );
    assert!(
        disagreements.is_empty(),
        "disagreements:\n{}",
        disagreements.join("\n\n")
    );
}

#[test]
fn the_projects_own_schema_loads_and_accepts_the_demo_record() {
    let own = support::own_schema();
    if !own.exists() {
        eprintln!("SKIPPED: {} not found", own.display());
        return;
    }
    let schema = Schema::load(&own).expect("xsd/siirto-record-v1.xsd loads");
    assert!(
        schema
            .global_elements()
            .contains(&(Some("urn:siirto:record:v1"), "studentRecord"))
    );
    for turvakielto in [false, true] {
        let record =
            siirto_devkit::demo::school_record(siirto_devkit::demo::DEMO_STUDENT, turvakielto);
        let result = schema.validate(record.as_bytes(), &Limits::default());
        assert!(result.is_ok(), "demo record invalid: {:?}", result.err());
        let streamed = schema.validate_reader(record.as_bytes(), &Limits::default());
        assert!(streamed.is_ok(), "{:?}", streamed.err());
    }
    // And libxml2 agrees.
    if let Some(xmllint) = support::xmllint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("record.xml");
        let record = siirto_devkit::demo::school_record(siirto_devkit::demo::DEMO_STUDENT, false);
        std::fs::write(&path, record).expect("write");
        assert_eq!(
            support::xmllint_verdicts(&xmllint, &own, &[path]),
            vec![true]
        );
    }
}

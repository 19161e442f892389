//! Untrusted bytes through the whole XML path: the DOM parser, and validation against the
//! official VIRTA and EMREX ELMO schemas, in memory and streamed. Beyond "no panic", the
//! two validation modes must agree exactly (verdict, error codes, every reported error).
#![no_main]

use std::io::BufReader;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use siirto_xsd::schema::{Schema, ValidationFailure};
use siirto_xsd::{Limits, dom};

fn corpus() -> PathBuf {
    match std::env::var_os("SIIRTO_CORPUS") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../../shared/corpus")),
    }
}

fn schemas() -> &'static [Arc<Schema>] {
    static SCHEMAS: OnceLock<Vec<Arc<Schema>>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let c = corpus();
        vec![
            Schema::load(&c.join("virta/xsd/Virta.xsd")).expect("VIRTA schema"),
            Schema::load(&c.join("elmo/schema.xsd")).expect("ELMO schema"),
        ]
    })
}

/// A comparable summary of a result.
fn summary(r: Result<(), ValidationFailure>) -> String {
    match r {
        Ok(()) => "valid".to_owned(),
        Err(ValidationFailure::Invalid(e)) => format!("invalid\n{e}"),
        Err(ValidationFailure::NotWellFormed(e)) => format!("malformed {}", e.code()),
        Err(ValidationFailure::Unreadable(e)) => format!("unreadable {e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    // Small limits so the fuzzer reaches them.
    let limits = Limits {
        max_bytes: 64 * 1024,
        max_depth: 24,
        max_elements: 2_000,
        max_attributes: 16,
        max_name_len: 64,
        max_text_len: 4 * 1024,
    };
    let _ = dom::parse(data, &limits);
    for schema in schemas() {
        let in_memory = summary(schema.validate(data, &limits).map(|_| ()));
        let streamed = summary(
            schema
                .validate_reader(BufReader::with_capacity(7, data), &limits)
                .map(|_| ()),
        );
        // Positions of limit hits may differ (stream offsets count what was read), so
        // compare malformed results by code only, which `summary` already does.
        assert_eq!(in_memory, streamed, "in-memory and streamed validation disagree");
    }
});

//! Schema text from configuration through the loader and compiler: any input must give a
//! schema or a `SchemaError`, never a panic or a hang. A schema that compiles validates a
//! small document without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use siirto_xsd::Limits;
use siirto_xsd::schema::Schema;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(schema) = Schema::from_str(text, None) {
        let _ = schema.validate(b"<r a='1'><b>x</b><c/></r>", &Limits::default());
    }
});

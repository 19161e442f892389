//! XML Schema 1.0: compiling a schema set and validating documents against it.

pub mod values;
pub mod xsd_regex;

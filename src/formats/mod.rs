//! Record formats the gateway reads and writes.
//!
//! Owns: the [`Format`] identifiers of CONTRACT.md and, in one submodule per format, parsing a
//! document into the format-neutral [`crate::record`] model and rendering the model back.
//! It does no IO and no schema validation (that is `xml`'s).

use std::fmt;

/// A format id as declared per participant in the directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    /// The gateway's own record (`xsd/siirto-record-v1.xsd`).
    SiirtoV1,
    /// The national higher-education register's XML.
    Virta,
    /// EMREX ELMO 1.7.
    Elmo,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::SiirtoV1, Format::Virta, Format::Elmo];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::SiirtoV1 => "siirto-v1",
            Format::Virta => "virta",
            Format::Elmo => "elmo",
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub mod codelists;
pub mod codes;

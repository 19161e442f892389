//! Long code lists: countries and languages as the three formats spell them.
//!
//! Owns: ISO 3166-1 numeric ↔ alpha-2 (VIRTA's `MaatunnusKoodi` is numeric, the model and
//! ELMO use alpha-2), the subset of alpha-2 codes ELMO's Europass `countryCode` accepts, and
//! VIRTA's `KieliKoodi` language list (ISO 639-1 plus VIRTA's own `20` foreign language, `98`
//! not an official language, `99` unknown). Data only; no IO. The tests check every list
//! against the official schemas in the corpus.

/// ISO 3166-1 numeric → alpha-2, current codes.
pub const COUNTRIES: &[(&str, &str)] = &[
    ("004", "AF"),
    ("008", "AL"),
    ("010", "AQ"),
    ("012", "DZ"),
    ("016", "AS"),
    ("020", "AD"),
    ("024", "AO"),
    ("028", "AG"),
    ("031", "AZ"),
    ("032", "AR"),
    ("036", "AU"),
    ("040", "AT"),
    ("044", "BS"),
    ("048", "BH"),
    ("050", "BD"),
    ("051", "AM"),
    ("052", "BB"),
    ("056", "BE"),
    ("060", "BM"),
    ("064", "BT"),
    ("068", "BO"),
    ("070", "BA"),
    ("072", "BW"),
    ("074", "BV"),
    ("076", "BR"),
    ("084", "BZ"),
    ("086", "IO"),
    ("090", "SB"),
    ("092", "VG"),
    ("096", "BN"),
    ("100", "BG"),
    ("104", "MM"),
    ("108", "BI"),
    ("112", "BY"),
    ("116", "KH"),
    ("120", "CM"),
    ("124", "CA"),
    ("132", "CV"),
    ("136", "KY"),
    ("140", "CF"),
    ("144", "LK"),
    ("148", "TD"),
    ("152", "CL"),
    ("156", "CN"),
    ("158", "TW"),
    ("162", "CX"),
    ("166", "CC"),
    ("170", "CO"),
    ("174", "KM"),
    ("175", "YT"),
    ("178", "CG"),
    ("180", "CD"),
    ("184", "CK"),
    ("188", "CR"),
    ("191", "HR"),
    ("192", "CU"),
    ("196", "CY"),
    ("203", "CZ"),
    ("204", "BJ"),
    ("208", "DK"),
    ("212", "DM"),
    ("214", "DO"),
    ("218", "EC"),
    ("222", "SV"),
    ("226", "GQ"),
    ("231", "ET"),
    ("232", "ER"),
    ("233", "EE"),
    ("234", "FO"),
    ("238", "FK"),
    ("239", "GS"),
    ("242", "FJ"),
    ("246", "FI"),
    ("248", "AX"),
    ("250", "FR"),
    ("254", "GF"),
    ("258", "PF"),
    ("260", "TF"),
    ("262", "DJ"),
    ("266", "GA"),
    ("268", "GE"),
    ("270", "GM"),
    ("275", "PS"),
    ("276", "DE"),
    ("288", "GH"),
    ("292", "GI"),
    ("296", "KI"),
    ("300", "GR"),
    ("304", "GL"),
    ("308", "GD"),
    ("312", "GP"),
    ("316", "GU"),
    ("320", "GT"),
    ("324", "GN"),
    ("328", "GY"),
    ("332", "HT"),
    ("334", "HM"),
    ("336", "VA"),
    ("340", "HN"),
    ("344", "HK"),
    ("348", "HU"),
    ("352", "IS"),
    ("356", "IN"),
    ("360", "ID"),
    ("364", "IR"),
    ("368", "IQ"),
    ("372", "IE"),
    ("376", "IL"),
    ("380", "IT"),
    ("384", "CI"),
    ("388", "JM"),
    ("392", "JP"),
    ("398", "KZ"),
    ("400", "JO"),
    ("404", "KE"),
    ("408", "KP"),
    ("410", "KR"),
    ("414", "KW"),
    ("417", "KG"),
    ("418", "LA"),
    ("422", "LB"),
    ("426", "LS"),
    ("428", "LV"),
    ("430", "LR"),
    ("434", "LY"),
    ("438", "LI"),
    ("440", "LT"),
    ("442", "LU"),
    ("446", "MO"),
    ("450", "MG"),
    ("454", "MW"),
    ("458", "MY"),
    ("462", "MV"),
    ("466", "ML"),
    ("470", "MT"),
    ("474", "MQ"),
    ("478", "MR"),
    ("480", "MU"),
    ("484", "MX"),
    ("492", "MC"),
    ("496", "MN"),
    ("498", "MD"),
    ("499", "ME"),
    ("500", "MS"),
    ("504", "MA"),
    ("508", "MZ"),
    ("512", "OM"),
    ("516", "NA"),
    ("520", "NR"),
    ("524", "NP"),
    ("528", "NL"),
    ("531", "CW"),
    ("533", "AW"),
    ("534", "SX"),
    ("535", "BQ"),
    ("540", "NC"),
    ("548", "VU"),
    ("554", "NZ"),
    ("558", "NI"),
    ("562", "NE"),
    ("566", "NG"),
    ("570", "NU"),
    ("574", "NF"),
    ("578", "NO"),
    ("580", "MP"),
    ("581", "UM"),
    ("583", "FM"),
    ("584", "MH"),
    ("585", "PW"),
    ("586", "PK"),
    ("591", "PA"),
    ("598", "PG"),
    ("600", "PY"),
    ("604", "PE"),
    ("608", "PH"),
    ("612", "PN"),
    ("616", "PL"),
    ("620", "PT"),
    ("624", "GW"),
    ("626", "TL"),
    ("630", "PR"),
    ("634", "QA"),
    ("638", "RE"),
    ("642", "RO"),
    ("643", "RU"),
    ("646", "RW"),
    ("652", "BL"),
    ("654", "SH"),
    ("659", "KN"),
    ("660", "AI"),
    ("662", "LC"),
    ("663", "MF"),
    ("666", "PM"),
    ("670", "VC"),
    ("674", "SM"),
    ("678", "ST"),
    ("682", "SA"),
    ("686", "SN"),
    ("688", "RS"),
    ("690", "SC"),
    ("694", "SL"),
    ("702", "SG"),
    ("703", "SK"),
    ("704", "VN"),
    ("705", "SI"),
    ("706", "SO"),
    ("710", "ZA"),
    ("716", "ZW"),
    ("724", "ES"),
    ("728", "SS"),
    ("729", "SD"),
    ("732", "EH"),
    ("740", "SR"),
    ("744", "SJ"),
    ("748", "SZ"),
    ("752", "SE"),
    ("756", "CH"),
    ("760", "SY"),
    ("762", "TJ"),
    ("764", "TH"),
    ("768", "TG"),
    ("772", "TK"),
    ("776", "TO"),
    ("780", "TT"),
    ("784", "AE"),
    ("788", "TN"),
    ("792", "TR"),
    ("795", "TM"),
    ("796", "TC"),
    ("798", "TV"),
    ("800", "UG"),
    ("804", "UA"),
    ("807", "MK"),
    ("818", "EG"),
    ("826", "GB"),
    ("831", "GG"),
    ("832", "JE"),
    ("833", "IM"),
    ("834", "TZ"),
    ("840", "US"),
    ("850", "VI"),
    ("854", "BF"),
    ("858", "UY"),
    ("860", "UZ"),
    ("862", "VE"),
    ("876", "WF"),
    ("882", "WS"),
    ("887", "YE"),
    ("894", "ZM"),
];

/// Withdrawn numeric codes VIRTA still lists, with the alpha-2 code they had. Read as that
/// code; written back only for the codes ISO withdrew without a successor (`SD` is written as
/// today's `729`).
pub const HISTORIC_COUNTRIES: &[(&str, &str)] =
    &[("530", "AN"), ("736", "SD"), ("810", "SU"), ("891", "CS")];

/// VIRTA's code for an unknown country.
pub const VIRTA_UNKNOWN_COUNTRY: &str = "999";

/// Alpha-2 codes in ELMO's `europass:countryCode` enumeration.
pub const EUROPASS_COUNTRIES: &[&str] = &[
    "AD", "AE", "AF", "AG", "AL", "AM", "AO", "AR", "AT", "AU", "AZ", "BA", "BB", "BD", "BE", "BF",
    "BG", "BH", "BI", "BJ", "BN", "BO", "BR", "BS", "BT", "BW", "BY", "BZ", "CA", "CD", "CF", "CG",
    "CH", "CI", "CL", "CM", "CN", "CO", "CR", "CU", "CV", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO",
    "DZ", "EC", "EE", "EG", "ER", "ES", "ET", "FI", "FJ", "FM", "FR", "GA", "GB", "GD", "GE", "GH",
    "GL", "GM", "GN", "GQ", "GR", "GT", "GW", "GY", "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IN",
    "IQ", "IR", "IS", "IT", "JM", "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW",
    "KZ", "LA", "LB", "LC", "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME",
    "MG", "MH", "MK", "ML", "MM", "MN", "MR", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA", "NE",
    "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PG", "PH", "PK", "PL", "PR",
    "PS", "PT", "PW", "PY", "QA", "RO", "RS", "RU", "RW", "SA", "SB", "SC", "SD", "SE", "SG", "SI",
    "SK", "SL", "SM", "SN", "SO", "SR", "ST", "SV", "SY", "SZ", "TD", "TG", "TH", "TJ", "TL", "TM",
    "TN", "TO", "TR", "TT", "TV", "TZ", "UA", "UG", "US", "UY", "UZ", "VA", "VC", "VE", "VN", "VU",
    "WS", "YE", "ZA", "ZM", "ZW",
];

/// VIRTA `KieliKoodiTyyppi`.
pub const VIRTA_LANGUAGES: &[&str] = &[
    "20", "98", "99", "aa", "ab", "ae", "af", "ak", "am", "an", "ar", "as", "av", "ay", "az", "ba",
    "be", "bg", "bh", "bi", "bm", "bn", "bo", "br", "bs", "ca", "ce", "ch", "co", "cr", "cs", "cu",
    "cv", "cy", "da", "de", "dv", "dz", "ee", "el", "en", "eo", "es", "et", "eu", "fa", "ff", "fi",
    "fj", "fo", "fr", "fy", "ga", "gd", "gl", "gn", "gu", "gv", "ha", "he", "hi", "ho", "hr", "ht",
    "hu", "hy", "hz", "ia", "id", "ie", "ig", "ii", "ik", "io", "is", "it", "iu", "ja", "jv", "ka",
    "kg", "ki", "kj", "kk", "kl", "km", "kn", "ko", "kr", "ks", "ku", "kv", "kw", "ky", "la", "lb",
    "lg", "li", "ln", "lo", "lt", "lu", "lv", "mg", "mh", "mi", "mk", "ml", "mn", "mo", "mr", "ms",
    "mt", "my", "na", "nb", "nd", "ne", "ng", "nl", "nn", "no", "nr", "nv", "ny", "oc", "oj", "om",
    "or", "os", "pa", "pi", "pl", "ps", "pt", "qu", "rm", "rn", "ro", "ru", "rw", "sa", "sc", "sd",
    "se", "sg", "sh", "si", "sk", "sl", "sm", "sn", "so", "sq", "sr", "ss", "st", "su", "sv", "sw",
    "ta", "te", "tg", "th", "ti", "tk", "tl", "tn", "to", "tr", "ts", "tt", "tw", "ty", "ug", "uk",
    "ur", "uz", "wa", "ve", "vi", "vo", "wo", "xh", "yi", "yo", "za", "zh", "zu",
];

/// VIRTA `OrganisaatioKoodi` values that are not five-digit oppilaitosnumero codes: VIRTA's own
/// extensions for kinds of institutions, `UK` (ulkomainen korkeakoulu, a foreign higher-education
/// institution) and `UM` (ulkomainen muu oppilaitos, another foreign institution) among them.
pub const VIRTA_ORGANISATION_EXTENSIONS: &[&str] =
    &["41", "42", "63", "64", "66", "99", "Muu", "UK", "UM", "XX"];

/// The VIRTA code for a foreign higher-education institution.
pub const VIRTA_FOREIGN_HEI: &str = "UK";

/// Whether a value has the form of a VIRTA organisation code: a five-digit oppilaitosnumero
/// or one of VIRTA's extension codes. (The register's list of oppilaitosnumero codes is not
/// embedded; a well-formed code VIRTA does not list fails the output validation.)
pub fn is_virta_organisation(code: &str) -> bool {
    (code.len() == 5 && code.bytes().all(|b| b.is_ascii_digit()))
        || VIRTA_ORGANISATION_EXTENSIONS.contains(&code)
}

/// VIRTA language codes that are not ISO 639-1 (foreign, not official, unknown).
pub const VIRTA_LANGUAGE_EXTENSIONS: &[&str] = &["20", "98", "99"];

/// Alpha-2 for a VIRTA numeric country code; `None` for `999` (unknown) and unknown codes.
/// The flag says whether the code was a withdrawn one (a lossy reading).
pub fn country_from_numeric(numeric: &str) -> Option<(&'static str, bool)> {
    COUNTRIES
        .iter()
        .find(|(n, _)| *n == numeric)
        .map(|(_, a)| (*a, false))
        .or_else(|| {
            HISTORIC_COUNTRIES
                .iter()
                .find(|(n, _)| *n == numeric)
                .map(|(_, a)| (*a, true))
        })
}

/// VIRTA numeric code for an alpha-2 country.
pub fn country_to_numeric(alpha2: &str) -> Option<&'static str> {
    COUNTRIES
        .iter()
        .find(|(_, a)| *a == alpha2)
        .or_else(|| {
            HISTORIC_COUNTRIES
                .iter()
                .filter(|(n, _)| *n != "736")
                .find(|(_, a)| *a == alpha2)
        })
        .map(|(n, _)| *n)
}

/// Whether ELMO's Europass country list has this alpha-2 code.
pub fn europass_has(alpha2: &str) -> bool {
    EUROPASS_COUNTRIES.contains(&alpha2)
}

/// Whether VIRTA's language list has this code.
pub fn virta_has_language(code: &str) -> bool {
    VIRTA_LANGUAGES.contains(&code)
}

/// Whether a language code is a plain ISO 639-1 code (two lower-case letters).
pub fn is_iso639_1(code: &str) -> bool {
    code.len() == 2 && code.bytes().all(|b| b.is_ascii_lowercase())
}

/// Whether a value is a language tag `xs:language` accepts (`[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*`).
pub fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let first_ok = parts
        .next()
        .is_some_and(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphabetic()));
    first_ok
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing unwrap is a failing test
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// A file of the corpus; `None`, after a loud skip, without the corpus
    /// (`siirto_testsupport::corpus`). A corpus that lacks the file is a failure.
    fn read(rel: &str) -> Option<String> {
        let path = siirto_testsupport::corpus()?.join(rel);
        let text = std::fs::read_to_string(&path);
        Some(text.unwrap_or_else(|e| panic!("{}: {e}", path.display())))
    }

    /// `value="..."` attributes of the enumeration inside the named simple type.
    fn enumeration(xsd: &str, type_name: &str) -> BTreeSet<String> {
        let start = xsd
            .rfind(&format!("<xs:simpleType name=\"{type_name}\">"))
            .expect("type present");
        let end = start + xsd[start..].find("</xs:simpleType>").expect("type closed");
        let body = &xsd[start..end];
        body.split("<xs:enumeration value=\"")
            .skip(1)
            .filter_map(|s| s.split('"').next())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn tables_are_unique() {
        let numerics: BTreeSet<_> = COUNTRIES.iter().map(|(n, _)| n).collect();
        let alphas: BTreeSet<_> = COUNTRIES.iter().map(|(_, a)| a).collect();
        assert_eq!(numerics.len(), COUNTRIES.len());
        assert_eq!(alphas.len(), COUNTRIES.len());
        assert!(COUNTRIES.iter().all(|(n, a)| n.len() == 3 && a.len() == 2));
    }

    #[test]
    fn countries_match_virta_and_europass() {
        let Some(koodistot) = read("virta/xsd/koodistot.xsd") else {
            return;
        };
        let mut virta = enumeration(&koodistot, "MaatunnusKoodiTyyppi");
        virta.remove("20"); // a stray value in the official list, not a country
        let ours: BTreeSet<String> = COUNTRIES
            .iter()
            .chain(HISTORIC_COUNTRIES)
            .map(|(n, _)| (*n).to_owned())
            .chain([VIRTA_UNKNOWN_COUNTRY.to_owned()])
            .collect();
        assert_eq!(ours, virta);
        let Some(europass) = read("elmo/references/EUROPASS_ISOCountries_V1.1.xsd") else {
            return;
        };
        let listed: BTreeSet<String> = europass
            .split("<xsd:enumeration value='")
            .skip(1)
            .filter_map(|s| s.split('\'').next())
            .map(str::to_owned)
            .collect();
        let embedded: BTreeSet<String> =
            EUROPASS_COUNTRIES.iter().map(|c| (*c).to_owned()).collect();
        assert_eq!(embedded, listed);
        for code in EUROPASS_COUNTRIES {
            assert!(country_to_numeric(code).is_some(), "{code}");
        }
    }

    #[test]
    fn languages_match_virta() {
        let Some(koodistot) = read("virta/xsd/koodistot.xsd") else {
            return;
        };
        let listed = enumeration(&koodistot, "KieliKoodiTyyppi");
        let embedded: BTreeSet<String> = VIRTA_LANGUAGES.iter().map(|c| (*c).to_owned()).collect();
        assert_eq!(embedded, listed);
    }

    #[test]
    fn organisation_extensions_match_virta() {
        let Some(koodistot) = read("virta/xsd/koodistot.xsd") else {
            return;
        };
        let listed = enumeration(&koodistot, "OrganisaatioKoodiTyyppi");
        let extensions: BTreeSet<String> = listed
            .iter()
            .filter(|c| !(c.len() == 5 && c.bytes().all(|b| b.is_ascii_digit())))
            .cloned()
            .collect();
        let embedded: BTreeSet<String> = VIRTA_ORGANISATION_EXTENSIONS
            .iter()
            .map(|c| (*c).to_owned())
            .collect();
        assert_eq!(embedded, extensions);
        assert!(listed.iter().all(|c| is_virta_organisation(c)));
    }

    #[test]
    fn lookups() {
        assert_eq!(country_from_numeric("246"), Some(("FI", false)));
        assert_eq!(country_from_numeric("056"), Some(("BE", false)));
        assert_eq!(country_from_numeric("810"), Some(("SU", true)));
        assert_eq!(country_from_numeric("999"), None);
        assert_eq!(country_to_numeric("FI"), Some("246"));
        assert_eq!(country_to_numeric("SD"), Some("729"));
        assert_eq!(country_to_numeric("SU"), Some("810"));
        assert_eq!(country_to_numeric("ZZ"), None);
        assert!(is_language_tag("en-GB") && is_language_tag("fi") && !is_language_tag("20"));
        assert!(!is_language_tag("") && !is_language_tag("en-") && !is_language_tag("toolongtag"));
    }
}

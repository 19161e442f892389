//! How a source is called (CONTRACT.md, "Source protocols"), as configuration data: the
//! participant key `protocol` and what each protocol needs — KOSKI's release path and the
//! opiskeluoikeus types asked for, VIRTA's `Kutsuja` credentials.
//!
//! Owns: [`SourceProtocol`], [`KoskiCall`], [`VirtaCaller`] (whose `Debug` never shows a value)
//! and [`KOSKI_TYPES`], the code values of KOSKI's `opiskeluoikeudentyyppi` code list. The
//! config loader (`siirto_gateway::config`) builds these; the requests and the classification
//! of answers are `siirto_gateway::outbound`'s, one module per protocol.
//!
//! It must not read files or build requests. The credentials are personal to the calling
//! system: nothing here prints them, and nothing that holds them may log or audit them.

use std::fmt;

/// KOSKI luovutuspalvelu's default release path (the generic v1 endpoints; KOSKI grants each
/// authority its own since 2023, so `koski_path` can name another).
pub const DEFAULT_KOSKI_PATH: &str = "/koski/api/luovutuspalvelu";

/// The code values of KOSKI's `opiskeluoikeudentyyppi` code list (koodisto), the values a
/// luovutuspalvelu request may ask for in `opiskeluoikeudenTyypit`. `korkeakoulutus` and
/// `ylioppilastutkinto` make KOSKI call VIRTA or the matriculation register as well (its 503
/// `unavailable.virta` / `unavailable.ytr`).
pub const KOSKI_TYPES: &[&str] = &[
    "ahvenanmaanperusopetus",
    "aikuistenperusopetus",
    "ammatillinenkoulutus",
    "diatutkinto",
    "ebtutkinto",
    "esiopetus",
    "europeanschoolofhelsinki",
    "ibtutkinto",
    "internationalschool",
    "kielitutkinto",
    "korkeakoulutus",
    "lukiokoulutus",
    "luva",
    "muukuinsaanneltykoulutus",
    "perusopetukseenvalmistavaopetus",
    "perusopetuksenlisaopetus",
    "perusopetus",
    "taiteenperusopetus",
    "tuva",
    "vapaansivistystyonkoulutus",
    "ylioppilastutkinto",
];

/// Whether `value` is a code of [`KOSKI_TYPES`].
pub fn is_koski_type(value: &str) -> bool {
    KOSKI_TYPES.contains(&value)
}

/// `protocol` of a source: how the gateway asks it for a student's record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SourceProtocol {
    /// Siirto's own `GET {base_url}/records/{sub}` (the default; also how destinations are
    /// called, with `POST {base_url}/records`).
    #[default]
    Siirto,
    /// KOSKI luovutuspalvelu v1: `POST {base_url}{path}/hetu` or `/oid`, JSON body.
    Koski(KoskiCall),
    /// VIRTA opintotietopalvelu, SOAP 1.1 `OpiskelijanKaikkiTiedot`.
    VirtaSoap(VirtaCaller),
    /// KOSKI OmaData: the student consents at KOSKI; the gateway exchanges the code (OAuth 2.0
    /// with PKCE and mutual TLS) and fetches from the resource endpoint.
    KoskiOmadata(OmadataCall),
}

impl SourceProtocol {
    /// The values of the `protocol` key.
    pub const NAMES: [&'static str; 4] = ["siirto", "koski", "virta-soap", "koski-omadata"];

    /// The `protocol` value naming this protocol.
    pub fn name(&self) -> &'static str {
        match self {
            SourceProtocol::Siirto => "siirto",
            SourceProtocol::Koski(_) => "koski",
            SourceProtocol::VirtaSoap(_) => "virta-soap",
            SourceProtocol::KoskiOmadata(_) => "koski-omadata",
        }
    }
}

/// What a KOSKI OmaData source needs: Siirto's `client_id` at KOSKI, the authorization server
/// (`omadata_issuer`, whose RFC 8414 metadata names the authorization and token endpoints),
/// the resource endpoint and the scope asked for. None of it is secret: the client is
/// authenticated by the gateway's client certificate (RFC 8705 `tls_client_auth`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OmadataCall {
    pub client_id: String,
    /// `https://host[:port][/path]`, no trailing slash.
    pub issuer: String,
    /// `https://…` of the resource endpoint.
    pub resource: String,
    /// Space-separated OAuth scopes (KOSKI's `HENKILOTIEDOT_*`, one `OPISKELUOIKEUDET_*`).
    pub scope: String,
}

/// What a KOSKI request needs besides the student: where the release endpoints are, and which
/// opiskeluoikeus types to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KoskiCall {
    /// `koski_path`: appended to `base_url`, then `/hetu` or `/oid` (starts with `/`, no
    /// trailing `/`).
    pub path: String,
    /// `koski_types`: codes of [`KOSKI_TYPES`], at least one, each once.
    pub types: Vec<String>,
}

/// VIRTA's `Kutsuja`: the calling system (`jarjestelma`), its user (`tunnus`) and the interface
/// password (`avain`), from the separate file `virta_caller` names. Each is 1 to 100
/// characters (the WSDL's `maxLength`). `Debug` shows none of them; [`VirtaCaller::avain`] is
/// the only way to the password, for the request body.
#[derive(Clone, PartialEq, Eq)]
pub struct VirtaCaller {
    jarjestelma: String,
    tunnus: String,
    avain: String,
}

/// Why credentials were refused; names the field, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallerError {
    #[error("`{0}` must not be empty")]
    Empty(&'static str),
    #[error("`{field}` is {length} characters; VIRTA takes at most {max}")]
    TooLong {
        field: &'static str,
        length: usize,
        max: usize,
    },
    #[error("`{0}` holds a control character")]
    ControlCharacter(&'static str),
}

/// The WSDL's `maxLength` of each `Kutsuja` field.
pub const CALLER_FIELD_MAX: usize = 100;

impl VirtaCaller {
    pub fn new(jarjestelma: &str, tunnus: &str, avain: &str) -> Result<VirtaCaller, CallerError> {
        for (field, value) in [
            ("jarjestelma", jarjestelma),
            ("tunnus", tunnus),
            ("avain", avain),
        ] {
            if value.is_empty() {
                return Err(CallerError::Empty(field));
            }
            let length = value.chars().count();
            if length > CALLER_FIELD_MAX {
                return Err(CallerError::TooLong {
                    field,
                    length,
                    max: CALLER_FIELD_MAX,
                });
            }
            if value.chars().any(char::is_control) {
                return Err(CallerError::ControlCharacter(field));
            }
        }
        Ok(VirtaCaller {
            jarjestelma: jarjestelma.to_owned(),
            tunnus: tunnus.to_owned(),
            avain: avain.to_owned(),
        })
    }

    pub fn jarjestelma(&self) -> &str {
        &self.jarjestelma
    }

    pub fn tunnus(&self) -> &str {
        &self.tunnus
    }

    /// The interface password. Secret: only the request body may hold it.
    pub fn avain(&self) -> &str {
        &self.avain
    }
}

impl fmt::Debug for VirtaCaller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VirtaCaller(<redacted>)")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing unwrap is a failing test
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_credential() {
        let caller = VirtaCaller::new("siirto-turku", "turku-user", "s3cret-avain").unwrap();
        let shown = format!("{caller:?} {:?}", SourceProtocol::VirtaSoap(caller.clone()));
        for value in ["siirto-turku", "turku-user", "s3cret-avain"] {
            assert!(!shown.contains(value), "{shown}");
        }
        assert_eq!(caller.avain(), "s3cret-avain");
    }

    #[test]
    fn credentials_are_checked_by_field() {
        let long = "x".repeat(101);
        assert_eq!(
            VirtaCaller::new("", "t", "a").unwrap_err(),
            CallerError::Empty("jarjestelma")
        );
        assert_eq!(
            VirtaCaller::new("j", "t", &long).unwrap_err(),
            CallerError::TooLong {
                field: "avain",
                length: 101,
                max: 100
            }
        );
        assert!(
            !VirtaCaller::new("j", "t", &long)
                .unwrap_err()
                .to_string()
                .contains(&long)
        );
        assert_eq!(
            VirtaCaller::new("j", "t\n", "a").unwrap_err(),
            CallerError::ControlCharacter("tunnus")
        );
        // 100 characters of two bytes each are within the limit.
        assert!(VirtaCaller::new("j", "t", &"ä".repeat(100)).is_ok());
    }

    #[test]
    fn koski_types_are_the_code_list() {
        assert!(is_koski_type("perusopetus") && is_koski_type("korkeakoulutus"));
        assert!(!is_koski_type("perusopetuksenoppimaara"), "a suoritus type");
        let mut sorted = KOSKI_TYPES.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), KOSKI_TYPES.len());
        assert_eq!(SourceProtocol::default().name(), "siirto");
    }
}

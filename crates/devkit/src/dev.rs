//! The `siirto dev` commands, for driving a transfer by hand against a development directory
//! (`siirto pki init DIR`): [`sign`] signs a student's authorization or transparency token as
//! the development e-service, and [`start_peers`] serves the directory's sources and
//! destinations with sample records. Development material only, never for real records.
//!
//! Owns: finding the development issuer's key, `kid` and algorithm from a `siirto.toml` and its
//! directory, the claims' defaults, and which records the peers serve. The signing itself is
//! [`crate::eservice`]'s, the endpoints are [`crate::peers`]', started as the testbed starts
//! them ([`crate::testbed::spawn_peers`]); the files' places are [`crate::pki::Layout`]'s.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tokio::net::TcpListener;

use crate::demo::{DEMO_STUDENT, school_record};
use crate::eservice::{self, AUTHORIZATION_TYP, Authorization, TRANSPARENCY_TYP};
use crate::peers::{Destination, Source};
use crate::pki::Layout;
use crate::testbed::{Peers, TestbedError, spawn_peers};
use siirto_core::clock::{Clock, SystemClock, SystemRandom, uuid_v4};
use siirto_core::formats::Format;
use siirto_core::lang::Lang;
use siirto_gateway::config::Config;
use siirto_gateway::server::{Shutdown, ShutdownTrigger};

/// The scope of an authorization when none is given: everything but support decisions.
pub const DEFAULT_SCOPE: &str = "identity enrolment achievements";
/// The purpose of an authorization when none is given.
pub const DEFAULT_PURPOSE: &str = "school-change";
/// A token's lifetime when none is given, in seconds.
pub const DEFAULT_LIFETIME_SECS: i64 = 300;

/// Why a `siirto dev` command could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("{0}")]
    Config(#[from] siirto_gateway::config::ConfigError),
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a JWKS: {reason}", path.display())]
    Jwks { path: PathBuf, reason: String },
    #[error("{}: no key with kid {kid:?} (it has {known})", path.display())]
    UnknownKid {
        path: PathBuf,
        kid: String,
        known: String,
    },
    #[error(
        "{} has no [[issuers]] entry with id {issuer:?}, so the kid is unknown: give --kid (and --key)",
        config.display()
    )]
    UnknownIssuer { config: PathBuf, issuer: String },
    #[error("an authorization needs {0}")]
    Missing(&'static str),
    #[error("a transparency token's scope is always `transparency`: leave out {0}")]
    NotForTransparency(&'static str),
    #[error("signing with {}: {source}", key.display())]
    Sign {
        key: PathBuf,
        #[source]
        source: eservice::SignError,
    },
    #[error("cannot listen on {addr} for participant {participant} ({base_url}): {source}")]
    Listen {
        participant: String,
        base_url: String,
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Records { path: PathBuf, reason: String },
    #[error("{0}")]
    Peers(#[from] TestbedError),
}

/// What a token is for (its `typ`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A transfer authorization (`siirto-authz+jwt`).
    Authorization,
    /// A transparency token (`siirto-transparency+jwt`): the student reads their own transfers.
    Transparency,
}

/// `siirto dev sign`: the claims and where the key is. `None` takes the default named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignRequest {
    /// The development `siirto.toml`: `aud` is its `gateway.id`; the `kid` comes from the JWKS
    /// of its `[[issuers]]` entry for `issuer`; the key lies in its directory.
    pub config: PathBuf,
    pub kind: TokenKind,
    /// `iss`.
    pub issuer: String,
    /// `aud`; default the configuration's `gateway.id`.
    pub audience: Option<String>,
    /// `sub`: the student.
    pub subject: String,
    /// `src` and `dst`: needed for an authorization.
    pub source: Option<String>,
    pub destination: Option<String>,
    /// Default [`DEFAULT_SCOPE`] (an authorization only).
    pub scope: Option<String>,
    /// Default [`DEFAULT_PURPOSE`] (an authorization only).
    pub purpose: Option<String>,
    /// `exp` - `iat`, seconds.
    pub lifetime_secs: i64,
    /// Default the first key of the issuer's JWKS.
    pub kid: Option<String>,
    /// The private key (PKCS#8 PEM); default the development issuer's, `DIR/certs/issuer.key`.
    pub key: Option<PathBuf>,
    /// Default a random UUID.
    pub jti: Option<String>,
    /// `basis` (`consent` when absent).
    pub basis: Option<String>,
    /// `act`: the henkilötunnus of a guardian consenting for a minor.
    pub guardian: Option<String>,
    /// `birthdate` (for a learner number).
    pub birthdate: Option<String>,
    /// The language of the consent text whose hash is signed (`consent_sha256`,
    /// `consent_lang`): default Finnish for consent; for a statutory basis only when given.
    pub consent_lang: Option<Lang>,
}

fn read(path: &Path) -> impl FnOnce(std::io::Error) -> DevError + '_ {
    move |source| DevError::Read {
        path: path.to_owned(),
        source,
    }
}

/// The directory a configuration file is in.
fn config_dir(config: &Path) -> PathBuf {
    match config.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// The JWS algorithm a public JWK is used with: its `alg`, else by key type (EC P-256 → ES256,
/// Ed25519 → EdDSA, RSA → RS256).
fn jwk_algorithm(jwk: &Value) -> Option<String> {
    if let Some(alg) = jwk.get("alg").and_then(Value::as_str) {
        return Some(alg.to_owned());
    }
    let kty = jwk.get("kty").and_then(Value::as_str);
    let crv = jwk.get("crv").and_then(Value::as_str);
    match (kty, crv) {
        (Some("EC"), Some("P-256")) => Some("ES256".to_owned()),
        (Some("OKP"), Some("Ed25519")) => Some("EdDSA".to_owned()),
        (Some("RSA"), _) => Some("RS256".to_owned()),
        _ => None,
    }
}

/// The `kid` to sign with and its algorithm, from the issuer's JWKS file.
fn choose_key(jwks_path: &Path, kid: Option<&str>) -> Result<(String, String), DevError> {
    let text = std::fs::read_to_string(jwks_path).map_err(read(jwks_path))?;
    let bad = |reason: &str| DevError::Jwks {
        path: jwks_path.to_owned(),
        reason: reason.to_owned(),
    };
    let jwks: Value = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no `keys` array"))?;
    let kid_of = |k: &Value| k.get("kid").and_then(Value::as_str).map(str::to_owned);
    let chosen = match kid {
        None => keys.first().ok_or_else(|| bad("no keys"))?,
        Some(kid) => keys
            .iter()
            .find(|k| kid_of(k).as_deref() == Some(kid))
            .ok_or_else(|| DevError::UnknownKid {
                path: jwks_path.to_owned(),
                kid: kid.to_owned(),
                known: keys
                    .iter()
                    .filter_map(kid_of)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?,
    };
    let kid = kid_of(chosen).ok_or_else(|| bad("its first key has no kid"))?;
    let alg = jwk_algorithm(chosen).ok_or_else(|| bad("cannot tell the key's algorithm"))?;
    Ok((kid, alg))
}

/// `siirto dev sign`: the compact JWS, signed now with the system clock.
pub fn sign(request: &SignRequest) -> Result<String, DevError> {
    let config = Config::load(&request.config)?;
    let (kid, alg) = match config.issuers.iter().find(|i| i.id == request.issuer) {
        Some(issuer) => choose_key(&issuer.jwks, request.kid.as_deref())?,
        None => match &request.kid {
            // An issuer the gateway does not know (to see it refused): the development key.
            Some(kid) => (kid.clone(), "ES256".to_owned()),
            None => {
                return Err(DevError::UnknownIssuer {
                    config: request.config.clone(),
                    issuer: request.issuer.clone(),
                });
            }
        },
    };
    let key = request
        .key
        .clone()
        .unwrap_or_else(|| Layout::new(&config_dir(&request.config)).issuer_key());
    let pem = std::fs::read(&key).map_err(read(&key))?;
    let audience = request
        .audience
        .clone()
        .unwrap_or_else(|| config.gateway.id.clone());
    let jti = request
        .jti
        .clone()
        .unwrap_or_else(|| uuid_v4(&SystemRandom::new()));
    let now = SystemClock.now();
    let (claims, typ) = match request.kind {
        TokenKind::Authorization => {
            let authorization = Authorization {
                issuer: request.issuer.clone(),
                audience,
                subject: request.subject.clone(),
                source: request.source.clone().ok_or(DevError::Missing("--src"))?,
                destination: request
                    .destination
                    .clone()
                    .ok_or(DevError::Missing("--dst"))?,
                scope: request
                    .scope
                    .clone()
                    .unwrap_or_else(|| DEFAULT_SCOPE.to_owned()),
                purpose: request
                    .purpose
                    .clone()
                    .unwrap_or_else(|| DEFAULT_PURPOSE.to_owned()),
                jti,
                issued_at: now,
                lifetime_secs: request.lifetime_secs,
                basis: request.basis.clone(),
                guardian: request.guardian.clone(),
                birthdate: request.birthdate.clone(),
                consent: None,
            };
            // The text the gateway shows for it, as an e-service would have shown it.
            let basis = authorization.basis.as_deref().unwrap_or("consent");
            let lang = match (basis, request.consent_lang) {
                (_, Some(lang)) => Some(lang),
                ("consent", None) => Some(Lang::Fi),
                _ => None,
            };
            let consent = lang.and_then(|lang| {
                let text = eservice::consent_text(
                    &config.directory,
                    &authorization.source,
                    &authorization.destination,
                    &authorization.scope,
                    &authorization.purpose,
                    basis,
                    lang,
                )?;
                Some((
                    siirto_core::clock::hex(&text.sha256),
                    lang.code().to_owned(),
                ))
            });
            let authorization = Authorization {
                consent,
                ..authorization
            };
            (authorization.claims(), AUTHORIZATION_TYP)
        }
        TokenKind::Transparency => {
            for (given, flag) in [
                (request.source.is_some(), "--src"),
                (request.destination.is_some(), "--dst"),
                (request.scope.is_some(), "--scope"),
                (request.purpose.is_some(), "--purpose"),
                (request.basis.is_some(), "--basis"),
                (request.guardian.is_some(), "--guardian"),
                (request.birthdate.is_some(), "--birthdate"),
                (request.consent_lang.is_some(), "--consent-lang"),
            ] {
                if given {
                    return Err(DevError::NotForTransparency(flag));
                }
            }
            let claims = eservice::transparency_claims(
                &request.issuer,
                &audience,
                &request.subject,
                &jti,
                now,
                request.lifetime_secs,
            );
            (claims, TRANSPARENCY_TYP)
        }
    };
    eservice::sign(&claims, &alg, typ, &kid, &pem).map_err(|source| DevError::Sign { key, source })
}

/// `siirto dev peers`: which development configuration, and which records to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeersRequest {
    pub config: PathBuf,
    /// A directory of `STUDENT-ID.xml` files that every source serves; without it, every
    /// `siirto-v1` source serves the demo's record of [`DEMO_STUDENT`].
    pub records: Option<PathBuf>,
}

/// The records to serve, by student id: the files of `dir`, or the demo's record.
fn sample_records(dir: Option<&Path>) -> Result<BTreeMap<String, Vec<u8>>, DevError> {
    let Some(dir) = dir else {
        return Ok(BTreeMap::from([(
            DEMO_STUDENT.to_owned(),
            school_record(DEMO_STUDENT, false).into_bytes(),
        )]));
    };
    let mut records = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(read(dir))? {
        let path = entry.map_err(read(dir))?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("xml") {
            continue;
        }
        let Some(student) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        records.insert(
            student.to_owned(),
            std::fs::read(&path).map_err(read(&path))?,
        );
    }
    if records.is_empty() {
        return Err(DevError::Records {
            path: dir.to_owned(),
            reason: "no STUDENT-ID.xml files to serve".to_owned(),
        });
    }
    Ok(records)
}

/// The running peers of `siirto dev peers`.
pub struct DevPeers {
    peers: Peers,
    /// What each source serves, and its format, by participant id.
    served: BTreeMap<String, (Format, Vec<String>)>,
    /// Participants with an endpoint but no development server certificate: not served.
    skipped: Vec<String>,
    shutdown: ShutdownTrigger,
}

impl std::fmt::Debug for DevPeers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevPeers")
            .field("served", &self.served.keys())
            .finish_non_exhaustive()
    }
}

/// Binds every source's and destination's address from the configuration, and serves them with
/// their development server certificates (`DIR/certs/participants/ID-server.pem`).
pub async fn start_peers(request: &PeersRequest) -> Result<DevPeers, DevError> {
    let config = Config::load(&request.config)?;
    let layout = Layout::new(&config_dir(&request.config));
    let records = sample_records(request.records.as_deref())?;
    let mut listeners = HashMap::new();
    let mut skipped = Vec::new();
    let mut formats = BTreeMap::new();
    for p in config.directory.iter() {
        let Some(endpoint) = &p.endpoint else {
            continue;
        };
        if !layout.participant_server(&p.id).cert.exists() {
            skipped.push(p.id.clone());
            continue;
        }
        let host = endpoint.host.trim_start_matches('[').trim_end_matches(']');
        let listener = TcpListener::bind((host, endpoint.port))
            .await
            .map_err(|source| DevError::Listen {
                participant: p.id.clone(),
                base_url: endpoint.base_url.clone(),
                addr: format!("{}:{}", endpoint.host, endpoint.port),
                source,
            })?;
        listeners.insert(p.id.clone(), listener);
        formats.insert(p.id.clone(), endpoint.format);
    }
    let (shutdown, signal) = Shutdown::new();
    let peers = spawn_peers(&config.directory, &layout, listeners, None, &signal)?;
    let mut served = BTreeMap::new();
    for (id, source) in &peers.sources {
        let format = formats.get(id).copied().unwrap_or(Format::SiirtoV1);
        // The demo's record is siirto-v1; files given are served whatever the format.
        if request.records.is_none() && format != Format::SiirtoV1 {
            served.insert(id.clone(), (format, Vec::new()));
            continue;
        }
        for (student, document) in &records {
            source.insert(student, document.clone());
        }
        served.insert(id.clone(), (format, records.keys().cloned().collect()));
    }
    Ok(DevPeers {
        peers,
        served,
        skipped,
        shutdown,
    })
}

impl DevPeers {
    pub fn sources(&self) -> &HashMap<String, Source> {
        &self.peers.sources
    }

    pub fn destinations(&self) -> &HashMap<String, Destination> {
        &self.peers.destinations
    }

    /// What is served where, one line each: sources with the student ids they have records
    /// for, destinations, participants not served.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (id, (format, students)) in &self.served {
            let url = self.peers.sources.get(id).map(Source::base_url);
            let _ = writeln!(
                out,
                "source       {id:<10} {:<24} {format:<9}  records for: {}",
                url.unwrap_or_default(),
                if students.is_empty() {
                    "(none)".to_owned()
                } else {
                    students.join(", ")
                }
            );
        }
        let destinations: BTreeMap<_, _> = self.peers.destinations.iter().collect();
        for (id, destination) in destinations {
            let _ = writeln!(
                out,
                "destination  {id:<10} {:<24} POST /records",
                destination.base_url()
            );
        }
        for id in &self.skipped {
            let _ = writeln!(
                out,
                "not served   {id:<10} (no development server certificate for it)"
            );
        }
        out
    }

    /// Stops serving; returns what each destination received, one line per request.
    pub fn stop(self) -> String {
        self.shutdown.trigger();
        let mut out = String::new();
        let destinations: BTreeMap<_, _> = self.peers.destinations.iter().collect();
        for (id, destination) in destinations {
            for r in destination.requests() {
                let _ = writeln!(
                    out,
                    "{id} received {} bytes of {} (Idempotency-Key {}) and answered {}",
                    r.body.len(),
                    r.content_type,
                    r.idempotency_key,
                    r.status
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{Ports, init};
    use siirto_core::config::SchemaPaths;

    fn dev_dir() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = init(
            &dir.path().join("dev"),
            Ports::Free,
            &SchemaPaths::default(),
        )
        .expect("pki init");
        (dir, pki.config)
    }

    fn request(config: &Path) -> SignRequest {
        SignRequest {
            config: config.to_owned(),
            kind: TokenKind::Authorization,
            issuer: crate::pki::DEV_ISSUER_ID.to_owned(),
            audience: None,
            subject: DEMO_STUDENT.to_owned(),
            source: Some("turku".to_owned()),
            destination: Some("espoo".to_owned()),
            scope: None,
            purpose: None,
            lifetime_secs: DEFAULT_LIFETIME_SECS,
            kid: None,
            key: None,
            jti: Some("j-1".to_owned()),
            basis: None,
            guardian: None,
            birthdate: None,
            consent_lang: None,
        }
    }

    fn claims_of(token: &str) -> (Value, Value) {
        use base64::Engine;
        let part = |i: usize| -> Value {
            let b64 = token.split('.').nth(i).expect("part");
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(b64)
                .expect("base64url");
            serde_json::from_slice(&bytes).expect("json")
        };
        (part(0), part(1))
    }

    #[test]
    fn signs_an_authorization_the_gateway_accepts_and_a_transparency_token() {
        let (_dir, config) = dev_dir();
        let token = sign(&request(&config)).expect("sign");
        let (header, claims) = claims_of(&token);
        let loaded = Config::load(&config).expect("config");
        let jwks = std::fs::read_to_string(&loaded.issuers[0].jwks).expect("jwks");
        let kid: Value = serde_json::from_str(&jwks).expect("json");
        assert_eq!(header["kid"], kid["keys"][0]["kid"]);
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["typ"], AUTHORIZATION_TYP);
        assert_eq!(claims["aud"], loaded.gateway.id.as_str());
        assert_eq!(claims["scope"], DEFAULT_SCOPE);
        assert_eq!(claims["purpose"], DEFAULT_PURPOSE);
        assert_eq!(claims["jti"], "j-1");
        assert_eq!(
            claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"),
            DEFAULT_LIFETIME_SECS
        );
        // The gateway's own checks accept it, from the e-service, with the configured JWKS.
        use siirto_core::authz::{IssuerKeys, Policy, verify_authorization, verify_transparency};
        let keys = IssuerKeys::load(&loaded.issuers).expect("keys");
        let policy = Policy::from_config(&loaded.gateway, loaded.consent);
        let caller = loaded.directory.get("eservice").expect("eservice");
        let texts = siirto_gateway::http::pages::consent_catalog();
        let verified = verify_authorization(
            &token,
            &keys,
            &policy,
            &loaded.directory,
            texts,
            caller,
            SystemClock.now(),
        )
        .expect("the gateway accepts it");
        assert_eq!(claims["consent_lang"], "fi");
        assert_eq!(
            verified.consent().map(|c| c.version.as_str()),
            Some(texts.current().version())
        );
        assert_eq!(verified.source(), "turku");
        assert_eq!(verified.destination(), "espoo");

        let mut transparency = request(&config);
        transparency.kind = TokenKind::Transparency;
        transparency.source = None;
        transparency.destination = None;
        let token = sign(&transparency).expect("sign");
        let (header, claims) = claims_of(&token);
        assert_eq!(header["typ"], TRANSPARENCY_TYP);
        assert_eq!(claims["scope"], "transparency");
        verify_transparency(&token, &keys, &policy, SystemClock.now())
            .expect("the gateway accepts it");
    }

    #[test]
    fn a_guardian_or_a_statutory_basis_is_signed_as_asked() {
        let (_dir, config) = dev_dir();
        let mut r = request(&config);
        r.guardian = Some("010180-1232".to_owned());
        r.consent_lang = Some(Lang::Sv);
        let (_, claims) = claims_of(&sign(&r).expect("sign"));
        assert_eq!(
            claims["act"],
            serde_json::json!({"sub": "010180-1232", "role": "guardian"})
        );
        assert_eq!(claims["consent_lang"], "sv");
        assert_eq!(claims.get("basis"), None);

        // By law to Helsinki: no consent text unless a language is asked for.
        let mut r = request(&config);
        r.destination = Some("helsinki".to_owned());
        r.basis = Some("statutory".to_owned());
        let (_, claims) = claims_of(&sign(&r).expect("sign"));
        assert_eq!(claims["basis"], "statutory");
        assert_eq!(claims.get("consent_sha256"), None);
        r.consent_lang = Some(Lang::En);
        let (_, claims) = claims_of(&sign(&r).expect("sign"));
        assert_eq!(claims["consent_lang"], "en");
        assert_eq!(
            claims["consent_sha256"].as_str().map(str::len),
            Some(64),
            "{claims}"
        );
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let (_dir, config) = dev_dir();
        let mut r = request(&config);
        r.destination = None;
        assert_eq!(
            sign(&r).expect_err("no dst").to_string(),
            "an authorization needs --dst"
        );
        let mut r = request(&config);
        r.kid = Some("nope".to_owned());
        let e = sign(&r).expect_err("unknown kid").to_string();
        assert!(
            e.contains("issuer.jwks.json: no key with kid \"nope\""),
            "{e}"
        );
        let mut r = request(&config);
        r.issuer = "https://elsewhere.test".to_owned();
        let e = sign(&r).expect_err("unknown issuer").to_string();
        assert!(
            e.contains("no [[issuers]] entry with id \"https://elsewhere.test\""),
            "{e}"
        );
        let mut r = request(&config);
        r.kind = TokenKind::Transparency;
        r.destination = None;
        assert_eq!(
            sign(&r).expect_err("src on transparency").to_string(),
            "a transparency token's scope is always `transparency`: leave out --src"
        );
    }

    #[tokio::test]
    async fn peers_serve_the_directory_with_the_demo_record_and_name_a_taken_port() {
        let (_dir, config) = dev_dir();
        let peers = start_peers(&PeersRequest {
            config: config.clone(),
            records: None,
        })
        .await
        .expect("peers");
        let described = peers.describe();
        for id in ["turku", "espoo", "helsinki", "oulu"] {
            assert!(peers.sources().contains_key(id), "{described}");
            assert!(peers.destinations().contains_key(id), "{described}");
        }
        assert!(
            described.contains(&format!("records for: {DEMO_STUDENT}")),
            "{described}"
        );
        // A second set on the same configuration finds its ports taken and names the peer.
        let again = start_peers(&PeersRequest {
            config: config.clone(),
            records: None,
        })
        .await
        .expect_err("ports taken")
        .to_string();
        assert!(
            again.starts_with("cannot listen on 127.0.0.1:") && again.contains("for participant "),
            "{again}"
        );
        assert_eq!(peers.stop(), "");
    }

    #[test]
    fn the_sample_record_file_is_the_demo_record() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/records")
            .join(format!("{DEMO_STUDENT}.xml"));
        let text = std::fs::read_to_string(&file).expect("the sample record");
        assert_eq!(text, school_record(DEMO_STUDENT, false));
        let served = sample_records(file.parent()).expect("records");
        assert_eq!(served, sample_records(None).expect("records"));
    }

    #[test]
    fn records_come_from_a_directory_of_student_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = sample_records(Some(dir.path()))
            .expect_err("empty")
            .to_string();
        assert!(e.ends_with("no STUDENT-ID.xml files to serve"), "{e}");
        std::fs::write(dir.path().join("010101A123B.xml"), "<r/>").expect("write");
        std::fs::write(dir.path().join("notes.txt"), "x").expect("write");
        let records = sample_records(Some(dir.path())).expect("records");
        assert_eq!(
            records.into_iter().collect::<Vec<_>>(),
            vec![("010101A123B".to_owned(), b"<r/>".to_vec())]
        );
    }
}

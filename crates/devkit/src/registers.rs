//! The national registers as in-test peers: KOSKI's luovutuspalvelu ([`KoskiPeer`]) and VIRTA's
//! SOAP service ([`VirtaSoapPeer`]), real mTLS servers speaking each protocol as its published
//! description does (`../shared/corpus/koski/rajapinnat_luovutuspalvelu.md`,
//! `../shared/corpus/virta/wsdl/opiskelijatiedot.wsdl`), and [`koski_pupil`], a KOSKI oppija
//! document of a made-up pupil shaped like KOSKI's own.
//!
//! Each peer checks a request as the real service would before answering it, and records
//! what it refused and why ([`RegisterRequest::refused`]):
//! - KOSKI: `POST`, the path `{koski_path}/hetu` or `/oid`, no query string,
//!   `Content-Type: application/json`, a JSON object with exactly `v` = 1, `hetu` (a valid
//!   henkilötunnus) or `oid` (a learner number), and `opiskeluoikeudenTyypit` (at least one,
//!   each a code of `opiskeluoikeudentyyppi`). A refusal is KOSKI's: 400/404/405/415 with
//!   `[{"key", "message"}]`. A person unknown, or with nothing of the asked types: 404
//!   `notFound.oppijaaEiLöydyTaiEiOikeuksia`. The answer holds only the asked types.
//! - VIRTA: `POST` to the endpoint's path, `Content-Type: text/xml`, `SOAPAction: ""`, and an
//!   envelope valid against the WSDL's own types (its two inline schemas, compiled by the
//!   project's XSD engine under a SOAP 1.1 envelope whose Body must hold one element of the
//!   `luku` namespace), whose payload is `OpiskelijanKaikkiTiedotRequest` with the `Kutsuja`
//!   the peer was given. A refusal is a SOAP 1.1 Client fault (HTTP 500) as Spring-WS sends
//!   it, with `ValidationError` details for an invalid envelope. A person unknown: the empty
//!   `OpiskelijanKaikkiTiedotResponse`.
//!
//! Both can be told to misbehave (error statuses a number of times, faults, raw bodies) for the
//! gateway's failure tests. Test data only; never run them with real records.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};
use rustls::ServerConfig;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use siirto_core::admission::AdmissionLimits;
use siirto_core::protocol::{VirtaCaller, is_koski_type};
use siirto_core::student_id::{self, StudentId, StudentIdKind};
use siirto_gateway::server::{ResponseFuture, ServerLimits, Shutdown, serve_tls};
use siirto_xsd::Limits;
use siirto_xsd::schema::{Schema, ValidationFailure};

/// KOSKI's "not found" error key.
pub const KOSKI_NOT_FOUND: &str = "notFound.oppijaaEiLöydyTaiEiOikeuksia";
const SOAP_ENVELOPE: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const LUKU: &str = "http://tietovaranto.csc.fi/luku";
/// Largest request body a register peer reads.
const MAX_REQUEST: usize = 1024 * 1024;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Why a register peer could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("{}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the WSDL {}: {problem}", path.display())]
    Wsdl {
        path: std::path::PathBuf,
        problem: String,
    },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// One request a register peer received, and how it answered.
#[derive(Debug, Clone)]
pub struct RegisterRequest {
    pub method: String,
    /// Path and query as sent.
    pub target: String,
    /// Every header, names lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub status: u16,
    /// Why the peer refused the request's shape, as the real service would; `None` when the
    /// request was as the documentation describes.
    pub refused: Option<String>,
}

impl RegisterRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How a register peer misbehaves.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RegisterBehaviour {
    /// Answer as the documentation says.
    #[default]
    Normal,
    /// Answer the next `times` well-formed requests with `status` and the protocol's error
    /// (KOSKI: `[{"key": key, …}]`; VIRTA: a SOAP fault whose `faultcode` is `key`, `Client`
    /// or `Server`, and whose `faultstring` is `message`), then normally. `u32::MAX`: always.
    Fail {
        status: u16,
        key: String,
        message: String,
        times: u32,
    },
    /// Answer with this status and these bytes (the protocol's content type), whoever is asked
    /// about.
    Body(u16, Vec<u8>),
    /// Answer with this status and no body.
    Status(u16),
}

impl RegisterBehaviour {
    /// Fails every request with `status` and `key`.
    pub fn always(status: u16, key: &str, message: &str) -> RegisterBehaviour {
        RegisterBehaviour::Fail {
            status,
            key: key.to_owned(),
            message: message.to_owned(),
            times: u32::MAX,
        }
    }

    /// Takes one failure, if this behaviour has one left: `(status, key, message)`.
    fn take(&mut self) -> Option<(u16, String, String)> {
        let RegisterBehaviour::Fail {
            status,
            key,
            message,
            times,
        } = self
        else {
            return None;
        };
        let failure = (*status, key.clone(), message.clone());
        if *times != u32::MAX {
            *times -= 1;
            if *times == 0 {
                *self = RegisterBehaviour::Normal;
            }
        }
        Some(failure)
    }
}

fn response(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// A request read whole (bodies beyond 1 MiB are cut).
struct Received {
    method: Method,
    path: String,
    query: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

async fn receive(req: Request<hyper::body::Incoming>) -> Received {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let headers = req
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = Limited::new(req.into_body(), MAX_REQUEST)
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    Received {
        method,
        path,
        query,
        headers,
        body,
    }
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn target(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }
}

/// Serves `answer` over mTLS on `listener` until `shutdown`.
fn serve<F>(listener: TcpListener, tls: Arc<ServerConfig>, shutdown: Shutdown, answer: Arc<F>)
where
    F: Fn(Request<hyper::body::Incoming>) -> ResponseFuture + Send + Sync + 'static,
{
    tokio::spawn(serve_tls(
        listener,
        tls,
        ServerLimits {
            admission: AdmissionLimits::global_only(1024),
            ..ServerLimits::default()
        },
        move |_conn| {
            let answer = answer.clone();
            move |req: Request<hyper::body::Incoming>| answer(req)
        },
        None,
        shutdown,
    ));
}

// ---------------------------------------------------------------------------------------------
// KOSKI

#[derive(Default)]
struct KoskiState {
    /// Oppija documents by henkilötunnus and by learner number.
    oppijat: Mutex<HashMap<String, Value>>,
    behaviour: Mutex<RegisterBehaviour>,
    requests: Mutex<Vec<RegisterRequest>>,
}

/// KOSKI's luovutuspalvelu v1 (`POST {koski_path}/hetu`, `/oid`).
#[derive(Clone)]
pub struct KoskiPeer {
    pub addr: SocketAddr,
    path: String,
    state: Arc<KoskiState>,
}

impl KoskiPeer {
    /// Serves KOSKI's release endpoints under `path` (a participant's `koski_path`).
    pub fn spawn(
        listener: TcpListener,
        tls: Arc<ServerConfig>,
        path: &str,
        shutdown: Shutdown,
    ) -> std::io::Result<KoskiPeer> {
        let addr = listener.local_addr()?;
        let state = Arc::new(KoskiState::default());
        let (s, p) = (state.clone(), path.to_owned());
        serve(
            listener,
            tls,
            shutdown,
            Arc::new(
                move |req: Request<hyper::body::Incoming>| -> ResponseFuture {
                    let (s, p) = (s.clone(), p.clone());
                    Box::pin(async move { koski_answer(&s, &p, req).await })
                },
            ),
        );
        Ok(KoskiPeer {
            addr,
            path: path.to_owned(),
            state,
        })
    }

    pub fn base_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The release path it serves under.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Holds `oppija` (a KOSKI document `{"henkilö", "opiskeluoikeudet"}`) under its
    /// `henkilö.hetu` and `henkilö.oid`, or under `subject` when given.
    pub fn insert(&self, oppija: Value, subject: Option<&str>) {
        let mut keys: Vec<String> = ["hetu", "oid"]
            .iter()
            .filter_map(|k| oppija["henkilö"][k].as_str().map(str::to_owned))
            .collect();
        if let Some(s) = subject {
            keys = vec![s.to_owned()];
        }
        let mut map = lock(&self.state.oppijat);
        for k in keys {
            map.insert(k, oppija.clone());
        }
    }

    pub fn set_behaviour(&self, b: RegisterBehaviour) {
        *lock(&self.state.behaviour) = b;
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<RegisterRequest> {
        lock(&self.state.requests).clone()
    }
}

fn koski_errors(status: u16, key: &str, message: &str) -> Response<Full<Bytes>> {
    let body = json!([{"key": key, "message": message}]).to_string();
    response(status, "application/json; charset=utf-8", body)
}

/// KOSKI's refusal of a request's shape: the status, its error key, and why.
#[derive(Debug)]
struct KoskiRefusal {
    status: u16,
    key: &'static str,
    why: String,
}

/// Checks a request as KOSKI does; `Err` is KOSKI's refusal.
fn koski_check(r: &Received, path: &str) -> Result<(StudentId, Vec<String>), KoskiRefusal> {
    let refuse =
        |status: u16, key: &'static str, why: String| Err(KoskiRefusal { status, key, why });
    let endpoint = match r.path.strip_prefix(path) {
        Some("/hetu") => "hetu",
        Some("/oid") => "oid",
        _ => return refuse(404, "notFound", format!("no endpoint at {}", r.path)),
    };
    if r.method != Method::POST {
        return refuse(405, "methodNotAllowed", format!("method {}", r.method));
    }
    if r.query.is_some() {
        return refuse(400, "badRequest.queryParam", "a query string".into());
    }
    if !r
        .header("content-type")
        .is_some_and(|c| c.to_ascii_lowercase().starts_with("application/json"))
    {
        return refuse(
            415,
            "unsupportedMediaType.jsonOnly",
            format!("Content-Type {:?}", r.header("content-type")),
        );
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&r.body) else {
        return refuse(
            400,
            "badRequest.format.json",
            "the body is not a JSON object".into(),
        );
    };
    let mut names: Vec<&str> = body.keys().map(String::as_str).collect();
    names.sort_unstable();
    let mut expected = vec!["opiskeluoikeudenTyypit", "v", endpoint];
    expected.sort_unstable();
    if names != expected {
        return refuse(
            400,
            "badRequest.validation.jsonSchema",
            format!("fields {names:?}, expected {expected:?}"),
        );
    }
    if body["v"] != json!(1) {
        return refuse(400, "badRequest.queryParam", "Tuntematon versio".into());
    }
    let id = body[endpoint]
        .as_str()
        .and_then(|s| StudentId::parse(s).ok());
    let wanted = if endpoint == "hetu" {
        StudentIdKind::Henkilotunnus
    } else {
        StudentIdKind::LearnerOid
    };
    let Some(id) = id.filter(|id| id.kind() == wanted) else {
        return refuse(
            400,
            "badRequest.validation.henkilötiedot",
            format!("`{endpoint}` is not valid"),
        );
    };
    let types: Vec<String> = body["opiskeluoikeudenTyypit"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if types.is_empty() {
        return refuse(
            400,
            "badRequest.queryParam",
            "Opiskeluoikeuden tyypit puuttuvat".into(),
        );
    }
    if let Some(t) = types.iter().find(|t| !is_koski_type(t)) {
        return refuse(
            400,
            "badRequest.queryParam",
            format!("Tuntematon opiskeluoikeudentyyppi {t}"),
        );
    }
    Ok((id, types))
}

async fn koski_answer(
    s: &KoskiState,
    path: &str,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let r = receive(req).await;
    let (answer, refused) = match koski_check(&r, path) {
        Err(KoskiRefusal { status, key, why }) => (koski_errors(status, key, &why), Some(why)),
        Ok((id, types)) => {
            let behaviour = lock(&s.behaviour).take();
            let answer = if let Some((status, key, message)) = behaviour {
                koski_errors(status, &key, &message)
            } else {
                match lock(&s.behaviour).clone() {
                    RegisterBehaviour::Body(status, b) => response(status, "application/json", b),
                    RegisterBehaviour::Status(code) => response(code, "text/plain", ""),
                    _ => koski_found(s, &id, &types),
                }
            };
            (answer, None)
        }
    };
    lock(&s.requests).push(RegisterRequest {
        method: r.method.to_string(),
        target: r.target(),
        headers: r.headers.clone(),
        body: r.body.clone(),
        status: answer.status().as_u16(),
        refused,
    });
    answer
}

/// The person's document with only the asked types, or KOSKI's 404.
fn koski_found(s: &KoskiState, id: &StudentId, types: &[String]) -> Response<Full<Bytes>> {
    let not_found = || {
        koski_errors(
            404,
            KOSKI_NOT_FOUND,
            "Oppijaa ei löydy tai käyttäjällä ei ole oikeuksia tietojen katseluun.",
        )
    };
    let Some(mut oppija) = lock(&s.oppijat).get(id.as_str()).cloned() else {
        return not_found();
    };
    if let Some(rights) = oppija["opiskeluoikeudet"].as_array_mut() {
        rights.retain(|o| {
            o["tyyppi"]["koodiarvo"]
                .as_str()
                .is_some_and(|t| types.iter().any(|w| w == t))
        });
        if rights.is_empty() {
            return not_found();
        }
    }
    response(200, "application/json; charset=utf-8", oppija.to_string())
}

/// A KOSKI oppija document (the luovutuspalvelu answer) of a made-up pupil who finished basic
/// education, shaped like KOSKI's own perusopetus päättötodistus: `henkilö` with the birth date
/// the henkilötunnus encodes, one `perusopetus` study right (`lasna`, then `valmistunut`) at a
/// made-up school, its confirmed `perusopetuksenoppimaara` with subjects graded 4–10 and S, a
/// foreign language with its `kieli`, a local elective, and a special-support decision in
/// `lisätiedot`.
pub fn koski_pupil(hetu: &str, oid: &str) -> Value {
    let birth = student_id::birth_date(hetu)
        .map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}"))
        .unwrap_or_default();
    let school = json!({
        "oid": "1.2.246.562.10.10000000001",
        "oppilaitosnumero": {"koodiarvo": "09999", "koodistoUri": "oppilaitosnumero"},
        "nimi": {"fi": "Puolalanmäen koulu", "sv": "Puolalabackens skola", "en": "Puolalanmäki School"},
    });
    let code = |uri: &str, value: &str| json!({"koodiarvo": value, "koodistoUri": uri});
    let grade = |value: &str| {
        json!([{
            "arvosana": code("arviointiasteikkoyleissivistava", value),
            "hyväksytty": value != "4" && value != "H",
            "päivä": "2024-06-01",
        }])
    };
    let vvt = |n: f64| json!({"arvo": n, "yksikkö": code("opintojenlaajuusyksikko", "3")});
    let subject = |tunniste: &str, name: &str, hours: f64, value: &str| {
        json!({
            "tyyppi": code("suorituksentyyppi", "perusopetuksenoppiaine"),
            "koulutusmoduuli": {
                "tunniste": {"koodiarvo": tunniste, "koodistoUri": "koskioppiaineetyleissivistava", "nimi": {"fi": name}},
                "pakollinen": true,
                "laajuus": vvt(hours),
            },
            "arviointi": grade(value),
        })
    };
    let mut language = subject("A1", "A1-kieli", 16.0, "9");
    language["koulutusmoduuli"]["kieli"] =
        json!({"koodiarvo": "EN", "koodistoUri": "kielivalikoima", "nimi": {"fi": "englanti"}});
    let mut mother_tongue = subject("AI", "Äidinkieli ja kirjallisuus", 42.0, "8");
    mother_tongue["koulutusmoduuli"]["kieli"] =
        json!({"koodiarvo": "AI1", "koodistoUri": "oppiaineaidinkielijakirjallisuus"});
    let elective = json!({
        "tyyppi": code("suorituksentyyppi", "perusopetuksenoppiaine"),
        "koulutusmoduuli": {
            "tunniste": {"koodiarvo": "OHJ", "nimi": {"fi": "Ohjelmointi"}},
            "pakollinen": false,
            "laajuus": vvt(2.0),
        },
        "arviointi": grade("S"),
    });
    json!({
        "henkilö": {
            "oid": oid,
            "hetu": hetu,
            "syntymäaika": birth,
            "etunimet": "Maija Liisa",
            "kutsumanimi": "Maija",
            "sukunimi": "Meikäläinen",
            "turvakielto": false,
        },
        "opiskeluoikeudet": [{
            "oid": "1.2.246.562.15.10000000002",
            "versionumero": 3,
            "aikaleima": "2024-06-02T10:00:00.000000",
            "tyyppi": code("opiskeluoikeudentyyppi", "perusopetus"),
            "oppilaitos": school,
            "alkamispäivä": "2015-08-12",
            "päättymispäivä": "2024-06-01",
            "tila": {"opiskeluoikeusjaksot": [
                {"alku": "2015-08-12", "tila": code("koskiopiskeluoikeudentila", "lasna")},
                {"alku": "2024-06-01", "tila": code("koskiopiskeluoikeudentila", "valmistunut")},
            ]},
            "lisätiedot": {
                "erityisenTuenPäätökset": [{"alku": "2021-01-18", "loppu": "2024-06-01"}],
            },
            "suoritukset": [{
                "tyyppi": code("suorituksentyyppi", "perusopetuksenoppimaara"),
                "koulutusmoduuli": {"tunniste": code("koulutus", "201101"), "perusteenDiaarinumero": "104/011/2014"},
                "toimipiste": school,
                "vahvistus": {"päivä": "2024-06-01"},
                "suorituskieli": code("kieli", "FI"),
                "osasuoritukset": [
                    mother_tongue,
                    language,
                    subject("MA", "Matematiikka", 32.0, "9"),
                    subject("BI", "Biologia", 7.0, "8"),
                    subject("HI", "Historia", 7.0, "7"),
                    subject("LI", "Liikunta", 18.0, "9"),
                    subject("KU", "Kuvataide", 10.0, "S"),
                    elective,
                ],
            }],
        }],
    })
}

// ---------------------------------------------------------------------------------------------
// VIRTA SOAP

/// The WSDL's own types, compiled: a SOAP 1.1 envelope whose Body holds one element of the
/// `luku` namespace, validated strictly against the WSDL's first inline schema, which imports
/// the second (the VIRTA data schema). The schemas are cut out of the WSDL as written.
pub struct WsdlTypes {
    schema: Arc<Schema>,
    _dir: tempfile::TempDir,
}

/// A SOAP 1.1 envelope (Header optional, then Body with exactly one `luku` element), written
/// here: the WSDL names the envelope's namespace but does not carry its schema.
const ENVELOPE_XSD: &str = r###"<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"
           targetNamespace="http://schemas.xmlsoap.org/soap/envelope/"
           elementFormDefault="qualified">
  <xs:import namespace="http://tietovaranto.csc.fi/luku" schemaLocation="luku.xsd"/>
  <xs:element name="Envelope">
    <xs:complexType>
      <xs:sequence>
        <xs:element name="Header" minOccurs="0">
          <xs:complexType>
            <xs:sequence>
              <xs:any namespace="##other" processContents="lax" minOccurs="0" maxOccurs="unbounded"/>
            </xs:sequence>
          </xs:complexType>
        </xs:element>
        <xs:element name="Body">
          <xs:complexType>
            <xs:sequence>
              <xs:any namespace="http://tietovaranto.csc.fi/luku" processContents="strict"/>
            </xs:sequence>
          </xs:complexType>
        </xs:element>
      </xs:sequence>
    </xs:complexType>
  </xs:element>
</xs:schema>
"###;

impl WsdlTypes {
    /// Cuts the two inline schemas out of the WSDL at `wsdl` (the `luku` one's import of the
    /// VIRTA namespace gets the other's file as its `schemaLocation`) and compiles them under
    /// the envelope.
    pub fn load(wsdl: &Path) -> Result<WsdlTypes, RegisterError> {
        let text = std::fs::read_to_string(wsdl).map_err(|source| RegisterError::Read {
            path: wsdl.to_owned(),
            source,
        })?;
        let bad = |problem: &str| RegisterError::Wsdl {
            path: wsdl.to_owned(),
            problem: problem.to_owned(),
        };
        let mut schemas = Vec::new();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("<xs:schema") {
            let end = rest[start..]
                .find("</xs:schema>")
                .ok_or_else(|| bad("an xs:schema is not closed"))?
                + start
                + "</xs:schema>".len();
            schemas.push(&rest[start..end]);
            rest = &rest[end..];
        }
        let luku_target = format!("targetNamespace=\"{LUKU}\"");
        let data_target = "targetNamespace=\"urn:mace:funet.fi:virta/2015/09/01\"";
        let luku = schemas
            .iter()
            .find(|s| s[..s.find('>').unwrap_or(0)].contains(&luku_target))
            .ok_or_else(|| bad("no inline schema for the luku namespace"))?;
        let data = schemas
            .iter()
            .find(|s| s[..s.find('>').unwrap_or(0)].contains(data_target))
            .ok_or_else(|| bad("no inline schema for the VIRTA data namespace"))?;
        let import = "<xs:import namespace=\"urn:mace:funet.fi:virta/2015/09/01\"/>";
        if !luku.contains(import) {
            return Err(bad("the luku schema does not import the VIRTA namespace"));
        }
        let luku = luku.replacen(
            import,
            "<xs:import namespace=\"urn:mace:funet.fi:virta/2015/09/01\" schemaLocation=\"virta-data.xsd\"/>",
            1,
        );
        let dir = tempfile::Builder::new().prefix("siirto-wsdl-").tempdir()?;
        std::fs::write(dir.path().join("luku.xsd"), luku)?;
        std::fs::write(dir.path().join("virta-data.xsd"), data)?;
        let envelope = dir.path().join("envelope.xsd");
        std::fs::write(&envelope, ENVELOPE_XSD)?;
        let schema = Schema::load(&envelope).map_err(|e| bad(&e.to_string()))?;
        Ok(WsdlTypes { schema, _dir: dir })
    }

    /// Validates a whole envelope: `Err` holds the validator's messages, one per error.
    pub fn validate(&self, envelope: &[u8]) -> Result<(), Vec<String>> {
        self.schema
            .validate(envelope, &Limits::default())
            .map(|_| ())
            .map_err(|failure| match failure {
                ValidationFailure::Invalid(errors) => errors
                    .errors
                    .iter()
                    .map(|e| format!("line {}, column {}: {}", e.line, e.column, e.message))
                    .collect(),
                other => vec![other.to_string()],
            })
    }
}

struct VirtaState {
    /// `virta:Virta` documents by henkilötunnus or learner number.
    records: Mutex<HashMap<String, String>>,
    behaviour: Mutex<RegisterBehaviour>,
    requests: Mutex<Vec<RegisterRequest>>,
    caller: VirtaCaller,
    types: WsdlTypes,
}

/// VIRTA's SOAP service (`OpiskelijanKaikkiTiedot`) at one path.
#[derive(Clone)]
pub struct VirtaSoapPeer {
    pub addr: SocketAddr,
    path: String,
    state: Arc<VirtaState>,
}

impl VirtaSoapPeer {
    /// Serves the operation at `path`, accepting the credentials of `caller`, checking each
    /// envelope against the WSDL's types.
    pub fn spawn(
        listener: TcpListener,
        tls: Arc<ServerConfig>,
        path: &str,
        caller: VirtaCaller,
        types: WsdlTypes,
        shutdown: Shutdown,
    ) -> std::io::Result<VirtaSoapPeer> {
        let addr = listener.local_addr()?;
        let state = Arc::new(VirtaState {
            records: Mutex::default(),
            behaviour: Mutex::default(),
            requests: Mutex::default(),
            caller,
            types,
        });
        let (s, p) = (state.clone(), path.to_owned());
        serve(
            listener,
            tls,
            shutdown,
            Arc::new(
                move |req: Request<hyper::body::Incoming>| -> ResponseFuture {
                    let (s, p) = (s.clone(), p.clone());
                    Box::pin(async move { virta_answer(&s, &p, req).await })
                },
            ),
        );
        Ok(VirtaSoapPeer {
            addr,
            path: path.to_owned(),
            state,
        })
    }

    /// The endpoint URL (`https://host:port/path`).
    pub fn url(&self) -> String {
        format!("https://{}{}", self.addr, self.path)
    }

    /// Holds a VIRTA document (root `Virta`, with or without an XML declaration) for `subject`
    /// (a henkilötunnus or learner number); it is answered inside the response envelope.
    pub fn insert(&self, subject: &str, virta_document: &str) {
        lock(&self.state.records).insert(subject.to_owned(), virta_document.to_owned());
    }

    pub fn set_behaviour(&self, b: RegisterBehaviour) {
        *lock(&self.state.behaviour) = b;
    }

    pub fn requests(&self) -> Vec<RegisterRequest> {
        lock(&self.state.requests).clone()
    }
}

fn xml_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A SOAP 1.1 fault as Spring-WS writes it (HTTP 500 unless `status` says otherwise).
pub fn soap_fault(code: &str, string: &str, validation_errors: &[String]) -> String {
    let detail = if validation_errors.is_empty() {
        String::new()
    } else {
        let entries: String = validation_errors
            .iter()
            .map(|e| {
                format!(
                    "<spring-ws:ValidationError xmlns:spring-ws=\"http://springframework.org/spring-ws\">{}</spring-ws:ValidationError>",
                    xml_text(e)
                )
            })
            .collect();
        format!("<detail>{entries}</detail>")
    };
    format!(
        "<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"{SOAP_ENVELOPE}\"><SOAP-ENV:Header/><SOAP-ENV:Body><SOAP-ENV:Fault><faultcode>SOAP-ENV:{code}</faultcode><faultstring xml:lang=\"en\">{}</faultstring>{detail}</SOAP-ENV:Fault></SOAP-ENV:Body></SOAP-ENV:Envelope>",
        xml_text(string)
    )
}

/// The `OpiskelijanKaikkiTiedotResponse` envelope holding `virta` (a `Virta` document), or the
/// empty response VIRTA gives for an unknown person.
pub fn soap_response(virta: Option<&str>) -> String {
    let payload = virta.map_or_else(String::new, |doc| {
        let doc = doc.trim_start_matches('\u{feff}').trim_start();
        let doc = if doc.starts_with("<?xml") {
            doc.find("?>").map_or(doc, |i| &doc[i + 2..])
        } else {
            doc
        };
        doc.trim().to_owned()
    });
    format!(
        "<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"{SOAP_ENVELOPE}\">\n    <SOAP-ENV:Header/>\n    <SOAP-ENV:Body>\n        <virtaluku:OpiskelijanKaikkiTiedotResponse xmlns:virtaluku=\"{LUKU}\">{payload}</virtaluku:OpiskelijanKaikkiTiedotResponse>\n    </SOAP-ENV:Body>\n</SOAP-ENV:Envelope>\n"
    )
}

/// What the payload of a well-formed, valid request asks: the criterion's value.
fn virta_check(s: &VirtaState, r: &Received, path: &str) -> Result<String, (u16, String, String)> {
    let client = |why: String| Err((500, "Client".to_owned(), why));
    if r.path != path {
        return Err((404, String::new(), format!("no endpoint at {}", r.path)));
    }
    if r.method != Method::POST {
        return Err((405, String::new(), format!("method {}", r.method)));
    }
    if !r
        .header("content-type")
        .is_some_and(|c| c.to_ascii_lowercase().starts_with("text/xml"))
    {
        return Err((
            415,
            String::new(),
            format!("Content-Type {:?}", r.header("content-type")),
        ));
    }
    if r.header("soapaction") != Some("\"\"") {
        return client(format!(
            "SOAPAction {:?}, the WSDL's is \"\"",
            r.header("soapaction")
        ));
    }
    if let Err(errors) = s.types.validate(&r.body) {
        return Err((
            500,
            "Client".into(),
            format!("Validation error\n{}", errors.join("\n")),
        ));
    }
    let root = siirto_xsd::dom::parse(&r.body, &Limits::default())
        .map_err(|e| (500, "Client".to_owned(), e.to_string()))?;
    let Some(request) = root.child("Body").and_then(|b| b.elements().next()) else {
        return client("no payload".into());
    };
    if request.local != "OpiskelijanKaikkiTiedotRequest" {
        return client(format!(
            "operation {}, not OpiskelijanKaikkiTiedot",
            request.local
        ));
    }
    let kutsuja = request.child("Kutsuja");
    let field = |name: &str| kutsuja.and_then(|k| k.child(name)).map(|e| e.text());
    if field("jarjestelma").as_deref() != Some(s.caller.jarjestelma())
        || field("tunnus").as_deref() != Some(s.caller.tunnus())
        || field("avain").as_deref() != Some(s.caller.avain())
    {
        return client("Kutsuja not recognised".into());
    }
    let hakuehdot = request.child("Hakuehdot");
    hakuehdot
        .and_then(|h| {
            h.child_text("henkilotunnus")
                .or_else(|| h.child_text("kansallinenOppijanumero"))
        })
        .map_or_else(|| client("no search criterion".into()), Ok)
}

async fn virta_answer(
    s: &VirtaState,
    path: &str,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let r = receive(req).await;
    let xml = "text/xml; charset=utf-8";
    let (answer, refused) = match virta_check(s, &r, path) {
        Err((status, code, why)) => {
            let answer = if code.is_empty() {
                response(status, "text/plain", why.clone())
            } else {
                let (string, details) = why.split_once('\n').unwrap_or((why.as_str(), ""));
                let details: Vec<String> = details.lines().map(str::to_owned).collect();
                response(status, xml, soap_fault(&code, string, &details))
            };
            (answer, Some(why))
        }
        Ok(subject) => {
            let failure = lock(&s.behaviour).take();
            let answer = if let Some((status, code, string)) = failure {
                response(status, xml, soap_fault(&code, &string, &[]))
            } else {
                match lock(&s.behaviour).clone() {
                    RegisterBehaviour::Body(status, b) => response(status, xml, b),
                    RegisterBehaviour::Status(code) => response(code, "text/plain", ""),
                    _ => {
                        let record = lock(&s.records).get(&subject).cloned();
                        response(200, xml, soap_response(record.as_deref()))
                    }
                }
            };
            (answer, None)
        }
    };
    lock(&s.requests).push(RegisterRequest {
        method: r.method.to_string(),
        target: r.target(),
        headers: r.headers.clone(),
        body: r.body.clone(),
        status: answer.status().as_u16(),
        refused,
    });
    answer
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Where the corpus is; each test that reads it first skips loudly when it is absent.
    fn corpus() -> std::path::PathBuf {
        siirto_testsupport::corpus_location()
    }

    #[test]
    fn the_wsdl_types_accept_the_real_request_shape_and_refuse_others() {
        if siirto_testsupport::corpus().is_none() {
            return;
        }
        let types = WsdlTypes::load(&corpus().join("virta/wsdl/opiskelijatiedot.wsdl"))
            .expect("the WSDL's types compile");
        let real = std::fs::read(corpus().join("virta/wsdl/virtareq.xml")).expect("read");
        types.validate(&real).expect("the real request is valid");
        let text = String::from_utf8(real).expect("utf-8");
        let kaikki = text.replace("OpintosuorituksetRequest", "OpiskelijanKaikkiTiedotRequest");
        types
            .validate(kaikki.as_bytes())
            .expect("OpiskelijanKaikkiTiedot");
        let both = text.replace(
            "<!-- <luku:kansallinenOppijanumero>?</luku:kansallinenOppijanumero> -->",
            "<luku:kansallinenOppijanumero>1.2.3</luku:kansallinenOppijanumero>",
        );
        let errors = types.validate(both.as_bytes()).expect_err("both criteria");
        assert!(
            errors.iter().any(|e| e.contains("kansallinenOppijanumero")),
            "{errors:?}"
        );
        let unqualified = text
            .replace("<luku:tunnus>", "<tunnus>")
            .replace("</luku:tunnus>", "</tunnus>");
        assert!(types.validate(unqualified.as_bytes()).is_err());
        let long = text.replace("salaisuus", &"x".repeat(101));
        assert!(
            types.validate(long.as_bytes()).is_err(),
            "avain maxLength 100"
        );
        let foreign = text.replace(
            "xmlns:luku=\"http://tietovaranto.csc.fi/luku\"",
            "xmlns:luku=\"urn:other\"",
        );
        assert!(types.validate(foreign.as_bytes()).is_err());
    }

    #[test]
    fn the_generated_pupil_reads_as_koski() {
        let hetu = "150608A123J";
        let doc = koski_pupil(hetu, "1.2.246.562.24.10000000008");
        let subject = StudentId::parse(hetu).expect("valid");
        let bytes = doc.to_string().into_bytes();
        let (record, report) = siirto_core::formats::koski::read_bytes(
            &bytes,
            &siirto_core::formats::json_in::JsonLimits::default(),
            &subject,
        )
        .expect("reads");
        assert_eq!(
            record.achievements.len(),
            9,
            "the oppimäärä and its 8 subjects"
        );
        assert_eq!(
            record.student.birth_date.map(|d| d.to_string()).as_deref(),
            Some("2008-06-15")
        );
        assert_eq!(record.support_decisions.len(), 1, "the support decision");
        assert!(
            report.not_understood.is_empty(),
            "{:?}",
            report.not_understood
        );
    }

    fn received(method: Method, target: &str, headers: &[(&str, &str)], body: &str) -> Received {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
            None => (target.to_owned(), None),
        };
        Received {
            method,
            path,
            query,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn koski_refuses_what_its_documentation_does_not_describe() {
        let path = "/koski/api/luovutuspalvelu";
        let json = [("content-type", "application/json")];
        let good = r#"{"v": 1, "hetu": "131052-308T", "opiskeluoikeudenTyypit": ["perusopetus"]}"#;
        let ok = received(Method::POST, &format!("{path}/hetu"), &json, good);
        let (id, types) = koski_check(&ok, path).expect("the documented request");
        assert_eq!(
            (id.as_str(), types),
            ("131052-308T", vec!["perusopetus".to_owned()])
        );
        let oid = r#"{"v": 1, "oid": "1.2.246.562.24.10000000008", "opiskeluoikeudenTyypit": ["perusopetus"]}"#;
        assert!(
            koski_check(
                &received(Method::POST, &format!("{path}/oid"), &json, oid),
                path
            )
            .is_ok()
        );
        let cases: Vec<(Received, u16)> = vec![
            (
                received(Method::GET, &format!("{path}/hetu"), &json, good),
                405,
            ),
            (received(Method::POST, "/koski/api/hetu", &json, good), 404),
            (
                received(
                    Method::POST,
                    &format!("{path}/hetu?hetu=131052-308T"),
                    &json,
                    good,
                ),
                400,
            ),
            (
                received(
                    Method::POST,
                    &format!("{path}/hetu"),
                    &[("content-type", "text/plain")],
                    good,
                ),
                415,
            ),
            (
                received(
                    Method::POST,
                    &format!("{path}/hetu"),
                    &json,
                    &good.replace("\"v\": 1", "\"v\": 2"),
                ),
                400,
            ),
            (
                received(
                    Method::POST,
                    &format!("{path}/hetu"),
                    &json,
                    &good.replace("perusopetus", "peruskoulu"),
                ),
                400,
            ),
            (
                received(
                    Method::POST,
                    &format!("{path}/hetu"),
                    &json,
                    &good.replace("[\"perusopetus\"]", "[]"),
                ),
                400,
            ),
            (
                received(
                    Method::POST,
                    &format!("{path}/hetu"),
                    &json,
                    &good.replace("308T", "308X"),
                ),
                400,
            ),
            (
                received(Method::POST, &format!("{path}/oid"), &json, good),
                400,
            ),
            (
                received(
                    Method::POST,
                    &format!("{path}/hetu"),
                    &json,
                    &good.replace("{", "{\"transfer\": \"t\", "),
                ),
                400,
            ),
            (
                received(Method::POST, &format!("{path}/hetu"), &json, "[]"),
                400,
            ),
        ];
        for (request, status) in cases {
            let Err(refusal) = koski_check(&request, path) else {
                panic!("accepted: {} {}", request.method, request.target());
            };
            assert_eq!(refusal.status, status, "{}", refusal.why);
        }
    }

    #[test]
    fn virta_refuses_what_its_wsdl_does_not_describe() {
        if siirto_testsupport::corpus().is_none() {
            return;
        }
        let caller = VirtaCaller::new("emrextesti", "emrextesti", "salaisuus").expect("caller");
        let state = VirtaState {
            records: Mutex::default(),
            behaviour: Mutex::default(),
            requests: Mutex::default(),
            caller,
            types: WsdlTypes::load(&corpus().join("virta/wsdl/opiskelijatiedot.wsdl"))
                .expect("wsdl"),
        };
        let real = std::fs::read_to_string(corpus().join("virta/wsdl/virtareq.xml")).expect("read");
        let kaikki = real.replace("OpintosuorituksetRequest", "OpiskelijanKaikkiTiedotRequest");
        let path = "/luku/OpiskelijanTiedot";
        let headers = [
            ("content-type", "text/xml; charset=utf-8"),
            ("soapaction", "\"\""),
        ];
        let ok = received(Method::POST, path, &headers, &kaikki);
        assert_eq!(
            virta_check(&state, &ok, path).expect("valid"),
            "010283-9123"
        );
        let cases: Vec<(Received, u16, &str)> = vec![
            (received(Method::GET, path, &headers, &kaikki), 405, ""),
            (received(Method::POST, "/luku", &headers, &kaikki), 404, ""),
            (
                received(
                    Method::POST,
                    path,
                    &[
                        ("content-type", "application/soap+xml"),
                        ("soapaction", "\"\""),
                    ],
                    &kaikki,
                ),
                415,
                "",
            ),
            (
                received(Method::POST, path, &[("content-type", "text/xml")], &kaikki),
                500,
                "SOAPAction",
            ),
            (
                received(
                    Method::POST,
                    path,
                    &[
                        ("content-type", "text/xml"),
                        ("soapaction", "OpiskelijanKaikkiTiedot"),
                    ],
                    &kaikki,
                ),
                500,
                "SOAPAction",
            ),
            (
                received(Method::POST, path, &headers, &real),
                500,
                "operation",
            ),
            (
                received(
                    Method::POST,
                    path,
                    &headers,
                    &kaikki.replace("salaisuus", "arvaus"),
                ),
                500,
                "Kutsuja",
            ),
            (
                received(
                    Method::POST,
                    path,
                    &headers,
                    &kaikki
                        .replace("<luku:tunnus>", "<tunnus>")
                        .replace("</luku:tunnus>", "</tunnus>"),
                ),
                500,
                "Validation error",
            ),
        ];
        for (request, status, says) in cases {
            let Err((code, _, why)) = virta_check(&state, &request, path) else {
                panic!("accepted: {}", request.target());
            };
            assert_eq!(code, status, "{why}");
            assert!(why.contains(says), "{why}");
        }
    }

    #[test]
    fn responses_and_faults_are_soap_1_1() {
        let limits = Limits::default();
        let r = soap_response(Some(
            "<?xml version=\"1.0\"?>\n<Virta xmlns=\"urn:mace:funet.fi:virta/2015/09/01\"/>",
        ));
        let root = siirto_xsd::dom::parse(r.as_bytes(), &limits).expect("xml");
        assert_eq!(root.namespace.as_deref(), Some(SOAP_ENVELOPE));
        let f = soap_fault("Client", "Validation error", &["a < b".into()]);
        let root = siirto_xsd::dom::parse(f.as_bytes(), &limits).expect("xml");
        let fault = root
            .child("Body")
            .and_then(|b| b.child("Fault"))
            .expect("fault");
        assert_eq!(
            fault.child_text("faultcode").as_deref(),
            Some("SOAP-ENV:Client")
        );
        assert_eq!(fault.child("detail").map(|d| d.elements().count()), Some(1));
    }
}

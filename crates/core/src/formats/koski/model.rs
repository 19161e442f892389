//! KOSKI's oppija JSON as typed structures: the parts of KOSKI's data model (the Scala case
//! classes under `fi.oph.koski.schema`, served as `koski-oppija-schema.json`) that the reader
//! maps onto the record.
//!
//! Owns: the serde types and the list of KOSKI fields the reader knows but the record does not
//! carry ([`KNOWN_NOT_CARRIED`]). A member these types do not name is not an error (KOSKI adds
//! fields over time); `json_in::parse` hands its path to the reader, which reports it. A member
//! they name must have the documented type (a date `YYYY-MM-DD`, a boolean, a code value
//! object), or the document is refused with the line and column.
//!
//! Field names are KOSKI's, Finnish, with their letters (`henkilö`, `päivä`); the Rust names
//! spell them in ASCII.

use serde::Deserialize;

use crate::record::Date;

/// The luovutuspalvelu answer: one person and their study rights.
#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = "an oppija object {\"henkilö\", \"opiskeluoikeudet\"}")]
pub struct Oppija {
    #[serde(rename = "henkilö")]
    pub henkilo: Henkilo,
    pub opiskeluoikeudet: Vec<Opiskeluoikeus>,
}

/// `henkilö` (KOSKI `TäydellisetHenkilötiedot`; the luovutuspalvelu answer carries `oid`,
/// `hetu`, `syntymäaika` and `turvakielto`, an inserted document names instead).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(expecting = "a henkilö object")]
pub struct Henkilo {
    /// Oppijanumero.
    pub oid: Option<String>,
    /// Henkilötunnus.
    pub hetu: Option<String>,
    #[serde(rename = "syntymäaika")]
    pub syntymaaika: Option<Date>,
    pub etunimet: Option<String>,
    pub sukunimi: Option<String>,
    /// Code list `kieli`.
    #[serde(rename = "äidinkieli")]
    pub aidinkieli: Option<Koodi>,
    /// Code list `maatjavaltiot2` (ISO 3166-1 numeric).
    pub kansalaisuus: Option<Vec<Koodi>>,
    pub turvakielto: Option<bool>,
}

/// A localized text: `{"fi": …, "sv": …, "en": …}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(expecting = "a localized text {\"fi\", \"sv\", \"en\"}")]
pub struct Nimi {
    pub fi: Option<String>,
    pub sv: Option<String>,
    pub en: Option<String>,
}

/// A code value: `Koodistokoodiviite` (`koodiarvo` in the code list `koodistoUri`), or a local
/// code (`PaikallinenKoodi`: `koodiarvo` and `nimi`, no `koodistoUri`).
#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = "a code value {\"koodiarvo\", \"koodistoUri\"}")]
pub struct Koodi {
    pub koodiarvo: String,
    #[serde(rename = "koodistoUri")]
    pub koodisto_uri: Option<String>,
    pub nimi: Option<Nimi>,
    #[serde(rename = "koodistoVersio")]
    pub koodisto_versio: Option<u32>,
}

impl Koodi {
    /// Whether this is `value` in the code list `uri`.
    pub fn is(&self, uri: &str) -> bool {
        self.koodisto_uri.as_deref() == Some(uri)
    }
}

/// An organisation (`Oppilaitos`, `Toimipiste`, `OrganisaatioWithOid`).
#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = "an organisation object")]
pub struct Organisaatio {
    pub oid: Option<String>,
    /// Code list `oppilaitosnumero`.
    pub oppilaitosnumero: Option<Koodi>,
    pub nimi: Option<Nimi>,
}

/// One study right.
#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = "an opiskeluoikeus object")]
pub struct Opiskeluoikeus {
    pub oid: Option<String>,
    /// Code list `opiskeluoikeudentyyppi`.
    pub tyyppi: Koodi,
    pub oppilaitos: Option<Organisaatio>,
    #[serde(rename = "alkamispäivä")]
    pub alkamispaiva: Option<Date>,
    #[serde(rename = "päättymispäivä")]
    pub paattymispaiva: Option<Date>,
    pub tila: Tila,
    #[serde(rename = "lisätiedot")]
    pub lisatiedot: Option<Lisatiedot>,
    pub suoritukset: Vec<Suoritus>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = "a tila object {\"opiskeluoikeusjaksot\"}")]
pub struct Tila {
    pub opiskeluoikeusjaksot: Vec<Opiskeluoikeusjakso>,
}

/// A state period: from `alku` until the next period begins.
#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = "a state period {\"alku\", \"tila\"}")]
pub struct Opiskeluoikeusjakso {
    pub alku: Date,
    /// Code list `koskiopiskeluoikeudentila`.
    pub tila: Koodi,
}

/// A period with optional ends (`Aikajakso`, `ErityisenTuenPäätös`, `TehostetunTuenPäätös`,
/// `Tukijakso`).
#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = "a period {\"alku\", \"loppu\"}")]
pub struct Jakso {
    pub alku: Option<Date>,
    pub loppu: Option<Date>,
}

/// The study right's additional data: the support decisions (the rest is reported).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(expecting = "a lisätiedot object")]
pub struct Lisatiedot {
    /// Erityinen tuki, the older single field.
    #[serde(rename = "erityisenTuenPäätös")]
    pub erityisen_tuen_paatos: Option<Jakso>,
    #[serde(rename = "erityisenTuenPäätökset")]
    pub erityisen_tuen_paatokset: Option<Vec<Jakso>>,
    #[serde(rename = "tehostetunTuenPäätös")]
    pub tehostetun_tuen_paatos: Option<Jakso>,
    #[serde(rename = "tehostetunTuenPäätökset")]
    pub tehostetun_tuen_paatokset: Option<Vec<Jakso>>,
    #[serde(rename = "pidennettyOppivelvollisuus")]
    pub pidennetty_oppivelvollisuus: Option<Jakso>,
    /// Tuen päätöksen jaksot: the support decisions of the law in force from August 2025.
    #[serde(rename = "tuenPäätöksenJaksot")]
    pub tuen_paatoksen_jaksot: Option<Vec<Jakso>>,
}

/// A completion: a top-level suoritus (a syllabus, a degree, a grade year) or one of its parts
/// (`osasuoritukset`: a subject, a course, a module, a qualification unit).
#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = "a suoritus object")]
pub struct Suoritus {
    /// Code list `suorituksentyyppi`.
    pub tyyppi: Koodi,
    pub koulutusmoduuli: Koulutusmoduuli,
    #[serde(rename = "alkamispäivä")]
    pub alkamispaiva: Option<Date>,
    pub vahvistus: Option<Vahvistus>,
    /// Code list `kieli`.
    pub suorituskieli: Option<Koodi>,
    pub arviointi: Option<Vec<Arviointi>>,
    pub osasuoritukset: Option<Vec<Suoritus>>,
    pub toimipiste: Option<Organisaatio>,
    /// A grade year not passed: the pupil stays on the grade.
    #[serde(rename = "jääLuokalle")]
    pub jaa_luokalle: Option<bool>,
    /// The subject is studied to an individualised syllabus (a special-support measure).
    #[serde(rename = "yksilöllistettyOppimäärä")]
    pub yksilollistetty_oppimaara: Option<bool>,
}

/// What was studied.
#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = "a koulutusmoduuli object")]
pub struct Koulutusmoduuli {
    pub tunniste: Koodi,
    pub laajuus: Option<Laajuus>,
    /// The language of a language subject (code list `kielivalikoima`).
    pub kieli: Option<Koodi>,
}

/// An extent: `arvo` in the unit `yksikkö` (code list `opintojenlaajuusyksikko`).
#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = "an extent {\"arvo\", \"yksikkö\"}")]
pub struct Laajuus {
    pub arvo: f64,
    #[serde(rename = "yksikkö")]
    pub yksikko: Option<Koodi>,
}

/// The confirmation of a completion (the certificate's date and signers).
#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = "a vahvistus object {\"päivä\"}")]
pub struct Vahvistus {
    #[serde(rename = "päivä")]
    pub paiva: Date,
}

/// An assessment. When there are several, the last one is in force (a raised grade).
#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = "an arviointi object {\"arvosana\"}")]
pub struct Arviointi {
    pub arvosana: Koodi,
    #[serde(rename = "hyväksytty")]
    pub hyvaksytty: Option<bool>,
    #[serde(rename = "päivä")]
    pub paiva: Option<Date>,
}

/// KOSKI fields the reader knows and the record model does not carry, by the end of their
/// index-free path. A member not named by the types above that ends with one of these is
/// reported as not read from the source; any other as not understood.
pub const KNOWN_NOT_CARRIED: &[&str] = &[
    // henkilö
    "henkilö.kutsumanimi",
    // organisations and code values
    "oppilaitos.kotipaikka",
    "oppilaitos.tyyppi",
    "oppilaitosnumero.lyhytNimi",
    "toimipiste.kotipaikka",
    "toimipiste.tyyppi",
    "lyhytNimi",
    // opiskeluoikeus
    "opiskeluoikeudet[].versionumero",
    "opiskeluoikeudet[].aikaleima",
    "opiskeluoikeudet[].lähdejärjestelmänId",
    "opiskeluoikeudet[].lähdejärjestelmäkytkentäPurettu",
    "opiskeluoikeudet[].koulutustoimija",
    "opiskeluoikeudet[].arvioituPäättymispäivä",
    "opiskeluoikeudet[].ostettu",
    "opiskeluoikeudet[].sisältyyOpiskeluoikeuteen",
    "opiskeluoikeudet[].organisaatiohistoria",
    "opiskeluoikeudet[].mitätöity",
    "opiskeluoikeusjaksot[].opintojenRahoitus",
    "opiskeluoikeusjaksot[].loppu",
    // lisätiedot (other than support decisions)
    "lisätiedot.aloittanutEnnenOppivelvollisuutta",
    "lisätiedot.joustavaPerusopetus",
    "lisätiedot.kotiopetus",
    "lisätiedot.kotiopetusjaksot",
    "lisätiedot.koulukoti",
    "lisätiedot.kuljetusetu",
    "lisätiedot.majoitusetu",
    "lisätiedot.sisäoppilaitosmainenMajoitus",
    "lisätiedot.ulkomailla",
    "lisätiedot.ulkomaanjaksot",
    "lisätiedot.vaikeastiVammainen",
    "lisätiedot.vammainen",
    "lisätiedot.vuosiluokkiinSitoutumatonOpetus",
    "lisätiedot.perusopetuksenAloittamistaLykätty",
    "lisätiedot.tavoitekokonaisuuksittainOpiskelu",
    "lisätiedot.opetuksenJärjestäminenVammanSairaudenTaiRajoitteenPerusteella",
    "lisätiedot.toimintaAlueittainOpiskelu",
    "lisätiedot.maksuttomuus",
    "lisätiedot.oikeuttaMaksuttomuuteenPidennetty",
    "lisätiedot.hojks",
    "lisätiedot.osaAikaisuusjaksot",
    "lisätiedot.opiskeluvalmiuksiaTukevatOpinnot",
    "lisätiedot.erityinenTuki",
    "lisätiedot.vaativanErityisenTuenErityinenTehtävä",
    "lisätiedot.vankilaopetuksessa",
    "lisätiedot.koulutusvienti",
    "lisätiedot.pidennettyPäättymispäivä",
    "lisätiedot.oikeusMaksuttomaanAsuntolapaikkaan",
    "lisätiedot.erityisenKoulutustehtävänJaksot",
    // the parts of a support decision the record has no place for
    "erityisenTuenPäätös.opiskeleeToimintaAlueittain",
    "erityisenTuenPäätös.erityisryhmässä",
    "erityisenTuenPäätös.toteutuspaikka",
    "erityisenTuenPäätös.tukimuodot",
    "erityisenTuenPäätökset[].opiskeleeToimintaAlueittain",
    "erityisenTuenPäätökset[].erityisryhmässä",
    "erityisenTuenPäätökset[].toteutuspaikka",
    "erityisenTuenPäätökset[].tukimuodot",
    "tehostetunTuenPäätös.tukimuodot",
    "tehostetunTuenPäätökset[].tukimuodot",
    // suoritus (top level and parts)
    "suoritukset[].luokka",
    "suoritukset[].ryhmä",
    "suoritukset[].keskiarvo",
    "suoritukset[].kielikylpykieli",
    "suoritukset[].koulusivistyskieli",
    "suoritukset[].muutSuorituskielet",
    "suoritukset[].käyttäytymisenArvio",
    "suoritukset[].omanÄidinkielenOpinnot",
    "suoritukset[].puhviKoe",
    "suoritukset[].suullisenKielitaidonKokeet",
    "suoritukset[].lukiodiplomit2019",
    "suoritukset[].todistuksellaNäkyvätLisätiedot",
    "suoritukset[].oppimäärä",
    "suoritukset[].suoritustapa",
    "suoritukset[].järjestämismuodot",
    "suoritukset[].osaamisala",
    "suoritukset[].tutkintonimike",
    "suoritukset[].työssäoppimisjaksot",
    "suoritukset[].koulutussopimukset",
    "suoritukset[].osaAikainenErityisopetus",
    "suoritukset[].suoritettuErityisenäTutkintona",
    "suoritukset[].painotettuOpetus",
    "suoritukset[].rajattuOppimäärä",
    "suoritukset[].korotus",
    "suoritukset[].tutkinnonOsanRyhmä",
    "suoritukset[].näyttö",
    "suoritukset[].lisätiedot",
    "suoritukset[].tunnustettu",
    "suoritukset[].suoritettuLukiodiplomina",
    "suoritukset[].suoritettuSuullisenaKielikokeena",
    "suoritukset[].omanÄidinkielenArvosana",
    "suoritukset[].kokonaislaajuus",
    "suoritukset[].ryhmittelynTunniste",
    // the parts of a confirmation other than its date
    "vahvistus.paikkakunta",
    "vahvistus.myöntäjäOrganisaatio",
    "vahvistus.myöntäjäHenkilöt",
    // koulutusmoduuli
    "koulutusmoduuli.perusteenDiaarinumero",
    "koulutusmoduuli.pakollinen",
    "koulutusmoduuli.kuvaus",
    "koulutusmoduuli.oppimäärä",
    "koulutusmoduuli.koulutustyyppi",
    "koulutusmoduuli.tunniste.koodistoVersio",
    // arviointi
    "arviointi[].kuvaus",
    "arviointi[].arvioitsijat",
    "arviointi[].arvosana.koodistoVersio",
    // laajuus
    "laajuus.yksikkö.lyhytNimi",
];

/// Whether an index-free path is one of [`KNOWN_NOT_CARRIED`] or lies inside one: the entry
/// matches the end of the path at a segment boundary, or the end of a leading part of it. The
/// entries name `suoritukset[]` for completions at any depth (`osasuoritukset[]` too).
pub fn known_not_carried(path: &str) -> bool {
    let path = path.replace("osasuoritukset[]", "suoritukset[]");
    let at_boundary = |head: &str| head.is_empty() || head.ends_with('.');
    KNOWN_NOT_CARRIED.iter().any(|known| {
        path.match_indices(known).any(|(i, _)| {
            let rest = &path[i + known.len()..];
            at_boundary(&path[..i]) && (rest.is_empty() || rest.starts_with(['.', '[']))
        })
    })
}

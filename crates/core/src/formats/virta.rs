//! VIRTA, the national higher-education register's XML (`urn:mace:funet.fi:virta/2015/09/01`).
//!
//! Owns: reading a VIRTA document (`Virta`, `Opiskelijat`, or one of the item lists) into the
//! model for exactly one student, and writing the model as a `Virta` document with one
//! `Opiskelija`. Code values go through the tables in `codes` and `codelists`. What the model
//! does not carry is noted in the read report; what VIRTA cannot express is noted in the write
//! report. No IO, no schema validation.
//!
//! Subject binding: an `Opiskelija` is the subject when its `Henkilotunnus` or
//! `KansallinenOppijanumero` equals the authorization's `sub` (normalized). Item lists without
//! an `Opiskelija` name nobody and bind to nobody. Items nested under the chosen student must
//! carry its `avain` in `opiskelijaAvain`; a document that says otherwise is refused.

use crate::record::{
    Achievement, AchievementKind, AchievementStatus, CreditUnit, Credits, Date, Decimal, Grade,
    GradeScale, KnownUnit, LocalizedText, MobilityPeriod, PartRef, ProgrammePeriod, Provider,
    StatePeriod, Student, StudentRecord, StudyRight, TermRegistration, TypedId,
};
use crate::student_id::StudentId;
use siirto_xsd::dom::Element;

use super::codelists;
use super::codes::{self, CodeTable};
use super::report::{ReadReport, WriteReport};
use super::xml_in::Node;
use super::xml_out::XmlOut;
use super::{Format, FormatError, WriteContext};

pub const NAMESPACE: &str = "urn:mace:funet.fi:virta/2015/09/01";
const PREFIX: &str = "virta:";

/// The identifier type under which the model keeps VIRTA's student key (`Opiskelija/@avain`).
pub const STUDENT_KEY_TYPE: &str = "virta-avain";
/// The identifier type under which providers named by VIRTA codes are kept.
pub const PROVIDER_CODE_TYPE: &str = "oppilaitosnumero";

/// Item lists that can be a document root without naming a student.
const ITEM_LISTS: [&str; 4] = [
    "Opiskeluoikeudet",
    "LukukausiIlmoittautumiset",
    "Opintosuoritukset",
    "Liikkuvuusjaksot",
];

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

pub(crate) fn read(
    root: &Element,
    subject: &StudentId,
    report: &mut ReadReport,
) -> Result<StudentRecord, FormatError> {
    if root.namespace.as_deref() != Some(NAMESPACE) {
        return Err(FormatError::WrongDocument {
            format: Format::Virta,
            found: super::root_name(root),
        });
    }
    let doc = Node::root(root, NAMESPACE, PREFIX);
    match root.local.as_str() {
        "Virta" | "Opiskelijat" => {}
        list if ITEM_LISTS.contains(&list) => return Err(super::mismatch(subject, 0)),
        _ => {
            return Err(FormatError::WrongDocument {
                format: Format::Virta,
                found: super::root_name(root),
            });
        }
    }
    doc.note_rest(&["Opiskelija"], &[], report);
    let students = doc.all("Opiskelija");
    let matching: Vec<&Node<'_>> = students
        .iter()
        .filter(|s| {
            super::is_subject(
                subject,
                s.child_text("Henkilotunnus").as_deref(),
                s.child_text("KansallinenOppijanumero").as_deref(),
            )
        })
        .collect();
    let chosen = match matching.as_slice() {
        [one] => *one,
        [] => return Err(super::mismatch(subject, students.len())),
        _ => {
            return Err(doc.invalid(format!(
                "{} `Opiskelija` elements have the authorization's identifier; the document must name the student once",
                matching.len()
            )));
        }
    };
    let others = students.len() - 1;
    if others > 0 {
        *report
            .not_carried
            .entry(format!(
                "{}/Opiskelija (other students)",
                doc.generic_path()
            ))
            .or_insert(0) += others;
    }
    read_student(chosen, report)
}

fn lookup<T: Copy + PartialEq>(
    node: &Node<'_>,
    table: &CodeTable<T>,
    report: &mut ReadReport,
) -> Result<T, FormatError> {
    let code = node.text().unwrap_or_default();
    let found = table
        .from_virta(&code)
        .ok_or_else(|| node.invalid(format!("not a code of `{}`", table.name)))?;
    if !found.exact {
        let to = table.siirto_token(found.value).unwrap_or_default();
        report.translated(
            node.generic_path(),
            format!("virta:{}", table.name),
            code,
            to,
            true,
        );
    }
    Ok(found.value)
}

fn names(node: &Node<'_>) -> Vec<LocalizedText> {
    node.all("Nimi")
        .into_iter()
        .filter_map(|n| {
            n.text().map(|text| LocalizedText {
                lang: n.attribute("kieli"),
                text,
            })
        })
        .collect()
}

/// A `LaajuusLaajennettuTyyppi`: opintopiste and optional opintoviikko.
fn extent(node: &Node<'_>, report: &mut ReadReport) -> Result<Vec<Credits>, FormatError> {
    node.note_rest(&["Opintopiste", "Opintoviikko"], &[], report);
    let mut out = Vec::new();
    for child in node.children() {
        if let Some(row) = codes::unit_by_virta(child.local()) {
            out.push(Credits {
                value: child.decimal()?,
                unit: CreditUnit::Known(row.unit),
            });
        }
    }
    Ok(out)
}

/// Checks that an item names the chosen student.
fn owned_by(node: &Node<'_>, student_key: &str) -> Result<(), FormatError> {
    match node.attribute("opiskelijaAvain") {
        Some(key) if key == student_key => Ok(()),
        _ => {
            Err(node
                .invalid("`opiskelijaAvain` does not name the student this item is nested under"))
        }
    }
}

fn read_student(node: &Node<'_>, report: &mut ReadReport) -> Result<StudentRecord, FormatError> {
    node.note_rest(
        &[
            "Henkilotunnus",
            "Sukunimi",
            "Etunimet",
            "Sukupuoli",
            "Kansalaisuus",
            "Aidinkieli",
            "Asuinkunta",
            "KansallinenOppijanumero",
            "Opiskeluoikeudet",
            "LukukausiIlmoittautumiset",
            "Opintosuoritukset",
            "Liikkuvuusjaksot",
        ],
        &["avain"],
        report,
    );
    let key = node.required_attribute("avain")?;
    let henkilotunnus = node
        .child_text("Henkilotunnus")
        .map(|h| super::normalize_henkilotunnus(&h));
    let birth_date = henkilotunnus.as_deref().and_then(birth_date_of);
    if birth_date.is_some() {
        report.translated(
            format!("{}/Henkilotunnus", node.generic_path()),
            "birth date encoded in the henkilötunnus",
            "henkilotunnus",
            "birth_date",
            false,
        );
    }
    let gender = node
        .first("Sukupuoli")
        .map(|g| lookup(&g, &codes::GENDERS, report))
        .transpose()?;
    let mut citizenships = Vec::new();
    for k in node.all("Kansalaisuus") {
        let code = k.text().unwrap_or_default();
        match codelists::country_from_numeric(&code) {
            Some((alpha2, historic)) => {
                if historic {
                    report.translated(
                        k.generic_path(),
                        "virta:MaatunnusKoodi → ISO 3166-1 alpha-2 (withdrawn code)",
                        code,
                        alpha2,
                        true,
                    );
                }
                citizenships.push(alpha2.to_owned());
            }
            None if code == codelists::VIRTA_UNKNOWN_COUNTRY => {
                report.not_carried(format!("{} (999 unknown)", k.generic_path()));
            }
            None => return Err(k.invalid("not a code of `MaatunnusKoodi`")),
        }
    }
    let student = Student {
        henkilotunnus,
        learner_id: node.child_text("KansallinenOppijanumero"),
        other_ids: vec![TypedId {
            kind: STUDENT_KEY_TYPE.to_owned(),
            value: key.clone(),
        }],
        family_name: node.child_text("Sukunimi"),
        given_names: node.child_text("Etunimet"),
        birth_date,
        gender,
        citizenships,
        mother_tongue: node.child_text("Aidinkieli"),
        home_municipality: node.child_text("Asuinkunta"),
        addresses: Vec::new(),
        contacts: Vec::new(),
    };
    let mut record = StudentRecord {
        student,
        ..StudentRecord::default()
    };
    let mut providers: Vec<String> = Vec::new();
    let mut provider = |node: &Node<'_>| -> Result<String, FormatError> {
        let code = node.required_text("Myontaja")?;
        if !providers.contains(&code) {
            providers.push(code.clone());
        }
        Ok(code)
    };
    if let Some(list) = node.first("Opiskeluoikeudet") {
        list.note_rest(&["Opiskeluoikeus"], &[], report);
        for item in list.all("Opiskeluoikeus") {
            owned_by(&item, &key)?;
            let p = provider(&item)?;
            record
                .study_rights
                .push(read_study_right(&item, p, report)?);
        }
    }
    if let Some(list) = node.first("LukukausiIlmoittautumiset") {
        list.note_rest(&["LukukausiIlmoittautuminen"], &[], report);
        for item in list.all("LukukausiIlmoittautuminen") {
            owned_by(&item, &key)?;
            let p = provider(&item)?;
            record
                .term_registrations
                .push(read_registration(&item, p, report)?);
        }
    }
    if let Some(list) = node.first("Opintosuoritukset") {
        list.note_rest(&["Opintosuoritus"], &[], report);
        for item in list.all("Opintosuoritus") {
            owned_by(&item, &key)?;
            let p = provider(&item)?;
            record
                .achievements
                .push(read_achievement(&item, p, report)?);
        }
    }
    if let Some(list) = node.first("Liikkuvuusjaksot") {
        list.note_rest(&["Liikkuvuusjakso"], &[], report);
        for item in list.all("Liikkuvuusjakso") {
            owned_by(&item, &key)?;
            let p = provider(&item)?;
            record
                .mobility_periods
                .push(read_mobility(&item, p, report)?);
        }
    }
    record.providers = providers
        .into_iter()
        .map(|code| Provider {
            key: code.clone(),
            identifiers: vec![TypedId {
                kind: PROVIDER_CODE_TYPE.to_owned(),
                value: code,
            }],
            names: Vec::new(),
            country: None,
            url: None,
        })
        .collect();
    Ok(record)
}

/// The birth date a well-formed henkilötunnus encodes (checksum verified).
fn birth_date_of(henkilotunnus: &str) -> Option<Date> {
    let (year, month, day) =
        crate::student_id::birth_date(&super::normalize_henkilotunnus(henkilotunnus))?;
    Date::new(u16::try_from(year).ok()?, month, day).ok()
}

fn read_study_right(
    node: &Node<'_>,
    provider: String,
    report: &mut ReadReport,
) -> Result<StudyRight, FormatError> {
    node.note_rest(
        &[
            "AlkuPvm", "LoppuPvm", "Tila", "Tyyppi", "Myontaja", "Jakso", "Laajuus",
        ],
        &["avain", "opiskelijaAvain"],
        report,
    );
    let mut states = Vec::new();
    for t in node.all("Tila") {
        t.note_rest(&["AlkuPvm", "LoppuPvm", "Koodi"], &[], report);
        states.push(StatePeriod {
            start: t.required_date("AlkuPvm")?,
            end: t.child_date("LoppuPvm")?,
            state: lookup(&t.required("Koodi")?, &codes::STUDY_RIGHT_STATES, report)?,
        });
    }
    let mut programmes = Vec::new();
    for j in node.all("Jakso") {
        j.note_rest(
            &[
                "AlkuPvm",
                "LoppuPvm",
                "Koulutuskoodi",
                "Koulutuskunta",
                "Koulutuskieli",
                "Nimi",
            ],
            &["koulutusmoduulitunniste"],
            report,
        );
        programmes.push(ProgrammePeriod {
            start: j.required_date("AlkuPvm")?,
            end: j.child_date("LoppuPvm")?,
            module_code: j.attribute("koulutusmoduulitunniste"),
            education_code: j.child_text("Koulutuskoodi"),
            municipality: j.child_text("Koulutuskunta"),
            language: j.child_text("Koulutuskieli"),
            names: names(&j),
        });
    }
    Ok(StudyRight {
        key: node.attribute("avain"),
        provider,
        kind: lookup(&node.required("Tyyppi")?, &codes::STUDY_RIGHT_KINDS, report)?,
        start: node.required_date("AlkuPvm")?,
        end: node.child_date("LoppuPvm")?,
        states,
        programmes,
        extent: match node.first("Laajuus") {
            Some(l) => extent(&l, report)?,
            None => Vec::new(),
        },
    })
}

fn read_registration(
    node: &Node<'_>,
    provider: String,
    report: &mut ReadReport,
) -> Result<TermRegistration, FormatError> {
    node.note_rest(
        &[
            "Myontaja",
            "Tila",
            "IlmoittautumisPvm",
            "AlkuPvm",
            "LoppuPvm",
        ],
        &["opiskelijaAvain", "opiskeluoikeusAvain"],
        report,
    );
    Ok(TermRegistration {
        provider,
        state: lookup(&node.required("Tila")?, &codes::REGISTRATION_STATES, report)?,
        registered_on: Some(node.required_date("IlmoittautumisPvm")?),
        start: node.required_date("AlkuPvm")?,
        end: node.child_date("LoppuPvm")?,
        study_right: node.attribute("opiskeluoikeusAvain"),
    })
}

fn read_grade(node: &Node<'_>, report: &mut ReadReport) -> Result<Option<Grade>, FormatError> {
    let children = node.children();
    let [choice] = children.as_slice() else {
        return Err(node.invalid("must hold exactly one grading scale element"));
    };
    let value = choice.text().unwrap_or_default();
    match choice.local() {
        "EiKaytossa" => {
            report.translated(
                choice.generic_path(),
                "virta:EiKaytossa means no grade",
                codes::VIRTA_NO_GRADE,
                "no grade",
                false,
            );
            Ok(None)
        }
        "Muu" => {
            choice.note_rest(&["Asteikko", "Koodi"], &[], report);
            let scale = choice.required("Asteikko")?;
            scale.note_rest(&["Nimi"], &["avain"], report);
            if !scale.all("AsteikkoArvosana").is_empty() {
                report.not_carried(format!("{}/AsteikkoArvosana", scale.generic_path()));
            }
            let scheme = scale.required_attribute("avain")?;
            let value = choice.required_text("Koodi")?;
            // A scale the gateway wrote itself (siirto-v1 and basic-education grades) reads
            // back as the same known scale.
            if let Some(row) = codes::scale_by_siirto(&scheme)
                && row.virta.is_none()
                && row.values.contains(&value.as_str())
            {
                return Ok(Some(Grade {
                    scale: GradeScale::Known(row.scale),
                    value,
                }));
            }
            Ok(Some(Grade {
                scale: GradeScale::Other {
                    scheme,
                    name: scale.child_text("Nimi"),
                },
                value,
            }))
        }
        element => {
            let row = codes::scale_by_virta(element)
                .ok_or_else(|| choice.invalid("not a VIRTA grading scale"))?;
            if !row.values.contains(&value.as_str()) {
                return Err(choice.invalid("not a grade of this scale"));
            }
            Ok(Some(Grade {
                scale: GradeScale::Known(row.scale),
                value,
            }))
        }
    }
}

fn read_achievement(
    node: &Node<'_>,
    provider: String,
    report: &mut ReadReport,
) -> Result<Achievement, FormatError> {
    node.note_rest(
        &[
            "SuoritusPvm",
            "Laajuus",
            "Arvosana",
            "Myontaja",
            "Laji",
            "Nimi",
            "Kieli",
            "Sisaltyvyys",
            "HyvaksilukuPvm",
        ],
        &[
            "avain",
            "opiskelijaAvain",
            "koulutusmoduulitunniste",
            "opiskeluoikeusAvain",
        ],
        report,
    );
    let mut parts = Vec::new();
    for s in node.all("Sisaltyvyys") {
        s.note_rest(&["Opintopiste"], &["sisaltyvaOpintosuoritusAvain"], report);
        parts.push(PartRef {
            key: s.required_attribute("sisaltyvaOpintosuoritusAvain")?,
            credits: s.first("Opintopiste").map(|o| o.decimal()).transpose()?,
        });
    }
    let laji = node.required("Laji")?;
    let mut kind = lookup(&laji, &codes::ACHIEVEMENT_KINDS, report)?;
    if kind == AchievementKind::Course && !parts.is_empty() {
        // "Muu opintosuoritus" that contains other achievements is a module.
        report.translated(
            laji.generic_path(),
            "virta:OpintosuoritusLaji 2 with Sisaltyvyys is a module",
            laji.text().unwrap_or_default(),
            "module",
            false,
        );
        kind = AchievementKind::Module;
    }
    Ok(Achievement {
        key: node.attribute("avain"),
        kind,
        code: node.attribute("koulutusmoduulitunniste"),
        code_scheme: None,
        names: names(node),
        date: Some(node.required_date("SuoritusPvm")?),
        status: None,
        grade: read_grade(&node.required("Arvosana")?, report)?,
        credits: extent(&node.required("Laajuus")?, report)?,
        provider,
        language: node.child_text("Kieli"),
        recognized_on: node.child_date("HyvaksilukuPvm")?,
        parts,
        study_right: node.attribute("opiskeluoikeusAvain"),
    })
}

fn read_mobility(
    node: &Node<'_>,
    provider: String,
    report: &mut ReadReport,
) -> Result<MobilityPeriod, FormatError> {
    node.note_rest(
        &[
            "Myontaja",
            "AlkuPvm",
            "LoppuPvm",
            "Suunta",
            "Maa",
            "Tyyppi",
            "Liikkuvuusohjelma",
        ],
        &["avain", "opiskelijaAvain", "opiskeluoikeusAvain"],
        report,
    );
    let maa = node.required("Maa")?;
    let code = maa.text().unwrap_or_default();
    let country = match codelists::country_from_numeric(&code) {
        Some((alpha2, historic)) => {
            if historic {
                report.translated(
                    maa.generic_path(),
                    "virta:MaatunnusKoodi → ISO 3166-1 alpha-2 (withdrawn code)",
                    code,
                    alpha2,
                    true,
                );
            }
            Some(alpha2.to_owned())
        }
        None if code == codelists::VIRTA_UNKNOWN_COUNTRY => None,
        None => return Err(maa.invalid("not a code of `MaatunnusKoodi`")),
    };
    Ok(MobilityPeriod {
        key: node.attribute("avain"),
        provider,
        start: node.required_date("AlkuPvm")?,
        end: Some(node.required_date("LoppuPvm")?),
        direction: lookup(
            &node.required("Suunta")?,
            &codes::MOBILITY_DIRECTIONS,
            report,
        )?,
        country,
        kind: node
            .first("Tyyppi")
            .map(|t| lookup(&t, &codes::MOBILITY_KINDS, report))
            .transpose()?,
        programme: node
            .first("Liikkuvuusohjelma")
            .map(|p| lookup(&p, &codes::MOBILITY_PROGRAMMES, report))
            .transpose()?,
        study_right: node.attribute("opiskeluoikeusAvain"),
    })
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/// VIRTA dates are 1900-01-01 or later (`PvmTyyppi`).
fn virta_date(d: Date) -> Option<String> {
    (d.year() >= 1900).then(|| d.to_string())
}

/// `LaajuusTyyppi`: `totalDigits 24`, `fractionDigits 6`.
fn fits_laajuus(d: &Decimal) -> bool {
    let (int, frac) = d.digits();
    frac <= 6 && int + frac <= 24
}

fn fits(s: &str, max_chars: usize) -> bool {
    s.chars().count() <= max_chars
}

/// A VIRTA language code for a model language, translating `en-GB` to `en`.
fn virta_language(lang: &str, path: &str, report: &mut WriteReport) -> Option<String> {
    if codelists::virta_has_language(lang) {
        return Some(lang.to_owned());
    }
    let primary = lang
        .split('-')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if primary != lang && codelists::virta_has_language(&primary) {
        report.translated(
            path,
            "language tag → virta:KieliKoodi primary language",
            lang,
            primary.as_str(),
            true,
        );
        return Some(primary);
    }
    None
}

struct Writer<'r> {
    x: XmlOut,
    report: &'r mut WriteReport,
    providers: &'r [Provider],
}

impl Writer<'_> {
    /// The VIRTA organisation code for an item's provider: the key or the provider's
    /// oppilaitosnumero when they have the form, `UK` (foreign higher-education institution)
    /// for a provider known to be abroad; `None` when VIRTA has no code for it.
    fn organisation(&mut self, key: &str, path: &str) -> Option<String> {
        if codelists::is_virta_organisation(key) {
            return Some(key.to_owned());
        }
        let provider = self.providers.iter().find(|p| p.key == key);
        if let Some(code) = provider.and_then(|p| {
            p.identifiers.iter().find(|i| {
                i.kind == PROVIDER_CODE_TYPE && codelists::is_virta_organisation(&i.value)
            })
        }) {
            return Some(code.value.clone());
        }
        match provider.and_then(|p| p.country.as_deref()) {
            Some(country) if country != "FI" => {
                self.report.translated(
                    format!("{path}.provider"),
                    "a provider abroad without a VIRTA code is written as UK (ulkomainen korkeakoulu)",
                    "foreign provider",
                    codelists::VIRTA_FOREIGN_HEI,
                    true,
                );
                Some(codelists::VIRTA_FOREIGN_HEI.to_owned())
            }
            _ => None,
        }
    }

    fn code<T: Copy + PartialEq>(
        &mut self,
        table: &CodeTable<T>,
        value: T,
        path: &str,
    ) -> Option<&'static str> {
        let found = table.to_virta(value)?;
        if !found.exact {
            self.report.translated(
                path,
                format!("virta:{}", table.name),
                table.siirto_token(value).unwrap_or_default(),
                found.value,
                true,
            );
        }
        Some(found.value)
    }

    fn names(&mut self, names: &[crate::record::LocalizedText], path: &str, kieli_required: bool) {
        for (j, n) in names.iter().enumerate() {
            let name_path = format!("{path}.names[{j}]");
            if !fits(&n.text, 200) {
                self.report
                    .dropped(name_path, "VIRTA names are at most 200 characters");
                continue;
            }
            let kieli = n
                .lang
                .as_deref()
                .and_then(|l| virta_language(l, &name_path, self.report));
            match kieli {
                Some(k) => self.x.leaf("Nimi", &[("kieli", &k)], &n.text),
                None if kieli_required => self
                    .report
                    .dropped(name_path, "VIRTA needs a known language for this name"),
                None => {
                    if n.lang.is_some() {
                        self.report.translated(
                            name_path,
                            "language tag not in virta:KieliKoodi is left out",
                            n.lang.clone().unwrap_or_default(),
                            "no language",
                            true,
                        );
                    }
                    self.x.leaf("Nimi", &[], &n.text)
                }
            }
        }
    }

    /// Writes `Laajuus` from the opintopiste (required) and opintoviikko credits; false when
    /// there is no opintopiste amount VIRTA can take.
    fn laajuus(&mut self, element: &str, credits: &[Credits], path: &str) -> bool {
        let find = |unit: KnownUnit| {
            credits
                .iter()
                .enumerate()
                .find(|(_, c)| c.unit == CreditUnit::Known(unit) && fits_laajuus(&c.value))
        };
        let Some((op_index, op)) = find(KnownUnit::Opintopiste) else {
            return false;
        };
        let ov = find(KnownUnit::Opintoviikko);
        self.x.open(element, &[]);
        self.x.leaf("Opintopiste", &[], op.value.as_str());
        if let Some((_, ov)) = ov {
            self.x.leaf("Opintoviikko", &[], ov.value.as_str());
        }
        self.x.close();
        let ov_index = ov.map(|(i, _)| i);
        for (j, _) in credits.iter().enumerate() {
            if j != op_index && Some(j) != ov_index {
                self.report.dropped(
                    format!("{path}[{j}]"),
                    "VIRTA takes one amount in opintopiste and one in opintoviikko",
                );
            }
        }
        true
    }
}

pub(crate) fn write(
    record: &StudentRecord,
    _context: &WriteContext,
    report: &mut WriteReport,
) -> Result<Vec<u8>, FormatError> {
    let mut w = Writer {
        x: XmlOut::new(),
        report,
        providers: &record.providers,
    };
    let s = &record.student;
    let key_index = s
        .other_ids
        .iter()
        .position(|i| i.kind == STUDENT_KEY_TYPE && fits(&i.value, 100));
    let student_key = match key_index {
        Some(i) => s.other_ids[i].value.clone(),
        None => {
            w.report.translated(
                "student.other_ids",
                "VIRTA requires Opiskelija/@avain; a fixed key is written",
                "absent",
                "siirto",
                false,
            );
            "siirto".to_owned()
        }
    };
    for (i, _) in s.other_ids.iter().enumerate() {
        if Some(i) != key_index {
            w.report.dropped(
                format!("student.other_ids[{i}]"),
                "VIRTA carries only its own student key",
            );
        }
    }
    w.x.open("Virta", &[("xmlns", NAMESPACE)]);
    w.x.open("Opiskelija", &[("avain", &student_key)]);
    if let Some(h) = &s.henkilotunnus {
        w.x.leaf("Henkilotunnus", &[], h);
    }
    for (name, value, path) in [
        ("Sukunimi", &s.family_name, "student.family_name"),
        ("Etunimet", &s.given_names, "student.given_names"),
    ] {
        if let Some(v) = value {
            if fits(v, 200) {
                w.x.leaf(name, &[], v);
            } else {
                w.report
                    .dropped(path, "VIRTA names are at most 200 characters");
            }
        }
    }
    if let Some(g) = s.gender {
        match w.code(&codes::GENDERS, g, "student.gender") {
            Some(code) => w.x.leaf("Sukupuoli", &[], code),
            None => w.report.dropped("student.gender", "no VIRTA code"),
        }
    }
    for (i, c) in s.citizenships.iter().enumerate() {
        match codelists::country_to_numeric(c) {
            Some(n) => w.x.leaf("Kansalaisuus", &[], n),
            None => w.report.dropped(
                format!("student.citizenships[{i}]"),
                "no code in virta:MaatunnusKoodi",
            ),
        }
    }
    if let Some(l) = &s.mother_tongue {
        match virta_language(l, "student.mother_tongue", w.report) {
            Some(code) => w.x.leaf("Aidinkieli", &[], &code),
            None => w
                .report
                .dropped("student.mother_tongue", "no code in virta:KieliKoodi"),
        }
    }
    if let Some(m) = &s.home_municipality {
        w.x.leaf("Asuinkunta", &[], m);
    }
    if let Some(l) = &s.learner_id {
        w.x.leaf("KansallinenOppijanumero", &[], l);
    }
    if s.birth_date.is_some() {
        w.report.dropped(
            "student.birth_date",
            "VIRTA has no birth date (the henkilötunnus encodes it)",
        );
    }
    for i in 0..s.addresses.len() {
        w.report
            .dropped(format!("student.addresses[{i}]"), "VIRTA has no addresses");
    }
    for i in 0..s.contacts.len() {
        w.report.dropped(
            format!("student.contacts[{i}]"),
            "VIRTA has no contact details",
        );
    }
    if record.turvakielto {
        w.report
            .dropped("turvakielto", "VIRTA has no turvakielto flag");
    }
    for i in 0..record.providers.len() {
        w.report.dropped(
            format!("providers[{i}]"),
            "VIRTA names providers by code only",
        );
    }
    for i in 0..record.support_decisions.len() {
        w.report.dropped(
            format!("support_decisions[{i}]"),
            "VIRTA has no support decisions",
        );
    }

    write_study_rights(&mut w, record, &student_key);
    write_registrations(&mut w, record, &student_key);
    write_achievements(&mut w, record, &student_key);
    write_mobility(&mut w, record, &student_key);

    w.x.close();
    w.x.close();
    w.x.finish().map_err(|path| FormatError::Unwritable {
        format: Format::Virta,
        path,
        problem: "text holds characters XML cannot carry".into(),
    })
}

/// An item's `avain`: its key, or a generated one (reported).
fn item_key(w: &mut Writer<'_>, key: &Option<String>, path: &str, generated: String) -> String {
    match key {
        Some(k) if fits(k, 100) => k.clone(),
        _ => {
            w.report.translated(
                format!("{path}.key"),
                "VIRTA requires an avain; one is generated from the position",
                "absent",
                generated.as_str(),
                false,
            );
            generated
        }
    }
}

fn write_study_rights(w: &mut Writer<'_>, record: &StudentRecord, student_key: &str) {
    let mut open = false;
    for (i, r) in record.study_rights.iter().enumerate() {
        let path = format!("study_rights[{i}]");
        let Some(kind) = w.code(&codes::STUDY_RIGHT_KINDS, r.kind, &format!("{path}.kind")) else {
            w.report.dropped(
                path,
                "the study right kind has no VIRTA OpiskeluoikeusTyyppi",
            );
            continue;
        };
        let Some(start) = virta_date(r.start) else {
            w.report.dropped(path, "VIRTA dates start from 1900");
            continue;
        };
        let Some(organisation) = w.organisation(&r.provider, &path) else {
            w.report
                .dropped(path, "the provider has no VIRTA organisation code");
            continue;
        };
        // Each state period with its dates as VIRTA writes them; `None` when VIRTA cannot.
        let states: Vec<Option<(String, Option<String>)>> = r
            .states
            .iter()
            .map(|s| {
                let start = virta_date(s.start)?;
                match s.end {
                    Some(e) => virta_date(e).map(|end| (start, Some(end))),
                    None => Some((start, None)),
                }
            })
            .collect();
        if states.iter().all(Option::is_none) {
            w.report
                .dropped(path, "VIRTA requires at least one state period");
            continue;
        }
        if !open {
            w.x.open("Opiskeluoikeudet", &[]);
            open = true;
        }
        let key = item_key(w, &r.key, &path, format!("siirto-oo-{i}"));
        w.x.open(
            "Opiskeluoikeus",
            &[("avain", &key), ("opiskelijaAvain", student_key)],
        );
        w.x.leaf("AlkuPvm", &[], &start);
        if let Some(end) = r.end.and_then(virta_date) {
            w.x.leaf("LoppuPvm", &[], &end);
        }
        for (j, (s, dates)) in r.states.iter().zip(&states).enumerate() {
            let state_path = format!("{path}.states[{j}]");
            let Some((start, end)) = dates else {
                w.report.dropped(state_path, "VIRTA dates start from 1900");
                continue;
            };
            let Some(code) = w.code(&codes::STUDY_RIGHT_STATES, s.state, &state_path) else {
                w.report.dropped(state_path, "no VIRTA state code");
                continue;
            };
            w.x.open("Tila", &[]);
            w.x.leaf("AlkuPvm", &[], start);
            if let Some(e) = end {
                w.x.leaf("LoppuPvm", &[], e);
            }
            w.x.leaf("Koodi", &[], code);
            w.x.close();
        }
        w.x.leaf("Tyyppi", &[], kind);
        w.x.leaf("Myontaja", &[], &organisation);
        for (j, p) in r.programmes.iter().enumerate() {
            let ppath = format!("{path}.programmes[{j}]");
            let Some(pstart) = virta_date(p.start) else {
                w.report.dropped(ppath, "VIRTA dates start from 1900");
                continue;
            };
            let module = p.module_code.clone().unwrap_or_default();
            w.x.open("Jakso", &[("koulutusmoduulitunniste", &module)]);
            w.x.leaf("AlkuPvm", &[], &pstart);
            if let Some(e) = p.end.and_then(virta_date) {
                w.x.leaf("LoppuPvm", &[], &e);
            }
            if let Some(c) = &p.education_code {
                w.x.leaf("Koulutuskoodi", &[], c);
            }
            let municipality = match &p.municipality {
                Some(m) => m.clone(),
                None => {
                    w.report.translated(
                        format!("{ppath}.municipality"),
                        "VIRTA requires Koulutuskunta; 999 (tuntematon) is written",
                        "absent",
                        "999",
                        false,
                    );
                    "999".to_owned()
                }
            };
            w.x.leaf("Koulutuskunta", &[], &municipality);
            if let Some(l) = &p.language {
                let lpath = format!("{ppath}.language");
                match virta_language(l, &lpath, w.report) {
                    Some(code) => w.x.leaf("Koulutuskieli", &[], &code),
                    None => w.report.dropped(lpath, "no code in virta:KieliKoodi"),
                }
            }
            w.names(&p.names, &ppath, true);
            w.x.close();
        }
        if !r.extent.is_empty() && !w.laajuus("Laajuus", &r.extent, &format!("{path}.extent")) {
            for j in 0..r.extent.len() {
                w.report.dropped(
                    format!("{path}.extent[{j}]"),
                    "VIRTA takes an extent only with an amount in opintopiste",
                );
            }
        }
        w.x.close();
    }
    if open {
        w.x.close();
    }
}

fn write_registrations(w: &mut Writer<'_>, record: &StudentRecord, student_key: &str) {
    let mut open = false;
    for (i, t) in record.term_registrations.iter().enumerate() {
        let path = format!("term_registrations[{i}]");
        let (Some(registered), Some(start)) =
            (t.registered_on.and_then(virta_date), virta_date(t.start))
        else {
            w.report.dropped(
                path,
                "VIRTA requires a registration date and dates from 1900",
            );
            continue;
        };
        let Some(state) = w.code(
            &codes::REGISTRATION_STATES,
            t.state,
            &format!("{path}.state"),
        ) else {
            w.report.dropped(path, "no VIRTA registration state");
            continue;
        };
        let Some(organisation) = w.organisation(&t.provider, &path) else {
            w.report
                .dropped(path, "the provider has no VIRTA organisation code");
            continue;
        };
        if !open {
            w.x.open("LukukausiIlmoittautumiset", &[]);
            open = true;
        }
        let mut attributes = vec![("opiskelijaAvain", student_key)];
        if let Some(s) = &t.study_right {
            attributes.push(("opiskeluoikeusAvain", s));
        }
        w.x.open("LukukausiIlmoittautuminen", &attributes);
        w.x.leaf("Myontaja", &[], &organisation);
        w.x.leaf("Tila", &[], state);
        w.x.leaf("IlmoittautumisPvm", &[], &registered);
        w.x.leaf("AlkuPvm", &[], &start);
        if let Some(e) = t.end.and_then(virta_date) {
            w.x.leaf("LoppuPvm", &[], &e);
        }
        w.x.close();
    }
    if open {
        w.x.close();
    }
}

fn write_grade(w: &mut Writer<'_>, grade: Option<&Grade>, path: &str) {
    w.x.open("Arvosana", &[]);
    match grade {
        None => {
            w.report.translated(
                format!("{path}.grade"),
                "VIRTA requires a grade: no grade is written as EiKaytossa",
                "no grade",
                codes::VIRTA_NO_GRADE,
                false,
            );
            w.x.leaf("EiKaytossa", &[], codes::VIRTA_NO_GRADE);
        }
        Some(g) => {
            let muu = match &g.scale {
                GradeScale::Known(scale) => match codes::scale_row(*scale) {
                    Some(row) => match row.virta {
                        Some(element) => {
                            w.x.leaf(element, &[], &g.value);
                            None
                        }
                        None => {
                            w.report.translated(
                                format!("{path}.grade"),
                                "a scale VIRTA has no element for is written as Muu",
                                row.siirto,
                                format!("Muu/Asteikko/@avain={}", row.siirto),
                                false,
                            );
                            Some((row.siirto.to_owned(), Some(row.fi.to_owned())))
                        }
                    },
                    None => Some((format!("{scale:?}"), None)),
                },
                GradeScale::Other { scheme, name } => Some((scheme.clone(), name.clone())),
            };
            if let Some((scheme, name)) = muu {
                if fits(&scheme, 100) && fits(&g.value, 20) {
                    w.x.open("Muu", &[]);
                    w.x.open("Asteikko", &[("avain", &scheme)]);
                    match name {
                        Some(n) if fits(&n, 200) => w.x.leaf("Nimi", &[], &n),
                        Some(_) => w.report.translated(
                            format!("{path}.grade"),
                            "scale name longer than VIRTA's 200 characters is left out",
                            "name",
                            "no name",
                            true,
                        ),
                        None => {}
                    }
                    w.x.close();
                    w.x.leaf("Koodi", &[], &g.value);
                    w.x.close();
                } else {
                    w.report.dropped(
                        format!("{path}.grade"),
                        "VIRTA's Muu scale takes keys up to 100 and grades up to 20 characters",
                    );
                    w.x.leaf("EiKaytossa", &[], codes::VIRTA_NO_GRADE);
                }
            }
        }
    }
    w.x.close();
}

fn write_achievements(w: &mut Writer<'_>, record: &StudentRecord, student_key: &str) {
    let mut open = false;
    for (i, a) in record.achievements.iter().enumerate() {
        let path = format!("achievements[{i}]");
        if matches!(
            a.status,
            Some(AchievementStatus::Failed | AchievementStatus::InProgress)
        ) {
            w.report
                .dropped(path, "VIRTA records completed achievements only");
            continue;
        }
        let Some(date) = a.date.and_then(virta_date) else {
            w.report
                .dropped(path, "VIRTA requires a completion date from 1900 on");
            continue;
        };
        let has_op = a
            .credits
            .iter()
            .any(|c| c.unit == CreditUnit::Known(KnownUnit::Opintopiste) && fits_laajuus(&c.value));
        if !has_op {
            w.report
                .dropped(path, "VIRTA requires the extent in opintopiste");
            continue;
        }
        let Some(organisation) = w.organisation(&a.provider, &path) else {
            w.report
                .dropped(path, "the provider has no VIRTA organisation code");
            continue;
        };
        if !open {
            w.x.open("Opintosuoritukset", &[]);
            open = true;
        }
        let key = item_key(w, &a.key, &path, format!("siirto-os-{i}"));
        let module = a.code.clone().unwrap_or_default();
        let mut attributes = vec![
            ("avain", key.as_str()),
            ("opiskelijaAvain", student_key),
            ("koulutusmoduulitunniste", module.as_str()),
        ];
        if let Some(s) = &a.study_right {
            attributes.push(("opiskeluoikeusAvain", s));
        }
        w.x.open("Opintosuoritus", &attributes);
        if a.code_scheme.is_some() {
            w.report.dropped(
                format!("{path}.code_scheme"),
                "VIRTA's koulutusmoduulitunniste has no code list",
            );
        }
        w.x.leaf("SuoritusPvm", &[], &date);
        w.laajuus("Laajuus", &a.credits, &format!("{path}.credits"));
        write_grade(w, a.grade.as_ref(), &path);
        w.x.leaf("Myontaja", &[], &organisation);
        let laji = w
            .code(&codes::ACHIEVEMENT_KINDS, a.kind, &format!("{path}.kind"))
            .unwrap_or("2");
        w.x.leaf("Laji", &[], laji);
        w.names(&a.names, &path, false);
        if let Some(l) = &a.language {
            let lpath = format!("{path}.language");
            match virta_language(l, &lpath, w.report) {
                Some(code) => w.x.leaf("Kieli", &[], &code),
                None => w.report.dropped(lpath, "no code in virta:KieliKoodi"),
            }
        }
        for (j, p) in a.parts.iter().enumerate() {
            if !fits(&p.key, 100) {
                w.report.dropped(
                    format!("{path}.parts[{j}]"),
                    "VIRTA keys are at most 100 characters",
                );
                continue;
            }
            match &p.credits {
                Some(c) if fits_laajuus(c) => {
                    w.x.open("Sisaltyvyys", &[("sisaltyvaOpintosuoritusAvain", &p.key)]);
                    w.x.leaf("Opintopiste", &[], c.as_str());
                    w.x.close();
                }
                _ => {
                    w.x.empty("Sisaltyvyys", &[("sisaltyvaOpintosuoritusAvain", &p.key)])
                }
            }
        }
        if let Some(r) = a.recognized_on {
            match virta_date(r) {
                Some(d) => w.x.leaf("HyvaksilukuPvm", &[], &d),
                None => w.report.dropped(
                    format!("{path}.recognized_on"),
                    "VIRTA dates start from 1900",
                ),
            }
        }
        if a.status == Some(AchievementStatus::Passed) {
            w.report.translated(
                format!("{path}.status"),
                "VIRTA records passed achievements only; the status is implied",
                "passed",
                "implied",
                false,
            );
        }
        w.x.close();
    }
    if open {
        w.x.close();
    }
}

fn write_mobility(w: &mut Writer<'_>, record: &StudentRecord, student_key: &str) {
    let mut open = false;
    for (i, m) in record.mobility_periods.iter().enumerate() {
        let path = format!("mobility_periods[{i}]");
        let (Some(start), Some(end)) = (virta_date(m.start), m.end.and_then(virta_date)) else {
            w.report
                .dropped(path, "VIRTA requires start and end dates from 1900");
            continue;
        };
        let Some(direction) = w.code(
            &codes::MOBILITY_DIRECTIONS,
            m.direction,
            &format!("{path}.direction"),
        ) else {
            w.report.dropped(path, "no VIRTA direction code");
            continue;
        };
        let Some(organisation) = w.organisation(&m.provider, &path) else {
            w.report
                .dropped(path, "the provider has no VIRTA organisation code");
            continue;
        };
        if !open {
            w.x.open("Liikkuvuusjaksot", &[]);
            open = true;
        }
        let key = item_key(w, &m.key, &path, format!("siirto-lj-{i}"));
        let mut attributes = vec![("avain", key.as_str()), ("opiskelijaAvain", student_key)];
        if let Some(s) = &m.study_right {
            attributes.push(("opiskeluoikeusAvain", s));
        }
        w.x.open("Liikkuvuusjakso", &attributes);
        w.x.leaf("Myontaja", &[], &organisation);
        w.x.leaf("AlkuPvm", &[], &start);
        w.x.leaf("LoppuPvm", &[], &end);
        w.x.leaf("Suunta", &[], direction);
        let country = match m
            .country
            .as_deref()
            .map(|c| (c, codelists::country_to_numeric(c)))
        {
            Some((_, Some(n))) => n,
            Some((alpha2, None)) => {
                w.report.translated(
                    format!("{path}.country"),
                    "country without a virta:MaatunnusKoodi is written as 999 (tuntematon)",
                    alpha2,
                    codelists::VIRTA_UNKNOWN_COUNTRY,
                    true,
                );
                codelists::VIRTA_UNKNOWN_COUNTRY
            }
            None => {
                w.report.translated(
                    format!("{path}.country"),
                    "VIRTA requires Maa; 999 (tuntematon) is written",
                    "absent",
                    codelists::VIRTA_UNKNOWN_COUNTRY,
                    false,
                );
                codelists::VIRTA_UNKNOWN_COUNTRY
            }
        };
        w.x.leaf("Maa", &[], country);
        if let Some(k) = m.kind
            && let Some(code) = w.code(&codes::MOBILITY_KINDS, k, &format!("{path}.kind"))
        {
            w.x.leaf("Tyyppi", &[], code);
        }
        if let Some(p) = m.programme
            && let Some(code) = w.code(&codes::MOBILITY_PROGRAMMES, p, &format!("{path}.programme"))
        {
            w.x.leaf("Liikkuvuusohjelma", &[], code);
        }
        w.x.close();
    }
    if open {
        w.x.close();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing unwrap is a failing test
mod tests {
    use super::*;
    use crate::record::KnownScale;
    use siirto_xsd::{Limits, dom};

    const DOC: &str = r#"<?xml version="1.0"?>
<Virta xmlns="urn:mace:funet.fi:virta/2015/09/01">
  <Opiskelija avain="1">
    <Henkilotunnus>010190-020A</Henkilotunnus>
    <Sukunimi>Muu</Sukunimi>
  </Opiskelija>
  <Opiskelija avain="2">
    <Henkilotunnus>131052-308T</Henkilotunnus>
    <Sukunimi>Virtanen</Sukunimi>
    <Sukupuoli>9</Sukupuoli>
    <Kansalaisuus>246</Kansalaisuus>
    <Kansalaisuus>810</Kansalaisuus>
    <KirjoihintuloPvm>2017-08-26</KirjoihintuloPvm>
    <Opintosuoritukset>
      <Opintosuoritus avain="A" opiskelijaAvain="2" koulutusmoduulitunniste="M1">
        <SuoritusPvm>2018-07-02</SuoritusPvm>
        <Laajuus><Opintopiste>10</Opintopiste></Laajuus>
        <Arvosana><Muu><Asteikko avain="asteikko-4-10"><Nimi>4-10</Nimi></Asteikko><Koodi>9</Koodi></Muu></Arvosana>
        <Myontaja>02535</Myontaja>
        <Laji>2</Laji>
        <Sisaltyvyys sisaltyvaOpintosuoritusAvain="B"><Opintopiste>5</Opintopiste></Sisaltyvyys>
      </Opintosuoritus>
      <Opintosuoritus avain="B" opiskelijaAvain="2" koulutusmoduulitunniste="M2">
        <SuoritusPvm>2018-07-01</SuoritusPvm>
        <Laajuus><Opintopiste>5</Opintopiste></Laajuus>
        <Arvosana><EiKaytossa>Arvosana ei kaytossa</EiKaytossa></Arvosana>
        <Myontaja>02535</Myontaja>
        <Laji>3</Laji>
        <TKILaajuusMuu><Opintopiste>2</Opintopiste></TKILaajuusMuu>
      </Opintosuoritus>
    </Opintosuoritukset>
  </Opiskelija>
</Virta>"#;

    fn root() -> Element {
        dom::parse(DOC.as_bytes(), &Limits::default()).unwrap()
    }

    #[test]
    fn picks_the_named_student_only() {
        let subject = StudentId::parse("131052-308T").unwrap();
        let mut report = ReadReport::default();
        let r = read(&root(), &subject, &mut report).unwrap();
        assert_eq!(r.student.family_name.as_deref(), Some("Virtanen"));
        assert_eq!(r.student.birth_date, Date::parse("1952-10-13").ok());
        assert_eq!(r.student.gender, Some(crate::record::Gender::Unknown));
        assert_eq!(r.student.citizenships, vec!["FI", "SU"]);
        assert_eq!(r.achievements.len(), 2);
        assert_eq!(r.achievements[0].kind, AchievementKind::Module);
        assert_eq!(
            r.achievements[0].grade,
            Some(Grade {
                scale: GradeScale::Known(KnownScale::FourToTen),
                value: "9".into()
            })
        );
        assert_eq!(r.achievements[1].grade, None);
        assert_eq!(r.achievements[1].kind, AchievementKind::Course);
        assert_eq!(r.providers.len(), 1);
        assert_eq!(
            report
                .not_carried
                .get("virta:/Virta/Opiskelija (other students)"),
            Some(&1)
        );
        assert!(report.not_carried.contains_key(
            "virta:/Virta/Opiskelija/Opintosuoritukset/Opintosuoritus/TKILaajuusMuu"
        ));
        assert!(
            report
                .not_carried
                .contains_key("virta:/Virta/Opiskelija/KirjoihintuloPvm")
        );
        assert!(report.translated.iter().any(|t| t.lossy && t.from == "3"));
    }

    #[test]
    fn refuses_other_students_and_unbound_lists() {
        let stranger = StudentId::parse("1.2.246.562.24.10000000008").unwrap();
        let err = read(&root(), &stranger, &mut ReadReport::default()).unwrap_err();
        assert_eq!(err.code(), "subject_mismatch");
        let list = dom::parse(
            br#"<Opintosuoritukset xmlns="urn:mace:funet.fi:virta/2015/09/01"/>"#,
            &Limits::default(),
        )
        .unwrap();
        let subject = StudentId::parse("131052-308T").unwrap();
        let err = read(&list, &subject, &mut ReadReport::default()).unwrap_err();
        assert_eq!(err.code(), "subject_mismatch");
    }

    #[test]
    fn refuses_items_of_another_student() {
        let doc = DOC.replace(
            r#"avain="B" opiskelijaAvain="2""#,
            r#"avain="B" opiskelijaAvain="1""#,
        );
        let root = dom::parse(doc.as_bytes(), &Limits::default()).unwrap();
        let subject = StudentId::parse("131052-308T").unwrap();
        let err = read(&root, &subject, &mut ReadReport::default()).unwrap_err();
        assert_eq!(err.code(), "unreadable_source");
        assert!(err.to_string().contains("Opintosuoritus[2]"), "{err}");
    }

    #[test]
    fn writes_back_what_it_read() {
        let subject = StudentId::parse("131052-308T").unwrap();
        let record = read(&root(), &subject, &mut ReadReport::default()).unwrap();
        let mut report = WriteReport::default();
        let context = WriteContext::new(crate::clock::Timestamp::from_secs(0));
        let bytes = write(&record, &context, &mut report).unwrap();
        let back = read(
            &dom::parse(&bytes, &Limits::default()).unwrap(),
            &subject,
            &mut ReadReport::default(),
        )
        .unwrap();
        assert_eq!(back, record);
        // Birth date and providers are the only things VIRTA itself cannot carry back.
        let dropped: Vec<&str> = report.dropped.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(dropped, vec!["student.birth_date", "providers[0]"]);
    }
}

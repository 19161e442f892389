//! On what basis data moves, and the words the person agrees to: the legal [`Basis`] of a
//! transfer, a destination's [`StatutoryRules`] (data it receives by law, without consent), and
//! the consent text ([`Catalog`]): composed from the reviewed texts of each language, versioned,
//! and hashed so that an authorization can prove which exact words were shown.
//!
//! Owns: composing a consent text from its templates ([`ConsentTemplates`], read by the gateway
//! from `crates/gateway/texts/{fi,sv,en}.toml`, `[consent]` and `[consent_previous]`), the
//! version of an edition of the texts (derived from the texts themselves, so it cannot be left
//! unchanged when a word changes), and matching a `consent_sha256` against the current and the
//! previous edition. The age and guardian rules are `crate::authz`'s, which calls in here.
//!
//! Must not: hold the words in code (they are the text files'), do IO, or read the clock.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::clock::hex;
use crate::identity::Participant;
use crate::lang::{Lang, Localized, fill};
use crate::scope::{Category, Scope};

/// Why the data moves: the person's (or their guardian's) consent, or a law.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Basis {
    /// The person agreed (claim `basis` absent or `"consent"`).
    #[default]
    Consent,
    /// A law lets the destination receive it without consent (claim `basis` = `"statutory"`),
    /// within the destination's [`StatutoryRules`].
    Statutory,
}

impl Basis {
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::Consent => "consent",
            Basis::Statutory => "statutory",
        }
    }

    pub fn parse(s: &str) -> Option<Basis> {
        [Basis::Consent, Basis::Statutory]
            .into_iter()
            .find(|b| b.as_str() == s)
    }
}

impl fmt::Display for Basis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a destination may receive by law, without consent (its directory entry's
/// `statutory_purposes`, `statutory_scopes` and `statutory_law`), e.g. a new education provider
/// under perusopetuslaki 40 §.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatutoryRules {
    /// Purposes a statutory transfer may have.
    pub purposes: Vec<String>,
    /// Categories a statutory transfer may carry; its whole scope must be within them.
    pub scope: Scope,
    /// The law, named in fi, sv and en.
    pub law: Localized,
}

impl StatutoryRules {
    /// Whether a statutory transfer for `purpose` carrying `scope` is within these rules.
    pub fn allows(&self, purpose: &str, scope: Scope) -> bool {
        self.purposes.iter().any(|p| p == purpose) && scope.iter().all(|c| self.scope.contains(c))
    }
}

/// The everyday words for each data category.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryTexts {
    pub identity: String,
    pub enrolment: String,
    pub achievements: String,
    pub mobility: String,
    pub registrations: String,
    pub support: String,
}

impl CategoryTexts {
    pub fn get(&self, category: Category) -> &str {
        match category {
            Category::Identity => &self.identity,
            Category::Enrolment => &self.enrolment,
            Category::Achievements => &self.achievements,
            Category::Mobility => &self.mobility,
            Category::Registrations => &self.registrations,
            Category::Support => &self.support,
        }
    }
}

/// The questions of a check without transfer, in everyday words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuestionTexts {
    pub basic_education_completed: String,
    pub upper_secondary_completed: String,
    pub higher_education_degree_completed: String,
    pub active_study_right: String,
}

impl QuestionTexts {
    /// The words for a question's code, `None` for a code that is not a known question.
    pub fn get(&self, question: &str) -> Option<&str> {
        Some(match question {
            "basic_education_completed" => &self.basic_education_completed,
            "upper_secondary_completed" => &self.upper_secondary_completed,
            "higher_education_degree_completed" => &self.higher_education_degree_completed,
            "active_study_right" => &self.active_study_right,
            _ => return None,
        })
    }
}

/// The pieces of a consent text in one language (`[consent]` of a text file). Placeholders:
/// `{src}`, `{dst}` (the organisations' names), `{law}`, `{purpose}`, `{code}`, `{question}`,
/// `{version}`. Plain text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentTemplates {
    pub title_consent: String,
    pub title_statutory: String,
    /// The titles of a check's text: nothing is sent, one thing is checked.
    pub title_check_consent: String,
    pub title_check_statutory: String,
    pub intro_categories: String,
    pub intro_question: String,
    pub basis_consent: String,
    pub basis_statutory: String,
    pub purpose: String,
    /// Known purposes (`school-change`, …) in everyday words, filling `{purpose}`.
    pub purposes: BTreeMap<String, String>,
    /// `{purpose}` for a purpose without words of its own (`{code}` is its code).
    pub purpose_other: String,
    pub what_moves: String,
    pub categories: CategoryTexts,
    pub sensitive: String,
    pub nothing_else: String,
    pub keeping: String,
    pub no_record: String,
    pub cancel: String,
    pub later: String,
    pub version: String,
    pub questions: QuestionTexts,
}

impl ConsentTemplates {
    /// A purpose in everyday words: its words from `purposes`, or `purpose_other` naming its
    /// code and the destination (`destination`, a name).
    pub fn purpose_words(&self, purpose: &str, destination: &str) -> String {
        match self.purposes.get(purpose) {
            Some(words) => words.clone(),
            None => fill(
                &self.purpose_other,
                &[("code", &purpose), ("dst", &destination)],
            ),
        }
    }
}

/// One edition of the consent texts: the texts of every language and their version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edition {
    version: String,
    texts: [ConsentTemplates; 3],
}

impl Edition {
    /// An edition of the texts in fi, sv and en. Its version is the first 16 hex digits of the
    /// SHA-256 of the three languages' texts (as JSON, members in a fixed order): any change of
    /// any word changes it.
    pub fn new(fi: ConsentTemplates, sv: ConsentTemplates, en: ConsentTemplates) -> Edition {
        let texts = [fi, sv, en];
        // Serializing plain strings and maps of strings cannot fail.
        let bytes = serde_json::to_vec(&texts).unwrap_or_default();
        let version = hex(&crate::vault::sha256(&bytes)[..8]);
        Edition { version, texts }
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn texts(&self, lang: Lang) -> &ConsentTemplates {
        match lang {
            Lang::Fi => &self.texts[0],
            Lang::Sv => &self.texts[1],
            Lang::En => &self.texts[2],
        }
    }
}

/// What a consent text is about.
#[derive(Clone, Copy, Debug)]
pub enum Subject<'a> {
    /// A transfer of these categories.
    Categories(Scope),
    /// A check: one question answered, no record moves.
    Question(&'a str),
}

/// Everything a consent text depends on besides its language and edition.
#[derive(Clone, Copy, Debug)]
pub struct TextRequest<'a> {
    pub source: &'a Participant,
    pub destination: &'a Participant,
    pub subject: Subject<'a>,
    pub purpose: &'a str,
    pub basis: Basis,
}

/// A composed consent text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentText {
    pub version: String,
    pub lang: Lang,
    /// Plain UTF-8 text, paragraphs separated by an empty line, ending in a line break.
    pub text: String,
    /// SHA-256 of `text`'s UTF-8 bytes.
    pub sha256: [u8; 32],
}

/// Why a consent text cannot be composed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsentTextError {
    #[error("participant {0} has no name in the directory")]
    Unnamed(String),
    #[error("question {0} is not a known question")]
    UnknownQuestion(String),
    #[error("participant {0} receives nothing by law (it has no statutory_law)")]
    NoStatute(String),
}

/// The consent texts in force: the current edition and, while texts shown before the last
/// change may still be signed, the previous one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalog {
    current: Edition,
    previous: Option<Edition>,
}

impl Catalog {
    pub fn new(current: Edition, previous: Option<Edition>) -> Catalog {
        // An unchanged previous edition is no edition of its own.
        let previous = previous.filter(|p| p.version != current.version);
        Catalog { current, previous }
    }

    pub fn current(&self) -> &Edition {
        &self.current
    }

    pub fn previous(&self) -> Option<&Edition> {
        self.previous.as_ref()
    }

    /// The text of `request` in `lang` from the current edition.
    pub fn text(&self, request: &TextRequest, lang: Lang) -> Result<ConsentText, ConsentTextError> {
        compose(&self.current, request, lang)
    }

    /// The version of the edition (current first, then previous) whose text of `request` in
    /// `lang` hashes to `sha256`; `None` when neither does.
    pub fn matching_version(
        &self,
        request: &TextRequest,
        lang: Lang,
        sha256: &[u8; 32],
    ) -> Result<Option<&str>, ConsentTextError> {
        for edition in std::iter::once(&self.current).chain(self.previous.as_ref()) {
            if compose(edition, request, lang)?.sha256 == *sha256 {
                return Ok(Some(edition.version()));
            }
        }
        Ok(None)
    }

    /// The text of `request` in `lang` from the previous edition, when there is one.
    pub fn previous_text(
        &self,
        request: &TextRequest,
        lang: Lang,
    ) -> Result<Option<ConsentText>, ConsentTextError> {
        self.previous
            .as_ref()
            .map(|edition| compose(edition, request, lang))
            .transpose()
    }
}

fn name(p: &Participant, lang: Lang) -> Result<&str, ConsentTextError> {
    p.name
        .as_ref()
        .map(|n| n.get(lang))
        .ok_or_else(|| ConsentTextError::Unnamed(p.id.clone()))
}

/// The text of `request` in `lang` from `edition`: title; who sends what to whom; on what
/// basis; why; what moves (each category of the scope, and no other) or which question is
/// answered; that nothing else moves; how long what is kept; how to cancel; where to see it
/// later; the version.
fn compose(
    edition: &Edition,
    request: &TextRequest,
    lang: Lang,
) -> Result<ConsentText, ConsentTextError> {
    let t = edition.texts(lang);
    let src = name(request.source, lang)?;
    let dst = name(request.destination, lang)?;
    let law = match request.basis {
        Basis::Consent => "",
        Basis::Statutory => request
            .destination
            .statutory
            .as_ref()
            .map(|s| s.law.get(lang))
            .ok_or_else(|| ConsentTextError::NoStatute(request.destination.id.clone()))?,
    };
    let purpose = t.purpose_words(request.purpose, dst);
    let version = edition.version();
    let values: [(&str, &dyn fmt::Display); 5] = [
        ("src", &src),
        ("dst", &dst),
        ("law", &law),
        ("purpose", &purpose),
        ("version", &version),
    ];
    let mut paragraphs: Vec<String> = Vec::new();
    let mut add = |template: &str| paragraphs.push(fill(template, &values));
    add(match (request.basis, &request.subject) {
        (Basis::Consent, Subject::Categories(_)) => &t.title_consent,
        (Basis::Statutory, Subject::Categories(_)) => &t.title_statutory,
        (Basis::Consent, Subject::Question(_)) => &t.title_check_consent,
        (Basis::Statutory, Subject::Question(_)) => &t.title_check_statutory,
    });
    match request.subject {
        Subject::Categories(_) => add(&t.intro_categories),
        Subject::Question(q) => {
            let words = t
                .questions
                .get(q)
                .ok_or_else(|| ConsentTextError::UnknownQuestion(q.to_owned()))?;
            let mut with_question = values.to_vec();
            with_question.push(("question", &words));
            paragraphs.push(fill(&t.intro_question, &with_question));
        }
    }
    let mut add = |template: &str| paragraphs.push(fill(template, &values));
    add(match request.basis {
        Basis::Consent => &t.basis_consent,
        Basis::Statutory => &t.basis_statutory,
    });
    add(&t.purpose);
    match request.subject {
        Subject::Categories(scope) => {
            let mut list = fill(&t.what_moves, &values);
            for category in scope.iter() {
                list.push_str("\n- ");
                list.push_str(&fill(t.categories.get(category), &values));
            }
            paragraphs.push(list);
            let mut add = |template: &str| paragraphs.push(fill(template, &values));
            if scope.contains(Category::Support) {
                add(&t.sensitive);
            }
            add(&t.nothing_else);
            add(&t.keeping);
            if request.basis == Basis::Consent {
                add(&t.cancel);
            }
        }
        Subject::Question(_) => add(&t.no_record),
    }
    let mut add = |template: &str| paragraphs.push(fill(template, &values));
    add(&t.later);
    add(&t.version);
    let mut text = paragraphs.join("\n\n");
    text.push('\n');
    let sha256 = crate::vault::sha256(text.as_bytes());
    Ok(ConsentText {
        version: version.to_owned(),
        lang,
        text,
        sha256,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use crate::identity::{IdentityRule, Role};

    /// Templates whose every piece names itself, in `lang`.
    pub fn templates(lang: &str) -> ConsentTemplates {
        let s = |piece: &str| format!("{lang}:{piece} {{src}}>{{dst}}");
        ConsentTemplates {
            title_consent: s("title_consent"),
            title_statutory: s("title_statutory"),
            title_check_consent: s("title_check_consent"),
            title_check_statutory: s("title_check_statutory"),
            intro_categories: s("intro_categories"),
            intro_question: format!("{lang}:intro_question {{question}}"),
            basis_consent: s("basis_consent"),
            basis_statutory: format!("{lang}:basis_statutory {{law}}"),
            purpose: format!("{lang}:purpose {{purpose}}"),
            purposes: BTreeMap::from([("school-change".into(), format!("{lang}:moving"))]),
            purpose_other: format!("{lang}:other {{code}} {{dst}}"),
            what_moves: s("what_moves"),
            categories: CategoryTexts {
                identity: format!("{lang}:cat-identity"),
                enrolment: format!("{lang}:cat-enrolment"),
                achievements: format!("{lang}:cat-achievements"),
                mobility: format!("{lang}:cat-mobility"),
                registrations: format!("{lang}:cat-registrations"),
                support: format!("{lang}:cat-support"),
            },
            sensitive: s("sensitive"),
            nothing_else: s("nothing_else"),
            keeping: s("keeping"),
            no_record: s("no_record"),
            cancel: s("cancel"),
            later: s("later"),
            version: format!("{lang}:version {{version}}"),
            questions: QuestionTexts {
                basic_education_completed: format!("{lang}:q-basic"),
                upper_secondary_completed: format!("{lang}:q-upper"),
                higher_education_degree_completed: format!("{lang}:q-degree"),
                active_study_right: format!("{lang}:q-active"),
            },
        }
    }

    pub fn edition() -> Edition {
        Edition::new(templates("fi"), templates("sv"), templates("en"))
    }

    fn named(id: &str, statutory: Option<StatutoryRules>) -> Participant {
        Participant {
            id: id.into(),
            roles: vec![Role::Source, Role::Destination],
            identity: IdentityRule::SanUri(format!("urn:{id}")),
            endpoint: None,
            name: Some(Localized {
                fi: format!("{id}-fi"),
                sv: format!("{id}-sv"),
                en: format!("{id}-en"),
            }),
            statutory,
            redirect_uris: Vec::new(),
        }
    }

    fn law() -> StatutoryRules {
        StatutoryRules {
            purposes: vec!["school-change".into()],
            scope: Scope::parse("identity enrolment").unwrap(),
            law: Localized {
                fi: "POL 40 §".into(),
                sv: "GrUL 40 §".into(),
                en: "BEA s. 40".into(),
            },
        }
    }

    #[test]
    fn a_text_names_both_organisations_and_exactly_the_categories_of_its_scope() {
        let (turku, espoo) = (named("turku", None), named("espoo", None));
        let catalog = Catalog::new(edition(), None);
        for scope in [
            "identity",
            "identity achievements",
            "identity enrolment support",
        ] {
            let scope = Scope::parse(scope).unwrap();
            for lang in Lang::ALL {
                let request = TextRequest {
                    source: &turku,
                    destination: &espoo,
                    subject: Subject::Categories(scope),
                    purpose: "school-change",
                    basis: Basis::Consent,
                };
                let t = catalog.text(&request, lang).unwrap();
                let code = lang.code();
                assert!(t.text.contains(&format!("turku-{code}>espoo-{code}")));
                for c in Category::ALL {
                    assert_eq!(
                        t.text.contains(&format!("{code}:cat-{c}")),
                        scope.contains(c),
                        "{c} in {scope}: {}",
                        t.text
                    );
                }
                assert_eq!(
                    t.text.contains(&format!("{code}:sensitive")),
                    scope.contains(Category::Support)
                );
                assert!(t.text.contains(&format!("{code}:moving")));
                assert!(t.text.contains(&format!("{code}:cancel")));
                assert!(t.text.ends_with(&format!("{code}:version {}\n", t.version)));
                assert_eq!(t.sha256, crate::vault::sha256(t.text.as_bytes()));
            }
        }
    }

    #[test]
    fn the_hash_follows_every_input_and_the_version_every_word() {
        let (turku, espoo, oulu) = (
            named("turku", None),
            named("espoo", Some(law())),
            named("oulu", None),
        );
        let catalog = Catalog::new(edition(), None);
        let base = TextRequest {
            source: &turku,
            destination: &espoo,
            subject: Subject::Categories(Scope::parse("identity enrolment").unwrap()),
            purpose: "school-change",
            basis: Basis::Consent,
        };
        let hash = |r: &TextRequest, lang| catalog.text(r, lang).unwrap().sha256;
        let first = hash(&base, Lang::Fi);
        assert_eq!(first, hash(&base, Lang::Fi), "stable");
        let mut seen = vec![first];
        for (r, lang) in [
            (base, Lang::Sv),
            (base, Lang::En),
            (
                TextRequest {
                    subject: Subject::Categories(Scope::parse("identity").unwrap()),
                    ..base
                },
                Lang::Fi,
            ),
            (
                TextRequest {
                    purpose: "study-admission",
                    ..base
                },
                Lang::Fi,
            ),
            (
                TextRequest {
                    destination: &oulu,
                    ..base
                },
                Lang::Fi,
            ),
            (
                TextRequest {
                    basis: Basis::Statutory,
                    ..base
                },
                Lang::Fi,
            ),
            (
                TextRequest {
                    subject: Subject::Question("active_study_right"),
                    ..base
                },
                Lang::Fi,
            ),
        ] {
            let h = hash(&r, lang);
            assert!(!seen.contains(&h), "{r:?} {lang}");
            seen.push(h);
        }
        let statutory = catalog
            .text(
                &TextRequest {
                    basis: Basis::Statutory,
                    ..base
                },
                Lang::Sv,
            )
            .unwrap();
        assert!(statutory.text.contains("sv:basis_statutory GrUL 40 §"));
        assert!(!statutory.text.contains("sv:cancel"));
        assert_eq!(
            catalog.text(
                &TextRequest {
                    basis: Basis::Statutory,
                    destination: &oulu,
                    ..base
                },
                Lang::Fi
            ),
            Err(ConsentTextError::NoStatute("oulu".into()))
        );
        let question = catalog
            .text(
                &TextRequest {
                    subject: Subject::Question("basic_education_completed"),
                    ..base
                },
                Lang::En,
            )
            .unwrap();
        assert!(question.text.contains("en:intro_question en:q-basic"));
        assert!(question.text.contains("en:no_record"));
        assert!(!question.text.contains(":cat-"), "{}", question.text);
        assert!(matches!(
            catalog.text(
                &TextRequest {
                    subject: Subject::Question("grades"),
                    ..base
                },
                Lang::En
            ),
            Err(ConsentTextError::UnknownQuestion(_))
        ));
        let other = catalog
            .text(
                &TextRequest {
                    purpose: "x-1",
                    ..base
                },
                Lang::Fi,
            )
            .unwrap();
        assert!(other.text.contains("fi:purpose fi:other x-1 espoo-fi"));

        // One word of one language changes the version, and so every text's hash.
        let mut sv = templates("sv");
        sv.later.push('!');
        let changed = Edition::new(templates("fi"), sv, templates("en"));
        assert_ne!(changed.version(), edition().version());
        assert_eq!(edition().version(), edition().version());
        assert_eq!(edition().version().len(), 16);
        let next = Catalog::new(changed, Some(edition()));
        assert_ne!(next.text(&base, Lang::Fi).unwrap().sha256, first);
        // The previous edition's text is still recognised, by its version.
        assert_eq!(
            next.matching_version(&base, Lang::Fi, &first).unwrap(),
            Some(edition().version())
        );
        let now = next.text(&base, Lang::Fi).unwrap();
        assert_eq!(
            next.matching_version(&base, Lang::Fi, &now.sha256).unwrap(),
            Some(now.version.as_str())
        );
        assert_eq!(
            next.previous_text(&base, Lang::Fi).unwrap().unwrap().sha256,
            first
        );
        assert_eq!(
            next.matching_version(&base, Lang::Sv, &first).unwrap(),
            None
        );
        // A catalog whose previous edition is the current one has no previous edition.
        assert!(
            Catalog::new(edition(), Some(edition()))
                .previous()
                .is_none()
        );
    }

    #[test]
    fn statutory_rules_cover_purpose_and_every_category() {
        let rules = law();
        assert!(rules.allows("school-change", Scope::parse("identity enrolment").unwrap()));
        assert!(rules.allows("school-change", Scope::parse("identity").unwrap()));
        assert!(!rules.allows(
            "school-change",
            Scope::parse("identity achievements").unwrap()
        ));
        assert!(!rules.allows("study-admission", Scope::parse("identity").unwrap()));
        assert_eq!(Basis::parse("statutory"), Some(Basis::Statutory));
        assert_eq!(Basis::parse("Consent"), None);
    }
}

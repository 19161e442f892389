//! What every server-rendered page shares: the language ([`Lang`], from `Accept-Language`), the
//! texts of each language ([`texts`], one file per language in `crates/gateway/texts/`, compiled
//! in), filling their `{name}` placeholders ([`fill`]), and the HTML answer with its security
//! headers ([`html`]). The pages themselves are askama templates in `crates/gateway/templates/`
//! (`base.html` is the layout every page extends), escaped by askama as they are rendered.
//!
//! Must not: put markup into texts or build HTML by hand; a value reaches a page only through a
//! template, which escapes it.

use std::sync::OnceLock;

use http::StatusCode;
use hyper::Response;
use serde::Deserialize;

use super::operator::OperatorTexts;
use super::students::StudentTexts;
use super::text_response;
use crate::server::Body;
use siirto_core::consent::{Catalog, ConsentTemplates, Edition};

/// A language of the pages (fi, sv, en; `siirto_core::lang`).
pub use siirto_core::lang::{Lang, fill};

/// The texts of one language: one table per page.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Texts {
    pub operator: OperatorTexts,
    /// The pieces of the consent text (`GET /v1/consent-text`).
    pub consent: ConsentTemplates,
    /// The consent text's pieces before their last change, while authorizations signed over
    /// them are still accepted.
    #[serde(default)]
    pub consent_previous: Option<ConsentTemplates>,
    /// The student's own page.
    pub student: StudentTexts,
}

const SOURCES: [(Lang, &str); 3] = [
    (Lang::Fi, include_str!("../../texts/fi.toml")),
    (Lang::Sv, include_str!("../../texts/sv.toml")),
    (Lang::En, include_str!("../../texts/en.toml")),
];

fn parse(source: &str) -> Result<Texts, toml::de::Error> {
    toml::from_str(source)
}

/// The texts of `lang`.
pub fn texts(lang: Lang) -> &'static Texts {
    static TEXTS: OnceLock<Vec<(Lang, Texts)>> = OnceLock::new();
    let all = TEXTS.get_or_init(|| {
        SOURCES
            .iter()
            .map(|(lang, source)| {
                // The files are compiled in, and `every_language_has_every_text_and_placeholder`
                // parses each of them: this cannot fail in a build whose tests pass.
                #[allow(clippy::expect_used)]
                let texts = parse(source).expect("the texts of crates/gateway/texts/ parse");
                (*lang, texts)
            })
            .collect()
    });
    all.iter()
        .find(|(l, _)| *l == lang)
        .map(|(_, t)| t)
        .unwrap_or(&all[0].1)
}

/// The consent texts of the text files: the current edition (`[consent]` of each language) and
/// the previous one (`[consent_previous]`, when every language has it).
pub fn consent_catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let [fi, sv, en] = Lang::ALL.map(texts);
        let current = Edition::new(fi.consent.clone(), sv.consent.clone(), en.consent.clone());
        let previous = match (
            &fi.consent_previous,
            &sv.consent_previous,
            &en.consent_previous,
        ) {
            (Some(fi), Some(sv), Some(en)) => {
                Some(Edition::new(fi.clone(), sv.clone(), en.clone()))
            }
            _ => None,
        };
        Catalog::new(current, previous)
    })
}

/// An HTML answer: a rendered page with headers that forbid scripts, framing and outside
/// assets. A page that could not be rendered (a value whose `Display` failed) is a plain 500.
pub fn html(status: StatusCode, lang: Lang, page: askama::Result<String>) -> Response<Body> {
    let body = match page {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "a page could not be rendered");
            return text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                "the page could not be rendered\n",
            );
        }
    };
    let mut r = text_response(status, "text/html; charset=utf-8", body);
    let h = r.headers_mut();
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
        ("x-frame-options", "DENY"),
    ] {
        h.insert(name, http::HeaderValue::from_static(value));
    }
    h.insert(
        http::header::CONTENT_LANGUAGE,
        http::HeaderValue::from_static(lang.code()),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn placeholders(text: &str) -> BTreeSet<&str> {
        text.split('{')
            .skip(1)
            .filter_map(|s| s.split_once('}').map(|(name, _)| name))
            .collect()
    }

    /// Every text of `table` by its dotted key (`consent.categories.identity`).
    fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<(String, String)>) {
        for (key, value) in table {
            let key = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                toml::Value::Table(inner) => flatten(&key, inner, out),
                toml::Value::String(text) => out.push((key, text.clone())),
                other => panic!("{key}: {other} is not a text"),
            }
        }
    }

    #[test]
    fn every_language_has_every_text_and_placeholder() {
        let tables: Vec<(Lang, Vec<(String, String)>)> = SOURCES
            .iter()
            .map(|(lang, source)| {
                parse(source).unwrap_or_else(|e| panic!("{}.toml: {e}", lang.code()));
                let mut texts = Vec::new();
                flatten("", &toml::from_str(source).unwrap(), &mut texts);
                (*lang, texts)
            })
            .collect();
        let keys = |t: &[(String, String)]| t.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        let (_, english) = &tables[2];
        for (lang, theirs) in &tables {
            assert_eq!(keys(theirs), keys(english), "{}.toml", lang.code());
            for ((key, mine), (_, other)) in english.iter().zip(theirs) {
                assert_eq!(
                    placeholders(mine),
                    placeholders(other),
                    "{}.toml {key}",
                    lang.code()
                );
                assert!(
                    !other.contains('<') && !other.trim().is_empty(),
                    "{}.toml {key}: plain text, not empty",
                    lang.code()
                );
            }
        }
        assert_eq!(texts(Lang::Fi).operator.nav_transfers, "Siirrot");
        assert_eq!(texts(Lang::Sv).operator.nav_transfers, "Överföringar");
        assert_eq!(texts(Lang::En).operator.nav_transfers, "Transfers");
    }
}

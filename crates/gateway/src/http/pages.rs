//! What every server-rendered page shares: the language ([`Lang`], from `Accept-Language`), the
//! texts of each language ([`texts`], one file per language in `crates/gateway/texts/`, compiled
//! in), filling their `{name}` placeholders ([`fill`]), and the HTML answer with its security
//! headers ([`html`]). The pages themselves are askama templates in `crates/gateway/templates/`
//! (`base.html` is the layout every page extends), escaped by askama as they are rendered.
//!
//! Must not: put markup into texts or build HTML by hand; a value reaches a page only through a
//! template, which escapes it.

use std::fmt::Display;
use std::sync::OnceLock;

use http::StatusCode;
use hyper::Response;
use serde::Deserialize;

use super::operator::OperatorTexts;
use super::text_response;
use crate::server::Body;

/// A language of the pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Fi,
    Sv,
    En,
}

impl Lang {
    pub const ALL: [Lang; 3] = [Lang::Fi, Lang::Sv, Lang::En];

    /// The BCP 47 tag (`<html lang>`).
    pub fn code(self) -> &'static str {
        match self {
            Lang::Fi => "fi",
            Lang::Sv => "sv",
            Lang::En => "en",
        }
    }

    /// The language of a code (`fi`, `sv`, `en`, in any case).
    pub fn parse(code: &str) -> Option<Lang> {
        Lang::ALL
            .into_iter()
            .find(|l| l.code().eq_ignore_ascii_case(code.trim()))
    }

    /// The language an `Accept-Language` header prefers most among fi, sv and en (by its
    /// q-values, then its order; `fi-FI` counts as `fi`), or `default`.
    pub fn negotiate(accept_language: Option<&str>, default: Lang) -> Lang {
        let mut best: Option<(Lang, f32)> = None;
        for range in accept_language.unwrap_or("").split(',') {
            let mut parts = range.split(';').map(str::trim);
            let tag = parts.next().unwrap_or("");
            let primary = tag.split('-').next().unwrap_or("").to_ascii_lowercase();
            let Some(lang) = Lang::ALL.into_iter().find(|l| l.code() == primary) else {
                continue;
            };
            let q = parts
                .find_map(|p| p.strip_prefix("q=")?.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if q > 0.0 && best.is_none_or(|(_, b)| q > b) {
                best = Some((lang, q));
            }
        }
        best.map_or(default, |(lang, _)| lang)
    }
}

/// The texts of one language: one table per page.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Texts {
    pub operator: OperatorTexts,
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

/// `text` with each `{name}` of `values` replaced by its value (in one pass: a value is never
/// read for placeholders); other braces stay as they are.
pub fn fill(text: &str, values: &[(&str, &dyn Display)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after.split_once('}').and_then(|(name, tail)| {
            let (_, value) = values.iter().find(|(n, _)| *n == name)?;
            Some((value, tail))
        });
        match value {
            Some((value, tail)) => {
                out.push_str(&value.to_string());
                rest = tail;
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
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

    #[test]
    fn every_language_has_every_text_and_placeholder() {
        let tables: Vec<(Lang, toml::Table)> = SOURCES
            .iter()
            .map(|(lang, source)| {
                parse(source).unwrap_or_else(|e| panic!("{}.toml: {e}", lang.code()));
                (*lang, toml::from_str(source).unwrap())
            })
            .collect();
        let (_, english) = &tables[2];
        for (lang, table) in &tables {
            for (page, texts) in english {
                let theirs = table[page].as_table().unwrap();
                for (key, text) in texts.as_table().unwrap() {
                    let mine = text.as_str().unwrap();
                    let other = theirs[key].as_str().unwrap();
                    assert_eq!(
                        placeholders(mine),
                        placeholders(other),
                        "{}.toml [{page}] {key}",
                        lang.code()
                    );
                    assert!(
                        !other.contains('<') && !other.trim().is_empty(),
                        "{}.toml [{page}] {key}: plain text, not empty",
                        lang.code()
                    );
                }
            }
        }
        assert_eq!(texts(Lang::Fi).operator.nav_transfers, "Siirrot");
        assert_eq!(texts(Lang::Sv).operator.nav_transfers, "Överföringar");
        assert_eq!(texts(Lang::En).operator.nav_transfers, "Transfers");
    }

    #[test]
    fn the_language_follows_accept_language() {
        let en = Lang::En;
        assert_eq!(Lang::negotiate(None, en), Lang::En);
        assert_eq!(
            Lang::negotiate(Some("fi-FI,fi;q=0.9,en;q=0.8"), en),
            Lang::Fi
        );
        assert_eq!(
            Lang::negotiate(Some("de-DE, sv;q=0.5, en;q=0.4"), en),
            Lang::Sv
        );
        assert_eq!(Lang::negotiate(Some("en;q=0.3, SV-fi;q=0.7"), en), Lang::Sv);
        assert_eq!(Lang::negotiate(Some("fi;q=0, de"), en), Lang::En);
        assert_eq!(Lang::negotiate(Some("de"), Lang::Fi), Lang::Fi);
        assert_eq!(Lang::negotiate(Some("sv, fi"), en), Lang::Sv);
    }

    #[test]
    fn placeholders_are_filled() {
        assert_eq!(
            fill(
                "{count} entries of {who}; {count}",
                &[("count", &3), ("who", &"<x>")]
            ),
            "3 entries of <x>; 3"
        );
        assert_eq!(
            fill("{a} {b} {c} {", &[("a", &"{b}"), ("b", &"x")]),
            "{b} x {c} {"
        );
    }
}

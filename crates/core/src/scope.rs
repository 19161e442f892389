//! The data categories a student can agree to share, and the set of them an authorization names.
//!
//! Owns: [`Category`] and [`Scope`] (parsing the space-separated `scope` claim). It does not
//! decide what a category contains in a record; `record.rs` maps every field to one category.

use std::fmt;

/// One data category of CONTRACT.md's `scope` claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// Who the student is: identifiers, names, birth date, mother tongue. Always required.
    Identity,
    /// Study rights and enrolments, with their state periods.
    Enrolment,
    /// Courses, modules and degrees completed, with grades and credits.
    Achievements,
    /// Exchange and mobility periods.
    Mobility,
    /// Term registrations (present/absent).
    Registrations,
    /// Special-needs support decisions. Sensitive: withheld unless named.
    Support,
}

impl Category {
    pub const ALL: [Category; 6] = [
        Category::Identity,
        Category::Enrolment,
        Category::Achievements,
        Category::Mobility,
        Category::Registrations,
        Category::Support,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Identity => "identity",
            Category::Enrolment => "enrolment",
            Category::Achievements => "achievements",
            Category::Mobility => "mobility",
            Category::Registrations => "registrations",
            Category::Support => "support",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == s)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of categories. Displayed space-separated in the canonical order of [`Category::ALL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Scope(u8);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("scope is empty")]
    Empty,
    #[error("scope names an unknown category `{0}`")]
    UnknownCategory(String),
    #[error("scope names `{0}` twice")]
    Duplicate(String),
    #[error("scope must contain `identity`")]
    MissingIdentity,
}

impl Scope {
    pub const fn empty() -> Self {
        Scope(0)
    }

    /// Every category, `support` included.
    pub fn all() -> Self {
        Category::ALL.into_iter().collect()
    }

    /// Parses a transfer scope: space-separated known categories, each once, `identity` required.
    pub fn parse(s: &str) -> Result<Scope, ScopeError> {
        let mut scope = Scope::empty();
        for word in s.split(' ').filter(|w| !w.is_empty()) {
            let c =
                Category::parse(word).ok_or_else(|| ScopeError::UnknownCategory(word.into()))?;
            if scope.contains(c) {
                return Err(ScopeError::Duplicate(word.into()));
            }
            scope = scope.with(c);
        }
        if scope.0 == 0 {
            return Err(ScopeError::Empty);
        }
        if !scope.contains(Category::Identity) {
            return Err(ScopeError::MissingIdentity);
        }
        Ok(scope)
    }

    pub fn contains(self, c: Category) -> bool {
        self.0 & c.bit() != 0
    }

    #[must_use]
    pub fn with(self, c: Category) -> Scope {
        Scope(self.0 | c.bit())
    }

    #[must_use]
    pub fn without(self, c: Category) -> Scope {
        Scope(self.0 & !c.bit())
    }

    pub fn iter(self) -> impl Iterator<Item = Category> {
        Category::ALL.into_iter().filter(move |c| self.contains(*c))
    }
}

impl FromIterator<Category> for Scope {
    fn from_iter<I: IntoIterator<Item = Category>>(iter: I) -> Self {
        iter.into_iter().fold(Scope::empty(), Scope::with)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for c in self.iter() {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(c.as_str())?;
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays_canonically() {
        let s = Scope::parse("achievements  identity support").unwrap();
        assert!(s.contains(Category::Support));
        assert!(!s.contains(Category::Mobility));
        assert_eq!(s.to_string(), "identity achievements support");
    }

    #[test]
    fn rejections_name_the_problem() {
        assert_eq!(Scope::parse(""), Err(ScopeError::Empty));
        assert_eq!(
            Scope::parse("achievements"),
            Err(ScopeError::MissingIdentity)
        );
        assert_eq!(
            Scope::parse("identity grades"),
            Err(ScopeError::UnknownCategory("grades".into()))
        );
        assert_eq!(
            Scope::parse("identity identity"),
            Err(ScopeError::Duplicate("identity".into()))
        );
        assert_eq!(
            Scope::parse("identity transparency"),
            Err(ScopeError::UnknownCategory("transparency".into()))
        );
    }
}

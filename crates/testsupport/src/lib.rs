//! siirto-testsupport: what Siirto's tests share about the machine they run on — where the
//! shared corpus of real documents is, and the loud-skip rule for what a fresh clone may lack.
//!
//! A crate of its own, with no dependencies, so that every test can use the same code: the
//! integration tests of `tests/` and the unit tests of `siirto-core` (which `siirto-devkit`
//! could not serve: it depends on `siirto-core`). Only ever a dev-dependency.
//!
//! # The loud-skip rule
//! A test that needs something this machine lacks — the corpus, an outside tool — prints
//! `SKIPPED: <test> needs …` on stderr and passes, so that `cargo test` in a fresh clone is
//! green and says what did not run. Under `SIIRTO_REQUIRE_TOOLS=1` (CI) it fails instead.
//!
//! # The corpus
//! Real VIRTA and EMREX ELMO documents and their official schemas, with `MANIFEST.tsv` listing
//! libxml2's verdict on each. It is not part of the repository: [`corpus`] finds it at
//! `$SIIRTO_CORPUS` (a relative path is taken from the repository root), else at
//! `../shared/corpus` next to the repository.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The file whose presence means the corpus is there.
const MANIFEST: &str = "MANIFEST.tsv";

/// Whether a missing corpus or tool must fail the test (`SIIRTO_REQUIRE_TOOLS=1`).
pub fn tools_required() -> bool {
    std::env::var("SIIRTO_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// The repository's root directory (this crate is `crates/testsupport` in it).
pub fn repository_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Invariant: CARGO_MANIFEST_DIR is <root>/crates/testsupport, two levels below the root.
    here.ancestors().nth(2).unwrap_or(here).to_path_buf()
}

/// Where the corpus is looked for: `$SIIRTO_CORPUS` (relative to the repository root when
/// relative), else `../shared/corpus` from the repository root. It may not exist.
pub fn corpus_location() -> PathBuf {
    let root = repository_root();
    match std::env::var_os("SIIRTO_CORPUS") {
        Some(dir) => root.join(dir),
        None => root.join("../shared/corpus"),
    }
}

/// The corpus directory when it is there (it holds `MANIFEST.tsv`). When it is not, the
/// calling test is skipped loudly ([`skip`]: `SKIPPED: <test> needs the corpus (set
/// SIIRTO_CORPUS) …`) and this returns `None`, so the test returns and passes; under
/// `SIIRTO_REQUIRE_TOOLS=1` it panics instead.
///
/// ```no_run
/// let Some(corpus) = siirto_testsupport::corpus() else { return };
/// let manifest = std::fs::read_to_string(corpus.join("MANIFEST.tsv"));
/// ```
#[track_caller]
pub fn corpus() -> Option<PathBuf> {
    let dir = corpus_location();
    if dir.join(MANIFEST).is_file() {
        return Some(dir);
    }
    skip(&format!(
        "needs the corpus (set SIIRTO_CORPUS): {} has no {MANIFEST}",
        dir.display()
    ));
    None
}

/// The loud-skip rule for the running test: `SKIPPED: <test> <what>` on stderr (once per
/// test and reason, however often it is called), or a panic naming the same when
/// `SIIRTO_REQUIRE_TOOLS=1`. `what` says what the test needs and lacks, e.g. `needs xmllint
/// (install libxml2-utils)`.
#[track_caller]
pub fn skip(what: &str) {
    let test = current_test();
    if tools_required() {
        panic!("{test} {what}, and SIIRTO_REQUIRE_TOOLS=1 makes that a failure");
    }
    static SAID: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let line = format!("SKIPPED: {test} {what}");
    // A poisoned lock only means another test panicked while holding it: the set is still fine.
    let mut said = SAID
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if said.get_or_insert_with(HashSet::new).insert(line.clone()) {
        // Straight to the process's stderr: libtest captures `eprintln!` of passing tests, and
        // a skip must be seen.
        let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
    }
}

/// The running test's name: libtest runs each test on a thread named after it. Outside
/// libtest (a `harness = false` target's `main`), the program's name without cargo's
/// `-<hash>` suffix.
fn current_test() -> String {
    if let Some(name) = std::thread::current().name().filter(|name| *name != "main") {
        return name.to_owned();
    }
    let program = std::env::args_os().next().map(PathBuf::from);
    let stem = program
        .as_deref()
        .and_then(Path::file_stem)
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default();
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.bytes().all(|b| b.is_ascii_hexdigit()) => name.to_owned(),
        _ if stem.is_empty() => "this test".to_owned(),
        _ => stem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_location_is_next_to_the_repository() {
        if std::env::var_os("SIIRTO_CORPUS").is_some() {
            return; // the location is the variable's: nothing default to check
        }
        let expected = repository_root().join("../shared/corpus");
        assert_eq!(corpus_location(), expected);
        assert!(repository_root().join("Cargo.toml").is_file());
        assert!(repository_root().join("crates/testsupport").is_dir());
    }

    #[test]
    fn the_test_name_is_the_thread_name() {
        assert_eq!(current_test(), "tests::the_test_name_is_the_thread_name");
    }
}

//! siirto-buildinfo: what `siirto --version` says — the package version and the git revision the
//! binary was built from.
//!
//! Owns: [`VERSION`], [`GIT_REVISION`] and [`LONG_VERSION`]. Its build script (`build.rs`) finds
//! the revision: `SIIRTO_GIT_REVISION` when set (e.g. a container build without `.git`), else
//! `git rev-parse --short=12 HEAD`, else `unknown`. It is a crate of its own because cargo
//! rebuilds everything in a package whose build script reruns: here a commit rebuilds these few
//! lines and relinks the `siirto` binary, not the gateway or the integration tests. Depends on
//! nothing; only the binary depends on it. `tests/cli.rs` checks what `--version` prints against
//! `git rev-parse`.

/// The package version (`Cargo.toml`'s `workspace.package.version`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git revision built from (12 hex digits), or `unknown` outside a git checkout. It is the
/// commit `HEAD` named at build time; changes not yet committed are not marked.
pub const GIT_REVISION: &str = env!("SIIRTO_GIT_REVISION");

/// `VERSION (git GIT_REVISION)`, e.g. `0.1.0 (git 1a2b3c4d5e6f)`.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("SIIRTO_GIT_REVISION"),
    ")"
);

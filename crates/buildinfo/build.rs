//! Finds the git revision the build is made from: `SIIRTO_GIT_REVISION` when set (a container
//! build without `.git`), else `git rev-parse --short=12 HEAD`, else `unknown` (a source tarball,
//! no git). Cargo reruns this only when HEAD, the branch it names or the packed refs change, so a
//! commit rebuilds this small crate and relinks the binary, and nothing else.

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// A path git names, absolute (git answers relative to `dir` in a plain checkout).
fn git_path(dir: &Path, name: &str) -> Option<PathBuf> {
    git(dir, &["rev-parse", "--git-path", name]).map(|p| dir.join(p))
}

/// Watches what moves when HEAD moves: HEAD itself, the branch's loose ref (or, while the ref is
/// only packed, its folder, where a commit writes it), and `packed-refs`. Only paths that exist:
/// cargo reruns a build script on every build while a watched path is missing.
fn watch(dir: &Path) {
    let mut paths = Vec::new();
    paths.extend(git_path(dir, "HEAD"));
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"])
        && let Some(loose) = git_path(dir, &branch)
    {
        if loose.exists() {
            paths.push(loose);
        } else {
            paths.extend(loose.parent().map(Path::to_path_buf));
        }
    }
    paths.extend(git_path(dir, "packed-refs"));
    for p in paths.into_iter().filter(|p| p.exists()) {
        println!("cargo::rerun-if-changed={}", p.display());
    }
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=SIIRTO_GIT_REVISION");
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let revision = match std::env::var("SIIRTO_GIT_REVISION") {
        Ok(r) if !r.trim().is_empty() => r.trim().to_owned(),
        _ => {
            watch(&dir);
            git(&dir, &["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_owned())
        }
    };
    println!("cargo::rustc-env=SIIRTO_GIT_REVISION={revision}");
}

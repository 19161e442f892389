//! The workspace's layers as the compiler sees them. From `cargo metadata`: the XML crate
//! (siirto-xsd) and the pure core (siirto-core) must not reach tokio's networking, hyper, sqlx
//! or rustls through their normal dependencies, direct or transitive; siirto-xsd depends on no
//! other crate of Siirto, and siirto-core on none but siirto-xsd. Dev-dependencies (tests may
//! start servers) and build-dependencies (run at build time, not linked) do not count.
//!
//! So that the check cannot pass by walking nothing, it also requires the gateway crate to
//! reach every one of them.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// A package that a pure crate must not reach, and why.
fn forbidden(name: &str) -> Option<&'static str> {
    match name {
        "hyper" | "hyper-util" => Some("hyper"),
        "rustls" | "tokio-rustls" => Some("rustls"),
        n if n == "sqlx" || n.starts_with("sqlx-") => Some("sqlx"),
        _ => None,
    }
}

/// tokio features that open sockets (`full` includes `net`).
const TOKIO_NET: &[&str] = &["net", "full"];

/// A resolved dependency: the package id, and its kinds (`None`: normal, `Some("dev")`,
/// `Some("build")`).
type Edge = (String, Vec<Option<String>>);

struct Workspace {
    /// package id → (name, its declared dependencies)
    packages: HashMap<String, (String, Vec<Value>)>,
    /// package id → its resolved dependencies
    edges: HashMap<String, Vec<Edge>>,
}

impl Workspace {
    fn load() -> Workspace {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let host = host_triple();
        let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
            .args([
                "metadata",
                "--format-version",
                "1",
                "--offline",
                "--filter-platform",
            ])
            .arg(&host)
            .arg("--manifest-path")
            .arg(&manifest)
            .output()
            .expect("run cargo metadata");
        assert!(
            out.status.success(),
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
        let packages = meta["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .map(|p| {
                let id = p["id"].as_str().expect("id").to_owned();
                let name = p["name"].as_str().expect("name").to_owned();
                let deps = p["dependencies"].as_array().cloned().unwrap_or_default();
                (id, (name, deps))
            })
            .collect();
        let edges = meta["resolve"]["nodes"]
            .as_array()
            .expect("resolve.nodes")
            .iter()
            .map(|node| {
                let id = node["id"].as_str().expect("node id").to_owned();
                let deps = node["deps"]
                    .as_array()
                    .expect("deps")
                    .iter()
                    .map(|d| {
                        let kinds = d["dep_kinds"]
                            .as_array()
                            .expect("dep_kinds")
                            .iter()
                            .map(|k| k["kind"].as_str().map(str::to_owned))
                            .collect();
                        (d["pkg"].as_str().expect("pkg").to_owned(), kinds)
                    })
                    .collect();
                (id, deps)
            })
            .collect();
        Workspace { packages, edges }
    }

    fn name(&self, id: &str) -> &str {
        &self.packages[id].0
    }

    fn id(&self, name: &str) -> String {
        let ids: Vec<&String> = self
            .packages
            .iter()
            .filter(|(_, (n, _))| n == name)
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids.len(), 1, "exactly one package named {name}");
        ids[0].clone()
    }

    /// Every package reachable from `root` through normal dependencies, with the package it was
    /// first reached from (for the path in a failure message).
    fn normal_closure(&self, root: &str) -> HashMap<String, Option<String>> {
        let mut parent: HashMap<String, Option<String>> = HashMap::new();
        parent.insert(root.to_owned(), None);
        let mut queue = VecDeque::from([root.to_owned()]);
        while let Some(id) = queue.pop_front() {
            for (dep, kinds) in self.edges.get(&id).into_iter().flatten() {
                let normal = kinds.iter().any(Option::is_none);
                if normal && !parent.contains_key(dep) {
                    parent.insert(dep.clone(), Some(id.clone()));
                    queue.push_back(dep.clone());
                }
            }
        }
        parent
    }

    fn path(&self, parent: &HashMap<String, Option<String>>, to: &str) -> String {
        let mut names = vec![self.name(to).to_owned()];
        let mut at = to.to_owned();
        while let Some(Some(up)) = parent.get(&at) {
            names.push(self.name(up).to_owned());
            at = up.clone();
        }
        names.reverse();
        names.join(" -> ")
    }

    /// What `root` must not reach, each as "what: path".
    fn violations(&self, root_name: &str) -> Vec<String> {
        let root = self.id(root_name);
        let reach = self.normal_closure(&root);
        let mut found = Vec::new();
        for id in reach.keys() {
            let name = self.name(id);
            if let Some(what) = forbidden(name) {
                found.push(format!("{what}: {}", self.path(&reach, id)));
            }
            // A reachable package asking for tokio with networking.
            for dep in &self.packages[id].1 {
                let normal = dep["kind"].is_null();
                let features: Vec<&str> = dep["features"]
                    .as_array()
                    .map(|f| f.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if normal
                    && dep["name"] == "tokio"
                    && features.iter().any(|f| TOKIO_NET.contains(f))
                {
                    found.push(format!(
                        "tokio with {features:?}: {} -> tokio",
                        self.path(&reach, id)
                    ));
                }
            }
        }
        found.sort();
        found
    }

    /// The Siirto crates `root` depends on, of any kind.
    fn siirto_dependencies(&self, root_name: &str, normal_only: bool) -> Vec<String> {
        let root = self.id(root_name);
        let mut out: Vec<String> = self.edges[&root]
            .iter()
            .filter(|(_, kinds)| !normal_only || kinds.iter().any(Option::is_none))
            .map(|(dep, _)| self.name(dep).to_owned())
            .filter(|n| n.starts_with("siirto"))
            .collect();
        out.sort();
        out
    }
}

fn host_triple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let out = Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("run rustc -vV");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("host line in rustc -vV")
        .trim()
        .to_owned()
}

#[test]
fn pure_crates_reach_no_network_tls_or_database_crate() {
    let ws = Workspace::load();
    for pure in ["siirto-xsd", "siirto-core"] {
        let found = ws.violations(pure);
        assert!(
            found.is_empty(),
            "{pure} must not depend on tokio's networking, hyper, sqlx or rustls, but:\n{}",
            found.join("\n")
        );
    }
    // The walk sees what it should: the gateway reaches every one of them.
    let gateway = ws.violations("siirto-gateway").join("\n");
    for what in ["hyper:", "rustls:", "sqlx:", "tokio with"] {
        assert!(
            gateway.contains(what),
            "the check found no {what} under siirto-gateway:\n{gateway}"
        );
    }
}

#[test]
fn the_xml_crate_stands_alone_and_the_core_uses_only_it() {
    let ws = Workspace::load();
    assert_eq!(
        ws.siirto_dependencies("siirto-xsd", false),
        Vec::<String>::new(),
        "siirto-xsd depends on nothing else of Siirto (not even for tests)"
    );
    assert_eq!(
        ws.siirto_dependencies("siirto-core", true),
        vec!["siirto-xsd".to_owned()],
        "siirto-core's only Siirto dependency is siirto-xsd"
    );
}

//! The dependency rule (`ARCHITECTURE.md`), checked on every test run: dependencies point down.
//!
//! - A stage crate (`services/<stage>`) depends on no other `services/*` crate, as a normal,
//!   dev or build dependency; among `services/*`, only the CLI (`services/sightline`) depends
//!   on the stages (above them, so do `evals` and the workspace tests, `tests`).
//! - No crate under `shared/`, and not the test support crate (`tests/support`), depends on a
//!   `services/*` crate.
//! - No `.rs` file compiles a file of another crate in with `#[path]`: code worth sharing gets
//!   a crate.
//!
//! The workspace comes from `cargo metadata --no-deps`, run with the cargo that builds the test.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The package allowed to depend on stage crates: the CLI, which runs them embedded.
const CLI: &str = "services/sightline";

/// The workspace as `cargo metadata --format-version 1 --no-deps` describes it.
fn metadata() -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(&root)
        .output()
        .expect("run cargo metadata");
    assert!(out.status.success(), "cargo metadata failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

fn workspace_root(meta: &Value) -> PathBuf {
    PathBuf::from(meta["workspace_root"].as_str().expect("workspace_root"))
}

/// `path` relative to the workspace root, `/`-separated, lexically normalised.
fn relative(root: &Path, path: &Path) -> String {
    let path = normalise(path);
    let rel = path.strip_prefix(root).unwrap_or(&path);
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// Removes `.` and `..` without touching the file system (the path need not exist).
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The folder of a package (its manifest's folder) relative to the workspace root.
fn package_dir(root: &Path, package: &Value) -> String {
    let manifest = Path::new(package["manifest_path"].as_str().expect("manifest_path"));
    relative(root, manifest.parent().expect("manifest folder"))
}

fn is_stage(dir: &str) -> bool {
    dir.starts_with("services/")
}

/// The edges that break the rule, as `from -> to (kind)` lines.
fn forbidden_edges(meta: &Value) -> Vec<String> {
    let root = workspace_root(meta);
    let mut edges = Vec::new();
    for package in meta["packages"].as_array().expect("packages") {
        let from = package_dir(&root, package);
        let bound = if is_stage(&from) && from != CLI {
            "a stage crate depends on no other services/* crate"
        } else if from.starts_with("shared/") || from == "tests/support" {
            "shared and test-support crates depend on no services/* crate"
        } else {
            continue;
        };
        for dep in package["dependencies"].as_array().expect("dependencies") {
            let Some(path) = dep["path"].as_str() else { continue };
            let to = relative(&root, Path::new(path));
            if is_stage(&to) && to != from {
                let kind = dep["kind"].as_str().unwrap_or("normal");
                let name = dep["name"].as_str().unwrap_or("?");
                let pkg = package["name"].as_str().unwrap_or("?");
                edges.push(format!("{pkg} ({from}) -> {name} ({to}), {kind} dependency: {bound}"));
            }
        }
    }
    edges
}

#[test]
fn stage_crates_are_leaves() {
    let meta = metadata();
    let root = workspace_root(&meta);
    let dirs: BTreeSet<String> =
        meta["packages"].as_array().expect("packages").iter().map(|p| package_dir(&root, p)).collect();
    // The check sees the workspace: every stage, the CLI, the shared crates and this one.
    for stage in ["ingest", "dedup", "detect", "ocr", "face", "embed", "cluster", "index"] {
        assert!(dirs.contains(&format!("services/{stage}")), "no services/{stage} in {dirs:?}");
    }
    assert!(dirs.contains(CLI) && dirs.contains("shared/messages") && dirs.contains("tests"), "{dirs:?}");

    let edges = forbidden_edges(&meta);
    assert!(edges.is_empty(), "dependencies must point down (ARCHITECTURE.md):\n  {}", edges.join("\n  "));
}

/// Every `.rs` file of the workspace (not `target/`, not hidden folders).
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let entry = entry.expect("dir entry");
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if entry.file_type().expect("file type").is_dir() {
            if !name.starts_with('.') && name != "target" {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// The `#[path = "..."]` attributes of a file: (line number, the path as written).
fn path_attributes(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let rest = line.trim_start().strip_prefix("#[path")?.trim_start().strip_prefix('=')?.trim_start();
            let value = rest.strip_prefix('"')?.split('"').next()?;
            Some((i + 1, value.to_owned()))
        })
        .collect()
}

/// The folders that hold each crate's sources: the folder of every target's root file (the
/// longest one that holds a file is that file's crate).
fn crate_dirs(meta: &Value) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .flat_map(|p| p["targets"].as_array().expect("targets").iter())
        .filter_map(|t| Some(normalise(Path::new(t["src_path"].as_str()?).parent()?)))
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// The `#[path]` attributes that reach outside the crate of the file they are in.
fn foreign_path_attributes(meta: &Value) -> Vec<String> {
    let root = workspace_root(meta);
    let dirs = crate_dirs(meta);
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        for (line, value) in path_attributes(&text) {
            let target = normalise(&file.parent().expect("folder").join(&value));
            let home = dirs.iter().filter(|d| file.starts_with(d)).max_by_key(|d| d.components().count());
            if home.is_none_or(|home| !target.starts_with(home)) {
                found.push(format!(
                    "{}:{line}: #[path = \"{value}\"] compiles {} into another crate",
                    relative(&root, file),
                    relative(&root, &target)
                ));
            }
        }
    }
    found
}

#[test]
fn no_path_attribute_reaches_into_another_crate() {
    let meta = metadata();
    let found = foreign_path_attributes(&meta);
    assert!(found.is_empty(), "code shared with #[path] wants a crate of its own:\n  {}", found.join("\n  "));
}

#[test]
fn the_checks_see_what_they_look_for() {
    // The attribute parser, on the forms rustfmt leaves.
    let text = "mod a;\n#[path = \"../x/y.rs\"]\nmod y;\n    #[path=\"z.rs\"] mod z;\n// #[path = \"no.rs\"]\n";
    assert_eq!(path_attributes(text), vec![(2, "../x/y.rs".to_owned()), (4, "z.rs".to_owned())]);
    // Lexical normalisation, for targets that do not exist.
    assert_eq!(normalise(Path::new("/r/services/a/tests/../../b/src/x.rs")), Path::new("/r/services/b/src/x.rs"));
    // The rule on a made-up workspace: a stage dev-depending on a stage, a shared crate on a
    // stage; the CLI and the workspace tests may.
    let meta = serde_json::json!({
        "workspace_root": "/r",
        "packages": [
            {"name": "s-a", "manifest_path": "/r/services/a/Cargo.toml", "targets": [], "dependencies": [
                {"name": "s-b", "path": "/r/services/b", "kind": "dev"},
                {"name": "shared-m", "path": "/r/shared/m", "kind": null}]},
            {"name": "shared-m", "manifest_path": "/r/shared/m/Cargo.toml", "targets": [], "dependencies": [
                {"name": "s-b", "path": "/r/services/b", "kind": "build"}]},
            {"name": "cli", "manifest_path": "/r/services/sightline/Cargo.toml", "targets": [], "dependencies": [
                {"name": "s-b", "path": "/r/services/b", "kind": null}]},
            {"name": "t", "manifest_path": "/r/tests/Cargo.toml", "targets": [], "dependencies": [
                {"name": "s-a", "path": "/r/services/a", "kind": "dev"}]}
        ]
    });
    let edges = forbidden_edges(&meta);
    assert_eq!(edges.len(), 2, "{edges:#?}");
    assert!(edges[0].starts_with("s-a (services/a) -> s-b (services/b), dev dependency"), "{edges:#?}");
    assert!(edges[1].starts_with("shared-m (shared/m) -> s-b (services/b), build dependency"), "{edges:#?}");
}

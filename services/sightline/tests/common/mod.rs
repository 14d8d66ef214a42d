//! Helpers shared by the CLI's integration tests that run the models.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
pub use sightline_test_support::repo;

/// Whether the models can be used: `SIGHTLINE_MODELS` is set, or the `models` feature makes
/// their absence a failure. Otherwise says SKIPPED on stderr and returns false.
pub fn models_available(test: &str) -> bool {
    sightline_test_support::models_available(test, cfg!(feature = "models"))
}

#[allow(dead_code)] // the annotate tests search nothing
/// Runs `sightline search ARGS --json --catalog CATALOG --queries QUERIES EXTRA`: the exit code,
/// the JSON array it printed (empty when it failed) and its stderr.
pub fn run_search(args: &[&str], catalog: &Path, queries: &Path, extra: &[&str]) -> (i32, Vec<Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .arg("search")
        .args(args)
        .args(["--json", "--catalog"])
        .arg(catalog)
        .arg("--queries")
        .arg(queries)
        .args(extra)
        .output()
        .expect("run sightline search");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = out.status.code().unwrap_or(-1);
    let json = if code == 0 {
        serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap_or_else(|e| panic!("JSON array on stdout: {e}"))
    } else {
        Vec::new()
    };
    (code, json, stderr)
}

#[allow(dead_code)] // the annotate tests search nothing
/// Runs `sightline search ARGS` on an empty catalogue folder and checks that it refuses with
/// exit code 1 and "no images under" (the query file is never read, so no model is loaded).
pub fn assert_refuses_empty_catalogue(args: &[&str]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (empty, queries) = (dir.path().join("empty"), dir.path().join("queries"));
    std::fs::create_dir_all(&empty).expect("mkdir");
    std::fs::create_dir_all(&queries).expect("mkdir");
    std::fs::write(queries.join("q.jpg"), b"not read").expect("write");
    let (code, _, stderr) = run_search(args, &empty, &queries, &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no images under"), "{stderr}");
}

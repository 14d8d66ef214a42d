//! Parity with the reference runtime: every model in models/manifest.toml is
//! run through ort on the exact input tensor of its fixture and compared with
//! the output Python onnxruntime 1.31.1 produced (tests/fixtures/models/, see
//! models/make_reference.py). The comparison is
//! `sightline_inference::verify` (the same code as `sightline models verify`).
//!
//! Needs the models and the ONNX Runtime library (`models/fetch.sh`):
//!
//!   eval "$(models/fetch.sh)"      # exports SIGHTLINE_MODELS and ORT_DYLIB_PATH
//!   cargo test -p sightline-inference --test parity
//!   cargo test -p sightline-inference --features parity --test parity
//!
//! Skipped (with a message) only when SIGHTLINE_MODELS is unset AND the
//! `parity` feature is off. With the feature on, a missing model or library
//! is a failure (the default models directory is then ~/.cache/sightline/models).

use std::path::PathBuf;

use sightline_inference::verify::Fixture;
use sightline_inference::{
    Manifest, ModelStore, PoolConfig, Runtime, default_fixtures_dir, default_models_dir, verify_all,
};

fn models_dir() -> Option<PathBuf> {
    match std::env::var_os("SIGHTLINE_MODELS") {
        Some(dir) => Some(PathBuf::from(dir)),
        None if cfg!(feature = "parity") => Some(default_models_dir()),
        None => None,
    }
}

fn setup(test: &str) -> Option<(ModelStore, &'static Runtime)> {
    let Some(dir) = models_dir() else {
        // written to the real stderr (not eprintln!) so that the skip is visible
        // even though the test harness captures the output of passing tests
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: SIGHTLINE_MODELS is unset and the `parity` feature is off. \
             Run `eval \"$(models/fetch.sh)\"` and rerun, or use `--features parity` to make missing models a failure."
        );
        return None;
    };
    let store = ModelStore::new(&dir, Manifest::embedded().expect("manifest"));
    let runtime = Runtime::init_from_env(store.root()).unwrap_or_else(|e| panic!("{test}: {e}"));
    Some((store, runtime))
}

/// The comparison itself lives in `sightline_inference::verify` (also behind
/// `sightline models verify`); this asserts that every model passes it.
#[test]
fn every_model_matches_the_reference_runtime() {
    let Some((store, runtime)) = setup("parity") else {
        return;
    };
    let reports = verify_all(&store, runtime, &default_fixtures_dir());
    assert_eq!(
        reports.iter().map(|r| r.model.as_str()).collect::<Vec<_>>(),
        store.manifest().model.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        "one report per manifest model, in manifest order"
    );
    let mut failures = Vec::new();
    for r in &reports {
        eprintln!("{r}");
        if !r.ok || r.outputs_checked == 0 {
            failures.push(format!("{}: {}", r.model, r.detail.as_deref().unwrap_or("no output compared")));
        }
    }
    assert!(failures.is_empty(), "parity failures:\n  {}", failures.join("\n  "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_pool_serves_concurrent_calls() {
    let Some((store, runtime)) = setup("async_pool_serves_concurrent_calls") else {
        return;
    };
    let pool = store.pool(runtime, "mtcnn-onet", PoolConfig { sessions: 2, ..PoolConfig::default() }).expect("pool");
    let spec = store.spec("mtcnn-onet").expect("spec");
    let fixture = Fixture::load(&default_fixtures_dir(), spec).unwrap_or_else(|e| panic!("{e}"));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let pool = pool.clone();
        let feeds = fixture.feeds();
        tasks.push(tokio::spawn(async move { pool.run(feeds).await }));
    }
    for t in tasks {
        let out = t.await.expect("join").expect("run");
        let c = fixture.compare(&out);
        assert_eq!(c.mismatch, None, "parity");
        assert_eq!(c.outputs_checked, fixture.outputs.len());
    }
    // wrong input names are a clear error, not a crash
    let (_, tensor) = fixture.inputs[0].clone();
    let err = pool.run(vec![("nope".into(), tensor)]).await.expect_err("bad input");
    assert!(err.to_string().contains("nope"), "{err}");
}

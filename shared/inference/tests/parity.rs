//! Parity with the reference runtime: every model in models/manifest.toml is
//! run through ort on the exact input tensor of its fixture and compared with
//! the output Python onnxruntime 1.31.1 produced (tests/fixtures/models/, see
//! models/make_reference.py).
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

mod common;

use std::path::PathBuf;
use std::time::Instant;

use common::{bits_equal, load_input, read_json};
use ndarray::{ArrayD, Axis};
use serde_json::Value;
use sightline_inference::{Manifest, ModelStore, PoolConfig, Runtime, default_models_dir};

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

fn close(a: f32, b: f32, atol: f32, rtol: f32) -> bool {
    (a - b).abs() <= atol + rtol * b.abs()
}

/// Compares one output with its fixture; returns a description of the first
/// mismatch and the max abs difference.
fn compare(model: &str, ours: &ArrayD<f32>, spec: &Value) -> Result<f32, String> {
    let name = spec["name"].as_str().unwrap_or("?");
    let shape: Vec<usize> = spec["shape"]
        .as_array()
        .expect("shape")
        .iter()
        .map(|d| d.as_u64().expect("dim") as usize)
        .collect();
    if ours.shape() != shape.as_slice() {
        return Err(format!(
            "{model}.{name}: shape {:?} != reference {shape:?}",
            ours.shape()
        ));
    }
    let atol = spec["atol"].as_f64().expect("atol") as f32;
    let rtol = spec["rtol"].as_f64().expect("rtol") as f32;
    let mut max_diff = 0f32;
    let mut check = |i: usize, a: f32, b: f32| -> Result<(), String> {
        max_diff = max_diff.max((a - b).abs());
        if close(a, b, atol, rtol) {
            Ok(())
        } else {
            Err(format!(
                "{model}.{name}[{i}]: {a} vs reference {b} (atol {atol}, rtol {rtol})"
            ))
        }
    };
    match spec["stored"].as_str() {
        Some("full") => {
            let file = common::fixtures().join(spec["file"].as_str().expect("file"));
            let reference = sightline_inference::npy::read_npy_f32(&file).expect("reference npy");
            for (i, (a, b)) in ours.iter().zip(reference.iter()).enumerate() {
                check(i, *a, *b)?;
            }
        }
        Some("summary") => {
            let flat: Vec<f32> = ours.iter().copied().collect();
            let stride = spec["sample_stride"].as_u64().expect("stride") as usize;
            let sample = common::f32s(&spec["sample"]);
            let ours_sample: Vec<f32> = flat.iter().step_by(stride).copied().collect();
            if ours_sample.len() != sample.len() {
                return Err(format!(
                    "{model}.{name}: sample length {} != {}",
                    ours_sample.len(),
                    sample.len()
                ));
            }
            for (i, (a, b)) in ours_sample.iter().zip(&sample).enumerate() {
                check(i * stride, *a, *b)?;
            }
            let last = ours.ndim() - 1;
            let rows = ours
                .view()
                .into_shape_with_order((flat.len() / ours.shape()[last], ours.shape()[last]))
                .expect("2d");
            let argmax: Vec<u64> = spec["argmax_last_axis"]
                .as_array()
                .expect("argmax")
                .iter()
                .map(|v| v.as_u64().expect("idx"))
                .collect();
            let maxes = common::f32s(&spec["max_last_axis"]);
            for (r, row) in rows.axis_iter(Axis(0)).enumerate() {
                let our_max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                check(r, our_max, maxes[r])?;
                // same argmax, unless the reference's winner is tied with ours
                let theirs = argmax[r] as usize;
                let ours_at_theirs = row[theirs];
                if !close(ours_at_theirs, our_max, atol, 0.0) {
                    return Err(format!(
                        "{model}.{name}: row {r} argmax differs (reference {theirs})"
                    ));
                }
            }
            let sum: f64 = ours.iter().map(|v| f64::from(*v)).sum();
            let ref_sum = spec["sum"].as_f64().expect("sum");
            if (sum - ref_sum).abs() > 1e-3 * ref_sum.abs().max(1.0) {
                return Err(format!("{model}.{name}: sum {sum} vs reference {ref_sum}"));
            }
        }
        other => return Err(format!("{model}.{name}: unknown storage {other:?}")),
    }
    Ok(max_diff)
}

#[test]
fn every_model_matches_the_reference_runtime() {
    let Some((store, runtime)) = setup("parity") else {
        return;
    };
    let mut failures = Vec::new();
    let root = common::fixtures().join("../../..");
    for m in &store.manifest().model {
        let result = (|| -> Result<String, String> {
            let pool = store
                .pool(runtime, &m.name, PoolConfig::default())
                .map_err(|e| e.to_string())?;
            let fixture = read_json(&root.join(&m.reference));
            let inputs: Vec<_> = fixture["inputs"]
                .as_array()
                .expect("inputs")
                .iter()
                .map(load_input)
                .collect();
            for i in &inputs {
                if let Some(f) = &i.f32_file
                    && !bits_equal(&i.decoded, f)
                {
                    return Err(format!("input {} u8 encoding is not bit-exact", i.name));
                }
            }
            let feeds = inputs.into_iter().map(|i| (i.name, i.tensor)).collect();
            let t = Instant::now();
            let outputs = pool.run_blocking(feeds).map_err(|e| e.to_string())?;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            let mut report = format!("{:14} {:7.1} ms", m.name, ms);
            for spec in fixture["outputs"].as_array().expect("outputs") {
                let name = spec["name"].as_str().expect("name");
                let ours = outputs
                    .get(name)
                    .ok_or_else(|| format!("output {name} missing"))?;
                let d = compare(&m.name, ours, spec)?;
                report.push_str(&format!("  {name}: max|diff| {d:.2e}"));
            }
            Ok(report)
        })();
        match result {
            Ok(report) => eprintln!("{report}"),
            Err(e) => failures.push(format!("{}: {e}", m.name)),
        }
    }
    assert!(
        failures.is_empty(),
        "parity failures:\n  {}",
        failures.join("\n  ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_pool_serves_concurrent_calls() {
    let Some((store, runtime)) = setup("async_pool_serves_concurrent_calls") else {
        return;
    };
    let pool = store
        .pool(
            runtime,
            "mtcnn-onet",
            PoolConfig {
                sessions: 2,
                ..PoolConfig::default()
            },
        )
        .expect("pool");
    let spec = store.spec("mtcnn-onet").expect("spec");
    let fixture = read_json(&common::fixtures().join("../../..").join(&spec.reference));
    let input = load_input(&fixture["inputs"][0]);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let pool = pool.clone();
        let feeds = vec![(input.name.clone(), input.tensor.clone())];
        tasks.push(tokio::spawn(async move { pool.run(feeds).await }));
    }
    for t in tasks {
        let out = t.await.expect("join").expect("run");
        for spec in fixture["outputs"].as_array().expect("outputs") {
            let ours = out
                .get(spec["name"].as_str().expect("name"))
                .expect("output");
            compare("mtcnn-onet", ours, spec).expect("parity");
        }
    }
    // wrong input names are a clear error, not a crash
    let err = pool
        .run(vec![("nope".into(), input.tensor.clone())])
        .await
        .expect_err("bad input");
    assert!(err.to_string().contains("nope"), "{err}");
}

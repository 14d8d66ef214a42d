//! Per-call latency of every manifest model through this crate (ort,
//! SessionPool::run_blocking, 1 session, 1 intra-op thread) on the fixture
//! inputs of tests/fixtures/models/. Includes tensor creation and copying the
//! outputs out.
//!
//!   eval "$(models/fetch.sh)"
//!   cargo run -p sightline-inference --example latency [RUNS]

use std::path::Path;
use std::time::Instant;

use ndarray::ArrayD;
use sightline_inference::npy::read_npy_u8;
use sightline_inference::preprocess::{Normalize, normalize_u8};
use sightline_inference::{ModelStore, PoolConfig, Runtime};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let store = ModelStore::from_env()?;
    let runtime = Runtime::init_from_env(store.root())?;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models");
    println!(
        "sightline-inference (ort 2.0.0-rc.15, ONNX Runtime {}), 1 session, 1 intra-op thread, median / p90 of {runs} runs",
        store.manifest().onnxruntime.version
    );
    println!("| model | input | ms (median / p90) |\n| --- | --- | --- |");
    for m in &store.manifest().model {
        let pool = store.pool(runtime, &m.name, PoolConfig::default())?;
        let d: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
            fixtures.join(format!("{}.json", m.name)),
        )?)?;
        let mut feeds: Vec<(String, ArrayD<f32>)> = Vec::new();
        for spec in d["inputs"].as_array().ok_or("inputs")? {
            let q = read_npy_u8(fixtures.join(spec["u8_file"].as_str().ok_or("u8_file")?))?;
            let v = |k: &str| -> Vec<f32> {
                spec[k]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_f64())
                            .map(|x| x as f32)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let three = |x: Vec<f32>| {
                if x.len() == 1 {
                    [x[0]; 3]
                } else {
                    [x[0], x[1], x[2]]
                }
            };
            let norm = Normalize {
                divisor: spec["divisor"].as_f64().unwrap_or(1.0) as f32,
                mean: three(v("mean")),
                std: three(v("std")),
            };
            let axis = spec["channel_axis"].as_u64().ok_or("channel_axis")? as usize;
            feeds.push((
                spec["name"].as_str().ok_or("name")?.to_string(),
                normalize_u8(q.view(), axis, &norm)?,
            ));
        }
        let shape = feeds[0].1.shape().to_vec();
        for _ in 0..3 {
            pool.run_blocking(feeds.clone())?;
        }
        let mut ms: Vec<f64> = (0..runs)
            .map(|_| {
                let f = feeds.clone();
                let t = Instant::now();
                let r = pool.run_blocking(f);
                let e = t.elapsed().as_secs_f64() * 1e3;
                r.map(|_| e)
            })
            .collect::<Result<_, _>>()?;
        ms.sort_by(f64::total_cmp);
        println!(
            "| {} | {:?} | {:.1} / {:.1} |",
            m.name,
            shape,
            ms[ms.len() / 2],
            ms[(ms.len() * 9 / 10).min(ms.len() - 1)]
        );
    }
    Ok(())
}

//! Per-call latency of every manifest model through this crate (ort,
//! SessionPool::run_blocking, 1 session, 1 intra-op thread) on the fixture
//! inputs of tests/fixtures/models/. Includes tensor creation and copying the
//! outputs out.
//!
//!   eval "$(models/fetch.sh)"
//!   cargo run -p sightline-evals --example latency [RUNS]

use std::time::Instant;

use sightline_inference::verify::{Fixture, default_fixtures_dir};
use sightline_inference::{ModelStore, PoolConfig, Runtime};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20).max(1);
    let store = ModelStore::from_env()?;
    let runtime = Runtime::init_from_env(store.root())?;
    let fixtures = default_fixtures_dir();
    println!(
        "sightline-inference (ort 2.0.0-rc.15, ONNX Runtime {}), 1 session, 1 intra-op thread, median / p90 of {runs} runs",
        store.manifest().onnxruntime.version
    );
    println!("| model | input | ms (median / p90) |\n| --- | --- | --- |");
    for m in &store.manifest().model {
        let pool = store.pool(runtime, &m.name, PoolConfig::default())?;
        let fixture = Fixture::load(&fixtures, m)?;
        let feeds = fixture.feeds();
        let shape = feeds.first().map(|(_, t)| t.shape().to_vec()).unwrap_or_default();
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

//! Evaluation code shared by Sightline's evaluation and benchmark programs (`examples/`), kept
//! out of the worker crates so that a worker links only what it runs.
//!
//! - [`face`]: the face measurements of `docs/face.md` (dlib XML boxes, detection matching,
//!   landmark error), for the `face_eval` example.
//! - [`synth`]: synthetic embeddings-like point sets, for the `dpc_bench` example.
//! - [`mixture`]: seeded Gaussian mixtures with known labels, for the `dpc_sweep` example.
//! - [`transforms`]: seeded transformed copies of photos, for `dedup_eval --train`.
//! - [`read_csv`]: the simple CSV files of the data sets.
//!
//! The scripts beside the programs (`dedup/`, `ocr/`, `cluster/`, `face/`, `detect/`,
//! `train/`) are the Python references and studies and their data, described in the docs that
//! cite them.

pub mod face;
pub mod mixture;
pub mod store_synth;
pub mod synth;
pub mod transforms;

use std::path::Path;

use anyhow::Context;

/// The rows of a simple CSV file (no quoting), header skipped, blank lines dropped, each row
/// split on commas.
pub fn read_csv(path: &Path) -> anyhow::Result<Vec<Vec<String>>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    Ok(text
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim_end_matches('\r').split(',').map(str::to_owned).collect())
        .collect())
}

/// CPU seconds this process has used (user + system, Linux `/proc/self/stat`, 100 ticks/s):
/// the machine is shared, so wall time alone says little. NaN where it cannot be read.
pub fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
            // Fields 14 and 15 of the whole line are the 12th and 13th after the command name.
            let ticks: f64 = rest.get(11)?.parse::<f64>().ok()? + rest.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(f64::NAN)
}

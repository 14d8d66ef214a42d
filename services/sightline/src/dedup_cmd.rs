//! `sightline dedup DIR --out OUT`: exact and near-duplicate groups of every image under a
//! folder, found by the ingest and dedup stages in the embedded mode (the same code as the
//! workers, over in-memory backends), written to `OUT/groups.csv`.
//!
//! `groups.csv` has one row per file under DIR: `file,group,original,kind,distance`. `file`
//! is relative to DIR. Files of a group are duplicates of its `original`. An original (a
//! unique file is its own group) has an empty `kind` and `distance`; a duplicate has `exact`
//! (same bytes or same pixels, distance 0) or `near` and the Hamming distance between the
//! perceptual hashes. A file that is not a readable image has `kind` `failed` and no group.
//! First-level folders are collections and are compared separately, as in a job.

use std::path::Path;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sightline_dedup::groups::{Progress, run_folder};
use sightline_dedup::{Dedup, DedupConfig};

/// Runs dedup over every file under `dir` and writes `out/groups.csv`; prints a summary (as
/// JSON on stdout with `json`), with a progress bar on stderr.
pub async fn run(dir: &Path, out: &Path, max_distance: u32, json: bool) -> anyhow::Result<()> {
    anyhow::ensure!(dir.is_dir(), "{} is not a folder", dir.display());
    let config = DedupConfig { max_distance, ..DedupConfig::default() };
    Dedup::new(config.clone())?;
    std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;

    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg:>13} [{bar:30}] {pos}/{len} images ({per_sec}, {eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let report = run_folder(dir, config, |p: Progress| {
        bar.set_message(if p.uploading { "uploading" } else { "deduplicating" });
        if p.total > 0 {
            bar.set_length(p.total);
        }
        bar.set_position(p.done);
    })
    .await
    .with_context(|| format!("deduplicate {}", dir.display()))?;
    bar.finish_and_clear();

    let csv = out.join("groups.csv");
    std::fs::write(&csv, report.to_csv()).with_context(|| format!("write {}", csv.display()))?;
    let summary = report.summary();
    if json {
        let doc = serde_json::json!({
            "groups_csv": csv.display().to_string(),
            "max_distance": max_distance,
            "summary": summary,
            "failed": report.failed,
            "rows": report.rows,
        });
        println!("{}", serde_json::to_string_pretty(&doc).context("encode summary")?);
    } else {
        println!(
            "{} files: {} groups ({} with duplicates), {} exact and {} near duplicates, {} failed, in {:.1} s",
            summary["files"],
            summary["groups"],
            summary["groups_with_duplicates"],
            summary["duplicates"]["exact"],
            summary["duplicates"]["near"],
            summary["failed"],
            report.seconds,
        );
        for (file, reason) in &report.failed {
            println!("  failed: {file}: {reason}");
        }
        println!("wrote {}", csv.display());
    }
    Ok(())
}

//! `sightline dedup DIR --out OUT`: exact and near-duplicate groups of every image under a
//! folder, found by the ingest and dedup stages in the embedded mode (the same code as the
//! workers, over in-memory backends), written to `OUT/groups.csv`.
//!
//! `groups.csv` has one row per file under DIR: `file,group,original,kind,distance`. `file`
//! is relative to DIR. Files of a group are duplicates of its `original`. An original (a
//! unique file is its own group) has an empty `kind` and `distance`; a duplicate has `exact`
//! (same bytes or same pixels, distance 0), `near` or `mirror` (a horizontally flipped copy:
//! its mirror image's hash is near the original's) and the Hamming distance between the
//! perceptual hashes. A file that is not a readable image has `kind` `failed` and no group.
//! First-level folders are collections and are compared separately, as in a job.
//!
//! [`run_folder`] builds the ingest + dedup pipeline, so it lives here and not in the dedup
//! crate: a stage crate never depends on another stage crate.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use sightline_dedup::{Decision, Dedup, DedupConfig, Kind, NAME};
use sightline_messages::annotations::DedupOut;
use sightline_messages::{ItemOutcome, ItemRecord, JobSpec, Source};
use sightline_runtime::embedded::run_job;
use sightline_runtime::{Backends, RunnerSettings, Stage};
use uuid::Uuid;

use crate::jobs::{now_ms, upload_prefix};
use crate::report::csv_field;
use crate::walk::{Found, Walk};

/// Runs dedup over every file under `dir` and writes `out/groups.csv`; prints a summary (as
/// JSON on stdout with `json`), with a progress bar on stderr.
pub async fn run(dir: &Path, out: &Path, config: DedupConfig, json: bool) -> anyhow::Result<()> {
    anyhow::ensure!(dir.is_dir(), "{} is not a folder", dir.display());
    let (max_distance, mirror) = (config.max_distance, config.mirror);
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
            "mirror": mirror,
            "summary": summary,
            "failed": report.failed,
            "rows": report.rows,
        });
        println!("{}", serde_json::to_string_pretty(&doc).context("encode summary")?);
    } else {
        println!(
            "{} files: {} groups ({} with duplicates), {} exact, {} near and {} mirror duplicates, {} failed, in {:.1} s",
            summary["files"],
            summary["groups"],
            summary["groups_with_duplicates"],
            summary["duplicates"]["exact"],
            summary["duplicates"]["near"],
            summary["duplicates"]["mirror"],
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

/// The `kind` values of a duplicate's row.
pub const DUPLICATE_KINDS: [&str; 3] = ["exact", "near", "mirror"];

/// One row of `groups.csv`: `file,group,original,kind,distance`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupRow {
    /// The file, relative to the folder, `/`-separated.
    pub file: String,
    /// The group: `g` and a number, counted in the order of the originals' names; empty for
    /// a file that could not be read.
    pub group: String,
    /// The group's original (itself for an original); empty for a file that could not be read.
    pub original: String,
    /// `exact`, `near` or `mirror` for a duplicate; empty for an original (a unique file is its own
    /// group); `failed` for a file that could not be read (the reason is in `failed`).
    pub kind: String,
    /// Hamming distance to the original's perceptual hash for a duplicate (0 when exact);
    /// empty otherwise.
    pub distance: Option<u32>,
}

/// What a run over a folder found.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// One row per file, sorted by file.
    pub rows: Vec<GroupRow>,
    /// Files that failed, with the reason.
    pub failed: BTreeMap<String, String>,
    /// Seconds from the first upload to the last decision.
    pub seconds: f64,
}

impl RunReport {
    /// Counts: files, groups, originals with copies, duplicates by kind, failures.
    pub fn summary(&self) -> serde_json::Value {
        let count = |k: &str| self.rows.iter().filter(|r| r.kind == k).count();
        let groups: std::collections::BTreeSet<&str> =
            self.rows.iter().filter(|r| !r.group.is_empty()).map(|r| r.group.as_str()).collect();
        let with_copies: std::collections::BTreeSet<&str> =
            self.rows.iter().filter(|r| DUPLICATE_KINDS.contains(&r.kind.as_str())).map(|r| r.group.as_str()).collect();
        serde_json::json!({
            "files": self.rows.len(),
            "groups": groups.len(),
            "groups_with_duplicates": with_copies.len(),
            "duplicates": { "exact": count("exact"), "near": count("near"), "mirror": count("mirror") },
            "failed": count("failed"),
            "seconds": (self.seconds * 1000.0).round() / 1000.0,
        })
    }

    /// The CSV text: header and one line per row.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("file,group,original,kind,distance\n");
        for r in &self.rows {
            let distance = r.distance.map(|d| d.to_string()).unwrap_or_default();
            out.push_str(
                &[csv_field(&r.file), csv_field(&r.group), csv_field(&r.original), r.kind.clone(), distance].join(","),
            );
            out.push('\n');
        }
        out
    }
}

/// Progress of a run: items decided so far, of how many (0 while ingest lists them).
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Files uploaded or decided.
    pub done: u64,
    /// Files in all.
    pub total: u64,
    /// `true` while uploading, `false` while deciding.
    pub uploading: bool,
}

/// Runs ingest and dedup in the embedded mode over every file under `dir`: uploads each into
/// a temporary local store under `uploads/<job>/<relative path>`, submits one job with
/// route `["ingest", "dedup"]`, waits for it, and reads the groups from the item records.
/// First-level folders are collections, compared separately, as in any job.
pub async fn run_folder(
    dir: &Path,
    config: DedupConfig,
    mut progress: impl FnMut(Progress),
) -> anyhow::Result<RunReport> {
    let storage = tempfile::tempdir().context("create temporary storage")?;
    let backends = Backends::embedded(storage.path()).context("set up embedded storage")?;
    let files = Walk { hidden: true, follow_links: false }.files(dir)?;
    let job = Uuid::new_v4();
    let prefix = upload_prefix(job);
    let started = Instant::now();
    let mut failed = BTreeMap::new();
    let total = files.len() as u64;
    for (i, Found { name: rel, path }) in files.iter().enumerate() {
        let bytes = tokio::fs::read(path).await.with_context(|| format!("read {}", path.display()))?;
        if let Err(e) = backends.blob.put(&format!("{prefix}{rel}"), Bytes::from(bytes)).await {
            failed.insert(rel.clone(), format!("cannot store the file: {e}"));
        }
        progress(Progress { done: i as u64 + 1, total, uploading: true });
    }

    let ingest = sightline_ingest::Ingest::new(sightline_ingest::IngestConfig {
        limits: config.limits,
        ..sightline_ingest::IngestConfig::default()
    })
    .context("build ingest stage")?;
    let dedup = Dedup::new(config)?;
    let stages: Vec<Arc<dyn Stage>> = vec![Arc::new(ingest), Arc::new(dedup)];
    // Retry quickly: a copy waiting for its original retries within the run.
    let settings = RunnerSettings { retry_base_ms: 200, retry_max_ms: 2000, ..RunnerSettings::default() };
    let spec = JobSpec {
        job_id: job,
        kind: NAME.to_owned(),
        route: vec![sightline_ingest::NAME.to_owned(), NAME.to_owned()],
        source: Source::S3Prefix { prefix },
        options: BTreeMap::new(),
        submitted_at_ms: now_ms(),
    };
    let run = run_job(&backends, stages, Vec::new(), &spec, settings, |s| {
        progress(Progress { done: s.finished, total: s.total, uploading: false })
    })
    .await
    .context("run the dedup job")?;
    let records = run.records;
    let seconds = started.elapsed().as_secs_f64();

    let mut report = groups_from_records(job, &records, files.iter().map(|f| f.name.clone()));
    for (file, reason) in failed {
        report.failed.entry(file).or_insert(reason);
    }
    report.seconds = seconds;
    Ok(report)
}

/// Groups from a job's item records: each duplicate joins its original's group. `files` are
/// every file the job was given; one without a record (never stored) counts as failed.
pub fn groups_from_records(job: Uuid, records: &[ItemRecord], files: impl IntoIterator<Item = String>) -> RunReport {
    let mut decisions: BTreeMap<String, Option<Decision>> = BTreeMap::new();
    let mut failed = BTreeMap::new();
    for r in records {
        let decision = r.annotation::<DedupOut>().ok().flatten().map(|d| Decision::from_annotation(&d, job));
        match (r.outcome, decision) {
            (ItemOutcome::Failed, _) | (_, None) => {
                failed.insert(
                    r.name.clone(),
                    r.reason.clone().unwrap_or_else(|| format!("no dedup decision ({})", r.outcome.as_str())),
                );
                decisions.insert(r.name.clone(), None);
            }
            (_, Some(d)) => {
                decisions.insert(r.name.clone(), Some(d));
            }
        }
    }
    for f in files {
        if let std::collections::btree_map::Entry::Vacant(slot) = decisions.entry(f.clone()) {
            slot.insert(None);
            failed.entry(f).or_insert_with(|| "not processed".to_owned());
        }
    }
    // Originals are numbered in name order; `of` names the root, so one level suffices.
    let originals: Vec<&String> =
        decisions.iter().filter(|(_, d)| matches!(d, Some(Decision::Unique { .. }))).map(|(n, _)| n).collect();
    let group_of: BTreeMap<&str, String> =
        originals.iter().enumerate().map(|(i, n)| (n.as_str(), format!("g{:04}", i + 1))).collect();
    let rows = decisions
        .iter()
        .map(|(file, d)| match d {
            Some(Decision::Unique { .. }) => GroupRow {
                file: file.clone(),
                group: group_of.get(file.as_str()).cloned().unwrap_or_default(),
                original: file.clone(),
                kind: String::new(),
                distance: None,
            },
            Some(Decision::Duplicate { of, kind, distance, .. }) => GroupRow {
                file: file.clone(),
                // An original outside this job (a shared scope) has no group here: name it.
                group: group_of.get(of.as_str()).cloned().unwrap_or_else(|| format!("of:{of}")),
                original: of.clone(),
                kind: match kind {
                    Kind::Exact => "exact",
                    Kind::Near => "near",
                    Kind::Mirror => "mirror",
                }
                .to_owned(),
                distance: Some(*distance),
            },
            None => GroupRow {
                file: file.clone(),
                group: String::new(),
                original: String::new(),
                kind: "failed".to_owned(),
                distance: None,
            },
        })
        .collect();
    RunReport { rows, failed, seconds: 0.0 }
}

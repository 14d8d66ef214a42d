//! Accuracy of auto-annotation on `shared/data/annotate`: precision and recall of the `product`
//! label per collection and overall, each duplicate group counted once, for the pipeline
//! (`sightline annotate`, density peaks) and for DBSCAN, HDBSCAN and k-means on the same
//! embeddings with the same labelling rule.
//!
//! ```text
//! eval "$(models/fetch.sh)"
//! cargo run --release -p sightline-evals --example annotate_eval -- --data ../shared/data/annotate
//! cargo run --release -p sightline-evals --example annotate_eval -- --labels OUT/labels.csv --json
//! ```
//!
//! Without `--labels`, it builds the `sightline` binary of the same profile (unless `--sightline`
//! names one), runs `sightline annotate --collections DATA/collections --out OUT` and times it
//! (images per second end to end, embedded mode). Then it scores `OUT/labels.csv` against
//! `DATA/truth.csv` (definitions in `sightline::report::score`), reads the embeddings the pipeline stored
//! (`records.json` → `annotations.embed.key` → `OUT/storage/<key>`, little-endian f32) and
//! clusters them again with each method (definitions in `baselines.rs`). Baselines are tuned on
//! the same data (a small grid, every point in `--json`): the table shows each method's best F1
//! and its best recall at precision ≥ 97%. `--sweep` does the same for the density-peaks label
//! rule.

mod baselines;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use serde::Serialize;
use sightline::report::score::{self, Counts, Labels, Score, TruthRow, pct};
use sightline_clustering::labels::LabelRule;

use baselines::{Collection, Method};

/// Evaluates auto-annotation against the truth.
#[derive(Parser)]
struct Args {
    /// The annotate data set (`truth.csv` and `collections/`), or the data root holding `annotate/`.
    #[arg(long, default_value = "../shared/data/annotate")]
    data: PathBuf,
    /// Output folder of the annotate run.
    #[arg(long, default_value = "target/annotate-eval")]
    out: PathBuf,
    /// Score this existing `labels.csv` instead of running annotate (baselines read the
    /// `records.json` and `storage/` beside it).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// The `sightline` binary to run (default: built by cargo beside this example).
    #[arg(long)]
    sightline: Option<PathBuf>,
    /// Skip the baselines.
    #[arg(long)]
    no_baselines: bool,
    /// Also search the density-peaks label rule (min_fraction × min_size × halo_is_noise).
    #[arg(long)]
    sweep: bool,
    /// The label rule the baselines use (default: the cluster stage's).
    #[arg(long)]
    min_fraction: Option<f32>,
    /// The label rule the baselines use (default: the cluster stage's).
    #[arg(long)]
    min_size: Option<usize>,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct RunStats {
    images: usize,
    seconds: f64,
    images_per_s: f64,
}

#[derive(Serialize)]
struct MethodScore {
    method: String,
    params: String,
    spec: Method,
    precision: Option<f64>,
    recall: Option<f64>,
    f1: f64,
    overall: Counts,
    collections: BTreeMap<String, Counts>,
}

#[derive(Serialize)]
struct Report {
    data: PathBuf,
    labels: PathBuf,
    run: Option<RunStats>,
    rule: RuleJson,
    pipeline: Score,
    pipeline_precision: Option<f64>,
    pipeline_recall: Option<f64>,
    /// Whether re-running density peaks on the stored embeddings gives the pipeline's labels.
    rerun_matches_pipeline: Option<bool>,
    clustered_images: usize,
    methods: Vec<MethodScore>,
    sweep: Vec<MethodScore>,
}

#[derive(Serialize)]
struct RuleJson {
    min_fraction: f32,
    min_size: usize,
    halo_is_noise: bool,
    min_density: f32,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let data =
        if args.data.join("annotate/truth.csv").exists() { args.data.join("annotate") } else { args.data.clone() };
    let truth_text = std::fs::read_to_string(data.join("truth.csv"))
        .with_context(|| format!("read {}", data.join("truth.csv").display()))?;
    let truth = score::parse_truth(&truth_text).map_err(anyhow::Error::msg)?;

    let (labels_path, run) = match &args.labels {
        Some(l) => (l.clone(), None),
        None => {
            let run = run_annotate(&args, &data)?;
            (args.out.join("labels.csv"), Some(run))
        }
    };
    let out_dir = labels_path.parent().map(Path::to_path_buf).unwrap_or_default();
    let labels_text =
        std::fs::read_to_string(&labels_path).with_context(|| format!("read {}", labels_path.display()))?;
    let labels = score::parse_labels(&labels_text).map_err(anyhow::Error::msg)?;
    let pipeline = score::score(&truth, &labels);

    let defaults = LabelRule::default();
    let rule = LabelRule {
        min_fraction: args.min_fraction.unwrap_or(defaults.min_fraction),
        min_size: args.min_size.unwrap_or(defaults.min_size),
        ..defaults
    };
    let mut report = Report {
        data: data.clone(),
        labels: labels_path.clone(),
        run,
        rule: RuleJson {
            min_fraction: rule.min_fraction,
            min_size: rule.min_size,
            halo_is_noise: rule.halo_is_noise,
            min_density: rule.min_density,
        },
        pipeline_precision: pipeline.overall.precision(),
        pipeline_recall: pipeline.overall.recall(),
        pipeline,
        rerun_matches_pipeline: None,
        clustered_images: 0,
        methods: Vec::new(),
        sweep: Vec::new(),
    };

    if !args.no_baselines || args.sweep {
        let collections = load_embeddings(&out_dir, &truth)?;
        report.clustered_images = collections.values().map(|c| c.files.len()).sum();
        let this = Method::Dpc {
            min_fraction: rule.min_fraction,
            min_size: rule.min_size,
            halo_is_noise: rule.halo_is_noise,
            min_density: rule.min_density,
        };
        let rerun = evaluate(&this, &collections, &labels, &truth, &rule)?;
        let (rerun_labels, rerun_score) = rerun;
        report.rerun_matches_pipeline = Some(same_products(&rerun_labels, &labels));
        report.methods.push(rerun_score);
        if !args.no_baselines {
            for m in baselines::grid() {
                report.methods.push(evaluate(&m, &collections, &labels, &truth, &rule)?.1);
            }
        }
        if args.sweep {
            for m in baselines::dpc_grid() {
                report.sweep.push(evaluate(&m, &collections, &labels, &truth, &rule)?.1);
            }
        }
    }

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_tables(&report, &truth);
    }
    Ok(())
}

/// Builds (unless given) and runs `sightline annotate`, timed.
fn run_annotate(args: &Args, data: &Path) -> anyhow::Result<RunStats> {
    if std::env::var_os("SIGHTLINE_MODELS").is_none() {
        eprintln!(
            "warning: SIGHTLINE_MODELS is not set; run `eval \"$(models/fetch.sh)\"` first if annotate cannot find the models"
        );
    }
    let bin = match &args.sightline {
        Some(b) => b.clone(),
        None => build_sightline()?,
    };
    let collections = data.join("collections");
    let images = count_files(&collections)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("create {}", args.out.display()))?;
    eprintln!("running {} annotate over {} ({images} files)", bin.display(), collections.display());
    let started = Instant::now();
    let status = Command::new(&bin)
        .arg("annotate")
        .arg("--collections")
        .arg(&collections)
        .arg("--out")
        .arg(&args.out)
        // Its per-image table would mix with ours; records.json has it all.
        .stdout(std::process::Stdio::null())
        .status()
        .with_context(|| format!("run {}", bin.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("sightline annotate failed ({status})");
    }
    Ok(RunStats { images, seconds, images_per_s: images as f64 / seconds.max(1e-9) })
}

/// Builds the `sightline` binary with this example's profile and returns its path.
fn build_sightline() -> anyhow::Result<PathBuf> {
    let release = !cfg!(debug_assertions);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "sightline", "--bin", "sightline", "--manifest-path"]).arg(&manifest);
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().context("run cargo build")?;
    if !status.success() {
        bail!("cargo build -p sightline failed ({status})");
    }
    let exe = std::env::current_exe().context("find this example's path")?;
    let profile_dir = exe.parent().and_then(Path::parent).context("example outside a target folder")?;
    let bin = profile_dir.join("sightline");
    if !bin.exists() {
        bail!("{} is missing after the build; pass --sightline", bin.display());
    }
    Ok(bin)
}

fn count_files(dir: &Path) -> anyhow::Result<usize> {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            n += count_files(&entry.path())?;
        } else if !entry.file_name().to_string_lossy().starts_with('.') {
            n += 1;
        }
    }
    Ok(n)
}

/// The embeddings of every image that reached the cluster stage, by collection, in item order.
fn load_embeddings(out: &Path, truth: &[TruthRow]) -> anyhow::Result<BTreeMap<String, Collection>> {
    let records_path = out.join("records.json");
    let text = std::fs::read_to_string(&records_path)
        .with_context(|| format!("read {} (the baselines need an embedded run's output)", records_path.display()))?;
    let records: Vec<serde_json::Value> = serde_json::from_str(&text).context("parse records.json")?;
    let truth_of: BTreeMap<(String, String), bool> =
        truth.iter().map(|t| ((t.collection.clone(), t.file.clone()), t.product)).collect();
    let mut rows: BTreeMap<String, Vec<(u64, String, Vec<f32>)>> = BTreeMap::new();
    for r in &records {
        let Some(key) = r.pointer("/annotations/embed/key").and_then(|k| k.as_str()) else { continue };
        let collection = r["collection"].as_str().unwrap_or_default().to_owned();
        let name = r["name"].as_str().unwrap_or_default();
        let file = name.strip_prefix(&format!("{collection}/")).unwrap_or(name).to_owned();
        let item = r["item"].as_u64().unwrap_or(u64::MAX);
        sightline_blob::validate_key(key).map_err(|e| anyhow::anyhow!("embedding key {key:?}: {e}"))?;
        let path = out.join("storage").join(key);
        let bytes = std::fs::read(&path).with_context(|| format!("read embedding {}", path.display()))?;
        let Some(v) = sightline_messages::vector::decode(&bytes) else {
            bail!("embedding {}: {} bytes is not a f32 vector", path.display(), bytes.len());
        };
        rows.entry(collection).or_default().push((item, file, v));
    }
    if rows.is_empty() {
        bail!("no record in {} has an embedding (annotations.embed.key)", records_path.display());
    }
    Ok(rows
        .into_iter()
        .map(|(collection, mut v)| {
            v.sort_by_key(|(item, _, _)| *item);
            let c = Collection {
                truth_product: v
                    .iter()
                    .map(|(_, f, _)| truth_of.get(&(collection.clone(), f.clone())).copied())
                    .collect(),
                files: v.iter().map(|(_, f, _)| f.clone()).collect(),
                vectors: v.into_iter().map(|(_, _, x)| x).collect(),
            };
            (collection, c)
        })
        .collect())
}

/// Relabels the clustered images with `method` (the others keep the pipeline's label) and scores.
fn evaluate(
    method: &Method,
    collections: &BTreeMap<String, Collection>,
    pipeline: &Labels,
    truth: &[TruthRow],
    rule: &LabelRule,
) -> anyhow::Result<(Labels, MethodScore)> {
    let mut labels = pipeline.clone();
    for (name, c) in collections {
        let outcomes = baselines::run(method, c, rule).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        for (file, o) in c.files.iter().zip(outcomes) {
            let row = labels.entry((name.clone(), file.clone())).or_insert_with(|| score::LabelRow {
                label: String::new(),
                cluster: None,
                duplicate_of: None,
            });
            row.label = if o.product { "product" } else { "noise" }.to_owned();
            row.cluster = o.cluster.map(|c| c as u64);
            row.duplicate_of = None;
        }
    }
    let s = score::score(truth, &labels);
    let ms = MethodScore {
        method: method.family().to_owned(),
        params: method.params(),
        spec: method.clone(),
        precision: s.overall.precision(),
        recall: s.overall.recall(),
        f1: s.overall.f1(),
        overall: s.overall,
        collections: s.collections,
    };
    Ok((labels, ms))
}

fn same_products(a: &Labels, b: &Labels) -> bool {
    let products =
        |l: &Labels| l.iter().filter(|(_, r)| r.label == "product").map(|(k, _)| k.clone()).collect::<Vec<_>>();
    products(a) == products(b)
}

/// The best setting of each method family: by F1, and by recall at precision ≥ 97%.
fn best(scores: &[MethodScore]) -> Vec<(&MethodScore, &'static str)> {
    let mut families: Vec<&str> = Vec::new();
    for s in scores {
        if !families.contains(&s.method.as_str()) {
            families.push(&s.method);
        }
    }
    let mut out = Vec::new();
    for f in families {
        let of: Vec<&MethodScore> = scores.iter().filter(|s| s.method == f).collect();
        let by_f1 = of.iter().copied().max_by(|a, b| {
            a.f1.total_cmp(&b.f1).then(a.precision.unwrap_or(0.0).total_cmp(&b.precision.unwrap_or(0.0)))
        });
        let at_target = of
            .iter()
            .copied()
            .filter(|s| s.precision.is_some_and(|p| p >= 0.97))
            .max_by(|a, b| a.recall.unwrap_or(0.0).total_cmp(&b.recall.unwrap_or(0.0)));
        if let Some(b) = by_f1 {
            out.push((b, if of.len() > 1 { "best F1" } else { "" }));
        }
        if of.len() > 1
            && let Some(t) = at_target
            && !by_f1.is_some_and(|b| std::ptr::eq(b, t))
        {
            out.push((t, "best recall at P ≥ 97%"));
        }
    }
    out
}

fn print_tables(r: &Report, truth: &[TruthRow]) {
    if let Some(run) = &r.run {
        println!(
            "sightline annotate (embedded): {} images in {:.1} s = {:.1} images/s",
            run.images, run.seconds, run.images_per_s
        );
    }
    println!("labels: {}   truth: {}", r.labels.display(), r.data.join("truth.csv").display());
    println!(
        "label rule: min_fraction {}, min_size {}, halo_is_noise {}, min_density {}",
        r.rule.min_fraction, r.rule.min_size, r.rule.halo_is_noise, r.rule.min_density
    );
    println!();
    println!("pipeline (density peaks), duplicate groups counted once:");
    println!(
        "{:<24} {:>6} {:>4} {:>4} {:>4} {:>4} {:>9} {:>9}",
        "collection", "groups", "TP", "FP", "FN", "TN", "precision", "recall"
    );
    let line = |name: &str, c: &Counts| {
        println!(
            "{:<24} {:>6} {:>4} {:>4} {:>4} {:>4} {:>9} {:>9}",
            name,
            c.tp + c.fp + c.fn_ + c.tn,
            c.tp,
            c.fp,
            c.fn_,
            c.tn,
            pct(c.precision()),
            pct(c.recall())
        );
    };
    for (name, c) in &r.pipeline.collections {
        line(name, c);
    }
    line("overall", &r.pipeline.overall);
    let d = &r.pipeline.duplicates;
    println!("duplicates: {}/{} copies reported, {} false duplicates", d.found, d.copies, d.false_duplicates);
    if !r.pipeline.missing.is_empty() {
        println!("missing from labels.csv ({}): {}", r.pipeline.missing.len(), r.pipeline.missing.join(" "));
    }
    if !r.pipeline.unknown.is_empty() {
        println!("not in the truth ({}): {}", r.pipeline.unknown.len(), r.pipeline.unknown.join(" "));
    }
    println!("false positives ({}): {}", r.pipeline.false_positives.len(), list(&r.pipeline.false_positives));
    println!("false negatives ({}): {}", r.pipeline.false_negatives.len(), list(&r.pipeline.false_negatives));
    if r.methods.is_empty() {
        return;
    }
    println!();
    println!(
        "same {} embedded images, same label rule; baselines tuned on this data (every setting in --json):",
        r.clustered_images
    );
    if let Some(m) = r.rerun_matches_pipeline {
        println!("density peaks re-run on the stored embeddings gives the pipeline's labels: {m}");
    }
    println!("{:<24} {:>9} {:>9} {:>6}  parameters", "method", "precision", "recall", "F1");
    for (s, why) in best(&r.methods) {
        let params = if why.is_empty() { s.params.clone() } else { format!("{} ({why})", s.params) };
        println!("{:<24} {:>9} {:>9} {:>6.3}  {}", s.method, pct(s.precision), pct(s.recall), s.f1, params);
    }
    println!();
    println!("per collection, precision / recall:");
    let chosen: Vec<&MethodScore> =
        best(&r.methods).into_iter().filter(|(_, w)| *w != "best recall at P ≥ 97%").map(|(s, _)| s).collect();
    print!("{:<24}", "collection");
    for s in &chosen {
        print!(" {:>15}", truncate(&s.method, 15));
    }
    println!();
    for c in score::collections(truth) {
        print!("{c:<24}");
        for s in &chosen {
            let counts = s.collections.get(&c).copied().unwrap_or_default();
            print!(" {:>15}", format!("{} / {}", pct(counts.precision()), pct(counts.recall())));
        }
        println!();
    }
    if !r.sweep.is_empty() {
        println!();
        println!("density-peaks label rule sweep:");
        println!("{:<62} {:>9} {:>9} {:>6}", "rule", "precision", "recall", "F1");
        for s in &r.sweep {
            println!("{:<62} {:>9} {:>9} {:>6.3}", s.params, pct(s.precision), pct(s.recall), s.f1);
        }
    }
}

/// At most 30 names, then how many more (all of them are in `--json`).
fn list(names: &[String]) -> String {
    let mut s = names.iter().take(30).cloned().collect::<Vec<_>>().join(" ");
    if names.len() > 30 {
        s.push_str(&format!(" … and {} more", names.len() - 30));
    }
    s
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

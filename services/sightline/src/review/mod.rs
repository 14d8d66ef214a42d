//! `sightline review`: review an annotation's labels where a person's effort changes the most
//! (active learning; `docs/review.md`).
//!
//! - `sightline review --collections ROOT --out OUT` annotates ROOT in this process (unless OUT
//!   already holds that annotation) and serves the review page on 127.0.0.1 (the URL is
//!   printed): the least certain images first, one key to confirm or flip, every correction
//!   propagated to the rest of its collection; `OUT/labels.csv` is rewritten on exit (and is
//!   always at `/labels.csv`).
//! - `... --simulate TRUTH.csv --budget N --strategy uncertainty|random` replays a reviewer who
//!   answers from the truth and prints precision, recall and F1 against the number of reviewed
//!   images per collection (`--json` on stdout; progress on stderr); OUT gets `labels.csv`,
//!   `curve.csv`, `curve.svg`, `calibration.csv` and `calibration.svg`.
//!
//! The algorithms (confidence, queue, propagation) are `sightline_clustering::review`, beside
//! the labelling rule they re-apply; the service ([`service::ReviewService`]) keeps corrections
//! in the blob store and holds in coordination, so the same code serves one reviewer in
//! embedded mode or many against S3 and Redis.

pub mod load;
pub mod server;
pub mod service;
pub mod simulate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use sightline_clustering::labels::LabelRule;
use sightline_clustering::review::{Params, Propagation, Strategy};
use sightline_messages::ItemRecord;
use sightline_runtime::{Backends, CommonArgs};
use uuid::Uuid;

use crate::report::score;

/// Options of `sightline review`.
#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// Folder whose sub-folders are the collections (annotated first unless OUT holds their
    /// annotation).
    #[arg(long, required_unless_present = "job", conflicts_with = "job")]
    pub collections: Option<PathBuf>,
    /// Review a job of the distributed pipeline instead (its records, embeddings and the
    /// corrections in S3, the holds in Redis, as --amqp-url/--s3-*/--redis-url configure): any
    /// number of `sightline review --job` replicas serve one job's reviewers together.
    #[arg(long)]
    pub job: Option<Uuid>,
    /// Output folder (the annotation, `labels.csv`, and with --simulate the curves).
    #[arg(long, default_value = "review-out")]
    pub out: PathBuf,
    /// Annotate again even if OUT holds an annotation.
    #[arg(long)]
    pub reannotate: bool,
    /// Replay a simulated reviewer who answers from this truth file
    /// (`collection,file,label,duplicate_of`) instead of serving the page.
    #[arg(long)]
    pub simulate: Option<PathBuf>,
    /// Simulation: most images reviewed per collection (the curve is measured at 0, 5, 10, 20
    /// and 50, those up to this).
    #[arg(long, default_value_t = 50)]
    pub budget: usize,
    /// Simulation: the queue order whose labels are written (both curves are measured).
    #[arg(long, default_value = "uncertainty")]
    pub strategy: Strategy,
    /// Simulation: first seed of the random baseline (averaged over 5 seeds).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// How corrections reach the other images: none, refit (the rule's thresholds refitted to
    /// the reviews), spread (over the embedding graph) or refit+spread.
    #[arg(long, default_value = "spread")]
    pub propagation: Propagation,
    /// Neighbours per image in the embedding graph.
    #[arg(long, default_value_t = Params::default().k)]
    pub k: usize,
    /// Spreading strength α in (0, 1).
    #[arg(long, default_value_t = Params::default().alpha)]
    pub alpha: f32,
    /// Temperature of the confidence: σ(margin / T), the margin in log units.
    #[arg(long, default_value_t = Params::default().temperature)]
    pub temperature: f32,
    /// Weight of the queue's diversity penalty (0: plain least-confident order).
    #[arg(long, default_value_t = Params::default().diversity)]
    pub diversity: f32,
    /// Where to serve the page.
    #[arg(long, default_value = "127.0.0.1:8790")]
    pub addr: SocketAddr,
    /// Print the simulation's curve as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

impl ReviewArgs {
    fn params(&self) -> anyhow::Result<Params> {
        if self.alpha.is_nan() || self.alpha <= 0.0 || self.alpha >= 1.0 {
            bail!("--alpha must be in (0, 1), not {}", self.alpha);
        }
        if self.temperature.is_nan() || self.temperature <= 0.0 {
            bail!("--temperature must be positive");
        }
        Ok(Params {
            k: self.k.max(1),
            alpha: self.alpha,
            propagation: self.propagation,
            rule: LabelRule::default(),
            temperature: self.temperature,
            diversity: self.diversity,
        })
    }
}

/// The annotation of `collections` in `out`: reused when `out/records.json` names the same
/// collections, else run now.
async fn annotation(collections: &Path, out: &Path, again: bool) -> anyhow::Result<(Backends, Uuid, Vec<ItemRecord>)> {
    let records_path = out.join("records.json");
    if !again && records_path.exists() {
        let records: Vec<ItemRecord> = serde_json::from_slice(
            &std::fs::read(&records_path).with_context(|| format!("read {}", records_path.display()))?,
        )
        .with_context(|| format!("parse {}", records_path.display()))?;
        let wanted: std::collections::BTreeSet<String> = std::fs::read_dir(collections)
            .with_context(|| format!("read {}", collections.display()))?
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let have: std::collections::BTreeSet<String> = records.iter().map(|r| r.collection.clone()).collect();
        if let Some(job) = records.first().map(|r| r.job_id).filter(|_| have == wanted) {
            eprintln!("using the annotation in {} (--reannotate to run it again)", out.display());
            let backends = Backends::embedded(&out.join("storage")).context("open local storage")?;
            return Ok((backends, job, records));
        }
    }
    eprintln!("annotating {} (embedded mode)", collections.display());
    crate::embedded::annotate_into(collections, out).await
}

/// Runs the command. Returns the exit code.
pub async fn run(common: &CommonArgs, args: ReviewArgs) -> anyhow::Result<i32> {
    let params = args.params()?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("create {}", args.out.display()))?;
    let (backends, job, records) = match (&args.job, &args.collections) {
        (Some(job), _) => {
            let backends =
                Backends::distributed(common, "sightline-review").await.context("connect to the services")?;
            let records = sightline_runtime::records::read_records(backends.blob.as_ref(), *job)
                .await
                .with_context(|| format!("read the records of job {job}"))?;
            if records.is_empty() {
                bail!("job {job} has no records (not finished, or not an annotation job)");
            }
            (backends, *job, records)
        }
        (None, Some(collections)) => annotation(collections, &args.out, args.reannotate).await?,
        (None, None) => bail!("--collections or --job"),
    };
    let loaded = load::load_job(backends.blob.as_ref(), job, &records, &params.rule, params.k).await?;
    match &args.simulate {
        Some(truth) => simulate_cmd(&args, truth, backends, job, loaded, params).await,
        None => serve_cmd(&args, backends, job, loaded, params).await,
    }
}

async fn simulate_cmd(
    args: &ReviewArgs,
    truth_path: &Path,
    backends: Backends,
    job: Uuid,
    loaded: std::collections::BTreeMap<String, load::Loaded>,
    params: Params,
) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(truth_path).with_context(|| format!("read {}", truth_path.display()))?;
    let truth = score::parse_truth(&text).map_err(anyhow::Error::msg)?;
    let truth: Vec<_> = truth.into_iter().filter(|t| loaded.contains_key(&t.collection)).collect();
    if truth.is_empty() {
        bail!("{} names none of the job's collections", truth_path.display());
    }
    eprintln!("simulating a reviewer over {} collections (propagation {})", loaded.len(), params.propagation.as_str());
    let started = std::time::Instant::now();
    let (curves, finals) = {
        let (loaded, truth, params) = (loaded.clone(), truth.clone(), params.clone());
        let (budget, strategy, seed) = (args.budget, args.strategy, args.seed);
        tokio::task::spawn_blocking(move || simulate::run(&loaded, &truth, budget, strategy, &params, seed)).await?
    };
    eprintln!("simulated in {:.2} s", started.elapsed().as_secs_f64());
    // The final labels: the simulated reviewer's answers stored as corrections (in a scratch
    // store, so OUT's annotation keeps no simulated review), exported by the service.
    let scratch = tempfile::tempdir().context("scratch folder")?;
    let blob: Arc<dyn sightline_blob::BlobStore> =
        Arc::new(sightline_blob::LocalStore::new(scratch.path()).context("scratch store")?);
    let (propagation, temperature) = (params.propagation, params.temperature);
    let service = service::ReviewService::with_collections(blob, backends.coord.clone(), job, loaded, params);
    for (name, (current, reviewed)) in &finals {
        let l = &service.collections()[name];
        for &i in reviewed {
            service.correct(name, &l.images[i].file, current[i].product, "simulated").await?;
        }
    }
    std::fs::write(args.out.join("labels.csv"), service.export_csv().await?).context("write labels.csv")?;
    std::fs::write(args.out.join("curve.csv"), simulate::curves_csv(&curves)).context("write curve.csv")?;
    let what = args.collections.as_ref().map_or_else(|| format!("job {job}"), |c| c.display().to_string());
    let title = format!("review of {what} ({} propagation)", propagation.as_str());
    std::fs::write(args.out.join("curve.svg"), simulate::curves_svg(&curves, &title)).context("write curve.svg")?;
    let bins = simulate::calibration(service.collections(), &truth, temperature);
    let mut cal = String::from("from,to,labels,right,accuracy,mean_confidence\n");
    for b in &bins {
        cal.push_str(&format!(
            "{},{},{},{},{:.4},{:.4}\n",
            b.from,
            b.to,
            b.labels,
            b.right,
            b.accuracy(),
            b.mean_confidence
        ));
    }
    eprintln!("calibration of the automatic labels: ECE {:.3}", simulate::expected_calibration_error(&bins));
    std::fs::write(args.out.join("calibration.csv"), cal).context("write calibration.csv")?;
    std::fs::write(args.out.join("calibration.svg"), simulate::calibration_svg(&bins))
        .context("write calibration.svg")?;
    let chosen = curves.iter().find(|c| c.strategy == args.strategy).expect("both strategies are run");
    if args.json {
        println!("{}", serde_json::to_string_pretty(chosen)?);
    } else {
        println!(
            "{:<12} {:>6} {:>9} {:>7} {:>7} {:>13}",
            "strategy", "budget", "precision", "recall", "F1", "F1 unreviewed"
        );
        for c in &curves {
            let name = c.strategy.as_str();
            for i in 0..c.budget.len() {
                println!(
                    "{name:<12} {:>6} {:>9.3} {:>7.3} {:>7.3} {:>13}",
                    c.budget[i],
                    c.precision[i],
                    c.recall[i],
                    c.f1[i],
                    c.f1_unreviewed[i].map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"))
                );
            }
        }
        println!("wrote {}/{{labels.csv,curve.csv,curve.svg,calibration.csv,calibration.svg}}", args.out.display());
    }
    Ok(0)
}

async fn serve_cmd(
    args: &ReviewArgs,
    backends: Backends,
    job: Uuid,
    loaded: std::collections::BTreeMap<String, load::Loaded>,
    params: Params,
) -> anyhow::Result<i32> {
    let service = Arc::new(service::ReviewService::with_collections(
        backends.blob.clone(),
        backends.coord.clone(),
        job,
        loaded,
        params,
    ));
    let listener = server::bind(args.addr).await?;
    let addr = listener.local_addr()?;
    let images: usize = service.collections().values().map(|l| l.images.len()).sum();
    println!("review {} images in {} collections at http://{addr}/", images, service.collections().len());
    eprintln!("Ctrl-C to stop; the labels are written to {} then", args.out.join("labels.csv").display());
    server::serve(listener, service.clone(), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .context("serve the review page")?;
    std::fs::write(args.out.join("labels.csv"), service.export_csv().await?).context("write labels.csv")?;
    eprintln!("wrote {}", args.out.join("labels.csv").display());
    Ok(0)
}

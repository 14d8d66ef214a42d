//! `sightline`: the producer and operator CLI, and the embedded single-process mode. This is
//! argument parsing and dispatch; the commands are the `sightline` library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sightline::embedded::{self, cluster, dedup, face, ocr, search};
use sightline::remote::{self, dlq};
use sightline::{jobs, models};
use sightline_runtime::CommonArgs;

/// Sightline: turn piles of raw images into searchable knowledge.
///
/// `run` processes a folder in one process (no services needed). The other commands talk to
/// the distributed pipeline (RabbitMQ, Redis, S3): push jobs, watch them, read results,
/// inspect and replay dead letters.
#[derive(Parser)]
#[command(version, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Process a folder in this process (embedded mode: in-memory bus, local folder storage,
    /// in-memory coordination; the same stage code as the workers) and print every image's record.
    Run {
        /// Folder of images; each sub-folder is a collection.
        #[arg(default_value = "tests/fixtures/sample")]
        dir: PathBuf,
        /// Where to write records.json, records.csv and the stored objects (OUT/storage).
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// Stages each image visits, comma-separated, starting with ingest.
        #[arg(long, default_value = "ingest", value_delimiter = ',')]
        route: Vec<String>,
        /// Print the records as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Auto-annotate crawled collections in this process (embedded mode): drop duplicates,
    /// filter noise, embed, cluster by density peaks, label the large compact clusters as the
    /// product. Writes OUT/labels.csv and OUT/report.html.
    Annotate {
        /// Folder whose sub-folders are the collections (one per product query).
        #[arg(long)]
        collections: PathBuf,
        /// Output folder.
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// Print the records as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Find exact and near-duplicate images under a folder in this process (embedded mode:
    /// the ingest and dedup stages). Writes OUT/groups.csv: file,group,original,kind,distance.
    Dedup {
        /// Folder of images; each sub-folder is a collection, compared separately.
        dir: PathBuf,
        /// Output folder.
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// Largest Hamming distance between 64-bit perceptual hashes called a near duplicate.
        #[arg(long, env = "DEDUP_MAX_DISTANCE", default_value_t = sightline_dedup::DEFAULT_MAX_DISTANCE)]
        max_distance: u32,
        /// Do not look images up by their mirror image's hash (horizontally flipped copies are
        /// then not duplicates; with it they are, kind `mirror`).
        #[arg(long)]
        no_mirror: bool,
        /// Print the summary and the groups as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Push a job: upload a local folder (or name an S3 prefix or a URL list) and enqueue it.
    /// `submit annotate --collections ROOT --wait --out OUT` runs an annotation job;
    /// `submit store --camera CAMERA.toml VIDEO... --wait --out OUT` a camera's videos through
    /// the store route (the outputs of `sightline store`).
    Submit {
        /// Optionally the job kind (`ingest`, `dedup`, `annotate`, `store`), then a local folder
        /// to upload (sub-folders are collections), or for `store` the video files.
        #[arg(num_args = 0.., value_name = "[KIND] DIR")]
        positional: Vec<String>,
        /// The camera file of a store job (TOML or JSON; docs/store.md).
        #[arg(long)]
        camera: Option<PathBuf>,
        /// The segment length of a store job, seconds.
        #[arg(long, default_value_t = sightline_messages::options::DEFAULT_SEGMENT_S)]
        segment_s: f64,
        /// The folder of collections to upload (same as DIR).
        #[arg(long, conflicts_with_all = ["s3_prefix", "urls"])]
        collections: Option<PathBuf>,
        /// Write records (and, for annotation, labels.csv and report.html) here after --wait.
        #[arg(long, requires = "wait")]
        out: Option<PathBuf>,
        /// Use the objects already under this prefix of the bucket instead of uploading.
        #[arg(long, conflicts_with_all = ["positional", "urls"])]
        s3_prefix: Option<String>,
        /// A file with one image URL per line.
        #[arg(long, conflicts_with_all = ["positional", "s3_prefix"])]
        urls: Option<PathBuf>,
        /// Collection name for a URL list.
        #[arg(long, default_value = "default")]
        collection: String,
        /// The job's kind (sets the default route).
        #[arg(long)]
        kind: Option<String>,
        /// Stages each image visits, comma-separated, starting with ingest (default: by kind).
        #[arg(long, value_delimiter = ',')]
        route: Option<Vec<String>>,
        /// A job option for the stages, KEY=VALUE (repeatable), e.g. `dedup.scope=crawl-2024`
        /// to deduplicate against every earlier job that named the same scope.
        #[arg(long = "option", value_name = "KEY=VALUE", value_parser = parse_option)]
        options: Vec<(String, String)>,
        /// Wait for the job to finish, with a progress bar.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds (exit code 3).
        #[arg(long, default_value_t = 3600)]
        timeout_secs: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Continue the interrupted upload of this job (printed when it started): files already
        /// stored with the same size are not sent again, then the job is submitted.
        #[arg(long, value_name = "JOB")]
        resume: Option<uuid::Uuid>,
    },
    /// Show a job's progress.
    Status {
        /// Job id.
        job: uuid::Uuid,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a job's per-image records.
    Results {
        /// Job id.
        job: uuid::Uuid,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Inspect and replay dead letters.
    Dlq {
        #[command(subcommand)]
        command: dlq::DlqCommand,
    },
    /// Find and analyse the faces of local images (folders are searched recursively): box,
    /// score, five landmarks, head pose, frontal flag, age, gender, and a person id consistent
    /// across all the files of the invocation. Needs the models (`models/fetch.sh`).
    Face {
        /// Image files or folders.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print a JSON array, one object per file: {"file", "faces": [...]}.
        #[arg(long)]
        json: bool,
        /// Add each face's 512-d embedding.
        #[arg(long)]
        embeddings: bool,
        #[command(flatten)]
        face: sightline_face::FaceArgs,
    },
    /// Read the text of local images (folders are searched recursively): lines in reading order
    /// with score and box, and price-tag fields (amount, currency, label, per-unit, "from").
    /// Needs the models (`models/fetch.sh`).
    Ocr {
        /// Image files or folders.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print a JSON array, one object per file: {"file", "lines": [{"text", "score", "box"}], "prices": [...]}.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        ocr: sightline_ocr::OcrArgs,
    },
    /// Density-peaks clustering of a point set (CSV: feature columns, an optional final `label`
    /// column that is ignored). Writes OUT/assignments.csv (row,cluster,halo), the decision graph
    /// (OUT/decision_graph.csv and .svg) and OUT/summary.json.
    Cluster(cluster::ClusterArgs),
    /// Search by photo in this process: embed (and OCR) a catalogue folder and a queries folder,
    /// index the catalogue, print each query's best catalogue items; with --logo, logo search
    /// (the catalogue is logo images, each query's brands from regions of the photo and its OCR
    /// text). Needs the models (`models/fetch.sh`).
    Search(search::SearchArgs),
    /// Train a retrieval head on the frozen backbone from folders of photos per product
    /// (`--photos DIR`): writes MODEL_DIR/model.toml, head.f32 and report.html (loss curve).
    /// `sightline search --model MODEL_DIR` searches with it. See docs/training.md.
    Train(sightline::train::TrainArgs),
    /// Review an annotation's labels where it matters most (active learning): annotates
    /// --collections (unless OUT holds it) and serves a review page on 127.0.0.1, least certain
    /// images first, each correction propagated to its collection; with --simulate TRUTH.csv, a
    /// simulated reviewer's precision/recall curve instead. See docs/review.md.
    Review(sightline::review::ReviewArgs),
    /// Count the people in images (folders are searched recursively) with the person detector:
    /// `--json` prints [{"file", "count", "boxes": [[x, y, w, h, score]]}]. With --camera, the
    /// camera's counting region and correction apply (`count` corrected, `detections` the
    /// boxes); with --calibrate TRUTH.csv --out CAMERA.toml, the correction is fitted from
    /// labelled frames and written to the camera file. See docs/store.md.
    Count(sightline::store::count::CountArgs),
    /// In-store analytics of one camera's footage (video files or frame folders, in recording
    /// order): people in view, entries and exits across the camera's lines, dwell per zone,
    /// a heat map, visitor age/gender mix. Writes CSVs, tracks.json, heatmap.png and
    /// report.html to --out. See docs/store.md.
    Store(sightline::store::run::StoreArgs),
    /// Check the models against their reference outputs.
    Models {
        #[command(subcommand)]
        command: models::ModelsCommand,
    },
    /// Make an API key for the search API: prints the key's entry for the server's key file
    /// (SEARCH_API_KEYS) on stdout, and the token, which is stored nowhere, on stderr:
    /// `sightline api-key --name shop-front --catalog shop --read-only >> keys.toml`.
    ApiKey {
        /// The key's name (logged with its requests).
        #[arg(long)]
        name: String,
        /// A catalogue the key may use (repeatable; default: every catalogue).
        #[arg(long = "catalog", value_name = "NAME")]
        catalogs: Vec<String>,
        /// The key may search and read statistics, not add items.
        #[arg(long)]
        read_only: bool,
        /// Requests per minute.
        #[arg(long, default_value_t = sightline_index::auth::DEFAULT_PER_MINUTE)]
        per_minute: u32,
        /// Print one JSON object (name, token, sha256, entry) instead.
        #[arg(long)]
        json: bool,
    },
}

/// `sightline api-key`: a fresh token and its key-file entry (checked by parsing it back).
fn api_key(name: &str, catalogs: &[String], read_only: bool, per_minute: u32, json: bool) -> anyhow::Result<i32> {
    use sightline_index::auth;
    for c in catalogs {
        sightline_index::api::valid_catalog(c).map_err(|e| anyhow::anyhow!("--catalog: {e}"))?;
    }
    let (token, sha256) = auth::new_token();
    let catalogs = if catalogs.is_empty() { vec!["*".to_owned()] } else { catalogs.to_vec() };
    let quoted: Vec<String> = catalogs.iter().map(|c| format!("{c:?}")).collect();
    let entry = format!(
        "[[key]]\nname = {name:?}\nsha256 = \"{sha256}\"\ncatalogs = [{}]\nread_only = {read_only}\nper_minute = {per_minute}\n",
        quoted.join(", ")
    );
    auth::Keys::parse(&entry).map_err(|e| anyhow::anyhow!("key entry: {e}"))?;
    if json {
        println!("{}", serde_json::json!({ "name": name, "token": token, "sha256": sha256, "entry": entry }));
    } else {
        print!("\n{entry}");
        eprintln!("token for {name:?} (give it to the client; only its SHA-256 is kept): {token}");
    }
    Ok(0)
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let code = match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    // Flush exported spans (with the `otel` feature; a no-op otherwise) before exiting.
    let _ = tokio::task::spawn_blocking(sightline_runtime::telemetry::shutdown).await;
    std::process::exit(code);
}

/// Parses a `KEY=VALUE` job option.
fn parse_option(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    if std::env::var_os("RUST_LOG").is_some() {
        sightline_runtime::telemetry::init_as("sightline");
    }
    match cli.command {
        Command::Run { dir, out, route, json } => embedded::run_embedded(&dir, &out, "run", route, json).await,
        Command::Annotate { collections, out, json } => {
            embedded::run_embedded(&collections, &out, "annotate", jobs::default_route("annotate")?, json).await
        }
        Command::Dedup { dir, out, max_distance, no_mirror, json } => {
            let config = sightline_dedup::DedupConfig { max_distance, mirror: !no_mirror, ..Default::default() };
            dedup::run(&dir, &out, config, json).await.map(|()| 0)
        }
        Command::Submit {
            positional,
            camera,
            segment_s,
            collections,
            out,
            s3_prefix,
            urls,
            collection,
            kind,
            route,
            options,
            wait,
            timeout_secs,
            json,
            resume,
        } => {
            if positional.first().map(String::as_str) == Some("store") || kind.as_deref() == Some("store") {
                let videos: Vec<PathBuf> = positional.iter().skip_while(|p| *p == "store").map(PathBuf::from).collect();
                let camera = camera.context("a store job needs --camera CAMERA.toml")?;
                let args = remote::store::SubmitStoreArgs { camera, videos, segment_s, wait, out, timeout_secs, json };
                return remote::store::submit_store(&cli.common, args).await;
            }
            const KINDS: [&str; 3] = ["ingest", "dedup", "annotate"];
            if positional.len() > 2 {
                anyhow::bail!("give at most a kind and one folder (got {} arguments)", positional.len());
            }
            let mut positional = positional.into_iter();
            let (kind_word, dir) = match positional.next() {
                Some(k) if KINDS.contains(&k.as_str()) && !std::path::Path::new(&k).is_dir() => {
                    (Some(k), positional.next().map(PathBuf::from))
                }
                other => (None, other.map(PathBuf::from)),
            };
            let kind = kind_word.or(kind).unwrap_or_else(|| "ingest".to_owned());
            let route = match route {
                Some(r) => r,
                None => jobs::default_route(&kind)?,
            };
            let source = match (dir.or(collections), s3_prefix, urls) {
                (Some(d), _, _) => remote::SubmitSource::Dir(d),
                (_, Some(p), _) => remote::SubmitSource::Prefix(p),
                (_, _, Some(f)) => {
                    let text = std::fs::read_to_string(&f).with_context(|| format!("read url list {}", f.display()))?;
                    let urls = text
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(str::to_owned)
                        .collect();
                    remote::SubmitSource::Urls(urls, collection)
                }
                _ => anyhow::bail!("give a folder (or --collections), --s3-prefix or --urls"),
            };
            remote::submit(&cli.common, source, kind, route, wait, timeout_secs, out.as_deref(), options, json, resume)
                .await
        }
        Command::Status { job, json } => remote::status(&cli.common, job, json).await,
        Command::Results { job, json } => remote::results(&cli.common, job, json).await,
        Command::Dlq { command } => dlq::run(&cli.common, command).await,
        Command::Face { files, json, embeddings, face } => face::run(files, face, json, embeddings).await,
        Command::Ocr { files, json, ocr } => ocr::run(files, ocr, json).await,
        Command::Search(args) => search::run(args).await,
        Command::Train(args) => sightline::train::run(args).await.map(|()| 0),
        Command::Review(args) => sightline::review::run(&cli.common, args).await,
        Command::Cluster(args) => tokio::task::spawn_blocking(move || cluster::run(args)).await?,
        Command::Count(args) => sightline::store::count::run(args).await,
        Command::Store(args) => sightline::store::run::run(args).await,
        Command::Models { command } => tokio::task::spawn_blocking(move || models::run(command)).await?,
        Command::ApiKey { name, catalogs, read_only, per_minute, json } => {
            api_key(&name, &catalogs, read_only, per_minute, json)
        }
    }
}

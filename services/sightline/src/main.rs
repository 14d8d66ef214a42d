//! `sightline`: the producer and operator CLI, and the embedded single-process mode.

mod dlq;
mod jobs;
mod models;
mod output;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
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
    /// Push a job: upload a local folder (or name an S3 prefix or a URL list) and enqueue it.
    Submit {
        /// A local folder to upload (sub-folders are collections).
        #[arg(required_unless_present_any = ["s3_prefix", "urls"])]
        dir: Option<PathBuf>,
        /// Use the objects already under this prefix of the bucket instead of uploading.
        #[arg(long, conflicts_with_all = ["dir", "urls"])]
        s3_prefix: Option<String>,
        /// A file with one image URL per line.
        #[arg(long, conflicts_with_all = ["dir", "s3_prefix"])]
        urls: Option<PathBuf>,
        /// Collection name for a URL list.
        #[arg(long, default_value = "default")]
        collection: String,
        /// The job's kind (recorded with it).
        #[arg(long, default_value = "ingest")]
        kind: String,
        /// Stages each image visits, comma-separated, starting with ingest.
        #[arg(long, default_value = "ingest", value_delimiter = ',')]
        route: Vec<String>,
        /// Wait for the job to finish, with a progress bar.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds (exit code 3).
        #[arg(long, default_value_t = 3600)]
        timeout_secs: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
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
    /// Check the models against their reference outputs.
    Models {
        #[command(subcommand)]
        command: models::ModelsCommand,
    },
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
    std::process::exit(code);
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    if std::env::var_os("RUST_LOG").is_some() {
        sightline_runtime::telemetry::init();
    }
    match cli.command {
        Command::Run { dir, out, route, json } => jobs::run_embedded(&dir, &out, route, json).await,
        Command::Submit { dir, s3_prefix, urls, collection, kind, route, wait, timeout_secs, json } => {
            let source = match (dir, s3_prefix, urls) {
                (Some(d), _, _) => jobs::SubmitSource::Dir(d),
                (_, Some(p), _) => jobs::SubmitSource::Prefix(p),
                (_, _, Some(f)) => {
                    let text = std::fs::read_to_string(&f).with_context(|| format!("read url list {}", f.display()))?;
                    let urls = text
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(str::to_owned)
                        .collect();
                    jobs::SubmitSource::Urls(urls, collection)
                }
                _ => anyhow::bail!("give a folder, --s3-prefix or --urls"),
            };
            jobs::submit(&cli.common, source, kind, route, wait, timeout_secs, json).await
        }
        Command::Status { job, json } => jobs::status(&cli.common, job, json).await,
        Command::Results { job, json } => jobs::results(&cli.common, job, json).await,
        Command::Dlq { command } => dlq::run(&cli.common, command).await,
        Command::Models { command } => tokio::task::spawn_blocking(move || models::run(command)).await?,
    }
}

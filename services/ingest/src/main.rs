//! The ingest worker: fetches, validates and stores each image of a job.

use std::sync::Arc;

use clap::Parser;
use sightline_runtime::{CommonArgs, RunnerSettings};

/// Ingest worker: expands jobs into images, fetches and validates each one (format from the
/// bytes, size and pixel limits, corrupt and truncated files rejected), stores it
/// content-addressed in S3 and sends it along its route.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    runner: RunnerSettings,
    #[command(flatten)]
    ingest: sightline_ingest::IngestArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let stage = sightline_ingest::Ingest::new(args.ingest.into())?;
    sightline_runtime::service::run_worker(Arc::new(stage), args.common, args.runner).await
}

//! The index worker: adds labelled embeddings to the per-collection vector index in S3.

use std::sync::Arc;

use clap::Parser;
use sightline_runtime::{CommonArgs, RunnerSettings};

/// Index worker: records each image's embedding under its collection and label in S3, where
/// every index replica (and search) loads it from.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    runner: RunnerSettings,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    sightline_runtime::service::run_worker(Arc::new(sightline_index::IndexStage), args.common, args.runner).await
}

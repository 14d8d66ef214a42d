//! The dedup worker: finds exact and near-duplicate images across replicas.

use std::sync::Arc;

use clap::Parser;
use sightline_runtime::{CommonArgs, RunnerSettings};

/// Dedup worker: claims each image's content hash, pixel hash and perceptual hash in Redis so
/// that every copy, exact or near, points to one original; originals go on along their route,
/// duplicates leave it with the annotation `dedup`.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    runner: RunnerSettings,
    #[command(flatten)]
    dedup: sightline_dedup::DedupArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    sightline_runtime::telemetry::init_as("sightline-dedup");
    tracing::info!(dedup = ?args.dedup, "dedup settings");
    let stage = sightline_dedup::Dedup::new(args.dedup.into())?;
    sightline_runtime::service::run_worker(Arc::new(stage), args.common, args.runner).await
}

//! The cluster worker: density-peaks clustering of each collection once all its images arrived.

use std::sync::Arc;

use clap::Parser;
use sightline_runtime::{CommonArgs, RunnerSettings};

/// Cluster worker: parks image tasks until their collection is complete, then clusters the
/// collection's embeddings by density peaks and labels the large compact clusters as the
/// product.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    runner: RunnerSettings,
    #[command(flatten)]
    rule: sightline_cluster::stage::LabelRule,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let stage = sightline_cluster::stage::ClusterStage::new(args.rule);
    sightline_runtime::service::run_worker(Arc::new(stage), args.common, args.runner).await
}

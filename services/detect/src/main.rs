//! The detect worker: moderation score, main-subject crop and noise filtering per image.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use sightline_runtime::{CommonArgs, RunnerSettings};

/// Detect worker: scores every image for content moderation (open-nsfw), finds its main
/// subject, and takes images dominated by faces or text off their route (outcome `filtered`,
/// with the reason). Models come from $SIGHTLINE_MODELS (`models/fetch.sh`); while they are
/// missing, /readyz says which file and the worker does not consume.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    runner: RunnerSettings,
    #[command(flatten)]
    detect: sightline_detect::DetectArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let store = sightline_inference::ModelStore::from_env().context("read the model manifest")?;
    let stage = sightline_detect::Detect::new(args.detect.into(), Arc::new(store));
    sightline_runtime::service::run_worker(Arc::new(stage), args.common, args.runner).await
}

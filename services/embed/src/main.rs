//! The embed worker: a CNN embedding of each image's main subject, batched.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use sightline_runtime::{CommonArgs, RunnerSettings};

/// Embed worker: computes the EfficientNet-Lite0 embedding (1280-d, L2-normalised) of each
/// image's main subject (detect's crop, else the whole image), batching concurrent messages
/// into one model call, and stores it as a blob referenced in `annotations.embed`. The model
/// comes from $SIGHTLINE_MODELS (`models/fetch.sh`); while it is missing, /readyz says which
/// file and the worker does not consume.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    runner: RunnerSettings,
    #[command(flatten)]
    embed: sightline_embed::EmbedArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let store = sightline_inference::ModelStore::from_env().context("read the model manifest")?;
    let stage = sightline_embed::Embed::new(args.embed.into(), Arc::new(store));
    sightline_runtime::service::run_worker(Arc::new(stage), args.common, args.runner).await
}

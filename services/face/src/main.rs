//! The face worker: detects and analyses the faces of each image and de-duplicates people
//! within a job.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use sightline_runtime::{CommonArgs, RunnerSettings};

/// Face worker: detection with landmarks, head pose and frontal flag, age and gender, face
/// embeddings, and person ids consistent within a job. Models from `$SIGHTLINE_MODELS`
/// (`models/fetch.sh`), ONNX Runtime from `$ORT_DYLIB_PATH`.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    runner: RunnerSettings,
    #[command(flatten)]
    face: sightline_face::FaceArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    sightline_runtime::telemetry::init_as("sightline-face");
    tracing::info!(face = ?args.face, "face settings");
    let stage = sightline_face::FaceStage::from_args(&args.face).context("load the face models")?;
    sightline_runtime::service::run_worker(Arc::new(stage), args.common, args.runner).await
}

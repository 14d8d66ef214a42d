//! The OCR worker: reads the text of each image (PP-OCR through ONNX Runtime) and stores the
//! lines and price-tag fields in the image's annotations.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use sightline_runtime::{CommonArgs, RunnerSettings};

/// OCR worker: detects, orients and recognises Chinese and English text lines with PP-OCR
/// models (RapidOCR's processing), extracts prices, and sends each image along its route.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    runner: RunnerSettings,
    #[command(flatten)]
    ocr: sightline_ocr::OcrArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ocr = args.ocr.clone();
    let stage = tokio::task::spawn_blocking(move || sightline_ocr::Ocr::from_env(&ocr))
        .await
        .context("load ocr models")?
        .context("load ocr models (run models/fetch.sh and export its SIGHTLINE_MODELS, ORT_DYLIB_PATH)")?;
    sightline_runtime::service::run_worker(Arc::new(stage), args.common, args.runner).await
}

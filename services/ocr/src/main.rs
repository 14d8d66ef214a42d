//! The OCR worker: reads the text of each image (PP-OCR through ONNX Runtime) and stores the
//! lines and price-tag fields in the image's annotations.

use std::sync::Arc;

use anyhow::Context;
use sightline_inference::ModelStore;
use sightline_ocr::{Ocr, OcrArgs};
use sightline_runtime::{Worker, service};

/// What `--help` says the worker does.
const ABOUT: &str = "OCR worker: detects, orients and recognises Chinese and English text lines with PP-OCR models (RapidOCR's processing), extracts prices, and sends each image along its route. Models come from $SIGHTLINE_MODELS (`models/fetch.sh`); while they are missing, /readyz says which file and the worker does not consume.";

fn main() -> anyhow::Result<()> {
    service::main("sightline-ocr", ABOUT, |args: OcrArgs| {
        let store = Arc::new(ModelStore::from_env().context("read the model manifest")?);
        Ok(Worker::new(Ocr::new(&args, store)))
    })
}

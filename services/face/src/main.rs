//! The face worker: detects and analyses the faces of each image and de-duplicates people
//! within a job.

use std::sync::Arc;

use anyhow::Context;
use sightline_face::{FaceArgs, FaceStage};
use sightline_inference::ModelStore;
use sightline_runtime::{Worker, service};

/// What `--help` says the worker does.
const ABOUT: &str = "Face worker: detection with landmarks, head pose and frontal flag, age and gender, face embeddings, and person ids consistent within a job. Models from `$SIGHTLINE_MODELS` (`models/fetch.sh`), ONNX Runtime from `$ORT_DYLIB_PATH`; while they are missing, /readyz says which file and the worker does not consume.";

fn main() -> anyhow::Result<()> {
    service::main("sightline-face", ABOUT, |args: FaceArgs| {
        let store = Arc::new(ModelStore::from_env().context("read the model manifest")?);
        Ok(Worker::new(FaceStage::from_store(&args, store)))
    })
}

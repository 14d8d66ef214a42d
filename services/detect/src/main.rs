//! The detect worker: moderation score, main-subject crop and noise filtering per image.

use std::sync::Arc;

use anyhow::Context;
use sightline_detect::{Detect, DetectArgs};
use sightline_inference::ModelStore;
use sightline_runtime::{Worker, service};

/// What `--help` says the worker does.
const ABOUT: &str = "Detect worker: scores every image for content moderation (open-nsfw), finds its main subject, and takes images dominated by faces or text off their route (outcome `filtered`, with the reason). Models come from $SIGHTLINE_MODELS (`models/fetch.sh`); while they are missing, /readyz says which file and the worker does not consume.";

fn main() -> anyhow::Result<()> {
    service::main("sightline-detect", ABOUT, |args: DetectArgs| {
        let store = Arc::new(ModelStore::from_env().context("read the model manifest")?);
        Ok(Worker::new(Detect::new(args.into(), store)))
    })
}

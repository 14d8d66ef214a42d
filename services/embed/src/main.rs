//! The embed worker: a CNN embedding of each image's main subject, batched.

use std::sync::Arc;

use anyhow::Context;
use sightline_embed::{Embed, EmbedArgs};
use sightline_inference::ModelStore;
use sightline_runtime::{Worker, service};

/// What `--help` says the worker does.
const ABOUT: &str = "Embed worker: computes the EfficientNet-Lite0 embedding (1280-d, L2-normalised) of each image's main subject (detect's crop, else the whole image), batching concurrent messages into one model call, and stores it as a blob referenced in `annotations.embed`. The model comes from $SIGHTLINE_MODELS (`models/fetch.sh`); while it is missing, /readyz says which file and the worker does not consume.";

fn main() -> anyhow::Result<()> {
    service::main("sightline-embed", ABOUT, |args: EmbedArgs| {
        let store = Arc::new(ModelStore::from_env().context("read the model manifest")?);
        Ok(Worker::new(Embed::new(args.into(), store)))
    })
}

//! The index worker: adds labelled embeddings to the per-collection vector index in S3, and
//! serves the search HTTP API beside it.

use sightline_index::server::{self, IndexArgs};
use sightline_runtime::service;

/// What `--help` says the worker does.
const ABOUT: &str = "Index worker: records each image's embedding under its collection and label in S3, where every index replica (and search) loads it from; answers search jobs; serves the search API.";

fn main() -> anyhow::Result<()> {
    service::main("sightline-index", ABOUT, |args: IndexArgs| Ok(server::worker(&args)?))
}

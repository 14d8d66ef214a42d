//! The ingest worker: fetches, validates and stores each image of a job.

use sightline_ingest::{Ingest, IngestArgs};
use sightline_runtime::{Worker, service};

/// What `--help` says the worker does.
const ABOUT: &str = "Ingest worker: expands jobs into images, fetches and validates each one (format from the bytes, size and pixel limits, corrupt and truncated files rejected), stores it content-addressed in S3 and sends it along its route.";

fn main() -> anyhow::Result<()> {
    service::main("sightline-ingest", ABOUT, |args: IngestArgs| Ok(Worker::new(Ingest::new(args.into())?)))
}

//! The dedup worker: finds exact and near-duplicate images across replicas.

use sightline_dedup::{Dedup, DedupArgs};
use sightline_runtime::{Worker, service};

/// What `--help` says the worker does.
const ABOUT: &str = "Dedup worker: claims each image's content hash, pixel hash and perceptual hash in Redis so that every copy, exact or near, points to one original; originals go on along their route, duplicates leave it with the annotation `dedup`.";

fn main() -> anyhow::Result<()> {
    service::main("sightline-dedup", ABOUT, |args: DedupArgs| Ok(Worker::new(Dedup::new(args.into())?)))
}

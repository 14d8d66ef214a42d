//! The track worker: each camera video's segments in order, with the tracker state carried.

use sightline_runtime::{Worker, service};
use sightline_track::{TrackArgs, TrackStage};

/// What `--help` says the worker does.
const ABOUT: &str = "Track worker: runs each camera video's segments in order (people tracked across them, the state carried in storage), and writes the store analytics (counts, crossings, dwell, heat map) when the video's last segment is done.";

fn main() -> anyhow::Result<()> {
    service::main("sightline-track", ABOUT, |args: TrackArgs| Ok(Worker::new(TrackStage::new(args))))
}

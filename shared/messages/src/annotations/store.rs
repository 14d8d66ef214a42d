//! The store-analytics route (`ingest → detect → track`): a camera's video is cut into
//! segments, each one task; detect finds the people in a segment's sampled frames; track runs
//! each video's segments in order with the tracker state carried between them.

use serde::{Deserialize, Serialize};

use super::Annotation;

/// `annotations.segment`: which part of a video a task is (written by ingest). The task's `key`
/// is the video's object; its `item` is the video's item (every segment of a video shares it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentIn {
    /// Layout version.
    pub version: u32,
    /// The segment's index in the video, from 0.
    pub index: u32,
    /// Segments of the video.
    pub count: u32,
    /// Where the segment starts, seconds from the start of the video.
    pub start_s: f64,
    /// The segment's length, seconds (the last one may be shorter).
    pub duration_s: f64,
    /// Frames per second sampled.
    pub fps: f64,
    /// Where the video starts on the camera's timeline, seconds (a recorder's files follow on).
    pub offset_s: f64,
}

impl SegmentIn {
    /// The current layout.
    pub const VERSION: u32 = 1;

    /// Whether `task` is a video segment (a store job's task); a malformed segment annotation
    /// is an error.
    pub fn is_on(task: &crate::ImageTask) -> Result<bool, super::AnnotationError> {
        task.annotation::<SegmentIn>().map(|s| s.is_some())
    }
}

impl Annotation for SegmentIn {
    const KEY: &'static str = "segment";
}

/// `annotations.people`: the people detect found in a segment (written by detect). The
/// detections themselves (per frame: time and boxes) are a JSON object in storage at `key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeopleOut {
    /// Layout version.
    pub version: u32,
    /// The detections' object.
    pub key: String,
    /// Frames decoded.
    pub frames: u32,
    /// Person boxes over all frames.
    pub boxes: u32,
}

impl PeopleOut {
    /// The current layout.
    pub const VERSION: u32 = 1;
}

impl Annotation for PeopleOut {
    const KEY: &'static str = "people";
}

/// `annotations.store`: a video's analytics (written by track on the video's last segment);
/// the tables are objects under `prefix` (`counts.csv`, `crossings.csv`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreOut {
    /// Layout version.
    pub version: u32,
    /// Where the tables are.
    pub prefix: String,
    /// Frames analysed.
    pub frames: u64,
    /// Confirmed tracks.
    pub tracks: u64,
    /// Entries over every line.
    pub entries: u64,
    /// Exits over every line.
    pub exits: u64,
    /// Decoding problems of the video's segments (the frames before each were used).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl StoreOut {
    /// The current layout.
    pub const VERSION: u32 = 1;
}

impl Annotation for StoreOut {
    const KEY: &'static str = "store";
}

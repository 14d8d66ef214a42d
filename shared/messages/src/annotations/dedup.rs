//! The dedup stage's output: `annotations.dedup`.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Annotation;

/// The dedup decision about one image as stored on it: the value of `annotations.dedup`,
/// `{"status":"unique","phash":"…"}` or
/// `{"status":"duplicate","of":"name","of_item":3,"kind":"exact"|"near"|"mirror","distance":0,"evidence":"bytes"|"pixels"|"phash","phash":"…"}`
/// with `of_job` only when the original is in another job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum DedupOut {
    /// The first of its kind in its scope: an original.
    Unique {
        /// Its perceptual hash, 16 hex digits.
        phash: String,
    },
    /// A copy of an original.
    Duplicate {
        /// The original's source name.
        of: String,
        /// The original's item index.
        of_item: u64,
        /// The original's job, when it is not the image's own job.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        of_job: Option<Uuid>,
        /// Exact, near or mirror.
        kind: DuplicateKind,
        /// Hamming distance between the perceptual hashes (the copy's mirror hash and the
        /// original's for a mirror; 0 for exact duplicates).
        distance: u32,
        /// What matched.
        evidence: Evidence,
        /// This image's perceptual hash, 16 hex digits.
        phash: String,
    },
}

impl Annotation for DedupOut {
    const KEY: &'static str = "dedup";
}

impl DedupOut {
    /// The original's source name, for a duplicate.
    pub fn original(&self) -> Option<&str> {
        match self {
            DedupOut::Unique { .. } => None,
            DedupOut::Duplicate { of, .. } => Some(of),
        }
    }
}

/// What made a duplicate a duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuplicateKind {
    /// The same bytes, or the same decoded pixels.
    Exact,
    /// Perceptual hashes within the distance.
    Near,
    /// The hash of the image's mirror within the distance of the original's hash: a
    /// horizontally flipped copy.
    Mirror,
}

/// The evidence behind a duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Evidence {
    /// Identical files.
    Bytes,
    /// Identical decoded pixels (e.g. PNG and lossless WebP).
    Pixels,
    /// Perceptual hashes within the distance (the image's own, or its mirror's for
    /// [`DuplicateKind::Mirror`]).
    Phash,
}

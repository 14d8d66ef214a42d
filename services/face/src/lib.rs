//! The face stage: finds faces (RFB-320 detector over a pyramid of tiles, NMS), places 68
//! landmarks, estimates head pose and a frontal flag, aligns each face to the recognition
//! model's canonical crop, estimates age and gender, computes an L2-normalised identity
//! embedding, and de-duplicates people within a job (one person seen in many images counts
//! once). See `docs/face.md` for the pipeline, thresholds and measured accuracy.
//!
//! - [`engine::FaceEngine`]: the models and the per-image analysis (blocking).
//! - [`persons`]: the person rule (threshold graph over frontal faces, attach non-frontal).
//! - [`stage::FaceStage`]: the pipeline stage (annotations); [`gallery::PersonAssigner`]: persons
//!   across the images of a job (a per-job gallery in storage under a lease).
//! - [`output`]: the JSON shape shared by the stage and `sightline face`.

pub mod engine;
pub mod gallery;
pub mod geometry;
pub mod output;
pub mod persons;
pub mod pose;
pub mod segment;
pub mod stage;

use image::RgbImage;
use sightline_imaging::{ImageError, Limits};
use sightline_inference::InferenceError;
use thiserror::Error;

/// Face detection (the RFB-320 pyramid) lives in `sightline-vision`, shared with detect.
pub use sightline_vision::faces as detect;

pub use engine::{EngineConfig, Face, FaceEngine, Gender};
pub use output::{FaceJson, face_json};
pub use persons::PersonConfig;
pub use stage::{FaceArgs, FaceStage};

/// The stage name.
pub const NAME: &str = "face";

/// What can go wrong analysing faces.
#[derive(Debug, Error)]
pub enum FaceError {
    /// Loading or running a model failed.
    #[error(transparent)]
    Inference(#[from] InferenceError),
    /// The image could not be decoded.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// A geometric operation had no solution (degenerate landmarks, empty crop).
    #[error("face geometry: {0}")]
    Geometry(String),
    /// A model returned something unexpected.
    #[error("model output: {0}")]
    Output(String),
    /// A model asset (the age bins) is missing or malformed.
    #[error("model asset: {0}")]
    Asset(String),
}

impl From<sightline_vision::VisionError> for FaceError {
    fn from(e: sightline_vision::VisionError) -> Self {
        use sightline_vision::VisionError;
        match e {
            VisionError::Inference(e) => FaceError::Inference(e),
            VisionError::Geometry(m) => FaceError::Geometry(m),
            VisionError::Output(m) => FaceError::Output(m),
        }
    }
}

impl FaceError {
    /// Whether trying again later may succeed (only a failed blocking task).
    pub fn is_transient(&self) -> bool {
        matches!(self, FaceError::Inference(InferenceError::Task { .. }))
    }
}

/// Decodes image bytes within `limits` into RGB (grayscale and palette images are expanded,
/// alpha is dropped).
pub fn decode_rgb(bytes: &[u8], name_hint: Option<&str>, limits: &Limits) -> Result<RgbImage, FaceError> {
    let (_, img) = sightline_imaging::decode(bytes, name_hint, limits)?;
    Ok(img.to_rgb8())
}

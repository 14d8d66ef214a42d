//! The face stage's output: `annotations.face`.

use serde::{Deserialize, Serialize};

use super::Annotation;

/// The faces of one image: the value of `annotations.face`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaceOut {
    /// Number of faces.
    pub count: usize,
    /// The faces, without their embeddings.
    pub faces: Vec<FaceJson>,
    /// The blob key of the faces with their embeddings (`null` when there is no face).
    pub embeddings: Option<String>,
}

impl Annotation for FaceOut {
    const KEY: &'static str = "face";
}

/// One face as JSON, shared by the stage's annotation and `sightline face --json`:
/// `{"box":[x,y,w,h],"score","landmarks":[[x,y] x5],"yaw","pitch","roll","frontal","age",
/// "gender","person"}` plus `"embedding"` when asked for. Values are rounded (pixels and
/// degrees to 0.1, score to 4 decimals, embedding to 6) and held as f64 so that outputs read
/// and diff cleanly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaceJson {
    /// `[x, y, w, h]` in source pixels.
    #[serde(rename = "box")]
    pub bbox: [f64; 4],
    /// Detector probability.
    pub score: f64,
    /// Five points: image-left eye, image-right eye, nose tip, image-left and image-right mouth corner.
    pub landmarks: Vec<[f64; 2]>,
    /// Degrees, > 0 turned towards the image's right (`null` if the pose could not be fitted).
    pub yaw: Option<f64>,
    /// Degrees, > 0 looking up.
    pub pitch: Option<f64>,
    /// Degrees, > 0 tilted clockwise.
    pub roll: Option<f64>,
    /// Within the frontal thresholds.
    pub frontal: bool,
    /// Expected age, years.
    pub age: f64,
    /// `male` or `female`.
    pub gender: Gender,
    /// Person id, consistent within one job or one command invocation; `null` for a
    /// non-frontal face like no frontal face.
    pub person: Option<u64>,
    /// The 512-d L2-normalised embedding, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f64>>,
}

/// Gender, as the gender model's two classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gender {
    /// Class 0.
    Female,
    /// Class 1.
    Male,
}

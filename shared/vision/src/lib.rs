//! Image geometry shared by the model stages (detect, face, ocr), so that each algorithm has
//! one home instead of a copy per stage.
//!
//! - [`boxes`]: the pixel box [`BoxF`], the normalised box [`NormBox`], IoU and greedy
//!   non-maximum suppression over [`Scored`] boxes, the share of an image boxes cover.
//! - [`faces`]: the RFB-320 face detector (`fr_detect.onnx`): the multi-pass plan, the canvas
//!   tensor, decoding, NMS, and [`faces::FaceDetector`], the model call both stages make.
//! - [`people`]: the NanoDet-g person detector (`nanodet-g`): the plan (frame and tiles), the
//!   canvas tensor, decoding of its three grids, NMS, and [`people::PersonDetector`].
//! - [`textmap`]: DB text-probability maps (PP-OCR's detector): detect's connected-component
//!   text lines, and RapidOCR's `DBPostProcess` that the OCR stage follows exactly.
//! - [`geometry`] and [`cv`]: the OpenCV, pyclipper and shapely operations RapidOCR relies on
//!   (contours, convex hull, minimum-area rectangle, polygon fill and offset, resize,
//!   perspective warp), re-implemented bit for bit (`tests/cv2_parity.rs`).
//! - [`components`]: 4-connected components of 2-D maps (flood fill).
//! - [`crop`]: padded integer crops.
//!
//! The crate holds a model wrapper, so it depends on `sightline-inference` (the only crate that
//! links ONNX Runtime) for [`sightline_inference::SessionPool`] and its resize; the stages load
//! the sessions and hand them over.

pub mod boxes;
pub mod components;
pub mod crop;
pub mod cv;
pub mod faces;
pub mod geometry;
pub mod people;
pub mod textmap;

use sightline_inference::InferenceError;
use thiserror::Error;

pub use boxes::{BoxF, NormBox, Point, Scored, nms};
pub use crop::crop_padded;

/// What can go wrong in the vision code that runs a model or resizes an image.
#[derive(Debug, Error)]
pub enum VisionError {
    /// Running the model failed.
    #[error(transparent)]
    Inference(#[from] InferenceError),
    /// A geometric operation had no solution (an empty resize).
    #[error("geometry: {0}")]
    Geometry(String),
    /// The model returned something unexpected.
    #[error("model output: {0}")]
    Output(String),
}

//! Text detection with the PP-OCR DB model: RapidOCR's `DetPreProcess` (limit side, multiples
//! of 32, normalisation) and its settings; `DBPostProcess` (threshold, dilation, contours,
//! minimum-area boxes, box score, unclip, filtering) and `sorted_boxes` (reading order) are
//! [`sightline_vision::textmap::postprocess`].

use ndarray::Array4;
use sightline_vision::cv::{Bgr, resize_linear};
use sightline_vision::textmap::DbParams;

/// How the detector's input size is limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitType {
    /// Scale down so that the longer side is at most the limit (PaddleOCR's default).
    Max,
    /// Scale up so that the shorter side is at least the limit (RapidOCR's default).
    Min,
}

impl std::str::FromStr for LimitType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "max" => Ok(LimitType::Max),
            "min" => Ok(LimitType::Min),
            other => Err(format!("limit type must be max or min, got {other:?}")),
        }
    }
}

/// Detection settings (RapidOCR's `Det` section).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct DetConfig {
    /// `limit_side_len`.
    pub limit_side_len: u32,
    /// `limit_type`.
    pub limit_type: LimitType,
    /// Probability threshold for the text mask (`thresh`).
    pub thresh: f32,
    /// Minimum mean probability inside a box (`box_thresh`).
    pub box_thresh: f64,
    /// Most contours examined (`max_candidates`).
    pub max_candidates: usize,
    /// Box expansion (`unclip_ratio`).
    pub unclip_ratio: f64,
    /// Dilate the mask with a 2×2 kernel (`use_dilation`).
    pub use_dilation: bool,
    /// Longest side of the detector's input (Sightline's guard, not in RapidOCR): `min`
    /// scaling of a very narrow image (vertical text 30 × 2000) would otherwise ask for a
    /// 640 × 42 000 input.
    pub max_input_side: u32,
}

impl Default for DetConfig {
    fn default() -> Self {
        Self {
            limit_side_len: 640,
            limit_type: LimitType::Min,
            thresh: 0.3,
            box_thresh: 0.5,
            max_candidates: 1000,
            unclip_ratio: 1.6,
            use_dilation: true,
            max_input_side: 4000,
        }
    }
}

impl DetConfig {
    /// The post-processing part of the settings.
    pub fn db(&self) -> DbParams {
        DbParams {
            thresh: self.thresh,
            box_thresh: self.box_thresh,
            max_candidates: self.max_candidates,
            unclip_ratio: self.unclip_ratio,
            use_dilation: self.use_dilation,
        }
    }
}

/// The detector's input size for an image of `w` × `h`: RapidOCR's `DetPreProcess.resize`
/// (scale by the limit, then round each side to a multiple of 32), with the longer side kept
/// within `max_input_side`. `None` when a side rounds to zero (RapidOCR then finds no text).
pub fn det_input_size(w: usize, h: usize, cfg: &DetConfig) -> Option<(usize, usize)> {
    let limit = f64::from(cfg.limit_side_len);
    let (wf, hf) = (w as f64, h as f64);
    let mut ratio = match cfg.limit_type {
        LimitType::Max if w.max(h) as f64 > limit => {
            if h > w {
                limit / hf
            } else {
                limit / wf
            }
        }
        LimitType::Min if (w.min(h) as f64) < limit => {
            if h < w {
                limit / hf
            } else {
                limit / wf
            }
        }
        _ => 1.0,
    };
    let cap = f64::from(cfg.max_input_side.max(32));
    if wf.max(hf) * ratio > cap {
        ratio = cap / wf.max(hf);
    }
    let rh = (hf * ratio) as i64;
    let rw = (wf * ratio) as i64;
    let rh = round_half_even(rh as f64 / 32.0) * 32;
    let rw = round_half_even(rw as f64 / 32.0) * 32;
    (rw > 0 && rh > 0).then_some((rw as usize, rh as usize))
}

/// Python's `round()` (half to even).
pub(crate) fn round_half_even(v: f64) -> i64 {
    v.round_ties_even() as i64
}

/// The detector's input tensor: `((x * (1/255)) - 0.5) / 0.5` per BGR channel, evaluated as
/// numpy does in RapidOCR (float32 product, float64 subtraction and division).
pub fn det_tensor(img: &Bgr) -> Array4<f32> {
    let lut: Vec<f32> = (0..=255u8)
        .map(|x| {
            let scaled = f32::from(x) * (1.0f64 / 255.0) as f32;
            ((f64::from(scaled) - 0.5) / 0.5) as f32
        })
        .collect();
    let (w, h) = (img.width, img.height);
    let mut t = Array4::<f32>::zeros((1, 3, h, w));
    if let Some(buf) = t.as_slice_mut() {
        let plane = w * h;
        for (i, px) in img.data.chunks_exact(3).enumerate() {
            buf[i] = lut[usize::from(px[0])];
            buf[plane + i] = lut[usize::from(px[1])];
            buf[2 * plane + i] = lut[usize::from(px[2])];
        }
    }
    t
}

/// Prepares the detector input of `img`, or `None` when the image is too small to detect in.
pub fn preprocess(img: &Bgr, cfg: &DetConfig) -> Option<Array4<f32>> {
    let (rw, rh) = det_input_size(img.width, img.height, cfg)?;
    let resized = resize_linear(img, rw, rh);
    Some(det_tensor(&resized))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_sizes_follow_rapidocr() {
        let max = DetConfig { limit_side_len: 960, limit_type: LimitType::Max, ..DetConfig::default() };
        assert_eq!(det_input_size(1570, 226, &max), Some((960, 128)));
        assert_eq!(det_input_size(300, 187, &max), Some((288, 192)));
        // a side that rounds to zero: no detection
        assert_eq!(det_input_size(2000, 10, &max), None);
        let min = DetConfig { limit_side_len: 736, limit_type: LimitType::Min, max_input_side: u32::MAX, ..max };
        assert_eq!(det_input_size(256, 32, &min), Some((5888, 736)));
        assert_eq!(det_input_size(2000, 1500, &min), Some((1984, 1504)));
        // the default: shorter side up to 640, longer side at most 4000
        let d = DetConfig::default();
        assert_eq!(det_input_size(323, 430, &d), Some((640, 864)));
        assert_eq!(det_input_size(30, 2000, &d), Some((64, 4000)));
    }

    #[test]
    fn normalisation_is_symmetric() {
        let mut img = Bgr::new(1, 1);
        img.data = vec![0, 255, 128];
        let t = det_tensor(&img);
        assert_eq!(t[[0, 0, 0, 0]], -1.0);
        assert_eq!(t[[0, 1, 0, 0]], 1.0);
        assert!((t[[0, 2, 0, 0]] - (128.0 / 127.5 - 1.0)).abs() < 1e-6);
    }
}

//! Text detection with the PP-OCR DB model: RapidOCR's `DetPreProcess` (limit side, multiples
//! of 32, normalisation) and `DBPostProcess` (threshold, dilation, contours, minimum-area boxes,
//! box score, unclip, filtering) and `sorted_boxes` (reading order).

use ndarray::{Array4, ArrayD};

use crate::cv::{Bgr, resize_linear};
use crate::geometry::{FPoint, IPoint, dilate_2x2, fill_poly, find_contours, mini_box, order_points_clockwise, unclip};

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

/// A detected text box in the coordinates of the image given to the detector: corners
/// top-left, top-right, bottom-right, bottom-left.
#[derive(Debug, Clone, PartialEq)]
pub struct DetBox {
    /// The four corners (integers stored as float32, as RapidOCR keeps them).
    pub points: [FPoint; 4],
    /// Mean text probability inside the unexpanded box.
    pub score: f64,
}

/// RapidOCR's `box_score_fast`: the mean probability inside the (truncated) box polygon.
fn box_score_fast(pred: &[f32], w: usize, h: usize, b: &[FPoint; 4]) -> f64 {
    let clampi = |v: f32, hi: usize| (v as i64).clamp(0, hi as i64 - 1);
    let xmin = clampi(b.iter().map(|p| p[0]).fold(f32::INFINITY, f32::min).floor(), w);
    let xmax = clampi(b.iter().map(|p| p[0]).fold(f32::NEG_INFINITY, f32::max).ceil(), w);
    let ymin = clampi(b.iter().map(|p| p[1]).fold(f32::INFINITY, f32::min).floor(), h);
    let ymax = clampi(b.iter().map(|p| p[1]).fold(f32::NEG_INFINITY, f32::max).ceil(), h);
    let mw = (xmax - xmin + 1) as usize;
    let mh = (ymax - ymin + 1) as usize;
    let poly: Vec<IPoint> =
        b.iter().map(|p| ((p[0] - xmin as f32) as i32 as i64, (p[1] - ymin as f32) as i32 as i64)).collect();
    let mut mask = vec![0u8; mw * mh];
    fill_poly(&mut mask, mw, mh, &poly);
    let (mut sum, mut n) = (0f64, 0usize);
    for y in 0..mh {
        let row = (ymin as usize + y) * w + xmin as usize;
        for x in 0..mw {
            if mask[y * mw + x] != 0 {
                sum += f64::from(pred[row + x]);
                n += 1;
            }
        }
    }
    if n == 0 { 0.0 } else { sum * (1.0 / n as f64) }
}

/// RapidOCR's `DBPostProcess` + `filter_det_res` + `sorted_boxes` on the probability map
/// `pred` ([1, 1, H, W]) for an image of `src_w` × `src_h`.
pub fn postprocess(pred: &ArrayD<f32>, src_w: usize, src_h: usize, cfg: &DetConfig) -> Vec<DetBox> {
    let shape = pred.shape();
    if shape.len() != 4 || shape[2] == 0 || shape[3] == 0 {
        return Vec::new();
    }
    let (h, w) = (shape[2], shape[3]);
    let map: Vec<f32> = pred.iter().take(h * w).copied().collect();
    let bitmap: Vec<u8> = map.iter().map(|v| u8::from(*v > cfg.thresh)).collect();
    let mask = if cfg.use_dilation { dilate_2x2(&bitmap, w, h) } else { bitmap };
    let contours = find_contours(&mask, w, h);
    let mut boxes: Vec<DetBox> = Vec::new();
    for contour in contours.iter().take(cfg.max_candidates) {
        let (points, sside) = mini_box(contour);
        if sside < 3.0 {
            continue;
        }
        let score = box_score_fast(&map, w, h, &points);
        if cfg.box_thresh > score {
            continue;
        }
        let expanded = unclip(&points, cfg.unclip_ratio);
        if expanded.is_empty() {
            continue;
        }
        let (b, sside) = mini_box(&expanded);
        if sside < 5.0 {
            continue;
        }
        let scale = |v: f32, from: usize, to: usize| -> f32 {
            let r = (v / from as f32 * to as f32).round_ties_even();
            r.clamp(0.0, to as f32).trunc()
        };
        let ib: [FPoint; 4] = b.map(|p| [scale(p[0], w, src_w), scale(p[1], h, src_h)]);
        // filter_det_res: order, clip to the image, drop boxes 3 pixels or thinner.
        let mut o = order_points_clockwise(&ib);
        for p in &mut o {
            p[0] = p[0].max(0.0).min(src_w as f32 - 1.0).trunc();
            p[1] = p[1].max(0.0).min(src_h as f32 - 1.0).trunc();
        }
        let dist = |a: FPoint, b: FPoint| ((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1])).sqrt();
        if dist(o[0], o[1]) as i64 <= 3 || dist(o[0], o[3]) as i64 <= 3 {
            continue;
        }
        boxes.push(DetBox { points: o, score });
    }
    sort_reading_order(&mut boxes);
    boxes
}

/// Vertical gap (pixels) below which two boxes belong to the same line (RapidOCR's
/// `_BOX_SORT_Y_THRESHOLD`).
const SAME_LINE_DY: f32 = 10.0;

/// RapidOCR's `sorted_boxes`: stable sort by the top-left y, start a new line wherever
/// consecutive boxes differ by 10 pixels or more, then order each line by x.
pub fn sort_reading_order(boxes: &mut Vec<DetBox>) {
    if boxes.is_empty() {
        return;
    }
    boxes.sort_by(|a, b| a.points[0][1].partial_cmp(&b.points[0][1]).unwrap_or(std::cmp::Ordering::Equal));
    let mut line = 0usize;
    let mut keyed: Vec<(usize, f32, DetBox)> = Vec::with_capacity(boxes.len());
    let mut prev_y: Option<f32> = None;
    for b in boxes.drain(..) {
        let y = b.points[0][1];
        if let Some(p) = prev_y
            && y - p >= SAME_LINE_DY
        {
            line += 1;
        }
        prev_y = Some(y);
        keyed.push((line, b.points[0][0], b));
    }
    keyed.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal)));
    boxes.extend(keyed.into_iter().map(|(_, _, b)| b));
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

    #[test]
    fn a_bright_block_becomes_one_box() {
        let (w, h) = (64usize, 32usize);
        let mut map = vec![0f32; w * h];
        for y in 10..20 {
            for x in 8..50 {
                map[y * w + x] = 0.9;
            }
        }
        let pred = ArrayD::from_shape_vec(vec![1, 1, h, w], map).expect("shape");
        let boxes = postprocess(&pred, w, h, &DetConfig::default());
        assert_eq!(boxes.len(), 1, "{boxes:?}");
        let b = &boxes[0];
        assert!(b.score > 0.7 && b.score < 0.9, "{}", b.score);
        // expanded beyond the block on every side
        assert!(b.points[0][0] < 8.0 && b.points[0][1] < 10.0, "{b:?}");
        assert!(b.points[2][0] > 50.0 && b.points[2][1] > 20.0, "{b:?}");
    }

    #[test]
    fn reading_order_groups_lines() {
        let mk =
            |x: f32, y: f32| DetBox { points: [[x, y], [x + 5.0, y], [x + 5.0, y + 5.0], [x, y + 5.0]], score: 1.0 };
        let mut v = vec![mk(50.0, 3.0), mk(10.0, 0.0), mk(5.0, 30.0), mk(30.0, 8.0)];
        sort_reading_order(&mut v);
        let xs: Vec<f32> = v.iter().map(|b| b.points[0][0]).collect();
        assert_eq!(xs, vec![10.0, 30.0, 50.0, 5.0]);
    }
}

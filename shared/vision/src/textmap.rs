//! DB text-probability maps (the PP-OCR detector's output), read two ways that are kept apart
//! on purpose, because each stage's results depend on its own:
//!
//! - [`text_lines`]: detect's cheap noise analysis (2×2 max-pool, 4-connected regions, axis-aligned
//!   boxes) that decides whether text dominates an image;
//! - [`postprocess`]: RapidOCR's `DBPostProcess` (dilation, contours, minimum-area boxes, box
//!   score, unclip, reading order), which the OCR stage follows exactly through [`crate::geometry`].

use ndarray::ArrayD;
use serde::{Deserialize, Serialize};

use crate::boxes::NormBox;
use crate::components::regions;
use crate::geometry::{FPoint, IPoint, dilate_2x2, fill_poly, find_contours, mini_box, order_points_clockwise, unclip};

/// How text regions are found in a DB probability map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TextParams {
    /// A pixel is text when its probability exceeds this (DB's binarisation threshold).
    pub pixel_threshold: f32,
    /// A region counts when its mean probability reaches this: printed text is crisp (≈ 0.95),
    /// the blobs the detector fires on textured fruit skin are not (≈ 0.8).
    pub min_score: f32,
    /// A region counts when it fills at least this share of its bounding box.
    pub min_fill: f32,
    /// A region counts when its long side is at least this many times its short side (a line).
    pub min_elongation: f32,
    /// Boxes grow by `area × unclip / perimeter` on every side (DB's unclip ratio), as the
    /// probability map marks the shrunk core of each line.
    pub unclip: f32,
}

impl Default for TextParams {
    fn default() -> Self {
        Self { pixel_threshold: 0.3, min_score: 0.88, min_fill: 0.4, min_elongation: 2.0, unclip: 1.6 }
    }
}

/// What the text map says.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct TextSummary {
    /// Share of the image covered by text lines (unclipped boxes, overlaps counted once).
    pub fraction: f32,
    /// Number of text lines.
    pub lines: u32,
}

/// Text lines in a DB probability map (`width` × `height`, row-major). The map is first
/// max-pooled 2×2 (joins the characters of a line), then binarised; each 4-connected region
/// that is crisp, solid and elongated is a line, and the share of the map its unclipped box
/// covers is the text fraction.
pub fn text_coverage(map: &[f32], width: usize, height: usize, p: &TextParams) -> TextSummary {
    text_lines(map, width, height, p).0
}

/// [`text_coverage`] and the lines' unclipped boxes (normalised to the map, so to the image),
/// in the order the regions were found (top to bottom).
pub fn text_lines(map: &[f32], width: usize, height: usize, p: &TextParams) -> (TextSummary, Vec<NormBox>) {
    if width < 2 || height < 2 || map.len() < width * height {
        return (TextSummary::default(), Vec::new());
    }
    let (w, h) = (width / 2, height / 2);
    let mut pooled = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let at = |yy: usize, xx: usize| map[yy * width + xx];
            pooled[y * w + x] =
                at(2 * y, 2 * x).max(at(2 * y, 2 * x + 1)).max(at(2 * y + 1, 2 * x)).max(at(2 * y + 1, 2 * x + 1));
        }
    }
    let mut covered = vec![false; w * h];
    let mut lines = 0u32;
    let mut boxes = Vec::new();
    for region in regions(&pooled, w, h, p.pixel_threshold) {
        let (bw, bh) = (region.x1 - region.x0, region.y1 - region.y0);
        if region.pixels < 4 {
            continue;
        }
        let score = region.sum / region.pixels as f32;
        let fill = region.pixels as f32 / (bw * bh) as f32;
        let (long, short) = (bw.max(bh) as f32, bw.min(bh) as f32);
        if score < p.min_score || fill < p.min_fill || long < p.min_elongation * short {
            continue;
        }
        lines += 1;
        let d = (bw * bh) as f32 * p.unclip / (2.0 * (bw + bh) as f32);
        let x0 = (region.x0 as f32 - d).floor().max(0.0) as usize;
        let y0 = (region.y0 as f32 - d).floor().max(0.0) as usize;
        let x1 = ((region.x1 as f32 + d).ceil() as usize).min(w);
        let y1 = ((region.y1 as f32 + d).ceil() as usize).min(h);
        for y in y0..y1 {
            covered[y * w + x0..y * w + x1].fill(true);
        }
        let (wf, hf) = (w as f32, h as f32);
        boxes.push(NormBox { x0: x0 as f32 / wf, y0: y0 as f32 / hf, x1: x1 as f32 / wf, y1: y1 as f32 / hf });
    }
    let fraction = covered.iter().filter(|&&c| c).count() as f32 / (w * h) as f32;
    (TextSummary { fraction, lines }, boxes)
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

/// RapidOCR's `DBPostProcess` settings (its `Det` section, less the input size).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DbParams {
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
}

/// RapidOCR's `DBPostProcess` + `filter_det_res` + `sorted_boxes` on the probability map
/// `pred` ([1, 1, H, W]) for an image of `src_w` × `src_h`.
pub fn postprocess(pred: &ArrayD<f32>, src_w: usize, src_h: usize, cfg: &DbParams) -> Vec<DetBox> {
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

    /// RapidOCR's defaults.
    const DB: DbParams =
        DbParams { thresh: 0.3, box_thresh: 0.5, max_candidates: 1000, unclip_ratio: 1.6, use_dilation: true };

    /// A map with the given boxes (pixel coordinates) set to `value`.
    fn map_with(w: usize, h: usize, boxes: &[(usize, usize, usize, usize)], value: f32) -> Vec<f32> {
        let mut m = vec![0f32; w * h];
        for &(x0, y0, x1, y1) in boxes {
            for y in y0..y1 {
                for x in x0..x1 {
                    m[y * w + x] = value;
                }
            }
        }
        m
    }

    #[test]
    fn text_lines_are_counted_and_blobs_are_not() {
        let p = TextParams::default();
        // Two crisp lines 80×8 in a 100×100 map.
        let m = map_with(100, 100, &[(10, 10, 90, 18), (10, 40, 90, 48)], 0.97);
        let t = text_coverage(&m, 100, 100, &p);
        assert_eq!(t.lines, 2);
        // Pooled 50×50: lines 40×4, unclip d = 160×1.6/88 ≈ 2.9 → about 46×10 each.
        assert!(t.fraction > 0.3 && t.fraction < 0.45, "{t:?}");
        // A fuzzy blob (score 0.8) and a crisp square are not text.
        let blob = map_with(100, 100, &[(20, 20, 40, 80)], 0.8);
        assert_eq!(text_coverage(&blob, 100, 100, &p), TextSummary { fraction: 0.0, lines: 0 });
        let square = map_with(100, 100, &[(20, 20, 60, 60)], 0.99);
        assert_eq!(text_coverage(&square, 100, 100, &p).lines, 0);
        // A whole-image line (a text strip) covers nearly everything once unclipped.
        let strip = map_with(280, 32, &[(20, 8, 260, 24)], 0.95);
        let t = text_coverage(&strip, 280, 32, &p);
        assert_eq!(t.lines, 1);
        assert!(t.fraction > 0.9, "{t:?}");
        assert_eq!(text_coverage(&[], 0, 0, &p), TextSummary::default());
    }

    #[test]
    fn text_lines_come_with_their_unclipped_boxes() {
        let p = TextParams::default();
        // One 40×8 line (20, 40)-(60, 48) of a 100×100 map: pooled (10, 20)-(30, 24) of 50×50,
        // unclipped by 20·4·1.6 / 48 = 2.67 cells each side, outwards: (7, 17)-(33, 27).
        let m = map_with(100, 100, &[(20, 40, 60, 48)], 0.95);
        let (t, boxes) = text_lines(&m, 100, 100, &p);
        assert_eq!(t.lines, 1);
        assert_eq!(boxes.len(), 1);
        let want = [0.14, 0.34, 0.66, 0.54];
        let got = [boxes[0].x0, boxes[0].y0, boxes[0].x1, boxes[0].y1];
        assert!(got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-6), "{got:?}");
        assert!(text_lines(&[], 0, 0, &p).1.is_empty());
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
        let boxes = postprocess(&pred, w, h, &DB);
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

//! The pure part of detection: geometry and decisions on model outputs, no I/O and no models.
//!
//! - faces: non-maximum suppression of the detector's boxes and the share of the image the
//!   confirmed faces cover;
//! - text: the share of the image covered by text lines, from the DB probability map of the
//!   OCR detector;
//! - saliency: the main-subject box from the 7×7 class-activation map of EfficientNet-Lite0;
//! - the verdict: which noise flags fire under [`Thresholds`].

use serde::{Deserialize, Serialize};

/// A box in normalised image coordinates (0..1), corners.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NormBox {
    /// Left.
    pub x0: f32,
    /// Top.
    pub y0: f32,
    /// Right.
    pub x1: f32,
    /// Bottom.
    pub y1: f32,
}

impl NormBox {
    /// The whole image.
    pub const FULL: NormBox = NormBox { x0: 0.0, y0: 0.0, x1: 1.0, y1: 1.0 };

    /// The box clamped to the image (0..1 on both axes), corners ordered.
    pub fn clamped(self) -> NormBox {
        let c = |v: f32| if v.is_finite() { v.clamp(0.0, 1.0) } else { 0.0 };
        let (x0, x1) = (c(self.x0).min(c(self.x1)), c(self.x0).max(c(self.x1)));
        let (y0, y1) = (c(self.y0).min(c(self.y1)), c(self.y0).max(c(self.y1)));
        NormBox { x0, y0, x1, y1 }
    }

    /// Width × height (0 for an empty or inverted box).
    pub fn area(&self) -> f32 {
        (self.x1 - self.x0).max(0.0) * (self.y1 - self.y0).max(0.0)
    }

    /// Intersection over union with `other`.
    pub fn iou(&self, other: &NormBox) -> f32 {
        let w = (self.x1.min(other.x1) - self.x0.max(other.x0)).max(0.0);
        let h = (self.y1.min(other.y1) - self.y0.max(other.y0)).max(0.0);
        let inter = w * h;
        let union = self.area() + other.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }

    /// Grows each side by `margin` × the box's size, then clamps to the image.
    pub fn expanded(&self, margin: f32) -> NormBox {
        let (w, h) = (self.x1 - self.x0, self.y1 - self.y0);
        NormBox {
            x0: self.x0 - margin * w,
            y0: self.y0 - margin * h,
            x1: self.x1 + margin * w,
            y1: self.y1 + margin * h,
        }
        .clamped()
    }

    /// The box in source pixels as `[x, y, w, h]`: outward rounding, at least one pixel,
    /// inside the image.
    pub fn to_pixels(&self, width: u32, height: u32) -> [u32; 4] {
        let b = self.clamped();
        let (wf, hf) = (width as f32, height as f32);
        let x = ((b.x0 * wf).floor() as u32).min(width.saturating_sub(1));
        let y = ((b.y0 * hf).floor() as u32).min(height.saturating_sub(1));
        let x1 = ((b.x1 * wf).ceil() as u32).clamp(x + 1, width.max(x + 1));
        let y1 = ((b.y1 * hf).ceil() as u32).clamp(y + 1, height.max(y + 1));
        [x, y, x1 - x, y1 - y]
    }
}

/// A scored box.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// The box.
    pub bbox: NormBox,
    /// Its score.
    pub score: f32,
}

/// Greedy non-maximum suppression: boxes with a score of at least `min_score`, best first,
/// dropping any that overlaps a kept one by more than `iou` (IoU). At most `limit` boxes.
pub fn nms(boxes: &[Scored], min_score: f32, iou: f32, limit: usize) -> Vec<Scored> {
    let mut candidates: Vec<Scored> =
        boxes.iter().copied().filter(|b| b.score >= min_score && b.score.is_finite()).collect();
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Scored> = Vec::new();
    for c in candidates {
        if kept.len() >= limit {
            break;
        }
        if kept.iter().all(|k| k.bbox.iou(&c.bbox) <= iou) {
            kept.push(c);
        }
    }
    kept
}

/// The share of the image the boxes cover, counting overlaps once (rasterised on a 256×256
/// grid; exact enough for a decision at a few per cent).
pub fn covered_fraction(boxes: &[NormBox]) -> f32 {
    const GRID: usize = 256;
    if boxes.is_empty() {
        return 0.0;
    }
    let mut grid = vec![false; GRID * GRID];
    for b in boxes {
        let b = b.clamped();
        let span = |lo: f32, hi: f32| {
            let a = (lo * GRID as f32).round() as usize;
            let z = ((hi * GRID as f32).round() as usize).min(GRID);
            (a.min(z), z)
        };
        let (x0, x1) = span(b.x0, b.x1);
        let (y0, y1) = span(b.y0, b.y1);
        for y in y0..y1 {
            grid[y * GRID + x0..y * GRID + x1].fill(true);
        }
    }
    grid.iter().filter(|&&c| c).count() as f32 / (GRID * GRID) as f32
}

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

/// A 4-connected region of a thresholded map: bounding box (end-exclusive), pixel count and
/// the sum of its values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Region {
    /// Left.
    pub x0: usize,
    /// Top.
    pub y0: usize,
    /// Right (exclusive).
    pub x1: usize,
    /// Bottom (exclusive).
    pub y1: usize,
    /// Pixels in the region.
    pub pixels: usize,
    /// Sum of the map over the region.
    pub sum: f32,
}

/// The 4-connected regions of `map > threshold` (a flood fill with an explicit stack).
pub fn regions(map: &[f32], w: usize, h: usize, threshold: f32) -> Vec<Region> {
    let mut seen = vec![false; w * h];
    let mut out = Vec::new();
    let mut stack = Vec::new();
    for start in 0..w * h {
        if seen[start] || map[start] <= threshold {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let mut r = Region { x0: usize::MAX, y0: usize::MAX, x1: 0, y1: 0, pixels: 0, sum: 0.0 };
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            r.x0 = r.x0.min(x);
            r.y0 = r.y0.min(y);
            r.x1 = r.x1.max(x + 1);
            r.y1 = r.y1.max(y + 1);
            r.pixels += 1;
            r.sum += map[i];
            let mut visit = |j: usize| {
                if !seen[j] && map[j] > threshold {
                    seen[j] = true;
                    stack.push(j);
                }
            };
            if x > 0 {
                visit(i - 1);
            }
            if x + 1 < w {
                visit(i + 1);
            }
            if y > 0 {
                visit(i - w);
            }
            if y + 1 < h {
                visit(i + w);
            }
        }
        out.push(r);
    }
    out
}

/// How the main-subject box is cut from the saliency map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropParams {
    /// The map is upsampled (bilinear) to this many cells per side before thresholding.
    pub upsample: usize,
    /// Cells at or above `threshold × max` (after subtracting the minimum) are salient.
    pub threshold: f32,
    /// The box grows by this share of its size on every side.
    pub margin: f32,
    /// A box covering at least this share of the image is not worth cropping: use the image.
    pub full_above: f32,
}

impl Default for CropParams {
    fn default() -> Self {
        Self { upsample: 56, threshold: 0.3, margin: 0.1, full_above: 0.9 }
    }
}

/// What the saliency map says.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SaliencySummary {
    /// The main-subject box (normalised), [`NormBox::FULL`] when not worth cropping.
    pub crop: NormBox,
    /// Whether the crop is the whole image.
    pub full: bool,
    /// Share of the image the salient region's box covers, before the margin.
    pub salient_area: f32,
    /// Mean over max of the (minimum-subtracted) map: low = one clear subject, high = diffuse.
    pub spread: f32,
}

/// Bilinear upsampling of a `w`×`h` map to `n`×`n` (half-pixel centres, edges clamped: the
/// convention of PIL and `align_corners = false`).
pub fn upsample_bilinear(map: &[f32], w: usize, h: usize, n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n * n];
    if w == 0 || h == 0 || map.len() < w * h {
        return out;
    }
    let coord = |i: usize, src: usize| -> (usize, usize, f32) {
        let s = ((i as f32 + 0.5) * src as f32 / n as f32 - 0.5).clamp(0.0, (src - 1) as f32);
        let lo = s.floor() as usize;
        let hi = (lo + 1).min(src - 1);
        (lo, hi, s - lo as f32)
    };
    for y in 0..n {
        let (y0, y1, fy) = coord(y, h);
        for x in 0..n {
            let (x0, x1, fx) = coord(x, w);
            let top = map[y0 * w + x0] * (1.0 - fx) + map[y0 * w + x1] * fx;
            let bottom = map[y1 * w + x0] * (1.0 - fx) + map[y1 * w + x1] * fx;
            out[y * n + x] = top * (1.0 - fy) + bottom * fy;
        }
    }
    out
}

/// The main-subject box from a saliency map (`w`×`h`, row-major, over the whole image): the
/// map is upsampled, shifted to a minimum of 0, thresholded at `threshold × max`; the
/// 4-connected region that holds the peak gives the box, grown by the margin. A flat map, or
/// a box that covers nearly the whole image, gives the whole image.
pub fn saliency_crop(map: &[f32], w: usize, h: usize, p: &CropParams) -> SaliencySummary {
    let full = SaliencySummary { crop: NormBox::FULL, full: true, salient_area: 1.0, spread: 1.0 };
    let n = p.upsample.max(1);
    let mut up = upsample_bilinear(map, w, h, n);
    let min = up.iter().copied().fold(f32::INFINITY, f32::min);
    if !min.is_finite() {
        return full;
    }
    up.iter_mut().for_each(|v| *v -= min);
    let (peak_at, max) = up.iter().copied().enumerate().fold((0, 0f32), |a, (i, v)| if v > a.1 { (i, v) } else { a });
    if max <= 0.0 || !max.is_finite() {
        return full;
    }
    let spread = up.iter().sum::<f32>() / (up.len() as f32 * max);
    let cut = p.threshold * max;
    // The region holding the peak.
    let mut seen = vec![false; n * n];
    let mut stack = vec![peak_at];
    seen[peak_at] = true;
    let (mut x0, mut y0, mut x1, mut y1) = (n, n, 0, 0);
    while let Some(i) = stack.pop() {
        let (x, y) = (i % n, i / n);
        x0 = x0.min(x);
        y0 = y0.min(y);
        x1 = x1.max(x + 1);
        y1 = y1.max(y + 1);
        let mut visit = |j: usize| {
            if !seen[j] && up[j] >= cut {
                seen[j] = true;
                stack.push(j);
            }
        };
        if x > 0 {
            visit(i - 1);
        }
        if x + 1 < n {
            visit(i + 1);
        }
        if y > 0 {
            visit(i - n);
        }
        if y + 1 < n {
            visit(i + n);
        }
    }
    let nf = n as f32;
    let salient = NormBox { x0: x0 as f32 / nf, y0: y0 as f32 / nf, x1: x1 as f32 / nf, y1: y1 as f32 / nf };
    let crop = salient.expanded(p.margin);
    if crop.area() >= p.full_above {
        return SaliencySummary { crop: NormBox::FULL, full: true, salient_area: salient.area(), spread };
    }
    SaliencySummary { crop, full: false, salient_area: salient.area(), spread }
}

/// When an image is noise. Defaults chosen on the dev collections (`docs/detect-embed.md`):
/// the largest value any true product reached, with a wide margin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Face-detector score for a face candidate.
    pub face_score: f32,
    /// MTCNN output-net probability that confirms a candidate (the detector alone fires on
    /// fruit and packaging).
    pub face_confirm: f32,
    /// Flag when confirmed faces cover at least this share of the image.
    pub face_fraction: f32,
    /// Flag when text lines cover at least this share of the image.
    pub text_fraction: f32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self { face_score: 0.9, face_confirm: 0.95, face_fraction: 0.04, text_fraction: 0.4 }
    }
}

/// One noise flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flag {
    /// `faces` or `text`.
    pub flag: String,
    /// The measured value the threshold applies to.
    pub score: f32,
    /// The threshold.
    pub threshold: f32,
    /// Why, in words.
    pub reason: String,
}

/// The noise flags that fire for `faces` (confirmed count and covered share) and `text`.
pub fn flags(t: &Thresholds, face_count: usize, face_fraction: f32, text: &TextSummary) -> Vec<Flag> {
    let mut out = Vec::new();
    if face_count > 0 && face_fraction >= t.face_fraction {
        out.push(Flag {
            flag: "faces".into(),
            score: face_fraction,
            threshold: t.face_fraction,
            reason: format!(
                "dominated by faces: {face_count} {} {:.0}% of the image",
                if face_count == 1 { "face covers" } else { "faces cover" },
                face_fraction * 100.0
            ),
        });
    }
    if text.fraction >= t.text_fraction {
        out.push(Flag {
            flag: "text".into(),
            score: text.fraction,
            threshold: t.text_fraction,
            reason: format!(
                "dominated by text: {} {} {:.0}% of the image",
                text.lines,
                if text.lines == 1 { "text line covers" } else { "text lines cover" },
                text.fraction * 100.0
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x0: f32, y0: f32, x1: f32, y1: f32) -> NormBox {
        NormBox { x0, y0, x1, y1 }
    }

    #[test]
    fn iou_and_area() {
        assert_eq!(b(0.0, 0.0, 0.5, 0.5).area(), 0.25);
        assert_eq!(b(0.0, 0.0, 0.5, 0.5).iou(&b(0.5, 0.5, 1.0, 1.0)), 0.0);
        let iou = b(0.0, 0.0, 0.5, 0.5).iou(&b(0.25, 0.0, 0.75, 0.5));
        assert!((iou - 1.0 / 3.0).abs() < 1e-6, "{iou}");
        assert_eq!(b(0.6, 0.6, 0.2, 0.2).area(), 0.0, "inverted boxes are empty");
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes() {
        let boxes = [
            Scored { bbox: b(0.1, 0.1, 0.3, 0.3), score: 0.8 },
            Scored { bbox: b(0.11, 0.1, 0.31, 0.3), score: 0.95 },
            Scored { bbox: b(0.6, 0.6, 0.8, 0.8), score: 0.7 },
            Scored { bbox: b(0.6, 0.1, 0.8, 0.3), score: 0.2 },
        ];
        let kept = nms(&boxes, 0.5, 0.4, 10);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].score, 0.95);
        assert_eq!(kept[1].score, 0.7);
        assert_eq!(nms(&boxes, 0.5, 0.4, 1).len(), 1, "limit");
    }

    #[test]
    fn covered_fraction_counts_overlaps_once() {
        assert_eq!(covered_fraction(&[]), 0.0);
        let f = covered_fraction(&[b(0.0, 0.0, 0.5, 0.5), b(0.0, 0.0, 0.5, 0.5)]);
        assert!((f - 0.25).abs() < 1e-3, "{f}");
        let f = covered_fraction(&[b(0.0, 0.0, 0.5, 1.0), b(0.25, 0.0, 0.75, 1.0)]);
        assert!((f - 0.75).abs() < 1e-2, "{f}");
        assert_eq!(covered_fraction(&[b(-1.0, -1.0, 2.0, 2.0)]), 1.0, "clamped to the image");
    }

    #[test]
    fn pixel_boxes_round_outwards_and_stay_inside() {
        assert_eq!(NormBox::FULL.to_pixels(348, 261), [0, 0, 348, 261]);
        assert_eq!(b(0.25, 0.5, 0.75, 1.0).to_pixels(100, 10), [25, 5, 50, 5]);
        assert_eq!(b(0.101, 0.0, 0.199, 0.5).to_pixels(100, 2), [10, 0, 10, 1]);
        // A degenerate box still gives one pixel, inside the image.
        assert_eq!(b(1.0, 1.0, 1.0, 1.0).to_pixels(10, 10), [9, 9, 1, 1]);
        let e = b(0.4, 0.4, 0.6, 0.6).expanded(0.5);
        assert!((e.x0 - 0.3).abs() < 1e-6 && (e.x1 - 0.7).abs() < 1e-6, "{e:?}");
        assert_eq!(b(0.0, 0.0, 1.0, 1.0).expanded(0.5), NormBox::FULL);
    }

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
    fn regions_are_four_connected() {
        // Two pixels touching only diagonally are two regions.
        let m = [1.0, 0.0, 0.0, 1.0];
        assert_eq!(regions(&m, 2, 2, 0.5).len(), 2);
        let m = [1.0, 1.0, 0.0, 1.0];
        let r = regions(&m, 2, 2, 0.5);
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].x0, r[0].y0, r[0].x1, r[0].y1, r[0].pixels), (0, 0, 2, 2, 3));
        assert_eq!(r[0].sum, 3.0);
    }

    #[test]
    fn upsampling_keeps_values_and_interpolates() {
        let m = [0.0, 1.0, 2.0, 3.0];
        let up = upsample_bilinear(&m, 2, 2, 4);
        assert_eq!(up[0], 0.0, "corner cells are clamped to the source corner");
        assert_eq!(up[15], 3.0);
        assert!((up[1] - 0.25).abs() < 1e-6, "{up:?}");
        let flat = upsample_bilinear(&[5.0; 49], 7, 7, 56);
        assert!(flat.iter().all(|&v| (v - 5.0).abs() < 1e-5));
    }

    #[test]
    fn a_peaked_map_gives_a_box_around_the_peak() {
        // 7×7 map with a hot 2×2 block at cells (1..3, 4..6): x in 1..3, y in 4..6.
        let mut m = vec![0f32; 49];
        for (x, y) in [(1, 4), (2, 4), (1, 5), (2, 5)] {
            m[y * 7 + x] = 10.0;
        }
        let s = saliency_crop(&m, 7, 7, &CropParams::default());
        assert!(!s.full, "{s:?}");
        let c = s.crop;
        // The hot cells span x 1/7..3/7, y 4/7..6/7; the box contains them, roughly.
        assert!(c.x0 < 1.5 / 7.0 && c.x1 > 2.5 / 7.0 && c.y0 < 4.5 / 7.0 && c.y1 > 5.5 / 7.0, "{c:?}");
        assert!(c.x1 < 4.5 / 7.0 && c.y0 > 2.5 / 7.0, "{c:?}");
        assert!(s.spread < 0.3, "{s:?}");
        // Only the region of the peak counts: a weaker separate blob is ignored.
        m[6] = 9.0;
        let s2 = saliency_crop(&m, 7, 7, &CropParams::default());
        assert!(s2.crop.x1 < 0.75, "{s2:?}");
    }

    #[test]
    fn flat_or_wide_saliency_means_no_crop() {
        let s = saliency_crop(&[1.0; 49], 7, 7, &CropParams::default());
        assert!(s.full);
        assert_eq!(s.crop, NormBox::FULL);
        // Salient everywhere but one corner: the box would cover nearly all of the image.
        let wide: Vec<f32> = (0..49).map(|i| if i == 0 { 0.0 } else { 10.0 }).collect();
        let s = saliency_crop(&wide, 7, 7, &CropParams::default());
        assert!(s.full, "{s:?}");
        assert!(s.salient_area > 0.9, "{s:?}");
        let s = saliency_crop(&[f32::NAN; 49], 7, 7, &CropParams::default());
        assert!(s.full);
    }

    #[test]
    fn flags_fire_at_their_thresholds() {
        let t = Thresholds::default();
        let none = TextSummary { fraction: 0.1, lines: 3 };
        assert!(flags(&t, 0, 0.5, &none).is_empty(), "no confirmed face, no flag");
        assert!(flags(&t, 1, 0.03, &none).is_empty());
        let f = flags(&t, 3, 0.08, &none);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].flag, "faces");
        assert_eq!(f[0].reason, "dominated by faces: 3 faces cover 8% of the image");
        let f = flags(&t, 0, 0.0, &TextSummary { fraction: 0.72, lines: 1 });
        assert_eq!(f[0].flag, "text");
        assert_eq!(f[0].reason, "dominated by text: 1 text line covers 72% of the image");
    }
}

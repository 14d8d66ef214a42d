//! Candidate regions for logo search: which parts of a photo to embed, from what the detect
//! stage found in it (docs/logos.md).
//!
//! The regions are the whole image, the main-subject box (`crop`), and the text-line boxes
//! (`text.boxes`) grown by a margin, plus the union of each group of stacked lines (logos set
//! on two or three lines, "GOD / MOR / GON"). The detect stage records them as
//! `annotations.detect.regions` on a logo-search query; the embed stage embeds each.

use serde::Deserialize;
use serde_json::Value;
use sightline_messages::annotations::DetectOut;
pub use sightline_messages::annotations::{Region, RegionKind};

/// Which regions [`regions_from_detect`] proposes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegionParams {
    /// Propose the whole image.
    pub whole: bool,
    /// Propose detect's main-subject box (when it is not the whole image).
    pub crop: bool,
    /// Propose the text lines (and groups of stacked lines).
    pub text: bool,
    /// Each text region grows by this many times its height on every side (a wordmark's line
    /// box hugs its letters; the mark around it, a badge or an emblem, lies within about one
    /// letter height).
    pub margin: f32,
    /// At most this many text lines, the largest first (detect records them largest first).
    pub max_lines: usize,
    /// Regions with a side shorter than this many pixels are dropped (nothing to embed).
    pub min_side: u32,
}

/// Default margin around text lines, in line heights (the best of 0, 0.25, 0.5 and 1 on
/// `../shared/data/search`, docs/logos.md).
pub const DEFAULT_MARGIN: f32 = 1.0;

impl Default for RegionParams {
    fn default() -> Self {
        Self { whole: true, crop: true, text: true, margin: DEFAULT_MARGIN, max_lines: 8, min_side: 8 }
    }
}

/// The candidate regions of a `width` × `height` image from what detect found in it (`crop`,
/// `crop_full`, `text.boxes`). Boxes are clamped to the image; near-duplicates (IoU ≥ 0.9) are
/// proposed once, the first kept (order: whole, crop, lines largest first, groups).
pub fn regions_of(detect: &DetectOut, width: u32, height: u32, p: &RegionParams) -> Vec<Region> {
    let mut out: Vec<Region> = Vec::new();
    if width == 0 || height == 0 {
        return out;
    }
    let mut push = |bbox: Option<[u32; 4]>, kind: RegionKind| {
        let Some(bbox) = bbox else { return };
        if bbox[2] < p.min_side.max(1) || bbox[3] < p.min_side.max(1) {
            return;
        }
        if out.iter().all(|r| iou(&r.bbox, &bbox) < 0.9) {
            out.push(Region { bbox, kind });
        }
    };
    if p.whole {
        push(Some([0, 0, width, height]), RegionKind::Whole);
    }
    if p.crop && !detect.crop_full {
        push(clamp(detect.crop, width, height), RegionKind::Crop);
    }
    if p.text {
        let lines: Vec<[u32; 4]> = detect.text.boxes.iter().filter_map(|&b| clamp(b, width, height)).collect();
        let lines = &lines[..lines.len().min(p.max_lines)];
        for &line in lines {
            push(grow(line, p.margin, width, height), RegionKind::Text);
        }
        for group in stacked_groups(lines) {
            push(grow(group, p.margin, width, height), RegionKind::TextGroup);
        }
    }
    out
}

/// [`regions_of`] a detect annotation held as JSON (evaluation caches); a value that is not a
/// detect annotation proposes only the whole image.
pub fn regions_from_detect(detect: &Value, width: u32, height: u32, p: &RegionParams) -> Vec<Region> {
    regions_of(&DetectOut::deserialize(detect).unwrap_or_default(), width, height, p)
}

/// The box cut to the image; `None` when nothing of it is inside.
fn clamp([x, y, w, h]: [u32; 4], width: u32, height: u32) -> Option<[u32; 4]> {
    let (x1, y1) = (x.saturating_add(w).min(width), y.saturating_add(h).min(height));
    (x < x1 && y < y1).then(|| [x, y, x1 - x, y1 - y])
}

/// The box grown by `margin` × its height on every side, cut to the image.
fn grow([x, y, w, h]: [u32; 4], margin: f32, width: u32, height: u32) -> Option<[u32; 4]> {
    let d = (margin.max(0.0) * h as f32).round() as u32;
    let (x0, y0) = (x.saturating_sub(d), y.saturating_sub(d));
    let (x1, y1) = ((x + w).saturating_add(d).min(width), (y + h).saturating_add(d).min(height));
    clamp([x0, y0, x1.saturating_sub(x0), y1.saturating_sub(y0)], width, height)
}

/// Intersection over union of two pixel boxes.
fn iou(a: &[u32; 4], b: &[u32; 4]) -> f32 {
    let ix = (a[0] + a[2]).min(b[0] + b[2]).saturating_sub(a[0].max(b[0]));
    let iy = (a[1] + a[3]).min(b[1] + b[3]).saturating_sub(a[1].max(b[1]));
    let inter = f64::from(ix) * f64::from(iy);
    let union = f64::from(a[2]) * f64::from(a[3]) + f64::from(b[2]) * f64::from(b[3]) - inter;
    if union <= 0.0 { 0.0 } else { (inter / union) as f32 }
}

/// The unions of the groups of two or more stacked lines: lines that overlap horizontally by at
/// least half the narrower one and are at most one line height (the smaller) apart vertically
/// are in one group (transitively).
fn stacked_groups(lines: &[[u32; 4]]) -> Vec<[u32; 4]> {
    let n = lines.len();
    let mut group: Vec<usize> = (0..n).collect();
    fn root(g: &mut [usize], mut i: usize) -> usize {
        while g[i] != i {
            g[i] = g[g[i]];
            i = g[i];
        }
        i
    }
    let stacked = |a: &[u32; 4], b: &[u32; 4]| {
        let overlap = (a[0] + a[2]).min(b[0] + b[2]).saturating_sub(a[0].max(b[0]));
        let gap = b[1].saturating_sub(a[1] + a[3]).max(a[1].saturating_sub(b[1] + b[3]));
        overlap * 2 >= a[2].min(b[2]) && gap <= a[3].min(b[3])
    };
    for i in 0..n {
        for j in i + 1..n {
            if stacked(&lines[i], &lines[j]) {
                let (ri, rj) = (root(&mut group, i), root(&mut group, j));
                group[ri.max(rj)] = ri.min(rj);
            }
        }
    }
    let mut unions: Vec<([u32; 4], usize)> = Vec::new();
    let mut owner: Vec<Option<usize>> = vec![None; n];
    for (i, &[x, y, w, h]) in lines.iter().enumerate() {
        let r = root(&mut group, i);
        match owner[r] {
            None => {
                owner[r] = Some(unions.len());
                unions.push(([x, y, x + w, y + h], 1));
            }
            Some(u) => {
                let (c, count) = &mut unions[u];
                *c = [c[0].min(x), c[1].min(y), c[2].max(x + w), c[3].max(y + h)];
                *count += 1;
            }
        }
    }
    unions.into_iter().filter(|(_, count)| *count >= 2).map(|(c, _)| [c[0], c[1], c[2] - c[0], c[3] - c[1]]).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn boxes(r: &[Region]) -> Vec<([u32; 4], RegionKind)> {
        r.iter().map(|r| (r.bbox, r.kind)).collect()
    }

    #[test]
    fn regions_are_the_whole_image_the_crop_and_grown_text_lines() {
        let detect = json!({
            "crop": [50, 20, 200, 300], "crop_full": false,
            "text": {"fraction": 0.1, "lines": 2, "boxes": [[100, 100, 80, 20], [300, 390, 60, 20]]}
        });
        let half = RegionParams { margin: 0.5, ..RegionParams::default() };
        let r = regions_from_detect(&detect, 348, 400, &half);
        assert_eq!(
            boxes(&r),
            vec![
                ([0, 0, 348, 400], RegionKind::Whole),
                ([50, 20, 200, 300], RegionKind::Crop),
                // Half a line height (10 px) on every side.
                ([90, 90, 100, 40], RegionKind::Text),
                // Cut to the image (48×10) first, then grown by 5 and cut again.
                ([295, 385, 53, 15], RegionKind::Text),
            ]
        );
        let only_text = RegionParams { whole: false, crop: false, margin: 0.0, ..RegionParams::default() };
        assert_eq!(
            boxes(&regions_from_detect(&detect, 348, 400, &only_text))[0],
            ([100, 100, 80, 20], RegionKind::Text)
        );
        let no_text = RegionParams { text: false, ..RegionParams::default() };
        assert_eq!(regions_from_detect(&detect, 348, 400, &no_text).len(), 2);
    }

    #[test]
    fn stacked_lines_are_also_proposed_together() {
        // "GOD / MOR / GON": three short lines one above the other, and a line far below.
        let detect = json!({
            "crop_full": true, "crop": [0, 0, 200, 200],
            "text": {"boxes": [[90, 40, 30, 10], [90, 52, 30, 10], [91, 64, 28, 10], [60, 150, 80, 12]]}
        });
        let p = RegionParams { whole: false, margin: 0.0, ..RegionParams::default() };
        let r = regions_from_detect(&detect, 200, 200, &p);
        assert_eq!(r.len(), 5, "{r:?}");
        assert_eq!(r[4], Region { bbox: [90, 40, 30, 34], kind: RegionKind::TextGroup });
        assert!(r.iter().all(|r| r.kind != RegionKind::Crop), "crop_full proposes no crop");
    }

    #[test]
    fn malformed_or_tiny_boxes_propose_nothing() {
        let detect = json!({
            "crop": [10, 10, 5, 0], "crop_full": false,
            "text": {"boxes": [[1, 2, 3, 4], [500, 500, 10, 10], [10, 10, 40, 12]]}
        });
        let p = RegionParams { whole: false, margin: 0.0, ..RegionParams::default() };
        assert_eq!(boxes(&regions_from_detect(&detect, 100, 100, &p)), vec![([10, 10, 40, 12], RegionKind::Text)]);
        assert!(regions_from_detect(&json!(null), 100, 100, &p).is_empty());
        let malformed = json!({ "crop": [10, 10, 5], "text": { "boxes": ["x", [-1, 0, 20, 20]] } });
        assert!(regions_from_detect(&malformed, 100, 100, &p).is_empty(), "not a detect annotation");
        assert!(regions_from_detect(&detect, 0, 0, &RegionParams::default()).is_empty());
        // Near-duplicates are proposed once.
        let dup = json!({"crop": [0, 0, 99, 100], "crop_full": false});
        assert_eq!(regions_from_detect(&dup, 100, 100, &RegionParams::default()).len(), 1);
    }
}

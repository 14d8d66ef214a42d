//! Axis-aligned boxes, intersection over union and greedy non-maximum suppression.
//!
//! Two coordinate conventions meet here, each kept with its own arithmetic because later steps
//! round and compare its values: [`BoxF`] is `[x, y, w, h]` in source pixels (the face stage's
//! detections, landmarks crops and evaluation boxes), [`NormBox`] is corners normalised to the
//! image (detect's faces, text lines and main-subject box). [`NormBox::to_pixels`] converts the
//! second into whole pixels. Pixel coordinates are continuous: pixel `(i, j)` covers
//! `[i, i + 1) x [j, j + 1)`, so a box with integer values covers exactly the pixels it names.

use serde::{Deserialize, Serialize};

/// A point `[x, y]`.
pub type Point = [f32; 2];

/// An axis-aligned box in pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoxF {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
}

impl BoxF {
    /// A box from its corners.
    pub fn from_corners(x1: f32, y1: f32, x2: f32, y2: f32) -> Self {
        Self { x: x1, y: y1, w: x2 - x1, h: y2 - y1 }
    }

    /// Area (0 for degenerate boxes).
    pub fn area(&self) -> f32 {
        self.w.max(0.0) * self.h.max(0.0)
    }

    /// Area of the intersection with `other`.
    pub fn intersection(&self, other: &BoxF) -> f32 {
        let w = (self.x + self.w).min(other.x + other.w) - self.x.max(other.x);
        let h = (self.y + self.h).min(other.y + other.h) - self.y.max(other.y);
        w.max(0.0) * h.max(0.0)
    }

    /// Intersection over union.
    pub fn iou(&self, other: &BoxF) -> f32 {
        let i = self.intersection(other);
        let u = self.area() + other.area() - i;
        if u > 0.0 { i / u } else { 0.0 }
    }

    /// Intersection over the smaller area: near 1 when one box lies inside the other.
    pub fn overlap_min(&self, other: &BoxF) -> f32 {
        let m = self.area().min(other.area());
        if m > 0.0 { self.intersection(other) / m } else { 0.0 }
    }

    /// The box clipped to a `width` x `height` image.
    pub fn clamp(&self, width: f32, height: f32) -> BoxF {
        let x1 = self.x.clamp(0.0, width);
        let y1 = self.y.clamp(0.0, height);
        let x2 = (self.x + self.w).clamp(0.0, width);
        let y2 = (self.y + self.h).clamp(0.0, height);
        BoxF::from_corners(x1, y1, x2, y2)
    }

    /// Centre point.
    pub fn centre(&self) -> Point {
        [self.x + self.w / 2.0, self.y + self.h / 2.0]
    }
}

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

/// A box with a detector score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored<B> {
    /// The box.
    pub bbox: B,
    /// Its score.
    pub score: f32,
}

/// Greedy non-maximum suppression: `items` best score first (ties keep their order), each kept
/// when `compatible(kept, item)` holds for every box kept before it; at most `limit` boxes.
/// `compatible` says when two boxes may both stay (for example an IoU at most a threshold).
pub fn nms<B>(mut items: Vec<Scored<B>>, limit: usize, compatible: impl Fn(&B, &B) -> bool) -> Vec<Scored<B>> {
    items.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Scored<B>> = Vec::new();
    for c in items {
        if kept.len() >= limit {
            break;
        }
        if kept.iter().all(|k| compatible(&k.bbox, &c.bbox)) {
            kept.push(c);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x0: f32, y0: f32, x1: f32, y1: f32) -> NormBox {
        NormBox { x0, y0, x1, y1 }
    }

    #[test]
    fn iou_and_overlap() {
        let a = BoxF { x: 0.0, y: 0.0, w: 10.0, h: 10.0 };
        let b = BoxF { x: 5.0, y: 0.0, w: 10.0, h: 10.0 };
        assert!((a.iou(&b) - 50.0 / 150.0).abs() < 1e-6);
        let inner = BoxF { x: 2.0, y: 2.0, w: 4.0, h: 4.0 };
        assert!((a.overlap_min(&inner) - 1.0).abs() < 1e-6);
        assert_eq!(a.iou(&BoxF { x: 20.0, y: 20.0, w: 1.0, h: 1.0 }), 0.0);
        let c = BoxF { x: -5.0, y: 2.0, w: 10.0, h: 20.0 }.clamp(8.0, 8.0);
        assert_eq!((c.x, c.y, c.w, c.h), (0.0, 2.0, 5.0, 6.0));
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
        let boxes = vec![
            Scored { bbox: b(0.1, 0.1, 0.3, 0.3), score: 0.8 },
            Scored { bbox: b(0.11, 0.1, 0.31, 0.3), score: 0.95 },
            Scored { bbox: b(0.6, 0.6, 0.8, 0.8), score: 0.7 },
            Scored { bbox: b(0.6, 0.1, 0.8, 0.3), score: 0.2 },
        ];
        let kept = nms(boxes.clone(), 10, |k, c| k.iou(c) <= 0.4);
        assert_eq!(kept.len(), 3);
        assert_eq!(kept[0].score, 0.95);
        assert_eq!(kept[1].score, 0.7);
        assert_eq!(nms(boxes, 1, |k, c| k.iou(c) <= 0.4).len(), 1, "limit");
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
}

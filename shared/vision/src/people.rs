//! Person detection with NanoDet-g (COCO, 416×416; the `nanodet` of the human library's models,
//! converted by `models/convert_nanodet.py`) for in-store
//! analytics: people in view, their tracks, the flow across a line.
//!
//! The network sees a fixed 416×416 canvas, stretched from the region it looks at (the whole
//! frame, or a tile of it), in BGR normalised by the ImageNet Caffe statistics. It predicts on
//! three grids (strides 8, 16 and 32): per cell, 80 class scores after a sigmoid and, for each
//! side of the box, a distribution over 11 distance bins (generalised focal loss): the side's
//! distance from the cell centre is the distribution's mean bin times the stride.
//!
//! Shoppers seen from a ceiling camera are small (20-60 px): at the default plan the frame is
//! one pass; [`PersonConfig::tiles`] adds a grid of overlapping tiles, each stretched to the
//! canvas, so that small people are seen larger. Detections touching a tile's inner edge are
//! dropped (the overlap or the whole-frame pass holds the whole person), and the union goes
//! through non-maximum suppression on IoU and on intersection over the smaller box.

use image::RgbImage;
use ndarray::Array4;
use serde::{Deserialize, Serialize};
use sightline_inference::SessionPool;
use sightline_inference::preprocess::{Filter, resize_rgb};

use crate::VisionError;
use crate::boxes::{self, BoxF, Scored};
use crate::crop::crop_padded;

/// The detector's manifest name.
pub const MODEL: &str = "nanodet-g";
/// The canvas side.
pub const CANVAS: u32 = 416;
/// The grids' strides, in the order of the model's outputs.
pub const STRIDES: [u32; 3] = [8, 16, 32];
/// Distance bins per box side.
pub const BINS: usize = 11;
/// COCO classes.
pub const CLASSES: usize = 80;
/// COCO's person class.
pub const PERSON: usize = 0;
/// Per-channel mean of the BGR input (0..255 pixels).
const MEAN_BGR: [f32; 3] = [103.53, 116.28, 123.675];
/// Per-channel standard deviation of the BGR input.
const STD_BGR: [f32; 3] = [57.375, 57.12, 58.395];

/// Detection settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PersonConfig {
    /// Lowest person score kept.
    pub score_threshold: f32,
    /// NMS: suppress a box whose IoU with a better one exceeds this.
    pub nms_iou: f32,
    /// NMS across passes: suppress a box whose intersection over the smaller area with a better
    /// one exceeds this (a half person found in a tile inside the whole person). Only with
    /// tiles: within one pass it would also remove a person standing behind another.
    pub nms_overlap_min: f32,
    /// Tiles per side besides the whole frame: 0 is the whole frame only, 2 adds a 2×2 grid.
    pub tiles: u32,
    /// Tile overlap, as a fraction of the tile.
    pub overlap: f32,
}

impl Default for PersonConfig {
    fn default() -> Self {
        // Tiles by default: the cameras this serves see shoppers 20-60 px tall (docs/store.md
        // measures 0, 2 and 3 tiles per side).
        Self { score_threshold: 0.35, nms_iou: 0.5, nms_overlap_min: 0.8, tiles: 2, overlap: 0.25 }
    }
}

/// A detected person: box in source pixels and score.
pub type Person = Scored<BoxF>;

/// One detector run: the source region `[x0, x1) × [y0, y1)` stretched to the canvas.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pass {
    /// Region left (source pixels).
    pub x0: u32,
    /// Region top.
    pub y0: u32,
    /// Region right (exclusive).
    pub x1: u32,
    /// Region bottom (exclusive).
    pub y1: u32,
    /// Which region edges are inside the image (left, top, right, bottom): detections touching
    /// them are cut people.
    pub inner: [bool; 4],
}

impl Pass {
    /// Canvas pixels per source pixel, horizontally and vertically.
    pub fn scale(&self) -> (f32, f32) {
        (CANVAS as f32 / (self.x1 - self.x0).max(1) as f32, CANVAS as f32 / (self.y1 - self.y0).max(1) as f32)
    }
}

/// The detector runs for a `width` × `height` frame: the whole frame, then the tiles.
pub fn plan(width: u32, height: u32, cfg: &PersonConfig) -> Vec<Pass> {
    if width == 0 || height == 0 {
        return Vec::new();
    }
    let mut passes = vec![Pass { x0: 0, y0: 0, x1: width, y1: height, inner: [false; 4] }];
    let n = cfg.tiles;
    if n >= 2 {
        // n tiles of side t with overlap o cover L: t (n - (n-1) o) = L.
        let o = cfg.overlap.clamp(0.0, 0.9);
        let span = |len: u32| -> Vec<(u32, u32)> {
            let t = len as f32 / (n as f32 - (n - 1) as f32 * o);
            (0..n)
                .map(|i| {
                    let a = (i as f32 * t * (1.0 - o)).floor() as u32;
                    let b = ((i as f32 * t * (1.0 - o) + t).ceil() as u32).min(len);
                    (a.min(len.saturating_sub(1)), b.max(a + 1))
                })
                .collect()
        };
        for (y0, y1) in span(height) {
            for (x0, x1) in span(width) {
                passes.push(Pass { x0, y0, x1, y1, inner: [x0 > 0, y0 > 0, x1 < width, y1 < height] });
            }
        }
    }
    passes
}

/// The canvas tensor `[1, 3, 416, 416]` for `pass`: the region stretched (bilinear), BGR,
/// normalised by [`MEAN_BGR`] and [`STD_BGR`].
pub fn canvas_tensor(img: &RgbImage, pass: &Pass) -> Result<Array4<f32>, VisionError> {
    let region = crop_padded(img, i64::from(pass.x0), i64::from(pass.y0), pass.x1 - pass.x0, pass.y1 - pass.y0);
    let scaled =
        resize_rgb(&region, CANVAS, CANVAS, Filter::Bilinear).map_err(|e| VisionError::Geometry(e.to_string()))?;
    let plane = (CANVAS * CANVAS) as usize;
    let mut data = vec![0.0f32; 3 * plane];
    for (i, px) in scaled.as_raw().chunks_exact(3).enumerate() {
        // Tensor channel c is BGR: source channel 2 - c.
        for c in 0..3 {
            data[c * plane + i] = (f32::from(px[2 - c]) - MEAN_BGR[c]) / STD_BGR[c];
        }
    }
    Array4::from_shape_vec((1, 3, CANVAS as usize, CANVAS as usize), data)
        .map_err(|e| VisionError::Geometry(e.to_string()))
}

/// The expected distance of one side: the softmax of its bins times the bin indices.
fn expected_distance(bins: &[f32]) -> f32 {
    let max = bins.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let (mut num, mut den) = (0.0f32, 0.0f32);
    for (i, &b) in bins.iter().enumerate() {
        let e = (b - max).exp();
        num += e * i as f32;
        den += e;
    }
    if den > 0.0 { num / den } else { 0.0 }
}

/// Person candidates of one pass in source pixels. `scores[g]` is grid `g`'s `[cells, 80]`
/// flattened, `boxes[g]` its `[cells, 44]` (left, top, right, bottom × 11 bins).
pub fn decode(scores: [&[f32]; 3], boxes: [&[f32]; 3], pass: &Pass, cfg: &PersonConfig) -> Vec<Person> {
    let (sx, sy) = pass.scale();
    let (ox, oy) = (pass.x0 as f32, pass.y0 as f32);
    let mut out = Vec::new();
    for (g, &stride) in STRIDES.iter().enumerate() {
        let side = CANVAS.div_ceil(stride) as usize;
        let cells = (scores[g].len() / CLASSES).min(boxes[g].len() / (4 * BINS)).min(side * side);
        for i in 0..cells {
            let score = scores[g][i * CLASSES + PERSON];
            if score.is_nan() || score < cfg.score_threshold {
                continue;
            }
            let (col, row) = ((i % side) as f32, (i / side) as f32);
            let s = stride as f32;
            let (cx, cy) = ((col + 0.5) * s, (row + 0.5) * s);
            let d = &boxes[g][i * 4 * BINS..(i + 1) * 4 * BINS];
            let [l, t, r, b] = [0, 1, 2, 3].map(|k| expected_distance(&d[k * BINS..(k + 1) * BINS]) * s);
            let (x1, y1) = ((cx - l).max(0.0), (cy - t).max(0.0));
            let (x2, y2) = ((cx + r).min(CANVAS as f32), (cy + b).min(CANVAS as f32));
            if !(x2 > x1 && y2 > y1) {
                continue;
            }
            let [li, ti, ri, bi] = pass.inner;
            let edge = 2.0;
            if (li && x1 < edge)
                || (ti && y1 < edge)
                || (ri && x2 > CANVAS as f32 - edge)
                || (bi && y2 > CANVAS as f32 - edge)
            {
                continue;
            }
            out.push(Person {
                bbox: BoxF::from_corners(x1 / sx + ox, y1 / sy + oy, x2 / sx + ox, y2 / sy + oy),
                score,
            });
        }
    }
    out
}

/// The final list: NMS, boxes clipped to the image, sorted by score.
pub fn finish(cands: Vec<Person>, width: u32, height: u32, cfg: &PersonConfig) -> Vec<Person> {
    let overlap = if cfg.tiles >= 2 { cfg.nms_overlap_min } else { f32::INFINITY };
    boxes::nms(cands, usize::MAX, |k, c| k.iou(c) <= cfg.nms_iou && k.overlap_min(c) <= overlap)
        .into_iter()
        .map(|c| Person { bbox: c.bbox.clamp(width as f32, height as f32), score: c.score })
        .filter(|c| c.bbox.w >= 1.0 && c.bbox.h >= 1.0)
        .collect()
}

/// One grid's outputs, flattened: the class scores and the box distributions.
pub type GridOutputs = (Vec<f32>, Vec<f32>);

/// The output names of the model, grid by grid: scores then box distributions.
const SCORE_OUTPUTS: [&str; 3] = ["scores_8", "scores_16", "scores_32"];
const BOX_OUTPUTS: [&str; 3] = ["boxes_8", "boxes_16", "boxes_32"];

/// The person detector behind a session pool of [`MODEL`]. Every call blocks: run it on the
/// blocking pool.
#[derive(Clone)]
pub struct PersonDetector {
    pool: SessionPool,
    config: PersonConfig,
}

impl std::fmt::Debug for PersonDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersonDetector").field("config", &self.config).finish_non_exhaustive()
    }
}

impl PersonDetector {
    /// The detector over `pool` (sessions of [`MODEL`], loaded and verified by the caller).
    pub fn new(pool: SessionPool, config: PersonConfig) -> Self {
        Self { pool, config }
    }

    /// The detector from a model store: verifies [`MODEL`] and opens `sessions` sessions.
    pub fn load(
        store: &sightline_inference::ModelStore,
        runtime: &sightline_inference::Runtime,
        sessions: usize,
        config: PersonConfig,
    ) -> Result<Self, VisionError> {
        store.verify(&[MODEL])?;
        let pc = sightline_inference::PoolConfig { sessions: sessions.max(1), ..Default::default() };
        Ok(Self::new(store.pool(runtime, MODEL, pc)?, config))
    }

    /// The settings it detects with.
    pub fn config(&self) -> &PersonConfig {
        &self.config
    }

    /// One run on a `[1, 3, 416, 416]` input: per grid, the scores and the box distributions,
    /// flattened.
    pub fn run(&self, input: Array4<f32>) -> Result<[GridOutputs; 3], VisionError> {
        let out = self.pool.run_blocking(vec![("input".into(), input.into_dyn())])?;
        let grid = |g: usize| -> Result<GridOutputs, VisionError> {
            let s = out
                .get(SCORE_OUTPUTS[g])
                .ok_or_else(|| VisionError::Output(format!("{MODEL}: no {}", SCORE_OUTPUTS[g])))?;
            let b = out
                .get(BOX_OUTPUTS[g])
                .ok_or_else(|| VisionError::Output(format!("{MODEL}: no {}", BOX_OUTPUTS[g])))?;
            Ok((s.iter().copied().collect(), b.iter().copied().collect()))
        };
        Ok([grid(0)?, grid(1)?, grid(2)?])
    }

    /// The people in `img`, best first.
    pub fn detect(&self, img: &RgbImage) -> Result<Vec<Person>, VisionError> {
        self.detect_with(img, &self.config)
    }

    /// The people in `img` with other settings (a camera's own tiling).
    pub fn detect_with(&self, img: &RgbImage, config: &PersonConfig) -> Result<Vec<Person>, VisionError> {
        let (w, h) = img.dimensions();
        let mut cands = Vec::new();
        for pass in plan(w, h, config) {
            let [g8, g16, g32] = self.run(canvas_tensor(img, &pass)?)?;
            cands.extend(decode([&g8.0, &g16.0, &g32.0], [&g8.1, &g16.1, &g32.1], &pass, config));
        }
        Ok(finish(cands, w, h, config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_distance_is_the_mean_bin() {
        // A sharp peak at bin 3 -> 3; equal logits -> the middle bin 5.
        let mut bins = [-50.0f32; BINS];
        bins[3] = 50.0;
        assert!((expected_distance(&bins) - 3.0).abs() < 1e-4);
        assert!((expected_distance(&[0.0; BINS]) - 5.0).abs() < 1e-4);
    }

    fn grids() -> ([Vec<f32>; 3], [Vec<f32>; 3]) {
        let cells = |s: u32| (CANVAS / s) as usize * (CANVAS / s) as usize;
        let scores = STRIDES.map(|s| vec![0.0f32; cells(s) * CLASSES]);
        let boxes = STRIDES.map(|s| vec![-50.0f32; cells(s) * 4 * BINS]);
        (scores, boxes)
    }

    /// Puts a person at stride-16 cell (col, row) with side distances `d` bins.
    fn put(scores: &mut [Vec<f32>; 3], boxes: &mut [Vec<f32>; 3], col: usize, row: usize, d: [usize; 4], score: f32) {
        let side = (CANVAS / 16) as usize;
        let i = row * side + col;
        scores[1][i * CLASSES + PERSON] = score;
        for (k, &bin) in d.iter().enumerate() {
            boxes[1][i * 4 * BINS + k * BINS + bin] = 50.0;
        }
    }

    #[test]
    fn decode_maps_a_cell_back_to_source_pixels() {
        let (mut s, mut b) = grids();
        // Cell (10, 12) of stride 16: centre (168, 200) on the canvas; sides 2, 4, 2, 6 bins.
        put(&mut s, &mut b, 10, 12, [2, 4, 2, 6], 0.9);
        // A different class in another cell is ignored.
        s[1][CLASSES + 5] = 0.99;
        let pass = plan(832, 416, &PersonConfig { tiles: 0, ..PersonConfig::default() })[0];
        let got = decode([&s[0], &s[1], &s[2]], [&b[0], &b[1], &b[2]], &pass, &PersonConfig::default());
        assert_eq!(got.len(), 1);
        let p = got[0].bbox;
        // Canvas box x 136..200, y 136..296; source x doubled.
        assert!((p.x - 272.0).abs() < 0.1 && (p.w - 128.0).abs() < 0.1, "{p:?}");
        assert!((p.y - 136.0).abs() < 0.1 && (p.h - 160.0).abs() < 0.1, "{p:?}");
        assert!((got[0].score - 0.9).abs() < 1e-6);
    }

    #[test]
    fn low_scores_and_cut_people_at_inner_tile_edges_are_dropped() {
        let (mut s, mut b) = grids();
        put(&mut s, &mut b, 5, 5, [1, 1, 1, 1], 0.2);
        // Touches the canvas' left edge: centre x 8, left distance 1 bin = 16 px.
        put(&mut s, &mut b, 0, 8, [1, 1, 1, 1], 0.9);
        let tile = Pass { x0: 100, y0: 0, x1: 308, y1: 208, inner: [true, false, true, true] };
        let got = decode([&s[0], &s[1], &s[2]], [&b[0], &b[1], &b[2]], &tile, &PersonConfig::default());
        assert!(got.is_empty(), "{got:?}");
        let whole = Pass { inner: [false; 4], ..tile };
        let got = decode([&s[0], &s[1], &s[2]], [&b[0], &b[1], &b[2]], &whole, &PersonConfig::default());
        assert_eq!(got.len(), 1, "the frame's own edge is not a cut");
    }

    #[test]
    fn plan_covers_the_frame_with_overlapping_tiles() {
        let cfg = PersonConfig { tiles: 2, overlap: 0.25, ..Default::default() };
        let passes = plan(640, 480, &cfg);
        assert_eq!(passes.len(), 5);
        let tiles = &passes[1..];
        assert_eq!((tiles[0].x0, tiles[0].y0), (0, 0));
        assert_eq!((tiles[3].x1, tiles[3].y1), (640, 480));
        // Neighbours overlap by about a quarter of a tile.
        let (a, b) = (tiles[0], tiles[1]);
        assert!(a.x1 > b.x0 && (a.x1 - b.x0) as f32 > 0.2 * (a.x1 - a.x0) as f32, "{a:?} {b:?}");
        assert_eq!(tiles[0].inner, [false, false, true, true]);
        assert_eq!(plan(640, 480, &PersonConfig { tiles: 0, ..PersonConfig::default() }).len(), 1);
    }

    #[test]
    fn finish_suppresses_duplicates_and_with_tiles_a_part_inside_a_whole() {
        let p = |x, y, w, h, score| Person { bbox: BoxF { x, y, w, h }, score };
        let cands =
            vec![p(10.0, 10.0, 40.0, 100.0, 0.9), p(12.0, 12.0, 40.0, 100.0, 0.8), p(12.0, 50.0, 36.0, 55.0, 0.7)];
        let tiled = finish(cands.clone(), 200, 200, &PersonConfig { tiles: 2, ..PersonConfig::default() });
        assert_eq!(tiled.len(), 1);
        assert!((tiled[0].score - 0.9).abs() < 1e-6);
        // One pass: the smaller box may be a person behind the first; only the duplicate goes.
        let plain = finish(cands, 200, 200, &PersonConfig { tiles: 0, ..PersonConfig::default() });
        assert_eq!(plain.len(), 2);
    }
}

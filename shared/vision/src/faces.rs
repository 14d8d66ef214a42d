//! Face detection with the RFB-320 detector (`face-detect`) over a pyramid of tiles.
//!
//! The network sees a fixed 320x240 canvas and finds faces from about 10 to 256 canvas pixels.
//! One pass over the whole image (scaled to fit the canvas, aspect kept) finds the large
//! faces; when a face of `min_face` source pixels would be smaller than `target` canvas pixels
//! in that pass, finer levels follow (each twice the scale of the one before, up to native
//! resolution) that cover the image with overlapping canvas-sized tiles. Detections touching a
//! tile's inner edge are dropped (the overlap or a coarser level holds the whole face); the
//! union is reduced by non-maximum suppression on IoU and on intersection over the smaller box
//! (which removes a face part found at a finer level inside the face found at a coarser one).
//!
//! [`FaceDetector`] runs the model (`fr_detect.onnx`, manifest name [`MODEL`]) for the face
//! stage's pyramid ([`FaceDetector::candidates`]) and for detect's single stretched pass
//! ([`FaceDetector::run`]). The model returns boxes already decoded from its priors.

use image::RgbImage;
use ndarray::Array4;
use sightline_inference::SessionPool;
use sightline_inference::preprocess::{Filter, resize_rgb};

use crate::VisionError;
use crate::boxes::{self, BoxF, Scored};
use crate::crop::crop_padded;

/// The detector's manifest name.
pub const MODEL: &str = "face-detect";

/// Canvas width of the detector.
pub const CANVAS_W: u32 = 320;
/// Canvas height of the detector.
pub const CANVAS_H: u32 = 240;

/// Detection settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectConfig {
    /// Lowest face probability kept.
    pub score_threshold: f32,
    /// NMS: suppress a box whose IoU with a better one exceeds this.
    pub nms_iou: f32,
    /// NMS: suppress a box whose intersection over the smaller area with a better one exceeds this.
    pub nms_overlap_min: f32,
    /// Smallest face (source pixels, box width) the pyramid must make detectable.
    pub min_face: f32,
    /// Canvas size (pixels) a `min_face` face should reach at the finest level.
    pub target: f32,
    /// Finest scale (canvas pixels per source pixel) of the tile levels.
    pub max_scale: f32,
    /// Largest upscaling of a small image in the whole-image pass.
    pub max_upscale: f32,
    /// Tile overlap, as a fraction of the tile.
    pub overlap: f32,
    /// Most tiles per image; levels that would exceed it are skipped (large images then lose
    /// their smallest faces rather than the time budget).
    pub max_tiles: usize,
    /// Detections narrower than this fraction of `min_face` are dropped.
    pub keep_fraction: f32,
    /// Second opinion: boxes whose longer side is at least this many pixels need an MTCNN
    /// output-network face probability of `verify_large`, smaller ones `verify_small` (the
    /// network sees small faces blurred, so it is only trusted to veto large non-faces such as
    /// animal faces, which the first detector accepts).
    pub verify_min_side: f32,
    /// Verifier threshold for large boxes.
    pub verify_large: f32,
    /// Verifier threshold for small boxes.
    pub verify_small: f32,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            score_threshold: 0.8,
            nms_iou: 0.4,
            nms_overlap_min: 0.6,
            min_face: 20.0,
            target: 24.0,
            max_scale: 1.0,
            max_upscale: 4.0,
            overlap: 0.3,
            max_tiles: 512,
            keep_fraction: 0.7,
            verify_min_side: 32.0,
            verify_large: 0.5,
            verify_small: 0.05,
        }
    }
}

/// One detector run: the source region `[x0, x1) x [y0, y1)` scaled by `scale` into the
/// canvas' top-left corner.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pass {
    /// Canvas pixels per source pixel.
    pub scale: f32,
    /// Region left (source pixels).
    pub x0: u32,
    /// Region top.
    pub y0: u32,
    /// Region right (exclusive).
    pub x1: u32,
    /// Region bottom (exclusive).
    pub y1: u32,
    /// Which region edges are inside the image (left, top, right, bottom): detections touching
    /// them are cut faces.
    pub inner: [bool; 4],
}

impl Pass {
    /// Width and height of the scaled region on the canvas.
    pub fn canvas_size(&self) -> (u32, u32) {
        let w = ((self.x1 - self.x0) as f32 * self.scale).round().clamp(1.0, CANVAS_W as f32) as u32;
        let h = ((self.y1 - self.y0) as f32 * self.scale).round().clamp(1.0, CANVAS_H as f32) as u32;
        (w, h)
    }
}

fn tiles_for(width: u32, height: u32, scale: f32, overlap: f32) -> Vec<Pass> {
    let (w, h) = (width as f32, height as f32);
    let (tw, th) = (CANVAS_W as f32 / scale, CANVAS_H as f32 / scale);
    let starts = |len: f32, tile: f32| -> Vec<f32> {
        if len <= tile {
            return vec![0.0];
        }
        let step = tile * (1.0 - overlap);
        let n = ((len - tile) / step).ceil() as usize + 1;
        (0..n).map(|i| (len - tile) * i as f32 / (n - 1) as f32).collect()
    };
    let mut out = Vec::new();
    for ty in starts(h, th) {
        for tx in starts(w, tw) {
            let x0 = tx.floor() as u32;
            let y0 = ty.floor() as u32;
            let x1 = ((tx + tw).ceil() as u32).min(width);
            let y1 = ((ty + th).ceil() as u32).min(height);
            out.push(Pass { scale, x0, y0, x1, y1, inner: [x0 > 0, y0 > 0, x1 < width, y1 < height] });
        }
    }
    out
}

/// The detector runs for a `width` x `height` image: the whole image, then the tile levels.
pub fn plan(width: u32, height: u32, cfg: &DetectConfig) -> Vec<Pass> {
    if width == 0 || height == 0 {
        return Vec::new();
    }
    let s0 = (CANVAS_W as f32 / width as f32).min(CANVAS_H as f32 / height as f32).min(cfg.max_upscale);
    let mut passes = vec![Pass { scale: s0, x0: 0, y0: 0, x1: width, y1: height, inner: [false; 4] }];
    let finest = (cfg.target / cfg.min_face).min(cfg.max_scale);
    let mut s = s0;
    while s < finest * 0.999 {
        s = (s * 2.0).min(finest);
        let level = tiles_for(width, height, s, cfg.overlap);
        if passes.len() + level.len() > cfg.max_tiles + 1 {
            tracing::debug!(width, height, scale = s, tiles = level.len(), "tile budget reached, finer levels skipped");
            break;
        }
        passes.extend(level);
    }
    passes
}

/// The canvas tensor `[1, 3, 240, 320]` for `pass`: the region resized (bilinear, as Pillow),
/// RGB, `(x - 127) / 128`, the rest of the canvas 0 (grey 127).
pub fn canvas_tensor(img: &RgbImage, pass: &Pass) -> Result<Array4<f32>, VisionError> {
    let region = crop_padded(img, i64::from(pass.x0), i64::from(pass.y0), pass.x1 - pass.x0, pass.y1 - pass.y0);
    let (cw, ch) = pass.canvas_size();
    let scaled = resize_rgb(&region, cw, ch, Filter::Bilinear).map_err(|e| VisionError::Geometry(e.to_string()))?;
    let (w, h) = (CANVAS_W as usize, CANVAS_H as usize);
    let mut data = vec![0.0f32; 3 * h * w];
    let sw = scaled.width() as usize;
    for (i, px) in scaled.as_raw().chunks_exact(3).enumerate() {
        let (x, y) = (i % sw, i / sw);
        for c in 0..3 {
            data[c * h * w + y * w + x] = (f32::from(px[c]) - 127.0) / 128.0;
        }
    }
    Array4::from_shape_vec((1, 3, h, w), data).map_err(|e| VisionError::Geometry(e.to_string()))
}

/// The verifier threshold for a box (see [`DetectConfig::verify_min_side`]).
pub fn verify_threshold(b: &BoxF, cfg: &DetectConfig) -> f32 {
    if b.w.max(b.h) >= cfg.verify_min_side { cfg.verify_large } else { cfg.verify_small }
}

/// A detected face before landmarks: box in source pixels and face probability.
pub type Candidate = Scored<BoxF>;

/// Turns the detector outputs of `pass` into candidates in source pixels. `scores` is
/// `[N, 2]` (background, face) flattened, `boxes` `[N, 4]` corners normalised to the canvas.
pub fn decode(scores: &[f32], boxes: &[f32], pass: &Pass, cfg: &DetectConfig) -> Vec<Candidate> {
    let (cw, ch) = pass.canvas_size();
    let (cw, ch) = (cw as f32, ch as f32);
    let n = (scores.len() / 2).min(boxes.len() / 4);
    let mut out = Vec::new();
    for i in 0..n {
        let score = scores[2 * i + 1];
        if score.is_nan() || score < cfg.score_threshold {
            continue;
        }
        let b = &boxes[4 * i..4 * i + 4];
        let (x1, y1, x2, y2) =
            (b[0] * CANVAS_W as f32, b[1] * CANVAS_H as f32, b[2] * CANVAS_W as f32, b[3] * CANVAS_H as f32);
        if !(x2 > x1 && y2 > y1) {
            continue;
        }
        let [l, t, r, bo] = pass.inner;
        if (l && x1 < 2.0) || (t && y1 < 2.0) || (r && x2 > cw - 2.0) || (bo && y2 > ch - 2.0) {
            continue;
        }
        let s = pass.scale;
        let (ox, oy) = (pass.x0 as f32, pass.y0 as f32);
        out.push(Candidate { bbox: BoxF::from_corners(x1 / s + ox, y1 / s + oy, x2 / s + ox, y2 / s + oy), score });
    }
    out
}

/// Greedy non-maximum suppression by score: a candidate is dropped when its IoU with a kept
/// one exceeds `iou` or their intersection covers more than `overlap_min` of the smaller box.
pub fn nms(cands: Vec<Candidate>, iou: f32, overlap_min: f32) -> Vec<Candidate> {
    boxes::nms(cands, usize::MAX, |k, c| k.iou(c) <= iou && k.overlap_min(c) <= overlap_min)
}

/// The final list: too-small boxes dropped, NMS, boxes clipped to the image, sorted by score.
pub fn finish(cands: Vec<Candidate>, width: u32, height: u32, cfg: &DetectConfig) -> Vec<Candidate> {
    let min_w = cfg.keep_fraction * cfg.min_face;
    let cands = cands.into_iter().filter(|c| c.bbox.w >= min_w).collect();
    nms(cands, cfg.nms_iou, cfg.nms_overlap_min)
        .into_iter()
        .map(|c| Candidate { bbox: c.bbox.clamp(width as f32, height as f32), score: c.score })
        .filter(|c| c.bbox.w >= 1.0 && c.bbox.h >= 1.0)
        .collect()
}

/// The face detector behind a session pool of [`MODEL`]. Every call blocks: run it on the
/// blocking pool.
#[derive(Clone)]
pub struct FaceDetector {
    pool: SessionPool,
}

impl std::fmt::Debug for FaceDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaceDetector").finish_non_exhaustive()
    }
}

impl FaceDetector {
    /// The detector over `pool` (sessions of [`MODEL`], loaded and verified by the caller).
    pub fn new(pool: SessionPool) -> Self {
        Self { pool }
    }

    /// One run on a `[1, 3, 240, 320]` input: the scores `[N, 2]` (background, face) and the
    /// boxes `[N, 4]` (corners normalised to the input), flattened.
    pub fn run(&self, input: Array4<f32>) -> Result<(Vec<f32>, Vec<f32>), VisionError> {
        let out = self.pool.run_blocking(vec![("input".into(), input.into_dyn())])?;
        let scores = out.get("scores").ok_or_else(|| VisionError::Output("face-detect: no scores".into()))?;
        let boxes = out.get("boxes").ok_or_else(|| VisionError::Output("face-detect: no boxes".into()))?;
        Ok((scores.iter().copied().collect(), boxes.iter().copied().collect()))
    }

    /// Runs the detector over every pass of the pyramid ([`plan`]) and returns the boxes after
    /// [`finish`] (NMS, clipped to the image), before any second opinion.
    pub fn candidates(&self, img: &RgbImage, cfg: &DetectConfig) -> Result<Vec<Candidate>, VisionError> {
        let mut cands = Vec::new();
        for pass in plan(img.width(), img.height(), cfg) {
            let (scores, boxes) = self.run(canvas_tensor(img, &pass)?)?;
            cands.extend(decode(&scores, &boxes, &pass, cfg));
        }
        Ok(finish(cands, img.width(), img.height(), cfg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_images_take_one_pass_and_large_ones_get_tiles() {
        let cfg = DetectConfig::default();
        let p = plan(150, 150, &cfg);
        assert_eq!(p.len(), 1);
        assert!((p[0].scale - 1.6).abs() < 1e-6);
        assert_eq!(p[0].canvas_size(), (240, 240));

        // 500x375: the whole pass at 0.64 makes a 20 px face 12.8 px; native-resolution tiles follow.
        let p = plan(500, 375, &cfg);
        assert!(p.len() > 1);
        assert!(p[1..].iter().all(|t| (t.scale - 1.0).abs() < 1e-6));
        // The tiles cover the image.
        assert!(p[1..].iter().any(|t| t.x0 == 0 && t.y0 == 0));
        assert!(p[1..].iter().any(|t| t.x1 == 500 && t.y1 == 375));
        assert!(p[1..].iter().all(|t| t.x1 - t.x0 <= 320 && t.y1 - t.y0 <= 240));

        // Huge images stop at the tile budget.
        let huge = plan(20_000, 20_000, &cfg);
        assert!(huge.len() <= cfg.max_tiles + 1, "{}", huge.len());
        assert!(plan(0, 10, &cfg).is_empty());
    }

    #[test]
    fn extreme_aspect_ratios_stay_within_the_canvas() {
        let cfg = DetectConfig::default();
        for (w, h) in [(5000, 40), (40, 5000), (1, 1), (3, 2000)] {
            for pass in plan(w, h, &cfg) {
                let (cw, ch) = pass.canvas_size();
                assert!((1..=CANVAS_W).contains(&cw) && (1..=CANVAS_H).contains(&ch), "{w}x{h}: {pass:?}");
                assert!(pass.x1 <= w && pass.y1 <= h && pass.x0 < pass.x1 && pass.y0 < pass.y1, "{pass:?}");
            }
        }
    }

    #[test]
    fn decode_maps_back_to_source_and_drops_cut_faces() {
        let cfg = DetectConfig::default();
        let pass = Pass { scale: 0.5, x0: 100, y0: 50, x1: 740, y1: 530, inner: [true, false, false, false] };
        // Two priors: a face in the middle, and one touching the inner left edge.
        let scores = [0.1, 0.9, 0.05, 0.95];
        let boxes = [0.5, 0.5, 0.6, 0.6, 0.0, 0.2, 0.1, 0.3];
        let c = decode(&scores, &boxes, &pass, &cfg);
        assert_eq!(c.len(), 1);
        let b = c[0].bbox;
        assert!((b.x - (160.0 / 0.5 + 100.0)).abs() < 1e-3 && (b.y - (120.0 / 0.5 + 50.0)).abs() < 1e-3);
        assert!((b.w - 64.0).abs() < 1e-3 && (b.h - 48.0).abs() < 1e-3);
        // Below the threshold: nothing.
        assert!(decode(&[0.5, 0.5], &[0.1, 0.1, 0.2, 0.2], &pass, &cfg).is_empty());
    }

    #[test]
    fn nms_removes_overlaps_and_nested_parts() {
        let c = |x: f32, y: f32, w: f32, h: f32, score: f32| Candidate { bbox: BoxF { x, y, w, h }, score };
        let kept = nms(
            vec![
                c(0.0, 0.0, 100.0, 100.0, 0.9),
                c(5.0, 5.0, 100.0, 100.0, 0.95), // overlaps the first: one survives
                c(20.0, 50.0, 50.0, 40.0, 0.99), // a part inside the face, best score
                c(300.0, 0.0, 50.0, 50.0, 0.85), // elsewhere
            ],
            0.4,
            0.6,
        );
        // Greedy by score: the best box of the cluster stays, everything covering it goes.
        assert_eq!(kept.len(), 2, "{kept:?}");
        assert_eq!(kept[0].score, 0.99);
        assert!(kept.iter().any(|k| k.bbox.x == 300.0));
    }

    #[test]
    fn large_boxes_need_a_confident_second_opinion() {
        let cfg = DetectConfig::default();
        assert_eq!(verify_threshold(&BoxF { x: 0.0, y: 0.0, w: 20.0, h: 40.0 }, &cfg), cfg.verify_large);
        assert_eq!(verify_threshold(&BoxF { x: 0.0, y: 0.0, w: 20.0, h: 28.0 }, &cfg), cfg.verify_small);
    }

    #[test]
    fn canvas_tensor_pads_with_zero() {
        let img = RgbImage::from_pixel(100, 50, image::Rgb([255, 127, 0]));
        let pass = plan(100, 50, &DetectConfig::default())[0];
        let t = canvas_tensor(&img, &pass).expect("tensor");
        assert_eq!(t.shape(), &[1, 3, 240, 320]);
        assert!((t[[0, 0, 10, 10]] - 1.0).abs() < 1e-6);
        assert_eq!(t[[0, 1, 10, 10]], 0.0);
        assert_eq!(t[[0, 0, 239, 319]], 0.0);
    }
}

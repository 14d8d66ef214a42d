//! The OCR engine: RapidOCR's pipeline (bounds, vertical padding, detection, crops,
//! orientation, recognition, mapping back, filtering) over three ONNX Runtime session pools.

use std::time::Instant;

use image::DynamicImage;
use ndarray::ArrayD;
use serde::Serialize;
use sightline_inference::{InferenceError, ModelStore, PoolConfig, Runtime, SessionPool};

use sightline_vision::cv::{
    Bgr, pad_vertical, perspective_transform, resize_linear, rot90_ccw, rotate_180, warp_perspective_cubic,
};
use sightline_vision::geometry::FPoint;
use sightline_vision::textmap::{self, DetBox};

use crate::det::{self, DetConfig, round_half_even};
use crate::rec::{self, Decoded};

/// Why OCR failed. Image problems are not errors: an image without text gives no lines.
#[derive(Debug, thiserror::Error)]
pub enum OcrError {
    /// Loading or running a model failed.
    #[error("{0}")]
    Inference(#[from] InferenceError),
    /// The recognition model carries no `character` dictionary.
    #[error("model {0} has no `character` metadata (the CTC dictionary)")]
    NoDictionary(String),
    /// A model returned a tensor of an unexpected shape.
    #[error("model {model} returned shape {shape:?}, expected {expected}")]
    Shape {
        /// Model name.
        model: String,
        /// What came back.
        shape: Vec<usize>,
        /// What was expected.
        expected: &'static str,
    },
}

/// Every setting of the pipeline. The names follow RapidOCR's configuration (see
/// [`OcrConfig::rapidocr_params`]); the defaults are Sightline's (docs/ocr.md says why they
/// differ from RapidOCR's: `limit_side_len` 640 instead of 736, `width_height_ratio` 4 instead
/// of 8, `cls_thresh` 0.98 instead of 0.9, and the detector input capped at 4000 pixels).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OcrConfig {
    /// Longest side kept before anything else; larger images are scaled down to it (rounded
    /// to multiples of 32), and the crops are taken from that image (`Global.max_side_len`).
    pub max_side_len: u32,
    /// Shortest side; smaller images are scaled up (`Global.min_side_len`).
    pub min_side_len: u32,
    /// Pad very flat images with black rows above and below (`Global.use_vertical_padding`).
    pub use_vertical_padding: bool,
    /// Images this tall or less are padded (`Global.min_height`).
    pub min_height: u32,
    /// Images wider than this many heights are padded (`Global.width_height_ratio`).
    pub width_height_ratio: f64,
    /// Detection.
    pub det: DetConfig,
    /// Run the 0°/180° classifier (`Global.use_cls`).
    pub use_cls: bool,
    /// Rotate a line when p(180°) exceeds this (`Cls.cls_thresh`).
    pub cls_thresh: f32,
    /// Lines per classifier call (`Cls.cls_batch_num`).
    pub cls_batch: usize,
    /// Lines per recogniser call (`Rec.rec_batch_num`).
    pub rec_batch: usize,
    /// Narrowest recogniser input width (`Rec.rec_img_shape[2]`).
    pub rec_width: usize,
    /// Lines with a lower recognition score are dropped (`Global.text_score`).
    pub text_score: f64,
}

impl Default for OcrConfig {
    fn default() -> Self {
        Self {
            max_side_len: 2000,
            min_side_len: 30,
            use_vertical_padding: true,
            min_height: 30,
            width_height_ratio: 4.0,
            det: DetConfig::default(),
            use_cls: true,
            cls_thresh: 0.98,
            cls_batch: 6,
            rec_batch: 6,
            rec_width: 320,
            text_score: 0.5,
        }
    }
}

impl OcrConfig {
    /// RapidOCR 3.10's own defaults (for comparisons; no cap on the detector input).
    pub fn rapidocr_defaults() -> Self {
        Self {
            det: DetConfig {
                limit_side_len: 736,
                limit_type: det::LimitType::Min,
                max_input_side: u32::MAX,
                ..DetConfig::default()
            },
            width_height_ratio: 8.0,
            cls_thresh: 0.9,
            ..Self::default()
        }
    }

    /// This configuration as RapidOCR `params` (`RapidOCR(params=...)`), so that a reference
    /// run uses the same settings.
    pub fn rapidocr_params(&self) -> serde_json::Value {
        serde_json::json!({
            "Global.max_side_len": self.max_side_len,
            "Global.min_side_len": self.min_side_len,
            "Global.use_vertical_padding": self.use_vertical_padding,
            "Global.min_height": self.min_height,
            "Global.width_height_ratio": self.width_height_ratio,
            "Global.use_cls": self.use_cls,
            "Global.text_score": self.text_score,
            "Det.limit_side_len": self.det.limit_side_len,
            "Det.limit_type": self.det.limit_type,
            "Det.thresh": self.det.thresh,
            "Det.box_thresh": self.det.box_thresh,
            "Det.max_candidates": self.det.max_candidates,
            "Det.unclip_ratio": self.det.unclip_ratio,
            "Det.use_dilation": self.det.use_dilation,
            "Cls.cls_thresh": self.cls_thresh,
            "Cls.cls_batch_num": self.cls_batch,
            "Rec.rec_batch_num": self.rec_batch,
            "Rec.rec_img_shape": [3, rec::LINE_HEIGHT, self.rec_width],
        })
    }
}

pub use sightline_messages::annotations::TextLine;

/// Time spent per step of one call, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Timings {
    /// Detection (pre-processing, model, post-processing).
    pub det_ms: f64,
    /// Cropping and orientation.
    pub cls_ms: f64,
    /// Recognition.
    pub rec_ms: f64,
}

/// Which models the engine loads and how many sessions and threads each gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineOptions {
    /// Manifest name of the detector.
    pub det_model: String,
    /// Manifest name of the orientation classifier.
    pub cls_model: String,
    /// Manifest name of the recogniser.
    pub rec_model: String,
    /// Images processed at once (sessions of the detector).
    pub sessions: usize,
    /// Threads for one image: the detector's intra-op threads.
    pub threads: usize,
    /// Line batches of one image recognised at once. 1 runs them one after the other, each
    /// with `threads` intra-op threads (as RapidOCR does); N > 1 runs N batches side by side,
    /// each with `threads / N` threads (same results; faster here, see docs/ocr.md). Default:
    /// 2 when `threads` is 2 or more.
    pub line_workers: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
        Self {
            det_model: "ocr-det".into(),
            cls_model: "ocr-cls".into(),
            rec_model: "ocr-rec".into(),
            sessions: 1,
            threads,
            line_workers: threads.min(2),
        }
    }
}

/// PP-OCR detection, orientation and recognition with RapidOCR's pre- and post-processing.
pub struct OcrEngine {
    det: SessionPool,
    cls: SessionPool,
    rec: SessionPool,
    chars: Vec<String>,
    config: OcrConfig,
    line_workers: usize,
}

impl std::fmt::Debug for OcrEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OcrEngine")
            .field("det", &self.det.model())
            .field("cls", &self.cls.model())
            .field("rec", &self.rec.model())
            .field("classes", &self.chars.len())
            .field("config", &self.config)
            .finish()
    }
}

fn first_output(mut out: sightline_inference::Outputs, model: &str) -> Result<ArrayD<f32>, OcrError> {
    if out.0.is_empty() {
        return Err(OcrError::Shape { model: model.to_owned(), shape: vec![], expected: "one output" });
    }
    Ok(out.0.swap_remove(0).1)
}

impl OcrEngine {
    /// Loads (and SHA-256-verifies) the three models.
    pub fn load(
        store: &ModelStore,
        runtime: &Runtime,
        options: &EngineOptions,
        config: OcrConfig,
    ) -> Result<Self, OcrError> {
        let sessions = options.sessions.max(1);
        let threads = options.threads.max(1);
        let workers = options.line_workers.max(1);
        let pc = PoolConfig { sessions, intra_threads: threads, ..Default::default() };
        let lines_pc = PoolConfig {
            sessions: sessions * workers,
            intra_threads: (threads / workers).max(1),
            ..Default::default()
        };
        let det = store.pool(runtime, &options.det_model, pc)?;
        let cls = store.pool(runtime, &options.cls_model, lines_pc)?;
        let rec = store.pool(runtime, &options.rec_model, lines_pc)?;
        let character = rec.metadata("character").ok_or_else(|| OcrError::NoDictionary(options.rec_model.clone()))?;
        let chars = rec::dictionary(character);
        Ok(Self { det, cls, rec, chars, config, line_workers: workers })
    }

    /// `$SIGHTLINE_MODELS` and `$ORT_DYLIB_PATH` (see `models/fetch.sh`).
    pub fn from_env(options: &EngineOptions, config: OcrConfig) -> Result<Self, OcrError> {
        let store = ModelStore::from_env()?;
        let runtime = Runtime::init_from_env(store.root())?;
        Self::load(&store, runtime, options, config)
    }

    /// The configuration.
    pub fn config(&self) -> &OcrConfig {
        &self.config
    }

    /// Number of recognisable classes (dictionary + blank + space).
    pub fn classes(&self) -> usize {
        self.chars.len()
    }

    /// OCR of a decoded image (blocking: call it from the blocking pool).
    pub fn recognize_image(&self, img: &DynamicImage) -> Result<(Vec<TextLine>, Timings), OcrError> {
        self.recognize(&crate::load::to_bgr(img))
    }

    /// OCR of a BGR image (blocking). Lines in reading order; none when the image has no text.
    pub fn recognize(&self, original: &Bgr) -> Result<(Vec<TextLine>, Timings), OcrError> {
        let mut timings = Timings::default();
        let cfg = &self.config;
        let Some((img, ratio_h, ratio_w)) = bound_size(original, cfg.min_side_len, cfg.max_side_len) else {
            return Ok((Vec::new(), timings));
        };
        let (img, top) = if cfg.use_vertical_padding { vertical_padding(&img, cfg) } else { (img, 0) };

        let t = Instant::now();
        let boxes = self.detect(&img)?;
        timings.det_ms = t.elapsed().as_secs_f64() * 1e3;
        if boxes.is_empty() {
            return Ok((Vec::new(), timings));
        }

        let t = Instant::now();
        let mut crops: Vec<Bgr> = boxes.iter().map(|b| rotate_crop(&img, &b.points)).collect();
        if cfg.use_cls {
            self.classify(&mut crops)?;
        }
        timings.cls_ms = t.elapsed().as_secs_f64() * 1e3;

        let t = Instant::now();
        let decoded = self.read_lines(&crops)?;
        timings.rec_ms = t.elapsed().as_secs_f64() * 1e3;

        let (ow, oh) = (original.width as f32, original.height as f32);
        let (rw, rh) = (ratio_w as f32, ratio_h as f32);
        let lines = boxes
            .iter()
            .zip(decoded)
            .filter(|(_, d)| !d.text.trim().is_empty() && d.score >= cfg.text_score)
            .map(|(b, d)| TextLine {
                text: d.text,
                score: d.score,
                bbox: b.points.map(|p| {
                    let x = (p[0] * rw).max(0.0).min(ow);
                    let y = ((p[1] - top as f32) * rh).max(0.0).min(oh);
                    [x, y]
                }),
            })
            .collect();
        Ok((lines, timings))
    }

    /// Text boxes of `img` (coordinates of `img`).
    pub fn detect(&self, img: &Bgr) -> Result<Vec<DetBox>, OcrError> {
        let Some(input) = det::preprocess(img, &self.config.det) else {
            return Ok(Vec::new());
        };
        let out = self.det.run_blocking(vec![(self.det.input_names()[0].clone(), input.into_dyn())])?;
        let pred = first_output(out, self.det.model())?;
        if pred.ndim() != 4 {
            return Err(OcrError::Shape {
                model: self.det.model().into(),
                shape: pred.shape().to_vec(),
                expected: "[1,1,H,W]",
            });
        }
        Ok(textmap::postprocess(&pred, img.width, img.height, &self.config.det.db()))
    }

    /// Runs `job` on every chunk, `line_workers` chunks at a time (in order when 1).
    fn per_chunk<T: Send>(
        &self,
        chunks: &[&[usize]],
        job: impl Fn(&[usize]) -> Result<T, OcrError> + Sync,
    ) -> Result<Vec<T>, OcrError> {
        if self.line_workers <= 1 || chunks.len() <= 1 {
            return chunks.iter().map(|c| job(c)).collect();
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results: Vec<std::sync::Mutex<Option<Result<T, OcrError>>>> =
            chunks.iter().map(|_| std::sync::Mutex::new(None)).collect();
        std::thread::scope(|s| {
            for _ in 0..self.line_workers.min(chunks.len()) {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(chunk) = chunks.get(i) else { break };
                        let r = job(chunk);
                        if let Ok(mut slot) = results[i].lock() {
                            *slot = Some(r);
                        }
                    }
                });
            }
        });
        results
            .into_iter()
            .map(|m| {
                m.into_inner().ok().flatten().unwrap_or_else(|| {
                    Err(OcrError::Shape { model: "worker".into(), shape: vec![], expected: "a result" })
                })
            })
            .collect()
    }

    /// Rotates the lines the classifier finds upside down (in place).
    pub fn classify(&self, crops: &mut [Bgr]) -> Result<(), OcrError> {
        let order = rec::order_by_ratio(crops);
        let chunks: Vec<&[usize]> = order.chunks(self.config.cls_batch.max(1)).collect();
        let flips = self.per_chunk(&chunks, |chunk| {
            let batch: Vec<&Bgr> = chunk.iter().map(|&i| &crops[i]).collect();
            let input = rec::cls_batch(&batch);
            let out = self.cls.run_blocking(vec![(self.cls.input_names()[0].clone(), input.into_dyn())])?;
            let probs = first_output(out, self.cls.model())?;
            if probs.ndim() != 2 || probs.shape()[0] != chunk.len() || probs.shape()[1] < 2 {
                return Err(OcrError::Shape {
                    model: self.cls.model().into(),
                    shape: probs.shape().to_vec(),
                    expected: "[N,2]",
                });
            }
            // argmax picks "180" only when strictly larger (np.argmax takes the first max)
            Ok(chunk
                .iter()
                .enumerate()
                .filter(|(row, _)| {
                    let (p0, p180) = (probs[[*row, 0]], probs[[*row, 1]]);
                    p180 > p0 && p180 > self.config.cls_thresh
                })
                .map(|(_, &i)| i)
                .collect::<Vec<usize>>())
        })?;
        for i in flips.into_iter().flatten() {
            crops[i] = rotate_180(&crops[i]);
        }
        Ok(())
    }

    /// Recognises each line image (same order as `crops`).
    pub fn read_lines(&self, crops: &[Bgr]) -> Result<Vec<Decoded>, OcrError> {
        let order = rec::order_by_ratio(crops);
        let chunks: Vec<&[usize]> = order.chunks(self.config.rec_batch.max(1)).collect();
        let decoded = self.per_chunk(&chunks, |chunk| {
            let batch: Vec<&Bgr> = chunk.iter().map(|&i| &crops[i]).collect();
            let input = rec::rec_batch(&batch, self.config.rec_width);
            let res = self.rec.run_blocking(vec![(self.rec.input_names()[0].clone(), input.into_dyn())])?;
            let probs = first_output(res, self.rec.model())?;
            if probs.ndim() != 3 || probs.shape()[0] != chunk.len() {
                return Err(OcrError::Shape {
                    model: self.rec.model().into(),
                    shape: probs.shape().to_vec(),
                    expected: "[N,T,C]",
                });
            }
            Ok(rec::ctc_decode(&probs, &self.chars))
        })?;
        let mut out: Vec<Decoded> = vec![Decoded { text: String::new(), score: 0.0 }; crops.len()];
        for (chunk, ds) in chunks.iter().zip(decoded) {
            for (&i, d) in chunk.iter().zip(ds) {
                out[i] = d;
            }
        }
        Ok(out)
    }
}

/// RapidOCR's `resize_image_within_bounds`: images longer than `max_side` are scaled down,
/// images shorter than `min_side` scaled up (sides rounded to multiples of 32). Returns the
/// image and the factors back to the original (height, width), or `None` when a side would
/// round to zero.
pub fn bound_size(img: &Bgr, min_side: u32, max_side: u32) -> Option<(Bgr, f64, f64)> {
    let mut cur = img.clone();
    let (mut ratio_h, mut ratio_w) = (1.0f64, 1.0f64);
    let scale = |img: &Bgr, ratio: f64| -> Option<(Bgr, f64, f64)> {
        let (h, w) = (img.height as f64, img.width as f64);
        let rh = round_half_even(((h * ratio) as i64) as f64 / 32.0) * 32;
        let rw = round_half_even(((w * ratio) as i64) as f64 / 32.0) * 32;
        if rh <= 0 || rw <= 0 {
            return None;
        }
        let out = resize_linear(img, rw as usize, rh as usize);
        Some((out, h / rh as f64, w / rw as f64))
    };
    if cur.width.max(cur.height) as f64 > f64::from(max_side) {
        let long = if cur.height > cur.width { cur.height } else { cur.width };
        let (o, rh, rw) = scale(&cur, f64::from(max_side) / long as f64)?;
        (cur, ratio_h, ratio_w) = (o, rh, rw);
    }
    if (cur.width.min(cur.height) as f64) < f64::from(min_side) {
        let short = if cur.height < cur.width { cur.height } else { cur.width };
        let (o, rh, rw) = scale(&cur, f64::from(min_side) / short as f64)?;
        (cur, ratio_h, ratio_w) = (o, rh, rw);
    }
    Some((cur, ratio_h, ratio_w))
}

/// RapidOCR's `apply_vertical_padding`: flat images (height ≤ `min_height`, or wider than
/// `width_height_ratio` heights) get black rows above and below. Returns the padding on top.
pub fn vertical_padding(img: &Bgr, cfg: &OcrConfig) -> (Bgr, usize) {
    let (h, w) = (img.height as f64, img.width as f64);
    let too_wide = cfg.width_height_ratio != -1.0 && w / h > cfg.width_height_ratio;
    if h <= f64::from(cfg.min_height) || too_wide {
        let new_h = ((w / cfg.width_height_ratio) as i64).max(i64::from(cfg.min_height)) * 2;
        let pad = ((new_h as f64 - h).abs() / 2.0) as usize;
        (pad_vertical(img, pad, pad), pad)
    } else {
        (img.clone(), 0)
    }
}

/// RapidOCR's `get_rotate_crop_image`: the box warped to an upright rectangle (bicubic,
/// replicated borders), turned 90° counter-clockwise when it is 1.5 times taller than wide.
pub fn rotate_crop(img: &Bgr, pts: &[FPoint; 4]) -> Bgr {
    let d = |a: FPoint, b: FPoint| ((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1])).sqrt();
    let w = d(pts[0], pts[1]).max(d(pts[2], pts[3])) as usize;
    let h = d(pts[0], pts[3]).max(d(pts[1], pts[2])) as usize;
    let (wf, hf) = (w as f32, h as f32);
    let dst = [[0.0, 0.0], [wf, 0.0], [wf, hf], [0.0, hf]];
    let crop = match perspective_transform(pts, &dst) {
        Some(m) => warp_perspective_cubic(img, &m, w, h),
        None => Bgr::new(w, h),
    };
    if crop.width > 0 && crop.height as f64 / crop.width as f64 >= 1.5 { rot90_ccw(&crop) } else { crop }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_follow_rapidocr() {
        let tiny = Bgr::new(28, 17);
        let (img, rh, rw) = bound_size(&tiny, 30, 2000).expect("resizable");
        assert_eq!((img.width, img.height), (64, 32));
        assert_eq!((rh, rw), (17.0 / 32.0, 28.0 / 64.0));
        let big = Bgr::new(4000, 3000);
        let (img, _, _) = bound_size(&big, 30, 2000).expect("resizable");
        assert_eq!((img.width, img.height), (1984, 1504));
    }

    #[test]
    fn flat_images_are_padded() {
        let cfg = OcrConfig::default();
        let (img, top) = vertical_padding(&Bgr::new(266, 32), &cfg);
        // 266 / 32 = 8.3 > 4: new height max(66, 30) * 2 = 132, padding (132 - 32) / 2 = 50
        assert_eq!((top, img.height), (50, 132));
        let (img, top) = vertical_padding(&Bgr::new(100, 50), &cfg);
        assert_eq!((top, img.height), (0, 50));
    }

    #[test]
    fn tall_crops_are_turned() {
        let img = Bgr::new(50, 100);
        let crop = rotate_crop(&img, &[[10.0, 10.0], [20.0, 10.0], [20.0, 60.0], [10.0, 60.0]]);
        assert_eq!((crop.width, crop.height), (50, 10));
    }

    #[test]
    fn the_params_name_rapidocr_keys() {
        let p = OcrConfig::default().rapidocr_params();
        assert_eq!(p["Det.limit_type"], "min");
        assert_eq!(p["Det.limit_side_len"], 640);
        assert_eq!(p["Global.width_height_ratio"], 4.0);
        assert_eq!(OcrConfig::rapidocr_defaults().rapidocr_params()["Det.limit_type"], "min");
    }
}

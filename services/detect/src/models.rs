//! The models detect runs, each through a [`SessionPool`], with the preprocessing its
//! manifest entry documents. Every call blocks: run them on the blocking pool.

use std::time::Instant;

use image::RgbImage;
use ndarray::{Array4, ArrayD};
use sightline_inference::preprocess::{self, ChannelOrder, Filter, Layout, Normalize};
use sightline_inference::{InferenceError, ModelStore, Outputs, PoolConfig, Runtime, SessionPool};
use sightline_vision::faces::FaceDetector;
use sightline_vision::{Scored, VisionError};

use crate::analysis::{self, NormBox, TextParams, TextSummary};

/// The manifest names of the models detect needs.
pub const MODELS: [&str; 5] = ["nsfw", "face-detect", "mtcnn-onet", "ocr-det", "embed"];

/// The manifest name of the ImageNet label asset.
pub const LABELS: &str = "imagenet-labels";

/// Face candidates above this detector score enter non-maximum suppression.
const FACE_CANDIDATE_SCORE: f32 = 0.5;
/// Non-maximum suppression overlap (the detector package's value).
const FACE_NMS_IOU: f32 = 0.4;
/// At most this many faces are verified and reported.
const MAX_FACES: usize = 32;

type Result<T> = std::result::Result<T, InferenceError>;

fn bad(model: &str, message: impl Into<String>) -> InferenceError {
    InferenceError::Ort { model: model.to_owned(), message: message.into() }
}

/// One model: its session pool, input name and preprocessing (from the manifest).
#[derive(Debug, Clone)]
pub struct Net {
    pool: SessionPool,
    input: String,
    layout: Layout,
    order: ChannelOrder,
    norm: Normalize,
}

impl Net {
    /// Loads model `name` from `store` (verified) with `config`.
    pub fn load(store: &ModelStore, runtime: &Runtime, name: &str, config: PoolConfig) -> Result<Self> {
        let spec = store.spec(name)?;
        let (layout, order) = preprocess::layout_from_spec(&spec.preprocessing)?;
        let norm = Normalize::from_spec(&spec.preprocessing)?;
        let input = spec.inputs.first().map(|i| i.name.clone()).ok_or_else(|| bad(name, "no input in the manifest"))?;
        let pool = store.pool(runtime, name, config)?;
        Ok(Self { pool, input, layout, order, norm })
    }

    /// The model's session pool.
    pub fn pool(&self) -> &SessionPool {
        &self.pool
    }

    /// A batch-of-one tensor of `img` (already at the model's input size).
    pub fn tensor(&self, img: &RgbImage) -> Array4<f32> {
        preprocess::to_tensor(img, self.layout, self.order, &self.norm)
    }

    /// Runs a batch (blocking).
    pub fn run(&self, x: Array4<f32>) -> Result<Outputs> {
        self.pool.run_blocking(vec![(self.input.clone(), x.into_dyn())])
    }
}

/// A failed shared vision call as detect's error: inference errors as they are, the rest
/// named after `model`.
fn vision_error(model: &str, e: VisionError) -> InferenceError {
    match e {
        VisionError::Inference(e) => e,
        other => bad(model, other.to_string()),
    }
}

fn output<'a>(out: &'a Outputs, model: &str, name: &str) -> Result<&'a ArrayD<f32>> {
    out.get(name).ok_or_else(|| bad(model, format!("output {name:?} missing")))
}

/// How the models are run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelConfig {
    /// Sessions per model (concurrent calls).
    pub sessions: usize,
    /// Intra-op threads per session.
    pub intra_threads: usize,
    /// The OCR detector sees the image scaled so that its longer side is this (multiples of 32).
    pub text_side: u32,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self { sessions: 1, intra_threads: 1, text_side: 320 }
    }
}

/// A face the detector found and MTCNN's output net confirmed (or not).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Face {
    /// Normalised box.
    pub bbox: NormBox,
    /// Detector score.
    pub score: f32,
    /// MTCNN output-net face probability of the square crop around the box.
    pub confirm: f32,
}

/// Milliseconds spent per step of one analysis.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Timings {
    /// Content moderation.
    pub nsfw_ms: f64,
    /// Face detection and confirmation.
    pub faces_ms: f64,
    /// Text detection.
    pub text_ms: f64,
    /// ImageNet classes and saliency.
    pub saliency_ms: f64,
}

/// The ImageNet view of an image: top classes and the saliency map.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    /// (class index, probability), best first.
    pub top: Vec<(usize, f32)>,
    /// The 7×7 saliency map, row-major.
    pub saliency: Vec<f32>,
    /// Its side (7).
    pub side: usize,
}

/// The loaded models.
#[derive(Debug)]
pub struct DetectModels {
    nsfw: Net,
    face: Net,
    /// The shared face-detector call, over `face`'s sessions.
    face_detector: FaceDetector,
    onet: Net,
    ocr: Net,
    embed: Net,
    labels: Vec<String>,
    config: ModelConfig,
}

impl DetectModels {
    /// Verifies and loads every model detect needs (and the ONNX Runtime library). Errors
    /// name the missing or corrupt file and `models/fetch.sh`.
    pub fn load(store: &ModelStore, config: ModelConfig) -> Result<Self> {
        store.verify(&MODELS)?;
        let runtime = Runtime::init_from_env(store.root())?;
        let pool = PoolConfig {
            sessions: config.sessions.max(1),
            intra_threads: config.intra_threads.max(1),
            ..Default::default()
        };
        let labels = load_labels(store)?;
        let nsfw = Net::load(store, runtime, "nsfw", pool)?;
        let face = Net::load(store, runtime, "face-detect", pool)?;
        Ok(Self {
            nsfw,
            face_detector: FaceDetector::new(face.pool().clone()),
            face,
            onet: Net::load(store, runtime, "mtcnn-onet", pool)?,
            ocr: Net::load(store, runtime, "ocr-det", pool)?,
            embed: Net::load(store, runtime, "embed", pool)?,
            labels,
            config,
        })
    }

    /// The name of ImageNet class `index` (its first synonym).
    pub fn label(&self, index: usize) -> &str {
        self.labels.get(index).map_or("?", String::as_str)
    }

    /// open-nsfw's probability that the image is not safe for work: resize to 256×256,
    /// centre crop 224 (the package's JPEG round trip is skipped).
    pub fn nsfw(&self, img: &RgbImage) -> Result<f32> {
        let resized = preprocess::resize_rgb(img, 256, 256, Filter::Bilinear)?;
        let crop = preprocess::centre_crop(&resized, 224, 224);
        let out = self.nsfw.run(self.nsfw.tensor(&crop))?;
        let p = output(&out, "nsfw", "outputs")?;
        p.iter().nth(1).copied().ok_or_else(|| bad("nsfw", format!("outputs has shape {:?}", p.shape())))
    }

    /// Faces: the RFB-320 detector on the whole image (320×240), non-maximum suppression,
    /// then every candidate scoring at least `min_score` is checked by MTCNN's output net on
    /// the square crop around it (one batch).
    pub fn faces(&self, img: &RgbImage, min_score: f32) -> Result<Vec<Face>> {
        let small = preprocess::resize_rgb(img, 320, 240, Filter::Bilinear)?;
        let (s, b) = self.face_detector.run(self.face.tensor(&small)).map_err(|e| vision_error("face-detect", e))?;
        let n = s.len() / 2;
        if b.len() != n * 4 {
            return Err(bad("face-detect", format!("{} scores and {} box values disagree", s.len(), b.len())));
        }
        let candidates: Vec<Scored<NormBox>> = (0..n)
            .filter(|&i| s[2 * i + 1] >= FACE_CANDIDATE_SCORE && s[2 * i + 1].is_finite())
            .map(|i| Scored {
                bbox: NormBox { x0: b[4 * i], y0: b[4 * i + 1], x1: b[4 * i + 2], y1: b[4 * i + 3] }.clamped(),
                score: s[2 * i + 1],
            })
            .collect();
        let kept: Vec<Scored<NormBox>> = sightline_vision::nms(candidates, MAX_FACES, |k, c| k.iou(c) <= FACE_NMS_IOU)
            .into_iter()
            .filter(|c| c.score >= min_score)
            .collect();
        if kept.is_empty() {
            return Ok(Vec::new());
        }
        let chips = kept.iter().map(|c| self.onet.tensor(&square_chip(img, &c.bbox, 48))).collect::<Vec<_>>();
        let out = self.onet.run(preprocess::stack_batch(&chips)?)?;
        let prob = output(&out, "mtcnn-onet", "softmax_2")?;
        let p: Vec<f32> = prob.iter().copied().collect();
        if p.len() != kept.len() * 2 {
            return Err(bad("mtcnn-onet", format!("softmax_2 has shape {:?}", prob.shape())));
        }
        Ok(kept.iter().enumerate().map(|(i, c)| Face { bbox: c.bbox, score: c.score, confirm: p[2 * i + 1] }).collect())
    }

    /// Text lines: the PP-OCR DB detector on the image scaled to `text_side` (longer side,
    /// both sides rounded to multiples of 32), then [`analysis::text_coverage`].
    pub fn text(&self, img: &RgbImage, params: &TextParams) -> Result<TextSummary> {
        Ok(self.text_lines(img, params)?.0)
    }

    /// [`text`](Self::text) and the lines' boxes ([`analysis::text_lines`]).
    pub fn text_lines(&self, img: &RgbImage, params: &TextParams) -> Result<(TextSummary, Vec<NormBox>)> {
        let (w, h) = text_input_size(img.width(), img.height(), self.config.text_side);
        let resized = preprocess::resize_rgb(img, w, h, Filter::Bilinear)?;
        let out = self.ocr.run(self.ocr.tensor(&resized))?;
        let map = output(&out, "ocr-det", "fetch_name_0")?;
        let shape = map.shape().to_vec();
        let (mh, mw) = match shape.as_slice() {
            [_, _, mh, mw] => (*mh, *mw),
            other => return Err(bad("ocr-det", format!("unexpected output shape {other:?}"))),
        };
        let values: Vec<f32> = map.iter().copied().collect();
        Ok(analysis::text_lines(&values, mw, mh, params))
    }

    /// ImageNet classes and the saliency map of the whole image resized to 224×224 (aspect
    /// not kept, so that the map covers the whole image).
    pub fn classify(&self, img: &RgbImage, top: usize) -> Result<Classified> {
        let resized = preprocess::resize_rgb(img, 224, 224, Filter::Bilinear)?;
        let out = self.embed.run(self.embed.tensor(&resized))?;
        let logits: Vec<f32> = output(&out, "embed", "logits")?.iter().copied().collect();
        let sal = output(&out, "embed", "saliency")?;
        let side = sal.shape().last().copied().unwrap_or(0);
        if side == 0 || sal.len() != side * side {
            return Err(bad("embed", format!("saliency has shape {:?}", sal.shape())));
        }
        Ok(Classified { top: top_k(&softmax(&logits), top), saliency: sal.iter().copied().collect(), side })
    }

    /// Times `f` in milliseconds.
    pub fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, f64)> {
        let start = Instant::now();
        let v = f()?;
        Ok((v, start.elapsed().as_secs_f64() * 1000.0))
    }
}

/// The OCR input size for a `w`×`h` image: longer side scaled to `side`, each side rounded to
/// a multiple of 32 (at least 32).
pub fn text_input_size(w: u32, h: u32, side: u32) -> (u32, u32) {
    let scale = f64::from(side) / f64::from(w.max(h).max(1));
    let round32 = |v: u32| ((f64::from(v) * scale / 32.0).round() as u32).max(1) * 32;
    (round32(w), round32(h))
}

/// The `size`×`size` chip of the square around `bbox` (side = the box's longer side, centred
/// on it); parts outside the image are black.
pub fn square_chip(img: &RgbImage, bbox: &NormBox, size: u32) -> RgbImage {
    let (iw, ih) = (img.width() as f32, img.height() as f32);
    let (cx, cy) = ((bbox.x0 + bbox.x1) / 2.0 * iw, (bbox.y0 + bbox.y1) / 2.0 * ih);
    let side = ((bbox.x1 - bbox.x0) * iw).max((bbox.y1 - bbox.y0) * ih).max(1.0);
    let (sx, sy) = (cx - side / 2.0, cy - side / 2.0);
    let mut chip = RgbImage::new(size, size);
    // The part of the square inside the image.
    let x0 = sx.max(0.0).round() as u32;
    let y0 = sy.max(0.0).round() as u32;
    let x1 = ((sx + side).min(iw).round() as u32).min(img.width());
    let y1 = ((sy + side).min(ih).round() as u32).min(img.height());
    if x1 <= x0 || y1 <= y0 {
        return chip;
    }
    let scale = size as f32 / side;
    let dw = (((x1 - x0) as f32 * scale).round() as u32).clamp(1, size);
    let dh = (((y1 - y0) as f32 * scale).round() as u32).clamp(1, size);
    let inside = image::imageops::crop_imm(img, x0, y0, x1 - x0, y1 - y0).to_image();
    if let Ok(resized) = preprocess::resize_rgb(&inside, dw, dh, Filter::Bilinear) {
        let ox = (((x0 as f32 - sx) * scale).round() as i64).clamp(0, i64::from(size - dw));
        let oy = (((y0 as f32 - sy) * scale).round() as i64).clamp(0, i64::from(size - dh));
        image::imageops::replace(&mut chip, &resized, ox, oy);
    }
    chip
}

/// Softmax of logits (numerically stable).
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|&z| (z - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    if sum > 0.0 && sum.is_finite() { exp.iter().map(|e| e / sum).collect() } else { vec![0.0; logits.len()] }
}

/// The `k` largest values with their indices, largest first.
pub fn top_k(p: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut idx: Vec<(usize, f32)> = p.iter().copied().enumerate().collect();
    idx.sort_by(|a, b| b.1.total_cmp(&a.1));
    idx.truncate(k);
    idx
}

fn load_labels(store: &ModelStore) -> Result<Vec<String>> {
    let path = store.asset_path(LABELS)?;
    let text = std::fs::read_to_string(&path).map_err(|e| InferenceError::Io { path: path.clone(), source: e })?;
    let map: std::collections::HashMap<String, String> = serde_json::from_str(&text)
        .map_err(|e| InferenceError::Manifest { path: path.display().to_string(), reason: e.to_string() })?;
    let mut labels = vec![String::new(); map.len()];
    for (k, v) in map {
        if let Ok(i) = k.parse::<usize>()
            && i < labels.len()
        {
            labels[i] = v.split(',').next().unwrap_or("").trim().to_owned();
        }
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_input_is_scaled_to_multiples_of_32() {
        assert_eq!(text_input_size(348, 348, 320), (320, 320));
        assert_eq!(text_input_size(280, 32, 320), (320, 32));
        assert_eq!(text_input_size(640, 480, 320), (320, 256), "240 / 32 = 7.5 rounds up");
        assert_eq!(text_input_size(1986, 1545, 320), (320, 256));
        assert_eq!(text_input_size(10, 4000, 320), (32, 320));
    }

    #[test]
    fn softmax_and_top_k() {
        let p = softmax(&[1.0, 3.0, 2.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        let top = top_k(&p, 2);
        assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![1, 2]);
        assert!(softmax(&[f32::NAN]).iter().all(|&v| v == 0.0));
    }

    #[test]
    fn square_chips_are_centred_and_padded() {
        // A 100×50 image, left half red, right half blue.
        let img =
            RgbImage::from_fn(100, 50, |x, _| if x < 50 { image::Rgb([255, 0, 0]) } else { image::Rgb([0, 0, 255]) });
        // The box of the left half: the square is 50×50 and fits.
        let chip = square_chip(&img, &NormBox { x0: 0.0, y0: 0.0, x1: 0.5, y1: 1.0 }, 48);
        assert_eq!((chip.width(), chip.height()), (48, 48));
        assert_eq!(chip.get_pixel(24, 24).0, [255, 0, 0]);
        // A tall box at the left edge: its square sticks out on the left, which is black.
        let chip = square_chip(&img, &NormBox { x0: 0.0, y0: 0.0, x1: 0.1, y1: 1.0 }, 48);
        assert_eq!(chip.get_pixel(2, 24).0, [0, 0, 0]);
        assert_eq!(chip.get_pixel(40, 24).0, [255, 0, 0]);
    }
}

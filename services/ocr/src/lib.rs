//! The OCR stage: Chinese and English text with PP-OCR models (detection, 0°/180° orientation,
//! recognition) run through ONNX Runtime, with RapidOCR's pre- and post-processing
//! re-implemented so that the results match it, and price-tag fields (价签) beside the lines.
//!
//! Per image the stage stores `annotations.ocr = {"lines": [{"text", "score", "box"}],
//! "prices": [...], "product": ...}` (lines in reading order, boxes as four corners in image
//! pixels) and forwards the task. An image without text gives no lines; an image that does not
//! decode is dead-lettered with the reason. See `docs/ocr.md`.

pub mod det;
pub mod engine;
pub mod load;
pub mod price;
pub mod rec;

/// The OpenCV-exact image operations and DB geometry live in `sightline-vision` (re-exported:
/// the stage's API speaks [`cv::Bgr`]).
pub use sightline_vision::{cv, geometry};

use std::sync::Arc;

use async_trait::async_trait;
use sightline_imaging::{ImageError, Limits};
use sightline_inference::{ModelStore, Models, Runtime};
use sightline_messages::ImageTask;
use sightline_runtime::{Ctx, Effect, ImageStage, StageError};
use tracing::debug;

pub use engine::{EngineOptions, OcrConfig, OcrEngine, OcrError, TextLine, Timings};
pub use price::{Price, PriceTag};

/// The stage name.
pub const NAME: &str = "ocr";

/// What OCR finds on one image (the stage's annotation and the CLI's JSON), typed in the
/// message contract.
pub type OcrOutput = sightline_messages::annotations::OcrOut;

/// Why one image could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The bytes are not a usable image (permanent).
    #[error("{0}")]
    Image(#[from] ImageError),
    /// The engine failed.
    #[error("{0}")]
    Ocr(#[from] OcrError),
}

/// Decodes `bytes` under `limits`, applies the EXIF orientation and converts to BGR as
/// RapidOCR does.
pub fn decode(bytes: &[u8], name: Option<&str>, limits: &Limits) -> Result<cv::Bgr, ImageError> {
    let (_, mut img) = sightline_imaging::decode(bytes, name, limits)?;
    load::apply_orientation(&mut img, bytes);
    Ok(load::to_bgr(&img))
}

impl OcrEngine {
    /// Decodes and reads one encoded image (blocking).
    pub fn read_bytes(
        &self,
        bytes: &[u8],
        name: Option<&str>,
        limits: &Limits,
    ) -> Result<(OcrOutput, Timings), ReadError> {
        let img = decode(bytes, name, limits)?;
        let (lines, timings) = self.recognize(&img)?;
        let tag = price::extract(&lines);
        Ok((OcrOutput { lines, prices: tag.prices, product: tag.product }, timings))
    }
}

/// OCR options (flags with environment variables).
#[derive(Debug, Clone, clap::Args)]
pub struct OcrArgs {
    /// Manifest name of the text detector.
    #[arg(long, env = "OCR_DET_MODEL", default_value = "ocr-det")]
    pub det_model: String,
    /// Manifest name of the recogniser.
    #[arg(long, env = "OCR_REC_MODEL", default_value = "ocr-rec")]
    pub rec_model: String,
    /// Manifest name of the orientation classifier.
    #[arg(long, env = "OCR_CLS_MODEL", default_value = "ocr-cls")]
    pub cls_model: String,
    /// Sessions per model (images recognised at once).
    #[arg(long, env = "OCR_SESSIONS", default_value_t = 1)]
    pub sessions: usize,
    /// Threads for one image (0: one per core, at most 4).
    #[arg(long, env = "OCR_THREADS", default_value_t = 0)]
    pub threads: usize,
    /// Line batches of one image recognised side by side, each with threads / N threads
    /// (0: 2 when there are 2 threads or more).
    #[arg(long, env = "OCR_LINE_WORKERS", default_value_t = 0)]
    pub line_workers: usize,
    /// Detector input limit in pixels (see --limit-type).
    #[arg(long, env = "OCR_LIMIT_SIDE", default_value_t = 640)]
    pub limit_side: u32,
    /// `min`: scale up so the shorter side reaches the limit (RapidOCR's rule, which it uses
    /// with 736); `max`: only scale down so the longer side fits (faster on large photos, but
    /// small print is missed).
    #[arg(long, env = "OCR_LIMIT_TYPE", default_value = "min")]
    pub limit_type: det::LimitType,
    /// Images wider than this many heights are padded with black rows before detection.
    #[arg(long, env = "OCR_WIDTH_HEIGHT_RATIO", default_value_t = 4.0)]
    pub width_height_ratio: f64,
    /// Larger images are first scaled down to this longest side.
    #[arg(long, env = "OCR_MAX_SIDE", default_value_t = 2000)]
    pub max_side: u32,
    /// Run the 0°/180° line classifier.
    #[arg(long, env = "OCR_USE_CLS", default_value_t = true, action = clap::ArgAction::Set)]
    pub use_cls: bool,
    /// Turn a line when the classifier's p(180°) exceeds this.
    #[arg(long, env = "OCR_CLS_THRESH", default_value_t = 0.98)]
    pub cls_thresh: f32,
    /// Drop lines recognised with a lower score.
    #[arg(long, env = "OCR_TEXT_SCORE", default_value_t = 0.5)]
    pub text_score: f64,
    /// Minimum mean text probability of a detected box.
    #[arg(long, env = "OCR_BOX_THRESH", default_value_t = 0.5)]
    pub box_thresh: f64,
    /// Box expansion of the DB detector.
    #[arg(long, env = "OCR_UNCLIP_RATIO", default_value_t = 1.6)]
    pub unclip_ratio: f64,
    /// Largest image accepted, in bytes.
    #[arg(long, env = "OCR_MAX_BYTES", default_value_t = 50 * 1024 * 1024)]
    pub max_bytes: u64,
    /// Largest pixel count accepted.
    #[arg(long, env = "OCR_MAX_PIXELS", default_value_t = 64_000_000)]
    pub max_pixels: u64,
}

impl Default for OcrArgs {
    fn default() -> Self {
        let c = OcrConfig::default();
        Self {
            det_model: "ocr-det".into(),
            rec_model: "ocr-rec".into(),
            cls_model: "ocr-cls".into(),
            sessions: 1,
            threads: 0,
            line_workers: 0,
            limit_side: c.det.limit_side_len,
            limit_type: c.det.limit_type,
            width_height_ratio: c.width_height_ratio,
            max_side: c.max_side_len,
            use_cls: c.use_cls,
            cls_thresh: c.cls_thresh,
            text_score: c.text_score,
            box_thresh: c.det.box_thresh,
            unclip_ratio: c.det.unclip_ratio,
            max_bytes: 50 * 1024 * 1024,
            max_pixels: 64_000_000,
        }
    }
}

impl OcrArgs {
    /// The pipeline configuration these options describe.
    pub fn config(&self) -> OcrConfig {
        let d = OcrConfig::default();
        OcrConfig {
            max_side_len: self.max_side,
            width_height_ratio: self.width_height_ratio,
            use_cls: self.use_cls,
            cls_thresh: self.cls_thresh,
            text_score: self.text_score,
            det: det::DetConfig {
                limit_side_len: self.limit_side,
                limit_type: self.limit_type,
                box_thresh: self.box_thresh,
                unclip_ratio: self.unclip_ratio,
                ..d.det
            },
            ..d
        }
    }

    /// Models, sessions and threads.
    pub fn engine_options(&self) -> EngineOptions {
        let d = EngineOptions::default();
        let threads = if self.threads == 0 { d.threads } else { self.threads };
        EngineOptions {
            det_model: self.det_model.clone(),
            cls_model: self.cls_model.clone(),
            rec_model: self.rec_model.clone(),
            sessions: self.sessions.max(1),
            threads,
            line_workers: if self.line_workers == 0 { threads.min(2) } else { self.line_workers },
        }
    }

    /// Decoding limits.
    pub fn limits(&self) -> Limits {
        Limits { max_bytes: self.max_bytes, max_pixels: self.max_pixels, ..Limits::default() }
    }
}

/// The models the default [`OcrArgs`] name (manifest names), for callers that verify them up
/// front.
pub const MODELS: [&str; 3] = ["ocr-det", "ocr-cls", "ocr-rec"];

/// The OCR stage. The models load on the first readiness check (or message), on the blocking
/// pool; until they load, `ready()` says why (the missing or corrupt file and `models/fetch.sh`).
pub struct Ocr {
    engine: Models<OcrEngine>,
    limits: Limits,
}

impl std::fmt::Debug for Ocr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ocr").field("engine", &self.engine).finish()
    }
}

impl Ocr {
    /// The stage over `store` (shared with the other model stages of the process), with the
    /// models and settings `args` name. Loads nothing yet.
    pub fn new(args: &OcrArgs, store: Arc<ModelStore>) -> Self {
        let (options, config) = (args.engine_options(), args.config());
        let engine = Models::new("ocr models", move || {
            let models = [options.det_model.as_str(), options.cls_model.as_str(), options.rec_model.as_str()];
            // Verified before the runtime loads, so a missing model is what the error names.
            store.verify(&models)?;
            let runtime = Runtime::init_from_env(store.root())?;
            let engine = OcrEngine::load(&store, runtime, &options, config.clone())?;
            tracing::info!(stage = NAME, models = ?models, "models loaded");
            Ok::<_, OcrError>(engine)
        });
        Self { engine, limits: args.limits() }
    }

    /// A stage over an already loaded engine.
    pub fn with_engine(engine: Arc<OcrEngine>, limits: Limits) -> Self {
        Self { engine: Models::loaded("ocr models", engine), limits }
    }
}

#[async_trait]
impl ImageStage for Ocr {
    const NAME: &'static str = NAME;

    async fn handle_image(&self, ctx: &Ctx, mut task: ImageTask) -> Result<Vec<Effect>, StageError> {
        let engine = self.engine.load().await.map_err(StageError::transient)?;
        let bytes = ctx.blob.get(&task.key).await?;
        let limits = self.limits;
        let name = task.name.clone();
        let result = ctx.blocking(move || engine.read_bytes(&bytes, Some(&name), &limits)).await?;
        let (output, timings) = result.map_err(|e| match e {
            ReadError::Image(e) => StageError::permanent(e.to_string()),
            ReadError::Ocr(OcrError::Inference(sightline_inference::InferenceError::Task { .. })) => {
                StageError::transient(e.to_string())
            }
            ReadError::Ocr(e) => StageError::permanent(e.to_string()),
        })?;
        debug!(
            item = task.item,
            lines = output.lines.len(),
            prices = output.prices.len(),
            det_ms = timings.det_ms,
            rec_ms = timings.rec_ms,
            "ocr done"
        );
        task.set_annotation(&output).map_err(|e| StageError::permanent(format!("encode ocr result: {e}")))?;
        Ok(vec![Effect::forward(task, NAME)])
    }

    async fn readiness(&self) -> Result<(), String> {
        self.engine.ready().await
    }
}

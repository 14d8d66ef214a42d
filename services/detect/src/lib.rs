//! The detect stage: per image, a content-moderation score (open-nsfw) for every image, the
//! main subject (a box from EfficientNet-Lite0's class-activation saliency) and noise flags
//! with scores and reasons: dominated by faces (RFB-320 detector, each face confirmed by
//! MTCNN's output net), dominated by text (the PP-OCR DB detector's text lines). Flagged
//! images leave the route as `filtered`; the rest go on with `annotations.detect`.
//!
//! In a store job (`store.camera` set; docs/store.md) a task is a segment of a camera's video
//! instead: [`segment`] detects the people of its frames and stores them for the track stage.
//!
//! Filtering is conservative: thresholds sit well above anything a true product reached on
//! the dev collections, scenes are not filtered (no signal separated them from products; see
//! `docs/detect-embed.md`), and other products are left to clustering.

pub mod analysis;
pub mod models;
pub mod people;
pub mod regions;
pub mod segment;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use image::RgbImage;
use sightline_imaging::Limits;
use sightline_inference::{InferenceError, ModelStore, Models};
use sightline_messages::annotations::DetectOut;
use sightline_messages::options::{LogoMode, applies_noise_filter, logo_mode};
use sightline_messages::{ImageTask, ItemOutcome};
use sightline_runtime::{Ctx, Effect, ImageStage, StageError};
use tracing::debug;

use crate::analysis::{CropParams, NormBox, SaliencySummary, TextParams, TextSummary, Thresholds};
use crate::models::{DetectModels, Face, ModelConfig, Timings};

pub use crate::models::MODELS;

/// The stage name.
pub const NAME: &str = "detect";

/// Version of the `annotations.detect` layout (additive changes keep it).
pub const ANNOTATION_VERSION: u32 = DetectOut::VERSION;

/// Everything detect found about one image: the value of `annotations.detect`, typed in the
/// message contract.
pub type Detection = DetectOut;
pub use sightline_messages::annotations::{ClassScore, FaceBox, FaceSummary, SaliencyStats, TextLines};

/// Detect options (flags with environment variables).
#[derive(Debug, Clone, clap::Args)]
pub struct DetectArgs {
    /// ONNX Runtime sessions per model (concurrent inferences).
    #[arg(long, env = "DETECT_SESSIONS", default_value_t = 1)]
    pub detect_sessions: usize,
    /// Intra-op threads per session.
    #[arg(long, env = "DETECT_THREADS", default_value_t = 1)]
    pub detect_threads: usize,
    /// Longer side of the image the text detector sees (pixels, rounded to multiples of 32).
    #[arg(long, env = "DETECT_TEXT_SIDE", default_value_t = 320)]
    pub detect_text_side: u32,
    /// Flag an image when confirmed faces cover at least this share of it.
    #[arg(long, env = "DETECT_FACE_FRACTION", default_value_t = 0.04)]
    pub detect_face_fraction: f32,
    /// Flag an image when text lines cover at least this share of it.
    #[arg(long, env = "DETECT_TEXT_FRACTION", default_value_t = 0.4)]
    pub detect_text_fraction: f32,
    /// Record flags only: never take an image off its route.
    #[arg(long, env = "DETECT_NO_FILTER", default_value_t = false)]
    pub detect_no_filter: bool,
}

impl Default for DetectArgs {
    fn default() -> Self {
        let t = Thresholds::default();
        let m = ModelConfig::default();
        Self {
            detect_sessions: m.sessions,
            detect_threads: m.intra_threads,
            detect_text_side: m.text_side,
            detect_face_fraction: t.face_fraction,
            detect_text_fraction: t.text_fraction,
            detect_no_filter: false,
        }
    }
}

/// Detect settings.
#[derive(Debug, Clone, Copy)]
pub struct DetectConfig {
    /// How the models run.
    pub models: ModelConfig,
    /// When an image is noise.
    pub thresholds: Thresholds,
    /// How text lines are found.
    pub text: TextParams,
    /// How the main-subject box is cut.
    pub crop: CropParams,
    /// Take flagged images off the route (else only record the flags).
    pub filter: bool,
    /// Decoding limits.
    pub limits: Limits,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectArgs::default().into()
    }
}

impl From<DetectArgs> for DetectConfig {
    fn from(a: DetectArgs) -> Self {
        Self {
            models: ModelConfig {
                sessions: a.detect_sessions.max(1),
                intra_threads: a.detect_threads.max(1),
                text_side: a.detect_text_side.clamp(32, 4096),
            },
            thresholds: Thresholds {
                face_fraction: a.detect_face_fraction,
                text_fraction: a.detect_text_fraction,
                ..Thresholds::default()
            },
            text: TextParams::default(),
            crop: CropParams::default(),
            filter: !a.detect_no_filter,
            limits: Limits::default(),
        }
    }
}

/// Why an image could not be analysed.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The stored bytes do not decode (permanent).
    #[error("decode image: {0}")]
    Decode(#[from] sightline_imaging::ImageError),
    /// A model failed.
    #[error(transparent)]
    Inference(#[from] InferenceError),
}

impl DetectError {
    /// The handler error: decoding and model input errors are permanent; a failed inference
    /// task may succeed on another attempt.
    pub fn into_stage(self) -> StageError {
        match &self {
            DetectError::Inference(InferenceError::Task { .. }) => StageError::transient(self.to_string()),
            _ => StageError::permanent(self.to_string()),
        }
    }
}

/// At most this many text-line boxes are recorded per image.
pub const MAX_TEXT_BOXES: usize = 20;

/// The models plus the settings: analyses one image.
#[derive(Debug)]
pub struct Analyzer {
    models: DetectModels,
    config: DetectConfig,
}

impl Analyzer {
    /// Loads the models (blocking).
    pub fn load(store: &ModelStore, config: DetectConfig) -> Result<Self, InferenceError> {
        Ok(Self { models: DetectModels::load(store, config.models)?, config })
    }

    /// The settings.
    pub fn config(&self) -> &DetectConfig {
        &self.config
    }

    /// Decodes `bytes` and analyses them (blocking).
    pub fn analyse_bytes(&self, bytes: &[u8], name: &str) -> Result<(Detection, Timings), DetectError> {
        let (_, img) = sightline_imaging::decode(bytes, Some(name), &self.config.limits)?;
        Ok(self.analyse(&img.to_rgb8())?)
    }

    /// Analyses one image (blocking): moderation, faces, text, classes and saliency, flags.
    pub fn analyse(&self, img: &RgbImage) -> Result<(Detection, Timings), InferenceError> {
        let m = &self.models;
        let t = &self.config.thresholds;
        let (nsfw, nsfw_ms) = DetectModels::timed(|| m.nsfw(img))?;
        let (faces, faces_ms) = DetectModels::timed(|| m.faces(img, t.face_score))?;
        let (text, text_ms) = DetectModels::timed(|| m.text_lines(img, &self.config.text))?;
        let start = Instant::now();
        let classified = m.classify(img, 3)?;
        let saliency =
            analysis::saliency_crop(&classified.saliency, classified.side, classified.side, &self.config.crop);
        let saliency_ms = start.elapsed().as_secs_f64() * 1000.0;
        let (w, h) = (img.width(), img.height());
        let detection = self.decide(nsfw, &faces, text, &saliency, &classified.top, w, h);
        Ok((detection, Timings { nsfw_ms, faces_ms, text_ms, saliency_ms }))
    }

    #[allow(clippy::too_many_arguments)] // the measurements of one image
    fn decide(
        &self,
        nsfw: f32,
        faces: &[Face],
        text: (TextSummary, Vec<NormBox>),
        saliency: &SaliencySummary,
        top: &[(usize, f32)],
        width: u32,
        height: u32,
    ) -> Detection {
        let t = &self.config.thresholds;
        let confirmed: Vec<_> = faces.iter().filter(|f| f.confirm >= t.face_confirm).map(|f| f.bbox).collect();
        let fraction = analysis::covered_fraction(&confirmed);
        let (summary, mut line_boxes) = text;
        let flags = analysis::flags(t, confirmed.len(), fraction, &summary);
        line_boxes.sort_by(|a, b| b.area().total_cmp(&a.area()));
        let filtered = (self.config.filter && !flags.is_empty())
            .then(|| flags.iter().map(|f| f.reason.as_str()).collect::<Vec<_>>().join("; "));
        Detection {
            version: ANNOTATION_VERSION,
            nsfw,
            crop: saliency.crop.to_pixels(width, height),
            crop_full: saliency.full,
            faces: FaceSummary {
                count: confirmed.len(),
                fraction,
                boxes: faces
                    .iter()
                    .take(10)
                    .map(|f| FaceBox { bbox: f.bbox.to_pixels(width, height), score: f.score, confirm: f.confirm })
                    .collect(),
            },
            text: TextLines {
                fraction: summary.fraction,
                lines: summary.lines,
                boxes: line_boxes.iter().take(MAX_TEXT_BOXES).map(|b| b.to_pixels(width, height)).collect(),
            },
            imagenet: top
                .iter()
                .map(|&(class, p)| ClassScore { class, label: self.models.label(class).to_owned(), p })
                .collect(),
            saliency: SaliencyStats { area: saliency.salient_area, spread: saliency.spread },
            flags,
            filtered,
            regions: None,
        }
    }
}

/// The detect stage. Models load on the first readiness check (or message), on the blocking
/// pool; until they load, `ready()` says why (the missing or corrupt file and `models/fetch.sh`).
pub struct Detect {
    analyzer: Models<Analyzer>,
    segments: segment::Segments,
}

impl Detect {
    /// The stage over `store` (shared with the other model stages of the process).
    pub fn new(config: DetectConfig, store: Arc<ModelStore>) -> Self {
        let models = Arc::clone(&store);
        let analyzer = Models::new("detect models", move || {
            let a = Analyzer::load(&models, config)?;
            tracing::info!(stage = NAME, models = ?MODELS, "models loaded");
            Ok::<_, InferenceError>(a)
        });
        let segments = segment::Segments::new(store, config.models.sessions);
        Self { analyzer, segments }
    }

    /// The analyser, loading the models if needed. The load runs to completion on the
    /// blocking pool even if the caller gives up waiting.
    pub async fn analyzer(&self) -> Result<Arc<Analyzer>, String> {
        self.analyzer.load().await
    }
}

#[async_trait]
impl ImageStage for Detect {
    const NAME: &'static str = NAME;

    async fn handle_image(&self, ctx: &Ctx, mut task: ImageTask) -> Result<Vec<Effect>, StageError> {
        if sightline_messages::annotations::SegmentIn::is_on(&task).map_err(|e| StageError::permanent(e.to_string()))? {
            return self.segments.handle(ctx, task).await;
        }
        let analyzer = self.analyzer().await.map_err(StageError::transient)?;
        let bytes = ctx.blob.get(&task.key).await?;
        let name = task.name.clone();
        let (detection, timings) =
            ctx.blocking(move || analyzer.analyse_bytes(&bytes, &name)).await?.map_err(DetectError::into_stage)?;
        debug!(
            item = task.item,
            nsfw = detection.nsfw,
            faces = detection.faces.count,
            text = detection.text.fraction,
            filtered = detection.filtered.is_some(),
            timings = ?timings,
            "analysed"
        );
        let mut detection = detection;
        if logo_mode(&task) == Some(LogoMode::Query) {
            // A logo search embeds these regions of the photo (embed stage; docs/logos.md).
            let p = regions::RegionParams::default();
            detection.regions = Some(regions::regions_of(&detection, task.width, task.height, &p));
        }
        // What a user adds to a catalogue or searches with is never noise (the job kind's
        // decision, sightline_messages::options); the flags stay recorded.
        if !applies_noise_filter(&task) {
            detection.filtered = None;
        }
        let filtered = detection.filtered.clone();
        task.set_annotation(&detection).map_err(|e| StageError::permanent(e.to_string()))?;
        match filtered {
            Some(reason) => Ok(vec![Effect::leave(&task, ItemOutcome::Filtered, NAME, Some(reason))]),
            None => Ok(vec![Effect::forward(task, NAME)]),
        }
    }

    async fn readiness(&self) -> Result<(), String> {
        self.analyzer.ready().await
    }
}

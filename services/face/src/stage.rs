//! The `face` pipeline stage.
//!
//! For each `image.task` it reads the image, analyses every face on the blocking pool, gives
//! each face a person id within the job, stores the faces (with embeddings) under
//! `jobs/<job>/faces/items/<item>.json`, adds `annotations.face` to the task and forwards it.
//!
//! Persons across the images of a job come from [`PersonAssigner`] (see `gallery`).

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sightline_imaging::Limits;
use sightline_inference::{ModelStore, Models, Runtime};
use sightline_messages::ImageTask;
use sightline_messages::annotations::FaceOut;
use sightline_runtime::{Ctx, Effect, ImageStage, StageError};
use tracing::debug;
use uuid::Uuid;

use crate::engine::{EngineConfig, FaceEngine, MODELS};
use crate::gallery::PersonAssigner;
use crate::output::{FaceJson, face_json};
use crate::persons::PersonConfig;
use crate::{FaceError, NAME, decode_rgb};

/// Face stage options (flags with environment variables).
#[derive(Debug, Clone, clap::Args)]
pub struct FaceArgs {
    /// Sessions per model (concurrent inferences).
    #[arg(long, env = "FACE_SESSIONS", default_value_t = 1)]
    pub face_sessions: usize,
    /// Smallest face width (pixels) the detector's tiling must find.
    #[arg(long, env = "FACE_MIN_SIZE", default_value_t = 20.0)]
    pub face_min_size: f32,
    /// Lowest detector probability kept.
    #[arg(long, env = "FACE_SCORE_THRESHOLD", default_value_t = 0.8)]
    pub face_score_threshold: f32,
    /// Largest |yaw| (degrees) of a frontal face.
    #[arg(long, env = "FACE_FRONTAL_MAX_YAW", default_value_t = 30.0)]
    pub face_frontal_max_yaw: f32,
    /// Largest |pitch| (degrees) of a frontal face.
    #[arg(long, env = "FACE_FRONTAL_MAX_PITCH", default_value_t = 25.0)]
    pub face_frontal_max_pitch: f32,
    /// Cosine similarity at or above which two frontal faces are one person.
    #[arg(long, env = "FACE_PERSON_LINK", default_value_t = 0.5)]
    pub face_person_link: f32,
    /// Cosine similarity at or above which a non-frontal face joins its nearest frontal face's person.
    #[arg(long, env = "FACE_PERSON_ATTACH", default_value_t = 0.5)]
    pub face_person_attach: f32,
    /// At most this many faces per image are analysed (best scores first).
    #[arg(long, env = "FACE_MAX_FACES", default_value_t = 64)]
    pub face_max_faces: usize,
    /// Largest pixel count decoded (decompression-bomb guard).
    #[arg(long, env = "FACE_MAX_PIXELS", default_value_t = 64_000_000)]
    pub face_max_pixels: u64,
}

impl Default for FaceArgs {
    fn default() -> Self {
        let e = EngineConfig::default();
        let p = PersonConfig::default();
        Self {
            face_sessions: 1,
            face_min_size: e.detect.min_face,
            face_score_threshold: e.detect.score_threshold,
            face_frontal_max_yaw: e.frontal_max_yaw,
            face_frontal_max_pitch: e.frontal_max_pitch,
            face_person_link: p.link,
            face_person_attach: p.attach,
            face_max_faces: e.max_faces,
            face_max_pixels: Limits::default().max_pixels,
        }
    }
}

impl FaceArgs {
    /// The engine settings these options describe.
    pub fn engine_config(&self) -> EngineConfig {
        let mut c = EngineConfig::default();
        c.detect.min_face = self.face_min_size.max(1.0);
        c.detect.score_threshold = self.face_score_threshold;
        c.frontal_max_yaw = self.face_frontal_max_yaw;
        c.frontal_max_pitch = self.face_frontal_max_pitch;
        c.max_faces = self.face_max_faces;
        c
    }

    /// The person rule's thresholds.
    pub fn person_config(&self) -> PersonConfig {
        PersonConfig { link: self.face_person_link, attach: self.face_person_attach }
    }

    /// Decoding limits.
    pub fn limits(&self) -> Limits {
        Limits { max_pixels: self.face_max_pixels, ..Limits::default() }
    }
}

/// Where the stage keeps a job's face data.
pub fn faces_prefix(job: Uuid) -> String {
    format!("jobs/{job}/faces/")
}

/// The per-item face file (faces with embeddings).
pub fn item_key(job: Uuid, item: u64) -> String {
    format!("jobs/{job}/faces/items/{item:010}.json")
}

/// The stored per-item face file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemFaces {
    /// The image's faces, with embeddings.
    pub faces: Vec<FaceJson>,
}

/// The face stage. The models load on the first readiness check (or message), on the blocking
/// pool; until they load, `ready()` says why (the missing or corrupt file and `models/fetch.sh`).
pub struct FaceStage {
    engine: Models<FaceEngine>,
    limits: Limits,
    persons: PersonAssigner,
    segments: crate::segment::Segments,
}

impl std::fmt::Debug for FaceStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaceStage")
            .field("engine", &self.engine)
            .field("persons", &self.persons)
            .finish_non_exhaustive()
    }
}

fn stage_error(e: FaceError) -> StageError {
    if e.is_transient() { StageError::transient(e.to_string()) } else { StageError::permanent(e.to_string()) }
}

impl FaceStage {
    /// A stage over a loaded engine.
    pub fn new(engine: Arc<FaceEngine>, persons: PersonConfig, limits: Limits) -> Self {
        Self {
            engine: Models::loaded("face models", engine),
            limits,
            persons: PersonAssigner::new(persons),
            segments: Default::default(),
        }
    }

    /// The stage over `store` (shared with the other model stages of the process), with the
    /// settings `args` name. Loads nothing yet.
    pub fn from_store(args: &FaceArgs, store: Arc<ModelStore>) -> Self {
        let (sessions, config) = (args.face_sessions, args.engine_config());
        let engine = Models::new("face models", move || {
            // Verified before the runtime loads, so a missing model is what the error names.
            store.verify(&MODELS)?;
            let runtime = Runtime::init_from_env(store.root())?;
            let engine = FaceEngine::load(&store, runtime, sessions, config)?;
            tracing::info!(stage = NAME, models = ?MODELS, "models loaded");
            Ok::<_, FaceError>(engine)
        });
        Self {
            engine,
            limits: args.limits(),
            persons: PersonAssigner::new(args.person_config()),
            segments: Default::default(),
        }
    }
}

#[async_trait]
impl ImageStage for FaceStage {
    const NAME: &'static str = NAME;

    async fn handle_image(&self, ctx: &Ctx, mut task: ImageTask) -> Result<Vec<Effect>, StageError> {
        let engine = self.engine.load().await.map_err(StageError::transient)?;
        if sightline_messages::annotations::SegmentIn::is_on(&task).map_err(|e| StageError::permanent(e.to_string()))? {
            // A store job's video segment (docs/store.md): the heads of its people.
            return self.segments.handle(ctx, engine, task).await;
        }
        let bytes = ctx.blob.get(&task.key).await?;
        let (limits, name) = (self.limits, task.name.clone());
        let started = Instant::now();
        let faces = ctx
            .blocking(move || {
                let img = decode_rgb(&bytes, Some(&name), &limits)?;
                engine.analyse(&img)
            })
            .await?
            .map_err(stage_error)?;
        let pairs: Vec<(&[f32], bool)> = faces.iter().map(|f| (f.embedding.as_slice(), f.frontal)).collect();
        let persons = self.persons.assign(ctx, task.job_id, task.item, &pairs).await?;
        let full: Vec<FaceJson> = faces.iter().zip(&persons).map(|(f, p)| face_json(f, *p, true)).collect();
        let mut embeddings = None;
        if !faces.is_empty() {
            let key = item_key(task.job_id, task.item);
            let bytes = serde_json::to_vec(&ItemFaces { faces: full.clone() })
                .map_err(|e| StageError::permanent(format!("encode faces: {e}")))?;
            ctx.blob.put(&key, Bytes::from(bytes)).await?;
            embeddings = Some(key);
        }
        let compact: Vec<FaceJson> = full.into_iter().map(|f| FaceJson { embedding: None, ..f }).collect();
        debug!(item = task.item, faces = compact.len(), ms = started.elapsed().as_millis() as u64, "faces analysed");
        let out = FaceOut { count: compact.len(), faces: compact, embeddings };
        task.set_annotation(&out).map_err(|e| StageError::permanent(e.to_string()))?;
        Ok(vec![Effect::forward(task, NAME)])
    }
    async fn readiness(&self) -> Result<(), String> {
        self.engine.ready().await
    }
}

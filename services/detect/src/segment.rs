//! The store route's detect step: a task carrying `annotations.segment` is one window of a
//! camera's video (its `key` the video's object). Its frames are decoded and their people
//! detected ([`crate::people`]); the detections go to storage as JSON
//! ([`detections_key`]) and the task goes on to track with `annotations.people`.
//!
//! A replica keeps the last video it fetched in a temporary file, so the segments of one video
//! that reach the same replica fetch it once. Faces are looked at by the next stage, face, which
//! holds the face models.

use std::sync::Arc;

use bytes::Bytes;
use sightline_inference::{ModelStore, Models, Runtime};
use sightline_messages::ImageTask;
use sightline_messages::annotations::{PeopleOut, SegmentIn};
use sightline_messages::options::{JobOptions, STORE_CAMERA};
use sightline_runtime::{Ctx, Effect, StageError};
use sightline_tracking::camera::Camera;
use sightline_video::{VideoError, Window};
use sightline_vision::people::{PersonConfig, PersonDetector};
use tracing::info;
use uuid::Uuid;

use crate::NAME;
use crate::people::{detect_video_window, store_config};

/// Where detect stores the people of segment `index` of a job's video `item`.
pub fn detections_key(job: Uuid, item: u64, index: u32) -> String {
    format!("jobs/{job}/store/{item:010}/detections/{index:06}.json")
}

/// The segment handler of the detect stage.
pub struct Segments {
    detector: Models<PersonDetector>,
    threads: usize,
    video: sightline_runtime::local_copy::LastObject,
}

impl Segments {
    /// The handler; the person detector loads on the first segment (not at readiness: a
    /// detect worker that never sees a store job does not need it).
    pub fn new(store: Arc<ModelStore>, sessions: usize) -> Self {
        let threads = sessions.max(1);
        let detector = Models::new("person detector", move || -> Result<PersonDetector, String> {
            let runtime = Runtime::init_from_env(store.root()).map_err(|e| e.to_string())?;
            let d =
                PersonDetector::load(&store, runtime, threads, PersonConfig::default()).map_err(|e| e.to_string())?;
            info!(stage = NAME, model = sightline_vision::people::MODEL, "person detector loaded");
            Ok(d)
        });
        Self { detector, threads, video: Default::default() }
    }

    /// Detects the people of the segment, stores them and forwards the task.
    pub async fn handle(&self, ctx: &Ctx, mut task: ImageTask) -> Result<Vec<Effect>, StageError> {
        let seg = task
            .annotation::<SegmentIn>()
            .map_err(|e| StageError::permanent(e.to_string()))?
            .ok_or_else(|| StageError::permanent("not a video segment"))?;
        let camera = Camera::from_toml_str(JobOptions::of(&task).get(STORE_CAMERA).unwrap_or_default())
            .map_err(|e| StageError::permanent(format!("camera file: {e}")))?;
        let config = store_config(camera.tiles, seg.fps);
        let detector = self.detector.load().await.map_err(StageError::transient)?;
        let file = self.video.file(ctx, &task.key, &task.sha256).await?;
        let threads = self.threads;
        let window = Window { start_s: seg.start_s, duration_s: (seg.index + 1 < seg.count).then_some(seg.duration_s) };
        let (fps, offset) = (seg.fps, seg.offset_s);
        let detected = ctx
            .blocking(move || {
                detect_video_window(&detector, &config, &file, window, fps, offset, threads, None, |_| {})
            })
            .await?;
        let detections = match detected {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => return Err(StageError::transient(format!("person detector: {e}"))),
            Err(e @ (VideoError::MissingTool(_) | VideoError::Io { .. })) => {
                return Err(StageError::transient(e.to_string()));
            }
            Err(e) => return Err(StageError::permanent(e.to_string())),
        };
        let key = detections_key(task.job_id, task.item, seg.index);
        let json =
            serde_json::to_vec(&detections).map_err(|e| StageError::permanent(format!("encode detections: {e}")))?;
        ctx.blob.put(&key, Bytes::from(json)).await?;
        let boxes = detections.frames.iter().map(|f| f.people.len()).sum::<usize>();
        info!(
            item = task.item,
            segment = seg.index,
            frames = detections.frames.len(),
            boxes,
            error = detections.error.as_deref().unwrap_or(""),
            "segment detected"
        );
        let out = PeopleOut {
            version: PeopleOut::VERSION,
            key,
            frames: u32::try_from(detections.frames.len()).unwrap_or(u32::MAX),
            boxes: u32::try_from(boxes).unwrap_or(u32::MAX),
        };
        task.set_annotation(&out).map_err(|e| StageError::permanent(e.to_string()))?;
        Ok(vec![Effect::forward(task, NAME)])
    }
}

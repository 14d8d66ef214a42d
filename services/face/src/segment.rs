//! The store route's face step (`ingest → detect → face → track`, docs/store.md): a task
//! carrying `annotations.segment` is one window of a camera's video, and detect has stored its
//! people (`annotations.people`). The window's frames are decoded again (the same frames: the
//! same decoder, window and rate), the head of each person the rule picks
//! (`sightline_tracking::segments::face_due`) goes through the face models, and the detections
//! with their face looks are stored next to detect's; the task goes on to track pointing at
//! them. It is the embedded `sightline store`'s face look, done by the stage that holds the
//! face models.

use std::sync::Arc;

use bytes::Bytes;
use image::RgbImage;
use sightline_messages::ImageTask;
use sightline_messages::annotations::{PeopleOut, SegmentIn};
use sightline_runtime::{Ctx, Effect, StageError};
use sightline_tracking::segments::{FaceLook, SegmentDetections, face_due, head_region};
use sightline_video::{Frames, VideoError, Window};
use tracing::info;

use crate::NAME;
use crate::engine::FaceEngine;

/// The largest face in the head region of `person`'s box, as a face look.
pub fn face_look(engine: &FaceEngine, img: &RgbImage, person: &sightline_tracking::geometry::BBox) -> Option<FaceLook> {
    let (x, y, w, h) = head_region(person, img.width(), img.height())?;
    let crop = image::imageops::crop_imm(img, x, y, w, h).to_image();
    let f = engine.analyse(&crop).ok()?.into_iter().max_by(|a, b| a.bbox.area().total_cmp(&b.bbox.area()))?;
    Some(FaceLook { age: f.age, male: f.male_probability, frontal: f.frontal, score: f.score, embedding: f.embedding })
}

/// Adds face looks to `detections` from `frames`, the same frames in the same order.
pub fn look_at_heads(
    engine: &FaceEngine,
    detections: &mut SegmentDetections,
    frames: impl Iterator<Item = Result<RgbImage, VideoError>>,
) -> Result<(), String> {
    for (i, (frame, img)) in detections.frames.iter_mut().zip(frames).enumerate() {
        let img = img.map_err(|e| e.to_string())?;
        let i = i as u64;
        if frame.people.iter().any(|p| face_due(i, p)) {
            frame.faces = frame
                .people
                .iter()
                .map(|p| face_due(i, p).then(|| face_look(engine, &img, &p.bbox)).flatten())
                .collect();
        }
    }
    detections.faces_analysed = true;
    Ok(())
}

/// Where the face step stores a segment's detections with their face looks.
fn faces_key(people_key: &str) -> String {
    match people_key.strip_suffix(".json") {
        Some(stem) => format!("{stem}.faces.json"),
        None => format!("{people_key}.faces"),
    }
}

/// The segment handler of the face stage.
#[derive(Default)]
pub struct Segments {
    video: sightline_runtime::local_copy::LastObject,
}

impl std::fmt::Debug for Segments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segments").finish_non_exhaustive()
    }
}

impl Segments {
    /// Looks at the heads of the segment's people, stores the result and forwards the task.
    pub async fn handle(
        &self,
        ctx: &Ctx,
        engine: Arc<FaceEngine>,
        mut task: ImageTask,
    ) -> Result<Vec<Effect>, StageError> {
        let permanent = |e: String| StageError::permanent(e);
        let seg = task
            .annotation::<SegmentIn>()
            .map_err(|e| permanent(e.to_string()))?
            .ok_or_else(|| permanent("not a video segment".into()))?;
        let people = task
            .annotation::<PeopleOut>()
            .map_err(|e| permanent(e.to_string()))?
            .ok_or_else(|| permanent("no annotations.people: detect must come before face on a store route".into()))?;
        let bytes = ctx.blob.get(&people.key).await?;
        let mut detections: SegmentDetections =
            serde_json::from_slice(&bytes).map_err(|e| permanent(format!("detections {}: {e}", people.key)))?;
        let file = self.video.file(ctx, &task.key, &task.sha256).await?;
        let window = Window { start_s: seg.start_s, duration_s: (seg.index + 1 < seg.count).then_some(seg.duration_s) };
        let fps = seg.fps;
        let detections = ctx
            .blocking(move || -> Result<SegmentDetections, String> {
                let frames = Frames::open(&file, fps, window).map_err(|e| e.to_string())?;
                // Frames past a decoding fault were not detected either: zip stops at the shorter.
                look_at_heads(&engine, &mut detections, frames.map_while(Result::ok).map(|f| Ok(f.image)))?;
                Ok(detections)
            })
            .await?
            .map_err(|e| StageError::transient(format!("face looks: {e}")))?;
        let looks = detections.frames.iter().flat_map(|f| &f.faces).filter(|l| l.is_some()).count();
        let key = faces_key(&people.key);
        let json = serde_json::to_vec(&detections).map_err(|e| permanent(format!("encode detections: {e}")))?;
        ctx.blob.put(&key, Bytes::from(json)).await?;
        info!(item = task.item, segment = seg.index, looks, "segment faces looked at");
        task.set_annotation(&PeopleOut { key, ..people }).map_err(|e| permanent(e.to_string()))?;
        Ok(vec![Effect::forward(task, NAME)])
    }
}

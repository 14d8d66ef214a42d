//! A store job's item is a camera's video: it is probed (`ffprobe`), stored content-addressed
//! like an image, and cut into segments of `store.segment_s` seconds, each one task to detect
//! carrying `annotations.segment` (the video's object is the task's `key`; every segment keeps
//! the video's item, so the job counts videos). The camera file is checked here, once, so a
//! job with a bad one fails at its first step.

use std::io::Write as _;

use bytes::Bytes;
use sightline_messages::IngestItem;
use sightline_messages::Stored;
use sightline_messages::annotations::SegmentIn;
use sightline_messages::options::{JobOptions, STORE_CAMERA};
use sightline_runtime::{Ctx, Effect, StageError};
use sightline_tracking::camera::Camera;
use sightline_tracking::segments::windows;
use sightline_video::VideoError;
use tracing::info;

use crate::NAME;

/// Probes, stores and segments the video of `item`.
pub async fn segments(ctx: &Ctx, item: &IngestItem, bytes: Bytes, max_bytes: u64) -> Result<Vec<Effect>, StageError> {
    let size = bytes.len() as u64;
    if size > max_bytes {
        return Err(StageError::permanent(format!("video too large: {size} bytes, limit {max_bytes}")));
    }
    let options = JobOptions(item.options.clone());
    let camera_text = options.get(STORE_CAMERA).unwrap_or_default();
    let camera = Camera::from_toml_str(camera_text).map_err(|e| StageError::permanent(format!("camera file: {e}")))?;
    let segment_s = options.store_segment_s();
    let probed = bytes.clone();
    let info = ctx
        .blocking(move || -> Result<sightline_video::VideoInfo, VideoError> {
            let mut f = tempfile::Builder::new()
                .prefix("sightline-probe-")
                .tempfile()
                .map_err(|e| VideoError::Io { path: std::env::temp_dir(), source: e })?;
            f.write_all(&probed).map_err(|e| VideoError::Io { path: f.path().to_owned(), source: e })?;
            sightline_video::probe(f.path())
        })
        .await?
        .map_err(|e| match e {
            VideoError::MissingTool(_) => StageError::transient(e.to_string()),
            other => StageError::permanent(other.to_string()),
        })?;
    let (key, sha256, _) = sightline_blob::put_content(ctx.blob.as_ref(), bytes).await?;
    let parts = windows(info.duration_s, segment_s);
    let count = u32::try_from(parts.len()).map_err(|_| StageError::permanent("too many segments"))?;
    info!(item = item.item, name = %item.name, segments = count, duration = ?info.duration_s, codec = %info.codec, "video segmented");
    let stored = Stored { key, sha256, size, probe: (info.codec.clone(), info.width, info.height) };
    let mut effects = Vec::with_capacity(parts.len());
    for (index, (start_s, duration_s)) in parts.into_iter().enumerate() {
        let mut task = item.stored(stored.clone()).map_err(|e| StageError::permanent(e.to_string()))?;
        let duration_s = duration_s.unwrap_or_else(|| info.duration_s.map_or(0.0, |d| (d - start_s).max(0.0)));
        let seg = SegmentIn {
            version: SegmentIn::VERSION,
            index: index as u32,
            count,
            start_s,
            duration_s,
            fps: camera.fps,
            offset_s: 0.0,
        };
        task.set_annotation(&seg).map_err(|e| StageError::permanent(e.to_string()))?;
        effects.push(Effect::forward(task, NAME));
    }
    Ok(effects)
}

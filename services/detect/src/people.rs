//! People in a video segment, for the store route (docs/store.md): the segment's frames are
//! decoded (`sightline-video`), the person detector (`sightline_vision::people`) runs on each,
//! and, when the caller gives a face look, the head of every person tall enough is looked at on
//! every [`FACE_EVERY`]th frame. The result is what the track stage consumes: the same function
//! serves the detect worker and the embedded `sightline store`, so both see the same boxes.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use image::RgbImage;
use sightline_tracking::geometry::BBox;
use sightline_tracking::segments::{FaceLook, FrameDetections, SegmentDetections};
use sightline_tracking::tracker::Detection;
use sightline_video::{Frames, VideoError, Window};
use sightline_vision::VisionError;
use sightline_vision::people::{Person, PersonConfig, PersonDetector};

/// Frames decoded, then detected in parallel, at a time.
const CHUNK: usize = 8;
pub use sightline_tracking::segments::{FACE_EVERY, MIN_PERSON_HEIGHT_FOR_FACE, face_due, head_region};

/// Looks for a face on a person's head: given the frame and the person's box.
pub type FaceLookFn<'a> = &'a (dyn Fn(&RgbImage, &BBox) -> Option<FaceLook> + Sync);

/// Runs `work` on every item with `threads` threads; results in input order.
pub fn parallel_map<T: Sync, R: Send>(items: &[T], threads: usize, work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if threads <= 1 || items.len() <= 1 {
        return items.iter().map(work).collect();
    }
    let next = AtomicUsize::new(0);
    let slots: Vec<std::sync::Mutex<Option<R>>> = items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads.min(items.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = work(item);
                    if let Ok(mut slot) = slots[i].lock() {
                        *slot = Some(r);
                    }
                }
            });
        }
    });
    slots.into_iter().filter_map(|m| m.into_inner().ok().flatten()).collect()
}

/// The tracking crate's detection of a person box.
pub fn detection(p: &Person) -> Detection {
    Detection::new(
        f64::from(p.bbox.x),
        f64::from(p.bbox.y),
        f64::from(p.bbox.w),
        f64::from(p.bbox.h),
        f64::from(p.score),
    )
}

/// The detector settings of the store route for a camera: boxes down to the tracker's low
/// threshold (they continue tracks), the camera's tiling or the detector's default.
pub fn store_config(camera_tiles: Option<u32>, fps: f64) -> PersonConfig {
    let d = PersonConfig::default();
    PersonConfig {
        score_threshold: sightline_tracking::segments::store_tracker(fps).low_thresh as f32,
        tiles: camera_tiles.unwrap_or(d.tiles),
        ..d
    }
}

/// Detects the people of `frames` (time, pixels; a decoding fault ends them) with `threads`
/// detector calls in parallel; with `faces`, looks at the heads of people tall enough on
/// every [`FACE_EVERY`]th frame (counted from the segment's first).
pub fn detect_frames(
    detector: &PersonDetector,
    config: &PersonConfig,
    mut frames: impl Iterator<Item = Result<(f64, RgbImage), VideoError>>,
    threads: usize,
    faces: Option<FaceLookFn<'_>>,
    mut progress: impl FnMut(usize),
) -> Result<SegmentDetections, VisionError> {
    let mut out =
        SegmentDetections { width: 0, height: 0, frames: Vec::new(), error: None, faces_analysed: faces.is_some() };
    let mut index = 0u64;
    let mut ended = false;
    while !ended {
        let mut chunk: Vec<(u64, f64, RgbImage)> = Vec::with_capacity(CHUNK);
        while chunk.len() < CHUNK {
            match frames.next() {
                Some(Ok((t, img))) => {
                    chunk.push((index, t, img));
                    index += 1;
                }
                Some(Err(e @ VideoError::BadFrame { .. })) => {
                    // One bad file of a frame folder: say so, keep going.
                    out.error.get_or_insert_with(|| e.to_string());
                }
                Some(Err(e)) => {
                    out.error = Some(e.to_string());
                    ended = true;
                    break;
                }
                None => {
                    ended = true;
                    break;
                }
            }
        }
        if chunk.is_empty() {
            break;
        }
        let results = parallel_map(&chunk, threads, |(i, t, img)| -> Result<FrameDetections, VisionError> {
            let people: Vec<Detection> = detector.detect_with(img, config)?.iter().map(detection).collect();
            let looks = match faces {
                Some(look) if people.iter().any(|d| face_due(*i, d)) => {
                    people.iter().map(|d| face_due(*i, d).then(|| look(img, &d.bbox)).flatten()).collect()
                }
                _ => Vec::new(),
            };
            Ok(FrameDetections { t: *t, people, faces: looks })
        });
        if out.width == 0 {
            (out.width, out.height) = chunk[0].2.dimensions();
        }
        for r in results {
            out.frames.push(r?);
        }
        progress(chunk.len());
    }
    Ok(out)
}

/// Detects the people of one window of a video file: frames sampled at `fps`, timestamps
/// `offset_s + t` on the camera's timeline. `Err` when the file cannot be opened as a video
/// at all; a fault part-way is the result's `error`, with the frames before it.
#[allow(clippy::too_many_arguments)] // one window of one video, and how to look at it
pub fn detect_video_window(
    detector: &PersonDetector,
    config: &PersonConfig,
    video: &Path,
    window: Window,
    fps: f64,
    offset_s: f64,
    threads: usize,
    faces: Option<FaceLookFn<'_>>,
    progress: impl FnMut(usize),
) -> Result<Result<SegmentDetections, VisionError>, VideoError> {
    let frames = Frames::open(video, fps, window)?;
    Ok(detect_frames(detector, config, frames.map(|r| r.map(|f| (offset_s + f.t, f.image))), threads, faces, progress))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_map_keeps_the_order() {
        let items: Vec<u32> = (0..50).collect();
        assert_eq!(parallel_map(&items, 3, |x| x * 2), items.iter().map(|x| x * 2).collect::<Vec<_>>());
        assert_eq!(parallel_map(&items, 1, |x| x + 1)[49], 50);
    }
}

//! A video as consecutive segments: the unit of work of the distributed store route and of the
//! embedded `sightline store`, so that both run the same steps on the same frames.
//!
//! A video of `duration_s` is cut into windows of `segment_s` ([`windows`]); the frames of a
//! window are decoded and their people detected ([`SegmentDetections`], what detect stores);
//! then [`VideoState::apply`] feeds a segment's frames to the video's [`Analytics`] in order.
//! The state (analytics included) is serialisable: the track stage stores it after every
//! segment, so that whichever replica takes the next segment continues exactly where the last
//! one stopped, and a segment run twice (a replica died before acknowledging) finds its frames
//! already observed and skips them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::analytics::{Analytics, AnalyticsError, Gender, Visitor};
use crate::tracker::{Detection, TrackerConfig};

/// The person detector's operating point (`sightline_vision::people::PersonConfig`'s default
/// score; `sightline count` counts at it): the tracker's "high" threshold, so that a frame's
/// people count and the tracks rest on the same boxes.
pub const DETECTOR_SCORE: f64 = 0.35;

/// The tracker of the store analytics at `fps` sampled frames per second: ByteTrack's
/// thresholds moved to the person detector's scale, and its motion noise to the frame rate.
/// Boxes at [`DETECTOR_SCORE`] or above are "high" (first association, and new tracks from 0.1
/// above it); boxes down to 0.15, which the store route detects too, only continue tracks (the
/// second association: a person half hidden behind another). ByteTrack's velocity noise is
/// per frame at 30 fps: at 5 fps a person's velocity changes six times as much between frames,
/// so the weight is scaled by 30 / fps (never below ByteTrack's own).
pub fn store_tracker(fps: f64) -> TrackerConfig {
    let per_frame = if fps.is_finite() && fps > 0.0 { (30.0 / fps).max(1.0) } else { 1.0 };
    TrackerConfig {
        track_thresh: DETECTOR_SCORE,
        new_track_thresh: DETECTOR_SCORE + 0.1,
        low_thresh: 0.15,
        std_weight_velocity: crate::kalman::STD_WEIGHT_VELOCITY * per_frame,
        ..TrackerConfig::default()
    }
}

/// The windows `(start_s, duration_s)` of a video of `duration_s` cut every `segment_s`; the
/// last is shorter. At least one window (of the whole video) when the duration is unknown or
/// not positive.
pub fn windows(duration_s: Option<f64>, segment_s: f64) -> Vec<(f64, Option<f64>)> {
    let seg = if segment_s.is_finite() && segment_s > 0.0 { segment_s } else { 10.0 };
    let Some(d) = duration_s.filter(|d| d.is_finite() && *d > 0.0) else { return vec![(0.0, None)] };
    let n = (d / seg).ceil().max(1.0) as usize;
    (0..n)
        .map(|i| {
            let start = i as f64 * seg;
            // The last window runs to the end of the file (no duration), so that a container
            // whose stated duration is a little short loses no frame.
            let dur = if i + 1 == n { None } else { Some(seg) };
            (start, dur)
        })
        .collect()
}

/// Heads are looked at on every this-many-th frame of a segment (faces change little in 0.6 s
/// at 5 fps).
pub const FACE_EVERY: u64 = 3;

/// A person box shorter than this has a face under the face detector's 20 px: its head is not
/// looked at (a standing adult's face is about an eighth of the body's height).
pub const MIN_PERSON_HEIGHT_FOR_FACE: f64 = 140.0;

/// Whether the head of `person` in frame `index` of a segment (from 0) is looked at. The one
/// rule of the embedded command (detect's frames) and of the face stage (a segment's frames).
pub fn face_due(index: u64, person: &Detection) -> bool {
    index.is_multiple_of(FACE_EVERY) && person.bbox.h >= MIN_PERSON_HEIGHT_FOR_FACE
}

/// The square head region of a person box, `(x, y, w, h)` in whole pixels: the top of the box,
/// as wide as the box (at least 30 % of its height), with a margin; clipped to the frame.
/// `None` when too small to look at.
pub fn head_region(b: &crate::geometry::BBox, width: u32, height: u32) -> Option<(u32, u32, u32, u32)> {
    let side = (b.w.max(b.h * 0.3) * 1.2).max(24.0);
    let (cx, top) = (b.x + b.w / 2.0, b.y - 0.1 * side);
    let (x0, y0) = ((cx - side / 2.0).max(0.0), top.max(0.0));
    let (x1, y1) = ((cx + side / 2.0).min(f64::from(width)), (top + side).min(f64::from(height)));
    (x1 - x0 >= 16.0 && y1 - y0 >= 16.0).then_some((x0 as u32, y0 as u32, (x1 - x0) as u32, (y1 - y0) as u32))
}

/// A face found on a person's head: what the face models said.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaceLook {
    /// Estimated age, years.
    pub age: f32,
    /// Probability of `male`.
    pub male: f32,
    /// Whether the head pose is frontal.
    pub frontal: bool,
    /// The face detector's score.
    pub score: f32,
    /// L2-normalised identity embedding (for de-duplicating people by frontal faces).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub embedding: Vec<f32>,
}

/// The people of one sampled frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameDetections {
    /// Seconds on the camera's timeline.
    pub t: f64,
    /// Person boxes, pixels.
    pub people: Vec<Detection>,
    /// Per person (same order), the face on its head when one was looked for and found.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faces: Vec<Option<FaceLook>>,
}

/// The people of a segment's frames, as detect stores them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentDetections {
    /// Frame width, pixels.
    pub width: u32,
    /// Frame height, pixels.
    pub height: u32,
    /// The frames, in time order.
    pub frames: Vec<FrameDetections>,
    /// A decoding fault that ended the segment early (the frames before it are here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether faces were looked for (else composition says so).
    #[serde(default)]
    pub faces_analysed: bool,
}

/// One video's analytics between segments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VideoState {
    /// The next segment to apply.
    pub next: u32,
    /// The video's segments.
    pub count: u32,
    /// The analytics so far.
    pub analytics: Analytics,
    /// Decoding faults met so far.
    pub errors: Vec<String>,
    /// Face looks per track (composition).
    pub faces: BTreeMap<u64, Vec<FaceLook>>,
    /// Tallest box per track (to tell "face too small" from "no face found").
    pub tallest: BTreeMap<u64, f64>,
    /// Whether any segment looked for faces.
    pub faces_analysed: bool,
    /// The end of the last frame applied, seconds.
    pub t_end: f64,
}

impl VideoState {
    /// A fresh state for a video of `count` segments.
    pub fn new(analytics: Analytics, count: u32) -> Self {
        Self {
            next: 0,
            count,
            analytics,
            errors: Vec::new(),
            faces: BTreeMap::new(),
            tallest: BTreeMap::new(),
            faces_analysed: false,
            t_end: 0.0,
        }
    }

    /// Whether every segment has been applied.
    pub fn is_complete(&self) -> bool {
        self.next >= self.count
    }

    /// Feeds segment `self.next`'s frames to the analytics and moves on to the next segment.
    /// Frames at or before the last one observed are skipped (a segment applied twice).
    pub fn apply(&mut self, segment: &SegmentDetections) -> Result<(), AnalyticsError> {
        if self.analytics.last_t().is_none() && segment.width > 0 && segment.height > 0 {
            self.analytics.set_frame_size(segment.width, segment.height)?;
        }
        self.faces_analysed |= segment.faces_analysed;
        let period = 1.0 / self.analytics.camera().fps;
        for frame in &segment.frames {
            if self.analytics.last_t().is_some_and(|last| frame.t <= last) {
                continue;
            }
            let seen = self.analytics.observe(frame.t, &frame.people)?;
            for obs in seen {
                let tallest = self.tallest.entry(obs.id).or_insert(0.0);
                *tallest = tallest.max(obs.bbox.h);
                if let Some(Some(face)) = frame.faces.get(obs.detection) {
                    self.faces.entry(obs.id).or_default().push(face.clone());
                }
            }
            self.t_end = frame.t + period;
        }
        if let Some(e) = &segment.error {
            self.errors.push(e.clone());
        }
        self.next += 1;
        Ok(())
    }
}

/// The rule that turns face looks into visitors.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VisitorRule {
    /// A track whose box was never this tall had a face too small to analyse.
    pub min_person_height: f64,
    /// Two tracks whose best frontal faces are at least this similar are the same person.
    pub link: f32,
}

impl Default for VisitorRule {
    fn default() -> Self {
        Self { min_person_height: MIN_PERSON_HEIGHT_FOR_FACE, link: crate::identity::FRONTAL_LINK }
    }
}

/// Each track's attributes from its face looks: age (median) and gender (mean probability) of
/// its frontal looks, else of all its looks. Tracks are grouped by their best frontal face (the
/// face stage's person rule, [`crate::identity`]); a track whose person was already seen on an
/// earlier track counts once, as `same person as track N`. Tracks without a look say why: `face too small` (never taller
/// than the rule's height), `no face found`, or `faces not analysed`.
pub fn visitors(state: &VideoState, tracks: &[u64], rule: VisitorRule) -> BTreeMap<u64, Visitor> {
    let best: Vec<(u64, &FaceLook)> = state
        .faces
        .iter()
        .filter_map(|(id, looks)| {
            looks
                .iter()
                .filter(|l| l.frontal && !l.embedding.is_empty())
                .max_by(|a, b| a.score.total_cmp(&b.score))
                .map(|l| (*id, l))
        })
        .collect();
    let embeddings: Vec<&[f32]> = best.iter().map(|(_, l)| l.embedding.as_slice()).collect();
    let persons = crate::identity::cluster_frontal(&embeddings, rule.link);
    let mut first_of: BTreeMap<usize, u64> = BTreeMap::new();
    let mut duplicate_of: BTreeMap<u64, u64> = BTreeMap::new();
    for ((id, _), p) in best.iter().zip(persons) {
        match first_of.get(&p) {
            Some(&first) => {
                duplicate_of.insert(*id, first);
            }
            None => {
                first_of.insert(p, *id);
            }
        }
    }
    let mut out = BTreeMap::new();
    for &id in tracks {
        if let Some(first) = duplicate_of.get(&id) {
            out.insert(
                id,
                Visitor {
                    reason: Some(format!("same person as track {first}")),
                    duplicate_of: Some(*first),
                    ..Visitor::default()
                },
            );
            continue;
        }
        let looks = state.faces.get(&id).map(Vec::as_slice).unwrap_or_default();
        let frontal: Vec<&FaceLook> = looks.iter().filter(|l| l.frontal).collect();
        let used: Vec<&FaceLook> = if frontal.is_empty() { looks.iter().collect() } else { frontal };
        if used.is_empty() {
            let tall = state.tallest.get(&id).copied().unwrap_or(0.0);
            let reason = if !state.faces_analysed {
                "faces not analysed"
            } else if tall < rule.min_person_height {
                "face too small"
            } else {
                "no face found"
            };
            out.insert(id, Visitor { reason: Some(reason.to_owned()), ..Visitor::default() });
            continue;
        }
        let mut ages: Vec<f32> = used.iter().map(|l| l.age).collect();
        ages.sort_by(f32::total_cmp);
        let male = used.iter().map(|l| l.male).sum::<f32>() / used.len() as f32;
        out.insert(
            id,
            Visitor {
                age: Some(f64::from(ages[ages.len() / 2])),
                gender: Some(if male >= 0.5 { Gender::Male } else { Gender::Female }),
                faces_seen: u32::try_from(used.len()).unwrap_or(u32::MAX),
                reason: None,
                duplicate_of: None,
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::Camera;
    use crate::tracker::TrackerConfig;

    #[test]
    fn head_regions_sit_on_top_of_the_box_and_looks_follow_the_rule() {
        let b = crate::geometry::BBox::new(100.0, 50.0, 60.0, 200.0);
        let (x, y, w, h) = head_region(&b, 640, 480).expect("region");
        assert!(x <= 100 && x + w >= 160, "covers the box's width");
        assert!(y <= 50 && y + h < 150, "the top half only: {y} {h}");
        assert!(head_region(&crate::geometry::BBox::new(630.0, 470.0, 5.0, 5.0), 640, 480).is_none());
        let tall = Detection::new(0.0, 0.0, 50.0, 150.0, 0.9);
        let short = Detection::new(0.0, 0.0, 50.0, 100.0, 0.9);
        assert!(face_due(0, &tall) && face_due(3, &tall) && !face_due(1, &tall) && !face_due(0, &short));
    }

    #[test]
    fn windows_cut_the_video_and_the_last_runs_to_the_end() {
        assert_eq!(windows(Some(25.0), 10.0), vec![(0.0, Some(10.0)), (10.0, Some(10.0)), (20.0, None)]);
        assert_eq!(windows(Some(20.0), 10.0), vec![(0.0, Some(10.0)), (10.0, None)]);
        assert_eq!(windows(Some(3.0), 10.0), vec![(0.0, None)]);
        assert_eq!(windows(None, 10.0), vec![(0.0, None)]);
    }

    fn segment(ts: &[f64], x0: f64) -> SegmentDetections {
        SegmentDetections {
            width: 640,
            height: 480,
            frames: ts
                .iter()
                .enumerate()
                .map(|(i, &t)| FrameDetections {
                    t,
                    people: vec![Detection::new(x0 + 10.0 * i as f64, 100.0, 40.0, 160.0, 0.9)],
                    faces: vec![Some(FaceLook {
                        age: 30.0 + i as f32,
                        male: 0.8,
                        frontal: true,
                        score: 0.9,
                        embedding: vec![1.0, 0.0],
                    })],
                })
                .collect(),
            error: None,
            faces_analysed: true,
        }
    }

    #[test]
    fn a_segment_applied_twice_observes_its_frames_once() {
        let analytics = Analytics::new(Camera::new("c"), TrackerConfig::default()).expect("analytics");
        let mut state = VideoState::new(analytics, 2);
        let s0 = segment(&[0.0, 0.2, 0.4, 0.6], 100.0);
        state.apply(&s0).expect("apply");
        let once = state.clone();
        // A replica died after applying but before storing `next`: the retry sees the frames
        // as already observed.
        state.next = 0;
        state.apply(&s0).expect("apply again");
        assert_eq!(state.analytics, once.analytics);
        assert_eq!(state.faces, once.faces);
        state.apply(&segment(&[0.8, 1.0], 140.0)).expect("apply 1");
        assert!(state.is_complete());
        let tracks: Vec<u64> = state.faces.keys().copied().collect();
        assert_eq!(tracks.len(), 1, "one person, one track");
        let v = visitors(&state, &tracks, VisitorRule::default());
        let v = &v[&tracks[0]];
        assert_eq!(v.gender, Some(Gender::Male));
        assert!(v.age.is_some_and(|a| (30.0..36.0).contains(&a)));
    }

    #[test]
    fn visitors_say_why_they_have_no_attributes_and_count_a_person_once() {
        let analytics = Analytics::new(Camera::new("c"), TrackerConfig::default()).expect("analytics");
        let mut state = VideoState::new(analytics, 1);
        state.faces_analysed = true;
        state.tallest.insert(1, 60.0);
        state.tallest.insert(2, 200.0);
        let look = FaceLook { age: 40.0, male: 0.2, frontal: true, score: 0.9, embedding: vec![0.0, 1.0] };
        state.faces.insert(3, vec![look.clone()]);
        state.faces.insert(4, vec![look]);
        let v = visitors(&state, &[1, 2, 3, 4], VisitorRule::default());
        assert_eq!(v[&1].reason.as_deref(), Some("face too small"));
        assert_eq!(v[&2].reason.as_deref(), Some("no face found"));
        assert_eq!(v[&3].gender, Some(Gender::Female));
        assert_eq!(v[&4].reason.as_deref(), Some("same person as track 3"));
        assert_eq!(v[&4].duplicate_of, Some(3));
    }
}

//! A ByteTrack-style multi-object tracker (Zhang et al. 2022, "ByteTrack: Multi-Object Tracking
//! by Associating Every Detection Box").
//!
//! Each [`Tracker::update`] is one sampled frame:
//! 1. detections are split into high-score (`score ≥ track_thresh`) and low-score
//!    (`low_thresh ≤ score < track_thresh`); lower ones and invalid boxes are ignored;
//! 2. confirmed tracks, tracked and lost, are predicted one frame ahead (Kalman filter,
//!    [`crate::kalman`]) and matched to high-score detections by IoU (Hungarian algorithm,
//!    cost `1 − IoU ≤ 1 − match_iou`); a matched lost track is found again under its id;
//! 3. tracked (not lost) tracks still unmatched are matched to low-score detections
//!    (`IoU ≥ second_match_iou`): this is what keeps a partly occluded person whose score
//!    drops; tracks still unmatched become lost;
//! 4. tentative tracks (not yet confirmed) are matched to the remaining high-score detections
//!    (`IoU ≥ unconfirmed_match_iou`); an unmatched tentative track is dropped;
//! 5. remaining high-score detections with `score ≥ new_track_thresh` start tentative tracks;
//! 6. lost tracks unseen for more than `max_lost_s · fps` frames are dropped.
//!
//! A track is confirmed after `min_hits` consecutive matched frames and only then gets its id,
//! so ids are consecutive (1, 2, 3, ...) and one-frame false positives use none. ByteTrack's
//! removal of tracked/lost duplicates is left out: it could drop a young confirmed track, and
//! ids here only go to confirmed tracks.

use serde::{Deserialize, Serialize};

use crate::assign::{CostMatrix, assign_with_limit};
use crate::geometry::BBox;
use crate::kalman::{KalmanFilter, KalmanState, STD_WEIGHT_POSITION, STD_WEIGHT_VELOCITY};

/// A person box from the detector in one frame.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// The box, in pixels.
    pub bbox: BBox,
    /// The detector's confidence, in `[0, 1]`.
    pub score: f64,
}

impl Detection {
    /// A detection from its box `(x, y, w, h)` and score.
    pub const fn new(x: f64, y: f64, w: f64, h: f64, score: f64) -> Self {
        Self { bbox: BBox::new(x, y, w, h), score }
    }
}

/// A confirmed track seen in the current frame.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrackObs {
    /// The track's id: stable for the life of the track, increasing in order of confirmation.
    pub id: u64,
    /// The time of the frame, seconds.
    pub t: f64,
    /// The box of the detection matched this frame (what the analytics use).
    pub bbox: BBox,
    /// The Kalman filter's box after this frame's update (smoother; lags a little).
    pub filtered: BBox,
    /// The matched detection's score.
    pub score: f64,
    /// The index of the matched detection in the slice given to [`Tracker::update`].
    pub detection: usize,
}

/// Tracker thresholds; every field has a default, so `{}` or an empty TOML table is a valid
/// configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackerConfig {
    /// Detections at or above this score are "high" (first association, new tracks). Default 0.5.
    pub track_thresh: f64,
    /// Detections below this score are ignored. Default 0.1.
    pub low_thresh: f64,
    /// A high detection left over starts a track only at or above this score. Default 0.6.
    pub new_track_thresh: f64,
    /// Minimum IoU of the first association (high detections). Default 0.2.
    pub match_iou: f64,
    /// Minimum IoU of the second association (low detections). Default 0.5.
    pub second_match_iou: f64,
    /// Minimum IoU to continue a tentative track. Default 0.3 (ByteTrack's 0.7 cost).
    pub unconfirmed_match_iou: f64,
    /// How long a lost track is kept for re-identification, seconds. Default 2.0.
    pub max_lost_s: f64,
    /// Matched frames in a row that confirm a track. Default 2.
    pub min_hits: u32,
    /// Kalman position noise per frame, relative to the box height. Default 1/20 (ByteTrack).
    pub std_weight_position: f64,
    /// Kalman velocity noise per frame, relative to the box height. Default 1/160
    /// (ByteTrack, tuned at 30 fps: at a few frames per second it follows turns slowly; raise
    /// it, e.g. in proportion to `30 / fps`, when tracks break where people turn).
    pub std_weight_velocity: f64,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            track_thresh: 0.5,
            low_thresh: 0.1,
            new_track_thresh: 0.6,
            match_iou: 0.2,
            second_match_iou: 0.5,
            unconfirmed_match_iou: 0.3,
            max_lost_s: 2.0,
            min_hits: 2,
            std_weight_position: STD_WEIGHT_POSITION,
            std_weight_velocity: STD_WEIGHT_VELOCITY,
        }
    }
}

/// An invalid tracker configuration or frame rate.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid tracker setting `{field}`: {reason}")]
pub struct TrackerConfigError {
    /// The offending field (`fps` for the frame rate).
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl TrackerConfig {
    /// Checks ranges: thresholds in `[0, 1]`, `low_thresh ≤ track_thresh`, `max_lost_s ≥ 0`
    /// and finite, `min_hits ≥ 1`, noise weights finite and positive.
    pub fn validate(&self) -> Result<(), TrackerConfigError> {
        let unit = [
            ("track_thresh", self.track_thresh),
            ("low_thresh", self.low_thresh),
            ("new_track_thresh", self.new_track_thresh),
            ("match_iou", self.match_iou),
            ("second_match_iou", self.second_match_iou),
            ("unconfirmed_match_iou", self.unconfirmed_match_iou),
        ];
        for (field, value) in unit {
            if !(0.0..=1.0).contains(&value) {
                return Err(TrackerConfigError { field, reason: format!("{value} is not in [0, 1]") });
            }
        }
        if self.low_thresh > self.track_thresh {
            return Err(TrackerConfigError {
                field: "low_thresh",
                reason: format!("{} is above track_thresh {}", self.low_thresh, self.track_thresh),
            });
        }
        if !self.max_lost_s.is_finite() || self.max_lost_s < 0.0 {
            return Err(TrackerConfigError {
                field: "max_lost_s",
                reason: format!("{} is not a finite number of seconds ≥ 0", self.max_lost_s),
            });
        }
        if self.min_hits == 0 {
            return Err(TrackerConfigError { field: "min_hits", reason: "must be at least 1".into() });
        }
        for (field, value) in
            [("std_weight_position", self.std_weight_position), ("std_weight_velocity", self.std_weight_velocity)]
        {
            if !value.is_finite() || value <= 0.0 {
                return Err(TrackerConfigError { field, reason: format!("{value} is not a positive number") });
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Phase {
    /// Not yet confirmed; no id.
    Tentative,
    /// Confirmed and matched in the latest frame.
    Tracked,
    /// Confirmed, unmatched since `last_frame`.
    Lost,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Track {
    id: Option<u64>,
    phase: Phase,
    kalman: KalmanState,
    hits: u32,
    last_frame: u64,
}

/// The tracker's whole state; serialise it between video segments and resume with the next
/// frame as if the video had never been split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tracker {
    config: TrackerConfig,
    kalman: KalmanFilter,
    max_lost_frames: u64,
    frame: u64,
    next_id: u64,
    tracks: Vec<Track>,
}

impl Tracker {
    /// A tracker for frames sampled at `fps` frames per second.
    pub fn new(config: TrackerConfig, fps: f64) -> Result<Self, TrackerConfigError> {
        config.validate()?;
        if !fps.is_finite() || fps <= 0.0 {
            return Err(TrackerConfigError { field: "fps", reason: format!("{fps} is not a positive frame rate") });
        }
        // Saturating float-to-int conversion; both factors are finite and non-negative.
        let max_lost_frames = (config.max_lost_s * fps).ceil() as u64;
        let kalman = KalmanFilter {
            std_weight_position: config.std_weight_position,
            std_weight_velocity: config.std_weight_velocity,
        };
        Ok(Self { config, kalman, max_lost_frames, frame: 0, next_id: 1, tracks: Vec::new() })
    }

    /// The configuration.
    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// The number of frames processed so far.
    pub fn frames(&self) -> u64 {
        self.frame
    }

    /// Whether the confirmed track `id` is still alive (tracked, or lost but not yet dropped).
    pub fn is_alive(&self, id: u64) -> bool {
        self.tracks.iter().any(|t| t.id == Some(id))
    }

    /// Processes one frame at time `t` (seconds): returns the confirmed tracks matched in this
    /// frame, by id. Call once per sampled frame, in order; detections with an invalid box or
    /// a non-finite score are ignored.
    pub fn update(&mut self, t: f64, detections: &[Detection]) -> Vec<TrackObs> {
        self.frame += 1;
        let cfg = &self.config;
        let usable = |d: &Detection| d.bbox.is_valid() && d.score.is_finite();
        let high: Vec<usize> = (0..detections.len())
            .filter(|&i| usable(&detections[i]) && detections[i].score >= cfg.track_thresh)
            .collect();
        let low: Vec<usize> = (0..detections.len())
            .filter(|&i| {
                let d = &detections[i];
                usable(d) && d.score >= cfg.low_thresh && d.score < cfg.track_thresh
            })
            .collect();

        for track in &mut self.tracks {
            match track.phase {
                Phase::Tentative => {}
                Phase::Tracked => self.kalman.predict(&mut track.kalman),
                Phase::Lost => {
                    track.kalman.freeze_height();
                    self.kalman.predict(&mut track.kalman);
                }
            }
        }

        let pool: Vec<usize> = self.indices(|p| p != Phase::Tentative);
        let first = self.associate(&pool, &high, detections, cfg.match_iou);
        let remaining_tracked: Vec<usize> =
            first.unmatched_tracks.iter().copied().filter(|&i| self.tracks[i].phase == Phase::Tracked).collect();
        let second = self.associate(&remaining_tracked, &low, detections, cfg.second_match_iou);
        let tentative: Vec<usize> = self.indices(|p| p == Phase::Tentative);
        let third = self.associate(&tentative, &first.unmatched_detections, detections, cfg.unconfirmed_match_iou);

        for &i in &second.unmatched_tracks {
            self.tracks[i].phase = Phase::Lost;
        }
        let mut matched: Vec<(usize, usize)> = Vec::new();
        matched.extend(&first.matches);
        matched.extend(&second.matches);
        matched.extend(&third.matches);
        for &(ti, di) in &matched {
            self.apply_match(ti, &detections[di].bbox);
        }
        for &di in &third.unmatched_detections {
            if detections[di].score >= self.config.new_track_thresh {
                let mut track = Track {
                    id: None,
                    phase: Phase::Tentative,
                    kalman: self.kalman.initiate(&detections[di].bbox),
                    hits: 1,
                    last_frame: self.frame,
                };
                if self.config.min_hits <= 1 {
                    track.id = Some(self.next_id);
                    track.phase = Phase::Tracked;
                    self.next_id += 1;
                }
                matched.push((self.tracks.len(), di));
                self.tracks.push(track);
            }
        }

        let mut out: Vec<TrackObs> = matched
            .iter()
            .filter_map(|&(ti, di)| {
                let track = &self.tracks[ti];
                let id = track.id?;
                let d = &detections[di];
                Some(TrackObs { id, t, bbox: d.bbox, filtered: track.kalman.bbox(), score: d.score, detection: di })
            })
            .collect();
        out.sort_by_key(|o| o.id);

        let (frame, max_lost) = (self.frame, self.max_lost_frames);
        self.tracks.retain(|track| match track.phase {
            Phase::Tentative => track.last_frame == frame,
            Phase::Tracked => true,
            Phase::Lost => frame - track.last_frame <= max_lost,
        });
        out
    }

    fn indices(&self, keep: impl Fn(Phase) -> bool) -> Vec<usize> {
        (0..self.tracks.len()).filter(|&i| keep(self.tracks[i].phase)).collect()
    }

    fn apply_match(&mut self, ti: usize, bbox: &BBox) {
        let track = &mut self.tracks[ti];
        self.kalman.update(&mut track.kalman, bbox);
        track.last_frame = self.frame;
        track.hits = track.hits.saturating_add(1);
        match track.phase {
            Phase::Tentative if track.hits >= self.config.min_hits => {
                track.id = Some(self.next_id);
                track.phase = Phase::Tracked;
                self.next_id += 1;
            }
            Phase::Tentative | Phase::Tracked => {}
            Phase::Lost => track.phase = Phase::Tracked,
        }
    }

    /// Matches `tracks` (indices into `self.tracks`) to `dets` (indices into `detections`) by
    /// IoU of the predicted box, accepting pairs with `IoU ≥ min_iou`.
    fn associate(&self, tracks: &[usize], dets: &[usize], detections: &[Detection], min_iou: f64) -> Association {
        let boxes: Vec<BBox> = tracks.iter().map(|&i| self.tracks[i].kalman.bbox()).collect();
        let cost = CostMatrix::from_fn(tracks.len(), dets.len(), |i, j| 1.0 - boxes[i].iou(&detections[dets[j]].bbox));
        let a = assign_with_limit(&cost, 1.0 - min_iou);
        Association {
            matches: a.matches.iter().map(|&(i, j)| (tracks[i], dets[j])).collect(),
            unmatched_tracks: a.unmatched_rows.iter().map(|&i| tracks[i]).collect(),
            unmatched_detections: a.unmatched_cols.iter().map(|&j| dets[j]).collect(),
        }
    }
}

/// An association result in the tracker's own indices.
struct Association {
    matches: Vec<(usize, usize)>,
    unmatched_tracks: Vec<usize>,
    unmatched_detections: Vec<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const FPS: f64 = 5.0;

    fn tracker() -> Tracker {
        Tracker::new(TrackerConfig::default(), FPS).unwrap()
    }

    fn t(frame: usize) -> f64 {
        frame as f64 / FPS
    }

    /// Ids of the tracks whose matched detection has index `det`, frame by frame.
    fn id_of(out: &[TrackObs], det: usize) -> Option<u64> {
        out.iter().find(|o| o.detection == det).map(|o| o.id)
    }

    #[test]
    fn two_people_walking_past_each_other_keep_their_ids() {
        let mut tr = tracker();
        let (mut id_a, mut id_b) = (None, None);
        for f in 0..40 {
            let x = 10.0 * f as f64;
            // A walks right, B walks left; at frame 20 they overlap (IoU about 0.67).
            let a = Detection::new(100.0 + x, 100.0, 50.0, 150.0, 0.9);
            let b = Detection::new(500.0 - x, 130.0, 50.0, 150.0, 0.85);
            let out = tr.update(t(f), &[a, b]);
            if f >= 1 {
                assert_eq!(out.len(), 2, "frame {f}: {out:?}");
                let (ia, ib) = (id_of(&out, 0), id_of(&out, 1));
                if f == 1 {
                    (id_a, id_b) = (ia, ib);
                    assert_ne!(id_a, id_b);
                } else {
                    assert_eq!((ia, ib), (id_a, id_b), "frame {f}");
                }
            }
        }
        assert_eq!((id_a, id_b), (Some(1), Some(2)));
    }

    #[test]
    fn a_person_occluded_for_three_frames_keeps_the_id() {
        let mut tr = tracker();
        let mut ids = Vec::new();
        for f in 0..30 {
            let det = Detection::new(100.0 + 8.0 * f as f64, 200.0, 50.0, 150.0, 0.9);
            let dets = if (10..13).contains(&f) { vec![] } else { vec![det] };
            let out = tr.update(t(f), &dets);
            if (10..13).contains(&f) {
                assert!(out.is_empty());
            }
            ids.extend(out.iter().map(|o| o.id));
        }
        assert_eq!(ids.len(), 29 - 3, "seen every frame but the first and the occluded ones");
        assert!(ids.iter().all(|&id| id == 1), "{ids:?}");
    }

    /// Foot points along three legs with 90° turns, 15 px a frame.
    fn zigzag(frame: usize) -> Detection {
        let f = frame as f64 * 15.0;
        let (x, y) = match f {
            f if f <= 300.0 => (300.0 + f, 250.0),
            f if f <= 450.0 => (600.0, 250.0 + (f - 300.0)),
            f => (600.0 - (f - 450.0), 400.0),
        };
        Detection::new(x - 20.0, y - 120.0, 40.0, 120.0, 0.9)
    }

    #[test]
    fn at_low_fps_sharp_turns_need_a_higher_velocity_noise() {
        // ByteTrack's 1/160 is tuned at 30 fps: at 5 fps its velocity lags two quick turns of a
        // narrow box, and the person gets a second id. Scaled by 30 / fps, it follows.
        let ids = |config: TrackerConfig| {
            let mut tr = Tracker::new(config, FPS).unwrap();
            let mut ids: Vec<u64> = (0..50).flat_map(|f| tr.update(t(f), &[zigzag(f)])).map(|o| o.id).collect();
            ids.dedup();
            ids
        };
        assert_eq!(ids(TrackerConfig::default()), vec![1, 2]);
        let scaled =
            TrackerConfig { std_weight_velocity: STD_WEIGHT_VELOCITY * 30.0 / FPS, ..TrackerConfig::default() };
        assert_eq!(ids(scaled), vec![1]);
    }

    #[test]
    fn a_track_lost_longer_than_max_lost_is_dropped() {
        let mut tr = tracker();
        let det = Detection::new(100.0, 200.0, 50.0, 150.0, 0.9);
        tr.update(t(0), &[det]);
        tr.update(t(1), &[det]);
        assert!(tr.is_alive(1));
        // max_lost_s = 2 s at 5 fps: 10 frames.
        for f in 2..12 {
            tr.update(t(f), &[]);
            assert!(tr.is_alive(1), "frame {f}");
        }
        tr.update(t(12), &[]);
        assert!(!tr.is_alive(1));
        // Seen again, it is a new person.
        tr.update(t(13), &[det]);
        let out = tr.update(t(14), &[det]);
        assert_eq!(out.iter().map(|o| o.id).collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn one_frame_false_positives_make_no_confirmed_track() {
        let mut tr = tracker();
        for f in 0..20 {
            // A different place every frame, never overlapping the previous one.
            let x = (f % 2) as f64 * 600.0 + f as f64 * 7.0;
            let y = (f % 3) as f64 * 200.0;
            let out = tr.update(t(f), &[Detection::new(x, y, 40.0, 100.0, 0.95)]);
            assert!(out.is_empty(), "frame {f}: {out:?}");
        }
        // No id was spent on them: the next real person is id 1.
        let det = Detection::new(300.0, 300.0, 50.0, 150.0, 0.9);
        tr.update(t(20), &[det]);
        assert_eq!(tr.update(t(21), &[det])[0].id, 1);
    }

    #[test]
    fn low_score_detections_continue_a_track_but_never_start_one() {
        let mut tr = tracker();
        let mut ids = Vec::new();
        for f in 0..12 {
            let score = if f < 5 { 0.9 } else { 0.3 };
            let out = tr.update(t(f), &[Detection::new(100.0 + 5.0 * f as f64, 200.0, 50.0, 150.0, score)]);
            ids.extend(out.iter().map(|o| (f, o.id, o.score)));
        }
        assert_eq!(ids.len(), 11);
        assert!(ids.iter().all(|&(_, id, _)| id == 1));
        assert_eq!(ids.last().map(|&(f, _, s)| (f, s)), Some((11, 0.3)));

        let mut fresh = tracker();
        for f in 0..10 {
            let out = fresh.update(t(f), &[Detection::new(100.0, 200.0, 50.0, 150.0, 0.3)]);
            assert!(out.is_empty());
        }
    }

    #[test]
    fn below_new_track_thresh_a_high_detection_starts_nothing() {
        let mut tr = tracker();
        for f in 0..5 {
            assert!(tr.update(t(f), &[Detection::new(100.0, 200.0, 50.0, 150.0, 0.55)]).is_empty());
        }
    }

    #[test]
    fn min_hits_one_confirms_at_once_and_invalid_boxes_are_ignored() {
        let config = TrackerConfig { min_hits: 1, ..TrackerConfig::default() };
        let mut tr = Tracker::new(config, FPS).unwrap();
        let dets = [
            Detection::new(f64::NAN, 0.0, 10.0, 10.0, 0.9),
            Detection::new(0.0, 0.0, -5.0, 10.0, 0.9),
            Detection::new(100.0, 200.0, 50.0, 150.0, 0.9),
        ];
        let out = tr.update(0.0, &dets);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].id, out[0].detection), (1, 2));
    }

    #[test]
    fn config_validation_names_the_field() {
        let bad = TrackerConfig { low_thresh: 0.7, ..TrackerConfig::default() };
        assert_eq!(Tracker::new(bad, FPS).unwrap_err().field, "low_thresh");
        assert_eq!(Tracker::new(TrackerConfig::default(), 0.0).unwrap_err().field, "fps");
        let bad = TrackerConfig { min_hits: 0, ..TrackerConfig::default() };
        assert_eq!(bad.validate().unwrap_err().field, "min_hits");
        let parsed: TrackerConfig = serde_json::from_str(r#"{"track_thresh": 0.3}"#).unwrap();
        assert_eq!(parsed, TrackerConfig { track_thresh: 0.3, ..TrackerConfig::default() });
    }
}

//! Frame-by-frame analytics over the tracker: people in view, line crossings, zone visits and
//! occupancy, heat map, visitor composition.
//!
//! # Conventions
//! - **Time** `t` is seconds from the start of the video, given by the caller for each
//!   sampled frame, strictly increasing (use [`Analytics::observe_frame`] for `index / fps`).
//! - **Foot point**: the bottom-centre of a box, where a standing person touches the floor;
//!   every position below is a foot point. Tracks use their matched detection's box.
//! - **People in view** of a frame: detections with `score ≥ track_thresh` whose foot point
//!   lies in the camera's `region` (all of them without a region); the corrected count is the
//!   camera's [`Correction`](crate::camera::Correction) applied to that raw count.
//! - **Lines**: only observations of confirmed tracks whose foot point projects onto the
//!   segment (between `a` and `b`, off the line itself) have a side; others are skipped. A
//!   track *settles* on a side after `min_frames` consecutive sided observations there. When a
//!   settled track then gathers `min_frames` consecutive observations on the other side, it has
//!   passed, and the passage is counted if the path stepped through the segment itself on its
//!   way there (an odd number of crossings of the segment since the last observation on the
//!   old side); a path around an end of the segment settles silently. The crossing's time is
//!   the first observation of that final run on the new side. Shorter excursions, flicker
//!   included, count nothing and leave the settled side alone.
//! - **Zones**: a visit starts at the first observation with the foot point inside and ends at
//!   the first of `min_frames` consecutive observations outside (`exit_t` is that
//!   observation's time), or when the track ends: then `exit_t` is its last time inside plus
//!   one sampling period `1 / fps` (no later than the end of the video). Each frame so stands
//!   for `1 / fps` seconds: a visit seen inside in `N` consecutive frames lasts `N / fps`.
//! - **Heat map**: one count per observation of a confirmed track, in the cell
//!   `(floor(y / cell), floor(x / cell))` of its foot point, clamped into the frame (or at 0
//!   when the frame size is unknown).
//! - **Intervals**: interval `k` is `[k · interval_s, (k + 1) · interval_s)`, the last one ends
//!   at the end of the video.
//!
//! # Resuming
//! [`Analytics`] (tracker included) is `Serialize + Deserialize`: process a segment, store the
//! state (MessagePack, or JSON parsed with serde_json's `float_roundtrip` feature for exact
//! floats), load it on any replica and continue with the next frame; the report is identical to
//! processing the video in one go. The state keeps every row until [`Analytics::finish`], so it
//! grows with the video (the tracks' paths most).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::camera::{Camera, CameraError, FootPoint, Zone};
use crate::geometry::{Point, Segment, Side};
use crate::heatmap::{HeatCell, HeatMap};
use crate::report::{
    CompositionRow, CountRow, Crossing, Direction, DwellRow, FrameRow, OccupancyRow, Report, TrackPoint, TrackRecord,
};
use crate::tracker::{Detection, TrackObs, Tracker, TrackerConfig, TrackerConfigError};

/// A visitor's gender, as estimated from faces elsewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gender {
    /// `"male"`.
    Male,
    /// `"female"`.
    Female,
}

impl Gender {
    /// `"male"` or `"female"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Gender::Male => "male",
            Gender::Female => "female",
        }
    }
}

/// An age band of the composition table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AgeBand {
    /// Under 18: `"0-17"`.
    #[serde(rename = "0-17")]
    Under18,
    /// `"18-29"`.
    #[serde(rename = "18-29")]
    From18To29,
    /// `"30-44"`.
    #[serde(rename = "30-44")]
    From30To44,
    /// `"45-59"`.
    #[serde(rename = "45-59")]
    From45To59,
    /// 60 and over: `"60+"`.
    #[serde(rename = "60+")]
    From60,
    /// No usable age: `"unknown"`.
    #[serde(rename = "unknown")]
    Unknown,
}

impl AgeBand {
    /// The band of an age in years; `Unknown` for none, a negative or a non-finite age.
    pub fn of(age: Option<f64>) -> AgeBand {
        match age {
            Some(a) if a.is_finite() && a >= 0.0 => match a {
                a if a < 18.0 => AgeBand::Under18,
                a if a < 30.0 => AgeBand::From18To29,
                a if a < 45.0 => AgeBand::From30To44,
                a if a < 60.0 => AgeBand::From45To59,
                _ => AgeBand::From60,
            },
            _ => AgeBand::Unknown,
        }
    }

    /// The band's label: `"0-17"`, `"18-29"`, `"30-44"`, `"45-59"`, `"60+"` or `"unknown"`.
    pub fn as_str(self) -> &'static str {
        match self {
            AgeBand::Under18 => "0-17",
            AgeBand::From18To29 => "18-29",
            AgeBand::From30To44 => "30-44",
            AgeBand::From45To59 => "45-59",
            AgeBand::From60 => "60+",
            AgeBand::Unknown => "unknown",
        }
    }
}

/// Attributes of a tracked person, set by the caller (from faces matched to the track).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Visitor {
    /// Estimated age, years.
    pub age: Option<f64>,
    /// Estimated gender.
    pub gender: Option<Gender>,
    /// Faces of this track the estimate rests on.
    pub faces_seen: u32,
    /// Why an attribute is unknown, e.g. `"face too small"`.
    pub reason: Option<String>,
    /// The earlier track this one is the same person as (by their frontal faces): it is not
    /// counted again in the composition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<u64>,
}

/// What [`Analytics`] refuses.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    /// The camera configuration is invalid.
    #[error(transparent)]
    Camera(#[from] CameraError),
    /// The tracker configuration is invalid.
    #[error(transparent)]
    Tracker(#[from] TrackerConfigError),
    /// A frame time that is negative, not finite, or not after the previous frame's.
    #[error("frame time {t} is not a finite time after the previous frame ({previous:?})")]
    FrameTime {
        /// The rejected time.
        t: f64,
        /// The previous frame's time.
        previous: Option<f64>,
    },
    /// A frame size with a zero side.
    #[error("frame size {width}x{height} is empty")]
    FrameSize {
        /// Width given.
        width: u32,
        /// Height given.
        height: u32,
    },
    /// Attributes for a track id never confirmed.
    #[error("no track {0}")]
    UnknownTrack(u64),
}

/// A run of consecutive sided observations of one track against one line.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct Run {
    side: Side,
    count: u32,
    start_t: f64,
    /// Whether the path went through the segment between the previous run and this one.
    via_segment: bool,
}

/// The hysteresis state machine of one track against one line.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct LineState {
    settled: Option<Side>,
    run: Option<Run>,
    /// Parity of the segment crossings since the last sided observation.
    odd_crossings: bool,
    prev: Option<Point>,
}

/// A completed passage: `(from, to, t)`.
type Passage = (Side, Side, f64);

impl LineState {
    fn observe(&mut self, segment: &Segment, min_frames: u32, t: f64, p: Point) -> Option<Passage> {
        if let Some(prev) = self.prev
            && segment.crossed_by(prev, p)
        {
            self.odd_crossings = !self.odd_crossings;
        }
        self.prev = Some(p);
        let side = segment.side_of(p)?;
        let crossed = std::mem::take(&mut self.odd_crossings);
        let run = match &mut self.run {
            Some(run) if run.side == side => {
                run.count = run.count.saturating_add(1);
                *run
            }
            slot => {
                let via_segment = slot.is_some() && crossed;
                *slot.insert(Run { side, count: 1, start_t: t, via_segment })
            }
        };
        if run.count != min_frames {
            return None;
        }
        match self.settled.replace(side) {
            Some(old) if old != side && run.via_segment => Some((old, side, run.start_t)),
            _ => None,
        }
    }
}

/// An open zone visit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct OpenVisit {
    enter_t: f64,
    last_inside_t: f64,
    /// The first observation outside of the current run outside.
    left_at: Option<f64>,
    outside: u32,
}

/// One track's visits to one zone.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct ZoneState {
    visit: Option<OpenVisit>,
}

impl ZoneState {
    /// Returns `(enter_t, exit_t)` when this observation ends a visit.
    fn observe(&mut self, inside: bool, t: f64, min_frames: u32) -> Option<(f64, f64)> {
        match (&mut self.visit, inside) {
            (None, true) => {
                self.visit = Some(OpenVisit { enter_t: t, last_inside_t: t, left_at: None, outside: 0 });
                None
            }
            (None, false) => None,
            (Some(v), true) => {
                v.last_inside_t = t;
                v.left_at = None;
                v.outside = 0;
                None
            }
            (Some(v), false) => {
                v.outside = v.outside.saturating_add(1);
                let left_at = *v.left_at.get_or_insert(t);
                if v.outside >= min_frames {
                    let enter_t = v.enter_t;
                    self.visit = None;
                    Some((enter_t, left_at))
                } else {
                    None
                }
            }
        }
    }

    /// Ends an open visit because the track ended; see the module docs for `exit_t`.
    fn close(&mut self, period: f64, t_end: Option<f64>) -> Option<(f64, f64)> {
        let v = self.visit.take()?;
        let exit_t = v.left_at.unwrap_or_else(|| {
            let exit = v.last_inside_t + period;
            t_end.map_or(exit, |end| exit.min(end.max(v.last_inside_t)))
        });
        Some((v.enter_t, exit_t))
    }
}

/// Everything kept per confirmed track.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct TrackHistory {
    path: Vec<TrackPoint>,
    lines: Vec<LineState>,
    zones: Vec<ZoneState>,
    visitor: Option<Visitor>,
}

/// A heat-map count keyed by grid cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct CellCount {
    row: u32,
    col: u32,
    count: u64,
}

/// The foot point of the last box of `path` with the median height of the last ten boxes.
fn stable_foot(path: &[TrackPoint]) -> Point {
    let Some(last) = path.last() else { return Point::new(0.0, 0.0) };
    let mut heights: Vec<f64> = path.iter().rev().take(10).map(|p| p.bbox.h).collect();
    heights.sort_by(f64::total_cmp);
    let h = heights[heights.len() / 2];
    Point::new(last.bbox.x + last.bbox.w / 2.0, last.bbox.y + h)
}

/// The analytics of one camera's video: feed it frames with [`Analytics::observe`], get the
/// [`Report`] from [`Analytics::finish`]. All state, tracker included, is serialisable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Analytics {
    camera: Camera,
    tracker: Tracker,
    frame_size: Option<[u32; 2]>,
    last_t: Option<f64>,
    frames: Vec<FrameRow>,
    occupancy: Vec<OccupancyRow>,
    crossings: Vec<Crossing>,
    dwell: Vec<DwellRow>,
    /// Sorted by (row, col).
    heat: Vec<CellCount>,
    tracks: BTreeMap<u64, TrackHistory>,
    /// Confirmed tracks the tracker still holds, by id.
    live: Vec<u64>,
}

impl Analytics {
    /// Analytics for a camera, with a tracker sampling at the camera's `fps`. Validates both
    /// configurations.
    pub fn new(camera: Camera, tracker: TrackerConfig) -> Result<Self, AnalyticsError> {
        camera.validate()?;
        let tracker = Tracker::new(tracker, camera.fps)?;
        Ok(Self {
            frame_size: camera.frame_size,
            camera,
            tracker,
            last_t: None,
            frames: Vec::new(),
            occupancy: Vec::new(),
            crossings: Vec::new(),
            dwell: Vec::new(),
            heat: Vec::new(),
            tracks: BTreeMap::new(),
            live: Vec::new(),
        })
    }

    /// The camera configuration.
    pub fn camera(&self) -> &Camera {
        &self.camera
    }

    /// The time of the last frame observed, if any.
    pub fn last_t(&self) -> Option<f64> {
        self.last_t
    }

    /// Sets the frame size (pixels) when the camera file does not give it; the heat map is
    /// clamped to it. Call it before the first frame.
    pub fn set_frame_size(&mut self, width: u32, height: u32) -> Result<(), AnalyticsError> {
        if width == 0 || height == 0 {
            return Err(AnalyticsError::FrameSize { width, height });
        }
        self.frame_size = Some([width, height]);
        Ok(())
    }

    /// Observes frame number `index` (from 0) at `t = index / fps`.
    pub fn observe_frame(&mut self, index: u64, detections: &[Detection]) -> Result<Vec<TrackObs>, AnalyticsError> {
        self.observe(index as f64 / self.camera.fps, detections)
    }

    /// Observes one sampled frame at `t` seconds: counts people, runs the tracker, updates
    /// lines, zones and the heat map, and ends the tracks the tracker dropped. Returns the
    /// confirmed tracks seen in this frame (so the caller can attach attributes).
    pub fn observe(&mut self, t: f64, detections: &[Detection]) -> Result<Vec<TrackObs>, AnalyticsError> {
        if !t.is_finite() || t < 0.0 || self.last_t.is_some_and(|last| t <= last) {
            return Err(AnalyticsError::FrameTime { t, previous: self.last_t });
        }
        self.last_t = Some(t);

        let threshold = self.tracker.config().track_thresh;
        let raw = detections
            .iter()
            .filter(|d| d.bbox.is_valid() && d.score >= threshold && self.camera.counts(d.bbox.foot()))
            .count();
        let people_raw = u32::try_from(raw).unwrap_or(u32::MAX);
        let people = self.camera.correction_or_identity().apply(f64::from(people_raw));
        self.frames.push(FrameRow { t, people_raw, people });

        let observed = self.tracker.update(t, detections);
        let mut occupancy = vec![0u32; self.camera.zones.len()];
        for obs in &observed {
            self.observe_track(obs, &mut occupancy);
        }
        for (zone, people) in self.camera.zones.iter().zip(occupancy) {
            self.occupancy.push(OccupancyRow { t, zone: zone.name.clone(), people });
        }

        let (tracker, tracks) = (&self.tracker, &mut self.tracks);
        let (zones, dwell, period) = (&self.camera.zones, &mut self.dwell, 1.0 / self.camera.fps);
        self.live.retain(|&id| {
            if tracker.is_alive(id) {
                return true;
            }
            if let Some(track) = tracks.get_mut(&id) {
                close_visits(id, track, zones, period, None, dwell);
            }
            false
        });
        Ok(observed)
    }

    fn observe_track(&mut self, obs: &TrackObs, occupancy: &mut [u32]) {
        let camera = &self.camera;
        let track = self.tracks.entry(obs.id).or_insert_with(|| {
            self.live.push(obs.id);
            TrackHistory {
                path: Vec::new(),
                lines: vec![LineState::default(); camera.lines.len()],
                zones: vec![ZoneState::default(); camera.zones.len()],
                visitor: None,
            }
        });
        track.path.push(TrackPoint { t: obs.t, bbox: obs.bbox });
        let t = obs.t;
        let foot = match camera.foot {
            FootPoint::Box => obs.bbox.foot(),
            FootPoint::Stable => stable_foot(&track.path),
        };

        for (line, state) in camera.lines.iter().zip(&mut track.lines) {
            if let Some((_, to, t_cross)) = state.observe(&line.segment(), camera.min_frames, t, foot) {
                let direction = if to == line.in_side { Direction::In } else { Direction::Out };
                self.crossings.push(Crossing { t: t_cross, track: obs.id, line: line.name.clone(), direction });
            }
        }
        for ((zone, state), people) in camera.zones.iter().zip(&mut track.zones).zip(occupancy.iter_mut()) {
            let inside = zone.polygon.contains(foot);
            *people += u32::from(inside);
            if let Some((enter_t, exit_t)) = state.observe(inside, t, camera.min_frames) {
                self.dwell.push(DwellRow {
                    track: obs.id,
                    zone: zone.name.clone(),
                    enter_t,
                    exit_t,
                    seconds: exit_t - enter_t,
                });
            }
        }

        let (row, col) = self.cell_of(foot);
        match self.heat.binary_search_by_key(&(row, col), |c| (c.row, c.col)) {
            Ok(i) => self.heat[i].count += 1,
            Err(i) => self.heat.insert(i, CellCount { row, col, count: 1 }),
        }
    }

    /// The heat-map cell `(row, col)` of a point, clamped into the frame when its size is known.
    fn cell_of(&self, p: Point) -> (u32, u32) {
        let cell = f64::from(self.camera.heatmap_cell);
        // Float-to-int casts saturate: negative and NaN go to 0.
        let (mut col, mut row) = ((p.x / cell).floor() as u32, (p.y / cell).floor() as u32);
        if let Some([w, h]) = self.frame_size {
            let cell = self.camera.heatmap_cell;
            col = col.min(w.div_ceil(cell) - 1);
            row = row.min(h.div_ceil(cell) - 1);
        }
        (row, col)
    }

    /// Sets the attributes of a confirmed track (replacing earlier ones); they count in the
    /// composition of the interval where the track was first seen.
    pub fn set_track_attributes(&mut self, track: u64, visitor: Visitor) -> Result<(), AnalyticsError> {
        let history = self.tracks.get_mut(&track).ok_or(AnalyticsError::UnknownTrack(track))?;
        history.visitor = Some(visitor);
        Ok(())
    }

    /// Ends the video at `t_end` seconds (at least the last frame's time: a smaller or
    /// non-finite value is raised to it), closes open visits and builds the report.
    pub fn finish(mut self, t_end: f64) -> Report {
        let last = self.last_t.unwrap_or(0.0);
        let t_end = if t_end.is_finite() { t_end.max(last) } else { last };
        let period = 1.0 / self.camera.fps;
        for id in std::mem::take(&mut self.live) {
            if let Some(track) = self.tracks.get_mut(&id) {
                close_visits(id, track, &self.camera.zones, period, Some(t_end), &mut self.dwell);
            }
        }
        self.crossings.sort_by(|a, b| a.t.total_cmp(&b.t).then(a.track.cmp(&b.track)).then(a.line.cmp(&b.line)));
        self.dwell
            .sort_by(|a, b| a.enter_t.total_cmp(&b.enter_t).then(a.track.cmp(&b.track)).then(a.zone.cmp(&b.zone)));

        let counts = self.counts(t_end);
        let composition = self.composition(t_end);
        let heatmap = self.heatmap();
        let tracks = self
            .tracks
            .into_iter()
            .map(|(id, h)| TrackRecord {
                id,
                first_t: h.path.first().map_or(0.0, |p| p.t),
                last_t: h.path.last().map_or(0.0, |p| p.t),
                path: h.path,
                visitor: h.visitor,
            })
            .collect();
        Report {
            camera: self.camera.name,
            t_end,
            interval_s: self.camera.interval_s,
            counts,
            frames: self.frames,
            occupancy: self.occupancy,
            crossings: self.crossings,
            dwell: self.dwell,
            heatmap,
            composition,
            tracks,
        }
    }

    fn interval_of(&self, t: f64) -> usize {
        // t ≥ 0 and finite (checked in observe); the cast saturates.
        (t / self.camera.interval_s).floor() as usize
    }

    fn interval_bounds(&self, k: usize, t_end: f64) -> (f64, f64) {
        let len = self.camera.interval_s;
        (k as f64 * len, ((k + 1) as f64 * len).min(t_end))
    }

    fn counts(&self, t_end: f64) -> Vec<CountRow> {
        let mut n = (t_end / self.camera.interval_s).ceil() as usize;
        if let Some(last) = self.frames.last() {
            n = n.max(self.interval_of(last.t) + 1);
        }
        let mut rows: Vec<CountRow> = (0..n)
            .map(|k| {
                let (t_start, t_end) = self.interval_bounds(k, t_end);
                CountRow { t_start, t_end, people_mean: 0.0, people_max: 0.0, entries: 0, exits: 0 }
            })
            .collect();
        let mut frames_in = vec![0usize; n];
        for f in &self.frames {
            let k = self.interval_of(f.t);
            rows[k].people_mean += f.people;
            rows[k].people_max = rows[k].people_max.max(f.people);
            frames_in[k] += 1;
        }
        for (row, count) in rows.iter_mut().zip(frames_in) {
            if count > 0 {
                row.people_mean /= count as f64;
            }
        }
        for c in &self.crossings {
            if let Some(row) = rows.get_mut(self.interval_of(c.t)) {
                match c.direction {
                    Direction::In => row.entries += 1,
                    Direction::Out => row.exits += 1,
                }
            }
        }
        rows
    }

    fn composition(&self, t_end: f64) -> Vec<CompositionRow> {
        // Unknown gender sorts after the known ones.
        let gender_key = |g: Option<Gender>| g.map_or(2, |g| g as u8);
        let mut groups: BTreeMap<(usize, AgeBand, u8), (Option<Gender>, u64)> = BTreeMap::new();
        for track in self.tracks.values() {
            let Some(first) = track.path.first() else { continue };
            let visitor = track.visitor.clone().unwrap_or_default();
            if visitor.duplicate_of.is_some() {
                continue;
            }
            let key = (self.interval_of(first.t), AgeBand::of(visitor.age), gender_key(visitor.gender));
            groups.entry(key).or_insert((visitor.gender, 0)).1 += 1;
        }
        groups
            .into_iter()
            .map(|((k, age_band, _), (gender, visitors))| {
                let (t_start, t_end) = self.interval_bounds(k, t_end);
                CompositionRow { t_start, t_end, age_band, gender, visitors }
            })
            .collect()
    }

    fn heatmap(&self) -> HeatMap {
        let cell = self.camera.heatmap_cell;
        let (width, height) = match self.frame_size {
            Some([w, h]) => (w, h),
            None => {
                let cols = self.heat.iter().map(|c| c.col.saturating_add(1)).max().unwrap_or(0);
                let rows = self.heat.iter().map(|c| c.row.saturating_add(1)).max().unwrap_or(0);
                (cols.saturating_mul(cell), rows.saturating_mul(cell))
            }
        };
        let cells = self
            .heat
            .iter()
            .map(|c| HeatCell {
                row: c.row,
                col: c.col,
                x: c.col.saturating_mul(cell),
                y: c.row.saturating_mul(cell),
                count: c.count,
            })
            .collect();
        HeatMap { cell, width, height, cells }
    }
}

/// Ends a track's open zone visits, appending them to `dwell`.
fn close_visits(
    id: u64,
    track: &mut TrackHistory,
    zones: &[Zone],
    period: f64,
    t_end: Option<f64>,
    dwell: &mut Vec<DwellRow>,
) {
    for (zone, state) in zones.iter().zip(&mut track.zones) {
        if let Some((enter_t, exit_t)) = state.close(period, t_end) {
            dwell.push(DwellRow { track: id, zone: zone.name.clone(), enter_t, exit_t, seconds: exit_t - enter_t });
        }
    }
}

#[cfg(test)]
mod tests;

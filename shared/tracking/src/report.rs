//! The analytics report and its CSV and JSON writers.
//!
//! Times are seconds from the start of the video (the `t` given to
//! [`Analytics::observe`](crate::analytics::Analytics::observe)), written with 3 decimals;
//! so are means, corrected counts and durations. Text fields are quoted as RFC 4180 wants
//! when they hold a comma, a quote or a line break.

use std::borrow::Cow;
use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use crate::analytics::{AgeBand, Gender, Visitor};
use crate::geometry::BBox;
use crate::heatmap::HeatMap;

/// The direction of a line passage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// From the outer side to the line's `in_side`: an entry.
    In,
    /// From `in_side` to the outer side: an exit.
    Out,
}

impl Direction {
    /// `"in"` or `"out"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// One aggregation interval of the counts table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CountRow {
    /// Start of the interval, seconds.
    pub t_start: f64,
    /// End of the interval, seconds (the end of the video for the last one).
    pub t_end: f64,
    /// Mean corrected people count over the interval's frames (0 without frames).
    pub people_mean: f64,
    /// Largest corrected people count of a frame in the interval (0 without frames).
    pub people_max: f64,
    /// Entries over every line whose passage time falls in the interval.
    pub entries: u64,
    /// Exits over every line whose passage time falls in the interval.
    pub exits: u64,
}

/// The people count of one frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameRow {
    /// Time of the frame, seconds.
    pub t: f64,
    /// Detections counted (score ≥ `track_thresh`, foot point in the region).
    pub people_raw: u32,
    /// The raw count through the camera's correction.
    pub people: f64,
}

/// The occupancy of one zone in one frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OccupancyRow {
    /// Time of the frame, seconds.
    pub t: f64,
    /// The zone's name.
    pub zone: String,
    /// Confirmed tracks seen in this frame with their foot point in the zone.
    pub people: u32,
}

/// A counted line passage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Crossing {
    /// Time of the crossing: the first frame seen on the new side, seconds.
    pub t: f64,
    /// The track's id.
    pub track: u64,
    /// The line's name.
    pub line: String,
    /// Entry or exit.
    pub direction: Direction,
}

/// One visit of a track to a zone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DwellRow {
    /// The track's id.
    pub track: u64,
    /// The zone's name.
    pub zone: String,
    /// First frame seen inside, seconds.
    pub enter_t: f64,
    /// First frame seen outside; for a track that ended inside, its last frame inside plus
    /// one sampling period (`1 / fps`), no later than the end of the video.
    pub exit_t: f64,
    /// `exit_t − enter_t`.
    pub seconds: f64,
}

/// Visitors of one (interval, age band, gender) group, each track counted once, in the
/// interval where it was first seen confirmed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompositionRow {
    /// Start of the interval, seconds.
    pub t_start: f64,
    /// End of the interval, seconds.
    pub t_end: f64,
    /// The age band.
    pub age_band: AgeBand,
    /// The gender, `None` when unknown.
    pub gender: Option<Gender>,
    /// Tracks in the group.
    pub visitors: u64,
}

/// A box of a track at a time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrackPoint {
    /// Time of the frame, seconds.
    pub t: f64,
    /// The matched detection's box.
    pub bbox: BBox,
}

/// A confirmed track's whole path.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrackRecord {
    /// The track's id.
    pub id: u64,
    /// First confirmed observation, seconds.
    pub first_t: f64,
    /// Last observation, seconds.
    pub last_t: f64,
    /// Every observation, in time order.
    pub path: Vec<TrackPoint>,
    /// Attributes set by the caller, if any.
    pub visitor: Option<Visitor>,
}

/// Everything [`Analytics::finish`](crate::analytics::Analytics::finish) produces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The camera's name.
    pub camera: String,
    /// End of the video, seconds.
    pub t_end: f64,
    /// Length of an aggregation interval, seconds.
    pub interval_s: f64,
    /// Per-interval people counts, entries and exits.
    pub counts: Vec<CountRow>,
    /// Per-frame people counts, raw and corrected.
    pub frames: Vec<FrameRow>,
    /// Per-frame, per-zone occupancy (every zone in every frame).
    pub occupancy: Vec<OccupancyRow>,
    /// Line passages, by time.
    pub crossings: Vec<Crossing>,
    /// Zone visits, by entry time.
    pub dwell: Vec<DwellRow>,
    /// The heat map of confirmed tracks' foot points.
    pub heatmap: HeatMap,
    /// Visitor composition per interval.
    pub composition: Vec<CompositionRow>,
    /// Every confirmed track, by id.
    pub tracks: Vec<TrackRecord>,
}

/// A CSV field, quoted when it needs to be.
fn field(s: &str) -> Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        Cow::Owned(format!("\"{}\"", s.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(s)
    }
}

fn gender_label(g: Option<Gender>) -> &'static str {
    g.map_or("unknown", Gender::as_str)
}

impl Report {
    /// Writes the counts table: `t_start,t_end,people_mean,people_max,entries,exits`.
    pub fn write_counts_csv<W: Write>(&self, mut w: W) -> io::Result<()> {
        writeln!(w, "t_start,t_end,people_mean,people_max,entries,exits")?;
        for r in &self.counts {
            writeln!(
                w,
                "{:.3},{:.3},{:.3},{:.3},{},{}",
                r.t_start, r.t_end, r.people_mean, r.people_max, r.entries, r.exits
            )?;
        }
        Ok(())
    }

    /// Writes the crossings table: `t,track,line,direction` (`in` or `out`).
    pub fn write_crossings_csv<W: Write>(&self, mut w: W) -> io::Result<()> {
        writeln!(w, "t,track,line,direction")?;
        for r in &self.crossings {
            writeln!(w, "{:.3},{},{},{}", r.t, r.track, field(&r.line), r.direction.as_str())?;
        }
        Ok(())
    }

    /// Writes the dwell table: `track,zone,enter_t,exit_t,seconds`.
    pub fn write_dwell_csv<W: Write>(&self, mut w: W) -> io::Result<()> {
        writeln!(w, "track,zone,enter_t,exit_t,seconds")?;
        for r in &self.dwell {
            writeln!(w, "{},{},{:.3},{:.3},{:.3}", r.track, field(&r.zone), r.enter_t, r.exit_t, r.seconds)?;
        }
        Ok(())
    }

    /// Writes the heat-map cells with a non-zero count: `row,col,x,y,count`, where `x, y` is
    /// the cell's top-left corner in pixels.
    pub fn write_heatmap_csv<W: Write>(&self, mut w: W) -> io::Result<()> {
        writeln!(w, "row,col,x,y,count")?;
        for c in &self.heatmap.cells {
            writeln!(w, "{},{},{},{},{}", c.row, c.col, c.x, c.y, c.count)?;
        }
        Ok(())
    }

    /// Writes the composition table: `t_start,t_end,age_band,gender,visitors`.
    pub fn write_composition_csv<W: Write>(&self, mut w: W) -> io::Result<()> {
        writeln!(w, "t_start,t_end,age_band,gender,visitors")?;
        for r in &self.composition {
            writeln!(
                w,
                "{:.3},{:.3},{},{},{}",
                r.t_start,
                r.t_end,
                r.age_band.as_str(),
                gender_label(r.gender),
                r.visitors
            )?;
        }
        Ok(())
    }

    /// Writes the per-frame people counts: `t,people_raw,people`.
    pub fn write_frames_csv<W: Write>(&self, mut w: W) -> io::Result<()> {
        writeln!(w, "t,people_raw,people")?;
        for r in &self.frames {
            writeln!(w, "{:.3},{},{:.3}", r.t, r.people_raw, r.people)?;
        }
        Ok(())
    }

    /// Writes the per-frame zone occupancy: `t,zone,people`.
    pub fn write_occupancy_csv<W: Write>(&self, mut w: W) -> io::Result<()> {
        writeln!(w, "t,zone,people")?;
        for r in &self.occupancy {
            writeln!(w, "{:.3},{},{}", r.t, field(&r.zone), r.people)?;
        }
        Ok(())
    }

    /// Writes the tracks (id, first and last time, path of `{t, bbox}`, visitor attributes)
    /// as a JSON array.
    pub fn write_tracks_json<W: Write>(&self, w: W) -> serde_json::Result<()> {
        serde_json::to_writer(w, &self.tracks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(field("door"), "door");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}

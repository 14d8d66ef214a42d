//! Per-camera configuration: sampling rate, aggregation interval, counting region, counting
//! lines, zones, heat-map cell and the count correction. Read from TOML or JSON, validated,
//! written back to TOML.
//!
//! ```toml
//! name = "entrance-1"
//! fps = 5.0                 # frames per second sampled from the video (default 5)
//! interval_s = 60.0         # aggregation interval of the counts table (default 60)
//! frame_size = [1280, 720]  # optional; else set by Analytics::set_frame_size
//! min_frames = 2            # hysteresis of lines and zones, in observations (default 2)
//! heatmap_cell = 16         # heat-map cell, pixels (default 16)
//! tiles = 2                 # person detector tiles per side (0: frame only; default 2)
//! region = [[0, 200], [1280, 200], [1280, 720], [0, 720]]   # optional counting region
//!
//! [correction]              # optional: corrected = max(0, scale * raw + offset)
//! scale = 1.12
//! offset = 0.3
//! fitted_on = 1200
//!
//! [[lines]]
//! name = "door"
//! a = [400, 600]
//! b = [900, 600]
//! in_side = "right"         # below the line on screen: see `Side`
//!
//! [[zones]]
//! name = "checkout"
//! polygon = [[100, 100], [400, 100], [400, 400], [100, 400]]
//! ```
//!
//! Unknown keys are rejected, so a misspelt key is an error rather than a silent default.

use serde::{Deserialize, Serialize};

use crate::geometry::{Point, Polygon, Segment, Side};

/// A camera's configuration. Build it with [`Camera::from_toml_str`] or
/// [`Camera::from_json_str`] (both validate), or construct it and call [`Camera::validate`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Camera {
    /// The camera's name, used in reports.
    pub name: String,
    /// Frames per second sampled from the video and given to the analytics. Default 5.
    #[serde(default = "default_fps")]
    pub fps: f64,
    /// Length of an aggregation interval of the counts table, seconds. Default 60.
    #[serde(default = "default_interval_s")]
    pub interval_s: f64,
    /// Frame size `[width, height]` in pixels, when known from the configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_size: Option<[u32; 2]>,
    /// Hysteresis of lines and zones: consecutive observations needed to change side or to
    /// end a zone visit. Default 2.
    #[serde(default = "default_min_frames")]
    pub min_frames: u32,
    /// Heat-map cell size, pixels. Default 16.
    #[serde(default = "default_heatmap_cell")]
    pub heatmap_cell: u32,
    /// Which point of a person lines, zones and the heat map follow (default `stable`).
    #[serde(default, skip_serializing_if = "FootPoint::is_default")]
    pub foot: FootPoint,
    /// The person detector's tiles per side besides the whole frame (0: the frame only, for
    /// people taller than about 60 px; 2: a 2×2 grid for small people, five times the work).
    /// Absent: the detector's default (2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tiles: Option<u32>,
    /// The counting region for "people in view": only detections whose foot point lies inside
    /// are counted. Absent: the whole frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Polygon>,
    /// The linear correction of the people count, fitted elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correction: Option<Correction>,
    /// Counting lines (entries and exits).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<CountLine>,
    /// Zones for dwell times and occupancy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<Zone>,
}

fn default_fps() -> f64 {
    5.0
}
fn default_interval_s() -> f64 {
    60.0
}
fn default_min_frames() -> u32 {
    2
}
fn default_heatmap_cell() -> u32 {
    16
}
fn default_scale() -> f64 {
    1.0
}

/// The point of a person that lines, zones and the heat map follow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FootPoint {
    /// The bottom centre of the detected box.
    Box,
    /// The default. The bottom centre of a box as tall as the median of the track's last ten boxes, hung
    /// from the detected box's top: a person whose legs are hidden (a shelf, another shopper)
    /// keeps their feet where they were.
    #[default]
    Stable,
}

impl FootPoint {
    fn is_default(&self) -> bool {
        *self == FootPoint::Stable
    }
}

/// A directed counting line: the segment `a → b` and which side of it is inside the store.
///
/// ```text
///   (0,0) ─────────────────────▶ x        image coordinates, y down
///     │
///     │        "left" side
///     │   a ●════════════════▶● b
///     │        "right" side
///     ▼ y
/// ```
///
/// Stand at `a` facing `b`, as the picture is shown: your left hand points to `"left"`. For a
/// line drawn left to right across the screen, `"left"` is above it and `"right"` below; for a
/// line drawn top to bottom, `"left"` is the part of the image to its right. A passage from
/// the other side to `in_side` is an entry, the reverse an exit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountLine {
    /// The line's name, used in reports.
    pub name: String,
    /// Start of the segment, pixels.
    pub a: Point,
    /// End of the segment, pixels.
    pub b: Point,
    /// The side of `a → b` that is inside.
    pub in_side: Side,
}

impl CountLine {
    /// The segment `a → b`.
    pub fn segment(&self) -> Segment {
        Segment::new(self.a, self.b)
    }
}

/// A named zone: a polygon in image coordinates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    /// The zone's name, used in reports.
    pub name: String,
    /// The zone's outline; at least three points enclosing a non-zero area.
    pub polygon: Polygon,
}

/// The minimum number of pairs for a two-parameter fit in [`Correction::fit`].
pub const MIN_PAIRS_FOR_LINEAR_FIT: usize = 5;

/// A linear correction of the raw people count: `corrected = max(0, scale · raw + offset)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Correction {
    /// Multiplier of the raw count. Default 1.
    #[serde(default = "default_scale")]
    pub scale: f64,
    /// Added after scaling. Default 0.
    #[serde(default)]
    pub offset: f64,
    /// The number of frames (pairs) the correction was fitted on; 0 when set by hand.
    #[serde(default)]
    pub fitted_on: u64,
}

impl Default for Correction {
    fn default() -> Self {
        Self { scale: 1.0, offset: 0.0, fitted_on: 0 }
    }
}

impl Correction {
    /// Fits `truth ≈ scale · raw + offset` to `(raw, truth)` pairs by least squares. Pairs
    /// with a non-finite value are skipped. The rule, by the number `n` of usable pairs:
    /// - `n ≥ MIN_PAIRS_FOR_LINEAR_FIT` (5) and the raw counts are not all equal: ordinary
    ///   least squares on both parameters, kept if the fitted scale is positive;
    /// - otherwise, if some raw count is non-zero: scale only, through the origin
    ///   (`scale = Σ raw·truth / Σ raw²`, `offset = 0`);
    /// - otherwise (every raw count zero): offset only (`scale = 1`, `offset = mean truth`);
    /// - `n = 0`: the identity.
    ///
    /// `fitted_on` is `n`.
    pub fn fit(pairs: &[(f64, f64)]) -> Correction {
        let usable: Vec<(f64, f64)> = pairs.iter().copied().filter(|(r, t)| r.is_finite() && t.is_finite()).collect();
        let n = usable.len();
        if n == 0 {
            return Correction::default();
        }
        let nf = n as f64;
        let fitted_on = n as u64;
        let mean_raw = usable.iter().map(|p| p.0).sum::<f64>() / nf;
        let mean_truth = usable.iter().map(|p| p.1).sum::<f64>() / nf;
        let sxx: f64 = usable.iter().map(|p| (p.0 - mean_raw).powi(2)).sum();
        let sxy: f64 = usable.iter().map(|p| (p.0 - mean_raw) * (p.1 - mean_truth)).sum();
        if n >= MIN_PAIRS_FOR_LINEAR_FIT && sxx > 0.0 {
            let scale = sxy / sxx;
            if scale > 0.0 && scale.is_finite() {
                return Correction { scale, offset: mean_truth - scale * mean_raw, fitted_on };
            }
        }
        let raw_sq: f64 = usable.iter().map(|p| p.0 * p.0).sum();
        if raw_sq > 0.0 {
            let scale = usable.iter().map(|p| p.0 * p.1).sum::<f64>() / raw_sq;
            return Correction { scale: scale.max(0.0), offset: 0.0, fitted_on };
        }
        Correction { scale: 1.0, offset: mean_truth, fitted_on }
    }

    /// The corrected count of `raw` people; never negative (a NaN gives 0).
    pub fn apply(&self, raw: f64) -> f64 {
        (self.scale * raw + self.offset).max(0.0)
    }
}

/// An invalid or unreadable camera configuration; `field` names the offending key, with an
/// index for list items (`lines[1].b`).
#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    /// The TOML text does not parse or does not match the format.
    #[error("parse camera TOML: {0}")]
    Toml(#[from] toml::de::Error),
    /// The JSON text does not parse or does not match the format.
    #[error("parse camera JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The configuration could not be written as TOML.
    #[error("write camera TOML: {0}")]
    WriteToml(#[from] toml::ser::Error),
    /// A field holds a value out of its range.
    #[error("camera field `{field}`: {reason}")]
    Invalid {
        /// The offending field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl CameraError {
    /// The offending field, for validation errors.
    pub fn field(&self) -> Option<&str> {
        match self {
            CameraError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> CameraError {
    CameraError::Invalid { field: field.into(), reason: reason.into() }
}

impl Camera {
    /// A camera with the given name and every other field at its default.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            fps: default_fps(),
            interval_s: default_interval_s(),
            frame_size: None,
            min_frames: default_min_frames(),
            heatmap_cell: default_heatmap_cell(),
            tiles: None,
            foot: FootPoint::default(),
            region: None,
            correction: None,
            lines: Vec::new(),
            zones: Vec::new(),
        }
    }

    /// Parses and validates a TOML camera file.
    pub fn from_toml_str(text: &str) -> Result<Camera, CameraError> {
        let camera: Camera = toml::from_str(text)?;
        camera.validate()?;
        Ok(camera)
    }

    /// Parses and validates a JSON camera file (same fields as the TOML).
    pub fn from_json_str(text: &str) -> Result<Camera, CameraError> {
        let camera: Camera = serde_json::from_str(text)?;
        camera.validate()?;
        Ok(camera)
    }

    /// Writes the configuration as TOML, every field included (comments of the original file
    /// are not kept). [`Camera::from_toml_str`] reads it back to an equal value.
    pub fn to_toml(&self) -> Result<String, CameraError> {
        Ok(toml::to_string(self)?)
    }

    /// Whether a person whose foot point is `foot` is counted: inside the counting region, or
    /// anywhere without one.
    pub fn counts(&self, foot: Point) -> bool {
        self.region.as_ref().is_none_or(|r| r.contains(foot))
    }

    /// The correction to apply to raw counts: the configured one, or the identity.
    pub fn correction_or_identity(&self) -> Correction {
        self.correction.clone().unwrap_or_default()
    }

    /// Checks every field: a non-empty name; `fps` and `interval_s` finite and positive;
    /// `min_frames`, `heatmap_cell` and the frame size at least 1; polygons with at least 3
    /// finite points and a non-zero area; lines with finite, distinct end points; unique line
    /// and zone names; a finite, non-negative correction scale and a finite offset.
    pub fn validate(&self) -> Result<(), CameraError> {
        if self.name.trim().is_empty() {
            return Err(invalid("name", "is empty"));
        }
        if !self.fps.is_finite() || self.fps <= 0.0 {
            return Err(invalid("fps", format!("{} is not a positive frame rate", self.fps)));
        }
        if !self.interval_s.is_finite() || self.interval_s <= 0.0 {
            return Err(invalid("interval_s", format!("{} is not a positive number of seconds", self.interval_s)));
        }
        if self.min_frames == 0 {
            return Err(invalid("min_frames", "must be at least 1"));
        }
        if self.heatmap_cell == 0 {
            return Err(invalid("heatmap_cell", "must be at least 1 pixel"));
        }
        if self.tiles.is_some_and(|t| t == 1 || t > 4) {
            return Err(invalid("tiles", "must be 0 (the frame only) or 2 to 4 tiles per side"));
        }
        if let Some([w, h]) = self.frame_size
            && (w == 0 || h == 0)
        {
            return Err(invalid("frame_size", format!("{w}x{h} is empty")));
        }
        if let Some(region) = &self.region {
            validate_polygon("region", region)?;
        }
        for (i, line) in self.lines.iter().enumerate() {
            if line.name.trim().is_empty() {
                return Err(invalid(format!("lines[{i}].name"), "is empty"));
            }
            if self.lines[..i].iter().any(|l| l.name == line.name) {
                return Err(invalid(format!("lines[{i}].name"), format!("`{}` is used twice", line.name)));
            }
            for (end, p) in [("a", line.a), ("b", line.b)] {
                if !p.is_finite() {
                    return Err(invalid(format!("lines[{i}].{end}"), "is not a finite point"));
                }
            }
            if line.segment().length() <= 0.0 {
                return Err(invalid(format!("lines[{i}]"), "degenerate line: a and b are the same point"));
            }
        }
        for (i, zone) in self.zones.iter().enumerate() {
            if zone.name.trim().is_empty() {
                return Err(invalid(format!("zones[{i}].name"), "is empty"));
            }
            if self.zones[..i].iter().any(|z| z.name == zone.name) {
                return Err(invalid(format!("zones[{i}].name"), format!("`{}` is used twice", zone.name)));
            }
            validate_polygon(&format!("zones[{i}].polygon"), &zone.polygon)?;
        }
        if let Some(c) = &self.correction {
            if !c.scale.is_finite() || c.scale < 0.0 {
                return Err(invalid("correction.scale", format!("{} is not a finite number ≥ 0", c.scale)));
            }
            if !c.offset.is_finite() {
                return Err(invalid("correction.offset", format!("{} is not finite", c.offset)));
            }
        }
        Ok(())
    }
}

fn validate_polygon(field: &str, polygon: &Polygon) -> Result<(), CameraError> {
    if polygon.points.len() < 3 {
        return Err(invalid(field, format!("a polygon needs at least 3 points, got {}", polygon.points.len())));
    }
    if let Some(i) = polygon.points.iter().position(|p| !p.is_finite()) {
        return Err(invalid(field, format!("point {i} is not finite")));
    }
    let area = polygon.area();
    if area.is_nan() || area <= 0.0 {
        return Err(invalid(field, "the polygon encloses no area"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
name = "entrance-1"
fps = 5
interval_s = 30
frame_size = [1280, 720]
region = [[0, 200], [1280, 200], [1280, 720], [0, 720]]

[correction]
scale = 1.12
offset = 0.3
fitted_on = 1200

[[lines]]
name = "door"
a = [400, 600]
b = [900, 600]
in_side = "right"

[[lines]]
name = "side door"
a = [1200, 200]
b = [1200, 700.5]
in_side = "left"

[[zones]]
name = "checkout"
polygon = [[100, 100], [400, 100], [400, 400], [100, 400]]
"#;

    #[test]
    fn parses_the_example_with_defaults_filled_in() {
        let camera = Camera::from_toml_str(EXAMPLE).unwrap();
        assert_eq!(camera.name, "entrance-1");
        assert_eq!(camera.fps, 5.0);
        assert_eq!(camera.interval_s, 30.0);
        assert_eq!(camera.min_frames, 2);
        assert_eq!(camera.heatmap_cell, 16);
        assert_eq!(camera.frame_size, Some([1280, 720]));
        assert_eq!(camera.lines.len(), 2);
        assert_eq!(camera.lines[0].a, Point::new(400.0, 600.0));
        assert_eq!(camera.lines[0].in_side, Side::Right);
        assert_eq!(camera.lines[1].b, Point::new(1200.0, 700.5));
        assert_eq!(camera.zones[0].polygon.points.len(), 4);
        assert_eq!(camera.correction, Some(Correction { scale: 1.12, offset: 0.3, fitted_on: 1200 }));
    }

    #[test]
    fn minimal_file_takes_every_default() {
        let camera = Camera::from_toml_str("name = \"c\"").unwrap();
        assert_eq!(camera, Camera::new("c"));
        assert_eq!((camera.fps, camera.interval_s, camera.min_frames, camera.heatmap_cell), (5.0, 60.0, 2, 16));
    }

    #[test]
    fn to_toml_round_trips() {
        let camera = Camera::from_toml_str(EXAMPLE).unwrap();
        let text = camera.to_toml().unwrap();
        assert_eq!(Camera::from_toml_str(&text).unwrap(), camera);
        // Calibration: only the correction changes, everything else is kept.
        let mut calibrated = camera.clone();
        calibrated.correction = Some(Correction::fit(&[(1.0, 2.0), (2.0, 4.0)]));
        let back = Camera::from_toml_str(&calibrated.to_toml().unwrap()).unwrap();
        assert_eq!(back.lines, camera.lines);
        assert_eq!(back.zones, camera.zones);
        assert_eq!(back.region, camera.region);
        assert_eq!(back.correction, Some(Correction { scale: 2.0, offset: 0.0, fitted_on: 2 }));
    }

    #[test]
    fn json_is_accepted_too() {
        let json =
            r#"{"name": "c", "fps": 10, "lines": [{"name": "l", "a": [0, 0], "b": [10, 0], "in_side": "left"}]}"#;
        let camera = Camera::from_json_str(json).unwrap();
        assert_eq!(camera.fps, 10.0);
        assert_eq!(camera.lines[0].in_side, Side::Left);
    }

    fn field_of(text: &str) -> String {
        Camera::from_toml_str(text).unwrap_err().field().unwrap_or("<not a validation error>").to_owned()
    }

    #[test]
    fn validation_errors_name_the_field() {
        assert_eq!(field_of("name = \"c\"\nfps = 0"), "fps");
        assert_eq!(field_of("name = \"c\"\nfps = -5"), "fps");
        assert_eq!(field_of("name = \"c\"\ninterval_s = 0"), "interval_s");
        assert_eq!(field_of("name = \"\""), "name");
        assert_eq!(field_of("name = \"c\"\nmin_frames = 0"), "min_frames");
        assert_eq!(
            field_of("name = \"c\"\n[[lines]]\nname = \"l\"\na = [5, 5]\nb = [5, 5]\nin_side = \"left\""),
            "lines[0]"
        );
        assert_eq!(field_of("name = \"c\"\n[[zones]]\nname = \"z\"\npolygon = [[0, 0], [1, 1]]"), "zones[0].polygon");
        assert_eq!(
            field_of("name = \"c\"\n[[zones]]\nname = \"z\"\npolygon = [[0, 0], [1, 1], [2, 2]]"),
            "zones[0].polygon"
        );
        assert_eq!(field_of("name = \"c\"\nregion = [[0, 0], [1, 1]]"), "region");
        let twice = "name = \"c\"\n[[zones]]\nname = \"z\"\npolygon = [[0, 0], [9, 0], [9, 9]]\n\
                     [[zones]]\nname = \"z\"\npolygon = [[0, 0], [9, 0], [9, 9]]";
        assert_eq!(field_of(twice), "zones[1].name");
        assert_eq!(field_of("name = \"c\"\n[correction]\nscale = -1"), "correction.scale");
    }

    #[test]
    fn malformed_files_are_parse_errors() {
        assert!(matches!(Camera::from_toml_str("fps = 5"), Err(CameraError::Toml(_))), "name is required");
        assert!(matches!(Camera::from_toml_str("name = \"c\"\nfsp = 5"), Err(CameraError::Toml(_))), "unknown key");
        let bad_side = "name = \"c\"\n[[lines]]\nname = \"l\"\na = [0, 0]\nb = [1, 0]\nin_side = \"up\"";
        assert!(matches!(Camera::from_toml_str(bad_side), Err(CameraError::Toml(_))));
        assert!(matches!(Camera::from_json_str("{"), Err(CameraError::Json(_))));
    }

    #[test]
    fn correction_fit_recovers_exact_linear_data() {
        let pairs: Vec<(f64, f64)> = (0..10).map(|i| (f64::from(i), 1.5 * f64::from(i) + 2.0)).collect();
        let c = Correction::fit(&pairs);
        assert!((c.scale - 1.5).abs() < 1e-12, "{c:?}");
        assert!((c.offset - 2.0).abs() < 1e-12, "{c:?}");
        assert_eq!(c.fitted_on, 10);
        assert!((c.apply(4.0) - 8.0).abs() < 1e-12);
    }

    #[test]
    fn correction_fit_falls_back_on_tiny_or_flat_data() {
        // Two pairs: scale only, through the origin (Σxy / Σx² = (2·3 + 4·5) / (4 + 16)).
        let c = Correction::fit(&[(2.0, 3.0), (4.0, 5.0)]);
        assert_eq!((c.scale, c.offset, c.fitted_on), (26.0 / 20.0, 0.0, 2));
        // All raw counts equal (no spread): scale only as well.
        let c = Correction::fit(&[(2.0, 3.0); 6]);
        assert_eq!((c.scale, c.offset), (1.5, 0.0));
        // Every raw count zero: offset only.
        let c = Correction::fit(&[(0.0, 1.0), (0.0, 2.0)]);
        assert_eq!((c.scale, c.offset), (1.0, 1.5));
        // Nothing usable: the identity.
        assert_eq!(Correction::fit(&[(f64::NAN, 1.0)]), Correction::default());
    }

    #[test]
    fn corrected_counts_are_never_negative() {
        let c = Correction { scale: 1.0, offset: -2.0, fitted_on: 0 };
        assert_eq!(c.apply(1.0), 0.0);
        assert_eq!(c.apply(f64::NAN), 0.0);
        assert_eq!(c.apply(5.0), 3.0);
    }
}

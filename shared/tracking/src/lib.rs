//! In-store analytics from shop-camera video: turns per-frame person detections into tracks
//! (a ByteTrack-style tracker), and tracks into counts of people in view, line entries and
//! exits, zone dwell times and occupancy, heat maps and visitor composition.
//!
//! - [`camera`]: the per-camera configuration (TOML or JSON), validated, and the count
//!   [`Correction`](camera::Correction);
//! - [`tracker`]: [`Tracker`](tracker::Tracker) over [`kalman`] and [`assign`] (Hungarian);
//! - [`analytics`]: [`Analytics`](analytics::Analytics), frame by frame, with the conventions
//!   (sides, hysteresis, times) in its docs;
//! - [`report`]: the [`Report`](report::Report) and its CSV and JSON writers; [`heatmap`]: the
//!   heat map and its rendering; [`geometry`]: points, boxes, polygons, directed segments.
//!
//! All state is `Serialize + Deserialize`, so a video may be processed in segments on different
//! replicas with the same result as in one go. The crate does no I/O of its own: the writers
//! take a [`std::io::Write`].
//!
//! ```
//! use sightline_tracking::analytics::Analytics;
//! use sightline_tracking::camera::Camera;
//! use sightline_tracking::tracker::{Detection, TrackerConfig};
//!
//! let camera = Camera::from_toml_str(r#"
//!     name = "entrance"
//!     [[lines]]
//!     name = "door"
//!     a = [0, 300]
//!     b = [640, 300]
//!     in_side = "right"   # below the line on screen
//! "#)?;
//! let mut analytics = Analytics::new(camera, TrackerConfig::default())?;
//! for frame in 0..20u32 {
//!     // One person walking down the screen, 20 px a frame; feet at y = 200 + 20 · frame.
//!     let y = 80.0 + 20.0 * f64::from(frame);
//!     analytics.observe_frame(u64::from(frame), &[Detection::new(300.0, y, 40.0, 120.0, 0.9)])?;
//! }
//! let report = analytics.finish(4.0);
//! assert_eq!(report.crossings.len(), 1);
//! assert_eq!(report.crossings[0].t, 1.2); // frame 6: first frame with the feet below y = 300
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod analytics;
pub mod assign;
pub mod camera;
pub mod geometry;
pub mod heatmap;
pub mod identity;
pub mod kalman;
pub mod report;
pub mod segments;
pub mod tracker;

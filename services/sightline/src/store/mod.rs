//! In-store analytics from shop cameras: `sightline count` (people per image, with a camera's
//! counting region and fitted correction) and `sightline store` (a camera's footage: tracks,
//! line crossings, zone dwell, heat map, visitor composition, a report). docs/store.md.

pub mod count;
pub mod report;
pub mod run;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use image::RgbImage;
use sightline_inference::{ModelStore, Runtime};
use sightline_tracking::camera::Camera;
use sightline_vision::people::{Person, PersonConfig, PersonDetector};

/// Person detector settings (shared by `count` and `store`).
#[derive(Args, Debug, Clone)]
pub struct DetectorArgs {
    /// Lowest person score counted (`count`; `store` tracks at the same operating point).
    #[arg(long, env = "SIGHTLINE_PERSON_SCORE", default_value_t = PersonConfig::default().score_threshold)]
    pub score: f32,
    /// Tiles per side run besides the whole frame (0: the frame only; 2: a 2×2 grid, for people
    /// smaller than about 60 px, five times the work). Default: the camera file's `tiles`, else
    /// 2. docs/store.md measures 0, 2 and 3.
    #[arg(long, env = "SIGHTLINE_PERSON_TILES")]
    pub tiles: Option<u32>,
    /// Detector sessions run in parallel (one frame each).
    #[arg(long, env = "SIGHTLINE_PERSON_SESSIONS", default_value_t = 2)]
    pub sessions: usize,
}

impl DetectorArgs {
    /// The detector's configuration for `camera` (its tiling unless --tiles says otherwise).
    pub fn config(&self, camera: Option<&Camera>) -> PersonConfig {
        let d = PersonConfig::default();
        let tiles = self.tiles.or(camera.and_then(|c| c.tiles)).unwrap_or(d.tiles);
        PersonConfig { score_threshold: self.score, tiles, ..d }
    }

    /// Loads the detector from `$SIGHTLINE_MODELS` (models/fetch.sh).
    pub fn load(&self) -> anyhow::Result<PersonDetector> {
        let store = ModelStore::from_env().context("open the model store (run models/fetch.sh)")?;
        let runtime = Runtime::init_from_env(store.root()).context("load ONNX Runtime (run models/fetch.sh)")?;
        PersonDetector::load(&store, runtime, self.sessions, self.config(None)).context("load the person detector")
    }
}

/// Reads a camera file (TOML, or JSON by its `.json` extension).
pub fn read_camera(path: &Path) -> anyhow::Result<Camera> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read camera file {}", path.display()))?;
    let camera = if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
        Camera::from_json_str(&text)
    } else {
        Camera::from_toml_str(&text)
    };
    camera.with_context(|| format!("camera file {}", path.display()))
}

/// The people a camera counts among `people` (`Camera::counts`: foot point in its counting
/// region), or all of them without a camera.
pub fn in_region(camera: Option<&Camera>, people: &[Person]) -> usize {
    match camera {
        None => people.len(),
        Some(c) => people.iter().filter(|p| c.counts(sightline_detect::people::detection(p).bbox.foot())).count(),
    }
}

/// Decodes an image file under the stages' limits.
pub fn read_image(path: &PathBuf) -> Result<RgbImage, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("read: {e}"))?;
    let name = path.file_name().and_then(|n| n.to_str());
    sightline_imaging::decode(&bytes, name, &sightline_imaging::Limits::default())
        .map(|(_, img)| img.to_rgb8())
        .map_err(|e| e.to_string())
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar.set_message(what.to_owned());
    bar
}

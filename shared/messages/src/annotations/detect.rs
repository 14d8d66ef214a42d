//! The detect stage's output: `annotations.detect`.

use serde::{Deserialize, Serialize};

use super::Annotation;

/// Everything detect found about one image: the value of `annotations.detect`. Every field
/// defaults when missing, as readers took what they needed field by field before the contract
/// was typed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DetectOut {
    /// Layout version ([`DetectOut::VERSION`]).
    pub version: u32,
    /// open-nsfw probability (content moderation), every image.
    pub nsfw: f32,
    /// The main-subject box `[x, y, w, h]` in source pixels (the whole image when none).
    pub crop: [u32; 4],
    /// Whether `crop` is the whole image.
    pub crop_full: bool,
    /// Faces.
    pub faces: FaceSummary,
    /// Text lines.
    pub text: TextLines,
    /// Top ImageNet classes of the whole image.
    pub imagenet: Vec<ClassScore>,
    /// Saliency: the salient region's share of the image and how diffuse the map is.
    pub saliency: SaliencyStats,
    /// Noise flags that fired.
    pub flags: Vec<Flag>,
    /// Why the image left the route (`None`: it goes on).
    pub filtered: Option<String>,
    /// The candidate regions of a logo-search query (docs/logos.md); absent on other tasks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regions: Option<Vec<Region>>,
}

impl DetectOut {
    /// Version of the layout (additive changes keep it).
    pub const VERSION: u32 = 1;
}

impl Annotation for DetectOut {
    const KEY: &'static str = "detect";
}

/// A confirmed or rejected face candidate, in source pixels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaceBox {
    /// `[x, y, w, h]` in source pixels.
    pub bbox: [u32; 4],
    /// Detector score.
    pub score: f32,
    /// MTCNN output-net probability.
    pub confirm: f32,
}

/// Faces found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaceSummary {
    /// Confirmed faces.
    pub count: usize,
    /// Share of the image the confirmed faces cover.
    pub fraction: f32,
    /// Candidates above the detector threshold (confirmed or not), at most 10, best first.
    pub boxes: Vec<FaceBox>,
}

/// One ImageNet class.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassScore {
    /// Class index (0..1000).
    pub class: usize,
    /// Its name.
    pub label: String,
    /// Softmax probability.
    pub p: f32,
}

/// Text lines (the value of `annotations.detect.text`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TextLines {
    /// Share of the image the lines' unclipped boxes cover (overlaps counted once).
    pub fraction: f32,
    /// Number of text lines.
    pub lines: u32,
    /// The lines' unclipped boxes `[x, y, w, h]` in source pixels, the largest first (coarse:
    /// the detector sees a downscaled image). Logo search embeds regions around them
    /// (docs/logos.md).
    pub boxes: Vec<[u32; 4]>,
}

/// Saliency statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SaliencyStats {
    /// The salient region's box, as a share of the image.
    pub area: f32,
    /// Mean over max of the map (low: one clear subject).
    pub spread: f32,
}

/// One noise flag.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Flag {
    /// `faces` or `text`.
    pub flag: String,
    /// The measured value the threshold applies to.
    pub score: f32,
    /// The threshold.
    pub threshold: f32,
    /// Why, in words.
    pub reason: String,
}

/// Where a candidate region of a logo-search query came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RegionKind {
    /// The whole image.
    Whole,
    /// detect's main-subject box.
    Crop,
    /// One text line, grown by a margin.
    Text,
    /// The union of a group of stacked text lines, grown by a margin.
    TextGroup,
}

/// A candidate region of a query photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    /// `[x, y, w, h]` in source pixels, inside the image.
    #[serde(rename = "box")]
    pub bbox: [u32; 4],
    /// Where it came from.
    pub kind: RegionKind,
}

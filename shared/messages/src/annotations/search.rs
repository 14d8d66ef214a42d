//! The fan-in and index stages' outputs: `annotations.cluster`, `annotations.index` and a
//! query's answer, `annotations.search`.

use serde::{Deserialize, Serialize};

use super::{Annotation, RegionKind};

/// The cluster stage's label of one image: the value of `annotations.cluster`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterOut {
    /// Cluster id (by decreasing γ).
    pub cluster: u32,
    /// In its cluster's halo.
    #[serde(default)]
    pub halo: bool,
    /// `product` or `noise`.
    pub label: String,
    /// Why, for noise.
    pub reason: Option<String>,
}

impl Annotation for ClusterOut {
    const KEY: &'static str = "cluster";
}

/// Where the index stage stored an image's entry: the value of `annotations.index`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexOut {
    /// The entry's blob key.
    pub entry: String,
    /// The label it was indexed with (`unlabelled` without the cluster stage).
    pub label: String,
}

impl Annotation for IndexOut {
    const KEY: &'static str = "index";
}

/// A search query's answer (index stage, query mode): the value of `annotations.search`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchOut {
    /// The catalogue searched.
    pub catalog: String,
    /// `logo` for a logo search; absent for a search by photo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The query's OCR text (empty when none).
    #[serde(default)]
    pub text: String,
    /// Matches, best first.
    #[serde(default)]
    pub matches: Vec<SearchMatch>,
}

impl Annotation for SearchOut {
    const KEY: &'static str = "search";
}

/// One match of a search: a catalogue item (search by photo) or a brand (logo search).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchMatch {
    /// The catalogue item's file name (for a brand, its best logo).
    pub item: String,
    /// The brand, in a logo search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    /// The fused score (visual plus the weighted text similarity).
    pub score: f32,
    /// Cosine similarity of the embeddings.
    pub visual: f32,
    /// Text similarity (0 when either side has no text).
    pub text: f32,
    /// The query region that matched best `[x, y, w, h]`, in a logo search.
    #[serde(rename = "box", default, skip_serializing_if = "Option::is_none")]
    pub bbox: Option<[u32; 4]>,
    /// Where that region came from, in a logo search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<RegionKind>,
}

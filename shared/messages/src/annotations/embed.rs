//! The embed stage's output: `annotations.embed`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Annotation, RegionKind};

/// Where the image's embedding (and those of its other views) are stored: the value of
/// `annotations.embed`. Only `key` is required on read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbedOut {
    /// The blob key of the main embedding (little-endian f32).
    pub key: String,
    /// Embedding dimension.
    #[serde(default)]
    pub dim: usize,
    /// The model's name.
    #[serde(default)]
    pub model: String,
    /// The box `[x, y, w, h]` that was embedded; `None` (`"full"` on the wire) for the whole image.
    #[serde(default, with = "crop_or_full")]
    pub crop: Option<[u32; 4]>,
    /// How the image was fitted to the model input (`centre-crop`, `letterbox`).
    #[serde(default)]
    pub fit: String,
    /// The zoomed-in view's embedding, when the job asked for one (`embed.zoom`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zoom_key: Option<String>,
    /// One embedding per region detect proposed, on a logo-search query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regions: Option<Vec<EmbedRegion>>,
}

impl Annotation for EmbedOut {
    const KEY: &'static str = "embed";
}

/// One embedded region of a logo-search query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbedRegion {
    /// `[x, y, w, h]` in source pixels.
    #[serde(rename = "box")]
    pub bbox: [u32; 4],
    /// Where detect found it.
    pub kind: RegionKind,
    /// The blob key of its embedding.
    pub key: String,
}

/// `crop` on the wire: the box, or the string `"full"` for the whole image.
mod crop_or_full {
    use super::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Wire {
        Box([u32; 4]),
        Full(String),
    }

    pub fn serialize<S: Serializer>(crop: &Option<[u32; 4]>, s: S) -> Result<S::Ok, S::Error> {
        match crop {
            Some(b) => Wire::Box(*b),
            None => Wire::Full("full".to_owned()),
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u32; 4]>, D::Error> {
        Ok(match Wire::deserialize(d)? {
            Wire::Box(b) => Some(b),
            Wire::Full(_) => None,
        })
    }
}

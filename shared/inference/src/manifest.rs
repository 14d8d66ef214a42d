//! `models/manifest.toml`: which models exist, where they come from, their
//! SHA-256, tensors and preprocessing.

use std::path::Path;

use serde::Deserialize;

use crate::error::{InferenceError, Result};

/// The manifest committed at `models/manifest.toml`, compiled in.
pub const EMBEDDED_MANIFEST: &str = include_str!("../../../models/manifest.toml");

/// The parsed manifest.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    /// Format version (1).
    pub schema: u32,
    /// The ONNX Runtime shared library.
    pub onnxruntime: OnnxRuntimeSpec,
    /// Package archives (one per registry package).
    #[serde(default)]
    pub archive: Vec<ArchiveSpec>,
    /// Non-model files (label lists, bins).
    #[serde(default)]
    pub asset: Vec<AssetSpec>,
    /// The models.
    #[serde(default)]
    pub model: Vec<ModelSpec>,
}

/// `[onnxruntime]`.
#[derive(Debug, Clone, Deserialize)]
pub struct OnnxRuntimeSpec {
    pub registry: String,
    pub package: String,
    pub version: String,
    pub file: String,
    /// Path relative to `$SIGHTLINE_MODELS`.
    pub local: String,
    pub sha256: String,
    pub licence: String,
}

/// `[[archive]]`.
#[derive(Debug, Clone, Deserialize)]
pub struct ArchiveSpec {
    pub registry: String,
    pub package: String,
    pub version: String,
    pub archive: String,
    pub archive_sha256: String,
}

/// `[[asset]]`.
#[derive(Debug, Clone, Deserialize)]
pub struct AssetSpec {
    pub name: String,
    pub registry: String,
    pub package: String,
    pub version: String,
    pub file: String,
    pub local: String,
    pub sha256: String,
    pub licence: String,
    #[serde(default)]
    pub description: String,
}

/// One dimension of a tensor shape: fixed, or a symbolic name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Dim {
    Fixed(i64),
    Symbolic(String),
}

impl Dim {
    /// The fixed size, if any.
    pub fn fixed(&self) -> Option<i64> {
        match self {
            Dim::Fixed(n) => Some(*n),
            Dim::Symbolic(_) => None,
        }
    }
}

/// An input or output tensor.
#[derive(Debug, Clone, Deserialize)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<Dim>,
    pub dtype: String,
    #[serde(default)]
    pub description: String,
}

/// `[model.preprocessing]`.
#[derive(Debug, Clone, Deserialize)]
pub struct PreprocessingSpec {
    /// `NCHW`, `NHWC` or `NWHC` (MTCNN: the transposed image).
    pub layout: String,
    /// `RGB`, `BGR` or `GRAY`: channel order of the tensor.
    pub channel_order: String,
    /// value = (x / divisor - mean[c]) / std[c]
    pub divisor: f32,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// Free-text description of the input size rule.
    pub size: String,
    pub resize: String,
    #[serde(default)]
    pub notes: String,
    #[serde(default)]
    pub dictionary: Option<String>,
}

/// `[[model]]`.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelSpec {
    pub name: String,
    pub task: String,
    #[serde(default)]
    pub default: bool,
    pub registry: String,
    pub package: String,
    pub version: String,
    /// File inside the package archive (for converted models: the source file).
    pub file: String,
    /// Path relative to `$SIGHTLINE_MODELS`.
    pub local: String,
    pub sha256: String,
    #[serde(default)]
    pub bytes: Option<u64>,
    pub licence: String,
    /// Fixture JSON, relative to the repository root.
    pub reference: String,
    /// Converter script for models that are not shipped as ONNX.
    #[serde(default)]
    pub convert: Option<String>,
    #[serde(default)]
    pub source_sha256: Option<String>,
    /// Name of an asset with class labels.
    #[serde(default)]
    pub labels: Option<String>,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    pub preprocessing: PreprocessingSpec,
}

impl Manifest {
    /// Parses manifest text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let m: Manifest = toml::from_str(text)
            .map_err(|e| InferenceError::Manifest { path: origin.to_string(), reason: e.to_string() })?;
        m.validate(origin)?;
        Ok(m)
    }

    /// The manifest compiled into this crate (`models/manifest.toml`).
    pub fn embedded() -> Result<Self> {
        Self::parse(EMBEDDED_MANIFEST, "models/manifest.toml (embedded)")
    }

    /// Reads a manifest file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| InferenceError::io(path, e))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The model called `name`.
    pub fn model(&self, name: &str) -> Result<&ModelSpec> {
        self.model.iter().find(|m| m.name == name).ok_or_else(|| InferenceError::UnknownModel(name.to_string()))
    }

    /// The asset called `name`.
    pub fn asset(&self, name: &str) -> Result<&AssetSpec> {
        self.asset.iter().find(|a| a.name == name).ok_or_else(|| InferenceError::UnknownModel(name.to_string()))
    }

    fn validate(&self, origin: &str) -> Result<()> {
        let bad = |reason: String| InferenceError::Manifest { path: origin.to_string(), reason };
        if self.schema != 1 {
            return Err(bad(format!("schema {} is not supported (expected 1)", self.schema)));
        }
        let mut names = std::collections::HashSet::new();
        let shas = std::iter::once(("onnxruntime", self.onnxruntime.sha256.as_str()))
            .chain(self.asset.iter().map(|a| (a.name.as_str(), a.sha256.as_str())))
            .chain(self.model.iter().map(|m| (m.name.as_str(), m.sha256.as_str())));
        for (name, sha) in shas {
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
                return Err(bad(format!("{name}: sha256 {sha:?} is not 64 lowercase hex digits")));
            }
            if !names.insert(name) {
                return Err(bad(format!("duplicate name {name:?}")));
            }
        }
        for m in &self.model {
            if m.inputs.is_empty() || m.outputs.is_empty() {
                return Err(bad(format!("{}: needs at least one input and one output", m.name)));
            }
            let p = &m.preprocessing;
            let channels = if p.channel_order == "GRAY" { 1 } else { 3 };
            if p.mean.len() != channels || p.std.len() != channels {
                return Err(bad(format!("{}: mean/std need {channels} values", m.name)));
            }
            if !["RGB", "BGR", "GRAY"].contains(&p.channel_order.as_str()) {
                return Err(bad(format!("{}: channel_order {:?}", m.name, p.channel_order)));
            }
            if !["NCHW", "NHWC", "NWHC"].contains(&p.layout.as_str()) {
                return Err(bad(format!("{}: layout {:?}", m.name, p.layout)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_manifest_parses_and_lists_the_models() {
        let m = Manifest::embedded().expect("manifest parses");
        for name in [
            "ocr-det",
            "ocr-rec",
            "ocr-cls",
            "ocr-det-v4",
            "ocr-rec-v4",
            "face-detect",
            "face-landmark",
            "face-embed",
            "mtcnn-pnet",
            "mtcnn-rnet",
            "mtcnn-onet",
            "age",
            "gender",
            "nsfw",
            "embed",
        ] {
            let spec = m.model(name).expect(name);
            assert_eq!(spec.reference, format!("tests/fixtures/models/{name}.json"));
        }
        assert_eq!(m.onnxruntime.version, "1.31.1");
        assert!(m.model("nope").is_err());
        let det = m.model("face-detect").expect("face-detect");
        assert_eq!(det.inputs[0].shape, vec![Dim::Fixed(1), Dim::Fixed(3), Dim::Fixed(240), Dim::Fixed(320)]);
        let ocr = m.model("ocr-det").expect("ocr-det");
        assert_eq!(ocr.inputs[0].shape[0], Dim::Symbolic("N".into()));
    }

    #[test]
    fn bad_sha_is_rejected() {
        let text =
            EMBEDDED_MANIFEST.replacen("fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3", "xyz", 1);
        let err = Manifest::parse(&text, "test").expect_err("must fail");
        assert!(err.to_string().contains("onnxruntime"), "{err}");
    }
}

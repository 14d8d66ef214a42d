//! A retrieval head on top of the frozen backbone (issue 15): a linear projection of the
//! L2-normalised 1280-d embedding, centred, to a smaller embedding, L2-normalised again. It is
//! trained offline (`sightline train`, the CLI's `train::proxy`); this module is what serving
//! needs: applying, saving and loading one. The choice of this head comes from the
//! measurement study in `docs/training.md`.
//!
//! A trained head is a folder: `model.toml` (name, version, dimensions, seed, training data's
//! digest, losses, figures) and `head.f32` (little-endian f32: the mean, then the projection
//! row-major, `input × output`).

use std::path::Path;

use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};
use sightline_messages::vector;

/// What can go wrong reading or writing a head.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// The folder or a file in it could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// `model.toml` or `head.f32` does not describe a head.
    #[error("invalid head in {0}")]
    Invalid(String),
}

/// `model.toml`: what a trained head is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadManifest {
    /// The model's name.
    pub name: String,
    /// Its version: the first 12 hex digits of the SHA-256 of `head.f32`.
    pub version: String,
    /// The backbone whose embeddings it takes.
    pub backbone: String,
    /// Input dimension.
    pub input: usize,
    /// Output dimension.
    pub output: usize,
    /// The seed of the views and batches.
    pub seed: u64,
    /// SHA-256 over the training photos' names, labels and bytes.
    pub data_digest: String,
    /// Products trained on.
    pub classes: usize,
    /// Training views (photos × views per photo).
    pub samples: usize,
    /// Mean loss per epoch.
    pub losses: Vec<f32>,
}

/// A trained projection.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    /// Subtracted from the (normalised) input.
    pub mean: Array1<f32>,
    /// `input × output`.
    pub projection: Array2<f32>,
}

impl Head {
    /// The head's embedding of a backbone embedding (normalised first, as the backbone's are).
    pub fn apply(&self, v: &[f32]) -> Vec<f32> {
        let mut x = Array1::from_vec(v.to_vec());
        l2_in_place(x.view_mut());
        let mut out = (&x - &self.mean).dot(&self.projection).to_vec();
        crate::l2_normalise(&mut out);
        out
    }

    /// Output dimension.
    pub fn output(&self) -> usize {
        self.projection.ncols()
    }

    /// The parameters as little-endian f32: the mean, then the projection row-major.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut all = self.mean.to_vec();
        all.extend(self.projection.iter());
        vector::encode(&all)
    }

    /// Reads parameters written by [`Head::to_bytes`] for `input × output`.
    pub fn from_bytes(bytes: &[u8], input: usize, output: usize) -> Option<Self> {
        let all = vector::decode(bytes)?;
        if all.len() != input * (output + 1) {
            return None;
        }
        let mean = Array1::from_vec(all[..input].to_vec());
        let projection = Array2::from_shape_vec((input, output), all[input..].to_vec()).ok()?;
        Some(Self { mean, projection })
    }

    /// Writes `model.toml` and `head.f32` into `dir` (created).
    pub fn save(&self, dir: &Path, manifest: &HeadManifest) -> Result<(), HeadError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let params = dir.join("head.f32");
        std::fs::write(&params, self.to_bytes()).map_err(io(&params))?;
        let text = toml::to_string(manifest).map_err(|e| HeadError::Invalid(format!("model.toml: {e}")))?;
        let path = dir.join("model.toml");
        std::fs::write(&path, text).map_err(io(&path))
    }

    /// Reads a head saved by [`Head::save`].
    pub fn load(dir: &Path) -> Result<(Self, HeadManifest), HeadError> {
        let path = dir.join("model.toml");
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        let manifest: HeadManifest =
            toml::from_str(&text).map_err(|e| HeadError::Invalid(format!("{}: {e}", path.display())))?;
        let params = dir.join("head.f32");
        let bytes = std::fs::read(&params).map_err(io(&params))?;
        let head = Self::from_bytes(&bytes, manifest.input, manifest.output).ok_or_else(|| {
            HeadError::Invalid(format!("{}: not {}×{}", params.display(), manifest.input, manifest.output))
        })?;
        Ok((head, manifest))
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HeadError + '_ {
    move |source| HeadError::Io { path: path.display().to_string(), source }
}

/// The version of a head's parameters: the first 12 hex digits of their SHA-256.
pub fn version_of(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))[..12].to_owned()
}

/// Scales a (possibly strided) vector to unit length in place; unchanged when its norm is 0
/// or not finite.
pub fn l2_in_place(mut v: ndarray::ArrayViewMut1<f32>) {
    let n = v.dot(&v).sqrt();
    if n > 0.0 && n.is_finite() {
        v /= n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_round_trips_through_its_folder() {
        let head = Head {
            mean: Array1::from_vec(vec![0.5, -0.25, 0.0, 1.0, 2.0, -3.0]),
            projection: Array2::from_shape_fn((6, 4), |(i, j)| i as f32 - 0.5 * j as f32),
        };
        let dir = tempfile::tempdir().expect("tmp");
        let bytes = head.to_bytes();
        let manifest = HeadManifest {
            name: "test".into(),
            version: version_of(&bytes),
            backbone: crate::MODEL_ID.into(),
            input: 6,
            output: 4,
            seed: 0,
            data_digest: "00".into(),
            classes: 3,
            samples: 15,
            losses: vec![1.5, 0.25],
        };
        head.save(dir.path(), &manifest).expect("save");
        let (back, read) = Head::load(dir.path()).expect("load");
        assert_eq!((back, read), (head, manifest));
        std::fs::write(dir.path().join("head.f32"), [0u8; 8]).expect("truncate");
        assert!(matches!(Head::load(dir.path()), Err(HeadError::Invalid(_))));
    }
}

//! Resolving models by manifest name under `$SIGHTLINE_MODELS`, with SHA-256
//! verification.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::error::{InferenceError, Result};
use crate::manifest::{Manifest, ModelSpec};
use crate::pool::{PoolConfig, SessionPool};
use crate::runtime::Runtime;

/// Environment variable naming the models directory.
pub const MODELS_ENV: &str = "SIGHTLINE_MODELS";

/// Default models directory: `$HOME/.cache/sightline/models` (what
/// `models/fetch.sh` uses when neither `SIGHTLINE_MODELS` nor `SIGHTLINE_CACHE`
/// is set).
pub fn default_models_dir() -> PathBuf {
    if let Some(cache) = std::env::var_os("SIGHTLINE_CACHE") {
        return PathBuf::from(cache).join("models");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("sightline").join("models")
}

/// Models directory from `$SIGHTLINE_MODELS`, else [`default_models_dir`].
pub fn models_dir_from_env() -> PathBuf {
    std::env::var_os(MODELS_ENV).map(PathBuf::from).unwrap_or_else(default_models_dir)
}

/// SHA-256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| InferenceError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| InferenceError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The models directory plus the manifest. Files are verified once (SHA-256)
/// per store, at [`ModelStore::verify`] or on first use.
#[derive(Debug)]
pub struct ModelStore {
    root: PathBuf,
    manifest: Manifest,
    verified: Mutex<HashSet<String>>,
}

impl ModelStore {
    /// A store over `root` with `manifest`.
    pub fn new(root: impl Into<PathBuf>, manifest: Manifest) -> Self {
        Self { root: root.into(), manifest, verified: Mutex::new(HashSet::new()) }
    }

    /// `$SIGHTLINE_MODELS` (or the default cache) with the embedded manifest.
    pub fn from_env() -> Result<Self> {
        Ok(Self::new(models_dir_from_env(), Manifest::embedded()?))
    }

    /// The models directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The spec of model `name`.
    pub fn spec(&self, name: &str) -> Result<&ModelSpec> {
        self.manifest.model(name)
    }

    /// Where model `name` lives (not checked).
    pub fn path(&self, name: &str) -> Result<PathBuf> {
        Ok(self.root.join(&self.spec(name)?.local))
    }

    /// Where the ONNX Runtime library from the manifest lives.
    pub fn onnxruntime_path(&self) -> PathBuf {
        self.root.join(&self.manifest.onnxruntime.local)
    }

    /// Path of asset `name`, verified.
    pub fn asset_path(&self, name: &str) -> Result<PathBuf> {
        let a = self.manifest.asset(name)?;
        let path = self.root.join(&a.local);
        self.check_file(name, &path, &a.sha256)?;
        Ok(path)
    }

    /// Path of model `name` after checking that it exists and that its SHA-256
    /// matches the manifest (hashed once per store).
    pub fn verified_path(&self, name: &str) -> Result<PathBuf> {
        let spec = self.spec(name)?;
        let path = self.root.join(&spec.local);
        self.check_file(name, &path, &spec.sha256)?;
        Ok(path)
    }

    fn check_file(&self, name: &str, path: &Path, expected: &str) -> Result<()> {
        if self.verified.lock().map(|v| v.contains(name)).unwrap_or(false) {
            return Ok(());
        }
        if !path.is_file() {
            return Err(InferenceError::ModelMissing {
                name: name.to_string(),
                path: path.to_path_buf(),
                root: self.root.clone(),
            });
        }
        let actual = sha256_file(path)?;
        if actual != expected {
            return Err(InferenceError::ChecksumMismatch {
                name: name.to_string(),
                path: path.to_path_buf(),
                expected: expected.to_string(),
                actual,
            });
        }
        if let Ok(mut v) = self.verified.lock() {
            v.insert(name.to_string());
        }
        tracing::debug!(model = name, path = %path.display(), "model verified");
        Ok(())
    }

    /// Verifies the named models at start-up (all of them if `names` is
    /// empty); returns the first problem.
    pub fn verify(&self, names: &[&str]) -> Result<()> {
        if names.is_empty() {
            for m in &self.manifest.model {
                self.verified_path(&m.name)?;
            }
        } else {
            for n in names {
                self.verified_path(n)?;
            }
        }
        Ok(())
    }

    /// A verified session pool for model `name`.
    pub fn pool(&self, runtime: &Runtime, name: &str, config: PoolConfig) -> Result<SessionPool> {
        let path = self.verified_path(name)?;
        SessionPool::new(runtime, name, &path, config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_corrupt_models_are_reported() {
        let dir = std::env::temp_dir().join(format!("sightline-store-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("mtcnn")).expect("mkdir");
        let store = ModelStore::new(&dir, Manifest::embedded().expect("manifest"));
        let err = store.verified_path("mtcnn-pnet").expect_err("missing");
        assert!(matches!(err, InferenceError::ModelMissing { .. }), "{err}");
        assert!(err.to_string().contains("models/fetch.sh"), "{err}");

        std::fs::write(dir.join("mtcnn/pnet.onnx"), b"not a model").expect("write");
        let err = store.verified_path("mtcnn-pnet").expect_err("corrupt");
        assert!(matches!(err, InferenceError::ChecksumMismatch { .. }), "{err}");
        assert!(err.to_string().contains("pnet.onnx"), "{err}");
        assert!(matches!(store.verified_path("nope"), Err(InferenceError::UnknownModel(_))));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sha256_of_known_bytes() {
        let dir = std::env::temp_dir().join(format!("sightline-sha-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let f = dir.join("abc");
        std::fs::write(&f, b"abc").expect("write");
        assert_eq!(sha256_file(&f).expect("hash"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! Error type of the crate.

use std::path::PathBuf;

/// Everything that can go wrong loading ONNX Runtime, the manifest, a model or
/// running it. Messages name the file involved and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    /// The ONNX Runtime shared library could not be loaded.
    #[error(
        "cannot load the ONNX Runtime library {path}: {reason}. Run models/fetch.sh and point \
         ORT_DYLIB_PATH at the libonnxruntime.so.1.31.1 it prints (ort 2.0.0-rc.15 needs ONNX Runtime >= 1.31)"
    )]
    RuntimeLoad { path: PathBuf, reason: String },

    /// The ONNX Runtime environment could not be created.
    #[error("cannot create the ONNX Runtime environment: {0}")]
    Environment(String),

    /// The runtime was used before [`crate::Runtime::init`].
    #[error(
        "ONNX Runtime is not initialised: call Runtime::init(ORT_DYLIB_PATH) first (models/fetch.sh prints the path)"
    )]
    RuntimeNotInitialised,

    /// The manifest could not be read or parsed.
    #[error("model manifest {path}: {reason}")]
    Manifest { path: String, reason: String },

    /// A model name that the manifest does not list.
    #[error("unknown model {0:?}: not in models/manifest.toml")]
    UnknownModel(String),

    /// A model file is not where the manifest says.
    #[error("model {name}: {path} is missing. Run models/fetch.sh (it downloads into $SIGHTLINE_MODELS, now {root})")]
    ModelMissing { name: String, path: PathBuf, root: PathBuf },

    /// A model file's SHA-256 differs from the manifest.
    #[error(
        "model {name}: {path} has SHA-256 {actual}, models/manifest.toml pins {expected}. \
         Rerun models/fetch.sh (it re-extracts and verifies); if the manifest changed, the fixtures must be regenerated too"
    )]
    ChecksumMismatch { name: String, path: PathBuf, expected: String, actual: String },

    /// An I/O error on a file.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// ONNX Runtime refused to load or run a model.
    #[error("model {model}: {message}")]
    Ort { model: String, message: String },

    /// The caller passed inputs that do not fit the model.
    #[error("model {model}: {message}")]
    Input { model: String, message: String },

    /// Image preprocessing failed.
    #[error("preprocessing: {0}")]
    Preprocess(String),

    /// A `.npy` file could not be parsed.
    #[error("npy {path}: {reason}")]
    Npy { path: String, reason: String },

    /// The blocking inference task panicked or was cancelled.
    #[error("model {model}: inference task failed: {message}")]
    Task { model: String, message: String },
}

impl InferenceError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}

/// Result alias of the crate.
pub type Result<T, E = InferenceError> = std::result::Result<T, E>;

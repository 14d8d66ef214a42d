//! Inference for Sightline: the ONNX Runtime library (loaded at run time
//! through `ort`'s `load-dynamic`), the model manifest (`models/manifest.toml`),
//! a [`ModelStore`] that resolves models by name under `$SIGHTLINE_MODELS` and
//! verifies their SHA-256, a [`SessionPool`] with an async `run`, and the
//! image preprocessing helpers the models need.
//!
//! ```no_run
//! # async fn demo() -> sightline_inference::Result<()> {
//! use sightline_inference::{ModelStore, PoolConfig, Runtime, preprocess};
//! let store = ModelStore::from_env()?;               // $SIGHTLINE_MODELS
//! let runtime = Runtime::init_from_env(store.root())?; // $ORT_DYLIB_PATH
//! store.verify(&["embed"])?;                           // SHA-256 at start-up
//! let pool = store.pool(runtime, "embed", PoolConfig { sessions: 2, ..Default::default() })?;
//! let img = image::open("photo.jpg").map_err(|e| sightline_inference::InferenceError::Preprocess(e.to_string()))?.to_rgb8();
//! let img = preprocess::resize_rgb(&img, 224, 224, preprocess::Filter::Bilinear)?;
//! let x = preprocess::to_tensor(&img, preprocess::Layout::Nchw, preprocess::ChannelOrder::Rgb,
//!                               &preprocess::Normalize::MINUS_127_DIV_128);
//! let out = pool.run(vec![("input".into(), x.into_dyn())]).await?;
//! let features = out.get("features");
//! # let _ = features; Ok(()) }
//! ```
//!
//! Get the models and the library with `models/fetch.sh`; it prints the
//! `SIGHTLINE_MODELS` and `ORT_DYLIB_PATH` exports.
//!
//! [`verify`] checks every model against the Python onnxruntime reference
//! outputs in `tests/fixtures/models` ([`verify_all`], [`ModelReport`]).

pub mod error;
pub mod manifest;
pub mod npy;
pub mod once;
pub mod pool;
pub mod preprocess;
pub mod runtime;
pub mod store;
pub mod verify;

pub use error::{InferenceError, Result};
pub use manifest::{Dim, Manifest, ModelSpec, PreprocessingSpec, TensorSpec};
pub use once::{LoadOnce, Models};
pub use pool::{Optimization, Outputs, PoolConfig, SessionPool};
pub use runtime::{DYLIB_ENV, Runtime};
pub use store::{MODELS_ENV, ModelStore, default_models_dir, models_dir_from_env, sha256_file};
pub use verify::{FIXTURES_ENV, ModelReport, default_fixtures_dir, verify_all, verify_model};

//! Routes through several stages in the embedded pipeline (in-memory bus and coordination,
//! local folder storage), on the committed fixtures. They live here, not in a stage crate,
//! because a stage crate never depends on another one (`tests/layering.rs`).
//!
//! The tests that run the models need them (`eval "$(models/fetch.sh)"`): they are skipped
//! with a message when the models are missing and the `models` feature is off; with
//! `--features models`, missing models are a failure.

mod annotate;
mod face;
mod ocr;

/// Whether the calling tests must fail, not skip, when the models are missing.
const MODELS_REQUIRED: bool = cfg!(feature = "models");

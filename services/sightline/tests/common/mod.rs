//! Helpers shared by the CLI's integration tests that run the models.

use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether the models can be used: `SIGHTLINE_MODELS` is set, or the `models` feature makes
/// their absence a failure. Otherwise says SKIPPED on stderr and returns false.
pub fn models_available(test: &str) -> bool {
    if std::env::var_os("SIGHTLINE_MODELS").is_some() || cfg!(feature = "models") {
        return true;
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: SIGHTLINE_MODELS is unset and the `models` feature is off. \
         Run `eval \"$(models/fetch.sh)\"` and rerun, or use `--features models` to make missing models a failure."
    );
    false
}

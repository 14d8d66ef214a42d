//! Loading the ONNX Runtime shared library (once per process).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;

use crate::error::{InferenceError, Result};

/// Environment variable naming the ONNX Runtime shared library.
pub const DYLIB_ENV: &str = "ORT_DYLIB_PATH";

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

/// The loaded ONNX Runtime: the library path and the process-wide
/// environment (ONNX Runtime allows one per process, so this is a singleton
/// that lives until the process exits).
pub struct Runtime {
    dylib: PathBuf,
    env: Environment,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("dylib", &self.dylib).finish_non_exhaustive()
    }
}

impl Runtime {
    /// Loads ONNX Runtime from `dylib_path` (e.g. the
    /// `libonnxruntime.so.1.31.1` that `models/fetch.sh` extracts) and creates
    /// the environment. Returns a clear error instead of panicking when the
    /// file is missing, not a library, or too old for `ort` (`api-31`).
    ///
    /// Idempotent: later calls return the runtime of the first successful
    /// call (a process can load the library only once); a later call with a
    /// different path logs a warning.
    pub fn init(dylib_path: impl AsRef<Path>) -> Result<&'static Runtime> {
        let requested = dylib_path.as_ref();
        if let Some(rt) = RUNTIME.get() {
            warn_if_different(rt, requested);
            return Ok(rt);
        }
        let _guard = INIT.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rt) = RUNTIME.get() {
            warn_if_different(rt, requested);
            return Ok(rt);
        }
        if !requested.is_file() {
            return Err(InferenceError::RuntimeLoad { path: requested.to_path_buf(), reason: "no such file".into() });
        }
        // ort resolves relative paths against the executable's directory; be explicit.
        let path = std::fs::canonicalize(requested).map_err(|e| InferenceError::io(requested, e))?;
        let builder = ort::init_from(&path)
            .map_err(|e| InferenceError::RuntimeLoad { path: path.clone(), reason: e.to_string() })?;
        let env = builder
            .with_name("sightline")
            .with_telemetry(false)
            .build()
            .map_err(|e| InferenceError::Environment(e.to_string()))?;
        tracing::info!(dylib = %path.display(), "ONNX Runtime loaded");
        Ok(RUNTIME.get_or_init(|| Runtime { dylib: path, env }))
    }

    /// [`Runtime::init`] with `$ORT_DYLIB_PATH`, or else the library that
    /// `models/fetch.sh` puts under `models_dir` (see the manifest's
    /// `[onnxruntime] local`).
    pub fn init_from_env(models_dir: &Path) -> Result<&'static Runtime> {
        let path = match std::env::var_os(DYLIB_ENV) {
            Some(p) => PathBuf::from(p),
            None => models_dir.join(crate::manifest::Manifest::embedded()?.onnxruntime.local),
        };
        Self::init(path)
    }

    /// The runtime, if [`Runtime::init`] succeeded before.
    pub fn get() -> Option<&'static Runtime> {
        RUNTIME.get()
    }

    /// The library that was loaded.
    pub fn dylib(&self) -> &Path {
        &self.dylib
    }

    /// The process-wide ONNX Runtime environment, for building sessions.
    pub fn environment(&self) -> &Environment {
        &self.env
    }
}

fn warn_if_different(rt: &Runtime, requested: &Path) {
    let same = std::fs::canonicalize(requested).map(|p| p == rt.dylib).unwrap_or(false);
    if !same {
        tracing::warn!(
            loaded = %rt.dylib.display(),
            requested = %requested.display(),
            "ONNX Runtime is already loaded from another path; keeping it"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_library_is_an_error_not_a_panic() {
        if Runtime::get().is_some() {
            return; // another test in this process loaded the real library
        }
        let err = Runtime::init("/nonexistent/libonnxruntime.so.1.31.1").expect_err("must fail");
        let msg = err.to_string();
        assert!(msg.contains("/nonexistent/libonnxruntime.so.1.31.1"), "{msg}");
        assert!(msg.contains("models/fetch.sh"), "{msg}");
    }

    #[test]
    fn a_file_that_is_not_a_library_is_an_error() {
        if Runtime::get().is_some() {
            return;
        }
        let dir = std::env::temp_dir().join(format!("sightline-rt-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let fake = dir.join("libonnxruntime.so");
        std::fs::write(&fake, b"not an ELF file").expect("write");
        let err = Runtime::init(&fake).expect_err("must fail");
        assert!(matches!(err, InferenceError::RuntimeLoad { .. }), "{err}");
        assert!(err.to_string().contains("libonnxruntime.so"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

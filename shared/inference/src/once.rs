//! [`LoadOnce`]: models loaded once per process, on the blocking pool, by whichever caller
//! comes first (a readiness check or a message); [`Models`]: a model stage's models, the one
//! way every model stage loads them and answers readiness.

use std::fmt::Display;
use std::sync::{Arc, Mutex, OnceLock};

/// A value loaded at most once. Concurrent callers wait for the one load; a failed load is
/// tried again by the next caller (the models may have been fetched meanwhile).
pub struct LoadOnce<T> {
    cell: Arc<OnceLock<Arc<T>>>,
    loading: Arc<Mutex<()>>,
}

impl<T> Default for LoadOnce<T> {
    fn default() -> Self {
        Self { cell: Arc::new(OnceLock::new()), loading: Arc::new(Mutex::new(())) }
    }
}

impl<T: Send + Sync + 'static> LoadOnce<T> {
    /// Nothing loaded yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value, if loaded.
    pub fn get(&self) -> Option<Arc<T>> {
        self.cell.get().cloned()
    }

    /// The value, running `load` on the blocking pool if nothing is loaded yet. The load runs
    /// to completion even if the caller stops waiting. Errors are `what: error`.
    pub async fn get_or_load<F, E>(&self, what: &str, load: F) -> Result<Arc<T>, String>
    where
        F: FnOnce() -> Result<T, E> + Send + 'static,
        E: Display + Send + 'static,
    {
        if let Some(v) = self.get() {
            return Ok(v);
        }
        let (cell, lock) = (self.cell.clone(), self.loading.clone());
        let task = tokio::task::spawn_blocking(move || {
            let _one_loader = lock.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(v) = cell.get() {
                return Ok(v.clone());
            }
            let v = Arc::new(load()?);
            Ok::<_, E>(cell.get_or_init(|| v).clone())
        });
        match task.await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(format!("{what}: {e}")),
            Err(e) => Err(format!("{what}: loading failed: {e}")),
        }
    }

    /// Already loaded with `value`.
    pub fn loaded(value: Arc<T>) -> Self {
        let once = Self::new();
        let _ = once.cell.set(value);
        once
    }
}

/// How a stage's models are loaded (blocking; run on the blocking pool, where
/// `tokio::runtime::Handle::current()` still answers).
type Loader<T> = Arc<dyn Fn() -> Result<T, String> + Send + Sync>;

/// A model stage's models: loaded on the first readiness check or message, on the blocking
/// pool, once per stage; a failed load (models not fetched yet) is tried again by the next
/// caller. Until they load, [`Models::ready`] says why, naming the missing or corrupt file and
/// `models/fetch.sh` (the [`crate::ModelStore`] errors do), so a worker stays up answering
/// `/readyz` 503 instead of exiting.
pub struct Models<T> {
    what: &'static str,
    once: LoadOnce<T>,
    load: Option<Loader<T>>,
}

impl<T> std::fmt::Debug for Models<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Models").field("what", &self.what).field("loaded", &self.once.cell.get().is_some()).finish()
    }
}

impl<T: Send + Sync + 'static> Models<T> {
    /// Models called `what` in errors (`"detect models"`), loaded by `load`.
    pub fn new<E: Display>(what: &'static str, load: impl Fn() -> Result<T, E> + Send + Sync + 'static) -> Self {
        let load: Loader<T> = Arc::new(move || load().map_err(|e| e.to_string()));
        Self { what, once: LoadOnce::new(), load: Some(load) }
    }

    /// Models already loaded (tests, and callers that share one engine between stages).
    pub fn loaded(what: &'static str, value: Arc<T>) -> Self {
        Self { what, once: LoadOnce::loaded(value), load: None }
    }

    /// The models, if loaded.
    pub fn get(&self) -> Option<Arc<T>> {
        self.once.get()
    }

    /// The models, loading them if needed. The load runs to completion on the blocking pool
    /// even if the caller gives up waiting. Errors are `what: error`.
    pub async fn load(&self) -> Result<Arc<T>, String> {
        if let Some(v) = self.once.get() {
            return Ok(v);
        }
        let load = self.load.clone();
        self.once
            .get_or_load(self.what, move || match load {
                Some(load) => load(),
                None => Err("no loader".to_owned()),
            })
            .await
    }

    /// Whether the models are loaded, loading them if not: a stage's readiness.
    pub async fn ready(&self) -> Result<(), String> {
        self.load().await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::InferenceError;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn loads_once_for_concurrent_callers_and_retries_after_a_failure() {
        let once = Arc::new(LoadOnce::<u32>::new());
        let err = once
            .get_or_load("model", || Err(InferenceError::Environment("missing file, run models/fetch.sh".into())))
            .await
            .expect_err("failed load");
        assert!(err.starts_with("model: ") && err.contains("models/fetch.sh"), "{err}");
        assert!(once.get().is_none(), "a failure is not remembered");

        let loads = Arc::new(AtomicUsize::new(0));
        let callers = (0..8).map(|_| {
            let (once, loads) = (once.clone(), loads.clone());
            tokio::spawn(async move {
                once.get_or_load("model", move || {
                    loads.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    Ok::<_, InferenceError>(7)
                })
                .await
            })
        });
        for c in callers.collect::<Vec<_>>() {
            assert_eq!(*c.await.expect("join").expect("loaded"), 7);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1, "one load for all callers");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn models_are_not_ready_until_they_load_and_then_stay_loaded() {
        let present = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let loads = Arc::new(AtomicUsize::new(0));
        let (p, l) = (present.clone(), loads.clone());
        let models = Models::new("test models", move || {
            l.fetch_add(1, Ordering::SeqCst);
            if p.load(Ordering::SeqCst) {
                Ok(tokio::runtime::Handle::current().runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
            } else {
                Err(InferenceError::Environment("model.onnx is missing, run models/fetch.sh".into()))
            }
        });
        let err = models.ready().await.expect_err("not fetched yet");
        assert_eq!(
            err,
            "test models: cannot create the ONNX Runtime environment: model.onnx is missing, run models/fetch.sh"
        );
        assert!(models.get().is_none());
        present.store(true, Ordering::SeqCst);
        assert_eq!(models.ready().await, Ok(()), "tried again once the files are there");
        assert!(*models.load().await.expect("loaded"), "the loader sees the runtime handle");
        assert_eq!(loads.load(Ordering::SeqCst), 2, "one failed load, one load, then none");

        let given = Models::loaded("given", Arc::new(false));
        assert_eq!(given.ready().await, Ok(()));
        assert!(!*given.load().await.expect("loaded"));
    }
}

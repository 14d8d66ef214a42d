//! [`LoadOnce`]: models loaded once per process, on the blocking pool, by whichever caller
//! comes first (a readiness check or a message).

use std::sync::{Arc, Mutex, OnceLock};

use crate::InferenceError;

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
    pub async fn get_or_load<F>(&self, what: &str, load: F) -> Result<Arc<T>, String>
    where
        F: FnOnce() -> Result<T, InferenceError> + Send + 'static,
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
            Ok::<_, InferenceError>(cell.get_or_init(|| v).clone())
        });
        match task.await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(format!("{what}: {e}")),
            Err(e) => Err(format!("{what}: loading failed: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

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
                    Ok(7)
                })
                .await
            })
        });
        for c in callers.collect::<Vec<_>>() {
            assert_eq!(*c.await.expect("join").expect("loaded"), 7);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1, "one load for all callers");
    }
}

//! A pool of ONNX Runtime sessions for one model.
//!
//! `ort::Session::run` takes `&mut self`, so a session serves one call at a
//! time. The pool holds N sessions (each with a small intra-op thread pool,
//! 1 by default: on 2 cores several multi-threaded sessions only fight), hands
//! them out one per call and puts them back afterwards, also when the call
//! fails or panics. [`SessionPool::run`] executes on
//! `tokio::task::spawn_blocking` and never blocks the async runtime.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use ndarray::ArrayD;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::Tensor;
use tokio::sync::Semaphore;

use crate::error::{InferenceError, Result};
use crate::runtime::Runtime;

/// Graph optimisation level (ONNX Runtime's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Optimization {
    Disable,
    Basic,
    Extended,
    /// Everything (ONNX Runtime's and Python onnxruntime's default).
    #[default]
    All,
}

impl From<Optimization> for GraphOptimizationLevel {
    fn from(o: Optimization) -> Self {
        match o {
            Optimization::Disable => GraphOptimizationLevel::Disable,
            Optimization::Basic => GraphOptimizationLevel::Level1,
            Optimization::Extended => GraphOptimizationLevel::Level2,
            Optimization::All => GraphOptimizationLevel::All,
        }
    }
}

/// How to build the sessions of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Number of sessions (concurrent calls). At least 1.
    pub sessions: usize,
    /// Intra-op threads per session.
    pub intra_threads: usize,
    /// Graph optimisation level.
    pub optimization: Optimization,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self { sessions: 1, intra_threads: 1, optimization: Optimization::All }
    }
}

/// Named float32 tensors returned by a run, in the order requested.
#[derive(Debug, Clone, Default)]
pub struct Outputs(pub Vec<(String, ArrayD<f32>)>);

impl Outputs {
    /// The output called `name`.
    pub fn get(&self, name: &str) -> Option<&ArrayD<f32>> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, a)| a)
    }

    /// Removes and returns the output called `name`.
    pub fn take(&mut self, name: &str) -> Option<ArrayD<f32>> {
        let i = self.0.iter().position(|(n, _)| n == name)?;
        Some(self.0.remove(i).1)
    }
}

struct Slots {
    free: Mutex<Vec<Session>>,
    available: Condvar,
}

impl Slots {
    fn checkout(&self) -> Session {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(s) = free.pop() {
                return s;
            }
            free = self.available.wait(free).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn give_back(&self, s: Session) {
        self.free.lock().unwrap_or_else(|p| p.into_inner()).push(s);
        self.available.notify_one();
    }
}

/// Returns the session to the pool when dropped (also while unwinding).
struct Lease<'a> {
    slots: &'a Slots,
    session: Option<Session>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            self.slots.give_back(s);
        }
    }
}

/// N sessions of one model.
#[derive(Clone)]
pub struct SessionPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    model: String,
    path: PathBuf,
    slots: Slots,
    permits: Arc<Semaphore>,
    size: usize,
    inputs: Vec<String>,
    outputs: Vec<String>,
    metadata: HashMap<String, String>,
}

impl std::fmt::Debug for SessionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionPool")
            .field("model", &self.inner.model)
            .field("path", &self.inner.path)
            .field("sessions", &self.inner.size)
            .field("inputs", &self.inner.inputs)
            .field("outputs", &self.inner.outputs)
            .finish()
    }
}

fn ort_err(model: &str) -> impl Fn(String) -> InferenceError + '_ {
    move |message| InferenceError::Ort { model: model.to_string(), message }
}

impl SessionPool {
    /// Loads `config.sessions` sessions of the model file `path` (not
    /// verified here: use [`crate::ModelStore::pool`] for that).
    pub fn new(runtime: &Runtime, model: &str, path: &Path, config: PoolConfig) -> Result<Self> {
        let err = ort_err(model);
        let n = config.sessions.max(1);
        let mut sessions = Vec::with_capacity(n);
        for _ in 0..n {
            let session = Session::builder(runtime.environment())
                .map_err(|e| err(e.to_string()))?
                .with_optimization_level(config.optimization.into())
                .map_err(|e| err(e.to_string()))?
                .with_intra_threads(config.intra_threads.max(1))
                .map_err(|e| err(e.to_string()))?
                .with_inter_threads(1)
                .map_err(|e| err(e.to_string()))?
                .commit_from_file(path)
                .map_err(|e| err(format!("cannot load {}: {e}", path.display())))?;
            sessions.push(session);
        }
        let first = sessions.first().ok_or_else(|| err("no session".into()))?;
        let inputs = first.inputs().iter().map(|o| o.name().to_string()).collect();
        let outputs = first.outputs().iter().map(|o| o.name().to_string()).collect();
        let mut metadata = HashMap::new();
        if let Ok(meta) = first.metadata()
            && let Ok(keys) = meta.custom_keys()
        {
            for k in keys {
                if let Some(v) = meta.custom(&k) {
                    metadata.insert(k, v);
                }
            }
        }
        tracing::info!(model, path = %path.display(), sessions = n, intra_threads = config.intra_threads, "session pool ready");
        Ok(Self {
            inner: Arc::new(PoolInner {
                model: model.to_string(),
                path: path.to_path_buf(),
                slots: Slots { free: Mutex::new(sessions), available: Condvar::new() },
                permits: Arc::new(Semaphore::new(n)),
                size: n,
                inputs,
                outputs,
                metadata,
            }),
        })
    }

    /// Manifest name of the model.
    pub fn model(&self) -> &str {
        &self.inner.model
    }

    /// Number of sessions.
    pub fn size(&self) -> usize {
        self.inner.size
    }

    /// Input names, in model order.
    pub fn input_names(&self) -> &[String] {
        &self.inner.inputs
    }

    /// Output names, in model order.
    pub fn output_names(&self) -> &[String] {
        &self.inner.outputs
    }

    /// A custom metadata value of the model (e.g. `character`, the OCR
    /// recognition dictionary).
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.inner.metadata.get(key).map(String::as_str)
    }

    /// Runs the model on the calling thread, blocking while all sessions are
    /// busy. Returns every output of the model as float32.
    pub fn run_blocking(&self, inputs: Vec<(String, ArrayD<f32>)>) -> Result<Outputs> {
        self.inner.run(inputs)
    }

    /// Runs the model on tokio's blocking thread pool. At most `size()` calls
    /// are dispatched at once; the rest wait here without holding a thread.
    pub async fn run(&self, inputs: Vec<(String, ArrayD<f32>)>) -> Result<Outputs> {
        let permit = Arc::clone(&self.inner.permits)
            .acquire_owned()
            .await
            .map_err(|e| InferenceError::Task { model: self.inner.model.clone(), message: e.to_string() })?;
        let inner = Arc::clone(&self.inner);
        let handle = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            inner.run(inputs)
        });
        handle.await.map_err(|e| InferenceError::Task { model: self.inner.model.clone(), message: e.to_string() })?
    }
}

impl PoolInner {
    fn run(&self, inputs: Vec<(String, ArrayD<f32>)>) -> Result<Outputs> {
        let bad_input = |message: String| InferenceError::Input { model: self.model.clone(), message };
        if inputs.len() != self.inputs.len() {
            return Err(bad_input(format!("expected inputs {:?}, got {}", self.inputs, inputs.len())));
        }
        let mut values = Vec::with_capacity(inputs.len());
        for (name, array) in inputs {
            if !self.inputs.contains(&name) {
                return Err(bad_input(format!("unknown input {name:?}; the model takes {:?}", self.inputs)));
            }
            let shape = array.shape().to_vec();
            let tensor = Tensor::from_array(array).map_err(|e| bad_input(format!("input {name:?} {shape:?}: {e}")))?;
            values.push((name, tensor));
        }
        let err = ort_err(&self.model);
        let mut lease = Lease { slots: &self.slots, session: Some(self.slots.checkout()) };
        let session = lease.session.as_mut().ok_or_else(|| err("session lost".into()))?;
        let outputs = session.run(values).map_err(|e| err(e.to_string()))?;
        let mut out = Vec::with_capacity(self.outputs.len());
        for name in &self.outputs {
            let value = outputs.get(name).ok_or_else(|| err(format!("output {name:?} missing")))?;
            let array =
                value.try_extract_array::<f32>().map_err(|e| err(format!("output {name:?} is not float32: {e}")))?;
            out.push((name.clone(), array.to_owned()));
        }
        Ok(Outputs(out))
    }
}

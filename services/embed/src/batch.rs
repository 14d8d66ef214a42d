//! Batching concurrent requests into one model call: handlers send one preprocessed image
//! each; a batcher task collects what arrives within a short window (up to a maximum batch),
//! stacks it into `[N, 3, 224, 224]` and runs the model once. While a batch runs, the next
//! one fills up, so under load the batches grow by themselves.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ndarray::{Array3, Array4, ArrayD, Axis};
use sightline_inference::{InferenceError, Outputs};
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Runs one stacked batch (blocking); returns the model's outputs.
pub type RunBatch = Arc<dyn Fn(Array4<f32>) -> Result<Outputs, InferenceError> + Send + Sync>;

/// How requests are batched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Largest batch.
    pub max_batch: usize,
    /// How long the first request of a batch waits for company.
    pub window: Duration,
    /// Batches running at once (the session pool's size).
    pub concurrency: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self { max_batch: 16, window: Duration::from_millis(5), concurrency: 1 }
    }
}

/// Counters for tests and logs.
#[derive(Debug, Default)]
pub struct BatchStats {
    /// Model calls.
    pub batches: AtomicU64,
    /// Images embedded.
    pub images: AtomicU64,
    /// The largest batch so far.
    pub largest: AtomicU64,
}

struct Request {
    input: Array3<f32>,
    reply: oneshot::Sender<Result<Vec<f32>, String>>,
}

/// The handle handlers use; the batcher task stops when every handle is dropped.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Request>,
    stats: Arc<BatchStats>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").field("stats", &self.stats).finish()
    }
}

impl Batcher {
    /// Starts the batcher task on the current tokio runtime. `output` names the model output
    /// to return per image (row `i` of an `[N, D]` tensor).
    pub fn start(run: RunBatch, output: &str, config: BatchConfig) -> Self {
        let (tx, rx) = mpsc::channel(config.max_batch.max(1) * 4);
        let stats = Arc::new(BatchStats::default());
        tokio::spawn(collect(rx, run, output.to_owned(), config, stats.clone()));
        Self { tx, stats }
    }

    /// Embeds one preprocessed image `[3, H, W]`; waits for its batch.
    pub async fn embed(&self, input: Array3<f32>) -> Result<Vec<f32>, String> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Request { input, reply }).await.map_err(|_| "the batcher stopped".to_owned())?;
        answer.await.map_err(|_| "the batch was dropped".to_owned())?
    }

    /// The counters.
    pub fn stats(&self) -> &BatchStats {
        &self.stats
    }
}

async fn collect(
    mut rx: mpsc::Receiver<Request>,
    run: RunBatch,
    output: String,
    config: BatchConfig,
    stats: Arc<BatchStats>,
) {
    let running = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let max = config.max_batch.max(1);
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + config.window;
        while batch.len() < max {
            tokio::select! {
                r = rx.recv() => match r {
                    Some(r) => batch.push(r),
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        // Wait for a free session; meanwhile requests queue in the channel for the next batch.
        let Ok(permit) = running.clone().acquire_owned().await else { break };
        let (run, output, stats) = (run.clone(), output.clone(), stats.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let n = batch.len();
            let (inputs, replies): (Vec<Array3<f32>>, Vec<_>) = batch.into_iter().map(|r| (r.input, r.reply)).unzip();
            let result = tokio::task::spawn_blocking(move || run_stacked(&run, &inputs, &output, n)).await;
            stats.batches.fetch_add(1, Ordering::Relaxed);
            stats.images.fetch_add(n as u64, Ordering::Relaxed);
            stats.largest.fetch_max(n as u64, Ordering::Relaxed);
            match result {
                Ok(Ok(rows)) => {
                    for (reply, row) in replies.into_iter().zip(rows) {
                        let _ = reply.send(Ok(row));
                    }
                }
                Ok(Err(e)) => replies.into_iter().for_each(|r| {
                    let _ = r.send(Err(e.clone()));
                }),
                Err(e) => replies.into_iter().for_each(|r| {
                    let _ = r.send(Err(format!("batch task failed: {e}")));
                }),
            }
        });
    }
}

/// Stacks `[3, H, W]` inputs into `[N, 3, H, W]`, runs, and splits output `name` into rows.
fn run_stacked(run: &RunBatch, inputs: &[Array3<f32>], name: &str, n: usize) -> Result<Vec<Vec<f32>>, String> {
    let views: Vec<_> = inputs.iter().map(|a| a.view().insert_axis(Axis(0))).collect();
    let stacked = ndarray::concatenate(Axis(0), &views).map_err(|e| format!("stack batch: {e}"))?;
    let stacked: Array4<f32> = stacked.into_dimensionality().map_err(|e| format!("stack batch: {e}"))?;
    let out = run(stacked).map_err(|e| e.to_string())?;
    let features: &ArrayD<f32> = out.get(name).ok_or_else(|| format!("model output {name:?} missing"))?;
    rows(features, n)
}

/// Splits an `[N, D]` tensor into N rows.
pub fn rows(t: &ArrayD<f32>, n: usize) -> Result<Vec<Vec<f32>>, String> {
    if t.ndim() != 2 || t.shape()[0] != n {
        return Err(format!("expected [{n}, D] features, got {:?}", t.shape()));
    }
    Ok(t.axis_iter(Axis(0)).map(|r| r.iter().copied().collect()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake model: feature row i = [sum of input i, batch size].
    fn fake(calls: Arc<AtomicU64>) -> RunBatch {
        Arc::new(move |x: Array4<f32>| {
            calls.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
            let n = x.shape()[0];
            let rows: Vec<f32> = x.axis_iter(Axis(0)).flat_map(|r| [r.sum(), n as f32]).collect();
            let t = ndarray::Array2::from_shape_vec((n, 2), rows).expect("shape").into_dyn();
            Ok(Outputs(vec![("features".into(), t)]))
        })
    }

    #[tokio::test]
    async fn concurrent_requests_share_batches_and_get_their_own_rows() {
        let calls = Arc::new(AtomicU64::new(0));
        let batcher = Batcher::start(
            fake(calls.clone()),
            "features",
            BatchConfig { max_batch: 8, window: Duration::from_millis(20), concurrency: 1 },
        );
        let handles: Vec<_> = (0..12)
            .map(|i| {
                let b = batcher.clone();
                tokio::spawn(async move { (i, b.embed(Array3::from_elem((3, 2, 2), i as f32)).await) })
            })
            .collect();
        for h in handles {
            let (i, row) = h.await.expect("join");
            let row = row.expect("embedding");
            assert_eq!(row[0], 12.0 * i as f32, "each request gets its own row");
        }
        let stats = batcher.stats();
        assert_eq!(stats.images.load(Ordering::SeqCst), 12);
        let batches = stats.batches.load(Ordering::SeqCst);
        assert!((2..12).contains(&batches), "12 requests in {batches} batches");
        assert!(stats.largest.load(Ordering::SeqCst) <= 8, "max batch respected");
        assert_eq!(calls.load(Ordering::SeqCst), batches);
    }

    #[tokio::test]
    async fn model_errors_reach_every_request_of_the_batch() {
        let run: RunBatch = Arc::new(|_x| Err(InferenceError::Preprocess("boom".into())));
        let batcher = Batcher::start(run, "features", BatchConfig::default());
        let (a, b) = tokio::join!(batcher.embed(Array3::zeros((3, 2, 2))), batcher.embed(Array3::zeros((3, 2, 2))));
        assert!(a.expect_err("fails").contains("boom"));
        assert!(b.expect_err("fails").contains("boom"));
    }

    #[test]
    fn rows_checks_the_shape() {
        let t = ndarray::Array2::from_shape_vec((2, 3), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).expect("shape").into_dyn();
        assert_eq!(rows(&t, 2).expect("rows"), vec![vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]]);
        assert!(rows(&t, 3).is_err());
    }
}

//! The embedded mode: every stage in one process over the in-memory bus, a local folder and
//! in-memory coordination, running the same stage code as the workers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sightline_coord::JobStatus;
use sightline_messages::{ItemRecord, JobSpec, Source};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::metrics::Metrics;
use crate::runner::{Runner, submit_job};
use crate::{Backends, RunnerSettings, Stage, records};

/// Runners for a set of stages sharing one set of backends.
pub struct Pipeline {
    backends: Backends,
    shutdown: CancellationToken,
    runners: Vec<JoinHandle<()>>,
}

impl Pipeline {
    /// Starts one runner per stage.
    pub fn start(backends: Backends, stages: Vec<Arc<dyn Stage>>, settings: RunnerSettings) -> Self {
        let shutdown = CancellationToken::new();
        let metrics = Metrics::new();
        let runners = stages
            .into_iter()
            .map(|stage| {
                let runner = Runner::new(stage, backends.clone(), settings.clone(), metrics.clone());
                tokio::spawn(runner.run(shutdown.clone()))
            })
            .collect();
        Self { backends, shutdown, runners }
    }

    /// The shared backends.
    pub fn backends(&self) -> &Backends {
        &self.backends
    }

    /// Waits until `job` is complete, calling `progress` on every change.
    pub async fn wait(
        &self,
        job: Uuid,
        progress: impl FnMut(&JobStatus),
    ) -> Result<Option<JobStatus>, sightline_coord::CoordError> {
        wait_for_job(self.backends.coord.as_ref(), job, progress, None).await
    }

    /// Stops every runner and waits for them to drain.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for r in self.runners {
            let _ = r.await;
        }
    }
}

/// Polls the job's status until it is complete (or `timeout` passes: `Ok(None)`).
pub async fn wait_for_job(
    coord: &dyn sightline_coord::Coord,
    job: Uuid,
    mut progress: impl FnMut(&JobStatus),
    timeout: Option<Duration>,
) -> Result<Option<JobStatus>, sightline_coord::CoordError> {
    let start = std::time::Instant::now();
    let mut last: Option<JobStatus> = None;
    loop {
        if let Some(status) = coord.job_status(&job.to_string()).await? {
            if last.as_ref() != Some(&status) {
                progress(&status);
            }
            if status.is_complete() {
                return Ok(Some(status));
            }
            last = Some(status);
        }
        if timeout.is_some_and(|t| start.elapsed() > t) {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Why an embedded job could not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Inputs were given for a job whose source is not a storage prefix.
    #[error("inputs can only be uploaded for a job whose source is a storage prefix")]
    NotAPrefix,
    /// An input could not be stored.
    #[error("upload {name}: {source}")]
    Upload {
        /// The input's name.
        name: String,
        /// What storage said.
        source: sightline_blob::BlobError,
    },
    /// The job could not be published.
    #[error("submit job: {0}")]
    Submit(#[from] sightline_bus::BusError),
    /// Progress could not be read.
    #[error("wait for job: {0}")]
    Wait(#[from] sightline_coord::CoordError),
    /// The job's progress disappeared before it completed.
    #[error("job {0} vanished before it completed")]
    Vanished(Uuid),
    /// The records could not be read back.
    #[error("read records: {0}")]
    Records(#[source] sightline_blob::BlobError),
}

/// What an embedded job did: its final status and every image's record, in item order.
#[derive(Debug, Clone)]
pub struct JobRun {
    /// The job's final progress.
    pub status: JobStatus,
    /// One record per image, in item order.
    pub records: Vec<ItemRecord>,
    /// From the submission to the last record.
    pub elapsed: Duration,
}

/// Runner settings for the embedded mode: the same runner, with retries measured in
/// milliseconds rather than seconds (nothing to wait out in one process).
pub fn embedded_settings() -> RunnerSettings {
    RunnerSettings { retry_base_ms: 50, retry_max_ms: 500, ..RunnerSettings::default() }
}

/// Runs one job in this process, the way every embedded command and test does: stores
/// `inputs` (relative name, bytes) under the job's source prefix, starts a runner per stage
/// (with `settings`, usually [`embedded_settings`]), submits `spec`, waits for the job
/// (calling `progress` on every change), stops the runners and reads the records back.
/// Inputs may be empty when the caller stored them already.
pub async fn run_job(
    backends: &Backends,
    stages: Vec<Arc<dyn Stage>>,
    inputs: Vec<(String, Bytes)>,
    spec: &JobSpec,
    settings: RunnerSettings,
    progress: impl FnMut(&JobStatus),
) -> Result<JobRun, JobError> {
    if !inputs.is_empty() {
        let Source::S3Prefix { prefix } = &spec.source else {
            return Err(JobError::NotAPrefix);
        };
        for (name, bytes) in inputs {
            let key = format!("{prefix}{name}");
            backends.blob.put(&key, bytes).await.map_err(|source| JobError::Upload { name, source })?;
        }
    }
    let started = Instant::now();
    let pipeline = Pipeline::start(backends.clone(), stages, settings);
    let waited = async {
        submit_job(backends.bus.as_ref(), spec).await?;
        pipeline.wait(spec.job_id, progress).await?.ok_or(JobError::Vanished(spec.job_id))
    }
    .await;
    pipeline.stop().await;
    let status = waited?;
    let elapsed = started.elapsed();
    let records = records::read_records(backends.blob.as_ref(), spec.job_id).await.map_err(JobError::Records)?;
    Ok(JobRun { status, records, elapsed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn inputs_need_a_prefix_source() {
        let dir = tempfile::tempdir().expect("temp dir");
        let backends = Backends::embedded(dir.path()).expect("backends");
        let spec = JobSpec {
            job_id: Uuid::new_v4(),
            kind: "ingest".into(),
            route: vec!["ingest".into()],
            source: Source::Urls { urls: vec![], collection: "c".into() },
            options: Default::default(),
            submitted_at_ms: 0,
        };
        let inputs = vec![("c/a.jpg".to_owned(), Bytes::from_static(b"x"))];
        let err = run_job(&backends, vec![], inputs, &spec, embedded_settings(), |_| {}).await.expect_err("refused");
        assert!(matches!(err, JobError::NotAPrefix), "{err}");
        assert!(backends.blob.list("").await.expect("list").is_empty(), "nothing stored");
    }
}

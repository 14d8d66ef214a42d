//! The embedded mode: every stage in one process over the in-memory bus, a local folder and
//! in-memory coordination, running the same stage code as the workers.

use std::sync::Arc;
use std::time::Duration;

use sightline_coord::JobStatus;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::metrics::Metrics;
use crate::runner::Runner;
use crate::{Backends, RunnerSettings, Stage};

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

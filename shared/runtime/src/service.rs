//! What every worker binary's `main` does: telemetry, config, backends, admin server, runner.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tracing::{info, warn};

use crate::admin::{self, AdminState};
use crate::metrics::Metrics;
use crate::runner::Runner;
use crate::{Backends, CommonArgs, RunnerSettings, Stage, shutdown, telemetry};

/// Runs `stage` as a worker until SIGTERM: connects to RabbitMQ, Redis and S3 (retrying
/// while they are down), serves the admin endpoints, consumes, and drains on shutdown.
/// Exported spans still buffered are flushed on the way out (feature `otel`).
pub async fn run_worker(stage: Arc<dyn Stage>, common: CommonArgs, settings: RunnerSettings) -> anyhow::Result<()> {
    telemetry::init_as(&format!("sightline-{}", stage.name()));
    let result = run_until_stopped(stage, common, settings).await;
    // The exporter flushes synchronously: keep it off the async workers.
    if let Err(e) = tokio::task::spawn_blocking(telemetry::shutdown).await {
        warn!(error = %e, "flush telemetry");
    }
    result
}

async fn run_until_stopped(stage: Arc<dyn Stage>, common: CommonArgs, settings: RunnerSettings) -> anyhow::Result<()> {
    let name = stage.name();
    info!(stage = name, config = ?common, settings = ?settings, "starting");
    let shutdown = shutdown::on_signals();

    let mut attempt = 0u32;
    let backends = loop {
        match Backends::distributed(&common, &format!("sightline-{name}")).await {
            Ok(b) => break b,
            Err(e) => {
                attempt += 1;
                let delay = sightline_bus::backoff(attempt.min(6), Duration::from_millis(500), Duration::from_secs(30));
                warn!(stage = name, error = %e, retry_in_ms = delay.as_millis() as u64, "backends not reachable yet");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    };

    let metrics = Metrics::new();
    let runner = Runner::new(stage.clone(), backends.clone(), settings.clone(), metrics.clone());
    let state = AdminState { backends, stage, consuming: runner.consuming_flag(), metrics };
    let admin_shutdown = shutdown.child_token();
    let bound = admin::serve(settings.admin_addr, state, admin_shutdown.clone())
        .await
        .with_context(|| format!("bind admin server on {}", settings.admin_addr))?;
    info!(stage = name, admin = %bound, "admin server listening");

    runner.run(shutdown).await;
    admin_shutdown.cancel();
    info!(stage = name, "stopped");
    Ok(())
}

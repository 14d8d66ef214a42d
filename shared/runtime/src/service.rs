//! What every worker binary's `main` does: flags, telemetry, config, backends, admin server,
//! runner, and the companion server some workers run beside their stage. A worker's `main.rs`
//! is one call to [`main`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use clap::{CommandFactory, FromArgMatches};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::admin::{self, AdminState};
use crate::metrics::Metrics;
use crate::runner::Runner;
use crate::{Backends, CommonArgs, RunnerSettings, Stage, shutdown, telemetry};

/// Work a worker runs beside its stage (the index's search API and snapshot compactor), under
/// the runner's shutdown token: on SIGTERM it stops while the runner drains.
#[async_trait]
pub trait Companion: Send + 'static {
    /// Runs until `shutdown` is cancelled, then returns once stopped. `common` says where the
    /// services are.
    async fn run(self: Box<Self>, common: CommonArgs, shutdown: CancellationToken);
}

/// What a worker binary runs: its stage, and optionally a [`Companion`].
pub struct Worker {
    stage: Arc<dyn Stage>,
    companion: Option<Box<dyn Companion>>,
}

impl Worker {
    /// A worker running `stage`.
    pub fn new(stage: impl Stage) -> Self {
        Self { stage: Arc::new(stage), companion: None }
    }

    /// The same worker, running `companion` beside its stage.
    pub fn with_companion(self, companion: impl Companion) -> Self {
        Self { companion: Some(Box::new(companion)), ..self }
    }
}

/// The flags of a worker: the common ones, the runner's, and the stage's own `A`. The command's
/// name and `about` are set by [`main`] (no doc comment here: it would become every worker's).
#[derive(clap::Parser)]
struct WorkerArgs<A: clap::Args> {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    runner: RunnerSettings,
    #[command(flatten)]
    stage: A,
}

/// The whole `main` of the worker binary `bin` (`sightline-detect`): parses its flags (common,
/// runner and the stage's `A`; `about` is the `--help` text), starts telemetry, logs the
/// settings once (secrets redacted), builds the worker from `A` and runs it until SIGTERM.
pub fn main<A>(
    bin: &'static str,
    about: &'static str,
    build: impl FnOnce(A) -> anyhow::Result<Worker>,
) -> anyhow::Result<()>
where
    A: clap::Args + fmt::Debug,
{
    let command = WorkerArgs::<A>::command().name(bin).about(about).version(env!("CARGO_PKG_VERSION"));
    let args = WorkerArgs::<A>::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit());
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start the async runtime")?;
    let worker = {
        // Stages may reach for the runtime while being built (a listener, a handle).
        let _entered = runtime.enter();
        telemetry::init_as(bin);
        info!(config = ?args.common, runner = ?args.runner, settings = ?args.stage, "starting {bin}");
        build(args.stage)?
    };
    runtime.block_on(run_worker(worker, args.common, args.runner))
}

/// Runs `worker` until SIGTERM: connects to RabbitMQ, Redis and S3 (retrying while they are
/// down), serves the admin endpoints, consumes, and drains on shutdown; its companion runs
/// under the same shutdown token. Exported spans still buffered are flushed on the way out
/// (feature `otel`).
async fn run_worker(worker: Worker, common: CommonArgs, settings: RunnerSettings) -> anyhow::Result<()> {
    let shutdown = shutdown::on_signals();
    let companion = worker.companion.map(|c| tokio::spawn(c.run(common.clone(), shutdown.clone())));
    let result = run_until_stopped(worker.stage, common, settings.clone(), shutdown.clone()).await;
    // Whatever ended the runner also ends the companion.
    shutdown.cancel();
    if let Some(companion) = companion {
        stop_companion(companion, settings.drain_deadline()).await;
    }
    // The exporter flushes synchronously: keep it off the async workers.
    if let Err(e) = tokio::task::spawn_blocking(telemetry::shutdown).await {
        warn!(error = %e, "flush telemetry");
    }
    result
}

/// Waits for a cancelled companion to stop, at most `deadline`.
async fn stop_companion(companion: JoinHandle<()>, deadline: Duration) {
    match tokio::time::timeout(deadline, companion).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(error = %e, "companion failed"),
        Err(_) => warn!(deadline_secs = deadline.as_secs(), "companion still running at the drain deadline"),
    }
}

async fn run_until_stopped(
    stage: Arc<dyn Stage>,
    common: CommonArgs,
    settings: RunnerSettings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let name = stage.name();
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
    let state = AdminState { backends, stage, consuming: runner.consuming_flag(), metrics, outages: runner.outages() };
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

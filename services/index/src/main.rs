//! The index worker: adds labelled embeddings to the per-collection vector index in S3, and
//! serves the search HTTP API beside it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use sightline_index::api::{self, ApiConfig};
use sightline_runtime::{Backends, CommonArgs, RunnerSettings};
use tracing::{info, warn};

/// Index worker: records each image's embedding under its collection and label in S3, where
/// every index replica (and search) loads it from; answers search jobs; serves the search API.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    runner: RunnerSettings,
    /// Address of the search API (`/v1/...`); loopback unless exposed on purpose.
    #[arg(long, env = "SEARCH_ADDR", default_value = "127.0.0.1:9300")]
    search_addr: SocketAddr,
    /// How long a search request waits for its job.
    #[arg(long, env = "SEARCH_TIMEOUT_SECS", default_value_t = 60)]
    search_timeout_secs: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Bound before the worker starts, so a taken port fails the process at once; requests
    // wait in the backlog until the backends are connected.
    let listener = tokio::net::TcpListener::bind(args.search_addr)
        .await
        .with_context(|| format!("bind search API on {}", args.search_addr))?;
    let config = ApiConfig { search_timeout: Duration::from_secs(args.search_timeout_secs), ..ApiConfig::default() };
    tokio::spawn(serve_api(listener, args.common.clone(), config));
    sightline_runtime::service::run_worker(Arc::new(sightline_index::IndexStage), args.common, args.runner).await
}

async fn serve_api(listener: tokio::net::TcpListener, common: CommonArgs, config: ApiConfig) {
    let backends = loop {
        match Backends::distributed(&common, "sightline-index-api").await {
            Ok(b) => break b,
            Err(e) => {
                warn!(error = %e, "search api: backends not reachable yet");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    };
    info!(addr = ?listener.local_addr().ok(), "search api listening");
    if let Err(e) = axum::serve(listener, api::router(backends, config)).await {
        warn!(error = %e, "search api stopped");
    }
}

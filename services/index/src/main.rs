//! The index worker: adds labelled embeddings to the per-collection vector index in S3, and
//! serves the search HTTP API beside it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use sightline_index::IndexStage;
use sightline_index::api::{self, ApiConfig};
use sightline_index::catalog::{CatalogConfig, Catalogs, Compaction};
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
    /// A catalogue snapshot gets an HNSW graph from this many items (smaller: exact search).
    #[arg(long, env = "SEARCH_ANN_MIN", default_value_t = sightline_index::search::DEFAULT_ANN_MIN)]
    ann_min: usize,
    /// A new snapshot is written once this many items were indexed since the last one.
    #[arg(long, env = "SEARCH_SNAPSHOT_MIN", default_value_t = sightline_index::catalog::DEFAULT_SNAPSHOT_MIN)]
    snapshot_min: usize,
    /// How often this replica checks the catalogues it serves for a snapshot to write.
    #[arg(long, env = "SEARCH_SNAPSHOT_SECS", default_value_t = 30)]
    snapshot_secs: u64,
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
    let catalogs = Arc::new(Catalogs::new(CatalogConfig {
        ann_min: args.ann_min,
        snapshot_min: args.snapshot_min.max(1),
        ..CatalogConfig::default()
    }));
    let every = Duration::from_secs(args.snapshot_secs.max(1));
    tokio::spawn(serve_api(listener, args.common.clone(), config, catalogs.clone(), every));
    let stage = Arc::new(IndexStage::new(catalogs));
    sightline_runtime::service::run_worker(stage, args.common, args.runner).await
}

/// Writes catalogue snapshots: every `every`, each catalogue this replica served whose delta is
/// large enough (one replica at a time per catalogue, by lease; `sightline_index::catalog`).
async fn compact(backends: Backends, catalogs: Arc<Catalogs>, every: Duration) {
    let owner = format!("{}-{}", hostname(), std::process::id());
    loop {
        tokio::time::sleep(every).await;
        for name in catalogs.tracked() {
            match catalogs.compact(backends.blob.as_ref(), backends.coord.as_ref(), &name, &owner).await {
                Ok(Compaction::Published(m)) => {
                    info!(catalog = name, generation = m.generation, items = m.items, "snapshot written");
                }
                Ok(_) => {}
                Err(e) => warn!(catalog = name, error = %e, "snapshot failed; retried next round"),
            }
        }
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "index".to_owned())
}

async fn serve_api(
    listener: tokio::net::TcpListener,
    common: CommonArgs,
    config: ApiConfig,
    catalogs: Arc<Catalogs>,
    every: Duration,
) {
    let backends = loop {
        match Backends::distributed(&common, "sightline-index-api").await {
            Ok(b) => break b,
            Err(e) => {
                warn!(error = %e, "search api: backends not reachable yet");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    };
    tokio::spawn(compact(backends.clone(), catalogs.clone(), every));
    info!(addr = ?listener.local_addr().ok(), "search api listening");
    if let Err(e) = axum::serve(listener, api::router(backends, config, catalogs)).await {
        warn!(error = %e, "search api stopped");
    }
}

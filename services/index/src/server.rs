//! The index server: the index stage, and beside it the search API ([`crate::api`]) and the
//! snapshot compactor, all under the worker's one shutdown token. On SIGTERM the API stops
//! accepting (in-flight requests finish), the compactor stops between rounds, and the runner
//! drains.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sightline_runtime::{Backends, CommonArgs, Companion, Worker};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::IndexStage;
use crate::api::{self, ApiConfig};
use crate::auth::Keys;
use crate::catalog::{CatalogConfig, Catalogs, Compaction};

/// Index server options (flags with environment variables).
#[derive(Debug, Clone, clap::Args)]
pub struct IndexArgs {
    /// Address of the search API (`/v1/...`); loopback unless exposed on purpose.
    #[arg(long, env = "SEARCH_ADDR", default_value = "127.0.0.1:9300")]
    pub search_addr: SocketAddr,
    /// How long a search request waits for its job.
    #[arg(long, env = "SEARCH_TIMEOUT_SECS", default_value_t = 60)]
    pub search_timeout_secs: u64,
    /// A catalogue snapshot gets an HNSW graph from this many items (smaller: exact search).
    #[arg(long, env = "SEARCH_ANN_MIN", default_value_t = crate::search::DEFAULT_ANN_MIN)]
    pub ann_min: usize,
    /// A new snapshot is written once this many items were indexed since the last one.
    #[arg(long, env = "SEARCH_SNAPSHOT_MIN", default_value_t = crate::catalog::DEFAULT_SNAPSHOT_MIN)]
    pub snapshot_min: usize,
    /// How often this replica checks the catalogues it serves for a snapshot to write.
    #[arg(long, env = "SEARCH_SNAPSHOT_SECS", default_value_t = 30)]
    pub snapshot_secs: u64,
    /// The API keys the search API requires: a TOML file of the tokens' SHA-256 digests
    /// (`sightline api-key` makes one; docs/search.md). Without it the API answers anyone, which
    /// is allowed on a loopback address only.
    #[arg(long, env = "SEARCH_API_KEYS", value_name = "FILE")]
    pub api_keys: Option<std::path::PathBuf>,
}

/// The index worker: binds the search API's address now (a taken port fails the process at
/// once; requests wait in the backlog until the backends are connected), and runs the index
/// stage with the API and the compactor beside it, sharing its catalogues.
pub fn worker(args: &IndexArgs) -> std::io::Result<Worker> {
    let keys = match &args.api_keys {
        Some(path) => {
            let keys = Keys::load(path).map_err(std::io::Error::other)?;
            info!(keys = keys.len(), file = %path.display(), "search api: requests need an API key");
            Some(Arc::new(keys))
        }
        None if args.search_addr.ip().is_loopback() => {
            warn!(addr = %args.search_addr, "search api: open to anyone on this host (no SEARCH_API_KEYS)");
            None
        }
        None => {
            return Err(std::io::Error::other(format!(
                "refusing to serve the search API on {} without API keys: set SEARCH_API_KEYS (docs/search.md)",
                args.search_addr
            )));
        }
    };
    let listener = std::net::TcpListener::bind(args.search_addr)
        .map_err(|e| std::io::Error::new(e.kind(), format!("bind search API on {}: {e}", args.search_addr)))?;
    let catalogs = Arc::new(Catalogs::new(CatalogConfig {
        ann_min: args.ann_min,
        snapshot_min: args.snapshot_min.max(1),
        ..CatalogConfig::default()
    }));
    let server = SearchServer {
        listener,
        config: ApiConfig {
            search_timeout: Duration::from_secs(args.search_timeout_secs),
            keys,
            ..ApiConfig::default()
        },
        catalogs: catalogs.clone(),
        every: Duration::from_secs(args.snapshot_secs.max(1)),
    };
    Ok(Worker::new(IndexStage::new(catalogs)).with_companion(server))
}

/// The search API and the compactor of one index replica, once its backends are connected.
struct SearchServer {
    listener: std::net::TcpListener,
    config: ApiConfig,
    catalogs: Arc<Catalogs>,
    every: Duration,
}

#[async_trait]
impl Companion for SearchServer {
    async fn run(self: Box<Self>, common: CommonArgs, shutdown: CancellationToken) {
        let SearchServer { listener, config, catalogs, every } = *self;
        let listener = match listener.set_nonblocking(true).and_then(|()| tokio::net::TcpListener::from_std(listener)) {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "search api: listener unusable");
                return;
            }
        };
        let backends = loop {
            match Backends::distributed(&common, "sightline-index-api").await {
                Ok(b) => break b,
                Err(e) => {
                    warn!(error = %e, "search api: backends not reachable yet");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    }
                }
            }
        };
        serve(listener, backends, config, catalogs, every, shutdown).await;
    }
}

/// Serves the search API on `listener` and writes catalogue snapshots every `every` until
/// `shutdown` is cancelled; returns once both stopped (in-flight requests answered).
pub async fn serve(
    listener: tokio::net::TcpListener,
    backends: Backends,
    config: ApiConfig,
    catalogs: Arc<Catalogs>,
    every: Duration,
    shutdown: CancellationToken,
) {
    let compactor = tokio::spawn(compact(backends.clone(), catalogs.clone(), every, shutdown.clone()));
    info!(addr = ?listener.local_addr().ok(), "search api listening");
    let stopped = shutdown.clone();
    let api = axum::serve(listener, api::router(backends, config, catalogs))
        .with_graceful_shutdown(async move { stopped.cancelled().await });
    if let Err(e) = api.await {
        warn!(error = %e, "search api stopped");
    }
    // The compactor goes on until the token is cancelled, even if the API failed first.
    if let Err(e) = compactor.await {
        warn!(error = %e, "compactor failed");
    }
    info!("search api and compactor stopped");
}

/// Writes catalogue snapshots: every `every`, each catalogue this replica served whose delta is
/// large enough (one replica at a time per catalogue, by lease; `crate::catalog`), until
/// `shutdown` (checked between rounds: a round in progress finishes).
pub async fn compact(backends: Backends, catalogs: Arc<Catalogs>, every: Duration, shutdown: CancellationToken) {
    let owner = format!("{}-{}", hostname(), std::process::id());
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
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

#[cfg(test)]
mod tests {
    use sightline_runtime::Ctx;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::catalog::manifest_key;
    use crate::query::tests::{put_vector, run_on, task};

    /// `GET path` on `addr`: the status code.
    async fn get(addr: SocketAddr, path: &str) -> u16 {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("write");
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.expect("read");
        let text = String::from_utf8_lossy(&buf).into_owned();
        text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("status line")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_api_and_the_compactor_stop_when_the_token_is_cancelled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backends = Backends::embedded(dir.path()).expect("backends");
        let catalogs = Arc::new(Catalogs::new(CatalogConfig { snapshot_min: 2, ..CatalogConfig::default() }));
        let stage = IndexStage::new(catalogs.clone());
        let ctx = Ctx { blob: backends.blob.clone(), coord: backends.coord.clone() };
        for item in 0..3u64 {
            let key = format!("embeddings/cat/{item}.f32");
            put_vector(ctx.blob.as_ref(), &key, [1.0, item as f32]).await;
            run_on(&stage, &ctx, task(1, item, "shop", &key, "")).await.expect("index");
        }
        catalogs.track("shop");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let token = CancellationToken::new();
        let every = Duration::from_millis(20);
        let server =
            tokio::spawn(serve(listener, backends.clone(), ApiConfig::default(), catalogs, every, token.clone()));

        // Both run: the API answers, and the compactor writes the catalogue's snapshot.
        assert_eq!(get(addr, "/v1/openapi.json").await, 200);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while backends.blob.get(&manifest_key("shop")).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "no snapshot written");
            tokio::time::sleep(every).await;
        }

        token.cancel();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("the API and the compactor stop once the token is cancelled")
            .expect("server task");
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the API no longer accepts connections");
    }
}

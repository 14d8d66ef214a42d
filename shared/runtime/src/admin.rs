//! The admin server: `/livez`, `/readyz`, `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::metrics::{Metrics, StageLabels};
use crate::outage::{Dependency, Outages};
use crate::{Backends, Stage};

/// What the admin server reports on.
#[derive(Clone)]
pub struct AdminState {
    /// The backends whose reachability `/readyz` checks.
    pub backends: Backends,
    /// The stage (its `ready()` is checked too).
    pub stage: Arc<dyn Stage>,
    /// Whether the runner is consuming.
    pub consuming: Arc<AtomicBool>,
    /// Metrics to expose.
    pub metrics: Arc<Metrics>,
    /// The outages the runner is waiting out.
    pub outages: Arc<Outages>,
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs one health check within [`CHECK_TIMEOUT`]: `None` when it answers, else the problem,
/// named `name` (`/readyz` and the runner's outages share it).
pub(crate) async fn check<F, E>(name: &str, fut: F) -> Option<String>
where
    F: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    match tokio::time::timeout(CHECK_TIMEOUT, fut).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("{name}: {e}")),
        Err(_) => Some(format!("{name}: no answer within {}s", CHECK_TIMEOUT.as_secs())),
    }
}

async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    let (bus, coord, blob, stage) = tokio::join!(
        check(Dependency::Broker.as_str(), s.backends.bus.health()),
        check(Dependency::Coord.as_str(), s.backends.coord.health()),
        check(Dependency::Storage.as_str(), s.backends.blob.health()),
        check("stage", s.stage.ready()),
    );
    let mut problems: Vec<String> = [bus, coord, blob, stage].into_iter().flatten().collect();
    for down in s.outages.current() {
        problems.push(format!(
            "paused: {} down for {}s ({})",
            down.dependency,
            down.since.elapsed().as_secs(),
            down.reason
        ));
    }
    if problems.is_empty() && !s.consuming.load(Ordering::SeqCst) {
        problems.push("runner: not consuming yet".to_owned());
    }
    let ready = problems.is_empty();
    s.metrics.ready.get_or_create(&StageLabels { stage: s.stage.name().to_owned() }).set(i64::from(ready));
    let body = serde_json::json!({ "stage": s.stage.name(), "ready": ready, "problems": problems });
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, axum::Json(body))
}

async fn metrics(State(s): State<AdminState>) -> impl IntoResponse {
    ([("content-type", "text/plain; version=0.0.4; charset=utf-8")], s.metrics.render())
}

/// Binds `addr` and serves until `shutdown`; returns the bound address (port 0 picks one).
pub async fn serve(addr: SocketAddr, state: AdminState, shutdown: CancellationToken) -> std::io::Result<SocketAddr> {
    let app = Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let server = axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await });
        if let Err(e) = server.await {
            tracing::error!(error = %e, "admin server failed");
        }
    });
    Ok(bound)
}

//! Turns SIGTERM and SIGINT into a cancellation token.

use tokio_util::sync::CancellationToken;
use tracing::info;

/// A token cancelled on the first SIGTERM or SIGINT.
pub fn on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => info!("SIGTERM received, draining"),
            _ = tokio::signal::ctrl_c() => info!("SIGINT received, draining"),
        }
        t.cancel();
    });
    token
}

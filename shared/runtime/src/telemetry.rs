//! Logging: human-readable by default, JSON when `LOG_FORMAT=json`; level from `RUST_LOG`.
//! With the `otel` feature and `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans are also exported over
//! OTLP/HTTP (`docs/metrics.md`, "Tracing").

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Safe to call twice (the second call does nothing).
pub fn init() {
    install(None);
}

/// Like [`init`], naming the service `service` in exported traces unless `OTEL_SERVICE_NAME`
/// is set ([`init`] uses the executable's name).
pub fn init_as(service: &str) {
    install(Some(service));
}

/// Exports the spans still buffered and stops the exporter (feature `otel`); does nothing
/// otherwise. Blocks for up to 5 s: from async code, call it on a blocking thread.
pub fn shutdown() {
    #[cfg(feature = "otel")]
    crate::otel::shutdown();
}

#[cfg_attr(not(feature = "otel"), allow(unused_variables))]
fn install(service: Option<&str>) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    #[cfg(feature = "otel")]
    let otel_error = {
        use tracing_subscriber::Layer;
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        if tracing::dispatcher::has_been_set() {
            return; // a second call: do not start a second exporter
        }
        match crate::otel::layer(service) {
            None => None,
            Some(Err(e)) => Some(e),
            Some(Ok(otel)) => {
                let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
                let fmt = if json { fmt.json().flatten_event(true).boxed() } else { fmt.boxed() };
                let _ = tracing_subscriber::registry().with(filter).with(fmt).with(otel).try_init();
                return;
            }
        }
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { builder.json().flatten_event(true).try_init() } else { builder.try_init() };
    #[cfg(feature = "otel")]
    if let Some(e) = otel_error {
        tracing::warn!(error = %e, "trace export not started");
    }
}

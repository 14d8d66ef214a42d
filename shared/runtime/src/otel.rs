//! OpenTelemetry trace export (feature `otel`): an OTLP/HTTP exporter behind a
//! `tracing-opentelemetry` layer, and W3C trace context carried through the envelopes so the
//! spans of one job, across stages, share one trace.
//!
//! Without `OTEL_EXPORTER_OTLP_ENDPOINT` no layer is installed, spans have no OpenTelemetry
//! context, and messages keep the textual traceparent they inherit from their parent.

use std::collections::HashMap;
use std::sync::OnceLock;

use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{ExporterBuildError, SpanExporter};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use sightline_messages::{Meta, headers};
use tracing::Subscriber;
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt};
use tracing_subscriber::registry::LookupSpan;

/// The provider whose batch processor holds unexported spans until [`shutdown`].
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// The layer exporting spans over OTLP/HTTP (protobuf), or `None` when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is unset. The exporter reads the endpoint (appending
/// `/v1/traces`), headers and timeout from the standard `OTEL_EXPORTER_OTLP_*` variables.
/// The service name is `OTEL_SERVICE_NAME`, else `service`, else the executable's name
/// (`sightline-<stage>` for the workers).
pub(crate) fn layer<S>(
    service: Option<&str>,
) -> Option<Result<OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>, ExporterBuildError>>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok().filter(|v| !v.trim().is_empty())?;
    // `with_service_name` would override OTEL_SERVICE_NAME, so honour the variable here.
    let service = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .or_else(|| service.map(str::to_owned))
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            Some(exe.file_stem()?.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "sightline".to_owned());
    let build = || {
        let exporter = SpanExporter::builder().with_http().build()?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(service).build())
            .build();
        let tracer = provider.tracer("sightline-runtime");
        // Only the first init installs a subscriber, so only one provider is ever kept.
        let _ = PROVIDER.set(provider);
        Ok(tracing_opentelemetry::layer().with_tracer(tracer))
    };
    Some(build())
}

/// Exports the spans still batched and stops the exporter. Blocks up to a few seconds.
pub(crate) fn shutdown() {
    if let Some(provider) = PROVIDER.get()
        && let Err(e) = provider.shutdown()
    {
        tracing::warn!(error = %e, "flush traces on shutdown");
    }
}

/// Parses a W3C `traceparent` into a context whose remote span is the parent; an empty
/// context when it is missing or malformed.
pub(crate) fn extract(traceparent: Option<&str>) -> Context {
    let Some(tp) = traceparent else { return Context::new() };
    let carrier = HashMap::from([(headers::TRACEPARENT.to_owned(), tp.to_owned())]);
    TraceContextPropagator::new().extract(&carrier)
}

/// The W3C `traceparent` of `cx`'s span, if it has a valid one.
pub(crate) fn inject(cx: &Context) -> Option<String> {
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(cx, &mut carrier);
    carrier.remove(headers::TRACEPARENT)
}

/// Makes the envelope's traceparent the parent of `span` (the per-message span). Must run
/// before the span is first entered. Does nothing without the export layer.
pub(crate) fn set_parent(span: &tracing::Span, traceparent: Option<&str>) {
    let cx = extract(traceparent);
    if cx.span().span_context().is_valid() {
        // Fails only without the layer (nothing exported then) or once the span has started.
        let _ = span.set_parent(cx);
    }
}

/// Points an outgoing message's traceparent at the current span, so the next stage's span is
/// its child. Without the export layer the inherited traceparent stays.
pub(crate) fn stamp(meta: &mut Meta) {
    if let Some(tp) = inject(&tracing::Span::current().context()) {
        meta.traceparent = Some(tp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn trace_id(tp: &str) -> &str {
        tp.split('-').nth(1).unwrap_or_default()
    }

    fn span_id(tp: &str) -> &str {
        tp.split('-').nth(2).unwrap_or_default()
    }

    #[test]
    fn otel_traceparent_round_trips() {
        let cx = extract(Some(PARENT));
        assert!(cx.span().span_context().is_remote());
        assert_eq!(inject(&cx).as_deref(), Some(PARENT));
    }

    #[test]
    fn otel_missing_or_malformed_traceparent_gives_nothing() {
        assert_eq!(inject(&extract(None)), None);
        assert_eq!(inject(&extract(Some("00-not-a-trace-01"))), None);
    }

    #[test]
    fn otel_outgoing_traceparent_is_a_child_of_the_message_span() {
        // No exporter: spans are recorded and sampled but go nowhere.
        let provider = SdkTracerProvider::builder().build();
        let subscriber =
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let mut meta = Meta::new(uuid::Uuid::new_v4(), uuid::Uuid::new_v4(), "image.task", 1);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("message");
            set_parent(&span, Some(PARENT));
            let _entered = span.enter();
            stamp(&mut meta);
        });
        let out = meta.traceparent.expect("a traceparent");
        assert_eq!(trace_id(&out), trace_id(PARENT), "same trace: {out}");
        assert_ne!(span_id(&out), span_id(PARENT), "a new span: {out}");
        assert!(out.ends_with("-01"), "sampled: {out}");
    }

    #[test]
    fn otel_without_the_layer_the_inherited_traceparent_stays() {
        let mut meta = Meta::new(uuid::Uuid::new_v4(), uuid::Uuid::new_v4(), "image.task", 1);
        let before = meta.traceparent.clone();
        let subscriber = tracing_subscriber::registry();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("message");
            set_parent(&span, Some(PARENT));
            let _entered = span.enter();
            stamp(&mut meta);
        });
        assert_eq!(meta.traceparent, before);
    }
}

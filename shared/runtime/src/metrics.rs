//! Prometheus metrics of the runner. Labels come from bounded sets only (stage names,
//! outcome and failure kinds), never ids or error strings.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of `sightline_messages_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// Stage name.
    pub stage: String,
    /// `ok`, `retried`, `dead_lettered`, `duplicate`.
    pub outcome: String,
}

/// Labels of `sightline_dead_letters_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeadLetterLabels {
    /// Stage name.
    pub stage: String,
    /// `permanent`, `exhausted`, `undecodable`, `timeout`.
    pub kind: String,
}

/// Labels with only the stage.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    /// Stage name.
    pub stage: String,
}

/// Labels of the outage metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DependencyLabels {
    /// Stage name.
    pub stage: String,
    /// `broker`, `redis`, `storage`.
    pub dependency: String,
}

/// A histogram family with latency buckets from 1 ms to about 2 minutes.
pub type HistogramFamily = Family<StageLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 18))
}

/// Every metric a worker exports.
pub struct Metrics {
    registry: Registry,
    /// Messages settled, by stage and outcome.
    pub messages: Family<OutcomeLabels, Counter>,
    /// Handler wall time.
    pub handler_duration: HistogramFamily,
    /// Retries scheduled.
    pub retries: Family<StageLabels, Counter>,
    /// Messages dead-lettered, by kind.
    pub dead_letters: Family<DeadLetterLabels, Counter>,
    /// Handlers running now.
    pub in_flight: Family<StageLabels, Gauge>,
    /// 1 when `/readyz` last answered ready.
    pub ready: Family<StageLabels, Gauge>,
    /// Outages of a dependency declared by the runner.
    pub outages: Family<DependencyLabels, Counter>,
    /// 1 while the runner is paused on an outage of the dependency.
    pub down: Family<DependencyLabels, Gauge>,
    /// Seconds spent paused on outages of the dependency, summed over ended outages.
    pub outage_seconds: Family<DependencyLabels, Counter<f64, std::sync::atomic::AtomicU64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let messages = Family::<OutcomeLabels, Counter>::default();
        registry.register("sightline_messages", "Messages settled by stage and outcome", messages.clone());
        let handler_duration: HistogramFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "sightline_handler_duration_seconds",
            "Handler wall time in seconds",
            handler_duration.clone(),
        );
        let retries = Family::<StageLabels, Counter>::default();
        registry.register("sightline_retries", "Retries scheduled", retries.clone());
        let dead_letters = Family::<DeadLetterLabels, Counter>::default();
        registry.register("sightline_dead_letters", "Messages dead-lettered by kind", dead_letters.clone());
        let in_flight = Family::<StageLabels, Gauge>::default();
        registry.register("sightline_in_flight", "Handlers running now", in_flight.clone());
        let ready = Family::<StageLabels, Gauge>::default();
        registry.register("sightline_ready", "1 when the worker is ready", ready.clone());
        let outages = Family::<DependencyLabels, Counter>::default();
        registry.register("sightline_outages", "Outages of a dependency declared by the runner", outages.clone());
        let down = Family::<DependencyLabels, Gauge>::default();
        registry.register("sightline_dependency_down", "1 while paused on an outage of the dependency", down.clone());
        let outage_seconds = Family::<DependencyLabels, Counter<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "sightline_outage_seconds",
            "Seconds paused on ended outages of the dependency",
            outage_seconds.clone(),
        );
        Self {
            registry,
            messages,
            handler_duration,
            retries,
            dead_letters,
            in_flight,
            ready,
            outages,
            down,
            outage_seconds,
        }
    }
}

impl Metrics {
    /// A fresh registry.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Counts a settled message.
    pub fn settled(&self, stage: &str, outcome: &str) {
        self.messages.get_or_create(&OutcomeLabels { stage: stage.to_owned(), outcome: outcome.to_owned() }).inc();
    }

    /// Counts a dead letter.
    pub fn dead_lettered(&self, stage: &str, kind: &str) {
        self.dead_letters.get_or_create(&DeadLetterLabels { stage: stage.to_owned(), kind: kind.to_owned() }).inc();
        self.settled(stage, "dead_lettered");
    }

    /// Counts an outage of `dependency` and marks it down.
    pub fn outage_started(&self, stage: &str, dependency: &str) {
        let labels = DependencyLabels { stage: stage.to_owned(), dependency: dependency.to_owned() };
        self.outages.get_or_create(&labels).inc();
        self.down.get_or_create(&labels).set(1);
    }

    /// Marks `dependency` back after an outage of `lasted`.
    pub fn outage_ended(&self, stage: &str, dependency: &str, lasted: std::time::Duration) {
        let labels = DependencyLabels { stage: stage.to_owned(), dependency: dependency.to_owned() };
        self.down.get_or_create(&labels).set(0);
        self.outage_seconds.get_or_create(&labels).inc_by(lasted.as_secs_f64());
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_catalogue() {
        let m = Metrics::default();
        m.settled("ingest", "ok");
        m.dead_lettered("ingest", "permanent");
        m.retries.get_or_create(&StageLabels { stage: "ingest".into() }).inc();
        m.handler_duration.get_or_create(&StageLabels { stage: "ingest".into() }).observe(0.01);
        let text = m.render();
        for needle in [
            "sightline_messages_total{stage=\"ingest\",outcome=\"ok\"} 1",
            "sightline_messages_total{stage=\"ingest\",outcome=\"dead_lettered\"} 1",
            "sightline_dead_letters_total{stage=\"ingest\",kind=\"permanent\"} 1",
            "sightline_retries_total{stage=\"ingest\"} 1",
            "sightline_handler_duration_seconds_count{stage=\"ingest\"} 1",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}

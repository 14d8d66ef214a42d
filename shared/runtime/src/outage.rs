//! Outages of a dependency (the broker, Redis, the object store) as the runner sees them.
//!
//! An unavailable dependency says nothing about the message in hand, so it must not spend the
//! message's retry budget nor send it to the dead-letter queue. When a handler (or the runner's
//! own bookkeeping) fails because a dependency is unreachable, the runner asks [`Outages`]:
//! if a health check finds the dependency up after all, the failure belongs to the message
//! and is retried as any transient error; if the dependency is down, an outage is declared,
//! the runner stops taking new work (`/readyz` says why), the messages in flight are held,
//! unsettled, and one probe per dependency checks it with capped backoff. When the probe
//! finds it back, the outage ends, the held messages run again from the start (handlers are
//! idempotent), and consuming resumes, with no operator action.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sightline_bus::backoff;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::Backends;
use crate::admin::check;
use crate::metrics::Metrics;

/// A dependency of the runner whose absence is nobody's message's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dependency {
    /// The message broker (RabbitMQ).
    Broker,
    /// Coordination (Redis).
    Coord,
    /// The object store (S3).
    Storage,
}

impl Dependency {
    /// The name used in logs, `/readyz` and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Dependency::Broker => "broker",
            Dependency::Coord => "redis",
            Dependency::Storage => "storage",
        }
    }
}

impl std::fmt::Display for Dependency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A dependency found down.
#[derive(Debug, Clone)]
pub struct Down {
    /// Which one.
    pub dependency: Dependency,
    /// The error that revealed it.
    pub reason: String,
    /// When the outage was declared.
    pub since: Instant,
}

/// How waiting out a dependency's failure ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The dependency was down and is back: run the message again, without counting an attempt.
    Recovered,
    /// The dependency answers its health check: the failure is the message's (retry it as a
    /// transient error, spending its budget).
    Healthy,
    /// Shutdown was requested while waiting.
    Shutdown,
}

/// The probe's backoff: from this...
const PROBE_BASE: Duration = Duration::from_millis(250);
/// ...to at most this between probes, so a dependency that comes back is noticed within it.
const PROBE_MAX: Duration = Duration::from_secs(2);

/// The outages a runner knows of, shared by its message tasks, its consume loop and `/readyz`.
pub struct Outages {
    stage: &'static str,
    backends: Backends,
    metrics: Arc<Metrics>,
    down: watch::Sender<Vec<Down>>,
}

impl Outages {
    /// No outage yet, for `stage` over `backends`.
    pub fn new(stage: &'static str, backends: Backends, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self { stage, backends, metrics, down: watch::Sender::new(Vec::new()) })
    }

    /// The dependencies down now.
    pub fn current(&self) -> Vec<Down> {
        self.down.borrow().clone()
    }

    /// Whether any dependency is down (the runner takes no new work then).
    pub fn any(&self) -> bool {
        !self.down.borrow().is_empty()
    }

    /// A receiver that changes whenever an outage starts or ends.
    pub fn subscribe(&self) -> watch::Receiver<Vec<Down>> {
        self.down.subscribe()
    }

    /// Waits until no dependency is down, or `shutdown`; false on shutdown.
    pub async fn wait_clear(&self, shutdown: &CancellationToken) -> bool {
        let mut rx = self.down.subscribe();
        tokio::select! {
            _ = shutdown.cancelled() => false,
            r = rx.wait_for(|down| down.is_empty()) => r.is_ok(),
        }
    }

    /// A handler or the runner failed on `dependency` with `reason`. Checks it (unless an
    /// outage of it is already known); if it is down, declares the outage and waits until the
    /// probe finds it back.
    pub async fn wait_out(
        self: &Arc<Self>,
        dependency: Dependency,
        reason: &str,
        shutdown: &CancellationToken,
    ) -> Verdict {
        if !self.is_down(dependency) {
            match self.check(dependency).await {
                Ok(()) => return Verdict::Healthy,
                Err(why) => self.declare(dependency, reason, &why),
            }
        }
        let mut rx = self.down.subscribe();
        tokio::select! {
            _ = shutdown.cancelled() => Verdict::Shutdown,
            r = rx.wait_for(|down| !down.iter().any(|d| d.dependency == dependency)) => {
                if r.is_ok() { Verdict::Recovered } else { Verdict::Shutdown }
            }
        }
    }

    fn is_down(&self, dependency: Dependency) -> bool {
        self.down.borrow().iter().any(|d| d.dependency == dependency)
    }

    /// The dependency's health check, as `/readyz` runs it: `Err` says why it is down.
    async fn check(&self, dependency: Dependency) -> Result<(), String> {
        let b = &self.backends;
        let name = dependency.as_str();
        let problem = match dependency {
            Dependency::Broker => check(name, b.bus.health()).await,
            Dependency::Coord => check(name, b.coord.health()).await,
            Dependency::Storage => check(name, b.blob.health()).await,
        };
        problem.map_or(Ok(()), Err)
    }

    /// Declares `dependency` down (once) and starts its probe.
    fn declare(self: &Arc<Self>, dependency: Dependency, reason: &str, check: &str) {
        let declared = self.down.send_if_modified(|down| {
            if down.iter().any(|d| d.dependency == dependency) {
                return false;
            }
            down.push(Down { dependency, reason: reason.to_owned(), since: Instant::now() });
            true
        });
        if declared {
            warn!(stage = self.stage, %dependency, reason, check, "dependency unavailable: pausing, messages in flight are held");
            self.metrics.outage_started(self.stage, dependency.as_str());
            tokio::spawn(self.clone().probe(dependency));
        }
    }

    /// Checks `dependency` with capped backoff until it answers, then ends its outage.
    async fn probe(self: Arc<Self>, dependency: Dependency) {
        let mut attempt = 0u32;
        loop {
            tokio::time::sleep(backoff(attempt.min(8), PROBE_BASE, PROBE_MAX)).await;
            attempt += 1;
            if self.check(dependency).await.is_ok() {
                break;
            }
        }
        let mut lasted = Duration::ZERO;
        self.down.send_modify(|down| {
            if let Some(d) = down.iter().find(|d| d.dependency == dependency) {
                lasted = d.since.elapsed();
            }
            down.retain(|d| d.dependency != dependency);
        });
        self.metrics.outage_ended(self.stage, dependency.as_str(), lasted);
        info!(stage = self.stage, %dependency, seconds = lasted.as_secs_f64(), probes = attempt, "dependency back: resuming");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use sightline_blob::Switchable;

    use super::*;

    /// Outages over a store whose switch is returned (the folder must outlive them).
    fn outages(up: bool) -> (Arc<Outages>, Arc<AtomicBool>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut backends = Backends::embedded(dir.path()).expect("backends");
        let (store, switch) = Switchable::new(backends.blob.clone(), up);
        backends.blob = Arc::new(store);
        (Outages::new("test", backends, Metrics::new()), switch, dir)
    }

    /// `wait_out` on the store, in a task of its own.
    fn spawn_wait(
        o: &Arc<Outages>,
        reason: &'static str,
        shutdown: &CancellationToken,
    ) -> tokio::task::JoinHandle<Verdict> {
        let (o, shutdown) = (o.clone(), shutdown.clone());
        tokio::spawn(async move { o.wait_out(Dependency::Storage, reason, &shutdown).await })
    }

    #[tokio::test]
    async fn a_healthy_dependency_leaves_the_failure_to_the_message() {
        let (o, _switch, _dir) = outages(true);
        let v = o.wait_out(Dependency::Storage, "get x: timed out", &CancellationToken::new()).await;
        assert_eq!(v, Verdict::Healthy);
        assert!(!o.any(), "no outage declared");
    }

    #[tokio::test]
    async fn an_outage_pauses_until_the_probe_finds_the_dependency_back() {
        let (o, up, _dir) = outages(false);
        let shutdown = CancellationToken::new();
        let waiter = spawn_wait(&o, "get x: refused", &shutdown);
        // A second failure during the outage joins it (no second probe, no second declaration).
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(o.any());
        let down = o.current();
        assert_eq!(down.len(), 1);
        assert_eq!(down[0].dependency, Dependency::Storage);
        assert_eq!(down[0].reason, "get x: refused");
        let second = spawn_wait(&o, "put y: refused", &shutdown);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(!waiter.is_finished() && !second.is_finished(), "held while down");
        assert_eq!(o.current().len(), 1);

        up.store(true, Ordering::SeqCst);
        let v = tokio::time::timeout(Duration::from_secs(10), waiter).await.expect("resumed").expect("join");
        assert_eq!(v, Verdict::Recovered);
        assert_eq!(second.await.expect("join"), Verdict::Recovered);
        assert!(!o.any());
        assert!(o.wait_clear(&shutdown).await);
        let text = o.metrics.render();
        assert!(text.contains("sightline_outages_total{stage=\"test\",dependency=\"storage\"} 1"), "{text}");
    }

    #[tokio::test]
    async fn shutdown_ends_the_wait() {
        let (o, _switch, _dir) = outages(false);
        let shutdown = CancellationToken::new();
        let waiter = spawn_wait(&o, "refused", &shutdown);
        tokio::time::sleep(Duration::from_millis(100)).await;
        shutdown.cancel();
        assert_eq!(waiter.await.expect("join"), Verdict::Shutdown);
        assert!(!o.wait_clear(&shutdown).await);
    }
}

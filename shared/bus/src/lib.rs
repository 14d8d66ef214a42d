//! The message bus: RabbitMQ through lapin for the distributed mode, and an in-memory bus with
//! the same semantics for the embedded mode and component tests.
//!
//! Per stage there is a durable quorum work queue, a retry queue (delayed redelivery: messages
//! wait there with a per-message expiry, then dead-letter back onto the work queue) and a
//! dead-letter queue. Every work queue has a dead-letter exchange and an explicit delivery
//! limit. See [`topology`] for the names and arguments.

mod amqp;
pub mod conformance;
mod memory;
pub mod topology;

use std::time::Duration;

use async_trait::async_trait;
use sightline_messages::{Envelope, headers};
use thiserror::Error;
use uuid::Uuid;

pub use amqp::{AmqpBus, AmqpConfig};
pub use memory::MemoryBus;

/// What can go wrong talking to the bus.
#[derive(Debug, Error)]
pub enum BusError {
    /// The broker cannot be reached or the connection dropped; try again later.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// The broker refused to take responsibility for a published message.
    #[error("publish to {0} was not confirmed by the broker")]
    NotConfirmed(String),
    /// No queue is bound for the routing key (the topology was not declared).
    #[error("message to {0} was unroutable (is the topology declared?)")]
    Unroutable(String),
    /// The broker rejected a declaration or operation.
    #[error("broker refused {op}: {detail}")]
    Refused {
        /// The operation.
        op: &'static str,
        /// The broker's explanation.
        detail: String,
    },
}

impl BusError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, BusError::Unavailable(_) | BusError::NotConfirmed(_))
    }
}

/// A message bound for a stage's work queue.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The stage whose work queue receives it.
    pub stage: String,
    /// The message.
    pub envelope: Envelope,
}

/// Settles one delivered message.
#[async_trait]
pub trait Acker: Send + Sync {
    /// Acknowledges: the broker forgets the message.
    async fn ack(&self) -> Result<(), BusError>;
    /// Returns the message to its queue for redelivery (counts against the delivery limit).
    async fn requeue(&self) -> Result<(), BusError>;
}

/// One message taken from a work queue, to be settled with its acker.
pub struct Delivery {
    /// The message.
    pub envelope: Envelope,
    /// Whether the broker delivered it before (a worker died holding it, or it was requeued).
    pub redelivered: bool,
    /// Settles the message.
    pub acker: Box<dyn Acker>,
}

/// A stream of deliveries from one work queue.
#[async_trait]
pub trait Consumer: Send {
    /// The next delivery; `None` when the consumer was cancelled or the connection closed.
    async fn next(&mut self) -> Option<Result<Delivery, BusError>>;
    /// Stops delivery of new messages; messages already delivered stay to be settled.
    async fn cancel(&mut self) -> Result<(), BusError>;
}

/// How many messages wait in a stage's queues.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueDepth {
    /// Ready in the work queue (not counting unacknowledged ones).
    pub ready: u64,
    /// Waiting in the retry queue.
    pub retrying: u64,
    /// In the dead-letter queue.
    pub dead: u64,
    /// Consumers attached to the work queue.
    pub consumers: u32,
}

/// The bus every stage, the CLI and the tests use.
#[async_trait]
pub trait Bus: Send + Sync {
    /// Declares exchanges and queues for `stages`, idempotently; re-run after reconnects.
    async fn declare(&self, stages: &[&str]) -> Result<(), BusError>;
    /// Publishes every message and returns once the broker confirmed all of them.
    async fn publish(&self, batch: &[Outgoing]) -> Result<(), BusError>;
    /// Publishes `envelope` to `stage`'s retry queue; it returns to the work queue after `delay`.
    async fn retry_later(&self, stage: &str, envelope: &Envelope, delay: Duration) -> Result<(), BusError>;
    /// Publishes `envelope` to `stage`'s dead-letter queue (its headers should carry the reason).
    async fn dead_letter(&self, stage: &str, envelope: &Envelope) -> Result<(), BusError>;
    /// Starts consuming `stage`'s work queue with at most `prefetch` unacknowledged deliveries.
    async fn consume(&self, stage: &str, prefetch: u16) -> Result<Box<dyn Consumer>, BusError>;
    /// Reads up to `limit` dead letters of `stage` without removing them.
    async fn dlq_list(&self, stage: &str, limit: usize) -> Result<Vec<Envelope>, BusError>;
    /// Moves dead letters of `stage` back to its work queue (all, or those whose message id is
    /// in `only`), attempt reset and the original failure kept in a header. Returns how many.
    async fn dlq_replay(&self, stage: &str, only: Option<&[Uuid]>) -> Result<usize, BusError>;
    /// Deletes every dead letter of `stage`; returns how many.
    async fn dlq_purge(&self, stage: &str) -> Result<u64, BusError>;
    /// Queue depths for `stage`.
    async fn depth(&self, stage: &str) -> Result<QueueDepth, BusError>;
    /// Whether the broker is reachable.
    async fn health(&self) -> Result<(), BusError>;
}

/// Prepares a dead letter for replay: attempt reset, failure headers moved into
/// [`headers::ORIGINAL_FAILURE`] so the history is kept.
pub fn prepare_replay(mut envelope: Envelope) -> Envelope {
    let failure = describe_failure(&envelope);
    for h in [headers::REASON, headers::FAILED_STAGE, headers::FAILURE_KIND, headers::DEAD_LETTERED_AT] {
        envelope.meta.extra.remove(h);
    }
    envelope.meta.extra.insert(headers::ORIGINAL_FAILURE.to_owned(), failure);
    envelope.meta.attempt = 0;
    envelope
}

/// One line describing why a dead letter failed: kind, stage, attempt and reason.
pub fn describe_failure(envelope: &Envelope) -> String {
    let m = &envelope.meta;
    format!(
        "{} at {} (attempt {}): {}",
        m.header(headers::FAILURE_KIND).unwrap_or("unknown"),
        m.header(headers::FAILED_STAGE).unwrap_or("?"),
        m.attempt,
        m.header(headers::REASON).unwrap_or("no reason recorded"),
    )
}

/// Full-jitter exponential backoff: a random delay in `[base·2^attempt / 2, base·2^attempt]`,
/// capped at `max`.
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(20));
    let ceiling = exp.min(max);
    let half = ceiling / 2;
    half + ceiling.saturating_sub(half).mul_f64(rand::random::<f64>())
}

/// Runs `call` until it succeeds, fails with an error `transient` rejects, or `patience` has
/// passed since the first try; before each new try it sleeps `backoff(attempt, base, max)`,
/// after telling `waiting` the error and the delay. Returns the last result. The producers'
/// side of an outage (`sightline submit`, the search API's uploads) waits this way.
pub async fn retry_for<T, E, F, Fut>(
    patience: Duration,
    base: Duration,
    max: Duration,
    transient: impl Fn(&E) -> bool,
    mut waiting: impl FnMut(&E, Duration),
    mut call: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    // tokio's clock, so that a test with paused time sees the patience pass as the sleeps do.
    let started = tokio::time::Instant::now();
    let mut attempt = 0u32;
    loop {
        match call().await {
            Err(e) if transient(&e) && started.elapsed() < patience => {
                attempt += 1;
                let delay = backoff(attempt, base, max);
                waiting(&e, delay);
                tokio::time::sleep(delay).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        for attempt in 0..10 {
            let d = backoff(attempt, base, max);
            let ceiling = (base * 2u32.pow(attempt)).min(max);
            assert!(
                d >= ceiling / 2 && d <= ceiling,
                "attempt {attempt}: {d:?} outside [{:?}, {ceiling:?}]",
                ceiling / 2
            );
        }
        assert!(backoff(40, base, max) <= max);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_for_retries_transient_errors_until_success_or_patience() {
        let (base, max) = (Duration::from_millis(100), Duration::from_secs(1));
        let transient = |e: &&str| *e == "down";
        // Two transient failures, then success: two waits announced.
        let mut calls = 0;
        let mut waits = Vec::new();
        let r: Result<u32, &str> = retry_for(
            Duration::from_secs(60),
            base,
            max,
            transient,
            |e, d| waits.push((*e, d)),
            || {
                calls += 1;
                let n = calls;
                async move { if n < 3 { Err("down") } else { Ok(n) } }
            },
        )
        .await;
        assert_eq!(r, Ok(3));
        assert_eq!(waits.len(), 2);
        assert!(waits.iter().all(|(e, d)| *e == "down" && *d <= max));
        // A permanent error ends it at once.
        let r: Result<(), &str> =
            retry_for(Duration::from_secs(60), base, max, transient, |_, _| {}, || async { Err("bad") }).await;
        assert_eq!(r, Err("bad"));
        // Patience spent: the last transient error comes back.
        let started = tokio::time::Instant::now();
        let r: Result<(), &str> =
            retry_for(Duration::from_secs(5), base, max, transient, |_, _| {}, || async { Err("down") }).await;
        assert_eq!(r, Err("down"));
        let waited = started.elapsed();
        assert!(waited >= Duration::from_secs(5) && waited <= Duration::from_secs(6), "{waited:?}");
    }
}

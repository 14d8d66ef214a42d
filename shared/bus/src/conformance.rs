//! One conformance suite for every [`Bus`] backend. Each check takes a bus and a stage name
//! nobody else uses, declares it, and asserts the behaviour the runner relies on.
//! `tests/conformance.rs` runs it against the in-memory bus always and against RabbitMQ with
//! the `integration` feature.

use std::time::Duration;

use sightline_messages::{Body, Envelope, ImageTask, headers};
use uuid::Uuid;

use crate::{Bus, Consumer, Delivery, Outgoing};

/// A distinct example message for `stage`, numbered `n`.
pub fn sample(n: u64) -> Envelope {
    let body = Body::Image(ImageTask::example(Uuid::from_u128(42), n));
    let mut env = Envelope::new(&body, Uuid::new_v4(), Uuid::from_u128(42)).expect("encode sample");
    env.meta.item = Some(n);
    env
}

async fn next_within(consumer: &mut Box<dyn Consumer>, wait: Duration) -> Option<Delivery> {
    match tokio::time::timeout(wait, consumer.next()).await {
        Ok(Some(Ok(d))) => Some(d),
        Ok(Some(Err(e))) => panic!("consumer error: {e}"),
        Ok(None) | Err(_) => None,
    }
}

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(400);

fn out(stage: &str, envelope: &Envelope) -> Outgoing {
    Outgoing { stage: stage.to_owned(), envelope: envelope.clone() }
}

/// Metadata and body survive a round trip unchanged.
pub async fn round_trip_keeps_metadata(bus: &dyn Bus, stage: &str) {
    bus.declare(&[stage]).await.expect("declare");
    bus.declare(&[stage]).await.expect("declare is idempotent");
    let mut env = sample(1);
    env.meta.attempt = 3;
    env.meta.causation_id = Some(Uuid::new_v4());
    env.meta.extra.insert(headers::SOURCE.into(), "shoes/a b.jpg".into());
    bus.publish(&[out(stage, &env)]).await.expect("publish");
    let mut consumer = bus.consume(stage, 4).await.expect("consume");
    let d = next_within(&mut consumer, WAIT).await.expect("delivery");
    assert_eq!(d.envelope, env, "envelope changed in transit");
    assert!(!d.redelivered);
    assert_eq!(d.envelope.decode().expect("decode"), env.decode().expect("decode"));
    d.acker.ack().await.expect("ack");
    assert!(next_within(&mut consumer, QUIET).await.is_none(), "acked message came back");
}

/// Publishing to a stage whose queues were never declared fails instead of vanishing.
pub async fn unroutable_publish_fails(bus: &dyn Bus, stage: &str) {
    bus.declare(&["conformance-declared"]).await.expect("declare");
    let err = bus.publish(&[out(stage, &sample(1))]).await.expect_err("publish to an undeclared stage");
    assert!(matches!(err, crate::BusError::Unroutable(_)), "{err}");
}

/// No more than `prefetch` deliveries are outstanding; settling one releases the next.
pub async fn prefetch_bounds_in_flight(bus: &dyn Bus, stage: &str) {
    bus.declare(&[stage]).await.expect("declare");
    let batch: Vec<_> = (0..5).map(|n| out(stage, &sample(n))).collect();
    bus.publish(&batch).await.expect("publish");
    let mut consumer = bus.consume(stage, 2).await.expect("consume");
    let a = next_within(&mut consumer, WAIT).await.expect("first");
    let _b = next_within(&mut consumer, WAIT).await.expect("second");
    assert!(next_within(&mut consumer, QUIET).await.is_none(), "third delivery beyond prefetch 2");
    a.acker.ack().await.expect("ack");
    let c = next_within(&mut consumer, WAIT).await.expect("third after an ack");
    assert_eq!(c.envelope.meta.item, Some(2), "FIFO order");
}

/// A requeued message is delivered again, flagged as redelivered.
pub async fn requeue_redelivers(bus: &dyn Bus, stage: &str) {
    bus.declare(&[stage]).await.expect("declare");
    let env = sample(7);
    bus.publish(&[out(stage, &env)]).await.expect("publish");
    let mut consumer = bus.consume(stage, 1).await.expect("consume");
    let d = next_within(&mut consumer, WAIT).await.expect("delivery");
    d.acker.requeue().await.expect("requeue");
    let again = next_within(&mut consumer, WAIT).await.expect("redelivery");
    assert_eq!(again.envelope.meta.message_id, env.meta.message_id);
    assert!(again.redelivered, "redelivered flag");
    again.acker.ack().await.expect("ack");
}

/// A retried message comes back to the work queue after its delay, not before.
pub async fn retry_comes_back_after_delay(bus: &dyn Bus, stage: &str) {
    bus.declare(&[stage]).await.expect("declare");
    let mut env = sample(3);
    env.meta.attempt = 1;
    let start = std::time::Instant::now();
    bus.retry_later(stage, &env, Duration::from_millis(800)).await.expect("retry");
    let depth = bus.depth(stage).await.expect("depth");
    assert_eq!(depth.retrying, 1, "waiting in the retry queue");
    let mut consumer = bus.consume(stage, 1).await.expect("consume");
    let d = next_within(&mut consumer, WAIT).await.expect("retried delivery");
    assert!(start.elapsed() >= Duration::from_millis(700), "came back after {:?}", start.elapsed());
    assert_eq!(d.envelope.meta.message_id, env.meta.message_id);
    assert_eq!(d.envelope.meta.attempt, 1, "attempt header survives");
    d.acker.ack().await.expect("ack");
}

/// Dead letters can be listed (without being removed), replayed and purged.
pub async fn dead_letters_list_replay_purge(bus: &dyn Bus, stage: &str) {
    bus.declare(&[stage]).await.expect("declare");
    let mut ids = Vec::new();
    for n in 0..3 {
        let mut env = sample(n);
        env.meta.attempt = 4;
        env.meta.extra.insert(headers::REASON.into(), format!("corrupt image {n}"));
        env.meta.extra.insert(headers::FAILED_STAGE.into(), stage.into());
        env.meta.extra.insert(headers::FAILURE_KIND.into(), "permanent".into());
        bus.dead_letter(stage, &env).await.expect("dead letter");
        ids.push(env.meta.message_id);
    }
    let listed = bus.dlq_list(stage, 10).await.expect("list");
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().any(|e| e.meta.header(headers::REASON) == Some("corrupt image 1")));
    assert_eq!(bus.dlq_list(stage, 10).await.expect("list again").len(), 3, "listing removes nothing");
    assert_eq!(bus.depth(stage).await.expect("depth").dead, 3);

    let replayed = bus.dlq_replay(stage, Some(&ids[1..2])).await.expect("replay one");
    assert_eq!(replayed, 1);
    let mut consumer = bus.consume(stage, 1).await.expect("consume");
    let d = next_within(&mut consumer, WAIT).await.expect("replayed delivery");
    assert_eq!(d.envelope.meta.message_id, ids[1]);
    assert_eq!(d.envelope.meta.attempt, 0, "attempt reset");
    let original = d.envelope.meta.header(headers::ORIGINAL_FAILURE).expect("original failure kept");
    assert!(original.contains("corrupt image 1") && original.contains("attempt 4"), "{original}");
    assert!(d.envelope.meta.header(headers::REASON).is_none(), "failure moved, not duplicated");
    d.acker.ack().await.expect("ack");

    assert_eq!(bus.dlq_list(stage, 10).await.expect("list").len(), 2);
    assert_eq!(bus.dlq_purge(stage).await.expect("purge"), 2);
    assert!(bus.dlq_list(stage, 10).await.expect("list").is_empty());
}

/// A message requeued more often than the delivery limit ends in the dead-letter queue with
/// the reason, instead of looping forever or being dropped. The bus must be built with a
/// delivery limit of 2.
pub async fn delivery_limit_dead_letters(bus: &dyn Bus, stage: &str) {
    bus.declare(&[stage]).await.expect("declare");
    let env = sample(9);
    bus.publish(&[out(stage, &env)]).await.expect("publish");
    let mut consumer = bus.consume(stage, 1).await.expect("consume");
    let mut deliveries = 0;
    while let Some(d) = next_within(&mut consumer, Duration::from_secs(2)).await {
        deliveries += 1;
        assert!(deliveries <= 6, "delivery limit not enforced");
        d.acker.requeue().await.expect("requeue");
    }
    assert!(deliveries >= 2, "delivered {deliveries} times");
    let dead = bus.dlq_list(stage, 10).await.expect("list");
    assert_eq!(dead.len(), 1, "message dead-lettered, not dropped");
    assert_eq!(dead[0].meta.message_id, env.meta.message_id);
    assert_eq!(dead[0].meta.header(headers::FAILURE_KIND), Some("delivery_limit"));
}

/// A cancelled consumer receives nothing new; the message stays for the next consumer.
pub async fn cancel_stops_delivery(bus: &dyn Bus, stage: &str) {
    bus.declare(&[stage]).await.expect("declare");
    let mut consumer = bus.consume(stage, 1).await.expect("consume");
    consumer.cancel().await.expect("cancel");
    let env = sample(5);
    bus.publish(&[out(stage, &env)]).await.expect("publish");
    assert!(next_within(&mut consumer, QUIET).await.is_none(), "delivery after cancel");
    let mut other = bus.consume(stage, 1).await.expect("consume");
    let d = next_within(&mut other, WAIT).await.expect("message kept for the next consumer");
    assert_eq!(d.envelope.meta.message_id, env.meta.message_id);
    d.acker.ack().await.expect("ack");
}

//! Names and arguments of every exchange and queue. `deploy/rabbitmq/definitions.json`
//! describes the same topology; a test compares the two.

/// The direct exchange work queues are bound to, one routing key per stage.
pub const EXCHANGE: &str = "sightline";
/// The direct exchange dead-letter queues are bound to, one routing key per stage.
pub const DEAD_LETTER_EXCHANGE: &str = "sightline.dlx";
/// Redeliveries (worker crashes, requeues) before RabbitMQ dead-letters a message itself.
pub const DELIVERY_LIMIT: i64 = 10;

/// The work queue of `stage`.
pub fn work_queue(stage: &str) -> String {
    format!("sightline.{stage}")
}

/// The retry queue of `stage`: messages wait out their backoff there.
pub fn retry_queue(stage: &str) -> String {
    format!("sightline.{stage}.retry")
}

/// The dead-letter queue of `stage`.
pub fn dead_letter_queue(stage: &str) -> String {
    format!("sightline.{stage}.dlq")
}

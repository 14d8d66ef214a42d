use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Header names Sightline sets on AMQP messages (besides the standard properties).
pub mod headers {
    /// Schema version of the body.
    pub const SCHEMA_VERSION: &str = "x-sightline-schema";
    /// Delivery attempt, 0 for the first.
    pub const ATTEMPT: &str = "x-sightline-attempt";
    /// Index of the item (image) within its job.
    pub const ITEM: &str = "x-sightline-item";
    /// W3C trace context.
    pub const TRACEPARENT: &str = "traceparent";
    /// Causation id: the id of the message whose handling published this one.
    pub const CAUSATION_ID: &str = "x-sightline-causation-id";
    /// Why a message was dead-lettered.
    pub const REASON: &str = "x-sightline-reason";
    /// Which stage dead-lettered it.
    pub const FAILED_STAGE: &str = "x-sightline-failed-stage";
    /// The error class: `permanent`, `exhausted`, `undecodable`, `delivery_limit`.
    pub const FAILURE_KIND: &str = "x-sightline-failure-kind";
    /// Where the image came from (file name or URL), for operators.
    pub const SOURCE: &str = "x-sightline-source";
    /// Set by `dlq replay`: the failure the message had before it was replayed.
    pub const ORIGINAL_FAILURE: &str = "x-sightline-original-failure";
    /// Milliseconds since the epoch when it was dead-lettered.
    pub const DEAD_LETTERED_AT: &str = "x-sightline-dead-lettered-at";
}

/// Message metadata, carried outside the body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// Unique id of this message; the idempotency key.
    pub message_id: Uuid,
    /// The job this message belongs to.
    pub correlation_id: Uuid,
    /// The message whose handling published this one.
    pub causation_id: Option<Uuid>,
    /// The body's kind, e.g. `image.task`.
    pub kind: String,
    /// The body's schema version.
    pub schema_version: u16,
    /// Delivery attempt, 0 for the first; incremented on each retry.
    pub attempt: u32,
    /// W3C `traceparent`.
    pub traceparent: Option<String>,
    /// Index of the image within its job, when the message concerns one image.
    pub item: Option<u64>,
    /// Other `x-sightline-*` headers (failure reason, source name...).
    pub extra: BTreeMap<String, String>,
}

impl Meta {
    /// Fresh metadata for a first attempt, with a new trace context.
    pub fn new(message_id: Uuid, job: Uuid, kind: &str, schema_version: u16) -> Self {
        Self {
            message_id,
            correlation_id: job,
            causation_id: None,
            kind: kind.to_owned(),
            schema_version,
            attempt: 0,
            traceparent: Some(traceparent_for(job, message_id)),
            item: None,
            extra: BTreeMap::new(),
        }
    }

    /// A header from `extra`, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.extra.get(name).map(String::as_str)
    }
}

/// A W3C traceparent whose trace id is the job id, so every stage's span of a job shares a trace.
pub fn traceparent_for(job: Uuid, message_id: Uuid) -> String {
    let span = &message_id.simple().to_string()[..16];
    format!("00-{}-{}-01", job.simple(), span)
}

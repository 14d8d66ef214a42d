//! The wire contract: the envelope every message travels in and the bodies of every kind.
//!
//! Metadata (ids, kind, schema version, attempt, trace context) lives in [`Meta`], which the
//! bus maps onto AMQP properties and headers so operators can read it without decoding the
//! body. Bodies are MessagePack with named fields. Within a kind, changes are additive only;
//! a breaking change gets a new kind. Golden fixtures under `tests/golden/` pin the bytes.
//!
//! What stages find about an image travels in its annotations, one typed value per stage
//! ([`annotations`]); job options, routes and the decisions of each job kind are in
//! [`options`].
//!
//! Images never travel in messages: only storage keys do.

pub mod annotations;
mod body;
mod meta;
pub mod options;
pub mod vector;

pub use annotations::{Annotation, AnnotationError};
pub use body::{
    Body, CollectionReady, ImageTask, IngestItem, ItemOutcome, ItemRecord, JobSpec, KIND_COLLECTION_READY, KIND_IMAGE,
    KIND_INGEST_ITEM, KIND_JOB, Location, Source, Stored, from_msgpack, to_msgpack,
};
pub use meta::{Meta, headers};

use thiserror::Error;

/// The stable names of every pipeline stage, in their canonical order.
pub const STAGES: [&str; 9] = ["ingest", "dedup", "detect", "ocr", "face", "embed", "cluster", "index", "track"];

/// A message as it travels: metadata plus an encoded body.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Ids, kind, attempt and trace context; carried in AMQP properties and headers.
    pub meta: Meta,
    /// The MessagePack-encoded body (named fields).
    pub body: Vec<u8>,
}

/// Why a message could not be understood.
#[derive(Debug, Error)]
pub enum DecodeError {
    /// The kind is not one this build knows.
    #[error("unknown message kind {kind:?}")]
    UnknownKind {
        /// The kind found in the metadata.
        kind: String,
    },
    /// The schema version is newer than this build understands.
    #[error("unsupported schema version {version} for kind {kind:?} (this build reads up to {supported})")]
    UnsupportedVersion {
        /// The kind found in the metadata.
        kind: String,
        /// The version found in the metadata.
        version: u16,
        /// The highest version this build reads.
        supported: u16,
    },
    /// The body is not valid MessagePack for the kind.
    #[error("malformed {kind:?} body: {source}")]
    Malformed {
        /// The kind found in the metadata.
        kind: String,
        /// The decoder's error.
        #[source]
        source: rmp_serde::decode::Error,
    },
}

/// Why a body could not be encoded.
#[derive(Debug, Error)]
#[error("encode message body: {0}")]
pub struct EncodeError(#[from] rmp_serde::encode::Error);

impl Envelope {
    /// Builds an envelope for `body`, with fresh metadata tied to `job` (the correlation id).
    pub fn new(body: &Body, message_id: uuid::Uuid, job: uuid::Uuid) -> Result<Self, EncodeError> {
        let meta = Meta::new(message_id, job, body.kind(), body.schema_version());
        Ok(Self { meta, body: body.encode()? })
    }

    /// Decodes the body according to the kind and schema version in the metadata.
    pub fn decode(&self) -> Result<Body, DecodeError> {
        Body::decode(&self.meta.kind, self.meta.schema_version, &self.body)
    }

    /// Builds the envelope of a message caused by this one: a deterministic id derived from
    /// this message's id and `index`, same correlation id and trace context, attempt 0.
    pub fn child(&self, body: &Body, index: u64) -> Result<Self, EncodeError> {
        let id = derive_id(self.meta.message_id, index);
        let mut meta = Meta::new(id, self.meta.correlation_id, body.kind(), body.schema_version());
        meta.causation_id = Some(self.meta.message_id);
        meta.traceparent = self.meta.traceparent.clone();
        meta.item = body.item();
        Ok(Self { meta, body: body.encode()? })
    }
}

/// Derives a stable message id from a parent id and an output index (UUID v5), so a
/// re-run handler publishes the same ids and downstream idempotency catches the repeat.
pub fn derive_id(parent: uuid::Uuid, index: u64) -> uuid::Uuid {
    uuid::Uuid::new_v5(&parent, &index.to_be_bytes())
}

/// Milliseconds since the Unix epoch (0 if the clock is before it): the timestamps messages and
/// records carry (`submitted_at_ms`, …).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

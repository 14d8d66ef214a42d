use std::sync::Arc;

use async_trait::async_trait;
use sightline_blob::{BlobError, BlobStore};
use sightline_bus::BusError;
use sightline_coord::{Coord, CoordError};
use sightline_messages::{Body, Envelope, ImageTask, ItemOutcome, ItemRecord, KIND_IMAGE};
use thiserror::Error;

use crate::outage::Dependency;

/// What a handler failed with. The runner retries [`StageError::Transient`] with backoff and
/// dead-letters [`StageError::Permanent`] at once; [`StageError::Unavailable`] is not the
/// message's fault: the runner waits the outage out (see [`crate::outage`]) and runs the
/// message again without spending its retry budget.
#[derive(Debug, Error)]
pub enum StageError {
    /// May succeed later (overloaded, a lease held elsewhere, a model still loading).
    #[error("{0}")]
    Transient(String),
    /// Will fail the same way every time (bad input); the reason is shown to operators.
    #[error("{0}")]
    Permanent(String),
    /// A dependency (broker, Redis, object store) did not answer.
    #[error("{reason}")]
    Unavailable {
        /// Which one.
        dependency: Dependency,
        /// The error it failed with.
        reason: String,
    },
}

impl StageError {
    /// A permanent error with `reason`.
    pub fn permanent(reason: impl Into<String>) -> Self {
        StageError::Permanent(reason.into())
    }

    /// A transient error with `reason`.
    pub fn transient(reason: impl Into<String>) -> Self {
        StageError::Transient(reason.into())
    }
}

impl From<BlobError> for StageError {
    fn from(e: BlobError) -> Self {
        if e.is_transient() {
            StageError::Unavailable { dependency: Dependency::Storage, reason: e.to_string() }
        } else {
            StageError::Permanent(e.to_string())
        }
    }
}

impl From<CoordError> for StageError {
    fn from(e: CoordError) -> Self {
        if e.is_transient() {
            StageError::Unavailable { dependency: Dependency::Coord, reason: e.to_string() }
        } else {
            StageError::Permanent(e.to_string())
        }
    }
}

impl From<BusError> for StageError {
    fn from(e: BusError) -> Self {
        if e.is_transient() {
            StageError::Unavailable { dependency: Dependency::Broker, reason: e.to_string() }
        } else {
            StageError::Permanent(e.to_string())
        }
    }
}

/// A decoded message handed to a stage.
#[derive(Debug, Clone)]
pub struct Input {
    /// The envelope as it arrived.
    pub envelope: Envelope,
    /// The decoded body.
    pub body: Body,
}

impl Input {
    /// The image task of a stage that handles only `image.task`; any other body is a permanent
    /// error naming `stage` and the kind (the runner already refuses kinds a stage does not
    /// accept, so this only guards a stage whose `accepts` is wider than its handler).
    pub fn into_image(self, stage: &str) -> Result<ImageTask, StageError> {
        match self.body {
            Body::Image(task) => Ok(task),
            other => Err(StageError::permanent(format!("{stage} does not handle {}", other.kind()))),
        }
    }
}

/// What a handler wants done once it returns. The runner applies effects in order:
/// every publish (with confirms) first, then every finish, then marks the message done.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // effects are short-lived and few per message
pub enum Effect {
    /// Publish `body` to `stage`'s work queue, with an id derived from the input's.
    Publish {
        /// Destination stage.
        stage: String,
        /// The message body.
        body: Body,
    },
    /// Publish `body` to `stage` with an explicit id, for messages several handlers may emit
    /// (a collection's `collection.ready`): the id deduplicates them.
    PublishOnce {
        /// Destination stage.
        stage: String,
        /// The message body.
        body: Body,
        /// The message id.
        id: uuid::Uuid,
    },
    /// An image left its route: count it in the job's progress and store its record.
    Finish(Box<ItemRecord>),
}

impl Effect {
    /// Sends `task` to the next stage of its route, or finishes it (outcome `ok`) when the
    /// route ends here. `stage` is the current stage's name.
    pub fn forward(mut task: ImageTask, stage: &str) -> Effect {
        match task.next_stage().map(str::to_owned) {
            Some(next) => {
                task.hop += 1;
                Effect::Publish { stage: next, body: Body::Image(task) }
            }
            None => Effect::Finish(Box::new(record_for(&task, ItemOutcome::Ok, stage, None))),
        }
    }

    /// Finishes `task` early with `outcome` (duplicate, filtered) and an optional reason.
    pub fn leave(task: &ImageTask, outcome: ItemOutcome, stage: &str, reason: Option<String>) -> Effect {
        Effect::Finish(Box::new(record_for(task, outcome, stage, reason)))
    }
}

/// The record of an image task leaving its route at `stage`.
pub fn record_for(task: &ImageTask, outcome: ItemOutcome, stage: &str, reason: Option<String>) -> ItemRecord {
    ItemRecord {
        job_id: task.job_id,
        item: task.item,
        collection: task.collection.clone(),
        name: task.name.clone(),
        outcome,
        stage: stage.to_owned(),
        key: Some(task.key.clone()),
        format: Some(task.format.clone()),
        width: Some(task.width),
        height: Some(task.height),
        reason,
        annotations: task.annotations.clone(),
    }
}

/// What a handler can reach: storage and coordination (publishing goes through [`Effect`]s).
#[derive(Clone)]
pub struct Ctx {
    /// Blob storage.
    pub blob: Arc<dyn BlobStore>,
    /// Coordination.
    pub coord: Arc<dyn Coord>,
}

impl Ctx {
    /// Runs CPU-heavy or blocking work (decoding, hashing, inference) on the blocking pool,
    /// never on the async runtime.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, StageError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        tokio::task::spawn_blocking(f).await.map_err(|e| StageError::transient(format!("blocking task failed: {e}")))
    }
}

/// One pipeline stage. Handlers must be idempotent: a message may be handled more than once
/// (a worker died before acking), and must then have the same effects.
#[async_trait]
pub trait Stage: Send + Sync + 'static {
    /// The stable stage name (queue names derive from it).
    fn name(&self) -> &'static str;
    /// Whether this stage handles messages of `kind`; others are dead-lettered as unknown.
    fn accepts(&self, kind: &str) -> bool;
    /// Handles one message.
    async fn handle(&self, ctx: &Ctx, input: Input) -> Result<Vec<Effect>, StageError>;
    /// Whether the stage can work (models loaded...). Checked before consuming and by `/readyz`.
    async fn ready(&self) -> Result<(), String> {
        Ok(())
    }
}

/// A stage that handles image tasks only (`image.task`): dedup, detect, embed, face, ocr,
/// index. Every such type is a [`Stage`] through the impl below, which names it, accepts only
/// image tasks, hands the handler the decoded task, and asks [`ImageStage::readiness`] for
/// `ready()`: the part those stages would otherwise each write again.
#[async_trait]
pub trait ImageStage: Send + Sync + 'static {
    /// The stable stage name (queue names derive from it).
    const NAME: &'static str;
    /// Handles one image task.
    async fn handle_image(&self, ctx: &Ctx, task: ImageTask) -> Result<Vec<Effect>, StageError>;
    /// Whether the stage can work (a model stage: `Models::ready`, which loads the models).
    async fn readiness(&self) -> Result<(), String> {
        Ok(())
    }
}

#[async_trait]
impl<S: ImageStage> Stage for S {
    fn name(&self) -> &'static str {
        S::NAME
    }

    fn accepts(&self, kind: &str) -> bool {
        kind == KIND_IMAGE
    }

    async fn handle(&self, ctx: &Ctx, input: Input) -> Result<Vec<Effect>, StageError> {
        let task = input.into_image(S::NAME)?;
        self.handle_image(ctx, task).await
    }

    async fn ready(&self) -> Result<(), String> {
        self.readiness().await
    }
}

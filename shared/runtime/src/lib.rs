//! The runtime every stage shares: the [`Stage`] trait, the [`runner`] that drives one stage
//! from its work queue, the admin server (`/livez`, `/readyz`, `/metrics`), configuration,
//! telemetry, shutdown, and the embedded single-process mode.
//!
//! Order inside the runner (the design): decode the envelope (undecodable: dead-letter);
//! skip message ids already done; run the handler under a timeout; publish outputs with
//! confirms; record finished items; mark done; ack. Transient errors retry with backoff,
//! permanent errors and exhausted retries go to the stage's dead-letter queue. An unreachable
//! dependency is nobody's message's fault: the runner pauses, holds what it has in flight,
//! probes the dependency and resumes by itself ([`outage`]).

pub mod admin;
pub mod backends;
pub mod config;
pub mod embedded;
pub mod fanin;
pub mod local_copy;
pub mod metrics;
#[cfg(feature = "otel")]
mod otel;
pub mod outage;
pub mod records;
pub mod runner;
pub mod service;
pub mod shutdown;
pub mod stage;
pub mod telemetry;

pub use backends::Backends;
pub use config::{CommonArgs, RunnerSettings};
pub use service::{Companion, Worker};
pub use stage::{Ctx, Effect, ImageStage, Input, Stage, StageError};

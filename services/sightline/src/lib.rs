//! `sightline`: the producer and operator CLI, and the embedded single-process mode, as a
//! library (the `sightline` binary is `main.rs`: argument parsing and dispatch only).
//!
//! - [`embedded`]: the commands that run the stages in this process (`run`, `annotate`,
//!   `dedup`, `face`, `ocr`, `search`, `cluster`);
//! - [`remote`]: the commands that talk to the services (`submit`, `status`, `results`, `dlq`);
//! - [`jobs`]: what a job needs in both modes (spec, route, upload, waiting, record outputs);
//! - [`report`]: human-readable output, CSV quoting, the annotation outputs and their scoring;
//! - [`review`]: `sightline review`, the review page and the simulated reviewer (active
//!   learning over an annotation's labels);
//! - [`store`]: in-store analytics, `sightline count` and `sightline store` (people per
//!   image; a camera's footage into tracks, line crossings, dwell, heat map, composition);
//! - [`train`]: `sightline train`, a retrieval head on the frozen backbone;
//! - [`walk`]: the one folder walker;
//! - [`models`]: `sightline models verify`.
//!
//! The evaluation programs (`evals/`) use this library too, so that they measure the code the
//! commands run.

pub mod embedded;
pub mod jobs;
pub mod models;
pub mod remote;
pub mod report;
pub mod review;
pub mod store;
pub mod train;
pub mod walk;

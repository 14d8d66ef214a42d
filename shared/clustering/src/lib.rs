//! Sightline's clustering library: density-peaks clustering (Rodriguez & Laio 2014) with an exact
//! and a scaled implementation behind one interface ([`dpc::DensityPeaks`]), the decision-graph
//! plot, the adjusted Rand index for evaluation, the point-set CSV format of `sightline cluster`,
//! and the cluster stage ([`stage`]).
//! Algorithm, parameters and measurements: `docs/clustering.md`.
//!
//! ```
//! use sightline_clustering::dpc::{self, Method, Params};
//! use sightline_clustering::points::Points;
//!
//! // Two tight groups of three points.
//! let points = Points::from_rows(&[[0.0f32, 0.0], [0.1, 0.0], [0.0, 0.1], [5.0, 5.0], [5.1, 5.0], [5.0, 5.1]])?;
//! let params = Params { k: Some(2), ..Params::default() };
//! let clustering = dpc::cluster(&points, &params, Method::Exact)?;
//! assert_eq!(clustering.labels[0], clustering.labels[2]);
//! # Ok::<(), sightline_clustering::dpc::DpcError>(())
//! ```

pub mod ari;
pub mod dpc;
pub mod labels;
pub mod points;
pub mod review;
pub mod svg;

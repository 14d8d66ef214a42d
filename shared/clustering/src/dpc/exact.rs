//! Exact density peaks: every pair is compared once per pass, by blocked matrix products.

use std::time::Instant;

use super::gemm::{self, Rows};
use super::{Clustering, DensityPeaks, DpcError, Graph, Kernel, Params, Stats, estimate_dc, finish, with_threads};
use crate::points::Points;

/// Neighbour-list length below which the lists are not shortened (δ is read from them).
pub(crate) const LIST_MIN: usize = 16;

/// Exact density peaks over all pairs.
///
/// One all-pairs pass gives each point's densities (cutoff count or Gaussian sum over every other
/// point) and its nearest neighbours; δ is read from the neighbour list, and the points whose list
/// holds no denser point (local peaks, typically well under 1 %) get an exact search over the
/// denser points. Memory is O(n·k), never O(n²).
#[derive(Debug, Clone, Default)]
pub struct Exact {
    /// Clustering parameters.
    pub params: Params,
}

impl Exact {
    /// Exact clustering with these parameters.
    pub fn new(params: Params) -> Self {
        Self { params }
    }
}

impl DensityPeaks for Exact {
    fn name(&self) -> &'static str {
        "exact"
    }

    fn cluster(&self, points: &Points) -> Result<Clustering, DpcError> {
        super::validate_input(points, &self.params)?;
        with_threads(self.params.threads, || run(points, &self.params))?
    }
}

fn run(points: &Points, params: &Params) -> Result<Clustering, DpcError> {
    let start = Instant::now();
    let mut stats = Stats { method: "exact", n: points.len(), dim: points.dim(), ..Stats::default() };
    let x = Rows::new(points);
    let n = x.len();
    let k = params.k_for(n);
    let k_list = k.max(LIST_MIN).min(n - 1);
    let t = Instant::now();
    let dc = match params.kernel {
        Kernel::Knn => params.dc,
        _ => Some(params.dc.unwrap_or_else(|| estimate_dc(&x, params.percent, params.seed))),
    };
    stats.dc_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let (lists, rho) = gemm::all_pairs(&x, k_list, params.kernel, dc);
    stats.neighbours_s = t.elapsed().as_secs_f64();
    let mut clustering = finish(&x, params, k, Graph { lists, rho, dc }, &mut stats)?;
    clustering.stats.total_s = start.elapsed().as_secs_f64();
    Ok(clustering)
}

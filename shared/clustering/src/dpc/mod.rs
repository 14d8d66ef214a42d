//! Density-peaks clustering (Rodriguez & Laio, "Clustering by fast search and find of density
//! peaks", Science 344, 2014).
//!
//! Every point gets a local density ρ and a distance δ to the nearest point of higher density.
//! Cluster centres are the points that stand out with both (large γ = ρ·δ on the decision graph);
//! every other point joins the cluster of its nearest denser neighbour, in order of decreasing
//! density. A cluster's halo is the part of it whose density is below the highest density found
//! on its border with other clusters.
//!
//! Two implementations share one interface, [`DensityPeaks`]:
//! - [`Exact`] compares all pairs with blocked matrix products (never an `n × n` matrix), for up to
//!   tens of thousands of points;
//! - [`Scaled`] takes ρ and δ from approximate k-nearest-neighbour lists of an inverted-file index
//!   (k-means cells searched with the same blocked products), with an exact search for the few
//!   points whose denser neighbour is not in their list, for millions of points.
//!
//! Both end in the same steps ([`finish`]): ordering by density, δ, centre selection
//! ([`CentreRule`]), assignment and the core/halo split.

mod centres;
mod exact;
mod gemm;
pub mod scaled;

use std::time::{Duration, Instant};

use serde::Serialize;

pub use centres::{AUTO_GAP, AUTO_MERGE, AUTO_Z_MIN, CentreRule, Decision};
pub use exact::Exact;
pub use scaled::Scaled;

use crate::points::Points;

/// Failures of a clustering run.
#[derive(Debug, thiserror::Error)]
pub enum DpcError {
    /// The input cannot be clustered (empty, ragged, not finite, unparsable).
    #[error("bad input: {0}")]
    Input(String),
    /// The parameters contradict each other or the data.
    #[error("bad parameters: {0}")]
    Params(String),
    /// The worker thread pool could not be built.
    #[error("thread pool: {0}")]
    Threads(String),
}

/// How the local density ρ is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kernel {
    /// The paper's count: the number of other points closer than d_c. Ties between equal counts
    /// are broken by the kNN density.
    Cutoff,
    /// A Gaussian kernel: Σ_j exp(−(d_ij/d_c)²) over all other points (over the kNN list in
    /// [`Scaled`]).
    Gaussian,
    /// kNN density: 1 / (mean distance to the k nearest neighbours). No d_c; the most robust
    /// choice in high dimensions, where the cutoff count degenerates.
    Knn,
}

impl Kernel {
    /// The kernel's name as the command line spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kernel::Cutoff => "cutoff",
            Kernel::Gaussian => "gaussian",
            Kernel::Knn => "knn",
        }
    }
}

impl std::str::FromStr for Kernel {
    type Err = DpcError;
    fn from_str(s: &str) -> Result<Self, DpcError> {
        match s {
            "cutoff" => Ok(Kernel::Cutoff),
            "gaussian" => Ok(Kernel::Gaussian),
            "knn" => Ok(Kernel::Knn),
            _ => Err(DpcError::Params(format!("unknown kernel {s:?} (cutoff, gaussian, knn)"))),
        }
    }
}

/// Parameters common to both implementations. `Params::default()` is the recommended setting.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Density kernel.
    pub kernel: Kernel,
    /// Neighbourhood size as a percentage of the points: d_c is chosen so that a point has this
    /// percentage of the others within d_c on average (the paper's rule of thumb, 1-2 %), and the
    /// kNN kernel's k is this percentage of n, clamped to [`Params::k_min`, `Params::k_max`].
    pub percent: f64,
    /// An explicit cutoff distance d_c instead of the percentage.
    pub dc: Option<f32>,
    /// An explicit k for the kNN kernel instead of the percentage.
    pub k: Option<usize>,
    /// Smallest k the percentage may give.
    pub k_min: usize,
    /// Largest k the percentage may give (keeps approximate search cheap and small clusters whole).
    pub k_max: usize,
    /// How centres are chosen on the decision graph.
    pub centres: CentreRule,
    /// Compute the core/halo split (otherwise every point is core).
    pub halo: bool,
    /// Worker threads; `None` uses rayon's global pool (one per core).
    pub threads: Option<usize>,
    /// Seed for the sampling steps (d_c estimation, index training); runs are deterministic.
    pub seed: u64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            kernel: Kernel::Knn,
            percent: 1.0,
            dc: None,
            k: None,
            k_min: 8,
            k_max: 32,
            centres: CentreRule::default(),
            halo: true,
            threads: None,
            seed: 0x5eed,
        }
    }
}

impl Params {
    /// k for the kNN kernel (and the minimum neighbour-list length) for `n` points.
    pub fn k_for(&self, n: usize) -> usize {
        let k = self
            .k
            .unwrap_or_else(|| ((self.percent / 100.0 * n as f64).round() as usize).clamp(self.k_min, self.k_max));
        k.min(n.saturating_sub(1))
    }

    fn validate(&self) -> Result<(), DpcError> {
        if !(self.percent > 0.0 && self.percent < 100.0) {
            return Err(DpcError::Params(format!("percent must be in (0, 100), got {}", self.percent)));
        }
        if let Some(dc) = self.dc
            && !(dc.is_finite() && dc > 0.0)
        {
            return Err(DpcError::Params(format!("d_c must be positive, got {dc}")));
        }
        if self.k == Some(0) {
            return Err(DpcError::Params("k must be at least 1".into()));
        }
        if self.k_min == 0 || self.k_min > self.k_max {
            return Err(DpcError::Params(format!("need 1 <= k_min <= k_max, got {} and {}", self.k_min, self.k_max)));
        }
        self.centres.validate()
    }
}

/// A density-peaks clustering implementation.
pub trait DensityPeaks {
    /// The implementation's name (`exact`, `scaled`).
    fn name(&self) -> &'static str;
    /// Clusters `points`.
    fn cluster(&self, points: &Points) -> Result<Clustering, DpcError>;
}

/// Which implementation to run, for callers that choose at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// [`Exact`].
    Exact,
    /// [`Scaled`].
    Scaled,
    /// [`Exact`] up to [`AUTO_EXACT_MAX`] points, [`Scaled`] above.
    Auto,
}

/// Largest point count [`Method::Auto`] clusters exactly (about 10 s of all-pairs work at 512-d
/// on two cores).
pub const AUTO_EXACT_MAX: usize = 30_000;

impl std::str::FromStr for Method {
    type Err = DpcError;
    fn from_str(s: &str) -> Result<Self, DpcError> {
        match s {
            "exact" => Ok(Method::Exact),
            "scaled" => Ok(Method::Scaled),
            "auto" => Ok(Method::Auto),
            _ => Err(DpcError::Params(format!("unknown method {s:?} (exact, scaled, auto)"))),
        }
    }
}

/// Clusters `points` with the chosen implementation and default index settings.
pub fn cluster(points: &Points, params: &Params, method: Method) -> Result<Clustering, DpcError> {
    let exact = match method {
        Method::Exact => true,
        Method::Scaled => false,
        Method::Auto => points.len() <= AUTO_EXACT_MAX,
    };
    if exact { Exact::new(params.clone()).cluster(points) } else { Scaled::new(params.clone()).cluster(points) }
}

/// The result of a clustering run: the decision graph, the clusters and the halo.
#[derive(Debug, Clone, Serialize)]
pub struct Clustering {
    /// Local density of each point (units depend on the kernel).
    pub rho: Vec<f32>,
    /// Distance to the nearest denser point; for the densest point, its largest distance to any
    /// point (the paper's convention).
    pub delta: Vec<f32>,
    /// The nearest denser point (`None` for the densest point).
    pub nearest_denser: Vec<Option<u32>>,
    /// γ = (ρ/ρ_max)·(δ/δ_max), what centres are ranked by.
    pub gamma: Vec<f32>,
    /// Cluster `c`'s centre is point `centres[c]`; clusters are numbered by decreasing γ.
    pub centres: Vec<usize>,
    /// Each point's cluster.
    pub labels: Vec<u32>,
    /// Whether each point is in its cluster's halo (below the cluster's border density).
    pub halo: Vec<bool>,
    /// How the centres were chosen (threshold and statistics of the automatic rule).
    pub decision: Decision,
    /// The cutoff distance (cutoff and Gaussian kernels, or when given explicitly).
    pub dc: Option<f32>,
    /// Neighbours per point in the kNN lists (and k of the kNN kernel).
    pub k: usize,
    /// Where the time went and how much fell back to exact search.
    pub stats: Stats,
}

/// Work counters and phase timings of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// `exact` or `scaled`.
    pub method: &'static str,
    /// Points.
    pub n: usize,
    /// Features per point.
    pub dim: usize,
    /// Building the neighbour lists (all-pairs pass, or index training + search).
    pub neighbours_s: f64,
    /// Of which: training the index (scaled only).
    pub index_train_s: f64,
    /// Of which: assigning points to index cells (scaled only).
    pub index_assign_s: f64,
    /// Of which: searching the kNN lists (scaled only).
    pub index_search_s: f64,
    /// Estimating d_c.
    pub dc_s: f64,
    /// Densities, ordering, δ from the lists.
    pub density_delta_s: f64,
    /// Exact search of the nearest denser point for points whose list had none.
    pub fallback_s: f64,
    /// Points that needed the exact fallback (the densest point excluded).
    pub fallback_points: usize,
    /// Centre selection and assignment.
    pub assign_s: f64,
    /// Core/halo split.
    pub halo_s: f64,
    /// Whole run.
    pub total_s: f64,
}

/// One cluster's summary, for callers that label clusters (large and compact = the product).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterSummary {
    /// Cluster id.
    pub id: u32,
    /// The centre point.
    pub centre: usize,
    /// Points in the cluster.
    pub size: usize,
    /// Points in its core (not halo).
    pub core: usize,
    /// The centre's density.
    pub centre_rho: f32,
    /// The centre's δ.
    pub centre_delta: f32,
    /// The centre's γ.
    pub centre_gamma: f32,
}

impl Clustering {
    /// Number of points.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True for an empty run (never produced: clustering refuses empty input).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of clusters.
    pub fn n_clusters(&self) -> usize {
        self.centres.len()
    }

    /// Per-cluster sizes and centre statistics, by cluster id.
    pub fn summaries(&self) -> Vec<ClusterSummary> {
        let mut size = vec![0usize; self.centres.len()];
        let mut core = vec![0usize; self.centres.len()];
        for (&l, &h) in self.labels.iter().zip(&self.halo) {
            size[l as usize] += 1;
            if !h {
                core[l as usize] += 1;
            }
        }
        self.centres
            .iter()
            .enumerate()
            .map(|(c, &p)| ClusterSummary {
                id: c as u32,
                centre: p,
                size: size[c],
                core: core[c],
                centre_rho: self.rho[p],
                centre_delta: self.delta[p],
                centre_gamma: self.gamma[p],
            })
            .collect()
    }

    /// Labels with halo points replaced by `None` (noise), for scoring against ground truth that
    /// marks noise.
    pub fn labels_with_noise(&self) -> Vec<Option<u32>> {
        self.labels.iter().zip(&self.halo).map(|(&l, &h)| (!h).then_some(l)).collect()
    }
}

/// Sorted k-nearest-neighbour lists: row `i` holds `k` (index, distance) pairs by increasing
/// distance (ties by index); rows of points with fewer than `k` others are padded with index
/// `u32::MAX`.
#[derive(Debug, Clone)]
pub struct Neighbours {
    pub(crate) k: usize,
    pub(crate) idx: Vec<u32>,
    pub(crate) dist: Vec<f32>,
}

pub(crate) const NONE: u32 = u32::MAX;

impl Neighbours {
    /// Neighbours per row.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.idx.len().checked_div(self.k).unwrap_or(0)
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `i`: neighbour indices and distances, nearest first.
    pub fn row(&self, i: usize) -> (&[u32], &[f32]) {
        (&self.idx[i * self.k..(i + 1) * self.k], &self.dist[i * self.k..(i + 1) * self.k])
    }

    /// Mean distance to the first `k` neighbours of `i`.
    pub(crate) fn mean_dist(&self, i: usize, k: usize) -> f64 {
        let (idx, dist) = self.row(i);
        let mut s = 0.0f64;
        let mut c = 0usize;
        for (&j, &d) in idx.iter().zip(dist).take(k) {
            if j != NONE {
                s += f64::from(d);
                c += 1;
            }
        }
        if c == 0 { 0.0 } else { s / c as f64 }
    }
}

/// The exact `k` nearest neighbours (excluding themselves) of the points `queries`, by brute
/// force: row `r` of the result belongs to `queries[r]`. For measuring the recall of [`Scaled`].
pub fn exact_knn(points: &Points, queries: &[usize], k: usize) -> Neighbours {
    let x = gemm::Rows::new(points);
    gemm::knn_of(&x, queries, k.min(points.len().saturating_sub(1)))
}

/// What a neighbour-list builder hands to [`finish`].
pub(crate) struct Graph {
    pub lists: Neighbours,
    /// Densities over all pairs (exact cutoff/Gaussian), or `None` to derive them from the lists.
    pub rho: Option<Vec<f32>>,
    pub dc: Option<f32>,
}

/// Runs `f` on a pool of `threads` workers, or on rayon's global pool.
pub(crate) fn with_threads<T: Send>(threads: Option<usize>, f: impl FnOnce() -> T + Send) -> Result<T, DpcError> {
    match threads {
        None => Ok(f()),
        Some(t) => {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(t.max(1))
                .build()
                .map_err(|e| DpcError::Threads(e.to_string()))?;
            Ok(pool.install(f))
        }
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// ρ from the lists, then order, δ (with the exact fallback), centres, assignment and halo.
pub(crate) fn finish(
    x: &gemm::Rows<'_>,
    params: &Params,
    k: usize,
    graph: Graph,
    stats: &mut Stats,
) -> Result<Clustering, DpcError> {
    let n = x.len();
    let t = Instant::now();
    let Graph { lists, rho, dc } = graph;
    // kNN density: also the tie-breaker of the cutoff count.
    let mean_k: Vec<f64> = (0..n).map(|i| lists.mean_dist(i, k)).collect();
    let scale = mean_k.iter().sum::<f64>() / n.max(1) as f64;
    let eps = (scale * 1e-6).max(f64::from(f32::MIN_POSITIVE));
    let knn_rho: Vec<f32> = mean_k.iter().map(|&m| (1.0 / (m + eps)) as f32).collect();
    let rho = match (params.kernel, rho) {
        (Kernel::Knn, _) => knn_rho.clone(),
        (_, Some(r)) => r,
        (Kernel::Cutoff, None) => {
            let dc = dc.unwrap_or(0.0);
            (0..n).map(|i| lists.row(i).1.iter().filter(|&&d| d < dc).count() as f32).collect()
        }
        (Kernel::Gaussian, None) => {
            let dc = dc.unwrap_or(1.0).max(f32::MIN_POSITIVE);
            (0..n)
                .map(|i| {
                    let (idx, dist) = lists.row(i);
                    idx.iter().zip(dist).filter(|(j, _)| **j != NONE).map(|(_, &d)| (-(d / dc).powi(2)).exp()).sum()
                })
                .collect()
        }
    };
    // Denser = higher ρ, then higher kNN density, then lower index: a strict total order, so
    // ties (equal counts, duplicates) never leave a point without a denser neighbour.
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.sort_unstable_by(|&a, &b| {
        let (a, b) = (a as usize, b as usize);
        rho[b].total_cmp(&rho[a]).then(knn_rho[b].total_cmp(&knn_rho[a])).then(a.cmp(&b))
    });
    let mut rank = vec![0u32; n];
    for (r, &i) in order.iter().enumerate() {
        rank[i as usize] = r as u32;
    }
    let mut delta = vec![0f32; n];
    let mut nearest: Vec<Option<u32>> = vec![None; n];
    let mut fallback = Vec::new();
    for i in 0..n {
        if rank[i] == 0 {
            continue;
        }
        let (idx, dist) = lists.row(i);
        match idx.iter().zip(dist).find(|(j, _)| **j != NONE && rank[**j as usize] < rank[i]) {
            Some((&j, &d)) => {
                delta[i] = d;
                nearest[i] = Some(j);
            }
            None => fallback.push(i),
        }
    }
    stats.density_delta_s = secs(t.elapsed());
    let t = Instant::now();
    stats.fallback_points = fallback.len();
    for (i, (j, d)) in fallback.iter().zip(gemm::nearest_denser(x, &order, &rank, &fallback)) {
        delta[*i] = d;
        nearest[*i] = Some(j);
    }
    let top = order[0] as usize;
    delta[top] = gemm::farthest(x, top);
    stats.fallback_s = secs(t.elapsed());

    let t = Instant::now();
    let rho_max = rho[top].max(f32::MIN_POSITIVE);
    let delta_max = delta[top].max(f32::MIN_POSITIVE);
    let gamma: Vec<f32> = rho.iter().zip(&delta).map(|(&r, &d)| (r / rho_max) * (d / delta_max)).collect();
    // The scale of the density: each point's distance to its k-th neighbour.
    let kth: Vec<f32> =
        (0..n).map(|i| lists.row(i).1.get(k.saturating_sub(1)).copied().unwrap_or(f32::INFINITY)).collect();
    let (mut centre_points, mut decision) = params.centres.select(&rho, &delta, &gamma, &order, &kth);
    let mut labels = vec![u32::MAX; n];
    for (c, &p) in centre_points.iter().enumerate() {
        labels[p] = c as u32;
    }
    for &i in &order {
        let i = i as usize;
        if labels[i] == u32::MAX {
            // The densest point is always a centre, so every other point has a denser neighbour
            // that was labelled before it.
            let j = nearest[i].map_or(0, |j| j as usize);
            labels[i] = labels[j];
        }
    }
    if let Some(ratio) = params.centres.merge() {
        centre_points = centres::merge_by_saddle(&centre_points, &mut labels, &rho, &lists, k, ratio);
        decision.merged = decision.candidates - centre_points.len();
    }
    decision.centre_z = centre_points.iter().map(|&c| decision.z(gamma[c])).collect();
    stats.assign_s = secs(t.elapsed());

    let t = Instant::now();
    let mut halo = vec![false; n];
    if params.halo && centre_points.len() > 1 {
        let border = border_densities(&lists, k, &labels, &rho, centre_points.len());
        for i in 0..n {
            halo[i] = rho[i] < border[labels[i] as usize];
        }
    }
    stats.halo_s = secs(t.elapsed());
    Ok(Clustering {
        rho,
        delta,
        nearest_denser: nearest,
        gamma,
        centres: centre_points,
        labels,
        halo,
        decision,
        dc,
        k,
        stats: stats.clone(),
    })
}

/// Each cluster's border density: the highest saddle min(ρ_i, ρ_j) over the pairs (i, j) of
/// different clusters where j is among i's `k` nearest neighbours (−∞ for a cluster that touches
/// no other).
///
/// The paper takes the average (ρ_i + ρ_j)/2 over pairs within d_c; with kNN neighbourhoods the
/// average lets one dense point on the far side lift the border into the cluster's core (on the
/// paper's own noisy sets, halo-as-noise ARI 0.64 with the average against 0.86 with the minimum;
/// docs/clustering.md). The minimum is the density at which the two clusters meet, the same
/// saddle the automatic rule merges across.
fn border_densities(lists: &Neighbours, k: usize, labels: &[u32], rho: &[f32], clusters: usize) -> Vec<f32> {
    let mut border = vec![f32::NEG_INFINITY; clusters];
    for (i, &li) in labels.iter().enumerate() {
        let (idx, _) = lists.row(i);
        for &j in idx.iter().take(k) {
            if j == NONE {
                break;
            }
            let lj = labels[j as usize];
            if li != lj {
                let s = rho[i].min(rho[j as usize]);
                border[li as usize] = border[li as usize].max(s);
                border[lj as usize] = border[lj as usize].max(s);
            }
        }
    }
    border
}

/// d_c such that a point has `percent` % of the others within it on average: that percentile of
/// the pairwise distances, over all pairs up to [`DC_SAMPLE`] points and over the pairs of a
/// random sample of that many points above.
pub(crate) fn estimate_dc(x: &gemm::Rows<'_>, percent: f64, seed: u64) -> f32 {
    let n = x.len();
    if n < 2 {
        return 1.0;
    }
    let sample: Vec<usize> = if n <= DC_SAMPLE { (0..n).collect() } else { sample_indices(n, DC_SAMPLE, seed) };
    let mut d = gemm::pairwise_distances(x, &sample);
    let q = ((percent / 100.0) * d.len() as f64).round() as usize;
    let q = q.clamp(1, d.len()) - 1;
    let (_, v, _) = d.select_nth_unstable_by(q, f32::total_cmp);
    let dc = *v;
    if dc > 0.0 {
        return dc;
    }
    // Many duplicates: the percentile is 0. Take the smallest positive distance so that d_c still
    // separates duplicates from the rest.
    d.iter().copied().filter(|&v| v > 0.0).fold(f32::INFINITY, f32::min).min(1.0)
}

/// Points sampled for d_c estimation (about 2.7 M pairs).
pub const DC_SAMPLE: usize = 2_300;

/// `m` distinct indices below `n`, deterministic for a seed (partial Fisher-Yates).
pub(crate) fn sample_indices(n: usize, m: usize, seed: u64) -> Vec<usize> {
    let mut rng = SplitMix64(seed);
    let m = m.min(n);
    let mut all: Vec<usize> = (0..n).collect();
    for i in 0..m {
        let j = i + (rng.next_u64() % (n - i) as u64) as usize;
        all.swap(i, j);
    }
    all.truncate(m);
    all.sort_unstable();
    all
}

/// A small, fast, seedable generator (SplitMix64) for the sampling steps and the synthetic data.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Shuffles `v` in place (Fisher-Yates, one draw per position from the end).
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

pub(crate) fn validate_input(points: &Points, params: &Params) -> Result<(), DpcError> {
    params.validate()?;
    if points.is_empty() {
        return Err(DpcError::Input("no points".into()));
    }
    if points.len() >= NONE as usize {
        return Err(DpcError::Input(format!("{} points exceed the 2^32 - 1 limit", points.len())));
    }
    Ok(())
}

#[cfg(test)]
mod tests;

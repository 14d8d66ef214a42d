//! Scaled density peaks: ρ and δ from approximate k-nearest-neighbour lists.
//!
//! The lists come from an inverted-file index (IVF, as in FAISS' `IndexIVFFlat`): k-means cells
//! trained on a sample, every point filed under its nearest cell, and every point's neighbours
//! searched in its `probe` nearest cells. The search is batched per cell, so distances are again
//! blocked matrix products (tens of GFLOP/s per core) instead of one graph walk per query; for the
//! all-points kNN problem that is several times faster than querying an HNSW graph. Points whose
//! list holds no denser point get the exact search over all denser points (the fallback shared
//! with [`super::Exact`]), so δ is exact whenever the true nearest denser point is in the list.

use std::ops::Range;
use std::time::Instant;

use rayon::prelude::*;

use super::exact::LIST_MIN;
use super::gemm::{self, COL_TILE, ROW_TILE, Rows, TopK};
use super::{
    Clustering, DensityPeaks, DpcError, Graph, Kernel, Params, Stats, estimate_dc, finish, sample_indices, with_threads,
};
use crate::points::Points;

/// Neighbour-list length as a multiple of the density's k.
const LIST_FACTOR: usize = 2;

/// Settings of the inverted-file index behind [`Scaled`].
#[derive(Debug, Clone, PartialEq)]
pub struct IndexParams {
    /// Number of k-means cells; `None` = [`default_cells`] (2√n).
    pub cells: Option<usize>,
    /// Cells searched per point (its nearest ones). More = better recall, linearly slower.
    pub probe: usize,
    /// Training sample per cell for k-means.
    pub train_per_cell: usize,
    /// k-means iterations.
    pub train_iters: usize,
}

impl Default for IndexParams {
    fn default() -> Self {
        Self { cells: None, probe: 8, train_per_cell: 16, train_iters: 6 }
    }
}

/// Density peaks from approximate kNN lists, for millions of points.
///
/// Densities use the kNN lists only: the kNN kernel is unchanged, the cutoff count and the
/// Gaussian sum are truncated at the list length (prefer the kNN kernel here).
#[derive(Debug, Clone, Default)]
pub struct Scaled {
    /// Clustering parameters.
    pub params: Params,
    /// Index settings.
    pub index: IndexParams,
}

impl Scaled {
    /// Scaled clustering with these parameters and the default index.
    pub fn new(params: Params) -> Self {
        Self { params, index: IndexParams::default() }
    }

    /// Replaces the index settings.
    pub fn with_index(mut self, index: IndexParams) -> Self {
        self.index = index;
        self
    }

    /// The approximate `k` nearest neighbours of every point (themselves excluded), as the
    /// clustering sees them.
    pub fn neighbours(&self, points: &Points, k: usize) -> Result<super::Neighbours, DpcError> {
        super::validate_input(points, &self.params)?;
        let x = Rows::new(points);
        let k = k.min(points.len() - 1);
        with_threads(self.params.threads, || knn_lists(&x, &self.index, k, self.params.seed, &mut Stats::default()))
    }
}

impl DensityPeaks for Scaled {
    fn name(&self) -> &'static str {
        "scaled"
    }

    fn cluster(&self, points: &Points) -> Result<Clustering, DpcError> {
        super::validate_input(points, &self.params)?;
        if self.index.probe == 0 || self.index.cells == Some(0) || self.index.train_per_cell == 0 {
            return Err(DpcError::Params("cells, probe and train_per_cell must be at least 1".into()));
        }
        with_threads(self.params.threads, || run(points, &self.params, &self.index))?
    }
}

fn run(points: &Points, params: &Params, index: &IndexParams) -> Result<Clustering, DpcError> {
    let start = Instant::now();
    let mut stats = Stats { method: "scaled", n: points.len(), dim: points.dim(), ..Stats::default() };
    let x = Rows::new(points);
    let n = x.len();
    let k = params.k_for(n);
    // Longer lists than k cost almost nothing here (the candidates are compared anyway) and
    // leave fewer points without a denser neighbour for the exact fallback.
    let k_list = (LIST_FACTOR * k).max(LIST_MIN).min(n - 1);
    let t = Instant::now();
    let dc = match params.kernel {
        Kernel::Knn => params.dc,
        _ => Some(params.dc.unwrap_or_else(|| estimate_dc(&x, params.percent, params.seed))),
    };
    stats.dc_s = t.elapsed().as_secs_f64();

    let lists = knn_lists(&x, index, k_list, params.seed, &mut stats);

    let mut clustering = finish(&x, params, k, Graph { lists, rho: None, dc }, &mut stats)?;
    clustering.stats.total_s = start.elapsed().as_secs_f64();
    Ok(clustering)
}

/// Approximate kNN lists of every point through the index, timing its phases into `stats`.
fn knn_lists(x: &Rows<'_>, index: &IndexParams, k: usize, seed: u64, stats: &mut Stats) -> super::Neighbours {
    let n = x.len();
    let t = Instant::now();
    let cells = index.cells.unwrap_or_else(|| default_cells(n)).clamp(1, n);
    let centroids = train(x, cells, index.train_per_cell, index.train_iters, seed);
    let cells = centroids.len() / x.dim();
    stats.index_train_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let probe = index.probe.min(cells);
    let nearest_cells = assign(x, &centroids, probe);
    let members = cell_members(&nearest_cells, probe, cells);
    stats.index_assign_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let lists = search(x, &members, &nearest_cells, probe, k);
    stats.index_search_s = t.elapsed().as_secs_f64();
    stats.neighbours_s = stats.index_train_s + stats.index_assign_s + stats.index_search_s;
    lists
}

/// Cells for `n` points: 2√n balances the assignment (n × cells distances) against the search
/// (n × probe × n/cells).
pub fn default_cells(n: usize) -> usize {
    (2.0 * (n as f64).sqrt()).round() as usize
}

/// Centroids of about `cells` k-means cells (row-major), trained on a sample with Lloyd
/// iterations, then balanced: a cell holding more than twice the average share of the sample is
/// split by a small k-means of its own members. Without that, points far from every cluster (in
/// high dimensions, noise is nearly orthogonal to everything) all fall into the few cells whose
/// centroids lie nearest the origin, and searching those giant cells costs quadratically.
fn train(x: &Rows<'_>, cells: usize, per_cell: usize, iters: usize, seed: u64) -> Vec<f32> {
    let n = x.len();
    let dim = x.dim();
    let sample = sample_indices(n, (cells * per_cell).min(n), seed ^ 0x1f);
    let (mut sd, mut sn) = (Vec::new(), Vec::new());
    x.gather(sample.iter().copied(), &mut sd, &mut sn);
    let m = sample.len();
    let mut rng = super::SplitMix64(seed ^ 0x3f);
    let init: Vec<usize> = sample_indices(m, cells, seed ^ 0x2f);
    let mut centroids = kmeans(&sd, &sn, dim, &init, iters, &mut rng);
    let owner = nearest_centroid(&sd, &sn, dim, &centroids);
    let k = centroids.len() / dim;
    let mut by_cell: Vec<Vec<usize>> = vec![Vec::new(); k];
    for (p, &c) in owner.iter().enumerate() {
        by_cell[c as usize].push(p);
    }
    let share = m as f64 / k as f64;
    for (c, own) in by_cell.iter().enumerate() {
        if (own.len() as f64) <= 2.0 * share || own.len() < 4 {
            continue;
        }
        let parts = ((own.len() as f64 / share).ceil() as usize).min(own.len());
        let (mut od, mut on) = (Vec::with_capacity(own.len() * dim), Vec::with_capacity(own.len()));
        for &p in own {
            od.extend_from_slice(&sd[p * dim..(p + 1) * dim]);
            on.push(sn[p]);
        }
        let init: Vec<usize> = (0..parts).map(|i| i * own.len() / parts).collect();
        let sub = kmeans(&od, &on, dim, &init, iters.min(4), &mut rng);
        centroids[c * dim..(c + 1) * dim].copy_from_slice(&sub[..dim]);
        centroids.extend_from_slice(&sub[dim..]);
    }
    centroids
}

/// Lloyd's k-means on rows `sd` (norms `sn`) from the rows `init`; empty cells restart at a random
/// row.
fn kmeans(sd: &[f32], sn: &[f32], dim: usize, init: &[usize], iters: usize, rng: &mut super::SplitMix64) -> Vec<f32> {
    let m = sn.len();
    let cells = init.len();
    let mut centroids: Vec<f32> = Vec::with_capacity(cells * dim);
    for &p in init {
        centroids.extend_from_slice(&sd[p * dim..(p + 1) * dim]);
    }
    for _ in 0..iters {
        let owner = nearest_centroid(sd, sn, dim, &centroids);
        let mut sums = vec![0f64; cells * dim];
        let mut counts = vec![0usize; cells];
        for (p, &c) in owner.iter().enumerate() {
            let c = c as usize;
            counts[c] += 1;
            for (s, &v) in sums[c * dim..(c + 1) * dim].iter_mut().zip(&sd[p * dim..(p + 1) * dim]) {
                *s += f64::from(v);
            }
        }
        for c in 0..cells {
            let dst = &mut centroids[c * dim..(c + 1) * dim];
            if counts[c] == 0 {
                let p = (rng.next_u64() % m as u64) as usize;
                dst.copy_from_slice(&sd[p * dim..(p + 1) * dim]);
            } else {
                for (d, s) in dst.iter_mut().zip(&sums[c * dim..(c + 1) * dim]) {
                    *d = (s / counts[c] as f64) as f32;
                }
            }
        }
    }
    centroids
}

/// The squared norm of each `dim`-long row of `rows`.
fn squared_norms(rows: &[f32], dim: usize) -> Vec<f32> {
    rows.chunks_exact(dim).map(|c| c.iter().map(|v| v * v).sum()).collect()
}

/// Rows `0..n` cut into [`ROW_TILE`]-long ranges, as a parallel iterator in row order.
fn row_tiles(n: usize) -> impl IndexedParallelIterator<Item = Range<usize>> {
    (0..n.div_ceil(ROW_TILE)).into_par_iter().map(move |b| b * ROW_TILE..((b + 1) * ROW_TILE).min(n))
}

/// The nearest centroid of each row.
fn nearest_centroid(sd: &[f32], sn: &[f32], dim: usize, centroids: &[f32]) -> Vec<u32> {
    let cells = centroids.len() / dim;
    let cn = squared_norms(centroids, dim);
    row_tiles(sn.len())
        .flat_map_iter(|rows| {
            let mut tile = Vec::new();
            gemm::tile_d2(&sd[rows.start * dim..rows.end * dim], &sn[rows], centroids, &cn, dim, &mut tile);
            tile.chunks_exact(cells)
                .map(|row| {
                    row.iter()
                        .enumerate()
                        .fold((0u32, f32::INFINITY), |b, (c, &d)| if d < b.1 { (c as u32, d) } else { b })
                        .0
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Each point's `probe` nearest cells, nearest first (row-major `n × probe`).
fn assign(x: &Rows<'_>, centroids: &[f32], probe: usize) -> Vec<u32> {
    let dim = x.dim();
    let cn = squared_norms(centroids, dim);
    row_tiles(x.len())
        .flat_map_iter(|rows| {
            let len = rows.len();
            let (mut qd, mut qn) = (Vec::new(), Vec::new());
            x.gather(rows, &mut qd, &mut qn);
            let mut tile = Vec::new();
            gemm::tile_d2(&qd, &qn, centroids, &cn, dim, &mut tile);
            let mut top = TopK::new(len, probe);
            for (r, row) in tile.chunks_exact(cn.len()).enumerate() {
                top.offer_row(r, row, |c| c as u32, super::NONE);
            }
            top.i
        })
        .collect()
}

/// The points of each of `cells` cells, in point order: those whose nearest cell it is, from
/// `assign`'s `n × probe` lists.
fn cell_members(nearest_cells: &[u32], probe: usize, cells: usize) -> Vec<Vec<u32>> {
    let mut members = vec![Vec::new(); cells];
    for (i, nearest) in nearest_cells.chunks_exact(probe).enumerate() {
        members[nearest[0] as usize].push(i as u32);
    }
    members
}

/// A probed cell is compared with all of a cell's members when at least 1/this of them want it.
const FULL_BLOCK_DIVISOR: usize = 2;

/// The points reordered so that each cell's members are contiguous (one copy of the data): the
/// candidate blocks of the search are then plain slices, with no per-query gathering.
struct CellMajor {
    data: Vec<f32>,
    norms: Vec<f32>,
    ids: Vec<u32>,
    offsets: Vec<usize>,
}

impl CellMajor {
    fn new(x: &Rows<'_>, members: &[Vec<u32>]) -> Self {
        let dim = x.dim();
        let mut offsets = Vec::with_capacity(members.len() + 1);
        offsets.push(0);
        for m in members {
            offsets.push(offsets.last().copied().unwrap_or(0) + m.len());
        }
        let ids: Vec<u32> = members.concat();
        let mut data = vec![0f32; ids.len() * dim];
        data.par_chunks_mut(dim).zip(ids.par_iter()).for_each(|(dst, &i)| dst.copy_from_slice(x.row(i as usize)));
        let norms = ids.iter().map(|&i| x.norms()[i as usize]).collect();
        Self { data, norms, ids, offsets }
    }

    fn cell(&self, c: usize, dim: usize) -> (usize, &[f32], &[f32]) {
        let (a, b) = (self.offsets[c], self.offsets[c + 1]);
        (a, &self.data[a * dim..b * dim], &self.norms[a..b])
    }
}

/// Approximate `k` nearest neighbours of every point: per cell, its members' candidates are the
/// members of each member's `probe` nearest cells, compared in blocked products. A probed cell
/// wanted by at least half of the members is compared with all of them (one large, efficient
/// product; the others get extra candidates for free), else with the members that want it.
fn search(x: &Rows<'_>, members: &[Vec<u32>], nearest_cells: &[u32], probe: usize, k: usize) -> super::Neighbours {
    let n = x.len();
    let dim = x.dim();
    let cm = CellMajor::new(x, members);
    let mut by_size: Vec<usize> = (0..members.len()).filter(|&c| !members[c].is_empty()).collect();
    by_size.sort_unstable_by_key(|&c| std::cmp::Reverse(members[c].len()));
    let found: Vec<(usize, TopK)> = by_size
        .par_iter()
        .map(|&c| {
            let (q0, qd_all, qn_all) = cm.cell(c, dim);
            let q_ids = &cm.ids[q0..q0 + qn_all.len()];
            let nq = q_ids.len();
            // (probed cell, query position), grouped by probed cell.
            let mut wants: Vec<(u32, u32)> = Vec::with_capacity(nq * probe);
            for (qp, &qi) in q_ids.iter().enumerate() {
                for &c2 in &nearest_cells[qi as usize * probe..(qi as usize + 1) * probe] {
                    if c2 != super::NONE {
                        wants.push((c2, qp as u32));
                    }
                }
            }
            wants.sort_unstable();
            let mut top = TopK::new(nq, k);
            let (mut qd, mut qn, mut tile) = (Vec::new(), Vec::new(), Vec::new());
            for group in wants.chunk_by(|a, b| a.0 == b.0) {
                let (p0, pd, pn) = cm.cell(group[0].0 as usize, dim);
                let p_ids = &cm.ids[p0..p0 + pn.len()];
                if group.len() * FULL_BLOCK_DIVISOR >= nq {
                    for r0 in (0..nq).step_by(2 * ROW_TILE) {
                        let r1 = (r0 + 2 * ROW_TILE).min(nq);
                        offer_block(
                            (&qd_all[r0 * dim..r1 * dim], &qn_all[r0..r1]),
                            |r| r0 + r,
                            (pd, pn, p_ids),
                            q_ids,
                            dim,
                            &mut tile,
                            &mut top,
                        );
                    }
                } else {
                    for qs in group.chunks(2 * ROW_TILE) {
                        qd.clear();
                        qn.clear();
                        for &(_, qp) in qs {
                            let qp = qp as usize;
                            qd.extend_from_slice(&qd_all[qp * dim..(qp + 1) * dim]);
                            qn.push(qn_all[qp]);
                        }
                        offer_block((&qd, &qn), |r| qs[r].1 as usize, (pd, pn, p_ids), q_ids, dim, &mut tile, &mut top);
                    }
                }
            }
            (c, top)
        })
        .collect();
    let mut all = TopK::new(n, k);
    for (c, top) in found {
        for (qp, &qi) in members[c].iter().enumerate() {
            let (s, d) = (qi as usize * k, qp * k);
            all.d[s..s + k].copy_from_slice(&top.d[d..d + k]);
            all.i[s..s + k].copy_from_slice(&top.i[d..d + k]);
        }
    }
    drop(cm);
    let rows: Vec<u32> = (0..n as u32).collect();
    // GEMM distances are precise enough for densities; refining would cost one random read
    // of every neighbour (n·k rows).
    gemm::finalize(x, &rows, all, false)
}

/// Offers a block of candidates `(rows, norms, ids)` to the query rows `a` (row r of `a` is query
/// position `pos(r)` of `top`, whose own id in `q_ids` is skipped), in column tiles.
fn offer_block(
    a: (&[f32], &[f32]),
    pos: impl Fn(usize) -> usize,
    p: (&[f32], &[f32], &[u32]),
    q_ids: &[u32],
    dim: usize,
    tile: &mut Vec<f32>,
    top: &mut TopK,
) {
    let (pd, pn, p_ids) = p;
    for c0 in (0..pn.len()).step_by(2 * COL_TILE) {
        let c1 = (c0 + 2 * COL_TILE).min(pn.len());
        gemm::tile_d2(a.0, a.1, &pd[c0 * dim..c1 * dim], &pn[c0..c1], dim, tile);
        let cols = &p_ids[c0..c1];
        for (r, row) in tile.chunks_exact(c1 - c0).enumerate() {
            let qp = pos(r);
            top.offer_row(qp, row, |c| cols[c], q_ids[qp]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dpc::SplitMix64;

    fn blobs(n: usize, dim: usize, centres: usize, seed: u64) -> Points {
        let mut rng = SplitMix64(seed);
        let cs: Vec<Vec<f32>> = (0..centres).map(|_| (0..dim).map(|_| (rng.normal() * 4.0) as f32).collect()).collect();
        let mut data = Vec::new();
        for i in 0..n {
            let c = &cs[i % centres];
            data.extend(c.iter().map(|v| v + rng.normal() as f32));
        }
        Points::new(data, dim).unwrap()
    }

    /// The exact `k` nearest neighbours of `p` and those the index finds with `cells` cells
    /// (trained with `iters` rounds), probing `probe` of them (all when `None`).
    fn exact_and_ivf(
        p: &Points,
        k: usize,
        cells: usize,
        iters: usize,
        probe: Option<usize>,
    ) -> (crate::dpc::Neighbours, crate::dpc::Neighbours) {
        let x = Rows::new(p);
        let (exact, _) = gemm::all_pairs(&x, k, Kernel::Knn, None);
        let centroids = train(&x, cells, 32, iters, 1);
        let cells = centroids.len() / x.dim();
        let probe = probe.unwrap_or(cells);
        let nearest = assign(&x, &centroids, probe);
        let members = cell_members(&nearest, probe, cells);
        (exact, search(&x, &members, &nearest, probe, k))
    }

    #[test]
    fn ivf_search_finds_most_true_neighbours() {
        let (exact, approx) = exact_and_ivf(&blobs(3000, 16, 6, 7), 10, 55, 8, Some(8));
        let mut hit = 0;
        for i in 0..3000 {
            let truth = exact.row(i).0;
            hit += approx.row(i).0.iter().filter(|j| truth.contains(j)).count();
        }
        let recall = hit as f64 / 30_000.0;
        assert!(recall > 0.95, "recall@10 {recall}");
    }

    #[test]
    fn probing_every_cell_is_exact() {
        let (exact, approx) = exact_and_ivf(&blobs(400, 8, 4, 3), 12, 5, 4, None);
        assert_eq!(exact.idx, approx.idx);
    }
}

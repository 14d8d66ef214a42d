//! Blocked all-pairs distance kernels: squared distances of a tile of rows against a tile of
//! columns come from one matrix product, ‖a‖² + ‖b‖² − 2·a·bᵀ (`ndarray`'s `general_mat_mul`,
//! which runs `matrixmultiply`'s sgemm), so no `n × n` matrix is ever held. Row tiles run in
//! parallel on rayon's pool; each sgemm call is single-threaded.

use std::borrow::Cow;

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

use super::{Kernel, NONE, Neighbours};
use crate::points::Points;

/// Rows per tile of the all-pairs sweeps.
pub(crate) const ROW_TILE: usize = 128;
/// Columns per tile (128 × 1024 squared distances = 512 KiB, cache-resident).
pub(crate) const COL_TILE: usize = 1024;
/// Largest point set (values) copied to subtract the mean before the sweeps.
const CENTRE_MAX_VALUES: usize = 1 << 25;

/// The point matrix with its squared row norms, mean-centred when small enough to copy (the
/// ‖a‖² + ‖b‖² − 2ab form loses precision when the points sit far from the origin).
pub(crate) struct Rows<'a> {
    data: Cow<'a, [f32]>,
    dim: usize,
    norms: Vec<f32>,
}

impl<'a> Rows<'a> {
    pub fn new(points: &'a Points) -> Self {
        let dim = points.dim();
        let n = points.len();
        let data: Cow<'a, [f32]> = if points.as_slice().len() <= CENTRE_MAX_VALUES && n > 0 {
            let mut mean = vec![0f64; dim];
            for i in 0..n {
                for (m, &v) in mean.iter_mut().zip(points.row(i)) {
                    *m += f64::from(v);
                }
            }
            let mean: Vec<f32> = mean.iter().map(|m| (m / n as f64) as f32).collect();
            let mut data = points.as_slice().to_vec();
            for row in data.chunks_exact_mut(dim) {
                for (v, m) in row.iter_mut().zip(&mean) {
                    *v -= m;
                }
            }
            Cow::Owned(data)
        } else {
            Cow::Borrowed(points.as_slice())
        };
        let norms = data.par_chunks_exact(dim).map(|r| r.iter().map(|v| v * v).sum()).collect();
        Self { data, dim, norms }
    }

    pub fn len(&self) -> usize {
        self.norms.len()
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    fn block(&self, r0: usize, r1: usize) -> (&[f32], &[f32]) {
        (&self.data[r0 * self.dim..r1 * self.dim], &self.norms[r0..r1])
    }

    /// Copies rows `idx` (in that order) into `out` and their norms into `norms`.
    pub fn gather(&self, idx: impl IntoIterator<Item = usize>, out: &mut Vec<f32>, norms: &mut Vec<f32>) {
        out.clear();
        norms.clear();
        for i in idx {
            out.extend_from_slice(self.row(i));
            norms.push(self.norms[i]);
        }
    }

    /// The distance of two points computed directly (no cancellation).
    pub fn distance(&self, i: usize, j: usize) -> f32 {
        distance(self.row(i), self.row(j))
    }

    pub fn norms(&self) -> &[f32] {
        &self.norms
    }
}

/// Euclidean distance, summed in 16 independent lanes so that it vectorises.
pub(crate) fn distance(a: &[f32], b: &[f32]) -> f32 {
    const L: usize = 16;
    let mut acc = [0f32; L];
    let (ca, cb) = (a.chunks_exact(L), b.chunks_exact(L));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..L {
            let d = x[l] - y[l];
            acc[l] += d * d;
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += (x - y) * (x - y);
    }
    s.sqrt()
}

/// Squared distances of rows `a` (`an.len()` of them) against rows `b` into `out`, row-major
/// `an.len() × bn.len()`, clamped at 0.
pub(crate) fn tile_d2(a: &[f32], an: &[f32], b: &[f32], bn: &[f32], dim: usize, out: &mut Vec<f32>) {
    let (ra, rb) = (an.len(), bn.len());
    out.resize(ra * rb, 0.0);
    if ra == 0 || rb == 0 {
        return;
    }
    let av = ArrayView2::from_shape((ra, dim), a).expect("tile rows match their norms");
    let bv = ArrayView2::from_shape((rb, dim), b).expect("tile columns match their norms");
    let mut cv = ArrayViewMut2::from_shape((ra, rb), &mut out[..]).expect("tile buffer sized above");
    general_mat_mul(-2.0, &av, &bv.t(), 0.0, &mut cv);
    for (row, &na) in out.chunks_exact_mut(rb).zip(an) {
        for (v, &nb) in row.iter_mut().zip(bn) {
            *v = (*v + na + nb).max(0.0);
        }
    }
}

/// The `k` smallest (squared distance, index) pairs of each of a block's rows, sorted.
pub(crate) struct TopK {
    pub k: usize,
    pub d: Vec<f32>,
    pub i: Vec<u32>,
}

impl TopK {
    pub fn new(rows: usize, k: usize) -> Self {
        Self { k, d: vec![f32::INFINITY; rows * k], i: vec![NONE; rows * k] }
    }

    /// The largest kept value of row `r` (a candidate must beat it).
    #[inline]
    pub fn worst(&self, r: usize) -> f32 {
        if self.k == 0 { f32::NEG_INFINITY } else { self.d[r * self.k + self.k - 1] }
    }

    /// Inserts a candidate that beats [`TopK::worst`]; equal values keep the earlier one first.
    #[inline]
    pub fn insert(&mut self, r: usize, d: f32, j: u32) {
        let s = r * self.k;
        let ds = &mut self.d[s..s + self.k];
        let is = &mut self.i[s..s + self.k];
        let mut p = self.k - 1;
        while p > 0 && ds[p - 1] > d {
            ds[p] = ds[p - 1];
            is[p] = is[p - 1];
            p -= 1;
        }
        ds[p] = d;
        is[p] = j;
    }

    /// Offers every value of a squared-distance row whose columns are `cols(c)`, skipping `skip`.
    #[inline]
    pub fn offer_row(&mut self, r: usize, row: &[f32], cols: impl Fn(usize) -> u32, skip: u32) {
        let mut worst = self.worst(r);
        for (c, &d2) in row.iter().enumerate() {
            if d2 < worst {
                let j = cols(c);
                if j != skip {
                    self.insert(r, d2, j);
                    worst = self.worst(r);
                }
            }
        }
    }
}

/// Turns squared GEMM distances into distances: recomputed directly and re-sorted by (distance,
/// index) when `exact` (no cancellation error; one random read of each neighbour), else their
/// square roots.
pub(crate) fn finalize(x: &Rows<'_>, rows: &[u32], topk: TopK, exact: bool) -> Neighbours {
    let k = topk.k;
    let TopK { mut d, mut i, .. } = topk;
    if !exact {
        d.par_iter_mut().for_each(|v| *v = v.sqrt());
        return Neighbours { k, idx: i, dist: d };
    }
    if k > 0 {
        d.par_chunks_mut(k).zip(i.par_chunks_mut(k)).zip(rows.par_iter()).for_each(|((ds, is), &q)| {
            let mut pairs: Vec<(f32, u32)> = is
                .iter()
                .map(|&j| if j == NONE { (f32::INFINITY, NONE) } else { (x.distance(q as usize, j as usize), j) })
                .collect();
            pairs.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for ((dd, ii), (pd, pi)) in ds.iter_mut().zip(is.iter_mut()).zip(pairs) {
                *dd = pd;
                *ii = pi;
            }
        });
    }
    Neighbours { k, idx: i, dist: d }
}

/// The exact all-pairs pass: each point's `k_list` nearest neighbours, and (cutoff and Gaussian
/// kernels) its density over all other points.
pub(crate) fn all_pairs(
    x: &Rows<'_>,
    k_list: usize,
    kernel: Kernel,
    dc: Option<f32>,
) -> (Neighbours, Option<Vec<f32>>) {
    let n = x.len();
    let dim = x.dim();
    let dc2 = dc.map(|d| d * d);
    let want_rho = matches!(kernel, Kernel::Cutoff | Kernel::Gaussian) && dc2.is_some();
    let blocks: Vec<(TopK, Vec<f64>)> = (0..n.div_ceil(ROW_TILE))
        .into_par_iter()
        .map(|b| {
            let r0 = b * ROW_TILE;
            let r1 = (r0 + ROW_TILE).min(n);
            let (a, an) = x.block(r0, r1);
            let mut topk = TopK::new(r1 - r0, k_list);
            let mut acc = vec![0f64; r1 - r0];
            let mut tile = Vec::new();
            for c0 in (0..n).step_by(COL_TILE) {
                let c1 = (c0 + COL_TILE).min(n);
                let (bm, bn) = x.block(c0, c1);
                tile_d2(a, an, bm, bn, dim, &mut tile);
                let w = c1 - c0;
                for (r, row) in tile.chunks_exact_mut(w).enumerate() {
                    let gi = r0 + r;
                    if (c0..c1).contains(&gi) {
                        row[gi - c0] = f32::INFINITY;
                    }
                    topk.offer_row(r, row, |c| (c0 + c) as u32, NONE);
                    if want_rho {
                        let dc2 = dc2.unwrap_or(1.0);
                        acc[r] += match kernel {
                            Kernel::Cutoff => row.iter().filter(|&&d2| d2 < dc2).count() as f64,
                            _ => {
                                // exp(−30) is below f32 resolution of any sum that includes the
                                // point's nearer neighbours: skipping those terms changes nothing.
                                let far = 30.0 * dc2;
                                row.iter().filter(|&&d2| d2 < far).map(|&d2| f64::from((-d2 / dc2).exp())).sum()
                            }
                        };
                    }
                }
            }
            (topk, acc)
        })
        .collect();
    let mut all = TopK::new(0, k_list);
    let mut rho = Vec::with_capacity(if want_rho { n } else { 0 });
    for (t, acc) in blocks {
        all.d.extend_from_slice(&t.d);
        all.i.extend_from_slice(&t.i);
        rho.extend(acc.iter().map(|&v| v as f32));
    }
    let rows: Vec<u32> = (0..n as u32).collect();
    (finalize(x, &rows, all, true), want_rho.then_some(rho))
}

/// The exact `k` nearest neighbours of the points `queries` (themselves excluded).
pub(crate) fn knn_of(x: &Rows<'_>, queries: &[usize], k: usize) -> Neighbours {
    let n = x.len();
    let dim = x.dim();
    let blocks: Vec<TopK> = queries
        .par_chunks(ROW_TILE)
        .map(|qs| {
            let (mut qd, mut qn) = (Vec::new(), Vec::new());
            x.gather(qs.iter().copied(), &mut qd, &mut qn);
            let mut top = TopK::new(qs.len(), k);
            let mut tile = Vec::new();
            for c0 in (0..n).step_by(COL_TILE) {
                let c1 = (c0 + COL_TILE).min(n);
                let (bm, bn) = x.block(c0, c1);
                tile_d2(&qd, &qn, bm, bn, dim, &mut tile);
                for (r, row) in tile.chunks_exact(c1 - c0).enumerate() {
                    top.offer_row(r, row, |c| (c0 + c) as u32, qs[r] as u32);
                }
            }
            top
        })
        .collect();
    let mut all = TopK::new(0, k);
    for t in blocks {
        all.d.extend_from_slice(&t.d);
        all.i.extend_from_slice(&t.i);
    }
    let rows: Vec<u32> = queries.iter().map(|&q| q as u32).collect();
    finalize(x, &rows, all, true)
}

/// For each of `rows` (points whose neighbour list held no denser point), the nearest point of
/// lower rank (denser), searched exactly over the denser points only: columns are visited in rank
/// order, so a point of rank r reads only the r points above it.
pub(crate) fn nearest_denser(x: &Rows<'_>, order: &[u32], rank: &[u32], rows: &[usize]) -> Vec<(u32, f32)> {
    if rows.is_empty() {
        return Vec::new();
    }
    let dim = x.dim();
    // Sorted by rank: the rows that still need a column tile are a suffix.
    let mut by_rank: Vec<usize> = (0..rows.len()).collect();
    by_rank.sort_unstable_by_key(|&p| rank[rows[p]]);
    let q_rank: Vec<u32> = by_rank.iter().map(|&p| rank[rows[p]]).collect();
    let (mut qd, mut qn) = (Vec::new(), Vec::new());
    x.gather(by_rank.iter().map(|&p| rows[p]), &mut qd, &mut qn);
    let max_rank = q_rank.last().copied().unwrap_or(0) as usize;
    let mut best: Vec<(f32, u32)> = vec![(f32::INFINITY, NONE); rows.len()];
    const Q_TILE: usize = 64;
    let col_tile = 4 * COL_TILE;
    let (mut cd, mut cn) = (Vec::new(), Vec::new());
    for s in (0..max_rank).step_by(col_tile) {
        let e = (s + col_tile).min(max_rank);
        x.gather(order[s..e].iter().map(|&i| i as usize), &mut cd, &mut cn);
        let first = q_rank.partition_point(|&r| (r as usize) <= s);
        let cols = &order[s..e];
        best[first..].par_chunks_mut(Q_TILE).enumerate().for_each(|(t, out)| {
            let q0 = first + t * Q_TILE;
            let q1 = q0 + out.len();
            let mut tile = Vec::new();
            tile_d2(&qd[q0 * dim..q1 * dim], &qn[q0..q1], &cd, &cn, dim, &mut tile);
            for (r, row) in tile.chunks_exact(e - s).enumerate() {
                let limit = (q_rank[q0 + r] as usize - s).min(e - s);
                let b = &mut out[r];
                for (c, &d2) in row[..limit].iter().enumerate() {
                    if d2 < b.0 {
                        *b = (d2, cols[c]);
                    }
                }
            }
        });
    }
    let mut result = vec![(NONE, 0f32); rows.len()];
    for (pos, &p) in by_rank.iter().enumerate() {
        let (_, j) = best[pos];
        result[p] = (j, if j == NONE { 0.0 } else { x.distance(rows[p], j as usize) });
    }
    result
}

/// The largest distance from point `i` to any point.
pub(crate) fn farthest(x: &Rows<'_>, i: usize) -> f32 {
    (0..x.len()).into_par_iter().map(|j| x.distance(i, j)).reduce(|| 0.0, f32::max)
}

/// All pairwise distances among the points `sample` (upper triangle, row by row).
pub(crate) fn pairwise_distances(x: &Rows<'_>, sample: &[usize]) -> Vec<f32> {
    let dim = x.dim();
    let (mut sd, mut sn) = (Vec::new(), Vec::new());
    x.gather(sample.iter().copied(), &mut sd, &mut sn);
    let m = sample.len();
    let blocks: Vec<Vec<f32>> = (0..m.div_ceil(ROW_TILE))
        .into_par_iter()
        .map(|b| {
            let r0 = b * ROW_TILE;
            let r1 = (r0 + ROW_TILE).min(m);
            let mut tile = Vec::new();
            tile_d2(&sd[r0 * dim..r1 * dim], &sn[r0..r1], &sd, &sn, dim, &mut tile);
            let mut out = Vec::new();
            for (r, row) in tile.chunks_exact(m).enumerate() {
                out.extend(row[r0 + r + 1..].iter().map(|d2| d2.sqrt()));
            }
            out
        })
        .collect();
    blocks.concat()
}

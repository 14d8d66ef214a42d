//! Choosing the centres on the decision graph, and the saddle merge of the automatic rule.

use serde::Serialize;

use super::{DpcError, NONE, Neighbours};

/// Default `z_min` of [`CentreRule::Auto`].
pub const AUTO_Z_MIN: f64 = 3.0;
/// Default `merge` of [`CentreRule::Auto`].
pub const AUTO_MERGE: f32 = 0.8;
/// [`CentreRule::Auto`] cuts the candidates at the lowest gap in z at least this fraction of the
/// widest (1 would be the widest gap itself, the rule before issue 16). Chosen by measurement
/// (docs/clustering.md): 0.6 splits the jain benchmark, 0.8 loses small clusters below a wide
/// gap among the large ones.
pub const AUTO_GAP: f64 = 0.7;

/// How cluster centres are picked from the decision graph. The densest point is always a centre.
#[derive(Debug, Clone, PartialEq)]
pub enum CentreRule {
    /// Automatic, no number of clusters given.
    ///
    /// 1. Candidates: the local maxima of the density at the scale it is measured, the points
    ///    with no denser point among their k nearest neighbours (δ greater than the distance to
    ///    the k-th neighbour). Any other point has a denser point inside its own neighbourhood, so
    ///    its density estimate cannot tell it from a slope; an isolated outlier (large δ, low ρ)
    ///    has denser neighbours and is excluded too.
    /// 2. Outliers of γ: with z = (ln γ − median ln γ) / (1.4826 · MAD of ln γ), a robust z-score
    ///    against the bulk of the decision graph (all points), the candidates are sorted by z; among
    ///    those with z ≥ `z_min` the gaps between consecutive values are measured, and the cut is
    ///    the lowest gap at least [`AUTO_GAP`] of the widest: everything above it is a centre
    ///    (none reaches `z_min`: one cluster). The widest gap alone fails when the centres' z are
    ///    spread (clusters at very different distances, or of different sizes): a gap among the
    ///    top centres then outweighs the one between the last centre and the bumps.
    /// 3. Saddle merge (when `merge` is set): two clusters touch where a point of one has a point
    ///    of the other among its k nearest neighbours; the saddle between them is the highest
    ///    min(ρ_i, ρ_j) over such pairs. A cluster's peak height is the mean ρ of its centre and
    ///    the centre's k nearest neighbours. Going from the highest saddle down, a cluster whose
    ///    peak is below saddle / `merge` joins its neighbour (the peak does not stand out from the
    ///    ridge that connects it to denser ground: a bump, not a cluster).
    Auto {
        /// Smallest robust z a centre may have (the gap is searched above it).
        z_min: f64,
        /// Saddle-to-peak density ratio at or above which a candidate is merged; `None` keeps
        /// every candidate.
        merge: Option<f32>,
    },
    /// The automatic rule before issue 16, kept for comparison (`dpc_sweep`, docs/clustering.md):
    /// as [`CentreRule::Auto`], but the candidates are the points at least as dense as the median
    /// point instead of the local maxima, and the cut is the widest gap. The floor drops the
    /// centres of small clusters, whose kNN density is below the median of a collection dominated
    /// by larger ones; the widest gap can fall among the top centres when their z are spread.
    AutoMedianFloor {
        /// As in [`CentreRule::Auto`].
        z_min: f64,
        /// As in [`CentreRule::Auto`].
        merge: Option<f32>,
    },
    /// The `k` points of largest γ (no merge).
    Count(usize),
    /// The paper's manual selection: every point with ρ > `rho` and δ > `delta` (no merge).
    Thresholds {
        /// Minimum density.
        rho: f32,
        /// Minimum δ.
        delta: f32,
    },
}

impl Default for CentreRule {
    fn default() -> Self {
        CentreRule::Auto { z_min: AUTO_Z_MIN, merge: Some(AUTO_MERGE) }
    }
}

/// How the centres were chosen, for the decision-graph output.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Decision {
    /// `auto`, `count` or `thresholds`.
    pub rule: &'static str,
    /// Centres picked on the decision graph (before the merge).
    pub candidates: usize,
    /// Candidates merged into a neighbour by the saddle rule.
    pub merged: usize,
    /// The γ line the candidates lie above (automatic rule: the middle of the chosen gap; other
    /// rules: the smallest centre γ).
    pub gamma_threshold: f32,
    /// Median of ln γ (automatic rule).
    pub median_ln_gamma: f64,
    /// Robust standard deviation of ln γ (automatic rule).
    pub sigma_ln_gamma: f64,
    /// z of each final centre (automatic rule), by cluster id.
    pub centre_z: Vec<f64>,
}

impl Decision {
    /// A point's robust z on the decision graph (automatic rule; 0 otherwise).
    pub fn z(&self, gamma: f32) -> f64 {
        if self.sigma_ln_gamma > 0.0 && gamma > 0.0 {
            (f64::from(gamma).ln() - self.median_ln_gamma) / self.sigma_ln_gamma
        } else {
            0.0
        }
    }
}

impl CentreRule {
    /// The saddle-merge ratio of the automatic rules.
    pub(crate) fn merge(&self) -> Option<f32> {
        match *self {
            CentreRule::Auto { merge, .. } | CentreRule::AutoMedianFloor { merge, .. } => merge,
            _ => None,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), DpcError> {
        match *self {
            CentreRule::Auto { z_min, merge } | CentreRule::AutoMedianFloor { z_min, merge } => {
                if !z_min.is_finite() {
                    return Err(DpcError::Params(format!("z_min must be finite, got {z_min}")));
                }
                if let Some(m) = merge
                    && !(m > 0.0 && m <= 1.0)
                {
                    return Err(DpcError::Params(format!("merge ratio must be in (0, 1], got {m}")));
                }
                Ok(())
            }
            CentreRule::Count(0) => Err(DpcError::Params("need at least one centre".into())),
            CentreRule::Thresholds { rho, delta } if !(rho.is_finite() && delta.is_finite()) => {
                Err(DpcError::Params("thresholds must be finite".into()))
            }
            _ => Ok(()),
        }
    }

    /// Candidate centres (the densest point `order[0]` always among them), and how they were
    /// chosen. `order` lists the points by decreasing density; `kth` is each point's distance to
    /// its k-th nearest neighbour (the scale of the density).
    pub(crate) fn select(
        &self,
        rho: &[f32],
        delta: &[f32],
        gamma: &[f32],
        order: &[u32],
        kth: &[f32],
    ) -> (Vec<usize>, Decision) {
        let n = gamma.len();
        let top = order[0] as usize;
        let mut decision = Decision::default();
        let mut centres: Vec<usize> = match *self {
            CentreRule::Count(k) => {
                decision.rule = "count";
                let mut by_gamma: Vec<usize> = (0..n).collect();
                by_gamma.sort_by(|&a, &b| gamma[b].total_cmp(&gamma[a]).then(a.cmp(&b)));
                by_gamma.truncate(k.min(n));
                by_gamma
            }
            CentreRule::Thresholds { rho: r, delta: d } => {
                decision.rule = "thresholds";
                (0..n).filter(|&i| rho[i] > r && delta[i] > d).collect()
            }
            CentreRule::Auto { z_min, .. } => {
                decision.rule = "auto";
                auto_candidates(gamma, |i| delta[i] > kth[i], top, z_min, AUTO_GAP, &mut decision)
            }
            CentreRule::AutoMedianFloor { z_min, .. } => {
                decision.rule = "auto-median-floor";
                let rho64: Vec<f64> = rho.iter().map(|&v| f64::from(v)).collect();
                let floor = median(&rho64) as f32;
                auto_candidates(gamma, |i| rho[i] >= floor, top, z_min, 1.0, &mut decision)
            }
        };
        if !centres.contains(&top) {
            centres.push(top);
        }
        sort_centres(&mut centres, gamma, top);
        decision.candidates = centres.len();
        if !matches!(self, CentreRule::Auto { .. } | CentreRule::AutoMedianFloor { .. }) {
            decision.gamma_threshold = centres.iter().map(|&c| gamma[c]).fold(f32::INFINITY, f32::min);
        }
        (centres, decision)
    }
}

/// Centres by decreasing γ, the densest point first among equals.
pub(crate) fn sort_centres(centres: &mut Vec<usize>, gamma: &[f32], top: usize) {
    centres.sort_by(|&a, &b| gamma[b].total_cmp(&gamma[a]).then((a != top).cmp(&(b != top))).then(a.cmp(&b)));
    centres.dedup();
}

fn auto_candidates(
    gamma: &[f32],
    eligible: impl Fn(usize) -> bool,
    top: usize,
    z_min: f64,
    gap_share: f64,
    decision: &mut Decision,
) -> Vec<usize> {
    // The densest point's δ is its largest distance by convention: it says nothing about the
    // bulk, so it stays out of the statistics and the gap search.
    let others: Vec<(usize, f64)> =
        gamma.iter().enumerate().filter(|&(i, &g)| i != top && g > 0.0).map(|(i, &g)| (i, f64::from(g).ln())).collect();
    if others.len() < 3 {
        // No bulk to stand out from.
        decision.gamma_threshold = gamma[top];
        return Vec::new();
    }
    let ln: Vec<f64> = others.iter().map(|&(_, v)| v).collect();
    let med = median(&ln);
    let dev: Vec<f64> = ln.iter().map(|v| (v - med).abs()).collect();
    // A bulk of identical γ (MAD 0) makes every difference infinitely significant; a floor
    // keeps z finite, and exact ties stay at z = 0.
    let sigma = (1.4826 * median(&dev)).max(1e-6);
    decision.median_ln_gamma = med;
    decision.sigma_ln_gamma = sigma;
    let mut z: Vec<(f64, usize)> =
        others.iter().filter(|&&(i, _)| eligible(i)).map(|&(i, v)| ((v - med) / sigma, i)).collect();
    if z.is_empty() {
        decision.gamma_threshold = gamma[top];
        return Vec::new();
    }
    z.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    // Gaps between consecutive z among those at or above z_min (the last one down to the next
    // candidate, or to −∞).
    let gaps: Vec<f64> = z
        .iter()
        .enumerate()
        .take_while(|(_, v)| v.0 >= z_min)
        .map(|(p, v)| v.0 - z.get(p + 1).map_or(f64::NEG_INFINITY, |w| w.0))
        .collect();
    let widest = gaps.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    // The lowest gap at least `gap_share` of the widest; with share 1, the widest (the first
    // of equal ones).
    let cut = if gap_share >= 1.0 {
        gaps.iter().position(|&g| g == widest).map_or(0, |p| p + 1)
    } else {
        gaps.iter().rposition(|&g| g >= gap_share * widest).map_or(0, |p| p + 1)
    };
    let threshold_z = match cut {
        0 => z[0].0.max(z_min),
        c => match z.get(c) {
            Some(below) => (z[c - 1].0 + below.0) / 2.0,
            None => z[c - 1].0,
        },
    };
    decision.gamma_threshold = (med + threshold_z * sigma).exp() as f32;
    z.iter().take(cut).map(|&(_, i)| i).collect()
}

/// Merges clusters across high saddles (see [`CentreRule::Auto`]). `labels` index `centres`;
/// returns the surviving centres (in the given order) and relabels the points.
pub(crate) fn merge_by_saddle(
    centres: &[usize],
    labels: &mut [u32],
    rho: &[f32],
    lists: &Neighbours,
    k: usize,
    ratio: f32,
) -> Vec<usize> {
    let c = centres.len();
    if c < 2 {
        return centres.to_vec();
    }
    let mut saddles: std::collections::HashMap<(u32, u32), f32> = std::collections::HashMap::new();
    for i in 0..labels.len() {
        let (idx, _) = lists.row(i);
        for &j in idx.iter().take(k) {
            if j == NONE {
                break;
            }
            let (a, b) = (labels[i], labels[j as usize]);
            if a != b {
                let key = (a.min(b), a.max(b));
                let s = rho[i].min(rho[j as usize]);
                let e = saddles.entry(key).or_insert(f32::NEG_INFINITY);
                *e = e.max(s);
            }
        }
    }
    let mut pairs: Vec<((u32, u32), f32)> = saddles.into_iter().collect();
    pairs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut parent: Vec<u32> = (0..c as u32).collect();
    fn find(parent: &mut [u32], mut a: u32) -> u32 {
        while parent[a as usize] != a {
            parent[a as usize] = parent[parent[a as usize] as usize];
            a = parent[a as usize];
        }
        a
    }
    // A component keeps the peak of its root, the higher of any two merged: merges always go
    // from the lower peak into the higher.
    // A centre is the maximum of a noisy density estimate, biased upwards by the noise; the
    // mean over its neighbourhood is a steadier peak height to compare the saddle with.
    let peaks: Vec<f32> = centres
        .iter()
        .map(|&p| {
            let (idx, _) = lists.row(p);
            let mut s = f64::from(rho[p]);
            let mut c = 1.0;
            for &j in idx.iter().take(k) {
                if j != NONE {
                    s += f64::from(rho[j as usize]);
                    c += 1.0;
                }
            }
            (s / c) as f32
        })
        .collect();
    let peak = |r: u32| peaks[r as usize];
    for ((a, b), s) in pairs {
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        if ra == rb {
            continue;
        }
        let (low, high) =
            if (peak(ra), std::cmp::Reverse(ra)) < (peak(rb), std::cmp::Reverse(rb)) { (ra, rb) } else { (rb, ra) };
        if s >= ratio * peak(low) {
            parent[low as usize] = high;
        }
    }
    let roots: Vec<u32> = (0..c as u32).map(|a| find(&mut parent, a)).collect();
    let mut new_id = vec![NONE; c];
    let mut survivors = Vec::new();
    for a in 0..c {
        if roots[a] == a as u32 {
            new_id[a] = survivors.len() as u32;
            survivors.push(centres[a]);
        }
    }
    for l in labels.iter_mut() {
        *l = new_id[roots[*l as usize] as usize];
    }
    survivors
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    let m = s.len() / 2;
    let (_, x, _) = s.select_nth_unstable_by(m, f64::total_cmp);
    *x
}

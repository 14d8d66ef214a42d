//! Seeded Gaussian mixtures with known labels, for measuring how the automatic centre choice of
//! density peaks holds up across numbers of clusters, size ratios, overlap and dimension
//! (`dpc_sweep`, docs/clustering.md).
//!
//! Every cluster is an isotropic Gaussian with unit standard deviation. Centres are grown one at a
//! time: each new centre is placed at a random direction from a randomly chosen earlier centre, at
//! a distance of 1 to 1.5 × the separation Δ, and kept only if it is at least Δ from every centre.
//! So every cluster has a neighbour at about Δ in any dimension (random centres in a large box would
//! be far apart in high dimensions and make the separation meaningless).
//!
//! Δ is `separation` × (d/2)^¼ standard deviations (× 1 in 2-D): two points of one cluster are
//! √(2d) apart on average, and the spread of their squared distance grows as √d; scaling Δ by d^¼
//! keeps the gap between within- and between-cluster nearest-neighbour distances comparable across
//! dimensions, which is what a density estimate sees.
//!
//! Sizes fall off geometrically from the largest to the smallest cluster (`ratio`: largest /
//! smallest), assigned to the centres in random order; the total is `n`, raised where needed so that
//! the smallest cluster has `min_size` points.

use sightline_clustering::dpc::SplitMix64;
use sightline_clustering::points::Points;

/// Parameters of [`generate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Mixture {
    /// Clusters.
    pub clusters: usize,
    /// Dimensions.
    pub dim: usize,
    /// Largest cluster size / smallest (1 = equal sizes).
    pub ratio: f64,
    /// Nearest-centre distance in units of (d/2)^¼ standard deviations (see the module docs).
    pub separation: f64,
    /// Points in all (at least; see `min_size`).
    pub n: usize,
    /// Smallest cluster size.
    pub min_size: usize,
    /// Seed.
    pub seed: u64,
}

impl Default for Mixture {
    fn default() -> Self {
        Self { clusters: 20, dim: 2, ratio: 1.0, separation: 6.0, n: 3000, min_size: 25, seed: 1 }
    }
}

impl Mixture {
    /// The nearest-centre distance Δ in standard deviations.
    pub fn delta(&self) -> f64 {
        self.separation * (self.dim.max(2) as f64 / 2.0).powf(0.25)
    }

    /// Cluster sizes, largest first (before the random assignment to centres).
    pub fn sizes(&self) -> Vec<usize> {
        let k = self.clusters.max(1);
        let ratio = self.ratio.max(1.0);
        // Weight of cluster c: ratio^(−c/(k−1)), from 1 down to 1/ratio.
        let w: Vec<f64> = (0..k).map(|c| if k == 1 { 1.0 } else { ratio.powf(-(c as f64) / (k - 1) as f64) }).collect();
        let total: f64 = w.iter().sum();
        let smallest = w[k - 1] / total;
        let n = (self.n as f64).max((self.min_size as f64 / smallest).ceil());
        w.iter().map(|v| ((v / total * n).round() as usize).max(self.min_size.max(1))).collect()
    }
}

/// Generates the points and their clusters. Deterministic for a seed.
pub fn generate(m: &Mixture) -> (Points, Vec<u32>) {
    let dim = m.dim.max(1);
    let k = m.clusters.max(1);
    let mut rng = SplitMix64(m.seed);
    let delta = m.delta();
    let mut centres: Vec<Vec<f64>> = vec![vec![0.0; dim]];
    let mut tries = 0usize;
    while centres.len() < k {
        let from = (rng.next_u64() % centres.len() as u64) as usize;
        let mut dir: Vec<f64> = (0..dim).map(|_| rng.normal()).collect();
        let norm = dir.iter().map(|v| v * v).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
        // After many rejections (a crowded 2-D neighbourhood) reach further out.
        let reach = 1.0 + 0.5 * rng.uniform() + (tries / 200) as f64 * 0.25;
        for v in dir.iter_mut() {
            *v *= reach * delta / norm;
        }
        let c: Vec<f64> = centres[from].iter().zip(&dir).map(|(a, b)| a + b).collect();
        let far =
            centres.iter().all(|o| o.iter().zip(&c).map(|(a, b)| (a - b) * (a - b)).sum::<f64>() >= delta * delta);
        if far {
            centres.push(c);
            tries = 0;
        } else {
            tries += 1;
        }
    }
    let mut sizes = m.sizes();
    rng.shuffle(&mut sizes);
    let mut labels: Vec<u32> = sizes.iter().enumerate().flat_map(|(c, &s)| std::iter::repeat_n(c as u32, s)).collect();
    rng.shuffle(&mut labels);
    let mut data = Vec::with_capacity(labels.len() * dim);
    for &l in &labels {
        for &c in &centres[l as usize] {
            data.push((c + rng.normal()) as f32);
        }
    }
    (Points::new(data, dim).expect("generated values are finite"), labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_ratio_and_separation() {
        let m = Mixture { clusters: 10, ratio: 20.0, ..Mixture::default() };
        let sizes = m.sizes();
        assert_eq!(sizes.len(), 10);
        let (max, min) = (sizes[0] as f64, sizes[9] as f64);
        assert!((max / min - 20.0).abs() < 1.5, "ratio {}", max / min);
        assert!(min >= 25.0);
        let (p, labels) = generate(&m);
        assert_eq!(p.len(), sizes.iter().sum::<usize>());
        assert_eq!(labels.len(), p.len());
        // Cluster means lie at least about Δ apart (each mean is within a few σ/√size of its centre).
        let dim = p.dim();
        let mut mean = vec![vec![0f64; dim]; 10];
        let mut count = [0usize; 10];
        for (i, &l) in labels.iter().enumerate() {
            count[l as usize] += 1;
            for (a, &v) in mean[l as usize].iter_mut().zip(p.row(i)) {
                *a += f64::from(v);
            }
        }
        for (m, &c) in mean.iter_mut().zip(&count) {
            m.iter_mut().for_each(|v| *v /= c as f64);
        }
        for a in 0..10 {
            let nearest = (0..10)
                .filter(|&b| b != a)
                .map(|b| mean[a].iter().zip(&mean[b]).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt())
                .fold(f64::INFINITY, f64::min);
            assert!(nearest > 0.8 * m.delta() && nearest < 2.5 * m.delta(), "cluster {a}: {nearest}");
        }
        assert_eq!(generate(&m).0, p, "deterministic");
    }
}

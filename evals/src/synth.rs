//! Synthetic clustered point sets shaped like image embeddings, for tests and benchmarks.
//!
//! Each cluster is a centre on the unit sphere plus a Gaussian spread along a few random
//! directions (a low intrinsic dimension, as the views of one product vary along few factors),
//! plus a little isotropic noise; every point is L2-normalised. Cluster sizes fall off like a Zipf
//! law. A fraction of the points are noise: uniform random directions, label `None`.

use rayon::prelude::*;

use sightline_clustering::dpc::SplitMix64;
use sightline_clustering::points::Points;

/// Parameters of [`generate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Blobs {
    /// Points.
    pub n: usize,
    /// Dimensions.
    pub dim: usize,
    /// Clusters.
    pub clusters: usize,
    /// Fraction of noise points.
    pub noise: f64,
    /// Spread of a cluster along its latent directions, relative to the centre's unit length.
    pub spread: f32,
    /// Latent directions per cluster.
    pub latent: usize,
    /// Isotropic noise on every cluster point (norm, relative to the centre).
    pub jitter: f32,
    /// Zipf exponent of the cluster sizes (0 = equal sizes).
    pub zipf: f64,
    /// Seed.
    pub seed: u64,
}

impl Default for Blobs {
    fn default() -> Self {
        Self {
            n: 10_000,
            dim: 512,
            clusters: 50,
            noise: 0.1,
            spread: 0.5,
            latent: 8,
            jitter: 0.15,
            zipf: 0.5,
            seed: 42,
        }
    }
}

/// Generates the points and their true clusters (`None` for noise). Deterministic for a seed and
/// independent of the thread count.
pub fn generate(b: &Blobs) -> (Points, Vec<Option<u32>>) {
    let dim = b.dim.max(1);
    let mut rng = SplitMix64(b.seed);
    let unit = |rng: &mut SplitMix64| -> Vec<f32> {
        let mut v: Vec<f32> = (0..dim).map(|_| rng.normal() as f32).collect();
        normalise(&mut v);
        v
    };
    let centres: Vec<Vec<f32>> = (0..b.clusters).map(|_| unit(&mut rng)).collect();
    // Latent directions: random, scaled so that a unit latent step moves the point by `spread`.
    let bases: Vec<Vec<f32>> = (0..b.clusters)
        .map(|_| {
            let scale = b.spread / (b.latent.max(1) as f32).sqrt();
            (0..b.latent).flat_map(|_| unit(&mut rng).into_iter().map(move |v| v * scale)).collect()
        })
        .collect();
    // Cluster of each point: noise first by fraction, then clusters by Zipf weights.
    let weights: Vec<f64> = (0..b.clusters).map(|c| 1.0 / ((c + 1) as f64).powf(b.zipf)).collect();
    let total: f64 = weights.iter().sum();
    let clustered = ((1.0 - b.noise.clamp(0.0, 1.0)) * b.n as f64).round() as usize;
    let mut labels: Vec<Option<u32>> = Vec::with_capacity(b.n);
    if b.clusters > 0 {
        let mut acc = 0.0;
        for (c, w) in weights.iter().enumerate() {
            acc += w / total;
            let upto = if c + 1 == b.clusters { clustered } else { (acc * clustered as f64).round() as usize };
            while labels.len() < upto.min(clustered) {
                labels.push(Some(c as u32));
            }
        }
    }
    labels.resize(b.n, None);
    // Shuffle so that row order carries no information.
    rng.shuffle(&mut labels);
    const CHUNK: usize = 4096;
    let mut data = vec![0f32; b.n * dim];
    data.par_chunks_mut(CHUNK * dim).enumerate().for_each(|(ci, chunk)| {
        let mut rng = SplitMix64(b.seed ^ (0xA5A5_0000_0000 + ci as u64));
        for (r, row) in chunk.chunks_exact_mut(dim).enumerate() {
            match labels[ci * CHUNK + r] {
                None => {
                    for v in row.iter_mut() {
                        *v = rng.normal() as f32;
                    }
                }
                Some(c) => {
                    let c = c as usize;
                    row.copy_from_slice(&centres[c]);
                    for l in 0..b.latent {
                        let z = rng.normal() as f32;
                        for (v, d) in row.iter_mut().zip(&bases[c][l * dim..(l + 1) * dim]) {
                            *v += z * d;
                        }
                    }
                    let j = b.jitter / (dim as f32).sqrt();
                    for v in row.iter_mut() {
                        *v += j * rng.normal() as f32;
                    }
                }
            }
            normalise(row);
        }
    });
    (Points::new(data, dim).expect("generated values are finite"), labels)
}

fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in v.iter_mut() {
            *x /= norm;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_noise_and_norms() {
        let b = Blobs { n: 2000, dim: 32, clusters: 5, noise: 0.1, ..Blobs::default() };
        let (p, labels) = generate(&b);
        assert_eq!(p.len(), 2000);
        assert_eq!(labels.iter().filter(|l| l.is_none()).count(), 200);
        let first = labels.iter().filter(|l| **l == Some(0)).count();
        let last = labels.iter().filter(|l| **l == Some(4)).count();
        assert!(first > last, "zipf sizes {first} vs {last}");
        for i in 0..p.len() {
            let norm: f32 = p.row(i).iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4);
        }
        assert_eq!(generate(&b).0, p, "deterministic");
    }
}

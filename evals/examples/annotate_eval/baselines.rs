//! Clusterings of the stored embeddings, labelled by the same rule: density peaks (the stage's
//! own code, re-run), DBSCAN (`linfa-clustering`), HDBSCAN (`hdbscan`) and k-means
//! (`linfa-clustering`), so that the comparison is about the clustering alone.
//!
//! The labelling rule for every method is the cluster stage's size rule: a cluster holding at
//! least `max(ceil(min_fraction · n), min(min_size, n))` of the collection's `n` clustered images
//! is the product; smaller clusters and the points a method calls noise are noise. Only density
//! peaks has a halo; `halo_is_noise` applies to it alone.

use std::collections::BTreeMap;

use hdbscan::{DistanceMetric, Hdbscan, HdbscanHyperParams, NnAlgorithm};
use linfa::DatasetBase;
use linfa::traits::{Fit, Predict, Transformer};
use linfa_clustering::{Dbscan, KMeans};
use linfa_nn::CommonNearestNeighbour;
use linfa_nn::distance::L2Dist;
use ndarray16::Array2;
use serde::Serialize;
use sightline_clustering::dpc::{self, Method as DpcMethod, Params};
use sightline_clustering::labels::{self, LabelRule};
use sightline_clustering::points::Points;

/// One collection's embedded images, in item order (the order the cluster stage uses).
pub struct Collection {
    /// File names within the collection.
    pub files: Vec<String>,
    /// True label of each file (`None` for files that are not in the truth).
    pub truth_product: Vec<Option<bool>>,
    /// The embeddings.
    pub vectors: Vec<Vec<f32>>,
}

/// How k-means gets its k.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum KRule {
    /// k = 2: the truth's two labels.
    Two,
    /// k = 1 + the clustered noise images: the product as one group and every noise image as a
    /// group of its own (the truth does not group the noise, so this is the number of groups it
    /// defines).
    TrueGroups,
}

/// A clustering method and its parameters.
#[derive(Debug, Clone, Serialize)]
pub enum Method {
    /// Density peaks with `Params::default()` (the stage's setting) and this label rule.
    Dpc {
        /// Stage label rule.
        min_fraction: f32,
        /// Stage label rule.
        min_size: usize,
        /// Stage label rule.
        halo_is_noise: bool,
        /// Stage label rule.
        min_density: f32,
    },
    /// DBSCAN with ε = this percentile of the collection's pairwise distances (relative to the
    /// collection, like d_c) and `min_points` (the point itself included, as linfa counts).
    Dbscan {
        /// Percentile of pairwise distances.
        eps_percentile: f64,
        /// Core-point neighbourhood size.
        min_points: usize,
    },
    /// HDBSCAN (excess of mass), single clusters allowed.
    Hdbscan {
        /// Smallest cluster.
        min_cluster_size: usize,
        /// Core-distance neighbour.
        min_samples: usize,
    },
    /// k-means++ (10 seeded runs, the lowest inertia kept).
    KMeans {
        /// How k is chosen.
        k: KRule,
    },
    /// No clustering: every image that reached the cluster stage is the product (what the
    /// filters before clustering achieve alone).
    KeepAll,
}

impl Method {
    /// A short name for tables.
    pub fn family(&self) -> &'static str {
        match self {
            Method::Dpc { .. } => "density peaks",
            Method::Dbscan { .. } => "DBSCAN",
            Method::Hdbscan { .. } => "HDBSCAN",
            Method::KMeans { k: KRule::Two } => "k-means, k = 2",
            Method::KMeans { k: KRule::TrueGroups } => "k-means, k = 1 + noise",
            Method::KeepAll => "no clustering",
        }
    }

    /// The parameters, for tables.
    pub fn params(&self) -> String {
        match self {
            Method::Dpc { min_fraction, min_size, halo_is_noise, min_density } => format!(
                "min_fraction {min_fraction}, min_size {min_size}, halo_is_noise {halo_is_noise}, min_density {min_density}"
            ),
            Method::Dbscan { eps_percentile, min_points } => {
                format!("eps = p{eps_percentile} of distances, min_points {min_points}")
            }
            Method::Hdbscan { min_cluster_size, min_samples } => {
                format!("min_cluster_size {min_cluster_size}, min_samples {min_samples}")
            }
            Method::KMeans { .. } | Method::KeepAll => String::new(),
        }
    }
}

/// One image's outcome: product or not, and its cluster (`None` = the method's noise).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// Labelled product.
    pub product: bool,
    /// Cluster id.
    pub cluster: Option<usize>,
}

/// Clusters `c` with `method` and labels it with the size rule of `rule` (see the module
/// documentation).
pub fn run(method: &Method, c: &Collection, rule: &LabelRule) -> Result<Vec<Outcome>, String> {
    let n = c.vectors.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    let clusters: Vec<Option<usize>> = match method {
        Method::Dpc { min_fraction, min_size, halo_is_noise, min_density } => {
            let rule = LabelRule {
                min_fraction: *min_fraction,
                min_size: *min_size,
                halo_is_noise: *halo_is_noise,
                min_density: *min_density,
            };
            return dpc_outcomes(c, &rule);
        }
        Method::KeepAll => return Ok(vec![Outcome { product: true, cluster: Some(0) }; n]),
        Method::Dbscan { eps_percentile, min_points } => {
            let eps = percentile(&pairwise(&c.vectors), *eps_percentile);
            let x = matrix(&c.vectors);
            let labels = Dbscan::params_with(*min_points, L2Dist, CommonNearestNeighbour::LinearSearch)
                .tolerance(eps.max(1e-9))
                .transform(&x)
                .map_err(|e| format!("dbscan: {e}"))?;
            labels.to_vec()
        }
        Method::Hdbscan { min_cluster_size, min_samples } => {
            let hp = HdbscanHyperParams::builder()
                .min_cluster_size((*min_cluster_size).clamp(2, n.max(2)))
                .min_samples((*min_samples).min(n.saturating_sub(1)).max(1))
                .allow_single_cluster(true)
                .dist_metric(DistanceMetric::Euclidean)
                .nn_algorithm(NnAlgorithm::BruteForce)
                .build();
            if n < 3 {
                vec![None; n]
            } else {
                let labels = Hdbscan::new(&c.vectors, hp).cluster().map_err(|e| format!("hdbscan: {e}"))?;
                labels.into_iter().map(|l| usize::try_from(l).ok()).collect()
            }
        }
        Method::KMeans { k } => {
            let noise = c.truth_product.iter().filter(|t| **t == Some(false)).count();
            let k = match k {
                KRule::Two => 2,
                KRule::TrueGroups => 1 + noise,
            }
            .clamp(1, n);
            let x = matrix(&c.vectors);
            let data = DatasetBase::from(x.clone());
            let model = KMeans::params(k).n_runs(10).tolerance(1e-6).fit(&data).map_err(|e| format!("k-means: {e}"))?;
            model.predict(&x).iter().map(|&l| Some(l)).collect()
        }
    };
    Ok(size_rule(&clusters, rule))
}

/// The stage's own clustering and labelling of one collection.
fn dpc_outcomes(c: &Collection, rule: &LabelRule) -> Result<Vec<Outcome>, String> {
    let n = c.vectors.len();
    if n < 3 {
        // The stage keeps collections this small whole.
        return Ok(vec![Outcome { product: true, cluster: Some(0) }; n]);
    }
    let points = Points::from_rows(&c.vectors).map_err(|e| e.to_string())?;
    let clustering = dpc::cluster(&points, &Params::default(), DpcMethod::Auto).map_err(|e| e.to_string())?;
    Ok(labels::label(&clustering, rule)
        .into_iter()
        .map(|l| Outcome { product: l.label == "product", cluster: Some(l.cluster as usize) })
        .collect())
}

/// The size threshold of the stage's rule for `n` clustered images.
pub fn threshold(rule: &LabelRule, n: usize) -> usize {
    ((rule.min_fraction * n as f32).ceil() as usize).max(rule.min_size.min(n))
}

/// Labels clusters by size: at least [`threshold`] images = product; `None` = noise.
pub fn size_rule(clusters: &[Option<usize>], rule: &LabelRule) -> Vec<Outcome> {
    let mut sizes: BTreeMap<usize, usize> = BTreeMap::new();
    for c in clusters.iter().flatten() {
        *sizes.entry(*c).or_default() += 1;
    }
    let t = threshold(rule, clusters.len());
    clusters.iter().map(|&cluster| Outcome { product: cluster.is_some_and(|c| sizes[&c] >= t), cluster }).collect()
}

fn matrix(rows: &[Vec<f32>]) -> Array2<f64> {
    let dim = rows.first().map_or(0, Vec::len);
    Array2::from_shape_fn((rows.len(), dim), |(i, j)| f64::from(rows[i][j]))
}

/// Every pairwise Euclidean distance (i < j).
fn pairwise(rows: &[Vec<f32>]) -> Vec<f64> {
    let mut out = Vec::with_capacity(rows.len() * rows.len().saturating_sub(1) / 2);
    for i in 0..rows.len() {
        for j in i + 1..rows.len() {
            let d: f64 = rows[i].iter().zip(&rows[j]).map(|(a, b)| f64::from(a - b).powi(2)).sum();
            out.push(d.sqrt());
        }
    }
    out
}

/// The `p`-th percentile (nearest rank) of `values`.
fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// The parameter grid searched for each baseline (every point is reported in `--json`).
pub fn grid() -> Vec<Method> {
    let mut out = Vec::new();
    for eps_percentile in [1.0, 2.0, 3.0, 5.0, 8.0, 10.0, 15.0, 20.0, 30.0, 40.0] {
        for min_points in [3, 4, 5, 8] {
            out.push(Method::Dbscan { eps_percentile, min_points });
        }
    }
    for min_cluster_size in [3, 4, 5, 8, 12] {
        for min_samples in [1, 2, 3, 5] {
            out.push(Method::Hdbscan { min_cluster_size, min_samples });
        }
    }
    out.push(Method::KMeans { k: KRule::Two });
    out.push(Method::KMeans { k: KRule::TrueGroups });
    out.push(Method::KeepAll);
    out
}

/// The label-rule grid searched for density peaks.
pub fn dpc_grid() -> Vec<Method> {
    let mut out = Vec::new();
    for min_fraction in [0.1f32, 0.2, 0.3] {
        for halo_is_noise in [false, true] {
            for min_density in [0.0f32, 0.5, 0.6, 0.7, 0.75, 0.8, 0.825, 0.85, 0.875, 0.9, 0.95, 1.0] {
                out.push(Method::Dpc { min_fraction, min_size: 3, halo_is_noise, min_density });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two tight groups of 8 and 3 points on the unit sphere in 16-d, plus 3 scattered points.
    fn toy() -> Collection {
        let unit = |i: usize, jitter: f32, seed: usize| {
            let mut v = vec![0.0f32; 16];
            v[i] = 1.0;
            v[(i + 1 + seed % 7) % 16] += jitter;
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / norm).collect::<Vec<_>>()
        };
        let mut vectors = Vec::new();
        let mut truth = Vec::new();
        for s in 0..8 {
            vectors.push(unit(0, 0.05 + 0.01 * s as f32, s));
            truth.push(Some(true));
        }
        for s in 0..3 {
            vectors.push(unit(5, 0.05 + 0.01 * s as f32, s));
            truth.push(Some(false));
        }
        for i in [9, 11, 13] {
            vectors.push(unit(i, 0.0, 0));
            truth.push(Some(false));
        }
        Collection { files: (0..vectors.len()).map(|i| format!("{i}.jpg")).collect(), truth_product: truth, vectors }
    }

    #[test]
    fn the_size_rule_keeps_large_clusters() {
        let rule = LabelRule { min_fraction: 0.25, min_size: 3, ..LabelRule::default() };
        let out = size_rule(&[Some(0), Some(0), Some(0), Some(1), None, Some(0)], &rule);
        let product: Vec<bool> = out.iter().map(|o| o.product).collect();
        assert_eq!(product, [true, true, true, false, false, true]);
        assert_eq!(threshold(&rule, 100), 25);
        assert_eq!(threshold(&rule, 4), 3);
    }

    #[test]
    fn percentile_is_nearest_rank() {
        assert_eq!(percentile(&[4.0, 1.0, 3.0, 2.0], 50.0), 2.0);
        assert_eq!(percentile(&[4.0, 1.0, 3.0, 2.0], 100.0), 4.0);
        assert_eq!(percentile(&[4.0, 1.0, 3.0, 2.0], 0.0), 1.0);
    }

    #[test]
    fn every_baseline_finds_the_large_group() {
        let c = toy();
        let rule = LabelRule { min_fraction: 0.3, min_size: 3, ..LabelRule::default() };
        let expected: Vec<bool> = c.truth_product.iter().map(|t| *t == Some(true)).collect();
        for method in [
            Method::Dbscan { eps_percentile: 20.0, min_points: 3 },
            Method::Hdbscan { min_cluster_size: 3, min_samples: 2 },
        ] {
            let out = run(&method, &c, &rule).unwrap();
            let product: Vec<bool> = out.iter().map(|o| o.product).collect();
            assert_eq!(product, expected, "{method:?}");
        }
        // k-means has no noise: at k = 2 it separates the two groups once the scattered points
        // are gone (with them, it spends clusters on them and splits the product).
        let two_groups = Collection {
            files: c.files[..11].to_vec(),
            truth_product: c.truth_product[..11].to_vec(),
            vectors: c.vectors[..11].to_vec(),
        };
        let out = run(&Method::KMeans { k: KRule::Two }, &two_groups, &rule).unwrap();
        let product: Vec<bool> = out.iter().map(|o| o.product).collect();
        assert_eq!(product, expected[..11]);
        let all = run(&Method::KeepAll, &c, &rule).unwrap();
        assert!(all.iter().all(|o| o.product));
    }
}

//! The annotation labelling rule: which points of a density-peaks clustering of one crawled
//! collection are the product (large, compact clusters) and which are noise (small clusters,
//! halo points, isolated points at a cluster's thin fringe). The cluster stage applies it to
//! every collection; anything that re-labels a collection (a review of the labels) applies the
//! same rule. Measured on the dev collections in `docs/annotate.md`.

use std::collections::BTreeMap;

use crate::dpc::Clustering;

/// How clusters become labels. Thresholds are relative to the collection.
#[derive(Debug, Clone, clap::Args)]
pub struct LabelRule {
    /// A cluster is the product if it holds at least this fraction of the collection's
    /// clustered images (and at least `min_size` images).
    #[arg(long, env = "CLUSTER_MIN_FRACTION", default_value_t = 0.2)]
    pub min_fraction: f32,
    /// Smallest product cluster.
    #[arg(long, env = "CLUSTER_MIN_SIZE", default_value_t = 3)]
    pub min_size: usize,
    /// Halo points of a product cluster are labelled noise.
    #[arg(long, env = "CLUSTER_HALO_IS_NOISE", default_value_t = true, action = clap::ArgAction::Set)]
    pub halo_is_noise: bool,
    /// An image of a product cluster whose local density ρ is below this fraction of the
    /// cluster's median ρ is noise (0 keeps them all). Density peaks attaches every image to
    /// the cluster of its nearest denser neighbour, so the isolated images of a crawl (other
    /// products, scenes) join the product's cluster at its thin fringe; in a collection where
    /// the product is the only dense region there is no border, hence no halo, to cut them.
    #[arg(long, env = "CLUSTER_MIN_DENSITY", default_value_t = DEFAULT_MIN_DENSITY)]
    pub min_density: f32,
}

/// Default [`LabelRule::min_density`], chosen on the dev collections (docs/annotate.md).
pub const DEFAULT_MIN_DENSITY: f32 = 0.9;

impl Default for LabelRule {
    fn default() -> Self {
        Self { min_fraction: 0.2, min_size: 3, halo_is_noise: true, min_density: DEFAULT_MIN_DENSITY }
    }
}

/// One image's outcome at the cluster stage: the `cluster` annotation of the message contract.
pub use sightline_messages::annotations::ClusterOut as Label;

/// Labels every point of `clustering` by `rule`.
pub fn label(clustering: &Clustering, rule: &LabelRule) -> Vec<Label> {
    let n = clustering.len();
    let mut sizes: BTreeMap<u32, usize> = BTreeMap::new();
    for &l in &clustering.labels {
        *sizes.entry(l).or_insert(0) += 1;
    }
    let threshold = ((rule.min_fraction * n as f32).ceil() as usize).max(rule.min_size.min(n));
    let median_rho = cluster_median_rho(clustering);
    clustering
        .labels
        .iter()
        .zip(&clustering.halo)
        .zip(&clustering.rho)
        .map(|((&cluster, &halo), &rho)| {
            let size = sizes[&cluster];
            let floor = rule.min_density * median_rho[&cluster];
            let (label, reason) = if size < threshold {
                (
                    "noise",
                    Some(format!("small cluster: {size} of {n} images (product clusters hold at least {threshold})")),
                )
            } else if halo && rule.halo_is_noise {
                ("noise", Some(format!("halo of cluster {cluster} (below its border density)")))
            } else if rho < floor {
                let ratio = rho / median_rho[&cluster];
                (
                    "noise",
                    Some(format!(
                        "isolated: density {ratio:.3} of cluster {cluster}'s median (below {})",
                        rule.min_density
                    )),
                )
            } else {
                ("product", None)
            };
            Label { cluster, halo, label: label.to_owned(), reason }
        })
        .collect()
}

/// The median local density of each cluster's points.
fn cluster_median_rho(clustering: &Clustering) -> BTreeMap<u32, f32> {
    cluster_median_rho_of(&clustering.labels, &clustering.rho)
}

/// The median of `rho` over the points of each cluster of `clusters`.
pub(crate) fn cluster_median_rho_of(clusters: &[u32], rho: &[f32]) -> BTreeMap<u32, f32> {
    let mut by_cluster: BTreeMap<u32, Vec<f32>> = BTreeMap::new();
    for (&l, &r) in clusters.iter().zip(rho) {
        by_cluster.entry(l).or_default().push(r);
    }
    by_cluster
        .into_iter()
        .map(|(c, mut v)| {
            v.sort_by(f32::total_cmp);
            let m = v.len() / 2;
            let median = if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 };
            (c, median)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dpc::{Decision as DpcDecision, Stats};

    /// A hand-made clustering: `labels`, `halo` and `rho` per point.
    fn clustering(labels: &[u32], halo: &[bool], rho: &[f32]) -> Clustering {
        let n = labels.len();
        let clusters = labels.iter().max().map_or(0, |m| *m as usize + 1);
        Clustering {
            rho: rho.to_vec(),
            delta: vec![1.0; n],
            nearest_denser: vec![None; n],
            gamma: vec![1.0; n],
            centres: (0..clusters).map(|c| labels.iter().position(|&l| l as usize == c).unwrap_or(0)).collect(),
            labels: labels.to_vec(),
            halo: halo.to_vec(),
            decision: DpcDecision::default(),
            dc: None,
            k: 5,
            stats: Stats::default(),
        }
    }

    fn kinds(labels: &[Label]) -> Vec<&str> {
        labels.iter().map(|l| l.label.as_str()).collect()
    }

    #[test]
    fn small_clusters_and_halo_are_noise() {
        // Cluster 0: 6 points, one in its halo; cluster 1: 2 points, under the threshold
        // max(ceil(0.2 · 8), 3) = 3.
        let c =
            clustering(&[0, 0, 0, 0, 0, 0, 1, 1], &[false, false, false, false, false, true, false, false], &[1.0; 8]);
        let rule = LabelRule { min_density: 0.0, ..LabelRule::default() };
        let out = label(&c, &rule);
        assert_eq!(kinds(&out), ["product", "product", "product", "product", "product", "noise", "noise", "noise"]);
        assert!(out[5].reason.as_deref().is_some_and(|r| r.starts_with("halo")), "{:?}", out[5]);
        assert!(out[6].reason.as_deref().is_some_and(|r| r.starts_with("small cluster: 2 of 8")), "{:?}", out[6]);
        let keep_halo = label(&c, &LabelRule { halo_is_noise: false, ..rule });
        assert_eq!(keep_halo[5].label, "product");
        assert!(keep_halo[5].halo);
    }

    #[test]
    fn isolated_points_of_a_product_cluster_are_noise() {
        // One cluster whose fringe (density 0.5 of the median) is noise at min_density 0.9.
        let rho = [2.0, 2.1, 1.9, 2.0, 2.2, 1.0, 0.9];
        let c = clustering(&[0; 7], &[false; 7], &rho);
        let out = label(&c, &LabelRule { min_density: 0.9, ..LabelRule::default() });
        assert_eq!(kinds(&out), ["product", "product", "product", "product", "product", "noise", "noise"]);
        assert!(out[5].reason.as_deref().is_some_and(|r| r.starts_with("isolated: density 0.500")), "{:?}", out[5]);
        // 0 disables the density floor.
        let all = label(&c, &LabelRule { min_density: 0.0, ..LabelRule::default() });
        assert!(all.iter().all(|l| l.label == "product"));
    }

    #[test]
    fn median_density_per_cluster() {
        let c = clustering(&[0, 0, 0, 1, 1], &[false; 5], &[3.0, 1.0, 2.0, 4.0, 6.0]);
        let m = cluster_median_rho(&c);
        assert_eq!((m[&0], m[&1]), (2.0, 5.0));
    }
}

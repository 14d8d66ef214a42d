//! The `cluster` stage: the fan-in of the annotation route. Each image task that reaches it is
//! parked in storage and counted at the barrier; when its collection is complete (every image
//! arrived here or left the route before), one `collection.ready` runs density peaks over the
//! collection's embeddings and labels every parked image: the large, compact clusters are the
//! product and go on along the route; small clusters and halo points are noise and leave it.

use std::collections::BTreeMap;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sightline_blob::key_segment;
use sightline_messages::annotations::EmbedOut;
use sightline_messages::{Body, CollectionReady, ImageTask, ItemOutcome, KIND_COLLECTION_READY, KIND_IMAGE};
use sightline_runtime::fanin::{self, FAN_IN_STAGE};
use sightline_runtime::{Ctx, Effect, Input, Stage, StageError};
use tracing::info;
use uuid::Uuid;

use crate::dpc::{self, Clustering, Method, Params};
use crate::points::Points;

/// The stage name.
pub const NAME: &str = FAN_IN_STAGE;

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
    let mut by_cluster: BTreeMap<u32, Vec<f32>> = BTreeMap::new();
    for (&l, &r) in clustering.labels.iter().zip(&clustering.rho) {
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

/// Where the cluster stage parks an image task until its collection is complete.
pub fn parked_key(job: Uuid, collection: &str, item: u64) -> String {
    format!("{}{item:010}.json", parked_prefix(job, collection))
}

fn parked_prefix(job: Uuid, collection: &str) -> String {
    format!("jobs/{job}/cluster/{}/items/", key_segment(collection))
}

/// Where the decision graph of a collection is stored.
pub fn decision_key(job: Uuid, collection: &str) -> String {
    format!("jobs/{job}/cluster/{}/decision.json", key_segment(collection))
}

/// The decision graph and labels of one collection, for reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Decision {
    /// The collection.
    pub collection: String,
    /// Item index of each point.
    pub items: Vec<u64>,
    /// Source names of each point.
    pub names: Vec<String>,
    /// ρ per point.
    pub rho: Vec<f32>,
    /// δ per point.
    pub delta: Vec<f32>,
    /// Indices (into the points) of the cluster centres.
    pub centres: Vec<usize>,
    /// Labels per point.
    pub labels: Vec<Label>,
}

/// The cluster stage.
#[derive(Default)]
pub struct ClusterStage {
    params: Params,
    rule: LabelRule,
}

impl ClusterStage {
    /// A stage with the default density-peaks parameters and `rule`.
    pub fn new(rule: LabelRule) -> Self {
        Self { params: Params::default(), rule }
    }

    async fn park(&self, ctx: &Ctx, task: &ImageTask) -> Result<Vec<Effect>, StageError> {
        let json = serde_json::to_vec(task).map_err(|e| StageError::permanent(format!("encode task: {e}")))?;
        ctx.blob.put(&parked_key(task.job_id, &task.collection, task.item), Bytes::from(json)).await?;
        let ready =
            fanin::pass_barrier(ctx.coord.as_ref(), task.job_id, task.item, &task.collection, &task.route).await?;
        Ok(ready
            .map(|r| Effect::PublishOnce {
                stage: NAME.to_owned(),
                id: fanin::ready_message_id(r.job_id, &r.collection),
                body: Body::CollectionReady(r),
            })
            .into_iter()
            .collect())
    }

    async fn cluster_collection(&self, ctx: &Ctx, ready: &CollectionReady) -> Result<Vec<Effect>, StageError> {
        let keys = ctx.blob.list(&parked_prefix(ready.job_id, &ready.collection)).await?;
        let mut tasks = Vec::with_capacity(keys.len());
        for key in &keys {
            let bytes = ctx.blob.get(key).await?;
            let task: ImageTask =
                serde_json::from_slice(&bytes).map_err(|e| StageError::permanent(format!("parked task {key}: {e}")))?;
            tasks.push(task);
        }
        if tasks.is_empty() {
            info!(job = %ready.job_id, collection = %ready.collection, "nothing reached clustering");
            return Ok(Vec::new());
        }
        let mut rows = Vec::with_capacity(tasks.len());
        for task in &tasks {
            rows.push(load_embedding(ctx, task).await?);
        }
        let params = self.params.clone();
        let n = tasks.len();
        let clustering = ctx
            .blocking(move || -> Result<Option<Clustering>, String> {
                if n < 3 {
                    return Ok(None);
                }
                let points = Points::from_rows(&rows).map_err(|e| e.to_string())?;
                dpc::cluster(&points, &params, Method::Auto).map(Some).map_err(|e| e.to_string())
            })
            .await?
            .map_err(|e| StageError::permanent(format!("density peaks: {e}")))?;
        let labels = match &clustering {
            Some(c) => label(c, &self.rule),
            // Too few images to find structure: keep them (filtering is conservative).
            None => vec![Label { cluster: 0, halo: false, label: "product".into(), reason: None }; n],
        };
        let decision = Decision {
            collection: ready.collection.clone(),
            items: tasks.iter().map(|t| t.item).collect(),
            names: tasks.iter().map(|t| t.name.clone()).collect(),
            rho: clustering.as_ref().map(|c| c.rho.clone()).unwrap_or_default(),
            delta: clustering.as_ref().map(|c| c.delta.clone()).unwrap_or_default(),
            centres: clustering.as_ref().map(|c| c.centres.clone()).unwrap_or_default(),
            labels: labels.clone(),
        };
        let json = serde_json::to_vec(&decision).map_err(|e| StageError::permanent(format!("encode decision: {e}")))?;
        ctx.blob.put(&decision_key(ready.job_id, &ready.collection), Bytes::from(json)).await?;
        let products = labels.iter().filter(|l| l.label == "product").count();
        info!(job = %ready.job_id, collection = %ready.collection, images = n, products, "collection clustered");
        tasks
            .into_iter()
            .zip(labels)
            .map(|(mut task, l)| {
                task.set_annotation(&l).map_err(|e| StageError::permanent(e.to_string()))?;
                Ok(match l.reason {
                    Some(reason) => Effect::leave(&task, ItemOutcome::Filtered, NAME, Some(reason)),
                    None => Effect::forward(task, NAME),
                })
            })
            .collect()
    }
}

async fn load_embedding(ctx: &Ctx, task: &ImageTask) -> Result<Vec<f32>, StageError> {
    let embed = task.annotation::<EmbedOut>().map_err(|e| StageError::permanent(format!("{}: {e}", task.name)))?;
    let key = embed.map(|e| e.key).ok_or_else(|| {
        StageError::permanent(format!("{}: no embedding (is embed on the route before cluster?)", task.name))
    })?;
    let key = key.as_str();
    let bytes = ctx.blob.get(key).await?;
    sightline_messages::vector::decode(&bytes)
        .ok_or_else(|| StageError::permanent(format!("embedding {key}: {} bytes is not a f32 vector", bytes.len())))
}

#[async_trait]
impl Stage for ClusterStage {
    fn name(&self) -> &'static str {
        NAME
    }

    fn accepts(&self, kind: &str) -> bool {
        kind == KIND_IMAGE || kind == KIND_COLLECTION_READY
    }

    async fn handle(&self, ctx: &Ctx, input: Input) -> Result<Vec<Effect>, StageError> {
        match &input.body {
            Body::Image(task) => self.park(ctx, task).await,
            Body::CollectionReady(ready) => self.cluster_collection(ctx, ready).await,
            other => Err(StageError::permanent(format!("cluster does not handle {}", other.kind()))),
        }
    }
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

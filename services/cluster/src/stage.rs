//! The `cluster` stage: the fan-in of the annotation route. Each image task that reaches it is
//! parked in storage and counted at the barrier; when its collection is complete (every image
//! arrived here or left the route before), one `collection.ready` runs density peaks over the
//! collection's embeddings and labels every parked image: the large, compact clusters are the
//! product and go on along the route; small clusters and halo points are noise and leave it.

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

use sightline_clustering::dpc::{self, Clustering, Method, Params};
use sightline_clustering::labels::{Label, LabelRule, label};
use sightline_clustering::points::Points;

/// The stage name.
pub const NAME: &str = FAN_IN_STAGE;

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

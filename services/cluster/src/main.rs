//! The cluster worker: density-peaks clustering of each collection once all its images arrived.

use sightline_cluster::stage::ClusterStage;
use sightline_clustering::labels::LabelRule;
use sightline_runtime::{Worker, service};

/// What `--help` says the worker does.
const ABOUT: &str = "Cluster worker: parks image tasks until their collection is complete, then clusters the collection's embeddings by density peaks and labels the large compact clusters as the product.";

fn main() -> anyhow::Result<()> {
    service::main("sightline-cluster", ABOUT, |rule: LabelRule| Ok(Worker::new(ClusterStage::new(rule))))
}

//! A job's collections as the review sees them: for every image that is not a duplicate, its
//! automatic label with the margin that decided it, the clustering facts the rule can be
//! re-applied to, and its embedding; read from the job's records and the cluster stage's
//! decision graphs in the blob store (the same keys in both modes).

use std::collections::BTreeMap;

use anyhow::Context;
use sightline_blob::BlobStore;
use sightline_clustering::labels::LabelRule;
use sightline_clustering::review::{self, AutoLabel, Clustered, Collection, FLAT_MARGIN, Graph, Item};
use sightline_messages::annotations::{ClusterOut, DedupOut, DetectOut, EmbedOut};
use sightline_messages::{ItemOutcome, ItemRecord};
use uuid::Uuid;

use crate::report::annotate::file_in_collection;

/// One image of a collection under review, as shown and exported.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Image {
    /// File name within the collection.
    pub file: String,
    /// The stored image (for thumbnails).
    pub key: Option<String>,
    /// Why the pipeline decided as it did (noise reasons), if it said.
    pub reason: Option<String>,
    /// Cluster id, when clustered.
    pub cluster: Option<u32>,
}

/// A re-posted copy: it follows its original's label.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Copy {
    /// File name within the collection.
    pub file: String,
    /// The original (file name within the collection).
    pub original: Option<String>,
}

/// One collection: its images (the review's items, same order), and its duplicates.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The collection's name.
    pub name: String,
    /// Per item: what is shown.
    pub images: Vec<Image>,
    /// The review's items (auto labels, clustering facts, embeddings).
    pub collection: Collection,
    /// The neighbourhood graph over the embeddings.
    pub graph: Graph,
    /// Duplicates.
    pub copies: Vec<Copy>,
}

impl Loaded {
    /// The item index of `file`, if it is under review.
    pub fn index_of(&self, file: &str) -> Option<usize> {
        self.images.iter().position(|i| i.file == file)
    }
}

#[derive(serde::Deserialize)]
struct Decision {
    names: Vec<String>,
    rho: Vec<f32>,
}

/// Reads `job`'s records, decision graphs and embeddings from `blob` into one [`Loaded`] per
/// collection. `rule` is the rule the cluster stage applied (the margins are measured against
/// it); `k` the neighbours per image in the graph.
pub async fn load_job(
    blob: &dyn BlobStore,
    job: Uuid,
    records: &[ItemRecord],
    rule: &LabelRule,
    k: usize,
) -> anyhow::Result<BTreeMap<String, Loaded>> {
    let mut by_collection: BTreeMap<String, Vec<&ItemRecord>> = BTreeMap::new();
    for r in records {
        by_collection.entry(r.collection.clone()).or_default().push(r);
    }
    let mut out = BTreeMap::new();
    for (name, mut recs) in by_collection {
        recs.sort_by_key(|r| file_in_collection(r));
        let decision: Option<Decision> = match blob.get(&sightline_cluster::stage::decision_key(job, &name)).await {
            Ok(bytes) => Some(serde_json::from_slice(&bytes).with_context(|| format!("decision graph of {name}"))?),
            Err(sightline_blob::BlobError::NotFound(_)) => None,
            Err(e) => return Err(e).with_context(|| format!("read the decision graph of {name}")),
        };
        let rho_of: BTreeMap<&str, f32> = decision
            .as_ref()
            .map(|d| d.names.iter().map(String::as_str).zip(d.rho.iter().copied()).collect())
            .unwrap_or_default();
        let mut images = Vec::new();
        let mut items = Vec::new();
        let mut copies = Vec::new();
        for r in recs {
            let file = file_in_collection(r);
            if r.outcome == ItemOutcome::Duplicate {
                let original =
                    r.annotation::<DedupOut>().ok().flatten().and_then(|d| {
                        d.original().map(|o| o.strip_prefix(&format!("{name}/")).unwrap_or(o).to_owned())
                    });
                copies.push(Copy { file, original });
                continue;
            }
            let cluster = r.annotation::<ClusterOut>().ok().flatten();
            let clustered = cluster.as_ref().and_then(|c| {
                rho_of.get(r.name.as_str()).map(|&rho| Clustered { cluster: c.cluster, halo: c.halo, rho })
            });
            let vector = match r.annotation::<EmbedOut>().ok().flatten() {
                Some(e) => Some(read_vector(blob, &e.key).await?),
                None => None,
            };
            let auto = match (r.outcome, &cluster) {
                (ItemOutcome::Failed, _) => AutoLabel { product: false, decider: "failed".into(), margin: FLAT_MARGIN },
                (ItemOutcome::Filtered, None) => detect_label(r),
                (_, Some(c)) if clustered.is_none() => {
                    // Clustered without a density (a collection too small to cluster).
                    AutoLabel { product: c.label == "product", decider: "unclustered".into(), margin: FLAT_MARGIN }
                }
                (_, Some(c)) => AutoLabel { product: c.label == "product", decider: "cluster".into(), margin: 0.0 },
                (_, None) => AutoLabel {
                    product: r.outcome == ItemOutcome::Ok,
                    decider: "unclustered".into(),
                    margin: FLAT_MARGIN,
                },
            };
            images.push(Image {
                file,
                key: r.key.clone(),
                reason: r.reason.clone(),
                cluster: cluster.map(|c| c.cluster),
            });
            items.push(Item { auto, clustered, vector });
        }
        review::grade_clustered(&mut items, rule);
        let collection = Collection { items };
        let graph = Graph::new(&collection.items, k);
        out.insert(name.clone(), Loaded { name, images, collection, graph, copies });
    }
    Ok(out)
}

/// A detect-filtered image: its margin is how far the strongest flag's score lies above its
/// threshold (log units).
fn detect_label(r: &ItemRecord) -> AutoLabel {
    let margin = r
        .annotation::<DetectOut>()
        .ok()
        .flatten()
        .map(|d| {
            d.flags
                .iter()
                .filter(|f| f.threshold > 0.0 && f.score > 0.0)
                .map(|f| (f.score / f.threshold).ln().max(0.0))
                .fold(0.0f32, f32::max)
        })
        .unwrap_or(FLAT_MARGIN);
    AutoLabel { product: false, decider: "detect".into(), margin }
}

/// An embedding (little-endian f32), L2-normalised.
async fn read_vector(blob: &dyn BlobStore, key: &str) -> anyhow::Result<Vec<f32>> {
    let bytes = blob.get(key).await.with_context(|| format!("read embedding {key}"))?;
    let mut v = sightline_messages::vector::decode(&bytes).with_context(|| format!("embedding {key} is not f32s"))?;
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    Ok(v)
}

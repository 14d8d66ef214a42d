//! The `index` stage and the vector index it maintains.
//!
//! Each indexed image is one small JSON entry in S3 under `index/<collection>/entries/`,
//! naming its label and its embedding blob, so the index is durable and shared: every replica
//! serves a catalogue from these entries and the snapshots stored beside them ([`catalog`]).
//! [`search`] holds the approximate index, its serialisation and the OCR-text re-ranking that
//! search by photo uses; [`VectorIndex`] is an exact in-memory view of one collection.
//! [`server`] runs the stage with the search API ([`api`]) and the snapshot compactor beside
//! it under one shutdown token: the `sightline-index` binary.

pub mod api;
pub mod auth;
pub mod catalog;
pub mod logo;
pub mod query;
pub mod search;
pub mod server;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sightline_blob::{BlobError, BlobStore, key_segment};
use sightline_messages::ImageTask;
use sightline_messages::annotations::{ClusterOut, EmbedOut, IndexOut, OcrOut};
use sightline_runtime::{Ctx, Effect, ImageStage, StageError};
use uuid::Uuid;

use crate::catalog::Catalogs;

/// The stage name.
pub const NAME: &str = "index";

/// One indexed image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The job that indexed it.
    pub job_id: Uuid,
    /// Its item index in that job.
    pub item: u64,
    /// Its collection (the index shard).
    pub collection: String,
    /// Its source name.
    pub name: String,
    /// The image's storage key.
    pub image_key: String,
    /// The embedding's storage key (little-endian f32).
    pub embedding_key: String,
    /// Its label (`product`, or `unlabelled` when the route had no cluster stage).
    pub label: String,
    /// Its cluster, when clustered.
    pub cluster: Option<u32>,
    /// Its OCR text (lines joined by spaces), when the route read any: catalogues re-rank with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// The prefix of a collection's entries.
pub fn entries_prefix(collection: &str) -> String {
    format!("index/{}/entries/", key_segment(collection))
}

/// The key of one entry (stable, so re-indexing overwrites instead of duplicating).
pub fn entry_key(collection: &str, job: Uuid, item: u64) -> String {
    format!("{}{job}-{item:010}.json", entries_prefix(collection))
}

pub use sightline_messages::vector::decode as decode_vector;

/// The OCR stage's lines of `task` joined by spaces; `None` when OCR was not on the route or
/// read nothing.
pub fn ocr_text(task: &ImageTask) -> Option<String> {
    task.annotation::<OcrOut>().ok().flatten()?.text()
}

/// The entry for an image task leaving the route at index.
pub fn entry_for(task: &ImageTask) -> Result<Entry, String> {
    let embedding_key = task
        .annotation::<EmbedOut>()
        .map_err(|e| format!("{}: {e}", task.name))?
        .ok_or_else(|| format!("{}: no embedding to index (is embed on the route?)", task.name))?
        .key;
    let cluster = task.annotation::<ClusterOut>().ok().flatten();
    Ok(Entry {
        job_id: task.job_id,
        item: task.item,
        collection: task.collection.clone(),
        name: task.name.clone(),
        image_key: task.key.clone(),
        embedding_key,
        label: cluster.as_ref().map_or("unlabelled", |c| c.label.as_str()).to_owned(),
        cluster: cluster.map(|c| c.cluster),
        text: ocr_text(task),
    })
}

/// The index stage. A task whose job options name a catalogue (`search.catalog`) is a query:
/// it is answered from that catalogue ([`query`]) instead of being indexed.
#[derive(Debug, Default)]
pub struct IndexStage {
    catalogs: Arc<Catalogs>,
}

impl IndexStage {
    /// A stage answering queries from `catalogs` (shared with the search API and the compactor).
    pub fn new(catalogs: Arc<Catalogs>) -> Self {
        Self { catalogs }
    }

    /// The catalogues it serves.
    pub fn catalogs(&self) -> &Arc<Catalogs> {
        &self.catalogs
    }
}

#[async_trait]
impl ImageStage for IndexStage {
    const NAME: &'static str = NAME;

    async fn handle_image(&self, ctx: &Ctx, mut task: ImageTask) -> Result<Vec<Effect>, StageError> {
        if let Some(request) = query::QueryRequest::from_task(&task) {
            let answer = query::answer(ctx, &self.catalogs, &task, &request).await?;
            task.set_annotation(&answer).map_err(|e| StageError::permanent(e.to_string()))?;
            return Ok(vec![Effect::forward(task, NAME)]);
        }
        let entry = entry_for(&task).map_err(StageError::permanent)?;
        let key = entry_key(&entry.collection, entry.job_id, entry.item);
        let json = serde_json::to_vec(&entry).map_err(|e| StageError::permanent(format!("encode entry: {e}")))?;
        ctx.blob.put(&key, Bytes::from(json)).await?;
        // Replicas serving this collection as a catalogue refresh on their next query.
        ctx.coord.counter_add(&catalog::version_key(&entry.collection), 1).await?;
        task.set_annotation(&IndexOut { entry: key, label: entry.label })
            .map_err(|e| StageError::permanent(e.to_string()))?;
        Ok(vec![Effect::forward(task, NAME)])
    }
}

/// How many entries (and their embeddings) are fetched from storage at once.
const LOAD_CONCURRENCY: usize = 32;

/// The entries under `keys` with their vectors, in the order of `keys` (fetched
/// [`LOAD_CONCURRENCY`] at a time).
pub async fn load_entries(blob: &dyn BlobStore, keys: &[String]) -> Result<Vec<(String, Entry, Vec<f32>)>, BlobError> {
    use futures::{StreamExt, TryStreamExt};
    // Owned keys: a closure over borrowed ones is not general enough for a Send future.
    futures::stream::iter(keys.to_vec())
        .map(|key: String| async move {
            let bytes = blob.get(&key).await?;
            let entry: Entry = serde_json::from_slice(&bytes).map_err(|e| BlobError::Refused {
                op: "parse index entry",
                key: key.clone(),
                detail: e.to_string(),
            })?;
            let raw = blob.get(&entry.embedding_key).await?;
            let v = decode_vector(&raw).ok_or_else(|| BlobError::Refused {
                op: "parse embedding",
                key: entry.embedding_key.clone(),
                detail: format!("{} bytes", raw.len()),
            })?;
            Ok::<_, BlobError>((key, entry, v))
        })
        .buffered(LOAD_CONCURRENCY)
        .try_collect()
        .await
}

/// A collection's vectors in memory, loaded from S3.
#[derive(Debug, Default)]
pub struct VectorIndex {
    /// The entries, in key order.
    pub entries: Vec<Entry>,
    vectors: Vec<f32>,
    dim: usize,
}

/// A search hit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// Position in [`VectorIndex::entries`].
    pub index: usize,
    /// Cosine similarity.
    pub score: f32,
}

impl VectorIndex {
    /// Loads every entry of `collection` (optionally only one label) and its vector.
    pub async fn load(blob: &dyn BlobStore, collection: &str, label: Option<&str>) -> Result<Self, BlobError> {
        let keys = blob.list(&entries_prefix(collection)).await?;
        let mut index = VectorIndex::default();
        for (_, entry, v) in load_entries(blob, &keys).await? {
            if label.is_some_and(|l| l != entry.label) {
                continue;
            }
            if index.dim == 0 {
                index.dim = v.len();
            }
            if v.len() != index.dim {
                return Err(BlobError::Refused {
                    op: "load index",
                    key: entry.embedding_key.clone(),
                    detail: format!("dimension {} differs from {}", v.len(), index.dim),
                });
            }
            index.vectors.extend_from_slice(&v);
            index.entries.push(entry);
        }
        Ok(index)
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The vectors' dimension (0 when empty).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The vector of entry `i`.
    pub fn vector(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }

    /// The `k` most similar entries to `query` (L2-normalised), best first.
    pub fn search(&self, query: &[f32], k: usize) -> Vec<Hit> {
        if query.len() != self.dim || self.dim == 0 {
            return Vec::new();
        }
        let mut hits: Vec<Hit> = self
            .vectors
            .chunks_exact(self.dim)
            .enumerate()
            .map(|(index, v)| Hit { index, score: v.iter().zip(query).map(|(a, b)| a * b).sum() })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits.truncate(k);
        hits
    }
}

#[cfg(test)]
mod tests {
    use sightline_messages::Body;
    use sightline_runtime::{Input, Stage};

    use super::*;

    /// The query tests' task (route ending at index) in job 1's "shoes & bags", labelled by cluster.
    fn task(item: u64, emb_key: &str, label: &str) -> ImageTask {
        let mut t = crate::query::tests::task(1, item, "shoes & bags", emb_key, "");
        t.annotations.insert("cluster".to_owned(), serde_json::json!({ "cluster": 0, "label": label, "halo": false }));
        t
    }

    #[tokio::test]
    async fn a_fresh_replica_recovers_the_index_from_storage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blob: Arc<dyn BlobStore> = Arc::new(sightline_blob::LocalStore::new(dir.path()).expect("store"));
        let ctx = Ctx { blob: blob.clone(), coord: Arc::new(sightline_coord::MemoryCoord::new()) };
        let vectors = [[1.0f32, 0.0], [0.0, 1.0], [0.6, 0.8]];
        for (i, v) in vectors.iter().enumerate() {
            let key = format!("embeddings/test/{i}.f32");
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            blob.put(&key, Bytes::from(bytes)).await.expect("put vector");
            let label = if i == 1 { "noise" } else { "product" };
            let body = Body::Image(task(i as u64, &key, label));
            let env = sightline_messages::Envelope::new(&body, Uuid::new_v4(), Uuid::from_u128(1)).expect("env");
            let effects = IndexStage::default().handle(&ctx, Input { envelope: env, body }).await.expect("index");
            assert!(matches!(&effects[..], [Effect::Finish(_)]), "route ends at index");
        }
        let all = VectorIndex::load(blob.as_ref(), "shoes & bags", None).await.expect("load");
        assert_eq!(all.len(), 3);
        let products = VectorIndex::load(blob.as_ref(), "shoes & bags", Some("product")).await.expect("load");
        assert_eq!(products.len(), 2);
        let hits = products.search(&[0.8, 0.6], 2);
        assert_eq!(products.entries[hits[0].index].item, 2, "nearest by cosine");
        assert!((hits[0].score - 0.96).abs() < 1e-5);
    }
}

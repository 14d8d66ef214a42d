//! The review of one job, shared by every reviewer: corrections are stored in the blob store
//! under the job (`jobs/<job>/review/<collection>/<file>.json`: the label, who, when), the queue
//! state in coordination (a lease per image while a reviewer holds it), so any number of
//! reviewers, through any number of service replicas, work on one job without being shown the
//! same image twice. Labels are recomputed from the stored corrections on every request.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use sightline_blob::{BlobError, BlobStore, key_segment};
use sightline_clustering::dpc::SplitMix64;
use sightline_clustering::review::{self, Current, Params, Source, Strategy};
use sightline_coord::Coord;
use uuid::Uuid;

use super::load::{Loaded, load_job};
use crate::report::csv_field;

/// How long a reviewer holds the images of a queue page before others may be shown them.
pub const HOLD: Duration = Duration::from_secs(15 * 60);

/// A stored correction (or confirmation).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Correction {
    /// Collection.
    pub collection: String,
    /// File within the collection.
    pub file: String,
    /// `product` or `noise`.
    pub label: String,
    /// Who.
    pub reviewer: String,
    /// When (Unix ms).
    pub at_ms: u64,
}

/// One image of a reviewer's queue.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QueueItem {
    /// Index in the collection.
    pub index: usize,
    /// File within the collection.
    pub file: String,
    /// Current label (`product` or `noise`).
    pub label: String,
    /// How sure, in [0.5, 1].
    pub confidence: f32,
    /// What decided the label.
    pub source: Source,
    /// What decided the automatic label (`cluster`, `isolated`, `detect`, ...).
    pub decider: String,
    /// The pipeline's reason, for noise.
    pub reason: Option<String>,
}

/// Progress of one collection.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Progress {
    /// Collection.
    pub collection: String,
    /// Images under review (duplicates left out).
    pub images: usize,
    /// Reviewed.
    pub reviewed: usize,
    /// Labelled product now.
    pub product: usize,
    /// Labels changed from the pipeline's (reviewed or propagated).
    pub changed: usize,
    /// Expected precision of `product`: the mean confidence of the product labels (1 for the
    /// reviewed ones).
    pub estimated_precision: f64,
}

/// The review of one job.
pub struct ReviewService {
    blob: Arc<dyn BlobStore>,
    coord: Arc<dyn Coord>,
    job: Uuid,
    collections: BTreeMap<String, Loaded>,
    params: Params,
}

impl ReviewService {
    /// Loads `job`'s collections (its records, decision graphs and embeddings) from `blob`.
    pub async fn open(
        blob: Arc<dyn BlobStore>,
        coord: Arc<dyn Coord>,
        job: Uuid,
        params: Params,
    ) -> anyhow::Result<Self> {
        let records = sightline_runtime::records::read_records(blob.as_ref(), job)
            .await
            .with_context(|| format!("read the records of job {job}"))?;
        anyhow::ensure!(!records.is_empty(), "job {job} has no records");
        let collections = load_job(blob.as_ref(), job, &records, &params.rule, params.k).await?;
        Ok(Self { blob, coord, job, collections, params })
    }

    /// From collections already loaded.
    pub fn with_collections(
        blob: Arc<dyn BlobStore>,
        coord: Arc<dyn Coord>,
        job: Uuid,
        collections: BTreeMap<String, Loaded>,
        params: Params,
    ) -> Self {
        Self { blob, coord, job, collections, params }
    }

    /// The blob store.
    pub fn blob(&self) -> &dyn BlobStore {
        self.blob.as_ref()
    }

    /// The job.
    pub fn job(&self) -> Uuid {
        self.job
    }

    /// The collections, by name.
    pub fn collections(&self) -> &BTreeMap<String, Loaded> {
        &self.collections
    }

    fn loaded(&self, collection: &str) -> anyhow::Result<&Loaded> {
        self.collections.get(collection).with_context(|| format!("no collection {collection:?} in job {}", self.job))
    }

    fn prefix(&self, collection: &str) -> String {
        format!("jobs/{}/review/{}/", self.job, key_segment(collection))
    }

    fn lease_name(&self, collection: &str, index: usize) -> String {
        format!("review:{}:{}:{index}", self.job, key_segment(collection))
    }

    /// The stored corrections of `collection`, by item index (the latest per image).
    pub async fn corrections(&self, collection: &str) -> anyhow::Result<BTreeMap<usize, Correction>> {
        let l = self.loaded(collection)?;
        let mut out = BTreeMap::new();
        for key in self.blob.list(&self.prefix(collection)).await.context("list corrections")? {
            let bytes = match self.blob.get(&key).await {
                Ok(b) => b,
                Err(BlobError::NotFound(_)) => continue,
                Err(e) => return Err(e).context("read a correction"),
            };
            let c: Correction = serde_json::from_slice(&bytes).with_context(|| format!("correction {key}"))?;
            if let Some(i) = l.index_of(&c.file) {
                out.insert(i, c);
            }
        }
        Ok(out)
    }

    /// The current labels of `collection` and its corrections.
    pub async fn current(&self, collection: &str) -> anyhow::Result<(Vec<Current>, BTreeMap<usize, Correction>)> {
        let l = self.loaded(collection)?;
        let corrections = self.corrections(collection).await?;
        let reviews: BTreeMap<usize, bool> = corrections.iter().map(|(&i, c)| (i, c.label == "product")).collect();
        Ok((review::relabel(&l.collection, &l.graph, &reviews, &self.params), corrections))
    }

    /// Up to `n` images of `collection` for `reviewer`: the most uncertain not yet reviewed and
    /// not held by another reviewer, diversified; each is held for `reviewer` for [`HOLD`].
    pub async fn queue(&self, collection: &str, reviewer: &str, n: usize) -> anyhow::Result<Vec<QueueItem>> {
        let l = self.loaded(collection)?;
        let (current, corrections) = self.current(collection).await?;
        let mut held_by_others = BTreeSet::new();
        for i in 0..current.len() {
            if corrections.contains_key(&i) {
                continue;
            }
            let owner = self.coord.claimed(&self.lease_name(collection, i)).await.context("read holds")?;
            if owner.is_some_and(|o| o != reviewer) {
                held_by_others.insert(i);
            }
        }
        let skip = |i: usize| corrections.contains_key(&i) || held_by_others.contains(&i);
        let mut rng = SplitMix64(0);
        // A few more than asked: another reviewer may win some of them first.
        let ranked = review::queue(
            &current,
            &l.graph,
            &skip,
            (n + 16).min(current.len()),
            Strategy::Uncertainty,
            self.params.diversity,
            &mut rng,
        );
        let mut out = Vec::new();
        for i in ranked {
            if out.len() == n {
                break;
            }
            // Atomic: of two reviewers racing for an image, one gets it.
            if !self.coord.lease_acquire(&self.lease_name(collection, i), reviewer, HOLD).await.context("hold")? {
                continue;
            }
            let c = current[i];
            out.push(QueueItem {
                index: i,
                file: l.images[i].file.clone(),
                label: if c.product { "product" } else { "noise" }.into(),
                confidence: c.confidence,
                source: c.source,
                decider: l.collection.items[i].auto.decider.clone(),
                reason: l.images[i].reason.clone(),
            });
        }
        Ok(out)
    }

    /// Stores `reviewer`'s label for `file` and releases its hold. Returns the collection's
    /// progress after re-labelling.
    pub async fn correct(
        &self,
        collection: &str,
        file: &str,
        product: bool,
        reviewer: &str,
    ) -> anyhow::Result<Progress> {
        let l = self.loaded(collection)?;
        let index = l.index_of(file).with_context(|| format!("no image {file:?} under review in {collection:?}"))?;
        let c = Correction {
            collection: collection.to_owned(),
            file: file.to_owned(),
            label: if product { "product" } else { "noise" }.into(),
            reviewer: reviewer.to_owned(),
            at_ms: sightline_messages::now_ms(),
        };
        let key = format!("{}{}.json", self.prefix(collection), key_segment(file));
        self.blob.put(&key, Bytes::from(serde_json::to_vec(&c)?)).await.context("store the correction")?;
        self.coord.lease_release(&self.lease_name(collection, index), reviewer).await.context("release the hold")?;
        self.progress(collection).await
    }

    /// Progress of `collection`.
    pub async fn progress(&self, collection: &str) -> anyhow::Result<Progress> {
        let l = self.loaded(collection)?;
        let (current, corrections) = self.current(collection).await?;
        let products: Vec<&Current> = current.iter().filter(|c| c.product).collect();
        let changed = current.iter().zip(&l.collection.items).filter(|(c, i)| c.product != i.auto.product).count();
        Ok(Progress {
            collection: collection.to_owned(),
            images: current.len(),
            reviewed: corrections.len(),
            product: products.len(),
            changed,
            estimated_precision: if products.is_empty() {
                1.0
            } else {
                products.iter().map(|c| f64::from(c.confidence)).sum::<f64>() / products.len() as f64
            },
        })
    }

    /// The image's stored key, for thumbnails.
    pub fn image_key(&self, collection: &str, index: usize) -> Option<&str> {
        self.collections.get(collection)?.images.get(index)?.key.as_deref()
    }

    /// `labels.csv` with the review applied: `collection,file,label,cluster,duplicate_of,source,
    /// lineage,confidence,reviewer`; `source` is `auto` or `review`, `lineage` what decided the
    /// label (`auto:<decider>` (`auto:cluster`, `auto:isolated`, `auto:detect`, ...),
    /// `refit:<decider>`, `propagated`, `review`).
    pub async fn export_csv(&self) -> anyhow::Result<String> {
        let mut csv = String::from("collection,file,label,cluster,duplicate_of,source,lineage,confidence,reviewer\n");
        for (name, l) in &self.collections {
            let (current, corrections) = self.current(name).await?;
            for (i, (image, c)) in l.images.iter().zip(&current).enumerate() {
                let source = c.source.as_str();
                let lineage = match c.source {
                    Source::Auto | Source::Refit => format!("{source}:{}", l.collection.items[i].auto.decider),
                    Source::Review | Source::Propagated => source.to_owned(),
                };
                let _ = writeln!(
                    csv,
                    "{},{},{},{},,{},{lineage},{:.3},{}",
                    csv_field(name),
                    csv_field(&image.file),
                    if c.product { "product" } else { "noise" },
                    image.cluster.map(|c| c.to_string()).unwrap_or_default(),
                    if c.source == Source::Review { "review" } else { "auto" },
                    c.confidence,
                    csv_field(corrections.get(&i).map(|c| c.reviewer.as_str()).unwrap_or("")),
                );
            }
            for copy in &l.copies {
                // A copy is `duplicate`: its original's label decides its group.
                let _ = writeln!(
                    csv,
                    "{},{},duplicate,,{},auto,auto,,",
                    csv_field(name),
                    csv_field(&copy.file),
                    csv_field(copy.original.as_deref().unwrap_or("")),
                );
            }
        }
        Ok(csv)
    }
}

//! Catalogues as the index service serves them: a stored snapshot plus a delta.
//!
//! A catalogue is a collection the index stage indexed (entries under `index/<hex>/entries/`).
//! Searching a large one must not mean reading every entry and building an HNSW graph on the
//! query path, so a replica serves a catalogue in two parts:
//!
//! - the **snapshot**: a [`SearchIndex`] (items, vectors, and the HNSW graph once it has
//!   `ann_min` items) stored as one immutable blob per generation, `index/<hex>/search/gen-<n>.bin`,
//!   which `index/<hex>/search/manifest.json` names;
//! - the **delta**: the entries indexed since, loaded one by one and searched exactly.
//!
//! A query reads the catalogue's version counter in the coordination store (one Redis call), which
//! the index stage bumps for every entry it writes and the compactor for every snapshot it
//! publishes. Only when the version moved does the replica re-read the manifest (loading a new
//! generation), list the entry keys and load the entries that neither its snapshot nor its delta
//! holds yet. Every replica thus serves the same items, and none builds a graph on the query path.
//!
//! Compaction ([`Catalogs::compact`], run periodically by the `sightline-index` binary): when a
//! catalogue's delta reaches `snapshot_min` entries, one replica (holding a lease in the
//! coordination store) merges snapshot and delta, builds the graph, writes generation n + 1, then
//! the manifest, then bumps the version; the other replicas switch on their next query. The
//! previous generation is kept (a replica may still be reading it); older ones are deleted.
//!
//! Entries are never removed from a catalogue (there is no delete route); an entry re-indexed
//! under the same key keeps the version it was first loaded with.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sightline_blob::{BlobError, BlobStore, key_segment};
use sightline_coord::{Coord, CoordError};
use tracing::{debug, info};

use crate::search::{AnnParams, CatalogItem, DEFAULT_ANN_MIN, Match, SearchError, SearchIndex, SearchOptions};
use crate::{entries_prefix, load_entries};

/// Why a catalogue could not be loaded or compacted.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// Storage failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The coordination store failed.
    #[error(transparent)]
    Coord(#[from] CoordError),
    /// The stored snapshot or an entry is unusable.
    #[error("catalogue {catalog:?}: {detail}")]
    Corrupt {
        /// The catalogue.
        catalog: String,
        /// What is wrong.
        detail: String,
    },
}

impl CatalogError {
    fn corrupt(catalog: &str, detail: impl std::fmt::Display) -> Self {
        Self::Corrupt { catalog: catalog.to_owned(), detail: detail.to_string() }
    }
}

/// How catalogues are snapshotted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogConfig {
    /// A snapshot gets an HNSW graph once it has this many items (smaller ones are searched
    /// exactly).
    pub ann_min: usize,
    /// The graph's parameters.
    pub ann: AnnParams,
    /// Compaction writes a new snapshot once the delta has this many entries.
    pub snapshot_min: usize,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        Self { ann_min: DEFAULT_ANN_MIN, ann: AnnParams::default(), snapshot_min: DEFAULT_SNAPSHOT_MIN }
    }
}

/// Delta size at which a catalogue is snapshotted by default.
pub const DEFAULT_SNAPSHOT_MIN: usize = 256;
/// How long a compaction may hold a catalogue's lease (a graph over 10^6 vectors takes about an
/// hour to build on two cores; a replica that dies mid-build blocks others this long).
pub const COMPACTION_LEASE: Duration = Duration::from_secs(3 * 3600);

/// The coordination counter that moves whenever catalogue `catalog` changes.
pub fn version_key(catalog: &str) -> String {
    format!("search:{}:version", key_segment(catalog))
}

/// Where catalogue `catalog`'s manifest is stored.
pub fn manifest_key(catalog: &str) -> String {
    format!("index/{}/search/manifest.json", key_segment(catalog))
}

/// Where generation `generation` of catalogue `catalog`'s snapshot is stored.
pub fn generation_key(catalog: &str, generation: u64) -> String {
    format!("index/{}/search/gen-{generation:08}.bin", key_segment(catalog))
}

fn lease_name(catalog: &str) -> String {
    format!("search-snapshot:{}", key_segment(catalog))
}

/// The stored manifest: which snapshot generation is current.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The current generation (its blob is [`generation_key`]).
    pub generation: u64,
    /// Items in that snapshot.
    pub items: usize,
    /// Whether it carries an HNSW graph.
    pub ann: bool,
    /// How long merging and building it took.
    pub build_ms: u64,
}

/// One catalogue as this replica serves it.
#[derive(Debug)]
pub struct CatalogView {
    /// The catalogue's version counter when this view was loaded.
    pub version: i64,
    /// The snapshot generation (0: none stored yet).
    pub generation: u64,
    /// The stored snapshot (empty when none).
    pub snapshot: Arc<SearchIndex>,
    /// The entries indexed after the snapshot, searched exactly.
    pub delta: Arc<SearchIndex>,
}

/// One ranked item of a catalogue.
#[derive(Debug, Clone, PartialEq)]
pub struct Found<'a> {
    /// The item.
    pub item: &'a CatalogItem,
    /// Its scores (its `index` is within the part it came from).
    pub score: Match,
}

impl CatalogView {
    /// Items in snapshot and delta.
    pub fn len(&self) -> usize {
        self.snapshot.len() + self.delta.len()
    }

    /// Whether it has no items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The vectors' dimension (0 when empty).
    pub fn dim(&self) -> usize {
        if self.snapshot.is_empty() { self.delta.dim() } else { self.snapshot.dim() }
    }

    /// Every item, snapshot first.
    pub fn items(&self) -> impl Iterator<Item = &CatalogItem> {
        self.snapshot.items().iter().chain(self.delta.items())
    }

    /// The `opts.k` best items over snapshot and delta, best first (each part ranked and
    /// re-ranked with the text as [`SearchIndex::search`] does, then merged by score).
    pub fn search(&self, vector: &[f32], text: &str, opts: &SearchOptions) -> Vec<Found<'_>> {
        let mut out: Vec<Found<'_>> = Vec::new();
        for part in [&self.snapshot, &self.delta] {
            if part.is_empty() || part.dim() != vector.len() {
                continue;
            }
            out.extend(
                part.search(vector, text, opts).into_iter().map(|m| Found { item: &part.items()[m.index], score: m }),
            );
        }
        out.sort_by(|a, b| b.score.score.total_cmp(&a.score.score).then_with(|| a.item.name.cmp(&b.item.name)));
        out.truncate(opts.k);
        out
    }
}

/// What a compaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compaction {
    /// The delta is below `snapshot_min` (or empty): nothing to do.
    Small {
        /// Entries in the delta.
        delta: usize,
    },
    /// Another replica holds the catalogue's lease.
    Busy,
    /// A new generation was published.
    Published(Manifest),
}

/// The catalogues one replica serves, shared by its index stage (queries) and its API.
#[derive(Debug, Default)]
pub struct Catalogs {
    config: CatalogConfig,
    views: Mutex<HashMap<String, Arc<CatalogView>>>,
    /// One refresh at a time per catalogue, so that concurrent queries load a change once.
    refreshing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Catalogues this replica served or was asked to fill: the ones it compacts.
    known: Mutex<BTreeSet<String>>,
}

fn poisoned() -> CatalogError {
    CatalogError::corrupt("*", "a catalogue lock was poisoned by a panic")
}

impl Catalogs {
    /// Catalogues served with `config`.
    pub fn new(config: CatalogConfig) -> Self {
        Self { config, ..Self::default() }
    }

    /// The configuration.
    pub fn config(&self) -> CatalogConfig {
        self.config
    }

    /// Remembers `catalog` for compaction (the API calls this when items are uploaded to it).
    pub fn track(&self, catalog: &str) {
        if let Ok(mut known) = self.known.lock() {
            known.insert(catalog.to_owned());
        }
    }

    /// The catalogues this replica compacts.
    pub fn tracked(&self) -> Vec<String> {
        self.known.lock().map(|k| k.iter().cloned().collect()).unwrap_or_default()
    }

    fn cached(&self, catalog: &str) -> Result<Option<Arc<CatalogView>>, CatalogError> {
        Ok(self.views.lock().map_err(|_| poisoned())?.get(catalog).cloned())
    }

    /// Catalogue `catalog` as of now: the cached view when its version did not move, else the
    /// cached view brought up to date (a new generation loaded, new entries added to the delta).
    pub async fn view(
        &self,
        blob: &dyn BlobStore,
        coord: &dyn Coord,
        catalog: &str,
    ) -> Result<Arc<CatalogView>, CatalogError> {
        self.track(catalog);
        // Read before listing: a change after this read moves the version again, so the next
        // query refreshes.
        let version = coord.counter_add(&version_key(catalog), 0).await?;
        if let Some(v) = self.cached(catalog)?
            && v.version == version
        {
            return Ok(v);
        }
        let gate = self.refreshing.lock().map_err(|_| poisoned())?.entry(catalog.to_owned()).or_default().clone();
        let _refreshing = gate.lock().await;
        let previous = self.cached(catalog)?;
        if let Some(v) = &previous
            && v.version == version
        {
            return Ok(v.clone());
        }
        let started = Instant::now();
        let view = Arc::new(self.refresh(blob, catalog, version, previous.as_deref()).await?);
        debug!(
            catalog,
            version,
            generation = view.generation,
            snapshot = view.snapshot.len(),
            delta = view.delta.len(),
            ms = started.elapsed().as_millis() as u64,
            "catalogue refreshed"
        );
        self.views.lock().map_err(|_| poisoned())?.insert(catalog.to_owned(), view.clone());
        Ok(view)
    }

    async fn refresh(
        &self,
        blob: &dyn BlobStore,
        catalog: &str,
        version: i64,
        previous: Option<&CatalogView>,
    ) -> Result<CatalogView, CatalogError> {
        let manifest = read_manifest(blob, catalog).await?;
        let (generation, snapshot) = match (&manifest, previous) {
            (Some(m), Some(p)) if m.generation == p.generation => (p.generation, p.snapshot.clone()),
            (Some(m), _) => (m.generation, Arc::new(load_generation(blob, catalog, m.generation).await?)),
            (None, _) => (0, Arc::new(SearchIndex::new(0))),
        };
        let covered: HashSet<&str> = snapshot.entries().iter().map(String::as_str).collect();
        let keys = blob.list(&entries_prefix(catalog)).await?;
        let pending: Vec<&String> = keys.iter().filter(|k| !covered.contains(k.as_str())).collect();
        // Entries the previous delta already holds are kept; only the others are fetched.
        let mut reuse: HashMap<&str, usize> = HashMap::new();
        if let Some(p) = previous {
            reuse.extend(p.delta.entries().iter().enumerate().map(|(i, k)| (k.as_str(), i)));
        }
        let fetch: Vec<String> =
            pending.iter().filter(|k| !reuse.contains_key(k.as_str())).map(|k| (*k).clone()).collect();
        let fetched = load_entries(blob, &fetch).await?;
        let mut fetched: HashMap<String, (CatalogItem, Vec<f32>)> =
            fetched.into_iter().map(|(key, entry, v)| (key, (CatalogItem::from_entry(&entry), v))).collect();
        let dim = match (snapshot.dim(), fetched.values().next(), previous) {
            (d, _, _) if d > 0 && !snapshot.is_empty() => d,
            (_, Some((_, v)), _) => v.len(),
            (_, None, Some(p)) => p.delta.dim(),
            _ => 0,
        };
        let mut delta = SearchIndex::new(dim);
        for key in pending {
            let (item, vector) = match (reuse.get(key.as_str()), previous) {
                (Some(&i), Some(p)) => (p.delta.items()[i].clone(), p.delta.vector(i).to_vec()),
                _ => match fetched.remove(key.as_str()) {
                    Some(found) => found,
                    None => continue,
                },
            };
            delta
                .add_entry(item, &vector, key.clone())
                .map_err(|e| CatalogError::corrupt(catalog, format!("{key}: {e}")))?;
        }
        Ok(CatalogView { version, generation, snapshot, delta: Arc::new(delta) })
    }

    /// Writes a new snapshot of `catalog` when its delta has at least `snapshot_min` entries and
    /// no other replica is writing one; `owner` names this replica in the lease.
    pub async fn compact(
        &self,
        blob: &dyn BlobStore,
        coord: &dyn Coord,
        catalog: &str,
        owner: &str,
    ) -> Result<Compaction, CatalogError> {
        let view = self.view(blob, coord, catalog).await?;
        if view.delta.is_empty() || view.delta.len() < self.config.snapshot_min {
            return Ok(Compaction::Small { delta: view.delta.len() });
        }
        let lease = lease_name(catalog);
        if !coord.lease_acquire(&lease, owner, COMPACTION_LEASE).await? {
            return Ok(Compaction::Busy);
        }
        let result = self.publish(blob, coord, catalog, view).await;
        if let Err(e) = coord.lease_release(&lease, owner).await {
            tracing::warn!(catalog, error = %e, "release the snapshot lease");
        }
        result
    }

    async fn publish(
        &self,
        blob: &dyn BlobStore,
        coord: &dyn Coord,
        catalog: &str,
        view: Arc<CatalogView>,
    ) -> Result<Compaction, CatalogError> {
        // Another replica may have published while this one waited for the lease.
        let current = read_manifest(blob, catalog).await?.map_or(0, |m| m.generation);
        if current != view.generation {
            return Ok(Compaction::Busy);
        }
        let config = self.config;
        let started = Instant::now();
        let name = catalog.to_owned();
        let (items, ann, bytes) = tokio::task::spawn_blocking(move || -> Result<_, SearchError> {
            let dim = if view.snapshot.is_empty() { view.delta.dim() } else { view.snapshot.dim() };
            let mut merged = SearchIndex::new(dim);
            merged.extend_from(&view.snapshot)?;
            merged.extend_from(&view.delta)?;
            merged.build(config.ann, config.ann_min)?;
            Ok((merged.len(), merged.uses_ann(), merged.to_bytes()?))
        })
        .await
        .map_err(|e| CatalogError::corrupt(&name, format!("snapshot build task: {e}")))?
        .map_err(|e| CatalogError::corrupt(&name, e))?;
        let manifest = Manifest { generation: current + 1, items, ann, build_ms: started.elapsed().as_millis() as u64 };
        blob.put(&generation_key(catalog, manifest.generation), Bytes::from(bytes)).await?;
        let json = serde_json::to_vec(&manifest).map_err(|e| CatalogError::corrupt(catalog, e))?;
        blob.put(&manifest_key(catalog), Bytes::from(json)).await?;
        coord.counter_add(&version_key(catalog), 1).await?;
        if manifest.generation >= 3 {
            // Keep the previous generation for replicas still loading it.
            let old = generation_key(catalog, manifest.generation - 2);
            if let Err(e) = blob.delete(&old).await {
                debug!(catalog, key = old, error = %e, "delete an old snapshot");
            }
        }
        info!(
            catalog,
            generation = manifest.generation,
            items,
            ann,
            build_ms = manifest.build_ms,
            "snapshot published"
        );
        Ok(Compaction::Published(manifest))
    }
}

async fn read_manifest(blob: &dyn BlobStore, catalog: &str) -> Result<Option<Manifest>, CatalogError> {
    match blob.get(&manifest_key(catalog)).await {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| CatalogError::corrupt(catalog, format!("manifest: {e}"))),
        Err(BlobError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn load_generation(blob: &dyn BlobStore, catalog: &str, generation: u64) -> Result<SearchIndex, CatalogError> {
    let bytes = blob.get(&generation_key(catalog, generation)).await?;
    let name = catalog.to_owned();
    tokio::task::spawn_blocking(move || SearchIndex::from_bytes(&bytes))
        .await
        .map_err(|e| CatalogError::corrupt(&name, format!("snapshot load task: {e}")))?
        .map_err(|e| CatalogError::corrupt(&name, format!("generation {generation}: {e}")))
}

#[cfg(test)]
mod tests {
    use sightline_runtime::Ctx;

    use super::*;
    use crate::IndexStage;
    use crate::query::tests::{names, put_vector, run_on, task, with_options};

    async fn add(stage: &IndexStage, ctx: &Ctx, item: u64, v: [f32; 2]) {
        let key = format!("embeddings/cat/{item}.f32");
        put_vector(ctx.blob.as_ref(), &key, v).await;
        run_on(stage, ctx, task(1, item, "shop", &key, "")).await.expect("index");
    }

    #[tokio::test]
    async fn replicas_share_stored_snapshots_and_search_the_delta_beside_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blob: Arc<dyn BlobStore> = Arc::new(sightline_blob::LocalStore::new(dir.path()).expect("store"));
        let coord: Arc<dyn Coord> = Arc::new(sightline_coord::MemoryCoord::new());
        let ctx = Ctx { blob: blob.clone(), coord: coord.clone() };
        let config = CatalogConfig { ann_min: 4, snapshot_min: 3, ..CatalogConfig::default() };
        let (a, b) =
            (IndexStage::new(Arc::new(Catalogs::new(config))), IndexStage::new(Arc::new(Catalogs::new(config))));
        let (blob, coord) = (blob.as_ref(), coord.as_ref());
        for i in 0..6u64 {
            let angle = i as f32 * 0.25;
            add(&a, &ctx, i, [angle.cos(), angle.sin()]).await;
        }

        // Replica a snapshots the six entries: generation 1, with a graph (ann_min 4).
        let published = a.catalogs().compact(blob, coord, "shop", "a").await.expect("compact");
        let Compaction::Published(m) = published else { panic!("expected a snapshot, got {published:?}") };
        assert_eq!((m.generation, m.items, m.ann), (1, 6, true));
        blob.get(&manifest_key("shop")).await.expect("manifest stored");
        blob.get(&generation_key("shop", 1)).await.expect("generation 1 stored");

        // Replica b never saw the catalogue: it loads the snapshot and has nothing to add.
        let vb = b.catalogs().view(blob, coord, "shop").await.expect("view");
        assert_eq!((vb.generation, vb.snapshot.len(), vb.delta.len()), (1, 6, 0));
        assert!(vb.snapshot.uses_ann(), "the stored graph is loaded, not rebuilt");

        // An entry indexed after the snapshot is in every replica's delta, and both answer alike.
        add(&a, &ctx, 6, [0.0, -1.0]).await;
        let vb = b.catalogs().view(blob, coord, "shop").await.expect("view");
        assert_eq!((vb.generation, vb.snapshot.len(), vb.delta.len()), (1, 6, 1));
        put_vector(blob, "embeddings/q/0.f32", [0.05, -0.998]).await;
        let query = task(2, 0, "query", "embeddings/q/0.f32", "");
        let query = with_options(
            query,
            &[(sightline_messages::options::SEARCH_CATALOG, "shop"), (sightline_messages::options::SEARCH_K, "3")],
        );
        let (ra, rb) = (
            run_on(&a, &ctx, query.clone()).await.expect("query on a"),
            run_on(&b, &ctx, query).await.expect("query on b"),
        );
        assert_eq!(names(&ra), names(&rb), "replicas agree");
        assert_eq!(names(&ra), ["6.jpg", "0.jpg", "1.jpg"], "the delta's item first, then the snapshot's");

        // Below snapshot_min nothing is written; a lease held elsewhere blocks compaction.
        assert_eq!(
            a.catalogs().compact(blob, coord, "shop", "a").await.expect("compact"),
            Compaction::Small { delta: 1 }
        );
        add(&b, &ctx, 7, [-1.0, 0.0]).await;
        add(&b, &ctx, 8, [-0.9, 0.1]).await;
        assert!(coord.lease_acquire(&lease_name("shop"), "other", Duration::from_secs(60)).await.expect("lease"));
        assert_eq!(a.catalogs().compact(blob, coord, "shop", "a").await.expect("compact"), Compaction::Busy);
        assert!(coord.lease_release(&lease_name("shop"), "other").await.expect("release"));

        // Generation 2 holds all nine; replica b switches to it, and generation 1 is kept.
        let published = b.catalogs().compact(blob, coord, "shop", "b").await.expect("compact");
        assert!(matches!(&published, Compaction::Published(m) if m.generation == 2 && m.items == 9), "{published:?}");
        let va = a.catalogs().view(blob, coord, "shop").await.expect("view");
        assert_eq!((va.generation, va.snapshot.len(), va.delta.len()), (2, 9, 0));
        assert_eq!(va.items().filter(|i| i.name == "6.jpg").count(), 1, "an entry is in one part only");
        blob.get(&generation_key("shop", 1)).await.expect("the previous generation is kept");
    }
}

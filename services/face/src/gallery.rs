//! Persons across the images of a job, for the stage.
//!
//! The job's frontal faces form a gallery in storage (`jobs/<job>/faces/gallery/<item>-<face>.json`:
//! person id and embedding). A frontal face joins the person of its most similar gallery face
//! when the similarity reaches the link threshold, else it gets the next free id (one more than
//! the largest in the gallery); gallery updates hold a per-job lease so that two workers can
//! neither both create a person for the same individual nor hand out the same id. Non-frontal
//! faces only read the gallery. Idempotent: a face already in the gallery keeps its person, and
//! a non-frontal face's decision is claimed once (`face:person:<job>:<item>:<face>`). Workers
//! cache the gallery entries they have read (entries never change).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sightline_coord::JOB_TTL;
use sightline_runtime::{Ctx, StageError};
use tracing::warn;
use uuid::Uuid;

use crate::persons::{Assignment, GalleryEntry, PersonConfig, assign_among};

/// The prefix of a job's gallery of frontal faces.
pub fn gallery_prefix(job: Uuid) -> String {
    format!("jobs/{job}/faces/gallery/")
}

/// The gallery entry of face `face` of `item`.
pub fn gallery_key(job: Uuid, item: u64, face: usize) -> String {
    format!("jobs/{job}/faces/gallery/{item:010}-{face:03}.json")
}

/// A gallery entry as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct GalleryFile {
    person: u64,
    embedding: Vec<f32>,
}

/// The gallery entries of one job that this worker has read, by key. A handler holds its
/// job's gallery for its whole run, so evicting it from the cache never pulls entries from
/// under a handler.
type JobGallery = Arc<Mutex<BTreeMap<String, GalleryEntry>>>;

/// A cached gallery and when it was last used.
struct Cached {
    gallery: JobGallery,
    used: Instant,
}

fn lock(g: &JobGallery) -> std::sync::MutexGuard<'_, BTreeMap<String, GalleryEntry>> {
    g.lock().unwrap_or_else(|p| p.into_inner())
}

/// Jobs whose galleries a worker keeps in memory at once.
const CACHED_JOBS: usize = 16;
/// How long a gallery update may hold the job's lease.
const LEASE_TTL: Duration = Duration::from_secs(60);
/// How long a handler waits for the lease before retrying later.
const LEASE_WAIT: Duration = Duration::from_secs(30);

/// Gives faces their persons within a job (one per worker; see the module documentation).
pub struct PersonAssigner {
    persons: PersonConfig,
    galleries: Mutex<HashMap<Uuid, Cached>>,
    /// Test knob: how long a gallery update sleeps between deciding and storing (widens races).
    hold: Duration,
}

impl std::fmt::Debug for PersonAssigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersonAssigner").field("persons", &self.persons).finish_non_exhaustive()
    }
}

impl PersonAssigner {
    /// An assigner with the person rule's thresholds.
    pub fn new(persons: PersonConfig) -> Self {
        Self { persons, galleries: Mutex::new(HashMap::new()), hold: Duration::ZERO }
    }

    /// The gallery of `job` (cached; the least recently used job is forgotten beyond
    /// [`CACHED_JOBS`]).
    fn gallery(&self, job: Uuid) -> JobGallery {
        let mut all = self.galleries.lock().unwrap_or_else(|p| p.into_inner());
        if !all.contains_key(&job)
            && all.len() >= CACHED_JOBS
            && let Some(old) = all.iter().min_by_key(|(_, c)| c.used).map(|(k, _)| *k)
        {
            all.remove(&old);
        }
        let c = all.entry(job).or_insert_with(|| Cached { gallery: JobGallery::default(), used: Instant::now() });
        c.used = Instant::now();
        c.gallery.clone()
    }

    /// Reads the entries of `job`'s gallery that `g` does not hold yet.
    async fn refresh(&self, ctx: &Ctx, job: Uuid, g: &JobGallery) -> Result<(), StageError> {
        let keys = ctx.blob.list(&gallery_prefix(job)).await?;
        let missing: Vec<String> = {
            let entries = lock(g);
            keys.into_iter().filter(|k| !entries.contains_key(k)).collect()
        };
        for chunk in missing.chunks(32) {
            let reads = futures::future::join_all(chunk.iter().map(|k| ctx.blob.get(k))).await;
            let mut parsed = Vec::with_capacity(chunk.len());
            for (key, bytes) in chunk.iter().zip(reads) {
                let file: GalleryFile = serde_json::from_slice(&bytes?)
                    .map_err(|e| StageError::permanent(format!("face gallery entry {key} is malformed: {e}")))?;
                parsed.push((key.clone(), GalleryEntry { person: file.person, embedding: file.embedding }));
            }
            lock(g).extend(parsed);
        }
        Ok(())
    }

    async fn acquire(&self, ctx: &Ctx, lease: &str, owner: &str) -> Result<(), StageError> {
        let start = Instant::now();
        let mut attempt: u64 = 0;
        while !ctx.coord.lease_acquire(lease, owner, LEASE_TTL).await? {
            if start.elapsed() > LEASE_WAIT {
                return Err(StageError::transient(format!("{lease} is busy; retrying later")));
            }
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(10 + (attempt % 5) * 15)).await;
        }
        Ok(())
    }

    /// Gives the frontal faces of an image their persons (creating persons as needed) under the
    /// job's lease.
    async fn assign_frontal(
        &self,
        ctx: &Ctx,
        (job, item): (Uuid, u64),
        faces: &[(&[f32], bool)],
        g: &JobGallery,
        out: &mut [Option<u64>],
    ) -> Result<(), StageError> {
        let frontal: Vec<usize> = (0..faces.len()).filter(|&i| faces[i].1).collect();
        if frontal.is_empty() {
            return Ok(());
        }
        self.refresh(ctx, job, g).await?;
        let known = {
            let entries = lock(g);
            frontal.iter().all(|&i| entries.contains_key(&gallery_key(job, item, i)))
        };
        if !known {
            let lease = format!("face:gallery:{job}");
            let owner = Uuid::new_v4().to_string();
            self.acquire(ctx, &lease, &owner).await?;
            let result = self.assign_locked(ctx, (job, item), faces, &frontal, g).await;
            if let Err(e) = ctx.coord.lease_release(&lease, &owner).await {
                warn!(job = %job, error = %e, "face gallery lease not released; it expires on its own");
            }
            result?;
        }
        let entries = lock(g);
        for &i in &frontal {
            out[i] = entries.get(&gallery_key(job, item, i)).map(|e| e.person);
        }
        Ok(())
    }

    async fn assign_locked(
        &self,
        ctx: &Ctx,
        (job, item): (Uuid, u64),
        faces: &[(&[f32], bool)],
        frontal: &[usize],
        g: &JobGallery,
    ) -> Result<(), StageError> {
        // Under the lease, with every entry read: decisions see all persons, and one more than
        // the largest id is free.
        self.refresh(ctx, job, g).await?;
        for &i in frontal {
            let key = gallery_key(job, item, i);
            let person = {
                let entries = lock(g);
                if entries.contains_key(&key) {
                    continue;
                }
                match assign_among(entries.values(), faces[i].0, true, &self.persons) {
                    Assignment::Existing(p, _) => p,
                    _ => entries.values().map(|e| e.person).max().unwrap_or(0) + 1,
                }
            };
            if !self.hold.is_zero() {
                tokio::time::sleep(self.hold).await;
            }
            let file = GalleryFile { person, embedding: faces[i].0.to_vec() };
            let bytes =
                serde_json::to_vec(&file).map_err(|e| StageError::permanent(format!("encode gallery entry: {e}")))?;
            ctx.blob.put(&key, Bytes::from(bytes)).await?;
            lock(g).insert(key, GalleryEntry { person, embedding: file.embedding });
        }
        Ok(())
    }

    /// Person ids for the faces `(embedding, frontal)` of image `item` of `job`, in order.
    pub async fn assign(
        &self,
        ctx: &Ctx,
        job: Uuid,
        item: u64,
        faces: &[(&[f32], bool)],
    ) -> Result<Vec<Option<u64>>, StageError> {
        let mut out = vec![None; faces.len()];
        if faces.is_empty() {
            return Ok(out);
        }
        let g = self.gallery(job);
        self.assign_frontal(ctx, (job, item), faces, &g, &mut out).await?;
        let others: Vec<usize> = (0..faces.len()).filter(|&i| !faces[i].1).collect();
        if others.is_empty() {
            return Ok(out);
        }
        self.refresh(ctx, job, &g).await?;
        for i in others {
            let decision = assign_among(lock(&g).values(), faces[i].0, false, &self.persons);
            let value = match decision {
                Assignment::Existing(p, _) => p.to_string(),
                _ => "none".to_owned(),
            };
            // The first decision sticks, so a re-run gives the same answer.
            let claim = format!("face:person:{job}:{item}:{i}");
            let value = ctx.coord.claim(&claim, &value, JOB_TTL).await?.unwrap_or(value);
            out[i] = value.parse().ok();
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_blob::{BlobStore, LocalStore};
    use sightline_coord::MemoryCoord;

    fn unit(i: usize) -> Vec<f32> {
        let mut v = vec![0.0; 8];
        v[i] = 1.0;
        v
    }

    fn ctx(dir: &std::path::Path) -> (Ctx, Arc<dyn BlobStore>) {
        let blob: Arc<dyn BlobStore> = Arc::new(LocalStore::new(dir).expect("store"));
        (Ctx { blob: blob.clone(), coord: Arc::new(MemoryCoord::new()) }, blob)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_workers_never_share_an_id_between_people() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ctx, _) = ctx(dir.path());
        // Two workers whose gallery updates take long enough to overlap.
        let hold = Duration::from_millis(50);
        let a = PersonAssigner { hold, ..PersonAssigner::new(PersonConfig::default()) };
        let b = PersonAssigner { hold, ..PersonAssigner::new(PersonConfig::default()) };
        let job = Uuid::new_v4();
        let (x, y) = (unit(0), unit(1));
        let fx: [(&[f32], bool); 1] = [(&x, true)];
        let fy: [(&[f32], bool); 1] = [(&y, true)];
        let (pa, pb) = tokio::join!(a.assign(&ctx, job, 0, &fx), b.assign(&ctx, job, 1, &fy));
        let (pa, pb) = (pa.expect("assign"), pb.expect("assign"));
        assert_ne!(pa, pb, "two people at once get two ids");
        let mut ids = vec![pa[0], pb[0]];
        ids.sort_unstable();
        assert_eq!(ids, vec![Some(1), Some(2)]);
        // The same person at once on both workers: one id.
        let (p2, p3) = tokio::join!(a.assign(&ctx, job, 2, &fx), b.assign(&ctx, job, 3, &fx));
        assert_eq!(p2.expect("assign"), pa);
        assert_eq!(p3.expect("assign"), pa);
    }

    #[tokio::test]
    async fn repeats_are_stable_and_non_frontal_faces_attach_or_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ctx, blob) = ctx(dir.path());
        let w = PersonAssigner::new(PersonConfig::default());
        let job = Uuid::new_v4();
        let (x, y) = (unit(0), unit(1));
        let first = w.assign(&ctx, job, 0, &[(&x, true), (&y, false)]).await.expect("assign");
        assert_eq!(first, vec![Some(1), None], "a non-frontal stranger has no person");
        // A later non-frontal face like x attaches to x's person.
        assert_eq!(w.assign(&ctx, job, 1, &[(&x, false)]).await.expect("assign"), vec![Some(1)]);
        // Re-running item 0 (a redelivered message) gives the same answer, on this worker and
        // on a fresh one, even after y became a frontal person.
        assert_eq!(w.assign(&ctx, job, 2, &[(&y, true)]).await.expect("assign"), vec![Some(2)]);
        assert_eq!(w.assign(&ctx, job, 0, &[(&x, true), (&y, false)]).await.expect("again"), first);
        let fresh = PersonAssigner::new(PersonConfig::default());
        assert_eq!(fresh.assign(&ctx, job, 0, &[(&x, true), (&y, false)]).await.expect("again"), first);
        assert_eq!(blob.list(&gallery_prefix(job)).await.expect("list").len(), 2, "only frontal faces are stored");
        // Another job starts from 1 again.
        assert_eq!(w.assign(&ctx, Uuid::new_v4(), 0, &[(&y, true)]).await.expect("assign"), vec![Some(1)]);
        assert!(w.assign(&ctx, job, 9, &[]).await.expect("empty").is_empty());
    }
}

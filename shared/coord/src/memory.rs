//! In-memory coordination (embedded mode, component tests).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::near::{self, BANDS};
use crate::{Coord, CoordError, FINAL_SCOPE, JobStatus, NearKey, NearMatch, Tally};

#[derive(Default)]
struct Job {
    kind: String,
    started_ms: u64,
    totals: BTreeMap<String, u64>,
    /// scope -> item -> (collection, outcome)
    scopes: HashMap<String, HashMap<u64, (String, String)>>,
}

/// One near-duplicate index: entries in insertion order, filed by band value.
struct NearIndex {
    entries: Vec<(u64, String)>,
    ids: HashMap<String, usize>,
    buckets: HashMap<(usize, u16), Vec<usize>>,
    expires: Instant,
}

impl NearIndex {
    fn new() -> Self {
        Self { entries: Vec::new(), ids: HashMap::new(), buckets: HashMap::new(), expires: Instant::now() }
    }
}

#[derive(Default)]
struct State {
    near: HashMap<String, NearIndex>,
    done: HashMap<String, Instant>,
    jobs: HashMap<String, Job>,
    counters: HashMap<String, i64>,
    claims: HashMap<String, (String, Instant)>,
}

/// Coordination held in memory.
#[derive(Default)]
pub struct MemoryCoord {
    state: Mutex<State>,
}

impl MemoryCoord {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Coord for MemoryCoord {
    async fn is_done(&self, id: &str) -> Result<bool, CoordError> {
        Ok(self.state.lock().done.get(id).is_some_and(|exp| *exp > Instant::now()))
    }

    async fn mark_done(&self, id: &str, ttl: Duration) -> Result<(), CoordError> {
        self.state.lock().done.insert(id.to_owned(), Instant::now() + ttl);
        Ok(())
    }

    async fn job_start(
        &self,
        job: &str,
        kind: &str,
        totals: &BTreeMap<String, u64>,
        now_ms: u64,
    ) -> Result<bool, CoordError> {
        let mut state = self.state.lock();
        if state.jobs.contains_key(job) {
            return Ok(false);
        }
        state.jobs.insert(
            job.to_owned(),
            Job { kind: kind.to_owned(), started_ms: now_ms, totals: totals.clone(), scopes: HashMap::new() },
        );
        Ok(true)
    }

    async fn tally(
        &self,
        job: &str,
        scope: &str,
        item: u64,
        collection: &str,
        outcome: &str,
    ) -> Result<Tally, CoordError> {
        let mut state = self.state.lock();
        let j = state.jobs.entry(job.to_owned()).or_default();
        let total = j.totals.values().sum();
        let collection_total = j.totals.get(collection).copied().unwrap_or(0);
        let items = j.scopes.entry(scope.to_owned()).or_default();
        let first = items.insert(item, (collection.to_owned(), outcome.to_owned())).is_none();
        let finished = items.len() as u64;
        let collection_finished = items.values().filter(|(c, _)| c == collection).count() as u64;
        Ok(Tally { first, finished, total, collection_finished, collection_total })
    }

    async fn job_status(&self, job: &str) -> Result<Option<JobStatus>, CoordError> {
        let state = self.state.lock();
        let Some(j) = state.jobs.get(job) else { return Ok(None) };
        let empty = HashMap::new();
        let items = j.scopes.get(FINAL_SCOPE).unwrap_or(&empty);
        let mut outcomes = BTreeMap::new();
        let mut collections: BTreeMap<String, (u64, u64)> =
            j.totals.iter().map(|(c, t)| (c.clone(), (0, *t))).collect();
        for (collection, outcome) in items.values() {
            *outcomes.entry(outcome.clone()).or_insert(0) += 1;
            collections.entry(collection.clone()).or_insert((0, 0)).0 += 1;
        }
        Ok(Some(JobStatus {
            job_id: job.to_owned(),
            kind: j.kind.clone(),
            total: j.totals.values().sum(),
            finished: items.len() as u64,
            outcomes,
            collections,
            started_ms: j.started_ms,
        }))
    }

    async fn counter_add(&self, key: &str, delta: i64) -> Result<i64, CoordError> {
        let mut state = self.state.lock();
        let v = state.counters.entry(key.to_owned()).or_insert(0);
        *v += delta;
        Ok(*v)
    }

    async fn claim(&self, key: &str, value: &str, ttl: Duration) -> Result<Option<String>, CoordError> {
        let mut state = self.state.lock();
        let now = Instant::now();
        match state.claims.get(key) {
            Some((existing, exp)) if *exp > now => Ok(Some(existing.clone())),
            _ => {
                state.claims.insert(key.to_owned(), (value.to_owned(), now + ttl));
                Ok(None)
            }
        }
    }

    async fn claimed(&self, key: &str) -> Result<Option<String>, CoordError> {
        let state = self.state.lock();
        Ok(state.claims.get(key).filter(|(_, exp)| *exp > Instant::now()).map(|(v, _)| v.clone()))
    }

    async fn claim_near(
        &self,
        index: &str,
        key: NearKey,
        id: &str,
        value: &str,
        max_distance: u32,
        ttl: Duration,
    ) -> Result<Option<NearMatch>, CoordError> {
        let max_distance = near::clamp(max_distance);
        let mut state = self.state.lock();
        let now = Instant::now();
        let idx = state.near.entry(index.to_owned()).or_insert_with(NearIndex::new);
        if idx.expires <= now {
            *idx = NearIndex::new();
        }
        if idx.ids.contains_key(id) {
            return Ok(None);
        }
        let hash = key.hash;
        // (distance, insertion order) of the best candidate, and whether through the alternate.
        let mut best: Option<(u32, usize, bool)> = None;
        let lookups = std::iter::once(hash).chain(key.alternate);
        for probe in lookups.flat_map(|h| near::probes(h, max_distance)) {
            for &i in idx.buckets.get(&probe).map(Vec::as_slice).unwrap_or(&[]) {
                let own = (idx.entries[i].0 ^ hash).count_ones();
                let alt = key.alternate.map_or(u32::MAX, |a| (idx.entries[i].0 ^ a).count_ones());
                let d = own.min(alt);
                if d <= max_distance && best.is_none_or(|(bd, bi, _)| (d, i) < (bd, bi)) {
                    best = Some((d, i, alt < own));
                }
            }
        }
        if let Some((distance, i, alternate)) = best {
            let (hash, value) = idx.entries[i].clone();
            return Ok(Some(NearMatch { value, hash, distance, alternate }));
        }
        let i = idx.entries.len();
        idx.entries.push((hash, value.to_owned()));
        idx.ids.insert(id.to_owned(), i);
        for b in 0..BANDS {
            idx.buckets.entry((b, near::band(hash, b))).or_default().push(i);
        }
        idx.expires = now + ttl;
        Ok(None)
    }

    async fn lease_acquire(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool, CoordError> {
        let mut state = self.state.lock();
        let now = Instant::now();
        let key = format!("lease:{name}");
        match state.claims.get(&key) {
            Some((holder, exp)) if *exp > now && holder != owner => Ok(false),
            _ => {
                state.claims.insert(key, (owner.to_owned(), now + ttl));
                Ok(true)
            }
        }
    }

    async fn lease_release(&self, name: &str, owner: &str) -> Result<bool, CoordError> {
        let mut state = self.state.lock();
        let key = format!("lease:{name}");
        if state.claims.get(&key).is_some_and(|(holder, exp)| holder == owner && *exp > Instant::now()) {
            state.claims.remove(&key);
            return Ok(true);
        }
        Ok(false)
    }

    async fn health(&self) -> Result<(), CoordError> {
        Ok(())
    }
}

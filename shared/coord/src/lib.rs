//! Coordination: idempotency markers, job and collection progress (fan-in), claims and
//! leases. Redis for the distributed mode, memory for the embedded mode; one conformance
//! suite ([`conformance`]) runs against both.

pub mod conformance;
mod memory;
pub mod near;
mod redis_impl;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use thiserror::Error;

pub use memory::MemoryCoord;
pub use redis_impl::RedisCoord;

/// The scope a job's status is read from: items that left their route for good.
pub const FINAL_SCOPE: &str = "final";

/// How long job progress is kept after the last update.
pub const JOB_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// What can go wrong with coordination.
#[derive(Debug, Error)]
pub enum CoordError {
    /// Redis unreachable; try again later.
    #[error("coordination store unavailable: {0}")]
    Unavailable(String),
    /// A value in the store is not what this build expects.
    #[error("coordination store holds unexpected data: {0}")]
    Corrupt(String),
}

impl CoordError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, CoordError::Unavailable(_))
    }
}

/// The result of recording that an item finished within a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// This was the first time the item finished in the scope (later calls only update its outcome).
    pub first: bool,
    /// Items finished in the scope, whole job.
    pub finished: u64,
    /// Items in the job.
    pub total: u64,
    /// Items finished in the scope, this item's collection.
    pub collection_finished: u64,
    /// Items in this item's collection.
    pub collection_total: u64,
}

impl Tally {
    /// Whether this call finished the job's last item: exactly one caller ever sees `true`.
    pub fn completed_job(&self) -> bool {
        self.first && self.total > 0 && self.finished == self.total
    }

    /// Whether this call finished the collection's last item: exactly one caller sees `true`.
    pub fn completed_collection(&self) -> bool {
        self.first && self.collection_total > 0 && self.collection_finished == self.collection_total
    }
}

/// Progress of a job, as `sightline status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobStatus {
    /// The job id.
    pub job_id: String,
    /// The job's kind.
    pub kind: String,
    /// Items in the job (0 until ingest has listed the source).
    pub total: u64,
    /// Items that left their route.
    pub finished: u64,
    /// Finished items by outcome (`ok`, `failed`, `duplicate`, `filtered`).
    pub outcomes: BTreeMap<String, u64>,
    /// Per collection: (finished, total).
    pub collections: BTreeMap<String, (u64, u64)>,
    /// Milliseconds since the epoch when ingest started it.
    pub started_ms: u64,
}

impl JobStatus {
    /// Whether every item left its route (a job with no items is complete at once).
    pub fn is_complete(&self) -> bool {
        self.finished >= self.total
    }
}

/// The nearest entry a near-duplicate index holds for a hash (see [`Coord::claim_near`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NearMatch {
    /// The value stored with the entry.
    pub value: String,
    /// The entry's hash.
    pub hash: u64,
    /// Hamming distance between the entry's hash and the one asked about (the alternate, when
    /// `alternate`).
    pub distance: u32,
    /// Whether the entry was found through the key's alternate hash.
    pub alternate: bool,
}

/// What [`Coord::claim_near`] looks up: a hash, which is inserted when nothing is near, and
/// optionally an alternate hash that is only looked up (the hash of the same picture seen
/// another way, e.g. mirrored: an entry near either is a match).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NearKey {
    /// The hash looked up and inserted.
    pub hash: u64,
    /// Another hash looked up, never inserted.
    pub alternate: Option<u64>,
}

impl From<u64> for NearKey {
    fn from(hash: u64) -> Self {
        Self { hash, alternate: None }
    }
}

/// Coordination as the runner and the stages use it.
#[async_trait]
pub trait Coord: Send + Sync {
    /// Whether message `id` was processed already.
    async fn is_done(&self, id: &str) -> Result<bool, CoordError>;
    /// Records that message `id` was processed; forgotten after `ttl`.
    async fn mark_done(&self, id: &str, ttl: Duration) -> Result<(), CoordError>;
    /// Registers a job's item counts per collection. Returns `false` (and changes nothing) if
    /// the job was registered before.
    async fn job_start(
        &self,
        job: &str,
        kind: &str,
        totals: &BTreeMap<String, u64>,
        now_ms: u64,
    ) -> Result<bool, CoordError>;
    /// Records, atomically and idempotently, that `item` of `collection` finished in `scope`
    /// with `outcome`. A repeated call for the same item only updates its outcome.
    async fn tally(
        &self,
        job: &str,
        scope: &str,
        item: u64,
        collection: &str,
        outcome: &str,
    ) -> Result<Tally, CoordError>;
    /// The job's status in [`FINAL_SCOPE`], or `None` if unknown.
    async fn job_status(&self, job: &str) -> Result<Option<JobStatus>, CoordError>;
    /// Adds `delta` to a counter and returns the new value.
    async fn counter_add(&self, key: &str, delta: i64) -> Result<i64, CoordError>;
    /// Sets `key` to `value` if unset. Returns `None` if this call won, or the value a
    /// previous caller set.
    async fn claim(&self, key: &str, value: &str, ttl: Duration) -> Result<Option<String>, CoordError>;
    /// The value a [`Coord::claim`] on `key` set, if it has not expired; sets nothing.
    async fn claimed(&self, key: &str) -> Result<Option<String>, CoordError>;
    /// A fuzzy [`Coord::claim`] on a near-duplicate index of 64-bit hashes, atomic across
    /// callers: finds the entry of `index` nearest to `key.hash` or to `key.alternate` by
    /// Hamming distance (the smaller of the two; ties go to the earliest inserted) within
    /// `max_distance` (at most [`near::MAX_NEAR_DISTANCE`]). If there is one, returns it and
    /// inserts nothing; if not, inserts `key.hash` with `id` and `value` and returns `None`. If `id` was inserted before, returns `None` at once (a
    /// repeated call by the winner). So every entry is farther than `max_distance` from every
    /// entry inserted before it, and of two racing near-identical hashes exactly one is
    /// inserted. The index is forgotten `ttl` after its last insert.
    async fn claim_near(
        &self,
        index: &str,
        key: NearKey,
        id: &str,
        value: &str,
        max_distance: u32,
        ttl: Duration,
    ) -> Result<Option<NearMatch>, CoordError>;
    /// Takes (or renews, for the same owner) a lease that expires after `ttl`.
    async fn lease_acquire(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool, CoordError>;
    /// Gives a lease back if `owner` holds it.
    async fn lease_release(&self, name: &str, owner: &str) -> Result<bool, CoordError>;
    /// Whether the store is reachable.
    async fn health(&self) -> Result<(), CoordError>;
}

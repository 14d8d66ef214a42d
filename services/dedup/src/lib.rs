//! The dedup stage: every image of a collection scope is kept once, and every copy points to
//! its original, across all replicas (and, with a shared scope, across jobs).
//!
//! Per image, in order (each step atomic in the coordination store, so racing replicas agree):
//! 1. a decision stored for this item before (a redelivered message) is returned as it was;
//! 2. **exact bytes**: [`Coord::claim`] on the content hash (`task.sha256`); the loser is a
//!    copy of the winner and skips decoding;
//! 3. decode (limits) and fingerprint on the blocking pool: the pixel hash and the perceptual
//!    hash of a small thumbnail ([`sightline_imaging::phash`]);
//! 4. **exact pixels**: [`Coord::claim`] on the pixel hash (the same picture re-encoded
//!    losslessly, or with its metadata stripped);
//! 5. **near**: [`Coord::claim_near`] on the perceptual hash, a linearizable fuzzy claim on a
//!    multi-index-hashing index: the nearest original within the distance, or this image
//!    becomes one. Only originals enter the index. The lookup also tries the hash of the
//!    image's mirror ([`Fingerprint::mirror`], from the same DCT), so a horizontally flipped
//!    copy is found (kind `mirror`) at no extra decode or index entry.
//!
//! A loser of an exact claim follows the winner's decision, so `of` always names the group's
//! original (the root), never another copy. Duplicates leave the route with
//! [`ItemOutcome::Duplicate`]; originals go on. The decision is stored per item and is the
//! annotation `dedup` (see [`Decision`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sightline_coord::NearKey;
use sightline_coord::near::MAX_NEAR_DISTANCE;
use sightline_imaging::Limits;
use sightline_imaging::phash::{Fingerprint, fingerprint};
use sightline_messages::annotations::DedupOut;
use sightline_messages::options::JobOptions;
use sightline_messages::{ImageTask, ItemOutcome};
use sightline_runtime::{Ctx, Effect, ImageStage, StageError};
use tracing::debug;
use uuid::Uuid;

/// The stage name.
pub const NAME: &str = "dedup";

/// Default largest Hamming distance (of 64 bits) between perceptual hashes called a near
/// duplicate. Chosen on `shared/data/neardup` (docs/dedup.md): resized, recompressed,
/// brightened, blurred, greyed and bordered copies are at most 4 bits from their original,
/// different pictures at least 6 (product variants in the search catalogue) and 14 in the
/// near-duplicate set. Distances between these hashes are always even, so 4 and 5 are the same.
pub const DEFAULT_MAX_DISTANCE: u32 = 4;

/// What images are compared against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScopeMode {
    /// The other images of the same collection in the same job.
    Job,
    /// Every image of a collection of the same name, in any job.
    Collection,
}

/// Dedup options (flags with environment variables).
#[derive(Debug, Clone, clap::Args)]
pub struct DedupArgs {
    /// Largest Hamming distance between 64-bit perceptual hashes still called a near duplicate
    /// (0 = exact duplicates only, at most 11).
    #[arg(long, env = "DEDUP_MAX_DISTANCE", default_value_t = DEFAULT_MAX_DISTANCE)]
    pub max_distance: u32,
    /// What an image is compared against when its job names no `dedup.scope`: `job` (its
    /// collection in its job) or `collection` (its collection in every job).
    #[arg(long, env = "DEDUP_SCOPE", value_enum, default_value = "job")]
    pub scope: ScopeMode,
    /// How long claims, decisions and the near-duplicate index are kept, in days.
    #[arg(long, env = "DEDUP_RETENTION_DAYS", default_value_t = 30)]
    pub retention_days: u64,
    /// Largest image accepted, in bytes.
    #[arg(long, env = "DEDUP_MAX_BYTES", default_value_t = 50 * 1024 * 1024)]
    pub max_bytes: u64,
    /// Largest pixel count accepted (decompression-bomb guard).
    #[arg(long, env = "DEDUP_MAX_PIXELS", default_value_t = 64_000_000)]
    pub max_pixels: u64,
    /// Also look each image up by its mirror image's hash, so horizontally flipped copies are
    /// duplicates (`false`: only unflipped copies are).
    #[arg(long, env = "DEDUP_MIRROR", default_value_t = true, action = clap::ArgAction::Set)]
    pub mirror: bool,
}

impl Default for DedupArgs {
    fn default() -> Self {
        Self {
            max_distance: DEFAULT_MAX_DISTANCE,
            scope: ScopeMode::Job,
            retention_days: 30,
            max_bytes: 50 * 1024 * 1024,
            max_pixels: 64_000_000,
            mirror: true,
        }
    }
}

/// Dedup settings.
#[derive(Debug, Clone)]
pub struct DedupConfig {
    /// Largest near-duplicate distance.
    pub max_distance: u32,
    /// Default scope.
    pub scope: ScopeMode,
    /// How long claims, decisions and the index are kept.
    pub retention: Duration,
    /// Image limits.
    pub limits: Limits,
    /// How long a copy waits for its original's decision before retrying later.
    pub follow_wait: Duration,
    /// Whether mirrored copies are duplicates (the index is also looked up by the mirror hash).
    pub mirror: bool,
}

impl From<DedupArgs> for DedupConfig {
    fn from(a: DedupArgs) -> Self {
        Self {
            max_distance: a.max_distance,
            scope: a.scope,
            retention: Duration::from_secs(a.retention_days.max(1) * 24 * 3600),
            limits: Limits { max_bytes: a.max_bytes, max_pixels: a.max_pixels, ..Limits::default() },
            follow_wait: Duration::from_secs(3),
            mirror: a.mirror,
        }
    }
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupArgs::default().into()
    }
}

pub use sightline_messages::annotations::{DuplicateKind as Kind, Evidence};

/// One image, as claims and the index record it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRef {
    /// Its job.
    pub job: Uuid,
    /// Its index within the job.
    pub item: u64,
    /// Its source name.
    pub name: String,
    /// First 16 hex digits of its content hash (index entries only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha: String,
    /// First 16 hex digits of its pixel hash (index entries only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub px: String,
}

impl ItemRef {
    fn of(task: &ImageTask) -> Self {
        Self { job: task.job_id, item: task.item, name: task.name.clone(), sha: String::new(), px: String::new() }
    }

    fn same_item(&self, other: &ItemRef) -> bool {
        self.job == other.job && self.item == other.item
    }

    fn id(&self) -> String {
        format!("{}:{}", self.job, self.item)
    }
}

/// The dedup decision about one image, as stored for later claims (`of_job` always set); on
/// the task it becomes the `dedup` annotation, [`DedupOut`] (with `of_job` left out when the
/// original is in the same job).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Decision {
    /// The first of its kind in its scope: an original.
    Unique {
        /// Its perceptual hash, 16 hex digits.
        phash: String,
    },
    /// A copy of an original.
    Duplicate {
        /// The original's source name.
        of: String,
        /// The original's item index.
        of_item: u64,
        /// The original's job.
        of_job: Uuid,
        /// Exact, near or mirror.
        kind: Kind,
        /// Hamming distance between the perceptual hashes (the copy's mirror hash for a
        /// mirror; 0 for exact duplicates).
        distance: u32,
        /// What matched.
        evidence: Evidence,
        /// This image's perceptual hash, 16 hex digits.
        phash: String,
    },
}

impl Decision {
    /// The annotation stored on the task for `job` (`of_job` only when it differs).
    pub fn annotation(&self, job: Uuid) -> DedupOut {
        match self.clone() {
            Decision::Unique { phash } => DedupOut::Unique { phash },
            Decision::Duplicate { of, of_item, of_job, kind, distance, evidence, phash } => DedupOut::Duplicate {
                of,
                of_item,
                of_job: (of_job != job).then_some(of_job),
                kind,
                distance,
                evidence,
                phash,
            },
        }
    }

    /// Reads a decision back from its annotation (`of_job` defaults to `job`).
    pub fn from_annotation(out: &DedupOut, job: Uuid) -> Self {
        match out.clone() {
            DedupOut::Unique { phash } => Decision::Unique { phash },
            DedupOut::Duplicate { of, of_item, of_job, kind, distance, evidence, phash } => {
                Decision::Duplicate { of, of_item, of_job: of_job.unwrap_or(job), kind, distance, evidence, phash }
            }
        }
    }

    /// The reason recorded when a duplicate leaves the route.
    fn reason(&self) -> Option<String> {
        match self {
            Decision::Unique { .. } => None,
            Decision::Duplicate { of, of_item, kind: Kind::Exact, evidence, .. } => {
                let what = if *evidence == Evidence::Bytes { "same bytes" } else { "same pixels" };
                Some(format!("exact duplicate ({what}) of item {of_item} {of:?}"))
            }
            Decision::Duplicate { of, of_item, distance, kind: Kind::Mirror, .. } => {
                Some(format!("mirror image of item {of_item} {of:?} (distance {distance})"))
            }
            Decision::Duplicate { of, of_item, distance, .. } => {
                Some(format!("near duplicate of item {of_item} {of:?} (distance {distance})"))
            }
        }
    }

    /// This decision as seen by a copy of its image found by `evidence` (a copy of an
    /// original is a duplicate of it; a copy of a duplicate, of its original).
    fn for_copy(&self, subject: &ItemRef, evidence: Evidence) -> Decision {
        match self {
            Decision::Unique { phash } => Decision::Duplicate {
                of: subject.name.clone(),
                of_item: subject.item,
                of_job: subject.job,
                kind: Kind::Exact,
                distance: 0,
                evidence,
                phash: phash.clone(),
            },
            Decision::Duplicate { of, of_item, of_job, kind, distance, evidence: theirs, phash } => {
                Decision::Duplicate {
                    of: of.clone(),
                    of_item: *of_item,
                    of_job: *of_job,
                    kind: *kind,
                    distance: *distance,
                    // Bytes-equal to a pixels-equal copy is pixels-equal; anything near is near.
                    evidence: match (*theirs, evidence) {
                        (Evidence::Phash, _) => Evidence::Phash,
                        (Evidence::Pixels, _) | (_, Evidence::Pixels) => Evidence::Pixels,
                        _ => Evidence::Bytes,
                    },
                    phash: phash.clone(),
                }
            }
        }
    }
}

/// The dedup stage.
pub struct Dedup {
    config: DedupConfig,
}

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid dedup configuration: {0}")]
pub struct ConfigError(String);

impl Dedup {
    /// Builds the stage, checking the configuration.
    pub fn new(config: DedupConfig) -> Result<Self, ConfigError> {
        if config.max_distance > MAX_NEAR_DISTANCE {
            return Err(ConfigError(format!(
                "max distance {} is above {MAX_NEAR_DISTANCE}, the largest the index searches",
                config.max_distance
            )));
        }
        Ok(Self { config })
    }

    /// The settings.
    pub fn config(&self) -> &DedupConfig {
        &self.config
    }

    /// The scope key of `task`: a job option `dedup.scope` (copied by ingest into
    /// `annotations["options"]`), else the configured mode; always per collection. Hashed so
    /// any name is a safe key.
    pub fn scope_of(&self, task: &ImageTask) -> String {
        let options = JobOptions::of(task);
        let named = options.dedup_scope();
        let scope = match (named, self.config.scope) {
            (Some(name), _) => format!("named\u{1f}{name}\u{1f}{}", task.collection),
            (None, ScopeMode::Job) => format!("job\u{1f}{}\u{1f}{}", task.job_id, task.collection),
            (None, ScopeMode::Collection) => format!("collection\u{1f}{}", task.collection),
        };
        hex::encode(&Sha256::digest(scope.as_bytes())[..16])
    }

    /// Decides whether `task` is an original or a copy (the whole protocol, see the crate doc).
    pub async fn decide(&self, ctx: &Ctx, task: &ImageTask) -> Result<Decision, StageError> {
        let me = ItemRef::of(task);
        let decision_key = decision_key(&me);
        if let Some(stored) = ctx.coord.claimed(&decision_key).await? {
            return parse_decision(&stored);
        }
        let scope = self.scope_of(task);
        let ttl = self.config.retention;
        let me_json = to_json(&me)?;

        // Exact bytes, before any decoding: a copy of a known file costs one round trip.
        let bytes_key = format!("dedup:{scope}:sha:{}", task.sha256);
        if let Some(winner) = self.claim_item(ctx, &bytes_key, &me_json, &me, ttl).await? {
            let decision = self.follow(ctx, task, &winner, Evidence::Bytes).await?;
            return self.store(ctx, &decision_key, decision).await;
        }

        let fp = self.fingerprint(ctx, task).await?;
        let phash = format!("{:016x}", fp.phash);

        let pixels_key = format!("dedup:{scope}:px:{}", fp.pixel_sha256);
        if let Some(winner) = self.claim_item(ctx, &pixels_key, &me_json, &me, ttl).await? {
            let decision = self.follow(ctx, task, &winner, Evidence::Pixels).await?;
            return self.store(ctx, &decision_key, decision).await;
        }

        let entry = ItemRef { sha: prefix16(&task.sha256), px: prefix16(&fp.pixel_sha256), ..me.clone() };
        let index = format!("dedup:{scope}");
        let key = NearKey { hash: fp.phash, alternate: self.config.mirror.then_some(fp.mirror) };
        let hit = ctx.coord.claim_near(&index, key, &me.id(), &to_json(&entry)?, self.config.max_distance, ttl).await?;
        let decision = match hit {
            None => Decision::Unique { phash },
            Some(m) => {
                let original: ItemRef = serde_json::from_str(&m.value)
                    .map_err(|e| StageError::permanent(format!("read near-duplicate index entry: {e}")))?;
                // The exact claims normally catch these first; they expire before the index can.
                let evidence = if !original.sha.is_empty() && original.sha == entry.sha {
                    Evidence::Bytes
                } else if !original.px.is_empty() && original.px == entry.px {
                    Evidence::Pixels
                } else {
                    Evidence::Phash
                };
                Decision::Duplicate {
                    of: original.name,
                    of_item: original.item,
                    of_job: original.job,
                    kind: match evidence {
                        Evidence::Phash if m.alternate => Kind::Mirror,
                        Evidence::Phash => Kind::Near,
                        Evidence::Bytes | Evidence::Pixels => Kind::Exact,
                    },
                    distance: m.distance,
                    evidence,
                    phash,
                }
            }
        };
        self.store(ctx, &decision_key, decision).await
    }

    async fn fingerprint(&self, ctx: &Ctx, task: &ImageTask) -> Result<Fingerprint, StageError> {
        let bytes = ctx.blob.get(&task.key).await?;
        let limits = self.config.limits;
        let name = task.name.clone();
        ctx.blocking(move || sightline_imaging::decode(&bytes, Some(&name), &limits).map(|(_, img)| fingerprint(&img)))
            .await?
            .map_err(|e| StageError::permanent(e.to_string()))
    }

    /// Claims `key` for `me`; `None` if this item holds it (now or from an earlier delivery),
    /// else the item that does.
    async fn claim_item(
        &self,
        ctx: &Ctx,
        key: &str,
        me_json: &str,
        me: &ItemRef,
        ttl: Duration,
    ) -> Result<Option<ItemRef>, StageError> {
        let Some(holder) = ctx.coord.claim(key, me_json, ttl).await? else { return Ok(None) };
        let holder: ItemRef =
            serde_json::from_str(&holder).map_err(|e| StageError::permanent(format!("read dedup claim {key}: {e}")))?;
        Ok((!holder.same_item(me)).then_some(holder))
    }

    /// The decision of a copy of `winner`: the winner's own decision, followed. The winner
    /// claimed first and decides within a few round trips; if it has not yet (it is slow, or
    /// its worker died and its message is being redelivered), retry later.
    async fn follow(
        &self,
        ctx: &Ctx,
        task: &ImageTask,
        winner: &ItemRef,
        evidence: Evidence,
    ) -> Result<Decision, StageError> {
        let key = decision_key(winner);
        let deadline = Instant::now() + self.config.follow_wait;
        let mut pause = Duration::from_millis(10);
        loop {
            if let Some(stored) = ctx.coord.claimed(&key).await? {
                let theirs = parse_decision(&stored)?;
                debug!(item = task.item, winner = winner.item, ?evidence, "copy of a claimed image");
                return Ok(theirs.for_copy(winner, evidence));
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
        if evidence == Evidence::Bytes {
            // The winner may have failed on these very bytes: fail the same way, not by waiting.
            self.fingerprint(ctx, task).await?;
        }
        Err(StageError::transient(format!(
            "waiting for the decision on item {} {:?} of job {}, which this image duplicates",
            winner.item, winner.name, winner.job
        )))
    }

    /// Stores the decision unless one is stored already (a concurrent delivery of the same
    /// message), and returns the stored one.
    async fn store(&self, ctx: &Ctx, key: &str, decision: Decision) -> Result<Decision, StageError> {
        match ctx.coord.claim(key, &to_json(&decision)?, self.config.retention).await? {
            None => Ok(decision),
            Some(earlier) => parse_decision(&earlier),
        }
    }
}

fn decision_key(item: &ItemRef) -> String {
    format!("dedup:decision:{}:{}", item.job, item.item)
}

fn prefix16(hex: &str) -> String {
    hex.chars().take(16).collect()
}

fn to_json<T: Serialize>(v: &T) -> Result<String, StageError> {
    serde_json::to_string(v).map_err(|e| StageError::permanent(format!("encode dedup record: {e}")))
}

fn parse_decision(s: &str) -> Result<Decision, StageError> {
    serde_json::from_str(s).map_err(|e| StageError::permanent(format!("read stored dedup decision: {e}")))
}

/// What a decision does to its task: originals go on, duplicates leave the route.
pub fn effect_for(mut task: ImageTask, decision: &Decision) -> Result<Effect, StageError> {
    task.set_annotation(&decision.annotation(task.job_id)).map_err(|e| StageError::permanent(e.to_string()))?;
    Ok(match decision {
        Decision::Unique { .. } => Effect::forward(task, NAME),
        Decision::Duplicate { .. } => Effect::leave(&task, ItemOutcome::Duplicate, NAME, decision.reason()),
    })
}

#[async_trait]
impl ImageStage for Dedup {
    const NAME: &'static str = NAME;

    async fn handle_image(&self, ctx: &Ctx, task: ImageTask) -> Result<Vec<Effect>, StageError> {
        let decision = self.decide(ctx, &task).await?;
        Ok(vec![effect_for(task, &decision)?])
    }
}

/// Counts of decisions, for summaries.
pub fn tally<'a>(decisions: impl IntoIterator<Item = &'a Decision>) -> BTreeMap<&'static str, u64> {
    let mut out = BTreeMap::new();
    for d in decisions {
        let k = match d {
            Decision::Unique { .. } => "unique",
            Decision::Duplicate { kind: Kind::Exact, .. } => "exact",
            Decision::Duplicate { kind: Kind::Near, .. } => "near",
            Decision::Duplicate { kind: Kind::Mirror, .. } => "mirror",
        };
        *out.entry(k).or_insert(0) += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(collection: &str) -> ImageTask {
        ImageTask {
            collection: collection.into(),
            name: format!("{collection}/a.jpg"),
            ..ImageTask::example(Uuid::nil(), 1)
        }
    }

    #[test]
    fn scopes_separate_collections_and_jobs_unless_named() {
        let d = Dedup::new(DedupConfig::default()).expect("config");
        let (a, b) = (task("shoes"), task("hats"));
        assert_ne!(d.scope_of(&a), d.scope_of(&b));
        let mut other_job = a.clone();
        other_job.job_id = Uuid::from_u128(7);
        assert_ne!(d.scope_of(&a), d.scope_of(&other_job), "job scope by default");
        let shared =
            Dedup::new(DedupConfig { scope: ScopeMode::Collection, ..DedupConfig::default() }).expect("config");
        assert_eq!(shared.scope_of(&a), shared.scope_of(&other_job));
        let named = |mut t: ImageTask| {
            let options =
                BTreeMap::from([(sightline_messages::options::DEDUP_SCOPE.to_owned(), "crawl-2024".to_owned())]);
            t.set_annotation(&JobOptions(options)).expect("options");
            t
        };
        assert_eq!(d.scope_of(&named(a.clone())), d.scope_of(&named(other_job)), "a named scope spans jobs");
        assert_ne!(d.scope_of(&named(a)), d.scope_of(&named(b)), "but not collections");
    }

    #[test]
    fn annotations_round_trip_and_drop_the_own_job() {
        let job = Uuid::from_u128(1);
        let d = Decision::Duplicate {
            of: "a.jpg".into(),
            of_item: 3,
            of_job: job,
            kind: Kind::Near,
            distance: 2,
            evidence: Evidence::Phash,
            phash: "00ff".into(),
        };
        let out = d.annotation(job);
        let v = serde_json::to_value(&out).expect("json");
        assert_eq!(v["status"], "duplicate");
        assert_eq!(v["kind"], "near");
        assert!(v.get("of_job").is_none());
        assert_eq!(Decision::from_annotation(&out, job), d);
        assert_eq!(serde_json::to_value(d.annotation(Uuid::nil())).expect("json")["of_job"], job.to_string());
        let u = Decision::Unique { phash: "01".into() };
        let v = serde_json::to_value(u.annotation(job)).expect("json");
        assert_eq!(v, serde_json::json!({ "status": "unique", "phash": "01" }));
    }

    #[test]
    fn copies_of_copies_point_at_the_root() {
        let w = ItemRef { job: Uuid::nil(), item: 5, name: "w.jpg".into(), sha: String::new(), px: String::new() };
        let unique = Decision::Unique { phash: "ab".into() };
        let copy = unique.for_copy(&w, Evidence::Bytes);
        assert!(
            matches!(&copy, Decision::Duplicate { of, kind: Kind::Exact, distance: 0, evidence: Evidence::Bytes, .. } if of == "w.jpg")
        );
        let near = Decision::Duplicate {
            of: "r.jpg".into(),
            of_item: 1,
            of_job: Uuid::nil(),
            kind: Kind::Near,
            distance: 4,
            evidence: Evidence::Phash,
            phash: "ab".into(),
        };
        let followed = near.for_copy(&w, Evidence::Pixels);
        assert!(
            matches!(&followed, Decision::Duplicate { of, kind: Kind::Near, distance: 4, evidence: Evidence::Phash, .. } if of == "r.jpg")
        );
    }

    #[test]
    fn too_large_a_distance_is_refused() {
        assert!(Dedup::new(DedupConfig { max_distance: 12, ..DedupConfig::default() }).is_err());
    }
}

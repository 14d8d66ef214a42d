//! The track stage: the fan-in of the store route (`ingest → detect → face → track`, docs/store.md).
//!
//! Detection fans a camera's video out per segment; tracking needs the frames in order. Each
//! segment task that reaches this stage is parked in storage ([`segment_key`]); then, holding
//! the video's lease (Redis), the replica applies every parked segment from the video's
//! `next` one on, in order, to the video's state ([`VideoState`]: the tracker and the
//! analytics), storing the state after each ([`state_key`]). A segment that arrives before its
//! predecessors only waits parked: whoever applies the predecessor goes on to it. When the
//! last segment is applied the tables are written under [`out_prefix`] and the video's task
//! leaves the route with `annotations.store`.
//!
//! Order and exactly-once counting when replicas die (ARCHITECTURE.md):
//! - the lease serialises the handlers of one video (one owner per handling, so two segments
//!   on one replica take turns too); it is renewed after every segment, and a replica that dies
//!   holding it loses it after `TRACK_LEASE_SECS`, its unacknowledged segment delivered again;
//! - the state names the next segment and is stored after each segment, with the frames it
//!   observed: a segment applied again after a crash finds its frames observed and skips them
//!   ([`VideoState::apply`]), so no passage is counted twice and none is lost;
//! - the tables are written before the state says `complete`, and the video's record is
//!   stored by the runner after that: a crash in between writes the same tables again.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use sightline_blob::BlobError;
use sightline_messages::ImageTask;
use sightline_messages::annotations::{PeopleOut, SegmentIn, StoreOut};
use sightline_messages::options::{JobOptions, STORE_CAMERA};
use sightline_runtime::{Ctx, Effect, ImageStage, StageError};
use sightline_tracking::analytics::Analytics;
use sightline_tracking::camera::Camera;
use sightline_tracking::report::Report;
use sightline_tracking::segments::{SegmentDetections, VideoState, VisitorRule, store_tracker, visitors};
use tracing::{debug, info};
use uuid::Uuid;

/// The stage name.
pub const NAME: &str = "track";

/// The tables written per video under [`out_prefix`].
pub const TABLES: [&str; 9] = [
    "counts.csv",
    "crossings.csv",
    "dwell.csv",
    "heatmap.csv",
    "composition.csv",
    "frames.csv",
    "occupancy.csv",
    "tracks.json",
    "report.json",
];

/// Track options (flags with environment variables).
#[derive(Debug, Clone, clap::Args)]
pub struct TrackArgs {
    /// How long a replica holds a video while it applies its segments, in seconds; a replica
    /// that dies holding it delays the video by at most this.
    #[arg(long, env = "TRACK_LEASE_SECS", default_value_t = 60)]
    pub track_lease_secs: u64,
    /// How long a segment waits for another replica to let go of its video before it is
    /// retried later, in seconds.
    #[arg(long, env = "TRACK_WAIT_SECS", default_value_t = 20)]
    pub track_wait_secs: u64,
}

impl Default for TrackArgs {
    fn default() -> Self {
        Self { track_lease_secs: 60, track_wait_secs: 20 }
    }
}

/// Where a video's store-route objects live.
pub fn video_prefix(job: Uuid, item: u64) -> String {
    format!("jobs/{job}/store/{item:010}/")
}

/// Where segment `index` of a video is parked (the task, JSON).
pub fn segment_key(job: Uuid, item: u64, index: u32) -> String {
    format!("{}segments/{index:06}.json", video_prefix(job, item))
}

/// Where a video's state is kept between segments (MessagePack).
pub fn state_key(job: Uuid, item: u64) -> String {
    format!("{}state.msgpack", video_prefix(job, item))
}

/// Where a video's tables are written ([`TABLES`]).
pub fn out_prefix(job: Uuid, item: u64) -> String {
    format!("{}out/", video_prefix(job, item))
}

/// The track stage.
pub struct TrackStage {
    args: TrackArgs,
    owner: String,
}

impl TrackStage {
    /// The stage; its leases are held under a name unique to this process.
    pub fn new(args: TrackArgs) -> Self {
        Self { args, owner: format!("track-{}-{}", std::process::id(), Uuid::new_v4()) }
    }

    fn ttl(&self) -> Duration {
        Duration::from_secs(self.args.track_lease_secs.max(1))
    }

    fn lease_name(job: Uuid, item: u64) -> String {
        format!("track:{job}:{item}")
    }

    /// Takes the video's lease, waiting up to `track_wait_secs`.
    async fn acquire(&self, ctx: &Ctx, name: &str, owner: &str) -> Result<(), StageError> {
        let ttl = self.ttl();
        let deadline = Instant::now() + Duration::from_secs(self.args.track_wait_secs);
        let mut pause = Duration::from_millis(50);
        loop {
            if ctx.coord.lease_acquire(name, owner, ttl).await? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StageError::transient(format!(
                    "{name}: another replica is applying this video's segments"
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    async fn load_state(&self, ctx: &Ctx, task: &ImageTask, count: u32) -> Result<VideoState, StageError> {
        match ctx.blob.get(&state_key(task.job_id, task.item)).await {
            Ok(bytes) => rmp_serde::from_slice(&bytes).map_err(|e| StageError::permanent(format!("video state: {e}"))),
            Err(BlobError::NotFound(_)) => {
                let options = JobOptions::of(task);
                let camera = Camera::from_toml_str(options.get(STORE_CAMERA).unwrap_or_default())
                    .map_err(|e| StageError::permanent(format!("camera file: {e}")))?;
                let analytics = {
                    let fps = camera.fps;
                    Analytics::new(camera, store_tracker(fps))
                }
                .map_err(|e| StageError::permanent(e.to_string()))?;
                Ok(VideoState::new(analytics, count))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Applies the parked segments from the state's next one on; finishes the video after its
    /// last. Runs under the video's lease.
    async fn advance(
        &self,
        ctx: &Ctx,
        task: &ImageTask,
        count: u32,
        lease: (&str, &str),
    ) -> Result<Vec<Effect>, StageError> {
        let (job, item) = (task.job_id, task.item);
        let mut state = self.load_state(ctx, task, count).await?;
        while !state.is_complete() {
            let next = state.next;
            let parked = match ctx.blob.get(&segment_key(job, item, next)).await {
                Ok(bytes) => bytes,
                Err(BlobError::NotFound(_)) => {
                    debug!(item, waiting_for = next, "segment parked, an earlier one has not arrived");
                    return Ok(Vec::new());
                }
                Err(e) => return Err(e.into()),
            };
            let parked: ImageTask = serde_json::from_slice(&parked)
                .map_err(|e| StageError::permanent(format!("parked segment {next}: {e}")))?;
            let people = parked
                .annotation::<PeopleOut>()
                .map_err(|e| StageError::permanent(e.to_string()))?
                .ok_or_else(|| StageError::permanent("a segment without annotations.people"))?;
            let bytes = ctx.blob.get(&people.key).await?;
            let detections: SegmentDetections = serde_json::from_slice(&bytes)
                .map_err(|e| StageError::permanent(format!("detections {}: {e}", people.key)))?;
            state.apply(&detections).map_err(|e| StageError::permanent(format!("segment {next}: {e}")))?;
            let encoded =
                rmp_serde::to_vec_named(&state).map_err(|e| StageError::permanent(format!("encode state: {e}")))?;
            ctx.blob.put(&state_key(job, item), Bytes::from(encoded)).await?;
            debug!(item, segment = next, of = state.count, "segment tracked");
            // Renewed after each segment: a long backlog never outlives the lease.
            if !ctx.coord.lease_acquire(lease.0, lease.1, self.ttl()).await? {
                return Err(StageError::transient(format!("{}: lease lost while applying segments", lease.0)));
            }
        }
        self.finish(ctx, task.clone(), &state).await
    }

    async fn finish(&self, ctx: &Ctx, mut task: ImageTask, state: &VideoState) -> Result<Vec<Effect>, StageError> {
        let report = report_of(state);
        let prefix = out_prefix(task.job_id, task.item);
        for (name, bytes) in tables(&report).map_err(|e| StageError::permanent(format!("write tables: {e}")))? {
            ctx.blob.put(&format!("{prefix}{name}"), Bytes::from(bytes)).await?;
        }
        let count = |d: &str| report.crossings.iter().filter(|c| c.direction.as_str() == d).count() as u64;
        let out = StoreOut {
            version: StoreOut::VERSION,
            prefix,
            frames: report.frames.len() as u64,
            tracks: report.tracks.len() as u64,
            entries: count("in"),
            exits: count("out"),
            errors: state.errors.clone(),
        };
        info!(item = task.item, name = %task.name, frames = out.frames, tracks = out.tracks, entries = out.entries, exits = out.exits, "video tracked");
        task.set_annotation(&out).map_err(|e| StageError::permanent(e.to_string()))?;
        Ok(vec![Effect::forward(task, NAME)])
    }
}

/// The report of a finished video: visitors set from the face looks (the face stage's, on the
/// store route), then the analytics closed at the end of the last frame. The embedded
/// `sightline store` reports through this too.
pub fn report_of(state: &VideoState) -> Report {
    let tracks: Vec<u64> = state.tallest.keys().copied().collect();
    let mut analytics = state.analytics.clone();
    for (id, v) in visitors(state, &tracks, VisitorRule::default()) {
        // Every id came from the analytics' own tracks.
        let _ = analytics.set_track_attributes(id, v);
    }
    analytics.finish(state.t_end)
}

/// Every table of [`TABLES`] as bytes.
pub fn tables(report: &Report) -> std::io::Result<Vec<(&'static str, Vec<u8>)>> {
    let mut out = Vec::new();
    for name in TABLES {
        let mut buf = Vec::new();
        match name {
            "counts.csv" => report.write_counts_csv(&mut buf)?,
            "crossings.csv" => report.write_crossings_csv(&mut buf)?,
            "dwell.csv" => report.write_dwell_csv(&mut buf)?,
            "heatmap.csv" => report.write_heatmap_csv(&mut buf)?,
            "composition.csv" => report.write_composition_csv(&mut buf)?,
            "frames.csv" => report.write_frames_csv(&mut buf)?,
            "occupancy.csv" => report.write_occupancy_csv(&mut buf)?,
            "tracks.json" => report.write_tracks_json(&mut buf).map_err(std::io::Error::other)?,
            _ => serde_json::to_writer(&mut buf, report).map_err(std::io::Error::other)?,
        }
        out.push((name, buf));
    }
    Ok(out)
}

#[async_trait]
impl ImageStage for TrackStage {
    const NAME: &'static str = NAME;

    async fn handle_image(&self, ctx: &Ctx, task: ImageTask) -> Result<Vec<Effect>, StageError> {
        let seg = task
            .annotation::<SegmentIn>()
            .map_err(|e| StageError::permanent(e.to_string()))?
            .ok_or_else(|| StageError::permanent("track handles video segments only (a store job's tasks)"))?;
        if task.annotation::<PeopleOut>().map_err(|e| StageError::permanent(e.to_string()))?.is_none() {
            return Err(StageError::permanent("no annotations.people: detect must come before track on the route"));
        }
        let json = serde_json::to_vec(&task).map_err(|e| StageError::permanent(format!("encode task: {e}")))?;
        ctx.blob.put(&segment_key(task.job_id, task.item, seg.index), Bytes::from(json)).await?;
        let lease = Self::lease_name(task.job_id, task.item);
        // One owner per handling, so two segments of a video on this replica also take turns.
        let owner = format!("{}-{}", self.owner, Uuid::new_v4());
        self.acquire(ctx, &lease, &owner).await?;
        let result = self.advance(ctx, &task, seg.count, (&lease, &owner)).await;
        if let Err(e) = ctx.coord.lease_release(&lease, &owner).await {
            // It expires by itself; the next segment waits at most the lease's time.
            debug!(lease, error = %e, "lease release failed");
        }
        result
    }
}

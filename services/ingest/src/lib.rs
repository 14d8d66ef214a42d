//! The ingest stage. A job message is expanded into one `ingest.item` message per source
//! image (so each image is fetched, retried and dead-lettered on its own); each item is
//! fetched, validated, stored content-addressed and sent to the next stage of its route. In a
//! store job (`store.camera` set) an item is a camera's video: [`video`] cuts it into
//! segments, one task each.

mod fetch;
pub mod video;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use sightline_imaging::Limits;
use sightline_messages::options::STORE_CAMERA;
use sightline_messages::{Body, IngestItem, JobSpec, KIND_INGEST_ITEM, KIND_JOB, Location, Source, Stored};
use sightline_runtime::{Ctx, Effect, Input, Stage, StageError};
use tracing::info;

pub use fetch::{FetchError, UrlFetcher};

/// The stage name.
pub const NAME: &str = "ingest";

/// Ingest options (flags with environment variables).
#[derive(Debug, Clone, clap::Args)]
pub struct IngestArgs {
    /// Largest image accepted, in bytes.
    #[arg(long, env = "INGEST_MAX_BYTES", default_value_t = 50 * 1024 * 1024)]
    pub max_bytes: u64,
    /// Largest pixel count accepted (decompression-bomb guard).
    #[arg(long, env = "INGEST_MAX_PIXELS", default_value_t = 64_000_000)]
    pub max_pixels: u64,
    /// Allow URLs that resolve to loopback, private or link-local addresses.
    #[arg(long, env = "INGEST_ALLOW_PRIVATE_URLS", default_value_t = false)]
    pub allow_private_urls: bool,
    /// Timeout for one URL fetch, in seconds.
    #[arg(long, env = "INGEST_FETCH_TIMEOUT_SECS", default_value_t = 30)]
    pub fetch_timeout_secs: u64,
    /// Largest video accepted in a store job, in bytes (the video is held in memory and in a
    /// temporary file while it is probed: a recorder's per-minute files, not hour-long ones).
    #[arg(long, env = "INGEST_MAX_VIDEO_BYTES", default_value_t = 96 << 20)]
    pub max_video_bytes: u64,
}

impl Default for IngestArgs {
    fn default() -> Self {
        Self {
            max_bytes: 50 * 1024 * 1024,
            max_pixels: 64_000_000,
            allow_private_urls: false,
            fetch_timeout_secs: 30,
            max_video_bytes: 96 << 20,
        }
    }
}

/// Ingest settings.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Image limits.
    pub limits: Limits,
    /// Allow private addresses in URLs.
    pub allow_private_urls: bool,
    /// Fetch timeout.
    pub fetch_timeout: Duration,
    /// Largest video of a store job, bytes.
    pub max_video_bytes: u64,
}

impl From<IngestArgs> for IngestConfig {
    fn from(a: IngestArgs) -> Self {
        Self {
            limits: Limits { max_bytes: a.max_bytes, max_pixels: a.max_pixels, ..Limits::default() },
            allow_private_urls: a.allow_private_urls,
            fetch_timeout: Duration::from_secs(a.fetch_timeout_secs),
            max_video_bytes: a.max_video_bytes,
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestArgs::default().into()
    }
}

/// The ingest stage.
pub struct Ingest {
    config: IngestConfig,
    fetcher: UrlFetcher,
}

impl Ingest {
    /// Builds the stage (and its HTTP client).
    pub fn new(config: IngestConfig) -> Result<Self, FetchError> {
        // URL fetches stay under the image limit, videos included (store jobs upload them).
        let fetcher = UrlFetcher::new(config.fetch_timeout, config.limits.max_bytes, config.allow_private_urls)?;
        Ok(Self { config, fetcher })
    }
}

/// The route check lives with the job kinds and their routes in the message contract.
use sightline_messages::options::validate_route;

/// Splits a name relative to the source into (collection, name): the first path component is
/// the collection when the name is nested, else the collection is `default`.
pub fn collection_of(relative: &str) -> (String, String) {
    match relative.split_once('/') {
        Some((collection, _)) if !collection.is_empty() => (collection.to_owned(), relative.to_owned()),
        _ => ("default".to_owned(), relative.to_owned()),
    }
}

use sightline_messages::now_ms;

impl Ingest {
    async fn expand(&self, ctx: &Ctx, job: &JobSpec) -> Result<Vec<Effect>, StageError> {
        validate_route(&job.route).map_err(StageError::permanent)?;
        let mut items: Vec<(String, String, Location)> = match &job.source {
            Source::S3Prefix { prefix } => {
                if prefix.is_empty() || prefix.starts_with("images/") || prefix.starts_with("jobs/") {
                    return Err(StageError::permanent(format!("refusing source prefix {prefix:?}")));
                }
                let keys = ctx.blob.list(prefix).await?;
                keys.into_iter()
                    .map(|key| {
                        let relative = key[prefix.len()..].trim_start_matches('/').to_owned();
                        let (collection, name) = collection_of(&relative);
                        (collection, name, Location::Blob { key })
                    })
                    .collect()
            }
            Source::Urls { urls, collection } => {
                urls.iter().map(|u| (collection.clone(), u.clone(), Location::Url { url: u.clone() })).collect()
            }
        };
        items.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        let mut totals: BTreeMap<String, u64> = BTreeMap::new();
        for (collection, _, _) in &items {
            *totals.entry(collection.clone()).or_insert(0) += 1;
        }
        // Counts first, then messages: an item can never finish before its job is known.
        let first = ctx.coord.job_start(&job.job_id.to_string(), &job.kind, &totals, now_ms()).await?;
        info!(job = %job.job_id, items = items.len(), collections = totals.len(), first, "job expanded");
        Ok(items
            .into_iter()
            .enumerate()
            .map(|(i, (collection, name, location))| Effect::Publish {
                stage: NAME.to_owned(),
                body: Body::IngestItem(IngestItem {
                    job_id: job.job_id,
                    item: i as u64,
                    collection,
                    name,
                    location,
                    route: job.route.clone(),
                    options: job.options.clone(),
                }),
            })
            .collect())
    }

    async fn ingest(&self, ctx: &Ctx, item: &IngestItem) -> Result<Vec<Effect>, StageError> {
        let video = item.options.contains_key(STORE_CAMERA);
        let max_bytes = if video { self.config.max_video_bytes } else { self.config.limits.max_bytes };
        let bytes: Bytes = match &item.location {
            Location::Blob { key } => {
                if let Some(meta) = ctx.blob.head(key).await?
                    && meta.size > max_bytes
                {
                    {
                        return Err(StageError::permanent(
                            sightline_imaging::ImageError::TooLarge { size: meta.size, limit: max_bytes }.to_string(),
                        ));
                    }
                }
                ctx.blob.get(key).await?
            }
            Location::Url { url } => self.fetcher.fetch(url).await.map_err(|e| {
                if e.is_transient() {
                    StageError::transient(e.to_string())
                } else {
                    StageError::permanent(e.to_string())
                }
            })?,
        };
        if video {
            return video::segments(ctx, item, bytes, max_bytes).await;
        }
        let limits = self.config.limits;
        let name = item.name.clone();
        let validated = bytes.clone();
        let probe = ctx
            .blocking(move || sightline_imaging::validate(&validated, Some(&name), &limits))
            .await?
            .map_err(|e| StageError::permanent(e.to_string()))?;
        let size = bytes.len() as u64;
        let (key, sha256, _) = sightline_blob::put_content(ctx.blob.as_ref(), bytes).await?;
        let stored = Stored { key, sha256, size, probe: (probe.format, probe.width, probe.height) };
        let task = item.stored(stored).map_err(|e| StageError::permanent(e.to_string()))?;
        Ok(vec![Effect::forward(task, NAME)])
    }
}

#[async_trait]
impl Stage for Ingest {
    fn name(&self) -> &'static str {
        NAME
    }

    fn accepts(&self, kind: &str) -> bool {
        kind == KIND_JOB || kind == KIND_INGEST_ITEM
    }

    async fn handle(&self, ctx: &Ctx, input: Input) -> Result<Vec<Effect>, StageError> {
        match &input.body {
            Body::Job(job) => self.expand(ctx, job).await,
            Body::IngestItem(item) => self.ingest(ctx, item).await,
            other => Err(StageError::permanent(format!("ingest does not handle {}", other.kind()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collections_come_from_the_first_folder() {
        assert_eq!(collection_of("shoes/a.jpg"), ("shoes".into(), "shoes/a.jpg".into()));
        assert_eq!(collection_of("a.jpg"), ("default".into(), "a.jpg".into()));
    }
}

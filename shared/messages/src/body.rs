use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{DecodeError, EncodeError};

/// Kind of [`JobSpec`]: a producer asks for a job to run.
pub const KIND_JOB: &str = "job.submit";
/// Kind of [`IngestItem`]: one source image of a job, to fetch and validate.
pub const KIND_INGEST_ITEM: &str = "ingest.item";
/// Kind of [`ImageTask`]: one stored image travelling along its route.
pub const KIND_IMAGE: &str = "image.task";
/// Kind of [`CollectionReady`]: every image of a collection reached (or left before) the fan-in stage.
pub const KIND_COLLECTION_READY: &str = "collection.ready";

/// Every message body this build understands.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// A job submitted by a producer.
    Job(JobSpec),
    /// One image of a job, before ingest fetched it.
    IngestItem(IngestItem),
    /// One stored image on its route.
    Image(ImageTask),
    /// A collection is complete at the fan-in stage.
    CollectionReady(CollectionReady),
}

impl Body {
    /// The kind string carried in the metadata.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Job(_) => KIND_JOB,
            Body::IngestItem(_) => KIND_INGEST_ITEM,
            Body::Image(_) => KIND_IMAGE,
            Body::CollectionReady(_) => KIND_COLLECTION_READY,
        }
    }

    /// The schema version this build writes for the kind.
    pub fn schema_version(&self) -> u16 {
        1
    }

    /// The item index, for messages about one image.
    pub fn item(&self) -> Option<u64> {
        match self {
            Body::Job(_) | Body::CollectionReady(_) => None,
            Body::IngestItem(i) => Some(i.item),
            Body::Image(i) => Some(i.item),
        }
    }

    /// The source name (file name or URL) of the image, for operators.
    pub fn source_name(&self) -> Option<&str> {
        match self {
            Body::Job(_) | Body::CollectionReady(_) => None,
            Body::IngestItem(i) => Some(&i.name),
            Body::Image(i) => Some(&i.name),
        }
    }

    /// Encodes the body as MessagePack with named fields.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        match self {
            Body::Job(b) => to_msgpack(b),
            Body::IngestItem(b) => to_msgpack(b),
            Body::Image(b) => to_msgpack(b),
            Body::CollectionReady(b) => to_msgpack(b),
        }
    }

    /// Decodes a body of `kind` at `version`.
    pub fn decode(kind: &str, version: u16, bytes: &[u8]) -> Result<Self, DecodeError> {
        const SUPPORTED: u16 = 1;
        let known = [KIND_JOB, KIND_INGEST_ITEM, KIND_IMAGE, KIND_COLLECTION_READY];
        if !known.contains(&kind) {
            return Err(DecodeError::UnknownKind { kind: kind.to_owned() });
        }
        if version > SUPPORTED || version == 0 {
            return Err(DecodeError::UnsupportedVersion { kind: kind.to_owned(), version, supported: SUPPORTED });
        }
        let malformed = |source| DecodeError::Malformed { kind: kind.to_owned(), source };
        Ok(match kind {
            KIND_JOB => Body::Job(from_msgpack(bytes).map_err(malformed)?),
            KIND_INGEST_ITEM => Body::IngestItem(from_msgpack(bytes).map_err(malformed)?),
            KIND_IMAGE => Body::Image(from_msgpack(bytes).map_err(malformed)?),
            _ => Body::CollectionReady(from_msgpack(bytes).map_err(malformed)?),
        })
    }
}

/// Encodes `value` as MessagePack with named fields and human-readable scalars (UUIDs as
/// strings), so producers in any language can write bodies with a plain MessagePack library.
pub fn to_msgpack<T: Serialize>(value: &T) -> Result<Vec<u8>, EncodeError> {
    let mut buf = Vec::new();
    let mut ser = rmp_serde::Serializer::new(&mut buf).with_struct_map().with_human_readable();
    value.serialize(&mut ser)?;
    Ok(buf)
}

/// Decodes MessagePack written by [`to_msgpack`] (or by any producer following `docs/messages.md`).
pub fn from_msgpack<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, rmp_serde::decode::Error> {
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes).with_human_readable();
    T::deserialize(&mut de)
}

/// A job: what to ingest, and the route every image of it follows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The job id; also every message's correlation id.
    pub job_id: Uuid,
    /// What the job is for, e.g. `ingest`, `dedup`, `annotate`.
    pub kind: String,
    /// Ordered stage names each image visits, starting with `ingest`.
    pub route: Vec<String>,
    /// Where the images are.
    pub source: Source,
    /// Free-form options for later stages (thresholds and the like).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Submission time, milliseconds since the Unix epoch.
    pub submitted_at_ms: u64,
}

/// Where a job's images are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Source {
    /// Every object under a prefix of the job's bucket. The first path component below the
    /// prefix names the collection when objects are nested; otherwise the collection is `default`.
    S3Prefix {
        /// The prefix, e.g. `uploads/<job>/`.
        prefix: String,
    },
    /// A list of HTTP(S) URLs, all in one collection.
    Urls {
        /// The URLs.
        urls: Vec<String>,
        /// The collection they belong to.
        #[serde(default = "default_collection")]
        collection: String,
    },
}

fn default_collection() -> String {
    "default".to_owned()
}

/// Where one source image is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Location {
    /// An object in the bucket.
    Blob {
        /// The object key.
        key: String,
    },
    /// An HTTP(S) URL.
    Url {
        /// The URL.
        url: String,
    },
}

/// One source image of a job, to be fetched, validated and stored by ingest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestItem {
    /// The job.
    pub job_id: Uuid,
    /// Index of the image within the job (0-based, dense).
    pub item: u64,
    /// The collection (sub-folder) it belongs to.
    pub collection: String,
    /// Its name relative to the source (file path or URL), for reports.
    pub name: String,
    /// Where to fetch it.
    pub location: Location,
    /// The job's route.
    pub route: Vec<String>,
    /// The job's options, copied from the job for the stages (left out when empty, so older
    /// producers and consumers read and write the same bytes).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// What ingest learned of an item's bytes when it stored them.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The content-addressed key, `images/sha256/<hex>`.
    pub key: String,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Format, width and height, as the bytes were probed.
    pub probe: (String, u32, u32),
}

impl IngestItem {
    /// The task ingest forwards once this item's bytes are stored: on ingest's hop of the
    /// route, with the job's options as its only annotation (none when there are none).
    pub fn stored(&self, stored: Stored) -> Result<ImageTask, crate::annotations::AnnotationError> {
        let Stored { key, sha256, size, probe: (format, width, height) } = stored;
        let mut annotations = BTreeMap::new();
        if !self.options.is_empty() {
            crate::annotations::write(&mut annotations, &crate::options::JobOptions(self.options.clone()))?;
        }
        Ok(ImageTask {
            job_id: self.job_id,
            item: self.item,
            collection: self.collection.clone(),
            name: self.name.clone(),
            key,
            sha256,
            format,
            width,
            height,
            size,
            route: self.route.clone(),
            hop: 0,
            annotations,
        })
    }
}

/// One stored image travelling along its route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageTask {
    /// The job.
    pub job_id: Uuid,
    /// Index of the image within the job.
    pub item: u64,
    /// The collection it belongs to.
    pub collection: String,
    /// Its source name (file path or URL).
    pub name: String,
    /// The content-addressed key of the stored bytes, `images/sha256/<hex>`.
    pub key: String,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
    /// Detected format (`jpeg`, `png`...), sniffed from the bytes.
    pub format: String,
    /// Pixel width.
    pub width: u32,
    /// Pixel height.
    pub height: u32,
    /// Size in bytes.
    pub size: u64,
    /// The job's route.
    pub route: Vec<String>,
    /// Index in `route` of the stage this message is addressed to.
    pub hop: u32,
    /// What stages found so far, by stage name (JSON values).
    #[serde(default)]
    pub annotations: BTreeMap<String, serde_json::Value>,
}

impl ImageTask {
    /// An example task for tests and samples: image `item` of `job_id` in collection `c`, a
    /// 1×1 jpeg of 1 byte named `img<item>.jpg` whose key and hash derive from `item`, on
    /// the `dedup` hop of the route `ingest`, `dedup`, with no annotations.
    pub fn example(job_id: Uuid, item: u64) -> Self {
        Self {
            job_id,
            item,
            collection: "c".into(),
            name: format!("img{item}.jpg"),
            key: format!("images/sha256/{item:064x}"),
            sha256: format!("{item:064x}"),
            format: "jpeg".into(),
            width: 1,
            height: 1,
            size: 1,
            route: vec!["ingest".into(), "dedup".into()],
            hop: 1,
            annotations: BTreeMap::new(),
        }
    }

    /// The stage after the current hop, if the route goes on.
    pub fn next_stage(&self) -> Option<&str> {
        self.route.get(self.hop as usize + 1).map(String::as_str)
    }
}

/// Every image of a collection has reached the fan-in stage or left the route before it, so
/// the stage can work on the collection as a whole (clustering).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionReady {
    /// The job.
    pub job_id: Uuid,
    /// The collection.
    pub collection: String,
    /// The job's route.
    pub route: Vec<String>,
}

/// How an image left its route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemOutcome {
    /// Reached the end of its route.
    Ok,
    /// Rejected (bad input) or failed permanently; dead-lettered.
    Failed,
    /// A duplicate of another image; left the route early.
    Duplicate,
    /// Filtered out as noise; left the route early.
    Filtered,
}

impl ItemOutcome {
    /// Stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemOutcome::Ok => "ok",
            ItemOutcome::Failed => "failed",
            ItemOutcome::Duplicate => "duplicate",
            ItemOutcome::Filtered => "filtered",
        }
    }
}

/// The per-image record a job's results are made of (stored as JSON beside the job).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemRecord {
    /// The job.
    pub job_id: Uuid,
    /// Index of the image within the job.
    pub item: u64,
    /// Its collection.
    pub collection: String,
    /// Its source name.
    pub name: String,
    /// How it left the route.
    pub outcome: ItemOutcome,
    /// The stage where it left the route.
    pub stage: String,
    /// Stored key, when it was stored.
    pub key: Option<String>,
    /// Format, size and dimensions, when known.
    pub format: Option<String>,
    /// Pixel width, when known.
    pub width: Option<u32>,
    /// Pixel height, when known.
    pub height: Option<u32>,
    /// Why it failed or was filtered.
    pub reason: Option<String>,
    /// What stages found, by stage name.
    #[serde(default)]
    pub annotations: BTreeMap<String, serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{DEDUP_SCOPE, JobOptions};

    fn item(options: BTreeMap<String, String>) -> IngestItem {
        let location = Location::Blob { key: "uploads/a.jpg".into() };
        let route = vec!["ingest".into(), "dedup".into()];
        IngestItem {
            job_id: Uuid::nil(),
            item: 7,
            collection: "c".into(),
            name: "a.jpg".into(),
            location,
            route,
            options,
        }
    }

    fn stored() -> Stored {
        Stored { key: "images/sha256/ab".into(), sha256: "ab".into(), size: 3, probe: ("png".into(), 4, 2) }
    }

    #[test]
    fn a_stored_item_becomes_the_task_on_ingests_hop() {
        let task = item(BTreeMap::new()).stored(stored()).expect("task");
        assert_eq!((task.item, task.name.as_str(), task.key.as_str(), task.size), (7, "a.jpg", "images/sha256/ab", 3));
        assert_eq!((task.format.as_str(), task.width, task.height, task.hop), ("png", 4, 2, 0));
        assert_eq!(task.next_stage(), Some("dedup"));
        assert!(task.annotations.is_empty(), "no options, no annotation");
    }

    #[test]
    fn job_options_become_the_options_annotation() {
        let options = BTreeMap::from([(DEDUP_SCOPE.to_owned(), "crawl-2024".to_owned())]);
        let task = item(options).stored(stored()).expect("task");
        let read: Option<JobOptions> = task.annotation().expect("well formed");
        assert_eq!(read.as_ref().and_then(|o| o.dedup_scope()), Some("crawl-2024"));
    }
}

//! What the tests of the stage crates and the workspace tests share: the committed fixtures
//! (`tests/fixtures`), stage contexts on the in-memory backends, images stored as ingest stores
//! them, one message through a stage and the record it finishes with, the gate of the tests
//! that run the models, and a job through the embedded pipeline.
//!
//! Dev-only, and below every stage crate: it depends on `shared/*` crates alone, so that a
//! stage's tests never need another stage crate (the dependency rule in `ARCHITECTURE.md`,
//! checked by `tests/layering.rs`).

use std::fmt::Display;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use sightline_blob::LocalStore;
use sightline_coord::{Coord, JobStatus, MemoryCoord};
use sightline_messages::annotations::Annotation;
use sightline_messages::{Body, Envelope, ImageTask, IngestItem, ItemRecord, JobSpec, Location, Source, Stored};
use sightline_runtime::embedded::{JobRun, embedded_settings, run_job};
use sightline_runtime::{Backends, Ctx, Effect, Input, Stage};
use uuid::Uuid;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A path under `tests/fixtures`.
pub fn fixture_path(rel: impl AsRef<Path>) -> PathBuf {
    repo().join("tests/fixtures").join(rel)
}

/// The bytes of a file under `tests/fixtures`.
pub fn fixture(rel: impl AsRef<Path>) -> Vec<u8> {
    let path = fixture_path(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read fixture {}: {e}", path.display()))
}

/// `tests/fixtures/sample`: 48 photos in three collections, with `truth.csv`.
pub fn sample() -> PathBuf {
    fixture_path("sample")
}

/// One row of the sample's `truth.csv`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SampleImage {
    /// The collection (a folder of the sample).
    pub collection: String,
    /// The file in the collection.
    pub file: String,
    /// `product` or `noise`.
    pub label: String,
    /// The file (in the same collection) this one re-posts, if it is a copy.
    pub duplicate_of: Option<String>,
}

impl SampleImage {
    /// `collection/file`, the name ingest gives the image of a folder job.
    pub fn name(&self) -> String {
        format!("{}/{}", self.collection, self.file)
    }

    /// Its bytes.
    pub fn bytes(&self) -> Vec<u8> {
        fixture(Path::new("sample").join(&self.collection).join(&self.file))
    }
}

/// The sample's ground truth (`tests/fixtures/sample/truth.csv`), by collection and file.
pub fn sample_truth() -> Vec<SampleImage> {
    let text = String::from_utf8(fixture("sample/truth.csv")).expect("truth.csv is UTF-8");
    let mut rows: Vec<SampleImage> = text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.trim_end().split(',').collect();
            (f.len() >= 3).then(|| SampleImage {
                collection: f[0].to_owned(),
                file: f[1].to_owned(),
                label: f[2].to_owned(),
                duplicate_of: f.get(3).filter(|d| !d.is_empty()).map(|d| (*d).to_owned()),
            })
        })
        .collect();
    rows.sort();
    rows
}

/// Writes `line` to the process's real stderr, so that it shows even though the test harness
/// captures the test's output.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Whether `test` can run the models: `SIGHTLINE_MODELS` is set, or `required` (the calling
/// crate's `models` feature, `cfg!(feature = "models")`) makes their absence a failure.
/// Otherwise says SKIPPED on stderr and returns false.
pub fn models_available(test: &str, required: bool) -> bool {
    if std::env::var_os("SIGHTLINE_MODELS").is_some() || required {
        return true;
    }
    say(&format!(
        "SKIPPED {test}: SIGHTLINE_MODELS is unset and the `models` feature is off. \
         Run `eval \"$(models/fetch.sh)\"` and rerun, or use `--features models` to make missing models a failure."
    ));
    false
}

/// A model engine loaded for the tests, or `None` with a SKIPPED line naming the fix. With
/// `required` (the calling crate's `feature`, checked with `cfg!`), a failed load panics instead.
pub fn loaded_or_skip<T, E: Display>(loaded: Result<T, E>, what: &str, feature: &str, required: bool) -> Option<T> {
    match loaded {
        Ok(engine) => Some(engine),
        Err(e) if required => panic!("{what} models: {e}"),
        Err(e) => {
            say(&format!(
                "SKIPPED: {what} models unavailable ({e}); run `eval \"$(models/fetch.sh)\"`, or use --features {feature} to fail instead"
            ));
            None
        }
    }
}

/// The engine in `cell`, loaded by `load` on first use and shared by the test binary's tests from
/// then on (a model loads once per binary); a failed load skips or panics as [`loaded_or_skip`] says.
pub fn engine_once<T, E: Display>(
    cell: &OnceLock<Option<Arc<T>>>,
    load: impl FnOnce() -> Result<T, E>,
    what: &str,
    feature: &str,
    required: bool,
) -> Option<Arc<T>> {
    cell.get_or_init(|| loaded_or_skip(load().map(Arc::new), what, feature, required)).clone()
}

/// A stage context over local-folder storage in `dir` and the given coordination.
pub fn ctx_in(dir: &Path, coord: Arc<dyn Coord>) -> Ctx {
    Ctx { blob: Arc::new(LocalStore::new(dir).expect("local store")), coord }
}

/// A stage context on the in-memory backends: local-folder storage in a temporary folder
/// (removed on drop) and in-memory coordination.
pub struct StageEnv {
    /// The context to hand the stage.
    pub ctx: Ctx,
    _dir: tempfile::TempDir,
}

impl StageEnv {
    /// A fresh context.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Self { ctx: ctx_in(dir.path(), Arc::new(MemoryCoord::new())), _dir: dir }
    }
}

impl Default for StageEnv {
    fn default() -> Self {
        Self::new()
    }
}

/// An image as ingest sees it before storing it. The tasks made from it are the ones ingest
/// forwards: hop 1 (the stage after ingest on `route`), no annotations.
#[derive(Clone, Copy, Debug)]
pub struct Item<'a> {
    /// The job.
    pub job: Uuid,
    /// The item's number in the job.
    pub item: u64,
    /// Its collection.
    pub collection: &'a str,
    /// Its name.
    pub name: &'a str,
    /// The job's route, `ingest` first.
    pub route: &'a [&'a str],
}

impl Item<'_> {
    /// Stores `bytes` content-addressed and returns the task ingest would forward: the image
    /// validated and probed as ingest does it (a fixture ingest would refuse panics).
    pub async fn ingest(&self, ctx: &Ctx, bytes: Vec<u8>) -> ImageTask {
        let probe = sightline_imaging::validate(&bytes, Some(self.name), &Default::default())
            .unwrap_or_else(|e| panic!("{}: ingest refuses it: {e}", self.name));
        self.stored(ctx, bytes, probe).await
    }

    /// Stores `bytes` content-addressed without validating them (format `jpeg`, 1x1): for
    /// bytes ingest would refuse (corrupt, truncated), to see what the stage does with them,
    /// and for stages that read only the stored bytes.
    pub async fn store(&self, ctx: &Ctx, bytes: Vec<u8>) -> ImageTask {
        let unprobed = sightline_imaging::Probe { format: "jpeg".into(), width: 1, height: 1 };
        self.stored(ctx, bytes, unprobed).await
    }

    async fn stored(&self, ctx: &Ctx, bytes: Vec<u8>, probe: sightline_imaging::Probe) -> ImageTask {
        let size = bytes.len() as u64;
        let (key, sha256, _) = sightline_blob::put_content(ctx.blob.as_ref(), Bytes::from(bytes)).await.expect("put");
        let item = IngestItem {
            job_id: self.job,
            item: self.item,
            collection: self.collection.to_owned(),
            name: self.name.to_owned(),
            location: Location::Blob { key: key.clone() },
            route: self.route.iter().map(|s| (*s).to_owned()).collect(),
            options: Default::default(),
        };
        let stored = Stored { key, sha256, size, probe: (probe.format, probe.width, probe.height) };
        let mut task = item.stored(stored).expect("no options, no annotation to encode");
        task.hop = 1;
        task
    }
}

/// The input a runner would hand a stage for `task` (a fresh message id, in `task`'s job).
pub fn input(task: &ImageTask) -> Input {
    let body = Body::Image(task.clone());
    Input { envelope: Envelope::new(&body, Uuid::new_v4(), task.job_id).expect("envelope"), body }
}

/// The record of a message its stage finished (the task's route ends there, or the stage
/// stopped it); panics on any other effects.
pub fn finished(effects: &[Effect]) -> &ItemRecord {
    match effects {
        [Effect::Finish(record)] => record,
        other => panic!("expected one Finish effect, got {other:?}"),
    }
}

/// The annotation `A` in the record of a finished message; panics when it is missing or
/// does not have `A`'s shape.
pub fn finished_annotation<A: Annotation>(effects: &[Effect]) -> A {
    typed(finished(effects))
}

/// The annotation `A` of `record`; panics when it is missing or does not have `A`'s shape.
fn typed<A: Annotation>(record: &ItemRecord) -> A {
    match record.annotation::<A>() {
        Ok(Some(value)) => value,
        Ok(None) => panic!("{}: no {} annotation", record.name, A::KEY),
        Err(e) => panic!("{}: {} annotation: {e}", record.name, A::KEY),
    }
}

/// A job run to completion through the embedded pipeline ([`run_job`], as every embedded
/// command runs one).
pub struct EmbeddedJob {
    /// The backends it ran on (storage in a temporary folder, removed on drop).
    pub backends: Backends,
    /// The job's id.
    pub job: Uuid,
    /// Its final status.
    pub status: JobStatus,
    /// One record per finished item.
    pub records: Vec<ItemRecord>,
    _storage: tempfile::TempDir,
}

impl EmbeddedJob {
    /// Runs a job of `kind` along `route` over `files` (name, bytes) with `stages` on fresh
    /// embedded backends: [`run_job`] under a 300 s limit.
    pub async fn run(stages: Vec<Arc<dyn Stage>>, kind: &str, route: &[&str], files: Vec<(String, Vec<u8>)>) -> Self {
        let storage = tempfile::tempdir().expect("tempdir");
        let backends = Backends::embedded(storage.path()).expect("backends");
        let job = Uuid::new_v4();
        let spec = JobSpec {
            job_id: job,
            kind: kind.into(),
            route: route.iter().map(|s| (*s).to_owned()).collect(),
            source: Source::S3Prefix { prefix: format!("uploads/{job}/") },
            options: Default::default(),
            submitted_at_ms: 0,
        };
        let inputs = files.into_iter().map(|(name, bytes)| (name, Bytes::from(bytes))).collect();
        let JobRun { status, records, .. } = tokio::time::timeout(
            Duration::from_secs(300),
            run_job(&backends, stages, inputs, &spec, embedded_settings(), |_| {}),
        )
        .await
        .expect("job finishes in time")
        .expect("job runs");
        Self { backends, job, status, records, _storage: storage }
    }

    /// The annotation `A` in the record of the image named `name`.
    pub fn annotation<A: Annotation>(&self, name: &str) -> A {
        typed(self.records.iter().find(|r| r.name == name).unwrap_or_else(|| panic!("no record for {name}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_truth_has_every_photo_once() {
        let truth = sample_truth();
        assert_eq!(truth.len(), 48);
        assert!(truth.iter().all(|r| r.label == "product" || r.label == "noise"), "{truth:?}");
        assert!(truth.iter().all(|r| sample().join(r.name()).is_file()), "every row names a file");
        let copies: Vec<String> = truth.iter().filter(|r| r.duplicate_of.is_some()).map(SampleImage::name).collect();
        assert!(copies.iter().any(|n| n == "Honeydew-Melon/dup0.jpg"), "{copies:?}");
    }

    #[tokio::test]
    async fn an_ingested_image_is_stored_under_its_content_hash_and_probed() {
        let env = StageEnv::new();
        let item = Item { job: Uuid::nil(), item: 3, collection: "c", name: "c/img.jpg", route: &["ingest", "detect"] };
        let bytes = fixture("sample/Honeydew-Melon/img003.jpg");
        let task = item.ingest(&env.ctx, bytes.clone()).await;
        assert_eq!(task.key, format!("images/sha256/{}", task.sha256));
        assert_eq!(env.ctx.blob.get(&task.key).await.expect("stored").as_ref(), bytes.as_slice());
        assert_eq!((task.format.as_str(), task.size, task.hop), ("jpeg", bytes.len() as u64, 1));
        assert!(task.width > 1 && task.height > 1);
        assert_eq!(task.route, vec!["ingest", "detect"]);
        // Unprobed: the same object, placeholder dimensions.
        let raw = item.store(&env.ctx, bytes).await;
        assert_eq!((raw.key, raw.width, raw.height), (task.key, 1, 1));
    }
}

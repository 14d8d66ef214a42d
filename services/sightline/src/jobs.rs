//! What a job needs in both modes (embedded and against the services): its spec and default
//! route, the upload of a folder, waiting with a progress bar, and the records and annotation
//! outputs written after it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use sightline_blob::BlobStore;
use sightline_coord::JobStatus;
use sightline_messages::{ItemRecord, JobSpec, Source};
use sightline_runtime::embedded::{JobRun, embedded_settings, run_job, wait_for_job};
use sightline_runtime::{Backends, Stage};
use uuid::Uuid;

use crate::report::{self, csv_field};
use crate::walk::Walk;

/// Files larger than this are not uploaded (ingest would reject them anyway).
const UPLOAD_CAP: u64 = 1 << 30;

pub use sightline_messages::now_ms;

/// How long an upload keeps trying while the object store is unavailable.
pub const UPLOAD_PATIENCE: Duration = Duration::from_secs(600);
/// The backoff of those tries (and of publishing a job): from this...
pub const RETRY_BASE: Duration = Duration::from_millis(500);
/// ...to at most this.
pub const RETRY_MAX: Duration = Duration::from_secs(15);

/// Uploads every file under `dir` to `prefix` + relative path, 16 at a time, with a progress
/// bar. Returns how many were uploaded. With `collections_only`, files directly in `dir` (a
/// README, a truth file) are left out: only sub-folders are collections. With `resume`, files
/// already stored under their key with the same size (an interrupted upload of the same job)
/// are not sent again.
pub async fn upload_dir(
    blob: Arc<dyn BlobStore>,
    dir: &Path,
    prefix: &str,
    collections_only: bool,
    resume: bool,
) -> anyhow::Result<Uploaded> {
    let mut files: Vec<(std::path::PathBuf, String)> =
        Walk::default().files(dir)?.into_iter().map(|f| (f.path, f.name)).collect();
    if collections_only {
        let before = files.len();
        files.retain(|(_, rel)| rel.contains('/'));
        if files.len() < before {
            eprintln!(
                "leaving out {} file(s) outside the collections (directly in {})",
                before - files.len(),
                dir.display()
            );
        }
    }
    if files.is_empty() {
        bail!("no files under {}", dir.display());
    }
    upload_files(blob, files, prefix, resume).await
}

/// What an upload did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Uploaded {
    /// Files sent.
    pub sent: usize,
    /// Files found stored already (`resume`).
    pub kept: usize,
    /// Files over the upload cap, left out.
    pub skipped: usize,
}

/// Uploads `files` (path, relative name) to `prefix` + relative name, 16 at a time, with a
/// progress bar; a file over the upload cap is skipped with a note. While the store is
/// unavailable each upload waits with capped backoff, saying so, for up to
/// [`UPLOAD_PATIENCE`]. With `resume`, a file already stored with the same size is kept.
pub async fn upload_files(
    blob: Arc<dyn BlobStore>,
    files: Vec<(std::path::PathBuf, String)>,
    prefix: &str,
    resume: bool,
) -> anyhow::Result<Uploaded> {
    enum Done {
        Sent,
        Kept,
        Skipped,
    }
    let bar = progress(files.len() as u64, "uploading");
    let patience = Patience::new(bar.clone());
    let results: Vec<anyhow::Result<Done>> = futures::stream::iter(files)
        .map(|(path, rel)| {
            let (blob, bar, key, patience) = (blob.clone(), bar.clone(), format!("{prefix}{rel}"), patience.clone());
            async move {
                let size = tokio::fs::metadata(&path).await?.len();
                if size > UPLOAD_CAP {
                    bar.println(format!("skipping {rel}: {size} bytes is over the upload cap"));
                    bar.inc(1);
                    return Ok(Done::Skipped);
                }
                if resume && matches!(blob.head(&key).await, Ok(Some(meta)) if meta.size == size) {
                    bar.inc(1);
                    return Ok(Done::Kept);
                }
                let bytes =
                    Bytes::from(tokio::fs::read(&path).await.with_context(|| format!("read {}", path.display()))?);
                patience.retry(|| blob.put(&key, bytes.clone())).await.with_context(|| format!("upload {rel}"))?;
                bar.inc(1);
                Ok(Done::Sent)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    bar.finish_and_clear();
    let mut done = Uploaded::default();
    for r in results {
        match r? {
            Done::Sent => done.sent += 1,
            Done::Kept => done.kept += 1,
            Done::Skipped => done.skipped += 1,
        }
    }
    Ok(done)
}

/// Retries a storage call while the store is unavailable (capped backoff, up to
/// [`UPLOAD_PATIENCE`]), saying on `bar` what it waits for, at most every ten seconds however
/// many uploads wait together.
#[derive(Clone)]
pub struct Patience {
    bar: ProgressBar,
    said: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

impl Patience {
    /// Patience reporting on `bar`.
    pub fn new(bar: ProgressBar) -> Self {
        Self { bar, said: Arc::default() }
    }

    /// Runs `call` until it succeeds, fails for good, or the store stayed unavailable for
    /// [`UPLOAD_PATIENCE`].
    pub async fn retry<T, F, Fut>(&self, call: F) -> Result<T, sightline_blob::BlobError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, sightline_blob::BlobError>>,
    {
        let mut waited = false;
        let result = sightline_bus::retry_for(
            UPLOAD_PATIENCE,
            RETRY_BASE,
            RETRY_MAX,
            sightline_blob::BlobError::is_transient,
            |e, _| {
                waited = true;
                self.say(&format!(
                    "object store unavailable, waiting (up to {} min): {e}",
                    UPLOAD_PATIENCE.as_secs() / 60
                ));
            },
            call,
        )
        .await;
        if waited && result.is_ok() {
            self.say("object store back, uploading");
        }
        result
    }

    fn say(&self, what: &str) {
        let mut said = self.said.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if said.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            *said = Some(std::time::Instant::now());
            // Not `bar.println`: a hidden bar (stderr not a terminal) would swallow it.
            self.bar.suspend(|| eprintln!("{what}"));
        }
    }
}

/// A progress bar of `len` steps, labelled `what`.
pub fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg:12} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// The route a job of `kind` follows unless one is given (the message contract's
/// [`sightline_messages::options::default_route`]).
pub fn default_route(kind: &str) -> anyhow::Result<Vec<String>> {
    sightline_messages::options::default_route(kind)
        .with_context(|| format!("no default route for job kind {kind:?}: pass --route"))
}

/// A job's spec, after checking its route.
pub fn spec(kind: String, route: Vec<String>, source: Source, job: Uuid) -> anyhow::Result<JobSpec> {
    sightline_messages::options::validate_route(&route).map_err(anyhow::Error::msg)?;
    Ok(JobSpec { job_id: job, kind, route, source, options: Default::default(), submitted_at_ms: now_ms() })
}

/// Waits for `job` (at most `timeout`), with a progress bar; `None` when it did not finish.
pub async fn wait_with_bar(
    coord: &dyn sightline_coord::Coord,
    job: Uuid,
    timeout: Option<Duration>,
) -> anyhow::Result<Option<JobStatus>> {
    let bar = progress(0, "processing");
    let status = wait_for_job(coord, job, |s| show_status(&bar, s), timeout).await?;
    bar.finish_and_clear();
    Ok(status)
}

/// Shows a job's progress on `bar`: finished of total, and the outcomes so far.
pub fn show_status(bar: &ProgressBar, s: &JobStatus) {
    bar.set_length(s.total);
    bar.set_position(s.finished);
    bar.set_message(report::outcomes_line(s));
}

/// Runs one job of `kind` in this process over the images already stored under the job's
/// upload prefix `uploads/<job>/`, with a progress bar: [`run_job`] with the stages of
/// `route` and the job `options`.
pub async fn run_embedded_job(
    backends: &Backends,
    job: Uuid,
    kind: &str,
    route: Vec<String>,
    options: BTreeMap<String, String>,
    stages: Vec<Arc<dyn Stage>>,
) -> anyhow::Result<JobRun> {
    let mut spec = spec(kind.into(), route, Source::S3Prefix { prefix: upload_prefix(job) }, job)?;
    spec.options = options;
    let bar = progress(0, "processing");
    let run = run_job(backends, stages, Vec::new(), &spec, embedded_settings(), |s| show_status(&bar, s)).await;
    bar.finish_and_clear();
    Ok(run?)
}

/// Where a job's uploaded images are stored: `uploads/<job>/`.
pub fn upload_prefix(job: Uuid) -> String {
    format!("uploads/{job}/")
}

/// Writes `labels.csv` and `report.html` for an annotation job, and says where.
pub async fn annotate_outputs(
    out: &Path,
    blob: &dyn BlobStore,
    job: Uuid,
    records: &[ItemRecord],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    let rows = crate::report::annotate::label_rows(records);
    crate::report::annotate::write_labels(out, &rows)?;
    crate::report::annotate::write_report(out, blob, job, records).await?;
    let products = rows.iter().filter(|r| r.label == "product").count();
    eprintln!(
        "{} images labelled ({products} product); {} and {}",
        rows.len(),
        out.join("labels.csv").display(),
        out.join("report.html").display()
    );
    Ok(())
}

/// Writes `records.json` and `records.csv`.
pub fn write_outputs(out: &Path, records: &[ItemRecord]) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    std::fs::write(out.join("records.json"), serde_json::to_vec_pretty(records)?)?;
    let mut csv = String::from("item,collection,file,outcome,stage,format,width,height,key,reason\n");
    for r in records {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            r.item,
            csv_field(&r.collection),
            csv_field(&r.name),
            r.outcome.as_str(),
            r.stage,
            r.format.as_deref().unwrap_or(""),
            r.width.map(|w| w.to_string()).unwrap_or_default(),
            r.height.map(|h| h.to_string()).unwrap_or_default(),
            r.key.as_deref().unwrap_or(""),
            csv_field(r.reason.as_deref().unwrap_or("")),
        ));
    }
    std::fs::write(out.join("records.csv"), csv)?;
    Ok(())
}

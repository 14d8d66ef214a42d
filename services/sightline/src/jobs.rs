//! Jobs: the embedded `run`, and `submit`, `status`, `results` against the services.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bytes::Bytes;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use sightline_blob::BlobStore;
use sightline_coord::JobStatus;
use sightline_messages::{ItemRecord, JobSpec, STAGES, Source};
use sightline_runtime::embedded::{Pipeline, wait_for_job};
use sightline_runtime::runner::submit_job;
use sightline_runtime::{Backends, CommonArgs, RunnerSettings, Stage, records};
use uuid::Uuid;

use crate::output;

/// Files larger than this are not uploaded (ingest would reject them anyway).
const UPLOAD_CAP: u64 = 1 << 30;

/// Where a submitted job's images come from.
pub enum SubmitSource {
    /// Upload this folder.
    Dir(PathBuf),
    /// Objects already in the bucket.
    Prefix(String),
    /// URLs, in one collection.
    Urls(Vec<String>, String),
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Every regular file under `dir` (recursively, hidden entries skipped), as (path, relative
/// name with `/` separators), sorted.
pub fn list_files(dir: &Path) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("read folder {}", d.display()))? {
            let entry = entry?;
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let ft = entry.file_type()?;
            let path = entry.path();
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_file() {
                let rel = path.strip_prefix(dir).unwrap_or(&path).to_string_lossy().replace('\\', "/");
                out.push((path, rel));
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// Extensions of the image files taken from folders (files named explicitly are always read).
const IMAGE_EXTENSIONS: [&str; 11] = ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "pnm", "ppm", "pgm"];

/// The files of a command that takes FILE... : folders expanded (recursively, sorted, image
/// extensions only), files kept as given. An error when nothing is left.
pub fn image_inputs(paths: Vec<PathBuf>) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            out.extend(list_files(&p)?.into_iter().map(|(path, _)| path).filter(|path| {
                path.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            }));
        } else {
            out.push(p);
        }
    }
    if out.is_empty() {
        bail!("no image files given");
    }
    Ok(out)
}

/// Uploads every file under `dir` to `prefix` + relative path, 16 at a time, with a progress
/// bar. Returns how many were uploaded. With `collections_only`, files directly in `dir` (a
/// README, a truth file) are left out: only sub-folders are collections.
pub async fn upload_dir(
    blob: Arc<dyn BlobStore>,
    dir: &Path,
    prefix: &str,
    collections_only: bool,
) -> anyhow::Result<usize> {
    let mut files = list_files(dir)?;
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
    let bar = progress(files.len() as u64, "uploading");
    let results: Vec<anyhow::Result<bool>> = futures::stream::iter(files)
        .map(|(path, rel)| {
            let (blob, bar, key) = (blob.clone(), bar.clone(), format!("{prefix}{rel}"));
            async move {
                let size = tokio::fs::metadata(&path).await?.len();
                if size > UPLOAD_CAP {
                    bar.println(format!("skipping {rel}: {size} bytes is over the upload cap"));
                    bar.inc(1);
                    return Ok(false);
                }
                let bytes = tokio::fs::read(&path).await.with_context(|| format!("read {}", path.display()))?;
                blob.put(&key, Bytes::from(bytes)).await.with_context(|| format!("upload {rel}"))?;
                bar.inc(1);
                Ok(true)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    bar.finish_and_clear();
    let mut n = 0;
    for r in results {
        n += usize::from(r?);
    }
    Ok(n)
}

fn progress(len: u64, what: &str) -> ProgressBar {
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

fn spec(kind: String, route: Vec<String>, source: Source, job: Uuid) -> anyhow::Result<JobSpec> {
    sightline_messages::options::validate_route(&route).map_err(anyhow::Error::msg)?;
    Ok(JobSpec { job_id: job, kind, route, source, options: Default::default(), submitted_at_ms: now_ms() })
}

/// The model store and ONNX Runtime every model stage of this process shares, after checking
/// that `models` are there and intact (an error naming the file and `models/fetch.sh` if not).
fn model_store(models: &[&str]) -> anyhow::Result<Arc<sightline_inference::ModelStore>> {
    static STORE: std::sync::OnceLock<Arc<sightline_inference::ModelStore>> = std::sync::OnceLock::new();
    let store = match STORE.get() {
        Some(s) => s.clone(),
        None => {
            let s = Arc::new(sightline_inference::ModelStore::from_env().context("read the model manifest")?);
            STORE.get_or_init(|| s).clone()
        }
    };
    store.verify(models).context("models missing or corrupt (run models/fetch.sh)")?;
    sightline_inference::Runtime::init_from_env(store.root()).context("load ONNX Runtime (run models/fetch.sh)")?;
    Ok(store)
}

/// The stages this build implements, by name.
fn stage_for(name: &str) -> anyhow::Result<Arc<dyn Stage>> {
    match name {
        "ingest" => Ok(Arc::new(sightline_ingest::Ingest::new(Default::default())?)),
        "dedup" => Ok(Arc::new(sightline_dedup::Dedup::new(Default::default())?)),
        "detect" => {
            Ok(Arc::new(sightline_detect::Detect::new(Default::default(), model_store(&sightline_detect::MODELS)?)))
        }
        "embed" => {
            Ok(Arc::new(sightline_embed::Embed::new(Default::default(), model_store(&sightline_embed::MODELS)?)))
        }
        "face" => Ok(Arc::new(sightline_face::FaceStage::from_args(&Default::default())?)),
        "cluster" => Ok(Arc::new(sightline_cluster::stage::ClusterStage::new(Default::default()))),
        "index" => Ok(Arc::new(sightline_index::IndexStage::default())),
        "ocr" => Ok(Arc::new(sightline_ocr::Ocr::from_env(&Default::default())?)),
        other if STAGES.contains(&other) => bail!("stage {other:?} is not available in this build yet"),
        other => bail!("unknown stage {other:?}"),
    }
}

async fn wait_with_bar(
    coord: &dyn sightline_coord::Coord,
    job: Uuid,
    timeout: Option<Duration>,
) -> anyhow::Result<Option<JobStatus>> {
    let bar = progress(0, "processing");
    let status = wait_for_job(
        coord,
        job,
        |s| {
            bar.set_length(s.total);
            bar.set_position(s.finished);
            bar.set_message(output::outcomes_line(s));
        },
        timeout,
    )
    .await?;
    bar.finish_and_clear();
    Ok(status)
}

/// `sightline run`: the embedded mode over a folder.
pub async fn run_embedded(dir: &Path, out: &Path, kind: &str, route: Vec<String>, json: bool) -> anyhow::Result<i32> {
    let job = Uuid::new_v4();
    let spec = spec(kind.into(), route.clone(), Source::S3Prefix { prefix: format!("uploads/{job}/") }, job)?;
    let stages = route.iter().map(|s| stage_for(s)).collect::<anyhow::Result<Vec<_>>>()?;
    let storage = out.join("storage");
    let backends = Backends::embedded(&storage).context("open local storage")?;
    let started = std::time::Instant::now();
    let uploaded = upload_dir(backends.blob.clone(), dir, &format!("uploads/{job}/"), kind == "annotate").await?;
    let settings = RunnerSettings { retry_base_ms: 50, retry_max_ms: 500, ..RunnerSettings::default() };
    let pipeline = Pipeline::start(backends.clone(), stages, settings);
    submit_job(backends.bus.as_ref(), &spec).await.context("submit job")?;
    let status = wait_with_bar(backends.coord.as_ref(), job, None).await?.context("job vanished")?;
    pipeline.stop().await;
    let elapsed = started.elapsed();
    let records = records::read_records(backends.blob.as_ref(), job).await.context("read records")?;
    write_outputs(out, &records)?;
    if route.iter().any(|s| s == "cluster") {
        annotate_outputs(out, backends.blob.as_ref(), job, &records).await?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&records)?);
    } else {
        output::print_records(&records);
        eprintln!(
            "{} files, {} in {:.1}s ({:.1} images/s); records in {}",
            uploaded,
            output::outcomes_line(&status),
            elapsed.as_secs_f64(),
            uploaded as f64 / elapsed.as_secs_f64().max(1e-9),
            out.display()
        );
    }
    Ok(0)
}

/// Writes `labels.csv` and `report.html` for an annotation job, and says where.
async fn annotate_outputs(out: &Path, blob: &dyn BlobStore, job: Uuid, records: &[ItemRecord]) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    let rows = crate::annotate::label_rows(records);
    crate::annotate::write_labels(out, &rows)?;
    crate::annotate::write_report(out, blob, job, records).await?;
    let products = rows.iter().filter(|r| r.label == "product").count();
    eprintln!(
        "{} images labelled ({products} product); {} and {}",
        rows.len(),
        out.join("labels.csv").display(),
        out.join("report.html").display()
    );
    Ok(())
}

fn write_outputs(out: &Path, records: &[ItemRecord]) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    std::fs::write(out.join("records.json"), serde_json::to_vec_pretty(records)?)?;
    let mut csv = String::from("item,collection,file,outcome,stage,format,width,height,key,reason\n");
    for r in records {
        let field = |s: &str| {
            if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
        };
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            r.item,
            field(&r.collection),
            field(&r.name),
            r.outcome.as_str(),
            r.stage,
            r.format.as_deref().unwrap_or(""),
            r.width.map(|w| w.to_string()).unwrap_or_default(),
            r.height.map(|h| h.to_string()).unwrap_or_default(),
            r.key.as_deref().unwrap_or(""),
            field(r.reason.as_deref().unwrap_or("")),
        ));
    }
    std::fs::write(out.join("records.csv"), csv)?;
    Ok(())
}

/// `sightline submit`.
#[allow(clippy::too_many_arguments)]
pub async fn submit(
    common: &CommonArgs,
    source: SubmitSource,
    kind: String,
    route: Vec<String>,
    wait: bool,
    timeout_secs: u64,
    out: Option<&Path>,
    options: Vec<(String, String)>,
    json: bool,
) -> anyhow::Result<i32> {
    let backends = Backends::distributed(common, "sightline-cli").await.context("connect to the services")?;
    let job = Uuid::new_v4();
    let source = match source {
        SubmitSource::Dir(dir) => {
            let prefix = format!("uploads/{job}/");
            let n = upload_dir(backends.blob.clone(), &dir, &prefix, kind == "annotate").await?;
            if !json {
                eprintln!("uploaded {n} files to {prefix}");
            }
            Source::S3Prefix { prefix }
        }
        SubmitSource::Prefix(prefix) => Source::S3Prefix { prefix },
        SubmitSource::Urls(urls, collection) => Source::Urls { urls, collection },
    };
    let mut spec = spec(kind, route.clone(), source, job)?;
    spec.options.extend(options);
    submit_job(backends.bus.as_ref(), &spec).await.context("publish job")?;
    if !wait {
        if json {
            println!("{}", serde_json::json!({ "job": job }));
        } else {
            println!("{job}");
        }
        return Ok(0);
    }
    if !json {
        eprintln!("job {job} submitted, waiting");
    }
    match wait_with_bar(backends.coord.as_ref(), job, Some(Duration::from_secs(timeout_secs))).await? {
        Some(status) => {
            if let Some(out) = out {
                let records = records::read_records(backends.blob.as_ref(), job).await.context("read records")?;
                write_outputs(out, &records)?;
                if route.iter().any(|s| s == "cluster") {
                    annotate_outputs(out, backends.blob.as_ref(), job, &records).await?;
                }
            }
            if json {
                println!("{}", serde_json::json!({ "job": job, "status": status }));
            } else {
                println!("{job}");
                eprintln!("{}", output::status_line(&status));
            }
            Ok(0)
        }
        None => {
            eprintln!("job {job} not finished after {timeout_secs}s; `sightline status {job}` to check later");
            Ok(3)
        }
    }
}

/// `sightline status JOB`.
pub async fn status(common: &CommonArgs, job: Uuid, json: bool) -> anyhow::Result<i32> {
    let coord = sightline_coord::RedisCoord::connect(&common.redis_url).await.context("connect to redis")?;
    let Some(status) = sightline_coord::Coord::job_status(&coord, &job.to_string()).await? else {
        bail!("no job {job} (unknown, not started yet, or expired)");
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "complete": status.is_complete(), "status": status }))?
        );
    } else {
        println!("{}", output::status_line(&status));
        for (c, (done, total)) in &status.collections {
            println!("  {c}: {done}/{total}");
        }
    }
    Ok(0)
}

/// `sightline results JOB`.
pub async fn results(common: &CommonArgs, job: Uuid, json: bool) -> anyhow::Result<i32> {
    let backends = Backends::distributed(common, "sightline-cli").await.context("connect to the services")?;
    let records = records::read_records(backends.blob.as_ref(), job).await.context("read records")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&records)?);
    } else {
        output::print_records(&records);
    }
    Ok(0)
}

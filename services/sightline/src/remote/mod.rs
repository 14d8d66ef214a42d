//! The remote commands: `submit`, `status` and `results` against the services (RabbitMQ,
//! Redis, S3), and [`dlq`] for the dead letters.

pub mod dlq;
pub mod store;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use sightline_messages::Source;
use sightline_runtime::runner::submit_job;
use sightline_runtime::{Backends, CommonArgs, records};
use uuid::Uuid;

use crate::jobs::{annotate_outputs, spec, upload_dir, upload_prefix, wait_with_bar, write_outputs};
use crate::report;

/// Where a submitted job's images come from.
pub enum SubmitSource {
    /// Upload this folder.
    Dir(PathBuf),
    /// Objects already in the bucket.
    Prefix(String),
    /// URLs, in one collection.
    Urls(Vec<String>, String),
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
    resume: Option<Uuid>,
) -> anyhow::Result<i32> {
    let backends = Backends::distributed(common, "sightline-cli").await.context("connect to the services")?;
    let job = match resume {
        Some(job) => {
            if !matches!(source, SubmitSource::Dir(_)) {
                bail!("--resume continues an interrupted upload: give the same folder again");
            }
            if backends.coord.job_status(&job.to_string()).await.context("look up the job")?.is_some() {
                bail!("job {job} was submitted already: `sightline status {job}`");
            }
            job
        }
        None => Uuid::new_v4(),
    };
    let source = match source {
        SubmitSource::Dir(dir) => {
            let prefix = upload_prefix(job);
            if !json {
                eprintln!(
                    "job {job}: uploading {} (if interrupted: the same command with --resume {job})",
                    dir.display()
                );
            }
            let up = upload_dir(backends.blob.clone(), &dir, &prefix, kind == "annotate", resume.is_some()).await?;
            if !json {
                let kept = if up.kept > 0 { format!(" ({} stored already)", up.kept) } else { String::new() };
                eprintln!("uploaded {} files to {prefix}{kept}", up.sent);
            }
            Source::S3Prefix { prefix }
        }
        SubmitSource::Prefix(prefix) => Source::S3Prefix { prefix },
        SubmitSource::Urls(urls, collection) => Source::Urls { urls, collection },
    };
    let mut spec = spec(kind, route.clone(), source, job)?;
    spec.options.extend(options);
    publish_patiently(&backends, &spec).await.context("publish job")?;
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
                eprintln!("{}", report::status_line(&status));
            }
            Ok(0)
        }
        None => {
            eprintln!("job {job} not finished after {timeout_secs}s; `sightline status {job}` to check later");
            Ok(3)
        }
    }
}

/// Publishes the job, retrying with capped backoff while the broker is unavailable (up to
/// [`crate::jobs::UPLOAD_PATIENCE`]), saying what it waits for.
async fn publish_patiently(backends: &Backends, spec: &sightline_messages::JobSpec) -> anyhow::Result<()> {
    use crate::jobs::{RETRY_BASE, RETRY_MAX, UPLOAD_PATIENCE};
    let waiting = |e: &sightline_bus::BusError, delay: Duration| {
        eprintln!("broker unavailable, retrying in {:.1}s: {e}", delay.as_secs_f64());
    };
    let publish = || submit_job(backends.bus.as_ref(), spec);
    sightline_bus::retry_for(
        UPLOAD_PATIENCE,
        RETRY_BASE,
        RETRY_MAX,
        sightline_bus::BusError::is_transient,
        waiting,
        publish,
    )
    .await?;
    Ok(())
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
        println!("{}", report::status_line(&status));
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
        report::print_records(&records);
    }
    Ok(0)
}

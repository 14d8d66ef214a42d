//! The embedded commands: everything that runs the stages in this process, without the
//! services (in-memory bus and coordination, local folder storage; the same stage code as the
//! workers). `sightline run` and `sightline annotate` are here; the other commands each have a
//! module.

pub mod cluster;
pub mod dedup;
pub mod face;
pub mod ocr;
pub mod search;

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use sightline_messages::STAGES;
use sightline_runtime::{Backends, Stage};
use uuid::Uuid;

use crate::jobs::{annotate_outputs, run_embedded_job, upload_dir, upload_prefix, write_outputs};
use crate::report;

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
        "face" => Ok(Arc::new(sightline_face::FaceStage::from_store(
            &Default::default(),
            model_store(&sightline_face::engine::MODELS)?,
        ))),
        "cluster" => Ok(Arc::new(sightline_cluster::stage::ClusterStage::new(Default::default()))),
        "index" => Ok(Arc::new(sightline_index::IndexStage::default())),
        "ocr" => Ok(Arc::new(sightline_ocr::Ocr::new(&Default::default(), model_store(&sightline_ocr::MODELS)?))),
        other if STAGES.contains(&other) => bail!("stage {other:?} is not available in this build yet"),
        other => bail!("unknown stage {other:?}"),
    }
}

/// Runs an annotation job over `dir` in this process, storing into `out/storage`, and writes
/// `records.json`, `records.csv`, `labels.csv` and `report.html` to `out` (progress and the
/// summary go to stderr). Returns the backends, the job and its records.
pub async fn annotate_into(
    dir: &Path,
    out: &Path,
) -> anyhow::Result<(Backends, Uuid, Vec<sightline_messages::ItemRecord>)> {
    let job = Uuid::new_v4();
    let route = crate::jobs::default_route("annotate")?;
    let stages = route.iter().map(|s| stage_for(s)).collect::<anyhow::Result<Vec<_>>>()?;
    let backends = Backends::embedded(&out.join("storage")).context("open local storage")?;
    upload_dir(backends.blob.clone(), dir, &upload_prefix(job), true, false).await?;
    let run = run_embedded_job(&backends, job, "annotate", route, Default::default(), stages).await?;
    write_outputs(out, &run.records)?;
    annotate_outputs(out, backends.blob.as_ref(), job, &run.records).await?;
    Ok((backends, job, run.records))
}

/// `sightline run`: the embedded mode over a folder.
pub async fn run_embedded(dir: &Path, out: &Path, kind: &str, route: Vec<String>, json: bool) -> anyhow::Result<i32> {
    let job = Uuid::new_v4();
    let stages = route.iter().map(|s| stage_for(s)).collect::<anyhow::Result<Vec<_>>>()?;
    let storage = out.join("storage");
    let backends = Backends::embedded(&storage).context("open local storage")?;
    let started = std::time::Instant::now();
    let uploaded = upload_dir(backends.blob.clone(), dir, &upload_prefix(job), kind == "annotate", false).await?.sent;
    let run = run_embedded_job(&backends, job, kind, route.clone(), Default::default(), stages).await?;
    let elapsed = started.elapsed();
    write_outputs(out, &run.records)?;
    if route.iter().any(|s| s == "cluster") {
        annotate_outputs(out, backends.blob.as_ref(), job, &run.records).await?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&run.records)?);
    } else {
        report::print_records(&run.records);
        eprintln!(
            "{} files, {} in {:.1}s ({:.1} images/s); records in {}",
            uploaded,
            report::outcomes_line(&run.status),
            elapsed.as_secs_f64(),
            uploaded as f64 / elapsed.as_secs_f64().max(1e-9),
            out.display()
        );
    }
    Ok(0)
}

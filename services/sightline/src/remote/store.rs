//! `sightline submit store --camera CAMERA.toml VIDEO... --wait --out OUT`: a camera's videos
//! through the distributed store route (ingest cuts each into segments, detect replicas find
//! the people, track runs each video's segments in order). With `--out`, the tables of each
//! video are fetched and the report is drawn locally (the heat map on the video's first frame):
//! the same files as `sightline store`, per video in `OUT/<video>/` (or in OUT itself for one).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use sightline_messages::annotations::StoreOut;
use sightline_messages::options::{JOB_STORE, STORE_CAMERA, STORE_SEGMENT_S, default_route};
use sightline_messages::{ItemOutcome, Source};
use sightline_runtime::{Backends, CommonArgs, records};
use sightline_tracking::report::Report;
use uuid::Uuid;

use crate::jobs::{spec, upload_files, upload_prefix, wait_with_bar};
use crate::store::read_camera;
use crate::store::run::{Summary, write_outputs};

/// `sightline submit store` arguments.
#[derive(clap::Args, Debug)]
pub struct SubmitStoreArgs {
    /// The camera file (TOML or JSON).
    #[arg(long)]
    pub camera: PathBuf,
    /// Video files of the camera.
    #[arg(required = true)]
    pub videos: Vec<PathBuf>,
    /// Segment length, seconds (one message's work).
    #[arg(long, default_value_t = sightline_messages::options::DEFAULT_SEGMENT_S)]
    pub segment_s: f64,
    /// Wait for the job, with a progress bar.
    #[arg(long)]
    pub wait: bool,
    /// Write the outputs here after --wait.
    #[arg(long, requires = "wait")]
    pub out: Option<PathBuf>,
    /// Give up waiting after this many seconds (exit code 3).
    #[arg(long, default_value_t = 3600)]
    pub timeout_secs: u64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub async fn submit_store(common: &CommonArgs, args: SubmitStoreArgs) -> anyhow::Result<i32> {
    let camera = read_camera(&args.camera)?;
    let camera_toml = camera.to_toml().context("write the camera as TOML")?;
    for v in &args.videos {
        if !v.is_file() {
            bail!("{}: not a file", v.display());
        }
    }
    let backends = Backends::distributed(common, "sightline-cli").await.context("connect to the services")?;
    let job = Uuid::new_v4();
    let prefix = upload_prefix(job);
    let collection = sightline_blob::key_segment(&camera.name);
    let files: Vec<(PathBuf, String)> = args
        .videos
        .iter()
        .map(|v| {
            let name = v.file_name().and_then(|n| n.to_str()).unwrap_or("video").to_owned();
            (v.clone(), format!("{collection}/{name}"))
        })
        .collect();
    if !args.json {
        eprintln!("job {job}: uploading {} video(s)", files.len());
    }
    upload_files(backends.blob.clone(), files.clone(), &prefix, false).await?;
    let route = default_route(JOB_STORE).context("the store route")?;
    let mut spec = spec(JOB_STORE.to_owned(), route, Source::S3Prefix { prefix }, job)?;
    spec.options.insert(STORE_CAMERA.to_owned(), camera_toml);
    spec.options.insert(STORE_SEGMENT_S.to_owned(), args.segment_s.to_string());
    sightline_runtime::runner::submit_job(backends.bus.as_ref(), &spec).await.context("publish job")?;
    if !args.wait {
        if args.json {
            println!("{}", serde_json::json!({ "job": job }));
        } else {
            println!("{job}");
        }
        return Ok(0);
    }
    let Some(status) =
        wait_with_bar(backends.coord.as_ref(), job, Some(Duration::from_secs(args.timeout_secs))).await?
    else {
        eprintln!("job {job} not finished after {}s; `sightline status {job}` to check later", args.timeout_secs);
        return Ok(3);
    };
    let records = records::read_records(backends.blob.as_ref(), job).await.context("read records")?;
    let mut failed = 0;
    let mut summaries = Vec::new();
    for r in &records {
        if r.outcome != ItemOutcome::Ok {
            failed += 1;
            eprintln!("{}: {} ({})", r.name, r.outcome.as_str(), r.reason.as_deref().unwrap_or("no reason"));
            continue;
        }
        let Some(out) = args.out.as_deref() else { continue };
        let store: StoreOut =
            serde_json::from_value(r.annotations.get("store").cloned().context("no store annotation")?)
                .context("read the store annotation")?;
        let dir = if records.len() == 1 {
            out.to_owned()
        } else {
            out.join(Path::new(&r.name).file_stem().unwrap_or_default())
        };
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        for name in sightline_track::TABLES {
            let bytes =
                backends.blob.get(&format!("{}{name}", store.prefix)).await.with_context(|| format!("fetch {name}"))?;
            std::fs::write(dir.join(name), &bytes).with_context(|| format!("write {name}"))?;
        }
        let report: Report =
            serde_json::from_slice(&std::fs::read(dir.join("report.json"))?).context("read report.json")?;
        // The heat map is drawn on the video's first frame, from the local file.
        let local = files.iter().find(|(_, rel)| rel == &r.name).map(|(p, _)| p.clone());
        let frame = local.and_then(|p| {
            sightline_video::Frames::open(&p, 1.0, sightline_video::Window { start_s: 0.0, duration_s: Some(1.0) })
                .ok()
                .and_then(|mut f| f.next())
                .and_then(Result::ok)
                .map(|f| f.image)
        });
        let summary = Summary::of(&report, store.errors.clone(), &dir);
        write_outputs(&dir, &report, &summary, frame.as_ref())?;
        summaries.push(summary);
    }
    if args.json {
        println!("{}", serde_json::json!({ "job": job, "status": status, "videos": summaries }));
    } else {
        println!("{job}");
        eprintln!("{}", crate::report::status_line(&status));
        for s in &summaries {
            eprintln!(
                "{}: {} frames, {} tracks, {} in / {} out -> {}",
                s.camera, s.frames, s.tracks, s.entries, s.exits, s.out
            );
        }
    }
    Ok(i32::from(failed > 0))
}

//! `sightline store --camera CAMERA.toml --out OUT VIDEO_OR_FRAMES...`: one camera's footage
//! through person detection, tracking and the analytics of `sightline-tracking`, in this
//! process. Several inputs are consecutive footage of the camera (a recorder's files, one per
//! minute or hour): their times follow on.
//!
//! It runs the store route's steps in this process, a segment at a time: detect's
//! (`sightline_detect::people`), then track's (`sightline_tracking::segments::VideoState`).
//!
//! Composition: on every third frame the head of each person tall enough for a face of the
//! face detector's minimum size is given to the face models; a track's age and gender come
//! from its frontal faces (else any face); tracks whose frontal faces are the same person (the
//! face stage's person rule) count once. A track never tall enough says `face too small`.

use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use image::RgbImage;
use serde::Serialize;
use sightline_detect::people::{FaceLookFn, detect_frames, detect_video_window, store_config};
use sightline_face::{EngineConfig, FaceEngine};
use sightline_tracking::analytics::Analytics;
use sightline_tracking::camera::Camera;
use sightline_tracking::geometry::BBox;
use sightline_tracking::report::Report;
use sightline_tracking::segments::{SegmentDetections, VideoState, store_tracker, windows};
use sightline_video::{Frames, Window};

use super::{DetectorArgs, progress, read_camera};

/// `sightline store` arguments.
#[derive(Args, Debug)]
pub struct StoreArgs {
    /// The camera file (TOML or JSON: fps, lines, zones, counting region, correction);
    /// docs/store.md describes it.
    #[arg(long)]
    pub camera: PathBuf,
    /// Output folder: counts.csv, crossings.csv, dwell.csv, heatmap.csv, heatmap.png,
    /// composition.csv, tracks.json, frames.csv, occupancy.csv, report.html.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Video files (AVI, MP4, MKV, ...) or folders of JPEG/PNG frames, in recording order.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Frame rate the frames of a folder were recorded at (their timestamps are index / rate).
    #[arg(long, default_value_t = 5.0)]
    pub source_fps: f64,
    /// Segment length, seconds: a video is decoded and detected a segment at a time, as the
    /// distributed route cuts it (`store.segment_s`).
    #[arg(long, default_value_t = sightline_messages::options::DEFAULT_SEGMENT_S)]
    pub segment_s: f64,
    /// Skip the face models (composition is then all `unknown`, `faces not analysed`).
    #[arg(long)]
    pub no_faces: bool,
    /// Print a JSON summary to stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub detector: DetectorArgs,
}

/// The summary printed with `--json` and shown on the report.
#[derive(Serialize)]
pub struct Summary {
    /// The camera's name.
    pub camera: String,
    /// Sampled frames analysed.
    pub frames: u64,
    /// Seconds of footage.
    pub seconds: f64,
    /// Confirmed tracks.
    pub tracks: usize,
    /// Entries across all lines.
    pub entries: usize,
    /// Exits across all lines.
    pub exits: usize,
    /// Zone visits.
    pub visits: usize,
    /// Tracks with an age and gender.
    pub visitors_with_attributes: usize,
    /// Decoding problems (the frames before each were used).
    pub errors: Vec<String>,
    /// Where the files are.
    pub out: String,
}

impl Summary {
    /// The summary of `report`.
    pub fn of(report: &Report, errors: Vec<String>, out: &Path) -> Self {
        let count = |d: &str| report.crossings.iter().filter(|c| c.direction.as_str() == d).count();
        Summary {
            camera: report.camera.clone(),
            frames: report.frames.len() as u64,
            seconds: report.t_end,
            tracks: report.tracks.len(),
            entries: count("in"),
            exits: count("out"),
            visits: report.dwell.len(),
            visitors_with_attributes: report
                .tracks
                .iter()
                .filter(|t| t.visitor.as_ref().is_some_and(|v| v.gender.is_some()))
                .count(),
            errors,
            out: out.display().to_string(),
        }
    }
}

/// Runs the command: exit 0, or 1 when an input had a decoding fault (the outputs hold what
/// decoded before it, and name the fault).
pub async fn run(args: StoreArgs) -> anyhow::Result<i32> {
    let camera = read_camera(&args.camera)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("create {}", args.out.display()))?;
    let out = args.out.clone();
    let json = args.json;
    let (report, errors, background) =
        tokio::task::spawn_blocking(move || analyse(&camera, &args)).await.context("store task")??;
    let summary = Summary::of(&report, errors, &out);
    write_outputs(&out, &report, &summary, background.as_ref())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "{}: {} frames ({:.0} s), {} tracks, {} in / {} out, {} zone visits; {}",
            summary.camera,
            summary.frames,
            summary.seconds,
            summary.tracks,
            summary.entries,
            summary.exits,
            summary.visits,
            out.join("report.html").display()
        );
        for e in &summary.errors {
            eprintln!("warning: {e}");
        }
    }
    Ok(i32::from(!summary.errors.is_empty()))
}

/// Detects, tracks and analyses every input, a segment at a time (the distributed route's
/// steps, in this process); the report, the decoding faults and a frame for the heat map.
pub fn analyse(camera: &Camera, args: &StoreArgs) -> anyhow::Result<(Report, Vec<String>, Option<RgbImage>)> {
    let detector_args = args.detector.clone();
    let detector = detector_args.load()?;
    let config = store_config(detector_args.tiles.or(camera.tiles), camera.fps);
    let engine = if args.no_faces {
        None
    } else {
        Some(FaceEngine::from_env(1, EngineConfig::default()).context("load the face models")?)
    };
    let look = |img: &RgbImage, b: &BBox| engine.as_ref().and_then(|e| sightline_face::segment::face_look(e, img, b));
    let faces: Option<FaceLookFn<'_>> = engine.as_ref().map(|_| &look as FaceLookFn<'_>);
    let analytics = Analytics::new(camera.clone(), store_tracker(camera.fps)).context("camera")?;
    let mut state = VideoState::new(analytics, 0);
    let mut background: Option<RgbImage> = None;
    let mut offset = 0.0f64; // where the current input starts on the camera's timeline
    let bar = progress(0, "frames");
    let threads = detector_args.sessions;
    for input in &args.inputs {
        let segments: Vec<SegmentDetections> = if input.is_dir() {
            let files = sightline_video::frame_files(input)?;
            if files.is_empty() {
                bail!("{}: no JPEG or PNG frames", input.display());
            }
            let sampled = sightline_video::sample_folder(&files, args.source_fps, camera.fps)?;
            bar.inc_length(sampled.len() as u64);
            let frames =
                sampled.into_iter().map(|(_, t, p)| sightline_video::read_frame(&p).map(|img| (offset + t, img)));
            vec![detect_frames(&detector, &config, frames, threads, faces, |n| bar.inc(n as u64))?]
        } else {
            let info = sightline_video::probe(input)?;
            bar.inc_length(info.duration_s.map_or(0, |d| (d * camera.fps).ceil() as u64));
            let mut out = Vec::new();
            for (start_s, duration_s) in windows(info.duration_s, args.segment_s) {
                let window = Window { start_s, duration_s };
                let seg =
                    detect_video_window(&detector, &config, input, window, camera.fps, offset, threads, faces, |n| {
                        bar.inc(n as u64)
                    })??;
                let stop = seg.error.is_some();
                out.push(seg);
                if stop {
                    break; // the video is cut: later windows would only repeat the fault
                }
            }
            out
        };
        if background.is_none() {
            background = first_frame(input)?;
        }
        for seg in &segments {
            state.count += 1;
            state.apply(seg).context("track")?;
        }
        offset = state.t_end.max(offset);
    }
    bar.finish_and_clear();
    if state.analytics.last_t().is_none() {
        bail!(
            "no frame could be decoded from the inputs{}",
            state.errors.first().map(|e| format!(": {e}")).unwrap_or_default()
        );
    }
    let report = sightline_track::report_of(&state);
    Ok((report, state.errors, background))
}

/// The first frame of an input, to draw the heat map on.
fn first_frame(input: &Path) -> anyhow::Result<Option<RgbImage>> {
    if input.is_dir() {
        let files = sightline_video::frame_files(input)?;
        return Ok(files.first().and_then(|f| sightline_video::read_frame(f).ok()));
    }
    let mut frames = Frames::open(input, 1.0, Window { start_s: 0.0, duration_s: Some(1.0) })?;
    Ok(frames.next().and_then(Result::ok).map(|f| f.image))
}

/// Writes every output file.
pub fn write_outputs(out: &Path, report: &Report, summary: &Summary, frame: Option<&RgbImage>) -> anyhow::Result<()> {
    let file = |name: &str| -> anyhow::Result<BufWriter<std::fs::File>> {
        let p = out.join(name);
        Ok(BufWriter::new(std::fs::File::create(&p).with_context(|| format!("create {}", p.display()))?))
    };
    report.write_counts_csv(file("counts.csv")?).context("write counts.csv")?;
    report.write_crossings_csv(file("crossings.csv")?).context("write crossings.csv")?;
    report.write_dwell_csv(file("dwell.csv")?).context("write dwell.csv")?;
    report.write_heatmap_csv(file("heatmap.csv")?).context("write heatmap.csv")?;
    report.write_composition_csv(file("composition.csv")?).context("write composition.csv")?;
    report.write_frames_csv(file("frames.csv")?).context("write frames.csv")?;
    report.write_occupancy_csv(file("occupancy.csv")?).context("write occupancy.csv")?;
    report.write_tracks_json(file("tracks.json")?).context("write tracks.json")?;
    let png = match frame {
        Some(f) => sightline_tracking::heatmap::heatmap_png(f, &report.heatmap),
        None => image::DynamicImage::ImageRgba8(sightline_tracking::heatmap::heatmap_rgba(&report.heatmap)).to_rgb8(),
    };
    sightline_tracking::heatmap::write_png(&png, file("heatmap.png")?).context("write heatmap.png")?;
    let html = super::report::html(report, summary);
    std::fs::write(out.join("report.html"), html).context("write report.html")?;
    Ok(())
}

//! `sightline count FILE...`: people per image (the boxes in pixels); with `--camera`, the
//! camera's counting region and correction applied; with `--calibrate TRUTH.csv --out
//! CAMERA.toml`, the correction fitted from labelled frames and written to the camera file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use sightline_tracking::camera::{Camera, Correction};
use sightline_vision::people::Person;

use sightline_detect::people::parallel_map;

use super::{DetectorArgs, in_region, progress, read_camera, read_image};

/// `sightline count` arguments.
#[derive(Args, Debug)]
pub struct CountArgs {
    /// Image files or folders (searched recursively).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Apply this camera's counting region and correction (`count` is then the corrected
    /// count, `detections` the number of boxes).
    #[arg(long)]
    pub camera: Option<PathBuf>,
    /// Fit the camera's count correction from labelled frames (`file,count`, matched to the
    /// FILEs by file name; files without a row are ignored) and write it to --out.
    #[arg(long, value_name = "TRUTH.csv", requires = "out")]
    pub calibrate: Option<PathBuf>,
    /// The camera file --calibrate writes (updated in place when it exists: only its
    /// correction changes; else started from --camera or a default camera).
    #[arg(long, value_name = "CAMERA.toml", requires = "calibrate")]
    pub out: Option<PathBuf>,
    /// Print JSON to stdout (progress stays on stderr).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub detector: DetectorArgs,
}

/// One file's result.
#[derive(Serialize)]
struct FileCount {
    file: String,
    /// People counted: the number of boxes, or with a camera the corrected count in its region.
    count: f64,
    /// With a camera: the number of boxes (all of them, in the region or not).
    #[serde(skip_serializing_if = "Option::is_none")]
    detections: Option<usize>,
    /// `[x, y, w, h, score]` in pixels.
    boxes: Vec<[f32; 5]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// What `--calibrate` fitted.
#[derive(Serialize)]
struct Calibration {
    camera: String,
    frames: usize,
    scale: f64,
    offset: f64,
    /// Mean absolute error on the fitted frames, before and after the correction.
    mae_raw: f64,
    mae_fitted: f64,
    /// Leave-one-out: each frame predicted by the correction fitted on the others.
    mae_leave_one_out: f64,
    unmatched_files: usize,
}

fn boxes_of(people: &[Person]) -> Vec<[f32; 5]> {
    people.iter().map(|p| [p.bbox.x, p.bbox.y, p.bbox.w, p.bbox.h, p.score]).collect()
}

/// Reads `file,count` rows (a header row is skipped).
fn read_truth(path: &Path) -> anyhow::Result<BTreeMap<String, f64>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((file, count)) = line.split_once(',') else {
            bail!("{}:{}: expected file,count", path.display(), i + 1);
        };
        match count.trim().parse::<f64>() {
            Ok(c) if c.is_finite() && c >= 0.0 => {
                out.insert(file.trim().to_owned(), c);
            }
            _ if i == 0 => {} // the header
            _ => bail!("{}:{}: {count:?} is not a count", path.display(), i + 1),
        }
    }
    Ok(out)
}

/// Runs the command; exit code 1 when a file could not be read (its entry carries `error`).
pub async fn run(args: CountArgs) -> anyhow::Result<i32> {
    let files = crate::walk::image_inputs(args.files.clone())?;
    if files.is_empty() {
        bail!("no image files among the arguments");
    }
    let camera = args.camera.as_deref().map(read_camera).transpose()?;
    let truth = args.calibrate.as_deref().map(read_truth).transpose()?;
    // Calibration counts as the camera it writes will: --camera, else the existing --out.
    let counting = match (&camera, args.calibrate.is_some(), args.out.as_deref()) {
        (None, true, Some(out)) if out.exists() => Some(read_camera(out)?),
        _ => camera.clone(),
    };
    let detector_args = args.detector.clone();
    let config = detector_args.config(counting.as_ref());
    let bar = progress(files.len() as u64, "count");
    let detected: Vec<(PathBuf, Result<Vec<Person>, String>)> = {
        let files = files.clone();
        let bar = bar.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let detector = detector_args.load()?;
            Ok(parallel_map(&files, detector_args.sessions, |f| {
                let r = (
                    f.clone(),
                    read_image(f).and_then(|img| detector.detect_with(&img, &config).map_err(|e| e.to_string())),
                );
                bar.inc(1);
                r
            }))
        })
        .await
        .context("count task")??
    };
    bar.finish_and_clear();

    if let (Some(truth), Some(out)) = (truth, args.out.as_deref()) {
        return calibrate(&detected, &truth, camera, counting.as_ref(), out, args.json);
    }

    let correction = camera.as_ref().map(Camera::correction_or_identity);
    let mut failed = false;
    let results: Vec<FileCount> = detected
        .iter()
        .map(|(path, r)| {
            let file = path.display().to_string();
            match r {
                Ok(people) => {
                    let raw = in_region(camera.as_ref(), people);
                    FileCount {
                        file,
                        count: correction.as_ref().map_or(raw as f64, |c| round2(c.apply(raw as f64))),
                        detections: camera.as_ref().map(|_| people.len()),
                        boxes: boxes_of(people),
                        error: None,
                    }
                }
                Err(e) => {
                    failed = true;
                    FileCount { file, count: 0.0, detections: None, boxes: Vec::new(), error: Some(e.clone()) }
                }
            }
        })
        .collect();
    if args.json {
        let lines = results.iter().map(serde_json::to_string).collect::<Result<Vec<_>, _>>()?;
        println!("[\n{}\n]", lines.join(",\n"));
    } else {
        for r in &results {
            match (&r.error, r.detections) {
                (Some(e), _) => println!("{}: error: {e}", r.file),
                (None, Some(d)) => println!("{}: {} (corrected; {d} boxes)", r.file, r.count),
                (None, None) => println!("{}: {}", r.file, r.count),
            }
        }
        let total: f64 = results.iter().map(|r| r.count).sum();
        eprintln!("{} file(s), {total} people in all", results.len());
    }
    Ok(i32::from(failed))
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn calibrate(
    detected: &[(PathBuf, Result<Vec<Person>, String>)],
    truth: &BTreeMap<String, f64>,
    camera: Option<Camera>,
    counting: Option<&Camera>,
    out: &Path,
    json: bool,
) -> anyhow::Result<i32> {
    // The camera to update: --out itself when it exists (only its correction changes), else
    // --camera, else a default camera named after the file.
    let mut target = if out.exists() {
        read_camera(out)?
    } else {
        camera
            .clone()
            .unwrap_or_else(|| Camera::new(out.file_stem().and_then(|s| s.to_str()).unwrap_or("camera").to_owned()))
    };
    let mut pairs = Vec::new();
    let mut unmatched = 0;
    for (path, r) in detected {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let Some(&t) = truth.get(name) else {
            unmatched += 1;
            continue;
        };
        let people = r.as_ref().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        pairs.push((in_region(counting, people) as f64, t));
    }
    if pairs.is_empty() {
        bail!("no FILE matches a row of the truth file (rows are matched by file name)");
    }
    let fitted = Correction::fit(&pairs);
    let n = pairs.len() as f64;
    let mae = |c: &Correction| pairs.iter().map(|(r, t)| (c.apply(*r) - t).abs()).sum::<f64>() / n;
    let loo = if pairs.len() > 1 {
        (0..pairs.len())
            .map(|i| {
                let rest: Vec<(f64, f64)> =
                    pairs.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, p)| *p).collect();
                (Correction::fit(&rest).apply(pairs[i].0) - pairs[i].1).abs()
            })
            .sum::<f64>()
            / n
    } else {
        f64::NAN
    };
    let report = Calibration {
        camera: target.name.clone(),
        frames: pairs.len(),
        scale: fitted.scale,
        offset: fitted.offset,
        mae_raw: mae(&Correction::default()),
        mae_fitted: mae(&fitted),
        mae_leave_one_out: loo,
        unmatched_files: unmatched,
    };
    target.correction = Some(fitted);
    target.validate().context("the calibrated camera")?;
    let text = target.to_toml().context("write the camera as TOML")?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    std::fs::write(out, text).with_context(|| format!("write {}", out.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{}: corrected = {:.3} x raw {:+.3}, fitted on {} frame(s); MAE {:.2} raw, {:.2} fitted, {:.2} leave-one-out",
            out.display(),
            report.scale,
            report.offset,
            report.frames,
            report.mae_raw,
            report.mae_fitted,
            report.mae_leave_one_out
        );
        if unmatched > 0 {
            eprintln!("{unmatched} file(s) had no row in the truth file and were ignored");
        }
    }
    Ok(0)
}

//! `sightline count` and `sightline store` on the committed fixtures (`tests/fixtures/store`:
//! four seconds of OpenCV's `vtest.avi` and four of its frames): people per image, the count
//! correction fitted and applied, a video's tables and report, a frame folder, a cut video and
//! a file that is no video.
//!
//! They run the person detector: `eval "$(models/fetch.sh)"` first (`tests/run.sh` does);
//! without models they are skipped, unless the `models` feature makes that a failure. The store
//! tests need FFmpeg (`tests/run.sh` installs it).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{models_available, repo};
use serde_json::Value;

fn sightline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sightline")).args(args).output().expect("run sightline")
}

fn frames() -> Vec<PathBuf> {
    let dir = repo().join("tests/fixtures/store/frames");
    let mut f: Vec<PathBuf> = std::fs::read_dir(&dir).expect("frames").map(|e| e.expect("entry").path()).collect();
    f.sort();
    f
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// The fixture video's camera file (`tests/fixtures/store/camera.toml`).
fn camera_text() -> String {
    std::fs::read_to_string(repo().join("tests/fixtures/store/camera.toml")).expect("camera fixture")
}

#[test]
fn count_prints_people_per_image_and_applies_a_fitted_correction() {
    if !models_available("count_prints_people_per_image_and_applies_a_fitted_correction") {
        return;
    }
    let files = frames();
    let mut args = vec!["count", "--json", "--tiles", "0"];
    args.extend(files.iter().map(|p| s(p)));
    let out = sightline(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON array");
    assert_eq!(rows.len(), 4);
    let mut raw = Vec::new();
    for r in &rows {
        let boxes = r["boxes"].as_array().expect("boxes");
        assert_eq!(r["count"].as_f64(), Some(boxes.len() as f64), "{r}");
        // The walkway has 7-11 people in these frames; a detector that finds nobody fails.
        assert!((4..=15).contains(&boxes.len()), "{r}");
        for b in boxes {
            let b: Vec<f64> = b.as_array().expect("box").iter().map(|x| x.as_f64().expect("number")).collect();
            assert_eq!(b.len(), 5);
            assert!(b[2] > 2.0 && b[3] > 8.0 && b[0] >= 0.0 && b[0] + b[2] <= 768.5 && b[4] >= 0.35, "{b:?}");
        }
        raw.push(boxes.len() as f64);
    }

    // A truth of twice the boxes: the fit (scale only, for fewer than five frames) finds 2.
    let dir = tempfile::tempdir().expect("temp dir");
    let truth = dir.path().join("truth.csv");
    let mut csv = String::from("file,count\n");
    for (f, n) in files.iter().zip(&raw) {
        csv.push_str(&format!("{},{}\n", f.file_name().and_then(|n| n.to_str()).expect("name"), 2.0 * n));
    }
    std::fs::write(&truth, csv).expect("truth");
    let camera = dir.path().join("cam.toml");
    std::fs::write(&camera, camera_text()).expect("camera");
    let mut args = vec!["count", "--json", "--calibrate", s(&truth), "--out", s(&camera)];
    args.extend(files.iter().map(|p| s(p)));
    let out = sightline(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let fit: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(fit["frames"], 4, "{fit}");
    assert!((fit["scale"].as_f64().expect("scale") - 2.0).abs() < 1e-9, "{fit}");
    let text = std::fs::read_to_string(&camera).expect("camera file");
    assert!(text.contains("[correction]") && text.contains("[[lines]]"), "the rest of the camera is kept:\n{text}");

    let mut args = vec!["count", "--json", "--camera", s(&camera)];
    args.extend(files.iter().map(|p| s(p)));
    let out = sightline(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON array");
    for (r, n) in rows.iter().zip(&raw) {
        assert_eq!(r["detections"].as_f64(), Some(*n), "{r}");
        assert_eq!(r["count"].as_f64(), Some(2.0 * n), "{r}");
    }
}

fn store(args: &[&str], out: &Path) -> (Output, Value) {
    let mut all = vec!["store", "--out", s(out), "--json"];
    all.extend_from_slice(args);
    let o = sightline(&all);
    let summary = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (o, summary)
}

#[test]
fn store_writes_the_tables_and_the_report_of_a_video() {
    if !models_available("store_writes_the_tables_and_the_report_of_a_video") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let camera = dir.path().join("cam.toml");
    std::fs::write(&camera, camera_text()).expect("camera");
    let video = repo().join("tests/fixtures/store/vtest-4s.mp4");
    let out = dir.path().join("out");
    let (o, summary) = store(&["--camera", s(&camera), s(&video)], &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(summary["frames"], 20, "{summary}");
    assert!(summary["tracks"].as_u64().is_some_and(|t| (4..=20).contains(&t)), "{summary}");
    let header = |f: &str| std::fs::read_to_string(out.join(f)).expect(f).lines().next().unwrap_or_default().to_owned();
    assert_eq!(header("counts.csv"), "t_start,t_end,people_mean,people_max,entries,exits");
    assert_eq!(header("crossings.csv"), "t,track,line,direction");
    assert_eq!(header("dwell.csv"), "track,zone,enter_t,exit_t,seconds");
    assert_eq!(header("composition.csv"), "t_start,t_end,age_band,gender,visitors");
    // Two intervals of 2 s.
    assert_eq!(std::fs::read_to_string(out.join("counts.csv")).expect("counts").lines().count(), 3);
    // People walk through the left zone in these seconds.
    assert!(std::fs::read_to_string(out.join("dwell.csv")).expect("dwell").lines().count() > 1);
    let tracks: Value = serde_json::from_slice(&std::fs::read(out.join("tracks.json")).expect("tracks")).expect("JSON");
    assert_eq!(tracks.as_array().map(Vec::len), summary["tracks"].as_u64().map(|t| t as usize));
    // People 80-110 px tall have faces under the face detector's size: said, not guessed.
    assert!(tracks[0]["visitor"]["reason"].as_str().is_some_and(|r| r == "face too small"), "{}", tracks[0]);
    let png = std::fs::read(out.join("heatmap.png")).expect("heat map");
    assert_eq!(&png[1..4], b"PNG");
    let html = std::fs::read_to_string(out.join("report.html")).expect("report");
    assert!(html.contains("Camera walkway") && html.contains("heatmap.png") && html.contains("<svg"));
}

#[test]
fn store_reads_frame_folders_and_keeps_what_decoded_before_a_fault() {
    if !models_available("store_reads_frame_folders_and_keeps_what_decoded_before_a_fault") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let camera = dir.path().join("cam.toml");
    std::fs::write(&camera, camera_text()).expect("camera");

    // Four frames recorded at 1 fps, sampled at 5: every frame once, a second apart.
    let folder = repo().join("tests/fixtures/store/frames");
    let out = dir.path().join("folder");
    let (o, summary) = store(&["--camera", s(&camera), "--source-fps", "1", s(&folder)], &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(summary["frames"], 4, "{summary}");
    let frames = std::fs::read_to_string(out.join("frames.csv")).expect("frames");
    assert!(frames.lines().nth(2).is_some_and(|l| l.starts_with("1.000,")), "{frames}");

    // The video remuxed to Matroska and cut at 70 %: the frames before the cut are analysed,
    // the fault is named, and the exit code says so.
    let mkv = dir.path().join("whole.mkv");
    let ok = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(repo().join("tests/fixtures/store/vtest-4s.mp4"))
        .args(["-c", "copy"])
        .arg(&mkv)
        .status()
        .expect("ffmpeg");
    assert!(ok.success());
    let bytes = std::fs::read(&mkv).expect("mkv");
    let cut = dir.path().join("cut.mkv");
    std::fs::write(&cut, &bytes[..bytes.len() * 7 / 10]).expect("cut");
    let out = dir.path().join("cut");
    let (o, summary) = store(&["--camera", s(&camera), s(&cut)], &out);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    let n = summary["frames"].as_u64().expect("frames");
    assert!((3..20).contains(&n), "{summary}");
    assert!(summary["errors"][0].as_str().is_some_and(|e| e.contains("corrupt or truncated")), "{summary}");
    assert!(out.join("counts.csv").exists() && out.join("report.html").exists());
    assert!(std::fs::read_to_string(out.join("report.html")).expect("report").contains("Warning"));

    // Not a video at all: a clear error, no panic.
    let junk = dir.path().join("camera1.mp4");
    std::fs::write(&junk, b"this is a shopping list, not a video").expect("junk");
    let (o, _) = store(&["--camera", s(&camera), s(&junk)], &dir.path().join("junk"));
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not a video"), "{err}");
}

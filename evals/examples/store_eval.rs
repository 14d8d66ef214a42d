//! The tracking, flow, dwell and composition measurements of `docs/store.md`, and the store
//! pipeline's throughput:
//!
//! ```sh
//! eval "$(models/fetch.sh)"
//! cargo run -p sightline-evals --release --example store_eval -- [DATA] [--seeds N] [--json]
//! ```
//!
//! - synthetic sequences (`sightline_evals::store_synth`: people cut from COCO walking scripted
//!   paths over the median of `vtest.avi`, faces from `faces/attributes`), seeds 1..=N
//!   (default 5), each 60 s at 5 fps: crossings (a scripted crossing is counted when a
//!   crossing of the same direction falls within 2 s of it, each at most once; a count that
//!   matches none is a false count; the pasted people's boxes often end above their feet, which
//!   moves a passage's time, so the median time error and the foot-point error are reported), identity switches (per person, the distinct track ids of
//!   the boxes that match theirs at IoU ≥ 0.5, minus one), dwell (each scripted visit against
//!   the track visit that overlaps it most: the error in seconds), composition (visitors per
//!   age band × gender against the scripted people), people in view (MAE per frame);
//! - `people/vtest.avi` (no ground truth): tracks, passages over a line across the middle of
//!   the walkway, short tracks; and the throughput of decode + detect + track, one thread, at
//!   the default 5 fps, with the detector's share.
//!
//! Run exactly the steps of `sightline store` (`sightline_detect::people`,
//! `sightline_tracking::segments`).

use sightline_evals::cpu_seconds;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use image::RgbImage;
use serde_json::json;
use sightline_detect::people::{detect_frames, detect_video_window, store_config};
use sightline_evals::store_synth::{self, Direction as TruthDirection, Scenario};
use sightline_face::{EngineConfig, FaceEngine};
use sightline_inference::{ModelStore, Runtime};
use sightline_tracking::analytics::Analytics;
use sightline_tracking::camera::{Camera, CountLine, Zone};
use sightline_tracking::geometry::{BBox, Point, Polygon, Side};
use sightline_tracking::report::Direction;
use sightline_tracking::segments::{VideoState, store_tracker, windows};
use sightline_video::Window;
use sightline_vision::people::{PersonConfig, PersonDetector};

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The camera of a synthetic scenario (its line's "in" side is the one holding `inside`).
fn camera_of(s: &Scenario) -> Result<Camera> {
    let l = &s.line;
    let (a, b) = (Point::new(l.a[0], l.a[1]), Point::new(l.b[0], l.b[1]));
    let seg = sightline_tracking::geometry::Segment::new(a, b);
    let in_side = seg.side_of(Point::new(l.inside[0], l.inside[1])).unwrap_or(Side::Left);
    let mut camera = Camera::new("synthetic");
    camera.fps = s.fps;
    camera.interval_s = s.duration_s;
    camera.tiles = Some(0);
    camera.lines.push(CountLine { name: l.name.clone(), a, b, in_side });
    camera.zones.push(Zone {
        name: s.zone.name.clone(),
        polygon: Polygon::new(s.zone.polygon.iter().map(|p| Point::new(p[0], p[1])).collect()),
    });
    camera.validate()?;
    Ok(camera)
}

fn band(age: f64) -> &'static str {
    sightline_tracking::analytics::AgeBand::of(Some(age)).as_str()
}

#[derive(Default)]
struct Totals {
    truth_crossings: usize,
    matched: usize,
    wrong_direction: usize,
    false_counts: usize,
    id_switches: usize,
    persons: usize,
    dwell_truth: usize,
    dwell_found: usize,
    dwell_errors: Vec<f64>,
    composition_abs: f64,
    composition_visitors: f64,
    in_view_abs: f64,
    frames: usize,
    crossing_dt: Vec<f64>,
    foot_dy: Vec<f64>,
}

fn synthetic(seed: u64, detector: &PersonDetector, engine: &FaceEngine, t: &mut Totals) -> Result<serde_json::Value> {
    let mut scenario = Scenario::new(seed);
    scenario.data_dir = data_dir();
    let seq = store_synth::render(&scenario).with_context(|| format!("render seed {seed}"))?;
    let mut camera = camera_of(&scenario)?;
    // Variants of the analytics, for measuring (the detections do not change with them).
    if let Ok(v) = std::env::var("STORE_EVAL_FOOT") {
        camera.foot = serde_json::from_value(json!(v)).context("STORE_EVAL_FOOT: box or stable")?;
    }
    if let Some(n) = std::env::var("STORE_EVAL_MIN_FRAMES").ok().and_then(|v| v.parse().ok()) {
        camera.min_frames = n;
    }
    let config = PersonConfig { tiles: 0, ..store_config(Some(0), camera.fps) };
    let look = |img: &RgbImage, b: &BBox| sightline_face::segment::face_look(engine, img, b);
    // STORE_EVAL_CACHE=DIR keeps each seed's detections, so that analytics variants rerun in
    // seconds.
    let cache = std::env::var_os("STORE_EVAL_CACHE").map(|d| PathBuf::from(d).join(format!("seed{seed}.json")));
    let seg = match cache.as_ref().filter(|p| p.exists()) {
        Some(p) => serde_json::from_slice(&std::fs::read(p)?)?,
        None => {
            let frames = seq.frames.iter().map(|f| Ok((f.t, f.image.clone())));
            let seg = detect_frames(detector, &config, frames, 2, Some(&look), |_| {})?;
            if let Some(p) = &cache {
                std::fs::create_dir_all(p.parent().context("cache dir")?)?;
                std::fs::write(p, serde_json::to_vec(&seg)?)?;
            }
            seg
        }
    };
    let mut state = VideoState::new(Analytics::new(camera.clone(), store_tracker(camera.fps))?, 1);
    state.apply(&seg)?;
    let report = sightline_track::report_of(&state);
    let truth = &seq.truth;

    // Crossings: greedy by time difference, same direction, within 1 s.
    let mut used = vec![false; report.crossings.len()];
    let mut matched = 0;
    let mut wrong = 0;
    for c in &truth.crossings {
        let want = match c.direction {
            TruthDirection::In => Direction::In,
            TruthDirection::Out => Direction::Out,
        };
        // A counted passage of the same direction within 2 s, else any (a wrong direction).
        let near = |same: bool| {
            report
                .crossings
                .iter()
                .enumerate()
                .filter(|(i, p)| !used[*i] && (p.t - c.t).abs() <= 2.0 && (p.direction == want) == same)
                .min_by(|a, b| (a.1.t - c.t).abs().total_cmp(&(b.1.t - c.t).abs()))
                .map(|(i, p)| (i, p.t))
        };
        if let Some((i, pt)) = near(true) {
            used[i] = true;
            matched += 1;
            t.crossing_dt.push((pt - c.t).abs());
        } else if let Some((i, _)) = near(false) {
            used[i] = true;
            wrong += 1;
        }
    }
    let false_counts = used.iter().filter(|u| !**u).count();

    // Identity: per scripted person, the tracks whose boxes match theirs.
    let mut track_boxes: BTreeMap<(u64, i64), BBox> = BTreeMap::new();
    for tr in &report.tracks {
        for p in &tr.path {
            track_boxes.insert((tr.id, (p.t * 1000.0).round() as i64), p.bbox);
        }
    }
    let mut switches = 0;
    let mut person_tracks: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
    for person in &truth.persons {
        let mut ids = BTreeSet::new();
        for b in person.boxes.iter().filter(|b| b.visible >= 0.5) {
            let tb = BBox::new(b.x, b.y, b.w, b.h);
            let key = (b.t * 1000.0).round() as i64;
            let best = report
                .tracks
                .iter()
                .filter_map(|tr| track_boxes.get(&(tr.id, key)).map(|bb| (tr.id, bb.iou(&tb))))
                .filter(|(_, iou)| *iou >= 0.5)
                .max_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((id, _)) = best {
                ids.insert(id);
                if let Some(bb) = track_boxes.get(&(id, key)) {
                    t.foot_dy.push((bb.y + bb.h) - (b.y + b.h));
                }
            }
        }
        switches += ids.len().saturating_sub(1);
        person_tracks.insert(person.id, ids);
    }

    // Dwell: each scripted visit against the overlapping track visit of one of its tracks.
    let mut dwell_found = 0;
    let mut dwell_errors = Vec::new();
    for d in &truth.dwell {
        let tracks = person_tracks.get(&d.person).cloned().unwrap_or_default();
        let best = report
            .dwell
            .iter()
            .filter(|p| tracks.contains(&p.track) && p.zone == d.zone)
            .map(|p| (p, (p.exit_t.min(d.exit_t) - p.enter_t.max(d.enter_t)).max(0.0)))
            .filter(|(_, overlap)| *overlap > 0.0)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((p, _)) = best {
            dwell_found += 1;
            dwell_errors.push((p.seconds - d.seconds).abs());
        }
    }

    // Composition over the whole sequence: visitors per (band, gender).
    let mut want: BTreeMap<(String, String), f64> = BTreeMap::new();
    for p in &truth.persons {
        *want.entry((band(f64::from(p.age)).to_owned(), p.gender.clone())).or_default() += 1.0;
    }
    let mut got: BTreeMap<(String, String), f64> = BTreeMap::new();
    for c in &report.composition {
        let g = c.gender.map_or("unknown", |g| g.as_str()).to_owned();
        *got.entry((c.age_band.as_str().to_owned(), g)).or_default() += c.visitors as f64;
    }
    let keys: BTreeSet<_> = want.keys().chain(got.keys()).cloned().collect();
    let comp_abs: f64 = keys.iter().map(|k| (want.get(k).unwrap_or(&0.0) - got.get(k).unwrap_or(&0.0)).abs()).sum();
    let truth_visitors = truth.persons.len() as f64;

    // People in view per frame.
    let in_view: f64 =
        truth.in_view.iter().zip(&report.frames).map(|(a, b)| (a.count as f64 - b.people).abs()).sum::<f64>();

    t.truth_crossings += truth.crossings.len();
    t.matched += matched;
    t.wrong_direction += wrong;
    t.false_counts += false_counts;
    t.id_switches += switches;
    t.persons += truth.persons.len();
    t.dwell_truth += truth.dwell.len();
    t.dwell_found += dwell_found;
    t.dwell_errors.extend(dwell_errors.iter().copied());
    t.composition_abs += comp_abs;
    t.composition_visitors += truth_visitors;
    t.in_view_abs += in_view;
    t.frames += report.frames.len().min(truth.in_view.len());
    eprintln!(
        "seed {seed}: crossings {matched}/{} (wrong direction {wrong}, false {false_counts}), id switches {switches} over {} people, \
         dwell {dwell_found}/{} found, composition |error| {comp_abs}/{truth_visitors}",
        truth.crossings.len(),
        truth.persons.len(),
        truth.dwell.len()
    );
    Ok(json!({
        "seed": seed, "crossings": truth.crossings.len(), "matched": matched, "wrong_direction": wrong,
        "false_counts": false_counts, "id_switches": switches, "persons": truth.persons.len(),
        "tracks": report.tracks.len(), "dwell": truth.dwell.len(), "dwell_found": dwell_found,
        "truth_crossings": truth.crossings.iter().map(|c| json!([c.t, format!("{:?}", c.direction)])).collect::<Vec<_>>(),
        "counted_crossings": report.crossings.iter().map(|c| json!([c.t, c.track, c.direction.as_str()])).collect::<Vec<_>>(),
        "dwell_abs_errors_s": dwell_errors, "composition_abs_error": comp_abs,
        "truth_composition": want.iter().map(|((b, g), n)| json!([b, g, n])).collect::<Vec<_>>(),
        "composition": got.iter().map(|((b, g), n)| json!([b, g, n])).collect::<Vec<_>>(),
    }))
}

fn data_dir() -> PathBuf {
    std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--") && a.parse::<u64>().is_err())
        .map_or_else(|| PathBuf::from("../shared/data"), PathBuf::from)
}

fn vtest(detector: &PersonDetector) -> Result<serde_json::Value> {
    let video = data_dir().join("people/vtest.avi");
    let mut camera = Camera::new("vtest");
    camera.tiles = Some(0);
    camera.interval_s = 10.0;
    // Across the walkway, left to right; "in" below it (towards the camera).
    camera.lines.push(CountLine {
        name: "walkway".into(),
        a: Point::new(80.0, 330.0),
        b: Point::new(700.0, 330.0),
        in_side: Side::Right,
    });
    let config = store_config(camera.tiles, camera.fps);
    let info = sightline_video::probe(&video)?;
    let mut state = VideoState::new(Analytics::new(camera.clone(), store_tracker(camera.fps))?, 0);
    let (cpu0, wall0) = (cpu_seconds(), Instant::now());
    let mut detect_s = 0.0;
    let mut decode_only = 0.0;
    for (start_s, duration_s) in windows(info.duration_s, 10.0) {
        // The decoder alone on the same window, for its share.
        let t = Instant::now();
        let n = sightline_video::Frames::open(&video, camera.fps, Window { start_s, duration_s })?.count();
        decode_only += t.elapsed().as_secs_f64();
        let _ = n;
        let t = Instant::now();
        let seg = detect_video_window(
            detector,
            &config,
            &video,
            Window { start_s, duration_s },
            camera.fps,
            0.0,
            1,
            None,
            |_| {},
        )??;
        detect_s += t.elapsed().as_secs_f64();
        state.count += 1;
        state.apply(&seg)?;
    }
    let wall = wall0.elapsed().as_secs_f64() - decode_only;
    let cpu = cpu_seconds() - cpu0;
    let report = state.analytics.clone().finish(state.t_end);
    let frames = report.frames.len();
    let short = report.tracks.iter().filter(|t| t.last_t - t.first_t < 1.0).count();
    let ins = report.crossings.iter().filter(|c| c.direction == Direction::In).count();
    let outs = report.crossings.len() - ins;
    let out = json!({
        "frames": frames, "seconds": report.t_end, "tracks": report.tracks.len(), "tracks_under_1s": short,
        "in": ins, "out": outs,
        "fps_one_thread": frames as f64 / wall, "wall_s": wall, "cpu_s_incl_decoder_pass": cpu,
        "decode_share": decode_only / (wall + decode_only) , "detect_and_decode_s": detect_s,
        "load": load_average(),
    });
    eprintln!("vtest: {out}");
    Ok(out)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json_out = args.iter().any(|a| a == "--json");
    let seeds: u64 = args
        .iter()
        .position(|a| a == "--seeds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let store = ModelStore::from_env()?;
    let runtime = Runtime::init_from_env(store.root())?;
    let detector = PersonDetector::load(&store, runtime, 2, PersonConfig::default())?;
    let engine = FaceEngine::from_env(1, EngineConfig::default())?;
    let mut totals = Totals::default();
    let mut per_seed = Vec::new();
    for seed in 1..=seeds {
        per_seed.push(synthetic(seed, &detector, &engine, &mut totals)?);
    }
    let median = |v: &[f64]| -> f64 {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let foot_p10 = {
        let mut v = totals.foot_dy.clone();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 10).copied().unwrap_or(f64::NAN)
    };
    let mut errs = totals.dwell_errors.clone();
    errs.sort_by(f64::total_cmp);
    let within = errs.iter().filter(|e| **e <= 0.2 + 1e-9).count();
    let summary = json!({
        "synthetic": {
            "seeds": seeds,
            "crossings": totals.truth_crossings,
            "counted_right": totals.matched,
            "crossing_recall": totals.matched as f64 / totals.truth_crossings.max(1) as f64,
            "wrong_direction": totals.wrong_direction,
            "false_counts": totals.false_counts,
            "crossing_median_abs_dt_s": median(&totals.crossing_dt),
            "foot_y_error_median_px": median(&totals.foot_dy),
            "foot_y_error_p10_px": foot_p10,
            "id_switches": totals.id_switches,
            "persons": totals.persons,
            "dwell_visits": totals.dwell_truth,
            "dwell_found": totals.dwell_found,
            "dwell_median_abs_error_s": errs.get(errs.len() / 2),
            "dwell_within_one_interval": within,
            "composition_abs_error_per_visitor": totals.composition_abs / totals.composition_visitors.max(1.0),
            "in_view_mae": totals.in_view_abs / totals.frames.max(1) as f64,
            "per_seed": per_seed,
        },
        "vtest": if std::env::var_os("STORE_EVAL_NO_VTEST").is_some() { json!(null) } else { vtest(&detector)? },
    });
    if json_out {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        eprintln!("{}", serde_json::to_string_pretty(&summary["synthetic"])?);
    }
    Ok(())
}

//! The person detection and counting measurements of `docs/store.md`:
//!
//! ```sh
//! eval "$(models/fetch.sh)"
//! cargo run -p sightline-evals --release --example people_eval -- [DATA] [--json]   # DATA defaults to ../shared/data
//! ```
//!
//! - detection recall and precision at IoU ≥ 0.5 on `people/images` against the COCO person
//!   boxes of `people/persons.coco.json` (crowd boxes are neither hits nor misses: a detection
//!   inside one is ignored), overall and for small people (box area < 32², COCO's "small"),
//!   for the whole frame alone and with 2×2 and 3×3 tiles;
//! - counting on the 20 labelled frames of `people/mall` (`truth.csv`: file,count): the raw
//!   count's mean absolute error (uncalibrated), and the calibrated error by leave-one-out (the
//!   correction fitted on 19 frames, applied to the 20th), for each plan;
//! - time per frame (CPU seconds, one session, one thread per session as the workers run).

use sightline_evals::cpu_seconds;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use sightline_inference::{ModelStore, Runtime};
use sightline_tracking::camera::Correction;
use sightline_vision::BoxF;
use sightline_vision::people::{Person, PersonConfig, PersonDetector};

struct Truth {
    boxes: Vec<BoxF>,
    crowd: Vec<BoxF>,
}

fn coco_truth(path: &Path) -> Result<BTreeMap<String, Truth>> {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).context("read persons.coco.json")?)?;
    let mut names = BTreeMap::new();
    for img in v["images"].as_array().context("images")? {
        names.insert(
            img["id"].as_i64().context("image id")?,
            img["file_name"].as_str().context("file_name")?.to_owned(),
        );
    }
    let mut out: BTreeMap<String, Truth> =
        names.values().map(|n| (n.clone(), Truth { boxes: Vec::new(), crowd: Vec::new() })).collect();
    for a in v["annotations"].as_array().context("annotations")? {
        if a["category_id"].as_i64() != Some(1) {
            continue;
        }
        let file = names.get(&a["image_id"].as_i64().context("image_id")?).context("annotation of an unknown image")?;
        let b: Vec<f32> =
            a["bbox"].as_array().context("bbox")?.iter().filter_map(|x| x.as_f64()).map(|x| x as f32).collect();
        let [x, y, w, h] = b[..] else { anyhow::bail!("bbox of {} numbers", b.len()) };
        let entry = out.get_mut(file).context("file")?;
        if a["iscrowd"].as_i64() == Some(1) {
            entry.crowd.push(BoxF { x, y, w, h });
        } else {
            entry.boxes.push(BoxF { x, y, w, h });
        }
    }
    Ok(out)
}

#[derive(Default, Clone, Copy)]
struct Counts {
    hits: usize,
    truths: usize,
    small_hits: usize,
    small: usize,
    detections: usize,
    false_pos: usize,
}

/// Greedy matching by score at IoU ≥ 0.5; a detection matching nothing but lying mostly inside a
/// crowd box is ignored.
fn score_image(dets: &[Person], t: &Truth, c: &mut Counts) {
    let mut used = vec![false; t.boxes.len()];
    for d in dets {
        let best = t
            .boxes
            .iter()
            .enumerate()
            .filter(|(i, _)| !used[*i])
            .map(|(i, b)| (i, d.bbox.iou(b)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((i, iou)) if iou >= 0.5 => {
                used[i] = true;
                c.hits += 1;
                if t.boxes[i].area() < 32.0 * 32.0 {
                    c.small_hits += 1;
                }
                c.detections += 1;
            }
            _ => {
                if t.crowd.iter().any(|cb| d.bbox.intersection(cb) >= 0.5 * d.bbox.area()) {
                    continue;
                }
                c.detections += 1;
                c.false_pos += 1;
            }
        }
    }
    c.truths += t.boxes.len();
    c.small += t.boxes.iter().filter(|b| b.area() < 32.0 * 32.0).count();
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { f64::NAN } else { a as f64 / b as f64 }
}

fn main() -> Result<()> {
    let mut data = PathBuf::from("../shared/data");
    let mut as_json = false;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--json" => as_json = true,
            "-h" | "--help" => {
                println!("people_eval [DATA] [--json]: person detection P/R (COCO persons) and counting MAE (mall)");
                return Ok(());
            }
            other => data = PathBuf::from(other),
        }
    }
    let people = data.join("people");
    let store = ModelStore::from_env()?;
    let runtime = Runtime::init_from_env(store.root())?;
    let truth = coco_truth(&people.join("persons.coco.json"))?;
    let mall_truth: Vec<(String, f64)> = std::fs::read_to_string(people.join("mall/truth.csv"))
        .context("read mall/truth.csv")?
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(','))
        .filter_map(|(f, c)| Some((f.trim().to_owned(), c.trim().parse().ok()?)))
        .collect();
    let load = |p: PathBuf| -> Result<image::RgbImage> {
        Ok(image::open(&p).with_context(|| format!("open {}", p.display()))?.to_rgb8())
    };
    let coco_images: Vec<(String, image::RgbImage)> =
        truth.keys().map(|f| Ok((f.clone(), load(people.join("images").join(f))?))).collect::<Result<_>>()?;
    let mall_images: Vec<(String, image::RgbImage)> =
        mall_truth.iter().map(|(f, _)| Ok((f.clone(), load(people.join("mall").join(f))?))).collect::<Result<_>>()?;

    let mut report = Vec::new();
    for tiles in [0u32, 2, 3] {
        let cfg = PersonConfig { tiles, ..PersonConfig::default() };
        let det = PersonDetector::load(&store, runtime, 1, cfg)?;
        let (cpu0, wall0) = (cpu_seconds(), Instant::now());
        let mut c = Counts::default();
        for (f, img) in &coco_images {
            let dets = det.detect(img)?;
            score_image(&dets, &truth[f], &mut c);
        }
        let coco_cpu = (cpu_seconds() - cpu0) / coco_images.len() as f64;
        let coco_wall = wall0.elapsed().as_secs_f64() / coco_images.len() as f64;
        let (cpu0, wall0) = (cpu_seconds(), Instant::now());
        let mut raw = Vec::new();
        for (_, img) in &mall_images {
            raw.push(det.detect(img)?.len() as f64);
        }
        let mall_cpu = (cpu_seconds() - cpu0) / mall_images.len() as f64;
        let mall_wall = wall0.elapsed().as_secs_f64() / mall_images.len() as f64;
        let truth_counts: Vec<f64> = mall_truth.iter().map(|(_, c)| *c).collect();
        let n = raw.len() as f64;
        let mae_raw = raw.iter().zip(&truth_counts).map(|(r, t)| (r - t).abs()).sum::<f64>() / n;
        let mut loo_err = Vec::new();
        for i in 0..raw.len() {
            let pairs: Vec<(f64, f64)> =
                (0..raw.len()).filter(|&j| j != i).map(|j| (raw[j], truth_counts[j])).collect();
            let corr = Correction::fit(&pairs);
            loo_err.push((corr.apply(raw[i]) - truth_counts[i]).abs());
        }
        let mae_loo = loo_err.iter().sum::<f64>() / n;
        let full = Correction::fit(&raw.iter().copied().zip(truth_counts.iter().copied()).collect::<Vec<_>>());
        let row = json!({
            "tiles": tiles,
            "coco": {
                "recall": ratio(c.hits, c.truths), "precision": ratio(c.hits, c.detections),
                "small_recall": ratio(c.small_hits, c.small), "truths": c.truths, "small": c.small,
                "detections": c.detections, "false_positives": c.false_pos,
                "cpu_s_per_image": coco_cpu, "wall_s_per_image": coco_wall,
            },
            "mall": {
                "truth_mean": truth_counts.iter().sum::<f64>() / n,
                "raw_mean": raw.iter().sum::<f64>() / n,
                "mae_uncalibrated": mae_raw,
                "mae_calibrated_loo": mae_loo,
                "correction_on_all_20": { "scale": full.scale, "offset": full.offset },
                "raw": raw,
                "cpu_s_per_frame": mall_cpu, "wall_s_per_frame": mall_wall,
            },
        });
        if !as_json {
            eprintln!(
                "tiles {tiles}: COCO recall {:.3} precision {:.3} small recall {:.3} ({} of {}), {:.0} ms/image; \
                 mall raw mean {:.1} vs {:.1}, MAE uncalibrated {:.2}, calibrated (LOO) {:.2}; {:.0} ms/frame",
                ratio(c.hits, c.truths),
                ratio(c.hits, c.detections),
                ratio(c.small_hits, c.small),
                c.small_hits,
                c.small,
                coco_cpu * 1e3,
                raw.iter().sum::<f64>() / n,
                truth_counts.iter().sum::<f64>() / n,
                mae_raw,
                mae_loo,
                mall_cpu * 1e3
            );
        }
        report.push(row);
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

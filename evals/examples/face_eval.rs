//! The measurements of `docs/face.md`:
//!
//! ```sh
//! eval "$(models/fetch.sh)"
//! cargo run -p sightline-evals --release --example face_eval -- [DATA]   # DATA defaults to ../shared/data
//! ```
//!
//! - detection recall and precision at IoU 0.5 on `faces/boxes` (training.xml, testing.xml),
//!   faces at least 20 px wide, on the images as they are and on two scale stress variants
//!   built from the same pixels: every image shrunk so that its smallest face is 21 px wide,
//!   and the nine images tiled 3x3 into one large mosaic (as they are, and shrunk);
//! - 68-point landmark error against `*_with_face_landmarks.xml`;
//! - pose consistency under a horizontal flip (yaw and roll change sign, pitch stays);
//! - identity clustering ARI on `faces/identities` (folder = person), with a threshold sweep;
//! - age and gender on the identities (all adult men), and faces found in `dogs.jpg`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use image::RgbImage;
use image::imageops::{FilterType, resize};
use sightline_evals::face::{Counts, LabelledImage, landmark_nme, match_detections, parse_dlib_xml};
use sightline_face::engine::{EngineConfig, FaceEngine, Gender};
use sightline_face::geometry::BoxF;
use sightline_face::persons::{PersonConfig, adjusted_rand_index, cluster, cosine};

fn load(path: &Path) -> Result<RgbImage> {
    Ok(image::open(path).with_context(|| format!("open {}", path.display()))?.to_rgb8())
}

fn labelled(dir: &Path, file: &str) -> Result<Vec<LabelledImage>> {
    let text = std::fs::read_to_string(dir.join(file)).with_context(|| format!("read {file}"))?;
    parse_dlib_xml(&text).map_err(anyhow::Error::msg).with_context(|| format!("parse {file}"))
}

/// CPU seconds this process has used (user + system, Linux `/proc/self/stat`, 100 ticks/s):
/// the machine is shared, so wall time alone says little.
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
            // Fields 14 and 15 of the whole line are the 12th and 13th after the command name.
            let ticks: f64 = rest.get(11)?.parse::<f64>().ok()? + rest.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(f64::NAN)
}

fn detect_counts(engine: &FaceEngine, img: &RgbImage, truth: &[BoxF]) -> Result<(Counts, f64)> {
    let t = cpu_seconds();
    let dets = engine.detect(img)?;
    let ms = (cpu_seconds() - t) * 1e3;
    let d: Vec<(BoxF, f32)> = dets.iter().map(|c| (c.bbox, c.score)).collect();
    Ok((match_detections(&d, truth, 0.5, 20.0), ms))
}

fn line(name: &str, c: Counts, ms: f64, n: usize) {
    println!(
        "| {name} | {} | {:.1}% ({}/{}) | {:.1}% ({}/{}) | {:.0} |",
        c.tp + c.missed,
        100.0 * c.recall(),
        c.tp,
        c.tp + c.missed,
        100.0 * c.precision(),
        c.tp,
        c.tp + c.fp,
        ms / n.max(1) as f64
    );
}

fn scaled(img: &RgbImage, boxes: &[BoxF], s: f32) -> (RgbImage, Vec<BoxF>) {
    let (w, h) = (((img.width() as f32) * s).round() as u32, ((img.height() as f32) * s).round() as u32);
    let (sx, sy) = (w as f32 / img.width() as f32, h as f32 / img.height() as f32);
    let out = resize(img, w.max(1), h.max(1), FilterType::Triangle);
    (out, boxes.iter().map(|b| BoxF { x: b.x * sx, y: b.y * sy, w: b.w * sx, h: b.h * sy }).collect())
}

fn mosaic(items: &[(RgbImage, Vec<BoxF>)]) -> (RgbImage, Vec<BoxF>) {
    let cw = items.iter().map(|(i, _)| i.width()).max().unwrap_or(1);
    let ch = items.iter().map(|(i, _)| i.height()).max().unwrap_or(1);
    let mut canvas = RgbImage::new(cw * 3, ch * items.len().div_ceil(3) as u32);
    let mut boxes = Vec::new();
    for (k, (img, bs)) in items.iter().enumerate() {
        let (ox, oy) = ((k as u32 % 3) * cw, (k as u32 / 3) * ch);
        image::imageops::replace(&mut canvas, img, i64::from(ox), i64::from(oy));
        boxes.extend(bs.iter().map(|b| BoxF { x: b.x + ox as f32, y: b.y + oy as f32, ..*b }));
    }
    (canvas, boxes)
}

fn main() -> Result<()> {
    let data = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "../shared/data".into()));
    let boxes_dir = data.join("faces/boxes");
    let ids_dir = data.join("faces/identities");
    if !boxes_dir.is_dir() || !ids_dir.is_dir() {
        bail!("{} has no faces/boxes and faces/identities", data.display());
    }
    let started = Instant::now();
    let engine = FaceEngine::from_env(1, EngineConfig::default()).context("load the face models")?;
    let cfg = engine.config();
    println!("# face evaluation ({})\n", data.display());
    println!(
        "settings: score >= {}, NMS IoU {} / overlap-min {}, min face {} px, frontal |yaw| <= {} and |pitch| <= {}\n",
        cfg.detect.score_threshold,
        cfg.detect.nms_iou,
        cfg.detect.nms_overlap_min,
        cfg.detect.min_face,
        cfg.frontal_max_yaw,
        cfg.frontal_max_pitch
    );

    // ---- detection
    println!("## detection (IoU >= 0.5, faces >= 20 px wide)\n");
    println!("| set | faces | recall | precision | CPU ms/image |\n| --- | --- | --- | --- | --- |");
    let mut all = Counts::default();
    let mut all_ms = 0.0;
    let mut originals = Vec::new();
    for split in ["training.xml", "testing.xml"] {
        let mut c = Counts::default();
        let mut ms = 0.0;
        let imgs = labelled(&boxes_dir, split)?;
        for li in &imgs {
            let img = load(&boxes_dir.join(&li.file))?;
            let (k, t) = detect_counts(&engine, &img, &li.boxes)?;
            c.add(k);
            ms += t;
            originals.push((img, li.boxes.clone()));
        }
        line(split, c, ms, imgs.len());
        all.add(c);
        all_ms += ms;
    }
    line("both", all, all_ms, originals.len());
    let shrunk: Vec<(RgbImage, Vec<BoxF>)> = originals
        .iter()
        .map(|(img, bs)| {
            let min_w = bs.iter().map(|b| b.w).fold(f32::INFINITY, f32::min);
            scaled(img, bs, 21.0 / min_w)
        })
        .collect();
    let mut c = Counts::default();
    let mut ms = 0.0;
    for (img, bs) in &shrunk {
        let (k, t) = detect_counts(&engine, img, bs)?;
        c.add(k);
        ms += t;
    }
    line("both, shrunk (smallest face 21 px)", c, ms, shrunk.len());
    for (name, set) in [("mosaic 3x3 of both", &originals), ("mosaic 3x3 of both, shrunk", &shrunk)] {
        let (img, bs) = mosaic(set);
        let (k, t) = detect_counts(&engine, &img, &bs)?;
        line(&format!("{name} ({}x{})", img.width(), img.height()), k, t, 1);
    }
    let dogs = load(&boxes_dir.join("dogs.jpg"))?;
    let dog_p: Vec<String> = engine
        .candidates(&dogs)?
        .iter()
        .map(|c| engine.verify(&dogs, &c.bbox).map(|p| format!("{p:.3}")))
        .collect::<Result<_, _>>()?;
    println!(
        "\nfaces found in dogs.jpg (four dogs, no people): {} ({} detector boxes before the second opinion, which scored them {})",
        engine.detect(&dogs)?.len(),
        dog_p.len(),
        dog_p.join(", ")
    );
    // The second opinion on every detector box of the annotated and stress sets.
    let min_side = cfg.detect.verify_min_side;
    let (mut true_large, mut true_small, mut false_large, mut false_small) = (vec![], vec![], vec![], vec![]);
    let (mosaic_orig, mosaic_small) = (mosaic(&originals), mosaic(&shrunk));
    for (img, truth) in originals.iter().chain(&shrunk).chain([&mosaic_orig, &mosaic_small]) {
        for c in engine.candidates(img)? {
            let p = engine.verify(img, &c.bbox)?;
            let is_face = truth.iter().any(|t| t.iou(&c.bbox) >= 0.5);
            let large = c.bbox.w.max(c.bbox.h) >= min_side;
            match (is_face, large) {
                (true, true) => true_large.push(p),
                (true, false) => true_small.push(p),
                (false, true) => false_large.push(p),
                (false, false) => false_small.push(p),
            }
        }
    }
    let range = |v: &[f32]| {
        if v.is_empty() {
            "none".to_owned()
        } else {
            let (lo, hi) = v.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), x| (a.min(*x), b.max(*x)));
            format!("{} boxes, {lo:.3}-{hi:.3}", v.len())
        }
    };
    println!(
        "second opinion (MTCNN output net) on all detector boxes of the sets above: faces >= {min_side} px: {}; \
         faces < {min_side} px: {}; non-faces >= {min_side} px: {}; non-faces < {min_side} px: {}",
        range(&true_large),
        range(&true_small),
        range(&false_large),
        range(&false_small)
    );

    // ---- landmarks and pose
    println!("\n## landmarks and pose\n");
    let mut nme = Vec::new();
    let (mut dyaw, mut droll, mut dpitch, mut posed) = (0.0f64, 0.0f64, 0.0f64, 0usize);
    let mut yaws = Vec::new();
    for split in ["training_with_face_landmarks.xml", "testing_with_face_landmarks.xml"] {
        for li in labelled(&boxes_dir, split)? {
            let img = load(&boxes_dir.join(&li.file))?;
            let flipped = image::imageops::flip_horizontal(&img);
            let dets = engine.detect(&img)?;
            for (b, parts) in li.boxes.iter().zip(&li.parts) {
                let Some(d) = dets.iter().filter(|d| d.bbox.iou(b) >= 0.5).max_by(|x, y| x.score.total_cmp(&y.score))
                else {
                    continue;
                };
                let face = engine.analyse_face(&img, *d)?;
                if let Some(e) = landmark_nme(&face.landmarks68, parts) {
                    nme.push(e);
                }
                let mirrored = BoxF { x: img.width() as f32 - d.bbox.x - d.bbox.w, ..d.bbox };
                let other =
                    engine.analyse_face(&flipped, sightline_face::detect::Candidate { bbox: mirrored, ..*d })?;
                if let Some(p) = face.pose {
                    yaws.push((p.yaw, face.frontal));
                }
                if let (Some(p), Some(q)) = (face.pose, other.pose) {
                    dyaw += f64::from((p.yaw + q.yaw).abs());
                    droll += f64::from((p.roll + q.roll).abs());
                    dpitch += f64::from((p.pitch - q.pitch).abs());
                    posed += 1;
                }
            }
        }
    }
    nme.sort_by(f32::total_cmp);
    let mean = nme.iter().sum::<f32>() / nme.len().max(1) as f32;
    let median = nme.get(nme.len() / 2).copied().unwrap_or(f32::NAN);
    println!(
        "68-point landmarks vs the dlib annotations, {} faces: mean NME {:.3}, median {:.3} (inter-ocular)",
        nme.len(),
        mean,
        median
    );
    let (lo, hi) = yaws.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), y| (a.min(y.0), b.max(y.0)));
    println!(
        "yaw of the annotated faces: {lo:.0}° to {hi:.0}°, frontal: {} of {}",
        yaws.iter().filter(|y| y.1).count(),
        yaws.len()
    );
    let n = posed.max(1) as f64;
    println!(
        "pose under a horizontal flip, {posed} faces: mean |yaw + yaw'| {:.1}°, |roll + roll'| {:.1}°, |pitch - pitch'| {:.1}°",
        dyaw / n,
        droll / n,
        dpitch / n
    );

    // ---- identities
    println!("\n## identities\n");
    let mut people: Vec<PathBuf> =
        std::fs::read_dir(&ids_dir)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
    people.sort();
    let mut truth = Vec::new(); // identity of every image
    let mut faces = Vec::new(); // (image index, embedding, frontal) of the largest face
    let mut per_person: BTreeMap<String, Vec<(f32, Gender)>> = BTreeMap::new();
    let mut poses = Vec::new();
    let t = cpu_seconds();
    for (label, dir) in people.iter().enumerate() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for f in files {
            truth.push(label);
            let img = load(&f)?;
            let found = engine.analyse(&img)?;
            let Some(face) = found.into_iter().max_by(|a, b| a.bbox.area().total_cmp(&b.bbox.area())) else {
                continue;
            };
            let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            per_person.entry(name).or_default().push((face.age, face.gender));
            if let Some(p) = face.pose {
                poses.push((p.yaw, p.pitch));
            }
            faces.push((truth.len() - 1, face.embedding, face.frontal));
        }
    }
    let n_images = truth.len();
    let ms_per_image = (cpu_seconds() - t) * 1e3 / n_images.max(1) as f64;
    let refs: Vec<(&[f32], bool)> = faces.iter().map(|(_, e, f)| (e.as_slice(), *f)).collect();
    let frontal = faces.iter().filter(|f| f.2).count();
    println!(
        "{} images of {} people; faces found in {}, frontal {}; full analysis {:.0} CPU ms/image",
        n_images,
        people.len(),
        faces.len(),
        frontal,
        ms_per_image
    );
    let range = |v: Vec<f32>| v.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), x| (a.min(*x), b.max(*x)));
    let ((ylo, yhi), (plo, phi)) =
        (range(poses.iter().map(|p| p.0).collect()), range(poses.iter().map(|p| p.1).collect()));
    println!("pose of the portraits: yaw {ylo:.0}° to {yhi:.0}°, pitch {plo:.0}° to {phi:.0}°");
    // An image without a face, or a face without a person, is a cluster of its own.
    let score = |persons: &[Option<u64>]| {
        let mut pred: Vec<usize> = (0..n_images).map(|i| 1_000_000 + i).collect();
        for ((image, _, _), p) in faces.iter().zip(persons) {
            if let Some(p) = p {
                pred[*image] = *p as usize;
            }
        }
        let clusters = pred.iter().collect::<std::collections::BTreeSet<_>>().len();
        (adjusted_rand_index(&truth, &pred), clusters)
    };
    let chosen = PersonConfig::default();
    let (ari, k) = score(&cluster(&refs, &chosen));
    println!("ARI {ari:.4} with link = attach = {} ({k} clusters)\n", chosen.link);
    println!("| threshold | ARI | clusters |\n| --- | --- | --- |");
    for th in [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7] {
        let (ari, k) = score(&cluster(&refs, &PersonConfig { link: th, attach: th }));
        println!("| {th:.2} | {ari:.4} | {k} |");
    }
    let (mut same_min, mut diff_max) = (f32::INFINITY, f32::NEG_INFINITY);
    for i in 0..faces.len() {
        for j in i + 1..faces.len() {
            let s = cosine(&faces[i].1, &faces[j].1);
            if truth[faces[i].0] == truth[faces[j].0] {
                same_min = same_min.min(s);
            } else {
                diff_max = diff_max.max(s);
            }
        }
    }
    println!("\ncosine similarity: lowest same-person pair {same_min:.3}, highest different-person pair {diff_max:.3}");

    println!("\n## age and gender (identities: adult men)\n");
    println!("| person | images | median age | age range | male |\n| --- | --- | --- | --- | --- |");
    for (name, v) in &per_person {
        let mut ages: Vec<f32> = v.iter().map(|x| x.0).collect();
        ages.sort_by(f32::total_cmp);
        let male = v.iter().filter(|x| x.1 == Gender::Male).count();
        println!(
            "| {name} | {} | {:.1} | {:.0}-{:.0} | {male}/{} |",
            v.len(),
            ages[ages.len() / 2],
            ages[0],
            ages[ages.len() - 1],
            v.len()
        );
    }
    println!("\ntotal {:.1} s wall, {:.1} s CPU", started.elapsed().as_secs_f64(), cpu_seconds());
    Ok(())
}

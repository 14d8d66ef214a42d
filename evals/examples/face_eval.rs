//! The measurements of `docs/face.md`:
//!
//! ```sh
//! eval "$(models/fetch.sh)"
//! cargo run -p sightline-evals --release --example face_eval -- [DATA]   # DATA defaults to ../shared/data
//! cargo run -p sightline-evals --release --example face_eval -- --attributes [--faces] [DATA]   # only the last section
//! ```
//!
//! - detection recall and precision at IoU 0.5 on `faces/boxes` (training.xml, testing.xml),
//!   faces at least 20 px wide, on the images as they are and on two scale stress variants
//!   built from the same pixels: every image shrunk so that its smallest face is 21 px wide,
//!   and the nine images tiled 3x3 into one large mosaic (as they are, and shrunk);
//! - 68-point landmark error against `*_with_face_landmarks.xml`;
//! - pose consistency under a horizontal flip (yaw and roll change sign, pitch stays);
//! - identity clustering ARI on `faces/identities` (folder = person), with a threshold sweep;
//! - age and gender on the identities (all adult men), and faces found in `dogs.jpg`;
//! - age and gender against the labels of `faces/attributes` (`truth.csv`: file,age,gender;
//!   UTKFace's aligned crops, which are dlib face chips of 200 px), for each way of reading the
//!   chips (grid, test-time flip), the whole image taken as the chip (the alignment the crops
//!   were made with), how far our alignment is from it, and leave-one-out figures for a fitted
//!   gender threshold (one, or one per predicted age group); `--faces` lists every face.

use sightline_evals::cpu_seconds;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use image::RgbImage;
use image::imageops::{FilterType, resize};
use sightline_evals::face::{
    Counts, LabelledImage, landmark_nme, loo_threshold_accuracy, match_detections, parse_dlib_xml,
};
use sightline_evals::read_csv;
use sightline_face::engine::{AttributeConfig, ChipGrid, EngineConfig, FaceEngine, Gender};
use sightline_face::geometry::{BoxF, Similarity, warp_chip};
use sightline_face::persons::{PersonConfig, adjusted_rand_index, cluster, cosine};

fn load(path: &Path) -> Result<RgbImage> {
    Ok(image::open(path).with_context(|| format!("open {}", path.display()))?.to_rgb8())
}

fn labelled(dir: &Path, file: &str) -> Result<Vec<LabelledImage>> {
    let text = std::fs::read_to_string(dir.join(file)).with_context(|| format!("read {file}"))?;
    parse_dlib_xml(&text).map_err(anyhow::Error::msg).with_context(|| format!("parse {file}"))
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

/// One labelled face of `faces/attributes` as each variant read it.
struct Read {
    file: String,
    age: f32,
    male: bool,
    /// Per variant: (expected age, probability of male).
    by_variant: Vec<(f32, f32)>,
}

/// A child for the per-group figures: under 13 years.
const CHILD: f32 = 13.0;

fn attributes(engine: &FaceEngine, dir: &Path, per_face: bool) -> Result<()> {
    println!("\n## age and gender against labels ({})\n", dir.display());
    let rows = read_csv(&dir.join("truth.csv"))?;
    let default = engine.config().attributes;
    let variants: Vec<(String, Option<AttributeConfig>)> = vec![
        (
            "pixel-centre grid (first version)".into(),
            Some(AttributeConfig { grid: ChipGrid::PixelCentres, flip: false }),
        ),
        ("pixel-centre grid + flip".into(), Some(AttributeConfig { grid: ChipGrid::PixelCentres, flip: true })),
        ("dlib grid".into(), Some(AttributeConfig { grid: ChipGrid::Dlib, flip: false })),
        ("dlib grid + flip".into(), Some(AttributeConfig { grid: ChipGrid::Dlib, flip: true })),
        ("whole image as the chip (reference alignment)".into(), None),
        ("whole image as the chip + flip".into(), None),
    ];
    let mut reads = Vec::new();
    let (mut missed, mut scale_err, mut angle, mut shift) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for row in &rows {
        let [file, age, gender] = row.as_slice() else { bail!("truth.csv: expected file,age,gender, got {row:?}") };
        let img = load(&dir.join(file))?;
        let age: f32 = age.trim().parse().with_context(|| format!("age of {file}"))?;
        let male = match gender.trim() {
            "male" => true,
            "female" => false,
            g => bail!("{file}: gender {g:?}"),
        };
        let Some(d) = engine.detect(&img)?.into_iter().max_by(|a, b| a.bbox.area().total_cmp(&b.bbox.area())) else {
            missed.push(file.clone());
            continue;
        };
        let l68 = engine.landmarks(&img, &d.bbox)?;
        // The crops are dlib chips: dlib's alignment of the face at the image's size is the identity.
        let side = img.width() as f32;
        let t = FaceEngine::dlib_chip_transform(&l68, img.width(), ChipGrid::Dlib)?;
        scale_err.push((t.scale() - 1.0).abs());
        angle.push(t.b.atan2(t.a).to_degrees().abs());
        let c = t.apply([side / 2.0, side / 2.0]);
        shift.push((c[0] - side / 2.0).hypot(c[1] - side / 2.0));
        // The whole image as a dlib chip of `size`: first and last pixels on the image's first and last.
        let whole = |size: u32| {
            let s = (size as f32 - 1.0) / (side - 1.0);
            warp_chip(&img, &Similarity::scale_shift(s, 0.5 - 0.5 * s, 0.5 - 0.5 * s), size)
        };
        let mut by_variant = Vec::new();
        for (k, (_, cfg)) in variants.iter().enumerate() {
            by_variant.push(match cfg {
                Some(cfg) => engine.age_gender_with(&img, &l68, cfg)?,
                None => engine.age_gender_of_chips(&whole(64)?, &whole(32)?, k % 2 == 1)?,
            });
        }
        reads.push(Read { file: file.clone(), age, male, by_variant });
    }
    let n = rows.len();
    let median = |mut v: Vec<f32>| {
        v.sort_by(f32::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f32::NAN)
    };
    println!(
        "{n} labelled faces ({} under {CHILD} years); a face found in {} (missed: {}). Our alignment against the crops' \
         own (the identity for a 200 px dlib chip), median over the faces: scale off by {:.1}%, rotation {:.1}°, centre {:.1} px\n",
        rows.iter().filter(|r| r.get(1).and_then(|a| a.trim().parse::<f32>().ok()).is_some_and(|a| a < CHILD)).count(),
        reads.len(),
        if missed.is_empty() { "none".to_owned() } else { missed.join(", ") },
        100.0 * median(scale_err),
        median(angle),
        median(shift)
    );
    println!(
        "| reading | gender accuracy (found faces) | of all {n} | under {CHILD} | {CHILD} and over | age MAE (years) |\n\
         | --- | --- | --- | --- | --- | --- |"
    );
    for (k, (name, cfg)) in variants.iter().enumerate() {
        let count = |f: &dyn Fn(&Read) -> bool| {
            let group: Vec<&Read> = reads.iter().filter(|r| f(r)).collect();
            (group.iter().filter(|r| (r.by_variant[k].1 >= 0.5) == r.male).count(), group.len())
        };
        let (ok, found) = count(&|_| true);
        let (ok_child, children) = count(&|r| r.age < CHILD);
        let (ok_adult, adults) = count(&|r| r.age >= CHILD);
        let mae = reads.iter().map(|r| (r.by_variant[k].0 - r.age).abs()).sum::<f32>() / found.max(1) as f32;
        let mark = if *cfg == Some(default) { " (default)" } else { "" };
        println!(
            "| {name}{mark} | {:.3} ({ok}/{found}) | {:.3} | {ok_child}/{children} | {ok_adult}/{adults} | {mae:.1} |",
            ok as f64 / found.max(1) as f64,
            ok as f64 / n.max(1) as f64,
        );
    }
    if per_face {
        println!(
            "\n| file | age | gender | {} |\n|{}",
            variants.iter().map(|v| v.0.as_str()).collect::<Vec<_>>().join(" | "),
            " --- |".repeat(variants.len() + 3)
        );
        for r in &reads {
            let cells: Vec<String> = r.by_variant.iter().map(|(a, m)| format!("{m:.3} / {a:.0}")).collect();
            println!("| {} | {} | {} | {} |", r.file, r.age, if r.male { "male" } else { "female" }, cells.join(" | "));
        }
    }
    // Calibration on these faces, measured leave-one-out: a threshold fitted to the others.
    let k = variants.iter().position(|v| v.1 == Some(default)).unwrap_or(0);
    let scores: Vec<f32> = reads.iter().map(|r| r.by_variant[k].1).collect();
    let labels: Vec<bool> = reads.iter().map(|r| r.male).collect();
    let one = loo_threshold_accuracy(&scores, &labels, &vec![0; reads.len()]);
    let by_age: Vec<usize> = reads.iter().map(|r| usize::from(r.by_variant[k].0 < CHILD)).collect();
    let two = loo_threshold_accuracy(&scores, &labels, &by_age);
    println!(
        "\nfitted gender thresholds on the default reading, leave-one-out over the found faces: one threshold {one:.3}; \
         one per predicted age group (under {CHILD} / {CHILD} and over) {two:.3}"
    );
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let only_attributes = args.iter().any(|a| a == "--attributes");
    let data = PathBuf::from(args.iter().find(|a| !a.starts_with("--")).map_or("../shared/data", String::as_str));
    let attributes_dir = data.join("faces/attributes");
    if only_attributes {
        let engine = FaceEngine::from_env(1, EngineConfig::default()).context("load the face models")?;
        return attributes(&engine, &attributes_dir, args.iter().any(|a| a == "--faces"));
    }
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
    if attributes_dir.is_dir() {
        attributes(&engine, &attributes_dir, false)?;
    }
    println!("\ntotal {:.1} s wall, {:.1} s CPU", started.elapsed().as_secs_f64(), cpu_seconds());
    Ok(())
}

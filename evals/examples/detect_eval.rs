//! Evaluates detect on the dev collections (`annotate/` of the evaluation data): what it
//! removes per noise type, the true products it wrongly removes, the margins between products
//! and noise for each signal, and the latency per step.
//!
//! ```sh
//! eval "$(models/fetch.sh)"
//! cargo run --release -p sightline-evals --example detect_eval -- [DATA] [--out detect.csv]
//! ```
//!
//! DATA defaults to `../shared/data`. Noise types (face, document, scene, other product) come
//! from `evals/detect/annotate_noise_types.csv` (see `docs/detect-embed.md`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use sightline_detect::{Analyzer, DetectConfig, Detection};
use sightline_evals::read_csv;
use sightline_inference::ModelStore;

/// One measured value of a detection.
type Signal = fn(&Detection) -> f32;

struct Row {
    collection: String,
    file: String,
    kind: String,
    detection: Detection,
    decode_ms: f64,
    timings: sightline_detect::models::Timings,
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(v: &[f32], q: f32) -> f32 {
    let mut s = v.to_vec();
    if s.is_empty() {
        return 0.0;
    }
    s.sort_by(f32::total_cmp);
    s[((s.len() - 1) as f32 * q).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut data = PathBuf::from("../shared/data");
    let mut out: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => out = Some(PathBuf::from(it.next().context("--out needs a path")?)),
            other if other.starts_with("--") => bail!("unknown option {other}"),
            other => data = PathBuf::from(other),
        }
    }
    let root = data.join("annotate");
    let truth = read_csv(&root.join("truth.csv"))?;
    let types_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("detect/annotate_noise_types.csv");
    let types: HashMap<(String, String), String> = read_csv(&types_path)?
        .into_iter()
        .filter(|r| r.len() >= 3)
        .map(|r| ((r[0].clone(), r[1].clone()), r[2].clone()))
        .collect();

    let store = ModelStore::from_env().context("model manifest")?;
    let analyzer =
        Analyzer::load(&store, DetectConfig::default()).context("load the detect models (models/fetch.sh)")?;
    eprintln!("analysing {} images under {}", truth.len(), root.display());
    let mut rows = Vec::new();
    for r in &truth {
        let (collection, file, label) = (&r[0], &r[1], &r[2]);
        let path = root.join("collections").join(collection).join(file);
        let bytes = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
        let start = Instant::now();
        let (_, img) = sightline_imaging::decode(&bytes, Some(file), &analyzer.config().limits)
            .with_context(|| format!("decode {}", path.display()))?;
        let rgb = img.to_rgb8();
        let decode_ms = start.elapsed().as_secs_f64() * 1000.0;
        let (detection, timings) = analyzer.analyse(&rgb).with_context(|| format!("analyse {}", path.display()))?;
        let kind = if label == "product" {
            "PRODUCT".to_owned()
        } else {
            types.get(&(collection.clone(), file.clone())).cloned().unwrap_or_else(|| "unknown".to_owned())
        };
        rows.push(Row { collection: collection.clone(), file: file.clone(), kind, detection, decode_ms, timings });
    }

    // Removals per type.
    println!("\n| image type | images | removed | by faces | by text | kept |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    let order = ["PRODUCT", "product", "face", "document", "scene"];
    let names: BTreeMap<&str, &str> = [
        ("PRODUCT", "true product (must be kept)"),
        ("product", "noise: another product (left to clustering)"),
        ("face", "noise: faces / people (dlib)"),
        ("document", "noise: document / text (CnOCR)"),
        ("scene", "noise: scene (COCO)"),
    ]
    .into();
    for kind in order {
        let of: Vec<&Row> = rows.iter().filter(|r| r.kind == kind).collect();
        let removed = of.iter().filter(|r| r.detection.filtered.is_some()).count();
        let by = |flag: &str| of.iter().filter(|r| r.detection.flags.iter().any(|f| f.flag == flag)).count();
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            names[kind],
            of.len(),
            removed,
            by("faces"),
            by("text"),
            of.len() - removed
        );
    }
    let wrongly: Vec<&Row> = rows.iter().filter(|r| r.kind == "PRODUCT" && r.detection.filtered.is_some()).collect();
    println!("\nwrongly removed true products: {}", wrongly.len());
    for r in &wrongly {
        println!("  {}/{}: {}", r.collection, r.file, r.detection.filtered.as_deref().unwrap_or(""));
    }

    // Margins: each signal's distribution per type.
    println!("\n| signal | type | max | p95 | p50 | min |");
    println!("| --- | --- | ---: | ---: | ---: | ---: |");
    let signals: [(&str, Signal); 4] = [
        ("confirmed-face fraction", |d| d.faces.fraction),
        ("text fraction", |d| d.text.fraction),
        ("nsfw", |d| d.nsfw),
        ("top-1 ImageNet p", |d| d.imagenet.first().map_or(0.0, |c| c.p)),
    ];
    for (name, f) in signals {
        for kind in order {
            let v: Vec<f32> = rows.iter().filter(|r| r.kind == kind).map(|r| f(&r.detection)).collect();
            println!(
                "| {name} | {kind} | {:.3} | {:.3} | {:.3} | {:.3} |",
                percentile(&v, 1.0),
                percentile(&v, 0.95),
                percentile(&v, 0.5),
                percentile(&v, 0.0)
            );
        }
    }
    // Face candidates (detector >= 0.9) and MTCNN's verdict on them.
    for kind in ["PRODUCT", "face"] {
        let scores: Vec<f32> = rows
            .iter()
            .filter(|r| r.kind == kind)
            .flat_map(|r| r.detection.faces.boxes.iter().map(|b| b.confirm))
            .collect();
        println!(
            "face candidates on {kind} images: {}, MTCNN score highest {:.3}, lowest {:.3}",
            scores.len(),
            percentile(&scores, 1.0),
            percentile(&scores, 0.0)
        );
    }
    let crops = rows.iter().filter(|r| r.kind == "PRODUCT" && !r.detection.crop_full).count();
    let area: f32 = rows
        .iter()
        .filter(|r| r.kind == "PRODUCT")
        .map(|r| {
            let c = r.detection.crop;
            (c[2] * c[3]) as f32
        })
        .sum::<f32>()
        / rows.iter().filter(|r| r.kind == "PRODUCT").count().max(1) as f32;
    println!(
        "\ntrue products cropped: {crops} of {}; mean crop area {area:.0} px²",
        rows.iter().filter(|r| r.kind == "PRODUCT").count()
    );

    // Latency.
    let col = |f: fn(&Row) -> f64| median(&mut rows.iter().map(f).collect::<Vec<_>>());
    let (decode, nsfw, faces, text, sal) = (
        col(|r| r.decode_ms),
        col(|r| r.timings.nsfw_ms),
        col(|r| r.timings.faces_ms),
        col(|r| r.timings.text_ms),
        col(|r| r.timings.saliency_ms),
    );
    let total =
        col(|r| r.decode_ms + r.timings.nsfw_ms + r.timings.faces_ms + r.timings.text_ms + r.timings.saliency_ms);
    println!(
        "\nlatency per image, median ms (one session per model, 1 intra-op thread): decode {decode:.1}, nsfw {nsfw:.1}, \
         faces {faces:.1}, text {text:.1}, classes+saliency {sal:.1}; total {total:.1}"
    );

    if let Some(out) = out {
        let mut csv = String::from(
            "collection,file,type,filtered,nsfw,faces,face_fraction,text_fraction,text_lines,crop_x,crop_y,crop_w,crop_h,crop_full,top_class,top_p\n",
        );
        for r in &rows {
            let d = &r.detection;
            let top = d.imagenet.first();
            csv.push_str(&format!(
                "{},{},{},{},{:.4},{},{:.4},{:.4},{},{},{},{},{},{},{},{:.4}\n",
                r.collection,
                r.file,
                r.kind,
                d.filtered.is_some(),
                d.nsfw,
                d.faces.count,
                d.faces.fraction,
                d.text.fraction,
                d.text.lines,
                d.crop[0],
                d.crop[1],
                d.crop[2],
                d.crop[3],
                d.crop_full,
                top.map_or(String::new(), |c| c.label.replace(',', " ")),
                top.map_or(0.0, |c| c.p),
            ));
        }
        std::fs::write(&out, csv).with_context(|| format!("write {}", out.display()))?;
        eprintln!("per-image results in {}", out.display());
    }
    Ok(())
}

//! Character accuracy on `ocr/lines` (text lines with ground truth) and the prices of the
//! price poster `ocr/unlabeled/ch_en_num.jpg`.
//!
//!   eval "$(models/fetch.sh)"
//!   cargo run --release -p sightline-evals --example ocr_eval -- [--data ../shared/data/ocr] [--rapidocr-defaults]
//!
//! Accuracy per image is 1 − edit distance / length of the truth, on the lines joined with
//! newlines (each trimmed), in Unicode characters; overall it is 1 − Σ distances / Σ lengths.
//! "strict" compares characters as they are; "width-folded" first maps full-width ASCII
//! (`，！：`) to ASCII, since the truth mixes both.

use std::path::PathBuf;

use anyhow::Context;
use sightline_ocr::{EngineOptions, OcrConfig, OcrEngine};

fn levenshtein(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j + 1] + 1).min(cur[j] + 1).min(prev[j] + usize::from(ca != cb));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn fold(s: &str) -> String {
    s.chars()
        .map(
            |c| if ('\u{FF01}'..='\u{FF5E}').contains(&c) { char::from_u32(c as u32 - 0xFEE0).unwrap_or(c) } else { c },
        )
        .collect()
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut data = PathBuf::from("../shared/data/ocr");
    let mut config = OcrConfig::default();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--data" => data = PathBuf::from(args.next().context("--data needs a path")?),
            "--rapidocr-defaults" => config = OcrConfig::rapidocr_defaults(),
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    let truth_path = data.join("lines/truth.json");
    let truth: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&truth_path).with_context(|| format!("read {}", truth_path.display()))?)?;
    let engine = OcrEngine::from_env(&EngineOptions::default(), config.clone()).context("load the OCR models")?;
    let limits = sightline_imaging::Limits::default();
    println!(
        "config: limit {:?} {}, cls {} (thresh {})",
        config.det.limit_type, config.det.limit_side_len, config.use_cls, config.cls_thresh
    );
    println!("| image | chars | strict | width-folded | recognised |");
    println!("| --- | --- | --- | --- | --- |");
    let (mut dist, mut dist_f, mut total) = (0usize, 0usize, 0usize);
    let mut names: Vec<&String> = truth.keys().collect();
    names.sort();
    for name in names {
        let want: Vec<String> = truth[name]
            .as_array()
            .context("truth lines")?
            .iter()
            .filter_map(|l| l.as_str().map(|s| s.trim().to_owned()))
            .collect();
        let bytes = std::fs::read(data.join("lines").join(name)).with_context(|| format!("read {name}"))?;
        let (out, _) = engine.read_bytes(&bytes, Some(name), &limits)?;
        let got = out.lines.iter().map(|l| l.text.trim().to_owned()).collect::<Vec<_>>().join("\n");
        let want = want.join("\n");
        let (g, w): (Vec<char>, Vec<char>) = (got.chars().collect(), want.chars().collect());
        let d = levenshtein(&g, &w);
        let df = levenshtein(&fold(&got).chars().collect::<Vec<_>>(), &fold(&want).chars().collect::<Vec<_>>());
        dist += d;
        dist_f += df;
        total += w.len();
        let acc = |d: usize| 1.0 - d as f64 / w.len().max(1) as f64;
        println!("| {name} | {} | {:.4} | {:.4} | {} |", w.len(), acc(d), acc(df), got.replace('\n', " ⏎ "));
    }
    let acc = |d: usize| 1.0 - d as f64 / total.max(1) as f64;
    println!("| **all** | {total} | **{:.4}** | **{:.4}** | |", acc(dist), acc(dist_f));

    let poster = data.join("unlabeled/ch_en_num.jpg");
    let bytes = std::fs::read(&poster).with_context(|| format!("read {}", poster.display()))?;
    let (out, _) = engine.read_bytes(&bytes, Some("ch_en_num.jpg"), &limits)?;
    println!("\nprices on {}:", poster.display());
    for p in &out.prices {
        println!("  {}", serde_json::to_string(p)?);
    }
    println!("product candidate: {:?}", out.product);
    Ok(())
}

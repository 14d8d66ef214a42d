//! Our side of the RapidOCR benchmark (`evals/ocr/bench.sh`): prints one JSON object
//! per file (seconds, per-step timings, lines, prices), reading the files named on the command
//! line (after one warm-up call) or, with none, one path per line from stdin (the protocol of
//! `bench.py`); `--params` prints the configuration as RapidOCR `params`. `OCR_THREADS` and
//! `OCR_LINE_WORKERS` override the engine options.
//!
//!   eval "$(models/fetch.sh)"
//!   cargo run --release -p sightline-evals --example ocr_bench -- [--rapidocr-defaults] [--npy-dir DIR] FILE...
//!
//! `--npy-dir DIR` reads the pixels from `DIR/<file name>.npy` (the BGR arrays RapidOCR decoded,
//! saved by `rapidocr_run.py` with `DUMP_NPY=DIR`) instead of decoding the file: it separates
//! differences of the JPEG decoders from differences of the pipeline.

use std::io::{BufRead, Write};
use std::time::Instant;

use anyhow::Context;
use sightline_ocr::cv::Bgr;
use sightline_ocr::{EngineOptions, OcrConfig, OcrEngine, OcrOutput, Timings};

fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let rapid = take_flag(&mut args, "--rapidocr-defaults");
    let params = take_flag(&mut args, "--params");
    let npy_dir = take_value(&mut args, "--npy-dir");
    let config = if rapid { OcrConfig::rapidocr_defaults() } else { OcrConfig::default() };
    if params {
        println!("{}", config.rapidocr_params());
        return Ok(());
    }
    let mut options = EngineOptions::default();
    if let Some(t) = std::env::var("OCR_THREADS").ok().and_then(|v| v.parse().ok()) {
        options.threads = t;
    }
    if let Some(w) = std::env::var("OCR_LINE_WORKERS").ok().and_then(|v| v.parse().ok()) {
        options.line_workers = w;
    }
    eprintln!("threads {}, line workers {}", options.threads, options.line_workers);
    let engine = OcrEngine::from_env(&options, config).context("load the OCR models")?;
    let limits = sightline_imaging::Limits::default();
    let read = |file: &str| -> anyhow::Result<(OcrOutput, Timings, f64)> {
        if let Some(dir) = &npy_dir {
            let name = std::path::Path::new(file).file_name().and_then(|n| n.to_str()).unwrap_or(file);
            let a = sightline_inference::npy::read_npy_u8(std::path::Path::new(dir).join(format!("{name}.npy")))?;
            let (h, w) = (a.shape()[0], a.shape()[1]);
            let img = Bgr { width: w, height: h, data: a.iter().copied().collect() };
            let t = Instant::now();
            let (lines, timings) = engine.recognize(&img)?;
            let tag = sightline_ocr::price::extract(&lines);
            let s = t.elapsed().as_secs_f64();
            return Ok((OcrOutput { lines, prices: tag.prices, product: tag.product }, timings, s));
        }
        let bytes = std::fs::read(file).with_context(|| format!("read {file}"))?;
        let t = Instant::now();
        let (out, timings) = engine.read_bytes(&bytes, Some(file), &limits)?;
        Ok((out, timings, t.elapsed().as_secs_f64()))
    };
    let answer = |file: &str| -> anyhow::Result<()> {
        let (out, timings, seconds) = read(file)?;
        let v = serde_json::json!({"file": file, "seconds": seconds, "timings": timings, "lines": out.lines, "prices": out.prices});
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{v}")?;
        stdout.flush()?;
        Ok(())
    };
    if args.is_empty() {
        // Protocol of bench.py: one path per line on stdin, one JSON line per path on stdout.
        for line in std::io::stdin().lock().lines() {
            let line = line?;
            if !line.trim().is_empty() {
                answer(line.trim())?;
            }
        }
        return Ok(());
    }
    read(&args[0])?; // warm-up
    for file in &args {
        answer(file)?;
    }
    Ok(())
}

fn take_value(args: &mut Vec<String>, flag: &str) -> Option<String> {
    let i = args.iter().position(|a| a == flag)?;
    args.remove(i);
    (i < args.len()).then(|| args.remove(i))
}

fn take_flag(args: &mut Vec<String>, flag: &str) -> bool {
    let before = args.len();
    args.retain(|a| a != flag);
    args.len() != before
}

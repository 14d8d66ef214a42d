//! Throughput of the dedup stage's per-image work: read the stored bytes, exact-bytes claim,
//! decode, pixel hash, perceptual hash, exact-pixels claim and near-duplicate index, through
//! the stage's own `Dedup::decide` over the in-memory backends (a local folder store and
//! in-memory coordination), with `--threads` images in flight.
//!
//! `cargo run --release -p sightline-evals --example dedup_bench -- DIR [--threads N] [--repeat R] [--json]`
//!
//! Prints images per second (best of `R` runs, each over every image under DIR with fresh
//! coordination, so every run does the full work), and a per-phase breakdown on one thread.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use sightline::walk::{Found, Walk};
use sightline_blob::LocalStore;
use sightline_coord::{Coord, MemoryCoord};
use sightline_dedup::{Dedup, DedupConfig};
use sightline_imaging::phash::{perceptual_hash, pixel_hash};
use sightline_imaging::{Limits, decode};
use sightline_messages::ImageTask;
use sightline_runtime::Ctx;
use tokio::sync::Semaphore;
use uuid::Uuid;

async fn one_run(blob: Arc<LocalStore>, tasks: &[ImageTask], threads: usize) -> anyhow::Result<(Duration, usize)> {
    let coord: Arc<dyn Coord> = Arc::new(MemoryCoord::new());
    let ctx = Ctx { blob, coord };
    let dedup = Arc::new(Dedup::new(DedupConfig::default())?);
    let gate = Arc::new(Semaphore::new(threads));
    let started = Instant::now();
    let handles: Vec<_> = tasks
        .iter()
        .cloned()
        .map(|t| {
            let (ctx, dedup, gate) = (ctx.clone(), dedup.clone(), gate.clone());
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await;
                // Copies wait for their original's decision: retry as the runner would.
                loop {
                    match dedup.decide(&ctx, &t).await {
                        Ok(_) => return true,
                        Err(sightline_runtime::StageError::Transient(_)) => {
                            tokio::time::sleep(Duration::from_millis(5)).await
                        }
                        Err(_) => return false,
                    }
                }
            })
        })
        .collect();
    let mut ok = 0;
    for h in handles {
        ok += usize::from(h.await?);
    }
    Ok((started.elapsed(), ok))
}

fn main() -> anyhow::Result<()> {
    let mut dir = PathBuf::from("../shared/data/neardup/images");
    let mut threads = std::thread::available_parallelism().map_or(1, usize::from);
    let mut repeat = 3;
    let mut json = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--threads" => threads = args.next().context("--threads needs a number")?.parse()?,
            "--repeat" => repeat = args.next().context("--repeat needs a number")?.parse()?,
            "--json" => json = true,
            other if !other.starts_with("--") => dir = other.into(),
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    let threads = threads.max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .max_blocking_threads(threads)
        .enable_all()
        .build()?;
    let storage = tempfile::tempdir()?;
    let blob = Arc::new(LocalStore::new(storage.path())?);
    // Every file, hidden ones too, as `sightline dedup` takes them.
    let files = Walk { hidden: true, follow_links: false }.files(&dir)?;
    let job = Uuid::new_v4();
    let mut tasks = Vec::new();
    let mut raw = Vec::new();
    runtime.block_on(async {
        for (i, Found { name: rel, path }) in files.iter().enumerate() {
            let bytes = std::fs::read(path)?;
            raw.push(bytes.clone());
            let size = bytes.len() as u64;
            let (key, sha256, _) = sightline_blob::put_content(blob.as_ref(), Bytes::from(bytes)).await?;
            tasks.push(ImageTask {
                job_id: job,
                item: i as u64,
                collection: "bench".into(),
                name: rel.clone(),
                key,
                sha256,
                format: String::new(),
                width: 0,
                height: 0,
                size,
                route: vec!["ingest".into(), "dedup".into()],
                hop: 1,
                annotations: BTreeMap::new(),
            });
        }
        anyhow::Ok(())
    })?;

    let mut best = Duration::MAX;
    let mut decided = 0;
    for _ in 0..repeat.max(1) {
        let (elapsed, ok) = runtime.block_on(one_run(blob.clone(), &tasks, threads))?;
        best = best.min(elapsed);
        decided = ok;
    }
    let per_second = tasks.len() as f64 / best.as_secs_f64();

    // Where one image's time goes, on one thread, over every image once.
    let (mut t_decode, mut t_pixels, mut t_phash, mut pixels) = (0.0, 0.0, 0.0, 0u64);
    for bytes in &raw {
        let t = Instant::now();
        let Ok((_, img)) = decode(bytes, None, &Limits::default()) else { continue };
        t_decode += t.elapsed().as_secs_f64();
        pixels += u64::from(img.width()) * u64::from(img.height());
        let t = Instant::now();
        std::hint::black_box(pixel_hash(&img));
        t_pixels += t.elapsed().as_secs_f64();
        let t = Instant::now();
        std::hint::black_box(perceptual_hash(&img));
        t_phash += t.elapsed().as_secs_f64();
    }
    let n = raw.len().max(1) as f64;
    let ms = |s: f64| (s / n * 1e6).round() / 1e3;
    if json {
        let doc = serde_json::json!({
            "images": tasks.len(),
            "decided": decided,
            "threads": threads,
            "seconds": best.as_secs_f64(),
            "images_per_second": per_second,
            "mean_megapixels": pixels as f64 / n / 1e6,
            "ms_per_image_one_thread": { "decode": ms(t_decode), "pixel_hash": ms(t_pixels), "perceptual_hash": ms(t_phash) },
        });
        // One line, so scripts can read one document per run.
        println!("{}", serde_json::to_string(&doc)?);
    } else {
        println!(
            "sightline dedup: {} images ({decided} decided) in {:.3} s on {threads} thread(s): {per_second:.0} images/s",
            tasks.len(),
            best.as_secs_f64()
        );
        println!(
            "one thread, ms per image ({:.2} MP mean): decode {}, pixel hash {}, perceptual hash {}",
            pixels as f64 / n / 1e6,
            ms(t_decode),
            ms(t_pixels),
            ms(t_phash)
        );
    }
    Ok(())
}

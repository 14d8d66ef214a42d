//! `sightline train --photos DIR --out MODEL_DIR`: trains a retrieval head
//! ([`sightline_embed::head`]) on folders of photos per product (one first-level folder per
//! product), with the backbone frozen: every photo gives `--views` views (the photo, its
//! mirror, then seeded random resized crops with colour jitter and a random flip), each embedded
//! as the embed stage embeds an image; the head is trained on those embeddings ([`proxy`]). Writes
//! `MODEL_DIR/model.toml`, `MODEL_DIR/head.f32` and `MODEL_DIR/report.html` (the loss curve).
//!
//! What is not here yet (issue 15): labels from `sightline annotate`, the catalogue as anchors,
//! versions in the object store, the stages applying a head.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use futures::StreamExt;
use image::RgbImage;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ndarray::Array2;
use sha2::{Digest, Sha256};
use sightline_embed::head::{self, HeadManifest};
use sightline_embed::{EmbedConfig, Fit};

use self::proxy::ProxyConfig;
use crate::embedded::search::{Extractor, image_files};

pub mod proxy;

/// `sightline train` options.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// Folder of training photos, one sub-folder per product (its name is the label).
    #[arg(long)]
    pub photos: PathBuf,
    /// Where the trained head is written (created).
    #[arg(long)]
    pub out: PathBuf,
    /// The model's name in `model.toml`.
    #[arg(long, default_value = "retrieval-head")]
    pub name: String,
    /// Seeds the views and the training.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Views per photo through the backbone (1: the photo; 2: and its mirror; more: random crops).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=16))]
    pub views: u64,
    /// Passes over the views.
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    /// Output dimension of the head.
    #[arg(long, default_value_t = 256)]
    pub dim: usize,
}

/// One training photo.
struct Photo {
    path: PathBuf,
    label: usize,
}

/// Runs the command.
pub async fn run(args: TrainArgs) -> anyhow::Result<()> {
    let (photos, products) = list(&args.photos)?;
    anyhow::ensure!(products.len() >= 2, "{}: at least two product folders are needed", args.photos.display());
    let extractor = Extractor::load(false, false, EmbedConfig::default()).await?;
    let started = Instant::now();
    let bar = progress_bar(photos.len() as u64, "embedding views");
    let mut digest = Sha256::new();
    let mut rows: Vec<Vec<f32>> = Vec::new();
    let mut labels = Vec::new();
    // One seed per view, drawn in photo order, so the views do not depend on the concurrency.
    let mut rng = sightline_clustering::dpc::SplitMix64(args.seed);
    let seeds: Vec<Vec<u64>> = photos.iter().map(|_| (0..args.views).map(|_| rng.next_u64()).collect()).collect();
    let extractor = &extractor;
    // Several photos in flight, so that the embedder's batcher fills its batches; `buffered`
    // keeps the photos' order.
    let mut embedded = futures::stream::iter(photos.iter().zip(seeds))
        .map(|(p, seeds)| async move {
            let bytes = tokio::fs::read(&p.path).await.with_context(|| format!("read {}", p.path.display()))?;
            let img = extractor.decode(&p.path, &p.path.display().to_string()).await?;
            let views = tokio::task::spawn_blocking(move || {
                seeds.iter().enumerate().map(|(k, s)| Arc::new(view(&img, k, *s))).collect::<Vec<_>>()
            })
            .await
            .context("augment task")?;
            let vectors = futures::future::try_join_all(
                views.into_iter().map(|v| extractor.embed_boxes(v, vec![None], Fit::Centre)),
            )
            .await?;
            anyhow::Ok((p.label, Sha256::digest(&bytes), vectors))
        })
        .buffered(8);
    while let Some(next) = embedded.next().await {
        let (label, sha, vectors) = next?;
        digest.update(products[label].as_bytes());
        digest.update([0]);
        digest.update(sha);
        for mut v in vectors {
            rows.push(v.pop().context("one embedding per view")?);
            labels.push(label);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let embed_seconds = started.elapsed().as_secs_f64();
    let dim = rows.first().map_or(0, Vec::len);
    let samples = Array2::from_shape_vec((rows.len(), dim), rows.concat()).context("embeddings of one size")?;

    let config = ProxyConfig { output: args.dim, epochs: args.epochs, seed: args.seed, ..ProxyConfig::default() };
    let bar = progress_bar(args.epochs as u64, "training");
    let trained = Instant::now();
    let classes = products.len();
    let (trained_head, losses) = tokio::task::spawn_blocking(move || {
        proxy::train_proxy(&samples, &labels, classes, &config, |_, loss| {
            bar.set_message(format!("training (loss {loss:.4})"));
            bar.inc(1);
        })
    })
    .await
    .context("training task")?;
    let train_seconds = trained.elapsed().as_secs_f64();
    let manifest = HeadManifest {
        name: args.name.clone(),
        version: head::version_of(&trained_head.to_bytes()),
        backbone: sightline_embed::MODEL_ID.to_owned(),
        input: dim,
        output: trained_head.output(),
        seed: args.seed,
        data_digest: hex::encode(digest.finalize()),
        classes,
        samples: photos.len() * args.views as usize,
        losses,
    };
    trained_head.save(&args.out, &manifest)?;
    let report = args.out.join("report.html");
    std::fs::write(&report, report_html(&manifest, &args, embed_seconds, train_seconds))
        .with_context(|| format!("write {}", report.display()))?;
    println!(
        "trained {} version {} on {} photos of {} products ({} views): {:.0} s embedding, {:.0} s training; wrote {}",
        manifest.name,
        manifest.version,
        photos.len(),
        classes,
        manifest.samples,
        embed_seconds,
        train_seconds,
        args.out.display()
    );
    Ok(())
}

fn progress_bar(len: u64, msg: &'static str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{msg:>24} [{bar:30}] {pos}/{len} ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(msg);
    bar
}

/// The photos under `dir/<product>/`, products sorted by name, photos by path.
fn list(dir: &Path) -> anyhow::Result<(Vec<Photo>, Vec<String>)> {
    let mut products: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .with_context(|| format!("read {}", dir.display()))?
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    products.sort();
    let mut photos = Vec::new();
    for (label, (_, path)) in products.iter().enumerate() {
        for (file, _) in image_files(path)? {
            photos.push(Photo { path: file, label });
        }
    }
    Ok((photos, products.into_iter().map(|(n, _)| n).collect()))
}

/// View `k` of a photo: 0 the photo, 1 its mirror, then a random resized crop (40-100 % of the
/// area, aspect 3/4-4/3) with brightness, contrast and saturation each ×0.8-1.2 and a random
/// flip, drawn from `seed`.
pub fn view(img: &RgbImage, k: usize, seed: u64) -> RgbImage {
    match k {
        0 => return img.clone(),
        1 => return image::imageops::flip_horizontal(img),
        _ => {}
    }
    let mut rng = sightline_clustering::dpc::SplitMix64(seed);
    let (w, h) = (f64::from(img.width()), f64::from(img.height()));
    let mut out = img.clone();
    for _ in 0..10 {
        let area = (0.4 + 0.6 * rng.uniform()) * w * h;
        let aspect = ((4.0f64 / 3.0).ln() * (2.0 * rng.uniform() - 1.0)).exp();
        let (cw, ch) = ((area * aspect).sqrt().round(), (area / aspect).sqrt().round());
        if cw >= 1.0 && ch >= 1.0 && cw <= w && ch <= h {
            let x = (rng.uniform() * (w - cw)).floor() as u32;
            let y = (rng.uniform() * (h - ch)).floor() as u32;
            out = image::imageops::crop_imm(img, x, y, cw as u32, ch as u32).to_image();
            break;
        }
    }
    let mut factor = || (0.8 + 0.4 * rng.uniform()) as f32;
    let (brightness, contrast, saturation) = (factor(), factor(), factor());
    let mean = out.pixels().map(|p| luma(p.0)).sum::<f32>() / (out.width() * out.height()).max(1) as f32;
    for p in out.pixels_mut() {
        let grey = luma(p.0);
        for c in &mut p.0 {
            let v = f32::from(*c) * brightness;
            let v = (v - mean * brightness) * contrast + mean * brightness;
            let v = grey * brightness + (v - grey * brightness) * saturation;
            *c = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    if rng.uniform() < 0.5 { image::imageops::flip_horizontal(&out) } else { out }
}

fn luma([r, g, b]: [u8; 3]) -> f32 {
    0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b)
}

/// `report.html`: what was trained, on what, and the loss curve.
fn report_html(m: &HeadManifest, args: &TrainArgs, embed_seconds: f64, train_seconds: f64) -> String {
    let (w, h, pad) = (640.0f32, 260.0f32, 40.0f32);
    let max = m.losses.iter().copied().fold(f32::MIN_POSITIVE, f32::max);
    let n = m.losses.len().max(2) - 1;
    let points: Vec<String> = m
        .losses
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let x = pad + (w - 2.0 * pad) * i as f32 / n as f32;
            let y = h - pad - (h - 2.0 * pad) * l / max;
            format!("{x:.1},{y:.1}")
        })
        .collect();
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    format!(
        r##"<!doctype html>
<html><head><meta charset="utf-8"><title>{name} {version}</title>
<style>body{{font-family:sans-serif;margin:2em}} td{{padding:2px 12px}}</style></head>
<body><h1>{name} <small>version {version}</small></h1>
<table>
<tr><td>backbone</td><td>{backbone} (frozen), {input}-d</td></tr>
<tr><td>head</td><td>linear {input} → {output}, normalised-softmax (proxy) loss</td></tr>
<tr><td>training photos</td><td>{photos} ({classes} products), {views} views each through the backbone, seed {seed}</td></tr>
<tr><td>training data digest</td><td><code>{digest}</code></td></tr>
<tr><td>time</td><td>{embed:.0} s embedding, {train:.0} s training</td></tr>
<tr><td>final loss</td><td>{last:.4}</td></tr>
</table>
<h2>Loss per epoch</h2>
<svg width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="loss curve">
<line x1="{pad}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#888"/>
<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{bottom}" stroke="#888"/>
<text x="{pad}" y="{top_label}" font-size="12">{max:.3}</text>
<text x="{right}" y="{axis_label}" font-size="12" text-anchor="end">epoch {epochs}</text>
<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{points}"/>
</svg>
</body></html>
"##,
        name = esc(&m.name),
        version = m.version,
        backbone = m.backbone,
        input = m.input,
        output = m.output,
        photos = m.samples / args.views.max(1) as usize,
        classes = m.classes,
        views = args.views,
        seed = m.seed,
        digest = m.data_digest,
        embed = embed_seconds,
        train = train_seconds,
        last = m.losses.last().copied().unwrap_or(f32::NAN),
        bottom = h - pad,
        right = w - pad,
        top_label = pad - 6.0,
        axis_label = h - pad + 16.0,
        epochs = m.losses.len(),
        points = points.join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_are_the_photo_its_mirror_then_seeded_crops() {
        let img = RgbImage::from_fn(40, 30, |x, y| image::Rgb([(x * 6) as u8, (y * 8) as u8, 100]));
        assert_eq!(view(&img, 0, 1), img);
        assert_eq!(view(&img, 1, 1), image::imageops::flip_horizontal(&img));
        let (a, b) = (view(&img, 2, 7), view(&img, 2, 7));
        assert_eq!(a, b, "one seed, one view");
        assert_ne!(view(&img, 2, 8), a, "another seed, another view");
        assert!(a.width() <= 40 && a.height() <= 30 && a.width() * a.height() >= 40 * 30 * 35 / 100);
    }
}

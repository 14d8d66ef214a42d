//! Evaluates the embedding: same-product nearest-neighbour rates with and without detect's
//! main-subject crop, for both ways of fitting the input (centre crop, letterbox), on the dev
//! collections (`annotate/`) and on search by photo (`search/`); then the latency per image
//! at batch sizes 1, 8 and 16, and the throughput of the batcher under concurrent requests.
//!
//! ```sh
//! eval "$(models/fetch.sh)"
//! cargo run --release -p sightline-evals --example embed_eval -- [DATA]
//! ```
//!
//! DATA defaults to `../shared/data`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use image::RgbImage;
use ndarray::{Array3, Array4, Axis};
use sightline_detect::analysis::{self, CropParams};
use sightline_detect::models::{DetectModels, ModelConfig};
use sightline_embed::{EmbedConfig, Embedder, Fit, input_tensor, l2_normalise, prepare};
use sightline_evals::read_csv;
use sightline_inference::{ModelStore, PoolConfig, Runtime, SessionPool};

fn load(path: &Path) -> anyhow::Result<RgbImage> {
    let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    let (_, img) = sightline_imaging::decode(&bytes, path.to_str(), &Default::default())
        .with_context(|| format!("decode {}", path.display()))?;
    Ok(img.to_rgb8())
}

/// The crop variants compared: detect's default, then looser and tighter settings.
const VARIANTS: [(&str, f32, f32); 3] = [
    ("crop (default: threshold 0.3, full above 0.9)", 0.3, 0.9),
    ("crop, threshold 0.4", 0.4, 0.9),
    ("crop only when it is under 0.6 of the image", 0.3, 0.6),
];

/// detect's main-subject box for `img` under each of [`VARIANTS`] (`None`: the whole image).
fn crops_for(models: &DetectModels, img: &RgbImage) -> anyhow::Result<Vec<Option<[u32; 4]>>> {
    let c = models.classify(img, 1)?;
    Ok(VARIANTS
        .iter()
        .map(|&(_, threshold, full_above)| {
            let params = CropParams { threshold, full_above, ..CropParams::default() };
            let s = analysis::saliency_crop(&c.saliency, c.side, c.side, &params);
            (!s.full).then(|| s.crop.to_pixels(img.width(), img.height()))
        })
        .collect())
}

/// The configurations compared: (name, crop variant or whole image, fit).
fn configs() -> Vec<(String, Option<usize>, Fit)> {
    let mut c = vec![
        ("whole image".to_owned(), None, Fit::Centre),
        ("whole image".to_owned(), None, Fit::Letterbox),
        (VARIANTS[0].0.to_owned(), Some(0), Fit::Centre),
        (VARIANTS[0].0.to_owned(), Some(0), Fit::Letterbox),
    ];
    c.extend(VARIANTS.iter().enumerate().skip(1).map(|(i, v)| (v.0.to_owned(), Some(i), Fit::Centre)));
    c
}

fn embed_all(pool: &SessionPool, inputs: &[Array3<f32>]) -> anyhow::Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(inputs.len());
    for chunk in inputs.chunks(16) {
        let views: Vec<_> = chunk.iter().map(|a| a.view().insert_axis(Axis(0))).collect();
        let x: Array4<f32> = ndarray::concatenate(Axis(0), &views)?.into_dimensionality()?;
        let res = pool.run_blocking(vec![("input".into(), x.into_dyn())])?;
        let f = res.get("features").context("features output")?;
        for row in f.axis_iter(Axis(0)) {
            let mut v: Vec<f32> = row.iter().copied().collect();
            l2_normalise(&mut v);
            out.push(v);
        }
    }
    Ok(out)
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Leave-one-out nearest neighbour among `idx`: the share whose neighbour has the same group.
fn nn_rate(f: &[Vec<f32>], idx: &[usize], group: &[String]) -> f64 {
    let hits = idx
        .iter()
        .filter(|&&i| {
            let best = idx
                .iter()
                .filter(|&&j| j != i)
                .max_by(|&&a, &&b| dot(&f[i], &f[a]).total_cmp(&dot(&f[i], &f[b])))
                .copied();
            best.is_some_and(|j| group[j] == group[i])
        })
        .count();
    hits as f64 / idx.len().max(1) as f64
}

/// Per product image: the share of its 5 nearest neighbours in its own collection that are
/// products (how well the embedding keeps products together, away from the noise).
fn product_purity(f: &[Vec<f32>], collection: &[String], product: &[bool]) -> f64 {
    let mut sum = 0.0;
    let mut n = 0;
    for i in (0..f.len()).filter(|&i| product[i]) {
        let mut others: Vec<(f32, usize)> = (0..f.len())
            .filter(|&j| j != i && collection[j] == collection[i])
            .map(|j| (dot(&f[i], &f[j]), j))
            .collect();
        others.sort_by(|a, b| b.0.total_cmp(&a.0));
        let k = others.len().min(5);
        sum += others[..k].iter().filter(|(_, j)| product[*j]).count() as f64 / k.max(1) as f64;
        n += 1;
    }
    sum / f64::from(n.max(1))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let data = match args.as_slice() {
        [] => PathBuf::from("../shared/data"),
        [d] if !d.starts_with("--") => PathBuf::from(d),
        _ => bail!("usage: embed_eval [DATA]"),
    };
    let store = Arc::new(ModelStore::from_env().context("model manifest")?);
    let detect = DetectModels::load(&store, ModelConfig::default()).context("load detect models (models/fetch.sh)")?;
    let runtime = Runtime::init_from_env(store.root())?;
    let pool = store.pool(runtime, "embed", PoolConfig::default())?;

    // ---- annotate: same-product neighbours among true products, purity within collections
    let root = data.join("annotate");
    let truth = read_csv(&root.join("truth.csv"))?;
    eprintln!("annotate: {} images", truth.len());
    let mut images = Vec::new();
    let (mut collection, mut product, mut distinct) = (Vec::new(), Vec::new(), Vec::new());
    for r in &truth {
        let img = load(&root.join("collections").join(&r[0]).join(&r[1]))?;
        let crops = crops_for(&detect, &img)?;
        images.push((img, crops));
        collection.push(r[0].clone());
        product.push(r[2] == "product");
        distinct.push(r.get(3).is_none_or(|d| d.is_empty()));
    }
    let products: Vec<usize> = (0..truth.len()).filter(|&i| product[i] && distinct[i]).collect();
    let cropped = products.iter().filter(|&&i| images[i].1[0].is_some()).count();
    println!(
        "\nannotate: {} distinct true products ({cropped} with a main-subject crop), 10 collections",
        products.len()
    );
    println!("\n| input | fit | same-product NN (annotate) | product purity of 5-NN (annotate) |");
    println!("| --- | --- | ---: | ---: |");
    for (name, variant, fit) in configs() {
        let inputs = images
            .iter()
            .map(|(img, crops)| Ok(input_tensor(&prepare(img, variant.and_then(|v| crops[v]), fit)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let f = embed_all(&pool, &inputs)?;
        println!(
            "| {name} | {} | {:.3} | {:.3} |",
            fit.as_str(),
            nn_rate(&f, &products, &collection),
            product_purity(&f, &collection, &product)
        );
    }

    // ---- search: shop-floor queries against catalogue photos
    let sroot = data.join("search");
    let rows = read_csv(&sroot.join("truth.csv"))?;
    let mut catalog: Vec<String> = rows.iter().map(|r| r[1].clone()).collect();
    catalog.sort();
    catalog.dedup();
    catalog.retain(|c| sroot.join("catalog").join(format!("{c}.jpg")).exists());
    type Crops = Vec<Option<[u32; 4]>>;
    let queries: Vec<(RgbImage, Crops, usize)> = rows
        .iter()
        .filter_map(|r| catalog.iter().position(|c| c == &r[1]).map(|t| (r[0].clone(), t)))
        .map(|(q, t)| {
            let img = load(&sroot.join("queries").join(&q))?;
            let crops = crops_for(&detect, &img)?;
            Ok((img, crops, t))
        })
        .collect::<anyhow::Result<_>>()?;
    let cat_imgs: Vec<(RgbImage, Crops)> = catalog
        .iter()
        .map(|c| {
            let img = load(&sroot.join("catalog").join(format!("{c}.jpg")))?;
            let crops = crops_for(&detect, &img)?;
            Ok((img, crops))
        })
        .collect::<anyhow::Result<_>>()?;
    println!(
        "\nsearch: {} queries against {} catalogue photos (chance top-1 {:.3})",
        queries.len(),
        catalog.len(),
        1.0 / catalog.len() as f64
    );
    println!("\n| input | fit | top-1 | top-5 |");
    println!("| --- | --- | ---: | ---: |");
    for (name, variant, fit) in configs() {
        let c = |crops: &Crops| variant.and_then(|v| crops[v]);
        let q = embed_all(
            &pool,
            &queries
                .iter()
                .map(|(i, cr, _)| Ok(input_tensor(&prepare(i, c(cr), fit)?)))
                .collect::<anyhow::Result<Vec<_>>>()?,
        )?;
        let k = embed_all(
            &pool,
            &cat_imgs
                .iter()
                .map(|(i, cr)| Ok(input_tensor(&prepare(i, c(cr), fit)?)))
                .collect::<anyhow::Result<Vec<_>>>()?,
        )?;
        let (mut top1, mut top5) = (0, 0);
        for (qi, (_, _, truth)) in q.iter().zip(&queries) {
            let mut ranked: Vec<(f32, usize)> = k.iter().enumerate().map(|(j, kj)| (dot(qi, kj), j)).collect();
            ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
            top1 += usize::from(ranked[0].1 == *truth);
            top5 += usize::from(ranked.iter().take(5).any(|r| r.1 == *truth));
        }
        let n = queries.len() as f64;
        println!("| {name} | {} | {:.3} | {:.3} |", fit.as_str(), top1 as f64 / n, top5 as f64 / n);
    }

    // ---- latency
    let sample: Vec<&(RgbImage, Crops)> = images.iter().take(64).collect();
    let mut prep_ms = Vec::new();
    let mut inputs = Vec::new();
    for (img, crops) in &sample {
        let t = Instant::now();
        inputs.push(input_tensor(&prepare(img, crops[0], Fit::Centre)?));
        prep_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "\nlatency (one session, 1 intra-op thread): crop + resize + tensor {:.1} ms per image (median)",
        median(prep_ms)
    );
    for batch in [1usize, 8, 16] {
        let mut per_image = Vec::new();
        for chunk in inputs.chunks(batch).filter(|c| c.len() == batch) {
            let t = Instant::now();
            embed_all(&pool, chunk)?;
            per_image.push(t.elapsed().as_secs_f64() * 1000.0 / batch as f64);
        }
        println!(
            "  model at batch {batch:2}: {:.1} ms per image (median of {} batches)",
            median(per_image.clone()),
            per_image.len()
        );
    }
    let embedder = Arc::new(Embedder::load(&store, &EmbedConfig::default(), &tokio::runtime::Handle::current())?);
    let start = Instant::now();
    let handles: Vec<_> = inputs
        .iter()
        .cloned()
        .map(|x| {
            let e = embedder.clone();
            tokio::spawn(async move { e.embed(x).await })
        })
        .collect();
    for h in handles {
        h.await?.map_err(anyhow::Error::msg)?;
    }
    let took = start.elapsed().as_secs_f64();
    let stats = embedder.batcher().stats();
    let batches = stats.batches.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "  batcher, {} concurrent requests: {:.1} images/s, {batches} model calls (largest batch {})",
        inputs.len(),
        inputs.len() as f64 / took,
        stats.largest.load(std::sync::atomic::Ordering::Relaxed)
    );
    Ok(())
}

//! Logo-search evaluation (docs/logos.md).
//!
//! ```text
//! eval "$(models/fetch.sh)"
//! cargo run -p sightline-evals --example logo_eval -- [DATA] [--out DIR] [--boxes CSV]
//! ```
//!
//! DATA (default `../shared/data/search`) is GroceryStoreDataset's search split: `catalog/` one
//! clean image per product, `queries/` shop photos, `truth.csv` query,product,coarse. The logo
//! catalogue is cut by hand from ONE catalogue image per brand: the boxes are in CSV (default
//! `examples/logo_eval.csv`: brand,source,x,y,w,h) and the crops are written to
//! `DIR/logos/<brand>.png` (DIR default `out/logo-eval`). Queries are the shop photos: a query's
//! brand is the CSV brand its product name starts with ("Arla-Sour-Milk" → Arla); the others
//! (produce) have no logo and measure how high the best logo score goes without one.
//!
//! Every query is analysed once by the detect stage (`annotations.detect`) and read once by the
//! OCR stage (cached in `DIR/queries.json`); region embeddings are cached per fit in
//! `DIR/embeddings-<fit>.bin`, so reruns and new region variants cost only what is new. Prints
//! markdown tables: brand recall@1/@5 per region variant and fit, the score distributions for
//! a rejection threshold, and the OCR brand-name baseline.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use sightline::embedded::search::{self as search_cmd, Extractor, Features};
use sightline_detect::regions::{self, Region, RegionParams};
use sightline_embed::Fit;
use sightline_index::logo::{self, name_score};
use sightline_index::search::{SearchIndex, dot};

const DIM: usize = sightline_embed::DIM;

struct Args {
    data: PathBuf,
    out: PathBuf,
    boxes: PathBuf,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        data: PathBuf::from("../shared/data/search"),
        out: PathBuf::from("out/logo-eval"),
        boxes: Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/logo_eval.csv"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--out" => a.out = PathBuf::from(value()?),
            "--boxes" => a.boxes = PathBuf::from(value()?),
            s if !s.starts_with("--") => a.data = PathBuf::from(s),
            other => bail!("unknown option {other}"),
        }
    }
    Ok(a)
}

/// One hand-cut logo.
struct LogoBox {
    brand: String,
    source: String,
    bbox: [u32; 4],
}

fn logo_boxes(csv: &Path) -> anyhow::Result<Vec<LogoBox>> {
    let text = std::fs::read_to_string(csv).with_context(|| format!("read {}", csv.display()))?;
    let mut out = Vec::new();
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let [brand, source, x, y, w, h] = f[..] else { bail!("bad logo row {line:?}") };
        let n = |s: &str| s.parse::<u32>().with_context(|| format!("bad number {s:?} in {line:?}"));
        out.push(LogoBox { brand: brand.to_owned(), source: source.to_owned(), bbox: [n(x)?, n(y)?, n(w)?, n(h)?] });
    }
    Ok(out)
}

/// Cuts the logos out of their catalogue images into `dir/<brand>.png`.
fn cut_logos(data: &Path, boxes: &[LogoBox], dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for b in boxes {
        let img = image::open(data.join("catalog").join(&b.source)).with_context(|| format!("open {}", b.source))?;
        let [x, y, w, h] = b.bbox;
        if x + w > img.width() || y + h > img.height() {
            bail!("{}: box {:?} outside the {}x{} image", b.brand, b.bbox, img.width(), img.height());
        }
        img.crop_imm(x, y, w, h).to_rgb8().save(dir.join(format!("{}.png", b.brand))).context("write logo")?;
    }
    Ok(())
}

/// What detect and OCR said about one query.
#[derive(serde::Serialize, serde::Deserialize)]
struct QueryInfo {
    name: String,
    product: String,
    width: u32,
    height: u32,
    detect: serde_json::Value,
    text: String,
}

fn truth(data: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(data.join("truth.csv")).context("read truth.csv")?;
    let mut out = Vec::new();
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let [q, p, _] = f[..] else { bail!("bad truth row {line:?}") };
        out.push((q.to_owned(), p.to_owned()));
    }
    Ok(out)
}

async fn query_infos(a: &Args, extractor: &Extractor) -> anyhow::Result<Vec<QueryInfo>> {
    let cache = a.out.join("queries.json");
    if let Ok(bytes) = std::fs::read(&cache) {
        eprintln!("detections and text from {}", cache.display());
        return serde_json::from_slice(&bytes).context("parse the query cache");
    }
    let started = Instant::now();
    let mut out = Vec::new();
    for (i, (name, product)) in truth(&a.data)?.into_iter().enumerate() {
        let path = a.data.join("queries").join(&name);
        let (img, detect) = extractor.detect(&path, &name).await?;
        let text = extractor.read_text(&path, &name).await?;
        out.push(QueryInfo { name, product, width: img.width(), height: img.height(), detect, text });
        if i % 20 == 19 {
            eprintln!("  {} queries analysed ({:.0} s)", i + 1, started.elapsed().as_secs_f64());
        }
    }
    std::fs::write(&cache, serde_json::to_vec(&out)?).context("write the query cache")?;
    Ok(out)
}

/// Embeddings by key ("<image>|x,y,w,h"), stored as: key length (u32 LE), key, DIM f32 LE.
#[derive(Default)]
struct EmbeddingCache {
    map: HashMap<String, Vec<f32>>,
    path: PathBuf,
    added: usize,
}

impl EmbeddingCache {
    fn load(path: PathBuf) -> Self {
        let mut map = HashMap::new();
        if let Ok(bytes) = std::fs::read(&path) {
            let mut b = &bytes[..];
            while b.len() >= 4 {
                let n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
                if b.len() < 4 + n + DIM * 4 {
                    break;
                }
                let key = String::from_utf8_lossy(&b[4..4 + n]).into_owned();
                let v = sightline_embed::from_le_bytes(&b[4 + n..4 + n + DIM * 4]).unwrap_or_default();
                map.insert(key, v);
                b = &b[4 + n + DIM * 4..];
            }
        }
        Self { map, path, added: 0 }
    }

    fn save(&self) -> anyhow::Result<()> {
        if self.added == 0 {
            return Ok(());
        }
        let mut f = std::io::BufWriter::new(std::fs::File::create(&self.path)?);
        for (k, v) in &self.map {
            f.write_all(&(k.len() as u32).to_le_bytes())?;
            f.write_all(k.as_bytes())?;
            f.write_all(&sightline_embed::to_le_bytes(v))?;
        }
        f.flush()?;
        Ok(())
    }
}

fn key(image: &str, b: [u32; 4]) -> String {
    format!("{image}|{},{},{},{}", b[0], b[1], b[2], b[3])
}

/// A way of cutting a query into regions.
struct Variant {
    name: &'static str,
    /// Several parameter sets whose regions are pooled (several scales).
    params: Vec<RegionParams>,
    /// Only detect's main-subject box (the whole image when detect found none): what the embed
    /// stage embeds.
    subject_only: bool,
}

fn variants() -> Vec<Variant> {
    let p = |whole: bool, crop: bool, text: bool, margin: f32| RegionParams {
        whole,
        crop,
        text,
        margin,
        ..Default::default()
    };
    vec![
        Variant { name: "whole image (baseline)", params: vec![p(true, false, false, 0.0)], subject_only: false },
        Variant { name: "main-subject crop (embed stage's input)", params: vec![], subject_only: true },
        Variant { name: "whole + crop", params: vec![p(true, true, false, 0.0)], subject_only: false },
        Variant { name: "text lines only, margin 0.5", params: vec![p(false, false, true, 0.5)], subject_only: false },
        Variant { name: "whole + crop + text, margin 0", params: vec![p(true, true, true, 0.0)], subject_only: false },
        Variant {
            name: "whole + crop + text, margin 0.25",
            params: vec![p(true, true, true, 0.25)],
            subject_only: false,
        },
        Variant {
            name: "whole + crop + text, margin 0.5",
            params: vec![p(true, true, true, 0.5)],
            subject_only: false,
        },
        Variant { name: "whole + crop + text, margin 1", params: vec![p(true, true, true, 1.0)], subject_only: false },
        Variant {
            name: "whole + crop + text, margins 0.25 and 1",
            params: vec![p(true, true, true, 0.25), p(false, false, true, 1.0)],
            subject_only: false,
        },
    ]
}

fn regions_of(q: &QueryInfo, v: &Variant) -> Vec<Region> {
    if v.subject_only {
        let detect = &q.detect;
        let params = RegionParams { whole: false, text: false, ..Default::default() };
        let mut r = regions::regions_from_detect(detect, q.width, q.height, &params);
        if r.is_empty() {
            r = regions::regions_from_detect(detect, q.width, q.height, &RegionParams { whole: true, ..params });
        }
        return r;
    }
    let mut out: Vec<Region> = Vec::new();
    for p in &v.params {
        for r in regions::regions_from_detect(&q.detect, q.width, q.height, p) {
            if !out.iter().any(|o| o.bbox == r.bbox) {
                out.push(r);
            }
        }
    }
    out
}

/// How a brand's score is computed from the regions' cosines.
#[derive(Clone, Copy)]
enum Mode {
    /// Best cosine over the regions ([`logo::rank`]).
    Max,
    /// Best over the regions of (cosine − the region's mean cosine over all logos): a region
    /// that looks like every logo (any text) gains nothing.
    Centred,
    /// `Max` + weight × the OCR name score.
    Fused(f32),
    /// `Centred` + weight × the OCR name score.
    CentredFused(f32),
}

impl Mode {
    fn name(self) -> String {
        match self {
            Mode::Max => "max cosine".into(),
            Mode::Centred => "max centred cosine".into(),
            Mode::Fused(w) => format!("max cosine + {w} × OCR name"),
            Mode::CentredFused(w) => format!("centred + {w} × OCR name"),
        }
    }

    /// Brand → score, best first.
    fn scores(self, index: &SearchIndex, vectors: &[Vec<f32>], text: &str) -> Vec<(String, f32)> {
        let brand = |i: usize| sightline_index::logo::brand_of(&index.items()[i].name);
        let mut out: Vec<(String, f32)> = match self {
            Mode::Max | Mode::Fused(_) => {
                logo::rank(index, vectors, index.len()).iter().map(|m| (brand(m.index), m.score)).collect()
            }
            Mode::Centred | Mode::CentredFused(_) => {
                let mut best = vec![f32::MIN; index.len()];
                for v in vectors {
                    let c: Vec<f32> = (0..index.len()).map(|i| dot(v, index.vector(i))).collect();
                    let mean = c.iter().sum::<f32>() / c.len().max(1) as f32;
                    for (b, x) in best.iter_mut().zip(&c) {
                        *b = b.max(x - mean);
                    }
                }
                if vectors.is_empty() {
                    best.fill(0.0);
                }
                best.into_iter().enumerate().map(|(i, s)| (brand(i), s)).collect()
            }
        };
        if let Mode::Fused(w) | Mode::CentredFused(w) = self {
            for (b, s) in &mut out {
                *s += w * name_score(b, text);
            }
        }
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        out
    }
}

/// The rank of `truth` (0-based) among `scores` (brand → score), counting ties against it.
fn rank_of(scores: &[(String, f32)], truth: &str) -> usize {
    let Some(s) = scores.iter().find(|(b, _)| b == truth).map(|(_, s)| *s) else { return usize::MAX };
    scores.iter().filter(|(b, x)| b != truth && *x >= s).count()
}

#[derive(Default)]
struct Tally {
    at1: usize,
    at5: usize,
    n: usize,
    at1_other: usize,
    n_other: usize,
}

impl Tally {
    fn add(&mut self, rank: usize, from_source_product: bool) {
        self.n += 1;
        self.at1 += usize::from(rank == 0);
        self.at5 += usize::from(rank < 5);
        if !from_source_product {
            self.n_other += 1;
            self.at1_other += usize::from(rank == 0);
        }
    }

    fn cells(&self) -> String {
        let r = |x: usize, n: usize| x as f64 / n.max(1) as f64;
        format!(
            "{:.3} ({}/{}) | {:.3} | {:.3} ({}/{})",
            r(self.at1, self.n),
            self.at1,
            self.n,
            r(self.at5, self.n),
            r(self.at1_other, self.n_other),
            self.at1_other,
            self.n_other
        )
    }
}

fn quantile(v: &mut [f32], q: f64) -> f32 {
    if v.is_empty() {
        return f32::NAN;
    }
    v.sort_by(f32::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let boxes = logo_boxes(&a.boxes)?;
    let logos_dir = a.out.join("logos");
    cut_logos(&a.data, &boxes, &logos_dir)?;
    let brands: Vec<String> = boxes.iter().map(|b| b.brand.clone()).collect();
    let source_product: HashMap<&str, &str> =
        boxes.iter().map(|b| (b.brand.as_str(), b.source.trim_end_matches(".jpg"))).collect();
    let brand_of_product = |p: &str| brands.iter().find(|b| p.starts_with(&format!("{b}-"))).cloned();

    let extractor = Extractor::load(true, true, sightline_embed::EmbedConfig::default()).await?;
    let queries = query_infos(&a, &extractor).await?;
    let branded = queries.iter().filter(|q| brand_of_product(&q.product).is_some()).count();
    println!(
        "# Logo search on {}\n\n{} logos (one per brand, cut from one catalogue image each), {} queries: {} branded, {} without a logo.\n",
        a.data.display(),
        brands.len(),
        queries.len(),
        branded,
        queries.len() - branded
    );
    let lines: Vec<usize> = queries
        .iter()
        .map(|q| q.detect.pointer("/text/boxes").and_then(|b| b.as_array()).map_or(0, Vec::len))
        .collect();
    let branded_with_lines =
        queries.iter().zip(&lines).filter(|(q, n)| brand_of_product(&q.product).is_some() && **n > 0).count();
    println!(
        "detect found text lines in {} of {} branded queries and {} of {} others.\n",
        branded_with_lines,
        branded,
        lines.iter().filter(|n| **n > 0).count() - branded_with_lines,
        queries.len() - branded
    );

    for fit in [Fit::Centre, Fit::Letterbox] {
        let mut cache = EmbeddingCache::load(a.out.join(format!("embeddings-{}.bin", fit.as_str())));
        // The logos: each whole logo image.
        let mut catalog = Vec::new();
        for b in &brands {
            let name = format!("{b}.png");
            let k = format!("logo:{name}");
            if !cache.map.contains_key(&k) {
                let img = extractor.decode(&logos_dir.join(&name), &name).await?;
                let v = extractor.embed_boxes(img, vec![None], fit).await?.pop().unwrap_or_default();
                cache.map.insert(k.clone(), v);
                cache.added += 1;
            }
            catalog.push(Features {
                name,
                vector: cache.map[&k].clone(),
                zoom: Vec::new(),
                text: String::new(),
                error: None,
            });
        }
        let index: SearchIndex = search_cmd::build_index(&catalog, usize::MAX)?;
        let started = Instant::now();
        let variants = variants();
        // Embed every region any variant needs, one decode per query.
        for q in &queries {
            let mut need: Vec<[u32; 4]> = Vec::new();
            for v in &variants {
                for r in regions_of(q, v) {
                    if !cache.map.contains_key(&key(&q.name, r.bbox)) && !need.contains(&r.bbox) {
                        need.push(r.bbox);
                    }
                }
            }
            if need.is_empty() {
                continue;
            }
            let img = extractor.decode(&a.data.join("queries").join(&q.name), &q.name).await?;
            let vs = extractor.embed_boxes(img, need.iter().map(|b| Some(*b)).collect(), fit).await?;
            for (b, v) in need.iter().zip(vs) {
                cache.map.insert(key(&q.name, *b), v);
                cache.added += 1;
            }
        }
        if cache.added > 0 {
            eprintln!(
                "fit {}: {} embeddings computed in {:.0} s",
                fit.as_str(),
                cache.added,
                started.elapsed().as_secs_f64()
            );
        }
        cache.save()?;

        println!("## Fit: {}\n", fit.as_str());
        println!(
            "Brand recall over the {branded} branded queries; \"other products\": leaving out the queries of the product each logo was cut from. \"No logo\": the best logo score on the {} queries without a brand. \"Threshold\": the highest no-logo score; \"kept\": branded queries whose right brand is first and scores above it.\n",
            queries.len() - branded
        );
        println!(
            "| regions | score | regions / query (mean) | recall@1 | recall@5 | recall@1, other products | right brand's score, median | no logo: median / p95 / max | kept at threshold |"
        );
        println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        for v in &variants {
            for mode in [Mode::Max, Mode::Centred, Mode::Fused(0.5), Mode::CentredFused(0.5)] {
                let (mut tally, mut right, mut none, mut nregions) = (Tally::default(), Vec::new(), Vec::new(), 0usize);
                let mut firsts: Vec<(f32, bool)> = Vec::new();
                for q in &queries {
                    let regions = regions_of(q, v);
                    nregions += regions.len();
                    let vectors: Vec<Vec<f32>> =
                        regions.iter().map(|r| cache.map[&key(&q.name, r.bbox)].clone()).collect();
                    let scores = mode.scores(&index, &vectors, &q.text);
                    match brand_of_product(&q.product) {
                        Some(b) => {
                            let r = rank_of(&scores, &b);
                            tally.add(r, source_product.get(b.as_str()) == Some(&q.product.as_str()));
                            right.push(scores.iter().find(|(x, _)| *x == b).map_or(0.0, |s| s.1));
                            firsts.push((scores.first().map_or(0.0, |s| s.1), r == 0));
                        }
                        None => none.push(scores.first().map_or(0.0, |s| s.1)),
                    }
                }
                let max_none = none.iter().copied().fold(f32::MIN, f32::max);
                let kept = firsts.iter().filter(|(s, ok)| *ok && *s > max_none).count();
                println!(
                    "| {} | {} | {:.1} | {} | {:.3} | {:.3} / {:.3} / {:.3} | {} of {} |",
                    v.name,
                    mode.name(),
                    nregions as f64 / queries.len() as f64,
                    tally.cells(),
                    quantile(&mut right, 0.5),
                    quantile(&mut none.clone(), 0.5),
                    quantile(&mut none.clone(), 0.95),
                    max_none,
                    kept,
                    branded
                );
            }
        }
        println!();
    }

    // The OCR baseline: the brand's name in the query's text.
    let mut tally = Tally::default();
    let (mut found, mut wrong_found, mut none_found) = (0, 0, 0);
    for q in &queries {
        let scores: Vec<(String, f32)> = brands.iter().map(|b| (b.clone(), name_score(b, &q.text))).collect();
        match brand_of_product(&q.product) {
            Some(b) => {
                tally.add(rank_of(&scores, &b), source_product.get(b.as_str()) == Some(&q.product.as_str()));
                found += usize::from(scores.iter().any(|(x, s)| *x == b && *s >= 1.0));
                wrong_found += usize::from(scores.iter().any(|(x, s)| *x != b && *s >= 1.0));
            }
            None => none_found += usize::from(scores.iter().any(|(_, s)| *s >= 1.0)),
        }
    }
    println!("## OCR baseline: the brand's name in the query's OCR text\n");
    println!(
        "Score: 1 when the name (letters and digits, lower case) occurs in the text, else the share of its character bigrams the text has; ties count against the right brand.\n"
    );
    println!("| method | recall@1 | recall@5 | recall@1, other products |");
    println!("| --- | --- | --- | --- |");
    println!("| brand name in OCR text | {} |", tally.cells());
    println!(
        "\nThe exact name occurs in the text of {found} of {branded} branded queries; another brand's name in {wrong_found}; some brand's name in {none_found} of the {} queries without a brand.",
        queries.len() - branded
    );
    Ok(())
}

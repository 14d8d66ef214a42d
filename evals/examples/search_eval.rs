//! Search-by-photo evaluation (docs/search.md).
//!
//! ```text
//! eval "$(models/fetch.sh)"
//! cargo run --release -p sightline-evals --example search_eval -- [DATA] [--cache FILE] [--weights 0,0.5]
//!     [--fit centre|letterbox] [--no-crop] [--query-zoom 25] [--bench 100000] [--bench-exact 1000000]
//!     [--bench-queries 200]
//!     [--no-bench] [--no-eval] [--no-serialise] [--model MODEL_DIR] [--seen TRAIN_DIR]
//! ```
//!
//! Accuracy: every image of DATA (default `../shared/data/search`: `catalog/` one clean image per
//! product, `queries/` shop photos, `truth.csv` query,product,coarse) is embedded and read with
//! the `sightline search` code; recall@1 and @5 by product (the right catalogue item in the top
//! k) and by coarse class (an item of the right class), for each text weight (0 = visual only),
//! once with each query's crop alone and once with the mean of its crop and zoomed-in view
//! (`--query-zoom` percent off each side, as `sightline search`; 0 skips the second table).
//! Features are cached in FILE (default `out/search-eval/features-<fit>.json`) so reruns skip
//! the models; `--fit centre|letterbox` is the embed stage's fitting of the image to 224×224.
//! `--model MODEL_DIR` puts every cached vector through a trained head (`sightline train`);
//! `--seen TRAIN_DIR` adds recall for the queries whose product has training photos there and
//! for the others (docs/training.md).
//!
//! Latency: the real catalogue plus N synthetic unit vectors (1280-d, clustered, so that nearest
//! neighbours mean something) in the HNSW index; single-threaded query latency p50/p99 of the
//! graph and of the exact scan on the same index, the graph's recall@10 against the scan, and
//! the real queries' product recall@5 among the distractors. `--bench-exact N` times only the
//! scan (no graph) at sizes too large to build a graph for here.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use sightline::embedded::search::{self as search_cmd, Features, Photos};
use sightline_index::search::{AnnIndex, AnnParams, DEFAULT_CANDIDATES, SearchOptions, exact_search};

const DIM: usize = sightline_embed::DIM;

struct Args {
    data: PathBuf,
    cache: PathBuf,
    weights: Vec<f32>,
    bench: Vec<usize>,
    bench_exact: Vec<usize>,
    bench_queries: usize,
    eval: bool,
    fit: sightline_embed::Fit,
    serialise: bool,
    crop: bool,
    zoom: u32,
    model: Option<PathBuf>,
    seen: Option<PathBuf>,
}

fn parse_list<T: std::str::FromStr>(s: &str) -> anyhow::Result<Vec<T>> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(|x| x.trim().parse().map_err(|_| anyhow::anyhow!("bad number {x:?}")))
        .collect()
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        data: PathBuf::from("../shared/data/search"),
        cache: PathBuf::new(),
        weights: vec![0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 2.0],
        bench: vec![100_000],
        bench_exact: Vec::new(),
        bench_queries: 200,
        eval: true,
        fit: sightline_embed::Fit::Centre,
        serialise: true,
        crop: true,
        zoom: search_cmd::DEFAULT_QUERY_ZOOM,
        model: None,
        seen: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--cache" => a.cache = PathBuf::from(value()?),
            "--weights" => a.weights = parse_list(&value()?)?,
            "--bench" => a.bench = parse_list(&value()?)?,
            "--bench-exact" => a.bench_exact = parse_list(&value()?)?,
            "--bench-queries" => a.bench_queries = value()?.parse()?,
            "--no-bench" => a.bench.clear(),
            "--no-eval" => a.eval = false,
            "--no-serialise" => a.serialise = false,
            "--no-crop" => a.crop = false,
            "--query-zoom" => a.zoom = value()?.parse()?,
            "--model" => a.model = Some(PathBuf::from(value()?)),
            "--seen" => a.seen = Some(PathBuf::from(value()?)),
            "--fit" => {
                a.fit = match value()?.as_str() {
                    "centre" => sightline_embed::Fit::Centre,
                    "letterbox" => sightline_embed::Fit::Letterbox,
                    other => bail!("--fit centre or letterbox, not {other:?}"),
                }
            }
            s if s.starts_with("--") => bail!("unknown option {s}"),
            s => a.data = PathBuf::from(s),
        }
    }
    if a.cache.as_os_str().is_empty() {
        let crop = if a.crop { "-crop" } else { "" };
        let zoom = if a.zoom > 0 { format!("-zoom{}", a.zoom) } else { String::new() };
        a.cache = PathBuf::from(format!("out/search-eval/features-{}{crop}{zoom}.json", a.fit.as_str()));
    }
    Ok(a)
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Cache {
    catalog: Vec<Features>,
    queries: Vec<Features>,
}

async fn features(a: &Args) -> anyhow::Result<Cache> {
    if let Ok(bytes) = std::fs::read(&a.cache) {
        eprintln!("features from {}", a.cache.display());
        return serde_json::from_slice(&bytes).context("parse the feature cache");
    }
    let started = Instant::now();
    let config = sightline_embed::EmbedConfig { fit: a.fit, ..Default::default() };
    let photos = Photos::new(true, a.crop, config)?;
    let catalog = photos.folder(&a.data.join("catalog"), 0).await?;
    let queries = photos.folder(&a.data.join("queries"), a.zoom).await?;
    eprintln!("embedded and read {} images in {:.0} s", catalog.len() + queries.len(), started.elapsed().as_secs_f64());
    let cache = Cache { catalog, queries };
    if let Some(dir) = a.cache.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&a.cache, serde_json::to_vec(&cache)?).context("write the feature cache")?;
    Ok(cache)
}

/// query file -> (product, coarse class).
fn truth(data: &Path) -> anyhow::Result<HashMap<String, (String, String)>> {
    let text = std::fs::read_to_string(data.join("truth.csv")).context("read truth.csv")?;
    let mut out = HashMap::new();
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let [q, p, c] = f[..] else { bail!("bad truth row {line:?}") };
        out.insert(q.to_owned(), (p.to_owned(), c.to_owned()));
    }
    Ok(out)
}

fn stem(name: &str) -> &str {
    Path::new(name).file_stem().and_then(|s| s.to_str()).unwrap_or(name)
}

#[derive(Default, Clone, Copy)]
struct Recall {
    product1: usize,
    product5: usize,
    coarse1: usize,
    coarse5: usize,
    n: usize,
}

impl Recall {
    fn row(&self) -> [f64; 4] {
        let r = |x: usize| x as f64 / self.n.max(1) as f64;
        [r(self.product1), r(self.product5), r(self.coarse1), r(self.coarse5)]
    }
}

fn evaluate(a: &Args, cache: &Cache) -> anyhow::Result<()> {
    let truth = truth(&a.data)?;
    let coarse_of: HashMap<&str, &str> = truth.values().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    let index = search_cmd::build_index(&cache.catalog, usize::MAX)?;
    let failed: Vec<&str> = cache.queries.iter().filter(|q| q.error.is_some()).map(|q| q.name.as_str()).collect();
    let with_text = |f: &[Features]| f.iter().filter(|x| !x.text.trim().is_empty()).count();
    println!(
        "catalogue {} items ({} with text), queries {} ({} with text, {} unreadable)\n",
        index.len(),
        with_text(&cache.catalog),
        cache.queries.len(),
        with_text(&cache.queries),
        failed.len()
    );
    let zoomed = cache.queries.iter().any(|q| !q.zoom.is_empty());
    let mut by_class_at: BTreeMap<String, (Recall, Recall)> = BTreeMap::new();
    let best_weight = sightline_index::search::DEFAULT_TEXT_WEIGHT;
    for zoom in [false, true] {
        if zoom && !zoomed {
            break;
        }
        by_class_at.clear();
        match zoom {
            false => println!("query: crop alone\n"),
            true => println!("\nquery: mean of crop and zoomed-in crop ({} % off each side)\n", a.zoom),
        }
        println!("| text weight | recall@1 product | recall@5 product | recall@1 coarse | recall@5 coarse |");
        println!("| --- | --- | --- | --- | --- |");
        recall_table(a, cache, &index, &truth, &coarse_of, zoom, &mut by_class_at)?;
    }
    println!(
        "\nper coarse class, product recall@1 / @5, visual only and with the default text weight {best_weight}{}:\n",
        if zoomed { ", query zoom on" } else { "" }
    );
    println!("| class | queries | visual @1 | visual @5 | fused @1 | fused @5 |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (class, (v, f)) in &by_class_at {
        let (v, f) = (v.row(), f.row());
        println!("| {class} | {} | {:.2} | {:.2} | {:.2} | {:.2} |", by_class_at[class].0.n, v[0], v[1], f[0], f[1]);
    }
    Ok(())
}

/// Product recall@1 / @5 for the queries whose product has a folder under `train` (seen by a
/// trained head) and for the others, visual only and at the default text weight, query zoom on.
fn seen_split(a: &Args, cache: &Cache, train: &Path) -> anyhow::Result<()> {
    let truth = truth(&a.data)?;
    let index = search_cmd::build_index(&cache.catalog, usize::MAX)?;
    let seen = |product: &str| train.join(product).is_dir();
    println!("\nby whether the product has training photos under {} (query zoom on):\n", train.display());
    println!(
        "| text weight | seen queries | seen recall@1 | seen recall@5 | unseen queries | unseen recall@1 | unseen recall@5 |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for w in [0.0, sightline_index::search::DEFAULT_TEXT_WEIGHT] {
        let opts = SearchOptions { k: 5, candidates: DEFAULT_CANDIDATES, text_weight: w };
        // (queries, hits@1, hits@5) for seen and unseen.
        let mut tally = [(0usize, 0usize, 0usize); 2];
        for r in search_cmd::answer(&index, &cache.queries, &opts, true) {
            let (product, _) = truth.get(&r.query).with_context(|| format!("{} is not in truth.csv", r.query))?;
            let products: Vec<&str> = r.matches.iter().map(|m| stem(&m.item)).collect();
            let t = &mut tally[usize::from(!seen(product))];
            t.0 += 1;
            t.1 += usize::from(products.first() == Some(&product.as_str()));
            t.2 += usize::from(products.contains(&product.as_str()));
        }
        let rate = |hits: usize, n: usize| hits as f64 / n.max(1) as f64;
        let [(n, a1, a5), (m, b1, b5)] = tally;
        println!(
            "| {w} | {n} | {:.3} | {:.3} | {m} | {:.3} | {:.3} |",
            rate(a1, n),
            rate(a5, n),
            rate(b1, m),
            rate(b5, m)
        );
    }
    Ok(())
}

/// One recall table (a row per text weight), and the per-class tallies at weights 0 and default.
fn recall_table(
    a: &Args,
    cache: &Cache,
    index: &sightline_index::search::SearchIndex,
    truth: &HashMap<String, (String, String)>,
    coarse_of: &HashMap<&str, &str>,
    zoom: bool,
    by_class_at: &mut BTreeMap<String, (Recall, Recall)>,
) -> anyhow::Result<()> {
    let best_weight = sightline_index::search::DEFAULT_TEXT_WEIGHT;
    for &w in &a.weights {
        let opts = SearchOptions { k: 5, candidates: DEFAULT_CANDIDATES, text_weight: w };
        let results = search_cmd::answer(index, &cache.queries, &opts, zoom);
        let mut total = Recall::default();
        for r in &results {
            let (product, coarse) = truth.get(&r.query).with_context(|| format!("{} is not in truth.csv", r.query))?;
            let products: Vec<&str> = r.matches.iter().map(|m| stem(&m.item)).collect();
            let classes: Vec<&str> = products.iter().map(|p| coarse_of.get(p).copied().unwrap_or("")).collect();
            let hit = Recall {
                product1: usize::from(products.first() == Some(&product.as_str())),
                product5: usize::from(products.contains(&product.as_str())),
                coarse1: usize::from(classes.first() == Some(&coarse.as_str())),
                coarse5: usize::from(classes.contains(&coarse.as_str())),
                n: 1,
            };
            total.product1 += hit.product1;
            total.product5 += hit.product5;
            total.coarse1 += hit.coarse1;
            total.coarse5 += hit.coarse5;
            total.n += 1;
            if w == 0.0 || w == best_weight {
                let e = by_class_at.entry(coarse.clone()).or_default();
                let slot = if w == 0.0 { &mut e.0 } else { &mut e.1 };
                slot.product1 += hit.product1;
                slot.product5 += hit.product5;
                slot.n += 1;
            }
        }
        let [p1, p5, c1, c5] = total.row();
        println!("| {w} | {p1:.3} | {p5:.3} | {c1:.3} | {c5:.3} |");
    }
    Ok(())
}

/// A small deterministic generator (xorshift64*) with Box-Muller normals: the benchmark needs
/// nothing more, and the example stays within the crate's dependencies.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f32 {
        let (u, v) = (self.next_f64(), self.next_f64());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }
}

fn normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
}

/// `n` unit vectors around `centres` (each point: its centre plus Gaussian noise of norm ≈ 1,
/// so cosine ≈ 0.7 to its centre, ≈ 0.5 within a cluster, ≈ 0 across clusters).
fn synthetic(n: usize, centres: &[f32], rng: &mut Rng, out: &mut Vec<f32>) {
    let clusters = centres.len() / DIM;
    let sigma = 1.0 / (DIM as f32).sqrt();
    let mut v = vec![0f32; DIM];
    for _ in 0..n {
        let c = (rng.next_f64() * clusters as f64) as usize % clusters;
        for (x, m) in v.iter_mut().zip(&centres[c * DIM..(c + 1) * DIM]) {
            *x = m + sigma * rng.normal();
        }
        normalise(&mut v);
        out.extend_from_slice(&v);
    }
}

fn percentile(sorted_ms: &[f64], p: f64) -> f64 {
    let i = ((sorted_ms.len() as f64 - 1.0) * p).round() as usize;
    sorted_ms[i.min(sorted_ms.len() - 1)]
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed().as_secs_f64() * 1000.0)
}

fn latencies(queries: &[&[f32]], mut f: impl FnMut(&[f32])) -> (f64, f64) {
    let mut ms: Vec<f64> = queries.iter().map(|q| timed(|| f(q)).1).collect();
    ms.sort_by(f64::total_cmp);
    (percentile(&ms, 0.5), percentile(&ms, 0.99))
}

fn bench(a: &Args, cache: &Cache) -> anyhow::Result<()> {
    let truth = truth(&a.data).unwrap_or_default();
    let real: Vec<&Features> = cache.catalog.iter().filter(|f| f.error.is_none()).collect();
    let real_queries: Vec<&Features> = cache.queries.iter().filter(|f| f.error.is_none()).collect();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let params = AnnParams::default();
    println!(
        "\nHNSW M={} ef_construction={} ef_search={}, k=10, single-threaded queries, {} threads building\n",
        params.max_connections,
        params.ef_construction,
        params.ef_search,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "| vectors | build s | build MB/s in | ANN p50 ms | ANN p99 ms | exact p50 ms | exact p99 ms | exact/ANN p50 \
         | recall@10 vs exact | real recall@5 ANN / exact |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let sizes: Vec<(usize, bool)> =
        a.bench.iter().map(|n| (*n, true)).chain(a.bench_exact.iter().map(|n| (*n, false))).collect();
    for (n, graph) in sizes {
        let clusters = (n / 100).max(10);
        let mut centres = Vec::with_capacity(clusters * DIM);
        for _ in 0..clusters * DIM {
            centres.push(rng.normal());
        }
        centres.chunks_exact_mut(DIM).for_each(normalise);
        let mut vectors = Vec::with_capacity((n + real.len()) * DIM);
        for f in &real {
            vectors.extend_from_slice(&f.vector);
        }
        let (_, gen_ms) = timed(|| synthetic(n, &centres, &mut rng, &mut vectors));
        let mut qv = Vec::new();
        synthetic(a.bench_queries, &centres, &mut rng, &mut qv);
        let queries: Vec<&[f32]> = qv.chunks_exact(DIM).collect();
        eprintln!("{n}: generated in {:.0} s", gen_ms / 1000.0);
        let (ex50, ex99) = latencies(&queries, |q| {
            std::hint::black_box(exact_search(&vectors, DIM, q, 10));
        });
        eprintln!("{n}: exact scan p50 {ex50:.2} ms, p99 {ex99:.2} ms");
        if !graph {
            println!("| {} | - | - | - | - | {ex50:.2} | {ex99:.2} | - | - | - |", n + real.len());
            continue;
        }
        let (ann, build_ms) = timed(|| AnnIndex::build(&vectors, DIM, params));
        let ann = ann?;
        eprintln!("{n}: graph built in {:.0} s", build_ms / 1000.0);
        let (an50, an99) = latencies(&queries, |q| {
            std::hint::black_box(ann.search(q, 10));
        });
        let (mut found, mut total) = (0, 0);
        for q in &queries {
            let t: HashSet<usize> = exact_search(&vectors, DIM, q, 10).iter().map(|h| h.index).collect();
            found += ann.search(q, 10).iter().filter(|h| t.contains(&h.index)).count();
            total += t.len();
        }
        // The real queries among the distractors: product recall@5, graph vs scan.
        let product_at5 = |hits: Vec<sightline_index::Hit>, q: &Features| {
            let want = truth.get(&q.name).map(|t| t.0.as_str());
            hits.iter().any(|h| h.index < real.len() && Some(stem(&real[h.index].name)) == want)
        };
        let (mut ra, mut re) = (0, 0);
        for q in &real_queries {
            ra += usize::from(product_at5(ann.search(&q.vector, 5), q));
            re += usize::from(product_at5(exact_search(&vectors, DIM, &q.vector, 5), q));
        }
        let nq = real_queries.len().max(1) as f64;
        let mb = (vectors.len() * 4) as f64 / 1e6;
        println!(
            "| {} | {:.0} | {:.1} | {an50:.2} | {an99:.2} | {ex50:.2} | {ex99:.2} | {:.0}× | {:.4} | {:.3} / {:.3} |",
            n + real.len(),
            build_ms / 1000.0,
            mb / (build_ms / 1000.0),
            ex50 / an50,
            found as f64 / total.max(1) as f64,
            ra as f64 / nq,
            re as f64 / nq
        );
        if !a.serialise {
            continue;
        }
        // Serialisation cost at this size (what a replica loads from S3).
        let (bytes, ser_ms) = timed(|| ann.to_bytes());
        let bytes = bytes?;
        let (back, de_ms) = timed(|| AnnIndex::from_bytes(&bytes));
        let back = back?;
        anyhow::ensure!(back.search(queries[0], 10) == ann.search(queries[0], 10), "reloaded graph differs");
        eprintln!(
            "{n}: serialised {:.0} MB in {:.1} s, reloaded in {:.1} s",
            bytes.len() as f64 / 1e6,
            ser_ms / 1000.0,
            de_ms / 1000.0
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let mut cache = features(&a).await?;
    if let Some(dir) = &a.model {
        let (head, manifest) = sightline_embed::head::Head::load(dir)?;
        println!(
            "head {} version {} ({} → {}) applied to every vector\n",
            manifest.name, manifest.version, manifest.input, manifest.output
        );
        cache.catalog = cache.catalog.into_iter().map(|f| f.through(&head)).collect();
        cache.queries = cache.queries.into_iter().map(|f| f.through(&head)).collect();
    }
    if a.eval {
        evaluate(&a, &cache)?;
        if let Some(train) = &a.seen {
            seen_split(&a, &cache, train)?;
        }
    }
    if !a.bench.is_empty() || !a.bench_exact.is_empty() {
        tokio::task::block_in_place(|| bench(&a, &cache))?;
    }
    Ok(())
}

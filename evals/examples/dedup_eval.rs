//! Accuracy of the dedup stage on `shared/data/neardup`: precision and recall per transform
//! and overall, and the false-duplicate rate on the `distinct` photos.
//!
//! `cargo run --release -p sightline-evals --example dedup_eval -- --data ../shared/data/neardup [--max-distance N] [--shuffles K] [--no-mirror] [--json]`
//!
//! With `--train DIR [--per-product N] [--seed S]` (e.g. `../shared/data/train`, photos in one
//! folder per product) the rows are made instead: `N` seeded photos of each product are
//! originals, each with a copy under every transform of `sightline_evals::transforms`, and
//! every other photo of the product is a `distinct` row (a hard negative: another shot of
//! the same shelf). Every row is in one index, so every product's shots meet every other's.
//!
//! Every image goes through the stage's own decision code (`Dedup::decide`: exact claims,
//! decode, fingerprint, near-duplicate index) over the in-memory backends, one at a time, in
//! two kinds of order: originals first (each group's `orig` before its copies, as when a
//! photo is re-posted after it was published), and `K` seeded random orders (a copy may come
//! first and become the group's original). Definitions:
//! - a copy (any row but `orig` and `distinct`) is **found** when it ends in the same
//!   predicted group as its group's `orig`; recall = found / copies;
//! - a file called a duplicate is **correct** when its predicted original is in its true
//!   group; precision = correct / called duplicates;
//! - a `distinct` photo is **falsely merged** when it is called a duplicate or another file
//!   is called a duplicate of it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use serde::Serialize;
use sightline_blob::LocalStore;
use sightline_clustering::dpc::SplitMix64;
use sightline_coord::MemoryCoord;
use sightline_dedup::{Decision, Dedup, DedupConfig, Kind};
use sightline_evals::transforms;
use sightline_messages::ImageTask;
use sightline_runtime::Ctx;
use uuid::Uuid;

struct Row {
    file: String,
    group: String,
    transform: String,
    bytes: Vec<u8>,
}

#[derive(Debug, Default, Clone, Serialize)]
struct Stats {
    copies: usize,
    found: usize,
    called_duplicate: usize,
    correct: usize,
    exact_kind: usize,
}

impl Stats {
    fn recall(&self) -> Option<f64> {
        (self.copies > 0).then(|| self.found as f64 / self.copies as f64)
    }
    fn precision(&self) -> Option<f64> {
        (self.called_duplicate > 0).then(|| self.correct as f64 / self.called_duplicate as f64)
    }
}

#[derive(Debug, Clone, Serialize)]
struct Outcome {
    per_transform: BTreeMap<String, Stats>,
    overall: Stats,
    distinct: usize,
    distinct_falsely_merged: usize,
    /// Each falsely merged distinct photo and the root it was merged with (or a file merged into it).
    merges: Vec<(String, String)>,
}

async fn run(rows: &[&Row], config: &DedupConfig) -> anyhow::Result<Outcome> {
    let storage = tempfile::tempdir()?;
    let ctx = Ctx { blob: Arc::new(LocalStore::new(storage.path())?), coord: Arc::new(MemoryCoord::new()) };
    let dedup = Dedup::new(config.clone())?;
    let job = Uuid::new_v4();
    let mut root: BTreeMap<&str, String> = BTreeMap::new();
    let mut decisions: BTreeMap<&str, Decision> = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        let (key, sha256, _) = sightline_blob::put_content(ctx.blob.as_ref(), Bytes::from(row.bytes.clone())).await?;
        let task = ImageTask {
            job_id: job,
            item: i as u64,
            collection: "neardup".into(),
            name: row.file.clone(),
            key,
            sha256,
            format: String::new(),
            width: 0,
            height: 0,
            size: row.bytes.len() as u64,
            route: vec!["ingest".into(), "dedup".into()],
            hop: 1,
            annotations: BTreeMap::new(),
        };
        let d = dedup.decide(&ctx, &task).await.map_err(|e| anyhow::anyhow!("{}: {e}", row.file))?;
        root.insert(
            &row.file,
            match &d {
                Decision::Unique { .. } => row.file.clone(),
                Decision::Duplicate { of, .. } => of.clone(),
            },
        );
        decisions.insert(&row.file, d);
    }
    let group_of: BTreeMap<&str, &str> = rows.iter().map(|r| (r.file.as_str(), r.group.as_str())).collect();
    let orig_of: BTreeMap<&str, &str> =
        rows.iter().filter(|r| r.transform == "orig").map(|r| (r.group.as_str(), r.file.as_str())).collect();
    let mut per_transform: BTreeMap<String, Stats> = BTreeMap::new();
    let mut overall = Stats::default();
    let (mut distinct, mut merged, mut merges) = (0, 0, Vec::new());
    for r in rows {
        let s = per_transform.entry(r.transform.clone()).or_default();
        let my_root = &root[r.file.as_str()];
        if let Decision::Duplicate { kind, .. } = &decisions[r.file.as_str()] {
            let correct = group_of.get(my_root.as_str()) == Some(&r.group.as_str());
            for s in [&mut *s, &mut overall] {
                s.called_duplicate += 1;
                s.correct += usize::from(correct);
                s.exact_kind += usize::from(*kind == Kind::Exact);
            }
        }
        if r.transform == "distinct" {
            distinct += 1;
            let pointed_at = root.iter().find(|(f, rt)| **f != r.file && **rt == r.file).map(|(f, _)| f.to_string());
            if *my_root != r.file || pointed_at.is_some() {
                merged += 1;
                merges.push((r.file.clone(), pointed_at.unwrap_or_else(|| my_root.clone())));
            }
        } else if r.transform != "orig" {
            let found = orig_of.get(r.group.as_str()).is_some_and(|o| root[o] == *my_root);
            for s in [&mut *s, &mut overall] {
                s.copies += 1;
                s.found += usize::from(found);
            }
        }
    }
    Ok(Outcome { per_transform, overall, distinct, distinct_falsely_merged: merged, merges })
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{:.1}%", v * 100.0))
}

fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for i in (1..v.len()).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v.swap(i, (s % (i as u64 + 1)) as usize);
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut data = PathBuf::from("../shared/data/neardup");
    let mut max_distance = sightline_dedup::DEFAULT_MAX_DISTANCE;
    let mut shuffles = 5u64;
    let mut json = false;
    let mut mirror = true;
    let (mut train, mut per_product, mut seed) = (None::<PathBuf>, 3usize, 16u64);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--data" => data = args.next().context("--data needs a folder")?.into(),
            "--train" => train = Some(args.next().context("--train needs a folder")?.into()),
            "--per-product" => per_product = args.next().context("--per-product needs a number")?.parse()?,
            "--seed" => seed = args.next().context("--seed needs a number")?.parse()?,
            "--max-distance" => max_distance = args.next().context("--max-distance needs a number")?.parse()?,
            "--shuffles" => shuffles = args.next().context("--shuffles needs a number")?.parse()?,
            "--no-mirror" => mirror = false,
            "--json" => json = true,
            other => anyhow::bail!(
                "unknown argument {other:?} (--data DIR | --train DIR [--per-product N] [--seed S]; \
                 --max-distance N --shuffles K --no-mirror --json)"
            ),
        }
    }
    let config = DedupConfig { max_distance, mirror, ..DedupConfig::default() };
    let rows = match &train {
        Some(dir) => {
            data = dir.clone();
            train_rows(dir, per_product, seed)?
        }
        None => truth_rows(&data)?,
    };
    // Originals first: every `orig`, then every other row in file order.
    let mut first: Vec<&Row> = rows.iter().filter(|r| r.transform == "orig").collect();
    first.extend(rows.iter().filter(|r| r.transform != "orig"));
    let originals_first = run(&first, &config).await?;
    let mut shuffled = Vec::new();
    for seed in 1..=shuffles {
        let mut order: Vec<&Row> = rows.iter().collect();
        shuffle(&mut order, seed);
        shuffled.push(run(&order, &config).await?);
    }

    if json {
        let doc = serde_json::json!({
            "data": data.display().to_string(),
            "max_distance": max_distance,
            "mirror": mirror,
            "originals_first": originals_first,
            "shuffled": shuffled,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!(
        "dedup on {} ({} images), max distance {max_distance}, mirror lookup {}",
        data.display(),
        rows.len(),
        if mirror { "on" } else { "off" }
    );
    println!(
        "\n| transform | copies | recall (originals first) | precision | recall, {shuffles} random orders (min / mean) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    let mut names: Vec<&String> =
        originals_first.per_transform.keys().filter(|t| *t != "orig" && *t != "distinct").collect();
    names.sort();
    for t in names {
        let s = &originals_first.per_transform[t];
        let recalls: Vec<f64> =
            shuffled.iter().filter_map(|o| o.per_transform.get(t).and_then(Stats::recall)).collect();
        let min = recalls.iter().copied().fold(f64::INFINITY, f64::min);
        let mean = recalls.iter().sum::<f64>() / recalls.len().max(1) as f64;
        let shuffled_col =
            if recalls.is_empty() { "-".to_owned() } else { format!("{} / {}", pct(Some(min)), pct(Some(mean))) };
        println!("| {t} | {} | {} | {} | {shuffled_col} |", s.copies, pct(s.recall()), pct(s.precision()));
    }
    let o = &originals_first.overall;
    let recalls: Vec<f64> = shuffled.iter().filter_map(|o| o.overall.recall()).collect();
    let precisions: Vec<f64> = shuffled.iter().filter_map(|o| o.overall.precision()).collect();
    let fold = |v: &[f64]| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            format!(
                "{} / {}",
                pct(Some(v.iter().copied().fold(f64::INFINITY, f64::min))),
                pct(Some(v.iter().sum::<f64>() / v.len() as f64))
            )
        }
    };
    println!("| **overall** | {} | {} | {} | {} |", o.copies, pct(o.recall()), pct(o.precision()), fold(&recalls));
    println!(
        "\nprecision over all files called duplicates: {} originals first ({} of {}), {} in random orders (min / mean)",
        pct(o.precision()),
        o.correct,
        o.called_duplicate,
        fold(&precisions)
    );
    let exact = &originals_first.per_transform.get("exact").cloned().unwrap_or_default();
    println!("byte-identical copies reported as kind exact: {} of {}", exact.exact_kind, exact.copies);
    let worst_distinct = shuffled.iter().map(|o| o.distinct_falsely_merged).max().unwrap_or(0);
    println!(
        "distinct photos (other shots of the same products) falsely merged: {} of {} originals first, at most {} in random orders",
        originals_first.distinct_falsely_merged, originals_first.distinct, worst_distinct
    );
    // Each merge once, as an unordered pair.
    let pairs: std::collections::BTreeSet<(&str, &str)> = originals_first
        .merges
        .iter()
        .map(|(a, b)| if a <= b { (a.as_str(), b.as_str()) } else { (b.as_str(), a.as_str()) })
        .collect();
    for (a, b) in pairs {
        println!("  merged (originals first): {a} with {b}");
    }
    Ok(())
}

/// The rows of a near-duplicate set (`truth.csv`: `file,group,transform`; files in `images/`).
fn truth_rows(data: &std::path::Path) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for c in sightline_evals::read_csv(&data.join("truth.csv"))? {
        anyhow::ensure!(c.len() >= 3, "bad truth line {c:?}");
        let bytes = std::fs::read(data.join("images").join(&c[0])).with_context(|| format!("read {}", c[0]))?;
        rows.push(Row { file: c[0].clone(), group: c[1].clone(), transform: c[2].clone(), bytes });
    }
    Ok(rows)
}

/// Rows made from a folder of photos per product (see the module doc).
fn train_rows(dir: &std::path::Path, per_product: usize, seed: u64) -> anyhow::Result<Vec<Row>> {
    let mut rng = SplitMix64(seed);
    let mut products: Vec<PathBuf> =
        std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
    products.sort();
    let mut rows = Vec::new();
    for product in &products {
        let mut photos: Vec<PathBuf> =
            std::fs::read_dir(product)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
        photos.sort();
        let mut order: Vec<usize> = (0..photos.len()).collect();
        rng.shuffle(&mut order);
        for (rank, &i) in order.iter().enumerate() {
            let path = &photos[i];
            let file = path.strip_prefix(dir).unwrap_or(path).to_string_lossy().replace('\\', "/");
            let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
            if rank >= per_product {
                rows.push(Row { file: file.clone(), group: file, transform: "distinct".into(), bytes });
                continue;
            }
            let img = image::load_from_memory(&bytes).with_context(|| format!("decode {}", path.display()))?;
            for t in transforms::TRANSFORMS {
                let copy = transforms::transformed(&img, t, &mut rng).context("a known transform")?;
                rows.push(Row {
                    file: format!("{file}~{t}.jpg"),
                    group: file.clone(),
                    transform: t.into(),
                    bytes: copy,
                });
            }
            rows.push(Row { file: file.clone(), group: file, transform: "orig".into(), bytes });
        }
        eprint!(
            "\rmade copies for {}/{} products",
            rows.iter().filter(|r| r.transform == "orig").count() / per_product.max(1),
            products.len()
        );
    }
    eprintln!();
    Ok(rows)
}

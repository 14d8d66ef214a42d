//! Cost of the review's re-labelling: how long one correction takes to reach a collection's
//! labels (`sightline_clustering::review`), for collections of a few hundred images with the
//! pipeline's embedding size.
//!
//! `cargo run -p sightline-evals --example review_bench -- [--images 100,300,1000] [--dim 1280] [--reviews 20] [--json]`
//! (the dev profile optimises this crate and `sightline-clustering`; `--release` works too)
//!
//! Per size: a seeded synthetic collection (a product cluster, a few smaller clusters and
//! scattered noise on the unit sphere, margins drawn at random), then the time to build the
//! neighbourhood graph (once per collection, when the review opens), to re-label after
//! `--reviews` corrections (every correction), and to rank the queue. Medians of 5 runs.

use std::collections::BTreeMap;
use std::time::Instant;

use clap::Parser;
use sightline_clustering::dpc::SplitMix64;
use sightline_clustering::review::{self, AutoLabel, Collection, Graph, Item, Params, Strategy};

/// Times the review's re-labelling.
#[derive(Parser)]
struct Args {
    /// Collection sizes.
    #[arg(long, value_delimiter = ',', default_value = "100,300,1000")]
    images: Vec<usize>,
    /// Embedding dimension.
    #[arg(long, default_value_t = 1280)]
    dim: usize,
    /// Corrections applied before re-labelling.
    #[arg(long, default_value_t = 20)]
    reviews: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn collection(n: usize, dim: usize, rng: &mut SplitMix64) -> Collection {
    let centres: Vec<Vec<f32>> = (0..4).map(|_| (0..dim).map(|_| rng.normal() as f32).collect()).collect();
    let items = (0..n)
        .map(|i| {
            // Half the images around the product, a quarter in three small clusters, the rest noise.
            let (centre, spread) = match i % 8 {
                0..=3 => (Some(0), 0.5),
                4 => (Some(1), 0.5),
                5 => (Some(2), 0.5),
                6 => (Some(3), 0.5),
                _ => (None, 1.0),
            };
            let mut v: Vec<f32> =
                (0..dim).map(|d| centre.map_or(0.0, |c| centres[c][d]) + spread * rng.normal() as f32).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            let product = centre == Some(0);
            let margin = rng.uniform() as f32 * 0.5;
            Item {
                auto: AutoLabel { product, decider: if product { "cluster" } else { "isolated" }.into(), margin },
                clustered: None,
                vector: Some(v),
            }
        })
        .collect();
    Collection { items }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let params = Params::default();
    let mut rows = Vec::new();
    for &n in &args.images {
        let mut rng = SplitMix64(19);
        let c = collection(n, args.dim, &mut rng);
        let (mut graph_ms, mut relabel_ms, mut queue_ms) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..5 {
            let t = Instant::now();
            let graph = Graph::new(&c.items, params.k);
            graph_ms.push(t.elapsed().as_secs_f64() * 1e3);
            let reviews: BTreeMap<usize, bool> =
                (0..args.reviews.min(n)).map(|k| (k * n / args.reviews.max(1), k % 3 != 0)).collect();
            let t = Instant::now();
            let current = review::relabel(&c, &graph, &reviews, &params);
            relabel_ms.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            let picked = review::queue(
                &current,
                &graph,
                &|i| reviews.contains_key(&i),
                12,
                Strategy::Uncertainty,
                params.diversity,
                &mut rng,
            );
            queue_ms.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(picked.len(), 12.min(n - reviews.len()));
        }
        rows.push(serde_json::json!({
            "images": n, "dim": args.dim, "reviews": args.reviews,
            "graph_ms": median(graph_ms), "relabel_ms": median(relabel_ms), "queue_ms": median(queue_ms),
        }));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!(
            "{:>7} {:>5} {:>8} {:>11} {:>11} {:>9}",
            "images", "dim", "reviews", "graph (ms)", "relabel (ms)", "queue (ms)"
        );
        for r in &rows {
            println!(
                "{:>7} {:>5} {:>8} {:>11.1} {:>11.2} {:>9.2}",
                r["images"],
                r["dim"],
                r["reviews"],
                r["graph_ms"].as_f64().unwrap_or(0.0),
                r["relabel_ms"].as_f64().unwrap_or(0.0),
                r["queue_ms"].as_f64().unwrap_or(0.0)
            );
        }
    }
    Ok(())
}

//! How the automatic centre choice of density peaks holds up across numbers of clusters, size
//! ratios, overlap and dimension (docs/clustering.md, "Automatic centres across cluster counts").
//!
//! ```sh
//! cargo run --release -p sightline-evals --example dpc_sweep -- [--quick] [--seeds 3]
//!     [--only clusters,ratio,overlap,dim,clusters-1:20] [--no-baselines] [--json out.json]
//! ```
//! Generates seeded Gaussian mixtures ([`sightline_evals::mixture`]), one factor at a time around a
//! base set (20 clusters, equal sizes, separation 6, 2-D, 3,000 points, smallest cluster 25
//! points), and scores against the known labels (ARI): density peaks (exact, kNN kernel, default
//! parameters) with the automatic centre rule before issue 16 (`old`) and now (`auto`), with the
//! true number of centres (`true k`), DBSCAN and HDBSCAN. `--quick` runs one seed per level.

use std::path::PathBuf;

use hdbscan::{DistanceMetric, Hdbscan, HdbscanHyperParams, NnAlgorithm};
use linfa::traits::Transformer;
use linfa_clustering::Dbscan;
use linfa_nn::CommonNearestNeighbour;
use linfa_nn::distance::L2Dist;
use sightline_clustering::ari::adjusted_rand_index;
use sightline_clustering::dpc::{AUTO_MERGE, AUTO_Z_MIN, CentreRule, DensityPeaks, Exact, Params, exact_knn};
use sightline_clustering::points::Points;
use sightline_evals::mixture::{Mixture, generate};

struct Args {
    seeds: u64,
    only: Option<Vec<String>>,
    baselines: bool,
    json: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut a = Args { seeds: 3, only: None, baselines: true, json: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--quick" => a.seeds = 1,
            "--seeds" => a.seeds = value().parse().expect("--seeds"),
            "--only" => a.only = Some(value().split(',').map(str::to_owned).collect()),
            "--no-baselines" => a.baselines = false,
            "--json" => a.json = Some(value().into()),
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

/// The factors and their levels: (factor, level, set).
fn levels() -> Vec<(&'static str, String, Mixture)> {
    let base = Mixture::default();
    let mut out = Vec::new();
    for k in [2, 5, 10, 20, 35, 50] {
        out.push(("clusters", k.to_string(), Mixture { clusters: k, ..base.clone() }));
    }
    for k in [2, 5, 10, 20, 35, 50] {
        out.push(("clusters-1:20", k.to_string(), Mixture { clusters: k, ratio: 20.0, ..base.clone() }));
    }
    for r in [1.0, 5.0, 20.0, 50.0] {
        out.push(("ratio", format!("1:{r}"), Mixture { ratio: r, ..base.clone() }));
    }
    for s in [3.0, 4.0, 5.0, 6.0, 8.0] {
        out.push(("overlap", format!("sep {s}"), Mixture { separation: s, ..base.clone() }));
    }
    for d in [2, 16, 128, 1024] {
        out.push(("dim", d.to_string(), Mixture { dim: d, ..base.clone() }));
    }
    out
}

/// The centre rules compared: the rule before issue 16, the default, the true number of centres.
fn rules(k: usize) -> Vec<(&'static str, CentreRule)> {
    let old = CentreRule::AutoMedianFloor { z_min: AUTO_Z_MIN, merge: Some(AUTO_MERGE) };
    vec![("old", old), ("auto", CentreRule::default()), ("true k", CentreRule::Count(k))]
}

/// DBSCAN (linfa) with `min_points` 10 and ε the `q`-quantile of the points' distance to their
/// 10th neighbour, for each q of a grid; the best ARI over the grid (tuned on the truth: an upper
/// bound for DBSCAN with one global ε). Noise is one class.
fn dbscan_best(points: &Points, truth: &[u32]) -> (f64, f64) {
    const MIN_POINTS: usize = 10;
    let n = points.len();
    let all: Vec<usize> = (0..n).collect();
    let lists = exact_knn(points, &all, MIN_POINTS - 1);
    let mut kdist: Vec<f32> = (0..n).map(|i| lists.row(i).1.last().copied().unwrap_or(0.0)).collect();
    kdist.sort_by(f32::total_cmp);
    let x =
        ndarray16::Array2::from_shape_vec((n, points.dim()), points.as_slice().iter().map(|&v| f64::from(v)).collect())
            .expect("shape");
    let mut best = (f64::NEG_INFINITY, 0.0);
    for q in [0.5, 0.7, 0.8, 0.9, 0.95, 0.99] {
        let eps = f64::from(kdist[((n - 1) as f64 * q) as usize]).max(1e-9);
        let nn = if points.dim() <= 16 { CommonNearestNeighbour::KdTree } else { CommonNearestNeighbour::LinearSearch };
        let Ok(labels) = Dbscan::params_with(MIN_POINTS, L2Dist, nn).tolerance(eps).transform(&x) else {
            continue;
        };
        let ari = adjusted_rand_index(truth, &labels.to_vec());
        if ari > best.0 {
            best = (ari, q);
        }
    }
    best
}

/// HDBSCAN (`hdbscan` crate) with min_cluster_size 15 (below the smallest generated cluster) and
/// min_samples 10; noise is one class.
fn hdbscan_ari(points: &Points, truth: &[u32]) -> Option<f64> {
    let rows: Vec<Vec<f32>> = (0..points.len()).map(|i| points.row(i).to_vec()).collect();
    let hp = HdbscanHyperParams::builder()
        .min_cluster_size(15)
        .min_samples(10)
        .dist_metric(DistanceMetric::Euclidean)
        .nn_algorithm(if points.dim() <= 16 { NnAlgorithm::KdTree } else { NnAlgorithm::BruteForce })
        .build();
    let labels = Hdbscan::new(&rows, hp).cluster().ok()?;
    Some(adjusted_rand_index(truth, &labels))
}

fn main() {
    let args = parse_args();
    let mut rows = Vec::new();
    let names: Vec<&str> = rules(1).iter().map(|r| r.0).collect();
    println!(
        "{:<14} {:>7} {:>4} {:>6} {:>4} | {} | {:>6} {:>6}",
        "factor",
        "level",
        "seed",
        "n",
        "k",
        names.iter().map(|n| format!("{n:>7} (k)")).collect::<Vec<_>>().join(" "),
        "dbscan",
        "hdbscan"
    );
    for (factor, level, m) in levels() {
        if args.only.as_ref().is_some_and(|o| !o.iter().any(|x| x == factor)) {
            continue;
        }
        for seed in 1..=args.seeds {
            let m = Mixture { seed, ..m.clone() };
            let (points, truth) = generate(&m);
            let mut cells = Vec::new();
            let mut json = serde_json::json!({
                "factor": factor, "level": level, "seed": seed, "n": points.len(), "dim": m.dim,
                "clusters": m.clusters, "ratio": m.ratio, "separation": m.separation,
            });
            for (name, rule) in rules(m.clusters) {
                let c = Exact::new(Params { centres: rule, ..Params::default() }).cluster(&points).expect("cluster");
                let ari = adjusted_rand_index(&truth, &c.labels);
                cells.push(format!("{ari:>7.3} ({:>2})", c.n_clusters()));
                json[name] = serde_json::json!({"ari": ari, "found": c.n_clusters()});
            }
            let (db, hdb) = if args.baselines {
                let (db, q) = dbscan_best(&points, &truth);
                json["dbscan"] = serde_json::json!({"ari": db, "eps_quantile": q});
                let hdb = hdbscan_ari(&points, &truth);
                json["hdbscan"] = serde_json::json!({"ari": hdb});
                (format!("{db:>6.3}"), hdb.map_or("   -".into(), |v| format!("{v:>6.3}")))
            } else {
                ("-".into(), "-".into())
            };
            println!(
                "{:<14} {:>7} {:>4} {:>6} {:>4} | {} | {:>6} {:>6}",
                factor,
                level,
                seed,
                points.len(),
                m.clusters,
                cells.join(" "),
                db,
                hdb
            );
            rows.push(json);
        }
    }
    summarise(&rows);
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&rows).expect("json")).expect("write json");
    }
}

/// Mean ARI per factor level, and the target check: every set on which `true k` scores ≥ 0.95
/// should score ≥ 0.95 with automatic centres.
fn summarise(rows: &[serde_json::Value]) {
    let cols = ["old", "auto", "true k", "dbscan", "hdbscan"];
    println!("\nmean ARI per factor level (min over seeds in brackets)");
    println!("| factor | level | {} |", cols.join(" | "));
    println!("| --- | --- |{}", " ---: |".repeat(cols.len()));
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in rows {
        let key = (r["factor"].as_str().unwrap_or("").to_owned(), r["level"].as_str().unwrap_or("").to_owned());
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    for (factor, level) in &keys {
        let group: Vec<&serde_json::Value> =
            rows.iter().filter(|r| r["factor"] == factor.as_str() && r["level"] == level.as_str()).collect();
        let cells: Vec<String> = cols
            .iter()
            .map(|c| {
                let v: Vec<f64> = group.iter().filter_map(|r| r[*c]["ari"].as_f64()).collect();
                if v.is_empty() {
                    return "-".into();
                }
                let mean = v.iter().sum::<f64>() / v.len() as f64;
                let min = v.iter().copied().fold(f64::INFINITY, f64::min);
                if v.len() > 1 { format!("{mean:.3} ({min:.3})") } else { format!("{mean:.3}") }
            })
            .collect();
        println!("| {factor} | {level} | {} |", cells.join(" | "));
    }
    for rule in ["old", "auto"] {
        let eligible: Vec<&serde_json::Value> =
            rows.iter().filter(|r| r["true k"]["ari"].as_f64().is_some_and(|v| v >= 0.95)).collect();
        let missed: Vec<String> = eligible
            .iter()
            .filter(|r| r[rule]["ari"].as_f64().is_none_or(|v| v < 0.95))
            .map(|r| format!("{} {} seed {}", r["factor"], r["level"], r["seed"]))
            .collect();
        println!(
            "target ({rule}): {} of {} sets where true k scores >= 0.95 also score >= 0.95{}",
            eligible.len() - missed.len(),
            eligible.len(),
            if missed.is_empty() { String::new() } else { format!("; missed: {}", missed.join(", ")) }
        );
    }
}

//! Clustering quality on the benchmark point sets: ARI of exact and scaled density peaks with
//! automatic centres against each set's ground truth (docs/clustering.md).
//!
//! ```sh
//! cargo run -p sightline-evals --example dpc_eval -- [--data ../shared/data] [--kernel knn]
//!     [--percent 1] [--z-min 3] [--merge 0.75|0] [--json out.json] [--top 20] [--oracle] [--median-floor]
//! ```
//! Reads every `DATA/clustering/*.csv` (feature columns, final `label` column). For sets whose truth
//! marks `noise`, also scores with halo points as noise. `--median-floor` runs the automatic rule
//! before issue 16 (`CentreRule::AutoMedianFloor`).

use std::path::PathBuf;

use sightline_clustering::ari::adjusted_rand_index;
use sightline_clustering::dpc::{CentreRule, DensityPeaks, Exact, Kernel, Params, Scaled};
use sightline_clustering::points::parse_csv;

struct Args {
    data: PathBuf,
    kernels: Vec<Kernel>,
    percent: f64,
    k: Option<usize>,
    k_min: usize,
    z_min: f64,
    merge: Option<f32>,
    top: usize,
    json: Option<PathBuf>,
    only: Option<String>,
    oracle: bool,
    median_floor: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        data: PathBuf::from("../shared/data"),
        kernels: vec![Kernel::Knn, Kernel::Cutoff, Kernel::Gaussian],
        percent: 1.0,
        k: None,
        k_min: Params::default().k_min,
        z_min: sightline_clustering::dpc::AUTO_Z_MIN,
        merge: Some(sightline_clustering::dpc::AUTO_MERGE),
        top: 0,
        json: None,
        only: None,
        oracle: false,
        median_floor: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--data" => a.data = value().into(),
            "--kernel" => a.kernels = value().split(',').map(|k| k.parse().expect("kernel")).collect(),
            "--percent" => a.percent = value().parse().expect("--percent"),
            "--k" => a.k = Some(value().parse().expect("--k")),
            "--k-min" => a.k_min = value().parse().expect("--k-min"),
            "--z-min" => a.z_min = value().parse().expect("--z-min"),
            "--merge" => a.merge = value().parse().ok().filter(|m: &f32| *m > 0.0),
            "--top" => a.top = value().parse().expect("--top"),
            "--json" => a.json = Some(value().into()),
            "--only" => a.only = Some(value()),
            "--oracle" => a.oracle = true,
            "--median-floor" => a.median_floor = true,
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

fn main() {
    let args = parse_args();
    let dir = args.data.join("clustering");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    files.sort();
    let mut rows = Vec::new();
    println!(
        "{:<12} {:>5} {:>6} {:<9} {:<7} {:>4} {:>7} {:>10} {:>5} {:>8}",
        "set", "n", "truth", "clusters", "kernel", "method", "ARI", "ARI(halo)", "halo", "time_ms"
    );
    for file in files {
        let name = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        if args.only.as_ref().is_some_and(|o| !o.split(',').any(|x| x == name)) {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read set");
        let set = parse_csv(&text).expect("parse set");
        let truth = set.labels.clone().expect("sets have a label column");
        let true_k = truth.iter().filter(|l| *l != "noise").collect::<std::collections::HashSet<_>>().len();
        let has_noise = truth.iter().any(|l| l == "noise");
        for &kernel in &args.kernels {
            let params = Params {
                kernel,
                percent: args.percent,
                k: args.k,
                k_min: args.k_min,
                centres: if args.oracle {
                    CentreRule::Count(true_k)
                } else if args.median_floor {
                    CentreRule::AutoMedianFloor { z_min: args.z_min, merge: args.merge }
                } else {
                    CentreRule::Auto { z_min: args.z_min, merge: args.merge }
                },
                ..Params::default()
            };
            let runs: Vec<Box<dyn DensityPeaks>> =
                vec![Box::new(Exact::new(params.clone())), Box::new(Scaled::new(params.clone()))];
            for imp in runs {
                let c = imp.cluster(&set.points).expect("cluster");
                let ari = adjusted_rand_index(&truth, &c.labels);
                let ari_halo = has_noise.then(|| {
                    let pred: Vec<Option<u32>> = c.labels_with_noise();
                    let truth_noise: Vec<Option<&str>> =
                        truth.iter().map(|l| (l != "noise").then_some(l.as_str())).collect();
                    adjusted_rand_index(&truth_noise, &pred)
                });
                println!(
                    "{:<12} {:>5} {:>6} {:<9} {:<7} {:>4} {:>7.4} {:>10} {:>5} {:>8.1}",
                    name,
                    set.points.len(),
                    true_k,
                    c.n_clusters(),
                    kernel.as_str(),
                    imp.name(),
                    ari,
                    ari_halo.map_or("-".to_owned(), |v| format!("{v:.4}")),
                    c.halo.iter().filter(|h| **h).count(),
                    c.stats.total_s * 1e3
                );
                if args.top > 0 && imp.name() == "exact" {
                    let mut z: Vec<f64> = c.gamma.iter().map(|&g| c.decision.z(g)).collect();
                    z.sort_by(|a, b| b.total_cmp(a));
                    let line: Vec<String> = z.iter().take(args.top).map(|z| format!("{z:.1}")).collect();
                    println!("    top z: {}", line.join(" "));
                }
                rows.push(serde_json::json!({
                    "set": name, "n": set.points.len(), "true_clusters": true_k, "kernel": kernel.as_str(),
                    "method": imp.name(), "clusters": c.n_clusters(), "ari": ari, "ari_halo_as_noise": ari_halo,
                    "k": c.k, "dc": c.dc, "seconds": c.stats.total_s,
                }));
            }
        }
    }
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&rows).expect("json")).expect("write json");
    }
}

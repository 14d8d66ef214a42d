//! Clustering speed on synthetic 512-d embeddings (docs/clustering.md, "Speed").
//!
//! ```sh
//! cargo run -p sightline-evals --example dpc_bench -- --n 100000 --method scaled [--sample 20000]
//!     [--dim 512] [--clusters 50] [--noise 0.1] [--kernel knn] [--percent 1] [--threads 2]
//!     [--probe 8] [--cells N] [--seed 42] [--json out.json]
//!     [--recall Q] [--write DATA.f32] [--read DATA.f32] [--dump OUT.csv]
//! ```
//! Generates `--n` points ([`sightline_evals::synth`]), clusters them, prints where the time went,
//! the peak memory (VmHWM) and the ARI against the generator's clusters (noise as one class, and
//! with halo points as noise). With `--sample M` (scaled runs), also clusters a random sample of M
//! points exactly and reports the ARI of the scaled labels against the exact ones on that sample.
//! With `--recall Q`, builds the index's neighbour lists again and reports their recall@k against
//! brute force on Q random points.
//! `--write` stores the points (little-endian f32, row-major) and `DATA.f32.labels` for the Python
//! reference (evals/cluster/python_reference.sh); `--read` clusters such a file instead of generating;
//! `--dump` writes every point's ρ, δ, nearest denser point, cluster and halo flag as CSV.

use std::path::PathBuf;
use std::time::Instant;

use sightline_clustering::ari::adjusted_rand_index;
use sightline_clustering::dpc::{
    Clustering, DensityPeaks, Exact, Kernel, Params, Scaled, exact_knn, scaled::IndexParams,
};
use sightline_clustering::points::Points;
use sightline_evals::synth::{Blobs, generate};

struct Args {
    blobs: Blobs,
    method: String,
    kernel: Kernel,
    percent: f64,
    threads: Option<usize>,
    sample: Option<usize>,
    recall: Option<usize>,
    index: IndexParams,
    json: Option<PathBuf>,
    write: Option<PathBuf>,
    read: Option<PathBuf>,
    dump: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut a = Args {
        blobs: Blobs { n: 20_000, ..Blobs::default() },
        method: "exact".into(),
        kernel: Kernel::Knn,
        percent: Params::default().percent,
        threads: None,
        sample: None,
        recall: None,
        index: IndexParams::default(),
        json: None,
        write: None,
        read: None,
        dump: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--n" => a.blobs.n = value().parse().expect("--n"),
            "--dim" => a.blobs.dim = value().parse().expect("--dim"),
            "--clusters" => a.blobs.clusters = value().parse().expect("--clusters"),
            "--noise" => a.blobs.noise = value().parse().expect("--noise"),
            "--seed" => a.blobs.seed = value().parse().expect("--seed"),
            "--method" => a.method = value(),
            "--kernel" => a.kernel = value().parse().expect("--kernel"),
            "--percent" => a.percent = value().parse().expect("--percent"),
            "--threads" => a.threads = Some(value().parse().expect("--threads")),
            "--sample" => a.sample = Some(value().parse().expect("--sample")),
            "--recall" => a.recall = Some(value().parse().expect("--recall")),
            "--probe" => a.index.probe = value().parse().expect("--probe"),
            "--cells" => a.index.cells = Some(value().parse().expect("--cells")),
            "--json" => a.json = Some(value().into()),
            "--write" => a.write = Some(value().into()),
            "--read" => a.read = Some(value().into()),
            "--dump" => a.dump = Some(value().into()),
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

/// CPU seconds (user + system) this process has used so far (Linux).
fn cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Peak resident memory of this process so far, in MiB (Linux).
fn peak_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn ari_vs_truth(c: &Clustering, truth: &[Option<u32>]) -> (f64, f64) {
    (adjusted_rand_index(truth, &c.labels), adjusted_rand_index(truth, &c.labels_with_noise()))
}

fn main() {
    let args = parse_args();
    let t = Instant::now();
    let (points, truth) = match &args.read {
        Some(path) => {
            let bytes = std::fs::read(path).expect("read points");
            let data = sightline_messages::vector::decode(&bytes).expect("points: whole f32s");
            let labels = std::fs::read_to_string(format!("{}.labels", path.display())).expect("read labels");
            let truth = labels.lines().map(|l| l.parse::<i64>().ok().filter(|v| *v >= 0).map(|v| v as u32)).collect();
            (Points::new(data, args.blobs.dim).expect("points"), truth)
        }
        None => generate(&args.blobs),
    };
    let gen_s = t.elapsed().as_secs_f64();
    let data_mib = (points.len() * points.dim() * 4) as f64 / 1048576.0;
    eprintln!("data: {} x {} ({data_mib:.0} MiB) in {gen_s:.1} s", points.len(), points.dim());
    if let Some(path) = &args.write {
        let bytes: Vec<u8> = points.as_slice().iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(path, bytes).expect("write points");
        let labels: String = truth.iter().map(|l| format!("{}\n", l.map_or(-1, i64::from))).collect();
        std::fs::write(format!("{}.labels", path.display()), labels).expect("write labels");
    }
    if args.method == "none" {
        return;
    }
    let params = Params { kernel: args.kernel, percent: args.percent, threads: args.threads, ..Params::default() };
    let imp: Box<dyn DensityPeaks> = match args.method.as_str() {
        "exact" => Box::new(Exact::new(params.clone())),
        "scaled" => Box::new(Scaled::new(params.clone()).with_index(args.index.clone())),
        other => panic!("--method exact, scaled or none (generate only), not {other}"),
    };
    let before = peak_mib().unwrap_or(0.0);
    let cpu0 = cpu_s().unwrap_or(0.0);
    let c = imp.cluster(&points).expect("cluster");
    let cpu = cpu_s().unwrap_or(0.0) - cpu0;
    let peak = peak_mib().unwrap_or(0.0);
    let (ari, ari_halo) = ari_vs_truth(&c, &truth);
    let s = &c.stats;
    println!(
        "{} n={} dim={} kernel={} k={} clusters={} halo={} total={:.2}s wall, {cpu:.1} CPU-s",
        imp.name(),
        points.len(),
        points.dim(),
        args.kernel.as_str(),
        c.k,
        c.n_clusters(),
        c.halo.iter().filter(|h| **h).count(),
        s.total_s
    );
    println!(
        "  neighbours {:.2}s (train {:.2}s, assign {:.2}s, search {:.2}s), dc {:.2}s, density+delta {:.2}s, \
         fallback {:.2}s for {} points, assign {:.3}s, halo {:.3}s",
        s.neighbours_s,
        s.index_train_s,
        s.index_assign_s,
        s.index_search_s,
        s.dc_s,
        s.density_delta_s,
        s.fallback_s,
        s.fallback_points,
        s.assign_s,
        s.halo_s
    );
    println!("  peak memory {peak:.0} MiB (data {data_mib:.0} MiB, before clustering {before:.0} MiB)");
    println!("  ARI vs generator: {ari:.4} (noise as a class), {ari_halo:.4} (halo as noise)");
    let mut report = serde_json::json!({
        "method": imp.name(), "n": points.len(), "dim": points.dim(), "kernel": args.kernel.as_str(),
        "k": c.k, "clusters": c.n_clusters(), "true_clusters": args.blobs.clusters, "noise": args.blobs.noise,
        "stats": c.stats, "peak_mib": peak, "data_mib": data_mib, "ari_truth": ari, "ari_truth_halo_noise": ari_halo,
        "threads": args.threads.unwrap_or_else(rayon::current_num_threads), "cpu_s": cpu,
    });
    if let Some(m) = args.sample {
        let mut rng = sightline_clustering::dpc::SplitMix64(7);
        let mut idx: Vec<usize> = (0..points.len()).collect();
        for i in 0..m.min(idx.len()) {
            let j = i + (rng.next_u64() % (idx.len() - i) as u64) as usize;
            idx.swap(i, j);
        }
        idx.truncate(m);
        idx.sort_unstable();
        let sub = points.select(&idx);
        let e = Exact::new(params.clone()).cluster(&sub).expect("exact on sample");
        let scaled_on_sample: Vec<u32> = idx.iter().map(|&i| c.labels[i]).collect();
        let agree = adjusted_rand_index(&e.labels, &scaled_on_sample);
        let sub_truth: Vec<Option<u32>> = idx.iter().map(|&i| truth[i]).collect();
        // The generator's noise points are random directions: which cluster they join is
        // arbitrary in both runs. Agreement on the clustered points is the meaningful figure.
        let keep: Vec<usize> = (0..idx.len()).filter(|&p| sub_truth[p].is_some()).collect();
        let agree_clustered = adjusted_rand_index(
            &keep.iter().map(|&p| e.labels[p]).collect::<Vec<_>>(),
            &keep.iter().map(|&p| scaled_on_sample[p]).collect::<Vec<_>>(),
        );
        let (e_ari, e_ari_halo) = ari_vs_truth(&e, &sub_truth);
        println!(
            "  exact on a {m}-point sample: {:.2}s, {} clusters, ARI vs generator {e_ari:.4} / {e_ari_halo:.4} (halo as noise)",
            e.stats.total_s,
            e.n_clusters()
        );
        println!(
            "  ARI(scaled, exact) on the sample: {agree:.4} all points, {agree_clustered:.4} generator-clustered points"
        );
        report["sample"] = serde_json::json!({
            "points": m, "exact_seconds": e.stats.total_s, "exact_clusters": e.n_clusters(),
            "exact_ari_truth": e_ari, "exact_ari_truth_halo_noise": e_ari_halo, "ari_scaled_vs_exact": agree,
            "ari_scaled_vs_exact_clustered": agree_clustered,
        });
    }
    if let Some(prefix) = &args.dump {
        // ρ, δ and the nearest denser point (−1 for none) of every point, one per line, for the
        // Python reference to compare with.
        let mut text = String::from("rho,delta,nearest_denser,cluster,halo\n");
        for i in 0..c.len() {
            text.push_str(&format!(
                "{},{},{},{},{}\n",
                c.rho[i],
                c.delta[i],
                c.nearest_denser[i].map_or(-1, i64::from),
                c.labels[i],
                u8::from(c.halo[i])
            ));
        }
        std::fs::write(prefix, text).expect("write dump");
    }
    if let Some(q) = args.recall {
        // Recall@k of the index's neighbour lists against brute force, on q random points.
        let k = c.k;
        let mut rng = sightline_clustering::dpc::SplitMix64(11);
        let queries: Vec<usize> = (0..q).map(|_| (rng.next_u64() % points.len() as u64) as usize).collect();
        let truth_lists = exact_knn(&points, &queries, k);
        let t = Instant::now();
        let lists = Scaled::new(params.clone()).with_index(args.index.clone()).neighbours(&points, k).expect("lists");
        let lists_s = t.elapsed().as_secs_f64();
        let mut hit = 0usize;
        let mut hit_clustered = (0usize, 0usize);
        for (r, &qi) in queries.iter().enumerate() {
            let want = truth_lists.row(r).0;
            let got = lists.row(qi).0;
            let h = got.iter().filter(|j| want.contains(j)).count();
            hit += h;
            if truth[qi].is_some() {
                hit_clustered.0 += h;
                hit_clustered.1 += k;
            }
        }
        let recall = hit as f64 / (q * k) as f64;
        let recall_clustered = hit_clustered.0 as f64 / hit_clustered.1.max(1) as f64;
        println!(
            "  recall@{k} of the index on {q} points: {recall:.4} ({recall_clustered:.4} on generator-clustered points; lists in {lists_s:.1}s)"
        );
        report["recall"] =
            serde_json::json!({"queries": q, "k": k, "recall": recall, "recall_clustered": recall_clustered});
    }
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&report).expect("json")).expect("write json");
    }
}

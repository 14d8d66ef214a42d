//! `sightline cluster POINTS.csv --out OUT`: density-peaks clustering of a point set, with the
//! same code the cluster stage runs on a collection's embeddings (`sightline_clustering::dpc`).
//!
//! Input: CSV, one row per point, numeric feature columns, an optional header, and an optional
//! final column named `label` that is ignored (benchmark sets carry their ground truth there).
//!
//! Output, in OUT:
//! - `assignments.csv`: `row,cluster,halo`, one line per data row (`row` is its 0-based index,
//!   `cluster` its cluster id, numbered by decreasing γ, `halo` 1 for points below their cluster's
//!   border density, else 0);
//! - `decision_graph.csv`: `row,rho,delta,gamma,z,nearest_denser,cluster,centre,halo`;
//! - `decision_graph.svg`: ρ against δ with the centres marked, and the ranked γ;
//! - `summary.json`: parameters, clusters (centre, size, core) and timings (`--json` prints it).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use sightline_clustering::dpc::scaled::IndexParams;
use sightline_clustering::dpc::{
    AUTO_MERGE, AUTO_Z_MIN, CentreRule, Clustering, DensityPeaks, Exact, Kernel, Method, Params, Scaled,
};
use sightline_clustering::{points, svg};

/// Options of `sightline cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// CSV of points: numeric feature columns, optional header, optional final `label` column
    /// (ignored).
    pub points: PathBuf,
    /// Output folder.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Density kernel: knn (1 / mean distance to the k nearest; robust in high dimensions),
    /// cutoff (neighbours within d_c, the paper's) or gaussian.
    #[arg(long, default_value = "knn", value_parser = parse_kernel)]
    pub kernel: Kernel,
    /// Neighbourhood as a percentage of the points: d_c gives this share of neighbours on average,
    /// and k is this share of n (clamped to 8..32).
    #[arg(long, default_value_t = Params::default().percent)]
    pub percent: f64,
    /// Cutoff distance d_c (cutoff and gaussian kernels) instead of --percent.
    #[arg(long)]
    pub dc: Option<f32>,
    /// k of the knn kernel instead of --percent.
    #[arg(long)]
    pub k: Option<usize>,
    /// exact (all pairs), scaled (approximate kNN index, for millions of points) or auto (exact
    /// up to 30,000 points).
    #[arg(long, default_value = "auto", value_parser = parse_method)]
    pub method: Method,
    /// Take the N points of largest γ as centres instead of choosing automatically.
    #[arg(long, conflicts_with_all = ["min_rho", "min_delta"])]
    pub centres: Option<usize>,
    /// Manual centres: every point with ρ above this (needs --min-delta).
    #[arg(long, requires = "min_delta")]
    pub min_rho: Option<f32>,
    /// Manual centres: every point with δ above this (needs --min-rho).
    #[arg(long, requires = "min_rho")]
    pub min_delta: Option<f32>,
    /// Automatic rule: smallest robust z of ln γ a centre may have.
    #[arg(long, default_value_t = AUTO_Z_MIN)]
    pub z_min: f64,
    /// Automatic rule: saddle-to-peak density ratio at which a candidate centre is merged into its
    /// neighbour; 0 turns merging off.
    #[arg(long, default_value_t = AUTO_MERGE)]
    pub merge: f32,
    /// Skip the core/halo split (every point is core).
    #[arg(long)]
    pub no_halo: bool,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Scaled method: cells searched per point.
    #[arg(long, default_value_t = IndexParams::default().probe)]
    pub probe: usize,
    /// Scaled method: number of index cells (default 2√n).
    #[arg(long)]
    pub cells: Option<usize>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_kernel(s: &str) -> Result<Kernel, String> {
    s.parse().map_err(|e: sightline_clustering::dpc::DpcError| e.to_string())
}

fn parse_method(s: &str) -> Result<Method, String> {
    s.parse().map_err(|e: sightline_clustering::dpc::DpcError| e.to_string())
}

impl ClusterArgs {
    fn params(&self) -> Params {
        let centres = match (self.centres, self.min_rho, self.min_delta) {
            (Some(k), _, _) => CentreRule::Count(k),
            (None, Some(rho), Some(delta)) => CentreRule::Thresholds { rho, delta },
            _ => CentreRule::Auto { z_min: self.z_min, merge: (self.merge > 0.0).then_some(self.merge) },
        };
        Params {
            kernel: self.kernel,
            percent: self.percent,
            dc: self.dc,
            k: self.k,
            centres,
            halo: !self.no_halo,
            threads: self.threads,
            ..Params::default()
        }
    }
}

/// Runs the command (blocking: call it off the async runtime). Returns the exit code.
pub fn run(args: ClusterArgs) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(&args.points).with_context(|| format!("read {}", args.points.display()))?;
    let set = points::parse_csv(&text).with_context(|| format!("parse {}", args.points.display()))?;
    drop(text);
    let params = args.params();
    let n = set.points.len();
    let exact = match args.method {
        Method::Exact => true,
        Method::Scaled => false,
        Method::Auto => n <= sightline_clustering::dpc::AUTO_EXACT_MAX,
    };
    let imp: Box<dyn DensityPeaks> = if exact {
        Box::new(Exact::new(params.clone()))
    } else {
        let index = IndexParams { probe: args.probe, cells: args.cells, ..IndexParams::default() };
        Box::new(Scaled::new(params.clone()).with_index(index))
    };
    let c = imp.cluster(&set.points).context("cluster the points")?;

    std::fs::create_dir_all(&args.out).with_context(|| format!("create {}", args.out.display()))?;
    write(&args.out.join("assignments.csv"), &assignments_csv(&c))?;
    write(&args.out.join("decision_graph.csv"), &decision_csv(&c))?;
    let name = args.points.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let title = format!("decision graph: {name} ({} {}, k = {})", imp.name(), params.kernel.as_str(), c.k);
    write(&args.out.join("decision_graph.svg"), &svg::decision_graph(&c, &title))?;
    let summary = serde_json::json!({
        "input": args.points.display().to_string(),
        "points": n,
        "dim": set.points.dim(),
        "method": imp.name(),
        "kernel": params.kernel.as_str(),
        "k": c.k,
        "dc": c.dc,
        "clusters": c.n_clusters(),
        "halo": c.halo.iter().filter(|h| **h).count(),
        "decision": c.decision,
        "cluster_summaries": c.summaries(),
        "stats": c.stats,
        "outputs": ["assignments.csv", "decision_graph.csv", "decision_graph.svg", "summary.json"],
    });
    let pretty = serde_json::to_string_pretty(&summary).context("encode summary")?;
    write(&args.out.join("summary.json"), &pretty)?;
    if args.json {
        println!("{pretty}");
    } else {
        let mut sizes: Vec<String> = c.summaries().iter().take(12).map(|s| s.size.to_string()).collect();
        if c.n_clusters() > 12 {
            sizes.push("…".into());
        }
        println!(
            "{n} points x {} features: {} clusters (sizes {}), {} halo; {} {} k={} in {:.2} s",
            set.points.dim(),
            c.n_clusters(),
            sizes.join(" "),
            c.halo.iter().filter(|h| **h).count(),
            imp.name(),
            params.kernel.as_str(),
            c.k,
            c.stats.total_s
        );
        println!("wrote {}/{{assignments.csv,decision_graph.csv,decision_graph.svg,summary.json}}", args.out.display());
    }
    Ok(0)
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

/// `row,cluster,halo`.
fn assignments_csv(c: &Clustering) -> String {
    let mut s = String::with_capacity(c.len() * 12);
    s.push_str("row,cluster,halo\n");
    for (i, (&l, &h)) in c.labels.iter().zip(&c.halo).enumerate() {
        let _ = writeln!(s, "{i},{l},{}", u8::from(h));
    }
    s
}

/// `row,rho,delta,gamma,z,nearest_denser,cluster,centre,halo`.
fn decision_csv(c: &Clustering) -> String {
    let mut centre = vec![false; c.len()];
    for &p in &c.centres {
        centre[p] = true;
    }
    let mut s = String::with_capacity(c.len() * 64);
    s.push_str("row,rho,delta,gamma,z,nearest_denser,cluster,centre,halo\n");
    for (i, &is_centre) in centre.iter().enumerate() {
        let _ = writeln!(
            s,
            "{i},{},{},{},{:.3},{},{},{},{}",
            c.rho[i],
            c.delta[i],
            c.gamma[i],
            c.decision.z(c.gamma[i]),
            c.nearest_denser[i].map_or(String::new(), |j| j.to_string()),
            c.labels[i],
            u8::from(is_centre),
            u8::from(c.halo[i])
        );
    }
    s
}

//! Runs the `sightline dedup` subcommand's code (`sightline::embedded::dedup`) with positional
//! arguments: `cargo run -p sightline-evals --example dedup_dir -- DIR OUT [MAX_DISTANCE] [--json]`.

use std::path::PathBuf;

use sightline::embedded::dedup;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let positional: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let [dir, out, rest @ ..] = positional.as_slice() else {
        anyhow::bail!("usage: dedup_dir DIR OUT [MAX_DISTANCE] [--json]");
    };
    let max_distance = match rest.first() {
        Some(d) => d.parse()?,
        None => sightline_dedup::DEFAULT_MAX_DISTANCE,
    };
    let config = sightline_dedup::DedupConfig { max_distance, ..Default::default() };
    dedup::run(&PathBuf::from(dir), &PathBuf::from(out), config, json).await
}

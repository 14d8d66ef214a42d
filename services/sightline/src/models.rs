//! `sightline models verify`: every model in the manifest against its reference output.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use sightline_inference::{Manifest, ModelStore, Runtime, default_fixtures_dir, default_models_dir, verify_all};

/// Model operations.
#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Load every model of models/manifest.toml, run it on its committed input fixture and
    /// compare with the output Python ONNX Runtime produced; one line per model with `ok` or
    /// the difference, and the latency. Exits 1 if any model fails.
    Verify {
        /// Where models/fetch.sh put the models.
        #[arg(long, env = "SIGHTLINE_MODELS")]
        models: Option<PathBuf>,
        /// Folder of reference fixtures.
        #[arg(long, env = "SIGHTLINE_FIXTURES")]
        fixtures: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a models subcommand.
pub fn run(command: ModelsCommand) -> anyhow::Result<i32> {
    match command {
        ModelsCommand::Verify { models, fixtures, json } => {
            let dir = models.unwrap_or_else(default_models_dir);
            let fixtures = fixtures.unwrap_or_else(default_fixtures_dir);
            let manifest = Manifest::embedded().context("read the model manifest")?;
            let store = ModelStore::new(&dir, manifest);
            let runtime = Runtime::init_from_env(store.root())
                .with_context(|| format!("load ONNX Runtime (models dir {}; run models/fetch.sh)", dir.display()))?;
            let reports = verify_all(&store, runtime, &fixtures);
            let all_ok = reports.iter().all(|r| r.ok);
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            } else {
                for r in &reports {
                    println!("{r}");
                }
                let failed = reports.iter().filter(|r| !r.ok).count();
                eprintln!("{} model(s), {failed} failed", reports.len());
            }
            Ok(if all_ok { 0 } else { 1 })
        }
    }
}

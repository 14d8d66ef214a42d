//! Component tests of the embed stage on the in-memory backends with the committed sample
//! photos. (The route ingest → detect → embed runs in the workspace tests, `tests/routes`.)
//!
//! The tests that run the models need them (`eval "$(models/fetch.sh)"`): they are skipped
//! with a message when `SIGHTLINE_MODELS` is unset and the `models` feature is off; with
//! `--features models`, missing models are a failure. The readiness test runs always.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sightline_embed::{DIM, Embed, EmbedConfig, from_le_bytes};
use sightline_inference::{Manifest, ModelStore, models_dir_from_env};
use sightline_messages::{ImageTask, ItemOutcome};
use sightline_runtime::{Ctx, Stage};
use sightline_test_support::{Item, StageEnv, finished, input, models_available};

fn models_dir(test: &str) -> Option<PathBuf> {
    models_available(test, cfg!(feature = "models")).then(models_dir_from_env)
}

fn store(dir: PathBuf) -> Arc<ModelStore> {
    Arc::new(ModelStore::new(dir, Manifest::embedded().expect("manifest")))
}

/// Stores a sample photo as ingest would; the task is addressed to embed, the last stage.
async fn task(ctx: &Ctx, collection: &str, file: &str, item: u64) -> ImageTask {
    let name = format!("{collection}/{file}");
    let route = ["ingest", "embed"];
    let item = Item { job: uuid::Uuid::nil(), item, collection, name: &name, route: &route };
    item.ingest(ctx, sightline_test_support::fixture(format!("sample/{name}"))).await
}

/// Handles `task` and returns the stored, decoded embedding and the record's annotation.
async fn embed_one(stage: &Embed, ctx: &Ctx, task: ImageTask) -> (Vec<f32>, serde_json::Value) {
    let effects = stage.handle(ctx, input(&task)).await.expect("handled");
    let record = finished(&effects);
    assert_eq!(record.outcome, ItemOutcome::Ok);
    let a = record.annotations["embed"].clone();
    let key = a["key"].as_str().expect("key");
    let bytes = ctx.blob.get(key).await.expect("embedding blob");
    (from_le_bytes(&bytes).expect("f32s"), a)
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[tokio::test]
async fn a_missing_model_keeps_the_stage_not_ready() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stage = Embed::new(EmbedConfig::default(), store(dir.path().to_owned()));
    let why = stage.ready().await.expect_err("not ready");
    assert!(why.contains("models/fetch.sh") && why.contains("efficientnet-lite0.onnx"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_are_unit_vectors_stored_under_the_image_and_crop() {
    let Some(dir) = models_dir("embeddings_are_unit_vectors_stored_under_the_image_and_crop") else { return };
    let stage = Embed::new(EmbedConfig::default(), store(dir));
    let env = StageEnv::new();

    let whole = task(&env.ctx, "Honeydew-Melon", "img003.jpg", 0).await;
    let sha = whole.sha256.clone();
    let (v, a) = embed_one(&stage, &env.ctx, whole.clone()).await;
    assert_eq!(v.len(), DIM);
    let norm = dot(&v, &v).sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "L2-normalised: {norm}");
    assert_eq!(a["key"], format!("embeddings/efficientnet-lite0/{sha}-full.f32"));
    assert_eq!(
        (a["dim"].as_u64(), a["model"].as_str(), a["crop"].as_str()),
        (Some(1280), Some("efficientnet-lite0"), Some("full"))
    );

    // Handling it again (a redelivery) gives the same key and the same vector.
    let (again, a2) = embed_one(&stage, &env.ctx, whole.clone()).await;
    assert_eq!(a2["key"], a["key"]);
    assert_eq!(again, v);

    // With detect's crop: another key, another (but similar) vector.
    let mut cropped = whole;
    cropped.annotations.insert("detect".into(), serde_json::json!({"crop": [40, 40, 200, 200], "crop_full": false}));
    let (c, ac) = embed_one(&stage, &env.ctx, cropped).await;
    assert_ne!(ac["key"], a["key"]);
    assert_eq!(ac["crop"], serde_json::json!([40, 40, 200, 200]));
    let sim = dot(&c, &v);
    assert!(sim > 0.5 && sim < 0.9999, "crop vs whole cosine {sim}");

    // Two photos of the product are closer to each other than to a group photo.
    let (p2, _) = embed_one(&stage, &env.ctx, task(&env.ctx, "Honeydew-Melon", "img006.jpg", 1).await).await;
    let (face, _) = embed_one(&stage, &env.ctx, task(&env.ctx, "Honeydew-Melon", "img018.jpg", 2).await).await;
    assert!(
        dot(&v, &p2) > dot(&v, &face) + 0.05,
        "product-product {} vs product-face {}",
        dot(&v, &p2),
        dot(&v, &face)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_messages_share_model_calls() {
    let Some(dir) = models_dir("concurrent_messages_share_model_calls") else { return };
    let config = EmbedConfig {
        batch: sightline_embed::batch::BatchConfig { max_batch: 8, window: Duration::from_millis(50), concurrency: 1 },
        ..EmbedConfig::default()
    };
    let stage = Arc::new(Embed::new(config, store(dir)));
    stage.ready().await.expect("model loads");
    let env = StageEnv::new();
    let files = [
        "img003.jpg",
        "img006.jpg",
        "img007.jpg",
        "img008.jpg",
        "img009.jpg",
        "img011.jpg",
        "img012.jpg",
        "img013.jpg",
    ];
    let mut tasks = Vec::new();
    for (i, f) in files.iter().enumerate() {
        tasks.push(task(&env.ctx, "Honeydew-Melon", f, i as u64).await);
    }
    let handles: Vec<_> = tasks
        .into_iter()
        .map(|t| {
            let (stage, ctx) = (stage.clone(), env.ctx.clone());
            tokio::spawn(async move { stage.handle(&ctx, input(&t)).await })
        })
        .collect();
    for h in handles {
        h.await.expect("join").expect("handled");
    }
    let embedder = stage.embedder().await.expect("loaded");
    let stats = embedder.batcher().stats();
    assert_eq!(stats.images.load(Ordering::SeqCst), 8);
    let batches = stats.batches.load(Ordering::SeqCst);
    assert!(batches < 8, "8 concurrent messages in {batches} model calls");
    assert!(stats.largest.load(Ordering::SeqCst) >= 2);
}

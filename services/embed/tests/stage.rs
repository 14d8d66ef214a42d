//! Component tests of the embed stage on the in-memory backends with the committed sample
//! photos, and of the route ingest → detect → embed in the embedded pipeline.
//!
//! The tests that run the models need them (`eval "$(models/fetch.sh)"`): they are skipped
//! with a message when `SIGHTLINE_MODELS` is unset and the `models` feature is off; with
//! `--features models`, missing models are a failure. The readiness test runs always.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use sightline_embed::{DIM, Embed, EmbedConfig, from_le_bytes};
use sightline_inference::{Manifest, ModelStore, default_models_dir};
use sightline_messages::{Body, Envelope, ImageTask, ItemOutcome, JobSpec, Source};
use sightline_runtime::embedded::Pipeline;
use sightline_runtime::{Backends, Ctx, Effect, Input, RunnerSettings, Stage, records};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sample() -> PathBuf {
    repo().join("tests/fixtures/sample")
}

fn models_dir(test: &str) -> Option<PathBuf> {
    match std::env::var_os("SIGHTLINE_MODELS") {
        Some(dir) => Some(PathBuf::from(dir)),
        None if cfg!(feature = "models") => Some(default_models_dir()),
        None => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: SIGHTLINE_MODELS is unset and the `models` feature is off. \
                 Run `eval \"$(models/fetch.sh)\"` and rerun, or use `--features models` to make missing models a failure."
            );
            None
        }
    }
}

fn store(dir: PathBuf) -> Arc<ModelStore> {
    Arc::new(ModelStore::new(dir, Manifest::embedded().expect("manifest")))
}

struct Env {
    ctx: Ctx,
    _dir: tempfile::TempDir,
}

fn env() -> Env {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Backends::embedded(dir.path()).expect("backends");
    Env { ctx: Ctx { blob: b.blob, coord: b.coord }, _dir: dir }
}

/// Stores a sample photo as ingest would; the task is addressed to embed, the last stage.
async fn task(ctx: &Ctx, collection: &str, file: &str, item: u64) -> ImageTask {
    let bytes = std::fs::read(sample().join(collection).join(file)).expect("fixture");
    let probe = sightline_imaging::validate(&bytes, Some(file), &Default::default()).expect("valid fixture");
    let size = bytes.len() as u64;
    let (key, sha256, _) = sightline_blob::put_content(ctx.blob.as_ref(), Bytes::from(bytes)).await.expect("put");
    ImageTask {
        job_id: uuid::Uuid::nil(),
        item,
        collection: collection.to_owned(),
        name: format!("{collection}/{file}"),
        key,
        sha256,
        format: probe.format,
        width: probe.width,
        height: probe.height,
        size,
        route: vec!["ingest".into(), "embed".into()],
        hop: 1,
        annotations: Default::default(),
    }
}

fn input(task: ImageTask) -> Input {
    let body = Body::Image(task);
    Input { envelope: Envelope::new(&body, uuid::Uuid::new_v4(), uuid::Uuid::nil()).expect("envelope"), body }
}

/// Handles `task` and returns the stored, decoded embedding and the record's annotation.
async fn embed_one(stage: &Embed, ctx: &Ctx, task: ImageTask) -> (Vec<f32>, serde_json::Value) {
    let effects = stage.handle(ctx, input(task)).await.expect("handled");
    let [Effect::Finish(record)] = effects.as_slice() else { panic!("route ends at embed: {effects:?}") };
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
    let env = env();

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
    let env = env();
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
            tokio::spawn(async move { stage.handle(&ctx, input(t)).await })
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

/// The sample truth: (collection, file) -> label.
fn truth() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(sample().join("truth.csv")).expect("truth.csv");
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.trim_end().split(',').collect();
            (f.len() >= 3).then(|| (format!("{}/{}", f[0], f[1]), f[2].to_owned()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_pipeline_runs_ingest_detect_embed_over_the_sample() {
    let Some(dir) = models_dir("the_embedded_pipeline_runs_ingest_detect_embed_over_the_sample") else { return };
    let models = store(dir);
    let storage = tempfile::tempdir().expect("tempdir");
    let backends = Backends::embedded(storage.path()).expect("backends");
    let job = uuid::Uuid::new_v4();
    let truth = truth();
    for name in truth.keys() {
        let bytes = std::fs::read(sample().join(name)).expect("fixture");
        backends.blob.put(&format!("uploads/{job}/{name}"), Bytes::from(bytes)).await.expect("upload");
    }
    let stages: Vec<Arc<dyn Stage>> = vec![
        Arc::new(sightline_ingest::Ingest::new(Default::default()).expect("ingest")),
        Arc::new(sightline_detect::Detect::new(Default::default(), models.clone())),
        Arc::new(Embed::new(EmbedConfig::default(), models)),
    ];
    let settings = RunnerSettings { retry_base_ms: 50, retry_max_ms: 500, ..RunnerSettings::default() };
    let pipeline = Pipeline::start(backends.clone(), stages, settings);
    let spec = JobSpec {
        job_id: job,
        kind: "annotate".into(),
        route: vec!["ingest".into(), "detect".into(), "embed".into()],
        source: Source::S3Prefix { prefix: format!("uploads/{job}/") },
        options: Default::default(),
        submitted_at_ms: 0,
    };
    sightline_runtime::runner::submit_job(backends.bus.as_ref(), &spec).await.expect("submit");
    let status = tokio::time::timeout(Duration::from_secs(300), pipeline.wait(job, |_| {}))
        .await
        .expect("job finishes in time")
        .expect("status")
        .expect("job known");
    pipeline.stop().await;
    assert_eq!(status.finished, truth.len() as u64);

    let recs = records::read_records(backends.blob.as_ref(), job).await.expect("records");
    assert_eq!(recs.len(), truth.len(), "one record per image");
    let mut filtered = 0;
    for r in &recs {
        let label = &truth[&r.name];
        match r.outcome {
            ItemOutcome::Filtered => {
                filtered += 1;
                assert_eq!(r.stage, "detect");
                assert_eq!(label, "noise", "{} is a product: {:?}", r.name, r.reason);
                assert!(!r.annotations.contains_key("embed"), "filtered images are not embedded");
            }
            ItemOutcome::Ok => {
                assert_eq!(r.stage, "embed");
                let key = r.annotations["embed"]["key"].as_str().expect("embed key");
                let meta = backends.blob.head(key).await.expect("head").expect("embedding stored");
                assert_eq!(meta.size, (DIM * 4) as u64);
                assert!(r.annotations["detect"]["nsfw"].is_number(), "moderation score on every image");
            }
            other => panic!("{}: unexpected outcome {other:?} ({:?})", r.name, r.reason),
        }
    }
    assert_eq!(filtered, 8, "four face photos and four text strips");
}

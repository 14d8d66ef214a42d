//! Component tests of the detect stage on the in-memory backends (local folder storage,
//! memory coordination) with the committed sample photos (`tests/fixtures/sample`).
//!
//! The tests that run the models need them (`eval "$(models/fetch.sh)"`): they are skipped
//! with a message when `SIGHTLINE_MODELS` is unset and the `models` feature is off; with
//! `--features models`, missing models are a failure. The readiness tests run always.

use std::path::PathBuf;
use std::sync::Arc;

use sightline_detect::{Detect, DetectConfig};
use sightline_inference::{Manifest, ModelStore, models_dir_from_env};
use sightline_messages::{Body, ImageTask, ItemOutcome};
use sightline_runtime::{Ctx, Effect, Stage};
use sightline_test_support::{Item, StageEnv, input, models_available, sample_truth};

fn models_dir(test: &str) -> Option<PathBuf> {
    models_available(test, cfg!(feature = "models")).then(models_dir_from_env)
}

fn stage(dir: PathBuf) -> Detect {
    Detect::new(DetectConfig::default(), Arc::new(ModelStore::new(dir, Manifest::embedded().expect("manifest"))))
}

/// Stores a sample photo as ingest would and returns its task, addressed to detect.
async fn task(ctx: &Ctx, collection: &str, file: &str, item: u64) -> ImageTask {
    let name = format!("{collection}/{file}");
    let route = ["ingest", "detect", "embed"];
    let item = Item { job: uuid::Uuid::nil(), item, collection, name: &name, route: &route };
    item.ingest(ctx, sightline_test_support::fixture(format!("sample/{name}"))).await
}

#[tokio::test]
async fn missing_models_keep_the_stage_not_ready_and_say_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let detect = stage(dir.path().to_owned());
    let why = detect.ready().await.expect_err("no models, not ready");
    assert!(why.contains("models/fetch.sh"), "{why}");
    assert!(why.contains(&dir.path().display().to_string()), "names the file: {why}");

    // A corrupt file is named too.
    let manifest = Manifest::embedded().expect("manifest");
    let nsfw = dir.path().join(&manifest.model("nsfw").expect("nsfw").local);
    std::fs::create_dir_all(nsfw.parent().expect("parent")).expect("mkdir");
    std::fs::write(&nsfw, b"not a model").expect("write");
    let why = detect.ready().await.expect_err("corrupt model, not ready");
    assert!(why.contains("open-nsfw.onnx") && why.contains("SHA-256"), "{why}");

    // Messages are retried (transient), not dead-lettered, while the models are missing.
    let env = StageEnv::new();
    let t = task(&env.ctx, "Honeydew-Melon", "img003.jpg", 0).await;
    let err = detect.handle(&env.ctx, input(&t)).await.expect_err("not ready");
    assert!(matches!(err, sightline_runtime::StageError::Transient(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faces_and_text_are_filtered_with_reasons_and_the_rest_goes_on_with_a_crop() {
    let Some(dir) = models_dir("faces_and_text_are_filtered_with_reasons_and_the_rest_goes_on_with_a_crop") else {
        return;
    };
    let detect = stage(dir);
    detect.ready().await.expect("models load");
    let env = StageEnv::new();
    let mut filtered = Vec::new();
    for (i, image) in sample_truth().iter().enumerate() {
        let (collection, file, label) = (&image.collection, &image.file, &image.label);
        let t = task(&env.ctx, collection, file, i as u64).await;
        let (w, h) = (t.width, t.height);
        let effects = detect.handle(&env.ctx, input(&t)).await.expect("handled");
        assert_eq!(effects.len(), 1, "{collection}/{file}");
        match &effects[0] {
            Effect::Finish(record) => {
                assert_eq!(record.outcome, ItemOutcome::Filtered, "{collection}/{file}");
                assert_eq!(record.stage, "detect");
                let reason = record.reason.clone().expect("a reason");
                assert!(reason.starts_with("dominated by"), "{reason}");
                let d = &record.annotations["detect"];
                assert_eq!(d["filtered"].as_str(), Some(reason.as_str()), "the reason is in the annotations too");
                assert!(d["nsfw"].as_f64().is_some_and(|p| (0.0..=1.0).contains(&p)), "{d}");
                assert_eq!(label, "noise", "{collection}/{file} is a true product but was filtered: {reason}");
                filtered.push((format!("{collection}/{file}"), reason));
            }
            Effect::Publish { stage, body: Body::Image(next) } => {
                assert_eq!(stage, "embed");
                assert_eq!(next.hop, 2);
                let d = &next.annotations["detect"];
                assert!(d["nsfw"].as_f64().is_some_and(|p| (0.0..=1.0).contains(&p)), "{d}");
                assert!(d["filtered"].is_null() && d["flags"].as_array().is_some_and(Vec::is_empty), "{d}");
                let crop: Vec<u64> =
                    d["crop"].as_array().expect("crop").iter().map(|v| v.as_u64().expect("u64")).collect();
                assert_eq!(crop.len(), 4);
                assert!(crop[2] > 0 && crop[3] > 0, "{crop:?}");
                assert!(crop[0] + crop[2] <= u64::from(w) && crop[1] + crop[3] <= u64::from(h), "{crop:?} in {w}x{h}");
                assert!(d["imagenet"].as_array().is_some_and(|c| c.len() == 3 && c[0]["label"].is_string()), "{d}");
            }
            other => panic!("{collection}/{file}: unexpected effect {other:?}"),
        }
    }
    // Four face or group photos and four text strips (the dlib dog collage has no human face
    // and stays; scenes and other products are left to clustering).
    let by = |word: &str| filtered.iter().filter(|(_, r)| r.contains(word)).count();
    assert_eq!(by("faces"), 4, "{filtered:#?}");
    assert_eq!(by("text"), 4, "{filtered:#?}");
    for expected in ["Honeydew-Melon/img018.jpg", "Tropicana-Apple-Juice/img019.jpg", "Alpro-Shelf-Soy-Milk/img013.jpg"]
    {
        assert!(filtered.iter().any(|(n, _)| n == expected), "{expected} filtered: {filtered:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_filter_mode_records_flags_but_keeps_the_image() {
    let Some(dir) = models_dir("no_filter_mode_records_flags_but_keeps_the_image") else {
        return;
    };
    let config = DetectConfig { filter: false, ..DetectConfig::default() };
    let detect = Detect::new(config, Arc::new(ModelStore::new(dir, Manifest::embedded().expect("manifest"))));
    let env = StageEnv::new();
    let t = task(&env.ctx, "Tropicana-Apple-Juice", "img019.jpg", 0).await;
    let effects = detect.handle(&env.ctx, input(&t)).await.expect("handled");
    let Effect::Publish { body: Body::Image(next), .. } = &effects[0] else { panic!("kept: {effects:?}") };
    let d = &next.annotations["detect"];
    assert_eq!(d["flags"][0]["flag"], "text", "{d}");
    assert!(d["text"]["fraction"].as_f64().is_some_and(|f| f >= 0.4), "{d}");
    assert!(d["filtered"].is_null());
}

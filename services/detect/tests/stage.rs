//! Component tests of the detect stage on the in-memory backends (local folder storage,
//! memory coordination) with the committed sample photos (`tests/fixtures/sample`).
//!
//! The tests that run the models need them (`eval "$(models/fetch.sh)"`): they are skipped
//! with a message when `SIGHTLINE_MODELS` is unset and the `models` feature is off; with
//! `--features models`, missing models are a failure. The readiness tests run always.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use sightline_detect::{Detect, DetectConfig};
use sightline_inference::{Manifest, ModelStore, default_models_dir};
use sightline_messages::{Body, Envelope, ImageTask, ItemOutcome};
use sightline_runtime::{Backends, Ctx, Effect, Input, Stage};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn models_dir(test: &str) -> Option<PathBuf> {
    match std::env::var_os("SIGHTLINE_MODELS") {
        Some(dir) => Some(PathBuf::from(dir)),
        None if cfg!(feature = "models") => Some(default_models_dir()),
        None => {
            // the real stderr, so the skip shows even though the harness captures output
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

fn stage(dir: PathBuf) -> Detect {
    Detect::new(DetectConfig::default(), Arc::new(ModelStore::new(dir, Manifest::embedded().expect("manifest"))))
}

/// The sample truth: (collection, file) -> label.
fn truth() -> BTreeMap<(String, String), String> {
    let text = std::fs::read_to_string(repo().join("tests/fixtures/sample/truth.csv")).expect("truth.csv");
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.trim_end().split(',').collect();
            (f.len() >= 3).then(|| ((f[0].to_owned(), f[1].to_owned()), f[2].to_owned()))
        })
        .collect()
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

/// Stores a sample photo as ingest would and returns its task, addressed to detect.
async fn task(ctx: &Ctx, collection: &str, file: &str, item: u64) -> ImageTask {
    let bytes = std::fs::read(repo().join("tests/fixtures/sample").join(collection).join(file)).expect("fixture");
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
        route: vec!["ingest".into(), "detect".into(), "embed".into()],
        hop: 1,
        annotations: Default::default(),
    }
}

fn input(task: ImageTask) -> Input {
    let body = Body::Image(task);
    Input { envelope: Envelope::new(&body, uuid::Uuid::new_v4(), uuid::Uuid::nil()).expect("envelope"), body }
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
    let env = env();
    let t = task(&env.ctx, "Honeydew-Melon", "img003.jpg", 0).await;
    let err = detect.handle(&env.ctx, input(t)).await.expect_err("not ready");
    assert!(matches!(err, sightline_runtime::StageError::Transient(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faces_and_text_are_filtered_with_reasons_and_the_rest_goes_on_with_a_crop() {
    let Some(dir) = models_dir("faces_and_text_are_filtered_with_reasons_and_the_rest_goes_on_with_a_crop") else {
        return;
    };
    let detect = stage(dir);
    detect.ready().await.expect("models load");
    let env = env();
    let truth = truth();
    let mut filtered = Vec::new();
    for (i, ((collection, file), label)) in truth.iter().enumerate() {
        let t = task(&env.ctx, collection, file, i as u64).await;
        let (w, h) = (t.width, t.height);
        let effects = detect.handle(&env.ctx, input(t)).await.expect("handled");
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
    let env = env();
    let t = task(&env.ctx, "Tropicana-Apple-Juice", "img019.jpg", 0).await;
    let effects = detect.handle(&env.ctx, input(t)).await.expect("handled");
    let Effect::Publish { body: Body::Image(next), .. } = &effects[0] else { panic!("kept: {effects:?}") };
    let d = &next.annotations["detect"];
    assert_eq!(d["flags"][0]["flag"], "text", "{d}");
    assert!(d["text"]["fraction"].as_f64().is_some_and(|f| f >= 0.4), "{d}");
    assert!(d["filtered"].is_null());
}

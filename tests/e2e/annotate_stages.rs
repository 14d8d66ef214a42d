//! The model stages as worker processes: a job over the sample collections along the route
//! ingest → detect → embed, through real RabbitMQ, Redis and S3. Needs the models
//! (`models/fetch.sh`; `tests/run.sh` fetches them).

use std::collections::BTreeMap;

use sightline_test_support::sample_truth;
use sightline_tests::{Services, Worker, copy_sample_collections};

/// (collection/file) -> label, from the sample's truth.csv.
fn truth() -> BTreeMap<String, String> {
    sample_truth().into_iter().map(|image| (image.name(), image.label)).collect()
}

#[test]
fn ingest_detect_embed_workers_filter_noise_and_store_embeddings() {
    let services = Services::start();
    let dir = services.scratch.path().join("collections");
    copy_sample_collections(&dir);
    let truth = truth();
    let _ingest = Worker::start(&services, "ingest", &[]);
    let _detect = Worker::start(&services, "detect", &[]);
    let embed = Worker::start(&services, "embed", &[("EMBED_BATCH_WINDOW_MS", "20")]);

    let (job, out) = services
        .submit_and_wait(&[dir.to_str().expect("utf8"), "--kind", "annotate", "--route", "ingest,detect,embed"], 300);
    assert_eq!(out["status"]["total"].as_u64(), Some(truth.len() as u64), "{out}");
    assert_eq!(out["status"]["finished"].as_u64(), Some(truth.len() as u64), "{out}");

    let recs = services.records(&job);
    assert_eq!(recs.len(), truth.len(), "one record per image");
    let mut filtered = Vec::new();
    for r in &recs {
        let name = r["name"].as_str().expect("name");
        let label = truth.get(name).unwrap_or_else(|| panic!("unknown file {name}"));
        let detect = &r["annotations"]["detect"];
        assert!(detect["nsfw"].as_f64().is_some_and(|p| (0.0..=1.0).contains(&p)), "moderation score: {r}");
        match r["outcome"].as_str() {
            Some("filtered") => {
                assert_eq!(r["stage"], "detect", "{r}");
                assert_eq!(label, "noise", "a true product was filtered: {r}");
                let reason = r["reason"].as_str().expect("reason");
                assert!(reason.starts_with("dominated by"), "{reason}");
                assert_eq!(detect["filtered"].as_str(), Some(reason), "the reason is in the annotations too");
                assert!(r["annotations"].get("embed").is_none(), "{r}");
                filtered.push(name.to_owned());
            }
            Some("ok") => {
                assert_eq!(r["stage"], "embed", "{r}");
                let e = &r["annotations"]["embed"];
                let key = e["key"].as_str().expect("embedding key");
                assert!(key.starts_with("embeddings/efficientnet-lite0/") && key.ends_with(".f32"), "{key}");
                let sha = r["key"].as_str().expect("image key").trim_start_matches("images/sha256/");
                assert!(key.contains(sha), "the key names the image: {key} / {sha}");
                assert_eq!(e["dim"].as_u64(), Some(1280));
                assert_eq!(detect["crop"].as_array().map(Vec::len), Some(4), "{detect}");
            }
            other => panic!("{name}: unexpected outcome {other:?}: {r}"),
        }
    }
    assert_eq!(filtered.len(), 8, "four face photos and four text strips: {filtered:?}");
    // The embed worker handled every kept image.
    let metrics = embed.metrics();
    assert!(metrics.contains("sightline_messages_total{stage=\"embed\",outcome=\"ok\"}"), "{metrics}");
}

#[test]
fn a_model_worker_without_its_models_stays_not_ready_and_names_the_fix() {
    let services = Services::start();
    let empty = services.scratch.path().join("no-models");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let empty = empty.to_str().expect("utf8").to_owned();
    for stage in ["detect", "embed", "ocr", "face"] {
        let mut worker = Worker::spawn(&services, stage, &[("SIGHTLINE_MODELS", empty.as_str())]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let (code, body) = loop {
            if let Some(answer) = sightline_tests::http_get(worker.admin, "/readyz") {
                break answer;
            }
            assert!(worker.is_running(), "{stage} exited instead of staying up:\n{}", worker.log_text());
            assert!(std::time::Instant::now() < deadline, "{stage}: no /readyz answer:\n{}", worker.log_text());
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        assert_eq!(code, 503, "{stage}: {body}");
        assert!(body.contains("models/fetch.sh"), "{stage}: the fix is named: {body}");
        assert!(body.contains(&empty), "{stage}: the missing file is named: {body}");
        std::thread::sleep(std::time::Duration::from_secs(1));
        assert!(worker.is_running(), "{stage} keeps running, not ready:\n{}", worker.log_text());
    }
}

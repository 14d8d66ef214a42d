//! The route ingest → detect → embed over the sample (the annotation job's model stages).

use std::sync::Arc;

use sightline_embed::{DIM, Embed, EmbedConfig};
use sightline_inference::{Manifest, ModelStore, models_dir_from_env};
use sightline_messages::ItemOutcome;
use sightline_messages::annotations::{DetectOut, EmbedOut};
use sightline_runtime::Stage;
use sightline_test_support::{EmbeddedJob, models_available, sample_truth};

use crate::MODELS_REQUIRED;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_pipeline_runs_ingest_detect_embed_over_the_sample() {
    if !models_available("the_embedded_pipeline_runs_ingest_detect_embed_over_the_sample", MODELS_REQUIRED) {
        return;
    }
    let models = Arc::new(ModelStore::new(models_dir_from_env(), Manifest::embedded().expect("manifest")));
    let truth = sample_truth();
    let files = truth.iter().map(|image| (image.name(), image.bytes())).collect();
    let stages: Vec<Arc<dyn Stage>> = vec![
        Arc::new(sightline_ingest::Ingest::new(Default::default()).expect("ingest")),
        Arc::new(sightline_detect::Detect::new(Default::default(), models.clone())),
        Arc::new(Embed::new(EmbedConfig::default(), models)),
    ];
    let run = EmbeddedJob::run(stages, "annotate", &["ingest", "detect", "embed"], files).await;
    assert_eq!(run.status.finished, truth.len() as u64);

    assert_eq!(run.records.len(), truth.len(), "one record per image");
    let mut filtered = 0;
    for r in &run.records {
        let label = &truth.iter().find(|image| image.name() == r.name).expect("a sample image").label;
        match r.outcome {
            ItemOutcome::Filtered => {
                filtered += 1;
                assert_eq!(r.stage, "detect");
                assert_eq!(label, "noise", "{} is a product: {:?}", r.name, r.reason);
                assert!(!r.annotations.contains_key("embed"), "filtered images are not embedded");
            }
            ItemOutcome::Ok => {
                assert_eq!(r.stage, "embed");
                let embed: EmbedOut = r.annotation().expect("embed annotation").expect("embedded");
                let meta = run.backends.blob.head(&embed.key).await.expect("head").expect("embedding stored");
                assert_eq!(meta.size, (DIM * 4) as u64);
                let detect: Option<DetectOut> = r.annotation().expect("detect annotation");
                assert!(detect.is_some(), "moderation score on every image");
            }
            other => panic!("{}: unexpected outcome {other:?} ({:?})", r.name, r.reason),
        }
    }
    assert_eq!(filtered, 8, "four face photos and four text strips");
}

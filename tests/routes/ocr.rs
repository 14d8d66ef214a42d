//! The route ingest → ocr on the OCR fixtures (`tests/fixtures/ocr`).

use std::sync::Arc;

use sightline_imaging::Limits;
use sightline_messages::annotations::OcrOut;
use sightline_ocr::{EngineOptions, Ocr, OcrConfig, OcrEngine};
use sightline_runtime::Stage;
use sightline_test_support::{EmbeddedJob, fixture, loaded_or_skip};

use crate::MODELS_REQUIRED;

#[tokio::test]
async fn an_embedded_job_through_ingest_and_ocr() {
    let loaded = OcrEngine::from_env(&EngineOptions::default(), OcrConfig::default());
    let Some(engine) = loaded_or_skip(loaded, "ocr", "models", MODELS_REQUIRED) else { return };
    let files = ["helloworld.jpg", "20457890_2399557098.jpg", "ch_en_num.jpg"]
        .into_iter()
        .map(|f| (f.to_owned(), fixture(format!("ocr/{f}"))))
        .collect();
    let stages: Vec<Arc<dyn Stage>> = vec![
        Arc::new(sightline_ingest::Ingest::new(Default::default()).expect("ingest")),
        Arc::new(Ocr::with_engine(Arc::new(engine), Limits::default())),
    ];
    let run = EmbeddedJob::run(stages, "ocr", &["ingest", "ocr"], files).await;
    assert_eq!(run.status.outcomes.get("ok"), Some(&3), "{:?}", run.status);
    assert_eq!(run.annotation::<OcrOut>("20457890_2399557098.jpg").lines[0].text, "就会哈哈大笑。3.0");
    assert_eq!(run.annotation::<OcrOut>("ch_en_num.jpg").prices.len(), 3);
}

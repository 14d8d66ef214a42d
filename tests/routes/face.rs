//! The route ingest → face on the face fixtures (`tests/fixtures/faces`) and a product photo.

use std::sync::Arc;

use sightline_face::FaceStage;
use sightline_face::engine::{EngineConfig, FaceEngine};
use sightline_face::persons::PersonConfig;
use sightline_imaging::Limits;
use sightline_messages::annotations::FaceOut;
use sightline_runtime::Stage;
use sightline_test_support::{EmbeddedJob, fixture, loaded_or_skip};

use crate::MODELS_REQUIRED;

#[tokio::test]
async fn an_embedded_job_through_ingest_and_face() {
    let loaded = FaceEngine::from_env(1, EngineConfig::default());
    let Some(engine) = loaded_or_skip(loaded, "face", "models", MODELS_REQUIRED) else { return };
    let mut files: Vec<(String, Vec<u8>)> = ["group.jpg", "salley_1.jpg", "salley_2.jpg", "simm_1.jpg", "simm_2.jpg"]
        .into_iter()
        .map(|f| (f.to_owned(), fixture(format!("faces/{f}"))))
        .collect();
    // A photo without people.
    files.push(("product.jpg".into(), fixture("sample/Alpro-Shelf-Soy-Milk/img000.jpg")));

    let stages: Vec<Arc<dyn Stage>> = vec![
        Arc::new(sightline_ingest::Ingest::new(Default::default()).expect("ingest")),
        Arc::new(FaceStage::new(Arc::new(engine), PersonConfig::default(), Limits::default())),
    ];
    let run = EmbeddedJob::run(stages, "face", &["ingest", "face"], files).await;
    assert_eq!(run.status.outcomes.get("ok"), Some(&6), "{:?}", run.status);
    let faces = |name: &str| run.annotation::<FaceOut>(name);
    assert_eq!(faces("group.jpg").count, 3);
    assert_eq!(faces("product.jpg").count, 0);
    assert!(faces("product.jpg").faces.is_empty());
    let person = |name: &str| faces(name).faces[0].person.expect("person");
    assert_eq!(person("salley_1.jpg"), person("salley_2.jpg"));
    assert_eq!(person("simm_1.jpg"), person("simm_2.jpg"));
    assert_ne!(person("salley_1.jpg"), person("simm_1.jpg"));
    let group_persons: Vec<u64> = faces("group.jpg").faces.iter().filter_map(|f| f.person).collect();
    assert!(!group_persons.contains(&person("salley_1.jpg")), "strangers are not the portrait's man");
}

//! The face stage end to end: a job routed `ingest,face` through an ingest worker and two face
//! worker processes on the real services; the records carry `annotations.face` with the faces
//! of each image and person ids consistent across the job (also across the two workers).
//! The face workers need the models (`models/fetch.sh`; `tests/run.sh` fetches them).

use sightline_tests::{Services, Worker, annotation_of, copy_fixtures, fixture_path};

#[test]
fn faces_flow_through_face_workers_with_persons_consistent_across_the_job() {
    let services = Services::start();
    let dir = services.scratch.path().join("faces-input");
    copy_fixtures("faces", &["group.jpg", "salley_1.jpg", "salley_2.jpg", "simm_1.jpg", "simm_2.jpg"], &dir);
    // A photo without people.
    std::fs::copy(fixture_path("sample/Alpro-Shelf-Soy-Milk/img000.jpg"), dir.join("product.jpg"))
        .expect("copy sample");

    let _ingest = Worker::start(&services, "ingest", &[]);
    let _face_a = Worker::start(&services, "face", &[("PREFETCH", "2")]);
    let _face_b = Worker::start(&services, "face", &[("PREFETCH", "2")]);
    let (job, out) = services.submit_and_wait(&[dir.to_str().expect("utf8"), "--route", "ingest,face"], 300);
    assert_eq!(out["status"]["outcomes"]["ok"].as_u64(), Some(6), "{out}");

    let records = services.records(&job);
    assert_eq!(records.len(), 6);
    let face = |name: &str| annotation_of(&records, name, "face");
    let group = face("group.jpg");
    assert_eq!(group["count"], 3, "{group}");
    for f in group["faces"].as_array().expect("faces") {
        assert_eq!(f["box"].as_array().map(Vec::len), Some(4), "{f}");
        assert_eq!(f["landmarks"].as_array().map(Vec::len), Some(5), "{f}");
        assert!(f["gender"] == "male" || f["gender"] == "female", "{f}");
        assert!(f["age"].as_f64().is_some_and(|a| a > 0.0 && a < 100.0), "{f}");
        assert!(f["yaw"].is_number() && f["pitch"].is_number() && f["roll"].is_number(), "{f}");
        assert!(f["frontal"].is_boolean(), "{f}");
        assert!(f.get("embedding").is_none(), "embeddings stay out of the record: {f}");
    }
    assert!(group["embeddings"].as_str().is_some_and(|k| k.starts_with(&format!("jobs/{job}/faces/"))), "{group}");
    assert_eq!(face("product.jpg")["faces"], serde_json::json!([]));

    let person = |name: &str| face(name)["faces"][0]["person"].as_u64().unwrap_or_else(|| panic!("{name}: no person"));
    assert_eq!(person("salley_1.jpg"), person("salley_2.jpg"), "one man, two images, one person");
    assert_eq!(person("simm_1.jpg"), person("simm_2.jpg"));
    assert_ne!(person("salley_1.jpg"), person("simm_1.jpg"));
    // Nothing was dead-lettered.
    let dlq = services.sightline_json(&["dlq", "list", "face", "--json"]);
    assert_eq!(dlq.as_array().map(Vec::len), Some(0), "{dlq}");
}

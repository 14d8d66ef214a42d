//! Golden fixtures: the exact bytes of one example of every kind. A failure here means the
//! wire format changed. If the change is intended and additive, regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p sightline-messages --test golden` and review the diff.

use std::collections::BTreeMap;
use std::path::PathBuf;

use sightline_messages::{Body, CollectionReady, ImageTask, IngestItem, JobSpec, Location, Source};
use uuid::Uuid;

fn job_id() -> Uuid {
    Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef)
}

fn examples() -> Vec<(&'static str, Body)> {
    let route: Vec<String> = ["ingest", "dedup", "embed"].map(String::from).to_vec();
    let mut options = BTreeMap::new();
    options.insert("dedup.threshold".to_owned(), "6".to_owned());
    let mut annotations = BTreeMap::new();
    annotations.insert("dedup".to_owned(), serde_json::json!({"status": "unique"}));
    vec![
        (
            "job.submit",
            Body::Job(JobSpec {
                job_id: job_id(),
                kind: "ingest".to_owned(),
                route: route.clone(),
                source: Source::S3Prefix { prefix: "uploads/job/".to_owned() },
                options,
                submitted_at_ms: 1_764_201_600_000,
            }),
        ),
        (
            "job.submit.urls",
            Body::Job(JobSpec {
                job_id: job_id(),
                kind: "ingest".to_owned(),
                route: route.clone(),
                source: Source::Urls {
                    urls: vec!["https://example.com/a.jpg".to_owned()],
                    collection: "shoes".to_owned(),
                },
                options: BTreeMap::new(),
                submitted_at_ms: 1_764_201_600_000,
            }),
        ),
        (
            "ingest.item",
            Body::IngestItem(IngestItem {
                job_id: job_id(),
                item: 7,
                collection: "shoes".to_owned(),
                name: "shoes/a.jpg".to_owned(),
                location: Location::Blob { key: "uploads/job/shoes/a.jpg".to_owned() },
                route: route.clone(),
                options: BTreeMap::new(),
            }),
        ),
        (
            "image.task",
            Body::Image(ImageTask {
                job_id: job_id(),
                item: 7,
                collection: "shoes".to_owned(),
                name: "shoes/a.jpg".to_owned(),
                key: "images/sha256/ab".to_owned(),
                sha256: "ab".to_owned(),
                format: "jpeg".to_owned(),
                width: 640,
                height: 480,
                size: 12345,
                route: route.clone(),
                hop: 1,
                annotations,
            }),
        ),
        (
            "collection.ready",
            Body::CollectionReady(CollectionReady { job_id: job_id(), collection: "shoes".to_owned(), route }),
        ),
    ]
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(format!("{name}.msgpack"))
}

#[test]
fn every_kind_matches_its_golden_bytes() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    for (name, body) in examples() {
        let bytes = body.encode().expect("encode");
        let path = fixture(name);
        if update {
            std::fs::write(&path, &bytes).expect("write fixture");
        }
        let golden =
            std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
        assert_eq!(bytes, golden, "wire bytes of {name} changed");
        let decoded = Body::decode(body.kind(), 1, &golden).expect("decode golden");
        assert_eq!(decoded, body, "golden {name} decodes to the example");
    }
}

#[test]
fn every_known_kind_has_a_fixture() {
    let kinds: std::collections::BTreeSet<_> = examples().iter().map(|(_, b)| b.kind()).collect();
    let expected = [sightline_messages::KIND_JOB, sightline_messages::KIND_INGEST_ITEM, sightline_messages::KIND_IMAGE];
    for kind in expected {
        assert!(kinds.contains(kind), "no golden fixture for {kind}");
    }
}

#[test]
fn bodies_use_named_fields() {
    // Named fields make additive changes safe for older readers: the map keys must be there.
    let bytes = std::fs::read(fixture("image.task")).expect("fixture");
    let value: serde_json::Value = rmp_serde::from_slice(&bytes).expect("generic decode");
    assert_eq!(value["key"], "images/sha256/ab");
    assert_eq!(value["hop"], 1);
}

#[test]
fn unknown_kind_and_newer_version_are_clear_errors() {
    let err = Body::decode("video.task", 1, &[]).unwrap_err();
    assert_eq!(err.to_string(), "unknown message kind \"video.task\"");
    let err = Body::decode("image.task", 9, &[]).unwrap_err();
    assert!(err.to_string().contains("unsupported schema version 9"), "{err}");
    let err = Body::decode("image.task", 1, b"\xc1garbage").unwrap_err();
    assert!(err.to_string().starts_with("malformed \"image.task\" body"), "{err}");
}

#[test]
fn child_ids_are_deterministic() {
    let (_, body) = examples().remove(2);
    let parent = sightline_messages::Envelope::new(&body, Uuid::from_u128(1), job_id()).expect("env");
    let a = parent.child(&body, 3).expect("child");
    let b = parent.child(&body, 3).expect("child");
    let c = parent.child(&body, 4).expect("child");
    assert_eq!(a.meta.message_id, b.meta.message_id);
    assert_ne!(a.meta.message_id, c.meta.message_id);
    assert_eq!(a.meta.causation_id, Some(Uuid::from_u128(1)));
    assert_eq!(a.meta.correlation_id, job_id());
    assert_eq!(a.meta.traceparent, parent.meta.traceparent, "trace context propagates");
    assert_eq!(a.meta.item, Some(7));
}

//! Golden fixtures of the typed stage contract: the JSON every stage output writes into the
//! annotations, one file per annotation under `tests/golden/annotations/`, plus one image task
//! carrying all of them as MessagePack. A failure here means a stage's output changed shape,
//! which can break the stages after it. If the change is intended and additive, regenerate
//! with `UPDATE_GOLDEN=1 cargo test -p sightline-messages --test golden_annotations` and
//! review the diff.

use std::collections::BTreeMap;
use std::path::PathBuf;

use sightline_messages::annotations::{
    self, Annotation, Annotations, ClassScore, ClusterOut, DedupOut, DetectOut, DuplicateKind, EmbedOut, EmbedRegion,
    Evidence, FaceBox, FaceJson, FaceOut, FaceSummary, Flag, Gender, IndexOut, OcrOut, PeopleOut, Price, Region,
    RegionKind, SaliencyStats, SearchMatch, SearchOut, SegmentIn, StoreOut, TextLine, TextLines,
};
use sightline_messages::options::{self, JobOptions};
use sightline_messages::{AnnotationError, Body, ImageTask, KIND_IMAGE};
use uuid::Uuid;

fn detect() -> DetectOut {
    DetectOut {
        version: DetectOut::VERSION,
        nsfw: 0.0125,
        crop: [40, 30, 200, 180],
        crop_full: false,
        faces: FaceSummary {
            count: 0,
            fraction: 0.0,
            boxes: vec![FaceBox { bbox: [10, 12, 20, 24], score: 0.91, confirm: 0.5 }],
        },
        text: TextLines { fraction: 0.64, lines: 1, boxes: vec![[20, 100, 240, 60]] },
        imagenet: vec![ClassScore { class: 953, label: "pineapple, ananas".into(), p: 0.875 }],
        saliency: SaliencyStats { area: 0.5, spread: 0.25 },
        flags: vec![Flag {
            flag: "text".into(),
            score: 0.64,
            threshold: 0.4,
            reason: "dominated by text: 1 text line covers 64% of the image".into(),
        }],
        filtered: None,
        regions: Some(vec![
            Region { bbox: [0, 0, 320, 240], kind: RegionKind::Whole },
            Region { bbox: [0, 40, 320, 140], kind: RegionKind::TextGroup },
        ]),
    }
}

fn embed() -> EmbedOut {
    EmbedOut {
        key: "embeddings/efficientnet-lite0/ab-full.f32".into(),
        dim: 1280,
        model: "efficientnet-lite0".into(),
        crop: Some([40, 30, 200, 180]),
        fit: "centre-crop".into(),
        zoom_key: Some("embeddings/efficientnet-lite0/ab-0123456789abcdef.f32".into()),
        regions: Some(vec![EmbedRegion {
            bbox: [0, 40, 320, 140],
            kind: RegionKind::TextGroup,
            key: "embeddings/efficientnet-lite0/ab-fedcba9876543210-letterbox.f32".into(),
        }]),
    }
}

fn ocr() -> OcrOut {
    let bbox = [[10.0, 20.0], [110.0, 20.0], [110.0, 44.5], [10.0, 44.5]];
    OcrOut {
        lines: vec![
            TextLine { text: "会员价".into(), score: 0.98, bbox },
            TextLine { text: "¥12.80".into(), score: 0.875, bbox },
        ],
        prices: vec![Price {
            amount: 12.8,
            text: "12.80".into(),
            currency: Some("CNY".into()),
            symbol: Some("¥".into()),
            label: Some("会员价".into()),
            from: false,
            unit: None,
            line: 1,
            bbox,
        }],
        product: None,
    }
}

fn face() -> FaceOut {
    FaceOut {
        count: 1,
        faces: vec![FaceJson {
            bbox: [10.0, 20.0, 30.0, 41.3],
            score: 0.9877,
            landmarks: vec![[1.0, 2.0]; 5],
            yaw: Some(12.3),
            pitch: Some(-3.0),
            roll: None,
            frontal: true,
            age: 33.3,
            gender: Gender::Female,
            person: Some(3),
            embedding: None,
        }],
        embeddings: Some("jobs/0/faces/items/0000000007.json".into()),
    }
}

fn dedup() -> DedupOut {
    DedupOut::Duplicate {
        of: "shoes/a.jpg".into(),
        of_item: 3,
        of_job: None,
        kind: DuplicateKind::Near,
        distance: 2,
        evidence: Evidence::Phash,
        phash: "00ff00ff00ff00ff".into(),
    }
}

fn cluster() -> ClusterOut {
    ClusterOut { cluster: 2, halo: false, label: "noise".into(), reason: Some("small cluster (2 images)".into()) }
}

fn index() -> IndexOut {
    IndexOut { entry: "index/shoes/entries/x-0000000007.json".into(), label: "product".into() }
}

fn search() -> SearchOut {
    SearchOut {
        catalog: "brands".into(),
        mode: Some("logo".into()),
        text: "GODMORGON".into(),
        matches: vec![SearchMatch {
            item: "godmorgon.png".into(),
            brand: Some("godmorgon".into()),
            score: 1.25,
            visual: 0.75,
            text: 1.0,
            bbox: Some([0, 40, 320, 140]),
            region: Some(RegionKind::TextGroup),
        }],
    }
}

fn job_options() -> JobOptions {
    JobOptions(BTreeMap::from([
        (options::SEARCH_CATALOG.to_owned(), "brands".to_owned()),
        (options::SEARCH_MODE.to_owned(), "logo".to_owned()),
    ]))
}

/// Every annotation written through the typed accessors onto the envelope's example task
/// (`tests/golden/image.task.msgpack`), on the search route.
fn annotated() -> ImageTask {
    let bytes = std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/image.task.msgpack"))
        .expect("the image.task fixture");
    let Body::Image(mut t) = Body::decode(KIND_IMAGE, 1, &bytes).expect("decode") else { panic!("not an image task") };
    (t.width, t.height) = (320, 240);
    t.route = options::default_route(options::JOB_SEARCH).expect("route");
    t.hop = 4;
    t.annotations = Annotations::new();
    t.set_annotation(&job_options()).expect("options");
    t.set_annotation(&detect()).expect("detect");
    t.set_annotation(&embed()).expect("embed");
    t.set_annotation(&ocr()).expect("ocr");
    t.set_annotation(&face()).expect("face");
    t.set_annotation(&dedup()).expect("dedup");
    t.set_annotation(&cluster()).expect("cluster");
    t.set_annotation(&index()).expect("index");
    t.set_annotation(&search()).expect("search");
    t
}

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/annotations").join(name)
}

/// Compares `bytes` with fixture `name` (writing it first under `UPDATE_GOLDEN`).
fn check(name: &str, bytes: &[u8]) {
    let path = path(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("folder")).expect("create fixture folder");
        std::fs::write(&path, bytes).expect("write fixture");
    }
    let golden =
        std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    assert_eq!(String::from_utf8_lossy(bytes), String::from_utf8_lossy(&golden), "{name} changed");
}

/// The fixture of one annotation (pretty JSON, keys sorted as on the wire) and the round trip.
fn check_one<A: Annotation + PartialEq + std::fmt::Debug>(value: &A) {
    let task = annotated();
    let json = &task.annotations[A::KEY];
    let text = serde_json::to_string_pretty(json).expect("json") + "\n";
    check(&format!("{}.json", A::KEY), text.as_bytes());
    let back: A = task.annotation().expect("well formed").expect("present");
    assert_eq!(&back, value, "{} reads back as written", A::KEY);
}

#[test]
fn every_annotation_matches_its_golden_json() {
    check_one(&detect());
    check_one(&embed());
    check_one(&ocr());
    check_one(&face());
    check_one(&dedup());
    check_one(&cluster());
    check_one(&index());
    check_one(&search());
    check_one(&job_options());
    let written: Vec<String> = annotated().annotations.into_keys().collect();
    assert_eq!(written.len(), 9, "one fixture per annotation: {written:?}");
}

#[test]
fn an_annotated_task_matches_its_golden_bytes() {
    let body = Body::Image(annotated());
    let bytes = body.encode().expect("encode");
    check("image.task.annotated.msgpack", &bytes);
    assert_eq!(Body::decode(body.kind(), 1, &bytes).expect("decode"), body);
}

#[test]
fn absent_partial_unknown_and_malformed_annotations() {
    let mut t = annotated();
    t.annotations.clear();
    assert_eq!(t.annotation::<DetectOut>().expect("absent is not an error"), None);
    // Readers always took only the fields they needed: a partial detect value still reads.
    t.annotations.insert(
        "detect".into(),
        serde_json::json!({ "crop": [1, 2, 3, 4], "crop_full": false, "from_the_future": { "x": 1 } }),
    );
    let d: DetectOut = t.annotation().expect("partial").expect("present");
    assert_eq!((d.crop, d.crop_full, d.regions), ([1, 2, 3, 4], false, None));
    t.annotations.insert("embed".into(), serde_json::json!({ "dim": 2 }));
    let err = t.annotation::<EmbedOut>().expect_err("embed without its key");
    assert!(matches!(err, AnnotationError::Malformed { key: "embed", .. }), "{err}");
    assert!(err.to_string().starts_with("malformed \"embed\" annotation: missing field `key`"), "{err}");
    t.annotations.insert("embed".into(), serde_json::json!({ "key": "k", "crop": "full" }));
    assert_eq!(t.annotation::<EmbedOut>().expect("read").map(|e| e.crop), Some(None), "\"full\" is no crop");
    t.annotations.insert("ocr".into(), serde_json::json!({ "lines": [{ "text": "a b", "score": 0.9 }] }));
    let o: OcrOut = t.annotation().expect("lines without boxes").expect("present");
    assert_eq!(o.text().as_deref(), Some("a b"));
}

#[test]
fn a_duplicate_of_another_job_names_it() {
    let job = Uuid::from_u128(9);
    let out = DedupOut::Duplicate {
        of: "a.jpg".into(),
        of_item: 0,
        of_job: Some(job),
        kind: DuplicateKind::Exact,
        distance: 0,
        evidence: Evidence::Bytes,
        phash: "01".into(),
    };
    let mut map = Annotations::new();
    annotations::write(&mut map, &out).expect("write");
    assert_eq!(map["dedup"]["of_job"], job.to_string());
    assert_eq!(annotations::read::<DedupOut>(&map).expect("read"), Some(out));
}

/// The store route's annotations (a video segment, its people, a video's analytics), each on a
/// task of its own (the search-route task above stays as its fixture pins it).
#[test]
fn store_route_annotations_match_their_golden_json() {
    let segment = SegmentIn {
        version: SegmentIn::VERSION,
        index: 2,
        count: 6,
        start_s: 20.0,
        duration_s: 10.0,
        fps: 5.0,
        offset_s: 0.0,
    };
    let people = PeopleOut {
        version: PeopleOut::VERSION,
        key: "jobs/0/store/0000000003/detections/000002.json".into(),
        frames: 50,
        boxes: 312,
    };
    let store = StoreOut {
        version: StoreOut::VERSION,
        prefix: "jobs/0/store/0000000003/out/".into(),
        frames: 300,
        tracks: 17,
        entries: 4,
        exits: 3,
        errors: vec!["camera1.mkv: corrupt or truncated video after 212 frame(s): File ended prematurely".into()],
    };
    fn one<A: Annotation + PartialEq + std::fmt::Debug>(value: &A) {
        let mut task = annotated();
        task.annotations = Annotations::new();
        task.set_annotation(value).expect("write");
        let text = serde_json::to_string_pretty(&task.annotations[A::KEY]).expect("json") + "\n";
        check(&format!("{}.json", A::KEY), text.as_bytes());
        let back: A = task.annotation().expect("well formed").expect("present");
        assert_eq!(&back, value);
    }
    one(&segment);
    one(&people);
    one(&store);
}

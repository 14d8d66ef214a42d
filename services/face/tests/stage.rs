//! The face engine and stage on the committed fixtures (`tests/fixtures/faces`), with the real
//! models, on the in-memory backends. (The route ingest → face runs in the workspace tests,
//! `tests/routes`.)
//!
//! ```sh
//! eval "$(models/fetch.sh)"
//! cargo test -p sightline-face --features integration --test stage
//! ```
//!
//! Without the `integration` feature the tests skip (with a message) when the models cannot be
//! loaded; with it, missing models fail them.

use std::sync::{Arc, OnceLock};

use image::RgbImage;
use sightline_face::engine::{EngineConfig, FaceEngine};
use sightline_face::geometry::BoxF;
use sightline_face::persons::{PersonConfig, cluster};
use sightline_face::{FaceStage, decode_rgb};
use sightline_imaging::Limits;
use sightline_messages::ImageTask;
use sightline_messages::annotations::FaceOut;
use sightline_runtime::{Ctx, Effect, Stage, StageError};
use sightline_test_support::{Item, StageEnv, engine_once, finished_annotation, input};
use uuid::Uuid;

fn fixture(name: &str) -> Vec<u8> {
    sightline_test_support::fixture(format!("faces/{name}"))
}

fn engine() -> Option<Arc<FaceEngine>> {
    static ENGINE: OnceLock<Option<Arc<FaceEngine>>> = OnceLock::new();
    let load = || FaceEngine::from_env(1, EngineConfig::default());
    engine_once(&ENGINE, load, "face", "integration", cfg!(feature = "integration"))
}

fn load(name: &str) -> RgbImage {
    let bytes = fixture(name);
    decode_rgb(&bytes, Some(name), &Limits::default()).expect("decode")
}

fn truth() -> serde_json::Value {
    serde_json::from_slice(&fixture("truth.json")).expect("json")
}

/// A product photo: no face.
fn no_face_image() -> Vec<u8> {
    sightline_test_support::fixture("sample/Alpro-Shelf-Soy-Milk/img000.jpg")
}

#[test]
fn finds_the_three_faces_of_the_group_photo() {
    let Some(engine) = engine() else { return };
    let faces = engine.analyse(&load("group.jpg")).expect("analyse");
    let boxes: Vec<BoxF> = truth()["group.jpg"]
        .as_array()
        .expect("boxes")
        .iter()
        .map(|b| {
            let v: Vec<f32> = b.as_array().expect("box").iter().map(|x| x.as_f64().expect("num") as f32).collect();
            BoxF { x: v[0], y: v[1], w: v[2], h: v[3] }
        })
        .collect();
    assert_eq!(faces.len(), 3, "{faces:#?}");
    for t in &boxes {
        let best = faces.iter().map(|f| f.bbox.iou(t)).fold(0.0, f32::max);
        assert!(best >= 0.5, "ground truth {t:?} matched at IoU {best}");
    }
    for f in &faces {
        let b = f.bbox;
        for p in &f.landmarks {
            assert!(p[0] > b.x - b.w * 0.2 && p[0] < b.x + b.w * 1.2 && p[1] > b.y && p[1] < b.y + b.h * 1.2, "{f:?}");
        }
        let norm: f32 = f.embedding.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert_eq!(f.embedding.len(), 512);
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
        assert!((5.0..90.0).contains(&f.age), "{}", f.age);
        let pose = f.pose.expect("pose");
        assert!(pose.yaw.abs() < 90.0 && pose.pitch.abs() < 90.0, "{pose:?}");
    }
}

#[test]
fn portraits_of_the_same_person_get_the_same_person_id() {
    let Some(engine) = engine() else { return };
    let names = ["salley_1.jpg", "simm_1.jpg", "salley_2.jpg", "simm_2.jpg"];
    let faces: Vec<_> = names
        .iter()
        .map(|n| {
            let mut f = engine.analyse(&load(n)).expect("analyse");
            assert_eq!(f.len(), 1, "{n}: {f:#?}");
            f.remove(0)
        })
        .collect();
    assert!(faces.iter().all(|f| f.frontal), "portraits are frontal");
    assert!(faces.iter().all(|f| f.gender == sightline_face::Gender::Male));
    let refs: Vec<(&[f32], bool)> = faces.iter().map(|f| (f.embedding.as_slice(), f.frontal)).collect();
    let persons = cluster(&refs, &PersonConfig::default());
    assert_eq!(persons, vec![Some(1), Some(2), Some(1), Some(2)]);
}

#[test]
fn odd_images_are_handled() {
    let Some(engine) = engine() else { return };
    // No face: a product photo.
    let product = no_face_image();
    let img = decode_rgb(&product, None, &Limits::default()).expect("decode");
    assert!(engine.analyse(&img).expect("analyse").is_empty());
    // Grayscale: the same portrait still has its face.
    let gray = image::DynamicImage::ImageRgb8(load("salley_1.jpg")).to_luma8();
    let mut png = Vec::new();
    image::DynamicImage::ImageLuma8(gray)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("png");
    let as_gray = decode_rgb(&png, Some("gray.png"), &Limits::default()).expect("decode gray");
    assert_eq!(engine.analyse(&as_gray).expect("analyse").len(), 1);
    // Tiny, and extreme aspect ratios: no error (whatever they hold).
    let group = load("group.jpg");
    for (w, h) in [(1, 1), (8, 6), (2000, 30), (30, 2000), (3000, 4)] {
        let odd = image::imageops::resize(&group, w, h, image::imageops::FilterType::Triangle);
        let found = engine.analyse(&odd).expect("analyse odd shape");
        assert!(found.iter().all(|f| f.bbox.x >= 0.0 && f.bbox.x + f.bbox.w <= w as f32 + 0.01), "{w}x{h}: {found:?}");
    }
}

/// Stores the fixture `name` as item `item` of `job`, addressed to the face stage.
async fn task(ctx: &Ctx, job: Uuid, item: u64, name: &str, bytes: Vec<u8>) -> ImageTask {
    let route = ["ingest", "face"];
    Item { job, item, collection: "default", name, route: &route }.store(ctx, bytes).await
}

fn annotations(effects: &[Effect]) -> FaceOut {
    finished_annotation(effects)
}

/// Stores the fixtures `names` as items 0, 1, ... of a new job.
async fn tasks(ctx: &Ctx, names: &[&str]) -> Vec<ImageTask> {
    let job = Uuid::new_v4();
    let mut tasks = Vec::new();
    for (i, name) in names.iter().enumerate() {
        tasks.push(task(ctx, job, i as u64, name, fixture(name)).await);
    }
    tasks
}

#[tokio::test]
async fn the_handler_is_idempotent_and_dead_letters_corrupt_images() {
    let Some(engine) = engine() else { return };
    let env = StageEnv::new();
    let ctx = &env.ctx;
    let stage = FaceStage::new(engine, PersonConfig::default(), Limits::default());
    let t = tasks(ctx, &["salley_1.jpg", "salley_2.jpg", "simm_1.jpg"]).await;
    let job = t[0].job_id;
    let first = annotations(&stage.handle(ctx, input(&t[0])).await.expect("handle"));
    let again = annotations(&stage.handle(ctx, input(&t[0])).await.expect("handle again"));
    assert_eq!(first, again, "a repeated message gives the same faces and persons");
    let p0 = first.faces[0].person;
    assert_eq!(p0, Some(1));
    let same = annotations(&stage.handle(ctx, input(&t[1])).await.expect("handle"));
    assert_eq!(same.faces[0].person, p0, "the same man in another image");
    let other = annotations(&stage.handle(ctx, input(&t[2])).await.expect("handle"));
    assert_eq!(other.faces[0].person, Some(2));
    // The embeddings are stored next to the job.
    let key = first.embeddings.as_deref().expect("embeddings key");
    let stored: serde_json::Value =
        serde_json::from_slice(&ctx.blob.get(key).await.expect("faces file")).expect("json");
    assert_eq!(stored["faces"][0]["embedding"].as_array().map(Vec::len), Some(512));
    assert_eq!(ctx.blob.list(&sightline_face::gallery::gallery_prefix(job)).await.expect("list").len(), 3);

    // Corrupt bytes: a permanent error with the decoder's reason (the runner dead-letters it).
    let bad = task(ctx, job, 3, "bad.jpg", b"\xff\xd8\xff\xe0 not really a jpeg".to_vec()).await;
    match stage.handle(ctx, input(&bad)).await {
        Err(StageError::Permanent(reason)) => assert!(reason.contains("jpeg"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_at_once_agree_on_persons() {
    let Some(engine) = engine() else { return };
    let env = StageEnv::new();
    let ctx = &env.ctx;
    // Two stages (two workers' caches) over the same storage and coordination.
    let a = FaceStage::new(engine.clone(), PersonConfig::default(), Limits::default());
    let b = FaceStage::new(engine, PersonConfig::default(), Limits::default());
    let t = tasks(ctx, &["salley_1.jpg", "salley_2.jpg", "simm_1.jpg", "simm_2.jpg"]).await;
    // Two different men reach the two workers at once, then their second photos do, the other
    // way round. (The race on the gallery itself is forced in `gallery.rs`'s unit tests.)
    let (r0, r2) = tokio::join!(a.handle(ctx, input(&t[0])), b.handle(ctx, input(&t[2])));
    let (r3, r1) = tokio::join!(a.handle(ctx, input(&t[3])), b.handle(ctx, input(&t[1])));
    let person = |r: Result<Vec<Effect>, StageError>| annotations(&r.expect("handle")).faces[0].person;
    let (p0, p1, p2, p3) = (person(r0), person(r1), person(r2), person(r3));
    assert_ne!(p0, p2, "two men handled concurrently are two persons");
    assert_eq!(p0, p1, "each man keeps his person across workers");
    assert_eq!(p2, p3);
    let mut ids = vec![p0.expect("id"), p2.expect("id")];
    ids.sort_unstable();
    assert_eq!(ids, vec![1, 2], "ids are dense from 1");
}

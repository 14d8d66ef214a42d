//! The OCR engine and stage on the committed fixtures (`tests/fixtures/ocr`), with the real
//! models, on the in-memory backends. (The route ingest → ocr runs in the workspace tests,
//! `tests/routes`.)
//!
//! ```sh
//! eval "$(models/fetch.sh)"
//! cargo test -p sightline-ocr --features models --test stage
//! ```
//!
//! Without the `models` feature the tests skip (with a message) when the models cannot be
//! loaded; with it, missing models fail them.

use std::sync::{Arc, OnceLock};

use sightline_imaging::Limits;
use sightline_messages::ImageTask;
use sightline_messages::annotations::OcrOut;
use sightline_ocr::cv::Bgr;
use sightline_ocr::{EngineOptions, Ocr, OcrConfig, OcrEngine};
use sightline_runtime::{Ctx, Stage, StageError};
use sightline_test_support::{Item, StageEnv, engine_once, finished_annotation, input};
use uuid::Uuid;

fn fixture(name: &str) -> Vec<u8> {
    sightline_test_support::fixture(format!("ocr/{name}"))
}

fn engine() -> Option<Arc<OcrEngine>> {
    static ENGINE: OnceLock<Option<Arc<OcrEngine>>> = OnceLock::new();
    let load = || OcrEngine::from_env(&EngineOptions::default(), OcrConfig::default());
    engine_once(&ENGINE, load, "ocr", "models", cfg!(feature = "models"))
}

#[test]
fn reads_the_fixture_lines_exactly() {
    let Some(engine) = engine() else { return };
    let truth: serde_json::Value = serde_json::from_slice(&fixture("truth.json")).expect("truth");
    for (name, lines) in truth.as_object().expect("object") {
        let (out, _) = engine.read_bytes(&fixture(name), Some(name), &Limits::default()).expect("read");
        let got: Vec<&str> = out.lines.iter().map(|l| l.text.as_str()).collect();
        let want: Vec<&str> = lines.as_array().expect("lines").iter().map(|l| l.as_str().expect("line")).collect();
        assert_eq!(got, want, "{name}");
        assert!(out.lines.iter().all(|l| l.score > 0.9), "{name}: {:?}", out.lines);
    }
}

#[test]
fn the_price_poster_gives_structured_prices() {
    let Some(engine) = engine() else { return };
    let (out, _) =
        engine.read_bytes(&fixture("ch_en_num.jpg"), Some("ch_en_num.jpg"), &Limits::default()).expect("read");
    let got: Vec<(f64, Option<&str>, Option<&str>, bool)> =
        out.prices.iter().map(|p| (p.amount, p.currency.as_deref(), p.label.as_deref(), p.from)).collect();
    assert_eq!(
        got,
        vec![
            (10.0, Some("CNY"), Some("日常价"), true),
            (10.0, Some("CNY"), Some("日常价"), true),
            (5.8, Some("CNY"), Some("券后价"), true),
        ],
        "{:?}",
        out.lines
    );
    // reading order: the banner first, the guarantee lines last
    assert_eq!(out.lines.first().map(|l| l.text.as_str()), Some("正品促销"));
    assert!(out.lines.iter().any(|l| l.text == "惊喜福利不容错过"));
}

#[test]
fn no_text_tiny_and_odd_shapes_are_not_errors() {
    let Some(engine) = engine() else { return };
    let melon = sightline_test_support::fixture("sample/Honeydew-Melon/img003.jpg");
    let (out, _) = engine.read_bytes(&melon, Some("melon.jpg"), &Limits::default()).expect("read");
    assert!(out.lines.is_empty() && out.prices.is_empty(), "{out:?}");
    let white = |w: usize, h: usize| Bgr { width: w, height: h, data: vec![255; w * h * 3] };
    for (w, h) in [(1, 1), (8, 6), (2000, 30), (30, 2000), (3000, 4), (4500, 3000)] {
        let (lines, _) = engine.recognize(&white(w, h)).expect("recognize");
        assert!(lines.is_empty(), "{w}x{h}: {lines:?}");
    }
}

#[test]
fn a_huge_image_is_scaled_down_and_boxes_come_back_in_its_pixels() {
    let Some(engine) = engine() else { return };
    let bytes = fixture("helloworld.jpg");
    let small = sightline_ocr::decode(&bytes, Some("helloworld.jpg"), &Limits::default()).expect("decode");
    // 12x the line on a white page 3072 wide: scaled to 2000 before detection
    let big = sightline_ocr::cv::resize_linear(&small, small.width * 12, small.height * 12);
    let mut page = Bgr { width: big.width, height: big.height * 3, data: vec![255; big.width * big.height * 9] };
    let off = big.height * big.width * 3;
    page.data[off..off + big.data.len()].copy_from_slice(&big.data);
    let (lines, _) = engine.recognize(&page).expect("recognize");
    assert_eq!(lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(), vec!["Hello world!你好世界"]);
    // the box (expanded by the detector's unclip on the white margin) is centred on the strip
    let ys: Vec<f32> = lines[0].bbox.iter().map(|p| p[1]).collect();
    let centre = ys.iter().sum::<f32>() / 4.0;
    let (top, bottom) = (big.height as f32, 2.0 * big.height as f32);
    assert!(centre > top && centre < bottom, "{ys:?} not centred on {top}..{bottom}");
    assert!(lines[0].bbox.iter().all(|p| p[0] >= 0.0 && p[0] <= page.width as f32), "{:?}", lines[0].bbox);
}

/// Stores `bytes` as the image `name` of `job`, addressed to OCR.
async fn task(ctx: &Ctx, job: Uuid, name: &str, bytes: Vec<u8>) -> ImageTask {
    let route = ["ingest", "ocr"];
    Item { job, item: 0, collection: "default", name, route: &route }.store(ctx, bytes).await
}

#[tokio::test]
async fn the_handler_is_idempotent_and_dead_letters_corrupt_images() {
    let Some(engine) = engine() else { return };
    let env = StageEnv::new();
    let ctx = &env.ctx;
    let stage = Ocr::with_engine(engine, Limits::default());
    let t = task(ctx, Uuid::new_v4(), "helloworld.jpg", fixture("helloworld.jpg")).await;
    let first: OcrOut = finished_annotation(&stage.handle(ctx, input(&t)).await.expect("handle"));
    let again: OcrOut = finished_annotation(&stage.handle(ctx, input(&t)).await.expect("handle again"));
    assert_eq!(first, again);
    assert_eq!(first.lines[0].text, "Hello world!你好世界");
    assert_ne!(first.lines[0].bbox, [[0.0; 2]; 4], "the line has its box");
    assert!(first.prices.is_empty());

    let bad = task(ctx, t.job_id, "bad.jpg", b"\xff\xd8\xff\xe0 not really a jpeg".to_vec()).await;
    match stage.handle(ctx, input(&bad)).await {
        Err(StageError::Permanent(reason)) => assert!(reason.contains("jpeg"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

//! The person detector's decoding against the Python reference (`models/convert_nanodet.py`,
//! written by `models/make_reference.py` into `tests/fixtures/models/nanodet-g.persons.json`):
//! the raw outputs of the candidate cells of a real frame, and the people the reference keeps.

use std::path::PathBuf;

use serde_json::Value;
use sightline_vision::people::{BINS, CANVAS, CLASSES, PersonConfig, STRIDES, decode, finish, plan};

fn fixture() -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models/nanodet-g.persons.json");
    serde_json::from_str(&std::fs::read_to_string(&p).expect("read the reference")).expect("parse the reference")
}

fn f(v: &Value) -> f64 {
    v.as_f64().expect("a number")
}

#[test]
fn decoding_and_nms_match_the_python_reference() {
    let r = fixture();
    let (w, h) = (f(&r["image"]["width"]) as u32, f(&r["image"]["height"]) as u32);
    // Rebuild the model's outputs: every cell 0 (no person) except the reference's candidates.
    let cells = STRIDES.map(|s| (CANVAS / s) as usize * (CANVAS / s) as usize);
    let mut scores: Vec<Vec<f32>> = cells.iter().map(|c| vec![0.0; c * CLASSES]).collect();
    let mut boxes: Vec<Vec<f32>> = cells.iter().map(|c| vec![0.0; c * 4 * BINS]).collect();
    for c in r["candidates"].as_array().expect("candidates") {
        let g = STRIDES.iter().position(|&s| f64::from(s) == f(&c["stride"])).expect("a stride");
        let cell = f(&c["cell"]) as usize;
        scores[g][cell * CLASSES] = f(&c["score"]) as f32;
        let logits: Vec<f32> = c["logits"].as_array().expect("logits").iter().map(|x| f(x) as f32).collect();
        assert_eq!(logits.len(), 4 * BINS);
        boxes[g][cell * 4 * BINS..(cell + 1) * 4 * BINS].copy_from_slice(&logits);
    }
    // The reference keeps scores strictly above 0.35 and suppresses at IoU > 0.5 only.
    let cfg = PersonConfig { score_threshold: 0.35, nms_iou: 0.5, tiles: 0, ..Default::default() };
    let pass = plan(w, h, &cfg)[0];
    let cands = decode([&scores[0], &scores[1], &scores[2]], [&boxes[0], &boxes[1], &boxes[2]], &pass, &cfg);
    assert_eq!(cands.len(), r["candidates"].as_array().map_or(0, Vec::len), "every candidate cell decodes");
    let got = finish(cands, w, h, &cfg);
    let want = r["persons"].as_array().expect("persons");
    assert_eq!(got.len(), want.len(), "people kept");
    for (p, q) in got.iter().zip(want) {
        let b = &q["image_box"];
        let (x0, y0, x1, y1) = (f(&b[0]), f(&b[1]), f(&b[2]), f(&b[3]));
        let d = [
            (f64::from(p.bbox.x) - x0).abs(),
            (f64::from(p.bbox.y) - y0).abs(),
            (f64::from(p.bbox.x + p.bbox.w) - x1).abs(),
            (f64::from(p.bbox.y + p.bbox.h) - y1).abs(),
        ];
        // f32 arithmetic here against the reference's f64: well under a hundredth of a pixel.
        assert!(d.iter().all(|e| *e < 0.01), "{p:?} vs {b}: {d:?}");
        assert!((f64::from(p.score) - f(&q["score"])).abs() < 1e-5);
    }
}

//! The OCR stage end to end: a job routed `ingest,ocr` through an ingest worker and an OCR
//! worker process on the real services; each record carries `annotations.ocr` with the lines
//! (text, score, four-corner box) in reading order and the price-tag fields. The OCR worker
//! needs the models (`models/fetch.sh`; `tests/run.sh` fetches them).

use sightline_tests::{Services, Worker, annotation_of, copy_fixtures, fixture_path};

#[test]
fn text_and_prices_flow_through_an_ocr_worker() {
    let services = Services::start();
    let dir = services.scratch.path().join("ocr-input");
    copy_fixtures("ocr", &["helloworld.jpg", "20457890_2399557098.jpg", "ch_en_num.jpg"], &dir);
    // A photo without text: no lines, not an error.
    std::fs::copy(fixture_path("sample/Honeydew-Melon/img003.jpg"), dir.join("melon.jpg")).expect("copy sample");

    let _ingest = Worker::start(&services, "ingest", &[]);
    let ocr = Worker::start(&services, "ocr", &[("PREFETCH", "2")]);
    let (job, out) = services.submit_and_wait(&[dir.to_str().expect("utf8"), "--route", "ingest,ocr"], 300);
    assert_eq!(out["status"]["outcomes"]["ok"].as_u64(), Some(4), "{out}\n{}", ocr.log_text());

    let records = services.records(&job);
    assert_eq!(records.len(), 4);
    let ocr_of = |name: &str| annotation_of(&records, name, "ocr");
    let texts = |v: &serde_json::Value| -> Vec<String> {
        v["lines"].as_array().expect("lines").iter().map(|l| l["text"].as_str().expect("text").to_owned()).collect()
    };

    let hello = ocr_of("helloworld.jpg");
    assert_eq!(texts(&hello), vec!["Hello world!你好世界"], "{hello}");
    let line = &hello["lines"][0];
    assert!(line["score"].as_f64().is_some_and(|s| s > 0.9 && s <= 1.0), "{line}");
    let corners = line["box"].as_array().expect("box");
    assert_eq!(corners.len(), 4, "{line}");
    for c in corners {
        let (x, y) = (c[0].as_f64().expect("x"), c[1].as_f64().expect("y"));
        assert!((0.0..=256.0).contains(&x) && (0.0..=32.0).contains(&y), "corner {c} outside the 256x32 image");
    }
    assert_eq!(texts(&ocr_of("20457890_2399557098.jpg")), vec!["就会哈哈大笑。3.0"]);

    let poster = ocr_of("ch_en_num.jpg");
    assert!(texts(&poster).len() >= 10, "{poster}");
    let prices: Vec<(f64, String, String)> = poster["prices"]
        .as_array()
        .expect("prices")
        .iter()
        .map(|p| {
            (
                p["amount"].as_f64().expect("amount"),
                p["currency"].as_str().unwrap_or("").to_owned(),
                p["label"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        prices,
        vec![
            (10.0, "CNY".into(), "日常价".into()),
            (10.0, "CNY".into(), "日常价".into()),
            (5.8, "CNY".into(), "券后价".into()),
        ],
        "{poster}"
    );
    assert!(poster["prices"].as_array().expect("prices").iter().all(|p| p["from"] == true), "{poster}");

    assert_eq!(ocr_of("melon.jpg")["lines"], serde_json::json!([]));
    // Nothing was dead-lettered.
    let dlq = services.sightline_json(&["dlq", "list", "ocr", "--json"]);
    assert_eq!(dlq.as_array().map(Vec::len), Some(0), "{dlq}");
}

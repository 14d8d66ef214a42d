//! `sightline train` on the sample collections (`tests/fixtures/sample`, three products, one
//! folder each), then `sightline search --model` with the head it wrote: the folder holds a
//! loadable head and its manifest, the loss fell, and the search answers through the head and
//! names its version. Runs the real embedding model (skipped without `SIGHTLINE_MODELS` unless
//! the `models` feature is on).

mod common;

use std::process::Command;

use common::{models_available, repo};
use sightline_embed::head::Head;

#[test]
fn a_head_trained_on_the_sample_serves_search_with_its_version() {
    if !models_available("a_head_trained_on_the_sample_serves_search_with_its_version") {
        return;
    }
    let sample = repo().join("tests/fixtures/sample");
    let dir = tempfile::tempdir().expect("tmp");
    let model = dir.path().join("head");
    let out = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["train", "--views", "2", "--epochs", "20", "--dim", "16", "--seed", "3", "--photos"])
        .arg(&sample)
        .arg("--out")
        .arg(&model)
        .output()
        .expect("run sightline train");
    assert!(out.status.success(), "train failed: {}", String::from_utf8_lossy(&out.stderr));

    let (head, manifest) = Head::load(&model).expect("a loadable head");
    assert_eq!((manifest.input, manifest.output, manifest.classes), (sightline_embed::DIM, 16, 3));
    assert_eq!(manifest.seed, 3);
    assert_eq!(manifest.version, sightline_embed::head::version_of(&head.to_bytes()), "the version is the parameters'");
    assert_eq!(manifest.losses.len(), 20);
    assert!(manifest.losses[19] < manifest.losses[0], "the loss fell: {:?}", manifest.losses);
    assert_eq!(manifest.samples % 2, 0, "two views per photo");
    let report = std::fs::read_to_string(model.join("report.html")).expect("report.html");
    assert!(report.contains("<polyline") && report.contains(&manifest.version), "the loss curve and the version");

    // Search with it: one catalogue image per product, two other photos each as queries.
    let (catalog, queries) = (dir.path().join("catalog"), dir.path().join("queries"));
    std::fs::create_dir_all(&catalog).expect("mkdir");
    std::fs::create_dir_all(&queries).expect("mkdir");
    for (product, item, qs) in [
        ("Tropicana-Apple-Juice", "img001.jpg", ["img002.jpg", "img003.jpg"]),
        ("Honeydew-Melon", "img003.jpg", ["img006.jpg", "img007.jpg"]),
        ("Alpro-Shelf-Soy-Milk", "img000.jpg", ["img002.jpg", "img003.jpg"]),
    ] {
        std::fs::copy(sample.join(product).join(item), catalog.join(format!("{product}.jpg"))).expect("copy");
        for q in qs {
            std::fs::copy(sample.join(product).join(q), queries.join(format!("{product}_{q}"))).expect("copy");
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["search", "--no-ocr", "--k", "3", "--json", "--model"])
        .arg(&model)
        .arg("--catalog")
        .arg(&catalog)
        .arg("--queries")
        .arg(&queries)
        .output()
        .expect("run sightline search");
    assert!(out.status.success(), "search failed: {}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(doc["model"]["version"], manifest.version.as_str(), "the answer names the head's version");
    let results = doc["results"].as_array().expect("results");
    assert_eq!(results.len(), 6);
    let mut right = 0;
    for r in results {
        let query = r["query"].as_str().expect("query");
        let first = r["matches"][0]["item"].as_str().expect("a match");
        right += usize::from(first.split('.').next() == query.split('_').next());
    }
    // Chance is 2 of 6. The search embeds the queries' detect crops, which the head (trained
    // on whole photos of three folders that include some non-product shots) finds harder than
    // its training views: 4 of 6 when this was written.
    assert!(right >= 3, "{right} of 6 found their product first: {results:?}");
}

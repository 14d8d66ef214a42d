//! `sightline search --logo` on the sample collections: the logo catalogue is two logos cut by
//! hand from one photo each (`tests/fixtures/logos`, boxes in its `LICENSES.md`), the queries
//! are shop photos of those products (`tests/fixtures/sample`) and a melon without a logo.
//!
//! The model tests run the real models: `eval "$(models/fetch.sh)"` first (`tests/run.sh`
//! does). Without `SIGHTLINE_MODELS` they are skipped, unless the `models` feature is on, which
//! makes missing models a failure.

mod common;

use std::path::{Path, PathBuf};

use common::{models_available, repo};

use serde_json::Value;

/// (query file in `tests/fixtures/sample`, its brand: `None` for no logo).
const QUERIES: [(&str, Option<&str>); 8] = [
    ("Alpro-Shelf-Soy-Milk/img000.jpg", Some("Alpro")),
    ("Alpro-Shelf-Soy-Milk/img003.jpg", Some("Alpro")),
    ("Alpro-Shelf-Soy-Milk/img009.jpg", Some("Alpro")),
    ("Honeydew-Melon/img006.jpg", None),
    ("Tropicana-Apple-Juice/img001.jpg", Some("Tropicana")),
    ("Tropicana-Apple-Juice/img003.jpg", Some("Tropicana")),
    // Pomegranates (a noise photo of the Tropicana collection): no logo.
    ("Tropicana-Apple-Juice/img004.jpg", None),
    ("Tropicana-Apple-Juice/img010.jpg", Some("Tropicana")),
];

fn layout(root: &Path) -> PathBuf {
    let queries = root.join("queries");
    std::fs::create_dir_all(&queries).expect("mkdir queries");
    for (q, _) in QUERIES {
        std::fs::copy(repo().join("tests/fixtures/sample").join(q), queries.join(q.replace('/', "_")))
            .expect("copy query");
    }
    queries
}

/// Searches the two-logo catalogue for the laid-out queries with EXTRA flags and checks it
/// answered every query; None (the test skips) when the models are missing.
fn search_logos(test: &str, extra: &[&str]) -> Option<Vec<Value>> {
    if !models_available(test) {
        return None;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let queries = layout(dir.path());
    let (code, results, stderr) =
        common::run_search(&["--logo", "--k", "5"], &repo().join("tests/fixtures/logos"), &queries, extra);
    assert_eq!(code, 0, "exit code; stderr:\n{stderr}");
    assert_eq!(results.len(), QUERIES.len(), "one object per query:\n{results:#?}");
    Some(results)
}

#[test]
fn logo_search_finds_the_brand_of_a_shop_photo() {
    let Some(results) = search_logos("logo_search_finds_the_brand_of_a_shop_photo", &[]) else {
        return;
    };
    let mut best_with_logo = f64::MAX;
    let mut best_without: f64 = 0.0;
    for (r, (q, brand)) in results.iter().zip(QUERIES) {
        assert_eq!(r["query"], q.replace('/', "_"), "queries in file-name order");
        let matches = r["matches"].as_array().expect("matches");
        assert_eq!(matches.len(), 2, "{q}: one match per brand (two brands):\n{r:#}");
        let brands: Vec<&str> = matches.iter().map(|m| m["brand"].as_str().expect("brand")).collect();
        let scores: Vec<f64> = matches.iter().map(|m| m["score"].as_f64().expect("score")).collect();
        assert!(scores[0] >= scores[1], "{q}: best first: {scores:?}");
        assert_eq!(matches[0]["item"], format!("{}.png", brands[0]), "{q}: the brand's logo file");
        let bbox: Vec<u64> = matches[0]["box"].as_array().expect("box").iter().filter_map(Value::as_u64).collect();
        assert!(bbox.len() == 4 && bbox[0] + bbox[2] <= 348 && bbox[1] + bbox[3] <= 348, "{q}: a box inside: {bbox:?}");
        match brand {
            Some(b) => {
                assert_eq!(brands[0], b, "{q}: its brand first:\n{r:#}");
                best_with_logo = best_with_logo.min(scores[0]);
            }
            None => best_without = f64::max(best_without, scores[0]),
        }
    }
    // The photo the Tropicana logo was cut from finds it in a text region around the logo.
    let m = &results[4]["matches"][0];
    assert_eq!(m["region"], "text", "{m:#}");
    let b: Vec<u64> = m["box"].as_array().expect("box").iter().filter_map(Value::as_u64).collect();
    let (logo_x, logo_y, logo_w, logo_h) = (100, 225, 90, 25);
    assert!(
        b[0] <= logo_x && b[1] <= logo_y && b[0] + b[2] >= logo_x + logo_w && b[1] + b[3] >= logo_y + logo_h,
        "the matching region {b:?} holds the logo"
    );
    // Measured (OCR on): the branded photos' best 0.75-1.04, the melon and the pomegranates 0.18
    // and 0.17: a photo without a logo stays below every logo found.
    assert!(best_without < best_with_logo, "no-logo best {best_without} against logos' worst {best_with_logo}");
}

#[test]
fn logo_search_without_ocr_scores_the_look_alone() {
    let Some(results) = search_logos("logo_search_without_ocr_scores_the_look_alone", &["--no-ocr"]) else {
        return;
    };
    let (mut with_logo, mut without) = (f64::MAX, 0.0f64);
    for (r, (q, brand)) in results.iter().zip(QUERIES) {
        let m = &r["matches"][0];
        assert_eq!(m["text"], 0.0, "{q}: no OCR: {m:#}");
        assert_eq!(m["score"], m["visual"], "{q}: the score is the cosine alone: {m:#}");
        let score = m["score"].as_f64().expect("score");
        match brand {
            Some(_) => with_logo = with_logo.min(score),
            None => without = without.max(score),
        }
    }
    // Measured: the branded photos' best cosine 0.37-0.55 (some region looks like a logo), the
    // melon and the pomegranates 0.18 and 0.17. Which brand comes first is NOT asserted: on
    // looks alone the three Alpro photos find Alpro but the three Tropicana photos rank Alpro
    // first too (ImageNet features tell "a logo" from "no logo" better than one logo from
    // another; docs/logos.md measures it on 93 shop photos).
    assert!(without < 0.25 && with_logo > 0.3, "no logo: {without}, logos: {with_logo}");
}

#[test]
fn logo_search_refuses_an_empty_catalogue_before_loading_models() {
    common::assert_refuses_empty_catalogue(&["--logo", "--k", "5"]);
}

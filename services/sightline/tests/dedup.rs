//! `sightline dedup`'s run over a folder ([`run_folder`]: the ingest and dedup stages in the
//! embedded mode) on the committed sample: every repost is found, and nothing else.

use std::collections::{BTreeMap, BTreeSet};

use sightline::embedded::dedup::{DUPLICATE_KINDS, run_folder};
use sightline_dedup::DedupConfig;
use sightline_test_support::sample;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_folder_finds_its_reposts_and_nothing_else() {
    let report = run_folder(&sample(), DedupConfig::default(), |_| {}).await.expect("run");
    let truth = std::fs::read_to_string(sample().join("truth.csv")).expect("truth");
    let mut expected_dups = BTreeMap::new();
    let mut images = BTreeSet::new();
    for line in truth.lines().skip(1).filter(|l| !l.is_empty()) {
        let c: Vec<&str> = line.split(',').collect();
        images.insert(format!("{}/{}", c[0], c[1]));
        if !c[3].is_empty() {
            expected_dups.insert(format!("{}/{}", c[0], c[1]), format!("{}/{}", c[0], c[3]));
        }
    }
    let rows: BTreeMap<&str, _> = report.rows.iter().map(|r| (r.file.as_str(), r)).collect();
    for image in &images {
        let row = rows.get(image.as_str()).unwrap_or_else(|| panic!("no row for {image}"));
        assert_ne!(row.kind, "failed", "{image}: {:?}", report.failed.get(image));
    }
    // The repost and its original are in one group, whichever of them came first.
    for (dup, original) in &expected_dups {
        assert_eq!(rows[dup.as_str()].group, rows[original.as_str()].group, "{dup} should be with {original}");
    }
    let flagged: BTreeSet<&str> =
        report.rows.iter().filter(|r| DUPLICATE_KINDS.contains(&r.kind.as_str())).map(|r| r.file.as_str()).collect();
    assert_eq!(flagged.len(), expected_dups.len(), "only the reposts are duplicates: {flagged:?}");
    // dup0 is byte-identical to its original: exact, distance 0, whoever won.
    for coll in ["Alpro-Shelf-Soy-Milk", "Honeydew-Melon", "Tropicana-Apple-Juice"] {
        let dup0 = format!("{coll}/dup0.jpg");
        let copy = [dup0.as_str(), expected_dups[&dup0].as_str()].into_iter().find(|f| !rows[f].kind.is_empty());
        let copy = rows[copy.expect("one of the pair is the copy")];
        assert_eq!((copy.kind.as_str(), copy.distance), ("exact", Some(0)));
    }
    // The folder's other files are not images: one row each, failed, with the reason.
    for other in ["truth.csv", "LICENSES.md"] {
        assert_eq!(rows[other].kind, "failed");
        assert!(report.failed[other].contains("not an image"), "{:?}", report.failed[other]);
    }
    let csv = report.to_csv();
    assert!(csv.starts_with("file,group,original,kind,distance\n"));
    assert_eq!(csv.lines().count(), report.rows.len() + 1);
    assert_eq!(report.rows.len(), images.len() + 2);
}

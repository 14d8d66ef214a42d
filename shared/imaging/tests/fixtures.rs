//! Every file in `tests/fixtures/bad` is accepted or rejected as `expected.csv` says, with a
//! reason containing the expected keyword; every sample image is valid.

use std::path::PathBuf;

use sightline_imaging::{Limits, validate};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

#[test]
fn bad_inputs_are_rejected_with_clear_reasons() {
    let dir = fixtures().join("bad");
    let expected = std::fs::read_to_string(dir.join("expected.csv")).expect("expected.csv");
    let mut checked = 0;
    for line in expected.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split(',').collect();
        let (file, valid, keyword) = (cols[0], cols[1] == "true", cols.get(2).copied().unwrap_or(""));
        let bytes = std::fs::read(dir.join(file)).expect("read fixture");
        let result = validate(&bytes, Some(file), &Limits::default());
        match (valid, result) {
            (true, Ok(_)) => {}
            (true, Err(e)) => panic!("{file} should be valid, got: {e}"),
            (false, Ok(p)) => panic!("{file} should be rejected, accepted as {p:?}"),
            (false, Err(e)) => {
                let msg = e.to_string().to_lowercase();
                assert!(msg.contains(keyword), "{file}: reason {msg:?} lacks {keyword:?}");
            }
        }
        checked += 1;
    }
    assert!(checked >= 15, "checked only {checked} fixtures");
}

#[test]
fn every_sample_image_is_valid() {
    let root = fixtures().join("sample");
    let mut n = 0;
    for coll in std::fs::read_dir(&root).expect("sample dir") {
        let coll = coll.expect("entry").path();
        if !coll.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&coll).expect("collection") {
            let path = f.expect("entry").path();
            let bytes = std::fs::read(&path).expect("read");
            let p = validate(&bytes, path.file_name().and_then(|n| n.to_str()), &Limits::default())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(p.format, "jpeg");
            n += 1;
        }
    }
    assert_eq!(n, 48);
}

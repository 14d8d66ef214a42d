//! The dedup stage end to end: an ingest worker and two dedup worker processes racing on a job
//! full of copies (byte copies, lossless and lossy re-encodes, half-size, brighter) on the real
//! services. Every group gets exactly one original and every copy points to it; a second job
//! naming the same `dedup.scope` finds every image of the first.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageFormat};
use sightline_tests::{Services, Worker, repo};

/// One picture per product: copies of different pictures must never be grouped.
const PICTURES: [&str; 3] =
    ["Honeydew-Melon/img006.jpg", "Alpro-Shelf-Soy-Milk/img004.jpg", "Tropicana-Apple-Juice/img005.jpg"];

fn jpeg(img: &DynamicImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(&DynamicImage::ImageRgb8(img.to_rgb8()))
        .expect("encode jpeg");
    out
}

/// Writes the copies of each picture into `dir/shop`; returns file name -> picture index.
fn write_copies(dir: &Path) -> BTreeMap<String, usize> {
    let shop = dir.join("shop");
    std::fs::create_dir_all(&shop).expect("mkdir");
    let mut group = BTreeMap::new();
    for (p, picture) in PICTURES.iter().enumerate() {
        let bytes = std::fs::read(repo().join("tests/fixtures/sample").join(picture)).expect("fixture");
        let img = image::load_from_memory(&bytes).expect("decode fixture");
        let mut png = Vec::new();
        img.write_to(&mut Cursor::new(&mut png), ImageFormat::Png).expect("png");
        let half = img.resize_exact(img.width() / 2, img.height() / 2, image::imageops::FilterType::Triangle);
        let brighter = DynamicImage::ImageRgb8(image::imageops::colorops::brighten(&img.to_rgb8(), 25));
        let mirrored = DynamicImage::ImageRgb8(image::imageops::flip_horizontal(&img.to_rgb8()));
        let copies = [
            ("a-orig.jpg", bytes.clone()),
            ("b-bytes.jpg", bytes.clone()),
            ("c-bytes.jpg", bytes),
            ("d-lossless.png", png),
            ("e-q40.jpg", jpeg(&img, 40)),
            ("f-half.jpg", jpeg(&half, 90)),
            ("g-brighter.jpg", jpeg(&brighter, 90)),
            // Found by the Redis index's lookup of the mirror hash.
            ("h-mirrored.jpg", jpeg(&mirrored, 90)),
        ];
        for (name, data) in copies {
            let file = format!("p{p}-{name}");
            std::fs::write(shop.join(&file), data).expect("write copy");
            group.insert(format!("shop/{file}"), p);
        }
    }
    group
}

fn submit_dedup(services: &Services, dir: &Path, scope: &str) -> (String, serde_json::Value) {
    let option = format!("dedup.scope={scope}");
    let out = services.sightline_json(&[
        "submit",
        "dedup",
        dir.to_str().expect("utf8"),
        "--option",
        &option,
        "--wait",
        "--json",
        "--timeout-secs",
        "240",
    ]);
    let job = out["job"].as_str().expect("job").to_owned();
    let records = services.sightline_json(&["results", &job, "--json"]);
    (job, records)
}

#[test]
fn two_dedup_replicas_racing_on_copies_keep_exactly_one_original_per_group() {
    let services = Services::start();
    let dir = services.scratch.path().join("dedup-input");
    let group = write_copies(&dir);
    let _ingest = Worker::start(&services, "ingest", &[("PREFETCH", "8")]);
    let dedup_a = Worker::start(&services, "dedup", &[("PREFETCH", "8")]);
    let dedup_b = Worker::start(&services, "dedup", &[("PREFETCH", "8")]);
    let scope = format!("e2e-{}", uuid::Uuid::new_v4().simple());

    let (job, records) = submit_dedup(&services, &dir, &scope);
    let records = records.as_array().expect("records");
    assert_eq!(records.len(), group.len(), "one record per file");
    let mut originals: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for r in records {
        let name = r["name"].as_str().expect("name").to_owned();
        let d = &r["annotations"]["dedup"];
        assert_eq!(r["stage"], "dedup", "{r}");
        match d["status"].as_str() {
            Some("unique") => {
                assert_eq!(r["outcome"], "ok", "{r}");
                originals.entry(group[&name]).or_default().push(name);
            }
            Some("duplicate") => assert_eq!(r["outcome"], "duplicate", "{r}"),
            _ => panic!("no dedup decision: {r}"),
        }
    }
    // Exactly one original per picture...
    assert_eq!(originals.len(), PICTURES.len(), "{originals:?}");
    for (p, names) in &originals {
        assert_eq!(names.len(), 1, "picture {p}: originals {names:?}");
    }
    // ...and every copy names its own picture's original, never another copy.
    for r in records {
        let name = r["name"].as_str().expect("name");
        let d = &r["annotations"]["dedup"];
        if d["status"] == "duplicate" {
            assert_eq!(d["of"].as_str(), Some(originals[&group[name]][0].as_str()), "{r}");
            assert!(d.get("of_job").is_none(), "original in the same job: {r}");
        }
    }
    // The three byte-identical files of a picture: when one of them is the original, the others
    // are its exact copies; otherwise all three follow the same decision (a byte copy of a near
    // duplicate of R is a near duplicate of R at the same distance).
    for p in 0..PICTURES.len() {
        let same_bytes: Vec<&serde_json::Value> = ["a-orig", "b-bytes", "c-bytes"]
            .iter()
            .map(|n| {
                let name = format!("shop/p{p}-{n}.jpg");
                records.iter().find(|r| r["name"] == name.as_str()).expect("record")
            })
            .collect();
        let original_among_them = same_bytes.iter().any(|r| r["annotations"]["dedup"]["status"] == "unique");
        let copies: Vec<&serde_json::Value> =
            same_bytes.iter().map(|r| &r["annotations"]["dedup"]).filter(|d| d["status"] == "duplicate").collect();
        if original_among_them {
            assert!(copies.iter().all(|d| d["kind"] == "exact" && d["distance"] == 0), "{copies:?}");
        } else {
            assert!(
                copies.windows(2).all(|w| w[0]["kind"] == w[1]["kind"] && w[0]["distance"] == w[1]["distance"]),
                "{copies:?}"
            );
        }
    }
    // Every copy handled exactly once across the two replicas (counters settle just after the
    // job's tally, so give them a moment).
    let handled = |w: &Worker| {
        w.metrics()
            .lines()
            .filter(|l| l.starts_with("sightline_messages_total{stage=\"dedup\",outcome=\"ok\"}"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut seen = (0.0, 0.0);
    while std::time::Instant::now() < deadline {
        seen = (handled(&dedup_a), handled(&dedup_b));
        if seen.0 + seen.1 >= group.len() as f64 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(seen.0 + seen.1, group.len() as f64, "handled across the replicas: {seen:?}");
    let dlq = services.sightline_json(&["dlq", "list", "dedup", "--json"]);
    assert_eq!(dlq.as_array().map(Vec::len), Some(0), "{dlq}");

    // The same files in a second job naming the same scope: all duplicates of the first job.
    let (_, again) = submit_dedup(&services, &dir, &scope);
    for r in again.as_array().expect("records") {
        assert_eq!(r["outcome"], "duplicate", "{r}");
        assert_eq!(r["annotations"]["dedup"]["of_job"].as_str(), Some(job.as_str()), "{r}");
    }
}

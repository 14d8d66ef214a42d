//! Helpers shared by the component and integration tests.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::sync::Arc;

use image::{DynamicImage, ImageFormat};
use sightline_coord::Coord;
use sightline_dedup::{Decision, Dedup, DedupConfig};
use sightline_messages::ImageTask;
use sightline_runtime::{Ctx, StageError};
use sightline_test_support::{Item, ctx_in, fixture};
use uuid::Uuid;

/// Reads a photo of the committed sample (`tests/fixtures/sample`).
pub fn sample_photo(rel: &str) -> Vec<u8> {
    fixture(format!("sample/{rel}"))
}

/// Stores `bytes` content-addressed and makes the task dedup would receive for them.
pub async fn task(ctx: &Ctx, job: Uuid, item: u64, collection: &str, name: &str, bytes: Vec<u8>) -> ImageTask {
    let route = ["ingest", "dedup", "embed"];
    Item { job, item, collection, name, route: &route }.store(ctx, bytes).await
}

/// The tasks of [`copies`] of a sample photo in a new job, image `i` for the `i`-th copy, named
/// by transform (the original first).
pub async fn copy_tasks(ctx: &Ctx, collection: &str, photo: &str) -> Vec<ImageTask> {
    let job = Uuid::new_v4();
    let mut tasks = Vec::new();
    for (i, (name, bytes)) in copies(&sample_photo(photo)).into_iter().enumerate() {
        tasks.push(task(ctx, job, i as u64, collection, name, bytes).await);
    }
    tasks
}

/// Encodes an image in `format` (JPEG at `quality`).
pub fn encode(img: &DynamicImage, format: ImageFormat, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    if format == ImageFormat::Jpeg {
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
            .encode_image(&DynamicImage::ImageRgb8(img.to_rgb8()))
            .expect("encode jpeg");
    } else {
        img.write_to(&mut Cursor::new(&mut out), format).expect("encode");
    }
    out
}

/// Decodes a fixture.
pub fn decode(bytes: &[u8]) -> DynamicImage {
    image::load_from_memory(bytes).expect("decode fixture")
}

/// Copies of one picture under the transforms dedup must catch, named by transform.
pub fn copies(original: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let img = decode(original);
    let (w, h) = (img.width(), img.height());
    let half = img.resize_exact(w / 2, h / 2, image::imageops::FilterType::Triangle);
    let brighter = DynamicImage::ImageRgb8(image::imageops::colorops::brighten(&img.to_rgb8(), 25));
    let mirrored = DynamicImage::ImageRgb8(image::imageops::flip_horizontal(&img.to_rgb8()));
    vec![
        ("orig", original.to_vec()),
        ("exact", original.to_vec()),
        ("png", encode(&img, ImageFormat::Png, 0)),
        ("bmp", encode(&img, ImageFormat::Bmp, 0)),
        ("jpeg_q100", encode(&img, ImageFormat::Jpeg, 100)),
        ("jpeg_q40", encode(&img, ImageFormat::Jpeg, 40)),
        ("half", encode(&half, ImageFormat::Jpeg, 90)),
        ("brighter", encode(&brighter, ImageFormat::Jpeg, 90)),
        ("mirrored", encode(&mirrored, ImageFormat::Jpeg, 90)),
    ]
}

/// Two dedup instances, each with its own coordination client (`coords`) over one store, every copy of several pictures
/// handled at once in a shuffled order: exactly one original per picture.
pub async fn race(coords: [Arc<dyn Coord>; 2], rounds: usize) {
    let dir = tempfile::tempdir().expect("tmp");
    let ctxs = coords.map(|c| ctx_in(dir.path(), c));
    let ctx = &ctxs[0];
    let job = Uuid::new_v4();
    let pictures = ["Honeydew-Melon/img006.jpg", "Alpro-Shelf-Soy-Milk/img004.jpg", "Tropicana-Apple-Juice/img005.jpg"];
    let mut tasks = Vec::new();
    for (p, picture) in pictures.iter().enumerate() {
        for (c, (name, bytes)) in copies(&sample_photo(picture)).into_iter().enumerate() {
            let item = (p * 100 + c) as u64;
            for round in 0..rounds {
                // Several rounds: the same copy delivered again concurrently, as on redelivery.
                let _ = round;
                tasks.push((p, task(ctx, job, item, "shop", &format!("{p}-{name}"), bytes.clone()).await));
            }
        }
    }
    // A fixed shuffle, so failures reproduce.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for i in (1..tasks.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        tasks.swap(i, (state % (i as u64 + 1)) as usize);
    }
    // Keys in a shared Redis should not outlive the test by a month.
    let config = DedupConfig { retention: std::time::Duration::from_secs(600), ..DedupConfig::default() };
    let replicas =
        [Arc::new(Dedup::new(config.clone()).expect("config")), Arc::new(Dedup::new(config).expect("config"))];
    let handles: Vec<_> = tasks
        .into_iter()
        .enumerate()
        .map(|(i, (p, t))| {
            let (dedup, ctx) = (replicas[i % 2].clone(), ctxs[i % 2].clone());
            tokio::spawn(async move {
                // A copy whose original has not decided yet is retried, as the runner would.
                loop {
                    match dedup.decide(&ctx, &t).await {
                        Ok(d) => return (p, t.item, t.name, d),
                        Err(StageError::Transient(_)) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                        Err(e) => panic!("{}: {e}", t.name),
                    }
                }
            })
        })
        .collect();
    let mut by_picture: BTreeMap<usize, Vec<(u64, String, Decision)>> = BTreeMap::new();
    for h in handles {
        let (p, item, name, d) = h.await.expect("join");
        by_picture.entry(p).or_default().push((item, name, d));
    }
    for (p, decided) in by_picture {
        let originals: BTreeSet<u64> =
            decided.iter().filter(|(_, _, d)| matches!(d, Decision::Unique { .. })).map(|(i, _, _)| *i).collect();
        assert_eq!(originals.len(), 1, "picture {p}: originals {originals:?}");
        let original = *originals.iter().next().expect("one");
        for (item, name, d) in &decided {
            if let Decision::Duplicate { of_item, .. } = d {
                assert_eq!(*of_item, original, "picture {p}: {name} points elsewhere");
                assert_ne!(*item, original, "picture {p}: the original was also called a duplicate");
            }
        }
    }
}

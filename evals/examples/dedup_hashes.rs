//! The measurement behind the choice of perceptual hash (docs/dedup.md, "Choosing the hash").
//!
//! For every candidate hash it prints, on `shared/data/neardup`, the distance of each
//! transformed copy to its original and the smallest distance between different pictures
//! (the `distinct` photos of the same products included), then the recall per transform at
//! the largest threshold that calls no two different pictures duplicates. It also measures
//! how far a JPEG re-save at quality 100 is from the PNG of the same pixels.
//!
//! `cargo run --release -p sightline-evals --example dedup_hashes -- ../shared/data/neardup`

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::PathBuf;

use image::{DynamicImage, ImageFormat};
use image_hasher::{HashAlg, Hasher, HasherConfig};
use sightline_imaging::phash::{
    PHASH_SIDE, THUMB_MAX_SIDE, content_box, gray_thumbnail, gray_thumbnail_fit, hamming, perceptual_hash, phash,
    pixel_hash, rgb_thumbnail,
};
use sightline_imaging::{Limits, decode};

type HashFn = Box<dyn Fn(&DynamicImage) -> u64>;

fn to_u64(bytes: &[u8]) -> u64 {
    bytes.iter().take(8).fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// The 256-pixel grayscale thumbnail with its uniform frame trimmed, as the stage hashes it.
fn trimmed(img: &DynamicImage) -> DynamicImage {
    let t = gray_thumbnail_fit(img, THUMB_MAX_SIDE);
    let (x, y, w, h) = content_box(&t);
    DynamicImage::ImageLuma8(image::imageops::crop_imm(&t, x, y, w, h).to_image())
}

/// An 8x8 image_hasher hasher with algorithm `alg`, after a DCT when `dct`, resizing with a
/// triangle filter.
fn image_hasher(alg: HashAlg, dct: bool) -> Hasher {
    let mut cfg =
        HasherConfig::new().hash_size(8, 8).hash_alg(alg).resize_filter(image::imageops::FilterType::Triangle);
    if dct {
        cfg = cfg.preproc_dct();
    }
    cfg.to_hasher()
}

fn candidates() -> Vec<(&'static str, HashFn)> {
    let trimmed_hasher = |alg: HashAlg, dct: bool| {
        let h = image_hasher(alg, dct);
        Box::new(move |img: &DynamicImage| to_u64(h.hash_image(&trimmed(img)).as_bytes())) as HashFn
    };
    let hasher = |alg: HashAlg, dct: bool| {
        let h = image_hasher(alg, dct);
        Box::new(move |img: &DynamicImage| {
            // image_hasher on the 224² thumbnail, never the full image (NOTES.md).
            let thumb = DynamicImage::ImageRgb8(rgb_thumbnail(img, 224, 224));
            to_u64(h.hash_image(&thumb).as_bytes())
        }) as HashFn
    };
    vec![
        ("sightline perceptual_hash (trimmed frame)", Box::new(perceptual_hash)),
        ("image_hasher Gradient (dHash), trimmed", trimmed_hasher(HashAlg::Gradient, false)),
        ("image_hasher Median+DCT, trimmed", trimmed_hasher(HashAlg::Median, true)),
        (
            "sightline-phash (32² gray, DCT 8x8, AC median)",
            Box::new(|img: &DynamicImage| phash(&gray_thumbnail(img, PHASH_SIDE, PHASH_SIDE))),
        ),
        (
            "sightline-phash via 224² thumb",
            Box::new(|img: &DynamicImage| {
                let t = DynamicImage::ImageRgb8(rgb_thumbnail(img, 224, 224));
                phash(&gray_thumbnail(&t, PHASH_SIDE, PHASH_SIDE))
            }),
        ),
        ("image_hasher Mean (aHash)", hasher(HashAlg::Mean, false)),
        ("image_hasher Gradient (dHash)", hasher(HashAlg::Gradient, false)),
        ("image_hasher DoubleGradient", hasher(HashAlg::DoubleGradient, false)),
        ("image_hasher Blockhash", hasher(HashAlg::Blockhash, false)),
        ("image_hasher Mean+DCT", hasher(HashAlg::Mean, true)),
        ("image_hasher Median+DCT", hasher(HashAlg::Median, true)),
    ]
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let data = PathBuf::from(args.next().unwrap_or_else(|| "../shared/data/neardup".into()));
    // Optional folders of other pictures: every pair across them counts as different pictures.
    let mut background = Vec::new();
    for dir in args {
        let mut files: Vec<_> = std::fs::read_dir(&dir)?.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        for f in files {
            let bytes = std::fs::read(&f)?;
            if let Ok((_, img)) = decode(&bytes, None, &Limits::default()) {
                background.push((f.display().to_string(), img));
            }
        }
    }
    let truth = std::fs::read_to_string(data.join("truth.csv"))?;
    let mut rows = Vec::new();
    for line in truth.lines().skip(1).filter(|l| !l.is_empty()) {
        let c: Vec<&str> = line.split(',').collect();
        let bytes = std::fs::read(data.join("images").join(c[0]))?;
        let (_, img) = decode(&bytes, Some(c[0]), &Limits::default())?;
        rows.push((c[0].to_owned(), c[1].to_owned(), c[2].to_owned(), img));
    }
    for (name, f) in candidates() {
        let hashes: Vec<u64> = rows.iter().map(|r| f(&r.3)).collect();
        let orig: BTreeMap<&str, u64> =
            rows.iter().zip(&hashes).filter(|(r, _)| r.2 == "orig").map(|(r, h)| (r.1.as_str(), *h)).collect();
        let mut per: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for (r, h) in rows.iter().zip(&hashes) {
            if let Some(o) = orig.get(r.1.as_str()).filter(|_| r.2 != "orig") {
                per.entry(r.2.as_str()).or_default().push(hamming(*h, *o));
            }
        }
        // Smallest distance between files of different groups (distinct rows are their own group).
        let mut cross = u32::MAX;
        let mut distinct_min = u32::MAX;
        for i in 0..rows.len() {
            for j in i + 1..rows.len() {
                if rows[i].1 != rows[j].1 {
                    let d = hamming(hashes[i], hashes[j]);
                    cross = cross.min(d);
                    if rows[i].2 == "distinct" || rows[j].2 == "distinct" {
                        distinct_min = distinct_min.min(d);
                    }
                }
            }
        }
        let t = cross.saturating_sub(1);
        if !background.is_empty() {
            let bh: Vec<u64> = background.iter().map(|b| f(&b.1)).collect();
            let mut hist = [0usize; 17];
            let mut closest = (u32::MAX, 0, 0);
            for i in 0..bh.len() {
                for j in i + 1..bh.len() {
                    let d = hamming(bh[i], bh[j]);
                    if (d as usize) < hist.len() {
                        hist[d as usize] += 1;
                    }
                    if d < closest.0 {
                        closest = (d, i, j);
                    }
                }
            }
            let pairs = bh.len() * (bh.len() - 1) / 2;
            let cumulative: Vec<String> =
                (0..hist.len()).map(|d| format!("<={d}:{}", hist[..=d].iter().sum::<usize>())).collect();
            println!(
                "\n-- {name}: {} background images, {pairs} pairs; pairs within distance {}",
                bh.len(),
                cumulative.join(" ")
            );
            if closest.0 != u32::MAX {
                println!("   closest pair at {}: {} / {}", closest.0, background[closest.1].0, background[closest.2].0);
            }
        }
        println!(
            "\n== {name}: different pictures >= {cross} bits apart (distinct photos >= {distinct_min}); safe threshold {t}"
        );
        for (transform, ds) in &per {
            let mut s = ds.clone();
            s.sort_unstable();
            let found = s.iter().filter(|d| **d <= t).count();
            let at: Vec<String> =
                [3, 4, 5, 6, 8, 10].iter().map(|k| format!("{k}:{}", s.iter().filter(|d| **d <= *k).count())).collect();
            println!(
                "  {transform:<11} median {:>2} p90 {:>2} max {:>2}  found at t={t}: {found}/{}  (found at t= {})",
                s[s.len() / 2],
                s[s.len() * 9 / 10],
                s[s.len() - 1],
                s.len(),
                at.join(" ")
            );
        }
    }

    println!("\n== PNG vs JPEG quality 100 of the same pixels (image crate encoders)");
    for r in rows.iter().filter(|r| r.2 == "orig").take(10) {
        let rgb = DynamicImage::ImageRgb8(r.3.to_rgb8());
        let mut png = Vec::new();
        rgb.write_to(&mut Cursor::new(&mut png), ImageFormat::Png)?;
        let mut jpg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpg, 100).encode_image(&rgb)?;
        let (_, a) = decode(&png, None, &Limits::default())?;
        let (_, b) = decode(&jpg, None, &Limits::default())?;
        let (a8, b8) = (a.to_rgb8(), b.to_rgb8());
        let diffs: Vec<u32> = a8.as_raw().iter().zip(b8.as_raw()).map(|(x, y)| u32::from(x.abs_diff(*y))).collect();
        let max = diffs.iter().max().copied().unwrap_or(0);
        let mean = diffs.iter().map(|d| f64::from(*d)).sum::<f64>() / diffs.len() as f64;
        let ha = phash(&gray_thumbnail(&a, PHASH_SIDE, PHASH_SIDE));
        let hb = phash(&gray_thumbnail(&b, PHASH_SIDE, PHASH_SIDE));
        println!(
            "  {}: pixels equal {}, max |diff| {max}, mean {mean:.2}, phash distance {}",
            r.0,
            pixel_hash(&a) == pixel_hash(&b),
            hamming(ha, hb)
        );
    }
    Ok(())
}

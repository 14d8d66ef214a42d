//! A corpus of hostile inputs, generated from a seed (nothing of it is committed): truncated and
//! bit-flipped images of every format the pipeline reads, decompression bombs by declared size
//! and by deflate ratio, empty and one-byte files, extreme aspect ratios, 16-bit, palette,
//! grey+alpha and animated images, JPEGs with absurd EXIF orientation and oversized segments,
//! polyglots (ZIP, HTML and script behind image magic bytes), odd and long file names.
//!
//! Each case says whether it is a valid image (it must then succeed) or not (it must fail with a
//! reason); cases made by random damage (`truncated`, `bitflip`) may go either way.

use std::io::Cursor;

use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, LumaA, Rgb, Rgba};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What a case must end as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A valid image: must succeed.
    Valid,
    /// Not a usable image: must fail, with a reason.
    Invalid,
    /// Random damage: either, but never a crash, a hang or a lost item.
    Either,
}

/// One hostile input.
#[derive(Debug, Clone)]
pub struct Case {
    /// Its file name (unique in the corpus).
    pub name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// The family it belongs to (`truncated`, `bomb-declared`...).
    pub family: &'static str,
    /// What it must end as.
    pub expect: Expect,
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

fn noise_rgb(rng: &mut StdRng, w: u32, h: u32) -> DynamicImage {
    let img = ImageBuffer::from_fn(w, h, |x, y| {
        let v = rng.random::<u8>();
        Rgb([v, (x * 7) as u8, (y * 5) as u8])
    });
    DynamicImage::ImageRgb8(img)
}

/// A PNG chunk: length, type, data, CRC.
fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc_input = kind.to_vec();
    crc_input.extend_from_slice(data);
    out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A PNG whose header declares `w` × `h` pixels, with a tiny (stored, uncompressed) zlib stream.
fn png_declaring(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    out.extend(png_chunk(b"IHDR", &ihdr));
    // zlib header, one final stored block of 4 bytes, adler32 of them.
    let mut idat = vec![0x78, 0x01, 0x01, 0x04, 0x00, 0xFB, 0xFF, 0, 0, 0, 0];
    idat.extend_from_slice(&[0x00, 0x04, 0x00, 0x01]);
    out.extend(png_chunk(b"IDAT", &idat));
    out.extend(png_chunk(b"IEND", &[]));
    out
}

/// A JPEG with an APP1 Exif segment whose orientation tag is `orientation`, inserted after SOI.
fn jpeg_with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    // TIFF header (big endian), one IFD with one entry: 0x0112 SHORT 1 orientation.
    let mut tiff = b"MM\x00\x2A\x00\x00\x00\x08".to_vec();
    tiff.extend_from_slice(&1u16.to_be_bytes());
    tiff.extend_from_slice(&0x0112u16.to_be_bytes());
    tiff.extend_from_slice(&3u16.to_be_bytes());
    tiff.extend_from_slice(&1u32.to_be_bytes());
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_be_bytes());
    let mut payload = b"Exif\x00\x00".to_vec();
    payload.extend(tiff);
    insert_segment(jpeg, 0xE1, &payload)
}

/// `jpeg` with an APPn segment (`marker`) of `payload` right after SOI.
fn insert_segment(jpeg: &[u8], marker: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// `n` cases from `seed`, built from the valid images `seeds` (the committed fixtures) and from
/// images made here. The families take turns, so any prefix covers all of them.
pub fn corpus(seed: u64, n: usize, seeds: &[(String, Vec<u8>)]) -> Vec<Case> {
    assert!(!seeds.is_empty(), "seed images");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n);
    // Made once: 67 MB of pixels to encode.
    let mut deflate_bomb: Option<Vec<u8>> = None;
    let mut i = 0usize;
    while out.len() < n {
        let (seed_name, seed_bytes) = &seeds[rng.random_range(0..seeds.len())];
        let ext = seed_name.rsplit('.').next().unwrap_or("bin").to_owned();
        let tag = format!("{:05}", out.len());
        let case = match i % 16 {
            0 => {
                let cut = rng.random_range(1..seed_bytes.len().max(2));
                Case {
                    name: format!("{tag}-truncated.{ext}"),
                    bytes: seed_bytes[..cut].to_vec(),
                    family: "truncated",
                    expect: Expect::Either,
                }
            }
            1 => {
                let mut b = seed_bytes.clone();
                for _ in 0..rng.random_range(1..32) {
                    let at = rng.random_range(0..b.len());
                    b[at] ^= 1 << rng.random_range(0..8);
                }
                Case { name: format!("{tag}-bitflip.{ext}"), bytes: b, family: "bitflip", expect: Expect::Either }
            }
            2 => {
                let len = rng.random_range(0..2usize);
                let bytes = if len == 0 { Vec::new() } else { vec![0xFF] };
                Case { name: format!("{tag}-tiny.jpg"), bytes, family: "empty-or-one-byte", expect: Expect::Invalid }
            }
            3 => {
                let side = [100_000u32, 1_000_000, 65_535, 40_000][rng.random_range(0..4)];
                Case {
                    name: format!("{tag}-declared-{side}.png"),
                    bytes: png_declaring(side, side),
                    family: "bomb-declared",
                    expect: Expect::Invalid,
                }
            }
            4 => {
                // A deflate bomb within no limit: 8,200 × 8,200 grey zeros (67 MP, over the
                // 64 MP limit) compresses to a few tens of KB.
                let bytes = deflate_bomb
                    .get_or_insert_with(|| {
                        let img = DynamicImage::ImageLuma8(ImageBuffer::from_pixel(8200, 8200, Luma([0u8])));
                        encode(&img, ImageFormat::Png)
                    })
                    .clone();
                Case { name: format!("{tag}-deflate-bomb.png"), bytes, family: "bomb-deflate", expect: Expect::Invalid }
            }
            5 => {
                let (w, h) = if rng.random_bool(0.5) { (1, 100_000) } else { (100_000, 1) };
                let img = DynamicImage::ImageLuma8(ImageBuffer::from_fn(w, h, |x, y| Luma([((x + y) % 251) as u8])));
                Case {
                    name: format!("{tag}-line-{w}x{h}.png"),
                    bytes: encode(&img, ImageFormat::Png),
                    family: "extreme-aspect",
                    expect: Expect::Either,
                }
            }
            6 => {
                let img = ImageBuffer::from_fn(64, 48, |x, y| Rgb([(x * 1000) as u16, (y * 1300) as u16, 40_000u16]));
                Case {
                    name: format!("{tag}-16bit.png"),
                    bytes: encode(&DynamicImage::ImageRgb16(img), ImageFormat::Png),
                    family: "16-bit",
                    expect: Expect::Valid,
                }
            }
            7 => {
                let img = ImageBuffer::from_fn(40, 40, |x, y| LumaA([(x * 6) as u8, (y * 6) as u8]));
                Case {
                    name: format!("{tag}-grey-alpha.png"),
                    bytes: encode(&DynamicImage::ImageLumaA8(img), ImageFormat::Png),
                    family: "grey-alpha",
                    expect: Expect::Valid,
                }
            }
            8 => {
                let frames = (0..3).map(|k| {
                    let buf = ImageBuffer::from_fn(32, 32, |x, y| Rgba([(x * 8) as u8, (y * 8) as u8, k * 80, 255]));
                    image::Frame::new(buf)
                });
                let mut out = Vec::new();
                {
                    let mut enc = image::codecs::gif::GifEncoder::new(&mut out);
                    enc.encode_frames(frames).expect("gif");
                }
                Case { name: format!("{tag}-animated.gif"), bytes: out, family: "animated", expect: Expect::Valid }
            }
            9 => {
                let img = noise_rgb(&mut rng, 48, 40);
                Case {
                    name: format!("{tag}-lossless.webp"),
                    bytes: encode(&img, ImageFormat::WebP),
                    family: "webp",
                    expect: Expect::Valid,
                }
            }
            10 => {
                let jpeg = encode(&noise_rgb(&mut rng, 64, 64), ImageFormat::Jpeg);
                let orientation = [0u16, 9, 255, 9999, 65_535][rng.random_range(0..5)];
                Case {
                    name: format!("{tag}-exif-orientation-{orientation}.jpg"),
                    bytes: jpeg_with_exif_orientation(&jpeg, orientation),
                    family: "exif-orientation",
                    expect: Expect::Either,
                }
            }
            11 => {
                let mut jpeg = encode(&noise_rgb(&mut rng, 64, 64), ImageFormat::Jpeg);
                for k in 0..rng.random_range(1..20u8) {
                    jpeg = insert_segment(&jpeg, 0xE2 + (k % 12), &vec![k; 65_533]);
                }
                Case {
                    name: format!("{tag}-huge-segments.jpg"),
                    bytes: jpeg,
                    family: "huge-segments",
                    expect: Expect::Valid,
                }
            }
            12 => {
                let (magic, body): (&[u8], &[u8]) = match rng.random_range(0..4) {
                    0 => (b"\xFF\xD8\xFF\xE0", b"PK\x03\x04\x14\x00\x00\x00\x08\x00payload.exe"),
                    1 => (b"GIF89a", b"<html><script>alert(1)</script></html>"),
                    2 => (b"\x89PNG\r\n\x1a\n", b"<?php system($_GET['c']); ?>"),
                    _ => (b"RIFF\x00\x00\x00\x00WEBP", b"#!/bin/sh\nrm -rf /\n"),
                };
                let mut bytes = magic.to_vec();
                bytes.extend_from_slice(body);
                Case { name: format!("{tag}-polyglot.jpg"), bytes, family: "polyglot", expect: Expect::Invalid }
            }
            13 => {
                let names = ["\u{202e}gpj.exe", "名前 スペース", "..", "CON", "a\u{0}b", "%2e%2e%2fetc"];
                let pick = names[rng.random_range(0..names.len())].replace('\u{0}', "_");
                let img = noise_rgb(&mut rng, 24, 24);
                Case {
                    name: format!("{tag}-{pick}.png"),
                    bytes: encode(&img, ImageFormat::Png),
                    family: "odd-name",
                    expect: Expect::Valid,
                }
            }
            14 => {
                let mut palette = image::RgbImage::new(30, 30);
                for (x, y, p) in palette.enumerate_pixels_mut() {
                    *p = Rgb([((x / 10) * 100) as u8, ((y / 10) * 100) as u8, 7]);
                }
                Case {
                    name: format!("{tag}-{}.bmp", "n".repeat(180)),
                    bytes: encode(&DynamicImage::ImageRgb8(palette), ImageFormat::Bmp),
                    family: "long-name",
                    expect: Expect::Valid,
                }
            }
            _ => {
                // Random bytes behind a valid header of the seed.
                let keep = seed_bytes.len().min(rng.random_range(16..600));
                let mut b = seed_bytes[..keep].to_vec();
                b.extend((0..rng.random_range(0..4096)).map(|_| rng.random::<u8>()));
                Case {
                    name: format!("{tag}-garbage-body.{ext}"),
                    bytes: b,
                    family: "garbage-body",
                    expect: Expect::Either,
                }
            }
        };
        out.push(case);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corpus_is_reproducible_covers_every_family_and_its_names_are_unique() {
        let seeds =
            vec![("a.jpg".to_owned(), encode(&noise_rgb(&mut StdRng::seed_from_u64(1), 32, 32), ImageFormat::Jpeg))];
        let a = corpus(7, 48, &seeds);
        let b = corpus(7, 48, &seeds);
        assert_eq!(a.len(), 48);
        assert!(a.iter().zip(&b).all(|(x, y)| x.name == y.name && x.bytes == y.bytes), "same seed, same corpus");
        let families: std::collections::BTreeSet<_> = a.iter().map(|c| c.family).collect();
        assert_eq!(families.len(), 16, "{families:?}");
        let names: std::collections::BTreeSet<_> = a.iter().map(|c| c.name.clone()).collect();
        assert_eq!(names.len(), a.len());
        // The bombs are small on disk.
        assert!(a.iter().filter(|c| c.family.starts_with("bomb")).all(|c| c.bytes.len() < 1 << 20));
        // The declared-size bomb is refused by the project's own sniffing, before any decoding.
        let declared = a.iter().find(|c| c.family == "bomb-declared").expect("bomb");
        let err = image::load_from_memory(&declared.bytes).err();
        assert!(err.is_some() || declared.bytes.len() < 200);
    }
}

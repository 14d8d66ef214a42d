//! Fingerprints for duplicate detection: a hash of the decoded pixels (exact duplicates
//! whatever the encoding), a small thumbnail made with a fast convolution resize (never the
//! full image through a slow filter), and a 64-bit DCT perceptual hash of that thumbnail
//! (near duplicates, compared by Hamming distance).
//!
//! The perceptual hash is the classic pHash: a 32×32 grayscale thumbnail, the 8×8
//! lowest-frequency block of its 2-D DCT-II, one bit per coefficient set when the coefficient
//! is above the median of the 63 AC coefficients (the DC bit is the mean-brightness bit and
//! is always dropped to a fixed value). It was chosen by measurement against dHash, aHash,
//! blockhash and image_hasher's DCT variants on `shared/data/neardup`: see `docs/dedup.md`.

use fast_image_resize::images::{Image as FirImage, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, GrayImage, RgbImage};
use sha2::{Digest, Sha256};

/// Side of the grayscale thumbnail the perceptual hash is computed on.
pub const PHASH_SIDE: u32 = 32;

/// What duplicate detection needs from one decoded image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// SHA-256 over the canonical pixels (see [`pixel_hash`]), hex.
    pub pixel_sha256: String,
    /// The 64-bit DCT perceptual hash (see [`phash`]).
    pub phash: u64,
    /// The perceptual hash of the image's mirror (left and right swapped), from the same DCT
    /// (see [`phash_pair`]): a mirrored copy's `phash` is near this.
    pub mirror: u64,
    /// Pixel width.
    pub width: u32,
    /// Pixel height.
    pub height: u32,
}

/// Computes the pixel hash and the perceptual hash of a decoded image.
pub fn fingerprint(img: &DynamicImage) -> Fingerprint {
    let (phash, mirror) = perceptual_hashes(img);
    Fingerprint { pixel_sha256: hex::encode(pixel_hash(img)), phash, mirror, width: img.width(), height: img.height() }
}

/// Longest side of the thumbnail the perceptual hash starts from.
pub const THUMB_MAX_SIDE: u32 = 256;

/// The perceptual hash of a decoded image: a grayscale thumbnail of at most
/// [`THUMB_MAX_SIDE`] pixels a side (aspect kept, fast convolution resize), with a uniform
/// frame trimmed off (see [`content_box`]), squeezed to [`PHASH_SIDE`]² and hashed by [`phash`].
pub fn perceptual_hash(img: &DynamicImage) -> u64 {
    perceptual_hashes(img).0
}

/// The perceptual hash of a decoded image and of its mirror, as [`perceptual_hash`] makes the
/// first (see [`phash_pair`]). The frame trim is symmetric, so the mirror's content box is the
/// mirror of the image's.
pub fn perceptual_hashes(img: &DynamicImage) -> (u64, u64) {
    let thumb = gray_thumbnail_fit(img, THUMB_MAX_SIDE);
    let (x, y, w, h) = content_box(&thumb);
    let content =
        if (w, h) == thumb.dimensions() { thumb } else { image::imageops::crop_imm(&thumb, x, y, w, h).to_image() };
    let small = resize_raw(content.as_raw(), w, h, PHASH_SIDE, PHASH_SIDE, PixelType::U8);
    let small =
        GrayImage::from_raw(PHASH_SIDE, PHASH_SIDE, small).unwrap_or_else(|| GrayImage::new(PHASH_SIDE, PHASH_SIDE));
    phash_pair(&small)
}

/// A grayscale thumbnail whose longer side is `max_side` (never enlarged), aspect kept.
pub fn gray_thumbnail_fit(img: &DynamicImage, max_side: u32) -> GrayImage {
    let (w, h) = (img.width().max(1), img.height().max(1));
    let scale = f64::from(max_side) / f64::from(w.max(h));
    let (tw, th) = if scale >= 1.0 {
        (w, h)
    } else {
        (((f64::from(w) * scale).round() as u32).max(1), ((f64::from(h) * scale).round() as u32).max(1))
    };
    gray_thumbnail(img, tw, th)
}

/// Pixels within this many grey levels of a border line's reference value are border.
const BORDER_TOLERANCE: u8 = 10;
/// Share of a line's pixels that must be within tolerance for the line to be border.
const BORDER_SHARE: f32 = 0.98;
/// At most this share of each dimension is trimmed from one side.
const BORDER_MAX_SHARE: f32 = 0.35;

/// The box `(x, y, width, height)` left after trimming a uniform frame (padding, letterbox
/// bars) from each side: lines are trimmed from the outside in while nearly all their pixels
/// are within a few grey levels of the outermost line's median. A copy with a border added
/// then hashes like the original. Returns the whole image when nothing is trimmed.
pub fn content_box(g: &GrayImage) -> (u32, u32, u32, u32) {
    let (w, h) = g.dimensions();
    if w < 8 || h < 8 {
        return (0, 0, w, h);
    }
    let px = |x: u32, y: u32| g.get_pixel(x, y).0[0];
    // How many lines from one side are border; `line(i)` gives the pixels of line i.
    let trim = |len: u32, across: u32, line: &dyn Fn(u32, u32) -> u8| -> u32 {
        let max = (len as f32 * BORDER_MAX_SHARE) as u32;
        let mut first: Vec<u8> = (0..across).map(|j| line(0, j)).collect();
        first.sort_unstable();
        let reference = first[first.len() / 2];
        let needed = (across as f32 * BORDER_SHARE).ceil() as u32;
        let mut n = 0;
        while n < max {
            let close = (0..across).filter(|j| line(n, *j).abs_diff(reference) <= BORDER_TOLERANCE).count() as u32;
            if close < needed {
                break;
            }
            n += 1;
        }
        n
    };
    let top = trim(h, w, &|i, j| px(j, i));
    let bottom = trim(h, w, &|i, j| px(j, h - 1 - i));
    let left = trim(w, h, &|i, j| px(i, j));
    let right = trim(w, h, &|i, j| px(w - 1 - i, j));
    let (cw, ch) = (w - left - right, h - top - bottom);
    if cw < 8 || ch < 8 {
        return (0, 0, w, h);
    }
    (left, top, cw, ch)
}

/// SHA-256 of `"sightline-pixels-v1" ‖ channels ‖ width ‖ height ‖ pixels`, where the pixels
/// are the image as 8-bit RGB, or 8-bit RGBA when any pixel is not fully opaque (so two
/// images that differ only in transparency are not the same picture). Two files whose
/// decoded pixels are identical (PNG and lossless WebP, a JPEG with its metadata stripped)
/// get the same value; a lossy re-encode does not.
pub fn pixel_hash(img: &DynamicImage) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"sightline-pixels-v1");
    let (w, hgt) = (img.width(), img.height());
    let header = |h: &mut Sha256, channels: u8| {
        h.update([channels]);
        h.update(w.to_be_bytes());
        h.update(hgt.to_be_bytes());
    };
    match img {
        DynamicImage::ImageRgb8(rgb) => {
            header(&mut h, 3);
            h.update(rgb.as_raw());
        }
        DynamicImage::ImageLuma8(gray) => {
            header(&mut h, 3);
            // Expanded in blocks: the same bytes as the RGB form without allocating it.
            let mut buf = [0u8; 3 * 4096];
            for chunk in gray.as_raw().chunks(4096) {
                for (i, v) in chunk.iter().enumerate() {
                    buf[3 * i..3 * i + 3].copy_from_slice(&[*v, *v, *v]);
                }
                h.update(&buf[..3 * chunk.len()]);
            }
        }
        other if other.color().has_alpha() => {
            let rgba = other.to_rgba8();
            if rgba.pixels().all(|p| p.0[3] == u8::MAX) {
                header(&mut h, 3);
                for p in rgba.pixels() {
                    h.update(&p.0[..3]);
                }
            } else {
                header(&mut h, 4);
                h.update(rgba.as_raw());
            }
        }
        other => {
            header(&mut h, 3);
            h.update(other.to_rgb8().as_raw());
        }
    }
    h.finalize().into()
}

fn resize_raw(src: &[u8], sw: u32, sh: u32, dw: u32, dh: u32, pixel: PixelType) -> Vec<u8> {
    if (sw, sh) == (dw, dh) {
        return src.to_vec();
    }
    // Only a buffer shorter than sw × sh × channels fails here, which image's types rule out.
    let Ok(src) = ImageRef::new(sw, sh, src, pixel) else {
        return vec![0; (dw * dh) as usize * pixel.size()];
    };
    let mut dst = FirImage::new(dw, dh, pixel);
    // Bilinear convolution with the support scaled by the ratio: an antialiased area filter
    // that costs about 1 ms per source megapixel (against 40-130 ms for Lanczos in `image`).
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    if Resizer::new().resize(&src, &mut dst, &options).is_err() {
        return vec![0; (dw * dh) as usize * pixel.size()];
    }
    dst.into_vec()
}

/// Resizes to `width` × `height` RGB (aspect not kept) with a fast convolution resize.
pub fn rgb_thumbnail(img: &DynamicImage, width: u32, height: u32) -> RgbImage {
    let converted;
    let rgb = match img {
        DynamicImage::ImageRgb8(rgb) => rgb,
        other => {
            converted = other.to_rgb8();
            &converted
        }
    };
    let buf = resize_raw(rgb.as_raw(), rgb.width(), rgb.height(), width, height, PixelType::U8x3);
    RgbImage::from_raw(width, height, buf).unwrap_or_else(|| RgbImage::new(width, height))
}

/// Resizes to `width` × `height` grayscale (aspect not kept; luma by ITU-R BT.601, as
/// Pillow's `convert("L")`) with a fast convolution resize. Colour images are resized first
/// and converted after, so the full-size image is read once.
pub fn gray_thumbnail(img: &DynamicImage, width: u32, height: u32) -> GrayImage {
    if let DynamicImage::ImageLuma8(gray) = img {
        let buf = resize_raw(gray.as_raw(), gray.width(), gray.height(), width, height, PixelType::U8);
        return GrayImage::from_raw(width, height, buf).unwrap_or_else(|| GrayImage::new(width, height));
    }
    to_gray(&rgb_thumbnail(img, width, height))
}

/// BT.601 luma of an RGB image, rounded, in integer arithmetic.
pub fn to_gray(rgb: &RgbImage) -> GrayImage {
    let data = rgb
        .pixels()
        .map(|p| {
            let [r, g, b] = p.0;
            ((u32::from(r) * 299 + u32::from(g) * 587 + u32::from(b) * 114 + 500) / 1000) as u8
        })
        .collect();
    GrayImage::from_raw(rgb.width(), rgb.height(), data).unwrap_or_else(|| GrayImage::new(rgb.width(), rgb.height()))
}

/// The 8×8 lowest frequencies of the orthonormal-free DCT-II of a `n`×`n` block, row-major
/// (`out[8 * v + u]`: `u` horizontal, `v` vertical frequency).
fn low_dct(pixels: &[f32], n: usize) -> [f32; 64] {
    let mut cos = vec![0f32; 8 * n];
    for k in 0..8 {
        for x in 0..n {
            cos[k * n + x] = (std::f32::consts::PI * (2 * x + 1) as f32 * k as f32 / (2 * n) as f32).cos();
        }
    }
    // Rows first (n rows × 8 frequencies), then columns.
    let mut rows = vec![0f32; n * 8];
    for y in 0..n {
        let row = &pixels[y * n..(y + 1) * n];
        for u in 0..8 {
            let c = &cos[u * n..(u + 1) * n];
            rows[y * 8 + u] = row.iter().zip(c).map(|(p, c)| p * c).sum();
        }
    }
    let mut out = [0f32; 64];
    for v in 0..8 {
        let c = &cos[v * n..(v + 1) * n];
        for u in 0..8 {
            out[v * 8 + u] = (0..n).map(|y| rows[y * 8 + u] * c[y]).sum();
        }
    }
    out
}

/// The 64-bit DCT perceptual hash of a square grayscale thumbnail (use [`PHASH_SIDE`]; any
/// size ≥ 8 works). Bit `i` (from the most significant) is coefficient `i` of the 8×8
/// low-frequency block, row-major, above the median of the 63 AC coefficients; bit 0 (DC)
/// is always 0, as brightness is not structure.
pub fn phash(thumb: &GrayImage) -> u64 {
    phash_pair(thumb).0
}

/// [`phash`] of a thumbnail and of its mirror image, from one DCT. Mirroring a row
/// (`x → n − 1 − x`) multiplies its DCT-II coefficient `u` by (−1)^u, so the mirror's
/// coefficients are the image's with the odd horizontal frequencies negated; its median is
/// recomputed (negation moves it). A horizontally flipped copy hashes like the mirror hash of
/// its original, up to resampling.
pub fn phash_pair(thumb: &GrayImage) -> (u64, u64) {
    let n = thumb.width().min(thumb.height()) as usize;
    let pixels: Vec<f32> =
        (0..n * n).map(|i| f32::from(thumb.get_pixel((i % n) as u32, (i / n) as u32).0[0])).collect();
    let coef = low_dct(&pixels, n);
    let mut mirrored = coef;
    for (i, c) in mirrored.iter_mut().enumerate() {
        if i % 8 % 2 == 1 {
            *c = -*c;
        }
    }
    (median_bits(&coef), median_bits(&mirrored))
}

/// Bit `i` (from the most significant) set when AC coefficient `i` is above the median of the 63.
fn median_bits(coef: &[f32; 64]) -> u64 {
    let mut ac: Vec<f32> = coef[1..].to_vec();
    ac.sort_by(f32::total_cmp);
    let median = ac[ac.len() / 2];
    coef.iter().enumerate().skip(1).fold(0u64, |acc, (i, c)| if *c > median { acc | (1u64 << (63 - i)) } else { acc })
}

/// Hamming distance between two 64-bit hashes.
pub fn hamming(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
            // Smooth and at most 200, so a brightness shift never clips.
            image::Rgb([(x * 200 / w) as u8, (y * 200 / h) as u8, ((x + y) * 200 / (w + h)) as u8])
        }))
    }

    #[test]
    fn pixel_hash_ignores_the_storage_layout() {
        let gray = GrayImage::from_fn(5, 3, |x, y| image::Luma([(x * 40 + y) as u8]));
        let as_rgb = DynamicImage::ImageLuma8(gray.clone()).to_rgb8();
        let opaque = DynamicImage::ImageLuma8(gray.clone()).to_rgba8();
        let a = pixel_hash(&DynamicImage::ImageLuma8(gray));
        assert_eq!(a, pixel_hash(&DynamicImage::ImageRgb8(as_rgb)));
        assert_eq!(a, pixel_hash(&DynamicImage::ImageRgba8(opaque.clone())), "opaque alpha is dropped");
        let mut see_through = opaque;
        see_through.get_pixel_mut(0, 0).0[3] = 10;
        assert_ne!(a, pixel_hash(&DynamicImage::ImageRgba8(see_through)), "transparency counts");
    }

    #[test]
    fn pixel_hash_sees_dimensions() {
        let a = DynamicImage::ImageRgb8(RgbImage::new(6, 2));
        let b = DynamicImage::ImageRgb8(RgbImage::new(4, 3));
        assert_ne!(pixel_hash(&a), pixel_hash(&b), "same bytes, other shape");
    }

    /// A real photo (a committed sample fixture): smooth synthetic images make poor pHash tests,
    /// as most of their DCT coefficients are near zero and the median split is arbitrary.
    fn photo() -> DynamicImage {
        let bytes = include_bytes!("../../../tests/fixtures/sample/Honeydew-Melon/img006.jpg");
        image::load_from_memory(bytes).unwrap_or_else(|_| gradient(64, 64))
    }

    #[test]
    fn phash_is_stable_under_rescaling_and_brightness() {
        let img = photo();
        let (w, h) = (img.width(), img.height());
        let a = perceptual_hash(&img);
        let small = DynamicImage::ImageRgb8(rgb_thumbnail(&img, w / 2, h / 2));
        assert!(hamming(a, perceptual_hash(&small)) <= 2, "distance {}", hamming(a, perceptual_hash(&small)));
        let brighter = DynamicImage::ImageRgb8(image::imageops::colorops::brighten(&img.to_rgb8(), 20));
        assert!(hamming(a, perceptual_hash(&brighter)) <= 4, "distance {}", hamming(a, perceptual_hash(&brighter)));
        assert_eq!(a >> 63, 0, "the DC bit is fixed");
        assert_eq!(a.count_ones(), 31, "the median splits the 63 AC bits");
    }

    #[test]
    fn phash_separates_different_pictures() {
        let img = photo();
        let a = perceptual_hash(&img);
        let flipped = DynamicImage::ImageRgb8(image::imageops::flip_vertical(&img.to_rgb8()));
        let b = perceptual_hash(&flipped);
        assert!(hamming(a, b) > 10, "distance {}", hamming(a, b));
    }

    #[test]
    fn the_mirror_hash_is_the_hash_of_the_mirror_image() {
        let img = photo();
        let (a, mirror) = perceptual_hashes(&img);
        assert_eq!(a, perceptual_hash(&img));
        let flipped = DynamicImage::ImageRgb8(image::imageops::flip_horizontal(&img.to_rgb8()));
        let (b, back) = perceptual_hashes(&flipped);
        assert!(hamming(b, mirror) <= 2, "flip vs mirror hash: distance {}", hamming(b, mirror));
        assert!(hamming(back, a) <= 2, "and back: distance {}", hamming(back, a));
        assert!(hamming(a, b) > 10, "a flip is far from the image itself: distance {}", hamming(a, b));
        // Exact on a thumbnail that is already square (no resampling involved).
        let thumb = gray_thumbnail(&img, PHASH_SIDE, PHASH_SIDE);
        let flipped = image::imageops::flip_horizontal(&thumb);
        assert_eq!(phash_pair(&thumb).1, phash(&flipped));
        assert_eq!(phash_pair(&flipped).1, phash(&thumb));
    }

    #[test]
    fn a_uniform_frame_is_trimmed_and_content_is_not() {
        let picture = GrayImage::from_fn(100, 80, |x, y| image::Luma([((x * 7 + y * 13) % 200 + 20) as u8]));
        assert_eq!(content_box(&picture), (0, 0, 100, 80), "textured edges stay");
        let mut framed = GrayImage::from_pixel(130, 100, image::Luma([255]));
        image::imageops::replace(&mut framed, &picture, 15, 10);
        assert_eq!(content_box(&framed), (15, 10, 100, 80));
        let flat = GrayImage::from_pixel(50, 50, image::Luma([9]));
        let (_, _, w, h) = content_box(&flat);
        assert!(w >= 15 && h >= 15, "at most 35 % a side is trimmed: {w}x{h}");
        // Hashes of the framed and unframed picture agree.
        let a = perceptual_hash(&DynamicImage::ImageLuma8(picture));
        let b = perceptual_hash(&DynamicImage::ImageLuma8(framed));
        assert!(hamming(a, b) <= 2, "distance {}", hamming(a, b));
    }

    #[test]
    fn thumbnails_have_the_asked_size() {
        let img = gradient(100, 37);
        assert_eq!(rgb_thumbnail(&img, 24, 24).dimensions(), (24, 24));
        assert_eq!(gray_thumbnail(&DynamicImage::ImageLuma8(GrayImage::new(9, 9)), 32, 32).dimensions(), (32, 32));
    }
}

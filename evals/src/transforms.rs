//! Transformed copies of photos for the near-duplicate evaluation (`dedup_eval --train`): the
//! transforms of issue 16 part 2 and of the Python descriptor study
//! (`evals/dedup/descriptor/study.py`), made with the `image` crate, seeded.
//!
//! Easy: `resize50`, `jpeg_q20`, `blur1.5`, `gray`, `bright130`, `dark70`, `pad_border`
//! (a white, black or light-grey frame of 5-12 % of the short side). Hard: `crop90`
//! (centred), `crop80_95` (random fraction and position), `hflip`, `rot5`, `rot2_10` (random
//! sign, black corners), `aspect` (one axis ×0.75-0.9 or ×1.1-1.33), and `hflip_crop90` (a
//! combination, not a target). Every copy is re-encoded as JPEG q90 (`jpeg_q20` at q20). The
//! study's text and logo overlays need a font renderer and are measured there only.

use image::imageops::{self, FilterType};
use image::{DynamicImage, Rgb, RgbImage};
use sightline_clustering::dpc::SplitMix64;

/// The transforms, easy ones first.
pub const TRANSFORMS: [&str; 14] = [
    "resize50",
    "jpeg_q20",
    "blur1.5",
    "gray",
    "bright130",
    "dark70",
    "pad_border",
    "crop90",
    "crop80_95",
    "hflip",
    "rot5",
    "rot2_10",
    "aspect",
    "hflip_crop90",
];

/// The transforms the issue calls easy (target recall ≥ 0.97); the others are hard (≥ 0.9 for
/// `crop90`, `hflip`, `rot5`).
pub fn is_easy(name: &str) -> bool {
    TRANSFORMS[..7].contains(&name)
}

/// `img` under transform `name`, encoded as JPEG; `None` for an unknown name.
pub fn transformed(img: &DynamicImage, name: &str, rng: &mut SplitMix64) -> Option<Vec<u8>> {
    let rgb = img.to_rgb8();
    let (w, h) = rgb.dimensions();
    let mut between = |lo: f64, hi: f64| lo + (hi - lo) * rng.uniform();
    let out = match name {
        "resize50" => imageops::resize(&rgb, (w / 2).max(1), (h / 2).max(1), FilterType::Triangle),
        "jpeg_q20" => return Some(jpeg(&rgb, 20)),
        "blur1.5" => imageops::blur(&rgb, 1.5),
        "gray" => DynamicImage::ImageLuma8(DynamicImage::ImageRgb8(rgb).to_luma8()).to_rgb8(),
        "bright130" => scale_values(&rgb, 1.3),
        "dark70" => scale_values(&rgb, 0.7),
        "pad_border" => {
            let share = between(0.05, 0.12);
            let colour = [[255u8; 3], [0; 3], [220; 3]][(between(0.0, 3.0) as usize).min(2)];
            let pad = (f64::from(w.min(h)) * share).round() as u32;
            let mut canvas = RgbImage::from_pixel(w + 2 * pad, h + 2 * pad, Rgb(colour));
            imageops::replace(&mut canvas, &rgb, i64::from(pad), i64::from(pad));
            canvas
        }
        "crop90" => crop(&rgb, 0.9, 0.5, 0.5),
        "crop80_95" => {
            let f = between(0.8, 0.95);
            let (x, y) = (between(0.0, 1.0), between(0.0, 1.0));
            crop(&rgb, f, x, y)
        }
        "hflip" => imageops::flip_horizontal(&rgb),
        "rot5" => rotate(&rgb, 5.0),
        "rot2_10" => {
            let degrees = between(2.0, 10.0);
            rotate(&rgb, if between(0.0, 1.0) < 0.5 { -degrees } else { degrees })
        }
        "aspect" => {
            let factor = if between(0.0, 1.0) < 0.5 { between(0.75, 0.9) } else { between(1.1, 1.33) };
            let scaled = |v: u32| ((f64::from(v) * factor).round() as u32).max(1);
            if between(0.0, 1.0) < 0.5 {
                imageops::resize(&rgb, scaled(w), h, FilterType::Triangle)
            } else {
                imageops::resize(&rgb, w, scaled(h), FilterType::Triangle)
            }
        }
        "hflip_crop90" => crop(&imageops::flip_horizontal(&rgb), 0.9, 0.5, 0.5),
        _ => return None,
    };
    Some(jpeg(&out, 90))
}

fn jpeg(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    // Encoding an in-memory RGB buffer into a Vec cannot fail.
    let _ = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality).encode_image(img);
    out
}

fn scale_values(img: &RgbImage, factor: f32) -> RgbImage {
    let mut out = img.clone();
    for p in out.pixels_mut() {
        for c in &mut p.0 {
            *c = (f32::from(*c) * factor).round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// The crop of `fraction` of each side, placed at (`x`, `y`) ∈ [0, 1]² of the free margin.
fn crop(img: &RgbImage, fraction: f64, x: f64, y: f64) -> RgbImage {
    let (w, h) = img.dimensions();
    let (cw, ch) =
        (((f64::from(w) * fraction).round() as u32).max(1), ((f64::from(h) * fraction).round() as u32).max(1));
    let (left, top) = ((f64::from(w - cw) * x).round() as u32, (f64::from(h - ch) * y).round() as u32);
    imageops::crop_imm(img, left, top, cw, ch).to_image()
}

/// Rotation by `degrees` (counter-clockwise) about the centre, same canvas, bilinear, black
/// where the source has no pixel.
fn rotate(img: &RgbImage, degrees: f64) -> RgbImage {
    let (w, h) = img.dimensions();
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (cx, cy) = (f64::from(w) / 2.0, f64::from(h) / 2.0);
    RgbImage::from_fn(w, h, |x, y| {
        let (dx, dy) = (f64::from(x) + 0.5 - cx, f64::from(y) + 0.5 - cy);
        // The source point that lands on (x, y).
        let sx = cos * dx - sin * dy + cx - 0.5;
        let sy = sin * dx + cos * dy + cy - 0.5;
        if sx < 0.0 || sy < 0.0 || sx > f64::from(w - 1) || sy > f64::from(h - 1) {
            return Rgb([0, 0, 0]);
        }
        let (x0, y0) = (sx.floor() as u32, sy.floor() as u32);
        let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
        let (fx, fy) = (sx - f64::from(x0), sy - f64::from(y0));
        let mut out = [0u8; 3];
        for (c, v) in out.iter_mut().enumerate() {
            let at = |x: u32, y: u32| f64::from(img.get_pixel(x, y).0[c]);
            let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
            let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
            *v = (top * (1.0 - fy) + bottom * fy).round() as u8;
        }
        Rgb(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transform_makes_a_jpeg_of_the_expected_shape() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_fn(100, 60, |x, y| Rgb([x as u8, y as u8, 9])));
        let mut rng = SplitMix64(7);
        for name in TRANSFORMS {
            let bytes = transformed(&img, name, &mut rng).expect(name);
            let out = image::load_from_memory(&bytes).expect("a JPEG");
            let (w, h) = (out.width(), out.height());
            match name {
                "resize50" => assert_eq!((w, h), (50, 30)),
                "crop90" | "hflip_crop90" => assert_eq!((w, h), (90, 54)),
                "pad_border" => assert!(w > 100 && h > 60 && w - 100 == h - 60, "{w}x{h}"),
                "aspect" => assert!((w == 100) != (h == 60), "one axis changes: {w}x{h}"),
                "crop80_95" => assert!((80..=95).contains(&w), "{w}"),
                _ => assert_eq!((w, h), (100, 60), "{name}"),
            }
        }
        assert!(transformed(&img, "nope", &mut rng).is_none());
    }

    #[test]
    fn a_rotation_keeps_the_centre_and_blackens_the_corners() {
        let img = RgbImage::from_pixel(64, 64, Rgb([200, 100, 50]));
        let r = rotate(&img, 10.0);
        assert_eq!(r.get_pixel(32, 32).0, [200, 100, 50]);
        assert_eq!(r.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(rotate(&img, 0.0), img, "no rotation, same pixels");
    }
}

//! From a decoded image to the BGR image RapidOCR works on (its `LoadImage`): EXIF orientation
//! applied, grey replicated to three channels, grey + alpha and RGBA flattened the way RapidOCR
//! flattens them (RGBA on white or black, whichever contrasts with the mean luminance of the
//! visible pixels).

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader};

use sightline_vision::cv::Bgr;

/// The EXIF orientation of an encoded image (1 = upright), read from its header only.
pub fn orientation(bytes: &[u8]) -> Option<image::metadata::Orientation> {
    let reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().ok()?;
    let mut decoder = reader.into_decoder().ok()?;
    decoder.orientation().ok()
}

/// Applies the EXIF orientation of `bytes` to `img` (PIL's `ImageOps.exif_transpose`).
pub fn apply_orientation(img: &mut DynamicImage, bytes: &[u8]) {
    if let Some(o) = orientation(bytes) {
        img.apply_orientation(o);
    }
}

/// RapidOCR's `LoadImage.convert_img` for a decoded image.
pub fn to_bgr(img: &DynamicImage) -> Bgr {
    match img {
        DynamicImage::ImageLuma8(g) => gray(g.width(), g.height(), g.as_raw()),
        DynamicImage::ImageLumaA8(_) | DynamicImage::ImageLumaA16(_) => {
            let la = img.to_luma_alpha8();
            gray_alpha(la.width(), la.height(), la.as_raw())
        }
        DynamicImage::ImageLuma16(_) => {
            let g = img.to_luma8();
            gray(g.width(), g.height(), g.as_raw())
        }
        DynamicImage::ImageRgba8(_) | DynamicImage::ImageRgba16(_) | DynamicImage::ImageRgba32F(_) => {
            let rgba = img.to_rgba8();
            rgba_flatten(rgba.width(), rgba.height(), rgba.as_raw())
        }
        _ => Bgr::from_rgb(&img.to_rgb8()),
    }
}

fn gray(w: u32, h: u32, px: &[u8]) -> Bgr {
    let mut data = Vec::with_capacity(px.len() * 3);
    for &v in px {
        data.extend_from_slice(&[v, v, v]);
    }
    Bgr { width: w as usize, height: h as usize, data }
}

/// `cvt_two_to_three`: grey kept where alpha is non-zero, plus `255 - alpha`, saturating.
fn gray_alpha(w: u32, h: u32, px: &[u8]) -> Bgr {
    let mut data = Vec::with_capacity(px.len() / 2 * 3);
    for p in px.chunks_exact(2) {
        let (g, a) = (p[0], p[1]);
        let kept = if a != 0 { g } else { 0 };
        let v = kept.saturating_add(255 - a);
        data.extend_from_slice(&[v, v, v]);
    }
    Bgr { width: w as usize, height: h as usize, data }
}

/// `cvt_four_to_three`: blend on white when the visible pixels are dark on average, else on
/// black; float32 blend, truncated to 8 bits.
fn rgba_flatten(w: u32, h: u32, px: &[u8]) -> Bgr {
    let (mut sum, mut n) = (0f64, 0usize);
    for p in px.chunks_exact(4) {
        if p[3] > 0 {
            sum += 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]);
            n += 1;
        }
    }
    let bg: f32 = if n == 0 || sum / (n as f64) < 128.0 { 255.0 } else { 0.0 };
    let mut data = Vec::with_capacity(px.len() / 4 * 3);
    for p in px.chunks_exact(4) {
        let alpha = f32::from(p[3]) / 255.0;
        let inv = 1.0 - alpha;
        let blend = |c: u8| (f32::from(c) * alpha + bg * inv) as u8;
        data.extend_from_slice(&[blend(p[2]), blend(p[1]), blend(p[0])]);
    }
    Bgr { width: w as usize, height: h as usize, data }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgb_becomes_bgr_and_grey_is_replicated() {
        let rgb = image::RgbImage::from_raw(1, 1, vec![10, 20, 30]).expect("raw");
        assert_eq!(to_bgr(&DynamicImage::ImageRgb8(rgb)).data, vec![30, 20, 10]);
        let g = image::GrayImage::from_raw(2, 1, vec![7, 200]).expect("raw");
        assert_eq!(to_bgr(&DynamicImage::ImageLuma8(g)).data, vec![7, 7, 7, 200, 200, 200]);
    }

    #[test]
    fn dark_text_on_transparency_goes_on_white() {
        // one opaque black pixel, one fully transparent pixel
        let rgba = image::RgbaImage::from_raw(2, 1, vec![0, 0, 0, 255, 9, 9, 9, 0]).expect("raw");
        assert_eq!(to_bgr(&DynamicImage::ImageRgba8(rgba)).data, vec![0, 0, 0, 255, 255, 255]);
        // light text goes on black
        let rgba = image::RgbaImage::from_raw(2, 1, vec![250, 250, 250, 255, 9, 9, 9, 0]).expect("raw");
        assert_eq!(to_bgr(&DynamicImage::ImageRgba8(rgba)).data, vec![250, 250, 250, 0, 0, 0]);
    }

    #[test]
    fn grey_alpha_adds_the_inverse_alpha() {
        let la = image::GrayAlphaImage::from_raw(2, 1, vec![100, 255, 100, 0]).expect("raw");
        assert_eq!(to_bgr(&DynamicImage::ImageLumaA8(la)).data, vec![100, 100, 100, 255, 255, 255]);
    }
}

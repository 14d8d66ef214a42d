//! Cutting integer regions out of images.

use image::RgbImage;

/// The integer region `[x0, x0 + w) x [y0, y0 + h)` of `img`, black where it leaves the image.
pub fn crop_padded(img: &RgbImage, x0: i64, y0: i64, w: u32, h: u32) -> RgbImage {
    let (w, h) = (w.max(1), h.max(1));
    let mut out = RgbImage::new(w, h);
    let (iw, ih) = (i64::from(img.width()), i64::from(img.height()));
    let xs = x0.max(0);
    let xe = (x0 + i64::from(w)).min(iw);
    let ys = y0.max(0);
    let ye = (y0 + i64::from(h)).min(ih);
    if xs >= xe || ys >= ye {
        return out;
    }
    let (src, dst) = (img.as_raw(), &mut *out);
    let len = ((xe - xs) * 3) as usize;
    for y in ys..ye {
        let from = ((y * iw + xs) * 3) as usize;
        let to = (((y - y0) * i64::from(w) + (xs - x0)) * 3) as usize;
        dst[to..to + len].copy_from_slice(&src[from..from + len]);
    }
    out
}

#[cfg(test)]
mod tests {
    use image::Rgb;

    use super::*;

    #[test]
    fn padded_crop() {
        let img = RgbImage::from_pixel(4, 4, Rgb([9, 9, 9]));
        let c = crop_padded(&img, -2, 1, 4, 4);
        assert_eq!(c.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(c.get_pixel(2, 0).0, [9, 9, 9]);
        assert_eq!(c.get_pixel(3, 3).0, [0, 0, 0]);
    }
}

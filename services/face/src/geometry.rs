//! Plane geometry for faces: 2-D similarity transforms fitted to point pairs, and the warps that
//! cut aligned chips out of an image. Boxes, IoU and padded crops are `sightline-vision`'s
//! (re-exported here).
//!
//! Coordinates are continuous pixel coordinates: pixel `(i, j)` covers `[i, i + 1) x [j, j + 1)`,
//! so its centre is `(i + 0.5, j + 0.5)` and a box `[x, y, w, h]` covers exactly the pixels it
//! names when its values are integers.

use image::{Rgb, RgbImage};
use sightline_inference::preprocess::{Filter, resize_rgb};

use crate::FaceError;

pub use sightline_vision::{BoxF, Point, crop_padded};

/// A 2-D similarity transform (rotation, uniform scale, translation):
/// `x' = a x - b y + tx`, `y' = b x + a y + ty`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    /// `scale * cos(angle)`.
    pub a: f32,
    /// `scale * sin(angle)`.
    pub b: f32,
    /// Translation x.
    pub tx: f32,
    /// Translation y.
    pub ty: f32,
}

impl Similarity {
    /// The identity scaled by `s`, then shifted by `(tx, ty)`.
    pub fn scale_shift(s: f32, tx: f32, ty: f32) -> Self {
        Self { a: s, b: 0.0, tx, ty }
    }

    /// Maps a point.
    pub fn apply(&self, p: Point) -> Point {
        [self.a * p[0] - self.b * p[1] + self.tx, self.b * p[0] + self.a * p[1] + self.ty]
    }

    /// The scale factor.
    pub fn scale(&self) -> f32 {
        self.a.hypot(self.b)
    }

    /// The inverse transform (`None` when the scale is zero).
    pub fn inverse(&self) -> Option<Self> {
        let d = self.a * self.a + self.b * self.b;
        if d <= f32::EPSILON {
            return None;
        }
        let (a, b) = (self.a / d, -self.b / d);
        Some(Self { a, b, tx: -(a * self.tx - b * self.ty), ty: -(b * self.tx + a * self.ty) })
    }

    /// The least-squares similarity taking `src[i]` to `dst[i]` (Umeyama's method without
    /// reflection, closed form in 2-D). `None` for fewer than two points or coincident points.
    pub fn fit(src: &[Point], dst: &[Point]) -> Option<Self> {
        let n = src.len().min(dst.len());
        if n < 2 {
            return None;
        }
        let nf = n as f64;
        let mean = |ps: &[Point]| {
            let (sx, sy) = ps[..n].iter().fold((0.0, 0.0), |(x, y), p| (x + f64::from(p[0]), y + f64::from(p[1])));
            (sx / nf, sy / nf)
        };
        let (msx, msy) = mean(src);
        let (mdx, mdy) = mean(dst);
        let (mut sxx, mut dot, mut cross) = (0.0f64, 0.0f64, 0.0f64);
        for (s, d) in src[..n].iter().zip(&dst[..n]) {
            let (sx, sy) = (f64::from(s[0]) - msx, f64::from(s[1]) - msy);
            let (dx, dy) = (f64::from(d[0]) - mdx, f64::from(d[1]) - mdy);
            sxx += sx * sx + sy * sy;
            dot += sx * dx + sy * dy;
            cross += sx * dy - sy * dx;
        }
        if sxx <= 1e-12 {
            return None;
        }
        let (a, b) = (dot / sxx, cross / sxx);
        let tx = mdx - (a * msx - b * msy);
        let ty = mdy - (b * msx + a * msy);
        Some(Self { a: a as f32, b: b as f32, tx: tx as f32, ty: ty as f32 })
    }
}

/// Bilinear sample of `img` at continuous position `(x, y)`; black outside the image.
fn sample(img: &RgbImage, x: f32, y: f32) -> [f32; 3] {
    // Pixel centres sit at i + 0.5.
    let (fx, fy) = (x - 0.5, y - 0.5);
    let (x0, y0) = (fx.floor(), fy.floor());
    let (wx, wy) = (fx - x0, fy - y0);
    let (x0, y0) = (x0 as i64, y0 as i64);
    let (w, h) = (i64::from(img.width()), i64::from(img.height()));
    let px = |xi: i64, yi: i64| -> [f32; 3] {
        if xi < 0 || yi < 0 || xi >= w || yi >= h {
            [0.0; 3]
        } else {
            let p = img.get_pixel(xi as u32, yi as u32).0;
            [f32::from(p[0]), f32::from(p[1]), f32::from(p[2])]
        }
    };
    let (p00, p10, p01, p11) = (px(x0, y0), px(x0 + 1, y0), px(x0, y0 + 1), px(x0 + 1, y0 + 1));
    let mut out = [0.0; 3];
    for c in 0..3 {
        let top = p00[c] + (p10[c] - p00[c]) * wx;
        let bottom = p01[c] + (p11[c] - p01[c]) * wx;
        out[c] = top + (bottom - top) * wy;
    }
    out
}

/// Cuts a `size` x `size` chip out of `img` through `to_chip` (image -> chip coordinates),
/// bilinear, black outside the image. When the chip is more than 1.5 times smaller than the
/// region it covers, the warp runs at an integer multiple of `size` and is then reduced with a
/// box filter, so that small chips average their pixels instead of aliasing.
pub fn warp_chip(img: &RgbImage, to_chip: &Similarity, size: u32) -> Result<RgbImage, FaceError> {
    let scale = to_chip.scale();
    if size == 0 || !scale.is_finite() || scale <= 0.0 {
        return Err(FaceError::Geometry(format!("cannot warp a {size}px chip at scale {scale}")));
    }
    let k = if scale < 1.0 / 1.5 { ((1.0 / scale).ceil() as u32).clamp(1, 8) } else { 1 };
    let big = size * k;
    let scaled = Similarity {
        a: to_chip.a * k as f32,
        b: to_chip.b * k as f32,
        tx: to_chip.tx * k as f32,
        ty: to_chip.ty * k as f32,
    };
    let inv = scaled.inverse().ok_or_else(|| FaceError::Geometry("singular transform".into()))?;
    let mut out = RgbImage::new(big, big);
    for (x, y, p) in out.enumerate_pixels_mut() {
        let src = inv.apply([x as f32 + 0.5, y as f32 + 0.5]);
        let v = sample(img, src[0], src[1]);
        *p = Rgb([
            v[0].round().clamp(0.0, 255.0) as u8,
            v[1].round().clamp(0.0, 255.0) as u8,
            v[2].round().clamp(0.0, 255.0) as u8,
        ]);
    }
    if k == 1 {
        return Ok(out);
    }
    resize_rgb(&out, size, size, Filter::Box).map_err(|e| FaceError::Geometry(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similarity_fit_recovers_a_known_transform() {
        let t = Similarity { a: 0.8, b: 0.3, tx: 5.0, ty: -2.0 };
        let src = [[1.0, 2.0], [10.0, 3.0], [4.0, 9.0], [7.0, 7.0]];
        let dst: Vec<Point> = src.iter().map(|p| t.apply(*p)).collect();
        let f = Similarity::fit(&src, &dst).expect("fit");
        for (x, y) in [(f.a, t.a), (f.b, t.b), (f.tx, t.tx), (f.ty, t.ty)] {
            assert!((x - y).abs() < 1e-4, "{f:?} vs {t:?}");
        }
        let inv = t.inverse().expect("inverse");
        let p = inv.apply(t.apply([3.0, 4.0]));
        assert!((p[0] - 3.0).abs() < 1e-4 && (p[1] - 4.0).abs() < 1e-4);
        assert!(Similarity::fit(&[[1.0, 1.0]], &[[2.0, 2.0]]).is_none());
        assert!(Similarity::fit(&[[1.0, 1.0], [1.0, 1.0]], &[[2.0, 2.0], [3.0, 3.0]]).is_none());
    }

    #[test]
    fn warp_identity_copies_and_fills_black_outside() {
        let img = RgbImage::from_fn(8, 8, |x, y| Rgb([(x * 30) as u8, (y * 30) as u8, 7]));
        let chip = warp_chip(&img, &Similarity::scale_shift(1.0, 0.0, 0.0), 8).expect("warp");
        assert_eq!(chip, img);
        let shifted = warp_chip(&img, &Similarity::scale_shift(1.0, 4.0, 0.0), 8).expect("warp");
        assert_eq!(shifted.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(shifted.get_pixel(4, 3).0, img.get_pixel(0, 3).0);
    }

    #[test]
    fn downscaling_warp_averages() {
        // A fine checkerboard reduced 4x averages to mid-grey instead of aliasing.
        let img = RgbImage::from_fn(64, 64, |x, y| if (x + y) % 2 == 0 { Rgb([255; 3]) } else { Rgb([0; 3]) });
        let chip = warp_chip(&img, &Similarity::scale_shift(0.25, 0.0, 0.0), 16).expect("warp");
        let p = chip.get_pixel(8, 8).0[0];
        assert!((100..=155).contains(&p), "{p}");
    }
}

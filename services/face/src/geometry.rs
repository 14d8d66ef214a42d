//! Plane geometry for faces: boxes, intersection over union, 2-D similarity transforms fitted
//! to point pairs, and the warps that cut aligned chips out of an image.
//!
//! Coordinates are continuous pixel coordinates: pixel `(i, j)` covers `[i, i + 1) x [j, j + 1)`,
//! so its centre is `(i + 0.5, j + 0.5)` and a box `[x, y, w, h]` covers exactly the pixels it
//! names when its values are integers.

use image::{Rgb, RgbImage};
use sightline_inference::preprocess::{Filter, resize_rgb};

use crate::FaceError;

/// A point `[x, y]`.
pub type Point = [f32; 2];

/// An axis-aligned box in pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoxF {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
}

impl BoxF {
    /// A box from its corners.
    pub fn from_corners(x1: f32, y1: f32, x2: f32, y2: f32) -> Self {
        Self { x: x1, y: y1, w: x2 - x1, h: y2 - y1 }
    }

    /// Area (0 for degenerate boxes).
    pub fn area(&self) -> f32 {
        self.w.max(0.0) * self.h.max(0.0)
    }

    /// Area of the intersection with `other`.
    pub fn intersection(&self, other: &BoxF) -> f32 {
        let w = (self.x + self.w).min(other.x + other.w) - self.x.max(other.x);
        let h = (self.y + self.h).min(other.y + other.h) - self.y.max(other.y);
        w.max(0.0) * h.max(0.0)
    }

    /// Intersection over union.
    pub fn iou(&self, other: &BoxF) -> f32 {
        let i = self.intersection(other);
        let u = self.area() + other.area() - i;
        if u > 0.0 { i / u } else { 0.0 }
    }

    /// Intersection over the smaller area: near 1 when one box lies inside the other.
    pub fn overlap_min(&self, other: &BoxF) -> f32 {
        let m = self.area().min(other.area());
        if m > 0.0 { self.intersection(other) / m } else { 0.0 }
    }

    /// The box clipped to a `width` x `height` image.
    pub fn clamp(&self, width: f32, height: f32) -> BoxF {
        let x1 = self.x.clamp(0.0, width);
        let y1 = self.y.clamp(0.0, height);
        let x2 = (self.x + self.w).clamp(0.0, width);
        let y2 = (self.y + self.h).clamp(0.0, height);
        BoxF::from_corners(x1, y1, x2, y2)
    }

    /// Centre point.
    pub fn centre(&self) -> Point {
        [self.x + self.w / 2.0, self.y + self.h / 2.0]
    }
}

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
    use super::*;

    #[test]
    fn iou_and_overlap() {
        let a = BoxF { x: 0.0, y: 0.0, w: 10.0, h: 10.0 };
        let b = BoxF { x: 5.0, y: 0.0, w: 10.0, h: 10.0 };
        assert!((a.iou(&b) - 50.0 / 150.0).abs() < 1e-6);
        let inner = BoxF { x: 2.0, y: 2.0, w: 4.0, h: 4.0 };
        assert!((a.overlap_min(&inner) - 1.0).abs() < 1e-6);
        assert_eq!(a.iou(&BoxF { x: 20.0, y: 20.0, w: 1.0, h: 1.0 }), 0.0);
        let c = BoxF { x: -5.0, y: 2.0, w: 10.0, h: 20.0 }.clamp(8.0, 8.0);
        assert_eq!((c.x, c.y, c.w, c.h), (0.0, 2.0, 5.0, 6.0));
    }

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

    #[test]
    fn padded_crop() {
        let img = RgbImage::from_pixel(4, 4, Rgb([9, 9, 9]));
        let c = crop_padded(&img, -2, 1, 4, 4);
        assert_eq!(c.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(c.get_pixel(2, 0).0, [9, 9, 9]);
        assert_eq!(c.get_pixel(3, 3).0, [0, 0, 0]);
    }
}

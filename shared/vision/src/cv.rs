//! The few image operations the OCR pipeline needs, written to give the same bytes as the
//! OpenCV calls RapidOCR makes (opencv-python-headless 5.0): `cv2.resize` with `INTER_LINEAR`
//! on 8-bit images (OpenCV's two-pass fixed-point bilinear), `cv2.warpPerspective` with
//! `INTER_CUBIC` and `BORDER_REPLICATE` (OpenCV 5's table-free bicubic in float32 with fused
//! multiply-adds), `cv2.copyMakeBorder`, `cv2.rotate` and `np.rot90`.
//!
//! Parity is checked against fixtures produced by OpenCV itself (`tests/fixtures/ocr/cv2.json`,
//! in `tests/cv2_parity.rs`).

/// An 8-bit, 3-channel image in BGR order (OpenCV's layout), row-major, interleaved.
#[derive(Clone, PartialEq, Eq)]
pub struct Bgr {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height * 3` bytes, B, G, R per pixel.
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Bgr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bgr({}x{})", self.width, self.height)
    }
}

impl Bgr {
    /// A black image.
    pub fn new(width: usize, height: usize) -> Self {
        Self { width, height, data: vec![0; width * height * 3] }
    }

    /// From an RGB image (swaps the channels).
    pub fn from_rgb(img: &image::RgbImage) -> Self {
        let (w, h) = img.dimensions();
        let mut data = Vec::with_capacity(w as usize * h as usize * 3);
        for p in img.as_raw().chunks_exact(3) {
            data.extend_from_slice(&[p[2], p[1], p[0]]);
        }
        Self { width: w as usize, height: h as usize, data }
    }

    /// To an RGB image (for debugging and fixtures).
    pub fn to_rgb(&self) -> image::RgbImage {
        let mut out = Vec::with_capacity(self.data.len());
        for p in self.data.chunks_exact(3) {
            out.extend_from_slice(&[p[2], p[1], p[0]]);
        }
        image::RgbImage::from_raw(self.width as u32, self.height as u32, out).unwrap_or_default()
    }

    /// The 3 bytes of pixel (x, y).
    #[inline]
    pub fn px(&self, x: usize, y: usize) -> &[u8] {
        let i = (y * self.width + x) * 3;
        &self.data[i..i + 3]
    }

    fn row(&self, y: usize) -> &[u8] {
        &self.data[y * self.width * 3..(y + 1) * self.width * 3]
    }
}

/// OpenCV's `cvRound` for float32: round half to even.
#[inline]
fn round_even_f32(v: f32) -> i32 {
    v.round_ties_even() as i32
}

/// Fixed-point bits of the resize coefficients (`INTER_RESIZE_COEF_BITS`).
const RESIZE_COEF_SCALE: f32 = 2048.0;

struct Axis {
    /// Source index of the first tap (already clamped for x).
    src: Vec<usize>,
    /// Second tap (clamped).
    src1: Vec<usize>,
    /// The two fixed-point weights.
    w: Vec<(i32, i32)>,
}

/// Coefficients of one axis, as OpenCV's `resizeGeneric_` computes them (`clamp_weights`:
/// x clamps the weight to 0 at the borders, y only clamps the row indices).
fn linear_axis(dst: usize, src: usize, clamp_weights: bool) -> Axis {
    let inv_scale = dst as f64 / src as f64;
    let scale = 1.0 / inv_scale;
    let mut axis = Axis { src: Vec::with_capacity(dst), src1: Vec::with_capacity(dst), w: Vec::with_capacity(dst) };
    let last = src as i64 - 1;
    for d in 0..dst {
        let mut f = ((d as f64 + 0.5) * scale - 0.5) as f32;
        let mut s = f.floor() as i64;
        f -= s as f32;
        if clamp_weights {
            if s < 0 {
                f = 0.0;
                s = 0;
            }
            if s >= last {
                f = 0.0;
                s = last;
            }
        }
        let w0 = round_even_f32((1.0 - f) * RESIZE_COEF_SCALE);
        let w1 = round_even_f32(f * RESIZE_COEF_SCALE);
        axis.src.push(s.clamp(0, last) as usize);
        axis.src1.push((s + 1).clamp(0, last) as usize);
        axis.w.push((w0, w1));
    }
    axis
}

/// `cv2.resize(img, (width, height))` (bilinear, `INTER_LINEAR`), bit-exact with OpenCV on
/// 8-bit images. Exact 2× reductions (which OpenCV routes to `INTER_AREA`) give the same bytes
/// through this path.
pub fn resize_linear(img: &Bgr, width: usize, height: usize) -> Bgr {
    let mut out = Bgr::new(width, height);
    if img.width == 0 || img.height == 0 || width == 0 || height == 0 {
        return out;
    }
    let xs = linear_axis(width, img.width, true);
    let ys = linear_axis(height, img.height, false);
    // Horizontal pass per source row, cached for the two rows in use.
    let hline = |y: usize| -> Vec<i32> {
        let row = img.row(y);
        let mut d = Vec::with_capacity(width * 3);
        for x in 0..width {
            let (a0, a1) = xs.w[x];
            let s0 = xs.src[x] * 3;
            let s1 = xs.src1[x] * 3;
            for c in 0..3 {
                d.push(i32::from(row[s0 + c]) * a0 + i32::from(row[s1 + c]) * a1);
            }
        }
        d
    };
    // Rows are visited in non-decreasing order: keep the (at most two) rows in use.
    let mut slots: Vec<(usize, Vec<i32>)> = Vec::with_capacity(2);
    for (dy, out_row) in out.data.chunks_exact_mut(width * 3).enumerate() {
        let (b0, b1) = ys.w[dy];
        let (y0, y1) = (ys.src[dy], ys.src1[dy]);
        let mut next: Vec<(usize, Vec<i32>)> = Vec::with_capacity(2);
        for y in [y0, y1] {
            if next.iter().any(|(r, _)| *r == y) {
                continue;
            }
            match slots.iter().position(|(r, _)| *r == y) {
                Some(i) => next.push(slots.swap_remove(i)),
                None => next.push((y, hline(y))),
            }
        }
        slots = next;
        let row_of = |y: usize| slots.iter().find(|(r, _)| *r == y).map(|(_, v)| v.as_slice()).unwrap_or(&[]);
        let (r0, r1) = (row_of(y0), row_of(y1));
        for (k, o) in out_row.iter_mut().enumerate() {
            let v = (((b0 * (r0[k] >> 4)) >> 16) + ((b1 * (r1[k] >> 4)) >> 16) + 2) >> 2;
            *o = v.clamp(0, 255) as u8;
        }
    }
    out
}

/// `cv2.copyMakeBorder(img, top, bottom, 0, 0, BORDER_CONSTANT, 0)`: black rows above and below.
pub fn pad_vertical(img: &Bgr, top: usize, bottom: usize) -> Bgr {
    let mut out = Bgr::new(img.width, img.height + top + bottom);
    let start = top * img.width * 3;
    out.data[start..start + img.data.len()].copy_from_slice(&img.data);
    out
}

/// `cv2.rotate(img, cv2.ROTATE_180)`.
pub fn rotate_180(img: &Bgr) -> Bgr {
    let mut data = Vec::with_capacity(img.data.len());
    for p in img.data.chunks_exact(3).rev() {
        data.extend_from_slice(p);
    }
    Bgr { width: img.width, height: img.height, data }
}

/// `np.rot90(img)`: 90° counter-clockwise (the result is `height` wide and `width` tall).
pub fn rot90_ccw(img: &Bgr) -> Bgr {
    let (w, h) = (img.width, img.height);
    let mut out = Bgr::new(h, w);
    for i in 0..w {
        for j in 0..h {
            let s = (j * w + (w - 1 - i)) * 3;
            let d = (i * h + j) * 3;
            out.data[d..d + 3].copy_from_slice(&img.data[s..s + 3]);
        }
    }
    out
}

/// `cv2.getPerspectiveTransform(src, dst)` (8×8 system, OpenCV's LU with partial pivoting):
/// the 3×3 matrix mapping `src` to `dst`, row-major; `None` when singular.
pub fn perspective_transform(src: &[[f32; 2]; 4], dst: &[[f32; 2]; 4]) -> Option<[f64; 9]> {
    let mut a = [[0f64; 8]; 8];
    let mut b = [0f64; 8];
    for i in 0..4 {
        let (sx, sy) = (src[i][0], src[i][1]);
        let (dx, dy) = (dst[i][0], dst[i][1]);
        a[i][0] = f64::from(sx);
        a[i + 4][3] = f64::from(sx);
        a[i][1] = f64::from(sy);
        a[i + 4][4] = f64::from(sy);
        a[i][2] = 1.0;
        a[i + 4][5] = 1.0;
        // OpenCV multiplies the float32 coordinates in float32.
        a[i][6] = f64::from(-sx * dx);
        a[i][7] = f64::from(-sy * dx);
        a[i + 4][6] = f64::from(-sx * dy);
        a[i + 4][7] = f64::from(-sy * dy);
        b[i] = f64::from(dx);
        b[i + 4] = f64::from(dy);
    }
    lu_solve(&mut a, &mut b)?;
    Some([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], 1.0])
}

/// OpenCV's `LUImpl` for one right-hand side (partial pivoting, eps = 100·DBL_EPSILON).
fn lu_solve(a: &mut [[f64; 8]; 8], b: &mut [f64; 8]) -> Option<()> {
    const M: usize = 8;
    let eps = f64::EPSILON * 100.0;
    for i in 0..M {
        let mut k = i;
        for j in i + 1..M {
            if a[j][i].abs() > a[k][i].abs() {
                k = j;
            }
        }
        if a[k][i].abs() < eps {
            return None;
        }
        if k != i {
            a.swap(i, k);
            b.swap(i, k);
        }
        let d = -1.0 / a[i][i];
        for j in i + 1..M {
            let alpha = a[j][i] * d;
            let (upper, lower) = a.split_at_mut(j);
            for (dst, src) in lower[0][i + 1..].iter_mut().zip(&upper[i][i + 1..]) {
                *dst += alpha * src;
            }
            b[j] += alpha * b[i];
        }
    }
    for i in (0..M).rev() {
        let mut s = b[i];
        for k in i + 1..M {
            s -= a[i][k] * b[k];
        }
        b[i] = s / a[i][i];
    }
    Some(())
}

/// `cv::invert` of a 3×3 matrix (the closed form OpenCV uses for DECOMP_LU).
fn invert3(m: &[f64; 9]) -> Option<[f64; 9]> {
    let s = |r: usize, c: usize| m[r * 3 + c];
    let det = s(0, 0) * (s(1, 1) * s(2, 2) - s(1, 2) * s(2, 1)) - s(0, 1) * (s(1, 0) * s(2, 2) - s(1, 2) * s(2, 0))
        + s(0, 2) * (s(1, 0) * s(2, 1) - s(1, 1) * s(2, 0));
    if det == 0.0 {
        return None;
    }
    let d = 1.0 / det;
    Some([
        (s(1, 1) * s(2, 2) - s(1, 2) * s(2, 1)) * d,
        (s(0, 2) * s(2, 1) - s(0, 1) * s(2, 2)) * d,
        (s(0, 1) * s(1, 2) - s(0, 2) * s(1, 1)) * d,
        (s(1, 2) * s(2, 0) - s(1, 0) * s(2, 2)) * d,
        (s(0, 0) * s(2, 2) - s(0, 2) * s(2, 0)) * d,
        (s(0, 2) * s(1, 0) - s(0, 0) * s(1, 2)) * d,
        (s(1, 0) * s(2, 1) - s(1, 1) * s(2, 0)) * d,
        (s(0, 1) * s(2, 0) - s(0, 0) * s(2, 1)) * d,
        (s(0, 0) * s(1, 1) - s(0, 1) * s(1, 0)) * d,
    ])
}

const CUBIC_A: f32 = -0.75;

/// OpenCV 5's bicubic weights for a fractional offset `t` in [0, 1).
#[inline]
fn cubic_weights(t: f32) -> [f32; 4] {
    let t2 = t * t;
    let b = 1.0 - t;
    let w0 = CUBIC_A * (t * (b * b));
    let w3 = CUBIC_A * (t2 * b);
    let w1 = t2.mul_add((CUBIC_A + 2.0).mul_add(t, -(CUBIC_A + 3.0)), 1.0);
    let w2 = ((1.0 - w0) - w1) - w3;
    [w0, w1, w2, w3]
}

/// `cv2.warpPerspective(img, M, (width, height), flags=INTER_CUBIC, borderMode=BORDER_REPLICATE)`
/// where `m` maps source to destination coordinates (OpenCV inverts it).
pub fn warp_perspective_cubic(img: &Bgr, m: &[f64; 9], width: usize, height: usize) -> Bgr {
    let mut out = Bgr::new(width, height);
    let Some(inv) = invert3(m) else {
        return out;
    };
    if img.width == 0 || img.height == 0 {
        return out;
    }
    let mf: Vec<f32> = inv.iter().map(|v| *v as f32).collect();
    let (sw, sh) = (img.width as i64, img.height as i64);
    let bigw = sw.max(16) as f32;
    let bigh = sh.max(16) as f32;
    let clamp = |p: i64, len: i64| p.clamp(0, len - 1) as usize;
    for y in 0..height {
        let yf = y as f32;
        let mx = (yf * mf[1]) + mf[2];
        let my = (yf * mf[4]) + mf[5];
        let mz = (yf * mf[7]) + mf[8];
        for x in 0..width {
            let xd = x as f64;
            let invz = 1.0 / (f64::from(mz) + f64::from(mf[6]) * xd);
            let xs = ((f64::from(mx) + f64::from(mf[0]) * xd) * invz) as f32;
            let ys = ((f64::from(my) + f64::from(mf[3]) * xd) * invz) as f32;
            // NaN (a degenerate matrix) falls to the lower bound, like OpenCV's min/max.
            let vx = if xs >= -bigw { xs.min(bigw * 2.0) } else { -bigw };
            let vy = if ys >= -bigh { ys.min(bigh * 2.0) } else { -bigh };
            let ix = vx.floor();
            let iy = vy.floor();
            let wx = cubic_weights(vx - ix);
            let wy = cubic_weights(vy - iy);
            let (ix, iy) = (ix as i64, iy as i64);
            let cols = [clamp(ix - 1, sw), clamp(ix, sw), clamp(ix + 1, sw), clamp(ix + 2, sw)];
            let rows = [clamp(iy - 1, sh), clamp(iy, sh), clamp(iy + 1, sh), clamp(iy + 2, sh)];
            let o = (y * width + x) * 3;
            for c in 0..3 {
                let mut acc = 0f32;
                for (r, wr) in rows.iter().zip(wy) {
                    let row = img.row(*r);
                    let v = |k: usize| f32::from(row[cols[k] * 3 + c]);
                    let mut s = v(0) * wx[0];
                    s = v(1).mul_add(wx[1], s);
                    s = v(2).mul_add(wx[2], s);
                    s = v(3).mul_add(wx[3], s);
                    acc = s.mul_add(wr, acc);
                }
                out.data[o + c] = acc.round_ties_even().clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: usize, h: usize) -> Bgr {
        let mut img = Bgr::new(w, h);
        for y in 0..h {
            for x in 0..w {
                let i = (y * w + x) * 3;
                img.data[i] = (x * 7 % 256) as u8;
                img.data[i + 1] = (y * 13 % 256) as u8;
                img.data[i + 2] = ((x + y) * 5 % 256) as u8;
            }
        }
        img
    }

    #[test]
    fn resize_to_the_same_size_is_the_identity() {
        let img = ramp(17, 9);
        assert_eq!(resize_linear(&img, 17, 9), img);
    }

    #[test]
    fn halving_averages_two_by_two_blocks() {
        let img = ramp(8, 4);
        let half = resize_linear(&img, 4, 2);
        let avg = |x: usize, y: usize, c: usize| {
            let s: u32 = [(0, 0), (1, 0), (0, 1), (1, 1)]
                .iter()
                .map(|(dx, dy)| u32::from(img.px(2 * x + dx, 2 * y + dy)[c]))
                .sum();
            ((s + 2) >> 2) as u8
        };
        for y in 0..2 {
            for x in 0..4 {
                for c in 0..3 {
                    assert_eq!(half.px(x, y)[c], avg(x, y, c), "({x},{y}) channel {c}");
                }
            }
        }
    }

    #[test]
    fn an_identity_warp_copies_the_image() {
        let img = ramp(12, 6);
        let id = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        assert_eq!(warp_perspective_cubic(&img, &id, 12, 6), img);
    }

    #[test]
    fn perspective_transform_maps_the_corners() {
        let src = [[3.0, 4.0], [40.0, 6.0], [38.0, 20.0], [2.0, 18.0]];
        let dst = [[0.0, 0.0], [36.0, 0.0], [36.0, 14.0], [0.0, 14.0]];
        let m = perspective_transform(&src, &dst).expect("solvable");
        for (s, d) in src.iter().zip(dst) {
            let (x, y) = (f64::from(s[0]), f64::from(s[1]));
            let w = m[6] * x + m[7] * y + m[8];
            let u = (m[0] * x + m[1] * y + m[2]) / w;
            let v = (m[3] * x + m[4] * y + m[5]) / w;
            assert!((u - f64::from(d[0])).abs() < 1e-3 && (v - f64::from(d[1])).abs() < 1e-3, "{u},{v} vs {d:?}");
        }
    }

    #[test]
    fn rotations() {
        let img = ramp(3, 2);
        let r = rot90_ccw(&img);
        assert_eq!((r.width, r.height), (2, 3));
        // np.rot90: out[i][j] = in[j][w-1-i]
        assert_eq!(r.px(0, 0), img.px(2, 0));
        assert_eq!(r.px(1, 2), img.px(0, 1));
        let f = rotate_180(&img);
        assert_eq!(f.px(0, 0), img.px(2, 1));
        assert_eq!(rotate_180(&f), img);
        let p = pad_vertical(&img, 2, 1);
        assert_eq!((p.width, p.height), (3, 5));
        assert_eq!(p.px(1, 2), img.px(1, 0));
        assert_eq!(p.px(1, 0), &[0, 0, 0]);
    }
}

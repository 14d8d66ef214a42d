//! Image preprocessing: resize (fast_image_resize), letterbox, centre crop,
//! grayscale, normalisation and tensor layout (NCHW / NHWC / NWHC, RGB / BGR).
//!
//! The normalisation is `value = (x / divisor - mean[c]) / std[c]`, evaluated
//! in float32 in exactly that order, so that it is bit-identical to the
//! Python reference (`models/make_reference.py`) and to the manifest's
//! `[model.preprocessing]`.

use fast_image_resize::images::{Image as FirImage, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{GrayImage, RgbImage};
use ndarray::{Array4, ArrayD, ArrayViewD, Axis};

use crate::error::{InferenceError, Result};
use crate::manifest::PreprocessingSpec;

/// Channel order of the tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelOrder {
    Rgb,
    Bgr,
}

/// Memory layout of a batch-of-one image tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// [1, C, H, W]
    Nchw,
    /// [1, H, W, C]
    Nhwc,
    /// [1, W, H, C]: the transposed image (MTCNN).
    Nwhc,
}

/// `value = (x / divisor - mean[c]) / std[c]` in float32.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalize {
    pub divisor: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalize {
    /// (x - 127) / 128 (face detector, face embedding, EfficientNet-Lite).
    pub const MINUS_127_DIV_128: Normalize = Normalize { divisor: 1.0, mean: [127.0; 3], std: [128.0; 3] };
    /// (x - 127.5) / 128 (MTCNN).
    pub const MTCNN: Normalize = Normalize { divisor: 1.0, mean: [127.5; 3], std: [128.0; 3] };
    /// (x / 255 - 0.5) / 0.5 (PP-OCR as run by RapidOCR).
    pub const OCR: Normalize = Normalize { divisor: 255.0, mean: [0.5; 3], std: [0.5; 3] };
    /// x / 255 then the ImageNet mean / std.
    pub const IMAGENET: Normalize =
        Normalize { divisor: 255.0, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

    /// A normalisation with one set of values for every channel.
    pub const fn uniform(divisor: f32, mean: f32, std: f32) -> Self {
        Normalize { divisor, mean: [mean; 3], std: [std; 3] }
    }

    /// Normalises one value of channel `c` (0..3).
    #[inline]
    pub fn apply(&self, x: u8, c: usize) -> f32 {
        (f32::from(x) / self.divisor - self.mean[c]) / self.std[c]
    }

    /// From a manifest entry; a single GRAY value is used for every channel.
    pub fn from_spec(p: &PreprocessingSpec) -> Result<Self> {
        let three = |v: &[f32], what: &str| -> Result<[f32; 3]> {
            match v {
                [a] => Ok([*a; 3]),
                [a, b, c] => Ok([*a, *b, *c]),
                _ => Err(InferenceError::Preprocess(format!("{what} needs 1 or 3 values, got {}", v.len()))),
            }
        };
        Ok(Normalize { divisor: p.divisor, mean: three(&p.mean, "mean")?, std: three(&p.std, "std")? })
    }
}

/// Layout and channel order from a manifest entry (`GRAY` maps to RGB order;
/// use [`gray_to_tensor`] for single-channel models).
pub fn layout_from_spec(p: &PreprocessingSpec) -> Result<(Layout, ChannelOrder)> {
    let layout = match p.layout.as_str() {
        "NCHW" => Layout::Nchw,
        "NHWC" => Layout::Nhwc,
        "NWHC" => Layout::Nwhc,
        other => {
            return Err(InferenceError::Preprocess(format!("unknown layout {other:?}")));
        }
    };
    let order = match p.channel_order.as_str() {
        "RGB" | "GRAY" => ChannelOrder::Rgb,
        "BGR" => ChannelOrder::Bgr,
        other => {
            return Err(InferenceError::Preprocess(format!("unknown channel order {other:?}")));
        }
    };
    Ok((layout, order))
}

/// Resampling filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Filter {
    /// Triangle filter, support scaled with the downscale factor (antialiased):
    /// matches Pillow's `Image.resize(BILINEAR)` within ±1.
    #[default]
    Bilinear,
    /// Box filter: averages the covered source pixels (close to cv2 INTER_AREA
    /// when downscaling).
    Box,
    /// Catmull-Rom bicubic.
    CatmullRom,
    /// Lanczos3.
    Lanczos3,
    /// Nearest neighbour.
    Nearest,
}

impl Filter {
    fn alg(self) -> ResizeAlg {
        match self {
            Filter::Bilinear => ResizeAlg::Convolution(FilterType::Bilinear),
            Filter::Box => ResizeAlg::Convolution(FilterType::Box),
            Filter::CatmullRom => ResizeAlg::Convolution(FilterType::CatmullRom),
            Filter::Lanczos3 => ResizeAlg::Convolution(FilterType::Lanczos3),
            Filter::Nearest => ResizeAlg::Nearest,
        }
    }
}

fn resize_raw(src: &[u8], sw: u32, sh: u32, dw: u32, dh: u32, pixel: PixelType, filter: Filter) -> Result<Vec<u8>> {
    if sw == 0 || sh == 0 || dw == 0 || dh == 0 {
        return Err(InferenceError::Preprocess(format!("cannot resize {sw}x{sh} to {dw}x{dh}")));
    }
    if (sw, sh) == (dw, dh) {
        return Ok(src.to_vec());
    }
    let src = ImageRef::new(sw, sh, src, pixel).map_err(|e| InferenceError::Preprocess(e.to_string()))?;
    let mut dst = FirImage::new(dw, dh, pixel);
    Resizer::new()
        .resize(&src, &mut dst, &ResizeOptions::new().resize_alg(filter.alg()))
        .map_err(|e| InferenceError::Preprocess(e.to_string()))?;
    Ok(dst.into_vec())
}

/// Resizes an RGB image to `width` x `height` (aspect not kept).
pub fn resize_rgb(img: &RgbImage, width: u32, height: u32, filter: Filter) -> Result<RgbImage> {
    let buf = resize_raw(img.as_raw(), img.width(), img.height(), width, height, PixelType::U8x3, filter)?;
    RgbImage::from_raw(width, height, buf).ok_or_else(|| InferenceError::Preprocess("resize buffer size".into()))
}

/// Resizes a grayscale image.
pub fn resize_gray(img: &GrayImage, width: u32, height: u32, filter: Filter) -> Result<GrayImage> {
    let buf = resize_raw(img.as_raw(), img.width(), img.height(), width, height, PixelType::U8, filter)?;
    GrayImage::from_raw(width, height, buf).ok_or_else(|| InferenceError::Preprocess("resize buffer size".into()))
}

/// Where a letterboxed image sits in its canvas.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    /// Source pixels per... canvas pixels per source pixel.
    pub scale: f64,
    pub pad_x: u32,
    pub pad_y: u32,
    pub inner_width: u32,
    pub inner_height: u32,
}

impl Letterbox {
    /// Maps a point of the canvas back to the source image.
    pub fn to_source(&self, x: f64, y: f64) -> (f64, f64) {
        ((x - f64::from(self.pad_x)) / self.scale, (y - f64::from(self.pad_y)) / self.scale)
    }
}

/// Scales `img` to fit `width` x `height` keeping its aspect, centres it and
/// fills the rest with `fill`. `scale = min(tw / w, th / h)`, inner size
/// `round(w * scale)` x `round(h * scale)` (ties to even, at least 1),
/// padding `(t - inner) / 2` (floor) before.
pub fn letterbox(
    img: &RgbImage,
    width: u32,
    height: u32,
    fill: [u8; 3],
    filter: Filter,
) -> Result<(RgbImage, Letterbox)> {
    let (w, h) = (f64::from(img.width()), f64::from(img.height()));
    if w == 0.0 || h == 0.0 || width == 0 || height == 0 {
        return Err(InferenceError::Preprocess("letterbox of an empty image".into()));
    }
    let scale = (f64::from(width) / w).min(f64::from(height) / h);
    let dim = |v: f64, max: u32| -> u32 {
        let r = (v * scale).round_ties_even();
        // clamp: the product is exact for the usual sizes
        (r.max(1.0) as u32).min(max)
    };
    let (nw, nh) = (dim(w, width), dim(h, height));
    let inner = resize_rgb(img, nw, nh, filter)?;
    let mut canvas = RgbImage::from_pixel(width, height, image::Rgb(fill));
    let (px, py) = ((width - nw) / 2, (height - nh) / 2);
    image::imageops::replace(&mut canvas, &inner, i64::from(px), i64::from(py));
    Ok((canvas, Letterbox { scale, pad_x: px, pad_y: py, inner_width: nw, inner_height: nh }))
}

/// The centred `width` x `height` crop (clamped to the image).
pub fn centre_crop(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let w = width.min(img.width());
    let h = height.min(img.height());
    let x = (img.width() - w) / 2;
    let y = (img.height() - h) / 2;
    image::imageops::crop_imm(img, x, y, w, h).to_image()
}

/// Grayscale as Pillow's `convert("L")`:
/// `(R * 19595 + G * 38470 + B * 7471 + 0x8000) >> 16`.
pub fn to_gray(img: &RgbImage) -> GrayImage {
    let mut out = GrayImage::new(img.width(), img.height());
    for (o, p) in out.pixels_mut().zip(img.pixels()) {
        let [r, g, b] = p.0;
        let l = (u32::from(r) * 19595 + u32::from(g) * 38470 + u32::from(b) * 7471 + 0x8000) >> 16;
        o.0 = [l as u8];
    }
    out
}

/// Converts an RGB image into a normalised batch-of-one tensor.
pub fn to_tensor(img: &RgbImage, layout: Layout, order: ChannelOrder, norm: &Normalize) -> Array4<f32> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let shape = match layout {
        Layout::Nchw => (1, 3, h, w),
        Layout::Nhwc => (1, h, w, 3),
        Layout::Nwhc => (1, w, h, 3),
    };
    let mut t = Array4::<f32>::zeros(shape);
    for (x, y, p) in img.enumerate_pixels() {
        let (x, y) = (x as usize, y as usize);
        for c in 0..3 {
            let src = match order {
                ChannelOrder::Rgb => c,
                ChannelOrder::Bgr => 2 - c,
            };
            let v = norm.apply(p.0[src], c);
            match layout {
                Layout::Nchw => t[[0, c, y, x]] = v,
                Layout::Nhwc => t[[0, y, x, c]] = v,
                Layout::Nwhc => t[[0, x, y, c]] = v,
            }
        }
    }
    t
}

/// Converts a grayscale image into a [1, 1, H, W] tensor (channel 0 of `norm`).
pub fn gray_to_tensor(img: &GrayImage, norm: &Normalize) -> Array4<f32> {
    let mut t = Array4::<f32>::zeros((1, 1, img.height() as usize, img.width() as usize));
    for (x, y, p) in img.enumerate_pixels() {
        t[[0, 0, y as usize, x as usize]] = norm.apply(p.0[0], 0);
    }
    t
}

/// Normalises a uint8 tensor that is already in model layout; `c` is the
/// index along `channel_axis`. Used to decode the u8 fixtures bit-exactly.
pub fn normalize_u8(q: ArrayViewD<'_, u8>, channel_axis: usize, norm: &Normalize) -> Result<ArrayD<f32>> {
    if channel_axis >= q.ndim() || q.shape()[channel_axis] > 3 {
        return Err(InferenceError::Preprocess(format!(
            "channel axis {channel_axis} does not fit shape {:?}",
            q.shape()
        )));
    }
    let mut out = ArrayD::<f32>::zeros(q.raw_dim());
    for (c, (mut o, i)) in out.axis_iter_mut(Axis(channel_axis)).zip(q.axis_iter(Axis(channel_axis))).enumerate() {
        o.zip_mut_with(&i, |o, &x| *o = norm.apply(x, c));
    }
    Ok(out)
}

/// Concatenates batch-of-one tensors along axis 0.
pub fn stack_batch(items: &[Array4<f32>]) -> Result<Array4<f32>> {
    let views: Vec<_> = items.iter().map(|a| a.view()).collect();
    ndarray::concatenate(Axis(0), &views).map_err(|e| InferenceError::Preprocess(format!("batch: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RgbImage {
        RgbImage::from_fn(5, 4, |x, y| image::Rgb([(x * 40) as u8, (y * 60) as u8, 200]))
    }

    #[test]
    fn layouts_and_channel_orders() {
        let img = sample();
        let n = Normalize::uniform(1.0, 0.0, 1.0);
        let nchw = to_tensor(&img, Layout::Nchw, ChannelOrder::Rgb, &n);
        assert_eq!(nchw.shape(), &[1, 3, 4, 5]);
        assert_eq!(nchw[[0, 0, 2, 3]], 120.0);
        assert_eq!(nchw[[0, 1, 2, 3]], 120.0);
        assert_eq!(nchw[[0, 2, 2, 3]], 200.0);
        let nhwc = to_tensor(&img, Layout::Nhwc, ChannelOrder::Bgr, &n);
        assert_eq!(nhwc.shape(), &[1, 4, 5, 3]);
        assert_eq!(nhwc[[0, 1, 4, 0]], 200.0);
        assert_eq!(nhwc[[0, 1, 4, 2]], 160.0);
        let nwhc = to_tensor(&img, Layout::Nwhc, ChannelOrder::Rgb, &n);
        assert_eq!(nwhc.shape(), &[1, 5, 4, 3]);
        assert_eq!(nwhc[[0, 4, 1, 0]], 160.0);
    }

    #[test]
    fn normalisation_formula() {
        let n = Normalize::MINUS_127_DIV_128;
        assert_eq!(n.apply(255, 0), 1.0);
        assert_eq!(n.apply(127, 1), 0.0);
        assert_eq!(Normalize::OCR.apply(0, 2), -1.0);
    }

    #[test]
    fn letterbox_keeps_aspect_and_centres() {
        let img = RgbImage::from_pixel(40, 20, image::Rgb([10, 20, 30]));
        let (out, lb) = letterbox(&img, 32, 32, [114, 114, 114], Filter::Bilinear).expect("letterbox");
        assert_eq!((out.width(), out.height()), (32, 32));
        assert_eq!((lb.inner_width, lb.inner_height, lb.pad_x, lb.pad_y), (32, 16, 0, 8));
        assert_eq!(out.get_pixel(0, 0).0, [114, 114, 114]);
        assert_eq!(out.get_pixel(16, 16).0, [10, 20, 30]);
        assert_eq!(lb.to_source(32.0, 24.0), (40.0, 20.0));
    }

    #[test]
    fn crop_gray_and_batch() {
        let img = sample();
        let c = centre_crop(&img, 3, 2);
        assert_eq!(c.get_pixel(0, 0).0, img.get_pixel(1, 1).0);
        let g = to_gray(&RgbImage::from_pixel(1, 1, image::Rgb([255, 255, 255])));
        assert_eq!(g.get_pixel(0, 0).0, [255]);
        let t = to_tensor(&img, Layout::Nchw, ChannelOrder::Rgb, &Normalize::OCR);
        assert_eq!(stack_batch(&[t.clone(), t]).expect("batch").shape(), &[2, 3, 4, 5]);
    }
}

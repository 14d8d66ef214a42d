//! The heat map of foot points: counts per grid cell, and its rendering as a colour overlay.

use std::io::Write;

use image::codecs::png::PngEncoder;
use image::{EncodableLayout, ImageBuffer, PixelWithColorType, Rgb, RgbImage, Rgba, RgbaImage};
use serde::{Deserialize, Serialize};

/// Opacity of the overlay where a cell has a non-zero count.
pub const OVERLAY_ALPHA: f64 = 0.55;

/// One heat-map cell with a non-zero count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeatCell {
    /// Grid row (`y / cell`).
    pub row: u32,
    /// Grid column (`x / cell`).
    pub col: u32,
    /// Left edge of the cell, pixels.
    pub x: u32,
    /// Top edge of the cell, pixels.
    pub y: u32,
    /// Observations of confirmed tracks whose foot point fell in the cell.
    pub count: u64,
}

/// Counts of foot points on a grid of square cells over the frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeatMap {
    /// Cell size, pixels.
    pub cell: u32,
    /// Frame width, pixels (when the frame size was unknown: the extent of the cells).
    pub width: u32,
    /// Frame height, pixels (likewise).
    pub height: u32,
    /// Cells with a non-zero count, by row then column.
    pub cells: Vec<HeatCell>,
}

impl HeatMap {
    /// The sum of all counts: the number of observations.
    pub fn total(&self) -> u64 {
        self.cells.iter().map(|c| c.count).sum()
    }

    /// The largest count of a cell (0 for an empty map).
    pub fn max_count(&self) -> u64 {
        self.cells.iter().map(|c| c.count).max().unwrap_or(0)
    }

    /// Counts on a dense grid, row-major: `(columns, rows, counts)`.
    fn dense(&self) -> (u32, u32, Vec<u64>) {
        let cell = self.cell.max(1);
        let cols = self.width.div_ceil(cell).max(1);
        let rows = self.height.div_ceil(cell).max(1);
        let mut grid = vec![0; cols as usize * rows as usize];
        for c in &self.cells {
            if c.col < cols && c.row < rows {
                grid[c.row as usize * cols as usize + c.col as usize] += c.count;
            }
        }
        (cols, rows, grid)
    }

    /// The overlay colour and opacity (0 to 1) of each pixel of an image of `width × height`
    /// covering the whole frame (scaled when its size differs from the map's frame size).
    fn overlay(&self, width: u32, height: u32) -> impl Fn(u32, u32) -> Option<[u8; 3]> {
        let (cols, rows, grid) = self.dense();
        let max = self.max_count();
        let cell = f64::from(self.cell.max(1));
        let sx = f64::from(self.width.max(1)) / f64::from(width.max(1));
        let sy = f64::from(self.height.max(1)) / f64::from(height.max(1));
        move |px, py| {
            // Pixel centre in map coordinates; float-to-int casts saturate.
            let col = (((f64::from(px) + 0.5) * sx / cell) as u32).min(cols - 1);
            let row = (((f64::from(py) + 0.5) * sy / cell) as u32).min(rows - 1);
            let count = grid[row as usize * cols as usize + col as usize];
            (count > 0 && max > 0).then(|| ramp(count as f64 / max as f64))
        }
    }
}

/// A jet-like colour ramp: blue at 0, through cyan, green and yellow, to red at 1.
pub fn ramp(v: f64) -> [u8; 3] {
    let v = if v.is_finite() { v.clamp(0.0, 1.0) } else { 0.0 };
    let channel = |centre: f64| ((1.5 - (4.0 * v - centre).abs()).clamp(0.0, 1.0) * 255.0).round() as u8;
    [channel(3.0), channel(2.0), channel(1.0)]
}

/// The heat map alone at the map's frame size: the colour ramp with alpha `OVERLAY_ALPHA`
/// where a cell has a count, transparent elsewhere. Counts are scaled by the largest count.
pub fn heatmap_rgba(map: &HeatMap) -> RgbaImage {
    let overlay = map.overlay(map.width, map.height);
    let alpha = (OVERLAY_ALPHA * 255.0).round() as u8;
    RgbaImage::from_fn(map.width, map.height, |x, y| match overlay(x, y) {
        Some([r, g, b]) => Rgba([r, g, b, alpha]),
        None => Rgba([0, 0, 0, 0]),
    })
}

/// The heat map blended over a camera frame (alpha `OVERLAY_ALPHA`, frame unchanged where
/// the count is zero). A frame of another size than the map's is covered proportionally.
pub fn heatmap_png(frame: &RgbImage, map: &HeatMap) -> RgbImage {
    let overlay = map.overlay(frame.width(), frame.height());
    let mut out = frame.clone();
    for (x, y, pixel) in out.enumerate_pixels_mut() {
        if let Some(colour) = overlay(x, y) {
            let Rgb(base) = *pixel;
            *pixel = Rgb(std::array::from_fn(|i| {
                (f64::from(base[i]) * (1.0 - OVERLAY_ALPHA) + f64::from(colour[i]) * OVERLAY_ALPHA).round() as u8
            }));
        }
    }
    out
}

/// Encodes an image (RGB or RGBA, 8 bits) as PNG into `w`.
pub fn write_png<W, P>(image: &ImageBuffer<P, Vec<P::Subpixel>>, w: W) -> image::ImageResult<()>
where
    W: Write,
    P: PixelWithColorType,
    [P::Subpixel]: EncodableLayout,
{
    image.write_with_encoder(PngEncoder::new(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> HeatMap {
        HeatMap {
            cell: 10,
            width: 40,
            height: 20,
            cells: vec![
                HeatCell { row: 0, col: 1, x: 10, y: 0, count: 4 },
                HeatCell { row: 1, col: 3, x: 30, y: 10, count: 1 },
            ],
        }
    }

    #[test]
    fn ramp_runs_from_blue_to_red() {
        assert_eq!(ramp(0.0), [0, 0, 128]);
        assert_eq!(ramp(1.0), [128, 0, 0]);
        assert_eq!(ramp(0.5), [128, 255, 128]);
        assert_eq!(ramp(f64::NAN), ramp(0.0));
    }

    #[test]
    fn rgba_is_transparent_where_zero_and_hot_where_most() {
        let img = heatmap_rgba(&map());
        assert_eq!(img.dimensions(), (40, 20));
        assert_eq!(img.get_pixel(0, 0).0[3], 0);
        let hot = img.get_pixel(15, 5).0;
        assert_eq!(hot, [128, 0, 0, 140]);
        assert_eq!(img.get_pixel(35, 15).0[3], 140);
        assert_ne!(img.get_pixel(35, 15).0, hot);
    }

    #[test]
    fn overlay_keeps_the_frame_where_zero_and_scales_to_its_size() {
        let frame = RgbImage::from_pixel(80, 40, Rgb([200, 200, 200]));
        let out = heatmap_png(&frame, &map());
        assert_eq!(out.get_pixel(0, 0), frame.get_pixel(0, 0));
        // Map cell (0, 1) covers frame pixels x 20..40, y 0..20 at twice the size.
        let blended = out.get_pixel(30, 10).0;
        assert_eq!(blended, [160, 90, 90]);
        assert_eq!(out.get_pixel(10, 10), frame.get_pixel(10, 10));
    }

    #[test]
    fn png_encoding_writes_a_png_signature() {
        let mut bytes = Vec::new();
        write_png(&heatmap_rgba(&map()), &mut bytes).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    }
}

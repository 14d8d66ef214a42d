//! The pure part of detection: geometry and decisions on model outputs, no I/O and no models.
//!
//! - faces: the share of the image the confirmed faces cover (boxes, their non-maximum
//!   suppression and [`covered_fraction`] are `sightline-vision`'s);
//! - text: the share of the image covered by text lines, from the DB probability map of the
//!   OCR detector ([`sightline_vision::textmap`], re-exported here);
//! - saliency: the main-subject box from the 7×7 class-activation map of EfficientNet-Lite0;
//! - the verdict: which noise flags fire under [`Thresholds`].

use serde::{Deserialize, Serialize};
use sightline_vision::components::flood_fill;

pub use sightline_vision::NormBox;
pub use sightline_vision::boxes::covered_fraction;
pub use sightline_vision::textmap::{TextParams, TextSummary, text_coverage, text_lines};

/// How the main-subject box is cut from the saliency map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropParams {
    /// The map is upsampled (bilinear) to this many cells per side before thresholding.
    pub upsample: usize,
    /// Cells at or above `threshold × max` (after subtracting the minimum) are salient.
    pub threshold: f32,
    /// The box grows by this share of its size on every side.
    pub margin: f32,
    /// A box covering at least this share of the image is not worth cropping: use the image.
    pub full_above: f32,
}

impl Default for CropParams {
    fn default() -> Self {
        Self { upsample: 56, threshold: 0.3, margin: 0.1, full_above: 0.9 }
    }
}

/// What the saliency map says.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SaliencySummary {
    /// The main-subject box (normalised), [`NormBox::FULL`] when not worth cropping.
    pub crop: NormBox,
    /// Whether the crop is the whole image.
    pub full: bool,
    /// Share of the image the salient region's box covers, before the margin.
    pub salient_area: f32,
    /// Mean over max of the (minimum-subtracted) map: low = one clear subject, high = diffuse.
    pub spread: f32,
}

/// Bilinear upsampling of a `w`×`h` map to `n`×`n` (half-pixel centres, edges clamped: the
/// convention of PIL and `align_corners = false`).
pub fn upsample_bilinear(map: &[f32], w: usize, h: usize, n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n * n];
    if w == 0 || h == 0 || map.len() < w * h {
        return out;
    }
    let coord = |i: usize, src: usize| -> (usize, usize, f32) {
        let s = ((i as f32 + 0.5) * src as f32 / n as f32 - 0.5).clamp(0.0, (src - 1) as f32);
        let lo = s.floor() as usize;
        let hi = (lo + 1).min(src - 1);
        (lo, hi, s - lo as f32)
    };
    for y in 0..n {
        let (y0, y1, fy) = coord(y, h);
        for x in 0..n {
            let (x0, x1, fx) = coord(x, w);
            let top = map[y0 * w + x0] * (1.0 - fx) + map[y0 * w + x1] * fx;
            let bottom = map[y1 * w + x0] * (1.0 - fx) + map[y1 * w + x1] * fx;
            out[y * n + x] = top * (1.0 - fy) + bottom * fy;
        }
    }
    out
}

/// The main-subject box from a saliency map (`w`×`h`, row-major, over the whole image): the
/// map is upsampled, shifted to a minimum of 0, thresholded at `threshold × max`; the
/// 4-connected region that holds the peak gives the box, grown by the margin. A flat map, or
/// a box that covers nearly the whole image, gives the whole image.
pub fn saliency_crop(map: &[f32], w: usize, h: usize, p: &CropParams) -> SaliencySummary {
    let full = SaliencySummary { crop: NormBox::FULL, full: true, salient_area: 1.0, spread: 1.0 };
    let n = p.upsample.max(1);
    let mut up = upsample_bilinear(map, w, h, n);
    let min = up.iter().copied().fold(f32::INFINITY, f32::min);
    if !min.is_finite() {
        return full;
    }
    up.iter_mut().for_each(|v| *v -= min);
    let (peak_at, max) = up.iter().copied().enumerate().fold((0, 0f32), |a, (i, v)| if v > a.1 { (i, v) } else { a });
    if max <= 0.0 || !max.is_finite() {
        return full;
    }
    let spread = up.iter().sum::<f32>() / (up.len() as f32 * max);
    let cut = p.threshold * max;
    // The region holding the peak.
    let mut seen = vec![false; n * n];
    let (mut x0, mut y0, mut x1, mut y1) = (n, n, 0, 0);
    flood_fill(
        &mut seen,
        n,
        n,
        peak_at,
        |j| up[j] >= cut,
        |i| {
            let (x, y) = (i % n, i / n);
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x + 1);
            y1 = y1.max(y + 1);
        },
    );
    let nf = n as f32;
    let salient = NormBox { x0: x0 as f32 / nf, y0: y0 as f32 / nf, x1: x1 as f32 / nf, y1: y1 as f32 / nf };
    let crop = salient.expanded(p.margin);
    if crop.area() >= p.full_above {
        return SaliencySummary { crop: NormBox::FULL, full: true, salient_area: salient.area(), spread };
    }
    SaliencySummary { crop, full: false, salient_area: salient.area(), spread }
}

/// When an image is noise. Defaults chosen on the dev collections (`docs/detect-embed.md`):
/// the largest value any true product reached, with a wide margin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Face-detector score for a face candidate.
    pub face_score: f32,
    /// MTCNN output-net probability that confirms a candidate (the detector alone fires on
    /// fruit and packaging).
    pub face_confirm: f32,
    /// Flag when confirmed faces cover at least this share of the image.
    pub face_fraction: f32,
    /// Flag when text lines cover at least this share of the image.
    pub text_fraction: f32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self { face_score: 0.9, face_confirm: 0.95, face_fraction: 0.04, text_fraction: 0.4 }
    }
}

pub use sightline_messages::annotations::Flag;

/// The noise flags that fire for `faces` (confirmed count and covered share) and `text`.
pub fn flags(t: &Thresholds, face_count: usize, face_fraction: f32, text: &TextSummary) -> Vec<Flag> {
    let mut out = Vec::new();
    if face_count > 0 && face_fraction >= t.face_fraction {
        out.push(Flag {
            flag: "faces".into(),
            score: face_fraction,
            threshold: t.face_fraction,
            reason: format!(
                "dominated by faces: {face_count} {} {:.0}% of the image",
                if face_count == 1 { "face covers" } else { "faces cover" },
                face_fraction * 100.0
            ),
        });
    }
    if text.fraction >= t.text_fraction {
        out.push(Flag {
            flag: "text".into(),
            score: text.fraction,
            threshold: t.text_fraction,
            reason: format!(
                "dominated by text: {} {} {:.0}% of the image",
                text.lines,
                if text.lines == 1 { "text line covers" } else { "text lines cover" },
                text.fraction * 100.0
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsampling_keeps_values_and_interpolates() {
        let m = [0.0, 1.0, 2.0, 3.0];
        let up = upsample_bilinear(&m, 2, 2, 4);
        assert_eq!(up[0], 0.0, "corner cells are clamped to the source corner");
        assert_eq!(up[15], 3.0);
        assert!((up[1] - 0.25).abs() < 1e-6, "{up:?}");
        let flat = upsample_bilinear(&[5.0; 49], 7, 7, 56);
        assert!(flat.iter().all(|&v| (v - 5.0).abs() < 1e-5));
    }

    #[test]
    fn a_peaked_map_gives_a_box_around_the_peak() {
        // 7×7 map with a hot 2×2 block at cells (1..3, 4..6): x in 1..3, y in 4..6.
        let mut m = vec![0f32; 49];
        for (x, y) in [(1, 4), (2, 4), (1, 5), (2, 5)] {
            m[y * 7 + x] = 10.0;
        }
        let s = saliency_crop(&m, 7, 7, &CropParams::default());
        assert!(!s.full, "{s:?}");
        let c = s.crop;
        // The hot cells span x 1/7..3/7, y 4/7..6/7; the box contains them, roughly.
        assert!(c.x0 < 1.5 / 7.0 && c.x1 > 2.5 / 7.0 && c.y0 < 4.5 / 7.0 && c.y1 > 5.5 / 7.0, "{c:?}");
        assert!(c.x1 < 4.5 / 7.0 && c.y0 > 2.5 / 7.0, "{c:?}");
        assert!(s.spread < 0.3, "{s:?}");
        // Only the region of the peak counts: a weaker separate blob is ignored.
        m[6] = 9.0;
        let s2 = saliency_crop(&m, 7, 7, &CropParams::default());
        assert!(s2.crop.x1 < 0.75, "{s2:?}");
    }

    #[test]
    fn flat_or_wide_saliency_means_no_crop() {
        let s = saliency_crop(&[1.0; 49], 7, 7, &CropParams::default());
        assert!(s.full);
        assert_eq!(s.crop, NormBox::FULL);
        // Salient everywhere but one corner: the box would cover nearly all of the image.
        let wide: Vec<f32> = (0..49).map(|i| if i == 0 { 0.0 } else { 10.0 }).collect();
        let s = saliency_crop(&wide, 7, 7, &CropParams::default());
        assert!(s.full, "{s:?}");
        assert!(s.salient_area > 0.9, "{s:?}");
        let s = saliency_crop(&[f32::NAN; 49], 7, 7, &CropParams::default());
        assert!(s.full);
    }

    #[test]
    fn flags_fire_at_their_thresholds() {
        let t = Thresholds::default();
        let none = TextSummary { fraction: 0.1, lines: 3 };
        assert!(flags(&t, 0, 0.5, &none).is_empty(), "no confirmed face, no flag");
        assert!(flags(&t, 1, 0.03, &none).is_empty());
        let f = flags(&t, 3, 0.08, &none);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].flag, "faces");
        assert_eq!(f[0].reason, "dominated by faces: 3 faces cover 8% of the image");
        let f = flags(&t, 0, 0.0, &TextSummary { fraction: 0.72, lines: 1 });
        assert_eq!(f[0].flag, "text");
        assert_eq!(f[0].reason, "dominated by text: 1 text line covers 72% of the image");
    }
}

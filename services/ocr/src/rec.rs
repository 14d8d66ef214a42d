//! Line orientation (0°/180°) and line recognition, as RapidOCR's `TextClassifier` and
//! `TextRecognizer` do them: lines sorted by aspect ratio, batches of six, each line resized to
//! height 48 (bilinear) and zero-padded on the right, then CTC greedy decoding with the
//! dictionary stored in the recognition model.

use ndarray::{Array4, ArrayD, Axis};

use sightline_vision::cv::{Bgr, resize_linear};

/// Height of every line tensor.
pub const LINE_HEIGHT: usize = 48;
/// Width of the orientation classifier's input.
pub const CLS_WIDTH: usize = 192;

/// `(x / 255 - 0.5) / 0.5` in float32 (RapidOCR's `resize_norm_img`).
fn norm_lut() -> [f32; 256] {
    let mut lut = [0f32; 256];
    for (i, v) in lut.iter_mut().enumerate() {
        *v = (i as f32 / 255.0 - 0.5) / 0.5;
    }
    lut
}

/// Writes `img` resized to `resized_w` × 48 into batch slot `n` of `t` (zeros elsewhere).
fn put_line(t: &mut Array4<f32>, n: usize, img: &Bgr, resized_w: usize, lut: &[f32; 256]) {
    let resized = resize_linear(img, resized_w, LINE_HEIGHT);
    let width = t.shape()[3];
    for y in 0..LINE_HEIGHT {
        for x in 0..resized_w.min(width) {
            let px = resized.px(x, y);
            for c in 0..3 {
                t[[n, c, y, x]] = lut[usize::from(px[c])];
            }
        }
    }
}

/// `math.ceil(48 * w / h)` with Python's float arithmetic.
fn scaled_width(img: &Bgr) -> usize {
    let ratio = img.width as f64 / img.height as f64;
    (LINE_HEIGHT as f64 * ratio).ceil() as usize
}

/// Indices of `imgs` sorted by width / height (NumPy's argsort: stable for these sizes).
pub fn order_by_ratio(imgs: &[Bgr]) -> Vec<usize> {
    let ratios: Vec<f64> = imgs.iter().map(|i| i.width as f64 / i.height as f64).collect();
    let mut idx: Vec<usize> = (0..imgs.len()).collect();
    idx.sort_by(|&a, &b| ratios[a].partial_cmp(&ratios[b]).unwrap_or(std::cmp::Ordering::Equal));
    idx
}

/// The classifier's input for a batch: each line resized to height 48 and at most 192 wide.
pub fn cls_batch(imgs: &[&Bgr]) -> Array4<f32> {
    let lut = norm_lut();
    let mut t = Array4::<f32>::zeros((imgs.len(), 3, LINE_HEIGHT, CLS_WIDTH));
    for (n, img) in imgs.iter().enumerate() {
        let w = scaled_width(img).min(CLS_WIDTH);
        put_line(&mut t, n, img, w, &lut);
    }
    t
}

/// The recogniser's input for a batch: width `int(48 * max(320 / 48, widest ratio))`.
pub fn rec_batch(imgs: &[&Bgr], base_width: usize) -> Array4<f32> {
    let lut = norm_lut();
    let mut max_ratio = base_width as f64 / LINE_HEIGHT as f64;
    for img in imgs {
        max_ratio = max_ratio.max(img.width as f64 / img.height as f64);
    }
    let width = (LINE_HEIGHT as f64 * max_ratio) as usize;
    let mut t = Array4::<f32>::zeros((imgs.len(), 3, LINE_HEIGHT, width));
    for (n, img) in imgs.iter().enumerate() {
        let w = scaled_width(img).min(width);
        put_line(&mut t, n, img, w, &lut);
    }
    t
}

/// Python's `round(x, 5)` (correctly rounded, half to even on the exact binary value).
fn py_round5(x: f64) -> f64 {
    format!("{x:.5}").parse().unwrap_or(x)
}

/// NumPy's pairwise summation of float64 (what `np.mean` adds with).
fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for v in a {
            res += v;
        }
        res
    } else if n <= 128 {
        let mut r = [0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - (n % 8) {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum(&a[..n2]) + pairwise_sum(&a[n2..])
    }
}

/// `np.round(x, 5)`.
fn np_round5(x: f64) -> f64 {
    (x * 1e5).round_ties_even() / 1e5
}

/// A recognised line before filtering.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The text.
    pub text: String,
    /// Mean probability of the kept characters (0 when none).
    pub score: f64,
}

/// RapidOCR's `CTCLabelDecode` on probabilities [N, T, C]: best class per step, repeats
/// merged, blanks (class 0) dropped; the score is the mean of the kept steps' probabilities.
pub fn ctc_decode(probs: &ArrayD<f32>, chars: &[String]) -> Vec<Decoded> {
    let mut out = Vec::new();
    if probs.ndim() != 3 {
        return out;
    }
    for seq in probs.axis_iter(Axis(0)) {
        let mut text = String::new();
        let mut confs: Vec<f64> = Vec::new();
        let mut prev: Option<usize> = None;
        for step in seq.axis_iter(Axis(0)) {
            let mut best = 0usize;
            let mut best_p = f32::NEG_INFINITY;
            for (c, &p) in step.iter().enumerate() {
                if p > best_p {
                    best_p = p;
                    best = c;
                }
            }
            let repeated = prev == Some(best);
            prev = Some(best);
            if repeated || best == 0 {
                continue;
            }
            if let Some(ch) = chars.get(best) {
                text.push_str(ch);
            }
            confs.push(py_round5(f64::from(best_p)));
        }
        if confs.is_empty() {
            confs.push(0.0);
        }
        let mean = pairwise_sum(&confs) / confs.len() as f64;
        out.push(Decoded { text, score: np_round5(mean) });
    }
    out
}

/// Python's `str.splitlines()` (the separators it knows), without keeping the ends.
fn python_splitlines(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push(std::mem::take(&mut cur));
            }
            '\n' | '\u{b}' | '\u{c}' | '\u{1c}' | '\u{1d}' | '\u{1e}' | '\u{85}' | '\u{2028}' | '\u{2029}' => {
                out.push(std::mem::take(&mut cur));
            }
            other => cur.push(other),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The CTC classes from the model's `character` metadata: blank, the dictionary, then space.
pub fn dictionary(character: &str) -> Vec<String> {
    let mut chars = vec!["blank".to_owned()];
    chars.extend(python_splitlines(character));
    chars.push(" ".to_owned());
    chars
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probs(steps: &[(usize, f32)], classes: usize) -> ArrayD<f32> {
        let mut a = ArrayD::<f32>::zeros(vec![1, steps.len(), classes]);
        for (t, (c, p)) in steps.iter().enumerate() {
            a[[0, t, *c]] = *p;
        }
        a
    }

    #[test]
    fn ctc_merges_repeats_and_drops_blanks() {
        let chars = dictionary("a\nb\nc");
        assert_eq!(chars, vec!["blank", "a", "b", "c", " "]);
        let p = probs(&[(1, 0.9), (1, 0.8), (0, 0.99), (1, 0.7), (2, 0.6), (4, 0.5)], 5);
        let d = ctc_decode(&p, &chars);
        assert_eq!(d[0].text, "aab ");
        assert!((d[0].score - np_round5((0.9 + 0.7 + 0.6 + 0.5) / 4.0)).abs() < 1e-6, "{}", d[0].score);
    }

    #[test]
    fn an_all_blank_line_is_empty_with_score_zero() {
        let chars = dictionary("a");
        let d = ctc_decode(&probs(&[(0, 0.9), (0, 0.9)], 3), &chars);
        assert_eq!(d[0], Decoded { text: String::new(), score: 0.0 });
    }

    #[test]
    fn numpy_like_rounding_and_sums() {
        assert_eq!(py_round5(0.123_456_7), 0.12346);
        assert_eq!(pairwise_sum(&[1.0; 20]), 20.0);
        assert_eq!(pairwise_sum(&[0.5; 300]), 150.0);
        assert_eq!(python_splitlines("x\r\ny\u{2028}z"), vec!["x", "y", "z"]);
    }

    #[test]
    fn batches_pad_to_the_widest_line() {
        let a = Bgr::new(100, 20); // ratio 5 -> width 240
        let b = Bgr::new(400, 20); // ratio 20 -> width 960
        let t = rec_batch(&[&a, &b], 320);
        assert_eq!(t.shape(), &[2, 3, 48, 960]);
        // the black line normalises to -1 where it has pixels and stays 0 in the padding
        assert_eq!(t[[0, 0, 0, 239]], -1.0);
        assert_eq!(t[[0, 0, 0, 240]], 0.0);
        let c = cls_batch(&[&b]);
        assert_eq!(c.shape(), &[1, 3, 48, 192]);
        assert_eq!(c[[0, 0, 47, 191]], -1.0);
        assert_eq!(order_by_ratio(&[b.clone(), a.clone()]), vec![1, 0]);
    }
}

//! Evaluation helpers: dlib's image-metadata XML (boxes and 68-point parts), matching
//! detections to ground truth at an IoU threshold, and landmark error. The driver is the
//! `face_eval` example (`docs/face.md`).

use sightline_face::geometry::{BoxF, Point};

/// One image of a dlib XML file.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledImage {
    /// The `file` attribute.
    pub file: String,
    /// Ground-truth boxes.
    pub boxes: Vec<BoxF>,
    /// Per box, its `<part>` points ordered by name (empty when the file has none).
    pub parts: Vec<Vec<Point>>,
}

fn attr(tag: &str, name: &str) -> Option<String> {
    for quote in ['\'', '"'] {
        let pat = format!("{name}={quote}");
        let mut from = 0;
        while let Some(pos) = tag[from..].find(&pat) {
            let at = from + pos;
            // Whole attribute names only (`top` must not match `stop`).
            let clean = at == 0 || tag.as_bytes()[at - 1].is_ascii_whitespace();
            let start = at + pat.len();
            if clean {
                let end = tag[start..].find(quote)? + start;
                return Some(tag[start..end].to_owned());
            }
            from = start;
        }
    }
    None
}

fn num(tag: &str, name: &str) -> Result<f32, String> {
    attr(tag, name)
        .ok_or_else(|| format!("{name} missing in {tag}"))?
        .trim()
        .parse()
        .map_err(|e| format!("{name} in {tag}: {e}"))
}

/// Parses a dlib `imglab` XML file (`<image file=...><box top left width height>[<part name x y/>...]`).
pub fn parse_dlib_xml(text: &str) -> Result<Vec<LabelledImage>, String> {
    let mut images: Vec<LabelledImage> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').ok_or("unterminated tag")? + start;
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        let name = tag.split_whitespace().next().unwrap_or("");
        match name {
            "image" => images.push(LabelledImage {
                file: attr(tag, "file").ok_or_else(|| format!("image without file: {tag}"))?,
                boxes: Vec::new(),
                parts: Vec::new(),
            }),
            "box" => {
                let img = images.last_mut().ok_or("box outside an image")?;
                img.boxes.push(BoxF {
                    x: num(tag, "left")?,
                    y: num(tag, "top")?,
                    w: num(tag, "width")?,
                    h: num(tag, "height")?,
                });
                img.parts.push(Vec::new());
            }
            "part" => {
                let img = images.last_mut().ok_or("part outside an image")?;
                let parts = img.parts.last_mut().ok_or("part outside a box")?;
                let idx: usize =
                    attr(tag, "name").and_then(|n| n.parse().ok()).ok_or_else(|| format!("part name: {tag}"))?;
                if parts.len() <= idx {
                    parts.resize(idx + 1, [f32::NAN, f32::NAN]);
                }
                parts[idx] = [num(tag, "x")?, num(tag, "y")?];
            }
            _ => {}
        }
    }
    Ok(images)
}

/// Detection counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Detections matched to a ground-truth face.
    pub tp: usize,
    /// Detections matched to nothing.
    pub fp: usize,
    /// Ground-truth faces no detection matched.
    pub missed: usize,
}

impl Counts {
    /// tp / (tp + missed).
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.missed)
    }
    /// tp / (tp + fp).
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    /// Adds another image's counts.
    pub fn add(&mut self, o: Counts) {
        self.tp += o.tp;
        self.fp += o.fp;
        self.missed += o.missed;
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

/// Matches `dets` (box, score) to `truth` greedily by descending score at `iou`. Ground-truth
/// faces narrower than `min_width` are "don't care": a detection matching one counts neither
/// way, and missing one is not a miss.
pub fn match_detections(dets: &[(BoxF, f32)], truth: &[BoxF], iou: f32, min_width: f32) -> Counts {
    let mut order: Vec<usize> = (0..dets.len()).collect();
    order.sort_by(|&a, &b| dets[b].1.total_cmp(&dets[a].1));
    let mut used = vec![false; truth.len()];
    let mut c = Counts::default();
    for i in order {
        let best = (0..truth.len())
            .filter(|&j| !used[j])
            .map(|j| (dets[i].0.iou(&truth[j]), j))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        match best {
            Some((v, j)) if v >= iou => {
                used[j] = true;
                if truth[j].w >= min_width {
                    c.tp += 1;
                }
            }
            _ => c.fp += 1,
        }
    }
    c.missed = truth.iter().zip(&used).filter(|(t, u)| !**u && t.w >= min_width).count();
    c
}

/// Mean point-to-point error of `pred` against `truth` (68 points each), divided by the
/// distance between the eye centres of `truth` (inter-ocular normalised mean error).
pub fn landmark_nme(pred: &[Point], truth: &[Point]) -> Option<f32> {
    if pred.len() < 68 || truth.len() < 68 {
        return None;
    }
    let centre = |r: std::ops::Range<usize>| {
        let n = r.len() as f32;
        let (x, y) = r.fold((0.0, 0.0), |(x, y), i| (x + truth[i][0], y + truth[i][1]));
        [x / n, y / n]
    };
    let (l, r) = (centre(36..42), centre(42..48));
    let io = (l[0] - r[0]).hypot(l[1] - r[1]);
    if io <= 0.0 {
        return None;
    }
    let sum: f32 = pred.iter().zip(truth).take(68).map(|(p, t)| (p[0] - t[0]).hypot(p[1] - t[1])).sum();
    Some(sum / 68.0 / io)
}

/// The threshold `t` on `scores` (predict `true` when `score >= t`) that labels the most
/// samples right: 0.5 or a midpoint between two neighbouring distinct scores; ties go to the
/// threshold nearest 0.5 (the uncalibrated decision).
pub fn best_threshold(scores: &[f32], labels: &[bool]) -> f32 {
    let mut sorted: Vec<f32> = scores.to_vec();
    sorted.sort_by(f32::total_cmp);
    sorted.dedup();
    let candidates = std::iter::once(0.5).chain(sorted.windows(2).map(|w| (w[0] + w[1]) / 2.0));
    let correct = |t: f32| scores.iter().zip(labels).filter(|(s, l)| (**s >= t) == **l).count();
    let mut best = (0usize, f32::INFINITY, 0.5f32); // (correct, distance from 0.5, threshold)
    for t in candidates {
        let (c, d) = (correct(t), (t - 0.5).abs());
        if c > best.0 || (c == best.0 && d < best.1) {
            best = (c, d, t);
        }
    }
    best.2
}

/// Leave-one-out accuracy of a fitted threshold: each sample is labelled with the
/// [`best_threshold`] of the other samples of its group (`groups[i]`; one group for a single
/// threshold), so the figure is not measured on the data the threshold was fitted to.
pub fn loo_threshold_accuracy(scores: &[f32], labels: &[bool], groups: &[usize]) -> f64 {
    let n = scores.len().min(labels.len()).min(groups.len());
    let correct = (0..n)
        .filter(|&i| {
            let others: Vec<usize> = (0..n).filter(|&j| j != i && groups[j] == groups[i]).collect();
            let s: Vec<f32> = others.iter().map(|&j| scores[j]).collect();
            let l: Vec<bool> = others.iter().map(|&j| labels[j]).collect();
            (scores[i] >= best_threshold(&s, &l)) == labels[i]
        })
        .count();
    correct as f64 / n.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = "<?xml version='1.0'?>\n<dataset><images>\n\
        <image file='a.jpg' width='500' height='375'>\n\
          <box top='90' left='194' width='37' height='38'/>\n\
          <box top='10' left='20' width='15' height='15'>\n\
            <part name='01' x='5' y='6'/>\n<part name='00' x='1' y='2'/>\n\
          </box>\n\
        </image>\n<image file=\"b.jpg\"></image></images></dataset>";

    #[test]
    fn parses_boxes_and_parts() {
        let imgs = parse_dlib_xml(XML).expect("parse");
        assert_eq!(imgs.len(), 2);
        assert_eq!(imgs[0].file, "a.jpg");
        assert_eq!(imgs[0].boxes[0], BoxF { x: 194.0, y: 90.0, w: 37.0, h: 38.0 });
        assert_eq!(imgs[0].parts[1], vec![[1.0, 2.0], [5.0, 6.0]]);
        assert!(imgs[0].parts[0].is_empty());
        assert_eq!(imgs[1].file, "b.jpg");
        assert!(parse_dlib_xml("<box top='1'/>").is_err());
    }

    #[test]
    fn matching_counts_hits_misses_and_ignores_small_faces() {
        let t = [
            BoxF { x: 0.0, y: 0.0, w: 40.0, h: 40.0 },
            BoxF { x: 100.0, y: 0.0, w: 40.0, h: 40.0 },
            BoxF { x: 200.0, y: 0.0, w: 10.0, h: 10.0 },
        ];
        let d = [
            (BoxF { x: 2.0, y: 2.0, w: 40.0, h: 40.0 }, 0.9),
            (BoxF { x: 1.0, y: 1.0, w: 40.0, h: 40.0 }, 0.8), // second hit on the same face: fp
            (BoxF { x: 200.0, y: 0.0, w: 10.0, h: 10.0 }, 0.99), // a small face: ignored
        ];
        let c = match_detections(&d, &t, 0.5, 20.0);
        assert_eq!(c, Counts { tp: 1, fp: 1, missed: 1 });
        assert!((c.recall() - 0.5).abs() < 1e-12 && (c.precision() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn nme_is_normalised_by_the_eye_distance() {
        let mut truth = vec![[0.0f32; 2]; 68];
        for p in &mut truth[42..48] {
            *p = [10.0, 0.0];
        }
        let pred: Vec<Point> = truth.iter().map(|p| [p[0] + 1.0, p[1]]).collect();
        assert!((landmark_nme(&pred, &truth).expect("nme") - 0.1).abs() < 1e-6);
        assert!(landmark_nme(&pred[..5], &truth).is_none());
    }

    #[test]
    fn best_threshold_separates_and_prefers_one_half() {
        // Separable at any threshold between 0.2 and 0.7: 0.5 is kept.
        assert_eq!(best_threshold(&[0.1, 0.2, 0.7, 0.9], &[false, false, true, true]), 0.5);
        // Only a threshold between 0.8 and 0.9 separates these.
        let t = best_threshold(&[0.1, 0.6, 0.8, 0.9, 0.95], &[false, false, false, true, true]);
        assert!((t - 0.85).abs() < 1e-6, "{t}");
    }

    #[test]
    fn leave_one_out_does_not_see_the_held_out_sample() {
        let scores = [0.1, 0.6, 0.8, 0.9, 0.95];
        let labels = [false, false, false, true, true];
        // Without 0.8 the others separate at 0.75 (between 0.6 and 0.9), which labels the
        // held-out 0.8 true; every other sample is labelled right by the others' 0.85 or 0.875:
        // 4 of 5.
        let acc = loo_threshold_accuracy(&scores, &labels, &[0; 5]);
        assert!((acc - 0.8).abs() < 1e-9, "{acc}");
        // Two groups, each perfectly separable at 0.5 without the held-out sample.
        let acc = loo_threshold_accuracy(
            &[0.1, 0.2, 0.9, 0.8, 0.3, 0.7],
            &[false, false, true, true, false, true],
            &[0, 0, 0, 0, 1, 1],
        );
        assert!(acc > 0.99, "{acc}");
    }
}

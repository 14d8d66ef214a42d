//! `sightline review --simulate TRUTH.csv`: a simulated reviewer answers from the ground truth,
//! in the order the queue gives, and the labels are scored after each budget step (the same
//! scoring as the annotation evaluation: one vote per duplicate group).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use sightline_clustering::dpc::SplitMix64;
use sightline_clustering::review::{self, Current, Params, Strategy};

use super::load::Loaded;
use crate::report::score::{self, LabelRow, Labels, TruthRow};

/// The budgets (reviewed images per collection) the curve is measured at.
pub const BUDGETS: [usize; 5] = [0, 5, 10, 20, 50];

/// Images picked per queue request in the simulation (then the labels are recomputed).
pub const BATCH: usize = 5;

/// Seeds the random baseline is averaged over.
pub const RANDOM_SEEDS: u64 = 5;

/// One strategy's curve, pooled over the collections.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Curve {
    /// `uncertainty` or `random`.
    pub strategy: Strategy,
    /// Reviewed images per collection at each point.
    pub budget: Vec<usize>,
    /// Precision of `product` at each budget.
    pub precision: Vec<f64>,
    /// Recall of `product`.
    pub recall: Vec<f64>,
    /// F1 of `product`.
    pub f1: Vec<f64>,
    /// F1 over the duplicate groups nobody reviewed (`null` once every group was reviewed).
    pub f1_unreviewed: Vec<Option<f64>>,
}

/// Per collection: the labels after the last budget step and the reviewed items.
pub type Finals = BTreeMap<String, (Vec<Current>, BTreeSet<usize>)>;

/// A simulated run of one strategy and seed: the curve points and the final labels.
struct Run {
    points: Vec<[f64; 4]>,
    finals: Finals,
}

/// The reviewer's answer for each item of each collection: the truth of its duplicate group.
fn answers(collections: &BTreeMap<String, Loaded>, truth: &[TruthRow]) -> BTreeMap<String, Vec<Option<bool>>> {
    let by_file: BTreeMap<(&str, &str), &TruthRow> =
        truth.iter().map(|t| ((t.collection.as_str(), t.file.as_str()), t)).collect();
    let label_of = |c: &str, f: &str| -> Option<bool> {
        let t = by_file.get(&(c, f))?;
        match &t.duplicate_of {
            Some(o) => by_file.get(&(c, o.as_str())).map(|o| o.product),
            None => Some(t.product),
        }
    };
    collections
        .iter()
        .map(|(name, l)| (name.clone(), l.images.iter().map(|i| label_of(name, &i.file)).collect()))
        .collect()
}

/// The labels of every file (items and copies) for scoring.
fn labels_of(collections: &BTreeMap<String, Loaded>, current: &BTreeMap<String, Vec<Current>>) -> Labels {
    let mut labels = Labels::new();
    for (name, l) in collections {
        for (image, c) in l.images.iter().zip(&current[name]) {
            let label = if c.product { "product" } else { "noise" };
            labels.insert(
                (name.clone(), image.file.clone()),
                LabelRow { label: label.into(), cluster: image.cluster.map(u64::from), duplicate_of: None },
            );
        }
        for copy in &l.copies {
            labels.insert(
                (name.clone(), copy.file.clone()),
                LabelRow { label: "duplicate".into(), cluster: None, duplicate_of: copy.original.clone() },
            );
        }
    }
    labels
}

/// Precision, recall, F1 over all groups, and F1 over the groups with no reviewed file.
fn measure(
    collections: &BTreeMap<String, Loaded>,
    truth: &[TruthRow],
    current: &BTreeMap<String, Vec<Current>>,
    reviewed: &BTreeMap<String, BTreeSet<usize>>,
) -> [f64; 4] {
    let labels = labels_of(collections, current);
    let all = score::score(truth, &labels).overall;
    let groups = score::groups(truth);
    let reviewed_groups: BTreeSet<(String, String)> = reviewed
        .iter()
        .flat_map(|(c, set)| {
            set.iter().filter_map(|&i| {
                let file = &collections[c].images[i].file;
                groups.get(&(c.clone(), file.clone())).map(|g| (c.clone(), g.clone()))
            })
        })
        .collect();
    let rest: Vec<TruthRow> = truth
        .iter()
        .filter(|t| {
            let g = groups[&(t.collection.clone(), t.file.clone())].clone();
            !reviewed_groups.contains(&(t.collection.clone(), g))
        })
        .cloned()
        .collect();
    let unreviewed = score::score(&rest, &labels).overall;
    // Undefined (NaN) when no group is left unreviewed.
    let left = unreviewed.tp + unreviewed.fp + unreviewed.fn_ + unreviewed.tn;
    let f1_unreviewed = if left == 0 { f64::NAN } else { unreviewed.f1() };
    [all.precision().unwrap_or(0.0), all.recall().unwrap_or(0.0), all.f1(), f1_unreviewed]
}

fn simulate(
    collections: &BTreeMap<String, Loaded>,
    truth: &[TruthRow],
    answers: &BTreeMap<String, Vec<Option<bool>>>,
    budgets: &[usize],
    strategy: Strategy,
    params: &Params,
    seed: u64,
) -> Run {
    let mut rng = SplitMix64(seed);
    let mut reviews: BTreeMap<String, BTreeMap<usize, bool>> =
        collections.keys().map(|c| (c.clone(), BTreeMap::new())).collect();
    let mut current: BTreeMap<String, Vec<Current>> = collections
        .iter()
        .map(|(c, l)| (c.clone(), review::relabel(&l.collection, &l.graph, &BTreeMap::new(), params)))
        .collect();
    let mut points = Vec::new();
    for &budget in budgets {
        for (name, l) in collections {
            let done = reviews.get_mut(name).expect("every collection");
            let cur = current.get_mut(name).expect("every collection");
            let answer = &answers[name];
            // Images the truth does not know cannot be answered: they are never asked.
            let unknown = |i: usize| answer[i].is_none();
            while done.len() < budget.min(l.images.len()) {
                let want = BATCH.min(budget - done.len());
                let picked = review::queue(
                    cur,
                    &l.graph,
                    &|i| done.contains_key(&i) || unknown(i),
                    want,
                    strategy,
                    params.diversity,
                    &mut rng,
                );
                if picked.is_empty() {
                    break;
                }
                for i in picked {
                    done.insert(i, answer[i].expect("asked only where known"));
                }
                *cur = review::relabel(&l.collection, &l.graph, done, params);
            }
        }
        let reviewed: BTreeMap<String, BTreeSet<usize>> =
            reviews.iter().map(|(c, r)| (c.clone(), r.keys().copied().collect())).collect();
        points.push(measure(collections, truth, &current, &reviewed));
    }
    let finals = current
        .into_iter()
        .map(|(c, cur)| {
            let set = reviews[&c].keys().copied().collect();
            (c, (cur, set))
        })
        .collect();
    Run { points, finals }
}

/// The curves of both strategies (random: the mean over [`RANDOM_SEEDS`] seeds from `seed`), and
/// the final labels of `strategy` (random: its first seed).
pub fn run(
    collections: &BTreeMap<String, Loaded>,
    truth: &[TruthRow],
    max_budget: usize,
    strategy: Strategy,
    params: &Params,
    seed: u64,
) -> (Vec<Curve>, Finals) {
    let budgets: Vec<usize> = BUDGETS.iter().copied().filter(|&b| b <= max_budget).collect();
    let answers = answers(collections, truth);
    let mut curves = Vec::new();
    let mut finals = BTreeMap::new();
    for s in [Strategy::Uncertainty, Strategy::Random] {
        let seeds = if s == Strategy::Random { RANDOM_SEEDS } else { 1 };
        // Sums and counts per point, over the seeds where the value is defined.
        let mut sum = vec![[0.0f64; 4]; budgets.len()];
        let mut count = vec![[0usize; 4]; budgets.len()];
        for k in 0..seeds {
            let run = simulate(collections, truth, &answers, &budgets, s, params, seed + k);
            for ((acc, n), p) in sum.iter_mut().zip(&mut count).zip(&run.points) {
                for j in 0..4 {
                    if !p[j].is_nan() {
                        acc[j] += p[j];
                        n[j] += 1;
                    }
                }
            }
            if s == strategy && k == 0 {
                finals = run.finals;
            }
        }
        let mean = |j: usize| -> Vec<Option<f64>> {
            sum.iter().zip(&count).map(|(a, n)| (n[j] > 0).then(|| a[j] / n[j] as f64)).collect()
        };
        let defined = |j: usize| mean(j).into_iter().map(|v| v.unwrap_or(0.0)).collect::<Vec<f64>>();
        curves.push(Curve {
            strategy: s,
            budget: budgets.clone(),
            precision: defined(0),
            recall: defined(1),
            f1: defined(2),
            f1_unreviewed: mean(3),
        });
    }
    (curves, finals)
}

/// `strategy,budget,precision,recall,f1,f1_unreviewed`.
pub fn curves_csv(curves: &[Curve]) -> String {
    let mut s = String::from("strategy,budget,precision,recall,f1,f1_unreviewed\n");
    for c in curves {
        let name = c.strategy.as_str();
        for i in 0..c.budget.len() {
            let _ = writeln!(
                s,
                "{name},{},{:.4},{:.4},{:.4},{}",
                c.budget[i],
                c.precision[i],
                c.recall[i],
                c.f1[i],
                c.f1_unreviewed[i].map(|v| format!("{v:.4}")).unwrap_or_default()
            );
        }
    }
    s
}

/// F1 (solid) and F1 of the unreviewed images (dashed) against the budget, one colour per
/// strategy.
pub fn curves_svg(curves: &[Curve], title: &str) -> String {
    let (w, h, left, right, top, bottom) = (640.0f64, 340.0f64, 56.0, 200.0, 34.0, 40.0);
    let xmax = curves.iter().flat_map(|c| c.budget.iter()).copied().max().unwrap_or(1).max(1) as f64;
    let values = curves.iter().flat_map(|c| c.f1.iter().copied().chain(c.f1_unreviewed.iter().flatten().copied()));
    let ymin = (values.fold(1.0f64, f64::min) - 0.02).clamp(0.0, 0.95);
    let x = |b: f64| left + (w - left - right) * b / xmax;
    let y = |v: f64| top + (h - top - bottom) * (1.0 - (v - ymin) / (1.0 - ymin));
    let mut s = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' viewBox='0 0 {w} {h}' font-family='sans-serif' font-size='12'>\
<rect width='100%' height='100%' fill='white'/><text x='{left}' y='20' font-size='14'>{}</text>",
        crate::report::annotate::esc(title)
    );
    for k in 0..=4 {
        let v = ymin + (1.0 - ymin) * f64::from(k) / 4.0;
        let _ = write!(
            s,
            "<line x1='{left}' x2='{}' y1='{y0:.1}' y2='{y0:.1}' stroke='#ddd'/><text x='{}' y='{:.1}' text-anchor='end'>{v:.3}</text>",
            w - right,
            left - 6.0,
            y(v) + 4.0,
            y0 = y(v)
        );
    }
    if let Some(c) = curves.first() {
        for &b in &c.budget {
            let _ = write!(s, "<text x='{:.1}' y='{}' text-anchor='middle'>{b}</text>", x(b as f64), h - bottom + 16.0);
        }
    }
    let _ = write!(
        s,
        "<text x='{:.1}' y='{}' text-anchor='middle'>reviewed images per collection</text>",
        (left + w - right) / 2.0,
        h - 6.0
    );
    let colours = ["#1f77b4", "#d62728"];
    for (k, c) in curves.iter().enumerate() {
        let colour = colours[k % colours.len()];
        let f1: Vec<Option<f64>> = c.f1.iter().copied().map(Some).collect();
        for (series, dash, label) in [(&f1, "", "F1"), (&c.f1_unreviewed, "5,4", "F1 unreviewed")] {
            let pts: Vec<String> = c
                .budget
                .iter()
                .zip(series)
                .filter_map(|(&b, v)| v.map(|v| format!("{:.1},{:.1}", x(b as f64), y(v))))
                .collect();
            let _ = write!(
                s,
                "<polyline fill='none' stroke='{colour}' stroke-width='2' stroke-dasharray='{dash}' points='{}'/>",
                pts.join(" ")
            );
            for p in &pts {
                let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
                let _ = write!(s, "<circle cx='{px}' cy='{py}' r='3' fill='{colour}'/>");
            }
            let name = c.strategy.as_str();
            let ly = top + 10.0 + 18.0 * (2 * k + usize::from(!dash.is_empty())) as f64;
            let _ = write!(
                s,
                "<line x1='{}' x2='{}' y1='{ly}' y2='{ly}' stroke='{colour}' stroke-width='2' stroke-dasharray='{dash}'/><text x='{}' y='{}'>{name} {label}</text>",
                w - right + 8.0,
                w - right + 30.0,
                w - right + 34.0,
                ly + 4.0
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

/// One bin of the reliability diagram.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Bin {
    /// Lower edge of the confidence bin.
    pub from: f32,
    /// Upper edge.
    pub to: f32,
    /// Labels in the bin.
    pub labels: usize,
    /// Of which right.
    pub right: usize,
    /// Their mean confidence.
    pub mean_confidence: f64,
}

impl Bin {
    /// The share right.
    pub fn accuracy(&self) -> f64 {
        if self.labels == 0 { 0.0 } else { self.right as f64 / self.labels as f64 }
    }
}

/// The reliability of the automatic labels' confidences at `temperature`: per confidence bin,
/// how many labels and how many were right (against the truth; one per item, copies left out).
pub fn calibration(collections: &BTreeMap<String, Loaded>, truth: &[TruthRow], temperature: f32) -> Vec<Bin> {
    let answers = answers(collections, truth);
    let edges = [0.5f32, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0001];
    let mut bins: Vec<Bin> = edges
        .windows(2)
        .map(|w| Bin { from: w[0], to: w[1].min(1.0), labels: 0, right: 0, mean_confidence: 0.0 })
        .collect();
    for (name, l) in collections {
        for (item, answer) in l.collection.items.iter().zip(&answers[name]) {
            let Some(product) = answer else { continue };
            let c = item.auto.confidence(temperature);
            if let Some(b) = edges.windows(2).position(|w| c >= w[0] && c < w[1]) {
                bins[b].labels += 1;
                bins[b].right += usize::from(item.auto.product == *product);
                bins[b].mean_confidence += f64::from(c);
            }
        }
    }
    for b in &mut bins {
        if b.labels > 0 {
            b.mean_confidence /= b.labels as f64;
        }
    }
    bins
}

/// Expected calibration error: the label-weighted mean |accuracy − confidence| over the bins.
pub fn expected_calibration_error(bins: &[Bin]) -> f64 {
    let n: usize = bins.iter().map(|b| b.labels).sum();
    if n == 0 {
        return 0.0;
    }
    bins.iter().map(|b| b.labels as f64 * (b.accuracy() - b.mean_confidence).abs()).sum::<f64>() / n as f64
}

/// The reliability diagram: accuracy against confidence per bin, the diagonal for reference.
pub fn calibration_svg(bins: &[Bin]) -> String {
    let (w, h, pad) = (360.0f64, 320.0f64, 44.0f64);
    let x = |v: f64| pad + (w - 2.0 * pad) * (v - 0.5) / 0.5;
    let y = |v: f64| h - pad - (h - 2.0 * pad) * v;
    let mut s = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' viewBox='0 0 {w} {h}' font-family='sans-serif' font-size='12'>\
<rect width='100%' height='100%' fill='white'/><text x='{pad}' y='20' font-size='14'>reliability of the automatic labels (ECE {:.3})</text>\
<line x1='{:.1}' y1='{:.1}' x2='{:.1}' y2='{:.1}' stroke='#999' stroke-dasharray='4,4'/>",
        expected_calibration_error(bins),
        x(0.5),
        y(0.5),
        x(1.0),
        y(1.0)
    );
    for k in 0..=5 {
        let v = 0.5 + f64::from(k) * 0.1;
        let _ = write!(
            s,
            "<text x='{:.1}' y='{}' text-anchor='middle'>{v:.1}</text><text x='{}' y='{:.1}' text-anchor='end'>{:.1}</text>",
            x(v),
            h - pad + 16.0,
            pad - 6.0,
            y(f64::from(k) * 0.2) + 4.0,
            f64::from(k) * 0.2
        );
    }
    let _ = write!(
        s,
        "<text x='{:.1}' y='{}' text-anchor='middle'>confidence</text><text x='12' y='{:.1}' transform='rotate(-90 12 {:.1})' text-anchor='middle'>share right</text>",
        w / 2.0,
        h - 8.0,
        h / 2.0,
        h / 2.0
    );
    for b in bins {
        let (lo, hi, n) = (b.from, b.to, b.labels);
        if n == 0 {
            continue;
        }
        let acc = b.accuracy();
        let _ = write!(
            s,
            "<rect x='{:.1}' y='{:.1}' width='{:.1}' height='{:.1}' fill='#1f77b4' fill-opacity='0.6'/><text x='{:.1}' y='{:.1}' text-anchor='middle' font-size='10'>{n}</text>",
            x(f64::from(lo)) + 1.0,
            y(acc),
            (x(f64::from(hi)) - x(f64::from(lo)) - 2.0).max(1.0),
            y(0.0) - y(acc),
            (x(f64::from(lo)) + x(f64::from(hi))) / 2.0,
            y(acc) - 4.0
        );
    }
    s.push_str("</svg>\n");
    s
}

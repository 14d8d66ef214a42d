//! Review with active learning: how sure each automatic label is, which images a person should
//! look at first, and how their corrections change the labels of the images nobody looked at.
//! The CLI's simulated reviewer and the review web page both run this code
//! (`docs/review.md`).
//!
//! - **Confidence.** Every automatic label carries a margin: how far the evidence that decided
//!   it lies from the rule's threshold, in log units (ρ against the density floor, cluster size
//!   against the product-cluster threshold, a detect flag's score against its threshold).
//!   [`confidence`] maps it through a logistic with one temperature ([`TEMPERATURE`]).
//! - **Queue.** Uncertainty sampling (least confident first) with diversity: inside one batch an
//!   image loses priority by its similarity to the images already picked (maximal marginal
//!   relevance), so a batch never holds ten near-identical images of one cluster edge. A random
//!   order is the baseline.
//! - **Propagation.** Each label is an expected value y ∈ (−1, 1) (product +1, noise −1, scaled by
//!   its confidence). A correction sets its image to ±1; its residual (new − old) diffuses over
//!   the collection's k-nearest-neighbour graph of embeddings ((I − αS)⁻¹, label spreading,
//!   Zhou et al. 2004) and is added to every other image's y; a label flips where the sum
//!   changes sign. With no review nothing changes. Optionally the rule's thresholds are refitted
//!   first to the reviewed images ([`Propagation::Refit`]).

use std::collections::BTreeMap;

use crate::dpc::SplitMix64;
use crate::labels::{LabelRule, cluster_median_rho_of};

/// Temperature of [`confidence`]: a margin of this many log units gives 73 % (σ(1)); a density
/// 10 % off the floor, or a cluster 10 % off the size threshold, is a fairly sure call. Chosen
/// on the dev collections by calibration (docs/review.md: expected calibration error 0.06, against
/// 0.14 at the a-priori 0.2, which was under-confident); the review loop's F1 barely moves
/// between the two.
pub const TEMPERATURE: f32 = 0.1;

/// Margin given to a label with nothing graded behind it (a decode failure, a collection too
/// small to cluster): sure, but not certain.
pub const FLAT_MARGIN: f32 = 1.0;

/// How sure a label with this margin is at temperature `t`: σ(margin / t), in [0.5, 1) for a
/// non-negative margin.
pub fn confidence(margin: f32, t: f32) -> f32 {
    1.0 / (1.0 + (-margin / t).exp())
}

/// An automatic label and what decided it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AutoLabel {
    /// Labelled product.
    pub product: bool,
    /// What decided it: `cluster` (a large compact cluster), `small-cluster`, `halo`,
    /// `isolated` (below the density floor), `detect` (a noise flag), `failed`, `unclustered`.
    pub decider: String,
    /// Distance of the evidence from the threshold, in log units (≥ 0).
    pub margin: f32,
}

impl AutoLabel {
    /// [`confidence`] of this label at temperature `t`.
    pub fn confidence(&self, t: f32) -> f32 {
        confidence(self.margin, t)
    }

    /// The expected label in (−1, 1) at temperature `t`: 2·confidence − 1 for product, its
    /// negative for noise.
    pub fn expected(&self, t: f32) -> f32 {
        let c = 2.0 * self.confidence(t) - 1.0;
        if self.product { c } else { -c }
    }
}

/// The auto labels of one clustered collection with their margins: the same decisions as
/// [`crate::labels::label`] for `rule` over points with clusters `clusters`, halo flags `halo`
/// and densities `rho`.
pub fn rule_labels(clusters: &[u32], halo: &[bool], rho: &[f32], rule: &LabelRule) -> Vec<AutoLabel> {
    let n = clusters.len();
    let mut sizes: BTreeMap<u32, usize> = BTreeMap::new();
    for &l in clusters {
        *sizes.entry(l).or_insert(0) += 1;
    }
    let threshold = ((rule.min_fraction * n as f32).ceil() as usize).max(rule.min_size.min(n)).max(1);
    let median = cluster_median_rho_of(clusters, rho);
    let ln = |x: f32| x.max(1e-12).ln();
    (0..n)
        .map(|i| {
            let size = sizes[&clusters[i]];
            let med = median[&clusters[i]].max(1e-12);
            let floor = rule.min_density * med;
            // log distance to the size threshold: half a cluster short of it is ln 2.
            let size_margin = ln(size as f32 + 0.5) - ln(threshold as f32 - 0.5).max(0.0);
            if size < threshold {
                AutoLabel { product: false, decider: "small-cluster".into(), margin: -size_margin }
            } else if halo[i] && rule.halo_is_noise {
                // Below the border density of its cluster; how far below its median tells.
                AutoLabel { product: false, decider: "halo".into(), margin: (ln(med) - ln(rho[i])).max(0.0) }
            } else if rho[i] < floor {
                AutoLabel { product: false, decider: "isolated".into(), margin: ln(floor) - ln(rho[i]) }
            } else {
                let density_margin = if rule.min_density > 0.0 { ln(rho[i]) - ln(floor) } else { f32::INFINITY };
                AutoLabel { product: true, decider: "cluster".into(), margin: size_margin.min(density_margin) }
            }
        })
        .collect()
}

/// The clustered items of a collection, as the rule takes them: their indices, and per point
/// its cluster, halo flag and density.
struct ClusteredPoints {
    idx: Vec<usize>,
    clusters: Vec<u32>,
    halo: Vec<bool>,
    rho: Vec<f32>,
}

impl ClusteredPoints {
    fn of(items: &[Item]) -> Self {
        let (idx, facts): (Vec<usize>, Vec<Clustered>) =
            items.iter().enumerate().filter_map(|(i, item)| item.clustered.map(|c| (i, c))).unzip();
        Self {
            idx,
            clusters: facts.iter().map(|c| c.cluster).collect(),
            halo: facts.iter().map(|c| c.halo).collect(),
            rho: facts.iter().map(|c| c.rho).collect(),
        }
    }
}

/// Gives the clustered items the margins of [`rule_labels`] over the collection's clustered
/// points. Where the rule does not reproduce an item's label (the stage ran another rule), the
/// label stands with its margin unchanged.
pub fn grade_clustered(items: &mut [Item], rule: &LabelRule) {
    let ClusteredPoints { idx, clusters, halo, rho } = ClusteredPoints::of(items);
    for (&i, label) in idx.iter().zip(rule_labels(&clusters, &halo, &rho, rule)) {
        if label.product == items[i].auto.product {
            items[i].auto = label;
        }
    }
}

/// What a collection's review works on: per image, its automatic label, the clustering facts
/// the rule can be re-applied to, and its embedding.
#[derive(Debug, Clone, Default)]
pub struct Collection {
    /// The images.
    pub items: Vec<Item>,
}

/// One image under review.
#[derive(Debug, Clone)]
pub struct Item {
    /// The automatic label.
    pub auto: AutoLabel,
    /// Cluster, halo and ρ, when the image was clustered (the rule can be re-applied).
    pub clustered: Option<Clustered>,
    /// The embedding, L2-normalised, when the image was embedded.
    pub vector: Option<Vec<f32>>,
}

/// The clustering facts of one image.
#[derive(Debug, Clone, Copy)]
pub struct Clustered {
    /// Cluster id.
    pub cluster: u32,
    /// In its cluster's halo.
    pub halo: bool,
    /// Local density.
    pub rho: f32,
}

/// How corrections reach the images nobody reviewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Propagation {
    /// Only the reviewed images change.
    None,
    /// Refit the rule's thresholds to the reviewed images, then re-apply it.
    Refit,
    /// Diffuse the corrections' residuals over the embedding graph.
    Spread,
    /// Refit, then spread.
    RefitSpread,
}

impl Propagation {
    /// The name `--propagation` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Refit => "refit",
            Self::Spread => "spread",
            Self::RefitSpread => "refit+spread",
        }
    }
}

impl std::str::FromStr for Propagation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Self::None),
            "refit" => Ok(Self::Refit),
            "spread" => Ok(Self::Spread),
            "refit+spread" | "both" => Ok(Self::RefitSpread),
            other => Err(format!("unknown propagation {other:?} (none, refit, spread, refit+spread)")),
        }
    }
}

/// Where an image's current label comes from (its lineage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// The pipeline's label, unchanged.
    Auto,
    /// A person's correction or confirmation.
    Review,
    /// The rule re-applied with thresholds refitted to the reviews.
    Refit,
    /// Changed by the reviews' propagation over the embedding graph.
    Propagated,
}

impl Source {
    /// The name in exports (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Review => "review",
            Self::Refit => "refit",
            Self::Propagated => "propagated",
        }
    }
}

/// The current label of one image.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Current {
    /// Labelled product.
    pub product: bool,
    /// How sure, in [0.5, 1].
    pub confidence: f32,
    /// What decided it.
    pub source: Source,
}

/// Parameters of the propagation.
#[derive(Debug, Clone)]
pub struct Params {
    /// Neighbours per image in the graph.
    pub k: usize,
    /// Spreading strength α in (0, 1): the share of a node's value passed on per step.
    pub alpha: f32,
    /// How corrections propagate.
    pub propagation: Propagation,
    /// The rule the collection was labelled with (the refit starts from it).
    pub rule: LabelRule,
    /// Temperature of [`confidence`].
    pub temperature: f32,
    /// Weight of the queue's diversity penalty ([`DIVERSITY`]).
    pub diversity: f32,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            k: 10,
            alpha: 0.8,
            propagation: Propagation::Spread,
            rule: LabelRule::default(),
            temperature: TEMPERATURE,
            diversity: DIVERSITY,
        }
    }
}

/// The neighbourhood graph of a collection: row-normalised symmetric weights
/// S = D^(−1/2) W D^(−1/2) over the images that have embeddings.
#[derive(Debug, Clone)]
pub struct Graph {
    n: usize,
    /// Symmetric normalised weights (dense, n × n; collections are hundreds of images).
    s: Vec<f32>,
    /// Cosine similarity between images (0 where either has no embedding).
    cos: Vec<f32>,
}

impl Graph {
    /// Builds the graph: each image is joined to its `k` most similar, with weight
    /// exp(−(1 − cos) / σ), σ the mean distance to the k-th neighbour (self-tuning), symmetrised
    /// by the maximum.
    pub fn new(items: &[Item], k: usize) -> Self {
        let n = items.len();
        let mut cos = vec![0.0f32; n * n];
        for i in 0..n {
            for j in i + 1..n {
                if let (Some(a), Some(b)) = (&items[i].vector, &items[j].vector) {
                    let c: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
                    cos[i * n + j] = c;
                    cos[j * n + i] = c;
                }
            }
        }
        let embedded: Vec<usize> = (0..n).filter(|&i| items[i].vector.is_some()).collect();
        let k = k.min(embedded.len().saturating_sub(1));
        let mut w = vec![0.0f32; n * n];
        if k > 0 {
            let mut neighbours: Vec<Vec<(usize, f32)>> = vec![Vec::new(); n];
            let mut kth = Vec::new();
            for &i in &embedded {
                let mut d: Vec<(usize, f32)> =
                    embedded.iter().filter(|&&j| j != i).map(|&j| (j, 1.0 - cos[i * n + j])).collect();
                d.sort_by(|a, b| a.1.total_cmp(&b.1));
                d.truncate(k);
                kth.push(d[k - 1].1);
                neighbours[i] = d;
            }
            let sigma = (kth.iter().sum::<f32>() / kth.len() as f32).max(1e-6);
            for (i, list) in neighbours.iter().enumerate() {
                for &(j, d) in list {
                    let v = (-d / sigma).exp();
                    w[i * n + j] = w[i * n + j].max(v);
                    w[j * n + i] = w[j * n + i].max(v);
                }
            }
        }
        let deg: Vec<f32> = (0..n).map(|i| w[i * n..(i + 1) * n].iter().sum::<f32>()).collect();
        let mut s = w;
        for i in 0..n {
            for j in 0..n {
                let d = (deg[i] * deg[j]).sqrt();
                s[i * n + j] = if d > 0.0 { s[i * n + j] / d } else { 0.0 };
            }
        }
        Self { n, s, cos }
    }

    /// Cosine similarity of images `i` and `j` (0 if either has no embedding).
    pub fn cos(&self, i: usize, j: usize) -> f32 {
        self.cos[i * self.n + j]
    }

    /// (I − αS)⁻¹ r, by the Neumann series (converges for α < 1; 60 steps leave < 0.8^60).
    pub fn spread(&self, r: &[f32], alpha: f32) -> Vec<f32> {
        let n = self.n;
        let mut f = r.to_vec();
        let mut next = vec![0.0f32; n];
        for _ in 0..60 {
            for i in 0..n {
                let row = &self.s[i * n..(i + 1) * n];
                let mut acc = 0.0f32;
                for (sij, fj) in row.iter().zip(&f) {
                    acc += sij * fj;
                }
                next[i] = r[i] + alpha * acc;
            }
            std::mem::swap(&mut f, &mut next);
        }
        f
    }
}

/// The labels of a collection after `reviews` (image index → the reviewer's product/noise).
pub fn relabel(
    collection: &Collection,
    graph: &Graph,
    reviews: &BTreeMap<usize, bool>,
    params: &Params,
) -> Vec<Current> {
    let items = &collection.items;
    let refit = matches!(params.propagation, Propagation::Refit | Propagation::RefitSpread) && !reviews.is_empty();
    let spread = matches!(params.propagation, Propagation::Spread | Propagation::RefitSpread) && !reviews.is_empty();
    // The prior: the pipeline's labels, or the rule refitted to the reviews.
    let (prior, prior_source): (Vec<AutoLabel>, Source) = if refit {
        (refit_rule(collection, reviews, &params.rule), Source::Refit)
    } else {
        (items.iter().map(|i| i.auto.clone()).collect(), Source::Auto)
    };
    let y: Vec<f32> = prior.iter().map(|l| l.expected(params.temperature)).collect();
    let delta = if spread {
        let mut r = vec![0.0f32; items.len()];
        for (&i, &product) in reviews {
            r[i] = if product { 1.0 } else { -1.0 } - y[i];
        }
        graph.spread(&r, params.alpha)
    } else {
        vec![0.0; items.len()]
    };
    (0..items.len())
        .map(|i| {
            if let Some(&product) = reviews.get(&i) {
                return Current { product, confidence: 1.0, source: Source::Review };
            }
            let v = (y[i] + delta[i]).clamp(-1.0, 1.0);
            let product = if v == 0.0 { prior[i].product } else { v > 0.0 };
            let source = if product != items[i].auto.product {
                if spread && product != prior[i].product { Source::Propagated } else { prior_source }
            } else if product != prior[i].product {
                Source::Propagated
            } else {
                Source::Auto
            };
            Current { product, confidence: 0.5 + v.abs() / 2.0, source }
        })
        .collect()
}

/// The rule with the density floor and halo handling refitted to the reviewed images: of a
/// small grid around the rule, the setting that disagrees with the fewest reviews (ties go to
/// the setting nearest the original), applied to every clustered image. Images that were not
/// clustered keep their labels.
fn refit_rule(collection: &Collection, reviews: &BTreeMap<usize, bool>, rule: &LabelRule) -> Vec<AutoLabel> {
    let ClusteredPoints { idx, clusters, halo, rho } = ClusteredPoints::of(&collection.items);
    let mut best: Option<(usize, f32, Vec<AutoLabel>)> = None;
    for &min_density in &[0.0f32, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0, 1.1] {
        for halo_is_noise in [true, false] {
            let r = LabelRule { min_density, halo_is_noise, ..rule.clone() };
            let labels = rule_labels(&clusters, &halo, &rho, &r);
            let errors =
                idx.iter().zip(&labels).filter(|(i, l)| reviews.get(i).is_some_and(|&p| p != l.product)).count();
            let distance =
                (min_density - rule.min_density).abs() + if halo_is_noise == rule.halo_is_noise { 0.0 } else { 0.5 };
            if best.as_ref().is_none_or(|(e, d, _)| (errors, distance) < (*e, *d)) {
                best = Some((errors, distance, labels));
            }
        }
    }
    let mut out: Vec<AutoLabel> = collection.items.iter().map(|i| i.auto.clone()).collect();
    if let Some((_, _, labels)) = best {
        for (&i, l) in idx.iter().zip(labels) {
            // Images a detect flag or a failure decided stay as they were.
            if matches!(out[i].decider.as_str(), "cluster" | "small-cluster" | "halo" | "isolated") {
                out[i] = l;
            }
        }
    }
    out
}

/// How the queue orders images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Least confident first, diversified within a batch.
    Uncertainty,
    /// A random order (the baseline).
    Random,
}

impl Strategy {
    /// The name `--strategy` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Uncertainty => "uncertainty",
            Self::Random => "random",
        }
    }
}

impl std::str::FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "uncertainty" => Ok(Self::Uncertainty),
            "random" => Ok(Self::Random),
            other => Err(format!("unknown strategy {other:?} (uncertainty, random)")),
        }
    }
}

/// Weight of the diversity penalty: an image as similar to one already in the batch as the
/// collection's most similar pair loses this much of its uncertainty (which is at most 0.5).
pub const DIVERSITY: f32 = 0.5;

/// The next `n` images to review, skipping `skip` (reviewed, or held by another reviewer).
/// Uncertainty: greedily the image of largest (1 − confidence) − `diversity` · s, where s
/// is its similarity to the images picked so far, rescaled so the collection's median pair
/// similarity is 0 and 1 is 1. Random: a uniform draw from `rng`.
pub fn queue(
    current: &[Current],
    graph: &Graph,
    skip: &dyn Fn(usize) -> bool,
    n: usize,
    strategy: Strategy,
    diversity: f32,
    rng: &mut SplitMix64,
) -> Vec<usize> {
    let mut open: Vec<usize> = (0..current.len()).filter(|&i| !skip(i)).collect();
    match strategy {
        Strategy::Random => {
            rng.shuffle(&mut open);
            open.truncate(n);
            open
        }
        Strategy::Uncertainty => {
            let base = median_similarity(graph, current.len());
            let scale = (1.0 - base).max(1e-6);
            let mut picked: Vec<usize> = Vec::new();
            while picked.len() < n && !open.is_empty() {
                let score = |i: usize| {
                    let s = picked.iter().map(|&j| ((graph.cos(i, j) - base) / scale).max(0.0)).fold(0.0f32, f32::max);
                    (1.0 - current[i].confidence) - diversity * s
                };
                let (pos, _) = open
                    .iter()
                    .enumerate()
                    .map(|(p, &i)| (p, score(i)))
                    .fold((0, f32::NEG_INFINITY), |best, x| if x.1 > best.1 { x } else { best });
                picked.push(open.swap_remove(pos));
            }
            picked
        }
    }
}

fn median_similarity(graph: &Graph, n: usize) -> f32 {
    let mut all: Vec<f32> = Vec::with_capacity(n * n / 2);
    for i in 0..n {
        for j in i + 1..n {
            let c = graph.cos(i, j);
            if c != 0.0 {
                all.push(c);
            }
        }
    }
    if all.is_empty() {
        return 0.0;
    }
    let m = all.len() / 2;
    *all.select_nth_unstable_by(m, f32::total_cmp).1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    /// Two tight groups in 3-d: a..e around x (auto product, one of them wrongly noise) and
    /// f..h around y (noise).
    fn toy() -> Collection {
        let product = |margin: f32| AutoLabel { product: true, decider: "cluster".into(), margin };
        let noise = |margin: f32| AutoLabel { product: false, decider: "isolated".into(), margin };
        let v = |x: f32, y: f32, z: f32| Some(unit(&[x, y, z]));
        Collection {
            items: vec![
                Item { auto: product(0.5), clustered: None, vector: v(1.0, 0.05, 0.0) },
                Item { auto: product(0.5), clustered: None, vector: v(1.0, 0.0, 0.05) },
                Item { auto: noise(0.02), clustered: None, vector: v(1.0, 0.04, 0.04) },
                Item { auto: noise(0.03), clustered: None, vector: v(1.0, 0.06, 0.02) },
                Item { auto: product(0.4), clustered: None, vector: v(1.0, 0.02, 0.06) },
                Item { auto: noise(0.6), clustered: None, vector: v(0.0, 1.0, 0.05) },
                Item { auto: noise(0.6), clustered: None, vector: v(0.05, 1.0, 0.0) },
                Item { auto: noise(0.6), clustered: None, vector: v(0.0, 1.0, 0.1) },
            ],
        }
    }

    #[test]
    fn confidence_is_a_logistic_of_the_margin() {
        assert_eq!(confidence(0.0, TEMPERATURE), 0.5);
        assert!((confidence(TEMPERATURE, TEMPERATURE) - 0.731).abs() < 1e-3);
        assert!(confidence(5.0, TEMPERATURE) > 0.999);
    }

    #[test]
    fn rule_labels_agree_with_the_rule() {
        // The same hand-made clustering as the rule's tests: 6 points in cluster 0 (one halo,
        // one thin), 2 in cluster 1.
        let clusters = [0, 0, 0, 0, 0, 0, 1, 1];
        let halo = [false, false, false, false, false, true, false, false];
        let rho = [2.0, 2.1, 1.9, 2.0, 2.2, 1.0, 1.0, 1.0];
        let rule = LabelRule::default();
        let labels = rule_labels(&clusters, &halo, &rho, &rule);
        let deciders: Vec<&str> = labels.iter().map(|l| l.decider.as_str()).collect();
        assert_eq!(
            deciders,
            ["cluster", "cluster", "cluster", "cluster", "cluster", "halo", "small-cluster", "small-cluster"]
        );
        assert!(labels.iter().all(|l| l.margin >= 0.0), "{labels:?}");
        // ρ 1.9 against a floor of 0.9 × 2.0: ln(1.9 / 1.8) ≈ 0.054, the least sure product.
        assert!((labels[2].margin - (1.9f32 / 1.8).ln()).abs() < 1e-5, "{:?}", labels[2]);
        let ours: Vec<bool> = labels.iter().map(|l| l.product).collect();
        assert_eq!(ours, [true, true, true, true, true, false, false, false]);
    }

    #[test]
    fn no_review_changes_nothing() {
        let c = toy();
        let g = Graph::new(&c.items, 3);
        let out = relabel(&c, &g, &BTreeMap::new(), &Params::default());
        assert!(out.iter().zip(&c.items).all(|(o, i)| o.product == i.auto.product && o.source == Source::Auto));
    }

    #[test]
    fn a_correction_spreads_to_its_unsure_neighbours_only() {
        let c = toy();
        let g = Graph::new(&c.items, 3);
        // The reviewer says image 2 (auto noise, unsure) is the product.
        let reviews = BTreeMap::from([(2, true)]);
        let out = relabel(&c, &g, &reviews, &Params { k: 3, ..Params::default() });
        assert_eq!(out[2], Current { product: true, confidence: 1.0, source: Source::Review });
        // Its unsure neighbour 3 flips, by propagation; the confident other group stays noise.
        assert!(out[3].product && out[3].source == Source::Propagated, "{:?}", out[3]);
        assert!(out[5..].iter().all(|o| !o.product && o.source == Source::Auto), "{out:?}");
        // Without propagation only the reviewed image changes.
        let none = relabel(&c, &g, &reviews, &Params { propagation: Propagation::None, ..Params::default() });
        assert!(!none[3].product);
    }

    #[test]
    fn uncertainty_queue_is_least_confident_first_and_diverse() {
        let c = toy();
        let g = Graph::new(&c.items, 3);
        let current = relabel(&c, &g, &BTreeMap::new(), &Params::default());
        let mut rng = SplitMix64(1);
        let first = queue(&current, &g, &|_| false, 1, Strategy::Uncertainty, DIVERSITY, &mut rng);
        assert_eq!(first, [2], "the least confident");
        // Image 3 is nearly as unsure but a near copy of 2: the diversity penalty puts it (and
        // the rest of 2's tight group) below the sure images of the other group.
        let two = queue(&current, &g, &|_| false, 2, Strategy::Uncertainty, DIVERSITY, &mut rng);
        assert_eq!(two[0], 2);
        assert_ne!(two[1], 3, "a near-identical second pick: {two:?}");
        let skip = queue(&current, &g, &|i| i == 2, 1, Strategy::Uncertainty, DIVERSITY, &mut rng);
        assert_eq!(skip, [3]);
        let random = queue(&current, &g, &|i| i < 4, 10, Strategy::Random, DIVERSITY, &mut rng);
        assert_eq!(random.len(), 4);
        assert!(random.iter().all(|&i| i >= 4));
    }
}

//! Training of the retrieval head ([`sightline_embed::head::Head`]) on backbone embeddings:
//! a normalised-softmax (proxy) loss with closed-form gradients and Adam, the projection started
//! at the leading principal directions. Offline only: the workers load and apply heads, they
//! never train one. The settings are the study's first values (`docs/training.md`).

use ndarray::{Array1, Array2, Axis};
use sightline_clustering::dpc::SplitMix64;
use sightline_embed::head::{Head, l2_in_place};

/// Training settings (the study's first values, not tuned: `docs/training.md`).
#[derive(Debug, Clone, Copy)]
pub struct ProxyConfig {
    /// Output dimension.
    pub output: usize,
    /// Softmax scale (inverse temperature) on the cosines.
    pub scale: f32,
    /// Passes over the samples.
    pub epochs: usize,
    /// Samples per step.
    pub batch: usize,
    /// Adam's learning rate.
    pub learning_rate: f32,
    /// Seeds the initial subspace and the batches.
    pub seed: u64,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self { output: 256, scale: 16.0, epochs: 30, batch: 128, learning_rate: 1e-3, seed: 0 }
    }
}

fn l2_rows(m: &mut Array2<f32>) {
    for row in m.rows_mut() {
        l2_in_place(row);
    }
}

/// Orthonormalises the columns of `m` (modified Gram-Schmidt).
fn orthonormalise(m: &mut Array2<f32>) {
    for j in 0..m.ncols() {
        for k in 0..j {
            let d = m.column(j).dot(&m.column(k));
            let ck = m.column(k).to_owned();
            m.column_mut(j).scaled_add(-d, &ck);
        }
        l2_in_place(m.column_mut(j));
    }
}

/// The `k` leading principal directions of the centred rows of `x` (`d × k`), by subspace
/// iteration from a seeded random start.
fn principal_directions(x: &Array2<f32>, k: usize, rng: &mut SplitMix64) -> Array2<f32> {
    let d = x.ncols();
    let mut q = Array2::from_shape_simple_fn((d, k), || rng.normal() as f32);
    orthonormalise(&mut q);
    for _ in 0..6 {
        q = x.t().dot(&x.dot(&q));
        orthonormalise(&mut q);
    }
    q
}

/// Trains a head on `samples` (rows: backbone embeddings) labelled `labels` (0..classes), with
/// a normalised-softmax loss: cosine of the projected sample to a learned proxy per class,
/// times `scale`, softmax over classes. The projection starts at the leading principal
/// directions, the proxies at the projected class means. Returns the head and the mean loss
/// of each epoch; `progress` is called after each epoch.
pub fn train_proxy(
    samples: &Array2<f32>,
    labels: &[usize],
    classes: usize,
    config: &ProxyConfig,
    mut progress: impl FnMut(usize, f32),
) -> (Head, Vec<f32>) {
    let mut rng = SplitMix64(config.seed);
    let mut x = samples.to_owned();
    l2_rows(&mut x);
    let mean = x.mean_axis(Axis(0)).unwrap_or_else(|| Array1::zeros(x.ncols()));
    let x = &x - &mean;
    let k = config.output.min(x.ncols());
    let mut w = principal_directions(&x, k, &mut rng);
    let mut proxies = Array2::<f32>::zeros((classes, k));
    let projected = x.dot(&w);
    for (row, &c) in projected.rows().into_iter().zip(labels) {
        let mut p = proxies.row_mut(c);
        p += &row;
    }
    l2_rows(&mut proxies);

    let mut adam = [Adam::new(w.raw_dim()), Adam::new(proxies.raw_dim())];
    let mut order: Vec<usize> = (0..x.nrows()).collect();
    let mut losses = Vec::with_capacity(config.epochs);
    for epoch in 0..config.epochs {
        rng.shuffle(&mut order);
        let mut total = 0.0f64;
        for chunk in order.chunks(config.batch.max(1)) {
            let xb = x.select(Axis(0), chunk);
            let yb: Vec<usize> = chunk.iter().map(|&i| labels[i]).collect();
            let (loss, gw, gp) = proxy_gradients(&xb, &yb, &w, &proxies, config.scale);
            total += f64::from(loss) * chunk.len() as f64;
            adam[0].step(&mut w, &gw, config.learning_rate);
            adam[1].step(&mut proxies, &gp, config.learning_rate);
        }
        let loss = (total / x.nrows().max(1) as f64) as f32;
        losses.push(loss);
        progress(epoch + 1, loss);
    }
    (Head { mean, projection: w }, losses)
}

/// The mean loss over a batch and its gradients with respect to the projection and the
/// (unnormalised) proxies.
fn proxy_gradients(
    xb: &Array2<f32>,
    yb: &[usize],
    w: &Array2<f32>,
    proxies: &Array2<f32>,
    scale: f32,
) -> (f32, Array2<f32>, Array2<f32>) {
    let n = xb.nrows() as f32;
    let e = xb.dot(w);
    let en: Array1<f32> = e.rows().into_iter().map(|r| r.dot(&r).sqrt().max(1e-12)).collect();
    let f = &e / &en.view().insert_axis(Axis(1));
    let pn: Array1<f32> = proxies.rows().into_iter().map(|r| r.dot(&r).sqrt().max(1e-12)).collect();
    let p = proxies / &pn.view().insert_axis(Axis(1));
    let mut g = f.dot(&p.t()) * scale;
    let mut loss = 0.0f32;
    for (i, mut row) in g.rows_mut().into_iter().enumerate() {
        let max = row.fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        row.mapv_inplace(|v| (v - max).exp());
        let sum = row.sum();
        row /= sum;
        loss -= row[yb[i]].max(1e-12).ln();
        row[yb[i]] -= 1.0;
    }
    g *= scale / n;
    // d loss / d f and / d p, then through the normalisations: (I − u uᵀ) / ‖·‖.
    let gf = g.dot(&p);
    let gpn = g.t().dot(&f);
    let through = |grad: Array2<f32>, unit: &Array2<f32>, norms: &Array1<f32>| {
        let along: Array1<f32> = (&grad * unit).sum_axis(Axis(1));
        (grad - unit * &along.view().insert_axis(Axis(1))) / norms.view().insert_axis(Axis(1))
    };
    let ge = through(gf, &f, &en);
    let gp = through(gpn, &p, &pn);
    (loss / n, xb.t().dot(&ge), gp)
}

/// Adam's moment estimates for one parameter.
struct Adam {
    m: Array2<f32>,
    v: Array2<f32>,
    t: i32,
}

impl Adam {
    fn new(dim: ndarray::Ix2) -> Self {
        Self { m: Array2::zeros(dim), v: Array2::zeros(dim), t: 0 }
    }

    fn step(&mut self, param: &mut Array2<f32>, grad: &Array2<f32>, lr: f32) {
        const B1: f32 = 0.9;
        const B2: f32 = 0.999;
        self.t += 1;
        self.m.zip_mut_with(grad, |m, g| *m = B1 * *m + (1.0 - B1) * g);
        self.v.zip_mut_with(grad, |v, g| *v = B2 * *v + (1.0 - B2) * g * g);
        let (c1, c2) = (1.0 - B1.powi(self.t), 1.0 - B2.powi(self.t));
        ndarray::Zip::from(param).and(&self.m).and(&self.v).for_each(|p, m, v| {
            *p -= lr * (m / c1) / ((v / c2).sqrt() + 1e-8);
        });
    }
}

#[cfg(test)]
mod tests {
    use ndarray::ArrayView1;

    use super::*;

    /// Recall@k of `queries` (rows) against `gallery` (rows), both already in one space, by label.
    fn recall_at(
        gallery: &Array2<f32>,
        gallery_labels: &[usize],
        queries: &Array2<f32>,
        labels: &[usize],
        k: usize,
    ) -> f32 {
        let sims = queries.dot(&gallery.t());
        let mut hits = 0;
        for (i, row) in sims.rows().into_iter().enumerate() {
            let mut idx: Vec<usize> = (0..row.len()).collect();
            idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            hits += usize::from(idx.iter().take(k).any(|&j| gallery_labels[j] == labels[i]));
        }
        hits as f32 / labels.len().max(1) as f32
    }

    /// Applies `head` to each row.
    fn apply_rows(head: &Head, rows: &Array2<f32>) -> Array2<f32> {
        let mut out = Array2::zeros((rows.nrows(), head.output()));
        for (i, r) in rows.rows().into_iter().enumerate() {
            out.row_mut(i).assign(&ArrayView1::from(&head.apply(&r.to_vec())));
        }
        out
    }

    /// Samples of `classes` classes in `dim` dimensions: a class direction plus a large shared
    /// nuisance direction per sample (what a head must learn to ignore) plus noise.
    fn data(classes: usize, per: usize, dim: usize, seed: u64) -> (Array2<f32>, Vec<usize>) {
        let mut rng = SplitMix64(seed);
        let centres = Array2::from_shape_simple_fn((classes, dim), || rng.normal() as f32);
        let nuisance = Array2::from_shape_simple_fn((4, dim), || rng.normal() as f32);
        let mut x = Array2::zeros((classes * per, dim));
        let mut labels = Vec::new();
        for c in 0..classes {
            for i in 0..per {
                let mut row = x.row_mut(c * per + i);
                row += &(centres.row(c).to_owned() * 0.4);
                row += &(nuisance.row((c + i) % 4).to_owned() * 3.0);
                row.mapv_inplace(|v| v + 0.3 * rng.normal() as f32);
                labels.push(c);
            }
        }
        (x, labels)
    }

    #[test]
    fn gradients_match_finite_differences() {
        let (x, y) = data(3, 4, 10, 1);
        let mut rng = SplitMix64(2);
        let w = Array2::from_shape_simple_fn((10, 4), || rng.normal() as f32);
        let p = Array2::from_shape_simple_fn((3, 4), || rng.normal() as f32);
        let (_, gw, gp) = proxy_gradients(&x, &y, &w, &p, 8.0);
        let loss = |w: &Array2<f32>, p: &Array2<f32>| proxy_gradients(&x, &y, w, p, 8.0).0;
        // Central differences on a few entries of each parameter (`which` 0: w, 1: the proxies).
        let cases = [(0, 0, 0), (0, 3, 2), (0, 9, 3), (1, 0, 1), (1, 2, 3)];
        for (which, r, c) in cases {
            let h = 1e-2f32;
            let (mut up, mut down) = ([w.clone(), p.clone()], [w.clone(), p.clone()]);
            up[which][[r, c]] += h;
            down[which][[r, c]] -= h;
            let numeric = (loss(&up[0], &up[1]) - loss(&down[0], &down[1])) / (2.0 * h);
            let analytic = [&gw, &gp][which][[r, c]];
            assert!(
                (numeric - analytic).abs() < 2e-3 + 0.05 * numeric.abs(),
                "{which} [{r},{c}]: {numeric} vs {analytic}"
            );
        }
    }

    #[test]
    fn training_learns_to_ignore_the_nuisance_and_is_deterministic() {
        let (x, y) = data(8, 12, 32, 3);
        let (test_x, test_y) = data(8, 6, 32, 3);
        // Same centres and nuisances (same seed), new noise: held-out samples of each class.
        let config = ProxyConfig { output: 8, epochs: 40, batch: 16, learning_rate: 1e-2, ..ProxyConfig::default() };
        let (head, losses) = train_proxy(&x, &y, 8, &config, |_, _| {});
        assert!(losses[losses.len() - 1] < 0.5 * losses[0], "the loss falls: {losses:?}");
        let before = recall_at(&x, &y, &test_x, &test_y, 1);
        let after = recall_at(&apply_rows(&head, &x), &y, &apply_rows(&head, &test_x), &test_y, 1);
        assert!(after > before + 0.2 && after > 0.9, "nearest-neighbour recall {before} -> {after}");
        let (again, _) = train_proxy(&x, &y, 8, &config, |_, _| {});
        assert_eq!(head, again, "one seed, one head");
        let v = head.apply(&x.row(0).to_vec());
        assert!((v.iter().map(|a| a * a).sum::<f32>() - 1.0).abs() < 1e-4, "unit length");
    }
}

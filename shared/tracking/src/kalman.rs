//! The constant-velocity Kalman filter of SORT and ByteTrack, on the state
//! `(cx, cy, a, h, vcx, vcy, va, vh)`: box centre, aspect ratio `w / h`, height, and their
//! velocities per frame. Noise scales with the box height, so the filter behaves the same for
//! near and far people.

use serde::{Deserialize, Serialize};

use crate::geometry::BBox;

/// ByteTrack's standard deviation of position noise, relative to the box height.
pub const STD_WEIGHT_POSITION: f64 = 1.0 / 20.0;
/// ByteTrack's standard deviation of velocity noise, relative to the box height.
pub const STD_WEIGHT_VELOCITY: f64 = 1.0 / 160.0;

type Vec4 = [f64; 4];
type Mat4 = [[f64; 4]; 4];
type Vec8 = [f64; 8];
type Mat8 = [[f64; 8]; 8];

/// The filter's noise parameters (ByteTrack's `KalmanFilter`); the state lives in
/// [`KalmanState`], one per track.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct KalmanFilter {
    /// Standard deviation of position noise per frame, relative to the box height.
    pub std_weight_position: f64,
    /// Standard deviation of velocity noise per frame, relative to the box height.
    pub std_weight_velocity: f64,
}

impl Default for KalmanFilter {
    fn default() -> Self {
        Self { std_weight_position: STD_WEIGHT_POSITION, std_weight_velocity: STD_WEIGHT_VELOCITY }
    }
}

/// A track's Kalman state: mean and covariance of `(cx, cy, a, h, vcx, vcy, va, vh)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KalmanState {
    /// Mean of the state.
    pub mean: Vec8,
    /// Covariance of the state.
    pub covariance: Mat8,
}

/// The measurement `(cx, cy, a, h)` of a box.
pub fn measurement(bbox: &BBox) -> Vec4 {
    let c = bbox.centre();
    [c.x, c.y, bbox.w / bbox.h, bbox.h]
}

impl KalmanState {
    /// The box at the mean of the state.
    pub fn bbox(&self) -> BBox {
        let [cx, cy, a, h, ..] = self.mean;
        let w = a * h;
        BBox::new(cx - w / 2.0, cy - h / 2.0, w, h)
    }

    /// Sets the height velocity to zero: ByteTrack does this before predicting a lost track,
    /// so that a box nobody sees does not shrink or grow without bound.
    pub fn freeze_height(&mut self) {
        self.mean[7] = 0.0;
    }
}

impl KalmanFilter {
    /// A new state at the measured box, at rest, with a wide velocity uncertainty.
    pub fn initiate(&self, bbox: &BBox) -> KalmanState {
        let z = measurement(bbox);
        let h = z[3];
        let (p, v) = (self.std_weight_position * h, self.std_weight_velocity * h);
        let std = [2.0 * p, 2.0 * p, 1e-2, 2.0 * p, 10.0 * v, 10.0 * v, 1e-5, 10.0 * v];
        let mut mean = [0.0; 8];
        mean[..4].copy_from_slice(&z);
        KalmanState { mean, covariance: diagonal(std.map(|s| s * s)) }
    }

    /// Advances the state by one frame.
    pub fn predict(&self, state: &mut KalmanState) {
        let h = state.mean[3];
        let (p, v) = (self.std_weight_position * h, self.std_weight_velocity * h);
        let std = [p, p, 1e-2, p, v, v, 1e-5, v];
        for i in 0..4 {
            state.mean[i] += state.mean[i + 4];
        }
        let f = transition();
        let mut covariance = mat_mul(&mat_mul(&f, &state.covariance), &transpose(&f));
        for (i, s) in std.iter().enumerate() {
            covariance[i][i] += s * s;
        }
        state.covariance = covariance;
    }

    /// Corrects the state with a measured box. A covariance that has lost positive
    /// definiteness (it should not) restarts the filter at the measurement.
    pub fn update(&self, state: &mut KalmanState, bbox: &BBox) {
        let z = measurement(bbox);
        let p = self.std_weight_position * state.mean[3];
        let std = [p, p, 1e-1, p];
        // S = H P Hᵀ + R, where H picks the first four state components.
        let mut s: Mat4 = std::array::from_fn(|i| std::array::from_fn(|j| state.covariance[i][j]));
        for (i, sd) in std.iter().enumerate() {
            s[i][i] += sd * sd;
        }
        let Some(l) = cholesky(&s) else {
            *state = self.initiate(bbox);
            return;
        };
        // K = P Hᵀ S⁻¹; row r of K solves S x = (H P)[:, r], as S and P are symmetric.
        let gain: [[f64; 4]; 8] =
            std::array::from_fn(|r| cholesky_solve(&l, std::array::from_fn(|i| state.covariance[i][r])));
        let innovation: Vec4 = std::array::from_fn(|i| z[i] - state.mean[i]);
        for (m, row) in state.mean.iter_mut().zip(&gain) {
            *m += row.iter().zip(&innovation).map(|(k, v)| k * v).sum::<f64>();
        }
        // P −= K S Kᵀ, then symmetrised against rounding drift.
        let correction = mat_mul(&mat_mul(&gain, &s), &transpose(&gain));
        for (row, corr) in state.covariance.iter_mut().zip(&correction) {
            for (p, c) in row.iter_mut().zip(corr) {
                *p -= c;
            }
        }
        for i in 0..8 {
            for j in (i + 1)..8 {
                let m = (state.covariance[i][j] + state.covariance[j][i]) / 2.0;
                state.covariance[i][j] = m;
                state.covariance[j][i] = m;
            }
        }
    }
}

/// The transition matrix for one frame: position += velocity.
fn transition() -> Mat8 {
    let mut f = diagonal([1.0; 8]);
    for (i, row) in f.iter_mut().enumerate().take(4) {
        row[i + 4] = 1.0;
    }
    f
}

fn diagonal<const N: usize>(d: [f64; N]) -> [[f64; N]; N] {
    let mut m = [[0.0; N]; N];
    for i in 0..N {
        m[i][i] = d[i];
    }
    m
}

fn mat_mul<const N: usize, const M: usize, const K: usize>(a: &[[f64; M]; N], b: &[[f64; K]; M]) -> [[f64; K]; N] {
    let mut out = [[0.0; K]; N];
    for i in 0..N {
        for j in 0..K {
            out[i][j] = (0..M).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    out
}

fn transpose<const N: usize, const M: usize>(a: &[[f64; M]; N]) -> [[f64; N]; M] {
    let mut out = [[0.0; N]; M];
    for i in 0..N {
        for j in 0..M {
            out[j][i] = a[i][j];
        }
    }
    out
}

/// The lower-triangular `L` with `L Lᵀ = s`, or `None` when `s` is not positive definite.
fn cholesky(s: &Mat4) -> Option<Mat4> {
    let mut l = [[0.0; 4]; 4];
    for i in 0..4 {
        for j in 0..=i {
            let sum: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            if i == j {
                let d = s[i][i] - sum;
                if d <= 0.0 || !d.is_finite() {
                    return None;
                }
                l[i][i] = d.sqrt();
            } else {
                l[i][j] = (s[i][j] - sum) / l[j][j];
            }
        }
    }
    Some(l)
}

/// Solves `L Lᵀ x = b`.
fn cholesky_solve(l: &Mat4, b: Vec4) -> Vec4 {
    let mut y = [0.0; 4];
    for i in 0..4 {
        y[i] = (b[i] - (0..i).map(|k| l[i][k] * y[k]).sum::<f64>()) / l[i][i];
    }
    let mut x = [0.0; 4];
    for i in (0..4).rev() {
        x[i] = (y[i] - ((i + 1)..4).map(|k| l[k][i] * x[k]).sum::<f64>()) / l[i][i];
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initiate_round_trips_the_box() {
        let b = BBox::new(10.0, 20.0, 40.0, 100.0);
        let k = KalmanFilter::default().initiate(&b);
        let out = k.bbox();
        for (x, y) in [(out.x, b.x), (out.y, b.y), (out.w, b.w), (out.h, b.h)] {
            assert!((x - y).abs() < 1e-9);
        }
    }

    #[test]
    fn learns_a_constant_velocity_and_predicts_ahead() {
        let kf = KalmanFilter::default();
        let mut k = kf.initiate(&BBox::new(0.0, 100.0, 50.0, 150.0));
        for i in 1..30 {
            kf.predict(&mut k);
            kf.update(&mut k, &BBox::new(10.0 * f64::from(i), 100.0, 50.0, 150.0));
        }
        assert!((k.mean[4] - 10.0).abs() < 0.5, "vx = {}", k.mean[4]);
        assert!(k.mean[5].abs() < 0.5);
        kf.predict(&mut k);
        assert!((k.bbox().x - 300.0).abs() < 2.0, "x = {}", k.bbox().x);
    }

    #[test]
    fn update_pulls_the_mean_towards_the_measurement_and_shrinks_uncertainty() {
        let kf = KalmanFilter::default();
        let mut k = kf.initiate(&BBox::new(0.0, 0.0, 50.0, 100.0));
        kf.predict(&mut k);
        let before = k.covariance[0][0];
        kf.update(&mut k, &BBox::new(10.0, 0.0, 50.0, 100.0));
        let cx = k.mean[0];
        assert!(cx > 25.0 && cx < 35.0, "cx = {cx}");
        assert!(k.covariance[0][0] < before);
        // Covariance stays symmetric with a positive diagonal.
        for i in 0..8 {
            assert!(k.covariance[i][i] > 0.0);
            for j in 0..8 {
                assert_eq!(k.covariance[i][j], k.covariance[j][i]);
            }
        }
    }

    #[test]
    fn cholesky_solves_a_symmetric_system() {
        let s = [[4.0, 2.0, 0.0, 0.0], [2.0, 3.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 2.0]];
        let l = cholesky(&s).unwrap();
        let x = cholesky_solve(&l, [2.0, 1.0, 3.0, 4.0]);
        for i in 0..4 {
            let row: f64 = (0..4).map(|j| s[i][j] * x[j]).sum();
            assert!((row - [2.0, 1.0, 3.0, 4.0][i]).abs() < 1e-12);
        }
        assert!(cholesky(&[[0.0; 4]; 4]).is_none());
    }
}

//! Head pose (yaw, pitch, roll) from the 68 landmarks: a perspective-n-point fit of a 3-D mean
//! face to six landmarks (nose tip, chin, outer eye corners, mouth corners), by
//! Levenberg-Marquardt on the reprojection error, as OpenCV's `solvePnP` does in the usual
//! head-pose recipe. The camera is a pinhole with focal length `max(width, height)` of the
//! image and its principal point at the image centre (no calibration is known).
//!
//! Angles are in degrees: yaw > 0 when the face turns towards the image's right, pitch > 0
//! when it looks up, roll > 0 when the head tilts clockwise as seen in the image.

use crate::geometry::Point;

/// The 68-point indices of the fitted landmarks: nose tip, chin, left eye outer corner
/// (image left), right eye outer corner, left and right mouth corners.
pub const POSE_LANDMARKS: [usize; 6] = [30, 8, 36, 45, 48, 54];

/// The mean face (arbitrary units, about 1/10 mm) in camera axes for a frontal face: x to the
/// image's right, y down, z away from the camera; the nose tip at the origin. The widely used
/// six-point model of the OpenCV head-pose tutorials, with y and z flipped into camera axes.
pub const MODEL: [[f64; 3]; 6] = [
    [0.0, 0.0, 0.0],
    [0.0, 330.0, 65.0],
    [-225.0, -170.0, 135.0],
    [225.0, -170.0, 135.0],
    [-150.0, 150.0, 125.0],
    [150.0, 150.0, 125.0],
];

/// A fitted head pose.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pose {
    /// Degrees; > 0 turned towards the image's right.
    pub yaw: f32,
    /// Degrees; > 0 looking up.
    pub pitch: f32,
    /// Degrees; > 0 tilted clockwise in the image.
    pub roll: f32,
    /// RMS reprojection error over the fitted points, relative to the outer-eye-corner distance.
    pub error: f32,
}

/// Rotation `Rz(roll) Rx(pitch) Ry(yaw)` in internal (model) angles.
fn rotation(yaw: f64, pitch: f64, roll: f64) -> [[f64; 3]; 3] {
    let (sy, cy) = yaw.sin_cos();
    let (sp, cp) = pitch.sin_cos();
    let (sr, cr) = roll.sin_cos();
    let ry = [[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]];
    let rx = [[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]];
    let rz = [[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]];
    matmul(&rz, &matmul(&rx, &ry))
}

fn matmul(a: &[[f64; 3]; 3], b: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut out = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            out[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    out
}

/// The camera: focal length and principal point.
#[derive(Debug, Clone, Copy)]
struct Camera {
    f: f64,
    cx: f64,
    cy: f64,
}

/// Projects the model with parameters `p = [yaw, pitch, roll, tx, ty, tz]`.
fn project(p: &[f64; 6], cam: &Camera) -> [[f64; 2]; 6] {
    let r = rotation(p[0], p[1], p[2]);
    let mut out = [[0.0; 2]; 6];
    for (o, m) in out.iter_mut().zip(MODEL.iter()) {
        let x = r[0][0] * m[0] + r[0][1] * m[1] + r[0][2] * m[2] + p[3];
        let y = r[1][0] * m[0] + r[1][1] * m[1] + r[1][2] * m[2] + p[4];
        let z = (r[2][0] * m[0] + r[2][1] * m[1] + r[2][2] * m[2] + p[5]).max(1e-6);
        *o = [cam.f * x / z + cam.cx, cam.f * y / z + cam.cy];
    }
    out
}

fn residuals(p: &[f64; 6], cam: &Camera, target: &[[f64; 2]; 6]) -> [f64; 12] {
    let proj = project(p, cam);
    let mut r = [0.0; 12];
    for i in 0..6 {
        r[2 * i] = proj[i][0] - target[i][0];
        r[2 * i + 1] = proj[i][1] - target[i][1];
    }
    r
}

fn sq(r: &[f64; 12]) -> f64 {
    r.iter().map(|v| v * v).sum()
}

/// Solves `a x = b` (6x6) by Gaussian elimination with partial pivoting.
fn solve6(mut a: [[f64; 6]; 6], mut b: [f64; 6]) -> Option<[f64; 6]> {
    for col in 0..6 {
        let pivot = (col..6).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-15 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        let pivot_row = a[col];
        for row in col + 1..6 {
            let f = a[row][col] / pivot_row[col];
            for (x, p) in a[row].iter_mut().zip(pivot_row.iter()).skip(col) {
                *x -= f * p;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = [0.0; 6];
    for row in (0..6).rev() {
        let s: f64 = (row + 1..6).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    Some(x)
}

/// Fits the head pose to 68 landmarks of a face in a `width` x `height` image. `None` when
/// the landmarks are degenerate (coincident eye corners, fewer than 68 points).
pub fn estimate(landmarks: &[Point], width: u32, height: u32) -> Option<Pose> {
    if landmarks.len() < 68 {
        return None;
    }
    let mut target = [[0.0f64; 2]; 6];
    for (t, &i) in target.iter_mut().zip(POSE_LANDMARKS.iter()) {
        *t = [f64::from(landmarks[i][0]), f64::from(landmarks[i][1])];
    }
    let cam =
        Camera { f: f64::from(width.max(height).max(1)), cx: f64::from(width) / 2.0, cy: f64::from(height) / 2.0 };
    let eye = [target[3][0] - target[2][0], target[3][1] - target[2][1]];
    let eye_dist = eye[0].hypot(eye[1]);
    if eye_dist.is_nan() || eye_dist <= 1e-3 {
        return None;
    }
    // Start frontal, at the distance that gives the observed eye-corner spacing, with the roll
    // of the eye line.
    let z = cam.f * 450.0 / eye_dist;
    let centre = target.iter().fold([0.0, 0.0], |a, t| [a[0] + t[0] / 6.0, a[1] + t[1] / 6.0]);
    let mut p = [0.0, 0.0, eye[1].atan2(eye[0]), (centre[0] - cam.cx) * z / cam.f, (centre[1] - cam.cy) * z / cam.f, z];
    let mut r = residuals(&p, &cam, &target);
    let mut lambda = 1e-3;
    for _ in 0..100 {
        // Numeric Jacobian (12 x 6).
        let mut jac = [[0.0f64; 6]; 12];
        for k in 0..6 {
            let h = if k < 3 { 1e-5 } else { 1e-5 * p[k].abs().max(1.0) };
            let mut q = p;
            q[k] += h;
            let rq = residuals(&q, &cam, &target);
            for i in 0..12 {
                jac[i][k] = (rq[i] - r[i]) / h;
            }
        }
        let mut jtj = [[0.0f64; 6]; 6];
        let mut jtr = [0.0f64; 6];
        for i in 0..12 {
            for a in 0..6 {
                jtr[a] += jac[i][a] * r[i];
                for b in 0..6 {
                    jtj[a][b] += jac[i][a] * jac[i][b];
                }
            }
        }
        let mut improved = false;
        let mut step_size = 0.0f64;
        while lambda < 1e10 {
            let mut m = jtj;
            for (d, row) in m.iter_mut().enumerate() {
                row[d] += lambda * (jtj[d][d] + 1e-9);
            }
            let Some(step) = solve6(m, jtr.map(|v| -v)) else {
                lambda *= 10.0;
                continue;
            };
            let mut q = p;
            for k in 0..6 {
                q[k] += step[k];
            }
            let rq = residuals(&q, &cam, &target);
            if sq(&rq) < sq(&r) {
                step_size = step[..3].iter().map(|v| v.abs()).fold(0.0, f64::max);
                p = q;
                r = rq;
                lambda = (lambda / 3.0).max(1e-12);
                improved = true;
                break;
            }
            lambda *= 4.0;
        }
        if !improved || step_size < 1e-7 {
            break;
        }
    }
    let rms = (sq(&r) / 6.0).sqrt();
    let deg = |v: f64| {
        // Wrap into (-180, 180].
        let d = v.to_degrees() % 360.0;
        (if d > 180.0 {
            d - 360.0
        } else if d <= -180.0 {
            d + 360.0
        } else {
            d
        }) as f32
    };
    // Internal yaw > 0 turns the face towards the image's left and internal pitch > 0 tips it
    // down: flip both to the documented conventions.
    Some(Pose { yaw: -deg(p[0]), pitch: -deg(p[1]), roll: deg(p[2]), error: (rms / eye_dist) as f32 })
}

/// Whether a pose counts as frontal: `|yaw| <= max_yaw` and `|pitch| <= max_pitch`.
pub fn is_frontal(pose: &Pose, max_yaw: f32, max_pitch: f32) -> bool {
    pose.yaw.abs() <= max_yaw && pose.pitch.abs() <= max_pitch
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 68 landmarks whose six pose points are the model projected at the given internal angles.
    fn synthetic(yaw: f64, pitch: f64, roll: f64) -> Vec<Point> {
        let cam = Camera { f: 640.0, cx: 320.0, cy: 240.0 };
        let proj = project(&[yaw, pitch, roll, 30.0, -20.0, 3000.0], &cam);
        let mut lm = vec![[0.0f32; 2]; 68];
        for (p, &i) in proj.iter().zip(POSE_LANDMARKS.iter()) {
            lm[i] = [p[0] as f32, p[1] as f32];
        }
        lm
    }

    #[test]
    fn recovers_known_poses_with_documented_signs() {
        for (yaw, pitch, roll) in [(0.0, 0.0, 0.0), (30.0, 0.0, 0.0), (-20.0, 10.0, 5.0), (10.0, -15.0, -12.0)] {
            let lm = synthetic(-f64::to_radians(yaw), -f64::to_radians(pitch), f64::to_radians(roll));
            let pose = estimate(&lm, 640, 480).expect("pose");
            assert!((f64::from(pose.yaw) - yaw).abs() < 0.5, "{pose:?} vs {yaw}");
            assert!((f64::from(pose.pitch) - pitch).abs() < 0.5, "{pose:?} vs {pitch}");
            assert!((f64::from(pose.roll) - roll).abs() < 0.5, "{pose:?} vs {roll}");
            assert!(pose.error < 1e-3, "{pose:?}");
        }
    }

    #[test]
    fn turning_right_moves_the_nose_right() {
        // The documented sign: yaw > 0 when the nose tip sits right of the eye-corner midpoint.
        let lm = synthetic(-f64::to_radians(25.0), 0.0, 0.0);
        let mid = (lm[36][0] + lm[45][0]) / 2.0;
        assert!(lm[30][0] > mid);
        assert!(estimate(&lm, 640, 480).expect("pose").yaw > 20.0);
    }

    #[test]
    fn frontal_threshold_and_degenerate_input() {
        let p = Pose { yaw: 29.0, pitch: -10.0, roll: 40.0, error: 0.0 };
        assert!(is_frontal(&p, 30.0, 25.0));
        assert!(!is_frontal(&Pose { yaw: -31.0, ..p }, 30.0, 25.0));
        assert!(!is_frontal(&Pose { pitch: 26.0, ..p }, 30.0, 25.0));
        assert!(estimate(&[[1.0, 1.0]; 68], 100, 100).is_none());
        assert!(estimate(&[[1.0, 1.0]; 5], 100, 100).is_none());
    }
}

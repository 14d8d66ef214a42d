//! Parity with the reference runtime, as a library: every model in
//! `models/manifest.toml` is run through ort on the exact input tensor of its
//! fixture (`tests/fixtures/models/<model>.json`) and compared with the output
//! Python onnxruntime 1.31.1 produced (see `models/make_reference.py` and
//! `tests/fixtures/models/README.md` for the format).
//!
//! This is the one comparison implementation: `sightline models verify` and
//! `shared/inference/tests/parity.rs` both call [`verify_all`] /
//! [`verify_model`].
//!
//! ```no_run
//! use sightline_inference::{ModelStore, Runtime, verify};
//! # fn demo() -> sightline_inference::Result<()> {
//! let store = ModelStore::from_env()?;
//! let runtime = Runtime::init_from_env(store.root())?;
//! let reports = verify::verify_all(&store, runtime, &verify::default_fixtures_dir());
//! for r in &reports {
//!     println!("{r}");
//! }
//! let all_ok = reports.iter().all(|r| r.ok);
//! # let _ = all_ok; Ok(()) }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::{ArrayD, ArrayView2, Axis};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::manifest::ModelSpec;
use crate::npy::{read_npy_f32, read_npy_u8};
use crate::pool::{Outputs, PoolConfig, SessionPool};
use crate::preprocess::{Normalize, normalize_u8};
use crate::runtime::Runtime;
use crate::store::ModelStore;

/// Environment variable naming the fixtures directory (the repository's
/// `tests/fixtures/models`).
pub const FIXTURES_ENV: &str = "SIGHTLINE_FIXTURES";

/// Timed runs, after one untimed run whose output is the one compared with
/// the reference (the warm-up); [`ModelReport::latency_ms`] is their median.
pub const TIMED_RUNS: usize = 5;

/// The result of verifying one model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelReport {
    /// Manifest name of the model.
    pub model: String,
    /// True when the model loaded, its SHA-256 matched, its fixture was
    /// readable and every reference output matched within tolerance.
    pub ok: bool,
    /// Largest |ours - reference| over every compared value of every output
    /// (mismatching ones included); 0 when the model did not run.
    pub max_abs_diff: f32,
    /// Reference outputs compared value by value (present, with the expected
    /// shape), whether they matched or not; every output of the fixture when
    /// `ok`.
    pub outputs_checked: usize,
    /// Median wall time of [`TIMED_RUNS`] runs on the fixture input (after
    /// one untimed warm-up run, the one compared), 1 session, 1 intra-op
    /// thread, including tensor creation and copying the outputs out. 0 when
    /// the model did not run.
    pub latency_ms: f64,
    /// What went wrong: the first mismatch, or the load / checksum / fixture
    /// error (naming the file and the fix). `None` when `ok`.
    pub detail: Option<String>,
}

impl ModelReport {
    fn failed(model: &str, detail: impl Into<String>) -> Self {
        Self {
            model: model.to_string(),
            ok: false,
            max_abs_diff: 0.0,
            outputs_checked: 0,
            latency_ms: 0.0,
            detail: Some(detail.into()),
        }
    }
}

impl fmt::Display for ModelReport {
    /// One line: `ok   <model>  <latency> ms  max|diff| <d>  <n> outputs`,
    /// then `: <detail>` for failures.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:14} {:8.1} ms  max|diff| {:.2e}  {} output(s)",
            if self.ok { "ok  " } else { "FAIL" },
            self.model,
            self.latency_ms,
            self.max_abs_diff,
            self.outputs_checked
        )?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

/// `$SIGHTLINE_FIXTURES` if set, else the repository's
/// `tests/fixtures/models` (the path this crate was compiled from).
pub fn default_fixtures_dir() -> PathBuf {
    match std::env::var_os(FIXTURES_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/models")),
    }
}

/// Verifies model `model` of the store's manifest against its fixture under
/// `fixtures`: SHA-256 of the model file, the fixture's model SHA-256 and
/// input encoding, one run compared output by output, then the latency.
/// Never panics: every problem becomes `ok: false` with a `detail`.
pub fn verify_model(store: &ModelStore, runtime: &Runtime, model: &str, fixtures: &Path) -> ModelReport {
    check_model(store, model, fixtures, |path| SessionPool::new(runtime, model, path, PoolConfig::default()))
}

/// [`verify_model`] for every model of the store's manifest, in manifest
/// order.
pub fn verify_all(store: &ModelStore, runtime: &Runtime, fixtures: &Path) -> Vec<ModelReport> {
    store.manifest().model.iter().map(|m| verify_model(store, runtime, &m.name, fixtures)).collect()
}

/// [`verify_model`] with the session pool built by `load` from the verified
/// model path (so that the steps before need no ONNX Runtime).
fn check_model(
    store: &ModelStore,
    model: &str,
    fixtures: &Path,
    load: impl FnOnce(&Path) -> Result<SessionPool>,
) -> ModelReport {
    let run = std::panic::AssertUnwindSafe(|| check_model_inner(store, model, fixtures, load));
    std::panic::catch_unwind(run).unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        ModelReport::failed(model, format!("verification panicked: {msg}"))
    })
}

fn check_model_inner(
    store: &ModelStore,
    model: &str,
    fixtures: &Path,
    load: impl FnOnce(&Path) -> Result<SessionPool>,
) -> ModelReport {
    let spec = match store.spec(model) {
        Ok(s) => s,
        Err(e) => return ModelReport::failed(model, e.to_string()),
    };
    let fixture = match Fixture::load(fixtures, spec) {
        Ok(f) => f,
        Err(e) => return ModelReport::failed(model, e),
    };
    let pool = match store.verified_path(model).and_then(|p| load(&p)) {
        Ok(p) => p,
        Err(e) => return ModelReport::failed(model, e.to_string()),
    };
    // the warm-up run, untimed, is the one compared
    let outputs = match pool.run_blocking(fixture.feeds()) {
        Ok(out) => out,
        Err(e) => return ModelReport::failed(model, e.to_string()),
    };
    let compared = fixture.compare(&outputs);
    let mut report = ModelReport {
        model: model.to_string(),
        ok: false,
        max_abs_diff: compared.max_abs_diff,
        outputs_checked: compared.outputs_checked,
        latency_ms: 0.0,
        detail: compared.mismatch,
    };
    let mut ms = Vec::with_capacity(TIMED_RUNS);
    for _ in 0..TIMED_RUNS {
        let feeds = fixture.feeds();
        let t = Instant::now();
        let r = pool.run_blocking(feeds);
        let elapsed = t.elapsed().as_secs_f64() * 1e3;
        if let Err(e) = r {
            report.detail.get_or_insert_with(|| e.to_string());
            break;
        }
        ms.push(elapsed);
    }
    report.latency_ms = median(&mut ms);
    report.ok = report.detail.is_none();
    report
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

// ------------------------------------------------------------------ fixtures

#[derive(Deserialize)]
struct FixtureJson {
    model: String,
    model_sha256: String,
    inputs: Vec<InputJson>,
    outputs: Vec<OutputJson>,
}

#[derive(Deserialize)]
struct InputJson {
    name: String,
    shape: Vec<usize>,
    u8_file: String,
    channel_axis: usize,
    divisor: f32,
    mean: Vec<f32>,
    std: Vec<f32>,
    #[serde(default)]
    f32_sha256: Option<String>,
    #[serde(default)]
    f32_file: Option<String>,
}

#[derive(Deserialize)]
struct OutputJson {
    name: String,
    shape: Vec<usize>,
    atol: f32,
    rtol: f32,
    stored: String,
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    sample_stride: Option<usize>,
    #[serde(default)]
    sample: Option<Vec<f32>>,
    #[serde(default)]
    argmax_last_axis: Option<Vec<usize>>,
    #[serde(default)]
    max_last_axis: Option<Vec<f32>>,
    #[serde(default)]
    sum: Option<f64>,
}

/// A model's parity fixture, loaded: the exact input tensors and the
/// reference outputs.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The fixture JSON.
    pub path: PathBuf,
    /// Manifest name of the model.
    pub model: String,
    /// SHA-256 of the model file the reference outputs belong to.
    pub model_sha256: String,
    /// Input name and exact float32 tensor, in fixture order.
    pub inputs: Vec<(String, ArrayD<f32>)>,
    /// The reference outputs.
    pub outputs: Vec<ReferenceOutput>,
}

/// One reference output of a fixture.
#[derive(Debug, Clone)]
pub struct ReferenceOutput {
    /// Output name.
    pub name: String,
    /// Expected shape.
    pub shape: Vec<usize>,
    /// Absolute tolerance.
    pub atol: f32,
    /// Relative tolerance (of the reference value).
    pub rtol: f32,
    /// The stored values.
    pub reference: Reference,
}

/// What a fixture stores of an output.
#[derive(Debug, Clone)]
pub enum Reference {
    /// The whole output.
    Full(ArrayD<f32>),
    /// A summary of a large output (e.g. OCR recognition logits).
    Summary {
        /// Stride of the sample.
        sample_stride: usize,
        /// `flat[::sample_stride]` of the output (C order).
        sample: Vec<f32>,
        /// Argmax along the last axis, per row (all axes but the last
        /// flattened).
        argmax_last_axis: Vec<usize>,
        /// Max along the last axis, per row.
        max_last_axis: Vec<f32>,
        /// Sum of all values.
        sum: f64,
    },
}

/// The comparison of outputs with their references.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Comparison {
    /// Largest |ours - reference| over every compared value (mismatching ones
    /// included; NaN differences are not counted, they are mismatches).
    pub max_abs_diff: f32,
    /// Reference outputs that were present with the expected shape and so
    /// compared value by value (whether they matched or not).
    pub outputs_checked: usize,
    /// The first mismatch, if any: a missing output, a shape difference or a
    /// value outside tolerance.
    pub mismatch: Option<String>,
}

impl Comparison {
    /// True when nothing mismatched.
    pub fn ok(&self) -> bool {
        self.mismatch.is_none()
    }

    fn fail(&mut self, message: String) {
        self.mismatch.get_or_insert(message);
    }

    fn merge(&mut self, other: Comparison) {
        self.max_abs_diff = self.max_abs_diff.max(other.max_abs_diff);
        self.outputs_checked += other.outputs_checked;
        if let Some(m) = other.mismatch {
            self.fail(m);
        }
    }
}

fn three(path: &Path, input: &str, key: &str, v: &[f32]) -> std::result::Result<[f32; 3], String> {
    match v {
        [a] => Ok([*a; 3]),
        [a, b, c] => Ok([*a, *b, *c]),
        _ => Err(format!("fixture {}: input {input}: {key} has {} values, expected 1 or 3", path.display(), v.len())),
    }
}

/// SHA-256 of a float32 tensor's bytes (C order, little-endian), as
/// `numpy.ndarray.tobytes()` hashes them.
fn sha256_f32(a: &ArrayD<f32>) -> String {
    let mut h = Sha256::new();
    let mut buf = Vec::with_capacity(4 * 4096);
    for v in a.iter() {
        buf.extend_from_slice(&v.to_le_bytes());
        if buf.len() >= 4 * 4096 {
            h.update(&buf);
            buf.clear();
        }
    }
    h.update(&buf);
    hex::encode(h.finalize())
}

fn bits_equal(a: &ArrayD<f32>, b: &ArrayD<f32>) -> bool {
    a.shape() == b.shape() && a.iter().zip(b.iter()).all(|(x, y)| x.to_bits() == y.to_bits())
}

impl Fixture {
    /// Loads the fixture of `spec` from `fixtures` (the file name of the
    /// manifest's `reference`, e.g. `tests/fixtures/models/age.json` ->
    /// `<fixtures>/age.json`) with its `.npy` files. Checks that the fixture
    /// belongs to this model file (SHA-256), that the u8 encoding of each
    /// input reproduces the float32 tensor bit for bit (`f32_file`,
    /// `f32_sha256`) and that the shapes agree. Errors name the file and the
    /// fix.
    pub fn load(fixtures: &Path, spec: &ModelSpec) -> std::result::Result<Self, String> {
        let model = spec.name.as_str();
        let file_name = Path::new(&spec.reference)
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(format!("{model}.json")));
        let path = fixtures.join(file_name);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "cannot read the fixture {}: {e}. Point {FIXTURES_ENV} at the \
                 repository's tests/fixtures/models (now {})",
                path.display(),
                fixtures.display()
            )
        })?;
        let json: FixtureJson = serde_json::from_str(&text).map_err(|e| {
            format!(
                "fixture {} is not a parity fixture: {e}. Regenerate it with \
                 models/make_reference.sh",
                path.display()
            )
        })?;
        let npy = |file: &str| fixtures.join(file);
        if json.model != spec.name {
            return Err(format!("fixture {} is for model {:?}", path.display(), json.model));
        }
        if json.model_sha256 != spec.sha256 {
            return Err(format!(
                "fixture {} was made from a model with SHA-256 {}, \
                 models/manifest.toml pins {}. Regenerate the fixtures with models/make_reference.sh",
                path.display(),
                json.model_sha256,
                spec.sha256
            ));
        }
        let mut inputs = Vec::with_capacity(json.inputs.len());
        for i in &json.inputs {
            let name = &i.name;
            let q = read_npy_u8(npy(&i.u8_file)).map_err(|e| e.to_string())?;
            let norm = Normalize {
                divisor: i.divisor,
                mean: three(&path, name, "mean", &i.mean)?,
                std: three(&path, name, "std", &i.std)?,
            };
            let decoded = normalize_u8(q.view(), i.channel_axis, &norm)
                .map_err(|e| format!("fixture input {name} ({}): {e}", i.u8_file))?;
            let tensor = match &i.f32_file {
                Some(f) => {
                    let exact = read_npy_f32(npy(f)).map_err(|e| e.to_string())?;
                    if !bits_equal(&decoded, &exact) {
                        return Err(format!(
                            "input {name}: decoding {} with normalize_u8 does not \
                             reproduce {f} bit for bit",
                            i.u8_file
                        ));
                    }
                    exact
                }
                None => decoded,
            };
            if tensor.shape() != i.shape.as_slice() {
                return Err(format!(
                    "fixture input {name}: tensor shape {:?} != declared {:?} ({})",
                    tensor.shape(),
                    i.shape,
                    path.display()
                ));
            }
            if let Some(want) = &i.f32_sha256 {
                let got = sha256_f32(&tensor);
                if &got != want {
                    return Err(format!(
                        "input {name}: the float32 tensor decoded from {} has SHA-256 \
                         {got}, the fixture says {want}",
                        i.u8_file
                    ));
                }
            }
            inputs.push((name.clone(), tensor));
        }
        let mut outputs = Vec::with_capacity(json.outputs.len());
        for o in json.outputs {
            let missing = |key: &str| {
                format!("fixture {}: output {} (stored {:?}) lacks {key}", path.display(), o.name, o.stored)
            };
            let reference = match o.stored.as_str() {
                "full" => {
                    let f = o.file.as_deref().ok_or_else(|| missing("file"))?;
                    Reference::Full(read_npy_f32(npy(f)).map_err(|e| e.to_string())?)
                }
                "summary" => Reference::Summary {
                    sample_stride: o.sample_stride.ok_or_else(|| missing("sample_stride"))?,
                    sample: o.sample.clone().ok_or_else(|| missing("sample"))?,
                    argmax_last_axis: o.argmax_last_axis.clone().ok_or_else(|| missing("argmax_last_axis"))?,
                    max_last_axis: o.max_last_axis.clone().ok_or_else(|| missing("max_last_axis"))?,
                    sum: o.sum.ok_or_else(|| missing("sum"))?,
                },
                other => {
                    return Err(format!("fixture {}: output {}: unknown storage {other:?}", path.display(), o.name));
                }
            };
            outputs.push(ReferenceOutput { name: o.name, shape: o.shape, atol: o.atol, rtol: o.rtol, reference });
        }
        Ok(Self { path, model: json.model, model_sha256: json.model_sha256, inputs, outputs })
    }

    /// The inputs as [`SessionPool::run`] takes them (a copy).
    pub fn feeds(&self) -> Vec<(String, ArrayD<f32>)> {
        self.inputs.clone()
    }

    /// Compares a run's outputs with every reference output (in fixture
    /// order; outputs the fixture does not list are ignored).
    pub fn compare(&self, outputs: &Outputs) -> Comparison {
        let mut c = Comparison::default();
        for r in &self.outputs {
            match outputs.get(&r.name) {
                Some(ours) => c.merge(r.compare(ours)),
                None => c.fail(format!(
                    "output {} missing; the model returned {:?}",
                    r.name,
                    outputs.0.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>()
                )),
            }
        }
        c
    }
}

fn close(a: f32, b: f32, atol: f32, rtol: f32) -> bool {
    (a - b).abs() <= atol + rtol * b.abs()
}

impl ReferenceOutput {
    /// Compares one output with the reference: `|ours - ref| <= atol + rtol *
    /// |ref|` for every stored value (for a summary: the sample, the max per
    /// row, the argmax per row up to ties within `atol`, and the sum within
    /// 1e-3 relative). Every value is compared (so `max_abs_diff` is the
    /// output's); `mismatch` describes the first failure.
    pub fn compare(&self, ours: &ArrayD<f32>) -> Comparison {
        let name = &self.name;
        let (atol, rtol) = (self.atol, self.rtol);
        let mut c = Comparison::default();
        if ours.shape() != self.shape.as_slice() {
            c.fail(format!("{name}: shape {:?} != reference {:?}", ours.shape(), self.shape));
            return c;
        }
        // `row_max`: `i` is a row and `a`, `b` its maxima, else `i` is a flat index
        let check = |c: &mut Comparison, i: usize, row_max: bool, a: f32, b: f32| {
            let d = (a - b).abs();
            c.max_abs_diff = c.max_abs_diff.max(d);
            if !close(a, b, atol, rtol) && c.mismatch.is_none() {
                let at = if row_max { format!(" max of row {i}") } else { format!("[{i}]") };
                c.fail(format!("{name}{at}: {a} vs reference {b} (atol {atol}, rtol {rtol})"));
            }
        };
        match &self.reference {
            Reference::Full(reference) => {
                if reference.shape() != ours.shape() {
                    c.fail(format!(
                        "{name}: reference file has shape {:?}, the fixture declares {:?}",
                        reference.shape(),
                        self.shape
                    ));
                    return c;
                }
                c.outputs_checked = 1;
                for (i, (a, b)) in ours.iter().zip(reference.iter()).enumerate() {
                    check(&mut c, i, false, *a, *b);
                }
            }
            Reference::Summary { sample_stride, sample, argmax_last_axis, max_last_axis, sum } => {
                let stride = (*sample_stride).max(1);
                let flat: Vec<f32> = ours.iter().copied().collect();
                let last = ours.shape().last().copied().unwrap_or(0);
                let structure = if flat.len().div_ceil(stride) != sample.len() {
                    Some(format!(
                        "{name}: sample of every {stride}th value has length {}, the reference {}",
                        flat.len().div_ceil(stride),
                        sample.len()
                    ))
                } else if last == 0 {
                    Some(format!("{name}: shape {:?} has no last axis", ours.shape()))
                } else if flat.len() / last != argmax_last_axis.len() || flat.len() / last != max_last_axis.len() {
                    Some(format!(
                        "{name}: {} rows, the reference has {} argmax and {} max values",
                        flat.len() / last,
                        argmax_last_axis.len(),
                        max_last_axis.len()
                    ))
                } else {
                    None
                };
                if let Some(e) = structure {
                    c.fail(e);
                    return c;
                }
                let rows = match ArrayView2::from_shape((flat.len() / last, last), &flat) {
                    Ok(r) => r,
                    Err(e) => {
                        c.fail(format!("{name}: {e}"));
                        return c;
                    }
                };
                c.outputs_checked = 1;
                for (i, (a, b)) in flat.iter().step_by(stride).zip(sample).enumerate() {
                    check(&mut c, i * stride, false, *a, *b);
                }
                for (r, row) in rows.axis_iter(Axis(0)).enumerate() {
                    let our_max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    check(&mut c, r, true, our_max, max_last_axis[r]);
                    // same argmax, unless the reference's winner is tied with ours
                    let theirs = argmax_last_axis[r];
                    let tied = row.get(theirs).is_some_and(|v| close(*v, our_max, atol, 0.0));
                    if !tied {
                        c.fail(format!("{name}: row {r} argmax differs (reference {theirs})"));
                    }
                }
                let our_sum: f64 = flat.iter().map(|v| f64::from(*v)).sum();
                let sum_diff = (our_sum - sum).abs();
                if sum_diff.is_nan() || sum_diff > 1e-3 * sum.abs().max(1.0) {
                    c.fail(format!("{name}: sum {our_sum} vs reference {sum}"));
                }
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::InferenceError;
    use crate::manifest::Manifest;
    use ndarray::IxDyn;

    fn arr(shape: &[usize], v: &[f32]) -> ArrayD<f32> {
        ArrayD::from_shape_vec(IxDyn(shape), v.to_vec()).expect("shape")
    }

    fn full(name: &str, reference: ArrayD<f32>) -> ReferenceOutput {
        ReferenceOutput {
            name: name.into(),
            shape: reference.shape().to_vec(),
            atol: 1e-4,
            rtol: 1e-3,
            reference: Reference::Full(reference),
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sightline-verify-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir
    }

    fn repo_fixtures() -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/models"))
    }

    fn no_runtime(_: &Path) -> Result<SessionPool> {
        panic!("must not load the model")
    }

    #[test]
    fn full_outputs_within_tolerance_match() {
        let r = full("y", arr(&[2, 2], &[1.0, -2.0, 100.0, 0.0]));
        let c = r.compare(&arr(&[2, 2], &[1.00005, -2.0, 100.05, 0.0]));
        assert!(c.ok(), "{c:?}");
        assert_eq!(c.outputs_checked, 1);
        assert!((c.max_abs_diff - 0.05).abs() < 1e-4, "{c:?}");
        let c = r.compare(&arr(&[2, 2], &[1.0, -2.0, 100.0, 0.0]));
        assert_eq!(c, Comparison { max_abs_diff: 0.0, outputs_checked: 1, mismatch: None });
    }

    #[test]
    fn full_output_mismatches_are_described() {
        let r = full("y", arr(&[2, 2], &[1.0, -2.0, 100.0, 0.0]));
        // the first mismatch is described, the max covers every value
        let c = r.compare(&arr(&[2, 2], &[1.0, -2.01, 100.0, 0.5]));
        let m = c.mismatch.expect("0.01 off");
        assert!(m.starts_with("y[1]: -2.01 vs reference -2"), "{m}");
        assert!(m.contains("atol 0.0001, rtol 0.001"), "{m}");
        assert_eq!(c.max_abs_diff, 0.5);
        assert_eq!(c.outputs_checked, 1);

        let c = r.compare(&arr(&[4], &[1.0, -2.0, 100.0, 0.0]));
        assert_eq!(c.outputs_checked, 0);
        let m = c.mismatch.expect("shape");
        assert!(m.contains("y: shape [4] != reference [2, 2]"), "{m}");

        let c = r.compare(&arr(&[2, 2], &[1.0, f32::NAN, 100.0, 0.0]));
        assert!(c.mismatch.expect("NaN").contains("y[1]: NaN"));
    }

    #[test]
    fn summaries_check_sample_max_argmax_and_sum() {
        let ours = arr(&[1, 2, 3], &[0.1, 0.7, 0.2, 0.5, 0.25, 0.25]);
        let summary = |argmax: Vec<usize>, sum: f64| ReferenceOutput {
            name: "p".into(),
            shape: vec![1, 2, 3],
            atol: 1e-4,
            rtol: 1e-3,
            reference: Reference::Summary {
                sample_stride: 2,
                sample: vec![0.1, 0.2, 0.25],
                argmax_last_axis: argmax,
                max_last_axis: vec![0.7, 0.5],
                sum,
            },
        };
        let c = summary(vec![1, 0], 2.0).compare(&ours);
        assert!(c.ok() && c.outputs_checked == 1 && c.max_abs_diff == 0.0, "{c:?}");
        let m = summary(vec![2, 0], 2.0).compare(&ours).mismatch;
        assert!(m.expect("argmax").contains("row 0 argmax differs (reference 2)"));
        let m = summary(vec![1, 9], 2.0).compare(&ours).mismatch;
        assert!(m.expect("out of range").contains("row 1 argmax"));
        let mut bad_max = summary(vec![1, 0], 2.0);
        if let Reference::Summary { max_last_axis, .. } = &mut bad_max.reference {
            max_last_axis[1] = 0.6;
        }
        let c = bad_max.compare(&ours);
        let m = c.mismatch.expect("max");
        assert!(m.starts_with("p max of row 1: 0.5 vs reference 0.6"), "{m}");
        assert!((c.max_abs_diff - 0.1).abs() < 1e-6, "{}", c.max_abs_diff);
        let m = summary(vec![1, 0], 2.5).compare(&ours).mismatch;
        assert!(m.expect("sum").contains("p: sum"));
        let c = summary(vec![1], 2.0).compare(&ours);
        assert_eq!(c.outputs_checked, 0);
        assert!(c.mismatch.expect("rows").contains("2 rows"));
    }

    #[test]
    fn a_fixture_compares_every_output_and_reports_the_first_mismatch() {
        let fixture = Fixture {
            path: PathBuf::from("m.json"),
            model: "m".into(),
            model_sha256: String::new(),
            inputs: Vec::new(),
            outputs: vec![full("a", arr(&[2], &[1.0, 2.0])), full("b", arr(&[1], &[5.0]))],
        };
        let good = Outputs(vec![
            ("b".into(), arr(&[1], &[5.0])),
            ("a".into(), arr(&[2], &[1.0, 2.0001])),
            ("extra".into(), arr(&[1], &[0.0])),
        ]);
        let c = fixture.compare(&good);
        assert!(c.ok(), "{c:?}");
        assert_eq!(c.outputs_checked, 2);
        assert!(c.max_abs_diff > 0.0 && c.max_abs_diff < 2e-4, "{c:?}");

        let c = fixture.compare(&Outputs(vec![("a".into(), arr(&[2], &[1.0, 2.0]))]));
        assert_eq!(c.outputs_checked, 1);
        let m = c.mismatch.expect("missing");
        assert!(m.contains("output b missing; the model returned [\"a\"]"), "{m}");

        let c = fixture.compare(&Outputs(vec![("a".into(), arr(&[2], &[1.5, 2.0])), ("b".into(), arr(&[1], &[8.0]))]));
        assert_eq!(c.outputs_checked, 2);
        assert_eq!(c.max_abs_diff, 3.0);
        assert!(c.mismatch.expect("mismatch").starts_with("a[0]: 1.5"));
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }

    #[test]
    fn missing_fixture_is_a_failed_report_naming_the_file() {
        let dir = temp_dir("nofix");
        let store = ModelStore::new(&dir, Manifest::embedded().expect("manifest"));
        let r = check_model(&store, "mtcnn-onet", &dir, no_runtime);
        assert!(!r.ok);
        assert_eq!(r.model, "mtcnn-onet");
        assert_eq!(r.outputs_checked, 0);
        let detail = r.detail.expect("detail");
        assert!(detail.contains(&format!("{}", dir.join("mtcnn-onet.json").display())), "{detail}");
        assert!(detail.contains(FIXTURES_ENV), "{detail}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unknown_model_is_a_failed_report() {
        let store = ModelStore::new("/nonexistent", Manifest::embedded().expect("manifest"));
        let r = check_model(&store, "nope", &repo_fixtures(), no_runtime);
        assert!(!r.ok);
        assert!(r.detail.expect("detail").contains("not in models/manifest.toml"));
    }

    #[test]
    fn missing_and_corrupt_models_are_failed_reports_pointing_at_fetch_sh() {
        let dir = temp_dir("nomodel");
        let store = ModelStore::new(&dir, Manifest::embedded().expect("manifest"));
        let r = check_model(&store, "mtcnn-onet", &repo_fixtures(), no_runtime);
        assert!(!r.ok);
        let detail = r.detail.expect("detail");
        assert!(detail.contains("onet.onnx"), "{detail}");
        assert!(detail.contains("models/fetch.sh"), "{detail}");

        std::fs::create_dir_all(dir.join("mtcnn")).expect("mkdir");
        std::fs::write(dir.join("mtcnn/onet.onnx"), b"not a model").expect("write");
        let r = check_model(&store, "mtcnn-onet", &repo_fixtures(), no_runtime);
        let detail = r.detail.expect("detail");
        assert!(detail.contains("SHA-256"), "{detail}");
        assert!(detail.contains("models/fetch.sh"), "{detail}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_load_error_or_panic_is_a_failed_report() {
        // a store whose files "verify" because the manifest is edited to the
        // SHA-256 of what we write
        let dir = temp_dir("loaderr");
        std::fs::create_dir_all(dir.join("mtcnn")).expect("mkdir");
        std::fs::write(dir.join("mtcnn/onet.onnx"), b"abc").expect("write");
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let manifest = Manifest::embedded().expect("manifest");
        let onet = manifest.model("mtcnn-onet").expect("onet").sha256.clone();
        let text = crate::manifest::EMBEDDED_MANIFEST.replace(&onet, abc);
        let store = ModelStore::new(&dir, Manifest::parse(&text, "test").expect("manifest"));
        // the fixture then belongs to another model file
        let r = check_model(&store, "mtcnn-onet", &repo_fixtures(), no_runtime);
        let detail = r.detail.expect("detail");
        assert!(detail.contains("make_reference.sh"), "{detail}");

        // with a fixture copy that names the edited SHA-256, the loader runs
        let fixtures = dir.join("fixtures");
        std::fs::create_dir_all(&fixtures).expect("mkdir");
        for entry in std::fs::read_dir(repo_fixtures()).expect("fixtures") {
            let entry = entry.expect("entry");
            let name = entry.file_name();
            if name.to_string_lossy().starts_with("mtcnn-onet.") {
                std::fs::copy(entry.path(), fixtures.join(&name)).expect("copy");
            }
        }
        let json = fixtures.join("mtcnn-onet.json");
        let text = std::fs::read_to_string(&json).expect("json").replace(&onet, abc);
        std::fs::write(&json, text).expect("write");
        let r = check_model(&store, "mtcnn-onet", &fixtures, |p| {
            Err(InferenceError::Ort { model: "mtcnn-onet".into(), message: format!("cannot load {}", p.display()) })
        });
        assert!(!r.ok);
        assert!(r.detail.expect("detail").contains("onet.onnx"));
        let r = check_model(&store, "mtcnn-onet", &fixtures, no_runtime);
        assert!(!r.ok);
        let detail = r.detail.expect("detail");
        assert!(detail.contains("panicked: must not load the model"), "{detail}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn every_committed_fixture_loads() {
        let manifest = Manifest::embedded().expect("manifest");
        for m in &manifest.model {
            let f = Fixture::load(&repo_fixtures(), m).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(f.model, m.name);
            assert!(!f.inputs.is_empty() && !f.outputs.is_empty(), "{}", m.name);
        }
    }

    #[test]
    fn reports_serialise_and_display() {
        let r = ModelReport {
            model: "age".into(),
            ok: true,
            max_abs_diff: 0.0,
            outputs_checked: 1,
            latency_ms: 1.25,
            detail: None,
        };
        let v = serde_json::to_value(&r).expect("json");
        assert_eq!(v["model"], "age");
        assert_eq!(v["ok"], true);
        assert_eq!(v["outputs_checked"], 1);
        assert!(v["detail"].is_null());
        let line = r.to_string();
        assert!(line.starts_with("ok") && line.contains("age"), "{line}");
        let bad = ModelReport::failed("age", "boom");
        assert!(bad.to_string().ends_with(": boom"), "{bad}");
    }
}

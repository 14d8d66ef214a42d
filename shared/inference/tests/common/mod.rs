//! Shared helpers for the fixture-based tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ndarray::ArrayD;
use serde_json::Value;
use sightline_inference::npy::{read_npy_f32, read_npy_u8};
use sightline_inference::preprocess::{Normalize, normalize_u8};

/// `tests/fixtures/models/` at the repository root.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models")
}

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn f32s(v: &Value) -> Vec<f32> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number") as f32).collect()
}

pub fn norm_of(v: &Value) -> Normalize {
    let three = |k: &str| {
        let x = f32s(&v[k]);
        match x.as_slice() {
            [a] => [*a; 3],
            [a, b, c] => [*a, *b, *c],
            _ => panic!("{k}: {x:?}"),
        }
    };
    Normalize { divisor: v["divisor"].as_f64().expect("divisor") as f32, mean: three("mean"), std: three("std") }
}

/// An input of a model fixture: the exact f32 tensor (from the f32 file when
/// there is one, else decoded from the u8 file) and, when both exist, whether
/// decoding the u8 file reproduces the f32 file bit for bit.
pub struct FixtureInput {
    pub name: String,
    pub tensor: ArrayD<f32>,
    pub decoded: ArrayD<f32>,
    pub f32_file: Option<ArrayD<f32>>,
}

pub fn load_input(spec: &Value) -> FixtureInput {
    let dir = fixtures();
    let q = read_npy_u8(dir.join(spec["u8_file"].as_str().expect("u8_file"))).expect("u8 fixture");
    let axis = spec["channel_axis"].as_u64().expect("channel_axis") as usize;
    let decoded = normalize_u8(q.view(), axis, &norm_of(spec)).expect("normalize");
    let f32_file = spec["f32_file"].as_str().map(|f| read_npy_f32(dir.join(f)).expect("f32 fixture"));
    let tensor = f32_file.clone().unwrap_or_else(|| decoded.clone());
    let shape: Vec<usize> =
        spec["shape"].as_array().expect("shape").iter().map(|d| d.as_u64().expect("dim") as usize).collect();
    assert_eq!(tensor.shape(), shape.as_slice(), "fixture input shape");
    FixtureInput { name: spec["name"].as_str().expect("name").to_string(), tensor, decoded, f32_file }
}

pub fn bits_equal(a: &ArrayD<f32>, b: &ArrayD<f32>) -> bool {
    a.shape() == b.shape() && a.iter().zip(b.iter()).all(|(x, y)| x.to_bits() == y.to_bits())
}

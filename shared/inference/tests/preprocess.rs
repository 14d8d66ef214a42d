//! Preprocessing helpers against the Python reference
//! (tests/fixtures/models/preprocess.json, written by models/make_reference.py).
//! Needs no model and no ONNX Runtime.

mod common;

use common::{bits_equal, fixtures, load_input, norm_of, read_json};
use image::RgbImage;
use ndarray::ArrayD;
use sightline_inference::Manifest;
use sightline_inference::npy::{read_npy_f32, read_npy_u8};
use sightline_inference::preprocess::{ChannelOrder, Filter, Layout, letterbox, resize_rgb, to_gray, to_tensor};

fn image_from(a: &ArrayD<u8>) -> RgbImage {
    let (h, w) = (a.shape()[0] as u32, a.shape()[1] as u32);
    RgbImage::from_raw(w, h, a.iter().copied().collect()).expect("rgb buffer")
}

fn max_diff(img: &RgbImage, reference: &ArrayD<u8>) -> i32 {
    assert_eq!(reference.shape(), &[img.height() as usize, img.width() as usize, 3]);
    img.as_raw().iter().zip(reference.iter()).map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs()).max().unwrap_or(0)
}

fn desc() -> serde_json::Value {
    read_json(&fixtures().join("preprocess.json"))
}

fn decoded_png() -> RgbImage {
    let d = desc();
    image::open(fixtures().join(d["image"].as_str().expect("image"))).expect("decode tiny.png").to_rgb8()
}

#[test]
fn png_decode_matches_python() {
    let d = desc();
    let raw = read_npy_u8(fixtures().join(d["raw_rgb"]["file"].as_str().expect("file"))).expect("raw");
    assert_eq!(max_diff(&decoded_png(), &raw), 0, "lossless PNG must decode identically");
}

#[test]
fn resize_matches_pillow_bilinear_within_one() {
    let img = decoded_png();
    for r in desc()["resize"].as_array().expect("resize") {
        let reference = read_npy_u8(fixtures().join(r["file"].as_str().expect("file"))).expect("npy");
        let (w, h) = (r["width"].as_u64().expect("w") as u32, r["height"].as_u64().expect("h") as u32);
        let ours = resize_rgb(&img, w, h, Filter::Bilinear).expect("resize");
        let diff = max_diff(&ours, &reference);
        let allowed = r["max_abs_diff_u8"].as_i64().expect("tolerance") as i32;
        assert!(diff <= allowed, "resize to {w}x{h}: max |diff| {diff} > {allowed}");
    }
}

#[test]
fn tensors_are_bit_exact() {
    for t in desc()["tensors"].as_array().expect("tensors") {
        let src = read_npy_u8(fixtures().join(t["from"].as_str().expect("from"))).expect("src");
        let reference = read_npy_f32(fixtures().join(t["file"].as_str().expect("file"))).expect("ref");
        let layout = match t["layout"].as_str() {
            Some("NCHW") => Layout::Nchw,
            Some("NHWC") => Layout::Nhwc,
            other => panic!("layout {other:?}"),
        };
        let order = match t["channel_order"].as_str() {
            Some("RGB") => ChannelOrder::Rgb,
            Some("BGR") => ChannelOrder::Bgr,
            other => panic!("order {other:?}"),
        };
        let ours = to_tensor(&image_from(&src), layout, order, &norm_of(t)).into_dyn();
        assert!(bits_equal(&ours, &reference), "{} differs from Python", t["file"]);
    }
}

#[test]
fn letterbox_matches_python() {
    let d = desc();
    let l = &d["letterbox"];
    let reference = read_npy_u8(fixtures().join(l["file"].as_str().expect("file"))).expect("npy");
    let fill: Vec<u8> = l["fill"].as_array().expect("fill").iter().map(|v| v.as_u64().expect("u8") as u8).collect();
    let (out, lb) = letterbox(
        &decoded_png(),
        l["width"].as_u64().expect("w") as u32,
        l["height"].as_u64().expect("h") as u32,
        [fill[0], fill[1], fill[2]],
        Filter::Bilinear,
    )
    .expect("letterbox");
    assert_eq!(lb.pad_x as u64, l["pad_x"].as_u64().expect("pad_x"));
    assert_eq!(lb.pad_y as u64, l["pad_y"].as_u64().expect("pad_y"));
    assert_eq!(lb.inner_width as u64, l["inner_width"].as_u64().expect("iw"));
    assert_eq!(lb.inner_height as u64, l["inner_height"].as_u64().expect("ih"));
    assert!((lb.scale - l["scale"].as_f64().expect("scale")).abs() < 1e-12);
    let diff = max_diff(&out, &reference);
    assert!(diff <= l["max_abs_diff_u8"].as_i64().expect("tol") as i32, "letterbox max |diff| {diff}");
}

#[test]
fn gray_matches_pillow_exactly() {
    let d = desc();
    let reference = read_npy_u8(fixtures().join(d["gray"]["file"].as_str().expect("file"))).expect("npy");
    let ours = to_gray(&decoded_png());
    assert!(ours.as_raw().iter().eq(reference.iter()), "grayscale differs from Pillow convert('L')");
}

/// Every model fixture: the u8 encoding decodes (with the crate's
/// normalisation) to exactly the f32 tensor that Python fed onnxruntime.
#[test]
fn model_fixture_inputs_decode_bit_exactly() {
    let manifest = Manifest::embedded().expect("manifest");
    let root = fixtures().join("../../..");
    let mut checked = 0;
    for m in &manifest.model {
        let d = read_json(&root.join(&m.reference));
        assert_eq!(d["model_sha256"].as_str(), Some(m.sha256.as_str()), "{}: fixture made for another file", m.name);
        for spec in d["inputs"].as_array().expect("inputs") {
            let input = load_input(spec);
            if let Some(f) = &input.f32_file {
                assert!(bits_equal(&input.decoded, f), "{} input {}: u8 decode is not bit-exact", m.name, input.name);
                checked += 1;
            }
            // the manifest's own preprocessing yields the same numbers
            let from_manifest = sightline_inference::preprocess::Normalize::from_spec(&m.preprocessing).expect("norm");
            assert_eq!(from_manifest, norm_of(spec), "{}: fixture normalisation differs from the manifest", m.name);
        }
    }
    assert!(checked >= 5, "only {checked} f32 inputs checked");
}

//! Bit-for-bit parity of the re-implemented OpenCV / pyclipper operations with the real ones,
//! on the seeded cases of `tests/fixtures/ocr/cv2.json` (written by
//! `evals/ocr/make_cv2_fixture.py` with opencv-python-headless and pyclipper).

use serde_json::Value;
use sightline_vision::cv::{Bgr, perspective_transform, resize_linear, warp_perspective_cubic};
use sightline_vision::geometry::{
    FPoint, IPoint, box_points, dilate_2x2, fill_poly, find_contours, min_area_rect, offset_round, unclip,
};

fn fixture() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/ocr/cv2.json");
    serde_json::from_slice(&std::fs::read(&path).expect("read cv2.json")).expect("json")
}

fn n(v: &Value) -> usize {
    v.as_u64().expect("integer") as usize
}

fn f(v: &Value) -> f32 {
    v.as_f64().expect("number") as f32
}

fn ipoints(v: &Value) -> Vec<IPoint> {
    v.as_array().expect("points").iter().map(|p| (p[0].as_i64().expect("x"), p[1].as_i64().expect("y"))).collect()
}

fn fpoints(v: &Value) -> Vec<FPoint> {
    v.as_array().expect("points").iter().map(|p| [f(&p[0]), f(&p[1])]).collect()
}

/// Bytes stored as a hex string.
fn bytes(v: &Value) -> Vec<u8> {
    let s = v.as_str().expect("hex string").as_bytes();
    let nibble = |c: u8| (c as char).to_digit(16).expect("hex digit") as u8;
    s.chunks_exact(2).map(|p| nibble(p[0]) << 4 | nibble(p[1])).collect()
}

/// A case's mask, given as rows of `0` and `1` characters.
fn mask_of(case: &Value) -> Vec<u8> {
    case["mask"]
        .as_array()
        .expect("rows")
        .iter()
        .flat_map(|r| r.as_str().expect("row").bytes().map(|b| b - b'0'))
        .collect()
}

fn rect_of(v: &Value) -> [f32; 5] {
    let a = v.as_array().expect("rect");
    [f(&a[0]), f(&a[1]), f(&a[2]), f(&a[3]), f(&a[4])]
}

#[test]
fn contours_and_min_area_rects_match_opencv() {
    let fx = fixture();
    let mut checked = 0;
    let mut bad = Vec::new();
    for case in fx["contours"].as_array().expect("cases") {
        let (w, h) = (n(&case["width"]), n(&case["height"]));
        let mask = mask_of(case);
        let ours = find_contours(&mask, w, h);
        let want = case["contours"].as_array().expect("contours");
        // OpenCV lists them in reverse discovery order; compare as sets of point lists
        let mut ours_sorted: Vec<Vec<IPoint>> = ours.clone();
        let mut want_sorted: Vec<Vec<IPoint>> = want.iter().map(|c| ipoints(&c["points"])).collect();
        ours_sorted.sort();
        want_sorted.sort();
        assert_eq!(ours_sorted, want_sorted, "contours of a {w}x{h} mask");
        for c in want {
            let pts = ipoints(&c["points"]);
            let r = min_area_rect(&pts);
            let got = [r.center[0], r.center[1], r.size[0], r.size[1], r.angle];
            if got != rect_of(&c["rect"]) {
                bad.push(format!("minAreaRect of {pts:?}: {got:?} vs {:?}", rect_of(&c["rect"])));
            } else if box_points(&r).to_vec() != fpoints(&c["box"]) {
                bad.push(format!("boxPoints of {pts:?}: {:?} vs {:?}", box_points(&r), fpoints(&c["box"])));
            }
            checked += 1;
        }
    }
    assert!(checked > 30, "only {checked} contours checked");
    assert!(bad.is_empty(), "{} of {checked} differ:\n{}", bad.len(), bad.join("\n"));
}

#[test]
fn contour_order_is_opencvs() {
    let fx = fixture();
    for case in fx["contours"].as_array().expect("cases") {
        let (w, h) = (n(&case["width"]), n(&case["height"]));
        let mask = mask_of(case);
        let ours = find_contours(&mask, w, h);
        let want: Vec<Vec<IPoint>> =
            case["contours"].as_array().expect("c").iter().map(|c| ipoints(&c["points"])).collect();
        assert_eq!(ours, want, "order of the contours of a {w}x{h} mask");
    }
}

#[test]
fn dilation_matches_opencv() {
    for case in fixture()["dilate"].as_array().expect("cases") {
        let (w, h) = (n(&case["width"]), n(&case["height"]));
        assert_eq!(dilate_2x2(&bytes(&case["mask"]), w, h), bytes(&case["dilated"]));
    }
}

#[test]
fn fill_poly_matches_opencv() {
    let mut bad = Vec::new();
    for case in fixture()["fill"].as_array().expect("cases") {
        let (w, h) = (n(&case["width"]), n(&case["height"]));
        let mut m = vec![0u8; w * h];
        let poly = ipoints(&case["poly"]);
        fill_poly(&mut m, w, h, &poly);
        let want = bytes(&case["mask"]);
        let inside = poly.iter().all(|p| p.0 >= 0 && p.1 >= 0 && (p.0 as usize) < w && (p.1 as usize) < h);
        let differing = m.iter().zip(&want).filter(|(a, b)| a != b).count();
        // exact inside the mask; at most two pixels of a clipped outline may differ
        if (inside && differing > 0) || differing > 2 {
            let grid = |v: &[u8]| {
                v.chunks(w).map(|r| r.iter().map(|b| b.to_string()).collect::<String>()).collect::<Vec<_>>().join(" ")
            };
            bad.push(format!("fillPoly {poly:?} in {w}x{h}:\n ours {}\n cv2  {}", grid(&m), grid(&want)));
        }
    }
    assert!(bad.is_empty(), "{} of 24 differ:\n{}", bad.len(), bad.join("\n"));
}

#[test]
fn unclip_matches_pyclipper_and_opencv() {
    for case in fixture()["unclip"].as_array().expect("cases") {
        let b = fpoints(&case["box"]);
        let bx: [FPoint; 4] = [b[0], b[1], b[2], b[3]];
        let ours = unclip(&bx, 1.6);
        let mut a = ours.clone();
        let mut want = ipoints(&case["expanded"]);
        a.sort();
        a.dedup();
        want.sort();
        // Clipper's union drops collinear vertices: every returned vertex is one of ours
        assert!(want.iter().all(|p| a.contains(p)), "offset of {bx:?}: {want:?} not within {a:?}");
        let trunc: Vec<IPoint> = bx.iter().map(|p| (p[0] as i64, p[1] as i64)).collect();
        assert_eq!(offset_round(&trunc, case["distance"].as_f64().expect("d")), ours);
        // and what matters downstream: the rectangle around it
        let r = min_area_rect(&ours);
        let got = box_points(&r);
        let want_box = fpoints(&case["box2"]);
        let mut g: Vec<FPoint> = got.to_vec();
        let mut w: Vec<FPoint> = want_box.clone();
        let key = |p: &FPoint| ((p[0] * 8.0).round() as i64, (p[1] * 8.0).round() as i64);
        g.sort_by_key(key);
        w.sort_by_key(key);
        for (p, q) in g.iter().zip(&w) {
            assert!((p[0] - q[0]).abs() < 1e-3 && (p[1] - q[1]).abs() < 1e-3, "box of the offset: {g:?} vs {w:?}");
        }
    }
}

fn image(case: &Value) -> Bgr {
    Bgr { width: n(&case["width"]), height: n(&case["height"]), data: bytes(&case["data"]) }
}

#[test]
fn resize_matches_opencv() {
    for case in fixture()["resize"].as_array().expect("cases") {
        let img = image(case);
        let out = resize_linear(&img, n(&case["dw"]), n(&case["dh"]));
        assert_eq!(
            out.data,
            bytes(&case["out"]),
            "resize {}x{} -> {}x{}",
            img.width,
            img.height,
            out.width,
            out.height
        );
    }
}

#[test]
fn perspective_crop_matches_opencv() {
    for case in fixture()["warp"].as_array().expect("cases") {
        let img = image(case);
        let p = fpoints(&case["points"]);
        let (cw, ch) = (n(&case["cw"]), n(&case["ch"]));
        let dst = [[0.0, 0.0], [cw as f32, 0.0], [cw as f32, ch as f32], [0.0, ch as f32]];
        let m = perspective_transform(&[p[0], p[1], p[2], p[3]], &dst).expect("solvable");
        let out = warp_perspective_cubic(&img, &m, cw, ch);
        assert_eq!(out.data, bytes(&case["out"]), "warp of {p:?}");
    }
}

//! The JSON shape of a face, shared by the stage's annotations and `sightline face --json`:
//! `{"box":[x,y,w,h],"score","landmarks":[[x,y] x5],"yaw","pitch","roll","frontal","age",
//! "gender","person"}` plus `"embedding"` when asked for. Values are rounded (pixels and degrees
//! to 0.1, score to 4 decimals, embedding to 6) and held as f64 so that outputs read and
//! diff cleanly.

pub use sightline_messages::annotations::FaceJson;

use crate::engine::Face;

/// Rounds to `decimals` in f64, so that JSON shows the short decimal (an f32 widened to f64
/// would print as 41.29999923706055).
fn r(v: f32, decimals: i32) -> f64 {
    let m = 10f64.powi(decimals);
    (f64::from(v) * m).round() / m
}

/// The JSON form of `face` with `person`, with or without the embedding.
pub fn face_json(face: &Face, person: Option<u64>, with_embedding: bool) -> FaceJson {
    let b = face.bbox;
    FaceJson {
        bbox: [r(b.x, 1), r(b.y, 1), r(b.w, 1), r(b.h, 1)],
        score: r(face.score, 4),
        landmarks: face.landmarks.iter().map(|p| [r(p[0], 1), r(p[1], 1)]).collect(),
        yaw: face.pose.map(|p| r(p.yaw, 1)),
        pitch: face.pose.map(|p| r(p.pitch, 1)),
        roll: face.pose.map(|p| r(p.roll, 1)),
        frontal: face.frontal,
        age: r(face.age, 1),
        gender: face.gender,
        person,
        embedding: with_embedding.then(|| face.embedding.iter().map(|v| r(*v, 6)).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Gender;
    use crate::geometry::BoxF;
    use crate::pose::Pose;

    #[test]
    fn serialises_to_the_documented_shape() {
        let face = Face {
            bbox: BoxF { x: 10.04, y: 20.0, w: 30.0, h: 41.26 },
            score: 0.987_654,
            landmarks68: vec![[0.0, 0.0]; 68],
            landmarks: [[1.0, 2.0]; 5],
            pose: Some(Pose { yaw: 12.345, pitch: -3.0, roll: 0.04, error: 0.01 }),
            frontal: true,
            age: 33.333,
            gender: Gender::Female,
            male_probability: 0.1,
            embedding: vec![0.6, 0.8],
        };
        let v = serde_json::to_value(face_json(&face, Some(3), false)).expect("json");
        assert_eq!(v["box"], serde_json::json!([10.0, 20.0, 30.0, 41.3]));
        assert_eq!(v["gender"], "female");
        assert_eq!(v["person"], 3);
        assert_eq!(v["frontal"], true);
        assert_eq!(v["landmarks"].as_array().map(Vec::len), Some(5));
        assert_eq!(v["yaw"], serde_json::json!(12.3));
        assert_eq!(v["age"], serde_json::json!(33.3));
        assert!(serde_json::to_string(&v).expect("text").contains("\"score\":0.9877"));
        assert!(v.get("embedding").is_none());
        let with = serde_json::to_value(face_json(&face, None, true)).expect("json");
        assert_eq!(with["person"], serde_json::Value::Null);
        assert_eq!(with["embedding"].as_array().map(Vec::len), Some(2));
        let back: FaceJson = serde_json::from_value(with).expect("round trip");
        assert_eq!(back.gender, Gender::Female);
    }
}

//! Decoding the committed fixture video (`tests/fixtures/store/vtest-4s.mp4`: 4 s of OpenCV's
//! `vtest.avi`, H.264, 768×576, 10 fps) through FFmpeg, whole, windowed, truncated.

use std::path::PathBuf;

use sightline_video::{Frames, VideoError, Window, probe};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/store/vtest-4s.mp4")
}

#[test]
fn probes_and_samples_the_fixture_at_five_fps() {
    let info = probe(&fixture()).expect("probe");
    assert_eq!((info.width, info.height), (768, 576));
    assert_eq!(info.codec, "h264");
    assert!((info.fps - 10.0).abs() < 1e-6, "{info:?}");
    assert!(info.duration_s.is_some_and(|d| (d - 4.0).abs() < 0.2), "{info:?}");

    let frames: Vec<_> =
        Frames::open(&fixture(), 5.0, Window::ALL).expect("open").collect::<Result<_, _>>().expect("decode");
    assert_eq!(frames.len(), 20);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.index, i as u64);
        assert!((f.t - i as f64 * 0.2).abs() < 1e-9);
        assert_eq!(f.image.dimensions(), (768, 576));
    }
    // Real pictures, not blank buffers: frames differ and have contrast.
    let (a, b) = (&frames[0].image, &frames[19].image);
    let diff = a.as_raw().iter().zip(b.as_raw()).filter(|(x, y)| x.abs_diff(**y) > 30).count();
    assert!(diff > 1000, "first and last frame differ in {diff} bytes");
}

#[test]
fn a_window_starts_its_timestamps_at_its_start() {
    let frames: Vec<_> = Frames::open(&fixture(), 5.0, Window { start_s: 2.0, duration_s: Some(1.0) })
        .expect("open")
        .collect::<Result<_, _>>()
        .expect("decode");
    assert_eq!(frames.len(), 5);
    assert!((frames[0].t - 2.0).abs() < 1e-9 && (frames[4].t - 2.8).abs() < 1e-9);
}

#[test]
fn a_truncated_video_keeps_the_frames_before_the_fault_and_says_so() {
    // The fixture remuxed to Matroska (read front to back) and cut at 70 %: what a recorder
    // leaves when it dies mid-file.
    let dir = tempfile::tempdir().expect("temp dir");
    let mkv = dir.path().join("whole.mkv");
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(fixture())
        .args(["-c", "copy"])
        .arg(&mkv)
        .status()
        .expect("run ffmpeg");
    assert!(status.success());
    let full = std::fs::read(&mkv).expect("read remuxed video");
    let cut = dir.path().join("cut.mkv");
    std::fs::write(&cut, &full[..full.len() * 7 / 10]).expect("write cut video");
    let mut ok = 0u64;
    let mut errors = Vec::new();
    for f in Frames::open(&cut, 5.0, Window::ALL).expect("open") {
        match f {
            Ok(frame) => {
                assert!(errors.is_empty(), "a frame after the error");
                assert_eq!(frame.index, ok);
                ok += 1;
            }
            Err(e) => errors.push(e),
        }
    }
    assert!((3..20).contains(&ok), "{ok} frames before the cut");
    match &errors[..] {
        [VideoError::Corrupt { frames, message, .. }] => {
            assert_eq!(*frames, ok);
            assert!(message.contains("ended prematurely"), "{message}");
        }
        other => panic!("expected one Corrupt error, got {other:?}"),
    }
}

#[test]
fn garbage_with_a_video_extension_is_not_a_video() {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = dir.path().join("camera1.mp4");
    std::fs::write(&p, vec![0x42u8; 100_000]).expect("write");
    assert!(matches!(Frames::open(&p, 5.0, Window::ALL), Err(VideoError::NotVideo { .. })));
}

//! The store route end to end: a camera's video through an ingest worker (probe, cut into
//! one-second segments), two detect workers (the people of each segment's frames), a face
//! worker (the heads of the people tall enough) and a track worker (the segments in order, the
//! tracker state carried between them), on the real services. Its tables must equal the embedded `sightline store` run of the same video, and
//! both detect replicas must have taken segments. The detect workers need the models.

use sightline_tests::{Services, Worker, fixture_path};

#[test]
fn a_video_in_segments_over_two_detect_replicas_counts_as_the_embedded_run() {
    let services = Services::start();
    let dir = services.scratch.path().join("store");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let camera = fixture_path("store/camera.toml");
    let video = fixture_path("store/vtest-4s.mp4");
    let (camera, video) = (camera.to_str().expect("utf8"), video.to_str().expect("utf8"));

    let embedded = dir.join("embedded");
    let out = services.sightline(&[
        "store",
        "--camera",
        camera,
        "--out",
        embedded.to_str().expect("utf8"),
        "--segment-s",
        "1",
        "--json",
        video,
    ]);
    assert!(out.status.success(), "embedded store failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("summary JSON");
    assert_eq!(summary["frames"], 20, "{summary}");
    assert!(summary["tracks"].as_u64().is_some_and(|t| t >= 3), "{summary}");

    let _ingest = Worker::start(&services, "ingest", &[]);
    let detect_a = Worker::start(&services, "detect", &[("PREFETCH", "1")]);
    let detect_b = Worker::start(&services, "detect", &[("PREFETCH", "1")]);
    let _face = Worker::start(&services, "face", &[]);
    let _track = Worker::start(&services, "track", &[("PREFETCH", "4")]);
    let distributed = dir.join("distributed");
    let (job, out) = services.submit_and_wait(
        &["store", "--camera", camera, "--segment-s", "1", "--out", distributed.to_str().expect("utf8"), video],
        600,
    );
    assert_eq!(out["status"]["outcomes"]["ok"].as_u64(), Some(1), "one video: {out}");
    let records = services.records(&job);
    assert_eq!(records.len(), 1);
    let store = &records[0]["annotations"]["store"];
    assert_eq!(store["frames"], 20, "{store}");

    for table in
        ["counts.csv", "crossings.csv", "dwell.csv", "frames.csv", "occupancy.csv", "heatmap.csv", "composition.csv"]
    {
        let a = std::fs::read_to_string(embedded.join(table)).expect("embedded table");
        let b = std::fs::read_to_string(distributed.join(table)).expect("distributed table");
        assert_eq!(a, b, "{table} differs between the embedded and the distributed run");
    }
    assert!(distributed.join("report.html").exists() && distributed.join("heatmap.png").exists());
    // The four segments were spread over both detect replicas.
    for (name, w) in [("a", &detect_a), ("b", &detect_b)] {
        assert!(w.log_text().contains("segment detected"), "detect {name} took no segment:\n{}", w.log_text());
    }
    let dlq = services.sightline_json(&["dlq", "list", "track", "--json"]);
    assert_eq!(dlq.as_array().map(Vec::len), Some(0), "{dlq}");
}

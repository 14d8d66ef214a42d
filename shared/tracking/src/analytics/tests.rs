//! Scripted synthetic trajectories through the whole pipeline (tracker included).

use super::*;
use crate::camera::{Correction, CountLine, FootPoint};
use crate::geometry::Polygon;

const FPS: f64 = 5.0;
const PERIOD: f64 = 1.0 / FPS;

fn t(frame: usize) -> f64 {
    frame as f64 / FPS
}

/// A standing person whose foot point is `(x, y)`.
fn person(x: f64, y: f64) -> Detection {
    Detection::new(x - 20.0, y - 120.0, 40.0, 120.0, 0.9)
}

fn square(x0: f64, y0: f64, x1: f64, y1: f64) -> Polygon {
    Polygon::new(vec![Point::new(x0, y0), Point::new(x1, y0), Point::new(x1, y1), Point::new(x0, y1)])
}

/// A camera with a horizontal line at y = 310 from x = 100 to 500, inside below ("right").
fn door_camera() -> Camera {
    let mut camera = Camera::new("test");
    camera.lines.push(CountLine {
        name: "door".into(),
        a: Point::new(100.0, 310.0),
        b: Point::new(500.0, 310.0),
        in_side: Side::Right,
    });
    camera
}

fn zone_camera() -> Camera {
    let mut camera = Camera::new("test");
    camera.zones.push(Zone { name: "shelf".into(), polygon: square(200.0, 200.0, 400.0, 400.0) });
    camera
}

/// Runs one person along `path` (foot points, one per frame) and returns the report.
fn run_path(camera: Camera, path: &[(f64, f64)]) -> Report {
    let mut analytics = Analytics::new(camera, TrackerConfig::default()).unwrap();
    for (i, &(x, y)) in path.iter().enumerate() {
        analytics.observe(t(i), &[person(x, y)]).unwrap();
    }
    analytics.finish(t(path.len()))
}

/// Foot points every `step` pixels along the polyline through `waypoints`.
fn walk(waypoints: &[(f64, f64)], step: f64) -> Vec<(f64, f64)> {
    let mut points = vec![waypoints[0]];
    for pair in waypoints.windows(2) {
        let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
        let steps = ((x1 - x0).hypot(y1 - y0) / step).round() as usize;
        points.extend((1..=steps).map(|k| {
            let f = k as f64 / steps as f64;
            (x0 + f * (x1 - x0), y0 + f * (y1 - y0))
        }));
    }
    points
}

fn crossings(report: &Report) -> Vec<(f64, u64, Direction)> {
    report.crossings.iter().map(|c| (c.t, c.track, c.direction)).collect()
}

fn assert_close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-9, "{a} != {b}");
}

#[test]
fn crossing_in_then_out_counts_one_entry_and_one_exit_at_the_crossing_frames() {
    // Down 20 px a frame from y = 200 to 400, wait, back up to 200.
    let mut path: Vec<(f64, f64)> = (0..=10).map(|i| (300.0, 200.0 + 20.0 * f64::from(i))).collect();
    path.extend((0..5).map(|_| (300.0, 400.0)));
    path.extend((1..=10).map(|k| (300.0, 400.0 - 20.0 * f64::from(k))));
    path.extend((0..5).map(|_| (300.0, 200.0)));
    let report = run_path(door_camera(), &path);
    // First below y = 310: frame 6 (y = 320). First above on the way back: frame 20 (y = 300).
    assert_eq!(crossings(&report), vec![(t(6), 1, Direction::In), (t(20), 1, Direction::Out)]);
    assert_eq!(report.crossings[0].line, "door");
    let entries: u64 = report.counts.iter().map(|r| r.entries).sum();
    let exits: u64 = report.counts.iter().map(|r| r.exits).sum();
    assert_eq!((entries, exits), (1, 1));
}

#[test]
fn walking_parallel_beyond_the_segment_end_is_no_crossing() {
    // x = 600 is beyond b = (500, 310): the line's extension is crossed, not the segment.
    let path: Vec<(f64, f64)> = (0..=20).map(|i| (600.0, 150.0 + 20.0 * f64::from(i))).collect();
    assert!(run_path(door_camera(), &path).crossings.is_empty());
}

#[test]
fn going_around_the_end_settles_silently_and_the_way_back_through_counts() {
    // Right above the line and out past b, down beyond the end, left below, up through the
    // segment: 10 px a frame, slow enough for the tracker to follow the turns.
    let path = walk(&[(300.0, 250.0), (600.0, 250.0), (600.0, 400.0), (345.0, 400.0), (345.0, 200.0)], 10.0);
    let report = run_path(door_camera(), &path);
    // Only the last leg crosses the segment: from the in side (below) to above, an exit, at
    // the first frame above y = 310.
    let first_above = path.iter().rposition(|&(_, y)| y >= 310.0).map(|i| i + 1);
    assert_eq!(first_above.map(|i| path[i]), Some((345.0, 300.0)));
    assert_eq!(crossings(&report), vec![(t(first_above.unwrap_or_default()), 1, Direction::Out)]);
}

#[test]
fn flicker_across_the_line_counts_nothing() {
    let mut path: Vec<(f64, f64)> = (0..5).map(|i| (300.0, 210.0 + 20.0 * f64::from(i))).collect();
    path.extend((0..20).map(|i| (300.0, if i % 2 == 0 { 330.0 } else { 290.0 })));
    path.extend((1..=5).map(|i| (300.0, 290.0 - 20.0 * f64::from(i))));
    let report = run_path(door_camera(), &path);
    assert!(report.crossings.is_empty(), "{:?}", report.crossings);
}

#[test]
fn flicker_then_staying_across_counts_once_at_the_final_run() {
    let mut path: Vec<(f64, f64)> = (0..5).map(|i| (300.0, 210.0 + 20.0 * f64::from(i))).collect();
    path.extend((0..6).map(|i| (300.0, if i % 2 == 0 { 330.0 } else { 290.0 })));
    path.extend((0..6).map(|i| (300.0, 330.0 + 10.0 * f64::from(i))));
    let report = run_path(door_camera(), &path);
    // The final run below starts at frame 11.
    assert_eq!(crossings(&report), vec![(t(11), 1, Direction::In)]);
}

#[test]
fn turning_back_before_min_frames_on_the_other_side_counts_nothing() {
    // One frame below the line (min_frames = 2), then back up.
    let mut path: Vec<(f64, f64)> = (0..6).map(|i| (300.0, 200.0 + 20.0 * f64::from(i))).collect();
    path.push((300.0, 320.0));
    path.extend((1..=6).map(|i| (300.0, 300.0 - 20.0 * f64::from(i))));
    assert!(run_path(door_camera(), &path).crossings.is_empty());

    // With min_frames = 3, two frames below are not enough either.
    let mut camera = door_camera();
    camera.min_frames = 3;
    let mut path: Vec<(f64, f64)> = (0..6).map(|i| (300.0, 200.0 + 20.0 * f64::from(i))).collect();
    path.extend([(300.0, 320.0), (300.0, 325.0)]);
    path.extend((1..=6).map(|i| (300.0, 300.0 - 20.0 * f64::from(i))));
    assert!(run_path(camera, &path).crossings.is_empty());
}

#[test]
fn dwell_of_n_frames_lasts_n_sampling_periods() {
    // Walk right along y = 300 at 20 px a frame: x = 110 + 20 i is inside (200, 400) for
    // i = 5..=14, ten frames.
    let path: Vec<(f64, f64)> = (0..25).map(|i| (110.0 + 20.0 * f64::from(i), 300.0)).collect();
    let report = run_path(zone_camera(), &path);
    assert_eq!(report.dwell.len(), 1);
    let visit = &report.dwell[0];
    assert_eq!((visit.track, visit.zone.as_str()), (1, "shelf"));
    assert_close(visit.enter_t, t(5));
    assert_close(visit.exit_t, t(15));
    assert!((visit.seconds - 10.0 * PERIOD).abs() <= PERIOD);
    // Occupancy follows the same frames.
    let occupied: Vec<f64> = report.occupancy.iter().filter(|r| r.people > 0).map(|r| r.t).collect();
    assert_eq!(occupied, (5..15).map(t).collect::<Vec<_>>());
}

#[test]
fn leaving_and_coming_back_is_two_visits_but_a_one_frame_step_out_is_not() {
    // The zone's bottom edge is y = 400; steps of 30 px keep the tracker on the person.
    let inside = (300.0, 385.0);
    let outside = (300.0, 415.0);
    let mut path = vec![outside, outside];
    path.extend([inside; 5]);
    path.extend([outside; 3]); // away for 3 ≥ min_frames observations
    path.extend([inside; 5]);
    path.push(outside); // away for 1 < min_frames
    path.extend([inside; 4]);
    path.extend([outside; 3]);
    let report = run_path(zone_camera(), &path);
    let visits: Vec<(f64, f64)> = report.dwell.iter().map(|v| (v.enter_t, v.exit_t)).collect();
    assert_eq!(visits, vec![(t(2), t(7)), (t(10), t(20))]);
}

#[test]
fn a_visit_ends_when_its_track_ends() {
    // Inside for frames 0..10, then nobody: the tracker drops the track after max_lost_s.
    let mut analytics = Analytics::new(zone_camera(), TrackerConfig::default()).unwrap();
    for i in 0..10 {
        analytics.observe(t(i), &[person(300.0, 300.0)]).unwrap();
    }
    for i in 10..30 {
        analytics.observe(t(i), &[]).unwrap();
    }
    assert_eq!(analytics.dwell.len(), 1, "closed before finish");
    let report = analytics.finish(t(30));
    // Confirmed at frame 1, last seen inside at frame 9: exit one period later.
    assert_close(report.dwell[0].enter_t, t(1));
    assert_close(report.dwell[0].exit_t, t(10));

    // Still inside at the end of the video: closed by finish, no later than t_end.
    let report = run_path(zone_camera(), &[(300.0, 300.0); 10]);
    assert_close(report.dwell[0].exit_t, t(10));
    let mut analytics = Analytics::new(zone_camera(), TrackerConfig::default()).unwrap();
    for i in 0..10 {
        analytics.observe(t(i), &[person(300.0, 300.0)]).unwrap();
    }
    assert_close(analytics.finish(t(9)).dwell[0].exit_t, t(9));
}

#[test]
fn heat_map_total_equals_observations() {
    let mut camera = zone_camera();
    camera.heatmap_cell = 32;
    let mut analytics = Analytics::new(camera, TrackerConfig::default()).unwrap();
    analytics.set_frame_size(640, 480).unwrap();
    let mut observations = 0;
    for i in 0..40 {
        let x = 20.0 * i as f64;
        // Two people; the second walks off the right edge of the frame (clamped into it).
        let dets = [person(50.0 + x, 300.0), person(400.0 + x, 470.0)];
        observations += analytics.observe(t(i), &dets).unwrap().len();
    }
    let report = analytics.finish(t(40));
    assert!(observations > 60);
    assert_eq!(report.heatmap.total(), observations as u64);
    let path_points: usize = report.tracks.iter().map(|tr| tr.path.len()).sum();
    assert_eq!(path_points, observations);
    assert_eq!((report.heatmap.width, report.heatmap.height, report.heatmap.cell), (640, 480, 32));
    assert!(report.heatmap.cells.iter().all(|c| c.col < 20 && c.row < 15));
    // The first person's first observation (frame 1, foot (70, 300)) is in row 9, column 2.
    assert!(report.heatmap.cells.iter().any(|c| (c.row, c.col, c.x, c.y) == (9, 2, 64, 288)));
}

#[test]
fn people_counts_use_the_region_the_score_and_the_correction() {
    let mut camera = Camera::new("c");
    camera.interval_s = 1.0;
    camera.region = Some(square(0.0, 0.0, 500.0, 500.0));
    camera.correction = Some(Correction { scale: 2.0, offset: 0.5, fitted_on: 10 });
    let mut analytics = Analytics::new(camera, TrackerConfig::default()).unwrap();
    for i in 0..8 {
        let mut dets = vec![person(100.0, 300.0), person(700.0, 300.0)]; // second outside the region
        if i >= 5 {
            dets.push(person(300.0, 300.0));
        }
        dets.push(Detection::new(200.0, 100.0, 40.0, 120.0, 0.3)); // low score: not counted
        analytics.observe(t(i), &dets).unwrap();
    }
    let report = analytics.finish(t(8));
    let raw: Vec<u32> = report.frames.iter().map(|f| f.people_raw).collect();
    assert_eq!(raw, vec![1, 1, 1, 1, 1, 2, 2, 2]);
    assert_eq!(report.frames[5].people, 4.5);
    // Interval 0 (frames 0..5): all 2.5; interval 1 (frames 5..8, video ends at 1.6 s): 4.5.
    assert_eq!(report.counts.len(), 2);
    assert_eq!((report.counts[0].t_start, report.counts[0].t_end), (0.0, 1.0));
    assert_close(report.counts[0].people_mean, 2.5);
    assert_close(report.counts[1].t_end, 1.6);
    assert_close(report.counts[1].people_mean, 4.5);
    assert_close(report.counts[1].people_max, 4.5);
}

#[test]
fn composition_counts_each_track_once_where_it_first_appeared() {
    let mut camera = Camera::new("c");
    camera.interval_s = 2.0;
    let mut analytics = Analytics::new(camera, TrackerConfig::default()).unwrap();
    // Person A from frame 0 (confirmed at frame 1, 0.2 s); person B from frame 12 (2.6 s).
    for i in 0..20 {
        let mut dets = vec![person(100.0, 300.0)];
        if i >= 12 {
            dets.push(person(400.0, 300.0));
        }
        analytics.observe(t(i), &dets).unwrap();
    }
    let adult =
        Visitor { age: Some(34.0), gender: Some(Gender::Female), faces_seen: 3, reason: None, duplicate_of: None };
    analytics.set_track_attributes(1, adult.clone()).unwrap();
    assert!(matches!(analytics.set_track_attributes(9, Visitor::default()), Err(AnalyticsError::UnknownTrack(9))));
    let report = analytics.finish(t(20));
    let rows: Vec<(f64, AgeBand, Option<Gender>, u64)> =
        report.composition.iter().map(|r| (r.t_start, r.age_band, r.gender, r.visitors)).collect();
    assert_eq!(rows, vec![(0.0, AgeBand::From30To44, Some(Gender::Female), 1), (2.0, AgeBand::Unknown, None, 1)]);
    assert_eq!(report.tracks[0].visitor, Some(adult));
}

#[test]
fn age_bands_cover_the_documented_ranges() {
    let bands: Vec<&str> =
        [Some(5.0), Some(18.0), Some(29.9), Some(30.0), Some(59.0), Some(60.0), None, Some(f64::NAN)]
            .into_iter()
            .map(|a| AgeBand::of(a).as_str())
            .collect();
    assert_eq!(bands, ["0-17", "18-29", "18-29", "30-44", "45-59", "60+", "unknown", "unknown"]);
}

#[test]
fn frame_times_must_increase() {
    let mut analytics = Analytics::new(Camera::new("c"), TrackerConfig::default()).unwrap();
    analytics.observe(1.0, &[]).unwrap();
    assert!(matches!(analytics.observe(1.0, &[]), Err(AnalyticsError::FrameTime { .. })));
    assert!(matches!(analytics.observe(f64::NAN, &[]), Err(AnalyticsError::FrameTime { .. })));
    analytics.observe_frame(6, &[]).unwrap();
    assert_eq!(analytics.last_t(), Some(1.2));
}

/// A busy scene: people crossing the line both ways, an occlusion, low scores, a one-frame
/// false positive, zone visits, people still inside at the end.
fn scene(frame: usize) -> Vec<Detection> {
    let f = frame as f64;
    let mut dets = Vec::new();
    // Walks down through the door, occluded for frames 30..33.
    if frame < 60 && !(30..33).contains(&frame) {
        dets.push(person(250.0, 150.0 + 6.0 * f));
    }
    // Walks up through the door from frame 10, with low scores for a while.
    if (10..70).contains(&frame) {
        let mut d = person(420.0, 500.0 - 5.0 * (f - 10.0));
        if (40..48).contains(&frame) {
            d.score = 0.35;
        }
        dets.push(d);
    }
    // Browses the shelf zone, stepping in and out.
    if frame >= 5 {
        let x = 150.0 + 80.0 * ((f - 5.0) / 12.0).sin().abs() * 2.0;
        dets.push(person(x, 380.0));
    }
    if frame == 44 {
        dets.push(person(50.0, 100.0));
    }
    dets
}

fn scene_camera() -> Camera {
    let mut camera = door_camera();
    camera.interval_s = 4.0;
    camera.zones.push(Zone { name: "shelf".into(), polygon: square(200.0, 300.0, 400.0, 460.0) });
    camera.correction = Some(Correction { scale: 1.1, offset: 0.2, fitted_on: 50 });
    camera.frame_size = Some([640, 480]);
    camera
}

fn run_scene(frames: std::ops::Range<usize>, analytics: &mut Analytics) {
    for i in frames {
        let seen = analytics.observe(t(i), &scene(i)).unwrap();
        // Attributes arrive while the tracks are seen, in either segment.
        for obs in seen {
            if obs.id == 1 && i == 20 {
                let v = Visitor {
                    age: Some(25.0),
                    gender: Some(Gender::Male),
                    faces_seen: 2,
                    reason: None,
                    duplicate_of: None,
                };
                analytics.set_track_attributes(1, v).unwrap();
            }
            if obs.id == 2 && i == 65 {
                let v = Visitor { reason: Some("face too small".into()), ..Visitor::default() };
                analytics.set_track_attributes(2, v).unwrap();
            }
        }
    }
}

#[test]
fn processing_in_two_segments_from_serialised_state_equals_one_go() {
    let end = 90;
    let mut whole = Analytics::new(scene_camera(), TrackerConfig::default()).unwrap();
    run_scene(0..end, &mut whole);
    let whole = whole.finish(t(end));
    // The scene exercises what the equality is about.
    assert!(whole.crossings.len() >= 2, "{:?}", whole.crossings);
    assert!(whole.dwell.len() >= 2, "{:?}", whole.dwell);
    assert!(whole.tracks.len() >= 3);

    for split in [1, 31, 45, 66] {
        let mut first = Analytics::new(scene_camera(), TrackerConfig::default()).unwrap();
        run_scene(0..split, &mut first);
        let json = serde_json::to_string(&first).unwrap();
        let mut resumed: Analytics = serde_json::from_str(&json).unwrap();
        assert_eq!(resumed, first);
        run_scene(split..end, &mut resumed);
        assert_eq!(resumed.finish(t(end)), whole, "split at frame {split} (JSON)");

        let bytes = rmp_serde::to_vec_named(&first).unwrap();
        let mut resumed: Analytics = rmp_serde::from_slice(&bytes).unwrap();
        run_scene(split..end, &mut resumed);
        assert_eq!(resumed.finish(t(end)), whole, "split at frame {split} (MessagePack)");
    }
}

#[test]
fn csv_tables_have_the_documented_headers_and_three_decimal_times() {
    let mut analytics = Analytics::new(scene_camera(), TrackerConfig::default()).unwrap();
    run_scene(0..90, &mut analytics);
    let report = analytics.finish(t(90));
    let csv = |write: &dyn Fn(&mut Vec<u8>) -> std::io::Result<()>| {
        let mut out = Vec::new();
        write(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    };
    let counts = csv(&|w| report.write_counts_csv(w));
    let crossings = csv(&|w| report.write_crossings_csv(w));
    let dwell = csv(&|w| report.write_dwell_csv(w));
    let heatmap = csv(&|w| report.write_heatmap_csv(w));
    let composition = csv(&|w| report.write_composition_csv(w));
    let frames = csv(&|w| report.write_frames_csv(w));
    let occupancy = csv(&|w| report.write_occupancy_csv(w));
    let header = |s: &str| s.lines().next().unwrap_or_default().to_owned();
    assert_eq!(header(&counts), "t_start,t_end,people_mean,people_max,entries,exits");
    assert_eq!(header(&crossings), "t,track,line,direction");
    assert_eq!(header(&dwell), "track,zone,enter_t,exit_t,seconds");
    assert_eq!(header(&heatmap), "row,col,x,y,count");
    assert_eq!(header(&composition), "t_start,t_end,age_band,gender,visitors");
    assert_eq!(header(&frames), "t,people_raw,people");
    assert_eq!(header(&occupancy), "t,zone,people");
    assert_eq!(
        counts.lines().nth(1),
        Some(
            format!("0.000,4.000,{:.3},{:.3},0,0", report.counts[0].people_mean, report.counts[0].people_max).as_str()
        )
    );
    assert_eq!(counts.lines().count(), 1 + 5); // 18 s in 4 s intervals
    assert!(counts.lines().last().is_some_and(|l| l.starts_with("16.000,18.000,")));
    let c = &report.crossings[0];
    assert_eq!(
        crossings.lines().nth(1),
        Some(format!("{:.3},{},door,{}", c.t, c.track, c.direction.as_str()).as_str())
    );
    assert!(composition.contains(",18-29,male,1"), "{composition}");
    assert!(composition.contains(",unknown,unknown,"), "{composition}");
    assert_eq!(heatmap.lines().count(), 1 + report.heatmap.cells.len());

    let mut json = Vec::new();
    report.write_tracks_json(&mut json).unwrap();
    let tracks: Vec<TrackRecord> = serde_json::from_slice(&json).unwrap();
    assert_eq!(tracks, report.tracks);
}

mod line_state {
    use super::*;

    fn segment() -> Segment {
        Segment::new(Point::new(0.0, 0.0), Point::new(100.0, 0.0))
    }

    /// Feeds foot points, one per frame, and returns the passages.
    fn feed(points: &[(f64, f64)], min_frames: u32) -> Vec<Passage> {
        let mut state = LineState::default();
        points
            .iter()
            .enumerate()
            .filter_map(|(i, &(x, y))| state.observe(&segment(), min_frames, t(i), Point::new(x, y)))
            .collect()
    }

    #[test]
    fn a_track_appearing_on_one_side_settles_without_a_passage() {
        assert!(feed(&[(50.0, 10.0), (50.0, 12.0), (50.0, 14.0)], 2).is_empty());
    }

    #[test]
    fn out_of_band_observations_neither_break_nor_extend_a_run() {
        // Above, above, below, beyond the end, below: the run below has two observations.
        let p = feed(&[(50.0, -10.0), (50.0, -10.0), (50.0, 10.0), (150.0, 10.0), (60.0, 10.0)], 2);
        assert_eq!(p, vec![(Side::Left, Side::Right, t(2))]);
    }
}

#[test]
fn hidden_legs_move_a_box_foot_over_the_line_but_not_a_stable_one() {
    // A person stands inside, feet at y = 330 (the door line is at y = 310), while something
    // hides their legs for three frames: the box keeps its top and loses 40 px at the bottom,
    // which puts its bottom at y = 290, outside.
    let frames: Vec<Detection> = (0..16)
        .map(|i| Detection::new(280.0, 210.0, 40.0, if (6..9).contains(&i) { 80.0 } else { 120.0 }, 0.9))
        .collect();
    let run = |foot: FootPoint| {
        let mut camera = door_camera();
        camera.foot = foot;
        let mut analytics = Analytics::new(camera, TrackerConfig::default()).unwrap();
        for (i, d) in frames.iter().enumerate() {
            analytics.observe(t(i), std::slice::from_ref(d)).unwrap();
        }
        analytics.finish(t(frames.len()))
    };
    // The box foot counts an exit and an entry; the stable foot (median height) nothing.
    assert_eq!(run(FootPoint::Box).crossings.len(), 2);
    assert!(run(FootPoint::Stable).crossings.is_empty());
}

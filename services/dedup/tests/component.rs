//! The dedup stage on the in-memory backends: the stage's decisions on generated copies,
//! idempotency, races between two instances, and bad input. (The embedded pipeline, ingest +
//! dedup, over the committed sample is the CLI's: `services/sightline/tests/dedup.rs`.)

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{copy_tasks, race, sample_photo, task};
use sightline_coord::{Coord, MemoryCoord};
use sightline_dedup::{Decision, Dedup, DedupConfig, Evidence, Kind};
use sightline_messages::annotations::DedupOut;
use sightline_messages::{Body, ItemOutcome};
use sightline_runtime::{Effect, Stage, StageError};
use sightline_test_support::{StageEnv, input};
use uuid::Uuid;

fn stage() -> Dedup {
    Dedup::new(DedupConfig::default()).expect("config")
}

#[tokio::test]
async fn copies_are_exact_or_near_and_point_at_the_original() {
    let env = StageEnv::new();
    let ctx = &env.ctx;
    let tasks = copy_tasks(ctx, "melons", "Honeydew-Melon/img006.jpg").await;
    let (dedup, job) = (stage(), tasks[0].job_id);
    let mut decisions = BTreeMap::new();
    for t in &tasks {
        decisions.insert(t.name.as_str(), dedup.decide(ctx, t).await.expect("decide"));
    }
    assert!(matches!(decisions["orig"], Decision::Unique { .. }));
    let of = |d: &Decision| match d {
        Decision::Duplicate { of, kind, distance, evidence, .. } => (of.clone(), *kind, *distance, *evidence),
        Decision::Unique { .. } => panic!("{d:?} should be a duplicate"),
    };
    assert_eq!(of(&decisions["exact"]), ("orig".into(), Kind::Exact, 0, Evidence::Bytes));
    // The same pixels in another container: exact, by pixels.
    assert_eq!(of(&decisions["bmp"]).1, Kind::Exact);
    assert_eq!(of(&decisions["bmp"]).3, Evidence::Pixels);
    // PNG of the decoded JPEG: the same pixels too.
    assert_eq!(of(&decisions["png"]).3, Evidence::Pixels);
    // JPEG at quality 100 is not bit-exact: a near duplicate at distance 0.
    let (o, kind, distance, _) = of(&decisions["jpeg_q100"]);
    assert_eq!((o.as_str(), kind, distance), ("orig", Kind::Near, 0));
    for name in ["jpeg_q40", "half", "brighter"] {
        let (o, kind, distance, _) = of(&decisions[name]);
        assert_eq!((o.as_str(), kind), ("orig", Kind::Near), "{name}");
        assert!(distance <= sightline_dedup::DEFAULT_MAX_DISTANCE, "{name}: {distance}");
    }
    // A horizontally flipped copy is found by its mirror hash.
    let (o, kind, distance, evidence) = of(&decisions["mirrored"]);
    assert_eq!((o.as_str(), kind, evidence), ("orig", Kind::Mirror, Evidence::Phash));
    assert!(distance <= sightline_dedup::DEFAULT_MAX_DISTANCE, "mirrored: {distance}");
    // Another picture is unique.
    let other = task(ctx, job, 99, "melons", "other", sample_photo("Honeydew-Melon/img007.jpg")).await;
    assert!(matches!(dedup.decide(ctx, &other).await.expect("decide"), Decision::Unique { .. }));
}

#[tokio::test]
async fn without_the_mirror_lookup_a_flipped_copy_is_another_picture() {
    let env = StageEnv::new();
    let ctx = &env.ctx;
    let tasks = copy_tasks(ctx, "melons", "Honeydew-Melon/img006.jpg").await;
    let dedup = Dedup::new(DedupConfig { mirror: false, ..DedupConfig::default() }).expect("config");
    for t in &tasks {
        let decision = dedup.decide(ctx, t).await.expect("decide");
        let unique = matches!(decision, Decision::Unique { .. });
        assert_eq!(unique, ["orig", "mirrored"].contains(&t.name.as_str()), "{}: {decision:?}", t.name);
    }
}

#[tokio::test]
async fn a_redelivered_message_gets_the_same_answer() {
    let env = StageEnv::new();
    let ctx = &env.ctx;
    let tasks = copy_tasks(ctx, "milk", "Alpro-Shelf-Soy-Milk/img002.jpg").await;
    let dedup = stage();
    let mut first = Vec::new();
    for t in &tasks {
        first.push(dedup.handle(ctx, input(t)).await.expect("handle"));
    }
    for (t, before) in tasks.iter().zip(&first).rev() {
        let again = dedup.handle(ctx, input(t)).await.expect("handle again");
        assert_eq!(format!("{again:?}"), format!("{before:?}"), "{} changed its answer", t.name);
    }
    // The original goes on along its route, annotated; duplicates leave it with a record.
    match &first[0][..] {
        [Effect::Publish { stage, body: Body::Image(t) }] => {
            assert_eq!(stage, "embed");
            assert_eq!(t.annotations["dedup"]["status"], "unique");
        }
        other => panic!("original should be forwarded, got {other:?}"),
    }
    match &first[1][..] {
        [Effect::Finish(record)] => {
            assert_eq!(record.outcome, ItemOutcome::Duplicate);
            assert_eq!(record.stage, "dedup");
            assert_eq!(record.annotations["dedup"]["of"], "orig");
            assert_eq!(record.annotations["dedup"]["of_item"], 0);
            assert_eq!(record.annotations["dedup"]["kind"], "exact");
            assert!(record.reason.as_deref().is_some_and(|r| r.contains("exact duplicate")));
        }
        other => panic!("duplicate should finish, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_racing_agree_on_one_original() {
    let coord: Arc<dyn Coord> = Arc::new(MemoryCoord::new());
    race([coord.clone(), coord], 2).await;
}

#[tokio::test]
async fn undecodable_bytes_fail_permanently() {
    let env = StageEnv::new();
    let ctx = &env.ctx;
    let mut jpeg = sample_photo("Honeydew-Melon/img006.jpg");
    jpeg.truncate(jpeg.len() / 2);
    let t = task(ctx, Uuid::new_v4(), 0, "c", "cut.jpg", jpeg).await;
    match stage().handle(ctx, input(&t)).await {
        Err(StageError::Permanent(reason)) => assert!(reason.contains("truncated"), "{reason}"),
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_shared_scope_dedupes_across_jobs() {
    let env = StageEnv::new();
    let ctx = &env.ctx;
    let shared = Dedup::new(DedupConfig { scope: sightline_dedup::ScopeMode::Collection, ..DedupConfig::default() })
        .expect("config");
    let (job1, job2) = (Uuid::new_v4(), Uuid::new_v4());
    let bytes = sample_photo("Honeydew-Melon/img006.jpg");
    let first = task(ctx, job1, 4, "melons", "a.jpg", bytes.clone()).await;
    let second = task(ctx, job2, 0, "melons", "again.jpg", bytes).await;
    assert!(matches!(shared.decide(ctx, &first).await.expect("decide"), Decision::Unique { .. }));
    let d = shared.decide(ctx, &second).await.expect("decide");
    assert!(matches!(&d, Decision::Duplicate { of_job, of_item: 4, .. } if *of_job == job1), "{d:?}");
    assert!(matches!(d.annotation(job2), DedupOut::Duplicate { of_job: Some(j), .. } if j == job1), "{d:?}");
    // Per job (the default), the second job keeps its own copy.
    let third = task(ctx, Uuid::new_v4(), 0, "melons", "again.jpg", sample_photo("Honeydew-Melon/img006.jpg")).await;
    assert!(matches!(stage().decide(ctx, &third).await.expect("decide"), Decision::Unique { .. }));
}

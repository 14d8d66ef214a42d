//! Component tests of the runner on the in-memory backends: the order of operations,
//! retries, dead letters, idempotency and draining.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sightline_bus::{Consumer, Delivery, Outgoing};
use sightline_messages::{Body, Envelope, ImageTask, ItemOutcome, KIND_IMAGE, headers};
use sightline_runtime::metrics::Metrics;
use sightline_runtime::runner::Runner;
use sightline_runtime::{Backends, Ctx, Effect, ImageStage, Input, RunnerSettings, Stage, StageError, records};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A stage that fails according to the item number: 0 succeeds, 1 fails permanently,
/// 2 fails transiently twice then succeeds, 3 always fails transiently, 4 sleeps past the
/// timeout, 5 sleeps 300 ms then succeeds.
struct Scripted {
    calls: AtomicU32,
    transient_left: AtomicU32,
}

#[async_trait]
impl Stage for Scripted {
    fn name(&self) -> &'static str {
        "dedup"
    }

    fn accepts(&self, kind: &str) -> bool {
        kind == KIND_IMAGE
    }

    async fn handle(&self, _ctx: &Ctx, input: Input) -> Result<Vec<Effect>, StageError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let Body::Image(task) = input.body else { return Err(StageError::permanent("not an image task")) };
        match task.item {
            1 => Err(StageError::permanent("corrupt jpeg file: broken")),
            2 if self.transient_left.fetch_sub(1, Ordering::SeqCst) > 0 => Err(StageError::transient("s3 slow down")),
            3 => Err(StageError::transient("redis down")),
            4 => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(vec![])
            }
            5 => {
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok(vec![Effect::forward(task, "dedup")])
            }
            _ => Ok(vec![Effect::forward(task, "dedup")]),
        }
    }
}

struct Harness {
    backends: Backends,
    stage: Arc<Scripted>,
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
    job: Uuid,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// Cancels the runner and waits until it has drained and returned.
    async fn stop(self) {
        self.shutdown.cancel();
        self.handle.await.expect("runner");
    }
}

async fn start(items: &[u64]) -> Harness {
    start_with_route(items, &["ingest", "dedup"]).await
}

/// Starts a job of `items` (collection `c`) and publishes their image tasks, on `route`, to the
/// dedup queue; returns the job.
async fn seed(backends: &Backends, items: &[u64], route: &[&str]) -> Uuid {
    let job = Uuid::new_v4();
    let totals = [("c".to_owned(), items.len() as u64)].into();
    backends.coord.job_start(&job.to_string(), "test", &totals, 0).await.expect("job");
    backends.bus.declare(&sightline_messages::STAGES).await.expect("declare");
    let batch: Vec<Outgoing> = items
        .iter()
        .map(|&i| {
            let mut t = ImageTask::example(job, i);
            t.route = route.iter().map(|s| (*s).to_owned()).collect();
            let mut env = Envelope::new(&Body::Image(t), Uuid::new_v4(), job).expect("env");
            env.meta.item = Some(i);
            Outgoing { stage: "dedup".into(), envelope: env }
        })
        .collect();
    backends.bus.publish(&batch).await.expect("publish");
    job
}

async fn start_with_route(items: &[u64], route: &[&str]) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let backends = Backends::embedded(dir.path()).expect("backends");
    let job = seed(&backends, items, route).await;
    let stage = Arc::new(Scripted { calls: AtomicU32::new(0), transient_left: AtomicU32::new(2) });
    let settings = RunnerSettings {
        handler_timeout_secs: 1,
        drain_deadline_secs: 3,
        max_attempts: 3,
        retry_base_ms: 20,
        retry_max_ms: 100,
        ..RunnerSettings::default()
    };
    let shutdown = CancellationToken::new();
    let runner = Runner::new(stage.clone(), backends.clone(), settings, Metrics::new());
    let handle = tokio::spawn(runner.run(shutdown.clone()));
    Harness { backends, stage, shutdown, handle, job, _dir: dir }
}

/// Starts the runner on `items` and waits until all have finished with `outcome`.
async fn finish_all(items: &[u64], outcome: &str) -> Harness {
    let h = start(items).await;
    let s = wait_finished(&h, items.len() as u64).await;
    assert_eq!(s.outcomes.get(outcome), Some(&(items.len() as u64)), "{s:?}");
    h
}

/// Once `finished` items have finished and the runner has settled, a consumer of the cluster
/// queue and the first message it takes (within 2 s).
async fn first_at_cluster(h: &Harness, finished: u64) -> (Box<dyn Consumer>, Delivery) {
    wait_finished(h, finished).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut consumer = h.backends.bus.consume("cluster", 10).await.expect("consume");
    let d = tokio::time::timeout(Duration::from_secs(2), consumer.next())
        .await
        .expect("a message")
        .expect("some")
        .expect("ok");
    (consumer, d)
}

async fn wait_finished(h: &Harness, n: u64) -> sightline_coord::JobStatus {
    wait_job(&h.backends, h.job, n, Duration::from_secs(5)).await
}

/// Waits (at most `within`, polling every 25 ms) until `job` has `n` finished items.
async fn wait_job(backends: &Backends, job: Uuid, n: u64, within: Duration) -> sightline_coord::JobStatus {
    for _ in 0..within.as_millis() / 25 {
        let s = backends.coord.job_status(&job.to_string()).await.expect("status").expect("job");
        if s.finished >= n {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("job did not finish {n} items");
}

#[tokio::test]
async fn success_finishes_the_item_with_a_record() {
    let h = finish_all(&[0], "ok").await;
    let recs = records::read_records(h.backends.blob.as_ref(), h.job).await.expect("records");
    assert_eq!(recs.len(), 1);
    assert_eq!((recs[0].outcome, recs[0].stage.as_str()), (ItemOutcome::Ok, "dedup"));
    h.stop().await;
}

#[tokio::test]
async fn permanent_failure_is_dead_lettered_with_reason_and_recorded() {
    let h = finish_all(&[1], "failed").await;
    let dead = h.backends.bus.dlq_list("dedup", 10).await.expect("dlq");
    assert_eq!(dead.len(), 1);
    let m = &dead[0].meta;
    assert_eq!(m.header(headers::REASON), Some("corrupt jpeg file: broken"));
    assert_eq!(m.header(headers::FAILURE_KIND), Some("permanent"));
    assert_eq!(m.header(headers::FAILED_STAGE), Some("dedup"));
    assert_eq!(m.header(headers::SOURCE), Some("img1.jpg"));
    assert_eq!(h.stage.calls.load(Ordering::SeqCst), 1, "permanent errors are not retried");
    let recs = records::read_records(h.backends.blob.as_ref(), h.job).await.expect("records");
    assert_eq!(recs[0].reason.as_deref(), Some("corrupt jpeg file: broken"));
    h.stop().await;
}

#[tokio::test]
async fn transient_failures_retry_then_succeed() {
    let h = finish_all(&[2], "ok").await;
    assert_eq!(h.stage.calls.load(Ordering::SeqCst), 3, "two failures, then success");
    assert!(h.backends.bus.dlq_list("dedup", 10).await.expect("dlq").is_empty());
    h.stop().await;
}

#[tokio::test]
async fn exhausted_retries_and_timeouts_are_dead_lettered() {
    let h = finish_all(&[3, 4], "failed").await;
    let dead = h.backends.bus.dlq_list("dedup", 10).await.expect("dlq");
    let kind_of = |item| {
        dead.iter()
            .find(|e| e.meta.item == Some(item))
            .and_then(|e| e.meta.header(headers::FAILURE_KIND).map(str::to_owned))
    };
    assert_eq!(kind_of(3).as_deref(), Some("exhausted"));
    assert_eq!(kind_of(4).as_deref(), Some("timeout"));
    let reason =
        dead.iter().find(|e| e.meta.item == Some(3)).and_then(|e| e.meta.header(headers::REASON)).unwrap_or_default();
    assert!(reason.contains("gave up after 3 attempts"), "{reason}");
    h.stop().await;
}

#[tokio::test]
async fn undecodable_and_unknown_kinds_are_dead_lettered() {
    let h = start(&[]).await;
    let job = h.job;
    let mut junk = Envelope {
        meta: sightline_messages::Meta::new(Uuid::new_v4(), job, KIND_IMAGE, 1),
        body: b"\xc1\xc1".to_vec(),
    };
    junk.meta.item = Some(0);
    let unknown = Envelope { meta: sightline_messages::Meta::new(Uuid::new_v4(), job, "video.task", 1), body: vec![] };
    let batch = [junk, unknown].map(|envelope| Outgoing { stage: "dedup".into(), envelope });
    h.backends.bus.publish(&batch).await.expect("publish");
    let mut dead = Vec::new();
    for _ in 0..100 {
        dead = h.backends.bus.dlq_list("dedup", 10).await.expect("dlq");
        if dead.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reasons: Vec<_> = dead.iter().filter_map(|e| e.meta.header(headers::REASON)).collect();
    assert!(reasons.iter().any(|r| r.starts_with("malformed \"image.task\" body")), "{reasons:?}");
    assert!(reasons.contains(&"unknown message kind \"video.task\""), "{reasons:?}");
    assert!(dead.iter().all(|e| e.meta.header(headers::FAILURE_KIND) == Some("undecodable")));
    assert_eq!(h.stage.calls.load(Ordering::SeqCst), 0, "the handler never saw them");
    h.stop().await;
}

#[tokio::test]
async fn a_repeated_message_id_is_skipped() {
    let h = start(&[0]).await;
    wait_finished(&h, 1).await;
    // Publish the very same message again (a redelivery after a lost ack).
    let env = {
        let mut e = Envelope::new(&Body::Image(ImageTask::example(h.job, 0)), Uuid::from_u128(7), h.job).expect("env");
        e.meta.item = Some(0);
        e
    };
    let out = Outgoing { stage: "dedup".into(), envelope: env };
    h.backends.bus.publish(std::slice::from_ref(&out)).await.expect("publish");
    for _ in 0..100 {
        if h.stage.calls.load(Ordering::SeqCst) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await; // let it mark done and ack
    h.backends.bus.publish(std::slice::from_ref(&out)).await.expect("publish again");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.stage.calls.load(Ordering::SeqCst), 2, "first delivery handled, the repeat skipped as done");
    assert_eq!(h.backends.bus.depth("dedup").await.expect("depth").ready, 0, "the repeat was acked");
    h.stop().await;
}

#[tokio::test]
async fn shutdown_drains_in_flight_work() {
    let h = start(&[5, 5, 5]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(h.stage.calls.load(Ordering::SeqCst) >= 1, "work started");
    let started = std::time::Instant::now();
    h.shutdown.cancel();
    h.handle.await.expect("runner");
    assert!(started.elapsed() < Duration::from_secs(3), "drained within the deadline");
    let s = h.backends.coord.job_status(&h.job.to_string()).await.expect("status").expect("job");
    let calls = h.stage.calls.load(Ordering::SeqCst) as u64;
    assert_eq!(s.finished, 1, "the in-flight item (same item id thrice) finished: {s:?} after {calls} calls");
    let depth = h.backends.bus.depth("dedup").await.expect("depth");
    assert_eq!(depth.ready + calls, 3, "nothing new was taken after shutdown, nothing lost");
}

#[tokio::test]
async fn items_leaving_before_the_fan_in_stage_publish_collection_ready_once() {
    // Both items fail at dedup, before cluster: the runner counts both at the barrier, and the
    // one that completes the collection publishes a single collection.ready to cluster.
    let h = start_with_route(&[1, 3], &["ingest", "dedup", "embed", "cluster"]).await;
    let (mut consumer, d) = first_at_cluster(&h, 2).await;
    assert_eq!(d.envelope.meta.kind, "collection.ready");
    assert_eq!(d.envelope.meta.message_id, sightline_runtime::fanin::ready_message_id(h.job, "c"));
    let Ok(Body::CollectionReady(ready)) = d.envelope.decode() else { panic!("not a collection.ready") };
    assert_eq!(ready.collection, "c");
    d.acker.ack().await.expect("ack");
    assert!(tokio::time::timeout(Duration::from_millis(300), consumer.next()).await.is_err(), "published once");
    h.stop().await;
}

#[tokio::test]
async fn the_barrier_waits_for_items_still_on_their_way() {
    // Item 0 is forwarded to cluster (it counts when the cluster stage takes it); item 1
    // fails at dedup and counts now. The collection is not complete yet.
    let h = start_with_route(&[0, 1], &["ingest", "dedup", "cluster"]).await;
    let (mut consumer, d) = first_at_cluster(&h, 1).await;
    assert_eq!(d.envelope.meta.kind, "image.task", "only item 0's image task reached cluster");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), consumer.next()).await.is_err(),
        "no collection.ready yet"
    );
    let route = ["ingest", "dedup", "cluster"].map(String::from).to_vec();
    let ready =
        sightline_runtime::fanin::pass_barrier(h.backends.coord.as_ref(), h.job, 0, "c", &route).await.expect("pass");
    assert!(ready.is_some(), "item 1 was counted by the runner; item 0 completes the collection");
    h.stop().await;
}

/// A stage that reads its image from storage, and fails permanently on item 1.
struct Reads {
    calls: AtomicU32,
}

#[async_trait]
impl ImageStage for Reads {
    const NAME: &'static str = "dedup";

    async fn handle_image(&self, ctx: &Ctx, task: ImageTask) -> Result<Vec<Effect>, StageError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        ctx.blob.get("images/shared").await?;
        if task.item == 1 {
            return Err(StageError::permanent("corrupt jpeg file: broken"));
        }
        Ok(vec![Effect::forward(task, "dedup")])
    }
}

#[tokio::test]
async fn a_storage_outage_pauses_the_runner_without_spending_attempts_or_dead_lettering() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut backends = Backends::embedded(dir.path()).expect("backends");
    backends.blob.put("images/shared", bytes::Bytes::from_static(b"pixels")).await.expect("put");
    let (store, up) = sightline_blob::Switchable::new(backends.blob.clone(), false);
    backends.blob = Arc::new(store);
    let items = [0u64, 1, 2, 3];
    let job = seed(&backends, &items, &["ingest", "dedup"]).await;

    // One attempt only: any failure counted against a message would dead-letter it at once.
    let settings = RunnerSettings { max_attempts: 1, prefetch: 2, ..RunnerSettings::default() };
    let stage = Arc::new(Reads { calls: AtomicU32::new(0) });
    let metrics = Metrics::new();
    let runner = Runner::new(stage.clone(), backends.clone(), settings, metrics.clone());
    let (consuming, outages) = (runner.consuming_flag(), runner.outages());
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(runner.run(shutdown.clone()));

    // Down: the runner holds what it took (prefetch 2), takes nothing more, dead-letters nothing.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let down = outages.current();
    assert_eq!(down.len(), 1, "{down:?}");
    assert_eq!(down[0].dependency.as_str(), "storage");
    assert!(down[0].reason.contains("connection refused"), "{down:?}");
    assert!(!consuming.load(Ordering::SeqCst), "paused");
    assert_eq!(stage.calls.load(Ordering::SeqCst), 2, "only the prefetched messages were tried");
    assert!(backends.bus.dlq_list("dedup", 10).await.expect("dlq").is_empty());
    let status = backends.coord.job_status(&job.to_string()).await.expect("status").expect("job");
    assert_eq!(status.finished, 0);

    // Back: everything completes by itself; only the bad item is a dead letter, as bad input.
    up.store(true, Ordering::SeqCst);
    let status = wait_job(&backends, job, items.len() as u64, Duration::from_secs(10)).await;
    assert_eq!(status.finished, 4, "{status:?}");
    assert_eq!(status.outcomes.get("ok"), Some(&3), "{status:?}");
    assert_eq!(status.outcomes.get("failed"), Some(&1), "{status:?}");
    let dead = backends.bus.dlq_list("dedup", 10).await.expect("dlq");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].meta.extra.get(headers::FAILURE_KIND).map(String::as_str), Some("permanent"));
    assert_eq!(dead[0].meta.attempt, 0, "no attempt was spent on the outage");
    assert!(consuming.load(Ordering::SeqCst), "consuming again");
    assert!(outages.current().is_empty());
    let text = metrics.render();
    assert!(text.contains("sightline_outages_total{stage=\"dedup\",dependency=\"storage\"} 1"), "{text}");
    assert!(text.contains("sightline_dependency_down{stage=\"dedup\",dependency=\"storage\"} 0"), "{text}");
    shutdown.cancel();
    handle.await.expect("runner");
}

//! The runner: drives one stage from its work queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sightline_bus::{Bus, BusError, Consumer, Delivery, Outgoing, backoff};
use sightline_messages::{Body, Envelope, ItemOutcome, ItemRecord, STAGES, headers};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::metrics::{Metrics, StageLabels};
use crate::outage::{Dependency, Outages, Verdict};
use crate::stage::record_for;
use crate::{Backends, Ctx, Effect, Input, RunnerSettings, Stage, StageError};
use crate::{fanin, records};

/// How long "message done" markers are kept.
pub const DONE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Publishes are sent in batches of this many (each batch awaits its confirms).
const PUBLISH_BATCH: usize = 1000;

/// Drives one stage: consume, handle, publish, settle.
pub struct Runner {
    stage: Arc<dyn Stage>,
    backends: Backends,
    settings: RunnerSettings,
    metrics: Arc<Metrics>,
    consuming: Arc<AtomicBool>,
    outages: Arc<Outages>,
}

struct Shared {
    stage: Arc<dyn Stage>,
    name: &'static str,
    backends: Backends,
    ctx: Ctx,
    settings: RunnerSettings,
    metrics: Arc<Metrics>,
    outages: Arc<Outages>,
    shutdown: CancellationToken,
}

use sightline_messages::now_ms;

impl Runner {
    /// A runner for `stage` over `backends`.
    pub fn new(stage: Arc<dyn Stage>, backends: Backends, settings: RunnerSettings, metrics: Arc<Metrics>) -> Self {
        let outages = Outages::new(stage.name(), backends.clone(), metrics.clone());
        Self { stage, backends, settings, metrics, consuming: Arc::new(AtomicBool::new(false)), outages }
    }

    /// The outages this runner is waiting out (for `/readyz`).
    pub fn outages(&self) -> Arc<Outages> {
        self.outages.clone()
    }

    /// A flag that is true while the runner consumes (for `/readyz`).
    pub fn consuming_flag(&self) -> Arc<AtomicBool> {
        self.consuming.clone()
    }

    /// Runs until `shutdown` is cancelled, then drains in-flight work within the drain
    /// deadline and returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let name = self.stage.name();
        let shared = Arc::new(Shared {
            stage: self.stage.clone(),
            name,
            ctx: Ctx { blob: self.backends.blob.clone(), coord: self.backends.coord.clone() },
            backends: self.backends.clone(),
            settings: self.settings.clone(),
            metrics: self.metrics.clone(),
            outages: self.outages.clone(),
            shutdown: shutdown.clone(),
        });

        // Not ready (models missing...): say why once, keep checking, never consume.
        let mut warned = false;
        loop {
            match self.stage.ready().await {
                Ok(()) => break,
                Err(why) => {
                    if !warned {
                        error!(stage = name, reason = %why, "stage not ready, not consuming");
                        warned = true;
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    }
                }
            }
        }

        let tracker = TaskTracker::new();
        let mut attempt = 0u32;
        'outer: while !shutdown.is_cancelled() {
            let mut consumer = match self.connect(&shutdown).await {
                Some(c) => c,
                None => break,
            };
            self.consuming.store(true, Ordering::SeqCst);
            info!(stage = name, prefetch = self.settings.prefetch, "consuming");
            let mut outages = self.outages.subscribe();
            loop {
                if self.outages.any() {
                    // A dependency is down: take no new work (deliveries already prefetched
                    // stay unsettled in the client) until the probe finds it back.
                    self.consuming.store(false, Ordering::SeqCst);
                    info!(stage = name, "paused while a dependency is down");
                    if !self.outages.wait_clear(&shutdown).await {
                        if let Err(e) = consumer.cancel().await {
                            debug!(error = %e, "cancel consumer");
                        }
                        break 'outer;
                    }
                    info!(stage = name, "consuming again");
                    self.consuming.store(true, Ordering::SeqCst);
                }
                tokio::select! {
                    _ = shutdown.cancelled() => {
                        if let Err(e) = consumer.cancel().await {
                            debug!(error = %e, "cancel consumer");
                        }
                        break 'outer;
                    }
                    Ok(()) = outages.changed() => continue,
                    next = consumer.next() => match next {
                        Some(Ok(delivery)) => {
                            attempt = 0;
                            let shared = shared.clone();
                            tracker.spawn(async move { process(shared, delivery).await });
                        }
                        Some(Err(e)) => {
                            warn!(stage = name, error = %e, "consumer failed, reconnecting");
                            break;
                        }
                        None => {
                            warn!(stage = name, "consumer closed, reconnecting");
                            break;
                        }
                    }
                }
            }
            self.consuming.store(false, Ordering::SeqCst);
            attempt += 1;
            let delay = backoff(attempt.min(6), Duration::from_millis(500), Duration::from_secs(30));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        self.consuming.store(false, Ordering::SeqCst);

        tracker.close();
        let in_flight = tracker.len();
        info!(stage = name, in_flight, deadline_secs = self.settings.drain_deadline_secs, "draining");
        if tokio::time::timeout(self.settings.drain_deadline(), tracker.wait()).await.is_err() {
            warn!(stage = name, left = tracker.len(), "drain deadline passed; unsettled messages return to the queue");
        } else {
            info!(stage = name, "drained");
        }
    }

    /// Declares the topology and starts consuming, retrying with backoff until it works or
    /// shutdown is requested.
    async fn connect(&self, shutdown: &CancellationToken) -> Option<Box<dyn Consumer>> {
        let mut attempt = 0u32;
        loop {
            let result: Result<Box<dyn Consumer>, BusError> = async {
                self.backends.bus.declare(&STAGES).await?;
                self.backends.bus.declare(&[self.stage.name()]).await?;
                self.backends.bus.consume(self.stage.name(), self.settings.prefetch).await
            }
            .await;
            match result {
                Ok(c) => return Some(c),
                Err(e) => {
                    attempt += 1;
                    let delay = backoff(attempt.min(6), Duration::from_millis(500), Duration::from_secs(30));
                    warn!(stage = self.stage.name(), error = %e, retry_in_ms = delay.as_millis() as u64, "cannot consume yet");
                    tokio::select! {
                        _ = shutdown.cancelled() => return None,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }
}

/// How a message's handling ended, for metrics and logs.
enum Settled {
    Ok,
    Duplicate,
    Retried,
    DeadLettered,
    Requeued,
}

async fn process(shared: Arc<Shared>, delivery: Delivery) {
    let meta = &delivery.envelope.meta;
    let span = info_span!(
        "message",
        stage = shared.name,
        message_id = %meta.message_id,
        job = %meta.correlation_id,
        kind = %meta.kind,
        attempt = meta.attempt,
        item = meta.item,
        traceparent = meta.traceparent.as_deref().unwrap_or(""),
    );
    #[cfg(feature = "otel")]
    crate::otel::set_parent(&span, meta.traceparent.as_deref());
    let labels = StageLabels { stage: shared.name.to_owned() };
    shared.metrics.in_flight.get_or_create(&labels).inc();
    let started = Instant::now();
    let settled = handle_delivery(&shared, delivery).instrument(span).await;
    shared.metrics.in_flight.get_or_create(&labels).dec();
    shared.metrics.handler_duration.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    match settled {
        Settled::Ok => shared.metrics.settled(shared.name, "ok"),
        Settled::Duplicate => shared.metrics.settled(shared.name, "duplicate"),
        Settled::Retried => {
            shared.metrics.settled(shared.name, "retried");
            shared.metrics.retries.get_or_create(&labels).inc();
        }
        Settled::DeadLettered => {} // counted with its kind where it happened
        Settled::Requeued => shared.metrics.settled(shared.name, "requeued"),
    }
}

async fn requeue(delivery: &Delivery, why: &str) -> Settled {
    warn!(reason = why, "returning message to the queue");
    // Give the dependency a moment before the broker hands the message out again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    if let Err(e) = delivery.acker.requeue().await {
        warn!(error = %e, "requeue failed; the broker redelivers after reconnecting");
    }
    Settled::Requeued
}

async fn ack(delivery: &Delivery) {
    if let Err(e) = delivery.acker.ack().await {
        // The message will be redelivered and skipped as done (or handled idempotently).
        warn!(error = %e, "ack failed");
    }
}

async fn handle_delivery(shared: &Shared, delivery: Delivery) -> Settled {
    let envelope = &delivery.envelope;
    let kind = envelope.meta.kind.clone();

    // 1. Decode; anything this stage cannot read goes to its dead-letter queue.
    if !shared.stage.accepts(&kind) {
        let reason = match envelope.decode() {
            Err(e) => e.to_string(),
            Ok(_) => format!("stage {} does not handle messages of kind {kind:?}", shared.name),
        };
        return dead_letter(shared, &delivery, None, "undecodable", &reason).await;
    }
    let body = match envelope.decode() {
        Ok(b) => b,
        Err(e) => return dead_letter(shared, &delivery, None, "undecodable", &e.to_string()).await,
    };

    loop {
        let (error, timed_out) = match run_once(shared, &delivery, &body).await {
            Run::Settled(settled) => return settled,
            Run::Failed { error, timed_out } => (error, timed_out),
        };
        let error = match error {
            // Not the message's fault: hold it while the dependency is down, then run it again
            // from the start without counting an attempt.
            StageError::Unavailable { dependency, reason } => {
                match shared.outages.wait_out(dependency, &reason, &shared.shutdown).await {
                    Verdict::Recovered => {
                        info!(%dependency, "running the message again after the outage");
                        continue;
                    }
                    Verdict::Shutdown => return requeue(&delivery, "shutdown while a dependency is down").await,
                    // The dependency answers: the failure is this message's (a timeout on a
                    // huge object, a key the store refuses...), so it spends its budget.
                    Verdict::Healthy => StageError::Transient(reason),
                }
            }
            other => other,
        };
        return settle_failure(shared, &delivery, &body, error, timed_out).await;
    }
}

/// How one run of a message ended.
enum Run {
    /// Handled (or found done), or returned to the queue.
    Settled(Settled),
    /// The handler failed, or a dependency did.
    Failed { error: StageError, timed_out: bool },
}

/// The idempotency check, the handler under its timeout, then effects, done marker, ack.
async fn run_once(shared: &Shared, delivery: &Delivery, body: &Body) -> Run {
    let envelope = &delivery.envelope;

    // 2. Idempotency.
    let id = envelope.meta.message_id.to_string();
    match shared.backends.coord.is_done(&id).await {
        Ok(true) => {
            debug!("already done, skipping");
            ack(delivery).await;
            return Run::Settled(Settled::Duplicate);
        }
        Ok(false) => {}
        Err(e) => {
            let reason = format!("check done marker: {e}");
            return Run::Failed {
                error: StageError::Unavailable { dependency: Dependency::Coord, reason },
                timed_out: false,
            };
        }
    }

    // 3. The handler, under a timeout.
    if shared.settings.chaos_delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(shared.settings.chaos_delay_ms)).await;
    }
    let input = Input { envelope: envelope.clone(), body: body.clone() };
    let outcome =
        tokio::time::timeout(shared.settings.handler_timeout(), shared.stage.handle(&shared.ctx, input)).await;
    match outcome {
        Ok(Ok(effects)) => {
            // 4. Effects, then done marker, then ack.
            match apply(shared, envelope, body, &effects).await {
                Ok(()) => {}
                Err(error @ StageError::Unavailable { .. }) => return Run::Failed { error, timed_out: false },
                Err(e) => return Run::Settled(requeue(delivery, &format!("apply effects: {e}")).await),
            }
            if let Err(e) = shared.backends.coord.mark_done(&id, DONE_TTL).await {
                warn!(error = %e, "mark done failed; a redelivery will be handled again (idempotently)");
            }
            ack(delivery).await;
            Run::Settled(Settled::Ok)
        }
        Ok(Err(error)) => Run::Failed { error, timed_out: false },
        Err(_) => Run::Failed {
            error: StageError::transient(format!("handler timed out after {}s", shared.settings.handler_timeout_secs)),
            timed_out: true,
        },
    }
}

/// 5. Failures of the message: retry transient ones, dead-letter the rest.
async fn settle_failure(
    shared: &Shared,
    delivery: &Delivery,
    body: &Body,
    error: StageError,
    timed_out: bool,
) -> Settled {
    let envelope = &delivery.envelope;
    match error {
        StageError::Permanent(reason) => {
            info!(reason = %reason, "permanent failure");
            dead_letter(shared, delivery, Some(body), "permanent", &reason).await
        }
        StageError::Transient(reason) | StageError::Unavailable { reason, .. } => {
            let attempt = envelope.meta.attempt + 1;
            if attempt >= shared.settings.max_attempts {
                let kind = if timed_out { "timeout" } else { "exhausted" };
                let reason = format!("{reason} (gave up after {attempt} attempts)");
                return dead_letter(shared, delivery, Some(body), kind, &reason).await;
            }
            let delay = backoff(
                attempt - 1,
                Duration::from_millis(shared.settings.retry_base_ms),
                Duration::from_millis(shared.settings.retry_max_ms),
            );
            warn!(stage = shared.name, attempt, error = %reason, retry_in_ms = delay.as_millis() as u64, "handler failed, retrying");
            let mut retry = envelope.clone();
            retry.meta.attempt = attempt;
            retry.meta.extra.insert("x-sightline-last-error".to_owned(), truncate(&reason, 500));
            match shared.backends.bus.retry_later(shared.name, &retry, delay).await {
                Ok(()) => {
                    ack(delivery).await;
                    Settled::Retried
                }
                Err(e) => requeue(delivery, &format!("schedule retry: {e}")).await,
            }
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

async fn apply(shared: &Shared, input: &Envelope, body: &Body, effects: &[Effect]) -> Result<(), StageError> {
    let mut outgoing = Vec::new();
    for (index, effect) in effects.iter().enumerate() {
        let (stage, body, id) = match effect {
            Effect::Publish { stage, body } => (stage, body, None),
            Effect::PublishOnce { stage, body, id } => (stage, body, Some(*id)),
            Effect::Finish(_) => continue,
        };
        let mut envelope = input.child(body, index as u64).map_err(|e| StageError::permanent(e.to_string()))?;
        if let Some(id) = id {
            envelope.meta.message_id = id;
        }
        #[cfg(feature = "otel")]
        crate::otel::stamp(&mut envelope.meta);
        if let Some(name) = body.source_name() {
            envelope.meta.extra.insert(headers::SOURCE.to_owned(), truncate(name, 1000));
        }
        outgoing.push(Outgoing { stage: stage.clone(), envelope });
    }
    for chunk in outgoing.chunks(PUBLISH_BATCH) {
        shared.backends.bus.publish(chunk).await?;
    }
    for effect in effects {
        if let Effect::Finish(record) = effect {
            finish(shared, input, route_of(body), record).await?;
        }
    }
    Ok(())
}

fn route_of(body: &Body) -> &[String] {
    match body {
        Body::Job(j) => &j.route,
        Body::IngestItem(i) => &i.route,
        Body::Image(t) => &t.route,
        Body::CollectionReady(c) => &c.route,
    }
}

async fn finish(shared: &Shared, input: &Envelope, route: &[String], record: &ItemRecord) -> Result<(), StageError> {
    let tally = records::finish(shared.ctx.blob.as_ref(), shared.ctx.coord.as_ref(), record).await?;
    if tally.completed_collection() {
        info!(job = %record.job_id, collection = %record.collection, "collection complete");
    }
    if tally.completed_job() {
        info!(job = %record.job_id, total = tally.total, "job complete");
    }
    // An image leaving before the fan-in stage still counts there, or the collection would
    // wait for it forever.
    if fanin::counts_at_barrier(route, &record.stage)
        && let Some(ready) =
            fanin::pass_barrier(shared.ctx.coord.as_ref(), record.job_id, record.item, &record.collection, route)
                .await?
    {
        let id = fanin::ready_message_id(record.job_id, &record.collection);
        let body = Body::CollectionReady(ready);
        let mut envelope = input.child(&body, 0).map_err(|e| StageError::permanent(e.to_string()))?;
        envelope.meta.message_id = id;
        #[cfg(feature = "otel")]
        crate::otel::stamp(&mut envelope.meta);
        shared.backends.bus.publish(&[Outgoing { stage: fanin::FAN_IN_STAGE.to_owned(), envelope }]).await?;
        info!(job = %record.job_id, collection = %record.collection, "collection ready for clustering");
    }
    Ok(())
}

/// The record of a message that failed for good, when it concerns one image.
fn failure_record(body: &Body, stage: &str, reason: &str) -> Option<ItemRecord> {
    match body {
        Body::Image(task) => Some(record_for(task, ItemOutcome::Failed, stage, Some(reason.to_owned()))),
        Body::IngestItem(item) => Some(ItemRecord {
            job_id: item.job_id,
            item: item.item,
            collection: item.collection.clone(),
            name: item.name.clone(),
            outcome: ItemOutcome::Failed,
            stage: stage.to_owned(),
            key: None,
            format: None,
            width: None,
            height: None,
            reason: Some(reason.to_owned()),
            annotations: Default::default(),
        }),
        Body::Job(_) | Body::CollectionReady(_) => None,
    }
}

/// Dead-letters the delivery with the reason in its headers, records the item as failed, and
/// acks. Not marked done: a replayed dead letter must run again.
async fn dead_letter(shared: &Shared, delivery: &Delivery, body: Option<&Body>, kind: &str, reason: &str) -> Settled {
    let mut envelope = delivery.envelope.clone();
    let extra = &mut envelope.meta.extra;
    extra.insert(headers::REASON.to_owned(), truncate(reason, 2000));
    extra.insert(headers::FAILED_STAGE.to_owned(), shared.name.to_owned());
    extra.insert(headers::FAILURE_KIND.to_owned(), kind.to_owned());
    extra.insert(headers::DEAD_LETTERED_AT.to_owned(), now_ms().to_string());
    if let Some(name) = body.and_then(Body::source_name) {
        extra.insert(headers::SOURCE.to_owned(), truncate(name, 1000));
    }
    if let Err(e) = shared.backends.bus.dead_letter(shared.name, &envelope).await {
        return requeue(delivery, &format!("dead-letter: {e}")).await;
    }
    warn!(stage = shared.name, kind, reason = %reason, "dead-lettered");
    if let Some(b) = body
        && let Some(record) = failure_record(b, shared.name, reason)
    {
        loop {
            match finish(shared, &delivery.envelope, route_of(b), &record).await {
                Ok(()) => break,
                Err(StageError::Unavailable { dependency, reason })
                    if shared.outages.wait_out(dependency, &reason, &shared.shutdown).await == Verdict::Recovered => {}
                Err(e) => {
                    // The dead letter is safe in its queue; progress catches up if it is replayed.
                    error!(error = %e, "record failed item");
                    break;
                }
            }
        }
    }
    shared.metrics.dead_lettered(shared.name, kind);
    ack(delivery).await;
    Settled::DeadLettered
}

/// Publishes a job to the ingest stage (what `sightline submit` and the embedded mode do).
pub async fn submit_job(bus: &dyn Bus, spec: &sightline_messages::JobSpec) -> Result<(), BusError> {
    bus.declare(&STAGES).await?;
    let body = Body::Job(spec.clone());
    let envelope = Envelope::new(&body, uuid::Uuid::new_v4(), spec.job_id)
        .map_err(|e| BusError::Refused { op: "encode job", detail: e.to_string() })?;
    bus.publish(&[Outgoing { stage: "ingest".to_owned(), envelope }]).await
}

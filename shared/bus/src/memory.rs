//! The in-memory bus: same topology and semantics as RabbitMQ, inside one process.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use sightline_messages::{Envelope, headers};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::topology::{DELIVERY_LIMIT, dead_letter_queue, retry_queue, work_queue};
use crate::{Acker, Bus, BusError, Consumer, Delivery, Outgoing, QueueDepth, prepare_replay};

#[derive(Default)]
struct Queue {
    ready: VecDeque<(Envelope, u32)>,
    unacked: HashMap<u64, (Envelope, u32)>,
    consumers: u32,
}

#[derive(Default)]
struct State {
    queues: HashMap<String, Queue>,
    next_tag: u64,
}

struct Shared {
    state: Mutex<State>,
    /// Woken on every enqueue and every settle.
    changed: Notify,
    delivery_limit: u32,
}

impl Shared {
    fn push(&self, queue: &str, envelope: Envelope, deliveries: u32) -> Result<(), BusError> {
        {
            let mut state = self.state.lock();
            let q = state.queues.get_mut(queue).ok_or_else(|| BusError::Unroutable(queue.to_owned()))?;
            q.ready.push_back((envelope, deliveries));
        }
        self.changed.notify_waiters();
        Ok(())
    }

    fn settle(&self, queue: &str, tag: u64, requeue: bool) {
        {
            let mut state = self.state.lock();
            let Some(q) = state.queues.get_mut(queue) else { return };
            let Some((envelope, deliveries)) = q.unacked.remove(&tag) else { return };
            if requeue {
                if deliveries > self.delivery_limit {
                    let mut envelope = envelope;
                    envelope.meta.extra.insert(headers::FAILURE_KIND.to_owned(), "delivery_limit".to_owned());
                    envelope.meta.extra.insert(
                        headers::REASON.to_owned(),
                        "delivered too many times without being settled (a worker may crash on it)".to_owned(),
                    );
                    let stage = queue.strip_prefix("sightline.").unwrap_or(queue);
                    if let Some(dlq) = state.queues.get_mut(&dead_letter_queue(stage)) {
                        dlq.ready.push_back((envelope, 0));
                    }
                } else {
                    // Like RabbitMQ, a returned message goes back near the head of the queue.
                    q.ready.push_front((envelope, deliveries));
                }
            }
        }
        self.changed.notify_waiters();
    }
}

/// A bus held in memory, for the embedded mode and for component tests.
#[derive(Clone)]
pub struct MemoryBus {
    shared: Arc<Shared>,
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self::with_delivery_limit(DELIVERY_LIMIT as u32)
    }
}

impl MemoryBus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty bus whose work queues dead-letter after `limit` redeliveries.
    pub fn with_delivery_limit(limit: u32) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                changed: Notify::new(),
                delivery_limit: limit,
            }),
        }
    }
}

struct MemoryAcker {
    shared: Arc<Shared>,
    queue: String,
    tag: u64,
    settled: AtomicBool,
    in_flight: Arc<AtomicUsize>,
}

impl MemoryAcker {
    fn settle(&self, requeue: bool) {
        if !self.settled.swap(true, Ordering::SeqCst) {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            self.shared.settle(&self.queue, self.tag, requeue);
        }
    }
}

#[async_trait]
impl Acker for MemoryAcker {
    async fn ack(&self) -> Result<(), BusError> {
        self.settle(false);
        Ok(())
    }

    async fn requeue(&self) -> Result<(), BusError> {
        self.settle(true);
        Ok(())
    }
}

impl Drop for MemoryAcker {
    /// An unsettled delivery whose acker is dropped returns to its queue, as when a
    /// RabbitMQ consumer's connection dies.
    fn drop(&mut self) {
        self.settle(true);
    }
}

struct MemoryConsumer {
    shared: Arc<Shared>,
    queue: String,
    prefetch: usize,
    in_flight: Arc<AtomicUsize>,
    cancelled: bool,
}

#[async_trait]
impl Consumer for MemoryConsumer {
    async fn next(&mut self) -> Option<Result<Delivery, BusError>> {
        loop {
            if self.cancelled {
                return None;
            }
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.in_flight.load(Ordering::SeqCst) < self.prefetch {
                let mut state = self.shared.state.lock();
                state.next_tag += 1;
                let tag = state.next_tag;
                let Some(q) = state.queues.get_mut(&self.queue) else {
                    return Some(Err(BusError::Refused { op: "consume", detail: format!("no queue {}", self.queue) }));
                };
                if let Some((envelope, deliveries)) = q.ready.pop_front() {
                    q.unacked.insert(tag, (envelope.clone(), deliveries + 1));
                    self.in_flight.fetch_add(1, Ordering::SeqCst);
                    return Some(Ok(Delivery {
                        envelope,
                        redelivered: deliveries > 0,
                        acker: Box::new(MemoryAcker {
                            shared: self.shared.clone(),
                            queue: self.queue.clone(),
                            tag,
                            settled: AtomicBool::new(false),
                            in_flight: self.in_flight.clone(),
                        }),
                    }));
                }
            }
            notified.await;
        }
    }

    async fn cancel(&mut self) -> Result<(), BusError> {
        self.cancelled = true;
        Ok(())
    }
}

impl Drop for MemoryConsumer {
    fn drop(&mut self) {
        if let Some(q) = self.shared.state.lock().queues.get_mut(&self.queue) {
            q.consumers = q.consumers.saturating_sub(1);
        }
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn declare(&self, stages: &[&str]) -> Result<(), BusError> {
        let mut state = self.shared.state.lock();
        for stage in stages {
            for name in [work_queue(stage), retry_queue(stage), dead_letter_queue(stage)] {
                state.queues.entry(name).or_default();
            }
        }
        Ok(())
    }

    async fn publish(&self, batch: &[Outgoing]) -> Result<(), BusError> {
        // All or nothing, like a batch whose confirms all arrived.
        {
            let state = self.shared.state.lock();
            if let Some(missing) = batch.iter().find(|o| !state.queues.contains_key(&work_queue(&o.stage))) {
                return Err(BusError::Unroutable(format!("sightline/{}", missing.stage)));
            }
        }
        for out in batch {
            self.shared.push(&work_queue(&out.stage), out.envelope.clone(), 0)?;
        }
        Ok(())
    }

    async fn retry_later(&self, stage: &str, envelope: &Envelope, delay: Duration) -> Result<(), BusError> {
        let retry = retry_queue(stage);
        let work = work_queue(stage);
        let (shared, envelope) = (self.shared.clone(), envelope.clone());
        let id = envelope.meta.message_id;
        shared.push(&retry, envelope, 0)?;
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let moved = {
                let mut state = shared.state.lock();
                let q = state.queues.get_mut(&retry);
                q.and_then(|q| {
                    let pos = q.ready.iter().position(|(e, _)| e.meta.message_id == id)?;
                    q.ready.remove(pos)
                })
            };
            if let Some((envelope, _)) = moved {
                let _ = shared.push(&work, envelope, 0);
            }
        });
        Ok(())
    }

    async fn dead_letter(&self, stage: &str, envelope: &Envelope) -> Result<(), BusError> {
        self.shared.push(&dead_letter_queue(stage), envelope.clone(), 0)
    }

    async fn consume(&self, stage: &str, prefetch: u16) -> Result<Box<dyn Consumer>, BusError> {
        let queue = work_queue(stage);
        {
            let mut state = self.shared.state.lock();
            let q = state.queues.get_mut(&queue).ok_or_else(|| BusError::Refused {
                op: "basic.consume",
                detail: format!("NOT_FOUND - no queue '{queue}'"),
            })?;
            q.consumers += 1;
        }
        Ok(Box::new(MemoryConsumer {
            shared: self.shared.clone(),
            queue,
            prefetch: usize::from(prefetch.max(1)),
            in_flight: Arc::new(AtomicUsize::new(0)),
            cancelled: false,
        }))
    }

    async fn dlq_list(&self, stage: &str, limit: usize) -> Result<Vec<Envelope>, BusError> {
        let state = self.shared.state.lock();
        Ok(state
            .queues
            .get(&dead_letter_queue(stage))
            .map(|q| q.ready.iter().take(limit).map(|(e, _)| e.clone()).collect())
            .unwrap_or_default())
    }

    async fn dlq_replay(&self, stage: &str, only: Option<&[Uuid]>) -> Result<usize, BusError> {
        let taken: Vec<Envelope> = {
            let mut state = self.shared.state.lock();
            let Some(q) = state.queues.get_mut(&dead_letter_queue(stage)) else { return Ok(0) };
            let (take, keep): (Vec<_>, Vec<_>) =
                q.ready.drain(..).partition(|(e, _)| only.is_none_or(|ids| ids.contains(&e.meta.message_id)));
            q.ready = keep.into();
            take.into_iter().map(|(e, _)| e).collect()
        };
        let n = taken.len();
        for envelope in taken {
            self.shared.push(&work_queue(stage), prepare_replay(envelope), 0)?;
        }
        Ok(n)
    }

    async fn dlq_purge(&self, stage: &str) -> Result<u64, BusError> {
        let mut state = self.shared.state.lock();
        let Some(q) = state.queues.get_mut(&dead_letter_queue(stage)) else { return Ok(0) };
        let n = q.ready.len() as u64;
        q.ready.clear();
        Ok(n)
    }

    async fn depth(&self, stage: &str) -> Result<QueueDepth, BusError> {
        let state = self.shared.state.lock();
        let len = |name: String| state.queues.get(&name).map_or(0, |q| q.ready.len() as u64);
        Ok(QueueDepth {
            ready: len(work_queue(stage)),
            retrying: len(retry_queue(stage)),
            dead: len(dead_letter_queue(stage)),
            consumers: state.queues.get(&work_queue(stage)).map_or(0, |q| q.consumers),
        })
    }

    async fn health(&self) -> Result<(), BusError> {
        Ok(())
    }
}

//! The RabbitMQ bus over lapin.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use lapin::message::BasicGetMessage;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use sightline_messages::{Envelope, Meta, headers};
use tokio::sync::Mutex;
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::topology::{DEAD_LETTER_EXCHANGE, DELIVERY_LIMIT, EXCHANGE, dead_letter_queue, retry_queue, work_queue};
use crate::{Acker, Bus, BusError, Consumer, Delivery, Outgoing, QueueDepth, prepare_replay};

/// How to reach RabbitMQ.
#[derive(Debug, Clone)]
pub struct AmqpConfig {
    /// `amqp://user:pass@host:port/vhost`.
    pub url: String,
    /// Name shown in the management UI.
    pub connection_name: String,
    /// Redeliveries before RabbitMQ dead-letters a message itself.
    pub delivery_limit: i64,
}

impl AmqpConfig {
    /// Config for `url` with the default delivery limit.
    pub fn new(url: impl Into<String>, connection_name: impl Into<String>) -> Self {
        Self { url: url.into(), connection_name: connection_name.into(), delivery_limit: DELIVERY_LIMIT }
    }
}

struct Live {
    connection: Connection,
    /// Shared publishing channel in confirm mode.
    publisher: Channel,
}

/// The RabbitMQ bus. Connects lazily, reconnects after the connection drops and re-declares
/// the topology it declared before.
pub struct AmqpBus {
    config: AmqpConfig,
    live: Mutex<Option<Arc<Live>>>,
    declared: parking_lot::Mutex<Vec<String>>,
}

fn unavailable(e: lapin::Error) -> BusError {
    BusError::Unavailable(e.to_string())
}

fn refused(op: &'static str) -> impl Fn(lapin::Error) -> BusError {
    move |e| {
        let detail = e.to_string();
        if detail.contains("PRECONDITION_FAILED") || detail.contains("NOT_FOUND") || detail.contains("ACCESS_REFUSED") {
            BusError::Refused { op, detail }
        } else {
            BusError::Unavailable(detail)
        }
    }
}

impl AmqpBus {
    /// A bus for `config`; no connection is made until first use.
    pub fn new(config: AmqpConfig) -> Self {
        Self { config, live: Mutex::new(None), declared: parking_lot::Mutex::new(Vec::new()) }
    }

    async fn live(&self) -> Result<Arc<Live>, BusError> {
        let mut guard = self.live.lock().await;
        if let Some(live) = guard.as_ref() {
            if live.connection.status().connected() && live.publisher.status().connected() {
                return Ok(live.clone());
            }
            warn!("amqp connection lost, reconnecting");
        }
        let props = ConnectionProperties::default().with_connection_name(self.config.connection_name.clone().into());
        let connection = Connection::connect(&self.config.url, props).await.map_err(unavailable)?;
        let publisher = connection.create_channel().await.map_err(unavailable)?;
        publisher.confirm_select(ConfirmSelectOptions::default()).await.map_err(unavailable)?;
        let live = Arc::new(Live { connection, publisher });
        let stages = self.declared.lock().clone();
        if !stages.is_empty() {
            declare_on(&live.publisher, &stages, self.config.delivery_limit).await?;
        }
        info!(stages = stages.len(), "amqp connected");
        *guard = Some(live.clone());
        Ok(live)
    }

    async fn forget_if_broken(&self, err: &BusError) {
        if matches!(err, BusError::Unavailable(_)) {
            *self.live.lock().await = None;
        }
    }

    async fn publish_raw(
        &self,
        exchange: &str,
        routing_key: &str,
        envelopes: &[&Envelope],
        expiration: Option<Duration>,
    ) -> Result<(), BusError> {
        let live = self.live().await?;
        let result = publish_on(&live.publisher, exchange, routing_key, envelopes, expiration).await;
        if let Err(err) = &result {
            self.forget_if_broken(err).await;
        }
        result
    }

    /// Deletes the three queues of `stage` (tests and operators cleaning up a retired stage).
    pub async fn delete_stage(&self, stage: &str) -> Result<(), BusError> {
        let channel = self.channel().await?;
        for q in [work_queue(stage), retry_queue(stage), dead_letter_queue(stage)] {
            channel
                .queue_delete(q.as_str().into(), lapin::options::QueueDeleteOptions::default())
                .await
                .map_err(refused("queue.delete"))?;
        }
        let _ = channel.close(200, "deleted".into()).await;
        Ok(())
    }

    async fn channel(&self) -> Result<Channel, BusError> {
        let live = self.live().await?;
        match live.connection.create_channel().await {
            Ok(ch) => Ok(ch),
            Err(e) => {
                let err = unavailable(e);
                self.forget_if_broken(&err).await;
                Err(err)
            }
        }
    }
}

async fn declare_on(ch: &Channel, stages: &[String], delivery_limit: i64) -> Result<(), BusError> {
    let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
    for ex in [EXCHANGE, DEAD_LETTER_EXCHANGE] {
        ch.exchange_declare(ex.into(), ExchangeKind::Direct, durable, FieldTable::default())
            .await
            .map_err(refused("exchange.declare"))?;
    }
    let qopts = QueueDeclareOptions { durable: true, ..Default::default() };
    for stage in stages {
        let (work, retry, dlq) = (work_queue(stage), retry_queue(stage), dead_letter_queue(stage));
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
        args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(DEAD_LETTER_EXCHANGE.into()));
        args.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(stage.as_str().into()));
        args.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(delivery_limit));
        ch.queue_declare(work.as_str().into(), qopts, args).await.map_err(refused("queue.declare"))?;
        bind_queue(ch, &work, EXCHANGE, stage).await?;

        // Retry: classic queue, per-message expiry, then dead-lettered through the default
        // exchange straight onto the work queue.
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), AMQPValue::LongString("classic".into()));
        args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString("".into()));
        args.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(work.as_str().into()));
        ch.queue_declare(retry.as_str().into(), qopts, args).await.map_err(refused("queue.declare"))?;

        // Dead letters: classic, so listing them (get + requeue) never hits a delivery limit.
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), AMQPValue::LongString("classic".into()));
        ch.queue_declare(dlq.as_str().into(), qopts, args).await.map_err(refused("queue.declare"))?;
        bind_queue(ch, &dlq, DEAD_LETTER_EXCHANGE, stage).await?;
    }
    Ok(())
}

/// Takes the next message of `queue` without acknowledging it, or `None` if it is empty.
async fn get_next(ch: &Channel, queue: &str) -> Result<Option<BasicGetMessage>, BusError> {
    ch.basic_get(queue.into(), BasicGetOptions::default()).await.map_err(refused("basic.get"))
}

/// Binds `queue` to `exchange` under `routing_key`, with no binding arguments.
async fn bind_queue(ch: &Channel, queue: &str, exchange: &str, routing_key: &str) -> Result<(), BusError> {
    ch.queue_bind(queue.into(), exchange.into(), routing_key.into(), QueueBindOptions::default(), FieldTable::default())
        .await
        .map_err(refused("queue.bind"))
}

async fn publish_on(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    envelopes: &[&Envelope],
    expiration: Option<Duration>,
) -> Result<(), BusError> {
    let mut confirms = Vec::with_capacity(envelopes.len());
    let opts = BasicPublishOptions { mandatory: true, ..Default::default() };
    for env in envelopes {
        let mut props = to_properties(&env.meta);
        if let Some(delay) = expiration {
            props = props.with_expiration(delay.as_millis().max(1).to_string().into());
        }
        let confirm =
            ch.basic_publish(exchange.into(), routing_key.into(), opts, &env.body, props).await.map_err(unavailable)?;
        confirms.push(confirm);
    }
    for confirm in confirms {
        let confirmation = confirm.await.map_err(unavailable)?;
        if confirmation.is_nack() {
            return Err(BusError::NotConfirmed(routing_key.to_owned()));
        }
        if confirmation.take_message().is_some() {
            return Err(BusError::Unroutable(format!("{exchange}/{routing_key}")));
        }
    }
    Ok(())
}

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes()))
}

/// Maps metadata onto AMQP properties and headers.
pub(crate) fn to_properties(meta: &Meta) -> BasicProperties {
    let mut h = FieldTable::default();
    h.insert(headers::SCHEMA_VERSION.into(), AMQPValue::LongUInt(u32::from(meta.schema_version)));
    h.insert(headers::ATTEMPT.into(), AMQPValue::LongUInt(meta.attempt));
    if let Some(item) = meta.item {
        h.insert(headers::ITEM.into(), AMQPValue::LongLongInt(item as i64));
    }
    if let Some(tp) = &meta.traceparent {
        h.insert(headers::TRACEPARENT.into(), long(tp));
    }
    if let Some(c) = meta.causation_id {
        h.insert(headers::CAUSATION_ID.into(), long(&c.to_string()));
    }
    for (k, v) in &meta.extra {
        h.insert(ShortString::from(k.as_str()), long(v));
    }
    BasicProperties::default()
        .with_message_id(meta.message_id.to_string().into())
        .with_correlation_id(meta.correlation_id.to_string().into())
        .with_type(meta.kind.as_str().into())
        .with_content_type("application/msgpack".into())
        .with_delivery_mode(2)
        .with_app_id("sightline".into())
        .with_headers(h)
}

fn as_string(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn as_u64(v: &AMQPValue) -> Option<u64> {
    match v {
        AMQPValue::LongUInt(n) => Some(u64::from(*n)),
        AMQPValue::LongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortShortUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongString(_) | AMQPValue::ShortString(_) => as_string(v)?.parse().ok(),
        _ => None,
    }
}

/// Reads metadata back from AMQP properties, tolerating messages from other producers: a
/// missing message id is derived from the body, so the message can still be dead-lettered.
pub(crate) fn from_properties(props: &BasicProperties, body: &[u8]) -> Meta {
    let parse_uuid = |s: &Option<ShortString>| s.as_ref().and_then(|s| Uuid::parse_str(s.as_str()).ok());
    let message_id = parse_uuid(props.message_id()).unwrap_or_else(|| Uuid::new_v5(&Uuid::NAMESPACE_OID, body));
    let correlation_id = parse_uuid(props.correlation_id()).unwrap_or(Uuid::nil());
    let kind = props.kind().as_ref().map(|k| k.as_str().to_owned()).unwrap_or_default();
    let mut meta = Meta {
        message_id,
        correlation_id,
        causation_id: None,
        kind,
        schema_version: 1,
        attempt: 0,
        traceparent: None,
        item: None,
        extra: BTreeMap::new(),
    };
    let Some(table) = props.headers() else { return meta };
    for (key, value) in table.inner() {
        match key.as_str() {
            headers::SCHEMA_VERSION => {
                meta.schema_version = as_u64(value).and_then(|v| u16::try_from(v).ok()).unwrap_or(0)
            }
            headers::ATTEMPT => meta.attempt = as_u64(value).and_then(|v| u32::try_from(v).ok()).unwrap_or(0),
            headers::ITEM => meta.item = as_u64(value),
            headers::TRACEPARENT => meta.traceparent = as_string(value),
            headers::CAUSATION_ID => meta.causation_id = as_string(value).and_then(|s| Uuid::parse_str(&s).ok()),
            "x-death" => {
                // RabbitMQ dead-lettered it itself (delivery limit); keep its reason readable.
                if let Some(reason) = x_death_reason(value) {
                    meta.extra.entry("x-death-reason".to_owned()).or_insert(reason);
                }
            }
            k => {
                if let Some(s) = as_string(value) {
                    meta.extra.insert(k.to_owned(), s);
                }
            }
        }
    }
    if let Some(reason) = meta.extra.remove("x-death-reason")
        && !meta.extra.contains_key(headers::REASON)
        && reason == "delivery_limit"
    {
        {
            meta.extra.insert(headers::FAILURE_KIND.to_owned(), "delivery_limit".to_owned());
            meta.extra.insert(
                headers::REASON.to_owned(),
                "delivered too many times without being settled (a worker may crash on it)".to_owned(),
            );
        }
    }
    meta
}

fn x_death_reason(value: &AMQPValue) -> Option<String> {
    let AMQPValue::FieldArray(arr) = value else { return None };
    let AMQPValue::FieldTable(first) = arr.as_slice().first()? else { return None };
    first.inner().get("reason").and_then(as_string)
}

struct AmqpAcker {
    acker: lapin::Acker,
}

#[async_trait]
impl Acker for AmqpAcker {
    async fn ack(&self) -> Result<(), BusError> {
        self.acker.ack(BasicAckOptions::default()).await.map(|_| ()).map_err(unavailable)
    }

    async fn requeue(&self) -> Result<(), BusError> {
        self.acker.nack(BasicNackOptions { requeue: true, ..Default::default() }).await.map(|_| ()).map_err(unavailable)
    }
}

struct AmqpConsumer {
    channel: Channel,
    inner: lapin::Consumer,
    cancelled: bool,
}

#[async_trait]
impl Consumer for AmqpConsumer {
    async fn next(&mut self) -> Option<Result<Delivery, BusError>> {
        let delivery = match self.inner.next().await? {
            Ok(d) => d,
            Err(e) => return Some(Err(unavailable(e))),
        };
        let meta = from_properties(&delivery.properties, &delivery.data);
        Some(Ok(Delivery {
            envelope: Envelope { meta, body: delivery.data },
            redelivered: delivery.redelivered,
            acker: Box::new(AmqpAcker { acker: delivery.acker }),
        }))
    }

    async fn cancel(&mut self) -> Result<(), BusError> {
        if self.cancelled {
            return Ok(());
        }
        self.cancelled = true;
        self.channel.basic_cancel(self.inner.tag(), BasicCancelOptions::default()).await.map_err(unavailable)
    }
}

#[async_trait]
impl Bus for AmqpBus {
    async fn declare(&self, stages: &[&str]) -> Result<(), BusError> {
        {
            let mut declared = self.declared.lock();
            for s in stages {
                if !declared.iter().any(|d| d == s) {
                    declared.push((*s).to_owned());
                }
            }
        }
        let live = self.live().await?;
        let stages: Vec<String> = stages.iter().map(|s| (*s).to_owned()).collect();
        let result = declare_on(&live.publisher, &stages, self.config.delivery_limit).await;
        if let Err(err) = &result {
            self.forget_if_broken(err).await;
        }
        result
    }

    async fn publish(&self, batch: &[Outgoing]) -> Result<(), BusError> {
        if batch.is_empty() {
            return Ok(());
        }
        let live = self.live().await?;
        let mut confirms = Vec::with_capacity(batch.len());
        let opts = BasicPublishOptions { mandatory: true, ..Default::default() };
        let mut result = Ok(());
        for out in batch {
            let props = to_properties(&out.envelope.meta);
            match live
                .publisher
                .basic_publish(EXCHANGE.into(), out.stage.as_str().into(), opts, &out.envelope.body, props)
                .await
            {
                Ok(c) => confirms.push((out.stage.as_str(), c)),
                Err(e) => {
                    result = Err(unavailable(e));
                    break;
                }
            }
        }
        for (stage, confirm) in confirms {
            match confirm.await {
                Ok(c) if c.is_nack() => result = result.and(Err(BusError::NotConfirmed(stage.to_owned()))),
                Ok(c) => {
                    if c.take_message().is_some() {
                        result = result.and(Err(BusError::Unroutable(format!("{EXCHANGE}/{stage}"))));
                    }
                }
                Err(e) => result = result.and(Err(unavailable(e))),
            }
        }
        if let Err(err) = &result {
            self.forget_if_broken(err).await;
        }
        result
    }

    async fn retry_later(&self, stage: &str, envelope: &Envelope, delay: Duration) -> Result<(), BusError> {
        self.publish_raw("", &retry_queue(stage), &[envelope], Some(delay)).await
    }

    async fn dead_letter(&self, stage: &str, envelope: &Envelope) -> Result<(), BusError> {
        self.publish_raw(DEAD_LETTER_EXCHANGE, stage, &[envelope], None).await
    }

    async fn consume(&self, stage: &str, prefetch: u16) -> Result<Box<dyn Consumer>, BusError> {
        let channel = self.channel().await?;
        channel.basic_qos(prefetch, BasicQosOptions::default()).await.map_err(unavailable)?;
        let inner = channel
            .basic_consume(
                work_queue(stage).as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(refused("basic.consume"))?;
        debug!(stage, prefetch, "consuming");
        Ok(Box::new(AmqpConsumer { channel, inner, cancelled: false }))
    }

    async fn dlq_list(&self, stage: &str, limit: usize) -> Result<Vec<Envelope>, BusError> {
        let channel = self.channel().await?;
        let mut out = Vec::new();
        let queue = dead_letter_queue(stage);
        while out.len() < limit {
            let Some(msg) = get_next(&channel, &queue).await? else { break };
            let d = msg.delivery;
            out.push(Envelope { meta: from_properties(&d.properties, &d.data), body: d.data });
        }
        // Closing the channel returns every unacknowledged message to the queue.
        let _ = channel.close(200, "listed".into()).await;
        Ok(out)
    }

    async fn dlq_replay(&self, stage: &str, only: Option<&[Uuid]>) -> Result<usize, BusError> {
        let channel = self.channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(unavailable)?;
        let queue = dead_letter_queue(stage);
        let mut replayed = 0;
        // Bound the loop by the count at the start: a replayed message that fails again lands
        // back in the queue and must not be picked up in the same pass.
        let mut remaining: Option<u32> = None;
        loop {
            if remaining == Some(0) {
                break;
            }
            let Some(msg) = get_next(&channel, &queue).await? else { break };
            let left = remaining.get_or_insert(msg.message_count + 1);
            *left -= 1;
            let d = msg.delivery;
            let envelope = Envelope { meta: from_properties(&d.properties, &d.data), body: d.data };
            if only.is_some_and(|ids| !ids.contains(&envelope.meta.message_id)) {
                continue; // left unacked: requeued when the channel closes
            }
            let envelope = prepare_replay(envelope);
            publish_on(&channel, EXCHANGE, stage, &[&envelope], None).await?;
            d.acker.ack(BasicAckOptions::default()).await.map_err(unavailable)?;
            replayed += 1;
        }
        let _ = channel.close(200, "replayed".into()).await;
        Ok(replayed)
    }

    async fn dlq_purge(&self, stage: &str) -> Result<u64, BusError> {
        let channel = self.channel().await?;
        let n = channel
            .queue_purge(dead_letter_queue(stage).as_str().into(), QueuePurgeOptions::default())
            .await
            .map_err(refused("queue.purge"))?;
        let _ = channel.close(200, "purged".into()).await;
        Ok(u64::from(n))
    }

    async fn depth(&self, stage: &str) -> Result<QueueDepth, BusError> {
        let channel = self.channel().await?;
        let passive = QueueDeclareOptions { passive: true, ..Default::default() };
        let mut depth = QueueDepth::default();
        for (name, slot) in [(work_queue(stage), 0), (retry_queue(stage), 1), (dead_letter_queue(stage), 2)] {
            let q = channel
                .queue_declare(name.as_str().into(), passive, FieldTable::default())
                .await
                .map_err(refused("queue.declare (passive)"))?;
            match slot {
                0 => {
                    depth.ready = u64::from(q.message_count());
                    depth.consumers = q.consumer_count();
                }
                1 => depth.retrying = u64::from(q.message_count()),
                _ => depth.dead = u64::from(q.message_count()),
            }
        }
        let _ = channel.close(200, "depth".into()).await;
        Ok(depth)
    }

    async fn health(&self) -> Result<(), BusError> {
        self.live().await.map(|_| ())
    }
}

//! The bus conformance suite against the in-memory bus, and against RabbitMQ (`AMQP_URL`,
//! default `amqp://guest:guest@127.0.0.1:5672/%2f`) with `--features integration`.

use sightline_bus::conformance as c;

macro_rules! suite {
    ($module:ident, $make:expr) => {
        mod $module {
            use super::*;
            suite!(@each $make; round_trip_keeps_metadata, prefetch_bounds_in_flight, requeue_redelivers,
                retry_comes_back_after_delay, dead_letters_list_replay_purge, delivery_limit_dead_letters,
                cancel_stops_delivery, unroutable_publish_fails);
        }
    };
    (@each $make:expr; $($check:ident),*) => {
        $(
            #[tokio::test]
            async fn $check() {
                let stage = format!("conf-{}-{}", stringify!($check).replace('_', "-"), &uuid::Uuid::new_v4().simple().to_string()[..8]);
                let bus = $make;
                c::$check(&bus, &stage).await;
                cleanup(&bus, &stage).await;
            }
        )*
    };
}

trait Cleanup {
    async fn remove(&self, stage: &str);
}

impl Cleanup for sightline_bus::MemoryBus {
    async fn remove(&self, _stage: &str) {}
}

#[cfg(feature = "integration")]
impl Cleanup for sightline_bus::AmqpBus {
    async fn remove(&self, stage: &str) {
        self.delete_stage(stage).await.expect("delete test queues");
    }
}

async fn cleanup<B: Cleanup>(bus: &B, stage: &str) {
    bus.remove(stage).await;
}

suite!(memory, sightline_bus::MemoryBus::with_delivery_limit(2));

#[cfg(feature = "integration")]
fn amqp() -> sightline_bus::AmqpBus {
    let url = std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let mut config = sightline_bus::AmqpConfig::new(url, "conformance");
    config.delivery_limit = 2;
    sightline_bus::AmqpBus::new(config)
}

#[cfg(feature = "integration")]
suite!(rabbitmq, amqp());

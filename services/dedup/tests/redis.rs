//! The dedup protocol against a real Redis (`REDIS_URL`, default `redis://127.0.0.1:6379/`),
//! with `--features integration`: two instances, each with its own connection, racing on
//! every copy of several pictures must agree on exactly one original per picture.
#![cfg(feature = "integration")]

mod common;

use std::sync::Arc;

use sightline_coord::{Coord, RedisCoord};

async fn redis(prefix: &str) -> Arc<dyn Coord> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    Arc::new(RedisCoord::connect_with_prefix(&url, prefix).await.expect("connect to redis"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_racing_on_redis_agree_on_one_original() {
    // Fresh keys per run; jobs are new UUIDs too, so runs never see each other.
    let prefix = format!("sltest-dedup-{}", std::process::id());
    common::race([redis(&prefix).await, redis(&prefix).await], 3).await;
}

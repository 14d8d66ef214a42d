//! The coordination conformance suite against memory, and against Redis (`REDIS_URL`,
//! default `redis://127.0.0.1:6379/`) with `--features integration`.

use std::sync::Arc;

use sightline_coord::{Coord, conformance as c};

fn ns() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("t{}-{nanos}", std::process::id())
}

macro_rules! suite {
    ($module:ident, $make:expr) => {
        mod $module {
            use super::*;

            #[tokio::test]
            async fn done_markers() {
                let coord: Arc<dyn Coord> = $make;
                c::done_markers(coord.as_ref(), &ns()).await;
            }

            #[tokio::test]
            async fn job_progress_and_fan_in() {
                c::job_progress_and_fan_in($make, &ns()).await;
            }

            #[tokio::test]
            async fn counters() {
                c::counters($make, &ns()).await;
            }

            #[tokio::test]
            async fn claims() {
                c::claims($make, &ns()).await;
            }

            #[tokio::test]
            async fn claimed() {
                let coord: Arc<dyn Coord> = $make;
                c::claimed(coord.as_ref(), &ns()).await;
            }

            #[tokio::test]
            async fn near_claims() {
                let coord: Arc<dyn Coord> = $make;
                c::near_claims(coord.as_ref(), &ns()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn near_claims_race() {
                c::near_claims_race($make, &ns()).await;
            }

            #[tokio::test]
            async fn leases() {
                let coord: Arc<dyn Coord> = $make;
                c::leases(coord.as_ref(), &ns()).await;
            }
        }
    };
}

suite!(memory, Arc::new(sightline_coord::MemoryCoord::new()));

#[cfg(feature = "integration")]
async fn redis() -> Arc<dyn Coord> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    Arc::new(sightline_coord::RedisCoord::connect_with_prefix(&url, "sltest").await.expect("connect to redis"))
}

#[cfg(feature = "integration")]
suite!(redis, redis().await);

//! The coordination conformance suite against memory, and against Redis (`REDIS_URL`,
//! default `redis://127.0.0.1:6379/`) with `--features integration`.

use std::sync::Arc;

use sightline_coord::{Coord, conformance as c};

fn ns() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("t{}-{nanos}", std::process::id())
}

/// One test per check of the suite, against the backend `$make` makes (each in a fresh
/// namespace; on a multi-threaded runtime, for the checks that race).
macro_rules! suite {
    ($module:ident, $make:expr) => {
        mod $module {
            use super::*;

            suite!(@checks $make; done_markers, job_progress_and_fan_in, counters, claims, claimed, near_claims,
                near_claims_alternate, near_claims_race, leases);
        }
    };
    (@checks $make:expr; $($check:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                c::$check($make, &ns()).await;
            }
        )+
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

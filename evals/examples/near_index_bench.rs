//! Cost of the near-duplicate index's claim with and without the mirror hash's lookup, in
//! memory and on Redis, side by side in one run.
//!
//! `cargo run --release -p sightline-evals --example near_index_bench -- [--entries N] [--redis URL] [--distance D] [--json]`
//!
//! Fills one index with `N` random 64-bit hashes (seeded; as `Coord::claim_near` inserts
//! originals), then times `N` claims of other random hashes (most are inserted, as unique
//! images are) with only their hash, and `N` with a random alternate hash too, on one
//! connection, one call at a time. Prints microseconds per claim and the ratio.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use sightline_clustering::dpc::SplitMix64;
use sightline_coord::{Coord, MemoryCoord, NearKey, RedisCoord};

const TTL: Duration = Duration::from_secs(600);

async fn time_claims(coord: &dyn Coord, index: &str, keys: &[NearKey], distance: u32) -> anyhow::Result<f64> {
    let started = Instant::now();
    for (i, key) in keys.iter().enumerate() {
        let id = format!("{index}-{i}");
        coord.claim_near(index, *key, &id, &id, distance, TTL).await?;
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / keys.len().max(1) as f64)
}

async fn bench(coord: Arc<dyn Coord>, name: &str, entries: usize, distance: u32) -> anyhow::Result<serde_json::Value> {
    let mut rng = SplitMix64(42);
    let mut random = |n: usize| (0..n).map(|_| rng.next_u64()).collect::<Vec<u64>>();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let (fill, plain, main, alternate) = (random(entries), random(entries), random(entries), random(entries));
    let mut results = Vec::new();
    // The same filled index for both kinds of claim: two indexes, filled alike.
    for (label, keys) in [
        ("hash only", plain.iter().map(|h| NearKey::from(*h)).collect::<Vec<_>>()),
        (
            "hash and mirror",
            main.iter().zip(&alternate).map(|(h, a)| NearKey { hash: *h, alternate: Some(*a) }).collect(),
        ),
    ] {
        let index = format!("bench-{run}-{label}");
        let filled: Vec<NearKey> = fill.iter().map(|h| NearKey::from(*h)).collect();
        time_claims(coord.as_ref(), &index, &filled, distance).await?;
        let us = time_claims(coord.as_ref(), &index, &keys, distance).await?;
        results.push((label, us));
    }
    let ratio = results[1].1 / results[0].1;
    eprintln!(
        "{name}: {:.1} µs per claim with the hash only, {:.1} µs with the mirror hash too ({ratio:.2}×), index of {entries}-{} entries, distance {distance}",
        results[0].1,
        results[1].1,
        2 * entries
    );
    Ok(serde_json::json!({
        "store": name,
        "hash_only_us": results[0].1,
        "with_mirror_us": results[1].1,
        "ratio": ratio,
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (mut entries, mut redis, mut distance, mut json) = (5000usize, None::<String>, 4u32, false);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--entries" => entries = args.next().context("--entries needs a number")?.parse()?,
            "--redis" => redis = Some(args.next().context("--redis needs a URL")?),
            "--distance" => distance = args.next().context("--distance needs a number")?.parse()?,
            "--json" => json = true,
            other => anyhow::bail!("unknown argument {other:?} (--entries N --redis URL --distance D --json)"),
        }
    }
    let mut out = vec![bench(Arc::new(MemoryCoord::new()), "memory", entries, distance).await?];
    if let Some(url) = redis {
        let prefix = format!("bench-{}", uuid::Uuid::new_v4().simple());
        let coord = RedisCoord::connect_with_prefix(&url, &prefix).await.context("connect to Redis")?;
        out.push(bench(Arc::new(coord), "redis", entries, distance).await?);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}

//! One conformance suite for every [`Coord`] backend: `tests/conformance.rs` runs it against
//! memory always and against Redis with the `integration` feature. Each check gets a fresh
//! namespace (`ns`) so runs never collide.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::{Coord, FINAL_SCOPE, NearKey, NearMatch};

/// Idempotency markers are set, read and expire.
pub async fn done_markers(c: Arc<dyn Coord>, ns: &str) {
    let id = format!("{ns}-msg");
    assert!(!c.is_done(&id).await.expect("is_done"));
    c.mark_done(&id, Duration::from_millis(300)).await.expect("mark");
    assert!(c.is_done(&id).await.expect("is_done"));
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(!c.is_done(&id).await.expect("is_done"), "marker expired");
}

/// Job progress: totals per collection, idempotent tallies, outcome changes, exactly one
/// completer per collection and per job even under concurrency.
pub async fn job_progress_and_fan_in(c: Arc<dyn Coord>, ns: &str) {
    let job = format!("{ns}-job");
    let totals: BTreeMap<String, u64> = [("a".to_owned(), 30), ("b".to_owned(), 20)].into();
    assert!(c.job_start(&job, "ingest", &totals, 1234).await.expect("start"));
    assert!(!c.job_start(&job, "ingest", &totals, 9999).await.expect("restart"), "second start is a no-op");

    let tasks: Vec<_> = (0..50u64)
        .map(|item| {
            let (c, job) = (c.clone(), job.clone());
            tokio::spawn(async move {
                let coll = if item < 30 { "a" } else { "b" };
                let outcome = if item % 10 == 0 { "failed" } else { "ok" };
                let t = c.tally(&job, FINAL_SCOPE, item, coll, outcome).await.expect("tally");
                // A repeat (redelivered message) changes nothing.
                let again = c.tally(&job, FINAL_SCOPE, item, coll, outcome).await.expect("tally again");
                assert!(!again.first);
                (t.completed_collection(), t.completed_job())
            })
        })
        .collect();
    let (mut coll_done, mut job_done) = (0, 0);
    for t in tasks {
        let (cd, jd) = t.await.expect("join");
        coll_done += usize::from(cd);
        job_done += usize::from(jd);
    }
    assert_eq!(coll_done, 2, "exactly one completer per collection");
    assert_eq!(job_done, 1, "exactly one completer for the job");

    // A replayed failure that now succeeds moves between outcomes without recounting.
    let t = c.tally(&job, FINAL_SCOPE, 0, "a", "ok").await.expect("tally");
    assert!(!t.first && t.finished == 50);

    let status = c.job_status(&job).await.expect("status").expect("known job");
    assert_eq!(status.kind, "ingest");
    assert_eq!(status.started_ms, 1234);
    assert_eq!((status.total, status.finished), (50, 50));
    assert!(status.is_complete());
    assert_eq!(status.outcomes.get("failed"), Some(&4));
    assert_eq!(status.outcomes.get("ok"), Some(&46));
    assert_eq!(status.collections.get("a"), Some(&(30, 30)));
    assert_eq!(status.collections.get("b"), Some(&(20, 20)));

    // Scopes are independent: the cluster barrier counts separately from the final scope.
    let t = c.tally(&job, "barrier", 3, "a", "ok").await.expect("tally");
    assert!(t.first && t.finished == 1 && t.collection_total == 30);
    assert!(c.job_status(&format!("{ns}-unknown")).await.expect("status").is_none());
}

/// Counters add atomically.
pub async fn counters(c: Arc<dyn Coord>, ns: &str) {
    let key = format!("{ns}-ctr");
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (c, key) = (c.clone(), key.clone());
            tokio::spawn(async move { c.counter_add(&key, 2).await.expect("add") })
        })
        .collect();
    for t in tasks {
        t.await.expect("join");
    }
    assert_eq!(c.counter_add(&key, -1).await.expect("add"), 39);
}

/// Claims: the first caller wins; later callers learn the winner's value.
pub async fn claims(c: Arc<dyn Coord>, ns: &str) {
    let key = format!("{ns}-claim");
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let (c, key) = (c.clone(), key.clone());
            tokio::spawn(
                async move { (i, c.claim(&key, &format!("v{i}"), Duration::from_secs(30)).await.expect("claim")) },
            )
        })
        .collect();
    let mut winners = Vec::new();
    let mut seen = Vec::new();
    for t in tasks {
        match t.await.expect("join") {
            (i, None) => winners.push(format!("v{i}")),
            (_, Some(v)) => seen.push(v),
        }
    }
    assert_eq!(winners.len(), 1, "one winner");
    assert!(seen.iter().all(|v| *v == winners[0]), "losers see the winner's value");
}

/// Leases exclude other owners, renew for the holder, and expire.
pub async fn leases(c: Arc<dyn Coord>, ns: &str) {
    let name = format!("{ns}-lease");
    let ttl = Duration::from_millis(400);
    assert!(c.lease_acquire(&name, "a", ttl).await.expect("acquire"));
    assert!(!c.lease_acquire(&name, "b", ttl).await.expect("acquire"), "held by a");
    assert!(c.lease_acquire(&name, "a", ttl).await.expect("renew"), "holder renews");
    assert!(!c.lease_release(&name, "b").await.expect("release"), "b cannot release a's lease");
    assert!(c.lease_release(&name, "a").await.expect("release"));
    assert!(c.lease_acquire(&name, "b", ttl).await.expect("acquire after release"));
    tokio::time::sleep(Duration::from_millis(550)).await;
    assert!(c.lease_acquire(&name, "a", ttl).await.expect("acquire after expiry"));
}

/// `claimed` reads what a claim set, and nothing else.
pub async fn claimed(c: Arc<dyn Coord>, ns: &str) {
    let key = format!("{ns}-read");
    assert_eq!(c.claimed(&key).await.expect("claimed"), None);
    assert_eq!(c.claim(&key, "first", Duration::from_millis(300)).await.expect("claim"), None);
    assert_eq!(c.claimed(&key).await.expect("claimed").as_deref(), Some("first"));
    assert_eq!(c.claimed(&key).await.expect("claimed").as_deref(), Some("first"), "reading sets nothing");
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(c.claimed(&key).await.expect("claimed"), None, "claim expired");
}

const TTL: Duration = Duration::from_secs(60);

/// The near-duplicate index: the nearest entry within the distance wins, ties go to the
/// earliest, far hashes get in, a repeat by the winner is a no-op, hashes with no band in
/// common are still found, and indexes are independent.
pub async fn near_claims(c: Arc<dyn Coord>, ns: &str) {
    let index = format!("{ns}-near");
    let base = 0x0123_4567_89ab_cdef_u64;
    assert_eq!(
        c.claim_near(&index, base.into(), "a", "va", 4, TTL).await.expect("near"),
        None,
        "empty index: inserted"
    );
    assert_eq!(c.claim_near(&index, base.into(), "a", "va", 4, TTL).await.expect("near"), None, "the winner again");
    // One flipped bit in each band: distance 4, no band equal to the base's.
    let spread = base ^ 0x0001_0002_0004_0008;
    assert_eq!(
        c.claim_near(&index, spread.into(), "b", "vb", 4, TTL).await.expect("near"),
        Some(NearMatch { value: "va".into(), hash: base, distance: 4, alternate: false })
    );
    assert_eq!(
        c.claim_near(&index, spread.into(), "b", "vb", 3, TTL).await.expect("near"),
        None,
        "beyond 3 bits: inserted"
    );
    // Now both are entries; a hash one bit from `spread` and five from `base` picks `spread`.
    let near_b = spread ^ 0x0100_0000_0000_0000;
    let hit = c.claim_near(&index, near_b.into(), "c", "vc", 7, TTL).await.expect("near").expect("a match");
    assert_eq!((hit.value.as_str(), hit.distance), ("vb", 1), "the nearest wins");
    // Equidistant (2 bits from each): the earlier entry wins.
    let between = base ^ 0x0001_0002_0000_0000;
    let hit = c.claim_near(&index, between.into(), "d", "vd", 4, TTL).await.expect("near").expect("a match");
    assert_eq!((hit.value.as_str(), hit.distance), ("va", 2), "ties go to the earliest");
    // Far away: inserted; another index is independent.
    assert_eq!(c.claim_near(&index, (!base).into(), "e", "ve", 11, TTL).await.expect("near"), None);
    assert_eq!(c.claim_near(&format!("{index}-other"), base.into(), "f", "vf", 4, TTL).await.expect("near"), None);
    // Radius 2 per band (distance up to 11): two bits off in every band, distance 8.
    let two_each = base ^ 0x0003_0003_0003_0003;
    let hit = c.claim_near(&index, two_each.into(), "g", "vg", 11, TTL).await.expect("near").expect("a match");
    assert_eq!((hit.value.as_str(), hit.distance), ("va", 8));
}

/// An alternate hash is looked up but never inserted: an entry near it matches (and says so),
/// the nearer of the two lookups wins, and an insert files only the main hash.
pub async fn near_claims_alternate(c: Arc<dyn Coord>, ns: &str) {
    let index = format!("{ns}-alternate");
    let (a, b) = (0x0f0f_0f0f_0f0f_0f0f_u64, 0xf0f0_f0f0_f0f0_f0f0_u64);
    let both = |hash, alternate| NearKey { hash, alternate: Some(alternate) };
    assert_eq!(c.claim_near(&index, a.into(), "a", "va", 4, TTL).await.expect("near"), None);
    let hit =
        c.claim_near(&index, both(b, a ^ 0b11), "x", "vx", 4, TTL).await.expect("near").expect("via the alternate");
    assert_eq!(hit, NearMatch { value: "va".into(), hash: a, distance: 2, alternate: true });
    // Nothing near either: the main hash is filed, the alternate is not.
    let other = 0x1234_5678_9abc_def0_u64;
    assert_eq!(c.claim_near(&index, both(b ^ 1, other), "y", "vy", 4, TTL).await.expect("near"), None, "inserted");
    assert_eq!(
        c.claim_near(&index, b.into(), "z", "vz", 4, TTL).await.expect("near"),
        Some(NearMatch { value: "vy".into(), hash: b ^ 1, distance: 1, alternate: false })
    );
    assert_eq!(c.claim_near(&index, other.into(), "u", "vu", 4, TTL).await.expect("near"), None, "alternate not filed");
    // The main hash 1 bit from `b ^ 1`, the alternate 0 bits from `a`: the alternate is nearer.
    let hit = c.claim_near(&index, both(b, a), "w", "vw", 4, TTL).await.expect("near").expect("a match");
    assert_eq!((hit.value.as_str(), hit.distance, hit.alternate), ("va", 0, true));
}

/// Racing near-identical hashes: exactly one gets in, and every other caller is told about it.
pub async fn near_claims_race(c: Arc<dyn Coord>, ns: &str) {
    let index = format!("{ns}-race");
    let base = 0x5a5a_f0f0_3c3c_9999_u64;
    let tasks: Vec<_> = (0..24u32)
        .map(|i| {
            let (c, index) = (c.clone(), index.clone());
            // Each a different single bit away from the base: pairwise at most 2 bits apart.
            let hash = base ^ (1u64 << (i * 2 % 64));
            tokio::spawn(async move {
                let id = format!("i{i}");
                (id.clone(), c.claim_near(&index, hash.into(), &id, &id, 4, TTL).await.expect("near"))
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut told = Vec::new();
    for t in tasks {
        match t.await.expect("join") {
            (id, None) => winners.push(id),
            (_, Some(m)) => told.push(m.value),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one original: {winners:?}");
    assert!(told.iter().all(|v| *v == winners[0]), "everyone else points at it");
}

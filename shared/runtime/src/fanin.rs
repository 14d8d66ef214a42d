//! Fan-in: the stage that works on whole collections (clustering) learns that a collection is
//! complete when every image of it has either reached that stage or left its route before it.
//! Counting is a Redis tally in its own scope, so it is exactly-once per item; the
//! `collection.ready` message gets an id derived from job and collection, so however many
//! callers see the collection complete, the stage handles it once.

use sightline_coord::Coord;
use sightline_messages::CollectionReady;
use uuid::Uuid;

use crate::StageError;

/// The fan-in stage.
pub const FAN_IN_STAGE: &str = "cluster";

/// The progress scope of the fan-in barrier.
pub fn barrier_scope() -> String {
    format!("barrier:{FAN_IN_STAGE}")
}

/// The message id of a collection's `collection.ready` (the same for every publisher).
pub fn ready_message_id(job: Uuid, collection: &str) -> Uuid {
    Uuid::new_v5(&job, format!("collection.ready:{collection}").as_bytes())
}

/// Whether an image leaving its route at `stage` must be counted at the barrier: the route
/// has the fan-in stage and `stage` comes before it (or is not on the route, e.g. a failure).
pub fn counts_at_barrier(route: &[String], stage: &str) -> bool {
    let Some(fan_in) = route.iter().position(|s| s == FAN_IN_STAGE) else { return false };
    route.iter().position(|s| s == stage).is_none_or(|at| at < fan_in)
}

/// Counts `item` of `collection` as past the barrier. Returns the `collection.ready` body when
/// the collection is complete (on every call after completion, so a retried caller publishes
/// again and the derived id deduplicates).
pub async fn pass_barrier(
    coord: &dyn Coord,
    job: Uuid,
    item: u64,
    collection: &str,
    route: &[String],
) -> Result<Option<CollectionReady>, StageError> {
    let tally = coord.tally(&job.to_string(), &barrier_scope(), item, collection, "passed").await?;
    let complete = tally.collection_total > 0 && tally.collection_finished >= tally.collection_total;
    Ok(complete.then(|| CollectionReady { job_id: job, collection: collection.to_owned(), route: route.to_vec() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stages_before_the_fan_in_count() {
        let route: Vec<String> = ["ingest", "dedup", "embed", "cluster", "index"].map(String::from).to_vec();
        assert!(counts_at_barrier(&route, "ingest"));
        assert!(counts_at_barrier(&route, "embed"));
        assert!(!counts_at_barrier(&route, "cluster"));
        assert!(!counts_at_barrier(&route, "index"));
        let no_fan_in: Vec<String> = ["ingest", "dedup"].map(String::from).to_vec();
        assert!(!counts_at_barrier(&no_fan_in, "ingest"));
    }

    #[tokio::test]
    async fn the_last_item_completes_the_collection() {
        let coord = sightline_coord::MemoryCoord::new();
        let job = Uuid::new_v4();
        coord.job_start(&job.to_string(), "t", &[("c".to_owned(), 2)].into(), 0).await.expect("start");
        let route = vec!["ingest".to_owned(), "cluster".to_owned()];
        assert!(pass_barrier(&coord, job, 0, "c", &route).await.expect("pass").is_none());
        let ready = pass_barrier(&coord, job, 1, "c", &route).await.expect("pass").expect("complete");
        assert_eq!(ready.collection, "c");
        assert!(pass_barrier(&coord, job, 1, "c", &route).await.expect("repeat").is_some(), "a repeat publishes again");
        assert_eq!(ready_message_id(job, "c"), ready_message_id(job, "c"));
    }
}

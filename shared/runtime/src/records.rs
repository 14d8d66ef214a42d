//! Per-image records: where a job's results live, and how an item is finished.

use bytes::Bytes;
use sightline_blob::{BlobError, BlobStore};
use sightline_coord::{Coord, FINAL_SCOPE, Tally};
use sightline_messages::ItemRecord;
use uuid::Uuid;

use crate::StageError;

/// The key of an item's record: `jobs/<job>/records/<item, 10 digits>.json`.
pub fn record_key(job: Uuid, item: u64) -> String {
    format!("jobs/{job}/records/{item:010}.json")
}

/// The prefix under which a job's records live.
pub fn records_prefix(job: Uuid) -> String {
    format!("jobs/{job}/records/")
}

/// Stores `record` and counts the item as finished in the job's progress. Idempotent: a
/// repeat overwrites the record and updates the outcome without counting twice.
pub async fn finish(blob: &dyn BlobStore, coord: &dyn Coord, record: &ItemRecord) -> Result<Tally, StageError> {
    let json = serde_json::to_vec_pretty(record).map_err(|e| StageError::permanent(format!("encode record: {e}")))?;
    blob.put(&record_key(record.job_id, record.item), Bytes::from(json)).await?;
    let tally = coord
        .tally(&record.job_id.to_string(), FINAL_SCOPE, record.item, &record.collection, record.outcome.as_str())
        .await?;
    Ok(tally)
}

/// Reads every record of `job`, in item order.
pub async fn read_records(blob: &dyn BlobStore, job: Uuid) -> Result<Vec<ItemRecord>, BlobError> {
    let keys = blob.list(&records_prefix(job)).await?;
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(32) {
        let reads = chunk.iter().map(|k| blob.get(k));
        for (key, bytes) in chunk.iter().zip(futures::future::join_all(reads).await) {
            let bytes = bytes?;
            let record: ItemRecord = serde_json::from_slice(&bytes).map_err(|e| BlobError::Refused {
                op: "parse record",
                key: key.clone(),
                detail: e.to_string(),
            })?;
            out.push(record);
        }
    }
    Ok(out)
}

//! Blob storage: S3 through aws-sdk-s3 for the distributed mode, a local folder for the
//! embedded mode. Images are stored content-addressed and write-once; one conformance suite
//! ([`conformance`]) runs against both backends.

pub mod conformance;
mod local;
mod s3;
pub mod switchable;

use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use thiserror::Error;

pub use local::LocalStore;
pub use s3::{S3Config, S3Store};
pub use switchable::Switchable;

/// What can go wrong with storage.
#[derive(Debug, Error)]
pub enum BlobError {
    /// No object under the key.
    #[error("no object at {0}")]
    NotFound(String),
    /// Storage unreachable or overloaded; try again later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Refused for good (bad credentials, bad key, missing bucket).
    #[error("storage refused {op} on {key}: {detail}")]
    Refused {
        /// The operation.
        op: &'static str,
        /// The key.
        key: String,
        /// The explanation.
        detail: String,
    },
}

impl BlobError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, BlobError::Unavailable(_))
    }
}

/// Whether a write-once put stored the bytes or found them there already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// This call stored the object.
    Created,
    /// An object was already there; it was left untouched.
    AlreadyExists,
}

/// Size of a stored object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobMeta {
    /// Bytes.
    pub size: u64,
}

/// Object storage as the pipeline uses it.
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Stores `bytes` at `key`, replacing what is there (records, indexes).
    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), BlobError>;
    /// Stores `bytes` at `key` only if nothing is there (S3 `If-None-Match: *`), so concurrent
    /// writers never clobber each other.
    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<PutOutcome, BlobError>;
    /// Reads the object at `key`.
    async fn get(&self, key: &str) -> Result<Bytes, BlobError>;
    /// The object's size, or `None` when absent.
    async fn head(&self, key: &str) -> Result<Option<BlobMeta>, BlobError>;
    /// Every key starting with `prefix`, in lexicographic order.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError>;
    /// Deletes the object at `key`; deleting a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<(), BlobError>;
    /// Whether storage is reachable.
    async fn health(&self) -> Result<(), BlobError>;
}

/// The content address of `bytes`: `images/sha256/<hex>`, and the hex digest.
pub fn content_key(bytes: &[u8]) -> (String, String) {
    let hex = hex::encode(Sha256::digest(bytes));
    (format!("images/sha256/{hex}"), hex)
}

/// Stores `bytes` under their content address, write-once. Returns the key, the hex digest
/// and whether this call stored them.
pub async fn put_content(store: &dyn BlobStore, bytes: Bytes) -> Result<(String, String, PutOutcome), BlobError> {
    let (key, hex) = content_key(&bytes);
    let outcome = store.put_if_absent(&key, bytes).await?;
    Ok((key, hex, outcome))
}

/// A name (a collection, say) as one key segment: its bytes in hex, so any name is a safe,
/// reversible segment with no `/`, `..` or odd characters.
pub fn key_segment(name: &str) -> String {
    hex::encode(name.as_bytes())
}

/// Checks an object key: non-empty, relative, no `..` segments, no control characters.
pub fn validate_key(key: &str) -> Result<(), BlobError> {
    let bad = key.is_empty()
        || key.starts_with('/')
        || key.split('/').any(|seg| seg == ".." || seg == ".")
        || key.chars().any(char::is_control)
        || key.len() > 1024;
    if bad {
        return Err(BlobError::Refused {
            op: "validate",
            key: key.to_owned(),
            detail: "invalid object key".to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_segments_are_safe_for_any_name() {
        assert_eq!(key_segment("ab/.."), "61622f2e2e");
        assert!(validate_key(&format!("index/{}/x", key_segment("../../etc"))).is_ok());
    }

    #[test]
    fn content_key_is_sha256() {
        let (key, hex) = content_key(b"abc");
        assert_eq!(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(key, format!("images/sha256/{hex}"));
    }

    #[test]
    fn keys_are_validated() {
        for bad in ["", "/abs", "a/../b", "a/./b", "a\nb"] {
            assert!(validate_key(bad).is_err(), "{bad:?} accepted");
        }
        validate_key("images/sha256/ab").expect("good key");
    }
}

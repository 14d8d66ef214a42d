//! A store that can be switched off, for outage tests: while off, every call (health included)
//! fails as an unreachable server does, with [`BlobError::Unavailable`]; while on, it passes
//! through to the store it wraps.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

use crate::{BlobError, BlobMeta, BlobStore, PutOutcome};

/// What an unreachable store answers (an address included, as a real client error would).
pub const REFUSED: &str = "connect 10.1.2.3:8333: connection refused";

/// `inner`, unreachable while its switch is off.
pub struct Switchable {
    inner: Arc<dyn BlobStore>,
    up: Arc<AtomicBool>,
}

impl Switchable {
    /// `inner` behind a switch, on when `up`; the switch is returned to flip it.
    pub fn new(inner: Arc<dyn BlobStore>, up: bool) -> (Self, Arc<AtomicBool>) {
        let switch = Arc::new(AtomicBool::new(up));
        (Self { inner, up: switch.clone() }, switch)
    }

    fn check(&self, op: &str, key: &str) -> Result<(), BlobError> {
        if self.up.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(BlobError::Unavailable(format!("{op} {key}: {REFUSED}")))
        }
    }
}

#[async_trait]
impl BlobStore for Switchable {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), BlobError> {
        self.check("put", key)?;
        self.inner.put(key, bytes).await
    }
    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<PutOutcome, BlobError> {
        self.check("put", key)?;
        self.inner.put_if_absent(key, bytes).await
    }
    async fn get(&self, key: &str) -> Result<Bytes, BlobError> {
        self.check("get", key)?;
        self.inner.get(key).await
    }
    async fn head(&self, key: &str) -> Result<Option<BlobMeta>, BlobError> {
        self.check("head", key)?;
        self.inner.head(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        self.check("list", prefix)?;
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        self.check("delete", key)?;
        self.inner.delete(key).await
    }
    async fn health(&self) -> Result<(), BlobError> {
        self.check("health", "")?;
        self.inner.health().await
    }
}

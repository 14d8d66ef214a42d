//! The last object a stage fetched, kept in a temporary file: for work that needs a file (a
//! subprocess such as FFmpeg) and arrives in parts (the segments of one video reaching the same
//! replica fetch it once).

use std::io::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Mutex;

use crate::{Ctx, StageError};

/// A one-object cache of a stored object in a local temporary file (deleted when replaced and
/// no caller holds it any more).
#[derive(Default)]
pub struct LastObject {
    cached: Mutex<Option<(String, Arc<tempfile::TempPath>)>>,
}

impl std::fmt::Debug for LastObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LastObject").finish_non_exhaustive()
    }
}

impl LastObject {
    /// The object `key` (whose content hash is `sha256`) in a local file: the cached one when it
    /// is the same content, else fetched and written (on the blocking pool).
    pub async fn file(&self, ctx: &Ctx, key: &str, sha256: &str) -> Result<Arc<tempfile::TempPath>, StageError> {
        let mut cached = self.cached.lock().await;
        if let Some((_, file)) = cached.as_ref().filter(|(sha, _)| sha == sha256) {
            return Ok(Arc::clone(file));
        }
        let bytes: Bytes = ctx.blob.get(key).await?;
        let file = ctx
            .blocking(move || -> std::io::Result<tempfile::TempPath> {
                let mut f = tempfile::Builder::new().prefix("sightline-object-").tempfile()?;
                f.write_all(&bytes)?;
                f.flush()?;
                Ok(f.into_temp_path())
            })
            .await?
            .map_err(|e| StageError::transient(format!("write {key} to a temporary file: {e}")))?;
        let file = Arc::new(file);
        *cached = Some((sha256.to_owned(), Arc::clone(&file)));
        Ok(file)
    }
}

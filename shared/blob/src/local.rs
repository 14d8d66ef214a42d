//! A local folder as blob storage (embedded mode).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use crate::{BlobError, BlobMeta, BlobStore, PutOutcome, validate_key};

/// Blob storage in a folder: one file per key. Writes go to a temporary file first, then
/// are moved (or hard-linked, for write-once puts) into place, so readers never see a
/// partial object.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

fn io_err(op: &'static str, key: &str, e: std::io::Error) -> BlobError {
    match e.kind() {
        ErrorKind::NotFound => BlobError::NotFound(key.to_owned()),
        ErrorKind::PermissionDenied | ErrorKind::InvalidInput => {
            BlobError::Refused { op, key: key.to_owned(), detail: e.to_string() }
        }
        _ => BlobError::Unavailable(format!("{op} {key}: {e}")),
    }
}

impl LocalStore {
    /// Storage rooted at `root` (created if missing).
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, BlobError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|e| io_err("create root", &root.display().to_string(), e))?;
        Ok(Self { root })
    }

    /// The folder the objects live in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf, BlobError> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }

    async fn stage(&self, key: &str, path: &Path, bytes: Bytes) -> Result<tempfile::TempPath, BlobError> {
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        let key = key.to_owned();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir).map_err(|e| io_err("create dir", &key, e))?;
            let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(|e| io_err("write", &key, e))?;
            std::io::Write::write_all(&mut tmp, &bytes).map_err(|e| io_err("write", &key, e))?;
            Ok(tmp.into_temp_path())
        })
        .await
        .map_err(|e| BlobError::Unavailable(format!("write task: {e}")))?
    }
}

#[async_trait]
impl BlobStore for LocalStore {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), BlobError> {
        let path = self.path(key)?;
        let tmp = self.stage(key, &path, bytes).await?;
        tmp.persist(&path).map_err(|e| io_err("put", key, e.error))?;
        Ok(())
    }

    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<PutOutcome, BlobError> {
        let path = self.path(key)?;
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Ok(PutOutcome::AlreadyExists);
        }
        let tmp = self.stage(key, &path, bytes).await?;
        // A hard link fails if the target exists: the atomic "create if absent".
        match std::fs::hard_link(&tmp, &path) {
            Ok(()) => Ok(PutOutcome::Created),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(PutOutcome::AlreadyExists),
            Err(e) => Err(io_err("put_if_absent", key, e)),
        }
    }

    async fn get(&self, key: &str) -> Result<Bytes, BlobError> {
        let path = self.path(key)?;
        tokio::fs::read(&path).await.map(Bytes::from).map_err(|e| io_err("get", key, e))
    }

    async fn head(&self, key: &str) -> Result<Option<BlobMeta>, BlobError> {
        let path = self.path(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => Ok(Some(BlobMeta { size: m.len() })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("head", key, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            // Walk only the folder the prefix points into.
            let start = match prefix.rfind('/') {
                Some(i) => root.join(&prefix[..i]),
                None => root.clone(),
            };
            let mut stack = vec![start];
            while let Some(dir) = stack.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_err("list", &prefix, e)),
                };
                for entry in entries {
                    let entry = entry.map_err(|e| io_err("list", &prefix, e))?;
                    let path = entry.path();
                    let file_type = entry.file_type().map_err(|e| io_err("list", &prefix, e))?;
                    if file_type.is_dir() {
                        stack.push(path);
                    } else if let Ok(rel) = path.strip_prefix(&root) {
                        let key = rel.to_string_lossy().replace('\\', "/");
                        let is_temp = rel.file_name().is_some_and(|n| n.to_string_lossy().starts_with(".tmp"));
                        if key.starts_with(&prefix) && !is_temp {
                            out.push(key);
                        }
                    }
                }
            }
            out.sort();
            Ok(out)
        })
        .await
        .map_err(|e| BlobError::Unavailable(format!("list task: {e}")))?
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("delete", key, e)),
        }
    }

    async fn health(&self) -> Result<(), BlobError> {
        tokio::fs::metadata(&self.root).await.map(|_| ()).map_err(|e| io_err("health", "/", e))
    }
}

//! The blob conformance suite against a local folder, and against S3 (`S3_ENDPOINT`,
//! `S3_BUCKET`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`; started by
//! `deploy/local/services.sh`) with `--features integration`.

use std::sync::Arc;

use sightline_blob::{BlobStore, conformance as c};

macro_rules! suite {
    ($module:ident, $make:expr) => {
        mod $module {
            use super::*;

            async fn prefix_and_store() -> (String, Arc<dyn BlobStore>, Option<tempfile::TempDir>) {
                let prefix = format!("conformance/{}", uuid_like());
                let (store, dir) = $make.await;
                (prefix, store, dir)
            }

            #[tokio::test]
            async fn put_get_head_delete() {
                let (p, s, _d) = prefix_and_store().await;
                c::put_get_head_delete(s.as_ref(), &p).await;
            }

            #[tokio::test]
            async fn put_if_absent_is_write_once() {
                let (p, s, _d) = prefix_and_store().await;
                c::put_if_absent_is_write_once(s.clone(), &p).await;
            }

            #[tokio::test]
            async fn content_addressing() {
                let (p, s, _d) = prefix_and_store().await;
                c::content_addressing(s.as_ref(), &p).await;
            }

            #[tokio::test]
            async fn list_by_prefix() {
                let (p, s, _d) = prefix_and_store().await;
                c::list_by_prefix(s.as_ref(), &p).await;
            }

            #[tokio::test]
            async fn invalid_keys_are_refused() {
                let (p, s, _d) = prefix_and_store().await;
                c::invalid_keys_are_refused(s.as_ref(), &p).await;
            }
        }
    };
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{}-{nanos}", std::process::id())
}

async fn local() -> (Arc<dyn BlobStore>, Option<tempfile::TempDir>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = sightline_blob::LocalStore::new(dir.path()).expect("local store");
    (Arc::new(store), Some(dir))
}

suite!(local_folder, local());

#[cfg(feature = "integration")]
async fn s3() -> (Arc<dyn BlobStore>, Option<tempfile::TempDir>) {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
    let config = sightline_blob::S3Config {
        endpoint: Some(env("S3_ENDPOINT", "http://127.0.0.1:8333")),
        bucket: env("S3_BUCKET", "sightline"),
        region: env("S3_REGION", "us-east-1"),
        credentials: Some((env("AWS_ACCESS_KEY_ID", "sightline"), env("AWS_SECRET_ACCESS_KEY", "sightline-secret"))),
        path_style: true,
    };
    let store = sightline_blob::S3Store::new(&config).await.expect("s3 client");
    store.ensure_bucket().await.expect("bucket");
    (Arc::new(store), None)
}

#[cfg(feature = "integration")]
suite!(s3, s3());

//! The blob conformance suite against a local folder, and against S3 (`S3_ENDPOINT`,
//! `S3_BUCKET`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`; started by
//! `deploy/local/services.sh`) with `--features integration`.

use std::sync::Arc;

use sightline_blob::{BlobStore, conformance as c};

/// One test per check of the suite, against the store `$make` makes (each under a fresh prefix).
macro_rules! suite {
    ($module:ident, $make:expr) => {
        mod $module {
            use super::*;

            suite!(@checks $make; put_get_head_delete, put_if_absent_is_write_once, content_addressing,
                list_by_prefix, invalid_keys_are_refused);
        }
    };
    (@checks $make:expr; $($check:ident),+) => {
        $(
            #[tokio::test]
            async fn $check() {
                let (store, _dir): (Arc<dyn BlobStore>, Option<tempfile::TempDir>) = $make.await;
                c::$check(store, &format!("conformance/{}", uuid_like())).await;
            }
        )+
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

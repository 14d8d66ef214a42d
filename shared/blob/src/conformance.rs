//! One conformance suite for every [`BlobStore`]: `tests/conformance.rs` runs it against the
//! local folder always and against S3 with the `integration` feature.

use std::sync::Arc;

use bytes::Bytes;

use crate::{BlobError, BlobStore, PutOutcome, content_key, put_content};

/// Put, get, head, overwrite and delete under `prefix`.
pub async fn put_get_head_delete(store: Arc<dyn BlobStore>, prefix: &str) {
    let key = format!("{prefix}/records/a.json");
    assert!(store.head(&key).await.expect("head").is_none());
    assert!(matches!(store.get(&key).await, Err(BlobError::NotFound(_))), "get of a missing key is NotFound");
    store.put(&key, Bytes::from_static(b"{\"v\":1}")).await.expect("put");
    assert_eq!(store.get(&key).await.expect("get"), Bytes::from_static(b"{\"v\":1}"));
    assert_eq!(store.head(&key).await.expect("head").expect("present").size, 7);
    store.put(&key, Bytes::from_static(b"{\"v\":22}")).await.expect("overwrite");
    assert_eq!(store.get(&key).await.expect("get"), Bytes::from_static(b"{\"v\":22}"));
    store.delete(&key).await.expect("delete");
    assert!(store.head(&key).await.expect("head").is_none());
    store.delete(&key).await.expect("deleting a missing key is fine");
}

/// Write-once puts never clobber, even when racing.
pub async fn put_if_absent_is_write_once(store: Arc<dyn BlobStore>, prefix: &str) {
    let key = format!("{prefix}/once/x");
    assert_eq!(store.put_if_absent(&key, Bytes::from_static(b"first")).await.expect("put"), PutOutcome::Created);
    assert_eq!(store.put_if_absent(&key, Bytes::from_static(b"second")).await.expect("put"), PutOutcome::AlreadyExists);
    assert_eq!(store.get(&key).await.expect("get"), Bytes::from_static(b"first"), "second write clobbered the first");

    let raced = format!("{prefix}/once/raced");
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (store, raced) = (store.clone(), raced.clone());
            tokio::spawn(async move { store.put_if_absent(&raced, Bytes::from(format!("writer-{i}"))).await })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        if t.await.expect("join").expect("put") == PutOutcome::Created {
            created += 1;
        }
    }
    assert_eq!(created, 1, "exactly one racing writer creates the object");
    let body = store.get(&raced).await.expect("get");
    assert!(body.starts_with(b"writer-"));
}

/// Content-addressed keys are the SHA-256 of the bytes; storing twice stores once.
pub async fn content_addressing(store: Arc<dyn BlobStore>, _prefix: &str) {
    let bytes = Bytes::from(format!("image bytes {}", std::process::id()));
    let (key, hex, outcome) = put_content(store.as_ref(), bytes.clone()).await.expect("put content");
    assert_eq!((key.clone(), hex.clone()), content_key(&bytes));
    let (_, _, again) = put_content(store.as_ref(), bytes.clone()).await.expect("put content again");
    assert_eq!(again, PutOutcome::AlreadyExists);
    assert!(outcome == PutOutcome::Created || outcome == PutOutcome::AlreadyExists);
    assert_eq!(store.get(&key).await.expect("get"), bytes);
    store.delete(&key).await.expect("delete");
}

/// Listing returns exactly the keys under the prefix, sorted, and nothing from a sibling prefix.
pub async fn list_by_prefix(store: Arc<dyn BlobStore>, prefix: &str) {
    let mut expected: Vec<String> =
        (0..1100u32).filter(|i| i.is_multiple_of(100) || *i >= 1090).map(|i| format!("{prefix}/list/{i:04}")).collect();
    for key in expected.iter().rev() {
        store.put(key, Bytes::from_static(b"x")).await.expect("put");
    }
    expected.sort();
    store.put(&format!("{prefix}/listx"), Bytes::from_static(b"y")).await.expect("put sibling");
    let listed = store.list(&format!("{prefix}/list/")).await.expect("list");
    assert_eq!(listed, expected);
    assert!(store.list(&format!("{prefix}/nothing/")).await.expect("list").is_empty());
}

/// Invalid keys are refused, not written outside the store.
pub async fn invalid_keys_are_refused(store: Arc<dyn BlobStore>, _prefix: &str) {
    for key in ["../escape", "/abs", "a/../../b"] {
        assert!(matches!(store.put(key, Bytes::from_static(b"x")).await, Err(BlobError::Refused { .. })), "{key}");
    }
}

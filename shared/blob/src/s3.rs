//! S3-compatible storage through aws-sdk-s3.

use std::fmt;

use async_trait::async_trait;
use aws_sdk_s3::config::{Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use crate::{BlobError, BlobMeta, BlobStore, PutOutcome, validate_key};

/// How to reach an S3-compatible service.
#[derive(Clone)]
pub struct S3Config {
    /// Custom endpoint (`http://127.0.0.1:8333`), or `None` for AWS itself.
    pub endpoint: Option<String>,
    /// The bucket every key lives in.
    pub bucket: String,
    /// Region name (`us-east-1` for most S3-compatible servers).
    pub region: String,
    /// Static access key and secret; `None` uses the SDK's environment chain
    /// (`AWS_ACCESS_KEY_ID`..., profiles, web identity).
    pub credentials: Option<(String, String)>,
    /// Path-style addressing (`endpoint/bucket/key`); needed on loopback servers.
    pub path_style: bool,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("credentials", &self.credentials.as_ref().map(|(k, _)| format!("{k}:<redacted>")))
            .field("path_style", &self.path_style)
            .finish()
    }
}

/// Blob storage in one S3 bucket.
#[derive(Clone, Debug)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
}

fn classify<E, R>(op: &'static str, key: &str, err: SdkError<E, R>) -> BlobError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: fmt::Debug,
    SdkError<E, R>: std::error::Error,
{
    match &err {
        SdkError::ConstructionFailure(_) => BlobError::Refused {
            op,
            key: key.to_owned(),
            detail: format!("{}", aws_sdk_s3::error::DisplayErrorContext(&err)),
        },
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            BlobError::Unavailable(format!("{op} {key}: {}", aws_sdk_s3::error::DisplayErrorContext(&err)))
        }
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("");
            let detail = format!("{code}: {}", se.err().message().unwrap_or(""));
            match code {
                "NoSuchKey" | "NotFound" => BlobError::NotFound(key.to_owned()),
                "SlowDown" | "ServiceUnavailable" | "InternalError" | "RequestTimeout" => {
                    BlobError::Unavailable(format!("{op} {key}: {detail}"))
                }
                _ => BlobError::Refused { op, key: key.to_owned(), detail },
            }
        }
        _ => BlobError::Unavailable(format!("{op} {key}: {}", aws_sdk_s3::error::DisplayErrorContext(&err))),
    }
}

fn http_status<E, R: HasStatus>(err: &SdkError<E, R>) -> Option<u16> {
    match err {
        SdkError::ServiceError(se) => Some(se.raw().status_code()),
        SdkError::ResponseError(re) => Some(re.raw().status_code()),
        _ => None,
    }
}

trait HasStatus {
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

impl S3Store {
    /// Connects (lazily) to the bucket described by `config`.
    pub async fn new(config: &S3Config) -> Result<Self, BlobError> {
        let mut loader =
            aws_config::defaults(aws_config::BehaviorVersion::latest()).region(Region::new(config.region.clone()));
        if let Some((key, secret)) = &config.credentials {
            loader = loader.credentials_provider(Credentials::new(key, secret, None, None, "sightline-static"));
        }
        let shared = loader.load().await;
        let mut builder = aws_sdk_s3::config::Builder::from(&shared).force_path_style(config.path_style);
        if let Some(endpoint) = &config.endpoint {
            // S3-compatible servers reject the SDK's default aws-chunked CRC32 bodies.
            builder = builder
                .endpoint_url(endpoint)
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        }
        Ok(Self { client: aws_sdk_s3::Client::from_conf(builder.build()), bucket: config.bucket.clone() })
    }

    /// Creates the bucket if it does not exist (local set-up and tests).
    pub async fn ensure_bucket(&self) -> Result<(), BlobError> {
        if self.client.head_bucket().bucket(&self.bucket).send().await.is_ok() {
            return Ok(());
        }
        match self.client.create_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.code(), Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")) => Ok(()),
            Err(e) => Err(classify("create bucket", &self.bucket, e)),
        }
    }
}

#[async_trait]
impl BlobStore for S3Store {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), BlobError> {
        validate_key(key)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("put", key, e))
    }

    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<PutOutcome, BlobError> {
        validate_key(key)?;
        let result = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .if_none_match("*")
            .body(ByteStream::from(bytes))
            .send()
            .await;
        match result {
            Ok(_) => Ok(PutOutcome::Created),
            // 412: the object exists; 409: a concurrent conditional write won the race.
            Err(e) if matches!(http_status(&e), Some(412 | 409)) => Ok(PutOutcome::AlreadyExists),
            Err(e) => Err(classify("put_if_absent", key, e)),
        }
    }

    async fn get(&self, key: &str) -> Result<Bytes, BlobError> {
        validate_key(key)?;
        let out = self.client.get_object().bucket(&self.bucket).key(key).send().await.map_err(|e| {
            if http_status(&e) == Some(404) { BlobError::NotFound(key.to_owned()) } else { classify("get", key, e) }
        })?;
        let data = out.body.collect().await.map_err(|e| BlobError::Unavailable(format!("read {key}: {e}")))?;
        Ok(data.into_bytes())
    }

    async fn head(&self, key: &str) -> Result<Option<BlobMeta>, BlobError> {
        validate_key(key)?;
        match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => Ok(Some(BlobMeta { size: out.content_length().unwrap_or(0).max(0) as u64 })),
            Err(e) if http_status(&e) == Some(404) => Ok(None),
            Err(e) => Err(classify("head", key, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        let mut keys = Vec::new();
        let mut pages = self.client.list_objects_v2().bucket(&self.bucket).prefix(prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("list", prefix, e))?;
            keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        }
        keys.sort();
        Ok(keys)
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        validate_key(key)?;
        match self.client.delete_object().bucket(&self.bucket).key(key).send().await {
            Ok(_) => Ok(()),
            Err(e) if http_status(&e) == Some(404) => Ok(()),
            Err(e) => Err(classify("delete", key, e)),
        }
    }

    async fn health(&self) -> Result<(), BlobError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("head bucket", &self.bucket, e))
    }
}

//! The events bucket on S3: request bodies too large for their events item
//! (docs/architecture.md, "Large bodies"). Objects are written whole and read whole; the bucket
//! encrypts them (SSE), blocks public access and expires them after RAW_RETENTION_DAYS.

use aws_config::SdkConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;

use crate::adapters::aws::unavailable;
use crate::limits::MAX_BODY_OBJECT_BYTES;
use crate::ports::{BlobFuture, BlobStore, StoreError};

#[derive(Clone)]
pub struct S3BlobStore {
    client: Client,
    bucket: String,
}

impl S3BlobStore {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        S3BlobStore {
            client,
            bucket: bucket.into(),
        }
    }

    /// A client for `sdk`. With an endpoint set (an emulator) requests name the bucket in the
    /// path: an emulator on 127.0.0.1 has no host name per bucket.
    pub fn client(sdk: &SdkConfig) -> Client {
        let config = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(sdk.endpoint_url().is_some())
            .build();
        Client::from_conf(config)
    }
}

impl BlobStore for S3BlobStore {
    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>) -> BlobFuture<'a, ()> {
        Box::pin(async move {
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .content_type("application/octet-stream")
                .body(ByteStream::from(bytes))
                .send()
                .await
                .map(drop)
                .map_err(|err| unavailable("PutObject", &err))
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BlobFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let out = match self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
            {
                Ok(out) => out,
                Err(SdkError::ServiceError(e)) if e.err().is_no_such_key() => return Ok(None),
                Err(err) => return Err(unavailable("GetObject", &err)),
            };
            // Nothing callhook writes is larger: a larger object is not read into memory.
            let length = out.content_length().unwrap_or(i64::MAX);
            if u64::try_from(length).map_or(true, |n| n > MAX_BODY_OBJECT_BYTES) {
                return Err(StoreError::Corrupt(
                    key.to_owned(),
                    format!("object of {length} bytes is larger than any body"),
                ));
            }
            let bytes = out.body.collect().await.map_err(|e| {
                StoreError::Unavailable(format!("GetObject: reading the body: {e}"))
            })?;
            Ok(Some(bytes.into_bytes().to_vec()))
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BlobFuture<'a, ()> {
        Box::pin(async move {
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .map(drop)
                .map_err(|err| unavailable("DeleteObject", &err))
        })
    }
}

//! The blob store: request bodies too large to keep in their events item (the events bucket on
//! S3).

use std::future::Future;
use std::pin::Pin;

use super::StoreError;

/// What a blob store's calls return. Boxed, so the events adapters can hold any blob store
/// (S3, or the in-memory one in tests) without a type parameter in every function's types.
pub type BlobFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Objects by key, written and read whole. Any failure to reach the store is
/// [`StoreError::Unavailable`]: the caller answers "retry later".
pub trait BlobStore: Send + Sync {
    /// Writes `bytes` under `key`, replacing whatever was there.
    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>) -> BlobFuture<'a, ()>;

    /// The object under `key`; `None` when there is none.
    fn get<'a>(&'a self, key: &'a str) -> BlobFuture<'a, Option<Vec<u8>>>;

    /// Removes the object under `key`; nothing when there is none.
    fn delete<'a>(&'a self, key: &'a str) -> BlobFuture<'a, ()>;
}

/// A shared store is a store: tests keep a handle to look inside the one an adapter holds.
impl<B: BlobStore + ?Sized> BlobStore for std::sync::Arc<B> {
    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>) -> BlobFuture<'a, ()> {
        (**self).put(key, bytes)
    }

    fn get<'a>(&'a self, key: &'a str) -> BlobFuture<'a, Option<Vec<u8>>> {
        (**self).get(key)
    }

    fn delete<'a>(&'a self, key: &'a str) -> BlobFuture<'a, ()> {
        (**self).delete(key)
    }
}

//! A blob store in memory, with S3's semantics: a put replaces, a get of a missing key is
//! `None`, a delete of a missing key succeeds.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::ports::{BlobFuture, BlobStore, StoreError};

/// Objects by key; `fail` makes every call answer "unavailable". Counts the puts, so tests can
/// tell whether a body went to the store at all.
#[derive(Default)]
pub struct MemoryBlobStore {
    pub objects: Mutex<BTreeMap<String, Vec<u8>>>,
    pub fail: AtomicBool,
    pub puts: AtomicUsize,
}

impl MemoryBlobStore {
    pub fn keys(&self) -> Vec<String> {
        self.objects.lock().unwrap().keys().cloned().collect()
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected failure".into()));
        }
        Ok(())
    }
}

impl BlobStore for MemoryBlobStore {
    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>) -> BlobFuture<'a, ()> {
        Box::pin(async move {
            self.check()?;
            self.puts.fetch_add(1, Ordering::SeqCst);
            self.objects.lock().unwrap().insert(key.to_owned(), bytes);
            Ok(())
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BlobFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            self.check()?;
            Ok(self.objects.lock().unwrap().get(key).cloned())
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BlobFuture<'a, ()> {
        Box::pin(async move {
            self.check()?;
            self.objects.lock().unwrap().remove(key);
            Ok(())
        })
    }
}

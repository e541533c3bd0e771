//! Request bodies kept apart from their events item (docs/architecture.md, "Large bodies"):
//! when the request (header line and body) packed passes [`BODY_IN_ITEM_BYTES`], the body goes to
//! the blob store (the events bucket) before the item is written, and the item keeps the
//! object's key and the body's SHA-256 instead. Every reader gets the body back through
//! [`read`], which never returns bytes that do not match that hash.
//!
//! The key is a function of the event id and the body's hash: a retry with the same body
//! writes the same object again (nothing is left behind), and a copy whose body differs gets
//! its own key, which ingest removes once the dedupe write has found the first copy.

use sha2::{Digest, Sha256};

use crate::adapters::packing;
use crate::limits::BODY_IN_ITEM_BYTES;
use crate::ports::{BlobStore, StoreError};

/// Whether a request stays whole in its item: packed, header line and body, it is at most
/// [`BODY_IN_ITEM_BYTES`]. Above that, an S3 PUT and a GET per read cost less than the write
/// units of a larger item (written once, rewritten when marked).
pub fn stays_in_item(packed_request_bytes: usize) -> bool {
    packed_request_bytes <= BODY_IN_ITEM_BYTES
}

/// A body kept apart: where it is and what it must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyObject {
    pub key: String,
    /// SHA-256 of the body exactly as received (not of the packed object).
    pub sha256: [u8; 32],
}

impl BodyObject {
    /// The object for `body` of event `event_id`.
    pub fn of(event_id: &str, body: &[u8]) -> Self {
        let sha256: [u8; 32] = Sha256::digest(body).into();
        BodyObject {
            key: object_key(event_id, &sha256),
            sha256,
        }
    }
}

/// `{provider}/{sha256(event id)}/{sha256(body)}`, in hex: the same for every copy of one
/// event with the same bytes, free of the characters an event id may hold, and listed by
/// provider.
pub fn object_key(event_id: &str, body_sha256: &[u8; 32]) -> String {
    let provider = event_id
        .split_once('#')
        .map(|(provider, _)| provider)
        .filter(|p| {
            !p.is_empty()
                && p.len() <= 32
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
        .unwrap_or("other");
    format!(
        "{provider}/{}/{}",
        hex::encode(Sha256::digest(event_id.as_bytes())),
        hex::encode(body_sha256)
    )
}

/// The body stored under `key`, exactly as received: unpacked and checked against `sha256`.
/// `None` when there is no such object. An object that does not unpack or does not match the
/// hash is [`StoreError::Corrupt`], never served.
pub async fn read(
    blobs: &dyn BlobStore,
    event_id: &str,
    key: &str,
    sha256: &[u8],
) -> Result<Option<Vec<u8>>, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(event_id.to_owned(), what.to_owned());
    let Some(packed) = blobs.get(key).await? else {
        return Ok(None);
    };
    let body = packing::unpack(&packed).map_err(|e| corrupt(&format!("body object: {e}")))?;
    if Sha256::digest(&body).as_slice() != sha256 {
        return Err(corrupt("body object does not match its SHA-256"));
    }
    Ok(Some(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MemoryBlobStore;

    #[test]
    fn a_request_stays_in_its_item_up_to_the_threshold() {
        assert_eq!(BODY_IN_ITEM_BYTES, 4096);
        assert!(stays_in_item(0));
        assert!(stays_in_item(4096));
        assert!(!stays_in_item(4097));
        assert!(!stays_in_item(usize::MAX));
    }

    #[test]
    fn keys_follow_the_event_and_the_bytes() {
        let a = BodyObject::of("retell#call_1#call_ended", b"body");
        assert_eq!(a, BodyObject::of("retell#call_1#call_ended", b"body"));
        assert!(a.key.starts_with("retell/"), "{}", a.key);
        assert_eq!(a.key.len(), "retell/".len() + 64 + 1 + 64);
        assert_eq!(a.sha256, <[u8; 32]>::from(Sha256::digest(b"body")));
        // Another body of the same event, or the same body of another event: another key.
        assert_ne!(
            a.key,
            BodyObject::of("retell#call_1#call_ended", b"other").key
        );
        assert_ne!(
            a.key,
            BodyObject::of("retell#call_2#call_ended", b"body").key
        );
        // Whatever the id holds, the key is a plain path.
        let odd = BodyObject::of("../Weird Provider#a/b?c", b"x");
        assert!(odd.key.starts_with("other/"), "{}", odd.key);
        assert!(!odd.key.contains(".."));
    }

    #[tokio::test]
    async fn a_body_is_read_back_only_when_it_matches_its_hash() {
        let blobs = MemoryBlobStore::default();
        let body = br#"{"event":"call_ended","call":{"transcript":"hello"}}"#.repeat(100);
        let object = BodyObject::of("retell#c#call_ended", &body);
        blobs.put(&object.key, packing::pack(&body)).await.unwrap();
        let read_back = read(&blobs, "retell#c#call_ended", &object.key, &object.sha256).await;
        assert_eq!(read_back.unwrap(), Some(body.clone()));

        // Missing: None, for the caller to judge (gone past retention, or lost).
        let missing = read(&blobs, "retell#c#call_ended", "retell/none", &object.sha256).await;
        assert_eq!(missing.unwrap(), None);

        // Tampered: one byte changed and packed again, or the packing broken.
        let mut changed = body.clone();
        changed[10] ^= 1;
        blobs
            .put(&object.key, packing::pack(&changed))
            .await
            .unwrap();
        let err = read(&blobs, "retell#c#call_ended", &object.key, &object.sha256)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt(id, what) if id == "retell#c#call_ended" && what.contains("SHA-256")),
            "{err}"
        );
        blobs.put(&object.key, vec![1, 2, 3]).await.unwrap();
        let err = read(&blobs, "retell#c#call_ended", &object.key, &object.sha256)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(..)), "{err}");

        // The store down: unavailable, so the caller retries.
        blobs.fail.store(true, std::sync::atomic::Ordering::SeqCst);
        let err = read(&blobs, "retell#c#call_ended", &object.key, &object.sha256)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    }
}

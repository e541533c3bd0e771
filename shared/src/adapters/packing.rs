//! How stored bodies and call records are kept small: zstd with a dictionary made of real
//! provider bodies (`dictionary-v1.bin`, from `tools/make-dictionary.py`). A webhook body of
//! 1.5–3 KB shares most of its bytes (field names, enumerations, URLs) with the dictionary, so
//! it packs to a few hundred bytes: under DynamoDB's 1 KB write unit, with its metadata.
//!
//! A packed value starts with one byte naming its format, so the format can change without
//! rewriting what is stored: `0` the bytes as they are, `1` zstd with dictionary v1. A
//! dictionary is never changed once released; a new one gets the next number.

use std::cell::RefCell;
use std::sync::OnceLock;

use zstd::dict::{DecoderDictionary, EncoderDictionary};

const PLAIN: u8 = 0;
const ZSTD_V1: u8 = 1;
const DICTIONARY_V1: &[u8] = include_bytes!("dictionary-v1.bin");
/// Measured on 2 KB bodies with the dictionary: level 3 packs to 673 B in 11 µs, 6 to 635 B in
/// 33 µs, 9 to 629 B in 55 µs, 19 to 601 B in 274 µs. Level 6 takes most of what is to be had
/// for a little CPU on ingest's path.
const LEVEL: i32 = 6;
/// The largest value unpacked: Lambda's request limit, with room.
const MAX_UNPACKED: usize = 8 * 1024 * 1024;

fn encoder() -> &'static EncoderDictionary<'static> {
    static DICTIONARY: OnceLock<EncoderDictionary<'static>> = OnceLock::new();
    DICTIONARY.get_or_init(|| EncoderDictionary::copy(DICTIONARY_V1, LEVEL))
}

fn decoder() -> &'static DecoderDictionary<'static> {
    static DICTIONARY: OnceLock<DecoderDictionary<'static>> = OnceLock::new();
    DICTIONARY.get_or_init(|| DecoderDictionary::copy(DICTIONARY_V1))
}

thread_local! {
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
}

/// `bytes`, packed: compressed when that makes it smaller, else as they are.
pub fn pack(bytes: &[u8]) -> Vec<u8> {
    let compressed = COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = zstd::bulk::Compressor::with_prepared_dictionary(encoder()).ok();
        }
        cell.as_mut()?.compress(bytes).ok()
    });
    match compressed {
        Some(compressed) if compressed.len() + 1 < bytes.len() + 1 => {
            let mut packed = Vec::with_capacity(compressed.len() + 1);
            packed.push(ZSTD_V1);
            packed.extend_from_slice(&compressed);
            packed
        }
        _ => {
            let mut packed = Vec::with_capacity(bytes.len() + 1);
            packed.push(PLAIN);
            packed.extend_from_slice(bytes);
            packed
        }
    }
}

/// What [`unpack`] could not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored value cannot be unpacked: {0}")]
pub struct Unpackable(&'static str);

/// The bytes [`pack`] was given, exactly.
pub fn unpack(packed: &[u8]) -> Result<Vec<u8>, Unpackable> {
    let Some((&format, rest)) = packed.split_first() else {
        return Err(Unpackable("empty"));
    };
    match format {
        PLAIN => Ok(rest.to_vec()),
        ZSTD_V1 => {
            let size = zstd::zstd_safe::get_frame_content_size(rest)
                .ok()
                .flatten()
                .ok_or(Unpackable("no content size"))? as usize;
            if size > MAX_UNPACKED {
                return Err(Unpackable("too large"));
            }
            let mut decompressor = zstd::bulk::Decompressor::with_prepared_dictionary(decoder())
                .map_err(|_| Unpackable("no decompressor"))?;
            decompressor
                .decompress(rest, size)
                .map_err(|_| Unpackable("corrupt"))
        }
        _ => Err(Unpackable("unknown format")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_round_trips_byte_exact_and_shrinks_a_body() {
        let body = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../events/telnyx/bodies/call-hangup.json"
        ))
        .unwrap_or_else(|_| br#"{"data":{"event_type":"call.hangup","payload":{}}}"#.to_vec());
        let packed = pack(&body);
        assert_eq!(packed[0], ZSTD_V1);
        assert!(
            packed.len() * 3 < body.len(),
            "{} → {}",
            body.len(),
            packed.len()
        );
        assert_eq!(unpack(&packed).unwrap(), body);
        for bytes in [&b""[..], b"x", b"\x00\xff\xfe", &[7u8; 10_000][..]] {
            assert_eq!(unpack(&pack(bytes)).unwrap(), bytes);
        }
    }

    #[test]
    fn bad_packed_values_are_errors_not_panics() {
        assert!(unpack(b"").is_err());
        assert!(unpack(&[ZSTD_V1, 1, 2, 3]).is_err());
        assert!(unpack(&[9, 1]).is_err());
        assert_eq!(unpack(&[PLAIN, 1, 2]).unwrap(), [1, 2]);
    }
}

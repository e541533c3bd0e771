//! The events applied to a call, kept compact: 8 bytes of each event id's SHA-256, sorted. A
//! call of 5,000 events keeps 40 KB, and the chance that two of its events share 8 bytes is
//! about one in 10^12. In JSON it is one base64 string.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedEvents(Vec<u64>);

fn fingerprint(event_id: &str) -> u64 {
    let digest = Sha256::digest(event_id.as_bytes());
    u64::from_be_bytes(digest[..8].try_into().expect("SHA-256 has 32 bytes"))
}

impl AppliedEvents {
    pub fn contains(&self, event_id: &str) -> bool {
        self.0.binary_search(&fingerprint(event_id)).is_ok()
    }

    /// Records `event_id`; `false` when it was recorded already.
    pub fn insert(&mut self, event_id: impl AsRef<str>) -> bool {
        let print = fingerprint(event_id.as_ref());
        match self.0.binary_search(&print) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, print);
                true
            }
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<S: AsRef<str>> FromIterator<S> for AppliedEvents {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut applied = AppliedEvents::default();
        for id in iter {
            applied.insert(id);
        }
        applied
    }
}

impl<S: AsRef<str>, const N: usize> From<[S; N]> for AppliedEvents {
    fn from(ids: [S; N]) -> Self {
        ids.into_iter().collect()
    }
}

impl Serialize for AppliedEvents {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = self.0.iter().flat_map(|p| p.to_be_bytes()).collect();
        serializer.serialize_str(&B64.encode(bytes))
    }
}

impl<'de> Deserialize<'de> for AppliedEvents {
    /// The base64 form, or (records stored before it) a list of event ids.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Applied;
        impl<'de> Visitor<'de> for Applied {
            type Value = AppliedEvents;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a base64 string or a list of event ids")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<AppliedEvents, E> {
                let bytes = B64.decode(v).map_err(E::custom)?;
                if bytes.len() % 8 != 0 {
                    return Err(E::custom("not a whole number of fingerprints"));
                }
                let mut prints: Vec<u64> = bytes
                    .chunks(8)
                    .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
                    .collect();
                prints.sort_unstable();
                prints.dedup();
                Ok(AppliedEvents(prints))
            }

            fn visit_seq<A: de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<AppliedEvents, A::Error> {
                let mut applied = AppliedEvents::default();
                while let Some(id) = seq.next_element::<String>()? {
                    applied.insert(id);
                }
                Ok(applied)
            }
        }
        deserializer.deserialize_any(Applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_round_trip_and_old_lists_still_load() {
        let applied: AppliedEvents = ["telnyx#a", "telnyx#b", "telnyx#a"].into();
        assert_eq!(applied.len(), 2);
        assert!(applied.contains("telnyx#b") && !applied.contains("telnyx#c"));
        let json = serde_json::to_value(&applied).unwrap();
        assert_eq!(json.as_str().unwrap().len(), 22, "16 bytes in base64");
        assert_eq!(
            serde_json::from_value::<AppliedEvents>(json).unwrap(),
            applied
        );
        let old: AppliedEvents = serde_json::from_str(r#"["telnyx#b","telnyx#a"]"#).unwrap();
        assert_eq!(old, applied);
    }

    #[test]
    fn five_thousand_events_stay_small() {
        let applied: AppliedEvents = (0..5000).map(|i| format!("telnyx#{i}")).collect();
        assert_eq!(applied.len(), 5000);
        assert!(serde_json::to_string(&applied).unwrap().len() < 60_000);
        assert!(applied.contains("telnyx#4999"));
    }
}

//! `standard`: the generic connector for any Standard Webhooks sender (docs/providers.md).
//!
//! Payload: `{"type","timestamp","data"}` with callhook's own types; the call key is
//! `/data/call_id`; `direction`, `from`, `to`, `outcome` sit under `data`. Dedupe key: the
//! `webhook-id` header.

use serde_json::Value;

use super::{
    Delivery, Provider, ProviderEntry, Verified, malformed, mark_unknown, scoped_id, str_at,
    time_at,
};
#[cfg(any(test, feature = "dev"))]
use super::{DevSigner, Signed};
use crate::config::{ConfigError, Env, vars};
use crate::delivery::SENDER;
use crate::domain::event::{CanonicalEvent, Direction, Kind, Outcome};
use crate::signing::AuthError;
use crate::signing::standard_webhooks as sw;

pub const NAME: &str = "standard";
const KEYS_VAR: &str = vars::STANDARD_WEBHOOK_SECRETS;
/// A sender's own event type names → callhook kinds: `type=kind,…` (e.g.
/// `call.completed=ended,call.transferred=progress`); `ended` marks the call's terminal fact.
/// What lets an operator map a new type by configuration and replay what was reviewed.
pub const TYPES_VAR: &str = vars::STANDARD_EVENT_TYPES;

pub const ENTRY: ProviderEntry = ProviderEntry {
    name: NAME,
    from_env: Standard::from_env,
    normalizer,
    #[cfg(any(test, feature = "dev"))]
    dev_signer: |seed| Box::new(StandardSigner(seed.to_vec())),
};

#[cfg(any(test, feature = "dev"))]
/// Signs as a Standard Webhooks sender with a `whsec_` secret made of the seed.
pub struct StandardSigner(pub Vec<u8>);

#[cfg(any(test, feature = "dev"))]
impl DevSigner for StandardSigner {
    fn verifier_env(&self) -> Vec<(&'static str, String)> {
        vec![(KEYS_VAR, sw::encode_secret(&self.0))]
    }

    fn sign(&self, body: &[u8], timestamp: i64, _url: &str) -> Signed {
        // The message id must identify the fact: the same body re-sent is the same message.
        let id = format!("msg_{}", &super::sha256_hex(body)[..24]);
        Signed {
            headers: vec![
                (
                    sw::SIGNATURE.to_owned(),
                    sw::sign(&self.0, &id, timestamp, body),
                ),
                (sw::ID.to_owned(), id),
                (sw::TIMESTAMP.to_owned(), timestamp.to_string()),
            ],
            path_token: None,
            url: None,
        }
    }
}

/// Event type → (kind, is the call's terminal fact).
pub const MAPPING: &[(&str, Kind, bool)] = &[
    ("call.queued", Kind::Queued, false),
    ("call.initiated", Kind::Initiated, false),
    ("call.ringing", Kind::Ringing, false),
    ("call.answered", Kind::Answered, false),
    ("call.ended", Kind::Ended, true),
    ("call.report", Kind::Report, false),
    ("call.action", Kind::Action, false),
];

pub struct Standard {
    auth: sw::Verifier,
    /// STANDARD_EVENT_TYPES, after the built-in [`MAPPING`].
    extra_types: Vec<(String, Kind, bool)>,
}

impl Standard {
    pub fn from_env(env: &Env) -> Result<Option<Box<dyn Provider>>, ConfigError> {
        let extra_types = extra_types(env)?;
        Ok(
            sw::Verifier::from_env(env, KEYS_VAR, vars::STANDARD_TOLERANCE_SECS, true)?
                .map(|auth| Box::new(Standard { auth, extra_types }) as Box<dyn Provider>),
        )
    }

    fn kind_of(&self, event_type: &str) -> Option<(Kind, bool)> {
        MAPPING
            .iter()
            .find(|(t, _, _)| *t == event_type)
            .map(|(_, kind, is_final)| (*kind, *is_final))
            .or_else(|| {
                self.extra_types
                    .iter()
                    .find(|(t, _, _)| t == event_type)
                    .map(|(_, kind, is_final)| (*kind, *is_final))
            })
    }
}

/// Parses STANDARD_EVENT_TYPES.
fn extra_types(env: &Env) -> Result<Vec<(String, Kind, bool)>, ConfigError> {
    let mut types = Vec::new();
    for pair in env.list(TYPES_VAR) {
        let Some((event_type, kind)) = pair.split_once('=') else {
            return Err(ConfigError::invalid(
                TYPES_VAR,
                "expected type=kind pairs, comma-separated",
            ));
        };
        let kind: Kind = serde_json::from_value(Value::String(kind.trim().to_owned()))
            .ok()
            .filter(|k| *k != Kind::Unknown)
            .ok_or_else(|| {
                ConfigError::invalid(
                    TYPES_VAR,
                    "kinds are queued, initiated, ringing, answered, ended, report, action or progress",
                )
            })?;
        types.push((event_type.trim().to_owned(), kind, kind == Kind::Ended));
    }
    Ok(types)
}

/// A webhook-id or call id in its sender's namespace: `{sender}#{key}` for a named sender; the
/// key as it is for the default sender (the ids stored before senders had names), unless it
/// contains `#`, which could spell another sender's ids: then `default#{key}`. Sender names
/// never contain `#`, so no two senders' ids can meet.
fn sender_key(sender: Option<&str>, key: &str) -> String {
    match sender.filter(|s| *s != sw::DEFAULT_SENDER) {
        Some(sender) => format!("{sender}#{key}"),
        None if key.contains('#') => format!("{}#{key}", sw::DEFAULT_SENDER),
        None => key.to_owned(),
    }
}

/// Parses the canonical event's `outcome` values (docs/architecture.md).
pub fn parse_outcome(value: &str) -> Option<Outcome> {
    serde_json::from_value(Value::String(value.to_owned())).ok()
}

/// The provider for normalizing stored events: no credentials (it is wrapped so that it
/// verifies nothing).
fn normalizer(env: &Env) -> Result<Box<dyn Provider>, ConfigError> {
    Ok(Box::new(Standard {
        auth: sw::Verifier::none(),
        extra_types: extra_types(env)?,
    }))
}

impl Provider for Standard {
    fn name(&self) -> &'static str {
        NAME
    }

    fn signed_headers(&self) -> &'static [&'static str] {
        sw::HEADERS
    }

    fn verify(&self, d: &Delivery<'_>) -> Result<(), AuthError> {
        self.auth.verify(d)
    }

    fn authenticate(&self, d: &Delivery<'_>) -> Result<Verified, AuthError> {
        let sender = self.auth.verify_sender(d)?;
        Ok(Verified {
            sender: (sender != sw::DEFAULT_SENDER).then(|| sender.to_owned()),
            ..Verified::default()
        })
    }

    fn normalize(&self, d: &Delivery<'_>) -> CanonicalEvent {
        let Ok(body) = serde_json::from_slice::<Value>(d.body) else {
            return malformed(NAME, d.body, d.received_at, "body is not JSON");
        };
        let (Some(event_type), Some(id)) = (str_at(&body, "/type"), d.headers.get(sw::ID)) else {
            return malformed(NAME, d.body, d.received_at, "missing type or webhook-id");
        };
        let sender = d.headers.get(SENDER);
        let mut event =
            CanonicalEvent::new(NAME, &sender_key(sender, id), event_type, d.received_at);
        event.occurred_at = time_at(&body, "/timestamp").unwrap_or(d.received_at);
        event.call_id =
            str_at(&body, "/data/call_id").map(|c| scoped_id(NAME, &sender_key(sender, c)));
        event.direction = str_at(&body, "/data/direction").and_then(Direction::parse);
        event.from = str_at(&body, "/data/from").map(str::to_owned);
        event.to = str_at(&body, "/data/to").map(str::to_owned);
        event.outcome = str_at(&body, "/data/outcome").and_then(parse_outcome);
        let data = body.get("data").cloned().unwrap_or(Value::Null);
        event.facts.recording_url = str_at(&data, "/recording_url").map(str::to_owned);
        event.facts.transcript = data.get("transcript").cloned();
        event.facts.analysis = data.get("analysis").cloned();
        event.facts.cost = data.get("cost").cloned();
        event.facts.action = data.get("action").cloned();
        event.facts.metadata = data.get("metadata").cloned();
        event.facts.duration_secs = data.get("duration_secs").and_then(Value::as_u64);
        event.data = data;

        match self.kind_of(event_type) {
            Some((kind, is_final)) => {
                event.kind = kind;
                event.is_final = is_final;
                if event.call_id.is_none() {
                    return malformed(NAME, d.body, d.received_at, "data.call_id is missing");
                }
                if kind == Kind::Ended && event.outcome.is_none() {
                    event.outcome = Some(Outcome::Completed);
                }
            }
            None => mark_unknown(&mut event),
        }
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Headers;
    use chrono::{TimeZone, Utc};

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn provider() -> Box<dyn Provider> {
        Standard::from_env(&Env::from_pairs([(KEYS_VAR, SECRET)]))
            .unwrap()
            .unwrap()
    }

    fn normalize(body: &str) -> CanonicalEvent {
        let headers: Headers = [(sw::ID, "msg_1")].into_iter().collect();
        provider().normalize(&Delivery {
            headers: &headers,
            body: body.as_bytes(),
            path_token: None,
            request_url: None,
            received_at: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
        })
    }

    #[test]
    fn every_type_maps() {
        for (event_type, kind, is_final) in MAPPING {
            let e = normalize(&format!(
                r#"{{"type":"{event_type}","timestamp":"2024-01-01T00:00:00Z","data":{{"call_id":"c1"}}}}"#
            ));
            assert_eq!(e.kind, *kind, "{event_type}");
            assert_eq!(e.is_final, *is_final);
            assert_eq!(e.event_id, "standard#msg_1");
            assert_eq!(e.call_id.as_deref(), Some("standard#c1"));
            assert!(e.review.is_none());
        }
    }

    #[test]
    fn ended_carries_outcome_and_parties() {
        let e = normalize(
            r#"{"type":"call.ended","timestamp":"2024-01-01T00:00:05Z","data":{"call_id":"c1","direction":"outbound","from":"+1","to":"+2","outcome":"no_answer"}}"#,
        );
        assert_eq!(e.outcome, Some(Outcome::NoAnswer));
        assert_eq!(e.direction, Some(Direction::Outbound));
        assert_eq!(e.occurred_at.to_rfc3339(), "2024-01-01T00:00:05+00:00");
    }

    #[test]
    fn the_sender_own_types_map_by_configuration() {
        let configured = |types: &str| {
            Standard::from_env(&Env::from_pairs([(KEYS_VAR, SECRET), (TYPES_VAR, types)]))
        };
        let provider = configured("call.completed=ended, call.transferred = progress")
            .unwrap()
            .unwrap();
        let headers: Headers = [(sw::ID, "msg_2")].into_iter().collect();
        let normalize = |body: &str| {
            provider.normalize(&Delivery {
                headers: &headers,
                body: body.as_bytes(),
                path_token: None,
                request_url: None,
                received_at: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
            })
        };
        let e = normalize(r#"{"type":"call.completed","data":{"call_id":"c1"}}"#);
        assert_eq!((e.kind, e.is_final), (Kind::Ended, true));
        assert_eq!(e.outcome, Some(Outcome::Completed));
        assert!(e.review.is_none());
        let e = normalize(r#"{"type":"call.transferred","data":{"call_id":"c1"}}"#);
        assert_eq!((e.kind, e.is_final), (Kind::Progress, false));
        // Built-in names still win, and the rest are still unknown.
        assert_eq!(
            normalize(r#"{"type":"call.ended","data":{"call_id":"c1"}}"#).kind,
            Kind::Ended
        );
        let e = normalize(r#"{"type":"call.teleported","data":{"call_id":"c1"}}"#);
        assert_eq!(e.review.unwrap().reason, "unknown_type");

        for bad in ["call.completed", "call.completed=finished", "x=unknown"] {
            let err = configured(bad).err().unwrap().to_string();
            assert!(
                err.starts_with("STANDARD_EVENT_TYPES is invalid"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn senders_are_named_and_one_key_serves_one_sender() {
        let key = |b: u8| sw::encode_secret(&[b; 32]);
        let ok = Standard::from_env(&Env::from_pairs([(
            KEYS_VAR,
            format!("acme={},beta_2={},default={}", key(1), key(2), key(3)),
        )]));
        assert!(ok.is_ok());
        for (value, problem) in [
            (
                format!("acme={},beta={}", key(4), key(4)),
                "two senders (acme and beta)",
            ),
            (
                format!("acme={},{}", key(5), key(5)),
                "two senders (acme and default)",
            ),
            (format!("ac#me={}", key(6)), "a sender name"),
            (format!("={}", key(6)), "a sender name"),
        ] {
            let err = crate::providers::Providers::from_env(&Env::from_pairs([(KEYS_VAR, &value)]))
                .err()
                .unwrap_or_else(|| panic!("{value} accepted"))
                .to_string();
            assert!(
                err.starts_with("STANDARD_WEBHOOK_SECRETS is invalid"),
                "{err}"
            );
            assert!(err.contains(problem), "{value}: {err}");
        }
    }

    #[test]
    fn unknown_and_malformed_go_to_review() {
        let e = normalize(r#"{"type":"call.teleported","data":{"call_id":"c1"}}"#);
        assert_eq!(e.review.unwrap().reason, "unknown_type");
        let e = normalize(r#"{"type":"call.ended","data":{}}"#);
        assert_eq!(e.review.unwrap().reason, "malformed");
        let e = normalize("not json");
        assert_eq!(e.review.unwrap().reason, "malformed");
    }
}

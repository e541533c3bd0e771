//! The dispatch function's configuration: destinations, DISPATCH_ROUTES overrides, the signing
//! secret and the retry policy.

use serde_json::Value;

use super::vars::{
    CALLBACK_QUEUE_URL, CRM_SIGNING_SECRET, CRM_WEBHOOK_URL, DISPATCH_ROUTES, TICKETING_WEBHOOK_URL,
};
use super::{ConfigError, Env, vars};
use crate::domain::dispatch::{
    CUSTOM_HTTP, CUSTOM_SQS, DEFAULT_MAX_ATTEMPTS, DEFAULT_RETRY_BASE_SECS, DEFAULT_RETRY_MAX_SECS,
    DEFAULT_TIMEOUT_SECS, DROPPED, RetryPolicy, Route, RouteKey, Routes, Target,
};
use crate::limits::SQS_MAX_VISIBILITY_SECS;
use crate::providers::keys;
use crate::signing::{
    self,
    standard_webhooks::{self, SigningSecret},
};

/// The variable that configures a destination.
pub fn target_var(target: Target) -> &'static str {
    match target {
        Target::Crm => CRM_WEBHOOK_URL,
        Target::Ticketing => TICKETING_WEBHOOK_URL,
        Target::Callback => CALLBACK_QUEUE_URL,
    }
}

/// What the dispatch function needs, validated at cold start.
#[derive(Clone)]
pub struct DispatchConfig {
    pub calls_table: String,
    /// Where the facts a call keeps by reference are read back from.
    pub events_table: String,
    /// Where the bodies too large for their events item are.
    pub events_bucket: String,
    pub ledger_table: String,
    /// Unset: failed dispatches stay on the queue until its DLQ.
    pub review_table: Option<String>,
    pub routes: Routes,
    /// Required when some route POSTs.
    pub signing_secret: Option<SigningSecret>,
    pub policy: RetryPolicy,
}

/// Every field, the routes' webhook URLs and the signing secret hidden ([`Route`]'s and
/// [`SigningSecret`]'s own `Debug`).
impl std::fmt::Debug for DispatchConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DispatchConfig")
            .field("calls_table", &self.calls_table)
            .field("events_table", &self.events_table)
            .field("ledger_table", &self.ledger_table)
            .field("review_table", &self.review_table)
            .field("routes", &self.routes)
            .field("signing_secret", &self.signing_secret)
            .field("policy", &self.policy)
            .finish()
    }
}

fn bounded(env: &Env, var: &str, default: u64, min: u64, max: u64) -> Result<u32, ConfigError> {
    env.bounded(var, default, min, max).map(|v| v as u32)
}

impl DispatchConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let routes = Routes::from_env(env)?;
        let signing_secret = match env.get(CRM_SIGNING_SECRET) {
            Some(secret) => {
                let bytes = standard_webhooks::decode_hmac_secret(CRM_SIGNING_SECRET, secret)?;
                signing::check_secret_len(CRM_SIGNING_SECRET, "the decoded secret", &bytes)?;
                if !env.dev_mode()? && keys::is_public_fixture_secret(&bytes) {
                    return Err(keys::fixture_key_error(CRM_SIGNING_SECRET));
                }
                Some(SigningSecret::new(bytes))
            }
            None if routes.has_http() => {
                return Err(ConfigError::invalid(
                    CRM_SIGNING_SECRET,
                    "not set, and an HTTP route needs it to sign deliveries (a whsec_ secret)",
                ));
            }
            None => None,
        };
        let max_secs = bounded(
            env,
            vars::DISPATCH_RETRY_MAX_SECS,
            DEFAULT_RETRY_MAX_SECS,
            1,
            u64::from(SQS_MAX_VISIBILITY_SECS),
        )?;
        let policy = RetryPolicy {
            max_attempts: bounded(
                env,
                vars::DISPATCH_MAX_ATTEMPTS,
                DEFAULT_MAX_ATTEMPTS,
                1,
                1000,
            )?,
            base_secs: bounded(
                env,
                vars::DISPATCH_RETRY_BASE_SECS,
                DEFAULT_RETRY_BASE_SECS,
                0,
                u64::from(SQS_MAX_VISIBILITY_SECS),
            )?,
            max_secs,
            timeout_secs: bounded(
                env,
                vars::DISPATCH_TIMEOUT_SECS,
                DEFAULT_TIMEOUT_SECS,
                1,
                600,
            )?,
        };
        Ok(DispatchConfig {
            calls_table: env.require(vars::CALLS_TABLE)?.to_owned(),
            events_table: env.require(vars::EVENTS_TABLE)?.to_owned(),
            events_bucket: env.require(vars::EVENTS_BUCKET)?.to_owned(),
            ledger_table: env.require(vars::LEDGER_TABLE)?.to_owned(),
            review_table: env.get(vars::REVIEW_TABLE).map(str::to_owned),
            routes,
            signing_secret,
            policy,
        })
    }
}

fn check_url(var: &str, what: &str, url: &str) -> Result<String, ConfigError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    // The authority runs to the first '/', '?' or '#'; without a host there is nowhere to send.
    let host = rest
        .and_then(|r| r.split(['/', '?', '#']).next())
        .map(|authority| authority.rsplit('@').next().unwrap_or(authority))
        .unwrap_or("");
    match rest {
        Some(_)
            if !host.is_empty() && !host.starts_with(':') && !url.contains(char::is_whitespace) =>
        {
            Ok(url.to_owned())
        }
        // The value itself is never echoed: a URL may carry a token.
        _ => Err(ConfigError::invalid(
            var,
            format!("{what} must be an http:// or https:// URL"),
        )),
    }
}

/// A URL callhook POSTs to: https, except on this machine (127.0.0.0/8, `::1`, `localhost`),
/// so that the signed call record and the receiver's answer never cross a network in clear.
fn check_http_target(var: &str, what: &str, url: &str) -> Result<String, ConfigError> {
    let url = check_url(var, what, url)?;
    if url.starts_with("https://") || is_loopback(&url) {
        Ok(url)
    } else {
        Err(ConfigError::invalid(
            var,
            format!(
                "{what} must be an https:// URL (plain http only to 127.0.0.1, ::1 or localhost)"
            ),
        ))
    }
}

/// The host of an `http://` URL is the loopback interface (127.0.0.0/8, `::1`, `localhost`):
/// the one place plain http is allowed, for outbound POSTs and provider API base URLs alike.
pub(crate) fn is_loopback(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let host = match host_port.strip_prefix('[') {
        // [v6]:port
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Routes {
    /// The default table with the configured destinations, then DISPATCH_ROUTES on top.
    pub fn from_env(env: &Env) -> Result<Routes, ConfigError> {
        let destination = |target: Target| -> Result<Route, ConfigError> {
            let var = target_var(target);
            Ok(match env.get(var) {
                None => Route::Unconfigured(var),
                Some(url) => match target {
                    Target::Callback => Route::Sqs(check_url(var, "the value", url)?),
                    Target::Crm | Target::Ticketing => {
                        Route::Http(check_http_target(var, "the value", url)?)
                    }
                },
            })
        };
        let (crm, ticketing, callback) = (
            destination(Target::Crm)?,
            destination(Target::Ticketing)?,
            destination(Target::Callback)?,
        );
        let resolve = |t: Target| match t {
            Target::Crm => crm.clone(),
            Target::Ticketing => ticketing.clone(),
            Target::Callback => callback.clone(),
        };
        let mut routes = Routes::new(crm.clone(), ticketing.clone(), callback.clone());
        if let Some(raw) = env.get(DISPATCH_ROUTES) {
            let overrides: serde_json::Map<String, Value> = serde_json::from_str(raw)
                .map_err(|_| {
                    ConfigError::invalid(
                        DISPATCH_ROUTES,
                        r#"not a JSON object (expected e.g. {"busy": {"sqs": "https://…"}, "voicemail": "drop"})"#,
                    )
                })?;
            for (key, value) in overrides {
                let route_key = RouteKey::parse(&key).ok_or_else(|| {
                    ConfigError::invalid(
                        DISPATCH_ROUTES,
                        format!(
                            "unknown route key {key:?} (known: {})",
                            RouteKey::ALL.map(RouteKey::as_str).join(", ")
                        ),
                    )
                })?;
                let (route, destination) = parse_override(&key, &value, &resolve)?;
                routes.set(route_key, route, destination);
            }
        }
        Ok(routes)
    }
}

fn parse_override(
    key: &str,
    value: &Value,
    resolve: &dyn Fn(Target) -> Route,
) -> Result<(Route, &'static str), ConfigError> {
    let expected = || {
        ConfigError::invalid(
            DISPATCH_ROUTES,
            format!(
                r#"route {key:?}: expected "drop", "crm", "ticketing", "callback", {{"http": url}} or {{"sqs": queue_url}}"#
            ),
        )
    };
    match value {
        Value::String(s) => match s.as_str() {
            "drop" => Ok((Route::Drop, DROPPED)),
            "crm" => Ok((resolve(Target::Crm), Target::Crm.as_str())),
            "ticketing" => Ok((resolve(Target::Ticketing), Target::Ticketing.as_str())),
            "callback" => Ok((resolve(Target::Callback), Target::Callback.as_str())),
            _ => Err(expected()),
        },
        Value::Object(map) if map.len() == 1 => {
            let (kind, url) = map.iter().next().expect("one entry");
            let url = url.as_str().ok_or_else(expected)?;
            let what = format!("route {key:?}: the {kind} URL");
            match kind.as_str() {
                "http" => Ok((
                    Route::Http(check_http_target(DISPATCH_ROUTES, &what, url)?),
                    CUSTOM_HTTP,
                )),
                "sqs" => Ok((
                    Route::Sqs(check_url(DISPATCH_ROUTES, &what, url)?),
                    CUSTOM_SQS,
                )),
                _ => Err(expected()),
            }
        }
        _ => Err(expected()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::dispatch::{MessageType, plan};
    use crate::domain::event::Outcome;
    use crate::testing::dispatch::*;

    // ---- routes ----

    #[test]
    fn default_routes_follow_the_design_table() {
        let routes = Routes::from_env(&env(&[])).unwrap();
        let http = |u: &str| Route::Http(u.to_owned());
        for (key, route) in [
            ("completed", http(CRM)),
            ("voicemail", http(CRM)),
            ("rescheduled", http(CRM)),
            ("no_outcome", http(CRM)),
            ("updated", http(CRM)),
            ("escalated", http(TICKETS)),
            ("action", http(TICKETS)),
            ("no_answer", Route::Sqs(CALLBACKS.into())),
            ("busy", Route::Sqs(CALLBACKS.into())),
            ("failed", Route::Sqs(CALLBACKS.into())),
            ("canceled", Route::Sqs(CALLBACKS.into())),
        ] {
            assert_eq!(routes.get(RouteKey::parse(key).unwrap()), &route, "{key}");
        }
        let bare = Env::from_pairs([
            ("CALLS_TABLE", "c"),
            ("EVENTS_TABLE", "e"),
            ("EVENTS_BUCKET", "b"),
            ("LEDGER_TABLE", "l"),
        ]);
        let routes = Routes::from_env(&bare).unwrap();
        assert_eq!(
            routes.get(RouteKey::Busy),
            &Route::Unconfigured(CALLBACK_QUEUE_URL)
        );
        assert_eq!(
            routes.get(RouteKey::Completed),
            &Route::Unconfigured(CRM_WEBHOOK_URL)
        );
        assert!(!routes.has_http());
    }

    #[test]
    fn plan_routes_completion_by_the_record_and_escalation_by_its_ticket_id() {
        let m = finalize(Some(Outcome::Completed));
        // The record's outcome at send time wins over the one at finalization.
        assert_eq!(
            plan(&m, &record(Some(Outcome::Busy))),
            (RouteKey::Busy, "telnyx#call-1#completed".to_owned())
        );
        assert_eq!(
            plan(&m, &record(Some(Outcome::Escalated))),
            (RouteKey::Escalated, "telnyx#call-1#escalated".to_owned())
        );
        assert_eq!(plan(&m, &record(None)).0, RouteKey::Completed);
        assert_eq!(plan(&finalize(None), &record(None)).0, RouteKey::NoOutcome);
        let mut updated = m.clone();
        updated.message_type = MessageType::Updated;
        updated.dispatch_id = "u".into();
        assert_eq!(
            plan(&updated, &record(Some(Outcome::Escalated))),
            (RouteKey::Updated, "u".to_owned())
        );
    }

    #[test]
    fn overrides_replace_single_routes() {
        let routes = Routes::from_env(&env(&[(
            DISPATCH_ROUTES,
            r#"{"busy": {"http": "http://127.0.0.1:9/busy"}, "voicemail": "drop",
                "rescheduled": "callback", "updated": {"sqs": "http://127.0.0.1:9/q/updates"},
                "action": "crm"}"#,
        )]))
        .unwrap();
        assert_eq!(
            routes.get(RouteKey::Busy),
            &Route::Http("http://127.0.0.1:9/busy".into())
        );
        assert_eq!(routes.get(RouteKey::Voicemail), &Route::Drop);
        assert_eq!(
            routes.get(RouteKey::Rescheduled),
            &Route::Sqs(CALLBACKS.into())
        );
        assert_eq!(
            routes.get(RouteKey::Updated),
            &Route::Sqs("http://127.0.0.1:9/q/updates".into())
        );
        assert_eq!(routes.get(RouteKey::Action), &Route::Http(CRM.into()));
        // Untouched keys keep the default.
        assert_eq!(
            routes.get(RouteKey::NoAnswer),
            &Route::Sqs(CALLBACKS.into())
        );
        // A named target that is not configured stays unconfigured (review), not dropped.
        let bare = Env::from_pairs([(DISPATCH_ROUTES, r#"{"completed": "ticketing"}"#)]);
        assert_eq!(
            Routes::from_env(&bare).unwrap().get(RouteKey::Completed),
            &Route::Unconfigured(TICKETING_WEBHOOK_URL)
        );
    }

    #[test]
    fn destinations_name_the_route_label_set() {
        let defaults = Routes::from_env(&env(&[])).unwrap();
        for (key, destination) in [
            (RouteKey::Completed, "crm"),
            (RouteKey::Updated, "crm"),
            (RouteKey::Escalated, "ticketing"),
            (RouteKey::Action, "ticketing"),
            (RouteKey::Busy, "callback"),
            (RouteKey::NoAnswer, "callback"),
        ] {
            assert_eq!(defaults.destination(key), destination, "{key:?}");
        }
        let routes = Routes::from_env(&env(&[(
            DISPATCH_ROUTES,
            r#"{"busy": {"http": "http://127.0.0.1:9/busy"}, "voicemail": "drop",
                "rescheduled": "callback", "updated": {"sqs": "http://127.0.0.1:9/q/updates"},
                "action": "crm"}"#,
        )]))
        .unwrap();
        for (key, destination) in [
            (RouteKey::Busy, "http"),
            (RouteKey::Voicemail, "drop"),
            (RouteKey::Rescheduled, "callback"),
            (RouteKey::Updated, "sqs"),
            (RouteKey::Action, "crm"),
            (RouteKey::Completed, "crm"),
        ] {
            assert_eq!(routes.destination(key), destination, "{key:?}");
        }
    }

    #[test]
    fn bad_overrides_are_config_errors_naming_dispatch_routes() {
        for (raw, needle) in [
            ("not json", "not a JSON object"),
            ("[1, 2]", "not a JSON object"),
            (r#"{"bogus": "drop"}"#, "unknown route key \"bogus\""),
            (r#"{"busy": "somewhere"}"#, "route \"busy\": expected"),
            (r#"{"busy": {"ftp": "x"}}"#, "route \"busy\": expected"),
            (r#"{"busy": {"http": 5}}"#, "route \"busy\": expected"),
            (
                r#"{"busy": {"http": "http://a", "sqs": "http://b"}}"#,
                "route \"busy\": expected",
            ),
            (
                r#"{"busy": {"http": "crm.example/secret-token"}}"#,
                "must be an http:// or https:// URL",
            ),
        ] {
            let err = DispatchConfig::from_env(&env(&[(DISPATCH_ROUTES, raw)]))
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("DISPATCH_ROUTES is invalid"),
                "{raw}: {err}"
            );
            assert!(err.contains(needle), "{raw}: {err}");
            assert!(!err.contains("secret-token"), "{err}");
        }
    }

    #[test]
    fn config_validates_at_cold_start() {
        let cfg = DispatchConfig::from_env(&env(&[])).unwrap();
        assert_eq!(cfg.policy, RetryPolicy::default());
        assert_eq!(cfg.review_table.as_deref(), Some("review"));
        assert!(!format!("{cfg:?}").contains("MfKQ9r8"), "secret in Debug");

        let err = |pairs: &[(&str, &str)]| {
            DispatchConfig::from_env(&env(pairs))
                .unwrap_err()
                .to_string()
        };
        assert!(
            err(&[(CRM_SIGNING_SECRET, "")]).starts_with("CRM_SIGNING_SECRET is invalid: not set")
        );
        assert!(err(&[(CRM_SIGNING_SECRET, "whsec_%%%")]).starts_with("CRM_SIGNING_SECRET"));
        assert!(err(&[(CRM_WEBHOOK_URL, "crm.example")]).starts_with("CRM_WEBHOOK_URL is invalid"));
        assert!(err(&[(CALLBACK_QUEUE_URL, "https://")]).starts_with("CALLBACK_QUEUE_URL"));
        assert!(err(&[("DISPATCH_MAX_ATTEMPTS", "0")]).starts_with("DISPATCH_MAX_ATTEMPTS"));
        assert!(err(&[("DISPATCH_TIMEOUT_SECS", "ten")]).starts_with("DISPATCH_TIMEOUT_SECS"));
        assert!(
            err(&[("DISPATCH_RETRY_MAX_SECS", "50000")]).starts_with("DISPATCH_RETRY_MAX_SECS")
        );
        assert_eq!(err(&[("LEDGER_TABLE", "")]), "LEDGER_TABLE is not set");

        // No HTTP route (everything to queues or dropped): no secret needed.
        let queues_only = Env::from_pairs([
            ("CALLS_TABLE", "c"),
            ("EVENTS_TABLE", "e"),
            ("EVENTS_BUCKET", "b"),
            ("LEDGER_TABLE", "l"),
            (CALLBACK_QUEUE_URL, CALLBACKS),
        ]);
        let cfg = DispatchConfig::from_env(&queues_only).unwrap();
        assert!(cfg.signing_secret.is_none() && cfg.review_table.is_none());
    }

    #[test]
    fn outbound_http_urls_must_be_https_unless_loopback() {
        let err = |pairs: &[(&str, &str)]| {
            DispatchConfig::from_env(&env(pairs))
                .err()
                .map(|e| e.to_string())
        };
        for (var, url) in [
            (CRM_WEBHOOK_URL, "http://crm.example.com/hook?token=s3cr3t"),
            (TICKETING_WEBHOOK_URL, "http://10.0.0.7/tickets"),
            (CRM_WEBHOOK_URL, "http://localhost.evil.example/hook"),
            (CRM_WEBHOOK_URL, "http://127.0.0.1.nip.io/hook"),
        ] {
            let message = err(&[(var, url)]).unwrap_or_else(|| panic!("{url} accepted"));
            assert!(
                message.starts_with(&format!("{var} is invalid")),
                "{message}"
            );
            assert!(message.contains("https"), "{message}");
            assert!(!message.contains("s3cr3t"), "{message}");
        }
        let route = r#"{"busy": {"http": "http://crm.example.com/busy"}}"#;
        let message = err(&[(DISPATCH_ROUTES, route)]).expect("plain http route accepted");
        assert!(
            message.starts_with("DISPATCH_ROUTES is invalid"),
            "{message}"
        );
        for loopback in [
            "http://127.0.0.1:3001/crm",
            "http://localhost:3001/crm",
            "http://[::1]:3001/crm",
            "http://user:pw@127.0.0.1/crm",
            "https://crm.example.com/hook",
        ] {
            assert_eq!(err(&[(CRM_WEBHOOK_URL, loopback)]), None, "{loopback}");
        }
        // Queue URLs are the SDK's business (an emulator is plain http).
        assert_eq!(
            err(&[(CALLBACK_QUEUE_URL, "http://sqs.local:4566/1/q")]),
            None
        );
    }

    #[test]
    fn the_signing_secret_is_long_and_not_a_public_fixture() {
        let err = |pairs: &[(&str, &str)]| {
            DispatchConfig::from_env(&env(pairs))
                .err()
                .map(|e| e.to_string())
        };
        let short = standard_webhooks::encode_secret(b"fifteen-bytes-x");
        let message = err(&[(CRM_SIGNING_SECRET, &short)]).expect("15 bytes accepted");
        assert!(
            message.starts_with("CRM_SIGNING_SECRET is invalid"),
            "{message}"
        );
        let sixteen = standard_webhooks::encode_secret(b"sixteen-bytes-ok");
        assert_eq!(err(&[(CRM_SIGNING_SECRET, &sixteen)]), None);
        // events/env.json's secret (the spec's vector) only in dev mode.
        let message = err(&[(crate::config::vars::CALLHOOK_DEV, "false")])
            .expect("the fixture secret accepted outside dev mode");
        assert!(
            message.starts_with("CRM_SIGNING_SECRET is invalid"),
            "{message}"
        );
        assert!(message.contains("CALLHOOK_DEV"), "{message}");
    }

    #[test]
    fn debug_of_routes_and_config_hides_urls_and_the_secret() {
        let cfg = DispatchConfig::from_env(&env(&[
            (CRM_WEBHOOK_URL, "https://crm.example/hook?token=s3cret-crm"),
            (
                DISPATCH_ROUTES,
                r#"{"busy": {"http": "https://user:s3cret-pw@x.example/busy"}}"#,
            ),
        ]))
        .unwrap();
        for debug in [format!("{cfg:?}"), format!("{:?}", cfg.routes)] {
            assert!(!debug.contains("s3cret"), "{debug}");
            assert!(!debug.contains("MfKQ9r8"), "{debug}");
            assert!(debug.contains("Busy") && debug.contains("Http"), "{debug}");
            // Queue URLs are no secret, and say where a call-back goes.
            assert!(debug.contains(CALLBACKS), "{debug}");
        }
        assert!(format!("{cfg:?}").contains("ledger"));
    }

    #[test]
    fn urls_need_a_scheme_and_a_host() {
        for good in [
            "https://crm.example.com/hooks?token=x",
            "http://127.0.0.1:3001/crm",
            "https://user:pw@crm.example.com",
        ] {
            assert!(check_url("V", "the value", good).is_ok(), "{good}");
        }
        for bad in [
            "https://?token=x",
            "https:///path",
            "https://#frag",
            "https://:443/x",
            "ftp://crm.example.com",
            "crm.example.com",
            "https://crm.example.com/a b",
            "https://user@/x",
        ] {
            let err = check_url("V", "the value", bad).unwrap_err().to_string();
            assert!(!err.contains(bad), "the URL is never echoed: {err}");
        }
    }
}

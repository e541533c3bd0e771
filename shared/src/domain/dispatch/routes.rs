//! Where each message goes: the route table (docs/dispatch.md, "Routes"). A route key is chosen
//! per message by [`plan`]; DISPATCH_ROUTES (read in `config::dispatch`) overrides any key.

use std::collections::BTreeMap;

use crate::domain::call::{CallRecord, escalation_dispatch_id};
use crate::domain::event::Outcome;

use super::message::{DispatchMessage, MessageType};

/// What a message is routed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteKey {
    Completed,
    Voicemail,
    Rescheduled,
    /// A final call whose provider reported no outcome.
    NoOutcome,
    NoAnswer,
    Busy,
    Failed,
    Canceled,
    Escalated,
    Action,
    Updated,
    /// A call given up on (outcome `unknown`, `incomplete: true`).
    Unknown,
}

impl RouteKey {
    pub const ALL: [RouteKey; 12] = [
        RouteKey::Completed,
        RouteKey::Voicemail,
        RouteKey::Rescheduled,
        RouteKey::NoOutcome,
        RouteKey::NoAnswer,
        RouteKey::Busy,
        RouteKey::Failed,
        RouteKey::Canceled,
        RouteKey::Escalated,
        RouteKey::Action,
        RouteKey::Updated,
        RouteKey::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RouteKey::Completed => "completed",
            RouteKey::Voicemail => "voicemail",
            RouteKey::Rescheduled => "rescheduled",
            RouteKey::NoOutcome => "no_outcome",
            RouteKey::NoAnswer => "no_answer",
            RouteKey::Busy => "busy",
            RouteKey::Failed => "failed",
            RouteKey::Canceled => "canceled",
            RouteKey::Escalated => "escalated",
            RouteKey::Action => "action",
            RouteKey::Updated => "updated",
            RouteKey::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<RouteKey> {
        RouteKey::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The key of a finalization with this outcome.
    pub fn for_outcome(outcome: Option<Outcome>) -> RouteKey {
        match outcome {
            None => RouteKey::NoOutcome,
            Some(Outcome::Completed) => RouteKey::Completed,
            Some(Outcome::Voicemail) => RouteKey::Voicemail,
            Some(Outcome::Rescheduled) => RouteKey::Rescheduled,
            Some(Outcome::NoAnswer) => RouteKey::NoAnswer,
            Some(Outcome::Busy) => RouteKey::Busy,
            Some(Outcome::Failed) => RouteKey::Failed,
            Some(Outcome::Canceled) => RouteKey::Canceled,
            Some(Outcome::Escalated) => RouteKey::Escalated,
            Some(Outcome::Unknown) => RouteKey::Unknown,
        }
    }

    /// The default table (docs/dispatch.md, "Routes").
    pub fn default_target(self) -> Target {
        match self {
            RouteKey::Completed
            | RouteKey::Voicemail
            | RouteKey::Rescheduled
            | RouteKey::NoOutcome
            | RouteKey::Unknown
            | RouteKey::Updated => Target::Crm,
            RouteKey::Escalated | RouteKey::Action => Target::Ticketing,
            RouteKey::NoAnswer | RouteKey::Busy | RouteKey::Failed | RouteKey::Canceled => {
                Target::Callback
            }
        }
    }
}

/// The three configured destinations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Crm,
    Ticketing,
    Callback,
}

impl Target {
    /// The destination's name: the `route` label of the dispatch metrics, and its name in
    /// DISPATCH_ROUTES.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Crm => "crm",
            Target::Ticketing => "ticketing",
            Target::Callback => "callback",
        }
    }
}

/// Where one route key goes.
#[derive(Clone, PartialEq, Eq)]
pub enum Route {
    /// A signed POST to this URL.
    Http(String),
    /// A SendMessage to this queue URL.
    Sqs(String),
    /// Explicitly nothing (`"drop"` in DISPATCH_ROUTES).
    Drop,
    /// The destination's variable is not set: such messages go to review.
    Unconfigured(&'static str),
}

/// A webhook URL often embeds a token (in its path, query or userinfo): `Debug` hides it. Queue
/// URLs are no secret.
impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Route::Http(_) => f.write_str("Http(***)"),
            Route::Sqs(url) => f.debug_tuple("Sqs").field(url).finish(),
            Route::Drop => f.write_str("Drop"),
            Route::Unconfigured(var) => f.debug_tuple("Unconfigured").field(var).finish(),
        }
    }
}

/// The route of every key, after configuration, and the name of each one's destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routes {
    routes: BTreeMap<RouteKey, Route>,
    destinations: BTreeMap<RouteKey, &'static str>,
    /// The call-back destination as configured (CALLBACK_QUEUE_URL).
    callback: Route,
}

/// The destination name of a DISPATCH_ROUTES `{"http": url}` override.
pub const CUSTOM_HTTP: &str = "http";
/// The destination name of a DISPATCH_ROUTES `{"sqs": queue_url}` override.
pub const CUSTOM_SQS: &str = "sqs";
/// The destination name of a `"drop"` route.
pub const DROPPED: &str = "drop";

impl Routes {
    /// The design's table (every key to its default target), with the three destinations as
    /// configured.
    pub fn new(crm: Route, ticketing: Route, callback: Route) -> Routes {
        let target = |t: Target| match t {
            Target::Crm => crm.clone(),
            Target::Ticketing => ticketing.clone(),
            Target::Callback => callback.clone(),
        };
        Routes {
            routes: RouteKey::ALL
                .into_iter()
                .map(|k| (k, target(k.default_target())))
                .collect(),
            destinations: RouteKey::ALL
                .into_iter()
                .map(|k| (k, k.default_target().as_str()))
                .collect(),
            callback,
        }
    }

    /// `key` leads to the call-back queue: by default, by name in DISPATCH_ROUTES, or as a
    /// route's own `{"sqs": …}` URL that is the call-back queue's.
    pub fn feeds_callback(&self, key: RouteKey) -> bool {
        self.destination(key) == Target::Callback.as_str()
            || matches!(self.get(key), Route::Sqs(_) if *self.get(key) == self.callback)
    }

    /// Sends `key` to `route`, a destination named `destination` (a metrics label).
    pub fn set(&mut self, key: RouteKey, route: Route, destination: &'static str) {
        self.routes.insert(key, route);
        self.destinations.insert(key, destination);
    }

    pub fn get(&self, key: RouteKey) -> &Route {
        self.routes.get(&key).unwrap_or(&Route::Drop)
    }

    /// The name of `key`'s destination, a small fixed set (the `route` label of the dispatch
    /// metrics): `crm`, `ticketing`, `callback` (the configured destinations, by default or
    /// named in DISPATCH_ROUTES), `http` / `sqs` (a DISPATCH_ROUTES URL of its own), `drop`.
    pub fn destination(&self, key: RouteKey) -> &'static str {
        self.destinations.get(&key).copied().unwrap_or(DROPPED)
    }

    /// Some route POSTs (so a signing secret is needed).
    pub fn has_http(&self) -> bool {
        self.routes.values().any(|r| matches!(r, Route::Http(_)))
    }
}

/// The route key of a message, and the id its send is recorded under in the ledger (and sent
/// as `webhook-id`).
pub fn plan(message: &DispatchMessage, record: &CallRecord) -> (RouteKey, String) {
    match message.message_type {
        MessageType::Completed => {
            let outcome = record.outcome.or(message.outcome);
            let id = if outcome == Some(Outcome::Escalated) {
                escalation_dispatch_id(&message.call_id)
            } else {
                message.dispatch_id.clone()
            };
            (RouteKey::for_outcome(outcome), id)
        }
        MessageType::Updated => (RouteKey::Updated, message.dispatch_id.clone()),
        MessageType::Escalated => (RouteKey::Escalated, message.dispatch_id.clone()),
        MessageType::Action => (RouteKey::Action, message.dispatch_id.clone()),
    }
}

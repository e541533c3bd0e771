//! callhook's metrics: their names (a contract: alarms and the dashboard use them, and
//! docs/metrics.md lists them) and what each function records, as pure label logic.

use chrono::{DateTime, Utc};

use super::emf::{Metrics, Sink, Unit};
use crate::app::dispatch::Attempted;
use crate::app::ingest::IngestOutcome;
use crate::domain::review::ReviewReason;
use crate::providers::Providers;

/// ingest: every request that names a provider; dims `provider`, `result`.
pub const RECEIVED: &str = "received";
/// ingest: 401 answers; dims `provider`.
pub const SIGNATURE_FAILURES: &str = "signature_failures";
/// ingest: authentic deliveries of an event already stored; dims `provider`.
pub const DUPLICATES: &str = "duplicates";
/// ingest: new events whose type the provider's mapping does not know; dims `provider`.
pub const UNKNOWN_TYPES: &str = "unknown_types";
/// ingest: new authentic bodies that are not the documented shape; dims `provider`.
pub const MALFORMED: &str = "malformed";
/// lifecycle: received (or queued again) → applied, in ms; dims `provider`.
pub const PROCESSING_LAG: &str = "processing_lag";
/// dispatch: delivery attempts (POST or SendMessage); dims `route`.
pub const DISPATCH_ATTEMPTS: &str = "dispatch_attempts";
/// dispatch: attempts that failed, retryable or not; dims `route`.
pub const DISPATCH_FAILURES: &str = "dispatch_failures";
/// sweeper: open review items (a gauge); no dimensions.
pub const REVIEW_OPEN: &str = "review_open";
/// ingest, at every cold start: 1 for each provider configured to authenticate nothing
/// (RECHO_AUTH=none); dims `provider`.
pub const UNAUTHENTICATED_PROVIDERS: &str = "unauthenticated_providers";
/// lifecycle: analytics publications lost after retry (a count); no dimensions.
pub const ANALYTICS_LOST: &str = "analytics_lost";
/// sweeper: open calls quiet for STALE_AFTER_SECS or more (a gauge); no dimensions.
pub const STALE_CALLS: &str = "stale_calls";
/// sweeper: what the stale pass got for each call it acted on; dims `provider`, `result`.
pub const BACKFILL_RESULTS: &str = "backfill_results";

/// The `result` labels of [`BACKFILL_RESULTS`].
pub const BACKFILL_RESULT_LABELS: [&str; 7] = [
    "finalized",
    "alive",
    "not_found",
    "rate_limited",
    "unavailable",
    "refused",
    "gave_up",
];

/// sweeper, one stale pass: `stale_calls` and `backfill_results{provider,result}`.
pub fn record_stale(metrics: &mut Metrics, report: &crate::app::stale::StaleReport) {
    metrics.gauge(STALE_CALLS, Unit::Count, &[], report.stale as f64);
    for (provider, results) in &report.results {
        for (result, n) in results {
            let result = BACKFILL_RESULT_LABELS
                .into_iter()
                .find(|label| label == result)
                .unwrap_or("other");
            let dims = [("provider", provider_label(provider)), ("result", result)];
            metrics.count(BACKFILL_RESULTS, &dims, *n);
        }
    }
}

/// The `provider` label of a name that is not a supported provider (the path segment is the
/// caller's choice; labels stay a small fixed set).
pub const OTHER_PROVIDER: &str = "other";

/// The `provider` label of a provider name: the name itself if callhook supports such a
/// provider, else [`OTHER_PROVIDER`].
pub fn provider_label(name: &str) -> &'static str {
    crate::providers::supported()
        .find(|supported| *supported == name)
        .unwrap_or(OTHER_PROVIDER)
}

/// ingest, one request: `received{provider,result}` when the request names a provider, and
/// `signature_failures` / `duplicates` / `unknown_types` / `malformed` (dims `provider`) as the
/// outcome says. Review reasons are counted for new events only (a duplicate is a duplicate).
pub fn record_ingest(metrics: &mut Metrics, provider: Option<&str>, outcome: &IngestOutcome) {
    let Some(provider) = provider else {
        return;
    };
    let provider = provider_label(provider);
    metrics.count(
        RECEIVED,
        &[("provider", provider), ("result", outcome.as_str())],
        1,
    );
    let also = match outcome {
        IngestOutcome::Unauthorized => Some(SIGNATURE_FAILURES),
        IngestOutcome::Duplicate => Some(DUPLICATES),
        IngestOutcome::Review(ReviewReason::UnknownType) => Some(UNKNOWN_TYPES),
        IngestOutcome::Review(ReviewReason::Malformed) => Some(MALFORMED),
        _ => None,
    };
    if let Some(name) = also {
        metrics.count(name, &[("provider", provider)], 1);
    }
}

/// Milliseconds from `since` to `now`; 0 when `since` is ahead (another machine's clock).
pub fn lag_ms(since: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
    (now - since).num_milliseconds().max(0) as f64
}

/// lifecycle, one event applied to its call: `processing_lag{provider}`, from `taken_on` — when
/// callhook received the event, or queued it again (replay, sweeper) — to `now`. Never from the
/// provider's `occurred_at`: the provider's own delivery delay (or a replayed fixture's
/// years-old time) is not callhook's lag (docs/metrics.md).
pub fn record_processed(
    metrics: &mut Metrics,
    provider: &str,
    taken_on: DateTime<Utc>,
    now: DateTime<Utc>,
) {
    metrics.observe(
        PROCESSING_LAG,
        Unit::Milliseconds,
        &[("provider", provider_label(provider))],
        lag_ms(taken_on, now),
    );
}

/// dispatch, one delivery attempt on `route` (a [`crate::domain::dispatch::Routes::destination`]
/// label): `dispatch_attempts{route}`, and `dispatch_failures{route}` if it failed.
pub fn record_dispatch_attempt(metrics: &mut Metrics, route: &'static str, failed: bool) {
    metrics.count(DISPATCH_ATTEMPTS, &[("route", route)], 1);
    if failed {
        metrics.count(DISPATCH_FAILURES, &[("route", route)], 1);
    }
}

/// dispatch, one batch: [`record_dispatch_attempt`] for each attempt made.
pub fn record_dispatch_attempts<'a>(
    metrics: &mut Metrics,
    attempts: impl IntoIterator<Item = &'a Option<Attempted>>,
) {
    for attempt in attempts.into_iter().flatten() {
        record_dispatch_attempt(metrics, attempt.route, attempt.failed);
    }
}

/// At cold start: a warning and the `unauthenticated_providers` metric (one EMF line to `sink`)
/// for every configured provider that authenticates nothing (RECHO_AUTH=none), so that such a
/// deployment never goes unnoticed. Returns their names.
pub fn warn_unauthenticated(providers: &Providers, sink: &Sink) -> Vec<&'static str> {
    let names = providers.unauthenticated();
    if names.is_empty() {
        return names;
    }
    let mut metrics = Metrics::now();
    for name in &names {
        tracing::warn!(
            provider = name,
            "provider accepts unauthenticated posts: anyone can send its events (they never feed \
             the call-back route)"
        );
        metrics.gauge(
            UNAUTHENTICATED_PROVIDERS,
            Unit::Count,
            &[("provider", name)],
            1.0,
        );
    }
    metrics.flush(sink);
    names
}

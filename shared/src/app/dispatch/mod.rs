//! The dispatch function's work for one message: read the call when it is sent, pick the route,
//! claim the dispatch id in the ledger, send (a Standard Webhooks-signed POST or a call-back
//! request), record the result. docs/dispatch.md is the operator's view; the decisions are in
//! `domain::dispatch`.

use std::future::Future;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::config::vars::CRM_SIGNING_SECRET;
use crate::domain::call::CallRecord;
use crate::domain::dispatch::{
    DispatchMessage, HttpResult, RetryPolicy, Route, RouteKey, Routes, Verdict, classify, describe,
    http_body, plan, queue_body, signed_headers,
};
use crate::domain::review::{ReviewItem, ReviewReason};
use crate::domain::text::truncate_utf8;
use crate::limits::RESPONSE_BODY_LIMIT;
use crate::ports::{Begun, CallReader, Failure, HttpPoster, Ledger, QueueSender, ReviewStore};
use crate::signing::standard_webhooks::SigningSecret;

/// One message off the dispatch queue.
#[derive(Debug, Clone, Copy)]
pub struct QueuedDispatch<'a> {
    pub message_id: &'a str,
    pub body: &'a str,
    /// SQS ApproximateReceiveCount (1 on the first delivery).
    pub receive_count: u32,
}

/// What became of a message. Everything but [`Disposition::Retry`] deletes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    Sent {
        dispatch_id: String,
        route: RouteKey,
        status_code: Option<u16>,
    },
    AlreadySent {
        dispatch_id: String,
    },
    Dropped {
        dispatch_id: String,
        route: RouteKey,
    },
    Reviewed {
        subject_id: String,
        reason: ReviewReason,
        detail: String,
    },
    /// Leave it on the queue, invisible for `after_secs`.
    Retry {
        after_secs: u32,
        detail: String,
    },
}

impl Disposition {
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            Disposition::Retry { after_secs, .. } => Some(*after_secs),
            _ => None,
        }
    }
}

/// What handling one message did beyond its [`Disposition`], for logs and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The call the message is about (absent when the message could not be read).
    pub call_id: Option<String>,
    /// The call's provider (absent until the call was read).
    pub provider: Option<String>,
    /// The delivery attempt made, if one was (none for a message dropped, already sent,
    /// unroutable or unreadable, or one that could not claim its dispatch id).
    pub attempt: Option<Attempted>,
}

/// One delivery attempt: a POST or a SendMessage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempted {
    /// [`Routes::destination`] of the route used.
    pub route: &'static str,
    /// Not sent: retryable (5xx, 408, 429, timeout, transport) or not (other statuses).
    pub failed: bool,
}

/// One attempt's result, whatever the destination.
struct Attempt {
    verdict: Verdict,
    status_code: Option<u16>,
    response_body: Option<String>,
    retry_after_secs: Option<u32>,
    detail: String,
}

pub struct Dispatcher<C, L, R, H, Q> {
    pub routes: Routes,
    pub policy: RetryPolicy,
    pub signing_secret: Option<SigningSecret>,
    pub calls: C,
    pub ledger: L,
    /// `None` when REVIEW_TABLE is not set.
    pub review: Option<R>,
    pub http: H,
    pub queues: Q,
}

impl<C, L, R, H, Q> Dispatcher<C, L, R, H, Q>
where
    C: CallReader,
    L: Ledger,
    R: ReviewStore,
    H: HttpPoster,
    Q: QueueSender,
{
    /// Handles one message: never panics on bad input, never sends a sent dispatch id again.
    pub async fn handle(&self, delivery: &QueuedDispatch<'_>, now: DateTime<Utc>) -> Disposition {
        self.handle_reporting(delivery, now).await.0
    }

    /// [`Dispatcher::handle`], with what the logs and metrics need to know of it.
    pub async fn handle_reporting(
        &self,
        delivery: &QueuedDispatch<'_>,
        now: DateTime<Utc>,
    ) -> (Disposition, Report) {
        let mut report = Report::default();
        let disposition = self.run(delivery, now, &mut report).await;
        (disposition, report)
    }

    async fn run(
        &self,
        delivery: &QueuedDispatch<'_>,
        now: DateTime<Utc>,
        report: &mut Report,
    ) -> Disposition {
        let attempt = delivery.receive_count.max(1);
        let message: DispatchMessage = match serde_json::from_str(delivery.body) {
            Ok(message) => message,
            Err(err) => {
                let item = ReviewItem::open(
                    format!("dispatch#sqs#{}", delivery.message_id),
                    ReviewReason::Malformed,
                    delivery.message_id,
                    Value::String(delivery.body.to_owned()),
                    attempt,
                    &format!("not a dispatch message: {err}"),
                    None,
                    None,
                    now,
                );
                return self.review(item, attempt).await;
            }
        };
        report.call_id = Some(message.call_id.clone());
        let record = match self.calls.read_call(&message.call_id).await {
            Ok(Some(record)) => record,
            Ok(None) => {
                // The lifecycle queues a dispatch only after the call is written, so this
                // should not happen; retry in case, then hand it to a person.
                let detail = format!("call {} not found", message.call_id);
                if self.policy.exhausted(attempt) {
                    let item = self.review_item(
                        &message,
                        &message.dispatch_id,
                        attempt,
                        &detail,
                        None,
                        None,
                        now,
                    );
                    return self.review(item, attempt).await;
                }
                return self.retry(attempt, None, detail);
            }
            Err(err) => return self.retry(attempt, None, err.to_string()),
        };

        report.provider = Some(record.provider.clone());
        let (route_key, dispatch_id) = plan(&message, &record);
        let route = self.routes.get(route_key).clone();
        if record.unauthenticated && self.routes.feeds_callback(route_key) {
            // Anyone could have posted its facts, and so chosen whom to call back.
            let detail = format!(
                "route {} leads to the call-back queue, and the call has unauthenticated events \
                 (a provider configured to check nothing): never sent there",
                route_key.as_str()
            );
            let item = ReviewItem::open(
                crate::domain::review::dispatch_pk(&dispatch_id),
                ReviewReason::Unauthenticated,
                &dispatch_id,
                serde_json::to_value(&message).unwrap_or(Value::Null),
                attempt,
                &detail,
                None,
                None,
                now,
            );
            return self.review(item, attempt).await;
        }
        match &route {
            Route::Drop => {
                return Disposition::Dropped {
                    dispatch_id,
                    route: route_key,
                };
            }
            Route::Unconfigured(var) => {
                let detail = format!(
                    "route {} has no destination: {var} is not set",
                    route_key.as_str()
                );
                let item =
                    self.review_item(&message, &dispatch_id, attempt, &detail, None, None, now);
                return self.review(item, attempt).await;
            }
            Route::Http(_) | Route::Sqs(_) => {}
        }

        match self
            .ledger
            .begin(&dispatch_id, now, self.policy.lease_secs())
            .await
        {
            Ok(Begun::Claimed { .. }) => {}
            Ok(Begun::AlreadySent { .. }) => return Disposition::AlreadySent { dispatch_id },
            Ok(Begun::InFlight { until }) => {
                let secs = (until - now)
                    .num_seconds()
                    .clamp(1, i64::from(self.policy.max_secs.max(1)));
                return Disposition::Retry {
                    after_secs: secs as u32,
                    detail: format!("{dispatch_id} is being sent by another attempt"),
                };
            }
            Err(err) => return self.retry(attempt, None, err.to_string()),
        }

        let result = match &route {
            Route::Http(url) => self.post(url, &message, &dispatch_id, &record, now).await,
            Route::Sqs(url) => {
                let body = queue_body(&message, &dispatch_id, &record, now).to_string();
                match self.queues.send_to(url, body).await {
                    Ok(()) => Attempt {
                        verdict: Verdict::Sent,
                        status_code: None,
                        response_body: None,
                        retry_after_secs: None,
                        detail: "queued".to_owned(),
                    },
                    Err(err) => Attempt {
                        verdict: Verdict::Retry,
                        status_code: None,
                        response_body: None,
                        retry_after_secs: None,
                        detail: err.to_string(),
                    },
                }
            }
            Route::Drop | Route::Unconfigured(_) => unreachable!("handled above"),
        };
        report.attempt = Some(Attempted {
            route: self.routes.destination(route_key),
            failed: result.verdict != Verdict::Sent,
        });

        let route_name = route_key.as_str();
        match result.verdict {
            Verdict::Sent => {
                if let Err(err) = self
                    .ledger
                    .mark_sent(&dispatch_id, result.status_code, now)
                    .await
                {
                    // Sent, and the message is acknowledged: only a replay could send it again,
                    // and the receiver dedupes it by webhook-id.
                    tracing::warn!(dispatch_id, error = %err, "sent, but the ledger was not updated");
                }
                Disposition::Sent {
                    dispatch_id,
                    route: route_key,
                    status_code: result.status_code,
                }
            }
            Verdict::Retry if !self.policy.exhausted(attempt) => {
                let failure = Failure {
                    terminal: false,
                    status_code: result.status_code,
                    detail: &result.detail,
                };
                if let Err(err) = self.ledger.mark_failed(&dispatch_id, &failure, now).await {
                    tracing::warn!(dispatch_id, error = %err, "ledger not updated after a failed attempt");
                }
                let detail = format!("{route_name}: {}", result.detail);
                self.retry(attempt, result.retry_after_secs, detail)
            }
            verdict => {
                let detail = if verdict == Verdict::Retry {
                    format!(
                        "{route_name}: gave up after {attempt} attempts: {}",
                        result.detail
                    )
                } else {
                    format!("{route_name}: {}", result.detail)
                };
                let failure = Failure {
                    terminal: true,
                    status_code: result.status_code,
                    detail: &detail,
                };
                if let Err(err) = self.ledger.mark_failed(&dispatch_id, &failure, now).await {
                    tracing::warn!(dispatch_id, error = %err, "ledger not updated after giving up");
                }
                let item = self.review_item(
                    &message,
                    &dispatch_id,
                    attempt,
                    &detail,
                    result.status_code,
                    result.response_body.as_deref(),
                    now,
                );
                self.review(item, attempt).await
            }
        }
    }

    async fn post(
        &self,
        url: &str,
        message: &DispatchMessage,
        dispatch_id: &str,
        record: &CallRecord,
        now: DateTime<Utc>,
    ) -> Attempt {
        let Some(secret) = &self.signing_secret else {
            return Attempt {
                verdict: Verdict::Reject,
                status_code: None,
                response_body: None,
                retry_after_secs: None,
                detail: format!("{CRM_SIGNING_SECRET} is not set"),
            };
        };
        let body = http_body(message, dispatch_id, record)
            .to_string()
            .into_bytes();
        let headers = signed_headers(secret.bytes(), dispatch_id, now.timestamp(), &body);
        let result = self.http.post(url, &headers, body).await;
        let verdict = classify(&result);
        let detail = match &result {
            HttpResult::Timeout => format!("timed out after {} s", self.policy.timeout_secs),
            other => describe(other),
        };
        match result {
            HttpResult::Response {
                status,
                body,
                retry_after_secs,
            } => Attempt {
                verdict,
                status_code: Some(status),
                response_body: Some(truncate_utf8(&body, RESPONSE_BODY_LIMIT).to_owned()),
                retry_after_secs,
                detail,
            },
            _ => Attempt {
                verdict,
                status_code: None,
                response_body: None,
                retry_after_secs: None,
                detail,
            },
        }
    }

    fn retry(&self, attempt: u32, asked: Option<u32>, detail: String) -> Disposition {
        Disposition::Retry {
            after_secs: self.policy.retry_after(attempt, asked),
            detail,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn review_item(
        &self,
        message: &DispatchMessage,
        dispatch_id: &str,
        attempt: u32,
        detail: &str,
        status_code: Option<u16>,
        response_body: Option<&str>,
        now: DateTime<Utc>,
    ) -> ReviewItem {
        ReviewItem::dispatch_failed(
            dispatch_id,
            serde_json::to_value(message).unwrap_or(Value::Null),
            attempt,
            detail,
            status_code,
            response_body,
            now,
        )
    }

    async fn review(&self, item: ReviewItem, attempt: u32) -> Disposition {
        let Some(store) = &self.review else {
            return self.retry(
                attempt,
                None,
                format!(
                    "{}; REVIEW_TABLE is not set, so the message stays on the queue until its DLQ",
                    item.detail
                ),
            );
        };
        match store.put(&item).await {
            Ok(()) => Disposition::Reviewed {
                subject_id: item.subject_id,
                reason: item.reason,
                detail: item.detail,
            },
            Err(err) => self.retry(
                attempt,
                None,
                format!("{}; review not written: {err}", item.detail),
            ),
        }
    }
}

/// Decides what becomes of one message and reports what the logs and metrics need: the
/// [`Dispatcher`], or a test's stand-in for it.
pub trait Handler: Send + Sync {
    fn handle_delivery<'a>(
        &'a self,
        delivery: &'a QueuedDispatch<'a>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = (Disposition, Report)> + Send + 'a;
}

impl<C, L, R, H, Q> Handler for Dispatcher<C, L, R, H, Q>
where
    C: CallReader,
    L: Ledger,
    R: ReviewStore,
    H: HttpPoster,
    Q: QueueSender,
{
    fn handle_delivery<'a>(
        &'a self,
        delivery: &'a QueuedDispatch<'a>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = (Disposition, Report)> + Send + 'a {
        self.handle_reporting(delivery, now)
    }
}

/// The `outcome` logged for a disposition.
pub fn outcome(disposition: &Disposition) -> &'static str {
    match disposition {
        Disposition::Sent { .. } => "sent",
        Disposition::AlreadySent { .. } => "already_sent",
        Disposition::Dropped { .. } => "dropped",
        Disposition::Reviewed { .. } => "reviewed",
        Disposition::Retry { .. } => "retry",
    }
}

/// One line per message: message, dispatch, provider, call, outcome, the destination of an
/// attempt made, duration.
pub fn log(message_id: &str, disposition: &Disposition, report: &Report, duration_ms: f64) {
    let provider = report.provider.as_deref().unwrap_or("");
    let call_id = report.call_id.as_deref().unwrap_or("");
    let destination = report.attempt.map_or("", |a| a.route);
    let outcome = outcome(disposition);
    match disposition {
        Disposition::Sent {
            dispatch_id,
            route,
            status_code,
        } => tracing::info!(
            message_id,
            dispatch_id,
            provider,
            call_id,
            outcome,
            route = route.as_str(),
            destination,
            status_code,
            duration_ms,
            "dispatched"
        ),
        Disposition::AlreadySent { dispatch_id } => tracing::info!(
            message_id,
            dispatch_id,
            provider,
            call_id,
            outcome,
            duration_ms,
            "already sent; nothing to do"
        ),
        Disposition::Dropped { dispatch_id, route } => tracing::info!(
            message_id,
            dispatch_id,
            provider,
            call_id,
            outcome,
            route = route.as_str(),
            duration_ms,
            "dropped by route"
        ),
        Disposition::Reviewed {
            subject_id,
            reason,
            detail,
        } => tracing::warn!(
            message_id,
            dispatch_id = subject_id,
            provider,
            call_id,
            outcome,
            destination,
            %reason,
            detail,
            duration_ms,
            "sent to review"
        ),
        Disposition::Retry { after_secs, detail } => tracing::warn!(
            message_id,
            provider,
            call_id,
            outcome,
            destination,
            after_secs,
            detail,
            duration_ms,
            "dispatch will be retried"
        ),
    }
}

#[cfg(test)]
mod tests;

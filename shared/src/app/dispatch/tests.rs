use std::collections::VecDeque;
use std::sync::Mutex;

use super::*;
use crate::config::DispatchConfig;
use crate::config::vars::{CALLBACK_QUEUE_URL, DISPATCH_ROUTES};
use crate::domain::call::{Effect, action_dispatch_id, update_dispatch_id};
use crate::domain::event::Outcome;
use crate::ports::{LedgerStatus, QueueError, StoredCall};
use crate::testing::dispatch::*;
use crate::testing::{MemoryCallStore, MemoryLedger, MemoryReviewStore};

// ---- the dispatcher, in memory ----

/// (url, headers, body) of one POST.
type Request = (String, Vec<(&'static str, String)>, Vec<u8>);

#[derive(Default)]
struct ScriptedHttp {
    script: Mutex<VecDeque<HttpResult>>,
    requests: Mutex<Vec<Request>>,
}

impl ScriptedHttp {
    fn answering(results: Vec<HttpResult>) -> Self {
        ScriptedHttp {
            script: Mutex::new(results.into()),
            requests: Mutex::default(),
        }
    }

    fn urls(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.0.clone())
            .collect()
    }
}

impl HttpPoster for ScriptedHttp {
    async fn post(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
    ) -> HttpResult {
        self.requests
            .lock()
            .unwrap()
            .push((url.to_owned(), headers.to_vec(), body));
        self.script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| status(200))
    }
}

#[derive(Default)]
struct Queues {
    sent: Mutex<Vec<(String, String)>>,
    fail: std::sync::atomic::AtomicBool,
}

impl QueueSender for Queues {
    async fn send_to(&self, queue_url: &str, body: String) -> Result<(), QueueError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(QueueError("injected".into()));
        }
        self.sent.lock().unwrap().push((queue_url.to_owned(), body));
        Ok(())
    }
}

fn status(status: u16) -> HttpResult {
    HttpResult::Response {
        status,
        body: format!("status {status}"),
        retry_after_secs: None,
    }
}

type TestDispatcher =
    Dispatcher<MemoryCallStore, MemoryLedger, MemoryReviewStore, ScriptedHttp, Queues>;

fn dispatcher(records: Vec<CallRecord>, http: Vec<HttpResult>) -> TestDispatcher {
    let cfg = DispatchConfig::from_env(&env(&[])).unwrap();
    let calls = MemoryCallStore::default();
    for r in records {
        calls.calls.lock().unwrap().insert(
            r.call_id.clone(),
            StoredCall {
                record: r,
                ..StoredCall::default()
            },
        );
    }
    Dispatcher {
        routes: cfg.routes,
        policy: cfg.policy,
        signing_secret: cfg.signing_secret,
        calls,
        ledger: MemoryLedger::default(),
        review: Some(MemoryReviewStore::default()),
        http: ScriptedHttp::answering(http),
        queues: Queues::default(),
    }
}

async fn deliver(d: &TestDispatcher, m: &DispatchMessage, receive_count: u32) -> Disposition {
    let body = serde_json::to_string(m).unwrap();
    d.handle(
        &QueuedDispatch {
            message_id: "sqs-1",
            body: &body,
            receive_count,
        },
        now(),
    )
    .await
}

#[tokio::test]
async fn server_errors_retry_with_backoff_then_one_send_is_recorded() {
    let d = dispatcher(
        vec![record(Some(Outcome::Completed))],
        vec![status(500), status(503), status(200)],
    );
    let m = finalize(Some(Outcome::Completed));
    assert_eq!(deliver(&d, &m, 1).await.retry_after(), Some(30));
    assert_eq!(
        d.ledger.entry(&m.dispatch_id).unwrap().status,
        LedgerStatus::Retrying
    );
    assert_eq!(deliver(&d, &m, 2).await.retry_after(), Some(60));
    assert_eq!(
        deliver(&d, &m, 3).await,
        Disposition::Sent {
            dispatch_id: m.dispatch_id.clone(),
            route: RouteKey::Completed,
            status_code: Some(200)
        }
    );
    assert_eq!(d.http.urls(), [CRM, CRM, CRM]);
    let entry = d.ledger.entry(&m.dispatch_id).unwrap();
    assert_eq!(
        (entry.status, entry.attempts, entry.status_code),
        (LedgerStatus::Sent, 3, Some(200))
    );
    // A redelivered copy is never sent again.
    assert_eq!(
        deliver(&d, &m, 1).await,
        Disposition::AlreadySent {
            dispatch_id: m.dispatch_id.clone()
        }
    );
    assert_eq!(d.http.urls().len(), 3);
    assert!(d.review.as_ref().unwrap().is_empty());
}

#[tokio::test]
async fn reports_name_the_call_and_each_attempt_made() {
    let d = dispatcher(
        vec![record(Some(Outcome::Completed))],
        vec![status(500), status(200)],
    );
    let m = finalize(Some(Outcome::Completed));
    let body = serde_json::to_string(&m).unwrap();
    let report = |receive_count| {
        let body = body.clone();
        let d = &d;
        async move {
            let delivery = QueuedDispatch {
                message_id: "sqs-1",
                body: &body,
                receive_count,
            };
            d.handle_reporting(&delivery, now()).await
        }
    };
    let crm = |failed| {
        Some(Attempted {
            route: "crm",
            failed,
        })
    };
    let (disposition, first) = report(1).await;
    assert!(disposition.retry_after().is_some());
    assert_eq!(
        first,
        Report {
            call_id: Some(CALL.into()),
            provider: Some("telnyx".into()),
            attempt: crm(true),
        }
    );
    let (disposition, second) = report(2).await;
    assert!(matches!(disposition, Disposition::Sent { .. }));
    assert_eq!(second.attempt, crm(false));
    let (disposition, third) = report(3).await;
    assert!(matches!(disposition, Disposition::AlreadySent { .. }));
    assert_eq!(third.attempt, None, "no attempt: nothing sent");

    // A client error is a failed attempt too (not retryable).
    let d = dispatcher(vec![record(Some(Outcome::Completed))], vec![status(400)]);
    let delivery = QueuedDispatch {
        message_id: "sqs-2",
        body: &body,
        receive_count: 1,
    };
    let (disposition, rejected) = d.handle_reporting(&delivery, now()).await;
    assert!(matches!(disposition, Disposition::Reviewed { .. }));
    assert_eq!(rejected.attempt, crm(true));

    // The call-back queue is an attempt on `callback`; an unreadable message is none.
    let d = dispatcher(vec![record(Some(Outcome::Busy))], vec![]);
    let (_, queued) = d.handle_reporting(&delivery, now()).await;
    assert_eq!(
        queued.attempt,
        Some(Attempted {
            route: "callback",
            failed: false
        })
    );
    let garbage = QueuedDispatch {
        body: "not json",
        ..delivery
    };
    assert_eq!(
        d.handle_reporting(&garbage, now()).await.1,
        Report::default()
    );
}

#[tokio::test]
async fn retry_after_from_the_receiver_is_honoured() {
    let d = dispatcher(
        vec![record(Some(Outcome::Completed))],
        vec![HttpResult::Response {
            status: 429,
            body: String::new(),
            retry_after_secs: Some(200),
        }],
    );
    assert_eq!(
        deliver(&d, &finalize(None), 1).await.retry_after(),
        Some(200)
    );
}

#[tokio::test]
async fn client_errors_go_to_review_with_status_and_body() {
    let long = "e".repeat(10_000);
    let d = dispatcher(
        vec![record(Some(Outcome::Completed))],
        vec![HttpResult::Response {
            status: 400,
            body: long,
            retry_after_secs: None,
        }],
    );
    let m = finalize(Some(Outcome::Completed));
    let disposition = deliver(&d, &m, 1).await;
    assert!(
        matches!(disposition, Disposition::Reviewed { .. }),
        "{disposition:?}"
    );
    let item = d
        .review
        .as_ref()
        .unwrap()
        .get("dispatch#telnyx#call-1#completed")
        .unwrap();
    assert_eq!(item.reason, "dispatch_failed");
    assert_eq!(item.subject_id, m.dispatch_id);
    assert_eq!(item.status_code, Some(400));
    assert_eq!(item.response_body.as_ref().unwrap().len(), 4096);
    assert_eq!(item.payload, serde_json::to_value(&m).unwrap());
    assert_eq!(item.attempts, 1);
    assert!(item.detail.contains("answered 400"), "{}", item.detail);
    assert_eq!(
        d.ledger.entry(&m.dispatch_id).unwrap().status,
        LedgerStatus::Failed
    );
}

#[tokio::test]
async fn exhausted_retries_go_to_review() {
    let d = dispatcher(
        vec![record(Some(Outcome::Completed))],
        vec![HttpResult::Timeout; 5],
    );
    let m = finalize(None);
    for n in 1..5 {
        assert!(deliver(&d, &m, n).await.retry_after().is_some());
    }
    let last = deliver(&d, &m, 5).await;
    let Disposition::Reviewed { detail, .. } = last else {
        panic!("{last:?}")
    };
    assert!(
        detail.contains("gave up after 5 attempts: timed out after 10 s"),
        "{detail}"
    );
    assert_eq!(d.http.urls().len(), 5);
}

#[tokio::test]
async fn unanswered_calls_request_a_callback_not_the_crm() {
    let d = dispatcher(vec![record(Some(Outcome::Busy))], vec![]);
    let m = finalize(Some(Outcome::Busy));
    assert!(matches!(
        deliver(&d, &m, 1).await,
        Disposition::Sent {
            route: RouteKey::Busy,
            status_code: None,
            ..
        }
    ));
    assert!(d.http.urls().is_empty());
    let sent = d.queues.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, CALLBACKS);
    let body: Value = serde_json::from_str(&sent[0].1).unwrap();
    assert_eq!(body["type"], "callback.requested");
    assert_eq!(body["outcome"], "busy");

    // A queue failure retries.
    let d = dispatcher(vec![record(Some(Outcome::NoAnswer))], vec![]);
    d.queues
        .fail
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        deliver(&d, &finalize(None), 1).await.retry_after(),
        Some(30)
    );
}

#[tokio::test]
async fn an_escalated_completion_opens_the_one_ticket() {
    let d = dispatcher(vec![record(Some(Outcome::Escalated))], vec![]);
    // Finalized as completed; escalated within the settle window.
    let completion = finalize(Some(Outcome::Completed));
    let escalate = DispatchMessage::from_effect(&Effect::Escalate {
        call_id: CALL.into(),
        event_id: "stateset#esc".into(),
        dispatch_id: crate::domain::call::escalation_dispatch_id(CALL),
    })
    .unwrap();
    assert_eq!(
        deliver(&d, &completion, 1).await,
        Disposition::Sent {
            dispatch_id: "telnyx#call-1#escalated".into(),
            route: RouteKey::Escalated,
            status_code: Some(200)
        }
    );
    assert_eq!(
        deliver(&d, &escalate, 1).await,
        Disposition::AlreadySent {
            dispatch_id: "telnyx#call-1#escalated".into()
        }
    );
    let requests = d.http.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].0, TICKETS);
    let id = requests[0]
        .1
        .iter()
        .find(|(k, _)| *k == "webhook-id")
        .unwrap();
    assert_eq!(id.1, "telnyx#call-1#escalated");
}

#[tokio::test]
async fn updates_and_actions_follow_their_routes() {
    let d = dispatcher(vec![record(Some(Outcome::Completed))], vec![]);
    let update = DispatchMessage::from_effect(&Effect::Enrich {
        call_id: CALL.into(),
        event_id: "telnyx#rec".into(),
        dispatch_id: update_dispatch_id(CALL, "telnyx#rec"),
    })
    .unwrap();
    let action = DispatchMessage::from_effect(&Effect::Action {
        call_id: CALL.into(),
        event_id: "telnyx#act".into(),
        dispatch_id: action_dispatch_id(CALL, "telnyx#act"),
    })
    .unwrap();
    assert!(matches!(
        deliver(&d, &update, 1).await,
        Disposition::Sent {
            route: RouteKey::Updated,
            ..
        }
    ));
    assert!(matches!(
        deliver(&d, &action, 1).await,
        Disposition::Sent {
            route: RouteKey::Action,
            ..
        }
    ));
    assert_eq!(d.http.urls(), [CRM, TICKETS]);
    let body: Value = serde_json::from_slice(&d.http.requests.lock().unwrap()[0].2).unwrap();
    assert_eq!(body["type"], "call.updated");
}

#[tokio::test]
async fn unconfigured_routes_go_to_review_and_drop_drops() {
    let mut d = dispatcher(vec![record(Some(Outcome::Busy))], vec![]);
    d.routes = Routes::from_env(&env(&[(CALLBACK_QUEUE_URL, "")])).unwrap();
    let m = finalize(Some(Outcome::Busy));
    let Disposition::Reviewed { detail, .. } = deliver(&d, &m, 1).await else {
        panic!()
    };
    assert_eq!(
        detail,
        "route busy has no destination: CALLBACK_QUEUE_URL is not set"
    );
    assert!(d.ledger.entry(&m.dispatch_id).is_none());

    d.routes = Routes::from_env(&env(&[(DISPATCH_ROUTES, r#"{"busy": "drop"}"#)])).unwrap();
    assert_eq!(
        deliver(&d, &m, 1).await,
        Disposition::Dropped {
            dispatch_id: m.dispatch_id.clone(),
            route: RouteKey::Busy
        }
    );
    assert!(d.queues.sent.lock().unwrap().is_empty());
}

#[tokio::test]
async fn malformed_messages_missing_calls_and_store_outages() {
    let d = dispatcher(vec![], vec![]);
    let disposition = d
        .handle(
            &QueuedDispatch {
                message_id: "m-1",
                body: "{\"nope\":1}",
                receive_count: 1,
            },
            now(),
        )
        .await;
    assert!(matches!(&disposition, Disposition::Reviewed { reason, .. } if reason == "malformed"));
    assert!(d.review.as_ref().unwrap().get("dispatch#sqs#m-1").is_some());

    // No call yet: retried, and reviewed once attempts are exhausted.
    let m = finalize(None);
    assert_eq!(deliver(&d, &m, 1).await.retry_after(), Some(30));
    assert!(matches!(
        deliver(&d, &m, 5).await,
        Disposition::Reviewed { .. }
    ));

    // Ledger down: retry, nothing sent.
    let d = dispatcher(vec![record(None)], vec![]);
    d.ledger
        .fail
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(deliver(&d, &m, 1).await.retry_after().is_some());
    assert!(d.http.urls().is_empty());
}

#[tokio::test]
async fn without_a_review_table_failures_stay_on_the_queue() {
    let mut d = dispatcher(vec![record(None)], vec![status(400)]);
    d.review = None;
    let disposition = deliver(&d, &finalize(None), 1).await;
    let Disposition::Retry { detail, .. } = disposition else {
        panic!("{disposition:?}")
    };
    assert!(detail.contains("REVIEW_TABLE is not set"), "{detail}");

    // And a review store outage retries too.
    let d = dispatcher(vec![record(None)], vec![status(404)]);
    d.review
        .as_ref()
        .unwrap()
        .fail
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(
        deliver(&d, &finalize(None), 1)
            .await
            .retry_after()
            .is_some()
    );
}

#[tokio::test]
async fn a_copy_in_flight_waits_for_the_lease() {
    let d = dispatcher(vec![record(None)], vec![]);
    let m = finalize(None);
    d.ledger.begin(&m.dispatch_id, now(), 20).await.unwrap();
    assert_eq!(deliver(&d, &m, 1).await.retry_after(), Some(20));
    assert!(d.http.urls().is_empty());
}

/// A call with an event from an unauthenticated provider (RECHO_AUTH=none) never feeds the
/// call-back route, whatever route leads there: anyone could have posted its facts and chosen
/// the number to call. It goes to review; other routes are unchanged.
#[tokio::test]
async fn a_call_with_unauthenticated_events_never_feeds_the_callback_route() {
    let mut busy = record(Some(Outcome::Busy));
    busy.unauthenticated = true;
    let d = dispatcher(vec![busy.clone()], vec![]);
    let disposition = deliver(&d, &finalize(Some(Outcome::Busy)), 1).await;
    let Disposition::Reviewed { reason, detail, .. } = disposition else {
        panic!("{disposition:?}")
    };
    assert_eq!(reason, ReviewReason::Unauthenticated);
    assert!(detail.contains("unauthenticated"), "{detail}");
    assert!(d.queues.sent.lock().unwrap().is_empty(), "nothing queued");
    assert!(d.http.urls().is_empty());

    // Named in DISPATCH_ROUTES, or the call-back queue given as a route's own URL: still not.
    for routes in [
        r#"{"completed": "callback"}"#,
        &format!(r#"{{"completed": {{"sqs": "{CALLBACKS}"}}}}"#),
    ] {
        let mut completed = record(Some(Outcome::Completed));
        completed.unauthenticated = true;
        let mut d = dispatcher(vec![completed], vec![]);
        d.routes = Routes::from_env(&env(&[(DISPATCH_ROUTES, routes)])).unwrap();
        let disposition = deliver(&d, &finalize(Some(Outcome::Completed)), 1).await;
        assert!(
            matches!(disposition, Disposition::Reviewed { .. }),
            "{routes}: {disposition:?}"
        );
        assert!(d.queues.sent.lock().unwrap().is_empty(), "{routes}");
    }

    // The CRM still hears of a completed call, flagged in the record it receives.
    let mut completed = record(Some(Outcome::Completed));
    completed.unauthenticated = true;
    let d = dispatcher(vec![completed], vec![]);
    assert!(matches!(
        deliver(&d, &finalize(Some(Outcome::Completed)), 1).await,
        Disposition::Sent { .. }
    ));
    let body: Value = serde_json::from_slice(&d.http.requests.lock().unwrap()[0].2).unwrap();
    assert_eq!(body["call"]["unauthenticated"], true);
}

//! The SQS partial-batch loop every queue consumer uses (lifecycle, dispatch, review), written
//! once: each record is handled on its own, a panic fails only its record, a record to retry
//! is reported as a batch item failure (and, where asked, made invisible for its backoff), and
//! everything else is acknowledged. The event source mapping must have
//! `ReportBatchItemFailures` on.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use callhook::limits::SQS_MAX_VISIBILITY_SECS;
use chrono::{DateTime, Utc};
use futures::FutureExt;

/// One record as a handler sees it.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub message_id: &'a str,
    pub body: &'a str,
    /// SQS ApproximateReceiveCount (1 on the first delivery, and when absent).
    pub receive_count: u32,
    /// When the message was first sent (SQS `SentTimestamp`), if readable.
    pub sent_at: Option<DateTime<Utc>>,
    pub message: &'a SqsMessage,
}

impl<'a> Record<'a> {
    pub fn of(message: &'a SqsMessage) -> Record<'a> {
        Record {
            message_id: message.message_id.as_deref().unwrap_or(""),
            body: message.body.as_deref().unwrap_or(""),
            receive_count: receive_count(message),
            sent_at: message
                .attributes
                .get("SentTimestamp")
                .and_then(|ms| ms.parse::<i64>().ok())
                .and_then(DateTime::from_timestamp_millis),
            message,
        }
    }
}

/// SQS's ApproximateReceiveCount (1 when absent or unreadable).
pub fn receive_count(message: &SqsMessage) -> u32 {
    message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// What became of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Handled (or given to a person): SQS deletes it.
    Done,
    /// Leave it on the queue; with a delay, invisible that long (else the queue's visibility
    /// timeout applies).
    Retry { after_secs: Option<u32> },
}

/// A function's work on one record. It logs its own outcome; the loop logs only panics.
pub trait RecordHandler: Sync {
    /// What the function wants to know of each record afterwards (for its metrics).
    type Report: Send;

    fn handle<'a>(
        &'a self,
        record: Record<'a>,
    ) -> impl Future<Output = (Settled, Self::Report)> + Send + 'a;
}

/// A function's work on the records of a batch that share a key (see [`Order`]), taken
/// together: e.g. the lifecycle applies one call's events with one read and one write.
pub trait GroupHandler: Sync {
    type Report: Send;

    /// One settlement and report per record of `group`, in its order. A panic fails the whole
    /// group.
    fn handle_group<'a>(
        &'a self,
        group: &'a [Record<'a>],
    ) -> impl Future<Output = Vec<(Settled, Self::Report)>> + Send + 'a;
}

/// A [`RecordHandler`] taken as groups: each record on its own, one after the other, a panic
/// failing only its record.
struct EachRecord<'h, H>(&'h H);

impl<H: RecordHandler> GroupHandler for EachRecord<'_, H> {
    type Report = Option<H::Report>;

    async fn handle_group<'a>(&'a self, group: &'a [Record<'a>]) -> Vec<(Settled, Self::Report)> {
        let mut out = Vec::with_capacity(group.len());
        for record in group {
            out.push(one(self.0, *record).await);
        }
        out
    }
}

/// How the records of a batch are taken.
#[derive(Debug, Clone, Copy)]
pub enum Order {
    /// One after the other, in the order SQS gave them, each a group of its own.
    InOrder,
    /// Records with the same key form a group, taken one after the other; different groups at
    /// once (a record without a key is a group of its own).
    ConcurrentBy(fn(&SqsMessage) -> Option<String>),
}

/// The call a message names in its top-level `call_id` (queued events and dispatch messages
/// both do), read without the rest of it: the key that groups a batch by call. An unreadable
/// message, or one naming no call, is a group of its own.
pub fn call_id_of(message: &SqsMessage) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Named {
        call_id: Option<String>,
    }
    serde_json::from_str::<Named>(message.body.as_deref()?)
        .ok()?
        .call_id
}

/// Where retried records are made invisible for their backoff.
pub struct Visibility<'a> {
    pub sqs: &'a aws_sdk_sqs::Client,
    pub queue_url: &'a str,
}

/// The batch's response and each record's report (`None` for a record that panicked), in the
/// order of the batch.
pub async fn process<H: RecordHandler>(
    handler: &H,
    event: &SqsEvent,
    order: Order,
    visibility: Option<&Visibility<'_>>,
) -> (SqsBatchResponse, Vec<Option<H::Report>>) {
    let (response, reports) = process_groups(&EachRecord(handler), event, order, visibility).await;
    (response, reports.into_iter().map(Option::flatten).collect())
}

/// [`process`] for a handler that takes each group at once.
pub async fn process_groups<H: GroupHandler>(
    handler: &H,
    event: &SqsEvent,
    order: Order,
    visibility: Option<&Visibility<'_>>,
) -> (SqsBatchResponse, Vec<Option<H::Report>>) {
    let records: Vec<Record<'_>> = event.records.iter().map(Record::of).collect();
    let indexes: Vec<Vec<usize>> = match order {
        Order::InOrder => (0..records.len()).map(|i| vec![i]).collect(),
        Order::ConcurrentBy(key) => {
            let messages: Vec<&SqsMessage> = event.records.iter().collect();
            groups(&messages, key)
        }
    };
    let groups: Vec<Vec<Record<'_>>> = indexes
        .iter()
        .map(|group| group.iter().map(|&i| records[i]).collect())
        .collect();
    let settled: Vec<Vec<(Settled, Option<H::Report>)>> = match order {
        Order::InOrder => {
            let mut out = Vec::with_capacity(groups.len());
            for group in &groups {
                out.push(guarded(handler, group).await);
            }
            out
        }
        Order::ConcurrentBy(_) => {
            futures::future::join_all(groups.iter().map(|group| guarded(handler, group))).await
        }
    };
    let mut ordered: Vec<(usize, Settled, Option<H::Report>)> = indexes
        .iter()
        .zip(settled)
        .flat_map(|(group, settled)| {
            group
                .iter()
                .zip(settled)
                .map(|(&i, (settled, report))| (i, settled, report))
        })
        .collect();
    ordered.sort_by_key(|(i, ..)| *i);
    let mut response = SqsBatchResponse::default();
    let mut reports = Vec::with_capacity(ordered.len());
    for (i, settled, report) in ordered {
        reports.push(report);
        let Settled::Retry { after_secs } = settled else {
            continue;
        };
        let record = records[i];
        let receipt = record.message.receipt_handle.as_deref();
        if let (Some(after), Some(visibility), Some(receipt)) = (after_secs, visibility, receipt) {
            hide(visibility, receipt, after).await;
        }
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = record.message_id.to_owned();
        response.batch_item_failures.push(failure);
    }
    (response, reports)
}

/// One group, a panic caught: it fails that group alone.
async fn guarded<H: GroupHandler>(
    handler: &H,
    group: &[Record<'_>],
) -> Vec<(Settled, Option<H::Report>)> {
    let started = Instant::now();
    match AssertUnwindSafe(handler.handle_group(group))
        .catch_unwind()
        .await
    {
        Ok(settled) if settled.len() == group.len() => settled
            .into_iter()
            .map(|(settled, report)| (settled, Some(report)))
            .collect(),
        Ok(_) | Err(_) => {
            for record in group {
                tracing::error!(
                    message_id = record.message_id,
                    outcome = "panicked",
                    duration_ms = started.elapsed().as_secs_f64() * 1000.0,
                    "panic while handling the message; SQS will retry"
                );
            }
            group
                .iter()
                .map(|_| (Settled::Retry { after_secs: None }, None))
                .collect()
        }
    }
}

/// One record, a panic caught: it fails that record alone.
async fn one<H: RecordHandler>(handler: &H, record: Record<'_>) -> (Settled, Option<H::Report>) {
    let started = Instant::now();
    match AssertUnwindSafe(handler.handle(record))
        .catch_unwind()
        .await
    {
        Ok((settled, report)) => (settled, Some(report)),
        Err(_) => {
            tracing::error!(
                message_id = record.message_id,
                outcome = "panicked",
                duration_ms = started.elapsed().as_secs_f64() * 1000.0,
                "panic while handling the message; SQS will retry"
            );
            (Settled::Retry { after_secs: None }, None)
        }
    }
}

/// Indexes of `records` grouped by key, each group in batch order.
pub fn groups(records: &[&SqsMessage], key: fn(&SqsMessage) -> Option<String>) -> Vec<Vec<usize>> {
    let mut groups: Vec<(Option<String>, Vec<usize>)> = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let k = key(record);
        match groups.iter_mut().find(|(g, _)| k.is_some() && *g == k) {
            Some((_, group)) => group.push(i),
            None => groups.push((k, vec![i])),
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

/// Makes a record to retry invisible for its backoff. If that fails, the queue's own
/// visibility timeout applies instead.
async fn hide(visibility: &Visibility<'_>, receipt_handle: &str, secs: u32) {
    let result = visibility
        .sqs
        .change_message_visibility()
        .queue_url(visibility.queue_url)
        .receipt_handle(receipt_handle)
        .visibility_timeout(secs.min(SQS_MAX_VISIBILITY_SECS) as i32)
        .send()
        .await;
    if let Err(err) = result {
        tracing::warn!(
            error = %aws_sdk_sqs::error::DisplayErrorContext(&err),
            "ChangeMessageVisibility failed; the queue's visibility timeout applies"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Panics on "boom", retries "again", handles anything else.
    struct Scripted;

    impl RecordHandler for Scripted {
        type Report = &'static str;

        async fn handle<'a>(&'a self, record: Record<'a>) -> (Settled, &'static str) {
            match record.body {
                "boom" => panic!("scripted panic"),
                "again" => (
                    Settled::Retry {
                        after_secs: Some(30),
                    },
                    "retry",
                ),
                _ => (Settled::Done, "done"),
            }
        }
    }

    #[test]
    fn the_call_is_read_alone_from_a_queued_event() {
        use callhook::app::events_queue::queue_message;
        use callhook::domain::event::CanonicalEvent;
        let mut event = CanonicalEvent::new("telnyx", "e", "call.hangup", chrono::Utc::now());
        let of = |body: &str| call_id_of(&message("m", body, None));
        assert_eq!(of(&queue_message(&event)), None);
        event.call_id = Some("telnyx#c1".into());
        assert_eq!(of(&queue_message(&event)).as_deref(), Some("telnyx#c1"));
        assert_eq!(of("{"), None);
    }

    fn message(id: &str, body: &str, count: Option<&str>) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.to_owned());
        m.body = Some(body.to_owned());
        if let Some(count) = count {
            m.attributes
                .insert("ApproximateReceiveCount".into(), count.into());
        }
        m
    }

    fn batch() -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = vec![
            message("ok-1", "fine", Some("1")),
            message("panics", "boom", Some("1")),
            message("retries", "again", Some("2")),
            message("ok-2", "fine", None),
        ];
        event
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_panic_or_a_retry_fails_only_its_own_record_in_either_order() {
        fn key(m: &SqsMessage) -> Option<String> {
            m.body.clone()
        }
        for order in [Order::InOrder, Order::ConcurrentBy(key)] {
            let (response, reports) = process(&Scripted, &batch(), order, None).await;
            let failed: Vec<&str> = response
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.as_str())
                .collect();
            assert_eq!(failed, ["panics", "retries"], "{order:?}");
            assert_eq!(
                reports,
                [Some("done"), None, Some("retry"), Some("done")],
                "{order:?}"
            );
            let json = serde_json::to_value(&response).unwrap();
            assert_eq!(json["batchItemFailures"][0]["itemIdentifier"], "panics");
        }
    }

    /// Settles a group's records together; panics on a group holding "boom".
    struct Together;

    impl GroupHandler for Together {
        type Report = usize;

        async fn handle_group<'a>(&'a self, group: &'a [Record<'a>]) -> Vec<(Settled, usize)> {
            assert!(group.iter().all(|r| r.body != "boom"), "scripted panic");
            group.iter().map(|_| (Settled::Done, group.len())).collect()
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_group_is_handled_together_and_a_panic_fails_only_its_group() {
        fn key(m: &SqsMessage) -> Option<String> {
            m.body.clone()
        }
        let mut event = SqsEvent::default();
        event.records = vec![
            message("a1", "a", None),
            message("b1", "boom", None),
            message("a2", "a", None),
            message("c1", "c", None),
            message("b2", "boom", None),
        ];
        let (response, reports) =
            process_groups(&Together, &event, Order::ConcurrentBy(key), None).await;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["b1", "b2"]);
        assert_eq!(reports, [Some(2), None, Some(2), Some(1), None]);
    }

    #[test]
    fn groups_keep_one_key_together_and_the_rest_apart() {
        let records = [
            message("1", "c1", None),
            message("2", "c2", None),
            message("3", "c1", None),
        ];
        let refs: Vec<&SqsMessage> = records.iter().collect();
        fn key(m: &SqsMessage) -> Option<String> {
            m.body.clone()
        }
        fn none(_: &SqsMessage) -> Option<String> {
            None
        }
        assert_eq!(groups(&refs, key), [vec![0, 2], vec![1]]);
        assert_eq!(groups(&refs, none), [vec![0], vec![1], vec![2]]);
    }

    #[test]
    fn receive_counts() {
        assert_eq!(receive_count(&message("a", "", Some("3"))), 3);
        assert_eq!(receive_count(&message("a", "", None)), 1);
        assert_eq!(receive_count(&message("a", "", Some("x"))), 1);
    }
}

//! `callhook review list|show|replay|discard`: the review table of the running `callhook dev` or
//! of a deployed stack (`--stack`): events the lifecycle did not apply (`event#{event_id}`),
//! dispatches given up (`dispatch#{dispatch_id}`), dead letters (`dlq#{queue}#{message id}`).

use std::io::Write;

use anyhow::{Context, Result, bail};
use callhook::adapters::dynamodb::DynamoReviewStore;
use callhook::adapters::sqs::SqsQueue;
use callhook::app::replay::{EventResult, ReplayOutcome};
use callhook::app::review_intake::is_cut;
use callhook::domain::review::{ReviewItem, ReviewReason, ReviewStatus, dispatch_pk, event_pk};
use callhook::limits::REVIEW_PAYLOAD_LIMIT as PAYLOAD_LIMIT;
use callhook::ports::{EventReader, Queue, ReviewAdmin, StoredEvent};
use serde_json::{Value, json};

use crate::commands::replay;
use crate::target::Target;
use crate::terminal::{printable, printable_body};

/// The review table of the target (local dev or a deployed stack).
pub fn store(target: &Target) -> Result<DynamoReviewStore> {
    target.review_store()
}

/// `--status` as given on the command line.
pub fn parse_status(status: &str) -> Result<ReviewStatus> {
    ReviewStatus::parse(&status.to_ascii_lowercase())
        .with_context(|| format!("unknown review status {status:?} (open, replayed or discarded)"))
}

/// Finds an item by its pk (`event#…`, `dispatch#…`), or by an event id or dispatch id.
pub async fn find(store: &DynamoReviewStore, id: &str) -> Result<ReviewItem> {
    for pk in [id.to_owned(), event_pk(id), dispatch_pk(id)] {
        if let Some(item) = store.get(&pk).await? {
            return Ok(item);
        }
    }
    bail!("no review item {id:?} (see `callhook review list`; ids look like event#telnyx#<id>)")
}

pub async fn list(
    store: &DynamoReviewStore,
    status: Option<ReviewStatus>,
    reason: Option<&str>,
    json: bool,
) -> Result<()> {
    let items = store.list(status, reason).await?;
    if json {
        let items: Vec<Value> = items.iter().map(item_json).collect();
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(());
    }
    println!(
        "{:<9} {:<24} {:>4} {:<25} ID",
        "STATUS", "REASON", "TRY", "CREATED"
    );
    for item in &items {
        println!("{}", row(item));
    }
    eprintln!("{} item(s)", items.len());
    Ok(())
}

/// One line of `review list`: its id and reason may come from a sender (an event id is the
/// provider's), so they are made printable.
fn row(item: &ReviewItem) -> String {
    format!(
        "{:<9} {:<24} {:>4} {:<25} {}",
        item.status.as_str(),
        printable(&item.reason.to_string()),
        item.attempts,
        item.created_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        printable(&item.pk)
    )
}

/// `review show ID [--json] [--raw]`: for an event item, its stored raw body byte-exact
/// (`--raw`: nothing else on stdout).
pub async fn show(
    target: &Target,
    store: &DynamoReviewStore,
    id: &str,
    json: bool,
    raw: bool,
) -> Result<()> {
    if raw {
        let body = raw_body(target, store, id).await?;
        let mut out = std::io::stdout().lock();
        out.write_all(&body)?;
        out.flush()?;
        return Ok(());
    }
    let item = find(store, id).await?;
    let stored = match item.event_id() {
        Some(event_id) => stored_event(target, event_id).await?,
        None => None,
    };
    if json {
        let mut value = item_json(&item);
        if let Some(stored) = &stored {
            value["event_status"] = json!(stored.status.as_str());
            match std::str::from_utf8(&stored.raw_body) {
                Ok(text) => value["raw_body"] = json!(text),
                Err(_) => {
                    use base64::Engine;
                    value["raw_body_base64"] =
                        json!(base64::engine::general_purpose::STANDARD.encode(&stored.raw_body));
                }
            }
            value["headers"] = json!(
                stored
                    .headers
                    .iter()
                    .collect::<std::collections::BTreeMap<_, _>>()
            );
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let mut rows = vec![
        ("id", item.pk.clone()),
        ("status", item.status.as_str().to_owned()),
        ("reason", item.reason.to_string()),
        ("subject", item.subject_id.clone()),
        ("attempts", item.attempts.to_string()),
        ("created", item.created_at.to_rfc3339()),
        ("detail", item.detail.clone()),
    ];
    for (name, value) in [
        ("provider", item.provider.clone()),
        ("event type", item.event_type.clone()),
        ("received", item.received_at.map(|t| t.to_rfc3339())),
        ("status code", item.status_code.map(|c| c.to_string())),
        ("response", item.response_body.clone()),
    ] {
        if let Some(value) = value {
            rows.push((name, value));
        }
    }
    if let Some(stored) = &stored {
        rows.push(("event status", stored.status.as_str().to_owned()));
    }
    let mut out = std::io::stdout().lock();
    out.write_all(show_text(rows, &item, stored.as_ref()).as_bytes())?;
    out.flush()?;
    Ok(())
}

/// What `review show` prints for a person: every value a sender could have written (ids,
/// detail, the receiver's response, the raw body) made printable. `--raw` is byte-exact.
fn show_text(rows: Vec<(&str, String)>, item: &ReviewItem, stored: Option<&StoredEvent>) -> String {
    let mut text = String::new();
    for (name, value) in rows {
        text.push_str(&format!("{name:<13} {}\n", printable(&value)));
    }
    match stored {
        Some(stored) => {
            text.push_str(&format!(
                "raw body ({} bytes; `--raw` for the exact bytes):\n",
                stored.raw_body.len()
            ));
            text.push_str(&printable_body(&stored.raw_body));
            text.push('\n');
        }
        None if item.event_id().is_some() => {
            text.push_str("raw body      (the event is no longer stored)\n");
        }
        None => text.push_str(&format!(
            "payload       {}\n",
            printable(&item.payload.to_string())
        )),
    }
    text
}

/// What `review replay` did with an item.
#[derive(Debug, Clone, PartialEq)]
pub enum Replayed {
    /// An event was replayed from its stored raw bytes (`result` says whether it was sent).
    Event {
        pk: String,
        event_id: String,
        result: EventResult,
    },
    /// A message went back, as it was, on the queue it came from.
    Message {
        pk: String,
        subject_id: String,
        queue: &'static str,
    },
}

impl Replayed {
    /// An error when nothing was sent (e.g. the event is still an unknown type).
    pub fn sent(&self) -> Result<()> {
        match self {
            Replayed::Event {
                event_id, result, ..
            } if result.outcome != ReplayOutcome::Requeued => bail!(
                "{event_id} not replayed: {}{}",
                result.outcome.as_str(),
                result
                    .detail
                    .as_ref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            ),
            _ => Ok(()),
        }
    }

    /// One line for a person.
    pub fn describe(&self) -> String {
        match self {
            Replayed::Event { pk, event_id, .. } => {
                format!("re-enqueued {event_id}; {pk} is now replayed")
            }
            Replayed::Message {
                subject_id, queue, ..
            } => format!("re-enqueued {subject_id} on {queue}"),
        }
    }
}

/// `review replay ID`: an event item (and a dead letter naming a stored event) is normalized
/// again from the raw bytes and re-enqueued (`callhook replay` rules); a dispatch item's message
/// goes back on the dispatch queue (the ledger keeps it from being sent twice); any other dead
/// letter goes back, as it was, on the queue it was dead-lettered from. The item becomes
/// `replayed` (a new failure reopens it).
pub async fn replay(
    target: &Target,
    store: &DynamoReviewStore,
    id: &str,
    json: bool,
) -> Result<()> {
    let replayed = replay_item(target, store, id).await?;
    if json {
        let value = match &replayed {
            Replayed::Event { result, .. } => serde_json::to_value(result)?,
            Replayed::Message { pk, queue, .. } => {
                json!({"id": pk, "outcome": "requeued", "queue": queue})
            }
        };
        println!("{}", serde_json::to_string_pretty(&value)?);
    }
    replayed.sent()?;
    if !json {
        println!("{}", replayed.describe());
    }
    Ok(())
}

/// [`replay`] without printing: what the CLI and the console (`callhook console`) both run.
pub async fn replay_item(target: &Target, store: &DynamoReviewStore, id: &str) -> Result<Replayed> {
    let item = find(store, id).await?;
    if item.status == ReviewStatus::Discarded {
        bail!(
            "{} was discarded; to send it anyway: callhook replay --event {} --force",
            item.pk,
            item.subject_id
        );
    }
    let dead_letter_queue = item.reason.dead_letter_queue();
    let event_id = match (item.event_id(), dead_letter_queue) {
        (Some(event_id), _) => Some(event_id.to_owned()),
        // A dead-lettered event message: replayed from the stored raw bytes when the event is
        // stored, so a mapping fixed since is applied.
        (None, Some("events")) => {
            let stored = stored_event(target, &item.subject_id).await?;
            stored.map(|_| item.subject_id.clone())
        }
        _ => None,
    };
    if let Some(event_id) = event_id {
        let replayer = replay::replayer(target, false)?;
        let result = replayer.replay_one(&event_id).await?;
        if result.outcome == ReplayOutcome::Requeued
            && (!result.review_replayed || item.event_id().is_none())
        {
            // The event was not in REVIEW (e.g. still RECEIVED), or this is a dead letter's
            // item: the item is done all the same.
            store.set_status(&item.pk, ReviewStatus::Replayed).await?;
        }
        return Ok(Replayed::Event {
            pk: item.pk,
            event_id,
            result,
        });
    }
    let source_queue = match (&item.reason, dead_letter_queue) {
        (ReviewReason::DispatchFailed, _) | (_, Some("dispatch")) => "DispatchQueue",
        (_, Some("events")) => "EventsQueue",
        (_, Some("callback")) => "CallbackQueue",
        _ => bail!(
            "{} ({}) holds no message that can be sent again; discard it",
            item.pk,
            item.reason
        ),
    };
    if is_cut(&item.payload) {
        bail!(
            "{} keeps only the first {PAYLOAD_LIMIT} bytes of its message, which cannot be sent again \
             as if whole; discard it once handled",
            item.pk
        );
    }
    let queue = target.queue(source_queue)?;
    let message = match &item.payload {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    // Marked first, as for events: a new failure reopens the item.
    store.set_status(&item.pk, ReviewStatus::Replayed).await?;
    SqsQueue::new(target.sqs.clone(), queue)
        .send(message, 0)
        .await?;
    Ok(Replayed::Message {
        pk: item.pk,
        subject_id: item.subject_id,
        queue: source_queue,
    })
}

/// `review discard ID`: a person decided nothing is to be done; the lifecycle keeps it
/// discarded if the event comes again.
pub async fn discard(store: &DynamoReviewStore, id: &str, json: bool) -> Result<()> {
    let pk = discard_item(store, id).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"id": pk, "status": "discarded"}))?
        );
    } else {
        println!("discarded {pk}");
    }
    Ok(())
}

/// [`discard`] without printing (the CLI and the console); the item's pk.
pub async fn discard_item(store: &DynamoReviewStore, id: &str) -> Result<String> {
    let item = find(store, id).await?;
    if !store.set_status(&item.pk, ReviewStatus::Discarded).await? {
        bail!("{} disappeared meanwhile", item.pk);
    }
    Ok(item.pk)
}

/// What `review show --raw` prints: an event item's stored raw body, byte-exact (read from the
/// events bucket, checked against its hash, when it is kept there).
pub async fn raw_body(target: &Target, store: &DynamoReviewStore, id: &str) -> Result<Vec<u8>> {
    let item = find(store, id).await?;
    let stored = match item.event_id() {
        Some(event_id) => stored_event(target, event_id).await?,
        None => None,
    };
    match stored {
        Some(stored) => Ok(stored.raw_body),
        None => bail!(
            "{} has no stored raw body (only event items do, while the event is kept)",
            item.pk
        ),
    }
}

pub async fn stored_event(target: &Target, event_id: &str) -> Result<Option<StoredEvent>> {
    Ok(target.events_reader()?.get_event(event_id).await?)
}

/// An item as JSON (what `--json` prints).
pub fn item_json(item: &ReviewItem) -> Value {
    let mut value = json!({
        "id": item.pk,
        "reason": item.reason,
        "subject_id": item.subject_id,
        "status": item.status.as_str(),
        "attempts": item.attempts,
        "detail": item.detail,
        "created_at": item.created_at,
        "payload": item.payload,
    });
    for (name, field) in [
        ("provider", item.provider.clone().map(Value::from)),
        ("event_type", item.event_type.clone().map(Value::from)),
        ("received_at", item.received_at.map(|t| json!(t))),
        ("status_code", item.status_code.map(Value::from)),
        ("response_body", item.response_body.clone().map(Value::from)),
    ] {
        if let Some(field) = field {
            value[name] = field;
        }
    }
    value
}

#[cfg(test)]
mod terminal_tests {
    use super::*;
    use callhook::delivery::Headers;
    use callhook::ports::EventStatus;
    use chrono::Utc;

    #[test]
    fn listed_and_shown_items_cannot_carry_a_terminal_escape() {
        let evil = "\u{1b}[2J\u{9b}31m";
        let item = ReviewItem::open(
            format!("event#telnyx#{evil}"),
            ReviewReason::Other(format!("reason{evil}")),
            &format!("telnyx#{evil}"),
            json!({ "x": evil }),
            1,
            &format!("detail{evil}"),
            Some(500),
            Some(&format!("response{evil}")),
            Utc::now(),
        );
        let line = row(&item);
        assert!(!line.chars().any(char::is_control), "{line:?}");

        let stored = StoredEvent {
            event_id: format!("telnyx#{evil}"),
            provider: "telnyx".into(),
            status: EventStatus::Review,
            raw_body: format!("{{\"a\":\"{evil}\"}}\n{{}}").into_bytes(),
            headers: Headers::new(),
            received_at: Utc::now(),
            call_id: None,
            queue_failed: false,
        };
        let rows = vec![
            ("id", item.pk.clone()),
            ("detail", item.detail.clone()),
            ("response", item.response_body.clone().unwrap()),
        ];
        for text in [
            show_text(rows.clone(), &item, Some(&stored)),
            show_text(rows, &item, None),
        ] {
            // Line breaks between rows (and in the body) are the only controls left.
            assert!(
                !text.chars().any(|c| c.is_control() && c != '\n'),
                "{text:?}"
            );
            assert!(text.contains("\\u{1b}[2J"), "{text}");
        }
    }
}

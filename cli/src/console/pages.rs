//! The console's HTML, server-rendered with maud: every interpolated value is HTML-escaped by
//! the template engine, and everything that came from a sender is also passed through
//! [`super::text`] so control characters show as escapes. Raw bodies are text in a `<pre>`,
//! never markup. No script: the Content-Security-Policy forbids any.

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

use callhook::domain::call::{CallRecord, CallStatus};
use callhook::domain::event::Outcome;
use callhook::domain::review::ReviewItem;

use super::calls::{CallFilter, CallState, CallsPage};
use super::data::ReviewDetail;
use super::story::{CallStory, FIELDS, Late, show_value};
use super::summary::Summary;
use super::text::{body_text, clipped, visible, visible_line};

/// The stylesheet (served at /console.css: the policy allows no inline style).
pub const CSS: &str = include_str!("console.css");

/// A URL of the console with its query, every value percent-encoded.
pub fn url(path: &str, pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return path.to_owned();
    }
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("{path}?{query}")
}

fn call_url(call_id: &str) -> String {
    url("/call", &[("id", call_id)])
}

fn review_url(pk: &str) -> String {
    url("/review/item", &[("id", pk)])
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "—".to_owned(),
        |t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
    )
}

/// An id that may be long or hostile: clipped for the eye, whole (escaped) in the tooltip.
fn id_cell(id: &str, max: usize) -> Markup {
    html! { span.id title=(visible_line(id)) { (clipped(id, max)) } }
}

fn layout(title: &str, target: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (clipped(title, 80)) " · callhook console" }
                link rel="stylesheet" href="/console.css";
            }
            body {
                header {
                    strong { "callhook console" }
                    nav {
                        a href="/" { "Summary" }
                        a href="/calls" { "Calls" }
                        a href="/review" { "Review" }
                    }
                    span.target { (clipped(target, 80)) }
                }
                main { (content) }
            }
        }
    }
}

fn state_badge(state: CallState) -> Markup {
    html! { span class={ "badge " (state.as_str()) } { (state.as_str()) } }
}

/// A page saying what went wrong (the text may name ids: escaped like everything else).
pub fn error(target: &str, title: &str, detail: &str) -> Markup {
    layout(
        title,
        target,
        html! {
            h1 { (title) }
            pre.error { (visible(detail)) }
            p { a href="/" { "Back to the summary" } }
        },
    )
}

pub fn summary(target: &str, summary: &Summary) -> Markup {
    let content = html! {
        h1 { "The last hour" span.muted { " until " (summary.now.format("%H:%M:%S UTC")) } }
        div.cards {
            a.card href="/calls?state=open" { span.n { (summary.calls.open) } " open calls" }
            a.card.warn[summary.calls.stale > 0] href="/calls?state=stale" {
                span.n { (summary.calls.stale) } " stale calls"
            }
            a.card href="/calls?state=final" { span.n { (summary.calls.final_) } " final calls" }
            a.card.alert[summary.review_open > 0] href="/review" {
                span.n #review-open { (summary.review_open) } " review items open"
            }
            @if let Some(traffic) = &summary.traffic {
                div.card { span.n { (traffic.applied) } " events applied" }
                div.card {
                    span.n { (traffic.lag_p50_ms.map_or_else(|| "—".to_owned(), |ms| format!("{ms:.0} ms"))) }
                    " median processing lag"
                }
            }
        }
        @match &summary.traffic {
            Some(traffic) => {
                h2 { "Received, by provider and result" }
                @if traffic.received.is_empty() {
                    p.muted { "Nothing received in the last hour." }
                } @else {
                    table #received {
                        thead { tr {
                            th { "provider" }
                            @for result in &traffic.results { th.num { (clipped(result, 40)) } }
                            th.num { "total" }
                        } }
                        tbody {
                            @for (provider, by_result) in &traffic.received {
                                tr {
                                    td { (clipped(provider, 40)) }
                                    @for result in &traffic.results {
                                        td.num { (by_result.get(result).copied().unwrap_or(0)) }
                                    }
                                    td.num { (by_result.values().sum::<u64>()) }
                                }
                            }
                        }
                    }
                }
                h2 { "Dispatch attempts, by destination" }
                @if traffic.dispatch.is_empty() {
                    p.muted { "No dispatch attempt in the last hour." }
                } @else {
                    table {
                        thead { tr { th { "destination" } th.num { "attempts" } th.num { "failed" } } }
                        tbody {
                            @for (route, (attempts, failures)) in &traffic.dispatch {
                                tr {
                                    td { (clipped(route, 40)) }
                                    td.num { (attempts) }
                                    td.num.bad[*failures > 0] { (failures) }
                                }
                            }
                        }
                    }
                }
                p.muted { "From the functions' metric lines (the state directory's emf.jsonl), \
                           exactly what CloudWatch would count." }
            }
            None => {
                p.muted { "Requests by provider and result are the CloudWatch metric "
                          code { "received" } " of a deployed stack: see its dashboard "
                          "(docs/metrics.md)." }
            }
        }
        p.muted { "Calls count as stale when open with no event for the stale threshold; the time \
                   of a call's last event is the provider's clock." }
    };
    layout("Summary", target, content)
}

const STATES: &[&str] = &["open", "stale", "unfinished", "final"];

fn select(name: &str, any: &str, choices: &[&str], chosen: &Option<String>) -> Markup {
    html! {
        label {
            (name) " "
            select name=(name) {
                option value="" { (any) }
                @for choice in choices {
                    option value=(choice) selected[chosen.as_deref() == Some(*choice)] { (choice) }
                }
            }
        }
    }
}

fn direction(record: &CallRecord) -> &'static str {
    match record.direction {
        Some(callhook::domain::event::Direction::Inbound) => "in",
        Some(callhook::domain::event::Direction::Outbound) => "out",
        None => "—",
    }
}

pub fn calls(target: &str, page: &CallsPage, filter: &CallFilter) -> Markup {
    let providers: Vec<&str> = page.providers.iter().map(String::as_str).collect();
    // "none": calls without a status or an outcome yet.
    let statuses: Vec<&str> = CallStatus::ALL
        .iter()
        .map(|s| s.as_str())
        .chain(["none"])
        .collect();
    let outcomes: Vec<&str> = Outcome::ALL
        .iter()
        .map(|o| o.as_str())
        .chain(["none"])
        .collect();
    let content = html! {
        h1 { "Calls" }
        form.filters method="get" action="/calls" {
            (select("provider", "any", &providers, &filter.provider))
            (select("status", "any", &statuses, &filter.status))
            (select("outcome", "any", &outcomes, &filter.outcome))
            (select("state", "any", STATES, &filter.state))
            button type="submit" { "Filter" }
            a href="/calls" { "clear" }
        }
        p.muted {
            (page.matched) " of " (page.total) " calls, newest first · page " (page.page) " of " (page.pages)
            @if page.page > 1 {
                " · " a href={ "/calls?" (filter.query(page.page - 1)) } { "← newer" }
            }
            @if page.page < page.pages {
                " · " a href={ "/calls?" (filter.query(page.page + 1)) } { "older →" }
            }
        }
        table #calls {
            thead { tr {
                th { "call" } th { "provider" } th { "state" } th { "status" } th { "outcome" }
                th { "dir" } th { "from → to" } th.num { "secs" } th.num { "events" } th { "last event" }
            } }
            tbody {
                @for row in &page.rows {
                    @let r = &row.record;
                    tr {
                        td { a href=(call_url(&r.call_id)) { (id_cell(&r.call_id, 40)) } }
                        td { (clipped(&r.provider, 20)) }
                        td { (state_badge(row.state)) }
                        td { (r.status.map_or("—", |s| s.as_str())) }
                        td { (r.outcome.map_or("—", |o| o.as_str())) }
                        td { (direction(r)) }
                        td.id { (clipped(r.from.as_deref().unwrap_or("—"), 24)) " → " (clipped(r.to.as_deref().unwrap_or("—"), 24)) }
                        td.num { (r.duration_secs.map_or_else(|| "—".to_owned(), |d| d.to_string())) }
                        td.num { (r.event_count) }
                        td { (time(r.last_occurred_at)) }
                    }
                }
            }
        }
        @if page.rows.is_empty() { p.muted { "No call matches." } }
    };
    layout("Calls", target, content)
}

fn marks(story: &CallStory, i: usize) -> Markup {
    let event = &story.events[i];
    html! {
        @if event.duplicates > 0 {
            span.badge.duplicate title="ingest answered a later delivery of it `duplicate`" {
                "duplicate ×" (event.duplicates)
            }
        }
        @if let Some(first) = event.same_fact_as {
            span.badge.duplicate title="the same fact under another id" { "same fact as #" (first) }
        }
        @for late in &event.late {
            @match late {
                Late::AfterFinal => span.badge.late title="arrived after the call's terminal event" { "late: after final" },
                Late::OutOfOrder { after } => span.badge.late title="arrived after an event that occurred later" {
                    "late: after #" (after)
                },
            }
        }
        @if let Some(pk) = &event.review {
            a.badge.review href=(review_url(pk)) { "review" }
        }
    }
}

fn changes(story: &CallStory, i: usize) -> Markup {
    let event = &story.events[i];
    html! {
        @if event.changes.is_empty() && event.effects.is_empty() {
            span.muted { "no change" }
        }
        @if !event.changes.is_empty() {
            ul.changes {
                @for change in &event.changes {
                    li { b { (change.field) } ": " span.old { (change.before) } " → " span.new { (change.after) } }
                }
            }
        }
        @for effect in &event.effects { div.effect { "⇒ " (effect) } }
        @if let Some(note) = &event.note { div.note { (visible(note)) } }
    }
}

pub fn call(target: &str, story: &CallStory, by_receipt: bool, stale: CallState) -> Markup {
    let record = story.record.as_ref();
    let content = html! {
        h1 { "Call " code.id { (clipped(&story.call_id, 120)) } }
        p {
            @if record.is_some() { (state_badge(stale)) " " }
            @if let Some(r) = record {
                "status " b { (r.status.map_or("—", |s| s.as_str())) }
                " · outcome " b { (r.outcome.map_or("—", |o| o.as_str())) }
                " · " (r.event_count) " events applied"
            } @else {
                span.muted { "No record: none of its events has been applied." }
            }
        }
        nav.tabs {
            a.active[!by_receipt] href=(url("/call", &[("id", &story.call_id)])) { "By occurrence" }
            a.active[by_receipt] href=(url("/call", &[("id", &story.call_id), ("order", "receipt")])) { "By receipt" }
        }
        @if !by_receipt {
            table #timeline {
                thead { tr {
                    th.num { "#" } th.num title="position in order of receipt" { "arrived" }
                    th { "occurred" } th { "received" } th { "event" } th { "stored" }
                    th { "marks" } th { "what it changed" }
                } }
                tbody {
                    @for (i, event) in story.events.iter().enumerate() {
                        tr.late[!event.late.is_empty()] data-event=(visible_line(&event.event_id)) {
                            td.num { (event.occurrence) }
                            td.num { (event.receipt) }
                            td.time { (time(event.occurred_at)) }
                            td.time { (time(Some(event.received_at))) }
                            td {
                                span.type { (clipped(&event.event_type, 60)) }
                                " " span.muted { (clipped(&event.kind, 20)) }
                                br;
                                (id_cell(&event.event_id, 48))
                            }
                            td { (clipped(&event.status, 20)) }
                            td.marks { (marks(story, i)) }
                            td { (changes(story, i)) }
                        }
                    }
                }
            }
        } @else {
            table #receipts {
                thead { tr {
                    th { "received" } th.num { "#" } th { "event" } th { "ingest answered" } th { "marks" }
                } }
                tbody {
                    @for receipt in &story.receipts {
                        @let event = &story.events[receipt.event];
                        tr.duplicate[receipt.duplicate] {
                            td.time { (time(Some(receipt.at))) }
                            td.num { (event.occurrence) }
                            td { span.type { (clipped(&event.event_type, 60)) } br; (id_cell(&event.event_id, 48)) }
                            td { (receipt.answer.as_deref().unwrap_or("—")) }
                            td.marks {
                                @if receipt.duplicate { span.badge.duplicate { "duplicate" } }
                                @for late in &event.late {
                                    @if !receipt.duplicate {
                                        @match late {
                                            Late::AfterFinal => span.badge.late { "late: after final" },
                                            Late::OutOfOrder { after } => span.badge.late { "late: after #" (after) },
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if !story.deliveries_known {
            p.muted { "Duplicate deliveries are answered by ingest without a second copy; this \
                       stack's per-delivery log is in CloudWatch Logs (the local stack's is its \
                       functions.log)." }
        }
        p.muted { "What each event changed is the reducer replayed one event at a time in order \
                   of receipt, the order the lifecycle applied them." }
        @if story.replay_differs {
            p.warn { "The stored record differs from the replay of the events still stored \
                      (an event past its retention, or one that no longer reads)." }
        }

        h2 { "Dispatches" }
        @if story.dispatches.is_empty() {
            p.muted { "None yet: a call is dispatched once its terminal event is applied (and settled)." }
        } @else {
            table #dispatches {
                thead { tr {
                    th { "dispatch" } th { "type" } th { "caused by" } th { "ledger" } th.num { "attempts" }
                    th.num { "last status" } th { "sent" } th { "detail" }
                } }
                tbody {
                    @for d in &story.dispatches {
                        tr {
                            td { (id_cell(&d.dispatch_id, 60)) }
                            td { (d.message_type.unwrap_or("—")) }
                            td { @if let Some(n) = d.caused_by { "#" (n) } @else { "—" } }
                            td {
                                @match &d.ledger {
                                    Some(entry) => span class={ "badge ledger-" (entry.status.as_str()) } { (entry.status.as_str()) },
                                    None => span.muted { @if d.in_outbox { "in the outbox" } @else { "not in the ledger" } },
                                }
                                @if let Some(pk) = &d.review { " " a.badge.review href=(review_url(pk)) { "review" } }
                            }
                            td.num { (d.ledger.as_ref().map_or_else(|| "—".to_owned(), |e| e.attempts.to_string())) }
                            td.num { (d.ledger.as_ref().and_then(|e| e.status_code).map_or_else(|| "—".to_owned(), |c| c.to_string())) }
                            td.time { (time(d.ledger.as_ref().and_then(|e| e.sent_at))) }
                            td { (d.ledger.as_ref().and_then(|e| e.detail.as_deref()).map(|t| clipped(t, 200)).unwrap_or_default()) }
                        }
                    }
                }
            }
        }

        @if !story.review.is_empty() {
            h2 { "Review items" }
            ul {
                @for (pk, reason, status) in &story.review {
                    li { a href=(review_url(pk)) { (id_cell(pk, 80)) } " " (clipped(reason, 60)) " · " (status) }
                }
            }
        }

        h2 { "The record" }
        @match record {
            Some(r) => (record_table(r)),
            None => p.muted { "—" },
        }
    };
    layout("Call", target, content)
}

fn record_table(record: &CallRecord) -> Markup {
    let value = serde_json::to_value(record).unwrap_or(Value::Null);
    let pretty = serde_json::to_string_pretty(&value).unwrap_or_default();
    // Which call, what a person follows (as the timeline shows it), then the bookkeeping.
    let shown = ["call_id", "provider"].iter().chain(FIELDS).chain(&[
        "finalized_at",
        "event_count",
        "version",
    ]);
    html! {
        table.record {
            tbody {
                @for field in shown {
                    tr { th { (field) } td { (show_value(value.get(*field).unwrap_or(&Value::Null))) } }
                }
            }
        }
        details {
            summary { "The whole record (JSON, as dispatches carry it)" }
            pre.raw { (visible(&pretty)) }
        }
    }
}

pub fn review_list(target: &str, items: &[ReviewItem], status: &str) -> Markup {
    let content = html! {
        h1 { "Review" }
        nav.tabs {
            @for choice in ["open", "replayed", "discarded", "all"] {
                a.active[status == choice] href=(url("/review", &[("status", choice)])) { (choice) }
            }
        }
        p.muted { (items.len()) " item(s), newest first" }
        table #review {
            thead { tr {
                th { "item" } th { "status" } th { "reason" } th { "provider" } th { "type" }
                th.num { "tries" } th { "created" }
            } }
            tbody {
                @for item in items {
                    tr {
                        td { a href=(review_url(&item.pk)) { (id_cell(&item.pk, 60)) } }
                        td { span class={ "badge review-" (item.status.as_str()) } { (item.status.as_str()) } }
                        td { (clipped(&item.reason.to_string(), 40)) }
                        td { (clipped(item.provider.as_deref().unwrap_or("—"), 20)) }
                        td { (clipped(item.event_type.as_deref().unwrap_or("—"), 40)) }
                        td.num { (item.attempts) }
                        td.time { (time(Some(item.created_at))) }
                    }
                }
            }
        }
        @if items.is_empty() { p.muted { "Nothing here." } }
    };
    layout("Review", target, content)
}

pub fn review_item(target: &str, detail: &ReviewDetail, done: Option<&str>) -> Markup {
    let item = &detail.item;
    let call_id = detail.stored.as_ref().and_then(|s| s.call_id.as_deref());
    let content = html! {
        h1 { "Review item " code.id { (clipped(&item.pk, 120)) } }
        @match done {
            Some("replay") => p.done #done { "Replayed: it is back on its queue, and the item is marked replayed." },
            Some("discard") => p.done #done { "Discarded." },
            _ => {},
        }
        table.record {
            tbody {
                tr { th { "status" } td { span #item-status class={ "badge review-" (item.status.as_str()) } { (item.status.as_str()) } } }
                tr { th { "reason" } td { (clipped(&item.reason.to_string(), 80)) } }
                tr { th { "subject" } td { (id_cell(&item.subject_id, 120)) } }
                @if let Some(call_id) = call_id {
                    tr { th { "call" } td { a href=(call_url(call_id)) { (id_cell(call_id, 120)) } } }
                }
                tr { th { "attempts" } td { (item.attempts) } }
                tr { th { "created" } td { (time(Some(item.created_at))) } }
                tr { th { "detail" } td { (clipped(&item.detail, 2000)) } }
                @if let Some(provider) = &item.provider { tr { th { "provider" } td { (clipped(provider, 40)) } } }
                @if let Some(event_type) = &item.event_type { tr { th { "event type" } td { (clipped(event_type, 200)) } } }
                @if let Some(received) = item.received_at { tr { th { "received" } td { (time(Some(received))) } } }
                @if let Some(code) = item.status_code { tr { th { "status code" } td { (code) } } }
                @if let Some(response) = &item.response_body { tr { th { "response" } td { pre.raw { (visible(response)) } } } }
                @if let Some(stored) = &detail.stored { tr { th { "event status" } td { (stored.status.as_str()) } } }
            }
        }
        p.actions {
            a.button href=(url("/review/confirm", &[("id", &item.pk), ("action", "replay")])) { "Replay…" }
            " "
            a.button.secondary href=(url("/review/confirm", &[("id", &item.pk), ("action", "discard")])) { "Discard…" }
        }
        @match &detail.stored {
            Some(stored) => {
                @let (text, cut) = body_text(&stored.raw_body);
                h2 { "Raw body" span.muted { " " (stored.raw_body.len()) " bytes as received, shown as text" } }
                pre.raw #raw-body { (text) }
                @if cut {
                    p.muted { "Cut here: the whole body is " code { "callhook review show --raw ID" } "." }
                }
                p.muted { "Control characters are shown as \\u{…}, bytes that are not UTF-8 as \\xNN." }
                h2 { "Headers stored with it" }
                table.record {
                    tbody {
                        @for (name, value) in stored.headers.iter() {
                            tr { th { (clipped(name, 60)) } td.id { (clipped(value, 300)) } }
                        }
                    }
                }
            }
            None => {
                h2 { "Payload" }
                pre.raw #raw-body { (body_text(serde_json::to_string_pretty(&item.payload).unwrap_or_default().as_bytes()).0) }
            }
        }
    };
    layout("Review item", target, content)
}

/// The confirmation before an action: the form that POSTs it, with the CSRF token.
pub fn confirm(target: &str, item: &ReviewItem, action: &str, csrf: &str) -> Markup {
    let (verb, explain) = match action {
        "discard" => (
            "Discard",
            "Nothing will be sent; the item is marked discarded and stays so if the event comes again.",
        ),
        _ => (
            "Replay",
            "An event is normalized again from its stored raw bytes with the current code and \
             re-queued (the lifecycle applies an event once, so this is safe); a dispatch or a \
             dead letter goes back on its queue. The item becomes replayed.",
        ),
    };
    let content = html! {
        h1 { (verb) " " code.id { (clipped(&item.pk, 120)) } "?" }
        p { (explain) }
        p.muted { "The same as " code { "callhook review " (action) " ID" } "." }
        // The id travels percent-encoded in the action's URL: byte-exact, whatever it holds.
        form.confirm method="post"
            action=(url(if action == "discard" { "/review/discard" } else { "/review/replay" }, &[("id", &item.pk)])) {
            input type="hidden" name="csrf" value=(csrf);
            button #confirm type="submit" { (verb) }
            " "
            a href=(review_url(&item.pk)) { "Cancel" }
        }
    };
    layout(verb, target, content)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use callhook::domain::review::{ReviewReason, event_pk};
    use callhook::ports::{EventStatus, StoredEvent};
    use callhook::providers::Headers;
    use chrono::Duration;

    use super::super::calls::{self, CallFilter};
    use super::super::story::{self, Inputs, StoredFact};
    use super::super::summary::{CallCounts, Traffic};
    use super::*;

    /// What a sender may put in an id or a body.
    fn hostile() -> String {
        format!(
            "<script>window.pwned=1</script>\"'><img src=x onerror=alert(1)>\u{0}\u{1b}[31m\u{202e}{}",
            "A".repeat(20_000)
        )
    }

    /// No markup from the data: no script element, no injected element, no raw controls.
    fn assert_no_markup(html: &str) {
        assert!(!html.contains("<script"), "a script element");
        assert!(!html.contains("<img"), "an injected element");
        for c in ['\u{0}', '\u{1b}', '\u{202e}'] {
            assert!(
                !html.contains(c),
                "{c:?} at {:?}",
                html.find(c).map(|at| &html[at.saturating_sub(80)..at])
            );
        }
    }

    /// [`assert_no_markup`], and the hostile text is on the page, escaped.
    fn assert_inert(html: &str) {
        assert_no_markup(html);
        assert!(
            html.contains("&lt;script&gt;"),
            "the text is shown, escaped"
        );
    }

    fn record(call_id: &str) -> CallRecord {
        let mut record = CallRecord::new(call_id, "telnyx");
        record.from = Some(hostile());
        record.hangup_cause = Some(hostile());
        record.last_occurred_at = Some(Utc::now());
        record
    }

    #[test]
    fn the_calls_page_escapes_ids_and_fields() {
        let id = format!("telnyx#{}", hostile());
        let page = calls::page(
            vec![record(&id)],
            &CallFilter {
                provider: Some(hostile()),
                ..CallFilter::default()
            },
            Utc::now(),
            Duration::hours(1),
        );
        let filter = CallFilter {
            state: Some("\"><script>".into()),
            ..CallFilter::default()
        };
        let html = calls("the local stack", &page, &filter).into_string();
        assert_no_markup(&html);
        // The link to the call carries the id percent-encoded.
        let page = calls::page(
            vec![record(&id)],
            &CallFilter::default(),
            Utc::now(),
            Duration::hours(1),
        );
        let html = calls("t", &page, &CallFilter::default()).into_string();
        assert_inert(&html);
        assert!(
            html.contains("/call?id=telnyx%23%3Cscript%3E"),
            "percent-encoded link"
        );
        assert!(
            html.len() < 100_000,
            "long values are clipped: {} bytes",
            html.len()
        );
    }

    #[test]
    fn every_status_and_outcome_can_be_filtered_on() {
        let page = calls::page(
            Vec::new(),
            &CallFilter::default(),
            Utc::now(),
            Duration::hours(1),
        );
        let html = calls("t", &page, &CallFilter::default()).into_string();
        // `unknown` is what the stale pass gives up with; it was missing from a copied list.
        for choice in [
            "unknown",
            "no_answer",
            "rescheduled",
            "ended",
            "queued",
            "none",
        ] {
            assert!(html.contains(&format!(r#"value="{choice}""#)), "{choice}");
        }
    }

    #[test]
    fn the_call_page_escapes_events_and_the_record() {
        let call_id = format!("telnyx#{}", hostile());
        let body = serde_json::json!({"data": {
            "event_type": hostile(),
            "id": "e1",
            "occurred_at": "2026-01-01T00:00:00Z",
            "payload": {"call_session_id": hostile(), "hangup_cause": hostile()}
        }})
        .to_string();
        let stored = StoredEvent {
            event_id: format!("telnyx#{}", hostile()),
            provider: "telnyx".into(),
            status: EventStatus::Review,
            raw_body: body.into_bytes(),
            headers: Headers::new(),
            received_at: Utc::now(),
            call_id: Some(call_id.clone()),
            queue_failed: false,
        };
        let normalizers =
            callhook::providers::Providers::normalizers(&callhook::config::Env::default()).unwrap();
        let event = callhook::app::whole_calls::normalize_stored(&stored, &normalizers);
        let item = ReviewItem::open(
            event_pk(&stored.event_id),
            ReviewReason::UnknownType,
            &stored.event_id,
            Value::String(hostile()),
            1,
            &hostile(),
            None,
            None,
            Utc::now(),
        );
        let story = story::build(Inputs {
            call_id: call_id.clone(),
            record: Some(record(&call_id)),
            events: vec![StoredFact {
                event_id: stored.event_id.clone(),
                status: "REVIEW".into(),
                received_at: stored.received_at,
                raw_bytes: stored.raw_body.len(),
                event,
            }],
            deliveries: Some(Vec::new()),
            review: BTreeMap::from([(item.pk.clone(), item.clone())]),
            ..Inputs::default()
        });
        for by_receipt in [false, true] {
            let html = call("t", &story, by_receipt, CallState::Open).into_string();
            assert_inert(&html);
        }

        let detail = ReviewDetail {
            item: item.clone(),
            stored: Some(stored.clone()),
        };
        let html = review_item("t", &detail, Some("replay")).into_string();
        assert_inert(&html);
        // The raw body is text inside its <pre>, whole up to the limit.
        let start = html.find("id=\"raw-body\"").unwrap();
        let end = start + html[start..].find("</pre>").unwrap();
        assert!(html[start..end].contains("&lt;script&gt;window.pwned=1&lt;/script&gt;"));
        let html = review_item(
            "t",
            &ReviewDetail {
                item: item.clone(),
                stored: None,
            },
            None,
        )
        .into_string();
        assert_inert(&html);
        let html = review_list("t", std::slice::from_ref(&item), "open").into_string();
        assert_inert(&html);
        let html = confirm("t", &item, "replay", "csrf-token").into_string();
        assert_inert(&html);
        assert!(html.contains("name=\"csrf\" value=\"csrf-token\""));
        assert!(html.contains("method=\"post\""));
        let html = error("t", "Not found", &hostile()).into_string();
        assert_inert(&html);
    }

    #[test]
    fn the_summary_shows_received_by_provider_and_result() {
        let mut received = BTreeMap::new();
        received.insert(
            "telnyx".to_owned(),
            BTreeMap::from([("accepted".to_owned(), 3), ("duplicate".to_owned(), 1)]),
        );
        let model = Summary {
            now: Utc::now(),
            traffic: Some(Traffic {
                received,
                results: vec!["accepted".into(), "duplicate".into()],
                ..Traffic::default()
            }),
            calls: CallCounts {
                open: 2,
                stale: 1,
                final_: 4,
                active: 3,
            },
            review_open: 5,
        };
        let html = summary(&format!("stack {}", hostile()), &model).into_string();
        assert_inert(&html);
        assert!(
            html.contains(
                "<td class=\"num\">3</td><td class=\"num\">1</td><td class=\"num\">4</td>"
            ),
            "{html}"
        );
        assert!(html.contains("id=\"review-open\">5<"));
    }
}

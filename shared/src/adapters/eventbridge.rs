//! Analytics on EventBridge: PutEvents to the configured bus, `source` `callhook`, up to ten
//! entries a request, each failed entry retried once; what still fails is only counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use crate::ports::{Analytics, Publication};

/// EventBridge's `Source` of every entry.
pub const SOURCE: &str = "callhook";
/// PutEvents takes at most this many entries a request.
const MAX_ENTRIES: usize = 10;
/// Attempts per entry (the first and one retry): the lifecycle does not wait longer.
const ATTEMPTS: usize = 2;

#[derive(Clone)]
pub struct EventBridgeAnalytics {
    client: Client,
    bus: String,
    /// Publications lost since the last [`EventBridgeAnalytics::take_lost`].
    lost: Arc<AtomicU64>,
}

impl EventBridgeAnalytics {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        EventBridgeAnalytics {
            client,
            bus: bus.into(),
            lost: Arc::default(),
        }
    }

    /// How many publications were lost since the last call (for the `analytics_lost` metric).
    pub fn take_lost(&self) -> u64 {
        self.lost.swap(0, Ordering::Relaxed)
    }

    fn entry(&self, publication: &Publication) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(SOURCE)
            .detail_type(publication.detail_type)
            .detail(publication.detail.to_string())
            .build()
    }

    /// One PutEvents; the publications that failed.
    async fn put(&self, publications: Vec<Publication>) -> Vec<Publication> {
        let entries = publications.iter().map(|p| self.entry(p)).collect();
        let result = self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await;
        match result {
            Ok(out) if out.failed_entry_count() == 0 => Vec::new(),
            // Entries come back in request order; a failed one has an error code.
            Ok(out) => publications
                .into_iter()
                .zip(out.entries())
                .filter(|(_, entry)| entry.error_code().is_some())
                .map(|(p, _)| p)
                .collect(),
            Err(err) => {
                tracing::warn!(error = %aws_sdk_eventbridge::error::DisplayErrorContext(&err), "PutEvents failed");
                publications
            }
        }
    }
}

impl Analytics for EventBridgeAnalytics {
    async fn publish(&self, publications: Vec<Publication>) -> usize {
        let mut lost = 0;
        let mut chunks: Vec<Vec<Publication>> = Vec::new();
        let mut rest = publications;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(MAX_ENTRIES));
            chunks.push(rest);
            rest = tail;
        }
        for chunk in chunks {
            let mut pending = chunk;
            for _ in 0..ATTEMPTS {
                if pending.is_empty() {
                    break;
                }
                pending = self.put(pending).await;
            }
            lost += pending.len();
        }
        if lost > 0 {
            tracing::warn!(lost, bus = %self.bus, "analytics publications lost after retry");
            self.lost.fetch_add(lost as u64, Ordering::Relaxed);
        }
        lost
    }
}

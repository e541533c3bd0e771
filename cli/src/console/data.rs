//! Where the console's pages read from and act on: the running `callhook dev` (its dev.json,
//! functions.log and emf.jsonl in the state directory) or a deployed stack (`--stack`, the
//! operator's credentials), through the same adapters and the same review/replay code as the
//! CLI's commands. The HTTP layer sees only the [`Backend`] trait.

use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, Utc};

use callhook::adapters::dynamodb::DynamoLedger;
use callhook::app::whole_calls::{WholeCalls, normalize_stored};
use callhook::domain::call::{CallRecord, escalation_dispatch_id, finalize_dispatch_id};
use callhook::domain::review::{ReviewItem, ReviewStatus, dispatch_pk, event_pk};
use callhook::ports::{
    CallReader, CallStore, EventReader, EventSelection, EventStatus, Ledger, ReviewAdmin,
    StoredEvent,
};
use callhook::providers::Providers;

use super::story::{self, CallStory, Inputs, StoredFact};
use super::summary::{self, Summary};
use crate::commands::{calls, review};
use crate::local::state::DevState;
use crate::local::terminal::{EMF_FILE, LOG_FILE};
use crate::target::{Target, TargetOptions};

/// At most this much of the end of a log or metrics file is read for a page.
const TAIL_BYTES: u64 = 16 * 1024 * 1024;

/// A review item and, for an event's item, its stored raw body.
#[derive(Debug, Clone)]
pub struct ReviewDetail {
    pub item: ReviewItem,
    pub stored: Option<StoredEvent>,
}

/// What the pages need. Every method reads (or acts) now: the console keeps no copy.
pub trait Backend: Send + Sync + 'static {
    /// "the local stack" or "stack NAME (REGION)".
    fn label(&self) -> String;
    /// How long a call may go without an event before it counts as stale.
    fn stale_after(&self) -> Duration;
    fn calls(&self) -> impl Future<Output = Result<Vec<CallRecord>>> + Send;
    /// `None` when the call has no record and no event.
    fn story(&self, call_id: &str) -> impl Future<Output = Result<Option<CallStory>>> + Send;
    fn review_items(
        &self,
        status: Option<ReviewStatus>,
    ) -> impl Future<Output = Result<Vec<ReviewItem>>> + Send;
    fn review_item(&self, id: &str) -> impl Future<Output = Result<ReviewDetail>> + Send;
    /// `callhook review replay ID`; what was done, for a person.
    fn replay(&self, id: &str) -> impl Future<Output = Result<String>> + Send;
    /// `callhook review discard ID`.
    fn discard(&self, id: &str) -> impl Future<Output = Result<String>> + Send;
    fn summary(&self, now: DateTime<Utc>) -> impl Future<Output = Result<Summary>> + Send;
}

/// The stack the console reads: the running `callhook dev`, or a deployed stack.
pub struct TargetBackend {
    options: TargetOptions,
    state_dir: PathBuf,
    stale_after: Duration,
    /// For the local stack: the dev.json the target was made from, so a restarted
    /// `callhook dev` (a new emulator port) is picked up.
    current: Mutex<Option<(String, Arc<Target>)>>,
}

impl TargetBackend {
    /// Resolves the target once now, so a missing `callhook dev` or stack is an error at start.
    pub async fn new(
        options: TargetOptions,
        state_dir: &Path,
        stale_after: Duration,
    ) -> Result<TargetBackend> {
        let backend = TargetBackend {
            options,
            state_dir: state_dir.to_owned(),
            stale_after,
            current: Mutex::new(None),
        };
        backend.target().await?;
        Ok(backend)
    }

    fn is_local(&self) -> bool {
        self.options.stack.is_none()
    }

    async fn target(&self) -> Result<Arc<Target>> {
        let dev_json = if self.is_local() {
            let path = self.state_dir.join("dev.json");
            std::fs::read_to_string(&path).with_context(|| {
                format!("{} not found: is `callhook dev` running?", path.display())
            })?
        } else {
            String::new()
        };
        if let Some((seen, target)) = &*self.current.lock().unwrap_or_else(|e| e.into_inner())
            && *seen == dev_json
        {
            return Ok(target.clone());
        }
        let target = Arc::new(if self.is_local() {
            Target::local(&DevState::load(&self.state_dir)?, &self.state_dir)?
        } else {
            Target::resolve(&self.options, &self.state_dir).await?
        });
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some((dev_json, target.clone()));
        Ok(target)
    }

    /// The end of a file of the state directory (local stack only); `None` when absent.
    fn tail(&self, name: &str) -> Option<String> {
        if !self.is_local() {
            return None;
        }
        let mut file = std::fs::File::open(self.state_dir.join(name)).ok()?;
        let len = file.metadata().ok()?.len();
        let start = len.saturating_sub(TAIL_BYTES);
        file.seek(SeekFrom::Start(start)).ok()?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).ok()?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        // A cut first line is not a whole document.
        Some(match (start > 0, text.find('\n')) {
            (true, Some(at)) => text[at + 1..].to_owned(),
            _ => text,
        })
    }
}

impl Backend for TargetBackend {
    fn label(&self) -> String {
        match &self.options.stack {
            Some(stack) => format!("stack {stack}"),
            None => "the local stack (callhook dev)".to_owned(),
        }
    }

    fn stale_after(&self) -> Duration {
        self.stale_after
    }

    async fn calls(&self) -> Result<Vec<CallRecord>> {
        let target = self.target().await?;
        Ok(calls::store(&target)?.list().await?)
    }

    async fn story(&self, call_id: &str) -> Result<Option<CallStory>> {
        let target = self.target().await?;
        let store = calls::store(&target)?;
        let stored_call = store.get(call_id).await?;
        let whole = WholeCalls {
            calls: store,
            // With the events bucket: a large body (a long call's transcript) is kept there.
            events: target.events_reader()?,
            normalizers: Providers::normalizers(&target.env).context("provider configuration")?,
        };
        let (events, normalizers) = (&whole.events, &whole.normalizers);
        let record = match stored_call {
            Some(_) => whole.read_call(call_id).await?,
            None => None,
        };
        let outbox = stored_call.map(|c| c.outbox).unwrap_or_default();

        // The events table has `call_id` on each item: a scan with a filter (an operator's
        // tool, as `callhook replay --call` reads it).
        let ids = events
            .select(&EventSelection::Call(call_id.to_owned()))
            .await?;
        let mut facts = Vec::with_capacity(ids.len());
        for id in &ids {
            let Some(stored) = events.get_event(id).await? else {
                continue;
            };
            facts.push(StoredFact {
                event_id: stored.event_id.clone(),
                status: stored.status.as_str().to_owned(),
                received_at: stored.received_at,
                raw_bytes: stored.raw_body.len(),
                event: normalize_stored(&stored, normalizers),
            });
        }
        if record.is_none() && facts.is_empty() {
            return Ok(None);
        }

        // The dispatches the events caused (the reducer replayed), and the call's
        // one-per-call ids: their ledger entries and review items.
        let mut dispatch_ids: Vec<String> = story::build(Inputs {
            call_id: call_id.to_owned(),
            record: None,
            outbox: outbox.clone(),
            events: facts.clone(),
            ..Inputs::default()
        })
        .dispatches
        .into_iter()
        .map(|d| d.dispatch_id)
        .collect();
        dispatch_ids.push(finalize_dispatch_id(call_id));
        dispatch_ids.push(escalation_dispatch_id(call_id));
        // Updates after the end resolve to the finalization's id too: each id is read once.
        dispatch_ids.sort_unstable();
        dispatch_ids.dedup();
        let ledger = DynamoLedger::new(target.dynamo.clone(), target.table("LedgerTable")?);
        let review_store = target.review_store()?;
        let mut inputs = Inputs {
            call_id: call_id.to_owned(),
            record,
            outbox,
            deliveries: self
                .tail(LOG_FILE)
                .map(|log| story::deliveries_in_log(&log, call_id)),
            ..Inputs::default()
        };
        for id in &dispatch_ids {
            if let Some(entry) = ledger.get(id).await? {
                inputs.ledger.insert(id.clone(), entry);
            }
            if let Some(item) = review_store.get(&dispatch_pk(id)).await? {
                inputs.review.insert(item.pk.clone(), item);
            }
        }
        for fact in &facts {
            let reviewed = fact.status == EventStatus::Review.as_str()
                || fact.event.as_ref().is_some_and(|e| e.review.is_some());
            if reviewed && let Some(item) = review_store.get(&event_pk(&fact.event_id)).await? {
                inputs.review.insert(item.pk.clone(), item);
            }
        }
        inputs.events = facts;
        Ok(Some(story::build(inputs)))
    }

    async fn review_items(&self, status: Option<ReviewStatus>) -> Result<Vec<ReviewItem>> {
        let target = self.target().await?;
        Ok(review::store(&target)?.list(status, None).await?)
    }

    async fn review_item(&self, id: &str) -> Result<ReviewDetail> {
        let target = self.target().await?;
        let item = review::find(&review::store(&target)?, id).await?;
        let stored = match item.event_id() {
            Some(event_id) => review::stored_event(&target, event_id).await?,
            None => None,
        };
        Ok(ReviewDetail { item, stored })
    }

    async fn replay(&self, id: &str) -> Result<String> {
        let target = self.target().await?;
        let replayed = review::replay_item(&target, &review::store(&target)?, id).await?;
        replayed.sent()?;
        Ok(replayed.describe())
    }

    async fn discard(&self, id: &str) -> Result<String> {
        let target = self.target().await?;
        let pk = review::discard_item(&review::store(&target)?, id).await?;
        Ok(format!("discarded {pk}"))
    }

    async fn summary(&self, now: DateTime<Utc>) -> Result<Summary> {
        let target = self.target().await?;
        let records = calls::store(&target)?.list().await?;
        let review_open = review::store(&target)?.count_open().await?;
        Ok(Summary {
            now,
            traffic: self
                .tail(EMF_FILE)
                .map(|emf| summary::traffic(&emf, now - summary::window())),
            calls: summary::call_counts(&records, now, self.stale_after),
            review_open,
        })
    }
}

//! Delivery pathologies through the whole local stack (issue 7 item 1): the emulator going away
//! in the middle of a burst. (Many concurrent copies of one event: tests/tests/ingest.rs.)

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use callhook::store::calls::CallStore;
use callhook_integration::{HttpSink, Stack, telnyx_request};
use chrono::Utc;
use serde_json::Value;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Ten facts of one Telnyx call: initiated, answered, six in-call facts, hangup, recording.
fn call_events(call: usize) -> Vec<String> {
    let types = [
        "call.initiated",
        "call.answered",
        "call.dtmf.received",
        "call.playback.started",
        "call.playback.ended",
        "call.speak.started",
        "call.speak.ended",
        "call.gather.ended",
        "call.hangup",
        "call.recording.saved",
    ];
    types
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let extra = match *t {
                "call.hangup" => r#","hangup_cause":"normal_clearing""#,
                _ => "",
            };
            format!(
                r#"{{"data":{{"event_type":"{t}","id":"c{call}-e{i}","occurred_at":"2024-01-01T00:{:02}:{:02}Z","payload":{{"call_session_id":"burst-{call}","direction":"incoming","from":"+1555{call:04}","to":"+15550199"{extra}}},"record_type":"event"}},"meta":{{"attempt":1}}}}"#,
                i / 6,
                (i * 10) % 60
            )
        })
        .collect()
}

/// A small deterministic shuffle (xorshift), so a failure can be replayed.
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        items.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

struct Local {
    stack: Stack,
    ingest: Arc<callhook_ingest::IngestFunction>,
    lifecycle: callhook_lifecycle::LifecycleFunction,
    dispatch: callhook_dispatch::DispatchFunction,
    crm: HttpSink,
}

impl Local {
    async fn start() -> Local {
        let stack = Stack::start().await;
        let crm = HttpSink::start(Vec::new()).await;
        let ingest = Arc::new(callhook_ingest::build(&stack.ingest_env()).unwrap());
        let lifecycle = stack.lifecycle();
        let mut env = stack.function_env("DispatchFunction");
        env.set("CRM_WEBHOOK_URL", &crm.url);
        env.set("CRM_SIGNING_SECRET", SECRET);
        let dispatch = callhook_dispatch::build(&env).unwrap();
        Local {
            stack,
            ingest,
            lifecycle,
            dispatch,
            crm,
        }
    }

    /// Delivers `bodies` from `senders` concurrent senders; returns each body's answers.
    async fn burst(&self, bodies: Vec<String>, senders: usize) -> Vec<(String, u16, String)> {
        let work = Arc::new(Mutex::new(bodies));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for _ in 0..senders {
            let (work, answers, ingest) = (work.clone(), answers.clone(), self.ingest.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let Some(body) = work.lock().unwrap().pop() else {
                        return;
                    };
                    let answer = ingest.handle(&telnyx_request(&body, Utc::now())).await;
                    let result = answer.result().to_owned();
                    answers.lock().unwrap().push((body, answer.status, result));
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        Arc::try_unwrap(answers).unwrap().into_inner().unwrap()
    }

    async fn drain_lifecycle(&self) {
        self.stack.pump_lifecycle(&self.lifecycle).await;
    }

    async fn drain_dispatch(&self) {
        let dispatch = &self.dispatch;
        self.stack
            .pump(
                &self.stack.provisioned.queues["DispatchQueue"],
                |e| async move { callhook_dispatch::process_batch(dispatch, &e).await },
            )
            .await;
    }

    /// Status of every stored event.
    async fn event_statuses(&self) -> BTreeMap<String, String> {
        let mut statuses = BTreeMap::new();
        let mut start = None;
        loop {
            let page = self
                .stack
                .dynamo
                .scan()
                .table_name(self.stack.events_table())
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            for item in page.items() {
                statuses.insert(
                    item["pk"].as_s().unwrap().clone(),
                    item["status"].as_s().unwrap().clone(),
                );
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return statuses;
            }
        }
    }

    fn completed_calls(&self) -> Vec<String> {
        self.crm
            .requests()
            .iter()
            .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
            .filter(|b| b["type"] == "call.completed")
            .map(|b| b["call"]["call_id"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn event_id(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap();
    format!("telnyx#{}", v["data"]["id"].as_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_going_away_mid_burst_loses_nothing_acknowledged() {
    let local = Local::start().await;
    let mut deliveries: Vec<String> = (0..30).flat_map(call_events).collect();
    shuffle(&mut deliveries, 42);
    let pid = local.stack.moto.pid().to_string();

    // Pause the emulator a moment into the burst and bring it back 12 s later.
    let outage = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        std::process::Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap();
        tokio::time::sleep(Duration::from_secs(12)).await;
        std::process::Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap();
    };
    let (answers, _) = tokio::join!(local.burst(deliveries.clone(), 8), outage);
    let failed: Vec<&String> = answers
        .iter()
        .filter(|(_, status, _)| *status != 200)
        .map(|(b, _, _)| b)
        .collect();
    assert!(!failed.is_empty(), "the outage was felt");
    assert!(answers.iter().all(|(_, s, _)| *s == 200 || *s == 503));

    // Nothing acknowledged is missing from the store.
    let stored = local.event_statuses().await;
    for (body, status, _) in &answers {
        if *status == 200 {
            assert!(stored.contains_key(&event_id(body)), "2xx but not stored");
        }
    }

    // The providers retry what got 503; the sweeper-free path: their retries are deduped and
    // re-queue what was stored but not sent.
    let retries: Vec<String> = failed.into_iter().cloned().collect();
    let again = local.burst(retries, 8).await;
    assert!(again.iter().all(|(_, s, _)| *s == 200), "{again:?}");

    // A write whose answer the outage swallowed is stored but unmarked and unqueued; its quick
    // retry answers `duplicate` without re-sending (it might be racing the first delivery), and
    // the sweeper queues it once it is old enough. Here it runs at once, as it would a minute on.
    let sweeper = callhook_cli::sweep::sweeper(
        &local.stack.ingest_env(),
        &local.stack.moto.endpoint,
        &local.stack.provisioned.tables,
        &local.stack.provisioned.queues,
        Duration::ZERO,
    )
    .unwrap();
    sweeper.sweep(Utc::now()).await.unwrap();

    local.drain_lifecycle().await;
    local.drain_dispatch().await;
    let statuses = local.event_statuses().await;
    assert_eq!(statuses.len(), 300);
    let unprocessed: Vec<_> = statuses.iter().filter(|(_, s)| *s != "PROCESSED").collect();
    assert!(unprocessed.is_empty(), "{unprocessed:?}");
    for call in 0..30 {
        let record = local
            .lifecycle
            .calls
            .get(&format!("telnyx#burst-{call}"))
            .await
            .unwrap()
            .unwrap()
            .record;
        assert_eq!(record.event_count, 10, "call {call}");
    }
    let completed = local.completed_calls();
    assert_eq!(completed.len(), 30);
    assert_eq!(completed.iter().collect::<BTreeSet<_>>().len(), 30);
}

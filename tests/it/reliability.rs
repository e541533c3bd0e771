//! Delivery pathologies through the whole local stack (docs/reliability.md): the emulator going away
//! in the middle of a burst, and a burst of 2,000 shuffled events with duplicates processed
//! while it arrives. (Many concurrent copies of one event: tests/tests/ingest.rs.) What each
//! proves and the measured figures: docs/reliability.md.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_dynamodb::types::AttributeValue;
use callhook::adapters::dynamodb::DynamoCallStore;
use callhook::adapters::dynamodb::DynamoEventReader;
use callhook::adapters::dynamodb::DynamoLedger;
use callhook::adapters::dynamodb::DynamoReviewStore;
use callhook::adapters::sqs::SqsQueue;
use callhook::adapters::sqs::SqsSender;
use callhook::config::Env;
use callhook::ports::CallStore;
use callhook_cli::local::poller;
use callhook_cli::local::provision;
use callhook_integration::{
    HttpSink, RequestCounter, Stack, TEMPLATE, counted_ingest, telnyx_request,
};
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

/// One delivery through ingest: its body, the status and `status` field answered, how long
/// ingest took.
#[derive(Debug)]
struct Delivered {
    body: String,
    status: u16,
    result: String,
    took: Duration,
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
        Local::on(Stack::start().await).await
    }

    async fn on(stack: Stack) -> Local {
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

    /// Delivers `bodies` from `senders` concurrent senders; returns each body's answer.
    async fn burst(&self, bodies: Vec<String>, senders: usize) -> Vec<Delivered> {
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
                    let started = Instant::now();
                    let answer = ingest.handle(&telnyx_request(&body, Utc::now())).await;
                    let delivered = Delivered {
                        result: answer.result().to_owned(),
                        status: answer.status(),
                        took: started.elapsed(),
                        body,
                    };
                    answers.lock().unwrap().push(delivered);
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
        .filter(|a| a.status != 200)
        .map(|a| &a.body)
        .collect();
    assert!(!failed.is_empty(), "the outage was felt");
    assert!(answers.iter().all(|a| a.status == 200 || a.status == 503));

    // Nothing acknowledged is missing from the store.
    let stored = local.event_statuses().await;
    for a in &answers {
        if a.status == 200 {
            assert!(
                stored.contains_key(&event_id(&a.body)),
                "2xx but not stored"
            );
        }
    }

    // The providers retry what got 503; the sweeper-free path: their retries are deduped and
    // re-queue what was stored but not sent.
    let retries: Vec<String> = failed.into_iter().cloned().collect();
    let again = local.burst(retries, 8).await;
    let answered: Vec<(u16, &str)> = again.iter().map(|a| (a.status, &*a.result)).collect();
    assert!(answered.iter().all(|(s, _)| *s == 200), "{answered:?}");

    // A write whose answer the outage swallowed is stored but unmarked and unqueued; its quick
    // retry answers `duplicate` without re-sending (it might be racing the first delivery), and
    // the sweeper queues it once it is old enough. Here it runs at once, as it would a minute on.
    let sweeper = callhook_cli::local::schedule::sweeper(
        &local.stack.ingest_env(),
        &local.stack.moto.endpoint,
        &local.stack.provisioned,
        Duration::ZERO,
    )
    .unwrap();
    sweeper.sweeper.sweep(Utc::now()).await.unwrap();

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

// ------------------------------------------------------------------------------------------------
// moto with its quadratic transaction fixed (see docs/reliability.md, "The burst").

/// Applied to moto server before it starts. Each patch removes a cost that grows with the data
/// or the request count and changes nothing a client can observe:
///
/// 1. `TransactWriteItems` deep-copies every table the transaction names before it starts (to
///    roll back on failure): O(items stored) per transaction, so O(n²) over a burst. Here only
///    the items the transaction touches are copied and, on failure, put back. (moto's own
///    rollback also restores whole tables, silently undoing other clients' writes made while
///    the transaction ran; per-item restore does not.)
/// 2. Every model object moto creates, those deep copies included, is appended to a class-level
///    list for the `/moto-api` dashboard and never freed: ≈ 2 KB per copied item, so the copies
///    of (1) leak gigabytes. Nothing here uses the dashboard.
/// 3. `ReceiveMessage` computes every attribute of the queue (each a pass over all its messages)
///    for each message it returns, only to read the retention period: O(depth) per message.
///    Here the retention period is read directly. (`SendMessage` still computes them all once,
///    to read ContentBasedDeduplication: keep the queues drained.) SQS's clock reads go
///    through two datetime conversions per message per pass; `time.time()` is the same number.
/// 4. Every request lists and stats moto's ~150 service directories while holding the server's
///    global lock, and logs a line; the list is computed once and the request log is off.
const MOTO_PATCHES: &str = r#"
import copy, sys, types, logging
import moto.backends as backends
import moto.core.common_models as common_models
import moto.dynamodb.models as dynamodb
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table

def untracked_new(cls, *args, **kwargs):
    return super(common_models.BaseModel, cls).__new__(cls)
common_models.BaseModel.__new__ = untracked_new

import time
import moto.sqs.models as sqs
unix_time, unix_time_millis = sqs.unix_time, sqs.unix_time_millis
sqs.unix_time = lambda dt=None: time.time() if dt is None else unix_time(dt)
sqs.unix_time_millis = lambda dt=None: time.time() * 1000 if dt is None else unix_time_millis(dt)
def retained(self, queue_name, message):
    period = int(self.get_queue(queue_name).message_retention_period)
    return period + message.sent_timestamp / 1000 > time.time()
sqs.SQSBackend.is_message_valid_based_on_retention_period = retained

modules = list(backends.list_of_moto_modules())
backends.list_of_moto_modules = lambda: modules
logging.getLogger("werkzeug").setLevel(logging.ERROR)

# moto's transact_write_items snapshots with copy.deepcopy(table): make that the table itself
# (its "restore" becomes a no-op) and keep the touched items instead.
dynamodb.copy = types.SimpleNamespace(
    deepcopy=lambda o, memo=None: o if isinstance(o, Table) else copy.deepcopy(o, memo),
    copy=copy.copy)
original = dynamodb.DynamoDBBackend.transact_write_items

def transact_write_items(self, transact_items):
    saved = []
    for entry in transact_items:
        try:
            _, op = next(iter(entry.items()))
            table = self.tables[op["TableName"]]
            key = op.get("Key") or op["Item"]
            h = DynamoType(key[table.hash_key_attr])
            r = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            saved.append((table, h, r, copy.deepcopy(table.get_item(h, r))))
        except Exception:
            pass  # moto reports a malformed operation itself
    try:
        return original(self, transact_items)
    except BaseException:
        for table, h, r, old in reversed(saved):
            if r is None:
                if old is None:
                    table.items.pop(h, None)
                else:
                    table.items[h] = old
            elif old is None:
                table.items.get(h, {}).pop(r, None)
            else:
                table.items[h][r] = old
        raise
dynamodb.DynamoDBBackend.transact_write_items = transact_write_items

from moto.server import main
sys.argv = ["moto_server"] + sys.argv[1:]
main()
"#;

/// A patched moto server ([`MOTO_PATCHES`]) in place of the stack's: the stack's emulator is
/// stopped, this one listens on its port and the same tables and queues are provisioned again.
/// Killed when dropped.
struct PatchedMoto {
    child: std::process::Child,
}

impl PatchedMoto {
    async fn replace(stack: &mut Stack) -> PatchedMoto {
        // The interpreter moto_server runs with (its `#!` line).
        let script = callhook_cli::local::emulator::moto_binary().unwrap();
        let text = std::fs::read_to_string(&script).unwrap();
        let python = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("#!"))
            .map(|l| l.trim().to_owned())
            .expect("moto_server starts with #!");
        let port = stack.moto.endpoint.rsplit(':').next().unwrap().to_owned();
        stack.moto.kill();
        let child = std::process::Command::new(python)
            .args(["-c", MOTO_PATCHES, "-H", "127.0.0.1", "-p", &port])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut patched = PatchedMoto { child };
        let deadline = Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap()))
            .await
            .is_err()
        {
            assert!(
                patched.child.try_wait().unwrap().is_none(),
                "patched moto exited"
            );
            assert!(Instant::now() < deadline, "patched moto did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let plan = provision::plan_from_template(TEMPLATE).unwrap();
        let again = provision::apply(&plan, "callhook-test", &stack.dynamo, &stack.sqs, &stack.s3)
            .await
            .unwrap();
        assert_eq!(again.tables, stack.provisioned.tables);
        assert_eq!(again.queues, stack.provisioned.queues);
        patched
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for PatchedMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------------------------------------------
// The burst: 2,000 events of 200 calls, every fifth delivered twice, shuffled, from 8 senders,
// with the lifecycle and dispatch running alongside as their event source mappings would.

/// AWS requests one function sent (every attempt, retries included).
#[derive(Default, Clone)]
struct AwsCalls {
    dynamo: RequestCounter,
    sqs: RequestCounter,
}

impl AwsCalls {
    /// Clients configured as the functions' own (`callhook::adapters::aws::sdk_config`), counting.
    fn clients(&self, env: &Env) -> (aws_sdk_dynamodb::Client, aws_sdk_sqs::Client) {
        let sdk = callhook::adapters::aws::sdk_config(env).unwrap();
        let dynamo = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&sdk)
                .interceptor(self.dynamo.clone())
                .build(),
        );
        let sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&sdk)
                .interceptor(self.sqs.clone())
                .build(),
        );
        (dynamo, sqs)
    }

    /// An SQS client as the event source mapping's poller: no function timeouts.
    fn poller(&self, endpoint: &str) -> aws_sdk_sqs::Client {
        let sdk = callhook_cli::local::emulator::local_sdk_config(endpoint);
        aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&sdk)
                .interceptor(self.sqs.clone())
                .build(),
        )
    }

    fn total(&self) -> usize {
        self.dynamo.get() + self.sqs.get()
    }
}

/// What a queue's processor did: batches handled, time in the handler and in receive/delete.
#[derive(Debug, Default)]
struct Stage {
    batches: usize,
    messages: usize,
    empty_polls: usize,
    /// Inside the function's batch handler.
    handler: Duration,
    /// Receive (including its long-poll wait) + handler + deletes, for batches that had
    /// messages.
    busy: Duration,
    /// When the last message was handled, from the start of the burst.
    last_at: Duration,
}

/// Runs `handler` on `queue` as the SQS event source mapping does, alongside whatever fills the
/// queue, until `upstream` is done and the queue holds nothing (visible, in flight or delayed).
async fn pump_alongside<F, Fut>(
    stack: &Stack,
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    upstream: &AtomicBool,
    started: Instant,
    handler: F,
) -> Stage
where
    F: Fn(SqsEvent) -> Fut,
    Fut: Future<Output = SqsBatchResponse>,
{
    let mut stage = Stage::default();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "{queue} not drained: {stage:?}"
        );
        let upstream_done = upstream.load(Ordering::SeqCst);
        let in_handler = Mutex::new(Duration::ZERO);
        let polled = Instant::now();
        // Long polling, as the event source mapping does: an empty queue costs one request a
        // second, not one per sleep.
        let n = poller::poll_once(sqs, queue, 10, 1, |event| {
            let work = handler(event);
            let in_handler = &in_handler;
            async move {
                let t = Instant::now();
                let response = work.await;
                *in_handler.lock().unwrap() += t.elapsed();
                response
            }
        })
        .await
        .unwrap();
        if n > 0 {
            stage.batches += 1;
            stage.messages += n;
            stage.busy += polled.elapsed();
            stage.handler += *in_handler.lock().unwrap();
            stage.last_at = started.elapsed();
            continue;
        }
        stage.empty_polls += 1;
        if upstream_done && queue_is_empty(stack, queue).await {
            return stage;
        }
    }
}

async fn queue_is_empty(stack: &Stack, queue: &str) -> bool {
    stack.queue_depth(queue).await == 0
}

/// moto's resident memory and CPU, sampled from /proc every 250 ms (printed every 10 s).
struct MotoWatch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<MotoUse>,
}

#[derive(Debug, Default)]
struct MotoUse {
    /// VmHWM: the kernel's high-water mark of the resident set.
    peak_rss_kib: u64,
    rss_kib: u64,
    cpu: Duration,
}

fn moto_use(pid: u32) -> Option<MotoUse> {
    process_use(&pid.to_string())
}

/// Resident memory and CPU time of a process (`self` for this one).
fn process_use(pid: &str) -> Option<MotoUse> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().ok()? + fields[12].parse::<u64>().ok()?;
    Some(MotoUse {
        peak_rss_kib: kib("VmHWM:"),
        rss_kib: kib("VmRSS:"),
        // USER_HZ is 100 on Linux.
        cpu: Duration::from_millis(ticks * 10),
    })
}

impl MotoWatch {
    fn start(pid: u32) -> MotoWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut last = moto_use(pid).unwrap_or_default();
            let mut last_print = Instant::now();
            let mut last_cpu = last.cpu;
            while !stopping.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(250));
                let Some(now) = moto_use(pid) else { break };
                if last_print.elapsed() >= Duration::from_secs(10) {
                    let cpu =
                        (now.cpu - last_cpu).as_secs_f64() / last_print.elapsed().as_secs_f64();
                    eprintln!(
                        "moto at {:>5.1} s: RSS {} MiB, CPU {:.0} % over the last 10 s",
                        started.elapsed().as_secs_f64(),
                        now.rss_kib / 1024,
                        cpu * 100.0
                    );
                    last_print = Instant::now();
                    last_cpu = now.cpu;
                }
                last = now;
            }
            last
        });
        MotoWatch { stop, thread }
    }

    fn finish(self) -> MotoUse {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

async fn stored_size(stack: &Stack, table: &str, pk: &str) -> usize {
    let out = stack
        .dynamo
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk.to_owned()))
        .send()
        .await
        .unwrap();
    callhook::adapters::dynamodb::item_size(out.item().unwrap())
}

fn per(n: usize, of: usize) -> f64 {
    n as f64 / of.max(1) as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_2000_shuffled_events_with_duplicates_completes_each_call_once() {
    // BURST_CALLS scales the burst down while iterating; CI runs the 200 calls.
    let calls: usize = std::env::var("BURST_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut stack = Stack::start().await;
    // BURST_STOCK_MOTO=1 runs it on moto as released, to measure what the patches save.
    let patched = match std::env::var("BURST_STOCK_MOTO") {
        Ok(v) if v == "1" => None,
        _ => Some(PatchedMoto::replace(&mut stack).await),
    };
    let moto_pid = patched.as_ref().map_or(stack.moto.pid(), PatchedMoto::pid);
    let mut local = Local::on(stack).await;
    let endpoint = local.stack.moto.endpoint.clone();
    let moto_before = moto_use(moto_pid).unwrap();
    let test_before = process_use("self").unwrap();
    let watch = MotoWatch::start(moto_pid);

    // Each function as its builder configures it, with clients that count their requests.
    let counted = counted_ingest(&local.stack.ingest_env(), &endpoint, &endpoint);
    let ingest_calls = AwsCalls {
        dynamo: counted.dynamo_requests.clone(),
        sqs: counted.sqs_requests.clone(),
    };
    local.ingest = Arc::new(counted.ingest);

    let lifecycle_calls = AwsCalls::default();
    let env = local.stack.function_env("LifecycleFunction");
    let (dynamo, sqs) = lifecycle_calls.clients(&env);
    let lifecycle = &mut local.lifecycle;
    lifecycle.calls = DynamoCallStore::new(
        dynamo.clone(),
        env.require("CALLS_TABLE").unwrap(),
        env.require("EVENTS_TABLE").unwrap(),
    );
    lifecycle.dispatch_queue = SqsQueue::new(sqs, env.require("DISPATCH_QUEUE_URL").unwrap());
    lifecycle.review = env
        .get("REVIEW_TABLE")
        .map(|t| DynamoReviewStore::new(dynamo, t));
    assert_eq!(lifecycle.settle_secs, 0);

    let dispatch_calls = AwsCalls::default();
    let env = local.stack.function_env("DispatchFunction");
    let (dynamo, sqs) = dispatch_calls.clients(&env);
    let dispatcher = &mut local.dispatch.dispatcher;
    dispatcher.calls.calls =
        DynamoCallStore::new(dynamo.clone(), env.require("CALLS_TABLE").unwrap(), "");
    dispatcher.calls.events =
        DynamoEventReader::new(dynamo.clone(), env.require("EVENTS_TABLE").unwrap());
    dispatcher.ledger = DynamoLedger::new(dynamo.clone(), env.require("LEDGER_TABLE").unwrap());
    dispatcher.review = env
        .get("REVIEW_TABLE")
        .map(|t| DynamoReviewStore::new(dynamo, t));
    dispatcher.queues = SqsSender(sqs.clone());
    local.dispatch.sqs = sqs;

    // The event source mappings' own receives and deletes.
    let (events_poller, dispatch_poller) = (AwsCalls::default(), AwsCalls::default());
    let events_sqs = events_poller.poller(&endpoint);
    let dispatch_sqs = dispatch_poller.poller(&endpoint);

    let events: Vec<String> = (0..calls).flat_map(call_events).collect();
    let mut deliveries: Vec<String> = events
        .iter()
        .enumerate()
        .flat_map(|(i, body)| std::iter::repeat_n(body.clone(), if i % 5 == 4 { 2 } else { 1 }))
        .collect();
    shuffle(&mut deliveries, 2000);
    let sent = deliveries.len();

    let senders_done = AtomicBool::new(false);
    let lifecycle_done = AtomicBool::new(false);
    let started = Instant::now();
    let local = &local;
    let send = async {
        let answers = local.burst(deliveries, 8).await;
        senders_done.store(true, Ordering::SeqCst);
        (answers, started.elapsed())
    };
    let process = async {
        let lifecycle = &local.lifecycle;
        let stage = pump_alongside(
            &local.stack,
            &events_sqs,
            local.stack.events_queue(),
            &senders_done,
            started,
            move |e| async move { callhook_lifecycle::process_batch(lifecycle, &e).await },
        )
        .await;
        lifecycle_done.store(true, Ordering::SeqCst);
        stage
    };
    let dispatch = async {
        let function = &local.dispatch;
        pump_alongside(
            &local.stack,
            &dispatch_sqs,
            &local.stack.provisioned.queues["DispatchQueue"],
            &lifecycle_done,
            started,
            move |e| async move { callhook_dispatch::process_batch(function, &e).await },
        )
        .await
    };
    let ((answers, ingest_wall), processed, dispatched) = tokio::join!(send, process, dispatch);
    let total_wall = started.elapsed();
    let moto = watch.finish();
    let test_cpu = process_use("self").unwrap().cpu - test_before.cpu;

    // Every delivery was acknowledged; each event accepted once, its copy answered duplicate.
    let not_ok: Vec<(u16, &str)> = answers
        .iter()
        .filter(|a| a.status != 200)
        .map(|a| (a.status, a.result.as_str()))
        .collect();
    assert!(not_ok.is_empty(), "{not_ok:?}");
    let accepted: Vec<String> = answers
        .iter()
        .filter(|a| a.result == "accepted")
        .map(|a| event_id(&a.body))
        .collect();
    let duplicates = answers.iter().filter(|a| a.result == "duplicate").count();
    let all_ids: BTreeSet<String> = events.iter().map(|b| event_id(b)).collect();
    assert_eq!(accepted.iter().cloned().collect::<BTreeSet<_>>(), all_ids);
    assert_eq!(accepted.len() + duplicates, sent);

    // (Counted now: the checks below read through the lifecycle's store.)
    // Processed exactly once: every event PROCESSED, each call's record applied its 10 events
    // once, finalized, and the CRM received one completion per call.
    let lifecycle_dynamo = lifecycle_calls.dynamo.get();
    let statuses = local.event_statuses().await;
    assert_eq!(statuses.len(), events.len());
    let unprocessed: Vec<_> = statuses.iter().filter(|(_, s)| *s != "PROCESSED").collect();
    assert!(unprocessed.is_empty(), "{unprocessed:?}");
    for call in 0..calls {
        let record = local
            .lifecycle
            .calls
            .get(&format!("telnyx#burst-{call}"))
            .await
            .unwrap()
            .unwrap()
            .record;
        assert_eq!(record.event_count, 10, "call {call}");
        assert_eq!(record.applied_event_ids.len(), 10, "call {call}");
        assert!(record.finalized_at.is_some(), "call {call}");
    }
    let completed = local.completed_calls();
    assert_eq!(completed.len(), calls, "one completion per call");
    assert_eq!(completed.iter().collect::<BTreeSet<_>>().len(), calls);
    let crm_requests = local.crm.count();
    let review = local
        .stack
        .count_items(&local.stack.provisioned.tables["ReviewTable"])
        .await;
    assert_eq!(review, 0, "no review items");
    for dlq in ["EventsDeadLetterQueue", "DispatchDeadLetterQueue"] {
        assert_eq!(
            local
                .stack
                .queue_depth(&local.stack.provisioned.queues[dlq])
                .await,
            0,
            "{dlq}"
        );
    }

    // The figures (docs/reliability.md, docs/benchmarks.md).
    let tables = &local.stack.provisioned.tables;
    let sizes = (
        stored_size(&local.stack, &tables["EventsTable"], "telnyx#c0-e8").await,
        stored_size(&local.stack, &tables["CallsTable"], "telnyx#burst-0").await,
        local.crm.requests()[0].body.len(),
    );
    let n = events.len();
    let ingest_busy: Duration = answers.iter().map(|a| a.took).sum();
    let mut took: Vec<Duration> = answers.iter().map(|a| a.took).collect();
    took.sort();
    let pct = |p: usize| took[(took.len() * p / 100).min(took.len() - 1)].as_secs_f64() * 1e3;
    eprintln!(
        "burst: {calls} calls, {n} events, {sent} deliveries ({duplicates} duplicates), 8 senders, {} moto",
        if patched.is_some() {
            "patched"
        } else {
            "stock"
        }
    );
    eprintln!(
        "  wall: ingest {:.1} s, all processed {:.1} s, all dispatched {:.1} s, test total {:.1} s",
        ingest_wall.as_secs_f64(),
        processed.last_at.as_secs_f64(),
        dispatched.last_at.as_secs_f64(),
        total_wall.as_secs_f64()
    );
    eprintln!(
        "  throughput: ingest {:.0} deliveries/s ({:.0} new events/s); end to end {:.0} events/s processed, {:.1} calls/s dispatched",
        per(sent, 1) / ingest_wall.as_secs_f64(),
        per(n, 1) / ingest_wall.as_secs_f64(),
        per(n, 1) / processed.last_at.as_secs_f64(),
        per(calls, 1) / dispatched.last_at.as_secs_f64()
    );
    eprintln!(
        "  ingest: latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; busy {:.1} s over 8 senders",
        pct(50),
        pct(99),
        pct(100),
        ingest_busy.as_secs_f64()
    );
    for (name, stage) in [("lifecycle", &processed), ("dispatch", &dispatched)] {
        eprintln!(
            "  {name}: {} messages in {} batches ({:.1}/batch), handler {:.1} s ({:.2} ms/message), receive (with its long-poll wait) + delete {:.1} s, {} empty polls",
            stage.messages,
            stage.batches,
            per(stage.messages, stage.batches),
            stage.handler.as_secs_f64(),
            stage.handler.as_secs_f64() * 1e3 / stage.messages.max(1) as f64,
            (stage.busy - stage.handler).as_secs_f64(),
            stage.empty_polls
        );
    }
    eprintln!(
        "  AWS requests: ingest {} DynamoDB + {} SQS ({:.2} + {:.2} per delivery); lifecycle {} DynamoDB + {} SQS ({:.2} + {:.2} per event); dispatch {} DynamoDB + {} SQS ({:.2} + {:.2} per call)",
        ingest_calls.dynamo.get(),
        ingest_calls.sqs.get(),
        per(ingest_calls.dynamo.get(), sent),
        per(ingest_calls.sqs.get(), sent),
        lifecycle_dynamo,
        lifecycle_calls.sqs.get(),
        per(lifecycle_dynamo, n),
        per(lifecycle_calls.sqs.get(), n),
        dispatch_calls.dynamo.get(),
        dispatch_calls.sqs.get(),
        per(dispatch_calls.dynamo.get(), calls),
        per(dispatch_calls.sqs.get(), calls),
    );
    eprintln!(
        "  pollers: events queue {} SQS requests ({} empty receives), dispatch queue {} ({} empty); CRM got {crm_requests} POSTs ({} call.completed)",
        events_poller.total(),
        processed.empty_polls,
        dispatch_poller.total(),
        dispatched.empty_polls,
        completed.len()
    );
    eprintln!(
        "  moto: peak RSS {} MiB (VmHWM; {} MiB at start, {} MiB at the end), CPU {:.1} s during the burst",
        moto.peak_rss_kib / 1024,
        moto_before.rss_kib / 1024,
        moto.rss_kib / 1024,
        (moto.cpu - moto_before.cpu).as_secs_f64()
    );
    eprintln!(
        "  sizes: a stored event (call.hangup) {} B, a final call record {} B, a CRM POST body {} B",
        sizes.0, sizes.1, sizes.2
    );
    eprintln!(
        "  this test process (ingest, lifecycle, dispatch, pollers, signing, CRM sink; debug build): CPU {:.1} s",
        test_cpu.as_secs_f64()
    );
}

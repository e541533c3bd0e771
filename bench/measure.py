#!/usr/bin/env python3
"""Measure a callhook function as Lambda runs it: the release `bootstrap` binary against
bench/runtime_api.py (the Lambda Runtime API) and a moto server (DynamoDB + SQS).

With --all, every function in one moto server, each fed what the one before it produced:
  ingest     whole fresh Telnyx calls (call.initiated, call.answered, call.hangup), signed
  lifecycle  the canonical events ingest stored and queued, drained from the events queue into
             SQS-event batches (aws_lambda_events SqsEvent): batches of 1, then of 10
  dispatch   the dispatch messages the lifecycle queued, to a local HTTP sink answering 200
  review     stored events as the events dead-letter queue would deliver them (batches of 1, 10)
  sweeper    events/sweeper/scheduled.json: once after each cold start, then warm
  and for each: cold init (--cold-runs), peak RSS (VmHWM after its warm run), zip size (--zip).
Per-event CPU of a batch = process CPU over the phase / events in it.

Figures (ingest, Telnyx events):
  cold init      process start (just before exec) -> first GET /invocation/next, over --cold-runs
                 fresh processes; each then gets one new event (first invoke: connection set-up)
  warm latency   event handed out -> response received, over --events distinct new events
                 (closed loop, one in flight, as one Lambda instance), after --warmup events
  CPU / event    (utime+stime of /proc/<pid>/stat after - before) / events, and the same from
                 the ns-resolution /proc/<pid>/task/*/schedstat sums
  peak RSS       VmHWM of /proc/<pid>/status after the warm run (and after init)

Needs python3 with boto3 and cryptography (the repo's .venv has both: moto depends on them).

  .venv/bin/python bench/measure.py --binary target/release/ingest --events 2000 --cold-runs 10
"""

from __future__ import annotations

import argparse
import base64
import copy
import datetime as dt
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from runtime_api import RuntimeApi  # noqa: E402

# RFC 8032 test 1 seed: the Telnyx fixture key (events/env.json's TELNYX_PUBLIC_KEYS).
TELNYX_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
TELNYX_TS = "1700000000"  # the fixtures' time; env.json's tolerance is wide
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Targets (the issue) and §12 aims, for the table.
TARGETS = {
    "cold_init_ms": 20.0,
    "peak_rss_mb": 24.0,
    "zip_mb": 5.0,
    "cpu_ratio": 1.5,
}


# ------------------------------------------------------------------ helpers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_moto() -> str:
    for cand in (os.environ.get("CALLHOOK_MOTO_SERVER"), shutil.which("moto_server"),
                 str(ROOT / ".venv/bin/moto_server")):
        if cand and os.access(cand, os.X_OK):
            return cand
    sys.exit("moto_server not found (PATH, $CALLHOOK_MOTO_SERVER or .venv/bin)")


def start_moto(port: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([find_moto(), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1).read()
            return proc
        except Exception:
            if proc.poll() is not None:
                sys.exit(f"moto_server exited; see {log}")
            time.sleep(0.2)
    proc.kill()
    sys.exit("moto_server did not come up in 60 s")


def load_template(path: Path) -> dict:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def any_tag(loader, suffix, node):
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {"!" + suffix: value}

    Loader.add_multi_constructor("!", any_tag)
    return yaml.load(path.read_text(), Loader=Loader)


def provision(endpoint: str, template: Path, prefix: str) -> dict:
    """Creates every AWS::DynamoDB::Table and AWS::SQS::Queue of template.yaml as
    "{prefix}-{LogicalId}" (as `callhook dev` / cli/src/local/provision/ do); returns
    {LogicalId: table name or queue URL}."""
    import boto3

    kw = dict(endpoint_url=endpoint, region_name="us-east-1",
              aws_access_key_id="test", aws_secret_access_key="test")
    ddb, sqs = boto3.client("dynamodb", **kw), boto3.client("sqs", **kw)
    resources = load_template(template)["Resources"]
    made: dict = {}
    for lid, res in resources.items():
        if res.get("Type") != "AWS::DynamoDB::Table":
            continue
        p, name = res["Properties"], f"{prefix}-{lid}"
        args = dict(TableName=name, AttributeDefinitions=p["AttributeDefinitions"],
                    KeySchema=p["KeySchema"], BillingMode=p.get("BillingMode", "PAY_PER_REQUEST"))
        if p.get("GlobalSecondaryIndexes"):
            args["GlobalSecondaryIndexes"] = p["GlobalSecondaryIndexes"]
        try:
            ddb.create_table(**args)
        except ddb.exceptions.ResourceInUseException:
            pass
        made[lid] = name
    queues = {lid: r for lid, r in resources.items() if r.get("Type") == "AWS::SQS::Queue"}
    # dead-letter queues first
    order = sorted(queues, key=lambda lid: "RedrivePolicy" in queues[lid].get("Properties", {}))
    for lid in order:
        p, attrs = queues[lid].get("Properties", {}), {}
        for k in ("VisibilityTimeout", "MessageRetentionPeriod"):
            if k in p:
                attrs[k] = str(p[k])
        if "RedrivePolicy" in p:
            rp = p["RedrivePolicy"]
            dlq = rp["deadLetterTargetArn"]["!GetAtt"].split(".")[0]
            arn = sqs.get_queue_attributes(QueueUrl=made[dlq], AttributeNames=["QueueArn"])
            attrs["RedrivePolicy"] = json.dumps({
                "deadLetterTargetArn": arn["Attributes"]["QueueArn"],
                "maxReceiveCount": int(rp["maxReceiveCount"])})
        made[lid] = sqs.create_queue(QueueName=f"{prefix}-{lid}", Attributes=attrs)["QueueUrl"]
    return made


def function_env(function: str, endpoint: str, made: dict, runtime_api: str) -> dict:
    env = json.loads((ROOT / "events/env.json").read_text())[function]
    env = {k: str(v) for k, v in env.items()}
    env["AWS_ENDPOINT_URL"] = endpoint
    for k, v in list(env.items()):  # env.json names the :4566 emulator; point at ours
        if k.endswith("_QUEUE_URL"):
            env[k] = made[v.rsplit("/", 1)[1].removeprefix("callhook-dev-")]
    env.update({
        # what Lambda sets for a provided.al2023 function
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_LAMBDA_FUNCTION_NAME": f"callhook-{function}",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/callhook-{function}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/23/[$LATEST]bench",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_EXECUTION_ENV": "AWS_Lambda_provided.al2023",
        "_HANDLER": "bootstrap",
        "LAMBDA_TASK_ROOT": "/var/task",
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "TZ": ":UTC",
        "LANG": "en_US.UTF-8",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
    })
    return env


# ------------------------------------------------------------------ events
def telnyx_events(n: int) -> list[bytes]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(TELNYX_SEED)
    template = json.loads((ROOT / "events/telnyx/call-initiated.json").read_text())
    body_t = json.loads(template["body"])
    out = []
    for i in range(n):
        body = copy.deepcopy(body_t)
        body["data"]["id"] = str(uuid.uuid4())
        body["data"]["payload"]["call_leg_id"] = str(uuid.uuid4())
        body["data"]["payload"]["call_session_id"] = str(uuid.uuid4())
        raw = json.dumps(body, separators=(",", ":"))
        sig = key.sign(f"{TELNYX_TS}|{raw}".encode())
        ev = copy.deepcopy(template)
        ev["body"] = raw
        ev["headers"]["telnyx-signature-ed25519"] = base64.b64encode(sig).decode()
        ev["headers"]["telnyx-timestamp"] = TELNYX_TS
        ev["requestContext"]["requestId"] = f"bench-{i}"
        out.append(json.dumps(ev).encode())
    return out


def telnyx_calls(n: int) -> list[bytes]:
    """n signed deliveries of whole fresh Telnyx calls, in order: call.initiated, call.answered,
    call.hangup of one call_session_id, then the next call (the last may be cut short). Through
    ingest and the lifecycle, every whole call becomes one finalized call and one dispatch."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(TELNYX_SEED)
    templates = [json.loads((ROOT / f"events/telnyx/{name}.json").read_text())
                 for name in ("call-initiated", "call-answered", "call-hangup")]
    out: list[bytes] = []
    while len(out) < n:
        session, leg = str(uuid.uuid4()), str(uuid.uuid4())
        for template in templates[:n - len(out)]:
            body = json.loads(template["body"])
            body["data"]["id"] = str(uuid.uuid4())
            body["data"]["payload"]["call_leg_id"] = leg
            body["data"]["payload"]["call_session_id"] = session
            raw = json.dumps(body, separators=(",", ":"))
            sig = key.sign(f"{TELNYX_TS}|{raw}".encode())
            ev = copy.deepcopy(template)
            ev["body"] = raw
            ev["headers"]["telnyx-signature-ed25519"] = base64.b64encode(sig).decode()
            ev["headers"]["telnyx-timestamp"] = TELNYX_TS
            ev["requestContext"]["requestId"] = f"bench-{len(out)}"
            out.append(json.dumps(ev).encode())
    return out


def badsig(event: bytes) -> bytes:
    ev = json.loads(event)
    sig = bytearray(base64.b64decode(ev["headers"]["telnyx-signature-ed25519"]))
    sig[0] ^= 1
    ev["headers"]["telnyx-signature-ed25519"] = base64.b64encode(bytes(sig)).decode()
    return json.dumps(ev).encode()


def status_of(result: bytes) -> str:
    """"200 accepted", "200 duplicate", "401 rejected"…"""
    try:
        r = json.loads(result)
        return f"{r.get('statusCode')} {json.loads(r.get('body') or '{}').get('status')}"
    except Exception:
        return "unparseable"


# ------------------------------------------------------------------ SQS
def aws_clients(endpoint: str):
    import boto3

    kw = dict(endpoint_url=endpoint, region_name="us-east-1",
              aws_access_key_id="test", aws_secret_access_key="test")
    return boto3.client("dynamodb", **kw), boto3.client("sqs", **kw)


def queue_arn(sqs, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def sqs_record(m: dict, arn: str) -> dict:
    """One received message as Lambda's SQS event source hands it over (aws_lambda_events
    SqsMessage, the shape of events/lifecycle/call-hangup.json)."""
    attrs = m.get("Attributes", {})
    return {
        "messageId": m["MessageId"],
        "receiptHandle": m["ReceiptHandle"],
        "body": m["Body"],
        "attributes": {k: attrs[k] for k in ("ApproximateReceiveCount", "SentTimestamp", "SenderId",
                                             "ApproximateFirstReceiveTimestamp") if k in attrs},
        "messageAttributes": {},
        "md5OfBody": m.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": "us-east-1",
    }


def drain(sqs, url: str, arn: str, quiet_polls: int = 3) -> list[dict]:
    """Receives (and deletes, as the event source does after a batch succeeds) every message of
    the queue, in the order moto hands them out, as SQS-event records."""
    records, quiet = [], 0
    while quiet < quiet_polls:
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                   VisibilityTimeout=900, AttributeNames=["All"]).get("Messages", [])
        if not msgs:
            quiet += 1
            time.sleep(0.3)
            continue
        quiet = 0
        records += [sqs_record(m, arn) for m in msgs]
        sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(k), "ReceiptHandle": m["ReceiptHandle"]} for k, m in enumerate(msgs)])
    return records


def start_sink():
    """A CRM/ticketing receiver on 127.0.0.1 that answers every POST with 200 (keep-alive, as
    a real HTTPS endpoint would allow); counts what it got."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    got = {"posts": 0, "paths": {}}
    lock = threading.Lock()

    class Sink(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            if n:
                self.rfile.read(n)
            with lock:
                got["posts"] += 1
                got["paths"][self.path] = got["paths"].get(self.path, 0) + 1
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, got


# ------------------------------------------------------------------ /proc
def proc_cpu_ticks(pid: int) -> tuple[int, int]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])  # utime, stime (fields 14, 15)


def proc_cpu_ns(pid: int) -> int:
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def proc_status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def proc_threads(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/task").iterdir()))


# ------------------------------------------------------------------ runs
class Function:
    """One Lambda execution environment: the binary under a fresh Runtime API."""

    wrap: list = []  # e.g. ["strace", "-f", "-ttt", "-o", "/tmp/ingest.strace"] (analysis only)

    def __init__(self, binary: Path, env: dict, log: Path, function: str):
        self.api = RuntimeApi(0, function_name=f"callhook-{function}")
        env = dict(env, AWS_LAMBDA_RUNTIME_API=self.api.address)
        self.init_sample: dict = {}
        self.api.state.on_first_next = self._sample_init
        self.log = log.open("ab")
        self.t_start = time.monotonic_ns()
        self.proc = subprocess.Popen([*self.wrap, str(binary)], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd="/tmp")
        self.pid = self.proc.pid

    def _sample_init(self, now_ns: int):
        try:
            self.init_sample = {"cpu_ns": proc_cpu_ns(self.pid),
                                "rss_kb": proc_status_kb(self.pid, "VmHWM"),
                                "threads": proc_threads(self.pid)}
        except Exception:
            pass

    def init_ms(self, timeout=30.0) -> float:
        t = self.api.wait_first_next(timeout)
        if t is None:
            err = self.api.state.init_error
            raise RuntimeError(f"no GET /next within {timeout}s; init error: {err!r}; "
                               f"exit {self.proc.poll()}; see {self.log.name}")
        return (t - self.t_start) / 1e6

    def invoke(self, payload: bytes, timeout=30.0):
        inv = self.api.enqueue(payload)
        if not self.api.wait_done(inv, timeout):
            raise RuntimeError(f"invocation timed out; see {self.log.name}")
        return inv

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.api.close()
        self.log.close()


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def bare_verify_us(arg: str | None) -> tuple[float, str]:
    if arg and arg != "criterion":
        return float(arg), "given on the command line"
    est = ROOT / "target/criterion/telnyx/bare_ed25519_verify/new/estimates.json"
    if est.exists():
        e = json.loads(est.read_text())
        when = dt.datetime.fromtimestamp(est.stat().st_mtime, dt.timezone.utc)
        key = "slope" if e.get("slope") else "mean"  # the figure criterion prints
        return (e[key]["point_estimate"] / 1000,
                f"criterion {key} estimate from target/criterion (run {when:%Y-%m-%d %H:%M} UTC)")
    return 46.0, "≈46 µs measured earlier on this machine (no criterion output found)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=str(ROOT / "target/release/ingest"))
    ap.add_argument("--function", default="IngestFunction")
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--cold-runs", type=int, default=10)
    ap.add_argument("--moto-endpoint", help="use a running moto (default: start one)")
    ap.add_argument("--bare-verify-us", default="criterion",
                    help="µs of the bare Ed25519 verify, or 'criterion' to read target/criterion")
    ap.add_argument("--cold-only", action="store_true",
                    help="cold init and RSS after init only, no invocations (any function)")
    ap.add_argument("--wrap", help="command prefix for the binary, e.g. 'strace -f -ttt -o F' "
                    "(analysis only: distorts the figures)")
    ap.add_argument("--perf-warm", help="perf record -g the measured warm run into this file "
                    "(analysis only: distorts the figures)")
    ap.add_argument("--set-env", action="append", default=[], metavar="K=V",
                    help="extra variable for the function (experiments), repeatable")
    ap.add_argument("--kind", choices=["new", "duplicate", "badsig"], default="new",
                    help="warm events: new (2 AWS calls), duplicate (already stored), "
                         "badsig (signature fails verification: no AWS call)")
    ap.add_argument("--rust-log", help="override env.json's RUST_LOG (info)")
    ap.add_argument("--zip", help="zip file whose size goes in the table; with {fn} in it "
                    "(e.g. 'target/lambda/{fn}/bootstrap.zip'), every function's zip")
    ap.add_argument("--all", action="store_true",
                    help="every function in one moto: ingest (whole Telnyx calls), then the "
                         "lifecycle on the events ingest queued, dispatch on what the lifecycle "
                         "queued (local 200 sink), review on stored events as events-DLQ "
                         "messages, and the sweeper (a scheduled event)")
    ap.add_argument("--bin-dir", default=str(ROOT / "target/release"),
                    help="with --all: where the five release binaries are")
    ap.add_argument("--sqs-warmup", type=int, default=5,
                    help="with --all: records invoked one by one before the measured batches")
    ap.add_argument("--sweeper-invokes", type=int, default=10,
                    help="with --all: warm scheduled invokes of the sweeper")
    ap.add_argument("--out", default=str(HERE / "out"))
    args = ap.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    binary = Path(args.binary).resolve()
    if args.all:
        args.function, args.cold_only = "IngestFunction", False
        binary = (Path(args.bin_dir) / "ingest").resolve()
        args.bin_dir = str(Path(args.bin_dir).resolve())
    if args.wrap:
        import shlex
        Function.wrap = shlex.split(args.wrap)
    short = args.function.removesuffix("Function").lower()

    moto = None
    if args.moto_endpoint:
        endpoint = args.moto_endpoint
    else:
        port = free_port()
        moto = start_moto(port, out / "moto.log")
        endpoint = f"http://127.0.0.1:{port}"
    try:
        made = provision(endpoint, ROOT / "template.yaml", "callhook-dev")
        env = function_env(args.function, endpoint, made, "")
        if args.rust_log:
            env["RUST_LOG"] = args.rust_log
        for kv in args.set_env:
            k, _, v = kv.partition("=")
            env[k] = v
        print(f"moto {endpoint}; provisioned {', '.join(sorted(made))}", file=sys.stderr)
        log = out / f"{short}.log"
        log.write_bytes(b"")
        if args.cold_only:
            return cold_only(binary, env, log, short, args.cold_runs, out)
        t = time.monotonic()
        gen = telnyx_calls if args.all else telnyx_events
        events = gen(args.cold_runs + args.warmup + args.events)
        warm = events[args.cold_runs + args.warmup:]
        if args.kind == "duplicate":  # the same (already stored) event again and again
            warm = [events[args.cold_runs]] * args.events
        elif args.kind == "badsig":  # full verify that fails: no AWS call at all
            warm = [badsig(e) for e in warm]
        print(f"signed {len(events)} Telnyx events in {time.monotonic() - t:.1f}s", file=sys.stderr)
        result = measure_ingest(binary, env, log, short, args, events, warm)
        result["zip"] = zip_for(args, "ingest")
        result["zip_bytes"] = os.path.getsize(result["zip"]) if result["zip"] else None
        (out / f"{short}.json").write_text(json.dumps(result, indent=2))
        expected = {"new": "200 accepted", "duplicate": "200 duplicate", "badsig": "401 rejected"}
        ok = result["statuses"].get(expected[args.kind]) == result["events"]
        if not args.all:
            print(markdown(result))
            return 0 if ok else 1
        print(f"ingest: {result['statuses']}, CPU {result['cpu_us_per_event_schedstat']:.0f} µs/event",
              file=sys.stderr)
        results = {"ingest": result}
        ok = pipeline(args, endpoint, made, out, results) and ok
    finally:
        if moto is not None:
            os.killpg(moto.pid, signal.SIGTERM)
            moto.wait()
    print(summary_markdown(results, args))
    return 0 if ok else 1


def zip_for(args, fn: str) -> str | None:
    """--zip 'target/lambda/{fn}/bootstrap.zip' names every function's zip; a plain path is
    ingest's."""
    if not args.zip:
        return None
    if "{fn}" in args.zip:
        path = args.zip.format(fn=fn)
        return path if os.path.exists(path) else None
    return args.zip if fn == "ingest" else None


def loadavg() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3]


def measure_ingest(binary: Path, env: dict, log: Path, short: str, args, events: list,
                   warm: list) -> dict:
    # ---- cold starts: a fresh process each, one new event each
    cold, first_invoke, init_cpu, init_rss, init_threads = [], [], [], [], []
    load_before = loadavg()
    for i in range(args.cold_runs):
        f = Function(binary, env, log, short)
        try:
            cold.append(f.init_ms())
            inv = f.invoke(events[i])
            if inv.outcome != "response" or status_of(inv.result) != "200 accepted":
                raise RuntimeError(f"cold invoke: {inv.outcome} {inv.result[:300]!r}")
            first_invoke.append((inv.done_ns - inv.handed_out_ns) / 1e6)
            init_cpu.append(f.init_sample.get("cpu_ns", 0) / 1e6)
            init_rss.append(f.init_sample.get("rss_kb", 0) / 1024)
            init_threads.append(f.init_sample.get("threads", 0))
        finally:
            f.stop()
        time.sleep(0.2)
    print(f"cold init ms: {[round(c, 2) for c in cold]}", file=sys.stderr)

    # ---- warm: one process, warm-up, then N distinct new events
    f = Function(binary, env, log, short)
    try:
        f.init_ms()
        base = args.cold_runs
        for ev in events[base:base + args.warmup]:
            f.invoke(ev)
        perf = None
        if args.perf_warm:
            perf = subprocess.Popen(["perf", "record", "-q", "-F", "4999", "-g", "-p",
                                     str(f.pid), "-o", args.perf_warm],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        ticks0, ns0 = proc_cpu_ticks(f.pid), proc_cpu_ns(f.pid)
        t0 = time.monotonic_ns()
        lat, statuses = [], {}
        for ev in warm:
            inv = f.invoke(ev)
            lat.append((inv.done_ns - inv.handed_out_ns) / 1e6)
            s = status_of(inv.result) if inv.outcome == "response" else "error"
            statuses[s] = statuses.get(s, 0) + 1
        wall = (time.monotonic_ns() - t0) / 1e9
        ticks1, ns1 = proc_cpu_ticks(f.pid), proc_cpu_ns(f.pid)
        hwm_kb = proc_status_kb(f.pid, "VmHWM")
        rss_kb = proc_status_kb(f.pid, "VmRSS")
        threads = proc_threads(f.pid)
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf.wait()
    finally:
        f.stop()
    n = len(lat)
    user_us = (ticks1[0] - ticks0[0]) / CLK_TCK / n * 1e6
    sys_us = (ticks1[1] - ticks0[1]) / CLK_TCK / n * 1e6
    cpu_us_sched = (ns1 - ns0) / n / 1e3
    bare_us, bare_src = bare_verify_us(args.bare_verify_us)
    return {
        "function": "ingest",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "binary": str(binary), "binary_bytes": binary.stat().st_size,
        "cold_runs": args.cold_runs,
        "cold_init_ms": {"min": min(cold), "median": statistics.median(cold), "max": max(cold),
                         "all": cold},
        "init_cpu_ms_median": statistics.median(init_cpu),
        "init_rss_mib_median": statistics.median(init_rss),
        "init_threads": init_threads,
        "first_invoke_ms": {"min": min(first_invoke), "median": statistics.median(first_invoke),
                            "max": max(first_invoke)},
        "events": n, "warmup": args.warmup, "statuses": statuses, "wall_s": wall,
        "event_shape": "whole Telnyx calls (initiated, answered, hangup)" if args.all
                       else "Telnyx call.initiated of fresh calls",
        "warm_ms": {"p50": pct(lat, 50), "p90": pct(lat, 90), "p99": pct(lat, 99),
                    "max": max(lat), "mean": statistics.fmean(lat)},
        "cpu_us_per_event_stat": user_us + sys_us,
        "cpu_us_per_event_user": user_us, "cpu_us_per_event_sys": sys_us,
        "rust_log": env.get("RUST_LOG"), "kind": args.kind,
        "cpu_us_per_event_schedstat": cpu_us_sched,
        "bare_verify_us": bare_us, "bare_verify_source": bare_src,
        "cpu_ratio": cpu_us_sched / bare_us,
        "peak_rss_mib": hwm_kb / 1024, "rss_after_mib": rss_kb / 1024, "threads_after": threads,
        "loadavg_before": load_before, "loadavg": loadavg(),
    }


# ------------------------------------------------------------------ the other four functions
def cold_starts(binary: Path, env: dict, log: Path, short: str, runs: int,
                first_event: bytes | None = None) -> dict:
    """`runs` fresh processes: init time (start → first GET /next), CPU and RSS at that point;
    with `first_event`, each then gets that one invocation (the first after a cold start)."""
    cold, cpu, rss, first, results = [], [], [], [], []
    load_before = loadavg()
    for _ in range(runs):
        f = Function(binary, env, log, short)
        try:
            cold.append(f.init_ms())
            time.sleep(0.05)  # let the sample taken at GET /next land
            cpu.append(f.init_sample.get("cpu_ns", 0) / 1e6)
            rss.append(f.init_sample.get("rss_kb", 0) / 1024)
            if first_event is not None:
                inv = f.invoke(first_event, timeout=120)
                if inv.outcome != "response":
                    raise RuntimeError(f"{short} first invoke: {inv.outcome} {inv.result[:300]!r}")
                first.append((inv.done_ns - inv.handed_out_ns) / 1e6)
                results.append(inv.result.decode(errors="replace"))
        finally:
            f.stop()
        time.sleep(0.2)
    r = {"function": short, "binary": str(binary), "binary_bytes": binary.stat().st_size,
         "cold_runs": runs,
         "cold_init_ms": {"min": min(cold), "median": statistics.median(cold), "max": max(cold),
                          "all": cold},
         "init_cpu_ms_median": statistics.median(cpu), "init_rss_mib_median": statistics.median(rss),
         "loadavg_before": load_before, "loadavg": loadavg()}
    if first:
        r["first_invoke_ms"] = {"min": min(first), "median": statistics.median(first),
                                "max": max(first), "all": first}
        r["first_invoke_results"] = results[-1:]
    print(f"{short} cold init ms: {[round(c, 2) for c in cold]}", file=sys.stderr)
    return r


def warm_phase(f: Function, payloads: list[bytes], events_per_payload: int, label: str) -> dict:
    """Invokes one payload after another (closed loop, one in flight); latency of each, and the
    process's CPU over the whole phase per event and per invoke. Counts batchItemFailures."""
    load_before = loadavg()
    ticks0, ns0 = proc_cpu_ticks(f.pid), proc_cpu_ns(f.pid)
    t0 = time.monotonic_ns()
    lat, errors, failures, last = [], 0, 0, b""
    for p in payloads:
        inv = f.invoke(p, timeout=120)
        lat.append((inv.done_ns - inv.handed_out_ns) / 1e6)
        if inv.outcome != "response":
            errors += 1
            last = inv.result
            continue
        last = inv.result
        try:
            r = json.loads(inv.result)
            if isinstance(r, dict):
                failures += len(r.get("batchItemFailures") or [])
        except ValueError:
            pass
    wall = (time.monotonic_ns() - t0) / 1e9
    ticks1, ns1 = proc_cpu_ticks(f.pid), proc_cpu_ns(f.pid)
    n_inv, n_ev = len(payloads), len(payloads) * events_per_payload
    return {
        "phase": label, "invokes": n_inv, "batch": events_per_payload, "events": n_ev,
        "errors": errors, "batch_item_failures": failures, "last_result": last[:300].decode(errors="replace"),
        "wall_s": wall,
        "latency_ms": {"p50": pct(lat, 50), "p90": pct(lat, 90), "p99": pct(lat, 99),
                       "max": max(lat), "mean": statistics.fmean(lat)},
        "cpu_us_per_event": (ns1 - ns0) / n_ev / 1e3,
        "cpu_us_per_invoke": (ns1 - ns0) / n_inv / 1e3,
        "cpu_us_per_event_user": (ticks1[0] - ticks0[0]) / CLK_TCK / n_ev * 1e6,
        "cpu_us_per_event_sys": (ticks1[1] - ticks0[1]) / CLK_TCK / n_ev * 1e6,
        "loadavg_before": load_before, "loadavg": loadavg(),
    }


def sqs_batches(records: list[dict], batch: int) -> list[bytes]:
    """Full batches only, as `{"Records": [...]}` (aws_lambda_events SqsEvent)."""
    return [json.dumps({"Records": records[i:i + batch]}).encode()
            for i in range(0, len(records) - batch + 1, batch)]


def measure_sqs_function(short: str, binary: Path, env: dict, out: Path, args,
                         records: list[dict]) -> dict:
    """Cold starts (no invocation), then one warm process: --sqs-warmup records one by one,
    then half the rest in batches of 1 and the other half in batches of 10."""
    log = out / f"{short}.log"
    log.write_bytes(b"")
    r = cold_starts(binary, env, log, short, args.cold_runs)
    w = min(args.sqs_warmup, len(records) // 4)
    rest = records[w:]
    n10 = len(rest) // 2 // 10 * 10  # about half the records in full batches of 10
    f = Function(binary, env, log, short)
    try:
        f.init_ms()
        warmup = warm_phase(f, sqs_batches(records[:w], 1), 1, "warm-up") if w else None
        phases = [warm_phase(f, sqs_batches(part, b), b, f"batch {b}")
                  for part, b in ((rest[:len(rest) - n10], 1), (rest[len(rest) - n10:], 10)) if part]
        r["peak_rss_mib"] = proc_status_kb(f.pid, "VmHWM") / 1024
        r["threads_after"] = proc_threads(f.pid)
    finally:
        f.stop()
    r.update({"records": len(records), "warmup": warmup, "phases": phases,
              "rust_log": env.get("RUST_LOG")})
    for p in phases:
        print(f"{short} {p['phase']}: {p['invokes']} invokes, p50 {p['latency_ms']['p50']:.1f} ms, "
              f"CPU {p['cpu_us_per_event']:.0f} µs/event, failures {p['batch_item_failures']}, "
              f"errors {p['errors']}", file=sys.stderr)
    return r


def pipeline(args, endpoint: str, made: dict, out: Path, results: dict) -> bool:
    """After ingest stored and queued whole calls: the lifecycle on those events (drained from
    the events queue as SQS batches), dispatch on what the lifecycle queued (against a local
    200 sink), review on events as if from the events dead-letter queue, then the sweeper."""
    _, sqs = aws_clients(endpoint)
    bin_dir = Path(args.bin_dir)
    ok = True

    # ---- lifecycle: three quarters of the stored events; review gets the last quarter
    ev_arn = queue_arn(sqs, made["EventsQueue"])
    records = drain(sqs, made["EventsQueue"], ev_arn)
    n_review = len(records) // 4
    life, for_review = records[:len(records) - n_review], records[len(records) - n_review:]
    print(f"drained {len(records)} events: {len(life)} for the lifecycle, {n_review} for review",
          file=sys.stderr)
    env = function_env("LifecycleFunction", endpoint, made, "")
    r = measure_sqs_function("lifecycle", bin_dir / "lifecycle", env, out, args, life)
    r["input"] = "canonical events ingest stored and queued (whole Telnyx calls)"
    settle = int(env.get("DISPATCH_SETTLE_SECS", "5"))
    lifecycle_done = time.monotonic()
    results["lifecycle"] = r
    ok = ok and all(p["errors"] == 0 and p["batch_item_failures"] == 0 for p in r["phases"])

    # ---- dispatch: what the lifecycle queued (after its settle delay), to a local sink
    time.sleep(max(0.0, lifecycle_done + settle + 1 - time.monotonic()))
    dq_arn = queue_arn(sqs, made["DispatchQueue"])
    dispatches = drain(sqs, made["DispatchQueue"], dq_arn)
    print(f"drained {len(dispatches)} dispatch messages", file=sys.stderr)
    httpd, got = start_sink()
    try:
        env = function_env("DispatchFunction", endpoint, made, "")
        sink = f"http://127.0.0.1:{httpd.server_address[1]}"
        env["CRM_WEBHOOK_URL"], env["TICKETING_WEBHOOK_URL"] = f"{sink}/crm", f"{sink}/ticketing"
        r = measure_sqs_function("dispatch", bin_dir / "dispatch", env, out, args, dispatches)
    finally:
        httpd.shutdown()
        httpd.server_close()
    r["input"] = "dispatch messages the lifecycle queued"
    r["sink"] = got
    results["dispatch"] = r
    measured = sum(p["events"] for p in r["phases"]) + (r["warmup"] or {}).get("events", 0)
    ok = ok and got["posts"] == measured and all(
        p["errors"] == 0 and p["batch_item_failures"] == 0 for p in r["phases"])

    # ---- review: stored events as the events dead-letter queue delivers them
    env = function_env("ReviewFunction", endpoint, made, "")
    arns = {k: queue_arn(sqs, made[lid]) for k, lid in (
        ("REVIEW_QUEUE_ARN", "ReviewQueue"), ("EVENTS_DLQ_ARN", "EventsDeadLetterQueue"),
        ("DISPATCH_DLQ_ARN", "DispatchDeadLetterQueue"),
        ("CALLBACK_DLQ_ARN", "CallbackDeadLetterQueue"))}
    env.update(arns)
    max_receives = 5  # template.yaml: EventsQueue's RedrivePolicy maxReceiveCount
    dead = []
    for rec in for_review:
        rec = copy.deepcopy(rec)
        rec["eventSourceARN"] = arns["EVENTS_DLQ_ARN"]
        rec["attributes"]["ApproximateReceiveCount"] = str(max_receives + 1)
        dead.append(rec)
    r = measure_sqs_function("review", bin_dir / "review", env, out, args, dead)
    r["input"] = "stored canonical events as messages of the events dead-letter queue"
    results["review"] = r
    ok = ok and all(p["errors"] == 0 and p["batch_item_failures"] == 0 for p in r["phases"])

    # ---- sweeper: cold starts each followed by one scheduled invoke, then a warm process
    env = function_env("SweeperFunction", endpoint, made, "")
    env["REVIEW_TABLE"] = made["ReviewTable"]  # template.yaml gives the sweeper REVIEW_TABLE
    # The events only review saw stay RECEIVED; in a long run they pass env.json's 120 s and
    # every sweep re-queues all of them again (nothing drains the queue here), each sweep
    # slower than the last (>120 s per sweep at EVENTS=2000). Measure the usual minute: a
    # sweep with nothing old enough to re-queue.
    env["SWEEP_MIN_AGE_SECS"] = "86400"
    sched = json.loads((ROOT / "events/sweeper/scheduled.json").read_text())
    sched["time"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    sched = json.dumps(sched).encode()
    log = out / "sweeper.log"
    log.write_bytes(b"")
    r = cold_starts(bin_dir / "sweeper", env, log, "sweeper", args.cold_runs, first_event=sched)
    f = Function(bin_dir / "sweeper", env, log, "sweeper")
    try:
        f.init_ms()
        f.invoke(sched, timeout=120)
        r["phases"] = [warm_phase(f, [sched] * args.sweeper_invokes, 1, "scheduled")]
        r["peak_rss_mib"] = proc_status_kb(f.pid, "VmHWM") / 1024
        r["threads_after"] = proc_threads(f.pid)
    finally:
        f.stop()
    r["input"] = "events/sweeper/scheduled.json"
    r["rust_log"] = env.get("RUST_LOG")
    results["sweeper"] = r
    ok = ok and r["phases"][0]["errors"] == 0

    for short, res in results.items():
        res["zip"] = zip_for(args, short)
        res["zip_bytes"] = os.path.getsize(res["zip"]) if res["zip"] else None
        (out / f"{short}.json").write_text(json.dumps(res, indent=2))
    return ok


def summary_markdown(results: dict, args) -> str:
    """One table, a row per function and warm workload."""
    def cold(r):
        c = r["cold_init_ms"]
        return f"{c['min']:.1f} / **{c['median']:.1f}** / {c['max']:.1f} ms"

    def mb(r):
        return f"{r['zip_bytes'] / 1e6:.2f} MB" if r.get("zip_bytes") else "–"

    lines = ["| function | cold init min / median / max (init CPU) | warm invocations | "
             "latency p50 / p99 | CPU per event | peak RSS | zip |",
             "|---|---|---|---|---|---|---|"]
    i = results["ingest"]
    lines.append(
        f"| ingest | {cold(i)} ({i['init_cpu_ms_median']:.1f} ms) | {i['events']} new Telnyx "
        f"deliveries (whole calls), 1 per invoke | {i['warm_ms']['p50']:.1f} / {i['warm_ms']['p99']:.1f} ms "
        f"| **{i['cpu_us_per_event_schedstat']:.0f} µs** | {i['peak_rss_mib']:.1f} MiB | {mb(i)} |")
    what = {"lifecycle": "canonical events", "dispatch": "dispatch messages → 200 sink",
            "review": "events-DLQ messages"}
    for short in ("lifecycle", "dispatch", "review"):
        r = results.get(short)
        if not r:
            continue
        for k, p in enumerate(r["phases"]):
            head = (f"| {short} | {cold(r)} ({r['init_cpu_ms_median']:.1f} ms) |" if k == 0
                    else "| ″ | ″ |")
            tail = (f" {r['peak_rss_mib']:.1f} MiB | {mb(r)} |" if k == 0 else " ″ | ″ |")
            lines.append(
                f"{head} {p['invokes']} batches of {p['batch']} {what[short]} | "
                f"{p['latency_ms']['p50']:.1f} / {p['latency_ms']['p99']:.1f} ms per batch | "
                f"**{p['cpu_us_per_event']:.0f} µs** |{tail}")
    s = results.get("sweeper")
    if s:
        p, fi = s["phases"][0], s["first_invoke_ms"]
        lines.append(
            f"| sweeper | {cold(s)} ({s['init_cpu_ms_median']:.1f} ms) | one scheduled event after "
            f"each cold start: {fi['min']:.1f} / **{fi['median']:.1f}** / {fi['max']:.1f} ms "
            f"(min / median / max); then {p['invokes']} warm | {p['latency_ms']['p50']:.1f} / "
            f"{p['latency_ms']['p99']:.1f} ms | **{p['cpu_us_per_invoke']:.0f} µs** per sweep | "
            f"{s['peak_rss_mib']:.1f} MiB | {mb(s)} |")
    lines.append("")
    loads = "; ".join(f"{k} {' '.join(r['loadavg_before'])} → {' '.join(r['loadavg'])}"
                      for k, r in results.items())
    lines.append(f"Load average (1/5/15 min) before → after each function's runs: {loads}.")
    return "\n".join(lines)


def cold_only(binary: Path, env: dict, log: Path, short: str, runs: int, out: Path) -> int:
    r = cold_starts(binary, env, log, short, runs)
    (out / f"{short}-cold.json").write_text(json.dumps(r, indent=2))
    c = r["cold_init_ms"]
    print(f"| {short} cold init ({runs} runs) min / median / max | {c['min']:.1f} / "
          f"**{c['median']:.1f}** / {c['max']:.1f} ms (CPU {r['init_cpu_ms_median']:.1f} ms) | "
          f"RSS after init {r['init_rss_mib_median']:.1f} MiB | binary {r['binary_bytes'] / 1e6:.2f} MB |")
    return 0


def markdown(r: dict) -> str:
    def ok(v, target):
        return "✅" if v <= target else f"❌ ({v / target:.1f}× the target)"

    c, w = r["cold_init_ms"], r["warm_ms"]
    rows = [
        ("Cold init (process start → first `GET /next`), "
         f"{r['cold_runs']} runs, min / median / max",
         f"{c['min']:.1f} / **{c['median']:.1f}** / {c['max']:.1f} ms", "≤ 20 ms",
         ok(c["median"], TARGETS["cold_init_ms"])),
        ("…of which CPU (all threads, median)", f"{r['init_cpu_ms_median']:.1f} ms", "", ""),
        ("First invoke after cold init (new event; connects to moto), min / median / max",
         f"{r['first_invoke_ms']['min']:.1f} / {r['first_invoke_ms']['median']:.1f} / "
         f"{r['first_invoke_ms']['max']:.1f} ms", "", ""),
        (f"Warm invoke latency, {r['events']} {r['kind']} events, p50 / p90 / p99 (max)",
         f"**{w['p50']:.2f}** / {w['p90']:.2f} / **{w['p99']:.2f}** ({w['max']:.1f}) ms", "",
         "moto-bound"),
        ("Function CPU per event (schedstat, all threads)",
         f"**{r['cpu_us_per_event_schedstat']:.0f} µs**", "", ""),
        ("…same from /proc/<pid>/stat utime+stime (10 ms ticks): user + sys",
         f"{r['cpu_us_per_event_stat']:.0f} µs = {r['cpu_us_per_event_user']:.0f} + "
         f"{r['cpu_us_per_event_sys']:.0f} µs", "", ""),
        ("Bare Ed25519 verify (`telnyx/bare_ed25519_verify`)",
         f"{r['bare_verify_us']:.1f} µs", "", r["bare_verify_source"]),
        ("CPU per event ÷ bare verify", f"**{r['cpu_ratio']:.1f}×**", "≤ 1.5×",
         ok(r["cpu_ratio"], TARGETS["cpu_ratio"])),
        ("Peak RSS (VmHWM) after the warm run", f"**{r['peak_rss_mib']:.1f} MiB**", "≤ 24 MB",
         ok(r["peak_rss_mib"] * 1.048576, TARGETS["peak_rss_mb"])),
        ("RSS after init (VmHWM at first `GET /next`, median)",
         f"{r['init_rss_mib_median']:.1f} MiB", "", ""),
        ("Release binary (x86_64, stripped)", f"{r['binary_bytes'] / 1e6:.2f} MB", "", ""),
    ]
    if r.get("zip_bytes"):
        rows.append((f"Zip (`{Path(r['zip']).name}`)", f"**{r['zip_bytes'] / 1e6:.2f} MB**",
                     "≤ 5 MB", ok(r["zip_bytes"] / 1e6, TARGETS["zip_mb"])))
    lines = ["| Figure | Measured | Target | |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {t} | {d} |" for a, b, t, d in rows]
    lines.append("")
    lines.append(f"RUST_LOG={r['rust_log']}. Statuses: {r['statuses']}; warm run wall {r['wall_s']:.1f} s; "
                 f"threads after run {r['threads_after']}; load average at end {' '.join(r['loadavg'])}.")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""A small AWS Lambda Runtime API emulator (2018-06-01), Python 3 stdlib only.

Serves what a custom runtime (`bootstrap`, here lambda_runtime's) talks to:

  GET  /2018-06-01/runtime/invocation/next              long-polls for the next queued event
  POST /2018-06-01/runtime/invocation/{id}/response     the function's result
  POST /2018-06-01/runtime/invocation/{id}/error        a handler error
  POST /2018-06-01/runtime/init/error                   an initialisation error

Every arrival is time-stamped with time.monotonic_ns() (CLOCK_MONOTONIC, so comparable with the
driver's clock): the first GET /next marks the end of Init, and each invocation records when its
event was handed out and when its response (or error) arrived.

Used in-process by bench/measure.py (class RuntimeApi), or standalone for poking at a function:

  python3 bench/runtime_api.py --port 9001 events/telnyx/call-initiated.json ...
  AWS_LAMBDA_RUNTIME_API=127.0.0.1:9001 target/release/ingest
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"
NEXT = PREFIX + "/invocation/next"
INVOCATION = re.compile(r"^/2018-06-01/runtime/invocation/([^/]+)/(response|error)$")
INIT_ERROR = PREFIX + "/init/error"


@dataclass
class Invocation:
    request_id: str
    payload: bytes
    deadline_ms: int = 0
    handed_out_ns: int = 0
    done_ns: int = 0
    outcome: str = ""  # "response" | "error"
    result: bytes = b""


@dataclass
class RuntimeState:
    function_arn: str
    timeout_ms: int = 3000
    queue: collections.deque = field(default_factory=collections.deque)
    invocations: dict = field(default_factory=dict)
    completed: list = field(default_factory=list)
    next_calls: list = field(default_factory=list)  # monotonic_ns of every GET /next arrival
    init_error: bytes | None = None
    init_error_ns: int = 0
    closing: bool = False
    sampling: bool = False
    cond: threading.Condition = field(default_factory=threading.Condition)
    # Called (from the server thread) with the arrival time of the first GET /next, before
    # anything is handed out: the driver samples /proc there (RSS after init).
    on_first_next: object = None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real Runtime API
    server_version = "runtime-api-emulator"
    state: RuntimeState  # set on the subclass by RuntimeApi

    def log_message(self, *args):  # quiet
        pass

    def handle(self):
        try:
            super().handle()
        except (ConnectionResetError, BrokenPipeError):
            pass  # the driver kills the function between runs

    def _reply(self, status: int, body: bytes = b"", headers: dict | None = None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        now = time.monotonic_ns()
        st = self.state
        if self.path != NEXT:
            return self._reply(404, b'{"errorMessage":"not found"}')
        with st.cond:
            first = not st.next_calls and not st.sampling
            st.sampling = st.sampling or first
        if first and st.on_first_next is not None:
            st.on_first_next(now)  # before next_calls shows it: waiters then see the sample
        with st.cond:
            st.next_calls.append(now)
            st.cond.notify_all()
        with st.cond:
            while not st.queue and not st.closing:
                st.cond.wait()
            if st.closing and not st.queue:
                # The real API never answers when there is nothing; the driver kills the
                # process, so just drop the connection.
                self.close_connection = True
                return
            inv: Invocation = st.queue.popleft()
            inv.deadline_ms = int(time.time() * 1000) + st.timeout_ms
            inv.handed_out_ns = time.monotonic_ns()
        self._reply(
            200,
            inv.payload,
            {
                "Lambda-Runtime-Aws-Request-Id": inv.request_id,
                "Lambda-Runtime-Deadline-Ms": str(inv.deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": st.function_arn,
                "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
            },
        )

    def do_POST(self):
        now = time.monotonic_ns()
        st = self.state
        body = self._body()
        if self.path == INIT_ERROR:
            with st.cond:
                st.init_error, st.init_error_ns = body, now
                st.cond.notify_all()
            return self._reply(202, b'{"status":"OK"}')
        m = INVOCATION.match(self.path)
        if not m:
            return self._reply(404, b'{"errorMessage":"not found"}')
        with st.cond:
            inv = st.invocations.get(m.group(1))
            if inv is None or inv.done_ns:
                return self._reply(400, b'{"errorMessage":"unknown or finished request id"}')
            inv.done_ns, inv.outcome, inv.result = now, m.group(2), body
            st.completed.append(inv)
            st.cond.notify_all()
        self._reply(202, b'{"status":"OK"}')


class RuntimeApi:
    """The emulator on 127.0.0.1:`port` (0 = any free port), served from a daemon thread."""

    def __init__(self, port: int = 0, function_name: str = "ingest", timeout_ms: int = 3000):
        arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.state = RuntimeState(function_arn=arn, timeout_ms=timeout_ms)
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def enqueue(self, payload: bytes) -> Invocation:
        inv = Invocation(request_id=str(uuid.uuid4()), payload=payload)
        with self.state.cond:
            self.state.invocations[inv.request_id] = inv
            self.state.queue.append(inv)
            self.state.cond.notify_all()
        return inv

    def wait_first_next(self, timeout: float) -> int | None:
        """Arrival time of the first GET /next (end of Init), or None (init error / timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.state.cond:
                if self.state.next_calls:
                    return self.state.next_calls[0]
                if self.state.init_error is not None:
                    return None
            time.sleep(0.0002)
        return None

    def wait_done(self, inv: Invocation, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.state.cond:
            while not inv.done_ns:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.state.cond.wait(left)
        return True

    def close(self):
        with self.state.cond:
            self.state.closing = True
            self.state.cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=9001)
    ap.add_argument("--function-name", default="ingest")
    ap.add_argument("events", nargs="*", help="JSON files queued as invocations, in order")
    args = ap.parse_args()
    api = RuntimeApi(args.port, args.function_name)
    invs = [api.enqueue(open(p, "rb").read()) for p in args.events]
    print(f"Runtime API on {api.address}; {len(invs)} event(s) queued", file=sys.stderr)
    try:
        for inv in invs:
            api.wait_done(inv, timeout=1e9)
            ms = (inv.done_ns - inv.handed_out_ns) / 1e6
            print(json.dumps({"id": inv.request_id, "outcome": inv.outcome, "ms": round(ms, 3),
                              "result": inv.result.decode(errors="replace")}))
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        api.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

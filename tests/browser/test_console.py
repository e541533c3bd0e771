"""The console in a real browser: headless Chromium, driven by selenium, against `callhook dev`
on moto with seeded calls. It checks what a person would check, and saves the screenshots that
docs/console.md shows (docs/console/*.png).

Run it with `make browser-test` (installs Chromium, chromedriver and selenium when missing), or
`.venv/bin/python -m pytest tests/browser` with CALLHOOK_BIN naming a built `callhook`.
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

ROOT = Path(__file__).resolve().parents[2]
# docs/console/ (what docs/console.md shows); `make test` writes them elsewhere, so a test run
# does not rewrite the docs.
SHOTS = Path(os.environ.get("CONSOLE_SCREENSHOTS") or ROOT / "docs" / "console")
SCRIPT_KEY = '<script>window.__pwned=1;alert("pwned")</script>'


def callhook_bin():
    """CALLHOOK_BIN, else the binary cargo builds (its path from cargo's own build messages)."""
    if os.environ.get("CALLHOOK_BIN"):
        return os.environ["CALLHOOK_BIN"]
    out = subprocess.run(
        ["cargo", "build", "--quiet", "--bin", "callhook", "--message-format=json"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    for line in out.splitlines():
        message = json.loads(line)
        if message.get("reason") == "compiler-artifact" and message.get("executable"):
            if message["target"]["name"] == "callhook":
                return message["executable"]
    raise RuntimeError("cargo built no callhook binary")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, check, timeout=90, every=0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def telnyx_body(event_type, event_id, session, occurred, **payload):
    body = {
        "data": {
            "event_type": event_type,
            "id": event_id,
            "occurred_at": occurred.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "payload": {
                "call_session_id": session,
                "direction": "incoming",
                "from": "+13125550100",
                "to": "+13125550199",
                **payload,
            },
            "record_type": "event",
        }
    }
    return json.dumps(body)


class Stack:
    """`callhook dev` on moto in a state directory of its own, and `callhook console` over it."""

    def __init__(self, tmp):
        self.bin = callhook_bin()
        self.state = tmp / "state"
        self.bodies = tmp / "bodies"
        self.bodies.mkdir()
        self.logs = tmp
        self.dev = subprocess.Popen(
            [self.bin, "--state-dir", str(self.state), "dev",
             "--port", str(free_port()), "--sink-port", str(free_port()),
             "--template", str(ROOT / "template.yaml")],
            cwd=ROOT, stdout=open(tmp / "dev.out", "w"), stderr=open(tmp / "dev.err", "w"),
            stdin=subprocess.DEVNULL,
        )
        wait_for("callhook dev", lambda: (self.state / "dev.json").exists() or self.dev.poll() is not None)
        if self.dev.poll() is not None:
            raise RuntimeError("callhook dev exited:\n" + (tmp / "dev.err").read_text())
        self.console = None

    def send(self, provider, *bodies):
        files = []
        for text in bodies:
            path = self.bodies / f"{uuid.uuid4().hex}.json"
            path.write_text(text)
            files.append(str(path))
        out = subprocess.run(
            [self.bin, "--state-dir", str(self.state), "send", provider, *files, "--json"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )
        answers = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
        assert len(answers) == len(bodies), out.stdout + out.stderr
        return answers

    def start_console(self, env):
        self.console = subprocess.Popen(
            [self.bin, "--state-dir", str(self.state), "console", "--port", "0"],
            cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE,
            stderr=open(self.logs / "console.err", "w"), stdin=subprocess.DEVNULL, text=True,
        )
        url = self.console.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and "?token=" in url, url
        return url

    def stop(self):
        for process in (self.console, self.dev):
            if process and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()


@pytest.fixture(scope="module")
def seeded():
    tmp = Path(tempfile.mkdtemp(prefix="callhook-browser-"))
    stack = Stack(tmp)
    try:
        now = datetime.now(timezone.utc).replace(microsecond=0)
        run = uuid.uuid4().hex[:8]
        # A call whose events arrive shuffled — the hangup first — with the initiation twice.
        shuffled = f"shuffled-{run}"
        initiated = telnyx_body("call.initiated", f"{run}-1", shuffled, now - timedelta(seconds=70),
                                state="parked")
        answered = telnyx_body("call.answered", f"{run}-2", shuffled, now - timedelta(seconds=60),
                               state="answered")
        hangup = telnyx_body("call.hangup", f"{run}-3", shuffled, now - timedelta(seconds=5),
                             hangup_cause="normal_clearing", state="hangup",
                             start_time=(now - timedelta(seconds=70)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                             end_time=(now - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ"))
        answers = stack.send("telnyx", hangup, answered, initiated, initiated)
        assert [a["status"] for a in answers] == [200, 200, 200, 200], answers
        assert answers[3]["body"]["status"] == "duplicate", answers
        # A call whose id a sender chose to be a script.
        answers = stack.send("telnyx", telnyx_body("call.initiated", f"{run}-s", SCRIPT_KEY, now))
        assert answers[0]["body"]["status"] == "accepted", answers
        # A Standard Webhooks sender's own type: unknown to the mapping, so it waits for review.
        review_call = f"review-{run}"
        unknown = json.dumps({
            "type": "call.completed", "timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "data": {"call_id": review_call, "outcome": "completed",
                     "note": "</pre><script>window.__pwned=2</script>"},
        })
        answers = stack.send("standard", unknown)
        assert answers[0]["body"].get("review") is True, answers
        # The mapping fixed, as docs/operations.md says, then replay (from the console).
        url = stack.start_console({"STANDARD_EVENT_TYPES": "call.completed=ended"})
        yield stack, url, {"shuffled": f"telnyx#{shuffled}", "script": f"telnyx#{SCRIPT_KEY}",
                           "review_call": f"standard#{review_call}"}
    finally:
        stack.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1440,1000", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    driver = webdriver.Chrome(
        service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"),
        options=options,
    )
    # A click that submits a form returns before the next page is there.
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def shot(driver, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    # The whole page, not just the window.
    for _ in range(2):  # the page reflows once the window is taller
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1440, max(700, min(height + 140, 2400)))
    driver.save_screenshot(str(SHOTS / f"{name}.png"))
    driver.set_window_size(1440, 1000)


def base(url):
    return url.split("/?token=")[0]


def no_script_ran(driver):
    assert driver.execute_script("return window.__pwned") is None, "an injected script ran"
    try:
        alert = driver.switch_to.alert
        raise AssertionError(f"an alert is open: {alert.text}")
    except NoAlertPresentException:
        pass


def call_url(root, call_id, **query):
    from urllib.parse import urlencode
    return f"{root}/call?{urlencode({'id': call_id, **query})}"


def test_the_token_is_required(seeded):
    _, url, _ = seeded
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(base(url) + "/calls", timeout=10)
    assert refused.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(base(url) + "/?token=not-the-token", timeout=10)
    assert refused.value.code == 401


def wait_for_final(browser, url, call_id):
    """Each test that reads a finished call waits for it itself (it may run alone, with -k)."""
    def final():
        browser.get(base(url) + "/calls?state=final")
        return call_id in browser.page_source.replace("&lt;", "<")

    wait_for("the call to be final", final, every=1.5)


def test_summary_and_calls(seeded, browser):
    stack, url, ids = seeded
    browser.get(url)
    # The token became a cookie, and the URL no longer shows it.
    assert "token=" not in browser.current_url
    assert "The last hour" in browser.find_element(By.TAG_NAME, "h1").text

    wait_for_final(browser, url, ids["shuffled"])
    browser.get(base(url) + "/")
    received = browser.find_element(By.ID, "received").text
    assert "telnyx" in received and "standard" in received, received
    shot(browser, "summary")

    browser.get(base(url) + "/calls")
    table = browser.find_element(By.ID, "calls").text
    assert ids["shuffled"].split("#", 1)[1][:20] in table, table
    # The script in a call id is text on the page, and never ran.
    assert "<script>window.__pwned" in table, table
    no_script_ran(browser)
    shot(browser, "calls")


def test_a_shuffled_call_reads_in_occurrence_order_with_its_duplicate(seeded, browser):
    _, url, ids = seeded
    browser.get(url)
    wait_for_final(browser, url, ids["shuffled"])
    browser.get(call_url(base(url), ids["shuffled"]))
    rows = browser.find_elements(By.CSS_SELECTOR, "#timeline tbody tr")
    types = [row.find_element(By.CSS_SELECTOR, ".type").text for row in rows]
    assert types == ["call.initiated", "call.answered", "call.hangup"], types
    arrived = [row.find_elements(By.TAG_NAME, "td")[1].text for row in rows]
    assert arrived == ["3", "2", "1"], arrived
    marks = [row.find_element(By.CSS_SELECTOR, "td.marks").text for row in rows]
    assert "duplicate ×1" in marks[0], marks
    assert "late: after final" in marks[0] and "late: after final" in marks[1], marks
    assert "duplicate" not in marks[1] and "duplicate" not in marks[2], marks
    changes = rows[2].text
    assert "status" in changes and "ended" in changes, changes
    assert "dispatch call.completed" in changes, changes
    dispatches = browser.find_element(By.ID, "dispatches").text
    assert "call.completed" in dispatches, dispatches
    # call.completed waits out the settle delay, then the sink answers 200.
    def completed_sent():
        browser.refresh()
        rows = browser.find_elements(By.CSS_SELECTOR, "#dispatches tbody tr")
        return any("call.completed" in r.text and "sent" in r.text and "200" in r.text for r in rows)
    wait_for("call.completed to be sent", completed_sent, timeout=120, every=2)
    shot(browser, "call")

    browser.get(call_url(base(url), ids["shuffled"], order="receipt"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#receipts tbody tr")
    assert len(rows) == 4, [r.text for r in rows]
    assert "call.hangup" in rows[0].text and "call.initiated" in rows[3].text
    assert "200 duplicate" in rows[3].text and "duplicate" in rows[3].get_attribute("class")
    shot(browser, "call-receipt")


def test_an_injected_script_in_a_call_id_does_not_run(seeded, browser):
    _, url, ids = seeded
    browser.get(url)
    browser.get(call_url(base(url), ids["script"]))
    assert SCRIPT_KEY in browser.find_element(By.TAG_NAME, "h1").text
    no_script_ran(browser)
    # Nothing the sender wrote became an element.
    assert browser.execute_script("return document.querySelectorAll('script, img').length") == 0


def test_replay_from_the_review_page_requeues_the_item(seeded, browser):
    _, url, ids = seeded
    browser.get(url)
    browser.get(base(url) + "/review")
    wait_for("the review item", lambda: (
        browser.refresh() or "unknown_type" in browser.find_element(By.ID, "review").text), every=1.5)
    shot(browser, "review")
    browser.find_element(By.CSS_SELECTOR, "#review a[href*='event%23standard']").click()
    raw = browser.find_element(By.ID, "raw-body").text
    assert "</pre><script>window.__pwned=2</script>" in raw, raw
    no_script_ran(browser)
    assert browser.find_element(By.ID, "item-status").text == "open"
    shot(browser, "review-item")

    browser.find_element(By.LINK_TEXT, "Replay…").click()
    assert "Replay" in browser.find_element(By.TAG_NAME, "h1").text
    shot(browser, "confirm")
    browser.find_element(By.ID, "confirm").click()
    done = wait_for("the replay's answer", lambda: browser.find_elements(By.ID, "done"), timeout=30)
    assert "Replayed" in done[0].text, browser.find_element(By.TAG_NAME, "body").text
    assert browser.find_element(By.ID, "item-status").text == "replayed"
    # Re-queued for real: the lifecycle applies it with the fixed mapping.
    def applied():
        browser.get(call_url(base(url), ids["review_call"]))
        rows = browser.find_elements(By.CSS_SELECTOR, "#timeline tbody tr")
        return rows and "PROCESSED" in rows[0].text
    wait_for("the replayed event to be applied", applied, every=1.5)
    browser.get(base(url) + "/review?status=replayed")
    assert "event#standard#" in browser.find_element(By.ID, "review").text

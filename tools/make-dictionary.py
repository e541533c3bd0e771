#!/usr/bin/env python3
"""Builds a zstd raw-content dictionary for what callhook stores: the providers' fixture bodies
(events/*/bodies/*), the names of a call record's fields, and the header line a stored request
starts with (the fixtures' signature headers, as `pack_request` writes them).

Stored items name the dictionary they were compressed with (the first byte of the stored
value), so a dictionary is never changed once released: a new one gets the next number and the
old one stays in the binary to read old items. Usage:

    tools/make-dictionary.py shared/src/adapters/dictionary-v1.bin
"""
import glob
import json
import os
import sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
parts = [open(f, "rb").read() for f in sorted(glob.glob(os.path.join(root, "events/*/bodies/*")))]
record = {
    "call_id": "telnyx#428c31b6-abf3-3bc1-b7f4-5013ef9657c1", "provider": "telnyx",
    "status": "ended", "rank": 5, "direction": "inbound", "from": "+15550100", "to": "+15550199",
    "started_at": "2026-01-01T00:00:00Z", "ringing_at": None, "answered_at": "2026-01-01T00:00:05Z",
    "ended_at": "2026-01-01T00:01:00Z", "duration_secs": 55, "outcome": "completed",
    "hangup_cause": "normal_clearing", "recording_url": "https://", "transcript": None,
    "analysis": None, "cost": None, "metadata": None, "errors": [], "actions": [],
    "event_count": 10, "applied_event_ids": "", "final_event_id": "telnyx#",
    "finalized_at": None, "last_occurred_at": "2026-01-01T00:01:00Z", "version": 3,
    "sources": {name: {"class": 1, "at": "2026-01-01T00:00:00Z", "event_id": "telnyx#"}
                for name in ["direction", "from", "to", "started_at", "answered_at", "ended_at",
                             "outcome", "hangup_cause", "final", "recording_url"]},
}
parts.append(json.dumps(record, separators=(",", ":")).encode())
# Last: every stored request starts with one, and the nearest content is the cheapest to refer to.
unsigned = {"host", "user-agent", "content-type", "content-length"}
lines = {}
for f in sorted(glob.glob(os.path.join(root, "events/*/*.json"))):
    try:
        fixture = json.load(open(f))
    except ValueError:
        continue
    if isinstance(fixture, dict) and isinstance(fixture.get("headers"), dict):
        signed = {k.lower(): v for k, v in fixture["headers"].items() if k.lower() not in unsigned}
        # One line per set of names: the values are signatures, the same no twice.
        if signed and tuple(sorted(signed)) not in lines:
            line = json.dumps(dict(sorted(signed.items())), separators=(",", ":")) + "\n"
            lines[tuple(sorted(signed))] = line.encode()
parts.extend(lines[names] for names in sorted(lines))
data = b"".join(parts)
with open(sys.argv[1], "wb") as out:
    out.write(data)
print(f"{sys.argv[1]}: {len(data)} bytes from {len(parts)} samples")

#!/usr/bin/env bash
# Reproduces docs/benchmarks.md "## Lambda runtime measurements": builds the release functions,
# zips ingest, starts moto, provisions the tables/queues of template.yaml, runs ingest (and
# lifecycle, cold init only) under bench/runtime_api.py and prints markdown tables.
#
#   bench/run.sh                      # 2000 warm events, 10 cold starts, x86_64 zip
#   ARM64=1 bench/run.sh              # zip with `cargo lambda build --arm64` (bench/.venv, zig)
#   EVENTS=500 COLD_RUNS=5 bench/run.sh
#   SKIP_BUILD=1 bench/run.sh         # use the existing target/release binaries (and, with
#                                     # ARM64=1, the existing target/lambda/ingest/bootstrap.zip)
#   ZIP=path/to.zip bench/run.sh      # report this zip's size
#
# Outputs: bench/out/{ingest.json,lifecycle-cold.json,*.log,results.md}.
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=${EVENTS:-2000}
COLD_RUNS=${COLD_RUNS:-10}
PY=${PY:-.venv/bin/python}       # the repo's venv: moto_server, boto3, cryptography, PyYAML
OUT=bench/out
mkdir -p "$OUT"

if [ ! -x "$PY" ]; then make venv; fi
"$PY" -c 'import boto3, yaml, cryptography' 2>/dev/null \
  || { echo "$PY lacks boto3/PyYAML/cryptography (make venv)" >&2; exit 1; }

if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build --release -p callhook-ingest -p callhook-lifecycle
fi

# ---- zip
ZIP=${ZIP:-}
if [ -n "$ZIP" ]; then
  :  # given
elif [ -n "${ARM64:-}" ] && [ -n "${SKIP_BUILD:-}" ]; then
  ZIP=target/lambda/ingest/bootstrap.zip
elif [ -n "${ARM64:-}" ]; then
  if [ ! -x bench/.venv/bin/cargo-lambda ]; then
    python3 -m venv bench/.venv
    bench/.venv/bin/pip install --quiet cargo-lambda   # bundles zig (the ziglang package)
  fi
  rustup target list --installed | grep -q aarch64-unknown-linux-gnu \
    || rustup target add aarch64-unknown-linux-gnu
  PATH="$PWD/bench/.venv/bin:$PATH" cargo lambda build --release --arm64 --output-format zip -p callhook-ingest
  ZIP=target/lambda/ingest/bootstrap.zip
else
  # x86_64: what `cargo lambda build --release --output-format zip` packs: one file, `bootstrap`.
  rm -rf "$OUT/zip" && mkdir -p "$OUT/zip"
  cp target/release/ingest "$OUT/zip/bootstrap"
  (cd "$OUT/zip" && zip -q -9 -X ingest-x86_64.zip bootstrap)
  ZIP=$OUT/zip/ingest-x86_64.zip
fi
echo "zip: $ZIP ($(stat -c %s "$ZIP") bytes)" >&2

# ---- measure (each run starts and stops its own moto server)
{
  echo "### ingest (Telnyx, $EVENTS new events, $COLD_RUNS cold starts)"
  echo
  "$PY" bench/measure.py --binary target/release/ingest --events "$EVENTS" \
    --cold-runs "$COLD_RUNS" --zip "$ZIP" --out "$OUT"
  echo
  echo "### lifecycle (cold init only)"
  echo
  "$PY" bench/measure.py --function LifecycleFunction --binary target/release/lifecycle \
    --cold-only --cold-runs "$COLD_RUNS" --out "$OUT"
} | tee "$OUT/results.md"

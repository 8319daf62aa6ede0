# Two commands: `make run` (a real search on the embedded default) and `make test`.
# Each creates .venv at the project root on first use.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER := 0
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: run test lint bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip>=25.1"
	$(BIN)/pip install -q -c constraints.txt "torch==2.13.0"
	$(BIN)/pip install -q -c constraints.txt -e ".[dashboard]" --group dev
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/growsearch run search_spaces/mnist1d_cnn.yaml --name mnist1d_cnn-$$(date +%Y%m%d-%H%M%S)

# Test files are shared out over TEST_WORKERS processes (one file per process at a time, so a
# module's shared Ray or cluster is started once), in tests/conftest.py's order (longest first;
# xdist would order them by their number of tests); TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=15 $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder)

lint: $(STAMP)
	$(BIN)/ruff check growsearch tests benchmarks
	$(BIN)/ruff format --check growsearch tests benchmarks
	$(BIN)/mypy growsearch

bench: $(STAMP)
	$(BIN)/python benchmarks/net2net_replication.py

clean:
	rm -rf $(VENV)

# The tables of docs/benchmarks.md and README.md, from the CSVs in results/ (--check: compare only).
.PHONY: docs
docs: $(STAMP)
	$(BIN)/python benchmarks/docs_tables.py

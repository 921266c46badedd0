# bordergate: the two commands are `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages the test suite needs; installed only when missing.
DEB_PACKAGES := softhsm2 chromium

.PHONY: demo test lint typecheck unit bench fuzz system-packages clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH" >&2; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/bordergate demo --data ./demo-data  # other ports: BORDERGATE_DEMO_BASE_PORT=N make demo

system-packages:
	@missing=""; \
	for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq $$missing >/dev/null; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy --strict src

# One pytest-xdist worker per core (at most 4), each taking whole files (a file's
# fixtures are set up once); files holding a slow test go first (tests/conftest.py).
# The suite alone uses under half of two cores (it waits on the servers it starts).
unit: $(STAMP) system-packages
	$(BIN)/python -m pytest -q -p no:cacheprovider -n auto --maxprocesses 4 --dist loadfile

test: lint unit

# The property tests (Hypothesis, schemathesis) with fresh random examples: make test
# runs them on fixed seeds (tests/conftest.py, tests/gateway/conftest.py: FUZZ_SEED).
# `st run` prints the seed it drew, which BORDERGATE_FUZZ_SEED=N replays; Hypothesis
# prints the failing example and keeps it in .hypothesis/ for the next run.
fuzz: $(STAMP) system-packages
	BORDERGATE_FUZZ_SEED=random $(BIN)/python -m pytest -q -p no:cacheprovider -n 2 \
	  --dist loadfile -m hypothesis
	BORDERGATE_FUZZ_SEED=random $(BIN)/python -m pytest -q -p no:cacheprovider -n 2 \
	  tests/gateway/test_openapi_conformance.py tests/gateway/test_processes.py -k schemathesis

# wrk: bench_gateway's load generator (its httpx fallback saturates first); installed
# by system-packages, which sees this target's DEB_PACKAGES (GNU make passes a
# target's variables on to its prerequisites).
bench: DEB_PACKAGES = wrk
bench: $(STAMP) system-packages
	for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) demo-data .pytest_cache .mypy_cache .ruff_cache .schemathesis

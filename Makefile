# The two set-up commands (see README): `make serve` and `make test`.
# Everything installs into .venv; nothing global.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test check bench bench-smoke bench-streaming clean default-model reference-profile

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Serve the committed sample images on 127.0.0.1:8080 (override with IMGPROXY_* variables), with the
# development defaults: the playground at / (unless IMGPROXY_KEY is set) and explanatory error bodies.
serve: $(STAMP)
	IMGPROXY_LOCAL_FILESYSTEM_ROOT=$${IMGPROXY_LOCAL_FILESYSTEM_ROOT:-examples/images} $(BIN)/imgproxy-py serve --dev

# The whole test suite, plus the static checks.
test: $(STAMP)
	$(BIN)/ruff check imgproxy_py tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest

# The benchmark (not a test; see benchmarks/run.py): every system one after another on this
# machine's cores, a markdown table on stdout and benchmarks/out/results.{md,json,png}.
# Needs wrk (apt-get install wrk) and node + npm; thumbor and ipx install into benchmarks/.peers/.
BENCH_STAMP := $(VENV)/.installed-bench
BENCH_ARGS ?= --duration 15 --concurrency 8,64

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

# Two seconds of W1 against this server only: the harness works (also part of `make test`).
bench-smoke: $(STAMP)
	$(BIN)/python -m pytest -q tests/test_benchmarks_smoke.py

# Cold misses of large sources from a throttled loopback origin, streamed vs buffered, with ipx
# and thumbor on the same origin (~5 min; the first run installs them into benchmarks/.peers/).
bench-streaming: $(STAMP)
	$(BIN)/python -m benchmarks.streaming

# Rebuild the aq:ml model shipped in the package (imgproxy_py/quality_model/default/) from the
# repository's own images: label them with the DSSIM search, then train (scikit-learn: the train extra).
AQ_DATA ?= $(VENV)/aq-default.sqlite
default-model: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[train]'
	$(BIN)/imgproxy-py models collect examples/images ../shared/fixtures/images --targets 0.0015,0.0025,0.004 --into $(AQ_DATA)
	$(BIN)/imgproxy-py models train --data $(AQ_DATA) --out imgproxy_py/quality_model/default

# Rebuild the drift reference profile shipped in the package (imgproxy_py/monitoring/reference_profile.json):
# the offline evaluation's detector outputs and latency, auto-quality choices and input mix (~1 min).
reference-profile: $(STAMP)
	$(BIN)/python -m benchmarks.eval --only profile --profile-out imgproxy_py/monitoring/reference_profile.json

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

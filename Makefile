# The two set-up commands (see README): `make serve` and `make test`.
# Everything installs into .venv; nothing global.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test check bench bench-smoke clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Serve the committed sample images on 127.0.0.1:8080 (override with IMGPROXY_* variables).
serve: $(STAMP)
	IMGPROXY_LOCAL_FILESYSTEM_ROOT=$${IMGPROXY_LOCAL_FILESYSTEM_ROOT:-examples/images} $(BIN)/imgproxy-py serve

# The whole test suite, plus the static checks.
test: $(STAMP)
	$(BIN)/ruff check imgproxy_py tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

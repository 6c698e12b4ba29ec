# Set-up and everyday tasks. `make demo` and `make test` are all a fresh machine needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-slow lint bench clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, spelled exactly so: the CPU wheel on this machine; anything else pulls CUDA builds.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/kinema demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	KINEMA_SLOW_REDUCED=1 $(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check kinema tests benchmarks

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean-venv:
	rm -rf $(VENV)

# One command on a fresh machine: `make test` creates .venv, installs the CPU torch build where
# there is no GPU, installs the lab with its dev extras (and Chromium for the browser test, where
# apt-get is available), and runs the test suite. `make demo` sets up the same way and serves the app.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_CPU := torch==2.13.0
HOST ?= 127.0.0.1
PORT ?= 7860
# apt-get needs root: run it directly as root, through non-interactive sudo otherwise
SUDO := $(shell if [ "$$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then echo sudo -n; fi)

.PHONY: setup chromium test demo lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

setup: $(BIN)/python
	@if command -v nvidia-smi >/dev/null 2>&1; then echo "GPU found: torch comes with the package"; \
	 else $(BIN)/pip install -q $(TORCH_CPU); fi
	$(BIN)/pip install -q -e ".[dev]"
	@$(MAKE) --no-print-directory chromium

# The browser test drives Debian's chromium through Playwright (Playwright cannot download browsers here).
chromium:
	@if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then :; \
	 elif command -v apt-get >/dev/null 2>&1; then echo "installing chromium for the browser test"; \
	   ($(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null) \
	   || echo "could not install chromium: the browser test will be skipped"; \
	 else echo "no apt-get: install chromium yourself, or the browser test is skipped"; fi

test: setup
	$(BIN)/ruff check lab tests app.py
	$(BIN)/ruff format --check lab tests app.py
	$(BIN)/python -m pytest -n 2 -q

# The app on http://$(HOST):$(PORT) with the shipped models (CPU, or CUDA when present).
demo: setup
	$(BIN)/python app.py --host $(HOST) --port $(PORT)

lint: setup
	$(BIN)/ruff check lab tests app.py
	$(BIN)/ruff format --check lab tests app.py

clean:
	rm -rf $(VENV) .pytest_cache

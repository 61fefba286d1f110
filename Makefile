# greenroom: two commands do all the set-up on a fresh machine with Python 3.11+.
#   make run    create .venv, install, start `greenroom run` on the embedded defaults
#   make test   create .venv with dev extras, lint, type-check, run the whole suite
#   make bench  run the benchmarks in ops/bench/ (prints numbers; never a test)
#   make migrate  apply pending database migrations (greenroom run also does it at start)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
ARGS   ?=

.PHONY: run test lint bench check-config migrate clean

$(BIN)/python:
	@ops/bootstrap-python.sh "$(PYTHON)" "$(VENV)"

$(VENV)/.runtime: pyproject.toml bin/greenroom | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.dev: pyproject.toml bin/greenroom | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.runtime

run: $(VENV)/.runtime
	$(BIN)/greenroom $(ARGS) run

check-config: $(VENV)/.runtime
	$(BIN)/greenroom $(ARGS) check-config

migrate: $(VENV)/.runtime
	$(BIN)/greenroom $(ARGS) migrate

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The storage contract tests need PostgreSQL: ops/pg.py finds one (or the
# binaries to start a throwaway cluster) and installs Debian's package if not.
# The web-chat browser test needs Debian's chromium: ops/ensure-chromium.sh
# apt-installs it when /usr/bin/chromium is missing (never `playwright install`).
# The Nostr tests need the real relay (PyPI nostr-relay) in its own venv:
# ops/nostr-relay.sh builds .venv-nostr-relay once (idempotent).
# pytest exit code 5 means "no tests collected": that must never pass.
test: lint
	@$(BIN)/python ops/pg.py ensure
	@ops/ensure-chromium.sh
	@ops/nostr-relay.sh >/dev/null || test "$$CI" != true
	@$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$rc

bench: $(VENV)/.dev
	$(BIN)/python ops/bench/kernel.py
	$(BIN)/python ops/bench/storage.py
	$(BIN)/python ops/bench/http_door.py
	$(BIN)/python ops/bench/conversation.py
	$(BIN)/python ops/bench/webhook.py

clean:
	rm -rf $(VENV) .venv-nostr-relay .mypy_cache .ruff_cache

# Two commands on a fresh machine: `make setup` then `make test`. `make run` serves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
PROXY ?=
ifneq ($(filter-out nginx,$(PROXY)),)
$(error PROXY=$(PROXY): the one front there is is nginx)
endif
HOST ?= 127.0.0.1
WORKERS ?= 1
SHARED_MODELS ?= ../shared/models
# The per-checkout secret unless the environment brings its own.
WITH_SECRET = SECRET_KEY=$${SECRET_KEY:-$$(cat .secret_key)}
MANAGE = $(WITH_SECRET) $(BIN)/python manage.py

.PHONY: setup venv models migrate test test-fast run bench bench-tools proxy-tools browser-tools clean

setup: venv .secret_key models migrate proxy-tools browser-tools

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-heavy.txt requirements-heavy-nodeps.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt -r requirements-heavy.txt
	$(BIN)/pip install --quiet --no-deps -r requirements-heavy-nodeps.txt
	touch $@

# A per-checkout secret for `make run`; production passes SECRET_KEY in the environment.
.secret_key:
	umask 077 && $(PYTHON) -c "import secrets; print(secrets.token_urlsafe(50))" > $@

models: venv .secret_key
	@if [ -d "$(SHARED_MODELS)" ]; then \
		$(MANAGE) fetch_models --source "$(SHARED_MODELS)"; \
	else \
		$(MANAGE) fetch_models; \
	fi

migrate: venv .secret_key
	$(MANAGE) migrate --noinput
	$(MANAGE) collectstatic --noinput --verbosity 0

# The suite needs PostgreSQL and Redis (see tests/settings.py for the URLs it uses).
test: venv
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest

# The tests that start no process or server of their own (PostgreSQL and Redis as for make test).
test-fast: venv
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest -m "not e2e and not faults and not store"

# Benchmarks: private servers and processes of its own; writes bench/results.{md,json} and
# the README's table. The load generator is wrk, from the distribution where this user may
# install it (without it, bench/load.py falls back to httpx and says so in the table).
bench: venv bench-tools
	$(BIN)/python -m bench.run

bench-tools:
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ apt-get install -y -qq wrk || { apt-get update -qq && apt-get install -y -qq wrk; }; }; } || \
		echo "wrk is not installed: the bench will use httpx, which shares the server's cores"

# Each of the WORKERS light workers gets its share of the cores as interpreter threads.
# PROXY=nginx puts the production front before the web process (deploy/nginx): nginx listens
# on HOST:PORT, gunicorn on 127.0.0.1:PORT+1 behind it and trusts it as one proxy.
PROCESSES = web worker io housekeeping beat
run: venv .secret_key migrate $(if $(PROXY),proxy-tools)
	$(WITH_SECRET) VENV=$(VENV) PUBLIC_BASE_URL=$${PUBLIC_BASE_URL:-http://$(HOST):$(PORT)} \
		INFERENCE_THREADS=$${INFERENCE_THREADS:-$$(( ($$(nproc) + $(WORKERS) - 1) / $(WORKERS) ))} \
		$(if $(PROXY), \
		HOST=127.0.0.1 TRUSTED_PROXIES=1 PROXY_LISTEN=$(HOST):$(PORT) SEGMENT_UPSTREAM=127.0.0.1:$$(($(PORT) + 1)) \
			$(BIN)/honcho start --port $$(($(PORT) + 1)) --concurrency worker=$(WORKERS) $(PROCESSES) proxy, \
		HOST=$(HOST) $(BIN)/honcho start --port $(PORT) --concurrency worker=$(WORKERS) $(PROCESSES))

# nginx, for `make run PROXY=nginx` and the suite's test of it, from the distribution where
# this user may install it.
proxy-tools:
	@command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ apt-get install -y -qq nginx || { apt-get update -qq && apt-get install -y -qq nginx; }; }; } || \
		echo "nginx is not installed: make run PROXY=nginx and its test need it"

# Chromium, for the browser test of the page at / (Playwright drives it; a browser download
# of Playwright's own cannot work here), from the distribution where this user may install it.
browser-tools:
	@[ -x /usr/bin/chromium ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ apt-get install -y -qq chromium || { apt-get update -qq && apt-get install -y -qq chromium; }; }; } || \
		echo "chromium is not installed: the browser test of the page at / skips without it"

clean:
	rm -rf $(VENV) .pytest_cache

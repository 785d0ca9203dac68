# The two commands of the README. `make run`: install and start drip (web + scheduler) on the
# embedded default, on port 8000 (`make run PORT=8080`: another). `make test`: install
# everything the tests need and run them all.
PYTHON ?= python3
VENV ?= .venv
PORT ?= 8000
BIN := $(VENV)/bin

.PHONY: run test lint

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

run: $(BIN)/python
	$(BIN)/pip install -q -e .
	$(BIN)/drip init
	$(BIN)/drip serve --port $(PORT)

test: $(BIN)/python
	@{ command -v chromium && command -v spamassassin && { command -v dovecot || test -x /usr/sbin/dovecot; } && { command -v pgbouncer || test -x /usr/sbin/pgbouncer; }; } >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium spamassassin dovecot-imapd pgbouncer fonts-dejavu-core libpango-1.0-0 libpangoft2-1.0-0 >/dev/null; } || \
		echo "chromium, spamassassin, dovecot or pgbouncer is missing (apt-get install -y chromium spamassassin dovecot-imapd pgbouncer): their tests will be skipped (with CI=true: fail)"
	$(BIN)/pip install -q -e '.[test]'
	$(MAKE) lint
	$(BIN)/pytest -q -n 2 --dist loadgroup  # two workers: docs/operating.md#running-the-tests

lint:
	$(BIN)/ruff check drip tests bench
	$(BIN)/ruff format --check drip tests bench
	$(BIN)/mypy

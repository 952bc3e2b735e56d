# The two commands of the README: `make run` and `make test`. Each installs what it needs into .venv.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: install run test lint demo bench bench-federation bench-subscriptions chaos clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	FHIRSERVER_AUTH=$${FHIRSERVER_AUTH:-off} $(BIN)/fhirserver serve

demo: $(STAMP)
	$(BIN)/fhirserver demo

bench: $(STAMP)
	$(BIN)/python -m bench.run --scale $(or $(SCALE),small)

bench-federation: $(STAMP)
	$(BIN)/python -m bench.federation --scale $(or $(SCALE),small)

bench-subscriptions: $(STAMP)
	$(BIN)/python -m bench.subscriptions

chaos: $(STAMP)
	$(BIN)/python -m bench.chaos --rounds $(or $(ROUNDS),3)

lint: $(STAMP)
	$(BIN)/ruff check .

# Third-party JavaScript FHIR clients the tests drive (fhir-kit-client, @medplum/core), pinned by the lock file.
JS_STAMP = tests/js/node_modules/.installed
$(JS_STAMP): tests/js/package-lock.json
	cd tests/js && npm ci --no-audit --no-fund --loglevel=error
	touch $(JS_STAMP)

test: $(STAMP) $(JS_STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info tests/js/node_modules

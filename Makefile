# The two commands: `make run` and `make test`. Everything else is a convenience.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell $(PY) -c "import hashlib,sys;print(hashlib.sha256(open('pyproject.toml','rb').read()).hexdigest()[:12])")

.PHONY: venv run test lint bench soak fuzz simulate clean

$(STAMP):
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

## Start the DIP on http://127.0.0.1:8080 with SQLite under ./.dip and demo participants.
run: $(STAMP)
	$(BIN)/dip serve --host 127.0.0.1 --port 8080 --data-dir .dip --demo

## The whole test suite, PostgreSQL included (DIP_TEST_DATABASE_URL, default postgres@127.0.0.1:5432/test):
## two test processes (most tests wait on servers, not the CPU), then the tests that must run alone.
test: $(STAMP) lint
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not serial"
	$(BIN)/python -m pytest -q -m serial

## pip-audit fails the lint on a known vulnerability in any installed package. It asks PyPI's JSON
## API; where that is not reachable (this project's sandboxes reach a mirror without it) it says
## which packages it could not audit and does not fail: see docs/security.md, "Dependencies".
lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	@out=$$($(BIN)/pip-audit --skip-editable --progress-spinner off 2>&1); status=$$?; \
	  echo "$$out" | grep -v -e "could not be audited" -e "distribution marked as editable" -e "^Name " -e "^---"; \
	  echo "pip-audit: $$(echo "$$out" | grep -c "could not be audited") installed packages could not be audited"; \
	  exit $$status

## The standard benchmarks (ingest and end to end, SQLite and PostgreSQL, ~12 minutes); writes docs/performance.md's report.
bench: $(STAMP)
	$(BIN)/python -m bench.report

## Simulated participants against the DIP that `make run` started (see docs/simulator.md).
simulate: $(STAMP)
	$(BIN)/dip simulate --url http://127.0.0.1:8080 --mpans 100000 --rate 200 --seconds 60

## A longer fuzzing run: schemathesis against the OpenAPI document and the hypothesis properties, more examples.
fuzz: $(STAMP)
	DIP_FUZZ_EXAMPLES=1000 DIP_FUZZ_PROPERTY_EXAMPLES=3000 $(BIN)/python -m pytest -q -p no:cacheprovider tests/integration/test_fuzz_api.py tests/unit/test_properties.py

## Ten minutes at the offered load, sampling the server's memory (it must stay flat).
soak: $(STAMP)
	$(BIN)/python -m bench.e2e --stores sqlite --soak 600

clean:
	rm -rf $(VENV) .dip .pytest_cache .mypy_cache .ruff_cache

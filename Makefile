# ibkr_sdk — developer commands. A fresh clone needs only Python 3.10+ (3.11 tested), make and git.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
LAYOUT := $(VENV)/.layout
DOCS    := docs
OPENAPI := $(DOCS)/openapi.json
# The strict editable install links each file once: re-install whenever the set of package files changes.
PKG_FILES := $(sort $(wildcard generated/ibkr_sdk/*.py generated/ibkr_sdk/*/*.py handwritten/*.py handwritten/*/*.py handwritten/*/data/*))

.PHONY: FORCE help venv install generate docs openapi check-generated lint typecheck pytest test demo bench clean

help:
	@echo "make demo             create the environment, install, run the example workflow offline"
	@echo "make test             lint, type-check, check generated code, run the test suite"
	@echo "make generate         regenerate generated/ibkr_sdk, the API reference and the OpenAPI export from spec/"
	@echo "make docs             regenerate the API reference only ($(DOCS)/api-reference.md, $(DOCS)/api/)"
	@echo "make openapi          regenerate the OpenAPI 3.1 export only ($(OPENAPI))"
	@echo "make check-generated  fail when generated/ or the docs differ from what spec/ and the templates produce"
	@echo "make bench            run the benchmarks"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Strict editable install: static tools (mypy) can follow the package-dir mapping generated/ + handwritten/.
$(LAYOUT): FORCE | $(PY)
	@echo "$(PKG_FILES)" | cmp -s - $@ || echo "$(PKG_FILES)" > $@

$(STAMP): $(PY) pyproject.toml $(LAYOUT)
	$(PY) -m pip install --quiet --config-settings editable_mode=strict -e '.[dev]'
	@touch $(STAMP)

venv install: $(STAMP)

generate: $(STAMP)
	$(PY) -m codegen --spec spec --out generated --docs $(DOCS) --openapi $(OPENAPI)
	# New or removed modules only become visible to the strict editable install after re-installing.
	$(PY) -m pip install --quiet --no-deps --no-build-isolation --config-settings editable_mode=strict -e .
	@touch $(STAMP)

docs: $(STAMP)
	$(PY) -m codegen --spec spec --docs $(DOCS)

openapi: $(STAMP)
	$(PY) -m codegen --spec spec --openapi $(OPENAPI)

# The docs generator owns $(DOCS)/api/, $(DOCS)/api-reference.md, $(OPENAPI) and $(DOCS)/asyncapi.json; other files in $(DOCS) are not compared.
check-generated: $(STAMP)
	@rm -rf .gen-check
	@$(PY) -m codegen --spec spec --out .gen-check --docs .gen-check/docs --openapi .gen-check/openapi.json >/dev/null
	@if diff -r -x __pycache__ .gen-check/ibkr_sdk generated/ibkr_sdk \
		&& diff -r .gen-check/docs/api $(DOCS)/api \
		&& diff .gen-check/docs/api-reference.md $(DOCS)/api-reference.md \
		&& diff .gen-check/openapi.json $(OPENAPI) \
		&& diff .gen-check/asyncapi.json $(DOCS)/asyncapi.json; then \
		echo "generated code and docs are up to date"; rm -rf .gen-check; \
	else \
		rm -rf .gen-check; echo "generated/ or $(DOCS)/ is stale: run 'make generate' and commit the result" >&2; exit 1; \
	fi

lint: $(STAMP)
	$(PY) -m ruff check codegen handwritten generated tests benchmarks examples
	$(PY) -m ruff format --check codegen handwritten generated tests benchmarks examples

typecheck: $(STAMP)
	$(PY) -m mypy -p ibkr_sdk

pytest: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

test: lint typecheck check-generated pytest

demo: $(STAMP)
	$(PY) examples/workflow.py

bench: $(STAMP)
	$(PY) benchmarks/bench_call.py
	$(PY) benchmarks/bench_import.py
	$(PY) benchmarks/bench_pacing.py
	$(PY) benchmarks/bench_oauth.py
	$(PY) benchmarks/bench_stream.py

clean:
	rm -rf build .gen-check .mypy_cache .pytest_cache .ruff_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

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

.PHONY: FORCE help venv install generate docs api-docs openapi check-generated lint typecheck pytest test demo examples bench clean ts-test drift coverage

help:
	@echo "make demo             create the environment, install, run the example workflow offline"
	@echo "make examples         run every program in examples/ against its embedded simulator"
	@echo "make test             lint, type-check, check generated code, run the test suite"
	@echo "make generate         regenerate generated/ibkr_sdk, the API reference and the OpenAPI export from spec/"
	@echo "make docs             regenerate the API reference, then build the docs site (MkDocs, strict) into build/site"
	@echo "make api-docs         regenerate the API reference only ($(DOCS)/api-reference.md, $(DOCS)/api/)"
	@echo "make openapi          regenerate the OpenAPI 3.1 export only ($(OPENAPI))"
	@echo "make check-generated  fail when generated/ or the docs differ from what spec/ and the templates produce"
	@echo "make bench            run the benchmarks"
	@echo "make ts-test          type-check the TypeScript client and replay the catalogue examples through it (node)"
	@echo "make drift OPENAPI=new.json  compare a newer IBKR OpenAPI document with the catalogue"
	@echo "make coverage         count the catalogue's operations against IBKR's pinned 2.29.0 document"

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
	$(PY) -m codegen --spec spec --out generated --docs $(DOCS) --openapi $(OPENAPI) --ts generated/ts
	$(PY) -m codegen.reference
	# New or removed modules only become visible to the strict editable install after re-installing.
	$(PY) -m pip install --quiet --no-deps --no-build-isolation --config-settings editable_mode=strict -e .
	@touch $(STAMP)

api-docs: $(STAMP)
	$(PY) -m codegen --spec spec --docs $(DOCS)
	$(PY) -m codegen.reference

# The docs site (MkDocs, Material theme; pinned in the `docs` extra): README, guides, examples and the API reference,
# built in strict mode, so a broken link, a missing page or any other warning fails the build.
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet --config-settings editable_mode=strict -e '.[dev,docs]'
	@touch $(DOCS_STAMP)

docs: api-docs $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --clean

openapi: $(STAMP)
	$(PY) -m codegen --spec spec --openapi $(OPENAPI)

# The docs generator owns $(DOCS)/api/, $(DOCS)/api-reference.md, $(OPENAPI) and $(DOCS)/asyncapi.json; other files in $(DOCS) are not compared.
check-generated: $(STAMP)
	@rm -rf .gen-check
	@$(PY) -m codegen --spec spec --out .gen-check --docs .gen-check/docs --openapi .gen-check/openapi.json \
		--ts .gen-check/ts >/dev/null
	@if diff -r -x __pycache__ .gen-check/ibkr_sdk generated/ibkr_sdk \
		&& diff -r -x node_modules -x dist -x package-lock.json .gen-check/ts generated/ts \
		&& diff -r .gen-check/docs/api $(DOCS)/api \
		&& diff .gen-check/docs/api-reference.md $(DOCS)/api-reference.md \
		&& diff .gen-check/openapi.json $(OPENAPI) \
		&& diff .gen-check/asyncapi.json $(DOCS)/asyncapi.json; then \
		echo "generated code and docs are up to date"; rm -rf .gen-check; \
	else \
		rm -rf .gen-check; echo "generated/ or $(DOCS)/ is stale: run 'make generate' and commit the result" >&2; exit 1; \
	fi

lint: $(STAMP)
	$(PY) -m ruff check codegen handwritten generated tests benchmarks examples tools
	$(PY) -m ruff format --check codegen handwritten generated tests benchmarks examples tools

typecheck: $(STAMP)
	$(PY) -m mypy -p ibkr_sdk

# Two workers: most tests wait on loopback servers, so two processes finish the suite well within five minutes on
# two cores. PYTEST_WORKERS=0 runs it in one process (easier to debug).
PYTEST_WORKERS ?= 2
pytest: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS)

test: lint typecheck check-generated pytest ts-test

# TypeScript client: tsc (pinned in tools/ts/package-lock.json, installed into .ts-tools/) and node's test runner,
# against the Python simulator. Skipped with a message where node or npm is missing.
NODE     ?= node
NPM      ?= npm
TS_TOOLS := .ts-tools
TSC      := $(TS_TOOLS)/node_modules/.bin/tsc
$(TSC): tools/ts/package.json tools/ts/package-lock.json
	mkdir -p $(TS_TOOLS) && cp tools/ts/package.json tools/ts/package-lock.json $(TS_TOOLS)/
	cd $(TS_TOOLS) && $(NPM) ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $(TSC)

ts-test: $(STAMP)
	@if ! command -v $(NODE) >/dev/null || ! command -v $(NPM) >/dev/null; then \
		echo "skipping the TypeScript client tests: node and npm are not installed"; \
	else \
		$(MAKE) --no-print-directory $(TSC) \
		&& $(TSC) --noEmit -p tests/ts/tsconfig.json \
		&& rm -rf .ts-build .ts-dts && $(TSC) -p tests/ts/tsconfig.json && echo '{"type":"module"}' > .ts-build/package.json \
		&& $(TSC) -p tests/ts/dts.tsconfig.json && $(TSC) -p tests/ts/consumer/tsconfig.json \
		&& IBKR_PYTHON=$(PY) $(NODE) --test --test-reporter=dot .ts-build/tests/ts/ \
		&& echo "TypeScript client: type-check and wire tests passed"; \
	fi

# OPENAPI given on the command line is the new IBKR document (its default names the export written by make openapi).
coverage: $(STAMP)
	$(PY) -m codegen coverage

drift: $(STAMP)
ifneq ($(origin OPENAPI),command line)
	@echo "usage: make drift OPENAPI=path/to/new-ibkr-openapi.json [DRIFT_ARGS=--json]" >&2; exit 2
else
	$(PY) -m codegen drift --spec spec --openapi $(OPENAPI) $(DRIFT_ARGS)
endif

demo: $(STAMP)
	$(PY) examples/workflow.py

examples: $(STAMP)
	$(PY) tools/run_examples.py

bench: $(STAMP)
	$(PY) benchmarks/bench_call.py
	$(PY) benchmarks/bench_import.py
	$(PY) benchmarks/bench_pacing.py
	$(PY) benchmarks/bench_fleet.py
	$(PY) benchmarks/bench_oauth.py
	$(PY) benchmarks/bench_stream.py
	$(PY) benchmarks/bench_async.py
	$(PY) benchmarks/bench_soak.py
	$(PY) benchmarks/bench_day.py

clean:
	rm -rf build .gen-check .mypy_cache .pytest_cache .ruff_cache *.egg-info .ts-build .ts-dts .ts-tools
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

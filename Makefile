# Qingfeng developer entry points. Everything a fresh machine needs is installed by these targets.
# The venv's interpreter: the distribution's Python 3.11 where there is one. Debian builds it with PGO and LTO, as
# the deploy image's (python:3.11-slim) is built; pyenv's and python.org's default builds are neither, and ran the
# collector and indexer 10-20 % slower per post (bench/bench_collector_e2e.py, 2026-12-01). `make install PY=python3`
# (after `make clean`) takes whatever python3 is on the PATH.
PY      ?= $(firstword $(wildcard /usr/bin/python3.11) python3)
VENV    := .venv
BIN     := $(VENV)/bin
PROTOS  := $(wildcard protos/qingfeng/v1/*.proto)

.PHONY: install protos lint test test-unit demo stack-up stack-down clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# Editable install of libs (as the package `qingfeng`), services and gateway, with dev tools.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

node_modules/.installed: package.json
	npm install --no-audit --no-fund --silent
	touch $@

# Generated code lands in libs/qingfeng/v1 (git-ignored): python, grpc and .pyi stubs.
protos: $(VENV)/.installed
	$(BIN)/python -m grpc_tools.protoc -Iprotos --python_out=libs --grpc_python_out=libs \
	  --plugin=protoc-gen-mypy=$(BIN)/protoc-gen-mypy --mypy_out=libs \
	  --plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc --mypy_grpc_out=libs $(PROTOS)

# Apache ECharts for the console, copied from node_modules (git-ignored build output; nothing loads from the internet).
CONSOLE_VENDOR := gateway/console/vendor
$(CONSOLE_VENDOR)/echarts.min.js: node_modules/.installed
	mkdir -p $(CONSOLE_VENDOR)
	cp node_modules/echarts/dist/echarts.min.js node_modules/echarts/LICENSE $(CONSOLE_VENDOR)/

# The stub every service preloads instead of protobuf's periodic malloc_trim(0) (libs/qingfeng/malloc_trim.py).
NO_TRIM := $(VENV)/lib/libqingfeng-no-malloc-trim.so
# Without a C compiler it is left out (said once per install): the services then run with protobuf's trims.
$(NO_TRIM): libs/qingfeng/native/no_malloc_trim.c | $(BIN)/python
	@if command -v cc >/dev/null 2>&1; then echo "cc -shared -fPIC -O2 -o $@ $<"; cc -shared -fPIC -O2 -o $@ $<; \
	else echo "no C compiler (cc): $@ not built, the services keep protobuf's malloc_trim (README, Configuration)"; fi

install: $(VENV)/.installed node_modules/.installed protos $(CONSOLE_VENDOR)/echarts.min.js $(NO_TRIM)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy libs services gateway

stack-up: install
	$(BIN)/qingfeng stack up

stack-down:
	$(BIN)/qingfeng stack down

# The one test command (README, .ci/run): installs, starts the local stack, lints, runs every test layer.
test: install
	$(BIN)/qingfeng stack up
	$(BIN)/ruff check .
	$(BIN)/mypy libs services gateway
	$(BIN)/pytest

test-unit: install
	$(BIN)/pytest -m "not integration and not postgres"

# The demo: stack + suite in the background, a short replay of ../shared/data, and where to look.
demo: install
	$(BIN)/qingfeng stack up
	$(BIN)/qingfeng up
	$(BIN)/qingfeng demo

clean:
	rm -rf $(VENV) node_modules .qingfeng libs/qingfeng/v1/*_pb2*

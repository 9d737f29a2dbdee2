# Qingfeng developer entry points. Everything a fresh machine needs is installed by these targets.
PY      ?= python3
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

install: $(VENV)/.installed node_modules/.installed protos

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

# Two set-up commands: `make demo` and `make test`. Both create the environment themselves.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test check lock clean

$(STAMP): pyproject.toml requirements.lock
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "uv>=0.4,<1"
	$(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode -c requirements.lock -e '.[dev,boosting,ray,streams,s3,sql]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/keel demo

test: $(STAMP)
	bash scripts/check
	bash scripts/test

check: $(STAMP)
	bash scripts/check

lock: $(STAMP)
	$(BIN)/uv pip compile --quiet --python-version 3.11 --extra dev --extra boosting --extra ray --extra streams --extra s3 --extra sql pyproject.toml -o requirements.lock

clean:
	rm -rf $(VENV) .keel .pytest_cache .mypy_cache .ruff_cache

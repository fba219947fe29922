# One command to set up and run the main job (`make demo`), one to set up and run the tests (`make test`).
# The virtual environment is made from Debian's /usr/bin/python3 when present: the PostgreSQL tests run as an
# unprivileged user, who cannot execute an interpreter that lives under /root.
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)
VENV ?= .venv
# Install torch before anything that depends on it, or pip fetches a multi-GB CUDA build. On a GPU machine,
# set TORCH_SPEC to the CUDA wheel you want.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# SevenNet cannot share the main environment (sevenn needs e3nn>=0.5, mace-torch pins 0.4.4): the tests run it
# through a Code in an environment of its own, made by the project's own command.
SEVENN_ENV ?= $(VENV)-sevenn
SEVENN_STAMP := $(SEVENN_ENV)/aiida-mliap-environment.json

.PHONY: venv demo test lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[all,dev]"
	touch $(STAMP)

venv: $(STAMP)

$(SEVENN_STAMP): $(STAMP)
	$(BIN)/aiida-mliap setup env sevenn --path $(SEVENN_ENV) --torch "$(TORCH_SPEC)" --no-code

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

test: $(STAMP) $(SEVENN_STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" MLIAP_SEVENN_ENV="$(CURDIR)/$(SEVENN_ENV)" bash scripts/test.sh

lint: $(STAMP)
	$(BIN)/ruff check aiida_mliap tests examples benchmarks
	$(BIN)/ruff format --check aiida_mliap tests examples benchmarks

clean:
	rm -rf $(VENV) $(SEVENN_ENV) demo-output

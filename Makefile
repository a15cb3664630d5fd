# Two commands on a fresh machine:
#   make quickstart   set up .venv and run the main job (registry/src/specclip_registry/specs/quickstart.yaml)
#   make test         set up .venv and run the tests
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PLUGINS := $(wildcard plugins/specclip-*) registry
STAMP := $(VENV)/.installed

.PHONY: setup quickstart test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt $(wildcard plugins/*/pyproject.toml) registry/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt torch
	$(PY) -m pip install -q -c constraints.txt -e '.[test,sbi,lora]' $(foreach p,$(PLUGINS),-e $(p))
	touch $@

quickstart: setup
	$(VENV)/bin/specclip run quickstart
	@echo "specclip is installed in $(VENV): call it as $(VENV)/bin/specclip COMMAND, or run 'source $(VENV)/bin/activate' once and then 'specclip COMMAND' (specclip --help lists the commands)"

test: setup
	$(PY) -m pytest -q tests $(foreach p,$(PLUGINS),$(p)/tests)

clean:
	rm -rf $(VENV) runs .pytest_cache

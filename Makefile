# Kahuna: `make run` starts a local Kahuna, `make test` runs the whole suite.
VENV ?= .venv
PYTHON ?= python3
DATA ?= ./data

.PHONY: install run test bench clean

install: $(VENV)/.installed .tools/bin/ferretdb .tools/.system-deps

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

.tools/bin/ferretdb: scripts/build-ferretdb tools/ferretdb/go.mod
	scripts/build-ferretdb

.tools/.system-deps: scripts/install-system-deps
	scripts/install-system-deps
	mkdir -p .tools && touch $@

run: install
	$(VENV)/bin/kahuna serve --embedded $(DATA)

test: install
	$(VENV)/bin/python -m pytest

bench: install
	$(VENV)/bin/python -m bench

clean:
	rm -rf $(VENV) .tools tools/ferretdb/vendor

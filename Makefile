# Kahuna: `make run` starts a local Kahuna, `make test` runs the whole suite (the wheel and the Debian package
# included: tests/test_packaging.py, tests/test_debian_package.py), `make wheel` and `make deb` build into dist/.
VENV ?= .venv
# The official SDK of API 0.58.0, beside 0.53.2's in $(VENV): both are named `kowabunga` (tests/sdk058/).
SDK058_VENV ?= .venv-sdk058
PYTHON ?= python3
DATA ?= ./data

.PHONY: install run test unit lint bench wheel deb clean

install: $(VENV)/.installed $(SDK058_VENV)/.installed .tools/bin/ferretdb .tools/.system-deps

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

$(SDK058_VENV)/.installed: tests/sdk058/requirements.txt
	$(PYTHON) -m venv $(SDK058_VENV)
	echo '*' > $(SDK058_VENV)/.gitignore  # out of git and of scripts/source-tree, as python 3.13's venv does
	$(SDK058_VENV)/bin/pip install --quiet -r tests/sdk058/requirements.txt
	touch $@

.tools/bin/ferretdb: scripts/build-ferretdb tools/ferretdb/go.mod
	scripts/build-ferretdb

.tools/.system-deps: scripts/install-system-deps
	scripts/install-system-deps
	mkdir -p .tools && touch $@

run: install
	$(VENV)/bin/kahuna serve --embedded $(DATA)

test: install lint
	$(VENV)/bin/python -m pytest

# ruff (the rule set and why: pyproject.toml, [tool.ruff.lint]); mypy (strict on the domain's core and the actors,
# defaults elsewhere: [tool.mypy]); repeated code in kahuna/, actors/ and api/ (scripts/check-duplicates).
lint: install
	$(VENV)/bin/ruff check kahuna actors api tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/python scripts/check-duplicates

# The fast tier alone: pure modules and services with fakes, no database (tests/unit/).
unit: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q tests/unit

bench: install
	$(VENV)/bin/python -m bench

# Built from a clean copy of the source (scripts/source-tree), never from the work tree.
wheel: $(VENV)/.installed
	rm -rf dist/wheel-source && scripts/source-tree dist/wheel-source
	$(VENV)/bin/pip wheel --quiet --no-deps --wheel-dir dist dist/wheel-source && rm -rf dist/wheel-source

# Debian's tooling (dpkg-buildpackage, dh-virtualenv): dist/kahuna_<version>_<arch>.deb.
deb: .tools/.system-deps
	scripts/build-deb dist

clean:
	rm -rf $(VENV) $(SDK058_VENV) .tools tools/ferretdb/vendor dist

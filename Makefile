# The two commands (see README): `make reproduce` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SCALE  ?= micro

.PHONY: test reproduce setup sandbox-deps bench clean-venv lint-notebooks

# The environment is rebuilt when pyproject.toml changes (the stamp is older than it).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m ipykernel install --prefix $(VENV) --name python3 > /dev/null
	touch $(STAMP)

setup: $(STAMP) sandbox-deps

# bubblewrap contains generated code (no network, read-only file system, own pid namespace).
# Installed only when we are root and it is missing; otherwise the runner falls back to rlimits
# and says so once.
sandbox-deps:
	@if ! command -v bwrap > /dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null 2>&1; then \
		echo "installing bubblewrap for the code runner"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap > /dev/null) \
		|| echo "warning: could not install bubblewrap; the code runner will use resource limits only"; \
	fi

test: setup
	$(PY) -m pytest

reproduce: setup
	$(VENV)/bin/cotrepro reproduce --scale $(SCALE)

bench: setup
	for b in bench/bench_*.py; do $(PY) $$b || exit 1; done

lint-notebooks: setup
	$(PY) -m jupytext --check 'nbstripout --verify' notebooks/*.ipynb

clean-venv:
	rm -rf $(VENV)

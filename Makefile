# The course's commands. `make course` and `make test` work from a fresh clone.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export COURSE_CACHE ?= $(HOME)/.cache/finetune-course

.PHONY: setup course test lint unit notebooks lab bench data links gpu-check clean

setup: $(STAMP)

# Idempotent: re-runs only when the pins or the package metadata change.
$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps $$(sed -n 's/^# no-deps: //p' requirements.txt)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

course: setup
	$(PY) -m tools.runner --out build/course

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

unit: setup
	$(PY) -m pytest -m "not slow" -q

# The notebook tests share one cache under build/, so a fresh clone builds each checkpoint once.
test: lint
	COURSE_CACHE=$(CURDIR)/build/test-cache $(PY) -m pytest -q

# JupyterLab opens working copies in lab/ (ignored by git), made once: opening or saving a lesson never
# changes the tracked notebook, so `git pull` brings new lessons without conflicts. Delete lab/X to reset X.
# The lab's settings overrides turn off JupyterLab's "fetch official Jupyter news?" prompt (offline it can only fail).
lab: setup
	mkdir -p lab $(VENV)/share/jupyter/lab/settings
	cp tools/jupyterlab_overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	for f in notebooks/*.ipynb; do test -e lab/$$(basename $$f) || cp $$f lab/; done
	$(VENV)/bin/jupyter lab $$(test "$$(id -u)" = 0 && echo --allow-root) lab/

bench: setup
	$(PY) -m tools.bench

data: setup
	$(PY) -m tools.tinyworld

# After changing [project.urls] Repository in pyproject.toml (a fork): rewrite every badge and Colab cell.
links:
	python3 -m tools.notebook_links

# On a GPU machine (any, no network needed): precision, GPU bench levers, small profile, tiny tests on CUDA.
gpu-check:
	tools/gpu_check.sh $(WHEELS)

clean:
	rm -rf build

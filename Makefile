# The course's commands. `make course` and `make test` work from a fresh clone.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export COURSE_CACHE ?= $(HOME)/.cache/finetune-course

.PHONY: setup course test lint unit notebooks lab bench data clean

setup: $(STAMP)

# Idempotent: re-runs only when the pins or the package metadata change.
$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps $$(sed -n 's/^# no-deps: //p' requirements.txt)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

course: setup
	$(PY) -m course_utils.runner --out build/course

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

unit: setup
	$(PY) -m pytest -m "not slow" -q

# The notebook tests share one cache under build/, so a fresh clone builds each checkpoint once.
test: lint
	COURSE_CACHE=$(CURDIR)/build/test-cache $(PY) -m pytest -q

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

bench: setup
	$(PY) -m course_utils.bench

data: setup
	$(PY) -m course_utils.tinyworld

clean:
	rm -rf build

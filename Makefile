# The two commands of the README: `make demo` runs the main job, `make test` runs the tests.
# Both create .venv when missing and install the project into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The versions the project's CI machines hold offline; pyproject.toml's own ranges stay wide.
TORCH_PIN ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed

.PHONY: demo test install clean-results

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip install -q -e '.[dev]' $(TORCH_PIN)
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/advunlearn batch configs/demo.yaml

test: $(STAMP)
	$(PY) -m pytest -q --durations=15 --nbval-lax notebooks tests

clean-results:
	rm -rf results

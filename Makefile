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

# The demo runs on the Fashion-MNIST testbed when its files are found (the Debian package
# dataset-fashion-mnist, or $ADVUNLEARN_DATA/FashionMNIST/raw, by default ~/.cache/advunlearn/data/...);
# otherwise it says how to get them and runs digits. It ends with Table 1 and the report's path.
demo: $(STAMP)
	@if $(PY) -c "from advunlearn.core.data import load_dataset; load_dataset('fashion-mnist', download=False)" 2>/dev/null; then \
		name=course-cpu; \
	else \
		name=demo; \
		echo "Fashion-MNIST not found: install the Debian package dataset-fashion-mnist (sudo apt-get install dataset-fashion-mnist)"; \
		echo "or put its four IDX files in $${ADVUNLEARN_DATA:-$$HOME/.cache/advunlearn/data}/FashionMNIST/raw. Running the digits demo instead."; \
	fi; \
	$(VENV)/bin/advunlearn batch configs/$$name.yaml --results results/$$name; rc=$$?; \
	if [ -f results/$$name/report/table1.md ]; then \
		echo; cat results/$$name/report/table1.md; echo; \
		echo "report: results/$$name/report/report.html (tables: results/$$name/report/, rows: results/$$name/results.csv)"; \
	fi; \
	exit $$rc

# The numeric reference tests (pytest -m numeric) then run again with MKL, ATen and oneDNN pinned to their
# AVX2 code paths, with 1 and with 2 threads: the path a CPU without AVX-512, or a non-Intel one, takes,
# so that a tolerance too tight for another CPU fails here too (about 1 minute more on 2 cores).
NUMERIC_AVX2 := MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2 DNNL_MAX_CPU_ISA=AVX2

test: $(STAMP)
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q --durations=15 --nbval-lax notebooks tests
	$(NUMERIC_AVX2) ADVUNLEARN_THREADS=1 OMP_NUM_THREADS=1 $(PY) -m pytest -q -p no:cacheprovider -m numeric tests
	$(NUMERIC_AVX2) ADVUNLEARN_THREADS=2 OMP_NUM_THREADS=2 $(PY) -m pytest -q -p no:cacheprovider -m numeric tests

clean-results:
	rm -rf results

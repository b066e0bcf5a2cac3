# make demo / make test / make bench: each creates .venv when missing and installs symnet into it.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.symnet-installed

BENCH_STAMP := $(VENV)/.symnet-bench-installed

.PHONY: demo test bench clean jet-venv

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/parabola.py

test: $(STAMP)
	$(PY) -m pytest

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[test,bench]"
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) benchmarks/run.py
	$(PY) benchmarks/train_speed.py
	$(PY) benchmarks/train_step.py
	$(PY) benchmarks/threads.py
	$(PY) benchmarks/threads.py --schedules
	$(PY) benchmarks/threads.py --fusion --nets G2,G3 --rounds 5
	$(PY) benchmarks/threads.py --fusion --nets G2,G3 --rounds 5 --task laplacian
	$(PY) benchmarks/threads.py --losses
	$(PY) benchmarks/threads.py --chunk-overhead
	$(PY) benchmarks/threads.py --schedules --nets G1,G2,G3,G4,P64,P96,M256
	$(PY) benchmarks/threads.py --chunk-points 95,224,384 --nets G1,G3
	$(PY) benchmarks/higher_order.py
	$(PY) benchmarks/vecmath.py
	$(PY) benchmarks/graphs.py --out benchmarks/RESULTS.md
	$(PY) benchmarks/wide_setup.py
	$(PY) benchmarks/dask_throughput.py

# jet-for-pytorch, a benchmark-only comparator, needs Python >= 3.12 and a venv of its own
# (benchmarks/jet_runner.py); PyPI's torch==2.13.0 for 3.12 is a CUDA build, which runs on the CPU.
PYTHON312 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) python3.12)
jet-venv:
	$(PYTHON312) -m venv .venv-jet
	.venv-jet/bin/pip install --quiet "torch==2.13.0" jet-for-pytorch numpy

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis

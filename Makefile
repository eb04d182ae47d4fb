# Two entry points: `make demo` (main job) and `make test` (lint + tests). Both set up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.sparta-installed
BROWSER_STAMP := $(VENV)/.sparta-browser

.PHONY: setup data browser demo test test-slow bench lint format clean venv-torch-next test-torch-next \
	venv-peers bench-peers

setup: $(STAMP) data

# torch is pinned to the local CPU build before the package, so no CUDA build is pulled.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev,card]'
	@touch $(STAMP)

data:
	@bash scripts/ensure-data.sh

# The report card's browser tests: Playwright (PyPI) drives Debian's chromium; no browser download.
$(BROWSER_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[browser]'
	@touch $(BROWSER_STAMP)

browser: $(BROWSER_STAMP)
	@bash scripts/ensure-chromium.sh

# The main job: the report card of LeNet-5 on Fashion-MNIST (configs/card-demo.yaml); a second
# `make demo` resumes runs/demo: it reuses every finished cell and only prints the table again.
demo: setup
	$(BIN)/sparta card --config configs/card-demo.yaml --out runs --name demo \
		$$(test -f runs/demo/config.yaml && echo --resume)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

test: setup browser lint
	$(BIN)/pytest

test-slow: setup
	$(BIN)/pytest -m slow

bench: setup
	$(BIN)/python benchmarks/train_throughput.py

# The next torch release: certification and attacks are checked on torch 2.14.1 too (issue 15:
# clamp's gradient at its bounds changed between 2.13.0 and 2.14.1). torch is installed first so the
# project's install keeps it; torchvision is not needed and not installed.
NEXT_VENV := .venv-torch-2.14
NEXT_STAMP := $(NEXT_VENV)/.sparta-installed

$(NEXT_STAMP): pyproject.toml
	@test -x $(NEXT_VENV)/bin/python || $(PYTHON) -m venv $(NEXT_VENV)
	$(NEXT_VENV)/bin/python -m pip install -q torch==2.14.1
	$(NEXT_VENV)/bin/python -m pip install -q -e '.[dev]'
	$(NEXT_VENV)/bin/python -c 'import torch; assert torch.__version__.startswith("2.14.1"), torch.__version__'
	@touch $(NEXT_STAMP)

venv-torch-next: $(NEXT_STAMP)

test-torch-next: venv-torch-next data
	$(NEXT_VENV)/bin/pytest tests/certify tests/attacks

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

# The peer libraries side by side (issue 16; not in CI): Torch-Pruning, torch.nn.utils.prune,
# torchattacks and ART in one process with sparta. torch and torchvision are pinned in the same pip
# call as the peers, so no peer can replace them; the check below makes sure none did.
PEERS_VENV := .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.sparta-installed

$(PEERS_STAMP): pyproject.toml
	@test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PEERS_VENV)/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1 \
		torch-pruning torchattacks adversarial-robustness-toolbox -e .
	$(PEERS_VENV)/bin/python -c 'import torch, torchvision; assert torch.__version__.startswith("2.14.1"), torch.__version__; assert torchvision.__version__.startswith("0.29.1"), torchvision.__version__'
	@touch $(PEERS_STAMP)

venv-peers: $(PEERS_STAMP)

bench-peers: venv-peers data
	$(PEERS_VENV)/bin/python benchmarks/peers.py $(PEERS_ARGS)

clean:
	rm -rf $(VENV) $(NEXT_VENV) $(PEERS_VENV) runs .pytest_cache .ruff_cache

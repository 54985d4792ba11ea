# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test lint typecheck cluster-binaries browser screenshots venv clean real-node-images

# A fresh Debian has python3 but not always its venv module or git.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || hack/apt-install.sh python3-venv
	@command -v git >/dev/null || hack/apt-install.sh git
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## run: start the local control plane and a controller, and run a sample DAG
run: $(STAMP)
	$(BIN)/kubedag dev

## test: lint, type-check and run the whole test suite (real PostgreSQL and Kubernetes)
test: $(STAMP) lint typecheck cluster-binaries browser real-node-images
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check controller tests benchmarks
	$(BIN)/ruff format --check controller tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

# Built once from Debian's kubernetes source into ~/.cache/kubedag (minutes the
# first time, with progress); later runs reuse the cache.
cluster-binaries: $(STAMP)
	$(BIN)/kubedag dev-cluster build

## screenshots: a picture of each web UI page, from a controller running the sample DAGs
screenshots: $(STAMP) cluster-binaries browser
	KUBEDAG_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest -q tests/ui/test_screenshots.py

# The UI's browser tests drive Debian's Chromium; nothing is downloaded at test time.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null \
		|| hack/apt-install.sh chromium chromium-driver

# The images the real-node suite runs (tests/realnode, root only): a Debian base, local
# stand-ins for public images, the controller from the Dockerfile. Minutes the first
# time; afterwards only a changed controller source is rebuilt.
real-node-images: $(STAMP)
	@if [ "$$(id -u)" = 0 ]; then $(BIN)/kubedag dev-cluster images; \
	else echo "not root: the real-node suite will be skipped"; fi

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

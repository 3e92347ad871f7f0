# homelab-sso — build, test, demo. `make test` and `make demo` install what they need first.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= $(CURDIR)/.venv
export VENV
export PATH := $(VENV)/bin:$(PATH)
# The modules (ansible/modules.txt, the one list) and the crates that build them.
MODULES := $(shell scripts/modules.sh)
COLLECTION := ansible/collection
CARGO ?= cargo
MODULE_CRATES := $(shell scripts/modules.sh -p)

.PHONY: help setup build build-debug test test-rust test-e2e demo lint bench clean

help:
	@echo "make demo   bring up the lab, run the full rotation, print the summary, stop the lab"
	@echo "make test   install what is needed, then run every test"
	@echo "make build  release binaries next to their docs in $(COLLECTION), collection tarball in dist/"
	@echo "make lint   cargo fmt/clippy, actionlint, shellcheck, ansible-lint, ansible-test sanity, galaxy-importer"
	@echo "make bench  benchmarks; results in bench/results.md"

setup:
	@scripts/setup.sh

build-debug:
	$(CARGO) build --workspace --bins

build: setup
	$(CARGO) build --release $(MODULE_CRATES)
	@scripts/install-modules.sh release
	@mkdir -p dist && $(VENV)/bin/ansible-galaxy collection build $(COLLECTION) --output-path dist --force

test: setup build-debug
	@set -o pipefail; status=0; \
	$(CARGO) test --workspace --no-fail-fast 2>&1 | tee target/test-output.txt || status=$$?; \
	scripts/test-summary.sh target/test-output.txt; exit $$status

demo: setup
	$(CARGO) build --release $(MODULE_CRATES)
	$(CARGO) build -p lab --bin sso-lab
	@scripts/install-modules.sh release
	@scripts/demo.sh

lint: setup
	@scripts/lint.sh

# sso-bench (crate bench) drives the measurements; it is not a module, so it is built here too.
bench: setup
	$(CARGO) build --release $(MODULE_CRATES) -p bench
	@scripts/install-modules.sh release
	@scripts/bench.sh

clean:
	$(CARGO) clean
	rm -rf dist .lab

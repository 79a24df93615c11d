# A thin layer over scripts/bootstrap.sh, the swerl CLI and the nox sessions in noxfile.py.
# Every target prints the command it runs. `make` alone lists the targets.

CONFIG ?= configs/smoke_cpu.yaml
GPU_CONFIG := configs/sync_1node_cc.yaml
VENV := .venv/bin
NOX := $(VENV)/nox

.DEFAULT_GOAL := help
.PHONY: help setup setup-check venv smoke rollout learn check test lint typecheck docs bench plan train-1node clean

help: ## List the targets
	@echo "usage: make <target> [CONFIG=path/to/config.yaml]"
	@echo
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo
	@echo "CONFIG defaults to $(CONFIG)."

setup: ## Everything a CPU run needs (docker, sandbox image, policy server...); STEPS="a b" for some
	scripts/bootstrap.sh $(STEPS)

setup-check: ## Report what `make setup` would still do (changes nothing; exit 1 if anything)
	scripts/bootstrap.sh --check

venv: ## Only the Python 3.12 env from uv.lock (.venv) and the tiny model: what the targets below need
	scripts/bootstrap.sh venv model

smoke: ## Set up what is missing, then the CPU smoke training run of CONFIG on the real stack (the main job)
	scripts/start.sh --config $(CONFIG)

rollout: setup ## Set up, then generate only: every task n_resp times, logprobs checked (swerl rollout)
	$(VENV)/swerl rollout --config $(CONFIG) --verify-logprobs

check: venv ## Set up .venv, then preflight the embedded CPU default (swerl check, changes nothing)
	$(VENV)/swerl check --config configs/smoke_cpu.yaml

test: venv ## Run the tests (nox -s tests; pass pytest args with ARGS="-k x")
	$(NOX) -s tests -- $(ARGS)

lint: venv ## ruff check + ruff format --check
	$(NOX) -s lint

typecheck: venv ## mypy on packages/*/src
	$(NOX) -s typecheck

docs: venv ## Regenerate the reference pages, check the docs (links, nav), render HTML into site/
	$(NOX) -s docs

bench: venv ## Gateway latency vs direct vLLM, trial throughput at 1/2/4 (needs make setup; ARGS=...)
	$(NOX) -s bench -- $(ARGS)

learn: setup ## The CPU learning curve (nox -s learn): train configs/learn_cpu.yaml, swerl report, swerl eval of start and end
	$(NOX) -s learn -- $(ARGS)

plan: venv ## Print the processes a run of CONFIG would start (runs nothing)
	$(VENV)/swerl plan --config $(CONFIG)

train-1node: venv ## GPU loop on one 8-GPU host: scripts/start.sh with GPU_CONFIG (verl FSDP; needs `uv sync --extra gpu`)
	scripts/start.sh --config $(GPU_CONFIG) $(ARGS)

clean: ## Remove nox, pytest, ruff and mypy caches, __pycache__ and site/ (keeps .venv, models/, runs/)
	rm -rf .nox .pytest_cache .ruff_cache .mypy_cache site
	find packages tests scripts -name __pycache__ -type d -prune -exec rm -rf {} +

# Shopkeeper: `make run` (the demo) and `make test` are all a newcomer needs. See README.md.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
ORDERS ?= 500
KAFKA_BROKERS ?= 1

.PHONY: run test up down status bootstrap lint typecheck unit integration clean logs bench chaos

run: up ## set everything up, start the stack, run the demo shop
	$(BIN)/python -m tools.demo --orders $(ORDERS)

test: bootstrap lint typecheck ## lint, types, unit and integration tests (starts the stack it needs)
	$(BIN)/pytest -q

bootstrap: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	bash scripts/install-system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

up: bootstrap ## start Kafka (KAFKA_BROKERS=3 for a cluster), Postgres, every service and Prometheus
	$(BIN)/python -m stack up --brokers $(KAFKA_BROKERS)

down: ## stop everything `make up` started (safe to repeat)
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m stack down; else $(PYTHON) -m stack down; fi

status:
	$(BIN)/python -m stack status

logs:
	tail -n 50 -f .local/logs/*.log

lint: bootstrap
	$(BIN)/ruff check .

typecheck: bootstrap
	$(BIN)/mypy

unit: bootstrap
	$(BIN)/pytest -q tests/unit

integration: bootstrap
	$(BIN)/pytest -q tests/integration

clean: ## stop and delete local data (Kafka, Postgres, logs); keeps the Kafka jars
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m stack down --wipe; fi

chaos: bootstrap ## fault injection under load (slow; docs/RELIABILITY.md): artifacts/chaos.md
	$(BIN)/pytest -m chaos -q tests/chaos; status=$$?; cat artifacts/chaos.md; exit $$status

bench: up ## throughput and latency against this machine's limits -> docs/BENCHMARKS.md
	$(BIN)/python -m tools.bench --scaling

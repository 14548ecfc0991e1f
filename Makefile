# The two commands a newcomer needs: `make run` and `make test`. Both set up everything
# they need on a fresh machine (apt packages, venv from the lock, jars from Maven Central).
.PHONY: run test down status bootstrap unit lint bench chaos

bootstrap:
	@bash scripts/bootstrap.sh

run: bootstrap  ## start engines, topics, topologies, API and demo data (idempotent)
	@.venv/bin/feedstream up

test: bootstrap  ## the whole suite: unit, then integration and e2e on a throwaway stack
	@.venv/bin/pytest $(PYTEST_ARGS)

down:  ## stop everything `make run` started
	@.venv/bin/feedstream down

status:
	@.venv/bin/feedstream local status

unit: bootstrap
	@.venv/bin/pytest -m unit -q

lint: bootstrap
	@.venv/bin/ruff check . && .venv/bin/mypy core streams stores models topologies serving ops feedstream

bench: bootstrap  ## all benchmarks against the running stack (see README, Benchmarks)
	@.venv/bin/feedstream bench --scenario smoke

chaos: bootstrap  ## every fault under load on a platform of its own, views verified (docs/reliability.md)
	@.venv/bin/feedstream chaos

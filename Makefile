# The two commands of README.md: `make dev` (everything, prints the URL) and `make test`.
.PHONY: dev test unit bootstrap bench bench-notify bench-web lint infra-up infra-down ci-repeat help

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

bootstrap:  ## install system packages and the Python venv (idempotent)
	@scripts/bootstrap.sh

dev: bootstrap  ## start Kafka, PostgreSQL, worker and web; print the URL; Ctrl-C stops all
	@.venv/bin/oo dev

test: bootstrap  ## the whole test suite (starts Kafka and PostgreSQL itself)
	@.venv/bin/python -m pytest $(PYTEST_ARGS)

unit: bootstrap  ## only the fast unit tests
	@.venv/bin/python -m pytest -m unit $(PYTEST_ARGS)

bench: bootstrap  ## benchmarks against the real local broker (see docs/benchmarks.md)
	@.venv/bin/python -m bench $(BENCH_ARGS)

bench-notify: bootstrap  ## notifier benchmark against the local push service (docs/benchmarks.md)
	@.venv/bin/python -m bench notify $(BENCH_ARGS)

bench-web: bootstrap  ## web benchmark: API load, page weight, first paint, Lighthouse (docs/benchmarks.md)
	@.venv/bin/python -m bench web --lighthouse $(BENCH_ARGS)

ci-repeat:  ## CI's command on N fresh clones of main (RUNS=5, HOG=0 busy loops); pass/fail and durations
	@scripts/ci-repeat $(or $(RUNS),5) --hog $(or $(HOG),0)

lint: bootstrap  ## ruff and mypy
	@.venv/bin/ruff check . && .venv/bin/mypy oo topics agents web domain adapters bench

infra-up: bootstrap  ## start only Kafka and PostgreSQL
	@.venv/bin/oo infra up

infra-down: bootstrap  ## stop them
	@.venv/bin/oo infra down

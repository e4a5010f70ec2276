# The README's two commands are `make demo` and `make test`; everything else serves them.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCALE := translation/locale
PYTEST_WORKERS ?= auto
# The PostgreSQL server of test-postgres and alembic-check-postgres (user@host:port).
PG_SERVER ?= postgres@127.0.0.1:5432
ALEMBIC_DB := var/alembic-check.db

.PHONY: install demo test test-postgres bench lint alembic-check-postgres compose-check ci catalogs-extract catalogs-update catalogs-compile catalogs-check migrate serve clean

install: $(STAMP) catalogs-compile

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Puente needs Python 3.11 ($(PYTHON) not found)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

# Catalogs: extract keys from code and templates, merge into both catalogs, compile.
catalogs-extract: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k N_ -k _ --no-location --sort-output \
		--project=Puente -o $(LOCALE)/messages.pot . >/dev/null

catalogs-update: catalogs-extract
	$(BIN)/pybabel update -i $(LOCALE)/messages.pot -d $(LOCALE) -D messages \
		--no-fuzzy-matching --ignore-obsolete --no-location

catalogs-compile: $(STAMP)
	@$(BIN)/pybabel compile -d $(LOCALE) -D messages >/dev/null

catalogs-check: catalogs-extract
	$(BIN)/python -m translation.po missing

migrate: install
	$(BIN)/puente migrate

demo: install
	$(BIN)/puente demo

serve: install
	$(BIN)/puente serve

test: install
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -q

test-postgres: install
	PUENTE_TEST_DATABASE_URL=$${PUENTE_TEST_DATABASE_URL:-postgresql+psycopg://$(PG_SERVER)/postgres} \
		$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy .ci/check_compose.py
	@heads=$$($(BIN)/alembic heads | grep -c '(head)'); \
	if [ "$$heads" != 1 ]; then echo "Alembic has $$heads heads, not one:"; $(BIN)/alembic heads; exit 1; fi; \
	echo "Alembic: one head"
	rm -f $(ALEMBIC_DB) $(ALEMBIC_DB)-wal $(ALEMBIC_DB)-shm
	PUENTE_DATABASE_URL=sqlite:///./$(ALEMBIC_DB) $(BIN)/puente migrate >/dev/null
	PUENTE_DATABASE_URL=sqlite:///./$(ALEMBIC_DB) $(BIN)/alembic check

# The models and the migrations agree on PostgreSQL too (JSONB, triggers): a scratch
# database, migrated to head, then dropped.
alembic-check-postgres: install
	@db=puente_alembic_check_$$$$; url=postgresql+psycopg://$(PG_SERVER)/$$db; \
	psql -qX "postgresql://$(PG_SERVER)/postgres" -c "CREATE DATABASE $$db" || exit 1; \
	trap 'psql -qX "postgresql://$(PG_SERVER)/postgres" -c "DROP DATABASE IF EXISTS $$db WITH (FORCE)"' EXIT; \
	PUENTE_DATABASE_URL=$$url $(BIN)/puente migrate >/dev/null && \
	PUENTE_DATABASE_URL=$$url $(BIN)/alembic check

# compose.yaml against the CLI and the settings (Docker is not needed).
compose-check: install
	$(BIN)/python .ci/check_compose.py

# What CI runs, from services to the demo.
ci:
	bash .ci/run

bench: install
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	$(BIN)/python benchmarks/read_throughput.py
	$(BIN)/python benchmarks/import_throughput.py
	$(BIN)/python benchmarks/store_latency.py
	$(BIN)/python benchmarks/transaction_latency.py
	$(BIN)/python benchmarks/linkage_quality.py
	$(BIN)/python benchmarks/matching_features.py
	$(BIN)/python benchmarks/match_latency.py
	$(BIN)/python benchmarks/consent_decisions.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
	find $(LOCALE) -name '*.mo' -delete

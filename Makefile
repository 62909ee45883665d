# Lanzuan — the two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
VAR := $(or $(LANZUAN_VAR_DIR),var)

.PHONY: run test lint format bench eval-intent messages clean-var

$(VENV)/.installed: requirements/base.txt requirements/dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Lanzuan needs Python 3.11 or newer"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements/dev.txt
	touch $@

.venv: $(VENV)/.installed

# Development server: SQLite and a file-system broker under var/, no other server needed.
run: export DEBUG ?= 1
run: $(VENV)/.installed
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	$(PY) -m lanzuan.devserver

test: export SECRET_KEY ?= insecure-key-for-tests-only-0123456789abcdef
test: export LANZUAN_OUTBOUND_ALLOW ?= 127.0.0.0/8@32768-65535,::1/128@32768-65535
# Bytecode is cached even where the environment says not to (PYTHONDONTWRITEBYTECODE): without the cache
# every xdist worker, Celery worker and manage.py the suite starts compiles the project again, and pytest
# rewrites the asserts of every plugin's modules again (~4 s of CPU per worker).
test: export PYTHONDONTWRITEBYTECODE =
# Every session runs in a throwaway LANZUAN_VAR_DIR of its own (tests/sandbox.py), so `make test`
# never shares a broker, outbox or cache with a running `make run`, whatever LANZUAN_VAR_DIR says;
# under xdist each worker process is such a session (its own test database, var dir and Redis key
# prefix). `make test PYTEST_ARGS="-n 0"` runs serially.
test: $(VENV)/.installed
	$(BIN)/pytest -n auto --dist worksteal $(PYTEST_ARGS)

lint: export SECRET_KEY ?= insecure-key-for-lint-only-0123456789abcdef
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports  # the apps' dependency order (.importlinter)
	$(BIN)/mypy .

format: $(VENV)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

messages: $(VENV)/.installed
	$(PY) manage.py makemessages -l zh_Hans -l en --ignore=.venv --ignore=tests --ignore=bench
	$(PY) manage.py compilemessages --ignore=.venv  # .mo files are committed: a newcomer needs no gettext

bench: $(VENV)/.installed
	$(PY) bench/run.py

# Reply-intent classifier: precision, recall, F1 and confusion matrix on the corpus's dev and test splits.
eval-intent: export SECRET_KEY ?= insecure-key-for-eval-only-0123456789abcdef
eval-intent: $(VENV)/.installed
	$(PY) manage.py intent_eval

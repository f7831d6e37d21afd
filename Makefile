# The two commands of the README. Each sets up what it needs first (scripts/setup.sh).
.PHONY: demo test setup lint bench

demo:
	@scripts/setup.sh --demo
	.venv/bin/intercom --log-level error demo

test:
	@scripts/setup.sh
	.venv/bin/python -m pytest

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

bench:
	@scripts/setup.sh --demo
	.venv/bin/python bench/register.py

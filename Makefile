# The two set-up commands of README.md. Both create or refresh .venv first.
.PHONY: demo test

demo:
	bash scripts/setup_env.sh
	.venv/bin/python examples/quickstart.py

test:
	bash scripts/setup_env.sh
	.venv/bin/python -m pytest

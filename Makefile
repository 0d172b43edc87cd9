# The two set-up commands of README.md. Both create or refresh .venv first.
.PHONY: demo test

demo:
	bash scripts/setup_env.sh
	.venv/bin/python examples/quickstart.py

test:
	bash scripts/setup_env.sh
	.venv/bin/python -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$status

# The README's commands. `make test` is what CI runs (.ci/run).
.PHONY: test lint unit offline

VENV := target/venv

## Every test: formatting, lints, Rust tests, offline manifest/Tiltfile/Dockerfile checks.
test: lint unit offline

lint:
	cargo fmt --check
	cargo clippy --all-targets --locked -- -D warnings

unit:
	cargo test --locked

offline: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q e2e/offline

# The validators live in a virtualenv under target/, rebuilt when the pins change.
$(VENV)/.installed: e2e/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r e2e/requirements.txt
	touch $@

#!/usr/bin/env bash
# Test command of the README: lint, unit tests, a wheel that carries the weights, executed notebooks.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m ruff check .
.venv/bin/python -m pytest -q

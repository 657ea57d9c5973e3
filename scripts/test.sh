#!/usr/bin/env bash
# Test command of the README: lint, unit tests, executed notebooks, a wheel that carries the weights, the docs.
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2
.venv/bin/python -m ruff check .
.venv/bin/python -m pytest -q
# the tutorials execute end to end (the docs build runs them too)
.venv/bin/python -m pytest -q --nbmake notebooks
# the built wheel must ship the pretrained weights (no machine can download them)
wheel_dir=$(mktemp -d)
.venv/bin/python -m pip wheel --quiet --no-deps --wheel-dir "$wheel_dir" .
.venv/bin/python - "$wheel_dir" <<'PY'
import sys, zipfile, pathlib
wheel = next(pathlib.Path(sys.argv[1]).glob("deepspot_sd-*.whl"))
names = zipfile.ZipFile(wheel).namelist()
needed = [
    "deepspot_sd/models/deepspot_v1/config.json",
    "deepspot_sd/models/deepspot_v1/deepspot_v1.weights.h5",
    "deepspot_sd/models/deepspot_v1/deepspot_v1.onnx",
]
missing = [n for n in needed if n not in names]
if missing:
    sys.exit(f"{wheel.name} lacks {missing}")
print(f"{wheel.name} ships the pretrained model")
PY
rm -rf "$wheel_dir"

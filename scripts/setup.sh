#!/usr/bin/env bash
# Set-up command of the README: create .venv with Python 3.12, install the package with its test and doc
# extras, then run the main job on the embedded default scene.
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2

find_python() {
  for candidate in python3.12 "$(pyenv which python3.12 2>/dev/null || true)" "$(pyenv which python 2>/dev/null || true)" python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  echo "Python >= 3.12 not found (tried python3.12, pyenv, python3)" >&2
  return 1
}

PYTHON=$(find_python)
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then
  "$PYTHON" -m venv --clear .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test,doc]"
.venv/bin/python -m deepspot_sd demo --out output/demo

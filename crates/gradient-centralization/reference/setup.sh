#!/usr/bin/env bash
# Create (or reuse) the virtualenv reference/.venv and install the pinned requirements.
# Usage (from anywhere): bash crates/gradient-centralization/reference/setup.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
if [ ! -x "$here/.venv/bin/python" ]; then
    "$python" -m venv "$here/.venv"
fi
"$here/.venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
"$here/.venv/bin/python" -c "import numpy; print('reference venv ready: numpy', numpy.__version__)"

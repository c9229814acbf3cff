#!/usr/bin/env bash
# The agent's main job on the built-in emulated hardware: no sensors and no
# InfluxDB needed. Installs into .venv, then runs one diagnostic cycle that
# reads every emulated sensor and prints the line protocol it would write.
# Pass other arguments to run differently, e.g. `scripts/demo.sh run`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
if [ $# -eq 0 ]; then
    set -- --once --dry-run
fi
exec .venv/bin/edge-agent -c config/demo.yaml "$@"

#!/usr/bin/env bash
# The agent's main job on the built-in emulated hardware, end to end: installs
# what it needs (Debian's influxdb if missing, a venv with the package), starts
# a throwaway influxd on a free 127.0.0.1 port, runs the real agent, stops
# influxd midway for ten seconds and starts it again, then prints what was read,
# what InfluxDB holds, the accounting and a chart. About a minute.
#
#   scripts/demo.sh                 the end-to-end run (options: --seconds N --outage N)
#   scripts/demo.sh --once          one dry-run diagnostic cycle: the line protocol it would write
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
if [ "${1:-}" = "--once" ]; then
    venv_install .venv ""
    exec .venv/bin/edge-agent -c config/demo.yaml --once --dry-run
fi
apt_need influxd:influxdb
venv_install .venv ""
exec .venv/bin/python scripts/demo.py "$@"
